//! Small filesystem helpers shared by the embedded log: positional reads,
//! directory fsync, atomic replace-by-rename, segment file naming, and the
//! topic/group name rules that keep names safe as file names.
//!
//! Invariant: every error leaving this file is a `LogError` whose context
//! names the file or directory involved.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use crate::log::{LogError, Offset};

/// Reads from `pos` until `buf` is full or the file ends; returns the bytes
/// read. `pread` does not move a file cursor, so many readers can share one
/// `File` without coordination.
pub(crate) fn read_at_most(file: &File, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], pos + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// fsyncs a directory so that files created or renamed in it survive a
/// power loss (the data fsync alone does not persist the directory entry).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io(format!("fsync directory {}", dir.display()), e))
}

/// Replaces `path` with `data` atomically: write a temp file, fsync it,
/// rename over the target. A crash leaves either the old or the new content,
/// never a mix. With `durable`, the directory is fsynced too so the rename
/// itself survives a power loss.
pub(crate) fn write_atomic(path: &Path, data: &[u8], durable: bool) -> Result<(), LogError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let ctx = |what: &str, p: &Path| format!("{what} {}", p.display());
    let mut f = File::create(&tmp).map_err(|e| LogError::io(ctx("create", &tmp), e))?;
    f.write_all(data)
        .and_then(|()| f.sync_data())
        .map_err(|e| LogError::io(ctx("write", &tmp), e))?;
    drop(f);
    fs::rename(&tmp, path)
        .map_err(|e| LogError::io(format!("rename {} to {}", tmp.display(), path.display()), e))?;
    if durable {
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
    }
    Ok(())
}

/// `<base_offset:020>.seg`: zero-padded so names sort like offsets.
pub(crate) fn segment_file_name(base: Offset) -> String {
    format!("{base:020}.seg")
}

/// The segment files of a partition directory as `(base_offset, path)`,
/// sorted by offset. Other files are ignored. A missing directory is empty.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(Offset, PathBuf)>, LogError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LogError::io(format!("list {}", dir.display()), e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io(format!("list {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
            continue;
        };
        if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(base) = stem.parse::<Offset>() {
                out.push((base, entry.path()));
            }
        }
    }
    out.sort_unstable_by_key(|(base, _)| *base);
    Ok(out)
}

/// Opens a segment for appending (writer) or reading (read-only).
pub(crate) fn open_segment(path: &Path, writable: bool, create: bool) -> Result<File, LogError> {
    let mut opts = OpenOptions::new();
    opts.read(true);
    if writable {
        opts.append(true);
    }
    if create {
        opts.create_new(true);
    }
    opts.open(path)
        .map_err(|e| LogError::io(format!("open segment {}", path.display()), e))
}

/// Kafka's topic name rule; it also keeps the name safe as a directory name.
pub fn validate_topic_name(name: &str) -> Result<(), LogError> {
    let ok = (1..=249).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(LogError::InvalidTopicName(name.to_string()))
    }
}

/// The file name stem for a consumer group. Group names are free-form (as in
/// Kafka), so anything outside `[a-zA-Z0-9_-]` is percent-encoded; this is
/// injective and can never produce `.`, `..` or a path separator.
pub(crate) fn group_file_stem(group: &str) -> String {
    if group.is_empty() {
        // '%' is otherwise always followed by two hex digits, so this cannot
        // collide with an encoded non-empty name.
        return "%".to_string();
    }
    let mut out = String::with_capacity(group.len());
    for b in group.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        for ok in ["a", "orders.v1", "A_b-c", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "ü", &"x".repeat(250)] {
            assert!(
                matches!(validate_topic_name(bad), Err(LogError::InvalidTopicName(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn group_names_become_safe_file_names() {
        assert_eq!(group_file_stem("workers-1"), "workers-1");
        assert_eq!(group_file_stem(".."), "%2E%2E");
        assert_eq!(group_file_stem("a/b"), "a%2Fb");
        assert_eq!(group_file_stem(""), "%");
        assert_ne!(group_file_stem("a.b"), group_file_stem("a%2Eb"));
    }

    #[test]
    fn segment_names_sort_by_offset() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
    }
}
