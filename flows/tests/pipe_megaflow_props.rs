//! Megaflow soundness: for random pipelines (tables, groups, NORMAL with VLAN
//! ports and a populated MAC table) and random packets p, every packet p'
//! that agrees with p on the translation's megaflow mask gets exactly the
//! same datapath actions (and, when cacheable, builds the same learned
//! flows). This is what makes caching translations correct. The actions
//! include the Nicira extensions: clone, check_pkt_larger, push/pop,
//! output:reg, multipath, bundle/bundle_load, learn, exit, ct.

use flows::Match;
use flows::action::{
    Action, Bundle, BundleAlgorithm, ControllerSpec, Ct, HashFields, Learn, LearnSpec, LearnSrc,
    Multipath, MultipathAlgorithm, PacketInReason, PortNo, SubField, port,
};
use flows::field::Field;
use flows::group::{Bucket, Group, GroupTable, GroupType, SelectField, Selection, SelectionMethod};
use flows::key::{FlowKey, KEY_WORDS, VLAN_CFI};
use flows::mac_learning::MacLearning;
use flows::table::{FlowMod, FlowModCommand, Pipeline};
use flows::xlate::{BridgePort, BridgePorts, VlanMode, XlateCtx, translate};
use proptest::prelude::*;

const N_PORTS: u32 = 4;

fn mac(n: u8) -> [u8; 6] {
    [0, 0, 0, 0, 0, n]
}

/// Small value domains so that random rules and packets collide often.
fn match_strategy() -> impl Strategy<Value = Match> {
    (
        proptest::option::of(1u32..=N_PORTS),
        prop_oneof![Just(None), Just(Some(0x0800u16)), Just(Some(0x0806u16))],
        proptest::option::of(prop_oneof![Just(6u8), Just(17u8)]),
        proptest::option::of((0u32..4, 30u32..=32)),
        proptest::option::of(prop_oneof![Just(80u16), Just(443u16)]),
        proptest::option::of(prop_oneof![
            Just(0u16),
            Just(VLAN_CFI | 10),
            Just(VLAN_CFI | 20)
        ]),
        proptest::option::of(1u8..4),
        proptest::option::of(0u32..3),
    )
        .prop_map(|(in_port, dl_type, proto, dst, tp, vlan, src, reg)| {
            let mut m = Match::default();
            let mut put = |f: Field, v: u128, mask: u128| {
                f.set_masked(&mut m.key, v, mask);
                f.set_mask_bits(&mut m.mask, mask);
            };
            if let Some(p) = in_port {
                put(Field::InPort, p.into(), u128::MAX);
            }
            if let Some(t) = dl_type {
                put(Field::DlType, t.into(), u128::MAX);
                if t == 0x0800 {
                    if let Some((d, plen)) = dst {
                        let mask = (u32::MAX << (32 - plen)) as u128;
                        put(Field::NwDst, (0x0a00_0000 | d).into(), mask);
                    }
                    if let Some(p) = proto {
                        put(Field::NwProto, p.into(), u128::MAX);
                        if let Some(tp) = tp {
                            put(Field::TpDst, tp.into(), u128::MAX);
                        }
                    }
                }
            }
            if let Some(v) = vlan {
                put(Field::VlanTci, v.into(), 0x1fff);
            }
            if let Some(s) = src {
                put(Field::DlSrc, u128::from(s), u128::MAX);
            }
            if let Some(r) = reg {
                put(Field::Reg(0), r.into(), u128::MAX);
            }
            m
        })
}

fn out_port() -> impl Strategy<Value = PortNo> {
    prop_oneof![
        4 => 1u32..=N_PORTS,
        1 => Just(port::NORMAL),
        1 => Just(port::FLOOD),
        1 => Just(port::ALL),
        1 => Just(port::IN_PORT),
    ]
}

fn sf(field: Field, ofs: u8, n_bits: u8) -> SubField {
    SubField { field, ofs, n_bits }
}

fn hash_fields() -> impl Strategy<Value = HashFields> {
    proptest::sample::select(HashFields::ALL.to_vec())
}

