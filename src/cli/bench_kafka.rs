//! `baton bench --only kafka`: the engine on a Kafka broker against a raw
//! rdkafka consume of the same ingress topic, measured in one run.
//!
//! A fresh set of topics (a random prefix) gets agents and `--kafka-workflows`
//! submissions. Then, on the same broker and data:
//! 1. a raw consume: one rdkafka consumer assigned every ingress partition
//!    reads every record (no decoding): what the broker sustains;
//! 2. the engine catches up on the same ingress from an empty store: decode,
//!    decide, journal append (framed), status and assignment publishing,
//!    offset commits — the work a live engine does per input.
//!
//! The ratio of the two is the figure to compare, since both share the
//! machine with the broker. Rates count from each phase's first record
//! (startup is reported apart: it is a fixed cost, not a rate). The engine writes several records per input
//! (journal facts, assignments, status), so the JSON also gives the
//! broker-bound rate: reading one record and writing that many at the
//! measured consume and produce rates. The topics are left on the broker (the log API
//! has no delete); use a scratch broker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{json, Value};

use super::GlobalArgs;
use crate::codec::Codec;
use crate::domain::engine::EngineConfig;
use crate::domain::events::*;
use crate::engine::supervisor::run_owned;
use crate::engine::{Engine, EngineOptions, EngineStats};
use crate::log::kafka::KafkaLog;
use crate::log::membership::Membership;
use crate::log::{partition_for_key, EventLog, ProducerRecord};
use crate::topics::Topics;

const AGENTS: u32 = 8;
/// Bound on each measured phase.
const PHASE_LIMIT: Duration = Duration::from_secs(300);

fn envelope(payload: Payload, correlation: &str) -> Envelope {
    Envelope {
        event_id: EventId(uuid::Uuid::new_v4()),
        correlation_id: correlation.to_string(),
        causation_id: None,
        occurred_at: Timestamp::from_datetime(chrono::Utc::now()),
        producer: "bench".into(),
        payload,
    }
}

fn submission(i: u64) -> SubmitWorkflow {
    let step = |id: &str, deps: &[&str]| StepDefinition {
        capabilities: vec!["llm".into()],
        ..StepDefinition::new(id, deps)
    };
    SubmitWorkflow {
        workflow_id: format!("bench-wf-{i}"),
        definition: WorkflowDefinition {
            name: "bench".into(),
            steps: vec![step("plan", &[]), step("write", &["plan"])].into(),
            input: None,
            deadline_ms: None,
            priority: 0,
            labels: BTreeMap::new(),
        },
    }
}

/// Fills the ingress: each agent once, on its home partition, then the
/// submissions keyed by workflow id. Returns (records, produce seconds).
async fn prepare(
    log: &KafkaLog,
    codec: &Codec,
    topics: &Topics,
    partitions: u32,
    workflows: u64,
) -> anyhow::Result<(u64, f64)> {
    let t = Instant::now();
    let mut count = 0u64;
    for a in 0..AGENTS {
        let reg = RegisterAgent {
            agent_id: format!("bench-agent-{a}"),
            pool: "default".into(),
            capabilities: vec!["llm".into()],
            capacity: 1_000_000,
            weight: 1,
            labels: BTreeMap::new(),
            heartbeat_interval_ms: 3_600_000,
        };
        // Once, on the agent's home partition (the engine forwards it).
        let v = codec.encode(&envelope(reg.clone().into(), &reg.agent_id))?;
        log.append(
            &topics.ingress(),
            partition_for_key(reg.agent_id.as_bytes(), partitions),
            vec![ProducerRecord::new(
                Some(reg.agent_id.clone().into_bytes().into()),
                v.into(),
            )],
        )
        .await?;
        count += 1;
    }
    let mut batches: Vec<Vec<ProducerRecord>> = vec![Vec::new(); partitions as usize];
    for i in 0..workflows {
        let s = submission(i);
        let id = s.workflow_id.clone();
        let p = partition_for_key(id.as_bytes(), partitions) as usize;
        let v = codec.encode(&envelope(s.into(), &id))?;
        batches[p].push(ProducerRecord::new(Some(Bytes::from(id)), v.into()));
        if batches[p].len() == 1000 {
            let b = std::mem::take(&mut batches[p]);
            count += b.len() as u64;
            log.append(&topics.ingress(), p as u32, b).await?;
        }
    }
    for (p, b) in batches.into_iter().enumerate() {
        count += b.len() as u64;
        if !b.is_empty() {
            log.append(&topics.ingress(), p as u32, b).await?;
        }
    }
    log.flush().await?;
    Ok((count, t.elapsed().as_secs_f64()))
}

