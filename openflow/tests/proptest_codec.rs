//! Property tests: the decoder never panics, and flow mods, group mods,
//! meter mods and packet-outs round-trip.

use flows::key::{FlowKey, ethertype};
use flows::{Action, Field, Match, SubField};
use openflow::consts::{
    NO_BUFFER, OFP10_VERSION, OFP13_VERSION, OFP14_VERSION, OFP15_VERSION, OFPG_ANY,
};
use openflow::*;
use proptest::prelude::*;

fn prefix(bits: u32) -> u32 {
    if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    }
}

fn arb_match() -> impl Strategy<Value = Match> {
    (
        any::<(bool, u8)>(),
        any::<(u32, u32, u8)>(),
        0u8..4,
        any::<(u32, u32)>(),
        (0u32..=32, 0u32..=32),
        any::<(u16, u16, u64, u64)>(),
        0u8..4,
        any::<[u8; 6]>(),
        (any::<u16>(), any::<u64>(), any::<u64>()),
    )
        .prop_map(
            |(
                (has_port, port),
                (a, b, reg),
                l3,
                (src, dst),
                (sb, db),
                (tps, tpd, md, mm),
                l4,
                mac,
                (nx, nv, nm),
            )| {
                let mut k = FlowKey::default();
                let mut m = FlowKey::default();
                // Nicira fields (registers 0..15, tunnel, conntrack, marks),
                // each present or not by one bit of `nx`.
                let nicira = [
                    Field::Reg(8 + (nx >> 12) as u8 % 8),
                    Field::TunId,
                    Field::TunSrc,
                    Field::TunIpv6Dst,
                    Field::TunFlags,
                    Field::TunGbpId,
                    Field::PktMark,
                    Field::DpHash,
                    Field::CtState,
                    Field::CtZone,
                    Field::CtMark,
                    Field::CtLabel,
                ];
                for (i, f) in nicira.iter().enumerate() {
                    if nx & (1 << i) != 0 {
                        let v = u128::from(nv) << 64 | u128::from(nv.rotate_left(i as u32));
                        let mask = if f.maskable() {
                            u128::from(nm) << 64 | u128::from(nm.rotate_left(i as u32))
                        } else {
                            u128::MAX
                        } & f.max_value();
                        f.set(&mut m, mask);
                        f.set(&mut k, v & mask);
                    }
                }
                if has_port {
                    k.in_port = u32::from(port) + 1;
                    m.in_port = u32::MAX;
                }
                if reg % 3 == 0 {
                    let i = usize::from(reg % 8);
                    k.regs[i] = a;
                    m.regs[i] = b;
                }
                if reg % 5 == 0 {
                    k.metadata = md;
                    m.metadata = mm;
                }
                if reg % 2 == 0 {
                    k.dl_dst = mac;
                    m.dl_dst = [0xff, 0xff, 0xff, 0, 0, 0];
                }
                match l3 {
                    1 => {
                        k.dl_type = ethertype::IPV4;
                        m.dl_type = 0xffff;
                        k.nw_src = src;
                        m.nw_src = prefix(sb);
                        k.nw_dst = dst;
                        m.nw_dst = prefix(db);
                        let proto = [6u8, 17, 132, 1][usize::from(l4)];
                        k.nw_proto = proto;
                        m.nw_proto = 0xff;
                        k.tp_src = if proto == 1 { tps & 0xff } else { tps };
                        m.tp_src = if proto == 1 { 0xff } else { 0xffff };
                        k.tp_dst = if proto == 1 { tpd & 0xff } else { tpd };
                        m.tp_dst = if proto == 1 { 0xff } else { 0xffff };
                    }
                    2 => {
                        k.dl_type = ethertype::IPV6;
                        m.dl_type = 0xffff;
                        k.ipv6_src = md.to_be_bytes().repeat(2).try_into().unwrap();
                        m.ipv6_src = [0xff; 16];
                        k.ipv6_label = src & 0xfffff;
                        m.ipv6_label = 0xfffff;
                    }
                    3 => {
                        k.dl_type = ethertype::ARP;
                        m.dl_type = 0xffff;
                        k.nw_proto = 1;
                        m.nw_proto = 0xff;
                        k.nw_src = src;
                        m.nw_src = prefix(sb);
                        k.arp_sha = mac;
                        m.arp_sha = [0xff; 6];
                    }
                    _ => {}
                }
                Match::new(k, m)
            },
        )
}

