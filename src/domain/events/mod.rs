//! The event contract in Rust: the [`Envelope`] every event travels in and
//! the [`Payload`] union of all event records.
//!
//! Invariant: these types mirror `schemas/` exactly (same records, same field
//! order, same union and enum order). The Avro binary codec relies on it and
//! `tests/codec_conformance.rs` proves it against the `.avsc` files. Never
//! add serde attributes that change the shape (`flatten`, `skip_*`, `tag`).

mod bounds;
mod common;
mod describe;
mod ingress;
mod journal;
mod results;
mod values;

use serde::{Deserialize, Serialize};

pub use bounds::*;
pub use common::*;
pub use ingress::*;
pub use journal::*;
pub use results::*;
pub use values::{Blob, EventId, JsonText, Timestamp};

/// The envelope every event travels in, on every topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Unique id; the idempotency key.
    pub event_id: EventId,
    /// Workflow id (agent id for agent lifecycle, finding key for bottlenecks).
    pub correlation_id: String,
    /// The event that caused this one; `None` for external input.
    #[serde(default)]
    pub causation_id: Option<EventId>,
    /// Set by the writer.
    pub occurred_at: Timestamp,
    /// Who wrote it: a user, an agent id, or `baton-engine/<partition>`.
    pub producer: String,
    pub payload: Payload,
}

/// Where an event type belongs in the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Written by users and agents to `baton.ingress`.
    Ingress,
    /// Written by the engine to `baton.journal`.
    Journal,
    /// Published by the engine on a result topic.
    Result,
}

macro_rules! payload {
    ($( $variant:ident => $cat:ident ),+ $(,)?) => {
        /// The union of all event records (Avro union, same order as
        /// `schemas/envelope.avsc`).
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub enum Payload {
            $( $variant($variant), )+
        }

        impl Payload {
            /// Every event type name, in union order, with its category.
            pub const TYPES: &'static [(&'static str, Category)] =
                &[ $( (stringify!($variant), Category::$cat), )+ ];

            /// The Avro record name of this payload.
            pub fn type_name(&self) -> &'static str {
                match self { $( Payload::$variant(_) => stringify!($variant), )+ }
            }

            /// The position of this payload's type in the union.
            pub fn type_index(&self) -> usize {
                let name = self.type_name();
                Self::TYPES.iter().position(|(n, _)| *n == name).unwrap_or(usize::MAX)
            }
        }

        $(
            impl From<$variant> for Payload {
                fn from(v: $variant) -> Self { Payload::$variant(v) }
            }
        )+
    };
}

payload! {
    SubmitWorkflow => Ingress,
    CancelWorkflow => Ingress,
    RegisterAgent => Ingress,
    AgentHeartbeat => Ingress,
    DeregisterAgent => Ingress,
    StepStarted => Ingress,
    StepSucceeded => Ingress,
    StepFailed => Ingress,
    StepDeclined => Ingress,
    WorkflowAccepted => Journal,
    WorkflowRejected => Journal,
    WorkflowQueued => Journal,
    WorkflowStarted => Journal,
    StepReady => Journal,
    StepAssigned => Journal,
    StepRejectedByAgent => Journal,
    StepTimedOut => Journal,
    RetryScheduled => Journal,
    StepExhausted => Journal,
    StepSkipped => Journal,
    StepCancelled => Journal,
    WorkflowSucceeded => Journal,
    WorkflowFailed => Journal,
    WorkflowCancelled => Journal,
    WorkflowTimedOut => Journal,
    AgentRegistered => Journal,
    AgentDeregistered => Journal,
    AgentHealthChanged => Journal,
    AgentLost => Journal,
    BottleneckDetected => Journal,
    BottleneckResolved => Journal,
    WorkflowStatusChanged => Result,
    DeadLetter => Result,
}

impl Payload {
    /// The category of this payload's type.
    pub fn category(&self) -> Category {
        Self::TYPES
            .iter()
            .find(|(n, _)| *n == self.type_name())
            .map(|(_, c)| *c)
            .unwrap_or(Category::Journal)
    }

    /// The natural correlation id: the workflow id for workflow and step
    /// events, the agent id for agent lifecycle, the finding key for
    /// bottlenecks, the source topic for dead letters.
    pub fn correlation_id(&self) -> &str {
        use Payload as P;
        match self {
            P::SubmitWorkflow(e) => &e.workflow_id,
            P::CancelWorkflow(e) => &e.workflow_id,
            P::RegisterAgent(e) => &e.agent_id,
            P::AgentHeartbeat(e) => &e.agent_id,
            P::DeregisterAgent(e) => &e.agent_id,
            P::StepStarted(e) => &e.workflow_id,
            P::StepSucceeded(e) => &e.workflow_id,
            P::StepFailed(e) => &e.workflow_id,
            P::StepDeclined(e) => &e.workflow_id,
            P::WorkflowAccepted(e) => &e.workflow_id,
            P::WorkflowRejected(e) => &e.workflow_id,
            P::WorkflowQueued(e) => &e.workflow_id,
            P::WorkflowStarted(e) => &e.workflow_id,
            P::StepReady(e) => &e.workflow_id,
            P::StepAssigned(e) => &e.workflow_id,
            P::StepRejectedByAgent(e) => &e.workflow_id,
            P::StepTimedOut(e) => &e.workflow_id,
            P::RetryScheduled(e) => &e.workflow_id,
            P::StepExhausted(e) => &e.workflow_id,
            P::StepSkipped(e) => &e.workflow_id,
            P::StepCancelled(e) => &e.workflow_id,
            P::WorkflowSucceeded(e) => &e.workflow_id,
            P::WorkflowFailed(e) => &e.workflow_id,
            P::WorkflowCancelled(e) => &e.workflow_id,
            P::WorkflowTimedOut(e) => &e.workflow_id,
            P::AgentRegistered(e) => &e.agent_id,
            P::AgentDeregistered(e) => &e.agent_id,
            P::AgentHealthChanged(e) => &e.agent_id,
            P::AgentLost(e) => &e.agent_id,
            P::BottleneckDetected(e) => &e.key,
            P::BottleneckResolved(e) => &e.key,
            P::WorkflowStatusChanged(e) => &e.workflow_id,
            P::DeadLetter(e) => &e.source_topic,
        }
    }
}