/// How long a measured phase took: in all, and from its first record on
/// (connecting, joining and the first fetch excluded), with the records
/// counted in that second span.
#[derive(Clone, Copy, Debug)]
struct Phase {
    secs: f64,
    steady_secs: f64,
    steady_records: u64,
}

impl Phase {
    fn rate(&self, total: u64) -> f64 {
        total as f64 / self.secs.max(1e-9)
    }

    fn steady_rate(&self) -> f64 {
        self.steady_records as f64 / self.steady_secs.max(1e-9)
    }
}

/// Reads every ingress record with one plain consumer.
fn raw_consume(log: &KafkaLog, topic: &str, partitions: u32, total: u64) -> anyhow::Result<Phase> {
    let consumer = log.plain_consumer()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p as i32, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let t = Instant::now();
    let (mut seen, mut bytes) = (0u64, 0u64);
    let mut first = None;
    while seen < total {
        anyhow::ensure!(
            t.elapsed() < PHASE_LIMIT,
            "raw consume: {seen} of {total} in time"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                seen += 1;
                bytes += m.payload().map_or(0, |p| p.len() as u64);
            }
            Some(Err(e)) => tracing::debug!(error = %e, "raw consume"),
            None => {}
        }
    }
    std::hint::black_box(bytes);
    let first = first.unwrap_or(t);
    Ok(Phase {
        secs: t.elapsed().as_secs_f64(),
        steady_secs: first.elapsed().as_secs_f64(),
        steady_records: total.saturating_sub(1),
    })
}

