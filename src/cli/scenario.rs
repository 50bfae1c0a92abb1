//! `baton demo --scenario …`: drives the simulated fleet into one
//! bottleneck on purpose, then removes the cause, so the engine's finding
//! can be watched appear and resolve.
//!
//! Every scenario has a *cause* phase of three detection windows and a
//! *relief* phase of four: the finding should be detected within two
//! windows of the start and resolved after the relief (one full window
//! below its resolve threshold). The workload runs at a fixed rate through
//! both phases; the demo lasts at least both phases.

use std::time::Duration;

use clap::ValueEnum;

use crate::domain::events::{BottleneckKind, Strategy};
use crate::sim::fleet::{Fault, LatencyDist, SimAgentConfig};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Every agent slows down: the pool runs out of slots and its queue grows.
    Saturation,
    /// One agent is ten times slower than the rest of its pool.
    SlowAgent,
    /// Steps of kind `code-review` fail 60% of the time on every agent.
    FailingCapability,
    /// A third of the steps need `gpu`, which no agent has until one joins.
    Starved,
}

/// What the demo runs for a scenario.
pub struct Plan {
    pub agents: Vec<SimAgentConfig>,
    /// Workflows per second through both phases.
    pub rate: f64,
    /// Capabilities the generated steps ask for (one each, uniformly).
    pub capabilities: Vec<String>,
    pub strategy: Strategy,
    pub cause: Duration,
    pub relief: Duration,
    /// The finding the scenario must produce: kind and subject.
    pub expect: (BottleneckKind, &'static str),
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Saturation => "saturation",
            Scenario::SlowAgent => "slow-agent",
            Scenario::FailingCapability => "failing-capability",
            Scenario::Starved => "starved",
        }
    }

    pub fn plan(self, window: Duration) -> Plan {
        let cause = window * 3;
        let relief = window * 4;
        let agent = |i: usize, capacity: u32, latency: LatencyDist| SimAgentConfig {
            id: format!("agent-{i:03}"),
            pool: "default".into(),
            capabilities: vec!["llm".into(), "code-review".into(), "git".into()],
            capacity,
            weight: 1,
            latency,
            failure_rate: 0.0,
            stall_rate: 0.0,
            silent_after: None,
            fault: None,
            joins_after: None,
        };
        let normal = LatencyDist::Exponential { mean_ms: 20.0 };
        let caps = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match self {
            Scenario::Saturation => Plan {
                // 16 slots at 400 ms serve 40 steps/s; 30 workflows/s ask
                // for about 80. Relief: 20 ms steps serve 800/s.
                agents: (0..4)
                    .map(|i| SimAgentConfig {
                        fault: Some(Fault {
                            until: cause,
                            latency: Some(LatencyDist::Fixed(400)),
                            failure_rate: None,
                            kind: None,
                        }),
                        ..agent(i, 4, normal)
                    })
                    .collect(),
                rate: 30.0,
                capabilities: caps(&["llm", "code-review", "git"]),
                strategy: Strategy::LeastConnections,
                cause,
                relief,
                expect: (BottleneckKind::Saturation, "default"),
            },
            Scenario::SlowAgent => Plan {
                // Round robin gives the slow agent its share of the work, so
                // it has samples to judge.
                agents: (0..8)
                    .map(|i| SimAgentConfig {
                        fault: (i == 0).then_some(Fault {
                            until: cause,
                            latency: Some(LatencyDist::Fixed(600)),
                            failure_rate: None,
                            kind: None,
                        }),
                        ..agent(i, 256, LatencyDist::Uniform { min: 10, max: 30 })
                    })
                    .collect(),
                rate: 100.0,
                capabilities: caps(&["llm", "code-review", "git"]),
                strategy: Strategy::RoundRobin,
                cause,
                relief,
                expect: (BottleneckKind::SlowAgent, "agent-000"),
            },
            Scenario::FailingCapability => Plan {
                agents: (0..8)
                    .map(|i| SimAgentConfig {
                        fault: Some(Fault {
                            until: cause,
                            latency: None,
                            failure_rate: Some(0.6),
                            kind: Some("code-review".into()),
                        }),
                        ..agent(i, 64, normal)
                    })
                    .collect(),
                rate: 60.0,
                capabilities: caps(&["llm", "code-review", "git"]),
                strategy: Strategy::LeastConnections,
                cause,
                relief,
                expect: (BottleneckKind::FailingStep, "code-review"),
            },
            Scenario::Starved => {
                let mut agents: Vec<SimAgentConfig> =
                    (0..4).map(|i| agent(i, 64, normal)).collect();
                agents.push(SimAgentConfig {
                    id: "gpu-000".into(),
                    capabilities: caps(&["gpu"]),
                    capacity: 256,
                    joins_after: Some(cause),
                    ..agent(99, 256, normal)
                });
                Plan {
                    agents,
                    rate: 20.0,
                    capabilities: caps(&["llm", "git", "gpu"]),
                    strategy: Strategy::LeastConnections,
                    cause,
                    relief,
                    expect: (BottleneckKind::StarvedCapability, "gpu"),
                }
            }
        }
    }
}

