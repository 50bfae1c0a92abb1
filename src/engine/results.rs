//! Which result messages a journal fact publishes, and where (pure).
//! Results carry ids derived from their fact, so a re-publication after a
//! crash is recognisable as the same message.
//!
//! A status change names the status it leaves (`previous`): the status
//! published before it, known from the earlier facts of the batch or, for
//! the first change of a workflow in a batch, from the fact kind and the
//! folded state (see [`PreviousStatus`]).

use std::collections::HashMap;

use crate::domain::events::*;
use crate::topics::Topics;

/// What a result message carries.
pub enum ResultBody {
    /// The fact itself, unchanged (its journal encoding can be reused).
    Fact,
    /// A message derived from the fact.
    Derived(Box<Envelope>),
}

/// A message for a result topic: topic, key, body.
pub type ResultMessage = (String, String, ResultBody);

fn status_change(
    fact: &Envelope,
    workflow_id: &str,
    status: WorkflowStatus,
    previous: Option<WorkflowStatus>,
    reason: Option<String>,
    usage: Usage,
) -> Envelope {
    Envelope {
        event_id: EventId::derived(&fact.event_id, 0),
        correlation_id: workflow_id.to_string(),
        causation_id: Some(fact.event_id),
        occurred_at: fact.occurred_at,
        producer: fact.producer.clone(),
        payload: Payload::WorkflowStatusChanged(WorkflowStatusChanged {
            workflow_id: workflow_id.to_string(),
            status,
            previous,
            reason,
            usage,
        }),
    }
}

/// The workflow status a fact publishes, if it publishes one.
fn published_status(payload: &Payload) -> Option<(&str, WorkflowStatus)> {
    use Payload as P;
    use WorkflowStatus as S;
    Some(match payload {
        P::WorkflowQueued(x) => (&x.workflow_id, S::Queued),
        P::WorkflowStarted(x) => (&x.workflow_id, S::Running),
        P::WorkflowSucceeded(x) => (&x.workflow_id, S::Succeeded),
        P::WorkflowFailed(x) => (&x.workflow_id, S::Failed),
        P::WorkflowCancelled(x) => (&x.workflow_id, S::Cancelled),
        P::WorkflowTimedOut(x) => (&x.workflow_id, S::TimedOut),
        P::WorkflowRejected(x) => (&x.workflow_id, S::Failed),
        _ => return None,
    })
}

/// The status each workflow of one batch last published, so that every
/// status change of the batch names the one before it. Feed it every
/// fact in journal order ([`PreviousStatus::observe`]).
#[derive(Default)]
pub struct PreviousStatus {
    /// `None`: accepted in this batch, no status published yet.
    seen: HashMap<String, Option<WorkflowStatus>>,
}

impl PreviousStatus {
    /// The status `fact` leaves, then records what it publishes.
    /// `started(id)` tells, from the state after the batch, whether a
    /// workflow first seen in this batch had started (`None`: unknown).
    pub fn observe(
        &mut self,
        fact: &Envelope,
        started: impl Fn(&str) -> Option<bool>,
    ) -> Option<WorkflowStatus> {
        use WorkflowStatus as S;
        if let Payload::WorkflowAccepted(a) = &fact.payload {
            self.seen.insert(a.workflow_id.clone(), None);
            return None;
        }
        let (id, status) = published_status(&fact.payload)?;
        let previous = match self.seen.get(id) {
            Some(p) => *p,
            None => match &fact.payload {
                // Accepted in an earlier batch, started now: by admission.
                Payload::WorkflowStarted(_) => Some(S::Queued),
                Payload::WorkflowQueued(_) | Payload::WorkflowRejected(_) => None,
                _ => match started(id) {
                    Some(true) => Some(S::Running),
                    Some(false) => Some(S::Queued),
                    None => None,
                },
            },
        };
        self.seen.insert(id.to_string(), Some(status));
        previous
    }
}

