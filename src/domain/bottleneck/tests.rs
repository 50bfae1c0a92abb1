//! Unit tests of the rolling windows and of hysteresis (no flapping).

use std::collections::BTreeMap;

use super::*;
use crate::domain::events::{Payload, Timestamp};

fn at(s: f64) -> Timestamp {
    Timestamp(1_800_000_000_000_000 + (s * 1e6) as i64)
}

#[test]
fn a_window_keeps_only_its_last_slots_and_drops_older_observations() {
    let mut w = Rolling::new(4_000, 4);
    for s in 0..10 {
        if let Some(b) = w.at(at(s as f64)) {
            b.arrivals += 1;
            b.run.record(100 * (s + 1));
        }
    }
    let f = w.figures(at(9.5));
    assert_eq!(f.arrivals, 4, "seconds 6..=9");
    let max = f.run.quantile(1.0);
    assert!((1000.0..1010.0).contains(&max), "1% resolution: {max}");
    assert!(w.at(at(1.0)).is_none(), "older than the ring");
    assert_eq!(w.figures(at(30.0)).arrivals, 0, "all expired");
    assert_eq!(
        w.figures_before(at(9.5), at(8.0)).arrivals,
        2,
        "6 and 7 only"
    );
}

#[test]
fn histograms_survive_serialisation_byte_for_byte() {
    let mut w = Rolling::new(60_000, 4);
    for v in [1u64, 5, 900, 120_000, 3_600_000] {
        w.at(at(1.0)).unwrap().wait.record(v);
    }
    let bytes = bincode::serialize(&w).unwrap();
    let back: Rolling = bincode::deserialize(&bytes).unwrap();
    assert_eq!(bincode::serialize(&back).unwrap(), bytes);
    assert_eq!(back.figures(at(2.0)).wait.len(), 5);
}

#[test]
fn severity_is_50_at_the_threshold_and_100_at_twice_it() {
    assert_eq!(severity(1.0), 50);
    assert_eq!(severity(1.5), 75);
    assert_eq!(severity(2.0), 100);
    assert_eq!(severity(9.0), 100);
    assert_eq!(severity(0.0), 1);
    assert_eq!(severity(f64::INFINITY), 100);
}

fn signal(ratio: f64) -> Signal {
    Signal {
        key: "saturation/pool/default".into(),
        kind: crate::domain::events::BottleneckKind::Saturation,
        subject_type: crate::domain::events::SubjectType::Pool,
        subject: "default".into(),
        firing: ratio >= 1.0,
        ratio,
        severity: severity(ratio),
        window_ms: 10_000,
        evidence: BTreeMap::new(),
        recommendation: String::new(),
    }
}

/// Feeds `ratio(t)` every 0.5 s for `secs` and folds the facts like
/// `evolve` would; returns (detected, resolved) counts and peak severities.
fn run(ratio: impl Fn(f64) -> f64, secs: f64) -> (usize, usize, Vec<i32>) {
    let cfg = BottleneckConfig::default().with_window(10_000);
    let mut h = Hysteresis::default();
    let mut stats = Stats::new(cfg.short_window_ms, cfg.long_window_ms);
    let (mut det, mut res, mut peaks) = (0, 0, Vec::new());
    let mut t = 0.0;
    while t <= secs {
        if h.due(&cfg, at(t)) {
            for p in h.step(&[signal(ratio(t))], &stats.active, &cfg, at(t)) {
                match p {
                    Payload::BottleneckDetected(d) => {
                        det += 1;
                        stats.detected(&d);
                    }
                    Payload::BottleneckResolved(r) => {
                        res += 1;
                        peaks.push(r.peak_severity);
                        stats.resolved(&r);
                    }
                    _ => unreachable!(),
                }
            }
        }
        t += 0.5;
    }
    (det, res, peaks)
}

#[test]
fn an_oscillating_signal_makes_one_pair_per_real_episode() {
    // Two episodes (0–40 s and 80–120 s); within each the figure swings
    // every second between 1.6× and 0.5× the threshold; between them it is 0.
    let osc = |t: f64| {
        let in_episode = (0.0..40.0).contains(&t) || (80.0..120.0).contains(&t);
        match (in_episode, (t as i64) % 2 == 0) {
            (false, _) => 0.0,
            (true, true) => 1.6,
            (true, false) => 0.5,
        }
    };
    let (det, res, peaks) = run(osc, 160.0);
    assert_eq!((det, res), (2, 2), "one detected/resolved pair per episode");
    assert_eq!(peaks, vec![80, 80]);
}

#[test]
fn a_single_spike_is_one_short_episode() {
    let (det, res, peaks) = run(|t| if (5.0..5.5).contains(&t) { 3.0 } else { 0.0 }, 60.0);
    assert_eq!((det, res, peaks), (1, 1, vec![100]));
}

#[test]
fn a_figure_hovering_between_the_thresholds_stays_detected() {
    // Above 1.0 once, then between resolve (0.8) and detect (1.0) for a minute.
    let (det, res, _) = run(|t| if t < 3.0 { 1.2 } else { 0.9 }, 60.0);
    assert_eq!((det, res), (1, 0));
}
