//! History: one correlation's facts read through the correlation index (no
//! refold of the journal) and the ingress events that caused them, a
//! workflow or the fleet as of a past moment, and the journal offset of a
//! timestamp.
//!
//! A moment (`AsOf`) is either a journal offset — the state *before* that
//! offset, like `replay --until` and a checkpoint's `journal_next` — or an
//! RFC 3339 timestamp: every fact stamped at or before it.

use std::collections::BTreeMap;
use std::str::FromStr;

use super::replay::{decode_fact, ingress_offset, JournalSource};
use super::EngineError;
use crate::codec::Codec;
use crate::domain::engine::{AgentView, EngineConfig, PartitionState, WorkflowState};
use crate::domain::events::{Envelope, Timestamp};
use crate::log::{EventLog, StoredRecord};
use crate::store::ProjectionStore;

/// A past moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsOf {
    /// Before this journal offset.
    Offset(u64),
    /// At this time (facts stamped at or before it).
    Time(Timestamp),
}

impl FromStr for AsOf {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(AsOf::Offset).map_err(|e| e.to_string());
        }
        Timestamp::parse_rfc3339(s).map(AsOf::Time).map_err(|e| {
            format!("`{s}` is neither a journal offset nor an RFC 3339 timestamp ({e}); e.g. 1200 or 2026-11-22T10:00:00Z")
        })
    }
}

impl AsOf {
    /// Whether a fact at `offset`, stamped `at`, happened by this moment.
    pub fn includes(&self, offset: u64, at: Timestamp) -> bool {
        match *self {
            AsOf::Offset(o) => offset < o,
            AsOf::Time(t) => at <= t,
        }
    }

    /// The journal offset of this moment in partition `p` (exclusive end).
    pub async fn offset_in(
        &self,
        log: &dyn EventLog,
        topic: &str,
        p: u32,
    ) -> Result<u64, EngineError> {
        match *self {
            AsOf::Offset(o) => Ok(o),
            AsOf::Time(t) => {
                // Include everything stamped at `t` itself.
                offset_for_time(log, topic, p, t.as_micros().div_euclid(1000) + 1).await
            }
        }
    }
}

