//! The OpenFlow switch behind each bridge, and the slow path of the
//! datapath: translating missed packets through a bridge's pipeline,
//! learning MACs, sending packet-ins, keeping rule counters in step with
//! the megaflows that carry their traffic.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use datapath::{Datapath, Packet, Port, UpcallHandler, UpcallResult};
use flows::action::port as ofp_port;
use flows::classifier::RuleId;
use flows::group::GroupTable;
use flows::mac_learning::{LearnOutcome, MacLearning};
use flows::table::{FlowMod, FlowModCommand, Pipeline, RemovedRule};
use flows::xlate::{BridgePorts, XlateCtx, XlateResult};
use flows::{Action, DpAction, DpPortNo, FlowKey, Match, PortNo, UserspaceReason};
use tracing::{debug, warn};

use crate::config::FailMode;

/// Asynchronous messages for a bridge's OpenFlow connections.
#[derive(Clone, Debug)]
pub enum AsyncMsg {
    PacketIn {
        reason: UserspaceReason,
        table_id: u8,
        cookie: u64,
        in_port: PortNo,
        total_len: u16,
        data: Arc<Vec<u8>>,
        /// The pipeline's key when the controller action ran (registers,
        /// metadata, …), when the slow path still knew it.
        metadata: Option<Box<FlowKey>>,
        /// `controller(userdata=…)`.
        userdata: Option<Arc<Vec<u8>>>,
        /// `controller(pause)`: the continuation NXT_RESUME hands back.
        continuation: Option<Arc<Vec<u8>>>,
    },
    FlowRemoved(Arc<RemovedRule>),
    PortStatus {
        reason: PortReason,
        ofport: PortNo,
    },
}

/// OFPPR_*.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortReason {
    Add,
    Delete,
    Modify,
}

/// What the daemon knows about one open port of a bridge.
pub struct PortRuntime {
    pub name: String,
    pub dp_port: DpPortNo,
    pub port: Arc<dyn Port>,
    /// OpenFlow port_mod `down`.
    pub admin_down: bool,
}

/// Mutable state of a bridge; one lock, taken per upcall (per miss, never
/// per packet) and per OpenFlow message.
pub struct BridgeState {
    pub pipeline: Pipeline,
    pub groups: GroupTable,
    /// OpenFlow meters (`crate::meters`).
    pub meters: flows::meter::MeterTable,
    pub mac: MacLearning,
    pub ports: BridgePorts,
    pub runtime: BTreeMap<PortNo, PortRuntime>,
    pub fail_mode: FailMode,
    pub controllers_configured: bool,
    pub dpid: u64,
    /// The pipeline used in fail-open (standalone, controllers configured,
    /// none connected): one rule, NORMAL.
    failopen: Pipeline,
    /// Flows `learn` actions added, per learning rule (for `limit`).
    pub learned_by: crate::learn::LearnedBy,
    /// The Geneve TLV map (NXT_TLV_TABLE_MOD), one per bridge as in
    /// Open vSwitch.
    pub tlv: flows::tlv::TlvMap,
    /// Port mirrors (`crate::mirror`), applied after translation.
    pub mirrors: crate::mirror::Mirrors,
    /// Packets and bytes each mirror sent, by Mirror row.
    pub mirror_stats: BTreeMap<uuid::Uuid, (u64, u64)>,
    /// NetFlow export (`crate::netflow`), when `Bridge.netflow` is set.
    pub netflow: Option<crate::netflow::NetFlow>,
    /// Bridge-wide IPFIX sampling (`crate::ipfix`): the action put first in
    /// every datapath flow of the bridge.
    pub ipfix_sample: Option<DpAction>,
}

/// Packet-ins a translation produced, until the datapath hands their packet
/// up (`DpAction::Userspace::slot` names one): the pipeline metadata and
/// userdata the packet-in carries. Bounded: a packet the datapath dropped
/// instead leaves its entry behind until newer ones push it out.
#[derive(Default)]
pub struct PendingPacketIns {
    next: u32,
    q: std::collections::VecDeque<(u32, flows::xlate::PacketIn)>,
}

const PENDING_PACKET_INS: usize = 4096;

/// One bridge.
pub struct Ofproto {
    pub name: String,
    /// Stable non-zero id, unique among the daemon's bridges (patch ports
    /// and frozen states name their bridge by it).
    pub id: u32,
    pub st: Mutex<BridgeState>,
    /// See [`PendingPacketIns`].
    pub pins: Mutex<PendingPacketIns>,
    /// Connected controllers (remote, not the local management socket).
    pub controllers_connected: AtomicUsize,
    pub async_tx: tokio::sync::broadcast::Sender<AsyncMsg>,
}

