//! The write path of a projection store: [`ProjectionStore::prepare`]
//! snapshots the dirty entries and the checkpoint on the fold's thread, a
//! [`StoreWriter`] serialises and writes them, possibly on another. The
//! engine writes each flush as one atomic sled batch (entries + checkpoint);
//! a replay building a fresh store writes key by key, the checkpoint last,
//! under the store's unfinished marker.

use super::values::{to_value, write_workflow_value};
use super::{index, key, Checkpoint, JournalIndex, ProjectionStore, StoreError, BOTTLENECKS_KEY};
use crate::domain::bottleneck::Stats;
use crate::domain::engine::{AgentView, PartitionState, WorkflowState};
use crate::domain::events::Usage;

/// A snapshot of the dirty entries, ready to be serialised and written
/// (by [`StoreWriter::write`], typically off the decision loop: taking the
/// snapshot is a clone, several times cheaper than serialising).
pub struct PreparedFlush {
    /// Each dirty workflow with its journal offsets.
    workflows: Vec<(WorkflowState, Vec<u64>)>,
    /// Correlation-index facts of no workflow in memory.
    loose: Vec<(String, u64)>,
    agents: Vec<AgentView>,
    pools: Vec<(String, Usage)>,
    /// The bottleneck projection (one value, rewritten at every flush).
    bottlenecks: Option<Stats>,
    checkpoint: Checkpoint,
    /// Workflows and agents in it.
    pub entries: usize,
    /// Terminal workflows whose final state it carries.
    pub finished: Vec<String>,
}

/// One stored key and its value.
type Entry = (Vec<u8>, sled::IVec);

impl PreparedFlush {
    /// How many keys writing it inserts.
    pub fn keys(&self) -> usize {
        let bottlenecks = usize::from(self.bottlenecks.is_some());
        self.workflows.len()
            + self.loose.len()
            + self.agents.len()
            + self.pools.len()
            + bottlenecks
            + 1
    }

    /// Its entries, and the checkpoint entry apart (a writer that is not
    /// atomic writes it last).
    fn into_entries(self) -> (Vec<Entry>, Entry) {
        let mut out: Vec<Entry> = Vec::with_capacity(self.keys());
        // One scratch buffer: sled copies each value into its own
        // allocation anyway, so a fresh Vec per workflow (and bincode's
        // sizing pass) would be wasted work.
        let mut scratch = Vec::with_capacity(1024);
        for (wf, offsets) in &self.workflows {
            scratch.clear();
            write_workflow_value(wf, offsets, &mut scratch);
            out.push((key("w/", &wf.id), scratch.as_slice().into()));
        }
        for (c, o) in &self.loose {
            out.push((index::loose_key(c, *o), sled::IVec::default()));
        }
        for a in &self.agents {
            out.push((key("a/", &a.id), to_value(a).into()));
        }
        for (pool, usage) in &self.pools {
            out.push((key("p/", pool), to_value(usage).into()));
        }
        if let Some(stats) = &self.bottlenecks {
            out.push((BOTTLENECKS_KEY.to_vec(), to_value(stats).into()));
        }
        let checkpoint = (b"m/checkpoint".to_vec(), to_value(&self.checkpoint).into());
        (out, checkpoint)
    }

    fn into_batch(self) -> sled::Batch {
        let (entries, (ck, cv)) = self.into_entries();
        let mut batch = sled::Batch::default();
        for (k, v) in entries {
            batch.insert(k, v);
        }
        batch.insert(ck, cv);
        batch
    }
}

/// What [`ProjectionStore::prepare`] does with terminal workflows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    /// Clone them; they stay in memory until the write is durable (the
    /// engine: a duplicate submission must still find them meanwhile).
    KeepUntilWritten,
    /// Move them out of memory now (replay).
    MoveOut,
}

/// Drops finished workflows from memory once their final state is stored
/// (they are read back from the store when needed).
pub fn evict_finished(state: &mut PartitionState, index: &mut JournalIndex, ids: &[String]) {
    for id in ids {
        if state.workflows.get(id).is_some_and(|w| w.is_terminal()) {
            state.workflows.remove(id);
            index.forget(id);
        }
    }
}

/// Writes prepared flushes; see [`ProjectionStore::prepare`].
#[derive(Clone)]
pub struct StoreWriter {
    db: sled::Db,
    tree: sled::Tree,
    path: String,
}

impl StoreWriter {
    /// Applies the batch atomically and makes it durable.
    pub fn write(&self, batch: PreparedFlush) -> Result<(), StoreError> {
        self.write_batch(batch.into_batch())
    }

    /// Writes the flush key by key, the checkpoint last, and makes it
    /// durable: not atomic, for a store that is thrown away when its writer
    /// fails (a replay's fresh store). sled's `apply_batch` takes a lock
    /// global to the process, so two partitions' batches never overlap;
    /// plain inserts do.
    pub fn write_unbatched(&self, batch: PreparedFlush) -> Result<(), StoreError> {
        let err = |source| StoreError::Sled {
            path: self.path.clone(),
            source,
        };
        let (mut entries, (ck, cv)) = batch.into_entries();
        // Ascending keys, as a sled batch would apply them: consecutive
        // inserts land in the same leaf.
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in entries {
            self.tree.insert(k, v).map_err(err)?;
        }
        self.tree.insert(ck, cv).map_err(err)?;
        self.db.flush().map_err(err)?;
        Ok(())
    }

