//! The configuration file (`baton.toml`): one TOML file whose every key
//! has a `BATON_…` environment variable and a command-line flag.
//! Precedence: flag > environment > file > built-in default.
//!
//! How: the file is read and validated before the command line is parsed,
//! and each key it sets becomes its environment variable unless that
//! variable is already set; clap then reads flags and environment as usual.
//! So there is exactly one place (the clap definitions) where defaults and
//! flag/env names live, and [`KEYS`] ties file keys to them (a test checks
//! every name in it exists on the command line).
//!
//! The `[kafka]` table is the exception: librdkafka properties are an open
//! set, so it is handed to the Kafka backend directly (then `BATON_KAFKA_*`
//! variables, then `--kafka KEY=VALUE` flags, later ones winning).
//!
//! Invariant: an unknown key or an invalid value is an error that names the
//! key and what is allowed; nothing is silently ignored.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::log::embedded::FsyncPolicy;
use crate::telemetry::logging::LogFormat;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config file {path}: `{key}` = {value}: {allowed}")]
    Invalid {
        path: String,
        key: &'static str,
        value: String,
        allowed: String,
    },
}

/// Scheduling strategy names, as on the command line.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyName {
    RoundRobin,
    LeastConnections,
    Weighted,
    PerformanceBased,
}

impl StrategyName {
    fn as_str(self) -> &'static str {
        match self {
            StrategyName::RoundRobin => "round-robin",
            StrategyName::LeastConnections => "least-connections",
            StrategyName::Weighted => "weighted",
            StrategyName::PerformanceBased => "performance-based",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    pub strategy: Option<StrategyName>,
    pub max_running: Option<u64>,
    pub flush_ms: Option<u64>,
    pub batch_size: Option<u64>,
    pub bottleneck_window: Option<String>,
    pub bottlenecks: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    pub addr: Option<String>,
    pub enabled: Option<bool>,
    pub ready_max_lag: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    pub per_agent_labels: Option<bool>,
    pub agent_label_cap: Option<u64>,
}

/// A scalar of the `[kafka]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KafkaValue {
    Text(String),
    Integer(i64),
    Bool(bool),
}

impl KafkaValue {
    fn render(&self) -> String {
        match self {
            KafkaValue::Text(s) => s.clone(),
            KafkaValue::Integer(i) => i.to_string(),
            KafkaValue::Bool(b) => b.to_string(),
        }
    }
}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub log: Option<String>,
    pub log_format: Option<LogFormat>,
    pub topic_prefix: Option<String>,
    pub partitions: Option<u64>,
    pub fsync: Option<String>,
    pub brokers: Option<String>,
    #[serde(default)]
    pub kafka: BTreeMap<String, KafkaValue>,
    #[serde(default)]
    pub engine: EngineSection,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub metrics: MetricsSection,
}

/// File key → environment variable → flag, for every key but `[kafka]`.
pub const KEYS: &[(&str, &str, &str)] = &[
    ("data_dir", "BATON_DATA_DIR", "--data-dir"),
    ("log", "BATON_LOG", "--log"),
    ("log_format", "BATON_LOG_FORMAT", "--log-format"),
    ("topic_prefix", "BATON_TOPIC_PREFIX", "--topic-prefix"),
    ("partitions", "BATON_PARTITIONS", "--partitions"),
    ("fsync", "BATON_FSYNC", "--fsync"),
    ("brokers", "BATON_BROKERS", "--brokers"),
    ("engine.strategy", "BATON_ENGINE_STRATEGY", "--strategy"),
    (
        "engine.max_running",
        "BATON_ENGINE_MAX_RUNNING",
        "--max-running",
    ),
    ("engine.flush_ms", "BATON_ENGINE_FLUSH_MS", "--flush-ms"),
    (
        "engine.batch_size",
        "BATON_ENGINE_BATCH_SIZE",
        "--batch-size",
    ),
    (
        "engine.bottleneck_window",
        "BATON_ENGINE_BOTTLENECK_WINDOW",
        "--bottleneck-window",
    ),
    (
        "engine.bottlenecks",
        "BATON_ENGINE_NO_BOTTLENECKS",
        "--no-bottlenecks",
    ),
    ("http.addr", "BATON_HTTP_ADDR", "--http-addr"),
    ("http.enabled", "BATON_HTTP_DISABLED", "--no-http"),
    (
        "http.ready_max_lag",
        "BATON_HTTP_READY_MAX_LAG",
        "--ready-max-lag",
    ),
    (
        "metrics.per_agent_labels",
        "BATON_METRICS_PER_AGENT_LABELS",
        "--per-agent-metrics",
    ),
    (
        "metrics.agent_label_cap",
        "BATON_METRICS_AGENT_LABEL_CAP",
        "--agent-label-cap",
    ),
];

