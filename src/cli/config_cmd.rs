//! `baton config`: the configuration in effect (config file, then
//! `BATON_*` variables, then flags, over the defaults), printed in the
//! file's own TOML layout with secrets masked, so an operator can see what
//! a deployment will run with and check a file (exit 2 when it is invalid).

use std::process::ExitCode;

use clap::Args;

use super::run::EngineArgs;
use super::serve::{ServeArgs, DEFAULT_HTTP_ADDR};
use super::GlobalArgs;
use crate::telemetry::logging::LogFormat;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

pub fn run(global: &GlobalArgs, args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k} = {v}\n"));
    line("data_dir", quote(&global.data_dir.display().to_string()));
    line("log", quote(&global.log));
    line(
        "log_format",
        quote(match global.log_format {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        }),
    );
    line("topic_prefix", quote(&global.topic_prefix));
    line("partitions", global.partitions.to_string());
    line("fsync", quote(&global.fsync.to_string()));
    match &global.brokers {
        Some(b) => line("brokers", quote(b)),
        None => out.push_str("# brokers: not set (the embedded log)\n"),
    }
    out.push_str("\n[kafka]\n");
    if let Some(k) = super::backend::kafka_config(global)? {
        for kv in k.redacted() {
            if let Some((key, value)) = kv.split_once('=') {
                out.push_str(&format!("{} = {}\n", quote(key), quote(value)));
            }
        }
    }
    let e = &args.engine;
    out.push_str("\n[engine]\n");
    let strategy = format!("{:?}", e.strategy);
    let mut kebab = String::new();
    for (i, c) in strategy.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            kebab.push('-');
        }
        kebab.push(c.to_ascii_lowercase());
    }
    out.push_str(&format!("strategy = {}\n", quote(&kebab)));
    out.push_str(&format!("max_running = {}\n", e.max_running));
    out.push_str(&format!("flush_ms = {}\n", e.flush_ms));
    out.push_str(&format!("batch_size = {}\n", e.batch_size));
    match e.bottleneck_window {
        Some(ms) => out.push_str(&format!("bottleneck_window = \"{ms}ms\"\n")),
        None => out.push_str("bottleneck_window = \"1m\"\n"),
    }
    out.push_str(&format!("bottlenecks = {}\n", !e.no_bottlenecks));
    let s = &args.serve;
    out.push_str("\n[http]\n");
    out.push_str(&format!("enabled = {}\n", !s.no_http));
    let addr = s
        .http_addr
        .map_or(DEFAULT_HTTP_ADDR.to_string(), |a| a.to_string());
    out.push_str(&format!("addr = {}\n", quote(&addr)));
    out.push_str(&format!("ready_max_lag = {}\n", s.ready_max_lag));
    out.push_str("\n[metrics]\n");
    out.push_str(&format!("per_agent_labels = {}\n", s.per_agent_metrics));
    out.push_str(&format!("agent_label_cap = {}\n", s.agent_label_cap));
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
