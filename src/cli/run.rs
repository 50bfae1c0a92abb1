//! `baton run`: the engine, one loop per partition, and the HTTP API,
//! until SIGTERM or Ctrl-C: then intake stops, every partition checkpoints
//! its projections and commits its ingress offset, and the process exits 0.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::backend::{self, Access};
use super::serve::{start_http, ServeArgs};
use super::GlobalArgs;
use crate::codec::Codec;
use crate::domain::engine::EngineConfig;
use crate::domain::events::Strategy;
use crate::engine::supervisor::run_owned;
use crate::engine::{Engine, EngineOptions, EngineStats};
use crate::telemetry::gauges::AgentLabels;
use crate::telemetry::Telemetry;

/// Decision settings shared by `run` and `demo`.
#[derive(Debug, Args, Clone)]
pub struct EngineArgs {
    /// Default scheduling strategy for every pool.
    #[arg(
        long,
        value_enum,
        env = "BATON_ENGINE_STRATEGY",
        default_value = "least-connections"
    )]
    pub strategy: StrategyArg,
    /// Workflows running at once per partition; more are queued.
    #[arg(long, env = "BATON_ENGINE_MAX_RUNNING", default_value_t = 100_000)]
    pub max_running: usize,
    /// Checkpoint the projection store every this many milliseconds.
    #[arg(long, env = "BATON_ENGINE_FLUSH_MS", default_value_t = 500)]
    pub flush_ms: u64,
    /// Ingress records decided per engine iteration (one journal append).
    #[arg(long, env = "BATON_ENGINE_BATCH_SIZE", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub batch_size: u64,
    /// Bottleneck detection window (`90s`, `1m`, `500ms`); the long window
    /// is 15× it, evaluation runs every 1/12 of it and the queue-wait
    /// threshold is half of it.
    /// [default: 1m; 5s for demo scenarios]
    #[arg(long, env = "BATON_ENGINE_BOTTLENECK_WINDOW", value_parser = parse_window)]
    pub bottleneck_window: Option<i64>,
    /// Fold no bottleneck statistics and detect nothing (a cost baseline).
    #[arg(long, env = "BATON_ENGINE_NO_BOTTLENECKS")]
    pub no_bottlenecks: bool,
}

