//! The pure core: event types today; deciders (workflow, agent, scheduler,
//! bottleneck) in later issues. Nothing in here does IO, reads a clock, or
//! depends on tokio, sled or rdkafka.

pub mod bottleneck;
pub mod engine;
pub mod events;
pub mod scheduler;
pub mod workflow;
