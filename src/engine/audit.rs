//! The audit story of one correlation id: every journal fact and the
//! ingress events that caused them, in order, with who wrote each, the
//! causation tree, step attempts, retries, agent hand-offs and the outcome.
//! Pure: built from facts already read (see [`super::history`]).
//!
//! The JSON form ([`Audit`], `format: "baton.audit/v1"`) is a stable
//! interface for other tools: fields are only ever added, never renamed or
//! removed, without a new format name. The README documents every field.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::history::JournalFact;
use crate::domain::events::{Envelope, EventId, Payload, Timestamp};

/// The format name of the JSON form.
pub const FORMAT: &str = "baton.audit/v1";

#[derive(Clone, Debug, Serialize)]
pub struct Audit {
    pub format: &'static str,
    pub correlation_id: String,
    pub partition: u32,
    pub outcome: Outcome,
    pub events: Vec<AuditEvent>,
    pub causation: Vec<CauseNode>,
    pub steps: Vec<StepStory>,
    pub retries: Vec<Retry>,
    pub handoffs: Vec<Handoff>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// A workflow's `succeeded`, `failed`, `cancelled`, `timed_out` or
    /// `rejected`; an agent's `deregistered` or `lost`; `in_progress` when
    /// no such fact exists yet (a running workflow, an active agent).
    pub status: &'static str,
    pub reason: Option<String>,
    pub at: Option<Timestamp>,
    /// From the first event to the terminal fact.
    pub duration_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AuditEvent {
    /// `ingress` (an input as produced) or `journal` (a fact).
    pub source: &'static str,
    /// The partition of `offset` (of the ingress or journal topic).
    pub partition: u32,
    pub offset: u64,
    pub time: Timestamp,
    /// Milliseconds since the first event of the story.
    pub since_start_ms: f64,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub producer: String,
    /// `user`, `agent` or `engine`.
    pub producer_kind: &'static str,
    pub event_id: EventId,
    pub causation_id: Option<EventId>,
    pub step: Option<String>,
    pub attempt: Option<i32>,
    pub agent: Option<String>,
    pub summary: String,
}

/// A node of the causation tree: an input (or a timer) and what it caused.
#[derive(Clone, Debug, Serialize)]
pub struct CauseNode {
    pub event_id: EventId,
    /// An event type; `Timer` for a timer firing (it has no event of its
    /// own); `Input` for an input that was not loaded (`audit --agent`).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `ingress`, `journal` or `timer`.
    pub source: &'static str,
    pub offset: Option<u64>,
    pub summary: String,
    pub caused: Vec<CauseNode>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepStory {
    pub step: String,
    pub attempts: Vec<Attempt>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Attempt {
    pub attempt: i32,
    pub agent: Option<String>,
    pub ready_at: Option<Timestamp>,
    pub assigned_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Ready → assigned (0 when assigned the moment it was ready).
    pub wait_ms: Option<f64>,
    /// Assigned → finished.
    pub run_ms: Option<f64>,
    /// `succeeded`, `failed`, `timed_out`, `declined`, `cancelled`,
    /// `requeued` (assigned again elsewhere: its agent was lost), or
    /// `running`.
    pub outcome: &'static str,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Retry {
    pub step: String,
    pub failed_attempt: i32,
    pub next_attempt: i32,
    pub delay_ms: i64,
    pub due_at: Timestamp,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Handoff {
    pub step: String,
    pub attempt: i32,
    pub from_agent: String,
    pub to_agent: String,
    pub at: Timestamp,
    /// How the previous agent's attempt ended.
    pub after: Option<String>,
}

fn ms(from: Timestamp, to: Timestamp) -> f64 {
    (to.as_micros() - from.as_micros()) as f64 / 1000.0
}

fn producer_kind(e: &Envelope) -> &'static str {
    use Payload as P;
    if e.producer
        .starts_with(crate::domain::engine::ENGINE_PRODUCER_PREFIX)
    {
        return "engine";
    }
    match &e.payload {
        P::RegisterAgent(_)
        | P::AgentHeartbeat(_)
        | P::DeregisterAgent(_)
        | P::StepStarted(_)
        | P::StepSucceeded(_)
        | P::StepFailed(_)
        | P::StepDeclined(_) => "agent",
        _ => "user",
    }
}

fn event(
    source: &'static str,
    (partition, offset): (u32, u64),
    e: &Envelope,
    start: Timestamp,
) -> AuditEvent {
    let step = e.payload.step_attempt();
    AuditEvent {
        source,
        partition,
        offset,
        time: e.occurred_at,
        since_start_ms: ms(start, e.occurred_at),
        kind: e.payload.type_name(),
        producer: e.producer.clone(),
        producer_kind: producer_kind(e),
        event_id: e.event_id,
        causation_id: e.causation_id,
        step: step.map(|(s, _)| s.to_string()),
        attempt: step.map(|(_, a)| a),
        agent: e.payload.agent_id().map(str::to_string),
        summary: e.payload.summary(),
    }
}

/// Builds the story from a correlation's facts (journal order) and the
/// ingress events that caused them, keyed by ingress offset.
pub fn build(
    correlation_id: &str,
    partition: u32,
    facts: &[JournalFact],
    inputs: &BTreeMap<u64, Envelope>,
) -> Audit {
    let start = inputs
        .values()
        .map(|e| e.occurred_at)
        .chain(facts.iter().map(|f| f.event.occurred_at))
        .min()
        .unwrap_or_default();
    // Each input goes just before the first fact it caused.
    let mut events = Vec::with_capacity(facts.len() + inputs.len());
    let mut placed = std::collections::HashSet::new();
    for f in facts {
        if let Some(i) = f.ingress_offset {
            if let Some(input) = inputs.get(&i).filter(|_| placed.insert(i)) {
                events.push(event("ingress", (f.partition, i), input, start));
            }
        }
        events.push(event("journal", (f.partition, f.offset), &f.event, start));
    }
    Audit {
        format: FORMAT,
        correlation_id: correlation_id.to_string(),
        partition,
        outcome: outcome(facts, start),
        causation: causation(facts, inputs),
        steps: steps(facts),
        retries: retries(facts),
        handoffs: handoffs(facts),
        events,
    }
}

fn outcome(facts: &[JournalFact], start: Timestamp) -> Outcome {
    use Payload as P;
    for f in facts.iter().rev() {
        let (status, reason) = match &f.event.payload {
            P::WorkflowSucceeded(_) => ("succeeded", None),
            P::WorkflowFailed(e) => ("failed", Some(e.reason.clone())),
            P::WorkflowCancelled(e) => ("cancelled", Some(e.reason.clone())),
            P::WorkflowTimedOut(_) => ("timed_out", Some("deadline passed".to_string())),
            P::WorkflowRejected(e) => ("rejected", Some(format!("{}: {}", e.code, e.message))),
            P::AgentDeregistered(e) => ("deregistered", e.reason.clone()),
            P::AgentLost(_) => ("lost", Some("missed its heartbeats".to_string())),
            _ => continue,
        };
        return Outcome {
            status,
            reason,
            at: Some(f.event.occurred_at),
            duration_ms: Some(ms(start, f.event.occurred_at)),
        };
    }
    Outcome {
        status: "in_progress",
        reason: None,
        at: None,
        duration_ms: None,
    }
}

fn causation(facts: &[JournalFact], inputs: &BTreeMap<u64, Envelope>) -> Vec<CauseNode> {
    // Roots in order of first appearance: inputs, or timers for facts
    // whose cause is no event (timer ids are derived, not stored).
    let by_id: HashMap<EventId, (u64, &Envelope)> =
        inputs.iter().map(|(o, e)| (e.event_id, (*o, e))).collect();
    let fact_ids: std::collections::HashSet<EventId> =
        facts.iter().map(|f| f.event.event_id).collect();
    let mut children: HashMap<EventId, Vec<&JournalFact>> = HashMap::new();
    let mut roots: Vec<EventId> = Vec::new();
    for f in facts {
        let Some(cause) = f.event.causation_id else {
            continue;
        };
        let kids = children.entry(cause).or_default();
        if kids.is_empty() && !fact_ids.contains(&cause) {
            roots.push(cause);
        }
        kids.push(f);
    }
    fn node(
        f: &JournalFact,
        children: &HashMap<EventId, Vec<&JournalFact>>,
        depth: usize,
    ) -> CauseNode {
        CauseNode {
            event_id: f.event.event_id,
            kind: f.event.payload.type_name(),
            source: "journal",
            offset: Some(f.offset),
            summary: f.event.payload.summary(),
            caused: if depth > 32 {
                Vec::new()
            } else {
                expand(f.event.event_id, children, depth + 1)
            },
        }
    }
    fn expand(
        id: EventId,
        children: &HashMap<EventId, Vec<&JournalFact>>,
        depth: usize,
    ) -> Vec<CauseNode> {
        children
            .get(&id)
            .map(|kids| kids.iter().map(|f| node(f, children, depth)).collect())
            .unwrap_or_default()
    }
    roots
        .into_iter()
        .map(|id| match by_id.get(&id) {
            Some((o, e)) => CauseNode {
                event_id: id,
                kind: e.payload.type_name(),
                source: "ingress",
                offset: Some(*o),
                summary: format!("{} (by {})", e.payload.summary(), e.producer),
                caused: expand(id, &children, 1),
            },
            None => {
                // Not loaded: an input (its facts name its ingress offset)
                // or a timer firing (timer ids are derived, never stored).
                let input_at = children
                    .get(&id)
                    .and_then(|k| k.iter().find_map(|f| f.ingress_offset));
                CauseNode {
                    event_id: id,
                    kind: if input_at.is_some() { "Input" } else { "Timer" },
                    source: if input_at.is_some() {
                        "ingress"
                    } else {
                        "timer"
                    },
                    offset: input_at,
                    summary: if input_at.is_some() {
                        "an input (not loaded)".into()
                    } else {
                        timer_summary(children.get(&id).and_then(|k| k.first()), facts)
                    },
                    caused: expand(id, &children, 1),
                }
            }
        })
        .collect()
}

/// What a timer was, judged by the first fact it caused (and, for a
/// reassignment, whether that attempt had been assigned before: then its
/// agent was lost and the step requeued).
fn timer_summary(first: Option<&&JournalFact>, facts: &[JournalFact]) -> String {
    use Payload as P;
    let Some(first) = first else {
        return "timer fired".into();
    };
    let reassigned = |step: &str, attempt: i32| {
        facts.iter().any(|f| {
            f.offset < first.offset
                && matches!(&f.event.payload, P::StepAssigned(a) if a.step_id == step && a.attempt == attempt)
        })
    };
    match &first.event.payload {
        P::StepTimedOut(_) => "step timeout fired".into(),
        P::WorkflowTimedOut(_) => "workflow deadline fired".into(),
        P::AgentLost(_) | P::AgentHealthChanged(_) => "heartbeat deadline fired".into(),
        P::StepAssigned(a) if reassigned(&a.step_id, a.attempt) => {
            "heartbeat deadline fired: the agent was lost, its step requeued".into()
        }
        P::StepReady(r) if reassigned(&r.step_id, r.attempt) => {
            "heartbeat deadline fired: the agent was lost, its step requeued".into()
        }
        P::StepReady(_) | P::StepAssigned(_) => "retry due fired".into(),
        _ => "timer fired".into(),
    }
}

fn steps(facts: &[JournalFact]) -> Vec<StepStory> {
    use Payload as P;
    let mut order: Vec<String> = Vec::new();
    // Attempts in the order they began; one attempt number assigned twice
    // (its agent was lost, or declined it) is two entries.
    let mut by_step: HashMap<String, Vec<Attempt>> = HashMap::new();
    for f in facts {
        let Some((step, attempt)) = f.event.payload.step_attempt() else {
            continue;
        };
        if matches!(f.event.payload, P::StepExhausted(_) | P::RetryScheduled(_)) {
            continue;
        }
        if !by_step.contains_key(step) {
            order.push(step.to_string());
        }
        let list = by_step.entry(step.to_string()).or_default();
        let at = f.event.occurred_at;
        let last = list.iter().rposition(|a| a.attempt == attempt);
        let reassigned = matches!(f.event.payload, P::StepAssigned(_))
            && last.is_some_and(|i| list[i].assigned_at.is_some());
        let i = match last {
            Some(i) if !reassigned => i,
            _ => {
                if let Some(prev) = last.map(|i| &mut list[i]) {
                    if prev.outcome == "running" {
                        prev.outcome = "requeued";
                        prev.reason = Some("assigned again: its agent was lost".into());
                        prev.finished_at = Some(at);
                        prev.run_ms = prev.assigned_at.map(|s| ms(s, at));
                    }
                }
                list.push(Attempt {
                    attempt,
                    outcome: "running",
                    ready_at: reassigned.then_some(at),
                    ..Attempt::default()
                });
                list.len() - 1
            }
        };
        let a = &mut list[i];
        let finish = |a: &mut Attempt, outcome, reason: Option<String>| {
            a.finished_at = Some(at);
            a.outcome = outcome;
            a.reason = reason;
            a.run_ms = a.assigned_at.map(|s| ms(s, at));
        };
        match &f.event.payload {
            P::StepReady(_) => a.ready_at = Some(at),
            P::StepAssigned(e) => {
                // No StepReady before it: readied and assigned at once.
                let ready = *a.ready_at.get_or_insert(at);
                a.agent = Some(e.agent_id.clone());
                a.assigned_at = Some(at);
                a.wait_ms = Some(ms(ready, at));
            }
            P::StepStarted(_) => a.started_at = Some(at),
            P::StepSucceeded(_) => finish(a, "succeeded", None),
            P::StepFailed(e) => finish(a, "failed", Some(e.error.clone())),
            P::StepTimedOut(e) => finish(
                a,
                "timed_out",
                Some(format!("no result within {} ms", e.timeout_ms)),
            ),
            P::StepDeclined(e) => finish(a, "declined", Some(e.reason.clone())),
            P::StepRejectedByAgent(e) => finish(a, "declined", Some(e.reason.clone())),
            P::StepCancelled(e) => finish(a, "cancelled", Some(e.reason.clone())),
            _ => {}
        }
    }
    order
        .into_iter()
        .map(|step| {
            let attempts = by_step.remove(&step).unwrap_or_default();
            StepStory { step, attempts }
        })
        .collect()
}

fn retries(facts: &[JournalFact]) -> Vec<Retry> {
    facts
        .iter()
        .filter_map(|f| match &f.event.payload {
            Payload::RetryScheduled(r) => Some(Retry {
                step: r.step_id.clone(),
                failed_attempt: r.attempt,
                next_attempt: r.next_attempt,
                delay_ms: r.delay_ms,
                due_at: r.due_at,
                reason: r.reason.clone(),
            }),
            _ => None,
        })
        .collect()
}

fn handoffs(facts: &[JournalFact]) -> Vec<Handoff> {
    let mut last: HashMap<&str, (&str, Option<String>)> = HashMap::new();
    let mut out = Vec::new();
    for f in facts {
        match &f.event.payload {
            Payload::StepAssigned(a) => {
                if let Some((prev, after)) = last.get(a.step_id.as_str()) {
                    if *prev != a.agent_id {
                        out.push(Handoff {
                            step: a.step_id.clone(),
                            attempt: a.attempt,
                            from_agent: prev.to_string(),
                            to_agent: a.agent_id.clone(),
                            at: f.event.occurred_at,
                            after: after.clone(),
                        });
                    }
                }
                last.insert(&a.step_id, (&a.agent_id, None));
            }
            p => {
                if let (Some((step, _)), Some(_)) = (p.step_attempt(), p.agent_id()) {
                    if let Some(entry) = last.get_mut(step) {
                        entry.1 = Some(p.summary());
                    }
                }
            }
        }
    }
    out
}

/// The story as text: a timeline, the causation tree, attempts, retries,
/// hand-offs and the outcome.
pub fn render_text(a: &Audit) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let o = &a.outcome;
    let _ = writeln!(
        s,
        "{} (partition {}): {}{}{}",
        a.correlation_id,
        a.partition,
        o.status,
        o.duration_ms
            .map(|d| format!(" after {d:.1} ms"))
            .unwrap_or_default(),
        o.reason
            .as_deref()
            .map(|r| format!(" - {r}"))
            .unwrap_or_default()
    );
    let _ = writeln!(s, "\ntimeline ({} events):", a.events.len());
    let _ = writeln!(
        s,
        "  {:<27} {:>9} {:<15} {:<20} {:<22} WHAT",
        "TIME", "+ms", "AT", "TYPE", "BY"
    );
    for e in &a.events {
        let at = format!(
            "{}:{}",
            if e.source == "ingress" {
                "in"
            } else {
                "journal"
            },
            e.offset
        );
        let by = format!("{} {}", e.producer_kind, e.producer);
        let _ = writeln!(
            s,
            "  {:<27} {:>9.1} {:<15} {:<20} {:<22} {}",
            e.time.to_string(),
            e.since_start_ms,
            at,
            e.kind,
            by,
            e.summary
        );
    }
    let _ = writeln!(s, "\ncausation:");
    fn tree(s: &mut String, n: &CauseNode, depth: usize) {
        let at = match (n.source, n.offset) {
            (src, Some(o)) => format!(" [{}:{o}]", if src == "ingress" { "in" } else { "journal" }),
            _ => String::new(),
        };
        let _ = writeln!(s, "  {}{} {}{}", "  ".repeat(depth), n.kind, n.summary, at);
        for c in &n.caused {
            tree(s, c, depth + 1);
        }
    }
    for n in &a.causation {
        tree(&mut s, n, 0);
    }
    if !a.steps.is_empty() {
        let _ = writeln!(s, "\nsteps:");
        for st in &a.steps {
            for at in &st.attempts {
                let _ = writeln!(
                    s,
                    "  {}#{} on {}: {}{}  wait {} ms, run {} ms",
                    st.step,
                    at.attempt,
                    at.agent.as_deref().unwrap_or("-"),
                    at.outcome,
                    at.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default(),
                    at.wait_ms.map_or("-".into(), |w| format!("{w:.1}")),
                    at.run_ms.map_or("-".into(), |r| format!("{r:.1}")),
                );
            }
        }
    }
    let _ = writeln!(s, "\nretries: {}", a.retries.len());
    for r in &a.retries {
        let _ = writeln!(
            s,
            "  {} attempt {} -> {} after {} ms: {}",
            r.step, r.failed_attempt, r.next_attempt, r.delay_ms, r.reason
        );
    }
    let _ = writeln!(s, "hand-offs: {}", a.handoffs.len());
    for h in &a.handoffs {
        let _ = writeln!(
            s,
            "  {} attempt {}: {} -> {}{}",
            h.step,
            h.attempt,
            h.from_agent,
            h.to_agent,
            h.after
                .as_deref()
                .map(|x| format!(" (after: {x})"))
                .unwrap_or_default()
        );
    }
    s
}
