//! One partition's loop: recover (store checkpoint + journal tail), then
//! repeat: read ingress → decode (bad bytes → DLQ) → decide (rejection →
//! DLQ) → fire due timers → append the journal batch → publish results →
//! commit the ingress offset → checkpoint the store now and then.
//!
//! Ordering is what makes it effectively once: journal before results
//! before the offset commit; the store checkpoint only ever names journal
//! offsets that are already appended. A batch's results are published
//! while the next batch is decided (`partition/publish.rs`); the commit
//! waits for them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;
use uuid::Uuid;

use super::results::{results_for, PreviousStatus, ResultBody};
use super::{Engine, EngineError, EngineStats};
use crate::codec::MAX_INGRESS_EVENT_BYTES;
use crate::domain::engine::{PartitionState, Seen};
use crate::domain::events::*;
use crate::log::{
    partition_for_key, read_toward, EventLog, Header, LogError, ProducerRecord, StoredRecord,
    TopicPartition,
};
use crate::store::{Checkpoint, Finished, JournalIndex, ProjectionStore};
use crate::telemetry::gauges::PartitionGauges;
use crate::telemetry::names;
use crate::telemetry::record::{self, FactCounts, Tally};

use super::replay::{ingress_offset, INGRESS_OFFSET_HEADER};

mod append;
mod checkpoint;
pub mod dedup;
mod dlq;
mod publish;
mod recover;

use publish::Outbox;
/// Journal bytes per append (the embedded log accepts up to 16 MiB).
const MAX_APPEND_BYTES: usize = 8 << 20;
/// Dead-letter reason: the input reuses an `event_id` of the dedup window
/// with other content.
pub const EVENT_ID_CONFLICT: &str = "event_id_conflict";
/// Dead-letter reason: a fact decided for the input could not be encoded.
pub const UNENCODABLE: &str = "unencodable";
const DLQ_NAMESPACE: Uuid = Uuid::from_u128(0x3d0c_91aa_5b7e_4f12_8c6d_2e9a_1b4f_7c30);

fn now() -> Timestamp {
    Timestamp::from_datetime(chrono::Utc::now())
}

struct Loop<'a> {
    engine: &'a Engine,
    p: u32,
    state: PartitionState,
    store: ProjectionStore,
    /// Journal offsets by correlation id (see `store::index`).
    index: JournalIndex,
    journal_next: u64,
    ingress_next: u64,
    facts_since_flush: u64,
    last_flush: Instant,
    /// Partition counts of the topics results go to (ingress included:
    /// agent lifecycle facts are forwarded to the other partitions).
    result_partitions: BTreeMap<String, u32>,
    /// The ingress topic's name.
    ingress: String,
    /// Reused between iterations: a fresh multi-megabyte buffer per batch
    /// cost more in page faults than the decisions themselves.
    journal_buf: Vec<(Option<u64>, Envelope)>,
    /// The store write of the last checkpoint, running off the loop so a
    /// sled flush never stalls decisions.
    pending_write: Option<tokio::sync::oneshot::Receiver<Result<(), crate::store::StoreError>>>,
    /// Finished workflows to drop from memory once that write is done.
    pending_evict: Vec<String>,
    /// The results of the last batch, published while the next batch is
    /// read, decided and journalled (see [`Loop::publish_behind`]).
    pending_publish: Option<tokio::task::JoinHandle<Result<(), LogError>>>,
    /// Ids of finished workflows that left memory (may be in the store).
    finished: super::bloom::Bloom,
    /// Every ingress record appended before this time has been read:
    /// timers that judge missing reports (heartbeats, step timeouts,
    /// deadlines) fire against it, not the clock (a lagging engine must not
    /// declare agents lost, or steps timed out, whose reports wait unread).
    heard_until: Timestamp,
    /// When the ingress end was last asked for on behalf of `heard_until`.
    heard_checked: Option<Instant>,
    /// This partition's progress as `/readyz` and the lag gauge see it.
    live: Arc<super::live::PartitionLive>,
    /// When the state gauges were last published.
    last_gauges: Option<Instant>,
}

/// How often a partition with a held-back timer asks where its ingress
/// ends.
const HEARD_CHECK_EVERY: Duration = Duration::from_millis(100);

/// How often an idle partition checks that its ingress still reaches the
/// offset it reads next.
const END_CHECK_EVERY: Duration = Duration::from_secs(1);

