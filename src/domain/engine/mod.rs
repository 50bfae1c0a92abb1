//! The partition decider: one [`PartitionState`] per journal partition, fed
//! ingress events and clock ticks, producing journal facts.
//!
//! Decider contract (DESIGN §3), in its in-place form for speed:
//! - [`PartitionState::decide`] validates the input first and returns a
//!   [`Rejection`] *before* anything changes; otherwise it emits facts one at
//!   a time and applies each with [`PartitionState::evolve`] as it goes, so
//!   later decisions of the same input see earlier facts (a success makes the
//!   next step ready, which the scheduler can then assign).
//! - `evolve` is the only code that changes state, and replay calls exactly
//!   it: folding the emitted facts from an empty state reproduces the state
//!   the decider ended with. No IO, no clock (`now` is an argument), no
//!   randomness, no iteration over hash-map order.

mod agents;
mod config;
mod decide;
mod evolve;
mod failures;
mod inputs;
mod kept;
mod observe;
mod state;
mod timers;

pub use config::EngineConfig;
pub use decide::{Fact, Rejection};
pub use state::{
    engine_producer, AgentView, PartitionState, Seen, StepState, StepStatus, WorkflowState,
    ENGINE_PRODUCER_PREFIX, HOME_PARTITION_LABEL,
};
pub use timers::TimerKey;
#[cfg(test)]
mod tests;
