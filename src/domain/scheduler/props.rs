//! Strategy properties over 10,000 assignments, and a proptest over random
//! operation sequences checking the scheduler against a brute-force model:
//! capacity and capabilities are never violated, the chosen step is the best
//! assignable one, nothing assignable is left waiting, least_connections picks
//! a least-loaded agent, and a replay of the decisions through
//! `apply_assignment` reaches the same state (determinism).

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::{
    any, prop_assert, prop_assert_eq, prop_oneof, proptest, Just, ProptestConfig, TestCaseError,
};
use proptest::strategy::Strategy as _;

use super::tests::{agent, config, key, step};
use super::{AgentSpec, ReadyStep, Scheduler, StepKey, Strategy};

const N: u64 = 10_000;

#[test]
fn round_robin_spreads_evenly_within_one() {
    let mut s = Scheduler::new(config(Strategy::RoundRobin));
    for i in 0..7 {
        s.upsert_agent(agent(&format!("a{i}"), "p", &["x"], 3, 1));
    }
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut held = VecDeque::new();
    for n in 0..N {
        s.enqueue(step(n, "p", &["x"], 0));
        let Some(a) = s.assign_next() else {
            panic!("no assignment at {n}")
        };
        *counts.entry(a.agent_id.clone()).or_default() += 1;
        held.push_back(a.agent_id);
        if held.len() > 5 {
            if let Some(done) = held.pop_front() {
                s.release(&done);
            }
        }
    }
    let max = counts.values().max().copied().unwrap_or(0);
    let min = counts.values().min().copied().unwrap_or(0);
    assert_eq!(counts.len(), 7);
    assert!(max - min <= 1, "{counts:?}");
}

#[test]
fn weighted_three_to_one_lands_75_25() {
    let mut s = Scheduler::new(config(Strategy::Weighted));
    s.upsert_agent(agent("heavy", "p", &[], 1_000, 3));
    s.upsert_agent(agent("light", "p", &[], 1_000, 1));
    let mut heavy = 0u64;
    for n in 0..N {
        s.enqueue(step(n, "p", &[], 0));
        let Some(a) = s.assign_next() else {
            panic!("no assignment at {n}")
        };
        if a.agent_id == "heavy" {
            heavy += 1;
        }
        s.release(&a.agent_id);
    }
    let share = heavy as f64 / N as f64;
    assert!((share - 0.75).abs() <= 0.02, "heavy share {share}");
}

/// One step arrives per tick; the fast agent finishes in 1 tick, the slow in
/// 5. Returns the fast agent's share of the assignments.
fn fast_share(strategy: Strategy) -> f64 {
    let mut s = Scheduler::new(config(strategy));
    // The slow agent sorts first, so id tie-breaks favour it, not the fast one.
    s.upsert_agent(agent("a-slow", "p", &[], 8, 1));
    s.upsert_agent(agent("b-fast", "p", &[], 8, 1));
    let mut done_at: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut fast = 0u64;
    for tick in 0..N {
        for agent_id in done_at.remove(&tick).unwrap_or_default() {
            let latency = if agent_id == "b-fast" { 10.0 } else { 50.0 };
            s.release(&agent_id);
            s.record_outcome(&agent_id, true, latency);
        }
        s.enqueue(step(tick, "p", &[], 0));
        let Some(a) = s.assign_next() else {
            panic!("no assignment at tick {tick}")
        };
        let ticks = if a.agent_id == "b-fast" {
            fast += 1;
            1
        } else {
            5
        };
        done_at.entry(tick + ticks).or_default().push(a.agent_id);
    }
    fast as f64 / N as f64
}

#[test]
fn least_connections_favours_the_faster_agent() {
    let share = fast_share(Strategy::LeastConnections);
    assert!(share > 0.7, "fast share {share}");
}

#[test]
fn performance_based_favours_the_faster_agent() {
    let share = fast_share(Strategy::PerformanceBased);
    assert!(share > 0.9, "fast share {share}");
}

#[test]
fn round_robin_ignores_speed() {
    let share = fast_share(Strategy::RoundRobin);
    assert!((share - 0.5).abs() < 0.01, "fast share {share}");
}

// ---- random operation sequences against a brute-force model ----

const POOLS: [&str; 2] = ["p", "q"];
const CAPS: [&[&str]; 4] = [&[], &["x"], &["y"], &["x", "y"]];

