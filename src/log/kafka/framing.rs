//! Atomic batches on a broker without transactions.
//!
//! The [`EventLog`](crate::log::EventLog) contract says an append is atomic,
//! but a Kafka producer killed halfway through a large append leaves the
//! first part of it in the partition. For topics with a single writer per
//! partition (the journal) the backend frames every append: each record
//! carries the header [`BATCH_HEADER`] = writer id, batch sequence, index and
//! count. Readers pass a batch on only once its last record is seen, and
//! drop an unfinished batch as soon as a record of another batch follows it
//! (its writer died; the restarted writer re-appends the work). Records
//! without the header pass straight through.
//!
//! Invariants:
//! - Output is in offset order and never contains a record of a torn batch,
//!   except the part of a batch that began before the reader's start
//!   offset (the reader trusts what it was pointed at).
//! - An unfinished batch at the end of what has been read is held back, not
//!   dropped: its writer may still be appending.

use bytes::Bytes;

use crate::log::{Header, StoredRecord};

/// The framing header's name.
pub const BATCH_HEADER: &str = "baton-batch";

/// Where a record sits in its append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Random per producer instance: a restarted writer is a new writer.
    pub writer: u64,
    pub seq: u64,
    pub index: u32,
    pub count: u32,
}

impl Frame {
    pub fn header(&self) -> Header {
        let mut v = Vec::with_capacity(24);
        v.extend_from_slice(&self.writer.to_be_bytes());
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.extend_from_slice(&self.index.to_be_bytes());
        v.extend_from_slice(&self.count.to_be_bytes());
        Header {
            key: BATCH_HEADER.into(),
            value: Bytes::from(v),
        }
    }

    /// The frame of a record, if it has a well-formed framing header.
    pub fn of(record: &StoredRecord) -> Option<Frame> {
        let h = record.headers.iter().find(|h| h.key == BATCH_HEADER)?;
        let v: &[u8; 24] = h.value.as_ref().try_into().ok()?;
        let u64_at = |i: usize| u64::from_be_bytes(v[i..i + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |i: usize| u32::from_be_bytes(v[i..i + 4].try_into().unwrap_or([0; 4]));
        Some(Frame {
            writer: u64_at(0),
            seq: u64_at(8),
            index: u32_at(16),
            count: u32_at(20),
        })
    }

    fn same_batch(&self, other: &Frame) -> bool {
        self.writer == other.writer && self.seq == other.seq
    }
}

/// Turns a stream of framed records into whole batches.
#[derive(Debug, Default)]
pub struct Unframer {
    pending: Vec<StoredRecord>,
    current: Option<Frame>,
    /// Records of torn batches dropped so far (for logs and tests).
    pub dropped: u64,
}

impl Unframer {
    /// Feeds one record; completed records are appended to `out`.
    pub fn push(&mut self, record: StoredRecord, out: &mut Vec<StoredRecord>) {
        let frame = Frame::of(&record);
        if let Some(cur) = self.current {
            let continues = frame.is_some_and(|f| f.same_batch(&cur) && f.index == cur.index + 1);
            if !continues {
                self.dropped += self.pending.len() as u64;
                tracing::warn!(
                    partition = record.partition,
                    first_offset = self.pending.first().map(|r| r.offset),
                    records = self.pending.len(),
                    "dropping a torn batch (its writer stopped mid-append)"
                );
                self.pending.clear();
                self.current = None;
            }
        }
        match frame {
            None => out.push(record),
            Some(f) if f.index + 1 >= f.count => {
                out.append(&mut self.pending);
                out.push(record);
                self.current = None;
            }
            Some(f) => {
                // A batch seen from its middle (the reader started there) is
                // accepted like one seen from its start.
                self.pending.push(record);
                self.current = Some(f);
            }
        }
    }

    /// Offset of the first held-back record, if any.
    pub fn first_pending(&self) -> Option<u64> {
        self.pending.first().map(|r| r.offset)
    }

    /// Forgets everything (the reader moved).
    pub fn reset(&mut self) {
        self.pending.clear();
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: u64, frame: Option<(u64, u64, u32, u32)>) -> StoredRecord {
        StoredRecord {
            partition: 0,
            offset,
            timestamp_ms: 0,
            key: None,
            value: Bytes::new(),
            headers: frame
                .map(|(writer, seq, index, count)| {
                    vec![Frame {
                        writer,
                        seq,
                        index,
                        count,
                    }
                    .header()]
                })
                .unwrap_or_default(),
        }
    }

    fn run(records: Vec<StoredRecord>) -> (Vec<u64>, Unframer) {
        let mut u = Unframer::default();
        let mut out = Vec::new();
        for r in records {
            u.push(r, &mut out);
        }
        (out.iter().map(|r| r.offset).collect(), u)
    }

    #[test]
    fn framing_table() {
        // (case, records, emitted offsets, held-back first offset, dropped)
        type Case = (&'static str, Vec<StoredRecord>, Vec<u64>, Option<u64>, u64);
        let cases: Vec<Case> = vec![
            (
                "unframed records pass through",
                vec![rec(0, None), rec(1, None)],
                vec![0, 1],
                None,
                0,
            ),
            (
                "a whole batch is emitted at its last record",
                vec![
                    rec(0, Some((1, 1, 0, 3))),
                    rec(1, Some((1, 1, 1, 3))),
                    rec(2, Some((1, 1, 2, 3))),
                ],
                vec![0, 1, 2],
                None,
                0,
            ),
            (
                "an unfinished batch at the end is held back",
                vec![
                    rec(0, Some((1, 1, 0, 1))),
                    rec(1, Some((1, 2, 0, 3))),
                    rec(2, Some((1, 2, 1, 3))),
                ],
                vec![0],
                Some(1),
                0,
            ),
            (
                "a torn batch is dropped when a new writer follows",
                vec![
                    rec(0, Some((1, 7, 0, 3))),
                    rec(1, Some((1, 7, 1, 3))),
                    rec(5, Some((2, 1, 0, 2))),
                    rec(6, Some((2, 1, 1, 2))),
                ],
                vec![5, 6],
                None,
                2,
            ),
            (
                "a batch entered in its middle is accepted",
                vec![rec(4, Some((1, 3, 2, 4))), rec(5, Some((1, 3, 3, 4)))],
                vec![4, 5],
                None,
                0,
            ),
            (
                "a gap inside a batch tears it",
                vec![
                    rec(0, Some((1, 1, 0, 3))),
                    rec(1, Some((1, 1, 2, 3))),
                    rec(2, None),
                ],
                vec![1, 2],
                None,
                1,
            ),
        ];
        for (name, records, emitted, held, dropped) in cases {
            let (got, u) = run(records);
            assert_eq!(got, emitted, "{name}: emitted");
            assert_eq!(u.first_pending(), held, "{name}: held back");
            assert_eq!(u.dropped, dropped, "{name}: dropped");
        }
    }
}
