//! The golden journal: a small journal (60 workflows with failures, hung
//! steps, timeouts, retries and a lost agent) made by an earlier build and
//! committed under `tests/fixtures/golden-journal/`. Today's code must
//! replay it to the same projection digest and tell the same audit story.
//!
//! A failure here means a change altered what history folds into. If that
//! is intended (a projection changed shape or meaning), bump
//! `store::FORMAT_VERSION` and re-bless with
//! `BATON_BLESS=1 cargo test --test golden`, and say so in the commit.

mod common;

use std::path::Path;
use std::process::Command;

use common::{golden_fixture as fixture, golden_log_copy as scratch};
use serde_json::Value;

/// A workflow of the fixture whose step timed out, was retried on an agent
/// that was then lost, and succeeded on a third attempt's agent.
const STORY: &str = "wf-1795337847881-29";

fn baton(dir: &Path, args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_baton"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("BATON_BROKERS")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "baton {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn blessing() -> bool {
    std::env::var_os("BATON_BLESS").is_some()
}

fn check(name: &str, actual: &str) {
    let path = fixture().join(name);
    if blessing() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        actual, expected,
        "{name} changed: history folds differently now (see this file's header)"
    );
}

#[test]
fn the_golden_journal_replays_to_the_same_digest() {
    let dir = scratch();
    let out: Value = serde_json::from_str(&baton(dir.path(), &["replay", "--json"])).unwrap();
    assert_eq!(out["events"], 1095);
    check("DIGEST", &format!("{}\n", out["digest"].as_str().unwrap()));
}

#[test]
fn the_golden_workflow_tells_the_same_story() {
    let dir = scratch();
    let json = baton(dir.path(), &["audit", STORY, "--format", "json"]);
    check("audit.json", &json);
    let a: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(a["format"], "baton.audit/v1");
    assert_eq!(a["outcome"]["status"], "succeeded");
    assert_eq!(a["retries"][0]["reason"], "timed out after 200 ms");
    assert_eq!(a["handoffs"].as_array().unwrap().len(), 1);
    let text = baton(dir.path(), &["audit", STORY]);
    assert!(text.contains("Timer step timeout fired"), "{text}");
    assert!(
        text.contains("the agent was lost, its step requeued"),
        "{text}"
    );
}
