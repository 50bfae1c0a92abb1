//! Projection store (sled 0.34): one database per partition holding the
//! folded workflows, agents and pool usage, plus the checkpoint that says
//! which journal offset they reflect. Write-behind: the engine folds in
//! memory and writes a [`ProjectionStore::prepare`]d snapshot every N facts
//! or M ms (see [`flush`]); one flush is one atomic sled batch (dirty entries +
//! checkpoint), so after a crash the store is exactly the fold of
//! `journal[..checkpoint.journal_next]` and the engine refolds only the tail.
//! A replay writes its fresh store key by key instead, under an
//! `m/unfinished` marker: a store still marked is refused by readers and
//! emptied by the engine.
//!
//! Layout: one sled database per partition, `<data-dir>/store/p-<n>`: a
//! partition's projections open, move and rebuild on their own (what a
//! consumer-group reassignment needs), opening one does not read the
//! others' page tables (what `audit` and `inspect` need), and parallel
//! replays do not share one sled log.
//! Keys: `w/<workflow id>`, `a/<agent id>`, `p/<pool>`, `b/stats` (the
//! bottleneck projection, see `domain::bottleneck`), `c/…` (the
//! correlation index, see [`index`]), `m/checkpoint`, `m/format`,
//! `m/unfinished`. Values:
//! bincode (varint, see `values`) of the domain types; a
//! workflow's value is followed by its journal offsets. The format version is
//! bumped whenever a stored type changes shape; a store with another version
//! is rebuilt from the journal (see `docs` in the README).

mod damage;
mod flush;
pub mod index;
mod scan;
pub(crate) mod values;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::domain::bottleneck::Stats;
use crate::domain::engine::{AgentView, PartitionState, WorkflowState};
use crate::domain::events::Usage;
pub use damage::quarantine;
pub use flush::{evict_finished, Finished, PreparedFlush, StoreWriter};
pub use index::JournalIndex;
pub use scan::{store_path, WorkflowScan};
use values::{from_value, split_workflow_value};

/// Bump when a stored type changes shape (or its encoding: 6 moved the
/// values from fixed-width to varint bincode).
pub const FORMAT_VERSION: u32 = 6;

/// Key of the store's format version (see [`ProjectionStore::clear`]).
const FORMAT_KEY: &[u8] = b"m/format";
/// Present while a non-atomic writer ([`StoreWriter::write_unbatched`]) is
/// building the store: entries newer than its checkpoint may exist, so the
/// store is not the fold of any journal prefix until the marker is gone.
const UNFINISHED_KEY: &[u8] = b"m/unfinished";

/// Key of the bottleneck projection of the partition.
const BOTTLENECKS_KEY: &[u8] = b"b/stats";

/// What the stored state reflects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Next journal offset to fold (everything below is in the store).
    pub journal_next: u64,
    /// Next ingress offset to read.
    pub ingress_next: u64,
    pub facts_folded: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("making the journal durable before a checkpoint: {0}")]
    Journal(String),
    #[error("projection store {path}: {source}")]
    Sled { path: String, source: sled::Error },
    #[error("projection store {path}: corrupt value for key {key}: {reason}")]
    Corrupt {
        path: String,
        key: String,
        reason: String,
    },
    #[error("projection store {path} is damaged: {reason}")]
    Damaged { path: String, reason: String },
    #[error("projection store {path} was left half-written by an interrupted replay; delete it and replay again (the engine empties and rebuilds such a store)")]
    Unfinished { path: String },
    #[error("projection store {path} has format version {found}, this build uses {expected}; the engine (`baton run`, `baton demo`) rebuilds it from the journal when it starts")]
    Format {
        path: String,
        found: u32,
        expected: u32,
    },
}

/// Why the engine's open emptied a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Emptied {
    /// It was written in this other format version.
    Format(u32),
    /// An interrupted replay left it half-written.
    Unfinished,
    /// It was damaged (the reason); it was moved aside to `moved_to` and a
    /// new one created.
    Damaged { reason: String, moved_to: PathBuf },
}

fn dbs() -> std::sync::MutexGuard<'static, HashMap<PathBuf, sled::Db>> {
    static DBS: OnceLock<Mutex<HashMap<PathBuf, sled::Db>>> = OnceLock::new();
    DBS.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Drops this process's cached handle of the database at `path` (before
