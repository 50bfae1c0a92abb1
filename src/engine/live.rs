//! What the running process knows about its own partition loops, for the
//! HTTP API's `/readyz` and for the lag and checkpoint-age gauges: which
//! partitions it owns, how far each has read, whether it has recovered.
//! Also what outlives one loop: the ingress records a loop dead-lettered
//! because their facts could not be encoded (see `partition::poison`), so
//! the loop restarted after one skips them.
//!
//! Loops write plain atomics (no locks on the hot path); the map of owned
//! partitions changes only on assignment and revocation. Nothing here feeds
//! decisions.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// One owned partition's progress.
#[derive(Debug)]
pub struct PartitionLive {
    /// Next ingress offset the loop will read.
    pub ingress_next: AtomicU64,
    /// Ingress end last seen by the sampler (see `telemetry::sampler`).
    pub ingress_end: AtomicU64,
    /// Recovery (store checkpoint + journal tail) is done; decisions run.
    pub recovered: AtomicBool,
    /// Milliseconds since `Live::started` of the last store checkpoint.
    last_checkpoint_ms: AtomicU64,
}

impl PartitionLive {
    pub fn lag(&self) -> u64 {
        self.ingress_end
            .load(Ordering::Relaxed)
            .saturating_sub(self.ingress_next.load(Ordering::Relaxed))
    }
}

/// The process's owned partitions.
#[derive(Debug)]
pub struct Live {
    started: Instant,
    parts: RwLock<BTreeMap<u32, Arc<PartitionLive>>>,
    /// Owned partitions whose loop stopped for good (see
    /// `EngineError::stops_partition_only`), with the reason.
    stopped: RwLock<BTreeMap<u32, String>>,
    /// (partition, ingress offset) of inputs already dead-lettered as
    /// unencodable by this process.
    poisoned: std::sync::Mutex<std::collections::BTreeSet<(u32, u64)>>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            started: Instant::now(),
            parts: RwLock::new(BTreeMap::new()),
            stopped: RwLock::new(BTreeMap::new()),
            poisoned: Default::default(),
        }
    }
}

/// A partition's readiness, as `/readyz` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionReadiness {
    pub partition: u32,
    pub recovered: bool,
    pub lag: u64,
    pub ready: bool,
    /// Why its loop stopped, when it did (it is then never ready).
    pub stopped: Option<String>,
}

impl Live {
    /// A loop for `p` starts: registers (or resets) its progress record.
    /// Notes that partition `p`'s input at `offset` was dead-lettered as
    /// unencodable (its facts were decided, so the loop must restart).
    pub fn poison(&self, p: u32, offset: u64) {
        if let Ok(mut set) = self.poisoned.lock() {
            set.insert((p, offset));
        }
    }

    /// The offsets of partition `p` dead-lettered as unencodable.
    pub fn poisoned(&self, p: u32) -> std::collections::BTreeSet<u64> {
        self.poisoned
            .lock()
            .map(|set| set.range((p, 0)..=(p, u64::MAX)).map(|&(_, o)| o).collect())
            .unwrap_or_default()
    }

    pub fn register(&self, p: u32) -> Arc<PartitionLive> {
        let rec = Arc::new(PartitionLive {
            ingress_next: AtomicU64::new(0),
            ingress_end: AtomicU64::new(0),
            recovered: AtomicBool::new(false),
            last_checkpoint_ms: AtomicU64::new(self.elapsed_ms()),
        });
        self.parts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(p, rec.clone());
        rec
    }

    /// The loop for `p` stopped for good, for `reason`: it stays listed,
    /// not ready, until a loop for it starts again or it is revoked.
    pub fn stopped(&self, p: u32, reason: String) {
        self.stopped
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(p, reason);
    }

    /// `p` is not owned any more, or a loop for it starts again.
    pub fn clear_stopped(&self, p: u32) {
        self.stopped
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&p);
    }

    /// The partitions whose loop stopped for good, with why.
    pub fn stopped_partitions(&self) -> BTreeMap<u32, String> {
        self.stopped
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The loop for `p` ended (revoked or stopped).
    pub fn unregister(&self, p: u32) {
        self.parts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&p);
    }

    pub fn owned(&self) -> Vec<(u32, Arc<PartitionLive>)> {
        self.parts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(p, r)| (*p, r.clone()))
            .collect()
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn checkpointed(&self, rec: &PartitionLive) {
        rec.last_checkpoint_ms
            .store(self.elapsed_ms(), Ordering::Relaxed);
    }

    /// Seconds since `rec`'s last checkpoint.
    pub fn checkpoint_age_s(&self, rec: &PartitionLive) -> f64 {
        self.elapsed_ms()
            .saturating_sub(rec.last_checkpoint_ms.load(Ordering::Relaxed)) as f64
            / 1000.0
    }

    /// Per owned partition: ready when recovered and at most `max_lag`
    /// records behind the ingress end last sampled.
    /// A stopped partition is listed too, never ready.
    pub fn readiness(&self, max_lag: u64) -> Vec<PartitionReadiness> {
        let mut out: Vec<PartitionReadiness> = self
            .owned()
            .into_iter()
            .map(|(p, r)| {
                let recovered = r.recovered.load(Ordering::Relaxed);
                let lag = r.lag();
                PartitionReadiness {
                    partition: p,
                    recovered,
                    lag,
                    ready: recovered && lag <= max_lag,
                    stopped: None,
                }
            })
            .collect();
        for (p, reason) in self.stopped_partitions() {
            out.retain(|r| r.partition != p);
            out.push(PartitionReadiness {
                partition: p,
                recovered: false,
                lag: 0,
                ready: false,
                stopped: Some(reason),
            });
        }
        out.sort_by_key(|r| r.partition);
        out
    }
}
