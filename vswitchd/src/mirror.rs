//! Port mirrors (the `Mirror` table), applied to a translation's datapath
//! actions.
//!
//! Semantics are those of ovs-vswitchd.conf.db(5) for Open vSwitch 2.5 and
//! later: a packet becomes eligible for a mirror when it enters through a
//! selected port (mirrored before any action, as it entered) or each time it
//! is output to a selected port (mirrored just before that output, as it is
//! at that point); it must also be in a selected VLAN. It goes to each
//! mirror destination once. A mirror's `output_port` is reserved for the
//! mirror: nothing else is sent to it and what it receives is dropped.
//! `output_vlan` (RSPAN) sends the copy out of every port carrying that
//! VLAN, tagged with it on trunks and untagged on access ports.
//!
//! Mirroring is bridge configuration, not OpenFlow: it runs after the
//! pipeline (and NORMAL) produced the datapath actions, so the megaflow
//! cache holds the mirrored actions and the fast path does nothing extra.

use std::collections::BTreeSet;

use flows::action::PortNo;
use flows::dpaction::{DpAction, DpPortNo};
use flows::key::{FlowKey, VLAN_CFI, VLAN_VID_MASK};
use flows::xlate::{BridgePorts, VlanMode, XlateResult};

use crate::config::{MirrorConfig, MirrorOutput};

/// Most mirrors per bridge (Open vSwitch's limit).
pub const MAX_MIRRORS: usize = 32;

/// Where a mirror sends its copies, resolved to OpenFlow ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Port(PortNo),
    Vlan(u16),
}

/// One mirror, resolved against the bridge's ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    pub uuid: uuid::Uuid,
    pub name: String,
    pub all: bool,
    pub src: BTreeSet<PortNo>,
    pub dst: BTreeSet<PortNo>,
    /// Empty: every VLAN.
    pub vlans: BTreeSet<u16>,
    pub out: Destination,
}

impl Mirror {
    fn wants_vlan(&self, vlan: u16) -> bool {
        self.vlans.is_empty() || self.vlans.contains(&vlan)
    }
}

/// The mirrors of one bridge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mirrors {
    pub mirrors: Vec<Mirror>,
    /// Ports reserved as some mirror's `output_port`.
    pub reserved: BTreeSet<PortNo>,
}

