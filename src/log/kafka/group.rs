//! Consumer-group membership on Kafka: a consumer subscribed to the ingress
//! topic whose only jobs are to hold the membership, report rebalances as
//! [`OwnershipChange`]s and commit the group's offsets.
//!
//! Invariants:
//! - It never delivers records: assigned partitions are paused at once; the
//!   engine reads through its own positioned readers.
//! - A revocation blocks the rebalance until the engine answers (it flushes
//!   and commits first), at most [`REVOKE_BOUND`].
//! - Offsets are committed through this member (with its generation), so a
//!   broker that checks membership accepts them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::sync::mpsc::UnboundedSender;

use crate::log::membership::{Membership, OwnershipChange};

/// Longest a rebalance waits for the engine to hand a partition over.
pub const REVOKE_BOUND: Duration = Duration::from_secs(60);

pub struct GroupContext {
    topic: String,
    changes: UnboundedSender<OwnershipChange>,
}

impl ClientContext for GroupContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        super::client_log::log(level, fac, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        super::client_log::report_error(&error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let partitions = partitions_of(tpl, &self.topic);
            if partitions.is_empty() {
                return;
            }
            if c.assignment_lost() {
                // Expelled (missed heartbeats): another member may already
                // work on them; stop at once.
                tracing::warn!(
                    ?partitions,
                    "partitions lost: this member was expelled from the group; stopping them"
                );
            } else {
                tracing::info!(?partitions, "partitions revoked; handing them over");
            }
            let (done, answered) = mpsc::channel();
            if self
                .changes
                .send(OwnershipChange::Revoked { partitions, done })
                .is_ok()
                && answered.recv_timeout(REVOKE_BOUND).is_err()
            {
                tracing::warn!("the engine did not hand revoked partitions over in time");
            }
        }
    }

    fn post_rebalance(&self, c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                if let Err(e) = c.pause(tpl) {
                    tracing::warn!(error = %e, "pausing the membership consumer");
                }
                let partitions = partitions_of(tpl, &self.topic);
                tracing::info!(?partitions, "partitions assigned");
                let _ = self.changes.send(OwnershipChange::Assigned(partitions));
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

fn partitions_of(tpl: &TopicPartitionList, topic: &str) -> Vec<u32> {
    let mut v: Vec<u32> = tpl
        .elements()
        .iter()
        .filter(|e| e.topic() == topic)
        .filter_map(|e| u32::try_from(e.partition()).ok())
        .collect();
    v.sort_unstable();
    v
}

pub type Member = BaseConsumer<GroupContext>;

/// Two heartbeat intervals: an expelled member learns of it at its next
/// heartbeat answer and stops its loops; a starting loop waits until the
/// journal has not grown for that long (see `Membership::takeover_quiet`).
fn takeover_quiet(config: &rdkafka::ClientConfig) -> Duration {
    let heartbeat_ms = config
        .get("heartbeat.interval.ms")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(3000);
    Duration::from_millis(2 * heartbeat_ms)
}

/// Keeps the member polled on its own thread; leaving the group on drop.
struct Poller {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Joins `group` on `topic` and returns the membership and the member (for
/// commits).
pub fn join(
    config: &rdkafka::ClientConfig,
    topic: &str,
) -> Result<(Membership, Arc<Member>), rdkafka::error::KafkaError> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let member: Arc<Member> = Arc::new(config.create_with_context(GroupContext {
        topic: topic.to_string(),
        changes: tx,
    })?);
    member.subscribe(&[topic])?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (member, stop) = (member.clone(), stop.clone());
        std::thread::Builder::new()
            .name("baton-group".into())
            .spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    // Paused partitions deliver nothing; errors are logged by
                    // librdkafka and retried by it.
                    if let Some(Err(e)) = member.poll(Duration::from_millis(100)) {
                        tracing::debug!(error = %e, "group consumer");
                    }
                }
                member.unsubscribe();
                let _ = member.poll(Duration::from_millis(100));
            })
            .map_err(|e| rdkafka::error::KafkaError::ClientCreation(format!("group thread: {e}")))?
    };
    let poller = Poller {
        stop,
        thread: Some(thread),
    };
    let mut membership = Membership::new(rx, Box::new(poller));
    membership.takeover_quiet = takeover_quiet(config);
    Ok((membership, member))
}
