//! A string-keyed table for subjects: entries live in a vector and are also
//! reachable by a small integer id (what the per-event path uses: workflows
//! cache the ids of their steps' subjects, so most observations touch no
//! string at all); a hashed index finds ids by name. Serialised and iterated
//! in key order, so stored bytes and detector output never depend on hash or
//! insertion order; ids are process-local (renumbered in key order when
//! loaded) and never stored.

use std::collections::BTreeMap;

use hashbrown::HashMap as RawMap;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug)]
pub struct Keyed<V> {
    names: Vec<String>,
    values: Vec<V>,
    index: RawMap<String, u32, foldhash::fast::FixedState>,
}

impl<V> Default for Keyed<V> {
    fn default() -> Self {
        Keyed {
            names: Vec::new(),
            values: Vec::new(),
            index: RawMap::with_hasher(foldhash::fast::FixedState::default()),
        }
    }
}

impl<V> Keyed<V> {
    pub fn get(&self, k: &str) -> Option<&V> {
        self.index.get(k).map(|&i| &self.values[i as usize])
    }

    pub fn get_mut(&mut self, k: &str) -> Option<&mut V> {
        let i = *self.index.get(k)?;
        self.values.get_mut(i as usize)
    }

    /// The id of `k`, its entry created with `new` the first time (the key
    /// is only cloned then).
    pub fn id(&mut self, k: &str, new: impl FnOnce() -> V) -> u32 {
        if let Some(&i) = self.index.get(k) {
            return i;
        }
        let i = self.values.len() as u32;
        self.names.push(k.to_string());
        self.values.push(new());
        self.index.insert(k.to_string(), i);
        i
    }

    /// The entry of `k`, created with `new` the first time.
    pub fn entry(&mut self, k: &str, new: impl FnOnce() -> V) -> &mut V {
        let i = self.id(k, new);
        &mut self.values[i as usize]
    }

    /// The entry with id `i` (from [`Keyed::id`] on this table).
    pub fn by_id(&mut self, i: u32) -> Option<&mut V> {
        self.values.get_mut(i as usize)
    }

    /// The name of id `i`.
    pub fn name(&self, i: u32) -> Option<&str> {
        self.names.get(i as usize).map(String::as_str)
    }

    pub fn insert(&mut self, k: String, v: V) {
        match self.index.get(k.as_str()) {
            Some(&i) => self.values[i as usize] = v,
            None => {
                self.index.insert(k.clone(), self.values.len() as u32);
                self.names.push(k);
                self.values.push(v);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn contains_key(&self, k: &str) -> bool {
        self.index.contains_key(k)
    }

    /// Entries in key order.
    pub fn sorted(&self) -> Vec<(&String, &V)> {
        let mut v: Vec<(&String, &V)> = self.names.iter().zip(&self.values).collect();
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
        let m: BTreeMap<String, V> = Deserialize::deserialize(d)?;
        let mut out = Keyed::default();
        for (k, v) in m {
            out.insert(k, v);
        }
        Ok(out)
    }
}
