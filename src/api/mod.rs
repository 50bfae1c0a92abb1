//! The read-only HTTP API (axum): `/metrics`, `/healthz`, `/readyz`,
//! `/v1/...` queries over the projection stores and the journal, and the
//! OpenAPI document at `/openapi.json`.
//!
//! Invariants: only GET (HEAD follows GET); nothing here writes to the log
//! or creates a store (a partition without a store on disk reads as empty
//! or 404); every answer, errors included, is JSON with a documented shape
//! (`/metrics` excepted: Prometheus text), and bad input is a 4xx, never a
//! 500 (see [`error`]); sled reads run on the blocking pool. Answers from
//! the stores reflect each partition's last checkpoint (the engine flushes
//! every 500 ms by default), so they may trail the journal by that much.
//!
//! Layout: [`shapes`] (the JSON types), [`error`] (errors and extractors),
//! [`probes`], [`workflows`], [`fleet`] (agents, bottlenecks), [`audit`],
//! [`openapi`] (the generated document).

pub mod audit;
pub mod error;
pub mod fleet;
pub mod limits;
pub mod openapi;
pub mod probes;
pub mod shapes;
pub mod workflows;

use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;

use crate::codec::Codec;
use crate::engine::live::Live;
use crate::log::EventLog;
use crate::telemetry::Telemetry;
use crate::topics::Topics;

/// Everything the handlers read. Cheap to clone.
#[derive(Clone)]
pub struct ApiContext {
    /// Where the partition stores live (`<data_dir>/store/p-N`).
    pub data_dir: PathBuf,
    pub topics: Topics,
    /// The log (embedded or Kafka), for audit reads of the journal and ingress.
    pub log: Arc<dyn EventLog>,
    pub codec: Codec,
    /// Ingress partition count.
    pub partitions: u32,
    /// Owned partitions and their progress (`/readyz`); `None` in a process
    /// that runs no engine (e.g. `demo --no-engine`): then always ready.
    pub live: Option<Arc<Live>>,
    /// `/readyz` fails while any owned partition is more than this many
    /// records behind its ingress end.
    pub ready_max_lag: u64,
    /// Renders `/metrics`.
    pub telemetry: Telemetry,
}

impl ApiContext {
    /// The partitions whose stores this process answers for: those its
    /// engine runs (another instance's partitions may be stale here, or
    /// absent), or all of them in a process without an engine.
    pub fn readable(&self) -> Vec<u32> {
        match &self.live {
            Some(live) => live.owned().into_iter().map(|(p, _)| p).collect(),
            None => (0..self.partitions).collect(),
        }
    }

    /// 404 unless this process answers for partition `p` (see [`Self::readable`]).
    pub fn check_readable(&self, what: &str, p: u32) -> Result<(), error::HttpError> {
        if self.readable().contains(&p) {
            return Ok(());
        }
        Err(error::HttpError::NotFound(format!(
            "{what} lives in partition {p}, which this instance does not run now; ask the instance that owns it"
        )))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// The API's routes over `ctx`, with JSON 404 and 405 fallbacks (for
/// [`serve`], and for tests that drive it in-process).
pub fn router(ctx: ApiContext) -> Router {
    Router::new()
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(probes::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/v1/workflows", get(workflows::list_workflows))
        .route("/v1/workflows/{id}", get(workflows::get_workflow))
        .route("/v1/agents", get(fleet::list_agents))
        .route("/v1/agents/{id}", get(fleet::get_agent))
        .route("/v1/bottlenecks", get(fleet::list_bottlenecks))
        .route("/v1/audit/{correlation_id}", get(audit::get_audit))
        .fallback(error::unknown_endpoint)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(ctx)
}

/// Serves the API on `listener` until `shutdown` turns true (or its sender
/// is dropped), within [`limits::HttpLimits::default`]; requests in flight
/// then finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: ApiContext,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ApiError> {
    serve_with(listener, ctx, limits::HttpLimits::default(), shutdown).await
}

/// [`serve`] within `limits` (header-read and request timeouts, in-flight cap).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    ctx: ApiContext,
    limits: limits::HttpLimits,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ApiError> {
    let app = limits::bounded(router(ctx), limits);
    limits::serve_bounded(listener, app, limits, shutdown)
        .await
        .map_err(ApiError::Serve)
}
