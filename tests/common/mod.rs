//! Helpers shared by the integration tests that drive the `baton` binary.
// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `baton --data-dir <dir> <args…>` (never against a Kafka broker
/// from the environment) and returns its output.
pub fn baton(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("BATON_BROKERS")
        .output()
        .unwrap()
}

/// The golden journal committed under `tests/fixtures/`.
pub fn golden_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-journal")
}

/// A scratch data directory holding a copy of the golden fixture's log
/// (commands create stores beside it; the fixture stays untouched).
pub fn golden_log_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&golden_fixture().join("log"), &dir.path().join("log"));
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
