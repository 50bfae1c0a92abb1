//! Faults injected into the embedded log's files: a torn tail is truncated
//! (the only thing ever truncated), any other damage is refused for writing
//! with the file and byte offset, stays readable up to the damage, makes
//! `baton tail` exit non-zero, and is contained by `baton log repair`,
//! which keeps every record outside the damaged range.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use baton::log::embedded::{EmbeddedConfig, EmbeddedLog};
use baton::log::{EventLog, LogError, Offset, ProducerRecord, TopicSpec};
use bytes::Bytes;

const BATCHES: u64 = 120;
const PER_BATCH: u64 = 5;

fn value(i: u64) -> String {
    format!("value-{i:06}")
}

/// `<data>/log`: the layout the CLI expects, 600 records in 120 frames over
/// several 4 KiB segments of topic `t`, one partition.
async fn write_log(data: &Path) -> EmbeddedConfig {
    let mut cfg = EmbeddedConfig::new(data.join("log"));
    cfg.segment_bytes = 4096;
    let log = EmbeddedLog::open(cfg.clone()).unwrap();
    log.create_topic(&TopicSpec::new("t", 1)).await.unwrap();
    for b in 0..BATCHES {
        let recs = (b * PER_BATCH..(b + 1) * PER_BATCH)
            .map(|i| ProducerRecord::new(None, Bytes::from(value(i))))
            .collect();
        log.append("t", 0, recs).await.unwrap();
    }
    cfg
}

fn segments(cfg: &EmbeddedConfig) -> Vec<PathBuf> {
    let dir = cfg.root.join("topics/t/0");
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// (position, base offset) of every frame of a segment file.
fn frames(path: &Path) -> Vec<(u64, Offset)> {
    let bytes = fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 20 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let base = u64::from_le_bytes(bytes[pos + 8..pos + 16].try_into().unwrap());
        out.push((pos as u64, base));
        pos += 4 + len;
    }
    out
}

fn flip(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at as usize] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

