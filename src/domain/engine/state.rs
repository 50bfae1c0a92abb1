//! The folded state of one partition: workflows with their steps, the
//! partition's view of agents, timers, admission queue and the dedup window.
//!
//! Persisted parts (workflows, agents, dedup) are serde types; derived parts
//! (the scheduler's ready queues and agent load, the timer index, the
//! admission queue) are rebuilt from them on load by [`PartitionState::rebuild_derived`],
//! so the store never has to keep two copies consistent.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::config::EngineConfig;
use super::kept::Kept;
use super::timers::TimerKey;
use crate::domain::bottleneck::{Hysteresis, Stats, StepIds};
use crate::domain::events::{
    AgentHealth, EventId, JsonText, StepDefinition, Timestamp, Usage, WorkflowDefinition,
    WorkflowStatus,
};
use crate::domain::scheduler::Scheduler;
use crate::domain::workflow::{validate, Dag, Limits};

/// Where a step is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepStatus {
    Pending,
    Ready,
    Assigned,
    Running,
    Succeeded,
    /// The attempt failed or timed out; a retry or exhaustion follows.
    Failed,
    RetryScheduled,
    Exhausted,
    Skipped,
    Cancelled,
}

impl StepStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded
                | StepStatus::Exhausted
                | StepStatus::Skipped
                | StepStatus::Cancelled
        )
    }

    /// Held by an agent (counts against its capacity).
    pub fn is_held(self) -> bool {
        matches!(self, StepStatus::Assigned | StepStatus::Running)
    }
}

/// One step of a workflow instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepState {
    pub status: StepStatus,
    /// Current (or last) attempt, from 1; 0 before the first.
    pub attempt: i32,
    pub agent: Option<String>,
    pub ready_at: Option<Timestamp>,
    pub assigned_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub timeout_at: Option<Timestamp>,
    pub retry_at: Option<Timestamp>,
    pub output: Option<JsonText>,
    pub last_error: Option<String>,
    pub usage: Usage,
    /// Skipped because its condition was false (satisfies dependants), as
    /// opposed to skipped after an upstream failure.
    pub condition_false: bool,
}

impl StepState {
    fn new() -> Self {
        StepState {
            status: StepStatus::Pending,
            attempt: 0,
            agent: None,
            ready_at: None,
            assigned_at: None,
            started_at: None,
            finished_at: None,
            timeout_at: None,
            retry_at: None,
            output: None,
            last_error: None,
            usage: Usage::default(),
            condition_false: false,
        }
    }

    /// When the current attempt started running: its StepStarted time, or
    /// its assignment when no start was reported (a start of an earlier
    /// attempt does not count).
    pub fn run_started(&self) -> Option<Timestamp> {
        match (self.started_at, self.assigned_at) {
            (Some(started), Some(assigned)) if started >= assigned => Some(started),
            (_, assigned) => assigned,
        }
    }

    /// Satisfies its dependants.
    pub fn is_satisfied(&self) -> bool {
        self.status == StepStatus::Succeeded
            || (self.status == StepStatus::Skipped && self.condition_false)
    }
}

/// One workflow instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowState {
    pub id: String,
    pub definition: Arc<WorkflowDefinition>,
    pub status: WorkflowStatus,
    pub accepted_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub deadline_at: Option<Timestamp>,
    pub steps: Vec<StepState>,
    pub usage: Usage,
    pub reason: Option<String>,
    /// Order of acceptance in the partition (admission tie-break).
    pub seq: u64,
    #[serde(skip)]
    pub dag: Option<Arc<Dag>>,
    /// Soft cache: the ids of each step's subjects in the partition's
    /// bottleneck projection (see `observe.rs`). Never stored, never compared.
    #[serde(skip)]
    pub(crate) subject_ids: SubjectIds,
}

/// Per-step subject ids with the projection generation they belong to.
#[derive(Clone, Debug, Default)]
pub(crate) struct SubjectIds(pub(crate) Option<(u64, Arc<[StepIds]>)>);

