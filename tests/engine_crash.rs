//! Effectively once under SIGKILL: the engine (`baton run`, a child
//! process) is killed at random moments while it works through a prepared
//! ingress, restarted each time, then run to completion. Afterwards every
//! submission is reflected in the journal exactly once (one
//! WorkflowAccepted each, no duplicate-workflow rejections, no journal
//! event id twice), every agent, registered once on its home partition, is
//! registered exactly once on every partition and got work there, and each
//! partition's projection store equals a fresh refold of its journal.

use std::collections::{BTreeMap, HashSet};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use baton::codec::Codec;
use baton::domain::engine::EngineConfig;
use baton::domain::events::*;
use baton::engine::{run_partition, verify, Engine, EngineOptions, EngineStats};
use baton::log::embedded::{EmbeddedConfig, EmbeddedLog};
use baton::log::{partition_for_key, EventLog, ProducerRecord};
use baton::store::ProjectionStore;
use baton::topics::Topics;
use bytes::Bytes;

const WORKFLOWS: u64 = 30_000;
const PARTITIONS: u32 = 4;

fn envelope(n: u64, payload: Payload) -> Envelope {
    Envelope {
        event_id: EventId(uuid::Uuid::from_u128(
            0xfeed_0000_0000_0000_0000_0000_0000_0000 | n as u128,
        )),
        correlation_id: payload.correlation_id().to_string(),
        causation_id: None,
        occurred_at: Timestamp::from_datetime(chrono::Utc::now()),
        producer: "crash-test".into(),
        payload,
    }
}

async fn prepare(log: &EmbeddedLog, codec: &Codec, topics: &Topics) {
    for spec in topics.specs(PARTITIONS) {
        log.create_topic(&spec).await.unwrap();
    }
    let mut n = 0;
    for a in 0..4 {
        let reg = RegisterAgent {
            agent_id: format!("agent-{a}"),
            pool: "default".into(),
            capabilities: vec!["llm".into()],
            capacity: 100_000,
            weight: 1,
            labels: BTreeMap::new(),
            heartbeat_interval_ms: 3_600_000,
        };
        // Once, on the agent's home partition: the engine forwards it to
        // the others (which the kills below must not lose or duplicate).
        n += 1;
        let v = codec.encode(&envelope(n, reg.clone().into())).unwrap();
        log.append(
            &topics.ingress(),
            partition_for_key(reg.agent_id.as_bytes(), PARTITIONS),
            vec![ProducerRecord::new(
                Some(Bytes::from(reg.agent_id.clone())),
                Bytes::from(v),
            )],
        )
        .await
        .unwrap();
    }
    let mut by_p: BTreeMap<u32, Vec<ProducerRecord>> = BTreeMap::new();
    for i in 0..WORKFLOWS {
        let id = format!("wf-{i}");
        let step = |s: &str, deps: &[&str]| StepDefinition {
            capabilities: vec!["llm".into()],
            ..StepDefinition::new(s, deps)
        };
        let submit = SubmitWorkflow {
            workflow_id: id.clone(),
            definition: WorkflowDefinition {
                name: "crash".into(),
                steps: vec![step("a", &[]), step("b", &["a"])].into(),
                input: None,
                deadline_ms: None,
                priority: 0,
                labels: BTreeMap::new(),
            },
        };
        n += 1;
        let mut env = envelope(n, submit.into());
        // Every 10th submission is sent twice (a producer retry): same event id.
        let copies = if i % 10 == 0 { 2 } else { 1 };
        env.correlation_id.clone_from(&id);
        let v = Bytes::from(codec.encode(&env).unwrap());
        for _ in 0..copies {
            by_p.entry(partition_for_key(id.as_bytes(), PARTITIONS))
                .or_default()
                .push(ProducerRecord::new(
                    Some(Bytes::from(id.clone())),
                    v.clone(),
                ));
        }
    }
    for (p, recs) in by_p {
        for chunk in recs.chunks(50) {
            log.append(&topics.ingress(), p, chunk.to_vec())
                .await
                .unwrap();
        }
    }
    log.flush().await.unwrap();
}

