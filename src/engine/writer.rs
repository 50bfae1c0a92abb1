//! The checkpoint writer: one background OS thread per process that makes
//! the journal durable, writes a store snapshot and commits the ingress
//! offset, off the decision loops.
//!
//! Why a thread of its own rather than the runtime's blocking pool: jobs
//! run one at a time in the order they were sent, so checkpoints of a
//! partition land in order and sled sees one writer; and the partition
//! loops never wait for it unless they fall too far behind (see
//! `partition.rs`). Until a checkpoint lands, a crash merely refolds a
//! longer journal tail.
//!
//! (Running it at a lower CPU priority was tried: half-load latency barely
//! moved, but under full load the writer fell behind and memory grew.)

use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use tokio::sync::oneshot;

use crate::log::{EventLog, Offset, TopicPartition};
use crate::store::{PreparedFlush, StoreError, StoreWriter};

/// The ingress offset a checkpoint covers, committed for the engine's group
/// once the checkpoint is written.
pub struct GroupCommit {
    pub group: String,
    pub tp: TopicPartition,
    pub next: Offset,
}

struct Job {
    log: Arc<dyn EventLog>,
    runtime: tokio::runtime::Handle,
    writer: StoreWriter,
    flush: PreparedFlush,
    commit: GroupCommit,
    done: oneshot::Sender<Result<(), StoreError>>,
}

fn sender() -> &'static Result<mpsc::Sender<Job>, String> {
    static TX: OnceLock<Result<mpsc::Sender<Job>, String>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("baton-checkpoint".into())
            .spawn(move || {
                for job in rx {
                    let journal = |e: crate::log::LogError| StoreError::Journal(e.to_string());
                    let c = &job.commit;
                    let result = job
                        .runtime
                        .block_on(job.log.flush())
                        .map_err(journal)
                        .and_then(|()| job.writer.write(job.flush))
                        .and_then(|()| {
                            job.runtime
                                .block_on(job.log.commit(&c.group, &[(c.tp.clone(), c.next)]))
                                .map_err(journal)
                        });
                    let _ = job.done.send(result);
                }
            })
            .map(|_| tx)
            .map_err(|e| e.to_string())
    })
}

/// Queues a checkpoint: fsync the journal (the store must never get ahead
/// of it after a power loss), write `flush`, then commit the group offset.
/// Resolves when done.
pub fn submit(
    log: Arc<dyn EventLog>,
    writer: StoreWriter,
    flush: PreparedFlush,
    commit: GroupCommit,
) -> oneshot::Receiver<Result<(), StoreError>> {
    let (done, rx) = oneshot::channel();
    let job = Job {
        log,
        runtime: tokio::runtime::Handle::current(),
        writer,
        flush,
        commit,
        done,
    };
    match sender() {
        Ok(tx) => {
            if let Err(mpsc::SendError(job)) = tx.send(job) {
                let _ = job
                    .done
                    .send(Err(StoreError::Journal("checkpoint writer stopped".into())));
            }
        }
        Err(e) => {
            let _ = job.done.send(Err(StoreError::Journal(format!(
                "cannot start the checkpoint writer: {e}"
            ))));
        }
    }
    rx
}
