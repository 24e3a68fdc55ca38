//! Connection tracking in the datapath: the one tracker every PMD shares,
//! and the table of `ct` action arguments that `DpAction::Ct(id)` refers
//! to (datapath actions are `Copy`, so the arguments live here, interned by
//! the slow path through `flows::xlate::DpResources::ct_action`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use conntrack::{
    Conntrack, CtArgs, CtConfig, CtPacket, CtResult, FragVerdict, Ipf, NatAction, NatRange,
    PortSelect,
};
use flows::FlowKey;
use flows::action::{Action, Ct};
use flows::field::Field;
use flows::key::FRAG_ANY;
use flows::nxaction::{
    CT_COMMIT, CT_FORCE, NAT_DST, NAT_PERSISTENT, NAT_PROTO_RANDOM, NAT_SRC, Nat,
    NatRange as NxNatRange,
};
use flows::parse::{L3Kind, Layout, extract, extract_with_layout};
use rustc_hash::FxHashMap;

use crate::packet::{Offload, Packet};

/// How many distinct `ct` actions the datapath can hold.
pub const MAX_CT_ACTIONS: usize = 4096;

/// The datapath's connection tracker and its `ct` action table.
pub struct DpConntrack {
    ct: Conntrack,
    /// The clock the tracker runs on (milliseconds since this instant).
    epoch: Instant,
    /// Arguments by `DpAction::Ct` id; written once, read lock-free.
    args: Box<[OnceLock<CtArgs>]>,
    /// Interning of the slow path's `ct` actions (slow path only).
    index: Mutex<FxHashMap<(Ct, u16), u32>>,
    /// IP fragment reassembly before tracking.
    ipf: Ipf,
}

/// What became of a packet a `ct` action ran on.
#[derive(Debug)]
pub enum CtOutcome {
    /// Tracked; its result is in the metadata. The action list goes on.
    Done,
    /// A fragment held until its datagram is complete: the packet stops here.
    Held,
    /// A fragment that completed its datagram: the datagram was tracked
    /// (its result is in the metadata), and these frames, the datagram's
    /// fragments, continue with the rest of the action list in place of
    /// the packet.
    Fragments(Vec<Vec<u8>>),
}

impl Default for DpConntrack {
    fn default() -> Self {
        DpConntrack::new(CtConfig::default())
    }
}

impl DpConntrack {
    pub fn new(cfg: CtConfig) -> DpConntrack {
        DpConntrack {
            ct: Conntrack::new(cfg),
            epoch: Instant::now(),
            args: (0..MAX_CT_ACTIONS).map(|_| OnceLock::new()).collect(),
            index: Mutex::new(FxHashMap::default()),
            ipf: Ipf::new(),
        }
    }

    /// The tracker (dump, flush, limits, statistics).
    pub fn tracker(&self) -> &Conntrack {
        &self.ct
    }

    /// The tracker's clock at `t`, in milliseconds.
    #[inline]
    pub fn now_ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// The id of `ct` (its zone resolved to `zone`), registering it on
    /// first use.
    pub fn intern(&self, ct: &Ct, zone: u16) -> Result<u32, String> {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = index.get(&(ct.clone(), zone)) {
            return Ok(*id);
        }
        let args = ct_args(ct, zone)?;
        let id = index.len();
        if id >= MAX_CT_ACTIONS {
            return Err(format!("more than {MAX_CT_ACTIONS} distinct ct actions"));
        }
        let _ = self.args[id].set(args);
        index.insert((ct.clone(), zone), id as u32);
        Ok(id as u32)
    }

    /// The arguments registered as `id`.
    pub fn args(&self, id: u32) -> Option<&CtArgs> {
        self.args.get(id as usize)?.get()
    }

