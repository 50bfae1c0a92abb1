//! Settings of the Kafka backend and the librdkafka properties derived from
//! them.
//!
//! Invariants:
//! - Properties Baton's guarantees rest on (idempotence, `acks=all`, no
//!   auto-commit, no auto topic creation, `auto.offset.reset=error`) cannot
//!   be overridden by the pass-through table; trying is an error naming the
//!   key.
//! - Secrets never reach a log line: [`KafkaConfig::redacted`] masks every
//!   property whose name suggests one.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;

/// Properties that the user may not set (Baton's guarantees depend on them).
pub const PINNED: &[&str] = &[
    "enable.idempotence",
    "acks",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "allow.auto.create.topics",
    "bootstrap.servers",
    "group.id",
    // Readers tell "the end" from "not yet" by it.
    "enable.partition.eof",
    // The engine's rebalance handling is written for incremental
    // (cooperative) assignment.
    "partition.assignment.strategy",
];

/// How to reach the brokers and tune the clients.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// Passed to every librdkafka client as is (`security.protocol`,
    /// `sasl.*`, `ssl.*`, timeouts, …).
    pub properties: BTreeMap<String, String>,
    /// Topics with one writer per partition whose appends are framed to be
    /// atomic (see [`super::framing`]): the journal.
    pub atomic_topics: Vec<String>,
    /// Replication factor of topics this backend creates.
    pub replication: i32,
    /// `fetch.wait.max.ms` of readers unless the properties set it: how long
    /// the broker may hold a fetch open when there is nothing new. The
    /// default, 4 ms, suits tansu 0.6, which holds *every* fetch for half of
    /// it: at 10 ms the half-load decision latency was p50 15 / p99 27 ms,
    /// at 4 ms p50 10 / p99 15-20 ms, at the cost of more idle fetches
    /// (an idle engine: tansu 10 % → 15 % of a core). Apache Kafka answers
    /// a fetch as soon as data arrives, so there a larger value (100-500)
    /// costs no latency and saves those fetches.
    pub fetch_wait_ms: u32,
    /// `linger.ms` of the producer.
    pub linger_ms: u32,
}

