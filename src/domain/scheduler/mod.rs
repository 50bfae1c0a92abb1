//! The partition-local scheduler: ready queues per pool, agent load, and the
//! choice of an agent for the best assignable step. Pure and deterministic:
//! no IO, clock or randomness, and every order is a total order on ids and
//! numbers (hash maps are used for point look-ups only, never iterated), so
//! replaying the journal's calls reaches the same decisions.
//!
//! Structure: agents (bookkeeping in `fleet.rs`) are grouped into *agent
//! classes* (pool + exact capability set, see `index.rs`); ready steps into
//! *step classes* (pool + required capability set, see `queue.rs`). A step class links to the agent
//! classes whose set ⊇ its own. A step class is *runnable* when its queue is
//! non-empty and a linked class has an available agent; the heads of the
//! runnable classes sit in one ordered set, so the best assignable step is
//! its first entry. Steps of one class are interchangeable for eligibility,
//! so a step never waits behind a step with other needs.
//!
//! Invariants: an agent never gets a step beyond its capacity or lacking a
//! capability; `in_flight` only changes through `apply_assignment` (+1) and
//! `release` (−1); strategy state (round-robin cursor, smooth weights) only
//! changes in `apply_assignment`, as a function of the step and the agent,
//! so the engine may decide with [`Scheduler::peek_next`] and fold the
//! recorded fact with [`Scheduler::apply_assignment`] (live and on replay).
//!
//! Strategies and costs (n agents in the pool, c agent classes serving the
//! step, B distinct weights):
//! - `round_robin`: the next available agent after the pool's cursor in id
//!   order, wrapping; O(c log n).
//! - `least_connections`: fewest in flight, ties by id; O(c log n).
//! - `weighted`: nginx smooth weighted round robin over the eligible
//!   available agents, exact (same sequence as nginx with peers in id order;
//!   weight 0 counts as 1). Per class, agents sit in buckets by weight ordered
//!   by `base = current − rounds × weight`, so a round's "everyone gains their
//!   weight" is one counter increment and only bucket heads can win:
//!   O(c × B + log n). Trade-off: with thousands of *distinct* weights this
//!   degrades towards a scan; fleets use a handful of weight tiers.
//! - `performance_based`: highest `free × s² / (1 + L)` (see `score.rs`),
//!   ties by id; O(c log n); the score is re-keyed on every load or outcome
//!   change of that agent only.

mod fleet;
mod index;
mod queue;
mod score;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub use crate::domain::events::Strategy;
pub use score::EWMA_ALPHA;

use index::{AcId, Agent, AgentClass};
use queue::{Queues, ScId};

/// One attempt of one step: the unit the scheduler queues and assigns.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepKey {
    pub workflow_id: String,
    pub step_id: String,
    pub attempt: i32,
}

/// What the scheduler needs to know about an agent.
#[derive(Clone, Debug)]
pub struct AgentSpec {
    pub id: String,
    pub pool: String,
    pub capabilities: Vec<String>,
    pub capacity: u32,
    pub weight: u32,
}

/// A step waiting for an agent.
#[derive(Clone, Debug)]
pub struct ReadyStep {
    pub key: StepKey,
    pub pool: String,
    pub capabilities: Vec<String>,
    /// Higher runs first.
    pub priority: i32,
    /// Lower runs first among equal priorities (the engine's ready order).
    pub ready_seq: u64,
}

/// A decision: this step goes to this agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub key: StepKey,
    pub agent_id: String,
    pub pool: String,
    pub strategy: Strategy,
}

/// Strategy per pool; part of determinism (replay must use the same).
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    pub default_strategy: Strategy,
    pub pool_strategies: BTreeMap<String, Strategy>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            default_strategy: Strategy::LeastConnections,
            pool_strategies: BTreeMap::new(),
        }
    }
}

/// Waiting work and supply for one (pool, capability set) with queued steps:
/// `eligible_agents == 0` means starved (no schedulable agent can run it),
/// `available_agents == 0` with eligible ones means saturated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassStats {
    pub pool: String,
    pub capabilities: Vec<String>,
    pub queued: usize,
    pub eligible_agents: usize,
    pub available_agents: usize,
}

#[derive(Clone, Debug)]
struct Pool {
    name: String,
    strategy: Strategy,
    agent_classes: BTreeMap<Vec<String>, AcId>,
    /// Round robin: id of the agent that got the last step of this pool.
    cursor: Option<Arc<str>>,
}

