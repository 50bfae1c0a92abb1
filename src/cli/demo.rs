//! `baton demo`: the main job. The engine, a simulated agent fleet and a
//! workflow generator, all in this process, talking only through the
//! embedded log (real events, no shortcuts into the engine's state). Shows a
//! live progress line and ends by itself with a summary once every
//! submitted workflow reached a terminal state (or `--duration` passed).
//! Running it again on the same data dir continues from the stored state.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use super::backend::{self, Access};
use super::run::{engine, spawn_engine, EngineArgs};
use super::scenario::{produced, Scenario};
use super::GlobalArgs;
use crate::engine::{Engine, EngineStats};
use crate::sim::fleet::{run_fleet, FleetConfig, LatencyDist, SimAgentConfig};
use crate::sim::generator::{run_generator, GeneratorConfig};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Workflows to submit (three steps each by default).
    #[arg(long, default_value_t = 2000)]
    pub workflows: u64,
    /// Simulated agents.
    #[arg(long, default_value_t = 20)]
    pub agents: usize,
    /// Give up after this many seconds even if workflows are unfinished.
    #[arg(long, default_value_t = 300.0)]
    pub duration: f64,
    /// Probability that a simulated step attempt fails (retryable).
    #[arg(long, default_value_t = 0.0)]
    pub failure_rate: f64,
    /// Mean simulated step latency in ms (0 = agents answer at once).
    #[arg(long, default_value_t = 0.0)]
    pub latency_ms: f64,
    /// Submissions per second (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Submitted-but-unfinished workflows allowed at once (a closed-loop
    /// load, so memory stays bounded however many workflows are run). The
    /// default keeps the default fleet (20 × 64 slots) busy without steps
    /// queueing behind it: a deeper window only adds waiting.
    #[arg(long, default_value_t = 3_000)]
    pub max_in_flight: u64,
    /// Probability that a started step attempt hangs and never reports (the
    /// engine times it out; see --step-timeout-ms).
    #[arg(long, default_value_t = 0.0)]
    pub stall_rate: f64,
    /// Step timeout the generated workflows ask for, in ms.
    #[arg(long, default_value_t = 30_000)]
    pub step_timeout_ms: i64,
    /// This many agents crash (go silent) --lose-after-ms into the run: the
    /// engine declares them lost and requeues their steps.
    #[arg(long, default_value_t = 0)]
    pub lose_agents: usize,
    #[arg(long, default_value_t = 1_000)]
    pub lose_after_ms: u64,
    /// Heartbeat interval of the simulated agents, in ms.
    #[arg(long, default_value_t = 1_000)]
    pub heartbeat_ms: u64,
    /// Agent capacity (concurrent steps each).
    #[arg(long, default_value_t = 64)]
    pub capacity: u32,
    /// Drive the fleet into one bottleneck for three detection windows,
    /// then remove the cause for four; the summary lists the findings.
    #[arg(long, value_enum)]
    pub scenario: Option<Scenario>,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Run only the simulated fleet and the workflow generator, against
    /// engines running elsewhere (e.g. `baton run` instances sharing a Kafka
    /// cluster); completion is read from the status topic.
    #[arg(long)]
    pub no_engine: bool,
    #[command(flatten)]
    pub serve: super::serve::ServeArgs,
}

