//! Bottleneck detection and fleet analytics, folded from journal facts only.
//!
//! - [`Stats`] (`stats.rs`) is the projection: per pool, capability, agent
//!   and step kind, two event-time rolling windows (short and long) of
//!   arrivals, assignments, ended attempts, failures, timeouts, wait and run
//!   time histograms and usage, plus all-time totals for estimates; and the
//!   active findings (folded from BottleneckDetected/Resolved facts).
//! - [`detect`] (`detect.rs`) is a set of pure detectors: figures + gauges
//!   (capacity, load, queues, running attempts) in, [`Signal`]s out.
//! - [`Hysteresis`] (`hysteresis.rs`) turns signals into facts: Detected
//!   when a signal fires for a subject with no active finding, Resolved once
//!   its ratio stayed below `resolve_ratio` for a full short window.
//!
//! Invariants: memory is bounded by the number of subjects (fixed-size
//! rings of buckets), never by history; everything is a function of event
//! times, so replay folds the same figures; the only soft state is the
//! hysteresis timer (`below_since`), which a restart resets — that can only
//! delay a resolution by one window, never invent or lose a finding.

mod config;
pub mod detect;
mod hysteresis;
mod keyed;
mod stats;
mod window;

#[cfg(test)]
mod tests;

pub use config::BottleneckConfig;
pub use detect::{detect, Gauges, PoolGauge, RunningAttempt, Signal, StarvedClass};
pub use hysteresis::Hysteresis;
pub use keyed::Keyed;
pub use stats::{Outcome, Stats, StepFacts, StepIds, SubjectStats};
pub use window::{Bucket, Hist, Rolling};

use crate::domain::events::{BottleneckKind, SubjectType};

/// The stable key of a finding: `<kind>/<subject type>/<subject>`.
pub fn finding_key(kind: BottleneckKind, subject_type: SubjectType, subject: &str) -> String {
    format!(
        "{}/{}/{subject}",
        kind_name(kind),
        subject_type_name(subject_type)
    )
}

pub fn kind_name(kind: BottleneckKind) -> &'static str {
    match kind {
        BottleneckKind::Saturation => "saturation",
        BottleneckKind::QueueBacklog => "queue_backlog",
        BottleneckKind::SlowStep => "slow_step",
        BottleneckKind::SlowAgent => "slow_agent",
        BottleneckKind::FailingStep => "failing_step",
        BottleneckKind::FailingAgent => "failing_agent",
        BottleneckKind::StarvedCapability => "starved_capability",
        BottleneckKind::StuckStep => "stuck_step",
    }
}

pub fn subject_type_name(t: SubjectType) -> &'static str {
    match t {
        SubjectType::Pool => "pool",
        SubjectType::Capability => "capability",
        SubjectType::Agent => "agent",
        SubjectType::StepKind => "step_kind",
    }
}

/// Severity from a detector's ratio (observed ÷ threshold): 50 at the
/// threshold, 100 at twice it, never below 1.
pub fn severity(ratio: f64) -> i32 {
    if !ratio.is_finite() {
        return 100;
    }
    (50.0 * ratio).round().clamp(1.0, 100.0) as i32
}