/// One finding a scenario run produced (merged over partitions: each
/// partition judges the workflows it owns, so a pool-wide condition is
/// usually seen by several).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Produced {
    pub key: String,
    pub kind: &'static str,
    pub subject: String,
    pub peak_severity: i32,
    pub partitions: usize,
    /// From the start of the run to the first detection.
    pub detected_after_s: f64,
    /// From the end of the cause to the last partition's resolution (None
    /// while any partition still has it active).
    pub resolved_after_cause_s: Option<f64>,
}

/// The findings of a run that started at `start` and whose cause ended at
/// `cause_end`, in order of first detection.
pub fn produced(
    states: &[crate::domain::engine::PartitionState],
    start: crate::domain::events::Timestamp,
    cause_end: crate::domain::events::Timestamp,
) -> Vec<Produced> {
    use crate::domain::bottleneck::kind_name;
    use std::collections::BTreeMap;
    let secs = |a: crate::domain::events::Timestamp, b: crate::domain::events::Timestamp| {
        ((b.0 - a.0) as f64 / 1e6 * 1000.0).round() / 1000.0
    };
    // key → (kind, subject, first seen, peak, partitions, resolved at, active)
    let mut by_key: BTreeMap<String, Produced> = BTreeMap::new();
    let mut first: BTreeMap<String, crate::domain::events::Timestamp> = BTreeMap::new();
    for s in states {
        let b = &s.bottlenecks;
        let episodes = b
            .recent
            .iter()
            .map(|r| {
                (
                    &r.key,
                    r.kind,
                    &r.subject,
                    r.first_seen,
                    r.peak_severity,
                    Some(r.resolved_at),
                )
            })
            .chain(
                b.active
                    .values()
                    .map(|d| (&d.key, d.kind, &d.subject, d.first_seen, d.severity, None)),
            );
        let mut seen_here = std::collections::BTreeSet::new();
        for (key, kind, subject, first_seen, peak, resolved) in episodes {
            if first_seen < start {
                continue;
            }
            let p = by_key.entry(key.clone()).or_insert_with(|| Produced {
                key: key.clone(),
                kind: kind_name(kind),
                subject: subject.clone(),
                peak_severity: peak,
                partitions: 0,
                detected_after_s: secs(start, first_seen),
                resolved_after_cause_s: Some(f64::MIN),
            });
            if seen_here.insert(key.clone()) {
                p.partitions += 1;
            }
            p.peak_severity = p.peak_severity.max(peak);
            let f = first.entry(key.clone()).or_insert(first_seen);
            if first_seen < *f {
                *f = first_seen;
                p.detected_after_s = secs(start, first_seen);
            }
            p.resolved_after_cause_s = match (p.resolved_after_cause_s, resolved) {
                (Some(prev), Some(r)) => Some(prev.max(secs(cause_end, r))),
                _ => None,
            };
        }
    }
    let mut out: Vec<Produced> = by_key.into_values().collect();
    out.sort_by(|a, b| a.detected_after_s.total_cmp(&b.detected_after_s));
    out
}
