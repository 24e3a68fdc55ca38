//! The running switch: the datapath, the bridges, and the reconciliation of
//! both with the desired configuration read from the DB.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use datapath::{
    AfPacketPort, AfXdpOptions, AfXdpPort, Datapath, DummyPort, Port, TapPort, XdpMode,
};
use flows::action::port as ofp_port;
use flows::names::check_name;
use flows::xlate::{BridgePort, VlanMode as XVlanMode};
use flows::{DpPortNo, PortNo};
use tracing::{info, warn};
use uuid::Uuid;
use vhost_port::{VhostUserOptions, VhostUserPort};

use crate::config::{
    BridgeConfig, InterfaceConfig, PortConfig, SwitchConfig, VhostSockConfig, VlanMode,
};
use crate::dbstatus::IfaceStatus;
use crate::ofproto::{AsyncMsg, Ofproto, PortReason, PortRuntime, SlowPath};

/// An interface the switch opened, with its typed handle when the daemon
/// needs more than the `Port` trait offers.
struct OpenIface {
    port: Arc<dyn Port>,
    vhost: Option<Arc<VhostUserPort>>,
}

/// Where an interface lives in the running switch.
/// One interface's datapath counters.
pub struct PortCounters {
    pub bridge: String,
    pub iface: String,
    pub ofport: PortNo,
    pub stats: datapath::PortStatsSnapshot,
}

struct IfaceSlot {
    bridge: String,
    ofport: PortNo,
    dp_port: DpPortNo,
    config: InterfaceConfig,
    vhost: Option<Arc<VhostUserPort>>,
    /// Why `mtu_request` could not be applied.
    mtu_error: Option<String>,
    /// A patch port's handle (counters); it has no datapath port.
    patch: Option<Arc<datapath::deviceless::DevicelessPort>>,
    /// Why a patch port's peer is not usable (OVS's text).
    patch_error: Option<String>,
}

/// Interface types backed by a kernel network device, whose MTU
/// `mtu_request` sets.
fn kernel_device(kind: &str) -> bool {
    matches!(kind, "" | "system" | "internal" | "tap" | "afxdp")
}

/// An `afxdp` interface's `options:xdp-mode` and `options:n_rxq`, as OVS
/// spells them (mode `best-effort` and one queue when unset).
fn afxdp_options(name: &str, options: &BTreeMap<String, String>) -> Result<AfXdpOptions, String> {
    let mut opts = AfXdpOptions::default();
    if let Some(m) = options.get("xdp-mode") {
        opts.mode = XdpMode::parse(m).ok_or_else(|| {
            format!("{name}: options:xdp-mode {m:?} is not one of best-effort, native, generic")
        })?;
    }
    if let Some(n) = options.get("n_rxq") {
        opts.n_rxq = n
            .parse()
            .ok()
            .filter(|&n| (1..=datapath::afxdp::MAX_RXQ).contains(&n))
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "{name}: options:n_rxq {n:?} is not a number in 1..={}",
                    datapath::afxdp::MAX_RXQ
                )
            })?;
    }
    Ok(opts)
}

/// vhost-user types, whose MTU is offered to the guest when the port opens.
fn vhost_kind(kind: &str) -> bool {
    kind.contains("vhostuser")
}

pub struct Switch {
    pub dp: Arc<Datapath>,
    pub slow: Arc<SlowPath>,
    pub rundir: PathBuf,
    next_dp_port: AtomicU32,
    state: Mutex<SwitchState>,
    /// In-memory ports (`type=dummy`), reachable by `netdev-dummy/receive`.
    dummies: Mutex<BTreeMap<String, Arc<DummyPort>>>,
}

#[derive(Default)]
struct SwitchState {
    /// Interfaces by name.
    ifaces: BTreeMap<String, IfaceSlot>,
    /// Interfaces that failed to open: name → (uuid, error).
    failed: BTreeMap<String, (Uuid, String)>,
    /// The configuration last applied.
    applied: Option<SwitchConfig>,
}

/// Why interface `i` of bridge `br` cannot be opened because of a name,
/// in Open vSwitch's words.
fn name_error(br: &BridgeConfig, i: &InterfaceConfig) -> Option<String> {
    match check_name(&i.name) {
        // A patch port has no device: its name is not limited to a device
        // name's length (ovn-controller's are longer), only kept clean.
        Err(flows::names::NameError::TooLong(_)) if i.kind == crate::patch::KIND => {}
        Err(e) => return Some(format!("could not open network device {} ({e})", i.name)),
        Ok(()) => {}
    }
    check_name(&br.name)
        .err()
        .map(|e| format!("{}: could not add to bridge {:?} ({e})", i.name, br.name))
}

/// The MAC of a bridge's own port when `other_config:hwaddr` does not set
/// it: locally administered, derived from the name, stable across restarts.
fn default_local_mac(name: &str) -> [u8; 6] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    let b = h.to_be_bytes();
    [0x02 | (b[0] & 0xfc), b[1], b[2], b[3], b[4], b[5]]
}

/// Sets a kernel device's MTU when it differs from `mtu`.
fn apply_mtu(name: &str, mtu: u32) -> Result<(), String> {
    if datapath::netdev::mtu(name).is_ok_and(|m| m == mtu) {
        return Ok(());
    }
    datapath::netdev::set_mtu(name, mtu)
        .map(|()| info!(port = %name, mtu, "MTU set"))
        .map_err(|e| format!("{name}: cannot set MTU {mtu}: {e}"))
}

fn xlate_vlan(p: &PortConfig) -> XVlanMode {
    match (p.vlan_mode, p.tag) {
        (Some(VlanMode::Trunk), _) => XVlanMode::Trunk {
            trunks: p.trunks.clone(),
        },
        (Some(VlanMode::NativeTagged), Some(tag)) => XVlanMode::NativeTagged {
            tag,
            trunks: p.trunks.clone(),
        },
        (Some(VlanMode::NativeUntagged), Some(tag)) => XVlanMode::NativeUntagged {
            tag,
            trunks: p.trunks.clone(),
        },
        (Some(VlanMode::Access), tag) => XVlanMode::Access {
            tag: tag.unwrap_or(0),
        },
        // OVS's default: a port with a tag is an access port, otherwise a
        // trunk of `trunks` (all VLANs when empty).
        (_, Some(tag)) => XVlanMode::Access { tag },
        (_, None) => XVlanMode::Trunk {
            trunks: p.trunks.clone(),
        },
    }
}

