//! `evolve`: applies one journal fact to the partition state. The only code
//! that changes state; replay is a loop over it. It trusts facts (they were
//! validated by `decide` when written) but never panics on odd ones: a fact
//! about an unknown workflow or step is ignored.

use super::observe::{subject_ids, whole_ms};
use super::state::{PartitionState, StepStatus, WorkflowState};
use super::timers::TimerKey;
use crate::domain::bottleneck::Outcome;
use crate::domain::events::*;
use crate::domain::scheduler::{ReadyStep, StepKey};

fn ms_between(from: Option<Timestamp>, to: Timestamp) -> f64 {
    from.map_or(0.0, |f| to.0.saturating_sub(f.0).max(0) as f64 / 1000.0)
}

impl PartitionState {
    /// Applies one journal fact.
    pub fn evolve(&mut self, e: &Envelope) {
        if let Some(c) = e.causation_id {
            self.remember(c);
        }
        self.facts_folded += 1;
        self.observe(e);
        let now = e.occurred_at;
        use Payload as P;
        match &e.payload {
            P::WorkflowAccepted(a) => {
                let dag = match self.validated.take() {
                    Some((id, dag)) if id == a.workflow_id => dag,
                    _ => match self.dags.validate(&a.definition) {
                        Some(dag) => dag,
                        None => return,
                    },
                };
                let seq = self.next_seq;
                self.next_seq += 1;
                let wf = WorkflowState::new(
                    a.workflow_id.clone(),
                    a.definition.clone(),
                    dag,
                    now,
                    a.deadline_at,
                    seq,
                );
                if let Some(d) = a.deadline_at {
                    self.timers.insert((
                        d,
                        TimerKey::Deadline {
                            workflow_id: a.workflow_id.clone(),
                        },
                    ));
                }
                self.workflows.insert(a.workflow_id.clone(), wf);
                self.mark_dirty(&a.workflow_id);
            }
            P::WorkflowQueued(q) => {
                if let Some(wf) = self.workflows.get(&q.workflow_id) {
                    self.admission.insert((
                        wf.definition.priority.saturating_neg(),
                        wf.seq,
                        wf.id.clone(),
                    ));
                }
            }
            P::WorkflowStarted(s) => {
                let Some(wf) = self.workflows.get_mut(&s.workflow_id) else {
                    return;
                };
                self.admission.remove(&(
                    wf.definition.priority.saturating_neg(),
                    wf.seq,
                    wf.id.clone(),
                ));
                wf.status = WorkflowStatus::Running;
                wf.started_at = Some(now);
                self.running += 1;
                self.mark_dirty(&s.workflow_id);
            }
            P::StepReady(r) => self.on_ready(&r.workflow_id, &r.step_id, r.attempt, now),
            P::StepAssigned(a) => {
                // Readied and assigned in one decision: the StepReady was
                // not journalled (see `Ctx::finish`), the assignment implies it.
                let ready = self
                    .workflows
                    .get(&a.workflow_id)
                    .and_then(|w| w.step_index(&a.step_id).map(|i| w.steps[i].status));
                if ready.is_some_and(|s| s != StepStatus::Ready) {
                    self.on_ready(&a.workflow_id, &a.step_id, a.attempt, now);
                }
                let Some(wf) = self.workflows.get_mut(&a.workflow_id) else {
                    return;
                };
                let Some(i) = wf.step_index(&a.step_id) else {
                    return;
                };
                if self.config.bottleneck.enabled {
                    // Ready since `ready_at` (set just now when readied by
                    // this assignment, so the wait is 0).
                    let wait = whole_ms(wf.steps[i].ready_at, now);
                    if let Some(ids) = subject_ids(wf, &mut self.bottlenecks).get(i) {
                        self.bottlenecks.assigned_of(now, ids, &a.agent_id, wait);
                    }
                }
                let s = &mut wf.steps[i];
                s.status = StepStatus::Assigned;
                s.attempt = a.attempt;
                s.agent = Some(a.agent_id.clone());
                s.assigned_at = Some(now);
                s.timeout_at = a.timeout_at;
                if let Some(t) = a.timeout_at.filter(|_| self.timers.is_on()) {
                    self.timers.insert((
                        t,
                        TimerKey::StepTimeout {
                            workflow_id: a.workflow_id.clone(),
                            step: i,
                            attempt: a.attempt,
                        },
                    ));
                }
                if self.scheduler.is_on() {
                    let key = StepKey {
                        workflow_id: a.workflow_id.clone(),
                        step_id: a.step_id.clone(),
                        attempt: a.attempt,
                    };
                    self.scheduler.apply_assignment(&key, &a.agent_id);
                }
                self.mark_dirty(&a.workflow_id);
            }
            P::StepStarted(r) => {
                if let Some(s) = self.step_mut(&r.workflow_id, &r.step_id) {
                    s.status = StepStatus::Running;
                    s.started_at = Some(now);
                }
            }
            P::StepSucceeded(r) => {
                let Some((i, pool)) = self.end_attempt(&r.workflow_id, &r.step_id, now) else {
                    return;
                };
                self.observe_ended(
                    &r.workflow_id,
                    i,
                    Some(&r.agent_id),
                    now,
                    Outcome::Succeeded,
                    Some(&r.usage),
                );
                let latency = {
                    let wf = &self.workflows[&r.workflow_id];
                    ms_between(wf.steps[i].assigned_at, now)
                };
                if let Some(wf) = self.workflows.get_mut(&r.workflow_id) {
                    let s = &mut wf.steps[i];
                    s.status = StepStatus::Succeeded;
                    s.output = r.output.clone();
                    s.usage.add(&r.usage);
                    wf.usage.add(&r.usage);
                }
                self.pool_usage.entry(pool).or_default().add(&r.usage);
                if let Some(agent) = self.agents.get_mut(&r.agent_id) {
                    agent.usage.add(&r.usage);
                    agent.successes += 1;
                    agent.ewma_latency_ms = if agent.successes + agent.failures == 1 {
                        latency
                    } else {
                        0.8 * agent.ewma_latency_ms + 0.2 * latency
                    };
                    self.dirty_agents.insert(r.agent_id.clone());
                }
                self.scheduler.release(&r.agent_id);
                self.scheduler.record_outcome(&r.agent_id, true, latency);
                self.clear_saturated(&r.agent_id);
            }
            P::StepFailed(r) => self.on_attempt_failed(
                &r.workflow_id,
                &r.step_id,
                Some(&r.agent_id),
                &r.error,
                now,
                Outcome::Failed,
            ),
            P::StepTimedOut(t) => {
                let error = format!("timed out after {} ms", t.timeout_ms);
                self.on_attempt_failed(
                    &t.workflow_id,
                    &t.step_id,
                    t.agent_id.as_deref(),
                    &error,
                    now,
                    Outcome::TimedOut,
                )
            }
            P::StepRejectedByAgent(r) => {
                let Some((i, _)) = self.end_attempt(&r.workflow_id, &r.step_id, now) else {
                    return;
                };
                self.observe_requeued(&r.workflow_id, i, now);
                self.scheduler.release(&r.agent_id);
                self.mark_saturated(&r.agent_id);
                self.enqueue_ready(&r.workflow_id, &r.step_id, r.attempt, now, false);
            }
            P::RetryScheduled(r) => {
                let Some(wf) = self.workflows.get_mut(&r.workflow_id) else {
                    return;
                };
                let Some(i) = wf.step_index(&r.step_id) else {
                    return;
                };
                wf.steps[i].status = StepStatus::RetryScheduled;
                wf.steps[i].retry_at = Some(r.due_at);
                self.timers.insert((
                    r.due_at,
                    TimerKey::Retry {
                        workflow_id: r.workflow_id.clone(),
                        step: i,
                        attempt: r.next_attempt,
                    },
                ));
                self.mark_dirty(&r.workflow_id);
            }
            P::StepExhausted(x) => {
                if let Some(s) = self.step_mut(&x.workflow_id, &x.step_id) {
                    s.status = StepStatus::Exhausted;
                    s.last_error = Some(x.last_error.clone());
                    s.finished_at = Some(now);
                }
            }
            P::StepSkipped(x) => {
                if let Some(s) = self.step_mut(&x.workflow_id, &x.step_id) {
                    s.status = StepStatus::Skipped;
                    s.condition_false = x.reason.starts_with("condition ");
                    s.last_error = Some(x.reason.clone());
                    s.finished_at = Some(now);
                }
            }
            P::StepCancelled(c) => self.on_cancelled(c, now),
            P::WorkflowSucceeded(x) => {
                self.finish(&x.workflow_id, WorkflowStatus::Succeeded, None, now)
            }
            P::WorkflowFailed(x) => self.finish(
                &x.workflow_id,
                WorkflowStatus::Failed,
                Some(x.reason.clone()),
                now,
            ),
            P::WorkflowCancelled(x) => self.finish(
                &x.workflow_id,
                WorkflowStatus::Cancelled,
                Some(x.reason.clone()),
                now,
            ),
            P::WorkflowTimedOut(x) => self.finish(
                &x.workflow_id,
                WorkflowStatus::TimedOut,
                Some("deadline passed".into()),
                now,
            ),
            P::AgentRegistered(_)
            | P::AgentDeregistered(_)
            | P::AgentHeartbeat(_)
            | P::AgentHealthChanged(_)
            | P::AgentLost(_) => self.evolve_agent(e),
            _ => {}
        }
    }

