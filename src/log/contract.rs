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

/// create_topic / list_topics / partition_count, idempotent create,
/// PartitionMismatch and invalid names.
pub async fn topics(log: &dyn EventLog, prefix: &str) -> CheckResult {
    let a = topic(log, prefix, "topics-a", 3).await?;
    let b = format!("{prefix}-topics-b");
    let mut spec_b = TopicSpec::new(&b, 1);
    spec_b.compacted = true;
    call!("create_topic (compacted)", log.create_topic(&spec_b));
    call!(
        "create_topic again with the same count",
        log.create_topic(&TopicSpec::new(&a, 3))
    );
    match log.create_topic(&TopicSpec::new(&a, 5)).await {
        Err(LogError::PartitionMismatch {
            existing: 3,
            requested: 5,
            ..
        }) => {}
        other => {
            return Err(format!(
                "re-creating {a} with 5 partitions: expected PartitionMismatch \
                 {{ existing: 3, requested: 5 }}, got {other:?}"
            ))
        }
    }
    ensure!(
        call!("partition_count", log.partition_count(&a)) == 3,
        "partition_count({a}) should be 3"
    );
    ensure!(
        call!("partition_count", log.partition_count(&b)) == 1,
        "partition_count({b}) should be 1"
    );
    let listed = call!("list_topics", log.list_topics());
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    ensure!(
        names == sorted,
        "list_topics is not sorted by name: {names:?}"
    );
    for (name, partitions) in [(&a, 3), (&b, 1)] {
        let found = listed.iter().find(|t| &t.name == name);
        ensure!(
            found.map(|t| t.partitions) == Some(partitions),
            "list_topics should contain {name} with {partitions} partitions, got {found:?}"
        );
    }
    for bad in ["", ".", "..", "has/slash", "has space", &"x".repeat(250)] {
        match log.create_topic(&TopicSpec::new(bad, 1)).await {
            Err(LogError::InvalidTopicName(_)) => {}
            other => {
                return Err(format!(
                    "create_topic({bad:?}): expected InvalidTopicName, got {other:?}"
                ))
            }
        }
    }
    Ok(())
}

/// append returns one strictly increasing offset per record, in batch
/// order, at or after the previous high watermark; the high watermark ends
/// at last + 1.
pub async fn append_offsets(log: &dyn EventLog, prefix: &str) -> CheckResult {
    let t = topic(log, prefix, "append-offsets", 1).await?;
    let start = call!("high_watermark", log.high_watermark(&t, 0));
    let first = call!("append", log.append(&t, 0, records(0..5)));
    ensure!(
        first.len() == 5,
        "append of 5 records returned {} offsets",
        first.len()
    );
    ensure!(
        strictly_increasing(&first),
        "offsets of one batch not increasing: {first:?}"
    );
    ensure!(
        first[0] >= start,
        "first offset {} is below the high watermark {start} before the append",
        first[0]
    );
    let second = call!("append", log.append(&t, 0, records(5..8)));
    ensure!(
        second.len() == 3 && strictly_increasing(&second),
        "second batch offsets: {second:?}"
    );
    ensure!(
        second[0] > first[4],
        "second batch starts at {} after the first ended at {}",
        second[0],
        first[4]
    );
    let hwm = call!("high_watermark", log.high_watermark(&t, 0));
    ensure!(
        hwm == second[2] + 1,
        "high watermark {hwm} should be last offset + 1 = {}",
        second[2] + 1
    );
    Ok(())
}

/// Reads from the start, the middle, at the high watermark and past it.
pub async fn read_positions(log: &dyn EventLog, prefix: &str) -> CheckResult {
    let t = topic(log, prefix, "read-positions", 1).await?;
    let offs = call!("append", log.append(&t, 0, records(0..10)));
    let all = call!("read from the first offset", log.read(&t, 0, offs[0], 100));
    ensure!(
        offsets_of(&all) == offs,
        "read from {} returned offsets {:?}, appended {offs:?}",
        offs[0],
        offsets_of(&all)
    );
    for (i, r) in all.iter().enumerate() {
        ensure!(
            r.value == value(i),
            "record {i}: value {:?}, expected {:?}",
            r.value,
            value(i)
        );
    }
    let middle = call!("read from the middle", log.read(&t, 0, offs[4], 100));
    ensure!(
        offsets_of(&middle) == offs[4..],
        "read from {} returned {:?}, expected {:?}",
        offs[4],
        offsets_of(&middle),
        &offs[4..]
    );
    let hwm = call!("high_watermark", log.high_watermark(&t, 0));
    let at = call!("read at the high watermark", log.read(&t, 0, hwm, 100));
    ensure!(
        at.is_empty(),
        "read at the high watermark {hwm} returned {} records",
        at.len()
    );
    let past = call!(
        "read past the high watermark",
        log.read(&t, 0, hwm + 10, 100)
    );
    ensure!(
        past.is_empty(),
        "read past the high watermark returned {} records",
        past.len()
    );
    Ok(())
}

