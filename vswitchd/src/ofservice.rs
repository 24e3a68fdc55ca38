//! OpenFlow for every bridge: the local management socket
//! (`RUNDIR/BRIDGE.mgmt`), active connections to the bridge's controllers
//! with reconnect backoff, and the [`SwitchAgent`] that applies what they
//! say to the bridge.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datapath::Packet;
use flows::action::port as ofp_port;
use flows::table::FlowFilter;
use flows::{FlowKey, Match};
use openflow::conn::{BundledMod, ConnConfig, OfConnection, SwitchAgent};
use openflow::consts::{NO_BUFFER, OFP10_VERSION, OFP13_VERSION, OFP14_VERSION, OFP15_VERSION};
use openflow::error::OfError;
use openflow::message::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::{ControllerConfig, SwitchConfig};
use crate::dbstatus::ControllerStatus;
use crate::ofproto::{AsyncMsg, Ofproto, PortReason};
use crate::switch::Switch;
use vhost_port::SocketPerms;
use vhost_port::sockfile::{OwnedSocket, bind_listener};

/// State of one configured controller, for its DB row.
#[derive(Default)]
pub struct CtrlState {
    pub connected: AtomicBool,
    pub connects: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    pub since: Mutex<Option<Instant>>,
    pub role: Mutex<String>,
}

struct ControllerTask {
    cfg: ControllerConfig,
    state: Arc<CtrlState>,
    task: JoinHandle<()>,
}

struct BridgeOf {
    listener: JoinHandle<()>,
    /// `RUNDIR/BRIDGE.mgmt`, removed with the bridge if still ours.
    socket: Option<OwnedSocket>,
    versions: u32,
    controllers: HashMap<String, ControllerTask>,
}

impl BridgeOf {
    /// Stops the listener and the controller connections; removes the
    /// management socket.
    fn close(self) {
        self.listener.abort();
        for c in self.controllers.values() {
            c.task.abort();
        }
        if let Some(s) = &self.socket {
            s.remove();
        }
    }
}

/// All OpenFlow endpoints of the switch.
pub struct OfManager {
    switch: Arc<Switch>,
    rundir: PathBuf,
    rt: tokio::runtime::Handle,
    bridges: Mutex<BTreeMap<String, BridgeOf>>,
    exit: tokio::sync::Notify,
}

/// The HELLO bitmap of a bridge's `protocols` column. As in Open
/// vSwitch, an empty column enables every version (here 1.0, 1.3, 1.4 and
/// 1.5); 1.1 and 1.2, which this switch does not speak, are ignored.
fn versions_of(protocols: &[String]) -> u32 {
    let mut v = 0;
    for p in protocols {
        match p.as_str() {
            "OpenFlow10" => v |= 1 << OFP10_VERSION,
            "OpenFlow13" => v |= 1 << OFP13_VERSION,
            "OpenFlow14" => v |= 1 << OFP14_VERSION,
            "OpenFlow15" => v |= 1 << OFP15_VERSION,
            _ => {}
        }
    }
    if v == 0 {
        openflow::conn::DEFAULT_VERSIONS
    } else {
        v
    }
}

