//! Specs for agent rules: capability waits, health and loss, declines and
//! draining.

use super::*;

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
fn a_lagging_engine_judges_silence_only_up_to_what_it_has_read() {
    let mut s = Spec::new().given(
        0.0,
        vec![
            agent_hb("a1", 1000),
            submit(
                "wf",
                vec![StepDefinition {
                    timeout_ms: Some(2000),
                    ..step("a", &[])
                }],
            ),
        ],
    );
    // Ten seconds on the clock, but ingress read only up to 1.2 s: the
    // heartbeats and the result may be waiting unread.
    assert!(s.tick_heard(10.0, 1.2).is_empty(), "nothing judged yet");
    assert!(
        s.state.timer_held(secs(10.0), secs(1.2)),
        "timers wait for ingress"
    );
    assert!(
        s.state
            .next_timer_heard(secs(10.0), secs(1.2))
            .is_none_or(|due| due > secs(10.0)),
        "a loop with only held timers idles"
    );
    // Read up to 1.6 s: 1.5 intervals of silence, the agent is degraded.
    assert_eq!(names(&s.tick_heard(10.0, 1.6)), ["AgentHealthChanged"]);
    // Caught up: the step timed out at 2 s and the agent is lost at 3 s.
    let f = s.tick_heard(10.0, 10.0);
    assert!(names(&f).contains(&"StepTimedOut"), "{:?}", names(&f));
    assert!(names(&f).contains(&"AgentLost"), "{:?}", names(&f));
    assert!(!s.state.timer_held(secs(10.0), secs(10.0)));
}
