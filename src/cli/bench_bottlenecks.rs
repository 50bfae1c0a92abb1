//! `baton bench --only bottlenecks`: what the bottleneck projection costs,
//! measured A/B in one process (runs alternate, medians compared, so a
//! noisy machine shifts both sides alike):
//! - the decider's per-event cost (decide + evolve + detector ticks on the
//!   `sim::decisions` workload) with the projection on and off;
//! - the fold alone (replay's path) on the same facts, on and off;
//! - the projection's memory: its stored size and the process RSS growth
//!   after 1× and then 10× more observations (flat when memory is bounded
//!   by subjects, not history).
//!
//! Times are the thread's CPU time (wall time where that is unavailable).

use std::hint::black_box;
use std::time::Instant;

use serde_json::{json, Value};

use crate::domain::bottleneck::{Outcome, Stats, StepFacts};
use crate::domain::engine::{EngineConfig, PartitionState};
use crate::domain::events::{Timestamp, Usage};
use crate::sim::decisions;

fn config(on: bool) -> EngineConfig {
    let mut c = EngineConfig::default();
    c.bottleneck.enabled = on;
    c
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Resident set size of this process, in bytes (Linux; 0 elsewhere).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// CPU time of this thread in seconds (Linux schedstat, ns resolution):
/// other processes on a shared machine stretch wall time, not this.
/// Falls back to wall time elsewhere.
fn cpu_now() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

struct Clock(Instant, Option<f64>);

impl Clock {
    fn start() -> Clock {
        Clock(Instant::now(), cpu_now())
    }

    fn secs(&self) -> f64 {
        match (self.1, cpu_now()) {
            (Some(a), Some(b)) => b - a,
            _ => self.0.elapsed().as_secs_f64(),
        }
    }
}

/// Alternates `f(true)` and `f(false)` `rounds` times (order flipping each
/// round); returns the median events/s of each.
fn ab(rounds: usize, mut f: impl FnMut(bool) -> (u64, f64)) -> (f64, f64) {
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        for side in if r % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        } {
            let (n, secs) = f(side);
            let rate = n as f64 / secs.max(1e-9);
            if side {
                on.push(rate);
            } else {
                off.push(rate);
            }
        }
    }
    (median(on), median(off))
}

pub fn measure(workflows: u64, rounds: usize, observations: u64) -> Value {
    let (decide_on, decide_off) = ab(rounds, |on| {
        let t = Clock::start();
        let run = decisions::run(config(on), workflows, 20, false);
        (black_box(run.emitted), t.secs())
    });
    let facts = decisions::run(config(true), workflows, 20, true).facts;
    let (fold_on, fold_off) = ab(rounds, |on| {
        let t = Clock::start();
        let mut s = PartitionState::new(config(on));
        for f in &facts {
            s.evolve(f);
        }
        (black_box(s.facts_folded), t.secs())
    });

    // Memory: a bare projection fed `observations` step attempts, then 10×
    // as many more, over 20 agents, 3 kinds, 1 pool; event time advances
    // 1 ms per attempt, so the windows rotate many times.
    let mut stats = Stats::new(60_000, 900_000);
    let kinds = ["llm", "code-review", "git"];
    let caps: Vec<Vec<String>> = kinds.iter().map(|k| vec![k.to_string()]).collect();
    let agents: Vec<String> = (0..20).map(|i| format!("agent-{i:03}")).collect();
    let usage = Usage {
        tokens_in: 100,
        tokens_out: 20,
        cost: 0.01,
    };
    let feed = |stats: &mut Stats, from: u64, n: u64| {
        for i in from..from + n {
            let at = Timestamp(1_800_000_000_000_000 + i as i64 * 1000);
            let k = (i % 3) as usize;
            let s = StepFacts {
                pool: "default",
                capabilities: &caps[k],
                kind: kinds[k],
            };
            let agent = &agents[(i % 20) as usize];
            stats.arrival(at, s);
            stats.assigned(at, s, agent, i % 500);
            let outcome = if i % 50 == 0 {
                Outcome::Failed
            } else {
                Outcome::Succeeded
            };
            stats.ended(at, s, Some(agent), 20 + i % 2000, outcome, Some(&usage));
        }
    };
    let before = rss();
    feed(&mut stats, 0, observations);
    let after_1x = rss();
    let bytes_1x = crate::store::values::to_value(&stats).len();
    let t = Instant::now();
    feed(&mut stats, observations, observations * 10);
    let ns_per_attempt = t.elapsed().as_nanos() as f64 / (observations * 10) as f64;
    let after_11x = rss();
    let bytes_11x = crate::store::values::to_value(&stats).len();

    json!({
        "workload": {"workflows": workflows, "agents": 20, "facts": facts.len(), "rounds": rounds},
        "decide_events_per_s": {"with": decide_on, "without": decide_off,
            "overhead": decide_off / decide_on - 1.0},
        "fold_events_per_s": {"with": fold_on, "without": fold_off,
            "overhead": fold_off / fold_on - 1.0},
        "memory": {
            "observations": [observations, observations * 11],
            "rss_growth_bytes": [after_1x.saturating_sub(before), after_11x.saturating_sub(before)],
            "stored_bytes": [bytes_1x, bytes_11x],
            "ns_per_attempt": ns_per_attempt,
            "subjects": stats.pools.len() + stats.capabilities.len() + stats.agents.len() + stats.kinds.len(),
        }
    })
}
