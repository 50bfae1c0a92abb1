//! `baton replay`: fold the journal into a fresh projection store, with
//! progress, and optionally verify it against the engine's own store.
//!
//! `--verify` replays each partition up to the journal offset the live
//! store's checkpoint names, then compares the two stores' digests; on a
//! difference it prints the first differing key with both values and exits
//! with code 1. A replay that stopped short of the journal's end (a silent
//! broker) also exits 1. The engine must not be running on the data directory (the
//! embedded stores are single-process).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use super::backend::Journal;
use super::GlobalArgs;
use crate::domain::engine::EngineConfig;
use crate::engine::history::{offset_for_time, AsOf};
use crate::engine::replay::{process_cpu_s, replay_partition, PartitionReplay, ReplayCost, Span};
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
    /// Start at this moment: a journal offset (in every selected partition)
    /// or an RFC 3339 timestamp. The store then holds only what happened
    /// since (workflows accepted earlier are not in it).
    #[arg(long)]
    pub from: Option<AsOf>,
    /// Stop before this moment: a journal offset (in every selected
    /// partition) or an RFC 3339 timestamp (facts stamped at or before it
    /// are folded).
    #[arg(long)]
    pub until: Option<AsOf>,
    /// Compare with the engine's store at the journal offset it reflects;
    /// exit 1 on the first difference.
    #[arg(long)]
    pub verify: bool,
    /// The engine's bottleneck window (the projection's windows depend on
    /// it) [default: with --verify, the live store's; otherwise 1m].
    #[arg(long, value_parser = super::run::parse_window)]
    pub bottleneck_window: Option<i64>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Page cache of each replayed partition's store, in MiB, allocated
    /// only as used; the whole tree cached is the fast case.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub cache_mb: u64,
}

/// One partition's outcome.
struct Done {
    replay: PartitionReplay,
    digest: String,
    difference: Option<Difference>,
}

/// Runs `f` for every partition on up to `threads` OS threads (partitions
/// are independent: their own journal partition, their own store tree), in
/// partition order in the result.
fn per_partition<T: Send>(
    partitions: &[u32],
    threads: usize,
    f: impl Fn(u32) -> anyhow::Result<T> + Sync,
) -> anyhow::Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<anyhow::Result<T>>> = partitions.iter().map(|_| None).collect();
    let results = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads.clamp(1, partitions.len().max(1)))
                .map(|_| {
                    s.spawn(|| {
                        let mut out = Vec::new();
                        while let Some(&p) = partitions.get(next.fetch_add(1, Ordering::Relaxed)) {
                            out.push((p, f(p)));
                        }
                        out
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .collect::<Vec<_>>()
        })
    });
    for (p, r) in results {
        if let Some(i) = partitions.iter().position(|&x| x == p) {
            slots[i] = Some(r);
        }
    }
    slots
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(anyhow::anyhow!("a replay thread panicked"))))
        .collect()
}