/// How often a partition publishes its state gauges.
const GAUGES_EVERY: Duration = Duration::from_secs(1);

/// Runs partition `p` until `stop` turns true; flushes the store on the way out.
pub async fn run_partition(
    engine: Arc<Engine>,
    p: u32,
    takeover_quiet: Duration,
    stop: watch::Receiver<bool>,
) -> Result<(), EngineError> {
    let result = run_loop(&engine, p, takeover_quiet, stop).await;
    // Registered by recovery; a loop that ended is not owned any more.
    engine.live.unregister(p);
    result
}

async fn run_loop(
    engine: &Arc<Engine>,
    p: u32,
    takeover_quiet: Duration,
    mut stop: watch::Receiver<bool>,
) -> Result<(), EngineError> {
    let mut lp = Loop::recover(engine, p, takeover_quiet).await?;
    // Inputs an earlier loop of this process dead-lettered as unencodable.
    let poisoned = engine.live.poisoned(p);
    let result = decide_until_stopped(&mut lp, &mut stop, &poisoned).await;
    // A loop stops only on log or storage failures (bad input goes to the
    // DLQ): say where.
    result.map_err(|e| match e {
        e @ EngineError::Poisoned { .. } => e,
        e => EngineError::At {
            partition: p,
            offset: lp.ingress_next,
            source: Box::new(e),
        },
    })
}

async fn decide_until_stopped(
    lp: &mut Loop<'_>,
    stop: &mut watch::Receiver<bool>,
    poisoned: &BTreeSet<u64>,
) -> Result<(), EngineError> {
    let engine = lp.engine;
    let p = lp.p;
    let ingress = engine.topics.ingress();
    let mut end_checked = Instant::now();
    loop {
        if *stop.borrow() {
            break;
        }
        // What has arrived; an empty answer sends the loop to `wait_for`.
        let records = engine
            .log
            .read_available(&ingress, p, lp.ingress_next, engine.options.batch)
            .await?;
        let t = now();
        if records.len() < engine.options.batch {
            let next = records.last().map_or(lp.ingress_next, |r| r.offset + 1);
            lp.advance_heard(next, t).await;
        }
        lp.publish_gauges();
        let idle = records.is_empty()
            && lp
                .state
                .next_timer_heard(t, lp.heard_until)
                .is_none_or(|due| due > t);
        if idle {
            if end_checked.elapsed() >= END_CHECK_EVERY {
                // A log that lost records while the loop ran (a broker's
                // unclean leader election, a recreated topic) ends before
                // `ingress_next`: stop instead of skipping what comes.
                end_checked = Instant::now();
                let end = engine.log.high_watermark(&ingress, p).await?;
                super::check_within(
                    p,
                    &ingress,
                    "the next offset the partition's loop reads",
                    lp.ingress_next,
                    end,
                )?;
            }
            if lp.facts_since_flush > 0 && lp.last_flush.elapsed() >= engine.options.flush_every {
                lp.checkpoint(false).await?;
            } else if lp.facts_since_flush == 0 && lp.pending_write.is_none() {
                // Nothing unwritten: the store is as fresh as the state.
                engine.live.checkpointed(&lp.live);
            }
            // Caught up: wait for the next ingress append (the log wakes
            // us), the next timer, or the next checkpoint, whichever is first.
            let mut wait = engine.options.idle_poll;
            if let Some(due) = lp.state.next_timer_heard(t, lp.heard_until) {
                let us = u64::try_from(due.0.saturating_sub(t.0)).unwrap_or(0);
                wait = wait.min(Duration::from_micros(us));
            }
            if lp.facts_since_flush > 0 {
                // A due checkpoint deferred behind a running write: look again soon.
                let until_due = engine
                    .options
                    .flush_every
                    .saturating_sub(lp.last_flush.elapsed());
                wait = wait.min(until_due.max(Duration::from_millis(1)));
            }
            tokio::select! {
                r = engine.log.wait_for(&ingress, p, lp.ingress_next, wait) => r?,
                _ = stop.changed() => {}
            }
            continue;
        }
        lp.process(records, t, poisoned).await?;
        if lp.facts_since_flush >= engine.options.flush_every_facts
            || lp.last_flush.elapsed() >= engine.options.flush_every
        {
            lp.checkpoint(false).await?;
        }
        tokio::task::yield_now().await;
    }
    lp.checkpoint(true).await?;
    lp.finish_write().await?;
    Ok(())
}