fn normal_flow() -> FlowMod {
    let mut fm = FlowMod::new(FlowModCommand::Add);
    fm.priority = 0;
    fm.actions = vec![Action::Output {
        port: ofp_port::NORMAL,
        max_len: 0,
    }];
    fm
}

impl Ofproto {
    /// A bridge with no ports. A standalone bridge without controllers gets
    /// the `priority=0 actions=NORMAL` flow, as Open vSwitch does.
    pub fn new(
        name: &str,
        fail_mode: FailMode,
        controllers: bool,
        dpid: u64,
        now_ms: u64,
    ) -> Ofproto {
        let mut pipeline = Pipeline::new();
        if fail_mode == FailMode::Standalone && !controllers {
            let _ = pipeline.flow_mod(&normal_flow(), now_ms);
        }
        let mut failopen = Pipeline::new();
        let _ = failopen.flow_mod(&normal_flow(), now_ms);
        let (async_tx, _) = tokio::sync::broadcast::channel(4096);
        static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        Ofproto {
            name: name.to_string(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            st: Mutex::new(BridgeState {
                pipeline,
                groups: GroupTable::new(),
                meters: flows::meter::MeterTable::new(),
                mac: MacLearning::new(8192, 300),
                ports: BridgePorts::new(),
                runtime: BTreeMap::new(),
                fail_mode,
                controllers_configured: controllers,
                dpid,
                failopen,
                learned_by: Default::default(),
                tlv: Default::default(),
                mirrors: Default::default(),
                mirror_stats: Default::default(),
                netflow: None,
                ipfix_sample: None,
            }),
            controllers_connected: AtomicUsize::new(0),
            async_tx,
            pins: Mutex::new(PendingPacketIns::default()),
        }
    }

    /// Keeps the packet-ins of `x` for [`Self::take_packet_in`] and
    /// renumbers its userspace actions to find them again.
    pub fn stash_packet_ins(&self, x: &mut XlateResult) {
        if x.packet_ins.is_empty() {
            return;
        }
        let mut p = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        for a in &mut x.actions {
            if let DpAction::Userspace { slot, .. } = a
                && let Some(pin) = x.packet_ins.get(*slot as usize)
            {
                p.next = p.next.wrapping_add(1).max(1);
                let id = p.next;
                p.q.push_back((id, pin.clone()));
                if p.q.len() > PENDING_PACKET_INS {
                    p.q.pop_front();
                }
                *slot = id;
            }
        }
    }

    /// The packet-in a stashed translation recorded under `slot`.
    pub fn take_packet_in(&self, slot: u32) -> Option<flows::xlate::PacketIn> {
        let mut p = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        let i = p.q.iter().position(|(id, _)| *id == slot)?;
        p.q.remove(i).map(|(_, pin)| pin)
    }

    /// Locks the bridge state.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, BridgeState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when the bridge runs NORMAL instead of its tables (fail-open).
    pub fn fail_open(&self, st: &BridgeState) -> bool {
        st.fail_mode == FailMode::Standalone
            && st.controllers_configured
            && self.controllers_connected.load(Ordering::Relaxed) == 0
    }

    /// Sends an asynchronous message to the connections (dropped when none).
    pub fn notify(&self, msg: AsyncMsg) {
        let _ = self.async_tx.send(msg);
    }
}

impl BridgeState {
    /// Translates `key` (in_port = OpenFlow port) through the tables, or
    /// through NORMAL when `fail_open`.
    #[cfg(test)]
    pub fn translate(&self, key: &FlowKey, now_ms: u64, fail_open: bool) -> XlateResult {
        self.translate_dp(key, now_ms, fail_open, None, 0, None).0
    }

    /// The pipeline packets run through: the tables, or NORMAL alone in
    /// fail-open.
    pub fn active_pipeline(&self, fail_open: bool) -> &Pipeline {
        if fail_open {
            &self.failopen
        } else {
            &self.pipeline
        }
    }

