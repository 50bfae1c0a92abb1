//! Agent fan-out (pure): an agent registers, heartbeats and deregisters
//! once, on the ingress partition its id hashes to (its *home*), and the
//! home partition forwards each accepted lifecycle fact to every other
//! ingress partition, so every partition's scheduler knows the agent.
//! The home also judges the agent's health (late heartbeats, error rate)
//! and forwards its verdicts (`AgentHealthChanged`, `AgentLost`); the
//! forwarded registration carries the label [`HOME_PARTITION_LABEL`], and a
//! partition keeps no heartbeat timer for an agent so labelled. A lagging
//! home partition therefore delays what the others learn about its agents,
//! but never makes them declare a live agent lost.
//!
//! Invariants:
//! - Only the home partition forwards, so a forwarded copy (which lands on
//!   a non-home partition) is never forwarded again, and a client that still
//!   writes to every partition itself is merely redundant.
//! - A forwarded copy is derived from the journal fact, not from the input:
//!   its id is a function of the fact's id and the target partition, so a
//!   re-publication after a crash (recovery republishes the results of the
//!   journal tail) carries the same id and the target's dedup window drops
//!   it, and ids stay unique across partitions.
//! - The copy is an ordinary ingress event (causation = the home fact), so
//!   each partition's journal records what its scheduler saw and replay
//!   stays a fold of one partition's journal.

use crate::domain::engine::HOME_PARTITION_LABEL;
use crate::domain::events::*;
use crate::log::partition_for_key;

/// The agent a lifecycle fact is about, and the ingress payload that
/// forwards it from `home`; None for every other fact.
fn forwarded_payload(fact: &Payload, home: u32) -> Option<(&str, Payload)> {
    match fact {
        Payload::AgentRegistered(r) => {
            let mut labels = r.labels.clone();
            labels.insert(HOME_PARTITION_LABEL.to_string(), home.to_string());
            Some((
                &r.agent_id,
                Payload::RegisterAgent(RegisterAgent {
                    agent_id: r.agent_id.clone(),
                    pool: r.pool.clone(),
                    capabilities: r.capabilities.clone(),
                    capacity: r.capacity,
                    weight: r.weight,
                    labels,
                    heartbeat_interval_ms: r.heartbeat_interval_ms,
                }),
            ))
        }
        Payload::AgentHeartbeat(h) => Some((&h.agent_id, Payload::AgentHeartbeat(h.clone()))),
        // The home's health verdicts: the other partitions follow them
        // instead of judging the agent by forwarded heartbeats, whose
        // arrival depends on how far behind the home partition is.
        Payload::AgentHealthChanged(c) => {
            Some((&c.agent_id, Payload::AgentHealthChanged(c.clone())))
        }
        Payload::AgentLost(l) => Some((&l.agent_id, Payload::AgentLost(l.clone()))),
        Payload::AgentDeregistered(d) => Some((
            &d.agent_id,
            Payload::DeregisterAgent(DeregisterAgent {
                agent_id: d.agent_id.clone(),
                reason: d.reason.clone(),
            }),
        )),
        _ => None,
    }
}

/// Index space of forwarded ids, apart from the small indices facts and
/// status messages derive with.
const FANOUT_INDEX: u32 = 1 << 20;

/// The ingress events partition `p` of `partitions` forwards for `fact`:
/// (target partition, agent id as key, event). Empty unless `fact` is an
/// agent lifecycle fact and `p` is the agent's home partition.
pub fn fanout_for(fact: &Envelope, p: u32, partitions: u32) -> Vec<(u32, Envelope)> {
    let Some((agent, payload)) = forwarded_payload(&fact.payload, p) else {
        return Vec::new();
    };
    if partitions < 2 || home_partition(agent, partitions) != p {
        return Vec::new();
    }
    (0..partitions)
        .filter(|q| *q != p)
        .map(|q| {
            let env = Envelope {
                event_id: EventId::derived(&fact.event_id, FANOUT_INDEX + q),
                correlation_id: agent.to_string(),
                causation_id: Some(fact.event_id),
                occurred_at: fact.occurred_at,
                producer: fact.producer.clone(),
                payload: payload.clone(),
            };
            (q, env)
        })
        .collect()
}

