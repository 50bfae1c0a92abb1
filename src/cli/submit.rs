//! `baton submit <workflow.json|->`: validates a workflow definition locally
//! (same rules as the engine) and appends a SubmitWorkflow to ingress.
//!
//! Input: `{"workflow_id": "...", "definition": {...}}` or just the
//! definition (`{"name": ..., "steps": [...]}`), in which case an id is
//! generated. Prints the workflow id.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;

use super::backend::{self, Access};
use super::GlobalArgs;
use crate::codec::Codec;
use crate::domain::events::*;
use crate::domain::workflow::{validate, Limits};
use crate::log::{partition_for_key, ProducerRecord};

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Workflow JSON file, or `-` for stdin.
    pub file: String,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum SubmitInput {
    Full(SubmitWorkflow),
    Definition(WorkflowDefinition),
}

pub async fn run(global: &GlobalArgs, args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let mut text = String::new();
    if args.file == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
    } else {
        text = std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file))?;
    }
    let submit = match serde_json::from_str::<SubmitInput>(&text) {
        Ok(SubmitInput::Full(s)) => s,
        Ok(SubmitInput::Definition(d)) => SubmitWorkflow {
            workflow_id: format!("wf-{}", uuid::Uuid::new_v4().simple()),
            definition: d,
        },
        Err(_) => {
            // Re-parse strictly as a full submission for a precise message.
            let err = serde_json::from_str::<SubmitWorkflow>(&text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            eprintln!("error: {}: not a workflow: {err}", args.file);
            return Ok(ExitCode::from(1));
        }
    };
    if let Err(e) = validate(&submit.definition, &Limits::default()) {
        eprintln!(
            "error: {}: workflow rejected ({}): {e}",
            args.file,
            e.code()
        );
        return Ok(ExitCode::from(1));
    }
    let codec = Codec::builtin()?.with_max_event_bytes(crate::codec::MAX_INGRESS_EVENT_BYTES);
    let event = Envelope {
        event_id: EventId::random(),
        correlation_id: submit.workflow_id.clone(),
        causation_id: None,
        occurred_at: Timestamp::from_datetime(chrono::Utc::now()),
        producer: "baton-cli".into(),
        payload: Payload::SubmitWorkflow(submit.clone()),
    };
    let value = codec
        .encode(&event)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file))?;
    let log = backend::open(global, Access::Write).await?;
    backend::ensure_topics(log.as_ref(), global, None).await?;
    let topic = global.topics().ingress();
    let p = partition_for_key(
        submit.workflow_id.as_bytes(),
        log.partition_count(&topic).await?,
    );
    log.append(
        &topic,
        p,
        vec![ProducerRecord::new(
            Some(Bytes::from(submit.workflow_id.clone())),
            Bytes::from(value),
        )],
    )
    .await?;
    log.flush().await?;
    println!("{}", submit.workflow_id);
    Ok(ExitCode::SUCCESS)
}
