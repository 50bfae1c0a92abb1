//! Gauges read from one partition's state: workflows and steps by state,
//! queue depth, pool load and capacity, agents by health, active
//! bottlenecks, usage cost, and (behind a switch, capped) per-agent load.
//!
//! [`PartitionGauges::of`] is pure (state in, figures out) so it is tested
//! without a recorder; [`PartitionGauges::publish`] sets the gauges. Every
//! label value of a closed set (states, health, bottleneck kinds) is set on
//! each publish, zero included, so a series never sticks at an old value.

use std::collections::BTreeMap;

use super::names;
use crate::domain::bottleneck::kind_name;
use crate::domain::engine::{PartitionState, StepStatus};
use crate::domain::events::{AgentHealth, BottleneckKind, WorkflowStatus};

/// Per-agent series: off, or on for at most this many agents (in id order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentLabels {
    pub enabled: bool,
    pub cap: usize,
}

impl Default for AgentLabels {
    fn default() -> Self {
        AgentLabels {
            enabled: false,
            cap: 100,
        }
    }
}

const WORKFLOW_STATES: [&str; 2] = ["queued", "running"];
const STEP_STATES: [&str; 10] = [
    "pending",
    "ready",
    "assigned",
    "running",
    "succeeded",
    "failed",
    "retry_scheduled",
    "exhausted",
    "skipped",
    "cancelled",
];
const HEALTH: [&str; 3] = ["healthy", "degraded", "lost"];
const KINDS: [BottleneckKind; 8] = [
    BottleneckKind::Saturation,
    BottleneckKind::QueueBacklog,
    BottleneckKind::SlowStep,
    BottleneckKind::SlowAgent,
    BottleneckKind::FailingStep,
    BottleneckKind::FailingAgent,
    BottleneckKind::StarvedCapability,
    BottleneckKind::StuckStep,
];

fn step_state(s: StepStatus) -> usize {
    match s {
        StepStatus::Pending => 0,
        StepStatus::Ready => 1,
        StepStatus::Assigned => 2,
        StepStatus::Running => 3,
        StepStatus::Succeeded => 4,
        StepStatus::Failed => 5,
        StepStatus::RetryScheduled => 6,
        StepStatus::Exhausted => 7,
        StepStatus::Skipped => 8,
        StepStatus::Cancelled => 9,
    }
}

/// The figures of one partition at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartitionGauges {
    pub workflows: [u64; 2],
    pub steps: [u64; 10],
    pub queue_depth: BTreeMap<String, u64>,
    /// Per pool: (in flight, capacity of live agents).
    pub pools: BTreeMap<String, (u64, u64)>,
    pub agents: [u64; 3],
    /// Per kind (index into KINDS): (active findings, max severity).
    pub bottlenecks: [(u64, i32); 8],
    pub cost: f64,
    /// Per agent (capped): (in flight, capacity).
    pub per_agent: Vec<(String, u64, u64)>,
}

impl PartitionGauges {
    pub fn of(state: &PartitionState, agent_labels: AgentLabels) -> Self {
        let mut g = PartitionGauges::default();
        for wf in state.workflows.values() {
            match wf.status {
                WorkflowStatus::Queued => g.workflows[0] += 1,
                WorkflowStatus::Running => g.workflows[1] += 1,
                _ => continue,
            }
            for s in &wf.steps {
                g.steps[step_state(s.status)] += 1;
            }
        }
        for (pool, depth) in state.scheduler.queue_depths() {
            g.queue_depth.insert(pool, depth as u64);
        }
        for a in state.agents.values() {
            g.agents[match a.health {
                AgentHealth::Healthy => 0,
                AgentHealth::Degraded => 1,
                AgentHealth::Lost => 2,
            }] += 1;
            let (in_flight, capacity) = state.scheduler.agent_load(&a.id).unwrap_or((0, 0));
            let live_capacity = if a.health == AgentHealth::Lost {
                0
            } else {
                u64::from(capacity)
            };
            let e = g.pools.entry(a.pool.clone()).or_default();
            e.0 += u64::from(in_flight);
            e.1 += live_capacity;
            if agent_labels.enabled && g.per_agent.len() < agent_labels.cap {
                g.per_agent
                    .push((a.id.clone(), u64::from(in_flight), u64::from(capacity)));
            }
        }
        for f in state.bottlenecks.active.values() {
            if let Some(i) = KINDS.iter().position(|k| *k == f.kind) {
                g.bottlenecks[i].0 += 1;
                g.bottlenecks[i].1 = g.bottlenecks[i].1.max(f.severity);
            }
        }
        g.cost = state.pool_usage.values().map(|u| u.cost).sum();
        g
    }

    /// Sets the gauges of partition `p`.
    pub fn publish(&self, p: u32) {
        let part = p.to_string();
        for (state, n) in WORKFLOW_STATES.iter().zip(self.workflows) {
            metrics::gauge!(names::WORKFLOWS.name, "partition" => part.clone(), "state" => *state)
                .set(n as f64);
        }
        for (state, n) in STEP_STATES.iter().zip(self.steps) {
            metrics::gauge!(names::STEPS.name, "partition" => part.clone(), "state" => *state)
                .set(n as f64);
        }
        for (pool, n) in &self.queue_depth {
            metrics::gauge!(names::QUEUE_DEPTH.name, "partition" => part.clone(), "pool" => pool.clone())
                .set(*n as f64);
        }
        for (pool, (in_flight, capacity)) in &self.pools {
            metrics::gauge!(names::POOL_IN_FLIGHT.name, "partition" => part.clone(), "pool" => pool.clone())
                .set(*in_flight as f64);
            metrics::gauge!(names::POOL_CAPACITY.name, "partition" => part.clone(), "pool" => pool.clone())
                .set(*capacity as f64);
        }
        for (health, n) in HEALTH.iter().zip(self.agents) {
            metrics::gauge!(names::AGENTS.name, "partition" => part.clone(), "health" => *health)
                .set(n as f64);
        }
        for (kind, (n, sev)) in KINDS.iter().zip(self.bottlenecks) {
            let kind = kind_name(*kind);
            metrics::gauge!(names::BOTTLENECK_FINDINGS.name, "partition" => part.clone(), "kind" => kind)
                .set(n as f64);
            metrics::gauge!(names::BOTTLENECK_SEVERITY.name, "partition" => part.clone(), "kind" => kind)
                .set(f64::from(sev));
        }
        metrics::gauge!(names::COST.name, "partition" => part.clone()).set(self.cost);
        for (agent, in_flight, capacity) in &self.per_agent {
            metrics::gauge!(names::AGENT_IN_FLIGHT.name, "agent" => agent.clone())
                .set(*in_flight as f64);
            metrics::gauge!(names::AGENT_CAPACITY.name, "agent" => agent.clone())
                .set(*capacity as f64);
        }
    }
}
