//! A string-keyed map for subjects: hashed for the per-event look-ups
//! (ordered maps spent their time in string comparisons), but serialised and
//! iterated in key order, so stored bytes and detector output never depend
//! on hash order.

use std::collections::HashMap;

use hashbrown::HashMap as RawMap;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug)]
pub struct Keyed<V>(RawMap<String, V, foldhash::fast::FixedState>);

impl<V> Default for Keyed<V> {
    fn default() -> Self {
        Keyed(RawMap::with_hasher(foldhash::fast::FixedState::default()))
    }
}

impl<V> Keyed<V> {
    pub fn get(&self, k: &str) -> Option<&V> {
        self.0.get(k)
    }

    /// The entry of `k`, created with `new` the first time (the key is
    /// only cloned then).
    pub fn entry(&mut self, k: &str, new: impl FnOnce() -> V) -> &mut V {
        // One probe; the key is cloned only when inserted.
        self.0.entry_ref(k).or_insert_with(new)
    }

    pub fn get_mut(&mut self, k: &str) -> Option<&mut V> {
        self.0.get_mut(k)
    }

    pub fn insert(&mut self, k: String, v: V) {
        self.0.insert(k, v);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains_key(&self, k: &str) -> bool {
        self.0.contains_key(k)
    }

    /// Entries in key order.
    pub fn sorted(&self) -> Vec<(&String, &V)> {
        let mut v: Vec<(&String, &V)> = self.0.iter().collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// Values in key order.
    pub fn values(&self) -> Vec<&V> {
        self.sorted().into_iter().map(|(_, v)| v).collect()
    }

    /// Keys in order.
    pub fn keys(&self) -> Vec<&String> {
        self.sorted().into_iter().map(|(k, _)| k).collect()
    }
}

impl<V: Serialize> Serialize for Keyed<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let sorted = self.sorted();
        let mut m = s.serialize_map(Some(sorted.len()))?;
        for (k, v) in sorted {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Keyed<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m: HashMap<String, V> = Deserialize::deserialize(d)?;
        let mut out = Keyed::default();
        out.0.extend(m);
        Ok(out)
    }
}
