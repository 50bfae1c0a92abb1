//! The partition's side of bottleneck detection: feeding journal facts to
//! the bottleneck projection (from `evolve`, so replay folds the same
//! figures), reading the gauges the detectors need from the partition state,
//! and the periodic evaluation that `tick` runs.
//!
//! Invariants: observation reads the state *before* the fact is applied
//! (when the attempt's ready, assigned and started times are still those of
//! this attempt); evaluation only emits facts through `emit`, so a finding
//! is folded (and journalled) like any other decision.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::decide::{Ctx, Fact};
use std::sync::Arc;

use super::state::{PartitionState, StepStatus, WorkflowState};
use crate::domain::bottleneck::{
    detect, Gauges, Outcome, PoolGauge, RunningAttempt, Signal, StarvedClass, StepFacts, StepIds,
};
use crate::domain::events::*;

/// Namespace of the cause ids of evaluations.
const EVAL_NAMESPACE: Uuid = Uuid::from_u128(0x9b2e_4d17_6a3c_4f08_b5e1_7c9d_2a64_3e81);

fn ms(from: Option<Timestamp>, to: Timestamp) -> u64 {
    from.map_or(0, |f| u64::try_from((to.0 - f.0) / 1000).unwrap_or(0))
}

/// The workflow and its steps' subject ids, interned in `stats` on first
/// use and cached on the workflow (one hash look-up per observation, not
/// one per subject).
fn cached<'w>(
    workflows: &'w mut foldhash::HashMap<String, WorkflowState>,
    stats: &mut crate::domain::bottleneck::Stats,
    id: &str,
) -> Option<(&'w WorkflowState, Arc<[StepIds]>)> {
    let wf = workflows.get_mut(id)?;
    let generation = stats.generation();
    let ids = match &wf.subject_ids.0 {
        Some((g, ids)) if *g == generation => ids.clone(),
        _ => {
            let ids: Arc<[StepIds]> = wf
                .definition
                .steps
                .iter()
                .map(|d| {
                    stats.step_ids(StepFacts {
                        pool: d.pool.as_deref().unwrap_or("default"),
                        capabilities: &d.capabilities,
                        kind: d.kind_or_id(),
                    })
                })
                .collect();
            wf.subject_ids.0 = Some((generation, ids.clone()));
            ids
        }
    };
    Some((wf, ids))
}

impl PartitionState {
    /// Folds what a fact says about waits, runs and findings (before `evolve`
    /// applies it to the workflow).
    pub(crate) fn observe(&mut self, e: &Envelope) {
        if !self.config.bottleneck.enabled {
            return;
        }
        let now = e.occurred_at;
        use Payload as P;
        let (workflow_id, step_id, agent, outcome, usage) = match &e.payload {
            P::StepAssigned(a) => (&a.workflow_id, &a.step_id, Some(&a.agent_id), None, None),
            P::StepSucceeded(r) => (
                &r.workflow_id,
                &r.step_id,
                Some(&r.agent_id),
                Some(Outcome::Succeeded),
                Some(&r.usage),
            ),
            P::StepFailed(r) => (
                &r.workflow_id,
                &r.step_id,
                Some(&r.agent_id),
                Some(Outcome::Failed),
                None,
            ),
            P::StepTimedOut(t) => (
                &t.workflow_id,
                &t.step_id,
                t.agent_id.as_ref(),
                Some(Outcome::TimedOut),
                None,
            ),
            P::WorkflowSucceeded(x) => {
                self.observe_end(&x.workflow_id, now, true, Some(&x.usage));
                return;
            }
            P::WorkflowFailed(x) => return self.observe_end(&x.workflow_id, now, false, None),
            P::WorkflowCancelled(x) => return self.observe_end(&x.workflow_id, now, false, None),
            P::WorkflowTimedOut(x) => return self.observe_end(&x.workflow_id, now, false, None),
            P::StepRejectedByAgent(r) => {
                self.observe_requeue(&r.workflow_id, &r.step_id, now);
                return;
            }
            P::AgentLost(l) => {
                for s in &l.requeued {
                    self.observe_requeue(&s.workflow_id, &s.step_id, now);
                }
                return;
            }
            P::BottleneckDetected(d) => {
                self.bottlenecks.detected(d);
                return;
            }
            P::BottleneckResolved(r) => {
                self.bottlenecks.resolved(r);
                return;
            }
            _ => return,
        };
        let stats = &mut self.bottlenecks;
        let Some((wf, ids)) = cached(&mut self.workflows, stats, workflow_id) else {
            return;
        };
        let Some(i) = wf.step_index(step_id) else {
            return;
        };
        let (s, ids) = (&wf.steps[i], &ids[i]);
        match outcome {
            None => {
                // Readied in the same decision (no StepReady journalled): no
                // wait; `evolve` counts its arrival through `on_ready`.
                let wait = if s.status == StepStatus::Ready {
                    ms(s.ready_at, now)
                } else {
                    0
                };
                if let Some(a) = agent {
                    stats.assigned_of(now, ids, a, wait);
                }
            }
            Some(outcome) => {
                if !s.status.is_held() {
                    return;
                }
                // A start of an earlier attempt does not count for this one.
                let start = match (s.started_at, s.assigned_at) {
                    (Some(st), Some(asg)) if st >= asg => Some(st),
                    (_, asg) => asg,
                };
                stats.ended_of(
                    now,
                    ids,
                    agent.map(String::as_str),
                    ms(start, now),
                    outcome,
                    usage,
                );
            }
        }
    }

