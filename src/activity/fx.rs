//! A small, fast, non-cryptographic hasher (the Fx hash used by rustc, with a full 64-bit
//! finaliser) for the detectors' per-account and per-IP maps, which are looked up several
//! times per event. Keys are provider data, so a flood of colliding keys is bounded by the
//! maps' caps, not the hash. [`hash_str`] — the identity of an event id, account or address
//! in the de-duplication set and the windows — mixes every word fully: the plain Fx step
//! confines the difference between ids such as `ev-1234567` and `ev-1234568` to a few bits,
//! which collided for about 1 % of a benchmark's ids (distinct events dropped as
//! duplicates) and clustered the hash tables.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.hash = (self.hash.rotate_left(5) ^ w).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        fmix64(self.hash)
    }
}

pub type FxBuild = BuildHasherDefault<FxHasher>;
pub type FxHashMap<K, V> = HashMap<K, V, FxBuild>;
pub type FxHashSet<K> = HashSet<K, FxBuild>;

/// MurmurHash3's 64-bit finaliser: every input bit affects every output bit.
#[inline]
pub fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// The 64-bit identity hash of a string (event ids, accounts, addresses): each 8-byte word
/// is folded in through [`fmix64`], a bijection, so strings of one length that differ in one
/// word never collide, and others collide only by chance (about 2^-64 a pair). Stable across
/// releases: it is persisted.
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = SEED ^ (s.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut chunks = s.as_bytes().chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = fmix64(h ^ w).wrapping_add(0x9e37_79b9_7f4a_7c15);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = fmix64(h ^ u64::from_le_bytes(b)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    }
    fmix64(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_strings_hash_apart() {
        let mut seen = FxHashSet::default();
        for i in 0..10_000 {
            assert!(seen.insert(hash_str(&format!("user{i}@example.com"))));
        }
        assert_ne!(hash_str("ab"), hash_str("ab\0"));
        assert_eq!(hash_str("x"), hash_str("x"));
    }

    #[test]
    fn sequential_event_ids_never_collide() {
        // The plain Fx step collided for ~1 % of these.
        let mut seen = FxHashSet::default();
        for i in 0..1_000_000 {
            assert!(seen.insert(hash_str(&format!("ev-{i}"))), "ev-{i}");
        }
        for a in 0..=255u32 {
            for b in (0..=255u32).step_by(7) {
                assert!(seen.insert(hash_str(&format!("10.0.{a}.{b}"))));
            }
        }
    }
}
