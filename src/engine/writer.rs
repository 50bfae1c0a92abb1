//! The checkpoint writer: one background OS thread per process that makes
//! the journal durable, writes a store snapshot and commits the ingress
//! offset, at a lower CPU priority than the decision loops.
//!
//! Why a thread of its own: on a small machine a sled batch write competes
//! for the same cores as the partition loops, and every millisecond it holds
//! a core shows up in decision latency. Checkpoints are background work —
//! until one lands, a crash merely refolds a longer journal tail — so the
//! writer runs niced and the loops get the CPU first. Jobs run in the order
//! they were sent, so checkpoints of a partition land in order.

use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use tokio::sync::oneshot;

use crate::log::{EventLog, Offset, TopicPartition};
use crate::store::{PreparedFlush, StoreError, StoreWriter};

/// Nice value of the writer thread (0 is normal, 19 the lowest priority).
const WRITER_NICE: i32 = 10;

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
                lower_priority();
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

/// Lowers this thread's CPU priority (Linux: nice applies per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread, no pointers involved.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, WRITER_NICE) != 0 {
            tracing::debug!("could not lower the checkpoint writer's priority");
        }
    }
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
