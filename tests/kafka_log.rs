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
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_split_partitions_and_take_over() {
    let b = brokers();
    let topic = unique("owned");
    let group = unique("owners");
    let a = connect(&b, &[]).await;
    a.create_topic(&TopicSpec::new(&topic, 4)).await.unwrap();
    let mut ma = a.join_group(&group, &topic).await.unwrap();
    let first = next_assigned(&mut ma).await;
    assert_eq!(first, vec![0, 1, 2, 3], "a lone member owns everything");
    let bb = connect(&b, &[]).await;
    let mut mb = bb.join_group(&group, &topic).await.unwrap();
    // a is asked to give everything back, then both get a share.
    let (a_now, b_now) = tokio::join!(next_assigned(&mut ma), next_assigned(&mut mb));
    let mut all: Vec<u32> = a_now.iter().chain(&b_now).copied().collect();
    all.sort_unstable();
    assert_eq!(all, vec![0, 1, 2, 3], "a {a_now:?} + b {b_now:?}");
    assert!(!a_now.is_empty() && !b_now.is_empty());
    drop(mb);
    // Rebalances may come in several rounds; the last one gives a everything.
    let mut again = next_assigned(&mut ma).await;
    while again != vec![0, 1, 2, 3] {
        again = next_assigned(&mut ma).await;
    }
}

/// The next assignment, answering revocations on the way.
async fn next_assigned(m: &mut baton::log::Membership) -> Vec<u32> {
    let deadline = Duration::from_secs(60);
    tokio::time::timeout(deadline, async {
        loop {
            match m.changes.recv().await {
                Some(OwnershipChange::Assigned(p)) => {
                    eprintln!("assigned {p:?}");
                    return p;
                }
                Some(OwnershipChange::Revoked { done, .. }) => {
                    let _ = done.send(());
                }
                None => panic!("membership ended"),
            }
        }
    })
    .await
    .expect("an assignment within 60 s")
}
