//! The log contract suite run against the embedded backend, plus the
//! embedded-only guarantees the trait cannot express: persistence across
//! reopen, torn-tail recovery, read-only readers beside a writer, and the
//! single-writer lock.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use baton::log::contract;
use baton::log::embedded::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};
use baton::log::{EventLog, LogError, ProducerRecord, TopicPartition, TopicSpec};
use bytes::Bytes;

fn open(cfg: EmbeddedConfig) -> EmbeddedLog {
    EmbeddedLog::open(cfg).expect("open the embedded log")
}

fn recs(lo: u64, hi: u64) -> Vec<ProducerRecord> {
    (lo..hi)
        .map(|i| {
            ProducerRecord::new(
                Some(Bytes::from(format!("k{i}"))),
                Bytes::from(format!("value-{i:06}")),
            )
        })
        .collect()
}

async fn values(log: &dyn EventLog, topic: &str, partition: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = log.log_start(topic, partition).await.unwrap();
    loop {
        let batch = log.read(topic, partition, next, 1000).await.unwrap();
        let Some(last) = batch.last() else { break };
        next = last.offset + 1;
        out.extend(
            batch
                .iter()
                .map(|r| String::from_utf8(r.value.to_vec()).unwrap()),
        );
    }
    out
}

fn expected(lo: u64, hi: u64) -> Vec<String> {
    (lo..hi).map(|i| format!("value-{i:06}")).collect()
}

fn segments(root: &Path, topic: &str, partition: u32) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(root.join("topics").join(topic).join(partition.to_string()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// Opens the log while capturing what it logs.
fn open_capturing(cfg: EmbeddedConfig) -> (EmbeddedLog, String) {
    let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || SharedWriter(sink.clone()))
        .finish();
    let log = tracing::subscriber::with_default(subscriber, || open(cfg));
    let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    (log, text)
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn contract_suite_passes_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(EmbeddedConfig::new(dir.path()));
    if let Err(failures) = contract::run_all(&log, "ct").await {
        panic!("contract failures:\n{failures}");
    }
}

#[tokio::test]
async fn contract_suite_passes_with_tiny_segments_and_fsync_always() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(dir.path());
    cfg.segment_bytes = 100;
    cfg.fsync = FsyncPolicy::Always;
    let log = open(cfg);
    if let Err(failures) = contract::run_all(&log, "ct").await {
        panic!("contract failures:\n{failures}");
    }
    assert!(
        segments(dir.path(), "ct-read-continuation", 0).len() == 4,
        "expected the tiny segment size to roll"
    );
}

#[tokio::test]
async fn reopen_keeps_records_topics_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(dir.path());
    cfg.segment_bytes = 4096;
    {
        let log = open(cfg.clone());
        log.create_topic(&TopicSpec {
            name: "t".into(),
            partitions: 2,
            compacted: true,
        })
        .await
        .unwrap();
        for i in 0..20 {
            log.append("t", 0, recs(i * 50, (i + 1) * 50))
                .await
                .unwrap();
        }
        log.append("t", 1, recs(0, 3)).await.unwrap();
        log.commit("g/with:odd chars", &[(TopicPartition::new("t", 0), 42)])
            .await
            .unwrap();
        log.flush().await.unwrap();
    }
    assert!(segments(dir.path(), "t", 0).len() > 5);
    let log = open(cfg);
    let topics = log.list_topics().await.unwrap();
    assert_eq!(
        topics,
        vec![TopicSpec {
            name: "t".into(),
            partitions: 2,
            compacted: true
        }]
    );
    assert_eq!(values(&log, "t", 0).await, expected(0, 1000));
    assert_eq!(values(&log, "t", 1).await, expected(0, 3));
    // Reading from the middle of a sealed segment uses its lazy index.
    let mid = log.read("t", 0, 517, 3).await.unwrap();
    assert_eq!(
        mid.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![517, 518, 519]
    );
    assert_eq!(
        log.committed("g/with:odd chars", &TopicPartition::new("t", 0))
            .await
            .unwrap(),
        Some(42)
    );
    assert_eq!(
        log.append("t", 0, recs(1000, 1001)).await.unwrap(),
        vec![1000]
    );
}

/// Writes 10 batches of 10 records to `t/0` and returns the segment path.
async fn ten_batches(cfg: &EmbeddedConfig) -> PathBuf {
    let log = open(cfg.clone());
    log.create_topic(&TopicSpec::new("t", 1)).await.unwrap();
    for i in 0..10 {
        log.append("t", 0, recs(i * 10, (i + 1) * 10))
            .await
            .unwrap();
    }
    drop(log);
    segments(&cfg.root, "t", 0).pop().unwrap()
}

