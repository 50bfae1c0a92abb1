//! Opening projection stores for the read-only commands (`inspect`,
//! `audit`, `report`, `replay --verify`): a store that is damaged, or that
//! no longer matches the durable log beside it, is refused with what was
//! found and what to do, never answered from.
//!
//! What is checked (see `store::damage` for what sled does with damage):
//! - sled panics or reports corruption opening or reading the store, or
//!   its checkpoint does not decode: damaged.
//! - the checkpoint names journal offsets past the journal's end: the
//!   journal lost facts the store reflects.
//! - the checkpoint reflects fewer ingress records than the engine's group
//!   committed: the engine commits only after the checkpoint covering the
//!   commit is durable in the store, so the store lost durable writes
//!   (sled drops everything after damage in its log and opens without
//!   complaint) or a rebuild was interrupted. On the embedded log one
//!   process runs every partition, so this is certain; on Kafka another
//!   instance may have run the partition since, so it is only a warning.
//!
//! Damage in entries a command does not read goes unnoticed by that
//! command (reads are checked by sled's CRCs as they happen); the engine
//! reads every page when it starts.

use std::path::Path;

use anyhow::anyhow;

use super::GlobalArgs;
use crate::log::{EventLog, TopicPartition};
use crate::store::{store_path, ProjectionStore, StoreError};

/// What to do about a store the read-only commands refuse.
const REBUILD: &str = "It is derived state: `baton run` (or `baton demo`) moves a damaged store aside to store/p-<n>.corrupt-<time> and rebuilds it from the journal";

/// Opens partition `p`'s store for `command` (creating an empty one when
/// none exists, as before), refusing it when it is damaged or does not
/// match the log.
pub async fn open_checked(
    global: &GlobalArgs,
    log: &dyn EventLog,
    p: u32,
    command: &str,
) -> anyhow::Result<ProjectionStore> {
    let store = ProjectionStore::open(&global.data_dir, p).map_err(|e| refusal(p, e, command))?;
    check(global, log, p, &store).await?;
    Ok(store)
}

/// Checks every existing store of `partitions` (see the module comment).
pub async fn check_existing(
    global: &GlobalArgs,
    log: &dyn EventLog,
    partitions: &[u32],
) -> anyhow::Result<()> {
    for &p in partitions {
        if let Some(store) = ProjectionStore::open_existing(&global.data_dir, p)
            .map_err(|e| refusal(p, e, "this command"))?
        {
            check(global, log, p, &store).await?;
        }
    }
    Ok(())
}

fn refusal(p: u32, e: StoreError, command: &str) -> anyhow::Error {
    if e.is_damage() {
        return anyhow!("partition {p}'s projection store is corrupt, so this command does not answer from it: {e}. {REBUILD}.");
    }
    anyhow::Error::from(e).context(format!(
        "cannot open partition {p}'s store; if an engine is running on this data dir, ask it instead: {command} --api http://127.0.0.1:9464"
    ))
}

async fn check(
    global: &GlobalArgs,
    log: &dyn EventLog,
    p: u32,
    store: &ProjectionStore,
) -> anyhow::Result<()> {
    let path = store_path(&global.data_dir, p);
    let cp = store
        .checkpoint()
        .map_err(|e| refusal(p, e, "this command"))?;
    let topics = global.topics();
    let journal_end = log.high_watermark(&topics.journal(), p).await?;
    let (journal_next, ingress_next) = cp
        .as_ref()
        .map_or((0, 0), |c| (c.journal_next, c.ingress_next));
    if journal_next > journal_end {
        anyhow::bail!(
            "partition {p}'s projection store {} reflects the journal up to offset {journal_next}, but the journal ends at {journal_end}: the journal lost {} acknowledged facts the store shows (a truncated file or a log that lost data), so this command does not answer from it. The journal is the truth: `baton run` rebuilds the store from it and decides again every input still in ingress that the journal no longer reflects",
            path.display(),
            journal_next - journal_end
        );
    }
    let tp = TopicPartition::new(topics.ingress(), p);
    let committed = log
        .committed(&topics.engine_group(), &tp)
        .await?
        .unwrap_or(0);
    if committed > ingress_next {
        let what = behind(&path, p, ingress_next, committed);
        if global.brokers.is_some() {
            eprintln!(
                "warning: {what} (or another instance ran this partition since: ask it with --api)"
            );
        } else {
            anyhow::bail!("{what}; this command does not answer from it. {REBUILD}");
        }
    }
    Ok(())
}

fn behind(path: &Path, p: u32, ingress_next: u64, committed: u64) -> String {
    format!(
        "partition {p}'s projection store {} reflects ingress up to offset {ingress_next}, but the engine committed {committed}, which it does only once a checkpoint covering it is durable: the store lost writes (damage: sled drops what follows a damaged part of its log) or its rebuild was interrupted, and may be missing workflows",
        path.display()
    )
}