/// The result messages of one fact; `previous` is the status a status
/// change leaves (from [`PreviousStatus`]).
pub fn results_for(
    fact: &Envelope,
    topics: &Topics,
    previous: Option<WorkflowStatus>,
) -> Option<ResultMessage> {
    use Payload as P;
    use WorkflowStatus as S;
    let status = |id: &str, s: S, reason: Option<String>, usage: Usage| {
        Some((
            topics.status(),
            id.to_string(),
            ResultBody::Derived(Box::new(status_change(
                fact, id, s, previous, reason, usage,
            ))),
        ))
    };
    match &fact.payload {
        P::StepAssigned(a) => Some((topics.assignments(), a.agent_id.clone(), ResultBody::Fact)),
        P::StepCancelled(c) => c
            .agent_id
            .as_ref()
            .map(|agent| (topics.assignments(), agent.clone(), ResultBody::Fact)),
        P::WorkflowQueued(x) => status(&x.workflow_id, S::Queued, None, Usage::default()),
        P::WorkflowStarted(x) => status(&x.workflow_id, S::Running, None, Usage::default()),
        P::WorkflowSucceeded(x) => status(&x.workflow_id, S::Succeeded, None, x.usage.clone()),
        P::WorkflowFailed(x) => status(
            &x.workflow_id,
            S::Failed,
            Some(x.reason.clone()),
            Usage::default(),
        ),
        P::WorkflowCancelled(x) => status(
            &x.workflow_id,
            S::Cancelled,
            Some(x.reason.clone()),
            Usage::default(),
        ),
        P::WorkflowTimedOut(x) => status(
            &x.workflow_id,
            S::TimedOut,
            Some("deadline passed".into()),
            Usage::default(),
        ),
        P::WorkflowRejected(x) => status(
            &x.workflow_id,
            S::Failed,
            Some(format!("rejected ({}): {}", x.code, x.message)),
            Usage::default(),
        ),
        P::BottleneckDetected(b) => Some((topics.alerts(), b.key.clone(), ResultBody::Fact)),
        P::BottleneckResolved(b) => Some((topics.alerts(), b.key.clone(), ResultBody::Fact)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(payload: Payload) -> Envelope {
        Envelope {
            event_id: EventId(uuid::Uuid::nil()),
            correlation_id: "w".into(),
            causation_id: None,
            occurred_at: Timestamp(0),
            producer: "test".into(),
            payload,
        }
    }

    /// Given a batch that accepts, starts and finishes a workflow, then a
    /// later batch that admits a queued one, each change names the one before.
    #[test]
    fn status_changes_name_the_status_they_leave() {
        use WorkflowStatus as S;
        let id = || "w".to_string();
        let mut batch = PreviousStatus::default();
        let unknown = |_: &str| None;
        let accepted = fact(Payload::WorkflowAccepted(WorkflowAccepted {
            workflow_id: id(),
            definition: std::sync::Arc::new(crate::codec::samples::workflow_definition(1)),
            deadline_at: None,
        }));
        assert_eq!(batch.observe(&accepted, unknown), None);
        let started = fact(Payload::WorkflowStarted(WorkflowStarted {
            workflow_id: id(),
        }));
        assert_eq!(batch.observe(&started, unknown), None);
        let done = fact(Payload::WorkflowSucceeded(WorkflowSucceeded {
            workflow_id: id(),
            usage: Usage::default(),
        }));
        assert_eq!(batch.observe(&done, unknown), Some(S::Running));
        // A later batch: started by admission, then cancelled.
        let mut later = PreviousStatus::default();
        assert_eq!(later.observe(&started, unknown), Some(S::Queued));
        let mut other = PreviousStatus::default();
        let cancelled = fact(Payload::WorkflowCancelled(WorkflowCancelled {
            workflow_id: id(),
            reason: "stop".into(),
        }));
        assert_eq!(other.observe(&cancelled, |_| Some(false)), Some(S::Queued));
        let mut third = PreviousStatus::default();
        assert_eq!(third.observe(&cancelled, |_| Some(true)), Some(S::Running));
    }
}
