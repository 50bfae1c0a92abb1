//! `baton inspect … --api URL`: the same views, asked of a running engine's
//! HTTP API (whose stores are locked to other processes). JSON output is
//! the API's documented shape; text output has the local command's layout.

use std::process::ExitCode;

use serde_json::Value;

use super::inspect::InspectWhat;
use super::remote;
use super::UsageError;

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(t) => t.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.1}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn workflow_text(w: &Value) -> String {
    let mut out = format!(
        "workflow {} ({})  status: {}{}\n",
        s(&w["workflow_id"]),
        s(&w["name"]),
        s(&w["status"]),
        w["reason"]
            .as_str()
            .map(|r| format!(" - {r}"))
            .unwrap_or_default()
    );
    let u = &w["usage"];
    out.push_str(&format!(
        "duration: {} ms   usage: {} tokens in, {} tokens out, cost {:.4}\n",
        s(&w["duration_ms"]),
        s(&u["tokens_in"]),
        s(&u["tokens_out"]),
        u["cost"].as_f64().unwrap_or(0.0)
    ));
    out.push_str(&format!(
        "{:<20} {:<15} {:>7} {:<18} {:>9} {:>9}  ERROR\n",
        "STEP", "STATUS", "ATTEMPT", "AGENT", "WAIT ms", "RUN ms"
    ));
    for st in w["steps"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<20} {:<15} {:>7} {:<18} {:>9} {:>9}  {}\n",
            s(&st["id"]),
            s(&st["status"]),
            s(&st["attempt"]),
            s(&st["agent"]),
            s(&st["wait_ms"]),
            s(&st["run_ms"]),
            st["error"].as_str().unwrap_or("")
        ));
    }
    out
}

fn agents_text(list: &Value) -> String {
    let mut out = format!(
        "{:<20} {:<9} {:<12} {:>9} {:>12} {:>8}\n",
        "AGENT", "HEALTH", "POOL", "LOAD", "EWMA ms", "SUCCESS"
    );
    for a in list["items"].as_array().into_iter().flatten() {
        let rate = a["success_rate"]
            .as_f64()
            .map_or("-".to_string(), |r| format!("{:.1}%", 100.0 * r));
        let draining = if a["draining"].as_bool() == Some(true) {
            "*"
        } else {
            ""
        };
        out.push_str(&format!(
            "{:<20} {:<9} {:<12} {:>9} {:>12.1} {:>8}\n",
            s(&a["agent_id"]),
            s(&a["health"]) + draining,
            s(&a["pool"]),
            format!("{}/{}", s(&a["in_flight"]), s(&a["capacity"])),
            a["ewma_latency_ms"].as_f64().unwrap_or(0.0),
            rate
        ));
    }
    out
}

fn findings_text(list: &Value) -> String {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return "no active bottleneck findings\n".into();
    }
    let mut out = String::new();
    for f in &items {
        out.push_str(&format!(
            "[{:>3}] {} {} `{}`\n      {}\n",
            s(&f["severity"]),
            s(&f["kind"]),
            s(&f["subject_type"]),
            s(&f["subject"]),
            s(&f["recommendation"])
        ));
    }
    out
}

/// Answers `what` through the API at `base`.
pub async fn run(base: &str, what: &InspectWhat, json: bool) -> anyhow::Result<ExitCode> {
    let path = match what {
        InspectWhat::Workflow { id, as_of: None } => {
            format!("/v1/workflows/{}", remote::encode(id))
        }
        InspectWhat::Agents { as_of: None } => "/v1/agents".into(),
        InspectWhat::Bottlenecks => "/v1/bottlenecks".into(),
        _ => {
            return Err(UsageError(
                "--as-of reads the journal and stores locally; it cannot go through --api".into(),
            )
            .into())
        }
    };
    let body = match remote::get(base, &path).await? {
        Ok(body) => body,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(1));
        }
    };
    let v: Value = serde_json::from_str(&body)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!(
        "{}",
        match what {
            InspectWhat::Workflow { .. } => workflow_text(&v),
            InspectWhat::Agents { .. } => agents_text(&v),
            InspectWhat::Bottlenecks => findings_text(&v),
        }
    );
    Ok(ExitCode::SUCCESS)
}
