//! Translation: runs a packet's key through a bridge's OpenFlow pipeline (and
//! the NORMAL action's MAC learning switch) and produces the datapath actions
//! plus the megaflow mask that makes caching those actions correct.
//!
//! Pure: learning and counters are outputs ([`XlateResult::learned`],
//! [`XlateResult::rules_hit`]) that the caller applies.
//!
//! Megaflow rule: every key bit that influenced the result is set in
//! [`XlateResult::wc`]. Table lookups contribute what the classifier
//! consulted; NORMAL contributes in_port, VLAN, dl_src and dl_dst; a header
//! rewrite contributes the rewritten field (whether a set action is emitted
//! depends on its original value); `in_port` and `dl_type` are always exact.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::action::{Action, Ct, GroupId, PortNo, port};
use crate::classifier::RuleId;
use crate::dpaction::{DpAction, DpPortNo, UserspaceReason};
use crate::field::Field;
use crate::group::GroupTable;
use crate::key::{FlowKey, VLAN_CFI, VLAN_PCP_MASK, VLAN_VID_MASK, ethertype, ipproto};
use crate::mac_learning::{MacLearning, is_multicast};
use crate::matches::Match;
use crate::table::{Pipeline, TableLookup};
use crate::text::{format_actions, format_match, format_port};

mod nx;
pub use nx::LearnedFlow;

/// Deepest recursion (OVS's MAX_DEPTH): as in OVS, only a resubmit to
/// the same or an earlier table, and a group, go one level deeper. A
/// resubmit to a later table cannot loop, so OVN's pipelines, which chain
/// `resubmit(,N+1)` through more than a hundred tables on a routed path,
/// stay shallow.
pub const MAX_DEPTH: usize = 64;

/// Hard bound on nested lookups of any kind, which keeps the translator's
/// own stack bounded (each nested lookup is a few Rust frames).
pub const MAX_NESTING: usize = 512;
/// Most resubmits per translation (OVS's MAX_RESUBMITS).
pub const MAX_RESUBMITS: usize = 4096;

/// VLAN configuration of a bridge port (OVSDB Port `tag`, `trunks`, `vlan_mode`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum VlanMode {
    /// Untagged frames belong to `tag`; tagged frames (other than priority
    /// tags) are dropped; output is untagged.
    Access { tag: u16 },
    /// Tagged frames keep their VLAN (must be in `trunks`, empty = all);
    /// untagged frames are VLAN 0; output is tagged (VLAN 0 untagged).
    Trunk { trunks: Vec<u16> },
    /// Trunk whose untagged frames belong to `tag`; output in `tag` is tagged.
    NativeTagged { tag: u16, trunks: Vec<u16> },
    /// Trunk whose untagged frames belong to `tag`; output in `tag` is untagged.
    NativeUntagged { tag: u16, trunks: Vec<u16> },
}

impl Default for VlanMode {
    /// A port with no VLAN configuration trunks every VLAN.
    fn default() -> Self {
        VlanMode::Trunk { trunks: Vec::new() }
    }
}

impl VlanMode {
    /// True when the port carries `vlan`.
    pub fn includes(&self, vlan: u16) -> bool {
        let in_trunks = |t: &[u16]| t.is_empty() || t.contains(&vlan);
        match self {
            VlanMode::Access { tag } => *tag == vlan,
            VlanMode::Trunk { trunks } => in_trunks(trunks),
            VlanMode::NativeTagged { tag, trunks } | VlanMode::NativeUntagged { tag, trunks } => {
                *tag == vlan || in_trunks(trunks)
            }
        }
    }

    /// The VLAN a frame received with outer TCI `tci` belongs to, or `None`
    /// when the port must drop it.
    pub fn input_vlan(&self, tci: u16) -> Option<u16> {
        let tagged = tci & VLAN_CFI != 0;
        let vid = tci & VLAN_VID_MASK;
        let vlan = match self {
            VlanMode::Access { tag } => {
                if tagged && vid != 0 {
                    return None;
                }
                *tag
            }
            VlanMode::Trunk { .. } => {
                if tagged {
                    vid
                } else {
                    0
                }
            }
            VlanMode::NativeTagged { tag, .. } | VlanMode::NativeUntagged { tag, .. } => {
                if tagged && vid != 0 { vid } else { *tag }
            }
        };
        self.includes(vlan).then_some(vlan)
    }

    /// The VID to tag a frame of `vlan` with on output, or `None` for untagged.
    pub fn output_tag(&self, vlan: u16) -> Option<u16> {
        match self {
            VlanMode::Access { .. } => None,
            VlanMode::Trunk { .. } => (vlan != 0).then_some(vlan),
            VlanMode::NativeUntagged { tag, .. } => (vlan != *tag).then_some(vlan),
            VlanMode::NativeTagged { .. } => Some(vlan),
        }
    }
}

/// One port of a bridge, as translation needs it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BridgePort {
    /// OpenFlow port number (`port::LOCAL` for the bridge's internal port).
    pub ofport: PortNo,
    /// Datapath port number.
    pub dp_port: DpPortNo,
    pub vlan: VlanMode,
    /// Included in FLOOD and NORMAL flooding (OpenFlow `no-flood` clears it).
    pub flood: bool,
    /// Link is up (fast-failover liveness).
    pub up: bool,
    /// A patch port's peer (`type=patch`, `options:peer`): output to this
    /// port continues in the peer bridge's pipeline. A patch port has no
    /// datapath port of its own (`dp_port` is a number never given to the
    /// datapath).
    pub patch: Option<PatchPeer>,
}

/// Where a patch port leads: the peer bridge (its [`PatchBridge::id`]) and
/// the peer port, which is the packet's `in_port` there.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PatchPeer {
    pub bridge: u32,
    pub port: PortNo,
}

/// A bridge translation may continue in through a patch port.
#[derive(Clone, Copy)]
pub struct PatchBridge<'a> {
    /// Stable, non-zero id of the bridge (named by [`PatchPeer::bridge`]).
    pub id: u32,
    pub name: &'a str,
    pub pipeline: &'a Pipeline,
    pub groups: &'a GroupTable,
    pub ports: &'a BridgePorts,
    pub mac: &'a MacLearning,
}

/// The bridges joined to the translating one by patch ports.
pub struct PatchSet<'a> {
    /// Id of the bridge whose tables [`XlateCtx`] names.
    pub root: u32,
    /// Every bridge of the set (the root may be among them: a patch pair
    /// can lead back into it).
    pub bridges: Vec<PatchBridge<'a>>,
}

/// One crossing of a patch pair, for the ports' counters (OVS counts the
/// packet as sent by the patch port and received by its peer).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PatchCrossing {
    /// (bridge id, OpenFlow port) of the patch port output to.
    pub from: (u32, PortNo),
    /// (bridge id, OpenFlow port) of its peer.
    pub to: (u32, PortNo),
}

/// What translation in a peer bridge asks of that bridge (the root's own
/// effects stay in [`XlateResult::rules_hit`], `table_lookups`, `learned`,
/// `learned_flows`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatchEffects {
    pub bridge: u32,
    pub rules_hit: Vec<(u8, RuleId)>,
    /// The peer's table lookups (its OFPMP_TABLE counters).
    pub table_lookups: Vec<TableLookup>,
    pub learned: Vec<MacLearnRequest>,
    pub learned_flows: Vec<LearnedFlow>,
}

impl BridgePort {
    /// A trunk-all, floodable, up port.
    pub fn new(ofport: PortNo, dp_port: DpPortNo) -> BridgePort {
        BridgePort {
            ofport,
            dp_port,
            vlan: VlanMode::default(),
            flood: true,
            up: true,
            patch: None,
        }
    }
}

/// The ports of a bridge, by OpenFlow port number (iteration is in port order).
#[derive(Clone, Debug, Default)]
pub struct BridgePorts {
    ports: BTreeMap<PortNo, BridgePort>,
    by_dp: BTreeMap<DpPortNo, PortNo>,
    /// The bond each bond member belongs to (`crate::bond`).
    bonds: BTreeMap<PortNo, std::sync::Arc<crate::bond::BondView>>,
}

impl BridgePorts {
    pub fn new() -> BridgePorts {
        BridgePorts::default()
    }

    /// Adds or replaces a port.
    pub fn insert(&mut self, p: BridgePort) {
        if let Some(old) = self.ports.remove(&p.ofport) {
            self.by_dp.remove(&old.dp_port);
        }
        self.by_dp.insert(p.dp_port, p.ofport);
        self.ports.insert(p.ofport, p);
    }

    pub fn remove(&mut self, ofport: PortNo) -> Option<BridgePort> {
        let p = self.ports.remove(&ofport)?;
        self.by_dp.remove(&p.dp_port);
        Some(p)
    }

    pub fn get(&self, ofport: PortNo) -> Option<&BridgePort> {
        self.ports.get(&ofport)
    }

    pub fn get_mut(&mut self, ofport: PortNo) -> Option<&mut BridgePort> {
        self.ports.get_mut(&ofport)
    }

    /// OpenFlow port of a datapath port (to turn a datapath key's in_port
    /// into the OpenFlow one before [`translate`]).
    pub fn ofport_of(&self, dp: DpPortNo) -> Option<PortNo> {
        self.by_dp.get(&dp).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = &BridgePort> {
        self.ports.values()
    }

    /// Replaces the bridge's bonds (NORMAL treats each as one port).
    pub fn set_bonds(&mut self, views: Vec<crate::bond::BondView>) {
        self.bonds.clear();
        for v in views {
            let v = std::sync::Arc::new(v);
            for m in &v.members {
                self.bonds.insert(*m, v.clone());
            }
        }
    }

    /// The bond `ofport` is a member of.
    pub fn bond_of(&self, ofport: PortNo) -> Option<&crate::bond::BondView> {
        self.bonds.get(&ofport).map(|b| &**b)
    }

    /// The port NORMAL sees for `ofport`: its bond's id, or itself.
    fn bundle(&self, ofport: PortNo) -> PortNo {
        self.bond_of(ofport).map_or(ofport, |b| b.id())
    }

    pub fn len(&self) -> usize {
        self.ports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}

/// Everything translation reads.
pub struct XlateCtx<'a> {
    pub pipeline: &'a Pipeline,
    pub groups: &'a GroupTable,
    pub ports: &'a BridgePorts,
    pub mac: &'a MacLearning,
    pub now_ms: u64,
    /// Datapath resources for `ct` and recirculation; `None` where there is
    /// no datapath behind the translation (then `ct` is reported as
    /// unsupported and not executed).
    pub dp: Option<&'a dyn DpResources>,
    /// Bridges reachable through patch ports; `None` where there are none
    /// (an output to a patch port is then dropped).
    pub patch: Option<&'a PatchSet<'a>>,
}

/// Pipeline state frozen at a recirculation (`ct(table=N)`): where and
/// with which metadata translation resumes when the packet comes back with
/// the recirculation id the state was given.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Frozen {
    /// Table the second pass starts in.
    pub table_id: u8,
    /// OpenFlow ingress port.
    pub in_port: u32,
    pub metadata: u64,
    pub regs: [u32; 16],
    /// The bridge whose pipeline resumes ([`PatchBridge::id`]); 0 for the
    /// bridge of the packet's input port.
    pub bridge: u32,
}

impl Frozen {
    /// Lays the frozen pipeline metadata over `key` (a second-pass key whose
    /// `in_port` is still the datapath port).
    pub fn thaw(&self, key: &mut FlowKey) {
        key.in_port = self.in_port;
        key.metadata = self.metadata;
        key.regs = self.regs;
    }
}

/// What translation allocates in the datapath: connection-tracking action
/// ids and recirculation ids. Both are interned: equal arguments or equal
/// frozen states get the same id, so megaflows stay valid across packets.
pub trait DpResources {
    /// The datapath id of `ct` with its zone resolved to `zone`; `None`
    /// when the action cannot be executed (the error names why).
    fn ct_action(&self, ct: &Ct, zone: u16) -> Result<u32, String>;
    /// The recirculation id under which `frozen` is resumed; `None` when
    /// ids are exhausted.
    fn recirc_id(&self, frozen: &Frozen) -> Option<u32>;
}

/// A MAC address NORMAL saw; the caller feeds it to [`MacLearning::learn`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MacLearnRequest {
    pub vlan: u16,
    pub mac: [u8; 6],
    pub port: PortNo,
}

/// A packet the pipeline sent to the controller.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PacketIn {
    pub reason: UserspaceReason,
    pub table_id: u8,
    pub cookie: u64,
    pub max_len: u16,
    /// The packet's key at that point (after earlier rewrites): its
    /// registers and metadata travel in NXT_PACKET_IN2's metadata.
    pub key: FlowKey,
    /// The `controller(userdata=…)` bytes (empty for none).
    pub userdata: Vec<u8>,
    /// Set by `controller(pause)`: where NXT_RESUME continues.
    pub continuation: Option<Continuation>,
    /// The bridge whose pipeline sent it ([`PatchBridge::id`]); 0 for the
    /// bridge translation started in.
    pub bridge: u32,
}

/// A pipeline paused by `controller(pause)`: the rule's actions after the
/// pause, in the table and under the cookie it ran with. The registers
/// and metadata travel in the packet-in's metadata; a pause is resumable
/// only where nothing else is pending (no enclosing action list, no
/// field stack, no action set), which is where OVN pauses: in a rule
/// reached through its chain of final resubmits.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Continuation {
    pub table_id: u8,
    pub cookie: u64,
    pub actions: Vec<Action>,
}

/// The rule a table lookup found (for ofproto/trace).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TraceRule {
    pub id: RuleId,
    pub m: Match,
    pub priority: u32,
    pub cookie: u64,
    pub actions: Vec<Action>,
}

/// One step of a translation, for ofproto/trace.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TraceStep {
    /// A table lookup; `rule` is `None` on a miss.
    Lookup {
        depth: usize,
        table_id: u8,
        rule: Option<Box<TraceRule>>,
    },
    /// Something translation decided (NORMAL, drops, errors).
    Note { depth: usize, text: String },
    /// Translation continues in bridge `name` through a patch port.
    Bridge { depth: usize, name: String },
}

/// Translation stopped early.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum XlateError {
    #[error("over max translation depth {MAX_DEPTH}")]
    TooDeep,
    #[error("over {MAX_RESUBMITS} resubmit actions")]
    TooManyResubmits,
}