/// An engine with default settings over `log`, storing under `dir`.
fn engine_on(
    log: &Arc<dyn EventLog>,
    dir: &std::path::Path,
    codec: &Codec,
    topics: &Topics,
) -> Arc<Engine> {
    Arc::new(Engine {
        log: log.clone(),
        codec: codec.clone(),
        topics: topics.clone(),
        config: EngineConfig::default(),
        options: EngineOptions::new(dir.to_path_buf()),
        stats: Arc::new(EngineStats::default()),
        live: Default::default(),
        agent_labels: Default::default(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_survives_sigkill_with_effectively_once_results() {
    let dir = tempfile::tempdir().unwrap();
    let codec = Codec::builtin().unwrap();
    let topics = Topics::default();
    {
        let log = EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).unwrap();
        prepare(&log, &codec, &topics).await;
    }
    // Kill the engine at random moments, a bounded number of times.
    let started = std::time::Instant::now();
    let mut progress = Vec::new();
    for round in 0..6 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .arg("--data-dir")
            .arg(dir.path())
            .args([
                "--partitions",
                "4",
                "run",
                "--no-http",
                "--flush-ms",
                "20",
                "--batch-size",
                "32",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Short lifetimes: the work must outlast several kills. Later rounds
        // live a little longer, so a slow start on a loaded machine (no
        // journal write before the kill) cannot make every round a no-op.
        let lifetime = fastrand::u64(30..300) + 120 * round;
        std::thread::sleep(Duration::from_millis(lifetime));
        child.kill().unwrap();
        child.wait().unwrap();
        let log = EmbeddedLog::open(EmbeddedConfig::read_only(dir.path().join("log"))).unwrap();
        let mut journal = 0;
        for p in 0..PARTITIONS {
            journal += log.high_watermark(&topics.journal(), p).await.unwrap();
        }
        eprintln!("round {round}: killed with {journal} journal events written");
        progress.push(journal);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "round {round}: bounded in time"
        );
    }
    // Finish in-process, then stop (which checkpoints).
    let log: Arc<dyn EventLog> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).unwrap());
    let engine = engine_on(&log, dir.path(), &codec, &topics);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let handles: Vec<_> = (0..PARTITIONS)
        .map(|p| {
            tokio::spawn(run_partition(
                engine.clone(),
                p,
                Duration::ZERO,
                stop_rx.clone(),
            ))
        })
        .collect();
    // Wait until every ingress record is reflected (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let total_ingress: u64 = {
        let mut t = 0;
        for p in 0..PARTITIONS {
            t += log.high_watermark(&topics.ingress(), p).await.unwrap();
        }
        t
    };
    loop {
        let mut accepted = HashSet::new();
        for p in 0..PARTITIONS {
            for r in log.read(&topics.journal(), p, 0, usize::MAX).await.unwrap() {
                if let Ok(e) = codec.decode(&r.value) {
                    if let Payload::WorkflowAccepted(a) = e.payload {
                        accepted.insert(a.workflow_id);
                    }
                }
            }
        }
        if accepted.len() as u64 == WORKFLOWS {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {WORKFLOWS} accepted ({total_ingress} ingress records)",
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_tx.send(true).unwrap();
    for h in handles {
        h.await.unwrap().unwrap();
    }

    let mut accepted: BTreeMap<String, u32> = BTreeMap::new();
    let mut ids = HashSet::new();
    for p in 0..PARTITIONS {
        let (mut registered, mut assigned) = (BTreeMap::<String, u32>::new(), 0u64);
        for r in log.read(&topics.journal(), p, 0, usize::MAX).await.unwrap() {
            let e = codec.decode(&r.value).unwrap();
            assert!(
                ids.insert(e.event_id),
                "journal event id {} appears twice",
                e.event_id
            );
            match &e.payload {
                Payload::AgentRegistered(a) => {
                    *registered.entry(a.agent_id.clone()).or_default() += 1
                }
                Payload::StepAssigned(_) => assigned += 1,
                Payload::WorkflowAccepted(a) => {
                    *accepted.entry(a.workflow_id.clone()).or_default() += 1
                }
                Payload::WorkflowRejected(r) => panic!(
                    "unexpected rejection {}: {} (a re-processed input?)",
                    r.code, r.message
                ),
                _ => {}
            }
        }
        let expected: BTreeMap<String, u32> = (0..4).map(|a| (format!("agent-{a}"), 1)).collect();
        assert_eq!(
            registered, expected,
            "partition {p}: each agent registered once"
        );
        assert!(assigned > 0, "partition {p}: the forwarded agents got work");
    }
    assert_eq!(accepted.len() as u64, WORKFLOWS);
    let final_total = ids.len() as u64;
    assert!(
        progress.iter().any(|&j| j > 0 && j < final_total),
        "at least one kill landed mid-work: {progress:?} of {final_total} journal events"
    );
    assert!(
        accepted.values().all(|&n| n == 1),
        "every submission accepted exactly once"
    );
    for p in 0..PARTITIONS {
        let refolded = verify::refold(
            log.as_ref(),
            &codec,
            &topics.journal(),
            p,
            EngineConfig::default(),
        )
        .await
        .unwrap();
        let store = ProjectionStore::open(dir.path(), p).unwrap();
        if let Some(diff) = verify::compare(&store, &refolded).unwrap() {
            panic!("partition {p}: store != refold of the journal: {diff}");
        }
    }
}

/// A batch of inputs whose facts exceed one log append (16 MiB) is split
/// between inputs instead of stopping the partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_fact_batches_are_split_between_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let codec = Codec::builtin().unwrap();
    let topics = Topics::default();
    let log: Arc<dyn EventLog> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).unwrap());
    for spec in topics.specs(1) {
        log.create_topic(&spec).await.unwrap();
    }
    let big = JsonText(format!("\"{}\"", "x".repeat(200_000)));
    let mut records = Vec::new();
    for i in 0..100u64 {
        let submit = SubmitWorkflow {
            workflow_id: format!("big-{i}"),
            definition: WorkflowDefinition {
                name: "big".into(),
                steps: vec![StepDefinition {
                    id: "a".into(),
                    kind: None,
                    capabilities: vec![],
                    pool: None,
                    depends_on: vec![],
                    timeout_ms: None,
                    retry: None,
                    priority: 0,
                    input: Some(big.clone()),
                    when: None,
                }]
                .into(),
                input: None,
                deadline_ms: None,
                priority: 0,
                labels: BTreeMap::new(),
            },
        };
        let v = codec.encode(&envelope(10_000 + i, submit.into())).unwrap();
        records.push(ProducerRecord::new(None, Bytes::from(v)));
    }
    for chunk in records.chunks(50) {
        log.append(&topics.ingress(), 0, chunk.to_vec())
            .await
            .unwrap();
    }
    let engine = engine_on(&log, dir.path(), &codec, &topics);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(run_partition(engine.clone(), 0, Duration::ZERO, stop_rx));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while EngineStats::get(&engine.stats.workflows_accepted) < 100 {
        assert!(!handle.is_finished(), "the partition loop stopped early");
        assert!(
            std::time::Instant::now() < deadline,
            "only {} accepted",
            EngineStats::get(&engine.stats.workflows_accepted)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    handle.await.unwrap().unwrap();
    let journal = log.read(&topics.journal(), 0, 0, usize::MAX).await.unwrap();
    let accepted = journal
        .iter()
        .filter(|r| {
            matches!(
                codec.decode(&r.value).map(|e| e.payload),
                Ok(Payload::WorkflowAccepted(_))
            )
        })
        .count();
    assert_eq!(accepted, 100, "every big submission reached the journal");
}
