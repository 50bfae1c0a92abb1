//! The bottleneck projection: rolling figures per subject and the active
//! findings, folded from journal facts by the partition's `evolve`.
//!
//! Invariants: one [`SubjectStats`] per (subject type, name) ever seen, each
//! of fixed size; an observation updates the short window, the long window
//! and the all-time totals of every subject it concerns (its pool, each
//! required capability, its step kind and, once assigned, its agent);
//! `active` holds exactly the findings detected and not yet resolved.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::keyed::Keyed;
use super::window::{Bucket, Counts, Rolling, Slot};
use crate::domain::events::{BottleneckDetected, BottleneckResolved, Timestamp, Usage};

/// Resolved findings kept for reports.
const RECENT: usize = 64;
/// Buckets per window: figures move in quarter-window steps (short) and
/// 1/15 steps (long, one bucket per default minute).
const SHORT_SLOTS: usize = 4;
const LONG_SLOTS: usize = 15;

/// Windows and totals of one subject.
///
/// An observation is recorded once, in the short ring; a short bucket is
/// moved into the long ring and the totals when its ring position is
/// reused (one histogram merge per quarter window instead of three records
/// per observation). So the long window and the totals are their own
/// contents plus the short ring's live buckets, which the accessors add.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubjectStats {
    short: Rolling,
    long: Rolling,
    total: Bucket,
    /// Agents only: short-window attempt counts per step kind it ran (an
    /// agent's expected failures follow from its mix; a handful of kinds,
    /// so a list).
    #[serde(default)]
    pub(crate) mix: Vec<(String, Counts)>,
}

impl SubjectStats {
    fn new(short_ms: i64, long_ms: i64) -> Self {
        SubjectStats {
            short: Rolling::new(short_ms, SHORT_SLOTS),
            long: Rolling::new(long_ms, LONG_SLOTS),
            total: Bucket::default(),
            mix: Vec::new(),
        }
    }

    fn apply(&mut self, at: Timestamp, slot: Slot, f: impl Fn(&mut Bucket)) {
        let (long, total) = (&mut self.long, &mut self.total);
        let bucket = self.short.at_evicting(slot, |start, old| {
            if let Some(l) = long.at(start) {
                l.merge(old);
            }
            total.merge(old);
        });
        match bucket {
            Some(b) => f(b),
            // Older than the short ring: straight into the long ring.
            None => {
                if let Some(b) = self.long.at(at) {
                    f(b);
                }
                f(&mut self.total);
            }
        }
    }

    /// Figures of the short (detection) window ending at `now`.
    pub fn short(&self, now: Timestamp) -> Bucket {
        self.short.figures(now)
    }

    /// Figures of the long window ending at `now`.
    pub fn long(&self, now: Timestamp) -> Bucket {
        self.long_before(now, Timestamp(i64::MAX))
    }

    /// The long window ending at `now`, but only what happened before
    /// `until` (a baseline that leaves out the recent past).
    pub fn long_before(&self, now: Timestamp, until: Timestamp) -> Bucket {
        let mut out = self.long.figures_before(now, until);
        // The long ring's first slot starts at (slot(now) − n + 1) × sub.
        let from = Timestamp(
            now.0
                .saturating_sub(self.long.len_ms().saturating_mul(1000)),
        );
        self.short.add_range(&mut out, from, now, until);
        out
    }

    /// Everything ever observed.
    pub fn total(&self) -> Bucket {
        let mut out = self.total.clone();
        let all = (Timestamp(i64::MIN), Timestamp(i64::MAX));
        self.short.add_range(&mut out, all.0, all.1, all.1);
        out
    }

    /// Short-window (ended, failed) attempts of step kind `kind` (agents).
    pub fn mix(&self) -> &[(String, Counts)] {
        &self.mix
    }

    fn merge(&mut self, other: &SubjectStats) {
        self.short.merge(&other.short);
        self.long.merge(&other.long);
        self.total.merge(&other.total);
    }
}

/// What a step observation is about.
#[derive(Clone, Copy, Debug)]
pub struct StepFacts<'a> {
    pub pool: &'a str,
    pub capabilities: &'a [String],
    pub kind: &'a str,
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    TimedOut,
}

