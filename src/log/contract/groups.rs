//! Contract checks for consumer-group commits and for errors on unknown
//! topics and partitions.

use super::*;

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
