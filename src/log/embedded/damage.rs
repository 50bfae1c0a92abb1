//! Telling a torn tail from corruption, and the record of offset gaps that
//! `baton log repair` left behind.
//!
//! A scan stops at the first frame that does not validate. Whether that is
//! a torn tail (an append cut short by a crash: safe to truncate) or
//! damage (never truncated) is decided by resynchronising: [`find_frame`]
//! looks further in the file for any later frame that validates. A crash
//! can only tear the *last* frame, so a valid frame after a bad one means
//! the bad bytes sit in the middle of data: corruption. So is a last frame
//! that is whole (its header's length reaches exactly the file's end, its
//! body is not zero-filled) but fails its CRC ([`whole_bad_frame`]): an
//! append cut short leaves fewer bytes than the header claims, because the
//! file only grows by bytes actually written; a flipped bit in an
//! acknowledged last frame must not be truncated away.
//!
//! Invariants:
//! - [`find_frame`] only reports a frame whose header parses, whose length
//!   fits in the file, whose CRC matches and whose base offset is plausible
//!   (not below the offset expected at the damage, and not further above it
//!   than the skipped bytes could hold records), so random bytes are not
//!   mistaken for a frame.
//! - A gap in `gaps.json` is the only way two segments may fail to meet
//!   (segment ending at `from`, next one starting at `to`); it is written
//!   by repair only, after the damaged bytes are safe in quarantine.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::{read_at_most, write_atomic};
use super::format::{crc_ok, parse_header, FrameHeader, HEADER_LEN};
use super::segment::CHUNK;
use crate::log::{LogError, Offset, TopicPartition};

/// The smallest encoded record (timestamp, key, value and header-count
/// fields): bounds how many records `n` skipped bytes can have held.
const MIN_RECORD_BYTES: u64 = 11;

/// Where a segment stops being readable, found by a scan.
#[derive(Clone, Debug)]
pub(crate) struct Damage {
    /// Byte position of the first bad frame (or the file's end when the
    /// segment ends short of where the next one starts).
    pub position: u64,
    /// The first offset that cannot be read.
    pub offset: Offset,
    pub reason: String,
    /// After the damage (read-only open of the active segment): bytes
    /// validated so far and the offset after their last record, so the
    /// high watermark lies past the damage and readers reach it instead of
    /// taking it for the end.
    pub scanned_to: u64,
    pub end_offset: Offset,
}

impl Damage {
    /// The error a read (or a writer's open) reaching this damage returns.
    pub fn error(&self, tp: &TopicPartition, path: &Path) -> LogError {
        corrupt_error(tp, path, self.position, self.offset, &self.reason)
    }
}

/// A `LogError::Corrupt` for damage at `position` (first unreadable offset
/// `offset`), telling the operator what to do.
pub(crate) fn corrupt_error(
    tp: &TopicPartition,
    path: &Path,
    position: u64,
    offset: Offset,
    reason: &str,
) -> LogError {
    LogError::Corrupt {
        path: path.display().to_string(),
        position,
        reason: format!(
            "{reason}; records from offset {offset} of {tp} cannot be read. Nothing was truncated: \
             records before it stay readable (tail, replay, inspect), but the partition will not \
             open for writing. Stop the engine and run `baton log repair --topic {} --partition {}` \
             to move the damaged bytes to quarantine and see which offsets are lost",
            tp.topic, tp.partition
        ),
    }
}

/// A frame found after damage.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Found {
    pub pos: u64,
    pub header: FrameHeader,
}

/// Looks for the first valid frame in `from..limit` whose base offset is
/// plausible after a bad frame at `from` that should have held offset
/// `expected`. `hint` is the length the bad frame's header claimed, tried
/// first (a flipped byte in a record leaves the length intact).
pub(crate) fn find_frame(
    file: &File,
    from: u64,
    limit: u64,
    expected: Offset,
    hint: Option<u64>,
) -> std::io::Result<Option<Found>> {
    if let Some(len) = hint {
        if let Some(f) = frame_at(file, from, from.saturating_add(len), limit, expected, None)? {
            return Ok(Some(f));
        }
    }
    let mut chunk_start = from + 1;
    let mut buf = vec![0u8; CHUNK];
    while chunk_start + HEADER_LEN as u64 <= limit {
        let want = (CHUNK as u64).min(limit - chunk_start) as usize;
        let got = read_at_most(file, chunk_start, &mut buf[..want])?;
        if got < HEADER_LEN {
            break;
        }
        let last = got - HEADER_LEN;
        for at in 0..=last {
            let pos = chunk_start + at as u64;
            if let Some(f) = frame_at(file, from, pos, limit, expected, Some(&buf[at..got]))? {
                return Ok(Some(f));
            }
        }
        // Overlap by a header so no start position is missed.
        chunk_start += (last + 1) as u64;
    }
    Ok(None)
}

