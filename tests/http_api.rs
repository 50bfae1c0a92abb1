//! The read-only HTTP API: in-process over the golden journal (shapes,
//! errors, pagination, the audit story equal to the CLI's), probes, and
//! schemathesis against a running `baton demo` (every documented endpoint,
//! positive and negative data: 4xx never 5xx, only documented statuses,
//! bodies that match their schemas).

mod api;
mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::{context, golden, Api, STORY};
use baton::api::workflows::{page, Cursor, CURSOR_PATTERN};
use baton::engine::live::Live;
use serde_json::Value;

fn error_code(r: &api::Reply) -> String {
    let v = r.json();
    assert!(v["message"].is_string(), "{}", r.body);
    v["code"].as_str().unwrap_or_default().to_string()
}

/// On Kafka an instance's stores for partitions it no longer runs are
/// stale: it answers only for the partitions its engine runs.
#[test]
fn an_instance_answers_only_for_the_partitions_it_runs() {
    let dir = golden();
    let live = Arc::new(Live::default());
    live.register(1);
    let api = Api::start(context(dir.path(), Some(live)));
    let r = api.get("/v1/workflows?limit=1000");
    assert_eq!(r.status, 200, "{}", r.body);
    let items = r.json()["items"].as_array().unwrap().clone();
    assert!(!items.is_empty());
    assert!(items.iter().all(|w| w["partition"] == 1), "{items:#?}");
    // STORY lives in partition 0.
    for path in [
        format!("/v1/workflows/{STORY}"),
        format!("/v1/audit/{STORY}"),
    ] {
        let r = api.get(&path);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert!(r.body.contains("does not run"), "{}", r.body);
    }
}

