//! The detectors: pure functions from the projection's figures and the
//! partition's gauges to [`Signal`]s, one per subject they judged.
//!
//! Every detector reduces its subject to one `ratio` = observed ÷ threshold
//! (≥ 1 fires; see [`super::severity`] for the severity formula) and says
//! why in `evidence` (the figures, with the window in `window_s`) and in a
//! recommendation with numbers. Rates and quantiles are only judged with at
//! least `min_samples` observations in the window, so a quiet subject never
//! fires on noise. Signals come out in a total order (detector, subject).

use std::collections::BTreeMap;

use super::stats::{Stats, SubjectStats};
use super::window::Bucket;
use super::{finding_key, severity, BottleneckConfig};
use crate::domain::events::{BottleneckKind, SubjectType, Timestamp};

/// Load and capacity of a pool right now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolGauge {
    pub pool: String,
    /// Slots of agents that may get work (not lost, not draining).
    pub capacity: u64,
    /// Steps held by those agents (the larger of this partition's count and
    /// the agent's own report, which covers every partition).
    pub in_flight: u64,
    /// Ready steps waiting in this partition.
    pub queued: u64,
    /// Agents that may get work.
    pub agents: u64,
    /// Capabilities the pool's waiting steps need (union over classes).
    pub capabilities: Vec<String>,
}

/// Ready steps that no schedulable agent can run.
#[derive(Clone, Debug, PartialEq)]
pub struct StarvedClass {
    pub pool: String,
    pub capabilities: Vec<String>,
    pub queued: u64,
}

/// An attempt held by an agent with no outcome yet.
#[derive(Clone, Debug, PartialEq)]
pub struct RunningAttempt {
    pub kind: String,
    pub agent: Option<String>,
    pub elapsed_ms: f64,
}

/// What the detectors read besides the projection.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    pub pools: Vec<PoolGauge>,
    pub starved: Vec<StarvedClass>,
    pub running: Vec<RunningAttempt>,
    /// Pool of every known agent.
    pub agent_pool: BTreeMap<String, String>,
}

/// One detector's judgement of one subject.
#[derive(Clone, Debug, PartialEq)]
pub struct Signal {
    pub key: String,
    pub kind: BottleneckKind,
    pub subject_type: SubjectType,
    pub subject: String,
    /// Over its detection threshold now.
    pub firing: bool,
    pub ratio: f64,
    pub severity: i32,
    pub window_ms: i64,
    pub evidence: BTreeMap<String, f64>,
    pub recommendation: String,
}

struct Ctx<'a> {
    stats: &'a Stats,
    cfg: &'a BottleneckConfig,
    now: Timestamp,
    short_s: f64,
    out: Vec<Signal>,
}

impl Ctx<'_> {
    fn short(&self, s: &SubjectStats) -> Bucket {
        s.short(self.now)
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        kind: BottleneckKind,
        subject_type: SubjectType,
        subject: &str,
        ratio: f64,
        firing: bool,
        mut evidence: BTreeMap<String, f64>,
        recommendation: String,
    ) {
        evidence.insert("window_s".into(), round(self.short_s, 3));
        evidence.insert("ratio".into(), round(ratio, 3));
        self.out.push(Signal {
            key: finding_key(kind, subject_type, subject),
            kind,
            subject_type,
            subject: subject.to_string(),
            firing,
            ratio,
            severity: severity(ratio),
            window_ms: self.cfg.short_window_ms,
            evidence,
            recommendation,
        });
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn ev(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), round(*v, 3)))
        .collect()
}

fn secs(ms: f64) -> f64 {
    ms / 1000.0
}

fn caps_text(caps: &[String]) -> String {
    if caps.is_empty() {
        "no particular capability".into()
    } else {
        let quoted: Vec<String> = caps.iter().map(|c| format!("`{c}`")).collect();
        format!("capabilities {}", quoted.join(", "))
    }
}

/// Runs every detector.
pub fn detect(stats: &Stats, g: &Gauges, cfg: &BottleneckConfig, now: Timestamp) -> Vec<Signal> {
    let mut cx = Ctx {
        stats,
        cfg,
        now,
        short_s: stats.span_s(cfg.short_window_ms, now),
        out: Vec::new(),
    };
    saturation_and_backlog(&mut cx, g);
    slow_and_failing_steps(&mut cx);
    slow_and_failing_agents(&mut cx, g);
    starved(&mut cx, g);
    stuck(&mut cx, g);
    cx.out
}

