//! Given/when/then specs of the scheduler's rules: ordering, eligibility,
//! capacity, waiting without head-of-line blocking across capability sets,
//! agent lifecycle, idempotency, and peek/apply equivalence. Shared helpers
//! for the property tests live here too.

use super::*;

pub(super) fn config(strategy: Strategy) -> SchedulerConfig {
    SchedulerConfig {
        default_strategy: strategy,
        pool_strategies: BTreeMap::new(),
    }
}

pub(super) fn agent(id: &str, pool: &str, caps: &[&str], capacity: u32, weight: u32) -> AgentSpec {
    AgentSpec {
        id: id.into(),
        pool: pool.into(),
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        capacity,
        weight,
    }
}

pub(super) fn key(n: u64) -> StepKey {
    StepKey {
        workflow_id: format!("wf-{n}"),
        step_id: "s".into(),
        attempt: 1,
    }
}

pub(super) fn step(n: u64, pool: &str, caps: &[&str], priority: i32) -> ReadyStep {
    ReadyStep {
        key: key(n),
        pool: pool.into(),
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        priority,
        ready_seq: n,
    }
}

fn sched(strategy: Strategy) -> Scheduler {
    Scheduler::new(config(strategy))
}

#[test]
fn given_capable_agent_when_step_ready_then_assigned_and_load_counted() {
    let mut s = sched(Strategy::LeastConnections);
    s.upsert_agent(agent("a", "p", &["llm", "code"], 2, 1));
    s.enqueue(step(1, "p", &["code"], 0));
    let a = s.assign_next();
    assert_eq!(
        a,
        Some(Assignment {
            key: key(1),
            agent_id: "a".into(),
            pool: "p".into(),
            strategy: Strategy::LeastConnections,
        })
    );
    assert_eq!(s.agent_load("a"), Some((1, 2)));
    assert_eq!(s.queue_depth("p"), 0);
    assert_eq!(s.assign_next(), None);
}

#[test]
fn given_mixed_priorities_when_assigning_then_priority_then_ready_order() {
    let mut s = sched(Strategy::RoundRobin);
    s.upsert_agent(agent("a", "p", &[], 10, 1));
    s.enqueue(step(1, "p", &[], 0));
    s.enqueue(step(2, "p", &[], 5));
    s.enqueue(step(3, "p", &[], 5));
    s.enqueue(step(4, "p", &[], -1));
    let order: Vec<StepKey> = std::iter::from_fn(|| s.assign_next())
        .map(|a| a.key)
        .collect();
    assert_eq!(order, vec![key(2), key(3), key(1), key(4)]);
}

#[test]
fn given_no_eligible_agent_when_step_ready_then_it_waits_visibly_and_runs_later() {
    let mut s = sched(Strategy::LeastConnections);
    s.upsert_agent(agent("cpu", "p", &["cpu"], 1, 1));
    s.enqueue(step(1, "p", &["gpu"], 0));
    assert_eq!(s.assign_next(), None);
    assert_eq!(s.queue_depth("p"), 1);
    assert_eq!(s.queue_depths().get("p"), Some(&1));
    let stats = s.class_stats();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].eligible_agents, 0, "starved: nobody has gpu");
    s.upsert_agent(agent("gpu", "p", &["gpu", "cpu"], 1, 1));
    assert_eq!(s.assign_next().map(|a| a.agent_id), Some("gpu".into()));
    assert_eq!(s.queue_depth("p"), 0);
}

#[test]
fn given_blocked_high_priority_step_when_other_capability_can_run_then_it_does() {
    let mut s = sched(Strategy::LeastConnections);
    s.upsert_agent(agent("cpu", "p", &["cpu"], 5, 1));
    s.enqueue(step(1, "p", &["gpu"], 100));
    s.enqueue(step(2, "p", &["cpu"], 1));
    let a = s.assign_next();
    assert_eq!(a.map(|a| a.key), Some(key(2)));
    assert_eq!(s.queue_depth("p"), 1);
    assert!(s.is_queued(&key(1)));
}

#[test]
fn given_full_agent_when_more_steps_then_they_wait_until_release() {
    let mut s = sched(Strategy::LeastConnections);
    s.upsert_agent(agent("a", "p", &[], 2, 1));
    for n in 1..=3 {
        s.enqueue(step(n, "p", &[], 0));
    }
    assert!(s.assign_next().is_some());
    assert!(s.assign_next().is_some());
    assert_eq!(s.assign_next(), None);
    assert_eq!(s.agent_load("a"), Some((2, 2)));
    let stats = s.class_stats();
    assert_eq!(
        (stats[0].eligible_agents, stats[0].available_agents),
        (1, 0)
    );
    s.release("a");
    assert_eq!(s.assign_next().map(|a| a.key), Some(key(3)));
}

