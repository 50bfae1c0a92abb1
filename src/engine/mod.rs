//! The engine: one loop per partition (see [`partition`]) that reads
//! ingress, decides, appends journal facts, publishes results, commits the
//! ingress offset and checkpoints the projection store.
//!
//! Effectively once: a journal record carries the ingress offset that
//! caused it (header `baton-ingress-offset`) and its causation id; after a
//! crash the partition loads the store's checkpoint, refolds the journal tail
//! beyond it (republishing its results, which keep their ids), restarts
//! ingress after the last offset reflected in the journal, and skips inputs
//! whose event id is already in the dedup window.

pub mod audit;
pub mod bloom;
pub mod estimate;
pub mod fanout;
pub mod history;
pub mod live;
pub mod partition;
pub mod replay;
pub mod report;
pub mod results;
pub mod stats;
pub mod stored;
pub mod supervisor;
pub mod verify;
pub mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::codec::Codec;
use crate::domain::engine::EngineConfig;
use crate::log::{EventLog, LogError};
use crate::store::StoreError;
use crate::topics::Topics;

pub use partition::run_partition;
pub use stats::EngineStats;

/// How the loops run (not part of decisions).
#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub data_dir: PathBuf,
    /// Ingress records read per iteration.
    pub batch: usize,
    /// Checkpoint the store after this many facts...
    pub flush_every_facts: u64,
    /// ...or this much time, whichever comes first.
    pub flush_every: Duration,
    /// Longest wait for new ingress when caught up (appends wake the loop
    /// sooner on logs that support it; see `EventLog::wait_for`).
    pub idle_poll: Duration,
    pub group: String,
}

impl EngineOptions {
    pub fn new(data_dir: PathBuf) -> Self {
        EngineOptions {
            data_dir,
            batch: 4096,
            flush_every_facts: 200_000,
            flush_every: Duration::from_millis(500),
            idle_poll: Duration::from_millis(50),
            group: "baton-engine".into(),
        }
    }
}

/// What every partition loop shares.
pub struct Engine {
    pub log: Arc<dyn EventLog>,
    pub codec: Codec,
    pub topics: Topics,
    pub config: EngineConfig,
    pub options: EngineOptions,
    pub stats: Arc<EngineStats>,
    /// Owned partitions and their progress (for `/readyz` and lag gauges).
    pub live: Arc<live::Live>,
    /// Per-agent metric series (off by default; capped).
    pub agent_labels: crate::telemetry::gauges::AgentLabels,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("encoding a journal fact: {0}")]
    Encode(#[from] crate::codec::EncodeError),
    #[error("a background store write failed to run: {0}")]
    Task(String),
    #[error("journal record {partition}@{offset} does not decode: {reason}")]
    Journal {
        partition: u32,
        offset: u64,
        reason: String,
    },
    /// The engine holds an offset of a partition that the partition does
    /// not reach: records were lost from the log (restored from an older
    /// copy, truncated, or the topic was recreated). Reading on would skip
    /// every new record up to `offset`, so the partition stops.
    #[error("partition {partition} stopped: {topic} partition {partition} ends at offset {end}, but {held} is {offset}; records {end}..{offset} of it were lost from the log (an older copy restored, a truncation or repair, or the topic recreated), and new records there would reuse offsets the engine has already read, so they would be skipped. Nothing more is decided on this partition. Restore the lost records (e.g. from a backup of the data directory), or, if they are gone for good, start afresh: a new --data-dir (embedded log) or a new --topic-prefix (Kafka)")]
    BeyondEnd {
        partition: u32,
        topic: String,
        /// What holds the offset, in words.
        held: String,
        offset: u64,
        end: u64,
    },
    /// An input's facts could not be encoded after they were decided: it
    /// was dead-lettered, and the loop restarts from the journal (which
    /// lacks those facts) skipping it. Retried by the supervisor.
    #[error("partition {partition}: the facts of ingress offset {offset} could not be encoded ({reason}); it was dead-lettered and the loop restarts without it")]
    Poisoned {
        partition: u32,
        offset: u64,
        reason: String,
    },
    /// Where a loop stopped: its partition and the ingress offset it was at.
    #[error("partition {partition} stopped at ingress offset {offset}: {source}")]
    At {
        partition: u32,
        offset: u64,
        #[source]
        source: Box<EngineError>,
    },
}

impl EngineError {
    /// Whether this stops only the partition it names: the supervisor
    /// keeps the others running and reports it (`/readyz`, the log, the
    /// exit status); other errors that are not broker errors stop the
    /// process.
    pub fn stops_partition_only(&self) -> bool {
        matches!(self.root(), EngineError::BeyondEnd { .. })
    }

    /// The error beneath any [`EngineError::At`] context.
    pub fn root(&self) -> &EngineError {
        match self {
            EngineError::At { source, .. } => source.root(),
            e => e,
        }
    }
}

/// Fails with [`EngineError::BeyondEnd`] when `offset`, held by `held`, lies
/// past `end`, the end of partition `partition` of `topic`.
pub fn check_within(
    partition: u32,
    topic: &str,
    held: &str,
    offset: u64,
    end: u64,
) -> Result<(), EngineError> {
    if offset <= end {
        return Ok(());
    }
    Err(EngineError::BeyondEnd {
        partition,
        topic: topic.to_string(),
        held: held.to_string(),
        offset,
        end,
    })
}