/// Saturation: in flight ÷ capacity over `saturation` while the queue grows
/// (more arrivals than assignments in the window). QueueBacklog: wait p95
/// over `backlog_wait_ms`.
fn saturation_and_backlog(cx: &mut Ctx<'_>, g: &Gauges) {
    let cfg = cx.cfg;
    for pg in &g.pools {
        let Some(s) = cx.stats.pools.get(&pg.pool) else {
            continue;
        };
        let f = cx.short(s);
        let long = s.long(cx.now);
        let partitions = f64::from(cfg.partitions.max(1));
        let arrival = f.arrivals as f64 / cx.short_s * partitions;
        let service_s = secs(if f.run.is_empty() {
            long.run.mean()
        } else {
            f.run.mean()
        });
        let cap = pg.capacity as f64;
        let per_agent = if pg.agents == 0 {
            cap.max(1.0)
        } else {
            (cap / pg.agents as f64).max(1.0)
        };
        let queued = pg.queued as f64 * partitions;
        // Demand: what arrives plus clearing the backlog within one window
        // (a saturated pool throttles the arrivals of downstream steps, so
        // arrivals alone understate it).
        let window_s = cfg.short_window_ms as f64 / 1000.0;
        let demand = arrival + queued / window_s;
        let needed = demand * service_s / cfg.target_utilisation;
        let add_agents = ((needed - cap) / per_agent).ceil().max(1.0);

        let sat = if cap > 0.0 {
            pg.in_flight as f64 / cap
        } else {
            0.0
        };
        let growing = pg.queued > 0 && f.arrivals > f.assigned.saturating_sub(f.requeued);
        let ratio = if cap > 0.0 {
            sat / cfg.saturation * (1.0 + queued / cap)
        } else {
            0.0
        };
        let rec = if needed > cap {
            format!(
                "add {add_agents} agents with {} to pool `{}`: (arrival {arrival:.1}/s + backlog {queued:.0} ÷ {window_s:.0} s window) × mean service {service_s:.2} s ÷ target utilisation {} = {needed:.1} slots, have {cap}",
                caps_text(&pg.capabilities), pg.pool, cfg.target_utilisation
            )
        } else {
            format!(
                "pool `{}` runs at {:.0}% with {queued:.0} steps queued: (arrival {arrival:.1}/s + backlog ÷ {window_s:.0} s window) × mean service {service_s:.2} s ÷ target utilisation {} = {needed:.1} slots, have {cap}; the queue is a burst — add {add_agents} agents with {} if it persists",
                pg.pool, sat * 100.0, cfg.target_utilisation, caps_text(&pg.capabilities)
            )
        };
        cx.push(
            BottleneckKind::Saturation,
            SubjectType::Pool,
            &pg.pool,
            ratio,
            sat >= cfg.saturation && growing,
            ev(&[
                ("saturation", sat),
                ("in_flight", pg.in_flight as f64),
                ("capacity", cap),
                ("queued", queued),
                ("arrival_per_s", arrival),
                ("demand_per_s", demand),
                (
                    "assigned_per_s",
                    f.assigned as f64 / cx.short_s * partitions,
                ),
                ("mean_service_s", service_s),
                ("needed_slots", needed),
            ]),
            rec,
        );

        if f.assigned >= cfg.min_samples {
            let p95 = f.wait.quantile(0.95);
            let ratio = p95 / cfg.backlog_wait_ms;
            // Slots that drain the queue within the target wait.
            let target_s = secs(cfg.backlog_wait_ms);
            let extra = queued * service_s / target_s;
            let agents = (extra / per_agent).ceil().max(1.0);
            cx.push(
                BottleneckKind::QueueBacklog,
                SubjectType::Pool,
                &pg.pool,
                ratio,
                ratio >= 1.0,
                ev(&[
                    ("wait_p50_ms", f.wait.quantile(0.5)),
                    ("wait_p95_ms", p95),
                    ("wait_p99_ms", f.wait.quantile(0.99)),
                    ("threshold_ms", cfg.backlog_wait_ms),
                    ("queued", queued),
                    ("samples", f.assigned as f64),
                ]),
                format!(
                    "wait p95 {:.1} s is over {:.1} s in pool `{}`: draining {queued:.0} queued steps × {service_s:.2} s within {target_s:.1} s needs {extra:.1} more slots — add {agents} agents with {}",
                    secs(p95), target_s, pg.pool, caps_text(&pg.capabilities)
                ),
            );
        }
    }
}

