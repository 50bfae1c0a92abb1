//! Agent rules: registration, heartbeats, draining, health (Healthy →
//! Degraded → Lost) and what losing an agent means for its steps. The
//! partition keeps its own view of every agent (an agent's lifecycle events
//! reach every partition: the agent's home partition forwards them, see
//! `engine::fanout`), and its scheduler's capacity accounting is exact
//! within the partition.

use super::decide::{reject, Ctx, Rejection};
use super::state::ENGINE_PRODUCER_PREFIX;
use super::state::{AgentView, PartitionState, StepStatus};
use super::timers::TimerKey;
use crate::domain::events::*;
use crate::domain::scheduler::{AgentSpec, StepKey};

/// Labels only the engine sets (see [`super::state::HOME_PARTITION_LABEL`]).
const RESERVED_LABEL_PREFIX: &str = "baton.";

impl PartitionState {
    /// When this agent's heartbeat timer is due, from its last heartbeat.
    fn heartbeat_due_at(&self, a: &AgentView) -> Timestamp {
        let factor = if a.health == AgentHealth::Healthy {
            self.config.degraded_after
        } else {
            self.config.lost_after
        };
        // Saturating (a float-to-int cast saturates too): an interval from
        // before the range check existed must not wrap into the past.
        let after_us = (a.heartbeat_interval_ms as f64 * factor * 1000.0) as i64;
        Timestamp(a.last_heartbeat_at.0.saturating_add(after_us.max(0)))
    }

    fn retime_heartbeat(&mut self, agent_id: &str, old: Option<Timestamp>) {
        let key = TimerKey::Heartbeat {
            agent_id: agent_id.to_string(),
        };
        if let Some(t) = old {
            self.timers.remove(&(t, key.clone()));
        }
        if let Some(a) = self.agents.get(agent_id) {
            // A forwarded agent's liveness is judged by its home partition.
            if a.health != AgentHealth::Lost && !a.forwarded() {
                let due = self.heartbeat_due_at(a);
                self.timers.insert((due, key));
            }
        }
    }

    /// `producer` is the input's: labels under `baton.` (the forwarding
    /// mark) are the engine's own, refused from anyone else.
    pub(crate) fn register(
        &mut self,
        ctx: &mut Ctx,
        r: &RegisterAgent,
        producer: &str,
    ) -> Result<(), Rejection> {
        let reserved = r
            .labels
            .keys()
            .any(|k| k.starts_with(RESERVED_LABEL_PREFIX))
            && !producer.starts_with(ENGINE_PRODUCER_PREFIX);
        let problem = if r.agent_id.is_empty() {
            Some("agent_id is empty")
        } else if r.pool.is_empty() {
            Some("pool is empty")
        } else if r.capacity < 1 {
            Some("capacity must be at least 1")
        } else if r.weight < 1 {
            Some("weight must be at least 1")
        } else if r.heartbeat_interval_ms < 1 {
            Some("heartbeat_interval_ms must be positive")
        } else if reserved {
            Some("labels under `baton.` are reserved for the engine")
        } else {
            None
        };
        if let Some(p) = problem {
            return Err(reject(
                "invalid_agent",
                format!("RegisterAgent `{}`: {p}", r.agent_id),
            ));
        }
        let fact = AgentRegistered {
            agent_id: r.agent_id.clone(),
            pool: r.pool.clone(),
            capabilities: r.capabilities.clone(),
            capacity: r.capacity,
            weight: r.weight,
            labels: r.labels.clone(),
            heartbeat_interval_ms: r.heartbeat_interval_ms,
        };
        self.emit(ctx, fact);
        Ok(())
    }

    fn known_agent(&self, agent_id: &str) -> Result<&AgentView, Rejection> {
        self.agents.get(agent_id).ok_or_else(|| {
            reject(
                "unknown_agent",
                format!("agent `{agent_id}` is not registered in this partition"),
            )
        })
    }

