//! The fleet report as one self-contained HTML page: inline CSS, tables,
//! and inline SVG charts of wait and run time per pool and run time per
//! agent. No scripts, fonts or external references, so it opens anywhere
//! (and renders in a headless browser in the tests).

use std::fmt::Write as _;

use crate::engine::report::{FleetReport, Row};

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:.5em 0}th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:right}\
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}\
.sev{font-weight:bold;color:#fff;border-radius:3px;padding:1px 6px}\
.rec{color:#333;font-style:italic}.muted{color:#777}svg text{font:12px sans-serif}";

/// Grouped horizontal bars: one group per label, one bar per series.
fn bar_chart(title: &str, labels: &[String], series: &[(&str, &str, Vec<f64>)]) -> String {
    let bar_h = 12.0;
    let group_h = bar_h * series.len() as f64 + 10.0;
    let left = 160.0;
    let width = 560.0;
    let max = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .fold(1.0_f64, f64::max);
    let height = 40.0 + group_h * labels.len() as f64 + 20.0 * series.len() as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{t}" width="{w}" height="{height}" viewBox="0 0 {w} {height}"><title>{t}</title>"#,
        t = esc(title),
        w = left + width + 80.0
    );
    for (g, label) in labels.iter().enumerate() {
        let y0 = 20.0 + g as f64 * group_h;
        let _ = write!(
            svg,
            r#"<text x="0" y="{}">{}</text>"#,
            y0 + group_h / 2.0,
            esc(label)
        );
        for (s, (_, color, values)) in series.iter().enumerate() {
            let v = values.get(g).copied().unwrap_or(0.0);
            let y = y0 + s as f64 * bar_h;
            let w = (v / max * width).max(1.0);
            let _ = write!(
                svg,
                r#"<rect x="{left}" y="{y}" width="{w:.1}" height="{:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}">{v:.0} ms</text>"#,
                bar_h - 2.0,
                left + w + 4.0,
                y + bar_h - 3.0
            );
        }
    }
    let ly = 30.0 + group_h * labels.len() as f64;
    for (s, (name, color, _)) in series.iter().enumerate() {
        let y = ly + 18.0 * s as f64;
        let _ = write!(
            svg,
            r#"<rect x="{left}" y="{y}" width="12" height="12" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
            left + 18.0,
            y + 10.0,
            esc(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn sev_color(sev: i32) -> &'static str {
    match sev {
        80.. => "#c0392b",
        60..=79 => "#e67e22",
        _ => "#b7950b",
    }
}

fn figure_table(out: &mut String, first: &str, rows: &[(String, &Row)]) {
    out.push_str("<table><thead><tr>");
    for h in [
        first,
        "arrivals/s",
        "done/s",
        "done",
        "fail %",
        "timeout %",
        "wait p50 ms",
        "wait p95 ms",
        "wait p99 ms",
        "run p50 ms",
        "run p95 ms",
        "run p99 ms",
        "tokens in",
        "tokens out",
        "cost",
    ] {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for (name, r) in rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{:.3}</td></tr>",
            esc(name),
            r.arrivals_per_s,
            r.throughput_per_s,
            r.done,
            r.failure_rate * 100.0,
            r.timeout_rate * 100.0,
            r.wait_p50_ms,
            r.wait_p95_ms,
            r.wait_p99_ms,
            r.run_p50_ms,
            r.run_p95_ms,
            r.run_p99_ms,
            r.tokens_in,
            r.tokens_out,
            r.cost
        );
    }
    out.push_str("</tbody></table>");
}

pub fn render(r: &FleetReport) -> String {
    let s = &r.summary;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Baton fleet report</title><style>{STYLE}</style></head><body>"
    );
    let _ = write!(
        out,
        "<h1>Baton fleet report</h1><p class=\"muted\">Window {} ({:.1} s) ending {}</p>",
        esc(&r.window),
        r.window_s,
        esc(&r.at)
    );
    out.push_str("<h2>Fleet summary</h2><table id=\"summary\"><tbody>");
    for (k, v) in [
        ("Partitions", s.partitions.to_string()),
        ("Pools", s.pools.to_string()),
        ("Agents", format!("{} ({})", s.agents, s.health_text())),
        ("Attempts", s.attempts.to_string()),
        ("Throughput", format!("{:.2}/s", s.throughput_per_s)),
        ("Failure rate", format!("{:.1} %", s.failure_rate * 100.0)),
        ("Workflows finished", s.workflows_finished.to_string()),
        ("Workflows not successful", s.workflows_failed.to_string()),
        (
            "Tokens in / out",
            format!("{} / {}", s.tokens_in, s.tokens_out),
        ),
        ("Cost", format!("{:.3}", s.cost)),
        ("Active findings", s.active_findings.to_string()),
    ] {
        let _ = write!(out, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&v));
    }
    out.push_str("</tbody></table>");

    out.push_str("<h2>Findings</h2>");
    if r.findings.is_empty() {
        out.push_str("<p>No active bottlenecks.</p>");
    } else {
        out.push_str("<table id=\"findings\"><thead><tr><th>#</th><th>severity</th><th>kind</th><th>subject</th><th>since</th><th>evidence</th><th>recommendation</th></tr></thead><tbody>");
        for (i, f) in r.findings.iter().enumerate() {
            let _ = write!(
                out,
                "<tr><td>{}</td><td><span class=\"sev\" style=\"background:{}\">{}</span></td><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td class=\"rec\">{}</td></tr>",
                i + 1,
                sev_color(f.severity),
                f.severity,
                esc(f.kind),
                esc(f.subject_type),
                esc(&f.subject),
                esc(&f.first_seen),
                esc(&f.evidence_text()),
                esc(&f.recommendation)
            );
        }
        out.push_str("</tbody></table>");
    }
    if !r.resolved.is_empty() {
        out.push_str("<h3>Recently resolved</h3><table id=\"resolved\"><thead><tr><th>kind</th><th>subject</th><th>peak severity</th><th>first seen</th><th>resolved</th></tr></thead><tbody>");
        for x in r.resolved.iter().take(20) {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(x.kind),
                esc(&x.subject),
                x.peak_severity,
                esc(&x.first_seen),
                esc(&x.resolved_at)
            );
        }
        out.push_str("</tbody></table>");
    }

    out.push_str("<h2>Pools</h2><table id=\"pools\"><thead><tr><th>pool</th><th>agents</th><th>capacity</th><th>in flight</th><th>saturation %</th><th>queued</th></tr></thead><tbody>");
    for p in &r.pools {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td></tr>",
            esc(&p.figures.name),
            p.agents,
            p.capacity,
            p.in_flight,
            p.saturation * 100.0,
            p.queued
        );
    }
    out.push_str("</tbody></table>");
    let pool_rows: Vec<(String, &Row)> = r
        .pools
        .iter()
        .map(|p| (p.figures.name.clone(), &p.figures))
        .collect();
    figure_table(&mut out, "pool", &pool_rows);
    let labels: Vec<String> = r.pools.iter().map(|p| p.figures.name.clone()).collect();
    out.push_str(&bar_chart(
        "Wait and run time per pool",
        &labels,
        &[
            (
                "wait p50",
                "#85c1e9",
                r.pools.iter().map(|p| p.figures.wait_p50_ms).collect(),
            ),
            (
                "wait p95",
                "#2e86c1",
                r.pools.iter().map(|p| p.figures.wait_p95_ms).collect(),
            ),
            (
                "run p50",
                "#82e0aa",
                r.pools.iter().map(|p| p.figures.run_p50_ms).collect(),
            ),
            (
                "run p95",
                "#239b56",
                r.pools.iter().map(|p| p.figures.run_p95_ms).collect(),
            ),
        ],
    ));

    out.push_str("<h2>Agents</h2>");
    let agent_rows: Vec<(String, &Row)> = r
        .agents
        .iter()
        .map(|a| {
            (
                format!(
                    "{} ({}, {}, {}/{})",
                    a.figures.name, a.pool, a.health, a.in_flight, a.capacity
                ),
                &a.figures,
            )
        })
        .collect();
    figure_table(
        &mut out,
        "agent (pool, health, in flight/capacity)",
        &agent_rows,
    );
    let agent_labels: Vec<String> = r.agents.iter().map(|a| a.figures.name.clone()).collect();
    out.push_str(&bar_chart(
        "Run time per agent",
        &agent_labels,
        &[
            (
                "run p50",
                "#82e0aa",
                r.agents.iter().map(|a| a.figures.run_p50_ms).collect(),
            ),
            (
                "run p95",
                "#239b56",
                r.agents.iter().map(|a| a.figures.run_p95_ms).collect(),
            ),
        ],
    ));

    for (title, rows) in [
        ("Step kinds", &r.step_kinds),
        ("Capabilities", &r.capabilities),
        ("Workflows (by definition), usage and cost", &r.workflows),
    ] {
        let _ = write!(out, "<h2>{}</h2>", esc(title));
        let named: Vec<(String, &Row)> = rows.iter().map(|x| (x.name.clone(), x)).collect();
        figure_table(&mut out, "name", &named);
    }
    out.push_str("</body></html>\n");
    out
}
