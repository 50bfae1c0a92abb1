//! Checks every ingress input passes before `decide` looks at state: the
//! bounds of `events::bounds` (identifier lengths, duration ranges, usage
//! figures). A failed check is a [`Rejection`]: the input goes to the
//! dead-letter topic and nothing changes. Definitions are checked further
//! by `workflow::validate` (a bad definition is a `WorkflowRejected`
//! fact, whose ids this check has already bounded). Also the check every
//! step report passes (a known, unfinished workflow and step, the current
//! attempt, held by the reporting agent).

use std::sync::Arc;

use super::decide::{reject, Rejection};
use super::state::PartitionState;
use crate::domain::events::*;

fn id(what: &str, value: &str) -> Result<(), Rejection> {
    check_id(what, value).map_err(|m| reject("invalid_id", m))
}

fn ids<'a>(what: &str, values: impl IntoIterator<Item = &'a String>) -> Result<(), Rejection> {
    values.into_iter().try_for_each(|v| id(what, v))
}

fn report(workflow_id: &str, step_id: &str, agent_id: &str) -> Result<(), Rejection> {
    id("workflow_id", workflow_id)?;
    id("step_id", step_id)?;
    id("agent_id", agent_id)
}

/// Why `input` is refused before any rule runs, if it is.
pub(crate) fn check_input(input: &Envelope) -> Result<(), Rejection> {
    use Payload as P;
    match &input.payload {
        P::SubmitWorkflow(s) => {
            id("workflow_id", &s.workflow_id)?;
            for step in s.definition.steps.iter() {
                id("step id", &step.id)?;
                ids("depends_on", &step.depends_on)?;
                ids("capability", &step.capabilities)?;
                if let Some(k) = &step.kind {
                    id("kind", k)?;
                }
                if let Some(p) = &step.pool {
                    id("pool", p)?;
                }
            }
            Ok(())
        }
        P::CancelWorkflow(c) => id("workflow_id", &c.workflow_id),
        P::RegisterAgent(r) => {
            id("agent_id", &r.agent_id)?;
            id("pool", &r.pool)?;
            ids("capability", &r.capabilities)?;
            check_duration_ms("heartbeat_interval_ms", r.heartbeat_interval_ms, 1)
                .map_err(|m| reject("invalid_agent", m))
        }
        P::AgentHeartbeat(h) => {
            id("agent_id", &h.agent_id)?;
            if h.in_flight < 0
                || h.memory_bytes.is_some_and(|m| m < 0)
                || h.cpu.is_some_and(|c| !c.is_finite() || c < 0.0)
            {
                return Err(reject(
                    "invalid_value",
                    format!(
                        "AgentHeartbeat figures must be finite and non-negative (in_flight {}, cpu {:?}, memory_bytes {:?})",
                        h.in_flight, h.cpu, h.memory_bytes
                    ),
                ));
            }
            Ok(())
        }
        P::DeregisterAgent(d) => id("agent_id", &d.agent_id),
        P::StepStarted(r) => report(&r.workflow_id, &r.step_id, &r.agent_id),
        P::StepSucceeded(r) => {
            report(&r.workflow_id, &r.step_id, &r.agent_id)?;
            check_usage(&r.usage).map_err(|m| reject("invalid_usage", m))
        }
        P::StepFailed(r) => report(&r.workflow_id, &r.step_id, &r.agent_id),
        P::StepDeclined(r) => report(&r.workflow_id, &r.step_id, &r.agent_id),
        P::AgentHealthChanged(c) => id("agent_id", &c.agent_id),
        P::AgentLost(l) => id("agent_id", &l.agent_id),
        // Other types are refused by `decide` as `not_ingress`.
        _ => Ok(()),
    }
}

impl PartitionState {
    /// A report must name a known, unfinished workflow and step, the current
    /// attempt, and the agent holding it.
    pub(crate) fn check_report(
        &self,
        workflow_id: &str,
        step_id: &str,
        attempt: i32,
        agent_id: &str,
    ) -> Result<(Arc<WorkflowDefinition>, usize), Rejection> {
        let Some(wf) = self.workflows.get(workflow_id) else {
            return Err(reject(
                "unknown_workflow",
                format!("no workflow `{workflow_id}` in this partition"),
            ));
        };
        if wf.is_terminal() {
            return Err(reject(
                "workflow_finished",
                format!(
                    "workflow `{workflow_id}` already finished ({:?})",
                    wf.status
                ),
            ));
        }
        let Some(i) = wf.step_index(step_id) else {
            return Err(reject(
                "unknown_step",
                format!("workflow `{workflow_id}` has no step `{step_id}`"),
            ));
        };
        if self
            .agents
            .get(agent_id)
            .is_some_and(|a| a.health == AgentHealth::Lost)
        {
            return Err(reject(
                "agent_lost",
                format!("agent `{agent_id}` was declared lost; its steps were re-queued"),
            ));
        }
        let s = &wf.steps[i];
        if !s.status.is_held() || s.attempt != attempt || s.agent.as_deref() != Some(agent_id) {
            return Err(reject(
                "not_holder",
                format!(
                    "step `{step_id}` attempt {attempt} is not held by `{agent_id}` (current: attempt {} {:?}, agent {})",
                    s.attempt,
                    s.status,
                    s.agent.as_deref().unwrap_or("none")
                ),
            ));
        }
        Ok((wf.definition.clone(), i))
    }
}
