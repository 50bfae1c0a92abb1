//! Result messages the engine publishes for users and operators that are not
//! journal facts themselves: workflow status changes (`baton.status`) and
//! dead letters (`baton.dlq`).
//!
//! Invariant: mirrors `schemas/results/*.avsc` field by field.

use serde::{Deserialize, Serialize};

use super::common::{Usage, WorkflowStatus};
use super::values::Blob;

/// A workflow's status changed; keyed by workflow id, latest wins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowStatusChanged {
    pub workflow_id: String,
    pub status: WorkflowStatus,
    #[serde(default)]
    pub previous: Option<WorkflowStatus>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub usage: Usage,
}

/// Input the engine could not accept, with where it came from and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    #[serde(default)]
    pub key: Option<Blob>,
    pub original: Blob,
    pub reason_code: String,
    pub message: String,
}