    /// Action `id` as OVS prints the datapath `ct` action
    /// (`ct(commit,zone=5,mark=0x3/0xffffffff,nat(src=10.0.0.100))`, or `ct`).
    pub fn format_action(&self, id: u32) -> String {
        match self.args(id) {
            Some(a) => format_ct_args(a),
            None => format!("ct(id={id})"),
        }
    }

    /// Action `id` for a flow of IP protocol `nw_proto`, as OVS prints it:
    /// a commit in a zone with a timeout policy that covers the protocol
    /// also shows `timeout=ID` (the policy the tracker applies).
    pub fn format_action_for(&self, id: u32, nw_proto: u8) -> String {
        match self.args(id) {
            Some(a) => {
                let tp = self.ct.zone_timeout_policy(a.zone);
                let show = a.commit && tp != 0 && conntrack::timeout_policy_covers(nw_proto);
                format_ct_args_timeout(a, show.then_some(tp))
            }
            None => format!("ct(id={id})"),
        }
    }

    /// Tracks `pkt` with the arguments of action `id` and stores the result
    /// in `meta`'s `ct_*` fields (NAT rewrites the frame). An IP fragment
    /// goes through reassembly first (see [`CtOutcome`]). `parsed` is the
    /// frame's layout when `meta`'s header fields are the frame's parse
    /// (no action changed the frame since): the frame is then not parsed
    /// again.
    #[inline]
    pub fn execute(
        &self,
        id: u32,
        pkt: &mut Packet,
        meta: &mut FlowKey,
        parsed: Option<&Layout>,
        now_ms: u64,
    ) -> CtOutcome {
        let Some(args) = self.args(id) else {
            meta.clear_ct();
            return CtOutcome::Done;
        };
        match parsed {
            Some(layout) => {
                debug_assert!(
                    crate::dpif::is_parse_of(pkt.data(), meta, layout),
                    "the pass's key differs from its frame's parse: {meta:?}"
                );
                self.track(args, pkt, meta, None, layout, now_ms)
            }
            None => {
                // Parsed in place: `extract`'s returned key (hundreds of
                // bytes) would be copied twice on the way here.
                let (mut key, mut layout) = (FlowKey::default(), Layout::default());
                if extract_with_layout(pkt.data(), meta.in_port, &mut key, &mut layout).is_err() {
                    meta.clear_ct();
                    return CtOutcome::Done;
                }
                self.track(args, pkt, meta, Some(&key), &layout, now_ms)
            }
        }
    }

    /// Whether action `id` may change the frame (NAT, and the FTP helper's
    /// rewriting under NAT): the tracker changes frames only for a `ct`
    /// action with `nat`.
    #[inline]
    pub fn rewrites(&self, id: u32) -> bool {
        self.args(id).is_some_and(|a| a.nat.is_some())
    }

    /// [`DpConntrack::execute`] once parsed: `key` is the frame's parse,
    /// or `None` when `meta`'s header fields are.
    #[inline(always)]
    fn track(
        &self,
        args: &CtArgs,
        pkt: &mut Packet,
        meta: &mut FlowKey,
        key: Option<&FlowKey>,
        layout: &Layout,
        now_ms: u64,
    ) -> CtOutcome {
        let key = key.unwrap_or(meta);
        if key.nw_frag & FRAG_ANY != 0 {
            let key = *key;
            return self.execute_fragment(args, pkt, meta, &key, layout, now_ms);
        }
        let partial = pkt.offload.flags & Offload::F_NEEDS_CSUM != 0;
        let len = pkt.len();
        let mut cp = CtPacket {
            buf: pkt.data_and_tailroom_mut(),
            len,
            key,
            layout,
            partial_l4_csum: partial,
        };
        let r = self.ct.execute(&mut cp, args, now_ms);
        // Only the FTP helper under NAT changes the length.
        let new_len = cp.len;
        if new_len != len {
            pkt.set_len(new_len);
        }
        store_result(meta, &r);
        CtOutcome::Done
    }