/// Round trip of `msg` in `v`. In 1.3 and 1.4 the decoded message equals
/// `msg`. OpenFlow 1.5 has no NXAST_REG_LOAD (OVS accepts it only up to
/// 1.4), so a `load` travels as a set_field and comes back as one: there
/// the decoded message must encode to the very same bytes.
fn round_trips(msg: &Message, v: u8, xid: u32) -> Result<(), TestCaseError> {
    let b = encode(msg, v, xid).unwrap();
    let back = decode(&b).unwrap().1;
    if v == OFP15_VERSION {
        prop_assert_eq!(encode(&back, v, xid).unwrap(), b, "version {}", v);
    } else {
        prop_assert_eq!(&back, msg, "version {}", v);
    }
    Ok(())
}

/// `Vec::retain`, also inside `clone(...)`.
fn retain_deep(actions: &mut Vec<Action>, keep: &dyn Fn(&Action) -> bool) {
    actions.retain(keep);
    for a in actions {
        if let Action::Clone(inner) = a {
            retain_deep(inner, keep);
        }
    }
}

fn reg_sf(r: u8, ofs: u8, n_bits: u8) -> SubField {
    SubField {
        field: Field::Reg(r),
        ofs,
        n_bits,
    }
}

/// Nicira extension actions (flat ones).
fn arb_nx_simple() -> impl Strategy<Value = Action> {
    use flows::action::{ControllerSpec, PacketInReason};
    prop_oneof![
        (
            proptest::option::of(1u32..0xff00),
            proptest::option::of(0u8..255)
        )
            .prop_map(|(port, table)| Action::Resubmit {
                port,
                table,
                ct: true
            }),
        (
            any::<u16>(),
            any::<u16>(),
            0u8..6,
            proptest::collection::vec(any::<u8>(), 0..9),
            any::<bool>(),
            any::<u32>()
        )
            .prop_map(|(max_len, controller_id, r, userdata, pause, meter_id)| {
                ControllerSpec {
                    max_len,
                    controller_id,
                    reason: PacketInReason::from_wire(r).unwrap(),
                    userdata,
                    pause,
                    meter_id,
                }
                .into_action()
            }),
        proptest::collection::vec(any::<u16>(), 0..5).prop_map(Action::DecTtlIds),
        (0u8..8, 0u8..16, 1u8..17).prop_map(|(r, o, n)| Action::StackPush(reg_sf(r, o, n))),
        (0u8..8, 0u8..16, 1u8..17).prop_map(|(r, o, n)| Action::StackPop(reg_sf(r, o, n))),
        (0u8..8, 0u8..16, 1u8..17, any::<u16>()).prop_map(|(r, o, n, m)| Action::OutputReg {
            src: reg_sf(r, o, n),
            max_len: m
        }),
        any::<[u8; 6]>().prop_map(|b| Action::Note(b.to_vec())),
        Just(Action::Exit),
        Just(Action::CtClear),
        (any::<u32>(), any::<u16>(), any::<u16>()).prop_map(|(q, i, h)| if q % 2 == 0 {
            Action::SetQueue(q)
        } else {
            Action::FinTimeout { idle: i, hard: h }
        }),
    ]
}