    /// Translates `key` from `table_id` with the datapath resources `dp`
    /// (`ct`, recirculation; `None` reports `ct` as unsupported), then
    /// mirrors it; also returns the mirrors that got a copy (bit `i` for
    /// mirror `i`).
    pub fn translate_dp(
        &self,
        key: &FlowKey,
        now_ms: u64,
        fail_open: bool,
        dp: Option<&dyn flows::xlate::DpResources>,
        table_id: u8,
        patch: Option<&flows::xlate::PatchSet<'_>>,
    ) -> (XlateResult, u32) {
        // A later pass (recirculation) continues a packet already admitted.
        let first_pass = key.recirc_id == 0;
        if first_pass && self.mirrors.drops_input(key.in_port) {
            // A mirror's output port: what it receives is dropped.
            let mut x = XlateResult::default();
            x.wc.in_port = u32::MAX;
            x.cacheable = true;
            return (x, 0);
        }
        let ctx = XlateCtx {
            pipeline: self.active_pipeline(fail_open),
            groups: &self.groups,
            ports: &self.ports,
            mac: &self.mac,
            now_ms,
            dp,
            patch,
        };
        let mut x = flows::xlate::translate_from(&ctx, key, table_id);
        crate::meters::map_to_datapath(&self.meters, &mut x);
        let mirrored = self.mirrors.apply(&self.ports, key, first_pass, &mut x);
        (x, mirrored)
    }

    /// Counts `packets`/`bytes` for each mirror in `mirrored`.
    pub fn credit_mirrors(&mut self, mirrored: u32, packets: u64, bytes: u64) {
        if mirrored == 0 {
            return;
        }
        for (i, m) in self.mirrors.mirrors.iter().enumerate() {
            if mirrored & (1 << i) != 0 {
                let e = self.mirror_stats.entry(m.uuid).or_default();
                e.0 += packets;
                e.1 += bytes;
            }
        }
    }

    /// Continues a paused pipeline (NXT_RESUME) with the datapath
    /// resources `dp`: a `ct` after the pause (OVN's egress ACL stages,
    /// which a DHCP reply built by ovn-controller crosses on a switch with
    /// stateful ACLs) runs in the datapath and recirculates like any other.
    /// `patch` lets it continue through patch ports.
    pub fn translate_resume(
        &self,
        key: &FlowKey,
        c: &flows::xlate::Continuation,
        now_ms: u64,
        dp: Option<&dyn flows::xlate::DpResources>,
        patch: Option<&flows::xlate::PatchSet<'_>>,
    ) -> XlateResult {
        let ctx = XlateCtx {
            pipeline: &self.pipeline,
            groups: &self.groups,
            ports: &self.ports,
            mac: &self.mac,
            now_ms,
            dp,
            patch,
        };
        let mut x = flows::xlate::translate_resume(&ctx, key, c);
        crate::meters::map_to_datapath(&self.meters, &mut x);
        x
    }

    /// Translates a packet-out's action list (through patch ports with
    /// `patch`).
    pub fn translate_actions(
        &self,
        key: &FlowKey,
        actions: &[Action],
        now_ms: u64,
        patch: Option<&flows::xlate::PatchSet<'_>>,
    ) -> XlateResult {
        let ctx = XlateCtx {
            pipeline: &self.pipeline,
            groups: &self.groups,
            ports: &self.ports,
            mac: &self.mac,
            now_ms,
            dp: None,
            patch,
        };
        let mut x = flows::xlate::translate_actions(&ctx, key, actions);
        crate::meters::map_to_datapath(&self.meters, &mut x);
        x
    }

    /// Applies NORMAL's learning requests; returns the MACs whose entry is
    /// new or moved: cached decisions that forward *to* them may be stale.
    pub fn learn(&mut self, x: &XlateResult, now_ms: u64) -> Vec<[u8; 6]> {
        self.learn_requests(&x.learned, now_ms)
    }

    /// [`Self::learn`] for a list of requests (a peer bridge's, after a
    /// patch port).
    pub fn learn_requests(
        &mut self,
        reqs: &[flows::xlate::MacLearnRequest],
        now_ms: u64,
    ) -> Vec<[u8; 6]> {
        let mut changed = Vec::new();
        for l in reqs {
            match self.mac.learn(l.vlan, l.mac, l.port, now_ms) {
                LearnOutcome::Refreshed => {}
                _ => changed.push(l.mac),
            }
        }
        changed
    }

