//! The JSON shapes of the API (its stable interface, documented in the
//! OpenAPI document), built from the domain types by explicit conversions.
//!
//! Invariants: handlers never serialise a domain or store type directly, so
//! a change inside the engine cannot silently change the API; fields are
//! only ever added; times are RFC 3339 strings (UTC, microseconds);
//! durations are milliseconds; every number is finite (a non-finite figure
//! would serialise as `null` where the schema promises a number).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::engine::{AgentView, StepState, StepStatus, WorkflowState};
use crate::domain::events::{AgentHealth, StepDefinition, Timestamp, Usage, WorkflowStatus};

/// An RFC 3339 time (UTC, microseconds).
pub fn time(t: Timestamp) -> String {
    t.to_string()
}

/// Milliseconds from `from` to `to`, when both are known.
fn span_ms(from: Option<Timestamp>, to: Option<Timestamp>) -> Option<f64> {
    match (from, to) {
        (Some(a), Some(b)) => Some((b.0 - a.0) as f64 / 1000.0),
        _ => None,
    }
}

/// `x`, or 0 when it is not finite.
pub fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// Token and cost figures.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UsageDto {
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost: f64,
}

impl From<&Usage> for UsageDto {
    fn from(u: &Usage) -> Self {
        UsageDto {
            tokens_in: u.tokens_in,
            tokens_out: u.tokens_out,
            cost: finite(u.cost),
        }
    }
}

/// A workflow's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatusDto {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

impl From<WorkflowStatus> for WorkflowStatusDto {
    fn from(s: WorkflowStatus) -> Self {
        match s {
            WorkflowStatus::Queued => Self::Queued,
            WorkflowStatus::Running => Self::Running,
            WorkflowStatus::Succeeded => Self::Succeeded,
            WorkflowStatus::Failed => Self::Failed,
            WorkflowStatus::Cancelled => Self::Cancelled,
            WorkflowStatus::TimedOut => Self::TimedOut,
        }
    }
}

impl From<WorkflowStatusDto> for WorkflowStatus {
    fn from(s: WorkflowStatusDto) -> Self {
        match s {
            WorkflowStatusDto::Queued => Self::Queued,
            WorkflowStatusDto::Running => Self::Running,
            WorkflowStatusDto::Succeeded => Self::Succeeded,
            WorkflowStatusDto::Failed => Self::Failed,
            WorkflowStatusDto::Cancelled => Self::Cancelled,
            WorkflowStatusDto::TimedOut => Self::TimedOut,
        }
    }
}

/// A step's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatusDto {
    Pending,
    Ready,
    Assigned,
    Running,
    Succeeded,
    /// The attempt failed or timed out; a retry or exhaustion follows.
    Failed,
    RetryScheduled,
    Exhausted,
    Skipped,
    Cancelled,
}

impl From<StepStatus> for StepStatusDto {
    fn from(s: StepStatus) -> Self {
        match s {
            StepStatus::Pending => Self::Pending,
            StepStatus::Ready => Self::Ready,
            StepStatus::Assigned => Self::Assigned,
            StepStatus::Running => Self::Running,
            StepStatus::Succeeded => Self::Succeeded,
            StepStatus::Failed => Self::Failed,
            StepStatus::RetryScheduled => Self::RetryScheduled,
            StepStatus::Exhausted => Self::Exhausted,
            StepStatus::Skipped => Self::Skipped,
            StepStatus::Cancelled => Self::Cancelled,
        }
    }
}

/// One step of a workflow: its current (or last) attempt.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StepDto {
    pub id: String,
    /// The step kind used for statistics (`kind`, or the step id).
    pub kind: String,
    pub status: StepStatusDto,
    /// Current (or last) attempt, from 1; 0 before the first.
    pub attempt: i32,
    /// The agent of the current (or last) attempt.
    pub agent: Option<String>,
    pub ready_at: Option<String>,
    pub assigned_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Ready → assigned, milliseconds.
    pub wait_ms: Option<f64>,
    /// Assigned → finished, milliseconds.
    pub run_ms: Option<f64>,
    /// Why the last attempt failed, if it did.
    pub error: Option<String>,
    pub usage: UsageDto,
}

