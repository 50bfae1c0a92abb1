//! What opening a partition checks, and the lazy validation of sealed
//! segments on first read.
//!
//! Invariants:
//! - Only a torn tail is ever truncated: an incomplete or bad last frame of
//!   the last segment with no valid frame after it ([`damage::find_frame`]).
//!   A bad frame followed by a valid one, any damage in a sealed segment,
//!   a sealed segment shorter than its index file says, and one that does
//!   not end where the next segment starts (less a repaired gap) are
//!   corruption: a writer's open fails with `LogError::Corrupt`, a reader
//!   serves everything before the damage and errors when it reaches it.
//! - Index files only trigger checks; a full scan decides.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::damage::{
    self, claimed_end, claimed_len, corrupt_error, find_frame, whole_bad_frame, Damage,
};
use super::index_file;
use super::segment::{scan, ScanOutcome, Segment, SparseIndex};
use crate::log::{LogError, Offset, TopicPartition};

pub(crate) fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> LogError {
    let context = format!("{what} {}", path.display());
    move |e| LogError::io(context, e)
}

/// A sealed segment to validate and index (on its first read, or at a
/// writer's open).
pub(crate) struct IndexJob {
    /// Its position in `State::segments` (which only ever grows at the end).
    pub i: usize,
    pub file: std::sync::Arc<File>,
    pub path: PathBuf,
    pub len: u64,
    pub base: Offset,
    pub expected_end: Offset,
}

/// What validating a sealed segment found.
pub(crate) struct Validated {
    /// Covers the readable frames (all of them without damage).
    pub index: SparseIndex,
    pub damage: Option<Damage>,
    /// True when built by a full scan (worth writing to the index file).
    pub scanned: bool,
}

impl IndexJob {
    /// Checks the segment cheaply from its index file when that is whole
    /// (every entry inside the file, frames valid from the last entry to the
    /// end, ending at `expected_end`); otherwise scans it all. Any bad frame
    /// or wrong end is damage: sealed segments were fsynced whole.
    pub fn build(&self) -> Result<Validated, LogError> {
        if let Some((mut index, true)) = index_file::load_checked(&self.path, self.len) {
            if let Some((offset, pos)) = index.last() {
                let outcome = scan(&self.file, pos, self.len, offset, &mut index)
                    .map_err(io_err("read", &self.path))?;
                if outcome.stop.is_none() && outcome.next_offset == self.expected_end {
                    return Ok(Validated {
                        index,
                        damage: None,
                        scanned: false,
                    });
                }
            }
        }
        let mut index = SparseIndex::default();
        let outcome = scan(&self.file, 0, self.len, self.base, &mut index)
            .map_err(io_err("read", &self.path))?;
        let reason = match outcome.stop {
            Some(r) => format!("{r} in a sealed segment"),
            None if outcome.next_offset != self.expected_end => format!(
                "sealed segment ends at offset {} but should reach {} (it is shorter than it was written)",
                outcome.next_offset, self.expected_end
            ),
            None => {
                return Ok(Validated {
                    index,
                    damage: None,
                    scanned: true,
                })
            }
        };
        Ok(Validated {
            index,
            damage: Some(Damage {
                position: outcome.valid_len,
                offset: outcome.next_offset,
                reason,
                scanned_to: self.len,
                end_offset: self.expected_end,
            }),
            scanned: true,
        })
    }
}

/// A writer's open of a sealed segment: validated (cheaply when its index
/// file allows), refused when damaged.
pub(crate) fn check_sealed(
    tp: &TopicPartition,
    i: usize,
    seg: &mut Segment,
) -> Result<(), LogError> {
    let file = super::files::open_segment(&seg.path, false, false)?;
    let job = IndexJob {
        i,
        file: std::sync::Arc::new(file),
        path: seg.path.clone(),
        len: seg.len,
        base: seg.base,
        expected_end: seg.expected_end,
    };
    let v = job.build()?;
    if let Some(d) = &v.damage {
        return Err(d.error(tp, &seg.path));
    }
    if v.scanned {
        index_file::rewrite(&seg.path, &v.index)?;
    }
    seg.index = Some(v.index);
    Ok(())
}

/// Why a whole last frame with a bad CRC is damage (see `damage`).
const WHOLE_LAST_FRAME: &str = "the last frame is whole (its length reaches the end of the file) yet fails its check, which an append cut short cannot leave, so this is damage, not a torn tail";

/// How the last segment's scan ended at open.
pub(crate) struct Active {
    pub index: SparseIndex,
    pub outcome: ScanOutcome,
    pub damage: Option<Damage>,
}