/// What translation produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XlateResult {
    pub actions: Vec<DpAction>,
    /// Megaflow mask, in OpenFlow-key terms (in_port is the OpenFlow port).
    pub wc: FlowKey,
    pub trace: Vec<TraceStep>,
    pub packet_ins: Vec<PacketIn>,
    /// Rules whose counters this packet should credit.
    pub rules_hit: Vec<(u8, RuleId)>,
    /// Every table lookup made, in order, with whether it matched: the
    /// tables whose OFPMP_TABLE counters this packet credits.
    pub table_lookups: Vec<TableLookup>,
    /// False when the packet must not be cached (it goes to the controller).
    pub cacheable: bool,
    pub learned: Vec<MacLearnRequest>,
    /// Set when translation was aborted (then `actions` is empty: drop).
    pub error: Option<XlateError>,
    /// Flows `learn` actions built; the caller adds them to the tables
    /// (not applied by `ofproto/trace` unless it generates a packet).
    pub learned_flows: Vec<LearnedFlow>,
    /// Actions this switch parses and installs but does not execute
    /// (`ct`, `resubmit(...,ct)`): their names, once per occurrence. The
    /// caller counts and logs them; translations that contain them are not
    /// cached, so every such packet is counted.
    pub unsupported: Vec<&'static str>,
    /// For each `Output` at index `i` of `actions` emitted after an action
    /// wrote a tunnel field (`set_field:...->tun_id`, `tun_dst`,
    /// `tun_metadataN`, ...): the
    /// packet's fields at that point, whose `tun_*` say where a tunnel
    /// port sends it. Outputs not listed carry the received `tun_*`.
    pub tunnel_keys: Vec<(usize, FlowKey)>,
    /// Patch pairs the packet crossed, in order.
    pub patch_crossings: Vec<PatchCrossing>,
    /// Effects on peer bridges (one entry per crossing into a bridge).
    pub patch_effects: Vec<PatchEffects>,
}

/// Runs the packet `key` (in_port already the OpenFlow port) through the
/// pipeline from table 0.
pub fn translate(ctx: &XlateCtx<'_>, key: &FlowKey) -> XlateResult {
    let mut x = Xlate::new(ctx, key);
    x.run_table(0, 0);
    x.finish()
}

/// Runs a recirculated packet `key` (in_port already the OpenFlow port,
/// frozen metadata restored) through the pipeline from `table_id`.
pub fn translate_from(ctx: &XlateCtx<'_>, key: &FlowKey, table_id: u8) -> XlateResult {
    let mut x = Xlate::new(ctx, key);
    x.run_table(table_id, 0);
    x.finish()
}

/// Executes `actions` on the packet `key` as a packet-out does
/// (`output:TABLE` runs the pipeline from table 0).
pub fn translate_actions(ctx: &XlateCtx<'_>, key: &FlowKey, actions: &[Action]) -> XlateResult {
    let mut x = Xlate::new(ctx, key);
    x.packet_out = true;
    x.run_list(actions, 0);
    x.finish()
}

/// Continues a paused pipeline (NXT_RESUME): `key` is the packet with the
/// registers and metadata the controller handed back, and the
/// continuation's actions run as the rest of the paused rule would have.
pub fn translate_resume(ctx: &XlateCtx<'_>, key: &FlowKey, c: &Continuation) -> XlateResult {
    let mut x = Xlate::new(ctx, key);
    x.table_id = c.table_id;
    x.cookie = c.cookie;
    x.run_rule(&c.actions, c.table_id, 0, true);
    if let Some((p, t)) = x.tail.take()
        && x.out.error.is_none()
        && !x.exit
    {
        x.resubmit(p, t, 0);
    }
    x.finish()
}

/// OpenFlow 1.3 action set (write_actions), executed at the end.
#[derive(Default, Clone)]
struct ActionSet {
    pop_vlan: Option<Action>,
    push_vlan: Option<Action>,
    dec_ttl: bool,
    sets: Vec<Action>,
    group: Option<GroupId>,
    output: Option<Action>,
}

fn set_slot(a: &Action) -> Option<(u8, Option<Field>)> {
    Some(match a {
        Action::SetVlanVid(_) => (0, None),
        Action::SetVlanPcp(_) => (1, None),
        Action::SetField { field, .. } => (2, Some(*field)),
        Action::SetDlSrc(_) => (3, None),
        Action::SetDlDst(_) => (4, None),
        Action::SetNwSrc(_) => (5, None),
        Action::SetNwDst(_) => (6, None),
        Action::SetNwTos(_) => (7, None),
        Action::SetTpSrc(_) => (8, None),
        Action::SetTpDst(_) => (9, None),
        _ => return None,
    })
}

impl ActionSet {
    fn write(&mut self, actions: &[Action]) {
        for a in actions {
            match a {
                Action::PopVlan | Action::StripVlan => self.pop_vlan = Some(a.clone()),
                Action::PushVlan(_) => self.push_vlan = Some(a.clone()),
                Action::DecTtl => self.dec_ttl = true,
                Action::Group(g) => self.group = Some(*g),
                Action::Output { .. } | Action::Controller { .. } => self.output = Some(a.clone()),
                other => {
                    if let Some(slot) = set_slot(other) {
                        self.sets.retain(|s| set_slot(s) != Some(slot));
                    }
                    self.sets.push(other.clone());
                }
            }
        }
    }

    /// The set's actions in OpenFlow's execution order (group beats output).
    fn into_list(self) -> Vec<Action> {
        let mut out = Vec::new();
        out.extend(self.pop_vlan);
        out.extend(self.push_vlan);
        if self.dec_ttl {
            out.push(Action::DecTtl);
        }
        out.extend(self.sets);
        match self.group {
            Some(g) => out.push(Action::Group(g)),
            None => out.extend(self.output),
        }
        out
    }
}

/// How an action list continues after one action.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    /// Stop this action list (dec_ttl on TTL 1), carry on with the caller.
    StopList,
    /// Abort the whole translation.
    Abort,
}

/// The bridge whose tables translation runs through now.
#[derive(Clone, Copy)]
struct Br<'a> {
    id: u32,
    pipeline: &'a Pipeline,
    groups: &'a GroupTable,
    ports: &'a BridgePorts,
    mac: &'a MacLearning,
}

struct Xlate<'a, 'c> {
    ctx: &'a XlateCtx<'c>,
    /// The current bridge: the context's, or a peer's after a patch port.
    br: Br<'a>,
    /// The packet as the pipeline currently sees it.
    flow: FlowKey,
    /// The packet as the emitted datapath actions have left it.
    base: FlowKey,
    /// Header bits any action wrote (compared at commit).
    dirty: FlowKey,
    wc: FlowKey,
    out: XlateResult,
    resubmits: usize,
    table_id: u8,
    cookie: u64,
    action_set: ActionSet,
    /// TPIDs of the packet's (outer, inner) tags as the pipeline sees them:
    /// those a push_vlan gave, 0 for a tag as received (the key does not
    /// keep its TPID; 802.1Q when it has to be pushed again).
    vlan_tpids: [u16; 2],
    /// The same for the packet as last emitted (`base`).
    base_vlan_tpids: [u16; 2],
    packet_out: bool,
    /// The field stack of push/pop.
    stack: Vec<u128>,
    /// `exit` ran: stop every action list (the action set still runs).
    exit: bool,
    /// The rule whose actions run now (table, id), for learn.
    rule: Option<(u8, RuleId)>,
    /// Recursion depth in OVS's sense (see [`MAX_DEPTH`]).
    deep: usize,
    /// A rule's final `resubmit(port, table)`, for `run_table` to follow.
    tail: Option<(Option<PortNo>, Option<u8>)>,
    /// Enclosing action lists that still have work after the current one
    /// (nested resubmits, buckets, clone, …): a pause inside one cannot be
    /// resumed.
    frames: usize,
    /// A `pop_mpls` left a packet whose headers are unknown until it is
    /// parsed again: the next table lookup recirculates (as OVS does).
    was_mpls: bool,
    /// The rule whose actions run now is a table-miss rule (priority 0,
    /// matching everything): its controller actions report a table miss.
    miss_rule: bool,
    /// Actions run from a group bucket / from the action set: a
    /// CONTROLLER output there reports that reason.
    in_group: bool,
    in_action_set: bool,
}

impl<'a, 'c> Xlate<'a, 'c> {
    fn new(ctx: &'a XlateCtx<'c>, key: &FlowKey) -> Self {
        let mut wc = FlowKey::default();
        Field::InPort.unwildcard(&mut wc);
        Field::DlType.unwildcard(&mut wc);
        Xlate {
            ctx,
            br: Br {
                id: ctx.patch.map_or(0, |p| p.root),
                pipeline: ctx.pipeline,
                groups: ctx.groups,
                ports: ctx.ports,
                mac: ctx.mac,
            },
            flow: *key,
            base: *key,
            dirty: FlowKey::default(),
            wc,
            out: XlateResult {
                cacheable: true,
                ..XlateResult::default()
            },
            resubmits: 0,
            table_id: 0,
            cookie: 0,
            action_set: ActionSet::default(),
            vlan_tpids: [0; 2],
            base_vlan_tpids: [0; 2],
            packet_out: false,
            stack: Vec::new(),
            exit: false,
            rule: None,
            deep: 0,
            tail: None,
            frames: 0,
            was_mpls: false,
            miss_rule: false,
            in_group: false,
            in_action_set: false,
        }
    }

    fn note(&mut self, depth: usize, text: impl Into<String>) {
        self.out.trace.push(TraceStep::Note {
            depth,
            text: text.into(),
        });
    }

    fn finish(mut self) -> XlateResult {
        self.exit = false;
        if self.out.error.is_none() {
            let set = std::mem::take(&mut self.action_set).into_list();
            if !set.is_empty() {
                self.note(0, format!("executing action set: {}", format_actions(&set)));
                self.in_action_set = true;
                self.run_list(&set, 0);
                self.in_action_set = false;
            }
        }
        if self.out.error.is_some() {
            self.out.actions.clear();
        }
        self.out.wc = self.wc;
        self.out
    }

    /// Looks the packet up in `table_id` and runs the rule found. Returns
    /// false on a miss.
    ///
    /// A `resubmit` that is the last action of a rule (OVN's `next;`) is a
    /// tail call: the rule leaves it in `self.tail` and this loop makes the
    /// next lookup itself instead of nesting, so a chain through a hundred
    /// tables does not use a hundred levels of the translator's own stack.
    /// The effects are those of the nested form: the in_port a resubmit
    /// sets is restored once the chain ends, and the trace is indented the
    /// same way.
    fn run_table(&mut self, table_id: u8, depth: usize) -> bool {
        let (saved_table, saved_cookie, saved_rule) = (self.table_id, self.cookie, self.rule);
        let saved_miss = self.miss_rule;
        let saved_deep = self.deep;
        let mut tail_in_port = None;
        let (mut table_id, mut depth) = (table_id, depth);
        let mut first = true;
        let hit = loop {
            if depth >= MAX_NESTING || self.deep >= MAX_DEPTH {
                self.abort(depth, XlateError::TooDeep);
                break true;
            }
            let pipeline = self.br.pipeline;
            let found = pipeline.lookup(table_id, &self.flow, &mut self.wc);
            self.out.table_lookups.push(TableLookup {
                table: table_id,
                matched: found.is_some(),
            });
            let Some((id, rule)) = found else {
                self.out.trace.push(TraceStep::Lookup {
                    depth,
                    table_id,
                    rule: None,
                });
                break !first;
            };
            self.out.trace.push(TraceStep::Lookup {
                depth,
                table_id,
                rule: Some(Box::new(TraceRule {
                    id,
                    m: rule.m,
                    priority: rule.priority,
                    cookie: rule.cookie,
                    actions: rule.actions.clone(),
                })),
            });
            self.out.rules_hit.push((table_id, id));
            self.table_id = table_id;
            self.cookie = rule.cookie;
            self.miss_rule = rule.priority == 0 && rule.m.mask == FlowKey::default();
            self.rule = Some((table_id, id));
            self.run_rule(&rule.actions, table_id, depth, true);
            let Some((p, t)) = self.tail.take() else {
                break true;
            };
            if self.out.error.is_some() || self.exit {
                break true;
            }
            // The bookkeeping `resubmit` does for a nested lookup.
            self.resubmits += 1;
            if self.resubmits > MAX_RESUBMITS {
                self.abort(depth, XlateError::TooManyResubmits);
                break true;
            }
            tail_in_port.get_or_insert(self.flow.in_port);
            if let Some(p) = p
                && p != port::IN_PORT
            {
                self.flow.in_port = p;
            }
            let t = t.unwrap_or(self.table_id);
            self.deep += usize::from(t <= self.table_id);
            table_id = t;
            depth += 1;
            first = false;
        };
        if let Some(p) = tail_in_port {
            self.flow.in_port = p;
        }
        self.deep = saved_deep;
        self.table_id = saved_table;
        self.cookie = saved_cookie;
        self.miss_rule = saved_miss;
        self.rule = saved_rule;
        hit
    }

    fn abort(&mut self, depth: usize, e: XlateError) {
        if self.out.error.is_none() {
            self.note(depth, format!("{e}, dropping packet"));
            self.out.error = Some(e);
        }
    }

