//! The contract every [`EventLog`] backend must pass: one async check per
//! rule of the offset rules in the [`log`](super) module doc, plus
//! [`run_all`].
//!
//! Invariants:
//! - Checks use only the trait, so the embedded and the Kafka backend run the
//!   very same code.
//! - Each check works on its own topics and groups, named `<prefix>-<check>`,
//!   and assumes nothing about offsets beyond the rules (no density, no
//!   start at 0): it measures the high watermark first. With a fresh prefix
//!   per run the checks can share a long-lived broker.
//! - A check returns `Err` with a message saying what was expected and what
//!   came back; it never panics on a backend's misbehaviour.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::{
    EventLog, Header, LogError, Offset, ProducerRecord, StoredRecord, TopicPartition, TopicSpec,
};

/// The result of one check.
pub type CheckResult = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Runs a trait call, turning its error into a message naming the call.
macro_rules! call {
    ($what:expr, $fut:expr) => {
        $fut.await.map_err(|e| format!("{} failed: {e}", $what))?
    };
}

mod appends;
mod groups;
mod reads;

pub use appends::*;
pub use groups::*;
pub use reads::*;

fn value(i: usize) -> Bytes {
    Bytes::from(format!("value-{i}"))
}

fn records(range: std::ops::Range<usize>) -> Vec<ProducerRecord> {
    range
        .map(|i| ProducerRecord::new(Some(Bytes::from(format!("key-{i}"))), value(i)))
        .collect()
}

async fn topic(
    log: &dyn EventLog,
    prefix: &str,
    name: &str,
    partitions: u32,
) -> Result<String, String> {
    let name = format!("{prefix}-{name}");
    call!(
        format!("create_topic({name})"),
        log.create_topic(&TopicSpec::new(&name, partitions))
    );
    Ok(name)
}

/// Reads everything from `from` to the high watermark, `step` records at a
/// time, continuing from `last.offset + 1` as the rules require.
async fn read_all(
    log: &dyn EventLog,
    topic: &str,
    partition: u32,
    from: Offset,
    step: usize,
) -> Result<Vec<StoredRecord>, String> {
    let hwm = call!("high_watermark", log.high_watermark(topic, partition));
    let mut out: Vec<StoredRecord> = Vec::new();
    let mut next = from;
    while next < hwm {
        let batch = call!(
            format!("read({topic}/{partition}, from {next})"),
            log.read(topic, partition, next, step)
        );
        ensure!(
            !batch.is_empty(),
            "read({topic}/{partition}, from {next}) returned nothing below the high watermark {hwm}"
        );
        ensure!(
            batch.len() <= step,
            "read with max_records {step} returned {} records",
            batch.len()
        );
        for r in batch {
            ensure!(
                r.offset >= next,
                "read from {next} returned offset {}",
                r.offset
            );
            next = r.offset + 1;
            out.push(r);
        }
    }
    Ok(out)
}

fn offsets_of(records: &[StoredRecord]) -> Vec<Offset> {
    records.iter().map(|r| r.offset).collect()
}

fn strictly_increasing(offsets: &[Offset]) -> bool {
    offsets.windows(2).all(|w| w[0] < w[1])
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs every check (all of them, even after a failure) and returns the
/// failures, one line each, prefixed by the check's name.
pub async fn run_all(log: &dyn EventLog, prefix: &str) -> CheckResult {
    let mut failures = Vec::new();
    macro_rules! run {
        ($($check:ident),+ $(,)?) => {
            $(
                if let Err(e) = $check(log, prefix).await {
                    failures.push(format!("{}: {e}", stringify!($check)));
                }
            )+
        };
    }
    run!(
        topics,
        append_offsets,
        read_positions,
        read_continuation,
        record_fields,
        empty_batch,
        high_watermark,
        partitions_independent,
        max_records,
        wait_for_records,
        read_available_follows,
        concurrent_appends,
        group_commits,
        unknown_topic_and_partition,
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}
