//! `baton log …`: maintenance of the embedded log. Today one subcommand,
//! `repair`, which contains the damage that makes a partition refuse to
//! open for writing (see `log::embedded::repair`). This file only parses
//! and prints.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{GlobalArgs, UsageError};
use crate::log::embedded;

#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(subcommand)]
    pub command: LogCommand,
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Move the damaged bytes of one partition into
    /// `<partition>/quarantine/` and print which offsets were lost, so the
    /// partition opens for writing again. Valid frames after the damage are
    /// kept. Needs the writer lock: stop the engine first. An undamaged
    /// partition is left unchanged.
    Repair(RepairArgs),
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    /// The topic, e.g. baton.journal.
    #[arg(long)]
    pub topic: String,
    /// The partition number.
    #[arg(long)]
    pub partition: u32,
}

pub fn run(global: &GlobalArgs, args: LogArgs) -> anyhow::Result<ExitCode> {
    if global.brokers.is_some() {
        return Err(UsageError(
            "`baton log` maintains the embedded log; with --brokers, use Kafka's own tools".into(),
        )
        .into());
    }
    match args.command {
        LogCommand::Repair(a) => {
            let root = global.data_dir.join("log");
            let report = embedded::repair(&root, &a.topic, a.partition).with_context(|| {
                format!(
                    "repairing {}/{} of the log in {}",
                    a.topic,
                    a.partition,
                    root.display()
                )
            })?;
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
