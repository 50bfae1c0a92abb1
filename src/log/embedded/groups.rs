//! Consumer-group offsets: one JSON file per group,
//! `<root>/groups/<group>.json`, shaped `{"offsets": {"<topic>": {"<partition>": <offset>}}}`.
//!
//! Invariants:
//! - A commit rewrites the whole file with temp + fsync + rename, so after a
//!   crash a group file holds either the previous or the new commit, never a
//!   mix: the offsets of one call are applied together.
//! - A writer caches every group it has touched (it holds the lock, so no
//!   one else changes the files); a read-only log rereads the file on every
//!   `committed` call so it sees the writer's commits.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::files::{group_file_stem, sync_dir, write_atomic};
use crate::log::{LogError, Offset, TopicPartition};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct GroupFile {
    offsets: BTreeMap<String, BTreeMap<u32, Offset>>,
}

#[derive(Debug)]
pub(crate) struct Groups {
    dir: PathBuf,
    read_only: bool,
    /// fsync the directory after each rename (`FsyncPolicy::Always`).
    durable: bool,
    cache: Mutex<HashMap<String, GroupFile>>,
    /// A rename happened whose directory entry is not fsynced yet.
    dirty: AtomicBool,
}

impl Groups {
    pub fn new(dir: PathBuf, read_only: bool, durable: bool) -> Self {
        Self {
            dir,
            read_only,
            durable,
            cache: Mutex::new(HashMap::new()),
            dirty: AtomicBool::new(false),
        }
    }

    fn path(&self, group: &str) -> PathBuf {
        self.dir.join(format!("{}.json", group_file_stem(group)))
    }

    fn load(path: &Path) -> Result<GroupFile, LogError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LogError::Corrupt {
                path: path.display().to_string(),
                position: 0,
                reason: format!("bad consumer group file: {e}"),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(GroupFile::default()),
            Err(e) => Err(LogError::io(format!("read {}", path.display()), e)),
        }
    }

    pub fn commit(
        &self,
        group: &str,
        offsets: &[(TopicPartition, Offset)],
    ) -> Result<(), LogError> {
        if self.read_only {
            return Err(LogError::ReadOnly(self.dir.display().to_string()));
        }
        let path = self.path(group);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = match cache.get(group) {
            Some(g) => g.clone(),
            None => Self::load(&path)?,
        };
        for (tp, offset) in offsets {
            next.offsets
                .entry(tp.topic.clone())
                .or_default()
                .insert(tp.partition, *offset);
        }
        let json = serde_json::to_vec(&next)
            .map_err(|e| LogError::io(format!("encode {}", path.display()), io::Error::other(e)))?;
        write_atomic(&path, &json, self.durable)?;
        if !self.durable {
            self.dirty.store(true, Ordering::Release);
        }
        cache.insert(group.to_string(), next);
        Ok(())
    }

    pub fn committed(&self, group: &str, tp: &TopicPartition) -> Result<Option<Offset>, LogError> {
        let lookup = |g: &GroupFile| {
            g.offsets
                .get(&tp.topic)
                .and_then(|p| p.get(&tp.partition))
                .copied()
        };
        if self.read_only {
            return Ok(lookup(&Self::load(&self.path(group))?));
        }
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(g) = cache.get(group) {
            return Ok(lookup(g));
        }
        let g = Self::load(&self.path(group))?;
        let found = lookup(&g);
        cache.insert(group.to_string(), g);
        Ok(found)
    }

    /// fsyncs the groups directory if a commit renamed a file since.
    pub fn sync_if_dirty(&self) -> Result<(), LogError> {
        if self.dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = sync_dir(&self.dir) {
                self.dirty.store(true, Ordering::Release);
                return Err(e);
            }
        }
        Ok(())
    }
}
