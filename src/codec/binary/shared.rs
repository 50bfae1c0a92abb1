//! Decode-once values: a field marked `deserialize_with = "shared_slice"`
//! decodes to an `Arc<[T]>` that is reused whenever the same bytes come
//! again. The journal carries each workflow's whole definition in its
//! `WorkflowAccepted`, and most workflows are a few templates with their
//! own input: without this a replay decodes, stores and later frees the
//! same ~20 strings per workflow, and validates the same step graph again.
//!
//! Why it is exact: an Avro datum is self-delimiting and the decoder reads
//! it front to back, so if the input starts with bytes `B` that once
//! decoded, completely, to `v`, it decodes to `v` again and consumes
//! exactly `B`. A hit is a prefix comparison, not a guess.
//!
//! Protocol with the decoder (`de.rs`): the field asks for the newtype
//! struct [`TAIL`]; the binary decoder answers with the rest of its input as
//! borrowed bytes and then skips the length the visitor reported (or, when
//! the value does not decode, returns the decoding error itself, so a
//! rejection names the same reason and field path as without sharing). Every
//! other format (JSON, the reference Avro library, bincode) treats [`TAIL`]
//! as an ordinary newtype, and the field decodes as a plain value.
//!
//! Invariants: the cache is per thread and bounded ([`MAX_ENTRIES`] values
//! of at most [`MAX_BYTES`] encoded bytes; it is emptied when full); it
//! holds only values that decoded without error. Values shorter than
//! [`PROBE`] bytes are decoded every time (their lookup key would reach
//! past them).

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;

use super::DatumError;

/// The newtype name that asks the binary decoder for the rest of its input.
pub(crate) const TAIL: &str = "$baton::shared-tail";

/// Bytes hashed to find candidates: a value's first bytes. Long enough to
/// tell templates apart, so a bucket rarely holds more than a few.
const PROBE: usize = 64;

/// Distinct values remembered per thread before the cache starts over.
const MAX_ENTRIES: usize = 256;

/// Larger encodings are decoded every time: they would pin memory.
const MAX_BYTES: usize = 8 << 10;

struct Entry {
    bytes: Box<[u8]>,
    /// The shared value (an `Arc<[T]>`, cloned out on a hit).
    value: Box<dyn Any>,
}

#[derive(Default)]
struct Cache {
    buckets: HashMap<(TypeId, u64), Vec<Entry>>,
    entries: usize,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
    static TAIL_USED: Cell<Option<usize>> = const { Cell::new(None) };
    static TAIL_FAILED: RefCell<Option<DatumError>> = const { RefCell::new(None) };
}

pub(crate) fn begin_tail() {
    TAIL_USED.set(None);
    TAIL_FAILED.take();
}

/// How many bytes the shared value took.
pub(crate) fn tail_used() -> Option<usize> {
    TAIL_USED.take()
}

/// Why the shared value did not decode (offsets relative to the tail).
pub(crate) fn tail_failed() -> Option<DatumError> {
    TAIL_FAILED.take()
}

fn probe_hash(bytes: &[u8]) -> u64 {
    foldhash::fast::FixedState::default().hash_one(&bytes[..PROBE])
}

/// `deserialize_with` for an `Arc<[T]>` field whose values repeat.
pub fn shared_slice<'de, D, T>(d: D) -> Result<Arc<[T]>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Send + Sync + 'static,
{
    d.deserialize_newtype_struct(TAIL, SharedVisitor(PhantomData))
}

struct SharedVisitor<T>(PhantomData<T>);

impl<'de, T> Visitor<'de> for SharedVisitor<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    type Value = Arc<[T]>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a shared array")
    }

    /// Any other format: an ordinary value.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Arc<[T]>, D::Error> {
        Vec::<T>::deserialize(d).map(Arc::from)
    }

    /// The binary decoder: `tail` is the rest of the input.
    fn visit_borrowed_bytes<E: de::Error>(self, tail: &'de [u8]) -> Result<Arc<[T]>, E> {
        if let Some((value, used)) = lookup::<Arc<[T]>>(tail) {
            TAIL_USED.set(Some(used));
            return Ok(value);
        }
        let (value, used) = match super::from_slice::<Vec<T>>(tail) {
            Ok(decoded) => decoded,
            Err(e) => {
                let message = e.to_string();
                TAIL_FAILED.set(Some(e));
                return Err(E::custom(message));
            }
        };
        let value: Arc<[T]> = value.into();
        if (PROBE..=MAX_BYTES).contains(&used) {
            remember(&tail[..used], value.clone());
        }
        TAIL_USED.set(Some(used));
        Ok(value)
    }
}

