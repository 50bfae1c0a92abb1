//! Every metric Baton exports: name, kind, labels and description, in one
//! place. Code records through these constants only, the exporter describes
//! them from [`ALL`], and tests check that the README, the Grafana dashboard
//! and the alert rules name nothing else.
//!
//! Naming follows Prometheus: `baton_<noun>_<unit>[_total]`. Label values
//! are bounded: event types, reasons, states, pools and strategies are
//! small closed or operator-defined sets; `partition` is bounded by the
//! topic's partition count; per-agent series exist only behind
//! `metrics.per_agent_labels` and stop at `metrics.agent_label_cap` agents.
//! There is never a per-workflow label.

/// How a metric behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric's definition.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

const fn counter(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind: Kind::Counter,
        labels,
        help,
    }
}

const fn gauge(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Gauge,
        labels,
        help,
    }
}

const fn histogram(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind: Kind::Histogram,
        labels,
        help,
    }
}

// --- ingress -------------------------------------------------------------

pub const INGRESS_EVENTS: Metric = counter(
    "baton_ingress_events_total",
    &["type"],
    "Ingress events decoded, by event type.",
);
pub const INGRESS_DUPLICATES: Metric = counter(
    "baton_ingress_duplicates_total",
    &[],
    "Ingress events skipped because their event_id was already applied (dedup window).",
);
pub const INGRESS_REJECTED: Metric = counter(
    "baton_ingress_rejected_total",
    &["reason"],
    "Ingress records rejected (undecodable bytes or a domain rejection), by reason code; each goes to the dead-letter topic.",
);
pub const DEAD_LETTERS: Metric = counter(
    "baton_dead_letters_total",
    &[],
    "Records written to the dead-letter topic.",
);
pub const DECODE_DURATION: Metric = histogram(
    "baton_decode_duration_seconds",
    &[],
    "Time to decode one ingress batch (Avro single-object encoding to events).",
);
pub const FOLD_DURATION: Metric = histogram(
    "baton_fold_duration_seconds",
    &[],
    "Time to decide and fold one ingress batch (decide, evolve, timers), excluding IO.",
);
pub const DECISION_LATENCY: Metric = histogram(
    "baton_decision_latency_seconds",
    &[],
    "From an input's occurred_at to its facts being appended to the journal.",
);
pub const CONSUMER_LAG: Metric = gauge(
    "baton_consumer_lag_records",
    &["partition"],
    "Ingress records appended but not yet processed, per owned partition.",
);

// --- journal, results, store --------------------------------------------

pub const JOURNAL_EVENTS: Metric = counter(
    "baton_journal_events_total",
    &["type"],
    "Facts appended to the journal, by event type.",
);
pub const JOURNAL_APPENDS: Metric = counter(
    "baton_journal_appends_total",
    &[],
    "Journal append calls (each carries one or more facts).",
);
pub const RESULTS_PUBLISHED: Metric = counter(
    "baton_results_published_total",
    &["topic"],
    "Result records published (assignments, status, alerts, dead letters, and agent events forwarded to other ingress partitions), by topic.",
);
pub const CHECKPOINT_AGE: Metric = gauge(
    "baton_checkpoint_age_seconds",
    &["partition"],
    "Time since the partition's projection store was last checkpointed.",
);
pub const PARTITIONS_OWNED: Metric = gauge(
    "baton_partitions_owned",
    &[],
    "Ingress partitions this instance currently runs.",
);

// --- workflows and steps ----------------------------------------------------

pub const WORKFLOWS: Metric = gauge(
    "baton_workflows",
    &["partition", "state"],
    "Workflows not yet finished, by state (queued, running).",
);
pub const WORKFLOWS_FINISHED: Metric = counter(
    "baton_workflows_finished_total",
    &["status"],
    "Workflows that reached a final status (succeeded, failed, cancelled, timed_out, rejected).",
);
pub const STEPS: Metric = gauge(
    "baton_steps",
    &["partition", "state"],
    "Steps of unfinished workflows, by state.",
);
pub const QUEUE_DEPTH: Metric = gauge(
    "baton_queue_depth_steps",
    &["partition", "pool"],
    "Ready steps waiting for an agent, per pool.",
);
pub const ASSIGNMENTS: Metric = counter(
    "baton_assignments_total",
    &["strategy"],
    "Steps assigned to agents, by scheduling strategy.",
);
pub const RETRIES: Metric = counter(
    "baton_retries_total",
    &[],
    "Step retries scheduled (after a failure, a timeout or a lost agent).",
);
pub const STEP_TIMEOUTS: Metric = counter(
    "baton_step_timeouts_total",
    &[],
    "Step attempts that timed out.",
);

// --- agents and pools -----------------------------------------------------

