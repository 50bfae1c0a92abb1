//! Replay: fold a partition's journal, from its start up to an offset, into
//! a fresh projection store, with the same write-behind batches the engine
//! uses. Pure fold — no decisions, no clock, no results published — so the
//! store it builds must equal the engine's own at the same journal offset
//! (`baton replay --verify` compares their digests).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

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

/// Where one partition's replay spent its CPU: seconds of thread CPU time
/// (not wall time, so a busy machine does not inflate a phase), and how
/// many store keys it wrote. sled's own IO threads are not included.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReplayCost {
    /// Reading journal records from the log.
    pub read_s: f64,
    /// Decoding, folding and indexing the facts.
    pub fold_s: f64,
    /// Snapshotting the dirty entries for the store (on the fold thread).
    pub prepare_s: f64,
    /// Serialising and inserting them (on the write-behind threads).
    pub write_s: f64,
    /// Keys written to the store (workflows, agents, index, meta).
    pub store_keys: u64,
}

impl ReplayCost {
    /// CPU seconds of the measured phases together.
    pub fn phases_s(&self) -> f64 {
        self.read_s + self.fold_s + self.prepare_s + self.write_s
    }

    /// Adds another partition's cost to this one.
    pub fn add(&mut self, o: &ReplayCost) {
        self.read_s += o.read_s;
        self.fold_s += o.fold_s;
        self.prepare_s += o.prepare_s;
        self.write_s += o.write_s;
        self.store_keys += o.store_keys;
    }
}

/// CPU seconds used by the calling thread so far (0 where unsupported).
pub fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    if ok {
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    } else {
        0.0
    }
}

