//! The one place where vswitchd writes runtime state back to its DB: interface
//! status and statistics, controller connection state, bridge datapath ids,
//! `cur_cfg`, what the switch supports (`iface_types`, `datapath_types`) and
//! the capabilities of `Datapath` rows.
//!
//! Everything is compared with the rows as last read, and only columns whose
//! value differs are written: the columns a controller owns (`external_ids`,
//! `other_config`, `options`, ...) are never touched.

use std::collections::BTreeMap;

use ovsdb::ops::{Op, Target};
use ovsdb::{Data, Datum, Row};
use uuid::Uuid;

use crate::capabilities;
use crate::config::SwitchConfig;

/// Runtime facts about one interface, written back to its DB row.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct IfaceStatus {
    pub uuid: Uuid,
    pub name: String,
    pub ofport: i64,
    pub error: Option<String>,
    pub mac_in_use: Option<String>,
    pub link_up: bool,
    pub admin_up: bool,
    /// The MTU in use, for ports that have one.
    pub mtu: Option<i64>,
    /// The `status` column, for interfaces whose status the switch owns
    /// (tunnels); `None` leaves the column alone.
    pub status: Option<BTreeMap<String, String>>,
    /// `lacp_current`, for members of a bond running LACP (`None`: empty).
    pub lacp_current: Option<bool>,
}

/// Connection state of one controller, for its `Controller` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerStatus {
    pub uuid: Uuid,
    pub connected: bool,
    /// `master`, `slave`, `other` (empty when unknown).
    pub role: String,
    /// The `status` map (`state`, `sec_since_connect`, `last_error`, ...).
    pub status: BTreeMap<String, String>,
}

/// What the daemon knows at one pass of the reconciler.
pub struct Runtime<'a> {
    pub cfg: &'a SwitchConfig,
    pub ifaces: &'a [IfaceStatus],
    pub controllers: &'a [ControllerStatus],
    /// Datapath ids by bridge name.
    pub dpids: &'a BTreeMap<String, u64>,
    /// Interface statistics by interface name, when it is time to write them.
    pub stats: Option<&'a BTreeMap<String, BTreeMap<&'static str, u64>>>,
    /// Packets and bytes per Mirror row, written with the statistics.
    pub mirror_stats: &'a BTreeMap<uuid::Uuid, (u64, u64)>,
}

/// The columns of `want` whose value differs from `row`'s.
fn differing(row: &Row, want: Vec<(&str, Datum)>) -> BTreeMap<String, Datum> {
    want.into_iter()
        .filter(|(c, d)| row.get(c) != Some(d))
        .map(|(c, d)| (c.to_owned(), d))
        .collect()
}

fn push_update(ops: &mut Vec<Op>, table: &str, target: Target, columns: BTreeMap<String, Datum>) {
    if !columns.is_empty() {
        ops.push(Op::Update {
            table: table.to_owned(),
            target,
            columns,
        });
    }
}

/// The `status` key that reports BFD as unsupported on an Interface whose
/// `bfd:enable` is true.
pub const BFD_STATUS_KEY: &str = "bfd";
/// Its value.
pub const BFD_UNSUPPORTED: &str = "unsupported";

/// Whether the Interface row asks for BFD (`bfd:enable=true`, as OVS reads it).
fn bfd_requested(row: &Row) -> bool {
    row.get("bfd")
        .is_some_and(|d| d.to_string_map().get("enable").map(String::as_str) == Some("true"))
}

/// The `status` map to write when BFD has to be reported: with
/// `bfd=unsupported` added while the row asks for BFD, without it once the
/// row no longer does. `computed` is the switch's own status for the
/// interface (tunnels), `None` when the switch does not own the column, in
/// which case the other keys of the row's current status are kept. `None`
/// when BFD changes nothing.
fn bfd_status_entry(
    row: &Row,
    name: &str,
    computed: Option<&BTreeMap<String, String>>,
) -> Option<BTreeMap<String, String>> {
    let current = row
        .get("status")
        .map(Datum::to_string_map)
        .unwrap_or_default();
    let requested = bfd_requested(row);
    if !requested && !current.contains_key(BFD_STATUS_KEY) {
        return None;
    }
    let mut status = computed.cloned().unwrap_or_else(|| current.clone());
    if requested {
        if current.get(BFD_STATUS_KEY).map(String::as_str) != Some(BFD_UNSUPPORTED) {
            tracing::warn!(
                interface = name,
                "bfd:enable=true ignored: ferrovs does not run BFD (status:{BFD_STATUS_KEY}={BFD_UNSUPPORTED}, bfd_status left empty)"
            );
        }
        status.insert(BFD_STATUS_KEY.to_owned(), BFD_UNSUPPORTED.to_owned());
    } else {
        status.remove(BFD_STATUS_KEY);
    }
    Some(status)
}

