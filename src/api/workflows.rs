//! `/v1/workflows/{id}` and `/v1/workflows`: workflows as their partition's
//! projection store holds them.
//!
//! Invariants: answers reflect each partition's last checkpoint (the engine
//! flushes every 500 ms by default), not facts decided since; a list request
//! deserialises at most [`SCAN_BUDGET`] store entries, however selective
//! its filter, and resumes exactly where the previous page stopped; every
//! string matching the documented cursor pattern is a valid cursor (so a
//! well-formed request is never a 400), anything else is a 400.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{blocking, ApiPath, ApiQuery, ErrorBody, HttpError};
use super::shapes::{WorkflowDto, WorkflowPage, WorkflowStatusDto, WorkflowSummary};
use super::ApiContext;
use crate::domain::events::WorkflowStatus;
use crate::log::partition_for_key;
use crate::store::ProjectionStore;

/// Default and largest page size.
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;
/// Store entries one list request may look at before it answers with what
/// it has and a cursor.
pub const SCAN_BUDGET: usize = 10_000;
/// The cursor's shape: a partition, then optionally `-` and the hex bytes
/// of the last workflow id looked at.
pub const CURSOR_PATTERN: &str = "^[0-9]{1,9}(-([0-9a-f]{2})*)?$";

/// Query of `GET /v1/workflows`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only workflows in this state.
    #[param(inline, nullable = false)]
    pub status: Option<WorkflowStatusDto>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100, nullable = false)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (opaque).
    #[param(pattern = "^[0-9]{1,9}(-([0-9a-f]{2})*)?$", nullable = false)]
    pub cursor: Option<String>,
}

/// Where a page starts: after id bytes `after` of `partition` (at its
/// first workflow when `None`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    pub partition: u32,
    pub after: Option<Vec<u8>>,
}

impl Cursor {
    pub fn encode(&self) -> String {
        match &self.after {
            None => self.partition.to_string(),
            Some(id) => {
                let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
                format!("{}-{hex}", self.partition)
            }
        }
    }

    /// Parses [`Cursor::encode`]'s form (see [`CURSOR_PATTERN`]).
    pub fn decode(s: &str) -> Result<Cursor, HttpError> {
        let bad = || {
            HttpError::InvalidParameter(format!(
                "cursor `{s}` is not one this API returned (pass `next_cursor` unchanged)"
            ))
        };
        let (p, hex) = match s.split_once('-') {
            Some((p, hex)) => (p, Some(hex)),
            None => (s, None),
        };
        if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let partition = p.parse().map_err(|_| bad())?;
        let after = match hex {
            None => None,
            Some(h) => {
                let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
                if h.len() % 2 != 0 || !h.bytes().all(lower_hex) {
                    return Err(bad());
                }
                let bytes = (0..h.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&h[i..i + 2], 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .map_err(|_| bad())?;
                Some(bytes)
            }
        };
        Ok(Cursor { partition, after })
    }
}

/// A workflow as its partition's store holds it.
#[utoipa::path(
    get,
    path = "/v1/workflows/{id}",
    tag = "workflows",
    params(("id" = String, Path, description = "The workflow id")),
    responses(
        (status = 200, description = "The workflow as of its partition's last checkpoint (at most the engine's flush interval, 500 ms by default, behind)", body = WorkflowDto),
        (status = 400, description = "The id does not decode", body = ErrorBody),
        (status = 404, description = "No such workflow in its partition's store (unknown, or not checkpointed yet)", body = ErrorBody),
        (status = 500, description = "The store is corrupt", body = ErrorBody),
        (status = 503, description = "The store cannot be read now (held by another process, or of another format)", body = ErrorBody),
    )
)]
pub async fn get_workflow(
    State(ctx): State<ApiContext>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<WorkflowDto>, HttpError> {
    let p = partition_for_key(id.as_bytes(), ctx.partitions);
    ctx.check_readable(&format!("workflow `{id}`"), p)?;
    let dir = ctx.data_dir.clone();
    let key = id.clone();
    let wf = blocking(move || match ProjectionStore::open_existing(&dir, p)? {
        Some(store) => Ok(store.workflow(&key)?),
        None => Ok(None),
    })
    .await?;
    match wf {
        Some(wf) => Ok(Json(WorkflowDto::new(p, &wf))),
        None => Err(HttpError::NotFound(format!(
            "no workflow `{id}` in partition {p} (unknown, or not checkpointed yet)"
        ))),
    }
}

/// Workflows, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/workflows",
    tag = "workflows",
    params(ListParams),
    responses(
        (status = 200, description = "One page, ordered by partition then workflow id, as of each partition's last checkpoint", body = WorkflowPage),
        (status = 400, description = "A malformed or out-of-range parameter", body = ErrorBody),
        (status = 500, description = "A store is corrupt", body = ErrorBody),
        (status = 503, description = "A store cannot be read now", body = ErrorBody),
    )
)]
pub async fn list_workflows(
    State(ctx): State<ApiContext>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<WorkflowPage>, HttpError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(HttpError::InvalidParameter(format!(
            "limit {limit} is outside 1..={MAX_LIMIT}"
        )));
    }
    let cursor = match &q.cursor {
        Some(c) => Cursor::decode(c)?,
        None => Cursor::default(),
    };
    let status = q.status.map(WorkflowStatus::from);
    let (dir, partitions) = (ctx.data_dir.clone(), ctx.readable());
    let page = blocking(move || {
        page(
            &dir,
            &partitions,
            cursor,
            limit as usize,
            SCAN_BUDGET,
            status,
        )
    })
    .await?;
    Ok(Json(page))
}