pub const AGENTS: Metric = gauge(
    "baton_agents",
    &["partition", "health"],
    "Agents by health as each partition sees them (every partition knows every agent: take max over partitions).",
);
pub const AGENTS_LOST: Metric = counter(
    "baton_agents_lost_total",
    &[],
    "Agents declared lost after missing heartbeats.",
);
pub const POOL_IN_FLIGHT: Metric = gauge(
    "baton_pool_in_flight_steps",
    &["partition", "pool"],
    "Steps held by the pool's agents (assigned or running), per partition.",
);
pub const POOL_CAPACITY: Metric = gauge(
    "baton_pool_capacity_steps",
    &["partition", "pool"],
    "Summed capacity of the pool's live agents, as each partition sees them.",
);
pub const AGENT_IN_FLIGHT: Metric = gauge(
    "baton_agent_in_flight_steps",
    &["agent"],
    "Steps held by one agent (only with metrics.per_agent_labels; at most metrics.agent_label_cap agents).",
);
pub const AGENT_CAPACITY: Metric = gauge(
    "baton_agent_capacity_steps",
    &["agent"],
    "Capacity of one agent (only with metrics.per_agent_labels; at most metrics.agent_label_cap agents).",
);

// --- bottlenecks and usage ------------------------------------------------

pub const BOTTLENECK_FINDINGS: Metric = gauge(
    "baton_bottleneck_findings",
    &["partition", "kind"],
    "Active bottleneck findings, by kind.",
);
pub const BOTTLENECK_SEVERITY: Metric = gauge(
    "baton_bottleneck_severity_max",
    &["partition", "kind"],
    "Highest severity (1-100) among the active findings of a kind; 0 when none.",
);
pub const TOKENS: Metric = counter(
    "baton_tokens_total",
    &["direction"],
    "LLM tokens reported by agents for finished attempts (direction: in, out).",
);
pub const COST: Metric = gauge(
    "baton_usage_cost",
    &["partition"],
    "Cost reported by agents for finished attempts, summed over the partition's whole journal (survives restarts), in the agents' currency unit.",
);

// --- process ----------------------------------------------------------------

pub const BUILD_INFO: Metric = gauge(
    "baton_build_info",
    &["version"],
    "Always 1; the version label says which Baton runs.",
);

/// Every Baton metric, in the order the README lists them.
pub const ALL: &[Metric] = &[
    INGRESS_EVENTS,
    INGRESS_DUPLICATES,
    INGRESS_REJECTED,
    DEAD_LETTERS,
    DECODE_DURATION,
    FOLD_DURATION,
    DECISION_LATENCY,
    CONSUMER_LAG,
    JOURNAL_EVENTS,
    JOURNAL_APPENDS,
    RESULTS_PUBLISHED,
    CHECKPOINT_AGE,
    PARTITIONS_OWNED,
    WORKFLOWS,
    WORKFLOWS_FINISHED,
    STEPS,
    QUEUE_DEPTH,
    ASSIGNMENTS,
    RETRIES,
    STEP_TIMEOUTS,
    AGENTS,
    AGENTS_LOST,
    POOL_IN_FLIGHT,
    POOL_CAPACITY,
    AGENT_IN_FLIGHT,
    AGENT_CAPACITY,
    BOTTLENECK_FINDINGS,
    BOTTLENECK_SEVERITY,
    TOKENS,
    COST,
    BUILD_INFO,
];

/// Process metrics (exported under the standard Prometheus names, so stock
/// dashboards and alerts work): resident memory and CPU time among them.
pub const PROCESS: &[(&str, Kind, &str)] = &[
    (
        "process_cpu_seconds_total",
        Kind::Gauge,
        "CPU time (user + system) used by the process; exported as a gauge because the metrics crate's counters are integers (use rate() as usual).",
    ),
    (
        "process_resident_memory_bytes",
        Kind::Gauge,
        "Resident memory of the process.",
    ),
    (
        "process_virtual_memory_bytes",
        Kind::Gauge,
        "Virtual memory of the process.",
    ),
    ("process_open_fds", Kind::Gauge, "Open file descriptors."),
    ("process_threads", Kind::Gauge, "OS threads of the process."),
    (
        "process_start_time_seconds",
        Kind::Gauge,
        "Start time of the process since the Unix epoch.",
    ),
];

/// The README's metric table (a test keeps the README equal to it).
pub fn markdown_table() -> String {
    let mut out = String::from("| metric | type | labels | meaning |\n|---|---|---|---|\n");
    for m in ALL {
        let labels = if m.labels.is_empty() {
            "-".to_string()
        } else {
            m.labels.join(", ")
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            m.name,
            m.kind.as_str(),
            labels,
            m.help
        ));
    }
    for (name, kind, help) in PROCESS {
        out.push_str(&format!("| `{name}` | {} | - | {help} |\n", kind.as_str()));
    }
    out
}