/// The first offset of `topic`/`p` whose record timestamp is at or after
/// `ms` (the high watermark when there is none), like Kafka's
/// `offsetsForTimes`. Binary search: journal timestamps are the engine's
/// clock at decision time, non-decreasing within a partition.
pub async fn offset_for_time(
    log: &dyn EventLog,
    topic: &str,
    p: u32,
    ms: i64,
) -> Result<u64, EngineError> {
    let (mut lo, mut hi) = (
        log.log_start(topic, p).await?,
        log.high_watermark(topic, p).await?,
    );
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match log.read(topic, p, mid, 1).await?.first() {
            Some(r) if r.timestamp_ms < ms => lo = r.offset + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

/// One journal fact with where it sits.
#[derive(Clone, Debug)]
pub struct JournalFact {
    pub partition: u32,
    pub offset: u64,
    /// The ingress offset of the input that caused it (none for timers).
    pub ingress_offset: Option<u64>,
    pub event: Envelope,
}

/// Every fact of `correlation_id` in journal partition `p`, in order:
/// those the store's correlation index lists, then any in the journal
/// beyond the store's checkpoint (not indexed yet).
pub async fn correlation_facts(
    source: &JournalSource<'_>,
    p: u32,
    store: &ProjectionStore,
    correlation_id: &str,
) -> Result<Vec<JournalFact>, EngineError> {
    let offsets = store.journal_offsets(correlation_id)?;
    let mut out = Vec::with_capacity(offsets.len());
    let mut i = 0;
    while i < offsets.len() {
        // Read runs of consecutive offsets with one call.
        let mut run = 1;
        while i + run < offsets.len() && offsets[i + run] == offsets[i] + run as u64 {
            run += 1;
        }
        for r in source.log.read(source.topic, p, offsets[i], run).await? {
            if offsets[i..i + run].binary_search(&r.offset).is_ok() {
                out.push(fact(source, p, &r)?);
            }
        }
        i += run;
    }
    let mut next = store.checkpoint()?.map_or(0, |c| c.journal_next);
    loop {
        let records = source.log.read(source.topic, p, next, 4096).await?;
        let Some(last) = records.last() else { break };
        next = last.offset + 1;
        for r in &records {
            if r.key.as_deref() == Some(correlation_id.as_bytes())
                && offsets.binary_search(&r.offset).is_err()
            {
                out.push(fact(source, p, r)?);
            }
        }
    }
    Ok(out)
}

/// The ingress events `facts` name, by ingress offset, from ingress
/// partition `p` (the engine journals an input's facts in the input's
/// partition): what `audit` places before the facts they caused.
pub async fn inputs_of(
    log: &dyn EventLog,
    codec: &Codec,
    ingress: &str,
    p: u32,
    facts: &[JournalFact],
) -> Result<BTreeMap<u64, Envelope>, EngineError> {
    let mut out = BTreeMap::new();
    for o in facts.iter().filter_map(|f| f.ingress_offset) {
        if out.contains_key(&o) {
            continue;
        }
        if let Some(r) = log
            .read(ingress, p, o, 1)
            .await?
            .into_iter()
            .find(|r| r.offset == o)
        {
            // An input that no longer decodes (or was removed by retention)
            // is left out; the facts it caused still tell the story.
            if let Ok(e) = codec.decode(&r.value) {
                out.insert(o, e);
            }
        }
    }
    Ok(out)
}

fn fact(source: &JournalSource<'_>, p: u32, r: &StoredRecord) -> Result<JournalFact, EngineError> {
    Ok(JournalFact {
        partition: p,
        offset: r.offset,
        ingress_offset: ingress_offset(r),
        event: decode_fact(source.codec, p, r)?,
    })
}

/// Folds one workflow's own facts up to `as_of`. `None` when it had not
/// been accepted by then. (Sequence numbers and fleet-wide figures are not
/// part of a single workflow's story and stay at their defaults.)
pub fn workflow_as_of(
    facts: &[JournalFact],
    id: &str,
    as_of: Option<AsOf>,
) -> Option<WorkflowState> {
    let mut state = PartitionState::new(EngineConfig::default());
    for f in facts {
        if as_of.is_none_or(|a| a.includes(f.offset, f.event.occurred_at)) {
            state.evolve(&f.event);
        }
    }
    state.workflows.remove(id)
}

/// Folds journal partition `p` up to `until` (exclusive) and returns its
/// agents. Finished workflows are dropped as it goes, so memory stays
/// bounded by the work in flight, not by history.
pub async fn agents_as_of(
    source: &JournalSource<'_>,
    p: u32,
    until: u64,
) -> Result<Vec<AgentView>, EngineError> {
    let mut state = PartitionState::new(EngineConfig::default());
    let mut next = source.log.log_start(source.topic, p).await?;
    while next < until {
        let records = source.log.read(source.topic, p, next, 8192).await?;
        let Some(last) = records.last() else { break };
        next = last.offset + 1;
        for r in records.iter().filter(|r| r.offset < until) {
            state.evolve(&decode_fact(source.codec, p, r)?);
        }
        state.workflows.retain(|_, w| !w.is_terminal());
        state.dirty_workflows.clear();
        state.dirty_agents.clear();
    }
    Ok(state.agents.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moment_is_an_offset_or_a_timestamp() {
        assert_eq!("120".parse::<AsOf>(), Ok(AsOf::Offset(120)));
        let t = "2026-11-22T10:00:00Z".parse::<AsOf>().unwrap();
        let AsOf::Time(ts) = t else {
            panic!("not a time: {t:?}")
        };
        assert!(t.includes(99, ts));
        assert!(!t.includes(0, Timestamp::from_micros(ts.as_micros() + 1)));
        assert!(AsOf::Offset(5).includes(4, ts) && !AsOf::Offset(5).includes(5, ts));
        let err = "yesterday".parse::<AsOf>().unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
