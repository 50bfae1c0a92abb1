//! Bottleneck detection end to end: every demo scenario produces its
//! expected finding within two windows and resolves it once the cause is
//! removed; replay reproduces the findings exactly; the report renders in
//! every format (the HTML one in headless Chromium); estimates come from
//! the history the demo left.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;

use common::baton;

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = baton(dir, args);
    assert!(
        o.status.success(),
        "baton {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs one scenario with a 2 s window (cause 6 s, relief 8 s) and returns its summary's `scenario`.
fn scenario(dir: &Path, name: &str) -> Value {
    let out = ok(
        dir,
        &[
            "demo",
            "--scenario",
            name,
            "--bottleneck-window",
            "2s",
            "--duration",
            "60",
            "--json",
        ],
    );
    let summary: Value = serde_json::from_str(&out).unwrap();
    summary["scenario"].clone()
}

fn check(s: &Value) {
    let name = s["name"].as_str().unwrap();
    assert_eq!(
        s["expected_detected_within_two_windows"], true,
        "{name}: expected finding not detected in time: {s:#}"
    );
    assert_eq!(
        s["expected_resolved"], true,
        "{name}: expected finding not resolved: {s:#}"
    );
}

#[test]
fn every_scenario_detects_its_bottleneck_and_resolves_it() {
    for name in ["slow-agent", "failing-capability", "starved"] {
        let dir = tempfile::tempdir().unwrap();
        check(&scenario(dir.path(), name));
    }
}

/// The saturation run doubles as the fixture for replay, report and estimate.
#[test]
fn saturation_replays_reports_and_estimates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = scenario(d, "saturation");
    check(&s);

    // Replay reproduces the projection, findings and severities included
    // (the digest covers the bottleneck projection).
    let verify: Value = serde_json::from_str(&ok(d, &["replay", "--verify", "--json"])).unwrap();
    assert_eq!(verify["verified"], true, "{verify:#}");

    let report: Value =
        serde_json::from_str(&ok(d, &["report", "--format", "json", "--window", "all"])).unwrap();
    assert_eq!(report["format"], "baton.report/v1");
    assert!(report["summary"]["attempts"].as_u64().unwrap() > 100);
    let resolved = report["resolved"].as_array().unwrap();
    let sat: Vec<&Value> = resolved
        .iter()
        .filter(|r| r["key"] == "saturation/pool/default")
        .collect();
    assert!(!sat.is_empty(), "{report:#}");
    // The peaks in the report are those of the journal's facts.
    let journal = ok(d, &["tail", "--topic", "baton.alerts", "--from-beginning"]);
    let peaks: Vec<i64> = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|r| r["event"]["payload"]["BottleneckResolved"]["peak_severity"].as_i64())
        .collect();
    for r in &sat {
        assert!(peaks.contains(&r["peak_severity"].as_i64().unwrap()));
    }

    let text = ok(d, &["report"]);
    assert!(
        text.contains("Baton fleet report") && text.contains("Pools"),
        "{text}"
    );
    let csv = ok(d, &["report", "--format", "csv"]);
    let mut lines = csv.lines();
    let columns = lines.next().unwrap().split(',').count();
    assert_eq!(columns, 24);
    assert!(csv.lines().any(|l| l.starts_with("pool,default,")));
    let findings = ok(d, &["inspect", "bottlenecks", "--json"]);
    assert!(serde_json::from_str::<Value>(&findings).unwrap().is_array());
    let bad = baton(d, &["report", "--window", "7m"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a window the projection does not keep"
    );

    let html = d.join("report.html");
    ok(
        d,
        &[
            "report",
            "--format",
            "html",
            "--output",
            html.to_str().unwrap(),
        ],
    );
    rendered_in_chromium(&html);

    let wf = d.join("wf.json");
    std::fs::write(
        &wf,
        r#"{"name":"review","steps":[
            {"id":"fetch","kind":"git","capabilities":["git"]},
            {"id":"review","kind":"code-review","capabilities":["code-review"],"depends_on":["fetch"]},
            {"id":"summary","kind":"llm","capabilities":["llm"],"depends_on":["fetch"]}
        ]}"#,
    )
    .unwrap();
    let e: Value =
        serde_json::from_str(&ok(d, &["estimate", wf.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(e["format"], "baton.estimate/v1");
    assert!(e["steps"][0]["samples"].as_u64().unwrap() > 10, "{e:#}");
    assert_eq!(e["critical_path"][0], "fetch");
    assert!(e["duration_mean_s"].as_f64().unwrap() > 0.0);
}

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in ["/usr/bin", "/usr/local/bin", "/snap/bin"] {
            let p = Path::new(dir).join(name);
            if p.exists() {
                return p;
            }
        }
    }
    panic!(
        "headless Chromium is needed to check the HTML report: install it \
         (`apt-get install chromium`; tests/run.sh does) and run again"
    );
}

/// Loads the page in headless Chromium and checks the DOM it built.
fn rendered_in_chromium(html: &Path) {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--dump-dom",
        ])
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "<table id=\"summary\"",
        "<table id=\"pools\"",
        "<td>default</td>",
        "<svg",
        "Wait and run time per pool",
        "saturation",
    ] {
        assert!(dom.contains(needle), "rendered page lacks {needle}");
    }
}
