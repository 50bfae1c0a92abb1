//! The simulated agents' bookkeeping, free of log IO: what each agent runs,
//! which completions are due when, and the reports each assignment turns
//! into (pushed to an [`Outbox`]; the fleet loop appends them).
//!
//! Invariants:
//! - An agent never runs more than `capacity` steps: an assignment beyond it
//!   is answered with StepDeclined("at capacity") and nothing else.
//! - Every accepted assignment yields exactly one StepStarted and then exactly
//!   one StepSucceeded or StepFailed — unless a StepCancelled for that attempt
//!   arrives first, which stops it silently. Zero-latency steps complete in
//!   the same batch as their StepStarted (no timer, no task). The two
//!   deliberate exceptions simulate faults: a stalled attempt (`stall_rate`)
//!   never reports, and a silenced agent (`silent_after`) stops reporting,
//!   heartbeating and accepting work altogether.
//! - A redelivered assignment (same event id, or an attempt the agent is
//!   already running) is ignored, so republication never doubles reports.
//! - Sampling uses one generator per agent seeded from (seed, agent index):
//!   the same assignments in the same order give the same outcomes.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::fleet::{FleetStats, LatencyDist, SimAgentConfig};
use super::outbox::Outbox;
use super::{mix_seed, SimError};
use crate::domain::events::*;
use crate::log::partition_for_key;

/// How many assignment event ids are remembered for redelivery detection.
const SEEN_WINDOW: usize = 1 << 16;
/// Simulated latencies are capped here (a huge exponential sample would
/// otherwise park a step forever).
const MAX_LATENCY: Duration = Duration::from_secs(3600);
/// The output every successful simulated step reports.
const OUTPUT: &str = r#"{"ok":true}"#;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct StepKey {
    workflow_id: String,
    step_id: String,
    attempt: i32,
}

struct Agent {
    cfg: SimAgentConfig,
    /// Crashed (see `SimAgentConfig::silent_after`): says and does nothing.
    silent: bool,
    /// Not joined yet (see `SimAgentConfig::joins_after`).
    absent: bool,
    in_flight: u32,
    rng: fastrand::Rng,
}

/// A step an agent is running, completing at its due time.
struct Running {
    agent: usize,
    key: StepKey,
    fail: bool,
}

/// Every simulated agent of one fleet.
pub(crate) struct Agents {
    agents: Vec<Agent>,
    index: HashMap<String, usize>,
    by_step: HashMap<StepKey, u64>,
    running: HashMap<u64, Running>,
    due: BinaryHeap<Reverse<(Instant, u64)>>,
    next_seq: u64,
    seen: HashSet<EventId>,
    seen_order: VecDeque<EventId>,
    pub(crate) stats: FleetStats,
    /// Time since the fleet started, as of the last `silence_due`.
    elapsed: Duration,
}

impl LatencyDist {
    /// One latency sample (capped at an hour).
    pub(crate) fn sample(&self, rng: &mut fastrand::Rng) -> Duration {
        let ms = match *self {
            LatencyDist::Zero => return Duration::ZERO,
            LatencyDist::Fixed(ms) => ms as f64,
            LatencyDist::Uniform { min, max } => rng.u64(min..=max.max(min)) as f64,
            LatencyDist::Exponential { mean_ms } => -mean_ms * (1.0 - rng.f64()).ln(),
        };
        if ms.is_finite() && ms > 0.0 {
            Duration::from_secs_f64(ms / 1000.0).min(MAX_LATENCY)
        } else {
            Duration::ZERO
        }
    }
}

impl Agents {
    pub(crate) fn new(configs: &[SimAgentConfig], seed: u64) -> Agents {
        let agents: Vec<Agent> = configs
            .iter()
            .enumerate()
            .map(|(i, cfg)| Agent {
                cfg: cfg.clone(),
                silent: false,
                absent: cfg.joins_after.is_some(),
                in_flight: 0,
                rng: fastrand::Rng::with_seed(mix_seed(seed, i as u64)),
            })
            .collect();
        let index = configs
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        Agents {
            agents,
            index,
            by_step: HashMap::new(),
            running: HashMap::new(),
            due: BinaryHeap::new(),
            next_seq: 0,
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            stats: FleetStats::default(),
            elapsed: Duration::ZERO,
        }
    }

    /// Whether a record key (an agent id) belongs to this fleet.
    pub(crate) fn owns_key(&self, key: &[u8]) -> bool {
        std::str::from_utf8(key).is_ok_and(|k| self.index.contains_key(k))
    }

    /// When the earliest running step completes.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    /// Steps currently running (non-zero latency ones).
    pub(crate) fn in_flight(&self) -> usize {
        self.running.len()
    }