    /// Adds the flows `learn` actions built (not in fail-open, whose
    /// pipeline is NORMAL only). True when a table changed.
    pub fn apply_learned(&mut self, x: &XlateResult, now_ms: u64) -> bool {
        if x.learned_flows.is_empty() {
            return false;
        }
        let mut by = std::mem::take(&mut self.learned_by);
        let changed = by.apply(&mut self.pipeline, x, now_ms);
        self.learned_by = by;
        changed
    }
}

/// A peer bridge (behind a patch port), the rules a megaflow hit there and
/// the lookups it made in that bridge's tables.
type PeerRules = (
    Arc<Ofproto>,
    Vec<(u8, RuleId)>,
    Vec<flows::table::TableLookup>,
);

/// Rules a megaflow's traffic belongs to, and the counters already credited.
struct MegaflowOwner {
    bridge: Arc<Ofproto>,
    rules: Vec<(u8, RuleId)>,
    /// The table lookups its translation made (OFPMP_TABLE counters).
    lookups: Vec<flows::table::TableLookup>,
    /// Mirrors the cached actions copy to (bit per mirror).
    mirrored: u32,
    /// The NetFlow flow its traffic belongs to.
    netflow: Option<crate::netflow::NfTag>,
    /// Rules of peer bridges the packet ran through (patch ports).
    peers: Vec<PeerRules>,
    /// Patch pairs crossed, for the patch ports' counters.
    crossings: Vec<flows::xlate::PatchCrossing>,
    /// What of its megaflows' counters was credited already.
    credited: crate::megaflow_credit::Credited,
}

/// Requests to the revalidator thread.
pub enum RevalRequest {
    /// Drop the cached decisions that forward to these MACs (NORMAL
    /// learned, moved or aged them out).
    FlushMacs(Vec<[u8; 6]>),
    /// Drop every cached decision (a `learn` action changed a table).
    FlushAll,
}

/// Megaflows whose decision depended on the destination MAC being one of
/// `macs` (NORMAL always matches dl_dst exactly).
fn forwards_to(macs: Vec<[u8; 6]>) -> datapath::MegaflowPredicate {
    let set: std::collections::HashSet<[u8; 6]> = macs.into_iter().collect();
    Arc::new(move |m: &Match| m.mask.dl_dst != [0; 6] && set.contains(&m.key.dl_dst))
}

/// The slow path: implements the datapath's upcall handler.
pub struct SlowPath {
    pub bridges: RwLock<BTreeMap<String, Arc<Ofproto>>>,
    pub dp_ports: RwLock<HashMap<DpPortNo, Arc<Ofproto>>>,
    megaflows: Mutex<HashMap<Match, MegaflowOwner>>,
    reval_tx: Sender<RevalRequest>,
    epoch: Instant,
    pub upcalls: AtomicU64,
    /// Actions installed but not executed (`ct`), counted per occurrence.
    pub unsupported: crate::learn::Unsupported,
    /// Routes and neighbours for native tunnelling.
    pub tnl: Arc<crate::tnl::Tnl>,
    /// Bonds and their LACP (`crate::bond`).
    pub bonds: crate::bond::Bonds,
    /// The connection tracker the datapath runs `ct` actions through.
    pub ct: Arc<datapath::DpConntrack>,
    /// Frozen pipeline states by recirculation id.
    pub recirc: crate::recirc::RecircTable,
    /// Patch pairs in force (`crate::patch`), set by the reconciler.
    pub patch: RwLock<crate::patch::PatchLinks>,
}

impl SlowPath {
    pub fn new() -> (Arc<SlowPath>, Receiver<RevalRequest>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let sp = SlowPath {
            bridges: RwLock::new(BTreeMap::new()),
            dp_ports: RwLock::new(HashMap::new()),
            megaflows: Mutex::new(HashMap::new()),
            reval_tx: tx,
            epoch: Instant::now(),
            upcalls: AtomicU64::new(0),
            unsupported: Default::default(),
            tnl: Arc::new(crate::tnl::Tnl::default()),
            bonds: Default::default(),
            ct: Arc::new(datapath::DpConntrack::default()),
            recirc: Default::default(),
            patch: Default::default(),
        };
        (Arc::new(sp), rx)
    }

    /// Milliseconds since the daemon started (the clock of rules and MACs).
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Asks the revalidator to drop cached decisions forwarding to `macs`.
    pub fn request_flush_macs(&self, macs: Vec<[u8; 6]>) {
        if macs.is_empty() {
            return;
        }
        // A tunnel next hop moved: the tnl_push megaflows that send to it
        // match only inner fields, so they all go.
        let req = if self.tnl.next_hop_moved(&macs) {
            RevalRequest::FlushAll
        } else {
            RevalRequest::FlushMacs(macs)
        };
        let _ = self.reval_tx.send(req);
    }