impl Switch {
    pub fn new(dp: Arc<Datapath>, slow: Arc<SlowPath>, rundir: PathBuf) -> Switch {
        Switch {
            dp,
            slow,
            rundir,
            next_dp_port: AtomicU32::new(1),
            state: Mutex::new(SwitchState::default()),
            dummies: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SwitchState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Flushes every datapath cache now, after moving counters to rules:
    /// when this returns, no packet follows a decision made before it.
    pub fn revalidate_now(&self) {
        self.slow.flush_megaflows(&self.dp);
    }

    /// The directory for vhost-user server sockets, created (`0750`, with
    /// the socket group) when missing.
    fn vhost_sock_dir(&self, sock: &VhostSockConfig) -> Result<PathBuf, String> {
        if sock.dir.as_os_str().is_empty() {
            return Ok(self.rundir.clone());
        }
        let dir = self.rundir.join(&sock.dir);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => return Ok(dir),
            Ok(_) => return Err(format!("vhost-sock-dir {}: not a directory", dir.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("vhost-sock-dir {}: {e}", dir.display())),
        }
        let fail =
            |e: std::io::Error| format!("cannot create vhost-sock-dir {}: {e}", dir.display());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&dir)
            .map_err(fail)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).map_err(fail)?;
        if let Some(gid) = sock.perms.gid {
            std::os::unix::fs::lchown(&dir, None, Some(gid)).map_err(fail)?;
        }
        info!("created vhost-sock-dir {}", dir.display());
        Ok(dir)
    }

    fn open_iface(
        &self,
        bridge: &str,
        iface: &InterfaceConfig,
        vhost_sock: &Result<VhostSockConfig, String>,
    ) -> Result<OpenIface, String> {
        let plain = |p: Arc<dyn Port>| OpenIface {
            port: p,
            vhost: None,
        };
        match iface.kind.as_str() {
            "" | "system" => AfPacketPort::open(&iface.name)
                .map(|p| plain(p))
                .map_err(|e| e.to_string()),
            "afxdp" => {
                let opts = afxdp_options(&iface.name, &iface.options)?;
                AfXdpPort::open(&iface.name, opts)
                    .map(|p| plain(p))
                    .map_err(|e| e.to_string())
            }
            "tap" => TapPort::open(&iface.name)
                .map(|p| plain(p))
                .map_err(|e| e.to_string()),
            "internal" => TapPort::open_internal(&iface.name)
                .map(|p| plain(p))
                .map_err(|e| e.to_string()),
            "dummy" => {
                let p = DummyPort::new(&iface.name);
                self.dummies
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(iface.name.clone(), p.clone());
                Ok(plain(p))
            }
            kind if crate::tunnel_config::is_tunnel(kind) => {
                let (_, warnings) =
                    crate::tunnel_config::TunnelConfig::parse(&iface.name, kind, &iface.options)?;
                for w in warnings {
                    warn!("{w}");
                }
                Ok(plain(datapath::deviceless::DevicelessPort::new(
                    &iface.name,
                    datapath::deviceless::Deviceless::Tunnel,
                )))
            }
            "dpdkvhostuser" | "vhostuser" | "dpdkvhostuserclient" | "vhostuserclient" => {
                let mut opts = VhostUserOptions::default();
                if let Some(n) = iface.options.get("n_rxq").and_then(|s| s.parse().ok()) {
                    opts.n_pairs = n;
                }
                if let Some(m) = iface.mtu_request {
                    opts.mtu = u16::try_from(m)
                        .map_err(|_| format!("{}: mtu_request {m} is out of range", iface.name))?;
                }
                let port = if iface.kind.ends_with("client") {
                    let Some(path) = iface.options.get("vhost-server-path") else {
                        return Err(format!(
                            "{}: type {} needs options:vhost-server-path",
                            iface.name, iface.kind
                        ));
                    };
                    VhostUserPort::client(&iface.name, path, opts)
                } else {
                    let sock = vhost_sock
                        .as_ref()
                        .map_err(|e| format!("{}: {e}", iface.name))?;
                    opts.socket_perms = sock.perms;
                    let dir = self
                        .vhost_sock_dir(sock)
                        .map_err(|e| format!("{}: {e}", iface.name))?;
                    VhostUserPort::server(&iface.name, dir.join(&iface.name), opts)
                }
                .map_err(|e| e.to_string())?;
                let port = Arc::new(port);
                Ok(OpenIface {
                    port: port.clone(),
                    vhost: Some(port),
                })
            }
            other => Err(format!(
                "{}: could not open network device {} (Unsupported interface type \"{other}\") on bridge {bridge}",
                iface.name, iface.name
            )),
        }
    }