/// CPU seconds (user and system) used by the whole process so far.
pub fn process_cpu_s() -> f64 {
    // SAFETY: getrusage fills one zeroed rusage through a valid pointer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// What one partition's replay did.
#[derive(Clone, Debug)]
pub struct PartitionReplay {
    pub partition: u32,
    pub events: u64,
    /// Where its CPU went.
    pub cost: ReplayCost,
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
    // Replay decides nothing, so it needs no dedup window, scheduler or
    // timer index.
    let mut state = PartitionState::projections_only(EngineConfig {
        dedup_window: 0,
        ..config
    });
    let mut index = JournalIndex::default();
    state.producer = crate::domain::engine::engine_producer(p);
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
    let mut writes = WriteBehind::default();
    let mut cost = ReplayCost::default();
    // The writes are not atomic (see `StoreWriter::write_unbatched`): until
    // the last is durable the store says it is unfinished.
    store.mark_unfinished()?;
    while next < end {
        let t0 = thread_cpu_s();
        let records = log.read(journal, p, next, 8192).await?;
        let t1 = thread_cpu_s();
        cost.read_s += t1 - t0;
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
        let t2 = thread_cpu_s();
        cost.fold_s += t2 - t1;
        if since_flush >= FLUSH_EVERY {
            writes.submit(store, &mut state, &mut index, &cp, &mut cost)?;
            cost.prepare_s += thread_cpu_s() - t2;
            since_flush = 0;
        }
    }
    let t = thread_cpu_s();
    writes.submit(store, &mut state, &mut index, &cp, &mut cost)?;
    cost.prepare_s += thread_cpu_s() - t;
    writes.wait(&mut cost)?;
    store.mark_finished()?;
    Ok(PartitionReplay {
        partition: p,
        events,
        cost,
        journal_next: cp.journal_next,
        end,
    })
}

/// The store writes of one replay, one at a time and in order, each on its
/// own thread while the fold goes on: serialising and inserting a flush
/// costs about as much as folding the facts between two flushes, and sled
/// blocks its writer whenever its IO buffers wait for the disk. Key by key,
/// not as sled batches: a batch takes a lock global to the process, so
/// the partitions' writes took turns (a 10M-event journal replayed at
/// 0.76–1.00 M events/s with batches, 1.11–1.26 M without, alternated).
#[derive(Default)]
struct WriteBehind {
    pending: Option<std::thread::JoinHandle<Written>>,
}

/// A finished store write: its outcome, CPU seconds and keys.
type Written = (Result<(), crate::store::StoreError>, f64, u64);

impl WriteBehind {
    /// Snapshots what was folded since the last flush and writes it behind
    /// the previous write (which it waits for first, so at most one flush
    /// is in memory besides the state).
    fn submit(
        &mut self,
        store: &ProjectionStore,
        state: &mut PartitionState,
        index: &mut JournalIndex,
        cp: &Checkpoint,
        cost: &mut ReplayCost,
    ) -> Result<(), EngineError> {
        let cp = Checkpoint {
            facts_folded: state.facts_folded,
            ..cp.clone()
        };
        let prepared = store.prepare(state, index, &cp, Finished::MoveOut);
        self.wait(cost)?;
        let writer = store.writer();
        self.pending = Some(std::thread::spawn(move || {
            let keys = prepared.keys() as u64;
            let t = thread_cpu_s();
            let written = writer.write_unbatched(prepared);
            (written, thread_cpu_s() - t, keys)
        }));
        Ok(())
    }

    /// Waits for the write in flight, if any, and adds its cost.
    fn wait(&mut self, cost: &mut ReplayCost) -> Result<(), EngineError> {
        match self.pending.take().map(|h| h.join()) {
            None => Ok(()),
            Some(Ok((written, cpu_s, keys))) => {
                cost.write_s += cpu_s;
                cost.store_keys += keys;
                Ok(written?)
            }
            Some(Err(_)) => Err(EngineError::Task("a replay store write panicked".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::codec::samples;
    use crate::domain::events::{Category, Payload};
    use crate::log::embedded::{EmbeddedConfig, EmbeddedLog};
    use crate::log::{LogError, Offset, ProducerRecord, TopicPartition, TopicSpec};

    /// An embedded log whose partitions claim `extra` more records than
    /// they serve: a reader below that end gets empty answers, as from a
    /// broker that has gone quiet.
    struct Silent {
        inner: EmbeddedLog,
        extra: u64,
    }

    #[async_trait]
    impl EventLog for Silent {
        async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
            self.inner.create_topic(spec).await
        }
        async fn list_topics(&self) -> Result<Vec<TopicSpec>, LogError> {
            self.inner.list_topics().await
        }
        async fn partition_count(&self, topic: &str) -> Result<u32, LogError> {
            self.inner.partition_count(topic).await
        }
        async fn append(
            &self,
            topic: &str,
            partition: u32,
            records: Vec<ProducerRecord>,
        ) -> Result<Vec<Offset>, LogError> {
            self.inner.append(topic, partition, records).await
        }
        async fn read(
            &self,
            topic: &str,
            partition: u32,
            from: Offset,
            max_records: usize,
        ) -> Result<Vec<StoredRecord>, LogError> {
            self.inner.read(topic, partition, from, max_records).await
        }
        async fn high_watermark(&self, topic: &str, partition: u32) -> Result<Offset, LogError> {
            Ok(self.inner.high_watermark(topic, partition).await? + self.extra)
        }
        async fn log_start(&self, topic: &str, partition: u32) -> Result<Offset, LogError> {
            self.inner.log_start(topic, partition).await
        }
        async fn commit(
            &self,
            group: &str,
            offsets: &[(TopicPartition, Offset)],
        ) -> Result<(), LogError> {
            self.inner.commit(group, offsets).await
        }
        async fn committed(
            &self,
            group: &str,
            tp: &TopicPartition,
        ) -> Result<Option<Offset>, LogError> {
            self.inner.committed(group, tp).await
        }
        async fn flush(&self) -> Result<(), LogError> {
            self.inner.flush().await
        }
    }

    /// A log that stays silent below the end it reports ends the replay
    /// after the patience, short of that end, with what it did fold stored.
    #[tokio::test(start_paused = true)]
    async fn a_silent_log_ends_the_replay_short_after_the_patience() {
        let dir = tempfile::tempdir().unwrap();
        let log = Silent {
            inner: EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).unwrap(),
            extra: 2,
        };
        let codec = Codec::builtin().unwrap();
        log.create_topic(&TopicSpec::new("j", 1)).await.unwrap();
        let facts: Vec<ProducerRecord> = samples::all()
            .into_iter()
            .filter(|e| Payload::TYPES[e.payload.type_index()].1 == Category::Journal)
            .map(|e| ProducerRecord::new(None, codec.encode(&e).unwrap().into()))
            .collect();
        let n = facts.len() as u64;
        log.append("j", 0, facts).await.unwrap();
        let store = ProjectionStore::open(dir.path(), 0).unwrap();
        let source = JournalSource {
            log: &log,
            codec: &codec,
            topic: "j",
        };
        let started = Instant::now();
        let progress = AtomicU64::new(0);
        let done = replay_partition(
            &source,
            0,
            Span::default(),
            &store,
            EngineConfig::default(),
            &progress,
        )
        .await
        .unwrap();
        assert!(started.elapsed() >= STALL_PATIENCE);
        assert_eq!((done.events, done.journal_next, done.end), (n, n, n + 2));
        assert!(!done.complete());
        let cp = store.checkpoint().unwrap().unwrap();
        assert_eq!(cp.journal_next, n);
    }
}
