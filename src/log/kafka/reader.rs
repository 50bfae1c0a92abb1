//! One partition's reader: a librdkafka consumer positioned with `assign`
//! (no group), kept between calls so sequential reads stream instead of
//! re-fetching.
//!
//! Invariants:
//! - [`Reader::next_expected`] is the offset a caller continuing where the
//!   last read ended asks for; any other `from` repositions the consumer and
//!   drops everything buffered.
//! - Records reach `ready` in offset order, through the [`Unframer`] on
//!   atomic topics, so a torn batch is never served.
//! - Polls that may wait run on a blocking thread (see `KafkaLog::read`);
//!   [`Reader::drain`] never waits.
//! - Records below the requested offset, or already served, are dropped: a
//!   broker may answer a fetch with a whole batch that starts earlier, or
//!   (tansu 0.6 with memory storage) only with batches that start *at or
//!   after* the fetch offset. For the latter, a reader whose first record
//!   lies beyond the requested offset steps back (exponentially) and skips
//!   forward, so a read from the middle of a batch still sees every record.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset as KOffset, TopicPartitionList};

use super::client_log::ClientLogs;
use super::framing::Unframer;
use crate::log::{Header, LogError, Offset, StoredRecord};

pub type ReaderConsumer = BaseConsumer<ClientLogs>;

pub struct Reader {
    consumer: ReaderConsumer,
    topic: String,
    partition: u32,
    atomic: bool,
    positioned: bool,
    /// Offset after the last record taken from the consumer.
    fetched_next: Offset,
    ready: VecDeque<StoredRecord>,
    unframer: Unframer,
    scratch: Vec<StoredRecord>,
    /// The consumer reported the end of the partition and nothing since.
    at_end: bool,
    /// Set when the broker said the position is out of range.
    out_of_range: bool,
    /// While seeking: the requested offset and where the consumer was
    /// actually assigned (at or below it).
    seek: Option<(Offset, Offset)>,
    /// How long the current seek step waits for a first record before it
    /// steps further back: doubles per step, so a slow broker (whose fetch
    /// outlasts the first wait) is eventually waited for rather than
    /// cancelled by every step.
    seek_wait: Duration,
}

/// A repositioned reader's first wait for a record before it concludes the
/// broker skipped the batch holding the requested offset.
pub const SEEK_WAIT: Duration = Duration::from_millis(250);
/// The longest a seek step waits.
const SEEK_WAIT_MAX: Duration = Duration::from_secs(8);

impl Reader {
    pub fn new(consumer: ReaderConsumer, topic: &str, partition: u32, atomic: bool) -> Self {
        Reader {
            consumer,
            topic: topic.to_string(),
            partition,
            atomic,
            positioned: false,
            fetched_next: 0,
            ready: VecDeque::new(),
            unframer: Unframer::default(),
            scratch: Vec::new(),
            at_end: false,
            out_of_range: false,
            seek: None,
            seek_wait: SEEK_WAIT,
        }
    }

    fn assign(&mut self, at: Offset) -> Result<(), LogError> {
        let mut tpl = TopicPartitionList::new();
        let p = i32::try_from(self.partition).unwrap_or(i32::MAX);
        let o = i64::try_from(at).unwrap_or(i64::MAX);
        tpl.add_partition_offset(&self.topic, p, KOffset::Offset(o))
            .map_err(super::broker)?;
        self.consumer.assign(&tpl).map_err(super::broker)?;
        self.at_end = false;
        Ok(())
    }

    /// True while no record at or below the requested offset has been seen.
    pub fn seeking(&self) -> bool {
        self.seek.is_some()
    }

    /// Assigns further below the requested offset (twice as far as last
    /// time); false when already at offset 0.
    pub fn step_back(&mut self) -> Result<bool, LogError> {
        let Some((target, at)) = self.seek else {
            return Ok(false);
        };
        if at == 0 {
            self.seek = None;
            return Ok(false);
        }
        let next = target.saturating_sub((2 * (target - at)).max(1));
        self.seek = Some((target, next));
        self.seek_wait = (self.seek_wait * 2).min(SEEK_WAIT_MAX);
        self.assign(next)?;
        Ok(true)
    }

    /// How long to wait for the first record of the current seek step.
    pub fn seek_wait(&self) -> Duration {
        self.seek_wait
    }