    /// Asks the revalidator to drop every cached decision.
    pub fn request_flush_all(&self) {
        let _ = self.reval_tx.send(RevalRequest::FlushAll);
    }

    /// Every bridge, as a snapshot (the map's lock is not held afterwards).
    pub fn all_bridges(&self) -> Vec<Arc<Ofproto>> {
        self.bridges
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn bridge(&self, name: &str) -> Option<Arc<Ofproto>> {
        self.bridges
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The bridge whose [`Ofproto::id`] is `id`.
    pub fn bridge_by_id(&self, id: u32) -> Option<Arc<Ofproto>> {
        self.bridges
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|b| b.id == id)
            .cloned()
    }

    /// Counts packets that crossed patch pairs on the patch ports.
    pub fn credit_patch(
        &self,
        crossings: &[flows::xlate::PatchCrossing],
        packets: u64,
        bytes: u64,
    ) {
        if !crossings.is_empty() {
            self.patch
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .credit(crossings, packets, bytes);
        }
    }

    /// The bridges a translation rooted at `br` may reach through patch
    /// ports (`br` included), in the order they must be locked.
    pub fn patch_group(&self, br: &Arc<Ofproto>) -> Vec<Arc<Ofproto>> {
        self.patch
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .group(br)
    }

    pub fn bridge_of_dp_port(&self, dp: DpPortNo) -> Option<Arc<Ofproto>> {
        self.dp_ports
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&dp)
            .cloned()
    }

    /// Moves megaflow counters to the OpenFlow rules they came from.
    pub fn sync_stats(&self, dp: &Datapath) {
        let mut owners = self.megaflows.lock().unwrap_or_else(|p| p.into_inner());
        // Dumped under the lock: no flush or new owner comes between the
        // dump and the credit, so each megaflow dumped is the one its owner
        // describes.
        let flows = dp.dump_flows();
        self.credit_megaflows(&mut owners, &flows);
    }

    /// Credits what is new in `flows`' counters to their owners' rules.
    fn credit_megaflows(
        &self,
        owners: &mut HashMap<Match, MegaflowOwner>,
        flows: &[datapath::MegaflowInfo],
    ) {
        let now = self.now_ms();
        for f in flows {
            let Some(o) = owners.get_mut(&f.m) else {
                continue;
            };
            let (dp_packets, dp_bytes) = o.credited.take(f);
            if dp_packets == 0 {
                continue;
            }
            let used_ms = f
                .used
                .map(|u| now.saturating_sub(u.elapsed().as_millis() as u64))
                .unwrap_or(now);
            let mut st = o.bridge.lock();
            for (t, id) in &o.rules {
                st.pipeline.credit(*t, *id, dp_packets, dp_bytes, used_ms);
            }
            st.pipeline.credit_lookups(&o.lookups, dp_packets);
            st.credit_mirrors(o.mirrored, dp_packets, dp_bytes);
            if let (Some(nf), Some(tag)) = (st.netflow.as_mut(), o.netflow.as_ref()) {
                nf.credit(tag, dp_packets, dp_bytes, used_ms, now);
            }
            drop(st);
            for (peer, rules, lookups) in &o.peers {
                let mut pst = peer.lock();
                for (t, id) in rules {
                    pst.pipeline.credit(*t, *id, dp_packets, dp_bytes, used_ms);
                }
                pst.pipeline.credit_lookups(lookups, dp_packets);
            }
            self.credit_patch(&o.crossings, dp_packets, dp_bytes);
        }
    }

    /// Drops every megaflow, after crediting each one's last packets: when
    /// it returns, no decision made before is cached, and no packet a
    /// megaflow counted is lost to the rules.
    pub fn flush_megaflows(&self, dp: &Datapath) {
        let mut owners = self.megaflows.lock().unwrap_or_else(|p| p.into_inner());
        // Held across the flush: a decision whose owner is recorded after
        // it is newer than the flush, so its megaflow is not dropped.
        let gone = dp.flush();
        self.credit_megaflows(&mut owners, &gone);
        owners.clear();
    }

