//! Query-side reads of a partition store (the HTTP API): opening a store
//! only when it already exists on disk, and a bounded, resumable scan of
//! the stored workflows in key order.
//!
//! Invariants: a read never creates a store (sled would create the
//! directory on open, and a later engine would then find a store it did not
//! write); a scan deserialises at most its budget of entries, so its cost
//! does not depend on how many entries a filter skips; the resume position
//! is a raw key suffix, so any byte string is a valid place to resume.

use std::ops::Bound;
use std::path::{Path, PathBuf};

use super::{split_workflow_value, ProjectionStore, StoreError};
use crate::domain::engine::WorkflowState;

/// First key of the workflow range (`w/…`) and the first key past it
/// (`'0'` is the byte after `'/'`).
const WORKFLOWS_FROM: &[u8] = b"w/";
const WORKFLOWS_UNTIL: &[u8] = b"w0";

/// One page of [`ProjectionStore::workflow_scan`].
#[derive(Debug, Default)]
pub struct WorkflowScan {
    /// The workflows `keep` accepted, in id (byte) order.
    pub items: Vec<WorkflowState>,
    /// Entries deserialised (kept or not).
    pub scanned: usize,
    /// Where to resume (the id bytes of the last entry looked at) when the
    /// scan stopped before the end of the partition's workflows; `None`
    /// when it reached the end.
    pub resume_after: Option<Vec<u8>>,
}

/// The directory of partition `partition`'s store under `data_dir`.
pub fn store_path(data_dir: &Path, partition: u32) -> PathBuf {
    data_dir.join("store").join(format!("p-{partition}"))
}

impl ProjectionStore {
    /// Opens partition `partition`'s store if it exists on disk; `None`
    /// when it does not (nothing is created).
    pub fn open_existing(data_dir: &Path, partition: u32) -> Result<Option<Self>, StoreError> {
        if !store_path(data_dir, partition).is_dir() {
            return Ok(None);
        }
        Self::open(data_dir, partition).map(Some)
    }

    /// Scans stored workflows in id order, starting after the id bytes
    /// `after` (from the first when `None`), keeping those `keep` accepts.
    /// Stops after `max_items` kept or `budget` looked at (both at least
    /// 1), whichever comes first, and says where to resume.
    pub fn workflow_scan(
        &self,
        after: Option<&[u8]>,
        max_items: usize,
        budget: usize,
        mut keep: impl FnMut(&WorkflowState) -> bool,
    ) -> Result<WorkflowScan, StoreError> {
        let (max_items, budget) = (max_items.max(1), budget.max(1));
        let from = match after {
            Some(id) => {
                let mut k = WORKFLOWS_FROM.to_vec();
                k.extend_from_slice(id);
                Bound::Excluded(k)
            }
            None => Bound::Included(WORKFLOWS_FROM.to_vec()),
        };
        let range = (from, Bound::Excluded(WORKFLOWS_UNTIL.to_vec()));
        let mut out = WorkflowScan::default();
        let mut last: Option<sled::IVec> = None;
        for kv in self.tree.range::<Vec<u8>, _>(range) {
            let (k, v) = kv.map_err(|e| self.sled(e))?;
            if out.items.len() >= max_items || out.scanned >= budget {
                // An entry remains: resume after the last one looked at
                // (there is one: both limits are at least 1).
                out.resume_after = last.map(|k| k[WORKFLOWS_FROM.len()..].to_vec());
                return Ok(out);
            }
            let (wf, _) = split_workflow_value(&v).map_err(|r| self.corrupt(&k, r))?;
            out.scanned += 1;
            if keep(&wf) {
                out.items.push(wf);
            }
            last = Some(k);
        }
        Ok(out)
    }
}

/// The key of workflow `id` (for tests of the layout).
#[cfg(test)]
fn workflow_key(id: &str) -> Vec<u8> {
    super::key("w/", id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workflow_range_holds_exactly_the_workflow_keys() {
        let k = workflow_key("any/id:with-bytes");
        assert!(k.as_slice() >= WORKFLOWS_FROM && k.as_slice() < WORKFLOWS_UNTIL);
        for other in [&b"w"[..], b"a/x", b"m/format", b"c/x", b"w0"] {
            assert!(
                !(other >= WORKFLOWS_FROM && other < WORKFLOWS_UNTIL),
                "{other:?}"
            );
        }
    }

    #[test]
    fn a_missing_store_is_not_created_by_a_read() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ProjectionStore::open_existing(dir.path(), 3)
            .unwrap()
            .is_none());
        assert!(!store_path(dir.path(), 3).exists());
    }
}