impl Mirrors {
    /// Resolves `configs` with `ofport_of` (a Port's name to its OpenFlow
    /// ports). Mirrors that cannot work (no destination, a destination port
    /// that is not on the bridge) are left out with a warning each.
    pub fn resolve(
        configs: &[MirrorConfig],
        ofport_of: impl Fn(&str) -> Vec<PortNo>,
        warnings: &mut Vec<String>,
    ) -> Mirrors {
        let mut out = Mirrors::default();
        for c in configs {
            if out.mirrors.len() == MAX_MIRRORS {
                warnings.push(format!(
                    "mirror {}: a bridge has at most {MAX_MIRRORS} mirrors; ignored",
                    c.name
                ));
                continue;
            }
            let ports = |names: &[String]| -> BTreeSet<PortNo> {
                names.iter().flat_map(|n| ofport_of(n)).collect()
            };
            let dest = match &c.output {
                Some(MirrorOutput::Port(p)) => match ofport_of(p).first() {
                    Some(no) => Destination::Port(*no),
                    None => {
                        warnings.push(format!(
                            "mirror {}: output port {p} is not on the bridge; mirror disabled",
                            c.name
                        ));
                        continue;
                    }
                },
                Some(MirrorOutput::Vlan(v)) => Destination::Vlan(*v),
                None => {
                    warnings.push(format!(
                        "mirror {}: needs output_port or output_vlan; mirror disabled",
                        c.name
                    ));
                    continue;
                }
            };
            let m = Mirror {
                uuid: c.uuid,
                name: c.name.clone(),
                all: c.select_all,
                src: ports(&c.select_src_port),
                dst: ports(&c.select_dst_port),
                vlans: c.select_vlan.iter().copied().collect(),
                out: dest,
            };
            if !m.all && m.src.is_empty() && m.dst.is_empty() {
                // OVS keeps such a mirror but it selects nothing.
                warnings.push(format!("mirror {}: selects no port", c.name));
            }
            if let Destination::Port(p) = m.out {
                out.reserved.insert(p);
            }
            out.mirrors.push(m);
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.mirrors.is_empty()
    }

    /// True when frames received on `ofport` are dropped (a mirror output).
    pub fn drops_input(&self, ofport: PortNo) -> bool {
        self.reserved.contains(&ofport)
    }

    /// Rewrites the datapath actions of `x` (the translation of `key`,
    /// whose `in_port` is the OpenFlow port) to mirror the packet. Source
    /// selection applies only on the packet's `first_pass` through the
    /// datapath (not after a recirculation, which continues the same
    /// packet). Returns the mirrors that got a copy (bit `i` for
    /// `mirrors[i]`).
    pub fn apply(
        &self,
        ports: &BridgePorts,
        key: &FlowKey,
        first_pass: bool,
        x: &mut XlateResult,
    ) -> u32 {
        if self.is_empty() {
            return 0;
        }
        let in_mode = ports
            .get(key.in_port)
            .map(|p| p.vlan.clone())
            .unwrap_or_default();
        let Some(vlan) = in_mode.input_vlan(key.vlan_tci) else {
            return 0;
        };
        if self.mirrors.iter().any(|m| !m.vlans.is_empty()) {
            x.wc.vlan_tci |= VLAN_CFI | VLAN_VID_MASK;
        }
        let mut run = Run {
            mirrors: self,
            ports,
            in_port: key.in_port,
            vlan,
            tag: (key.vlan_tci & VLAN_CFI != 0).then_some(key.vlan_tci & !VLAN_CFI),
            done: BTreeSet::new(),
            copied: 0,
        };
        let mut out = Vec::with_capacity(x.actions.len() + 4);
        for i in 0..self.mirrors.len() {
            let m = &self.mirrors[i];
            if first_pass && (m.all || m.src.contains(&key.in_port)) && m.wants_vlan(vlan) {
                run.copy(i, &mut out);
            }
        }
        run.rewrite(&x.actions, &mut out);
        x.actions = out;
        run.copied
    }
}

/// The state of one rewrite.
struct Run<'a> {
    mirrors: &'a Mirrors,
    ports: &'a BridgePorts,
    in_port: PortNo,
    /// The packet's VLAN as the input port classified it.
    vlan: u16,
    /// The outer tag the packet carries at this point of the actions (TCI
    /// without the present bit).
    tag: Option<u16>,
    /// Destinations already sent a copy.
    done: BTreeSet<(bool, u32)>,
    /// Mirrors that sent a copy (bit per mirror).
    copied: u32,
}

