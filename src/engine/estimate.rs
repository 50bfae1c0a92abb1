//! `baton estimate`: cost and duration of a workflow definition from
//! history — plain statistics with their sample counts, nothing invented.
//!
//! Per step, from the all-time figures of its step kind (merged over every
//! partition): mean and p90 of wait (ready → assigned) and run time,
//! failure rate, expected attempts `1 ÷ (1 − failure rate)` capped at the
//! step's `max_attempts`, and the mean usage of a successful attempt. The
//! workflow's duration is the longest path through the DAG (the critical
//! path) by mean step duration; its "p90" sums the steps' p90s along the
//! longest path by p90, an upper estimate (quantiles do not add). Cost is the
//! sum over all steps (conditions are not predicted). Kinds never seen have
//! 0 samples and count as 0.

use serde::Serialize;

use crate::domain::bottleneck::Stats;
use crate::domain::events::WorkflowDefinition;
use crate::domain::workflow::Dag;

#[derive(Clone, Debug, Serialize)]
pub struct StepEstimate {
    pub id: String,
    pub kind: String,
    /// Ended attempts of this kind in history.
    pub samples: u64,
    pub wait_mean_ms: f64,
    pub wait_p90_ms: f64,
    pub run_mean_ms: f64,
    pub run_p90_ms: f64,
    pub failure_rate: f64,
    pub expected_attempts: f64,
    /// Mean of one attempt: (wait + run) × expected attempts.
    pub duration_mean_ms: f64,
    pub duration_p90_ms: f64,
    pub cost_mean: f64,
    pub tokens_in_mean: f64,
    pub tokens_out_mean: f64,
    pub on_critical_path: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Estimate {
    pub format: &'static str,
    pub workflow: String,
    pub steps: Vec<StepEstimate>,
    pub critical_path: Vec<String>,
    pub duration_mean_s: f64,
    pub duration_p90_s: f64,
    pub cost_mean: f64,
    pub tokens_in_mean: f64,
    pub tokens_out_mean: f64,
    /// Step kinds with no history (their figures are 0).
    pub unknown_kinds: Vec<String>,
    /// Finished workflows of this definition name in history, with their
    /// measured mean and p90 duration, for comparison.
    pub history_workflows: u64,
    pub history_duration_mean_s: f64,
    pub history_duration_p90_s: f64,
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Steps in an order where every step comes after its dependencies.
fn topo_order(dag: &Dag) -> Vec<usize> {
    let n = dag.upstream.len();
    let mut pending: Vec<usize> = dag.upstream.iter().map(Vec::len).collect();
    let mut ready: Vec<usize> = dag.roots().collect();
    let mut out = Vec::with_capacity(n);
    while let Some(i) = ready.pop() {
        out.push(i);
        for &d in &dag.downstream[i] {
            pending[d] -= 1;
            if pending[d] == 0 {
                ready.push(d);
            }
        }
    }
    out
}

/// The longest path by `weight`: (total, steps in order).
fn longest_path(dag: &Dag, order: &[usize], weight: &[f64]) -> (f64, Vec<usize>) {
    let n = weight.len();
    let mut best = vec![0.0; n];
    let mut prev: Vec<Option<usize>> = vec![None; n];
    for &i in order {
        let (base, from) = dag.upstream[i]
            .iter()
            .map(|&u| (best[u], Some(u)))
            .fold((0.0, None), |acc, x| if x.0 > acc.0 { x } else { acc });
        best[i] = base + weight[i];
        prev[i] = from;
    }
    let Some(end) = (0..n).max_by(|&a, &b| best[a].total_cmp(&best[b]).then(b.cmp(&a))) else {
        return (0.0, Vec::new());
    };
    let mut path = vec![end];
    while let Some(p) = prev[*path.last().unwrap_or(&end)] {
        path.push(p);
    }
    path.reverse();
    (best[end], path)
}

pub fn estimate(def: &WorkflowDefinition, dag: &Dag, stats: &Stats) -> Estimate {
    let mut steps = Vec::new();
    let mut unknown = Vec::new();
    for s in def.steps.iter() {
        let kind = s.kind_or_id().to_string();
        let t = stats.kinds.get(&kind).map(|k| k.total());
        let t = match t {
            Some(t) if t.done > 0 => t,
            _ => {
                if !unknown.contains(&kind) {
                    unknown.push(kind.clone());
                }
                Default::default()
            }
        };
        let succeeded = t.done.saturating_sub(t.failed + t.timed_out);
        let per_success = |x: f64| {
            if succeeded == 0 {
                0.0
            } else {
                x / succeeded as f64
            }
        };
        let max_attempts = s.retry.as_ref().map_or(1, |r| r.max_attempts.max(1)) as f64;
        let fail = t.failure_rate();
        let attempts = if fail >= 1.0 {
            max_attempts
        } else {
            (1.0 / (1.0 - fail)).min(max_attempts)
        };
        let (wait_mean, run_mean) = (t.wait.mean(), t.run.mean());
        let (wait_p90, run_p90) = (t.wait.quantile(0.9), t.run.quantile(0.9));
        steps.push(StepEstimate {
            id: s.id.clone(),
            kind,
            samples: t.done,
            wait_mean_ms: r3(wait_mean),
            wait_p90_ms: wait_p90,
            run_mean_ms: r3(run_mean),
            run_p90_ms: run_p90,
            failure_rate: r3(fail),
            expected_attempts: r3(attempts),
            duration_mean_ms: r3((wait_mean + run_mean) * attempts),
            duration_p90_ms: r3((wait_p90 + run_p90) * attempts),
            cost_mean: r3(per_success(t.usage.cost)),
            tokens_in_mean: r3(per_success(t.usage.tokens_in as f64)),
            tokens_out_mean: r3(per_success(t.usage.tokens_out as f64)),
            on_critical_path: false,
        });
    }
    let order = topo_order(dag);
    let mean: Vec<f64> = steps.iter().map(|s| s.duration_mean_ms).collect();
    let p90: Vec<f64> = steps.iter().map(|s| s.duration_p90_ms).collect();
    let (mean_ms, path) = longest_path(dag, &order, &mean);
    let (p90_ms, _) = longest_path(dag, &order, &p90);
    for &i in &path {
        steps[i].on_critical_path = true;
    }
    let history = stats.workflows.get(&def.name).map(|w| w.total());
    let (hn, hmean, hp90) = history.map_or((0, 0.0, 0.0), |h| {
        (h.done, h.run.mean() / 1000.0, h.run.quantile(0.9) / 1000.0)
    });
    Estimate {
        format: "baton.estimate/v1",
        workflow: def.name.clone(),
        critical_path: path.iter().map(|&i| steps[i].id.clone()).collect(),
        duration_mean_s: r3(mean_ms / 1000.0),
        duration_p90_s: r3(p90_ms / 1000.0),
        cost_mean: r3(steps.iter().map(|s| s.cost_mean).sum()),
        tokens_in_mean: r3(steps.iter().map(|s| s.tokens_in_mean).sum()),
        tokens_out_mean: r3(steps.iter().map(|s| s.tokens_out_mean).sum()),
        steps,
        unknown_kinds: unknown,
        history_workflows: hn,
        history_duration_mean_s: r3(hmean),
        history_duration_p90_s: r3(hp90),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::bottleneck::{Outcome, StepFacts};
    use crate::domain::events::{StepDefinition, Timestamp, Usage};
    use crate::domain::workflow::{validate, Limits};

    fn step(id: &str, kind: &str, deps: &[&str]) -> StepDefinition {
        StepDefinition {
            kind: Some(kind.into()),
            ..StepDefinition::new(id, deps)
        }
    }

    #[test]
    fn the_critical_path_is_the_longest_mean_chain_and_cost_sums_every_step() {
        let mut stats = Stats::new(60_000, 900_000);
        let t = Timestamp(1_800_000_000_000_000);
        let usage = Usage {
            tokens_in: 100,
            tokens_out: 10,
            cost: 0.5,
        };
        for (kind, ms) in [("fetch", 1000), ("think", 4000), ("write", 2000)] {
            for _ in 0..10 {
                let f = StepFacts {
                    pool: "default",
                    capabilities: &[],
                    kind,
                };
                stats.assigned(t, f, "a1", 0);
                stats.ended(t, f, Some("a1"), ms, Outcome::Succeeded, Some(&usage));
            }
        }
        // fetch → think → write, and fetch → write: the path through think wins.
        let def = WorkflowDefinition {
            name: "w".into(),
            steps: vec![
                step("a", "fetch", &[]),
                step("b", "think", &["a"]),
                step("c", "write", &["a", "b"]),
                step("d", "mystery", &[]),
            ]
            .into(),
            input: None,
            deadline_ms: None,
            priority: 0,
            labels: Default::default(),
        };
        let dag = validate(&def, &Limits::default()).unwrap();
        let e = estimate(&def, &dag, &stats);
        assert_eq!(e.critical_path, ["a", "b", "c"]);
        assert!(
            (e.duration_mean_s - 7.0).abs() < 0.1,
            "{}",
            e.duration_mean_s
        );
        assert_eq!(e.cost_mean, 1.5);
        assert_eq!(e.unknown_kinds, ["mystery"]);
        assert_eq!(e.steps[0].samples, 10);
        assert_eq!(e.steps[3].samples, 0);
    }
}