/// The write operations that bring the DB in line with `rt`; `data` is the
/// snapshot `rt.cfg` was read from.
pub fn status_ops(data: &Data, rt: &Runtime) -> Vec<Op> {
    let mut ops = Vec::new();
    let up_down = |b: bool| Datum::string(if b { "up" } else { "down" });
    for s in rt.ifaces {
        let Some(row) = data.row("Interface", &s.uuid) else {
            continue;
        };
        let mut want = vec![
            ("ofport", Datum::integer(s.ofport)),
            ("error", Datum::opt_string(s.error.clone())),
            ("mac_in_use", Datum::opt_string(s.mac_in_use.clone())),
            ("link_state", up_down(s.link_up)),
            ("admin_state", up_down(s.admin_up)),
            ("mtu", s.mtu.map_or_else(Datum::empty_set, Datum::integer)),
            (
                "lacp_current",
                s.lacp_current.map_or_else(Datum::empty_set, |b| {
                    Datum::scalar(ovsdb::datum::Atom::Boolean(b))
                }),
            ),
        ];
        let status = bfd_status_entry(row, &s.name, s.status.as_ref());
        if let Some(status) = status.as_ref().or(s.status.as_ref()) {
            want.push(("status", Datum::string_map(status.iter())));
        }
        // ferrovs runs no BFD session: `bfd_status` stays empty, whatever an
        // earlier switch on this DB left there (a stale `forwarding=true`
        // would tell OVN a tunnel is alive).
        if row
            .get("bfd_status")
            .is_some_and(|d| !d.to_string_map().is_empty())
        {
            want.push((
                "bfd_status",
                Datum::string_map(BTreeMap::<String, String>::new()),
            ));
        }
        if let Some(stats) = rt.stats.and_then(|st| st.get(&s.name)) {
            want.push((
                "statistics",
                Datum::string_int_map(
                    stats
                        .iter()
                        .map(|(k, v)| (*k, i64::try_from(*v).unwrap_or(i64::MAX))),
                ),
            ));
        }
        push_update(
            &mut ops,
            "Interface",
            Target::Row(s.uuid),
            differing(row, want),
        );
    }
    for c in rt.controllers {
        let Some(row) = data.row("Controller", &c.uuid) else {
            continue;
        };
        let role = Datum::opt_string(Some(c.role.clone()).filter(|r| c.connected && !r.is_empty()));
        let mut want = vec![
            ("is_connected", Datum::boolean(c.connected)),
            ("role", role),
        ];
        // The seconds in `status` tick every pass: rewrite it only when the
        // state itself changed, as before.
        let state_now = row
            .get("status")
            .map(Datum::to_string_map)
            .and_then(|m| m.get("state").cloned());
        if state_now.as_deref() != c.status.get("state").map(String::as_str)
            || row.get("is_connected") != Some(&Datum::boolean(c.connected))
            || row.get("role") != Some(&want[1].1)
        {
            want.push(("status", Datum::string_map(c.status.clone())));
        }
        push_update(
            &mut ops,
            "Controller",
            Target::Row(c.uuid),
            differing(row, want),
        );
    }
    if rt.stats.is_some() {
        for m in rt.cfg.bridges.values().flat_map(|b| &b.mirrors) {
            let Some(row) = data.row("Mirror", &m.uuid) else {
                continue;
            };
            let (p, b) = rt.mirror_stats.get(&m.uuid).copied().unwrap_or_default();
            let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            let want = vec![(
                "statistics",
                Datum::string_int_map([("tx_packets", clamp(p)), ("tx_bytes", clamp(b))]),
            )];
            push_update(
                &mut ops,
                "Mirror",
                Target::Row(m.uuid),
                differing(row, want),
            );
        }
    }
    for br in rt.cfg.bridges.values() {
        let (Some(row), Some(dpid)) = (data.row("Bridge", &br.uuid), rt.dpids.get(&br.name)) else {
            continue;
        };
        let want = vec![("datapath_id", Datum::string(format!("{dpid:016x}")))];
        push_update(
            &mut ops,
            "Bridge",
            Target::Row(br.uuid),
            differing(row, want),
        );
    }
    let Some(root_uuid) = rt.cfg.root else {
        return ops;
    };
    let Some(root) = data.row("Open_vSwitch", &root_uuid) else {
        return ops;
    };
    let want = vec![
        ("cur_cfg", Datum::integer(rt.cfg.next_cfg)),
        (
            "iface_types",
            Datum::string_set(capabilities::IFACE_TYPES.iter().copied()),
        ),
        (
            "datapath_types",
            Datum::string_set(capabilities::DATAPATH_TYPES.iter().copied()),
        ),
    ];
    push_update(
        &mut ops,
        "Open_vSwitch",
        Target::Row(root_uuid),
        differing(root, want),
    );
    // Datapath rows are created by whoever wants one (ovn-controller, vsctl);
    // the switch fills in the capabilities of the types it runs, as OVS does.
    if let Some(Datum::Map(dps)) = root.get("datapaths") {
        for (ty, dp) in dps {
            let (Some(ty), Some(dp)) = (ty.as_str(), dp.as_uuid()) else {
                continue;
            };
            if !capabilities::is_our_datapath_type(ty) {
                continue;
            }
            let Some(row) = data.row("Datapath", &dp) else {
                continue;
            };
            let want = vec![(
                "capabilities",
                Datum::string_map(capabilities::datapath_capabilities()),
            )];
            push_update(&mut ops, "Datapath", Target::Row(dp), differing(row, want));
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(db: &ovsdb::Db, ops: serde_json::Value) -> Vec<serde_json::Value> {
        let r = db.transact(ops);
        assert!(r.iter().all(|r| r.get("error").is_none()), "{r:?}");
        r
    }

    fn uuid_of(result: &serde_json::Value) -> Uuid {
        Uuid::parse_str(result["uuid"][1].as_str().unwrap()).unwrap()
    }

    /// A DB with one bridge, one interface carrying a controller's
    /// external_ids, and a `netdev` Datapath row.
    fn setup() -> (ovsdb::Db, Uuid) {
        let db = ovsdb::Db::in_memory();
        let r = ok(
            &db,
            json!(["Open_vSwitch",
                {"op": "insert", "table": "Interface", "uuid-name": "i",
                 "row": {"name": "vm1", "external_ids": ["map", [["iface-id", "lsp1"]]]}},
                {"op": "insert", "table": "Port", "uuid-name": "p",
                 "row": {"name": "vm1", "interfaces": ["named-uuid", "i"]}},
                {"op": "insert", "table": "Bridge", "uuid-name": "b",
                 "row": {"name": "br-int", "ports": ["named-uuid", "p"]}},
                {"op": "insert", "table": "Datapath", "uuid-name": "d", "row": {}},
                {"op": "update", "table": "Open_vSwitch", "where": [],
                 "row": {"next_cfg": 3, "bridges": ["named-uuid", "b"],
                         "datapaths": ["map", [["netdev", ["named-uuid", "d"]]]]}}]),
        );
        (db, uuid_of(&r[0]))
    }

    fn pass(db: &ovsdb::Db, iface: Uuid, link_up: bool) -> Vec<Op> {
        let data = db.snapshot();
        let cfg = SwitchConfig::from_data(&data);
        let ifaces = [IfaceStatus {
            uuid: iface,
            name: "vm1".into(),
            ofport: 1,
            link_up,
            admin_up: true,
            mtu: Some(1500),
            status: None,
            ..Default::default()
        }];
        let dpids = BTreeMap::from([("br-int".to_owned(), 0xab)]);
        let rt = Runtime {
            cfg: &cfg,
            ifaces: &ifaces,
            controllers: &[],
            dpids: &dpids,
            stats: None,
            mirror_stats: &BTreeMap::new(),
        };
        status_ops(&data, &rt)
    }

    #[test]
    fn status_is_written_once_and_controller_columns_are_kept() {
        let (db, iface) = setup();
        let ops = pass(&db, iface, true);
        assert!(!ops.is_empty());
        db.write(&ops).unwrap();
        // Nothing changed since: nothing to write.
        assert_eq!(pass(&db, iface, true), vec![]);
        let data = db.snapshot();
        let row = data.row("Interface", &iface).unwrap();
        assert_eq!(row.get_str("link_state"), Some("up"));
        assert_eq!(row.get("ofport"), Some(&Datum::integer(1)));
        assert_eq!(row.get("mtu"), Some(&Datum::integer(1500)));
        assert_eq!(
            row.get("external_ids").unwrap().to_string_map()["iface-id"],
            "lsp1"
        );
        let root = data.table("Open_vSwitch").values().next().unwrap();
        assert_eq!(root.get("cur_cfg"), Some(&Datum::integer(3)));
        assert!(
            root.get("iface_types")
                .unwrap()
                .strings()
                .contains(&"internal")
        );
        assert_eq!(root.get("datapath_types").unwrap().strings(), ["netdev"]);
        let br = data.table("Bridge").values().next().unwrap();
        assert_eq!(br.get_str("datapath_id"), Some("00000000000000ab"));
        let dp = data.table("Datapath").values().next().unwrap();
        let caps = dp.get("capabilities").unwrap().to_string_map();
        assert_eq!(caps["ct_state"], "true");
        assert_eq!(caps["ct_timeout"], "true");
        assert_eq!(caps["ct_eventmask"], "false");
        assert_eq!(caps["max_hash_alg"], "0");
        // A change of link state writes that one column.
        let ops = pass(&db, iface, false);
        assert_eq!(ops.len(), 1);
        let Op::Update { columns, .. } = &ops[0] else {
            panic!("{ops:?}")
        };
        assert_eq!(columns.keys().collect::<Vec<_>>(), ["link_state"]);
    }

    fn iface_row(
        db: &ovsdb::Db,
        iface: Uuid,
    ) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let data = db.snapshot();
        let row = data.row("Interface", &iface).unwrap();
        let map = |c: &str| row.get(c).map(Datum::to_string_map).unwrap_or_default();
        (map("status"), map("bfd_status"))
    }

    #[test]
    fn bfd_enable_is_reported_unsupported_in_status_and_bfd_status_stays_empty() {
        let (db, iface) = setup();
        // BFD asked for, and a bfd_status left behind by an earlier switch
        // on this DB, claiming the session forwards.
        ok(
            &db,
            json!(["Open_vSwitch",
                {"op": "update", "table": "Interface", "where": [],
                 "row": {"bfd": ["map", [["enable", "true"], ["min_tx", "100"]]],
                         "bfd_status": ["map", [["state", "up"], ["forwarding", "true"]]],
                         "status": ["map", [["driver_name", "veth"]]]}}]),
        );
        db.write(&pass(&db, iface, true)).unwrap();
        let (status, bfd_status) = iface_row(&db, iface);
        assert_eq!(
            status.get(BFD_STATUS_KEY).map(String::as_str),
            Some(BFD_UNSUPPORTED)
        );
        // The other keys of a column the switch does not own are kept.
        assert_eq!(status.get("driver_name").map(String::as_str), Some("veth"));
        assert!(bfd_status.is_empty(), "{bfd_status:?}");
        // Written once.
        assert_eq!(pass(&db, iface, true), vec![]);
        // BFD switched off: the report goes, the rest stays.
        ok(
            &db,
            json!(["Open_vSwitch",
                {"op": "update", "table": "Interface", "where": [],
                 "row": {"bfd": ["map", [["enable", "false"]]]}}]),
        );
        db.write(&pass(&db, iface, true)).unwrap();
        let (status, _) = iface_row(&db, iface);
        assert_eq!(status.get(BFD_STATUS_KEY), None);
        assert_eq!(status.get("driver_name").map(String::as_str), Some("veth"));
        assert_eq!(pass(&db, iface, true), vec![]);
    }

    #[test]
    fn a_tunnel_asking_for_bfd_reports_it_beside_its_own_status() {
        let (db, iface) = setup();
        ok(
            &db,
            json!(["Open_vSwitch",
                {"op": "update", "table": "Interface", "where": [],
                 "row": {"bfd": ["map", [["enable", "true"]]]}}]),
        );
        let data = db.snapshot();
        let row = data.row("Interface", &iface).unwrap();
        let tunnel = BTreeMap::from([("tunnel_egress_iface".to_owned(), "br-phy".to_owned())]);
        let status = bfd_status_entry(row, "vm1", Some(&tunnel)).unwrap();
        assert_eq!(status["tunnel_egress_iface"], "br-phy");
        assert_eq!(status[BFD_STATUS_KEY], BFD_UNSUPPORTED);
        // Without BFD the tunnel's own status is written as computed.
        let (db, iface) = setup();
        let data = db.snapshot();
        let row = data.row("Interface", &iface).unwrap();
        assert_eq!(bfd_status_entry(row, "vm1", Some(&tunnel)), None);
    }

    #[test]
    fn a_datapath_of_a_type_the_switch_does_not_run_is_left_alone() {
        let db = ovsdb::Db::in_memory();
        ok(
            &db,
            json!(["Open_vSwitch",
                {"op": "insert", "table": "Datapath", "uuid-name": "d", "row": {}},
                {"op": "update", "table": "Open_vSwitch", "where": [],
                 "row": {"datapaths": ["map", [["system", ["named-uuid", "d"]]]]}}]),
        );
        let data = db.snapshot();
        let cfg = SwitchConfig::from_data(&data);
        let rt = Runtime {
            cfg: &cfg,
            ifaces: &[],
            controllers: &[],
            dpids: &BTreeMap::new(),
            stats: None,
            mirror_stats: &BTreeMap::new(),
        };
        let ops = status_ops(&data, &rt);
        assert!(
            ops.iter()
                .all(|o| !matches!(o, Op::Update { table, .. } if table == "Datapath")),
            "{ops:?}"
        );
    }
}
