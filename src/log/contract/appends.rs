//! Contract checks for topics and appends: creation rules, offsets in batch
//! order, empty batches, the high watermark, partition independence and
//! concurrent appenders.

use super::*;

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
