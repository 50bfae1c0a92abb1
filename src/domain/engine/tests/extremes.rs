//! Extreme numbers and oversized texts through decide/evolve: ranges are
//! refused before any rule runs, texts the engine composes stay bounded,
//! and a proptest feeds i64::MIN/MAX, 0, NaN, ±inf, -0.0 and huge values
//! everywhere a number enters, checking no panic (debug builds trap
//! overflow) and no negative, wrapped or non-finite aggregate.

use proptest::prelude::{
    any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest, Just, ProptestConfig,
    TestCaseError,
};
use proptest::strategy::Strategy as Strat;

use super::*;

fn usage(tokens_in: i64, tokens_out: i64, cost: f64) -> Usage {
    Usage {
        tokens_in,
        tokens_out,
        cost,
    }
}

fn ok_with(wf: &str, s: &str, agent: &str, u: Usage) -> Payload {
    let Payload::StepSucceeded(mut r) = ok(wf, s, 1, agent) else {
        unreachable!()
    };
    r.usage = u;
    r.into()
}

fn running_one_step() -> Spec {
    Spec::new().given(
        0.0,
        vec![agent("a1", &["llm"], 1), submit("wf", vec![step("s", &[])])],
    )
}

#[test]
fn wrapping_usage_from_the_holder_is_rejected() {
    // Given a step held by a1
    let mut spec = running_one_step();
    // When a1 reports usage that would wrap the sums
    let r = spec.when(1.0, ok_with("wf", "s", "a1", usage(0, i64::MIN, -1e308)));
    // Then it is rejected and nothing is summed
    assert_eq!(r.unwrap_err().code, "invalid_usage");
    assert_eq!(spec.state.workflows["wf"].usage, Usage::default());
    for cost in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0] {
        let r = spec.when(1.0, ok_with("wf", "s", "a1", usage(0, 0, cost)));
        assert_eq!(r.unwrap_err().code, "invalid_usage", "{cost}");
    }
    // And a valid report still succeeds
    let facts = spec
        .when(1.0, ok_with("wf", "s", "a1", usage(1, 2, 0.5)))
        .unwrap();
    assert!(names(&facts).contains(&"WorkflowSucceeded"));
}

#[test]
fn sums_of_huge_valid_usage_saturate() {
    let mut u = usage(i64::MAX - 1, 0, f64::MAX);
    u.add(&usage(i64::MAX, 1, f64::MAX));
    assert_eq!(u.tokens_in, i64::MAX);
    assert_eq!(u.tokens_out, 1);
    assert!(u.cost.is_finite() && u.cost > 0.0);
}

#[test]
fn a_heartbeat_interval_out_of_range_is_rejected() {
    // Given nothing; When an agent registers with i64::MAX (or 0) as interval
    let mut spec = Spec::new();
    for ms in [i64::MAX, MAX_DURATION_MS + 1, 0, -1, i64::MIN] {
        let r = spec.when(0.0, agent_hb("a1", ms));
        // Then it is rejected, and no agent exists to be declared lost
        assert_eq!(r.unwrap_err().code, "invalid_agent", "{ms}");
    }
    assert!(spec.tick(10.0).is_empty());
    // And the largest allowed interval does not fire early
    spec.when(0.0, agent_hb("a1", MAX_DURATION_MS)).unwrap();
    assert!(spec.tick(3600.0).is_empty());
}

#[test]
fn durations_out_of_range_reject_the_workflow() {
    let with = |f: &dyn Fn(&mut StepDefinition)| {
        let mut s = step("s", &[]);
        f(&mut s);
        submit("wf", vec![s])
    };
    let cases: Vec<Payload> = vec![
        with(&|s| s.timeout_ms = Some(i64::MAX)),
        with(&|s| s.timeout_ms = Some(0)),
        with(&|s| {
            s.retry = Some(RetryPolicy {
                max_attempts: 3,
                backoff: Backoff::Exponential,
                base_ms: 0,
                max_ms: i64::MAX,
            })
        }),
        {
            let Payload::SubmitWorkflow(mut w) = submit("wf", vec![step("s", &[])]) else {
                unreachable!()
            };
            w.definition.deadline_ms = Some(i64::MIN);
            w.into()
        },
    ];
    for c in cases {
        let mut spec = Spec::new();
        let facts = spec.when(0.0, c).unwrap();
        assert_eq!(names(&facts), ["WorkflowRejected"]);
    }
}

