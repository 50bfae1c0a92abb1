//! `baton produce`: JSON lines in, Avro single-object records out.
//!
//! All-or-nothing by default: every line is parsed, validated against the
//! schema and encoded first; if any line fails, each failure is reported as
//! `line N: reason` and nothing is written (exit 1). With `--skip-invalid`
//! the valid lines are written and the invalid ones reported (exit 1 if any
//! was skipped). Records are appended as one atomic batch per partition, so
//! no partial record or batch is ever visible.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;

use super::backend::{self, Access};
use super::GlobalArgs;
use crate::codec::json::parse_event;
use crate::codec::{Codec, DEFAULT_MAX_EVENT_BYTES};
use crate::domain::events::Timestamp;
use crate::log::{partition_for_key, ProducerRecord};

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to append to (default: the ingress topic, `<prefix>ingress`).
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
    /// Largest encoded event accepted, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_EVENT_BYTES)]
    pub max_event_bytes: usize,
}

struct Encoded {
    key: Bytes,
    value: Bytes,
    timestamp_ms: i64,
}

pub async fn run(global: &GlobalArgs, args: ProduceArgs) -> anyhow::Result<ExitCode> {
    let input: Box<dyn Read> = match &args.file {
        Some(path) => Box::new(
            std::fs::File::open(path)
                .with_context(|| format!("cannot open --file {}", path.display()))?,
        ),
        None => Box::new(std::io::stdin()),
    };
    let codec = Codec::builtin()?.with_max_event_bytes(args.max_event_bytes);
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

    let log = backend::open(global, Access::Write)?;
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
    let mut placed = Vec::new();
    for (p, records) in batches {
        let offsets = log
            .append(&topic, p, records)
            .await
            .with_context(|| format!("appending to {topic}/{p}"))?;
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
