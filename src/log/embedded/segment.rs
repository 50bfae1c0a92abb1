//! One segment file: validating its frames (recovery, lazy indexing and
//! read-only refresh all use [`scan`]), its sparse offset index, and the
//! chunked zero-copy read path ([`read_records`]).
//!
//! Invariants:
//! - `Segment::len` is the byte length of the valid, complete frames at the
//!   start of the file; nothing at or past it is ever decoded or served.
//! - Index entries point at frame starts and are strictly increasing in both
//!   offset and position, so a lookup lands at or before the wanted offset.
//! - Reads happen with `pread` on a shared `Arc<File>` outside the partition
//!   lock: the bytes below `len` never change once written (the file is
//!   append-only and only truncated at open, before anyone reads).
//! - A segment with `damage` serves nothing at or past `damage.position`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::chunks::Chunk;
use super::files::read_at_most;
use super::format::{crc_ok, decode_frame, parse_header, FrameHeader, HEADER_LEN};
use crate::log::{LogError, Offset, StoredRecord};

/// A sparse index entry is added when a frame starts this many bytes past
/// the previous entry, so a lookup reads at most ~4 KiB of skipped frames.
const INDEX_INTERVAL: u64 = 4096;
/// Scans and reads work in chunks this big: large enough to amortise the
/// syscall, small enough to stay in cache.
pub(crate) const CHUNK: usize = 1 << 20;
/// Smallest read chunk, for small `max_records` (e.g. a tail polling).
const MIN_CHUNK: usize = 64 << 10;

/// Offset → file position of frame starts, roughly every [`INDEX_INTERVAL`].
#[derive(Debug, Default)]
pub(crate) struct SparseIndex {
    entries: Vec<(Offset, u64)>,
}

impl SparseIndex {
    /// Records that a frame with base offset `base` starts at `pos`;
    /// true when that became an entry.
    pub fn note(&mut self, base: Offset, pos: u64) -> bool {
        match self.entries.last() {
            Some(&(_, last)) if pos < last + INDEX_INTERVAL => false,
            _ => {
                self.entries.push((base, pos));
                true
            }
        }
    }

    /// Adds an entry read from an index file if it extends the index
    /// (strictly increasing offset and position, starting at position 0).
    pub fn push_checked(&mut self, offset: Offset, pos: u64) -> bool {
        let ok = match self.entries.last() {
            Some(&(o, p)) => offset > o && pos > p,
            None => pos == 0,
        };
        if ok {
            self.entries.push((offset, pos));
        }
        ok
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn entries(&self) -> impl Iterator<Item = (Offset, u64)> + '_ {
        self.entries.iter().copied()
    }

    /// The last entry.
    pub fn last(&self) -> Option<(Offset, u64)> {
        self.entries.last().copied()
    }

    /// The position of a frame start at or before the frame holding `offset`.
    pub fn lookup(&self, offset: Offset) -> u64 {
        match self.entries.partition_point(|&(base, _)| base <= offset) {
            0 => 0,
            i => self.entries[i - 1].1,
        }
    }
}

/// One segment file and what is known about it.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Offset of its first record (from the file name).
    pub base: Offset,
    pub path: PathBuf,
    /// Opened lazily for sealed segments.
    pub file: Option<Arc<File>>,
    /// Bytes of valid frames (see the module invariants).
    pub len: u64,
    /// `None` for a sealed segment not read since open.
    pub index: Option<SparseIndex>,
    /// The writer's index file of the active segment.
    pub index_file: Option<super::index_file::IndexAppender>,
    /// The offset after its last record (for a sealed segment: where the
    /// next segment starts, so reads continue there, across a repaired gap).
    pub next_offset: Offset,
    /// Sealed: the offset its frames must end at, `next_offset` unless a
    /// repair recorded a gap (`damage::load_gaps`) before the next segment.
    pub expected_end: Offset,
    /// Where it stops being readable, once a scan found damage: reads
    /// below it are served, a read reaching it is `LogError::Corrupt`.
    pub damage: Option<super::damage::Damage>,
}

impl Segment {
    /// The offset after the last record known to be in the file (past any
    /// damage), which the high watermark of a read-only partition follows.
    pub fn end_offset(&self) -> Offset {
        self.damage
            .as_ref()
            .map_or(self.next_offset, |d| d.end_offset.max(self.next_offset))
    }
}

/// How a [`scan`] ended.
#[derive(Debug)]
pub(crate) struct ScanOutcome {
    /// End of the last valid frame.
    pub valid_len: u64,
    /// The offset after the last valid record.
    pub next_offset: Offset,
    /// Why the scan stopped before `limit`, if it did.
    pub stop: Option<String>,
}

/// Walks the frames of `file` from `start` (a frame boundary expected to
/// hold offset `expected`) up to `limit`, checking each frame's length, CRC
/// and offset contiguity and noting it in `index`. Stops at the first frame
/// that fails; IO errors are returned as such.
pub(crate) fn scan(
    file: &File,
    start: u64,
    limit: u64,
    expected: Offset,
    index: &mut SparseIndex,
) -> std::io::Result<ScanOutcome> {
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_pos = start;
    let mut pos = start;
    let mut next = expected;
    let stop = loop {
        if pos >= limit {
            break None;
        }
        let remaining = limit - pos;
        if remaining < HEADER_LEN as u64 {
            break Some(format!(
                "{remaining} trailing bytes, too few for a frame header"
            ));
        }
        if !ensure(file, &mut buf, &mut buf_pos, pos, HEADER_LEN as u64, limit)? {
            break Some("file shrank while scanning".to_string());
        }
        let at = (pos - buf_pos) as usize;
        let header = match parse_header(&buf[at..]) {
            Ok(h) => h,
            Err(reason) => break Some(reason),
        };
        if header.total_len > remaining {
            break Some(format!(
                "frame of {} bytes runs past the end ({remaining} bytes left)",
                header.total_len
            ));
        }
        if header.base != next {
            break Some(format!(
                "frame starts at offset {}, expected {next}",
                header.base
            ));
        }
        if !ensure(file, &mut buf, &mut buf_pos, pos, header.total_len, limit)? {
            break Some("file shrank while scanning".to_string());
        }
        let at = (pos - buf_pos) as usize;
        if !crc_ok(&header, &buf[at..at + header.total_len as usize]) {
            break Some("CRC mismatch".to_string());
        }
        index.note(header.base, pos);
        next = header.next_offset();
        pos += header.total_len;
    };
    Ok(ScanOutcome {
        valid_len: pos,
        next_offset: next,
        stop,
    })
}

