//! Replay: fold a partition's journal, from its start up to an offset, into
//! a fresh projection store, with the same write-behind batches the engine
//! uses. Pure fold — no decisions, no clock, no results published — so the
//! store it builds must equal the engine's own at the same journal offset
//! (`baton replay --verify` compares their digests).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::EngineError;
use crate::codec::Codec;
use crate::domain::engine::{EngineConfig, PartitionState};
use crate::domain::events::Envelope;
use crate::log::{EventLog, StoredRecord};
use crate::store::{Checkpoint, Finished, JournalIndex, ProjectionStore};

/// Header on journal records naming the ingress offset that caused them.
pub const INGRESS_OFFSET_HEADER: &str = "baton-ingress-offset";

/// Facts folded between two store writes.
const FLUSH_EVERY: u64 = 200_000;

/// How long a replay keeps asking when the log answers "nothing" below the
/// end it reported. On Kafka a read can come back empty from a slow broker
/// (seen on tansu's sqlite storage right after a restart), which must not
/// end a replay early; an append torn at the tail by a writer that died is
/// never completed, so after this long the replay ends before it (warned).
const STALL_PATIENCE: Duration = Duration::from_secs(30);

/// The ingress offset a journal record was caused by, if it says.
pub fn ingress_offset(r: &StoredRecord) -> Option<u64> {
    let h = r.headers.iter().find(|h| h.key == INGRESS_OFFSET_HEADER)?;
    std::str::from_utf8(&h.value).ok()?.parse().ok()
}

/// Decodes a journal record of partition `p`; a journal that does not
/// decode is corrupt (the engine wrote it), so this is an error, not a
/// dead letter.
pub fn decode_fact(codec: &Codec, p: u32, r: &StoredRecord) -> Result<Envelope, EngineError> {
    codec.decode(&r.value).map_err(|e| EngineError::Journal {
        partition: p,
        offset: r.offset,
        reason: e.to_string(),
    })
}

/// What one partition's replay did.
#[derive(Clone, Debug)]
pub struct PartitionReplay {
    pub partition: u32,
    pub events: u64,
    /// The journal offset the replayed store reflects (exclusive).
    pub journal_next: u64,
    /// The offset the replay was to reach (exclusive): the span's end or
    /// the high watermark. Below it only when the log answered nothing
    /// more (see [`STALL_PATIENCE`]).
    pub end: u64,
}

impl PartitionReplay {
    /// Whether the replay reached the end it was asked for.
    pub fn complete(&self) -> bool {
        self.journal_next >= self.end
    }
}

/// Where the journal is read from.
pub struct JournalSource<'a> {
    pub log: &'a dyn EventLog,
    pub codec: &'a Codec,
    pub topic: &'a str,
}

/// Which part of a partition's journal to fold: `from` (inclusive; the log
/// start when `None`) to `until` (exclusive; the end when `None`). A fold
/// that does not start at the log start holds only what happened since.
#[derive(Clone, Copy, Debug, Default)]
pub struct Span {
    pub from: Option<u64>,
    pub until: Option<u64>,
}

/// Folds the `span` of journal partition `p` into `store`, adding each
/// folded event to `progress`.
pub async fn replay_partition(
    source: &JournalSource<'_>,
    p: u32,
    span: Span,
    store: &ProjectionStore,
    config: EngineConfig,
    progress: &AtomicU64,
) -> Result<PartitionReplay, EngineError> {
    let JournalSource {
        log,
        codec,
        topic: journal,
    } = *source;
    // Replay decides nothing, so it needs no dedup window.
    let mut state = PartitionState::new(EngineConfig {
        dedup_window: 0,
        ..config
    });
    let mut index = JournalIndex::default();
    state.producer = format!("baton-engine/{p}");
    let hwm = log.high_watermark(journal, p).await?;
    let end = span.until.map_or(hwm, |u| u.min(hwm));
    let start = log.log_start(journal, p).await?;
    let mut next = span.from.map_or(start, |f| f.max(start));
    let mut cp = Checkpoint {
        journal_next: next,
        ..Checkpoint::default()
    };
    let (mut events, mut since_flush) = (0u64, 0u64);
    let mut stalled_since: Option<Instant> = None;
    while next < end {
        let records = log.read(journal, p, next, 8192).await?;
        let Some(last) = records.last() else {
            let since = *stalled_since.get_or_insert_with(Instant::now);
            if since.elapsed() < STALL_PATIENCE {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            tracing::warn!(
                partition = p,
                offset = next,
                end,
                "replay stops short: the journal answered nothing below its end for {}s",
                STALL_PATIENCE.as_secs()
            );
            break;
        };
        stalled_since = None;
        next = last.offset + 1;
        let folded = records.partition_point(|r| r.offset < end);
        let records = &records[..folded];
        for r in records {
            let e = decode_fact(codec, p, r)?;
            state.evolve(&e);
            index.record(&mut state, &e, r.offset);
        }
        // The engine consumes its ingress in order, so the batch's last
        // ingress offset is its highest: one header parse per batch, not
        // per record (it cost ~6% of a replay).
        if let Some(o) = records.iter().rev().find_map(ingress_offset) {
            cp.ingress_next = cp.ingress_next.max(o + 1);
        }
        if let Some(r) = records.last() {
            cp.journal_next = r.offset + 1;
        }
        events += records.len() as u64;
        since_flush += records.len() as u64;
        progress.fetch_add(records.len() as u64, Ordering::Relaxed);
        if since_flush >= FLUSH_EVERY {
            flush(store, &mut state, &mut index, &cp)?;
            since_flush = 0;
        }
    }
    flush(store, &mut state, &mut index, &cp)?;
    Ok(PartitionReplay {
        partition: p,
        events,
        journal_next: cp.journal_next,
        end,
    })
}

fn flush(
    store: &ProjectionStore,
    state: &mut PartitionState,
    index: &mut JournalIndex,
    cp: &Checkpoint,
) -> Result<(), EngineError> {
    let cp = Checkpoint {
        facts_folded: state.facts_folded,
        ..cp.clone()
    };
    let prepared = store.prepare(state, index, &cp, Finished::MoveOut);
    store.writer().write(prepared)?;
    Ok(())
}