    /// The fragment path: hold the fragment, or, when it completes its
    /// datagram, track the datagram and hand back the fragments (with the
    /// datagram's NAT applied) to continue with its result in `meta`.
    #[cold]
    fn execute_fragment(
        &self,
        args: &CtArgs,
        pkt: &mut Packet,
        meta: &mut FlowKey,
        key: &FlowKey,
        layout: &Layout,
        now_ms: u64,
    ) -> CtOutcome {
        let (Some(l3), v6) = (layout.l3_ofs, layout.l3 == L3Kind::Ipv6) else {
            return CtOutcome::Done;
        };
        match self.ipf.handle(
            pkt.data(),
            usize::from(l3),
            v6,
            args.zone,
            meta.recirc_id,
            now_ms,
        ) {
            FragVerdict::Held => CtOutcome::Held,
            FragVerdict::NotFragment | FragVerdict::Refused => {
                // The tracker cannot follow a fragment: `+inv`.
                let len = pkt.len();
                let mut cp = CtPacket {
                    buf: pkt.data_mut(),
                    len,
                    key,
                    layout,
                    partial_l4_csum: false,
                };
                let r = self.ct.execute(&mut cp, args, now_ms);
                store_result(meta, &r);
                CtOutcome::Done
            }
            FragVerdict::Complete(mut whole) => {
                let r = match extract(&whole.packet, meta.in_port) {
                    Ok((k, lay)) => {
                        let len = whole.packet.len();
                        let mut cp = CtPacket {
                            buf: &mut whole.packet,
                            len,
                            key: &k,
                            layout: &lay,
                            partial_l4_csum: false,
                        };
                        self.ct.execute(&mut cp, args, now_ms)
                    }
                    Err(_) => conntrack::CtResult {
                        state: conntrack::CtState::TRK | conntrack::CtState::INV,
                        zone: args.zone,
                        ..conntrack::CtResult::default()
                    },
                };
                store_result(meta, &r);
                if args.nat.is_some() {
                    whole.copy_nat_to_frags();
                }
                CtOutcome::Fragments(whole.frags)
            }
        }
    }

    /// The fragment reassembler (`dpctl/ipf-*`).
    pub fn ipf(&self) -> &Ipf {
        &self.ipf
    }

    /// Expires the idle connections of one shard: the next, after
    /// `*cursor`, of the shards `part` of `parts` owns (every `parts`-th
    /// from `part`); advances the cursor. Returns how many expired.
    pub fn sweep_next(&self, part: usize, parts: usize, cursor: &mut usize, now_ms: u64) -> usize {
        let parts = parts.max(1);
        let owned = self.ct.n_shards().saturating_sub(part).div_ceil(parts);
        if owned == 0 {
            return 0;
        }
        let k = *cursor % owned;
        *cursor = (k + 1) % owned;
        self.ct.sweep_shard(part + k * parts, now_ms)
    }

    /// Drops the IP fragments that waited too long for the rest of their
    /// datagram; returns how many.
    pub fn expire_fragments(&self, now_ms: u64) -> usize {
        self.ipf.expire(now_ms)
    }
}

/// Stores a tracking result in a packet's metadata.
pub fn store_result(meta: &mut FlowKey, r: &CtResult) {
    meta.ct_state = u32::from(r.state.0);
    meta.ct_zone = r.zone;
    meta.ct_mark = r.mark;
    meta.ct_label = r.label.to_be_bytes();
    meta.clear_ct_orig();
    if let Some(t) = &r.orig {
        meta.ct_nw_proto = t.proto;
        if t.ipv6 {
            meta.ct_ipv6_src = t.src;
            meta.ct_ipv6_dst = t.dst;
        } else {
            meta.ct_nw_src = t.nw_src();
            meta.ct_nw_dst = t.nw_dst();
        }
        meta.ct_tp_src = t.ct_tp_src();
        meta.ct_tp_dst = t.ct_tp_dst();
    }
}

