//! Thresholds and windows of bottleneck detection. They shape decisions
//! (Detected/Resolved facts), so like the rest of `EngineConfig` they are
//! part of determinism: replay never re-decides, but a live engine must use
//! the same values to reach the same findings.

/// Bottleneck detection settings.
#[derive(Clone, Debug, PartialEq)]
pub struct BottleneckConfig {
    /// Fold statistics and run detectors at all (off: the cost baseline).
    pub enabled: bool,
    /// The detection window (default 1 min).
    pub short_window_ms: i64,
    /// The baseline / reporting window (default 15 min).
    pub long_window_ms: i64,
    /// How often (event time) the detectors run.
    pub evaluate_every_ms: i64,
    /// Journal partitions the load is spread over: a partition sees about
    /// 1/partitions of a pool's arrivals, so recommendations scale by it.
    pub partitions: u32,
    /// Utilisation a pool should run at (sizing recommendations).
    pub target_utilisation: f64,
    /// Saturation (in flight ÷ capacity) over which a growing queue fires.
    pub saturation: f64,
    /// Wait p95 (ms) over which a pool has a backlog.
    pub backlog_wait_ms: f64,
    /// A step kind is slow when its p95 is this many times its long-window p95.
    pub slow_step_factor: f64,
    /// An agent is slow when its p95 is this many times its pool's.
    pub slow_agent_factor: f64,
    /// Failure rate (failed + timed out ÷ ended) that makes a finding.
    pub failure_rate: f64,
    /// Fewest samples in a window before a rate or quantile is judged.
    pub min_samples: u64,
    /// An attempt is stuck after this many times its kind's p99 (and at
    /// least a short window).
    pub stuck_factor: f64,
    /// Smallest slowdown (ms above the yardstick) worth a slow-step or
    /// slow-agent finding: 10 ms steps taking 40 ms are not a bottleneck.
    pub min_effect_ms: f64,
    /// A finding resolves once its ratio stays below this for a full window.
    pub resolve_ratio: f64,
}

impl Default for BottleneckConfig {
    fn default() -> Self {
        BottleneckConfig {
            enabled: true,
            short_window_ms: 60_000,
            long_window_ms: 900_000,
            evaluate_every_ms: 5_000,
            partitions: 1,
            target_utilisation: 0.8,
            saturation: 0.9,
            backlog_wait_ms: 30_000.0,
            slow_step_factor: 3.0,
            slow_agent_factor: 2.0,
            failure_rate: 0.2,
            min_samples: 20,
            stuck_factor: 3.0,
            min_effect_ms: 200.0,
            resolve_ratio: 0.8,
        }
    }
}

impl BottleneckConfig {
    /// Settings scaled to a short window of `ms` (long window 15×, evaluation
    /// every 1/12 of it, backlog threshold half of it): what demos and tests
    /// use to see episodes in seconds instead of minutes.
    pub fn with_window(mut self, ms: i64) -> Self {
        let ms = ms.max(100);
        self.short_window_ms = ms;
        self.long_window_ms = ms * 15;
        self.evaluate_every_ms = (ms / 12).max(10);
        self.backlog_wait_ms = ms as f64 / 2.0;
        self
    }
}