    fn step_mut(
        &mut self,
        workflow_id: &str,
        step_id: &str,
    ) -> Option<&mut super::state::StepState> {
        // One lookup of the workflow (the fields are borrowed apart rather
        // than through `mark_dirty`): this runs for most facts.
        let wf = self.workflows.get_mut(workflow_id)?;
        let i = wf.step_index(step_id)?;
        if !self.dirty_workflows.contains(workflow_id) {
            self.dirty_workflows.insert(workflow_id.to_string());
        }
        wf.steps.get_mut(i)
    }

    /// A step attempt enters its pool's queue as new demand (first
    /// readiness or a retry).
    pub(crate) fn on_ready(
        &mut self,
        workflow_id: &str,
        step_id: &str,
        attempt: i32,
        now: Timestamp,
    ) {
        self.enqueue_ready(workflow_id, step_id, attempt, now, true);
    }

    /// Queues a ready attempt; `demand` is false for a requeue (declined, or
    /// its agent was lost, or rebuilt after a restart), which is the same
    /// work again and must not count as an arrival.
    pub(crate) fn enqueue_ready(
        &mut self,
        workflow_id: &str,
        step_id: &str,
        attempt: i32,
        now: Timestamp,
        demand: bool,
    ) {
        let seq = self.next_ready_seq;
        let Some(wf) = self.workflows.get_mut(workflow_id) else {
            return;
        };
        let Some(i) = wf.step_index(step_id) else {
            return;
        };
        if demand && self.config.bottleneck.enabled {
            if let Some(ids) = subject_ids(wf, &mut self.bottlenecks).get(i) {
                self.bottlenecks.arrival_of(now, ids);
            }
        }
        let def = &wf.definition.steps[i];
        let s = &mut wf.steps[i];
        s.status = StepStatus::Ready;
        s.attempt = attempt;
        s.agent = None;
        s.ready_at = Some(now);
        // A new attempt starts clean: keeping the previous attempt's times
        // made its run time negative (finished before it started).
        s.assigned_at = None;
        s.started_at = None;
        s.finished_at = None;
        if let Some(t) = s.retry_at.take() {
            // The retry timer fired (live) or is consumed by this fact (replay).
            self.timers.remove(&(
                t,
                TimerKey::Retry {
                    workflow_id: workflow_id.to_string(),
                    step: i,
                    attempt,
                },
            ));
        }
        if self.scheduler.is_on() {
            let ready = ReadyStep {
                key: StepKey {
                    workflow_id: workflow_id.to_string(),
                    step_id: step_id.to_string(),
                    attempt,
                },
                pool: def.pool.clone().unwrap_or_else(|| "default".into()),
                capabilities: def.capabilities.clone(),
                priority: wf.definition.priority.saturating_add(def.priority),
                ready_seq: seq,
            };
            self.scheduler.enqueue(ready);
        }
        self.next_ready_seq += 1;
        self.mark_dirty(workflow_id);
    }