#[test]
fn a_long_cancel_reason_is_bounded_in_every_fact() {
    // Given a running workflow
    let mut spec = running_one_step();
    // When it is cancelled with a reason near the ingress limit
    let reason = "€".repeat(300_000);
    let facts = spec
        .when(
            1.0,
            CancelWorkflow {
                workflow_id: "wf".into(),
                reason: Some(reason),
            },
        )
        .unwrap();
    // Then every reason the engine wrote is cut, with the original length
    assert!(names(&facts).contains(&"WorkflowCancelled"));
    for f in &facts {
        match &f.payload {
            Payload::WorkflowCancelled(c) => {
                assert!(c.reason.len() <= MAX_TEXT_BYTES);
                assert!(c.reason.ends_with("…[truncated, 900000 bytes]"));
            }
            Payload::StepCancelled(c) => assert!(c.reason.len() <= MAX_TEXT_BYTES),
            _ => {}
        }
    }
}

#[test]
fn a_rejection_quoting_a_long_input_is_bounded() {
    // When a cancel names an unknown workflow with a long reason
    let mut spec = Spec::new();
    let r = spec.when(
        0.0,
        StepFailed {
            workflow_id: "nope".into(),
            step_id: "s".into(),
            attempt: 1,
            agent_id: "a".into(),
            error: "e".repeat(900_000),
            retryable: true,
        },
    );
    // Then the rejection message is short
    let r = r.unwrap_err();
    assert_eq!(r.code, "unknown_workflow");
    assert!(r.message.len() <= MAX_TEXT_BYTES);
}

#[test]
fn a_long_failure_error_is_bounded_in_what_the_engine_derives() {
    // Given a running step without retries
    let mut spec = running_one_step();
    // When its holder fails it with a huge error
    let Payload::StepFailed(mut f) = fail("wf", "s", 1, "a1") else {
        unreachable!()
    };
    f.error = "x".repeat(900_000);
    f.retryable = false;
    let facts = spec.when(1.0, f).unwrap();
    // Then the report is journalled as said, the derived texts are cut
    for fact in &facts {
        match &fact.payload {
            Payload::StepFailed(r) => assert_eq!(r.error.len(), 900_000),
            Payload::StepExhausted(x) => assert!(x.last_error.len() <= MAX_TEXT_BYTES),
            Payload::WorkflowFailed(x) => assert!(x.reason.len() <= MAX_TEXT_BYTES),
            _ => {}
        }
    }
    assert!(names(&facts).contains(&"WorkflowFailed"));
}

#[test]
fn oversize_or_deep_conditions_reject_the_workflow() {
    for when in [
        "x".repeat(200_000),
        format!("{}true{}", "(".repeat(100), ")".repeat(100)),
        format!("{}1{}", "[".repeat(5000), "]".repeat(5000)),
        format!("{}true", "!".repeat(65)),
    ] {
        let mut s = step("s", &[]);
        s.when = Some(when);
        let mut spec = Spec::new();
        let facts = spec.when(0.0, submit("wf", vec![s])).unwrap();
        assert_eq!(names(&facts), ["WorkflowRejected"]);
        let Payload::WorkflowRejected(r) = &facts[0].payload else {
            unreachable!()
        };
        assert!(r.message.len() <= MAX_TEXT_BYTES, "{}", r.message.len());
    }
}

#[test]
fn a_condition_at_the_depth_limit_evaluates() {
    // Given a step whose condition nests exactly as deep as allowed
    let depth = crate::domain::workflow::validate::MAX_CONDITION_DEPTH;
    for when in [
        format!("{}true{}", "(".repeat(depth), ")".repeat(depth)),
        format!("{}true", "!".repeat(depth)),
        format!("{}1 == 1", "-".repeat(depth)),
        format!("{}true", "false ? false : ".repeat(depth)),
        format!("{}true{}", "[".repeat(depth / 2), "][0]".repeat(depth / 2)),
        // Long flat chains, as long as a condition may be (16 KiB).
        format!("{}1 > 0", "1 + ".repeat(4000)),
        format!("{}true", "true && ".repeat(2000)),
        format!("{}true", "input.x.y.z || ".repeat(1000)),
    ] {
        let mut s = step("s", &[]);
        s.when = Some(when.clone());
        let mut spec = Spec::new().given(0.0, vec![agent("a1", &["llm"], 1)]);
        // When the workflow starts, then the condition is parsed without
        // exhausting any stack, and decides the step
        let facts = spec.when(0.0, submit("wf", vec![s])).unwrap();
        assert!(
            names(&facts).contains(&"StepAssigned") || names(&facts).contains(&"WorkflowFailed"),
            "{when}: {:?}",
            names(&facts)
        );
    }
}