    /// Runs a rule's actions and instructions in OpenFlow 1.3 order:
    /// apply-actions, clear-actions, write-actions, write-metadata, goto-table.
    /// With `may_tail`, a final `resubmit` is left in `self.tail` for
    /// [`Self::run_table`] (only when the rule has no instructions that
    /// would run after it).
    fn run_rule(&mut self, actions: &[Action], table_id: u8, depth: usize, may_tail: bool) {
        let mut goto = None;
        let mut apply_stopped = false;
        let may_tail = may_tail
            && !actions.iter().any(|a| {
                matches!(
                    a,
                    Action::GotoTable(_)
                        | Action::ClearActions
                        | Action::WriteActions(_)
                        | Action::WriteMetadata { .. }
                )
            });
        for (i, a) in actions.iter().enumerate() {
            match a {
                Action::Resubmit {
                    port: p,
                    table,
                    ct: false,
                } if may_tail && !apply_stopped && !self.was_mpls && i + 1 == actions.len() => {
                    self.tail = Some((*p, *table));
                    return;
                }
                Action::ControllerEx(c)
                    if c.pause
                        && may_tail
                        && !apply_stopped
                        && self.frames == 0
                        && self.stack.is_empty()
                        && self.action_set.clone().into_list().is_empty() =>
                {
                    self.controller_with(
                        c.max_len,
                        c.reason.into(),
                        c.userdata.clone(),
                        c.controller_id,
                    );
                    if let Some(DpAction::Userspace { continuation, .. }) =
                        self.out.actions.last_mut()
                    {
                        *continuation = true;
                    }
                    if let Some(p) = self.out.packet_ins.last_mut() {
                        p.continuation = Some(Continuation {
                            table_id,
                            cookie: self.cookie,
                            actions: actions[i + 1..].to_vec(),
                        });
                    }
                    self.note(
                        depth,
                        "controller(pause): paused, NXT_RESUME continues after this action",
                    );
                    self.exit = true;
                    return;
                }
                Action::GotoTable(t) => goto = Some(*t),
                Action::ClearActions | Action::WriteActions(_) | Action::WriteMetadata { .. } => {}
                Action::CheckPktLarger { pkt_len, dst } if !apply_stopped => {
                    let rest = &actions[i + 1..];
                    self.check_pkt_larger(*pkt_len, *dst, depth, &mut |x: &mut Self| {
                        x.run_rule(rest, table_id, depth, false)
                    });
                    return;
                }
                other if !apply_stopped => match self.do_action(other, depth) {
                    Flow::Continue => {}
                    Flow::StopList => apply_stopped = true,
                    Flow::Abort => return,
                },
                _ => {}
            }
        }
        if apply_stopped {
            return;
        }
        if actions.contains(&Action::ClearActions) {
            self.action_set = ActionSet::default();
        }
        for a in actions {
            match a {
                Action::WriteActions(w) => self.action_set.write(w),
                Action::WriteMetadata { value, mask } => {
                    self.flow.metadata = (self.flow.metadata & !mask) | (value & mask);
                }
                _ => {}
            }
        }
        if let Some(t) = goto {
            if self.was_mpls && t > table_id {
                let in_port = self.flow.in_port;
                self.freeze_after_pop_mpls(t, in_port, depth);
                return;
            }
            if t <= table_id {
                self.note(
                    depth,
                    format!("goto_table:{t} does not go forward, ignored"),
                );
            } else if !self.run_table(t, depth) {
                self.note(depth, "no match in goto table, dropping packet");
                self.action_set = ActionSet::default();
            }
        }
    }

    /// Runs a plain action list (bucket, action set, packet-out).
    fn run_list(&mut self, actions: &[Action], depth: usize) -> Flow {
        self.frames += 1;
        let r = self.run_list_inner(actions, depth);
        self.frames -= 1;
        r
    }

    fn run_list_inner(&mut self, actions: &[Action], depth: usize) -> Flow {
        for (i, a) in actions.iter().enumerate() {
            if let Action::CheckPktLarger { pkt_len, dst } = a {
                let rest = &actions[i + 1..];
                self.check_pkt_larger(*pkt_len, *dst, depth, &mut |x: &mut Self| {
                    x.run_list(rest, depth);
                });
                return Flow::StopList;
            }
            match self.do_action(a, depth) {
                Flow::Continue => {}
                other => return other,
            }
        }
        Flow::Continue
    }

    fn mark_dirty(&mut self, f: Field) {
        f.unwildcard(&mut self.dirty);
    }

    fn do_action(&mut self, a: &Action, depth: usize) -> Flow {
        if self.out.error.is_some() || self.exit {
            return Flow::Abort;
        }
        match a {
            Action::Output { port: p, max_len } => self.output(*p, *max_len, depth),
            Action::Controller { max_len } => self.controller(*max_len),
            Action::SetVlanVid(vid) => {
                self.unwildcard_vlans();
                if self.flow.has_vlan() {
                    self.flow.vlan_tci =
                        (self.flow.vlan_tci & !VLAN_VID_MASK) | (vid & VLAN_VID_MASK);
                } else {
                    self.flow.vlan_tci = VLAN_CFI | (vid & VLAN_VID_MASK);
                }
                self.mark_dirty(Field::VlanTci);
            }
            Action::SetVlanPcp(pcp) => {
                self.unwildcard_vlans();
                let bits = (u16::from(*pcp) << 13) & VLAN_PCP_MASK;
                if self.flow.has_vlan() {
                    self.flow.vlan_tci = (self.flow.vlan_tci & !VLAN_PCP_MASK) | bits;
                } else {
                    self.flow.vlan_tci = VLAN_CFI | bits;
                }
                self.mark_dirty(Field::VlanTci);
            }
            Action::StripVlan | Action::PopVlan => {
                self.unwildcard_vlans();
                self.flow.vlan_tci = self.flow.vlan_tci_inner;
                self.flow.vlan_tci_inner = 0;
                self.vlan_tpids = [self.vlan_tpids[1], 0];
                self.mark_dirty(Field::VlanTci);
                self.dirty.vlan_tci_inner = 0xffff;
            }
            // As in OVS: the new tag starts with VID 0 and PCP 0, the outer
            // tag moves inward, and an inner one beyond the two a key holds
            // leaves the packet when the tags are next committed.
            Action::PushVlan(tpid) => {
                self.unwildcard_vlans();
                self.flow.vlan_tci_inner = self.flow.vlan_tci;
                self.flow.vlan_tci = VLAN_CFI;
                self.vlan_tpids = [*tpid, self.vlan_tpids[0]];
                self.mark_dirty(Field::VlanTci);
                self.dirty.vlan_tci_inner = 0xffff;
            }
            Action::SetField { field, value, mask } => {
                let mask = mask.unwrap_or(field.max_value());
                self.set_field(*field, *value, mask);
            }
            Action::SetDlSrc(m) => {
                self.flow.dl_src = *m;
                self.mark_dirty(Field::DlSrc);
            }
            Action::SetDlDst(m) => {
                self.flow.dl_dst = *m;
                self.mark_dirty(Field::DlDst);
            }
            Action::SetNwSrc(ip) => self.set_field(Field::NwSrc, u128::from(*ip), u128::MAX),
            Action::SetNwDst(ip) => self.set_field(Field::NwDst, u128::from(*ip), u128::MAX),
            Action::SetNwTos(tos) => self.set_field(Field::NwTos, u128::from(*tos), 0xfc),
            Action::SetTpSrc(p) => self.set_field(Field::TpSrc, u128::from(*p), u128::MAX),
            Action::SetTpDst(p) => self.set_field(Field::TpDst, u128::from(*p), u128::MAX),
            Action::PushMpls(t) => self.push_mpls(*t),
            Action::PopMpls(t) => self.pop_mpls(*t),
            Action::SetMplsTtl(ttl) => {
                if Field::MplsTtl.prereqs_hold(&self.flow, &mut self.wc) {
                    self.write_field(Field::MplsTtl, u128::from(*ttl), 0xff);
                }
            }
            Action::DecMplsTtl => {
                if !Field::MplsTtl.prereqs_hold(&self.flow, &mut self.wc) {
                    return Flow::Continue;
                }
                Field::MplsTtl.unwildcard(&mut self.wc);
                let ttl = Field::MplsTtl.get(&self.flow);
                if ttl <= 1 {
                    self.note(
                        depth,
                        "MPLS decrement TTL exception, stopping this action list",
                    );
                    return Flow::StopList;
                }
                self.write_field(Field::MplsTtl, ttl - 1, 0xff);
            }
            Action::DecTtl => {
                if !Field::NwTtl.prereqs_hold(&self.flow, &mut self.wc) {
                    return Flow::Continue;
                }
                Field::NwTtl.unwildcard(&mut self.wc);
                if self.flow.nw_ttl <= 1 {
                    self.note(
                        depth,
                        "IP decrement TTL exception, stopping this action list",
                    );
                    return Flow::StopList;
                }
                self.flow.nw_ttl -= 1;
                self.mark_dirty(Field::NwTtl);
            }
            Action::Load { dst, value } => {
                if dst.field.prereqs_hold(&self.flow, &mut self.wc) {
                    let m = bits_mask(dst.n_bits) << dst.ofs;
                    self.write_field(dst.field, value << dst.ofs, m);
                }
            }
            Action::Move { src, dst } => {
                let ok = src.field.prereqs_hold(&self.flow, &mut self.wc)
                    && dst.field.prereqs_hold(&self.flow, &mut self.wc);
                if ok {
                    let sm = bits_mask(src.n_bits);
                    src.field.set_mask_bits(&mut self.wc, sm << src.ofs);
                    let v = (src.field.get(&self.flow) >> src.ofs) & sm;
                    let dm = bits_mask(dst.n_bits) << dst.ofs;
                    self.write_field(dst.field, v << dst.ofs, dm);
                }
            }
            Action::Resubmit {
                port: p,
                table,
                ct: false,
            } if self.was_mpls => {
                let in_port = p
                    .filter(|p| *p != port::IN_PORT)
                    .unwrap_or(self.flow.in_port);
                let t = table.unwrap_or(self.table_id);
                self.freeze_after_pop_mpls(t, in_port, depth);
                return Flow::Abort;
            }
            Action::Resubmit {
                port: p,
                table,
                ct: false,
            } => return self.resubmit(*p, *table, depth),
            Action::Group(g) => return self.group(*g, depth),
            Action::Meter(m) => {
                // The OpenFlow id: the bridge maps it to its datapath meter
                // (`MeterTable::dp_id`) before the actions reach the datapath.
                self.out.actions.push(DpAction::Meter(*m));
            }
            Action::GotoTable(_)
            | Action::WriteMetadata { .. }
            | Action::ClearActions
            | Action::WriteActions(_) => {
                // Instructions only mean something at rule level.
            }
            Action::Conjunction { .. } => {
                // Only the table lookup reads conjunctions; as an action it
                // does nothing (a conjunctive flow never runs on its own).
            }
            other => return self.do_nx_action(other, depth),
        }
        if self.out.error.is_some() {
            Flow::Abort
        } else {
            Flow::Continue
        }
    }

    /// set_field semantics: prerequisites checked on the packet; VLAN fields
    /// only apply to tagged packets.
    fn set_field(&mut self, f: Field, value: u128, mask: u128) {
        if !f.prereqs_hold(&self.flow, &mut self.wc) {
            return;
        }
        if matches!(f, Field::DlVlan | Field::DlVlanPcp | Field::VlanVid) {
            Field::VlanTci.set_mask_bits(&mut self.wc, u128::from(VLAN_CFI));
            if !self.flow.has_vlan() {
                return;
            }
        }
        let mask = if f == Field::VlanVid {
            mask & 0x0fff
        } else {
            mask
        };
        self.write_field(f, value, mask);
    }

    /// `push_mpls`: earlier rewrites go out first (they need the IP
    /// header where it is), then the new entry: under an existing stack a
    /// copy of its top with bottom-of-stack cleared; otherwise label 0,
    /// bottom of stack, and as stock OVS fills them: TC from the low three
    /// bits of the DSCP, TTL from the IP TTL (64 when that is 0 or the
    /// packet is not IP). The L3 and L4 fields are gone from then on.
    fn push_mpls(&mut self, ethertype_: u16) {
        use crate::key::mpls;
        self.commit();
        let lse = if ethertype::is_mpls(self.flow.dl_type) {
            self.wc.ipv6_label = u32::MAX;
            self.flow.mpls_lse() & !mpls::BOS_MASK
        } else if matches!(self.flow.dl_type, ethertype::IPV4 | ethertype::IPV6) {
            Field::NwTtl.unwildcard(&mut self.wc);
            self.wc.nw_tos |= 0xfc;
            let tc = u32::from(self.flow.nw_tos >> 2) & 7;
            let ttl = match self.flow.nw_ttl {
                0 => 64,
                t => u32::from(t),
            };
            (tc << mpls::TC_SHIFT) | mpls::BOS_MASK | ttl
        } else {
            mpls::BOS_MASK | 64
        };
        self.out.actions.push(DpAction::PushMpls {
            ethertype: ethertype_,
            lse,
        });
        for k in [&mut self.flow, &mut self.base] {
            clear_l3(k);
            k.dl_type = ethertype_;
            k.set_mpls_lse(lse);
        }
    }

    /// `pop_mpls`: removes the top entry (earlier rewrites go out first).
    /// What lies beneath is not known until the packet is parsed again, so
    /// the next table lookup recirculates it ([`Self::was_mpls`]).
    fn pop_mpls(&mut self, ethertype_: u16) {
        if !ethertype::is_mpls(self.flow.dl_type) {
            return;
        }
        self.commit();
        self.out.actions.push(DpAction::PopMpls(ethertype_));
        for k in [&mut self.flow, &mut self.base] {
            clear_l3(k);
            k.dl_type = ethertype_;
        }
        self.was_mpls = true;
    }

    /// Ends this pass after a `pop_mpls`: the packet recirculates and the
    /// pipeline continues in `table` (with `in_port` and the registers and
    /// metadata it has now) on the packet parsed again.
    fn freeze_after_pop_mpls(&mut self, table: u8, in_port: PortNo, depth: usize) {
        self.commit();
        self.exit = true;
        self.action_set = ActionSet::default();
        let Some(dp) = self.ctx.dp else {
            self.note(
                depth,
                format!("pop_mpls: table {table} needs the packet parsed again (recirculation), which this translation cannot do: stopping"),
            );
            return;
        };
        let frozen = Frozen {
            table_id: table,
            in_port,
            metadata: self.flow.metadata,
            regs: self.flow.regs,
            bridge: self.bridge_tag(),
        };
        match dp.recirc_id(&frozen) {
            Some(id) => {
                self.out.actions.push(DpAction::Recirc(id));
                self.note(
                    depth,
                    format!("pop_mpls: recirculating with recirc_id={id:#x} to continue in table {table}"),
                );
            }
            None => self.note(depth, "pop_mpls: no recirculation id left, dropping packet"),
        }
    }

    fn write_field(&mut self, f: Field, value: u128, mask: u128) {
        f.set_masked(&mut self.flow, value, mask);
        f.set_mask_bits(&mut self.dirty, mask);
    }

    fn resubmit(&mut self, p: Option<PortNo>, table: Option<u8>, depth: usize) -> Flow {
        self.resubmits += 1;
        if self.resubmits > MAX_RESUBMITS {
            self.abort(depth, XlateError::TooManyResubmits);
            return Flow::Abort;
        }
        let saved_in_port = self.flow.in_port;
        if let Some(p) = p
            && p != port::IN_PORT
        {
            self.flow.in_port = p;
        }
        let t = table.unwrap_or(self.table_id);
        let deepens = usize::from(t <= self.table_id);
        self.deep += deepens;
        self.frames += 1;
        self.run_table(t, depth + 1);
        self.frames -= 1;
        self.deep -= deepens;
        self.flow.in_port = saved_in_port;
        if self.out.error.is_some() || self.exit {
            Flow::Abort
        } else {
            Flow::Continue
        }
    }