/// A writer's open of the last segment: every frame checked; a torn tail is
/// truncated (with a warning naming the file and bytes kept and dropped),
/// anything else refused.
pub(crate) fn recover_active(
    tp: &TopicPartition,
    file: &File,
    path: &Path,
    file_len: u64,
    base: Offset,
) -> Result<Active, LogError> {
    let mut index = SparseIndex::default();
    let outcome = scan(file, 0, file_len, base, &mut index).map_err(io_err("read", path))?;
    if let Some(reason) = &outcome.stop {
        if let Some(found) = follows(file, path, &outcome, file_len)? {
            return Err(corrupt_error(
                tp,
                path,
                outcome.valid_len,
                outcome.next_offset,
                &format!(
                    "{reason}; a valid frame follows at byte {} (offset {}), so this is damage, not a torn tail",
                    found.pos, found.header.base
                ),
            ));
        }
        if whole_bad_frame(file, outcome.valid_len, file_len).map_err(io_err("read", path))? {
            return Err(corrupt_error(
                tp,
                path,
                outcome.valid_len,
                outcome.next_offset,
                &format!("{reason}; {WHOLE_LAST_FRAME}"),
            ));
        }
        tracing::warn!(
            topic = %tp.topic,
            partition = tp.partition,
            file = %path.display(),
            valid_bytes = outcome.valid_len,
            dropped_bytes = file_len - outcome.valid_len,
            reason = %reason,
            "truncating the torn tail of the log (an append cut short; no valid frame follows it)"
        );
        file.set_len(outcome.valid_len)
            .and_then(|()| file.sync_all())
            .map_err(io_err("truncate", path))?;
    }
    Ok(Active {
        index,
        outcome,
        damage: None,
    })
}

/// A valid frame after where `outcome` stopped, if any.
fn follows(
    file: &File,
    path: &Path,
    outcome: &ScanOutcome,
    file_len: u64,
) -> Result<Option<damage::Found>, LogError> {
    let hint = claimed_len(file, outcome.valid_len).map_err(io_err("read", path))?;
    find_frame(file, outcome.valid_len, file_len, outcome.next_offset, hint)
        .map_err(io_err("read", path))
}

/// Damage where `outcome` stopped when a valid frame follows (else the stop
/// is a torn or still-growing tail), with the frames after it validated so
/// the high watermark lies past it.
pub(crate) fn classify_stop(
    file: &File,
    path: &Path,
    outcome: &ScanOutcome,
    file_len: u64,
) -> Result<Option<Damage>, LogError> {
    let Some(reason) = &outcome.stop else {
        return Ok(None);
    };
    let Some(found) = follows(file, path, outcome, file_len)? else {
        if whole_bad_frame(file, outcome.valid_len, file_len).map_err(io_err("read", path))? {
            return Ok(Some(Damage {
                position: outcome.valid_len,
                offset: outcome.next_offset,
                reason: format!("{reason}; {WHOLE_LAST_FRAME}"),
                scanned_to: file_len,
                end_offset: claimed_end(file, outcome.valid_len, outcome.next_offset)
                    .map_err(io_err("read", path))?,
            }));
        }
        return Ok(None);
    };
    let mut rest = SparseIndex::default();
    let after = scan(file, found.pos, file_len, found.header.base, &mut rest)
        .map_err(io_err("read", path))?;
    Ok(Some(Damage {
        position: outcome.valid_len,
        offset: outcome.next_offset,
        reason: format!(
            "{reason}; a valid frame follows at byte {} (offset {})",
            found.pos, found.header.base
        ),
        scanned_to: after.valid_len,
        end_offset: after.next_offset,
    }))
}

/// Read-only open of the last segment: validates frames from the last
/// entry of its index file on (or the whole segment when that file is
/// missing or its last entry is not a valid frame), then classifies where
/// the scan stopped.
pub(crate) fn scan_active_read_only(
    file: &File,
    path: &Path,
    file_len: u64,
    base: Offset,
) -> Result<Active, LogError> {
    let (index, outcome) = scan_from_index(file, path, file_len, base)?;
    let damage = classify_stop(file, path, &outcome, file_len)?;
    Ok(Active {
        index,
        outcome,
        damage,
    })
}

fn scan_from_index(
    file: &File,
    path: &Path,
    file_len: u64,
    base: Offset,
) -> Result<(SparseIndex, ScanOutcome), LogError> {
    if let Some(mut index) = index_file::load(path, file_len) {
        if let Some((offset, pos)) = index.last() {
            let outcome =
                scan(file, pos, file_len, offset, &mut index).map_err(io_err("read", path))?;
            if outcome.valid_len > pos || outcome.stop.is_none() {
                return Ok((index, outcome));
            }
        }
    }
    let mut index = SparseIndex::default();
    let outcome = scan(file, 0, file_len, base, &mut index).map_err(io_err("read", path))?;
    Ok((index, outcome))
}

/// Read-only: validates whatever was appended to `seg` past its known end
/// (past its damage, if it has some, only to follow the high watermark).
pub(crate) fn extend(seg: &mut Segment) -> Result<(), LogError> {
    let file = match &seg.file {
        Some(f) => f.clone(),
        None => {
            let f = std::sync::Arc::new(super::files::open_segment(&seg.path, false, false)?);
            seg.file = Some(f.clone());
            f
        }
    };
    let file_len = file.metadata().map_err(io_err("stat", &seg.path))?.len();
    if let Some(d) = seg.damage.as_mut() {
        if file_len > d.scanned_to {
            let mut rest = SparseIndex::default();
            let after = scan(&file, d.scanned_to, file_len, d.end_offset, &mut rest)
                .map_err(io_err("read", &seg.path))?;
            d.scanned_to = after.valid_len;
            d.end_offset = after.next_offset;
        }
        return Ok(());
    }
    if file_len <= seg.len {
        return Ok(());
    }
    let Some(index) = seg.index.as_mut() else {
        return Ok(());
    };
    let outcome = scan(&file, seg.len, file_len, seg.next_offset, index)
        .map_err(io_err("read", &seg.path))?;
    seg.len = outcome.valid_len;
    seg.next_offset = outcome.next_offset;
    seg.damage = classify_stop(&file, &seg.path, &outcome, file_len)?;
    Ok(())
}
