//! The switch's desired configuration, read from the OVSDB tables.
//!
//! vswitchd reads a snapshot of its embedded DB ([`ovsdb::Data`], typed
//! rows) and turns it into this model; [`crate::switch::Switch::apply`] then
//! makes the running switch match it. Parsing is total: a malformed value in a row is reported
//! in `problems` (and written to the row's `error`/status) rather than
//! stopping the daemon.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use ovsdb::{Data, Datum, Row};
use uuid::Uuid;

/// `Bridge.fail_mode`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum FailMode {
    /// Without a controller, behave as a learning switch (NORMAL).
    #[default]
    Standalone,
    /// Without a controller, keep the flows and never fall back.
    Secure,
}

/// `Port.vlan_mode`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VlanMode {
    Access,
    Trunk,
    NativeTagged,
    NativeUntagged,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InterfaceConfig {
    pub uuid: Uuid,
    pub name: String,
    /// `type` ("" is `system`).
    pub kind: String,
    pub options: BTreeMap<String, String>,
    pub ofport_request: Option<u32>,
    pub mtu_request: Option<u32>,
    pub mac: Option<String>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PortConfig {
    pub uuid: Uuid,
    pub name: String,
    pub interfaces: Vec<InterfaceConfig>,
    pub tag: Option<u16>,
    pub trunks: Vec<u16>,
    pub vlan_mode: Option<VlanMode>,
    /// Bond settings (used when the port has several interfaces).
    pub bond: crate::bond::BondSettings,
}

/// Where a mirror sends what it selects (`Mirror.output_port` or
/// `output_vlan`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MirrorOutput {
    /// The name of a Port of the bridge.
    Port(String),
    Vlan(u16),
}

