//! Records and enums shared by several events: workflow definitions, retry
//! policy, usage, and the enums of states and kinds.
//!
//! Invariant: field order and types mirror the `.avsc` files in
//! `schemas/common/` exactly; the codec's conformance tests enforce it.
//! Serde `default`s mirror the Avro field defaults.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::values::JsonText;

/// Token and cost figures reported with a successful step.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Usage {
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost: f64,
}

impl Usage {
    /// Adds `other`, saturating: a sum of accepted (non-negative, finite)
    /// figures never wraps; a cost sum too large for `f64` stays at
    /// `f64::MAX` rather than turning infinite.
    pub fn add(&mut self, other: &Usage) {
        self.tokens_in = self.tokens_in.saturating_add(other.tokens_in);
        self.tokens_out = self.tokens_out.saturating_add(other.tokens_out);
        let cost = self.cost + other.cost;
        self.cost = if cost.is_nan() {
            self.cost
        } else {
            cost.clamp(-f64::MAX, f64::MAX)
        };
    }
}

/// How the delay between attempts grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    Fixed,
    Linear,
    Exponential,
}

/// When and how often a failed step is tried again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    pub max_attempts: i32,
    pub backoff: Backoff,
    pub base_ms: i64,
    pub max_ms: i64,
}

/// One step of a workflow DAG.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDefinition {
    pub id: String,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub timeout_ms: Option<i64>,
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub input: Option<JsonText>,
    #[serde(default)]
    pub when: Option<String>,
}

impl StepDefinition {
    /// A step with only an id and its dependencies; every other field at
    /// its schema default (fill the rest with struct update syntax).
    pub fn new(id: &str, depends_on: &[&str]) -> Self {
        StepDefinition {
            id: id.into(),
            kind: None,
            capabilities: Vec::new(),
            pool: None,
            depends_on: depends_on.iter().map(|d| d.to_string()).collect(),
            timeout_ms: None,
            retry: None,
            priority: 0,
            input: None,
            when: None,
        }
    }

    /// The step kind used for statistics: `kind`, or the step id.
    pub fn kind_or_id(&self) -> &str {
        self.kind.as_deref().unwrap_or(&self.id)
    }
}

/// A workflow: a DAG of steps plus workflow-level settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDefinition {
    pub name: String,
    /// Shared: most workflows are a few templates with their own input, so
    /// the binary decoder hands out one copy per distinct step list (see
    /// `codec::binary::shared`) and a fold validates it once.
    #[serde(deserialize_with = "crate::codec::binary::shared::shared_slice")]
    pub steps: Arc<[StepDefinition]>,
    #[serde(default)]
    pub input: Option<JsonText>,
    #[serde(default)]
    pub deadline_ms: Option<i64>,
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A step attempt, referenced from agent-level events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRef {
    pub workflow_id: String,
    pub step_id: String,
    pub attempt: i32,
}

/// How an agent was chosen for a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    RoundRobin,
    LeastConnections,
    Weighted,
    PerformanceBased,
}

/// Agent health as judged by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentHealth {
    Healthy,
    Degraded,
    Lost,
}

/// Workflow lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

/// What kind of bottleneck a finding describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BottleneckKind {
    Saturation,
    QueueBacklog,
    SlowStep,
    SlowAgent,
    FailingStep,
    FailingAgent,
    StarvedCapability,
    StuckStep,
}

/// What a bottleneck finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectType {
    Pool,
    Capability,
    Agent,
    StepKind,
}