/// Whether the frame at `pos` is whole up to exactly `file_len` (the
/// length its header claims) with a body that is not all zeroes: it was
/// written completely, so a CRC mismatch in it is damage, not a torn append.
/// (A zero-filled body is what a power loss can leave after the file's size
/// was extended: torn.)
pub(crate) fn whole_bad_frame(file: &File, pos: u64, file_len: u64) -> std::io::Result<bool> {
    let Some(len) = claimed_len(file, pos)? else {
        return Ok(false);
    };
    if pos.checked_add(len) != Some(file_len) || len <= HEADER_LEN as u64 {
        return Ok(false);
    }
    let mut body = vec![0u8; (len - HEADER_LEN as u64) as usize];
    let got = read_at_most(file, pos + HEADER_LEN as u64, &mut body)?;
    Ok(body[..got].iter().any(|&b| b != 0))
}

/// The offset after the records a bad frame at `pos` claims to hold (it
/// should hold `expected` first): the header's own count when its base is
/// `expected`, else one record, so a reader's high watermark lies past the
/// damage and its reads reach the error instead of a quiet end.
pub(crate) fn claimed_end(file: &File, pos: u64, expected: Offset) -> std::io::Result<Offset> {
    let mut head = [0u8; HEADER_LEN];
    if read_at_most(file, pos, &mut head)? == HEADER_LEN {
        if let Ok(h) = parse_header(&head) {
            if h.base == expected && h.next_offset() > expected {
                return Ok(h.next_offset());
            }
        }
    }
    Ok(expected.saturating_add(1))
}

/// The length the frame header at `pos` claims, if it parses: where the
/// next frame starts when only the body of this one is damaged.
pub(crate) fn claimed_len(file: &File, pos: u64) -> std::io::Result<Option<u64>> {
    let mut head = [0u8; HEADER_LEN];
    if read_at_most(file, pos, &mut head)? < HEADER_LEN {
        return Ok(None);
    }
    Ok(parse_header(&head).ok().map(|h| h.total_len))
}

/// Whether a plausible valid frame starts at `pos`.
fn frame_at(
    file: &File,
    from: u64,
    pos: u64,
    limit: u64,
    expected: Offset,
    bytes: Option<&[u8]>,
) -> std::io::Result<Option<Found>> {
    if pos <= from || pos + HEADER_LEN as u64 > limit {
        return Ok(None);
    }
    let mut head = [0u8; HEADER_LEN];
    let head: &[u8] = match bytes {
        Some(b) => b,
        None => {
            if read_at_most(file, pos, &mut head)? < HEADER_LEN {
                return Ok(None);
            }
            &head
        }
    };
    let Ok(header) = parse_header(head) else {
        return Ok(None);
    };
    let max_base = expected.saturating_add((pos - from) / MIN_RECORD_BYTES + 1);
    if header.total_len > limit - pos || header.base < expected || header.base > max_base {
        return Ok(None);
    }
    let mut frame = vec![0u8; header.total_len as usize];
    if (read_at_most(file, pos, &mut frame)? as u64) < header.total_len {
        return Ok(None);
    }
    Ok(crc_ok(&header, &frame).then_some(Found { pos, header }))
}

/// One gap left by a repair: the segment before it ends at `from`, the
/// next one starts at `to`; offsets `from..to` were lost.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Gap {
    pub from: Offset,
    pub to: Offset,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct GapsFile {
    gaps: Vec<Gap>,
}

fn gaps_path(dir: &Path) -> PathBuf {
    dir.join("gaps.json")
}