/// Every readable record's (offset, value), reading like a consumer until
/// the end or an error (returned too).
async fn read_all(log: &EmbeddedLog) -> (Vec<(Offset, String)>, Option<LogError>) {
    let mut out = Vec::new();
    let mut next = log.log_start("t", 0).await.unwrap();
    let end = log.high_watermark("t", 0).await.unwrap();
    while next < end {
        match log.read("t", 0, next, 7).await {
            Ok(batch) if batch.is_empty() => break,
            Ok(batch) => {
                for r in batch {
                    next = r.offset + 1;
                    out.push((r.offset, String::from_utf8(r.value.to_vec()).unwrap()));
                }
            }
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

fn baton(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("BATON_CONFIG")
        .output()
        .unwrap()
}

/// Flips a byte in the middle frame of the last segment; returns the
/// segment, the frame's position and its first offset.
fn damage_last_segment(cfg: &EmbeddedConfig) -> (PathBuf, u64, Offset) {
    let seg = segments(cfg).pop().unwrap();
    let fr = frames(&seg);
    assert!(fr.len() >= 3, "the last segment needs frames on both sides");
    let (pos, base) = fr[fr.len() / 2];
    flip(&seg, pos + 30);
    (seg, pos, base)
}

#[tokio::test]
async fn given_a_flipped_byte_mid_last_segment_when_opened_then_writers_are_refused_and_readers_read_up_to_it(
) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_log(dir.path()).await;
    let (seg, pos, base) = damage_last_segment(&cfg);
    let len_before = fs::metadata(&seg).unwrap().len();

    match EmbeddedLog::open(cfg.clone()) {
        Err(LogError::Corrupt {
            path,
            position,
            reason,
        }) => {
            assert!(
                path.ends_with(seg.file_name().unwrap().to_str().unwrap()),
                "{path}"
            );
            assert_eq!(position, pos);
            assert!(
                reason.contains("baton log repair --topic t --partition 0"),
                "{reason}"
            );
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(
        fs::metadata(&seg).unwrap().len(),
        len_before,
        "nothing truncated"
    );

    let ro = EmbeddedLog::open(EmbeddedConfig::read_only(&cfg.root)).unwrap();
    assert_eq!(
        ro.high_watermark("t", 0).await.unwrap(),
        BATCHES * PER_BATCH
    );
    let (records, err) = read_all(&ro).await;
    let want: Vec<_> = (0..base).map(|i| (i, value(i))).collect();
    assert_eq!(records, want, "every record before the damage");
    assert!(matches!(err, Some(LogError::Corrupt { position, .. }) if position == pos));

    let out = baton(dir.path(), &["tail", "--topic", "t"]);
    assert!(!out.status.success(), "tail must not exit 0 on damage");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("t/0") && stderr.contains(&format!("byte {pos}")),
        "{stderr}"
    );
}

#[tokio::test]
async fn given_a_torn_last_frame_when_opened_then_only_that_frame_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_log(dir.path()).await;
    let seg = segments(&cfg).pop().unwrap();
    let full = fs::metadata(&seg).unwrap().len();
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(full - 9).unwrap();
    drop(f);
    let log = EmbeddedLog::open(cfg.clone()).expect("a torn tail is recovered");
    let n = BATCHES * PER_BATCH - PER_BATCH;
    assert_eq!(log.high_watermark("t", 0).await.unwrap(), n);
    let (records, err) = read_all(&log).await;
    assert!(err.is_none());
    assert_eq!(records, (0..n).map(|i| (i, value(i))).collect::<Vec<_>>());
    drop(log);

    // Zeros up to the end (a crash after the file grew but before the data
    // landed) are a torn tail too.
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &[0u8; 3000]).unwrap();
    drop(f);
    let log = EmbeddedLog::open(cfg).expect("a zeroed tail is recovered");
    assert_eq!(log.high_watermark("t", 0).await.unwrap(), n);
}

#[tokio::test]
async fn given_a_shortened_sealed_segment_when_opened_then_it_is_refused_and_tail_fails() {
    for at_frame_boundary in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_log(dir.path()).await;
        let first = segments(&cfg).remove(0);
        let fr = frames(&first);
        let (cut, lost_from) = if at_frame_boundary {
            fr[fr.len() / 2]
        } else {
            (fr[fr.len() / 2].0 + 11, fr[fr.len() / 2].1)
        };
        let f = OpenOptions::new().write(true).open(&first).unwrap();
        f.set_len(cut).unwrap();
        drop(f);

        match EmbeddedLog::open(cfg.clone()) {
            Err(LogError::Corrupt { path, position, .. }) => {
                assert!(path.ends_with("00000000000000000000.seg"), "{path}");
                assert_eq!(position, fr[fr.len() / 2].0);
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        let ro = EmbeddedLog::open(EmbeddedConfig::read_only(&cfg.root)).unwrap();
        let (records, err) = read_all(&ro).await;
        assert_eq!(records.len() as u64, lost_from);
        assert!(matches!(err, Some(LogError::Corrupt { .. })), "{err:?}");

        let out = baton(dir.path(), &["tail", "--topic", "t"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("error"));

        // Repair records the missing offsets as a gap; the rest reads.
        let out = baton(
            dir.path(),
            &["log", "repair", "--topic", "t", "--partition", "0"],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("lost offsets {lost_from}..=")),
            "{stdout}"
        );
        let log = EmbeddedLog::open(cfg.clone()).expect("repaired");
        let (records, err) = read_all(&log).await;
        assert!(err.is_none(), "{err:?}");
        let next_seg_base = frames(&segments(&cfg)[1])[0].1;
        let want: Vec<_> = (0..lost_from)
            .chain(next_seg_base..BATCHES * PER_BATCH)
            .map(|i| (i, value(i)))
            .collect();
        assert_eq!(records, want);
    }
}

#[tokio::test]
async fn given_damage_when_repaired_then_only_the_damaged_frame_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_log(dir.path()).await;
    let (_seg, _pos, base) = damage_last_segment(&cfg);

    let out = baton(
        dir.path(),
        &["log", "repair", "--topic", "t", "--partition", "0"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lost = base..base + PER_BATCH;
    assert!(
        stdout.contains(&format!(
            "lost offsets {}..={} ({PER_BATCH} records)",
            lost.start,
            lost.end - 1
        )),
        "{stdout}"
    );
    let qdir = cfg.root.join("topics/t/0/quarantine");
    let bad: Vec<_> = fs::read_dir(&qdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        bad.iter()
            .any(|p| p.extension().is_some_and(|e| e == "bad")),
        "{bad:?}"
    );
    assert!(
        bad.iter()
            .any(|p| p.extension().is_some_and(|e| e == "json")),
        "{bad:?}"
    );

    let n = BATCHES * PER_BATCH;
    let log = EmbeddedLog::open(cfg.clone()).expect("a repaired partition opens for writing");
    let (records, err) = read_all(&log).await;
    assert!(err.is_none(), "{err:?}");
    let want: Vec<_> = (0..n)
        .filter(|i| !lost.contains(i))
        .map(|i| (i, value(i)))
        .collect();
    assert_eq!(records, want, "every record outside the damaged frame");
    assert_eq!(
        log.append(
            "t",
            0,
            vec![ProducerRecord::new(None, Bytes::from(value(n)))]
        )
        .await
        .unwrap(),
        vec![n]
    );
    drop(log);

    let out = baton(dir.path(), &["tail", "--topic", "t"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = baton(
        dir.path(),
        &["log", "repair", "--topic", "t", "--partition", "0"],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("no damage found; nothing changed"));
    let log = EmbeddedLog::open(cfg).unwrap();
    assert_eq!(log.high_watermark("t", 0).await.unwrap(), n + 1);
}

#[tokio::test]
async fn given_damage_in_a_sealed_segment_when_read_then_records_before_it_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_log(dir.path()).await;
    let first = segments(&cfg).remove(0);
    let fr = frames(&first);
    let (pos, base) = fr[fr.len() / 2];
    flip(&first, pos + 25);
    let ro = EmbeddedLog::open(EmbeddedConfig::read_only(&cfg.root)).unwrap();
    let (records, err) = read_all(&ro).await;
    assert_eq!(records.len() as u64, base);
    assert!(
        matches!(err, Some(LogError::Corrupt { position, .. }) if position == pos),
        "{err:?}"
    );
}
