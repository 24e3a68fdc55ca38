//! A match: a flow key plus a mask of the bits that matter.

use crate::key::FlowKey;

/// A (key, mask) pair. Invariant: `key == key.masked(&mask)`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug)]
pub struct Match {
    pub key: FlowKey,
    pub mask: FlowKey,
}

impl Match {
    /// The match that matches every packet.
    pub fn catch_all() -> Match {
        Match::default()
    }

    /// An exact match on every field of `key`.
    pub fn exact(key: &FlowKey) -> Match {
        let mask = FlowKey::all_ones();
        Match {
            key: key.masked(&mask),
            mask,
        }
    }

    /// Builds a match, masking `key` so that the invariant holds.
    pub fn new(key: FlowKey, mask: FlowKey) -> Match {
        Match {
            key: key.masked(&mask),
            mask,
        }
    }

    /// True when the packet key `k` satisfies this match.
    #[inline]
    pub fn matches(&self, k: &FlowKey) -> bool {
        k.eq_masked(&self.key, &self.mask)
    }

    /// True when every packet matched by `self` is matched by `other`
    /// (`other` is at least as wide as `self`).
    pub fn is_subset_of(&self, other: &Match) -> bool {
        // other's mask must be within self's mask, and self's key must satisfy other.
        self.mask
            .words()
            .iter()
            .zip(other.mask.words())
            .all(|(s, o)| o & !s == 0)
            && other.matches(&self.key)
    }
}