/// Prefix of environment variables that set `[kafka]` properties:
/// `BATON_KAFKA_SASL_PASSWORD` sets `sasl.password` (lower case,
/// underscores as dots).
pub const KAFKA_ENV_PREFIX: &str = "BATON_KAFKA_";

/// A validated file: environment values to apply and the `[kafka]` table.
#[derive(Debug, Default)]
pub struct Loaded {
    pub env: Vec<(&'static str, String)>,
    pub kafka: Vec<(String, String)>,
}

fn env_name(key: &str) -> &'static str {
    KEYS.iter()
        .find(|(k, _, _)| *k == key)
        .map_or("", |(_, e, _)| *e)
}

fn range(path: &str, key: &'static str, v: u64, lo: u64, hi: u64) -> Result<String, ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(v.to_string())
    } else {
        Err(ConfigError::Invalid {
            path: path.into(),
            key,
            value: v.to_string(),
            allowed: format!("expected an integer from {lo} to {hi}"),
        })
    }
}

impl FileConfig {
    pub fn parse(path: &str, text: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// Checks every value and turns the file into environment values.
    pub fn validate(self, path: &str) -> Result<Loaded, ConfigError> {
        let mut env: Vec<(&'static str, String)> = Vec::new();
        let invalid = |key: &'static str, value: &str, allowed: String| ConfigError::Invalid {
            path: path.into(),
            key,
            value: format!("{value:?}"),
            allowed,
        };
        let mut set = |key: &'static str, v: String| env.push((env_name(key), v));
        if let Some(d) = self.data_dir {
            set("data_dir", d.display().to_string());
        }
        if let Some(l) = self.log {
            if tracing_subscriber::EnvFilter::try_new(&l).is_err() {
                return Err(invalid(
                    "log",
                    &l,
                    "expected a log filter: error, warn, info, debug, trace or a tracing directive such as baton=debug,warn".into(),
                ));
            }
            set("log", l);
        }
        if let Some(f) = self.log_format {
            set(
                "log_format",
                match f {
                    LogFormat::Human => "human",
                    LogFormat::Json => "json",
                }
                .into(),
            );
        }
        if let Some(p) = self.topic_prefix {
            set("topic_prefix", p);
        }
        if let Some(n) = self.partitions {
            set("partitions", range(path, "partitions", n, 1, 1024)?);
        }
        if let Some(f) = self.fsync {
            if f.parse::<FsyncPolicy>().is_err() {
                return Err(invalid(
                    "fsync",
                    &f,
                    "expected `always` or `interval:<ms>`".into(),
                ));
            }
            set("fsync", f);
        }
        if let Some(b) = self.brokers {
            if b.trim().is_empty() {
                return Err(invalid(
                    "brokers",
                    &b,
                    "expected host:port[,host:port...]; leave the key out for the embedded log"
                        .into(),
                ));
            }
            set("brokers", b);
        }
        let e = self.engine;
        if let Some(s) = e.strategy {
            set("engine.strategy", s.as_str().into());
        }
        if let Some(n) = e.max_running {
            set(
                "engine.max_running",
                range(path, "engine.max_running", n, 1, u32::MAX as u64)?,
            );
        }
        if let Some(n) = e.flush_ms {
            set(
                "engine.flush_ms",
                range(path, "engine.flush_ms", n, 1, 3_600_000)?,
            );
        }
        if let Some(n) = e.batch_size {
            set(
                "engine.batch_size",
                range(path, "engine.batch_size", n, 1, 65_536)?,
            );
        }
        if let Some(w) = e.bottleneck_window {
            if crate::cli::parse_window(&w).is_err() {
                return Err(invalid(
                    "engine.bottleneck_window",
                    &w,
                    "expected a duration of at least 100ms such as 500ms, 30s, 1m or 1h".into(),
                ));
            }
            set("engine.bottleneck_window", w);
        }
        if let Some(on) = e.bottlenecks {
            set("engine.bottlenecks", (!on).to_string());
        }
        let h = self.http;
        if let Some(a) = h.addr {
            if a.parse::<SocketAddr>().is_err() {
                return Err(invalid(
                    "http.addr",
                    &a,
                    "expected HOST:PORT with an IP address, such as 127.0.0.1:9464 or 0.0.0.0:9464"
                        .into(),
                ));
            }
            set("http.addr", a);
        }
        if let Some(on) = h.enabled {
            set("http.enabled", (!on).to_string());
        }
        if let Some(n) = h.ready_max_lag {
            set("http.ready_max_lag", n.to_string());
        }
        let m = self.metrics;
        if let Some(on) = m.per_agent_labels {
            set("metrics.per_agent_labels", on.to_string());
        }
        if let Some(n) = m.agent_label_cap {
            set(
                "metrics.agent_label_cap",
                range(path, "metrics.agent_label_cap", n, 0, 10_000)?,
            );
        }
        if let Some(k) = self
            .kafka
            .keys()
            .find(|k| crate::log::kafka::config::PINNED.contains(&k.as_str()))
        {
            return Err(ConfigError::Invalid {
                path: path.into(),
                key: "kafka",
                value: format!("{k:?}"),
                allowed:
                    "set by Baton (its delivery guarantees depend on it) and cannot be overridden"
                        .into(),
            });
        }
        let kafka = self
            .kafka
            .into_iter()
            .map(|(k, v)| (k, v.render()))
            .collect();
        Ok(Loaded { env, kafka })
    }
}

/// Reads and validates `path`.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    FileConfig::parse(&shown, &text)?.validate(&shown)
}

