//! The append-only log: one [`EventLog`] trait, implemented by every backend
//! (embedded segment files today, Kafka later), and checked by one contract
//! suite ([`contract`]) that every backend must pass.
//!
//! # Offset rules (every backend obeys these; the contract suite checks them)
//!
//! - A log is a set of **topics**; each topic has a fixed number of
//!   **partitions** `0..P`, chosen at creation. Creating an existing topic with
//!   the same partition count is a no-op; with a different count it is
//!   [`LogError::PartitionMismatch`].
//! - Within a partition, every record gets an **offset**: a `u64` that strictly
//!   increases in append order. Offsets are *not* guaranteed to be dense (Kafka
//!   leaves gaps for transaction markers and compaction), so a reader always
//!   continues from `last_record.offset + 1`, never from a count.
//! - `append` of a batch to one partition is **atomic**: after a crash either
//!   every record of the batch is readable or none is. It returns the offset of
//!   each record, in batch order. A batch is acknowledged only when the backend
//!   has applied its durability policy (see the backend's docs).
//! - The **high watermark** is the offset the next appended record will get
//!   (`last offset + 1`, or the log start when empty). Only records below it
//!   are ever served.
//! - `read(from)` returns records with `offset >= from` in offset order, at
//!   most `max_records`. Reading at or past the high watermark returns an empty
//!   vector (it never blocks). Reading below the log start offset is
//!   [`LogError::OffsetOutOfRange`]. `read_available(from)` is the same for
//!   a follower that asks again, except that it may also return an empty
//!   vector below the high watermark (records not yet at this client).
//! - A **committed offset** of a consumer group for a partition is the offset
//!   of the *next* record the group will read (Kafka's convention), so a group
//!   that processed offset `n` commits `n + 1`. Commits of one call are applied
//!   together; a group's committed offset is whatever was committed last
//!   (backends do not reject moving it backwards: that is how a reset works).
//! - Record timestamps are milliseconds since the Unix epoch; when a producer
//!   leaves them unset, the backend stamps the append time.

pub mod contract;
pub mod embedded;
pub mod kafka;
pub mod membership;
pub mod partitioner;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

pub use membership::{Membership, OwnershipChange};
pub use partitioner::partition_for_key;

/// An offset within one partition.
pub type Offset = u64;

/// One record header: a name and opaque bytes, like a Kafka header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Bytes,
}

/// A record as handed to [`EventLog::append`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ProducerRecord {
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch; `None` means "stamp the append time".
    pub timestamp_ms: Option<i64>,
}

impl ProducerRecord {
    /// A record with a key and a value, no headers, append-time timestamp.
    pub fn new(key: Option<Bytes>, value: Bytes) -> Self {
        Self {
            key,
            value,
            headers: Vec::new(),
            timestamp_ms: None,
        }
    }
}

/// A record as served by [`EventLog::read`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub partition: u32,
    pub offset: Offset,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub headers: Vec<Header>,
}

/// A topic and its partition count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
    /// Hint for backends with log compaction (Kafka `cleanup.policy=compact`):
    /// only the latest record per key needs to be kept. The embedded backend
    /// keeps everything.
    pub compacted: bool,
}

impl TopicSpec {
    pub fn new(name: impl Into<String>, partitions: u32) -> Self {
        Self {
            name: name.into(),
            partitions,
            compacted: false,
        }
    }
}

/// One partition of one topic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Everything a log backend can fail with. Messages name the topic,
/// partition, offset or file involved so a person can act on them.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("unknown topic `{0}` (create it first, e.g. by running `baton produce`, which creates the standard topics)")]
    UnknownTopic(String),
    #[error("topic `{topic}` has {partitions} partitions; partition {partition} does not exist")]
    UnknownPartition {
        topic: String,
        partition: u32,
        partitions: u32,
    },
    #[error("topic `{topic}` already exists with {existing} partitions, not {requested}")]
    PartitionMismatch {
        topic: String,
        existing: u32,
        requested: u32,
    },
    #[error("invalid topic name `{0}`: use 1-249 characters from [a-zA-Z0-9._-]")]
    InvalidTopicName(String),
    #[error("offset {offset} of {tp} is out of range (log starts at {log_start})")]
    OffsetOutOfRange {
        tp: TopicPartition,
        offset: Offset,
        log_start: Offset,
    },
    #[error("batch of {size} bytes exceeds the limit of {limit} bytes")]
    BatchTooLarge { size: usize, limit: usize },
    #[error("the log at {0} is opened read-only")]
    ReadOnly(String),
    #[error("the data directory {path} is locked by another baton process ({detail})")]
    Locked { path: String, detail: String },
    #[error("corrupt log data in {path} at byte {position}: {reason}")]
    Corrupt {
        path: String,
        position: u64,
        reason: String,
    },
    /// Display includes the IO error; it is deliberately not also exposed as
    /// `source()`, so error chains print it once.
    #[error("{context}: {error}")]
    Io {
        context: String,
        error: std::io::Error,
    },
    #[error("broker error: {0}")]
    Broker(String),
}

