//! `baton log repair`: contains the damage of one partition so it opens
//! for writing again, losing only the damaged bytes and saying which
//! offsets they held.
//!
//! Each segment is scanned whole. At a bad frame it resynchronises on the
//! next valid frame ([`damage::find_frame`]); the bad bytes in between are
//! copied to `<partition>/quarantine/<segment>-<byte>.bad` (with a `.json`
//! beside it describing them) and the valid frames after them move to a
//! new segment named by their first offset. The offsets in between are
//! lost; the gap is recorded in `gaps.json` so validation accepts it
//! (readers skip it: the trait never promised dense offsets).
//!
//! Invariants:
//! - Runs under the writer's lock, so no engine is appending meanwhile.
//! - No byte leaves a segment before its copy (quarantine or new segment)
//!   is fsynced, and the gap record is durable before the segments change.
//!   An interrupted repair leaves overlapping segments, which open refuses
//!   (loudly) and a second repair resolves.
//! - An undamaged partition is left exactly as it was.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::damage::{claimed_len, find_frame, load_gaps, save_gaps};
use super::files::{list_segments, read_at_most, segment_file_name, sync_dir, write_atomic};
use super::index_file;
use super::recovery::io_err;
use super::segment::{scan, SparseIndex};
use super::store::take_lock;
use crate::log::{LogError, Offset, TopicPartition};

/// The offsets a damaged range held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LostOffsets {
    /// `from..to` (end exclusive); empty when the bytes held no record.
    Range(Offset, Offset),
    /// From this offset on, how many unknown: the end of the partition held
    /// no valid frame, so nothing tells how many records the bytes were.
    From(Offset),
}

/// One contained damage.
#[derive(Clone, Debug)]
pub struct Repaired {
    pub segment: PathBuf,
    /// Byte range of the segment moved to quarantine (empty when the bytes
    /// were already missing: a shortened sealed segment).
    pub bytes: (u64, u64),
    pub lost: LostOffsets,
    pub quarantine: Option<PathBuf>,
    pub reason: String,
}

/// What a repair did.
#[derive(Clone, Debug)]
pub struct RepairReport {
    pub tp: TopicPartition,
    pub repaired: Vec<Repaired>,
    /// New segments holding the valid frames found after damage.
    pub new_segments: Vec<PathBuf>,
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.repaired.is_empty() {
            return write!(f, "{}: no damage found; nothing changed", self.tp);
        }
        writeln!(
            f,
            "{}: {} damaged range(s) contained",
            self.tp,
            self.repaired.len()
        )?;
        for r in &self.repaired {
            let lost = match r.lost {
                LostOffsets::Range(a, b) if a == b => "no offsets lost".to_string(),
                LostOffsets::Range(a, b) => {
                    format!("lost offsets {a}..={} ({} records)", b - 1, b - a)
                }
                LostOffsets::From(a) => {
                    format!("lost offsets from {a} on (the partition's end; how many is unknown)")
                }
            };
            write!(
                f,
                "  {} bytes {}..{}: {lost}; {}",
                r.segment.display(),
                r.bytes.0,
                r.bytes.1,
                r.reason
            )?;
            match &r.quarantine {
                Some(q) => writeln!(f, "; bytes moved to {}", q.display())?,
                None => writeln!(f, "; the bytes were already missing")?,
            }
        }
        for s in &self.new_segments {
            writeln!(f, "  valid frames after the damage kept in {}", s.display())?;
        }
        write!(f, "the partition opens for writing again")
    }
}

/// A run of valid frames in a segment.
#[derive(Clone, Copy, Debug)]
struct Run {
    start: u64,
    end: u64,
    base: Offset,
    next: Offset,
}

/// A damaged byte range.
#[derive(Debug)]
struct Bad {
    start: u64,
    end: u64,
    offset: Offset,
    /// Base of the valid frame after it, when one follows in this segment.
    resume: Option<Offset>,
    reason: String,
}

