//! Ready queues: one per *step class* (pool + required capability set), and
//! the ordered set of runnable class heads.
//!
//! Invariants:
//! - a queued key is in exactly one class queue and in `queued`;
//! - queue order is (priority desc, ready_seq asc, key asc): total and
//!   independent of insertion order;
//! - a class exists only while its queue is non-empty (it is dropped by
//!   `refresh_or_drop`), so classes cost nothing once drained;
//! - `live` counts the linked agent classes with an available agent;
//!   a class is in `runnable` (with its current head) iff its queue is
//!   non-empty and `live > 0`; so `runnable`'s first entry is the best step
//!   that can be assigned now, and steps of a class nobody can serve never
//!   hide steps of other classes;
//! - `depth[pool]` equals the number of queued keys of that pool.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::index::AcId;
use super::{ReadyStep, StepKey};

/// Index of a step class in the class table.
pub(super) type ScId = usize;

/// A queued step's position.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Head {
    prio: Reverse<i32>,
    seq: u64,
    key: Arc<StepKey>,
}

#[derive(Clone, Debug)]
struct StepClass {
    pool: usize,
    caps: Vec<String>,
    queue: BTreeSet<Head>,
    /// Agent classes of the pool whose capabilities ⊇ `caps`.
    links: Vec<AcId>,
    live: usize,
    /// The head this class has in `runnable`, if any.
    runnable: Option<Head>,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Queues {
    classes: Vec<Option<StepClass>>,
    free: Vec<ScId>,
    /// pool → capability set → class.
    by_caps: BTreeMap<usize, BTreeMap<Vec<String>, ScId>>,
    /// Point look-ups only.
    queued: HashMap<Arc<StepKey>, (ScId, Head)>,
    runnable: BTreeSet<(Head, ScId)>,
    depth: Vec<usize>,
}

impl Queues {
    fn class_mut(&mut self, sc: ScId) -> Option<&mut StepClass> {
        self.classes.get_mut(sc).and_then(Option::as_mut)
    }

    fn class(&self, sc: ScId) -> Option<&StepClass> {
        self.classes.get(sc).and_then(Option::as_ref)
    }

    pub fn contains(&self, key: &StepKey) -> bool {
        self.queued.contains_key(key)
    }

    pub fn class_id(&self, pool: usize, caps: &[String]) -> Option<ScId> {
        self.by_caps.get(&pool)?.get(caps).copied()
    }

    /// The live step classes of a pool, in capability-set order.
    pub fn classes_of_pool(&self, pool: usize) -> Vec<ScId> {
        self.by_caps
            .get(&pool)
            .map(|m| m.values().copied().collect())
            .unwrap_or_default()
    }

    pub fn caps_of(&self, sc: ScId) -> Option<&[String]> {
        self.class(sc).map(|c| c.caps.as_slice())
    }

    pub fn pool_and_links(&self, sc: ScId) -> Option<(usize, &[AcId])> {
        self.class(sc).map(|c| (c.pool, c.links.as_slice()))
    }

    pub fn depth(&self, pool: usize) -> usize {
        self.depth.get(pool).copied().unwrap_or(0)
    }

    /// Creates an empty class (the caller links agent classes, then pushes).
    pub fn create_class(&mut self, pool: usize, caps: Vec<String>) -> ScId {
        let class = StepClass {
            pool,
            caps: caps.clone(),
            queue: BTreeSet::new(),
            links: Vec::new(),
            live: 0,
            runnable: None,
        };
        let sc = match self.free.pop() {
            Some(sc) => {
                self.classes[sc] = Some(class);
                sc
            }
            None => {
                self.classes.push(Some(class));
                self.classes.len() - 1
            }
        };
        self.by_caps.entry(pool).or_default().insert(caps, sc);
        sc
    }

    /// Links an agent class; `live` when it has an available agent now.
    pub fn link_agent_class(&mut self, sc: ScId, ac: AcId, live: bool) {
        if let Some(c) = self.class_mut(sc) {
            c.links.push(ac);
            if live {
                c.live += 1;
            }
        }
        self.refresh(sc);
    }

    /// A linked agent class gained its first (`up`) or lost its last
    /// available agent.
    pub fn agent_class_changed(&mut self, sc: ScId, up: bool) {
        if let Some(c) = self.class_mut(sc) {
            c.live = if up {
                c.live + 1
            } else {
                c.live.saturating_sub(1)
            };
        }
        self.refresh(sc);
    }

    /// Queues a step in class `sc` (the caller checked it is not queued).
    pub fn push(&mut self, sc: ScId, step: ReadyStep) {
        let head = Head {
            prio: Reverse(step.priority),
            seq: step.ready_seq,
            key: Arc::new(step.key),
        };
        let Some(c) = self.class_mut(sc) else {
            return;
        };
        let pool = c.pool;
        c.queue.insert(head.clone());
        self.queued.insert(head.key.clone(), (sc, head));
        if self.depth.len() <= pool {
            self.depth.resize(pool + 1, 0);
        }
        self.depth[pool] += 1;
        self.refresh(sc);
    }

    /// Takes a key out of its queue; the caller then calls `refresh_or_drop`.
    pub fn remove(&mut self, key: &StepKey) -> Option<ScId> {
        let (sc, head) = self.queued.remove(key)?;
        if let Some(c) = self.class_mut(sc) {
            let pool = c.pool;
            c.queue.remove(&head);
            if let Some(d) = self.depth.get_mut(pool) {
                *d = d.saturating_sub(1);
            }
        }
        Some(sc)
    }

    /// Re-enters the class's head in `runnable`; drops an empty class and
    /// returns its agent-class links so the caller can unlink them.
    pub fn refresh_or_drop(&mut self, sc: ScId) -> Option<Vec<AcId>> {
        self.refresh(sc);
        if !self.class(sc).is_some_and(|c| c.queue.is_empty()) {
            return None;
        }
        let c = self.classes.get_mut(sc)?.take()?;
        if let Some(m) = self.by_caps.get_mut(&c.pool) {
            m.remove(&c.caps);
            if m.is_empty() {
                self.by_caps.remove(&c.pool);
            }
        }
        self.free.push(sc);
        Some(c.links)
    }

    fn refresh(&mut self, sc: ScId) {
        let Some(c) = self.classes.get_mut(sc).and_then(Option::as_mut) else {
            return;
        };
        let want = if c.live > 0 {
            c.queue.first().cloned()
        } else {
            None
        };
        if want == c.runnable {
            return;
        }
        if let Some(old) = c.runnable.take() {
            self.runnable.remove(&(old, sc));
        }
        if let Some(new) = &want {
            self.runnable.insert((new.clone(), sc));
        }
        c.runnable = want;
    }

    /// Runnable class heads, best first.
    pub fn runnable(&self) -> impl Iterator<Item = (&StepKey, ScId)> + '_ {
        self.runnable.iter().map(|(h, sc)| (h.key.as_ref(), *sc))
    }

    /// Every class with queued steps: (pool, caps, queued, links).
    pub fn classes(&self) -> impl Iterator<Item = (usize, &[String], usize, &[AcId])> + '_ {
        self.classes
            .iter()
            .flatten()
            .map(|c| (c.pool, c.caps.as_slice(), c.queue.len(), c.links.as_slice()))
    }
}
