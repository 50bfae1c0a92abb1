//! `baton produce`: JSON lines in, Avro single-object records out.
//!
//! All-or-nothing by default: every line is parsed, validated against the
//! schema and encoded first; if any line fails, each failure is reported as
//! `line N: reason` and nothing is written (exit 1). With `--skip-invalid`
//! the valid lines are written and the invalid ones reported (exit 1 if any
//! was skipped). Records are appended as one atomic batch per partition
//! (each checked to fit before any is written), so no partial record or
//! batch is ever visible. Atomicity across partitions is not promised: if an
//! IO error stops the run between partitions, the error names the
//! partitions already written.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;

use super::backend::{self, Access};
use super::{GlobalArgs, UsageError};
use crate::codec::json::parse_event;
use crate::codec::{Codec, MAX_INGRESS_EVENT_BYTES};
use crate::domain::events::Timestamp;
use crate::log::embedded::{validate_topic_name, DEFAULT_MAX_BATCH_BYTES};
use crate::log::{partition_for_key, ProducerRecord};

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to append to (default: the ingress topic, `<prefix>ingress`).
    /// The engine-owned topics (journal, assignments, status, alerts, dlq)
    /// are refused.
    #[arg(long)]
    pub topic: Option<String>,
    /// Key every record with this instead of its correlation id.
    #[arg(long)]
    pub partition_key: Option<String>,
    /// Read events from this file instead of stdin.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Write the valid lines and report the invalid ones, instead of writing
    /// nothing when any line is invalid.
    #[arg(long)]
    pub skip_invalid: bool,
    /// `producer` for events that do not name one.
    #[arg(long, default_value = "baton-cli")]
    pub producer: String,
    /// Largest encoded event accepted, in bytes (at most the 983,040 the
    /// engine accepts on ingress: 1 MiB less the headroom it needs to
    /// journal or dead-letter any input).
    #[arg(long, default_value_t = MAX_INGRESS_EVENT_BYTES as u64, value_parser = clap::value_parser!(u64).range(64..=MAX_INGRESS_EVENT_BYTES as u64))]
    pub max_event_bytes: u64,
}

struct Encoded {
    key: Bytes,
    value: Bytes,
    timestamp_ms: i64,
}

/// Per-record framing overhead in a log batch, generously rounded up.
const RECORD_OVERHEAD: usize = 64;

pub async fn run(global: &GlobalArgs, args: ProduceArgs) -> anyhow::Result<ExitCode> {
    let topic = args
        .topic
        .clone()
        .unwrap_or_else(|| global.topics().ingress());
    validate_topic_name(&topic).map_err(|e| UsageError(format!("--topic: {e}")))?;
    if global.topics().engine_owned(&topic) {
        return Err(UsageError(format!(
            "--topic: {topic} is written by the engine only; produce writes requests and reports to the ingress topic ({})",
            global.topics().ingress()
        ))
        .into());
    }
    let input: Box<dyn Read> = match &args.file {
        Some(path) => Box::new(
            std::fs::File::open(path)
                .with_context(|| format!("cannot open --file {}", path.display()))?,
        ),
        None => Box::new(std::io::stdin()),
    };
    let codec = Codec::builtin()?.with_max_event_bytes(args.max_event_bytes as usize);
    let now = Timestamp::from_datetime(chrono::Utc::now());

    let mut valid = Vec::new();
    let mut failures = Vec::new();
    for (i, line) in BufReader::new(input).lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("reading line {n}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let encoded = parse_event(&line, now, &args.producer)
            .map_err(|e| e.to_string())
            .and_then(|event| {
                let value = codec
                    .encode(&event)
                    .map_err(|e| format!("{}: {e}", event.payload.type_name()))?;
                let key = args
                    .partition_key
                    .clone()
                    .unwrap_or_else(|| event.correlation_id.clone());
                Ok(Encoded {
                    key: Bytes::from(key),
                    value: Bytes::from(value),
                    timestamp_ms: event.occurred_at.as_micros().div_euclid(1000),
                })
            });
        match encoded {
            Ok(e) => valid.push(e),
            Err(reason) => failures.push((n, reason)),
        }
    }
    for (n, reason) in &failures {
        eprintln!("line {n}: {reason}");
    }
    if !failures.is_empty() && !args.skip_invalid {
        eprintln!(
            "error: {} invalid line(s); nothing was written (use --skip-invalid to write the valid ones)",
            failures.len()
        );
        return Ok(ExitCode::from(1));
    }
    if valid.is_empty() {
        eprintln!("no events to produce");
        return Ok(if failures.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }

    let log = backend::open(global, Access::Write).await?;
    let topic = args
        .topic
        .clone()
        .unwrap_or_else(|| global.topics().ingress());
    backend::ensure_topics(log.as_ref(), global, Some(&topic)).await?;
    let partitions = log.partition_count(&topic).await?;
    let mut batches: BTreeMap<u32, Vec<ProducerRecord>> = BTreeMap::new();
    let count = valid.len();
    for e in valid {
        let p = partition_for_key(&e.key, partitions);
        batches.entry(p).or_default().push(ProducerRecord {
            key: Some(e.key),
            value: e.value,
            headers: Vec::new(),
            timestamp_ms: Some(e.timestamp_ms),
        });
    }
    // Each partition's records go in one atomic batch; check every batch
    // fits before writing any, so a too-large input writes nothing.
    for (p, records) in &batches {
        let size: usize = records
            .iter()
            .map(|r| r.value.len() + r.key.as_ref().map_or(0, |k| k.len()) + RECORD_OVERHEAD)
            .sum();
        if size > DEFAULT_MAX_BATCH_BYTES {
            eprintln!(
                "error: the input for {topic}/{p} is about {size} bytes, over the {DEFAULT_MAX_BATCH_BYTES}-byte \
                 limit of one atomic batch; nothing was written (split the input into smaller files)"
            );
            return Ok(ExitCode::from(1));
        }
    }
    let mut placed = Vec::new();
    for (p, records) in batches {
        let offsets = match log.append(&topic, p, records).await {
            Ok(offsets) => offsets,
            Err(e) => {
                let written = if placed.is_empty() {
                    "nothing".to_string()
                } else {
                    placed.join(", ")
                };
                return Err(anyhow::Error::new(e).context(format!(
                    "appending to {topic}/{p} failed; already written (partition:offsets): {written}"
                )));
            }
        };
        if let (Some(first), Some(last)) = (offsets.first(), offsets.last()) {
            placed.push(format!("{p}:{first}..={last}"));
        }
    }
    log.flush().await?;
    eprintln!(
        "produced {count} event(s) to {topic} (partition:offsets {})",
        placed.join(", ")
    );
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