/// Paging with `last.offset + 1` visits every record once, in order.
pub async fn read_continuation(log: &dyn EventLog, prefix: &str) -> CheckResult {
    let t = topic(log, prefix, "read-continuation", 1).await?;
    let mut appended = Vec::new();
    for (lo, hi) in [(0, 3), (3, 4), (4, 15), (15, 25)] {
        appended.extend(call!("append", log.append(&t, 0, records(lo..hi))));
    }
    let got = read_all(log, &t, 0, appended[0], 7).await?;
    ensure!(
        offsets_of(&got) == appended,
        "paged read returned offsets {:?}, appended {appended:?}",
        offsets_of(&got)
    );
    ensure!(
        strictly_increasing(&offsets_of(&got)),
        "offsets not strictly increasing"
    );
    for (i, r) in got.iter().enumerate() {
        ensure!(
            r.value == value(i) && r.partition == 0,
            "record {i} came back as {r:?}"
        );
    }
    Ok(())
}

/// Keys (none, empty, binary), values, headers and timestamps survive.
pub async fn record_fields(log: &dyn EventLog, prefix: &str) -> CheckResult {
    let t = topic(log, prefix, "record-fields", 1).await?;
    let binary: Bytes = (0..=255u8).collect::<Vec<_>>().into();
    let explicit_ts = 1_600_000_000_123;
    let sent = vec![
        ProducerRecord {
            key: None,
            value: Bytes::from_static(b"no key"),
            headers: vec![],
            timestamp_ms: Some(explicit_ts),
        },
        ProducerRecord {
            key: Some(Bytes::new()),
            value: Bytes::new(),
            headers: vec![],
            timestamp_ms: None,
        },
        ProducerRecord {
            key: Some(binary.clone()),
            value: binary.clone(),
            headers: vec![
                Header {
                    key: "trace-id".into(),
                    value: Bytes::from_static(b"abc"),
                },
                Header {
                    key: "empty".into(),
                    value: Bytes::new(),
                },
                Header {
                    key: "trace-id".into(),
                    value: Bytes::from_static(b"dup"),
                },
            ],
            timestamp_ms: None,
        },
    ];
    let before = now_ms();
    let offs = call!("append", log.append(&t, 0, sent.clone()));
    let after = now_ms();
    let got = call!("read", log.read(&t, 0, offs[0], 10));
    ensure!(
        got.len() == sent.len(),
        "read back {} records, sent {}",
        got.len(),
        sent.len()
    );
    for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
        ensure!(
            g.key == s.key,
            "record {i}: key {:?}, sent {:?}",
            g.key,
            s.key
        );
        ensure!(
            g.value == s.value,
            "record {i}: value {:?}, sent {:?}",
            g.value,
            s.value
        );
        ensure!(
            g.headers == s.headers,
            "record {i}: headers {:?}, sent {:?}",
            g.headers,
            s.headers
        );
        match s.timestamp_ms {
            Some(ts) => ensure!(
                g.timestamp_ms == ts,
                "record {i}: explicit timestamp {ts} came back as {}",
                g.timestamp_ms
            ),
            // A second of slack for clock granularity and broker-side stamping.
            None => ensure!(
                g.timestamp_ms >= before - 1000 && g.timestamp_ms <= after + 1000,
                "record {i}: unset timestamp stamped {}, expected about now ({before}..{after})",
                g.timestamp_ms
            ),
        }
    }
    Ok(())
}

