//! Given/when/then specs for the partition decider: every rule of the
//! workflow and agent lifecycle, each rejection reason and each backoff
//! formula, plus "replaying the emitted facts rebuilds the same state".

use std::collections::BTreeMap;

use super::decide::backoff_ms;
use super::*;
use crate::domain::events::*;

const T0: i64 = 1_800_000_000_000_000;

fn secs(s: f64) -> Timestamp {
    Timestamp(T0 + (s * 1_000_000.0) as i64)
}

/// A small given/when/then harness over one partition.
struct Spec {
    state: PartitionState,
    journal: Vec<Fact>,
    n: u128,
}

impl Spec {
    fn new() -> Self {
        Spec::with(EngineConfig::default())
    }

    fn with(config: EngineConfig) -> Self {
        Spec {
            state: PartitionState::new(config),
            journal: Vec::new(),
            n: 0,
        }
    }

    fn input(&mut self, payload: impl Into<Payload>) -> Envelope {
        self.n += 1;
        let payload = payload.into();
        Envelope {
            event_id: EventId(uuid::Uuid::from_u128(self.n)),
            correlation_id: payload.correlation_id().to_string(),
            causation_id: None,
            occurred_at: Timestamp(0),
            producer: "test".into(),
            payload,
        }
    }

    /// Given: inputs already accepted.
    fn given(mut self, at: f64, inputs: Vec<Payload>) -> Self {
        for p in inputs {
            let e = self.input(p);
            let facts = self
                .state
                .decide(&e, secs(at))
                .unwrap_or_else(|r| panic!("given input rejected: {r}"));
            self.journal.extend(facts);
        }
        self
    }

    /// When: one input; returns the fact type names (or the rejection).
    fn when(&mut self, at: f64, payload: impl Into<Payload>) -> Result<Vec<Fact>, Rejection> {
        let e = self.input(payload);
        let facts = self.state.decide(&e, secs(at))?;
        self.journal.extend(facts.clone());
        Ok(facts)
    }

    fn tick(&mut self, at: f64) -> Vec<Fact> {
        let facts = self.state.tick(secs(at));
        self.journal.extend(facts.clone());
        facts
    }
}

fn names(facts: &[Fact]) -> Vec<&'static str> {
    facts.iter().map(|f| f.payload.type_name()).collect()
}

fn step(id: &str, deps: &[&str]) -> StepDefinition {
    StepDefinition {
        id: id.into(),
        kind: None,
        capabilities: vec!["llm".into()],
        pool: None,
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        timeout_ms: None,
        retry: None,
        priority: 0,
        input: None,
        when: None,
    }
}

fn submit(id: &str, steps: Vec<StepDefinition>) -> Payload {
    SubmitWorkflow {
        workflow_id: id.into(),
        definition: WorkflowDefinition {
            name: "t".into(),
            steps,
            input: None,
            deadline_ms: None,
            priority: 0,
            labels: BTreeMap::new(),
        },
    }
    .into()
}

fn agent(id: &str, caps: &[&str], capacity: i32) -> Payload {
    RegisterAgent {
        agent_id: id.into(),
        pool: "default".into(),
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        capacity,
        weight: 1,
        labels: BTreeMap::new(),
        heartbeat_interval_ms: 600_000,
    }
    .into()
}

fn agent_hb(id: &str, interval_ms: i64) -> Payload {
    let Payload::RegisterAgent(mut r) = agent(id, &["llm"], 1) else {
        unreachable!()
    };
    r.heartbeat_interval_ms = interval_ms;
    r.into()
}

