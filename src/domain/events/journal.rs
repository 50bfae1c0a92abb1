//! Journal facts and decisions: written only by the engine to
//! `baton.journal`, the single source of truth that projections fold.
//!
//! Invariant: mirrors `schemas/journal/*.avsc` field by field. Facts carry
//! everything a fold needs (absolute due times, the full definition), so
//! replay never needs the ingress topic or a clock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{
    AgentHealth, BottleneckKind, StepRef, Strategy, SubjectType, Usage, WorkflowDefinition,
};
use super::values::{JsonText, Timestamp};

/// A submitted workflow passed validation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowAccepted {
    pub workflow_id: String,
    /// Shared with the folded workflow (serialised as the plain record).
    pub definition: std::sync::Arc<WorkflowDefinition>,
    #[serde(default)]
    pub deadline_at: Option<Timestamp>,
}

/// A submitted workflow failed validation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowRejected {
    pub workflow_id: String,
    pub code: String,
    pub message: String,
}

/// The admission limit is reached; the workflow waits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowQueued {
    pub workflow_id: String,
    pub running: i32,
    pub limit: i32,
}

/// The workflow is admitted and its root steps become ready.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowStarted {
    pub workflow_id: String,
}

/// A step attempt entered its pool's ready queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepReady {
    pub workflow_id: String,
    pub step_id: String,
    pub attempt: i32,
    pub pool: String,
    pub priority: i32,
}

/// A step attempt was given to an agent (also published on `baton.assignments`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepAssigned {
    pub workflow_id: String,
    pub step_id: String,
    pub attempt: i32,
    pub agent_id: String,
    pub pool: String,
    pub strategy: Strategy,
    pub kind: String,
    #[serde(default)]
    pub input: Option<JsonText>,
    #[serde(default)]
    pub timeout_at: Option<Timestamp>,
}

/// An agent declined an assignment; the step goes back to the queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRejectedByAgent {
    pub workflow_id: String,
    pub step_id: String,
    pub attempt: i32,
    pub agent_id: String,
    pub reason: String,
}

/// A step attempt ran past its timeout; counts as a failed attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepTimedOut {
    pub workflow_id: String,
    pub step_id: String,
    pub attempt: i32,
    #[serde(default)]
    pub agent_id: Option<String>,
    pub timeout_ms: i64,
}

/// A failed attempt will be retried at `due_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryScheduled {
    pub workflow_id: String,
    pub step_id: String,
    pub attempt: i32,
    pub next_attempt: i32,
    pub due_at: Timestamp,
    pub delay_ms: i64,
    pub reason: String,
}

/// A step used up its attempts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepExhausted {
    pub workflow_id: String,
    pub step_id: String,
    pub attempts: i32,
    pub last_error: String,
}

/// A step will not run (condition false, or an upstream step exhausted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSkipped {
    pub workflow_id: String,
    pub step_id: String,
    pub reason: String,
}

/// A step was cancelled (also published on `baton.assignments` when an agent holds it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepCancelled {
    pub workflow_id: String,
    pub step_id: String,
    pub attempt: i32,
    #[serde(default)]
    pub agent_id: Option<String>,
    pub reason: String,
}

/// Every step succeeded or was skipped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSucceeded {
    pub workflow_id: String,
    pub usage: Usage,
}

/// A step exhausted its attempts, so the workflow failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowFailed {
    pub workflow_id: String,
    #[serde(default)]
    pub step_id: Option<String>,
    pub reason: String,
}

/// The workflow was cancelled on request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowCancelled {
    pub workflow_id: String,
    pub reason: String,
}

/// The workflow passed its deadline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowTimedOut {
    pub workflow_id: String,
    pub deadline_at: Timestamp,
}

/// An agent registration was accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRegistered {
    pub agent_id: String,
    pub pool: String,
    pub capabilities: Vec<String>,
    pub capacity: i32,
    pub weight: i32,
    pub labels: BTreeMap<String, String>,
    pub heartbeat_interval_ms: i64,
}

/// An agent left the fleet (draining).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentDeregistered {
    pub agent_id: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// An agent's health changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentHealthChanged {
    pub agent_id: String,
    pub from: AgentHealth,
    pub to: AgentHealth,
    pub reason: String,
}

/// An agent's heartbeats expired; its steps are re-queued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentLost {
    pub agent_id: String,
    pub last_heartbeat_at: Timestamp,
    #[serde(default)]
    pub requeued: Vec<StepRef>,
}

/// A bottleneck finding crossed its threshold (also on `baton.alerts`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BottleneckDetected {
    pub key: String,
    pub kind: BottleneckKind,
    pub subject_type: SubjectType,
    pub subject: String,
    pub severity: i32,
    pub window_ms: i64,
    pub evidence: BTreeMap<String, f64>,
    pub recommendation: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// A bottleneck finding fell below its resolve threshold for a full window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BottleneckResolved {
    pub key: String,
    pub kind: BottleneckKind,
    pub subject_type: SubjectType,
    pub subject: String,
    pub peak_severity: i32,
    pub first_seen: Timestamp,
    pub resolved_at: Timestamp,
}
