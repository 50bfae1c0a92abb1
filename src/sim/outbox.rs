//! Outgoing simulation events, encoded as they are produced and grouped by
//! partition, then appended with one `append` call per partition (split only
//! to stay under the log's batch size limit).
//!
//! Invariants: within a partition, records are appended in the order they
//! were pushed; a record whose encoding fails is not buffered at all; every
//! envelope built here has a fresh random event id. Keys and values of a
//! partition share one buffer, handed to the log as zero-copy `Bytes` slices.

use bytes::Bytes;
use chrono::Utc;
use uuid::Builder;

use super::SimError;
use crate::codec::Codec;
use crate::domain::events::{Envelope, EventId, Payload, Timestamp};
use crate::log::{EventLog, ProducerRecord};

/// Upper bound of encoded bytes per `append` call, well under the embedded
/// log's 16 MiB default batch limit.
const MAX_APPEND_BYTES: usize = 4 << 20;

/// The wall clock as an event timestamp.
pub(crate) fn now() -> Timestamp {
    Timestamp::from_datetime(Utc::now())
}

#[derive(Default)]
struct Part {
    /// Values and keys, back to back: `value | key` per record.
    data: Vec<u8>,
    /// Per record: (value start, key start, end) in `data`.
    spans: Vec<(usize, usize, usize)>,
}

/// Encoded events waiting for their partition's next append.
pub(crate) struct Outbox {
    topic: String,
    codec: Codec,
    parts: Vec<Part>,
    ids: fastrand::Rng,
    pending: usize,
}

impl Outbox {
    /// An empty outbox for `topic` with `partitions` partitions.
    pub(crate) fn new(topic: String, partitions: u32, codec: Codec) -> Outbox {
        Outbox {
            topic,
            codec,
            parts: (0..partitions.max(1)).map(|_| Part::default()).collect(),
            // Entropy-seeded: ids must differ between runs with equal seeds.
            ids: fastrand::Rng::new(),
            pending: 0,
        }
    }

    pub(crate) fn partitions(&self) -> u32 {
        self.parts.len() as u32
    }

    /// Records waiting to be appended.
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    /// A fresh random (v4) event id.
    pub(crate) fn event_id(&mut self) -> EventId {
        EventId(Builder::from_random_bytes(self.ids.u128(..).to_le_bytes()).into_uuid())
    }

    /// An external-input envelope (no causation) around `payload`.
    pub(crate) fn envelope(
        &mut self,
        correlation_id: &str,
        producer: &str,
        occurred_at: Timestamp,
        payload: impl Into<Payload>,
    ) -> Envelope {
        Envelope {
            event_id: self.event_id(),
            correlation_id: correlation_id.to_string(),
            causation_id: None,
            occurred_at,
            producer: producer.to_string(),
            payload: payload.into(),
        }
    }

    /// Encodes `event` and buffers it for `partition` under `key`.
    pub(crate) fn push(
        &mut self,
        partition: u32,
        key: &str,
        event: &Envelope,
    ) -> Result<(), SimError> {
        let count = self.parts.len();
        let part = self
            .parts
            .get_mut(partition as usize)
            .ok_or_else(|| SimError::Config(format!("partition {partition} >= {count}")))?;
        let value_start = part.data.len();
        self.codec.encode_into(event, &mut part.data)?;
        let key_start = part.data.len();
        part.data.extend_from_slice(key.as_bytes());
        part.spans.push((value_start, key_start, part.data.len()));
        self.pending += 1;
        Ok(())
    }

    /// Appends everything buffered, one call per partition (more only when a
    /// partition holds more than [`MAX_APPEND_BYTES`]); the partitions'
    /// appends overlap, and each rides out broker errors for a while
    /// ([`append_or_retry`](super::append_or_retry)). Returns the number of
    /// records appended. On a lasting error the failed partition's records
    /// are lost.
    pub(crate) async fn flush(&mut self, log: &dyn EventLog) -> Result<usize, SimError> {
        let mut written = 0;
        let mut batches: Vec<(u32, Vec<Vec<ProducerRecord>>)> = Vec::new();
        for (partition, part) in self.parts.iter_mut().enumerate() {
            if part.spans.is_empty() {
                continue;
            }
            let buf = Bytes::from(std::mem::take(&mut part.data));
            let spans = std::mem::take(&mut part.spans);
            self.pending -= spans.len();
            written += spans.len();
            let mut chunks = Vec::new();
            let mut chunk = Vec::with_capacity(spans.len());
            let mut chunk_start = 0;
            for (value_start, key_start, end) in spans {
                if !chunk.is_empty() && end - chunk_start > MAX_APPEND_BYTES {
                    chunks.push(std::mem::take(&mut chunk));
                    chunk_start = value_start;
                }
                chunk.push(ProducerRecord::new(
                    Some(buf.slice(key_start..end)),
                    buf.slice(value_start..key_start),
                ));
            }
            chunks.push(chunk);
            batches.push((partition as u32, chunks));
        }
        let topic = &self.topic;
        futures::future::try_join_all(batches.into_iter().map(|(partition, chunks)| async move {
            for chunk in chunks {
                super::append_or_retry(log, topic, partition, chunk).await?;
            }
            Ok::<(), SimError>(())
        }))
        .await?;
        Ok(written)
    }
}

#[cfg(test)]
impl Outbox {
    /// Takes everything buffered, decoded, as (partition, key, event).
    pub(crate) fn drain_decoded(&mut self) -> Vec<(u32, String, Envelope)> {
        let mut out = Vec::new();
        for (p, part) in self.parts.iter_mut().enumerate() {
            for (v, k, e) in part.spans.drain(..) {
                let key = String::from_utf8_lossy(&part.data[k..e]).into_owned();
                let event = self.codec.decode(&part.data[v..k]).expect("decodes");
                out.push((p as u32, key, event));
            }
            part.data.clear();
        }
        self.pending = 0;
        out
    }
}