    /// Makes the running switch match `cfg`. Problems with single ports
    /// are recorded for their Interface rows; the rest goes on.
    pub fn apply(&self, cfg: &SwitchConfig) {
        for p in &cfg.problems {
            warn!("configuration: {p}");
        }
        let now = self.slow.now_ms();
        let mut changed = false;
        let mut st = self.lock();

        // 1. Bridges that went away.
        let existing = self.bridge_names();
        for name in existing {
            if !cfg.bridges.contains_key(&name) {
                self.remove_bridge(&mut st, &name);
                changed = true;
            }
        }

        // 2. Interfaces that went away or moved or changed type/options.
        let mut wanted: BTreeMap<&str, (&BridgeConfig, &PortConfig, &InterfaceConfig)> =
            BTreeMap::new();
        for br in cfg.bridges.values() {
            for p in br.ports.values() {
                for i in &p.interfaces {
                    wanted.insert(i.name.as_str(), (br, p, i));
                }
            }
        }
        // An interface that is gone, or whose type changed, loses its
        // device too; one that is only reopened keeps it (its addresses).
        let stale: Vec<(String, bool)> = st
            .ifaces
            .iter()
            .filter_map(|(name, slot)| match wanted.get(name.as_str()) {
                None => Some((name.clone(), true)),
                Some((br, _, i)) => (br.name != slot.bridge
                    || i.kind != slot.config.kind
                    || i.options != slot.config.options
                    || (i.ofport_request.is_some() && i.ofport_request != Some(slot.ofport))
                    || (vhost_kind(&i.kind) && i.mtu_request != slot.config.mtu_request))
                    .then(|| (name.clone(), i.kind != slot.config.kind)),
            })
            .collect();
        for (name, delete_device) in stale {
            self.remove_iface(&mut st, &name, delete_device);
            changed = true;
        }
        st.failed.retain(|n, _| wanted.contains_key(n.as_str()));

        // 3. Bridges that are new, or whose settings changed. A bridge
        // whose name is not a valid interface name is never created (its
        // name would become a file name in the run directory); its
        // interfaces get the error in step 4.
        for br in cfg.bridges.values() {
            if let Err(e) = check_name(&br.name) {
                if self.slow.bridge(&br.name).is_none() {
                    warn!("bridge {:?}: {e}", br.name);
                }
                continue;
            }
            let ofp = match self.slow.bridge(&br.name) {
                Some(b) => b,
                None => {
                    changed = true;
                    self.add_bridge(br, now)
                }
            };
            let mut bst = ofp.lock();
            if bst.fail_mode != br.fail_mode
                || bst.controllers_configured == br.controllers.is_empty()
            {
                changed = true;
            }
            bst.fail_mode = br.fail_mode;
            bst.controllers_configured = !br.controllers.is_empty();
            let aging = br.mac_aging_secs().min(u64::from(u32::MAX)) as u32;
            if bst.mac.aging_secs() != aging {
                bst.mac.set_aging_secs(aging);
            }
            if bst.mac.max_entries() != br.mac_table_size() {
                bst.mac.set_max_entries(br.mac_table_size());
            }
            let dpid = br.dpid(default_local_mac(&br.name));
            if bst.dpid != dpid {
                info!(bridge = %br.name, "datapath id now {dpid:016x}");
                bst.dpid = dpid;
            }
            // VLAN settings of ports that stay.
            for p in br.ports.values() {
                for i in &p.interfaces {
                    if let Some(slot) = st.ifaces.get(&i.name)
                        && let Some(bp) = bst.ports.get_mut(slot.ofport)
                    {
                        let v = xlate_vlan(p);
                        if bp.vlan != v {
                            bp.vlan = v;
                            changed = true;
                        }
                    }
                }
            }
        }

        // 4. Interfaces that are new.
        let vhost_sock = cfg.vhost_sock();
        for (name, (br, p, i)) in &wanted {
            if st.ifaces.contains_key(*name) {
                continue;
            }
            if let Some(e) = name_error(br, i) {
                if !st.failed.contains_key(*name) {
                    warn!("{e}");
                }
                st.failed.insert(name.to_string(), (i.uuid, e));
                continue;
            }
            if st.failed.get(*name).is_some_and(|(_, e)| !e.is_empty())
                && st.applied.as_ref().is_some_and(|a| {
                    a.bridges
                        .get(&br.name)
                        .and_then(|b| b.ports.get(&p.name))
                        .is_some_and(|old| old == *p)
                })
            {
                // Failed before with the same configuration: don't retry on
                // every DB change (the periodic status pass retries).
                continue;
            }
            let Some(ofp) = self.slow.bridge(&br.name) else {
                continue;
            };
            match self.add_iface(&mut st, &ofp, p, i, &vhost_sock) {
                Ok(()) => {
                    st.failed.remove(*name);
                    changed = true;
                }
                Err(e) => {
                    warn!("{e}");
                    st.failed.insert(name.to_string(), (i.uuid, e));
                }
            }
        }
        // 5. MTUs of kernel devices (kept in step with mtu_request).
        for (name, (_, _, i)) in &wanted {
            if let Some(slot) = st.ifaces.get_mut(*name)
                && kernel_device(&slot.config.kind)
            {
                slot.mtu_error = i.mtu_request.and_then(|m| apply_mtu(name, m).err());
            }
        }
        // 5b. Patch ports: each pair that names each other is joined.
        if self.resolve_patches(&mut st, cfg) {
            changed = true;
        }
        // 6. Mirrors, resolved against the ports open now.
        for br in cfg.bridges.values() {
            let Some(ofp) = self.slow.bridge(&br.name) else {
                continue;
            };
            let ofports = |port: &str| -> Vec<PortNo> {
                br.ports
                    .get(port)
                    .map(|p| {
                        p.interfaces
                            .iter()
                            .filter_map(|i| st.ifaces.get(&i.name).map(|s| s.ofport))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let mut warnings = Vec::new();
            let mirrors = crate::mirror::Mirrors::resolve(&br.mirrors, ofports, &mut warnings);
            let mut bst = ofp.lock();
            if bst.mirrors != mirrors {
                for w in warnings {
                    warn!(bridge = %br.name, "{w}");
                }
                bst.mirrors = mirrors;
                changed = true;
            }
        }
        // 7. Bonds (ports with several interfaces) and their members.
        let bonds = self.bond_specs(&st, cfg);
        self.slow.bonds.configure(bonds, now);
        st.applied = Some(cfg.clone());
        if changed {
            self.publish_tnl_view(&st);
        }
        drop(st);
        if changed {
            self.revalidate_now();
        }
    }

    fn add_bridge(&self, br: &BridgeConfig, now: u64) -> Arc<Ofproto> {
        let dpid = br.dpid(default_local_mac(&br.name));
        let ofp = Arc::new(Ofproto::new(
            &br.name,
            br.fail_mode,
            !br.controllers.is_empty(),
            dpid,
            now,
        ));
        self.slow
            .bridges
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(br.name.clone(), ofp.clone());
        info!(bridge = %br.name, "bridge created (dpid {dpid:016x})");
        ofp
    }

    fn remove_bridge(&self, st: &mut SwitchState, name: &str) {
        let names: Vec<String> = st
            .ifaces
            .iter()
            .filter(|(_, s)| s.bridge == name)
            .map(|(n, _)| n.clone())
            .collect();
        for n in names {
            self.remove_iface(st, &n, true);
        }
        let gone = self
            .slow
            .bridges
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        if let Some(ofp) = gone {
            crate::meters::release_all(&self.dp, &mut ofp.lock());
        }
        info!(bridge = %name, "bridge deleted");
    }

    fn add_iface(
        &self,
        st: &mut SwitchState,
        ofp: &Arc<Ofproto>,
        pc: &PortConfig,
        ic: &InterfaceConfig,
        vhost_sock: &Result<VhostSockConfig, String>,
    ) -> Result<(), String> {
        // The bridge's own port is its internal port, OpenFlow port LOCAL.
        let is_local = ic.name == ofp.name;
        let mut cfg = ic.clone();
        if is_local && cfg.kind.is_empty() {
            cfg.kind = "internal".to_string();
        }
        let patch = if cfg.kind == crate::patch::KIND {
            if let Some(e) = crate::patch::option_error(&ic.name, &cfg.options) {
                return Err(e);
            }
            Some(datapath::deviceless::DevicelessPort::new(
                &ic.name,
                datapath::deviceless::Deviceless::Patch,
            ))
        } else {
            None
        };
        let opened = match &patch {
            Some(p) => OpenIface {
                port: p.clone(),
                vhost: None,
            },
            None => self.open_iface(&ofp.name, &cfg, vhost_sock)?,
        };
        let mut bst = ofp.lock();
        let ofport = if is_local {
            ofp_port::LOCAL
        } else {
            match ic.ofport_request {
                Some(r) if bst.ports.get(r).is_none() => r,
                Some(r) => {
                    return Err(format!(
                        "{}: requested OpenFlow port number {r} is already in use on bridge {}",
                        ic.name, ofp.name
                    ));
                }
                None => (1..ofp_port::MAX)
                    .find(|n| bst.ports.get(*n).is_none())
                    .ok_or_else(|| {
                        format!("{}: bridge {} has no free port number", ic.name, ofp.name)
                    })?,
            }
        };
        // A patch port's number is never given to the datapath: it only
        // keeps the bridge's port maps unambiguous.
        let dp_port = self.next_dp_port.fetch_add(1, Ordering::Relaxed);
        if patch.is_none() {
            self.dp
                .add_port(dp_port, opened.port.clone())
                .map_err(|e| format!("{}: cannot add to the datapath: {e}", ic.name))?;
        }
        let mut bp = BridgePort::new(ofport, dp_port);
        bp.vlan = xlate_vlan(pc);
        bp.up = opened.port.link_up();
        bst.ports.insert(bp);
        bst.runtime.insert(
            ofport,
            PortRuntime {
                name: ic.name.clone(),
                dp_port,
                port: opened.port.clone(),
                admin_down: false,
            },
        );
        drop(bst);
        if patch.is_none() {
            self.slow
                .dp_ports
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(dp_port, ofp.clone());
        }
        st.ifaces.insert(
            ic.name.clone(),
            IfaceSlot {
                bridge: ofp.name.clone(),
                ofport,
                dp_port,
                config: cfg,
                vhost: opened.vhost,
                mtu_error: None,
                patch,
                patch_error: None,
            },
        );
        ofp.notify(AsyncMsg::PortStatus {
            reason: PortReason::Add,
            ofport,
        });
        info!(bridge = %ofp.name, port = %ic.name, ofport, dp_port, "port added");
        Ok(())
    }

    /// Takes interface `name` out of the datapath and its bridge; with
    /// `delete_device`, also removes the device the switch made for it
    /// (an internal port's persistent TAP), as deleting the port does in
    /// Open vSwitch.
    fn remove_iface(&self, st: &mut SwitchState, name: &str, delete_device: bool) {
        let Some(slot) = st.ifaces.remove(name) else {
            return;
        };
        if delete_device
            && let Some(port) = self.dp.port(slot.dp_port)
            && let Err(e) = port.delete_device()
        {
            warn!("{name}: removing its device: {e}");
        }
        self.dummies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.slow
            .dp_ports
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&slot.dp_port);
        if slot.patch.is_none()
            && let Err(e) = self.dp.del_port(slot.dp_port)
        {
            warn!("{name}: removing from the datapath: {e}");
        }
        if let Some(ofp) = self.slow.bridge(&slot.bridge) {
            let mut bst = ofp.lock();
            bst.ports.remove(slot.ofport);
            bst.runtime.remove(&slot.ofport);
            bst.mac.flush_port(slot.ofport);
            drop(bst);
            ofp.notify(AsyncMsg::PortStatus {
                reason: PortReason::Delete,
                ofport: slot.ofport,
            });
        }
        info!(bridge = %slot.bridge, port = %name, "port deleted");
    }

    /// A port's counters: the datapath's, or a patch port's own.
    fn slot_stats(&self, slot: &IfaceSlot) -> Option<datapath::PortStatsSnapshot> {
        match &slot.patch {
            Some(p) => Some(p.stats().snapshot()),
            None => self.dp.port_stats(slot.dp_port),
        }
    }

    /// Joins the patch ports whose peers name each other (OVS: the peer
    /// must exist, be a patch port and name this one as its peer), sets
    /// the error of the others, and publishes the pairs to the slow path.
    /// True when a bridge's patch wiring changed.
    fn resolve_patches(&self, st: &mut SwitchState, cfg: &SwitchConfig) -> bool {
        let bridges = self.slow.all_bridges();
        let id_of = |name: &str| bridges.iter().find(|b| b.name == name).map(|b| b.id);
        let dp_type = |bridge: &str| {
            cfg.bridges
                .get(bridge)
                .map(|b| b.datapath_type.clone())
                .unwrap_or_default()
        };
        let mut wiring: Vec<(
            String,
            PortNo,
            Option<flows::xlate::PatchPeer>,
            Option<String>,
        )> = Vec::new();
        let mut pairs = Vec::new();
        let mut counters = std::collections::HashMap::new();
        for (name, slot) in &st.ifaces {
            let Some(p) = &slot.patch else {
                continue;
            };
            let me = id_of(&slot.bridge).unwrap_or(0);
            counters.insert((me, slot.ofport), p.stats());
            let peer_name = slot.config.options.get("peer").cloned().unwrap_or_default();
            let peer = st
                .ifaces
                .get(&peer_name)
                .filter(|ps| ps.patch.is_some() && ps.config.options.get("peer") == Some(name));
            match peer.and_then(|ps| Some((id_of(&ps.bridge)?, ps.ofport))) {
                Some((pb, pport)) => {
                    pairs.push(((me, slot.ofport), (pb, pport)));
                    let peer = flows::xlate::PatchPeer {
                        bridge: pb,
                        port: pport,
                    };
                    wiring.push((slot.bridge.clone(), slot.ofport, Some(peer), None));
                }
                None => {
                    let e = crate::patch::peer_error(&peer_name, &dp_type(&slot.bridge));
                    wiring.push((slot.bridge.clone(), slot.ofport, None, Some(e)));
                }
            }
        }
        // The groups first: a port never leads to a bridge translation
        // would not lock.
        *self.slow.patch.write().unwrap_or_else(|p| p.into_inner()) =
            crate::patch::PatchLinks::new(&bridges, &pairs, counters);
        let mut changed = false;
        for (bridge, ofport, peer, err) in wiring {
            if let Some(ofp) = self.slow.bridge(&bridge) {
                let mut bst = ofp.lock();
                if let Some(bp) = bst.ports.get_mut(ofport)
                    && bp.patch != peer
                {
                    bp.patch = peer;
                    changed = true;
                }
            }
            if let Some(slot) = st
                .ifaces
                .values_mut()
                .find(|s| s.bridge == bridge && s.ofport == ofport)
            {
                if slot.patch_error != err
                    && let Some(e) = &err
                {
                    warn!("{}: {e}", slot.config.name);
                }
                slot.patch_error = err;
            }
        }
        changed
    }

    /// The in-memory port `name` (`type=dummy`), for tests and appctl.
    pub fn dummy(&self, name: &str) -> Option<Arc<DummyPort>> {
        self.dummies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Retries interfaces that failed to open (devices that appear late).
    pub fn retry_failed(&self) {
        let st = self.lock();
        let again = !st.failed.is_empty();
        let cfg = st.applied.clone();
        drop(st);
        if again && let Some(cfg) = cfg {
            let mut st = self.lock();
            st.failed.values_mut().for_each(|(_, e)| e.clear());
            drop(st);
            self.apply(&cfg);
        }
    }

    /// Runtime status of every configured interface.
    pub fn iface_status(&self) -> Vec<IfaceStatus> {
        let st = self.lock();
        let mut out = Vec::new();
        for (name, slot) in &st.ifaces {
            let Some(ofp) = self.slow.bridge(&slot.bridge) else {
                continue;
            };
            let bst = ofp.lock();
            let rt = bst.runtime.get(&slot.ofport);
            let link_up = rt.is_some_and(|r| r.port.link_up());
            let admin_up = rt.is_some_and(|r| !r.admin_down);
            let mac = rt
                .and_then(|r| r.port.info().mac)
                .map(|m| wire::MacAddr(m).to_string());
            let error = slot
                .vhost
                .as_ref()
                .and_then(|v| v.last_error())
                .or_else(|| slot.mtu_error.clone())
                .or_else(|| slot.patch_error.clone());
            let mtu = rt.map(|r| i64::from(r.port.info().mtu));
            out.push(IfaceStatus {
                uuid: slot.config.uuid,
                name: name.clone(),
                ofport: if slot.ofport == ofp_port::LOCAL {
                    65534
                } else {
                    i64::from(slot.ofport)
                },
                error,
                mac_in_use: mac,
                link_up,
                admin_up,
                mtu,
                status: self
                    .tunnel_status(&slot.config)
                    .or_else(|| slot.vhost.as_ref().map(|v| v.status())),
                lacp_current: self.slow.bonds.lacp_current(name),
            });
        }
        for (name, (uuid, err)) in &st.failed {
            out.push(IfaceStatus {
                uuid: *uuid,
                name: name.clone(),
                ofport: -1,
                error: Some(err.clone()).filter(|e| !e.is_empty()),
                mac_in_use: None,
                link_up: false,
                admin_up: false,
                mtu: None,
                status: None,
                lacp_current: None,
            });
        }
        out
    }

    /// Updates the `up` flag translation uses (fast-failover, flooding).
    pub fn refresh_links(&self) -> bool {
        let bridges = self.slow.all_bridges();
        let mut changed = false;
        for ofp in bridges {
            let mut bst = ofp.lock();
            let ups: Vec<(PortNo, bool)> = bst
                .runtime
                .iter()
                .map(|(no, r)| (*no, r.port.link_up() && !r.admin_down))
                .collect();
            let mut notify = Vec::new();
            for (no, up) in ups {
                if let Some(bp) = bst.ports.get_mut(no)
                    && bp.up != up
                {
                    bp.up = up;
                    changed = true;
                    notify.push(no);
                }
            }
            drop(bst);
            for no in notify {
                ofp.notify(AsyncMsg::PortStatus {
                    reason: PortReason::Modify,
                    ofport: no,
                });
            }
        }
        changed
    }

    /// Interface statistics by interface name (for the DB).
    pub fn iface_stats(&self) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
        let st = self.lock();
        let mut out = BTreeMap::new();
        for (name, slot) in &st.ifaces {
            if let Some(s) = self.slot_stats(slot) {
                let mut m = BTreeMap::new();
                m.insert("rx_packets", s.rx_packets);
                m.insert("rx_bytes", s.rx_bytes);
                m.insert("rx_dropped", s.rx_dropped);
                m.insert("rx_errors", s.rx_errors);
                m.insert("tx_packets", s.tx_packets);
                m.insert("tx_bytes", s.tx_bytes);
                m.insert("tx_dropped", s.tx_dropped);
                m.insert("tx_errors", s.tx_errors);
                out.insert(name.clone(), m);
            }
        }
        out
    }

    /// The datapath counters of every open interface, with its bridge and
    /// OpenFlow port (for the metrics endpoint).
    pub fn port_counters(&self) -> Vec<PortCounters> {
        let st = self.lock();
        st.ifaces
            .iter()
            .filter_map(|(name, slot)| {
                Some(PortCounters {
                    bridge: slot.bridge.clone(),
                    iface: name.clone(),
                    ofport: slot.ofport,
                    stats: self.slot_stats(slot)?,
                })
            })
            .collect()
    }

    /// The bonds of `cfg` (ports with several interfaces) with their
    /// members that are open now.
    fn bond_specs(&self, st: &SwitchState, cfg: &SwitchConfig) -> Vec<crate::bond::BondSpec> {
        let mut out = Vec::new();
        for br in cfg.bridges.values() {
            let Some(ofp) = self.slow.bridge(&br.name) else {
                continue;
            };
            let bst = ofp.lock();
            let bridge_mac = bst
                .runtime
                .get(&ofp_port::LOCAL)
                .and_then(|r| r.port.info().mac)
                .unwrap_or_else(|| default_local_mac(&br.name));
            for p in br.ports.values().filter(|p| p.interfaces.len() > 1) {
                let members = p
                    .interfaces
                    .iter()
                    .filter_map(|i| {
                        let slot = st.ifaces.get(&i.name)?;
                        let rt = bst.runtime.get(&slot.ofport)?;
                        Some(crate::bond::MemberSpec {
                            ofport: slot.ofport,
                            name: i.name.clone(),
                            dp_port: slot.dp_port,
                            port: rt.port.clone(),
                            mac: rt.port.info().mac.unwrap_or(bridge_mac),
                        })
                    })
                    .collect();
                out.push(crate::bond::BondSpec {
                    bridge: br.name.clone(),
                    name: p.name.clone(),
                    settings: p.bond.clone(),
                    bridge_mac,
                    members,
                });
            }
        }
        out
    }

    /// What every mirror sent so far, by Mirror row (megaflow counters
    /// are moved in by the revalidator).
    pub fn mirror_stats(&self) -> BTreeMap<Uuid, (u64, u64)> {
        self.slow
            .all_bridges()
            .into_iter()
            .flat_map(|b| b.lock().mirror_stats.clone())
            .collect()
    }

    /// The datapath id of every bridge, by name.
    pub fn dpids(&self) -> BTreeMap<String, u64> {
        self.slow
            .all_bridges()
            .into_iter()
            .map(|b| (b.name.clone(), b.lock().dpid))
            .collect()
    }

    /// Names of bridges and their ports, for appctl.
    pub fn bridge_names(&self) -> BTreeSet<String> {
        self.slow
            .bridges
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_vlan_settings_follow_ovs_defaults() {
        let mut p = PortConfig {
            uuid: Uuid::nil(),
            name: "p".into(),
            interfaces: vec![],
            tag: Some(10),
            trunks: vec![],
            vlan_mode: None,
            bond: Default::default(),
        };
        assert_eq!(xlate_vlan(&p), XVlanMode::Access { tag: 10 });
        p.tag = None;
        p.trunks = vec![10, 20];
        assert_eq!(
            xlate_vlan(&p),
            XVlanMode::Trunk {
                trunks: vec![10, 20]
            }
        );
        p.tag = Some(5);
        p.vlan_mode = Some(VlanMode::NativeUntagged);
        assert_eq!(
            xlate_vlan(&p),
            XVlanMode::NativeUntagged {
                tag: 5,
                trunks: vec![10, 20]
            }
        );
    }

    use crate::config::{BridgeConfig, FailMode, InterfaceConfig};
    use crate::ofproto::run_revalidator;
    use datapath::DpConfig;
    use std::time::Duration;

    fn dummy_switch(ports: &[(&str, u32, Option<u16>)]) -> (Switch, tempfile::TempDir) {
        let (slow, rx) = SlowPath::new();
        let dp = Arc::new(
            Datapath::with_conntrack(DpConfig::default(), slow.clone(), slow.ct.clone()).unwrap(),
        );
        {
            let (sp, dp) = (slow.clone(), dp.clone());
            std::thread::spawn(move || run_revalidator(sp, dp, rx));
        }
        let dir = tempfile::tempdir().unwrap();
        let sw = Switch::new(dp, slow, dir.path().to_path_buf());
        let mut br = BridgeConfig {
            uuid: Uuid::from_u128(1),
            name: "br0".into(),
            fail_mode: FailMode::Standalone,
            protocols: vec![],
            controllers: vec![],
            other_config: BTreeMap::new(),
            datapath_type: String::new(),
            ports: BTreeMap::new(),
            mirrors: Vec::new(),
        };
        for (name, ofport, tag) in ports {
            br.ports.insert(
                name.to_string(),
                PortConfig {
                    uuid: Uuid::new_v4(),
                    name: name.to_string(),
                    interfaces: vec![InterfaceConfig {
                        uuid: Uuid::new_v4(),
                        name: name.to_string(),
                        kind: "dummy".into(),
                        options: BTreeMap::new(),
                        ofport_request: Some(*ofport),
                        mtu_request: None,
                        mac: None,
                    }],
                    tag: *tag,
                    trunks: vec![],
                    vlan_mode: None,
                    bond: Default::default(),
                },
            );
        }
        let mut cfg = SwitchConfig::default();
        cfg.bridges.insert("br0".into(), br);
        sw.apply(&cfg);
        (sw, dir)
    }

    fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x88, 0xb5]); // local experimental ethertype
        f.extend_from_slice(&[0u8; 46]);
        f
    }