impl PartialEq for SubjectIds {
    /// A cache: equal whatever it holds, so states compare by content.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl WorkflowState {
    pub fn new(
        id: String,
        definition: Arc<WorkflowDefinition>,
        dag: Arc<Dag>,
        at: Timestamp,
        deadline_at: Option<Timestamp>,
        seq: u64,
    ) -> Self {
        let steps = (0..definition.steps.len())
            .map(|_| StepState::new())
            .collect();
        WorkflowState {
            id,
            definition,
            status: WorkflowStatus::Queued,
            accepted_at: at,
            started_at: None,
            finished_at: None,
            deadline_at,
            steps,
            usage: Usage::default(),
            reason: None,
            seq,
            dag: Some(dag),
            subject_ids: SubjectIds::default(),
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(
            self.status,
            WorkflowStatus::Succeeded
                | WorkflowStatus::Failed
                | WorkflowStatus::Cancelled
                | WorkflowStatus::TimedOut
        )
    }

    pub fn step_index(&self, step_id: &str) -> Option<usize> {
        self.definition.steps.iter().position(|s| s.id == step_id)
    }
}

/// The partition's view of an agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentView {
    pub id: String,
    pub pool: String,
    pub capabilities: Vec<String>,
    pub capacity: i32,
    pub weight: i32,
    pub labels: BTreeMap<String, String>,
    pub heartbeat_interval_ms: i64,
    pub health: AgentHealth,
    pub draining: bool,
    /// Declined an assignment: no new work in this partition until its next
    /// report or heartbeat shows it has room.
    pub saturated: bool,
    pub last_heartbeat_at: Timestamp,
    pub reported_in_flight: i32,
    pub cpu: Option<f64>,
    pub memory_bytes: Option<i64>,
    pub successes: u64,
    pub failures: u64,
    pub ewma_latency_ms: f64,
    pub usage: Usage,
}

/// How a partition signs the facts it writes: `baton-engine/<partition>`.
pub const ENGINE_PRODUCER_PREFIX: &str = "baton-engine/";

/// The `producer` of partition `p`'s facts.
pub fn engine_producer(p: u32) -> String {
    format!("{ENGINE_PRODUCER_PREFIX}{p}")
}

/// The label of a forwarded registration: the partition that forwarded it
/// (the agent's home). Labels under `baton.` are reserved.
pub const HOME_PARTITION_LABEL: &str = "baton.home-partition";

impl AgentView {
    /// Steps it holds as far as Baton knows: its last report, except that a
    /// lost agent holds none (its steps were re-queued when it was declared
    /// lost; `reported_in_flight` keeps what it last said).
    pub fn holding(&self) -> i32 {
        if self.health == AgentHealth::Lost {
            0
        } else {
            self.reported_in_flight
        }
    }

    /// Known here through its home partition's forwarding (its registration
    /// carries [`HOME_PARTITION_LABEL`]): the home judges its health, this
    /// partition follows.
    pub fn forwarded(&self) -> bool {
        self.labels.contains_key(HOME_PARTITION_LABEL)
    }

    /// May get new work.
    pub fn schedulable(&self) -> bool {
        !self.draining && !self.saturated && self.health != AgentHealth::Lost
    }

    pub fn error_rate(&self) -> f64 {
        let n = self.successes + self.failures;
        if n == 0 {
            0.0
        } else {
            self.failures as f64 / n as f64
        }
    }
}

