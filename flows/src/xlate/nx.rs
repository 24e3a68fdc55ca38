//! Translation of the Nicira extension actions: clone, check_pkt_larger,
//! the field stack, output:reg, multipath, bundle, learn, exit, note, the
//! extended controller action, queues, and the conntrack actions (`ct`,
//! `ct_clear`).

use super::{Flow, Xlate, bits_mask};
use crate::action::{
    Action, Bundle, Ct, Learn, LearnSpec, LearnSrc, Multipath, PortNo, SubField, port,
};
use crate::classifier::RuleId;
use crate::dpaction::DpAction;
use crate::matches::Match;
use crate::nxaction::{LEARN_DELETE_LEARNED, LEARN_SEND_FLOW_REM};
use crate::nxhash;
use crate::table::{FlowMod, FlowModCommand};

/// A flow a `learn` action built, for the caller to add.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LearnedFlow {
    pub fm: FlowMod,
    /// The rule whose learn action built it (table, id).
    pub learner: Option<(u8, RuleId)>,
    /// The learn action's `limit` (0 = none).
    pub limit: u32,
    /// The learn action had `delete_learned`.
    pub delete_learned: bool,
}

impl<'a, 'c> Xlate<'a, 'c> {
    fn flow_result(&self) -> Flow {
        if self.out.error.is_some() || self.exit {
            Flow::Abort
        } else {
            Flow::Continue
        }
    }

    /// Reads a subfield of the packet and marks its bits in the megaflow.
    fn read_subfield(&mut self, sf: &SubField) -> u128 {
        let m = bits_mask(sf.n_bits);
        sf.field.set_mask_bits(&mut self.wc, m << sf.ofs);
        (sf.field.get(&self.flow) >> sf.ofs) & m
    }

    fn write_subfield(&mut self, sf: &SubField, v: u128) {
        let m = bits_mask(sf.n_bits);
        self.write_field(sf.field, (v & m) << sf.ofs, m << sf.ofs);
    }

    pub(super) fn do_nx_action(&mut self, a: &Action, depth: usize) -> Flow {
        match a {
            Action::Resubmit {
                port: _,
                table,
                ct: true,
            } => {
                // The lookup would use the connection's original tuple; no
                // packet is ever tracked here, so there is none to use.
                self.out.unsupported.push("resubmit(ct)");
                self.out.cacheable = false;
                self.note(
                    depth,
                    format!(
                        "resubmit(,{},ct): the packet is not tracked (connection tracking is not executed by this switch), skipped",
                        table.map(|t| t.to_string()).unwrap_or_default()
                    ),
                );
            }
            Action::ControllerEx(c) => {
                self.controller_with(
                    c.max_len,
                    c.reason.into(),
                    c.userdata.clone(),
                    c.controller_id,
                );
                let mut missing = Vec::new();
                if c.controller_id != 0 {
                    missing.push("id");
                }
                if c.meter_id != 0 {
                    missing.push("meter_id");
                }
                if !missing.is_empty() {
                    self.note(
                        depth,
                        format!(
                            "controller: {} not carried in the packet-in",
                            missing.join(", ")
                        ),
                    );
                }
                if c.pause {
                    self.note(
                        depth,
                        "controller(pause) inside an enclosing action list: not resumable, the pipeline stops here",
                    );
                    self.exit = true;
                    return Flow::Abort;
                }
            }
            Action::DecTtlIds(_) => return self.do_action(&Action::DecTtl, depth),
            Action::StackPush(sf) => {
                let v = self.read_subfield(sf);
                self.stack.push(v);
            }
            Action::StackPop(sf) => match self.stack.pop() {
                Some(v) => self.write_subfield(sf, v),
                None => self.note(depth, "stack underflow, pop ignored"),
            },
            Action::OutputReg { src, max_len } => {
                let v = self.read_subfield(src);
                match u16::try_from(v) {
                    Ok(p) => {
                        let p: PortNo = if p >= 0xff00 {
                            0xffff_0000 | u32::from(p)
                        } else {
                            u32::from(p)
                        };
                        self.output(p, *max_len, depth);
                    }
                    Err(_) => self.note(depth, format!("output:{v:#x} is not a port, ignored")),
                }
            }
            Action::Note(_) => {}
            Action::Exit => {
                self.exit = true;
                return Flow::Abort;
            }
            Action::Multipath(m) => self.multipath(m),
            Action::Bundle(b) => self.bundle(b, depth),
            Action::Learn(l) => self.learn(l),
            Action::Sample {
                probability,
                collector_set_id,
                obs_domain_id,
                obs_point_id,
            } => self.out.actions.push(DpAction::Sample {
                // N/65535 of the packets, as a fraction of u32::MAX.
                probability: u32::from(*probability) * 0x1_0001,
                exporter: *collector_set_id,
                obs_domain: *obs_domain_id,
                obs_point: *obs_point_id,
                flow_sample: true,
            }),
            Action::FinTimeout { .. } => {
                self.note(
                    depth,
                    "fin_timeout: not applied (TCP FIN/RST do not shorten timeouts here)",
                );
            }
            Action::SetQueue(q) => {
                self.note(depth, format!("set_queue:{q}: no QoS queues, ignored"));
            }
            Action::Enqueue { port: p, queue } => {
                self.note(
                    depth,
                    format!("enqueue: no QoS queues, queue {queue} ignored"),
                );
                self.output(*p, 0, depth);
            }
            Action::Clone(inner) => return self.clone_actions(inner, depth),
            Action::CtClear => {
                if self.ctx.dp.is_some() && self.flow.ct_state != 0 {
                    self.out.actions.push(DpAction::CtClear);
                }
                self.wc.ct_state = crate::key::ct_state::ALL;
                self.clear_ct_fields();
            }
            Action::Ct(ct) => return self.ct(ct, depth),
            Action::Nat(_) => {
                self.note(depth, "nat outside ct, ignored");
            }
            Action::CheckPktLarger { pkt_len, dst } => {
                // Reached only through the action set; nothing follows it there.
                self.check_pkt_larger(*pkt_len, *dst, depth, &mut |_| {});
                return Flow::StopList;
            }
            _ => {}
        }
        self.flow_result()
    }