impl StepDto {
    fn new(d: &StepDefinition, s: &StepState) -> Self {
        StepDto {
            id: d.id.clone(),
            kind: d.kind_or_id().to_string(),
            status: s.status.into(),
            attempt: s.attempt,
            agent: s.agent.clone(),
            ready_at: s.ready_at.map(time),
            assigned_at: s.assigned_at.map(time),
            started_at: s.started_at.map(time),
            finished_at: s.finished_at.map(time),
            wait_ms: span_ms(s.ready_at, s.assigned_at),
            run_ms: span_ms(s.assigned_at, s.finished_at),
            error: s.last_error.clone(),
            usage: (&s.usage).into(),
        }
    }
}

/// A workflow as its partition's store holds it (the state at the
/// partition's last checkpoint).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WorkflowDto {
    pub workflow_id: String,
    /// The partition that owns it.
    pub partition: u32,
    /// The definition's name.
    pub name: String,
    pub status: WorkflowStatusDto,
    /// Why it failed, was cancelled or timed out.
    pub reason: Option<String>,
    pub priority: i32,
    pub labels: BTreeMap<String, String>,
    pub accepted_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub deadline_at: Option<String>,
    /// Accepted → finished, milliseconds (null while unfinished).
    pub duration_ms: Option<f64>,
    /// Summed over its steps.
    pub usage: UsageDto,
    pub steps: Vec<StepDto>,
}

impl WorkflowDto {
    pub fn new(partition: u32, wf: &WorkflowState) -> Self {
        WorkflowDto {
            workflow_id: wf.id.clone(),
            partition,
            name: wf.definition.name.clone(),
            status: wf.status.into(),
            reason: wf.reason.clone(),
            priority: wf.definition.priority,
            labels: wf.definition.labels.clone(),
            accepted_at: time(wf.accepted_at),
            started_at: wf.started_at.map(time),
            finished_at: wf.finished_at.map(time),
            deadline_at: wf.deadline_at.map(time),
            duration_ms: span_ms(Some(wf.accepted_at), wf.finished_at),
            usage: (&wf.usage).into(),
            steps: wf
                .definition
                .steps
                .iter()
                .zip(&wf.steps)
                .map(|(d, s)| StepDto::new(d, s))
                .collect(),
        }
    }
}

/// A row of the workflow list.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WorkflowSummary {
    pub workflow_id: String,
    pub partition: u32,
    pub name: String,
    pub status: WorkflowStatusDto,
    pub accepted_at: String,
    pub finished_at: Option<String>,
}

impl WorkflowSummary {
    pub fn new(partition: u32, wf: &WorkflowState) -> Self {
        WorkflowSummary {
            workflow_id: wf.id.clone(),
            partition,
            name: wf.definition.name.clone(),
            status: wf.status.into(),
            accepted_at: time(wf.accepted_at),
            finished_at: wf.finished_at.map(time),
        }
    }
}

/// One page of workflows, ordered by partition, then workflow id (bytes).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WorkflowPage {
    pub items: Vec<WorkflowSummary>,
    /// Pass as `cursor` to get the next page; `null` when there is none. A
    /// page may hold fewer than `limit` items (even none) and still have a
    /// next page: each request scans a bounded number of entries.
    pub next_cursor: Option<String>,
}

/// Agent health as the engine judges it.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentHealthDto {
    Healthy,
    Degraded,
    Lost,
}

impl From<AgentHealth> for AgentHealthDto {
    fn from(h: AgentHealth) -> Self {
        match h {
            AgentHealth::Healthy => Self::Healthy,
            AgentHealth::Degraded => Self::Degraded,
            AgentHealth::Lost => Self::Lost,
        }
    }
}

