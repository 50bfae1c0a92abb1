//! Recovery from a damaged data directory (issue 24), driving the `baton`
//! binary over a demo directory:
//! - a journal cut short (a torn tail, truncated on open): `replay
//!   --verify` fails and says why; `baton run` rebuilds the store and
//!   decides again every input the journal lost, so every workflow whose
//!   SubmitWorkflow is in ingress exists afterwards, and `--verify` passes;
//! - ingress cut short below the engine's committed offset: that partition
//!   stops with a precise error (in `/readyz` and the exit status), the
//!   others run on;
//! - a projection store with flipped bytes: read-only commands refuse it;
//!   `baton run` rebuilds it from the journal, with every workflow as
//!   before.
//!
//! No Kafka needed. Waits are bounded (a hung engine fails the test), and
//! nothing asserts on how long anything took.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::baton;

const WORKFLOWS: &str = "300";

fn demo(dir: &Path) {
    let o = baton(dir, &["demo", "--no-http", "--workflows", WORKFLOWS]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn segment(dir: &Path, topic: &str, p: u32) -> PathBuf {
    let d = dir.join("log/topics").join(topic).join(p.to_string());
    let mut segs: Vec<PathBuf> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.pop().expect("a segment")
}

/// Cuts the last segment of `topic`'s partition `p` to `1/div` of its size.
fn truncate(dir: &Path, topic: &str, p: u32, div: u64) {
    let seg = segment(dir, topic, p);
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len / div).unwrap();
}

/// The workflow ids submitted on ingress partition `p`.
fn submitted(dir: &Path, p: u32) -> Vec<String> {
    let o = baton(
        dir,
        &["tail", "--partition", &p.to_string(), "--from-beginning"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            v["event"]["payload"]["SubmitWorkflow"]["workflow_id"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("127.0.0.1:{}", l.local_addr().unwrap().port())
}

/// GET `path`: the status and body, `None` while nothing answers.
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(c, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut all = String::new();
    c.read_to_string(&mut all).ok()?;
    let status = all.split_whitespace().nth(1)?.parse().ok()?;
    let body = all.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

fn start_engine(dir: &Path, addr: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .arg("--data-dir")
        .arg(dir)
        .args(["run", "--http-addr", addr])
        .env_remove("BATON_BROKERS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (bounded) until `done` holds, asking every 100 ms.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGINT, then the engine's output.
fn stop(child: Child) -> Output {
    let pid = child.id() as libc::pid_t;
    // SAFETY: signals a child this test started and still owns.
    unsafe { libc::kill(pid, libc::SIGINT) };
    child.wait_with_output().unwrap()
}

/// Waits until the running engine's API serves every one of `ids`.
fn wait_for_workflows(addr: &str, ids: &[String]) {
    for id in ids {
        wait_until(&format!("workflow {id} served"), || {
            get(addr, &format!("/v1/workflows/{id}")).is_some_and(|(s, _)| s == 200)
        });
    }
}

fn inspect_json(dir: &Path, id: &str) -> Output {
    baton(dir, &["inspect", "workflow", id, "--json"])
}

/// Given a demo whose journal partition 0 lost most of its tail, when the
/// engine runs, then every workflow submitted on ingress is there again
/// (decided again), and `replay --verify`, which failed before with the
/// reason, passes.
#[test]
fn a_shortened_journal_is_rebuilt_and_every_submitted_workflow_decided_again() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    truncate(dir.path(), "baton.journal", 0, 12);
    let before = baton(dir.path(), &["replay", "--verify"]);
    let err = String::from_utf8_lossy(&before.stderr);
    assert_eq!(before.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--verify FAILED") && err.contains("the journal ends at"),
        "{err}"
    );
    let ids = submitted(dir.path(), 0);
    assert!(!ids.is_empty());
    let addr = free_addr();
    let engine = start_engine(dir.path(), &addr);
    wait_for_workflows(&addr, &ids);
    let out = stop(engine);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for id in &ids {
        let o = inspect_json(dir.path(), id);
        assert!(
            o.status.success(),
            "{id}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let after = baton(dir.path(), &["replay", "--verify"]);
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
}

/// Given a demo whose store of partition 0 was deleted and whose journal
/// lost most of its tail (no checkpoint to compare with), when the engine
/// runs, then the inputs beyond what the journal reflects are read again,
/// not skipped to the committed offset.
#[test]
fn a_shortened_journal_without_a_store_still_decides_every_input_again() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    truncate(dir.path(), "baton.journal", 0, 12);
    std::fs::remove_dir_all(dir.path().join("store/p-0")).unwrap();
    let ids = submitted(dir.path(), 0);
    let addr = free_addr();
    let engine = start_engine(dir.path(), &addr);
    wait_for_workflows(&addr, &ids);
    let out = stop(engine);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = baton(dir.path(), &["replay", "--verify"]);
    assert!(after.status.success());
}

/// Given a demo whose ingress partition 0 lost its tail below the offset
/// the engine committed, when the engine runs, then partition 0 stops with
/// an error naming the topic, partition, both offsets and what to do,
/// `/readyz` says so, the other partitions run, and the process exits with
/// that error when stopped.
#[test]
fn a_committed_offset_past_the_ingress_end_stops_that_partition() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    truncate(dir.path(), "baton.ingress", 0, 3);
    let addr = free_addr();
    let engine = start_engine(dir.path(), &addr);
    let mut ready = serde_json::Value::Null;
    wait_until("partition 0 reported stopped", || {
        let Some((_, body)) = get(&addr, "/readyz") else {
            return false;
        };
        ready = serde_json::from_str(&body).unwrap_or_default();
        let parts = ready["partitions"].as_array().cloned().unwrap_or_default();
        parts.iter().any(|p| p["stopped"].is_string())
            && parts.iter().filter(|p| p["ready"] == true).count() == 3
    });
    let out = stop(engine);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(ready["ready"], false);
    let why = ready["partitions"][0]["stopped"].as_str().unwrap();
    for part in [
        "partition 0 stopped",
        "baton.ingress partition 0 ends at offset",
        "committed offset of consumer group",
        "Restore the lost records",
    ] {
        assert!(why.contains(part), "{part}: {why}");
        assert!(err.contains(part), "{part}: {err}");
    }
    assert!(!out.status.success());
}

/// Flips `n` bytes spread through `file` (fixed positions).
fn flip(file: &Path, n: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    let step = bytes.len() / (n + 1);
    for i in 0..n {
        let pos = step * (i + 1) + (i * 7919) % (step / 2).max(1);
        bytes[pos] ^= 0xff;
    }
    std::fs::write(file, bytes).unwrap();
}

/// Given a demo whose projection store of partition 1 has 39 flipped
/// bytes, when `inspect` reads it, then it refuses, saying why; when the
/// engine runs, then the store is rebuilt from the journal with every
/// workflow as before (a store found damaged is moved aside, not deleted).
#[test]
fn a_damaged_store_is_refused_by_inspect_and_rebuilt_by_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    let ids = submitted(dir.path(), 1);
    let before: Vec<String> = ids
        .iter()
        .map(|id| String::from_utf8_lossy(&inspect_json(dir.path(), id).stdout).into_owned())
        .collect();
    flip(&dir.path().join("store/p-1/db"), 39);
    let refused = inspect_json(dir.path(), &ids[0]);
    let err = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("does not answer from it"), "{err}");
    assert!(refused.stdout.is_empty());
    let addr = free_addr();
    let engine = start_engine(dir.path(), &addr);
    wait_for_workflows(&addr, &ids);
    let out = stop(engine);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    if err.contains("is corrupt") {
        assert!(log.contains("moved it aside"), "{log}");
        let moved = std::fs::read_dir(dir.path().join("store"))
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("p-1.corrupt-"));
        assert!(moved, "the damaged store was moved aside");
    }
    for (id, was) in ids.iter().zip(&before) {
        let now = inspect_json(dir.path(), id);
        assert!(now.status.success(), "{id}");
        assert_eq!(&String::from_utf8_lossy(&now.stdout), was, "{id}");
    }
    let verify = baton(dir.path(), &["replay", "--verify"]);
    assert!(verify.status.success());
}
