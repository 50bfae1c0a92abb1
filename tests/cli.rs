//! The `baton` binary as a user runs it: produce → tail round trips, bad
//! input rejected with a one-line reason and nothing written, exit codes
//! (0 ok, 1 runtime error, 2 usage), the examples, and the generated
//! catalog staying in sync.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// `baton --data-dir DIR ARGS…` on the embedded log.
fn baton_command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_baton"));
    c.arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("BATON_BROKERS");
    c
}

fn baton(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = baton_command(dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn baton");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tail_all(dir: &Path) -> Vec<Value> {
    let o = baton(dir, &["tail", "--from-beginning"], "");
    assert!(o.status.success(), "tail: {}", stderr(&o));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const SUBMIT: &str = include_str!("../examples/submit_workflow.jsonl");

#[test]
fn produce_then_tail_shows_the_same_event() {
    let dir = tempfile::tempdir().unwrap();
    let o = baton(dir.path(), &["produce", "--topic", "baton.ingress"], SUBMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = tail_all(dir.path());
    assert_eq!(records.len(), 1);
    let r = &records[0];
    let sent: Value = serde_json::from_str(SUBMIT).unwrap();
    assert_eq!(r["event"]["event_id"], sent["event_id"]);
    assert_eq!(r["event"]["producer"], "user:alice");
    assert_eq!(r["event"]["correlation_id"], "wf-demo-1");
    assert_eq!(r["key"], "wf-demo-1");
    assert_eq!(r["offset"], 0);
    let got = &r["event"]["payload"]["SubmitWorkflow"];
    let want = &sent["payload"]["SubmitWorkflow"];
    assert_eq!(got["workflow_id"], want["workflow_id"]);
    assert_eq!(got["definition"]["input"], want["definition"]["input"]);
    assert_eq!(
        got["definition"]["steps"][1]["retry"],
        want["definition"]["steps"][1]["retry"]
    );
    assert_eq!(
        got["definition"]["steps"][3]["when"],
        want["definition"]["steps"][3]["when"]
    );
    // Partitioned by key like Kafka's default partitioner.
    let p = baton::log::partition_for_key(b"wf-demo-1", 4);
    assert_eq!(r["partition"], p);
}

#[test]
fn bad_lines_are_reported_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    assert!(baton(dir.path(), &["produce"], SUBMIT).status.success());
    let oversize = format!(
        r#"{{"payload":{{"StepSucceeded":{{"workflow_id":"w","step_id":"s","attempt":1,"agent_id":"a","output":"{}"}}}}}}"#,
        "x".repeat(1_100_000)
    );
    let cases = [
        ("{not json", "line 1: invalid event JSON"),
        (
            r#"{"payload":{"LaunchRocket":{}}}"#,
            "unknown variant `LaunchRocket`",
        ),
        (
            r#"{"payload":{"StepStarted":{"workflow_id":"w","attempt":1,"agent_id":"a"}}}"#,
            "missing field `step_id`",
        ),
        (oversize.as_str(), "over the limit of 983040 bytes"),
    ];
    for (line, reason) in cases {
        let o = baton(dir.path(), &["produce"], line);
        assert_eq!(o.status.code(), Some(1), "{reason}");
        let err = stderr(&o);
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("line 1: ") && first.contains(reason),
            "{reason}: {err}"
        );
        assert!(err.contains("nothing was written"), "{err}");
    }
    assert_eq!(
        tail_all(dir.path()).len(),
        1,
        "only the first valid event is in the log"
    );
}

#[test]
fn all_or_nothing_unless_skip_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let ok = r#"{"payload":{"CancelWorkflow":{"workflow_id":"wf-1"}}}"#;
    let input = format!("{ok}\n\n{{\"payload\":{{}}}}\n{ok}\n");
    let o = baton(dir.path(), &["produce"], &input);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("line 3: "), "{}", stderr(&o));
    let o = baton(dir.path(), &["tail", "--from-beginning"], "");
    assert!(
        !o.status.success(),
        "no topic yet: nothing was written at all"
    );
    assert!(
        stderr(&o).contains("no log has been written"),
        "{}",
        stderr(&o)
    );

    let o = baton(dir.path(), &["produce", "--skip-invalid"], &input);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a skipped line still fails the run"
    );
    assert_eq!(tail_all(dir.path()).len(), 2);
}