    /// Where underlay bridge `bridge` sends an encapsulated packet that
    /// comes from its internal device `from` (datapath port): its tables
    /// (NORMAL, usually) decide, as for a packet the host sent. MAC learning
    /// is not applied for it.
    fn underlay_outputs(
        &self,
        bridge: &str,
        from: DpPortNo,
        h: &wire::tunnel::EncapHeader,
        now: u64,
    ) -> Vec<DpPortNo> {
        let Some(br) = self.bridge(bridge) else {
            return Vec::new();
        };
        let st = br.lock();
        let Some(ofport) = st.ports.ofport_of(from) else {
            return Vec::new();
        };
        let k = crate::tnl::native::outer_key(h, ofport);
        let fail_open = br.fail_open(&st);
        st.translate_dp(&k, now, fail_open, None, 0, None)
            .0
            .actions
            .iter()
            .filter_map(|a| match *a {
                DpAction::Output(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    /// Drops the megaflows `pred` selects, after crediting their last
    /// packets ([`SlowPath::flush_megaflows`]).
    pub fn flush_megaflows_where(&self, dp: &Datapath, pred: datapath::MegaflowPredicate) {
        let mut owners = self.megaflows.lock().unwrap_or_else(|p| p.into_inner());
        let gone = dp.flush_where(pred.clone());
        self.credit_megaflows(&mut owners, &gone);
        owners.retain(|m, _| !pred(m));
    }
}

/// Drops everything arriving on a port that belongs to no bridge (the
/// datapath matches `in_port` exactly in every megaflow).
fn drop_everything() -> UpcallResult {
    UpcallResult {
        actions: Vec::new(),
        mask: FlowKey::default(),
        install: true,
    }
}

impl SlowPath {
    /// The slow path's decision for a missed packet, credited to the rules,
    /// mirrors and NetFlow it hits.
    fn decide(&self, key: &FlowKey, packet: &Packet) -> UpcallResult {
        // A packet that re-entered after tnl_pop: the tunnel port it
        // belongs to depends on its outer addresses and key.
        let mut tnl_mask = FlowKey::default();
        let in_dp = if self.tnl.is_tunnel_port(key.in_port) {
            match self.tnl.receive_port(key, &mut tnl_mask) {
                Some(p) => p,
                None => {
                    return UpcallResult {
                        actions: Vec::new(),
                        mask: tnl_mask,
                        install: true,
                    };
                }
            }
        } else {
            key.in_port
        };
        let Some(in_br) = self.bridge_of_dp_port(in_dp) else {
            return drop_everything();
        };
        let now = self.now_ms();
        // LACPDUs on a bond member belong to its LACP, never to the
        // pipeline; each one comes up (not cached).
        if key.dl_type == crate::bond::lacp::ETH_TYPE_SLOW
            && self.bonds.receive(key.in_port, packet.data(), now)
        {
            return UpcallResult {
                install: false,
                ..drop_everything()
            };
        }
        let ofport = {
            let st = in_br.lock();
            let Some(ofport) = st.ports.ofport_of(in_dp) else {
                return drop_everything();
            };
            if st.runtime.get(&ofport).is_some_and(|r| r.admin_down) {
                return drop_everything();
            }
            ofport
        };
        let mut k = *key;
        k.in_port = ofport;
        let mut table_id = 0;
        // The bridge whose pipeline runs: the input port's, or for a
        // second pass the one that froze (a peer behind a patch port).
        let mut br = in_br.clone();
        if key.recirc_id != 0 {
            // A second pass: resume the frozen pipeline.
            let Some(frozen) = self.recirc.get(key.recirc_id) else {
                // An id of a generation forgotten since: the caches that
                // still carry it are flushed (if that is not under way).
                if self.recirc.take_flush_wanted() {
                    let _ = self.reval_tx.send(RevalRequest::FlushAll);
                }
                return drop_everything();
            };
            frozen.thaw(&mut k);
            table_id = frozen.table_id;
            if frozen.bridge != 0 && frozen.bridge != br.id {
                let Some(b) = self.bridge_by_id(frozen.bridge) else {
                    return drop_everything();
                };
                br = b;
            }
        }
        // Every bridge the translation may reach through patch ports is
        // locked for it, in id order.
        let group = self.patch_group(&br);
        let root = group.iter().position(|b| Arc::ptr_eq(b, &br)).unwrap_or(0);
        let mut guards = crate::patch::lock_all(&group);
        let fail_open = br.fail_open(&guards[root]);
        let res = crate::recirc::Resources {
            ct: &self.ct,
            recirc: &self.recirc,
        };
        let (mut x, mirrored) = {
            let set = crate::patch::patch_set(&group, &guards, root);
            guards[root].translate_dp(&k, now, fail_open, Some(&res), table_id, set.as_ref())
        };
        // Effects on peer bridges, each on its own state.
        let mut peers = Vec::new();
        for eff in &x.patch_effects {
            let Some(i) = group.iter().position(|b| b.id == eff.bridge) else {
                continue;
            };
            let pst = &mut guards[i];
            for (t, id) in &eff.rules_hit {
                pst.pipeline.credit(*t, *id, 1, packet.len() as u64, now);
            }
            pst.pipeline.credit_lookups(&eff.table_lookups, 1);
            self.request_flush_macs(pst.learn_requests(&eff.learned, now));
            if !eff.learned_flows.is_empty() {
                let lx = XlateResult {
                    learned_flows: eff.learned_flows.clone(),
                    ..XlateResult::default()
                };
                if pst.apply_learned(&lx, now) {
                    let _ = self.reval_tx.send(RevalRequest::FlushAll);
                }
            }
            peers.push((
                group[i].clone(),
                eff.rules_hit.clone(),
                eff.table_lookups.clone(),
            ));
        }
        let st = &mut guards[root];
        self.credit_patch(&x.patch_crossings, 1, packet.len() as u64);
        st.credit_mirrors(mirrored, 1, packet.len() as u64);
        // Kept where `userspace` looks: the input port's bridge.
        in_br.stash_packet_ins(&mut x);
        if let Some(e) = x.error {
            warn!(bridge = %br.name, "translation aborted: {e}");
        }
        self.request_flush_macs(st.learn(&x, now));
        if st.apply_learned(&x, now) || self.recirc.take_flush_wanted() {
            let _ = self.reval_tx.send(RevalRequest::FlushAll);
        }
        self.unsupported.record(&br.name, &x);
        for (t, id) in &x.rules_hit {
            st.pipeline.credit(*t, *id, 1, packet.len() as u64, now);
        }
        st.pipeline.credit_lookups(&x.table_lookups, 1);
        let mut mask = x.wc;
        mask.in_port = u32::MAX;
        let netflow = st.netflow.is_some().then(|| {
            crate::netflow::unwildcard(key, &mut mask);
            crate::netflow::NfKey::of(&k).map(|nk| crate::netflow::NfTag {
                key: nk,
                output: crate::netflow::output_iface(&x.actions, |dp| st.ports.ofport_of(dp)),
                tcp_flags: k.tcp_flags as u8,
            })
        });
        let netflow = netflow.flatten();
        mask.recirc_id = u32::MAX;
        let sample = st.ipfix_sample;
        // Credited here like the rules and mirrors (the megaflow does not
        // count this packet).
        if let (Some(nf), Some(tag)) = (st.netflow.as_mut(), netflow.as_ref()) {
            nf.credit(tag, 1, packet.len() as u64, now, now);
        }
        // Tunnel rewrites consult other bridges: never with these locked.
        drop(guards);
        for (m, t) in mask.words_mut().iter_mut().zip(tnl_mask.words()) {
            *m |= t;
        }
        if self.tnl.snoop(&br.name, key, &mut mask) {
            // Tunnel headers built with the old neighbour are stale.
            self.request_flush_all();
        }
        let mut actions = x.actions;
        let underlay = |bridge: &str, from: DpPortNo, h: &wire::tunnel::EncapHeader| {
            self.underlay_outputs(bridge, from, h, now)
        };
        let tunnels_ok =
            self.tnl
                .rewrite_actions(key, &mut actions, &x.tunnel_keys, &mut mask, &underlay);
        let install = x.cacheable && x.error.is_none() && tunnels_ok;
        if install {
            let m = Match::new(*key, mask);
            let mut owners = self.megaflows.lock().unwrap_or_else(|p| p.into_inner());
            if owners.len() > 1_000_000 {
                owners.clear();
            }
            // This packet was credited above; the megaflow does not count it
            // (`UpcallHandler::upcall`). The same match may be cached on
            // another PMD already: what was credited of it stays.
            let credited = owners.remove(&m).map(|o| o.credited).unwrap_or_default();
            owners.insert(
                m,
                MegaflowOwner {
                    bridge: br.clone(),
                    rules: x.rules_hit.clone(),
                    lookups: x.table_lookups.clone(),
                    mirrored,
                    netflow,
                    peers,
                    crossings: x.patch_crossings.clone(),
                    credited,
                },
            );
        }
        if let Some(s) = sample {
            actions.insert(0, s);
        }
        UpcallResult {
            actions,
            mask,
            install,
        }
    }
}

impl UpcallHandler for SlowPath {
    fn upcall(&self, key: &FlowKey, packet: &Packet) -> UpcallResult {
        self.upcalls.fetch_add(1, Ordering::Relaxed);
        self.decide(key, packet)
    }

    fn userspace(&self, action: &DpAction, key: &FlowKey, packet: &Packet) {
        let DpAction::Userspace {
            reason,
            cookie,
            table_id,
            max_len,
            slot,
            ..
        } = *action
        else {
            return;
        };
        let Some(br) = self.bridge_of_dp_port(key.in_port) else {
            return;
        };
        let in_port = br
            .lock()
            .ports
            .ofport_of(key.in_port)
            .unwrap_or(ofp_port::LOCAL);
        let data = packet.data();
        let keep = if max_len == 0xffff {
            data.len()
        } else {
            data.len().min(max_len as usize)
        };
        let pin = br.take_packet_in(slot);
        // A packet-in raised behind a patch port goes to that bridge's
        // controllers, with its input port there.
        let (br, in_port) = match pin.as_ref().filter(|p| p.bridge != 0 && p.bridge != br.id) {
            Some(p) => match self.bridge_by_id(p.bridge) {
                Some(b) => (b, p.key.in_port),
                None => return,
            },
            None => (br, in_port),
        };
        br.notify(AsyncMsg::PacketIn {
            reason,
            table_id,
            cookie,
            in_port,
            total_len: data.len().min(u16::MAX as usize) as u16,
            data: Arc::new(data[..keep].to_vec()),
            metadata: pin.as_ref().map(|p| Box::new(p.key)),
            continuation: pin
                .as_ref()
                .and_then(|p| p.continuation.as_ref())
                .and_then(|c| openflow::msg::nicira::continuation::encode(c).ok())
                .map(Arc::new),
            userdata: pin
                .filter(|p| !p.userdata.is_empty())
                .map(|p| Arc::new(p.userdata)),
        });
    }
}

/// The revalidator thread: every second moves megaflow counters to rules,
/// expires timed-out rules and MAC entries; flushes the datapath caches when
/// asked or when something it expired could have been cached; gives the
/// heap memory freed after a burst back to the system
/// ([`crate::heap_trim::HeapTrimmer`]).
pub fn run_revalidator(sp: Arc<SlowPath>, dp: Arc<Datapath>, rx: Receiver<RevalRequest>) {
    let tick = Duration::from_secs(1);
    let mut next_tick = Instant::now() + tick;
    let mut trimmer = crate::heap_trim::HeapTrimmer::new();
    loop {
        let timeout = next_tick.saturating_duration_since(Instant::now());
        match rx.recv_timeout(timeout) {
            Ok(first) => {
                // Coalesce a burst of requests into one flush.
                let mut macs = Vec::new();
                let mut all = false;
                for r in std::iter::once(first).chain(rx.try_iter()) {
                    match r {
                        RevalRequest::FlushMacs(m) => macs.extend(m),
                        RevalRequest::FlushAll => all = true,
                    }
                }
                if all {
                    sp.flush_megaflows(&dp);
                } else {
                    sp.flush_megaflows_where(&dp, forwards_to(macs));
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                next_tick = Instant::now() + tick;
                sp.sync_stats(&dp);
                let now = sp.now_ms();
                let bridges = sp.all_bridges();
                let mut flush = false;
                let mut aged = Vec::new();
                for br in bridges {
                    let mut st = br.lock();
                    let expired = st.pipeline.expire(now);
                    let macs = st.mac.expire(now);
                    if let Some(nf) = st.netflow.as_mut() {
                        let datagrams = nf.run(now, false);
                        nf.send(&datagrams);
                    }
                    drop(st);
                    if !macs.is_empty() {
                        debug!(bridge = %br.name, "{} MAC entries aged out", macs.len());
                        aged.extend(macs.iter().map(|e| e.mac));
                    }
                    for r in expired {
                        flush = true;
                        if r.rule.flags.send_flow_rem {
                            br.notify(AsyncMsg::FlowRemoved(Arc::new(r)));
                        }
                    }
                }
                if flush {
                    sp.flush_megaflows(&dp);
                } else if !aged.is_empty() {
                    sp.flush_megaflows_where(&dp, forwards_to(aged));
                }
                trimmer.tick();
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
    }
}
