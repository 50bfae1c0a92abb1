//! Opens the log the global options select: Kafka when `--brokers` is set
//! (the journal topic framed for atomic appends), else the embedded log
//! under `<data-dir>/log`.

use std::sync::Arc;

use anyhow::Context;

use super::{GlobalArgs, UsageError};
use crate::codec::Codec;
use crate::engine::replay::JournalSource;
use crate::log::embedded::{EmbeddedConfig, EmbeddedLog};
use crate::log::kafka::{KafkaConfig, KafkaLog};
use crate::log::{EventLog, LogError, TopicSpec};

/// How the command will use the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Appends and commits; takes the data directory's writer lock.
    Write,
    /// Reads only; can run beside a writer (e.g. `tail --follow`).
    Read,
}

/// The log opened for reading the journal, with the codec to decode it
/// (what `replay`, `audit` and `inspect --as-of` share).
pub struct Journal {
    pub log: Arc<dyn EventLog>,
    pub codec: Codec,
    pub topic: String,
}

impl Journal {
    pub async fn open(global: &GlobalArgs) -> anyhow::Result<Journal> {
        Ok(Journal {
            log: open(global, Access::Read).await?,
            codec: Codec::builtin()?,
            topic: global.topics().journal(),
        })
    }

    pub fn source(&self) -> JournalSource<'_> {
        JournalSource {
            log: self.log.as_ref(),
            codec: &self.codec,
            topic: &self.topic,
        }
    }
}

/// The Kafka client settings of `--brokers` and `--kafka`, when Kafka is the
/// log.
pub fn kafka_config(global: &GlobalArgs) -> anyhow::Result<Option<KafkaConfig>> {
    let Some(brokers) = &global.brokers else {
        return Ok(None);
    };
    let mut config = KafkaConfig::new(brokers.clone());
    for (k, v) in &global.kafka_base {
        config.properties.insert(k.clone(), v.clone());
    }
    for kv in &global.kafka {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            UsageError(format!(
                "--kafka {kv}: expected KEY=VALUE (a librdkafka property)"
            ))
        })?;
        config
            .properties
            .insert(k.trim().to_string(), v.trim().to_string());
    }
    config.validate().map_err(UsageError)?;
    config.atomic_topics = vec![global.topics().journal()];
    Ok(Some(config))
}

/// Opens the selected backend.
pub async fn open(global: &GlobalArgs, access: Access) -> anyhow::Result<Arc<dyn EventLog>> {
    if let Some(config) = kafka_config(global)? {
        let brokers = config.brokers.clone();
        let log = KafkaLog::connect(config)
            .await
            .with_context(|| format!("connecting to Kafka at {brokers}"))?;
        return Ok(Arc::new(log));
    }
    let root = global.data_dir.join("log");
    let config = match access {
        Access::Write => EmbeddedConfig {
            fsync: global.fsync,
            ..EmbeddedConfig::new(&root)
        },
        Access::Read => EmbeddedConfig::read_only(&root),
    };
    let log = EmbeddedLog::open(config)
        .with_context(|| format!("opening the embedded log in {}", root.display()))?;
    Ok(Arc::new(log))
}

/// Creates the standard topics (and `extra`, if not standard) when missing.
pub async fn ensure_topics(
    log: &dyn EventLog,
    global: &GlobalArgs,
    extra: Option<&str>,
) -> anyhow::Result<()> {
    let mut specs = global.topics().specs(global.partitions);
    if let Some(t) = extra {
        if !specs.iter().any(|s| s.name == t) {
            specs.push(TopicSpec::new(t, global.partitions));
        }
    }
    let existing = log.list_topics().await?;
    for spec in specs {
        if let Some(t) = existing.iter().find(|t| t.name == spec.name) {
            if t.partitions != spec.partitions {
                tracing::warn!(topic = %t.name, partitions = t.partitions, requested = spec.partitions, "topic exists with a different partition count; keeping it");
            }
            continue;
        }
        match log.create_topic(&spec).await {
            Ok(()) | Err(LogError::PartitionMismatch { .. }) => {}
            Err(e) => return Err(e).with_context(|| format!("creating topic {}", spec.name)),
        }
    }
    Ok(())
}
