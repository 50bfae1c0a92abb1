//! The `baton` command line (clap). Each subcommand lives in its own file;
//! this module holds the global options, opens the log backend, and maps
//! errors to exit codes: 0 ok, 1 runtime error, 2 usage error.
//!
//! `anyhow` is used here and nowhere below: library modules return typed
//! errors, the CLI turns them into messages a person can act on.

mod audit;
mod backend;
mod bench;
mod bench_bottlenecks;
mod bench_kafka;
mod config_cmd;
mod demo;
mod inspect;
mod inspect_remote;
mod log_cmd;
mod produce;
mod remote;
mod replay;
mod report;
mod report_html;
mod run;
mod scenario;
mod schemas;
mod serve;
mod stores;

pub use run::parse_window;
mod submit;
mod tail;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::log::embedded::FsyncPolicy;
use crate::telemetry::logging::LogFormat;
use crate::topics::{Topics, DEFAULT_PREFIX};

/// Baton: an event-sourced orchestrator for fleets of AI agents.
#[derive(Debug, Parser)]
#[command(name = "baton", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand understands.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// A configuration file (TOML; see the README's "Operating Baton").
    /// Flags and BATON_* environment variables override its keys.
    #[arg(long, global = true, env = "BATON_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the embedded log and projections.
    #[arg(
        long,
        global = true,
        env = "BATON_DATA_DIR",
        default_value = "./baton-data"
    )]
    pub data_dir: PathBuf,
    /// Kafka bootstrap servers (HOST:PORT,...). When set, Kafka is the log
    /// instead of the embedded one (projections stay in --data-dir).
    #[arg(long, global = true, env = "BATON_BROKERS")]
    pub brokers: Option<String>,
    /// A librdkafka property for every Kafka client, KEY=VALUE (repeatable):
    /// security.protocol, sasl.*, ssl.*, timeouts. Values are never logged
    /// when the key names a secret.
    #[arg(long = "kafka", global = true, value_name = "KEY=VALUE")]
    pub kafka: Vec<String>,
    /// Embedded log durability: `always` (fsync before acknowledging) or
    /// `interval:<ms>` (background fsync).
    #[arg(
        long,
        global = true,
        env = "BATON_FSYNC",
        default_value = "interval:100"
    )]
    pub fsync: FsyncPolicy,
    /// Prefix of every Baton topic.
    #[arg(long, global = true, env = "BATON_TOPIC_PREFIX", default_value = DEFAULT_PREFIX)]
    pub topic_prefix: String,
    /// Partition count used when Baton creates its topics.
    #[arg(long, global = true, env = "BATON_PARTITIONS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub partitions: u32,
    /// Log filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, global = true, env = "BATON_LOG", default_value = "warn")]
    pub log: String,
    /// Log line format: `human`, or `json` (one object per line).
    #[arg(
        long,
        global = true,
        env = "BATON_LOG_FORMAT",
        value_enum,
        default_value = "human"
    )]
    pub log_format: LogFormat,
    /// `[kafka]` properties from the config file and BATON_KAFKA_*
    /// variables (`--kafka` flags are applied after them).
    #[arg(skip)]
    pub kafka_base: Vec<(String, String)>,
}

