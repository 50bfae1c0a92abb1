//! `baton inspect workflow <id>` and `baton inspect agents`: read the
//! projection stores (the engine must not be running on this data dir; the
//! embedded stores are single-process; `--api URL` asks a running engine
//! instead, see `inspect_remote`). With `--as-of <offset|timestamp>`
//! they show a past moment instead: a workflow refolds only its own facts
//! (found through the correlation index); the fleet refolds each journal
//! partition up to that moment.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::backend::Journal;
use super::GlobalArgs;
use crate::domain::engine::{AgentView, WorkflowState};
use crate::engine::history::{agents_as_of, correlation_facts, workflow_as_of, AsOf};
use crate::engine::stored::{merge_agents, Load};
use crate::log::partition_for_key;

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(subcommand)]
    pub what: InspectWhat,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Ask a running Baton's HTTP API (e.g. http://127.0.0.1:9464) instead
    /// of reading the stores, which a running engine holds. JSON output is
    /// then the API's shape (see /openapi.json).
    #[arg(long, global = true, env = "BATON_API", value_name = "URL")]
    pub api: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum InspectWhat {
    /// A workflow: status, each step's state, attempts, agent, timings, usage.
    Workflow {
        id: String,
        /// Its state at a past moment: a journal offset (state before it)
        /// or an RFC 3339 timestamp.
        #[arg(long)]
        as_of: Option<AsOf>,
    },
    /// The fleet: health, pool, in flight / capacity, EWMA latency, success rate.
    Agents {
        /// The fleet at a past moment: an RFC 3339 timestamp, or a journal
        /// offset (applied to every partition).
        #[arg(long)]
        as_of: Option<AsOf>,
    },
    /// Active bottleneck findings, most severe first, with their evidence
    /// and recommendation (merged over partitions).
    Bottlenecks,
}

fn ms(
    from: Option<crate::domain::events::Timestamp>,
    to: Option<crate::domain::events::Timestamp>,
) -> String {
    match (from, to) {
        (Some(a), Some(b)) => format!("{:.1}", (b.0 - a.0) as f64 / 1000.0),
        _ => "-".into(),
    }
}

pub async fn run(global: &GlobalArgs, args: InspectArgs) -> anyhow::Result<ExitCode> {
    if let Some(api) = &args.api {
        return super::inspect_remote::run(api, &args.what, args.json).await;
    }
    if let InspectWhat::Bottlenecks = args.what {
        // Findings need only each partition's bottleneck projection.
        let states = super::report::load_states_for(global, Load::Findings).await?;
        let report = crate::engine::report::build(&states, crate::engine::report::Span::Short);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report.findings)?);
        } else {
            print!("{}", super::report::render_findings(&report));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let journal = Journal::open(global).await?;
    let (log, source) = (&journal.log, journal.source());
    let partitions = log.partition_count(&global.topics().ingress()).await?;
    match args.what {
        InspectWhat::Workflow { id, as_of } => {
            let p = partition_for_key(id.as_bytes(), partitions);
            let store =
                super::stores::open_checked(global, log.as_ref(), p, "baton inspect").await?;
            let wf = match as_of {
                None => store.workflow(&id)?,
                Some(a) => {
                    let facts = correlation_facts(&source, p, &store, &id).await?;
                    workflow_as_of(&facts, &id, Some(a))
                }
            };
            let Some(wf) = wf else {
                let when = if as_of.is_some() {
                    " at that moment"
                } else {
                    ""
                };
                eprintln!("error: no workflow `{id}` (partition {p}){when}; has the engine run since it was submitted?");
                return Ok(ExitCode::from(1));
            };
            if args.json {
                println!("{}", serde_json::to_string_pretty(&workflow_json(&wf))?);
            } else {
                print_workflow(&wf);
            }
        }
        InspectWhat::Agents { as_of } => {
            let mut agents: std::collections::BTreeMap<String, AgentView> = Default::default();
            for p in 0..partitions {
                let views = match as_of {
                    None => super::stores::open_checked(global, log.as_ref(), p, "baton inspect")
                        .await?
                        .agents()?,
                    Some(a) => {
                        let until = a.offset_in(log.as_ref(), &journal.topic, p).await?;
                        agents_as_of(&source, p, until).await?
                    }
                };
                merge_agents(&mut agents, views);
            }
            if args.json {
                let rows: Vec<_> = agents.values().map(agent_json).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<20} {:<9} {:<12} {:>9} {:>12} {:>8}",
                    "AGENT", "HEALTH", "POOL", "LOAD", "EWMA ms", "SUCCESS"
                );
                for a in agents.values() {
                    let n = a.successes + a.failures;
                    let rate = if n == 0 {
                        "-".to_string()
                    } else {
                        format!("{:.1}%", 100.0 * a.successes as f64 / n as f64)
                    };
                    println!(
                        "{:<20} {:<9} {:<12} {:>9} {:>12.1} {:>8}",
                        a.id,
                        format!("{:?}", a.health).to_lowercase()
                            + if a.draining { "*" } else { "" },
                        a.pool,
                        format!("{}/{}", a.holding(), a.capacity),
                        a.ewma_latency_ms,
                        rate
                    );
                }
            }
        }
        InspectWhat::Bottlenecks => unreachable!("answered above"),
    }
    Ok(ExitCode::SUCCESS)
}