impl OfManager {
    pub fn new(switch: Arc<Switch>, rundir: PathBuf, rt: tokio::runtime::Handle) -> OfManager {
        OfManager {
            switch,
            rundir,
            rt,
            bridges: Mutex::new(BTreeMap::new()),
            exit: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BridgeOf>> {
        self.bridges.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves when `appctl exit` asked the daemon to stop.
    pub async fn exit_requested(&self) {
        self.exit.notified().await
    }

    pub fn request_exit(&self) {
        self.exit.notify_one();
    }

    /// Opens and closes listeners and controller connections to match `cfg`.
    pub fn configure(&self, cfg: &SwitchConfig) {
        let mut bridges = self.lock();
        let gone: Vec<String> = bridges
            .keys()
            .filter(|b| !cfg.bridges.contains_key(*b))
            .cloned()
            .collect();
        for name in gone {
            if let Some(b) = bridges.remove(&name) {
                b.close();
            }
        }
        for (name, bc) in &cfg.bridges {
            let Some(ofp) = self.switch.slow.bridge(name) else {
                continue;
            };
            let versions = versions_of(&bc.protocols);
            let restart = bridges.get(name).is_some_and(|b| b.versions != versions);
            if restart && let Some(b) = bridges.remove(name) {
                b.close();
            }
            let entry = bridges.entry(name.clone()).or_insert_with(|| {
                let (listener, socket) = self.spawn_listener(ofp.clone(), versions);
                BridgeOf {
                    listener,
                    socket,
                    versions,
                    controllers: HashMap::new(),
                }
            });
            // Controllers; none while flow-restore-wait is on, so that no
            // controller changes the table in the middle of a restore.
            let controllers: &[ControllerConfig] = if cfg.flow_restore_wait() {
                &[]
            } else {
                &bc.controllers
            };
            let wanted: HashMap<&str, &ControllerConfig> =
                controllers.iter().map(|c| (c.target.as_str(), c)).collect();
            entry.controllers.retain(|t, c| {
                let keep = wanted.get(t.as_str()).is_some_and(|w| **w == c.cfg);
                if !keep {
                    c.task.abort();
                    if c.state.connected.load(Ordering::Relaxed) {
                        ofp.controllers_connected.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                keep
            });
            for c in controllers {
                if entry.controllers.contains_key(&c.target) {
                    continue;
                }
                let state = Arc::new(CtrlState::default());
                let task = self.rt.spawn(controller_loop(
                    self.switch.clone(),
                    ofp.clone(),
                    c.clone(),
                    versions,
                    state.clone(),
                ));
                entry.controllers.insert(
                    c.target.clone(),
                    ControllerTask {
                        cfg: c.clone(),
                        state,
                        task,
                    },
                );
            }
        }
    }

    /// Listens on `RUNDIR/BRIDGE.mgmt` (mode 0600; only a stale socket is
    /// ever replaced there).
    fn spawn_listener(
        &self,
        ofp: Arc<Ofproto>,
        versions: u32,
    ) -> (JoinHandle<()>, Option<OwnedSocket>) {
        let path = self.rundir.join(format!("{}.mgmt", ofp.name));
        let switch = self.switch.clone();
        let (std_listener, socket) = match bind_listener(&path, SocketPerms::default()) {
            Ok((l, s)) => (Some(l), Some(s)),
            Err(e) => {
                warn!(bridge = %ofp.name, "cannot listen for OpenFlow: {e}");
                (None, None)
            }
        };
        let task = self.rt.spawn(async move {
            let Some(std_listener) = std_listener else {
                return;
            };
            let listener = match std_listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::UnixListener::from_std(std_listener))
            {
                Ok(l) => l,
                Err(e) => {
                    warn!("{}: cannot listen: {e}", path.display());
                    return;
                }
            };
            let name = path.display().to_string();
            let max = ovsdb::listener::DEFAULT_MAX_CONNECTIONS;
            ovsdb::listener::serve_connections(listener, &name, max, |stream| {
                let (sw, ofp) = (switch.clone(), ofp.clone());
                let cfg = ConnConfig {
                    versions,
                    probe_interval_ms: 0,
                };
                async move {
                    drive(stream, sw, ofp, cfg, None).await;
                }
            })
            .await;
        });
        (task, socket)
    }

    /// The connection state of every controller, for the DB.
    pub fn controller_status(&self) -> Vec<ControllerStatus> {
        let bridges = self.lock();
        let mut out = Vec::new();
        for b in bridges.values() {
            for c in b.controllers.values() {
                let connected = c.state.connected.load(Ordering::Relaxed);
                let mut status = BTreeMap::new();
                status.insert(
                    "state".to_owned(),
                    if connected { "ACTIVE" } else { "BACKOFF" }.to_owned(),
                );
                if let Some(since) = *c.state.since.lock().unwrap_or_else(|p| p.into_inner()) {
                    let key = if connected {
                        "sec_since_connect"
                    } else {
                        "sec_since_disconnect"
                    };
                    status.insert(key.to_owned(), since.elapsed().as_secs().to_string());
                }
                if let Some(e) = c
                    .state
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                {
                    status.insert("last_error".to_owned(), e);
                }
                let role = c
                    .state
                    .role
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                out.push(ControllerStatus {
                    uuid: c.cfg.uuid,
                    connected,
                    role,
                    status,
                });
            }
        }
        out
    }

    /// Stops every connection.
    pub fn shutdown(&self) {
        let mut bridges = self.lock();
        for b in std::mem::take(&mut *bridges).into_values() {
            b.close();
        }
    }
}

/// Connects to a controller, runs the connection, and reconnects with
/// exponential backoff (1 s doubling up to `max_backoff`, default 8 s).
async fn controller_loop(
    switch: Arc<Switch>,
    ofp: Arc<Ofproto>,
    c: ControllerConfig,
    versions: u32,
    state: Arc<CtrlState>,
) {
    let max_backoff = Duration::from_millis(c.max_backoff.unwrap_or(8000).max(1000));
    let mut backoff = Duration::from_secs(1);
    let cfg = ConnConfig {
        versions,
        probe_interval_ms: c.inactivity_probe.unwrap_or(5000),
    };
    loop {
        let result = if let Some(rest) = c.target.strip_prefix("tcp:") {
            let addr = rest.to_string();
            let addr = match addr.rsplit_once(':') {
                Some(_) => addr,
                None => format!("{addr}:6653"),
            };
            match tokio::time::timeout(
                Duration::from_secs(5),
                tokio::net::TcpStream::connect(&addr),
            )
            .await
            {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    Ok(Box::new(s) as Box<dyn Stream>)
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("connection timed out".to_string()),
            }
        } else if let Some(path) = c.target.strip_prefix("unix:") {
            tokio::net::UnixStream::connect(path)
                .await
                .map(|s| Box::new(s) as Box<dyn Stream>)
                .map_err(|e| e.to_string())
        } else {
            Err(format!("unsupported controller target {}", c.target))
        };
        match result {
            Ok(stream) => {
                info!(bridge = %ofp.name, "connected to controller {}", c.target);
                backoff = Duration::from_secs(1);
                *state.since.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                *state.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                state.connected.store(true, Ordering::Relaxed);
                state.connects.fetch_add(1, Ordering::Relaxed);
                ofp.controllers_connected.fetch_add(1, Ordering::Relaxed);
                // Leaving fail-open: cached NORMAL decisions must go.
                let sw = switch.clone();
                let _ = tokio::task::spawn_blocking(move || sw.revalidate_now()).await;
                let reason = drive(
                    stream,
                    switch.clone(),
                    ofp.clone(),
                    cfg,
                    Some(state.clone()),
                )
                .await;
                state.connected.store(false, Ordering::Relaxed);
                ofp.controllers_connected.fetch_sub(1, Ordering::Relaxed);
                *state.since.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                *state.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
                info!(bridge = %ofp.name, "disconnected from controller {}: {reason}", c.target);
                let sw = switch.clone();
                let _ = tokio::task::spawn_blocking(move || sw.revalidate_now()).await;
            }
            Err(e) => {
                debug!(bridge = %ofp.name, "controller {}: {e}", c.target);
                *state.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(max_backoff);
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

fn to_message(msg: &AsyncMsg, ofp: &Ofproto, now: u64, version: u8) -> Message {
    match msg {
        AsyncMsg::PacketIn {
            reason,
            table_id,
            cookie,
            in_port,
            total_len,
            data,
            metadata,
            userdata,
            continuation,
        } => {
            let mut k = FlowKey::default();
            let mut m = FlowKey::default();
            k.in_port = *in_port;
            m.in_port = u32::MAX;
            // The pipeline metadata the packet had at the controller action
            // (what OVN's pinctrl reads: the logical datapath in `metadata`,
            // logical ports in registers), as OVS puts it in the match.
            if let Some(md) = metadata {
                let fields = [
                    flows::Field::Metadata,
                    flows::Field::PktMark,
                    flows::Field::TunId,
                ]
                .into_iter()
                .chain((0..16).map(flows::Field::Reg));
                for f in fields {
                    let v = f.get(md);
                    if v != 0 {
                        f.set(&mut k, v);
                        f.set(&mut m, f.max_value());
                    }
                }
            }
            let pi = PacketIn {
                buffer_id: NO_BUFFER,
                total_len: *total_len,
                reason: reason.wire_code(version),
                table_id: *table_id,
                cookie: *cookie,
                match_: Match::new(k, m),
                data: data.as_ref().clone(),
            };
            if userdata.is_none() && continuation.is_none() {
                Message::PacketIn(pi)
            } else {
                // The connection sends it as a plain packet-in (without the
                // userdata) unless the controller asked for packet-in2.
                Message::Nicira(openflow::msg::nicira::NxMsg::PacketIn2(
                    openflow::msg::nicira::PacketIn2 {
                        packet_in: pi,
                        userdata: userdata.as_ref().map(|u| u.as_ref().clone()),
                        continuation: continuation.as_ref().map(|c| c.as_ref().clone()),
                    },
                ))
            }
        }
        AsyncMsg::FlowRemoved(r) => {
            let age = now.saturating_sub(r.rule.created_ms);
            Message::FlowRemoved(FlowRemoved {
                cookie: r.rule.cookie,
                priority: r.rule.priority.min(0xffff) as u16,
                reason: match r.reason {
                    flows::table::RemovedReason::IdleTimeout => 0,
                    flows::table::RemovedReason::HardTimeout => 1,
                    flows::table::RemovedReason::Delete => 2,
                    #[allow(unreachable_patterns)]
                    _ => 3,
                },
                table_id: r.table_id,
                duration_sec: (age / 1000) as u32,
                duration_nsec: ((age % 1000) * 1_000_000) as u32,
                idle_timeout: r.rule.idle_timeout,
                hard_timeout: r.rule.hard_timeout,
                packet_count: r.rule.n_packets,
                byte_count: r.rule.n_bytes,
                match_: r.rule.m,
            })
        }
        AsyncMsg::PortStatus { reason, ofport } => {
            let desc = port_descs(ofp)
                .into_iter()
                .find(|d| d.port_no == *ofport)
                .unwrap_or(PortDesc {
                    port_no: *ofport,
                    ..PortDesc::default()
                });
            Message::PortStatus(PortStatus {
                reason: match reason {
                    PortReason::Add => 0,
                    PortReason::Delete => 1,
                    PortReason::Modify => 2,
                },
                desc,
            })
        }
    }
}

/// Runs one OpenFlow connection until it closes; returns why.
async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    switch: Arc<Switch>,
    ofp: Arc<Ofproto>,
    cfg: ConnConfig,
    ctrl: Option<Arc<CtrlState>>,
) -> String {
    let epoch = Instant::now();
    let now = || epoch.elapsed().as_millis() as u64;
    let mut conn = OfConnection::new(cfg, now());
    let mut agent = BridgeAgent {
        switch: switch.clone(),
        ofp: ofp.clone(),
        dirty: false,
    };
    let mut async_rx = ofp.async_tx.subscribe();
    let mut buf = vec![0u8; 256 * 1024];
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        let out = conn.take_output();
        if !out.is_empty()
            && let Err(e) = stream.write_all(&out).await
        {
            return format!("write error: {e}");
        }
        if let Some(r) = conn.closed() {
            return format!("{r:?}");
        }
        if let Some(c) = &ctrl {
            let role = match conn.role() {
                role::MASTER => "master",
                role::SLAVE => "slave",
                _ => "other",
            };
            *c.role.lock().unwrap_or_else(|p| p.into_inner()) = role.to_string();
        }
        tokio::select! {
            r = stream.read(&mut buf) => {
                let n = match r {
                    Ok(0) => return "connection closed by peer".to_string(),
                    Ok(n) => n,
                    Err(e) => return format!("read error: {e}"),
                };
                let t = now();
                let data = &buf[..n];
                tokio::task::block_in_place(|| {
                    conn.receive(data, &mut agent, t);
                    if agent.dirty {
                        agent.dirty = false;
                        agent.switch.revalidate_now();
                    }
                });
            }
            m = async_rx.recv() => {
                match m {
                    Ok(msg) => {
                        if let Some(v) = conn.version() {
                            conn.send_async(&to_message(&msg, &ofp, switch.slow.now_ms(), v));
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        warn!(bridge = %ofp.name, "{n} asynchronous messages dropped for a slow connection");
                    }
                    Err(_) => return "bridge deleted".to_string(),
                }
            }
            _ = tick.tick() => conn.tick(now()),
        }
    }
}

/// Port descriptions of a bridge, LOCAL last.
pub fn port_descs(ofp: &Ofproto) -> Vec<PortDesc> {
    let st = ofp.lock();
    let mut out: Vec<PortDesc> = st
        .runtime
        .iter()
        .map(|(no, r)| {
            let info = r.port.info();
            let up = r.port.link_up();
            PortDesc {
                port_no: *no,
                hw_addr: info.mac.unwrap_or([0; 6]),
                name: r.name.clone(),
                config: (if r.admin_down { OFPPC_PORT_DOWN } else { 0 })
                    | (if st.ports.get(*no).is_some_and(|bp| !bp.flood) {
                        OFPPC_NO_FLOOD
                    } else {
                        0
                    }),
                state: if up { 4 } else { 1 },
                curr: 0x820,
                advertised: 0,
                supported: 0,
                peer: 0,
                curr_speed: 10_000_000,
                max_speed: 0,
            }
        })
        .collect();
    out.sort_by_key(|d| {
        if d.port_no == ofp_port::LOCAL {
            u64::MAX
        } else {
            u64::from(d.port_no)
        }
    });
    out
}

/// OFPPC_PORT_DOWN.
const OFPPC_PORT_DOWN: u32 = 1;
/// OFPPC_NO_FLOOD (OpenFlow 1.0).
const OFPPC_NO_FLOOD: u32 = 1 << 4;

/// Applies a group mod to a bridge's state (its lock held).
fn apply_group_mod(st: &mut crate::ofproto::BridgeState, gm: GroupMod) -> Result<(), OfError> {
    let res = match gm.command {
        GroupModCommand::Add => st.groups.add(gm.group),
        GroupModCommand::Modify => st.groups.modify(gm.group),
        GroupModCommand::Delete => {
            for id in st.groups.delete(gm.group.id) {
                st.pipeline.delete_group_users(id);
            }
            Ok(())
        }
    };
    res.map_err(|e| match e {
        flows::group::GroupError::Exists(_) => OfError::GroupExists,
        flows::group::GroupError::Unknown(_) => OfError::UnknownGroup,
        flows::group::GroupError::SelfReference(_) => OfError::ChainingUnsupported,
        _ => OfError::InvalidGroup,
    })
}

/// One flow-mod of a bundle (its `tun_metadataN` already bound): meters
/// checked, then applied; removed rules are collected for FLOW_REMOVED.
fn bundle_flow_mod(
    st: &mut crate::ofproto::BridgeState,
    fm: &FlowMod,
    now: u64,
    removed: &mut Vec<flows::table::RemovedRule>,
) -> Result<(), OfError> {
    if !fm.command.is_delete() {
        check_flow_refs(st, &fm.actions)?;
    }
    let out = st
        .pipeline
        .flow_mod(fm, now)
        .map_err(|e| openflow::convert::flow_mod_error(&e))?;
    if fm.command.is_delete() {
        removed.extend(out.removed);
    }
    Ok(())
}

/// Applies OpenFlow requests to one bridge.
struct BridgeAgent {
    switch: Arc<Switch>,
    ofp: Arc<Ofproto>,
    /// Flow or port state changed since the datapath was last flushed.
    dirty: bool,
}

fn stats_filter(r: &FlowStatsRequest) -> FlowFilter {
    let mut fm = FlowMod::new(FlowModCommand::Delete);
    fm.table_id = r.table_id;
    fm.m = r.match_;
    fm.out_port = r.out_port;
    fm.out_group = r.out_group;
    fm.cookie = r.cookie;
    fm.cookie_mask = r.cookie_mask;
    FlowFilter::from_flow_mod(&fm)
}

impl SwitchAgent for BridgeAgent {
    fn features(&self) -> Features {
        let dpid = self.ofp.lock().dpid;
        Features {
            datapath_id: dpid,
            n_buffers: 0,
            n_tables: 254,
            auxiliary_id: 0,
            // FLOW_STATS | TABLE_STATS | PORT_STATS | GROUP_STATS
            capabilities: 0x1 | 0x2 | 0x4 | 0x8,
            actions: 0xfff,
            ports: port_descs(&self.ofp),
        }
    }

    fn flow_mod(&mut self, mut fm: FlowMod) -> Result<(), OfError> {
        let now = self.switch.slow.now_ms();
        let mut st = self.ofp.lock();
        st.tlv
            .bind_flow_mod(&mut fm)
            .map_err(openflow::convert::tun_metadata_error)?;
        if !fm.command.is_delete() {
            check_flow_refs(&st, &fm.actions)?;
        }
        let out = st
            .pipeline
            .flow_mod(&fm, now)
            .map_err(|e| openflow::convert::flow_mod_error(&e))?;
        drop(st);
        if fm.command.is_delete() {
            for r in out.removed {
                if r.rule.flags.send_flow_rem {
                    self.ofp.notify(AsyncMsg::FlowRemoved(Arc::new(r)));
                }
            }
        }
        self.dirty = true;
        Ok(())
    }

    fn group_mod(&mut self, gm: GroupMod) -> Result<(), OfError> {
        let mut st = self.ofp.lock();
        apply_group_mod(&mut st, gm)?;
        drop(st);
        self.dirty = true;
        Ok(())
    }

    fn meter_mod(&mut self, mm: MeterMod) -> Result<(), OfError> {
        let now = self.switch.slow.now_ms();
        let mut st = self.ofp.lock();
        crate::meters::meter_mod(&self.switch.dp, &self.ofp, &mut st, mm, now)?;
        self.dirty = true;
        Ok(())
    }

    /// Atomic bundles: the tables and groups are copied before the first
    /// message and put back if any message fails, all under the bridge's
    /// lock, so no packet is translated against a half-applied bundle.
    fn bundle_commit(&mut self, msgs: &[BundledMod], atomic: bool) -> Result<(), (usize, OfError)> {
        let now = self.switch.slow.now_ms();
        let mut st = self.ofp.lock();
        let saved = atomic.then(|| (st.pipeline.clone(), st.groups.clone()));
        let mut removed = Vec::new();
        let mut failed = None;
        for (i, m) in msgs.iter().enumerate() {
            let r = match m {
                BundledMod::Flow(fm) => {
                    let mut fm = fm.clone();
                    st.tlv
                        .bind_flow_mod(&mut fm)
                        .map_err(openflow::convert::tun_metadata_error)
                        .and_then(|()| bundle_flow_mod(&mut st, &fm, now, &mut removed))
                }
                BundledMod::Group(gm) => apply_group_mod(&mut st, gm.clone()),
                BundledMod::Port(_) => Err(OfError::BundleMsgUnsup),
            };
            if let Err(e) = r {
                failed = Some((i, e));
                break;
            }
        }
        if let Some(err) = failed {
            if let Some((pipeline, groups)) = saved {
                st.pipeline = pipeline;
                st.groups = groups;
                return Err(err);
            }
            self.dirty = true;
            return Err(err);
        }
        drop(st);
        for r in removed {
            if r.rule.flags.send_flow_rem {
                self.ofp.notify(AsyncMsg::FlowRemoved(Arc::new(r)));
            }
        }
        self.dirty = true;
        Ok(())
    }

    fn ct_flush_zone(&mut self, zone: u16) -> Result<(), OfError> {
        let n = self
            .switch
            .slow
            .ct
            .tracker()
            .flush(&conntrack::FlushFilter {
                zone: Some(zone),
                tuple: None,
            });
        debug!(bridge = %self.ofp.name, zone, "NXT_CT_FLUSH_ZONE: {n} connections flushed");
        Ok(())
    }

    fn ct_flush(&mut self, f: openflow::msg::ct_flush::CtFlush) -> Result<(), OfError> {
        let m = crate::ct_appctl::ct_match_of(&f);
        // As in OVS, a flush that finds nothing is not an OpenFlow error.
        let n = self
            .switch
            .slow
            .ct
            .tracker()
            .flush_match(f.zone, &m)
            .unwrap_or(0);
        debug!(bridge = %self.ofp.name, "NXT_CT_FLUSH: {n} connections flushed");
        Ok(())
    }

    fn tlv_table_mod(&mut self, m: openflow::msg::tlv::TlvTableMod) -> Result<(), OfError> {
        let map = {
            let mut st = self.ofp.lock();
            // A mapping a flow uses cannot be deleted.
            let used = if m.command == flows::tlv::TlvCommand::Add {
                0
            } else {
                st.pipeline
                    .dump(&stats_filter(&FlowStatsRequest::default()))
                    .fold(0u64, |u, (_, _, rule)| {
                        let r = rule.to_rule();
                        u | flows::tlv::tun_metadata_used(&r.m, &r.actions)
                    })
            };
            st.tlv
                .apply(m.command, &m.mappings, |idx| used & (1 << (idx % 64)) != 0)
                .map_err(openflow::convert::tlv_error)?;
            st.tlv.clone()
        };
        // Native tunnelling decodes and encodes Geneve options with it;
        // cached tnl_pop actions name the old map until revalidated.
        self.switch.slow.tnl.set_tlv_map(&self.ofp.name, &map);
        self.switch.revalidate_now();
        debug!(bridge = %self.ofp.name, command = ?m.command, "TLV map changed");
        Ok(())
    }

    fn tlv_table(&mut self) -> Result<openflow::msg::tlv::TlvTableReply, OfError> {
        let st = self.ofp.lock();
        Ok(openflow::msg::tlv::TlvTableReply {
            max_option_space: flows::tlv::MAX_OPTION_SPACE,
            max_fields: flows::tlv::MAX_FIELDS,
            mappings: st.tlv.mappings().copied().collect(),
        })
    }

    fn port_mod(&mut self, pm: PortMod) -> Result<(), OfError> {
        let mut st = self.ofp.lock();
        let Some(rt) = st.runtime.get_mut(&pm.port_no) else {
            return Err(OfError::PortModBadPort);
        };
        if pm.mask & OFPPC_PORT_DOWN != 0 {
            rt.admin_down = pm.config & OFPPC_PORT_DOWN != 0;
        }
        let up = rt.port.link_up() && !rt.admin_down;
        if let Some(bp) = st.ports.get_mut(pm.port_no) {
            bp.up = up;
            // OpenFlow 1.0's no-flood bit (Open vSwitch accepts it in every
            // version): the port gets no FLOOD or NORMAL-flooded frames.
            if pm.mask & OFPPC_NO_FLOOD != 0 {
                bp.flood = pm.config & OFPPC_NO_FLOOD == 0;
            }
        }
        drop(st);
        self.ofp.notify(AsyncMsg::PortStatus {
            reason: PortReason::Modify,
            ofport: pm.port_no,
        });
        self.dirty = true;
        Ok(())
    }

    fn packet_out(&mut self, mut po: PacketOut) -> Result<(), OfError> {
        if po.buffer_id != NO_BUFFER {
            return Err(OfError::BufferUnknown);
        }
        let now = self.switch.slow.now_ms();
        let slow = &self.switch.slow;
        let group = slow.patch_group(&self.ofp);
        let root = group
            .iter()
            .position(|b| Arc::ptr_eq(b, &self.ofp))
            .unwrap_or(0);
        let mut guards = crate::patch::lock_all(&group);
        let st = &guards[root];
        // Stock OVS decodes a packet-out's actions without the TLV map and
        // accepts fields it lacks; here they are bound when the map has
        // them, and otherwise stay unbound (writes do nothing, reads give 0).
        let mut bound = po.actions.clone();
        if st.tlv.bind_actions(&mut bound).is_ok() {
            po.actions = bound;
        }
        let dp_in = st.ports.get(po.in_port).map(|p| p.dp_port);
        let (mut key, _) =
            flows::parse::extract(&po.data, po.in_port).map_err(|_| OfError::BadPacket)?;
        key.in_port = po.in_port;
        // 1.5's packet-out match sets pipeline fields (registers,
        // metadata, tunnel fields) the packet starts with.
        let (mk, mm) = (po.metadata.key.words(), po.metadata.mask.words());
        for ((k, v), m) in key.words_mut().iter_mut().zip(mk).zip(mm) {
            *k = (*k & !m) | (v & m);
        }
        let mut x = {
            let set = crate::patch::patch_set(&group, &guards, root);
            st.translate_actions(&key, &po.actions, now, set.as_ref())
        };
        // The rules and tables the packet went through (output:TABLE,
        // resubmit, patch ports) count it, as OVS counts a packet-out.
        let bytes = po.data.len() as u64;
        let credit = |st: &mut crate::ofproto::BridgeState, rules: &[_], lookups: &[_]| {
            for (t, id) in rules {
                st.pipeline.credit(*t, *id, 1, bytes, now);
            }
            st.pipeline.credit_lookups(lookups, 1);
        };
        credit(&mut guards[root], &x.rules_hit, &x.table_lookups);
        for eff in &x.patch_effects {
            if let Some(i) = group.iter().position(|b| b.id == eff.bridge) {
                credit(&mut guards[i], &eff.rules_hit, &eff.table_lookups);
            }
        }
        drop(guards);
        slow.credit_patch(&x.patch_crossings, 1, bytes);
        self.ofp.stash_packet_ins(&mut x);
        let mut pkt = Packet::from_bytes(&po.data);
        pkt.in_port = dp_in.unwrap_or(u32::MAX);
        self.switch.dp.execute(pkt, x.actions);
        Ok(())
    }

    fn resume(&mut self, p: openflow::msg::nicira::PacketIn2) -> Result<(), OfError> {
        let c = p
            .continuation
            .as_deref()
            .ok_or(OfError::ResumeNotSupported)?;
        let c = openflow::msg::nicira::continuation::decode(c).map_err(|e| {
            let hex: String = c.iter().map(|b| format!("{b:02x}")).collect();
            warn!(bridge = %self.ofp.name, "NXT_RESUME: bad continuation ({e}): {hex}");
            OfError::BadPropertyValue
        })?;
        let pi = &p.packet_in;
        let md = &pi.match_;
        let in_port = if md.mask.in_port != 0 {
            md.key.in_port
        } else {
            ofp_port::LOCAL
        };
        let now = self.switch.slow.now_ms();
        let slow = &self.switch.slow;
        let group = slow.patch_group(&self.ofp);
        let root = group
            .iter()
            .position(|b| Arc::ptr_eq(b, &self.ofp))
            .unwrap_or(0);
        let guards = crate::patch::lock_all(&group);
        let st = &guards[root];
        let dp_in = st.ports.get(in_port).map(|p| p.dp_port);
        let (mut key, _) =
            flows::parse::extract(&pi.data, in_port).map_err(|_| OfError::BadPacket)?;
        key.in_port = in_port;
        // The registers and metadata the controller handed back.
        let (mk, mm) = (md.key.words(), md.mask.words());
        for ((k, v), m) in key.words_mut().iter_mut().zip(mk).zip(mm) {
            *k = (*k & !m) | (v & m);
        }
        let res = crate::recirc::Resources {
            ct: &slow.ct,
            recirc: &slow.recirc,
        };
        let mut x = {
            let set = crate::patch::patch_set(&group, &guards, root);
            st.translate_resume(&key, &c, now, Some(&res), set.as_ref())
        };
        drop(guards);
        slow.credit_patch(&x.patch_crossings, 1, pi.data.len() as u64);
        self.ofp.stash_packet_ins(&mut x);
        let mut pkt = Packet::from_bytes(&pi.data);
        pkt.in_port = dp_in.unwrap_or(u32::MAX);
        self.switch.dp.execute(pkt, x.actions);
        Ok(())
    }

    fn multipart(&mut self, req: &MultipartRequestBody) -> Result<MultipartReplyBody, OfError> {
        let now = self.switch.slow.now_ms();
        Ok(match req {
            MultipartRequestBody::Desc => MultipartReplyBody::Desc(SwitchDesc {
                mfr_desc: "ferrovs".into(),
                hw_desc: "ferrovs userspace datapath".into(),
                sw_desc: env!("CARGO_PKG_VERSION").into(),
                serial_num: "None".into(),
                dp_desc: self.ofp.name.clone(),
            }),
            MultipartRequestBody::Flow(r) => {
                self.switch.slow.sync_stats(&self.switch.dp);
                let st = self.ofp.lock();
                let rules = st.pipeline.dump(&stats_filter(r));
                MultipartReplyBody::Flow(
                    rules
                        .into_iter()
                        .map(|(t, _, rule)| {
                            openflow::convert::rule_to_flow_stats(t, &rule.to_rule(), now, &st.tlv)
                        })
                        .collect(),
                )
            }
            MultipartRequestBody::Aggregate(r) => {
                self.switch.slow.sync_stats(&self.switch.dp);
                let st = self.ofp.lock();
                let a = st.pipeline.aggregate(&stats_filter(r));
                MultipartReplyBody::Aggregate(AggregateStats {
                    packet_count: a.packet_count,
                    byte_count: a.byte_count,
                    flow_count: u32::try_from(a.flow_count).unwrap_or(u32::MAX),
                })
            }
            MultipartRequestBody::Table => {
                // Traffic the datapath caches handled reaches the tables'
                // counters through the megaflows' statistics.
                self.switch.slow.sync_stats(&self.switch.dp);
                let st = self.ofp.lock();
                MultipartReplyBody::Table(
                    (0..254u8)
                        .map(|t| TableStats {
                            table_id: t,
                            name: if t == 0 {
                                "classifier".into()
                            } else {
                                format!("table{t}")
                            },
                            max_entries: 1_000_000,
                            active_count: st.pipeline.table(t).map(|x| x.len() as u32).unwrap_or(0),
                            lookup_count: st.pipeline.table(t).map_or(0, |x| x.lookup_count()),
                            matched_count: st.pipeline.table(t).map_or(0, |x| x.matched_count()),
                        })
                        .collect(),
                )
            }
            MultipartRequestBody::PortStats { port_no } => {
                let st = self.ofp.lock();
                let mut out = Vec::new();
                for (no, rt) in &st.runtime {
                    if *port_no != ofp_port::ANY && *port_no != *no {
                        continue;
                    }
                    let s = rt.port.stats().snapshot();
                    out.push(PortStats {
                        port_no: *no,
                        rx_packets: s.rx_packets,
                        tx_packets: s.tx_packets,
                        rx_bytes: s.rx_bytes,
                        tx_bytes: s.tx_bytes,
                        rx_dropped: s.rx_dropped,
                        tx_dropped: s.tx_dropped,
                        rx_errors: s.rx_errors,
                        tx_errors: s.tx_errors,
                        ..PortStats::default()
                    });
                }
                if *port_no != ofp_port::ANY && out.is_empty() {
                    return Err(OfError::BadRequestPort);
                }
                MultipartReplyBody::PortStats(out)
            }
            MultipartRequestBody::PortDesc => MultipartReplyBody::PortDesc(port_descs(&self.ofp)),
            MultipartRequestBody::Group { group_id } => {
                let st = self.ofp.lock();
                MultipartReplyBody::Group(
                    st.groups
                        .iter()
                        .filter(|g| *group_id == openflow::consts::OFPG_ALL || g.id == *group_id)
                        .map(|g| GroupStats {
                            group_id: g.id,
                            bucket_stats: vec![(0, 0); g.buckets.len()],
                            ..GroupStats::default()
                        })
                        .collect(),
                )
            }
            MultipartRequestBody::GroupDesc => {
                let st = self.ofp.lock();
                MultipartReplyBody::GroupDesc(st.groups.iter().cloned().collect())
            }
            MultipartRequestBody::Meter { meter_id } => {
                let st = self.ofp.lock();
                MultipartReplyBody::Meter(crate::meters::meter_stats(
                    &self.switch.dp,
                    &st,
                    *meter_id,
                    now,
                )?)
            }
            MultipartRequestBody::MeterConfig { meter_id } => {
                let st = self.ofp.lock();
                MultipartReplyBody::MeterConfig(crate::meters::meter_configs(&st, *meter_id)?)
            }
            MultipartRequestBody::MeterFeatures => {
                MultipartReplyBody::MeterFeatures(crate::meters::meter_features())
            }
            MultipartRequestBody::TableFeatures => MultipartReplyBody::TableFeatures(
                (0..254u8)
                    .map(|t| TableFeatures {
                        table_id: t,
                        name: format!("table{t}"),
                        metadata_match: u64::MAX,
                        metadata_write: u64::MAX,
                        config: 0,
                        max_entries: 1_000_000,
                    })
                    .collect(),
            ),
        })
    }

    fn barrier(&mut self) {
        if self.dirty {
            self.dirty = false;
            self.switch.revalidate_now();
        }
    }
}

/// What a flow's actions name must exist, as OVS checks before adding or
/// modifying a flow: its groups (OFPBAC_BAD_OUT_GROUP), then its meters
/// (OFPMMFC_INVALID_METER).
fn check_flow_refs(
    st: &crate::ofproto::BridgeState,
    actions: &[flows::action::Action],
) -> Result<(), OfError> {
    if flows::table::groups_used(actions)
        .into_iter()
        .any(|g| st.groups.get(g).is_none())
    {
        return Err(OfError::BadOutGroup);
    }
    crate::meters::check_flow_meters(st, actions)
}
