//! The Kafka backend of [`EventLog`], on librdkafka (rdkafka).
//!
//! - Appends go through one idempotent producer (`acks=all`) and return once
//!   every record is acknowledged; on atomic topics they are framed (see
//!   [`framing`]) so a writer killed mid-append never leaves half a batch
//!   visible to Baton's readers.
//! - Reads go through one positioned consumer per partition ([`reader`]),
//!   kept between calls; nothing is auto-committed.
//! - Offsets are committed explicitly (the engine commits after its
//!   projection is durable), through the group member when this process has
//!   joined the group, else through a standalone client of that group.
//! - Topics are created with the admin client; an existing topic with
//!   another partition count is [`LogError::PartitionMismatch`].
//! - Partition numbers are given explicitly on every append; callers compute
//!   them with [`partition_for_key`](crate::log::partition_for_key), murmur2
//!   like the Java client, so external producers keyed the same way agree.
//!
//! Durability is the broker's: an acknowledged append survives what the
//! broker's replication survives. `flush` waits for in-flight records.

mod client_log;
pub mod config;
pub mod framing;
mod group;
mod metadata;
mod reader;

pub use reader::ReaderConsumer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header as KHeader, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset as KOffset, TopicPartitionList};

pub use config::KafkaConfig;

use self::client_log::ClientLogs;
use self::framing::Frame;
use self::reader::Reader;
use super::membership::Membership;
use super::{EventLog, LogError, Offset, ProducerRecord, StoredRecord, TopicPartition, TopicSpec};

/// Bound on metadata, watermark and commit calls.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a read waits for records it knows exist (or the partition end).
const READ_WAIT: Duration = Duration::from_secs(5);
/// How long a reader that saw the partition end waits for its next fetch
/// before it asks the broker where the end is now.
const AT_END_WAIT: Duration = Duration::from_millis(25);

fn broker(e: KafkaError) -> LogError {
    LogError::Broker(e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LogError::Broker(format!("a background client call failed: {e}")))
}

/// Something that can commit and read a group's offsets.
trait GroupClient: Send + Sync {
    fn commit_sync(&self, tpl: &TopicPartitionList) -> Result<(), KafkaError>;
    fn committed_of(&self, tpl: TopicPartitionList) -> Result<TopicPartitionList, KafkaError>;
}

impl<C: rdkafka::consumer::ConsumerContext + 'static> GroupClient for BaseConsumer<C> {
    fn commit_sync(&self, tpl: &TopicPartitionList) -> Result<(), KafkaError> {
        self.commit(tpl, CommitMode::Sync)
    }
    fn committed_of(&self, tpl: TopicPartitionList) -> Result<TopicPartitionList, KafkaError> {
        self.committed_offsets(tpl, CALL_TIMEOUT)
    }
}

type SharedReader = Arc<tokio::sync::Mutex<Reader>>;

pub struct KafkaLog {
    config: KafkaConfig,
    producer: FutureProducer<ClientLogs>,
    admin: AdminClient<ClientLogs>,
    /// Metadata and watermark queries.
    meta: Arc<reader::ReaderConsumer>,
    readers: Mutex<HashMap<(String, u32), SharedReader>>,
    /// Readers that find the true high watermark (see `high_watermark`).
    probes: Mutex<HashMap<(String, u32), SharedReader>>,
    partitions: Mutex<HashMap<String, u32>>,
    groups: Mutex<HashMap<String, Arc<dyn GroupClient>>>,
    writer: u64,
    seq: AtomicU64,
}

impl KafkaLog {
    /// A plain consumer with this log's reader settings and no group
    /// (positioned by `assign`), e.g. for a baseline measurement.
    pub fn plain_consumer(&self) -> Result<ReaderConsumer, LogError> {
        self.config
            .reader()
            .create_with_context(ClientLogs)
            .map_err(broker)
    }

