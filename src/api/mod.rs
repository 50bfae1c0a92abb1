//! The read-only HTTP API (axum): `/metrics`, `/healthz`, `/readyz`,
//! `/v1/...` queries over the projection stores and the journal, and the
//! OpenAPI document at `/openapi.json`.
//!
//! (Being built: handlers, shapes and the OpenAPI document.)

use std::path::PathBuf;
use std::sync::Arc;

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

/// Serves the API on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: ApiContext,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ApiError> {
    let _ = (&listener, &ctx);
    let _ = shutdown.changed().await;
    Ok(())
}
