//! The workflow load generator: builds deterministic workflow definitions
//! (chains, fan-out, fan-out/fan-in, random DAGs; mixed capabilities, pools
//! and priorities) and submits them to `baton.ingress` in batches.
//!
//! Invariants:
//! - [`workflow`] is a pure function of `(i, cfg)`: the same index and
//!   config give the same SubmitWorkflow (id `wf-<seed>-<i>`), whatever ran
//!   before. Every definition it builds is valid (unique step ids, known
//!   dependencies, acyclic) and only requires capabilities and pools listed
//!   in the config, one capability per step.
//! - [`run_generator`] submits indices `first_index..first_index+workflows`
//!   in order, each to partition `murmur2(workflow_id) % P` keyed by its id,
//!   with one `append` per partition per batch; with a rate it never runs
//!   ahead of `rate × elapsed`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::fleet::FleetConfig;
use super::outbox::{now, Outbox};
use super::{mix_seed, SimError, DEFAULT_CAPABILITIES, GENERATOR_PRODUCER};
use crate::codec::Codec;
use crate::domain::events::*;
use crate::log::{partition_for_key, EventLog};
use crate::topics::Topics;

/// The largest batch a paced generator sends to catch up with its rate.
pub const MAX_CATCH_UP: usize = 4_096;

/// The shape of a generated workflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `n` steps in a line: s0 → s1 → … (n ≥ 1).
    Chain(u32),
    /// One root and `width` parallel branches after it: width + 1 steps.
    FanOut(u32),
    /// One root, `width` parallel branches, one join: width + 2 steps.
    FanOutIn(u32),
    /// A random DAG of 3–6 steps, each depending on 1–2 earlier ones.
    Mixed,
}

impl Shape {
    fn label(&self) -> &'static str {
        match self {
            Shape::Chain(_) => "chain",
            Shape::FanOut(_) => "fan_out",
            Shape::FanOutIn(_) => "fan_out_in",
            Shape::Mixed => "mixed",
        }
    }
}

/// What to generate and how fast.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratorConfig {
    /// How many workflows to submit.
    pub workflows: u64,
    /// The first index (so a second run can continue where one stopped).
    pub first_index: u64,
    /// Drawn uniformly per workflow; empty means the default mix.
    pub shapes: Vec<Shape>,
    /// Drawn per step; empty means no pool (the engine's default pool).
    pub pools: Vec<String>,
    /// One is drawn per step; empty means steps require none.
    pub capabilities: Vec<String>,
    /// Workflow priority, drawn uniformly.
    pub priority: RangeInclusive<i32>,
    /// Retry policy of every step.
    pub retry: Option<RetryPolicy>,
    /// Timeout of every step attempt.
    pub step_timeout_ms: Option<i64>,
    /// Workflows per second; `None` submits as fast as the log takes them.
    pub rate: Option<f64>,
    /// Workflows per batch (one append per partition per batch); a paced
    /// generator that fell behind its rate sends up to [`MAX_CATCH_UP`].
    pub batch: usize,
    pub seed: u64,
}

/// The default mix: three-step chains (s0 → s1 → s2) and three-step
/// fan-outs (s0 → s1, s2).
pub const DEFAULT_SHAPES: &[Shape] = &[Shape::Chain(3), Shape::FanOut(2)];

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            workflows: 1_000,
            first_index: 0,
            shapes: DEFAULT_SHAPES.to_vec(),
            pools: Vec::new(),
            capabilities: DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            priority: 0..=0,
            retry: Some(RetryPolicy {
                max_attempts: 3,
                backoff: Backoff::Exponential,
                base_ms: 10,
                max_ms: 1_000,
            }),
            step_timeout_ms: Some(30_000),
            rate: None,
            batch: 4_096,
            seed: 0,
        }
    }
}

