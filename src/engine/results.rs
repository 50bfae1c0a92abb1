//! Which result messages a journal fact publishes, and where (pure).
//! Results carry ids derived from their fact, so a re-publication after a
//! crash is recognisable as the same message.

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
            previous: None,
            reason,
            usage,
        }),
    }
}

/// The result messages of one fact.
pub fn results_for(fact: &Envelope, topics: &Topics) -> Option<ResultMessage> {
    use Payload as P;
    use WorkflowStatus as S;
    let status = |id: &str, s: S, reason: Option<String>, usage: Usage| {
        Some((
            topics.status(),
            id.to_string(),
            ResultBody::Derived(Box::new(status_change(fact, id, s, reason, usage))),
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
