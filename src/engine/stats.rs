//! Live engine counters shared by the partition loops and the CLI
//! (progress line, demo summary). Plain atomics plus one histogram of
//! decision latency in microseconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;

#[derive(Debug)]
pub struct EngineStats {
    pub ingress_events: AtomicU64,
    pub duplicates: AtomicU64,
    pub journal_events: AtomicU64,
    pub dead_letters: AtomicU64,
    pub workflows_accepted: AtomicU64,
    pub workflows_rejected: AtomicU64,
    pub workflows_succeeded: AtomicU64,
    pub workflows_failed: AtomicU64,
    pub workflows_other_terminal: AtomicU64,
    pub assignments: AtomicU64,
    /// Step attempts that timed out.
    pub timeouts: AtomicU64,
    pub retries: AtomicU64,
    pub agents_lost: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
}

impl Default for EngineStats {
    fn default() -> Self {
        EngineStats {
            ingress_events: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            journal_events: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            workflows_accepted: AtomicU64::new(0),
            workflows_rejected: AtomicU64::new(0),
            workflows_succeeded: AtomicU64::new(0),
            workflows_failed: AtomicU64::new(0),
            workflows_other_terminal: AtomicU64::new(0),
            assignments: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            agents_lost: AtomicU64::new(0),
            // 1 µs .. 1 h, 3 significant digits: bounded memory whatever the input.
            latency_us: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3)
                    .expect("constant, valid histogram bounds"),
            ),
        }
    }
}

impl EngineStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn record_latencies(&self, samples: &[u64]) {
        if let Ok(mut h) = self.latency_us.lock() {
            for &s in samples {
                let _ = h.record(s.max(1));
            }
        }
    }

    /// Decision latency quantile in milliseconds.
    pub fn latency_ms(&self, q: f64) -> f64 {
        self.latency_us
            .lock()
            .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
            .unwrap_or(0.0)
    }

    pub fn workflows_terminal(&self) -> u64 {
        Self::get(&self.workflows_succeeded)
            + Self::get(&self.workflows_failed)
            + Self::get(&self.workflows_other_terminal)
            + Self::get(&self.workflows_rejected)
    }
}