impl<'a> Loop<'a> {
    /// Publishes the state gauges at most every [`GAUGES_EVERY`].
    fn publish_gauges(&mut self) {
        if self.last_gauges.is_some_and(|t| t.elapsed() < GAUGES_EVERY) {
            return;
        }
        self.last_gauges = Some(Instant::now());
        PartitionGauges::of(&self.state, self.engine.agent_labels).publish(self.p);
    }

    /// Moves `heard_until` to `t` when a timer is waiting for it
    /// and ingress is read to its end (`next` is the offset after the last
    /// record read). Asks the log at most every [`HEARD_CHECK_EVERY`]; an
    /// unreachable log proves nothing, so it keeps the timers waiting.
    async fn advance_heard(&mut self, next: u64, t: Timestamp) {
        if !self.state.timer_held(t, self.heard_until)
            || self
                .heard_checked
                .is_some_and(|c| c.elapsed() < HEARD_CHECK_EVERY)
        {
            return;
        }
        self.heard_checked = Some(Instant::now());
        let ingress = self.engine.topics.ingress();
        match self.engine.log.high_watermark(&ingress, self.p).await {
            Ok(end) if next >= end => self.heard_until = t,
            Ok(end) => tracing::debug!(
                partition = self.p,
                next,
                end,
                "ingress not read to its end; timers wait"
            ),
            Err(e) => {
                tracing::debug!(partition = self.p, error = %e, "ingress end unknown; timers wait")
            }
        }
    }

    fn decode_journal(&self, r: &StoredRecord) -> Result<Envelope, EngineError> {
        super::replay::decode_fact(&self.engine.codec, self.p, r)
    }

    /// Queues the result message of `fact`, if any. `encoded` is the fact's
    /// own encoding when the caller has it (results that are the fact
    /// itself then cost no second encoding).
    fn collect_results(
        &self,
        fact: &Envelope,
        encoded: Option<&Bytes>,
        outbox: &mut Outbox,
        previous: &mut PreviousStatus,
    ) -> Result<(), EngineError> {
        let workflows = &self.state.workflows;
        let before = previous.observe(fact, |id| workflows.get(id).map(|w| w.started_at.is_some()));
        if let Some((topic, key, body)) = results_for(fact, &self.engine.topics, before) {
            let n = self.result_partitions.get(&topic).copied().unwrap_or(1);
            let value = match (body, encoded) {
                (ResultBody::Fact, Some(bytes)) => bytes.clone(),
                (ResultBody::Fact, None) => Bytes::from(self.engine.codec.encode(fact)?),
                (ResultBody::Derived(env), _) => Bytes::from(self.engine.codec.encode(&env)?),
            };
            outbox.push(
                topic,
                partition_for_key(key.as_bytes(), n),
                ProducerRecord::new(Some(Bytes::from(key)), value),
            );
        }
        let ingress_partitions = self.result_partitions.get(&self.ingress).copied();
        for (q, env) in super::fanout::fanout_for(fact, self.p, ingress_partitions.unwrap_or(1)) {
            let key = Bytes::from(env.correlation_id.clone());
            let value = Bytes::from(self.engine.codec.encode(&env)?);
            outbox.push(
                self.ingress.clone(),
                q,
                ProducerRecord::new(Some(key), value),
            );
        }
        Ok(())
    }