    fn observe_requeue(&mut self, workflow_id: &str, step_id: &str, now: Timestamp) {
        let stats = &mut self.bottlenecks;
        let Some((wf, ids)) = cached(&mut self.workflows, stats, workflow_id) else {
            return;
        };
        let Some(i) = wf.step_index(step_id) else {
            return;
        };
        if wf.steps[i].status.is_held() {
            stats.requeued(now, &ids[i]);
        }
    }

    fn observe_end(&mut self, id: &str, now: Timestamp, ok: bool, usage: Option<&Usage>) {
        let Some(wf) = self.workflows.get(id) else {
            return;
        };
        if wf.is_terminal() {
            return;
        }
        let ms = ms(Some(wf.accepted_at), now);
        self.bottlenecks
            .workflow_ended(now, &wf.definition.name, ms, ok, usage);
    }

    /// Counts a step arrival (called where a step becomes ready).
    pub(crate) fn observe_arrival(&mut self, workflow_id: &str, i: usize, now: Timestamp) {
        if !self.config.bottleneck.enabled {
            return;
        }
        let stats = &mut self.bottlenecks;
        if let Some((_, ids)) = cached(&mut self.workflows, stats, workflow_id) {
            if let Some(ids) = ids.get(i) {
                stats.arrival_of(now, ids);
            }
        }
    }

    /// What the detectors need besides the projection, as of `now`.
    pub fn gauges(&self, now: Timestamp) -> Gauges {
        let mut pools: BTreeMap<String, PoolGauge> = BTreeMap::new();
        let mut agent_pool = BTreeMap::new();
        for a in self.agents.values() {
            agent_pool.insert(a.id.clone(), a.pool.clone());
            let g = pools.entry(a.pool.clone()).or_insert_with(|| PoolGauge {
                pool: a.pool.clone(),
                ..PoolGauge::default()
            });
            if a.draining || a.health == AgentHealth::Lost {
                continue;
            }
            let local = self.agent_load(&a.id).map_or(0, |(n, _)| n);
            g.capacity += a.capacity.max(0) as u64;
            g.in_flight += u64::from(local).max(a.reported_in_flight.max(0) as u64);
            g.agents += 1;
        }
        let mut starved = Vec::new();
        for c in self.scheduler.class_stats() {
            let g = pools.entry(c.pool.clone()).or_insert_with(|| PoolGauge {
                pool: c.pool.clone(),
                ..PoolGauge::default()
            });
            g.queued += c.queued as u64;
            // New agents should serve every waiting class: the union.
            for cap in &c.capabilities {
                if let Err(at) = g.capabilities.binary_search(cap) {
                    g.capabilities.insert(at, cap.clone());
                }
            }
            // The scheduler counts only agents with room; starvation means no
            // live agent of the pool has the capabilities at all.
            let capable = || {
                self.agents.values().any(|a| {
                    a.pool == c.pool
                        && !a.draining
                        && a.health != AgentHealth::Lost
                        && c.capabilities.iter().all(|x| a.capabilities.contains(x))
                })
            };
            if c.eligible_agents == 0 && c.queued > 0 && !capable() {
                starved.push(StarvedClass {
                    pool: c.pool,
                    capabilities: c.capabilities,
                    queued: c.queued as u64,
                });
            }
        }
        let mut running = Vec::new();
        for wf in self.workflows.values() {
            if wf.status != WorkflowStatus::Running {
                continue;
            }
            for (i, s) in wf.steps.iter().enumerate() {
                if !s.status.is_held() {
                    continue;
                }
                let start = match (s.started_at, s.assigned_at) {
                    (Some(st), Some(asg)) if st >= asg => Some(st),
                    (_, asg) => asg,
                };
                running.push(RunningAttempt {
                    kind: wf.definition.steps[i].kind_or_id().to_string(),
                    agent: s.agent.clone(),
                    elapsed_ms: ms(start, now) as f64,
                });
            }
        }
        // Hash-map order must not leak into decisions.
        running.sort_by(|a, b| (&a.kind, &a.agent).cmp(&(&b.kind, &b.agent)));
        Gauges {
            pools: pools.into_values().collect(),
            starved,
            running,
            agent_pool,
        }
    }

    /// The detectors' current view (for reports; no facts).
    pub fn bottleneck_signals(&self, now: Timestamp) -> Vec<Signal> {
        detect(
            &self.bottlenecks,
            &self.gauges(now),
            &self.config.bottleneck,
            now,
        )
    }

    /// True when an evaluation is due at `now`.
    pub(crate) fn evaluation_due(&self, now: Timestamp) -> bool {
        let cfg = &self.config.bottleneck;
        cfg.enabled
            && (!self.agents.is_empty() || !self.bottlenecks.active.is_empty())
            && self.hysteresis.due(cfg, now)
    }

    /// When `tick` should next run for an evaluation.
    pub(crate) fn next_evaluation(&self) -> Option<Timestamp> {
        let cfg = &self.config.bottleneck;
        if !cfg.enabled || (self.agents.is_empty() && self.bottlenecks.active.is_empty()) {
            return None;
        }
        Some(self.hysteresis.next_due(cfg).unwrap_or(Timestamp(i64::MIN)))
    }

    /// Runs the detectors and emits the findings that start or end.
    pub(crate) fn evaluate(&mut self, now: Timestamp) -> Vec<Fact> {
        let signals = self.bottleneck_signals(now);
        let cfg = self.config.bottleneck.clone();
        let payloads = self
            .hysteresis
            .step(&signals, &self.bottlenecks.active, &cfg, now);
        if payloads.is_empty() {
            return Vec::new();
        }
        let cause = EventId(Uuid::new_v5(
            &EVAL_NAMESPACE,
            format!("{}@{}", self.producer, now.0).as_bytes(),
        ));
        let mut ctx = Ctx::new(cause, now);
        for p in payloads {
            self.emit(&mut ctx, p);
        }
        ctx.finish()
    }
}
