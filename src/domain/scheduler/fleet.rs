//! Agent bookkeeping of the [`Scheduler`]: registration, updates,
//! schedulability and removal, and the link between an agent and its agent
//! class's counts and availability index.
//!
//! Invariants: every change to an agent goes through `unlink` → change →
//! `link`, so the class counts (`members`, `schedulable`, `available`) and
//! the index keys always match the agent's current fields; when a class
//! gains its first or loses its last available agent, every step class it
//! serves is told, which keeps the runnable set exact.

use std::sync::Arc;

use super::index::{AcId, Agent, AgentClass};
use super::{is_subset, normalize, score, AgentSpec, Scheduler};

impl Scheduler {
    /// The agent class of (pool, caps), created and linked to the pool's
    /// step classes on first use.
    fn agent_class(&mut self, pool: usize, caps: Vec<String>) -> AcId {
        if let Some(&id) = self.pools[pool].agent_classes.get(&caps) {
            return id;
        }
        let id = self.agent_classes.len();
        let mut class = AgentClass::new(self.pools[pool].strategy);
        for sc in self.queues.classes_of_pool(pool) {
            if self.queues.caps_of(sc).is_some_and(|r| is_subset(r, &caps)) {
                class.step_classes.insert(sc);
                self.queues.link_agent_class(sc, id, false);
            }
        }
        self.agent_classes.push(class);
        self.pools[pool].agent_classes.insert(caps, id);
        id
    }

    pub(super) fn agent(&self, agent_id: &str) -> Option<&Agent> {
        let slot = *self.agent_ids.get(agent_id)?;
        self.agents.get(slot as usize)?.as_ref()
    }

    /// Takes an agent out of its class's counts and index.
    pub(super) fn unlink(&mut self, slot: u32) {
        let Some(a) = self.agents.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let class = &mut self.agent_classes[a.class];
        class.members -= 1;
        if a.schedulable {
            class.schedulable -= 1;
        }
        if a.available() {
            class.remove(a, slot);
            if class.available == 0 {
                for &sc in &class.step_classes {
                    self.queues.agent_class_changed(sc, false);
                }
            }
        }
    }

    /// Puts an agent into its class's counts and, if available, its index.
    pub(super) fn link(&mut self, slot: u32) {
        let Some(a) = self.agents.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let class = &mut self.agent_classes[a.class];
        class.members += 1;
        if a.schedulable {
            class.schedulable += 1;
        }
        if a.available() {
            class.insert(a, slot);
            if class.available == 1 {
                for &sc in &class.step_classes {
                    self.queues.agent_class_changed(sc, true);
                }
            }
        }
    }

    /// Changes an agent through `f`, keeping indexes and counts exact.
    pub(super) fn update(&mut self, agent_id: &str, f: impl FnOnce(&mut Agent)) {
        let Some(&slot) = self.agent_ids.get(agent_id) else {
            return;
        };
        self.unlink(slot);
        if let Some(a) = self.agents.get_mut(slot as usize).and_then(Option::as_mut) {
            f(a);
        }
        self.link(slot);
    }

    /// Registers an agent, or updates its pool, capabilities, capacity and
    /// weight. Keeps `in_flight`, performance figures and schedulability; a
    /// new agent starts schedulable.
    pub fn upsert_agent(&mut self, spec: AgentSpec) {
        let pool = self.pool_id(&spec.pool);
        let class = self.agent_class(pool, normalize(&spec.capabilities));
        if self.agent_ids.contains_key(spec.id.as_str()) {
            self.update(&spec.id, |a| {
                a.pool = pool;
                a.class = class;
                a.capacity = spec.capacity;
                a.weight = spec.weight;
            });
            return;
        }
        let id: Arc<str> = Arc::from(spec.id.as_str());
        let agent = Agent {
            id: id.clone(),
            pool,
            class,
            capacity: spec.capacity,
            weight: spec.weight,
            schedulable: true,
            in_flight: 0,
            perf: score::Perf::default(),
            score: 0,
            swrr: 0,
        };
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.agents[slot as usize] = Some(agent);
                slot
            }
            None => {
                self.agents.push(Some(agent));
                (self.agents.len() - 1) as u32
            }
        };
        self.agent_ids.insert(id, slot);
        self.link(slot);
    }

    /// Allows or stops new work for an agent (draining, lost). Its
    /// `in_flight` stays until released.
    pub fn set_schedulable(&mut self, agent_id: &str, yes: bool) {
        self.update(agent_id, |a| a.schedulable = yes);
    }

    /// Forgets an agent (and its load).
    pub fn remove_agent(&mut self, agent_id: &str) {
        let Some(slot) = self.agent_ids.remove(agent_id) else {
            return;
        };
        self.unlink(slot);
        if let Some(entry) = self.agents.get_mut(slot as usize) {
            *entry = None;
            self.free_slots.push(slot);
        }
    }
}
