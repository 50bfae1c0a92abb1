//! `baton run`: the engine, one loop per partition, until Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::backend::{self, Access};
use super::GlobalArgs;
use crate::codec::Codec;
use crate::domain::engine::EngineConfig;
use crate::domain::events::Strategy;
use crate::engine::{run_partition, Engine, EngineOptions, EngineStats};

/// Decision settings shared by `run` and `demo`.
#[derive(Debug, Args, Clone)]
pub struct EngineArgs {
    /// Default scheduling strategy for every pool.
    #[arg(long, value_enum, default_value = "least-connections")]
    pub strategy: StrategyArg,
    /// Workflows running at once per partition; more are queued.
    #[arg(long, default_value_t = 100_000)]
    pub max_running: usize,
    /// Checkpoint the projection store every this many milliseconds.
    #[arg(long, default_value_t = 500)]
    pub flush_ms: u64,
    /// Ingress records decided per engine iteration (one journal append).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub batch_size: u64,
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
        c
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Builds the shared engine over an open log.
pub fn engine(
    global: &GlobalArgs,
    log: Arc<dyn crate::log::EventLog>,
    args: &EngineArgs,
) -> anyhow::Result<Arc<Engine>> {
    let mut options = EngineOptions::new(global.data_dir.clone());
    options.flush_every = std::time::Duration::from_millis(args.flush_ms.max(1));
    options.batch = args.batch_size as usize;
    Ok(Arc::new(Engine {
        log,
        codec: Codec::builtin()?,
        topics: global.topics(),
        config: args.config(),
        options,
        stats: Arc::new(EngineStats::default()),
    }))
}

/// Spawns one loop per ingress partition.
pub async fn spawn_partitions(
    engine: &Arc<Engine>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<Result<(), crate::engine::EngineError>>>> {
    let n = engine.log.partition_count(&engine.topics.ingress()).await?;
    Ok((0..n)
        .map(|p| tokio::spawn(run_partition(engine.clone(), p, stop.clone())))
        .collect())
}

pub async fn run(global: &GlobalArgs, args: RunArgs) -> anyhow::Result<ExitCode> {
    let log = backend::open(global, Access::Write)?;
    backend::ensure_topics(log.as_ref(), global, None).await?;
    let engine = engine(global, log, &args.engine)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let handles = spawn_partitions(&engine, &stop_rx).await?;
    eprintln!(
        "baton engine running on {} partition(s) in {}; Ctrl-C to stop",
        handles.len(),
        global.data_dir.display()
    );
    // Stop on Ctrl-C, or as soon as any partition loop ends (an error).
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                if handles.iter().any(|h| h.is_finished()) {
                    break;
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    let mut failed = None;
    for h in handles {
        if let Err(e) = h
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r.map_err(anyhow::Error::from))
        {
            failed.get_or_insert(e);
        }
    }
    if let Some(e) = failed {
        return Err(e.context("a partition loop stopped"));
    }
    eprintln!("stopped; projections checkpointed");
    Ok(ExitCode::SUCCESS)
}