/// SlowStep: a kind's p95 over `slow_step_factor` × its long-window p95.
/// FailingStep: a kind's failure rate over `failure_rate`.
fn slow_and_failing_steps(cx: &mut Ctx<'_>) {
    let cfg = cx.cfg;
    for (kind, s) in cx.stats.kinds.sorted() {
        let f = cx.short(s);
        if f.done < cfg.min_samples {
            continue;
        }
        // The baseline leaves out the window it is compared with, or a
        // lasting slowdown would soon become its own baseline.
        let recent = Timestamp(
            cx.now
                .0
                .saturating_sub(cfg.short_window_ms.saturating_mul(1000)),
        );
        let long = s.long_before(cx.now, recent);
        if long.done >= 2 * cfg.min_samples {
            let p95 = f.run.quantile(0.95);
            let base = long.run.quantile(0.95).max(1.0);
            let ratio = if p95 - base >= cfg.min_effect_ms {
                p95 / (cfg.slow_step_factor * base)
            } else {
                0.0
            };
            cx.push(
                BottleneckKind::SlowStep,
                SubjectType::StepKind,
                kind,
                ratio,
                ratio >= 1.0,
                ev(&[
                    ("run_p95_ms", p95),
                    ("baseline_p95_ms", base),
                    ("factor", p95 / base),
                    ("samples", f.done as f64),
                ]),
                format!(
                    "step kind `{kind}` runs {:.1}× slower than its {}-minute baseline (p95 {:.2} s vs {:.2} s): check its agents and inputs; timeouts of this kind should stay above its p99 {:.2} s",
                    p95 / base,
                    cfg.long_window_ms / 60_000,
                    secs(p95),
                    secs(base),
                    secs(f.run.quantile(0.99))
                ),
            );
        }
        let rate = f.failure_rate();
        let ratio = rate / cfg.failure_rate;
        cx.push(
            BottleneckKind::FailingStep,
            SubjectType::StepKind,
            kind,
            ratio,
            ratio >= 1.0,
            ev(&[
                ("failure_rate", rate),
                ("timeout_rate", f.timeout_rate()),
                ("failed", f.failed as f64),
                ("timed_out", f.timed_out as f64),
                ("samples", f.done as f64),
            ]),
            format!(
                "{} of {} attempts of step kind `{kind}` failed ({} timed out) in the last {:.0} s, {:.0}% over the {:.0}% limit: each failure costs a retry; check the step's inputs and the agents running it",
                f.failed + f.timed_out,
                f.done,
                f.timed_out,
                cx.short_s,
                rate * 100.0,
                cfg.failure_rate * 100.0
            ),
        );
    }
}