    /// Silences the agents whose `silent_after` has passed, `elapsed` after
    /// the fleet started.
    pub(crate) fn silence_due(&mut self, elapsed: Duration) {
        self.elapsed = elapsed;
        for a in &mut self.agents {
            if !a.silent && a.cfg.silent_after.is_some_and(|d| elapsed >= d) {
                a.silent = true;
                self.stats.silenced += 1;
                tracing::info!(agent = %a.cfg.id, "simulated agent goes silent");
            }
        }
    }

    /// Registers the absent agents whose `joins_after` has passed.
    pub(crate) fn join_due(
        &mut self,
        elapsed: Duration,
        out: &mut Outbox,
        at: Timestamp,
        payload: impl Fn(&SimAgentConfig, u32) -> Payload,
    ) -> Result<(), SimError> {
        for a in &mut self.agents {
            if a.absent && a.cfg.joins_after.is_some_and(|d| elapsed >= d) {
                a.absent = false;
                tracing::info!(agent = %a.cfg.id, "simulated agent joins");
                push_lifecycle(out, &a.cfg.id, at, payload(&a.cfg, 0))?;
            }
        }
        Ok(())
    }

    /// Pushes one lifecycle event per agent (not silenced) to its home
    /// ingress partition; the engine forwards it to the others.
    pub(crate) fn lifecycle(
        &self,
        out: &mut Outbox,
        at: Timestamp,
        payload: impl Fn(&SimAgentConfig, u32) -> Payload,
    ) -> Result<(), SimError> {
        for a in self.agents.iter().filter(|a| !a.silent && !a.absent) {
            push_lifecycle(out, &a.cfg.id, at, payload(&a.cfg, a.in_flight))?;
        }
        Ok(())
    }

    /// Handles one record of `baton.assignments`. Returns false when it was
    /// not for this fleet (or not an assignment or cancellation).
    pub(crate) fn on_event(
        &mut self,
        event: Envelope,
        now: Instant,
        at: Timestamp,
        out: &mut Outbox,
    ) -> Result<bool, SimError> {
        match event.payload {
            Payload::StepAssigned(a) => {
                let Some(&agent) = self.index.get(&a.agent_id) else {
                    return Ok(false);
                };
                if !self.first_sighting(event.event_id) {
                    return Ok(true);
                }
                self.on_assigned(agent, a, now, at, out)?;
                Ok(true)
            }
            Payload::StepCancelled(c) => {
                let ours = c
                    .agent_id
                    .as_deref()
                    .is_some_and(|id| self.index.contains_key(id));
                if ours {
                    self.on_cancelled(StepKey {
                        workflow_id: c.workflow_id,
                        step_id: c.step_id,
                        attempt: c.attempt,
                    });
                }
                Ok(ours)
            }
            _ => Ok(false),
        }
    }

