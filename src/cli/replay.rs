//! `baton replay`: fold the journal into a fresh projection store, with
//! progress, and optionally verify it against the engine's own store.
//!
//! `--verify` replays each partition up to the journal offset the live
//! store's checkpoint names, then compares the two stores' digests; on a
//! difference it prints the first differing key with both values and exits
//! with code 1. The engine must not be running on the data directory (the
//! embedded stores are single-process).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use super::backend::{self, Access};
use super::GlobalArgs;
use crate::codec::Codec;
use crate::domain::engine::EngineConfig;
use crate::engine::replay::{replay_partition, JournalSource, PartitionReplay};
use crate::store::ProjectionStore;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Only this partition (default: all).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Data directory to build the replayed store in (default: a temporary
    /// directory, removed afterwards). Must not hold a store already.
    #[arg(long)]
    pub into: Option<PathBuf>,
    /// Stop before this journal offset (in every selected partition).
    #[arg(long)]
    pub until: Option<u64>,
    /// Compare with the engine's store at the journal offset it reflects;
    /// exit 1 on the first difference.
    #[arg(long)]
    pub verify: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(global: &GlobalArgs, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    if args.verify && args.until.is_some() {
        anyhow::bail!(super::UsageError(
            "--verify replays to the live store's checkpoint; it cannot be combined with --until"
                .into()
        ));
    }
    let log = backend::open(global, Access::Read)?;
    let journal = global.topics().journal();
    let partitions: Vec<u32> = match args.partition {
        Some(p) => vec![p],
        None => (0..log.partition_count(&journal).await?).collect(),
    };
    let (into, temporary) = match &args.into {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!(
                "baton-replay-{}-{}",
                std::process::id(),
                chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
            )),
            true,
        ),
    };
    if into.join("store").exists() {
        anyhow::bail!(super::UsageError(format!(
            "{} already holds a store; replay builds a fresh one",
            into.display()
        )));
    }
    let codec = Codec::builtin()?;
    let mut total = 0;
    for &p in &partitions {
        total += log.high_watermark(&journal, p).await?;
    }
    let progress = Arc::new(AtomicU64::new(0));
    let reporter = spawn_progress(progress.clone(), total);
    let started = Instant::now();
    let mut done: Vec<(PartitionReplay, String, Option<Difference>)> = Vec::new();
    for &p in &partitions {
        let until = if args.verify {
            let live = ProjectionStore::open(&global.data_dir, p)?;
            Some(live.checkpoint()?.map_or(0, |c| c.journal_next))
        } else {
            args.until
        };
        let store = ProjectionStore::open(&into, p)?;
        let source = JournalSource {
            log: log.as_ref(),
            codec: &codec,
            topic: &journal,
        };
        let r = replay_partition(
            &source,
            p,
            until,
            &store,
            EngineConfig::default(),
            &progress,
        )
        .await?;
        let digest = store.digest()?;
        let diff = if args.verify {
            let live = ProjectionStore::open(&global.data_dir, p)?;
            first_difference(&live, &store)?
        } else {
            None
        };
        done.push((r, digest, diff));
    }
    reporter.abort();
    let elapsed = started.elapsed().as_secs_f64();
    let events: u64 = done.iter().map(|(r, _, _)| r.events).sum();
    let digest = combined_digest(done.iter().map(|(_, d, _)| d.as_str()));
    let verified = args.verify && done.iter().all(|(_, _, d)| d.is_none());
    if args.json {
        let parts: Vec<_> = done
            .iter()
            .map(|(r, d, diff)| {
                json!({"partition": r.partition, "events": r.events,
                       "journal_next": r.journal_next, "digest": d,
                       "difference": diff.as_ref().map(|x| x.to_string())})
            })
            .collect();
        println!(
            "{}",
            json!({"events": events, "elapsed_s": elapsed,
                   "events_per_s": events as f64 / elapsed.max(1e-9),
                   "digest": digest, "verified": args.verify.then_some(verified),
                   "partitions": parts})
        );
    } else {
        eprintln!(
            "replayed {events} journal events in {elapsed:.2} s ({:.0} events/s) into {}",
            events as f64 / elapsed.max(1e-9),
            if temporary {
                "a temporary store".to_string()
            } else {
                into.display().to_string()
            }
        );
        for (r, d, diff) in &done {
            println!(
                "partition {}: {} events, journal offset {}, digest {}{}",
                r.partition,
                r.events,
                r.journal_next,
                &d[..16],
                match (args.verify, diff) {
                    (false, _) => String::new(),
                    (true, None) => ", identical to the live store".into(),
                    (true, Some(x)) => format!("\n  DIFFERS from the live store: {x}"),
                }
            );
        }
        println!("digest {digest}");
    }
    if temporary {
        let _ = std::fs::remove_dir_all(&into);
    }
    Ok(if args.verify && !verified {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One digest for several partitions: SHA-256 of their digests in order.
fn combined_digest<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for d in parts {
        h.update(d.as_bytes());
    }
    format!("{:x}", h.finalize())
}

/// The first key where two stores disagree, with both values.
struct Difference {
    key: String,
    live: Option<String>,
    replayed: Option<String>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "<absent>".into());
        write!(
            f,
            "key {}\n    live:     {}\n    replayed: {}",
            self.key,
            show(&self.live),
            show(&self.replayed)
        )
    }
}

fn first_difference(
    live: &ProjectionStore,
    replayed: &ProjectionStore,
) -> anyhow::Result<Option<Difference>> {
    let mut a = live.entries().peekable();
    let mut b = replayed.entries().peekable();
    loop {
        let (x, y) = match (a.peek(), b.peek()) {
            (None, None) => return Ok(None),
            (Some(Err(_)), _) | (_, Some(Err(_))) => {
                a.next().transpose()?;
                b.next().transpose()?;
                continue;
            }
            (x, y) => (
                x.and_then(|r| r.as_ref().ok()).cloned(),
                y.and_then(|r| r.as_ref().ok()).cloned(),
            ),
        };
        let describe = |kv: &(sled::IVec, sled::IVec)| ProjectionStore::describe(&kv.0, &kv.1);
        let key_of = |kv: &(sled::IVec, sled::IVec)| String::from_utf8_lossy(&kv.0).into_owned();
        match (x, y) {
            (Some(l), Some(r)) if l.0 == r.0 => {
                if l.1 != r.1 {
                    return Ok(Some(Difference {
                        key: key_of(&l),
                        live: Some(describe(&l)),
                        replayed: Some(describe(&r)),
                    }));
                }
                a.next();
                b.next();
            }
            (Some(l), r) if r.as_ref().is_none_or(|r| l.0 < r.0) => {
                return Ok(Some(Difference {
                    key: key_of(&l),
                    live: Some(describe(&l)),
                    replayed: None,
                }))
            }
            (_, Some(r)) => {
                return Ok(Some(Difference {
                    key: key_of(&r),
                    live: None,
                    replayed: Some(describe(&r)),
                }))
            }
            _ => return Ok(None),
        }
    }
}

/// A progress bar on a terminal, a plain line a second otherwise (stderr).
fn spawn_progress(progress: Arc<AtomicU64>, total: u64) -> tokio::task::JoinHandle<()> {
    use std::io::IsTerminal;
    tokio::spawn(async move {
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} events  {per_sec}  eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            loop {
                bar.set_position(progress.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        } else {
            let started = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let n = progress.load(Ordering::Relaxed);
                eprintln!(
                    "replay: {n}/{total} events, {:.0} events/s",
                    n as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
    })
}
