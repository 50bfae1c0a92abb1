//! The poison suite: inputs at and just under the ingress size limit of
//! every type, long error texts, oversize and deeply nested conditions,
//! wrapping numbers, reused event ids and raw records over every limit.
//! None of them may stop the engine: a demo on the same data directory
//! then finishes every workflow, each poison input is in the dead-letter
//! topic with its reason (or journalled, when it is valid), and the texts
//! the engine wrote about them are bounded.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use baton::codec::json::parse_event;
use baton::codec::{Codec, MAX_INGRESS_EVENT_BYTES};
use baton::domain::events::{Timestamp, MAX_TEXT_BYTES};
use common::baton;
use serde_json::{json, Value};

const LIMIT: usize = MAX_INGRESS_EVENT_BYTES;
/// Partitions the embedded log creates by default.
const PARTITIONS: u32 = 4;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The encoded size of one JSON event line, as `produce` would encode it.
fn encoded_size(line: &str) -> usize {
    let codec = Codec::builtin().unwrap();
    let e = parse_event(
        line,
        Timestamp::from_micros(1_800_000_000_000_000),
        "poison",
    )
    .unwrap();
    codec
        .encode(&e)
        .map(|v| v.len())
        .unwrap_or_else(|e| match e {
            baton::codec::EncodeError::Oversize { size, .. } => size,
            e => panic!("{e}"),
        })
}

/// `template` (a JSON event with `"PAD"` in one string) with the pad grown
/// until the event encodes to exactly `target` bytes.
fn sized(template: &Value, target: usize) -> String {
    let text = template.to_string();
    assert!(text.contains("PAD"), "{text}");
    let mut pad = 1usize;
    for _ in 0..8 {
        let line = text.replace("PAD", &"x".repeat(pad));
        let size = encoded_size(&line);
        if size == target {
            return line;
        }
        pad = (pad as i64 + target as i64 - size as i64).max(1) as usize;
    }
    // A length prefix that grew a byte: the size is one off.
    for p in [
        pad.saturating_sub(2),
        pad.saturating_sub(1),
        pad + 1,
        pad + 2,
    ] {
        let line = text.replace("PAD", &"x".repeat(p.max(1)));
        if encoded_size(&line) == target {
            return line;
        }
    }
    panic!("could not size {text:.200} to {target}")
}