/// A `Mirror` row, with Port references as port names.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct MirrorConfig {
    pub uuid: Uuid,
    pub name: String,
    pub select_all: bool,
    pub select_src_port: Vec<String>,
    pub select_dst_port: Vec<String>,
    pub select_vlan: Vec<u16>,
    pub output: Option<MirrorOutput>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ControllerConfig {
    pub uuid: Uuid,
    pub target: String,
    /// Milliseconds; `None` means the default (5 s).
    pub inactivity_probe: Option<u64>,
    /// Milliseconds; `None` means the default (8 s).
    pub max_backoff: Option<u64>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BridgeConfig {
    pub uuid: Uuid,
    pub name: String,
    pub fail_mode: FailMode,
    /// Allowed OpenFlow versions (`OpenFlow10`, `OpenFlow13`); empty = both.
    pub protocols: Vec<String>,
    pub controllers: Vec<ControllerConfig>,
    pub other_config: BTreeMap<String, String>,
    /// `datapath_type` ("" is the default, `netdev`).
    pub datapath_type: String,
    pub ports: BTreeMap<String, PortConfig>,
    pub mirrors: Vec<MirrorConfig>,
}

impl BridgeConfig {
    /// `other_config:datapath-id` (16 hex digits, `0x` allowed), if set and valid.
    pub fn datapath_id(&self) -> Option<u64> {
        let s = self.other_config.get("datapath-id")?;
        let s = s.strip_prefix("0x").unwrap_or(s);
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(s, 16).ok()
    }

    /// `other_config:hwaddr`, if set to a unicast, non-zero MAC.
    pub fn hwaddr(&self) -> Option<[u8; 6]> {
        let s = self.other_config.get("hwaddr")?;
        let mut mac = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut mac {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 2 {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        if parts.next().is_some() || mac[0] & 1 != 0 || mac == [0; 6] {
            return None;
        }
        Some(mac)
    }

    /// The bridge's datapath id as OVS chooses it: `other_config:datapath-id`,
    /// else `other_config:hwaddr`, else `local_mac` (the MAC of the bridge's
    /// own port), a MAC filling the low 48 bits.
    pub fn dpid(&self, local_mac: [u8; 6]) -> u64 {
        let from_mac = |m: [u8; 6]| m.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        self.datapath_id()
            .unwrap_or_else(|| from_mac(self.hwaddr().unwrap_or(local_mac)))
    }

    /// `other_config:mac-aging-time` in seconds (default 300).
    pub fn mac_aging_secs(&self) -> u64 {
        self.other_config
            .get("mac-aging-time")
            .and_then(|s| s.parse().ok())
            .unwrap_or(300)
    }

    /// `other_config:mac-table-size` (default 8192).
    pub fn mac_table_size(&self) -> usize {
        self.other_config
            .get("mac-table-size")
            .and_then(|s| s.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(8192)
    }
}

/// The whole desired configuration.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SwitchConfig {
    /// The root (`Open_vSwitch`) row.
    pub root: Option<Uuid>,
    pub next_cfg: i64,
    pub other_config: BTreeMap<String, String>,
    pub bridges: BTreeMap<String, BridgeConfig>,
    /// Manager targets (`ptcp:PORT:IP` opens another DB listener).
    pub managers: Vec<String>,
    /// Things in the DB that could not be understood, for the log.
    pub problems: Vec<String>,
}

impl SwitchConfig {
    /// `other_config:pmd-cpu-mask` as a list of CPUs.
    pub fn pmd_cpus(&self) -> Option<Vec<usize>> {
        let s = self.other_config.get("pmd-cpu-mask")?;
        let s = s.strip_prefix("0x").unwrap_or(s);
        let mask = u128::from_str_radix(s, 16).ok()?;
        Some((0..128).filter(|b| mask & (1u128 << b) != 0).collect())
    }

    /// `other_config:flow-restore-wait=true`: the datapath receives
    /// nothing and no controller is contacted until it goes back to false
    /// (or away), so that a restarted switch forwards only with the flows
    /// restored into it.
    pub fn flow_restore_wait(&self) -> bool {
        self.other_config
            .get("flow-restore-wait")
            .is_some_and(|v| v.trim() == "true")
    }

    /// `other_config:emc-insert-inv-prob`: a megaflow hit is cached in the
    /// EMC with probability 1 / this (0: never), as in OVS; its default
    /// when unset or not an integer in 0..=4294967295, as OVS does too.
    pub fn emc_insert_inv_prob(&self) -> u32 {
        self.other_config
            .get("emc-insert-inv-prob")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(datapath::EMC_INSERT_INV_PROB_DEFAULT)
    }

    /// `other_config:pmd-maxsleep` (microseconds, as in OVS); `None` when
    /// unset or not a number.
    pub fn pmd_max_sleep(&self) -> Option<std::time::Duration> {
        let us: u64 = self.other_config.get("pmd-maxsleep")?.trim().parse().ok()?;
        Some(std::time::Duration::from_micros(us))
    }

    /// Where vhost-user server sockets go and who may connect to them:
    /// `other_config:vhost-sock-dir` (relative to the run directory),
    /// `vhost-sock-mode` (octal, default `0600`) and `vhost-sock-group`
    /// (a group name or number; default the daemon's group).
    pub fn vhost_sock(&self) -> Result<VhostSockConfig, String> {
        let dir = match self.other_config.get("vhost-sock-dir") {
            None => PathBuf::new(),
            Some(d) => relative_dir(d).ok_or_else(|| {
                format!("other_config:vhost-sock-dir {d:?}: must be a path inside the run directory (relative, without \"..\")")
            })?,
        };
        let mut perms = vhost_port::SocketPerms::default();
        if let Some(m) = self.other_config.get("vhost-sock-mode") {
            perms.mode = u32::from_str_radix(m, 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| {
                    format!("other_config:vhost-sock-mode {m:?}: not an octal mode (e.g. 0660)")
                })?;
        }
        if let Some(g) = self.other_config.get("vhost-sock-group") {
            perms.gid =
                Some(group_id(g).ok_or_else(|| {
                    format!("other_config:vhost-sock-group {g:?}: no such group")
                })?);
        }
        Ok(VhostSockConfig { dir, perms })
    }
}

/// Where and how vhost-user server sockets are made.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct VhostSockConfig {
    /// Directory relative to the run directory (empty: the run directory).
    pub dir: PathBuf,
    pub perms: vhost_port::SocketPerms,
}

/// `d` as a relative path that stays below the directory it is joined to.
fn relative_dir(d: &str) -> Option<PathBuf> {
    let p = Path::new(d);
    p.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        .then(|| p.to_path_buf())
}

/// A group by name or number.
fn group_id(g: &str) -> Option<u32> {
    if let Ok(n) = g.parse::<u32>() {
        return Some(n);
    }
    nix::unistd::Group::from_name(g)
        .ok()
        .flatten()
        .map(|gr| gr.gid.as_raw())
}

// ----- Reading the configuration from the DB's typed rows -----

/// A row's column as a datum (an empty set when the column is absent).
fn col<'a>(row: &'a Row, name: &str) -> &'a Datum {
    static EMPTY: std::sync::OnceLock<Datum> = std::sync::OnceLock::new();
    row.get(name)
        .unwrap_or_else(|| EMPTY.get_or_init(Datum::empty_set))
}