/// Scheduling state of one partition. See the module docs.
#[derive(Clone, Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    pools: Vec<Pool>,
    pool_ids: BTreeMap<String, usize>,
    agents: Vec<Option<Agent>>,
    free_slots: Vec<u32>,
    /// Point look-ups only.
    agent_ids: HashMap<Arc<str>, u32>,
    agent_classes: Vec<AgentClass>,
    queues: Queues,
}

/// Sorted, deduplicated capability set.
fn normalize(caps: &[String]) -> Vec<String> {
    let mut v = caps.to_vec();
    v.sort();
    v.dedup();
    v
}

/// `sub ⊆ sup` for sorted, deduplicated sets.
fn is_subset(sub: &[String], sup: &[String]) -> bool {
    let mut it = sup.iter();
    sub.iter().all(|need| it.any(|have| have == need))
}

impl Scheduler {
    pub fn new(config: SchedulerConfig) -> Self {
        Scheduler {
            config,
            pools: Vec::new(),
            pool_ids: BTreeMap::new(),
            agents: Vec::new(),
            free_slots: Vec::new(),
            agent_ids: HashMap::new(),
            agent_classes: Vec::new(),
            queues: Queues::default(),
        }
    }

    /// The strategy a pool uses.
    pub fn strategy_of(&self, pool: &str) -> Strategy {
        self.config
            .pool_strategies
            .get(pool)
            .copied()
            .unwrap_or(self.config.default_strategy)
    }

    fn pool_id(&mut self, name: &str) -> usize {
        if let Some(&id) = self.pool_ids.get(name) {
            return id;
        }
        let id = self.pools.len();
        self.pools.push(Pool {
            name: name.to_string(),
            strategy: self.strategy_of(name),
            agent_classes: BTreeMap::new(),
            cursor: None,
        });
        self.pool_ids.insert(name.to_string(), id);
        id
    }

    /// Queues a ready step; a key already queued is left as it is (held
    /// attempts are not tracked by key: a re-queued attempt is queued again).
    pub fn enqueue(&mut self, step: ReadyStep) {
        if self.queues.contains(&step.key) {
            return;
        }
        let pool = self.pool_id(&step.pool);
        let caps = normalize(&step.capabilities);
        let sc = match self.queues.class_id(pool, &caps) {
            Some(sc) => sc,
            None => self.new_step_class(pool, caps),
        };
        self.queues.push(sc, step);
    }

    fn new_step_class(&mut self, pool: usize, caps: Vec<String>) -> ScId {
        let linked: Vec<(AcId, bool)> = self.pools[pool]
            .agent_classes
            .iter()
            .filter(|(have, _)| is_subset(&caps, have))
            .map(|(_, &ac)| (ac, self.agent_classes[ac].available > 0))
            .collect();
        let sc = self.queues.create_class(pool, caps);
        for (ac, live) in linked {
            self.agent_classes[ac].step_classes.insert(sc);
            self.queues.link_agent_class(sc, ac, live);
        }
        sc
    }

    /// Removes a queued step (e.g. cancelled while waiting). False if it was
    /// not queued.
    pub fn dequeue(&mut self, key: &StepKey) -> bool {
        let Some(sc) = self.queues.remove(key) else {
            return false;
        };
        self.settle(sc);
        true
    }

    /// Refreshes a step class after its queue shrank; drops it when empty.
    fn settle(&mut self, sc: ScId) {
        if let Some(links) = self.queues.refresh_or_drop(sc) {
            for ac in links {
                self.agent_classes[ac].step_classes.remove(&sc);
            }
        }
    }

    /// The decision `assign_next` would take, without taking it.
    pub fn peek_next(&self) -> Option<Assignment> {
        for (key, sc) in self.queues.runnable() {
            let Some((pool, links)) = self.queues.pool_and_links(sc) else {
                continue;
            };
            let pool = &self.pools[pool];
            let classes: Vec<&AgentClass> = links
                .iter()
                .map(|&ac| &self.agent_classes[ac])
                .filter(|c| c.available > 0)
                .collect();
            let cursor = pool.cursor.as_deref();
            let Some(slot) = index::choose(pool.strategy, &classes, cursor) else {
                continue;
            };
            let Some(agent) = self.agents.get(slot as usize).and_then(Option::as_ref) else {
                continue;
            };
            return Some(Assignment {
                key: key.clone(),
                agent_id: agent.id.to_string(),
                pool: pool.name.clone(),
                strategy: pool.strategy,
            });
        }
        None
    }

