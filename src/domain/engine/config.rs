//! Engine settings that shape decisions (so they are part of determinism:
//! replay must use the same values).

use crate::domain::bottleneck::BottleneckConfig;
use crate::domain::scheduler::SchedulerConfig;
use crate::domain::workflow::Limits;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub limits: Limits,
    /// Workflows running at once per partition; more are Queued.
    pub max_running_workflows: usize,
    /// A heartbeat later than `interval × degraded_after` makes an agent Degraded.
    pub degraded_after: f64,
    /// A heartbeat later than `interval × lost_after` makes it Lost.
    pub lost_after: f64,
    /// Error rate (over at least `min_outcomes`) that makes an agent Degraded.
    pub degraded_error_rate: f64,
    pub min_outcomes: u64,
    /// Input event ids remembered for duplicate detection.
    pub dedup_window: usize,
    pub scheduler: SchedulerConfig,
    pub bottleneck: BottleneckConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            limits: Limits::default(),
            max_running_workflows: 100_000,
            degraded_after: 1.5,
            lost_after: 3.0,
            degraded_error_rate: 0.5,
            min_outcomes: 20,
            dedup_window: 50_000,
            scheduler: SchedulerConfig {
                default_strategy: crate::domain::events::Strategy::LeastConnections,
                pool_strategies: Default::default(),
            },
            bottleneck: BottleneckConfig::default(),
        }
    }
}