impl GlobalArgs {
    pub fn topics(&self) -> Topics {
        Topics::new(self.topic_prefix.clone())
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read JSON events (one per line), validate, encode as Avro and append.
    Produce(produce::ProduceArgs),
    /// Print a topic's records as JSON lines (envelope + payload + offsets).
    Tail(tail::TailArgs),
    /// List the event schemas and their fingerprints.
    Schemas(schemas::SchemasArgs),
    /// The main job: engine + simulated fleet + workflow generator on the
    /// embedded log, with live progress and a summary.
    Demo(demo::DemoArgs),
    /// Run the engine until Ctrl-C.
    Run(run::RunArgs),
    /// Validate a workflow definition locally and submit it.
    Submit(submit::SubmitArgs),
    /// Show a workflow or the fleet from the projection stores.
    Inspect(inspect::InspectArgs),
    /// Measure codec and embedded-log throughput in one run (JSON with --json).
    Bench(bench::BenchArgs),
    /// Fold the journal into a fresh projection store; --verify compares it
    /// with the engine's store.
    Replay(replay::ReplayArgs),
    /// The full story of a workflow (or an agent): every event in order,
    /// who wrote it, what caused what, attempts, retries, hand-offs.
    Audit(audit::AuditArgs),
    /// Fleet report: summary, per-pool/agent/step-kind tables, bottleneck
    /// findings with recommendations, usage and cost (text, json, csv, html).
    Report(report::ReportArgs),
    /// Estimate the duration and cost of a workflow definition from history.
    Estimate(report::EstimateArgs),
    /// Print the configuration in effect (file, then BATON_* variables, then
    /// flags) in the config file's layout, secrets masked.
    Config(config_cmd::ConfigArgs),
    /// Maintain the embedded log: `log repair` contains damage that makes
    /// a partition refuse to open for writing.
    Log(log_cmd::LogArgs),
}

/// A mistake in how the command was called (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// How a command uses memory, for the binary's allocator settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Long-running or interactive: return freed memory promptly.
    Service,
    /// A batch fold of a whole journal (`replay`): allocates and frees in
    /// waves, so keeping freed pages around saves page faults.
    BatchFold,
}

/// Parses arguments, runs the command, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    main_with(|_| {})
}

/// Like [`main`], first telling `tune` what kind of work the command is.
pub fn main_with(tune: impl FnOnce(Workload)) -> ExitCode {
    // The config file turns into environment values before clap reads the
    // command line (see `config`), so it must be found first.
    let loaded = match config_path().map(|p| crate::config::load(&p)) {
        Some(Ok(l)) => l,
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        None => Default::default(),
    };
    for (name, value) in &loaded.env {
        if std::env::var_os(name).is_none() {
            // Single-threaded still: no runtime or other thread exists yet.
            std::env::set_var(name, value);
        }
    }
    let mut cli = Cli::parse();
    cli.global.kafka_base = loaded.kafka;
    cli.global
        .kafka_base
        .extend(crate::config::kafka_from_env());
    tune(match cli.command {
        Command::Replay(_) => Workload::BatchFold,
        _ => Workload::Service,
    });
    if matches!(
        cli.command,
        Command::Tail(_)
            | Command::Schemas(_)
            | Command::Inspect(_)
            | Command::Audit(_)
            | Command::Report(_)
            | Command::Estimate(_)
            | Command::Config(_)
            | Command::Replay(_)
    ) {
        end_quietly_on_closed_pipe();
    }
    crate::telemetry::logging::init(&cli.global.log, cli.global.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            if e.downcast_ref::<UsageError>().is_some() {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Lets a command whose output is the point end the way `cat` does when
/// its reader goes away (`baton tail … | head`): Rust ignores SIGPIPE, so
/// the next print would panic with "failed printing to stdout: Broken
/// pipe". Servers (`run`, `demo`) keep ignoring it. Sockets are unaffected
/// either way: the standard library sends with MSG_NOSIGNAL.
fn end_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: sets one signal's disposition to its default; no handler runs
    // Rust code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Produce(args) => produce::run(&cli.global, args).await,
        Command::Tail(args) => tail::run(&cli.global, args).await,
        Command::Schemas(args) => schemas::run(args),
        Command::Demo(args) => demo::run(&cli.global, args).await,
        Command::Run(args) => run::run(&cli.global, args).await,
        Command::Submit(args) => submit::run(&cli.global, args).await,
        Command::Inspect(args) => inspect::run(&cli.global, args).await,
        Command::Bench(args) => bench::run(&cli.global, args).await,
        Command::Replay(args) => replay::run(&cli.global, args).await,
        Command::Audit(args) => audit::run(&cli.global, args).await,
        Command::Report(args) => report::run(&cli.global, args).await,
        Command::Estimate(args) => report::run_estimate(&cli.global, args).await,
        Command::Config(args) => config_cmd::run(&cli.global, args),
        Command::Log(args) => log_cmd::run(&cli.global, args),
    }
}

/// `--config FILE`, `--config=FILE` or `BATON_CONFIG`.
fn config_path() -> Option<PathBuf> {
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        if a == "--" {
            break;
        }
        if a == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(v) = a.to_str().and_then(|s| s.strip_prefix("--config=")) {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os("BATON_CONFIG").map(PathBuf::from)
}