/// Nicira extension actions with structured arguments.
fn arb_nx_struct() -> impl Strategy<Value = Action> {
    use flows::action::{
        Bundle, BundleAlgorithm, Ct, HashFields, Learn, LearnSpec, LearnSrc, Multipath,
        MultipathAlgorithm, Nat, NatRange,
    };
    prop_oneof![
        (
            0u16..7,
            any::<u16>(),
            0u16..4,
            1u32..=16,
            any::<u32>(),
            0u8..8
        )
            .prop_map(
                |(f, basis, alg, n_links, arg, r)| Action::Multipath(Box::new(Multipath {
                    fields: HashFields::from_wire(f).unwrap(),
                    basis,
                    algorithm: MultipathAlgorithm::from_wire(alg).unwrap(),
                    n_links,
                    arg,
                    dst: reg_sf(r, 0, 4),
                }))
            ),
        (
            0u16..7,
            any::<u16>(),
            any::<bool>(),
            proptest::collection::vec(1u32..0xff00, 0..5),
            proptest::option::of(0u8..8)
        )
            .prop_map(
                |(f, basis, hrw, members, dst)| Action::Bundle(Box::new(Bundle {
                    fields: HashFields::from_wire(f).unwrap(),
                    basis,
                    algorithm: if hrw {
                        BundleAlgorithm::Hrw
                    } else {
                        BundleAlgorithm::ActiveBackup
                    },
                    members,
                    dst: dst.map(|r| reg_sf(r, 0, 16)),
                }))
            ),
        (
            0u8..255,
            any::<(u16, u16, u16, u16, u16)>(),
            any::<u64>(),
            0u16..4,
            0u32..4,
            any::<u32>(),
            0u8..8
        )
            .prop_map(
                |(table, (idle, hard, fi, fh, prio), cookie, flags, limit, imm, r)| {
                    let result_dst = (limit % 2 == 1).then(|| reg_sf(r, 3, 1));
                    Action::Learn(Box::new(Learn {
                        table,
                        idle_timeout: idle,
                        hard_timeout: hard,
                        fin_idle_timeout: fi,
                        fin_hard_timeout: fh,
                        priority: prio,
                        cookie,
                        flags: flags | if result_dst.is_some() { 4 } else { 0 },
                        limit,
                        result_dst,
                        specs: vec![
                            LearnSpec::Match {
                                src: LearnSrc::Field(reg_sf(r, 0, 8)),
                                dst: reg_sf(1, 8, 8),
                            },
                            LearnSpec::Match {
                                src: LearnSrc::Imm(u128::from(imm)),
                                dst: reg_sf(2, 0, 32),
                            },
                            LearnSpec::Load {
                                src: LearnSrc::Imm(u128::from(imm & 0x1f)),
                                dst: reg_sf(3, 2, 5),
                            },
                            LearnSpec::Load {
                                src: LearnSrc::Field(reg_sf(4, 0, 16)),
                                dst: reg_sf(5, 16, 16),
                            },
                            LearnSpec::Output {
                                src: reg_sf(6, 0, 16),
                            },
                        ],
                    }))
                }
            ),
        (1u16..2000, 0u8..8, 0u8..32).prop_map(|(l, r, b)| Action::CheckPktLarger {
            pkt_len: l,
            dst: reg_sf(r, b, 1),
        }),
        (
            0u16..4,
            proptest::option::of(0u8..8),
            any::<u16>(),
            proptest::option::of(0u8..255),
            prop_oneof![Just(0u16), Just(21), Just(69)],
            any::<bool>(),
            (
                1u32..,
                proptest::option::of(1u32..),
                proptest::option::of(1u16..),
                proptest::option::of(1u16..)
            ),
            0u16..32
        )
            .prop_map(
                |(flags, zreg, zimm, table, alg, v6, (min, max, pmin, pmax), nflags)| {
                    let range = if v6 {
                        NatRange::V6 {
                            min: u128::from(min) << 64,
                            max: max.map(|m| u128::from(m) << 64),
                        }
                    } else {
                        NatRange::V4 { min, max }
                    };
                    let nat = Nat {
                        flags: (nflags & !3) | 1,
                        range: Some(range),
                        proto_min: pmin,
                        proto_max: pmin.and(pmax),
                    };
                    Action::Ct(Box::new(Ct {
                        flags,
                        zone_src: zreg.map(|r| reg_sf(r, 0, 16)),
                        zone_imm: if zreg.is_some() { 0 } else { zimm },
                        table,
                        alg,
                        actions: vec![
                            Action::Nat(Box::new(nat)),
                            Action::Load {
                                dst: reg_sf(1, 0, 32),
                                value: 7,
                            },
                        ],
                    }))
                }
            ),
    ]
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        8 => arb_plain_action(),
        3 => arb_nx_simple(),
        2 => arb_nx_struct(),
        1 => proptest::collection::vec(prop_oneof![arb_plain_action(), arb_nx_simple()], 0..3)
            .prop_map(Action::Clone),
    ]
}