    /// Pops the best (highest priority, then lowest `ready_seq`) ready step
    /// that has an eligible agent (same pool, capabilities ⊇ required,
    /// schedulable, `in_flight < capacity`), chooses the agent by the pool's
    /// strategy and increments its `in_flight`. None when nothing can be
    /// assigned now.
    pub fn assign_next(&mut self) -> Option<Assignment> {
        let a = self.peek_next()?;
        self.apply_assignment(&a.key, &a.agent_id);
        Some(a)
    }

    /// Folds an assignment fact: the step leaves its queue (if queued), the
    /// agent's `in_flight` grows by one (even past capacity: facts win), and
    /// the pool's strategy state advances as if the agent had been chosen.
    pub fn apply_assignment(&mut self, key: &StepKey, agent_id: &str) {
        let sc = self.queues.remove(key);
        if let Some(&slot) = self.agent_ids.get(agent_id) {
            self.apply_to_agent(sc, slot);
        }
        if let Some(sc) = sc {
            self.settle(sc);
        }
    }

    fn apply_to_agent(&mut self, sc: Option<ScId>, slot: u32) {
        let Some(a) = self.agents.get(slot as usize).and_then(Option::as_ref) else {
            return;
        };
        let (pool, class, available) = (a.pool, a.class, a.available());
        let strategy = self.pools[pool].strategy;
        // Weighted: an nginx round over the step's eligible agents.
        let links = match (strategy, sc) {
            (Strategy::Weighted, Some(sc)) if available => self
                .queues
                .pool_and_links(sc)
                .filter(|(p, links)| *p == pool && links.contains(&class))
                .map(|(_, links)| links.to_vec()),
            _ => None,
        };
        let total: i128 = links
            .iter()
            .flatten()
            .map(|&ac| self.agent_classes[ac].total_weight)
            .sum();
        self.unlink(slot);
        for &ac in links.iter().flatten() {
            self.agent_classes[ac].rounds += 1;
        }
        if let Some(a) = self.agents.get_mut(slot as usize).and_then(Option::as_mut) {
            if links.is_some() {
                a.swrr += i128::from(a.eff_weight()) - total;
            }
            a.in_flight = a.in_flight.saturating_add(1);
            if strategy == Strategy::RoundRobin {
                self.pools[pool].cursor = Some(a.id.clone());
            }
        }
        self.link(slot);
    }

    /// An attempt held by the agent ended (finished, failed, timed out,
    /// declined, re-queued): `in_flight -= 1`.
    pub fn release(&mut self, agent_id: &str) {
        self.update(agent_id, |a| a.in_flight = a.in_flight.saturating_sub(1));
    }

    /// Feeds `performance_based`: success rate and EWMA latency.
    pub fn record_outcome(&mut self, agent_id: &str, success: bool, latency_ms: f64) {
        self.update(agent_id, |a| a.perf.record(success, latency_ms));
    }

    /// Ready steps waiting in a pool.
    pub fn queue_depth(&self, pool: &str) -> usize {
        self.pool_ids.get(pool).map_or(0, |&p| self.queues.depth(p))
    }

    /// Ready steps waiting, for every pool the scheduler has seen.
    pub fn queue_depths(&self) -> BTreeMap<String, usize> {
        self.pool_ids
            .iter()
            .map(|(name, &p)| (name.clone(), self.queues.depth(p)))
            .collect()
    }

    /// `(in_flight, capacity)` of a known agent.
    pub fn agent_load(&self, agent_id: &str) -> Option<(u32, u32)> {
        self.agent(agent_id).map(|a| (a.in_flight, a.capacity))
    }

    /// The performance figures of an agent: (success EWMA, latency EWMA ms).
    pub fn agent_perf(&self, agent_id: &str) -> Option<(f64, Option<f64>)> {
        self.agent(agent_id)
            .map(|a| (a.perf.success, a.perf.latency_ms))
    }

    /// True when the step is waiting in a queue.
    pub fn is_queued(&self, key: &StepKey) -> bool {
        self.queues.contains(key)
    }

    /// Supply and demand of every step class with queued steps, ordered by
    /// (pool, capabilities) — input for starvation and saturation findings.
    pub fn class_stats(&self) -> Vec<ClassStats> {
        let mut out: Vec<ClassStats> = self
            .queues
            .classes()
            .map(|(pool, caps, queued, links)| {
                let classes = links.iter().map(|&ac| &self.agent_classes[ac]);
                ClassStats {
                    pool: self.pools[pool].name.clone(),
                    capabilities: caps.to_vec(),
                    queued,
                    eligible_agents: classes.clone().map(|c| c.schedulable).sum(),
                    available_agents: classes.map(|c| c.available).sum(),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.pool, &a.capabilities).cmp(&(&b.pool, &b.capabilities)));
        out
    }
}
