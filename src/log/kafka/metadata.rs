//! Topic metadata and watermarks of the Kafka backend: partition counts,
//! the wait for a new topic's metadata, and high watermarks that stay
//! correct on brokers whose ListOffsets answer is too low (tansu 0.6).
//!
//! Invariant: every answer comes from the broker at call time (nothing is
//! cached here), so a topic created or grown by another process is seen.

use std::time::Duration;

use rdkafka::consumer::Consumer;

use super::reader::SEEK_WAIT;
use super::{blocking, broker, KafkaLog, CALL_TIMEOUT};
use crate::log::{EventLog, LogError, Offset, TopicSpec};

impl KafkaLog {
    /// Partition count from metadata (`None` when the topic does not exist).
    pub(super) async fn fetch_partitions(&self, topic: &str) -> Result<Option<u32>, LogError> {
        let (meta, name) = (self.meta.clone(), topic.to_string());
        let md = blocking(move || meta.fetch_metadata(Some(&name), CALL_TIMEOUT))
            .await?
            .map_err(broker)?;
        let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
            return Ok(None);
        };
        if t.error().is_some() || t.partitions().is_empty() {
            return Ok(None);
        }
        Ok(Some(t.partitions().len() as u32))
    }

    pub(super) async fn check(&self, topic: &str, partition: u32) -> Result<(), LogError> {
        let partitions = self.partition_count(topic).await?;
        if partition >= partitions {
            return Err(LogError::UnknownPartition {
                topic: topic.to_string(),
                partition,
                partitions,
            });
        }
        Ok(())
    }

    /// Log start and high watermark as the broker's ListOffsets reports them.
    pub(super) async fn listed_watermarks(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<(Offset, Offset), LogError> {
        self.check(topic, partition).await?;
        let (meta, name) = (self.meta.clone(), topic.to_string());
        let (lo, hi) =
            blocking(move || meta.fetch_watermarks(&name, partition as i32, CALL_TIMEOUT))
                .await?
                .map_err(broker)?;
        Ok((lo.max(0) as u64, hi.max(0) as u64))
    }

    /// The high watermark, read off the partition itself: some brokers
    /// (tansu 0.6) answer ListOffsets with the last *batch's* base offset + 1,
    /// which is too low. A probe reader consumes from just below the listed
    /// value to the end of the partition; the end is the last offset + 1.
    /// On a broker that answers correctly this reads one record.
    pub(super) async fn true_high_watermark(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<Offset, LogError> {
        let (lo, listed) = self.listed_watermarks(topic, partition).await?;
        if listed <= lo {
            return Ok(listed);
        }
        let shared = self.reader_in(&self.probes, topic, partition, false)?;
        let mut probe = shared.lock_owned().await;
        let from = match probe.next_expected() {
            Some(n) if n + 1 >= listed => n,
            _ => listed - 1,
        };
        probe.position(from)?;
        let probe = blocking(move || -> Result<_, LogError> {
            loop {
                let before = probe.fetched_next();
                probe.fill(usize::MAX, SEEK_WAIT)?;
                probe.take(usize::MAX);
                if probe.at_end() || probe.fetched_next() == before {
                    return Ok(probe);
                }
            }
        })
        .await??;
        Ok(probe.fetched_next().max(listed))
    }

    /// Waits until the topic's metadata shows every partition (a topic is
    /// usable a moment after it is created).
    pub(super) async fn await_topic(&self, spec: &TopicSpec) -> Result<u32, LogError> {
        for _ in 0..100 {
            if let Some(n) = self.fetch_partitions(&spec.name).await? {
                return Ok(n);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(LogError::Broker(format!(
            "topic `{}` was created but its metadata did not appear",
            spec.name
        )))
    }
}