    /// `clone(...)`: the nested actions see a copy of the packet and of the
    /// pipeline state; afterwards everything is as before (header changes
    /// the clone emitted are undone by the next commit).
    fn clone_actions(&mut self, inner: &[Action], depth: usize) -> Flow {
        let saved_flow = self.flow;
        let saved_tpids = self.vlan_tpids;
        let saved_stack = self.stack.clone();
        let saved_set = std::mem::take(&mut self.action_set);
        let r = self.run_list(inner, depth);
        self.flow = saved_flow;
        self.vlan_tpids = saved_tpids;
        self.stack = saved_stack;
        self.action_set = saved_set;
        self.exit = false;
        if r == Flow::Abort && self.out.error.is_some() {
            return Flow::Abort;
        }
        self.flow_result()
    }

    /// `check_pkt_larger(LEN)->DST`: the rest of the action list (`rest`,
    /// then the action set) is translated twice, with DST = 1 for frames
    /// longer than LEN and DST = 0 for the others, into one datapath
    /// `check_pkt_len` whose branches the datapath picks per packet. The
    /// current action list ends there; the caller (of a resubmit) goes on.
    pub(super) fn check_pkt_larger(
        &mut self,
        pkt_len: u16,
        dst: SubField,
        depth: usize,
        rest: &mut dyn FnMut(&mut Self),
    ) {
        self.commit();
        let at = self.out.actions.len();
        self.out.actions.push(DpAction::CheckPktLen {
            size: pkt_len,
            gt: 0,
            le: 0,
        });
        let saved_flow = self.flow;
        let saved_base = self.base;
        let saved_dirty = self.dirty;
        let saved_tpids = (self.vlan_tpids, self.base_vlan_tpids);
        let saved_stack = self.stack.clone();
        let saved_set = self.action_set.clone();
        let mut lens = [0u16; 2];
        for (branch, bit) in [1u128, 0].into_iter().enumerate() {
            self.flow = saved_flow;
            self.base = saved_base;
            self.dirty = saved_dirty;
            (self.vlan_tpids, self.base_vlan_tpids) = saved_tpids;
            self.stack = saved_stack.clone();
            self.action_set = saved_set.clone();
            self.exit = false;
            self.write_subfield(&dst, bit);
            let before = self.out.actions.len();
            rest(self);
            let set = std::mem::take(&mut self.action_set).into_list();
            if !set.is_empty() && self.out.error.is_none() {
                self.exit = false;
                self.run_list(&set, depth);
            }
            lens[branch] = (self.out.actions.len() - before) as u16;
        }
        self.out.actions[at] = DpAction::CheckPktLen {
            size: pkt_len,
            gt: lens[0],
            le: lens[1],
        };
        // As in OVS, what follows the action list that held the check (the
        // caller of a resubmit) continues after the check, for every
        // packet; the action set ran in both branches.
        self.flow = saved_flow;
        self.base = saved_base;
        self.dirty = saved_dirty;
        self.stack = saved_stack;
        (self.vlan_tpids, self.base_vlan_tpids) = saved_tpids;
        self.action_set = Default::default();
        self.exit = false;
    }

