//! `baton tail`: any topic as JSON lines, one per record:
//! `{"topic","partition","offset","timestamp","key","event":{…}}`.
//! Records that do not decode are printed with an `error` object and the raw
//! value in base64 instead of stopping (the DLQ and ingress may hold them).
//!
//! Start position: `--from-beginning`, or `--offset N`; otherwise the
//! beginning when not following and the end (new records only) with
//! `--follow`. Opens the log read-only, so it runs beside a writer.
//!
//! A partition whose records cannot all be read (damage, a shortened
//! segment) is reported on stderr and the exit code is 1, after the
//! readable records of every partition are printed: never exit 0 with a
//! short history.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use clap::Args;
use serde_json::{json, Value};

use super::backend::{self, Access};
use super::{GlobalArgs, UsageError};
use crate::codec::Codec;
use crate::log::{read_toward, LogError, StoredRecord};

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Topic to read (default: the ingress topic).
    #[arg(long)]
    pub topic: Option<String>,
    /// Start at the first stored record.
    #[arg(long)]
    pub from_beginning: bool,
    /// Start at this offset (in every selected partition).
    #[arg(long, conflicts_with = "from_beginning")]
    pub offset: Option<u64>,
    /// Keep waiting for new records (Ctrl-C to stop).
    #[arg(long)]
    pub follow: bool,
    /// Only this partition.
    #[arg(long)]
    pub partition: Option<u32>,
    /// Stop after this many records.
    #[arg(long)]
    pub max: Option<u64>,
}

const POLL: Duration = Duration::from_millis(100);
const BATCH: usize = 1000;

pub async fn run(global: &GlobalArgs, args: TailArgs) -> anyhow::Result<ExitCode> {
    let log = backend::open(global, Access::Read).await?;
    let topic = args
        .topic
        .clone()
        .unwrap_or_else(|| global.topics().ingress());
    let count = log.partition_count(&topic).await?;
    let partitions: Vec<u32> = match args.partition {
        Some(p) if p >= count => {
            return Err(UsageError(format!(
                "--partition {p}: topic {topic} has partitions 0..{}",
                count.saturating_sub(1)
            ))
            .into())
        }
        Some(p) => vec![p],
        None => (0..count).collect(),
    };
    let mut positions = Vec::with_capacity(partitions.len());
    // Without --follow, read up to the end seen now: on a broker a read may
    // come back empty before that (a slow fetch), which is not the end.
    let mut ends = Vec::with_capacity(partitions.len());
    for &p in &partitions {
        ends.push(if args.follow {
            0
        } else {
            log.high_watermark(&topic, p).await?
        });
        let start = match args.offset {
            Some(o) => o,
            None if args.from_beginning || !args.follow => log.log_start(&topic, p).await?,
            None => log.high_watermark(&topic, p).await?,
        };
        positions.push((p, start));
    }

    let codec = Codec::builtin()?;
    // One Ctrl-C listener for the whole run, checked between batches, so an
    // interrupt is seen while catching up, not only while idle.
    let stop = Arc::new(AtomicBool::new(false));
    if args.follow {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::Relaxed);
            }
        });
    }
    let mut printed = 0u64;
    let limit = args.max.unwrap_or(u64::MAX);
    let stdout = std::io::stdout();
    // Partitions that hit damage: reported on stderr, then skipped, so the
    // others still print; the exit code says the history is incomplete.
    let mut damaged = vec![false; positions.len()];
    loop {
        let mut progressed = false;
        for (((p, next), &end), failed) in positions.iter_mut().zip(&ends).zip(&mut damaged) {
            while !*failed && printed < limit && !stop.load(Ordering::Relaxed) {
                let want = BATCH.min((limit - printed).min(BATCH as u64) as usize);
                let read = if args.follow {
                    log.read(&topic, *p, *next, want).await
                } else {
                    read_toward(log.as_ref(), &topic, *p, *next, end, want).await
                };
                let records = match read {
                    Ok(r) => r,
                    Err(e @ LogError::Corrupt { .. }) => {
                        eprintln!("error: {topic}/{p}: cannot read from offset {next}: {e}");
                        *failed = true;
                        break;
                    }
                    Err(e) => return Err(e.into()),
                };
                if records.is_empty() {
                    break;
                }
                let mut out = stdout.lock();
                for r in &records {
                    let line = render(&codec, &topic, r);
                    if writeln!(out, "{line}").is_err() {
                        // Broken pipe (e.g. `| head`): the reader is gone.
                        return Ok(ExitCode::SUCCESS);
                    }
                    *next = r.offset + 1;
                    printed += 1;
                }
                if out.flush().is_err() {
                    return Ok(ExitCode::SUCCESS);
                }
                progressed = true;
            }
        }
        if printed >= limit || stop.load(Ordering::Relaxed) || (!args.follow && !progressed) {
            break;
        }
        if !progressed {
            tokio::time::sleep(POLL).await;
        }
    }
    // The embedded log never returns nothing below its end unless records
    // there cannot be read: a short history must not pass for a whole one.
    if !args.follow && global.brokers.is_none() && printed < limit {
        for (((p, next), &end), failed) in positions.iter().zip(&ends).zip(&mut damaged) {
            if !*failed && *next < end {
                eprintln!(
                    "error: {topic}/{p}: stopped at offset {next}, below the partition's end {end}: the records in between could not be read"
                );
                *failed = true;
            }
        }
    }
    if damaged.iter().any(|d| *d) {
        eprintln!("error: the output above is incomplete (see `baton log repair --help`)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn key_json(key: &Option<bytes::Bytes>) -> (Value, Option<Value>) {
    match key {
        None => (Value::Null, None),
        Some(k) => match std::str::from_utf8(k) {
            Ok(s) => (Value::String(s.to_string()), None),
            Err(_) => (
                Value::Null,
                Some(Value::String(
                    base64::engine::general_purpose::STANDARD.encode(k),
                )),
            ),
        },
    }
}

/// One record as a JSON line.
pub fn render(codec: &Codec, topic: &str, r: &StoredRecord) -> Value {
    let (key, key_b64) = key_json(&r.key);
    let timestamp = chrono::DateTime::from_timestamp_millis(r.timestamp_ms)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Value::from(r.timestamp_ms));
    let mut line = json!({
        "topic": topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": timestamp,
        "key": key,
    });
    if let Some(b) = key_b64 {
        line["key_base64"] = b;
    }
    match codec.decode(&r.value) {
        Ok(event) => line["event"] = serde_json::to_value(&event).unwrap_or(Value::Null),
        Err(e) => {
            line["error"] = json!({"code": e.code(), "message": e.to_string()});
            line["value_base64"] =
                Value::String(base64::engine::general_purpose::STANDARD.encode(&r.value));
        }
    }
    line
}