    async fn process(
        &mut self,
        records: Vec<StoredRecord>,
        t: Timestamp,
        poisoned: &BTreeSet<u64>,
    ) -> Result<(), EngineError> {
        let stats = &self.engine.stats;
        let mut journal = std::mem::take(&mut self.journal_buf);
        journal.clear();
        // Each fact's encoding, by index in `journal`.
        let mut encoded: Vec<Bytes> = Vec::with_capacity(records.len() * 2);
        // The content hash of each input with facts, in journal order.
        let mut hashes: Vec<u64> = Vec::new();
        let mut hash_buf = Vec::new();
        let mut outbox = Outbox::default();
        // Dead letters go out before the journal append: after a crash the
        // ingress resumes past every journalled input, so a dead letter not
        // yet published would be lost (its id is derived from the offset, so
        // publishing it twice is recognisable).
        let mut dlq = Outbox::default();
        let mut inputs_at = Vec::with_capacity(records.len());
        let (mut types, mut rejected) = (Tally::default(), Tally::default());
        let (mut decode_time, mut duplicates) = (Duration::ZERO, 0u64);
        // An input whose facts were decided but do not encode: the state
        // is ahead of what can be journalled, so the batch ends there.
        let mut poison: Option<(u64, String)> = None;
        let started = Instant::now();
        for r in &records {
            self.ingress_next = r.offset + 1;
            if poisoned.contains(&r.offset) {
                // Dead-lettered by an earlier loop of this process.
                continue;
            }
            let t0 = Instant::now();
            let decoded = if r.value.len() > MAX_INGRESS_EVENT_BYTES {
                Err(crate::codec::DecodeError::Oversize {
                    size: r.value.len(),
                    limit: MAX_INGRESS_EVENT_BYTES,
                })
            } else {
                self.engine.codec.decode(&r.value)
            };
            decode_time += t0.elapsed();
            let input = match decoded {
                Ok(e) => e,
                Err(e) => {
                    rejected.add(e.code(), 1);
                    self.dead_letter(r, e.code(), e.to_string(), &mut dlq)?;
                    continue;
                }
            };
            EngineStats::add(&stats.ingress_events, 1);
            types.add(input.payload.type_name(), 1);
            let hash = dedup::content_hash(&input, &mut hash_buf);
            match self.state.classify_input(&input.event_id, hash) {
                Seen::New => {}
                Seen::Duplicate => {
                    EngineStats::add(&stats.duplicates, 1);
                    duplicates += 1;
                    continue;
                }
                Seen::Conflict => {
                    rejected.add(EVENT_ID_CONFLICT, 1);
                    let message = format!(
                        "event_id {} was already used by an input with other content; this one is not applied",
                        input.event_id
                    );
                    self.dead_letter(r, EVENT_ID_CONFLICT, message, &mut dlq)?;
                    continue;
                }
            }
            if let Payload::SubmitWorkflow(s) = &input.payload {
                self.recall_finished(&s.workflow_id)?;
            }
            match self.state.decide(&input, t) {
                Ok(facts) => {
                    if facts.is_empty() {
                        continue;
                    }
                    self.state.remember_input_hash(input.event_id, hash);
                    let before = journal.len();
                    let mut failed = None;
                    for f in facts {
                        match self.engine.codec.encode(&f) {
                            Ok(v) => encoded.push(Bytes::from(v)),
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                        journal.push((Some(r.offset), f));
                    }
                    if let Some(e) = failed {
                        journal.truncate(before);
                        encoded.truncate(before);
                        rejected.add(UNENCODABLE, 1);
                        let message =
                            format!("a fact decided for this input cannot be written: {e}");
                        self.dead_letter(r, UNENCODABLE, message, &mut dlq)?;
                        self.engine.live.poison(self.p, r.offset);
                        poison = Some((r.offset, e.to_string()));
                        break;
                    }
                    hashes.push(hash);
                    inputs_at.push(input.occurred_at);
                }
                Err(rej) => {
                    rejected.add(rej.code, 1);
                    self.dead_letter(r, rej.code, rej.message, &mut dlq)?
                }
            }
        }
        if poison.is_none() {
            for f in self.state.tick_heard(t, self.heard_until) {
                // Timer facts answer no input: one that does not encode
                // cannot be dead-lettered, so it stops the loop (with the
                // partition and offset, see `run_loop`).
                encoded.push(Bytes::from(self.engine.codec.encode(&f)?));
                journal.push((None, f));
            }
        }
        record::batch_durations(decode_time, started.elapsed().saturating_sub(decode_time));
        types.emit(&names::INGRESS_EVENTS, "type");
        rejected.emit(&names::INGRESS_REJECTED, "reason");
        record::count(&names::INGRESS_DUPLICATES, duplicates);
        // One append per ~8 MiB, split only between inputs, so every input's
        // facts land together (a crash between appends re-processes the
        // inputs of the unwritten part, which the journal never saw).
        let mut chunks: Vec<Vec<ProducerRecord>> = vec![Vec::new()];
        let mut chunk_bytes = 0usize;
        let mut prev_offset = None;
        let mut hashes = hashes.into_iter();
        let mut previous = PreviousStatus::default();
        for ((offset, fact), value) in journal.iter().zip(encoded) {
            self.collect_results(fact, Some(&value), &mut outbox, &mut previous)?;
            let first_of_input = *offset != prev_offset;
            if first_of_input && chunk_bytes > MAX_APPEND_BYTES {
                chunks.push(Vec::new());
                chunk_bytes = 0;
            }
            prev_offset = *offset;
            chunk_bytes += value.len() + fact.correlation_id.len() + 64;
            let mut rec =
                ProducerRecord::new(Some(Bytes::from(fact.correlation_id.clone())), value);
            if let Some(o) = offset {
                rec.headers.push(Header {
                    key: INGRESS_OFFSET_HEADER.into(),
                    value: Bytes::from(o.to_string()),
                });
                if first_of_input {
                    if let Some(h) = hashes.next() {
                        rec.headers.push(dedup::hash_header(h));
                    }
                }
            }
            rec.timestamp_ms = Some(fact.occurred_at.0.div_euclid(1000));
            if let Some(c) = chunks.last_mut() {
                c.push(rec);
            }
        }
        self.publish(dlq).await?;
        let n = journal.len() as u64;
        let mut facts = journal.iter();
        for chunk in chunks.into_iter().filter(|c| !c.is_empty()) {
            let offsets = self.append_journal(chunk).await?;
            for (o, (_, fact)) in offsets.iter().zip(facts.by_ref()) {
                self.index.record(&mut self.state, fact, *o);
            }
        }
        self.count(journal.iter().map(|(_, f)| f));
        if n > 0 {
            self.facts_since_flush += n;
            EngineStats::add(&stats.journal_events, n);
            let done = now();
            let samples: Vec<u64> = inputs_at
                .iter()
                .map(|a| done.0.saturating_sub(a.0).max(0) as u64)
                .collect();
            stats.record_latencies(&samples);
            record::decision_latencies(&samples);
        }
        self.live
            .ingress_next
            .store(self.ingress_next, Ordering::Relaxed);
        journal.clear();
        self.journal_buf = journal;
        if let Some((offset, reason)) = poison {
            // Publish what the journalled inputs caused, then restart from
            // the journal: the state holds facts it does not have.
            self.publish(outbox).await?;
            self.finish_publish().await?;
            tracing::error!(
                partition = self.p,
                offset,
                reason,
                "an input's facts cannot be encoded; it was dead-lettered as `unencodable` and the partition restarts from its journal without it"
            );
            return Err(EngineError::Poisoned {
                partition: self.p,
                offset,
                reason,
            });
        }
        self.publish_behind(outbox).await
    }

    /// Finished workflows leave memory at checkpoints; a new submission with
    /// the same id must still be recognised as a duplicate, so bring the
    /// stored one back (it leaves again at the next checkpoint).
    fn recall_finished(&mut self, workflow_id: &str) -> Result<(), EngineError> {
        if self.state.workflows.contains_key(workflow_id) || !self.finished.may_contain(workflow_id)
        {
            return Ok(());
        }
        if let Some((wf, offsets)) = self.store.workflow_entry(workflow_id)? {
            self.index.restore(workflow_id, offsets);
            self.state.mark_dirty(workflow_id);
            self.state.workflows.insert(workflow_id.to_string(), wf);
        }
        Ok(())
    }

    fn count<'f>(&self, facts: impl Iterator<Item = &'f Envelope>) {
        let s = &self.engine.stats;
        let mut counts = FactCounts::default();
        for f in facts {
            counts.add(f);
            match &f.payload {
                Payload::WorkflowAccepted(_) => EngineStats::add(&s.workflows_accepted, 1),
                Payload::WorkflowRejected(_) => EngineStats::add(&s.workflows_rejected, 1),
                Payload::WorkflowSucceeded(_) => EngineStats::add(&s.workflows_succeeded, 1),
                Payload::WorkflowFailed(_) => EngineStats::add(&s.workflows_failed, 1),
                Payload::WorkflowCancelled(_) | Payload::WorkflowTimedOut(_) => {
                    EngineStats::add(&s.workflows_other_terminal, 1)
                }
                Payload::StepAssigned(_) => EngineStats::add(&s.assignments, 1),
                Payload::StepTimedOut(_) => EngineStats::add(&s.timeouts, 1),
                Payload::RetryScheduled(_) => EngineStats::add(&s.retries, 1),
                Payload::AgentLost(_) => EngineStats::add(&s.agents_lost, 1),
                _ => {}
            }
        }
        counts.emit();
    }
}
