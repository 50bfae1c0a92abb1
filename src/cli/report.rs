//! `baton report`, `baton estimate` and the loader they share with
//! `inspect bottlenecks`: read every partition's projection store (the
//! engine must not be running on this data dir) and render the fleet report
//! as text, JSON, CSV or a self-contained HTML page.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::{GlobalArgs, UsageError};
use crate::domain::engine::PartitionState;
use crate::domain::events::WorkflowDefinition;
use crate::engine::estimate::{estimate, Estimate};
use crate::engine::report::{build, FleetReport, Row, Span};
use crate::engine::stored::Load;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Csv,
    Html,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Figures over the detection window (`short`, default 1m), the long
    /// window (`long`, default 15m) or everything (`all`); a duration equal
    /// to one of the windows (e.g. `15m`, `60s`) picks that window.
    #[arg(long, default_value = "long")]
    pub window: String,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EstimateArgs {
    /// A workflow definition (JSON, as in `baton submit`).
    pub workflow: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Every partition's state as stored (non-terminal workflows, agents,
/// queues, the bottleneck projection), by partition.
pub async fn load_states(global: &GlobalArgs) -> anyhow::Result<Vec<PartitionState>> {
    load_states_for(global, Load::Full).await
}

/// Every partition's state as stored, read as far as `load` says (see
/// [`crate::engine::stored::load_states`], which the HTTP API shares).
pub async fn load_states_for(
    global: &GlobalArgs,
    load: Load,
) -> anyhow::Result<Vec<PartitionState>> {
    let log = super::backend::open(global, super::backend::Access::Read).await?;
    let partitions = log.partition_count(&global.topics().ingress()).await?;
    let all: Vec<u32> = (0..partitions).collect();
    super::stores::check_existing(global, log.as_ref(), &all).await?;
    Ok(crate::engine::stored::load_states(
        &global.data_dir,
        &all,
        load,
    )?)
}

fn parse_span(window: &str, states: &[PartitionState]) -> Result<Span, UsageError> {
    let (short, long) = states.first().map_or((60_000, 900_000), |s| {
        (s.bottlenecks.short_ms(), s.bottlenecks.long_ms())
    });
    let ms = match window {
        "short" => return Ok(Span::Short),
        "long" => return Ok(Span::Long),
        "all" => return Ok(Span::All),
        w => parse_duration_ms(w),
    };
    match ms {
        Some(ms) if ms == short => Ok(Span::Short),
        Some(ms) if ms == long => Ok(Span::Long),
        _ => Err(UsageError(format!(
            "--window {window}: the projection keeps windows of {} and {} (or use short, long, all)",
            human_ms(short),
            human_ms(long)
        ))),
    }
}

/// `90s`, `15m`, `1h`, `500ms` → milliseconds.
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let f = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(f)
}