    /// Ends a held attempt: clears its timeout timer. Returns the step index and pool.
    fn end_attempt(
        &mut self,
        workflow_id: &str,
        step_id: &str,
        now: Timestamp,
    ) -> Option<(usize, String)> {
        let wf = self.workflows.get_mut(workflow_id)?;
        let i = wf.step_index(step_id)?;
        let pool = wf.definition.steps[i]
            .pool
            .clone()
            .unwrap_or_else(|| "default".into());
        let s = &mut wf.steps[i];
        if let Some(t) = s.timeout_at.take().filter(|_| self.timers.is_on()) {
            self.timers.remove(&(
                t,
                TimerKey::StepTimeout {
                    workflow_id: workflow_id.to_string(),
                    step: i,
                    attempt: s.attempt,
                },
            ));
        }
        s.finished_at = Some(now);
        self.mark_dirty(workflow_id);
        Some((i, pool))
    }

    fn on_attempt_failed(
        &mut self,
        workflow_id: &str,
        step_id: &str,
        agent: Option<&str>,
        error: &str,
        now: Timestamp,
        outcome: Outcome,
    ) {
        let Some((i, _)) = self.end_attempt(workflow_id, step_id, now) else {
            return;
        };
        self.observe_ended(workflow_id, i, agent, now, outcome, None);
        if let Some(wf) = self.workflows.get_mut(workflow_id) {
            wf.steps[i].status = StepStatus::Failed;
            wf.steps[i].last_error = Some(error.to_string());
        }
        if let Some(agent_id) = agent {
            let latency = ms_between(
                self.workflows
                    .get(workflow_id)
                    .and_then(|w| w.steps[i].assigned_at),
                now,
            );
            if let Some(a) = self.agents.get_mut(agent_id) {
                a.failures += 1;
                self.dirty_agents.insert(agent_id.to_string());
            }
            self.scheduler.release(agent_id);
            self.scheduler.record_outcome(agent_id, false, latency);
            self.clear_saturated(agent_id);
        }
    }

