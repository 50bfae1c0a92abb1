//! Operating Baton: the config file and its overrides (`baton config`),
//! mistakes in it as usage errors naming the key, JSON logs, and a graceful
//! stop on SIGTERM (projections checkpointed, exit 0 within a bound).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn baton() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_baton"));
    for (k, _) in std::env::vars() {
        if k.starts_with("BATON_") {
            c.env_remove(k);
        }
    }
    c.env_remove("RUST_LOG");
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

const FILE: &str = r#"
partitions = 8
log = "info"
brokers = "kafka.example:9092"
[kafka]
"sasl.password" = "hunter2"
"security.protocol" = "sasl_ssl"
[engine]
strategy = "weighted"
flush_ms = 250
[http]
addr = "0.0.0.0:9464"
[metrics]
per_agent_labels = true
"#;

#[test]
fn flags_beat_environment_beats_file_beats_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "baton.toml", FILE);
    let o = baton()
        .arg("--config")
        .arg(&cfg)
        .args(["config", "--flush-ms", "100"])
        .env("BATON_PARTITIONS", "3")
        .env("BATON_KAFKA_SOCKET_TIMEOUT_MS", "5000")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    for want in [
        "partitions = 3\n",          // env over file
        "flush_ms = 100\n",          // flag over file
        "strategy = \"weighted\"\n", // file over default
        "batch_size = 4096\n",       // default
        "addr = \"0.0.0.0:9464\"\n", // file
        "per_agent_labels = true\n", // file
        "\"security.protocol\" = \"sasl_ssl\"\n",
        "\"socket.timeout.ms\" = \"5000\"\n", // BATON_KAFKA_*
        "\"sasl.password\" = \"***\"\n",      // secrets never shown
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains("hunter2"));

    // The config file may also come from BATON_CONFIG.
    let o = baton()
        .arg("config")
        .env("BATON_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(text(&o).0.contains("partitions = 8\n"), "{}", text(&o).1);
}

#[test]
fn mistakes_in_the_file_are_usage_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (body, want) in [
        ("partitionz = 4\n", "unknown field `partitionz`"),
        ("[engine]\nstrategy = \"fastest\"\n", "least-connections"),
        ("[http]\naddr = \"localhost:80\"\n", "`http.addr`"),
        ("partitions = 0\n", "`partitions` = 0"),
        (
            "[kafka]\n\"enable.idempotence\" = false\nbrokers = \"x\"\n",
            "cannot be overridden",
        ),
    ] {
        let cfg = write(dir.path(), "bad.toml", body);
        let mut cmd = baton();
        cmd.arg("--config").arg(&cfg).arg("config");
        if body.contains("[kafka]") {
            cmd.args(["--brokers", "127.0.0.1:1"]);
        }
        let o = cmd.output().unwrap();
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{body:?}: {err}");
        assert!(err.contains(want), "{body:?}: `{err}` lacks `{want}`");
    }
    let o = baton()
        .args(["--config", "/nonexistent/baton.toml", "config"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("/nonexistent/baton.toml"));
}

#[test]
fn docker_config_is_valid() {
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/baton.toml");
    let o = baton()
        .arg("--config")
        .arg(&cfg)
        .arg("config")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
}

/// `baton run` on SIGTERM: stops intake, checkpoints, exits 0 promptly;
/// with `--log-format json` every log line is one JSON object.
#[test]
fn sigterm_stops_the_engine_cleanly_with_json_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = baton()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--log", "info", "--log-format", "json", "run", "--no-http"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Ready when the partitions are owned (an info log line).
    while !lines
        .iter()
        .any(|l: &String| l.contains("owning partitions"))
    {
        assert!(
            Instant::now() < deadline,
            "engine never started: {lines:#?}"
        );
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(l);
        }
    }
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let stop_deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > stop_deadline {
            let _ = child.kill();
            panic!("baton run did not stop within 15 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
        lines.push(l);
    }
    assert!(status.success(), "exit {status:?}: {lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("checkpointed")),
        "{lines:#?}"
    );
    let json: Vec<&String> = lines.iter().filter(|l| l.starts_with('{')).collect();
    assert!(!json.is_empty(), "no JSON log lines: {lines:#?}");
    for l in json {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        assert!(
            v.get("level").is_some() && v.get("timestamp").is_some(),
            "{l}"
        );
    }
}

