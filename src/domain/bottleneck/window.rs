//! Event-time rolling windows: a ring of sub-interval buckets, each with
//! counters and two HDR histograms (wait and run time, in ms).
//!
//! Invariants: a bucket holds exactly the observations whose event time
//! falls in its slot (`slot = time / sub_interval`); a bucket is reset when
//! a later slot claims its ring position, so memory is fixed per window
//! whatever the history; an observation older than the ring is dropped
//! (it is outside every window anyway). Figures of a window ending at `now`
//! merge the buckets of the last `n` slots, so they are a pure function of
//! the observations and `now`.

use hdrhistogram::Histogram;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::events::{Timestamp, Usage};

/// Significant figures of every histogram: 1% resolution, a few KiB each.
const SIGFIG: u8 = 2;
const MAX_MS: u64 = 7 * 24 * 3600 * 1000;

/// An auto-resizing histogram of milliseconds, stored in the compact V2
/// encoding (deterministic for equal contents and equal resize history,
/// which the same observations always produce).
#[derive(Clone, Debug)]
pub struct Hist(pub Histogram<u32>);

impl Default for Hist {
    fn default() -> Self {
        // `new` auto-resizes, so there is no upper bound to configure; it
        // fails only for more than 5 significant figures.
        #[allow(clippy::expect_used)]
        Hist(Histogram::new(SIGFIG).expect("SIGFIG is within 0..=5"))
    }
}

impl Hist {
    /// Records a duration; beyond a week it counts as a week, which bounds
    /// every histogram at a few KiB whatever a clock skew says.
    pub fn record(&mut self, ms: u64) {
        let ms = ms.min(MAX_MS);
        if self.0.record(ms).is_err() {
            self.0.saturating_record(ms);
        }
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value at quantile `q` (0 when empty).
    pub fn quantile(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            0.0
        } else {
            self.0.value_at_quantile(q) as f64
        }
    }

    pub fn mean(&self) -> f64 {
        if self.0.is_empty() {
            0.0
        } else {
            self.0.mean()
        }
    }

    /// Removes a subset's samples (a pool without one of its agents).
    pub fn subtract(&mut self, subset: &Hist) {
        let _ = self.0.subtract(&subset.0);
    }

    pub fn add(&mut self, other: &Hist) {
        // Auto-resizing histograms of the same precision always merge.
        let _ = self.0.add(&other.0);
    }
}

impl Serialize for Hist {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = Vec::new();
        use hdrhistogram::serialization::Serializer as _;
        hdrhistogram::serialization::V2Serializer::new()
            .serialize(&self.0, &mut buf)
            .map_err(serde::ser::Error::custom)?;
        s.serialize_bytes(&buf)
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = Deserialize::deserialize(d)?;
        let mut h: Histogram<u32> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(serde::de::Error::custom)?;
        h.auto(true);
        Ok(Hist(h))
    }
}

/// Counters and distributions of one sub-interval (or of a merged window).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Bucket {
    pub slot: i64,
    /// Steps that became ready.
    pub arrivals: u64,
    /// Steps given to an agent.
    pub assigned: u64,
    /// Assigned steps that came back to the queue (declined, agent lost):
    /// the same work again, so `assigned − requeued` is the net drain.
    #[serde(default)]
    pub requeued: u64,
    /// Attempts that ended (succeeded, failed or timed out).
    pub done: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub wait: Hist,
    pub run: Hist,
    pub usage: Usage,
}

impl Bucket {
    fn reset(&mut self, slot: i64) {
        self.slot = slot;
        self.arrivals = 0;
        self.assigned = 0;
        self.requeued = 0;
        self.done = 0;
        self.failed = 0;
        self.timed_out = 0;
        self.wait.0.reset();
        self.run.0.reset();
        self.usage = Usage::default();
    }

    pub fn merge(&mut self, o: &Bucket) {
        self.arrivals += o.arrivals;
        self.assigned += o.assigned;
        self.requeued += o.requeued;
        self.done += o.done;
        self.failed += o.failed;
        self.timed_out += o.timed_out;
        self.wait.add(&o.wait);
        self.run.add(&o.run);
        self.usage.add(&o.usage);
    }

    /// Failed or timed-out share of ended attempts (0 with none).
    pub fn failure_rate(&self) -> f64 {
        ratio(self.failed + self.timed_out, self.done)
    }

    pub fn timeout_rate(&self) -> f64 {
        ratio(self.timed_out, self.done)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// A slot number and its ring position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    slot: i64,
    idx: usize,
}

/// A window of `len_us` as a ring of `buckets.len()` sub-intervals.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rolling {
    sub_us: i64,
    buckets: Vec<Bucket>,
}

impl Rolling {
    /// A window of `len_ms` split into `slots` buckets.
    pub fn new(len_ms: i64, slots: usize) -> Self {
        let slots = slots.max(1);
        let sub_us = (len_ms.max(1) * 1000 / slots as i64).max(1);
        Rolling {
            sub_us,
            buckets: (0..slots)
                .map(|_| Bucket {
                    slot: i64::MIN,
                    ..Bucket::default()
                })
                .collect(),
        }
    }

