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
    // A lost agent holds nothing any more, whatever it last reported.
    let mut lost = s.state.agents[holder.as_str()].clone();
    lost.reported_in_flight = 1;
    assert_eq!((lost.health, lost.holding()), (AgentHealth::Lost, 0));
    let mut live = s.state.agents[other].clone();
    live.reported_in_flight = 1;
    assert_eq!(live.holding(), 1);
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

/// An agent as a non-home partition knows it: registered by its home's
/// forwarding (the label names the home).
fn forwarded_agent(id: &str, interval_ms: i64) -> Payload {
    let Payload::RegisterAgent(mut r) = agent_hb(id, interval_ms) else {
        unreachable!()
    };
    r.labels.insert(
        crate::domain::engine::HOME_PARTITION_LABEL.into(),
        "2".into(),
    );
    r.into()
}

fn heartbeat(id: &str) -> Payload {
    AgentHeartbeat {
        agent_id: id.into(),
        in_flight: 0,
        cpu: None,
        memory_bytes: None,
    }
    .into()
}

#[test]
fn a_forwarded_agent_is_never_judged_by_silence_here() {
    let mut s = Spec::new()
        .forwarded(0.0, forwarded_agent("a1", 1000))
        .given(0.0, vec![submit("wf", vec![step("a", &[])])]);
    assert!(
        s.state.workflows["wf"].steps[0].agent.is_some(),
        "it gets work"
    );
    // Its home partition may lag: silence here proves nothing.
    assert!(s.tick(60.0).is_empty());
    assert!(
        !s.state
            .timers
            .iter()
            .any(|(_, k)| matches!(k, TimerKey::Heartbeat { .. })),
        "no heartbeat timer for it"
    );
    // A forwarded heartbeat is recorded, with no verdict of this partition's.
    assert_eq!(
        names(&s.when(61.0, heartbeat("a1")).unwrap()),
        ["AgentHeartbeat"]
    );
}

#[test]
fn the_home_partitions_verdicts_are_followed() {
    // a1 holds the step; a2 joins after.
    let mut s = Spec::new()
        .forwarded(0.0, forwarded_agent("a1", 1000))
        .given(
            0.0,
            vec![submit("wf", vec![step("a", &[])]), agent_hb("a2", 600_000)],
        );
    assert_eq!(
        s.state.workflows["wf"].steps[0].agent.as_deref(),
        Some("a1")
    );
    let degraded = AgentHealthChanged {
        agent_id: "a1".into(),
        from: AgentHealth::Healthy,
        to: AgentHealth::Degraded,
        reason: "no heartbeat for 1500 ms (interval 1000 ms)".into(),
    };
    let f = s.when(1.5, degraded.clone()).unwrap();
    assert_eq!(names(&f), ["AgentHealthChanged"]);
    assert_eq!(s.state.agents["a1"].health, AgentHealth::Degraded);
    assert!(
        s.when(1.6, degraded).unwrap().is_empty(),
        "already degraded"
    );
    let lost = AgentLost {
        agent_id: "a1".into(),
        last_heartbeat_at: secs(0.0),
        // The home's own steps; this partition re-queues its own.
        requeued: vec![],
    };
    let f = s.when(3.0, lost.clone()).unwrap();
    assert_eq!(names(&f)[0], "AgentLost");
    let Payload::AgentLost(here) = &f[0].payload else {
        unreachable!()
    };
    assert_eq!(here.requeued.len(), 1, "this partition's step of a1");
    assert!(names(&f).contains(&"StepAssigned"), "{:?}", names(&f));
    assert_eq!(
        s.state.workflows["wf"].steps[0].agent.as_deref(),
        Some("a2")
    );
    assert!(s.when(3.1, lost).unwrap().is_empty(), "already lost");
    // Back: its next forwarded heartbeat makes it healthy here too.
    let back = AgentHealthChanged {
        agent_id: "a1".into(),
        from: AgentHealth::Lost,
        to: AgentHealth::Healthy,
        reason: "heartbeat received".into(),
    };
    s.when(4.0, heartbeat("a1")).unwrap();
    assert_eq!(names(&s.when(4.0, back).unwrap()), ["AgentHealthChanged"]);
    assert!(s.state.agents["a1"].schedulable());
}

#[test]
fn verdicts_on_agents_this_partition_judges_are_refused() {
    let mut s = Spec::new().given(0.0, vec![agent_hb("a1", 1000)]);
    let lost = AgentLost {
        agent_id: "a1".into(),
        last_heartbeat_at: secs(0.0),
        requeued: vec![],
    };
    assert_eq!(s.when(1.0, lost).unwrap_err().code, "not_ingress");
    let ghost = AgentHealthChanged {
        agent_id: "ghost".into(),
        from: AgentHealth::Healthy,
        to: AgentHealth::Degraded,
        reason: "?".into(),
    };
    assert_eq!(s.when(1.0, ghost).unwrap_err().code, "unknown_agent");
}

#[test]
fn reserved_labels_are_refused_from_anyone_but_the_engine() {
    let mut s = Spec::new();
    let rej = s.when(0.0, forwarded_agent("a1", 1000)).unwrap_err();
    assert_eq!(rej.code, "invalid_agent");
    assert!(rej.message.contains("reserved"), "{}", rej.message);
    assert!(s.state.agents.is_empty());
}
