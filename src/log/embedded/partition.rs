//! One partition: its segments, high watermark, recovery at open, append
//! with segment rolling and fsync, reads, and (read-only) refresh.
//!
//! Invariants:
//! - `State` changes only after the bytes it describes are on disk (and
//!   fsynced under `FsyncPolicy::Always`), so a reader never sees a batch
//!   that a failed append leaves behind.
//! - In writer mode there is always at least one segment and the last one
//!   is open for appending; every frame in it below `len` is valid.
//! - A read-only partition never writes, creates or truncates; it only
//!   advances `len`/`hwm` over frames that validate, so a batch another
//!   process is still writing is invisible until complete.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::damage::{corrupt_error, load_gaps};
use super::files::{list_segments, open_segment, segment_file_name, sync_dir};
use super::format::seal_frame;
use super::index_file;
use super::recovery::{
    check_sealed, extend, io_err, recover_active, scan_active_read_only, IndexJob,
};
use super::segment::{read_records, ReadPlan, Segment, SparseIndex};
use crate::log::{LogError, Offset, StoredRecord, TopicPartition};

/// What a read does next: read a planned range, or first validate and
/// index a sealed segment (outside the lock).
enum Step {
    Read(ReadPlan),
    Index(IndexJob),
    /// The offset lies at or past a segment's damage.
    Damaged(LogError),
}

#[derive(Debug)]
struct State {
    segments: Vec<Segment>,
    hwm: Offset,
    /// Set when a write or fsync failed: the file's tail and the page cache
    /// are then uncertain, so no further append is accepted until the log is
    /// reopened (and recovery re-validates the tail).
    failed: Option<String>,
}

/// One partition of a topic.
#[derive(Debug)]
pub(crate) struct Partition {
    tp: TopicPartition,
    dir: PathBuf,
    read_only: bool,
    state: Mutex<State>,
    /// Set by appends under `FsyncPolicy::Interval`, cleared by the flusher.
    dirty: AtomicBool,
    /// Woken after every append, so caught-up readers need not poll.
    appended: tokio::sync::Notify,
}

/// How often a read-only follower re-checks a partition it waits on.
const FOLLOWER_POLL: Duration = Duration::from_millis(5);

