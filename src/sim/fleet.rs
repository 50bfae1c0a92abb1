//! The simulated agent fleet: registers its agents, heartbeats, tails
//! `baton.assignments` and answers every StepAssigned for one of its agents
//! with StepStarted then StepSucceeded / StepFailed after a sampled latency
//! (or StepDeclined when the agent is at capacity), through the real log.
//!
//! Invariants:
//! - One task does everything: it reads every assignments partition from the
//!   high watermark it saw *before* registering (so no assignment caused by
//!   the registration is missed), hands records keyed by one of its agents to
//!   the bookkeeping in `agents.rs`, completes due steps from a binary heap
//!   of due times, and appends all reports gathered in one pass with one
//!   `append` per ingress partition. No task or timer per step.
//! - When nothing is new it sleeps at most [`POLL_INTERVAL`] (less if a
//!   completion or heartbeat is due sooner), waking early on the stop signal.
//! - On stop it appends the reports already produced and returns; steps still
//!   running are abandoned without a report (a stopped agent is silent), and
//!   it does not deregister ([`deregister_fleet`] does that when wanted).
//! - Assignments that do not decode are skipped with a warning: the fleet
//!   never dies on someone else's bad record.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use super::agents::Agents;
use super::outbox::{now, Outbox};
use super::{SimError, DEFAULT_CAPABILITIES, DEFAULT_POOL};
use crate::codec::Codec;
use crate::domain::events::*;
use crate::log::EventLog;
use crate::topics::Topics;

/// The longest the fleet sleeps when nothing is new.
pub const POLL_INTERVAL: Duration = Duration::from_millis(2);
/// Records read from one assignments partition per pass.
const READ_BATCH: usize = 8192;

/// How long a simulated step takes, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LatencyDist {
    /// Completes at once, in the same batch as its StepStarted.
    Zero,
    /// Always this many milliseconds.
    Fixed(u64),
    /// Uniform between `min` and `max` milliseconds, inclusive.
    Uniform { min: u64, max: u64 },
    /// Exponential with this mean in milliseconds (capped at an hour).
    Exponential { mean_ms: f64 },
}

/// One simulated agent.
#[derive(Clone, Debug, PartialEq)]
pub struct SimAgentConfig {
    pub id: String,
    pub pool: String,
    pub capabilities: Vec<String>,
    /// Steps it runs at once; more are declined ("at capacity").
    pub capacity: u32,
    /// Weight for the engine's weighted strategy.
    pub weight: u32,
    pub latency: LatencyDist,
    /// Probability in `[0, 1]` that an attempt fails (retryable).
    pub failure_rate: f64,
    /// Probability in `[0, 1]` that an attempt, once started, never reports
    /// (a hung step: the engine's step timeout must catch it).
    pub stall_rate: f64,
    /// The agent crashes this long after the fleet starts: from then on it
    /// sends no heartbeat and no report and ignores assignments (the engine
    /// must declare it lost and requeue its steps).
    pub silent_after: Option<Duration>,
    /// A temporary misbehaviour from the fleet's start (demo scenarios).
    pub fault: Option<Fault>,
    /// The agent is absent (no registration, no heartbeat) until this long
    /// after the fleet starts, then registers.
    pub joins_after: Option<Duration>,
}

/// Until `until` (from the fleet's start) an agent uses these settings
/// instead of its own, then recovers: the cause of a demo scenario, and its
/// removal.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub until: Duration,
    pub latency: Option<LatencyDist>,
    pub failure_rate: Option<f64>,
    /// Only steps of this kind are affected (all when None).
    pub kind: Option<String>,
}

impl SimAgentConfig {
    /// An agent in the default pool with the default capabilities, capacity
    /// 4, weight 1, zero latency and no failures.
    pub fn new(id: impl Into<String>) -> SimAgentConfig {
        SimAgentConfig {
            id: id.into(),
            pool: DEFAULT_POOL.to_string(),
            capabilities: DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            capacity: 4,
            weight: 1,
            latency: LatencyDist::Zero,
            failure_rate: 0.0,
            stall_rate: 0.0,
            silent_after: None,
            fault: None,
            joins_after: None,
        }
    }
}

/// `count` agents like `template`, with ids `<template.id>-000`, `-001`, ...
pub fn homogeneous_fleet(count: usize, template: &SimAgentConfig) -> Vec<SimAgentConfig> {
    let width = count.saturating_sub(1).to_string().len().max(3);
    (0..count)
        .map(|i| SimAgentConfig {
            id: format!("{}-{i:0width$}", template.id),
            ..template.clone()
        })
        .collect()
}

