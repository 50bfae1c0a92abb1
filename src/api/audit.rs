//! `/v1/audit/{correlation_id}`: a workflow's (or an agent's lifecycle's)
//! whole story, the same `baton.audit/v1` document `baton audit <id>
//! --format json` prints, read through the correlation index plus the
//! journal tail beyond the partition's checkpoint.
//!
//! Invariants: the shapes here mirror `engine::audit` field for field (the
//! README documents them; a test compares this endpoint with the CLI's
//! golden output), so the two interfaces cannot drift apart silently; a
//! partition without a store answers 404 (a read never creates one, and
//! without its index the story would need a scan of the whole journal).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{blocking, ApiPath, ApiQuery, ErrorBody, HttpError};
use super::shapes::time;
use super::ApiContext;
use crate::engine::audit::{self, Audit};
use crate::engine::history::{correlation_facts, inputs_of};
use crate::engine::replay::JournalSource;
use crate::log::partition_for_key;
use crate::store::ProjectionStore;

/// The audit story (`format: "baton.audit/v1"`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AuditDoc {
    /// Always `baton.audit/v1`.
    pub format: String,
    pub correlation_id: String,
    /// The partition of its facts.
    pub partition: u32,
    pub outcome: AuditOutcome,
    /// Every fact and the inputs that caused them, in order.
    pub events: Vec<AuditEventDto>,
    /// Tree roots: inputs (or timer firings) and the decisions each caused.
    pub causation: Vec<CauseNodeDto>,
    pub steps: Vec<StepStoryDto>,
    pub retries: Vec<RetryDto>,
    pub handoffs: Vec<HandoffDto>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AuditOutcome {
    /// `succeeded`, `failed`, `cancelled`, `timed_out`, `rejected`; an
    /// agent's `deregistered` or `lost`; `in_progress`.
    pub status: String,
    pub reason: Option<String>,
    pub at: Option<String>,
    /// From the first event to the terminal fact.
    pub duration_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AuditEventDto {
    /// `ingress` (an input as produced) or `journal` (a fact).
    pub source: String,
    pub partition: u32,
    pub offset: u64,
    pub time: String,
    /// Milliseconds since the first event of the story.
    pub since_start_ms: f64,
    /// The event type, e.g. `StepAssigned`.
    #[serde(rename = "type")]
    pub kind: String,
    pub producer: String,
    /// `user`, `agent` or `engine`.
    pub producer_kind: String,
    pub event_id: String,
    pub causation_id: Option<String>,
    pub step: Option<String>,
    pub attempt: Option<i32>,
    pub agent: Option<String>,
    pub summary: String,
}

/// A node of the causation tree.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CauseNodeDto {
    pub event_id: String,
    /// An event type; `Timer` for a timer firing; `Input` for an input that
    /// was not loaded.
    #[serde(rename = "type")]
    pub kind: String,
    /// `ingress`, `journal` or `timer`.
    pub source: String,
    pub offset: Option<u64>,
    pub summary: String,
    #[schema(no_recursion)]
    pub caused: Vec<CauseNodeDto>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StepStoryDto {
    pub step: String,
    pub attempts: Vec<AttemptDto>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AttemptDto {
    pub attempt: i32,
    pub agent: Option<String>,
    pub ready_at: Option<String>,
    pub assigned_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub wait_ms: Option<f64>,
    pub run_ms: Option<f64>,
    /// `succeeded`, `failed`, `timed_out`, `declined`, `cancelled`,
    /// `requeued` or `running`.
    pub outcome: String,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RetryDto {
    pub step: String,
    pub failed_attempt: i32,
    pub next_attempt: i32,
    pub delay_ms: i64,
    pub due_at: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HandoffDto {
    pub step: String,
    pub attempt: i32,
    pub from_agent: String,
    pub to_agent: String,
    pub at: String,
    /// How the previous agent's attempt ended.
    pub after: Option<String>,
}

fn cause(n: &audit::CauseNode) -> CauseNodeDto {
    CauseNodeDto {
        event_id: n.event_id.to_string(),
        kind: n.kind.to_string(),
        source: n.source.to_string(),
        offset: n.offset,
        summary: n.summary.clone(),
        caused: n.caused.iter().map(cause).collect(),
    }
}

impl From<&Audit> for AuditDoc {
    fn from(a: &Audit) -> Self {
        let events = a.events.iter().map(|e| AuditEventDto {
            source: e.source.to_string(),
            partition: e.partition,
            offset: e.offset,
            time: time(e.time),
            since_start_ms: e.since_start_ms,
            kind: e.kind.to_string(),
            producer: e.producer.clone(),
            producer_kind: e.producer_kind.to_string(),
            event_id: e.event_id.to_string(),
            causation_id: e.causation_id.map(|c| c.to_string()),
            step: e.step.clone(),
            attempt: e.attempt,
            agent: e.agent.clone(),
            summary: e.summary.clone(),
        });
        let steps = a.steps.iter().map(|s| StepStoryDto {
            step: s.step.clone(),
            attempts: s
                .attempts
                .iter()
                .map(|t| AttemptDto {
                    attempt: t.attempt,
                    agent: t.agent.clone(),
                    ready_at: t.ready_at.map(time),
                    assigned_at: t.assigned_at.map(time),
                    started_at: t.started_at.map(time),
                    finished_at: t.finished_at.map(time),
                    wait_ms: t.wait_ms,
                    run_ms: t.run_ms,
                    outcome: t.outcome.to_string(),
                    reason: t.reason.clone(),
                })
                .collect(),
        });
        let retries = a.retries.iter().map(|r| RetryDto {
            step: r.step.clone(),
            failed_attempt: r.failed_attempt,
            next_attempt: r.next_attempt,
            delay_ms: r.delay_ms,
            due_at: time(r.due_at),
            reason: r.reason.clone(),
        });
        let handoffs = a.handoffs.iter().map(|h| HandoffDto {
            step: h.step.clone(),
            attempt: h.attempt,
            from_agent: h.from_agent.clone(),
            to_agent: h.to_agent.clone(),
            at: time(h.at),
            after: h.after.clone(),
        });
        AuditDoc {
            format: a.format.to_string(),
            correlation_id: a.correlation_id.clone(),
            partition: a.partition,
            outcome: AuditOutcome {
                status: a.outcome.status.to_string(),
                reason: a.outcome.reason.clone(),
                at: a.outcome.at.map(time),
                duration_ms: a.outcome.duration_ms,
            },
            events: events.collect(),
            causation: a.causation.iter().map(cause).collect(),
            steps: steps.collect(),
            retries: retries.collect(),
            handoffs: handoffs.collect(),
        }
    }
}

/// How the story is rendered.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditFormat {
    /// The `baton.audit/v1` JSON document.
    #[default]
    Json,
    /// The text `baton audit <id>` prints (indented causation tree).
    Text,
}

/// Query parameters of `/v1/audit/{correlation_id}`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// `json` (default) or `text`.
    #[param(inline)]
    pub format: Option<AuditFormat>,
}

/// The audit story of a correlation id.
#[utoipa::path(
    get,
    path = "/v1/audit/{correlation_id}",
    tag = "audit",
    params(("correlation_id" = String, Path, description = "A workflow id (or an agent id, for its lifecycle)"), AuditQuery),
    responses(
        (status = 200, description = "The story, as `baton audit <id> --format json` prints it (`baton.audit/v1`); with `format=text`, as `baton audit <id>` prints it", content(
            (AuditDoc = "application/json"),
            (String = "text/plain"),
        )),
        (status = 400, description = "The id does not decode", body = ErrorBody),
        (status = 404, description = "Nothing in the journal for this id (or its partition has no store yet)", body = ErrorBody),
        (status = 500, description = "The store or the journal is corrupt", body = ErrorBody),
        (status = 503, description = "The store or the log cannot be read now", body = ErrorBody),
    )
)]
pub async fn get_audit(
    State(ctx): State<ApiContext>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response, HttpError> {
    let p = partition_for_key(id.as_bytes(), ctx.partitions);
    ctx.check_readable(&format!("`{id}`"), p)?;
    let dir = ctx.data_dir.clone();
    let store = blocking(move || Ok(ProjectionStore::open_existing(&dir, p)?)).await?;
    let nothing =
        || HttpError::NotFound(format!("nothing in the journal for `{id}` (partition {p})"));
    let Some(store) = store else {
        return Err(nothing());
    };
    let (journal, ingress) = (ctx.topics.journal(), ctx.topics.ingress());
    let source = JournalSource {
        log: ctx.log.as_ref(),
        codec: &ctx.codec,
        topic: &journal,
    };
    let facts = correlation_facts(&source, p, &store, &id).await?;
    if facts.is_empty() {
        return Err(nothing());
    }
    let inputs = inputs_of(ctx.log.as_ref(), &ctx.codec, &ingress, p, &facts).await?;
    let story = audit::build(&id, p, &facts, &inputs);
    Ok(match q.format.unwrap_or_default() {
        AuditFormat::Json => Json(AuditDoc::from(&story)).into_response(),
        AuditFormat::Text => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            audit::render_text(&story),
        )
            .into_response(),
    })
}
