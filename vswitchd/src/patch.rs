//! Patch ports (`type=patch`, `options:peer=NAME`): two bridges joined
//! inside the switch with no copy, as in Open vSwitch. A patch port has no
//! datapath port; translating an output to it continues in the peer
//! bridge's pipeline (`flows::xlate`, `PatchSet`) inside the same megaflow.
//!
//! Here (the port object is a `datapath::deviceless::DevicelessPort`): the
//! resolution of peers into `BridgePort::patch` with OVS's error texts, and
//! the locking of every bridge a translation may reach.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, MutexGuard};

use datapath::PortStats;
use flows::PortNo;
use flows::xlate::{PatchBridge, PatchCrossing, PatchSet};

use crate::ofproto::{BridgeState, Ofproto};

/// Interface type name.
pub const KIND: &str = "patch";

/// Why a patch Interface cannot be opened at all (no usable `peer`
/// option): OVS leaves its `ofport` at -1 with this error.
pub fn option_error(name: &str, options: &BTreeMap<String, String>) -> Option<String> {
    match options.get("peer") {
        Some(p) if !p.is_empty() && p != name => None,
        _ => Some(format!("{name}: patch type requires valid 'peer' argument")),
    }
}

/// The error of a patch port whose peer does not exist or does not name
/// it back, in OVS's words (`dp_type` is the bridge's datapath type).
pub fn peer_error(peer: &str, dp_type: &str) -> String {
    let t = if dp_type.is_empty() {
        "netdev"
    } else {
        dp_type
    };
    format!("No usable peer '{peer}' exists in '{t}' datapath.")
}

/// A port by (bridge id, OpenFlow port).
pub type PortRef = (u32, PortNo);

/// The patch pairs in force: which bridges are joined (directly or not),
/// and the counters of each patch port, by (bridge id, OpenFlow port).
#[derive(Default)]
pub struct PatchLinks {
    /// For each bridge joined to another: every bridge of its group
    /// (itself included), sorted by id, the order they are locked in.
    groups: HashMap<u32, Arc<Vec<Arc<Ofproto>>>>,
    counters: HashMap<PortRef, Arc<PortStats>>,
}

impl PatchLinks {
    /// Builds the groups from the resolved pairs `pairs` ((bridge, port)
    /// ↔ (bridge, port)) and the ports' counters.
    pub fn new(
        bridges: &[Arc<Ofproto>],
        pairs: &[(PortRef, PortRef)],
        counters: HashMap<PortRef, Arc<PortStats>>,
    ) -> PatchLinks {
        // Union-find over bridge ids.
        let mut parent: BTreeMap<u32, u32> = BTreeMap::new();
        fn find(p: &mut BTreeMap<u32, u32>, x: u32) -> u32 {
            let mut r = x;
            while let Some(&q) = p.get(&r) {
                if q == r {
                    break;
                }
                r = q;
            }
            p.insert(x, r);
            r
        }
        for ((a, _), (b, _)) in pairs {
            parent.entry(*a).or_insert(*a);
            parent.entry(*b).or_insert(*b);
            let (ra, rb) = (find(&mut parent, *a), find(&mut parent, *b));
            if ra != rb {
                parent.insert(ra.max(rb), ra.min(rb));
            }
        }
        let ids: Vec<u32> = parent.keys().copied().collect();
        let mut members: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
        for id in ids {
            let r = find(&mut parent, id);
            members.entry(r).or_default().insert(id);
        }
        let mut groups = HashMap::new();
        for set in members.values() {
            let list: Vec<Arc<Ofproto>> = set
                .iter()
                .filter_map(|id| bridges.iter().find(|b| b.id == *id).cloned())
                .collect();
            let list = Arc::new(list);
            for id in set {
                groups.insert(*id, list.clone());
            }
        }
        PatchLinks { groups, counters }
    }

    /// The bridges a translation starting in `br` may reach, `br`
    /// included, in locking order.
    pub fn group(&self, br: &Arc<Ofproto>) -> Vec<Arc<Ofproto>> {
        match self.groups.get(&br.id) {
            Some(g) if g.iter().any(|b| Arc::ptr_eq(b, br)) => g.to_vec(),
            _ => vec![br.clone()],
        }
    }

    /// Credits `packets`/`bytes` to the ports of each crossing: sent by
    /// the patch port, received by its peer.
    pub fn credit(&self, crossings: &[PatchCrossing], packets: u64, bytes: u64) {
        for c in crossings {
            if let Some(s) = self.counters.get(&c.from) {
                PortStats::add(&s.tx_packets, packets);
                PortStats::add(&s.tx_bytes, bytes);
            }
            if let Some(s) = self.counters.get(&c.to) {
                PortStats::add(&s.rx_packets, packets);
                PortStats::add(&s.rx_bytes, bytes);
            }
        }
    }
}

/// Locks every bridge of `group` (already in id order, so two
/// translations never wait on each other's locks in a cycle).
pub fn lock_all(group: &[Arc<Ofproto>]) -> Vec<MutexGuard<'_, BridgeState>> {
    group.iter().map(|b| b.lock()).collect()
}

/// The patch set over locked bridges, for translation rooted at
/// `group[root]`; `None` when the group is the root alone.
pub fn patch_set<'a>(
    group: &'a [Arc<Ofproto>],
    guards: &'a [MutexGuard<'_, BridgeState>],
    root: usize,
) -> Option<PatchSet<'a>> {
    if group.len() < 2 {
        return None;
    }
    let bridges = group
        .iter()
        .zip(guards)
        .map(|(b, st)| {
            let st: &BridgeState = st;
            PatchBridge {
                id: b.id,
                name: &b.name,
                pipeline: st.active_pipeline(b.fail_open(st)),
                groups: &st.groups,
                ports: &st.ports,
                mac: &st.mac,
            }
        })
        .collect();
    Some(PatchSet {
        root: group[root].id,
        bridges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_self_peer_is_refused_with_ovs_text() {
        let mut o = BTreeMap::new();
        assert_eq!(
            option_error("p0", &o).as_deref(),
            Some("p0: patch type requires valid 'peer' argument")
        );
        o.insert("peer".to_string(), "p0".to_string());
        assert!(option_error("p0", &o).is_some());
        o.insert("peer".to_string(), "p1".to_string());
        assert_eq!(option_error("p0", &o), None);
        assert_eq!(
            peer_error("p1", ""),
            "No usable peer 'p1' exists in 'netdev' datapath."
        );
    }

    #[test]
    fn crossing_counts_tx_on_the_patch_port_and_rx_on_its_peer() {
        let a = Arc::new(PortStats::default());
        let b = Arc::new(PortStats::default());
        let mut c = HashMap::new();
        c.insert((1, 2), a.clone());
        c.insert((2, 3), b.clone());
        let links = PatchLinks::new(&[], &[((1, 2), (2, 3))], c);
        links.credit(
            &[PatchCrossing {
                from: (1, 2),
                to: (2, 3),
            }],
            2,
            28,
        );
        let (sa, sb) = (a.snapshot(), b.snapshot());
        assert_eq!((sa.tx_packets, sa.tx_bytes, sa.rx_packets), (2, 28, 0));
        assert_eq!((sb.rx_packets, sb.rx_bytes, sb.tx_packets), (2, 28, 0));
    }
}
