//! Helpers shared by the integration tests that drive the `baton` binary.

use std::path::Path;
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
