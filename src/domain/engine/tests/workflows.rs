//! Specs for workflow rules: submission, readiness, retries, timeouts,
//! deadlines, cancel, conditions, admission, duplicates, replay.

use super::*;
use crate::domain::engine::decide::backoff_ms;

#[test]
fn submit_starts_and_assigns_the_root() {
    let mut s = Spec::new().given(0.0, vec![agent("a1", &["llm"], 2)]);
    let facts = s
        .when(1.0, submit("wf", vec![step("x", &[]), step("y", &["x"])]))
        .unwrap();
    assert_eq!(
        names(&facts),
        ["WorkflowAccepted", "WorkflowStarted", "StepAssigned"]
    );
    let Payload::StepAssigned(a) = &facts[2].payload else {
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
    assert_eq!(names(&f), ["StepSucceeded", "StepAssigned", "StepAssigned"]);
    let f = s.when(2.0, ok("wf", "b", 1, "a1")).unwrap();
    assert_eq!(names(&f), ["StepSucceeded"], "d waits for c (join)");
    let f = s.when(3.0, ok("wf", "c", 1, "a1")).unwrap();
    assert_eq!(names(&f), ["StepSucceeded", "StepAssigned"]);
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
    assert_eq!(names(&s.tick(1.5)), ["StepAssigned"]);
    // The retry's times are its own, not attempt 1's.
    let a = &s.state.workflows["wf"].steps[0];
    assert_eq!(a.attempt, 2);
    assert_eq!(
        (a.ready_at, a.assigned_at),
        (Some(secs(1.5)), Some(secs(1.5)))
    );
    assert_eq!((a.started_at, a.finished_at), (None, None));
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
        ["StepTimedOut", "RetryScheduled", "StepAssigned"]
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
        ["StepSucceeded", "StepSkipped", "StepAssigned"],
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
    let fold = |mut state: PartitionState| {
        s.journal.iter().for_each(|f| state.evolve(f));
        state
    };
    let stored = |s: &PartitionState| bincode::serialize(&s.bottlenecks).unwrap();
    // A full fold and a projections-only one (replay's) store the same.
    for replayed in [
        fold(PartitionState::new(EngineConfig::default())),
        fold(PartitionState::projections_only(EngineConfig::default())),
    ] {
        assert_eq!(replayed.workflows, s.state.workflows);
        assert_eq!(replayed.agents, s.state.agents);
        assert_eq!(replayed.pool_usage, s.state.pool_usage);
        assert_eq!(stored(&replayed), stored(&s.state));
    }
    let replayed = fold(PartitionState::new(EngineConfig::default()));
    assert_eq!(replayed.timers, s.state.timers);
    assert_eq!(replayed.queue_depths(), s.state.queue_depths());
    let projected = fold(PartitionState::projections_only(EngineConfig::default()));
    assert!(projected.timers.is_empty() && projected.queue_depths().is_empty());
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

#[test]
fn a_step_assigned_at_once_is_journalled_without_its_ready_fact() {
    // No agent yet: the step waits, and its readiness is a fact of its own.
    let mut s = Spec::new();
    let f = s.when(0.0, submit("wf", vec![step("a", &[])])).unwrap();
    assert_eq!(
        names(&f),
        ["WorkflowAccepted", "WorkflowStarted", "StepReady"]
    );
    // The agent arrives later: the assignment follows the journalled StepReady.
    let f = s.when(1.0, agent("a1", &["llm"], 2)).unwrap();
    assert_eq!(names(&f), ["AgentRegistered", "StepAssigned"]);
    // Readied and assigned in one decision: the assignment alone, and a
    // fold of it alone yields the ready time the StepReady would have set.
    let f = s.when(2.0, submit("wf2", vec![step("a", &[])])).unwrap();
    assert_eq!(
        names(&f),
        ["WorkflowAccepted", "WorkflowStarted", "StepAssigned"]
    );
    let mut replayed = PartitionState::new(EngineConfig::default());
    for f in &s.journal {
        replayed.evolve(f);
    }
    assert_eq!(replayed.workflows, s.state.workflows);
    assert_eq!(replayed.queue_depths(), s.state.queue_depths());
}