/// A scalar string column ("" when unset).
fn string(row: &Row, name: &str) -> String {
    row.get_str(name).unwrap_or_default().to_owned()
}

/// An optional string column.
fn opt_string(row: &Row, name: &str) -> Option<String> {
    col(row, name).strings().first().map(|s| (*s).to_owned())
}

/// An optional integer column.
fn opt_int(row: &Row, name: &str) -> Option<i64> {
    col(row, name).integers().first().copied()
}

/// A string-to-string map column.
fn string_map(row: &Row, name: &str) -> BTreeMap<String, String> {
    col(row, name).to_string_map()
}

impl SwitchConfig {
    /// Builds the configuration from a snapshot of the DB, following the
    /// references from the root row as OVS does (rows nothing refers to are
    /// ignored).
    pub fn from_data(data: &Data) -> SwitchConfig {
        let mut cfg = SwitchConfig::default();
        let Some((root_uuid, root)) = data.table("Open_vSwitch").iter().next() else {
            cfg.problems
                .push("the Open_vSwitch table has no row".into());
            return cfg;
        };
        cfg.root = Some(*root_uuid);
        cfg.next_cfg = opt_int(root, "next_cfg").unwrap_or(0);
        cfg.other_config = string_map(root, "other_config");
        for m in col(root, "manager_options").uuids() {
            if let Some(row) = data.row("Manager", &m) {
                cfg.managers.push(string(row, "target"));
            }
        }
        for b in col(root, "bridges").uuids() {
            let Some(row) = data.row("Bridge", &b) else {
                continue;
            };
            let name = string(row, "name");
            if name.is_empty() {
                cfg.problems.push(format!("bridge {b} has no name"));
                continue;
            }
            let fail_mode = match opt_string(row, "fail_mode").as_deref() {
                Some("secure") => FailMode::Secure,
                _ => FailMode::Standalone,
            };
            let controllers = col(row, "controller")
                .uuids()
                .into_iter()
                .filter_map(|u| {
                    let r = data.row("Controller", &u)?;
                    let ms = |c: &str| opt_int(r, c).and_then(|n| u64::try_from(n).ok());
                    Some(ControllerConfig {
                        uuid: u,
                        target: string(r, "target"),
                        inactivity_probe: ms("inactivity_probe"),
                        max_backoff: ms("max_backoff"),
                    })
                })
                .collect();
            let mut bc = BridgeConfig {
                uuid: b,
                name: name.clone(),
                fail_mode,
                protocols: col(row, "protocols")
                    .strings()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                controllers,
                other_config: string_map(row, "other_config"),
                datapath_type: string(row, "datapath_type"),
                ports: BTreeMap::new(),
                mirrors: col(row, "mirrors")
                    .uuids()
                    .into_iter()
                    .filter_map(|m| Some(mirror_from_row(data, m, data.row("Mirror", &m)?)))
                    .collect(),
            };
            for p in col(row, "ports").uuids() {
                let Some(prow) = data.row("Port", &p) else {
                    continue;
                };
                match port_from_row(data, p, prow) {
                    Ok(pc) => {
                        bc.ports.insert(pc.name.clone(), pc);
                    }
                    Err(e) => cfg.problems.push(format!("bridge {name}: {e}")),
                }
            }
            cfg.bridges.insert(name, bc);
        }
        cfg
    }
}