pub async fn run(global: &GlobalArgs, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    if args.verify && (args.until.is_some() || args.from.is_some()) {
        anyhow::bail!(super::UsageError(
            "--verify replays the whole journal up to the live store's checkpoint; it cannot be combined with --from or --until"
                .into()
        ));
    }
    let reader = Journal::open(global).await?;
    let (log, journal) = (&reader.log, &reader.topic);
    let partitions: Vec<u32> = match args.partition {
        Some(p) => vec![p],
        None => (0..log.partition_count(journal).await?).collect(),
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
    if args.verify {
        // A damaged live store, one that reflects journal facts the journal
        // lost, or one behind the committed offset is no reference: a
        // replay of what is left could even agree with it.
        super::stores::check_existing(global, log.as_ref(), &partitions)
            .await
            .map_err(|e| e.context("--verify FAILED"))?;
    }
    let mut spans = Vec::with_capacity(partitions.len());
    let mut windows = Vec::with_capacity(partitions.len());
    let mut total = 0;
    for &p in &partitions {
        let live_window = if args.verify && args.bottleneck_window.is_none() {
            ProjectionStore::open(&global.data_dir, p)?
                .bottlenecks()?
                .map(|s| s.short_ms())
        } else {
            None
        };
        windows.push(args.bottleneck_window.or(live_window).unwrap_or(60_000));
        let until = if args.verify {
            let live = ProjectionStore::open(&global.data_dir, p)?;
            let Some(cp) = live.checkpoint()? else {
                anyhow::bail!(
                    "--verify: partition {p} has no engine store in {} to compare with (has the engine run here?)",
                    global.data_dir.display()
                );
            };
            Some(cp.journal_next)
        } else {
            match args.until {
                Some(a) => Some(a.offset_in(log.as_ref(), journal, p).await?),
                None => None,
            }
        };
        let from = match args.from {
            Some(AsOf::Offset(o)) => Some(o),
            Some(AsOf::Time(t)) => {
                let ms = t.as_micros().div_euclid(1000);
                Some(offset_for_time(log.as_ref(), journal, p, ms).await?)
            }
            None => None,
        };
        let hwm = log.high_watermark(journal, p).await?;
        let start = log.log_start(journal, p).await?;
        total += until
            .unwrap_or(hwm)
            .min(hwm)
            .saturating_sub(from.unwrap_or(start).max(start));
        spans.push(Span { from, until });
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let progress = Arc::new(AtomicU64::new(0));
    let reporter = spawn_progress(progress.clone(), total);
    let started = Instant::now();
    let cpu_before = process_cpu_s();
    let handle = tokio::runtime::Handle::current();
    let replays = per_partition(&partitions, threads, |p| {
        let i = partitions.iter().position(|&x| x == p).unwrap_or(0);
        let store = ProjectionStore::open_with_cache(&into, p, args.cache_mb << 20)?;
        let source = reader.source();
        let mut config = EngineConfig::default();
        config.bottleneck = config.bottleneck.with_window(windows[i]);
        Ok(handle.block_on(replay_partition(
            &source, p, spans[i], &store, config, &progress,
        ))?)
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_s = process_cpu_s() - cpu_before;
    reporter.abort();
    let checked = Instant::now();
    let done = per_partition(&partitions, threads, |p| {
        let i = partitions.iter().position(|&x| x == p).unwrap_or(0);
        let store = ProjectionStore::open(&into, p)?;
        let difference = if args.verify {
            first_difference(&ProjectionStore::open(&global.data_dir, p)?, &store)?
        } else {
            None
        };
        Ok(Done {
            replay: replays[i].clone(),
            digest: store.digest()?,
            difference,
        })
    })?;
    let digest_s = checked.elapsed().as_secs_f64();
    let events: u64 = done.iter().map(|d| d.replay.events).sum();
    let digest = combined_digest(done.iter().map(|d| d.digest.as_str()));
    let verified = args.verify && done.iter().all(|d| d.difference.is_none());
    let mut cost = ReplayCost::default();
    for d in &done {
        cost.add(&d.replay.cost);
    }
    if args.json {
        let parts: Vec<_> = done
            .iter()
            .map(|d| {
                json!({"partition": d.replay.partition, "events": d.replay.events,
                       "journal_next": d.replay.journal_next, "end": d.replay.end,
                       "complete": d.replay.complete(), "digest": d.digest,
                       "difference": d.difference.as_ref().map(|x| x.to_string())})
            })
            .collect();
        println!(
            "{}",
            json!({"events": events, "elapsed_s": elapsed,
                   "events_per_s": events as f64 / elapsed.max(1e-9),
                   "threads": threads.min(partitions.len()), "digest_s": digest_s,
                   "digest": digest, "verified": args.verify.then_some(verified),
                   "complete": done.iter().all(|d| d.replay.complete()),
                   "cpu": cost_json(&cost, cpu_s), "partitions": parts})
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
        eprintln!("{}", cost_line(&cost, cpu_s, elapsed));
        for d in &done {
            println!(
                "partition {}: {} events, journal offset {}{}, digest {}{}",
                d.replay.partition,
                d.replay.events,
                d.replay.journal_next,
                if d.replay.complete() {
                    String::new()
                } else {
                    format!(
                        " (STOPPED SHORT of {}: the log answered nothing more)",
                        d.replay.end
                    )
                },
                &d.digest[..16],
                match (args.verify, &d.difference) {
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
    // A replay that stopped short reflects less than the journal holds: a
    // script must not take it for the whole history.
    let complete = done.iter().all(|d| d.replay.complete());
    if !complete {
        eprintln!("replay incomplete: the log answered nothing below its end (see above)");
    }
    Ok(if (args.verify && !verified) || !complete {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Where the replay's CPU went (`--json`'s `cpu`): per phase, the store
/// keys written, and what the store's write-behind threads achieved per CPU
/// second (sled's per-key cost, the usual limit of a replay).
fn cost_json(c: &ReplayCost, cpu_s: f64) -> serde_json::Value {
    let phases = c.phases_s();
    json!({"total_s": cpu_s, "read_s": c.read_s, "fold_s": c.fold_s,
           "prepare_s": c.prepare_s, "store_write_s": c.write_s,
           "other_s": (cpu_s - phases).max(0.0), "store_keys": c.store_keys,
           "store_keys_per_write_s": c.store_keys as f64 / c.write_s.max(1e-9)})
}

/// The same for people, one line.
fn cost_line(c: &ReplayCost, cpu_s: f64, elapsed: f64) -> String {
    let phases = c.phases_s();
    format!(
        "cpu {cpu_s:.1} s in {elapsed:.1} s: read {:.1} s, decode+fold {:.1} s, \
         prepare {:.1} s, store writes {:.1} s ({} keys, {:.0} keys per CPU second), \
         other (sled IO, runtime) {:.1} s",
        c.read_s,
        c.fold_s,
        c.prepare_s,
        c.write_s,
        c.store_keys,
        c.store_keys as f64 / c.write_s.max(1e-9),
        (cpu_s - phases).max(0.0)
    )
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
