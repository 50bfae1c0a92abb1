//! `decide` for ingress input and `tick` for the clock: validation first
//! (a [`Rejection`] changes nothing), then facts emitted and evolved one by
//! one. Workflow rules live here; agent rules in `agents.rs`.

use std::hash::{BuildHasher, Hash};
use std::ops::Bound;

use foldhash::HashMap;
use std::sync::Arc;

use super::state::{PartitionState, StepStatus};
use super::timers::TimerKey;
use crate::domain::events::*;
use crate::domain::workflow::{condition, validate};

/// A journal fact: an envelope the engine appends as is.
pub type Fact = Envelope;

/// Why an input is not accepted (it goes to the dead-letter topic).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    pub code: &'static str,
    pub message: String,
}

pub(crate) fn reject(code: &'static str, message: impl Into<String>) -> Rejection {
    let message = message.into();
    Rejection {
        code,
        // Messages quote input (ids, reasons): bounded, so the dead letter
        // that carries one fits the limit.
        message: if message.len() > MAX_TEXT_BYTES {
            bound_text(&message)
        } else {
            message
        },
    }
}

/// The facts of one decision and what caused them.
pub(crate) struct Ctx {
    pub cause: EventId,
    pub now: Timestamp,
    pub n: u32,
    pub out: Vec<Fact>,
    /// Index in `out` of each StepReady of this decision, by a hash of its
    /// step attempt (checked against the fact on a hit).
    readied: HashMap<u64, usize>,
    /// Indices of StepReady facts made redundant by a StepAssigned of the
    /// same decision (see [`Ctx::finish`]).
    elided: Vec<usize>,
}

impl Ctx {
    pub fn new(cause: EventId, now: Timestamp) -> Self {
        Ctx {
            cause,
            now,
            n: 0,
            out: Vec::new(),
            readied: HashMap::default(),
            elided: Vec::new(),
        }
    }

    /// The facts to journal. A step readied and assigned in the same
    /// decision is journalled as its StepAssigned alone: folding a
    /// StepAssigned of a step that is not Ready readies it first (same time,
    /// same attempt), so the state is the same, and the common path costs
    /// one fact less per step. Fact ids keep their numbering (a gap where
    /// the StepReady was), so they stay deterministic.
    pub fn finish(mut self) -> Vec<Fact> {
        if !self.elided.is_empty() {
            self.elided.sort_unstable();
            let mut next = self.elided.iter().peekable();
            let mut i = 0;
            self.out.retain(|_| {
                let drop = next.next_if(|&&e| e == i).is_some();
                i += 1;
                !drop
            });
        }
        self.out
    }
}

/// A within-one-decision key for a step attempt.
fn attempt_key(workflow_id: &str, step_id: &str, attempt: i32) -> u64 {
    static SEED: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x5eed);
    let mut h = SEED.build_hasher();
    (workflow_id, step_id, attempt).hash(&mut h);
    std::hash::Hasher::finish(&h)
}

/// The delay before retrying after failed attempt `attempt` (1-based).
pub fn backoff_ms(policy: &RetryPolicy, attempt: i32) -> i64 {
    let n = attempt.max(1) as i64;
    let raw = match policy.backoff {
        Backoff::Fixed => policy.base_ms,
        Backoff::Linear => policy.base_ms.saturating_mul(n),
        Backoff::Exponential => policy
            .base_ms
            .saturating_mul(1i64.checked_shl((n - 1).min(62) as u32).unwrap_or(i64::MAX)),
    };
    raw.clamp(0, policy.max_ms.max(0))
}