#[test]
fn every_example_file_produces() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    for entry in std::fs::read_dir("examples").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let o = baton(
            dir.path(),
            &["produce", "--file", path.to_str().unwrap()],
            "",
        );
        assert!(o.status.success(), "{}: {}", path.display(), stderr(&o));
        n += 1;
    }
    assert!(n >= 9, "one example per ingress type");
    let records = tail_all(dir.path());
    assert_eq!(records.len(), n);
    assert!(records.iter().all(|r| r.get("error").is_none()));
}

#[test]
fn exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        baton(dir.path(), &["produce", "--no-such-flag"], "")
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        baton(dir.path(), &["--fsync", "sometimes", "produce"], "")
            .status
            .code(),
        Some(2)
    );
    // Kafka settings are checked before any connection is tried.
    let o = baton(
        dir.path(),
        &["--brokers", "127.0.0.1:1", "--kafka", "acks=0", "tail"],
        "",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("`acks`"), "{}", stderr(&o));
    let o = baton(
        dir.path(),
        &["--brokers", "127.0.0.1:1", "--kafka", "linger.ms", "tail"],
        "",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("KEY=VALUE"), "{}", stderr(&o));
    assert!(baton(dir.path(), &["produce"], SUBMIT).status.success());
    let o = baton(dir.path(), &["tail", "--partition", "99"], "");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = baton(
        dir.path(),
        &["produce", "--file", "/nonexistent/x.jsonl"],
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent/x.jsonl"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn undecodable_records_are_shown_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    assert!(baton(dir.path(), &["produce"], SUBMIT).status.success());
    // Write raw garbage through the library, as a foreign producer might.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use baton::log::{embedded::*, EventLog, ProducerRecord};
        let log = EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).unwrap();
        log.append(
            "baton.ingress",
            0,
            vec![ProducerRecord::new(
                None,
                bytes::Bytes::from_static(b"\x00\x01garbage"),
            )],
        )
        .await
        .unwrap();
    });
    let records = tail_all(dir.path());
    assert_eq!(records.len(), 2);
    let bad = records.iter().find(|r| r.get("error").is_some()).unwrap();
    assert_eq!(bad["error"]["code"], "wrong_magic");
    assert!(bad["value_base64"].is_string());
}

#[test]
fn demo_finishes_every_workflow_and_a_second_run_continues() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let o = baton(
            dir.path(),
            &[
                "demo",
                "--workflows",
                "2000",
                "--agents",
                "20",
                "--failure-rate",
                "0.05",
                "--json",
            ],
            "",
        );
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let first = run();
    assert_eq!(first["workflows_submitted"], 2000);
    assert_eq!(first["workflows_unfinished"], 0);
    assert_eq!(
        first["workflows_succeeded"].as_u64().unwrap()
            + first["workflows_failed"].as_u64().unwrap(),
        2000,
        "every workflow reached a terminal state: {first}"
    );
    assert!(first["journal_events"].as_u64().unwrap() >= 2000 * 11);
    let second = run();
    assert_eq!(second["workflows_unfinished"], 0);
    assert_eq!(
        second["journal_events_total"].as_u64().unwrap(),
        first["journal_events_total"].as_u64().unwrap()
            + second["journal_events"].as_u64().unwrap(),
        "the second run appended to the same journal"
    );
    // The live store equals a replay of the journal up to its checkpoint,
    // after a run with failures and retries and a restart in between.
    let v = baton(dir.path(), &["replay", "--verify", "--json"], "");
    assert!(v.status.success(), "{}", stderr(&v));
    let v: Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["complete"], true, "{v}");
    assert_eq!(
        v["events"].as_u64().unwrap(),
        second["journal_events_total"].as_u64().unwrap()
    );
    // Where the CPU went: every phase is a figure, and the store was written.
    for phase in [
        "total_s",
        "read_s",
        "fold_s",
        "prepare_s",
        "store_write_s",
        "other_s",
    ] {
        assert!(
            v["cpu"][phase].as_f64().is_some_and(|s| s >= 0.0),
            "{phase}: {v}"
        );
    }
    assert!(v["cpu"]["store_keys"].as_u64().unwrap() > 0, "{v}");
    // A plain replay of the whole journal yields the same digest twice.
    let digest = |o: Output| -> Value {
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()["digest"].clone()
    };
    let a = digest(baton(dir.path(), &["replay", "--json"], ""));
    let b = digest(baton(dir.path(), &["replay", "--json"], ""));
    assert_eq!(a, b);
    assert_eq!(a, v["digest"], "the checkpoint covered the whole journal");
}

