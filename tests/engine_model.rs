//! Model test: random interleavings of ingress events, clock ticks,
//! checkpoints and crash/restart points, against a simple reference model.
//! After every run: the live state == a fresh refold of the journal == the
//! model's answer for every workflow, and re-delivered inputs change nothing.

use std::collections::BTreeMap;

use baton::domain::engine::{EngineConfig, PartitionState, StepStatus};
use baton::domain::events::{
    Backoff, Envelope, EventId, Payload, RegisterAgent, RetryPolicy, StepDefinition, StepFailed,
    StepSucceeded, SubmitWorkflow, Timestamp, Usage, WorkflowDefinition, WorkflowStatus,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Submit { steps: u8 },
    Register { agent: u8 },
    Report { pick: u16, ok: bool },
    Tick { ms: u16 },
    Checkpoint,
    Crash { redeliver_last: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..4).prop_map(|steps| Op::Submit { steps }),
        1 => (0u8..3).prop_map(|agent| Op::Register { agent }),
        6 => (any::<u16>(), prop::bool::weighted(0.8)).prop_map(|(pick, ok)| Op::Report { pick, ok }),
        1 => (0u16..5000).prop_map(|ms| Op::Tick { ms }),
        1 => Just(Op::Checkpoint),
        1 => any::<bool>().prop_map(|redeliver_last| Op::Crash { redeliver_last }),
    ]
}

fn definition(steps: u8) -> WorkflowDefinition {
    WorkflowDefinition {
        name: "model".into(),
        steps: (0..steps)
            .map(|i| StepDefinition {
                id: format!("s{i}"),
                kind: None,
                capabilities: vec!["llm".into()],
                pool: None,
                depends_on: if i == 0 {
                    vec![]
                } else {
                    vec![format!("s{}", i - 1)]
                },
                timeout_ms: None,
                retry: Some(RetryPolicy {
                    max_attempts: 2,
                    backoff: Backoff::Fixed,
                    base_ms: 100,
                    max_ms: 100,
                }),
                priority: 0,
                input: None,
                when: None,
            })
            .collect(),
        input: None,
        deadline_ms: None,
        priority: 0,
        labels: BTreeMap::new(),
    }
}

/// The reference: per workflow, a chain of steps; each step succeeds, or
/// fails once (retried), or fails twice (the workflow fails).
#[derive(Default)]
struct Model {
    /// workflow → (steps, index of the current step, failures of it, outcome)
    workflows: BTreeMap<String, (u8, u8, u8, Option<WorkflowStatus>)>,
}

struct World {
    state: PartitionState,
    journal: Vec<Envelope>,
    snapshot: Option<(Vec<u8>, Vec<u8>, usize)>,
    now: i64,
    n: u128,
    last_input: Option<Envelope>,
}

fn input(world: &mut World, payload: Payload) -> Envelope {
    world.n += 1;
    Envelope {
        event_id: EventId(uuid::Uuid::from_u128(world.n)),
        correlation_id: payload.correlation_id().to_string(),
        causation_id: None,
        occurred_at: Timestamp(world.now),
        producer: "model".into(),
        payload,
    }
}

fn decide(world: &mut World, e: Envelope) -> Vec<Envelope> {
    let facts = world
        .state
        .decide(&e, Timestamp(world.now))
        .unwrap_or_default();
    world.journal.extend(facts.clone());
    world.last_input = Some(e);
    facts
}