/// The whole fleet.
#[derive(Clone, Debug, PartialEq)]
pub struct FleetConfig {
    pub agents: Vec<SimAgentConfig>,
    /// Also announced to the engine in RegisterAgent.
    pub heartbeat_interval: Duration,
    /// Seeds latency, failure and usage sampling.
    pub seed: u64,
}

impl FleetConfig {
    /// Checks the configuration; every problem names the agent.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.heartbeat_interval.is_zero() {
            return Err(SimError::Config(
                "heartbeat_interval must be positive".into(),
            ));
        }
        let mut ids = HashSet::new();
        for a in &self.agents {
            let bad = |what: &str| Err(SimError::Config(format!("agent `{}`: {what}", a.id)));
            if a.id.is_empty() {
                return Err(SimError::Config("an agent id is empty".into()));
            }
            if !ids.insert(a.id.as_str()) {
                return bad("the id is used twice");
            }
            if a.pool.is_empty() {
                return bad("the pool is empty");
            }
            if a.capacity == 0 || a.weight == 0 {
                return bad("capacity and weight must be at least 1");
            }
            if !(0.0..=1.0).contains(&a.failure_rate) {
                return bad("failure_rate must be within [0, 1]");
            }
            match a.latency {
                LatencyDist::Uniform { min, max } if min > max => {
                    return bad("uniform latency needs min <= max");
                }
                LatencyDist::Exponential { mean_ms }
                    if !(mean_ms >= 0.0 && mean_ms.is_finite()) =>
                {
                    return bad("exponential latency needs a finite mean >= 0");
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// What the fleet did, counted over its run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FleetStats {
    /// StepAssigned events addressed to this fleet's agents (redeliveries
    /// not counted).
    pub assignments: u64,
    pub started: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub declined: u64,
    /// Running steps stopped by a StepCancelled.
    pub cancelled: u64,
    /// Attempts started and then never reported (`stall_rate`).
    pub stalled: u64,
    /// Agents that went silent (`silent_after`).
    pub silenced: u64,
}

fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn registration(a: &SimAgentConfig, heartbeat_interval: Duration) -> Payload {
    let mut labels = BTreeMap::new();
    labels.insert("simulated".to_string(), "true".to_string());
    Payload::RegisterAgent(RegisterAgent {
        agent_id: a.id.clone(),
        pool: a.pool.clone(),
        capabilities: a.capabilities.clone(),
        capacity: clamp_i32(a.capacity),
        weight: clamp_i32(a.weight),
        labels,
        heartbeat_interval_ms: i64::try_from(heartbeat_interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1),
    })
}

fn heartbeat(a: &SimAgentConfig, in_flight: u32) -> Payload {
    Payload::AgentHeartbeat(AgentHeartbeat {
        agent_id: a.id.clone(),
        in_flight: clamp_i32(in_flight),
        cpu: Some(f64::from(in_flight) / f64::from(a.capacity.max(1))),
        memory_bytes: Some((256 + 64 * i64::from(in_flight)) << 20),
    })
}

/// True once the stop signal is set or its sender is gone.
fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Runs the fleet until `stop` becomes true (or its sender is dropped) and
/// returns what it did. See the module docs for the contract.
pub async fn run_fleet(
    log: Arc<dyn EventLog>,
    codec: Codec,
    topics: Topics,
    cfg: FleetConfig,
    mut stop: watch::Receiver<bool>,
) -> Result<FleetStats, SimError> {
    cfg.validate()?;
    let assignments = topics.assignments();
    let ingress = topics.ingress();
    let mut positions = Vec::new();
    for p in 0..log.partition_count(&assignments).await? {
        positions.push(log.high_watermark(&assignments, p).await?);
    }
    let ingress_partitions = log.partition_count(&ingress).await?;
    let mut out = Outbox::new(ingress, ingress_partitions, codec.clone());
    let mut agents = Agents::new(&cfg.agents, cfg.seed);
    let interval = cfg.heartbeat_interval;
    agents.lifecycle(&mut out, now(), |a, _| registration(a, interval))?;
    out.flush(log.as_ref()).await?;
    tracing::info!(
        agents = cfg.agents.len(),
        partitions = ingress_partitions,
        "simulated fleet registered"
    );

    let started = Instant::now();
    let mut next_heartbeat = started + interval;
    while !stopped(&stop) {
        let mut busy = false;
        for (p, next) in positions.iter_mut().enumerate() {
            let records =
                super::read_or_wait(log.as_ref(), &assignments, p as u32, *next, READ_BATCH)
                    .await?;
            busy |= records.len() == READ_BATCH;
            // Stamped per partition read, not once per pass: a report's
            // `occurred_at` should not predate the reading of its assignment.
            let at = now();
            let instant = Instant::now();
            for r in records {
                *next = r.offset + 1;
                if !r.key.as_deref().is_some_and(|k| agents.owns_key(k)) {
                    continue;
                }
                match codec.decode(&r.value) {
                    Ok(event) => {
                        agents.on_event(event, instant, at, &mut out)?;
                    }
                    Err(e) => tracing::warn!(
                        partition = p,
                        offset = r.offset,
                        error = %e,
                        "simulated fleet skips an undecodable assignment"
                    ),
                }
            }
            // Reports go out as soon as they are made, like a real agent's:
            // reading the next partition can wait on the broker, and a
            // report's `occurred_at` is already stamped.
            if out.pending() > 0 {
                out.flush(log.as_ref()).await?;
            }
        }
        let instant = Instant::now();
        let at = now();
        agents.silence_due(instant - started);
        agents.join_due(instant - started, &mut out, at, |a, _| {
            registration(a, interval)
        })?;
        agents.complete_due(instant, at, &mut out)?;
        if instant >= next_heartbeat {
            agents.lifecycle(&mut out, at, heartbeat)?;
            next_heartbeat = instant + interval;
        }
        if out.pending() > 0 {
            out.flush(log.as_ref()).await?;
            busy = true;
        }
        if busy {
            // Let the engine (and anyone else on this runtime) run.
            tokio::task::yield_now().await;
            continue;
        }
        let wake = agents
            .next_due()
            .map_or(next_heartbeat, |d| d.min(next_heartbeat))
            .min(instant + POLL_INTERVAL);
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = stop.changed() => {}
        }
    }
    out.flush(log.as_ref()).await?;
    tracing::info!(
        stats = ?agents.stats,
        abandoned = agents.in_flight(),
        "simulated fleet stopped"
    );
    Ok(agents.stats)
}

/// Appends a DeregisterAgent for every agent of `agents` to its home
/// ingress partition (for a clean shutdown after [`run_fleet`] returned).
pub async fn deregister_fleet(
    log: &dyn EventLog,
    codec: Codec,
    topics: &Topics,
    agents: &[SimAgentConfig],
    reason: &str,
) -> Result<(), SimError> {
    let ingress = topics.ingress();
    let partitions = log.partition_count(&ingress).await?;
    let mut out = Outbox::new(ingress, partitions, codec);
    let fleet = Agents::new(agents, 0);
    fleet.lifecycle(&mut out, now(), |a, _| {
        Payload::DeregisterAgent(DeregisterAgent {
            agent_id: a.id.clone(),
            reason: Some(reason.to_string()),
        })
    })?;
    out.flush(log).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_samples_stay_in_their_distribution() {
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(LatencyDist::Zero.sample(&mut rng), Duration::ZERO);
        assert_eq!(
            LatencyDist::Fixed(7).sample(&mut rng),
            Duration::from_millis(7)
        );
        for _ in 0..1_000 {
            let d = LatencyDist::Uniform { min: 5, max: 9 }.sample(&mut rng);
            assert!(d >= Duration::from_millis(5) && d <= Duration::from_millis(9));
        }
        let n = 20_000;
        let total: f64 = (0..n)
            .map(|_| {
                LatencyDist::Exponential { mean_ms: 10.0 }
                    .sample(&mut rng)
                    .as_secs_f64()
            })
            .sum();
        let mean_ms = total * 1000.0 / n as f64;
        assert!((9.0..11.0).contains(&mean_ms), "{mean_ms}");
    }

    #[test]
    fn config_problems_name_the_agent() {
        let mut cfg = FleetConfig {
            agents: homogeneous_fleet(3, &SimAgentConfig::new("a")),
            heartbeat_interval: Duration::from_secs(1),
            seed: 0,
        };
        assert_eq!(cfg.agents[2].id, "a-002");
        assert!(cfg.validate().is_ok());
        cfg.agents[1].failure_rate = 1.5;
        let err = cfg.validate().map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err(
                "invalid simulation config: agent `a-001`: failure_rate must be within [0, 1]"
                    .into()
            )
        );
        cfg.agents[1] = cfg.agents[0].clone();
        assert!(cfg.validate().is_err(), "duplicate id");
    }
}
