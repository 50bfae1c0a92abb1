//! Interop: a Python service (confluent-kafka + fastavro,
//! `tests/interop/baton_client.py`) submits workflows and acts as an agent
//! with Avro single-object encoded events; a `baton run` engine processes
//! them and the Python consumer sees every workflow succeed on the status
//! topic. Needs `BATON_TEST_PYTHON` (a Python with both packages; the test
//! command builds a venv) and the Kafka broker of the other Kafka tests.

mod kafka_common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kafka_common::{brokers, unique};

fn python() -> String {
    match std::env::var("BATON_TEST_PYTHON") {
        Ok(p) if !p.trim().is_empty() => p,
        _ => panic!(
            "BATON_TEST_PYTHON is not set: run `tests/run.sh`, or make a venv with \
             `python3 -m venv v && v/bin/pip install -r tests/interop/requirements.txt` \
             and set BATON_TEST_PYTHON=v/bin/python"
        ),
    }
}

#[test]
fn a_python_service_submits_works_and_watches_through_kafka() {
    let python = python();
    let brokers = brokers();
    let prefix = format!("{}.", unique("py"));
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("envelope.avsc");
    let bundle = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["schemas", "--bundle"])
        .output()
        .unwrap();
    assert!(bundle.status.success());
    std::fs::write(&schema, &bundle.stdout).unwrap();

    let mut engine = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["--brokers", &brokers, "--topic-prefix", &prefix])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--partitions", "3", "run", "--no-http"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // The engine creates the topics; the client needs them to exist.
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        let out = Command::new(&python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/interop/baton_client.py"
            ))
            .args(["--brokers", &brokers, "--topic-prefix", &prefix])
            .arg("--schema")
            .arg(&schema)
            .args(["--workflows", "5", "--timeout", "60"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.contains("does not exist") || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = engine.kill();
    let _ = engine.wait();
    let stdout = String::from_utf8_lossy(&client.stdout);
    assert!(
        client.status.success(),
        "python client: {stdout}{}",
        String::from_utf8_lossy(&client.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["ok"], true, "{summary}");
    let workflows = summary["workflows"].as_object().unwrap();
    assert_eq!(workflows.len(), 5, "{summary}");
    assert!(workflows.values().all(|s| s == "SUCCEEDED"), "{summary}");
    assert_eq!(
        summary["steps_run"], 10,
        "two steps per workflow: {summary}"
    );
}