pub async fn run(global: &GlobalArgs, args: DemoArgs) -> anyhow::Result<ExitCode> {
    for (flag, v) in [
        ("--failure-rate", args.failure_rate),
        ("--stall-rate", args.stall_rate),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(super::UsageError(format!("{flag} {v} must be between 0 and 1")).into());
        }
    }
    if args.step_timeout_ms < 1 || args.heartbeat_ms < 1 {
        return Err(super::UsageError(
            "--step-timeout-ms and --heartbeat-ms must be positive".into(),
        )
        .into());
    }
    let log = backend::open(global, Access::Write).await?;
    backend::ensure_topics(log.as_ref(), global, None).await?;
    let window_ms = args
        .engine
        .bottleneck_window
        .unwrap_or(if args.scenario.is_some() {
            5_000
        } else {
            60_000
        });
    let plan = args
        .scenario
        .map(|s| s.plan(Duration::from_millis(window_ms as u64)));
    let mut config = args.engine.config();
    config.bottleneck = config.bottleneck.with_window(window_ms);
    if let Some(p) = &plan {
        config.scheduler.default_strategy = p.strategy;
        // Short windows hold fewer samples; judge from 10.
        config.bottleneck.min_samples = 10;
    }
    let telemetry = crate::telemetry::Telemetry::install()?;
    let engine = engine(
        global,
        log.clone(),
        &args.engine,
        config,
        args.serve.agent_labels(),
    )?;
    let start_ts = crate::domain::events::Timestamp::from_datetime(chrono::Utc::now());
    let journal_before = journal_total(&engine).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let http = super::serve::start_http(
        &args.serve,
        &engine,
        telemetry,
        !args.no_engine,
        false,
        stop_rx.clone(),
    )
    .await?;
    if let (Some((addr, _)), false) = (&http, args.json) {
        eprintln!("HTTP API on http://{addr} (/metrics, /healthz, /readyz, /v1/...)");
    }
    let mut started = Instant::now();
    let engine_task = if args.no_engine {
        let start = crate::sim::status::status_start(log.as_ref(), &engine.topics).await?;
        tokio::spawn({
            let (log, codec, topics, stats, stop) = (
                log.clone(),
                engine.codec.clone(),
                engine.topics.clone(),
                engine.stats.clone(),
                stop_rx.clone(),
            );
            async move {
                crate::sim::status::watch_status(log, codec, topics, start, stats, stop)
                    .await
                    .map_err(|e| crate::engine::EngineError::Task(format!("status watcher: {e}")))
            }
        })
    } else {
        let task = spawn_engine(&engine, &stop_rx).await?;
        wait_for_engine(&engine).await;
        // The load phase starts now: latency and throughput measure
        // decisions, not start-up.
        started = Instant::now();
        task
    };

    let agents = match &plan {
        Some(p) => p.agents.clone(),
        None => default_fleet(&args),
    };
    let seed = chrono::Utc::now().timestamp_millis() as u64;
    let fleet_cfg = FleetConfig {
        agents,
        heartbeat_interval: Duration::from_millis(args.heartbeat_ms),
        seed,
    };
    let (workflows, rate) = match &plan {
        Some(p) => (
            (p.rate * (p.cause + p.relief).as_secs_f64()).ceil() as u64,
            Some(p.rate),
        ),
        None => (args.workflows, args.rate),
    };
    // With a rate, submit in 5 ms slices so latency measures the engine, not
    // bursts queued behind a large generator batch.
    let batch = rate.map_or(4096, |r| ((r / 200.0) as usize).max(1));
    let mut gen_cfg = GeneratorConfig {
        workflows,
        rate,
        seed,
        batch,
        step_timeout_ms: Some(args.step_timeout_ms),
        ..GeneratorConfig::for_fleet(&fleet_cfg)
    };
    if let Some(p) = &plan {
        gen_cfg.capabilities = p.capabilities.clone();
    }
    // A scenario lasts through its relief phase, so the resolution is seen.
    let min_end = started
        + plan
            .as_ref()
            .map_or(Duration::ZERO, |p| p.cause + p.relief + p.cause / 6);
    let fleet = tokio::spawn(run_fleet(
        log.clone(),
        engine.codec.clone(),
        engine.topics.clone(),
        fleet_cfg,
        stop_rx.clone(),
    ));
    // Let registrations reach the engine before the first workflows.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let generator = tokio::spawn(paced_generation(
        log.clone(),
        engine.clone(),
        gen_cfg,
        args.max_in_flight.max(1),
        stop_rx.clone(),
    ));
    let stats = engine.stats.clone();
    let deadline = started + Duration::from_secs_f64(args.duration.max(1.0));
    let tty = std::io::stderr().is_terminal() && !args.json;
    let mut last_print = Instant::now();
    let mut last_events = 0u64;
    let mut submitted = None;
    let mut generator = Some(generator);
    // Ctrl-C or SIGTERM ends the demo like its deadline does: everything
    // stops, checkpoints, and the summary is printed.
    let signalled = super::run::shutdown_signal();
    tokio::pin!(signalled);
    let mut interrupted = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = &mut signalled => interrupted = true,
        }
        if let Some(g) = generator.as_ref().filter(|g| g.is_finished()) {
            let _ = g;
            if let Some(g) = generator.take() {
                submitted = Some(g.await??);
            }
        }
        let terminal = stats.workflows_terminal();
        let done = submitted.is_some_and(|s| terminal >= s) && Instant::now() >= min_end;
        if last_print.elapsed() >= Duration::from_secs(1) || done {
            let events = EngineStats::get(&stats.journal_events);
            let rate = (events - last_events) as f64 / last_print.elapsed().as_secs_f64();
            let line = progress(&stats, rate);
            if tty {
                eprint!("\r{line}   ");
            } else if !args.json {
                eprintln!("{line}");
            }
            last_events = events;
            last_print = Instant::now();
        }
        if done || interrupted || Instant::now() >= deadline || engine_task.is_finished() {
            break;
        }
    }
    if tty {
        eprintln!();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let submitted = match generator {
        Some(g) => g.await??,
        None => submitted.unwrap_or(0),
    };
    let fleet_stats = fleet.await??;
    engine_task.await??;
    log.flush().await?;
    let journal_after = journal_total(&engine).await?;
    let succeeded = EngineStats::get(&stats.workflows_succeeded);
    let failed =
        EngineStats::get(&stats.workflows_failed) + EngineStats::get(&stats.workflows_rejected);
    let terminal = stats.workflows_terminal();
    let scenario = match (&plan, args.scenario) {
        (Some(p), Some(s)) => {
            let states = super::report::load_states(global).await?;
            let cause_end =
                crate::domain::events::Timestamp(start_ts.0 + p.cause.as_micros() as i64);
            let found = produced(&states, start_ts, cause_end);
            let (kind, subject) = p.expect;
            let kind = crate::domain::bottleneck::kind_name(kind);
            let expected = found
                .iter()
                .find(|f| f.kind == kind && f.subject == subject);
            let window_s = window_ms as f64 / 1000.0;
            json!({
                "name": s.name(),
                "window_s": window_s,
                "cause_s": p.cause.as_secs_f64(),
                "relief_s": p.relief.as_secs_f64(),
                "expected": {"kind": kind, "subject": subject},
                "expected_detected_within_two_windows": expected.is_some_and(|f| f.detected_after_s <= 2.0 * window_s),
                "expected_resolved": expected.is_some_and(|f| f.resolved_after_cause_s.is_some()),
                "findings": found,
            })
        }
        _ => serde_json::Value::Null,
    };
    let summary = json!({
        "workflows_submitted": submitted,
        "workflows_succeeded": succeeded,
        "workflows_failed": failed,
        "workflows_unfinished": submitted.saturating_sub(terminal),
        "journal_events": journal_after - journal_before,
        "journal_events_total": journal_after,
        "dead_letters": EngineStats::get(&stats.dead_letters),
        "elapsed_s": elapsed,
        "workflows_per_s": terminal as f64 / elapsed.max(1e-9),
        "decision_latency_ms": {"p50": stats.latency_ms(0.5), "p99": stats.latency_ms(0.99)},
        "fleet": {"started": fleet_stats.started, "succeeded": fleet_stats.succeeded, "failed": fleet_stats.failed, "declined": fleet_stats.declined, "stalled": fleet_stats.stalled, "silenced": fleet_stats.silenced},
        "engine": {"timeouts": EngineStats::get(&stats.timeouts), "agents_lost": EngineStats::get(&stats.agents_lost), "retries": EngineStats::get(&stats.retries)},
        "scenario": scenario,
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "demo finished in {elapsed:.1} s: {submitted} workflows submitted, {succeeded} succeeded, {failed} failed, {} unfinished",
            submitted.saturating_sub(terminal)
        );
        println!(
            "  {:.0} workflows/s, {} journal events ({} in the journal overall), decision latency p50 {:.2} ms / p99 {:.2} ms",
            terminal as f64 / elapsed.max(1e-9),
            journal_after - journal_before,
            journal_after,
            stats.latency_ms(0.5),
            stats.latency_ms(0.99)
        );
        println!(
            "  fleet: {} attempts started, {} succeeded, {} failed, {} declined at capacity; {} inputs dead-lettered",
            fleet_stats.started,
            fleet_stats.succeeded,
            fleet_stats.failed,
            fleet_stats.declined,
            EngineStats::get(&stats.dead_letters)
        );
        if let Some(found) = scenario.get("findings").and_then(|f| f.as_array()) {
            println!(
                "  scenario {}: {} findings (window {} s, cause {} s, relief {} s)",
                scenario["name"].as_str().unwrap_or(""),
                found.len(),
                scenario["window_s"],
                scenario["cause_s"],
                scenario["relief_s"]
            );
            for f in found {
                println!(
                    "    {} `{}`: peak severity {}, detected after {} s in {} partitions, {}",
                    f["kind"].as_str().unwrap_or(""),
                    f["subject"].as_str().unwrap_or(""),
                    f["peak_severity"],
                    f["detected_after_s"],
                    f["partitions"],
                    match f["resolved_after_cause_s"].as_f64() {
                        Some(r) => format!("resolved {r} s after the cause ended"),
                        None => "still active".to_string(),
                    }
                );
            }
        }
        println!("  inspect one: baton inspect workflow <id>   the fleet: baton inspect agents   bottlenecks: baton inspect bottlenecks   report: baton report");
    }
    Ok(if submitted > terminal {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn progress(stats: &EngineStats, events_per_s: f64) -> String {
    let accepted = EngineStats::get(&stats.workflows_accepted);
    let terminal = stats.workflows_terminal();
    format!(
        "accepted {accepted}  running {}  succeeded {}  failed {}  {:.0} events/s  decision p50 {:.2} ms p99 {:.2} ms",
        accepted.saturating_sub(terminal.saturating_sub(EngineStats::get(&stats.workflows_rejected))),
        EngineStats::get(&stats.workflows_succeeded),
        EngineStats::get(&stats.workflows_failed) + EngineStats::get(&stats.workflows_rejected),
        events_per_s,
        stats.latency_ms(0.5),
        stats.latency_ms(0.99)
    )
}

/// Runs the generator in chunks, keeping at most `window` workflows
/// submitted but not yet finished.
async fn paced_generation(
    log: Arc<dyn crate::log::EventLog>,
    engine: Arc<Engine>,
    cfg: GeneratorConfig,
    window: u64,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<u64, crate::sim::SimError> {
    let mut submitted = 0u64;
    while submitted < cfg.workflows && !*stop.borrow() {
        let in_flight = submitted.saturating_sub(engine.stats.workflows_terminal());
        if in_flight >= window {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        let chunk = (window - in_flight)
            .min(cfg.workflows - submitted)
            .min(8192);
        let part = GeneratorConfig {
            workflows: chunk,
            first_index: cfg.first_index + submitted,
            ..cfg.clone()
        };
        submitted += run_generator(
            log.clone(),
            engine.codec.clone(),
            engine.topics.clone(),
            part,
            stop.clone(),
        )
        .await?;
    }
    Ok(submitted)
}

async fn journal_total(engine: &Arc<Engine>) -> anyhow::Result<u64> {
    let journal = engine.topics.journal();
    let mut total = 0;
    for p in 0..engine.log.partition_count(&journal).await? {
        total += engine.log.high_watermark(&journal, p).await?;
    }
    Ok(total)
}

fn default_fleet(args: &DemoArgs) -> Vec<SimAgentConfig> {
    let latency = if args.latency_ms <= 0.0 {
        LatencyDist::Zero
    } else {
        LatencyDist::Exponential {
            mean_ms: args.latency_ms,
        }
    };
    (0..args.agents.max(1))
        .map(|i| SimAgentConfig {
            id: format!("agent-{i:03}"),
            pool: "default".into(),
            capabilities: if i % 2 == 0 {
                vec!["llm".into(), "code-review".into(), "git".into()]
            } else {
                vec!["llm".into(), "git".into()]
            },
            capacity: args.capacity.max(1),
            weight: 1 + (i % 3) as u32,
            latency,
            failure_rate: args.failure_rate,
            stall_rate: args.stall_rate,
            silent_after: (i < args.lose_agents).then(|| Duration::from_millis(args.lose_after_ms)),
            fault: None,
            joins_after: None,
        })
        .collect()
}

/// Longest the demo waits for its engine to start before loading it anyway.
const ENGINE_START_BOUND: Duration = Duration::from_secs(60);

/// Waits until the engine owns partitions and has recovered every one it
/// owns (on Kafka: joined the group, refolded, waited for a quiet journal),
/// bounded by [`ENGINE_START_BOUND`].
async fn wait_for_engine(engine: &crate::engine::Engine) {
    let deadline = Instant::now() + ENGINE_START_BOUND;
    loop {
        let owned = engine.live.readiness(u64::MAX);
        if !owned.is_empty() && owned.iter().all(|p| p.recovered) {
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                owned = owned.len(),
                "the engine has not recovered its partitions yet; starting the load anyway"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