#[test]
fn workflows_agents_bottlenecks_and_audit_over_the_golden_journal() {
    let dir = golden();
    let api = Api::start(context(dir.path(), None));

    let r = api.get(&format!("/v1/workflows/{STORY}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let wf = r.json();
    assert_eq!(wf["workflow_id"], STORY);
    assert_eq!(wf["name"], "sim-fan_out");
    assert_eq!(wf["status"], "succeeded");
    assert_eq!(wf["partition"], 0);
    assert_eq!(wf["steps"].as_array().unwrap().len(), 3);
    assert_eq!(wf["steps"][1]["attempt"], 2, "retried once: {wf:#}");
    assert!(wf["accepted_at"].as_str().unwrap().ends_with('Z'));
    assert!(wf["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(wf["usage"]["tokens_in"].as_i64().unwrap() > 0);

    // The audit story is the CLI's, byte for byte once parsed (the golden
    // test pins the CLI's output to this file).
    let r = api.get(&format!("/v1/audit/{STORY}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let cli: Value =
        serde_json::from_str(&std::fs::read_to_string(api::fixture().join("audit.json")).unwrap())
            .unwrap();
    assert_eq!(r.json(), cli);

    let r = api.get("/v1/agents");
    assert_eq!(r.status, 200, "{}", r.body);
    let agents = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(agents.len(), 4, "{:#}", r.json());
    let first = agents[0]["agent_id"].as_str().unwrap().to_string();
    let total: u64 = agents
        .iter()
        .map(|a| a["successes"].as_u64().unwrap())
        .sum();
    assert!(total > 0, "{agents:#?}");
    let r = api.get(&format!("/v1/agents/{first}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["agent_id"], first.as_str());
    assert!(agents.iter().any(|a| a["health"] == "lost"), "{agents:#?}");

    let r = api.get("/v1/bottlenecks");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["items"].is_array());

    for path in [
        "/v1/workflows/nope",
        "/v1/agents/nope",
        "/v1/audit/nope",
        "/v1/nothing-here",
    ] {
        let r = api.get(path);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        let code = error_code(&r);
        assert!(code == "not_found" || code == "unknown_endpoint", "{code}");
    }
}

#[test]
fn pages_cover_every_workflow_once_in_order_and_filters_hold() {
    let dir = golden();
    let api = Api::start(context(dir.path(), None));
    let all = api.get("/v1/workflows?limit=1000").json();
    assert_eq!(all["next_cursor"], Value::Null);
    let all: Vec<(u64, String)> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["partition"].as_u64().unwrap(),
                w["workflow_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(all.len(), 60);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "ordered by partition, then id");

    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let path = match &cursor {
            None => "/v1/workflows?limit=7".to_string(),
            Some(c) => format!("/v1/workflows?limit=7&cursor={c}"),
        };
        let r = api.get(&path);
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let items = v["items"].as_array().unwrap();
        assert!(items.len() <= 7);
        paged.extend(items.iter().map(|w| {
            (
                w["partition"].as_u64().unwrap(),
                w["workflow_id"].as_str().unwrap().to_string(),
            )
        }));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(paged, all, "the pages, concatenated, are the whole list");

    let r = api.get("/v1/workflows?status=succeeded&limit=1000");
    assert_eq!(r.status, 200, "{}", r.body);
    let ok = r.json()["items"].as_array().unwrap().clone();
    assert!(!ok.is_empty() && ok.iter().all(|w| w["status"] == "succeeded"));
    let r = api.get("/v1/workflows?status=cancelled");
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 0);
}

#[test]
fn a_page_stops_at_its_scan_budget_and_resumes_exactly_there() {
    let dir = golden();
    // A filter that matches nothing still ends each request after the
    // budget, with a cursor to go on from.
    let first = page(
        dir.path(),
        &[0, 1, 2, 3],
        Cursor::default(),
        100,
        5,
        Some(baton::domain::events::WorkflowStatus::Cancelled),
    )
    .unwrap();
    assert!(first.items.is_empty());
    let next = first.next_cursor.expect("a cursor after 5 entries");
    assert!(Cursor::decode(&next).unwrap().after.is_some());

    let mut seen = BTreeSet::new();
    let mut cursor = Cursor::default();
    let mut requests = 0;
    loop {
        requests += 1;
        let p = page(dir.path(), &[0, 1, 2, 3], cursor, 100, 9, None).unwrap();
        for w in &p.items {
            assert!(
                seen.insert(w.workflow_id.clone()),
                "{} twice",
                w.workflow_id
            );
        }
        match p.next_cursor {
            Some(c) => cursor = Cursor::decode(&c).unwrap(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 60);
    assert!(requests >= 60 / 9, "{requests}");
    // A cursor past the last partition is an empty, final page.
    let end = page(
        dir.path(),
        &[0, 1, 2, 3],
        Cursor::decode("999").unwrap(),
        10,
        10,
        None,
    )
    .unwrap();
    assert!(end.items.is_empty() && end.next_cursor.is_none());
}

#[test]
fn bad_input_is_a_json_400_and_unknown_routes_and_methods_are_json_404_and_405() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(context(dir.path(), None));
    for q in [
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=abc",
        "limit=",
        "status=bogus",
        "status=Succeeded",
        "cursor=zz",
        "cursor=1-a",
        "cursor=",
        "limit=1&limit=2",
    ] {
        let r = api.get(&format!("/v1/workflows?{q}"));
        assert_eq!(r.status, 400, "{q}: {}", r.body);
        assert_eq!(error_code(&r), "invalid_parameter", "{q}");
    }
    let r = api.get("/v1/workflows/%FF%FE");
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(error_code(&r), "invalid_path");

    let r = api.get("/no/such/thing");
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&r), "unknown_endpoint");
    for method in ["POST", "DELETE", "PUT", "OPTIONS"] {
        let r = api::request(api.addr, method, "/v1/workflows");
        assert_eq!(r.status, 405, "{method}: {}", r.body);
        assert_eq!(error_code(&r), "method_not_allowed");
        assert!(
            r.header("allow").is_some_and(|a| a.contains("GET")),
            "{r:?}"
        );
    }

    // An empty data directory: empty answers and 404s, and no store is
    // created by reading.
    let r = api.get("/v1/workflows");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["items"], serde_json::json!([]));
    assert_eq!(api.get("/v1/agents").json()["items"], serde_json::json!([]));
    assert_eq!(api.get("/v1/bottlenecks").status, 200);
    assert_eq!(api.get("/v1/workflows/x").status, 404);
    assert_eq!(api.get("/v1/audit/x").status, 404);
    assert!(!dir.path().join("store").exists(), "a read created a store");
}

#[test]
fn health_readiness_metrics_and_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(context(dir.path(), None));
    let r = api.get("/healthz");
    assert_eq!(
        (r.status, r.json()),
        (200, serde_json::json!({"status": "ok"}))
    );
    let r = api.get("/readyz");
    assert_eq!(r.status, 200, "no engine: ready");
    assert_eq!(r.json()["ready"], true);

    let r = api.get("/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4"));

    let doc = api.get("/openapi.json").json();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/v1/workflows",
        "/v1/workflows/{id}",
        "/v1/agents",
        "/v1/agents/{id}",
        "/v1/bottlenecks",
        "/v1/audit/{correlation_id}",
    ] {
        assert!(paths.contains_key(p), "{p} missing from the document");
    }
    let params = doc["paths"]["/v1/workflows"]["get"]["parameters"].to_string();
    assert!(
        params.contains(&CURSOR_PATTERN.replace('\\', "\\\\")),
        "{params}"
    );
    let errors = doc["paths"]["/v1/workflows"]["get"]["responses"]["400"].to_string();
    assert!(errors.contains("ErrorBody"), "{errors}");
    drop(api);

    // With an engine: not ready until it owns a partition, and then only
    // while every owned partition is recovered and within the lag limit.
    let live = Arc::new(Live::default());
    let api = Api::start(context(dir.path(), Some(live.clone())));
    let r = api.get("/readyz");
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["partitions"], serde_json::json!([]));
    let p = live.register(2);
    assert_eq!(api.get("/readyz").status, 503, "recovering");
    p.recovered.store(true, Ordering::Relaxed);
    let r = api.get("/readyz");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["partitions"],
        serde_json::json!([{"partition": 2, "recovered": true, "lag": 0, "ready": true}])
    );
    p.ingress_end.store(500, Ordering::Relaxed);
    let r = api.get("/readyz");
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["partitions"][0]["lag"], 500);
}

