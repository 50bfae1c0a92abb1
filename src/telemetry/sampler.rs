//! Once a second, per owned partition: where ingress ends (for lag and
//! `/readyz`), how old the last checkpoint is, how many partitions this
//! instance runs. One `high_watermark` call per partition per second is
//! all it asks of the log.
//!
//! Invariant: the sampler never blocks a partition loop; an unreachable
//! log only leaves the last figures in place (and logs at debug).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::names;
use crate::engine::live::Live;
use crate::log::EventLog;

pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Samples until `stop` turns true.
pub async fn run(
    log: Arc<dyn EventLog>,
    ingress: String,
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        sample(log.as_ref(), &ingress, &live).await;
    }
}

async fn sample(log: &dyn EventLog, ingress: &str, live: &Live) {
    let owned = live.owned();
    metrics::gauge!(names::PARTITIONS_OWNED.name).set(owned.len() as f64);
    for (p, rec) in owned {
        match log.high_watermark(ingress, p).await {
            Ok(end) => rec.ingress_end.store(end, Ordering::Relaxed),
            Err(e) => {
                tracing::debug!(partition = p, error = %e, "ingress end unknown; lag not updated")
            }
        }
        let part = p.to_string();
        metrics::gauge!(names::CONSUMER_LAG.name, "partition" => part.clone())
            .set(rec.lag() as f64);
        metrics::gauge!(names::CHECKPOINT_AGE.name, "partition" => part)
            .set(live.checkpoint_age_s(&rec));
    }
}
