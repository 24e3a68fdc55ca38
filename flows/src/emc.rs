//! Exact-match cache: the first, per-PMD-thread flow cache.
//!
//! A fixed-size, 2-way set-associative table keyed by the full [`FlowKey`]
//! and its precomputed hash ([`crate::hash::hash_key`]). Hashes, keys and
//! values live in separate arrays so that a probe first touches one cache
//! line of hashes and only compares keys whose hash matches. No locks: each
//! PMD thread owns its cache.

use crate::key::FlowKey;

/// Default number of entries.
pub const EMC_DEFAULT_ENTRIES: usize = 8192;
/// Entries per set.
const WAYS: usize = 2;

/// A bounded cache from exact flow keys to small copyable values.
pub struct ExactMatchCache<V: Copy> {
    hashes: Box<[u64]>,
    keys: Box<[FlowKey]>,
    values: Box<[Option<V>]>,
    set_mask: usize,
    len: usize,
}

impl<V: Copy> Default for ExactMatchCache<V> {
    fn default() -> Self {
        Self::new(EMC_DEFAULT_ENTRIES)
    }
}

impl<V: Copy> std::fmt::Debug for ExactMatchCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExactMatchCache")
            .field("capacity", &self.capacity())
            .field("len", &self.len)
            .finish()
    }
}