#[derive(Clone, Debug)]
enum Op {
    Upsert {
        agent: u8,
        pool: u8,
        caps: u8,
        capacity: u32,
        weight: u32,
    },
    Schedulable(u8, bool),
    Remove(u8),
    Enqueue {
        pool: u8,
        caps: u8,
        priority: i32,
    },
    Dequeue(u64),
    Assign,
    Release(u8),
    Outcome(u8, bool, u16),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        2 => (0..6u8, 0..2u8, 0..4u8, 0..4u32, 0..4u32).prop_map(|(agent, pool, caps, capacity, weight)| {
            Op::Upsert { agent, pool, caps, capacity, weight }
        }),
        1 => (0..6u8, any::<bool>()).prop_map(|(a, y)| Op::Schedulable(a, y)),
        1 => (0..6u8).prop_map(Op::Remove),
        4 => (0..2u8, 0..4u8, -2..3i32).prop_map(|(pool, caps, priority)| Op::Enqueue { pool, caps, priority }),
        1 => (0..40u64).prop_map(Op::Dequeue),
        5 => Just(Op::Assign),
        3 => (0..6u8).prop_map(Op::Release),
        2 => (0..6u8, any::<bool>(), 0..500u16).prop_map(|(a, ok, l)| Op::Outcome(a, ok, l)),
    ]
}

fn strategy_of(i: u8) -> Strategy {
    match i % 4 {
        0 => Strategy::RoundRobin,
        1 => Strategy::LeastConnections,
        2 => Strategy::Weighted,
        _ => Strategy::PerformanceBased,
    }
}

#[derive(Clone, Debug)]
struct ModelAgent {
    pool: String,
    caps: Vec<String>,
    capacity: u32,
    schedulable: bool,
    in_flight: u32,
}

fn caps_of(i: u8) -> Vec<String> {
    CAPS[usize::from(i)].iter().map(|c| c.to_string()).collect()
}

fn eligible(a: &ModelAgent, st: &ReadyStep) -> bool {
    a.pool == st.pool
        && a.schedulable
        && a.in_flight < a.capacity
        && st.capabilities.iter().all(|c| a.caps.contains(c))
}

/// A scheduler call as the engine makes it (what it folds from the journal).
#[derive(Clone, Debug)]
enum Call {
    Upsert(AgentSpec),
    Schedulable(String, bool),
    Remove(String),
    Enqueue(ReadyStep),
    Dequeue(StepKey),
    Assigned(StepKey, String),
    Release(String),
    Outcome(String, bool, f64),
}

fn apply(s: &mut Scheduler, call: &Call) {
    match call {
        Call::Upsert(spec) => s.upsert_agent(spec.clone()),
        Call::Schedulable(a, y) => s.set_schedulable(a, *y),
        Call::Remove(a) => s.remove_agent(a),
        Call::Enqueue(st) => s.enqueue(st.clone()),
        Call::Dequeue(k) => {
            s.dequeue(k);
        }
        Call::Assigned(k, a) => s.apply_assignment(k, a),
        Call::Release(a) => s.release(a),
        Call::Outcome(a, ok, l) => s.record_outcome(a, *ok, *l),
    }
}

/// Turns a generated op into a call (None for `Assign`); `seq` numbers steps.
fn call_of(op: &Op, seq: u64) -> Option<Call> {
    let id = |a: &u8| format!("agent-{a}");
    Some(match op {
        Op::Upsert {
            agent: a,
            pool,
            caps,
            capacity,
            weight,
        } => Call::Upsert(AgentSpec {
            id: id(a),
            pool: POOLS[usize::from(*pool)].into(),
            capabilities: caps_of(*caps),
            capacity: *capacity,
            weight: *weight,
        }),
        Op::Schedulable(a, y) => Call::Schedulable(id(a), *y),
        Op::Remove(a) => Call::Remove(id(a)),
        Op::Enqueue {
            pool,
            caps,
            priority,
        } => {
            let caps: Vec<&str> = CAPS[usize::from(*caps)].to_vec();
            Call::Enqueue(step(seq, POOLS[usize::from(*pool)], &caps, *priority))
        }
        Op::Dequeue(n) => Call::Dequeue(key(*n)),
        Op::Assign => return None,
        Op::Release(a) => Call::Release(id(a)),
        Op::Outcome(a, ok, l) => Call::Outcome(id(a), *ok, f64::from(*l)),
    })
}