    fn group(&mut self, g: GroupId, depth: usize) -> Flow {
        if depth + 1 >= MAX_NESTING || self.deep + 1 >= MAX_DEPTH {
            self.abort(depth, XlateError::TooDeep);
            return Flow::Abort;
        }
        let Some(group) = self.br.groups.get(g) else {
            self.note(depth, format!("group {g} does not exist, dropping"));
            return Flow::Continue;
        };
        let ports = self.br.ports;
        let live = |p: PortNo| ports.get(p).is_some_and(|bp| bp.up);
        let buckets = group.choose_buckets(&self.flow, &mut self.wc, &live);
        if buckets.is_empty() {
            self.note(depth, format!("group {g}: no live bucket, dropping"));
        }
        self.deep += 1;
        let saved_in_group = std::mem::replace(&mut self.in_group, true);
        for b in buckets {
            // Each bucket acts on its own copy of the packet.
            let saved = self.flow;
            let saved_tpids = self.vlan_tpids;
            let r = self.run_list(&b.actions, depth + 1);
            self.flow = saved;
            self.vlan_tpids = saved_tpids;
            if r == Flow::Abort {
                self.deep -= 1;
                self.in_group = saved_in_group;
                return Flow::Abort;
            }
        }
        self.deep -= 1;
        self.in_group = saved_in_group;
        Flow::Continue
    }

    /// An output to CONTROLLER: its reason says where it ran (OVS's order:
    /// packet-out, group bucket, action set, else an action).
    fn controller(&mut self, max_len: u16) {
        let reason = if self.packet_out {
            UserspaceReason::PacketOut
        } else if self.in_group {
            UserspaceReason::Group
        } else if self.in_action_set {
            UserspaceReason::ActionSet
        } else {
            UserspaceReason::Action
        };
        self.controller_with(max_len, reason, Vec::new(), 0);
    }

    fn controller_with(
        &mut self,
        max_len: u16,
        reason: UserspaceReason,
        userdata: Vec<u8>,
        controller_id: u16,
    ) {
        self.commit();
        // A table-miss rule's controller action reports a table miss.
        let reason = if reason == UserspaceReason::Action && self.miss_rule {
            UserspaceReason::ExplicitMiss
        } else {
            reason
        };
        self.out.actions.push(DpAction::Userspace {
            reason,
            cookie: self.cookie,
            table_id: self.table_id,
            max_len,
            controller_id,
            continuation: false,
            dont_send: false,
            slot: u32::try_from(self.out.packet_ins.len()).unwrap_or(u32::MAX),
        });
        self.out.packet_ins.push(PacketIn {
            reason,
            table_id: self.table_id,
            cookie: self.cookie,
            max_len,
            key: self.flow,
            userdata,
            continuation: None,
            bridge: self.bridge_tag(),
        });
        self.out.cacheable = false;
    }

    fn output(&mut self, p: PortNo, max_len: u16, depth: usize) {
        let in_port = self.flow.in_port;
        match p {
            port::IN_PORT => self.emit_output(in_port, depth),
            port::NORMAL => self.normal(depth),
            port::FLOOD | port::ALL => {
                let targets: Vec<PortNo> = self
                    .ctx
                    .ports
                    .iter()
                    .filter(|bp| bp.ofport != in_port && (p == port::ALL || bp.flood))
                    .map(|bp| bp.ofport)
                    .collect();
                for t in targets {
                    self.emit_output(t, depth);
                }
            }
            port::CONTROLLER => self.controller(max_len),
            port::TABLE if self.packet_out => {
                self.run_table(0, depth + 1);
            }
            port::TABLE | port::ANY => {
                self.note(depth, format!("output to {} ignored", format_port(p)));
            }
            n if n == in_port => {
                self.note(
                    depth,
                    format!("skipping output to input port {}", format_port(n)),
                );
            }
            n => self.emit_output(n, depth),
        }
    }

    fn emit_output(&mut self, ofport: PortNo, depth: usize) {
        let Some(bp) = self.br.ports.get(ofport) else {
            self.note(
                depth,
                format!("output to nonexistent port {}", format_port(ofport)),
            );
            return;
        };
        if let Some(peer) = bp.patch {
            self.patch_output(ofport, peer, depth);
            return;
        }
        let dp = bp.dp_port;
        self.commit();
        let d = &self.dirty;
        if d.tun_id != 0
            || d.tun_src != 0
            || d.tun_dst != 0
            || d.tun_ipv6_src != [0; 16]
            || d.tun_ipv6_dst != [0; 16]
            || d.tun_metadata_present != 0
        {
            self.out
                .tunnel_keys
                .push((self.out.actions.len(), self.flow));
        }
        self.out.actions.push(DpAction::Output(dp));
    }

    /// The id frozen states and packet-ins carry: the current bridge's
    /// ([`PatchBridge::id`]), 0 when translation has no patch set.
    fn bridge_tag(&self) -> u32 {
        self.br.id
    }

    /// Output to a patch port: translation continues in the peer bridge
    /// from table 0 with `in_port` the peer port, inside the same
    /// megaflow, as Open vSwitch's patch ports do. The peer sees the packet
    /// with the header changes made so far but with fresh pipeline
    /// metadata (registers, metadata, tunnel and conntrack fields cleared,
    /// its own action set and field stack); afterwards this bridge goes on
    /// with the packet as it had it. The crossing costs a level of depth
    /// and a resubmit, so a loop of patch pairs ends at [`MAX_DEPTH`].
    fn patch_output(&mut self, ofport: PortNo, peer: PatchPeer, depth: usize) {
        let Some(pb) = self
            .ctx
            .patch
            .and_then(|set| set.bridges.iter().find(|b| b.id == peer.bridge))
        else {
            self.note(
                depth,
                format!(
                    "output to patch port {} whose peer bridge is unknown, dropping",
                    format_port(ofport)
                ),
            );
            return;
        };
        self.resubmits += 1;
        if self.resubmits > MAX_RESUBMITS {
            self.abort(depth, XlateError::TooManyResubmits);
            return;
        }
        if depth + 1 >= MAX_NESTING || self.deep + 1 >= MAX_DEPTH {
            self.abort(depth, XlateError::TooDeep);
            return;
        }
        self.out.patch_crossings.push(PatchCrossing {
            from: (self.br.id, ofport),
            to: (peer.bridge, peer.port),
        });
        self.out.trace.push(TraceStep::Bridge {
            depth,
            name: pb.name.to_string(),
        });
        let saved_flow = self.flow;
        let saved_tpids = self.vlan_tpids;
        let saved_wc = self.wc;
        let saved_br = self.br;
        let (saved_table, saved_cookie, saved_rule) = (self.table_id, self.cookie, self.rule);
        let saved_miss = self.miss_rule;
        let saved_set = std::mem::take(&mut self.action_set);
        let saved_stack = std::mem::take(&mut self.stack);
        let saved_rules = std::mem::take(&mut self.out.rules_hit);
        let saved_lookups = std::mem::take(&mut self.out.table_lookups);
        let saved_learned = std::mem::take(&mut self.out.learned);
        let saved_flows = std::mem::take(&mut self.out.learned_flows);

        // The peer bridge's view: a packet received on the peer port.
        let fresh = FlowKey::default();
        let f = &mut self.flow;
        f.in_port = peer.port;
        f.metadata = 0;
        f.regs = [0; 16];
        f.tun_id = 0;
        f.tun_src = 0;
        f.tun_dst = 0;
        f.tun_ipv6_src = [0; 16];
        f.tun_ipv6_dst = [0; 16];
        f.tun_flags = 0;
        f.tun_gbp_id = 0;
        f.tun_gbp_flags = 0;
        f.tun_ttl = 0;
        f.tun_tos = 0;
        f.tun_metadata = fresh.tun_metadata;
        f.tun_metadata_present = 0;
        f.clear_ct();
        self.br = Br {
            id: pb.id,
            pipeline: pb.pipeline,
            groups: pb.groups,
            ports: pb.ports,
            mac: pb.mac,
        };
        self.deep += 1;
        self.frames += 1;
        self.run_table(0, depth);
        if self.out.error.is_none() {
            self.exit = false;
            let set = std::mem::take(&mut self.action_set).into_list();
            if !set.is_empty() {
                self.note(
                    depth,
                    format!("executing action set: {}", format_actions(&set)),
                );
                let saved = std::mem::replace(&mut self.in_action_set, true);
                self.run_list(&set, depth);
                self.in_action_set = saved;
            }
        }
        self.frames -= 1;
        self.deep -= 1;

        let effects = PatchEffects {
            bridge: pb.id,
            rules_hit: std::mem::replace(&mut self.out.rules_hit, saved_rules),
            table_lookups: std::mem::replace(&mut self.out.table_lookups, saved_lookups),
            learned: std::mem::replace(&mut self.out.learned, saved_learned),
            learned_flows: std::mem::replace(&mut self.out.learned_flows, saved_flows),
        };
        if !effects.rules_hit.is_empty()
            || !effects.table_lookups.is_empty()
            || !effects.learned.is_empty()
            || !effects.learned_flows.is_empty()
        {
            self.out.patch_effects.push(effects);
        }
        self.br = saved_br;
        self.flow = saved_flow;
        self.vlan_tpids = saved_tpids;
        // The peer's tunnel fields were cleared: what its lookups consulted
        // there says nothing about the packet's own tunnel metadata.
        let w = &mut self.wc;
        w.tun_id = saved_wc.tun_id;
        w.tun_src = saved_wc.tun_src;
        w.tun_dst = saved_wc.tun_dst;
        w.tun_ipv6_src = saved_wc.tun_ipv6_src;
        w.tun_ipv6_dst = saved_wc.tun_ipv6_dst;
        w.tun_flags = saved_wc.tun_flags;
        w.tun_gbp_id = saved_wc.tun_gbp_id;
        w.tun_gbp_flags = saved_wc.tun_gbp_flags;
        w.tun_ttl = saved_wc.tun_ttl;
        w.tun_tos = saved_wc.tun_tos;
        w.tun_metadata = saved_wc.tun_metadata;
        w.tun_metadata_present = saved_wc.tun_metadata_present;
        self.table_id = saved_table;
        self.cookie = saved_cookie;
        self.miss_rule = saved_miss;
        self.rule = saved_rule;
        self.action_set = saved_set;
        self.stack = saved_stack;
        // Whatever ended the peer's pipeline (exit, a pause, a freeze) does
        // not end this bridge's.
        self.exit = false;
    }

    /// Emits the datapath actions that turn the packet as last emitted
    /// (`base`) into the packet as the pipeline sees it (`flow`), for every
    /// header field an action wrote.
    fn commit(&mut self) {
        if self.dirty.vlan_tci != 0 || self.dirty.vlan_tci_inner != 0 {
            self.wc.vlan_tci = 0xffff;
            if self.dirty.vlan_tci_inner != 0
                || (self.base.vlan_tci | self.flow.vlan_tci) & VLAN_CFI != 0
            {
                // The tag stacks compared below include the inner tag.
                self.wc.vlan_tci_inner = 0xffff;
            }
            self.commit_vlan();
        }
        macro_rules! commit_field {
            ($f:expr, $field:ident, $act:expr) => {
                if $f.get(&self.dirty) != 0 {
                    $f.unwildcard(&mut self.wc);
                    if self.flow.$field != self.base.$field {
                        self.base.$field = self.flow.$field;
                        self.out.actions.push($act(self.flow.$field));
                    }
                }
            };
        }
        commit_field!(Field::DlSrc, dl_src, DpAction::SetEthSrc);
        commit_field!(Field::DlDst, dl_dst, DpAction::SetEthDst);
        if ethertype::is_mpls(self.flow.dl_type) && self.dirty.ipv6_label != 0 {
            // The whole entry is written: the megaflow matches all of it.
            self.wc.ipv6_label = u32::MAX;
            if self.flow.mpls_lse() != self.base.mpls_lse() {
                let lse = self.flow.mpls_lse();
                self.base.set_mpls_lse(lse);
                // Right after a push, the pushed entry carries it (as OVS
                // prints it: one push_mpls with the final entry).
                match self.out.actions.last_mut() {
                    Some(DpAction::PushMpls { lse: pushed, .. }) => *pushed = lse,
                    _ => self.out.actions.push(DpAction::SetMpls(lse)),
                }
            }
        }
        match self.flow.dl_type {
            ethertype::IPV4 => {
                commit_field!(Field::NwSrc, nw_src, DpAction::SetIpv4Src);
                commit_field!(Field::NwDst, nw_dst, DpAction::SetIpv4Dst);
            }
            ethertype::IPV6 => {
                commit_field!(Field::Ipv6Src, ipv6_src, DpAction::SetIpv6Src);
                commit_field!(Field::Ipv6Dst, ipv6_dst, DpAction::SetIpv6Dst);
                commit_field!(Field::Ipv6Label, ipv6_label, DpAction::SetIpv6Label);
            }
            ethertype::ARP => {
                // OVN's ARP responder turns a request into a reply in place.
                commit_field!(Field::ArpOp, nw_proto, |op: u8| DpAction::SetArpOp(
                    u16::from(op)
                ));
                commit_field!(Field::ArpSpa, nw_src, DpAction::SetArpSpa);
                commit_field!(Field::ArpTpa, nw_dst, DpAction::SetArpTpa);
                commit_field!(Field::ArpSha, arp_sha, DpAction::SetArpSha);
                commit_field!(Field::ArpTha, arp_tha, DpAction::SetArpTha);
            }
            _ => {}
        }
        if matches!(self.flow.dl_type, ethertype::IPV4 | ethertype::IPV6) {
            if self.dirty.nw_tos != 0 {
                // As OVS: a masked rewrite of the bits written or matched
                // so far; the others stay as the packet has them, so the
                // megaflow need not match them.
                let mask = self.dirty.nw_tos | self.wc.nw_tos;
                self.wc.nw_tos = mask;
                if self.flow.nw_tos != self.base.nw_tos {
                    self.base.nw_tos = self.flow.nw_tos;
                    self.out.actions.push(DpAction::SetIpTos {
                        tos: self.flow.nw_tos & mask,
                        mask,
                    });
                }
            }
            commit_field!(Field::NwTtl, nw_ttl, DpAction::SetIpTtl);
            if matches!(
                self.flow.nw_proto,
                ipproto::TCP | ipproto::UDP | ipproto::SCTP
            ) {
                commit_field!(Field::TpSrc, tp_src, DpAction::SetTpSrc);
                commit_field!(Field::TpDst, tp_dst, DpAction::SetTpDst);
            } else if matches!(self.flow.nw_proto, ipproto::ICMP | ipproto::ICMPV6) {
                // ICMP type and code live in tp_src/tp_dst (OVN's router
                // answers pings by rewriting the type).
                commit_field!(Field::TpSrc, tp_src, |t: u16| DpAction::SetIcmpType(
                    t as u8
                ));
                commit_field!(Field::TpDst, tp_dst, |c: u16| DpAction::SetIcmpCode(
                    c as u8
                ));
            }
        }
    }