/// Repairs `topic`/`partition` of the log at `root` (see the module docs).
pub fn repair(root: &Path, topic: &str, partition: u32) -> Result<RepairReport, LogError> {
    super::files::validate_topic_name(topic)?;
    let _lock = take_lock(root)?;
    let tp = TopicPartition::new(topic, partition);
    let tdir = root.join("topics").join(topic);
    let meta = tdir.join("topic.json");
    let partitions = match fs::read(&meta) {
        Ok(b) => serde_json::from_slice::<serde_json::Value>(&b)
            .ok()
            .and_then(|v| v["partitions"].as_u64())
            .ok_or_else(|| LogError::Corrupt {
                path: meta.display().to_string(),
                position: 0,
                reason: "bad topic metadata".into(),
            })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LogError::UnknownTopic(topic.to_string()))
        }
        Err(e) => return Err(LogError::io(format!("read {}", meta.display()), e)),
    };
    if u64::from(partition) >= partitions {
        return Err(LogError::UnknownPartition {
            topic: topic.to_string(),
            partition,
            partitions: partitions as u32,
        });
    }
    let dir = tdir.join(partition.to_string());
    let listed = list_segments(&dir)?;
    let mut gaps = load_gaps(&dir)?;
    let mut report = RepairReport {
        tp,
        repaired: Vec::new(),
        new_segments: Vec::new(),
    };
    for (i, (base, path)) in listed.iter().enumerate() {
        let next_base = listed.get(i + 1).map(|(b, _)| *b);
        repair_segment(&dir, *base, path, next_base, &mut gaps, &mut report)?;
    }
    Ok(report)
}

/// Finds the runs of valid frames and the damaged ranges of one segment.
fn survey(
    file: &File,
    path: &Path,
    len: u64,
    base: Offset,
) -> Result<(Vec<Run>, Vec<Bad>), LogError> {
    let (mut runs, mut bad) = (Vec::new(), Vec::new());
    let (mut pos, mut expected) = (0u64, base);
    loop {
        let mut index = SparseIndex::default();
        let out = scan(file, pos, len, expected, &mut index).map_err(io_err("read", path))?;
        if out.valid_len > pos {
            runs.push(Run {
                start: pos,
                end: out.valid_len,
                base: expected,
                next: out.next_offset,
            });
        }
        let Some(reason) = out.stop else { break };
        let hint = claimed_len(file, out.valid_len).map_err(io_err("read", path))?;
        let found = find_frame(file, out.valid_len, len, out.next_offset, hint)
            .map_err(io_err("read", path))?;
        bad.push(Bad {
            start: out.valid_len,
            end: found.map_or(len, |f| f.pos),
            offset: out.next_offset,
            resume: found.map(|f| f.header.base),
            reason,
        });
        match found {
            Some(f) => (pos, expected) = (f.pos, f.header.base),
            None => break,
        }
    }
    Ok((runs, bad))
}

