#!/usr/bin/env bash
# The whole test suite, as CI runs it (`.ci/run` calls exactly this).
# Installs what the tests need on a fresh machine (the Rust toolchain's
# rustfmt and clippy components; headless Chromium, which renders the HTML
# report in tests/bottlenecks.rs), then runs the format check,
# clippy with warnings as errors, every test, and compiles the benches.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

step "headless Chromium"
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
chromium --version

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test"
cargo test --locked --all-features

step "benches compile"
cargo bench --locked --no-run --quiet

step "all green"