/// The projection of one partition.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stats {
    short_ms: i64,
    long_ms: i64,
    pub pools: Keyed<SubjectStats>,
    pub capabilities: Keyed<SubjectStats>,
    pub agents: Keyed<SubjectStats>,
    pub kinds: Keyed<SubjectStats>,
    /// Finished workflows by definition name: `done`, `failed` (any end
    /// but success), `run` = accepted → finished, usage.
    pub workflows: Keyed<SubjectStats>,
    #[serde(skip, default = "next_generation")]
    generation: u64,
    /// The shape of every short ring (where an observation's slot is
    /// computed once).
    #[serde(skip, default = "short_template")]
    template: Rolling,
    pub active: BTreeMap<String, BottleneckDetected>,
    pub recent: VecDeque<BottleneckResolved>,
    /// Earliest and latest event time observed (rates over a window that
    /// started before the first observation use the observed span).
    pub first_at: Option<Timestamp>,
    pub last_at: Timestamp,
}

fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The subject ids of one step: its pool, its kind, each capability.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepIds {
    pub pool: u32,
    pub kind: u32,
    pub capabilities: Vec<u32>,
}

fn short_template() -> Rolling {
    // Replaced by `Stats::ensure_template` after deserialising.
    Rolling::new(60_000, SHORT_SLOTS)
}

fn subject<'m>(
    map: &'m mut Keyed<SubjectStats>,
    name: &str,
    short_ms: i64,
    long_ms: i64,
) -> &'m mut SubjectStats {
    // Look up before inserting: the name is only cloned the first time.
    if !map.contains_key(name) {
        map.insert(name.to_string(), SubjectStats::new(short_ms, long_ms));
    }
    map.get_mut(name)
        .unwrap_or_else(|| unreachable!("inserted above"))
}

impl Stats {
    pub fn new(short_ms: i64, long_ms: i64) -> Self {
        Stats {
            short_ms,
            long_ms,
            pools: Keyed::default(),
            capabilities: Keyed::default(),
            agents: Keyed::default(),
            kinds: Keyed::default(),
            workflows: Keyed::default(),
            template: Rolling::new(short_ms, SHORT_SLOTS),
            generation: next_generation(),
            active: BTreeMap::new(),
            recent: VecDeque::new(),
            first_at: None,
            last_at: Timestamp::default(),
        }
    }

    pub fn short_ms(&self) -> i64 {
        self.short_ms
    }

    pub fn long_ms(&self) -> i64 {
        self.long_ms
    }

    /// The ids of a step's subjects (created on first sight). Valid for
    /// this projection only: see [`Stats::generation`].
    pub fn step_ids(&mut self, s: StepFacts<'_>) -> StepIds {
        let (short, long) = (self.short_ms, self.long_ms);
        let new = || SubjectStats::new(short, long);
        StepIds {
            pool: self.pools.id(s.pool, new),
            kind: self.kinds.id(s.kind, new),
            capabilities: s
                .capabilities
                .iter()
                .map(|c| self.capabilities.id(c, new))
                .collect(),
        }
    }

    /// Which projection instance ids belong to (process-unique; a cached id
    /// of another generation must be looked up again).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Applies `f` to the current bucket of the step's pool, kind and
    /// capabilities; returns the slot (for the agent's, see `ended_of`).
    fn each(&mut self, at: Timestamp, s: &StepIds, f: impl Fn(&mut Bucket) + Copy) -> Slot {
        self.last_at = self.last_at.max(at);
        if self.first_at.is_none() {
            self.first_at = Some(at);
        }
        let slot = self.slot_of(at);
        for table_id in [(&mut self.pools, s.pool), (&mut self.kinds, s.kind)] {
            if let Some(x) = table_id.0.by_id(table_id.1) {
                x.apply(at, slot, f);
            }
        }
        for &c in &s.capabilities {
            if let Some(x) = self.capabilities.by_id(c) {
                x.apply(at, slot, f);
            }
        }
        slot
    }

    fn slot_of(&mut self, at: Timestamp) -> Slot {
        if self.template.len_ms() != self.short_ms {
            self.template = Rolling::new(self.short_ms, SHORT_SLOTS);
        }
        self.template.slot_of(at)
    }

    /// A step attempt became ready.
    pub fn arrival(&mut self, at: Timestamp, s: StepFacts<'_>) {
        let ids = self.step_ids(s);
        self.arrival_of(at, &ids);
    }

    pub fn arrival_of(&mut self, at: Timestamp, s: &StepIds) {
        self.each(at, s, |b| b.arrivals += 1);
    }

    /// An assigned step went back to the queue.
    pub fn requeued(&mut self, at: Timestamp, s: &StepIds) {
        self.each(at, s, |b| b.requeued += 1);
    }

    /// A ready step was given to `agent` after waiting `wait_ms`.
    pub fn assigned(&mut self, at: Timestamp, s: StepFacts<'_>, agent: &str, wait_ms: u64) {
        let ids = self.step_ids(s);
        self.assigned_of(at, &ids, agent, wait_ms);
    }