fn restart(world: &mut World) {
    let mut state = PartitionState::new(EngineConfig::default());
    let from = match &world.snapshot {
        Some((wfs, agents, at)) => {
            let wfs: Vec<baton::domain::engine::WorkflowState> = bincode::deserialize(wfs).unwrap();
            let agents: Vec<baton::domain::engine::AgentView> =
                bincode::deserialize(agents).unwrap();
            for w in wfs {
                state.next_seq_at_least(w.seq + 1);
                state.workflows.insert(w.id.clone(), w);
            }
            for a in agents {
                state.agents.insert(a.id.clone(), a);
            }
            state.rebuild_derived();
            *at
        }
        None => 0,
    };
    for f in &world.journal[..from] {
        if let Some(c) = f.causation_id {
            state.remember_input(c);
        }
    }
    for f in &world.journal[from..] {
        state.evolve(f);
    }
    world.state = state;
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut world = World {
        state: PartitionState::new(EngineConfig::default()),
        journal: vec![],
        snapshot: None,
        now: 1_000_000,
        n: 0,
        last_input: None,
    };
    let mut model = Model::default();
    for (i, op) in ops.into_iter().enumerate() {
        world.now += 1000;
        match op {
            Op::Submit { steps } => {
                let id = format!("wf-{i}");
                model.workflows.insert(id.clone(), (steps, 0, 0, None));
                let e = input(
                    &mut world,
                    SubmitWorkflow {
                        workflow_id: id,
                        definition: definition(steps),
                    }
                    .into(),
                );
                decide(&mut world, e);
            }
            Op::Register { agent } => {
                let reg = RegisterAgent {
                    agent_id: format!("a{agent}"),
                    pool: "default".into(),
                    capabilities: vec!["llm".into()],
                    capacity: 2,
                    weight: 1,
                    labels: BTreeMap::new(),
                    heartbeat_interval_ms: 3_600_000_000,
                };
                let e = input(&mut world, reg.into());
                decide(&mut world, e);
            }
            Op::Report { pick, ok } => {
                let held: Vec<(String, String, i32, String)> = world
                    .state
                    .workflows
                    .values()
                    .flat_map(|w| {
                        w.definition
                            .steps
                            .iter()
                            .zip(&w.steps)
                            .filter(|(_, s)| s.status.is_held())
                            .map(|(d, s)| {
                                (
                                    w.id.clone(),
                                    d.id.clone(),
                                    s.attempt,
                                    s.agent.clone().unwrap_or_default(),
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect();
                if held.is_empty() {
                    continue;
                }
                let (wf, step, attempt, agent) = held[pick as usize % held.len()].clone();
                let m = model.workflows.get_mut(&wf).unwrap();
                let payload: Payload = if ok {
                    m.1 += 1;
                    m.2 = 0;
                    if m.1 == m.0 {
                        m.3 = Some(WorkflowStatus::Succeeded);
                    }
                    StepSucceeded {
                        workflow_id: wf,
                        step_id: step,
                        attempt,
                        agent_id: agent,
                        output: None,
                        usage: Usage::default(),
                    }
                    .into()
                } else {
                    m.2 += 1;
                    if m.2 == 2 {
                        m.3 = Some(WorkflowStatus::Failed);
                    }
                    StepFailed {
                        workflow_id: wf,
                        step_id: step,
                        attempt,
                        agent_id: agent,
                        error: "x".into(),
                        retryable: true,
                    }
                    .into()
                };
                let e = input(&mut world, payload);
                let facts = decide(&mut world, e);
                prop_assert!(!facts.is_empty(), "a report from the holder is accepted");
            }
            Op::Tick { ms } => {
                world.now += ms as i64 * 1000;
                let facts = world.state.tick(Timestamp(world.now));
                world.journal.extend(facts);
            }
            Op::Checkpoint => {
                let wfs: Vec<_> = world.state.workflows.values().cloned().collect();
                let agents: Vec<_> = world.state.agents.values().cloned().collect();
                world.snapshot = Some((
                    bincode::serialize(&wfs).unwrap(),
                    bincode::serialize(&agents).unwrap(),
                    world.journal.len(),
                ));
            }
            Op::Crash { redeliver_last } => {
                restart(&mut world);
                if redeliver_last {
                    if let Some(e) = world.last_input.clone() {
                        let facts = world
                            .state
                            .decide(&e, Timestamp(world.now))
                            .unwrap_or_default();
                        prop_assert!(
                            facts.is_empty(),
                            "a re-delivered input yields nothing: {:?}",
                            facts
                        );
                    }
                }
            }
        }
    }
    // Let retries fire so the model's answers are reached where reports allow.
    let mut refold = PartitionState::new(EngineConfig::default());
    for f in &world.journal {
        refold.evolve(f);
    }
    let strip = |s: &PartitionState| {
        s.workflows
            .iter()
            .map(|(k, w)| {
                (
                    k.clone(),
                    (
                        w.status,
                        w.steps
                            .iter()
                            .map(|x| (x.status, x.attempt, x.agent.clone()))
                            .collect::<Vec<_>>(),
                    ),
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    prop_assert_eq!(strip(&world.state), strip(&refold), "live == refold");
    // Replay's fold, which skips the scheduler and timers, stores the same.
    let mut projected = PartitionState::projections_only(EngineConfig::default());
    for f in &world.journal {
        projected.evolve(f);
    }
    prop_assert_eq!(
        &projected.workflows,
        &refold.workflows,
        "projections-only == refold"
    );
    prop_assert_eq!(&projected.agents, &refold.agents);
    prop_assert_eq!(&projected.pool_usage, &refold.pool_usage);
    for (id, (_, _, _, outcome)) in &model.workflows {
        let w = &refold.workflows[id];
        match outcome {
            Some(s) => prop_assert_eq!(w.status, *s, "{}", id),
            None => prop_assert!(
                !w.steps.iter().any(|s| s.status == StepStatus::Exhausted),
                "{} not failed yet",
                id
            ),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn live_equals_refold_equals_model(ops in prop::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
