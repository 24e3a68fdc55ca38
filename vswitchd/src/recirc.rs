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

use datapath::DpConntrack;
use flows::action::Ct;
use flows::xlate::{DpResources, Frozen};

/// Recirculation ids handed out at most (ids are never reused; a daemon
/// restart starts over, as the datapath's caches do).
pub const MAX_RECIRC_IDS: usize = 1 << 20;

#[derive(Default)]
struct Inner {
    ids: HashMap<Frozen, u32>,
    /// State of id `i + 1`.
    states: Vec<Frozen>,
}

/// Interned frozen pipeline states by recirculation id (0 is "not
/// recirculated").
#[derive(Default)]
pub struct RecircTable {
    inner: Mutex<Inner>,
}

impl RecircTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The id of `f`, allocating one on first use; `None` when ids ran out.
    pub fn id_of(&self, f: &Frozen) -> Option<u32> {
        let mut g = self.lock();
        if let Some(id) = g.ids.get(f) {
            return Some(*id);
        }
        if g.states.len() >= MAX_RECIRC_IDS {
            return None;
        }
        g.states.push(*f);
        let id = g.states.len() as u32;
        g.ids.insert(*f, id);
        Some(id)
    }

    /// The state frozen under `id`.
    pub fn get(&self, id: u32) -> Option<Frozen> {
        let i = (id as usize).checked_sub(1)?;
        self.lock().states.get(i).copied()
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
}
