//! The simulation used by `baton demo` and `baton bench`: a simulated agent
//! fleet ([`fleet`]) and a workflow load generator ([`generator`]).
//!
//! Both talk to the engine only through the real log, like any external
//! producer would: they write Avro envelopes to `baton.ingress` and the fleet
//! tails `baton.assignments`. No shortcut into the engine's state exists.
//!
//! Invariants shared by both halves:
//! - Workflow events (SubmitWorkflow, StepStarted/Succeeded/Failed/Declined)
//!   are keyed by workflow id and go to `murmur2(workflow_id) % P` of the
//!   ingress topic; agent lifecycle events (RegisterAgent, AgentHeartbeat,
//!   DeregisterAgent) are keyed by agent id and written once, to the agent's
//!   home partition; the engine forwards them to the other partitions
//!   (`engine::fanout`), as it does for any agent.
//! - Every envelope gets a fresh random `event_id` (from an entropy-seeded
//!   generator, never the simulation seed, so two runs with the same seed do
//!   not collide in the engine's dedup window), `correlation_id` = workflow
//!   or agent id, `producer` = agent id or [`GENERATOR_PRODUCER`], and
//!   `occurred_at` = the wall clock when the event was produced.
//! - Events are appended in batches per partition; the order of events for
//!   one workflow within its partition is the order they were produced.
//! - Sampling (latencies, failures, workflow shapes) comes from `fastrand`
//!   generators seeded by the configuration, so it is reproducible.

mod outbox;

mod agents;
pub mod decisions;
pub mod fleet;
pub mod generator;
pub mod status;

use crate::codec::{DecodeError, EncodeError};
use crate::log::LogError;

pub use fleet::{
    deregister_fleet, homogeneous_fleet, run_fleet, FleetConfig, FleetStats, LatencyDist,
    SimAgentConfig,
};
pub use generator::{run_generator, workflow, GeneratorConfig, Shape};

/// The `producer` of events written by the generator.
pub const GENERATOR_PRODUCER: &str = "sim-generator";

/// The pool simulated agents join by default (the engine's default pool for
/// steps without one).
pub const DEFAULT_POOL: &str = "default";

/// Capabilities every default simulated agent has and the default generator
/// draws from, so the two always agree.
pub const DEFAULT_CAPABILITIES: &[&str] = &["llm", "search", "code"];

/// Everything the simulation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("simulation log error: {0}")]
    Log(#[from] LogError),
    #[error("simulation could not encode an event: {0}")]
    Encode(#[from] EncodeError),
    #[error("simulation could not decode an event: {0}")]
    Decode(#[from] DecodeError),
    #[error("invalid simulation config: {0}")]
    Config(String),
}

/// How long a simulated participant waits after a broker error before it
/// reads or appends again.
const BROKER_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// Reads like [`EventLog::read_available`] (a simulated participant asks
/// again anyway, so an empty answer need not prove the end), but answers a
/// broker error with "nothing
/// yet" after a short wait: the simulated fleet and the status watcher ride
/// out a broker restart the way real clients do, by retrying. (The engine
/// does not: its partition loop restarts and recovers instead.)
pub(crate) async fn read_or_wait(
    log: &dyn crate::log::EventLog,
    topic: &str,
    partition: u32,
    from: crate::log::Offset,
    max_records: usize,
) -> Result<Vec<crate::log::StoredRecord>, SimError> {
    match log
        .read_available(topic, partition, from, max_records)
        .await
    {
        Err(LogError::Broker(e)) => {
            tracing::debug!(topic, partition, error = %e, "broker error while reading; retrying");
            tokio::time::sleep(BROKER_RETRY).await;
            Ok(Vec::new())
        }
        r => Ok(r?),
    }
}

/// How long a simulated participant keeps retrying one append through
/// broker errors before it gives up (a broker restart takes seconds).
const APPEND_PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// Appends like [`EventLog::append`], retrying on a broker error (a broker
/// restarting answers in-flight produces with an error) for up to
/// [`APPEND_PATIENCE`]. A retried batch may land twice; every record carries
/// its own event id, so the engine folds it once (it dedups ingress by id).
pub(crate) async fn append_or_retry(
    log: &dyn crate::log::EventLog,
    topic: &str,
    partition: u32,
    records: Vec<crate::log::ProducerRecord>,
) -> Result<(), SimError> {
    let deadline = std::time::Instant::now() + APPEND_PATIENCE;
    loop {
        match log.append(topic, partition, records.clone()).await {
            Err(LogError::Broker(e)) if std::time::Instant::now() < deadline => {
                tracing::debug!(topic, partition, error = %e, "broker error while appending; retrying");
                tokio::time::sleep(BROKER_RETRY).await;
            }
            r => return Ok(r.map(drop)?),
        }
    }
}

/// SplitMix64: spreads `(seed, index)` into a well-mixed generator seed, so
/// neighbouring indices get unrelated random streams.
pub(crate) fn mix_seed(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_seeds_differ_per_index_and_are_stable() {
        assert_eq!(mix_seed(7, 1), mix_seed(7, 1));
        assert_ne!(mix_seed(7, 1), mix_seed(7, 2));
        assert_ne!(mix_seed(7, 1), mix_seed(8, 1));
    }
}