    fn multipath(&mut self, m: &Multipath) {
        let hash = nxhash::flow_hash_fields(&self.flow, m.fields, m.basis);
        nxhash::mask_hash_fields(&self.flow, m.fields, &mut self.wc);
        let link = nxhash::multipath_link(hash, m.algorithm, m.n_links, m.arg);
        self.write_subfield(&m.dst, u128::from(link));
    }

    fn bundle(&mut self, b: &Bundle, depth: usize) {
        if b.algorithm == crate::action::BundleAlgorithm::Hrw && b.members.len() > 1 {
            nxhash::mask_hash_fields(&self.flow, b.fields, &mut self.wc);
        }
        let hash = nxhash::flow_hash_fields(&self.flow, b.fields, b.basis);
        let ports = self.br.ports;
        let live = |p: PortNo| ports.get(p).is_some_and(|bp| bp.up);
        let chosen = nxhash::bundle_member(&b.members, b.algorithm, hash, &live);
        match (&b.dst, chosen) {
            (Some(dst), c) => {
                let v = c.map_or(0xffff, |p| u128::from(p & 0xffff));
                self.write_subfield(dst, v);
            }
            (None, Some(p)) => self.output(p, 0, depth),
            (None, None) => self.note(depth, "bundle: no live member, dropping"),
        }
    }

    fn learn(&mut self, l: &Learn) {
        let mut fm = FlowMod::new(FlowModCommand::Add);
        fm.table_id = l.table;
        fm.priority = u32::from(l.priority);
        fm.cookie = l.cookie;
        fm.idle_timeout = l.idle_timeout;
        fm.hard_timeout = l.hard_timeout;
        fm.flags.send_flow_rem = l.flags & LEARN_SEND_FLOW_REM != 0;
        let mut m = Match::catch_all();
        for spec in &l.specs {
            let src_value = |x: &mut Self, src: &LearnSrc| match src {
                LearnSrc::Field(sf) => x.read_subfield(sf),
                LearnSrc::Imm(v) => *v,
            };
            match spec {
                LearnSpec::Match { src, dst } => {
                    let v = src_value(self, src);
                    let bits = bits_mask(dst.n_bits) << dst.ofs;
                    let cur_k = dst.field.get(&m.key);
                    let cur_m = dst.field.get(&m.mask);
                    dst.field
                        .set(&mut m.key, (cur_k & !bits) | ((v << dst.ofs) & bits));
                    dst.field.set(&mut m.mask, cur_m | bits);
                }
                LearnSpec::Load { src, dst } => {
                    let v = src_value(self, src);
                    fm.actions.push(Action::Load {
                        dst: *dst,
                        value: v & bits_mask(dst.n_bits),
                    });
                }
                LearnSpec::Output { src } => {
                    let v = self.read_subfield(src);
                    if let Ok(p) = u16::try_from(v) {
                        let p: PortNo = if p >= 0xff00 {
                            0xffff_0000 | u32::from(p)
                        } else {
                            u32::from(p)
                        };
                        if p < 0xff00
                            || matches!(p, port::IN_PORT | port::FLOOD | port::LOCAL | port::ALL)
                        {
                            fm.actions.push(Action::Output {
                                port: p,
                                max_len: 0,
                            });
                        }
                    }
                }
            }
        }
        fm.m = Match::new(m.key, m.mask);
        if let Some(r) = &l.result_dst {
            // Whether the limit lets the flow in is only known when the
            // caller applies it; this reports success.
            self.write_subfield(r, 1);
        }
        let text = crate::text::format_flow_mod(&fm);
        self.note(0, format!("learned: {text}"));
        // Re-learning must refresh timeouts, which a cached megaflow would
        // skip: only timeout-free learning is cached.
        if l.idle_timeout != 0 || l.hard_timeout != 0 {
            self.out.cacheable = false;
        }
        self.out.learned_flows.push(LearnedFlow {
            fm,
            learner: self.rule,
            limit: l.limit,
            delete_learned: l.flags & LEARN_DELETE_LEARNED != 0,
        });
    }