    /// Where a continuing read starts.
    pub fn next_expected(&self) -> Option<Offset> {
        if !self.positioned {
            return None;
        }
        Some(
            self.ready
                .front()
                .map(|r| r.offset)
                .or(self.unframer.first_pending())
                .unwrap_or(self.fetched_next),
        )
    }

    /// Offset after the last record the consumer delivered.
    pub fn fetched_next(&self) -> Offset {
        self.fetched_next
    }

    pub fn at_end(&self) -> bool {
        self.at_end
    }

    pub fn is_out_of_range(&self) -> bool {
        self.out_of_range
    }

    pub fn take_out_of_range(&mut self) -> bool {
        std::mem::take(&mut self.out_of_range)
    }

    /// Makes `from` the next record served (repositions if needed).
    pub fn position(&mut self, from: Offset) -> Result<(), LogError> {
        if self.next_expected() == Some(from) {
            return Ok(());
        }
        self.assign(from)?;
        self.seek = Some((from, from));
        self.seek_wait = SEEK_WAIT;
        self.positioned = true;
        self.fetched_next = from;
        self.ready.clear();
        self.unframer.reset();
        self.out_of_range = false;
        Ok(())
    }

    /// Forgets the position (the next read repositions).
    pub fn unposition(&mut self) {
        self.positioned = false;
        self.ready.clear();
        self.unframer.reset();
    }

    /// Takes up to `max` ready records.
    pub fn take(&mut self, max: usize) -> Vec<StoredRecord> {
        let n = max.min(self.ready.len());
        self.ready.drain(..n).collect()
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Moves what the consumer already has into `ready`, without waiting.
    pub fn drain(&mut self, max: usize) -> Result<(), LogError> {
        self.fill(max, Duration::ZERO)
    }

    /// Polls until `max` records are ready, the end of the partition is
    /// reported, or `wait` passes without a record. Waits only while nothing
    /// is ready.
    pub fn fill(&mut self, max: usize, wait: Duration) -> Result<(), LogError> {
        let deadline = Instant::now() + wait;
        while self.ready.len() < max && !self.out_of_range {
            let timeout = if self.ready.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            let polled = match self.consumer.poll(timeout) {
                None => return Ok(()),
                Some(Ok(m)) => Ok(record_of(&m)),
                Some(Err(e)) => Err(e),
            };
            match polled {
                Ok(r) => {
                    self.at_end = false;
                    if let Some((target, _)) = self.seek {
                        if r.offset > target && self.step_back()? {
                            // The broker skipped the batch holding `target`.
                            continue;
                        }
                        self.seek = None;
                    }
                    if r.offset < self.fetched_next {
                        continue;
                    }
                    self.fetched_next = r.offset + 1;
                    if self.atomic {
                        self.unframer.push(r, &mut self.scratch);
                        self.ready.extend(self.scratch.drain(..));
                    } else {
                        self.ready.push_back(r);
                    }
                }
                Err(KafkaError::PartitionEOF(_)) => {
                    self.at_end = true;
                    return Ok(());
                }
                Err(e) if is_out_of_range(&e) => {
                    self.out_of_range = true;
                    return Ok(());
                }
                Err(e) if is_fatal(&e) => return Err(super::broker(e)),
                Err(e) => {
                    // Transport hiccups: librdkafka reconnects by itself.
                    tracing::debug!(topic = %self.topic, partition = self.partition, error = %e, "transient consumer error");
                    if Instant::now() >= deadline {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}

fn is_out_of_range(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageConsumption(
            RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset
        ) | KafkaError::MessageConsumptionFatal(
            RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset
        )
    )
}

fn is_fatal(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageConsumptionFatal(_)
            | KafkaError::MessageConsumption(
                RDKafkaErrorCode::UnknownTopicOrPartition
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::UnknownPartition
                    | RDKafkaErrorCode::TopicAuthorizationFailed
            )
    )
}

fn record_of(m: &BorrowedMessage<'_>) -> StoredRecord {
    let headers = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| Header {
                    key: h.key.to_string(),
                    value: h.value.map(Bytes::copy_from_slice).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    StoredRecord {
        partition: u32::try_from(m.partition()).unwrap_or(0),
        offset: u64::try_from(m.offset()).unwrap_or(0),
        timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
        key: m.key().map(Bytes::copy_from_slice),
        value: m.payload().map(Bytes::copy_from_slice).unwrap_or_default(),
        headers,
    }
}