    pub(crate) fn heartbeat(&mut self, ctx: &mut Ctx, h: &AgentHeartbeat) -> Result<(), Rejection> {
        self.known_agent(&h.agent_id)?;
        self.emit(ctx, h.clone());
        let a = &self.agents[&h.agent_id];
        if a.forwarded() {
            // Its home partition judges its health and forwards the verdict.
            return Ok(());
        }
        let failing = a.successes + a.failures >= self.config.min_outcomes
            && a.error_rate() >= self.config.degraded_error_rate;
        let (from, to, reason) = match (a.health, failing) {
            (AgentHealth::Healthy, true) => (
                a.health,
                AgentHealth::Degraded,
                format!(
                    "error rate {:.0}% over {:.0}%",
                    a.error_rate() * 100.0,
                    self.config.degraded_error_rate * 100.0
                ),
            ),
            (AgentHealth::Degraded | AgentHealth::Lost, false) => (
                a.health,
                AgentHealth::Healthy,
                "heartbeat received".to_string(),
            ),
            (AgentHealth::Lost, true) => (
                a.health,
                AgentHealth::Degraded,
                "heartbeat received, error rate still high".to_string(),
            ),
            _ => return Ok(()),
        };
        self.emit(
            ctx,
            AgentHealthChanged {
                agent_id: h.agent_id.clone(),
                from,
                to,
                reason,
            },
        );
        Ok(())
    }

    /// A forwarded agent's view, or the rejection of a health verdict for
    /// an agent this partition judges itself.
    fn forwarded_agent(&self, agent_id: &str, what: &str) -> Result<&AgentView, Rejection> {
        let a = self.known_agent(agent_id)?;
        if !a.forwarded() {
            return Err(reject(
                "not_ingress",
                format!(
                    "{what} for agent `{agent_id}` is accepted on ingress only from the agent's \
                     home partition, and this partition judges that agent itself"
                ),
            ));
        }
        Ok(a)
    }

    /// The home partition's health verdict on a forwarded agent.
    pub(crate) fn forwarded_health(
        &mut self,
        ctx: &mut Ctx,
        c: &AgentHealthChanged,
    ) -> Result<(), Rejection> {
        let a = self.forwarded_agent(&c.agent_id, "AgentHealthChanged")?;
        if c.to == AgentHealth::Lost {
            return self.lose_forwarded(ctx, &c.agent_id);
        }
        if a.health == c.to {
            return Ok(());
        }
        let from = a.health;
        self.emit(
            ctx,
            AgentHealthChanged {
                agent_id: c.agent_id.clone(),
                from,
                to: c.to,
                reason: c.reason.clone(),
            },
        );
        Ok(())
    }

    /// The home partition lost a forwarded agent: so does this partition,
    /// re-queueing what the agent holds here.
    pub(crate) fn forwarded_loss(&mut self, ctx: &mut Ctx, l: &AgentLost) -> Result<(), Rejection> {
        self.lose_forwarded(ctx, &l.agent_id)
    }

    fn lose_forwarded(&mut self, ctx: &mut Ctx, agent_id: &str) -> Result<(), Rejection> {
        let a = self.forwarded_agent(agent_id, "AgentLost")?;
        if a.health != AgentHealth::Lost {
            let last_heartbeat_at = a.last_heartbeat_at;
            self.declare_lost(ctx, agent_id, last_heartbeat_at);
        }
        Ok(())
    }

    /// The agent is lost: what it holds in this partition is re-queued.
    fn declare_lost(&mut self, ctx: &mut Ctx, agent_id: &str, last_heartbeat_at: Timestamp) {
        let requeued = self.held_by(agent_id);
        self.emit(
            ctx,
            AgentLost {
                agent_id: agent_id.into(),
                last_heartbeat_at,
                requeued,
            },
        );
    }

    pub(crate) fn deregister(
        &mut self,
        ctx: &mut Ctx,
        d: &DeregisterAgent,
    ) -> Result<(), Rejection> {
        self.known_agent(&d.agent_id)?;
        self.emit(
            ctx,
            AgentDeregistered {
                agent_id: d.agent_id.clone(),
                reason: d.reason.clone(),
            },
        );
        Ok(())
    }

    /// The heartbeat timer fired: degrade, or declare the agent lost and
    /// re-queue what it held.
    pub(crate) fn heartbeat_due(&mut self, ctx: &mut Ctx, agent_id: &str) {
        let Some(a) = self.agents.get(agent_id) else {
            return;
        };
        if a.health == AgentHealth::Lost || a.forwarded() || self.heartbeat_due_at(a) > ctx.now {
            return;
        }
        let silent_ms = ctx.now.0.saturating_sub(a.last_heartbeat_at.0).max(0) / 1000;
        if a.health == AgentHealth::Healthy {
            let reason = format!(
                "no heartbeat for {silent_ms} ms (interval {} ms)",
                a.heartbeat_interval_ms
            );
            self.emit(
                ctx,
                AgentHealthChanged {
                    agent_id: agent_id.into(),
                    from: AgentHealth::Healthy,
                    to: AgentHealth::Degraded,
                    reason,
                },
            );
            return;
        }
        let last_heartbeat_at = a.last_heartbeat_at;
        self.declare_lost(ctx, agent_id, last_heartbeat_at);
    }