    /// `ct(...)`: the packet goes through the connection tracker in the
    /// datapath (`DpAction::Ct`, its arguments interned by the datapath).
    /// With `table=N` it is then recirculated (`DpAction::Recirc`) with the
    /// pipeline state frozen under a recirculation id; the second pass is a
    /// new translation from table N keyed by that id. As in OVS the action
    /// list goes on with the packet as it was (untracked), so the `ct_*`
    /// fields read as zero afterwards. Without datapath resources (a
    /// translation with no datapath behind it) `ct` is reported as
    /// unsupported, not cached, and a `table=N` copy is dropped.
    fn ct(&mut self, ct: &Ct, depth: usize) -> Flow {
        let zone = match &ct.zone_src {
            Some(z) => self.read_subfield(z) as u16,
            None => ct.zone_imm,
        };
        let Some(dp) = self.ctx.dp else {
            self.out.unsupported.push("ct");
            self.out.cacheable = false;
            match ct.table {
                None => self.note(
                    depth,
                    "ct: connection tracking is not executed by this switch, skipped",
                ),
                Some(t) => self.note(
                    depth,
                    format!(
                        "ct(table={t}): connection tracking is not executed by this switch, this copy of the packet is dropped"
                    ),
                ),
            }
            return self.flow_result();
        };
        // The tracker has helpers for FTP (21) and TFTP (69), as OVS's
        // userspace datapath; another `alg` is left out, as OVS does.
        if ct.alg != 0 && ct.alg != 21 && ct.alg != 69 {
            self.out.unsupported.push("ct(alg)");
            self.note(
                depth,
                format!("ct: cannot serialize ct_helper {}, ignored", ct.alg),
            );
        }
        // The tracker sees the packet with every rewrite so far.
        self.commit();
        match dp.ct_action(ct, zone) {
            Ok(id) => {
                self.out.actions.push(DpAction::Ct(id));
                if let Some(t) = ct.table {
                    let frozen = super::Frozen {
                        table_id: t,
                        in_port: self.flow.in_port,
                        metadata: self.flow.metadata,
                        regs: self.flow.regs,
                        bridge: self.bridge_tag(),
                    };
                    match dp.recirc_id(&frozen) {
                        Some(id) => {
                            self.out.actions.push(DpAction::Recirc(id));
                            self.note(
                                depth,
                                format!("ct(table={t}): recirculating with recirc_id={id:#x}"),
                            );
                        }
                        None => self.note(
                            depth,
                            format!("ct(table={t}): no recirculation id left, this copy of the packet is dropped"),
                        ),
                    }
                }
            }
            Err(e) => {
                self.note(depth, format!("ct: {e}, skipped"));
                self.out.unsupported.push("ct");
            }
        }
        self.clear_ct_fields();
        self.flow_result()
    }

    /// The packet is untracked from here on (after `ct` or `ct_clear`).
    pub(super) fn clear_ct_fields(&mut self) {
        self.flow.clear_ct();
        let b = &mut self.base;
        b.ct_state = 0;
        b.ct_zone = 0;
        b.ct_mark = 0;
        b.ct_label = [0; 16];
    }
}

#[cfg(test)]
mod tests {
    use crate::dpaction::DpAction;
    use crate::group::GroupTable;
    use crate::key::FlowKey;
    use crate::mac_learning::MacLearning;
    use crate::table::{FlowModCommand, Pipeline};
    use crate::text::{format_flow_mod, parse_flow_mod};
    use crate::xlate::{
        BridgePort, BridgePorts, XlateCtx, XlateResult, format_dp_actions, translate,
    };