fn format_nat_addr(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v) => v.to_string(),
        IpAddr::V6(v) => format!("[{v}]"),
    }
}

/// OVS's text of a datapath `ct` action with these arguments.
pub fn format_ct_args(a: &CtArgs) -> String {
    format_ct_args_timeout(a, None)
}

/// [`format_ct_args`] with the timeout policy the action names, if any.
pub fn format_ct_args_timeout(a: &CtArgs, timeout: Option<u8>) -> String {
    let mut parts = Vec::new();
    if a.commit {
        parts.push("commit".to_string());
    }
    if a.force {
        parts.push("force_commit".to_string());
    }
    if a.zone != 0 {
        parts.push(format!("zone={}", a.zone));
    }
    if let Some((v, m)) = a.set_mark {
        // OVS prints with C's `%#x`, which writes zero as plain `0`.
        let c_hex = |x: u32| {
            if x == 0 {
                "0".to_string()
            } else {
                format!("{x:#x}")
            }
        };
        parts.push(format!("mark={}/{}", c_hex(v), c_hex(m)));
    }
    if let Some((v, m)) = a.set_label {
        parts.push(format!("label={v:#x}/{m:#x}"));
    }
    if let Some(h) = a.alg {
        parts.push(format!("helper={}", h.name()));
    }
    if let Some(t) = timeout {
        parts.push(format!("timeout={t}"));
    }
    match &a.nat {
        None => {}
        Some(NatAction::Existing) => parts.push("nat".to_string()),
        Some(NatAction::Src(r) | NatAction::Dst(r)) => {
            let dir = if matches!(a.nat, Some(NatAction::Src(_))) {
                "src"
            } else {
                "dst"
            };
            let mut t = format!("nat({dir}={}", format_nat_addr(r.addr_min));
            if r.addr_max != r.addr_min {
                t.push('-');
                t.push_str(&format_nat_addr(r.addr_max));
            }
            if r.port_min != 0 {
                t.push_str(&format!(":{}", r.port_min));
                if r.port_max != r.port_min {
                    t.push_str(&format!("-{}", r.port_max));
                }
            }
            if r.persistent {
                t.push_str(",persistent");
            }
            if r.select == PortSelect::Random {
                t.push_str(",random");
            }
            t.push(')');
            parts.push(t);
        }
    }
    if parts.is_empty() {
        "ct".to_string()
    } else {
        format!("ct({})", parts.join(","))
    }
}

/// The tracker's arguments for an OpenFlow `ct` action.
pub fn ct_args(ct: &Ct, zone: u16) -> Result<CtArgs, String> {
    let mut args = CtArgs {
        zone,
        commit: ct.flags & CT_COMMIT != 0,
        force: ct.flags & CT_FORCE != 0,
        // `alg=` names the helper by its port; OVS serializes only FTP and
        // TFTP (another value is reported and left out).
        alg: conntrack::Alg::from_port(ct.alg),
        ..CtArgs::default()
    };
    for a in &ct.actions {
        match a {
            Action::Nat(n) => args.nat = Some(nat_action(n)?),
            Action::SetField {
                field: Field::CtMark,
                value,
                mask,
            } => args.set_mark = Some((*value as u32, mask.map_or(u32::MAX, |m| m as u32))),
            Action::SetField {
                field: Field::CtLabel,
                value,
                mask,
            } => args.set_label = Some((*value, mask.unwrap_or(u128::MAX))),
            Action::Load { dst, value } if matches!(dst.field, Field::CtMark | Field::CtLabel) => {
                let bits = if dst.n_bits >= 128 {
                    u128::MAX
                } else {
                    (1u128 << dst.n_bits) - 1
                };
                let (v, m) = ((value & bits) << dst.ofs, bits << dst.ofs);
                if dst.field == Field::CtMark {
                    let (ov, om) = args.set_mark.unwrap_or((0, 0));
                    args.set_mark = Some(((ov & !(m as u32)) | v as u32, om | m as u32));
                } else {
                    let (ov, om) = args.set_label.unwrap_or((0, 0));
                    args.set_label = Some(((ov & !m) | v, om | m));
                }
            }
            other => {
                return Err(format!(
                    "ct exec action {} is not supported",
                    flows::text::format_actions(std::slice::from_ref(other))
                ));
            }
        }
    }
    Ok(args)
}

