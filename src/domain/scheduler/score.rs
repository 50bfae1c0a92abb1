//! Performance figures per agent and the `performance_based` score.
//!
//! Invariants: every figure is folded from `record_outcome` calls only, in
//! call order, with plain IEEE-754 arithmetic (no clock, no randomness), so a
//! replay of the same calls yields bit-identical scores. The score is finite
//! and non-negative, which makes `f64::to_bits` an order-preserving `u64`
//! key; indexes sort on that key, never on a float.
//!
//! Formula (documented in the module root too):
//!
//! ```text
//! score = free × s² / (1 + L)
//!   free = capacity − in_flight            (free slots, ≥ 1 when eligible)
//!   s    = EWMA of outcomes (1 = success, 0 = failure), α = 0.2, starts at 1
//!   L    = EWMA of reported latency in ms, α = 0.2, first sample taken as is;
//!          0 until the first outcome (optimistic: new agents get tried)
//! ```
//!
//! `free / (1 + L)` approximates the completions per millisecond the free
//! slots can deliver; `s²` discounts agents that fail, squared so that a
//! fast-failing agent does not attract work it will only fail.

/// Smoothing factor of both moving averages (same as the engine's agent view).
pub const EWMA_ALPHA: f64 = 0.2;

/// Outcome statistics of one agent.
#[derive(Clone, Debug, PartialEq)]
pub struct Perf {
    /// EWMA of success (1.0) / failure (0.0).
    pub success: f64,
    /// EWMA latency in milliseconds; `None` before the first sample.
    pub latency_ms: Option<f64>,
}

impl Default for Perf {
    fn default() -> Self {
        Perf {
            success: 1.0,
            latency_ms: None,
        }
    }
}

impl Perf {
    /// Folds one finished attempt. A non-finite or negative latency only
    /// counts towards the success rate.
    pub fn record(&mut self, success: bool, latency_ms: f64) {
        let s = if success { 1.0 } else { 0.0 };
        self.success = (1.0 - EWMA_ALPHA) * self.success + EWMA_ALPHA * s;
        if latency_ms.is_finite() && latency_ms >= 0.0 {
            self.latency_ms = Some(match self.latency_ms {
                None => latency_ms,
                Some(l) => (1.0 - EWMA_ALPHA) * l + EWMA_ALPHA * latency_ms,
            });
        }
    }

    /// The score of an agent with `free` free slots (see the module docs).
    pub fn score(&self, free: u32) -> f64 {
        let s = self.success.clamp(0.0, 1.0);
        let l = self.latency_ms.unwrap_or(0.0).max(0.0);
        let v = f64::from(free) * s * s / (1.0 + l);
        if v.is_finite() && v > 0.0 {
            v
        } else {
            0.0
        }
    }

    /// `score` as a `u64` whose order equals the order of the scores.
    pub fn score_key(&self, free: u32) -> u64 {
        self.score(free).to_bits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_no_outcomes_when_scored_then_free_slots_count_alone() {
        let p = Perf::default();
        assert_eq!(p.score(4), 4.0);
    }

    #[test]
    fn given_outcomes_when_scored_then_formula_holds() {
        let mut p = Perf::default();
        p.record(true, 9.0);
        assert_eq!(p.latency_ms, Some(9.0));
        p.record(false, 19.0);
        // s = 0.8·1 + 0.2·0 = 0.8 ; L = 0.8·9 + 0.2·19 = 11
        assert!((p.success - 0.8).abs() < 1e-12);
        assert!((p.latency_ms.unwrap_or(0.0) - 11.0).abs() < 1e-12);
        let expected = 3.0 * 0.64 / 12.0;
        assert!((p.score(3) - expected).abs() < 1e-12);
    }

    #[test]
    fn given_bad_latency_when_recorded_then_only_success_changes() {
        let mut p = Perf::default();
        p.record(true, f64::NAN);
        p.record(true, -1.0);
        assert_eq!(p.latency_ms, None);
    }

    #[test]
    fn score_keys_order_like_scores() {
        let fast = Perf {
            success: 1.0,
            latency_ms: Some(5.0),
        };
        let slow = Perf {
            success: 1.0,
            latency_ms: Some(50.0),
        };
        assert!(fast.score_key(2) > slow.score_key(2));
        assert!(fast.score_key(1) > fast.score_key(0));
        assert_eq!(fast.score_key(0), 0);
    }
}
