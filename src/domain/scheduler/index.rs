//! Agents and their per-class availability indexes, and the per-strategy
//! choice over them.
//!
//! An *agent class* is the set of agents of one pool with exactly the same
//! (sorted, deduplicated) capability set. Every agent belongs to exactly one
//! class; a step needing capabilities `R` may use every class whose set ⊇ `R`.
//!
//! Invariants:
//! - an agent is in its class's index iff it is *available*: schedulable and
//!   `in_flight < capacity`; `available` counts those agents;
//! - every index orders by a total key that ends in the agent id (ids are
//!   unique), so choices never depend on insertion, slot or hash order;
//! - the index kind follows the pool's strategy: by id (round robin), by
//!   `(in_flight, id)` (least connections), by weight bucket then
//!   `(-base, id)` (weighted), by `(-score, id)` (performance based);
//! - weighted: an indexed agent's `swrr` holds `base`, with its nginx
//!   "current weight" being `base + rounds × weight`; an agent outside the
//!   index holds its frozen current weight (skipped agents do not gain, as
//!   in nginx). `total_weight` is the sum of the indexed agents' weights.

use std::borrow::Borrow;
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use super::queue::ScId;
use super::score::Perf;
use super::Strategy;

/// Index of an agent class in the scheduler's class table.
pub(super) type AcId = usize;

/// One registered agent.
#[derive(Clone, Debug)]
pub(super) struct Agent {
    pub id: Arc<str>,
    pub pool: usize,
    pub class: AcId,
    pub capacity: u32,
    pub weight: u32,
    pub schedulable: bool,
    pub in_flight: u32,
    pub perf: Perf,
    /// Cached `perf.score_key(free)` while indexed by score.
    pub score: u64,
    /// Weighted round robin state (see the module invariants).
    pub swrr: i128,
}

impl Agent {
    pub fn available(&self) -> bool {
        self.schedulable && self.in_flight < self.capacity
    }

    /// Weight used by smooth weighted round robin (0 counts as 1).
    pub fn eff_weight(&self) -> u32 {
        self.weight.max(1)
    }
}

/// An agent inside an index: ordered by id only (ids are unique).
#[derive(Clone, Debug)]
pub(super) struct AgentRef {
    pub id: Arc<str>,
    pub slot: u32,
}

impl PartialEq for AgentRef {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for AgentRef {}
impl PartialOrd for AgentRef {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for AgentRef {
    fn cmp(&self, other: &Self) -> Ordering {
        self.id.cmp(&other.id)
    }
}
impl Borrow<str> for AgentRef {
    fn borrow(&self) -> &str {
        &self.id
    }
}

/// Available agents of one class, ordered for the pool's strategy.
#[derive(Clone, Debug)]
pub(super) enum AvailIndex {
    Ids(BTreeSet<AgentRef>),
    Loads(BTreeSet<(u32, AgentRef)>),
    Weights(BTreeMap<u32, BTreeSet<(Reverse<i128>, AgentRef)>>),
    Scores(BTreeSet<(Reverse<u64>, AgentRef)>),
}

/// Agents of one pool sharing one capability set.
#[derive(Clone, Debug)]
pub(super) struct AgentClass {
    pub index: AvailIndex,
    /// Agents in the index.
    pub available: usize,
    /// Agents in the class, and those of them schedulable.
    pub members: usize,
    pub schedulable: usize,
    /// Weighted: selection rounds this class took part in; sum of weights.
    pub rounds: i128,
    pub total_weight: i128,
    /// Step classes of the pool this class can serve.
    pub step_classes: BTreeSet<ScId>,
}

impl AgentClass {
    pub fn new(strategy: Strategy) -> Self {
        let index = match strategy {
            Strategy::RoundRobin => AvailIndex::Ids(BTreeSet::new()),
            Strategy::LeastConnections => AvailIndex::Loads(BTreeSet::new()),
            Strategy::Weighted => AvailIndex::Weights(BTreeMap::new()),
            Strategy::PerformanceBased => AvailIndex::Scores(BTreeSet::new()),
        };
        AgentClass {
            index,
            available: 0,
            members: 0,
            schedulable: 0,
            rounds: 0,
            total_weight: 0,
            step_classes: BTreeSet::new(),
        }
    }

