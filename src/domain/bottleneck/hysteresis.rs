//! Hysteresis: turns the detectors' signals into BottleneckDetected and
//! BottleneckResolved payloads, so an oscillating figure makes one episode,
//! not a flurry.
//!
//! Rules: a signal that fires for a key with no active finding is Detected;
//! an active finding resolves only after its ratio stayed below
//! `resolve_ratio` (or its subject went quiet) at every evaluation for a
//! full short window; any evaluation at or above `resolve_ratio` restarts
//! that wait. `below_since` and `peak` are soft state (see the module doc of
//! `bottleneck`): facts stay the truth.

use std::collections::BTreeMap;

use super::detect::Signal;
use super::BottleneckConfig;
use crate::domain::events::{BottleneckDetected, BottleneckResolved, Payload, Timestamp};

#[derive(Clone, Debug, Default)]
pub struct Hysteresis {
    below_since: BTreeMap<String, Timestamp>,
    peak: BTreeMap<String, i32>,
    /// Event time of the last evaluation.
    pub last_eval: Option<Timestamp>,
}

impl Hysteresis {
    /// True when an evaluation is due at `now`.
    pub fn due(&self, cfg: &BottleneckConfig, now: Timestamp) -> bool {
        self.last_eval
            .is_none_or(|t| now.0.saturating_sub(t.0) >= cfg.evaluate_every_ms.saturating_mul(1000))
    }

    /// When the next evaluation is due.
    pub fn next_due(&self, cfg: &BottleneckConfig) -> Option<Timestamp> {
        self.last_eval
            .map(|t| Timestamp(t.0.saturating_add(cfg.evaluate_every_ms.saturating_mul(1000))))
    }

    /// The facts of one evaluation, in key order (detections, then resolutions).
    pub fn step(
        &mut self,
        signals: &[Signal],
        active: &BTreeMap<String, BottleneckDetected>,
        cfg: &BottleneckConfig,
        now: Timestamp,
    ) -> Vec<Payload> {
        self.last_eval = Some(now);
        let by_key: BTreeMap<&str, &Signal> = signals.iter().map(|s| (s.key.as_str(), s)).collect();
        let mut out = Vec::new();
        for s in by_key.values() {
            if s.firing && !active.contains_key(&s.key) {
                self.below_since.remove(&s.key);
                self.peak.insert(s.key.clone(), s.severity);
                out.push(Payload::BottleneckDetected(BottleneckDetected {
                    key: s.key.clone(),
                    kind: s.kind,
                    subject_type: s.subject_type,
                    subject: s.subject.clone(),
                    severity: s.severity,
                    window_ms: s.window_ms,
                    evidence: s.evidence.clone(),
                    recommendation: s.recommendation.clone(),
                    first_seen: now,
                    last_seen: now,
                }));
            }
        }
        for (key, d) in active {
            let signal = by_key.get(key.as_str());
            let ratio = signal.map_or(0.0, |s| s.ratio);
            let peak = self.peak.entry(key.clone()).or_insert(d.severity);
            *peak = (*peak).max(d.severity);
            if ratio >= cfg.resolve_ratio {
                if let Some(s) = signal {
                    *peak = (*peak).max(s.severity);
                }
                self.below_since.remove(key);
                continue;
            }
            let since = *self.below_since.entry(key.clone()).or_insert(now);
            if now.0.saturating_sub(since.0) >= cfg.short_window_ms.saturating_mul(1000) {
                out.push(Payload::BottleneckResolved(BottleneckResolved {
                    key: key.clone(),
                    kind: d.kind,
                    subject_type: d.subject_type,
                    subject: d.subject.clone(),
                    peak_severity: *peak,
                    first_seen: d.first_seen,
                    resolved_at: now,
                }));
                self.below_since.remove(key);
                self.peak.remove(key);
            }
        }
        out
    }
}
