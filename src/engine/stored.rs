//! Partition states and the fleet as the projection stores hold them, for
//! the read side: `baton report`, `inspect bottlenecks|agents` and the HTTP
//! API load them through these functions, so they show the same figures.
//!
//! Invariants: reads only — a partition without a store on disk reads as
//! empty and no store is created; states come back indexed by partition
//! number (index = partition), which [`super::report::build`] relies on to
//! say which partitions detected a finding.

use std::collections::BTreeMap;
use std::path::Path;

use crate::domain::engine::{AgentView, EngineConfig, PartitionState};
use crate::store::{JournalIndex, ProjectionStore, StoreError};

/// How much of each partition [`load_states`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// Everything the report shows: non-terminal workflows (queues, load),
    /// agents, pool usage and the bottleneck projection. Reads every stored
    /// workflow, so it costs in proportion to history.
    Full,
    /// Only the bottleneck projection: enough for the active findings (one
    /// read per partition, whatever the history).
    Findings,
}

/// The stored state of each of `partitions`, in that order.
pub fn load_states(
    data_dir: &Path,
    partitions: &[u32],
    load: Load,
) -> Result<Vec<PartitionState>, StoreError> {
    let mut out = Vec::with_capacity(partitions.len());
    for &p in partitions {
        let mut state = PartitionState::new(EngineConfig::default());
        if let Some(store) = ProjectionStore::open_existing(data_dir, p)? {
            if load == Load::Full {
                let mut index = JournalIndex::default();
                store.load_into(&mut state, &mut index, |_| {})?;
            }
            // Whatever windows the engine used, show its figures.
            if let Some(stats) = store.bottlenecks()? {
                state.bottlenecks = stats;
            }
        }
        out.push(state);
    }
    Ok(out)
}

/// Merges one partition's views of agents into `fleet`, by agent id. Every
/// partition sees every agent's lifecycle but only its own share of the
/// work: counts and usage are summed; the EWMA latency is the worst seen;
/// health, labels, heartbeat and reported load come from the agent's home
/// partition (the one that judges it; its view carries no forwarding
/// label), or from the freshest heartbeat when no home view is at hand.
pub fn merge_agents(fleet: &mut BTreeMap<String, AgentView>, views: Vec<AgentView>) {
    for a in views {
        match fleet.get_mut(&a.id) {
            Some(seen) => {
                seen.successes += a.successes;
                seen.failures += a.failures;
                seen.usage.add(&a.usage);
                seen.ewma_latency_ms = seen.ewma_latency_ms.max(a.ewma_latency_ms);
                let authority = match (seen.forwarded(), a.forwarded()) {
                    (true, false) => true,
                    (false, true) => false,
                    _ => a.last_heartbeat_at > seen.last_heartbeat_at,
                };
                if authority {
                    seen.health = a.health;
                    seen.last_heartbeat_at = a.last_heartbeat_at;
                    seen.reported_in_flight = a.reported_in_flight;
                    seen.labels = a.labels;
                }
            }
            None => {
                fleet.insert(a.id.clone(), a);
            }
        }
    }
}

/// The fleet now: the stored agents of `partitions`, merged.
pub fn fleet(
    data_dir: &Path,
    partitions: &[u32],
) -> Result<BTreeMap<String, AgentView>, StoreError> {
    let mut fleet = BTreeMap::new();
    for &p in partitions {
        if let Some(store) = ProjectionStore::open_existing(data_dir, p)? {
            merge_agents(&mut fleet, store.agents()?);
        }
    }
    Ok(fleet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::engine::HOME_PARTITION_LABEL;
    use crate::domain::events::{AgentHealth, Timestamp, Usage};

    fn view(health: AgentHealth, heartbeat: i64, forwarded: bool, successes: u64) -> AgentView {
        let mut labels = BTreeMap::from([("team".to_string(), "a".to_string())]);
        if forwarded {
            labels.insert(HOME_PARTITION_LABEL.into(), "1".into());
        }
        AgentView {
            id: "a1".into(),
            pool: "default".into(),
            capabilities: vec![],
            capacity: 4,
            weight: 1,
            labels,
            heartbeat_interval_ms: 1000,
            health,
            draining: false,
            saturated: false,
            last_heartbeat_at: Timestamp(heartbeat),
            reported_in_flight: heartbeat as i32,
            cpu: None,
            memory_bytes: None,
            successes,
            failures: 0,
            ewma_latency_ms: 0.0,
            usage: Usage::default(),
        }
    }

    #[test]
    fn the_home_view_decides_health_and_labels_and_work_is_summed() {
        use AgentHealth::*;
        // (views in partition order) → (health, reported load, forwarded label shown)
        let table = [
            (
                vec![view(Degraded, 9, true, 1), view(Healthy, 5, false, 2)],
                (Healthy, 5, false),
            ),
            (
                vec![view(Healthy, 5, false, 1), view(Degraded, 9, true, 2)],
                (Healthy, 5, false),
            ),
            (
                vec![view(Healthy, 5, true, 1), view(Lost, 9, true, 2)],
                (Lost, 9, true),
            ),
            (
                vec![view(Lost, 9, false, 1), view(Healthy, 5, false, 2)],
                (Lost, 9, false),
            ),
        ];
        for (views, (health, load, label)) in table {
            let mut fleet = BTreeMap::new();
            for v in views {
                merge_agents(&mut fleet, vec![v]);
            }
            let a = &fleet["a1"];
            assert_eq!(
                (a.health, a.reported_in_flight, a.forwarded()),
                (health, load, label)
            );
            assert_eq!(a.successes, 3);
            assert_eq!(a.labels.get("team").map(String::as_str), Some("a"));
        }
    }
}