#[test]
fn given_draining_agent_when_steps_ready_then_none_assigned_and_load_kept() {
    let mut s = sched(Strategy::RoundRobin);
    s.upsert_agent(agent("a", "p", &[], 4, 1));
    s.enqueue(step(1, "p", &[], 0));
    assert!(s.assign_next().is_some());
    s.set_schedulable("a", false);
    s.enqueue(step(2, "p", &[], 0));
    assert_eq!(s.assign_next(), None);
    assert_eq!(s.agent_load("a"), Some((1, 4)));
    s.release("a");
    assert_eq!(s.agent_load("a"), Some((0, 4)));
    s.set_schedulable("a", true);
    assert_eq!(s.assign_next().map(|a| a.key), Some(key(2)));
}

#[test]
fn given_other_pool_agent_when_step_ready_then_not_assigned() {
    let mut s = sched(Strategy::Weighted);
    s.upsert_agent(agent("a", "east", &[], 4, 1));
    s.enqueue(step(1, "west", &[], 0));
    assert_eq!(s.assign_next(), None);
    assert_eq!(s.queue_depths().get("west"), Some(&1));
    assert_eq!(s.queue_depths().get("east"), Some(&0));
}

#[test]
fn given_queued_key_when_enqueued_again_then_ignored_and_dequeue_removes_once() {
    let mut s = sched(Strategy::LeastConnections);
    s.enqueue(step(1, "p", &["x"], 0));
    s.enqueue(step(1, "p", &["x"], 9));
    assert_eq!(s.queue_depth("p"), 1);
    assert!(s.dequeue(&key(1)));
    assert!(!s.dequeue(&key(1)));
    assert_eq!(s.queue_depth("p"), 0);
    s.upsert_agent(agent("a", "p", &["x"], 1, 1));
    assert_eq!(s.assign_next(), None);
}

#[test]
fn given_removed_agent_when_steps_ready_then_none_assigned() {
    let mut s = sched(Strategy::PerformanceBased);
    s.upsert_agent(agent("a", "p", &[], 4, 1));
    s.remove_agent("a");
    s.enqueue(step(1, "p", &[], 0));
    assert_eq!(s.assign_next(), None);
    assert_eq!(s.agent_load("a"), None);
    s.release("a");
    s.record_outcome("a", true, 1.0);
}

#[test]
fn given_reregistration_when_capacity_shrinks_then_in_flight_kept_and_respected() {
    let mut s = sched(Strategy::LeastConnections);
    s.upsert_agent(agent("a", "p", &[], 3, 1));
    for n in 1..=3 {
        s.enqueue(step(n, "p", &[], 0));
    }
    assert!(s.assign_next().is_some());
    assert!(s.assign_next().is_some());
    s.upsert_agent(agent("a", "p", &[], 1, 1));
    assert_eq!(s.agent_load("a"), Some((2, 1)));
    assert_eq!(s.assign_next(), None);
    s.release("a");
    assert_eq!(s.assign_next(), None);
    s.release("a");
    assert_eq!(s.assign_next().map(|a| a.key), Some(key(3)));
}

#[test]
fn given_agent_moves_pool_and_capabilities_when_upserted_then_matching_follows() {
    let mut s = sched(Strategy::RoundRobin);
    s.upsert_agent(agent("a", "p", &["x"], 2, 1));
    s.enqueue(step(1, "q", &["y"], 0));
    assert_eq!(s.assign_next(), None);
    s.upsert_agent(agent("a", "q", &["y", "y"], 2, 1));
    assert_eq!(s.assign_next().map(|a| a.pool), Some("q".into()));
    s.enqueue(step(2, "p", &["x"], 0));
    assert_eq!(s.assign_next(), None);
}

#[test]
fn given_duplicate_and_unordered_capabilities_when_matching_then_treated_as_sets() {
    let mut s = sched(Strategy::LeastConnections);
    s.upsert_agent(agent("a", "p", &["b", "a", "a"], 2, 1));
    s.enqueue(step(1, "p", &["a", "b", "b"], 0));
    s.enqueue(step(2, "p", &["a", "c"], 0));
    assert_eq!(s.assign_next().map(|a| a.key), Some(key(1)));
    assert_eq!(s.assign_next(), None);
}