impl Run<'_> {
    fn rewrite(&mut self, actions: &[DpAction], out: &mut Vec<DpAction>) {
        let mut i = 0;
        while i < actions.len() {
            let a = actions[i];
            match a {
                DpAction::Output(dp) => {
                    let of = self.ports.ofport_of(dp);
                    if of.is_some_and(|p| self.mirrors.reserved.contains(&p)) {
                        // Reserved for its mirror: no ordinary output.
                        i += 1;
                        continue;
                    }
                    if let Some(of) = of {
                        for m in 0..self.mirrors.mirrors.len() {
                            let mi = &self.mirrors.mirrors[m];
                            if (mi.all || mi.dst.contains(&of)) && mi.wants_vlan(self.vlan) {
                                self.copy(m, out);
                            }
                        }
                    }
                    out.push(a);
                }
                DpAction::CheckPktLen { size, .. } => {
                    let (gt, le) = flows::dpaction::check_pkt_len_branches(actions, i);
                    let (done, tag) = (self.done.clone(), self.tag);
                    let mut gt_out = Vec::new();
                    self.rewrite(gt, &mut gt_out);
                    let after_gt = (std::mem::replace(&mut self.done, done), self.tag);
                    self.tag = tag;
                    let mut le_out = Vec::new();
                    self.rewrite(le, &mut le_out);
                    // After the branches, only what both did is certain.
                    self.done = self.done.intersection(&after_gt.0).copied().collect();
                    if after_gt.1 != self.tag {
                        self.tag = tag;
                    }
                    out.push(DpAction::CheckPktLen {
                        size,
                        gt: u16::try_from(gt_out.len()).unwrap_or(u16::MAX),
                        le: u16::try_from(le_out.len()).unwrap_or(u16::MAX),
                    });
                    out.extend(gt_out);
                    out.extend(le_out);
                    i += 1 + gt.len() + le.len();
                    continue;
                }
                DpAction::PushVlan { tci, .. } => {
                    self.tag = Some(tci);
                    out.push(a);
                }
                DpAction::PopVlan => {
                    self.tag = None;
                    out.push(a);
                }
                DpAction::SetVlanVid(v) => {
                    self.tag = self.tag.map(|t| (t & !VLAN_VID_MASK) | v);
                    out.push(a);
                }
                DpAction::SetVlanPcp(p) => {
                    self.tag = self.tag.map(|t| (t & VLAN_VID_MASK) | (u16::from(p) << 13));
                    out.push(a);
                }
                _ => out.push(a),
            }
            i += 1;
        }
    }

    /// Sends the packet, as it is now, to mirror `m`'s destination unless
    /// that destination already has a copy.
    fn copy(&mut self, m: usize, out: &mut Vec<DpAction>) {
        let before = out.len();
        self.copy_to(m, out);
        if out.len() > before {
            self.copied |= 1 << m;
        }
    }

    fn copy_to(&mut self, m: usize, out: &mut Vec<DpAction>) {
        match self.mirrors.mirrors[m].out {
            Destination::Port(p) => {
                if p == self.in_port || !self.done.insert((false, p)) {
                    return;
                }
                if let Some(bp) = self.ports.get(p) {
                    out.push(DpAction::Output(bp.dp_port));
                }
            }
            Destination::Vlan(v) => {
                if !self.done.insert((true, u32::from(v))) {
                    return;
                }
                let targets: Vec<(DpPortNo, Option<u16>)> = self
                    .ports
                    .iter()
                    .filter(|p| {
                        p.ofport != self.in_port
                            && !self.mirrors.reserved.contains(&p.ofport)
                            && p.vlan.includes(v)
                    })
                    .map(|p| (p.dp_port, out_tag(&p.vlan, v)))
                    .collect();
                for (dp, tag) in targets {
                    self.emit_tagged(dp, tag, out);
                }
            }
        }
    }

    /// Outputs to `dp` with outer VID `want` (`None`: untagged), then puts
    /// the packet's tag back as it was.
    fn emit_tagged(&self, dp: DpPortNo, want: Option<u16>, out: &mut Vec<DpAction>) {
        match (self.tag, want) {
            (None, None) => out.push(DpAction::Output(dp)),
            (None, Some(v)) => {
                out.push(DpAction::PushVlan {
                    tpid: 0x8100,
                    tci: v,
                });
                out.push(DpAction::Output(dp));
                out.push(DpAction::PopVlan);
            }
            (Some(t), Some(v)) => {
                out.push(DpAction::SetVlanVid(v));
                out.push(DpAction::Output(dp));
                out.push(DpAction::SetVlanVid(t & VLAN_VID_MASK));
            }
            (Some(t), None) => {
                out.push(DpAction::PopVlan);
                out.push(DpAction::Output(dp));
                out.push(DpAction::PushVlan {
                    tpid: 0x8100,
                    tci: t,
                });
            }
        }
    }
}