/// An empty batch is accepted, returns no offsets and changes nothing.
pub async fn empty_batch(log: &dyn EventLog, prefix: &str) -> CheckResult {
    let t = topic(log, prefix, "empty-batch", 1).await?;
    call!("append", log.append(&t, 0, records(0..2)));
    let hwm = call!("high_watermark", log.high_watermark(&t, 0));
    let offs = call!("append of an empty batch", log.append(&t, 0, Vec::new()));
    ensure!(offs.is_empty(), "empty batch returned offsets {offs:?}");
    let after = call!("high_watermark", log.high_watermark(&t, 0));
    ensure!(
        after == hwm,
        "empty batch moved the high watermark from {hwm} to {after}"
    );
    Ok(())
}

/// A new partition's high watermark is its log start; after appends it is
/// last offset + 1.
pub async fn high_watermark(log: &dyn EventLog, prefix: &str) -> CheckResult {
    let t = topic(log, prefix, "high-watermark", 1).await?;
    let start = call!("log_start", log.log_start(&t, 0));
    let hwm = call!("high_watermark", log.high_watermark(&t, 0));
    ensure!(
        hwm == start,
        "empty partition: high watermark {hwm}, log start {start}"
    );
    let mut last = 0;
    for n in [1, 10, 100] {
        last = *call!("append", log.append(&t, 0, records(0..n)))
            .last()
            .ok_or("append returned no offsets")?;
        let hwm = call!("high_watermark", log.high_watermark(&t, 0));
        ensure!(
            hwm == last + 1,
            "after appending up to offset {last} the high watermark is {hwm}"
        );
    }
    let start_after = call!("log_start", log.log_start(&t, 0));
    ensure!(
        start_after <= last,
        "log start {start_after} is past the last record {last}"
    );
    Ok(())
}

/// Partitions of one topic have separate offsets and contents.
pub async fn partitions_independent(log: &dyn EventLog, prefix: &str) -> CheckResult {
    let t = topic(log, prefix, "partitions", 3).await?;
    for p in 0..3u32 {
        let n = 2 + 3 * p as usize;
        let recs: Vec<_> = (0..n)
            .map(|i| ProducerRecord::new(None, Bytes::from(format!("p{p}-{i}"))))
            .collect();
        call!("append", log.append(&t, p, recs));
    }
    for p in 0..3u32 {
        let start = call!("log_start", log.log_start(&t, p));
        let got = read_all(log, &t, p, start, 100).await?;
        let n = 2 + 3 * p as usize;
        ensure!(
            got.len() == n,
            "partition {p}: {} records, appended {n}",
            got.len()
        );
        for (i, r) in got.iter().enumerate() {
            let want = format!("p{p}-{i}");
            ensure!(
                r.partition == p,
                "partition {p} served a record of partition {}",
                r.partition
            );
            ensure!(
                r.value == want.as_bytes(),
                "partition {p} record {i}: {:?}, expected {want}",
                r.value
            );
        }
    }
    Ok(())
}

/// `max_records` bounds every read; 0 reads nothing.
pub async fn max_records(log: &dyn EventLog, prefix: &str) -> CheckResult {
    let t = topic(log, prefix, "max-records", 1).await?;
    let offs = call!("append", log.append(&t, 0, records(0..20)));
    for max in [1usize, 5, 19] {
        let got = call!("read", log.read(&t, 0, offs[0], max));
        ensure!(
            !got.is_empty() && got.len() <= max,
            "read with max_records {max} returned {} records",
            got.len()
        );
        ensure!(
            got[0].offset == offs[0],
            "read from {} started at {}",
            offs[0],
            got[0].offset
        );
    }
    let none = call!("read with max_records 0", log.read(&t, 0, offs[0], 0));
    ensure!(
        none.is_empty(),
        "read with max_records 0 returned {} records",
        none.len()
    );
    Ok(())
}

/// Concurrent appends to one partition get distinct offsets and all land.
pub async fn concurrent_appends(log: &dyn EventLog, prefix: &str) -> CheckResult {
    let t = topic(log, prefix, "concurrent", 1).await?;
    let start = call!("high_watermark", log.high_watermark(&t, 0));
    let (a, b, c, d) = tokio::join!(
        log.append(&t, 0, records(0..10)),
        log.append(&t, 0, records(10..20)),
        log.append(&t, 0, records(20..30)),
        log.append(&t, 0, records(30..40)),
    );
    let mut all = Vec::new();
    for r in [a, b, c, d] {
        let offs = r.map_err(|e| format!("concurrent append failed: {e}"))?;
        ensure!(
            strictly_increasing(&offs),
            "one batch's offsets not increasing: {offs:?}"
        );
        all.extend(offs);
    }
    all.sort_unstable();
    ensure!(
        strictly_increasing(&all),
        "concurrent batches share offsets"
    );
    let got = read_all(log, &t, 0, start, 1000).await?;
    ensure!(
        offsets_of(&got) == all,
        "read back offsets {:?}, appended {all:?}",
        offsets_of(&got)
    );
    Ok(())
}