impl LogError {
    /// Wraps an IO error with what was being done and to which file.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LogError::Io {
            context: context.into(),
            error: source,
        }
    }
}

/// The log every backend implements. See the module docs for the offset rules.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Creates a topic, or checks that an existing one has `spec.partitions`.
    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError>;

    /// All topics, sorted by name.
    async fn list_topics(&self) -> Result<Vec<TopicSpec>, LogError>;

    /// The partition count of a topic.
    async fn partition_count(&self, topic: &str) -> Result<u32, LogError>;

    /// Appends a batch atomically to one partition and returns each record's
    /// offset, in batch order. An empty batch returns an empty vector.
    async fn append(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<ProducerRecord>,
    ) -> Result<Vec<Offset>, LogError>;

    /// Reads up to `max_records` records with `offset >= from`.
    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: Offset,
        max_records: usize,
    ) -> Result<Vec<StoredRecord>, LogError>;

    /// Reads like [`read`](Self::read), for a consumer that follows the
    /// partition and will ask again: it may return an empty vector while
    /// records at `from` exist but have not reached this client yet, where
    /// `read` would prove the end first (on Kafka a round trip to the
    /// broker). It never skips or reorders records. The default is `read`.
    async fn read_available(
        &self,
        topic: &str,
        partition: u32,
        from: Offset,
        max_records: usize,
    ) -> Result<Vec<StoredRecord>, LogError> {
        self.read(topic, partition, from, max_records).await
    }

    /// Returns once the partition may have a record at `offset` or later,
    /// or after `timeout`: how a consumer that caught up waits for more
    /// without polling. A hint, not a promise: it may return early, so the
    /// caller reads to find out. The default sleeps briefly; backends that
    /// can be woken by appends override it.
    async fn wait_for(
        &self,
        topic: &str,
        partition: u32,
        offset: Offset,
        timeout: Duration,
    ) -> Result<(), LogError> {
        let _ = (topic, partition, offset);
        tokio::time::sleep(timeout.min(Duration::from_millis(1))).await;
        Ok(())
    }

    /// The offset the next appended record will get.
    async fn high_watermark(&self, topic: &str, partition: u32) -> Result<Offset, LogError>;

    /// The first offset still stored (0 until retention removes data).
    async fn log_start(&self, topic: &str, partition: u32) -> Result<Offset, LogError>;

    /// Stores committed offsets (next offset to read) for a consumer group.
    async fn commit(
        &self,
        group: &str,
        offsets: &[(TopicPartition, Offset)],
    ) -> Result<(), LogError>;

    /// The committed offset of a group for a partition, if any.
    async fn committed(&self, group: &str, tp: &TopicPartition)
        -> Result<Option<Offset>, LogError>;

    /// Makes every acknowledged append and commit durable now, whatever the
    /// fsync policy.
    async fn flush(&self) -> Result<(), LogError>;

    /// Joins consumer group `group` on `topic` and reports which of its
    /// partitions this process owns (see [`membership`]). The default, for
    /// single-process backends, owns every partition for good.
    async fn join_group(&self, group: &str, topic: &str) -> Result<Membership, LogError> {
        let _ = group;
        let n = self.partition_count(topic).await?;
        Ok(Membership::fixed((0..n).collect()))
    }
}

/// Empty answers in a row that [`read_toward`] accepts below the end.
const EMPTY_READS_BELOW_END: u32 = 3;

/// Reads from `from` like [`EventLog::read`], for a reader that knows the
/// partition reaches `end`: an empty answer below `end` is taken as "not
/// yet" (a broker's fetch can be slow) and asked again, up to
/// [`EMPTY_READS_BELOW_END`] answers in all. Empty means the end, or a torn
/// batch at the end of an atomic topic (never served).
pub async fn read_toward(
    log: &dyn EventLog,
    topic: &str,
    partition: u32,
    from: Offset,
    end: Offset,
    max_records: usize,
) -> Result<Vec<StoredRecord>, LogError> {
    let mut asked = 0;
    loop {
        let records = log.read(topic, partition, from, max_records).await?;
        asked += 1;
        if !records.is_empty() || from >= end || asked >= EMPTY_READS_BELOW_END {
            return Ok(records);
        }
    }
}
