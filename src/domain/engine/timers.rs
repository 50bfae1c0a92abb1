//! Timers are state: an index of (due time, key) derived from facts
//! (assignment timeouts, retry due times, workflow deadlines, heartbeat
//! expiry). The engine fires due timers through `tick(now)`; the facts they
//! produce go to the journal like any other, so replay never reads a clock.
//! A timer whose subject moved on (the attempt finished, the agent sent a
//! heartbeat) is simply stale and fires nothing. Timers that judge missing
//! reports (heartbeats, step timeouts, deadlines) fire against the time up
//! to which ingress is known to be read, not the wall clock: an engine that
//! lags behind its ingress must not declare an agent lost, or a step timed
//! out, whose reports are waiting unread.

use uuid::Uuid;

use crate::domain::events::{EventId, Timestamp};

/// What a timer is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKey {
    StepTimeout {
        workflow_id: String,
        step: usize,
        attempt: i32,
    },
    Retry {
        workflow_id: String,
        step: usize,
        attempt: i32,
    },
    Deadline {
        workflow_id: String,
    },
    Heartbeat {
        agent_id: String,
    },
}

/// Namespace for the ids of timer-caused facts.
const TIMER_NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_5a7e_2b0d_4c8e_9f31_0a5b_7d2e_4c10);

impl TimerKey {
    /// Timers that judge the *absence* of a report (a heartbeat, a step's
    /// result, a workflow's completion by its deadline) may only fire once
    /// every report up to their due time has been read (see
    /// `PartitionState::tick_heard`). Retry timers only schedule.
    pub fn judges_reports(&self) -> bool {
        !matches!(self, TimerKey::Retry { .. })
    }

    /// A deterministic id for "this timer fired at `due`", the causation of
    /// the facts it produces (and what makes re-firing after a crash a no-op).
    pub fn cause_id(&self, due: Timestamp) -> EventId {
        EventId(Uuid::new_v5(
            &TIMER_NAMESPACE,
            format!("{self:?}@{}", due.0).as_bytes(),
        ))
    }
}