impl PartitionState {
    pub(crate) fn emit(&mut self, ctx: &mut Ctx, payload: impl Into<Payload>) {
        let mut payload = payload.into();
        // Reasons the engine composes may quote input (an expression, an
        // error): bounded, so every fact fits the journal's limit.
        payload.bound_texts();
        let env = Envelope {
            event_id: EventId::derived(&ctx.cause, ctx.n),
            correlation_id: payload.correlation_id().to_string(),
            causation_id: Some(ctx.cause),
            occurred_at: ctx.now,
            producer: self.producer.clone(),
            payload,
        };
        ctx.n += 1;
        self.evolve(&env);
        match &env.payload {
            Payload::StepReady(r) => {
                let key = attempt_key(&r.workflow_id, &r.step_id, r.attempt);
                ctx.readied.insert(key, ctx.out.len());
            }
            Payload::StepAssigned(a) if !ctx.readied.is_empty() => {
                let key = attempt_key(&a.workflow_id, &a.step_id, a.attempt);
                if let Some(&i) = ctx.readied.get(&key) {
                    let same = matches!(&ctx.out[i].payload, Payload::StepReady(r)
                        if r.workflow_id == a.workflow_id && r.step_id == a.step_id && r.attempt == a.attempt);
                    if same {
                        ctx.readied.remove(&key);
                        ctx.elided.push(i);
                    }
                }
            }
            _ => {}
        }
        ctx.out.push(env);
    }

    /// Decides on one ingress event. Duplicates (an `event_id` already
    /// reflected in the journal) yield no facts.
    pub fn decide(&mut self, input: &Envelope, now: Timestamp) -> Result<Vec<Fact>, Rejection> {
        if self.seen(&input.event_id) {
            return Ok(Vec::new());
        }
        super::inputs::check_input(input)?;
        let mut ctx = Ctx::new(input.event_id, now);
        match &input.payload {
            Payload::SubmitWorkflow(s) => self.submit(&mut ctx, s)?,
            Payload::CancelWorkflow(c) => self.cancel(&mut ctx, c)?,
            Payload::RegisterAgent(r) => self.register(&mut ctx, r, &input.producer)?,
            Payload::AgentHeartbeat(h) => self.heartbeat(&mut ctx, h)?,
            Payload::DeregisterAgent(d) => self.deregister(&mut ctx, d)?,
            // Verdicts an agent's home partition forwards (`engine::fanout`).
            Payload::AgentHealthChanged(c) => self.forwarded_health(&mut ctx, c)?,
            Payload::AgentLost(l) => self.forwarded_loss(&mut ctx, l)?,
            Payload::StepStarted(r) => {
                let (_, i) =
                    self.check_report(&r.workflow_id, &r.step_id, r.attempt, &r.agent_id)?;
                let wf = &self.workflows[&r.workflow_id];
                if wf.steps[i].status != StepStatus::Assigned {
                    return Err(reject(
                        "already_started",
                        format!(
                            "step `{}` attempt {} was already started",
                            r.step_id, r.attempt
                        ),
                    ));
                }
                self.emit(&mut ctx, r.clone());
            }
            Payload::StepSucceeded(r) => {
                let (_, i) =
                    self.check_report(&r.workflow_id, &r.step_id, r.attempt, &r.agent_id)?;
                self.emit(&mut ctx, r.clone());
                self.advance(&mut ctx, &r.workflow_id, i);
            }
            Payload::StepFailed(r) => {
                let (_, i) =
                    self.check_report(&r.workflow_id, &r.step_id, r.attempt, &r.agent_id)?;
                self.emit(&mut ctx, r.clone());
                self.after_failure(
                    &mut ctx,
                    &r.workflow_id,
                    i,
                    r.attempt,
                    r.retryable,
                    &r.error,
                );
            }
            Payload::StepDeclined(r) => {
                self.check_report(&r.workflow_id, &r.step_id, r.attempt, &r.agent_id)?;
                self.emit(
                    &mut ctx,
                    StepRejectedByAgent {
                        workflow_id: r.workflow_id.clone(),
                        step_id: r.step_id.clone(),
                        attempt: r.attempt,
                        agent_id: r.agent_id.clone(),
                        reason: r.reason.clone(),
                    },
                );
            }
            other => {
                return Err(reject(
                    "not_ingress",
                    format!(
                        "{} is written by the engine, not accepted on ingress",
                        other.type_name()
                    ),
                ))
            }
        }
        self.admit(&mut ctx);
        self.schedule(&mut ctx);
        Ok(ctx.finish())
    }