/// The README block between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
fn block<'a>(readme: &'a str, name: &str) -> &'a str {
    let begin = format!("<!-- {name}:begin -->\n");
    let end = format!("<!-- {name}:end -->");
    let i = readme
        .find(&begin)
        .unwrap_or_else(|| panic!("README lacks {begin}"))
        + begin.len();
    let j = readme[i..].find(&end).expect("block end") + i;
    &readme[i..j]
}

/// Compares a generated README block; `BATON_BLESS=1` rewrites it.
fn generated_block(name: &str, want: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let have = block(&readme, name);
    if have == want {
        return;
    }
    if std::env::var_os("BATON_BLESS").is_some() {
        let updated = readme.replacen(
            &format!("<!-- {name}:begin -->\n{have}"),
            &format!("<!-- {name}:begin -->\n{want}"),
            1,
        );
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!("README block `{name}` is out of date (run with BATON_BLESS=1 to rewrite it); expected:\n{want}");
}

#[test]
fn readme_lists_every_metric_and_config_key() {
    generated_block("metrics", &baton::telemetry::names::markdown_table());
    generated_block("config-keys", &baton::config::markdown_table());
}

#[test]
fn readme_lists_exactly_the_endpoints_of_the_openapi_document() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let listed: std::collections::BTreeSet<String> = block(&readme, "endpoints")
        .lines()
        .filter_map(|l| l.split("`GET ").nth(1))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_string)
        .collect();
    let doc: serde_json::Value = serde_json::from_str(baton::api::openapi::document()).unwrap();
    let served: std::collections::BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    assert_eq!(listed, served, "README endpoints vs /openapi.json paths");
}

/// `baton audit --api` asks a running engine (whose stores are locked to
/// other processes) and prints what the local command prints.
#[test]
fn audit_through_the_api_of_a_running_engine_matches_the_local_audit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let o = baton()
        .args([
            "--data-dir",
            data,
            "demo",
            "--workflows",
            "60",
            "--failure-rate",
            "0.3",
        ])
        .args(["--no-http", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);
    let o = baton()
        .args([
            "--data-dir",
            data,
            "tail",
            "--topic",
            "baton.status",
            "--from-beginning",
        ])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let id = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["key"].as_str().map(str::to_string))
        .expect("a workflow id on the status topic");
    let local: Vec<Output> = ["text", "json"]
        .iter()
        .map(|f| {
            baton()
                .args(["--data-dir", data, "audit", &id, "--format", f])
                .output()
                .unwrap()
        })
        .collect();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let mut engine = baton()
        .args(["--data-dir", data, "run", "--http-addr", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Ready: every partition recovered (before that the API answers only
    // for the partitions the engine already runs).
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_status(&addr, "/readyz") != Some(200) {
        assert!(Instant::now() < deadline, "the engine never got ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    // `/readyz` counts the partitions whose loops have registered; the
    // workflow's own partition may register a moment later (a known race on the
    // embedded log, not fixed yet), so wait until it answers too.
    while http_status(&addr, &format!("/v1/workflows/{id}")) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "the workflow's partition never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("http://{addr}");
    let remote: Vec<Output> = ["text", "json"]
        .iter()
        .map(|f| {
            baton()
                .args(["audit", &id, "--format", f, "--api", &url])
                .output()
                .unwrap()
        })
        .collect();
    let missing = baton()
        .args(["audit", "no-such-workflow", "--api", &url])
        .output()
        .unwrap();
    let inspect_remote = baton()
        .args(["inspect", "workflow", &id, "--api", &url])
        .output()
        .unwrap();
    let agents_remote = baton()
        .args(["inspect", "agents", "--api", &url, "--json"])
        .output()
        .unwrap();
    let _ = engine.kill();
    let _ = engine.wait();
    for (l, r) in local.iter().zip(&remote) {
        assert!(
            l.status.success() && r.status.success(),
            "{:?} {:?}",
            text(l),
            text(r)
        );
        assert_eq!(text(l).0.trim_end(), text(r).0.trim_end());
    }
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing).1.contains("nothing in the journal"));
    let agents: serde_json::Value = serde_json::from_str(&text(&agents_remote).0).unwrap();
    assert_eq!(agents["items"].as_array().map(Vec::len), Some(20));
    let inspect_local = baton()
        .args(["--data-dir", data, "inspect", "workflow", &id])
        .output()
        .unwrap();
    assert!(
        inspect_remote.status.success(),
        "{:?}",
        text(&inspect_remote)
    );
    assert_eq!(text(&inspect_local).0, text(&inspect_remote).0);
}

/// The status code of `GET path` (HTTP/1.0), if the server answers.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(c, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut head = String::new();
    c.read_to_string(&mut head).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}