fn arb_plain_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (1u32..0xff00, any::<u16>()).prop_map(|(p, _)| Action::Output {
            port: p,
            max_len: 0
        }),
        any::<u16>().prop_map(|l| Action::Controller { max_len: l }),
        Just(Action::PopVlan),
        Just(Action::DecTtl),
        prop_oneof![Just(0x8847u16), Just(0x8848u16)].prop_map(Action::PushMpls),
        any::<u16>().prop_map(Action::PopMpls),
        any::<u8>().prop_map(Action::SetMplsTtl),
        Just(Action::DecMplsTtl),
        any::<u32>().prop_map(Action::Group),
        (0u8..8, any::<u32>()).prop_map(|(r, v)| Action::SetField {
            field: Field::Reg(r),
            value: u128::from(v),
            mask: None
        }),
        (0u8..8, 0u8..16, 1u8..16, any::<u16>()).prop_map(|(r, ofs, n, v)| Action::Load {
            dst: SubField {
                field: Field::Reg(r),
                ofs,
                n_bits: n
            },
            value: u128::from(v) & ((1u128 << n) - 1)
        }),
        (0u8..8, 0u8..8).prop_map(|(a, b)| Action::Move {
            src: SubField {
                field: Field::Reg(a),
                ofs: 0,
                n_bits: 32
            },
            dst: SubField {
                field: Field::Reg(b),
                ofs: 0,
                n_bits: 32
            }
        }),
        (
            proptest::option::of(1u32..0xff00),
            proptest::option::of(0u8..255)
        )
            .prop_map(|(port, table)| Action::Resubmit {
                port,
                table,
                ct: false
            }),
        (any::<u32>(), 2u8..=64, any::<u8>()).prop_map(|(id, n, k)| Action::Conjunction {
            id,
            clause: k % n + 1,
            n_clauses: n
        }),
        (
            prop_oneof![
                Just(Field::TunId),
                Just(Field::TunDst),
                Just(Field::PktMark),
                Just(Field::Reg(13)),
                Just(Field::XReg(5)),
                Just(Field::TunGbpFlags),
            ],
            any::<u64>()
        )
            .prop_map(|(field, v)| Action::SetField {
                field,
                value: u128::from(v) & field.max_value(),
                mask: None
            }),
        (0u8..16, 0u8..32).prop_map(|(r, ofs)| Action::Move {
            src: SubField {
                field: Field::CtLabel,
                ofs,
                n_bits: 32
            },
            dst: SubField {
                field: Field::Reg(r),
                ofs: 0,
                n_bits: 32
            }
        }),
    ]
}

fn arb_flow_mod() -> impl Strategy<Value = FlowModMsg> {
    (
        arb_match(),
        proptest::collection::vec(arb_action(), 0..6),
        any::<(u16, u64, u8, u16, u16)>(),
        proptest::option::of(1u8..254),
        proptest::option::of(1u32..0xffff_0000),
    )
        .prop_map(
            |(m, actions, (prio, cookie, table, idle, hard), goto, meter)| {
                let mut actions = actions;
                if let Some(t) = goto {
                    actions.push(Action::GotoTable(t));
                }
                if let Some(id) = meter {
                    actions.insert(0, Action::Meter(id));
                }
                FlowModMsg {
                    flow_mod: FlowMod {
                        tun_metadata: Vec::new(),
                        command: FlowModCommand::Add,
                        m,
                        priority: u32::from(prio),
                        cookie,
                        cookie_mask: 0,
                        table_id: table % 254,
                        idle_timeout: idle,
                        hard_timeout: hard,
                        flags: FlowFlags {
                            send_flow_rem: true,
                            ..FlowFlags::default()
                        },
                        out_port: flows::action::port::ANY,
                        out_group: OFPG_ANY,
                        actions,
                    },
                    buffer_id: NO_BUFFER,
                    importance: 0,
                }
            },
        )
}

