//! Given/when/then specs of the bottleneck detectors, driven through the
//! partition decider with synthetic journal traffic: each detector fires on
//! its condition, stays quiet below the minimum sample size, and resolves
//! after the cause is gone; refolding the journal reproduces the projection.

use super::*;
use crate::domain::bottleneck::BottleneckConfig;

/// Short window 10 s (long 150 s, evaluation every 833 ms, backlog 5 s).
fn config() -> EngineConfig {
    EngineConfig {
        bottleneck: BottleneckConfig {
            min_samples: 5,
            ..BottleneckConfig::default().with_window(10_000)
        },
        ..EngineConfig::default()
    }
}

fn kind_step(kind: &str, caps: &[&str]) -> StepDefinition {
    StepDefinition {
        kind: Some(kind.into()),
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        ..step("s", &[])
    }
}

struct Fleet {
    spec: Spec,
    n: u32,
}

impl Fleet {
    fn new(agents: &[(&str, &[&str], i32)]) -> Self {
        let inputs = agents
            .iter()
            .map(|(id, caps, c)| agent(id, caps, *c))
            .collect();
        Fleet {
            spec: Spec::with(config()).given(0.0, inputs),
            n: 0,
        }
    }

    /// Submits a one-step workflow; returns its id and the agent it got.
    fn submit(&mut self, at: f64, kind: &str, caps: &[&str]) -> (String, Option<String>) {
        self.n += 1;
        let id = format!("wf-{}", self.n);
        let facts = self
            .spec
            .when(at, submit(&id, vec![kind_step(kind, caps)]))
            .unwrap_or_else(|r| panic!("{r}"));
        let agent = facts.iter().find_map(|f| match &f.payload {
            Payload::StepAssigned(a) => Some(a.agent_id.clone()),
            _ => None,
        });
        (id, agent)
    }

    /// Runs one step from `at` for `secs`, ending it well or badly.
    fn run(&mut self, at: f64, secs: f64, kind: &str, good: bool) -> String {
        let (id, agent) = self.submit(at, kind, &["llm"]);
        let agent = agent.unwrap_or_else(|| panic!("{id} was not assigned"));
        let report = if good {
            ok(&id, "s", 1, &agent)
        } else {
            fail(&id, "s", 1, &agent)
        };
        self.spec
            .when(at + secs, report)
            .unwrap_or_else(|r| panic!("{r}"));
        agent
    }

    /// Ticks every 0.5 s over [from, to]; returns the finding facts.
    fn evaluate(&mut self, from: f64, to: f64) -> Vec<Payload> {
        let mut out = Vec::new();
        let mut t = from;
        while t <= to {
            out.extend(
                self.spec
                    .tick(t)
                    .into_iter()
                    .map(|f| f.payload)
                    .filter(|p| {
                        matches!(
                            p,
                            Payload::BottleneckDetected(_) | Payload::BottleneckResolved(_)
                        )
                    }),
            );
            t += 0.5;
        }
        out
    }
}

fn detected(facts: &[Payload], kind: BottleneckKind) -> Vec<&BottleneckDetected> {
    facts
        .iter()
        .filter_map(|p| match p {
            Payload::BottleneckDetected(d) if d.kind == kind => Some(d),
            _ => None,
        })
        .collect()
}

fn resolved(facts: &[Payload], kind: BottleneckKind) -> usize {
    facts
        .iter()
        .filter(|p| matches!(p, Payload::BottleneckResolved(r) if r.kind == kind))
        .count()
}

#[test]
fn saturation_fires_on_a_full_pool_with_a_growing_queue_and_resolves_when_it_drains() {
    let mut f = Fleet::new(&[("a1", &["llm"], 2)]);
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(f.submit(0.1 * i as f64, "draft", &["llm"]).0);
    }
    let facts = f.evaluate(1.0, 3.0);
    let d = detected(&facts, BottleneckKind::Saturation);
    assert_eq!(d.len(), 1, "{facts:?}");
    let d = d[0];
    assert_eq!(d.key, "saturation/pool/default");
    assert_eq!(d.evidence["capacity"], 2.0);
    assert_eq!(d.evidence["in_flight"], 2.0);
    assert_eq!(d.evidence["queued"], 8.0);
    assert!(d.severity >= 50 && d.severity <= 100, "{}", d.severity);
    assert!(
        d.recommendation.contains("pool `default`"),
        "{}",
        d.recommendation
    );
    // The cause goes away: every step finishes by t = 6.
    let mut t = 3.5;
    for id in &ids {
        let _ = f.spec.when(t, ok(id, "s", 1, "a1"));
        t += 0.25;
    }
    let later = f.evaluate(6.0, 20.0);
    assert_eq!(resolved(&later, BottleneckKind::Saturation), 1, "{later:?}");
    assert!(detected(&later, BottleneckKind::Saturation).is_empty());
}

