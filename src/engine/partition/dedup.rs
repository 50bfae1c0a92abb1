//! Content hashes for the dedup window: an input whose `event_id` the
//! window already holds is a duplicate only if its content is the same;
//! with other content it is a conflict (dead-lettered as
//! `event_id_conflict`), never silently dropped.
//!
//! The hash covers what an input says (its correlation id and payload),
//! not when or by whom it was written (`occurred_at`, `producer`), so a
//! producer's retry that re-stamps the envelope is still a duplicate. It is
//! the first 8 bytes of a SHA-256 over the payload's Avro encoding: stable
//! across processes and versions, because it is written into the journal
//! (the [`INPUT_HASH_HEADER`] of an input's first fact) and read back when
//! the window is warmed after a restart.

use sha2::{Digest, Sha256};

use crate::codec::binary;
use crate::domain::events::Envelope;
use crate::log::{Header, StoredRecord};

/// Journal header carrying the content hash of the input a fact answers
/// (on the first fact of each input), as 16 hex digits.
pub const INPUT_HASH_HEADER: &str = "baton-input-hash";

/// The content hash of an ingress input.
pub(crate) fn content_hash(input: &Envelope, buf: &mut Vec<u8>) -> u64 {
    buf.clear();
    let mut h = Sha256::new();
    h.update((input.correlation_id.len() as u64).to_le_bytes());
    h.update(input.correlation_id.as_bytes());
    // Encoding a decoded payload cannot fail (it came from these bytes);
    // if it ever did, the type name alone still separates contents a bit.
    if binary::to_vec_into(&input.payload, buf).is_err() {
        buf.clear();
        buf.extend_from_slice(input.payload.type_name().as_bytes());
    }
    h.update(&buf[..]);
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_le_bytes(first)
}

pub(crate) fn hash_header(hash: u64) -> Header {
    Header {
        key: INPUT_HASH_HEADER.into(),
        value: bytes::Bytes::from(format!("{hash:016x}")),
    }
}

/// The input hash a journal record carries, if any.
pub fn input_hash(r: &StoredRecord) -> Option<u64> {
    let h = r.headers.iter().find(|h| h.key == INPUT_HASH_HEADER)?;
    u64::from_str_radix(std::str::from_utf8(&h.value).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::samples;

    #[test]
    fn the_hash_ignores_the_envelope_stamp_but_not_the_content() {
        // Given one sample input, re-stamped, and one with other content
        let a = samples::all()
            .into_iter()
            .find(|e| e.payload.type_name() == "StepFailed");
        let a = a.expect("a StepFailed sample");
        let mut restamped = a.clone();
        restamped.occurred_at.0 += 1_000_000;
        restamped.producer = "someone-else".into();
        let mut other = a.clone();
        if let crate::domain::events::Payload::StepFailed(f) = &mut other.payload {
            f.error.push('!');
        }
        let mut buf = Vec::new();
        // Then the stamp does not count and the content does
        assert_eq!(
            content_hash(&a, &mut buf),
            content_hash(&restamped, &mut buf)
        );
        assert_ne!(content_hash(&a, &mut buf), content_hash(&other, &mut buf));
        // And the header round-trips
        let h = content_hash(&a, &mut buf);
        let r = StoredRecord {
            partition: 0,
            offset: 0,
            key: None,
            value: bytes::Bytes::new(),
            headers: vec![hash_header(h)],
            timestamp_ms: 0,
        };
        assert_eq!(input_hash(&r), Some(h));
    }
}