/// The Nicira extension actions (no nesting).
fn nx_action_strategy() -> impl Strategy<Value = Action> {
    let reg0 = sf(Field::Reg(0), 0, 32);
    prop_oneof![
        1 => Just(Action::StackPush(sf(Field::TpDst, 0, 2))),
        1 => Just(Action::StackPush(sf(Field::Reg(0), 0, 32))),
        1 => Just(Action::StackPop(reg0)),
        1 => Just(Action::StackPop(sf(Field::NwDst, 0, 8))),
        1 => Just(Action::OutputReg { src: sf(Field::Reg(0), 0, 16), max_len: u16::MAX }),
        1 => Just(Action::OutputReg { src: sf(Field::InPort, 0, 16), max_len: u16::MAX }),
        1 => (1u16..200).prop_map(|l| Action::CheckPktLarger {
            pkt_len: l,
            dst: sf(Field::Reg(0), 1, 1),
        }),
        1 => Just(Action::Exit),
        1 => Just(Action::Note(vec![1, 2, 3])),
        1 => Just(Action::CtClear),
        1 => (0u32..3).prop_map(Action::SetQueue),
        1 => (1u32..=N_PORTS).prop_map(|p| Action::Enqueue { port: p, queue: 1 }),
        1 => Just(Action::FinTimeout { idle: 1, hard: 2 }),
        1 => Just(Action::DecTtlIds(vec![1, 2])),
        1 => any::<bool>().prop_map(|pause| Action::ControllerEx(Box::new(ControllerSpec {
            max_len: 64,
            reason: PacketInReason::NoMatch,
            userdata: vec![1],
            pause,
            ..ControllerSpec::default()
        }))),
        1 => (hash_fields(), 0u16..3, 0usize..4, 1u32..=4, 0u32..3).prop_map(
            |(fields, basis, alg, n_links, arg)| Action::Multipath(Box::new(Multipath {
                fields,
                basis,
                algorithm: [
                    MultipathAlgorithm::ModuloN,
                    MultipathAlgorithm::HashThreshold,
                    MultipathAlgorithm::Hrw,
                    MultipathAlgorithm::IterHash,
                ][alg],
                n_links,
                arg,
                dst: sf(Field::Reg(0), 0, 2),
            }))
        ),
        2 => (
            hash_fields(),
            any::<bool>(),
            proptest::collection::vec(1u32..=N_PORTS, 0..4),
            any::<bool>(),
        )
            .prop_map(|(fields, hrw, members, load)| Action::Bundle(Box::new(Bundle {
                fields,
                basis: 7,
                algorithm: if hrw { BundleAlgorithm::Hrw } else { BundleAlgorithm::ActiveBackup },
                members,
                dst: load.then_some(sf(Field::Reg(0), 0, 16)),
            }))),
        2 => (1u8..3, any::<bool>()).prop_map(|(table, timeout)| Action::Learn(Box::new(Learn {
            table,
            idle_timeout: if timeout { 10 } else { 0 },
            specs: vec![
                LearnSpec::Match {
                    src: LearnSrc::Field(sf(Field::DlSrc, 0, 48)),
                    dst: sf(Field::DlDst, 0, 48),
                },
                LearnSpec::Match {
                    src: LearnSrc::Imm(0x0800),
                    dst: sf(Field::DlType, 0, 16),
                },
                LearnSpec::Load {
                    src: LearnSrc::Field(sf(Field::NwDst, 0, 8)),
                    dst: sf(Field::Reg(1), 0, 8),
                },
                LearnSpec::Output { src: sf(Field::InPort, 0, 16) },
            ],
            ..Learn::default()
        }))),
        1 => proptest::option::of(1u8..3).prop_map(|table| Action::Ct(Box::new(Ct {
            flags: 1,
            zone_src: None,
            zone_imm: 3,
            table,
            alg: 0,
            actions: vec![],
        }))),
    ]
}

fn action_strategy() -> impl Strategy<Value = Action> {
    prop_oneof![
        10 => leaf_action_strategy(),
        5 => nx_action_strategy(),
        2 => proptest::collection::vec(
            prop_oneof![3 => leaf_action_strategy(), 1 => nx_action_strategy()],
            0..4,
        )
        .prop_map(Action::Clone),
        // What an action wrote to reg0, made visible at once.
        3 => nx_action_strategy().prop_map(|a| Action::Clone(vec![
            a,
            Action::OutputReg { src: sf(Field::Reg(0), 0, 16), max_len: u16::MAX },
        ])),
    ]
}