#[test]
fn schema_catalog_page_is_in_sync() {
    let o = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["schemas", "--markdown"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let committed = std::fs::read_to_string("schemas/README.md").unwrap_or_default();
    assert!(
        committed == String::from_utf8(o.stdout).unwrap(),
        "schemas/README.md is stale: run `cargo run -- schemas --markdown > schemas/README.md`"
    );
}

#[test]
fn tail_follow_sees_records_appended_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    assert!(baton(dir.path(), &["produce"], SUBMIT).status.success());
    let follower = baton_command(dir.path(), &["tail", "--follow", "--max", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Give the follower time to open the log and take its start position.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let lines = [
        r#"{"event_id":"00000000-0000-4000-8000-00000000000a","payload":{"CancelWorkflow":{"workflow_id":"wf-a"}}}"#,
        r#"{"event_id":"00000000-0000-4000-8000-00000000000b","payload":{"CancelWorkflow":{"workflow_id":"wf-b"}}}"#,
    ];
    for line in lines {
        let o = baton(dir.path(), &["produce"], line);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // Bounded wait: the follower exits after --max 2 records.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut follower = follower;
    loop {
        if follower.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            follower.kill().ok();
            panic!("tail --follow did not see 2 new records within 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = follower.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let ids: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["event"]["event_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut ids_sorted = ids.clone();
    ids_sorted.sort();
    assert_eq!(
        ids_sorted,
        [
            "00000000-0000-4000-8000-00000000000a",
            "00000000-0000-4000-8000-00000000000b"
        ],
        "only the new records, not the one produced before following"
    );
}

#[test]
fn produce_refuses_the_topics_the_engine_owns() {
    // Given a forged fact, when it is produced to each engine-owned topic
    let dir = tempfile::tempdir().unwrap();
    let forged = r#"{"producer":"me","payload":{"WorkflowSucceeded":{"workflow_id":"wf-x","usage":{"tokens_in":0,"tokens_out":0,"cost":0}}}}"#;
    for topic in [
        "baton.journal",
        "baton.assignments",
        "baton.status",
        "baton.alerts",
        "baton.dlq",
    ] {
        let o = baton(dir.path(), &["produce", "--topic", topic], forged);
        // Then it is refused as a usage error, naming the ingress topic
        assert_eq!(o.status.code(), Some(2), "{topic}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("written by the engine only")
                && stderr(&o).contains("baton.ingress"),
            "{}",
            stderr(&o)
        );
    }
    // And under another prefix, that prefix's topics are the engine's
    let o = baton(
        dir.path(),
        &["--topic-prefix", "t.", "produce", "--topic", "t.journal"],
        forged,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // And nothing reached the log
    assert!(!dir.path().join("log/topics/baton.journal").exists());
}

#[test]
fn invalid_topic_name_is_a_usage_error_before_reading_input() {
    let dir = tempfile::tempdir().unwrap();
    let o = baton(dir.path(), &["produce", "--topic", "bad/topic"], SUBMIT);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("invalid topic name"), "{}", stderr(&o));
}

#[test]
fn bench_reports_machine_readable_figures() {
    let dir = tempfile::tempdir().unwrap();
    let o = baton(
        dir.path(),
        &[
            "bench",
            "--codec-events",
            "2000",
            "--log-records",
            "5000",
            "--json",
        ],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    for path in [
        ("codec", "decode_events_per_s"),
        ("codec", "decode_apache_avro_value_events_per_s"),
        ("embedded_log", "append_records_per_s"),
        ("embedded_log", "scan_records_per_s"),
    ] {
        assert!(
            v[path.0][path.1].as_f64().is_some_and(|x| x > 0.0),
            "{path:?} in {v}"
        );
    }
}

#[test]
fn submit_validates_locally_and_inspect_shows_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let o = baton(dir.path(), &["submit", "examples/workflows/cycle.json"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("dependency cycle: a -> c -> b -> a"),
        "{}",
        stderr(&o)
    );
    let o = baton(
        dir.path(),
        &["submit", "examples/workflows/pr-review.json"],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "wf-pr-42");
    // The demo's engine and fleet process the submitted workflow too.
    let o = baton(
        dir.path(),
        &["demo", "--workflows", "20", "--agents", "4", "--json"],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = baton(
        dir.path(),
        &["inspect", "workflow", "wf-pr-42", "--json"],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let wf: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(wf["status"], "succeeded", "{wf}");
    assert_eq!(wf["steps"].as_array().unwrap().len(), 3);
    assert!(wf["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "succeeded" && s["agent"].is_string()));
    let o = baton(dir.path(), &["inspect", "agents"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("agent-000") && table.contains("healthy"),
        "{table}"
    );
    let o = baton(dir.path(), &["inspect", "workflow", "nope"], "");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn a_finished_workflow_id_cannot_be_submitted_again() {
    let dir = tempfile::tempdir().unwrap();
    let demo = |dir: &Path| {
        let o = baton(
            dir,
            &["demo", "--workflows", "5", "--agents", "2", "--json"],
            "",
        );
        assert!(o.status.success(), "{}", stderr(&o));
    };
    assert!(baton(
        dir.path(),
        &["submit", "examples/workflows/pr-review.json"],
        ""
    )
    .status
    .success());
    demo(dir.path());
    // The finished workflow has left memory; the duplicate must still be caught.
    assert!(baton(
        dir.path(),
        &["submit", "examples/workflows/pr-review.json"],
        ""
    )
    .status
    .success());
    demo(dir.path());
    let o = baton(
        dir.path(),
        &["tail", "--topic", "baton.dlq", "--from-beginning"],
        "",
    );
    let dlq = String::from_utf8_lossy(&o.stdout);
    assert!(dlq.contains("duplicate_workflow"), "{dlq}");
    let o = baton(
        dir.path(),
        &["inspect", "workflow", "wf-pr-42", "--json"],
        "",
    );
    let wf: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(wf["status"], "succeeded", "the first run's outcome stands");
}

#[test]
fn a_journal_that_lost_facts_is_refolded_and_the_store_follows_it() {
    // A broker that loses acknowledged records (or a journal partition
    // deleted by hand) leaves a store naming offsets that no longer exist.
    // The engine must notice at recovery, say so, and rebuild that
    // partition's projections from the journal as it now is.
    let dir = tempfile::tempdir().unwrap();
    let demo = |workflows: &str| {
        let o = baton(
            dir.path(),
            &["demo", "--no-http", "--workflows", workflows, "--json"],
            "",
        );
        assert!(o.status.success(), "{}", stderr(&o));
        o
    };
    demo("200");
    let journal_p0 = dir.path().join("log/topics/baton.journal/0");
    let mut removed = 0;
    for f in std::fs::read_dir(&journal_p0).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
        removed += 1;
    }
    assert!(removed > 0, "the journal's layout changed: nothing removed");
    let second = demo("50");
    let err = stderr(&second);
    assert!(
        err.contains("the journal ends before the store's checkpoint") && err.contains("ERROR"),
        "the loss is reported: {err}"
    );
    let summary: Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(summary["workflows_unfinished"], 0, "{summary}");
    let v = baton(dir.path(), &["replay", "--verify", "--json"], "");
    assert!(v.status.success(), "{}", stderr(&v));
    let v: Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(v["verified"], true, "{v}");
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `baton tail … | head`: the reader leaves early; like `cat`, baton
    // ends without a panic message (killed by SIGPIPE, or done).
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let o = baton(dir.path(), &["produce", "--topic", "baton.ingress"], SUBMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    for args in [&["schemas"][..], &["tail", "--from-beginning"], &["config"]] {
        // A pipe whose reader is already gone: the first write fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = baton_command(dir.path(), args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("run baton");
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            o.status.success() || o.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?}: {err}",
            o.status
        );
    }
}
