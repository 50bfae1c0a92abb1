//! Checkpoints of a partition loop: the store write of its projections and
//! the ingress group commit, run off the loop (one at a time, in order),
//! and the eviction of finished workflows once their write is done.

use super::*;

impl Loop<'_> {
    /// Starts writing a checkpoint in the background (waiting for the
    /// previous write first, so checkpoints land in order).
    /// Starts a checkpoint unless the previous one is still being written
    /// (then the loop carries on and tries again next iteration). It waits
    /// for that write only when `force` is set or the backlog is too large:
    /// the fact threshold reached, or two flush intervals without a
    /// checkpoint. That wait is the backpressure that keeps memory bounded
    /// when the writer cannot keep up.
    pub(super) async fn checkpoint(&mut self, force: bool) -> Result<(), EngineError> {
        let o = &self.engine.options;
        let backlog = self.facts_since_flush >= o.flush_every_facts
            || self.last_flush.elapsed() >= 2 * o.flush_every;
        if !force && !backlog && !self.write_done()? {
            return Ok(());
        }
        // The commit below covers every input before `ingress_next`.
        self.finish_publish().await?;
        self.finish_write().await?;
        let cp = Checkpoint {
            journal_next: self.journal_next,
            ingress_next: self.ingress_next,
            facts_folded: self.state.facts_folded,
        };
        let prepared = self.store.prepare(
            &mut self.state,
            &mut self.index,
            &cp,
            Finished::KeepUntilWritten,
        );
        self.pending_evict = prepared.finished.clone();
        // The group offset is committed with each checkpoint, not per batch,
        // and by the writer: the journal's ingress-offset headers are the
        // authoritative resume point, and a commit costs file system work.
        let commit = crate::engine::writer::GroupCommit {
            group: self.engine.options.group.clone(),
            tp: TopicPartition::new(self.engine.topics.ingress(), self.p),
            next: self.ingress_next,
        };
        self.pending_write = Some(crate::engine::writer::submit(
            self.engine.log.clone(),
            self.store.writer(),
            prepared,
            commit,
        ));
        self.facts_since_flush = 0;
        self.last_flush = Instant::now();
        Ok(())
    }

    /// True when no checkpoint write is pending or it has finished (its
    /// outcome is then applied by `finish_write`).
    pub(super) fn write_done(&mut self) -> Result<bool, EngineError> {
        let Some(rx) = self.pending_write.as_mut() else {
            return Ok(true);
        };
        match rx.try_recv() {
            Ok(result) => {
                self.pending_write = None;
                result?;
                self.evict_written();
                Ok(true)
            }
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => Ok(false),
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                Err(EngineError::Task("checkpoint writer went away".into()))
            }
        }
    }

    pub(super) fn evict_written(&mut self) {
        self.engine.live.checkpointed(&self.live);
        let evict = std::mem::take(&mut self.pending_evict);
        for id in &evict {
            self.finished.insert(id);
        }
        crate::store::evict_finished(&mut self.state, &mut self.index, &evict);
    }

    pub(super) async fn finish_write(&mut self) -> Result<(), EngineError> {
        if let Some(h) = self.pending_write.take() {
            match h.await {
                Ok(r) => r?,
                Err(_) => return Err(EngineError::Task("checkpoint writer went away".into())),
            }
            self.evict_written();
        }
        Ok(())
    }
}
