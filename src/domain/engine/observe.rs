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

use super::state::{PartitionState, WorkflowState};
use crate::domain::bottleneck::{
    detect, Gauges, Outcome, PoolGauge, RunningAttempt, Signal, StarvedClass, Stats, StepFacts,
    StepIds,
};
use crate::domain::events::*;

/// Namespace of the cause ids of evaluations.
const EVAL_NAMESPACE: Uuid = Uuid::from_u128(0x9b2e_4d17_6a3c_4f08_b5e1_7c9d_2a64_3e81);

/// Whole milliseconds from `from` to `to` (0 when unknown or negative).
pub(crate) fn whole_ms(from: Option<Timestamp>, to: Timestamp) -> u64 {
    from.map_or(0, |f| {
        u64::try_from(to.0.saturating_sub(f.0) / 1000).unwrap_or(0)
    })
}

/// The subject ids of a workflow's steps, interned in `stats` on first use
/// and cached on the workflow (so an observation hashes no subject name).
pub(crate) fn subject_ids<'w>(wf: &'w mut WorkflowState, stats: &mut Stats) -> &'w [StepIds] {
    let generation = stats.generation();
    let fresh = matches!(&wf.subject_ids.0, Some((g, _)) if *g == generation);
    if !fresh {
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
        wf.subject_ids.0 = Some((generation, ids));
    }
    match &wf.subject_ids.0 {
        Some((_, ids)) => ids,
        None => &[],
    }
}

impl PartitionState {
    /// Folds what a fact says about requeues, finished workflows and
    /// findings (before `evolve` applies it). Waits, runs and arrivals are
    /// observed inside `evolve` where it already holds the workflow.
    pub(crate) fn observe(&mut self, e: &Envelope) {
        if !self.config.bottleneck.enabled {
            return;
        }
        let now = e.occurred_at;
        use Payload as P;
        match &e.payload {
            P::WorkflowSucceeded(x) => self.observe_end(&x.workflow_id, now, true, Some(&x.usage)),
            P::WorkflowFailed(x) => self.observe_end(&x.workflow_id, now, false, None),
            P::WorkflowCancelled(x) => self.observe_end(&x.workflow_id, now, false, None),
            P::WorkflowTimedOut(x) => self.observe_end(&x.workflow_id, now, false, None),
            P::AgentLost(l) => {
                for s in &l.requeued {
                    let held = self.workflows.get(&s.workflow_id).and_then(|wf| {
                        let i = wf.step_index(&s.step_id)?;
                        wf.steps[i].status.is_held().then_some(i)
                    });
                    if let Some(i) = held {
                        self.observe_requeued(&s.workflow_id, i, now);
                    }
                }
            }
            P::BottleneckDetected(d) => self.bottlenecks.detected(d),
            P::BottleneckResolved(r) => self.bottlenecks.resolved(r),
            _ => {}
        }
    }

    /// An attempt of step `i` ended (called by `evolve` before the step
    /// leaves its held state; its assigned and started times are still this
    /// attempt's).
    pub(crate) fn observe_ended(
        &mut self,
        workflow_id: &str,
        i: usize,
        agent: Option<&str>,
        now: Timestamp,
        outcome: Outcome,
        usage: Option<&Usage>,
    ) {
        if !self.config.bottleneck.enabled {
            return;
        }
        let Some(wf) = self.workflows.get_mut(workflow_id) else {
            return;
        };
        let Some(s) = wf.steps.get(i) else {
            return;
        };
        if !s.status.is_held() {
            return;
        }
        let run = whole_ms(s.run_started(), now);
        if let Some(ids) = subject_ids(wf, &mut self.bottlenecks).get(i) {
            self.bottlenecks
                .ended_of(now, ids, agent, run, outcome, usage);
        }
    }

    /// An assigned attempt of step `i` went back to the queue.
    pub(crate) fn observe_requeued(&mut self, workflow_id: &str, i: usize, now: Timestamp) {
        if !self.config.bottleneck.enabled {
            return;
        }
        if let Some(wf) = self.workflows.get_mut(workflow_id) {
            let ids = subject_ids(wf, &mut self.bottlenecks);
            if let Some(ids) = ids.get(i) {
                self.bottlenecks.requeued(now, ids);
            }
        }
    }

    fn observe_end(&mut self, id: &str, now: Timestamp, ok: bool, usage: Option<&Usage>) {
        let Some(wf) = self.workflows.get(id) else {
            return;
        };
        if wf.is_terminal() {
            return;
        }
        let ms = whole_ms(Some(wf.accepted_at), now);
        self.bottlenecks
            .workflow_ended(now, &wf.definition.name, ms, ok, usage);
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
                running.push(RunningAttempt {
                    kind: wf.definition.steps[i].kind_or_id().to_string(),
                    agent: s.agent.clone(),
                    elapsed_ms: whole_ms(s.run_started(), now) as f64,
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