/// Folds one call into the model.
fn model_apply(
    call: &Call,
    agents: &mut BTreeMap<String, ModelAgent>,
    queued: &mut BTreeMap<StepKey, ReadyStep>,
) {
    match call {
        Call::Upsert(spec) => {
            let prev = agents.get(&spec.id).cloned();
            let mut caps = spec.capabilities.clone();
            caps.sort();
            agents.insert(
                spec.id.clone(),
                ModelAgent {
                    pool: spec.pool.clone(),
                    caps,
                    capacity: spec.capacity,
                    schedulable: prev.as_ref().is_none_or(|p| p.schedulable),
                    in_flight: prev.map_or(0, |p| p.in_flight),
                },
            );
        }
        Call::Schedulable(a, y) => {
            if let Some(m) = agents.get_mut(a) {
                m.schedulable = *y;
            }
        }
        Call::Remove(a) => {
            agents.remove(a);
        }
        Call::Enqueue(st) => {
            queued.entry(st.key.clone()).or_insert_with(|| st.clone());
        }
        Call::Dequeue(k) => {
            queued.remove(k);
        }
        Call::Release(a) => {
            if let Some(m) = agents.get_mut(a) {
                m.in_flight = m.in_flight.saturating_sub(1);
            }
        }
        Call::Assigned(..) | Call::Outcome(..) => {}
    }
}

fn run(strategy_index: u8, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut cfg = config(strategy_of(strategy_index));
    cfg.pool_strategies
        .insert("q".into(), strategy_of(strategy_index + 1));
    let mut s = Scheduler::new(cfg.clone());
    let mut agents: BTreeMap<String, ModelAgent> = BTreeMap::new();
    let mut queued: BTreeMap<StepKey, ReadyStep> = BTreeMap::new();
    let mut calls = Vec::new();
    for (seq, op) in ops.iter().enumerate() {
        if let Some(call) = call_of(op, seq as u64) {
            apply(&mut s, &call);
            model_apply(&call, &mut agents, &mut queued);
            calls.push(call);
        } else {
            let best = queued
                .values()
                .filter(|st| agents.values().any(|a| eligible(a, st)))
                .min_by_key(|st| (std::cmp::Reverse(st.priority), st.ready_seq))
                .map(|st| st.key.clone());
            let got = s.assign_next();
            prop_assert_eq!(got.as_ref().map(|a| a.key.clone()), best);
            if let Some(a) = got {
                let st = queued
                    .remove(&a.key)
                    .ok_or_else(|| TestCaseError::fail("not queued"))?;
                let min = agents
                    .values()
                    .filter(|x| eligible(x, &st))
                    .map(|x| x.in_flight)
                    .min();
                let m = agents
                    .get_mut(&a.agent_id)
                    .ok_or_else(|| TestCaseError::fail("unknown agent"))?;
                prop_assert!(eligible(m, &st), "ineligible {:?} for {:?}", m, st);
                prop_assert_eq!(a.strategy, s.strategy_of(&st.pool));
                if a.strategy == Strategy::LeastConnections {
                    prop_assert_eq!(min, Some(m.in_flight));
                }
                m.in_flight += 1;
                calls.push(Call::Assigned(a.key, a.agent_id));
            }
        }
        for (id, m) in &agents {
            prop_assert_eq!(s.agent_load(id), Some((m.in_flight, m.capacity)));
        }
        for p in POOLS {
            let depth = queued.values().filter(|st| st.pool == p).count();
            prop_assert_eq!(s.queue_depth(p), depth);
        }
    }
    // Determinism: folding the recorded calls reaches the same state, so
    // both make the same decisions from here on.
    let mut r = Scheduler::new(cfg);
    for call in &calls {
        apply(&mut r, call);
    }
    for _ in 0..50 {
        let (a, b) = (s.assign_next(), r.assign_next());
        prop_assert_eq!(&a, &b);
        match a {
            Some(a) => {
                s.release(&a.agent_id);
                r.release(&a.agent_id);
            }
            None => break,
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_operations_respect_capacity_capabilities_and_order(
        strategy_index in 0..4u8,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        run(strategy_index, ops)?;
    }
}