#[test]
fn queue_backlog_fires_on_a_long_wait_p95_and_not_below_the_minimum_sample() {
    // One slot, steps of 2 s: the n-th waits about 2n s.
    let mut f = Fleet::new(&[("a1", &["llm"], 1)]);
    let ids: Vec<String> = (0..8).map(|_| f.submit(0.0, "draft", &["llm"]).0).collect();
    for (i, id) in ids.iter().take(3).enumerate() {
        f.spec
            .when(2.0 * (i + 1) as f64, ok(id, "s", 1, "a1"))
            .unwrap();
    }
    let early = f.evaluate(6.0, 7.0);
    assert!(
        detected(&early, BottleneckKind::QueueBacklog).is_empty(),
        "4 samples < 5"
    );
    for (i, id) in ids.iter().enumerate().skip(3).take(4) {
        f.spec
            .when(2.0 * (i + 1) as f64, ok(id, "s", 1, "a1"))
            .unwrap();
    }
    let facts = f.evaluate(14.0, 15.0);
    let d = detected(&facts, BottleneckKind::QueueBacklog);
    assert_eq!(d.len(), 1, "{facts:?}");
    assert!(
        d[0].evidence["wait_p95_ms"] >= 10_000.0,
        "{:?}",
        d[0].evidence
    );
    assert!(
        d[0].recommendation.contains("add"),
        "{}",
        d[0].recommendation
    );
}

#[test]
fn slow_step_compares_a_kind_with_its_own_earlier_baseline() {
    let mut f = Fleet::new(&[("a1", &["llm"], 100)]);
    for i in 0..40 {
        f.run(30.0 + i as f64, 0.1, "summarize", true);
        f.run(30.0 + i as f64, 0.1, "draft", true);
    }
    let quiet = f.evaluate(80.0, 82.0);
    assert!(detected(&quiet, BottleneckKind::SlowStep).is_empty());
    for i in 0..4 {
        f.run(100.0 + i as f64, 1.0, "summarize", true);
        f.run(100.0 + i as f64, 0.1, "draft", true);
    }
    let few = f.evaluate(104.0, 104.5);
    assert!(
        detected(&few, BottleneckKind::SlowStep).is_empty(),
        "4 slow samples < 5: {few:?}"
    );
    for i in 4..8 {
        f.run(100.0 + i as f64, 1.0, "summarize", true);
        f.run(100.0 + i as f64, 0.1, "draft", true);
    }
    let facts = f.evaluate(108.0, 109.0);
    let d = detected(&facts, BottleneckKind::SlowStep);
    assert_eq!(d.len(), 1, "only summarize slowed: {facts:?}");
    assert_eq!(d[0].subject, "summarize");
    assert!(d[0].evidence["factor"] >= 9.0, "{:?}", d[0].evidence);
}

#[test]
fn slow_agent_is_judged_against_the_rest_of_its_pool() {
    let mut f = Fleet::new(&[
        ("a1", &["llm"], 1),
        ("a2", &["llm"], 1),
        ("a3", &["llm"], 1),
    ]);
    // Round by round: three steps at once, one per agent (least loaded).
    for round in 0..8 {
        if round == 4 {
            let few = f.evaluate(13.9, 13.9);
            assert!(
                detected(&few, BottleneckKind::SlowAgent).is_empty(),
                "4 samples of a3 < 5: {few:?}"
            );
        }
        let t = 10.0 + round as f64;
        let mut held = Vec::new();
        for _ in 0..3 {
            let (id, agent) = f.submit(t, "draft", &["llm"]);
            held.push((id, agent.unwrap()));
        }
        for (id, agent) in held {
            let secs = if agent == "a3" { 0.8 } else { 0.1 };
            f.spec.when(t + secs, ok(&id, "s", 1, &agent)).unwrap();
        }
    }
    let facts = f.evaluate(18.0, 19.0);
    let d = detected(&facts, BottleneckKind::SlowAgent);
    assert_eq!(d.len(), 1, "{facts:?}");
    assert_eq!(d[0].subject, "a3");
    assert!(d[0].recommendation.contains("drain or replace agent `a3`"));
}