impl Partition {
    /// Opens the partition in `dir`. A writer creates the first segment if
    /// there is none, truncates a torn tail of the last one (warning) and
    /// refuses any other damage (see `recovery`); a reader takes what is
    /// readable and records where the damage starts.
    pub fn open(tp: TopicPartition, dir: PathBuf, read_only: bool) -> Result<Self, LogError> {
        let mut listed = list_segments(&dir)?;
        if listed.is_empty() && !read_only {
            let path = dir.join(segment_file_name(0));
            open_segment(&path, true, true)?;
            sync_dir(&dir)?;
            listed.push((0, path));
        }
        let gaps = load_gaps(&dir)?;
        let mut segments = Vec::with_capacity(listed.len());
        for (i, (base, path)) in listed.iter().enumerate() {
            let len = std::fs::metadata(path).map_err(io_err("stat", path))?.len();
            let next_offset = listed.get(i + 1).map_or(*base, |(next, _)| *next);
            // A repaired gap lets a sealed segment end before the next one.
            let expected_end = gaps
                .get(&next_offset)
                .copied()
                .filter(|from| (*base..=next_offset).contains(from))
                .unwrap_or(next_offset);
            segments.push(Segment {
                base: *base,
                path: path.clone(),
                file: None,
                len,
                index: None,
                index_file: None,
                next_offset,
                expected_end,
                damage: None,
            });
        }
        if !read_only {
            let sealed = segments.len().saturating_sub(1);
            for (i, seg) in segments.iter_mut().take(sealed).enumerate() {
                check_sealed(&tp, i, seg)?;
            }
        }
        let mut state = State {
            segments,
            hwm: 0,
            failed: None,
        };
        if let Some(last) = state.segments.last_mut() {
            let file = open_segment(&last.path, !read_only, false)?;
            let active = if read_only {
                scan_active_read_only(&file, &last.path, last.len, last.base)?
            } else {
                recover_active(&tp, &file, &last.path, last.len, last.base)?
            };
            if !read_only {
                index_file::rewrite(&last.path, &active.index)?;
                last.index_file = Some(index_file::IndexAppender::open(&last.path)?);
            }
            last.file = Some(Arc::new(file));
            last.len = active.outcome.valid_len;
            last.index = Some(active.index);
            last.next_offset = active.outcome.next_offset;
            last.expected_end = active.outcome.next_offset;
            last.damage = active.damage;
            state.hwm = last.end_offset();
        }
        Ok(Self {
            tp,
            dir,
            read_only,
            state: Mutex::new(state),
            dirty: AtomicBool::new(false),
            appended: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // State is only mutated after the IO it describes succeeded, so a
        // panic elsewhere cannot leave it half-updated: poisoning is benign.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one encoded frame (from `format::encode_batch`) of `count`
    /// records and returns its base offset.
    pub fn append(
        &self,
        mut frame: Vec<u8>,
        count: u64,
        segment_bytes: u64,
        fsync_now: bool,
    ) -> Result<Offset, LogError> {
        let mut st = self.lock();
        if let Some(reason) = &st.failed {
            return Err(LogError::io(
                format!("append to {} refused: an earlier write failed ({reason}); reopen the log to recover", self.tp),
                std::io::Error::other("partition failed"),
            ));
        }
        let base = st.hwm;
        seal_frame(&mut frame, base);
        let needs_roll = st
            .segments
            .last()
            .is_some_and(|s| s.len > 0 && s.len + frame.len() as u64 > segment_bytes);
        if needs_roll {
            self.roll(&mut st)?;
        }
        let Some(active) = st.segments.last_mut() else {
            return Err(LogError::ReadOnly(self.dir.display().to_string()));
        };
        let Some(file) = active.file.clone() else {
            return Err(LogError::ReadOnly(self.dir.display().to_string()));
        };
        let written = std::io::Write::write_all(&mut &*file, &frame).and_then(|()| {
            if fsync_now {
                file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Cut off whatever part of the frame made it, so the file stays a
            // sequence of valid frames; if even that fails, the next open's
            // recovery will.
            let _ = file.set_len(active.len);
            let path = active.path.display().to_string();
            st.failed = Some(e.to_string());
            return Err(LogError::io(format!("append to {path}"), e));
        }
        if let Some(index) = active.index.as_mut() {
            if index.note(base, active.len) {
                if let Some(f) = active.index_file.as_mut() {
                    if !f.append(base, active.len) {
                        active.index_file = None;
                    }
                }
            }
        }
        active.len += frame.len() as u64;
        active.next_offset = base + count;
        st.hwm = base + count;
        if !fsync_now {
            self.dirty.store(true, Ordering::Release);
        }
        drop(st);
        self.appended.notify_waiters();
        Ok(base)
    }

    /// Returns once the partition has a record at `offset` or later, or
    /// after `timeout`. In this process, appends wake waiters at once; a
    /// read-only follower of another process's log re-checks every few
    /// milliseconds.
    pub async fn wait_for(&self, offset: Offset, timeout: Duration) -> Result<(), LogError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the check, so an append between the check
            // and the await still wakes us.
            let notified = self.appended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.high_watermark()? > offset {
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(());
            }
            let step = if self.read_only {
                (deadline - now).min(FOLLOWER_POLL)
            } else {
                deadline - now
            };
            let _ = tokio::time::timeout(step, notified).await;
        }
    }

    /// Seals the active segment (fsynced, so a power loss cannot leave a hole
    /// before the new one) and starts a new one at the high watermark.
    fn roll(&self, st: &mut State) -> Result<(), LogError> {
        let hwm = st.hwm;
        if let Some(old) = st.segments.last_mut() {
            old.next_offset = hwm;
            old.expected_end = hwm;
            if let Some(f) = &old.file {
                f.sync_all().map_err(io_err("fsync", &old.path))?;
            }
            if let Some(idx) = old.index_file.take() {
                idx.sync();
            }
        }
        let path = self.dir.join(segment_file_name(st.hwm));
        let file = open_segment(&path, true, true)?;
        let index_file = index_file::IndexAppender::open(&path)?;
        sync_dir(&self.dir)?;
        st.segments.push(Segment {
            base: st.hwm,
            path,
            file: Some(Arc::new(file)),
            len: 0,
            index: Some(SparseIndex::default()),
            index_file: Some(index_file),
            next_offset: st.hwm,
            expected_end: st.hwm,
            damage: None,
        });
        Ok(())
    }

    /// fsyncs the active segment if an append dirtied it since last time.
    pub fn sync_if_dirty(&self) -> Result<(), LogError> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let active = self
            .lock()
            .segments
            .last()
            .and_then(|s| s.file.clone().map(|f| (f, s.path.clone())));
        if let Some((file, path)) = active {
            // Outside the lock: appends may continue while the disk works.
            if let Err(e) = file.sync_data() {
                self.dirty.store(true, Ordering::Release);
                return Err(LogError::io(format!("fsync {}", path.display()), e));
            }
        }
        Ok(())
    }

    pub fn high_watermark(&self) -> Result<Offset, LogError> {
        let mut st = self.lock();
        if self.read_only {
            self.refresh(&mut st)?;
        }
        Ok(st.hwm)
    }

    pub fn log_start(&self) -> Offset {
        self.lock().segments.first().map_or(0, |s| s.base)
    }

    /// Up to `max` records with `offset >= from`, across segments.
    pub fn read(&self, from: Offset, max: usize) -> Result<Vec<StoredRecord>, LogError> {
        let mut out = Vec::new();
        let mut cursor = from;
        let mut first = true;
        loop {
            let plan = {
                let mut st = self.lock();
                if std::mem::take(&mut first) {
                    let log_start = st.segments.first().map_or(0, |s| s.base);
                    if from < log_start {
                        return Err(LogError::OffsetOutOfRange {
                            tp: self.tp.clone(),
                            offset: from,
                            log_start,
                        });
                    }
                    if self.read_only && from >= st.hwm {
                        self.refresh(&mut st)?;
                    }
                }
                if cursor >= st.hwm || out.len() >= max {
                    break;
                }
                self.plan(&mut st, cursor)?
            };
            let plan = match plan {
                Step::Read(plan) => plan,
                Step::Index(job) => {
                    // Scanning a sealed segment can take a while: do it
                    // without the lock so appends carry on meanwhile.
                    let v = job.build()?;
                    if !self.read_only && v.scanned && v.damage.is_none() {
                        // Next time this segment opens, no scan is needed.
                        index_file::rewrite(&job.path, &v.index)?;
                    }
                    let mut st = self.lock();
                    if let Some(seg) = st.segments.get_mut(job.i) {
                        if seg.base == job.base && seg.index.is_none() {
                            seg.index = Some(v.index);
                            seg.damage = v.damage;
                        }
                    }
                    continue;
                }
                Step::Damaged(e) if out.is_empty() => return Err(e),
                // The records before the damage are served; the next read,
                // starting at the damage, gets the error.
                Step::Damaged(_) => break,
            };
            let before = out.len();
            match read_records(&plan, self.tp.partition, cursor, max, &mut out) {
                Ok(()) => {}
                Err(LogError::Corrupt { .. }) if out.len() > before => break,
                Err(LogError::Corrupt {
                    path,
                    position,
                    reason,
                }) => {
                    return Err(corrupt_error(
                        &self.tp,
                        Path::new(&path),
                        position,
                        cursor,
                        &reason,
                    ))
                }
                Err(e) => return Err(e),
            }
            if plan.next_offset <= cursor {
                break; // cannot happen with consistent state; never spin
            }
            cursor = plan.next_offset;
        }
        Ok(out)
    }

    /// Locates `offset` (below the high watermark), or says which sealed
    /// segment must be indexed first.
    fn plan(&self, st: &mut State, offset: Offset) -> Result<Step, LogError> {
        let i = st
            .segments
            .partition_point(|s| s.base <= offset)
            .saturating_sub(1);
        let seg = st.segments.get_mut(i).ok_or_else(|| LogError::Corrupt {
            path: self.dir.display().to_string(),
            position: 0,
            reason: format!("no segment holds offset {offset}"),
        })?;
        let file = match &seg.file {
            Some(f) => f.clone(),
            None => {
                let f = Arc::new(open_segment(&seg.path, false, false)?);
                seg.file = Some(f.clone());
                f
            }
        };
        let Some(index) = &seg.index else {
            return Ok(Step::Index(IndexJob {
                i,
                file,
                path: seg.path.clone(),
                len: seg.len,
                base: seg.base,
                expected_end: seg.expected_end,
            }));
        };
        let (end, next_offset) = match &seg.damage {
            Some(d) if offset >= d.offset => {
                return Ok(Step::Damaged(d.error(&self.tp, &seg.path)))
            }
            Some(d) => (d.position, d.offset),
            None => (seg.len, seg.next_offset),
        };
        let pos = index.lookup(offset);
        Ok(Step::Read(ReadPlan {
            file,
            path: seg.path.clone(),
            pos,
            end,
            next_offset,
        }))
    }

    /// Read-only: picks up frames and segments another process appended
    /// since we last looked. New segment files are listed *before* the
    /// current one is rescanned: the writer completes a segment before
    /// creating the next, so anything listed as newer means the current one
    /// is final by the time we rescan it.
    fn refresh(&self, st: &mut State) -> Result<(), LogError> {
        let last_base = st.segments.last().map(|s| s.base);
        let newer: Vec<_> = list_segments(&self.dir)?
            .into_iter()
            .filter(|(base, _)| match last_base {
                Some(b) => *base > b,
                None => true,
            })
            .collect();
        if let Some(last) = st.segments.last_mut() {
            extend(last)?;
            st.hwm = last.end_offset();
        }
        for (base, path) in newer {
            if base < st.hwm {
                tracing::warn!(
                    file = %path.display(),
                    hwm = st.hwm,
                    "ignoring segment that overlaps the previous one"
                );
                continue;
            }
            if let Some(prev) = st.segments.last_mut() {
                // Sealed now: reads continue at the next segment's base.
                prev.next_offset = base;
                prev.expected_end = base;
            }
            let mut seg = Segment {
                base,
                path,
                file: None,
                len: 0,
                index: Some(SparseIndex::default()),
                index_file: None,
                next_offset: base,
                expected_end: base,
                damage: None,
            };
            extend(&mut seg)?;
            st.hwm = seg.end_offset();
            st.segments.push(seg);
        }
        Ok(())
    }
}
