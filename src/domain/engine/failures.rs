//! Failure paths of the partition decider: retry or exhaust after a failed
//! attempt, fail a workflow on upstream exhaustion, and cancel (on request,
//! on failure, on deadline). Same contract as `decide.rs`: facts are emitted
//! and evolved one by one; nothing changes state directly.

use super::decide::{backoff_ms, reject, Ctx, Rejection};
use super::state::{PartitionState, StepStatus};
use crate::domain::events::*;

impl PartitionState {
    /// After a failed or timed-out attempt: retry per policy, or exhaust.
    pub(crate) fn after_failure(
        &mut self,
        ctx: &mut Ctx,
        workflow_id: &str,
        i: usize,
        attempt: i32,
        retryable: bool,
        error: &str,
    ) {
        let Some(wf) = self.workflows.get(workflow_id) else {
            return;
        };
        let def = &wf.definition.steps[i];
        let step_id = def.id.clone();
        let retry = def.retry.clone();
        match retry {
            Some(policy) if retryable && attempt < policy.max_attempts => {
                let delay_ms = backoff_ms(&policy, attempt);
                let fact = RetryScheduled {
                    workflow_id: workflow_id.into(),
                    step_id,
                    attempt,
                    next_attempt: attempt.saturating_add(1),
                    due_at: Timestamp(ctx.now.0.saturating_add(delay_ms.saturating_mul(1000))),
                    delay_ms,
                    reason: error.to_string(),
                };
                self.emit(ctx, fact);
            }
            _ => {
                let last_error = error.to_string();
                self.emit(
                    ctx,
                    StepExhausted {
                        workflow_id: workflow_id.into(),
                        step_id: step_id.clone(),
                        attempts: attempt,
                        last_error,
                    },
                );
                let reason =
                    format!("step `{step_id}` exhausted after {attempt} attempt(s): {error}");
                self.fail_workflow(ctx, workflow_id, &step_id, &reason);
            }
        }
    }

    /// Upstream exhaustion: skip what can no longer run, cancel what is
    /// active, fail the workflow.
    pub(crate) fn fail_workflow(
        &mut self,
        ctx: &mut Ctx,
        workflow_id: &str,
        step_id: &str,
        reason: &str,
    ) {
        let Some(wf) = self.workflows.get(workflow_id) else {
            return;
        };
        let pending: Vec<String> = wf
            .definition
            .steps
            .iter()
            .zip(&wf.steps)
            .filter(|(_, s)| s.status == StepStatus::Pending)
            .map(|(d, _)| d.id.clone())
            .collect();
        for id in pending {
            let reason = format!("upstream step `{step_id}` exhausted");
            self.emit(
                ctx,
                StepSkipped {
                    workflow_id: workflow_id.into(),
                    step_id: id,
                    reason,
                },
            );
        }
        self.cancel_active(ctx, workflow_id, "workflow failed");
        let fact = WorkflowFailed {
            workflow_id: workflow_id.into(),
            step_id: Some(step_id.into()),
            reason: reason.into(),
        };
        self.emit(ctx, fact);
    }

    /// Cancels every ready, retrying or held step (held ones tell their agent).
    pub(crate) fn cancel_active(&mut self, ctx: &mut Ctx, workflow_id: &str, reason: &str) {
        let Some(wf) = self.workflows.get(workflow_id) else {
            return;
        };
        let active: Vec<StepCancelled> = wf
            .definition
            .steps
            .iter()
            .zip(&wf.steps)
            .filter(|(_, s)| {
                matches!(s.status, StepStatus::Ready | StepStatus::RetryScheduled)
                    || s.status.is_held()
            })
            .map(|(d, s)| StepCancelled {
                workflow_id: workflow_id.into(),
                step_id: d.id.clone(),
                attempt: s.attempt,
                agent_id: if s.status.is_held() {
                    s.agent.clone()
                } else {
                    None
                },
                reason: reason.into(),
            })
            .collect();
        for fact in active {
            self.emit(ctx, fact);
        }
    }

    pub(crate) fn cancel(&mut self, ctx: &mut Ctx, c: &CancelWorkflow) -> Result<(), Rejection> {
        let Some(wf) = self.workflows.get(&c.workflow_id) else {
            return Err(reject(
                "unknown_workflow",
                format!("no workflow `{}` in this partition", c.workflow_id),
            ));
        };
        if wf.is_terminal() {
            return Err(reject(
                "workflow_finished",
                format!(
                    "workflow `{}` already finished ({:?})",
                    c.workflow_id, wf.status
                ),
            ));
        }
        let reason = c
            .reason
            .clone()
            .unwrap_or_else(|| "cancelled on request".into());
        self.cancel_active(ctx, &c.workflow_id, &reason);
        self.emit(
            ctx,
            WorkflowCancelled {
                workflow_id: c.workflow_id.clone(),
                reason,
            },
        );
        Ok(())
    }
}