    pub fn assigned_of(&mut self, at: Timestamp, s: &StepIds, agent: &str, wait_ms: u64) {
        let f = |b: &mut Bucket| {
            b.assigned += 1;
            b.wait.record(wait_ms);
        };
        let slot = self.each(at, s, f);
        let (short, long) = (self.short_ms, self.long_ms);
        subject(&mut self.agents, agent, short, long).apply(at, slot, f);
    }

    /// An attempt ended after running `run_ms`.
    pub fn ended(
        &mut self,
        at: Timestamp,
        s: StepFacts<'_>,
        agent: Option<&str>,
        run_ms: u64,
        outcome: Outcome,
        usage: Option<&Usage>,
    ) {
        let ids = self.step_ids(s);
        self.ended_of(at, &ids, agent, run_ms, outcome, usage);
    }

    pub fn ended_of(
        &mut self,
        at: Timestamp,
        s: &StepIds,
        agent: Option<&str>,
        run_ms: u64,
        outcome: Outcome,
        usage: Option<&Usage>,
    ) {
        let f = |b: &mut Bucket| {
            b.done += 1;
            b.run.record(run_ms);
            match outcome {
                Outcome::Succeeded => {}
                Outcome::Failed => b.failed += 1,
                Outcome::TimedOut => b.timed_out += 1,
            }
            if let Some(u) = usage {
                b.usage.add(u);
            }
        };
        let slot = self.each(at, s, f);
        let Some(agent) = agent else {
            return;
        };
        let (short, long) = (self.short_ms, self.long_ms);
        let kind = self.kinds.name(s.kind).unwrap_or_default();
        let a = subject(&mut self.agents, agent, short, long);
        a.apply(at, slot, f);
        let i = match a.mix.iter().position(|(k, _)| k == kind) {
            Some(i) => i,
            None => {
                a.mix
                    .push((kind.to_string(), Counts::new(short, SHORT_SLOTS)));
                a.mix.len() - 1
            }
        };
        a.mix[i].1.add_at(slot, outcome != Outcome::Succeeded);
    }

    /// A workflow of definition `name` ended after `ms` since acceptance.
    pub fn workflow_ended(
        &mut self,
        at: Timestamp,
        name: &str,
        ms: u64,
        succeeded: bool,
        usage: Option<&Usage>,
    ) {
        let (short, long) = (self.short_ms, self.long_ms);
        self.last_at = self.last_at.max(at);
        let slot = self.slot_of(at);
        subject(&mut self.workflows, name, short, long).apply(at, slot, |b: &mut Bucket| {
            b.done += 1;
            b.run.record(ms);
            if !succeeded {
                b.failed += 1;
            }
            if let Some(u) = usage {
                b.usage.add(u);
            }
        });
    }

    pub fn detected(&mut self, d: &BottleneckDetected) {
        self.active.insert(d.key.clone(), d.clone());
    }

    pub fn resolved(&mut self, r: &BottleneckResolved) {
        self.active.remove(&r.key);
        self.recent.push_back(r.clone());
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
    }

    /// Adds another partition's projection (reports over all partitions).
    /// Window figures are merged per slot, so call [`Rolling::figures`] on
    /// the result as on any projection.
    pub fn merge(&mut self, other: &Stats) {
        for (mine, theirs) in [
            (&mut self.pools, &other.pools),
            (&mut self.capabilities, &other.capabilities),
            (&mut self.agents, &other.agents),
            (&mut self.kinds, &other.kinds),
            (&mut self.workflows, &other.workflows),
        ] {
            for (name, s) in theirs.sorted() {
                match mine.get_mut(name) {
                    Some(m) => m.merge(s),
                    None => {
                        mine.insert(name.clone(), s.clone());
                    }
                }
            }
        }
        for (k, d) in &other.active {
            let keep = self.active.get(k).is_some_and(|m| m.severity >= d.severity);
            if !keep {
                self.active.insert(k.clone(), d.clone());
            }
        }
        self.recent.extend(other.recent.iter().cloned());
        self.last_at = self.last_at.max(other.last_at);
        self.first_at = match (self.first_at, other.first_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// Seconds of a `window_ms` window ending at `now` that saw observations.
    pub fn span_s(&self, window_ms: i64, now: Timestamp) -> f64 {
        let window = window_ms as f64 / 1000.0;
        match self.first_at {
            Some(f) => (now.0.saturating_sub(f.0) as f64 / 1e6).clamp(0.001, window),
            None => window,
        }
    }
}