impl<V: Copy> ExactMatchCache<V> {
    /// A cache of `entries` slots, rounded up to a power of two (at least 2).
    pub fn new(entries: usize) -> Self {
        let n = entries.max(WAYS).next_power_of_two();
        ExactMatchCache {
            hashes: vec![0; n].into_boxed_slice(),
            // Zeroed by the allocator (calloc: fresh pages for a table this
            // size), not written key by key: a slot's pages become resident
            // only once a flow lands in them, so an idle or lightly used
            // switch does not hold the ~3 MiB of an 8192-entry cache. An
            // all-zero key is `FlowKey::default()`; a slot's key is read
            // only once its value is set.
            keys: bytemuck::zeroed_slice_box(n),
            values: vec![None; n].into_boxed_slice(),
            set_mask: n / WAYS - 1,
            len: 0,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.values.len()
    }

    /// Number of occupied slots.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline(always)]
    fn set_base(&self, hash: u64) -> usize {
        (hash as usize & self.set_mask) * WAYS
    }

    /// The value cached for `key` (whose hash is `hash`).
    #[inline]
    pub fn lookup(&self, key: &FlowKey, hash: u64) -> Option<V> {
        let base = self.set_base(hash);
        for i in base..base + WAYS {
            if self.hashes.get(i) == Some(&hash)
                && let Some(Some(v)) = self.values.get(i)
                && self.keys.get(i) == Some(key)
            {
                return Some(*v);
            }
        }
        None
    }

    /// Caches `value` for `key`, replacing the key's old value, else filling
    /// an empty way, else evicting the way chosen by the hash.
    pub fn insert(&mut self, key: &FlowKey, hash: u64, value: V) {
        let base = self.set_base(hash);
        let mut empty = None;
        for i in base..base + WAYS {
            match self.values.get(i) {
                Some(Some(_)) if self.hashes[i] == hash && self.keys[i] == *key => {
                    self.values[i] = Some(value);
                    return;
                }
                Some(None) if empty.is_none() => empty = Some(i),
                _ => {}
            }
        }
        let i = match empty {
            Some(i) => {
                self.len += 1;
                i
            }
            None => base + (hash >> 63) as usize % WAYS,
        };
        self.hashes[i] = hash;
        self.keys[i] = *key;
        self.values[i] = Some(value);
    }

    /// Drops the entry for `key`, if cached.
    pub fn remove(&mut self, key: &FlowKey, hash: u64) -> Option<V> {
        let base = self.set_base(hash);
        for i in base..base + WAYS {
            if self.hashes[i] == hash && self.values[i].is_some() && self.keys[i] == *key {
                self.len -= 1;
                return self.values[i].take();
            }
        }
        None
    }

    /// Empties the cache.
    pub fn clear(&mut self) {
        self.values.fill(None);
        self.len = 0;
    }

    /// Drops every entry whose value satisfies `pred` (e.g. entries pointing
    /// at a megaflow that was just deleted); returns how many were dropped.
    pub fn remove_if(&mut self, mut pred: impl FnMut(&V) -> bool) -> usize {
        let mut n = 0;
        for v in self.values.iter_mut() {
            if v.as_ref().is_some_and(&mut pred) {
                *v = None;
                n += 1;
            }
        }
        self.len -= n;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_key;

    fn key(n: u32) -> FlowKey {
        FlowKey {
            nw_src: n,
            ..FlowKey::default()
        }
    }

    #[test]
    fn lookup_returns_inserted_value_and_misses_other_keys() {
        let mut c = ExactMatchCache::new(64);
        let (a, b) = (key(1), key(2));
        c.insert(&a, hash_key(&a), 10u32);
        assert_eq!(c.lookup(&a, hash_key(&a)), Some(10));
        assert_eq!(c.lookup(&b, hash_key(&b)), None);
        c.insert(&a, hash_key(&a), 11);
        assert_eq!(c.lookup(&a, hash_key(&a)), Some(11));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn same_hash_different_key_is_a_miss() {
        let mut c = ExactMatchCache::new(64);
        let (a, b) = (key(1), key(2));
        c.insert(&a, 5, 1u8);
        assert_eq!(c.lookup(&b, 5), None);
        assert_eq!(c.lookup(&a, 5), Some(1));
    }

    #[test]
    fn capacity_is_bounded_and_rounded_to_power_of_two() {
        let mut c = ExactMatchCache::new(100);
        assert_eq!(c.capacity(), 128);
        for n in 0..10_000 {
            let k = key(n);
            c.insert(&k, hash_key(&k), n);
        }
        assert!(c.len() <= 128);
        // The most recent insertion is always present.
        let last = key(9_999);
        assert_eq!(c.lookup(&last, hash_key(&last)), Some(9_999));
        // Every hit returns the value stored for that very key.
        let hits = (0..10_000)
            .filter(|&n| {
                let k = key(n);
                c.lookup(&k, hash_key(&k))
                    .inspect(|v| assert_eq!(*v, n))
                    .is_some()
            })
            .count();
        assert_eq!(hits, c.len());
    }

    #[test]
    fn colliding_keys_share_a_set_of_two_ways() {
        let mut c = ExactMatchCache::new(16);
        // Same set (low bits), different keys.
        let (a, b, d) = (key(1), key(2), key(3));
        c.insert(&a, 0x10, 1u32);
        c.insert(&b, 0x20, 2);
        assert_eq!(c.lookup(&a, 0x10), Some(1));
        assert_eq!(c.lookup(&b, 0x20), Some(2));
        c.insert(&d, 0x30, 3);
        assert_eq!(c.lookup(&d, 0x30), Some(3));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn remove_if_drops_only_matching_values_and_clear_drops_all() {
        let mut c = ExactMatchCache::new(64);
        for n in 0..8 {
            let k = key(n);
            c.insert(&k, hash_key(&k), n);
        }
        let before = c.len();
        let dropped = c.remove_if(|v| v % 2 == 0);
        assert_eq!(c.len(), before - dropped);
        for n in 0..8 {
            let k = key(n);
            if n % 2 == 0 {
                assert_eq!(c.lookup(&k, hash_key(&k)), None);
            }
        }
        let k1 = key(1);
        let cached = c.lookup(&k1, hash_key(&k1));
        assert_eq!(c.remove(&k1, hash_key(&k1)), cached);
        assert_eq!(c.lookup(&k1, hash_key(&k1)), None);
        c.clear();
        assert!(c.is_empty());
        let k3 = key(3);
        assert_eq!(c.lookup(&k3, hash_key(&k3)), None);
    }
}