fn leaf_action_strategy() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => out_port().prop_map(|p| Action::Output { port: p, max_len: 0 }),
        1 => (1u16..30).prop_map(Action::SetVlanVid),
        1 => Just(Action::StripVlan),
        1 => Just(Action::PushVlan(0x8100)),
        1 => Just(Action::PushMpls(0x8847)),
        1 => Just(Action::PopMpls(0x0800)),
        1 => Just(Action::DecMplsTtl),
        1 => (0u32..4).prop_map(|d| Action::SetNwDst(0x0a00_0000 | d)),
        1 => prop_oneof![Just(80u16), Just(8080u16)].prop_map(Action::SetTpDst),
        1 => (1u8..4).prop_map(|s| Action::SetDlSrc(mac(s))),
        1 => (1u8..4).prop_map(|s| Action::SetDlDst(mac(s))),
        1 => Just(Action::DecTtl),
        1 => (0u32..3).prop_map(|v| Action::Load {
            dst: SubField { field: Field::Reg(0), ofs: 0, n_bits: 32 },
            value: v.into(),
        }),
        1 => Just(Action::Move {
            src: SubField { field: Field::TpDst, ofs: 0, n_bits: 2 },
            dst: SubField { field: Field::Reg(0), ofs: 0, n_bits: 2 },
        }),
        1 => Just(Action::Move {
            src: SubField { field: Field::NwSrc, ofs: 0, n_bits: 8 },
            dst: SubField { field: Field::NwDst, ofs: 0, n_bits: 8 },
        }),
        1 => Just(Action::SetField { field: Field::VlanVid, value: 0x1005, mask: None }),
        1 => (proptest::option::of(1u32..=N_PORTS), 0u8..3)
            .prop_map(|(p, t)| Action::Resubmit { port: p, table: Some(t), ct: false }),
        1 => (1u32..=3).prop_map(Action::Group),
        1 => (any::<u64>()).prop_map(|_| Action::Controller { max_len: 64 }),
    ]
}

fn rule_actions(table: u8) -> impl Strategy<Value = Vec<Action>> {
    (
        proptest::collection::vec(action_strategy(), 0..4),
        proptest::option::of(proptest::collection::vec(action_strategy(), 1..3)),
        any::<bool>(),
    )
        .prop_map(move |(mut acts, write, goto)| {
            if let Some(w) = write {
                // Only plain actions belong in an action set.
                acts.push(Action::WriteActions(
                    w.into_iter()
                        .filter(|a| !matches!(a, Action::Resubmit { .. }))
                        .collect(),
                ));
            }
            if goto && table < 2 {
                acts.push(Action::GotoTable(table + 1));
            }
            acts
        })
}

#[derive(Debug, Clone)]
struct RuleSpec {
    table: u8,
    priority: u32,
    m: Match,
    actions: Vec<Action>,
}

fn rule_strategy() -> impl Strategy<Value = RuleSpec> {
    let plain = (0u8..3, 0u32..5).prop_flat_map(|(table, priority)| {
        (match_strategy(), rule_actions(table)).prop_map(move |(m, actions)| RuleSpec {
            table,
            priority,
            m,
            actions,
        })
    });
    // One clause of a two-dimension conjunctive match; in table 0 at high
    // priority so that complete conjunctions are common.
    let clause = (Just(0u8), 4u32..6, match_strategy(), 1u32..=1, 1u8..=2).prop_map(
        |(table, priority, m, id, clause)| RuleSpec {
            table,
            priority,
            m,
            actions: vec![Action::Conjunction {
                id,
                clause,
                n_clauses: 2,
            }],
        },
    );
    // The flow a completed conjunction leads to (conj_id and little else,
    // so that completed conjunctions usually find one).
    let conj_flow = (Just(0u8), 0u32..5).prop_flat_map(|(table, priority)| {
        (
            proptest::option::of(1u32..=N_PORTS),
            1u32..=1,
            rule_actions(table),
        )
            .prop_map(move |(in_port, id, actions)| {
                let mut m = Match::default();
                if let Some(p) = in_port {
                    Field::InPort.set(&mut m.key, p.into());
                    Field::InPort.unwildcard(&mut m.mask);
                }
                Field::ConjId.set(&mut m.key, id.into());
                Field::ConjId.unwildcard(&mut m.mask);
                RuleSpec {
                    table,
                    priority,
                    m,
                    actions,
                }
            })
    });
    prop_oneof![5 => plain, 4 => clause, 3 => conj_flow]
}

