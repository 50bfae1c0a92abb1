//! Baton: an event-sourced orchestrator for fleets of AI agents.
//!
//! - [`domain`]: the pure core (event types; deciders later).
//! - [`codec`]: Avro single-object encoding of events, schema registry.
//! - [`log`]: the `EventLog` trait and its backends.

pub mod domain;
pub mod codec;
pub mod log;