fn ok(wf: &str, s: &str, attempt: i32, agent: &str) -> Payload {
    StepSucceeded {
        workflow_id: wf.into(),
        step_id: s.into(),
        attempt,
        agent_id: agent.into(),
        output: Some(JsonText(r#"{"ok":true}"#.into())),
        usage: Usage {
            tokens_in: 10,
            tokens_out: 5,
            cost: 0.5,
        },
    }
    .into()
}

fn fail(wf: &str, s: &str, attempt: i32, agent: &str) -> Payload {
    StepFailed {
        workflow_id: wf.into(),
        step_id: s.into(),
        attempt,
        agent_id: agent.into(),
        error: "boom".into(),
        retryable: true,
    }
    .into()
}

#[test]
fn submit_starts_and_assigns_the_root() {
    let mut s = Spec::new().given(0.0, vec![agent("a1", &["llm"], 2)]);
    let facts = s
        .when(1.0, submit("wf", vec![step("x", &[]), step("y", &["x"])]))
        .unwrap();
    assert_eq!(
        names(&facts),
        [
            "WorkflowAccepted",
            "WorkflowStarted",
            "StepReady",
            "StepAssigned"
        ]
    );
    let Payload::StepAssigned(a) = &facts[3].payload else {
        panic!()
    };
    assert_eq!(
        (a.step_id.as_str(), a.agent_id.as_str(), a.attempt),
        ("x", "a1", 1)
    );
    // Deterministic ids derived from the input, causation = the input.
    assert!(facts
        .iter()
        .all(|f| f.causation_id == Some(EventId(uuid::Uuid::from_u128(2)))));
}

#[test]
fn each_definition_rejection_is_a_fact_with_a_code() {
    let cases: Vec<(Vec<StepDefinition>, &str, &str)> = vec![
        (vec![], "empty", "no steps"),
        (
            vec![step("a", &[]), step("a", &[])],
            "duplicate_step",
            "`a`",
        ),
        (vec![step("a", &["zz"])], "unknown_dependency", "`zz`"),
        (
            vec![step("a", &["b"]), step("b", &["a"])],
            "cycle",
            "a -> b -> a",
        ),
    ];
    for (steps, code, text) in cases {
        let mut s = Spec::new();
        let facts = s.when(0.0, submit("wf", steps)).unwrap();
        let Payload::WorkflowRejected(r) = &facts[0].payload else {
            panic!("{:?}", names(&facts))
        };
        assert_eq!(r.code, code);
        assert!(r.message.contains(text), "{}", r.message);
    }
    let mut small = EngineConfig::default();
    small.limits.max_steps = 1;
    small.limits.max_input_bytes = 4;
    let mut s = Spec::with(small);
    let facts = s
        .when(0.0, submit("wf", vec![step("a", &[]), step("b", &[])]))
        .unwrap();
    assert!(
        matches!(&facts[0].payload, Payload::WorkflowRejected(r) if r.code == "too_many_steps")
    );
    let mut big = step("a", &[]);
    big.input = Some(JsonText("\"too long\"".into()));
    let facts = s.when(0.0, submit("wf2", vec![big])).unwrap();
    assert!(
        matches!(&facts[0].payload, Payload::WorkflowRejected(r) if r.code == "input_too_large")
    );
    let facts = s.when(0.0, submit("wf3", vec![step("a", &[])])).unwrap();
    assert_eq!(names(&facts)[0], "WorkflowAccepted");
    let dup = s
        .when(0.0, submit("wf3", vec![step("a", &[])]))
        .unwrap_err();
    assert_eq!(
        dup.code, "duplicate_workflow",
        "a duplicate id is a DLQ rejection, not a fact"
    );
}

#[test]
fn chain_and_join_complete_with_summed_usage() {
    let mut s = Spec::new().given(
        0.0,
        vec![
            agent("a1", &["llm"], 4),
            submit(
                "wf",
                vec![
                    step("a", &[]),
                    step("b", &["a"]),
                    step("c", &["a"]),
                    step("d", &["b", "c"]),
                ],
            ),
        ],
    );
    let f = s.when(1.0, ok("wf", "a", 1, "a1")).unwrap();
    assert_eq!(
        names(&f),
        [
            "StepSucceeded",
            "StepReady",
            "StepReady",
            "StepAssigned",
            "StepAssigned"
        ]
    );
    let f = s.when(2.0, ok("wf", "b", 1, "a1")).unwrap();
    assert_eq!(names(&f), ["StepSucceeded"], "d waits for c (join)");
    let f = s.when(3.0, ok("wf", "c", 1, "a1")).unwrap();
    assert_eq!(names(&f), ["StepSucceeded", "StepReady", "StepAssigned"]);
    let f = s.when(4.0, ok("wf", "d", 1, "a1")).unwrap();
    assert_eq!(names(&f), ["StepSucceeded", "WorkflowSucceeded"]);
    let Payload::WorkflowSucceeded(w) = &f[1].payload else {
        panic!()
    };
    assert_eq!(
        w.usage,
        Usage {
            tokens_in: 40,
            tokens_out: 20,
            cost: 2.0
        }
    );
    assert_eq!(s.state.agents["a1"].usage.tokens_in, 40);
    assert_eq!(s.state.pool_usage["default"].cost, 2.0);
}

#[test]
fn reports_must_come_from_the_holder() {
    let mut s = Spec::new().given(
        0.0,
        vec![
            agent("a1", &["llm"], 1),
            agent("a2", &["llm"], 1),
            submit("wf", vec![step("a", &[])]),
        ],
    );
    let codes = |r: Result<Vec<Fact>, Rejection>| r.unwrap_err().code;
    assert_eq!(
        codes(s.when(1.0, ok("nope", "a", 1, "a1"))),
        "unknown_workflow"
    );
    assert_eq!(codes(s.when(1.0, ok("wf", "zz", 1, "a1"))), "unknown_step");
    let holder = s.state.workflows["wf"].steps[0].agent.clone().unwrap();
    let other = if holder == "a1" { "a2" } else { "a1" };
    assert_eq!(codes(s.when(1.0, ok("wf", "a", 1, other))), "not_holder");
    assert_eq!(codes(s.when(1.0, ok("wf", "a", 2, &holder))), "not_holder");
    assert_eq!(
        codes(s.when(
            1.0,
            WorkflowStarted {
                workflow_id: "wf".into()
            }
        )),
        "not_ingress"
    );
    assert!(s.when(1.0, ok("wf", "a", 1, &holder)).is_ok());
    assert_eq!(
        codes(s.when(2.0, ok("wf", "a", 1, &holder))),
        "workflow_finished"
    );
}

#[test]
fn backoff_formulas() {
    let p = |backoff| RetryPolicy {
        max_attempts: 10,
        backoff,
        base_ms: 100,
        max_ms: 1000,
    };
    let series = |b| (1..=6).map(|a| backoff_ms(&p(b), a)).collect::<Vec<_>>();
    assert_eq!(series(Backoff::Fixed), [100, 100, 100, 100, 100, 100]);
    assert_eq!(series(Backoff::Linear), [100, 200, 300, 400, 500, 600]);
    assert_eq!(
        series(Backoff::Exponential),
        [100, 200, 400, 800, 1000, 1000]
    );
    assert_eq!(
        backoff_ms(&p(Backoff::Exponential), 200),
        1000,
        "no overflow on huge attempts"
    );
}

#[test]
fn failures_retry_with_backoff_then_exhaust_and_fail_the_workflow() {
    let mut a = step("a", &[]);
    a.retry = Some(RetryPolicy {
        max_attempts: 2,
        backoff: Backoff::Linear,
        base_ms: 500,
        max_ms: 10_000,
    });
    let mut s = Spec::new().given(
        0.0,
        vec![
            agent("a1", &["llm"], 1),
            submit("wf", vec![a, step("b", &["a"])]),
        ],
    );
    let f = s.when(1.0, fail("wf", "a", 1, "a1")).unwrap();
    assert_eq!(names(&f), ["StepFailed", "RetryScheduled"]);
    let Payload::RetryScheduled(r) = &f[1].payload else {
        panic!()
    };
    assert_eq!((r.delay_ms, r.next_attempt, r.due_at), (500, 2, secs(1.5)));
    assert!(s.tick(1.4).is_empty(), "not due yet");
    assert_eq!(names(&s.tick(1.5)), ["StepReady", "StepAssigned"]);
    let f = s.when(2.0, fail("wf", "a", 2, "a1")).unwrap();
    assert_eq!(
        names(&f),
        [
            "StepFailed",
            "StepExhausted",
            "StepSkipped",
            "WorkflowFailed"
        ]
    );
    assert_eq!(s.state.workflows["wf"].status, WorkflowStatus::Failed);
}

#[test]
fn a_timeout_is_a_failed_attempt() {
    let mut a = step("a", &[]);
    a.timeout_ms = Some(1000);
    a.retry = Some(RetryPolicy {
        max_attempts: 3,
        backoff: Backoff::Fixed,
        base_ms: 0,
        max_ms: 0,
    });
    let mut s = Spec::new().given(0.0, vec![agent("a1", &["llm"], 1), submit("wf", vec![a])]);
    assert!(s.tick(0.9).is_empty());
    let f = s.tick(1.0);
    assert_eq!(
        names(&f),
        [
            "StepTimedOut",
            "RetryScheduled",
            "StepReady",
            "StepAssigned"
        ]
    );
    // The timed-out attempt's late report is refused.
    assert_eq!(
        s.when(1.1, ok("wf", "a", 1, "a1")).unwrap_err().code,
        "not_holder"
    );
}

#[test]
fn deadline_and_cancel_tell_the_agent() {
    let mut s = Spec::new().given(0.0, vec![agent("a1", &["llm"], 1)]);
    let Payload::SubmitWorkflow(mut sw) = submit("wf", vec![step("a", &[])]) else {
        panic!()
    };
    sw.definition.deadline_ms = Some(2000);
    s.when(0.0, sw).unwrap();
    let f = s.tick(2.0);
    assert_eq!(names(&f), ["StepCancelled", "WorkflowTimedOut"]);
    assert!(
        matches!(&f[0].payload, Payload::StepCancelled(c) if c.agent_id.as_deref() == Some("a1"))
    );

    let mut s = Spec::new().given(
        0.0,
        vec![
            agent("a1", &["llm"], 1),
            submit("wf", vec![step("a", &[]), step("b", &["a"])]),
        ],
    );
    let f = s
        .when(
            1.0,
            CancelWorkflow {
                workflow_id: "wf".into(),
                reason: Some("no longer needed".into()),
            },
        )
        .unwrap();
    assert_eq!(names(&f), ["StepCancelled", "WorkflowCancelled"]);
    assert_eq!(
        s.when(
            1.0,
            CancelWorkflow {
                workflow_id: "wf".into(),
                reason: None
            }
        )
        .unwrap_err()
        .code,
        "workflow_finished"
    );
    assert_eq!(
        s.when(
            1.0,
            CancelWorkflow {
                workflow_id: "x".into(),
                reason: None
            }
        )
        .unwrap_err()
        .code,
        "unknown_workflow"
    );
    assert_eq!(
        s.state.agent_load("a1"),
        Some((0, 1)),
        "the cancelled attempt freed the agent"
    );
}

#[test]
fn conditions_skip_or_fail() {
    let mut b = step("b", &["a"]);
    b.when = Some("steps.a.output.ok == false".into());
    let mut c = step("c", &["b"]);
    c.when = Some("input.pr > 1".into());
    let mut s = Spec::new().given(0.0, vec![agent("a1", &["llm"], 4)]);
    let Payload::SubmitWorkflow(mut sw) = submit("wf", vec![step("a", &[]), b, c]) else {
        panic!()
    };
    sw.definition.input = Some(JsonText(r#"{"pr": 7}"#.into()));
    s.when(0.0, sw).unwrap();
    let f = s.when(1.0, ok("wf", "a", 1, "a1")).unwrap();
    assert_eq!(
        names(&f),
        ["StepSucceeded", "StepSkipped", "StepReady", "StepAssigned"],
        "b skipped, c proceeds"
    );
    assert!(
        matches!(&f[1].payload, Payload::StepSkipped(x) if x.reason.contains("steps.a.output.ok == false"))
    );

    let mut bad = step("a", &[]);
    bad.when = Some("input.missing.field".into());
    let f = s.when(2.0, submit("wf2", vec![bad])).unwrap();
    assert_eq!(
        names(&f),
        [
            "WorkflowAccepted",
            "WorkflowStarted",
            "StepExhausted",
            "WorkflowFailed"
        ]
    );
}

#[test]
fn admission_queues_then_starts_by_priority() {
    let cfg = EngineConfig {
        max_running_workflows: 1,
        ..EngineConfig::default()
    };
    let mut s = Spec::with(cfg).given(
        0.0,
        vec![agent("a1", &["llm"], 4), submit("w1", vec![step("a", &[])])],
    );
    let f = s.when(0.1, submit("low", vec![step("a", &[])])).unwrap();
    assert_eq!(names(&f), ["WorkflowAccepted", "WorkflowQueued"]);
    let Payload::SubmitWorkflow(mut high) = submit("high", vec![step("a", &[])]) else {
        panic!()
    };
    high.definition.priority = 9;
    s.when(0.2, high).unwrap();
    let f = s.when(1.0, ok("w1", "a", 1, "a1")).unwrap();
    assert_eq!(
        names(&f),
        [
            "StepSucceeded",
            "WorkflowSucceeded",
            "WorkflowStarted",
            "StepReady",
            "StepAssigned"
        ]
    );
    assert!(matches!(&f[2].payload, Payload::WorkflowStarted(w) if w.workflow_id == "high"));
}

#[test]
fn duplicate_inputs_are_ignored() {
    let mut s = Spec::new();
    let e = s.input(submit("wf", vec![step("a", &[])]));
    assert!(!s.state.decide(&e, secs(0.0)).unwrap().is_empty());
    assert!(s.state.decide(&e, secs(0.0)).unwrap().is_empty());
}

#[test]
fn steps_wait_for_a_capable_agent() {
    let mut s = Spec::new().given(0.0, vec![agent("a1", &["git"], 1)]);
    let f = s.when(0.0, submit("wf", vec![step("a", &[])])).unwrap();
    assert_eq!(
        names(&f),
        ["WorkflowAccepted", "WorkflowStarted", "StepReady"],
        "no agent has `llm`"
    );
    assert_eq!(s.state.queue_depths().get("default"), Some(&1));
    let f = s.when(1.0, agent("a2", &["llm"], 1)).unwrap();
    assert_eq!(names(&f), ["AgentRegistered", "StepAssigned"]);
}

#[test]
fn health_degrades_then_loses_the_agent_and_requeues() {
    let mut s = Spec::new().given(
        0.0,
        vec![
            agent_hb("a1", 1000),
            agent_hb("a2", 1000),
            submit("wf", vec![step("a", &[])]),
        ],
    );
    let holder = s.state.workflows["wf"].steps[0].agent.clone().unwrap();
    let other = if holder == "a1" { "a2" } else { "a1" };
    s.when(
        1.0,
        AgentHeartbeat {
            agent_id: other.into(),
            in_flight: 0,
            cpu: None,
            memory_bytes: None,
        },
    )
    .unwrap();
    s.when(
        2.0,
        AgentHeartbeat {
            agent_id: other.into(),
            in_flight: 0,
            cpu: None,
            memory_bytes: None,
        },
    )
    .unwrap();
    let f = s.tick(1.5);
    assert_eq!(
        names(&f),
        ["AgentHealthChanged"],
        "holder degraded after 1.5 intervals"
    );
    let f = s.tick(3.0);
    assert_eq!(
        names(&f),
        ["AgentLost", "StepAssigned"],
        "AgentLost re-queues what it held"
    );
    assert!(matches!(&f[1].payload, Payload::StepAssigned(a) if a.agent_id == other));
    assert_eq!(
        s.when(3.1, ok("wf", "a", 1, &holder)).unwrap_err().code,
        "agent_lost"
    );
}

#[test]
fn declined_assignments_are_requeued_and_drained_agents_get_no_work() {
    let mut s = Spec::new().given(
        0.0,
        vec![agent("a1", &["llm"], 1), submit("wf", vec![step("a", &[])])],
    );
    let f = s
        .when(
            1.0,
            StepDeclined {
                workflow_id: "wf".into(),
                step_id: "a".into(),
                attempt: 1,
                agent_id: "a1".into(),
                reason: "at capacity".into(),
            },
        )
        .unwrap();
    assert_eq!(
        names(&f),
        ["StepRejectedByAgent"],
        "re-queued; the declining agent gets no new work"
    );
    assert_eq!(s.state.queue_depths().get("default"), Some(&1));
    let hb = AgentHeartbeat {
        agent_id: "a1".into(),
        in_flight: 0,
        cpu: None,
        memory_bytes: None,
    };
    let f = s.when(1.5, hb).unwrap();
    assert_eq!(
        names(&f),
        ["AgentHeartbeat", "StepAssigned"],
        "a heartbeat with room makes it schedulable again"
    );
    s.when(
        2.0,
        DeregisterAgent {
            agent_id: "a1".into(),
            reason: None,
        },
    )
    .unwrap();
    let f = s.when(2.0, submit("wf2", vec![step("a", &[])])).unwrap();
    assert_eq!(
        names(&f),
        ["WorkflowAccepted", "WorkflowStarted", "StepReady"]
    );
    assert_eq!(
        s.when(
            2.0,
            AgentHeartbeat {
                agent_id: "ghost".into(),
                in_flight: 0,
                cpu: None,
                memory_bytes: None
            }
        )
        .unwrap_err()
        .code,
        "unknown_agent"
    );
    assert_eq!(
        s.when(2.0, agent("bad", &[], 0)).unwrap_err().code,
        "invalid_agent"
    );
}

#[test]
fn replaying_the_facts_rebuilds_the_same_state() {
    let mut a = step("a", &[]);
    a.retry = Some(RetryPolicy {
        max_attempts: 3,
        backoff: Backoff::Exponential,
        base_ms: 100,
        max_ms: 1000,
    });
    a.timeout_ms = Some(5_000);
    let mut s = Spec::new().given(
        0.0,
        vec![
            agent("a1", &["llm"], 2),
            agent("a2", &["llm"], 1),
            submit("w1", vec![a.clone(), step("b", &["a"])]),
            submit("w2", vec![a]),
        ],
    );
    let h1 = s.state.workflows["w1"].steps[0].agent.clone().unwrap();
    s.when(1.0, fail("w1", "a", 1, &h1)).unwrap();
    s.tick(2.0);
    let h2 = s.state.workflows["w2"].steps[0].agent.clone().unwrap();
    s.when(3.0, ok("w2", "a", 1, &h2)).unwrap();
    s.tick(10.0);
    let mut replayed = PartitionState::new(EngineConfig::default());
    for f in &s.journal {
        replayed.evolve(f);
    }
    assert_eq!(replayed.workflows, s.state.workflows);
    assert_eq!(replayed.agents, s.state.agents);
    assert_eq!(replayed.pool_usage, s.state.pool_usage);
    assert_eq!(replayed.timers, s.state.timers);
    assert_eq!(replayed.queue_depths(), s.state.queue_depths());
}

#[test]
fn a_failing_root_condition_stops_the_other_roots() {
    let mut bad = step("a", &[]);
    bad.when = Some("input.missing.field".into());
    let mut s = Spec::new().given(0.0, vec![agent("a1", &["llm"], 4)]);
    let f = s
        .when(1.0, submit("wf", vec![bad, step("b", &[])]))
        .unwrap();
    assert_eq!(
        names(&f),
        [
            "WorkflowAccepted",
            "WorkflowStarted",
            "StepExhausted",
            "StepSkipped",
            "WorkflowFailed"
        ]
    );
    assert_eq!(
        s.state.agent_load("a1"),
        Some((0, 4)),
        "nothing assigned inside a failed workflow"
    );
    assert_eq!(
        s.state.queue_depths().get("default").copied().unwrap_or(0),
        0
    );
}