#[test]
fn failing_step_and_agent_need_the_minimum_sample() {
    let mut f = Fleet::new(&[("a1", &["llm"], 100)]);
    for i in 0..4 {
        f.run(1.0 + 0.1 * i as f64, 0.1, "flaky", false);
    }
    let few = f.evaluate(2.0, 3.0);
    assert!(
        detected(&few, BottleneckKind::FailingStep).is_empty(),
        "4 < 5 samples"
    );
    assert!(detected(&few, BottleneckKind::FailingAgent).is_empty());
    for i in 0..6 {
        f.run(3.5 + 0.1 * i as f64, 0.1, "flaky", i % 2 == 0);
    }
    let facts = f.evaluate(4.5, 5.5);
    let step = detected(&facts, BottleneckKind::FailingStep);
    assert_eq!(step.len(), 1, "{facts:?}");
    assert_eq!(step[0].subject, "flaky");
    assert_eq!(step[0].evidence["failure_rate"], 0.7);
    assert!(
        detected(&facts, BottleneckKind::FailingAgent).is_empty(),
        "a lone agent has nobody to be compared with"
    );
}

/// Runs `n` steps of `kind` on `agent` (which must be the least loaded).
fn on_agent(
    f: &mut Fleet,
    at: f64,
    n: usize,
    kind: &str,
    agent: &str,
    good: impl Fn(usize) -> bool,
) {
    for i in 0..n {
        let (id, got) = f.submit(at, kind, &["llm"]);
        assert_eq!(got.as_deref(), Some(agent));
        let report = if good(i) {
            ok(&id, "s", 1, agent)
        } else {
            fail(&id, "s", 1, agent)
        };
        f.spec.when(at + 0.1, report).unwrap();
    }
}

#[test]
fn failing_agent_is_judged_against_the_rest_of_its_pool_on_the_same_work() {
    // a1 fails 8 of 10 drafts; a2 fails 1 of 10 drafts.
    let mut f = Fleet::new(&[("a1", &["llm"], 1), ("a2", &["llm"], 1)]);
    let mut t = 1.0;
    for i in 0..10 {
        // Both idle: least connections picks a1, then a2 (ties by id).
        let (w1, g1) = f.submit(t, "draft", &["llm"]);
        let (w2, g2) = f.submit(t, "draft", &["llm"]);
        assert_eq!((g1.as_deref(), g2.as_deref()), (Some("a1"), Some("a2")));
        let r1 = if i < 8 {
            fail(&w1, "s", 1, "a1")
        } else {
            ok(&w1, "s", 1, "a1")
        };
        let r2 = if i < 1 {
            fail(&w2, "s", 1, "a2")
        } else {
            ok(&w2, "s", 1, "a2")
        };
        f.spec.when(t + 0.1, r1).unwrap();
        f.spec.when(t + 0.1, r2).unwrap();
        t += 0.2;
    }
    let facts = f.evaluate(t, t + 1.0);
    let d = detected(&facts, BottleneckKind::FailingAgent);
    assert_eq!(d.len(), 1, "{facts:?}");
    assert_eq!(d[0].subject, "a1");
    assert!(d[0].evidence["z"] >= 3.0, "{:?}", d[0].evidence);
}