fn produce(dir: &Path, lines: &[String]) {
    let file = dir.join("poison.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let o = baton(dir, &["produce", "--file", file.to_str().unwrap()]);
    assert!(o.status.success(), "produce: {}", stderr(&o));
}

fn demo(dir: &Path, workflows: u32) -> Value {
    let n = workflows.to_string();
    let o = baton(dir, &["demo", "--workflows", &n, "--agents", "8", "--json"]);
    assert!(o.status.success(), "demo: {}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["workflows_unfinished"], 0, "{v}");
    // (The counts are the engine's: poison workflows are among them.)
    assert!(
        v["workflows_succeeded"].as_u64().unwrap() >= u64::from(workflows),
        "every demo workflow succeeded: {v}"
    );
    v
}

fn workflow(dir: &Path, id: &str) -> Value {
    let o = baton(dir, &["inspect", "workflow", id, "--json"]);
    assert!(o.status.success(), "inspect {id}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Dead letters by record key: (reason code, message) in order.
fn dead_letters(dir: &Path) -> BTreeMap<String, Vec<(String, String)>> {
    let o = baton(dir, &["tail", "--topic", "baton.dlq", "--from-beginning"]);
    assert!(o.status.success(), "tail: {}", stderr(&o));
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for l in String::from_utf8(o.stdout).unwrap().lines() {
        let r: Value = serde_json::from_str(l).unwrap();
        let d = &r["event"]["payload"]["DeadLetter"];
        assert!(d.is_object(), "not a dead letter: {l:.300}");
        let message = d["message"].as_str().unwrap().to_string();
        assert!(message.len() <= MAX_TEXT_BYTES + 512, "{message:.200}");
        out.entry(r["key"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push((d["reason_code"].as_str().unwrap().to_string(), message));
    }
    out
}

/// The last status change of each workflow, from the status topic.
fn statuses(dir: &Path) -> BTreeMap<String, Value> {
    let o = baton(
        dir,
        &["tail", "--topic", "baton.status", "--from-beginning"],
    );
    assert!(o.status.success(), "tail: {}", stderr(&o));
    let mut out = BTreeMap::new();
    for l in String::from_utf8(o.stdout).unwrap().lines() {
        let r: Value = serde_json::from_str(l).unwrap();
        let s = &r["event"]["payload"]["WorkflowStatusChanged"];
        out.insert(s["workflow_id"].as_str().unwrap().to_string(), s.clone());
    }
    out
}

/// A workflow id in the same partition as `agent`, so the agent's
/// registration is decided before the workflow without any forwarding.
fn beside(agent: &str, base: &str) -> String {
    let p = baton::log::partition_for_key(agent.as_bytes(), PARTITIONS);
    (0..)
        .map(|i| format!("{base}-{i}"))
        .find(|id| baton::log::partition_for_key(id.as_bytes(), PARTITIONS) == p)
        .unwrap()
}

fn submit(id: &str, caps: &[&str]) -> Value {
    json!({"producer":"user:p","payload":{"SubmitWorkflow":{"workflow_id":id,"definition":{
        "name":"poison","steps":[{"id":"s","capabilities":caps,"pool":"poison"}]}}}})
}

/// Both sizes every poison input is produced at.
fn at_and_under(template: &Value) -> [String; 2] {
    [sized(template, LIMIT), sized(template, LIMIT - 1)]
}

#[test]
fn no_input_stops_the_engine_and_each_poison_is_accounted_for() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let agent = "poison-agent";
    let (held_ok, held_fail) = (beside(agent, "wf-held-ok"), beside(agent, "wf-held-fail"));

    // Given, phase 1: an agent of our own (in a pool the demo does not use)
    // holding one step of two workflows, and poison of every ingress type
    // at and just under the limit.
    let mut lines = vec![
        json!({"producer":agent,"payload":{"RegisterAgent":{"agent_id":agent,"pool":"poison",
            "capabilities":["poison"],"capacity":2,"heartbeat_interval_ms":3_600_000}}})
        .to_string(),
        submit(&held_ok, &["poison"]).to_string(),
        submit(&held_fail, &["poison"]).to_string(),
        submit("wf-dup", &["nobody"]).to_string(),
        submit("wf-cancel-me", &["nobody"]).to_string(),
    ];
    // Valid and at the limit: journalled as is.
    lines.extend(at_and_under(&json!({"producer":"u","payload":{"SubmitWorkflow":{
        "workflow_id":"wf-long-name","definition":{"name":"PAD","steps":[{"id":"s","capabilities":["nobody"]}]}}}}))
        .into_iter()
        .take(1));
    lines.extend(
        at_and_under(&json!({"producer":"u","payload":{"RegisterAgent":{
        "agent_id":"agent-big-label","pool":"poison-idle","capabilities":["nobody"],"capacity":1,
        "labels":{"big":"PAD"},"heartbeat_interval_ms":3_600_000}}}))
        .into_iter()
        .take(1),
    );
    // Rejected at the limit: dead-lettered with their reasons.
    for template in [
        json!({"producer":"u","payload":{"CancelWorkflow":{"workflow_id":"nope-cancel","reason":"PAD"}}}),
        json!({"producer":"u","payload":{"SubmitWorkflow":{"workflow_id":"wf-dup","definition":{
            "name":"PAD","steps":[{"id":"s"}]}}}}),
        json!({"producer":"u","payload":{"RegisterAgent":{"agent_id":"agent-bad","pool":"p",
            "capacity":0,"labels":{"big":"PAD"}}}}),
        json!({"producer":"u","payload":{"StepSucceeded":{"workflow_id":"nope-ok","step_id":"s",
            "attempt":1,"agent_id":"a","output":{"o":"PAD"}}}}),
        json!({"producer":"u","payload":{"StepFailed":{"workflow_id":"nope-fail","step_id":"s",
            "attempt":1,"agent_id":"a","error":"PAD"}}}),
        json!({"producer":"u","payload":{"StepDeclined":{"workflow_id":"nope-decline","step_id":"s",
            "attempt":1,"agent_id":"a","reason":"PAD"}}}),
        json!({"producer":"u","payload":{"StepStarted":{"workflow_id":"nope-start","step_id":"PAD",
            "attempt":1,"agent_id":"a"}}}),
        json!({"producer":"u","payload":{"DeregisterAgent":{"agent_id":"nope-agent","reason":"PAD"}}}),
        json!({"producer":"u","correlation_id":"hb-poison",
            "payload":{"AgentHeartbeat":{"agent_id":"PAD","in_flight":0}}}),
    ] {
        lines.extend(at_and_under(&template));
    }
    // Conditions: 200 KB, and nested beyond what the parser survives.
    let mut cel = submit("wf-cel-big", &["nobody"]);
    cel["payload"]["SubmitWorkflow"]["definition"]["steps"][0]["when"] =
        json!(format!("input.x == '{}'", "y".repeat(200_000)));
    lines.push(cel.to_string());
    let mut nested = submit("wf-cel-deep", &["nobody"]);
    nested["payload"]["SubmitWorkflow"]["definition"]["steps"][0]["when"] =
        json!(format!("{}true{}", "(".repeat(10_000), ")".repeat(10_000)));
    lines.push(nested.to_string());
    // Numbers out of range.
    lines.push(
        json!({"producer":"u","payload":{"RegisterAgent":{"agent_id":"agent-hb","pool":"p",
            "capacity":1,"heartbeat_interval_ms":i64::MAX}}})
        .to_string(),
    );
    // One event id, three contents: the first counts, the others conflict;
    // the identical copy of the first is a plain duplicate.
    let id = "0e0e0e0e-0000-4000-8000-000000000024";
    let conflicting = |wf: &str| {
        let mut s = submit(wf, &["nobody"]);
        s["event_id"] = json!(id);
        s.to_string()
    };
    // (The dedup window is a partition's: the ids share one partition.)
    let (b, c, d) = (
        beside("wf-conflict-a", "wf-conflict-b"),
        beside("wf-conflict-a", "wf-conflict-c"),
        beside("wf-conflict-a", "wf-conflict-d"),
    );
    lines.push(conflicting("wf-conflict-a"));
    lines.push(conflicting(&b));
    lines.push(conflicting(&c));
    lines.push(conflicting("wf-conflict-a"));
    produce(dir, &lines);

    // A record over every limit, from a foreign producer (1 MiB + 201 B,
    // the size of the CancelWorkflow).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use baton::log::{embedded::*, EventLog, ProducerRecord};
        let log = EmbeddedLog::open(EmbeddedConfig::new(dir.join("log"))).unwrap();
        let p = baton::log::partition_for_key(b"raw-big", PARTITIONS);
        let value = bytes::Bytes::from(vec![0xC3; 1_048_777]);
        let rec = ProducerRecord::new(Some(bytes::Bytes::from_static(b"raw-big")), value);
        log.append("baton.ingress", p, vec![rec]).await.unwrap();
        log.flush().await.unwrap();
    });

    // When a demo runs on the same directory
    demo(dir, 40);
    let held = workflow(dir, &held_ok);
    assert_eq!(held["steps"][0]["status"], "assigned", "{held}");
    assert_eq!(held["steps"][0]["agent"], agent, "{held}");

    // Given, phase 2: reports from the holder at the limit, a wrapping
    // usage report, a cancel with a reason at the limit, one more
    // conflicting id (after a restart: the hash came back from the journal)
    let report = |payload: Value| json!({"producer":agent,"payload":payload});
    let mut lines = vec![
        report(json!({"StepSucceeded":{"workflow_id":held_ok,"step_id":"s",
        "attempt":1,"agent_id":agent,"usage":{"tokens_in":0,"tokens_out":i64::MIN,"cost":-1e308}}}))
        .to_string(),
    ];
    lines.push(sized(
        &report(json!({"StepSucceeded":{"workflow_id":held_ok,"step_id":"s","attempt":1,
            "agent_id":agent,"output":{"o":"PAD"},"usage":{"tokens_in":1,"tokens_out":2,"cost":0.5}}})),
        LIMIT,
    ));
    lines.push(sized(
        &report(
            json!({"StepFailed":{"workflow_id":held_fail,"step_id":"s","attempt":1,
            "agent_id":agent,"error":"PAD","retryable":false}}),
        ),
        LIMIT,
    ));
    lines.push(sized(
        &json!({"producer":"u","payload":{"CancelWorkflow":{"workflow_id":"wf-cancel-me","reason":"PAD"}}}),
        LIMIT,
    ));
    lines.push(conflicting(&d));
    produce(dir, &lines);

    // Then the demo still finishes every workflow, on every restart
    demo(dir, 200);

    // And the valid poison was journalled, with bounded engine texts
    assert_eq!(workflow(dir, &held_ok)["status"], "succeeded");
    let failed = workflow(dir, &held_fail);
    assert_eq!(failed["status"], "failed", "{failed}");
    let cancelled = workflow(dir, "wf-cancel-me");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(workflow(dir, "wf-long-name")["status"], "running");
    let status = statuses(dir);
    for id in ["wf-cel-big", "wf-cel-deep"] {
        let reason = status[id]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with("rejected (invalid_step)"),
            "{id}: {:.300}",
            status[id]
        );
        assert!(
            reason.len() <= MAX_TEXT_BYTES + 64,
            "{id}: {} bytes",
            reason.len()
        );
    }
    assert_eq!(workflow(dir, "wf-conflict-a")["status"], "running");
    for wf in [&failed, &cancelled] {
        let text = wf.to_string();
        assert!(
            text.len() < 64 << 10,
            "bounded reasons: {} bytes",
            text.len()
        );
    }

    // And each rejected poison input is in the DLQ with its reason
    let dlq = dead_letters(dir);
    let codes = |key: &str| -> Vec<String> {
        dlq.get(key)
            .map(|v| v.iter().map(|(c, _)| c.clone()).collect())
            .unwrap_or_default()
    };
    for (key, code, n) in [
        ("nope-cancel", "unknown_workflow", 2),
        ("wf-dup", "duplicate_workflow", 2),
        ("agent-bad", "invalid_agent", 2),
        ("nope-ok", "unknown_workflow", 2),
        ("nope-fail", "unknown_workflow", 2),
        ("nope-decline", "unknown_workflow", 2),
        ("agent-hb", "invalid_agent", 1),
        (b.as_str(), "event_id_conflict", 1),
        (c.as_str(), "event_id_conflict", 1),
        (d.as_str(), "event_id_conflict", 1),
        ("nope-agent", "unknown_agent", 2),
        ("raw-big", "oversize", 1),
        (held_ok.as_str(), "invalid_usage", 1),
    ] {
        assert_eq!(codes(key), vec![code; n], "{key}: {:?}", dlq.get(key));
    }
    // Ids over the identifier limit are refused whatever the type.
    assert!(dlq.values().flatten().any(|(c, _)| c == "invalid_id"));
    assert_eq!(codes("nope-start"), ["invalid_id"; 2]);
    assert_eq!(codes("hb-poison"), ["invalid_id"; 2]);
    // The true duplicate was skipped, not dead-lettered.
    assert!(
        !dlq.contains_key("wf-conflict-a"),
        "{:?}",
        dlq.get("wf-conflict-a")
    );
    // The record over every limit is kept cut, with its length and hash.
    let (_, message) = &dlq["raw-big"][0];
    assert!(
        message.contains("of 1048777 bytes, sha256 "),
        "{message:.300}"
    );
}

/// The last line of defence: a fact that does not encode although its
/// input passed every check (here: an engine whose event limit is far below
/// the ingress limit). The input is dead-lettered as `unencodable`, the
/// loop stops with an error naming the partition and offset, and the loop
/// started after it skips that input and decides the next ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unencodable_fact_dead_letters_its_input_and_the_partition_goes_on() {
    use std::sync::Arc;

    use baton::domain::engine::EngineConfig;
    use baton::domain::events::*;
    use baton::engine::{run_partition, Engine, EngineError, EngineOptions, EngineStats};
    use baton::log::embedded::{EmbeddedConfig, EmbeddedLog};
    use baton::log::{EventLog, ProducerRecord};
    use baton::topics::Topics;

    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).unwrap());
    let topics = Topics::default();
    for spec in topics.specs(1) {
        log.create_topic(&spec).await.unwrap();
    }
    // Given an engine that cannot write events over 2 KiB, and three
    // submissions: small, one whose acceptance is just over 2 KiB, small
    let codec = Codec::builtin().unwrap().with_max_event_bytes(2048);
    let submit = |id: &str, name_len: usize| {
        let e = Envelope {
            event_id: EventId::random(),
            correlation_id: id.into(),
            causation_id: None,
            occurred_at: Timestamp::from_datetime(chrono::Utc::now()),
            producer: "p".into(),
            payload: SubmitWorkflow {
                workflow_id: id.into(),
                definition: WorkflowDefinition {
                    name: "n".repeat(name_len),
                    steps: vec![StepDefinition::new("s", &[])].into(),
                    input: None,
                    deadline_ms: None,
                    priority: 0,
                    labels: Default::default(),
                },
            }
            .into(),
        };
        // Encoded without the engine's limit, as a foreign producer would.
        let v = Codec::builtin().unwrap().encode(&e).unwrap();
        ProducerRecord::new(Some(bytes::Bytes::from(id.to_string())), v.into())
    };
    // The big one fits the engine's limit as an input (2,030 bytes) but
    // not as a fact: the engine's envelope adds a causation id and a
    // longer producer.
    let name_len = (1..2048)
        .find(|&n| submit("wf-big", n).value.len() >= 2030)
        .unwrap();
    let records = vec![
        submit("wf-a", 10),
        submit("wf-big", name_len),
        submit("wf-c", 10),
    ];
    log.append(&topics.ingress(), 0, records).await.unwrap();
    let engine = Arc::new(Engine {
        log: log.clone(),
        codec: codec.clone(),
        topics: topics.clone(),
        config: EngineConfig::default(),
        options: EngineOptions::new(dir.path().to_path_buf()),
        stats: Arc::new(EngineStats::default()),
        live: Default::default(),
        agent_labels: Default::default(),
    });

    // When the partition runs
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    // (A guard, not a timing assertion: a loop that did not stop would
    // otherwise hang the suite.)
    let first = tokio::time::timeout(
        Duration::from_secs(120),
        run_partition(engine.clone(), 0, Duration::ZERO, stop.clone()),
    )
    .await
    .expect("the loop should stop on the unencodable input");

    // Then it stops on that input only, naming partition and offset
    match first {
        Err(EngineError::Poisoned {
            partition, offset, ..
        }) => {
            assert_eq!((partition, offset), (0, 1))
        }
        other => panic!("expected a poisoned input, got {other:?}"),
    }
    let dlq = log.read(&topics.dlq(), 0, 0, 10).await.unwrap();
    assert_eq!(dlq.len(), 1);
    let Payload::DeadLetter(d) = codec.decode(&dlq[0].value).unwrap().payload else {
        panic!("not a dead letter")
    };
    assert_eq!(
        (d.reason_code.as_str(), d.source_offset),
        ("unencodable", 1)
    );

    // And the loop started after it skips it and decides the next input
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let second = tokio::spawn(run_partition(engine.clone(), 0, Duration::ZERO, stop));
    let journal = topics.journal();
    let mut accepted = Vec::new();
    for _ in 0..2000 {
        accepted = log
            .read(&journal, 0, 0, 1000)
            .await
            .unwrap()
            .iter()
            .filter_map(|r| match codec.decode(&r.value).unwrap().payload {
                Payload::WorkflowAccepted(a) => Some(a.workflow_id),
                _ => None,
            })
            .collect();
        if accepted.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop_tx.send(true).unwrap();
    second.await.unwrap().unwrap();
    assert_eq!(accepted, ["wf-a", "wf-c"]);
}
