//! The fleet report (`baton report`, `baton inspect bottlenecks`): the
//! bottleneck projections of every partition merged into one picture —
//! fleet summary, per-pool / capability / agent / step-kind / workflow
//! tables, findings with their recommendations, usage and cost.
//!
//! Pure: it takes the loaded partition states and a moment; the CLI reads
//! the stores and renders. Figures are over one of the projection's windows
//! ending at the latest observed event (so a report of a finished run shows
//! that run, not an empty last minute), or over all history.
//! Shape: `baton.report/v1`, documented in the README.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::bottleneck::{kind_name, subject_type_name, Bucket, Keyed, Stats, SubjectStats};
use crate::domain::engine::PartitionState;
use crate::domain::events::{AgentHealth, Timestamp};

/// Which figures a report shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Span {
    /// The detection window (default 1 min).
    Short,
    /// The long window (default 15 min).
    Long,
    /// Everything since the projection started.
    All,
}

/// Figures of one subject.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    pub name: String,
    pub arrivals_per_s: f64,
    pub throughput_per_s: f64,
    pub done: u64,
    pub failure_rate: f64,
    pub timeout_rate: f64,
    pub wait_p50_ms: f64,
    pub wait_p95_ms: f64,
    pub wait_p99_ms: f64,
    pub run_p50_ms: f64,
    pub run_p95_ms: f64,
    pub run_p99_ms: f64,
    pub run_mean_ms: f64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost: f64,
}

/// A pool row: its figures plus capacity and load now.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PoolRow {
    #[serde(flatten)]
    pub figures: Row,
    pub agents: u64,
    pub capacity: u64,
    pub in_flight: u64,
    pub saturation: f64,
    pub queued: u64,
}

/// An agent row.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AgentRow {
    #[serde(flatten)]
    pub figures: Row,
    pub pool: String,
    pub health: String,
    pub in_flight: u64,
    pub capacity: u64,
}

/// An active finding (merged over the partitions that hold it).
#[derive(Clone, Debug, Serialize)]
pub struct FindingRow {
    pub key: String,
    pub kind: &'static str,
    pub subject_type: &'static str,
    pub subject: String,
    pub severity: i32,
    pub evidence: BTreeMap<String, f64>,
    pub recommendation: String,
    pub first_seen: String,
    pub last_seen: String,
    /// Partitions that detected it (each judges the workflows it owns).
    pub partitions: Vec<u32>,
}

