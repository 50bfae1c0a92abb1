//! `baton bench --only kafka` on the test broker: a small run yields every
//! figure, with rates counted from each phase's first record and the
//! startup reported apart (the figures the README quotes come from it).

mod kafka_common;

use std::process::Command;

use kafka_common::brokers;
use serde_json::Value;

#[test]
fn the_kafka_bench_reports_steady_rates_and_startup_apart() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["--brokers", &brokers(), "--data-dir"])
        .arg(dir.path())
        .args([
            "bench",
            "--only",
            "kafka",
            "--kafka-workflows",
            "2000",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // 8 agents, each registered once, and the submissions.
    assert_eq!(v["ingress_records"], 2008, "{v}");
    // 3 journal facts, 1 assignment and 1 status per two-step submission.
    let per_input = v["engine_records_written_per_input"].as_f64().unwrap();
    assert!((4.9..5.1).contains(&per_input), "{v}");
    for k in [
        "produce_records_per_s",
        "raw_consume_records_per_s",
        "engine_inputs_per_s",
        "engine_vs_raw_consume",
        "broker_bound_inputs_per_s",
        "raw_consume_startup_s",
        "engine_startup_s",
        "raw_consume_with_startup_records_per_s",
        "engine_with_startup_inputs_per_s",
    ] {
        let x = v[k].as_f64().unwrap_or(-1.0);
        assert!(x.is_finite() && x >= 0.0, "{k}: {v}");
    }
}
