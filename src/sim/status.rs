//! Watches the status topic and counts workflows that reached a terminal
//! state, for a load run whose engines live in other processes (`baton demo
//! --no-engine`). Counts go into the same [`EngineStats`] fields the
//! in-process engine fills, so pacing and progress work unchanged.
//!
//! Invariants:
//! - Each workflow is counted once, whatever its status was re-published
//!   (after a crash or a partition hand-over the engine may send it again).
//! - Only records appended after the watcher started are read.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::SimError;
use crate::codec::Codec;
use crate::domain::events::{Payload, WorkflowStatus};
use crate::engine::EngineStats;
use crate::log::EventLog;
use crate::topics::Topics;

/// The status topic's high watermarks now: where a watcher starts.
pub async fn status_start(log: &dyn EventLog, topics: &Topics) -> Result<Vec<u64>, SimError> {
    let topic = topics.status();
    let n = log.partition_count(&topic).await?;
    let mut v = Vec::with_capacity(n as usize);
    for p in 0..n {
        v.push(log.high_watermark(&topic, p).await?);
    }
    Ok(v)
}

/// Counts terminal statuses from `start` until `stop`.
pub async fn watch_status(
    log: Arc<dyn EventLog>,
    codec: Codec,
    topics: Topics,
    start: Vec<u64>,
    stats: Arc<EngineStats>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), SimError> {
    let topic = topics.status();
    let mut next = start;
    let mut seen: HashSet<String> = HashSet::new();
    while !*stop.borrow() {
        let mut any = false;
        for (p, from) in next.iter_mut().enumerate() {
            let records = super::read_or_wait(log.as_ref(), &topic, p as u32, *from, 4096).await?;
            for r in &records {
                *from = r.offset + 1;
                let Ok(e) = codec.decode(&r.value) else {
                    continue;
                };
                let Payload::WorkflowStatusChanged(s) = &e.payload else {
                    continue;
                };
                let field = match s.status {
                    WorkflowStatus::Succeeded => &stats.workflows_succeeded,
                    WorkflowStatus::Failed => &stats.workflows_failed,
                    WorkflowStatus::Cancelled | WorkflowStatus::TimedOut => {
                        &stats.workflows_other_terminal
                    }
                    WorkflowStatus::Queued | WorkflowStatus::Running => continue,
                };
                if seen.insert(s.workflow_id.clone()) {
                    EngineStats::add(field, 1);
                }
            }
            any |= !records.is_empty();
        }
        if !any {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = stop.changed() => {}
            }
        }
    }
    Ok(())
}
