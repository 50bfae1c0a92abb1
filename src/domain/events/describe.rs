//! One-line, human descriptions of events and the agent and step they are
//! about: what audits and timelines print. Pure; no event is changed.

use super::Payload;

impl Payload {
    /// The agent this event is about or was written by, if any.
    pub fn agent_id(&self) -> Option<&str> {
        use Payload as P;
        match self {
            P::RegisterAgent(e) => Some(&e.agent_id),
            P::AgentHeartbeat(e) => Some(&e.agent_id),
            P::DeregisterAgent(e) => Some(&e.agent_id),
            P::StepStarted(e) => Some(&e.agent_id),
            P::StepSucceeded(e) => Some(&e.agent_id),
            P::StepFailed(e) => Some(&e.agent_id),
            P::StepDeclined(e) => Some(&e.agent_id),
            P::StepAssigned(e) => Some(&e.agent_id),
            P::StepRejectedByAgent(e) => Some(&e.agent_id),
            P::StepTimedOut(e) => e.agent_id.as_deref(),
            P::StepCancelled(e) => e.agent_id.as_deref(),
            P::AgentRegistered(e) => Some(&e.agent_id),
            P::AgentDeregistered(e) => Some(&e.agent_id),
            P::AgentHealthChanged(e) => Some(&e.agent_id),
            P::AgentLost(e) => Some(&e.agent_id),
            _ => None,
        }
    }

    /// The step and attempt this event is about, if any.
    pub fn step_attempt(&self) -> Option<(&str, i32)> {
        use Payload as P;
        match self {
            P::StepStarted(e) => Some((&e.step_id, e.attempt)),
            P::StepSucceeded(e) => Some((&e.step_id, e.attempt)),
            P::StepFailed(e) => Some((&e.step_id, e.attempt)),
            P::StepDeclined(e) => Some((&e.step_id, e.attempt)),
            P::StepReady(e) => Some((&e.step_id, e.attempt)),
            P::StepAssigned(e) => Some((&e.step_id, e.attempt)),
            P::StepRejectedByAgent(e) => Some((&e.step_id, e.attempt)),
            P::StepTimedOut(e) => Some((&e.step_id, e.attempt)),
            P::RetryScheduled(e) => Some((&e.step_id, e.attempt)),
            P::StepExhausted(e) => Some((&e.step_id, e.attempts)),
            P::StepCancelled(e) => Some((&e.step_id, e.attempt)),
            _ => None,
        }
    }

