//! The workflow domain. Today: validation of submitted definitions into a
//! checked DAG. The workflow decider (readiness, retries, timeouts,
//! admission) builds on it with the engine.

pub mod condition;
pub mod validate;

pub use validate::{validate, Dag, DefinitionError, Limits};
