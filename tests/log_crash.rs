//! SIGKILL crash test of the embedded log (harness = false: it has its own
//! `main` because it re-executes itself as the writer it kills).
//!
//! `log_crash child <dir> <fsync>` opens the log and appends batches of
//! 1–50 records whose values are consecutive u64 sequence numbers, printing
//! each acknowledged batch's last number on its own line, and nothing else.
//! It resumes from the log's last number, so rounds accumulate.
//!
//! The parent runs rounds of: spawn the child, let it run a random 20–300 ms,
//! SIGKILL it (`Child::kill`), reopen the log as a writer (recovering any
//! torn tail) and check that the partition holds exactly the numbers
//! 0..n at offsets 0..n — no gaps, no duplicates — and that every number
//! the child acknowledged is among them.

use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use baton::log::embedded::{EmbeddedConfig, EmbeddedLog};
use baton::log::{EventLog, ProducerRecord, TopicSpec};
use bytes::Bytes;

const TEST_NAME: &str = "sigkill_crash_recovery";
const TOPIC: &str = "crash";
const ROUNDS: usize = 12;
const TIME_BUDGET: Duration = Duration::from_secs(60);

fn config(dir: &Path, fsync: &str) -> Result<EmbeddedConfig, String> {
    let mut cfg = EmbeddedConfig::new(dir);
    cfg.fsync = fsync.parse().map_err(|e| format!("{e}"))?;
    // Small segments so kills also land around segment rolls.
    cfg.segment_bytes = 64 * 1024;
    Ok(cfg)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

fn seq_of(value: &[u8]) -> Result<u64, String> {
    let bytes: [u8; 8] = value
        .try_into()
        .map_err(|_| format!("record value of {} bytes is not a u64", value.len()))?;
    Ok(u64::from_le_bytes(bytes))
}

/// The child: append forever, print each acknowledged last sequence number.
fn child(dir: &Path, fsync: &str) -> Result<(), String> {
    let cfg = config(dir, fsync)?;
    runtime()?.block_on(async {
        let log = EmbeddedLog::open(cfg).map_err(|e| e.to_string())?;
        log.create_topic(&TopicSpec::new(TOPIC, 1))
            .await
            .map_err(|e| e.to_string())?;
        let hwm = log
            .high_watermark(TOPIC, 0)
            .await
            .map_err(|e| e.to_string())?;
        let mut next = match hwm {
            0 => 0,
            _ => {
                let last = log
                    .read(TOPIC, 0, hwm - 1, 1)
                    .await
                    .map_err(|e| e.to_string())?;
                let last = last.first().ok_or("no record below the high watermark")?;
                seq_of(&last.value)? + 1
            }
        };
        let mut out = std::io::stdout().lock();
        loop {
            let n = fastrand::u64(1..=50);
            let batch = (next..next + n)
                .map(|s| ProducerRecord::new(None, Bytes::copy_from_slice(&s.to_le_bytes())))
                .collect();
            log.append(TOPIC, 0, batch)
                .await
                .map_err(|e| e.to_string())?;
            next += n;
            writeln!(out, "{}", next - 1)
                .and_then(|()| out.flush())
                .map_err(|e| format!("stdout: {e}"))?;
        }
    })
}

/// Reopens the log and checks it holds exactly 0..n at offsets 0..n;
/// returns n.
fn verify(dir: &Path) -> Result<u64, String> {
    runtime()?.block_on(async {
        let log = EmbeddedLog::open(config(dir, "always")?).map_err(|e| format!("reopen: {e}"))?;
        let topics = log.list_topics().await.map_err(|e| e.to_string())?;
        if topics.is_empty() {
            return Ok(0); // killed before it created the topic
        }
        let hwm = log
            .high_watermark(TOPIC, 0)
            .await
            .map_err(|e| e.to_string())?;
        let mut n = 0u64;
        while n < hwm {
            let batch = log
                .read(TOPIC, 0, n, 10_000)
                .await
                .map_err(|e| format!("read from {n}: {e}"))?;
            if batch.is_empty() {
                return Err(format!(
                    "read from {n} returned nothing below the high watermark {hwm}"
                ));
            }
            for r in batch {
                let seq = seq_of(&r.value)?;
                if r.offset != n || seq != n {
                    return Err(format!(
                        "expected sequence {n} at offset {n}, found sequence {seq} at offset {}",
                        r.offset
                    ));
                }
                n += 1;
            }
        }
        Ok(n)
    })
}

fn parent() -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let started = Instant::now();
    let (mut rounds, mut acked_total, mut stored) = (0usize, 0usize, 0u64);
    while rounds < ROUNDS && started.elapsed() < TIME_BUDGET {
        let fsync = if rounds % 3 == 2 {
            "interval:50"
        } else {
            "always"
        };
        let mut child = Command::new(&exe)
            .arg("child")
            .arg(dir.path())
            .arg(fsync)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn child: {e}"))?;
        // Drain stdout while the child runs: a full pipe would block it in
        // `writeln!` instead of in the middle of appending.
        let mut pipe = child.stdout.take().ok_or("child has no stdout")?;
        let drain = std::thread::spawn(move || {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut pipe, &mut buf).map(|_| buf)
        });
        std::thread::sleep(Duration::from_millis(fastrand::u64(20..=300)));
        let early = child
            .try_wait()
            .map_err(|e| format!("wait for child: {e}"))?;
        if early.is_none() {
            child.kill().map_err(|e| format!("kill child: {e}"))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|e| format!("collect child output: {e}"))?;
        if let Some(status) = early {
            return Err(format!(
                "round {rounds}: the child exited by itself ({status}): {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let stdout = drain
            .join()
            .map_err(|_| "the stdout reader panicked".to_string())?
            .map_err(|e| format!("read child stdout: {e}"))?;
        let stdout = String::from_utf8_lossy(&stdout);
        // A line cut short by the kill was never fully acknowledged.
        let complete = stdout.rsplit_once('\n').map_or("", |(done, _)| done);
        let acked: Vec<u64> = complete
            .lines()
            .map(|l| {
                l.parse()
                    .map_err(|_| format!("round {rounds}: unexpected child output line {l:?}"))
            })
            .collect::<Result<_, _>>()?;
        let n = verify(dir.path()).map_err(|e| format!("round {rounds} ({fsync}): {e}"))?;
        if n < stored {
            return Err(format!(
                "round {rounds} ({fsync}): the log shrank from {stored} to {n} records"
            ));
        }
        if let Some(&max) = acked.iter().max() {
            if max >= n {
                return Err(format!(
                    "round {rounds} ({fsync}): sequence {max} was acknowledged but the log holds only 0..{n}"
                ));
            }
        }
        acked_total += acked.len();
        stored = n;
        rounds += 1;
    }
    Ok(format!(
        "{TEST_NAME}: ok: {rounds} SIGKILL rounds, {acked_total} acknowledged batches, {stored} records intact in {:.1}s",
        started.elapsed().as_secs_f64()
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        let (Some(dir), Some(fsync)) = (args.get(1), args.get(2)) else {
            eprintln!("usage: log_crash child <dir> <fsync>");
            return ExitCode::from(2);
        };
        // `child` only returns on failure: it appends until it is killed.
        if let Err(e) = child(Path::new(dir), fsync) {
            eprintln!("child failed: {e}");
        }
        return ExitCode::FAILURE;
    }
    // Behave enough like libtest that `cargo test <filter>` and `--list` work.
    if args.iter().any(|a| a == "--list") {
        println!("{TEST_NAME}: test");
        return ExitCode::SUCCESS;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| TEST_NAME.contains(f.as_str())) {
        return ExitCode::SUCCESS;
    }
    match parent() {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{TEST_NAME}: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
