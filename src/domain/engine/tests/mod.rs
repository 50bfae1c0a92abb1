//! Given/when/then specs for the partition decider: every rule of the
//! workflow and agent lifecycle, each rejection reason and each backoff
//! formula, plus "replaying the emitted facts rebuilds the same state".

use std::collections::BTreeMap;

use super::*;
use crate::domain::events::*;

const T0: i64 = 1_800_000_000_000_000;

pub(super) fn secs(s: f64) -> Timestamp {
    Timestamp(T0 + (s * 1_000_000.0) as i64)
}

/// A small given/when/then harness over one partition.
pub(super) struct Spec {
    pub(super) state: PartitionState,
    pub(super) journal: Vec<Fact>,
    n: u128,
}

impl Spec {
    pub(super) fn new() -> Self {
        Spec::with(EngineConfig::default())
    }

    pub(super) fn with(config: EngineConfig) -> Self {
        Spec {
            state: PartitionState::new(config),
            journal: Vec::new(),
            n: 0,
        }
    }

    pub(super) fn input(&mut self, payload: impl Into<Payload>) -> Envelope {
        self.n += 1;
        let payload = payload.into();
        Envelope {
            event_id: EventId(uuid::Uuid::from_u128(self.n)),
            correlation_id: payload.correlation_id().to_string(),
            causation_id: None,
            occurred_at: Timestamp(0),
            producer: "test".into(),
            payload,
        }
    }

    /// Decides an input that must be accepted.
    fn accept(&mut self, at: f64, e: &Envelope) {
        let facts = self
            .state
            .decide(e, secs(at))
            .unwrap_or_else(|r| panic!("given input rejected: {r}"));
        self.journal.extend(facts);
    }

    /// Given: inputs already accepted.
    pub(super) fn given(mut self, at: f64, inputs: Vec<Payload>) -> Self {
        for p in inputs {
            let e = self.input(p);
            self.accept(at, &e);
        }
        self
    }

    /// Given: an input the agent's home partition (2) forwarded.
    pub(super) fn forwarded(mut self, at: f64, payload: impl Into<Payload>) -> Self {
        let mut e = self.input(payload);
        e.producer = engine_producer(2);
        self.accept(at, &e);
        self
    }

    /// When: one input; returns the fact type names (or the rejection).
    pub(super) fn when(
        &mut self,
        at: f64,
        payload: impl Into<Payload>,
    ) -> Result<Vec<Fact>, Rejection> {
        let e = self.input(payload);
        let facts = self.state.decide(&e, secs(at))?;
        self.journal.extend(facts.clone());
        Ok(facts)
    }

    pub(super) fn tick(&mut self, at: f64) -> Vec<Fact> {
        let facts = self.state.tick(secs(at));
        self.journal.extend(facts.clone());
        facts
    }

    /// A tick of an engine that has read its ingress only up to `heard`.
    pub(super) fn tick_heard(&mut self, at: f64, heard: f64) -> Vec<Fact> {
        let facts = self.state.tick_heard(secs(at), secs(heard));
        self.journal.extend(facts.clone());
        facts
    }
}

pub(super) fn names(facts: &[Fact]) -> Vec<&'static str> {
    facts.iter().map(|f| f.payload.type_name()).collect()
}

pub(super) fn step(id: &str, deps: &[&str]) -> StepDefinition {
    StepDefinition {
        capabilities: vec!["llm".into()],
        ..StepDefinition::new(id, deps)
    }
}

pub(super) fn submit(id: &str, steps: Vec<StepDefinition>) -> Payload {
    SubmitWorkflow {
        workflow_id: id.into(),
        definition: WorkflowDefinition {
            name: "t".into(),
            steps: steps.into(),
            input: None,
            deadline_ms: None,
            priority: 0,
            labels: BTreeMap::new(),
        },
    }
    .into()
}

pub(super) fn agent(id: &str, caps: &[&str], capacity: i32) -> Payload {
    RegisterAgent {
        agent_id: id.into(),
        pool: "default".into(),
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        capacity,
        weight: 1,
        labels: BTreeMap::new(),
        heartbeat_interval_ms: 600_000,
    }
    .into()
}

pub(super) fn agent_hb(id: &str, interval_ms: i64) -> Payload {
    let Payload::RegisterAgent(mut r) = agent(id, &["llm"], 1) else {
        unreachable!()
    };
    r.heartbeat_interval_ms = interval_ms;
    r.into()
}

pub(super) fn ok(wf: &str, s: &str, attempt: i32, agent: &str) -> Payload {
    StepSucceeded {
        workflow_id: wf.into(),
        step_id: s.into(),
        attempt,
        agent_id: agent.into(),
        output: Some(JsonText(r#"{"ok":true}"#.into())),
        usage: Usage {
            tokens_in: 10,
            tokens_out: 5,
            cost: 0.5,
        },
    }
    .into()
}

pub(super) fn fail(wf: &str, s: &str, attempt: i32, agent: &str) -> Payload {
    StepFailed {
        workflow_id: wf.into(),
        step_id: s.into(),
        attempt,
        agent_id: agent.into(),
        error: "boom".into(),
        retryable: true,
    }
    .into()
}

mod agents;
mod bottlenecks;
mod extremes;
mod workflows;
