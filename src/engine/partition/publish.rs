//! Publishing results: the records a batch sends to the status,
//! assignment, alert and dead-letter topics (and agent facts forwarded to
//! the other ingress partitions), grouped per topic-partition so a broker
//! takes them in one round trip. The last batch's results travel while the
//! next batch is decided; a checkpoint waits for them (see
//! [`Loop::publish_behind`]).

use super::*;

/// Appends an outbox, all topic-partitions at once.
pub(super) async fn append_outbox(log: &dyn EventLog, outbox: Outbox) -> Result<(), LogError> {
    futures::future::try_join_all(outbox.by_tp.into_iter().map(
        |((topic, partition), records)| async move { log.append(&topic, partition, records).await },
    ))
    .await?;
    Ok(())
}

/// Records to publish, grouped by topic and partition.
#[derive(Default)]
pub(super) struct Outbox {
    pub(super) by_tp: BTreeMap<(String, u32), Vec<ProducerRecord>>,
}

impl Outbox {
    pub(super) fn push(&mut self, topic: String, partition: u32, record: ProducerRecord) {
        self.by_tp
            .entry((topic, partition))
            .or_default()
            .push(record);
    }
}

impl Loop<'_> {
    /// Appends each topic-partition's records; the partitions' appends
    /// overlap (on a broker one round trip in all, not one per partition).
    pub(super) async fn publish(&self, outbox: Outbox) -> Result<(), EngineError> {
        self.count_published(&outbox);
        Ok(append_outbox(self.engine.log.as_ref(), outbox).await?)
    }

    fn count_published(&self, outbox: &Outbox) {
        for ((topic, _), records) in &outbox.by_tp {
            metrics::counter!(names::RESULTS_PUBLISHED.name, "topic" => self.engine.topics.label(topic))
                .increment(records.len() as u64);
        }
    }

    /// Publishes a batch's results behind the loop: the next batch is read,
    /// decided and journalled while they travel, instead of waiting one more
    /// broker round trip per batch. Batches still go out one after another,
    /// in order (this first waits for the previous one), and a checkpoint
    /// waits for them all before it commits the ingress offset, so the
    /// group never commits past an input whose results are unpublished (see
    /// `recover.rs`); a crash meanwhile republishes them from the journal.
    pub(super) async fn publish_behind(&mut self, outbox: Outbox) -> Result<(), EngineError> {
        self.finish_publish().await?;
        if outbox.by_tp.is_empty() {
            return Ok(());
        }
        self.count_published(&outbox);
        let log = self.engine.log.clone();
        self.pending_publish = Some(tokio::spawn(async move {
            append_outbox(log.as_ref(), outbox).await
        }));
        Ok(())
    }

    /// Waits for the results publish in flight, if any.
    pub(super) async fn finish_publish(&mut self) -> Result<(), EngineError> {
        match self.pending_publish.take() {
            None => Ok(()),
            Some(h) => match h.await {
                Ok(r) => Ok(r?),
                Err(_) => Err(EngineError::Task("a results publish failed".into())),
            },
        }
    }
}