    pub fn len_ms(&self) -> i64 {
        self.sub_us * self.buckets.len() as i64 / 1000
    }

    /// The bucket of event time `at`, or None when `at` is older than the ring.
    pub fn at(&mut self, at: Timestamp) -> Option<&mut Bucket> {
        let s = self.slot_of(at);
        self.at_evicting(s, |_, _| {})
    }

    /// Where event time `at` falls in rings of this shape (computed once
    /// per observation for all the subjects it touches).
    pub fn slot_of(&self, at: Timestamp) -> Slot {
        let slot = at.0.div_euclid(self.sub_us);
        Slot {
            slot,
            idx: slot.rem_euclid(self.buckets.len() as i64) as usize,
        }
    }

    /// Like [`Rolling::at`]; a bucket that still holds an older slot is
    /// handed to `evict` (with that slot's start time) before it is reset.
    /// `s` must come from [`Rolling::slot_of`] of a ring of the same shape.
    pub fn at_evicting(
        &mut self,
        s: Slot,
        mut evict: impl FnMut(Timestamp, &Bucket),
    ) -> Option<&mut Bucket> {
        let (slot, i) = (s.slot, s.idx);
        let sub_us = self.sub_us;
        let b = &mut self.buckets[i];
        if b.slot < slot {
            if b.slot != i64::MIN {
                evict(Timestamp(b.slot.saturating_mul(sub_us)), b);
            }
            b.reset(slot);
        } else if b.slot > slot {
            return None;
        }
        Some(b)
    }

    /// Adds to `out` the buckets that start at or after `from`, no later
    /// than `now`, and end by `until` (event times).
    pub fn add_range(&self, out: &mut Bucket, from: Timestamp, now: Timestamp, until: Timestamp) {
        for b in &self.buckets {
            if b.slot == i64::MIN {
                continue;
            }
            let start = b.slot.saturating_mul(self.sub_us);
            let end = start.saturating_add(self.sub_us);
            if start >= from.0 && start <= now.0 && end <= until.0 {
                out.merge(b);
            }
        }
    }

    /// Everything observed in the window ending at `now` (the current
    /// partial slot and the `n - 1` before it).
    pub fn figures(&self, now: Timestamp) -> Bucket {
        self.figures_before(now, Timestamp(i64::MAX))
    }

    /// Like [`Rolling::figures`], but only buckets that end before `until`
    /// (a baseline that leaves out the recent past it is compared with).
    pub fn figures_before(&self, now: Timestamp, until: Timestamp) -> Bucket {
        let last = now.0.div_euclid(self.sub_us);
        let first = last - self.buckets.len() as i64 + 1;
        let last = last.min(until.0.div_euclid(self.sub_us).saturating_sub(1));
        let mut out = Bucket::default();
        for b in &self.buckets {
            if b.slot >= first && b.slot <= last {
                out.merge(b);
            }
        }
        out
    }
}

impl Rolling {
    /// Adds another ring of the same shape slot by slot (a newer slot wins
    /// its position, as if its observations had arrived here).
    pub fn merge(&mut self, other: &Rolling) {
        if self.sub_us != other.sub_us || self.buckets.len() != other.buckets.len() {
            return;
        }
        for (m, t) in self.buckets.iter_mut().zip(&other.buckets) {
            if t.slot > m.slot {
                *m = t.clone();
            } else if t.slot == m.slot {
                m.merge(t);
            }
        }
    }
}

/// Ended and failed attempts over a window (counters only: what the
/// agent × step-kind mix needs, without histograms).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Counts {
    sub_us: i64,
    /// (slot, ended, failed) per ring position.
    slots: Vec<(i64, u64, u64)>,
}

impl Counts {
    pub fn new(len_ms: i64, slots: usize) -> Self {
        let slots = slots.max(1);
        Counts {
            sub_us: (len_ms.max(1) * 1000 / slots as i64).max(1),
            slots: vec![(i64::MIN, 0, 0); slots],
        }
    }

    /// Counts one ended attempt in slot `at` (from [`Rolling::slot_of`] of a
    /// ring of the same shape).
    pub fn add_at(&mut self, at: Slot, failed: bool) {
        let (slot, i) = (at.slot, at.idx);
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        if s.0 < slot {
            *s = (slot, 0, 0);
        } else if s.0 > slot {
            return;
        }
        s.1 += 1;
        s.2 += u64::from(failed);
    }

    /// (ended, failed) in the window ending at `now`.
    pub fn sum(&self, now: Timestamp) -> (u64, u64) {
        let last = now.0.div_euclid(self.sub_us);
        let first = last - self.slots.len() as i64 + 1;
        self.slots
            .iter()
            .filter(|s| s.0 >= first && s.0 <= last)
            .fold((0, 0), |acc, s| (acc.0 + s.1, acc.1 + s.2))
    }
}
