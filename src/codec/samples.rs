//! Representative events, one per payload type in union order: used by the
//! conformance and property tests, the benches and `baton schemas --samples`.
//! Deterministic (fixed ids and times) so golden bytes stay stable.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::domain::events::*;

/// A fixed instant: 2026-11-22T09:00:00Z.
pub const T0: i64 = 1_795_338_000_000_000;

fn id(n: u128) -> EventId {
    EventId(Uuid::from_u128(
        0x0192_0000_0000_7000_8000_0000_0000_0000 | n,
    ))
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn json(s: &str) -> Option<JsonText> {
    Some(JsonText(s.to_string()))
}

/// A workflow of `n` steps in a chain with a fan-out, each with retry and
/// timeout, as submitted by a user.
pub fn workflow_definition(n: usize) -> WorkflowDefinition {
    let steps = (0..n)
        .map(|i| StepDefinition {
            id: format!("step-{i}"),
            kind: Some(
                if i % 2 == 0 {
                    "code-review"
                } else {
                    "summarize"
                }
                .to_string(),
            ),
            capabilities: vec![
                "llm".into(),
                if i % 2 == 0 {
                    "code-review"
                } else {
                    "summarize"
                }
                .into(),
            ],
            pool: Some("default".into()),
            depends_on: if i == 0 {
                vec![]
            } else {
                vec![format!("step-{}", (i - 1) / 2)]
            },
            timeout_ms: Some(60_000),
            retry: Some(RetryPolicy {
                max_attempts: 3,
                backoff: Backoff::Exponential,
                base_ms: 500,
                max_ms: 10_000,
            }),
            priority: (i % 3) as i32,
            input: json(r#"{"prompt":"review the diff"}"#),
            when: if i == n.saturating_sub(1) && n > 1 {
                Some("steps['step-0'].output.ok == true".into())
            } else {
                None
            },
        })
        .collect();
    WorkflowDefinition {
        name: "pr-review".into(),
        steps,
        input: json(r#"{"repo":"acme/api","pr":42}"#),
        deadline_ms: Some(3_600_000),
        priority: 5,
        labels: labels(&[("team", "platform")]),
    }
}

fn envelope(n: u128, correlation: &str, payload: Payload) -> Envelope {
    Envelope {
        event_id: id(n),
        correlation_id: correlation.into(),
        causation_id: if n % 2 == 0 { Some(id(n - 1)) } else { None },
        occurred_at: Timestamp(T0 + n as i64 * 1_000),
        producer: "baton-engine/0".into(),
        payload,
    }
}

/// A typical StepSucceeded report (the decode benchmark's event).
pub fn step_succeeded() -> Envelope {
    envelope(
        7,
        "wf-000042",
        Payload::StepSucceeded(StepSucceeded {
            workflow_id: "wf-000042".into(),
            step_id: "step-3".into(),
            attempt: 1,
            agent_id: "agent-07".into(),
            output: json(r#"{"ok":true,"score":0.93}"#),
            usage: Usage {
                tokens_in: 1_843,
                tokens_out: 412,
                cost: 0.0127,
            },
        }),
    )
}

/// A SubmitWorkflow with `steps` steps.
pub fn submit_workflow(steps: usize) -> Envelope {
    let mut e = envelope(
        1,
        "wf-000042",
        Payload::SubmitWorkflow(SubmitWorkflow {
            workflow_id: "wf-000042".into(),
            definition: workflow_definition(steps),
        }),
    );
    e.producer = "user:alice".into();
    e
}

/// One sample per payload type, in union order.
pub fn all() -> Vec<Envelope> {
    let wf = || "wf-000042".to_string();
    let step = || "step-3".to_string();
    let agent = || "agent-07".to_string();
    let t = |s: i64| Timestamp(T0 + s * 1_000_000);
    let usage = Usage {
        tokens_in: 10_000,
        tokens_out: 2_000,
        cost: 0.31,
    };
    let payloads: Vec<Payload> = vec![
        submit_workflow(3).payload,
        CancelWorkflow {
            workflow_id: wf(),
            reason: Some("superseded by wf-000043".into()),
        }
        .into(),
        RegisterAgent {
            agent_id: agent(),
            pool: "default".into(),
            capabilities: vec!["llm".into(), "code-review".into()],
            capacity: 4,
            weight: 2,
            labels: labels(&[("model", "large"), ("region", "eu-west-1")]),
            heartbeat_interval_ms: 5_000,
        }
        .into(),
        AgentHeartbeat {
            agent_id: agent(),
            in_flight: 3,
            cpu: Some(0.72),
            memory_bytes: Some(2_147_483_648),
        }
        .into(),
        DeregisterAgent {
            agent_id: agent(),
            reason: None,
        }
        .into(),
        StepStarted {
            workflow_id: wf(),
            step_id: step(),
            attempt: 1,
            agent_id: agent(),
        }
        .into(),
        step_succeeded().payload,
        StepFailed {
            workflow_id: wf(),
            step_id: step(),
            attempt: 2,
            agent_id: agent(),
            error: "rate limited".into(),
            retryable: true,
        }
        .into(),
        StepDeclined {
            workflow_id: wf(),
            step_id: step(),
            attempt: 1,
            agent_id: agent(),
            reason: "at capacity".into(),
        }
        .into(),
        WorkflowAccepted {
            workflow_id: wf(),
            definition: std::sync::Arc::new(workflow_definition(3)),
            deadline_at: Some(t(3600)),
        }
        .into(),
        WorkflowRejected {
            workflow_id: wf(),
            code: "cycle".into(),
            message: "cycle: a -> b -> a".into(),
        }
        .into(),
        WorkflowQueued {
            workflow_id: wf(),
            running: 100,
            limit: 100,
        }
        .into(),
        WorkflowStarted { workflow_id: wf() }.into(),
        StepReady {
            workflow_id: wf(),
            step_id: step(),
            attempt: 1,
            pool: "default".into(),
            priority: 5,
        }
        .into(),
        StepAssigned {
            workflow_id: wf(),
            step_id: step(),
            attempt: 1,
            agent_id: agent(),
            pool: "default".into(),
            strategy: Strategy::LeastConnections,
            kind: "code-review".into(),
            input: json(r#"{"prompt":"review"}"#),
            timeout_at: Some(t(60)),
        }
        .into(),
        StepRejectedByAgent {
            workflow_id: wf(),
            step_id: step(),
            attempt: 1,
            agent_id: agent(),
            reason: "at capacity".into(),
        }
        .into(),
        StepTimedOut {
            workflow_id: wf(),
            step_id: step(),
            attempt: 1,
            agent_id: Some(agent()),
            timeout_ms: 60_000,
        }
        .into(),
        RetryScheduled {
            workflow_id: wf(),
            step_id: step(),
            attempt: 1,
            next_attempt: 2,
            due_at: t(61),
            delay_ms: 1_000,
            reason: "timed out after 60000 ms".into(),
        }
        .into(),
        StepExhausted {
            workflow_id: wf(),
            step_id: step(),
            attempts: 3,
            last_error: "rate limited".into(),
        }
        .into(),
        StepSkipped {
            workflow_id: wf(),
            step_id: step(),
            reason: "condition `input.pr > 100` is false".into(),
        }
        .into(),
        StepCancelled {
            workflow_id: wf(),
            step_id: step(),
            attempt: 1,
            agent_id: Some(agent()),
            reason: "workflow cancelled".into(),
        }
        .into(),
        WorkflowSucceeded {
            workflow_id: wf(),
            usage: usage.clone(),
        }
        .into(),
        WorkflowFailed {
            workflow_id: wf(),
            step_id: Some(step()),
            reason: "step-3 exhausted 3 attempts".into(),
        }
        .into(),
        WorkflowCancelled {
            workflow_id: wf(),
            reason: "superseded".into(),
        }
        .into(),
        WorkflowTimedOut {
            workflow_id: wf(),
            deadline_at: t(3600),
        }
        .into(),
        AgentRegistered {
            agent_id: agent(),
            pool: "default".into(),
            capabilities: vec!["llm".into()],
            capacity: 4,
            weight: 1,
            labels: BTreeMap::new(),
            heartbeat_interval_ms: 5_000,
        }
        .into(),
        AgentDeregistered {
            agent_id: agent(),
            reason: Some("scale-in".into()),
        }
        .into(),
        AgentHealthChanged {
            agent_id: agent(),
            from: AgentHealth::Healthy,
            to: AgentHealth::Degraded,
            reason: "heartbeat 7.5 s late".into(),
        }
        .into(),
        AgentLost {
            agent_id: agent(),
            last_heartbeat_at: t(-30),
            requeued: vec![StepRef {
                workflow_id: wf(),
                step_id: step(),
                attempt: 1,
            }],
        }
        .into(),
        BottleneckDetected {
            key: "saturation/pool/default".into(),
            kind: BottleneckKind::Saturation,
            subject_type: SubjectType::Pool,
            subject: "default".into(),
            severity: 72,
            window_ms: 60_000,
            evidence: [
                ("saturation".to_string(), 0.97),
                ("queue_depth".to_string(), 140.0),
            ]
            .into_iter()
            .collect(),
            recommendation: "add 3 agents to pool `default`".into(),
            first_seen: t(0),
            last_seen: t(60),
        }
        .into(),
        BottleneckResolved {
            key: "saturation/pool/default".into(),
            kind: BottleneckKind::Saturation,
            subject_type: SubjectType::Pool,
            subject: "default".into(),
            peak_severity: 72,
            first_seen: t(0),
            resolved_at: t(600),
        }
        .into(),
        WorkflowStatusChanged {
            workflow_id: wf(),
            status: WorkflowStatus::Succeeded,
            previous: Some(WorkflowStatus::Running),
            reason: None,
            usage,
        }
        .into(),
        DeadLetter {
            source_topic: "baton.ingress".into(),
            source_partition: 3,
            source_offset: 1_234,
            key: Some(Blob(b"wf-000042".to_vec())),
            original: Blob(vec![0xde, 0xad, 0xbe, 0xef]),
            reason_code: "wrong_magic".into(),
            message: "wrong magic [DE, AD]: expected C3 01".into(),
        }
        .into(),
    ];
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let corr = p.correlation_id().to_string();
            envelope(100 + i as u128, &corr, p)
        })
        .collect()
}