impl KafkaConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            properties: BTreeMap::new(),
            atomic_topics: Vec::new(),
            replication: 1,
            fetch_wait_ms: 4,
            linger_ms: 1,
        }
    }

    /// Checks the pass-through table: no pinned key, no empty name.
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err(
                "kafka brokers: expected host:port[,host:port…], got an empty string".into(),
            );
        }
        for key in self.properties.keys() {
            if key.trim().is_empty() {
                return Err("kafka property with an empty name".into());
            }
            if PINNED.contains(&key.as_str()) {
                return Err(format!(
                    "kafka property `{key}` is set by Baton (its delivery guarantees depend on it) and cannot be overridden"
                ));
            }
        }
        Ok(())
    }

    /// The properties as `key=value` with secrets masked, for logs.
    pub fn redacted(&self) -> Vec<String> {
        self.properties
            .iter()
            .map(|(k, v)| {
                let secret = ["password", "secret", "key", "token", "jaas"]
                    .iter()
                    .any(|s| k.contains(s));
                if secret {
                    format!("{k}=***")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect()
    }

    /// Settings every client gets.
    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("allow.auto.create.topics", "false")
            .set("log_level", "4");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// The idempotent producer.
    pub fn producer(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .remove("allow.auto.create.topics");
        self.defaults(
            &mut c,
            &[
                ("linger.ms", &self.linger_ms.to_string()),
                ("batch.num.messages", "10000"),
                ("queue.buffering.max.messages", "1000000"),
                ("queue.buffering.max.kbytes", "1048576"),
            ],
        );
        c
    }

    /// A reader of one partition, positioned by `assign` (no group).
    pub fn reader(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", "baton-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "error");
        self.defaults(
            &mut c,
            &[
                ("fetch.min.bytes", "1"),
                ("queued.min.messages", "200000"),
                ("fetch.wait.max.ms", &self.fetch_wait_ms.to_string()),
            ],
        );
        c
    }

    /// Sets Baton's tuning where the properties do not: the user's
    /// `[kafka]` table wins over every default (only [`PINNED`] keys are
    /// Baton's alone).
    fn defaults(&self, c: &mut ClientConfig, defaults: &[(&str, &str)]) {
        for (k, v) in defaults {
            if !self.properties.contains_key(*k) {
                c.set(*k, *v);
            }
        }
    }

    /// A group member (partition ownership) or a group's committer.
    pub fn group(&self, group: &str) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A member never reads (its partitions are paused), and a group
            // that committed nothing yet must not make it fail.
            .set("auto.offset.reset", "latest")
            // Incremental: a rebalance moves only the partitions that
            // change owner, and the others keep running. Its member metadata
            // also carries the owned partitions and generation, which brokers
            // that reuse a stale assignment when a rejoining member's
            // metadata is unchanged (tansu 0.6 after a member expires) need
            // to see the group has changed.
            .set("partition.assignment.strategy", "cooperative-sticky");
        self.defaults(
            &mut c,
            &[
                ("fetch.wait.max.ms", &self.fetch_wait_ms.to_string()),
                ("session.timeout.ms", "6000"),
                ("heartbeat.interval.ms", "1000"),
            ],
        );
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_properties_are_refused_and_secrets_masked() {
        let mut c = KafkaConfig::new("127.0.0.1:9092");
        c.properties
            .insert("security.protocol".into(), "SASL_SSL".into());
        c.properties
            .insert("sasl.password".into(), "hunter2".into());
        assert!(c.validate().is_ok());
        assert_eq!(
            c.redacted(),
            vec!["sasl.password=***", "security.protocol=SASL_SSL"]
        );
        c.properties.insert("acks".into(), "1".into());
        let e = c.validate().unwrap_err();
        assert!(e.contains("`acks`"), "{e}");
        assert!(KafkaConfig::new(" ").validate().is_err());
    }

    #[test]
    fn tuning_defaults_yield_to_the_properties() {
        let mut c = KafkaConfig::new("127.0.0.1:9092");
        assert_eq!(c.producer().get("linger.ms"), Some("1"));
        assert_eq!(c.reader().get("queued.min.messages"), Some("200000"));
        c.properties.insert("linger.ms".into(), "5".into());
        c.properties
            .insert("queued.min.messages".into(), "1000".into());
        c.properties
            .insert("session.timeout.ms".into(), "30000".into());
        assert!(c.validate().is_ok());
        assert_eq!(c.producer().get("linger.ms"), Some("5"));
        assert_eq!(c.reader().get("queued.min.messages"), Some("1000"));
        assert_eq!(c.group("g").get("session.timeout.ms"), Some("30000"));
        assert_eq!(c.producer().get("acks"), Some("all"));
        c.properties
            .insert("partition.assignment.strategy".into(), "range".into());
        assert!(c.validate().is_err());
    }

    #[test]
    fn fetch_wait_defaults_to_4_ms_unless_the_properties_set_it() {
        let mut c = KafkaConfig::new("127.0.0.1:9092");
        assert_eq!(c.reader().get("fetch.wait.max.ms"), Some("4"));
        assert_eq!(c.group("g").get("fetch.wait.max.ms"), Some("4"));
        c.properties
            .insert("fetch.wait.max.ms".into(), "100".into());
        assert!(c.validate().is_ok());
        assert_eq!(c.reader().get("fetch.wait.max.ms"), Some("100"));
        assert_eq!(c.group("g").get("fetch.wait.max.ms"), Some("100"));
    }

    /// The client is built with OpenSSL: TLS and SASL (PLAIN, SCRAM,
    /// OAUTHBEARER) settings are accepted, not refused at client creation.
    #[test]
    fn clients_speak_tls_and_sasl() {
        for (protocol, mechanism) in [
            ("ssl", None),
            ("sasl_ssl", Some("SCRAM-SHA-512")),
            ("sasl_plaintext", Some("PLAIN")),
        ] {
            let mut c = KafkaConfig::new("127.0.0.1:1");
            c.properties
                .insert("security.protocol".into(), protocol.into());
            if let Some(m) = mechanism {
                c.properties.insert("sasl.mechanisms".into(), m.into());
                c.properties.insert("sasl.username".into(), "u".into());
                c.properties.insert("sasl.password".into(), "p".into());
            }
            let created: Result<rdkafka::producer::BaseProducer, _> = c.producer().create();
            assert!(created.is_ok(), "{protocol}: {:?}", created.err());
        }
    }
}
