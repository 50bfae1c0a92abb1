//! The decider's per-event cost with and without the bottleneck projection
//! (issue 4 target: folding it adds ≤ 15%).
//!
//! - `decide`: a deterministic workload (`sim::decisions`) of 2,000
//!   generated workflows over 20 agents, every input through `decide`
//!   (which folds each fact it emits) plus clock ticks that run the
//!   detectors — the engine's CPU path without IO.
//! - `fold`: the facts of that workload folded into a fresh state with
//!   `evolve` (the replay path).
//!
//! Throughput is in journal facts, so the two variants compare per event.

use std::hint::black_box;
use std::time::Duration;

use baton::domain::engine::{EngineConfig, PartitionState};
use baton::sim::decisions;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const WORKFLOWS: u64 = 2_000;
const AGENTS: usize = 20;

fn config(bottlenecks: bool) -> EngineConfig {
    let mut c = EngineConfig::default();
    c.bottleneck.enabled = bottlenecks;
    c
}

fn bench(c: &mut Criterion) {
    let facts = decisions::run(config(true), WORKFLOWS, AGENTS, true).facts;
    let mut g = c.benchmark_group("decide");
    g.throughput(Throughput::Elements(facts.len() as u64));
    g.measurement_time(Duration::from_secs(8));
    for (name, on) in [("with_bottlenecks", true), ("without_bottlenecks", false)] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(decisions::run(config(on), WORKFLOWS, AGENTS, false).inputs))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("fold");
    g.throughput(Throughput::Elements(facts.len() as u64));
    g.measurement_time(Duration::from_secs(8));
    for (name, on) in [("with_bottlenecks", true), ("without_bottlenecks", false)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut s = PartitionState::new(config(on));
                for f in &facts {
                    s.evolve(f);
                }
                black_box(s.facts_folded)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
