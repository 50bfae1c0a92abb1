//! Events as JSON lines, the human interface of `produce` and `tail`.
//!
//! Input shape: the envelope with the payload as a one-key object naming the
//! event type (like Avro's JSON encoding of a union), e.g.
//! `{"payload": {"SubmitWorkflow": {"workflow_id": "wf-1", ...}}}`.
//! Envelope fields may be omitted: `event_id` defaults to a fresh UUID,
//! `occurred_at` to now, `producer` to the CLI's producer name,
//! `correlation_id` to the payload's natural id (workflow or agent id).
//! Unknown fields anywhere are errors, so typos never pass silently.

use serde::Deserialize;

use crate::domain::events::{Envelope, EventId, Payload, Timestamp};

/// An event as a person writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    #[serde(default)]
    pub event_id: Option<EventId>,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub causation_id: Option<EventId>,
    #[serde(default)]
    pub occurred_at: Option<Timestamp>,
    #[serde(default)]
    pub producer: Option<String>,
    pub payload: Payload,
}

/// Why a JSON line is not a valid event.
#[derive(Debug, thiserror::Error)]
pub enum JsonEventError {
    #[error("invalid event JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid event: {0}")]
    Invalid(String),
}

/// Parses one JSON line into an envelope, filling defaults.
pub fn parse_event(
    line: &str,
    now: Timestamp,
    default_producer: &str,
) -> Result<Envelope, JsonEventError> {
    let input: EventInput = serde_json::from_str(line)?;
    let correlation_id = input
        .correlation_id
        .unwrap_or_else(|| input.payload.correlation_id().to_string());
    if correlation_id.is_empty() {
        return Err(JsonEventError::Invalid(format!(
            "{}: correlation id (workflow or agent id) must not be empty",
            input.payload.type_name()
        )));
    }
    let producer = input
        .producer
        .unwrap_or_else(|| default_producer.to_string());
    if producer.is_empty() {
        return Err(JsonEventError::Invalid("producer must not be empty".into()));
    }
    Ok(Envelope {
        event_id: input.event_id.unwrap_or_else(EventId::random),
        correlation_id,
        causation_id: input.causation_id,
        occurred_at: input.occurred_at.unwrap_or(now),
        producer,
        payload: input.payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_defaults_from_the_payload() {
        let e = parse_event(
            r#"{"payload":{"CancelWorkflow":{"workflow_id":"wf-9"}}}"#,
            Timestamp(5),
            "cli",
        )
        .unwrap();
        assert_eq!(e.correlation_id, "wf-9");
        assert_eq!(e.producer, "cli");
        assert_eq!(e.occurred_at, Timestamp(5));
    }

    #[test]
    fn names_the_problem() {
        let cases = [
            (r#"{"payload":{"Nope":{}}}"#, "unknown variant `Nope`"),
            (
                r#"{"payload":{"CancelWorkflow":{}}}"#,
                "missing field `workflow_id`",
            ),
            (
                r#"{"payload":{"CancelWorkflow":{"workflow_id":"w","colour":1}}}"#,
                "unknown field `colour`",
            ),
            (r#"{"payload":"#, "EOF"),
            (
                r#"{"event_id":"not-a-uuid","payload":{"CancelWorkflow":{"workflow_id":"w"}}}"#,
                "invalid UUID",
            ),
        ];
        for (line, want) in cases {
            let err = parse_event(line, Timestamp(0), "cli")
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{line}: {err}");
        }
    }
}