    /// Step attempts an agent holds in this partition, in a stable order.
    fn held_by(&self, agent_id: &str) -> Vec<StepRef> {
        let mut held = Vec::new();
        for wf in self.workflows.values() {
            for (d, s) in wf.definition.steps.iter().zip(&wf.steps) {
                if s.status.is_held() && s.agent.as_deref() == Some(agent_id) {
                    held.push(StepRef {
                        workflow_id: wf.id.clone(),
                        step_id: d.id.clone(),
                        attempt: s.attempt,
                    });
                }
            }
        }
        held.sort_by(|a, b| (&a.workflow_id, &a.step_id).cmp(&(&b.workflow_id, &b.step_id)));
        held
    }

    /// Applies a change to an agent's view, then brings its schedulability
    /// and heartbeat timer in line with the result.
    fn update_agent(&mut self, agent_id: &str, change: impl FnOnce(&mut AgentView)) {
        let Some(a) = self.agents.get(agent_id) else {
            return;
        };
        let old_due = self.heartbeat_due_at(a);
        let Some(a) = self.agents.get_mut(agent_id) else {
            return;
        };
        change(a);
        let schedulable = a.schedulable();
        self.scheduler.set_schedulable(agent_id, schedulable);
        self.retime_heartbeat(agent_id, Some(old_due));
    }

    pub(crate) fn evolve_agent(&mut self, e: &Envelope) {
        let now = e.occurred_at;
        match &e.payload {
            Payload::AgentRegistered(r) => {
                let old_due = self
                    .agents
                    .get(&r.agent_id)
                    .map(|a| self.heartbeat_due_at(a));
                let previous = self.agents.remove(&r.agent_id);
                let view = AgentView {
                    id: r.agent_id.clone(),
                    pool: r.pool.clone(),
                    capabilities: r.capabilities.clone(),
                    capacity: r.capacity,
                    weight: r.weight,
                    labels: r.labels.clone(),
                    heartbeat_interval_ms: r.heartbeat_interval_ms,
                    health: AgentHealth::Healthy,
                    draining: false,
                    saturated: false,
                    last_heartbeat_at: now,
                    reported_in_flight: previous.as_ref().map_or(0, |p| p.reported_in_flight),
                    cpu: None,
                    memory_bytes: None,
                    successes: previous.as_ref().map_or(0, |p| p.successes),
                    failures: previous.as_ref().map_or(0, |p| p.failures),
                    ewma_latency_ms: previous.as_ref().map_or(0.0, |p| p.ewma_latency_ms),
                    usage: previous.map(|p| p.usage).unwrap_or_default(),
                };
                self.scheduler.upsert_agent(AgentSpec {
                    id: r.agent_id.clone(),
                    pool: r.pool.clone(),
                    capabilities: r.capabilities.clone(),
                    capacity: r.capacity.max(0) as u32,
                    weight: r.weight.max(0) as u32,
                });
                self.scheduler.set_schedulable(&r.agent_id, true);
                self.agents.insert(r.agent_id.clone(), view);
                self.retime_heartbeat(&r.agent_id, old_due);
            }
            Payload::AgentHeartbeat(h) => self.update_agent(&h.agent_id, |a| {
                a.last_heartbeat_at = now;
                a.reported_in_flight = h.in_flight;
                a.cpu = h.cpu;
                a.memory_bytes = h.memory_bytes;
                if a.saturated && h.in_flight < a.capacity {
                    a.saturated = false;
                }
            }),
            Payload::AgentHealthChanged(c) => self.update_agent(&c.agent_id, |a| a.health = c.to),
            Payload::AgentLost(l) => {
                self.update_agent(&l.agent_id, |a| a.health = AgentHealth::Lost);
                for r in &l.requeued {
                    let held = self
                        .workflows
                        .get(&r.workflow_id)
                        .and_then(|w| {
                            w.step_index(&r.step_id)
                                .map(|i| w.steps[i].status.is_held())
                        })
                        .unwrap_or(false);
                    if !held {
                        continue;
                    }
                    if let Some(wf) = self.workflows.get_mut(&r.workflow_id) {
                        if let Some(i) = wf.step_index(&r.step_id) {
                            if let Some(t) = wf.steps[i].timeout_at.take() {
                                self.timers.remove(&(
                                    t,
                                    TimerKey::StepTimeout {
                                        workflow_id: r.workflow_id.clone(),
                                        step: i,
                                        attempt: r.attempt,
                                    },
                                ));
                            }
                        }
                    }
                    self.scheduler.release(&l.agent_id);
                    self.enqueue_ready(&r.workflow_id, &r.step_id, r.attempt, now, false);
                }
            }
            Payload::AgentDeregistered(d) => self.update_agent(&d.agent_id, |a| a.draining = true),
            _ => return,
        }
        let id = match &e.payload {
            Payload::AgentRegistered(r) => &r.agent_id,
            Payload::AgentHeartbeat(h) => &h.agent_id,
            Payload::AgentHealthChanged(c) => &c.agent_id,
            Payload::AgentLost(l) => &l.agent_id,
            Payload::AgentDeregistered(d) => &d.agent_id,
            _ => return,
        };
        self.dirty_agents.insert(id.clone());
    }