fn vlan_mode() -> impl Strategy<Value = VlanMode> {
    prop_oneof![
        Just(VlanMode::Trunk { trunks: vec![] }),
        prop_oneof![Just(10u16), Just(20u16)].prop_map(|tag| VlanMode::Access { tag }),
        Just(VlanMode::Trunk {
            trunks: vec![10, 20]
        }),
        Just(VlanMode::NativeUntagged {
            tag: 10,
            trunks: vec![20]
        }),
        Just(VlanMode::NativeTagged {
            tag: 20,
            trunks: vec![]
        }),
    ]
}

#[derive(Debug, Clone)]
struct World {
    rules: Vec<RuleSpec>,
    vlans: Vec<VlanMode>,
    no_flood: Vec<bool>,
    down: Vec<bool>,
    macs: Vec<(u16, u8, PortNo)>,
    group_kinds: Vec<GroupType>,
}

fn world() -> impl Strategy<Value = World> {
    (
        proptest::collection::vec(rule_strategy(), 0..10),
        proptest::collection::vec(vlan_mode(), N_PORTS as usize),
        proptest::collection::vec(proptest::bool::weighted(0.2), N_PORTS as usize),
        proptest::collection::vec(proptest::bool::weighted(0.3), N_PORTS as usize),
        proptest::collection::vec(
            (
                prop_oneof![Just(0u16), Just(10u16), Just(20u16)],
                1u8..4,
                1u32..=N_PORTS,
            ),
            0..6,
        ),
        proptest::collection::vec(
            prop_oneof![
                Just(GroupType::All),
                Just(GroupType::Select),
                Just(GroupType::Indirect),
                Just(GroupType::FastFailover)
            ],
            3,
        ),
    )
        .prop_map(|(rules, vlans, no_flood, down, macs, group_kinds)| World {
            rules,
            vlans,
            no_flood,
            down,
            macs,
            group_kinds,
        })
}

struct Built {
    pipeline: Pipeline,
    groups: GroupTable,
    ports: BridgePorts,
    mac: MacLearning,
}

fn build(w: &World) -> Built {
    let mut pipeline = Pipeline::new();
    for r in &w.rules {
        let mut fm = FlowMod::new(FlowModCommand::Add);
        fm.table_id = r.table;
        fm.priority = r.priority;
        fm.m = r.m;
        // OVS refuses set_field/load/move on fields whose prerequisites the
        // match lacks (OFPBAC_MATCH_INCONSISTENT), following the packet
        // through the list (after push_mpls an IP field is gone): keep, in
        // order, only the actions such a flow may carry after those kept.
        let mut kept: Vec<Action> = Vec::new();
        for a in &r.actions {
            let a = match a {
                Action::WriteActions(w) => Action::WriteActions(
                    w.iter()
                        .filter(|x| {
                            flows::table::check_action_prereqs(&r.m, std::slice::from_ref(x))
                                .is_ok()
                        })
                        .cloned()
                        .collect(),
                ),
                other => other.clone(),
            };
            kept.push(a);
            if flows::table::check_action_prereqs(&r.m, &kept).is_err() {
                kept.pop();
            }
        }
        fm.actions = kept;
        pipeline
            .flow_mod(&fm, 0)
            .expect("generated rules are valid");
    }
    let mut ports = BridgePorts::new();
    for p in 1..=N_PORTS {
        let i = (p - 1) as usize;
        let mut bp = BridgePort::new(p, 100 + p);
        bp.vlan = w.vlans[i].clone();
        bp.flood = !w.no_flood[i];
        bp.up = !w.down[i];
        ports.insert(bp);
    }
    let mut groups = GroupTable::new();
    for (i, kind) in w.group_kinds.iter().enumerate() {
        let id = i as u32 + 1;
        let mut buckets = Vec::new();
        for p in 1..=N_PORTS.min(if *kind == GroupType::Indirect { 1 } else { 3 }) {
            let mut b = Bucket::new(vec![
                Action::SetTpDst(1000 + p as u16),
                Action::Output {
                    port: p + 1,
                    max_len: 0,
                },
            ]);
            b.watch_port = p + 1;
            buckets.push(b);
        }
        // Every other select group hashes a masked source address and the
        // TCP destination port only (`selection_method=hash`).
        let selection = if *kind == GroupType::Select && id.is_multiple_of(2) {
            let field = |name: &str, mask: u128| SelectField {
                wire: flows::field::wire_rows(name).next().expect("a wire field"),
                mask,
            };
            let mut s = Selection {
                method: SelectionMethod::Hash,
                param: u64::from(id),
                fields: vec![field("tcp_dst", 0xffff), field("ipv4_src", 0xffff_ff00)],
            };
            s.normalize();
            s
        } else {
            Selection::default()
        };
        groups
            .add(Group {
                id,
                kind: *kind,
                buckets,
                selection,
            })
            .expect("valid group");
    }
    let mut mac = MacLearning::default();
    for (vlan, m, p) in &w.macs {
        mac.learn(*vlan, self::mac(*m), *p, 0);
    }
    Built {
        pipeline,
        groups,
        ports,
        mac,
    }
}

