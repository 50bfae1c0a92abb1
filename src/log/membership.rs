//! Partition ownership: which partitions of a topic this process works on.
//!
//! On Kafka this is the consumer group: instances sharing a group id split
//! the partitions, and a rebalance moves them when an instance joins, leaves
//! or dies. The embedded log has one process, which owns every partition.
//!
//! Invariants:
//! - A partition is worked on only between its `Assigned` and its
//!   `Revoked`. The owner answers `Revoked` through `done` only after it has
//!   stopped that partition's loop, flushed its projection and committed its
//!   offsets; the rebalance (and with it the next owner) waits for that
//!   answer, up to a bound.
//! - Dropping the [`Membership`] leaves the group.

use std::sync::mpsc;

/// A change of the partitions this process owns.
#[derive(Debug)]
pub enum OwnershipChange {
    /// These partitions are now owned too (rebalances are incremental:
    /// what is not revoked stays owned).
    Assigned(Vec<u32>),
    /// These partitions are no longer owned.
    Revoked {
        partitions: Vec<u32>,
        /// Send once the partitions are flushed and committed.
        done: mpsc::Sender<()>,
    },
}

/// A live membership: ownership changes arrive on `changes`.
pub struct Membership {
    pub changes: tokio::sync::mpsc::UnboundedReceiver<OwnershipChange>,
    /// How long a partition's journal must have been quiet before a loop
    /// starting on it decides anything. A member expelled from its group
    /// (it missed heartbeats) learns so only at its next heartbeat and may
    /// append until then; without broker transactions nothing fences it, so
    /// the new owner waits that out. Zero where no other process can write
    /// (the embedded log).
    pub takeover_quiet: std::time::Duration,
    /// Whatever keeps the membership alive (a group client, a sender).
    _guard: Box<dyn std::any::Any + Send + Sync>,
}

impl Membership {
    pub fn new(
        changes: tokio::sync::mpsc::UnboundedReceiver<OwnershipChange>,
        guard: Box<dyn std::any::Any + Send + Sync>,
    ) -> Self {
        Membership {
            changes,
            takeover_quiet: std::time::Duration::ZERO,
            _guard: guard,
        }
    }

    /// Owns `partitions` for good (one process, no group).
    pub fn fixed(partitions: Vec<u32>) -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let _ = tx.send(OwnershipChange::Assigned(partitions));
        Membership::new(rx, Box::new(tx))
    }
}