impl GeneratorConfig {
    /// Defaults whose pools and capabilities every step can find in `fleet`:
    /// the fleet's pools, and the capabilities every one of them offers.
    pub fn for_fleet(fleet: &FleetConfig) -> GeneratorConfig {
        let mut per_pool: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for a in &fleet.agents {
            per_pool
                .entry(a.pool.as_str())
                .or_default()
                .extend(a.capabilities.iter().map(String::as_str));
        }
        let mut common: Option<BTreeSet<&str>> = None;
        for caps in per_pool.values() {
            common = Some(match common {
                None => caps.clone(),
                Some(c) => c.intersection(caps).copied().collect(),
            });
        }
        GeneratorConfig {
            pools: per_pool.keys().map(|p| p.to_string()).collect(),
            capabilities: common
                .unwrap_or_default()
                .into_iter()
                .map(String::from)
                .collect(),
            seed: fleet.seed,
            ..GeneratorConfig::default()
        }
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |m: &str| Err(SimError::Config(format!("generator: {m}")));
        if self.batch == 0 {
            return bad("batch must be at least 1");
        }
        if let Some(r) = self.rate {
            if !(r > 0.0 && r.is_finite()) {
                return bad("rate must be a positive number of workflows per second");
            }
        }
        if self.priority.is_empty() {
            return bad("the priority range is empty");
        }
        let tiny = |n: u32| n == 0 || n > 1_000;
        for s in &self.shapes {
            match *s {
                Shape::Chain(n) | Shape::FanOut(n) | Shape::FanOutIn(n) if tiny(n) => {
                    return bad("shape sizes must be within 1..=1000");
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The id of workflow `i` under `seed`.
pub fn workflow_id(seed: u64, i: u64) -> String {
    format!("wf-{seed}-{i}")
}

/// Workflow number `i`: a pure function of `(i, cfg)`.
pub fn workflow(i: u64, cfg: &GeneratorConfig) -> SubmitWorkflow {
    let mut rng = fastrand::Rng::with_seed(mix_seed(cfg.seed, i));
    let shapes = if cfg.shapes.is_empty() {
        DEFAULT_SHAPES
    } else {
        &cfg.shapes
    };
    let shape = shapes[rng.usize(..shapes.len())];
    let deps: Vec<Vec<usize>> = match shape {
        Shape::Chain(n) => (0..n as usize)
            .map(|k| if k == 0 { vec![] } else { vec![k - 1] })
            .collect(),
        Shape::FanOut(w) => (0..=w as usize)
            .map(|k| if k == 0 { vec![] } else { vec![0] })
            .collect(),
        Shape::FanOutIn(w) => {
            let w = w as usize;
            let mut d: Vec<Vec<usize>> = (0..=w)
                .map(|k| if k == 0 { vec![] } else { vec![0] })
                .collect();
            d.push((1..=w).collect());
            d
        }
        Shape::Mixed => {
            let n = rng.usize(3..=6);
            (0..n)
                .map(|k| {
                    let mut up: Vec<usize> = (0..rng.usize(1..=2))
                        .map(|_| rng.usize(..k.max(1)))
                        .collect();
                    up.sort_unstable();
                    up.dedup();
                    if k == 0 {
                        up.clear();
                    }
                    up
                })
                .collect()
        }
    };
    let steps = deps
        .into_iter()
        .enumerate()
        .map(|(k, up)| {
            let capability = (!cfg.capabilities.is_empty())
                .then(|| cfg.capabilities[rng.usize(..cfg.capabilities.len())].clone());
            let pool =
                (!cfg.pools.is_empty()).then(|| cfg.pools[rng.usize(..cfg.pools.len())].clone());
            StepDefinition {
                id: format!("s{k}"),
                kind: capability.clone(),
                capabilities: capability.into_iter().collect(),
                pool,
                depends_on: up.into_iter().map(|u| format!("s{u}")).collect(),
                timeout_ms: cfg.step_timeout_ms,
                retry: cfg.retry.clone(),
                priority: 0,
                input: None,
                when: None,
            }
        })
        .collect();
    let priority = if cfg.priority.is_empty() {
        *cfg.priority.start()
    } else {
        rng.i32(cfg.priority.clone())
    };
    let mut labels = BTreeMap::new();
    labels.insert("shape".to_string(), shape.label().to_string());
    SubmitWorkflow {
        workflow_id: workflow_id(cfg.seed, i),
        definition: WorkflowDefinition {
            name: format!("sim-{}", shape.label()),
            steps,
            input: Some(JsonText(format!(r#"{{"n":{i}}}"#))),
            deadline_ms: None,
            priority,
            labels,
        },
    }
}

/// Submits `cfg.workflows` workflows (fewer if stopped first) and returns how
/// many were appended. See the module docs for the contract.
pub async fn run_generator(
    log: Arc<dyn EventLog>,
    codec: Codec,
    topics: Topics,
    cfg: GeneratorConfig,
    mut stop: watch::Receiver<bool>,
) -> Result<u64, SimError> {
    cfg.validate()?;
    let ingress = topics.ingress();
    let partitions = log.partition_count(&ingress).await?;
    let mut out = Outbox::new(ingress, partitions, codec);
    let started = Instant::now();
    let mut submitted = 0u64;
    while submitted < cfg.workflows {
        if *stop.borrow() || stop.has_changed().is_err() {
            break;
        }
        let allowed = match cfg.rate {
            None => cfg.workflows,
            Some(rate) => ((started.elapsed().as_secs_f64() * rate) as u64).min(cfg.workflows),
        };
        if allowed <= submitted {
            let rate = cfg.rate.unwrap_or(1.0);
            let next_due = started + Duration::from_secs_f64((submitted + 1) as f64 / rate);
            let wake = next_due.max(Instant::now() + Duration::from_millis(1));
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        // Behind the rate (an append took longer than a slice), catch up in
        // one larger batch rather than falling behind for good.
        let count = (allowed - submitted).min(cfg.batch.max(MAX_CATCH_UP) as u64);
        let at = now();
        for i in submitted..submitted + count {
            let submit = workflow(cfg.first_index + i, &cfg);
            let id = submit.workflow_id.clone();
            let partition = partition_for_key(id.as_bytes(), out.partitions());
            let event = out.envelope(&id, GENERATOR_PRODUCER, at, submit);
            out.push(partition, &id, &event)?;
        }
        out.flush(log.as_ref()).await?;
        submitted += count;
        tokio::task::yield_now().await;
    }
    tracing::info!(
        submitted,
        elapsed_s = started.elapsed().as_secs_f64(),
        "generator done"
    );
    Ok(submitted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{homogeneous_fleet, SimAgentConfig};

    #[test]
    fn default_workflows_have_three_steps_and_known_capabilities() {
        let cfg = GeneratorConfig::default();
        for i in 0..200 {
            let w = workflow(i, &cfg);
            assert_eq!(w.definition.steps.len(), 3);
            assert_eq!(w, workflow(i, &cfg));
            for s in w.definition.steps.iter() {
                assert!(DEFAULT_CAPABILITIES.contains(&s.capabilities[0].as_str()));
            }
        }
    }

    #[test]
    fn for_fleet_draws_only_what_every_pool_offers() {
        let mut gpu = SimAgentConfig::new("g");
        gpu.pool = "gpu".into();
        gpu.capabilities = vec!["llm".into(), "vision".into()];
        let mut agents = homogeneous_fleet(2, &SimAgentConfig::new("c"));
        agents.push(gpu);
        let fleet = FleetConfig {
            agents,
            heartbeat_interval: Duration::from_secs(1),
            seed: 3,
        };
        let cfg = GeneratorConfig::for_fleet(&fleet);
        assert_eq!(cfg.pools, vec!["default".to_string(), "gpu".to_string()]);
        assert_eq!(cfg.capabilities, vec!["llm".to_string()]);
        assert_eq!(workflow(0, &cfg).workflow_id, "wf-3-0");
    }
}