    /// Creates the clients (they connect lazily) and checks the brokers
    /// answer a metadata request.
    pub async fn connect(config: KafkaConfig) -> Result<KafkaLog, LogError> {
        config.validate().map_err(LogError::Broker)?;
        tracing::info!(brokers = %config.brokers, properties = ?config.redacted(), "connecting to Kafka");
        let producer: FutureProducer<ClientLogs> = config
            .producer()
            .create_with_context(ClientLogs)
            .map_err(broker)?;
        let admin: AdminClient<ClientLogs> = config
            .producer()
            .create_with_context(ClientLogs)
            .map_err(broker)?;
        let meta = config
            .reader()
            .create_with_context(ClientLogs)
            .map_err(broker)?;
        let log = KafkaLog {
            config,
            producer,
            admin,
            meta: Arc::new(meta),
            readers: Mutex::new(HashMap::new()),
            probes: Mutex::new(HashMap::new()),
            partitions: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
            writer: fastrand::u64(..),
            seq: AtomicU64::new(0),
        };
        let meta = log.meta.clone();
        blocking(move || meta.fetch_metadata(None, CALL_TIMEOUT))
            .await?
            .map_err(|e| {
                LogError::Broker(format!(
                    "no answer from the brokers at {}: {e}",
                    log.config.brokers
                ))
            })?;
        Ok(log)
    }

    fn atomic(&self, topic: &str) -> bool {
        self.config.atomic_topics.iter().any(|t| t == topic)
    }

    fn reader(&self, topic: &str, partition: u32) -> Result<SharedReader, LogError> {
        self.reader_in(&self.readers, topic, partition, self.atomic(topic))
    }

    fn reader_in(
        &self,
        map: &Mutex<HashMap<(String, u32), SharedReader>>,
        topic: &str,
        partition: u32,
        atomic: bool,
    ) -> Result<SharedReader, LogError> {
        let mut readers = map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = readers.get(&(topic.to_string(), partition)) {
            return Ok(r.clone());
        }
        let consumer = self
            .config
            .reader()
            .create_with_context(ClientLogs)
            .map_err(broker)?;
        let r = Arc::new(tokio::sync::Mutex::new(Reader::new(
            consumer, topic, partition, atomic,
        )));
        readers.insert((topic.to_string(), partition), r.clone());
        Ok(r)
    }

    fn group_client(&self, group: &str) -> Result<Arc<dyn GroupClient>, LogError> {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = groups.get(group) {
            return Ok(g.clone());
        }
        let c: BaseConsumer = self.config.group(group).create().map_err(broker)?;
        let c: Arc<dyn GroupClient> = Arc::new(c);
        groups.insert(group.to_string(), c.clone());
        Ok(c)
    }
}

/// Waits for deliveries already handed to the producer (their outcome no
/// longer matters, only that none is still in flight).
async fn await_deliveries(pending: Vec<DeliveryFuture>) {
    for f in pending {
        let _ = f.await;
    }
}

