//! Baton: an event-sourced orchestrator for fleets of AI agents.
//!
//! - [`domain`]: the pure core (event types; deciders later).
//! - [`codec`]: Avro single-object encoding of events, schema registry.
//! - [`log`]: the `EventLog` trait and its backends.
//! - [`topics`]: topic naming.
//! - [`cli`]: the `baton` command line.

pub mod api;
pub mod cli;
pub mod codec;
pub mod config;
pub mod domain;
pub mod engine;
pub mod log;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod topics;
