//! A real scrape: `baton demo` (engine, simulated fleet and load on the
//! embedded log) serves /metrics on a loopback port, a real Prometheus
//! scrapes it every second, and the test asks Prometheus's query API until
//! journal throughput shows a non-zero rate and the key series exist. Then
//! every expression of the Grafana dashboard and of the alert rules must
//! evaluate on that Prometheus (valid PromQL against real data).
//!
//! Prometheus comes from `BATON_TEST_PROMETHEUS` or PATH; without it the
//! test fails with how to install it (tests/run.sh does). Both processes
//! bind 127.0.0.1 only, run under Drop guards that kill them (also when an
//! assertion fails, then their logs are printed), and every wait is
//! bounded.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long Prometheus may take to show the first non-zero journal rate.
const SCRAPE_BOUND: Duration = Duration::from_secs(60);

/// Series that must exist once the demo has run a few seconds.
const KEY_SERIES: &[&str] = &[
    "baton_journal_events_total",
    "baton_ingress_events_total",
    "baton_decision_latency_seconds_bucket",
    "baton_workflows",
    "baton_agents",
    "baton_consumer_lag_records",
    "baton_queue_depth_steps",
    "baton_pool_capacity_steps",
    "baton_pool_in_flight_steps",
    "baton_partitions_owned",
    "baton_build_info",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
];

/// A child process killed (and reaped) on drop; its output goes to a log
/// file that is printed when the test is failing.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc { name, child, log }
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early with {status}", self.name);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!(
                "\n----- last lines of {} ({}) -----",
                self.name,
                self.log.display()
            );
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free loopback port")
}

/// `prometheus` from `BATON_TEST_PROMETHEUS` or PATH; fails with a hint.
fn prometheus_binary() -> PathBuf {
    let found = match std::env::var_os("BATON_TEST_PROMETHEUS") {
        Some(p) => Some(PathBuf::from(p)),
        None => std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("prometheus"))
                .find(|p| p.is_file())
        }),
    };
    match found {
        Some(p) if p.is_file() => p,
        _ => panic!(
            "prometheus not found (set BATON_TEST_PROMETHEUS or put it on PATH). Install it with \
             `apt-get install --no-install-recommends prometheus` (Debian/Ubuntu; tests/run.sh does \
             this and keeps its service stopped) or from a Prometheus release archive"
        ),
    }
}

/// Percent-encodes a query parameter value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// HTTP/1.0 GET on 127.0.0.1:`port`: (status, body). Bounded by timeouts.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let addr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// Runs an instant query; `Err` holds Prometheus's error (or a transport
/// error), `Ok` the result vector.
fn query(port: u16, promql: &str) -> Result<Vec<Value>, String> {
    let (status, body) = http_get(port, &format!("/api/v1/query?query={}", encode(promql)))
        .map_err(|e| format!("query transport: {e}"))?;
    let v: Value = serde_json::from_str(&body)
        .map_err(|e| format!("HTTP {status}, not JSON ({e}): {body}"))?;
    if v["status"] != "success" {
        return Err(format!("HTTP {status}: {} {}", v["errorType"], v["error"]));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

fn write_prometheus_config(dir: &Path, baton_port: u16) -> PathBuf {
    let path = dir.join("prometheus.yml");
    std::fs::write(
        &path,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: baton\n    scrape_interval: 1s\n    scrape_timeout: 900ms\n\
             \x20   static_configs:\n      - targets: [\"127.0.0.1:{baton_port}\"]\n"
        ),
    )
    .unwrap();
    path
}

/// Every `expr` in the dashboard JSON and the alert rules.
fn repo_expressions() -> Vec<(String, String)> {
    let docker = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker");
    let mut out = Vec::new();
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(docker.join("grafana/dashboards/baton.json")).unwrap(),
    )
    .unwrap();
    let mut panels: Vec<&Value> = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        panels.push(p);
        panels.extend(p["panels"].as_array().into_iter().flatten());
    }
    for p in panels {
        for t in p["targets"].as_array().into_iter().flatten() {
            // Grafana's $__rate_interval is at least 4 scrape intervals.
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "20s");
            out.push((format!("panel `{}`", p["title"].as_str().unwrap()), expr));
        }
    }
    let rules: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(docker.join("prometheus/alerts.yml")).unwrap(),
    )
    .unwrap();
    for g in rules["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let name = r["alert"].as_str().or(r["record"].as_str()).unwrap();
            out.push((format!("rule {name}"), r["expr"].as_str().unwrap().into()));
        }
    }
    out
}

