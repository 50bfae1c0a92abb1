//! Runs the partition loops this process owns, as its [`Membership`] says:
//! starts a loop on `Assigned`, stops it (its final checkpoint flushes the
//! projection and commits the ingress offset) before answering `Revoked`,
//! and restarts a loop that failed on a broker error after a backoff (it
//! recovers from its store and the journal like after a crash), or on an
//! input whose facts could not be encoded (it was dead-lettered; the new
//! loop skips it).
//!
//! Invariants:
//! - At most one loop per partition in this process.
//! - A revoked partition's loop has finished before the answer is sent, so
//!   the next owner starts from a flushed store and committed offsets.
//! - A partition whose log lost records the engine had read (an offset it
//!   holds lies past the partition's end, `EngineError::BeyondEnd`) stops
//!   alone: logged at error level, listed with its reason by `/readyz`
//!   (which then answers 503), not restarted; the other partitions run on,
//!   and when the process stops it exits with that error. Restarting would
//!   not fix it, and stopping every partition for one would stop work that
//!   is fine.
//! - Other errors that are not broker errors (an undecodable journal, a
//!   store failing while the loop runs) stop everything: restarting would
//!   not fix them. (A store found damaged at start-up is moved aside and
//!   rebuilt by the loop's recovery; it is no error.)

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{run_partition, Engine, EngineError};
use crate::log::{LogError, Membership, OwnershipChange};

/// Wait before restarting a loop that failed on a broker error.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);

struct Running {
    stop: watch::Sender<bool>,
    handle: JoinHandle<Result<(), EngineError>>,
}

fn start(engine: &Arc<Engine>, p: u32, quiet: Duration) -> Running {
    engine.live.clear_stopped(p);
    let (stop, rx) = watch::channel(false);
    Running {
        stop,
        handle: tokio::spawn(run_partition(engine.clone(), p, quiet, rx)),
    }
}

async fn finish(p: u32, r: Running) -> Result<(), EngineError> {
    let _ = r.stop.send(true);
    match r.handle.await {
        Ok(res) => res,
        Err(e) => Err(EngineError::Task(format!("partition {p} loop: {e}"))),
    }
}

fn retriable(e: &EngineError) -> bool {
    matches!(
        e.root(),
        EngineError::Log(LogError::Broker(_)) | EngineError::Poisoned { .. }
    )
}

/// Owns partitions until `stop` turns true, the membership ends, or a loop
/// fails for good.
pub async fn run_owned(
    engine: Arc<Engine>,
    mut membership: Membership,
    mut stop: watch::Receiver<bool>,
) -> Result<(), EngineError> {
    let quiet = membership.takeover_quiet;
    let mut running: BTreeMap<u32, Running> = BTreeMap::new();
    let mut failed: Option<EngineError> = None;
    // Partitions stopped alone, with their error (the first is returned).
    let mut stopped: BTreeMap<u32, EngineError> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            change = membership.changes.recv() => match change {
                Some(OwnershipChange::Assigned(ps)) => {
                    for p in ps {
                        stopped.remove(&p);
                        running.entry(p).or_insert_with(|| start(&engine, p, quiet));
                    }
                    tracing::info!(partitions = ?running.keys().collect::<Vec<_>>(), "owning partitions");
                }
                Some(OwnershipChange::Revoked { partitions, done }) => {
                    for p in partitions {
                        stopped.remove(&p);
                        engine.live.clear_stopped(p);
                        if let Some(r) = running.remove(&p) {
                            if let Err(e) = finish(p, r).await {
                                tracing::warn!(partition = p, error = %e, "partition loop ended with an error on hand-over");
                            }
                        }
                    }
                    let _ = done.send(());
                }
                None => break,
            },
            _ = stop.changed() => break,
            _ = tick.tick() => {
                let ended: Vec<u32> = running
                    .iter()
                    .filter(|(_, r)| r.handle.is_finished())
                    .map(|(p, _)| *p)
                    .collect();
                for p in ended {
                    let Some(r) = running.remove(&p) else { continue };
                    match finish(p, r).await {
                        Ok(()) => {}
                        Err(e) if retriable(&e) => {
                            tracing::warn!(partition = p, error = %e, backoff_ms = RESTART_BACKOFF.as_millis() as u64, "partition loop failed on a broker error; restarting it");
                            tokio::time::sleep(RESTART_BACKOFF).await;
                            running.insert(p, start(&engine, p, quiet));
                        }
                        Err(e) if e.stops_partition_only() => {
                            tracing::error!(partition = p, error = %e, "partition stopped; the other partitions run on");
                            engine.live.stopped(p, e.to_string());
                            stopped.insert(p, e);
                        }
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                if failed.is_some() {
                    break;
                }
            }
        }
    }
    for (p, r) in std::mem::take(&mut running) {
        if let Err(e) = finish(p, r).await {
            failed.get_or_insert(e);
        }
    }
    if failed.is_none() {
        failed = stopped.into_values().next();
    }
    failed.map_or(Ok(()), Err)
}