    /// Fires every timer due at `now`, then schedules (every report up to
    /// `now` has been read).
    pub fn tick(&mut self, now: Timestamp) -> Vec<Fact> {
        self.tick_heard(now, now)
    }

    /// Fires every timer due at `now`, except timers that judge missing
    /// reports (heartbeats, step timeouts, deadlines) due after
    /// `heard_until`, the time up to which every ingress report is known to
    /// have been read; those wait (the reports may be unread).
    pub fn tick_heard(&mut self, now: Timestamp, heard_until: Timestamp) -> Vec<Fact> {
        let heard_until = heard_until.min(now);
        let mut out = Vec::new();
        // The last held-back timer: the scan continues after it.
        let mut held: Option<(Timestamp, TimerKey)> = None;
        loop {
            let next = match &held {
                None => self.timers.iter().next(),
                Some(h) => self
                    .timers
                    .range((Bound::Excluded(h.clone()), Bound::Unbounded))
                    .next(),
            };
            let Some((due, key)) = next.cloned() else {
                break;
            };
            if due > now {
                break;
            }
            if key.judges_reports() && due > heard_until {
                held = Some((due, key));
                continue;
            }
            self.timers.remove(&(due, key.clone()));
            let at = if key.judges_reports() {
                heard_until
            } else {
                now
            };
            let mut ctx = Ctx::new(key.cause_id(due), at);
            self.fire(&mut ctx, &key, due);
            self.admit(&mut ctx);
            self.schedule(&mut ctx);
            out.extend(ctx.finish());
        }
        if self.evaluation_due(now) {
            out.extend(self.evaluate(now));
        }
        out
    }

    fn fire(&mut self, ctx: &mut Ctx, key: &TimerKey, due: Timestamp) {
        match key {
            TimerKey::StepTimeout {
                workflow_id,
                step,
                attempt,
            } => {
                let Some(wf) = self.workflows.get(workflow_id) else {
                    return;
                };
                let s = &wf.steps[*step];
                if s.attempt != *attempt || !s.status.is_held() || wf.is_terminal() {
                    return;
                }
                let timeout_ms = wf.definition.steps[*step].timeout_ms.unwrap_or(0);
                let fact = StepTimedOut {
                    workflow_id: workflow_id.clone(),
                    step_id: wf.definition.steps[*step].id.clone(),
                    attempt: *attempt,
                    agent_id: s.agent.clone(),
                    timeout_ms,
                };
                self.emit(ctx, fact);
                let reason = format!("timed out after {timeout_ms} ms");
                self.after_failure(ctx, workflow_id, *step, *attempt, true, &reason);
            }
            TimerKey::Retry {
                workflow_id,
                step,
                attempt,
            } => {
                let Some(wf) = self.workflows.get(workflow_id) else {
                    return;
                };
                let s = &wf.steps[*step];
                if s.status != StepStatus::RetryScheduled
                    || s.attempt.saturating_add(1) != *attempt
                    || wf.is_terminal()
                {
                    return;
                }
                let fact = self.ready_fact(workflow_id, *step, *attempt);
                self.emit(ctx, fact);
            }
            TimerKey::Deadline { workflow_id } => {
                let Some(wf) = self.workflows.get(workflow_id) else {
                    return;
                };
                if wf.is_terminal() {
                    return;
                }
                self.cancel_active(ctx, workflow_id, "workflow deadline passed");
                self.emit(
                    ctx,
                    WorkflowTimedOut {
                        workflow_id: workflow_id.clone(),
                        deadline_at: due,
                    },
                );
            }
            TimerKey::Heartbeat { agent_id } => self.heartbeat_due(ctx, agent_id),
        }
    }