    fn run(flows: &[&str], key: &FlowKey) -> XlateResult {
        let mut p = Pipeline::new();
        for f in flows {
            p.flow_mod(&parse_flow_mod(f, FlowModCommand::Add).unwrap(), 0)
                .unwrap();
        }
        let mut ports = BridgePorts::new();
        for n in 1..=4 {
            ports.insert(BridgePort::new(n, 100 + n));
        }
        let (groups, mac) = (GroupTable::new(), MacLearning::default());
        let ctx = XlateCtx {
            pipeline: &p,
            groups: &groups,
            ports: &ports,
            mac: &mac,
            now_ms: 0,
            dp: None,
            patch: None,
        };
        translate(&ctx, key)
    }

    fn pkt() -> FlowKey {
        FlowKey {
            in_port: 1,
            dl_src: [0, 0, 0, 0, 0, 0xa],
            dl_dst: [0, 0, 0, 0, 0, 0xb],
            dl_type: 0x0800,
            nw_proto: 6,
            tp_dst: 80,
            ..FlowKey::default()
        }
    }

    #[test]
    fn outputs_after_a_tunnel_field_was_set_carry_the_tunnel_fields_for_the_tunnel_port() {
        let r = run(
            &[
                "actions=output:3,set_field:10.99.0.2->tun_dst,set_field:0x5a5->tun_id,output:2,output:4",
            ],
            &pkt(),
        );
        assert_eq!(
            r.actions,
            vec![
                DpAction::Output(103),
                DpAction::Output(102),
                DpAction::Output(104)
            ]
        );
        let at: Vec<usize> = r.tunnel_keys.iter().map(|(i, _)| *i).collect();
        assert_eq!(at, vec![1, 2], "the first output was before the sets");
        let k = r.tunnel_keys[0].1;
        assert_eq!((k.tun_dst, k.tun_id), (0x0a63_0002, 0x5a5));
        // A pipeline that sets no tunnel field lists nothing.
        assert!(run(&["actions=output:2"], &pkt()).tunnel_keys.is_empty());
    }

    #[test]
    fn learn_builds_the_flow_from_the_packet_and_its_sources_are_in_the_megaflow() {
        let r = run(
            &[
                "actions=learn(table=10,idle_timeout=30,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15],output:NXM_OF_IN_PORT[]),output:2",
            ],
            &pkt(),
        );
        assert_eq!(r.actions, vec![DpAction::Output(102)]);
        assert_eq!(r.learned_flows.len(), 1);
        let fm = &r.learned_flows[0].fm;
        assert_eq!(fm.table_id, 10);
        assert_eq!(fm.idle_timeout, 30);
        assert_eq!(
            format_flow_mod(fm),
            "table=10,idle_timeout=30,dl_dst=00:00:00:00:00:0a actions=load:0x1->NXM_NX_REG0[0..15],output:1"
        );
        assert_eq!(r.wc.dl_src, [0xff; 6], "learned from dl_src");
        assert!(
            !r.cacheable,
            "a learn with a timeout must run for every packet"
        );
    }

    #[test]
    fn ct_is_counted_not_cached_and_its_forked_copy_is_not_invented() {
        let r = run(
            &["ip,actions=ct(commit,zone=5),ct(table=3),output:2"],
            &pkt(),
        );
        assert_eq!(r.unsupported, vec!["ct", "ct"]);
        assert!(!r.cacheable);
        // The original packet continues (untracked), as OVS's fork does.
        assert_eq!(r.actions, vec![DpAction::Output(102)]);
    }

    /// Records what translation interned.
    #[derive(Default)]
    struct FakeDp {
        cts: std::cell::RefCell<Vec<(crate::action::Ct, u16)>>,
        frozen: std::cell::RefCell<Vec<crate::xlate::Frozen>>,
    }