/// The home ingress partition of an agent: where it sends its lifecycle
/// events (the same murmur2 partitioning as keyed producers use).
pub fn home_partition(agent_id: &str, partitions: u32) -> u32 {
    partition_for_key(agent_id.as_bytes(), partitions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn fact(payload: Payload) -> Envelope {
        Envelope {
            event_id: EventId::random(),
            correlation_id: "a-1".into(),
            causation_id: Some(EventId::random()),
            occurred_at: Timestamp(1_000),
            producer: "baton-engine/0".into(),
            payload,
        }
    }

    fn heartbeat() -> Payload {
        Payload::AgentHeartbeat(AgentHeartbeat {
            agent_id: "a-1".into(),
            in_flight: 2,
            cpu: None,
            memory_bytes: None,
        })
    }

    #[test]
    fn the_home_partition_forwards_to_every_other_one() {
        let home = home_partition("a-1", 4);
        let f = fact(heartbeat());
        let out = fanout_for(&f, home, 4);
        let targets: BTreeSet<u32> = out.iter().map(|(q, _)| *q).collect();
        let expected: BTreeSet<u32> = (0..4).filter(|q| *q != home).collect();
        assert_eq!(targets, expected);
        for (_, e) in &out {
            assert_eq!(e.payload, heartbeat());
            assert_eq!(e.causation_id, Some(f.event_id));
            assert_eq!(e.correlation_id, "a-1");
        }
        let ids: BTreeSet<_> = out.iter().map(|(_, e)| e.event_id).collect();
        assert_eq!(ids.len(), 3, "one id per target partition");
        // Deterministic: a re-publication carries the same ids.
        let again: BTreeSet<_> = fanout_for(&f, home, 4)
            .into_iter()
            .map(|(_, e)| e.event_id)
            .collect();
        assert_eq!(ids, again);
    }

    #[test]
    fn other_partitions_and_single_partition_logs_forward_nothing() {
        let home = home_partition("a-1", 4);
        let f = fact(heartbeat());
        for p in (0..4).filter(|p| *p != home) {
            assert!(fanout_for(&f, p, 4).is_empty(), "partition {p}");
        }
        assert!(fanout_for(&f, 0, 1).is_empty());
    }

    #[test]
    fn lifecycle_facts_become_their_ingress_requests_and_others_nothing() {
        let reg = AgentRegistered {
            agent_id: "a-1".into(),
            pool: "gpu".into(),
            capabilities: vec!["x".into()],
            capacity: 3,
            weight: 2,
            labels: Default::default(),
            heartbeat_interval_ms: 500,
        };
        let home = home_partition("a-1", 3);
        let out = fanout_for(&fact(Payload::AgentRegistered(reg)), home, 3);
        assert!(matches!(
            &out[0].1.payload,
            Payload::RegisterAgent(r) if r.capacity == 3 && r.weight == 2 && r.pool == "gpu"
                && r.labels.get(HOME_PARTITION_LABEL) == Some(&home.to_string())
        ));
        let dereg = AgentDeregistered {
            agent_id: "a-1".into(),
            reason: Some("bye".into()),
        };
        let out = fanout_for(&fact(Payload::AgentDeregistered(dereg)), home, 3);
        assert!(matches!(
            &out[0].1.payload,
            Payload::DeregisterAgent(d) if d.reason.as_deref() == Some("bye")
        ));
        let lost = AgentLost {
            agent_id: "a-1".into(),
            last_heartbeat_at: Timestamp(0),
            requeued: vec![],
        };
        let out = fanout_for(&fact(Payload::AgentLost(lost.clone())), home, 3);
        assert_eq!(out[0].1.payload, Payload::AgentLost(lost));
        let ready = StepReady {
            workflow_id: "w".into(),
            step_id: "s".into(),
            attempt: 1,
            pool: "p".into(),
            priority: 0,
        };
        assert!(fanout_for(&fact(Payload::StepReady(ready)), home, 3).is_empty());
    }
}