#[test]
fn an_agent_is_not_blamed_for_running_more_of_a_failing_kind() {
    // Both agents fail half of `flaky` and none of `draft`; a1 ran mostly
    // flaky, a2 mostly draft, so a1's overall rate is far higher.
    let mut f = Fleet::new(&[("a1", &["llm"], 100), ("a2", &["llm"], 100)]);
    let dereg = |f: &mut Fleet, t: f64, id: &str| {
        f.spec
            .when(
                t,
                DeregisterAgent {
                    agent_id: id.into(),
                    reason: None,
                },
            )
            .unwrap();
    };
    // Route work by making only one agent schedulable at a time.
    dereg(&mut f, 0.5, "a2");
    on_agent(&mut f, 1.0, 12, "flaky", "a1", |i| i % 2 == 0);
    on_agent(&mut f, 1.2, 2, "draft", "a1", |_| true);
    f.spec.when(1.4, agent("a2", &["llm"], 100)).unwrap();
    dereg(&mut f, 1.5, "a1");
    on_agent(&mut f, 1.6, 6, "flaky", "a2", |i| i % 2 == 0);
    on_agent(&mut f, 1.8, 12, "draft", "a2", |_| true);
    let facts = f.evaluate(2.5, 3.5);
    assert!(
        detected(&facts, BottleneckKind::FailingAgent).is_empty(),
        "{facts:?}"
    );
    assert_eq!(detected(&facts, BottleneckKind::FailingStep).len(), 1);
}

#[test]
fn starved_capability_fires_until_a_capable_agent_registers() {
    let mut f = Fleet::new(&[("a1", &["llm"], 4)]);
    f.submit(1.0, "render", &["gpu"]);
    f.submit(1.0, "render", &["gpu"]);
    let facts = f.evaluate(1.0, 2.0);
    let d = detected(&facts, BottleneckKind::StarvedCapability);
    assert_eq!(d.len(), 1, "{facts:?}");
    assert_eq!(d[0].subject, "gpu");
    assert_eq!(d[0].evidence["queued"], 2.0);
    assert!(d[0].recommendation.contains("`gpu`"));
    let assigned = f.spec.when(3.0, agent("g1", &["gpu"], 4)).unwrap();
    assert_eq!(
        names(&assigned),
        ["AgentRegistered", "StepAssigned", "StepAssigned"]
    );
    let later = f.evaluate(3.5, 15.0);
    assert_eq!(
        resolved(&later, BottleneckKind::StarvedCapability),
        1,
        "{later:?}"
    );
}

#[test]
fn stuck_step_fires_for_an_attempt_far_beyond_its_kind_p99() {
    let mut f = Fleet::new(&[("a1", &["llm"], 100)]);
    for i in 0..10 {
        f.run(1.0 + 0.1 * i as f64, 0.1, "draft", true);
    }
    let (_, agent) = f.submit(3.0, "draft", &["llm"]);
    assert_eq!(agent.as_deref(), Some("a1"));
    let before = f.evaluate(3.0, 12.5);
    assert!(
        detected(&before, BottleneckKind::StuckStep).is_empty(),
        "over 3× p99 but not yet a full window: {before:?}"
    );
    let facts = f.evaluate(13.5, 14.0);
    let d = detected(&facts, BottleneckKind::StuckStep);
    assert_eq!(d.len(), 1, "{facts:?}");
    assert_eq!(d[0].subject, "draft");
    assert_eq!(d[0].evidence["stuck"], 1.0);
}

#[test]
fn refolding_the_journal_rebuilds_the_same_projection_and_findings() {
    let mut f = Fleet::new(&[("a1", &["llm"], 2)]);
    for i in 0..10 {
        f.submit(0.1 * i as f64, "draft", &["llm"]);
    }
    f.evaluate(1.0, 3.0);
    assert!(!f.spec.state.bottlenecks.active.is_empty());
    let mut replayed = PartitionState::new(config());
    for e in &f.spec.journal {
        replayed.evolve(e);
    }
    let (live, again) = (&f.spec.state.bottlenecks, &replayed.bottlenecks);
    assert_eq!(live.active, again.active);
    let bytes = |s: &crate::domain::bottleneck::Stats| bincode::serialize(s).unwrap();
    assert_eq!(bytes(live), bytes(again), "figures differ after a refold");
}

#[test]
fn disabled_detection_folds_nothing_and_emits_nothing() {
    let mut c = config();
    c.bottleneck.enabled = false;
    let mut s = Spec::with(c).given(0.0, vec![agent("a1", &["llm"], 1)]);
    for i in 0..5 {
        s.when(0.0, submit(&format!("w{i}"), vec![step("s", &[])]))
            .unwrap();
    }
    assert!(s.tick(1.0).is_empty() && s.tick(5.0).is_empty());
    assert!(s.state.bottlenecks.pools.is_empty());
}
