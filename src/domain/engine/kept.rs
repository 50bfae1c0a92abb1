//! [`Kept`]: a derived part of the partition state (the scheduler, the
//! timer index) that a fold may stop maintaining.
//!
//! Derived parts are never stored: the engine rebuilds them from workflows
//! and agents on load (`PartitionState::rebuild_derived`), and only
//! decisions read them. A fold that only writes projections (`baton
//! replay`) therefore skips them: about a tenth of its work. Invariant:
//! while off, every update is dropped and nothing may read the value (a
//! state built with `PartitionState::projections_only` never decides).
//! The updates the fold makes are methods of `Kept` with the wrapped type's
//! own names, so `evolve` calls them unchanged; decisions reach the value
//! through `DerefMut`.

use std::collections::BTreeSet;
use std::ops::{Deref, DerefMut};

use crate::domain::scheduler::{AgentSpec, ReadyStep, Scheduler, StepKey};

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Kept<T> {
    value: T,
    on: bool,
}

impl<T> Kept<T> {
    pub(crate) fn new(value: T, on: bool) -> Self {
        Kept { value, on }
    }

    /// Whether updates are applied (a caller may skip building them).
    pub(crate) fn is_on(&self) -> bool {
        self.on
    }
}

impl<T> Deref for Kept<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Kept<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: Ord> Kept<BTreeSet<T>> {
    pub(crate) fn insert(&mut self, item: T) -> bool {
        self.on && self.value.insert(item)
    }

    pub(crate) fn remove(&mut self, item: &T) -> bool {
        self.on && self.value.remove(item)
    }
}

impl Kept<Scheduler> {
    pub(crate) fn enqueue(&mut self, step: ReadyStep) {
        if self.on {
            self.value.enqueue(step)
        }
    }

    pub(crate) fn dequeue(&mut self, key: &StepKey) -> bool {
        self.on && self.value.dequeue(key)
    }

    pub(crate) fn apply_assignment(&mut self, key: &StepKey, agent_id: &str) {
        if self.on {
            self.value.apply_assignment(key, agent_id)
        }
    }

    pub(crate) fn release(&mut self, agent_id: &str) {
        if self.on {
            self.value.release(agent_id)
        }
    }

    pub(crate) fn record_outcome(&mut self, agent_id: &str, success: bool, latency_ms: f64) {
        if self.on {
            self.value.record_outcome(agent_id, success, latency_ms)
        }
    }

    pub(crate) fn upsert_agent(&mut self, spec: AgentSpec) {
        if self.on {
            self.value.upsert_agent(spec)
        }
    }

    pub(crate) fn set_schedulable(&mut self, agent_id: &str, yes: bool) {
        if self.on {
            self.value.set_schedulable(agent_id, yes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_off_part_drops_updates_and_an_on_part_applies_them() {
        let mut on = Kept::new(BTreeSet::new(), true);
        let mut off = Kept::new(BTreeSet::new(), false);
        assert!(on.insert(1) && !off.insert(1));
        assert_eq!((on.len(), off.len()), (1, 0));
        assert!(on.remove(&1) && !off.remove(&1));
        assert!(on.is_empty());
    }
}