fn human_ms(ms: i64) -> String {
    if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

pub async fn run(global: &GlobalArgs, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let states = load_states(global).await?;
    let span = parse_span(&args.window, &states)?;
    let report = build(&states, span);
    let text = match args.format {
        ReportFormat::Text => render_text(&report),
        ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        ReportFormat::Csv => render_csv(&report),
        ReportFormat::Html => super::report_html::render(&report),
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run_estimate(global: &GlobalArgs, args: EstimateArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.workflow)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", args.workflow.display()))?;
    let def: WorkflowDefinition = serde_json::from_str(&text)
        .map_err(|e| UsageError(format!("{}: {e}", args.workflow.display())))?;
    let dag = crate::domain::workflow::validate(&def, &Default::default())
        .map_err(|e| UsageError(format!("{}: {e}", args.workflow.display())))?;
    let states = load_states(global).await?;
    let mut stats = crate::domain::bottleneck::Stats::new(60_000, 900_000);
    for s in &states {
        stats.merge(&s.bottlenecks);
    }
    let e = estimate(&def, &dag, &stats);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print!("{}", render_estimate(&e));
    }
    Ok(ExitCode::SUCCESS)
}

fn render_estimate(e: &Estimate) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "workflow `{}`: mean {:.2} s, p90 ≤ {:.2} s along the critical path {}; cost {:.4} (tokens in {:.0}, out {:.0})",
        e.workflow,
        e.duration_mean_s,
        e.duration_p90_s,
        e.critical_path.join(" → "),
        e.cost_mean,
        e.tokens_in_mean,
        e.tokens_out_mean
    );
    if e.history_workflows > 0 {
        let _ = writeln!(
            out,
            "history: {} finished `{}` workflows took {:.2} s mean, {:.2} s p90",
            e.history_workflows, e.workflow, e.history_duration_mean_s, e.history_duration_p90_s
        );
    }
    let _ = writeln!(
        out,
        "\n{:<16} {:<16} {:>8} {:>10} {:>10} {:>10} {:>10} {:>6} {:>8} {:>9} crit",
        "step",
        "kind",
        "samples",
        "wait ms",
        "wait p90",
        "run ms",
        "run p90",
        "fail%",
        "attempts",
        "cost"
    );
    for s in &e.steps {
        let _ = writeln!(
            out,
            "{:<16} {:<16} {:>8} {:>10.1} {:>10.0} {:>10.1} {:>10.0} {:>6.1} {:>8.2} {:>9.4} {}",
            s.id,
            s.kind,
            s.samples,
            s.wait_mean_ms,
            s.wait_p90_ms,
            s.run_mean_ms,
            s.run_p90_ms,
            s.failure_rate * 100.0,
            s.expected_attempts,
            s.cost_mean,
            if s.on_critical_path { "*" } else { "" }
        );
    }
    if !e.unknown_kinds.is_empty() {
        let _ = writeln!(
            out,
            "\nno history for step kinds {} (counted as 0)",
            e.unknown_kinds.join(", ")
        );
    }
    out
}

fn table_header(out: &mut String, first: &str) {
    let _ = writeln!(
        out,
        "{first:<22} {:>9} {:>9} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9}",
        "arrive/s",
        "done/s",
        "done",
        "fail%",
        "wait p50",
        "wait p95",
        "run p50",
        "run p95",
        "tokens",
        "cost"
    );
}

fn table_row(out: &mut String, name: &str, r: &Row) {
    let _ = writeln!(
        out,
        "{name:<22} {:>9.2} {:>9.2} {:>8} {:>6.1} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>10} {:>9.3}",
        r.arrivals_per_s,
        r.throughput_per_s,
        r.done,
        r.failure_rate * 100.0,
        r.wait_p50_ms,
        r.wait_p95_ms,
        r.run_p50_ms,
        r.run_p95_ms,
        r.tokens_in + r.tokens_out,
        r.cost
    );
}

/// The findings as `inspect bottlenecks` prints them.
pub fn render_findings(r: &FleetReport) -> String {
    let mut out = String::new();
    if r.findings.is_empty() {
        let _ = writeln!(out, "no active bottlenecks (as of {})", r.at);
    }
    for (i, f) in r.findings.iter().enumerate() {
        let _ = writeln!(
            out,
            "{}. [{}] {} on {} `{}` since {} (partitions {:?})",
            i + 1,
            f.severity,
            f.kind,
            f.subject_type,
            f.subject,
            f.first_seen,
            f.partitions
        );
        let _ = writeln!(out, "   evidence: {}", f.evidence_text());
        let _ = writeln!(out, "   → {}", f.recommendation);
    }
    out
}