/// Runs the engine over every partition from an empty store until it has
/// taken in `total` inputs; returns its phase and stats.
async fn engine_catch_up(
    log: Arc<dyn EventLog>,
    codec: &Codec,
    topics: &Topics,
    partitions: u32,
    total: u64,
) -> anyhow::Result<(Phase, Arc<EngineStats>)> {
    let dir = std::env::temp_dir().join(format!("baton-bench-kafka-{}", std::process::id()));
    let result = catch_up_in(&dir, log, codec, topics, partitions, total).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn catch_up_in(
    dir: &std::path::Path,
    log: Arc<dyn EventLog>,
    codec: &Codec,
    topics: &Topics,
    partitions: u32,
    total: u64,
) -> anyhow::Result<(Phase, Arc<EngineStats>)> {
    let _ = std::fs::remove_dir_all(dir);
    let engine = Arc::new(Engine {
        log,
        codec: codec.clone(),
        topics: topics.clone(),
        config: EngineConfig {
            max_running_workflows: 1_000_000,
            ..EngineConfig::default()
        },
        options: EngineOptions::new(dir.to_path_buf()),
        stats: Arc::new(EngineStats::default()),
        live: Default::default(),
        agent_labels: Default::default(),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let t = Instant::now();
    let membership = Membership::fixed((0..partitions).collect());
    let handle = tokio::spawn(run_owned(engine.clone(), membership, stop_rx));
    // The first sample that saw inputs taken in, and how many it saw.
    let mut first: Option<(Instant, u64)> = None;
    while EngineStats::get(&engine.stats.ingress_events) < total {
        let taken = EngineStats::get(&engine.stats.ingress_events);
        if taken > 0 && first.is_none() {
            first = Some((Instant::now(), taken));
        }
        anyhow::ensure!(
            t.elapsed() < PHASE_LIMIT && !handle.is_finished(),
            "engine: {} of {total} inputs in time",
            EngineStats::get(&engine.stats.ingress_events)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    let (first_at, first_taken) = first.unwrap_or((t, 0));
    let phase = Phase {
        secs,
        steady_secs: first_at.elapsed().as_secs_f64(),
        steady_records: total.saturating_sub(first_taken),
    };
    let _ = stop_tx.send(true);
    handle.await??;
    Ok((phase, engine.stats.clone()))
}

pub async fn measure(global: &GlobalArgs, workflows: u64) -> anyhow::Result<Value> {
    let config = super::backend::kafka_config(global)?
        .ok_or_else(|| super::UsageError("bench --only kafka needs --brokers".into()))?;
    let prefix = format!("bench-{:x}.", fastrand::u32(..));
    let topics = Topics::new(&prefix);
    let mut config = config;
    config.atomic_topics = vec![topics.journal()];
    let kafka = Arc::new(KafkaLog::connect(config).await?);
    let partitions = global.partitions;
    for spec in topics.specs(partitions) {
        kafka.create_topic(&spec).await?;
    }
    let codec = Codec::builtin()?;
    let (total, produce_s) = prepare(&kafka, &codec, &topics, partitions, workflows).await?;

    let raw_phase = {
        let (k, topic) = (kafka.clone(), topics.ingress());
        tokio::task::spawn_blocking(move || raw_consume(&k, &topic, partitions, total)).await??
    };
    let log: Arc<dyn EventLog> = kafka.clone();
    // The engine also reads the registrations it forwards itself.
    let forwarded = u64::from(AGENTS) * u64::from(partitions.saturating_sub(1));
    let (engine_phase, stats) =
        engine_catch_up(log, &codec, &topics, partitions, total + forwarded).await?;
    let engine_s = engine_phase.steady_secs;
    // Every record the engine wrote: the topics are fresh, so their ends
    // are the counts.
    let mut written = 0u64;
    for t in [
        topics.journal(),
        topics.assignments(),
        topics.status(),
        topics.alerts(),
        topics.dlq(),
    ] {
        for p in 0..partitions {
            written += kafka.high_watermark(&t, p).await?;
        }
    }
    // Both rates count from the first record on: connecting, joining the
    // group and the first fetch are paid once (about 0.5 s for the raw
    // consumer on tansu, which made a short run's raw rate look 10x lower
    // than it is); the whole-phase rates are reported beside them.
    let raw = raw_phase.steady_rate();
    let produce = total as f64 / produce_s;
    let engine = engine_phase.steady_rate();
    // What the broker allows an engine that reads one record and writes
    // `per_input` per input, at the rates measured above (no decoding, no
    // deciding): the ceiling the engine's figure compares with.
    let per_input = written as f64 / total as f64;
    let ceiling = 1.0 / (1.0 / raw + per_input / produce);
    Ok(json!({
        "broker": global.brokers,
        "topic_prefix": prefix,
        "partitions": partitions,
        "ingress_records": total,
        "produce_records_per_s": produce,
        "raw_consume_records_per_s": raw,
        "engine_inputs_per_s": engine,
        "engine_vs_raw_consume": engine / raw.max(1e-9),
        "raw_consume_startup_s": raw_phase.secs - raw_phase.steady_secs,
        "engine_startup_s": engine_phase.secs - engine_phase.steady_secs,
        "raw_consume_with_startup_records_per_s": raw_phase.rate(total),
        "engine_with_startup_inputs_per_s": engine_phase.rate(total),
        "engine_journal_facts": EngineStats::get(&stats.journal_events),
        "engine_journal_facts_per_s": EngineStats::get(&stats.journal_events) as f64 / engine_s,
        "engine_assignments": EngineStats::get(&stats.assignments),
        "engine_records_written": written,
        "engine_records_written_per_input": per_input,
        "engine_broker_records_per_s": (total + written) as f64 / engine_s,
        "broker_bound_inputs_per_s": ceiling,
        "engine_vs_broker_bound": engine / ceiling,
    }))
}