fn nat_action(n: &Nat) -> Result<NatAction, String> {
    if n.flags & (NAT_SRC | NAT_DST) == 0 {
        return Ok(NatAction::Existing);
    }
    let Some(range) = n.range else {
        return Err("nat(src|dst) without an address range".into());
    };
    let (addr_min, addr_max) = match range {
        NxNatRange::V4 { min, max } => (
            IpAddr::V4(Ipv4Addr::from(min)),
            IpAddr::V4(Ipv4Addr::from(max.unwrap_or(min))),
        ),
        NxNatRange::V6 { min, max } => (
            IpAddr::V6(Ipv6Addr::from(min)),
            IpAddr::V6(Ipv6Addr::from(max.unwrap_or(min))),
        ),
    };
    let port_min = n.proto_min.unwrap_or(0);
    let r = NatRange {
        addr_min,
        addr_max,
        port_min,
        port_max: n.proto_max.unwrap_or(port_min),
        select: if n.flags & NAT_PROTO_RANDOM != 0 {
            PortSelect::Random
        } else {
            PortSelect::Hash
        },
        persistent: n.flags & NAT_PERSISTENT != 0,
    };
    Ok(if n.flags & NAT_SRC != 0 {
        NatAction::Src(r)
    } else {
        NatAction::Dst(r)
    })
}