/// Committed offsets: none before a commit, latest wins (also backwards),
/// independent per group and per partition, one call applied together.
pub async fn group_commits(log: &dyn EventLog, prefix: &str) -> CheckResult {
    let t = topic(log, prefix, "groups", 2).await?;
    let (g1, g2) = (format!("{prefix}-group-1"), format!("{prefix}-group-2"));
    let (tp0, tp1) = (TopicPartition::new(&t, 0), TopicPartition::new(&t, 1));
    call!("append", log.append(&t, 0, records(0..10)));
    let none = call!("committed", log.committed(&g1, &tp0));
    ensure!(none.is_none(), "committed before any commit: {none:?}");
    call!("commit", log.commit(&g1, &[(tp0.clone(), 5)]));
    let got = call!("committed", log.committed(&g1, &tp0));
    ensure!(got == Some(5), "committed after committing 5: {got:?}");
    call!("commit", log.commit(&g1, &[(tp0.clone(), 3)]));
    let got = call!("committed", log.committed(&g1, &tp0));
    ensure!(
        got == Some(3),
        "latest commit (3, moving backwards) should win, got {got:?}"
    );
    let other_partition = call!("committed", log.committed(&g1, &tp1));
    ensure!(
        other_partition.is_none(),
        "partition 1 was never committed but reads {other_partition:?}"
    );
    let other_group = call!("committed", log.committed(&g2, &tp0));
    ensure!(
        other_group.is_none(),
        "group {g2} was never committed but reads {other_group:?}"
    );
    call!(
        "commit of two partitions",
        log.commit(&g2, &[(tp0.clone(), 7), (tp1.clone(), 2)])
    );
    let both = (
        call!("committed", log.committed(&g2, &tp0)),
        call!("committed", log.committed(&g2, &tp1)),
    );
    ensure!(
        both == (Some(7), Some(2)),
        "two-partition commit read back as {both:?}"
    );
    let still = call!("committed", log.committed(&g1, &tp0));
    ensure!(
        still == Some(3),
        "another group's commit changed {g1} to {still:?}"
    );
    Ok(())
}

/// Unknown topics and out-of-range partitions are reported as such.
pub async fn unknown_topic_and_partition(log: &dyn EventLog, prefix: &str) -> CheckResult {
    let missing = format!("{prefix}-does-not-exist");
    let is_unknown = |r: &Result<(), LogError>| matches!(r, Err(LogError::UnknownTopic(name)) if name == &missing);
    let results = [
        (
            "partition_count",
            log.partition_count(&missing).await.map(drop),
        ),
        ("read", log.read(&missing, 0, 0, 1).await.map(drop)),
        (
            "append",
            log.append(&missing, 0, records(0..1)).await.map(drop),
        ),
        (
            "high_watermark",
            log.high_watermark(&missing, 0).await.map(drop),
        ),
        ("log_start", log.log_start(&missing, 0).await.map(drop)),
    ];
    for (what, r) in &results {
        ensure!(
            is_unknown(r),
            "{what} on a missing topic: expected UnknownTopic({missing}), got {r:?}"
        );
    }
    let t = topic(log, prefix, "unknown-partition", 2).await?;
    let results = [
        ("read", log.read(&t, 2, 0, 1).await.map(drop)),
        ("append", log.append(&t, 2, records(0..1)).await.map(drop)),
        ("high_watermark", log.high_watermark(&t, 2).await.map(drop)),
    ];
    for (what, r) in &results {
        ensure!(
            matches!(
                r,
                Err(LogError::UnknownPartition {
                    partition: 2,
                    partitions: 2,
                    ..
                })
            ),
            "{what} on partition 2 of a 2-partition topic: expected UnknownPartition, got {r:?}"
        );
    }
    Ok(())
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
