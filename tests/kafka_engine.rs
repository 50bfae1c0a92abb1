//! The engine on Kafka, end to end, with real processes:
//! - two `baton run` instances share 4 partitions through a consumer group;
//!   one is SIGKILLed mid-run and the survivor takes its partitions over
//!   (the second to join is killed: tansu 0.6.0 never replaces a dead group
//!   *leader*, so killing the first member stalls the group on that broker;
//!   Apache Kafka's coordinator handles both);
//! - a durable (sqlite) broker is restarted mid-run and the engine carries on.
//!
//! Afterwards every ingress event is reflected in the journal once (no
//! journal event id twice, one acceptance per submission, one outcome per
//! step result, every agent — registered once, on its home partition —
//! registered exactly once on every partition) and `baton replay --verify`
//! passes.

mod kafka_common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use baton::codec::Codec;
use baton::domain::events::{EventId, Payload};
use baton::log::EventLog;
use baton::topics::Topics;
use kafka_common::{brokers, connect, unique, Broker};

const PARTITIONS: u32 = 4;

/// The tests here each run a broker or a fleet of processes on two cores;
/// one at a time, so neither starves the other's broker.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `baton` with the Kafka globals of one test.
fn baton(brokers: &str, prefix: &str, data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_baton"));
    c.args(["--brokers", brokers, "--topic-prefix", prefix])
        .args(["--partitions", &PARTITIONS.to_string()])
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--log",
            "warn,baton::log::kafka::group=info,baton::engine::supervisor=info",
        ]);
    c
}

/// Prints what an instance logged about ownership and trouble (kept in the
/// test's output, which cargo shows when the test fails).
fn print_log(name: &str, path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in text
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("partitions"))
    {
        eprintln!("{name}: {line}");
    }
}