/// The `ct` action of ovs-ofctl text `text` (for tests).
#[cfg(test)]
pub(crate) fn ct_of(text: &str) -> Ct {
    match flows::text::parse_actions(text).unwrap().into_iter().next() {
        Some(flows::Action::Ct(ct)) => *ct,
        other => panic!("not a ct action: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_arguments_carry_commit_zone_nat_mark_and_label() {
        let ct = ct_of(
            "ct(commit,zone=3,nat(src=10.0.0.1-10.0.0.2:1000-2000,random),exec(set_field:0x5/0xff->ct_mark,set_field:0x1->ct_label))",
        );
        let a = ct_args(&ct, 3).unwrap();
        assert!(a.commit && !a.force);
        assert_eq!(a.zone, 3);
        assert_eq!(a.set_mark, Some((5, 0xff)));
        assert_eq!(a.set_label, Some((1, u128::MAX)));
        let Some(NatAction::Src(r)) = a.nat else {
            panic!("{:?}", a.nat)
        };
        assert_eq!(r.addr_min, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(r.addr_max, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!((r.port_min, r.port_max), (1000, 2000));
        assert_eq!(r.select, PortSelect::Random);
        assert_eq!(
            ct_args(&ct_of("ct(nat)"), 0).unwrap().nat,
            Some(NatAction::Existing)
        );
        let loaded = ct_args(&ct_of("ct(commit,exec(load:0x3->NXM_NX_CT_MARK[4..7]))"), 0).unwrap();
        assert_eq!(loaded.set_mark, Some((0x30, 0xf0)));
    }

    #[test]
    fn datapath_ct_actions_print_as_ovs_prints_them() {
        let f = |t: &str, zone: u16| format_ct_args(&ct_args(&ct_of(t), zone).unwrap());
        assert_eq!(f("ct(table=1)", 0), "ct");
        // Stock OVS 3.1: `ct(commit,zone=5,alg=ftp,exec(set_field:1->ct_mark))`
        // gives `ct(commit,zone=5,mark=0x1/0xffffffff,helper=ftp)`.
        assert_eq!(
            f("ct(commit,zone=5,alg=ftp,exec(set_field:1->ct_mark))", 5),
            "ct(commit,zone=5,mark=0x1/0xffffffff,helper=ftp)"
        );
        assert_eq!(f("ct(alg=tftp)", 0), "ct(helper=tftp)");
        assert_eq!(f("ct(table=1,zone=5)", 5), "ct(zone=5)");
        assert_eq!(
            f(
                "ct(commit,zone=5,exec(set_field:0x3->ct_mark),nat(src=10.0.0.100))",
                5
            ),
            "ct(commit,zone=5,mark=0x3/0xffffffff,nat(src=10.0.0.100))"
        );
        assert_eq!(
            f("ct(commit,nat(dst=10.0.0.1-10.0.0.2:80-81,random))", 0),
            "ct(commit,nat(dst=10.0.0.1-10.0.0.2:80-81,random))"
        );
        assert_eq!(f("ct(nat)", 0), "ct(nat)");
    }

    #[test]
    fn the_same_tuple_in_two_zones_is_two_connections() {
        let d = DpConntrack::default();
        let z1 = d.intern(&ct_of("ct(commit,zone=1)"), 1).unwrap();
        let z2 = d.intern(&ct_of("ct(commit,zone=2)"), 2).unwrap();
        let frame = crate::offload::testframes::tcp4(&[], 1, 0x02, 1);
        let (k, _) = extract(&frame, 1).unwrap();
        for (id, zone) in [(z1, 1), (z2, 2)] {
            let mut pkt = Packet::from_bytes(&frame);
            let mut meta = k;
            d.execute(id, &mut pkt, &mut meta, None, 0);
            assert_eq!((meta.ct_state, meta.ct_zone), (0x21, zone), "+trk+new");
        }
        assert_eq!(d.tracker().nconns(), 2);
        assert_eq!(d.tracker().dump(Some(1)).len(), 1);
        assert_eq!(d.tracker().dump(Some(2)).len(), 1);
    }

    #[test]
    fn sweeping_one_shard_a_call_expires_each_parts_connections_in_one_pass() {
        let d = DpConntrack::default();
        let id = d.intern(&ct_of("ct(commit)"), 0).unwrap();
        let syn = crate::offload::testframes::tcp4(&[], 1, 0x02, 1);
        let (k, _) = extract(&syn, 1).unwrap();
        let n = 3_000u16;
        for sport in 0..n {
            let mut frame = syn.clone();
            frame[34..36].copy_from_slice(&(10_000 + sport).to_be_bytes());
            let mut pkt = Packet::from_bytes(&frame);
            let mut meta = k;
            d.execute(id, &mut pkt, &mut meta, None, 0);
        }
        assert_eq!(d.tracker().nconns(), u32::from(n));
        // Nothing has expired yet: a whole pass of both parts removes none.
        let shards = d.tracker().n_shards();
        let (mut c0, mut c1) = (0, 0);
        for _ in 0..shards {
            assert_eq!(d.sweep_next(0, 2, &mut c0, 1_000), 0);
        }
        // An hour later, part 0's pass takes the connections of its
        // shards only (about half), each call one shard; part 1's the rest.
        let later = 3_600_000;
        let first: usize = (0..shards / 2)
            .map(|_| d.sweep_next(0, 2, &mut c0, later))
            .sum();
        assert!(
            first > 0 && first < usize::from(n),
            "part 0 expired {first}"
        );
        assert_eq!(d.tracker().nconns() as usize, usize::from(n) - first);
        // A second pass of part 0 finds nothing left in its shards.
        let again: usize = (0..shards / 2)
            .map(|_| d.sweep_next(0, 2, &mut c0, later))
            .sum();
        assert_eq!(again, 0);
        let second: usize = (0..shards / 2)
            .map(|_| d.sweep_next(1, 2, &mut c1, later))
            .sum();
        assert_eq!(first + second, usize::from(n));
        assert_eq!(d.tracker().nconns(), 0);
    }

    #[test]
    fn interning_gives_equal_actions_one_id_and_zones_apart_two() {
        let d = DpConntrack::default();
        let a = ct_of("ct(commit)");
        let id0 = d.intern(&a, 0).unwrap();
        assert_eq!(d.intern(&a, 0).unwrap(), id0);
        let id1 = d.intern(&a, 1).unwrap();
        assert_ne!(id0, id1);
        assert_eq!(d.args(id1).unwrap().zone, 1);
        assert!(d.args(id1 + 1).is_none());
    }

    #[test]
    fn tracking_a_tcp_syn_fills_the_ct_metadata_with_the_original_tuple() {
        let d = DpConntrack::default();
        let id = d.intern(&ct_of("ct(commit,zone=9)"), 9).unwrap();
        let frame = crate::offload::testframes::tcp4(&[], 1, 0x02, 1);
        let mut pkt = Packet::from_bytes(&frame);
        let (k, _) = extract(&frame, 1).unwrap();
        let mut meta = k;
        d.execute(id, &mut pkt, &mut meta, None, 0);
        assert_eq!(meta.ct_state, 0x21, "+trk+new");
        assert_eq!(meta.ct_zone, 9);
        assert_eq!(meta.ct_nw_proto, 6);
        assert_eq!((meta.ct_nw_src, meta.ct_nw_dst), (k.nw_src, k.nw_dst));
        assert_eq!((meta.ct_tp_src, meta.ct_tp_dst), (k.tp_src, k.tp_dst));
        assert_eq!(d.tracker().nconns(), 1);
        meta.clear_ct();
        assert_eq!(
            meta.ct_state | meta.ct_nw_src | u32::from(meta.ct_tp_dst),
            0
        );
    }

    /// `f` (Ethernet + IPv4 without options) cut into fragments of `chunk`
    /// data bytes, header checksums recomputed.
    fn fragments(f: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        use crate::offload::testframes::naive_csum;
        let data = &f[34..];
        let mut out = Vec::new();
        let mut off = 0;
        while off < data.len() {
            let end = (off + chunk).min(data.len());
            let mut g = f[..34].to_vec();
            g.extend_from_slice(&data[off..end]);
            g[16..18].copy_from_slice(&((20 + end - off) as u16).to_be_bytes());
            let fo = (off / 8) as u16 | if end < data.len() { 0x2000 } else { 0 };
            g[20..22].copy_from_slice(&fo.to_be_bytes());
            g[24..26].copy_from_slice(&[0, 0]);
            let c = naive_csum(&[&g[14..34]]);
            g[24..26].copy_from_slice(&c.to_be_bytes());
            out.push(g);
            off = end;
        }
        out
    }

    /// The datagram the fragments `frags` (in order) make.
    fn glue(frags: &[Vec<u8>]) -> Vec<u8> {
        use crate::offload::testframes::naive_csum;
        let mut g = frags[0][..34].to_vec();
        for f in frags {
            g.extend_from_slice(&f[34..]);
        }
        let tot = (g.len() - 14) as u16;
        g[16..18].copy_from_slice(&tot.to_be_bytes());
        g[20..22].copy_from_slice(&[0, 0]);
        g[24..26].copy_from_slice(&[0, 0]);
        let c = naive_csum(&[&g[14..34]]);
        g[24..26].copy_from_slice(&c.to_be_bytes());
        g
    }

    fn run_frags(d: &DpConntrack, id: u32, frags: &[Vec<u8>]) -> (Vec<CtOutcome>, FlowKey) {
        let mut last = FlowKey::default();
        let out = frags
            .iter()
            .map(|f| {
                let mut pkt = Packet::from_bytes(f);
                let (k, _) = extract(f, 1).unwrap();
                last = k;
                d.execute(id, &mut pkt, &mut last, None, 0)
            })
            .collect();
        (out, last)
    }

    #[test]
    fn a_fragmented_datagram_is_held_then_tracked_whole_and_its_fragments_released() {
        let d = DpConntrack::default();
        let id = d.intern(&ct_of("ct(commit)"), 0).unwrap();
        let whole = crate::offload::testframes::udp4(&[7u8; 5972], 9);
        let frags = fragments(&whole, 1480);
        assert_eq!(frags.len(), 5);
        let (out, meta) = run_frags(&d, id, &frags);
        assert!(out[..4].iter().all(|o| matches!(o, CtOutcome::Held)));
        let CtOutcome::Fragments(sent) = &out[4] else {
            panic!("{:?}", out[4])
        };
        assert_eq!(sent, &frags, "the original fragments, in order");
        assert_eq!(meta.ct_state, 0x21, "+trk+new from the whole datagram");
        assert_eq!((meta.ct_tp_src, meta.ct_tp_dst), (5000, 6000));
        assert_eq!(d.tracker().nconns(), 1);
        assert_eq!(d.ipf().status().v4.completed, 5);
        // A reply (swapped addresses and ports: the checksums still hold)
        // is +est+rpl, and then the datagram again is +est.
        let mut back = crate::offload::testframes::udp4(&[1u8; 10], 10);
        let (a, b) = (back[26..30].to_vec(), back[30..34].to_vec());
        back[26..30].copy_from_slice(&b);
        back[30..34].copy_from_slice(&a);
        let (p, q) = (back[34..36].to_vec(), back[36..38].to_vec());
        back[34..36].copy_from_slice(&q);
        back[36..38].copy_from_slice(&p);
        let (out, meta) = run_frags(&d, id, &[back]);
        assert!(matches!(out[0], CtOutcome::Done));
        assert_eq!(meta.ct_state, 0x2a, "+trk+est+rpl");
        let (out, meta) = run_frags(&d, id, &frags);
        assert!(matches!(out[4], CtOutcome::Fragments(_)));
        assert_eq!(meta.ct_state, 0x22, "+trk+est");
    }

    #[test]
    fn a_lone_overlapping_fragment_is_tracked_as_invalid_and_goes_on() {
        let d = DpConntrack::default();
        let id = d.intern(&ct_of("ct(commit)"), 0).unwrap();
        let whole = crate::offload::testframes::udp4(&[7u8; 3000], 9);
        let frags = fragments(&whole, 1480);
        let (out, _) = run_frags(&d, id, &frags[..1]);
        assert!(matches!(out[0], CtOutcome::Held));
        let (out, meta) = run_frags(&d, id, &frags[..1]);
        assert!(matches!(out[0], CtOutcome::Done));
        assert_eq!(meta.ct_state, 0x30, "+trk+inv");
        assert_eq!(d.ipf().status().v4.overlapped, 1);
        assert_eq!(d.tracker().nconns(), 0);
    }

    #[test]
    fn snat_of_a_fragmented_datagram_rewrites_every_fragment_consistently() {
        let d = DpConntrack::default();
        let id = d
            .intern(&ct_of("ct(commit,nat(src=10.0.0.100))"), 0)
            .unwrap();
        let whole = crate::offload::testframes::udp4(&[3u8; 4000], 9);
        let frags = fragments(&whole, 1480);
        let (out, meta) = run_frags(&d, id, &frags);
        let CtOutcome::Fragments(sent) = &out[2] else {
            panic!("{:?}", out[2])
        };
        assert_eq!(meta.ct_state & 0x40, 0x40, "+snat");
        for f in sent {
            assert_eq!(f[26..30], [10, 0, 0, 100], "source translated");
            assert_eq!(crate::offload::testframes::naive_csum(&[&f[14..34]]), 0);
        }
        let g = glue(sent);
        assert!(
            crate::offload::testframes::udp4_valid(&g),
            "UDP checksum of the whole"
        );
        assert_eq!(g[34..36], whole[34..36], "port kept (no clash)");
    }
}
