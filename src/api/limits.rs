//! The HTTP server's bounds: an accept loop that gives every connection a
//! header-read timeout (slowloris and half-sent requests are closed), a
//! cap on requests in flight (over it: `503` with `Retry-After` and a JSON
//! body, answered at once, never queued) and a per-request timeout.
//!
//! Why: unbounded API work starved the engine (memory, blocking pool,
//! heartbeats). Invariants: a shed or timed-out request costs no store
//! read; every answer, shed ones included, is JSON.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{watch, Semaphore};

use super::error::ErrorBody;

/// The limits, from `--http-*` options (see `cli::serve`).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Requests handled at once; more are shed with 503.
    pub max_in_flight: usize,
    /// A request that has not sent its whole header block by then has its
    /// connection closed.
    pub header_timeout: Duration,
    /// A request not answered by then gets 503.
    pub request_timeout: Duration,
    /// Seconds advertised in `Retry-After`.
    pub retry_after_secs: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_in_flight: 64,
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            retry_after_secs: 1,
        }
    }
}

#[derive(Clone)]
struct Gate {
    permits: Arc<Semaphore>,
    limits: HttpLimits,
}

fn unavailable(code: &str, message: String, retry_after: u64) -> Response {
    let body = ErrorBody {
        code: code.to_string(),
        message,
    };
    let mut resp = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

async fn gate(State(g): State<Gate>, req: Request, next: Next) -> Response {
    let Ok(_permit) = g.permits.clone().try_acquire_owned() else {
        return unavailable(
            "overloaded",
            format!(
                "more than {} requests in flight; retry later",
                g.limits.max_in_flight
            ),
            g.limits.retry_after_secs,
        );
    };
    match tokio::time::timeout(g.limits.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => unavailable(
            "timeout",
            format!(
                "the request took longer than {} ms",
                g.limits.request_timeout.as_millis()
            ),
            g.limits.retry_after_secs,
        ),
    }
}

/// `app` behind the in-flight cap and the request timeout.
pub fn bounded(app: Router, limits: HttpLimits) -> Router {
    let g = Gate {
        permits: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
        limits,
    };
    app.layer(axum::middleware::from_fn_with_state(g, gate))
}

/// Accepts on `listener` until `shutdown` turns true (or its sender is
/// dropped), serving HTTP/1.1 with the header-read timeout; connections
/// are then asked to finish their request in flight and close.
pub async fn serve_bounded(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: HttpLimits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (close_tx, close_rx) = watch::channel(());
    loop {
        if *shutdown.borrow_and_update() {
            break;
        }
        let accepted = tokio::select! {
            r = listener.accept() => r,
            changed = shutdown.changed() => {
                if changed.is_err() { break; }
                continue;
            }
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors and the like: back off, keep serving.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(app.clone());
        let mut close = close_rx.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r { tracing::trace!(error = %e, "connection ended"); }
                    return;
                }
                _ = close.changed() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(close_tx);
    Ok(())
}