    /// Rebuilds the derived indexes (scheduler, timers, admission, running
    /// count) from workflows and agents, after loading them from the store.
    /// The scheduler's fairness cursors restart; its queues and loads are exact.
    pub fn rebuild_derived(&mut self) {
        use crate::domain::workflow::{validate, Limits};
        let limits = Limits {
            max_steps: usize::MAX,
            max_input_bytes: usize::MAX,
        };
        let agents: Vec<AgentView> = self.agents.values().cloned().collect();
        for a in &agents {
            self.scheduler.upsert_agent(AgentSpec {
                id: a.id.clone(),
                pool: a.pool.clone(),
                capabilities: a.capabilities.clone(),
                capacity: a.capacity.max(0) as u32,
                weight: a.weight.max(0) as u32,
            });
            self.scheduler.set_schedulable(&a.id, a.schedulable());
            self.retime_heartbeat(&a.id, None);
        }
        let mut ids: Vec<String> = self.workflows.keys().cloned().collect();
        ids.sort_unstable();
        let mut ready = Vec::new();
        for id in ids {
            let Some(wf) = self.workflows.get_mut(&id) else {
                continue;
            };
            if wf.dag.is_none() {
                wf.dag = validate(&wf.definition, &limits)
                    .ok()
                    .map(std::sync::Arc::new);
            }
            self.next_seq = self.next_seq.max(wf.seq + 1);
            match wf.status {
                WorkflowStatus::Running => self.running += 1,
                WorkflowStatus::Queued => {
                    self.admission.insert((
                        wf.definition.priority.saturating_neg(),
                        wf.seq,
                        wf.id.clone(),
                    ));
                }
                _ => continue,
            }
            if let Some(d) = wf.deadline_at {
                self.timers.insert((
                    d,
                    TimerKey::Deadline {
                        workflow_id: id.clone(),
                    },
                ));
            }
            for (i, (def, s)) in wf.definition.steps.iter().zip(&wf.steps).enumerate() {
                match s.status {
                    StepStatus::Ready => {
                        ready.push((s.ready_at, id.clone(), def.id.clone(), s.attempt))
                    }
                    StepStatus::Assigned | StepStatus::Running => {
                        if let Some(agent) = &s.agent {
                            let key = StepKey {
                                workflow_id: id.clone(),
                                step_id: def.id.clone(),
                                attempt: s.attempt,
                            };
                            self.scheduler.apply_assignment(&key, agent);
                        }
                        if let Some(t) = s.timeout_at {
                            self.timers.insert((
                                t,
                                TimerKey::StepTimeout {
                                    workflow_id: id.clone(),
                                    step: i,
                                    attempt: s.attempt,
                                },
                            ));
                        }
                    }
                    StepStatus::RetryScheduled => {
                        if let Some(t) = s.retry_at {
                            self.timers.insert((
                                t,
                                TimerKey::Retry {
                                    workflow_id: id.clone(),
                                    step: i,
                                    attempt: s.attempt.saturating_add(1),
                                },
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
        ready.sort();
        for (at, wf, step, attempt) in ready {
            self.enqueue_ready(&wf, &step, attempt, at.unwrap_or_default(), false);
        }
    }
}

impl PartitionState {
    /// An agent declined work: stop giving it more here until it reports.
    pub(crate) fn mark_saturated(&mut self, agent_id: &str) {
        if let Some(a) = self.agents.get_mut(agent_id) {
            a.saturated = true;
            self.scheduler.set_schedulable(agent_id, false);
            self.dirty_agents.insert(agent_id.to_string());
        }
    }

    /// A report from the agent shows it freed a slot.
    pub(crate) fn clear_saturated(&mut self, agent_id: &str) {
        if let Some(a) = self.agents.get_mut(agent_id) {
            if a.saturated {
                a.saturated = false;
                let schedulable = a.schedulable();
                self.scheduler.set_schedulable(agent_id, schedulable);
            }
        }
    }
}
