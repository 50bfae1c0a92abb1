//! Telemetry: metric definitions ([`names`]), the Prometheus recorder, the
//! sampler that turns partition state into gauges ([`sampler`]), and
//! logging setup ([`logging`]).
//!
//! Invariants: the recorder is installed at most once per process (later
//! calls return the same handle); recording never fails or blocks the
//! engine; the exposition is rendered only when `/metrics` is scraped.

pub mod gauges;
pub mod logging;
pub mod names;
pub mod record;
pub mod sampler;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

pub use names::{Kind, Metric};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot install the Prometheus recorder: {0}")]
    Install(String),
}

/// Decision latency buckets, seconds: 0.1 ms .. 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0,
];
/// Per-batch work buckets, seconds: 10 µs .. 2.5 s.
const BATCH_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Gauges not set for this long leave the exposition.
const GAUGE_IDLE: Duration = Duration::from_secs(30);
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The installed recorder. Cheap to clone.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telemetry")
    }
}

static INSTALLED: OnceLock<Result<Telemetry, String>> = OnceLock::new();

impl Telemetry {
    /// Installs the Prometheus recorder (once per process) and describes
    /// every metric in [`names::ALL`].
    pub fn install() -> Result<Telemetry, TelemetryError> {
        INSTALLED
            .get_or_init(|| {
                // Partition gauges are refreshed every second by their
                // owner; a partition handed to another instance stops being
                // refreshed and its series leave the exposition.
                let handle = PrometheusBuilder::new()
                    .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE))
                    .set_buckets_for_metric(
                        Matcher::Full(names::DECISION_LATENCY.name.into()),
                        LATENCY_BUCKETS,
                    )
                    .and_then(|b| {
                        b.set_buckets_for_metric(
                            Matcher::Full(names::DECODE_DURATION.name.into()),
                            BATCH_BUCKETS,
                        )
                    })
                    .and_then(|b| {
                        b.set_buckets_for_metric(
                            Matcher::Full(names::FOLD_DURATION.name.into()),
                            BATCH_BUCKETS,
                        )
                    })
                    .map_err(|e| e.to_string())?
                    .install_recorder()
                    .map_err(|e| e.to_string())?;
                describe_all();
                register_at_zero();
                let process = metrics_process::Collector::default();
                process.describe();
                build_info();
                // Histograms buffer raw samples until upkeep folds them into
                // buckets; without a scrape that buffer would grow.
                let upkeep = handle.clone();
                std::thread::Builder::new()
                    .name("metrics-upkeep".into())
                    .spawn(move || loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    })
                    .map_err(|e| e.to_string())?;
                Ok(Telemetry {
                    inner: Arc::new(Inner { handle, process }),
                })
            })
            .clone()
            .map_err(TelemetryError::Install)
    }

    /// The Prometheus text exposition of every metric, process figures
    /// refreshed.
    pub fn render(&self) -> String {
        self.inner.process.collect();
        build_info();
        self.inner.handle.run_upkeep();
        self.inner.handle.render()
    }
}

/// Creates the counters of closed label sets at 0, so `increase()` sees
/// their first increment and dashboards show 0 rather than "no data".
fn register_at_zero() {
    for m in names::ALL
        .iter()
        .filter(|m| m.kind == Kind::Counter && m.labels.is_empty())
    {
        metrics::counter!(m.name).increment(0);
    }
    for status in ["succeeded", "failed", "cancelled", "timed_out", "rejected"] {
        metrics::counter!(names::WORKFLOWS_FINISHED.name, "status" => status).increment(0);
    }
    for strategy in [
        "round_robin",
        "least_connections",
        "weighted",
        "performance_based",
    ] {
        metrics::counter!(names::ASSIGNMENTS.name, "strategy" => strategy).increment(0);
    }
    for direction in ["in", "out"] {
        metrics::counter!(names::TOKENS.name, "direction" => direction).increment(0);
    }
}

fn build_info() {
    metrics::gauge!(names::BUILD_INFO.name, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

fn describe_all() {
    for m in names::ALL {
        let unit = if m.name.ends_with("_seconds") {
            metrics::Unit::Seconds
        } else {
            metrics::Unit::Count
        };
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, unit, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, unit, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, unit, m.help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::engine::{EngineConfig, PartitionState};

    #[test]
    fn the_exposition_describes_and_carries_the_recorded_series() {
        let t = Telemetry::install().unwrap();
        let state = PartitionState::new(EngineConfig::default());
        let g = gauges::PartitionGauges::of(&state, gauges::AgentLabels::default());
        assert_eq!(g.workflows, [0, 0]);
        g.publish(7);
        record::count(&names::JOURNAL_APPENDS, 2);
        record::decision_latencies(&[1_500, 30_000]);
        let text = t.render();
        for want in [
            "# TYPE baton_journal_appends_total counter",
            "# HELP baton_journal_appends_total Journal append calls",
            "baton_workflows{partition=\"7\",state=\"running\"} 0",
            "baton_bottleneck_severity_max{partition=\"7\",kind=\"stuck_step\"} 0",
            "baton_decision_latency_seconds_bucket{le=\"0.0025\"} 1",
            "baton_build_info{version=",
            "process_resident_memory_bytes",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        // A second install is the same recorder.
        assert!(Telemetry::install().is_ok());
    }

    #[test]
    fn every_metric_is_named_by_the_convention() {
        let mut seen = std::collections::BTreeSet::new();
        for m in names::ALL {
            assert!(seen.insert(m.name), "{} twice", m.name);
            assert!(m.name.starts_with("baton_"), "{}", m.name);
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}: only counters end in _total",
                m.name
            );
            assert!(!m.labels.contains(&"workflow"), "{}", m.name);
            assert!(!m.help.is_empty());
        }
    }
}
