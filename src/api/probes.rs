//! `/healthz`, `/readyz` and `/metrics`: what orchestrators and Prometheus
//! poll.
//!
//! Invariants: none of them touches a store or the log (they must answer
//! while the engine is busy or the log is slow); `/healthz` only says the
//! process serves HTTP; `/readyz` is 200 exactly when this process can
//! serve current data: without an engine (`live` is `None`) always, with
//! one only when it owns at least one partition and every owned partition
//! is recovered and at most `ready_max_lag` records behind. A partition
//! whose loop stopped for good is listed with why, and never ready.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::shapes::{Health, PartitionReadinessDto, Readiness};
use super::ApiContext;

/// The Prometheus text exposition format's content type.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "probes",
    responses((status = 200, description = "The process serves HTTP", body = Health))
)]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Whether this process serves current data.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "probes",
    responses(
        (status = 200, description = "Ready: no engine in this process, or every owned partition is recovered and within the lag limit", body = Readiness),
        (status = 503, description = "Not ready: a partition is recovering or too far behind, or the engine owns no partition yet (e.g. before its consumer group assigned any)", body = Readiness),
    )
)]
pub async fn readyz(State(ctx): State<ApiContext>) -> Response {
    let body = readiness(&ctx);
    let status = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

fn readiness(ctx: &ApiContext) -> Readiness {
    let Some(live) = &ctx.live else {
        return Readiness {
            ready: true,
            reason: "no engine runs in this process".into(),
            partitions: Vec::new(),
        };
    };
    let partitions: Vec<PartitionReadinessDto> = live
        .readiness(ctx.ready_max_lag)
        .into_iter()
        .map(|r| PartitionReadinessDto {
            partition: r.partition,
            recovered: r.recovered,
            lag: r.lag,
            ready: r.ready,
            stopped: r.stopped,
        })
        .collect();
    let waiting: Vec<String> = partitions
        .iter()
        .filter(|r| !r.ready)
        .map(|r| {
            if let Some(why) = &r.stopped {
                why.clone()
            } else if r.recovered {
                format!("partition {} is {} records behind", r.partition, r.lag)
            } else {
                format!("partition {} is recovering", r.partition)
            }
        })
        .collect();
    let (ready, reason) = if partitions.is_empty() {
        // Serving empty answers as current would mislead: wait for an
        // assignment.
        (false, "the engine owns no partition yet".to_string())
    } else if waiting.is_empty() {
        (
            true,
            format!(
                "{} partitions recovered and at most {} records behind",
                partitions.len(),
                ctx.ready_max_lag
            ),
        )
    } else {
        (false, waiting.join("; "))
    };
    Readiness {
        ready,
        reason,
        partitions,
    }
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "probes",
    responses((status = 200, description = "The Prometheus text exposition (version 0.0.4)", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(ctx): State<ApiContext>) -> Response {
    // Inline: rendering reads a few /proc files and formats text, well
    // under a millisecond; not worth a blocking-pool hop per scrape.
    let text = ctx.telemetry.render();
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response()
}