/// How a mirrored frame of VLAN `v` leaves a port: tagged `v` on trunks,
/// untagged on access ports and native-untagged ports whose tag is `v`.
fn out_tag(mode: &VlanMode, v: u16) -> Option<u16> {
    match mode {
        VlanMode::Access { .. } => None,
        VlanMode::NativeUntagged { tag, .. } if *tag == v => None,
        _ => Some(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flows::xlate::BridgePort;

    fn ports() -> BridgePorts {
        let mut ps = BridgePorts::new();
        for (of, dp) in [(1, 11), (2, 12), (3, 13), (4, 14)] {
            ps.insert(BridgePort::new(of, dp));
        }
        ps
    }

    fn cfg(name: &str) -> MirrorConfig {
        MirrorConfig {
            name: name.into(),
            ..MirrorConfig::default()
        }
    }

    fn resolve(cs: &[MirrorConfig]) -> Mirrors {
        let mut w = Vec::new();
        let m = Mirrors::resolve(
            cs,
            |n| {
                n.strip_prefix('p')
                    .and_then(|d| d.parse().ok())
                    .into_iter()
                    .collect()
            },
            &mut w,
        );
        assert!(w.is_empty(), "{w:?}");
        m
    }

    fn xlate(actions: Vec<DpAction>) -> XlateResult {
        XlateResult {
            actions,
            ..XlateResult::default()
        }
    }

    fn key(in_port: PortNo, tci: u16) -> FlowKey {
        FlowKey {
            in_port,
            vlan_tci: tci,
            ..FlowKey::default()
        }
    }

    #[test]
    fn a_source_port_mirror_copies_the_packet_before_any_action() {
        let mut c = cfg("m");
        c.select_src_port = vec!["p1".into()];
        c.output = Some(MirrorOutput::Port("p4".into()));
        let m = resolve(&[c]);
        let mut x = xlate(vec![DpAction::SetEthDst([2; 6]), DpAction::Output(12)]);
        assert_eq!(m.apply(&ports(), &key(1, 0), true, &mut x), 1);
        assert_eq!(
            x.actions,
            [
                DpAction::Output(14),
                DpAction::SetEthDst([2; 6]),
                DpAction::Output(12)
            ]
        );
        // From another port: untouched.
        let mut x = xlate(vec![DpAction::Output(11)]);
        assert_eq!(m.apply(&ports(), &key(2, 0), true, &mut x), 0);
        assert_eq!(x.actions, [DpAction::Output(11)]);
    }

    #[test]
    fn a_destination_port_mirror_copies_just_before_the_output_and_once() {
        let mut c = cfg("m");
        c.select_dst_port = vec!["p2".into(), "p3".into()];
        c.select_src_port = vec!["p1".into()];
        c.output = Some(MirrorOutput::Port("p4".into()));
        let m = resolve(&[c]);
        let mut x = xlate(vec![
            DpAction::SetEthDst([2; 6]),
            DpAction::Output(12),
            DpAction::Output(13),
        ]);
        m.apply(&ports(), &key(2, 0), true, &mut x);
        assert_eq!(
            x.actions,
            [
                DpAction::SetEthDst([2; 6]),
                DpAction::Output(14),
                DpAction::Output(12),
                DpAction::Output(13)
            ]
        );
        // Selected both as source and destination: still one copy.
        let mut x = xlate(vec![DpAction::Output(12)]);
        m.apply(&ports(), &key(1, 0), true, &mut x);
        assert_eq!(x.actions, [DpAction::Output(14), DpAction::Output(12)]);
    }

    #[test]
    fn the_output_port_is_reserved_and_its_input_dropped() {
        let mut c = cfg("m");
        c.select_all = true;
        c.output = Some(MirrorOutput::Port("p4".into()));
        let m = resolve(&[c]);
        // A flood that included the mirror port sends it one copy only.
        let mut x = xlate(vec![
            DpAction::Output(12),
            DpAction::Output(13),
            DpAction::Output(14),
        ]);
        m.apply(&ports(), &key(1, 0), true, &mut x);
        assert_eq!(
            x.actions,
            [
                DpAction::Output(14),
                DpAction::Output(12),
                DpAction::Output(13)
            ]
        );
        assert!(m.drops_input(4));
        assert!(!m.drops_input(1));
    }

    #[test]
    fn vlan_selection_follows_the_input_ports_classification_and_unwildcards_the_vid() {
        let mut ps = ports();
        let mut access = BridgePort::new(1, 11);
        access.vlan = VlanMode::Access { tag: 10 };
        ps.insert(access);
        let mut c = cfg("m");
        c.select_all = true;
        c.select_vlan = vec![10];
        c.output = Some(MirrorOutput::Port("p4".into()));
        let m = resolve(&[c]);
        let mut x = xlate(vec![DpAction::Output(12)]);
        m.apply(&ps, &key(1, 0), true, &mut x);
        assert_eq!(x.actions, [DpAction::Output(14), DpAction::Output(12)]);
        assert_eq!(x.wc.vlan_tci & VLAN_VID_MASK, VLAN_VID_MASK);
        // VLAN 20 on a trunk: not selected.
        let mut x = xlate(vec![DpAction::Output(13)]);
        m.apply(&ps, &key(2, VLAN_CFI | 20), true, &mut x);
        assert_eq!(x.actions, [DpAction::Output(13)]);
    }

    #[test]
    fn an_rspan_copy_is_tagged_on_trunks_untagged_on_access_ports_and_the_tag_restored() {
        let mut ps = ports();
        let mut access = BridgePort::new(3, 13);
        access.vlan = VlanMode::Access { tag: 99 };
        ps.insert(access);
        let mut other = BridgePort::new(4, 14);
        other.vlan = VlanMode::Access { tag: 5 };
        ps.insert(other);
        let mut c = cfg("m");
        c.select_src_port = vec!["p1".into()];
        c.output = Some(MirrorOutput::Vlan(99));
        let m = resolve(&[c]);
        let mut x = xlate(vec![DpAction::Output(12)]);
        m.apply(&ps, &key(1, 0), true, &mut x);
        assert_eq!(
            x.actions,
            [
                DpAction::PushVlan {
                    tpid: 0x8100,
                    tci: 99
                },
                DpAction::Output(12),
                DpAction::PopVlan,
                DpAction::Output(13),
                DpAction::Output(12),
            ]
        );
        // A tagged packet has its VID replaced for the copy and put back.
        let mut x = xlate(vec![DpAction::Output(12)]);
        m.apply(&ps, &key(1, VLAN_CFI | 7), true, &mut x);
        assert_eq!(
            x.actions,
            [
                DpAction::SetVlanVid(99),
                DpAction::Output(12),
                DpAction::SetVlanVid(7),
                DpAction::PopVlan,
                DpAction::Output(13),
                DpAction::PushVlan {
                    tpid: 0x8100,
                    tci: 7
                },
                DpAction::Output(12),
            ]
        );
    }

    #[test]
    fn branches_of_check_pkt_len_are_rewritten_with_their_lengths() {
        let mut c = cfg("m");
        c.select_dst_port = vec!["p2".into()];
        c.output = Some(MirrorOutput::Port("p4".into()));
        let m = resolve(&[c]);
        let mut x = xlate(vec![
            DpAction::CheckPktLen {
                size: 100,
                gt: 1,
                le: 1,
            },
            DpAction::Output(12),
            DpAction::Output(13),
            DpAction::Output(12),
        ]);
        m.apply(&ports(), &key(1, 0), true, &mut x);
        assert_eq!(
            x.actions,
            [
                DpAction::CheckPktLen {
                    size: 100,
                    gt: 2,
                    le: 1
                },
                DpAction::Output(14),
                DpAction::Output(12),
                DpAction::Output(13),
                DpAction::Output(14),
                DpAction::Output(12),
            ]
        );
    }

    #[test]
    fn mirrors_without_destination_or_with_a_foreign_port_are_refused() {
        let mut w = Vec::new();
        let mut bad = cfg("nowhere");
        bad.select_all = true;
        let mut foreign = cfg("foreign");
        foreign.select_all = true;
        foreign.output = Some(MirrorOutput::Port("eth9".into()));
        let m = Mirrors::resolve(&[bad, foreign], |_| Vec::new(), &mut w);
        assert!(m.is_empty());
        assert_eq!(w.len(), 2);
        assert!(w[0].contains("needs output_port or output_vlan"), "{w:?}");
        assert!(
            w[1].contains("output port eth9 is not on the bridge"),
            "{w:?}"
        );
    }
}