    fn submit(&mut self, ctx: &mut Ctx, s: &SubmitWorkflow) -> Result<(), Rejection> {
        // A duplicate id is bad input, not a fact about the existing
        // workflow: it goes to the DLQ and leaves the workflow's status alone.
        if self.workflows.contains_key(&s.workflow_id) {
            return Err(reject(
                "duplicate_workflow",
                format!("workflow `{}` already exists", s.workflow_id),
            ));
        }
        let rejected = |code: &str, message: String| WorkflowRejected {
            workflow_id: s.workflow_id.clone(),
            code: code.to_string(),
            message,
        };
        if s.workflow_id.is_empty() {
            self.emit(ctx, rejected("invalid", "workflow_id is empty".into()));
            return Ok(());
        }
        let checked = validate::check_bounds(&s.definition)
            .and_then(|()| validate(&s.definition, &self.config.limits));
        match checked {
            // Kept for `evolve` of the WorkflowAccepted below, which would
            // otherwise validate the same definition a second time.
            Ok(dag) => self.validated = Some((s.workflow_id.clone(), Arc::new(dag))),
            Err(e) => {
                self.emit(ctx, rejected(e.code(), e.to_string()));
                return Ok(());
            }
        }
        let deadline_at = s
            .definition
            .deadline_ms
            .map(|ms| Timestamp(ctx.now.0.saturating_add(ms.saturating_mul(1000))));
        self.emit(
            ctx,
            WorkflowAccepted {
                workflow_id: s.workflow_id.clone(),
                definition: Arc::new(s.definition.clone()),
                deadline_at,
            },
        );
        if self.running >= self.config.max_running_workflows {
            let fact = WorkflowQueued {
                workflow_id: s.workflow_id.clone(),
                running: self.running as i32,
                limit: self.config.max_running_workflows as i32,
            };
            self.emit(ctx, fact);
        } else {
            self.start(ctx, &s.workflow_id);
        }
        Ok(())
    }

    /// Starts queued workflows while there is room, highest priority first.
    fn admit(&mut self, ctx: &mut Ctx) {
        while self.running < self.config.max_running_workflows {
            let Some((_, _, id)) = self.admission.iter().next().cloned() else {
                break;
            };
            self.start(ctx, &id);
        }
    }

    fn start(&mut self, ctx: &mut Ctx, workflow_id: &str) {
        self.emit(
            ctx,
            WorkflowStarted {
                workflow_id: workflow_id.to_string(),
            },
        );
        let roots: Vec<usize> = match self.workflows.get(workflow_id).and_then(|w| w.dag.clone()) {
            Some(dag) => dag.roots().collect(),
            None => return,
        };
        for i in roots {
            self.ready_or_skip(ctx, workflow_id, i);
        }
        self.complete_if_done(ctx, workflow_id);
    }

    pub(crate) fn ready_fact(&self, workflow_id: &str, i: usize, attempt: i32) -> StepReady {
        let wf = &self.workflows[workflow_id];
        let def = &wf.definition.steps[i];
        StepReady {
            workflow_id: workflow_id.to_string(),
            step_id: def.id.clone(),
            attempt,
            pool: def.pool.clone().unwrap_or_else(|| "default".into()),
            priority: wf.definition.priority.saturating_add(def.priority),
        }
    }