    /// A VLAN action's datapath effect depends on the packet's original
    /// tags (whether there is one to pop, whether the VID or PCP already
    /// has the new value), so the megaflow must match them exactly. Only the
    /// original tags count: `self.wc` is in terms of the packet as received.
    fn unwildcard_vlans(&mut self) {
        self.wc.vlan_tci = 0xffff;
        self.wc.vlan_tci_inner = 0xffff;
    }

    /// Emits what turns the tags as last emitted into the tags the pipeline
    /// sees. As in OVS, tags are compared from the innermost out (TCI and
    /// TPID); those that differ are popped and the flow's pushed. One
    /// exception keeps a received tag's TPID, which the key does not hold:
    /// an outer tag whose TPID did not change (over the same inner tags) is
    /// rewritten in place, where OVS pops and pushes it again.
    fn commit_vlan(&mut self) {
        let stack = |k: &FlowKey, tpids: [u16; 2]| -> Vec<(u16, u16)> {
            let mut s = Vec::with_capacity(2);
            if k.vlan_tci & VLAN_CFI != 0 {
                s.push((k.vlan_tci, tpids[0]));
                if k.vlan_tci_inner & VLAN_CFI != 0 {
                    s.push((k.vlan_tci_inner, tpids[1]));
                }
            }
            s
        };
        let b = stack(&self.base, self.base_vlan_tpids);
        let f = stack(&self.flow, self.vlan_tpids);
        if b != f {
            if !b.is_empty() && b.len() == f.len() && b[1..] == f[1..] && b[0].1 == f[0].1 {
                let (bo, fo) = (b[0].0, f[0].0);
                if bo & VLAN_VID_MASK != fo & VLAN_VID_MASK {
                    self.out
                        .actions
                        .push(DpAction::SetVlanVid(fo & VLAN_VID_MASK));
                }
                if bo & VLAN_PCP_MASK != fo & VLAN_PCP_MASK {
                    self.out
                        .actions
                        .push(DpAction::SetVlanPcp((fo >> 13) as u8));
                }
            } else {
                let common = b
                    .iter()
                    .rev()
                    .zip(f.iter().rev())
                    .take_while(|(x, y)| x == y)
                    .count();
                for _ in common..b.len() {
                    self.out.actions.push(DpAction::PopVlan);
                }
                let to_push = f.len() - common;
                for &(tci, tpid) in f[..to_push].iter().rev() {
                    self.out.actions.push(DpAction::PushVlan {
                        tpid: if tpid == 0 { ethertype::VLAN } else { tpid },
                        tci: tci & !VLAN_CFI,
                    });
                }
            }
        }
        self.base.vlan_tci = self.flow.vlan_tci;
        self.base.vlan_tci_inner = self.flow.vlan_tci_inner;
        self.base_vlan_tpids = self.vlan_tpids;
    }

    /// OVS's NORMAL: an 802.1Q MAC-learning switch.
    fn normal(&mut self, depth: usize) {
        Field::InPort.unwildcard(&mut self.wc);
        Field::VlanVid.unwildcard(&mut self.wc);
        Field::DlSrc.unwildcard(&mut self.wc);
        Field::DlDst.unwildcard(&mut self.wc);
        let in_port = self.flow.in_port;
        let Some(in_bp) = self.br.ports.get(in_port) else {
            self.note(
                depth,
                format!("NORMAL: no input port {}, dropping", format_port(in_port)),
            );
            return;
        };
        let Some(vlan) = in_bp.vlan.input_vlan(self.flow.vlan_tci) else {
            let what = if self.flow.has_vlan() {
                format!("VLAN {} packet", self.flow.vlan_vid())
            } else {
                "untagged packet".to_string()
            };
            self.note(
                depth,
                format!(
                    "NORMAL: dropping {what} received on port {} not configured for it",
                    format_port(in_port)
                ),
            );
            return;
        };
        if is_reserved_multicast(self.flow.dl_dst) {
            self.note(
                depth,
                "NORMAL: packet has reserved destination MAC, dropping",
            );
            return;
        }
        if !self.bond_admits(in_port, vlan, depth) {
            return;
        }
        let in_port = self.br.ports.bundle(in_port);
        let src = self.flow.dl_src;
        if !is_multicast(src) {
            self.out.learned.push(MacLearnRequest {
                vlan,
                mac: src,
                port: in_port,
            });
        }
        let dst = self.flow.dl_dst;
        let known = if is_multicast(dst) {
            None
        } else {
            self.br.mac.lookup(vlan, dst, self.ctx.now_ms)
        };
        match known {
            Some(p) if p == in_port => {
                self.note(depth, "NORMAL: learned port is input port, dropping");
            }
            Some(p) => match self.br.ports.get(p) {
                Some(bp) if bp.vlan.includes(vlan) => {
                    self.note(
                        depth,
                        format!("NORMAL: forwarding to learned port {}", format_port(p)),
                    );
                    self.output_normal(p, vlan, depth);
                }
                _ => self.note(depth, "NORMAL: learned port is unknown, dropping"),
            },
            None => {
                self.note(depth, format!("NORMAL: flooding in VLAN {vlan}"));
                let ports = self.br.ports;
                let targets: Vec<PortNo> = ports
                    .iter()
                    .filter(|bp| {
                        ports.bundle(bp.ofport) == bp.ofport
                            && bp.ofport != in_port
                            && bp.flood
                            && bp.vlan.includes(vlan)
                    })
                    .map(|bp| bp.ofport)
                    .collect();
                for t in targets {
                    self.output_normal(t, vlan, depth);
                }
            }
        }
    }

    /// Outputs to `ofport` with the tagging its VLAN configuration wants.
    fn output_normal(&mut self, ofport: PortNo, vlan: u16, depth: usize) {
        let ports = self.br.ports;
        let ofport = match ports.bond_of(ofport) {
            None => ofport,
            Some(b) => match b.select(&self.flow, vlan, &mut self.wc) {
                Some(m) => m,
                None => {
                    self.note(
                        depth,
                        format!("NORMAL: bond {} has no usable member", b.name),
                    );
                    return;
                }
            },
        };
        let Some(bp) = self.br.ports.get(ofport) else {
            return;
        };
        let saved = self.flow.vlan_tci;
        self.flow.vlan_tci = match bp.vlan.output_tag(vlan) {
            None => 0,
            Some(vid) => {
                let pcp = if saved & VLAN_CFI != 0 {
                    saved & VLAN_PCP_MASK
                } else {
                    0
                };
                VLAN_CFI | pcp | (vid & VLAN_VID_MASK)
            }
        };
        self.mark_dirty(Field::VlanTci);
        self.emit_output(ofport, depth);
        self.flow.vlan_tci = saved;
    }
}

impl Xlate<'_, '_> {
    /// NORMAL's admission check for a packet received on a bond member.
    fn bond_admits(&mut self, in_port: PortNo, vlan: u16, depth: usize) -> bool {
        use crate::bond::Admit;
        let (ctx, br) = (self.ctx, self.br);
        let Some(b) = br.ports.bond_of(in_port) else {
            return true;
        };
        let verdict = match b.admit(in_port, &self.flow) {
            Admit::DropIfMoved => {
                let moved = br
                    .mac
                    .lookup(vlan, self.flow.dl_src, ctx.now_ms)
                    .is_some_and(|p| p != b.id());
                Field::DlType.unwildcard(&mut self.wc);
                if moved && !crate::bond::is_gratuitous_arp(&self.flow) {
                    Admit::Drop
                } else {
                    Admit::Accept
                }
            }
            v => v,
        };
        if verdict == Admit::Drop {
            self.note(
                depth,
                format!(
                    "NORMAL: bond {} does not admit this packet on member {}, dropping",
                    b.name,
                    format_port(in_port)
                ),
            );
            return false;
        }
        true
    }
}

