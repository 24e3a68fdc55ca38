//! Recirculation ids: the pipeline state a `ct(table=N)` freezes, interned
//! so that equal states share an id (and the megaflows keyed on it), and
//! the datapath resources translation allocates (`ct` action ids,
//! recirculation ids) behind `flows::xlate::DpResources`.
//!
//! A frozen state names a table and the pipeline metadata (OpenFlow
//! in_port, metadata, registers), not a bridge: the recirculated packet
//! keeps its datapath in_port, which names the bridge.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use datapath::DpConntrack;
use flows::action::Ct;
use flows::xlate::{DpResources, Frozen};

/// Frozen states held at most. When a new state finds the table full, the
/// table starts a new generation: every state is forgotten and the caller
/// must flush the datapath's caches ([`RecircTable::take_flush_wanted`]).
/// This bounds the memory a flood of distinct states (registers loaded from
/// packet fields before a `ct(table=N)`, say) can take: about 170 bytes a
/// state.
pub const MAX_RECIRC_STATES: usize = 1 << 18;

/// An id is `generation << INDEX_BITS | (index + 1)`: ids of an earlier
/// generation, still carried by a packet in flight or a megaflow not yet
/// flushed, name no state rather than somebody else's.
const INDEX_BITS: u32 = 20;
const GENERATIONS: u32 = 1 << (32 - INDEX_BITS);

#[derive(Default)]
struct Inner {
    ids: HashMap<Frozen, u32>,
    /// State of index `i` of this generation.
    states: Vec<Frozen>,
    generation: u32,
}

/// Interned frozen pipeline states by recirculation id (0 is "not
/// recirculated").
#[derive(Default)]
pub struct RecircTable {
    inner: Mutex<Inner>,
    flush_wanted: AtomicBool,
}

impl RecircTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The id of `f`, allocating one on first use. A full table starts a new
    /// generation first (see [`MAX_RECIRC_STATES`]).
    pub fn id_of(&self, f: &Frozen) -> Option<u32> {
        let mut g = self.lock();
        if let Some(id) = g.ids.get(f) {
            return Some(*id);
        }
        if g.states.len() >= MAX_RECIRC_STATES {
            g.ids.clear();
            g.states.clear();
            g.generation = (g.generation + 1) % GENERATIONS;
            self.flush_wanted.store(true, Ordering::Release);
            tracing::warn!(
                "{MAX_RECIRC_STATES} recirculation states in use: all are forgotten and the datapath caches flushed"
            );
        }
        g.states.push(*f);
        let id = (g.generation << INDEX_BITS) | g.states.len() as u32;
        g.ids.insert(*f, id);
        Some(id)
    }

    /// The state frozen under `id`; `None` for 0, unknown ids and ids of an
    /// earlier generation.
    pub fn get(&self, id: u32) -> Option<Frozen> {
        let g = self.lock();
        if id >> INDEX_BITS != g.generation {
            return None;
        }
        let i = ((id & ((1 << INDEX_BITS) - 1)) as usize).checked_sub(1)?;
        g.states.get(i).copied()
    }

    /// Whether a new generation started since the last call: the datapath
    /// caches may still hold ids of the old one and must be flushed.
    pub fn take_flush_wanted(&self) -> bool {
        self.flush_wanted.swap(false, Ordering::AcqRel)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().states.len()
    }
}

/// The datapath resources of one translation.
pub struct Resources<'a> {
    pub ct: &'a DpConntrack,
    pub recirc: &'a RecircTable,
}

impl DpResources for Resources<'_> {
    fn ct_action(&self, ct: &Ct, zone: u16) -> Result<u32, String> {
        self.ct.intern(ct, zone)
    }

    fn recirc_id(&self, frozen: &Frozen) -> Option<u32> {
        self.recirc.id_of(frozen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_frozen_states_share_an_id_and_ids_start_at_one() {
        let t = RecircTable::default();
        let a = Frozen {
            table_id: 1,
            in_port: 2,
            metadata: 0,
            regs: [0; 16],
            bridge: 0,
        };
        let mut b = a;
        b.regs[3] = 9;
        let ia = t.id_of(&a).unwrap();
        assert_eq!(ia, 1);
        assert_eq!(t.id_of(&a), Some(ia));
        let ib = t.id_of(&b).unwrap();
        assert_ne!(ia, ib);
        assert_eq!(t.get(ib), Some(b));
        assert_eq!(t.get(0), None);
        assert_eq!(t.get(99), None);
    }

    fn state(n: u32) -> Frozen {
        let mut regs = [0; 16];
        regs[0] = n;
        Frozen {
            table_id: 1,
            in_port: 2,
            metadata: 0,
            regs,
            bridge: 0,
        }
    }

    #[test]
    fn a_full_table_starts_a_new_generation_and_old_ids_name_nothing() {
        let t = RecircTable::default();
        let first = t.id_of(&state(0)).unwrap();
        for n in 1..MAX_RECIRC_STATES as u32 {
            t.id_of(&state(n)).unwrap();
        }
        assert_eq!(t.len(), MAX_RECIRC_STATES);
        assert!(!t.take_flush_wanted());
        let fresh = t.id_of(&state(u32::MAX)).unwrap();
        assert!(t.take_flush_wanted(), "the caches must be flushed");
        assert!(!t.take_flush_wanted());
        assert_eq!(t.len(), 1, "memory stays bounded");
        assert_eq!(t.get(first), None, "an old id names no state");
        assert_eq!(t.get(fresh), Some(state(u32::MAX)));
        assert_ne!(fresh, first);
        // An old state comes back under a new id.
        let again = t.id_of(&state(0)).unwrap();
        assert_ne!(again, first);
        assert_eq!(t.get(again), Some(state(0)));
    }
}