#[test]
fn a_failing_condition_near_its_limit_gives_a_bounded_reason() {
    // Given a step whose 16 KiB condition fails to evaluate
    let mut s = step("s", &[]);
    s.when = Some(format!("nope_{} > 1", "y".repeat(16_000)));
    let mut spec = Spec::new().given(0.0, vec![agent("a1", &["llm"], 1)]);
    // When the workflow starts
    let facts = spec.when(0.0, submit("wf", vec![s])).unwrap();
    // Then it fails with bounded texts
    assert!(
        names(&facts).contains(&"WorkflowFailed"),
        "{:?}",
        names(&facts)
    );
    for f in &facts {
        if let Payload::StepExhausted(x) = &f.payload {
            assert!(x.last_error.len() <= MAX_TEXT_BYTES);
        }
        if let Payload::WorkflowFailed(x) = &f.payload {
            assert!(x.reason.len() <= MAX_TEXT_BYTES);
        }
    }
}

#[test]
fn long_identifiers_are_rejected_before_any_fact() {
    let long = "w".repeat(MAX_ID_BYTES + 1);
    let mut spec = Spec::new();
    let r = spec.when(0.0, submit(&long, vec![step("s", &[])]));
    assert_eq!(r.unwrap_err().code, "invalid_id");
    let r = spec.when(0.0, agent(&long, &["llm"], 1));
    assert_eq!(r.unwrap_err().code, "invalid_id");
    let r = spec.when(0.0, submit("wf", vec![step(&long, &[])]));
    assert_eq!(r.unwrap_err().code, "invalid_id");
}

fn extreme_i64() -> impl Strat<Value = i64> {
    prop_oneof![
        // Half the time an ordinary value, so that workflows run far
        // enough for the extremes elsewhere to matter.
        10 => 1i64..100_000,
        1 => Just(i64::MIN),
        1 => Just(i64::MIN + 1),
        1 => Just(-1),
        1 => Just(0),
        1 => Just(1),
        1 => Just(1_000),
        1 => Just(MAX_DURATION_MS),
        1 => Just(MAX_DURATION_MS + 1),
        1 => Just(i64::MAX / 1000),
        1 => Just(i64::MAX - 1),
        1 => Just(i64::MAX),
        1 => any::<i64>(),
    ]
}

fn extreme_f64() -> impl Strat<Value = f64> {
    prop_oneof![
        // Half the time an ordinary value, so that workflows run far
        // enough for the extremes elsewhere to matter.
        10 => 0.0f64..10.0,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(-0.0),
        1 => Just(0.0),
        1 => Just(f64::MIN_POSITIVE),
        1 => Just(1e308),
        1 => Just(-1e308),
        1 => Just(f64::MAX),
        1 => any::<f64>(),
    ]
}