#[tokio::test]
async fn torn_tail_mid_batch_is_truncated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = EmbeddedConfig::new(dir.path());
    let seg = ten_batches(&cfg).await;
    let full = fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(full - 7)
        .unwrap();

    let (log, logged) = open_capturing(cfg.clone());
    assert!(
        logged.contains("WARN") && logged.contains("dropped_bytes"),
        "expected a warning, got: {logged}"
    );
    assert!(
        logged.contains("partition=0") && logged.contains("valid_bytes"),
        "{logged}"
    );
    assert_eq!(
        values(&log, "t", 0).await,
        expected(0, 90),
        "the torn last batch must vanish whole"
    );
    assert_eq!(log.high_watermark("t", 0).await.unwrap(), 90);
    assert_eq!(
        log.append("t", 0, recs(90, 92)).await.unwrap(),
        vec![90, 91]
    );
    drop(log);

    let (log, logged) = open_capturing(cfg);
    assert!(
        !logged.contains("WARN"),
        "a clean log must open quietly: {logged}"
    );
    assert_eq!(values(&log, "t", 0).await, expected(0, 92));
}

#[tokio::test]
async fn garbage_tail_is_dropped_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = EmbeddedConfig::new(dir.path());
    let seg = ten_batches(&cfg).await;
    let full = fs::metadata(&seg).unwrap().len();
    for garbage in [
        vec![0u8; 100],
        (0..=255u8).cycle().take(3000).collect(),
        vec![0xff; 30],
    ] {
        OpenOptions::new()
            .append(true)
            .open(&seg)
            .unwrap()
            .write_all(&garbage)
            .unwrap();
        let (log, logged) = open_capturing(cfg.clone());
        assert!(
            logged.contains(&format!("dropped_bytes={}", garbage.len())),
            "{logged}"
        );
        assert_eq!(values(&log, "t", 0).await, expected(0, 100));
        drop(log);
        assert_eq!(
            fs::metadata(&seg).unwrap().len(),
            full,
            "file truncated back to its valid length"
        );
    }
    let log = open(cfg);
    assert_eq!(log.append("t", 0, recs(100, 101)).await.unwrap(), vec![100]);
}

/// A closed log with 300 records in 30 batches over several 1 KiB segments.
async fn multi_segment_log(dir: &std::path::Path) -> EmbeddedConfig {
    let mut cfg = EmbeddedConfig::new(dir);
    cfg.segment_bytes = 1024;
    let log = open(cfg.clone());
    log.create_topic(&TopicSpec::new("t", 1)).await.unwrap();
    for i in 0..30 {
        log.append("t", 0, recs(i * 10, (i + 1) * 10))
            .await
            .unwrap();
    }
    cfg
}

