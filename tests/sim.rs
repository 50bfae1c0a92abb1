//! The simulation against a real embedded log: the generator writes valid,
//! deterministic SubmitWorkflow events to the right partitions, and the
//! fleet registers each agent once, on its home partition, answers assignments the test itself
//! publishes (success, failure, decline at capacity, cancellation,
//! redelivery) and stops when signalled. Every wait is bounded (≤ 10 s).
//!
//! `zero_latency_throughput` prints the fleet's report rate; for a real
//! figure run it in release mode:
//! `SIM_BENCH_ASSIGNMENTS=300000 cargo test --release --test sim -- --nocapture throughput`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton::codec::Codec;
use baton::domain::events::*;
use baton::domain::workflow::{validate, Limits};
use baton::log::embedded::{EmbeddedConfig, EmbeddedLog};
use baton::log::{partition_for_key, EventLog, ProducerRecord};
use baton::sim::{
    run_fleet, run_generator, workflow, FleetConfig, FleetStats, GeneratorConfig, LatencyDist,
    Shape, SimAgentConfig, GENERATOR_PRODUCER,
};
use baton::topics::Topics;
use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);
const PARTITIONS: u32 = 2;

type Fleet = JoinHandle<Result<FleetStats, baton::sim::SimError>>;

async fn open_log(dir: &tempfile::TempDir) -> Arc<dyn EventLog> {
    let log = EmbeddedLog::open(EmbeddedConfig::new(dir.path())).expect("open log");
    for spec in Topics::default().specs(PARTITIONS) {
        log.create_topic(&spec).await.expect("create topic");
    }
    Arc::new(log)
}

/// A size from the environment (for release-mode timing runs), or `default`.
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn codec() -> Codec {
    Codec::builtin().expect("builtin codec")
}

