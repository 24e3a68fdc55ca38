//! Conntrack timeout policies from the DB, as OVS applies them:
//! `Open_vSwitch.datapaths` names the `Datapath` row of the `netdev` type,
//! whose `ct_zones` map a zone to a `CT_Zone` row, whose `timeout_policy`
//! names a `CT_Timeout_Policy` row, whose `timeouts` map OVS's attribute
//! names (`udp_first`, `tcp_established`, ...) to seconds.
//!
//! Each distinct policy row gets a tracker policy id (1 and up; 0 is the
//! default policy); zones are pointed at their policy's id, and zones that
//! leave `ct_zones` (or lose their policy) go back to the default. As in
//! OVS, a connection keeps the policy it was committed under; its timeouts
//! follow later changes to that policy's values.
//!
//! Keys only the kernel datapath uses (`tcp_close_wait`, `tcp_last_ack`,
//! `tcp_syn_sent2`, `tcp_retransmit`, `tcp_unack`) are ignored, as OVS's
//! userspace datapath ignores them.

use std::collections::BTreeMap;

use conntrack::{Conntrack, MAX_POLICIES, TimeoutAttr, TimeoutPolicy};
use ovsdb::{Data, Datum};
use tracing::{info, warn};
use uuid::Uuid;

use crate::capabilities;

/// What the DB asks for: each zone's policy row, and each policy's values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WantedPolicies {
    /// Zone → the `CT_Timeout_Policy` row it uses (`None`: a `CT_Zone`
    /// without a policy, which is the default).
    pub zones: BTreeMap<u16, Option<Uuid>>,
    /// Policy row → its timeouts.
    pub policies: BTreeMap<Uuid, TimeoutPolicy>,
}

/// Reads the zones and policies of our datapath's `Datapath` row.
pub fn wanted_from_data(data: &Data, problems: &mut Vec<String>) -> WantedPolicies {
    let mut w = WantedPolicies::default();
    let Some((_, root)) = data.table("Open_vSwitch").iter().next() else {
        return w;
    };
    let Some(Datum::Map(dps)) = root.get("datapaths") else {
        return w;
    };
    for (ty, dp) in dps {
        let (Some(ty), Some(dp)) = (ty.as_str(), dp.as_uuid()) else {
            continue;
        };
        if !capabilities::is_our_datapath_type(ty) {
            continue;
        }
        let Some(Datum::Map(zones)) = data.row("Datapath", &dp).and_then(|r| r.get("ct_zones"))
        else {
            continue;
        };
        for (zone, zrow) in zones {
            let (Some(zone), Some(zrow)) = (zone.as_i64(), zrow.as_uuid()) else {
                continue;
            };
            let Ok(zone) = u16::try_from(zone) else {
                problems.push(format!("ct_zones: zone {zone} out of range"));
                continue;
            };
            let tp = data
                .row("CT_Zone", &zrow)
                .and_then(|r| r.get("timeout_policy"))
                .and_then(Datum::first)
                .and_then(|a| a.as_uuid());
            if let Some(tp) = tp
                && !w.policies.contains_key(&tp)
            {
                let Some(row) = data.row("CT_Timeout_Policy", &tp) else {
                    continue;
                };
                let mut p = TimeoutPolicy::default();
                if let Some(Datum::Map(m)) = row.get("timeouts") {
                    for (k, v) in m {
                        let (Some(k), Some(v)) = (k.as_str(), v.as_i64()) else {
                            continue;
                        };
                        let Some(attr) = TimeoutAttr::from_db_key(k) else {
                            continue;
                        };
                        match u32::try_from(v) {
                            Ok(secs) => p.set(attr, secs),
                            Err(_) => problems
                                .push(format!("CT_Timeout_Policy {tp}: {k}={v} out of range")),
                        }
                    }
                }
                w.policies.insert(tp, p);
            }
            w.zones.insert(zone, tp);
        }
    }
    w
}

/// The policies applied to the tracker so far.
#[derive(Default)]
pub struct CtPolicies {
    /// Policy row → tracker policy id.
    ids: BTreeMap<Uuid, usize>,
    /// What each id was last set to.
    applied: BTreeMap<Uuid, TimeoutPolicy>,
    /// Zones pointed at a non-default policy id.
    zones: BTreeMap<u16, usize>,
    last_problems: Vec<String>,
}

impl CtPolicies {
    /// Applies the timeout policies of `data` to `ct`.
    pub fn reconcile(&mut self, ct: &Conntrack, data: &Data) {
        let mut problems = Vec::new();
        let w = wanted_from_data(data, &mut problems);
        self.apply(ct, &w, &mut problems);
        if problems != self.last_problems {
            for p in &problems {
                warn!("conntrack timeout policies: {p}");
            }
            self.last_problems = problems;
        }
    }