/// One page from `cursor`: at most `limit` items, at most `budget` entries
/// looked at.
pub fn page(
    data_dir: &std::path::Path,
    partitions: &[u32],
    cursor: Cursor,
    limit: usize,
    mut budget: usize,
    status: Option<WorkflowStatus>,
) -> Result<WorkflowPage, HttpError> {
    let mut items = Vec::new();
    let Cursor {
        partition: mut p,
        mut after,
    } = cursor;
    // The cursor names a partition: resume inside it, or at the next one
    // this process reads.
    let start = p;
    for &q in partitions.iter().filter(|&&q| q >= start) {
        if q != p {
            p = q;
            after = None;
        }
        if items.len() >= limit || budget == 0 {
            let next = Cursor {
                partition: p,
                after,
            };
            return Ok(WorkflowPage {
                items,
                next_cursor: Some(next.encode()),
            });
        }
        if let Some(store) = ProjectionStore::open_existing(data_dir, p)? {
            let scan = store.workflow_scan(after.as_deref(), limit - items.len(), budget, |w| {
                status.is_none_or(|s| w.status == s)
            })?;
            budget = budget.saturating_sub(scan.scanned);
            items.extend(scan.items.iter().map(|w| WorkflowSummary::new(p, w)));
            if let Some(resume) = scan.resume_after {
                let next = Cursor {
                    partition: p,
                    after: Some(resume),
                };
                return Ok(WorkflowPage {
                    items,
                    next_cursor: Some(next.encode()),
                });
            }
        }
    }
    Ok(WorkflowPage {
        items,
        next_cursor: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_matches_its_documented_pattern() {
        for c in [
            Cursor::default(),
            Cursor {
                partition: 7,
                after: Some(b"wf-1/x:y".to_vec()),
            },
            Cursor {
                partition: 3,
                after: Some(vec![0, 255, 16]),
            },
        ] {
            let text = c.encode();
            assert_eq!(Cursor::decode(&text).unwrap(), c, "{text}");
        }
        assert_eq!(Cursor::default().encode(), "0");
        assert_eq!(CURSOR_PATTERN, "^[0-9]{1,9}(-([0-9a-f]{2})*)?$");
    }

    #[test]
    fn a_malformed_cursor_is_a_bad_parameter() {
        for bad in [
            "",
            "-",
            "x",
            "1-a",
            "1-AB",
            "1-zz",
            "1234567890",
            "+1",
            " 1",
            "1 ",
            "1-ab\n",
        ] {
            assert!(
                matches!(Cursor::decode(bad), Err(HttpError::InvalidParameter(_))),
                "{bad:?}"
            );
        }
    }
}