/// Everything one partition knows.
#[derive(Debug)]
pub struct PartitionState {
    pub config: EngineConfig,
    /// `producer` of every fact: `baton-engine/<partition>`.
    pub producer: String,
    /// Hashed, not ordered: every input and fact looks a workflow up, and
    /// ids share long prefixes, so ordered comparisons were a hot spot.
    /// Code that needs an order sorts explicitly.
    pub workflows: foldhash::HashMap<String, WorkflowState>,
    pub agents: BTreeMap<String, AgentView>,
    /// Usage summed per pool (per workflow and agent live on those).
    pub pool_usage: BTreeMap<String, Usage>,
    pub(crate) scheduler: Kept<Scheduler>,
    pub(crate) timers: Kept<BTreeSet<(Timestamp, TimerKey)>>,
    /// Queued workflows by (-priority, seq); the negation saturates
    /// (`i32::MIN` has no negative).
    pub(crate) admission: BTreeSet<(i32, u64, String)>,
    pub(crate) running: usize,
    /// Acceptance order of workflows (stored in each workflow, so it must
    /// count WorkflowAccepted facts and nothing else).
    pub(crate) next_seq: u64,
    /// Ready-queue order (FIFO within a priority); soft state, restarts with
    /// the process.
    pub(crate) next_ready_seq: u64,
    pub(crate) dedup: foldhash::HashSet<EventId>,
    pub(crate) dedup_order: VecDeque<EventId>,
    /// Content hashes of the inputs in the dedup window, where known (the
    /// engine computes them; a journal written before they were recorded
    /// leaves some unknown). A reused id with another hash is a conflict,
    /// not a duplicate.
    pub(crate) dedup_hash: foldhash::HashMap<EventId, u64>,
    /// Keys changed since the store last flushed (write-behind).
    pub dirty_workflows: foldhash::HashSet<String>,
    pub dirty_agents: BTreeSet<String>,
    /// Facts folded so far (for progress and checkpoints).
    pub facts_folded: u64,
    /// The DAG `decide` just built for a submission, handed to `evolve` of
    /// its WorkflowAccepted (transient: never set outside one decision).
    pub(crate) validated: Option<(String, Arc<Dag>)>,
    /// DAGs of step lists already validated while folding, by the address
    /// of the shared list (held here, so the address cannot be reused): a
    /// journal repeats a few templates, see `codec::binary::shared`.
    pub(crate) dags: DagMemo,
    /// The bottleneck projection (folded from facts, persisted).
    pub bottlenecks: Stats,
    /// Soft state of bottleneck evaluation (see `bottleneck::Hysteresis`).
    pub(crate) hysteresis: Hysteresis,
}

/// What the dedup window says of an input (see
/// [`PartitionState::classify_input`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Not in the window: decide it.
    New,
    /// The same id with the same content (or content not known): skip it.
    Duplicate,
    /// The same id with other content: refuse it (`event_id_conflict`).
    Conflict,
}

impl PartitionState {
    pub fn new(config: EngineConfig) -> Self {
        Self::with_derived(config, true)
    }

    /// A state for a fold that only writes projections (replay): it does
    /// not maintain the scheduler or the timer index (see [`Kept`]), so it
    /// must never decide. Its workflows, agents, usage and bottleneck
    /// projection are exactly those of [`new`](Self::new).
    pub fn projections_only(config: EngineConfig) -> Self {
        Self::with_derived(config, false)
    }

    fn with_derived(config: EngineConfig, derived: bool) -> Self {
        let scheduler = Kept::new(Scheduler::new(config.scheduler.clone()), derived);
        PartitionState {
            producer: "baton-engine/0".into(),
            workflows: Default::default(),
            agents: BTreeMap::new(),
            pool_usage: BTreeMap::new(),
            scheduler,
            timers: Kept::new(BTreeSet::new(), derived),
            admission: BTreeSet::new(),
            running: 0,
            next_seq: 0,
            next_ready_seq: 0,
            dedup: Default::default(),
            dedup_order: VecDeque::new(),
            dedup_hash: Default::default(),
            dirty_workflows: Default::default(),
            dirty_agents: BTreeSet::new(),
            facts_folded: 0,
            validated: None,
            dags: DagMemo::default(),
            bottlenecks: Stats::new(
                config.bottleneck.short_window_ms,
                config.bottleneck.long_window_ms,
            ),
            hysteresis: Hysteresis::default(),
            config,
        }
    }

    /// True when an input with this id was already reflected in the journal.
    pub fn seen(&self, id: &EventId) -> bool {
        self.dedup.contains(id)
    }

    /// Adds an input id to the dedup window (used when warming it up from
    /// the journal after a restart).
    pub fn remember_input(&mut self, id: EventId) {
        self.remember(id);
    }

    /// Records the content hash of an input in the dedup window (after its
    /// facts were evolved, or when warming the window from the journal).
    /// Ignored for an id outside the window.
    pub fn remember_input_hash(&mut self, id: EventId, hash: u64) {
        if self.dedup.contains(&id) {
            self.dedup_hash.insert(id, hash);
        }
    }

    /// How an input with this id and content hash relates to the window.
    pub fn classify_input(&self, id: &EventId, hash: u64) -> Seen {
        if !self.dedup.contains(id) {
            return Seen::New;
        }
        match self.dedup_hash.get(id) {
            Some(&h) if h != hash => Seen::Conflict,
            _ => Seen::Duplicate,
        }
    }