/// An agent, merged over the partitions: counts and usage summed; health,
/// heartbeat and reported load from the freshest heartbeat; EWMA latency
/// the worst any partition saw.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AgentDto {
    pub agent_id: String,
    pub pool: String,
    pub capabilities: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub capacity: i32,
    pub weight: i32,
    pub health: AgentHealthDto,
    pub draining: bool,
    /// Steps in flight, as the agent last reported (0 once it is lost: its
    /// steps were re-queued).
    pub in_flight: i32,
    /// What the agent last reported, lost or not.
    pub last_reported_in_flight: i32,
    pub successes: u64,
    pub failures: u64,
    /// successes ÷ (successes + failures); null before any result.
    pub success_rate: Option<f64>,
    pub ewma_latency_ms: f64,
    pub last_heartbeat_at: String,
    pub usage: UsageDto,
}

impl From<&AgentView> for AgentDto {
    fn from(a: &AgentView) -> Self {
        let n = a.successes + a.failures;
        AgentDto {
            agent_id: a.id.clone(),
            pool: a.pool.clone(),
            capabilities: a.capabilities.clone(),
            labels: a.labels.clone(),
            capacity: a.capacity,
            weight: a.weight,
            health: a.health.into(),
            draining: a.draining,
            in_flight: a.holding(),
            last_reported_in_flight: a.reported_in_flight,
            successes: a.successes,
            failures: a.failures,
            success_rate: (n > 0).then(|| a.successes as f64 / n as f64),
            ewma_latency_ms: finite(a.ewma_latency_ms),
            last_heartbeat_at: time(a.last_heartbeat_at),
            usage: (&a.usage).into(),
        }
    }
}

/// The fleet, by agent id.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AgentList {
    pub items: Vec<AgentDto>,
}

/// An active bottleneck finding, merged over the partitions that hold it
/// (evidence and recommendation from the most severe).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FindingDto {
    /// `<kind>/<subject type>/<subject>`.
    pub key: String,
    /// `saturation`, `queue_backlog`, `slow_step`, `slow_agent`,
    /// `failing_step`, `failing_agent`, `starved_capability` or `stuck_step`.
    pub kind: String,
    /// `pool`, `capability`, `agent` or `step_kind`.
    pub subject_type: String,
    pub subject: String,
    /// 1–100: 50 at the detector's threshold, 100 at twice it.
    pub severity: i32,
    /// The figures the detector judged.
    pub evidence: BTreeMap<String, f64>,
    /// What to do, with its arithmetic.
    pub recommendation: String,
    pub first_seen: String,
    pub last_seen: String,
    /// Partitions that detected it (each judges the workflows it owns).
    pub partitions: Vec<u32>,
}

impl From<&crate::engine::report::FindingRow> for FindingDto {
    fn from(f: &crate::engine::report::FindingRow) -> Self {
        FindingDto {
            key: f.key.clone(),
            kind: f.kind.to_string(),
            subject_type: f.subject_type.to_string(),
            subject: f.subject.clone(),
            severity: f.severity,
            evidence: f
                .evidence
                .iter()
                .map(|(k, v)| (k.clone(), finite(*v)))
                .collect(),
            recommendation: f.recommendation.clone(),
            first_seen: f.first_seen.clone(),
            last_seen: f.last_seen.clone(),
            partitions: f.partitions.clone(),
        }
    }
}

/// Active findings, most severe first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct BottleneckList {
    /// The latest event time any partition's projection observed.
    pub at: String,
    pub items: Vec<FindingDto>,
}

/// `/healthz`: the process is up.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// One owned partition's readiness.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PartitionReadinessDto {
    pub partition: u32,
    /// Recovery (store checkpoint + journal tail) is done.
    pub recovered: bool,
    /// Ingress records not read yet.
    pub lag: u64,
    /// Recovered and lag ≤ the configured maximum.
    pub ready: bool,
    /// Why the partition's loop stopped, when it did: it needs an
    /// operator (the message says what to do) and is never ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// `/readyz`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// Why it is (not) ready, in words.
    pub reason: String,
    /// The partitions this process owns (empty without an engine).
    pub partitions: Vec<PartitionReadinessDto>,
}
