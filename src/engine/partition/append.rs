//! Appending a batch of facts to the partition's journal, and checking
//! that the journal is still the one this loop folded: a single writer per
//! partition means every append lands exactly at the loop's `journal_next`.
//! Offsets below it mean the broker lost acknowledged facts; offsets beyond
//! it mean a torn batch (harmless, never served) or facts another process
//! appended. Lost or foreign facts stop the loop with a broker error, so the
//! supervisor restarts it and it refolds the journal.

use super::*;

impl Loop<'_> {
    /// Appends `chunk`, moves `journal_next` past it and returns the
    /// offsets it got.
    pub(super) async fn append_journal(
        &mut self,
        chunk: Vec<ProducerRecord>,
    ) -> Result<Vec<u64>, EngineError> {
        let offsets = self
            .engine
            .log
            .append(&self.engine.topics.journal(), self.p, chunk)
            .await?;
        record::count(&names::JOURNAL_APPENDS, 1);
        match offsets.first() {
            Some(&first) if first < self.journal_next => {
                // The journal went back: the broker lost facts it had
                // acknowledged. The store names offsets that now hold other
                // facts, so it is cleared, and the restarted loop rebuilds
                // the partition from the journal as it now is.
                let _ = self.finish_write().await;
                self.store.clear()?;
                return Err(EngineError::Log(crate::log::LogError::Broker(format!(
                    "journal partition {} went back from offset {} to {first}: acknowledged facts were lost",
                    self.p, self.journal_next
                ))));
            }
            Some(&first) if first > self.journal_next => self.check_gap(first).await,
            _ => Ok(()),
        }?;
        if let Some(last) = offsets.last() {
            self.journal_next = last + 1;
        }
        Ok(offsets)
    }

    /// An append landed beyond the journal's known end. A torn batch (its
    /// writer killed mid-append) leaves such a gap and is never served;
    /// anything else in it was appended by another process: an instance
    /// that still believes it owns the partition (expelled from the group
    /// and not yet told), or one of another deployment sharing these topics.
    /// This loop lacks those facts and may just have decided some of their
    /// inputs again, so it stops with a broker error: it is restarted and
    /// refolds the journal as it is.
    async fn check_gap(&mut self, first: u64) -> Result<(), EngineError> {
        let journal = self.engine.topics.journal();
        let log = self.engine.log.as_ref();
        let records = read_toward(log, &journal, self.p, self.journal_next, first, 8192).await?;
        let foreign = records.iter().filter(|r| r.offset < first).count();
        if foreign == 0 {
            return Ok(());
        }
        tracing::error!(
            partition = self.p,
            from = self.journal_next,
            to = first,
            foreign,
            "another process appended to this partition's journal; refolding it (facts of inputs both decided are now in the journal twice, with the same ids)"
        );
        let _ = self.finish_write().await;
        Err(EngineError::Log(crate::log::LogError::Broker(format!(
            "journal partition {} has facts at offsets {}..{first} this loop did not write",
            self.p, self.journal_next
        ))))
    }
}