/// `[kafka]` properties from `BATON_KAFKA_*` variables.
pub fn kafka_from_env() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::env::vars()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix(KAFKA_ENV_PREFIX)?;
            (!rest.is_empty()).then(|| (rest.to_ascii_lowercase().replace('_', "."), v))
        })
        .collect();
    out.sort();
    out
}

/// The README's table of keys (a test keeps the README equal to it).
pub fn markdown_table() -> String {
    let mut out = String::from("| file key | environment | flag |\n|---|---|---|\n");
    for (key, env, flag) in KEYS {
        out.push_str(&format!("| `{key}` | `{env}` | `{flag}` |\n"));
    }
    out.push_str(&format!(
        "| `kafka.\"<property>\"` | `{KAFKA_ENV_PREFIX}<PROPERTY>` (dots as `_`) | `--kafka <property>=<value>` |\n| (the file itself) | `BATON_CONFIG` | `--config` |\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Loaded, ConfigError> {
        FileConfig::parse("t.toml", text)?.validate("t.toml")
    }

    #[test]
    fn a_full_file_becomes_environment_values() {
        let l = check(
            r#"
data_dir = "/d"
log = "info"
log_format = "json"
partitions = 8
brokers = "k:9092"
[kafka]
"security.protocol" = "sasl_ssl"
"socket.timeout.ms" = 30000
[engine]
strategy = "weighted"
bottleneck_window = "30s"
bottlenecks = false
[http]
addr = "0.0.0.0:9464"
[metrics]
per_agent_labels = true
"#,
        )
        .unwrap();
        let env: BTreeMap<_, _> = l.env.into_iter().collect();
        assert_eq!(env["BATON_PARTITIONS"], "8");
        assert_eq!(env["BATON_LOG_FORMAT"], "json");
        assert_eq!(env["BATON_ENGINE_STRATEGY"], "weighted");
        assert_eq!(env["BATON_ENGINE_NO_BOTTLENECKS"], "true");
        assert_eq!(env["BATON_HTTP_ADDR"], "0.0.0.0:9464");
        assert_eq!(env["BATON_METRICS_PER_AGENT_LABELS"], "true");
        assert_eq!(
            l.kafka,
            vec![
                ("security.protocol".into(), "sasl_ssl".into()),
                ("socket.timeout.ms".into(), "30000".into())
            ]
        );
    }

    #[test]
    fn mistakes_name_the_key_and_what_is_allowed() {
        let cases = [
            ("partitionz = 3", "unknown field `partitionz`"),
            ("[engine]\nstrategy = \"fastest\"", "round-robin"),
            (
                "partitions = 0",
                "`partitions` = 0: expected an integer from 1 to 1024",
            ),
            ("fsync = \"sometimes\"", "`fsync`"),
            ("[http]\naddr = \"localhost\"", "`http.addr`"),
            (
                "[engine]\nbottleneck_window = \"1 fortnight\"",
                "`engine.bottleneck_window`",
            ),
            ("[engine]\nbatch = 3", "unknown field `batch`"),
            ("log_format = \"xml\"", "human"),
            ("partitions = \"four\"", "partitions"),
        ];
        for (text, want) in cases {
            let err = check(text).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: `{err}` lacks `{want}`");
        }
    }

    #[test]
    fn every_key_has_its_flag_and_environment_variable_on_baton_run() {
        use clap::CommandFactory;
        let cmd = crate::cli::Cli::command();
        let run = cmd
            .get_subcommands()
            .find(|c| c.get_name() == "run")
            .expect("run subcommand");
        for (key, env, flag) in KEYS {
            let arg = cmd
                .get_arguments()
                .chain(run.get_arguments())
                .find(|a| a.get_long().map(|l| format!("--{l}")).as_deref() == Some(*flag));
            let arg = arg.unwrap_or_else(|| panic!("{key}: no flag {flag} on `baton run`"));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(*env),
                "{key}: {flag} reads another variable"
            );
        }
    }
}