#[async_trait]
impl EventLog for KafkaLog {
    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
        super::embedded::validate_topic_name(&spec.name)?;
        let existing = match self.fetch_partitions(&spec.name).await? {
            Some(n) => Some(n),
            None => {
                let mut topic = NewTopic::new(
                    &spec.name,
                    spec.partitions as i32,
                    TopicReplication::Fixed(self.config.replication),
                );
                if spec.compacted {
                    topic = topic.set("cleanup.policy", "compact");
                }
                let opts = AdminOptions::new().operation_timeout(Some(CALL_TIMEOUT));
                let results = self
                    .admin
                    .create_topics([&topic], &opts)
                    .await
                    .map_err(broker)?;
                for r in results {
                    match r {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((name, code)) => {
                            return Err(LogError::Broker(format!(
                                "creating topic `{name}`: {code}"
                            )))
                        }
                    }
                }
                Some(self.await_topic(spec).await?)
            }
        };
        match existing {
            Some(n) if n != spec.partitions => Err(LogError::PartitionMismatch {
                topic: spec.name.clone(),
                existing: n,
                requested: spec.partitions,
            }),
            Some(n) => {
                self.partitions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(spec.name.clone(), n);
                Ok(())
            }
            None => Err(LogError::UnknownTopic(spec.name.clone())),
        }
    }

    async fn list_topics(&self) -> Result<Vec<TopicSpec>, LogError> {
        let meta = self.meta.clone();
        let md = blocking(move || meta.fetch_metadata(None, CALL_TIMEOUT))
            .await?
            .map_err(broker)?;
        let mut topics: Vec<TopicSpec> = md
            .topics()
            .iter()
            .filter(|t| !t.name().starts_with("__") && t.error().is_none())
            .map(|t| TopicSpec::new(t.name(), t.partitions().len() as u32))
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    async fn partition_count(&self, topic: &str) -> Result<u32, LogError> {
        if let Some(n) = self
            .partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
        {
            return Ok(*n);
        }
        let n = self
            .fetch_partitions(topic)
            .await?
            .ok_or_else(|| LogError::UnknownTopic(topic.to_string()))?;
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_string(), n);
        Ok(n)
    }

    async fn append(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<ProducerRecord>,
    ) -> Result<Vec<Offset>, LogError> {
        self.check(topic, partition).await?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let frame = self.atomic(topic).then(|| Frame {
            writer: self.writer,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            index: 0,
            count: records.len() as u32,
        });
        let mut pending = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len() + 1);
            for h in &r.headers {
                headers = headers.insert(KHeader {
                    key: &h.key,
                    value: Some(h.value.as_ref()),
                });
            }
            if let Some(f) = frame {
                let h = Frame {
                    index: i as u32,
                    ..f
                }
                .header();
                headers = headers.insert(KHeader {
                    key: &h.key,
                    value: Some(h.value.as_ref()),
                });
            }
            let mut rec = FutureRecord::<[u8], [u8]>::to(topic)
                .partition(partition as i32)
                .payload(r.value.as_ref())
                .headers(headers);
            if let Some(k) = &r.key {
                rec = rec.key(k.as_ref());
            }
            if let Some(ts) = r.timestamp_ms {
                rec = rec.timestamp(ts);
            }
            loop {
                match self.producer.send_result(rec) {
                    Ok(f) => {
                        pending.push(f);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // The local queue is full: let deliveries drain.
                        rec = back;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((e, _)) => {
                        await_deliveries(pending).await;
                        return Err(broker(e));
                    }
                }
            }
        }
        let mut offsets = Vec::with_capacity(pending.len());
        let mut failed = None;
        for f in pending {
            match f.await {
                Ok(Ok(d)) => offsets.push(d.offset.max(0) as u64),
                Ok(Err((e, _))) => {
                    failed.get_or_insert_with(|| broker(e));
                }
                Err(_) => {
                    failed.get_or_insert_with(|| LogError::Broker("the producer went away".into()));
                }
            }
        }
        // Every delivery of this append is settled before an error is
        // returned: a caller that retries (a restarted partition loop reads
        // the journal's end first) must not race records still in flight.
        failed.map_or(Ok(offsets), Err)
    }

    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: Offset,
        max_records: usize,
    ) -> Result<Vec<StoredRecord>, LogError> {
        self.check(topic, partition).await?;
        if max_records == 0 {
            return Ok(Vec::new());
        }
        let shared = self.reader(topic, partition)?;
        let mut r = shared.clone().lock_owned().await;
        r.position(from)?;
        r.drain(max_records)?;
        // Each round either serves records, proves the end, or steps a
        // seeking reader back (at most ~64 times: the step doubles).
        for _ in 0..70 {
            if r.has_ready() || r.is_out_of_range() {
                break;
            }
            if r.at_end() {
                // The consumer saw the end before: anything new arrives with
                // its next fetch; only a quiet partition costs a probe.
                r = blocking(move || {
                    let res = r.fill(max_records, AT_END_WAIT);
                    (r, res)
                })
                .await
                .and_then(|(r, res)| res.map(|()| r))?;
                if r.has_ready() {
                    break;
                }
                let hi = self.true_high_watermark(topic, partition).await?;
                if r.fetched_next() >= hi {
                    return Ok(Vec::new());
                }
                // Told "end" below the end: the broker skipped the batch
                // holding the requested offset.
                r.step_back()?;
            }
            let wait = if r.seeking() {
                r.seek_wait()
            } else {
                READ_WAIT
            };
            r = blocking(move || {
                let res = r.fill(max_records, wait);
                (r, res)
            })
            .await
            .and_then(|(r, res)| res.map(|()| r))?;
            if !r.has_ready() && !r.at_end() {
                // Neither records nor an end: a seeking reader may sit inside
                // the last batch on a broker that skips it.
                if r.seeking() && r.step_back()? {
                    continue;
                }
                // A seek that ran out of steps has only waited a short
                // while; a slow broker gets one full wait before "nothing".
                if wait < READ_WAIT {
                    continue;
                }
                break;
            }
        }
        if r.take_out_of_range() {
            r.unposition();
            let (lo, _) = self.listed_watermarks(topic, partition).await?;
            let hi = self.true_high_watermark(topic, partition).await?;
            if from >= hi {
                return Ok(Vec::new());
            }
            return Err(LogError::OffsetOutOfRange {
                tp: TopicPartition::new(topic, partition),
                offset: from,
                log_start: lo,
            });
        }
        Ok(r.take(max_records))
    }

    /// What the partition's reader already holds, without proving the end
    /// (an empty answer costs nothing). A reader that has to reposition
    /// takes the full `read`: the broker may skip the batch holding `from`.
    async fn read_available(
        &self,
        topic: &str,
        partition: u32,
        from: Offset,
        max_records: usize,
    ) -> Result<Vec<StoredRecord>, LogError> {
        self.check(topic, partition).await?;
        let shared = self.reader(topic, partition)?;
        let mut r = shared.clone().lock_owned().await;
        if max_records == 0 || r.next_expected() != Some(from) {
            drop(r);
            return self.read(topic, partition, from, max_records).await;
        }
        r.drain(max_records)?;
        if r.is_out_of_range() {
            drop(r);
            return self.read(topic, partition, from, max_records).await;
        }
        Ok(r.take(max_records))
    }

    async fn wait_for(
        &self,
        topic: &str,
        partition: u32,
        offset: Offset,
        timeout: Duration,
    ) -> Result<(), LogError> {
        self.check(topic, partition).await?;
        let shared = self.reader(topic, partition)?;
        let mut r = shared.clone().lock_owned().await;
        r.position(offset)?;
        r.drain(1)?;
        if r.has_ready() {
            return Ok(());
        }
        blocking(move || r.fill(1, timeout)).await??;
        Ok(())
    }

    async fn high_watermark(&self, topic: &str, partition: u32) -> Result<Offset, LogError> {
        self.true_high_watermark(topic, partition).await
    }

    async fn log_start(&self, topic: &str, partition: u32) -> Result<Offset, LogError> {
        Ok(self.listed_watermarks(topic, partition).await?.0)
    }

    async fn commit(
        &self,
        group: &str,
        offsets: &[(TopicPartition, Offset)],
    ) -> Result<(), LogError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (tp, o) in offsets {
            tpl.add_partition_offset(&tp.topic, tp.partition as i32, KOffset::Offset(*o as i64))
                .map_err(broker)?;
        }
        let client = self.group_client(group)?;
        blocking(move || client.commit_sync(&tpl))
            .await?
            .map_err(broker)
    }

    async fn committed(
        &self,
        group: &str,
        tp: &TopicPartition,
    ) -> Result<Option<Offset>, LogError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&tp.topic, tp.partition as i32);
        let client = self.group_client(group)?;
        let got = blocking(move || client.committed_of(tpl))
            .await?
            .map_err(broker)?;
        let offset = got
            .find_partition(&tp.topic, tp.partition as i32)
            .map(|e| e.offset());
        Ok(match offset {
            Some(KOffset::Offset(o)) if o >= 0 => Some(o as u64),
            _ => None,
        })
    }

    /// Nothing to do: an append is acknowledged only once the broker has
    /// it with `acks=all`, which is all the durability a client can ask
    /// for, and commits are synchronous. (Flushing the producer would wait
    /// for *other* callers' unacknowledged records too: under a steady load
    /// its queue is rarely empty, and checkpoints waited 0.1 to 5.6 s on it,
    /// stalling every partition loop behind the checkpoint writer.)
    async fn flush(&self) -> Result<(), LogError> {
        Ok(())
    }

    async fn join_group(&self, group: &str, topic: &str) -> Result<Membership, LogError> {
        self.partition_count(topic).await?;
        let (membership, member) = group::join(&self.config.group(group), topic).map_err(broker)?;
        let member: Arc<dyn GroupClient> = member;
        self.groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(group.to_string(), member);
        Ok(membership)
    }
}