/// 01:80:c2:00:00:00..0f: link-local protocols (STP, LACP, LLDP, 802.1X)
/// that a bridge must not forward (OVS's default, `forward-bpdu=false`).
pub fn is_reserved_multicast(mac: [u8; 6]) -> bool {
    mac[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && mac[5] & 0xf0 == 0
}

/// `ofproto/trace` of a raw frame: parses it (as received on OpenFlow port
/// `in_port`) and translates it. Returns the parsed key with the result.
pub fn trace_frame(
    ctx: &XlateCtx<'_>,
    frame: &[u8],
    in_port: PortNo,
) -> Result<(FlowKey, XlateResult), crate::parse::ParseError> {
    let (key, _layout) = crate::parse::extract(frame, in_port)?;
    let r = translate(ctx, &key);
    Ok((key, r))
}

fn bits_mask(n: u8) -> u128 {
    if n >= 128 {
        u128::MAX
    } else {
        (1u128 << n) - 1
    }
}

/// Prints datapath actions the way `ofproto/trace` prints them
/// (`push_vlan(vid=10,pcp=0),2,pop_vlan,3`; `drop` when empty).
pub fn format_dp_actions(actions: &[DpAction]) -> String {
    format_dp_actions_with(actions, &|id| format!("ct(id={id})"))
}

/// [`format_dp_actions`], with `ct_text` printing a `DpAction::Ct` (whose
/// arguments only the datapath knows).
pub fn format_dp_actions_with(actions: &[DpAction], ct_text: &dyn Fn(u32) -> String) -> String {
    format_dp_actions_keyed(actions, ct_text, None)
}

/// [`format_dp_actions_with`] for a packet whose key before the actions is
/// `key`: each run of header rewrites is printed as OVS commits it, one
/// `set(HEADER(...))` per header in OVS's key order (eth, then ipv4, ipv6
/// or arp, then tcp/udp/sctp, then icmp), fields in the header's order,
/// the last value of a field winning. With the key, TTL and TOS rewrites
/// are named for the packet's IP version, port rewrites for its L4
/// protocol, and an ICMP rewrite carries type and code (OVS sets the
/// whole ICMP header).
pub fn format_dp_actions_keyed(
    actions: &[DpAction],
    ct_text: &dyn Fn(u32) -> String,
    key: Option<&FlowKey>,
) -> String {
    // A paused pipeline's packet-in in a translation that sends nothing
    // (a trace) is no datapath action: OVS hands continuations to the
    // controller from the slow path, and its trace shows nothing for them.
    let silent = |a: &DpAction| {
        matches!(
            a,
            DpAction::Userspace {
                continuation: true,
                dont_send: true,
                ..
            }
        )
    };
    if actions.iter().any(silent) {
        let rest: Vec<DpAction> = actions.iter().filter(|a| !silent(a)).copied().collect();
        return format_dp_actions_keyed(&rest, ct_text, key);
    }
    if actions.is_empty() {
        return "drop".into();
    }
    if let Some(i) = actions
        .iter()
        .position(|a| matches!(a, DpAction::CheckPktLen { .. }))
    {
        // check_pkt_len(size=N,gt(...),le(...)), then what follows both.
        let DpAction::CheckPktLen { size, .. } = actions[i] else {
            unreachable!()
        };
        let (gt, le) = crate::dpaction::check_pkt_len_branches(actions, i);
        let branch = |b: &[DpAction]| {
            if b.is_empty() {
                "drop".to_string()
            } else {
                format_dp_actions_keyed(b, ct_text, key)
            }
        };
        let head = if i == 0 {
            String::new()
        } else {
            format!("{},", format_dp_actions_keyed(&actions[..i], ct_text, key))
        };
        let after = i + 1 + gt.len() + le.len();
        let tail = if after < actions.len() {
            format!(
                ",{}",
                format_dp_actions_keyed(&actions[after..], ct_text, key)
            )
        } else {
            String::new()
        };
        return format!(
            "{head}check_pkt_len(size={size},gt({}),le({})){tail}",
            branch(gt),
            branch(le)
        );
    }
    if key.is_some()
        || actions
            .windows(2)
            .any(|w| is_header_set(&w[0]) && is_header_set(&w[1]))
    {
        return format_runs(actions, ct_text, key);
    }
    format_each(actions, ct_text)
}

/// Rewrites of the headers that OVS commits as one `set()` per header.
fn is_header_set(a: &DpAction) -> bool {
    matches!(
        a,
        DpAction::SetEthSrc(_)
            | DpAction::SetEthDst(_)
            | DpAction::SetIpv4Src(_)
            | DpAction::SetIpv4Dst(_)
            | DpAction::SetIpv6Src(_)
            | DpAction::SetIpv6Dst(_)
            | DpAction::SetIpv6Label(_)
            | DpAction::SetIpTos { .. }
            | DpAction::SetIpTtl(_)
            | DpAction::SetTpSrc(_)
            | DpAction::SetTpDst(_)
            | DpAction::SetIcmpType(_)
            | DpAction::SetIcmpCode(_)
            | DpAction::SetArpOp(_)
            | DpAction::SetArpSpa(_)
            | DpAction::SetArpTpa(_)
            | DpAction::SetArpSha(_)
            | DpAction::SetArpTha(_)
    )
}

/// Prints `actions` (no check_pkt_len), merging each run of header
/// rewrites as [`format_dp_actions_keyed`] says.
fn format_runs(
    actions: &[DpAction],
    ct_text: &dyn Fn(u32) -> String,
    key: Option<&FlowKey>,
) -> String {
    use std::net::{Ipv4Addr, Ipv6Addr};
    let mac = |m: &[u8; 6]| wire::MacAddr(*m).to_string();
    let ipv6 = |run: &[DpAction]| match key {
        Some(k) => k.dl_type == ethertype::IPV6,
        None => run.iter().any(|a| {
            matches!(
                a,
                DpAction::SetIpv6Src(_) | DpAction::SetIpv6Dst(_) | DpAction::SetIpv6Label(_)
            )
        }),
    };
    // The ICMP code as the packet has it so far (tp_dst holds it).
    let mut icmp_code = key.map(|k| k.tp_dst as u8);
    let mut parts = Vec::new();
    let mut i = 0;
    while i < actions.len() {
        if !is_header_set(&actions[i]) {
            parts.push(format_each(&actions[i..=i], ct_text));
            i += 1;
            continue;
        }
        let end = actions[i..]
            .iter()
            .position(|a| !is_header_set(a))
            .map_or(actions.len(), |n| i + n);
        let run = &actions[i..end];
        i = end;
        // Last value of each field in the run, as text, per header slot.
        let last = |f: &dyn Fn(&DpAction) -> Option<String>| run.iter().rev().find_map(f);
        let mut header = |name: &str, fields: Vec<(&str, Option<String>)>| {
            let set: Vec<String> = fields
                .into_iter()
                .filter_map(|(n, v)| v.map(|v| format!("{n}={v}")))
                .collect();
            if !set.is_empty() {
                parts.push(format!("set({name}({}))", set.join(",")));
            }
        };
        header(
            "eth",
            vec![
                (
                    "src",
                    last(&|a| match a {
                        DpAction::SetEthSrc(m) => Some(mac(m)),
                        _ => None,
                    }),
                ),
                (
                    "dst",
                    last(&|a| match a {
                        DpAction::SetEthDst(m) => Some(mac(m)),
                        _ => None,
                    }),
                ),
            ],
        );
        let tos = last(&|a| match a {
            DpAction::SetIpTos { tos, mask: 0xff } => Some(format!("{tos:#x}")),
            DpAction::SetIpTos { tos, mask } => Some(format!("{tos:#x}/{mask:#x}")),
            _ => None,
        });
        let ttl = last(&|a| match a {
            DpAction::SetIpTtl(t) => Some(t.to_string()),
            _ => None,
        });
        if ipv6(run) {
            header(
                "ipv6",
                vec![
                    (
                        "src",
                        last(&|a| match a {
                            DpAction::SetIpv6Src(v) => Some(Ipv6Addr::from(*v).to_string()),
                            _ => None,
                        }),
                    ),
                    (
                        "dst",
                        last(&|a| match a {
                            DpAction::SetIpv6Dst(v) => Some(Ipv6Addr::from(*v).to_string()),
                            _ => None,
                        }),
                    ),
                    (
                        "label",
                        last(&|a| match a {
                            DpAction::SetIpv6Label(v) => Some(format!("{v:#x}")),
                            _ => None,
                        }),
                    ),
                    ("tclass", tos),
                    ("hlimit", ttl),
                ],
            );
        } else if key.is_some()
            || run
                .iter()
                .any(|a| matches!(a, DpAction::SetIpv4Src(_) | DpAction::SetIpv4Dst(_)))
        {
            header(
                "ipv4",
                vec![
                    (
                        "src",
                        last(&|a| match a {
                            DpAction::SetIpv4Src(v) => Some(Ipv4Addr::from(*v).to_string()),
                            _ => None,
                        }),
                    ),
                    (
                        "dst",
                        last(&|a| match a {
                            DpAction::SetIpv4Dst(v) => Some(Ipv4Addr::from(*v).to_string()),
                            _ => None,
                        }),
                    ),
                    ("tos", tos),
                    ("ttl", ttl),
                ],
            );
        } else {
            header("ip", vec![("tos", tos), ("ttl", ttl)]);
        }
        header(
            "arp",
            vec![
                (
                    "sip",
                    last(&|a| match a {
                        DpAction::SetArpSpa(v) => Some(Ipv4Addr::from(*v).to_string()),
                        _ => None,
                    }),
                ),
                (
                    "tip",
                    last(&|a| match a {
                        DpAction::SetArpTpa(v) => Some(Ipv4Addr::from(*v).to_string()),
                        _ => None,
                    }),
                ),
                (
                    "op",
                    last(&|a| match a {
                        DpAction::SetArpOp(v) => Some(v.to_string()),
                        _ => None,
                    }),
                ),
                (
                    "sha",
                    last(&|a| match a {
                        DpAction::SetArpSha(m) => Some(mac(m)),
                        _ => None,
                    }),
                ),
                (
                    "tha",
                    last(&|a| match a {
                        DpAction::SetArpTha(m) => Some(mac(m)),
                        _ => None,
                    }),
                ),
            ],
        );
        let l4 = match key.map(|k| k.nw_proto) {
            Some(6) => "tcp",
            Some(17) => "udp",
            Some(132) => "sctp",
            _ => "l4",
        };
        header(
            l4,
            vec![
                (
                    "src",
                    last(&|a| match a {
                        DpAction::SetTpSrc(p) => Some(p.to_string()),
                        _ => None,
                    }),
                ),
                (
                    "dst",
                    last(&|a| match a {
                        DpAction::SetTpDst(p) => Some(p.to_string()),
                        _ => None,
                    }),
                ),
            ],
        );
        let itype = last(&|a| match a {
            DpAction::SetIcmpType(t) => Some(t.to_string()),
            _ => None,
        });
        let icode = run.iter().rev().find_map(|a| match a {
            DpAction::SetIcmpCode(c) => Some(*c),
            _ => None,
        });
        if let Some(c) = icode {
            icmp_code = Some(c);
        }
        let icmp = if ipv6(run) { "icmpv6" } else { "icmp" };
        match (itype, icode) {
            (None, None) => {}
            (Some(t), _) if icmp_code.is_some() => header(
                icmp,
                vec![
                    ("type", Some(t)),
                    ("code", icmp_code.map(|c| c.to_string())),
                ],
            ),
            (t, c) => header(icmp, vec![("type", t), ("code", c.map(|c| c.to_string()))]),
        }
    }
    parts.join(",")
}

/// Prints each action on its own (no check_pkt_len).
fn format_each(actions: &[DpAction], ct_text: &dyn Fn(u32) -> String) -> String {
    let mac = |m: &[u8; 6]| wire::MacAddr(*m);
    actions
        .iter()
        .map(|a| match a {
            DpAction::Output(p) => p.to_string(),
            DpAction::Userspace {
                reason,
                cookie,
                max_len,
                controller_id,
                continuation,
                dont_send,
                ..
            } => {
                // OVS's layout of a controller cookie. The frozen state
                // travels in the packet-in itself here, so there is no
                // recirculation id to name: 0.
                let cookie = if *cookie == 0 {
                    "0".to_string()
                } else {
                    format!("{cookie:#x}")
                };
                format!(
                    "userspace(pid=0,controller(reason={},dont_send={},continuation={},recirc_id=0,rule_cookie={cookie},controller_id={controller_id},max_len={max_len}))",
                    reason.code(),
                    u8::from(*dont_send),
                    u8::from(*continuation)
                )
            }
            DpAction::Sample {
                probability,
                exporter,
                obs_domain,
                obs_point,
                flow_sample,
            } => {
                let pct = f64::from(*probability) * 100.0 / f64::from(u32::MAX);
                if *flow_sample {
                    format!(
                        "sample(sample={pct:.1}%,actions(userspace(flow_sample(collector_set_id={exporter},obs_domain_id={obs_domain},obs_point_id={obs_point}))))"
                    )
                } else {
                    format!("sample(sample={pct:.1}%,actions(userspace(ipfix(exporter={exporter}))))")
                }
            }
            DpAction::PushVlan { tpid, tci } => {
                let mut s = String::from("push_vlan(");
                if *tpid != ethertype::VLAN {
                    let _ = write!(s, "tpid={tpid:#x},");
                }
                let _ = write!(s, "vid={},pcp={})", tci & VLAN_VID_MASK, tci >> 13);
                s
            }
            DpAction::PopVlan => "pop_vlan".into(),
            DpAction::PushMpls { ethertype, lse } => {
                format!("push_mpls({},eth_type={ethertype:#x})", mpls_text(*lse))
            }
            DpAction::PopMpls(t) => format!("pop_mpls(eth_type={t:#x})"),
            DpAction::SetMpls(lse) => format!("set(mpls({}))", mpls_text(*lse)),
            DpAction::SetVlanVid(v) => format!("set(vlan(vid={v}))"),
            DpAction::SetVlanPcp(p) => format!("set(vlan(pcp={p}))"),
            DpAction::SetEthSrc(m) => format!("set(eth(src={}))", mac(m)),
            DpAction::SetEthDst(m) => format!("set(eth(dst={}))", mac(m)),
            DpAction::SetIpv4Src(ip) => format!("set(ipv4(src={}))", std::net::Ipv4Addr::from(*ip)),
            DpAction::SetIpv4Dst(ip) => format!("set(ipv4(dst={}))", std::net::Ipv4Addr::from(*ip)),
            DpAction::SetIpv6Src(ip) => format!("set(ipv6(src={}))", std::net::Ipv6Addr::from(*ip)),
            DpAction::SetIpv6Dst(ip) => format!("set(ipv6(dst={}))", std::net::Ipv6Addr::from(*ip)),
            DpAction::SetIpv6Label(l) => format!("set(ipv6(label={l:#x}))"),
            DpAction::SetIpTos { tos, mask: 0xff } => format!("set(ip(tos={tos:#x}))"),
            DpAction::SetIpTos { tos, mask } => format!("set(ip(tos={tos:#x}/{mask:#x}))"),
            DpAction::SetIpTtl(t) => format!("set(ip(ttl={t}))"),
            DpAction::SetTpSrc(p) => format!("set(l4(src={p}))"),
            DpAction::SetTpDst(p) => format!("set(l4(dst={p}))"),
            DpAction::SetIcmpType(t) => format!("set(icmp(type={t}))"),
            DpAction::SetIcmpCode(c) => format!("set(icmp(code={c}))"),
            DpAction::SetArpOp(op) => format!("set(arp(op={op}))"),
            DpAction::SetArpSpa(ip) => format!("set(arp(sip={}))", std::net::Ipv4Addr::from(*ip)),
            DpAction::SetArpTpa(ip) => format!("set(arp(tip={}))", std::net::Ipv4Addr::from(*ip)),
            DpAction::SetArpSha(m) => format!("set(arp(sha={}))", mac(m)),
            DpAction::SetArpTha(m) => format!("set(arp(tha={}))", mac(m)),
            DpAction::Meter(m) => format!("meter({m})"),
            DpAction::Recirc(id) => format!("recirc({id:#x})"),
            DpAction::Ct(id) => ct_text(*id),
            DpAction::CtClear => "ct_clear".into(),
            DpAction::CheckPktLen { .. } => unreachable!("handled above"),
            DpAction::TnlPush {
                tnl_port,
                header,
                out,
            } => format!("tnl_push(tnl_port({tnl_port}),header#{header},out_port({out}))"),
            DpAction::TnlPop { port, .. } => format!("tnl_pop({port})"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Prints a translation the way `ovs-appctl ofproto/trace` does: the rules
/// hit per table with their actions, notes, then the megaflow and the
/// datapath actions.
/// Forgets a key's L3 and L4 fields (a packet that became, or stopped
/// being, MPLS).
fn clear_l3(k: &mut FlowKey) {
    k.nw_src = 0;
    k.nw_dst = 0;
    k.nw_proto = 0;
    k.nw_tos = 0;
    k.nw_ttl = 0;
    k.nw_frag = 0;
    k.tp_src = 0;
    k.tp_dst = 0;
    k.tcp_flags = 0;
    k.ipv6_label = 0;
    k.ipv6_src = [0; 16];
    k.ipv6_dst = [0; 16];
    k.nd_target = [0; 16];
    k.arp_sha = [0; 6];
    k.arp_tha = [0; 6];
}

/// A label stack entry as the datapath prints it.
fn mpls_text(lse: u32) -> String {
    use crate::key::mpls;
    format!(
        "label={},tc={},ttl={},bos={}",
        (lse & mpls::LABEL_MASK) >> mpls::LABEL_SHIFT,
        (lse & mpls::TC_MASK) >> mpls::TC_SHIFT,
        lse & mpls::TTL_MASK,
        (lse & mpls::BOS_MASK) >> mpls::BOS_SHIFT
    )
}

pub fn format_trace(bridge: &str, key: &FlowKey, r: &XlateResult) -> String {
    format_trace_with(bridge, key, r, &|id| format!("ct(id={id})"))
}

/// [`format_trace`], with `ct_text` printing `DpAction::Ct`.
pub fn format_trace_with(
    bridge: &str,
    key: &FlowKey,
    r: &XlateResult,
    ct_text: &dyn Fn(u32) -> String,
) -> String {
    let mut s = String::new();
    // Like OVS's flow_format: registers and metadata only when nonzero.
    let shown = crate::text::flow_display_mask(key);
    let flow = format_match(&Match::new(*key, shown), crate::table::DEFAULT_PRIORITY);
    let _ = writeln!(s, "Flow: {flow}");
    let _ = writeln!(s);
    let _ = writeln!(s, "bridge(\"{bridge}\")");
    let _ = writeln!(s, "{}", "-".repeat(bridge.len() + 10));
    for step in &r.trace {
        match step {
            TraceStep::Lookup {
                depth,
                table_id,
                rule,
            } => {
                let ind = "    ".repeat(*depth);
                match rule {
                    Some(tr) => {
                        let m = format_match(&tr.m, crate::table::DEFAULT_PRIORITY);
                        // OVS prints a catch-all rule as just its priority.
                        let m = if m.is_empty() { m } else { m + ", " };
                        let _ = writeln!(
                            s,
                            "{ind}{table_id:2}. {m}priority {}, cookie {:#x}",
                            tr.priority, tr.cookie
                        );
                        let _ = writeln!(s, "{ind}    {}", format_actions(&tr.actions));
                    }
                    None => {
                        let _ = writeln!(s, "{ind}{table_id:2}. No match.");
                        let _ = writeln!(s, "{ind}    drop");
                    }
                }
            }
            TraceStep::Note { depth, text } => {
                let _ = writeln!(s, "{}     -> {text}", "    ".repeat(*depth));
            }
            TraceStep::Bridge { depth, name } => {
                // As OVS prints a patch port's crossing: a blank line, then
                // the peer's heading at the level of the rule that output.
                let ind = "    ".repeat(*depth);
                let _ = writeln!(s);
                let _ = writeln!(s, "{ind}bridge(\"{name}\")");
                let _ = writeln!(s, "{ind}{}", "-".repeat(name.len() + 10));
            }
        }
    }
    let _ = writeln!(s);
    let mega = format_match(&Match::new(*key, r.wc), crate::table::DEFAULT_PRIORITY);
    let _ = writeln!(s, "Megaflow: {mega}");
    let _ = write!(
        s,
        "Datapath actions: {}",
        format_dp_actions_keyed(&r.actions, ct_text, Some(key))
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rewrites_print_as_ovs_commits_them_one_set_per_header() {
        let ct = |id: u32| format!("ct({id})");
        // tp_dst holds the ICMP code.
        let k = FlowKey {
            dl_type: ethertype::IPV4,
            nw_proto: ipproto::ICMP,
            tp_dst: 3,
            ..Default::default()
        };
        let a = [
            DpAction::SetEthDst([0, 0, 0, 0, 0, 2]),
            DpAction::SetIpTtl(63),
            DpAction::SetEthSrc([0, 0, 0, 0, 0, 1]),
            DpAction::SetIpv4Dst(0x0a00_0001),
            DpAction::SetIcmpType(0),
            DpAction::Output(1),
            DpAction::SetIpTtl(62),
            DpAction::Output(2),
        ];
        assert_eq!(
            format_dp_actions_keyed(&a, &ct, Some(&k)),
            "set(eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02)),set(ipv4(dst=10.0.0.1,ttl=63)),set(icmp(type=0,code=3)),1,set(ipv4(ttl=62)),2"
        );
        let arp = [
            DpAction::SetArpOp(2),
            DpAction::SetArpTha([0, 0, 0, 0, 0, 9]),
            DpAction::SetArpSpa(0x0a00_0002),
            DpAction::SetArpOp(1),
        ];
        assert_eq!(
            format_dp_actions_with(&arp, &ct),
            "set(arp(sip=10.0.0.2,op=1,tha=00:00:00:00:00:09))"
        );
        let k6 = FlowKey {
            dl_type: ethertype::IPV6,
            nw_proto: ipproto::UDP,
            ..Default::default()
        };
        let a6 = [
            DpAction::SetIpTtl(9),
            DpAction::SetTpDst(53),
            DpAction::Output(3),
        ];
        assert_eq!(
            format_dp_actions_keyed(&a6, &ct, Some(&k6)),
            "set(ipv6(hlimit=9)),set(udp(dst=53)),3"
        );
        // One rewrite alone, no key: printed as before.
        assert_eq!(
            format_dp_actions_with(&[DpAction::SetIpTtl(9)], &ct),
            "set(ip(ttl=9))"
        );
    }
    use crate::group::{Bucket, Group, GroupType};
    use crate::table::{FlowMod, FlowModCommand};
    use crate::text::parse_flow_mod;

    struct Bridge {
        pipeline: Pipeline,
        groups: GroupTable,
        ports: BridgePorts,
        mac: MacLearning,
    }

    impl Bridge {
        fn new(n_ports: u32) -> Bridge {
            let mut ports = BridgePorts::new();
            for p in 1..=n_ports {
                ports.insert(BridgePort::new(p, 100 + p));
            }
            Bridge {
                pipeline: Pipeline::new(),
                groups: GroupTable::new(),
                ports,
                mac: MacLearning::default(),
            }
        }

        fn flow(&mut self, s: &str) {
            let fm: FlowMod = parse_flow_mod(s, FlowModCommand::Add).unwrap();
            self.pipeline.flow_mod(&fm, 0).unwrap();
        }

        fn xlate(&self, key: &FlowKey) -> XlateResult {
            let ctx = XlateCtx {
                pipeline: &self.pipeline,
                groups: &self.groups,
                ports: &self.ports,
                mac: &self.mac,
                now_ms: 1000,
                dp: None,
                patch: None,
            };
            translate(&ctx, key)
        }

        /// Translates and applies learning, as the daemon would.
        fn xlate_learn(&mut self, key: &FlowKey) -> XlateResult {
            let r = self.xlate(key);
            for l in &r.learned {
                self.mac.learn(l.vlan, l.mac, l.port, 1000);
            }
            r
        }

        fn set_vlan(&mut self, p: PortNo, mode: VlanMode) {
            self.ports.get_mut(p).unwrap().vlan = mode;
        }
    }

    fn pkt(in_port: u32, src: u8, dst: u8) -> FlowKey {
        FlowKey {
            in_port,
            dl_src: [0, 0, 0, 0, 0, src],
            dl_dst: [0, 0, 0, 0, 0, dst],
            dl_type: 0x0800,
            nw_proto: 6,
            nw_src: 0x0a00_0001,
            nw_dst: 0x0a00_0002,
            nw_ttl: 64,
            tp_src: 1000,
            tp_dst: 80,
            ..FlowKey::default()
        }
    }

    const BCAST: [u8; 6] = [0xff; 6];

    #[test]
    fn table_miss_drops_and_in_port_and_dl_type_are_always_in_the_megaflow() {
        let b = Bridge::new(2);
        let r = b.xlate(&pkt(1, 1, 2));
        assert!(r.actions.is_empty());
        assert_eq!(r.wc.in_port, u32::MAX);
        assert_eq!(r.wc.dl_type, 0xffff);
        assert!(r.cacheable);
    }

    #[test]
    fn output_to_input_port_is_dropped_unless_in_port_action() {
        let mut b = Bridge::new(2);
        b.flow("actions=output:1,output:2");
        assert_eq!(b.xlate(&pkt(1, 1, 2)).actions, vec![DpAction::Output(102)]);
        b.flow("priority=40000,actions=IN_PORT");
        assert_eq!(b.xlate(&pkt(1, 1, 2)).actions, vec![DpAction::Output(101)]);
    }

    #[test]
    fn rewrites_are_emitted_before_the_output_that_sees_them() {
        let mut b = Bridge::new(3);
        b.flow("ip,actions=output:2,mod_nw_dst:192.168.0.1,mod_vlan_vid:7,output:3");
        let r = b.xlate(&pkt(1, 1, 2));
        assert_eq!(
            r.actions,
            vec![
                DpAction::Output(102),
                DpAction::PushVlan {
                    tpid: 0x8100,
                    tci: 7
                },
                DpAction::SetIpv4Dst(0xc0a8_0001),
                DpAction::Output(103),
            ]
        );
        assert_eq!(
            r.wc.nw_dst,
            u32::MAX,
            "rewritten field is exact in the megaflow"
        );
    }

    #[test]
    fn goto_table_and_write_actions_run_in_openflow_order() {
        let mut b = Bridge::new(3);
        b.flow("table=0,ip,actions=write_actions(output:3),goto_table:1");
        b.flow("table=1,tcp,actions=output:2");
        let r = b.xlate(&pkt(1, 1, 2));
        assert_eq!(
            r.actions,
            vec![DpAction::Output(102), DpAction::Output(103)]
        );
        assert_eq!(r.rules_hit.len(), 2);
        // clear_actions in the second table empties the action set.
        b.flow("table=1,priority=40000,tcp,actions=clear_actions");
        assert!(b.xlate(&pkt(1, 1, 2)).actions.is_empty());
    }

    #[test]
    fn resubmit_changes_in_port_for_the_lookup_and_restores_it() {
        let mut b = Bridge::new(3);
        b.flow("table=0,in_port=1,actions=resubmit(3,1),output:2");
        b.flow("table=1,in_port=3,actions=output:1");
        let r = b.xlate(&pkt(1, 1, 2));
        // output:1 inside the resubmit is allowed (in_port is 3 there).
        assert_eq!(
            r.actions,
            vec![DpAction::Output(101), DpAction::Output(102)]
        );
    }

    #[test]
    fn forward_resubmit_chains_longer_than_max_depth_translate_as_in_ovs() {
        // OVN's routed path chains `resubmit(,N+1)` through ~120 tables:
        // only backward resubmits count towards MAX_DEPTH, as in OVS.
        let mut b = Bridge::new(3);
        for t in 0..250u32 {
            b.flow(&format!("table={t},actions=resubmit(,{})", t + 1));
        }
        b.flow("table=250,actions=output:2");
        let r = b.xlate(&pkt(1, 1, 2));
        assert_eq!(r.error, None);
        assert_eq!(r.actions, vec![DpAction::Output(102)]);
        // A backward loop is still cut at MAX_DEPTH.
        b.flow("table=250,actions=resubmit(,0)");
        assert_eq!(b.xlate(&pkt(1, 1, 2)).error, Some(XlateError::TooDeep));
    }

    #[test]
    fn tail_resubmit_with_in_port_restores_it_for_the_caller() {
        let mut b = Bridge::new(3);
        b.flow("table=0,actions=resubmit(,1),output:IN_PORT");
        b.flow("table=1,actions=resubmit(2,2)");
        b.flow("table=2,in_port=2,actions=output:3");
        let r = b.xlate(&pkt(1, 1, 2));
        assert_eq!(
            r.actions,
            vec![DpAction::Output(103), DpAction::Output(101)]
        );
    }

    #[test]
    fn controller_pause_records_a_continuation_that_resume_runs_to_the_end() {
        // OVN's put_dhcp_opts: `controller(userdata=…,pause),resubmit(,N)`
        // reached through a chain of final resubmits.
        let mut b = Bridge::new(3);
        b.flow("table=0,actions=set_field:0x5->reg14,resubmit(,1)");
        b.flow("table=1,actions=controller(userdata=00.00.00.05,pause),resubmit(,2)");
        b.flow("table=2,reg0=0x8/0x8,actions=output:2");
        b.flow("table=2,priority=0,actions=drop");
        let r = b.xlate(&pkt(1, 1, 2));
        assert_eq!(r.packet_ins.len(), 1);
        let pin = &r.packet_ins[0];
        assert_eq!(pin.userdata, vec![0, 0, 0, 5]);
        assert_eq!(pin.key.regs[14], 5);
        let c = pin.continuation.clone().expect("resumable");
        assert_eq!(c.table_id, 1);
        assert_eq!(c.actions.len(), 1);
        // Nothing after the pause ran.
        assert!(!r.actions.iter().any(|a| matches!(a, DpAction::Output(_))));
        // The controller sets reg0[3] (the result bit) and resumes.
        let mut k = pin.key;
        k.regs[0] |= 8;
        let ctx = XlateCtx {
            pipeline: &b.pipeline,
            groups: &b.groups,
            ports: &b.ports,
            mac: &b.mac,
            now_ms: 0,
            dp: None,
            patch: None,
        };
        let r = translate_resume(&ctx, &k, &c);
        assert_eq!(r.actions, vec![DpAction::Output(102)]);
        // Inside a clone (an enclosing list), the pause is not resumable.
        b.flow("table=1,actions=clone(controller(userdata=00.00.00.05,pause)),resubmit(,2)");
        let r = b.xlate(&pkt(1, 1, 2));
        assert!(r.packet_ins.iter().all(|p| p.continuation.is_none()));
    }

    #[test]
    fn resubmit_loop_hits_the_depth_limit_and_drops() {
        let mut b = Bridge::new(2);
        b.flow("actions=output:2,resubmit(,0)");
        let r = b.xlate(&pkt(1, 1, 2));
        assert_eq!(r.error, Some(XlateError::TooDeep));
        assert!(r.actions.is_empty());
    }

    #[test]
    fn packet_in_reasons_and_cookie_print_as_ovs_numbers_them() {
        let mut b = Bridge::new(2);
        b.flow(
            "cookie=0x9,priority=5,in_port=1,actions=controller(reason=no_match,id=3,max_len=10)",
        );
        b.flow("priority=0,actions=output:CONTROLLER");
        let r = b.xlate(&pkt(1, 1, 2));
        assert_eq!(
            format_dp_actions(&r.actions),
            "userspace(pid=0,controller(reason=0,dont_send=0,continuation=0,recirc_id=0,rule_cookie=0x9,controller_id=3,max_len=10))"
        );
        // A table-miss rule's CONTROLLER output is a table miss (6), sent
        // as no_match from OpenFlow 1.3 on and as action in 1.0.
        let r = b.xlate(&pkt(2, 1, 2));
        assert_eq!(
            format_dp_actions(&r.actions),
            "userspace(pid=0,controller(reason=6,dont_send=0,continuation=0,recirc_id=0,rule_cookie=0,controller_id=0,max_len=65535))"
        );
        let DpAction::Userspace { reason, .. } = r.actions[0] else {
            panic!("{:?}", r.actions);
        };
        assert_eq!((reason.wire_code(1), reason.wire_code(4)), (1, 0));
        assert_eq!(UserspaceReason::Group.wire_code(4), 1);
        assert_eq!(UserspaceReason::Group.wire_code(6), 4);
    }

    #[test]
    fn controller_action_makes_packet_in_and_is_not_cacheable() {
        let mut b = Bridge::new(2);
        b.flow("cookie=0x9,actions=controller(max_len=128)");
        let r = b.xlate(&pkt(1, 1, 2));
        assert!(!r.cacheable);
        assert_eq!(r.packet_ins.len(), 1);
        assert_eq!(r.packet_ins[0].cookie, 9);
        assert!(matches!(
            r.actions[0],
            DpAction::Userspace { max_len: 128, .. }
        ));
    }

    #[test]
    fn flood_and_all_skip_the_input_port_and_flood_honours_no_flood() {
        let mut b = Bridge::new(4);
        b.ports.get_mut(3).unwrap().flood = false;
        b.flow("actions=FLOOD");
        assert_eq!(
            b.xlate(&pkt(1, 1, 2)).actions,
            vec![DpAction::Output(102), DpAction::Output(104)]
        );
        b.flow("actions=ALL");
        assert_eq!(b.xlate(&pkt(1, 1, 2)).actions.len(), 3);
    }

    #[test]
    fn ovn_arp_responder_rewrites_the_arp_fields_it_moved_and_set() {
        // OVN's ARP responder (ls_in_arp_rsp) turns a request into a reply.
        let mut b = Bridge::new(3);
        b.flow(
            "arp,arp_op=1,actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],\
             set_field:00:00:00:00:01:02->eth_src,set_field:2->arp_op,\
             move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],set_field:00:00:00:00:01:02->arp_sha,\
             move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:10.0.0.2->arp_spa,IN_PORT",
        );
        let mut k = pkt(1, 1, 0xff);
        k.dl_type = ethertype::ARP;
        k.nw_proto = 1;
        k.arp_sha = [0, 0, 0, 0, 0, 1];
        let x = b.xlate(&k);
        assert_eq!(
            x.actions,
            vec![
                DpAction::SetEthSrc([0, 0, 0, 0, 1, 2]),
                DpAction::SetEthDst([0, 0, 0, 0, 0, 1]),
                DpAction::SetArpOp(2),
                DpAction::SetArpSpa(0x0a00_0002),
                DpAction::SetArpTpa(0x0a00_0001),
                DpAction::SetArpSha([0, 0, 0, 0, 1, 2]),
                DpAction::SetArpTha([0, 0, 0, 0, 0, 1]),
                DpAction::Output(101),
            ]
        );
    }

    #[test]
    fn dec_ttl_expiry_stops_the_action_list() {
        let mut b = Bridge::new(3);
        b.flow("ip,actions=dec_ttl,output:2");
        let mut k = pkt(1, 1, 2);
        k.nw_ttl = 1;
        assert!(b.xlate(&k).actions.is_empty());
        k.nw_ttl = 5;
        assert_eq!(
            b.xlate(&k).actions,
            vec![DpAction::SetIpTtl(4), DpAction::Output(102)]
        );
    }

    #[test]
    fn groups_all_select_and_fast_failover() {
        let mut b = Bridge::new(3);
        let out = |p| {
            vec![Action::Output {
                port: p,
                max_len: 0,
            }]
        };
        b.groups
            .add(Group {
                id: 1,
                kind: GroupType::All,
                buckets: vec![Bucket::new(out(2)), Bucket::new(out(3))],
                selection: Default::default(),
            })
            .unwrap();
        let mut w2 = Bucket::new(out(2));
        w2.watch_port = 2;
        let mut w3 = Bucket::new(out(3));
        w3.watch_port = 3;
        b.groups
            .add(Group {
                id: 2,
                kind: GroupType::FastFailover,
                buckets: vec![w2, w3],
                selection: Default::default(),
            })
            .unwrap();
        b.flow("in_port=1,actions=group:1");
        assert_eq!(
            b.xlate(&pkt(1, 1, 2)).actions,
            vec![DpAction::Output(102), DpAction::Output(103)]
        );
        b.flow("in_port=1,actions=group:2");
        assert_eq!(b.xlate(&pkt(1, 1, 2)).actions, vec![DpAction::Output(102)]);
        b.ports.get_mut(2).unwrap().up = false;
        assert_eq!(b.xlate(&pkt(1, 1, 2)).actions, vec![DpAction::Output(103)]);
    }

    #[test]
    fn normal_floods_unknown_then_forwards_to_learned_port() {
        let mut b = Bridge::new(3);
        b.flow("actions=NORMAL");
        // A (port 1) -> B unknown: flood to 2 and 3; A learned on port 1.
        let r = b.xlate_learn(&pkt(1, 0xa, 0xb));
        assert_eq!(
            r.actions,
            vec![DpAction::Output(102), DpAction::Output(103)]
        );
        assert_eq!(
            r.learned,
            vec![MacLearnRequest {
                vlan: 0,
                mac: [0, 0, 0, 0, 0, 0xa],
                port: 1
            }]
        );
        // B (port 2) -> A: known, unicast to port 1 only.
        let r = b.xlate_learn(&pkt(2, 0xb, 0xa));
        assert_eq!(r.actions, vec![DpAction::Output(101)]);
        // A -> B now known on port 2.
        let r = b.xlate_learn(&pkt(1, 0xa, 0xb));
        assert_eq!(r.actions, vec![DpAction::Output(102)]);
        assert_eq!(r.wc.dl_dst, [0xff; 6]);
        assert_eq!(r.wc.dl_src, [0xff; 6]);
    }

    #[test]
    fn normal_does_not_learn_multicast_sources_and_floods_broadcast() {
        let mut b = Bridge::new(3);
        b.flow("actions=NORMAL");
        let mut k = pkt(1, 0xa, 0);
        k.dl_src = [1, 0, 0x5e, 0, 0, 1];
        k.dl_dst = BCAST;
        let r = b.xlate_learn(&k);
        assert!(r.learned.is_empty());
        assert_eq!(r.actions.len(), 2);
    }

    #[test]
    fn normal_access_ports_isolate_vlans_and_trunks_carry_tags() {
        let mut b = Bridge::new(4);
        b.flow("actions=NORMAL");
        b.set_vlan(1, VlanMode::Access { tag: 10 });
        b.set_vlan(2, VlanMode::Access { tag: 10 });
        b.set_vlan(3, VlanMode::Access { tag: 20 });
        b.set_vlan(
            4,
            VlanMode::Trunk {
                trunks: vec![10, 20],
            },
        );
        // Untagged broadcast from port 1 (VLAN 10): port 2 untagged, trunk 4 tagged 10,
        // never port 3 (VLAN 20).
        let mut k = pkt(1, 0xa, 0);
        k.dl_dst = BCAST;
        let r = b.xlate_learn(&k);
        assert_eq!(
            r.actions,
            vec![
                DpAction::Output(102),
                DpAction::PushVlan {
                    tpid: 0x8100,
                    tci: 10
                },
                DpAction::Output(104),
            ]
        );
        // Tagged VLAN 20 frame from the trunk: only port 3, untagged.
        let mut k = pkt(4, 0xc, 0);
        k.dl_dst = BCAST;
        k.vlan_tci = VLAN_CFI | 20;
        let r = b.xlate_learn(&k);
        assert_eq!(r.actions, vec![DpAction::PopVlan, DpAction::Output(103)]);
        // Tagged frame on an access port is dropped.
        let mut k = pkt(1, 0xa, 0xc);
        k.vlan_tci = VLAN_CFI | 20;
        assert!(b.xlate(&k).actions.is_empty());
        // Trunk frame for a VLAN not in its trunks is dropped.
        let mut k = pkt(4, 0xc, 0xa);
        k.vlan_tci = VLAN_CFI | 30;
        assert!(b.xlate(&k).actions.is_empty());
        // Unicast to a MAC learned in another VLAN is not delivered across VLANs.
        let k = pkt(3, 0xd, 0xa); // 0xa was learned in VLAN 10 on port 1
        let r = b.xlate(&k);
        assert!(!r.actions.contains(&DpAction::Output(101)));
    }

    #[test]
    fn normal_native_untagged_trunk_untags_its_native_vlan() {
        let mut b = Bridge::new(2);
        b.flow("actions=NORMAL");
        b.set_vlan(
            1,
            VlanMode::NativeUntagged {
                tag: 5,
                trunks: vec![5, 6],
            },
        );
        b.set_vlan(2, VlanMode::Trunk { trunks: vec![] });
        let mut k = pkt(1, 0xa, 0);
        k.dl_dst = BCAST;
        let r = b.xlate(&k);
        assert_eq!(
            r.actions,
            vec![
                DpAction::PushVlan {
                    tpid: 0x8100,
                    tci: 5
                },
                DpAction::Output(102)
            ]
        );
        let mut k = pkt(2, 0xb, 0);
        k.dl_dst = BCAST;
        k.vlan_tci = VLAN_CFI | 5;
        assert_eq!(
            b.xlate(&k).actions,
            vec![DpAction::PopVlan, DpAction::Output(101)]
        );
    }

    #[test]
    fn packet_out_output_table_runs_the_pipeline() {
        let mut b = Bridge::new(2);
        b.flow("actions=output:2");
        let ctx = XlateCtx {
            pipeline: &b.pipeline,
            groups: &b.groups,
            ports: &b.ports,
            mac: &b.mac,
            now_ms: 0,
            dp: None,
            patch: None,
        };
        let r = translate_actions(
            &ctx,
            &pkt(1, 1, 2),
            &[Action::Output {
                port: port::TABLE,
                max_len: 0,
            }],
        );
        assert_eq!(r.actions, vec![DpAction::Output(102)]);
    }

    #[test]
    fn trace_mentions_rule_and_datapath_actions() {
        let mut b = Bridge::new(2);
        b.flow("priority=10,ip,actions=output:2");
        let k = pkt(1, 1, 2);
        let r = b.xlate(&k);
        let t = format_trace("br0", &k, &r);
        assert!(t.contains(" 0. ip, priority 10, cookie 0x0"), "{t}");
        assert!(t.starts_with("Flow: tcp,in_port=1,vlan_tci=0x0000,"), "{t}");
        assert!(t.contains("Datapath actions: 102"), "{t}");
    }

    #[test]
    fn normal_never_forwards_link_local_multicast() {
        let mut b = Bridge::new(3);
        b.flow("actions=NORMAL");
        let mut k = pkt(1, 0xa, 0);
        k.dl_dst = [0x01, 0x80, 0xc2, 0, 0, 0x0e]; // LLDP
        assert!(b.xlate(&k).actions.is_empty());
        k.dl_dst = [0x01, 0x80, 0xc2, 0, 0, 0x10]; // not reserved
        assert_eq!(b.xlate(&k).actions.len(), 2);
    }

    #[test]
    fn trace_frame_parses_and_translates_a_raw_frame() {
        let mut b = Bridge::new(2);
        b.flow("arp,actions=output:2");
        let mut frame = vec![0xffu8; 6];
        frame.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0x08, 0x06]);
        frame.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        frame.extend_from_slice(&[0, 0, 0, 0, 0, 1, 10, 0, 0, 1]);
        frame.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        let ctx = XlateCtx {
            pipeline: &b.pipeline,
            groups: &b.groups,
            ports: &b.ports,
            mac: &b.mac,
            now_ms: 0,
            dp: None,
            patch: None,
        };
        let (key, r) = trace_frame(&ctx, &frame, 1).unwrap();
        assert_eq!(key.dl_type, 0x0806);
        assert_eq!(r.actions, vec![DpAction::Output(102)]);
        assert!(trace_frame(&ctx, &frame[..10], 1).is_err());
    }
}

#[cfg(test)]
mod patch_tests {
    use super::*;
    use crate::table::{FlowMod, FlowModCommand};
    use crate::text::parse_flow_mod;

    struct Br {
        pipeline: Pipeline,
        groups: GroupTable,
        ports: BridgePorts,
        mac: MacLearning,
    }

    impl Br {
        /// Port 1 is a device (datapath port `dp1`), port 2 a patch port
        /// to port `peer_port` of bridge `peer`.
        fn new(dp1: DpPortNo, peer: u32, peer_port: PortNo) -> Br {
            let mut ports = BridgePorts::new();
            ports.insert(BridgePort::new(1, dp1));
            let mut p = BridgePort::new(2, 9000 + dp1);
            p.patch = Some(PatchPeer {
                bridge: peer,
                port: peer_port,
            });
            ports.insert(p);
            Br {
                pipeline: Pipeline::new(),
                groups: GroupTable::new(),
                ports,
                mac: MacLearning::default(),
            }
        }

        fn flow(&mut self, s: &str) {
            let fm: FlowMod = parse_flow_mod(s, FlowModCommand::Add).unwrap();
            self.pipeline.flow_mod(&fm, 0).unwrap();
        }

        fn as_patch<'a>(&'a self, id: u32, name: &'a str) -> PatchBridge<'a> {
            PatchBridge {
                id,
                name,
                pipeline: &self.pipeline,
                groups: &self.groups,
                ports: &self.ports,
                mac: &self.mac,
            }
        }
    }

    fn xlate(a: &Br, b: &Br, key: &FlowKey) -> XlateResult {
        let set = PatchSet {
            root: 1,
            bridges: vec![a.as_patch(1, "pa"), b.as_patch(2, "pb")],
        };
        let ctx = XlateCtx {
            pipeline: &a.pipeline,
            groups: &a.groups,
            ports: &a.ports,
            mac: &a.mac,
            now_ms: 1000,
            dp: None,
            patch: Some(&set),
        };
        translate(&ctx, key)
    }

    fn pkt() -> FlowKey {
        FlowKey {
            in_port: 1,
            dl_src: [0, 0, 0, 0, 0, 1],
            dl_dst: [0, 0, 0, 0, 0, 2],
            dl_type: 0x1234,
            ..FlowKey::default()
        }
    }

    #[test]
    fn output_to_a_patch_port_continues_in_the_peer_bridge_in_one_megaflow() {
        let mut a = Br::new(11, 2, 2);
        let mut b = Br::new(21, 1, 2);
        a.flow("in_port=1,actions=load:7->NXM_NX_REG0[],mod_dl_src:00:00:00:00:00:99,output:2,output:1");
        a.flow("in_port=2,actions=output:1");
        b.flow("in_port=2,reg0=0,actions=resubmit(,1)");
        b.flow("table=1,dl_src=00:00:00:00:00:99,actions=output:1");
        let r = xlate(&a, &b, &pkt());
        assert_eq!(r.error, None);
        // The peer saw the rewritten source and cleared registers; the
        // rewrite is committed once, and output:1 in bridge a is skipped
        // (it is the input port).
        assert_eq!(
            r.actions,
            vec![
                DpAction::SetEthSrc([0, 0, 0, 0, 0, 0x99]),
                DpAction::Output(21)
            ]
        );
        assert_eq!(
            r.patch_crossings,
            vec![PatchCrossing {
                from: (1, 2),
                to: (2, 2)
            }]
        );
        // The root's rules and the peer's are credited to their bridges.
        assert_eq!(r.rules_hit.len(), 1);
        assert_eq!(r.patch_effects.len(), 1);
        assert_eq!(r.patch_effects[0].bridge, 2);
        assert_eq!(r.patch_effects[0].rules_hit.len(), 2);
        // The megaflow depends on the original source MAC (the peer's match
        // on it is a match on the field a rewrite set: exact).
        assert_eq!(r.wc.in_port, u32::MAX);
        let t = format_trace("pa", &pkt(), &r);
        assert!(
            t.contains("\nbridge(\"pb\")\n------------\n 0. reg0=0,in_port=2"),
            "{t}"
        );
    }

    #[test]
    fn a_patch_loop_ends_at_the_depth_limit_and_drops() {
        let mut a = Br::new(11, 2, 2);
        let mut b = Br::new(21, 1, 2);
        a.flow("actions=output:2");
        a.flow("priority=40000,in_port=2,actions=in_port");
        b.flow("actions=in_port");
        let r = xlate(&a, &b, &pkt());
        assert_eq!(
            r.error,
            Some(XlateError::TooDeep),
            "{}",
            format_trace("pa", &pkt(), &r)
        );
        assert!(r.actions.is_empty());
    }

    #[test]
    fn a_peer_without_a_patch_set_drops_and_the_bridge_goes_on() {
        let mut a = Br::new(11, 2, 2);
        a.flow("actions=output:2,output:1,in_port");
        let ctx = XlateCtx {
            pipeline: &a.pipeline,
            groups: &a.groups,
            ports: &a.ports,
            mac: &a.mac,
            now_ms: 1000,
            dp: None,
            patch: None,
        };
        let r = translate(&ctx, &pkt());
        assert_eq!(r.actions, vec![DpAction::Output(11)]);
        assert!(r.patch_crossings.is_empty());
    }

    #[test]
    fn normal_in_the_peer_learns_on_the_peer_bridge() {
        let mut a = Br::new(11, 2, 2);
        let b = {
            let mut b = Br::new(21, 1, 2);
            b.flow("actions=NORMAL");
            b
        };
        a.flow("in_port=1,actions=output:2");
        let r = xlate(&a, &b, &pkt());
        assert!(r.learned.is_empty());
        assert_eq!(r.patch_effects[0].learned.len(), 1);
        assert_eq!(r.patch_effects[0].learned[0].port, 2);
        // Flooded in b: out of its device port, not back through the patch.
        assert_eq!(r.actions, vec![DpAction::Output(21)]);
    }
}
