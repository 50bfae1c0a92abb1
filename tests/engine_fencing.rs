//! Two partition loops on one partition: what happens when an instance
//! expelled from its consumer group (and not yet told) still works on a
//! partition that a new owner has taken over. Without broker transactions
//! nothing fences the old owner, so the engine defends itself twice:
//! - the new owner waits until the journal has been quiet for the
//!   membership's `takeover_quiet` before it decides anything, folding what
//!   the old owner still appends: no input is decided twice;
//! - a loop whose append lands beyond the journal end it knows finds the
//!   other writer's facts, reports them and stops, so it is restarted and
//!   refolds the journal.
//!
//! Both loops run in this process over one embedded log, each with its own
//! projection store, like two instances on one broker.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton::codec::Codec;
use baton::domain::engine::EngineConfig;
use baton::domain::events::*;
use baton::engine::{run_partition, verify, Engine, EngineError, EngineOptions, EngineStats};
use baton::log::embedded::{EmbeddedConfig, EmbeddedLog};
use baton::log::{EventLog, ProducerRecord};
use baton::store::ProjectionStore;
use baton::topics::Topics;
use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

struct Fixture {
    dir: tempfile::TempDir,
    log: Arc<dyn EventLog>,
    codec: Codec,
    topics: Topics,
}