fn repair_segment(
    dir: &Path,
    base: Offset,
    path: &Path,
    next_base: Option<Offset>,
    gaps: &mut BTreeMap<Offset, Offset>,
    report: &mut RepairReport,
) -> Result<(), LogError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let len = file.metadata().map_err(io_err("stat", path))?.len();
    let (runs, bad) = survey(&file, path, len, base)?;
    let end = runs.last().map_or(base, |r| r.next);
    if let Some(nb) = next_base {
        if end > nb {
            return Err(LogError::Corrupt {
                path: path.display().to_string(),
                position: runs.last().map_or(0, |r| r.end),
                reason: format!(
                    "segment holds offsets up to {end}, past the next segment's start {nb}: overlapping segments (an interrupted repair?) cannot be repaired automatically; move the later duplicate aside"
                ),
            });
        }
    }
    let expected_end = next_base.map(|nb| gaps.get(&nb).copied().unwrap_or(nb));
    if bad.is_empty() {
        match (next_base, expected_end) {
            (Some(nb), Some(exp)) if end != exp => {
                // Shortened at a frame boundary: the bytes are gone.
                gaps.insert(nb, end);
                save_gaps(dir, gaps)?;
                report.repaired.push(Repaired {
                    segment: path.to_path_buf(),
                    bytes: (len, len),
                    lost: LostOffsets::Range(end, nb),
                    quarantine: None,
                    reason: format!("sealed segment ends at offset {end}, the next starts at {nb}"),
                });
            }
            _ => {}
        }
        return Ok(());
    }

    // 1. Quarantine the damaged bytes.
    let qdir = dir.join("quarantine");
    fs::create_dir_all(&qdir).map_err(io_err("create", &qdir))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("segment");
    for b in &bad {
        let lost = match (b.resume, next_base) {
            (Some(r), _) => LostOffsets::Range(b.offset, r),
            (None, Some(nb)) => LostOffsets::Range(b.offset, nb),
            (None, None) => LostOffsets::From(b.offset),
        };
        let qpath = qdir.join(format!("{stem}-{}.bad", b.start));
        let bytes = read_range(&file, path, b.start, b.end)?;
        write_atomic(&qpath, &bytes, false)?;
        let (lo, hi) = match lost {
            LostOffsets::Range(a, z) => (json!(a), json!(z)),
            LostOffsets::From(a) => (json!(a), serde_json::Value::Null),
        };
        let desc = json!({
            "segment": path.display().to_string(),
            "from_byte": b.start,
            "to_byte": b.end,
            "lost_offsets_from": lo,
            "lost_offsets_to_exclusive": hi,
            "reason": b.reason,
        });
        write_atomic(
            &qpath.with_extension("json"),
            desc.to_string().as_bytes(),
            false,
        )?;
        report.repaired.push(Repaired {
            segment: path.to_path_buf(),
            bytes: (b.start, b.end),
            lost,
            quarantine: Some(qpath),
            reason: b.reason.clone(),
        });
    }
    sync_dir(&qdir)?;

    // 2. The valid frames after damage, as new segments (temp names first).
    let keep_len = runs.first().filter(|r| r.start == 0).map_or(0, |r| r.end);
    let moved: Vec<Run> = runs.iter().copied().filter(|r| r.start > 0).collect();
    let mut placed = Vec::new();
    for r in &moved {
        let target = dir.join(segment_file_name(r.base));
        let tmp = dir.join(format!("{}.tmp", segment_file_name(r.base)));
        let bytes = read_range(&file, path, r.start, r.end)?;
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(io_err("write", &tmp))?;
        placed.push((tmp, target));
    }

    // 3. Record the gaps before any segment changes.
    let mut pieces: Vec<(Offset, Offset)> = Vec::new(); // (base, end) in order
    let kept_end = runs
        .first()
        .filter(|r| r.start == 0)
        .map_or(base, |r| r.next);
    if moved.first().is_none_or(|r| r.base != base) {
        pieces.push((base, kept_end));
    }
    pieces.extend(moved.iter().map(|r| (r.base, r.next)));
    for w in pieces.windows(2) {
        if w[0].1 < w[1].0 {
            gaps.insert(w[1].0, w[0].1);
        }
    }
    if let (Some(nb), Some(last)) = (next_base, pieces.last()) {
        if last.1 < nb {
            gaps.insert(nb, last.1);
        } else {
            gaps.remove(&nb);
        }
    }
    save_gaps(dir, gaps)?;

    // 4. Put the new segments in place, then cut the original.
    let replaced = moved.first().is_some_and(|r| r.base == base);
    let _ = fs::remove_file(index_file::path_for(path));
    drop(file);
    if !replaced {
        let f = fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err("open", path))?;
        f.set_len(keep_len)
            .and_then(|()| f.sync_all())
            .map_err(io_err("truncate", path))?;
    }
    for (tmp, target) in &placed {
        fs::rename(tmp, target).map_err(io_err("rename", tmp))?;
        report.new_segments.push(target.clone());
    }
    sync_dir(dir)?;

    // 5. Fresh index files for everything touched.
    let mut touched: Vec<&Path> = vec![path];
    touched.extend(placed.iter().map(|(_, t)| t.as_path()));
    for seg in touched {
        if let Ok(f) = File::open(seg) {
            let len = f.metadata().map_err(io_err("stat", seg))?.len();
            let b = super::files::list_segments(dir)?
                .into_iter()
                .find(|(_, p)| p == seg)
                .map_or(base, |(b, _)| b);
            let mut index = SparseIndex::default();
            scan(&f, 0, len, b, &mut index).map_err(io_err("read", seg))?;
            index_file::rewrite(seg, &index)?;
        }
    }
    Ok(())
}

fn read_range(file: &File, path: &Path, start: u64, end: u64) -> Result<Vec<u8>, LogError> {
    let mut buf = vec![0u8; (end - start) as usize];
    let got = read_at_most(file, start, &mut buf).map_err(io_err("read", path))?;
    buf.truncate(got);
    Ok(buf)
}
