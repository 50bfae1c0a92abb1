//! Recording from the engine's hot loop. Counts are aggregated per batch
//! (a handful of label values per batch) and handed to the recorder once,
//! so the per-event cost is an array scan, not a registry look-up.

use std::time::Duration;

use super::names::{self, Metric};
use crate::domain::events::{Envelope, Payload, Strategy};

/// Counts per static label value, for one batch. Label sets are tiny
/// (event types, statuses), so a linear scan beats hashing.
#[derive(Default)]
pub struct Tally {
    items: Vec<(&'static str, u64)>,
}

impl Tally {
    pub fn add(&mut self, label: &'static str, n: u64) {
        // Labels are `&'static str` constants, so the same label is almost
        // always the same pointer: compare that first.
        match self
            .items
            .iter_mut()
            .find(|(l, _)| std::ptr::eq(*l, label) || *l == label)
        {
            Some((_, c)) => *c += n,
            None => self.items.push((label, n)),
        }
    }

    /// Increments `metric` (one label, named `key`) by each count.
    pub fn emit(&self, metric: &Metric, key: &'static str) {
        for (label, n) in &self.items {
            metrics::counter!(metric.name, key => *label).increment(*n);
        }
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }
}

pub fn count(metric: &Metric, n: u64) {
    if n > 0 {
        metrics::counter!(metric.name).increment(n);
    }
}

pub fn count_labelled(metric: &Metric, key: &'static str, value: &'static str, n: u64) {
    metrics::counter!(metric.name, key => value).increment(n);
}

pub fn batch_durations(decode: Duration, fold: Duration) {
    metrics::histogram!(names::DECODE_DURATION.name).record(decode.as_secs_f64());
    metrics::histogram!(names::FOLD_DURATION.name).record(fold.as_secs_f64());
}

/// Decision latencies of one batch, microseconds.
pub fn decision_latencies(samples_us: &[u64]) {
    let h = metrics::histogram!(names::DECISION_LATENCY.name);
    for &us in samples_us {
        h.record(us as f64 / 1e6);
    }
}

fn strategy_label(s: Strategy) -> &'static str {
    match s {
        Strategy::RoundRobin => "round_robin",
        Strategy::LeastConnections => "least_connections",
        Strategy::Weighted => "weighted",
        Strategy::PerformanceBased => "performance_based",
    }
}

/// Per-batch counters derived from journal facts.
#[derive(Default)]
pub struct FactCounts {
    types: Tally,
    finished: Tally,
    strategies: Tally,
    retries: u64,
    timeouts: u64,
    agents_lost: u64,
    tokens_in: u64,
    tokens_out: u64,
}

impl FactCounts {
    pub fn add(&mut self, fact: &Envelope) {
        self.types.add(fact.payload.type_name(), 1);
        match &fact.payload {
            Payload::WorkflowSucceeded(_) => self.finished.add("succeeded", 1),
            Payload::WorkflowFailed(_) => self.finished.add("failed", 1),
            Payload::WorkflowCancelled(_) => self.finished.add("cancelled", 1),
            Payload::WorkflowTimedOut(_) => self.finished.add("timed_out", 1),
            Payload::WorkflowRejected(_) => self.finished.add("rejected", 1),
            Payload::StepAssigned(a) => self.strategies.add(strategy_label(a.strategy), 1),
            Payload::RetryScheduled(_) => self.retries += 1,
            Payload::StepTimedOut(_) => self.timeouts += 1,
            Payload::AgentLost(_) => self.agents_lost += 1,
            Payload::StepSucceeded(s) => self.usage(&s.usage),
            _ => {}
        }
    }

    fn usage(&mut self, u: &crate::domain::events::Usage) {
        self.tokens_in += u64::try_from(u.tokens_in).unwrap_or(0);
        self.tokens_out += u64::try_from(u.tokens_out).unwrap_or(0);
    }

    pub fn emit(&self) {
        self.types.emit(&names::JOURNAL_EVENTS, "type");
        self.finished.emit(&names::WORKFLOWS_FINISHED, "status");
        self.strategies.emit(&names::ASSIGNMENTS, "strategy");
        count(&names::RETRIES, self.retries);
        count(&names::STEP_TIMEOUTS, self.timeouts);
        count(&names::AGENTS_LOST, self.agents_lost);
        if self.tokens_in > 0 {
            count_labelled(&names::TOKENS, "direction", "in", self.tokens_in);
        }
        if self.tokens_out > 0 {
            count_labelled(&names::TOKENS, "direction", "out", self.tokens_out);
        }
    }
}