#[test]
fn prometheus_scrapes_a_running_demo() {
    let prometheus_bin = prometheus_binary();
    let tmp = tempfile::tempdir().unwrap();
    let (baton_port, prom_port) = (free_port(), free_port());

    let mut demo = Proc::spawn(
        "baton demo",
        Command::new(env!("CARGO_BIN_EXE_baton"))
            .arg("--data-dir")
            .arg(tmp.path().join("data"))
            .args([
                "demo",
                "--workflows",
                "20000",
                "--rate",
                "400",
                "--duration",
                "120",
            ])
            .args(["--http-addr", &format!("127.0.0.1:{baton_port}")])
            .env_remove("BATON_BROKERS")
            .env_remove("BATON_CONFIG")
            .env_remove("BATON_HTTP_ADDR")
            .env("BATON_LOG", "info"),
        tmp.path().join("demo.log"),
    );
    let config = write_prometheus_config(tmp.path(), baton_port);
    let mut prom = Proc::spawn(
        "prometheus",
        Command::new(&prometheus_bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--log.level=info"),
        tmp.path().join("prometheus.log"),
    );

    // Baton's own /metrics answers first (bounded).
    let started = Instant::now();
    loop {
        demo.assert_running();
        if let Ok((200, body)) = http_get(baton_port, "/metrics") {
            if body.contains("baton_build_info") {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "baton never served /metrics on 127.0.0.1:{baton_port}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Then Prometheus sees a non-zero journal rate and the key series.
    let mut last: String;
    let mut missing: Vec<&str> = KEY_SERIES.to_vec();
    loop {
        demo.assert_running();
        prom.assert_running();
        let rate = query(prom_port, "sum(rate(baton_journal_events_total[10s])) > 0");
        missing.retain(
            |name| !matches!(query(prom_port, &format!("count({name})")), Ok(r) if !r.is_empty()),
        );
        match rate {
            Ok(r) if !r.is_empty() && missing.is_empty() => {
                println!("journal rate: {}", r[0]["value"][1]);
                break;
            }
            Ok(r) => last = format!("rate result {r:?}; series not seen yet: {missing:?}"),
            Err(e) => last = e,
        }
        assert!(
            started.elapsed() < SCRAPE_BOUND,
            "within {SCRAPE_BOUND:?} Prometheus did not see a journal rate > 0 and every key series: {last}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let up = query(prom_port, r#"up{job="baton"}"#).unwrap();
    assert_eq!(up.len(), 1, "one baton target: {up:?}");
    assert_eq!(up[0]["value"][1], "1", "baton target up: {up:?}");

    // Which of Baton's metrics Prometheus has (informational: some only
    // appear after their event, e.g. dead letters or lost agents).
    let present = query(
        prom_port,
        r#"group by (__name__) ({__name__=~"baton_.*|process_.*"})"#,
    )
    .unwrap();
    let mut names: Vec<&str> = present
        .iter()
        .filter_map(|s| s["metric"]["__name__"].as_str())
        .collect();
    names.sort_unstable();
    println!("series names scraped: {names:?}");
    let absent: Vec<&str> = baton::telemetry::names::ALL
        .iter()
        .map(|m| m.name)
        .filter(|n| {
            !["", "_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| names.contains(&format!("{n}{suffix}").as_str()))
        })
        .collect();
    println!("defined but not (yet) exported in this run: {absent:?}");

    // Every dashboard and alert expression is valid PromQL on real data.
    let mut errors = Vec::new();
    let mut empty = Vec::new();
    for (what, expr) in repo_expressions() {
        match query(prom_port, &expr) {
            Ok(r) if r.is_empty() => empty.push(what),
            Ok(_) => {}
            Err(e) => errors.push(format!("{what}: `{expr}`: {e}")),
        }
    }
    println!("expressions with no data in this run (fine for quiet alerts): {empty:?}");
    assert!(
        errors.is_empty(),
        "Prometheus rejects:\n{}",
        errors.join("\n")
    );
}