pub fn parse_window(s: &str) -> Result<i64, String> {
    match super::report::parse_duration_ms(s) {
        Some(ms) if ms >= 100 => Ok(ms),
        _ => Err(format!(
            "`{s}`: expected a duration of at least 100ms such as 500ms, 30s, 1m or 1h"
        )),
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StrategyArg {
    RoundRobin,
    LeastConnections,
    Weighted,
    PerformanceBased,
}

impl From<StrategyArg> for Strategy {
    fn from(s: StrategyArg) -> Self {
        match s {
            StrategyArg::RoundRobin => Strategy::RoundRobin,
            StrategyArg::LeastConnections => Strategy::LeastConnections,
            StrategyArg::Weighted => Strategy::Weighted,
            StrategyArg::PerformanceBased => Strategy::PerformanceBased,
        }
    }
}

impl EngineArgs {
    pub fn config(&self) -> EngineConfig {
        let mut c = EngineConfig {
            max_running_workflows: self.max_running.max(1),
            ..EngineConfig::default()
        };
        c.scheduler.default_strategy = self.strategy.into();
        c.bottleneck = c
            .bottleneck
            .with_window(self.bottleneck_window.unwrap_or(60_000));
        c.bottleneck.enabled = !self.no_bottlenecks;
        c
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Builds the shared engine over an open log.
pub fn engine(
    global: &GlobalArgs,
    log: Arc<dyn crate::log::EventLog>,
    args: &EngineArgs,
    mut config: EngineConfig,
    agent_labels: AgentLabels,
) -> anyhow::Result<Arc<Engine>> {
    // A partition sees its share of the load (keys are hashed).
    config.bottleneck.partitions = global.partitions;
    let mut options = EngineOptions::new(global.data_dir.clone());
    options.flush_every = std::time::Duration::from_millis(args.flush_ms.max(1));
    options.batch = args.batch_size as usize;
    options.group = global.topics().engine_group();
    Ok(Arc::new(Engine {
        log,
        codec: Codec::builtin()?,
        topics: global.topics(),
        config,
        options,
        stats: Arc::new(EngineStats::default()),
        live: Default::default(),
        agent_labels,
    }))
}

/// Joins the engine's consumer group on the ingress topic and runs the
/// partitions it is given (all of them on the embedded log) until `stop`.
pub async fn spawn_engine(
    engine: &Arc<Engine>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<Result<(), crate::engine::EngineError>>> {
    let membership = engine
        .log
        .join_group(&engine.options.group, &engine.topics.ingress())
        .await?;
    tokio::spawn(crate::telemetry::sampler::run(
        engine.log.clone(),
        engine.topics.ingress(),
        engine.live.clone(),
        stop.clone(),
    ));
    Ok(tokio::spawn(run_owned(
        engine.clone(),
        membership,
        stop.clone(),
    )))
}

/// Longest wait, after SIGTERM, for the partitions to checkpoint and
/// commit: service managers send SIGKILL after their own grace period
/// (Kubernetes: 30 s), and a stop that cannot finish is better reported.
const SHUTDOWN_BOUND: std::time::Duration = std::time::Duration::from_secs(20);

pub async fn run(global: &GlobalArgs, args: RunArgs) -> anyhow::Result<ExitCode> {
    let signalled = shutdown_signal();
    let log = backend::open(global, Access::Write).await?;
    backend::ensure_topics(log.as_ref(), global, None).await?;
    let telemetry = Telemetry::install()?;
    let engine = engine(
        global,
        log,
        &args.engine,
        args.engine.config(),
        args.serve.agent_labels(),
    )?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let http = start_http(&args.serve, &engine, telemetry, true, true, stop_rx.clone()).await?;
    let mut handle = spawn_engine(&engine, &stop_rx).await?;
    if let Some((addr, _)) = &http {
        eprintln!("HTTP API on http://{addr} (/metrics, /healthz, /readyz, /v1/...)");
    }
    match &global.brokers {
        Some(b) => eprintln!(
            "baton engine running on Kafka at {b} (group {}; partitions as the group assigns them), projections in {}; SIGTERM or Ctrl-C to stop",
            engine.options.group,
            global.data_dir.display()
        ),
        None => eprintln!(
            "baton engine running on the embedded log in {}; SIGTERM or Ctrl-C to stop",
            global.data_dir.display()
        ),
    }
    // Stop on Ctrl-C or SIGTERM, or as soon as the engine ends (an error).
    let ended = tokio::select! {
        _ = signalled => None,
        r = &mut handle => Some(r),
    };
    let _ = stop_tx.send(true);
    let result = match ended {
        Some(r) => r,
        None => match tokio::time::timeout(SHUTDOWN_BOUND, handle).await {
            Ok(r) => r,
            Err(_) => {
                anyhow::bail!(
                    "the partitions did not finish checkpointing within {} s of the stop signal; the next start recovers from the journal",
                    SHUTDOWN_BOUND.as_secs()
                )
            }
        },
    };
    if let Err(e) = result
        .map_err(anyhow::Error::from)
        .and_then(|r| r.map_err(anyhow::Error::from))
    {
        return Err(e.context("the engine stopped"));
    }
    if let Some((_, h)) = http {
        let _ = h.await;
    }
    eprintln!("stopped; projections checkpointed, offsets committed");
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM on Unix (how service managers and Kubernetes stop a
/// process). The handlers are installed when this is called, not when the
/// future is first polled, so a signal that arrives during start-up is not
/// lost (it would otherwise kill the process the default way).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
