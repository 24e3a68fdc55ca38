//! Fast hashing of flow keys (classifier subtables and the exact-match cache).
//!
//! The key is hashed word by word with a multiply-rotate step (FxHash style)
//! and finished with a full avalanche so that both the low bits (bucket index)
//! and the high bits (hashbrown's control tag) are well distributed.

use crate::key::{FlowKey, HOT_WORDS, KEY_WORDS};

const SEED: u64 = 0x243f_6a88_85a3_08d3;
const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

/// One mixing step: folds the word `w` into the running state `h`.
#[inline(always)]
pub fn mix_word(h: u64, w: u64) -> u64 {
    (h.rotate_left(23) ^ w).wrapping_mul(MUL)
}

/// Final avalanche (the murmur3 64-bit finalizer).
#[inline(always)]
pub fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Hashes the key's words: the [`HOT_WORDS`] packet words in two
/// independent lanes (even and odd words) so that the multiply chains
/// overlap in the CPU, then the extension words (metadata, registers,
/// tunnel, conntrack) only when one of them is non-zero. A plain packet's
/// extension is all zero, so its hash costs a cheap OR over those words
/// instead of a multiply chain; keys that differ only in the extension
/// still hash apart because a non-zero extension is always folded in.
#[inline(always)]
fn hash_words(w: impl Fn(usize) -> u64) -> u64 {
    let mut a = SEED;
    let mut b = SEED.rotate_left(32) ^ MUL;
    let mut i = 0;
    while i + 1 < HOT_WORDS {
        a = mix_word(a, w(i));
        b = mix_word(b, w(i + 1));
        i += 2;
    }
    if i < HOT_WORDS {
        a = mix_word(a, w(i));
    }
    let mut ext = 0u64;
    for j in HOT_WORDS..KEY_WORDS {
        ext |= w(j);
    }
    if ext != 0 {
        let mut j = HOT_WORDS;
        while j + 1 < KEY_WORDS {
            a = mix_word(a, w(j));
            b = mix_word(b, w(j + 1));
            j += 2;
        }
        if j < KEY_WORDS {
            a = mix_word(a, w(j));
        }
    }
    finish(mix_word(a, b))
}

/// Hash of the whole key.
#[inline]
pub fn hash_key(k: &FlowKey) -> u64 {
    let kw = k.words();
    hash_words(|i| kw[i])
}

/// Hash of `k & mask`; equal to `hash_key(&k.masked(mask))`.
#[inline]
pub fn hash_masked(k: &FlowKey, mask: &FlowKey) -> u64 {
    let kw = k.words();
    let mw = mask.words();
    hash_words(|i| kw[i] & mw[i])
}

/// Hash of `k & mask` over only the words listed in `idx` (the words where
/// the mask is non-zero, in increasing order). Equal for two keys exactly
/// when their masked words hash equal; it is *not* equal to
/// [`hash_masked`] (it skips the zero words), so use one or the other
/// consistently within one table.
#[inline]
pub fn hash_masked_sparse(k: &FlowKey, mask: &FlowKey, idx: &[u8]) -> u64 {
    let kw = k.words();
    let mw = mask.words();
    let mut h = SEED;
    for &i in idx {
        let i = usize::from(i) % KEY_WORDS;
        h = mix_word(h, kw[i] & mw[i]);
    }
    finish(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_hash_equals_hash_of_masked_key() {
        let k = FlowKey {
            nw_src: 0x0a00_0001,
            tp_dst: 80,
            dl_src: [1, 2, 3, 4, 5, 6],
            ..FlowKey::default()
        };
        let m = FlowKey {
            nw_src: 0xffff_ff00,
            tp_dst: 0xffff,
            ..FlowKey::default()
        };
        assert_eq!(hash_masked(&k, &m), hash_key(&k.masked(&m)));
    }

    #[test]
    fn hash_changes_when_any_single_bit_changes() {
        let base = FlowKey::default();
        let h0 = hash_key(&base);
        for wi in 0..KEY_WORDS {
            for bit in [0u32, 17, 63] {
                let mut k = base;
                k.words_mut()[wi] ^= 1u64 << bit;
                assert_ne!(hash_key(&k), h0, "word {wi} bit {bit}");
            }
        }
    }

    #[test]
    fn sparse_hash_ignores_bits_outside_the_mask() {
        let m = FlowKey {
            tp_dst: 0xffff,
            ..FlowKey::default()
        };
        let idx: Vec<u8> = (0..KEY_WORDS as u8)
            .filter(|&i| m.words()[usize::from(i)] != 0)
            .collect();
        let mut a = FlowKey::default();
        let mut b = FlowKey::default();
        a.tp_dst = 80;
        b.tp_dst = 80;
        b.nw_src = 7;
        assert_eq!(
            hash_masked_sparse(&a, &m, &idx),
            hash_masked_sparse(&b, &m, &idx)
        );
        b.tp_dst = 81;
        assert_ne!(
            hash_masked_sparse(&a, &m, &idx),
            hash_masked_sparse(&b, &m, &idx)
        );
    }
}
