//! `baton audit <correlation-id>`: the full story of a workflow, read
//! through the correlation index (no journal refold), with the ingress
//! events that caused it; `baton audit --agent <id>`: everything an agent
//! did (a scan of every journal partition: agents are not indexed per
//! workflow fact). Text or JSON (`baton.audit/v1`, documented in the README).

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::backend::Journal;
use super::{GlobalArgs, UsageError};
use crate::engine::audit::{self, Audit};
use crate::engine::history::{correlation_facts, inputs_of, JournalFact};
use crate::engine::replay::{decode_fact, ingress_offset, JournalSource};
use crate::log::partition_for_key;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The correlation id: a workflow id (or an agent id, for its lifecycle).
    #[arg(required_unless_present = "agent", conflicts_with = "agent")]
    pub correlation_id: Option<String>,
    /// Everything this agent did instead: registrations, health, every
    /// assignment and result, across all partitions.
    #[arg(long)]
    pub agent: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Ask a running Baton's HTTP API (e.g. http://127.0.0.1:9464) instead
    /// of reading the stores, which a running engine holds. Its store is
    /// already open, so the answer is immediate.
    #[arg(long, env = "BATON_API", value_name = "URL", conflicts_with = "agent")]
    pub api: Option<String>,
}

pub async fn run(global: &GlobalArgs, args: AuditArgs) -> anyhow::Result<ExitCode> {
    if let (Some(api), Some(id)) = (&args.api, &args.correlation_id) {
        let format = match args.format {
            Format::Text => "text",
            Format::Json => "json",
        };
        let path = format!("/v1/audit/{}?format={format}", super::remote::encode(id));
        return match super::remote::get(api, &path).await? {
            Ok(body) => {
                // The API answers compact JSON; print it as the local
                // command does.
                let body = match args.format {
                    Format::Json => serde_json::from_str::<serde_json::Value>(&body)
                        .and_then(|v| serde_json::to_string_pretty(&v))
                        .unwrap_or(body),
                    Format::Text => body,
                };
                print!("{body}");
                if !body.ends_with('\n') {
                    println!();
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(message) => {
                eprintln!("error: {message}");
                Ok(ExitCode::from(1))
            }
        };
    }
    let journal = Journal::open(global).await?;
    let (log, codec, source) = (&journal.log, &journal.codec, journal.source());
    let partitions = log.partition_count(&journal.topic).await?;
    let story = match (&args.correlation_id, &args.agent) {
        (Some(id), _) => {
            let p = partition_for_key(id.as_bytes(), partitions);
            let store =
                super::stores::open_checked(global, log.as_ref(), p, "baton audit <id>").await?;
            let facts = correlation_facts(&source, p, &store, id).await?;
            if facts.is_empty() {
                eprintln!("error: nothing in the journal for `{id}` (partition {p})");
                return Ok(ExitCode::from(1));
            }
            let inputs =
                inputs_of(log.as_ref(), codec, &global.topics().ingress(), p, &facts).await?;
            audit::build(id, p, &facts, &inputs)
        }
        (None, Some(agent)) => agent_story(&source, partitions, agent).await?,
        (None, None) => return Err(UsageError("give a correlation id or --agent ID".into()).into()),
    };
    print(&story, args.format)?;
    Ok(ExitCode::SUCCESS)
}

fn print(story: &Audit, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(story)?),
        Format::Text => print!("{}", audit::render_text(story)),
    }
    Ok(())
}

/// Every fact about `agent` in every partition, in time order. The
/// partition number of the result is that of the agent's own events.
async fn agent_story(
    source: &JournalSource<'_>,
    partitions: u32,
    agent: &str,
) -> anyhow::Result<Audit> {
    let mut facts = Vec::new();
    for p in 0..partitions {
        let mut next = source.log.log_start(source.topic, p).await?;
        loop {
            let records = source.log.read(source.topic, p, next, 8192).await?;
            let Some(last) = records.last() else { break };
            next = last.offset + 1;
            for r in &records {
                let e = decode_fact(source.codec, p, r)?;
                if e.payload.agent_id() == Some(agent) || e.correlation_id == agent {
                    facts.push(JournalFact {
                        partition: p,
                        offset: r.offset,
                        ingress_offset: ingress_offset(r),
                        event: e,
                    });
                }
            }
        }
    }
    facts.sort_by_key(|f| (f.event.occurred_at, f.offset));
    let p = partition_for_key(agent.as_bytes(), partitions);
    Ok(audit::build(agent, p, &facts, &BTreeMap::new()))
}