/// A resolved finding.
#[derive(Clone, Debug, Serialize)]
pub struct ResolvedRow {
    pub key: String,
    pub kind: &'static str,
    pub subject: String,
    pub peak_severity: i32,
    pub first_seen: String,
    pub resolved_at: String,
    pub partition: u32,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub partitions: u32,
    pub agents: u64,
    pub agents_by_health: BTreeMap<String, u64>,
    pub pools: usize,
    pub attempts: u64,
    pub throughput_per_s: f64,
    pub failure_rate: f64,
    pub workflows_finished: u64,
    pub workflows_failed: u64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost: f64,
    pub active_findings: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct FleetReport {
    pub format: &'static str,
    /// The end of the window: the latest event any partition observed.
    pub at: String,
    pub window: String,
    pub window_s: f64,
    pub summary: Summary,
    pub pools: Vec<PoolRow>,
    pub capabilities: Vec<Row>,
    pub agents: Vec<AgentRow>,
    pub step_kinds: Vec<Row>,
    pub workflows: Vec<Row>,
    /// Most severe first.
    pub findings: Vec<FindingRow>,
    /// Latest first.
    pub resolved: Vec<ResolvedRow>,
}

impl FindingRow {
    /// The evidence as `key=value` pairs, space-separated.
    pub fn evidence_text(&self) -> String {
        let pairs: Vec<String> = self
            .evidence
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        pairs.join(" ")
    }
}

impl Summary {
    /// Agents by health, e.g. `18 healthy, 2 lost`.
    pub fn health_text(&self) -> String {
        let parts: Vec<String> = self
            .agents_by_health
            .iter()
            .map(|(h, n)| format!("{n} {h}"))
            .collect();
        parts.join(", ")
    }
}

fn rfc3339(t: Timestamp) -> String {
    t.to_datetime()
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| t.0.to_string())
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn figures(s: &SubjectStats, span: Span, at: Timestamp) -> Bucket {
    match span {
        Span::Short => s.short(at),
        Span::Long => s.long(at),
        Span::All => s.total(),
    }
}

fn row(name: &str, b: &Bucket, secs: f64) -> Row {
    Row {
        name: name.to_string(),
        arrivals_per_s: round(b.arrivals as f64 / secs),
        throughput_per_s: round(b.done as f64 / secs),
        done: b.done,
        failure_rate: round(b.failure_rate()),
        timeout_rate: round(b.timeout_rate()),
        wait_p50_ms: b.wait.quantile(0.5),
        wait_p95_ms: b.wait.quantile(0.95),
        wait_p99_ms: b.wait.quantile(0.99),
        run_p50_ms: b.run.quantile(0.5),
        run_p95_ms: b.run.quantile(0.95),
        run_p99_ms: b.run.quantile(0.99),
        run_mean_ms: round(b.run.mean()),
        tokens_in: b.usage.tokens_in,
        tokens_out: b.usage.tokens_out,
        cost: round(b.usage.cost),
    }
}

fn rows(map: &Keyed<SubjectStats>, span: Span, at: Timestamp, secs: f64) -> Vec<Row> {
    map.sorted()
        .into_iter()
        .map(|(name, s)| row(name, &figures(s, span, at), secs))
        .collect()
}

/// Builds the report from every partition's loaded state (index = partition).
pub fn build(states: &[PartitionState], span: Span) -> FleetReport {
    let mut merged: Option<Stats> = None;
    for s in states {
        match &mut merged {
            None => merged = Some(s.bottlenecks.clone()),
            Some(m) => m.merge(&s.bottlenecks),
        }
    }
    let stats = merged.unwrap_or_else(|| Stats::new(60_000, 900_000));
    let at = stats.last_at;
    let (window, window_ms) = match span {
        Span::Short => (format!("{} s", stats.short_ms() / 1000), stats.short_ms()),
        Span::Long => (format!("{} s", stats.long_ms() / 1000), stats.long_ms()),
        Span::All => ("all".to_string(), i64::MAX / 1000),
    };
    let secs = stats.span_s(window_ms, at).max(0.001);

    // Agents: the home partition's view of each (it judges the agent's
    // health), else the freshest, with every partition's load summed.
    let mut agents: BTreeMap<String, AgentRow> = BTreeMap::new();
    let mut freshest: BTreeMap<String, (bool, Timestamp)> = BTreeMap::new();
    let mut local: BTreeMap<String, u64> = BTreeMap::new();
    for s in states {
        for a in s.agents.values() {
            *local.entry(a.id.clone()).or_default() +=
                u64::from(s.agent_load(&a.id).map_or(0, |(n, _)| n));
            let rank = (!a.forwarded(), a.last_heartbeat_at);
            if freshest.get(&a.id).is_some_and(|r| *r >= rank) {
                continue;
            }
            freshest.insert(a.id.clone(), rank);
            let health = if a.draining {
                "draining".to_string()
            } else {
                match a.health {
                    AgentHealth::Healthy => "healthy",
                    AgentHealth::Degraded => "degraded",
                    AgentHealth::Lost => "lost",
                }
                .to_string()
            };
            agents.insert(
                a.id.clone(),
                AgentRow {
                    figures: Row::default(),
                    pool: a.pool.clone(),
                    health,
                    in_flight: a.reported_in_flight.max(0) as u64,
                    capacity: a.capacity.max(0) as u64,
                },
            );
        }
    }
    for (id, a) in agents.iter_mut() {
        a.in_flight = a.in_flight.max(local.get(id).copied().unwrap_or(0));
        a.figures = match stats.agents.get(id) {
            Some(s) => row(id, &figures(s, span, at), secs),
            None => row(id, &Bucket::default(), secs),
        };
    }

    let mut pools: BTreeMap<String, PoolRow> = BTreeMap::new();
    for a in agents.values() {
        let p = pools.entry(a.pool.clone()).or_default();
        if a.health == "healthy" || a.health == "degraded" {
            p.agents += 1;
            p.capacity += a.capacity;
            p.in_flight += a.in_flight;
        }
    }
    for s in states {
        for (pool, depth) in s.queue_depths() {
            pools.entry(pool).or_default().queued += depth as u64;
        }
    }
    for name in stats.pools.keys() {
        pools.entry(name.clone()).or_default();
    }
    for (name, p) in pools.iter_mut() {
        p.figures = match stats.pools.get(name) {
            Some(s) => row(name, &figures(s, span, at), secs),
            None => row(name, &Bucket::default(), secs),
        };
        p.saturation = if p.capacity == 0 {
            0.0
        } else {
            round(p.in_flight as f64 / p.capacity as f64)
        };
    }

    let mut findings: BTreeMap<String, FindingRow> = BTreeMap::new();
    let mut resolved = Vec::new();
    for (p, s) in states.iter().enumerate() {
        for d in s.bottlenecks.active.values() {
            let f = findings.entry(d.key.clone()).or_insert_with(|| FindingRow {
                key: d.key.clone(),
                kind: kind_name(d.kind),
                subject_type: subject_type_name(d.subject_type),
                subject: d.subject.clone(),
                severity: d.severity,
                evidence: d.evidence.clone(),
                recommendation: d.recommendation.clone(),
                first_seen: rfc3339(d.first_seen),
                last_seen: rfc3339(d.last_seen),
                partitions: Vec::new(),
            });
            f.partitions.push(p as u32);
            if d.severity > f.severity {
                f.severity = d.severity;
                f.evidence = d.evidence.clone();
                f.recommendation = d.recommendation.clone();
            }
        }
        for r in &s.bottlenecks.recent {
            resolved.push((
                r.resolved_at,
                ResolvedRow {
                    key: r.key.clone(),
                    kind: kind_name(r.kind),
                    subject: r.subject.clone(),
                    peak_severity: r.peak_severity,
                    first_seen: rfc3339(r.first_seen),
                    resolved_at: rfc3339(r.resolved_at),
                    partition: p as u32,
                },
            ));
        }
    }
    let mut findings: Vec<FindingRow> = findings.into_values().collect();
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.key.cmp(&b.key)));
    resolved.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.key.cmp(&b.1.key)));

    let mut total = Bucket::default();
    for s in stats.pools.values() {
        total.merge(&figures(s, span, at));
    }
    let mut wf_total = Bucket::default();
    for s in stats.workflows.values() {
        wf_total.merge(&figures(s, span, at));
    }
    let mut by_health = BTreeMap::new();
    for a in agents.values() {
        *by_health.entry(a.health.clone()).or_insert(0) += 1;
    }
    let summary = Summary {
        partitions: states.len() as u32,
        agents: agents.len() as u64,
        agents_by_health: by_health,
        pools: pools.len(),
        attempts: total.done,
        throughput_per_s: round(total.done as f64 / secs),
        failure_rate: round(total.failure_rate()),
        workflows_finished: wf_total.done,
        workflows_failed: wf_total.failed,
        tokens_in: total.usage.tokens_in,
        tokens_out: total.usage.tokens_out,
        cost: round(total.usage.cost),
        active_findings: findings.len(),
    };
    FleetReport {
        format: "baton.report/v1",
        at: rfc3339(at),
        window,
        window_s: round(secs),
        summary,
        pools: pools.into_values().collect(),
        capabilities: rows(&stats.capabilities, span, at, secs),
        agents: agents.into_values().collect(),
        step_kinds: rows(&stats.kinds, span, at, secs),
        workflows: rows(&stats.workflows, span, at, secs),
        findings,
        resolved: resolved.into_iter().map(|(_, r)| r).take(50).collect(),
    }
}