/// SlowAgent: an agent's p95 over `slow_agent_factor` × its pool's p95.
/// FailingAgent: an agent's failure rate over `failure_rate`.
fn slow_and_failing_agents(cx: &mut Ctx<'_>, g: &Gauges) {
    let cfg = cx.cfg;
    let kind_counts: BTreeMap<&str, (u64, u64)> = cx
        .stats
        .kinds
        .sorted()
        .into_iter()
        .map(|(k, s)| {
            let f = s.short(cx.now);
            (k.as_str(), (f.done, f.failed + f.timed_out))
        })
        .collect();
    for (agent, s) in cx.stats.agents.sorted() {
        let f = cx.short(s);
        if f.done < cfg.min_samples {
            continue;
        }
        let pool = g.agent_pool.get(agent);
        let pool_f = pool
            .and_then(|p| cx.stats.pools.get(p))
            .map(|p| p.short(cx.now));
        let others_done = pool_f.as_ref().map_or(0, |p| p.done.saturating_sub(f.done));
        if let (Some(pool), Some(pf), true) = (pool, &pool_f, others_done >= cfg.min_samples) {
            // Compared with the rest of its pool, so one slow agent in a
            // small pool does not drag its own yardstick up.
            let mut others = pf.run.clone();
            others.subtract(&f.run);
            let p95 = f.run.quantile(0.95);
            let base = others.quantile(0.95).max(1.0);
            // Slow at the median too: one long tail sample in a small
            // window does not make a slow agent.
            let p50_ratio = f.run.quantile(0.5) / others.quantile(0.5).max(1.0);
            let ratio = if p95 - base >= cfg.min_effect_ms {
                (p95 / base).min(p50_ratio) / cfg.slow_agent_factor
            } else {
                0.0
            };
            let share = if pf.done == 0 {
                0.0
            } else {
                f.done as f64 / pf.done as f64
            };
            cx.push(
                BottleneckKind::SlowAgent,
                SubjectType::Agent,
                agent,
                ratio,
                ratio >= 1.0,
                ev(&[
                    ("run_p95_ms", p95),
                    ("others_run_p95_ms", base),
                    ("factor", p95 / base),
                    ("p50_factor", p50_ratio),
                    ("share_of_pool", share),
                    ("samples", f.done as f64),
                ]),
                format!(
                    "drain or replace agent `{agent}`: p95 {:.2} s is {:.1}× the rest of pool `{pool}` ({:.2} s) and it ran {:.0}% of the pool's attempts; the `performance_based` strategy routes work away from it",
                    secs(p95),
                    p95 / base,
                    secs(base),
                    share * 100.0
                ),
            );
        }
        // Compared with the rest of its pool too: when every agent fails a
        // step kind, the step is the problem (FailingStep), not the agents.
        let rate = f.failure_rate();
        let pool_rate = pool_f.as_ref().map_or(0.0, Bucket::failure_rate);
        let (others_bad, others_done) = pool_f.as_ref().map_or((0, 0), |p| {
            (
                (p.failed + p.timed_out).saturating_sub(f.failed + f.timed_out),
                p.done.saturating_sub(f.done),
            )
        });
        let others_rate = if others_done == 0 {
            0.0
        } else {
            others_bad as f64 / others_done as f64
        };
        // Significantly worse than the rest of the pool on the same work:
        // the expected failures follow from the step kinds this agent ran
        // (at the others' rate for each kind), and a one-sided z-test
        // (z ≥ 4: detectors run every few seconds on every agent, so a looser test would fire by chance) keeps small samples and an unlucky mix (e.g. the agent
        // that got most retries of a failing kind) from blaming the agent.
        let (mut expected, mut var) = (0.0, 0.0);
        for (kind, counts) in s.mix() {
            let (n, own_bad) = counts.sum(cx.now);
            if n == 0 {
                continue;
            }
            let (kn, kbad) = kind_counts.get(kind.as_str()).copied().unwrap_or((0, 0));
            let (on, obad) = (kn.saturating_sub(n), kbad.saturating_sub(own_bad));
            // A kind too few others ran is no evidence either way: expect
            // what the agent itself did.
            let p = if on >= cfg.min_samples {
                obad as f64 / on as f64
            } else {
                own_bad as f64 / n as f64
            }
            .clamp(0.01, 0.99);
            expected += n as f64 * p;
            var += n as f64 * p * (1.0 - p);
        }
        let bad = (f.failed + f.timed_out) as f64;
        let z = (bad - expected) / var.max(1e-9).sqrt();
        // Without enough work elsewhere in the pool there is nothing to
        // compare with: FailingStep speaks for the kinds instead.
        let worse_than_others = others_done >= cfg.min_samples && z >= 4.0;
        let ratio = if worse_than_others {
            rate / cfg.failure_rate
        } else {
            0.0
        };
        cx.push(
            BottleneckKind::FailingAgent,
            SubjectType::Agent,
            agent,
            ratio,
            ratio >= 1.0,
            ev(&[
                ("failure_rate", rate),
                ("pool_failure_rate", pool_rate),
                ("others_failure_rate", others_rate),
                ("expected_failed", expected),
                ("z", z),
                ("failed", f.failed as f64),
                ("timed_out", f.timed_out as f64),
                ("samples", f.done as f64),
            ]),
            format!(
                "drain agent `{agent}`: {} of its {} attempts failed ({:.0}%, {expected:.1} expected for its step kinds; the rest of its pool {:.0}%) in the last {:.0} s",
                f.failed + f.timed_out,
                f.done,
                rate * 100.0,
                others_rate * 100.0,
                cx.short_s
            ),
        );
    }
}