    /// A step whose upstream is satisfied: ready, or skipped by its condition.
    fn ready_or_skip(&mut self, ctx: &mut Ctx, workflow_id: &str, i: usize) {
        let Some(wf) = self.workflows.get(workflow_id) else {
            return;
        };
        // An earlier root's condition error may have failed the workflow.
        if wf.is_terminal() || wf.steps[i].status != StepStatus::Pending {
            return;
        }
        let def = &wf.definition.steps[i];
        if let Some(expr) = def.when.clone() {
            let outputs: Vec<(&str, Option<&JsonText>)> = wf
                .definition
                .steps
                .iter()
                .zip(&wf.steps)
                .map(|(d, s)| (d.id.as_str(), s.output.as_ref()))
                .collect();
            let verdict = condition::evaluate(&expr, wf.definition.input.as_ref(), &outputs);
            let step_id = def.id.clone();
            match verdict {
                Ok(true) => {}
                Ok(false) => {
                    let reason = format!("condition `{expr}` is false");
                    self.emit(
                        ctx,
                        StepSkipped {
                            workflow_id: workflow_id.into(),
                            step_id,
                            reason,
                        },
                    );
                    self.advance(ctx, workflow_id, i);
                    return;
                }
                Err(e) => {
                    let last_error = format!("condition `{expr}` failed: {e}");
                    self.emit(
                        ctx,
                        StepExhausted {
                            workflow_id: workflow_id.into(),
                            step_id: step_id.clone(),
                            attempts: 0,
                            last_error: last_error.clone(),
                        },
                    );
                    self.fail_workflow(ctx, workflow_id, &step_id, &last_error);
                    return;
                }
            }
        }
        let fact = self.ready_fact(workflow_id, i, 1);
        self.emit(ctx, fact);
    }

    /// After step `i` is satisfied: ready its dependants whose upstream is
    /// all satisfied, then finish the workflow if everything is terminal.
    pub(crate) fn advance(&mut self, ctx: &mut Ctx, workflow_id: &str, i: usize) {
        let Some(wf) = self.workflows.get(workflow_id) else {
            return;
        };
        let Some(dag) = wf.dag.clone() else { return };
        for &d in &dag.downstream[i] {
            let wf = &self.workflows[workflow_id];
            if wf.is_terminal() || wf.steps[d].status != StepStatus::Pending {
                continue;
            }
            if dag.upstream[d].iter().all(|&u| wf.steps[u].is_satisfied()) {
                self.ready_or_skip(ctx, workflow_id, d);
            }
        }
        self.complete_if_done(ctx, workflow_id);
    }

    fn complete_if_done(&mut self, ctx: &mut Ctx, workflow_id: &str) {
        let Some(wf) = self.workflows.get(workflow_id) else {
            return;
        };
        if wf.status == WorkflowStatus::Running && wf.steps.iter().all(|s| s.status.is_terminal()) {
            let usage = wf.usage.clone();
            self.emit(
                ctx,
                WorkflowSucceeded {
                    workflow_id: workflow_id.into(),
                    usage,
                },
            );
        }
    }

    /// Assigns ready steps to agents while the scheduler finds matches.
    fn schedule(&mut self, ctx: &mut Ctx) {
        while let Some(a) = self.scheduler.peek_next() {
            // A queue entry whose workflow is gone or finished cannot be
            // assigned; drop it rather than stall every later decision.
            // (Facts never leave such entries; this guards the invariant.)
            let live = self
                .workflows
                .get(&a.key.workflow_id)
                .filter(|w| !w.is_terminal());
            let Some((wf, i)) = live.and_then(|w| w.step_index(&a.key.step_id).map(|i| (w, i)))
            else {
                self.scheduler.dequeue(&a.key);
                continue;
            };
            let def = &wf.definition.steps[i];
            let fact = StepAssigned {
                workflow_id: a.key.workflow_id.clone(),
                step_id: a.key.step_id.clone(),
                attempt: a.key.attempt,
                agent_id: a.agent_id.clone(),
                pool: a.pool.clone(),
                strategy: a.strategy,
                kind: def.kind_or_id().to_string(),
                input: def.input.clone(),
                timeout_at: def
                    .timeout_ms
                    .map(|ms| Timestamp(ctx.now.0.saturating_add(ms.saturating_mul(1000)))),
            };
            self.emit(ctx, fact);
        }
    }
}