/// Makes `buf` (holding file bytes from `buf_pos`) cover `pos..pos+need`,
/// refilling it from `pos` with at least a [`CHUNK`] when it does not.
/// Returns false if the file is shorter than that.
fn ensure(
    file: &File,
    buf: &mut Vec<u8>,
    buf_pos: &mut u64,
    pos: u64,
    need: u64,
    limit: u64,
) -> std::io::Result<bool> {
    if pos >= *buf_pos && pos + need <= *buf_pos + buf.len() as u64 {
        return Ok(true);
    }
    let want = need.max(CHUNK as u64).min(limit - pos) as usize;
    buf.resize(want, 0);
    let got = read_at_most(file, pos, buf)?;
    buf.truncate(got);
    *buf_pos = pos;
    Ok(got as u64 >= need)
}

/// How many bytes to read at once for a request of `wanted` more records:
/// small requests (a tail polling for one record) should not pull a whole
/// megabyte.
pub(crate) fn chunk_for(wanted: usize) -> usize {
    wanted.saturating_mul(256).clamp(MIN_CHUNK, CHUNK)
}

/// What a read needs from a segment, captured under the partition lock so
/// the IO itself can run without it.
pub(crate) struct ReadPlan {
    pub file: Arc<File>,
    pub path: PathBuf,
    /// A frame boundary at or before the wanted offset.
    pub pos: u64,
    /// The segment's valid length when planned.
    pub end: u64,
    /// The offset after the segment's last record when planned.
    pub next_offset: Offset,
}

fn corrupt(path: &Path, position: u64, reason: String) -> LogError {
    LogError::Corrupt {
        path: path.display().to_string(),
        position,
        reason,
    }
}

/// Decodes records with `offset >= from` from the frames in
/// `plan.pos..plan.end` into `out` until it holds `max` records. Each chunk
/// is one `pread` into one buffer; records are slices of it.
pub(crate) fn read_records(
    plan: &ReadPlan,
    partition: u32,
    from: Offset,
    max: usize,
    out: &mut Vec<StoredRecord>,
) -> Result<(), LogError> {
    let mut pos = plan.pos;
    while pos < plan.end && out.len() < max {
        let size = (chunk_for(max - out.len()) as u64).min(plan.end - pos);
        let mut chunk = read_chunk(plan, pos, size)?;
        let mut at = 0usize;
        loop {
            if out.len() >= max || chunk.len() - at < HEADER_LEN {
                break;
            }
            let header: FrameHeader =
                parse_header(&chunk[at..]).map_err(|r| corrupt(&plan.path, pos + at as u64, r))?;
            let total = header.total_len as usize;
            if total > chunk.len() - at {
                if at > 0 {
                    break;
                }
                // A frame bigger than the chunk: read exactly that frame.
                if pos + header.total_len > plan.end {
                    return Err(corrupt(
                        &plan.path,
                        pos,
                        "frame runs past the valid end".into(),
                    ));
                }
                chunk = read_chunk(plan, pos, header.total_len)?;
            }
            if header.next_offset() > from {
                if !crc_ok(&header, &chunk[at..at + total]) {
                    return Err(corrupt(&plan.path, pos + at as u64, "CRC mismatch".into()));
                }
                decode_frame(&chunk, at, &header, partition, from, max, out)
                    .map_err(|r| corrupt(&plan.path, pos + at as u64, r))?;
            }
            at += total;
        }
        if at == 0 {
            // Fewer than a header's bytes before `end`: the plan is wrong.
            return Err(corrupt(
                &plan.path,
                pos,
                "truncated frame before the valid end".into(),
            ));
        }
        pos += at as u64;
    }
    Ok(())
}

fn read_chunk(plan: &ReadPlan, pos: u64, size: u64) -> Result<Bytes, LogError> {
    let mut buf = Chunk::with_len(size as usize);
    let got = read_at_most(&plan.file, pos, buf.as_mut())
        .map_err(|e| LogError::io(format!("read {} at byte {pos}", plan.path.display()), e))?;
    if (got as u64) < size {
        return Err(corrupt(
            &plan.path,
            pos + got as u64,
            "file is shorter than its valid length".into(),
        ));
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_index_lookup_lands_at_or_before() {
        let mut idx = SparseIndex::default();
        idx.note(0, 0);
        idx.note(10, 100); // too close: skipped
        idx.note(20, 5000);
        idx.note(30, 9500);
        assert_eq!(idx.lookup(0), 0);
        assert_eq!(idx.lookup(15), 0);
        assert_eq!(idx.lookup(20), 5000);
        assert_eq!(idx.lookup(29), 5000);
        assert_eq!(idx.lookup(1000), 9500);
    }

    #[test]
    fn chunk_sizes_are_bounded() {
        assert_eq!(chunk_for(1), MIN_CHUNK);
        assert_eq!(chunk_for(usize::MAX), CHUNK);
    }
}
