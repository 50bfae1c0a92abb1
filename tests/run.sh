#!/usr/bin/env bash
# The whole test suite, as CI runs it (`.ci/run` calls exactly this).
# Installs what the tests need on a fresh machine (the Rust toolchain's
# rustfmt and clippy components; headless Chromium, which renders the HTML
# report in tests/bottlenecks.rs; the tansu Kafka broker; a Python venv for
# the interop test), starts the broker, then runs the format check,
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

step "Prometheus (promtool, prometheus)"
# tests/docker_files.rs runs promtool on docker/prometheus/ and
# tests/prometheus_scrape.rs scrapes a live `baton demo` with a real
# Prometheus; both fail, never skip, without them. Debian's package has both.
# Its service must not start: during the install a policy-rc.d that answers
# 101 ("forbidden") stops the maintainer scripts from starting it (the
# test starts its own Prometheus on a free loopback port), and on a systemd
# machine the unit is also disabled and stopped.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  POLICY_RC=/usr/sbin/policy-rc.d
  ADDED_POLICY=""
  if [ ! -e "$POLICY_RC" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY_RC" >/dev/null
    $SUDO chmod 755 "$POLICY_RC"
    ADDED_POLICY=1
  fi
  $SUDO apt-get update -qq
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; then
    if [ -n "$ADDED_POLICY" ]; then $SUDO rm -f "$POLICY_RC"; fi
    exit 1
  fi
  if [ -n "$ADDED_POLICY" ]; then $SUDO rm -f "$POLICY_RC"; fi
  if [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi
export BATON_TEST_PROMTOOL="$(command -v promtool)"
export BATON_TEST_PROMETHEUS="$(command -v prometheus)"
prometheus --version 2>&1 | sed -n 1p

step "Kafka test broker (tansu ${TANSU_VERSION:=0.6.0})"
# The Kafka tests (tests/kafka_*.rs) need a broker; they fail, never skip,
# without one. tansu is a Kafka-compatible broker from crates.io: built once
# (about 12 minutes) and cached in ~/.cargo/bin, then started here on a free
# loopback port with in-memory storage and stopped when this script exits.
export PATH="$HOME/.cargo/bin:$PATH"
if ! tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  cargo install tansu --version "$TANSU_VERSION" --features dynostore,libsql --locked
fi
TANSU_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
mkdir -p target
tansu broker --listener-url "tcp://127.0.0.1:$TANSU_PORT" \
  --advertised-listener-url "tcp://127.0.0.1:$TANSU_PORT" \
  --storage-engine memory://tansu/ >target/tansu-ci.log 2>&1 &
TANSU_PID=$!
trap 'kill "$TANSU_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$TANSU_PORT") 2>/dev/null; then break; fi
  kill -0 "$TANSU_PID" 2>/dev/null || { cat target/tansu-ci.log; exit 1; }
  sleep 0.1
done
export BATON_TEST_KAFKA="127.0.0.1:$TANSU_PORT"
export BATON_TEST_TANSU="$(command -v tansu)"
echo "tansu $(tansu --version 2>/dev/null | head -1) listening on $BATON_TEST_KAFKA (log: target/tansu-ci.log)"

step "Python interop environment (confluent-kafka, fastavro, schemathesis)"
# tests/interop/ shows how a non-Rust service talks to Baton, and
# tests/http_api.rs runs schemathesis against the HTTP API; one venv for
# both, cached under target/ between runs.
VENV=target/interop-venv
if ! "$VENV/bin/python" -c 'import confluent_kafka, fastavro, schemathesis' 2>/dev/null; then
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian ships venv (and its pip bootstrap) as a separate package.
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$VENV"
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    -r tests/interop/requirements.txt -r tests/api/requirements.txt
fi
export BATON_TEST_PYTHON="$PWD/$VENV/bin/python"
export BATON_TEST_SCHEMATHESIS="$PWD/$VENV/bin/schemathesis"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test"
cargo test --locked --all-features

step "benches compile"
cargo bench --locked --no-run --quiet

step "all green"