fn envelope(payload: Payload) -> Envelope {
    Envelope {
        event_id: EventId::random(),
        correlation_id: payload.correlation_id().to_string(),
        causation_id: None,
        occurred_at: Timestamp::from_datetime(chrono::Utc::now()),
        producer: "fencing-test".into(),
        payload,
    }
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let log: Arc<dyn EventLog> =
            Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).unwrap());
        let topics = Topics::default();
        for spec in topics.specs(1) {
            log.create_topic(&spec).await.unwrap();
        }
        let f = Fixture {
            dir,
            log,
            codec: Codec::builtin().unwrap(),
            topics,
        };
        f.send(RegisterAgent {
            agent_id: "agent-0".into(),
            pool: "default".into(),
            capabilities: vec!["llm".into()],
            capacity: 1_000_000,
            weight: 1,
            labels: BTreeMap::new(),
            heartbeat_interval_ms: 3_600_000,
        })
        .await;
        f
    }

    async fn send(&self, payload: impl Into<Payload>) {
        let v = self.codec.encode(&envelope(payload.into())).unwrap();
        self.log
            .append(
                &self.topics.ingress(),
                0,
                vec![ProducerRecord::new(None, Bytes::from(v))],
            )
            .await
            .unwrap();
    }

    /// Submits `n` one-step workflows, one every 2 ms.
    async fn feed(&self, from: usize, n: usize) {
        for i in from..from + n {
            self.send(SubmitWorkflow {
                workflow_id: format!("wf-{i}"),
                definition: WorkflowDefinition {
                    name: "fencing".into(),
                    steps: vec![StepDefinition {
                        capabilities: vec!["llm".into()],
                        ..StepDefinition::new("a", &[])
                    }]
                    .into(),
                    input: None,
                    deadline_ms: None,
                    priority: 0,
                    labels: BTreeMap::new(),
                },
            })
            .await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// An instance: its own engine and store directory over the shared log.
    fn instance(&self, name: &str) -> Arc<Engine> {
        Arc::new(Engine {
            log: self.log.clone(),
            codec: self.codec.clone(),
            topics: self.topics.clone(),
            config: EngineConfig::default(),
            options: EngineOptions::new(self.dir.path().join(name)),
            stats: Arc::new(EngineStats::default()),
            live: Default::default(),
            agent_labels: Default::default(),
        })
    }

    /// Journal facts by id, and how many each submission was accepted.
    async fn journal(&self) -> (HashMap<EventId, u32>, HashMap<EventId, u32>) {
        let mut ids: HashMap<EventId, u32> = HashMap::new();
        let mut accepted: HashMap<EventId, u32> = HashMap::new();
        for r in self
            .log
            .read(&self.topics.journal(), 0, 0, usize::MAX)
            .await
            .unwrap()
        {
            let e = self.codec.decode(&r.value).unwrap();
            *ids.entry(e.event_id).or_default() += 1;
            if let (Payload::WorkflowAccepted(_), Some(c)) = (&e.payload, e.causation_id) {
                *accepted.entry(c).or_default() += 1;
            }
        }
        (ids, accepted)
    }

    /// The store of instance `name` equals a fresh refold of the journal.
    async fn assert_store_is_refold(&self, name: &str) {
        let refolded = verify::refold(
            self.log.as_ref(),
            &self.codec,
            &self.topics.journal(),
            0,
            EngineConfig::default(),
        )
        .await
        .unwrap();
        let store = ProjectionStore::open(&self.dir.path().join(name), 0).unwrap();
        if let Some(diff) = verify::compare(&store, &refolded).unwrap() {
            panic!("{name}'s store != refold of the journal: {diff}");
        }
    }

    async fn wait_accepted(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, accepted) = self.journal().await;
            if accepted.len() >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} accepted",
                accepted.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

struct Running {
    stop: watch::Sender<bool>,
    handle: JoinHandle<Result<(), EngineError>>,
}

fn start(engine: &Arc<Engine>, quiet: Duration) -> Running {
    let (stop, rx) = watch::channel(false);
    Running {
        stop,
        handle: tokio::spawn(run_partition(engine.clone(), 0, quiet, rx)),
    }
}

impl Running {
    async fn stop(self) -> Result<(), EngineError> {
        let _ = self.stop.send(true);
        self.handle.await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_owner_waits_until_the_old_one_stopped_writing() {
    const SUBMISSIONS: usize = 1_000;
    let f = Fixture::new().await;
    let (old, new) = (f.instance("old"), f.instance("new"));
    let feeding = async {
        f.feed(0, SUBMISSIONS).await;
    };
    let takeover = async {
        let old_loop = start(&old, Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(400)).await;
        // The new owner starts while the old one still decides.
        let new_loop = start(&new, Duration::from_millis(1_500));
        tokio::time::sleep(Duration::from_millis(600)).await;
        // The old owner learns it lost the partition and stops.
        old_loop.stop().await.expect("the old owner stops cleanly");
        new_loop
    };
    let ((), new_loop) = tokio::join!(feeding, takeover);
    f.wait_accepted(SUBMISSIONS).await;
    new_loop.stop().await.expect("the new owner stops cleanly");

    let (ids, accepted) = f.journal().await;
    let twice: Vec<_> = ids.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "facts journaled twice: {twice:?}");
    assert_eq!(accepted.len(), SUBMISSIONS);
    assert!(accepted.values().all(|&n| n == 1));
    assert!(
        EngineStats::get(&old.stats.workflows_accepted) > 0
            && EngineStats::get(&new.stats.workflows_accepted) > 0,
        "both owners decided a part"
    );
    f.assert_store_is_refold("new").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_that_finds_another_writers_facts_stops_and_its_restart_folds_them() {
    let f = Fixture::new().await;
    let (a, b) = (f.instance("a"), f.instance("b"));
    // Two owners at once (no quiet period: as on a broker whose group
    // handed the partition over while the old owner did not know).
    let a_loop = start(&a, Duration::ZERO);
    let b_loop = start(&b, Duration::ZERO);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut next = 0;
    while !a_loop.handle.is_finished() && !b_loop.handle.is_finished() {
        assert!(Instant::now() < deadline, "neither loop noticed the other");
        f.feed(next, 20).await;
        next += 20;
    }
    let (a_res, b_res) = (a_loop.stop().await, b_loop.stop().await);
    let failed: Vec<String> = [a_res, b_res]
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    assert!(
        failed.iter().any(|e| e.contains("did not write")),
        "a loop reported the other writer's facts: {failed:?}"
    );
    // Restarted alone, the owner folds everything and finishes the work.
    let a_loop = start(&a, Duration::ZERO);
    f.wait_accepted(next).await;
    a_loop
        .stop()
        .await
        .expect("the restarted loop stops cleanly");
    let (_, accepted) = f.journal().await;
    let submitted: HashSet<_> = accepted.keys().collect();
    assert_eq!(submitted.len(), next, "every submission accepted");
    f.assert_store_is_refold("a").await;
}
