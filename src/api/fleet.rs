//! `/v1/agents`, `/v1/agents/{id}` and `/v1/bottlenecks`: the fleet and its
//! active findings, merged over every partition's store by the same
//! functions `baton inspect` uses (`engine::stored`).
//!
//! Invariants: reads only (missing partition stores read as empty); the
//! cost of a request is bounded by the fleet's size and the partition
//! count, never by history (findings need only each partition's
//! bottleneck projection).

use axum::extract::State;
use axum::Json;

use super::error::{blocking, ApiPath, ErrorBody, HttpError};
use super::shapes::{AgentDto, AgentList, BottleneckList, FindingDto};
use super::ApiContext;
use crate::engine::report::{build, Span};
use crate::engine::stored::{fleet, load_states, Load};

/// Every agent, by id.
#[utoipa::path(
    get,
    path = "/v1/agents",
    tag = "fleet",
    responses(
        (status = 200, description = "The fleet as of each partition's last checkpoint, ordered by agent id", body = AgentList),
        (status = 500, description = "A store is corrupt", body = ErrorBody),
        (status = 503, description = "A store cannot be read now", body = ErrorBody),
    )
)]
pub async fn list_agents(State(ctx): State<ApiContext>) -> Result<Json<AgentList>, HttpError> {
    let (dir, partitions) = (ctx.data_dir.clone(), ctx.readable());
    let agents = blocking(move || Ok(fleet(&dir, &partitions)?)).await?;
    Ok(Json(AgentList {
        items: agents.values().map(AgentDto::from).collect(),
    }))
}

/// One agent.
#[utoipa::path(
    get,
    path = "/v1/agents/{id}",
    tag = "fleet",
    params(("id" = String, Path, description = "The agent id")),
    responses(
        (status = 200, description = "The agent, merged over the partitions", body = AgentDto),
        (status = 400, description = "The id does not decode", body = ErrorBody),
        (status = 404, description = "No partition knows this agent", body = ErrorBody),
        (status = 500, description = "A store is corrupt", body = ErrorBody),
        (status = 503, description = "A store cannot be read now", body = ErrorBody),
    )
)]
pub async fn get_agent(
    State(ctx): State<ApiContext>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AgentDto>, HttpError> {
    let (dir, partitions) = (ctx.data_dir.clone(), ctx.readable());
    let agents = blocking(move || Ok(fleet(&dir, &partitions)?)).await?;
    match agents.get(&id) {
        Some(a) => Ok(Json(a.into())),
        None => Err(HttpError::NotFound(format!("no agent `{id}`"))),
    }
}

/// Active bottleneck findings, most severe first.
#[utoipa::path(
    get,
    path = "/v1/bottlenecks",
    tag = "fleet",
    responses(
        (status = 200, description = "Active findings merged over the partitions, most severe first (as `baton inspect bottlenecks --json`)", body = BottleneckList),
        (status = 500, description = "A store is corrupt", body = ErrorBody),
        (status = 503, description = "A store cannot be read now", body = ErrorBody),
    )
)]
pub async fn list_bottlenecks(
    State(ctx): State<ApiContext>,
) -> Result<Json<BottleneckList>, HttpError> {
    let (dir, partitions) = (ctx.data_dir.clone(), ctx.readable());
    // Merging the projections' histograms is CPU work: off the workers too.
    let list = blocking(move || {
        let states = load_states(&dir, &partitions, Load::Findings)?;
        let report = build(&states, Span::Short);
        Ok(BottleneckList {
            at: report.at,
            items: report.findings.iter().map(FindingDto::from).collect(),
        })
    })
    .await?;
    Ok(Json(list))
}