#[tokio::test]
async fn corrupt_sealed_segment_is_reported_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = multi_segment_log(dir.path()).await;
    let first = segments(dir.path(), "t", 0).remove(0);
    let mut bytes = fs::read(&first).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x55;
    fs::write(&first, bytes).unwrap();
    // A writer's open checks the end of every sealed segment and refuses.
    match EmbeddedLog::open(cfg.clone()) {
        Err(LogError::Corrupt { path, .. }) => {
            assert!(path.ends_with("00000000000000000000.seg"), "{path}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // A reader serves what precedes the damage, then reports it.
    let log = open(EmbeddedConfig::read_only(&cfg.root));
    let mut next = 0;
    let err = loop {
        match log.read("t", 0, next, 100).await {
            Ok(batch) => next = batch.last().expect("not past the damage").offset + 1,
            Err(e) => break e,
        }
    };
    assert!(next > 0, "records before the damage are served");
    match err {
        LogError::Corrupt { path, .. } => {
            assert!(path.ends_with("00000000000000000000.seg"), "{path}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn reading_below_the_log_start_is_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = multi_segment_log(dir.path()).await;
    // Simulate retention having removed the oldest segment.
    fs::remove_file(segments(dir.path(), "t", 0).remove(0)).unwrap();
    let log = open(cfg);
    let start = log.log_start("t", 0).await.unwrap();
    assert!(start > 0);
    match log.read("t", 0, start - 1, 10).await {
        Err(LogError::OffsetOutOfRange {
            offset, log_start, ..
        }) => assert_eq!((offset, log_start), (start - 1, start)),
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    assert_eq!(log.read("t", 0, start, 1).await.unwrap()[0].offset, start);
}

#[tokio::test]
async fn read_only_reader_follows_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(dir.path());
    cfg.segment_bytes = 2048;
    let writer = open(cfg.clone());
    writer.create_topic(&TopicSpec::new("t", 1)).await.unwrap();
    writer.append("t", 0, recs(0, 10)).await.unwrap();

    let reader = open(EmbeddedConfig::read_only(dir.path()));
    assert_eq!(values(&reader, "t", 0).await, expected(0, 10));
    for i in 1..40 {
        writer
            .append("t", 0, recs(i * 10, (i + 1) * 10))
            .await
            .unwrap();
    }
    assert!(
        segments(dir.path(), "t", 0).len() > 3,
        "the writer should have rolled segments"
    );
    assert_eq!(reader.high_watermark("t", 0).await.unwrap(), 400);
    let tail = reader.read("t", 0, 10, 5).await.unwrap();
    assert_eq!(
        tail.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![10, 11, 12, 13, 14]
    );
    assert_eq!(values(&reader, "t", 0).await, expected(0, 400));

    // Topics and commits made after the reader opened are visible too.
    writer
        .create_topic(&TopicSpec::new("later", 2))
        .await
        .unwrap();
    writer.append("later", 1, recs(0, 2)).await.unwrap();
    writer
        .commit("g", &[(TopicPartition::new("t", 0), 7)])
        .await
        .unwrap();
    assert_eq!(reader.partition_count("later").await.unwrap(), 2);
    assert_eq!(values(&reader, "later", 1).await, expected(0, 2));
    assert_eq!(
        reader
            .committed("g", &TopicPartition::new("t", 0))
            .await
            .unwrap(),
        Some(7)
    );
    assert_eq!(reader.list_topics().await.unwrap().len(), 2);

    // The reader never writes.
    assert!(matches!(
        reader.append("t", 0, recs(0, 1)).await,
        Err(LogError::ReadOnly(_))
    ));
    assert!(matches!(
        reader
            .commit("g", &[(TopicPartition::new("t", 0), 1)])
            .await,
        Err(LogError::ReadOnly(_))
    ));
    assert!(matches!(
        reader.create_topic(&TopicSpec::new("new", 1)).await,
        Err(LogError::ReadOnly(_))
    ));
    reader
        .create_topic(&TopicSpec::new("t", 1))
        .await
        .expect("an existing topic is fine");

    // A batch still being written (here: half a frame) stays invisible.
    drop(writer);
    let old_active = segments(dir.path(), "t", 0).pop().unwrap();
    let old_len = fs::metadata(&old_active).unwrap().len();
    let writer = open(cfg.clone());
    writer.append("t", 0, recs(400, 410)).await.unwrap();
    drop(writer);
    // The append may have rolled to a new segment: then the half frame is
    // the only content of a brand-new file, which must be invisible too.
    let active = segments(dir.path(), "t", 0).pop().unwrap();
    let before = if active == old_active { old_len } else { 0 };
    let whole = fs::read(&active).unwrap();
    let frame = whole[before as usize..].to_vec();
    OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(before)
        .unwrap();
    OpenOptions::new()
        .append(true)
        .open(&active)
        .unwrap()
        .write_all(&frame[..frame.len() / 2])
        .unwrap();
    assert_eq!(reader.high_watermark("t", 0).await.unwrap(), 400);
    assert!(reader.read("t", 0, 400, 10).await.unwrap().is_empty());
    OpenOptions::new()
        .append(true)
        .open(&active)
        .unwrap()
        .write_all(&frame[frame.len() / 2..])
        .unwrap();
    assert_eq!(reader.high_watermark("t", 0).await.unwrap(), 410);
    assert_eq!(reader.read("t", 0, 400, 100).await.unwrap().len(), 10);
    assert_eq!(
        fs::metadata(&active).unwrap().len(),
        whole.len() as u64,
        "the reader never truncates"
    );
}

#[tokio::test]
async fn a_second_writer_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = EmbeddedConfig::new(dir.path());
    let first = open(cfg.clone());
    match EmbeddedLog::open(cfg.clone()) {
        Err(e @ LogError::Locked { .. }) => {
            let msg = e.to_string();
            let lock = dir.path().join("LOCK");
            assert!(msg.contains(&lock.display().to_string()), "{msg}");
            assert!(
                msg.contains(&std::process::id().to_string()),
                "names the holder: {msg}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    let reader = EmbeddedLog::open(EmbeddedConfig::read_only(dir.path()));
    assert!(reader.is_ok(), "a read-only open ignores the lock");
    drop(first);
    open(cfg);
}

#[tokio::test]
async fn oversized_batches_and_bad_input_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(dir.path());
    cfg.max_batch_bytes = 1000;
    let log = open(cfg);
    log.create_topic(&TopicSpec::new("t", 1)).await.unwrap();
    let big = vec![ProducerRecord::new(None, Bytes::from(vec![7u8; 2000]))];
    assert!(matches!(
        log.append("t", 0, big).await,
        Err(LogError::BatchTooLarge { limit: 1000, .. })
    ));
    assert_eq!(log.high_watermark("t", 0).await.unwrap(), 0);
    assert!(log.create_topic(&TopicSpec::new("zero", 0)).await.is_err());
    assert!(matches!(
        log.read("../etc", 0, 0, 1).await,
        Err(LogError::InvalidTopicName(_))
    ));
    assert!(EmbeddedLog::open(EmbeddedConfig::read_only(dir.path().join("nope"))).is_err());
}

#[test]
fn interval_fsync_thread_stops_with_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(dir.path());
    cfg.fsync = "interval:5".parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for _ in 0..3 {
        let log = open(cfg.clone());
        rt.block_on(async {
            log.create_topic(&TopicSpec::new("t", 1)).await.unwrap();
            log.append("t", 0, recs(0, 5)).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            log.flush().await.unwrap();
        });
        // Dropping must release the lock right away for the next open.
        drop(log);
    }
}

/// Readers in other threads (one sharing the writer's instance, one a
/// separate read-only instance) only ever see a gap-free prefix while
/// batches are appended and segments roll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_see_a_consistent_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(dir.path());
    cfg.segment_bytes = 8192;
    let writer = Arc::new(open(cfg));
    writer.create_topic(&TopicSpec::new("t", 1)).await.unwrap();
    let follower = Arc::new(open(EmbeddedConfig::read_only(dir.path())));
    const TOTAL: u64 = 20_000;

    let mut readers = Vec::new();
    for log in [
        writer.clone() as Arc<dyn EventLog>,
        follower as Arc<dyn EventLog>,
    ] {
        readers.push(tokio::spawn(async move {
            let mut next = 0u64;
            while next < TOTAL {
                let batch = log.read("t", 0, next, 777).await.unwrap();
                for r in &batch {
                    assert_eq!(r.offset, next, "gap or reordering");
                    assert_eq!(r.value, format!("value-{next:06}").as_bytes());
                    next += 1;
                }
                if batch.is_empty() {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    let mut next = 0;
    while next < TOTAL {
        let n = fastrand::u64(1..=100).min(TOTAL - next);
        writer.append("t", 0, recs(next, next + n)).await.unwrap();
        next += n;
    }
    for r in readers {
        r.await.unwrap();
    }
}

fn index_files(root: &Path, topic: &str, partition: u32) -> Vec<PathBuf> {
    segments(root, topic, partition)
        .into_iter()
        .map(|p| p.with_extension("idx"))
        .collect()
}

/// Random reads of every record, one by one, from a fresh read-only open.
async fn read_back_one_by_one(cfg: &EmbeddedConfig, n: u64) {
    let log = open(EmbeddedConfig::read_only(&cfg.root));
    assert_eq!(log.high_watermark("t", 0).await.unwrap(), n);
    for o in (0..n).rev().step_by(7) {
        let r = log.read("t", 0, o, 1).await.unwrap();
        assert_eq!(r[0].offset, o);
        assert_eq!(r[0].value, Bytes::from(format!("value-{o:06}")));
    }
    assert_eq!(values(&log, "t", 0).await, expected(0, n));
}

#[tokio::test]
async fn segment_index_files_speed_up_reads_and_are_never_trusted_blindly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmbeddedConfig::new(dir.path());
    cfg.segment_bytes = 32 << 10;
    let n = 4000;
    {
        let log = open(cfg.clone());
        log.create_topic(&TopicSpec::new("t", 1)).await.unwrap();
        for i in 0..n / 10 {
            log.append("t", 0, recs(i * 10, (i + 1) * 10))
                .await
                .unwrap();
        }
    }
    let idx = index_files(dir.path(), "t", 0);
    assert!(idx.len() >= 3, "several segments: {idx:?}");
    for f in &idx {
        let len = fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        assert!(len >= 32 && len % 16 == 0, "{f:?} has {len} bytes");
    }
    read_back_one_by_one(&cfg, n).await;

    // Garbage in the active segment's index (an entry pointing mid-frame)
    // and a truncated entry in a sealed one: reads stay correct.
    let active = idx.last().unwrap();
    let mut bytes = fs::read(active).unwrap();
    let last = bytes.len() - 8;
    let pos = u64::from_be_bytes(bytes[last..].try_into().unwrap()) + 3;
    bytes[last..].copy_from_slice(&pos.to_be_bytes());
    fs::write(active, bytes).unwrap();
    let mut sealed = fs::read(&idx[0]).unwrap();
    sealed.truncate(sealed.len() - 5);
    fs::write(&idx[0], sealed).unwrap();
    read_back_one_by_one(&cfg, n).await;

    // No index files at all (a log from an older build): still correct,
    // and a writer's open puts them back.
    for f in &idx {
        fs::remove_file(f).unwrap();
    }
    read_back_one_by_one(&cfg, n).await;
    {
        let log = open(cfg.clone());
        assert_eq!(values(&log, "t", 0).await, expected(0, n));
    }
    assert!(idx.iter().all(|f| f.exists()), "rebuilt by the writer");
    read_back_one_by_one(&cfg, n).await;
}
