//! A small Bloom filter over finished workflow ids, so a submission only
//! pays a store lookup when its id might already exist (the usual new id
//! answers "no" from memory). False positives cost one lookup; there are no
//! false negatives.

use std::hash::{DefaultHasher, Hash, Hasher};

pub struct Bloom {
    bits: Vec<u64>,
    mask: u64,
}

const HASHES: u64 = 4;

impl Bloom {
    /// A filter of `2^log2_bits` bits (2^24 = 2 MiB holds ~1.5 M ids at ~1% false positives).
    pub fn new(log2_bits: u32) -> Self {
        let bits = 1u64 << log2_bits.clamp(6, 34);
        Bloom {
            bits: vec![0; (bits / 64) as usize],
            mask: bits - 1,
        }
    }

    fn hashes(key: &str) -> (u64, u64) {
        let mut a = DefaultHasher::new();
        key.hash(&mut a);
        let h1 = a.finish();
        let mut b = DefaultHasher::new();
        (key, 0x9e37_79b9_u32).hash(&mut b);
        (h1, b.finish() | 1)
    }

    pub fn insert(&mut self, key: &str) {
        let (h1, h2) = Self::hashes(key);
        for i in 0..HASHES {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) & self.mask;
            self.bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    pub fn may_contain(&self, key: &str) -> bool {
        let (h1, h2) = Self::hashes(key);
        (0..HASHES).all(|i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) & self.mask;
            self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let mut b = Bloom::new(20);
        for i in 0..50_000 {
            b.insert(&format!("wf-{i}"));
        }
        assert!((0..50_000).all(|i| b.may_contain(&format!("wf-{i}"))));
        let fp = (0..50_000)
            .filter(|i| b.may_contain(&format!("other-{i}")))
            .count();
        assert!(fp < 2_500, "{fp} false positives of 50000");
    }
}