    /// Adds an available agent to the index (weighted: unfreezes it).
    pub fn insert(&mut self, a: &mut Agent, slot: u32) {
        let r = AgentRef {
            id: a.id.clone(),
            slot,
        };
        match &mut self.index {
            AvailIndex::Ids(s) => {
                s.insert(r);
            }
            AvailIndex::Loads(s) => {
                s.insert((a.in_flight, r));
            }
            AvailIndex::Scores(s) => {
                a.score = a.perf.score_key(a.capacity.saturating_sub(a.in_flight));
                s.insert((Reverse(a.score), r));
            }
            AvailIndex::Weights(buckets) => {
                let w = a.eff_weight();
                a.swrr -= self.rounds * i128::from(w);
                buckets.entry(w).or_default().insert((Reverse(a.swrr), r));
                self.total_weight += i128::from(w);
            }
        }
        self.available += 1;
    }

    /// Removes an indexed agent, using the key it was inserted with
    /// (weighted: freezes its current weight).
    pub fn remove(&mut self, a: &mut Agent, slot: u32) {
        let r = AgentRef {
            id: a.id.clone(),
            slot,
        };
        let removed = match &mut self.index {
            AvailIndex::Ids(s) => s.remove(&r),
            AvailIndex::Loads(s) => s.remove(&(a.in_flight, r)),
            AvailIndex::Scores(s) => s.remove(&(Reverse(a.score), r)),
            AvailIndex::Weights(buckets) => {
                let w = a.eff_weight();
                let removed = match buckets.get_mut(&w) {
                    Some(set) => {
                        let removed = set.remove(&(Reverse(a.swrr), r));
                        if set.is_empty() {
                            buckets.remove(&w);
                        }
                        removed
                    }
                    None => false,
                };
                if removed {
                    a.swrr += self.rounds * i128::from(w);
                    self.total_weight -= i128::from(w);
                }
                removed
            }
        };
        if removed {
            self.available = self.available.saturating_sub(1);
        }
    }
}

/// Chooses an agent among the available agents of `classes` (all of one pool,
/// so all with the index kind of `strategy`). `cursor` is the pool's last
/// round-robin pick. Returns the agent's slot.
pub(super) fn choose(
    strategy: Strategy,
    classes: &[&AgentClass],
    cursor: Option<&str>,
) -> Option<u32> {
    match strategy {
        Strategy::RoundRobin => round_robin(classes, cursor),
        Strategy::LeastConnections => classes
            .iter()
            .filter_map(|c| match &c.index {
                AvailIndex::Loads(s) => s.first(),
                _ => None,
            })
            .min()
            .map(|(_, r)| r.slot),
        Strategy::PerformanceBased => classes
            .iter()
            .filter_map(|c| match &c.index {
                AvailIndex::Scores(s) => s.first(),
                _ => None,
            })
            .min()
            .map(|(_, r)| r.slot),
        Strategy::Weighted => weighted(classes),
    }
}

/// The first available agent after the cursor in id order, wrapping around.
fn round_robin(classes: &[&AgentClass], cursor: Option<&str>) -> Option<u32> {
    let sets = || {
        classes.iter().filter_map(|c| match &c.index {
            AvailIndex::Ids(s) => Some(s),
            _ => None,
        })
    };
    let after = cursor.and_then(|cur| {
        sets()
            .filter_map(|s| {
                s.range::<str, _>((Bound::Excluded(cur), Bound::Unbounded))
                    .next()
            })
            .min()
    });
    after
        .or_else(|| sets().filter_map(|s| s.first()).min())
        .map(|r| r.slot)
}

/// Smooth weighted round robin: the agent whose current weight after this
/// round's increase (`base + (rounds + 1) × weight`) is highest; ties go to
/// the lowest id. Only each weight bucket's head can win, so this costs
/// O(classes × distinct weights), not O(agents).
fn weighted(classes: &[&AgentClass]) -> Option<u32> {
    let mut best: Option<(i128, &AgentRef)> = None;
    for c in classes {
        let AvailIndex::Weights(buckets) = &c.index else {
            continue;
        };
        for (w, set) in buckets {
            let Some((Reverse(base), r)) = set.first() else {
                continue;
            };
            let value = base + (c.rounds + 1) * i128::from(*w);
            let better = match best {
                None => true,
                Some((bv, br)) => value > bv || (value == bv && r < br),
            };
            if better {
                best = Some((value, r));
            }
        }
    }
    best.map(|(_, r)| r.slot)
}
