//! Determinism check: fold a partition's whole journal into a fresh state
//! and compare it with what the projection store holds. Any difference means
//! a decision was applied twice, lost, or `evolve` is not deterministic.
//! (`baton replay --verify` builds on this.)

use std::collections::BTreeMap;

use super::EngineError;
use crate::codec::Codec;
use crate::domain::engine::{EngineConfig, PartitionState, WorkflowState};
use crate::log::EventLog;
use crate::store::ProjectionStore;

/// Folds `journal` partition `p` from its start into a fresh state.
pub async fn refold(
    log: &dyn EventLog,
    codec: &Codec,
    journal: &str,
    p: u32,
    config: EngineConfig,
) -> Result<PartitionState, EngineError> {
    let mut state = PartitionState::new(config);
    let mut next = log.log_start(journal, p).await?;
    loop {
        let records = log.read(journal, p, next, 8192).await?;
        let Some(last) = records.last() else { break };
        next = last.offset + 1;
        for r in &records {
            state.evolve(&super::replay::decode_fact(codec, p, r)?);
        }
    }
    Ok(state)
}

/// The first difference between the store and a refold, if any.
pub fn compare(
    store: &ProjectionStore,
    refolded: &PartitionState,
) -> Result<Option<String>, EngineError> {
    let stored: BTreeMap<String, WorkflowState> = store
        .workflows()?
        .into_iter()
        .map(|w| (w.id.clone(), w))
        .collect();
    if stored.len() != refolded.workflows.len() {
        return Ok(Some(format!(
            "store has {} workflows, the journal folds to {}",
            stored.len(),
            refolded.workflows.len()
        )));
    }
    for (id, wf) in &refolded.workflows {
        // The DAG is derived (not stored); compare the rest.
        let mut wf = wf.clone();
        wf.dag = None;
        let wf = &wf;
        match stored.get(id) {
            None => return Ok(Some(format!("workflow {id} missing from the store"))),
            Some(s) if s != wf => {
                return Ok(Some(format!(
                    "workflow {id} differs:\n  store:  {s:?}\n  refold: {wf:?}"
                )))
            }
            _ => {}
        }
    }
    for a in store.agents()? {
        match refolded.agents.get(&a.id) {
            Some(r) if *r == a => {}
            other => {
                return Ok(Some(format!(
                    "agent {} differs:\n  store:  {a:?}\n  refold: {other:?}",
                    a.id
                )))
            }
        }
    }
    Ok(None)
}