    impl crate::xlate::DpResources for FakeDp {
        fn ct_action(&self, ct: &crate::action::Ct, zone: u16) -> Result<u32, String> {
            let mut v = self.cts.borrow_mut();
            v.push((ct.clone(), zone));
            Ok(v.len() as u32 + 10)
        }
        fn recirc_id(&self, f: &crate::xlate::Frozen) -> Option<u32> {
            let mut v = self.frozen.borrow_mut();
            v.push(*f);
            Some(v.len() as u32)
        }
    }

    fn run_dp(flows: &[&str], key: &FlowKey, dp: &FakeDp, table: u8) -> XlateResult {
        let mut p = Pipeline::new();
        for f in flows {
            p.flow_mod(&parse_flow_mod(f, FlowModCommand::Add).unwrap(), 0)
                .unwrap();
        }
        let mut ports = BridgePorts::new();
        for n in 1..=4 {
            ports.insert(BridgePort::new(n, 100 + n));
        }
        let (groups, mac) = (GroupTable::new(), MacLearning::default());
        let ctx = XlateCtx {
            pipeline: &p,
            groups: &groups,
            ports: &ports,
            mac: &mac,
            now_ms: 0,
            dp: Some(dp),
            patch: None,
        };
        crate::xlate::translate_from(&ctx, key, table)
    }

    #[test]
    fn ct_with_table_tracks_then_recirculates_with_the_pipeline_state_frozen() {
        let dp = FakeDp::default();
        let r = run_dp(
            &[
                "ip,ct_state=-trk,actions=load:0x7->NXM_NX_REG0[0..15],ct(zone=NXM_NX_REG0[0..15],table=3),output:2",
                "table=3,ct_state=+trk,actions=output:3",
            ],
            &pkt(),
            &dp,
            0,
        );
        assert!(r.unsupported.is_empty());
        assert!(r.cacheable);
        assert_eq!(
            r.actions,
            vec![DpAction::Ct(11), DpAction::Recirc(1), DpAction::Output(102)]
        );
        assert_eq!(dp.cts.borrow()[0].1, 7, "zone read from reg0");
        let f = dp.frozen.borrow()[0];
        assert_eq!((f.table_id, f.in_port, f.regs[0]), (3, 1, 7));
        assert_eq!(r.wc.ct_state & 0x20, 0x20, "the first pass matched -trk");

        // The second pass starts in table 3 and sees the tracked state.
        let mut k = pkt();
        k.ct_state = 0x21;
        f.thaw(&mut k);
        let r2 = run_dp(&["table=3,ct_state=+trk,actions=output:3"], &k, &dp, 3);
        assert_eq!(r2.actions, vec![DpAction::Output(103)]);
    }

    #[test]
    fn a_resumed_continuation_runs_its_ct_and_recirculates_with_datapath_resources() {
        // OVN's DHCP reply on a switch with stateful ACLs: after the pause
        // the pipeline reaches a `ct` (the egress pre-ACL stage).
        let flows = [
            "actions=controller(userdata=00.00.00.05,pause),resubmit(,1)",
            "table=1,ip,actions=ct(zone=9,table=2)",
            "table=2,actions=output:2",
        ];
        let dp = FakeDp::default();
        let r = run_dp(&flows, &pkt(), &dp, 0);
        let c = r.packet_ins[0].continuation.clone().expect("resumable");
        let mut p = Pipeline::new();
        for f in flows {
            p.flow_mod(&parse_flow_mod(f, FlowModCommand::Add).unwrap(), 0)
                .unwrap();
        }
        let mut ports = BridgePorts::new();
        for n in 1..=4 {
            ports.insert(BridgePort::new(n, 100 + n));
        }
        let (groups, mac) = (GroupTable::new(), MacLearning::default());
        let resume = |dp: Option<&dyn crate::xlate::DpResources>| {
            let ctx = XlateCtx {
                pipeline: &p,
                groups: &groups,
                ports: &ports,
                mac: &mac,
                now_ms: 0,
                dp,
                patch: None,
            };
            crate::xlate::translate_resume(&ctx, &pkt(), &c)
        };
        let r = resume(Some(&dp));
        assert!(r.unsupported.is_empty(), "{:?}", r.unsupported);
        assert_eq!(r.actions, vec![DpAction::Ct(11), DpAction::Recirc(1)]);
        assert_eq!(dp.cts.borrow()[0].1, 9);
        assert_eq!(dp.frozen.borrow()[0].table_id, 2);
        // Without a datapath behind it, the ct cannot run: nothing leaves.
        let r = resume(None);
        assert!(!r.actions.iter().any(|a| matches!(a, DpAction::Recirc(_))));
    }

