//! Dead-lettering an ingress record: a `DeadLetter` on `<prefix>dlq` with
//! the record's partition, offset, key, original bytes and the reason.
//!
//! Invariant: a dead letter always fits the event size limit, whatever the
//! record was (an oversize one included). The reason is bounded
//! (`events::MAX_TEXT_BYTES`); when the whole does not fit, the original
//! bytes and the key are cut, and the message says so with the original's
//! full length and SHA-256, so the input can still be recognised. A dead
//! letter that cannot be encoded even then is logged and counted, never an
//! error: dead-lettering must not stop the partition.

use sha2::{Digest, Sha256};

use super::*;

/// Room kept for everything in a dead letter but the original bytes when
/// they must be cut (envelope, reason, key, topic names).
const DLQ_RESERVE: usize = 32 << 10;
/// Longest key (and correlation id) a cut dead letter keeps.
const CUT_KEY_BYTES: usize = 1 << 10;

impl Loop<'_> {
    pub(super) fn dead_letter(
        &self,
        r: &StoredRecord,
        code: &str,
        message: String,
        outbox: &mut Outbox,
    ) -> Result<(), EngineError> {
        let ingress = self.engine.topics.ingress();
        let id = EventId(Uuid::new_v5(
            &DLQ_NAMESPACE,
            format!("{ingress}/{}/{}", self.p, r.offset).as_bytes(),
        ));
        let message = bound_text(&message);
        let key_text = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
        let mut env = Envelope {
            event_id: id,
            correlation_id: r.key.as_deref().map(key_text).unwrap_or_default(),
            causation_id: None,
            occurred_at: now(),
            producer: self.state.producer.clone(),
            payload: Payload::DeadLetter(DeadLetter {
                source_topic: ingress,
                source_partition: self.p as i32,
                source_offset: r.offset as i64,
                key: r.key.as_ref().map(|k| Blob(k.to_vec())),
                original: Blob(r.value.to_vec()),
                reason_code: code.to_string(),
                message: message.clone(),
            }),
        };
        let mut record_key = r.key.clone();
        let value = match self.engine.codec.encode(&env) {
            Ok(v) => v,
            Err(_) => {
                // Too large as it is: cut the original and the key.
                let limit = self.engine.codec.max_event_bytes();
                let keep = limit.saturating_sub(DLQ_RESERVE).min(r.value.len());
                let sha: String = Sha256::digest(&r.value)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let key = r
                    .key
                    .as_ref()
                    .map(|k| k.slice(..k.len().min(CUT_KEY_BYTES)));
                env.correlation_id = bound_text_to(&env.correlation_id, CUT_KEY_BYTES);
                if let Payload::DeadLetter(d) = &mut env.payload {
                    d.original = Blob(r.value[..keep].to_vec());
                    d.key = key.as_ref().map(|k| Blob(k.to_vec()));
                    d.message = format!(
                        "{message} [original cut to its first {keep} of {} bytes, sha256 {sha}; key of {} bytes cut to {}]",
                        r.value.len(),
                        r.key.as_ref().map_or(0, |k| k.len()),
                        key.as_ref().map_or(0, |k| k.len()),
                    );
                }
                record_key = key;
                match self.engine.codec.encode(&env) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::error!(
                            partition = self.p,
                            offset = r.offset,
                            code,
                            error = %e,
                            "a dead letter does not fit even with its original cut; it is dropped"
                        );
                        return Ok(());
                    }
                }
            }
        };
        tracing::debug!(
            partition = self.p,
            offset = r.offset,
            code,
            "input dead-lettered"
        );
        let dlq = self.engine.topics.dlq();
        let n = self.result_partitions.get(&dlq).copied().unwrap_or(1);
        let key = r.key.clone().unwrap_or_default();
        outbox.push(
            dlq,
            partition_for_key(&key, n),
            ProducerRecord::new(record_key, Bytes::from(value)),
        );
        EngineStats::add(&self.engine.stats.dead_letters, 1);
        record::count(&names::DEAD_LETTERS, 1);
        Ok(())
    }
}
