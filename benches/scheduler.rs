//! Scheduler decision cost: one assign + release cycle (enqueue a ready
//! step, `assign_next`, release the oldest held attempt and record its
//! outcome) with 10,000 agents in one pool, for each strategy. The fleet is
//! kept half-loaded (a ring of 20,000 held attempts) so least-connections
//! and score orders really move; weights span four tiers. The `mixed_caps`
//! variant spreads the agents over four capability sets, with steps needing
//! one of three subsets (so a step is served by two to four agent classes).
//! `peek_decision` is the decision alone (`peek_next` with one step waiting).
//! Target (issue 3): an assignment decision ≤ 5 µs.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

use baton::domain::scheduler::{
    AgentSpec, ReadyStep, Scheduler, SchedulerConfig, StepKey, Strategy,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const AGENTS: usize = 10_000;
const HELD: usize = 20_000;

const AGENT_CAPS: [&[&str]; 4] = [
    &["llm"],
    &["llm", "code"],
    &["llm", "web"],
    &["llm", "code", "web"],
];
const STEP_CAPS: [&[&str]; 3] = [&["llm"], &["code"], &["web"]];

fn strings(caps: &[&str]) -> Vec<String> {
    caps.iter().map(|c| c.to_string()).collect()
}

struct Bench {
    s: Scheduler,
    held: VecDeque<String>,
    steps: Vec<ReadyStep>,
    next: usize,
    seq: u64,
}

impl Bench {
    fn new(strategy: Strategy, mixed: bool) -> Self {
        let mut s = Scheduler::new(SchedulerConfig {
            default_strategy: strategy,
            pool_strategies: Default::default(),
        });
        for i in 0..AGENTS {
            let caps = if mixed {
                AGENT_CAPS[i % 4]
            } else {
                AGENT_CAPS[0]
            };
            s.upsert_agent(AgentSpec {
                id: format!("agent-{i:05}"),
                pool: "default".into(),
                capabilities: strings(caps),
                capacity: 8,
                weight: 1 + (i % 4) as u32,
            });
        }
        // Pre-built steps, re-enqueued round the ring (a key is free again
        // once assigned), so the loop measures the scheduler, not formatting.
        let steps = (0..4_096)
            .map(|n| ReadyStep {
                key: StepKey {
                    workflow_id: format!("wf-{n:06}"),
                    step_id: "step".into(),
                    attempt: 1,
                },
                pool: "default".into(),
                capabilities: strings(if mixed {
                    STEP_CAPS[n % 3]
                } else {
                    STEP_CAPS[0]
                }),
                priority: (n % 3) as i32,
                ready_seq: 0,
            })
            .collect();
        let mut b = Bench {
            s,
            held: VecDeque::with_capacity(HELD + 1),
            steps,
            next: 0,
            seq: 0,
        };
        for _ in 0..HELD {
            b.assign();
        }
        b
    }

    fn enqueue_only(&mut self) {
        let mut st = self.steps[self.next % self.steps.len()].clone();
        self.next += 1;
        self.seq += 1;
        st.ready_seq = self.seq;
        self.s.enqueue(st);
    }

    fn assign(&mut self) {
        let mut st = self.steps[self.next % self.steps.len()].clone();
        self.next += 1;
        self.seq += 1;
        st.ready_seq = self.seq;
        self.s.enqueue(st);
        if let Some(a) = self.s.assign_next() {
            self.held.push_back(a.agent_id);
        }
    }

    fn cycle(&mut self) {
        self.assign();
        if let Some(agent) = self.held.pop_front() {
            let latency = 5.0 + (self.seq % 17) as f64;
            self.s.release(&agent);
            self.s.record_outcome(&agent, self.seq % 50 != 0, latency);
        }
    }
}

fn scheduler_benches(c: &mut Criterion) {
    for (variant, mixed) in [("one_pool", false), ("mixed_caps", true)] {
        let mut group = c.benchmark_group(format!("scheduler/10k_agents_{variant}"));
        group.throughput(Throughput::Elements(1));
        group.sample_size(30);
        group.measurement_time(Duration::from_secs(3));
        for (name, strategy) in [
            ("round_robin", Strategy::RoundRobin),
            ("least_connections", Strategy::LeastConnections),
            ("weighted", Strategy::Weighted),
            ("performance_based", Strategy::PerformanceBased),
        ] {
            let mut b = Bench::new(strategy, mixed);
            group.bench_function(format!("{name}/assign_release_cycle"), |bench| {
                bench.iter(|| {
                    b.cycle();
                })
            });
            // One step left waiting, so peek has a decision to make.
            b.enqueue_only();
            group.bench_function(format!("{name}/peek_decision"), |bench| {
                bench.iter(|| black_box(b.s.peek_next()))
            });
            black_box(&b.held);
        }
        group.finish();
    }
}

criterion_group!(benches, scheduler_benches);
criterion_main!(benches);