fn vlan_id(name: &str, what: &str, v: i64) -> Result<u16, String> {
    u16::try_from(v)
        .ok()
        .filter(|v| *v < 4096)
        .ok_or_else(|| format!("port {name}: {what} {v} is not a VLAN id (0-4095)"))
}

fn mirror_from_row(data: &Data, uuid: Uuid, row: &Row) -> MirrorConfig {
    let port_names = |c: &str| -> Vec<String> {
        col(row, c)
            .uuids()
            .into_iter()
            .filter_map(|p| data.row("Port", &p).map(|r| string(r, "name")))
            .collect()
    };
    let output = match port_names("output_port").into_iter().next() {
        Some(p) => Some(MirrorOutput::Port(p)),
        None => opt_int(row, "output_vlan")
            .and_then(|v| u16::try_from(v).ok())
            .filter(|v| (1..4096).contains(v))
            .map(MirrorOutput::Vlan),
    };
    MirrorConfig {
        uuid,
        name: string(row, "name"),
        select_all: matches!(
            col(row, "select_all"),
            ovsdb::Datum::Set(s) if s.iter().any(|a| matches!(a, ovsdb::Atom::Boolean(true)))
        ),
        select_src_port: port_names("select_src_port"),
        select_dst_port: port_names("select_dst_port"),
        select_vlan: col(row, "select_vlan")
            .integers()
            .into_iter()
            .filter_map(|v| u16::try_from(v).ok().filter(|v| *v < 4096))
            .collect(),
        output,
    }
}