fn arb_meter_mod() -> impl Strategy<Value = MeterMod> {
    let band = (
        any::<u32>(),
        any::<u32>(),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(|(rate, burst_size, prec)| MeterBand {
            kind: match prec {
                Some(prec_level) => BandType::DscpRemark { prec_level },
                None => BandType::Drop,
            },
            rate,
            burst_size,
        });
    (
        prop_oneof![
            Just(MeterModCommand::Add),
            Just(MeterModCommand::Modify),
            Just(MeterModCommand::Delete)
        ],
        0u16..16,
        any::<u32>(),
        proptest::collection::vec(band, 0..9),
    )
        .prop_map(|(command, flags, id, bands)| MeterMod {
            command,
            meter: Meter {
                id,
                flags: MeterFlags(flags),
                bands,
            },
        })
}

fn arb_group_mod() -> impl Strategy<Value = GroupMod> {
    let bucket = (
        any::<u16>(),
        proptest::option::of(1u32..0xff00),
        proptest::option::of(0u32..0xffff_ff00),
        proptest::collection::vec(arb_action(), 0..4),
    )
        .prop_map(|(weight, port, group, actions)| Bucket {
            weight,
            watch_port: port.unwrap_or(flows::action::port::ANY),
            watch_group: group.unwrap_or(OFPG_ANY),
            actions,
        });
    (
        prop_oneof![
            Just(GroupModCommand::Add),
            Just(GroupModCommand::Modify),
            Just(GroupModCommand::Delete)
        ],
        prop_oneof![
            Just(GroupType::All),
            Just(GroupType::Select),
            Just(GroupType::Indirect),
            Just(GroupType::FastFailover)
        ],
        any::<u32>(),
        proptest::collection::vec(bucket, 0..4),
    )
        .prop_map(|(command, kind, id, buckets)| GroupMod {
            command,
            group: Group {
                id,
                kind,
                buckets,
                selection: Default::default(),
            },
        })
}

/// A select group's selection method as Open vSwitch's 1.5 property
/// carries it: a method, a parameter and (for `hash`) masked fields.
fn arb_selection() -> impl Strategy<Value = flows::group::Selection> {
    use flows::group::{SelectField, Selection, SelectionMethod};
    const NAMES: [&str; 11] = [
        "eth_src", "eth_dst", "ipv4_src", "ipv4_dst", "ip_proto", "tcp_src", "udp_dst", "ipv6_src",
        "reg3", "tun_id", "metadata",
    ];
    let field = (0..NAMES.len(), any::<u128>(), any::<bool>()).prop_map(|(i, bits, whole)| {
        let wire = flows::field::wire_rows(NAMES[i]).next().unwrap();
        let full = wire.full_mask();
        let mask = if whole || bits & full == 0 {
            full
        } else {
            bits & full
        };
        SelectField { wire, mask }
    });
    (
        prop_oneof![Just(SelectionMethod::Hash), Just(SelectionMethod::DpHash)],
        any::<u64>(),
        proptest::collection::vec(field, 0..5),
    )
        .prop_map(|(method, param, fields)| {
            let mut s = Selection {
                method,
                param,
                fields: if method == SelectionMethod::Hash {
                    fields
                } else {
                    Vec::new()
                },
            };
            s.normalize();
            s
        })
}

proptest! {
    #[test]
    fn random_group_mods_round_trip_from_1_3_to_1_5(gm in arb_group_mod()) {
        let msg = Message::GroupMod(gm);
        for v in [OFP13_VERSION, OFP14_VERSION, OFP15_VERSION] {
            round_trips(&msg, v, 5)?;
        }
    }

    #[test]
    fn random_select_group_selection_methods_round_trip_in_1_5(
        gm in arb_group_mod(),
        sel in arb_selection(),
    ) {
        let mut gm = gm;
        gm.group.kind = GroupType::Select;
        gm.group.selection = sel;
        round_trips(&Message::GroupMod(gm), OFP15_VERSION, 5)?;
    }

    #[test]
    fn random_1_5_packet_outs_with_metadata_round_trip(
        in_port in 1u32..0xff00,
        m in arb_match(),
        actions in proptest::collection::vec(arb_action(), 0..5),
        data in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let (mut key, mut mask) = (m.key, m.mask);
        key.in_port = 0;
        mask.in_port = 0;
        let msg = Message::PacketOut(PacketOut {
            buffer_id: NO_BUFFER,
            in_port,
            metadata: Match::new(key, mask),
            actions,
            data,
        });
        round_trips(&msg, OFP15_VERSION, 6)?;
    }

    #[test]
    fn random_bundle_messages_round_trip_in_1_3_1_4_and_1_5(
        id in any::<u32>(),
        ctrl_type in 0u16..8,
        flags in 0u16..4,
        fm in arb_flow_mod(),
    ) {
        for v in [OFP13_VERSION, OFP14_VERSION, OFP15_VERSION] {
            let ctrl = Message::BundleControl(BundleCtrl { bundle_id: id, ctrl_type, flags });
            let b = encode(&ctrl, v, 9).unwrap();
            prop_assert_eq!(decode(&b).unwrap().1, ctrl);
            let inner = encode(&Message::FlowMod(fm.clone()), v, 9).unwrap();
            let add = Message::BundleAddMessage(BundleAdd { bundle_id: id, flags, message: inner });
            let b = encode(&add, v, 9).unwrap();
            prop_assert_eq!(decode(&b).unwrap().1, add);
        }
    }

    #[test]
    fn random_nicira_messages_round_trip_in_every_version(
        zone in any::<u16>(),
        id in any::<u16>(),
        format in prop_oneof![Just(0u32), Just(2u32)],
        m in arb_match(),
        reason in 0u8..6,
        table_id in any::<u8>(),
        cookie in any::<u64>(),
        data in proptest::collection::vec(any::<u8>(), 1..100),
        userdata in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        continuation in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        masks in proptest::array::uniform6(any::<u32>()),
    ) {
        use openflow::msg::nicira::{NxMsg, PacketIn2};
        let pi = PacketIn2 {
            packet_in: PacketIn {
                buffer_id: NO_BUFFER,
                total_len: data.len() as u16 + u16::from(reason),
                reason,
                table_id,
                cookie,
                match_: m,
                data,
            },
            userdata,
            continuation,
        };
        let async_cfg = AsyncConfig {
            packet_in_mask: [masks[0], masks[1]],
            port_status_mask: [masks[2], masks[3]],
            flow_removed_mask: [masks[4], masks[5]],
        };
        for v in [OFP10_VERSION, OFP13_VERSION, OFP14_VERSION, OFP15_VERSION] {
            for nx in [
                NxMsg::CtFlushZone(zone),
                NxMsg::SetControllerId(id),
                NxMsg::SetPacketInFormat(format),
                NxMsg::SetAsyncConfig(async_cfg),
                NxMsg::PacketIn2(pi.clone()),
                NxMsg::Resume(pi.clone()),
            ] {
                let msg = Message::Nicira(nx);
                let b = encode(&msg, v, 7).unwrap();
                prop_assert_eq!(decode(&b).unwrap().1, msg);
            }
        }
        // 1.4's async configuration travels as properties.
        for v in [OFP14_VERSION, OFP15_VERSION] {
            for msg in [Message::SetAsync(async_cfg), Message::GetAsyncReply(async_cfg)] {
                let b = encode(&msg, v, 7).unwrap();
                prop_assert_eq!(decode(&b).unwrap().1, msg);
            }
        }
    }

    #[test]
    fn random_tlv_table_messages_round_trip_in_every_version(
        command in prop_oneof![
            Just(flows::tlv::TlvCommand::Add),
            Just(flows::tlv::TlvCommand::Delete),
            Just(flows::tlv::TlvCommand::Clear),
        ],
        raw in proptest::collection::vec(
            (any::<u16>(), any::<u8>(), any::<u8>(), any::<u16>()),
            0..10,
        ),
        space in any::<u32>(),
        fields in any::<u16>(),
    ) {
        use openflow::msg::nicira::NxMsg;
        use openflow::msg::tlv::{TlvTableMod, TlvTableReply};
        let mappings: Vec<flows::tlv::TlvMapping> = raw
            .into_iter()
            .map(|(class, type_, len, index)| flows::tlv::TlvMapping { class, type_, len, index })
            .collect();
        for v in [OFP10_VERSION, OFP13_VERSION, OFP14_VERSION, OFP15_VERSION] {
            for nx in [
                NxMsg::TlvTableMod(TlvTableMod { command, mappings: mappings.clone() }),
                NxMsg::TlvTableRequest,
                NxMsg::TlvTableReply(TlvTableReply {
                    max_option_space: space,
                    max_fields: fields,
                    mappings: mappings.clone(),
                }),
            ] {
                let msg = Message::Nicira(nx);
                let b = encode(&msg, v, 7).unwrap();
                prop_assert_eq!(decode(&b).unwrap().1, msg);
            }
        }
    }

    #[test]
    fn random_stats_replies_round_trip_in_1_4_and_1_5(
        m in arb_match(),
        actions in proptest::collection::vec(arb_action(), 0..4),
        counters in proptest::array::uniform12(any::<u64>()),
        small in proptest::array::uniform6(any::<u32>()),
        name in "[a-z0-9]{0,15}",
    ) {
        let fs = FlowStats {
            tun_metadata: Vec::new(),
            table_id: (small[0] % 254) as u8,
            duration_sec: small[1],
            duration_nsec: small[2] % 1_000_000_000,
            priority: small[3] as u16,
            idle_timeout: (small[4] >> 16) as u16,
            hard_timeout: small[4] as u16,
            flags: (small[5] & 0x1f) as u16,
            cookie: counters[0],
            packet_count: counters[1],
            byte_count: counters[2],
            match_: m,
            actions,
        };
        let ps = PortStats {
            port_no: small[0] % 0xff00,
            rx_packets: counters[0], tx_packets: counters[1], rx_bytes: counters[2],
            tx_bytes: counters[3], rx_dropped: counters[4], tx_dropped: counters[5],
            rx_errors: counters[6], tx_errors: counters[7], rx_frame_err: counters[8],
            rx_over_err: counters[9], rx_crc_err: counters[10], collisions: counters[11],
            duration_sec: small[1], duration_nsec: small[2],
        };
        let pd = PortDesc {
            port_no: small[0] % 0xff00,
            hw_addr: [1, 2, 3, 4, 5, 6],
            name,
            config: small[1], state: small[2], curr: small[3], advertised: small[4],
            supported: small[5], peer: small[0], curr_speed: small[1], max_speed: small[2],
        };
        let fr = FlowRemoved {
            cookie: counters[0], priority: small[3] as u16, reason: (small[5] % 4) as u8,
            table_id: (small[0] % 254) as u8, duration_sec: small[1],
            duration_nsec: small[2], idle_timeout: small[4] as u16,
            hard_timeout: (small[4] >> 16) as u16, packet_count: counters[1],
            byte_count: counters[2], match_: m,
        };
        let pm = PortMod {
            port_no: small[0] % 0xff00, hw_addr: [1, 2, 3, 4, 5, 6],
            config: small[1], mask: small[2], advertise: small[3],
        };
        let reply = |body| Message::MultipartReply(MultipartReply { flags: 0, body });
        for v in [OFP14_VERSION, OFP15_VERSION] {
            for msg in [
                reply(MultipartReplyBody::Flow(vec![fs.clone(), fs.clone()])),
                reply(MultipartReplyBody::PortStats(vec![ps.clone()])),
                reply(MultipartReplyBody::PortDesc(vec![pd.clone()])),
                reply(MultipartReplyBody::Aggregate(AggregateStats {
                    packet_count: counters[3], byte_count: counters[4], flow_count: small[1],
                })),
                Message::PortStatus(PortStatus { reason: 2, desc: pd.clone() }),
                Message::FlowRemoved(fr.clone()),
                Message::PortMod(pm.clone()),
            ] {
                round_trips(&msg, v, 8)?;
            }
        }
    }

    #[test]
    fn random_packet_outs_round_trip_in_both_versions(
        in_port in 1u32..0xff00,
        actions in proptest::collection::vec(arb_action(), 0..5),
        data in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let msg = Message::PacketOut(PacketOut { buffer_id: NO_BUFFER, in_port, metadata: Match::catch_all(), actions, data });
        let b = encode(&msg, OFP13_VERSION, 6).unwrap();
        prop_assert_eq!(decode(&b).unwrap().1, msg.clone());
        // 1.0 writes set_field as a Nicira load and pop_vlan as strip_vlan,
        // which read back as those; groups have no 1.0 form and are refused.
        let Message::PacketOut(mut po) = msg else { unreachable!() };
        retain_deep(&mut po.actions, &|a| !matches!(a, Action::SetField { .. } | Action::PopVlan));
        let msg = Message::PacketOut(po);
        if let Ok(b) = encode(&msg, OFP10_VERSION, 6) {
            prop_assert_eq!(decode(&b).unwrap().1, msg);
        }
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode(&b);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bodies_with_valid_headers(
        ty in 0u8..40, version in prop_oneof![Just(1u8), Just(4u8), Just(5u8), Just(6u8)],
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut b = vec![version, ty, 0, 0, 0, 0, 0, 1];
        b.extend(body);
        let n = b.len() as u16;
        b[2..4].copy_from_slice(&n.to_be_bytes());
        let _ = decode(&b);
    }

    #[test]
    fn decode_never_panics_on_mutated_flow_mods(
        fm in arb_flow_mod(),
        muts in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut b = encode(&Message::FlowMod(fm), OFP13_VERSION, 1).unwrap();
        for (i, v) in muts {
            let n = b.len();
            b[8 + i % (n - 8)] = v;
        }
        let _ = decode(&b);
        let n = 8 + cut % (b.len() - 7);
        let mut t = b[..n].to_vec();
        t[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        let _ = decode(&t);
    }

    #[test]
    fn connection_never_panics_on_arbitrary_streams(
        v in prop_oneof![Just(1u8), Just(4u8), Just(5u8), Just(6u8)],
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..12),
    ) {
        let mut agent = openflow::testing::MemAgent::default();
        let mut c = OfConnection::new(ConnConfig::default(), 0);
        c.receive(&[v, 0, 0, 8, 0, 0, 0, 1], &mut agent, 0);
        for (i, ch) in chunks.iter().enumerate() {
            c.receive(ch, &mut agent, i as u64);
            c.tick(i as u64 * 1000);
            let _ = c.take_output();
        }
    }

    #[test]
    fn random_meter_mods_round_trip_from_1_3_to_1_5(mm in arb_meter_mod()) {
        let msg = Message::MeterMod(mm);
        prop_assert!(encode(&msg, OFP10_VERSION, 5).is_err());
        for v in [OFP13_VERSION, OFP14_VERSION, OFP15_VERSION] {
            let b = encode(&msg, v, 5).unwrap();
            prop_assert_eq!(decode(&b).unwrap().1, msg.clone(), "version {}", v);
        }
    }

    #[test]
    fn random_flow_mods_round_trip_from_1_3_to_1_5(fm in arb_flow_mod(), importance in any::<u16>()) {
        let msg = Message::FlowMod(fm.clone());
        let b = encode(&msg, OFP13_VERSION, 3).unwrap();
        prop_assert_eq!(decode(&b).unwrap().1, msg);
        let mut fm = fm;
        fm.importance = importance;
        let msg = Message::FlowMod(fm);
        for v in [OFP14_VERSION, OFP15_VERSION] {
            round_trips(&msg, v, 3)?;
        }
    }

    #[test]
    fn random_flow_mods_expressible_in_1_0_round_trip(fm in arb_flow_mod()) {
        let mut fm = fm;
        fm.flow_mod.table_id = 0;
        retain_deep(&mut fm.flow_mod.actions, &|a| !matches!(a, Action::Group(_) | Action::GotoTable(_) | Action::PopVlan | Action::SetField { .. } | Action::Meter(_)));
        let msg = Message::FlowMod(fm);
        // Matches outside 1.0 (registers, IPv6...) are refused, not mangled.
        if let Ok(b) = encode(&msg, OFP10_VERSION, 3) {
            prop_assert_eq!(decode(&b).unwrap().1, msg);
        }
    }
}
