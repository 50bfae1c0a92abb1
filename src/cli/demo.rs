//! `baton demo`: the main job on the embedded log, no Kafka needed.
//!
//! Until the engine lands this runs the foundation end to end: it produces
//! one example of every ingress event type (the files in `examples/`) to the
//! ingress topic, reads them back and checks each decodes to what was sent;
//! then it appends `--events` synthetic StepSucceeded events to
//! `<prefix>demo` in batches and scans them back, reporting throughput.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use serde_json::json;

use super::backend::{self, Access};
use super::tail::read_all;
use super::GlobalArgs;
use crate::codec::json::parse_event;
use crate::codec::{samples, Codec};
use crate::domain::events::{EventId, Payload, Timestamp};
use crate::log::{partition_for_key, EventLog, ProducerRecord, TopicSpec};

/// The `examples/` files, compiled in so the demo works from any directory.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "register_agent",
        include_str!("../../examples/register_agent.jsonl"),
    ),
    (
        "submit_workflow",
        include_str!("../../examples/submit_workflow.jsonl"),
    ),
    (
        "agent_heartbeat",
        include_str!("../../examples/agent_heartbeat.jsonl"),
    ),
    (
        "step_started",
        include_str!("../../examples/step_started.jsonl"),
    ),
    (
        "step_declined",
        include_str!("../../examples/step_declined.jsonl"),
    ),
    (
        "step_failed",
        include_str!("../../examples/step_failed.jsonl"),
    ),
    (
        "step_succeeded",
        include_str!("../../examples/step_succeeded.jsonl"),
    ),
    (
        "cancel_workflow",
        include_str!("../../examples/cancel_workflow.jsonl"),
    ),
    (
        "deregister_agent",
        include_str!("../../examples/deregister_agent.jsonl"),
    ),
];

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Synthetic events for the throughput run (0 to skip it).
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Records per appended batch in the throughput run.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch: u64,
    /// Print one JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(global: &GlobalArgs, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let log = backend::open(global, Access::Write)?;
    backend::ensure_topics(log.as_ref(), global, None).await?;
    let codec = Codec::builtin()?;

    let round_trip = examples_round_trip(log.as_ref(), global, &codec).await?;
    if !args.json {
        println!(
            "produced and read back {} ingress events (one per type):",
            round_trip.len()
        );
        for (name, at) in &round_trip {
            println!("  {name:<16} -> {at}");
        }
    }

    let throughput = if args.events > 0 {
        Some(
            throughput(
                log.as_ref(),
                global,
                &codec,
                args.events,
                args.batch as usize,
            )
            .await?,
        )
    } else {
        None
    };
    log.flush().await?;
    if args.json {
        println!(
            "{}",
            json!({
                "data_dir": global.data_dir.display().to_string(),
                "examples": round_trip.len(),
                "throughput": throughput,
            })
        );
    } else if let Some(t) = throughput {
        println!(
            "throughput on {}: {} events, encode+append {:.0} events/s, read+decode {:.0} events/s",
            t["topic"].as_str().unwrap_or_default(),
            t["events"],
            t["append_events_per_s"].as_f64().unwrap_or_default(),
            t["scan_events_per_s"].as_f64().unwrap_or_default(),
        );
        println!(
            "see them with: baton tail --topic {} --from-beginning",
            global.topics().ingress()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn examples_round_trip(
    log: &dyn EventLog,
    global: &GlobalArgs,
    codec: &Codec,
) -> anyhow::Result<Vec<(String, String)>> {
    let topic = global.topics().ingress();
    let partitions = log.partition_count(&topic).await?;
    let now = Timestamp::from_datetime(chrono::Utc::now());
    let mut placed = Vec::new();
    for (name, text) in EXAMPLES {
        let mut event = parse_event(text.trim(), now, "baton-demo")
            .with_context(|| format!("examples/{name}.jsonl"))?;
        // Fresh ids so repeated demos append new events rather than duplicates.
        event.event_id = EventId::random();
        let value = codec.encode(&event)?;
        let p = partition_for_key(event.correlation_id.as_bytes(), partitions);
        let offsets = log
            .append(
                &topic,
                p,
                vec![ProducerRecord::new(
                    Some(Bytes::from(event.correlation_id.clone())),
                    Bytes::from(value),
                )],
            )
            .await?;
        let Some(&offset) = offsets.first() else {
            bail!("append returned no offset")
        };
        let back = log.read(&topic, p, offset, 1).await?;
        let Some(record) = back.first() else {
            bail!("{topic}/{p}@{offset} not readable after append")
        };
        let decoded = codec.decode(&record.value)?;
        if decoded != event {
            bail!("{name}: read back a different event than was written");
        }
        placed.push((
            decoded.payload.type_name().to_string(),
            format!("{topic}/{p}@{offset}"),
        ));
    }
    Ok(placed)
}

async fn throughput(
    log: &dyn EventLog,
    global: &GlobalArgs,
    codec: &Codec,
    events: u64,
    batch: usize,
) -> anyhow::Result<serde_json::Value> {
    let topic = format!("{}demo", global.topic_prefix);
    log.create_topic(&TopicSpec::new(topic.clone(), global.partitions))
        .await
        .ok();
    let partitions = log.partition_count(&topic).await?;
    let mut before = HashMap::new();
    for p in 0..partitions {
        before.insert(p, log.high_watermark(&topic, p).await?);
    }
    let template = samples::step_succeeded();
    let started = Instant::now();
    let mut pending: HashMap<u32, Vec<ProducerRecord>> = HashMap::new();
    for i in 0..events {
        let mut event = template.clone();
        event.event_id = EventId::random();
        let wf = format!("wf-{:06}", i % 10_000);
        if let Payload::StepSucceeded(s) = &mut event.payload {
            s.workflow_id.clone_from(&wf);
        }
        event.correlation_id.clone_from(&wf);
        let p = partition_for_key(wf.as_bytes(), partitions);
        let value = codec.encode(&event)?;
        let batch_for_p = pending.entry(p).or_default();
        batch_for_p.push(ProducerRecord::new(
            Some(Bytes::from(wf)),
            Bytes::from(value),
        ));
        if batch_for_p.len() >= batch {
            let records = std::mem::take(batch_for_p);
            log.append(&topic, p, records).await?;
        }
    }
    for (p, records) in pending {
        if !records.is_empty() {
            log.append(&topic, p, records).await?;
        }
    }
    log.flush().await?;
    let append_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut decoded = 0u64;
    for p in 0..partitions {
        let mut next = before.get(&p).copied().unwrap_or(0);
        loop {
            let records = log.read(&topic, p, next, 10_000).await?;
            let Some(last) = records.last() else { break };
            next = last.offset + 1;
            for r in &records {
                codec.decode(&r.value)?;
                decoded += 1;
            }
        }
    }
    let scan_s = started.elapsed().as_secs_f64();
    if decoded != events {
        bail!("wrote {events} events but read back {decoded}");
    }
    let total = read_all(log, &topic).await?.len();
    Ok(json!({
        "topic": topic,
        "events": events,
        "topic_total": total,
        "append_s": append_s,
        "append_events_per_s": events as f64 / append_s.max(1e-9),
        "scan_s": scan_s,
        "scan_events_per_s": events as f64 / scan_s.max(1e-9),
    }))
}