fn workflow_json(wf: &WorkflowState) -> serde_json::Value {
    let steps: Vec<_> = wf
        .definition
        .steps
        .iter()
        .zip(&wf.steps)
        .map(|(d, s)| {
            json!({
                "id": d.id, "status": format!("{:?}", s.status).to_lowercase(), "attempt": s.attempt,
                "agent": s.agent, "wait_ms": ms(s.ready_at, s.assigned_at), "run_ms": ms(s.assigned_at, s.finished_at),
                "error": s.last_error, "usage": s.usage,
            })
        })
        .collect();
    json!({
        "workflow_id": wf.id, "name": wf.definition.name, "status": wf.status, "reason": wf.reason,
        "accepted_at": wf.accepted_at, "finished_at": wf.finished_at, "duration_ms": ms(Some(wf.accepted_at), wf.finished_at),
        "usage": wf.usage, "steps": steps,
    })
}

fn agent_json(a: &AgentView) -> serde_json::Value {
    json!({
        "agent_id": a.id, "health": a.health, "draining": a.draining, "pool": a.pool, "capabilities": a.capabilities,
        "in_flight": a.holding(), "last_reported_in_flight": a.reported_in_flight,
        "capacity": a.capacity, "ewma_latency_ms": a.ewma_latency_ms,
        "successes": a.successes, "failures": a.failures, "usage": a.usage,
    })
}

fn print_workflow(wf: &WorkflowState) {
    println!(
        "workflow {} ({})  status: {}{}",
        wf.id,
        wf.definition.name,
        serde_json::to_value(wf.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        wf.reason
            .as_ref()
            .map(|r| format!(" - {r}"))
            .unwrap_or_default()
    );
    println!(
        "duration: {} ms   usage: {} tokens in, {} tokens out, cost {:.4}",
        ms(Some(wf.accepted_at), wf.finished_at),
        wf.usage.tokens_in,
        wf.usage.tokens_out,
        wf.usage.cost
    );
    println!(
        "{:<20} {:<15} {:>7} {:<18} {:>9} {:>9}  ERROR",
        "STEP", "STATUS", "ATTEMPT", "AGENT", "WAIT ms", "RUN ms"
    );
    for (d, s) in wf.definition.steps.iter().zip(&wf.steps) {
        println!(
            "{:<20} {:<15} {:>7} {:<18} {:>9} {:>9}  {}",
            d.id,
            format!("{:?}", s.status).to_lowercase(),
            s.attempt,
            s.agent.as_deref().unwrap_or("-"),
            ms(s.ready_at, s.assigned_at),
            ms(s.assigned_at, s.finished_at),
            s.last_error.as_deref().unwrap_or("")
        );
    }
}
