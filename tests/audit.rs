//! Replay, time travel and audit on a live demo journal with every kind of
//! fault the simulated fleet can produce: failed attempts, hung attempts
//! (step timeouts), retries and agents that crash (lost, steps requeued).
//! The determinism guard: the engine's store must equal a replay.

use std::path::Path;

use serde_json::Value;

mod common;

use common::baton;

fn json(dir: &Path, args: &[&str]) -> Value {
    let o = baton(dir, args);
    assert!(
        o.status.success(),
        "baton {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Every journal record, as `tail` prints them.
fn journal(dir: &Path) -> Vec<Value> {
    let o = baton(
        dir,
        &["tail", "--topic", "baton.journal", "--from-beginning"],
    );
    assert!(o.status.success());
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn payload_type(r: &Value) -> String {
    r["event"]["payload"]
        .as_object()
        .and_then(|o| o.keys().next().cloned())
        .unwrap_or_default()
}

#[test]
fn a_demo_with_every_fault_replays_exactly_and_its_history_can_be_audited() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let demo = json(
        d,
        &[
            "demo",
            "--workflows",
            "1500",
            "--agents",
            "8",
            "--capacity",
            "16",
            "--failure-rate",
            "0.05",
            "--stall-rate",
            "0.03",
            "--step-timeout-ms",
            "300",
            "--lose-agents",
            "2",
            "--lose-after-ms",
            "400",
            "--heartbeat-ms",
            "100",
            "--latency-ms",
            "5",
            "--duration",
            "120",
            "--json",
        ],
    );
    assert_eq!(demo["workflows_unfinished"], 0, "{demo}");
    for k in ["timeouts", "retries", "agents_lost"] {
        assert!(demo["engine"][k].as_u64().unwrap() > 0, "no {k}: {demo}");
    }

    // The determinism guard.
    let v = json(d, &["replay", "--verify", "--json"]);
    assert_eq!(v["verified"], true, "{v}");

    // A workflow whose step timed out and was retried.
    let records = journal(d);
    let timed_out = records
        .iter()
        .find(|r| payload_type(r) == "StepTimedOut")
        .expect("a timeout in the journal");
    let wf = timed_out["key"].as_str().unwrap().to_string();
    let a = json(d, &["audit", &wf, "--format", "json"]);
    assert_eq!(a["format"], "baton.audit/v1");
    assert_eq!(a["correlation_id"], wf.as_str());
    let events = a["events"].as_array().unwrap();
    assert_eq!(events[0]["source"], "ingress");
    assert_eq!(events[0]["type"], "SubmitWorkflow");
    assert_eq!(events[0]["producer_kind"], "user");
    let ours: Vec<&Value> = records.iter().filter(|r| r["key"] == wf.as_str()).collect();
    let journalled: Vec<&Value> = events.iter().filter(|e| e["source"] == "journal").collect();
    assert_eq!(
        journalled.len(),
        ours.len(),
        "every fact of the workflow, once"
    );
    for (e, r) in journalled.iter().zip(&ours) {
        assert_eq!(e["offset"], r["offset"]);
        assert_eq!(e["event_id"], r["event"]["event_id"]);
    }
    assert!(events.iter().any(|e| e["producer_kind"] == "agent"));
    assert!(
        a["retries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["reason"].as_str().unwrap().contains("timed out")),
        "{}",
        a["retries"]
    );
    assert!(a["causation"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "Timer" && n["summary"] == "step timeout fired"));
    assert!(["succeeded", "failed"].contains(&a["outcome"]["status"].as_str().unwrap()));
    let text = String::from_utf8(baton(d, &["audit", &wf]).stdout).unwrap();
    for part in [
        "timeline (",
        "causation:",
        "steps:",
        "retries: ",
        "hand-offs: ",
    ] {
        assert!(text.contains(part), "no `{part}` in:\n{text}");
    }

    // Time travel: before its first fact it did not exist; just after its
    // acceptance it was queued or running; at the end it equals the live store.
    let first = ours[0]["offset"].as_u64().unwrap();
    let before = baton(
        d,
        &["inspect", "workflow", &wf, "--as-of", &first.to_string()],
    );
    assert_eq!(before.status.code(), Some(1));
    let early = json(
        d,
        &[
            "inspect",
            "workflow",
            &wf,
            "--as-of",
            &(first + 1).to_string(),
            "--json",
        ],
    );
    assert!(
        ["queued", "running"].contains(&early["status"].as_str().unwrap()),
        "{early}"
    );
    let last_time = ours.last().unwrap()["event"]["occurred_at"]
        .as_str()
        .unwrap();
    let then = json(
        d,
        &["inspect", "workflow", &wf, "--as-of", last_time, "--json"],
    );
    let now = json(d, &["inspect", "workflow", &wf, "--json"]);
    assert_eq!(then, now);

    // A crashed agent's own story ends with it lost.
    let agent = json(d, &["audit", "--agent", "agent-000", "--format", "json"]);
    assert_eq!(agent["outcome"]["status"], "lost", "{}", agent["outcome"]);
    let fleet_then = json(d, &["inspect", "agents", "--as-of", last_time, "--json"]);
    assert_eq!(fleet_then.as_array().unwrap().len(), 8);

    // Partial replays by time and offset; --verify needs the whole journal.
    let mid = records[records.len() / 2]["event"]["occurred_at"]
        .as_str()
        .unwrap();
    let part = json(d, &["replay", "--until", mid, "--json"]);
    let all = v["events"].as_u64().unwrap();
    let n = part["events"].as_u64().unwrap();
    assert!(n > 0 && n < all, "{n} of {all}");
    let tail = json(d, &["replay", "--from", mid, "--json"]);
    assert!(tail["events"].as_u64().unwrap() < all);
    let bad = baton(d, &["replay", "--verify", "--until", "10"]);
    assert_eq!(bad.status.code(), Some(2));
}