    const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];
    /// How long a frame that must arrive may take: only a hang reaches it,
    /// even on a loaded machine.
    const T: Duration = Duration::from_secs(30);

    /// Bridges `xa` and `xb` (standalone: NORMAL), dummy port `da` on xa
    /// and `db` on xb, patch port `pa` on xa and `pb` on xb with the
    /// given peers.
    fn patch_config(peer_a: &str, peer_b: &str) -> SwitchConfig {
        let iface = |name: &str, kind: &str, peer: &str| InterfaceConfig {
            uuid: Uuid::new_v4(),
            name: name.to_string(),
            kind: kind.into(),
            options: if peer.is_empty() {
                BTreeMap::new()
            } else {
                BTreeMap::from([("peer".to_string(), peer.to_string())])
            },
            ofport_request: None,
            mtu_request: None,
            mac: None,
        };
        let port = |i: InterfaceConfig| PortConfig {
            uuid: Uuid::new_v4(),
            name: i.name.clone(),
            interfaces: vec![i],
            tag: None,
            trunks: vec![],
            vlan_mode: None,
            bond: Default::default(),
        };
        let mut cfg = SwitchConfig::default();
        for (br, dev, patch, peer) in [("xa", "da", "pa", peer_a), ("xb", "db", "pb", peer_b)] {
            let mut b = BridgeConfig {
                uuid: Uuid::new_v4(),
                name: br.into(),
                fail_mode: FailMode::Standalone,
                protocols: vec![],
                controllers: vec![],
                other_config: BTreeMap::new(),
                datapath_type: String::new(),
                ports: BTreeMap::new(),
                mirrors: Vec::new(),
            };
            b.ports.insert(dev.into(), port(iface(dev, "dummy", "")));
            b.ports
                .insert(patch.into(), port(iface(patch, "patch", peer)));
            cfg.bridges.insert(br.into(), b);
        }
        cfg
    }

    #[test]
    fn a_patch_pair_joins_two_bridges_and_counts_what_crosses() {
        let (sw, _d) = dummy_switch(&[]);
        sw.apply(&patch_config("pb", "pa"));
        let (da, db) = (sw.dummy("da").unwrap(), sw.dummy("db").unwrap());
        da.inject(&frame([0xff; 6], A));
        assert_eq!(db.recv_sent(T).expect("crossed to db").data[6..12], A);
        // B answers A through the pair; A was learned on xb's patch port.
        db.inject(&frame(A, B));
        assert_eq!(da.recv_sent(T).expect("crossed to da").data[6..12], B);
        let st = sw.iface_stats();
        assert_eq!(st["pa"]["tx_packets"], 1);
        assert_eq!(st["pb"]["rx_packets"], 1);
        assert_eq!(st["pb"]["tx_packets"], 1);
        assert_eq!(st["pa"]["rx_packets"], 1);
        assert!(error_of(&sw, "pa").is_none());
        // Patch ports are not datapath ports.
        assert!(
            sw.port_list()
                .iter()
                .all(|p| p.name != "pa" && p.name != "pb")
        );
    }

    #[test]
    fn patch_ports_may_have_names_longer_than_a_device_name_but_not_paths() {
        let br = &patch_config("pb", "pa").bridges["xa"];
        let mut i = br.ports["pa"].interfaces[0].clone();
        i.name = "patch-br-int-to-provnet1".into();
        assert_eq!(name_error(br, &i), None);
        i.name = "patch/../x".into();
        assert!(name_error(br, &i).is_some());
        i.kind = "system".into();
        i.name = "patch-br-int-to-provnet1".into();
        assert!(name_error(br, &i).is_some());
    }

    #[test]
    fn a_one_sided_patch_pair_reports_the_peer_and_carries_nothing() {
        let (sw, _d) = dummy_switch(&[]);
        sw.apply(&patch_config("pb", "nobody"));
        assert_eq!(
            error_of(&sw, "pa").as_deref(),
            Some("No usable peer 'pb' exists in 'netdev' datapath.")
        );
        assert_eq!(
            error_of(&sw, "pb").as_deref(),
            Some("No usable peer 'nobody' exists in 'netdev' datapath.")
        );
        let (da, db) = (sw.dummy("da").unwrap(), sw.dummy("db").unwrap());
        da.inject(&frame([0xff; 6], A));
        assert!(db.recv_sent(Duration::from_millis(300)).is_none());
        // Fixing the peer joins them.
        sw.apply(&patch_config("pb", "pa"));
        assert!(error_of(&sw, "pb").is_none());
        da.inject(&frame([0xff; 6], A));
        assert!(db.recv_sent(T).is_some(), "the fixed pair carries nothing");
        // A patch port without a peer option is not created at all.
        sw.apply(&patch_config("", "pa"));
        assert_eq!(
            error_of(&sw, "pa").as_deref(),
            Some("pa: patch type requires valid 'peer' argument")
        );
        assert_eq!(ofport_of(&sw, "pa"), -1);
    }

    #[test]
    fn normal_floods_unknown_destinations_then_forwards_learned_unicast() {
        let (sw, _d) = dummy_switch(&[("p1", 1, None), ("p2", 2, None), ("p3", 3, None)]);
        let (p1, p2, p3) = (
            sw.dummy("p1").unwrap(),
            sw.dummy("p2").unwrap(),
            sw.dummy("p3").unwrap(),
        );
        p1.inject(&frame([0xff; 6], A));
        assert_eq!(p2.recv_sent(T).expect("flooded to p2").data[6..12], A);
        assert!(p3.recv_sent(T).is_some(), "flooded to p3");
        // B answers A: A was learned on p1, so only p1 gets it.
        p2.inject(&frame(A, B));
        assert_eq!(p1.recv_sent(T).expect("unicast to p1").data[..6], A);
        assert!(
            p3.recv_sent(Duration::from_millis(300)).is_none(),
            "p3 saw unicast for p1"
        );
        // And A to B now goes to p2 only.
        p1.inject(&frame(B, A));
        assert!(p2.recv_sent(T).is_some());
        assert!(
            p3.recv_sent(Duration::from_millis(300)).is_none(),
            "p3 saw unicast for p2"
        );
        assert!(sw.slow.upcalls.load(std::sync::atomic::Ordering::Relaxed) >= 3);
    }

    #[test]
    fn access_ports_on_different_vlans_do_not_see_each_other() {
        let (sw, _d) = dummy_switch(&[
            ("a10", 1, Some(10)),
            ("b10", 2, Some(10)),
            ("c20", 3, Some(20)),
        ]);
        let (a, b, c) = (
            sw.dummy("a10").unwrap(),
            sw.dummy("b10").unwrap(),
            sw.dummy("c20").unwrap(),
        );
        a.inject(&frame([0xff; 6], A));
        let got = b
            .recv_sent(T)
            .expect("VLAN 10 broadcast reaches the other VLAN 10 port");
        assert_eq!(got.data.len(), 60, "access ports get untagged frames");
        assert!(
            c.recv_sent(Duration::from_millis(500)).is_none(),
            "VLAN 20 port saw VLAN 10 traffic"
        );
    }

    #[test]
    fn removing_a_port_from_the_config_stops_traffic_to_it() {
        let (sw, _d) = dummy_switch(&[("p1", 1, None), ("p2", 2, None)]);
        let p1 = sw.dummy("p1").unwrap();
        let p2 = sw.dummy("p2").unwrap();
        p1.inject(&frame([0xff; 6], A));
        assert!(p2.recv_sent(T).is_some());
        let mut cfg = sw.lock().applied.clone().unwrap();
        cfg.bridges.get_mut("br0").unwrap().ports.remove("p2");
        sw.apply(&cfg);
        assert!(sw.dummy("p2").is_none());
        p1.inject(&frame([0xff; 6], A));
        assert!(
            p2.recv_sent(Duration::from_millis(500)).is_none(),
            "removed port still receives"
        );
    }

    fn one_port_config(bridge: &str, port: &str, kind: &str) -> SwitchConfig {
        let mut br = BridgeConfig {
            uuid: Uuid::from_u128(1),
            name: bridge.into(),
            fail_mode: FailMode::Standalone,
            protocols: vec![],
            controllers: vec![],
            other_config: BTreeMap::new(),
            datapath_type: String::new(),
            ports: BTreeMap::new(),
            mirrors: Vec::new(),
        };
        br.ports.insert(
            port.into(),
            PortConfig {
                uuid: Uuid::from_u128(2),
                name: port.into(),
                interfaces: vec![InterfaceConfig {
                    uuid: Uuid::from_u128(3),
                    name: port.into(),
                    kind: kind.into(),
                    options: BTreeMap::new(),
                    ofport_request: None,
                    mtu_request: None,
                    mac: None,
                }],
                tag: None,
                trunks: vec![],
                vlan_mode: None,
                bond: Default::default(),
            },
        );
        let mut cfg = SwitchConfig::default();
        cfg.bridges.insert(bridge.into(), br);
        cfg
    }

    fn error_of(sw: &Switch, name: &str) -> Option<String> {
        sw.iface_status()
            .into_iter()
            .find(|s| s.name == name)
            .and_then(|s| s.error)
    }

    #[test]
    fn a_vhost_port_named_like_a_path_is_refused_and_nothing_is_created() {
        let (sw, dir) = dummy_switch(&[]);
        let outside = dir
            .path()
            .parent()
            .unwrap()
            .join(format!("victim-{}", std::process::id()));
        std::fs::write(&outside, b"keep").unwrap();
        let name = format!("../{}", outside.file_name().unwrap().to_str().unwrap());
        sw.apply(&one_port_config("br0", &name, "dpdkvhostuser"));
        let e = error_of(&sw, &name).expect("an error on the interface");
        assert!(e.contains("could not open network device"), "{e}");
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
        std::fs::remove_file(&outside).unwrap();
    }

    #[test]
    fn a_bridge_with_an_invalid_name_is_not_created() {
        let (sw, _dir) = dummy_switch(&[]);
        sw.apply(&one_port_config("../x", "../x", "internal"));
        assert!(!sw.bridge_names().contains("../x"));
        let e = error_of(&sw, "../x").expect("an error on the bridge's interface");
        assert!(e.contains("invalid interface name"), "{e}");
        // Another valid port on that bridge gets an error too.
        sw.apply(&one_port_config("a/b", "p1", "dummy"));
        let e = error_of(&sw, "p1").expect("an error on p1");
        assert!(e.contains("could not add to bridge"), "{e}");
        assert!(sw.dummy("p1").is_none());
    }

    #[test]
    fn a_regular_file_where_a_vhost_socket_goes_is_kept_and_reported() {
        let (sw, dir) = dummy_switch(&[]);
        let path = dir.path().join("vhu0");
        std::fs::write(&path, b"not a socket").unwrap();
        sw.apply(&one_port_config("br0", "vhu0", "dpdkvhostuser"));
        let e = error_of(&sw, "vhu0").expect("an error on vhu0");
        assert!(e.contains("not a socket"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
    }

    #[test]
    fn vhost_sockets_go_to_the_sock_dir_with_the_configured_mode() {
        use std::os::unix::fs::MetadataExt;
        let (sw, dir) = dummy_switch(&[]);
        let mut cfg = one_port_config("br0", "vhu1", "dpdkvhostuser");
        cfg.other_config
            .insert("vhost-sock-dir".into(), "vhost".into());
        cfg.other_config
            .insert("vhost-sock-mode".into(), "0660".into());
        sw.apply(&cfg);
        assert_eq!(error_of(&sw, "vhu1"), None);
        let m = std::fs::symlink_metadata(dir.path().join("vhost/vhu1")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o660);
        // The port goes away: its socket goes too.
        cfg.bridges.get_mut("br0").unwrap().ports.clear();
        sw.apply(&cfg);
        assert!(!dir.path().join("vhost/vhu1").exists());
    }

    fn ofport_of(sw: &Switch, name: &str) -> i64 {
        sw.iface_status()
            .into_iter()
            .find(|s| s.name == name)
            .map_or(-2, |s| s.ofport)
    }

    #[test]
    fn ofport_request_is_honoured_moved_and_refused_when_taken() {
        let (sw, _d) = dummy_switch(&[("p1", 5, None), ("p2", 6, None)]);
        assert_eq!(ofport_of(&sw, "p1"), 5);
        let mut cfg = sw.lock().applied.clone().unwrap();
        let set = |cfg: &mut SwitchConfig, port: &str, n: u32| {
            cfg.bridges
                .get_mut("br0")
                .unwrap()
                .ports
                .get_mut(port)
                .unwrap()
                .interfaces[0]
                .ofport_request = Some(n);
        };
        set(&mut cfg, "p1", 9);
        sw.apply(&cfg);
        assert_eq!(ofport_of(&sw, "p1"), 9);
        // p2 asks for p1's number: it is refused with an error, p1 keeps it.
        set(&mut cfg, "p2", 9);
        sw.apply(&cfg);
        assert_eq!(ofport_of(&sw, "p1"), 9);
        assert_eq!(ofport_of(&sw, "p2"), -1);
        let e = error_of(&sw, "p2").expect("an error on p2");
        assert!(e.contains("already in use"), "{e}");
    }

    #[test]
    fn the_default_local_mac_is_unicast_and_locally_administered() {
        let m = default_local_mac("br-int");
        assert_eq!(m[0] & 0x03, 0x02);
        assert_eq!(m, default_local_mac("br-int"));
        assert_ne!(m, default_local_mac("br-ex"));
    }
}

/// A port of a bridge, for listings.
pub struct PortListing {
    pub bridge: String,
    pub name: String,
    pub ofport: PortNo,
    pub dp_port: DpPortNo,
    pub kind: String,
}

/// Totals over the PMD threads.
#[derive(Default)]
pub struct PmdSummary {
    pub hits: u64,
    pub upcalls: u64,
    pub lost: u64,
}

impl Switch {
    /// Every datapath port, by number (patch ports have none).
    pub fn port_list(&self) -> Vec<PortListing> {
        let st = self.lock();
        let mut out: Vec<PortListing> = st
            .ifaces
            .iter()
            // Patch ports have no datapath port.
            .filter(|(_, s)| s.patch.is_none())
            .map(|(name, s)| PortListing {
                bridge: s.bridge.clone(),
                name: name.clone(),
                ofport: s.ofport,
                dp_port: s.dp_port,
                kind: s.config.kind.clone(),
            })
            .collect();
        out.sort_by_key(|p| p.dp_port);
        out
    }

    /// Tunnel interfaces: (name, datapath port, configuration).
    pub fn tunnel_ports(&self) -> Vec<(String, DpPortNo, crate::tunnel_config::TunnelConfig)> {
        let st = self.lock();
        st.ifaces
            .iter()
            .filter_map(|(name, s)| {
                let (cfg, _) = crate::tunnel_config::TunnelConfig::parse(
                    name,
                    &s.config.kind,
                    &s.config.options,
                )
                .ok()?;
                Some((name.clone(), s.dp_port, cfg))
            })
            .collect()
    }

    /// Tells native tunnelling (`crate::tnl::native`) the tunnel ports and
    /// devices as configured now.
    fn publish_tnl_view(&self, st: &SwitchState) {
        use crate::tnl::native::{DevInfo, TnlPortInfo, TnlView};
        let mut v = TnlView::default();
        for (name, slot) in &st.ifaces {
            if crate::tunnel_config::is_tunnel(&slot.config.kind) {
                if let Ok((cfg, _)) = crate::tunnel_config::TunnelConfig::parse(
                    name,
                    &slot.config.kind,
                    &slot.config.options,
                ) {
                    v.tunnels.push(TnlPortInfo {
                        name: name.clone(),
                        dp_port: slot.dp_port,
                        cfg,
                        bridge: slot.bridge.clone(),
                    });
                }
                continue;
            }
            let mac = self.slow.bridge(&slot.bridge).and_then(|ofp| {
                ofp.lock()
                    .runtime
                    .get(&slot.ofport)
                    .and_then(|r| r.port.info().mac)
            });
            v.devs.insert(
                name.clone(),
                DevInfo {
                    bridge: slot.bridge.clone(),
                    dp_port: slot.dp_port,
                    mac: mac.map(wire::MacAddr),
                },
            );
        }
        v.tunnels.sort_by_key(|t| t.dp_port);
        self.slow.tnl.set_view(v);
    }

    /// MAC addresses of the switch's own devices (internal ports), by name.
    pub fn device_macs(&self) -> BTreeMap<String, wire::MacAddr> {
        let st = self.lock();
        let mut out = BTreeMap::new();
        for (name, slot) in &st.ifaces {
            let Some(ofp) = self.slow.bridge(&slot.bridge) else {
                continue;
            };
            let bst = ofp.lock();
            if let Some(mac) = bst
                .runtime
                .get(&slot.ofport)
                .and_then(|r| r.port.info().mac)
            {
                out.insert(name.clone(), wire::MacAddr(mac));
            }
        }
        out
    }

    /// `status` of a tunnel interface: the underlay device its remote is
    /// routed through, and whether that device's carrier is up (as OVS
    /// reports `tunnel_egress_iface` and `tunnel_egress_iface_carrier`).
    fn tunnel_status(&self, iface: &InterfaceConfig) -> Option<BTreeMap<String, String>> {
        if !crate::tunnel_config::is_tunnel(&iface.kind) {
            return None;
        }
        let mut m = BTreeMap::new();
        let cfg =
            crate::tunnel_config::TunnelConfig::parse(&iface.name, &iface.kind, &iface.options)
                .ok()?
                .0;
        if let crate::tunnel_config::Endpoint::Ip(remote) = cfg.remote
            && let Some((dev, _, _)) = self.slow.tnl.next_hop(remote)
        {
            let carrier = std::fs::read_to_string(format!("/sys/class/net/{dev}/carrier"))
                .is_ok_and(|c| c.trim() == "1");
            m.insert(
                "tunnel_egress_iface_carrier".to_string(),
                if carrier { "up" } else { "down" }.to_string(),
            );
            m.insert("tunnel_egress_iface".to_string(), dev);
        }
        Some(m)
    }

    pub fn pmd_summary(&self) -> PmdSummary {
        let mut s = PmdSummary::default();
        for p in self.dp.pmd_stats() {
            s.hits += p.emc_hits + p.megaflow_hits;
            s.upcalls += p.upcalls;
            s.lost += p.lost_upcalls;
        }
        s
    }
}