    fn on_cancelled(&mut self, c: &StepCancelled, now: Timestamp) {
        let Some(wf) = self.workflows.get(&c.workflow_id) else {
            return;
        };
        let Some(i) = wf.step_index(&c.step_id) else {
            return;
        };
        let status = wf.steps[i].status;
        let key = StepKey {
            workflow_id: c.workflow_id.clone(),
            step_id: c.step_id.clone(),
            attempt: c.attempt,
        };
        if status.is_held() {
            self.end_attempt(&c.workflow_id, &c.step_id, now);
            if let Some(agent) = &c.agent_id {
                self.scheduler.release(agent);
            }
        } else if status == StepStatus::Ready {
            self.scheduler.dequeue(&key);
        } else if status == StepStatus::RetryScheduled {
            if let Some(t) = wf.steps[i].retry_at {
                self.timers.remove(&(
                    t,
                    TimerKey::Retry {
                        workflow_id: c.workflow_id.clone(),
                        step: i,
                        attempt: c.attempt.saturating_add(1),
                    },
                ));
            }
        }
        if let Some(s) = self.step_mut(&c.workflow_id, &c.step_id) {
            s.status = StepStatus::Cancelled;
            s.finished_at = Some(now);
        }
    }

    fn finish(
        &mut self,
        workflow_id: &str,
        status: WorkflowStatus,
        reason: Option<String>,
        now: Timestamp,
    ) {
        let Some(wf) = self.workflows.get_mut(workflow_id) else {
            return;
        };
        match wf.status {
            WorkflowStatus::Running => self.running = self.running.saturating_sub(1),
            WorkflowStatus::Queued => {
                self.admission.remove(&(
                    wf.definition.priority.saturating_neg(),
                    wf.seq,
                    wf.id.clone(),
                ));
            }
            _ => {}
        }
        if let Some(d) = wf.deadline_at {
            self.timers.remove(&(
                d,
                TimerKey::Deadline {
                    workflow_id: workflow_id.to_string(),
                },
            ));
        }
        for s in wf.steps.iter_mut().filter(|s| !s.status.is_terminal()) {
            s.status = StepStatus::Cancelled;
        }
        wf.status = status;
        wf.reason = reason;
        wf.finished_at = Some(now);
        self.mark_dirty(workflow_id);
    }
}