/// Every ingress record as (partition, key, decoded envelope).
async fn ingress_events(log: &dyn EventLog) -> Vec<(u32, String, Envelope)> {
    let (topic, codec) = (Topics::default().ingress(), codec());
    let mut out = Vec::new();
    for p in 0..PARTITIONS {
        let mut next = 0;
        loop {
            let batch = log.read(&topic, p, next, 100_000).await.expect("read");
            let Some(last) = batch.last() else { break };
            next = last.offset + 1;
            for r in batch {
                let key = String::from_utf8(r.key.expect("key").to_vec()).expect("utf8 key");
                out.push((p, key, codec.decode(&r.value).expect("decodes")));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_writes_valid_deterministic_workflows_to_their_partitions() {
    let cfg = GeneratorConfig {
        workflows: 500,
        batch: 64,
        seed: 7,
        shapes: vec![
            Shape::Chain(3),
            Shape::FanOut(2),
            Shape::FanOutIn(3),
            Shape::Mixed,
        ],
        pools: vec!["gpu".into(), "cpu".into()],
        priority: -2..=5,
        ..GeneratorConfig::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open_log(&dir).await;
        let (_tx, stop) = watch::channel(false);
        let run = run_generator(log.clone(), codec(), Topics::default(), cfg.clone(), stop);
        let n = tokio::time::timeout(WAIT, run)
            .await
            .expect("in time")
            .expect("runs");
        assert_eq!(n, 500);
        let mut payloads = Vec::new();
        for (p, key, env) in ingress_events(log.as_ref()).await {
            let Payload::SubmitWorkflow(s) = env.payload else {
                panic!("not a submission: {:?}", env.payload)
            };
            assert_eq!(
                (&key, &env.correlation_id),
                (&s.workflow_id, &s.workflow_id)
            );
            assert_eq!(env.producer, GENERATOR_PRODUCER);
            assert_eq!(p, partition_for_key(key.as_bytes(), PARTITIONS));
            payloads.push(s);
        }
        runs.push(payloads);
    }
    assert_eq!(runs[0], runs[1], "same seed, same workflows");
    let ids: HashSet<_> = runs[0].iter().map(|s| s.workflow_id.clone()).collect();
    assert_eq!(ids.len(), 500);
    for i in 0..500 {
        let w = workflow(i, &cfg);
        assert!(ids.contains(&w.workflow_id), "wf-7-{i} submitted");
        assert_eq!(w.workflow_id, format!("wf-7-{i}"));
        validate(&w.definition, &Limits::default()).expect("valid definition");
        for s in w.definition.steps.iter() {
            assert_eq!(s.capabilities.len(), 1);
            assert!(cfg.capabilities.contains(&s.capabilities[0]));
            assert!(cfg.pools.contains(s.pool.as_ref().expect("pool")));
        }
        assert!(cfg.priority.contains(&w.definition.priority));
    }
}

fn agent(id: &str, capacity: u32, latency: LatencyDist, failure_rate: f64) -> SimAgentConfig {
    SimAgentConfig {
        capacity,
        latency,
        failure_rate,
        ..SimAgentConfig::new(id)
    }
}

/// An envelope as the engine would publish it on `baton.assignments`.
fn envelope(wf: &str, payload: Payload) -> Envelope {
    let (event_id, occurred_at) = (EventId::random(), Timestamp(0));
    let (correlation_id, producer) = (wf.to_string(), "test-engine".to_string());
    let causation_id = None;
    Envelope {
        event_id,
        correlation_id,
        causation_id,
        occurred_at,
        producer,
        payload,
    }
}

fn assigned(agent: &str, wf: &str, step: &str) -> Envelope {
    let (workflow_id, step_id, agent_id) = (wf.into(), step.into(), agent.into());
    let (pool, strategy, kind) = ("default".into(), Strategy::RoundRobin, "llm".into());
    let payload = StepAssigned {
        workflow_id,
        step_id,
        attempt: 1,
        agent_id,
        pool,
        strategy,
        kind,
        input: None,
        timeout_at: None,
    };
    envelope(wf, payload.into())
}

fn cancelled(agent: &str, wf: &str, step: &str) -> Envelope {
    let (workflow_id, step_id, agent_id) = (wf.into(), step.into(), Some(agent.into()));
    let reason = "workflow cancelled".into();
    let payload = StepCancelled {
        workflow_id,
        step_id,
        attempt: 1,
        agent_id,
        reason,
    };
    envelope(wf, payload.into())
}

/// Publishes envelopes on `baton.assignments`, keyed by agent like the engine.
async fn publish(log: &dyn EventLog, events: &[(&str, Envelope)]) {
    let topic = Topics::default().assignments();
    let codec = codec();
    for (agent, e) in events {
        let p = partition_for_key(agent.as_bytes(), PARTITIONS);
        let rec = ProducerRecord::new(
            Some(Bytes::from(agent.to_string())),
            Bytes::from(codec.encode(e).expect("encode")),
        );
        log.append(&topic, p, vec![rec]).await.expect("append");
    }
}

/// Step reports on ingress, as (type, workflow id, step id), with checks on
/// their envelope and partition.
async fn reports(log: &dyn EventLog) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    for (p, key, e) in ingress_events(log).await {
        let (wf, step, agent) = match &e.payload {
            Payload::StepStarted(s) => (&s.workflow_id, &s.step_id, &s.agent_id),
            Payload::StepSucceeded(s) if s.usage.tokens_in > 0 && s.usage.cost > 0.0 => {
                (&s.workflow_id, &s.step_id, &s.agent_id)
            }
            Payload::StepFailed(s) if s.retryable => (&s.workflow_id, &s.step_id, &s.agent_id),
            Payload::StepDeclined(s) if s.reason == "at capacity" => {
                (&s.workflow_id, &s.step_id, &s.agent_id)
            }
            Payload::RegisterAgent(_) | Payload::AgentHeartbeat(_) => continue,
            other => panic!("unexpected report {other:?}"),
        };
        assert_eq!((&key, &e.correlation_id, &e.producer), (wf, wf, agent));
        assert_eq!(p, partition_for_key(wf.as_bytes(), PARTITIONS));
        out.push((e.payload.type_name(), wf.clone(), step.clone()));
    }
    out
}

/// Polls `check` every 10 ms until it holds; fails after [`WAIT`].
async fn eventually(what: &str, check: impl AsyncFn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

type Reports = [(&'static str, String, String)];

/// Waits until `ready` holds for the current reports.
async fn wait_for(log: &dyn EventLog, what: &str, ready: impl Fn(&Reports) -> bool) {
    eventually(what, async || ready(&reports(log).await)).await;
}

fn has(r: &Reports, kind: &str, wf: &str) -> usize {
    r.iter().filter(|(k, w, _)| *k == kind && w == wf).count()
}

/// Lifecycle events per (payload type, agent), counting partitions seen.
async fn lifecycle(log: &dyn EventLog) -> HashMap<(&'static str, String), HashSet<u32>> {
    let mut seen: HashMap<_, HashSet<u32>> = HashMap::new();
    for (p, key, e) in ingress_events(log).await {
        if matches!(
            e.payload,
            Payload::RegisterAgent(_) | Payload::AgentHeartbeat(_)
        ) {
            assert_eq!((&e.correlation_id, &e.producer), (&key, &key));
            seen.entry((e.payload.type_name(), key))
                .or_default()
                .insert(p);
        }
    }
    seen
}

/// Starts a fleet and waits until every agent registered (once, on its home
/// partition).
async fn start_fleet(
    log: &Arc<dyn EventLog>,
    agents: Vec<SimAgentConfig>,
    heartbeat_interval: Duration,
) -> (watch::Sender<bool>, Fleet) {
    let ids: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();
    let cfg = FleetConfig {
        agents,
        heartbeat_interval,
        seed: 1,
    };
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(run_fleet(log.clone(), codec(), Topics::default(), cfg, rx));
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    wait_lifecycle(log.as_ref(), "RegisterAgent", &ids).await;
    (tx, task)
}

/// Waits until every agent of `ids` wrote `kind`, each to its home
/// partition only (the engine forwards lifecycle events to the others).
async fn wait_lifecycle(log: &dyn EventLog, kind: &'static str, ids: &[&str]) {
    eventually(kind, async || {
        let seen = lifecycle(log).await;
        ids.iter().all(|id| {
            let home = partition_for_key(id.as_bytes(), PARTITIONS);
            seen.get(&(kind, id.to_string()))
                .is_some_and(|p| p.len() == 1 && p.contains(&home))
        })
    })
    .await;
}

/// Signals the fleet to stop and returns its stats.
async fn stop_fleet(stop: watch::Sender<bool>, task: Fleet) -> FleetStats {
    stop.send(true).expect("fleet listening");
    tokio::time::timeout(WAIT, task)
        .await
        .expect("stops in time")
        .expect("no panic")
        .expect("no error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_answers_assignments_and_stops_when_signalled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(&dir).await;
    let agents = vec![
        agent("ok", 4, LatencyDist::Zero, 0.0),
        agent("bad", 4, LatencyDist::Zero, 1.0),
        agent("slow", 1, LatencyDist::Fixed(300), 0.0),
        agent("stuck", 1, LatencyDist::Fixed(60_000), 0.0),
    ];
    let (stop, task) = start_fleet(&log, agents, Duration::from_millis(100)).await;

    let first = assigned("ok", "wf-ok", "s0");
    publish(
        log.as_ref(),
        &[
            ("ok", first.clone()),
            ("bad", assigned("bad", "wf-bad", "s0")),
            ("slow", assigned("slow", "wf-slow-1", "s0")),
            ("slow", assigned("slow", "wf-slow-2", "s0")),
            ("stuck", assigned("stuck", "wf-stuck-1", "s0")),
            ("someone-else", assigned("someone-else", "wf-other", "s0")),
        ],
    )
    .await;
    wait_for(log.as_ref(), "first answers", |r| {
        has(r, "StepSucceeded", "wf-ok") == 1
            && has(r, "StepFailed", "wf-bad") == 1
            && has(r, "StepDeclined", "wf-slow-2") == 1
            && has(r, "StepSucceeded", "wf-slow-1") == 1
            && has(r, "StepStarted", "wf-stuck-1") == 1
    })
    .await;
    let r = reports(log.as_ref()).await;
    for wf in ["wf-ok", "wf-bad", "wf-slow-1"] {
        let kinds: Vec<_> = r
            .iter()
            .filter(|(_, w, _)| w == wf)
            .map(|(k, ..)| *k)
            .collect();
        assert_eq!(kinds.len(), 2, "{wf}: {kinds:?}");
        assert_eq!(kinds[0], "StepStarted", "{wf} starts first");
    }
    assert_eq!(
        has(&r, "StepStarted", "wf-slow-2"),
        0,
        "declined, not started"
    );
    assert!(r.iter().all(|(_, w, _)| w != "wf-other"), "not our agent");

    // Redelivery is ignored; a cancellation stops the stuck step silently and
    // frees its capacity for the next assignment.
    publish(
        log.as_ref(),
        &[
            ("ok", first),
            ("stuck", cancelled("stuck", "wf-stuck-1", "s0")),
            ("stuck", assigned("stuck", "wf-stuck-2", "s0")),
        ],
    )
    .await;
    wait_for(log.as_ref(), "the freed slot", |r| {
        has(r, "StepStarted", "wf-stuck-2") == 1
    })
    .await;
    let r = reports(log.as_ref()).await;
    assert_eq!(has(&r, "StepStarted", "wf-ok"), 1, "redelivery ignored");
    assert_eq!(has(&r, "StepDeclined", "wf-stuck-2"), 0);
    assert!(
        r.iter().filter(|(_, w, _)| w == "wf-stuck-1").count() == 1,
        "no report after cancel"
    );

    wait_lifecycle(log.as_ref(), "AgentHeartbeat", &["ok", "stuck"]).await;

    let stats = stop_fleet(stop, task).await;
    assert_eq!(
        stats,
        FleetStats {
            assignments: 6,
            started: 5,
            succeeded: 2,
            failed: 1,
            declined: 1,
            cancelled: 1,
            stalled: 0,
            silenced: 0,
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_latency_throughput() {
    let n = env_or("SIM_BENCH_ASSIGNMENTS", 20_000) as usize;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(&dir).await;
    let ids: Vec<String> = (0..8).map(|i| format!("agent-{i}")).collect();
    let agents = ids
        .iter()
        .map(|id| agent(id, 16, LatencyDist::Zero, 0.05))
        .collect();
    // No heartbeats during the measurement: ingress then holds only the
    // registrations and the reports.
    let (stop, task) = start_fleet(&log, agents, Duration::from_secs(3600)).await;
    let ingress = Topics::default().ingress();
    let base = {
        let mut sum = 0;
        for p in 0..PARTITIONS {
            sum += log.high_watermark(&ingress, p).await.expect("hwm");
        }
        sum
    };

    // Encode up front so the clock only measures the fleet.
    let codec = codec();
    let mut per_partition: Vec<Vec<ProducerRecord>> = vec![Vec::new(); PARTITIONS as usize];
    for i in 0..n {
        let agent = &ids[i % ids.len()];
        let e = assigned(agent, &format!("wf-{i}"), "s0");
        let p = partition_for_key(agent.as_bytes(), PARTITIONS) as usize;
        let value = Bytes::from(codec.encode(&e).expect("encode"));
        per_partition[p].push(ProducerRecord::new(Some(Bytes::from(agent.clone())), value));
    }
    let started = Instant::now();
    for (p, recs) in per_partition.into_iter().enumerate() {
        for chunk in recs.chunks(5_000) {
            log.append(&Topics::default().assignments(), p as u32, chunk.to_vec())
                .await
                .expect("append");
        }
    }
    let target = base + 2 * n as u64;
    let hwm = async || {
        let mut sum = 0;
        for p in 0..PARTITIONS {
            sum += log.high_watermark(&ingress, p).await.expect("hwm");
        }
        sum
    };
    eventually("every report", async || hwm().await >= target).await;
    let elapsed = started.elapsed();
    let stats = stop_fleet(stop, task).await;
    assert_eq!(stats.assignments, n as u64);
    assert_eq!(stats.started, n as u64);
    assert_eq!(stats.succeeded + stats.failed, n as u64);
    let reports = 2 * n;
    println!(
        "zero-latency fleet: {n} assignments -> {reports} reports in {:.3} s = {:.0} reports/s",
        elapsed.as_secs_f64(),
        reports as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_throughput_rate_and_stop_signal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(&dir).await;
    let n = env_or("SIM_BENCH_WORKFLOWS", 20_000);
    let (_tx, stop) = watch::channel(false);
    let cfg = GeneratorConfig {
        workflows: n,
        ..GeneratorConfig::default()
    };
    let started = Instant::now();
    let run = run_generator(log.clone(), codec(), Topics::default(), cfg, stop);
    let submitted = tokio::time::timeout(WAIT, run).await.expect("in time");
    assert_eq!(submitted.expect("runs"), n);
    let s = started.elapsed().as_secs_f64();
    println!(
        "generator: {n} workflows in {s:.3} s = {:.0} workflows/s",
        n as f64 / s
    );

    let (tx, stop) = watch::channel(false);
    let cfg = GeneratorConfig {
        workflows: 1_000_000,
        rate: Some(1_000.0),
        batch: 100,
        ..GeneratorConfig::default()
    };
    let task = tokio::spawn(run_generator(log, codec(), Topics::default(), cfg, stop));
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(true).expect("generator listening");
    let submitted = tokio::time::timeout(WAIT, task)
        .await
        .expect("stops in time")
        .expect("no panic")
        .expect("runs");
    // About 300 at 1,000/s; generous bounds for a loaded machine.
    assert!((50..=1_000).contains(&submitted), "{submitted}");
}