    /// Records an assignment id; false if it was already seen.
    fn first_sighting(&mut self, id: EventId) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.seen_order.push_back(id);
        if self.seen_order.len() > SEEN_WINDOW {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    fn on_assigned(
        &mut self,
        agent: usize,
        a: StepAssigned,
        now: Instant,
        at: Timestamp,
        out: &mut Outbox,
    ) -> Result<(), SimError> {
        let key = StepKey {
            workflow_id: a.workflow_id,
            step_id: a.step_id,
            attempt: a.attempt,
        };
        if self.by_step.contains_key(&key) || self.agents[agent].silent {
            return Ok(());
        }
        self.stats.assignments += 1;
        let ag = &mut self.agents[agent];
        if ag.in_flight >= ag.cfg.capacity {
            self.stats.declined += 1;
            let declined = StepDeclined {
                workflow_id: key.workflow_id.clone(),
                step_id: key.step_id,
                attempt: key.attempt,
                agent_id: a.agent_id,
                reason: "at capacity".into(),
            };
            return report(out, &key.workflow_id, &ag.cfg.id, at, declined);
        }
        self.stats.started += 1;
        let started = StepStarted {
            workflow_id: key.workflow_id.clone(),
            step_id: key.step_id.clone(),
            attempt: key.attempt,
            agent_id: a.agent_id,
        };
        report(out, &key.workflow_id, &ag.cfg.id, at, started)?;
        // Sampled only when configured, so other settings keep their
        // outcome sequence for a seed.
        if ag.cfg.stall_rate > 0.0 && ag.rng.f64() < ag.cfg.stall_rate {
            self.stats.stalled += 1;
            return Ok(());
        }
        let elapsed = self.elapsed;
        let fault = ag
            .cfg
            .fault
            .as_ref()
            .filter(|f| elapsed < f.until && f.kind.as_ref().is_none_or(|k| *k == a.kind));
        let latency = fault
            .and_then(|f| f.latency)
            .unwrap_or(ag.cfg.latency)
            .sample(&mut ag.rng);
        let failure_rate = fault
            .and_then(|f| f.failure_rate)
            .unwrap_or(ag.cfg.failure_rate);
        let fail = ag.rng.f64() < failure_rate;
        if latency.is_zero() {
            return self.finish(agent, key, fail, at, out);
        }
        ag.in_flight += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_step.insert(key.clone(), seq);
        self.running.insert(seq, Running { agent, key, fail });
        self.due.push(Reverse((now + latency, seq)));
        Ok(())
    }

    fn on_cancelled(&mut self, key: StepKey) {
        let Some(seq) = self.by_step.remove(&key) else {
            return;
        };
        if let Some(r) = self.running.remove(&seq) {
            self.agents[r.agent].in_flight -= 1;
            self.stats.cancelled += 1;
        }
    }

    /// Completes every running step due by `now`. Returns how many.
    pub(crate) fn complete_due(
        &mut self,
        now: Instant,
        at: Timestamp,
        out: &mut Outbox,
    ) -> Result<usize, SimError> {
        let mut done = 0;
        while let Some(Reverse((due, seq))) = self.due.peek().copied() {
            if due > now {
                break;
            }
            self.due.pop();
            // Cancelled steps left their heap entry behind: skip it.
            let Some(r) = self.running.remove(&seq) else {
                continue;
            };
            self.by_step.remove(&r.key);
            self.agents[r.agent].in_flight -= 1;
            if self.agents[r.agent].silent {
                continue;
            }
            self.finish(r.agent, r.key, r.fail, at, out)?;
            done += 1;
        }
        Ok(done)
    }

    /// Reports the outcome of a step attempt.
    fn finish(
        &mut self,
        agent: usize,
        key: StepKey,
        fail: bool,
        at: Timestamp,
        out: &mut Outbox,
    ) -> Result<(), SimError> {
        let ag = &mut self.agents[agent];
        if fail {
            self.stats.failed += 1;
            let failed = StepFailed {
                workflow_id: key.workflow_id.clone(),
                step_id: key.step_id,
                attempt: key.attempt,
                agent_id: ag.cfg.id.clone(),
                error: "simulated failure".into(),
                retryable: true,
            };
            return report(out, &key.workflow_id, &ag.cfg.id, at, failed);
        }
        self.stats.succeeded += 1;
        let tokens_in = ag.rng.i64(200..=4_000);
        let tokens_out = ag.rng.i64(50..=1_500);
        // Priced like a mid-size LLM: $3 per million in, $15 per million out.
        let cost = (tokens_in * 3 + tokens_out * 15) as f64 / 1_000_000.0;
        let succeeded = StepSucceeded {
            workflow_id: key.workflow_id.clone(),
            step_id: key.step_id,
            attempt: key.attempt,
            agent_id: ag.cfg.id.clone(),
            output: Some(JsonText(OUTPUT.to_string())),
            usage: Usage {
                tokens_in,
                tokens_out,
                cost,
            },
        };
        report(out, &key.workflow_id, &ag.cfg.id, at, succeeded)
    }
}

/// Pushes an agent's lifecycle event (register, heartbeat, deregister) to
/// the agent's home ingress partition, keyed by its id, as any agent does.
fn push_lifecycle(
    out: &mut Outbox,
    agent_id: &str,
    at: Timestamp,
    payload: Payload,
) -> Result<(), SimError> {
    let event = out.envelope(agent_id, agent_id, at, payload);
    let home = crate::engine::fanout::home_partition(agent_id, out.partitions());
    out.push(home, agent_id, &event)
}

/// Pushes a workflow event to its workflow's ingress partition.
fn report(
    out: &mut Outbox,
    workflow_id: &str,
    agent_id: &str,
    at: Timestamp,
    payload: impl Into<Payload>,
) -> Result<(), SimError> {
    let partition = partition_for_key(workflow_id.as_bytes(), out.partitions());
    let event = out.envelope(workflow_id, agent_id, at, payload);
    out.push(partition, workflow_id, &event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;

    fn assigned(agent: &str, wf: &str) -> Envelope {
        let payload = StepAssigned {
            workflow_id: wf.into(),
            step_id: "s0".into(),
            attempt: 1,
            agent_id: agent.into(),
            pool: "default".into(),
            strategy: Strategy::RoundRobin,
            kind: "llm".into(),
            input: None,
            timeout_at: None,
        };
        Envelope {
            event_id: EventId::random(),
            correlation_id: wf.into(),
            causation_id: None,
            occurred_at: Timestamp(0),
            producer: "engine".into(),
            payload: payload.into(),
        }
    }

    fn kinds(out: &mut Outbox) -> Vec<&'static str> {
        let events = out.drain_decoded();
        for (p, key, e) in &events {
            assert_eq!(*p, partition_for_key(key.as_bytes(), 3));
            assert_eq!(&e.correlation_id, key);
        }
        events.iter().map(|(.., e)| e.payload.type_name()).collect()
    }

    #[test]
    fn timed_steps_complete_in_due_order_and_respect_capacity() {
        let mut cfg = SimAgentConfig::new("a");
        cfg.capacity = 100;
        cfg.latency = LatencyDist::Uniform { min: 20, max: 60 };
        let mut agents = Agents::new(&[cfg], 9);
        let mut out = Outbox::new("in".into(), 3, Codec::builtin().expect("codec"));
        let t0 = Instant::now();
        for i in 0..150 {
            let e = assigned("a", &format!("wf-{i}"));
            assert!(agents.on_event(e, t0, Timestamp(0), &mut out).expect("ok"));
        }
        let k = kinds(&mut out);
        assert_eq!(k.iter().filter(|k| **k == "StepStarted").count(), 100);
        assert_eq!(k.iter().filter(|k| **k == "StepDeclined").count(), 50);
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(agents.next_due().map(|d| d >= at(20)), Some(true));
        assert_eq!(
            agents
                .complete_due(at(19), Timestamp(0), &mut out)
                .expect("ok"),
            0
        );
        let mid = agents
            .complete_due(at(40), Timestamp(0), &mut out)
            .expect("ok");
        let rest = agents
            .complete_due(at(60), Timestamp(0), &mut out)
            .expect("ok");
        assert!(mid > 0 && rest > 0 && mid + rest == 100, "{mid} + {rest}");
        assert!(kinds(&mut out).iter().all(|k| *k == "StepSucceeded"));
        assert_eq!((agents.in_flight(), agents.next_due()), (0, None));
        let s = agents.stats;
        assert_eq!(
            (s.assignments, s.started, s.succeeded, s.declined),
            (150, 100, 100, 50)
        );
    }

    #[test]
    fn same_seed_same_outcomes() {
        let run = || {
            let mut cfg = SimAgentConfig::new("a");
            cfg.failure_rate = 0.5;
            let mut agents = Agents::new(&[cfg], 4);
            let mut out = Outbox::new("in".into(), 3, Codec::builtin().expect("codec"));
            for i in 0..200 {
                let e = assigned("a", &format!("wf-{i}"));
                agents
                    .on_event(e, Instant::now(), Timestamp(0), &mut out)
                    .expect("ok");
            }
            (kinds(&mut out), agents.stats)
        };
        let (a, b) = (run(), run());
        assert_eq!(a, b);
        assert!(a.1.failed > 50 && a.1.succeeded > 50, "{:?}", a.1);
    }

    #[test]
    fn stalled_attempts_start_and_never_report_and_silent_agents_say_nothing() {
        let mut cfg = SimAgentConfig::new("a");
        cfg.capacity = 1000;
        cfg.latency = LatencyDist::Fixed(10);
        cfg.stall_rate = 0.5;
        cfg.silent_after = Some(Duration::from_millis(100));
        let mut agents = Agents::new(&[cfg], 3);
        let mut out = Outbox::new("in".into(), 3, Codec::builtin().expect("codec"));
        let t0 = Instant::now();
        for i in 0..200 {
            let e = assigned("a", &format!("wf-{i}"));
            agents.on_event(e, t0, Timestamp(0), &mut out).expect("ok");
        }
        agents
            .complete_due(t0 + Duration::from_millis(10), Timestamp(0), &mut out)
            .expect("ok");
        let k = kinds(&mut out);
        let started = k.iter().filter(|k| **k == "StepStarted").count();
        let done = k.iter().filter(|k| **k == "StepSucceeded").count();
        let stalled = agents.stats.stalled as usize;
        assert_eq!(started, 200);
        assert!((60..140).contains(&stalled), "about half stall: {stalled}");
        assert_eq!(done + stalled, 200, "a stalled attempt never reports");

        // Silenced: no heartbeat, no report, assignments ignored.
        agents.silence_due(Duration::from_millis(100));
        assert_eq!(agents.stats.silenced, 1);
        let e = assigned("a", "wf-late");
        agents.on_event(e, t0, Timestamp(0), &mut out).expect("ok");
        agents
            .lifecycle(&mut out, Timestamp(0), |a, _| {
                Payload::DeregisterAgent(DeregisterAgent {
                    agent_id: a.id.clone(),
                    reason: None,
                })
            })
            .expect("ok");
        assert!(kinds(&mut out).is_empty(), "a silent agent says nothing");
    }
}
