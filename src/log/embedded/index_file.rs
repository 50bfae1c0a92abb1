//! The sparse index of a segment, persisted beside it as `<base>.idx`
//! (Kafka keeps an `.index` per segment for the same reason): 16-byte
//! entries, offset then file position, big-endian, appended by the writer
//! as it notes them.
//!
//! It only saves time, never decides correctness:
//! - it is fsynced only when its segment is sealed; a loaded file is cut
//!   at its first entry that is not increasing or lies past the segment's
//!   length;
//! - a read-only open of the active segment validates frames from the last
//!   entry on (and rescans the whole segment if that entry is not a frame);
//! - the writer still scans its active segment fully at open (torn-tail
//!   recovery needs every frame checked) and then rewrites the file;
//! - every frame's CRC is still checked when it is read.
//!
//! So opening a big log read-only (`audit`, `inspect`) costs a few small
//! reads per partition instead of a scan of every active segment.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::files::write_atomic;
use super::segment::SparseIndex;
use crate::log::{LogError, Offset};

const ENTRY: usize = 16;

/// The index file of the segment at `segment`.
pub(crate) fn path_for(segment: &Path) -> PathBuf {
    segment.with_extension("idx")
}

fn entry(offset: Offset, pos: u64) -> [u8; ENTRY] {
    let mut e = [0u8; ENTRY];
    e[..8].copy_from_slice(&offset.to_be_bytes());
    e[8..].copy_from_slice(&pos.to_be_bytes());
    e
}

/// Loads the index of a segment `segment_len` bytes long; `None` when
/// there is no usable file.
pub(crate) fn load(segment: &Path, segment_len: u64) -> Option<SparseIndex> {
    load_checked(segment, segment_len).map(|(index, _)| index)
}

/// Like [`load`], also saying whether every entry was usable. An entry
/// past the segment's length means the segment is shorter than when it
/// was indexed (or the index is damaged): the caller must then validate
/// the whole segment before trusting its end.
pub(crate) fn load_checked(segment: &Path, segment_len: u64) -> Option<(SparseIndex, bool)> {
    let bytes = std::fs::read(path_for(segment)).ok()?;
    let mut index = SparseIndex::default();
    let mut complete = bytes.len() % ENTRY == 0;
    for e in bytes.chunks_exact(ENTRY) {
        let offset = u64::from_be_bytes(e[..8].try_into().ok()?);
        let pos = u64::from_be_bytes(e[8..].try_into().ok()?);
        if pos >= segment_len || !index.push_checked(offset, pos) {
            complete = false;
            break;
        }
    }
    (!index.is_empty()).then_some((index, complete))
}

/// Replaces the index file with `index` (the writer, after recovery).
pub(crate) fn rewrite(segment: &Path, index: &SparseIndex) -> Result<(), LogError> {
    let mut bytes = Vec::with_capacity(index.len() * ENTRY);
    for (offset, pos) in index.entries() {
        bytes.extend_from_slice(&entry(offset, pos));
    }
    write_atomic(&path_for(segment), &bytes, false)
}

/// The writer's handle on the active segment's index file.
#[derive(Debug)]
pub(crate) struct IndexAppender {
    file: File,
    path: PathBuf,
}

impl IndexAppender {
    /// Opens (creating) the index file of `segment` for appending.
    pub fn open(segment: &Path) -> Result<Self, LogError> {
        let path = path_for(segment);
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| LogError::io(format!("open index {}", path.display()), e))?;
        Ok(Self { file, path })
    }

    /// Makes the entries durable (when the segment is sealed, so a sealed
    /// segment's index survives a power loss with it).
    pub fn sync(&self) {
        if let Err(e) = self.file.sync_data() {
            tracing::warn!(file = %self.path.display(), error = %e, "cannot fsync the segment index; removing it");
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Appends one entry. On failure the file is removed, so no reader
    /// trusts a stale index; the log itself is unaffected.
    pub fn append(&mut self, offset: Offset, pos: u64) -> bool {
        match self.file.write_all(&entry(offset, pos)) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "cannot extend the segment index; removing it (reads will rebuild it)");
                let _ = std::fs::remove_file(&self.path);
                false
            }
        }
    }
}