/// The gaps of a partition directory, keyed by `to` (the base of the
/// segment after the gap). A missing file means none; an unreadable one
/// is corruption (it would otherwise hide lost offsets or invent gaps).
pub(crate) fn load_gaps(dir: &Path) -> Result<BTreeMap<Offset, Offset>, LogError> {
    let path = gaps_path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(LogError::io(format!("read {}", path.display()), e)),
    };
    let file: GapsFile = serde_json::from_slice(&bytes).map_err(|e| LogError::Corrupt {
        path: path.display().to_string(),
        position: 0,
        reason: format!("bad gap record: {e}"),
    })?;
    Ok(file.gaps.into_iter().map(|g| (g.to, g.from)).collect())
}

/// Writes the gap record (durably: it is what makes a repaired partition
/// valid).
pub(crate) fn save_gaps(dir: &Path, gaps: &BTreeMap<Offset, Offset>) -> Result<(), LogError> {
    let file = GapsFile {
        gaps: gaps.iter().map(|(&to, &from)| Gap { from, to }).collect(),
    };
    let json = serde_json::to_vec_pretty(&file).map_err(|e| {
        LogError::io(
            format!("encode {}", gaps_path(dir).display()),
            std::io::Error::other(e),
        )
    })?;
    write_atomic(&gaps_path(dir), &json, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::embedded::format::{encode_batch, seal_frame};
    use crate::log::ProducerRecord;
    use std::io::Write;

    fn frame(base: Offset, n: usize) -> Vec<u8> {
        let recs: Vec<_> = (0..n)
            .map(|i| ProducerRecord::new(None, bytes::Bytes::from(vec![i as u8; 20])))
            .collect();
        let mut f = encode_batch(&recs, 1, usize::MAX).unwrap();
        seal_frame(&mut f, base);
        f
    }

    fn file_of(parts: &[&[u8]]) -> (tempfile::NamedTempFile, u64) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for p in parts {
            f.write_all(p).unwrap();
        }
        let len = f.as_file().metadata().unwrap().len();
        (f, len)
    }

    #[test]
    fn given_a_flipped_byte_when_resynchronising_then_the_next_frame_is_found() {
        let (a, mut b, c) = (frame(0, 3), frame(3, 3), frame(6, 3));
        let hint = b.len() as u64;
        b[30] ^= 0x40;
        let (f, len) = file_of(&[&a, &b, &c]);
        let from = a.len() as u64;
        let found = find_frame(f.as_file(), from, len, 3, Some(hint)).unwrap();
        let found = found.expect("frame after the damage");
        assert_eq!((found.pos, found.header.base), (from + hint, 6));
        // Without the length hint (a damaged length field) it is found too.
        let found = find_frame(f.as_file(), from, len, 3, None)
            .unwrap()
            .unwrap();
        assert_eq!(found.header.base, 6);
    }

    #[test]
    fn given_a_torn_or_zeroed_tail_when_resynchronising_then_nothing_is_found() {
        let (a, b) = (frame(0, 3), frame(3, 3));
        let half = &b[..b.len() / 2];
        let zeros = vec![0u8; 5000];
        for tail in [half, &zeros[..], &[0xff; 30][..]] {
            let (f, len) = file_of(&[&a, tail]);
            let found = find_frame(f.as_file(), a.len() as u64, len, 3, None).unwrap();
            assert!(found.is_none(), "{found:?}");
        }
    }

    #[test]
    fn given_an_implausible_base_when_resynchronising_then_it_is_ignored() {
        // A valid frame whose base lies below the expected offset (an old
        // copy, say) does not count as the continuation.
        let (a, b) = (frame(0, 3), frame(1, 3));
        let (f, len) = file_of(&[&a, &[7u8; 40], &b]);
        let found = find_frame(f.as_file(), a.len() as u64, len, 3, None).unwrap();
        assert!(found.is_none());
    }

    #[test]
    fn gaps_round_trip_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_gaps(dir.path()).unwrap().is_empty());
        let gaps = BTreeMap::from([(10, 7), (40, 33)]);
        save_gaps(dir.path(), &gaps).unwrap();
        assert_eq!(load_gaps(dir.path()).unwrap(), gaps);
        std::fs::write(dir.path().join("gaps.json"), b"{nope").unwrap();
        assert!(matches!(
            load_gaps(dir.path()),
            Err(LogError::Corrupt { .. })
        ));
    }
}