    fn write_batch(&self, batch: sled::Batch) -> Result<(), StoreError> {
        let err = |source| StoreError::Sled {
            path: self.path.clone(),
            source,
        };
        self.tree.apply_batch(batch).map_err(err)?;
        self.db.flush().map_err(err)?;
        Ok(())
    }
}

impl ProjectionStore {
    /// Snapshots the dirty entries and the checkpoint (the part that needs
    /// the state). Write it with [`StoreWriter::write`], possibly on another
    /// thread (until it is written, a crash simply resumes from the previous
    /// checkpoint). With [`Finished::KeepUntilWritten`] terminal workflows are
    /// cloned and stay in memory; once written, drop them with
    /// [`evict_finished`]. With [`Finished::MoveOut`] they leave `state` (and
    /// the index) now: for a fold nobody queries meanwhile (replay).
    pub fn prepare(
        &self,
        state: &mut PartitionState,
        index: &mut JournalIndex,
        checkpoint: &Checkpoint,
        terminal: Finished,
    ) -> PreparedFlush {
        let dirty_wf = std::mem::take(&mut state.dirty_workflows);
        let mut workflows = Vec::with_capacity(dirty_wf.len());
        let mut finished = Vec::new();
        for id in dirty_wf {
            let Some(wf) = state.workflows.get(&id) else {
                continue;
            };
            let offsets = index.offsets(&id).to_vec();
            let done = wf.is_terminal();
            match (done, terminal) {
                (true, Finished::MoveOut) => {
                    if let Some(wf) = state.workflows.remove(&id) {
                        index.forget(&id);
                        workflows.push((wf, offsets));
                    }
                }
                _ => workflows.push((wf.clone(), offsets)),
            }
            if done {
                finished.push(id);
            }
        }
        let agents: Vec<AgentView> = std::mem::take(&mut state.dirty_agents)
            .iter()
            .filter_map(|id| state.agents.get(id).cloned())
            .collect();
        let pools = state
            .pool_usage
            .iter()
            .map(|(p, u)| (p.clone(), u.clone()))
            .collect();
        let bottlenecks = state
            .config
            .bottleneck
            .enabled
            .then(|| state.bottlenecks.clone());
        PreparedFlush {
            bottlenecks,
            entries: workflows.len() + agents.len(),
            workflows,
            loose: index.take_loose(),
            agents,
            pools,
            checkpoint: checkpoint.clone(),
            finished,
        }
    }

    /// A handle that writes prepared batches (cheap to clone, `Send`).
    pub fn writer(&self) -> StoreWriter {
        StoreWriter {
            db: self.db.clone(),
            tree: self.tree.clone(),
            path: self.path_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::samples;
    use crate::domain::engine::EngineConfig;
    use crate::domain::events::{Category, Payload};
    use crate::store::StoreError;

    /// The sample journal facts folded, prepared as one flush.
    fn sample_flush(store: &ProjectionStore) -> PreparedFlush {
        let mut state = PartitionState::projections_only(EngineConfig::default());
        let mut index = JournalIndex::default();
        let facts = samples::all()
            .into_iter()
            .filter(|e| Payload::TYPES[e.payload.type_index()].1 == Category::Journal);
        let mut n = 0;
        for (offset, e) in facts.enumerate() {
            state.evolve(&e);
            index.record(&mut state, &e, offset as u64);
            n = offset as u64 + 1;
        }
        let cp = Checkpoint {
            journal_next: n,
            ..Checkpoint::default()
        };
        store.prepare(&mut state, &mut index, &cp, Finished::KeepUntilWritten)
    }

    /// Key by key or as one batch, a flush leaves the same store.
    #[test]
    fn unbatched_and_batched_writes_store_the_same_entries() {
        let dir = tempfile::tempdir().unwrap();
        let batched = ProjectionStore::open(dir.path(), 0).unwrap();
        let unbatched = ProjectionStore::open(dir.path(), 1).unwrap();
        let flush = sample_flush(&batched);
        assert!(flush.keys() > 3, "the samples make several entries");
        batched.writer().write(flush).unwrap();
        unbatched
            .writer()
            .write_unbatched(sample_flush(&unbatched))
            .unwrap();
        assert_eq!(batched.digest().unwrap(), unbatched.digest().unwrap());
        assert_eq!(
            batched.checkpoint().unwrap(),
            unbatched.checkpoint().unwrap()
        );
        assert!(unbatched.checkpoint().unwrap().is_some());
    }

    /// A store left marked unfinished is refused by readers and emptied by
    /// the engine's open; once finished it opens as usual.
    #[test]
    fn an_unfinished_store_is_refused_then_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = ProjectionStore::open(dir.path(), 0).unwrap();
            store.mark_unfinished().unwrap();
            store
                .writer()
                .write_unbatched(sample_flush(&store))
                .unwrap();
        }
        let refused = ProjectionStore::open(dir.path(), 0).map(|_| ());
        assert!(
            matches!(refused, Err(StoreError::Unfinished { .. })),
            "{refused:?}"
        );
        let (store, emptied) =
            ProjectionStore::open_rebuilding_other_formats(dir.path(), 0).unwrap();
        assert_eq!(emptied, Some(crate::store::Emptied::Unfinished));
        assert!(store.checkpoint().unwrap().is_none());
        assert_eq!(store.entries().count(), 0);
        // A store built to the end is not marked.
        store.mark_unfinished().unwrap();
        store
            .writer()
            .write_unbatched(sample_flush(&store))
            .unwrap();
        store.mark_finished().unwrap();
        assert!(ProjectionStore::open(dir.path(), 0).is_ok());
    }
}