pub fn render_text(r: &FleetReport) -> String {
    let s = &r.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Baton fleet report — window {} ({:.1} s) ending {}",
        r.window, r.window_s, r.at
    );
    let _ = writeln!(
        out,
        "{} partitions, {} pools, {} agents ({}); {} attempts ({:.1}/s, {:.1}% failed); {} workflows finished ({} not successfully); tokens {} in / {} out; cost {:.3}; {} active findings\n",
        s.partitions,
        s.pools,
        s.agents,
        s.health_text(),
        s.attempts,
        s.throughput_per_s,
        s.failure_rate * 100.0,
        s.workflows_finished,
        s.workflows_failed,
        s.tokens_in,
        s.tokens_out,
        s.cost,
        s.active_findings
    );
    let _ = writeln!(out, "Findings");
    out.push_str(&render_findings(r));
    if !r.resolved.is_empty() {
        let _ = writeln!(out, "\nRecently resolved");
        for x in r.resolved.iter().take(10) {
            let _ = writeln!(
                out,
                "  {} `{}` peak {} from {} to {}",
                x.kind, x.subject, x.peak_severity, x.first_seen, x.resolved_at
            );
        }
    }
    let _ = writeln!(out, "\nPools");
    let _ = writeln!(
        out,
        "{:<22} {:>7} {:>9} {:>9} {:>6} {:>7}",
        "pool", "agents", "capacity", "in flight", "sat%", "queued"
    );
    for p in &r.pools {
        let _ = writeln!(
            out,
            "{:<22} {:>7} {:>9} {:>9} {:>6.1} {:>7}",
            p.figures.name,
            p.agents,
            p.capacity,
            p.in_flight,
            p.saturation * 100.0,
            p.queued
        );
    }
    table_header(&mut out, "pool");
    for p in &r.pools {
        table_row(&mut out, &p.figures.name, &p.figures);
    }
    for (title, rows) in [
        ("Capabilities", &r.capabilities),
        ("Step kinds", &r.step_kinds),
        ("Workflows (by definition)", &r.workflows),
    ] {
        let _ = writeln!(out, "\n{title}");
        table_header(&mut out, "name");
        for x in rows {
            table_row(&mut out, &x.name, x);
        }
    }
    let _ = writeln!(out, "\nAgents");
    table_header(&mut out, "agent (pool, health)");
    for a in &r.agents {
        let name = format!("{} ({}, {})", a.figures.name, a.pool, a.health);
        table_row(&mut out, &name, &a.figures);
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One CSV table: every subject row (`table` = pool, capability, agent,
/// step_kind, workflow) and every active finding (`table` = finding).
pub fn render_csv(r: &FleetReport) -> String {
    let mut out = String::from("table,name,pool,health,arrivals_per_s,throughput_per_s,done,failure_rate,timeout_rate,wait_p50_ms,wait_p95_ms,wait_p99_ms,run_p50_ms,run_p95_ms,run_p99_ms,capacity,in_flight,saturation,queued,tokens_in,tokens_out,cost,severity,note\n");
    let mut line =
        |table: &str, x: &Row, pool: &str, health: &str, load: Option<(u64, u64, f64, u64)>| {
            let (cap, inf, sat, q) = load.map_or(
                (String::new(), String::new(), String::new(), String::new()),
                |(c, i, s, q)| (c.to_string(), i.to_string(), s.to_string(), q.to_string()),
            );
            let _ = writeln!(
            out,
            "{table},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{cap},{inf},{sat},{q},{},{},{},,",
            csv_field(&x.name),
            csv_field(pool),
            health,
            x.arrivals_per_s,
            x.throughput_per_s,
            x.done,
            x.failure_rate,
            x.timeout_rate,
            x.wait_p50_ms,
            x.wait_p95_ms,
            x.wait_p99_ms,
            x.run_p50_ms,
            x.run_p95_ms,
            x.run_p99_ms,
            x.tokens_in,
            x.tokens_out,
            x.cost
        );
        };
    for p in &r.pools {
        line(
            "pool",
            &p.figures,
            "",
            "",
            Some((p.capacity, p.in_flight, p.saturation, p.queued)),
        );
    }
    for x in &r.capabilities {
        line("capability", x, "", "", None);
    }
    for a in &r.agents {
        line(
            "agent",
            &a.figures,
            &a.pool,
            &a.health,
            Some((a.capacity, a.in_flight, 0.0, 0)),
        );
    }
    for x in &r.step_kinds {
        line("step_kind", x, "", "", None);
    }
    for x in &r.workflows {
        line("workflow", x, "", "", None);
    }
    for f in &r.findings {
        let _ = writeln!(
            out,
            "finding,{},,,,,,,,,,,,,,,,,,,,,{},{}",
            csv_field(&f.key),
            f.severity,
            csv_field(&f.recommendation)
        );
    }
    out
}
