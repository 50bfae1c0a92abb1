//! A deterministic, in-memory decision workload for benchmarks: agents
//! register, workflows from the generator are submitted, and every
//! assignment is answered at once with StepStarted and StepSucceeded (or a
//! failure), all straight into one [`PartitionState`] — no log, no codec,
//! no store. It measures the decider itself (decide + evolve, the engine's
//! per-event CPU cost) and yields the facts for fold-only measurements.
//!
//! Event time advances 1 ms per workflow and each attempt "runs" 5–200 ms of
//! event time, so the bottleneck windows rotate as in a live engine.

use std::collections::{BTreeMap, VecDeque};

use crate::domain::engine::{EngineConfig, Fact, PartitionState};
use crate::domain::events::*;
use crate::sim::generator::{workflow, GeneratorConfig};

/// What one run produced.
pub struct Run {
    pub inputs: u64,
    /// Facts emitted (kept in `facts` only when asked).
    pub emitted: u64,
    pub facts: Vec<Fact>,
    pub state: PartitionState,
}

fn envelope(n: &mut u128, at: Timestamp, payload: impl Into<Payload>) -> Envelope {
    *n += 1;
    let payload = payload.into();
    Envelope {
        event_id: EventId(uuid::Uuid::from_u128(*n)),
        correlation_id: payload.correlation_id().to_string(),
        causation_id: None,
        occurred_at: at,
        producer: "bench".into(),
        payload,
    }
}

/// Runs `workflows` generated workflows over `agents` agents.
/// `keep_facts` false drops the facts as they come (for long runs).
pub fn run(config: EngineConfig, workflows: u64, agents: usize, keep_facts: bool) -> Run {
    let mut state = PartitionState::new(config);
    let mut facts = Vec::new();
    let mut n = 0u128;
    let t0 = 1_800_000_000_000_000i64;
    let mut inputs = 0u64;
    let mut emitted = 0u64;
    let caps: Vec<String> = ["llm", "code-review", "git"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for i in 0..agents {
        let e = envelope(
            &mut n,
            Timestamp(t0),
            RegisterAgent {
                agent_id: format!("agent-{i:04}"),
                pool: "default".into(),
                capabilities: caps.clone(),
                capacity: 64,
                weight: 1,
                labels: BTreeMap::new(),
                heartbeat_interval_ms: 3_600_000,
            },
        );
        inputs += 1;
        if let Ok(f) = state.decide(&e, Timestamp(t0)) {
            emitted += f.len() as u64;
            if keep_facts {
                facts.extend(f);
            }
        }
    }
    let gen = GeneratorConfig {
        capabilities: caps,
        pools: vec!["default".into()],
        retry: None,
        seed: 7,
        ..GeneratorConfig::default()
    };
    let mut rng = fastrand::Rng::with_seed(11);
    let mut pending: VecDeque<StepAssigned> = VecDeque::new();
    for w in 0..workflows {
        let now = Timestamp(t0 + w as i64 * 1000);
        let mut queue = vec![envelope(&mut n, now, workflow(w, &gen))];
        while let Some(input) = queue.pop() {
            inputs += 1;
            let at = input.occurred_at;
            let Ok(out) = state.decide(&input, at) else {
                continue;
            };
            emitted += out.len() as u64;
            for f in &out {
                if let Payload::StepAssigned(a) = &f.payload {
                    pending.push_back(a.clone());
                }
            }
            if keep_facts {
                facts.extend(out);
            }
            while let Some(a) = pending.pop_front() {
                let started = StepStarted {
                    workflow_id: a.workflow_id.clone(),
                    step_id: a.step_id.clone(),
                    attempt: a.attempt,
                    agent_id: a.agent_id.clone(),
                };
                let done_at = Timestamp(at.0 + rng.i64(5_000..200_000));
                let report: Payload = if rng.f64() < 0.02 {
                    StepFailed {
                        workflow_id: a.workflow_id,
                        step_id: a.step_id,
                        attempt: a.attempt,
                        agent_id: a.agent_id,
                        error: "boom".into(),
                        retryable: false,
                    }
                    .into()
                } else {
                    StepSucceeded {
                        workflow_id: a.workflow_id,
                        step_id: a.step_id,
                        attempt: a.attempt,
                        agent_id: a.agent_id,
                        output: None,
                        usage: Usage {
                            tokens_in: 100,
                            tokens_out: 20,
                            cost: 0.01,
                        },
                    }
                    .into()
                };
                // Popped last-in first-out: the report after the start.
                queue.push(envelope(&mut n, done_at, report));
                queue.push(envelope(&mut n, at, started));
            }
        }
        // The detectors run on the engine's clock ticks.
        if w % 64 == 0 {
            let f = state.tick(now);
            emitted += f.len() as u64;
            if keep_facts {
                facts.extend(f);
            }
        }
    }
    Run {
        inputs,
        emitted,
        facts,
        state,
    }
}