    fn apply(&mut self, ct: &Conntrack, w: &WantedPolicies, problems: &mut Vec<String>) {
        // Policies that went away free their ids (back to the defaults, for
        // connections still holding the id).
        let gone: Vec<Uuid> = self
            .ids
            .keys()
            .filter(|u| !w.policies.contains_key(u))
            .copied()
            .collect();
        for u in gone {
            if let Some(id) = self.ids.remove(&u) {
                let _ = ct.set_timeout_policy(id, &TimeoutPolicy::default());
            }
            self.applied.remove(&u);
        }
        for (u, p) in &w.policies {
            let id = match self.ids.get(u) {
                Some(&id) => id,
                None => {
                    let Some(id) = (1..MAX_POLICIES).find(|i| !self.ids.values().any(|x| x == i))
                    else {
                        problems.push(format!(
                            "CT_Timeout_Policy {u}: more than {} policies, its zones use the defaults",
                            MAX_POLICIES - 1
                        ));
                        continue;
                    };
                    self.ids.insert(*u, id);
                    id
                }
            };
            if self.applied.get(u) != Some(p) {
                if ct.set_timeout_policy(id, p).is_ok() {
                    info!("conntrack timeout policy {u} (id {id}): {:?}", p.resolved());
                }
                self.applied.insert(*u, *p);
            }
        }
        let mut zones = BTreeMap::new();
        for (&zone, tp) in &w.zones {
            if let Some(&id) = tp.as_ref().and_then(|u| self.ids.get(u)) {
                zones.insert(zone, id);
            }
        }
        for (&zone, &id) in &self.zones {
            if !zones.contains_key(&zone) {
                let _ = ct.set_zone_timeout_policy(zone, 0);
                info!("conntrack zone {zone}: default timeouts (was policy id {id})");
            }
        }
        for (&zone, &id) in &zones {
            if self.zones.get(&zone) != Some(&id) {
                let _ = ct.set_zone_timeout_policy(zone, id);
                info!("conntrack zone {zone}: timeout policy id {id}");
            }
        }
        self.zones = zones;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conntrack::CtConfig;
    use serde_json::json;

    fn ok(db: &ovsdb::Db, ops: serde_json::Value) {
        let r = db.transact(ops);
        assert!(r.iter().all(|r| r.get("error").is_none()), "{r:?}");
    }

    /// What `ovs-vsctl add-zone-tp netdev zone=5 udp_first=1 ...` leaves.
    fn db_with_zone_policy() -> ovsdb::Db {
        let db = ovsdb::Db::in_memory();
        ok(
            &db,
            json!(["Open_vSwitch",
                {"op": "insert", "table": "CT_Timeout_Policy", "uuid-name": "tp",
                 "row": {"timeouts": ["map", [["udp_first", 1], ["udp_single", 2],
                                              ["tcp_unack", 9]]]}},
                {"op": "insert", "table": "CT_Zone", "uuid-name": "z5",
                 "row": {"timeout_policy": ["named-uuid", "tp"]}},
                {"op": "insert", "table": "CT_Zone", "uuid-name": "z6", "row": {}},
                {"op": "insert", "table": "Datapath", "uuid-name": "d",
                 "row": {"ct_zones": ["map", [[5, ["named-uuid", "z5"]],
                                              [6, ["named-uuid", "z6"]]]]}},
                {"op": "update", "table": "Open_vSwitch", "where": [],
                 "row": {"datapaths": ["map", [["netdev", ["named-uuid", "d"]]]]}}]),
        );
        db
    }

    #[test]
    fn zone_policies_are_read_through_datapath_ct_zone_and_timeout_policy() {
        let db = db_with_zone_policy();
        let mut problems = Vec::new();
        let w = wanted_from_data(&db.snapshot(), &mut problems);
        assert_eq!(problems, Vec::<String>::new());
        assert_eq!(w.zones.len(), 2);
        assert_eq!(w.zones[&6], None);
        let tp = w.zones[&5].unwrap();
        let r = w.policies[&tp].resolved();
        assert_eq!(r[TimeoutAttr::UdpFirst as usize], 1);
        assert_eq!(r[TimeoutAttr::UdpSingle as usize], 2);
        assert_eq!(r[TimeoutAttr::UdpMultiple as usize], 30);
    }

    #[test]
    fn applying_points_zones_at_policies_and_removal_restores_defaults() {
        let db = db_with_zone_policy();
        let ct = Conntrack::new(CtConfig::default());
        let mut ps = CtPolicies::default();
        ps.reconcile(&ct, &db.snapshot());
        assert_eq!(ps.zones.len(), 1);
        let id = ps.zones[&5];
        assert_ne!(id, 0);
        // The same DB again changes nothing.
        ps.reconcile(&ct, &db.snapshot());
        assert_eq!(ps.zones[&5], id);
        // `ovs-vsctl del-zone-tp netdev zone=5`: the zone and its policy go.
        ok(
            &db,
            json!(["Open_vSwitch",
                {"op": "update", "table": "Datapath", "where": [],
                 "row": {"ct_zones": ["map", []]}}]),
        );
        ps.reconcile(&ct, &db.snapshot());
        assert!(ps.zones.is_empty());
        assert!(ps.ids.is_empty(), "the unreferenced policy was collected");
    }
}