#[test]
fn given_peek_when_applied_then_same_as_assign_next() {
    let mut a = sched(Strategy::Weighted);
    a.upsert_agent(agent("x", "p", &[], 5, 3));
    a.upsert_agent(agent("y", "p", &[], 5, 1));
    for n in 0..6 {
        a.enqueue(step(n, "p", &[], 0));
    }
    let mut b = a.clone();
    for _ in 0..6 {
        let peeked = a.peek_next();
        assert_eq!(peeked, a.peek_next(), "peek does not change state");
        let Some(p) = peeked else { break };
        a.apply_assignment(&p.key, &p.agent_id);
        assert_eq!(b.assign_next(), Some(p));
    }
}

#[test]
fn given_assignment_fact_for_unqueued_step_when_applied_then_load_counts() {
    let mut s = sched(Strategy::LeastConnections);
    s.upsert_agent(agent("a", "p", &[], 1, 1));
    s.apply_assignment(&key(7), "a");
    assert_eq!(s.agent_load("a"), Some((1, 1)));
    s.enqueue(step(1, "p", &[], 0));
    assert_eq!(s.assign_next(), None);
    s.apply_assignment(&key(1), "a");
    assert_eq!(s.agent_load("a"), Some((2, 1)), "facts win over capacity");
    assert_eq!(s.queue_depth("p"), 0);
}

#[test]
fn given_weights_5_1_1_when_assigning_then_nginx_sequence() {
    let mut s = sched(Strategy::Weighted);
    s.upsert_agent(agent("a", "p", &[], 100, 5));
    s.upsert_agent(agent("b", "p", &[], 100, 1));
    s.upsert_agent(agent("c", "p", &[], 100, 1));
    let mut seq = String::new();
    for n in 0..14 {
        s.enqueue(step(n, "p", &[], 0));
        let a = s.assign_next().map(|a| a.agent_id).unwrap_or_default();
        s.release(&a);
        seq.push_str(&a);
    }
    assert_eq!(seq, "aabacaaaabacaa");
}

#[test]
fn given_round_robin_when_agents_skip_then_rotation_continues_by_id() {
    let mut s = sched(Strategy::RoundRobin);
    for id in ["a", "b", "c"] {
        s.upsert_agent(agent(id, "p", &[], 10, 1));
    }
    let mut next = || {
        let n = s.queue_depth("p") as u64 + 1000;
        s.enqueue(step(n, "p", &[], 0));
        s.assign_next().map(|a| a.agent_id).unwrap_or_default()
    };
    assert_eq!([next(), next(), next(), next()], ["a", "b", "c", "a"]);
    s.set_schedulable("b", false);
    let mut next = || {
        s.enqueue(step(2000, "p", &[], 0));
        s.assign_next().map(|a| a.agent_id).unwrap_or_default()
    };
    assert_eq!([next(), next(), next()], ["c", "a", "c"]);
}

#[test]
fn given_least_connections_when_loads_differ_then_least_loaded_then_lowest_id() {
    let mut s = sched(Strategy::LeastConnections);
    s.upsert_agent(agent("b", "p", &[], 10, 1));
    s.upsert_agent(agent("a", "p", &[], 10, 1));
    s.apply_assignment(&key(90), "a");
    s.enqueue(step(1, "p", &[], 0));
    s.enqueue(step(2, "p", &[], 0));
    s.enqueue(step(3, "p", &[], 0));
    let got: Vec<String> = std::iter::from_fn(|| s.assign_next())
        .map(|a| a.agent_id)
        .collect();
    assert_eq!(got, ["b", "a", "b"]);
}

#[test]
fn given_performance_based_when_one_agent_slow_then_fast_one_scores_higher() {
    let mut s = sched(Strategy::PerformanceBased);
    s.upsert_agent(agent("slow", "p", &[], 4, 1));
    s.upsert_agent(agent("fast", "p", &[], 4, 1));
    s.record_outcome("slow", true, 100.0);
    s.record_outcome("fast", true, 10.0);
    s.enqueue(step(1, "p", &[], 0));
    assert_eq!(s.assign_next().map(|a| a.agent_id), Some("fast".into()));
    assert_eq!(s.agent_perf("fast"), Some((1.0, Some(10.0))));
}

#[test]
fn given_pool_strategies_when_assigning_then_each_pool_uses_its_own() {
    let mut cfg = config(Strategy::RoundRobin);
    cfg.pool_strategies.insert("w".into(), Strategy::Weighted);
    let mut s = Scheduler::new(cfg);
    s.upsert_agent(agent("a", "w", &[], 1, 1));
    s.upsert_agent(agent("b", "r", &[], 1, 1));
    s.enqueue(step(1, "w", &[], 0));
    s.enqueue(step(2, "r", &[], 0));
    let got: Vec<Strategy> = std::iter::from_fn(|| s.assign_next())
        .map(|a| a.strategy)
        .collect();
    assert_eq!(got, [Strategy::Weighted, Strategy::RoundRobin]);
}
