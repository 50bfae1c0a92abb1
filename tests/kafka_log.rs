//! The log contract suite against a real Kafka-protocol broker, plus what
//! only Kafka has: atomic (framed) appends on journal-like topics, partition
//! ownership through a consumer group, and a partition-count mismatch.

mod kafka_common;

use std::time::Duration;

use baton::log::kafka::framing::{Frame, BATCH_HEADER};
use baton::log::{contract, EventLog, LogError, OwnershipChange, ProducerRecord, TopicSpec};
use bytes::Bytes;
use kafka_common::{brokers, connect, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_suite_passes_on_kafka() {
    let log = connect(&brokers(), &[]).await;
    if let Err(failures) = contract::run_all(&log, &unique("ct")).await {
        panic!("contract failures on Kafka:\n{failures}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_topic_with_other_partition_count_is_an_error() {
    let log = connect(&brokers(), &[]).await;
    let name = unique("mismatch");
    log.create_topic(&TopicSpec::new(&name, 2)).await.unwrap();
    log.create_topic(&TopicSpec::new(&name, 2)).await.unwrap();
    let err = log
        .create_topic(&TopicSpec::new(&name, 3))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LogError::PartitionMismatch {
                existing: 2,
                requested: 3,
                ..
            }
        ),
        "{err}"
    );
}

fn recs(n: usize, tag: &str) -> Vec<ProducerRecord> {
    (0..n)
        .map(|i| ProducerRecord::new(None, Bytes::from(format!("{tag}-{i}"))))
        .collect()
}

/// A writer that died mid-append leaves a torn batch in the partition; a
/// reader through the backend never sees it, and sees everything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_batches_on_atomic_topics_are_never_served() {
    let topic = unique("journal");
    let log = connect(&brokers(), &[&topic]).await;
    log.create_topic(&TopicSpec::new(&topic, 1)).await.unwrap();
    log.append(&topic, 0, recs(3, "whole")).await.unwrap();
    // Half a batch, written raw by a "dead" writer: frames 0 and 1 of 4.
    let raw = connect(&brokers(), &[]).await;
    let torn: Vec<ProducerRecord> = (0..2u32)
        .map(|i| {
            let mut r = ProducerRecord::new(None, Bytes::from(format!("torn-{i}")));
            r.headers.push(
                Frame {
                    writer: 42,
                    seq: 0,
                    index: i,
                    count: 4,
                }
                .header(),
            );
            r
        })
        .collect();
    raw.append(&topic, 0, torn).await.unwrap();
    // The tail is held back while the batch might still complete.
    let first = log.read(&topic, 0, 0, 100).await.unwrap();
    assert_eq!(first.len(), 3, "only the whole batch is served");
    let next = first.last().unwrap().offset + 1;
    assert!(log.read(&topic, 0, next, 100).await.unwrap().is_empty());
    log.append(&topic, 0, recs(2, "after")).await.unwrap();
    let mut all = Vec::new();
    let mut from = 0;
    loop {
        let got = log.read(&topic, 0, from, 100).await.unwrap();
        let Some(last) = got.last() else { break };
        from = last.offset + 1;
        all.extend(got);
    }
    let values: Vec<String> = all
        .iter()
        .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
        .collect();
    assert_eq!(
        values,
        ["whole-0", "whole-1", "whole-2", "after-0", "after-1"]
    );
    assert!(all
        .iter()
        .all(|r| r.headers.iter().any(|h| h.key == BATCH_HEADER)));
}

/// Two members of one group split the partitions; when one leaves, the
/// other is told to own them all; a revocation waits for the owner's answer.
/// Rebalances may take several rounds (a member can be handed everything
/// again before the other has joined), so the test waits for the settled
/// state rather than for a given sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_split_partitions_and_take_over() {
    let b = brokers();
    let topic = unique("owned");
    let group = unique("owners");
    let a = connect(&b, &[]).await;
    a.create_topic(&TopicSpec::new(&topic, 4)).await.unwrap();
    let mut ma = a.join_group(&group, &topic).await.unwrap();
    let mut owned_a = Vec::new();
    settle(&mut ma, &mut owned_a, None, &mut Vec::new(), |a, _| {
        a == [0, 1, 2, 3]
    })
    .await;
    let bb = connect(&b, &[]).await;
    let mut mb = bb.join_group(&group, &topic).await.unwrap();
    let mut owned_b = Vec::new();
    settle(
        &mut ma,
        &mut owned_a,
        Some(&mut mb),
        &mut owned_b,
        |a, b| {
            let mut all: Vec<u32> = a.iter().chain(b).copied().collect();
            all.sort_unstable();
            !a.is_empty() && !b.is_empty() && all == [0, 1, 2, 3]
        },
    )
    .await;
    drop(mb);
    settle(&mut ma, &mut owned_a, None, &mut Vec::new(), |a, _| {
        a == [0, 1, 2, 3]
    })
    .await;
}

/// Follows both members' ownership changes (answering revocations at once)
/// until `done(owned_a, owned_b)` holds, for at most 90 s.
async fn settle(
    ma: &mut baton::log::Membership,
    owned_a: &mut Vec<u32>,
    mut mb: Option<&mut baton::log::Membership>,
    owned_b: &mut Vec<u32>,
    done: impl Fn(&[u32], &[u32]) -> bool,
) {
    fn apply(change: Option<OwnershipChange>, owned: &mut Vec<u32>) {
        match change {
            // Incremental (cooperative) rebalancing: added to what is owned.
            Some(OwnershipChange::Assigned(p)) => {
                owned.extend(p);
                owned.sort_unstable();
                owned.dedup();
            }
            Some(OwnershipChange::Revoked { partitions, done }) => {
                owned.retain(|p| !partitions.contains(p));
                let _ = done.send(());
            }
            None => panic!("membership ended"),
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !done(owned_a, owned_b) {
        let wait = tokio::time::sleep_until(deadline);
        match mb.as_deref_mut() {
            Some(mb) => tokio::select! {
                c = ma.changes.recv() => apply(c, owned_a),
                c = mb.changes.recv() => apply(c, owned_b),
                _ = wait => panic!("not settled in 90 s: a {owned_a:?}, b {owned_b:?}"),
            },
            None => tokio::select! {
                c = ma.changes.recv() => apply(c, owned_a),
                _ = wait => panic!("not settled in 90 s: a {owned_a:?}"),
            },
        }
    }
}
