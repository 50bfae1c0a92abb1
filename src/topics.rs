//! Baton's topic names (DESIGN §1): every topic shares a configurable prefix
//! (default `baton.`) and the same partition count.

use crate::log::TopicSpec;

/// Default prefix of every Baton topic.
pub const DEFAULT_PREFIX: &str = "baton.";

/// The standard topics under one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics::new(DEFAULT_PREFIX)
    }
}

impl Topics {
    pub fn new(prefix: impl Into<String>) -> Self {
        Topics {
            prefix: prefix.into(),
        }
    }

    fn name(&self, suffix: &str) -> String {
        format!("{}{}", self.prefix, suffix)
    }

    /// Requests and reports from users and agents.
    pub fn ingress(&self) -> String {
        self.name("ingress")
    }
    /// Every accepted fact; the source of truth.
    pub fn journal(&self) -> String {
        self.name("journal")
    }
    /// StepAssigned / StepCancelled for agents, keyed by agent id.
    pub fn assignments(&self) -> String {
        self.name("assignments")
    }
    /// Workflow status changes, keyed by workflow id (compacted).
    pub fn status(&self) -> String {
        self.name("status")
    }
    /// Bottleneck findings, keyed by finding key.
    pub fn alerts(&self) -> String {
        self.name("alerts")
    }
    /// Rejected input with its reason.
    pub fn dlq(&self) -> String {
        self.name("dlq")
    }

    /// True for the topics only the engine writes (journal, assignments,
    /// status, alerts, dlq): a record appended there by anyone else would
    /// be a forged fact or result, so `produce` refuses them.
    pub fn engine_owned(&self, topic: &str) -> bool {
        [
            self.journal(),
            self.assignments(),
            self.status(),
            self.alerts(),
            self.dlq(),
        ]
        .iter()
        .any(|t| t == topic)
    }

    /// A bounded metric label for one of these topics: its suffix
    /// (`assignments`, `status`, ...), or `other`.
    pub fn label(&self, topic: &str) -> &'static str {
        const SUFFIXES: [&str; 6] = [
            "ingress",
            "journal",
            "assignments",
            "status",
            "alerts",
            "dlq",
        ];
        let suffix = topic.strip_prefix(self.prefix.as_str()).unwrap_or("");
        SUFFIXES
            .iter()
            .find(|s| **s == suffix)
            .copied()
            .unwrap_or("other")
    }

    /// The engine's consumer group: `<prefix>engine` with the prefix's
    /// trailing dot as a dash (`baton-engine` for the default prefix), so
    /// Baton deployments under different prefixes on one cluster never
    /// rebalance each other.
    pub fn engine_group(&self) -> String {
        let base = self.prefix.strip_suffix('.').unwrap_or(&self.prefix);
        if base.is_empty() {
            "engine".into()
        } else {
            format!("{base}-engine")
        }
    }

    /// All standard topics with `partitions` partitions each.
    pub fn specs(&self, partitions: u32) -> Vec<TopicSpec> {
        let mut specs: Vec<TopicSpec> = [
            self.ingress(),
            self.journal(),
            self.assignments(),
            self.status(),
            self.alerts(),
            self.dlq(),
        ]
        .into_iter()
        .map(|n| TopicSpec::new(n, partitions))
        .collect();
        specs[3].compacted = true;
        specs
    }
}