fn port_from_row(data: &Data, uuid: Uuid, row: &Row) -> Result<PortConfig, String> {
    let name = string(row, "name");
    if name.is_empty() {
        return Err(format!("port {uuid} has no name"));
    }
    let tag = opt_int(row, "tag")
        .map(|t| vlan_id(&name, "tag", t))
        .transpose()?;
    let mut trunks = col(row, "trunks")
        .integers()
        .into_iter()
        .map(|t| vlan_id(&name, "trunk", t))
        .collect::<Result<Vec<_>, _>>()?;
    trunks.sort_unstable();
    let vlan_mode = match opt_string(row, "vlan_mode").as_deref() {
        None => None,
        Some("access") => Some(VlanMode::Access),
        Some("trunk") => Some(VlanMode::Trunk),
        Some("native-tagged") => Some(VlanMode::NativeTagged),
        Some("native-untagged") => Some(VlanMode::NativeUntagged),
        Some(other) => return Err(format!("port {name}: unknown vlan_mode {other}")),
    };
    let mut interfaces = Vec::new();
    for i in col(row, "interfaces").uuids() {
        let Some(irow) = data.row("Interface", &i) else {
            continue;
        };
        interfaces.push(InterfaceConfig {
            uuid: i,
            name: string(irow, "name"),
            kind: string(irow, "type"),
            options: string_map(irow, "options"),
            ofport_request: opt_int(irow, "ofport_request")
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1..0xff00).contains(n)),
            mtu_request: opt_int(irow, "mtu_request").and_then(|n| u32::try_from(n).ok()),
            mac: opt_string(irow, "mac"),
        });
    }
    let bond = crate::bond::BondSettings::parse(
        &name,
        opt_string(row, "bond_mode").as_deref(),
        opt_string(row, "lacp").as_deref(),
        opt_int(row, "bond_updelay"),
        opt_int(row, "bond_downdelay"),
        &string_map(row, "other_config"),
    )?;
    Ok(PortConfig {
        uuid,
        name,
        interfaces,
        tag,
        trunks,
        vlan_mode,
        bond,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A DB holding one bridge with three ports (one of them invalid) and a controller.
    fn sample() -> Data {
        let db = ovsdb::Db::in_memory();
        let r = db.transact(json!(["Open_vSwitch",
            {"op": "insert", "table": "Interface", "uuid-name": "i1",
             "row": {"name": "eth1", "ofport_request": 3}},
            {"op": "insert", "table": "Interface", "uuid-name": "i2",
             "row": {"name": "eth2", "type": "tap", "options": ["map", [["k", "v"]]]}},
            {"op": "insert", "table": "Interface", "uuid-name": "i3", "row": {"name": "bad"}},
            {"op": "insert", "table": "Port", "uuid-name": "p1",
             "row": {"name": "eth1", "tag": 10, "interfaces": ["named-uuid", "i1"]}},
            {"op": "insert", "table": "Port", "uuid-name": "p2",
             "row": {"name": "eth2", "trunks": ["set", [20, 10]], "vlan_mode": "trunk",
                     "interfaces": ["named-uuid", "i2"]}},
            {"op": "insert", "table": "Port", "uuid-name": "p3",
             "row": {"name": "", "interfaces": ["named-uuid", "i3"]}},
            {"op": "insert", "table": "Controller", "uuid-name": "c1",
             "row": {"target": "tcp:127.0.0.1:6653", "max_backoff": 1000}},
            {"op": "insert", "table": "Bridge", "uuid-name": "b1",
             "row": {"name": "br0", "fail_mode": "secure", "protocols": "OpenFlow13",
                     "controller": ["named-uuid", "c1"], "datapath_type": "netdev",
                     "other_config": ["map", [["datapath-id", "00000000000000aa"]]],
                     "ports": ["set", [["named-uuid", "p1"], ["named-uuid", "p2"], ["named-uuid", "p3"]]]}},
            {"op": "update", "table": "Open_vSwitch", "where": [],
             "row": {"next_cfg": 7, "bridges": ["named-uuid", "b1"],
                     "other_config": ["map", [["pmd-cpu-mask", "0x6"]]]}}
        ]));
        assert!(r.iter().all(|r| r.get("error").is_none()), "{r:?}");
        db.snapshot()
    }

    #[test]
    fn emc_insert_inv_prob_defaults_to_ovs_100_and_takes_0_and_any_u32() {
        let mut cfg = SwitchConfig::default();
        assert_eq!(cfg.emc_insert_inv_prob(), 100);
        for (v, want) in [("0", 0), ("1", 1), (" 20 ", 20), ("4294967295", u32::MAX)] {
            cfg.other_config
                .insert("emc-insert-inv-prob".into(), v.into());
            assert_eq!(cfg.emc_insert_inv_prob(), want, "{v:?}");
        }
        for bad in ["-1", "4294967296", "often", ""] {
            cfg.other_config
                .insert("emc-insert-inv-prob".into(), bad.into());
            assert_eq!(cfg.emc_insert_inv_prob(), 100, "{bad:?}");
        }
    }

    #[test]
    fn pmd_maxsleep_is_read_in_microseconds_and_garbage_is_unset() {
        let mut cfg = SwitchConfig::default();
        assert_eq!(cfg.pmd_max_sleep(), None);
        cfg.other_config.insert("pmd-maxsleep".into(), "50".into());
        assert_eq!(
            cfg.pmd_max_sleep(),
            Some(std::time::Duration::from_micros(50))
        );
        cfg.other_config.insert("pmd-maxsleep".into(), "-1".into());
        assert_eq!(cfg.pmd_max_sleep(), None);
    }

    #[test]
    fn db_rows_become_bridges_ports_and_interfaces() {
        let cfg = SwitchConfig::from_data(&sample());
        assert_eq!(cfg.next_cfg, 7);
        assert_eq!(cfg.pmd_cpus(), Some(vec![1, 2]));
        let br = &cfg.bridges["br0"];
        assert_eq!(br.fail_mode, FailMode::Secure);
        assert_eq!(br.protocols, vec!["OpenFlow13"]);
        assert_eq!(br.datapath_id(), Some(0xaa));
        assert_eq!(br.datapath_type, "netdev");
        assert_eq!(br.controllers[0].target, "tcp:127.0.0.1:6653");
        assert_eq!(br.controllers[0].max_backoff, Some(1000));
        assert_eq!(br.controllers[0].inactivity_probe, None);
        let p1 = &br.ports["eth1"];
        assert_eq!(p1.tag, Some(10));
        assert_eq!(p1.interfaces[0].ofport_request, Some(3));
        let p2 = &br.ports["eth2"];
        assert_eq!(p2.trunks, vec![10, 20]);
        assert_eq!(p2.vlan_mode, Some(VlanMode::Trunk));
        assert_eq!(p2.interfaces[0].kind, "tap");
        assert_eq!(p2.interfaces[0].options["k"], "v");
    }

    #[test]
    fn a_port_without_a_name_is_reported_and_the_rest_of_the_bridge_kept() {
        let cfg = SwitchConfig::from_data(&sample());
        assert_eq!(cfg.bridges["br0"].ports.len(), 2);
        assert!(
            cfg.problems.iter().any(|p| p.contains("has no name")),
            "{:?}",
            cfg.problems
        );
    }

    fn bridge_with(pairs: &[(&str, &str)]) -> BridgeConfig {
        let mut b = SwitchConfig::from_data(&sample()).bridges["br0"].clone();
        b.other_config = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        b
    }

    /// Expected values from stock OVS 3.1 on this machine (`ovs-vsctl get
    /// bridge B datapath_id` after setting the same other_config).
    #[test]
    fn datapath_id_follows_datapath_id_then_hwaddr_then_the_local_mac() {
        let local = [0x1e, 0x26, 0x34, 0x05, 0xec, 0x43];
        let dpid = |p: &[(&str, &str)]| format!("{:016x}", bridge_with(p).dpid(local));
        assert_eq!(dpid(&[]), "00001e263405ec43");
        assert_eq!(dpid(&[("hwaddr", "02:11:22:33:44:55")]), "0000021122334455");
        assert_eq!(
            dpid(&[("datapath-id", "00000000000000ab")]),
            "00000000000000ab"
        );
        assert_eq!(
            dpid(&[("datapath-id", "0x00000000000000ab")]),
            "00000000000000ab"
        );
        // A short datapath-id is invalid: hwaddr decides.
        assert_eq!(
            dpid(&[("datapath-id", "ab"), ("hwaddr", "02:00:00:00:00:01")]),
            "0000020000000001"
        );
        assert_eq!(
            dpid(&[
                ("datapath-id", "00000000000000cd"),
                ("hwaddr", "02:00:00:00:00:01")
            ]),
            "00000000000000cd"
        );
        // Multicast or malformed hwaddr: the local MAC.
        assert_eq!(dpid(&[("hwaddr", "03:00:00:00:00:01")]), "00001e263405ec43");
        assert_eq!(dpid(&[("hwaddr", "bad")]), "00001e263405ec43");
    }

    #[test]
    fn a_missing_root_row_is_a_problem_not_a_panic() {
        let cfg = SwitchConfig::from_data(&Data::default());
        assert!(cfg.bridges.is_empty());
        assert!(!cfg.problems.is_empty());
    }

    fn with_other_config(pairs: &[(&str, &str)]) -> SwitchConfig {
        let mut cfg = SwitchConfig::default();
        for (k, v) in pairs {
            cfg.other_config.insert(k.to_string(), v.to_string());
        }
        cfg
    }

    #[test]
    fn vhost_sock_defaults_to_the_run_directory_owner_only() {
        let v = SwitchConfig::default().vhost_sock().unwrap();
        assert_eq!(v.dir, PathBuf::new());
        assert_eq!(v.perms.mode, 0o600);
        assert_eq!(v.perms.gid, None);
    }

    #[test]
    fn vhost_sock_settings_are_read_and_checked() {
        let v = with_other_config(&[
            ("vhost-sock-dir", "vhost/socks"),
            ("vhost-sock-mode", "0660"),
            ("vhost-sock-group", "0"),
        ])
        .vhost_sock()
        .unwrap();
        assert_eq!(v.dir, PathBuf::from("vhost/socks"));
        assert_eq!(v.perms.mode, 0o660);
        assert_eq!(v.perms.gid, Some(0));
        for bad in ["../x", "/tmp", "a/../../b"] {
            let e = with_other_config(&[("vhost-sock-dir", bad)])
                .vhost_sock()
                .unwrap_err();
            assert!(e.contains("vhost-sock-dir"), "{e}");
        }
        assert!(
            with_other_config(&[("vhost-sock-mode", "rw")])
                .vhost_sock()
                .is_err()
        );
        assert!(
            with_other_config(&[("vhost-sock-mode", "1777")])
                .vhost_sock()
                .is_err()
        );
        assert!(
            with_other_config(&[("vhost-sock-group", "no-such-group-here")])
                .vhost_sock()
                .is_err()
        );
    }
}