fn epoch_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn spawn_run(brokers: &str, prefix: &str, data_dir: &Path, log: &Path) -> Child {
    let err = std::fs::File::create(log).unwrap();
    baton(brokers, prefix, data_dir)
        .args(["run", "--no-http", "--flush-ms", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap()
}

fn spawn_fleet(brokers: &str, prefix: &str, data_dir: &Path, workflows: u32) -> Child {
    baton(brokers, prefix, data_dir)
        .args(["demo", "--no-engine", "--json", "--duration", "150"])
        .args(["--workflows", &workflows.to_string(), "--latency-ms", "5"])
        .args(["--max-in-flight", "500"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Waits for the fleet and returns its JSON summary.
fn fleet_summary(child: Child) -> serde_json::Value {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo --no-engine failed: {text}");
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("summary {text}: {e}"))
}

async fn journal_total(log: &dyn EventLog, topics: &Topics) -> u64 {
    let mut total = 0;
    for p in 0..PARTITIONS {
        total += log.high_watermark(&topics.journal(), p).await.unwrap_or(0);
    }
    total
}

fn sigterm(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "baton run did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads both topics whole and checks that each ingress event is reflected
/// once; returns the number of succeeded workflows. The journal is read as
/// Baton's own readers read it, framed: the part of an append that a killed
/// instance left behind is dropped (its work was re-appended by the
/// survivor), so it must not count as a second copy.
async fn check_effectively_once(brokers: &str, topics: &Topics, workflows: u32) -> usize {
    let journal = topics.journal();
    let log = connect(brokers, &[journal.as_str()]).await;
    let codec = Codec::builtin().unwrap();
    let mut submissions = HashSet::new();
    let mut results = HashSet::new();
    for p in 0..PARTITIONS {
        for r in log.read(&topics.ingress(), p, 0, usize::MAX).await.unwrap() {
            let Ok(e) = codec.decode(&r.value) else {
                continue;
            };
            match e.payload {
                Payload::SubmitWorkflow(_) => submissions.insert(e.event_id),
                Payload::StepSucceeded(_) | Payload::StepFailed(_) => results.insert(e.event_id),
                _ => false,
            };
        }
    }
    assert_eq!(submissions.len(), workflows as usize, "ingress submissions");
    // Where each fact was found: partition, offset, its append's frame
    // (writer, batch, index) and time, to tell a re-processed input (two
    // appends) from a broker that stored one append twice (same frame).
    let mut ids: HashMap<EventId, String> = HashMap::new();
    let mut accepted: HashMap<EventId, u32> = HashMap::new();
    let mut outcomes: HashMap<EventId, u32> = HashMap::new();
    let mut succeeded = BTreeMap::new();
    // Agents register once, on their home partition; the engine forwards.
    let mut registered: Vec<BTreeMap<String, u32>> = vec![BTreeMap::new(); PARTITIONS as usize];
    for p in 0..PARTITIONS {
        for r in log.read(&topics.journal(), p, 0, usize::MAX).await.unwrap() {
            let e = codec.decode(&r.value).unwrap();
            let frame = baton::log::kafka::framing::Frame::of(&r);
            let here = format!(
                "p{} offset {} frame {:?} at {} ms",
                r.partition, r.offset, frame, r.timestamp_ms
            );
            if let Some(first) = ids.insert(e.event_id, here.clone()) {
                panic!(
                    "journal event id {} ({}) appears twice: an input was processed twice \
                     (first at {first}, again at {here})",
                    e.event_id,
                    e.payload.type_name()
                );
            }
            let cause = e.causation_id;
            match &e.payload {
                Payload::WorkflowAccepted(_) => {
                    *accepted.entry(cause.expect("caused")).or_default() += 1
                }
                Payload::WorkflowRejected(r) => {
                    panic!(
                        "rejection {}: {} (a re-processed input?)",
                        r.code, r.message
                    )
                }
                // An agent's report is journaled as is, caused by its ingress event.
                Payload::StepSucceeded(_) | Payload::StepFailed(_) => {
                    if let Some(c) = cause.filter(|c| results.contains(c)) {
                        *outcomes.entry(c).or_default() += 1;
                    }
                }
                Payload::WorkflowSucceeded(w) => {
                    *succeeded.entry(w.workflow_id.clone()).or_insert(0) += 1
                }
                Payload::AgentRegistered(a) => {
                    *registered[p as usize]
                        .entry(a.agent_id.clone())
                        .or_default() += 1
                }
                _ => {}
            }
        }
    }
    assert!(!registered[0].is_empty(), "agents registered");
    for (p, agents) in registered.iter().enumerate() {
        assert_eq!(
            agents.keys().collect::<Vec<_>>(),
            registered[0].keys().collect::<Vec<_>>(),
            "partition {p} knows every agent"
        );
        assert!(
            agents.values().all(|&n| n == 1),
            "partition {p}: an agent registered twice: {agents:?}"
        );
    }
    // Count them: every submission accepted once, no step result twice.
    assert_eq!(accepted.len(), submissions.len(), "submissions accepted");
    assert!(accepted.keys().all(|k| submissions.contains(k)));
    assert!(
        accepted.values().all(|&n| n == 1),
        "a submission accepted twice"
    );
    assert!(
        outcomes.values().all(|&n| n == 1),
        "a step result applied twice"
    );
    assert!(
        succeeded.values().all(|&n| n == 1),
        "a workflow completed twice"
    );
    eprintln!(
        "journal: {} facts, {} submissions accepted once, {} step results applied once, {} workflows completed once",
        ids.len(),
        accepted.len(),
        outcomes.len(),
        succeeded.len()
    );
    succeeded.len()
}

fn replay_verify(brokers: &str, prefix: &str, data_dir: &Path) {
    let out = baton(brokers, prefix, data_dir)
        .args(["replay", "--verify", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay --verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["complete"], true, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_partitions_and_the_survivor_takes_over_after_sigkill() {
    let _serial = SERIAL.lock().await;
    // A joins first (the group leader on tansu), B second; B is killed.
    const WORKFLOWS: u32 = 5_000;
    let brokers = brokers();
    let prefix = format!("{}.", unique("ha"));
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir, fleet_dir) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("f"),
    );
    let mut a = spawn_run(&brokers, &prefix, &a_dir, &dir.path().join("a.log"));
    // The first instance creates the topics; the second joins the group.
    std::thread::sleep(Duration::from_secs(2));
    let mut b = spawn_run(&brokers, &prefix, &b_dir, &dir.path().join("b.log"));
    std::thread::sleep(Duration::from_secs(2));
    let fleet = spawn_fleet(&brokers, &prefix, &fleet_dir, WORKFLOWS);

    let log = connect(&brokers, &[]).await;
    let topics = Topics::new(&prefix);
    // Kill B once both instances have written a good part of the journal.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let total = journal_total(&log, &topics).await;
        if total > 12 * WORKFLOWS as u64 / 4 {
            eprintln!(
                "SIGKILL instance B at {total} journal events ({} ms)",
                epoch_ms()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no progress: {total} journal events"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.kill().unwrap();
    b.wait().unwrap();
    let before = journal_total(&log, &topics).await;

    let summary = fleet_summary(fleet);
    eprintln!("fleet: {summary}");
    assert_eq!(summary["workflows_succeeded"], WORKFLOWS, "{summary}");
    sigterm(&mut a);
    print_log("A", &dir.path().join("a.log"));
    print_log("B", &dir.path().join("b.log"));
    let after = journal_total(&log, &topics).await;
    assert!(after > before, "the survivor went on: {before} → {after}");

    let succeeded = check_effectively_once(&brokers, &topics, WORKFLOWS).await;
    assert_eq!(succeeded, WORKFLOWS as usize);
    // The survivor's stores now hold all four partitions.
    replay_verify(&brokers, &prefix, &a_dir);
    for p in 0..PARTITIONS {
        assert!(
            a_dir.join("store").join(format!("p-{p}")).exists(),
            "A owns p-{p}"
        );
    }
}

// History: this test was kept out of CI after runs in which the restarted
// tansu refused connections for minutes (fixed in `Broker::restart`, which
// waits for its "ready" line and restarts it when the bind failed) and in
// which the simulated fleet gave up: tansu answers produces in flight at the
// kill with an error, and the fleet's appends did not retry (they now ride
// out broker errors for up to two minutes). Since then it passed 4 of 4
// alone (3 beside a busy core) and, with the two-instance test, 6 of 6
// runs of this binary (2 of them fresh-clone CI runs) since a replay that
// stopped on a silent read and a miscounted torn append were fixed;
// `SERIAL` runs the two tests one at a time. Earlier runs under heavy CPU
// contention had also seen tansu's sqlite storage come back from a SIGKILL
// without records it had acknowledged; no client can ride that out. A
// graceful restart (SIGTERM) is worse on tansu 0.6.0: the restarted broker
// panics in its sqlite idempotent-producer check ("more or less than one
// row", lite.rs) on the first produce of a producer from before the restart,
// and its storage task stays dead; so the broker is SIGKILLed, like a
// machine that lost power.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_rides_out_a_durable_broker_restart() {
    let _serial = SERIAL.lock().await;
    // tansu's sqlite storage sustains far less than its memory storage
    // (about 100 ingress records/s here with debug builds), so this run
    // is small; volume is the two-instance test's job.
    const WORKFLOWS: u32 = 400;
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start("sqlite://tansu.db", dir.path());
    let brokers = broker.addr();
    let prefix = "baton.";
    let run_dir = dir.path().join("run");
    let mut engine = spawn_run(&brokers, prefix, &run_dir, &dir.path().join("run.log"));
    std::thread::sleep(Duration::from_secs(2));
    let fleet = spawn_fleet(&brokers, prefix, &dir.path().join("f"), WORKFLOWS);

    let topics = Topics::new(prefix);
    {
        let log = connect(&brokers, &[]).await;
        let deadline = Instant::now() + Duration::from_secs(120);
        while journal_total(&log, &topics).await < 12 * WORKFLOWS as u64 / 3 {
            assert!(Instant::now() < deadline, "no progress before the restart");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!("restarting the broker");
    broker.stop();
    std::thread::sleep(Duration::from_secs(2));
    broker.restart();

    let out = fleet.wait_with_output().unwrap();
    // What the engine and the broker had to say about the restart (kept in
    // the test output, and what explains a failure).
    let engine_log = std::fs::read_to_string(dir.path().join("run.log")).unwrap_or_default();
    for line in engine_log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
    {
        eprintln!("engine: {line}");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let broker_log = std::fs::read_to_string(dir.path().join("tansu.log")).unwrap_or_default();
        let lines: Vec<&str> = broker_log.lines().collect();
        for line in &lines[lines.len().saturating_sub(60)..] {
            eprintln!("broker: {line}");
        }
        panic!("demo --no-engine failed: {text}");
    }
    let summary: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    eprintln!("fleet: {summary}");
    assert_eq!(summary["workflows_succeeded"], WORKFLOWS, "{summary}");
    sigterm(&mut engine);
    let succeeded = check_effectively_once(&brokers, &topics, WORKFLOWS).await;
    assert_eq!(succeeded, WORKFLOWS as usize);
    replay_verify(&brokers, prefix, &run_dir);
}
