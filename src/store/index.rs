//! The correlation index: for each correlation id (a workflow id, an agent
//! id), the journal offsets of its facts, so one workflow's history is read
//! without refolding the journal (`inspect workflow --as-of`, `audit`).
//!
//! Invariants:
//! - A workflow's offsets are stored inside its own `w/` entry, in the same
//!   atomic batch as its state: the index costs no extra key per workflow
//!   and is exactly as durable as the checkpoint.
//! - Facts of any other correlation (agents, rejected or unknown workflows)
//!   get one key each: `c/<correlation id>\0<offset, 8 bytes big-endian>`.
//! - Both are a pure function of the journal (no flush boundary shows in a
//!   key or value), so a replay builds byte-identical entries and the
//!   projection digest covers the index too.

use foldhash::HashMap;

use crate::domain::engine::PartitionState;
use crate::domain::events::{Envelope, Payload};

/// Offsets recorded since the last flush, and the full lists of the
/// workflows held in memory.
#[derive(Debug, Default)]
pub struct JournalIndex {
    /// Every offset of each workflow in memory (written with the workflow).
    live: HashMap<String, Vec<u64>>,
    /// Facts of correlations without a workflow in memory, not yet written.
    loose: Vec<(String, u64)>,
}

impl JournalIndex {
    /// Records the fact at journal `offset` (already folded into `state`).
    /// A fact of an accepted workflow held in memory joins that workflow's
    /// list (and marks it dirty so the list reaches the store with the next
    /// checkpoint); any other fact is loose. Rejections and agent facts are
    /// always loose, so where a fact lands never depends on what happened
    /// to be in memory (replay evicts at other moments than the engine).
    pub fn record(&mut self, state: &mut PartitionState, fact: &Envelope, offset: u64) {
        let correlation_id = fact.correlation_id.as_str();
        let of_workflow = !matches!(
            fact.payload,
            Payload::WorkflowRejected(_)
                | Payload::AgentRegistered(_)
                | Payload::AgentDeregistered(_)
                | Payload::AgentHealthChanged(_)
                | Payload::AgentLost(_)
                | Payload::BottleneckDetected(_)
                | Payload::BottleneckResolved(_)
        );
        if of_workflow && state.workflows.contains_key(correlation_id) {
            match self.live.get_mut(correlation_id) {
                Some(v) => v.push(offset),
                None => {
                    self.live.insert(correlation_id.to_string(), vec![offset]);
                }
            }
            state.mark_dirty(correlation_id);
        } else {
            self.loose.push((correlation_id.to_string(), offset));
        }
    }

    /// Restores a workflow's stored offsets when it comes back into memory.
    pub fn restore(&mut self, workflow_id: &str, offsets: Vec<u64>) {
        self.live.insert(workflow_id.to_string(), offsets);
    }

    /// A workflow's offsets (for its `w/` entry).
    pub fn offsets(&self, workflow_id: &str) -> &[u64] {
        self.live.get(workflow_id).map_or(&[], Vec::as_slice)
    }

    /// Takes the loose facts recorded since the last flush.
    pub fn take_loose(&mut self) -> Vec<(String, u64)> {
        std::mem::take(&mut self.loose)
    }

    /// Forgets a workflow that left memory.
    pub fn forget(&mut self, workflow_id: &str) {
        self.live.remove(workflow_id);
    }
}

/// The key of a loose fact.
pub fn loose_key(correlation_id: &str, offset: u64) -> Vec<u8> {
    let mut k = loose_prefix(correlation_id);
    k.extend_from_slice(&offset.to_be_bytes());
    k
}

/// The prefix of every loose key of one correlation id.
pub fn loose_prefix(correlation_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(correlation_id.len() + 11);
    k.extend_from_slice(b"c/");
    k.extend_from_slice(correlation_id.as_bytes());
    k.push(0);
    k
}

/// Appends `offsets` (ascending) as LEB128 deltas: 1–3 bytes per fact
/// instead of 8.
pub fn encode_offsets(offsets: &[u64], out: &mut Vec<u8>) {
    let mut prev = 0u64;
    for &o in offsets {
        let mut d = o.wrapping_sub(prev);
        prev = o;
        loop {
            let b = (d & 0x7f) as u8;
            d >>= 7;
            if d == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
    }
}

/// Reverses [`encode_offsets`]; `None` on a truncated value.
pub fn decode_offsets(mut bytes: &[u8]) -> Option<Vec<u64>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut prev = 0u64;
    while !bytes.is_empty() {
        let (mut d, mut shift) = (0u64, 0u32);
        loop {
            let (&b, rest) = bytes.split_first()?;
            bytes = rest;
            d |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        prev = prev.wrapping_add(d);
        out.push(prev);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip() {
        for case in [
            vec![],
            vec![0],
            vec![0, 1, 2, 127, 128, 16_384, 1 << 40, u64::MAX],
        ] {
            let mut buf = Vec::new();
            encode_offsets(&case, &mut buf);
            assert_eq!(decode_offsets(&buf), Some(case));
        }
        assert_eq!(decode_offsets(&[0x80]), None);
    }

    #[test]
    fn loose_keys_of_one_id_share_a_prefix_no_other_id_has() {
        let k = loose_key("wf-1", 7);
        assert!(k.starts_with(&loose_prefix("wf-1")));
        assert!(!k.starts_with(&loose_prefix("wf-")));
        assert!(!loose_key("wf-1/x", 7).starts_with(&loose_prefix("wf-1")));
    }
}
