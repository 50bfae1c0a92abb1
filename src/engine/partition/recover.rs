//! Starting a partition loop: load the store's checkpoint, warm the dedup
//! window from the journal before it, and refold the journal tail beyond it
//! (republishing results, except those of inputs the group already
//! committed). What the loop then runs is in the parent module.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::*;
use crate::engine::check_within;
use crate::store::Emptied;

/// What recovery loaded from the partition's store.
struct Loaded {
    store: ProjectionStore,
    state: PartitionState,
    index: JournalIndex,
    finished: crate::engine::bloom::Bloom,
    cp: Checkpoint,
}

impl Loaded {
    fn empty(engine: &Engine, p: u32, store: ProjectionStore) -> Loaded {
        let mut state = PartitionState::new(engine.config.clone());
        state.producer = crate::domain::engine::engine_producer(p);
        Loaded {
            store,
            state,
            index: JournalIndex::default(),
            finished: crate::engine::bloom::Bloom::new(24),
            cp: Checkpoint::default(),
        }
    }

    /// Opens the store (rebuilding one of another format, half-written or
    /// damaged) and loads it. A store whose bytes turn out damaged while
    /// loading is moved aside too: it is derived state, rebuilt from the
    /// journal like a missing one.
    fn open(engine: &Engine, p: u32) -> Result<Loaded, EngineError> {
        let dir = &engine.options.data_dir;
        let (store, replaced) = ProjectionStore::open_rebuilding_other_formats(dir, p)?;
        warn_replaced(p, replaced);
        let mut loaded = Loaded::empty(engine, p, store);
        let l = &mut loaded;
        let found = l
            .store
            .load_into(&mut l.state, &mut l.index, |id| l.finished.insert(id))
            .and_then(|cp| l.store.read_all_pages().map(|()| cp));
        match found {
            Ok(cp) => {
                loaded.cp = cp.unwrap_or_default();
                Ok(loaded)
            }
            Err(e) if e.is_damage() => {
                // The handle must go before the store is moved.
                drop(loaded);
                let (store, replaced) = ProjectionStore::replace_damaged(dir, p, &e)?;
                warn_replaced(p, replaced);
                Ok(Loaded::empty(engine, p, store))
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn warn_replaced(p: u32, replaced: Option<Emptied>) {
    match replaced {
        Some(Emptied::Format(found)) => tracing::warn!(
            partition = p,
            found,
            expected = crate::store::FORMAT_VERSION,
            "the partition's store was written in another format version; rebuilding it from the journal"
        ),
        Some(Emptied::Unfinished) => tracing::warn!(
            partition = p,
            "the partition's store was left half-written by an interrupted replay; rebuilding it from the journal"
        ),
        Some(Emptied::Damaged { reason, moved_to }) => tracing::error!(
            partition = p,
            moved_to = %moved_to.display(),
            reason,
            "the partition's projection store is damaged; moved it aside and rebuilding it from the journal (the journal is the truth; the damaged copy can be deleted)"
        ),
        None => {}
    }
}

impl<'a> Loop<'a> {
    pub(super) async fn recover(
        engine: &'a Engine,
        p: u32,
        takeover_quiet: Duration,
    ) -> Result<Loop<'a>, EngineError> {
        let ingress = engine.topics.ingress();
        let committed = engine
            .log
            .committed(
                &engine.options.group,
                &TopicPartition::new(ingress.clone(), p),
            )
            .await?
            .unwrap_or(0);
        // Offsets the engine holds must exist: past the end, new records
        // would reuse offsets it thinks it has read (and skip them).
        let ingress_end = engine.log.high_watermark(&ingress, p).await?;
        let group = format!(
            "the committed offset of consumer group {}",
            engine.options.group
        );
        check_within(p, &ingress, &group, committed, ingress_end)?;
        let mut loaded = Loaded::open(engine, p)?;
        check_within(
            p,
            &ingress,
            "the next ingress offset of the projection store's checkpoint",
            loaded.cp.ingress_next,
            ingress_end,
        )?;
        // The store may only name journal offsets that exist. A journal that
        // ends before the checkpoint lost acknowledged facts (a broker that
        // lost data on a crash, a truncated file, or a deleted and recreated
        // topic): the journal is the truth, so the store is rebuilt from it,
        // and ingress is read again after the last input it reflects (see
        // `resume`).
        let journal_end = engine
            .log
            .high_watermark(&engine.topics.journal(), p)
            .await?;
        if loaded.cp.journal_next > journal_end {
            tracing::error!(
                partition = p,
                checkpoint = loaded.cp.journal_next,
                journal_end,
                "the journal ends before the store's checkpoint: it lost acknowledged facts; rebuilding the partition's projections from the journal and deciding again every input after the last one it reflects"
            );
            loaded.store.clear()?;
            loaded = Loaded::empty(engine, p, loaded.store);
        } else if loaded.cp.ingress_next < committed {
            // The group commits only after the checkpoint covering the
            // commit is durable: the store lost writes (sled drops what
            // follows damage in its log), its rebuild was interrupted, or
            // another instance ran the partition since. Refolding the
            // journal from the checkpoint makes it whole either way.
            tracing::warn!(
                partition = p,
                checkpoint_ingress_next = loaded.cp.ingress_next,
                committed,
                "the projection store is behind the committed ingress offset (lost writes, an interrupted rebuild, or another instance ran this partition); refolding the journal from its checkpoint"
            );
        }
        Self::resume(engine, p, loaded, committed, ingress_end, takeover_quiet).await
    }

    /// Builds the loop over what was loaded and brings it up to the end of
    /// the journal.
    async fn resume(
        engine: &'a Engine,
        p: u32,
        loaded: Loaded,
        committed: u64,
        mut ingress_end: u64,
        takeover_quiet: Duration,
    ) -> Result<Loop<'a>, EngineError> {
        let Loaded {
            store,
            state,
            index,
            finished,
            cp,
        } = loaded;
        let mut result_partitions = BTreeMap::new();
        for t in [
            engine.topics.ingress(),
            engine.topics.assignments(),
            engine.topics.status(),
            engine.topics.alerts(),
            engine.topics.dlq(),
        ] {
            let n = engine.log.partition_count(&t).await?;
            result_partitions.insert(t, n);
        }
        let mut lp = Loop {
            engine,
            p,
            state,
            store,
            index,
            journal_next: cp.journal_next,
            ingress_next: cp.ingress_next,
            facts_since_flush: 0,
            last_flush: Instant::now(),
            result_partitions,
            ingress: engine.topics.ingress(),
            journal_buf: Vec::new(),
            pending_write: None,
            pending_evict: Vec::new(),
            pending_publish: None,
            finished,
            heard_until: Timestamp(0),
            heard_checked: None,
            live: engine.live.register(p),
            last_gauges: None,
        };
        lp.warm_dedup(cp.journal_next).await?;
        lp.refold_tail(committed, &mut ingress_end).await?;
        lp.settle(committed, &mut ingress_end, takeover_quiet)
            .await?;
        // Ingress resumes after the last input the journal reflects, never
        // at the group's committed offset when that is further: the commit
        // follows the journal, so inputs between the two either made no
        // fact (dead letters, duplicates: deciding them again republishes
        // the same dead letters, ids derived from their offsets) or made
        // facts the journal has since lost (deciding them again restores
        // them, with the same derived ids). Skipping to the commit would
        // lose the latter for good.
        if committed > lp.ingress_next {
            tracing::warn!(
                partition = p,
                committed,
                reflected = lp.ingress_next,
                "the journal reflects fewer inputs than the group committed; reading ingress again from the last input it reflects"
            );
        }
        lp.live
            .ingress_next
            .store(lp.ingress_next, Ordering::Relaxed);
        lp.live.recovered.store(true, Ordering::Relaxed);
        lp.engine.live.checkpointed(&lp.live);
        Ok(lp)
    }

    /// Remembers the causation ids of the journal just before the checkpoint,
    /// so duplicates of recent inputs are still recognised after a restart.
    async fn warm_dedup(&mut self, until: u64) -> Result<(), EngineError> {
        let journal = self.engine.topics.journal();
        // About 1.6 facts per input: read enough facts to cover the window.
        let window = self.engine.config.dedup_window as u64 * 3;
        let mut next = until
            .saturating_sub(window)
            .max(self.engine.log.log_start(&journal, self.p).await?);
        while next < until {
            let records = self.engine.log.read(&journal, self.p, next, 8192).await?;
            let Some(last) = records.last() else { break };
            next = last.offset + 1;
            for r in records.iter().filter(|r| r.offset < until) {
                let e = self.decode_journal(r)?;
                if let Some(c) = e.causation_id {
                    self.state.remember_input(c);
                    if let Some(h) = dedup::input_hash(r) {
                        self.state.remember_input_hash(c, h);
                    }
                }
            }
        }
        Ok(())
    }

    /// Folds journal facts beyond the checkpoint and republishes their
    /// results, except those of inputs below `committed`: the group commits
    /// an ingress offset only after the results of every input below it
    /// were published. That keeps a store rebuilt from scratch (a new
    /// machine, or a partition taken over from another instance) from
    /// re-sending history. Tick facts after the last such input and before the
    /// first input at or above `committed` are republished (their results
    /// carry the same ids).
    ///
    /// Returns how many facts it folded.
    /// Every ingress offset a fact names must lie below `ingress_end` (the
    /// ingress end seen, asked again when a fact names a later one).
    async fn refold_tail(
        &mut self,
        committed: u64,
        ingress_end: &mut u64,
    ) -> Result<u64, EngineError> {
        let journal = self.engine.topics.journal();
        let mut quiet = committed > 0;
        // Results of tick facts seen while quiet: published only if no input
        // below `committed` follows them.
        let mut held = Outbox::default();
        let mut previous = crate::engine::results::PreviousStatus::default();
        // On a broker an empty read can be a slow fetch: read toward the
        // end seen now.
        let end = self.engine.log.high_watermark(&journal, self.p).await?;
        let mut folded = 0;
        loop {
            let records = read_toward(
                self.engine.log.as_ref(),
                &journal,
                self.p,
                self.journal_next,
                end,
                8192,
            )
            .await?;
            let Some(last) = records.last() else { break };
            self.journal_next = last.offset + 1;
            let mut outbox = Outbox::default();
            for r in &records {
                folded += 1;
                let e = self.decode_journal(r)?;
                if let Some(off) = ingress_offset(r) {
                    self.check_reflected(r.offset, off, ingress_end).await?;
                    self.ingress_next = self.ingress_next.max(off + 1);
                }
                self.state.evolve(&e);
                if let (Some(c), Some(h)) = (e.causation_id, dedup::input_hash(r)) {
                    self.state.remember_input_hash(c, h);
                }
                self.index.record(&mut self.state, &e, r.offset);
                self.facts_since_flush += 1;
                if quiet {
                    match ingress_offset(r) {
                        Some(off) if off < committed => {
                            held = Outbox::default();
                            continue;
                        }
                        Some(_) => {
                            quiet = false;
                            self.publish(std::mem::take(&mut held)).await?;
                        }
                        None => {
                            self.collect_results(&e, Some(&r.value), &mut held, &mut previous)?;
                            continue;
                        }
                    }
                }
                self.collect_results(&e, Some(&r.value), &mut outbox, &mut previous)?;
            }
            self.publish(outbox).await?;
        }
        self.publish(held).await?;
        Ok(folded)
    }

    /// On a log other processes write too (Kafka), waits until the
    /// journal has been quiet for `quiet`, folding what still arrives. A
    /// previous owner expelled from the group (it missed heartbeats) may
    /// append until its next heartbeat answer tells it so; nothing fences it
    /// without broker transactions, and deciding before it stops would
    /// decide its last inputs a second time. Every start waits, because an
    /// idle old owner is as dangerous as a busy one. Bounded: a journal that
    /// keeps growing has another writer for good, which the append check
    /// reports.
    async fn settle(
        &mut self,
        committed: u64,
        ingress_end: &mut u64,
        quiet: Duration,
    ) -> Result<(), EngineError> {
        if quiet.is_zero() {
            return Ok(());
        }
        let deadline = Instant::now() + SETTLE_BOUND;
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < quiet {
            if Instant::now() >= deadline {
                tracing::warn!(
                    partition = self.p,
                    "the journal is still being written by another process; deciding anyway"
                );
                break;
            }
            let left = quiet.saturating_sub(quiet_since.elapsed());
            tokio::time::sleep(left.min(SETTLE_POLL)).await;
            if self.refold_tail(committed, ingress_end).await? > 0 {
                tracing::warn!(
                    partition = self.p,
                    journal_next = self.journal_next,
                    "another process still appends to this partition's journal (its previous owner?); folding that before deciding"
                );
                quiet_since = Instant::now();
            }
        }
        Ok(())
    }
}

impl Loop<'_> {
    /// Fails when journal fact `at` names ingress offset `off` at or past
    /// the ingress end (asked again first: on a shared log it grows).
    async fn check_reflected(
        &self,
        at: u64,
        off: u64,
        ingress_end: &mut u64,
    ) -> Result<(), EngineError> {
        if off < *ingress_end {
            return Ok(());
        }
        *ingress_end = self
            .engine
            .log
            .high_watermark(&self.engine.topics.ingress(), self.p)
            .await?;
        let held = format!("the next ingress offset journal fact {at} reflects");
        check_within(
            self.p,
            &self.engine.topics.ingress(),
            &held,
            off + 1,
            *ingress_end,
        )
    }
}

/// How often [`Loop::settle`] looks at the journal's end.
const SETTLE_POLL: Duration = Duration::from_millis(200);
/// Longest [`Loop::settle`] waits for another writer to stop.
const SETTLE_BOUND: Duration = Duration::from_secs(30);