    pub(crate) fn remember(&mut self, id: EventId) {
        // A window of 0 (replay, history) keeps nothing: not even a
        // transient insert.
        if self.config.dedup_window == 0 {
            return;
        }
        if self.dedup.insert(id) {
            self.dedup_order.push_back(id);
            while self.dedup_order.len() > self.config.dedup_window {
                if let Some(old) = self.dedup_order.pop_front() {
                    self.dedup.remove(&old);
                    self.dedup_hash.remove(&old);
                }
            }
        }
    }

    /// The dedup window, oldest first (persisted as one value).
    pub fn dedup_ids(&self) -> impl Iterator<Item = &EventId> {
        self.dedup_order.iter()
    }

    /// Ready steps waiting per pool.
    pub fn queue_depths(&self) -> BTreeMap<String, usize> {
        self.scheduler.queue_depths()
    }

    /// Steps held by an agent in this partition (in flight), and capacity.
    pub fn agent_load(&self, agent_id: &str) -> Option<(u32, u32)> {
        self.scheduler.agent_load(agent_id)
    }

    /// Number of workflows currently running.
    pub fn running_workflows(&self) -> usize {
        self.running
    }

    /// Number of workflows waiting for admission.
    pub fn queued_workflows(&self) -> usize {
        self.admission.len()
    }

    /// Keeps acceptance order increasing across evictions and restarts.
    pub fn next_seq_at_least(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq);
    }

    /// Notes a workflow for the next store flush (cloning its id only the
    /// first time: most facts touch a workflow that is already dirty).
    pub(crate) fn mark_dirty(&mut self, workflow_id: &str) {
        if !self.dirty_workflows.contains(workflow_id) {
            self.dirty_workflows.insert(workflow_id.to_string());
        }
    }

    /// The earliest pending timer, if any.
    /// (A due bottleneck evaluation counts as a timer.)
    pub fn next_timer(&self) -> Option<Timestamp> {
        self.next_timer_heard(Timestamp(i64::MAX), Timestamp(i64::MAX))
    }

    /// The earliest timer `tick_heard(now, heard_until)` can fire: timers
    /// that judge reports and are due after `heard_until` wait for ingress
    /// to be read further (only due timers are scanned past).
    pub fn next_timer_heard(&self, now: Timestamp, heard_until: Timestamp) -> Option<Timestamp> {
        let timer = self
            .timers
            .iter()
            .find(|(due, key)| *due > now || !key.judges_reports() || *due <= heard_until)
            .map(|(t, _)| *t);
        match (timer, self.next_evaluation()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True when a timer is due by `now` but held back because ingress is
    /// read only up to `heard_until`.
    pub fn timer_held(&self, now: Timestamp, heard_until: Timestamp) -> bool {
        self.timers
            .iter()
            .take_while(|(due, _)| *due <= now)
            .any(|(due, key)| key.judges_reports() && *due > heard_until)
    }
}

/// A bounded memo of validated step lists (see `PartitionState::dags`).
#[derive(Debug, Default)]
pub(crate) struct DagMemo(foldhash::HashMap<usize, (Arc<[StepDefinition]>, Arc<Dag>)>);

impl DagMemo {
    /// Distinct step lists remembered before the memo starts over.
    const MAX: usize = 256;

    const NO_LIMITS: Limits = Limits {
        max_steps: usize::MAX,
        max_input_bytes: usize::MAX,
    };

    /// The DAG of a journalled definition, or `None` when it does not
    /// validate. Facts were validated when written and replay must not
    /// depend on today's limits, so none apply; the DAG then depends on the
    /// steps alone, and the same shared step list is validated once.
    pub(crate) fn validate(&mut self, def: &WorkflowDefinition) -> Option<Arc<Dag>> {
        let key = def.steps.as_ptr() as usize;
        if let Some((_, dag)) = self
            .0
            .get(&key)
            .filter(|(kept, _)| Arc::ptr_eq(kept, &def.steps))
        {
            return Some(dag.clone());
        }
        let dag = Arc::new(validate(def, &Self::NO_LIMITS).ok()?);
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        self.0.insert(key, (def.steps.clone(), dag.clone()));
        Some(dag)
    }
}