fn lookup<V: Clone + 'static>(tail: &[u8]) -> Option<(V, usize)> {
    if tail.len() < PROBE {
        return None;
    }
    CACHE.with_borrow(|cache| {
        let bucket = cache.buckets.get(&(TypeId::of::<V>(), probe_hash(tail)))?;
        let e = bucket.iter().find(|e| tail.starts_with(&e.bytes))?;
        Some((e.value.downcast_ref::<V>()?.clone(), e.bytes.len()))
    })
}

fn remember<V: 'static>(bytes: &[u8], value: V) {
    CACHE.with_borrow_mut(|cache| {
        if cache.entries >= MAX_ENTRIES {
            *cache = Cache::default();
        }
        cache.entries += 1;
        cache
            .buckets
            .entry((TypeId::of::<V>(), probe_hash(bytes)))
            .or_default()
            .push(Entry {
                bytes: bytes.into(),
                value: Box::new(value),
            });
    })
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::*;
    use crate::codec::binary::{from_slice, to_vec_into};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Fact {
        id: String,
        #[serde(deserialize_with = "shared_slice")]
        steps: Arc<[String]>,
        after: i64,
    }

    /// Steps long enough to be cached (over [`PROBE`] bytes encoded).
    fn fact(id: &str, last: &str, after: i64) -> Fact {
        let mut steps: Vec<String> = (0..8).map(|i| format!("step-number-{i}")).collect();
        steps.push(last.into());
        Fact {
            id: id.into(),
            steps: steps.into(),
            after,
        }
    }

    fn encode(f: &Fact) -> Vec<u8> {
        let mut out = Vec::new();
        to_vec_into(f, &mut out).unwrap();
        out
    }

    /// Same bytes, same `Arc`; the fields after the shared one still decode
    /// (the decoder skipped exactly the shared value), and a value that
    /// differs only after the probed prefix is not mistaken for a cached one.
    #[test]
    fn repeated_values_decode_once_and_the_rest_of_the_record_still_reads() {
        let (a, n) = from_slice::<Fact>(&encode(&fact("w1", "t", 1))).unwrap();
        let (b, m) = from_slice::<Fact>(&encode(&fact("w2", "t", 2))).unwrap();
        let (c, _) = from_slice::<Fact>(&encode(&fact("w3", "u", 3))).unwrap();
        assert_eq!((a.after, b.after, c.after), (1, 2, 3));
        assert_eq!((n, m), (encode(&a).len(), encode(&b).len()));
        assert_eq!(b, fact("w2", "t", 2));
        assert_eq!(c, fact("w3", "u", 3));
        assert!(Arc::ptr_eq(&a.steps, &b.steps));
        assert!(!Arc::ptr_eq(&a.steps, &c.steps));
    }

    /// The cached bytes are a complete datum: an input cut inside them is an
    /// error, not a hit.
    #[test]
    fn a_truncated_input_is_an_error_not_a_cache_hit() {
        let bytes = encode(&fact("w1", "template", 7));
        from_slice::<Fact>(&bytes).unwrap();
        let cut = bytes.len() - 12;
        assert!(from_slice::<Fact>(&bytes[..cut]).is_err());
    }

    /// Short values are decoded every time and still come out right.
    #[test]
    fn short_values_are_not_cached() {
        let short = Fact {
            id: "w".into(),
            steps: vec!["a".to_string()].into(),
            after: 5,
        };
        let (x, _) = from_slice::<Fact>(&encode(&short)).unwrap();
        let (y, _) = from_slice::<Fact>(&encode(&short)).unwrap();
        assert_eq!(x, short);
        assert!(!Arc::ptr_eq(&x.steps, &y.steps));
    }

    /// The same record without sharing, to compare errors with.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct PlainFact {
        id: String,
        steps: Vec<String>,
        after: i64,
    }

    /// A shared value that does not decode fails with the reason, offset
    /// and field path an ordinary field would give.
    #[test]
    fn a_bad_shared_value_fails_exactly_like_an_ordinary_field() {
        let bytes = encode(&fact("w9", "never-cached", 1));
        for cut in [5, 20, 60, bytes.len() - 2] {
            let shared = from_slice::<Fact>(&bytes[..cut]).unwrap_err();
            let plain = from_slice::<PlainFact>(&bytes[..cut]).unwrap_err();
            assert_eq!(shared, plain, "cut at {cut}");
            assert!(shared.path().starts_with("steps"), "{}", shared.path());
        }
    }

    /// JSON (and any other format) decodes the field as a plain value.
    #[test]
    fn other_formats_decode_it_as_an_ordinary_field() {
        let json = serde_json::to_string(&fact("w1", "t", 1)).unwrap();
        let back: Fact = serde_json::from_str(&json).unwrap();
        assert_eq!(back, fact("w1", "t", 1));
    }
}