    /// A one-line description (ids of the correlation itself left out).
    pub fn summary(&self) -> String {
        use Payload as P;
        let agent = |a: &Option<String>| a.as_deref().unwrap_or("-").to_string();
        match self {
            P::SubmitWorkflow(e) => format!(
                "submit `{}` ({} steps, priority {})",
                e.definition.name,
                e.definition.steps.len(),
                e.definition.priority
            ),
            P::CancelWorkflow(e) => format!("cancel: {}", e.reason.as_deref().unwrap_or("-")),
            P::RegisterAgent(e) => format!(
                "register in pool `{}`, capacity {}, capabilities {:?}",
                e.pool, e.capacity, e.capabilities
            ),
            P::AgentHeartbeat(e) => format!("heartbeat, {} in flight", e.in_flight),
            P::DeregisterAgent(e) => {
                format!("deregister: {}", e.reason.as_deref().unwrap_or("-"))
            }
            P::StepStarted(e) => format!("{}#{} started on {}", e.step_id, e.attempt, e.agent_id),
            P::StepSucceeded(e) => format!(
                "{}#{} succeeded on {} ({} tokens in, {} out, cost {:.4})",
                e.step_id,
                e.attempt,
                e.agent_id,
                e.usage.tokens_in,
                e.usage.tokens_out,
                e.usage.cost
            ),
            P::StepFailed(e) => format!(
                "{}#{} failed on {}{}: {}",
                e.step_id,
                e.attempt,
                e.agent_id,
                if e.retryable { "" } else { " (not retryable)" },
                e.error
            ),
            P::StepDeclined(e) => format!(
                "{}#{} declined by {}: {}",
                e.step_id, e.attempt, e.agent_id, e.reason
            ),
            P::WorkflowAccepted(e) => format!(
                "accepted `{}` ({} steps{})",
                e.definition.name,
                e.definition.steps.len(),
                e.deadline_at
                    .map(|d| format!(", deadline {d}"))
                    .unwrap_or_default()
            ),
            P::WorkflowRejected(e) => format!("rejected ({}): {}", e.code, e.message),
            P::WorkflowQueued(e) => format!("queued: {} of {} running", e.running, e.limit),
            P::WorkflowStarted(_) => "started".into(),
            P::StepReady(e) => format!("{}#{} ready in pool `{}`", e.step_id, e.attempt, e.pool),
            P::StepAssigned(e) => format!(
                "{}#{} ({}) assigned to {} in pool `{}` by {:?}",
                e.step_id, e.attempt, e.kind, e.agent_id, e.pool, e.strategy
            ),
            P::StepRejectedByAgent(e) => format!(
                "{}#{} handed back by {}: {}",
                e.step_id, e.attempt, e.agent_id, e.reason
            ),
            P::StepTimedOut(e) => format!(
                "{}#{} timed out on {} after {} ms",
                e.step_id,
                e.attempt,
                agent(&e.agent_id),
                e.timeout_ms
            ),
            P::RetryScheduled(e) => format!(
                "{} retry as attempt {} in {} ms: {}",
                e.step_id, e.next_attempt, e.delay_ms, e.reason
            ),
            P::StepExhausted(e) => format!(
                "{} gave up after {} attempts: {}",
                e.step_id, e.attempts, e.last_error
            ),
            P::StepSkipped(e) => format!("{} skipped: {}", e.step_id, e.reason),
            P::StepCancelled(e) => format!(
                "{}#{} cancelled on {}: {}",
                e.step_id,
                e.attempt,
                agent(&e.agent_id),
                e.reason
            ),
            P::WorkflowSucceeded(e) => format!(
                "succeeded ({} tokens in, {} out, cost {:.4})",
                e.usage.tokens_in, e.usage.tokens_out, e.usage.cost
            ),
            P::WorkflowFailed(e) => format!(
                "failed{}: {}",
                e.step_id
                    .as_deref()
                    .map(|s| format!(" at {s}"))
                    .unwrap_or_default(),
                e.reason
            ),
            P::WorkflowCancelled(e) => format!("cancelled: {}", e.reason),
            P::WorkflowTimedOut(e) => format!("timed out (deadline {})", e.deadline_at),
            P::AgentRegistered(e) => format!(
                "registered in pool `{}`, capacity {}, capabilities {:?}",
                e.pool, e.capacity, e.capabilities
            ),
            P::AgentDeregistered(e) => {
                format!("deregistered: {}", e.reason.as_deref().unwrap_or("-"))
            }
            P::AgentHealthChanged(e) => {
                format!("health {:?} -> {:?}: {}", e.from, e.to, e.reason)
            }
            P::AgentLost(e) => format!(
                "lost (last heartbeat {}), {} steps requeued",
                e.last_heartbeat_at,
                e.requeued.len()
            ),
            P::BottleneckDetected(e) => format!(
                "{:?} on {} (severity {}): {}",
                e.kind, e.subject, e.severity, e.recommendation
            ),
            P::BottleneckResolved(e) => format!("{:?} on {} resolved", e.kind, e.subject),
            P::WorkflowStatusChanged(e) => format!("status {:?}", e.status),
            P::DeadLetter(e) => format!("dead letter ({}): {}", e.reason_code, e.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::events::*;

    #[test]
    fn step_events_name_their_step_agent_and_reason() {
        let p = Payload::StepFailed(StepFailed {
            workflow_id: "wf".into(),
            step_id: "fetch".into(),
            attempt: 2,
            agent_id: "agent-1".into(),
            error: "boom".into(),
            retryable: true,
        });
        assert_eq!(p.agent_id(), Some("agent-1"));
        assert_eq!(p.step_attempt(), Some(("fetch", 2)));
        assert_eq!(p.summary(), "fetch#2 failed on agent-1: boom");
    }
}