/// StarvedCapability: ready steps that no schedulable agent can run.
fn starved(cx: &mut Ctx<'_>, g: &Gauges) {
    let mut by_subject: BTreeMap<String, (u64, Vec<&str>, &[String])> = BTreeMap::new();
    for c in &g.starved {
        let subject = if c.capabilities.is_empty() {
            format!("pool:{}", c.pool)
        } else {
            c.capabilities.join("+")
        };
        let e = by_subject
            .entry(subject)
            .or_insert((0, Vec::new(), &c.capabilities));
        e.0 += c.queued;
        e.1.push(&c.pool);
    }
    for (subject, (queued, pools, caps)) in by_subject {
        let ratio = 1.0 + queued as f64 / 50.0;
        let pools: Vec<String> = pools.iter().map(|p| format!("`{p}`")).collect();
        cx.push(
            BottleneckKind::StarvedCapability,
            SubjectType::Capability,
            &subject,
            ratio,
            true,
            ev(&[("queued", queued as f64)]),
            format!(
                "register at least 1 agent with {} in pool {}: {queued} ready steps wait and no healthy agent can run them",
                caps_text(caps),
                pools.join(", ")
            ),
        );
    }
}

/// StuckStep: attempts running beyond `stuck_factor` × their kind's p99
/// (long window) with no report.
fn stuck(cx: &mut Ctx<'_>, g: &Gauges) {
    let cfg = cx.cfg;
    let mut limits: BTreeMap<&str, Option<f64>> = BTreeMap::new();
    let mut hits: BTreeMap<&str, (u64, f64, BTreeMap<&str, u64>)> = BTreeMap::new();
    for r in &g.running {
        let limit = *limits.entry(r.kind.as_str()).or_insert_with(|| {
            let long = cx.stats.kinds.get(&r.kind)?.long(cx.now);
            // Also at least a window: a step is stuck when it outlived the
            // window that would have shown its result.
            (long.done >= cfg.min_samples).then(|| {
                (cfg.stuck_factor * long.run.quantile(0.99).max(1.0))
                    .max(cfg.short_window_ms as f64)
            })
        });
        let Some(limit) = limit else { continue };
        if r.elapsed_ms > limit {
            let h = hits.entry(r.kind.as_str()).or_default();
            h.0 += 1;
            h.1 = h.1.max(r.elapsed_ms);
            if let Some(a) = &r.agent {
                *h.2.entry(a.as_str()).or_default() += 1;
            }
        }
    }
    for (kind, (n, oldest, agents)) in hits {
        let limit = limits.get(kind).copied().flatten().unwrap_or(1.0);
        let p99 = cx
            .stats
            .kinds
            .get(kind)
            .map_or(0.0, |s| s.long(cx.now).run.quantile(0.99));
        let ratio = oldest / limit;
        let agents: Vec<String> = agents
            .iter()
            .take(5)
            .map(|(a, n)| format!("`{a}` ({n})"))
            .collect();
        cx.push(
            BottleneckKind::StuckStep,
            SubjectType::StepKind,
            kind,
            ratio,
            ratio >= 1.0,
            ev(&[
                ("stuck", n as f64),
                ("oldest_ms", oldest),
                ("p99_ms", p99),
                ("limit_ms", limit),
            ]),
            format!(
                "{n} attempts of step kind `{kind}` have run up to {:.1} s, over {:.1} s ({}× its p99 of {:.2} s, at least a window), without a report (agents {}): give the step a timeout of about {:.0} ms so they are retried",
                secs(oldest),
                secs(limit),
                cfg.stuck_factor,
                secs(p99),
                agents.join(", "),
                2.0 * p99
            ),
        );
    }
}
