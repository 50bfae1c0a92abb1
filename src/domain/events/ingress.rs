//! Ingress events: requests and reports written by users and agents to
//! `baton.ingress`. Untrusted: the engine validates them before anything
//! reaches the journal. Accepted reports (`StepStarted`, `StepSucceeded`,
//! `StepFailed`, `AgentHeartbeat`) are also recorded as journal facts.
//!
//! Invariant: mirrors `schemas/ingress/*.avsc` field by field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{Usage, WorkflowDefinition};
use super::values::JsonText;

fn one() -> i32 {
    1
}

fn default_heartbeat_interval_ms() -> i64 {
    5_000
}

fn yes() -> bool {
    true
}

/// Submit a workflow for execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitWorkflow {
    pub workflow_id: String,
    pub definition: WorkflowDefinition,
}

/// Cancel a workflow; running steps get a cancel message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelWorkflow {
    pub workflow_id: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// An agent joins the fleet (or updates its registration).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterAgent {
    pub agent_id: String,
    pub pool: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    pub capacity: i32,
    #[serde(default = "one")]
    pub weight: i32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default = "default_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: i64,
}

/// Periodic liveness and load report from an agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentHeartbeat {
    pub agent_id: String,
    pub in_flight: i32,
    #[serde(default)]
    pub cpu: Option<f64>,
    #[serde(default)]
    pub memory_bytes: Option<i64>,
}

/// An agent leaves: no new work; running steps finish.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeregisterAgent {
    pub agent_id: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// An agent began executing an assigned step attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepStarted {
    pub workflow_id: String,
    pub step_id: String,
    pub attempt: i32,
    pub agent_id: String,
}

/// A step attempt finished successfully.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSucceeded {
    pub workflow_id: String,
    pub step_id: String,
    pub attempt: i32,
    pub agent_id: String,
    #[serde(default)]
    pub output: Option<JsonText>,
    #[serde(default)]
    pub usage: Usage,
}

/// A step attempt failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepFailed {
    pub workflow_id: String,
    pub step_id: String,
    pub attempt: i32,
    pub agent_id: String,
    pub error: String,
    #[serde(default = "yes")]
    pub retryable: bool,
}

/// An agent declines an assignment (e.g. at capacity); the step is re-queued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDeclined {
    pub workflow_id: String,
    pub step_id: String,
    pub attempt: i32,
    pub agent_id: String,
    pub reason: String,
}