fn extreme_i32() -> impl Strat<Value = i32> {
    prop_oneof![
        // Half the time an ordinary value, so that workflows run far
        // enough for the extremes elsewhere to matter.
        10 => 1i32..8,
        1 => Just(i32::MIN),
        1 => Just(-1),
        1 => Just(0),
        1 => Just(1),
        1 => Just(2),
        1 => Just(i32::MAX),
        1 => any::<i32>(),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Register {
        agent: u8,
        interval: i64,
        capacity: i32,
        weight: i32,
    },
    Submit {
        timeout: i64,
        deadline: i64,
        base: i64,
        max: i64,
        attempts: i32,
        priority: i32,
    },
    Started {
        pick: u8,
    },
    Succeeded {
        pick: u8,
        tokens_in: i64,
        tokens_out: i64,
        cost: f64,
    },
    Failed {
        pick: u8,
    },
    Heartbeat {
        agent: u8,
        in_flight: i32,
        cpu: f64,
        memory: i64,
    },
    Tick {
        at: i64,
    },
}

fn op() -> impl Strat<Value = Op> {
    prop_oneof![
        1 => (0u8..3, extreme_i64(), extreme_i32(), extreme_i32())
            .prop_map(|(agent, interval, capacity, weight)| Op::Register { agent, interval, capacity, weight }),
        2 => (extreme_i64(), extreme_i64(), extreme_i64(), extreme_i64(), extreme_i32(), extreme_i32())
            .prop_map(|(timeout, deadline, base, max, attempts, priority)| Op::Submit { timeout, deadline, base, max, attempts, priority }),
        2 => any::<u8>().prop_map(|pick| Op::Started { pick }),
        3 => (any::<u8>(), extreme_i64(), extreme_i64(), extreme_f64())
            .prop_map(|(pick, tokens_in, tokens_out, cost)| Op::Succeeded { pick, tokens_in, tokens_out, cost }),
        2 => any::<u8>().prop_map(|pick| Op::Failed { pick }),
        1 => (0u8..3, extreme_i32(), extreme_f64(), extreme_i64())
            .prop_map(|(agent, in_flight, cpu, memory)| Op::Heartbeat { agent, in_flight, cpu, memory }),
        2 => extreme_i64().prop_map(|at| Op::Tick { at }),
    ]
}

/// Decides an input that may be rejected; keeps the facts if not.
fn try_decide(spec: &mut Spec, payload: impl Into<Payload>, now: Timestamp) {
    let e = spec.input(payload);
    if let Ok(facts) = spec.state.decide(&e, now) {
        spec.journal.extend(facts);
    }
}

fn check_usage_sane(u: &Usage, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(u.tokens_in >= 0 && u.tokens_out >= 0, "{what}: {u:?}");
    prop_assert!(u.cost.is_finite() && u.cost >= 0.0, "{what}: {u:?}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn extreme_numbers_never_panic_or_wrap(ops in prop::collection::vec(op(), 1..40)) {
        let mut spec = Spec::new();
        let mut n_wf = 0u32;
        // The clock only moves forward, as the engine's does; extreme tick
        // values move it as far as they ask (saturating).
        let mut now = secs(0.0);
        for o in ops {
            match o {
                Op::Register { agent: a, interval, capacity, weight } => {
                    let Payload::RegisterAgent(mut r) = agent_hb(&format!("a{a}"), interval) else { unreachable!() };
                    r.capacity = capacity;
                    r.weight = weight;
                    try_decide(&mut spec, r, now);
                }
                Op::Submit { timeout, deadline, base, max, attempts, priority } => {
                    n_wf += 1;
                    let mut s = step("s", &[]);
                    s.timeout_ms = Some(timeout);
                    s.priority = priority;
                    s.retry = Some(RetryPolicy { max_attempts: attempts, backoff: Backoff::Exponential, base_ms: base, max_ms: max });
                    let Payload::SubmitWorkflow(mut w) = submit(&format!("wf{n_wf}"), vec![s]) else { unreachable!() };
                    w.definition.deadline_ms = Some(deadline);
                    w.definition.priority = priority;
                    try_decide(&mut spec, w, now);
                }
                Op::Started { pick } | Op::Succeeded { pick, .. } | Op::Failed { pick } => {
                    // Report on some held step, by its holder.
                    let held: Vec<(String, String, i32, String)> = {
                        let mut v: Vec<_> = spec.state.workflows.values()
                            .flat_map(|w| w.definition.steps.iter().zip(&w.steps).filter_map(|(d, s)| {
                                s.agent.clone().filter(|_| s.status.is_held()).map(|a| (w.id.clone(), d.id.clone(), s.attempt, a))
                            }).collect::<Vec<_>>())
                            .collect();
                        v.sort();
                        v
                    };
                    if held.is_empty() { continue; }
                    let (wf, st, attempt, ag) = held[pick as usize % held.len()].clone();
                    let payload: Payload = match o {
                        Op::Started { .. } => StepStarted { workflow_id: wf, step_id: st, attempt, agent_id: ag }.into(),
                        Op::Succeeded { tokens_in, tokens_out, cost, .. } => StepSucceeded {
                            workflow_id: wf, step_id: st, attempt, agent_id: ag, output: None,
                            usage: usage(tokens_in, tokens_out, cost),
                        }.into(),
                        _ => StepFailed { workflow_id: wf, step_id: st, attempt, agent_id: ag, error: "e".into(), retryable: true }.into(),
                    };
                    try_decide(&mut spec, payload, now);
                }
                Op::Heartbeat { agent: a, in_flight, cpu, memory } => {
                    let hb = AgentHeartbeat { agent_id: format!("a{a}"), in_flight, cpu: Some(cpu), memory_bytes: Some(memory) };
                    try_decide(&mut spec, hb, now);
                }
                Op::Tick { at } => {
                    now = Timestamp(now.0.saturating_add(at.max(0) % (400 * 24 * 3600 * 1_000_000)));
                    let facts = spec.state.tick(now);
                    spec.journal.extend(facts);
                }
            }
            for w in spec.state.workflows.values() {
                check_usage_sane(&w.usage, "workflow")?;
            }
            for (p, u) in &spec.state.pool_usage {
                check_usage_sane(u, p)?;
            }
            for a in spec.state.agents.values() {
                check_usage_sane(&a.usage, &a.id)?;
            }
        }
        // Every fact the engine wrote holds sane numbers too.
        for f in &spec.journal {
            match &f.payload {
                Payload::WorkflowSucceeded(s) => check_usage_sane(&s.usage, "WorkflowSucceeded")?,
                Payload::RetryScheduled(r) => prop_assert!(r.delay_ms >= 0 && r.due_at >= f.occurred_at, "{r:?}"),
                Payload::StepAssigned(a) => prop_assert!(a.timeout_at.is_none_or(|t| t > f.occurred_at), "{a:?}"),
                Payload::AgentHealthChanged(c) => prop_assert!(!c.reason.contains("for -"), "{c:?}"),
                _ => {}
            }
        }
        // And the journal refolds to the same workflows.
        let mut refold = PartitionState::new(EngineConfig::default());
        for f in &spec.journal {
            refold.evolve(f);
        }
        prop_assert_eq!(refold.workflows.len(), spec.state.workflows.len());
    }
}
