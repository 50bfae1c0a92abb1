//! Options and start-up of what `baton run` and `baton demo` serve next to
//! the engine: the HTTP API (`/metrics`, `/healthz`, `/readyz`, `/v1/...`)
//! and the metric switches.
//!
//! The API binds 127.0.0.1:9464 unless told otherwise. `run` fails when it
//! cannot bind (an operator asked for it); `demo` on the default address
//! only warns, so a second demo on one machine still runs.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, ApiContext};
use crate::engine::Engine;
use crate::telemetry::gauges::AgentLabels;
use crate::telemetry::Telemetry;

pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9464";

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Serve the read-only HTTP API (/metrics, /healthz, /readyz, /v1/...)
    /// on HOST:PORT. [default: 127.0.0.1:9464]
    #[arg(long, env = "BATON_HTTP_ADDR", value_name = "HOST:PORT")]
    pub http_addr: Option<SocketAddr>,
    /// Serve no HTTP API.
    #[arg(long, env = "BATON_HTTP_DISABLED")]
    pub no_http: bool,
    /// /readyz fails while an owned partition is more than this many
    /// ingress records behind.
    #[arg(long, env = "BATON_HTTP_READY_MAX_LAG", default_value_t = 1000)]
    pub ready_max_lag: u64,
    /// At most this many HTTP requests are handled at once; more get 503
    /// with Retry-After (load shedding keeps the engine's share).
    #[arg(long, env = "BATON_HTTP_MAX_IN_FLIGHT", default_value_t = 64)]
    pub http_max_in_flight: usize,
    /// A connection that has not sent a request's headers within this many
    /// milliseconds is closed (slowloris, half-sent requests).
    #[arg(long, env = "BATON_HTTP_HEADER_TIMEOUT_MS", default_value_t = 5000)]
    pub http_header_timeout_ms: u64,
    /// A request not answered within this many milliseconds gets 503.
    #[arg(long, env = "BATON_HTTP_REQUEST_TIMEOUT_MS", default_value_t = 10000)]
    pub http_request_timeout_ms: u64,
    /// Export per-agent series (baton_agent_*_steps{agent}); off by default
    /// because agent ids are unbounded.
    #[arg(long, env = "BATON_METRICS_PER_AGENT_LABELS")]
    pub per_agent_metrics: bool,
    /// At most this many agents (in id order) get per-agent series.
    #[arg(long, env = "BATON_METRICS_AGENT_LABEL_CAP", default_value_t = 100)]
    pub agent_label_cap: usize,
}

impl ServeArgs {
    pub fn http_limits(&self) -> api::limits::HttpLimits {
        api::limits::HttpLimits {
            max_in_flight: self.http_max_in_flight.max(1),
            header_timeout: std::time::Duration::from_millis(self.http_header_timeout_ms.max(1)),
            request_timeout: std::time::Duration::from_millis(self.http_request_timeout_ms.max(1)),
            retry_after_secs: 1,
        }
    }

    pub fn agent_labels(&self) -> AgentLabels {
        AgentLabels {
            enabled: self.per_agent_metrics,
            cap: self.agent_label_cap,
        }
    }
}

/// Binds and spawns the HTTP API (unless `--no-http`). `with_engine`:
/// whether this process runs partition loops (readiness follows them).
pub async fn start_http(
    args: &ServeArgs,
    engine: &Arc<Engine>,
    telemetry: Telemetry,
    with_engine: bool,
    strict: bool,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<(SocketAddr, JoinHandle<()>)>> {
    if args.no_http {
        return Ok(None);
    }
    let (addr, explicit) = match args.http_addr {
        Some(a) => (a, true),
        None => (DEFAULT_HTTP_ADDR.parse()?, false),
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) if !strict && !explicit => {
            tracing::warn!(addr = %addr, error = %e, "HTTP API not served: cannot listen on the default address (use --http-addr)");
            return Ok(None);
        }
        Err(e) => {
            return Err(anyhow::anyhow!(
                "cannot serve the HTTP API on {addr}: {e} (choose another with --http-addr or BATON_HTTP_ADDR, or --no-http)"
            ))
        }
    };
    let bound = listener.local_addr()?;
    let partitions = engine.log.partition_count(&engine.topics.ingress()).await?;
    let ctx = ApiContext {
        data_dir: engine.options.data_dir.clone(),
        topics: engine.topics.clone(),
        log: engine.log.clone(),
        codec: engine.codec.clone(),
        partitions,
        live: with_engine.then(|| engine.live.clone()),
        ready_max_lag: args.ready_max_lag,
        telemetry,
    };
    let limits = args.http_limits();
    let handle = spawn_isolated(listener.into_std()?, ctx, limits, stop)?;
    tracing::info!(addr = %bound, "HTTP API listening");
    Ok(Some((bound, handle)))
}

/// Blocking-pool threads of the HTTP runtime: caps the sled and journal
/// reads the API can run at once.
const HTTP_BLOCKING_THREADS: usize = 8;

/// Runs the API on its own runtime (2 workers, a bounded blocking pool) on
/// its own threads, so HTTP load cannot take the engine's workers, timers
/// or blocking pool (partition loops, heartbeats, store flushes). The
/// returned handle finishes when the server has stopped.
fn spawn_isolated(
    listener: std::net::TcpListener,
    ctx: ApiContext,
    limits: api::limits::HttpLimits,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(HTTP_BLOCKING_THREADS)
        .thread_name("baton-http")
        .enable_all()
        .build()?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("baton-http-main".into())
        .spawn(move || {
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        if let Err(e) = api::serve_with(l, ctx, limits, stop).await {
                            tracing::error!(error = %e, "HTTP API stopped");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "HTTP API not served"),
                }
            });
            // Connections still draining are dropped with the runtime.
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
            let _ = done_tx.send(());
        })?;
    Ok(tokio::spawn(async move {
        let _ = done_rx.await;
    }))
}