/// it is moved aside): the next open reads it from disk again.
fn forget_db(path: &Path) {
    dbs().remove(path);
}

/// One partition's projections: its own sled database.
pub struct ProjectionStore {
    db: sled::Db,
    tree: sled::Tree,
    path: PathBuf,
}

/// sled's page cache for a store the engine runs on. Small: the engine
/// holds its working set in memory and only writes dirty entries (a bigger
/// cache did not change demo throughput or latency), and a process may own
/// many partitions.
pub const ENGINE_CACHE_BYTES: u64 = 8 << 20;

/// Open databases by path: sled allows one open per path and process, so
/// the first open of a path decides its cache size.
fn shared_db(path: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let mut dbs = dbs();
    if let Some(db) = dbs.get(path) {
        return Ok(db.clone());
    }
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(cache_bytes)
        .mode(sled::Mode::LowSpace);
    let db = damage::open_catching(config, path)?;
    dbs.insert(path.to_path_buf(), db.clone());
    Ok(db)
}

fn key(prefix: &str, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + id.len());
    k.extend_from_slice(prefix.as_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

impl ProjectionStore {
    /// Opens partition `partition`'s projections under `data_dir/store`.
    pub fn open(data_dir: &Path, partition: u32) -> Result<Self, StoreError> {
        Self::open_with_cache(data_dir, partition, ENGINE_CACHE_BYTES)
    }

    /// [`open`](Self::open) with a sled page cache of up to `cache_bytes`
    /// (allocated only as used). For a bulk rebuild (replay): its inserts
    /// land in random leaves of a tree far bigger than the engine's cache,
    /// and with the tree cached sled stops re-reading evicted leaves from
    /// disk (measured on a 10M-event journal: 6–21% faster in three
    /// alternated runs, 45% faster beside a CPU-heavy process).
    pub fn open_with_cache(
        data_dir: &Path,
        partition: u32,
        cache_bytes: u64,
    ) -> Result<Self, StoreError> {
        let store = Self::open_unchecked(data_dir, partition, cache_bytes)?;
        match store.format()? {
            Some(found) if found != FORMAT_VERSION => {
                return Err(StoreError::Format {
                    path: store.path_str(),
                    found,
                    expected: FORMAT_VERSION,
                })
            }
            Some(_) => {}
            None => store.stamp_format()?,
        }
        if store
            .tree
            .contains_key(UNFINISHED_KEY)
            .map_err(|e| store.sled(e))?
        {
            return Err(StoreError::Unfinished {
                path: store.path_str(),
            });
        }
        Ok(store)
    }

    /// Opens the database and its tree, whatever they hold.
    fn open_unchecked(
        data_dir: &Path,
        partition: u32,
        cache_bytes: u64,
    ) -> Result<Self, StoreError> {
        let path = store_path(data_dir, partition);
        let db = shared_db(&path, cache_bytes)?;
        let tree = db.open_tree("projections").map_err(|source| {
            if damage::sled_damage(&source) {
                StoreError::Damaged {
                    path: path.display().to_string(),
                    reason: source.to_string(),
                }
            } else {
                StoreError::Sled {
                    path: path.display().to_string(),
                    source,
                }
            }
        })?;
        Ok(ProjectionStore { db, tree, path })
    }

    /// [`open`](Self::open) for the engine: a store written in another
    /// format version, or left unfinished by an interrupted replay, is
    /// emptied (and stamped with this build's format) instead of refused,
    /// so the partition rebuilds it from the journal, the truth every
    /// projection is derived from. Says why when it emptied one.
    pub fn open_rebuilding_other_formats(
        data_dir: &Path,
        partition: u32,
    ) -> Result<(Self, Option<Emptied>), StoreError> {
        let emptied = match Self::open(data_dir, partition) {
            Err(StoreError::Format { found, .. }) => Emptied::Format(found),
            Err(StoreError::Unfinished { .. }) => Emptied::Unfinished,
            Err(e) if e.is_damage() => return Self::replace_damaged(data_dir, partition, &e),
            other => return other.map(|s| (s, None)),
        };
        let store = Self::open_unchecked(data_dir, partition, ENGINE_CACHE_BYTES)?;
        store.clear()?;
        Ok((store, Some(emptied)))
    }

    /// Moves partition `partition`'s damaged store aside (see
    /// [`quarantine`]) and opens a new, empty one in its place. `damage`
    /// says what was found. The caller must hold no handle to the old one.
    pub fn replace_damaged(
        data_dir: &Path,
        partition: u32,
        damage: &StoreError,
    ) -> Result<(Self, Option<Emptied>), StoreError> {
        let moved_to = quarantine(data_dir, partition)?;
        let store = Self::open(data_dir, partition)?;
        Ok((
            store,
            Some(Emptied::Damaged {
                reason: damage.to_string(),
                moved_to,
            }),
        ))
    }

    /// Reads every page of the store that [`load_into`](Self::load_into)
    /// does not (the correlation index and meta keys), so damage there is
    /// found at start-up, not at some later read.
    pub fn read_all_pages(&self) -> Result<(), StoreError> {
        for prefix in [&b"c/"[..], b"m/", b"b/"] {
            for kv in self.tree.scan_prefix(prefix) {
                kv.map_err(|e| self.sled(e))?;
            }
        }
        Ok(())
    }

    /// Marks the store as being built by a non-atomic writer, durably,
    /// before its first write; [`mark_finished`](Self::mark_finished) ends
    /// that. Opening a store still marked fails ([`StoreError::Unfinished`]).
    pub fn mark_unfinished(&self) -> Result<(), StoreError> {
        self.tree
            .insert(UNFINISHED_KEY, &[])
            .map_err(|e| self.sled(e))?;
        self.db.flush().map_err(|e| self.sled(e))?;
        Ok(())
    }

    /// Ends [`mark_unfinished`](Self::mark_unfinished), once every write is
    /// durable.
    pub fn mark_finished(&self) -> Result<(), StoreError> {
        self.tree.remove(UNFINISHED_KEY).map_err(|e| self.sled(e))?;
        self.db.flush().map_err(|e| self.sled(e))?;
        Ok(())
    }

    /// Marks the store as holding this build's format.
    fn stamp_format(&self) -> Result<(), StoreError> {
        let v = FORMAT_VERSION.to_le_bytes();
        self.tree.insert(FORMAT_KEY, &v).map_err(|e| self.sled(e))?;
        Ok(())
    }

    /// The stored format version. Four little-endian bytes in every
    /// version (fixed-width bincode's `u32`, before format 6), so a store
    /// of any version says which it is, whatever its values' encoding.
    fn format(&self) -> Result<Option<u32>, StoreError> {
        let Some(v) = self.tree.get(FORMAT_KEY).map_err(|e| self.sled(e))? else {
            return Ok(None);
        };
        match <[u8; 4]>::try_from(v.as_ref()) {
            Ok(b) => Ok(Some(u32::from_le_bytes(b))),
            Err(_) => Err(self.corrupt(FORMAT_KEY, format!("{} bytes, expected 4", v.len()))),
        }
    }

    /// Forgets every projection (the store then reads as new), for a
    /// rebuild from the journal.
    ///
    /// sled's own `clear` removes keys one by one in key order, so a crash
    /// midway could leave old values under a fresh format stamp, or old
    /// workflows without the checkpoint they belong to (`m/` sorts before
    /// `w/`). Here the whole clear runs under the unfinished marker (an
    /// interrupted clear leaves a store the engine clears again and readers
    /// refuse), and the format key goes last.
    pub fn clear(&self) -> Result<(), StoreError> {
        const CHUNK: usize = 10_000;
        self.mark_unfinished()?;
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        for k in self.tree.iter().keys() {
            let k = k.map_err(|e| self.sled(e))?;
            if k.as_ref() == FORMAT_KEY || k.as_ref() == UNFINISHED_KEY {
                continue;
            }
            batch.remove(k);
            in_batch += 1;
            if in_batch == CHUNK {
                self.tree
                    .apply_batch(std::mem::take(&mut batch))
                    .map_err(|e| self.sled(e))?;
                in_batch = 0;
            }
        }
        self.tree.apply_batch(batch).map_err(|e| self.sled(e))?;
        self.tree.flush().map_err(|e| self.sled(e))?;
        self.stamp_format()?;
        self.mark_finished()
    }

    fn path_str(&self) -> String {
        self.path.display().to_string()
    }

    /// A sled error of this store: damage (see `damage`) or another failure.
    fn sled(&self, source: sled::Error) -> StoreError {
        if damage::sled_damage(&source) {
            return StoreError::Damaged {
                path: self.path_str(),
                reason: source.to_string(),
            };
        }
        StoreError::Sled {
            path: self.path_str(),
            source,
        }
    }

    fn get<T: for<'de> Deserialize<'de>>(&self, k: &[u8]) -> Result<Option<T>, StoreError> {
        match self.tree.get(k).map_err(|e| self.sled(e))? {
            None => Ok(None),
            Some(v) => from_value(&v).map(Some).map_err(|e| StoreError::Corrupt {
                path: self.path_str(),
                key: String::from_utf8_lossy(k).into_owned(),
                reason: e.to_string(),
            }),
        }
    }

    fn scan<T: for<'de> Deserialize<'de>>(&self, prefix: &str) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(prefix.as_bytes()) {
            let (k, v) = kv.map_err(|e| self.sled(e))?;
            out.push(from_value(&v).map_err(|e| StoreError::Corrupt {
                path: self.path_str(),
                key: String::from_utf8_lossy(&k).into_owned(),
                reason: e.to_string(),
            })?);
        }
        Ok(out)
    }

    /// The projection entries (workflows, agents, pool usage; not the
    /// checkpoint or format keys), raw, in key order.
    pub fn entries(
        &self,
    ) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec), StoreError>> + '_ {
        self.tree
            .iter()
            .filter(|kv| !matches!(kv, Ok((k, _)) if k.starts_with(b"m/")))
            .map(|kv| kv.map_err(|e| self.sled(e)))
    }

    /// A digest of the projections: SHA-256 over every entry of
    /// [`entries`](Self::entries) (length-prefixed key and value), hex.
    /// Two stores with equal digests hold equal projections.
    pub fn digest(&self) -> Result<String, StoreError> {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for kv in self.entries() {
            let (k, v) = kv?;
            h.update((k.len() as u64).to_le_bytes());
            h.update(&k);
            h.update((v.len() as u64).to_le_bytes());
            h.update(&v);
        }
        Ok(format!("{:x}", h.finalize()))
    }

    /// A stored entry decoded for people (`--verify`'s difference report).
    pub fn describe(key: &[u8], value: &[u8]) -> String {
        let text = if key.starts_with(b"w/") {
            return match split_workflow_value(value) {
                Ok((wf, offsets)) => format!("{wf:?} journal offsets {offsets:?}"),
                Err(e) => format!("<undecodable: {e}>"),
            };
        } else if key.starts_with(b"c/") {
            return "correlation index entry".into();
        } else if key == BOTTLENECKS_KEY {
            from_value::<Stats>(value).map(|s| {
                format!(
                    "bottleneck projection: {} pools, {} capabilities, {} agents, {} step kinds, active {:?}",
                    s.pools.len(),
                    s.capabilities.len(),
                    s.agents.len(),
                    s.kinds.len(),
                    s.active.keys().collect::<Vec<_>>()
                )
            })
        } else if key.starts_with(b"a/") {
            from_value::<AgentView>(value).map(|v| format!("{v:?}"))
        } else {
            from_value::<Usage>(value).map(|v| format!("{v:?}"))
        };
        text.unwrap_or_else(|e| format!("<undecodable: {e}>"))
    }

    /// The partition's bottleneck projection, if one was stored.
    pub fn bottlenecks(&self) -> Result<Option<Stats>, StoreError> {
        self.get(BOTTLENECKS_KEY)
    }

    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.get(b"m/checkpoint")
    }

    fn corrupt(&self, k: &[u8], reason: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path_str(),
            key: String::from_utf8_lossy(k).into_owned(),
            reason,
        }
    }

    /// One workflow as stored (terminal workflows live only here once evicted).
    pub fn workflow(&self, id: &str) -> Result<Option<WorkflowState>, StoreError> {
        Ok(self.workflow_entry(id)?.map(|(wf, _)| wf))
    }

    /// One workflow as stored, with the journal offsets of its facts.
    pub fn workflow_entry(
        &self,
        id: &str,
    ) -> Result<Option<(WorkflowState, Vec<u64>)>, StoreError> {
        let k = key("w/", id);
        match self.tree.get(&k).map_err(|e| self.sled(e))? {
            None => Ok(None),
            Some(v) => split_workflow_value(&v)
                .map(Some)
                .map_err(|r| self.corrupt(&k, r)),
        }
    }

    /// Every stored workflow with its journal offsets.
    pub fn workflow_entries(&self) -> Result<Vec<(WorkflowState, Vec<u64>)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(b"w/") {
            let (k, v) = kv.map_err(|e| self.sled(e))?;
            out.push(split_workflow_value(&v).map_err(|r| self.corrupt(&k, r))?);
        }
        Ok(out)
    }

    /// Every stored workflow (for inspection and verification).
    pub fn workflows(&self) -> Result<Vec<WorkflowState>, StoreError> {
        Ok(self
            .workflow_entries()?
            .into_iter()
            .map(|(wf, _)| wf)
            .collect())
    }

    /// The journal offsets of every fact of `correlation_id` in this
    /// partition, ascending: the workflow's own list plus any loose facts.
    pub fn journal_offsets(&self, correlation_id: &str) -> Result<Vec<u64>, StoreError> {
        let mut out = self
            .workflow_entry(correlation_id)?
            .map(|(_, o)| o)
            .unwrap_or_default();
        let prefix = index::loose_prefix(correlation_id);
        for kv in self.tree.scan_prefix(&prefix) {
            let (k, _) = kv.map_err(|e| self.sled(e))?;
            let tail: [u8; 8] = k[prefix.len()..]
                .try_into()
                .map_err(|_| self.corrupt(&k, "index key without an offset".into()))?;
            out.push(u64::from_be_bytes(tail));
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    pub fn agents(&self) -> Result<Vec<AgentView>, StoreError> {
        self.scan("a/")
    }

    /// Loads the non-terminal workflows, the agents and pool usage into
    /// `state` and rebuilds its derived indexes.
    /// `on_finished` sees the id of every finished workflow (left in the store).
    pub fn load_into(
        &self,
        state: &mut PartitionState,
        index: &mut JournalIndex,
        mut on_finished: impl FnMut(&str),
    ) -> Result<Option<Checkpoint>, StoreError> {
        for (wf, offsets) in self.workflow_entries()? {
            state.next_seq_at_least(wf.seq + 1);
            if wf.is_terminal() {
                on_finished(&wf.id);
            } else {
                index.restore(&wf.id, offsets);
                state.workflows.insert(wf.id.clone(), wf);
            }
        }
        for a in self.agents()? {
            state.agents.insert(a.id.clone(), a);
        }
        for kv in self.tree.scan_prefix(b"p/") {
            let (k, v) = kv.map_err(|e| self.sled(e))?;
            let pool = String::from_utf8_lossy(&k[2..]).into_owned();
            let usage: Usage = from_value(&v).map_err(|e| self.corrupt(&k, e.to_string()))?;
            state.pool_usage.insert(pool, usage);
        }
        if let Some(stats) = self.bottlenecks()? {
            let cfg = &state.config.bottleneck;
            if stats.short_ms() == cfg.short_window_ms && stats.long_ms() == cfg.long_window_ms {
                state.bottlenecks = stats;
            } else {
                // Other windows: the figures restart, the findings stay.
                state.bottlenecks.active = stats.active;
                state.bottlenecks.recent = stats.recent;
            }
        }
        state.rebuild_derived();
        let cp = self.checkpoint()?;
        if let Some(c) = &cp {
            state.facts_folded = c.facts_folded;
        }
        Ok(cp)
    }

    /// Counts of stored workflows by status.
    pub fn status_counts(&self) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        let mut counts = std::collections::BTreeMap::new();
        for wf in self.workflows()? {
            *counts.entry(format!("{:?}", wf.status)).or_insert(0) += 1;
        }
        Ok(counts)
    }
}