/// `baton demo` serving the API, killed when dropped (also when the test
/// fails), its output kept in a file for the failure message.
struct Demo {
    child: Child,
    log: PathBuf,
}

impl Demo {
    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ids in `path`'s `items[*].<field>`, retried until there are some.
fn ids(addr: SocketAddr, path: &str, field: &str, demo: &mut Demo) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = api::request(addr, "GET", path);
        if r.status == 200 {
            let found: Vec<String> = r.json()["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| w[field].as_str().map(str::to_string))
                .collect();
            if !found.is_empty() {
                return found;
            }
        }
        let exited = demo.child.try_wait().ok().flatten();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "no {field} at {path} (demo exit: {exited:?}):\n{}",
            demo.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn schemathesis_finds_nothing_wrong_with_a_running_demo() {
    let schemathesis = api::schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let log = dir.path().join("demo.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_baton"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        // 300 workflows/s for up to 200 s: the demo ends (and its API
        // with it) when its workflows are done, so it must outlive the run
        // (about 15 s); it is killed when the test ends.
        .args(["demo", "--workflows", "60000", "--rate", "300"])
        .args(["--http-addr", &addr.to_string()])
        .env_remove("BATON_BROKERS")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut demo = Demo { child, log };

    // Wait for the API, then for data to test with: real ids let
    // schemathesis reach past the 404s (half its ids come from these).
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(addr).is_err() {
        let exited = demo.child.try_wait().ok().flatten();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "the demo's API did not come up (exit: {exited:?}):\n{}",
            demo.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(api::request(addr, "GET", "/healthz").status, 200);
    let workflows = ids(addr, "/v1/workflows?limit=20", "workflow_id", &mut demo);
    let agents = ids(addr, "/v1/agents", "agent_id", &mut demo);
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(&config, schemathesis_config(&workflows, &agents)).unwrap();

    let report = dir.path().join("schemathesis.log");
    let out = std::fs::File::create(&report).unwrap();
    let mut run = Command::new(&schemathesis)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("http://{addr}/openapi.json"))
        // Every check; 25 cases per operation and phase; no request may
        // take 10 s. (Its `--max-time` would repeat fuzzing until spent.)
        .args(["--checks", "all", "--max-examples", "25"])
        .args(["--request-timeout", "10"])
        // Its example database goes into the working directory.
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", schemathesis.display()));
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = run.kill();
            let _ = run.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(&report).unwrap_or_default();
    println!("{output}");
    assert!(
        status.is_some_and(|s| s.success()),
        "schemathesis failed ({status:?}; None = killed after 300 s):\n{output}\n--- demo output ---\n{}",
        demo.output()
    );
}

/// Binds the id path parameters to dictionaries of real ids, used for
/// half the generated values.
fn schemathesis_config(workflows: &[String], agents: &[String]) -> String {
    let list = |ids: &[String]| Value::from(ids.to_vec()).to_string();
    format!(
        r#"[dictionaries.workflows]
values = {}

[dictionaries.agents]
values = {}

[[operations]]
include-name = "GET /v1/workflows/{{id}}"
parameters = {{ "path.id" = {{ dictionary = "workflows", probability = 0.5 }} }}

[[operations]]
include-name = "GET /v1/audit/{{correlation_id}}"
parameters = {{ "path.correlation_id" = {{ dictionary = "workflows", probability = 0.5 }} }}

[[operations]]
include-name = "GET /v1/agents/{{id}}"
parameters = {{ "path.id" = {{ dictionary = "agents", probability = 0.5 }} }}
"#,
        list(workflows),
        list(agents)
    )
}
