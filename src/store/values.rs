//! How stored values are encoded: bincode with varint integers and lengths
//! for every value, and a workflow's value followed by its journal offsets
//! (see [`super::index`]).
//!
//! Invariant: only the `m/format` key is exempt (four fixed bytes in every
//! format version, so a store of any version says which it is); a change
//! here changes every stored byte, so it bumps `FORMAT_VERSION`.

use bincode::Options as _;
use serde::{Deserialize, Serialize};

use super::index;
use crate::domain::engine::WorkflowState;

/// How every stored value is encoded: bincode with varint integers and
/// lengths (`DefaultOptions`; trailing bytes rejected except after a
/// workflow, whose journal offsets follow it). Fixed-width bincode made a
/// workflow's value about twice as big, mostly zero bytes, and sled's cost
/// per insert (copying, logging, segment cleaning) grows with the bytes.
pub(crate) fn value_options() -> impl bincode::Options + Copy {
    bincode::DefaultOptions::new()
}

pub(crate) fn to_value<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    // Serialising a plain derived type into a Vec cannot fail.
    value_options().serialize(v).unwrap_or_default()
}

pub(crate) fn from_value<T: for<'de> Deserialize<'de>>(v: &[u8]) -> bincode::Result<T> {
    value_options().deserialize(v)
}

/// Appends a workflow's stored value to `out`: its bincode, then its
/// journal offsets.
pub(crate) fn write_workflow_value(wf: &WorkflowState, offsets: &[u64], out: &mut Vec<u8>) {
    // Writing into a Vec fails only on a serialiser error, which the
    // derived Serialize of a plain struct does not raise; if it ever did,
    // drop the partial bincode and keep what `out` held before.
    let start = out.len();
    if value_options().serialize_into(&mut *out, wf).is_err() {
        out.truncate(start);
    }
    index::encode_offsets(offsets, out);
}

/// Reverses [`write_workflow_value`].
pub(crate) fn split_workflow_value(v: &[u8]) -> Result<(WorkflowState, Vec<u64>), String> {
    let mut rest = v;
    let wf: WorkflowState = value_options()
        .deserialize_from(&mut rest)
        .map_err(|e| e.to_string())?;
    let offsets = index::decode_offsets(rest).ok_or("truncated journal offsets")?;
    Ok((wf, offsets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::Usage;

    #[test]
    fn values_are_varint_bincode_and_round_trip() {
        let usage = Usage {
            tokens_in: 3,
            tokens_out: 4,
            cost: 0.5,
        };
        let v = to_value(&usage);
        // Two one-byte varints and an 8-byte float; fixed-width would be 24.
        assert_eq!(v.len(), 10);
        assert_eq!(from_value::<Usage>(&v).unwrap(), usage);
        assert!(from_value::<Usage>(&[v.as_slice(), &[0]].concat()).is_err());
    }

    #[test]
    fn a_store_of_an_older_format_is_recognised_as_such() {
        use crate::store::{ProjectionStore, StoreError, FORMAT_VERSION};
        let dir = tempfile::tempdir().unwrap();
        {
            let store = ProjectionStore::open(dir.path(), 0).unwrap();
            // What format 5 (fixed-width bincode of a u32) wrote.
            store.tree.insert(b"m/format", &5u32.to_le_bytes()).unwrap();
            store.tree.insert(b"w/old", &[0u8; 40][..]).unwrap();
            store.tree.flush().unwrap();
        }
        let reopened = ProjectionStore::open(dir.path(), 1).map(|_| ());
        assert!(reopened.is_ok(), "another partition is another database");
        match ProjectionStore::open(dir.path(), 0) {
            Err(StoreError::Format {
                found: 5, expected, ..
            }) => assert_eq!(expected, FORMAT_VERSION),
            other => panic!("expected a format mismatch, got {:?}", other.map(|_| ())),
        }
        // The engine's open empties it instead (it rebuilds from the journal).
        let (store, replaced) =
            ProjectionStore::open_rebuilding_other_formats(dir.path(), 0).unwrap();
        assert_eq!(replaced, Some(crate::store::Emptied::Format(5)));
        assert!(store.checkpoint().unwrap().is_none());
        assert_eq!(store.entries().count(), 0, "old values are gone");
        assert!(ProjectionStore::open(dir.path(), 0).is_ok());
    }
}
