//! The switch's desired configuration, read from the OVSDB tables.
//!
//! vswitchd reads the DB with plain RFC 7047 `select` operations and turns
//! the rows into this model; [`crate::reconcile`] then makes the running
//! switch match it. Parsing is total: a malformed value in a row is reported
//! in `problems` (and written to the row's `error`/status) rather than
//! stopping the daemon.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

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
    pub uuid: String,
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
    pub uuid: String,
    pub name: String,
    pub interfaces: Vec<InterfaceConfig>,
    pub tag: Option<u16>,
    pub trunks: Vec<u16>,
    pub vlan_mode: Option<VlanMode>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ControllerConfig {
    pub uuid: String,
    pub target: String,
    /// Milliseconds; `None` means the default (5 s).
    pub inactivity_probe: Option<u64>,
    /// Milliseconds; `None` means the default (8 s).
    pub max_backoff: Option<u64>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BridgeConfig {
    pub uuid: String,
    pub name: String,
    pub fail_mode: FailMode,
    /// Allowed OpenFlow versions (`OpenFlow10`, `OpenFlow13`); empty = both.
    pub protocols: Vec<String>,
    pub controllers: Vec<ControllerConfig>,
    pub other_config: BTreeMap<String, String>,
    pub ports: BTreeMap<String, PortConfig>,
}

impl BridgeConfig {
    /// `other_config:datapath-id` (16 hex digits), if set and valid.
    pub fn datapath_id(&self) -> Option<u64> {
        let s = self.other_config.get("datapath-id")?;
        let s = s.strip_prefix("0x").unwrap_or(s);
        if s.len() != 16 {
            return None;
        }
        u64::from_str_radix(s, 16).ok()
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

// ----- OVSDB datum decoding (RFC 7047 §5.1) -----

/// The elements of a set-typed column (a bare atom is a one-element set).
pub fn set_elems(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) if a.len() == 2 && a[0] == "set" => a[1]
            .as_array()
            .map(|x| x.iter().collect())
            .unwrap_or_default(),
        other => vec![other],
    }
}

/// The pairs of a map-typed column.
pub fn map_pairs(v: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Value::Array(a) = v
        && a.len() == 2
        && a[0] == "map"
        && let Some(pairs) = a[1].as_array()
    {
        for p in pairs {
            if let Some([k, v]) = p.as_array().map(Vec::as_slice) {
                out.insert(atom_string(k), atom_string(v));
            }
        }
    }
    out
}

/// An atom rendered as a string (uuids as their text).
pub fn atom_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) if a.len() == 2 && (a[0] == "uuid" || a[0] == "named-uuid") => {
            a[1].as_str().unwrap_or_default().to_string()
        }
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// The uuid of a uuid atom.
pub fn uuid_of(v: &Value) -> Option<String> {
    match v {
        Value::Array(a) if a.len() == 2 && a[0] == "uuid" => a[1].as_str().map(str::to_string),
        _ => None,
    }
}

/// An optional (set of 0 or 1) integer column.
pub fn opt_int(v: &Value) -> Option<i64> {
    set_elems(v).first().and_then(|x| x.as_i64())
}

/// An optional string column.
pub fn opt_str(v: &Value) -> Option<String> {
    set_elems(v)
        .first()
        .and_then(|x| x.as_str())
        .map(str::to_string)
}

/// Rows of one table from a `select` result, keyed by uuid.
pub type Rows = BTreeMap<String, serde_json::Map<String, Value>>;

/// Turns `select` results into rows by uuid.
pub fn rows_from_select(result: &Value) -> Rows {
    let mut out = Rows::new();
    if let Some(rows) = result.get("rows").and_then(Value::as_array) {
        for r in rows {
            if let Some(obj) = r.as_object()
                && let Some(u) = obj.get("_uuid").and_then(uuid_of)
            {
                out.insert(u, obj.clone());
            }
        }
    }
    out
}

/// The tables vswitchd reads, in the order of [`SwitchConfig::select_ops`].
pub const TABLES: [&str; 6] = [
    "Open_vSwitch",
    "Bridge",
    "Port",
    "Interface",
    "Controller",
    "Manager",
];