    #[test]
    fn ct_clear_untracks_a_tracked_packet_in_the_datapath() {
        let dp = FakeDp::default();
        let mut k = pkt();
        k.ct_state = 0x22;
        let r = run_dp(
            &[
                "ct_state=+trk,actions=ct_clear,resubmit(,1)",
                "table=1,ct_state=-trk,actions=output:2",
            ],
            &k,
            &dp,
            0,
        );
        assert_eq!(r.actions, vec![DpAction::CtClear, DpAction::Output(102)]);
    }

    #[test]
    fn controller_pause_sends_the_packet_in_and_stops_the_pipeline() {
        let r = run(
            &["actions=controller(userdata=01.02,pause),output:2"],
            &pkt(),
        );
        assert_eq!(r.packet_ins.len(), 1);
        assert!(!r.actions.contains(&DpAction::Output(102)));
    }

    #[test]
    fn check_pkt_larger_translates_the_rest_for_both_sizes_then_continues() {
        let r = run(
            &[
                "table=0,actions=resubmit(,1),output:4",
                "table=1,actions=check_pkt_larger(100)->NXM_NX_REG0[0],resubmit(,2)",
                "table=2,reg0=1,actions=output:2",
                "table=2,reg0=0,actions=mod_dl_src:00:00:00:00:00:01,output:3",
            ],
            &pkt(),
        );
        assert_eq!(
            format_dp_actions(&r.actions),
            "check_pkt_len(size=100,gt(102),le(set(eth(src=00:00:00:00:00:01)),103)),104"
        );
    }

    #[test]
    fn clone_undoes_its_rewrites_for_what_follows() {
        let r = run(
            &["actions=clone(mod_dl_dst:00:00:00:00:00:0c,output:2),output:3"],
            &pkt(),
        );
        assert_eq!(
            format_dp_actions(&r.actions),
            "set(eth(dst=00:00:00:00:00:0c)),102,set(eth(dst=00:00:00:00:00:0b)),103"
        );
    }

    #[test]
    fn stack_pop_on_empty_stack_changes_nothing_and_push_pop_moves_bits() {
        let r = run(
            &[
                "table=0,actions=pop:NXM_NX_REG1[],push:NXM_OF_TCP_DST[],pop:NXM_NX_REG0[0..15],output:NXM_NX_REG0[0..1],resubmit(,1)",
                "table=1,reg0=80,actions=output:2",
            ],
            &pkt(),
        );
        // 80 = 0b1010000: reg0[0..1] = 0 (no port 0), then table 1 matches.
        assert_eq!(r.actions, vec![DpAction::Output(102)]);
    }

    #[test]
    fn exit_stops_the_callers_too_but_the_action_set_runs() {
        let r = run(
            &[
                "table=0,actions=resubmit(,1),output:4,write_actions(output:3)",
                "table=1,actions=output:2,exit,output:4",
            ],
            &pkt(),
        );
        assert_eq!(r.actions, vec![DpAction::Output(102)]);
    }

    #[test]
    fn bundle_active_backup_skips_down_members() {
        let mut p = Pipeline::new();
        p.flow_mod(
            &parse_flow_mod(
                "actions=bundle(eth_src,0,active_backup,ofport,members:2,3)",
                FlowModCommand::Add,
            )
            .unwrap(),
            0,
        )
        .unwrap();
        let mut ports = BridgePorts::new();
        for n in 1..=3 {
            let mut bp = BridgePort::new(n, 100 + n);
            bp.up = n != 2;
            ports.insert(bp);
        }
        let (groups, mac) = (GroupTable::new(), MacLearning::default());
        let ctx = XlateCtx {
            pipeline: &p,
            groups: &groups,
            ports: &ports,
            mac: &mac,
            now_ms: 0,
            dp: None,
            patch: None,
        };
        assert_eq!(translate(&ctx, &pkt()).actions, vec![DpAction::Output(103)]);
    }
}