fn packet() -> impl Strategy<Value = FlowKey> {
    (
        1u32..=N_PORTS,
        prop_oneof![Just(0x0800u16), Just(0x0806u16), Just(0x86ddu16)],
        prop_oneof![Just(6u8), Just(17u8), Just(1u8)],
        0u32..4,
        prop_oneof![Just(80u16), Just(443u16), Just(22u16)],
        prop_oneof![
            Just(0u16),
            Just(VLAN_CFI | 10),
            Just(VLAN_CFI | 20),
            Just(VLAN_CFI | 30),
            Just(0xa000 | VLAN_CFI | 10)
        ],
        (1u8..4, prop_oneof![Just(1u8), Just(2), Just(3), Just(0xff)]),
        0u8..4,
    )
        .prop_map(
            |(in_port, dl_type, proto, dst, tp_dst, vlan, (s, d), ttl)| FlowKey {
                in_port,
                dl_type,
                nw_proto: proto,
                nw_src: 0x0a00_0100 | u32::from(s),
                nw_dst: 0x0a00_0000 | dst,
                tp_src: 5000,
                tp_dst,
                vlan_tci: vlan,
                dl_src: mac(s),
                dl_dst: if d == 0xff { [0xff; 6] } else { mac(d) },
                nw_ttl: ttl,
                ..FlowKey::default()
            },
        )
}

/// `p` with every bit outside `wc` replaced by `noise`.
fn perturb(p: &FlowKey, wc: &FlowKey, noise: &[u64; KEY_WORDS]) -> FlowKey {
    let mut out = *p;
    for ((o, m), n) in out.words_mut().iter_mut().zip(wc.words()).zip(noise) {
        *o = (*o & m) | (n & !m);
    }
    out.pad0 = 0;
    out.pad1 = 0;
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn packets_agreeing_on_the_megaflow_get_identical_actions(
        w in world(),
        p in packet(),
        noises in proptest::collection::vec(any::<[u64; KEY_WORDS]>(), 4),
        small_noise in proptest::collection::vec(packet(), 4),
    ) {
        let b = build(&w);
        let ctx = XlateCtx {
            pipeline: &b.pipeline,
            groups: &b.groups,
            ports: &b.ports,
            mac: &b.mac,
            now_ms: 1000,
            dp: None,
            patch: None,
        };
        let r = translate(&ctx, &p);
        prop_assert!(p.eq_masked(&p.masked(&r.wc), &r.wc));
        // Random noise anywhere outside the mask, and realistic noise (another
        // packet from the same small domains) outside the mask.
        let others = noises
            .iter()
            .map(|n| perturb(&p, &r.wc, n))
            .chain(small_noise.iter().map(|q| perturb(&p, &r.wc, q.words())));
        for q in others {
            let rq = translate(&ctx, &q);
            prop_assert_eq!(&rq.actions, &r.actions, "p={:?}\nq={:?}\nwc={:?}", p, q, r.wc);
            prop_assert_eq!(rq.cacheable, r.cacheable);
            if r.cacheable {
                // A cached megaflow skips re-learning: only an identical
                // learned flow makes that invisible.
                prop_assert_eq!(&rq.learned_flows, &r.learned_flows);
            }
        }
    }
}