impl SwitchConfig {
    /// The `transact` operations that read everything vswitchd needs.
    pub fn select_ops() -> Value {
        let mut ops = vec![Value::String("Open_vSwitch".into())];
        for t in TABLES {
            ops.push(serde_json::json!({"op": "select", "table": t, "where": []}));
        }
        Value::Array(ops)
    }

    /// Builds the configuration from the results of [`SwitchConfig::select_ops`].
    pub fn from_select_results(results: &[Value]) -> SwitchConfig {
        let get = |i: usize| results.get(i).map(rows_from_select).unwrap_or_default();
        let (ovs, bridges, ports, ifaces, ctrls, mgrs) =
            (get(0), get(1), get(2), get(3), get(4), get(5));
        let mut cfg = SwitchConfig::default();
        let Some(root) = ovs.values().next() else {
            cfg.problems
                .push("the Open_vSwitch table has no row".into());
            return cfg;
        };
        cfg.next_cfg = root.get("next_cfg").and_then(Value::as_i64).unwrap_or(0);
        cfg.other_config = root.get("other_config").map(map_pairs).unwrap_or_default();
        for m in root
            .get("manager_options")
            .map(set_elems)
            .unwrap_or_default()
        {
            if let Some(row) = uuid_of(m).and_then(|u| mgrs.get(&u))
                && let Some(t) = row.get("target").and_then(Value::as_str)
            {
                cfg.managers.push(t.to_string());
            }
        }
        for b in root.get("bridges").map(set_elems).unwrap_or_default() {
            let Some(row) = uuid_of(b).and_then(|u| bridges.get(&u).map(|r| (u, r))) else {
                continue;
            };
            let (uuid, row) = row;
            let name = row
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if name.is_empty() {
                cfg.problems.push(format!("bridge {uuid} has no name"));
                continue;
            }
            let fail_mode = match opt_str(row.get("fail_mode").unwrap_or(&Value::Null)).as_deref() {
                Some("secure") => FailMode::Secure,
                _ => FailMode::Standalone,
            };
            let protocols = row
                .get("protocols")
                .map(set_elems)
                .unwrap_or_default()
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            let controllers = row
                .get("controller")
                .map(set_elems)
                .unwrap_or_default()
                .iter()
                .filter_map(|c| uuid_of(c).and_then(|u| ctrls.get(&u).map(|r| (u, r))))
                .filter_map(|(u, r)| {
                    Some(ControllerConfig {
                        uuid: u,
                        target: r.get("target")?.as_str()?.to_string(),
                        inactivity_probe: r
                            .get("inactivity_probe")
                            .and_then(opt_int)
                            .and_then(|n| u64::try_from(n).ok()),
                        max_backoff: r
                            .get("max_backoff")
                            .and_then(opt_int)
                            .and_then(|n| u64::try_from(n).ok()),
                    })
                })
                .collect();
            let mut bc = BridgeConfig {
                uuid: uuid.clone(),
                name: name.clone(),
                fail_mode,
                protocols,
                controllers,
                other_config: row.get("other_config").map(map_pairs).unwrap_or_default(),
                ports: BTreeMap::new(),
            };
            for p in row.get("ports").map(set_elems).unwrap_or_default() {
                let Some((puuid, prow)) = uuid_of(p).and_then(|u| ports.get(&u).map(|r| (u, r)))
                else {
                    continue;
                };
                match port_from_row(&puuid, prow, &ifaces) {
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

fn port_from_row(
    uuid: &str,
    row: &serde_json::Map<String, Value>,
    ifaces: &Rows,
) -> Result<PortConfig, String> {
    let name = row
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        return Err(format!("port {uuid} has no name"));
    }
    let tag = match row.get("tag").and_then(opt_int) {
        None => None,
        Some(t) if (0..4096).contains(&t) => Some(t as u16),
        Some(t) => return Err(format!("port {name}: tag {t} is not a VLAN id (0-4095)")),
    };
    let mut trunks = Vec::new();
    for t in row.get("trunks").map(set_elems).unwrap_or_default() {
        match t.as_i64() {
            Some(v) if (0..4096).contains(&v) => trunks.push(v as u16),
            _ => return Err(format!("port {name}: trunk {t} is not a VLAN id (0-4095)")),
        }
    }
    trunks.sort_unstable();
    let vlan_mode = match opt_str(row.get("vlan_mode").unwrap_or(&Value::Null)).as_deref() {
        None => None,
        Some("access") => Some(VlanMode::Access),
        Some("trunk") => Some(VlanMode::Trunk),
        Some("native-tagged") => Some(VlanMode::NativeTagged),
        Some("native-untagged") => Some(VlanMode::NativeUntagged),
        Some(other) => return Err(format!("port {name}: unknown vlan_mode {other}")),
    };
    let mut interfaces = Vec::new();
    for i in row.get("interfaces").map(set_elems).unwrap_or_default() {
        let Some((iuuid, irow)) = uuid_of(i).and_then(|u| ifaces.get(&u).map(|r| (u, r))) else {
            continue;
        };
        let iname = irow
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        interfaces.push(InterfaceConfig {
            uuid: iuuid,
            name: iname,
            kind: irow
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            options: irow.get("options").map(map_pairs).unwrap_or_default(),
            ofport_request: irow
                .get("ofport_request")
                .and_then(opt_int)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1..0xff00).contains(n)),
            mtu_request: irow
                .get("mtu_request")
                .and_then(opt_int)
                .and_then(|n| u32::try_from(n).ok()),
            mac: irow.get("mac").and_then(opt_str),
        });
    }
    Ok(PortConfig {
        uuid: uuid.to_string(),
        name,
        interfaces,
        tag,
        trunks,
        vlan_mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn results() -> Vec<Value> {
        vec![
            json!({"rows": [{"_uuid": ["uuid", "o1"], "next_cfg": 7,
                "bridges": ["uuid", "b1"], "manager_options": ["set", []],
                "other_config": ["map", [["pmd-cpu-mask", "0x6"]]]}]}),
            json!({"rows": [{"_uuid": ["uuid", "b1"], "name": "br0", "fail_mode": ["set", ["secure"]],
                "protocols": ["set", ["OpenFlow13"]], "controller": ["uuid", "c1"],
                "other_config": ["map", [["datapath-id", "00000000000000aa"]]],
                "ports": ["set", [["uuid", "p1"], ["uuid", "p2"], ["uuid", "p3"]]]}]}),
            json!({"rows": [
                {"_uuid": ["uuid", "p1"], "name": "eth1", "tag": 10, "trunks": ["set", []],
                 "vlan_mode": ["set", []], "interfaces": ["uuid", "i1"]},
                {"_uuid": ["uuid", "p2"], "name": "eth2", "tag": ["set", []], "trunks": ["set", [20, 10]],
                 "vlan_mode": "trunk", "interfaces": ["uuid", "i2"]},
                {"_uuid": ["uuid", "p3"], "name": "bad", "tag": 5000, "interfaces": ["set", []]}]}),
            json!({"rows": [
                {"_uuid": ["uuid", "i1"], "name": "eth1", "type": "", "options": ["map", []],
                 "ofport_request": 3},
                {"_uuid": ["uuid", "i2"], "name": "eth2", "type": "tap",
                 "options": ["map", [["k", "v"]]], "ofport_request": ["set", []]}]}),
            json!({"rows": [{"_uuid": ["uuid", "c1"], "target": "tcp:127.0.0.1:6653",
                "inactivity_probe": ["set", []], "max_backoff": 1000}]}),
            json!({"rows": []}),
        ]
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
    fn select_results_become_bridges_ports_and_interfaces() {
        let cfg = SwitchConfig::from_select_results(&results());
        assert_eq!(cfg.next_cfg, 7);
        assert_eq!(cfg.pmd_cpus(), Some(vec![1, 2]));
        let br = &cfg.bridges["br0"];
        assert_eq!(br.fail_mode, FailMode::Secure);
        assert_eq!(br.protocols, vec!["OpenFlow13"]);
        assert_eq!(br.datapath_id(), Some(0xaa));
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
    fn an_invalid_port_is_reported_and_the_rest_of_the_bridge_kept() {
        let cfg = SwitchConfig::from_select_results(&results());
        assert!(!cfg.bridges["br0"].ports.contains_key("bad"));
        assert!(
            cfg.problems.iter().any(|p| p.contains("tag 5000")),
            "{:?}",
            cfg.problems
        );
    }

    #[test]
    fn a_missing_root_row_is_a_problem_not_a_panic() {
        let cfg = SwitchConfig::from_select_results(&[json!({"rows": []})]);
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
