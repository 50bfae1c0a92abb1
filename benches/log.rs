//! Throughput of the embedded log: batched append (1000 records of ~150
//! bytes per call, `fsync = interval:100`) and a full scan of 1M records.
//! Targets on the 2-core dev machine: append >= 500k records/s, scan >= 2M
//! records/s.
//!
//! Run: `cargo bench --bench log -- --warm-up-time 1 --measurement-time 5`.
//! Data goes under Cargo's target tmp dir (a real disk, unlike a tmpfs
//! `/tmp` would be) and is removed afterwards.

use std::time::Duration;

use baton::log::embedded::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};
use baton::log::{EventLog, ProducerRecord, TopicSpec};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const BATCH: usize = 1000;
const SCAN_RECORDS: usize = 1_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// ~150 bytes per record: a 14-byte key and a 136-byte value.
fn batch() -> Vec<ProducerRecord> {
    let value = Bytes::from(vec![b'v'; 136]);
    (0..BATCH)
        .map(|i| {
            let key = Bytes::from(format!("workflow-{:05}", i % 10_000));
            ProducerRecord::new(Some(key), value.clone())
        })
        .collect()
}

fn open(dir: &std::path::Path) -> EmbeddedLog {
    let mut cfg = EmbeddedConfig::new(dir);
    cfg.fsync = FsyncPolicy::Interval(Duration::from_millis(100));
    EmbeddedLog::open(cfg).expect("open log")
}

fn append(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let log = open(dir.path());
    rt.block_on(log.create_topic(&TopicSpec::new("bench", 1)))
        .expect("create topic");
    let template = batch();
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("append_1000x150B", |b| {
        b.iter_batched(
            || template.clone(),
            |records| {
                rt.block_on(log.append("bench", 0, records))
                    .expect("append")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn scan(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let log = open(dir.path());
    rt.block_on(async {
        log.create_topic(&TopicSpec::new("bench", 1)).await?;
        for _ in 0..SCAN_RECORDS / BATCH {
            log.append("bench", 0, batch()).await?;
        }
        log.flush().await
    })
    .expect("fill the log");
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Elements(SCAN_RECORDS as u64));
    group.sample_size(10);
    group.bench_function("scan_1M", |b| {
        b.iter(|| {
            rt.block_on(async {
                let (mut next, mut seen, mut bytes) = (0u64, 0usize, 0usize);
                loop {
                    let records = log.read("bench", 0, next, 10_000).await.expect("read");
                    let Some(last) = records.last() else { break };
                    next = last.offset + 1;
                    seen += records.len();
                    bytes += records.iter().map(|r| r.value.len()).sum::<usize>();
                }
                assert_eq!(seen, SCAN_RECORDS);
                bytes
            })
        })
    });
    group.finish();
}

criterion_group!(benches, append, scan);
criterion_main!(benches);
