//! Property: printing a valid flow in ovs-ofctl syntax and parsing it back
//! gives the same flow (matches, flags, timeouts and actions).

use flows::action::{Action, SubField, port};
use flows::field::Field;
use flows::key::{FRAG_ANY, FRAG_LATER};
use flows::table::{DEFAULT_PRIORITY, FlowMod, FlowModCommand, TABLE_ALL};
use flows::text::{format_flow_mod, format_match, parse_flow_mod, parse_match};
use flows::{FlowKey, Match};
use proptest::prelude::*;

/// Sets `f` to `v` under `mask` in the match (value masked, as parsing does).
fn put(m: &mut Match, f: Field, v: u128, mask: u128) {
    let mask = mask & f.max_value();
    f.set(&mut m.key, v & mask);
    f.set(&mut m.mask, mask);
}

fn exact(m: &mut Match, f: Field, v: u128) {
    put(m, f, v, u128::MAX);
}

/// A (value, mask) pair for a field, often exact, sometimes arbitrary.
fn masked(bits: u32) -> impl Strategy<Value = (u128, u128)> {
    let full = if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    (any::<u128>(), any::<u128>(), 0u8..4).prop_map(move |(v, m, kind)| match kind {
        0 => (0, 0),
        1 => (v & full, full),
        // a prefix mask
        2 => {
            let n = (m % u128::from(bits + 1)) as u32;
            let pm = if n == 0 {
                0
            } else {
                (full >> (bits - n)) << (bits - n)
            };
            (v & pm, pm)
        }
        _ => (v & m & full, m & full),
    })
}

#[derive(Debug, Clone)]
enum L3 {
    None,
    Other(u16),
    Ip(Option<u8>),
    Ipv6(Option<u8>),
    Arp,
}

fn l3() -> impl Strategy<Value = L3> {
    let protos = prop_oneof![
        Just(None),
        Just(Some(1u8)),
        Just(Some(2u8)),
        Just(Some(6u8)),
        Just(Some(17u8)),
        Just(Some(132u8)),
        Just(Some(47u8)),
    ];
    let protos6 = prop_oneof![
        Just(None),
        Just(Some(58u8)),
        Just(Some(6u8)),
        Just(Some(17u8)),
        Just(Some(132u8)),
        Just(Some(47u8)),
    ];
    prop_oneof![
        Just(L3::None),
        prop_oneof![Just(0x88ccu16), Just(0x9000u16)].prop_map(L3::Other),
        protos.prop_map(L3::Ip),
        protos6.prop_map(L3::Ipv6),
        Just(L3::Arp),
    ]
}

#[derive(Debug, Clone)]
struct Extras {
    regs: [(u128, u128); 2],
    metadata: (u128, u128),
    in_port: Option<u32>,
    vlan: (u8, u16, u16),
    dl_src: (u128, u128),
    dl_dst: (u128, u128),
    a3: [(u128, u128); 2],
    a6: [(u128, u128); 3],
    tos: (Option<u8>, Option<u8>, Option<u8>, Option<u8>),
    l4: [(u128, u128); 2],
    tcp_flags: (u128, u128),
    icmp: (Option<u8>, Option<u8>, bool, u128),
    arp_op: Option<u8>,
}

fn extras() -> impl Strategy<Value = Extras> {
    (
        (masked(32), masked(32), masked(64)),
        prop_oneof![
            Just(None),
            (1u32..0xff00).prop_map(Some),
            Just(Some(port::LOCAL))
        ],
        (0u8..5, any::<u16>(), any::<u16>()),
        (masked(48), masked(48)),
        (masked(32), masked(32)),
        (masked(128), masked(128), masked(20)),
        (
            proptest::option::of(0u8..64),
            proptest::option::of(0u8..4),
            proptest::option::of(any::<u8>()),
            proptest::option::of(0u8..5),
        ),
        (masked(16), masked(16), masked(12)),
        (
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<u8>()),
            any::<bool>(),
            any::<u128>(),
        ),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(
            |(
                (r0, r1, md),
                in_port,
                vlan,
                (s, d),
                (n1, n2),
                (i1, i2, lbl),
                tos,
                (t1, t2, tf),
                icmp,
                arp_op,
            )| {
                Extras {
                    regs: [r0, r1],
                    metadata: md,
                    in_port,
                    vlan,
                    dl_src: s,
                    dl_dst: d,
                    a3: [n1, n2],
                    a6: [i1, i2, lbl],
                    tos,
                    l4: [t1, t2],
                    tcp_flags: tf,
                    icmp,
                    arp_op,
                }
            },
        )
}

fn build_match(l3: &L3, e: &Extras) -> Match {
    let mut m = Match::default();
    put(&mut m, Field::Reg(0), e.regs[0].0, e.regs[0].1);
    put(&mut m, Field::Reg(5), e.regs[1].0, e.regs[1].1);
    put(&mut m, Field::Metadata, e.metadata.0, e.metadata.1);
    if let Some(p) = e.in_port {
        exact(&mut m, Field::InPort, p.into());
    }
    let (kind, a, b) = e.vlan;
    match kind {
        0 => {}
        1 => put(
            &mut m,
            Field::VlanTci,
            (0x1000 | (a & 0xfff)).into(),
            0x1fff,
        ),
        2 => put(&mut m, Field::VlanTci, (0x1000 | a).into(), 0xffff),
        3 => put(&mut m, Field::VlanTci, 0, 0xffff),
        _ => put(&mut m, Field::VlanTci, a.into(), b.into()),
    }
    put(&mut m, Field::DlSrc, e.dl_src.0, e.dl_src.1);
    put(&mut m, Field::DlDst, e.dl_dst.0, e.dl_dst.1);
    let l4 = |m: &mut Match, proto: u8, v6: bool| match (proto, v6) {
        (6 | 17 | 132, _) => {
            put(m, Field::TpSrc, e.l4[0].0, e.l4[0].1);
            put(m, Field::TpDst, e.l4[1].0, e.l4[1].1);
            if proto == 6 {
                put(m, Field::TcpFlags, e.tcp_flags.0, e.tcp_flags.1);
            }
        }
        (1, false) | (58, true) => {
            let (t, c, nd, target) = e.icmp;
            let t = if v6 && nd {
                Some(135 + (target & 1) as u8)
            } else {
                t
            };
            if let Some(t) = t {
                exact(m, Field::IcmpType, t.into());
            }
            if let Some(c) = c {
                exact(m, Field::IcmpCode, c.into());
            }
            if v6 && nd {
                put(m, Field::NdTarget, target, u128::MAX);
                let f = if t == Some(135) {
                    Field::NdSll
                } else {
                    Field::NdTll
                };
                put(m, f, e.dl_src.0, e.dl_src.1);
            }
        }
        _ => {}
    };
    let ip_common = |m: &mut Match| {
        let (dscp, ecn, ttl, frag) = e.tos;
        if let Some(d) = dscp {
            put(m, Field::IpDscp, d.into(), 0x3f);
        }
        if let Some(x) = ecn {
            exact(m, Field::NwEcn, x.into());
        }
        if let Some(t) = ttl {
            exact(m, Field::NwTtl, t.into());
        }
        if let Some(f) = frag {
            let (v, mk) = [
                (0, FRAG_ANY),
                (FRAG_ANY, FRAG_ANY),
                (FRAG_ANY, FRAG_ANY | FRAG_LATER),
                (FRAG_ANY | FRAG_LATER, FRAG_ANY | FRAG_LATER),
                (0, FRAG_LATER),
            ][usize::from(f)];
            put(m, Field::NwFrag, v.into(), mk.into());
        }
    };
    match l3 {
        L3::None => {}
        L3::Other(t) => exact(&mut m, Field::DlType, (*t).into()),
        L3::Ip(proto) => {
            exact(&mut m, Field::DlType, 0x0800);
            put(&mut m, Field::NwSrc, e.a3[0].0, e.a3[0].1);
            put(&mut m, Field::NwDst, e.a3[1].0, e.a3[1].1);
            ip_common(&mut m);
            if let Some(p) = proto {
                exact(&mut m, Field::NwProto, (*p).into());
                l4(&mut m, *p, false);
            }
        }
        L3::Ipv6(proto) => {
            exact(&mut m, Field::DlType, 0x86dd);
            put(&mut m, Field::Ipv6Src, e.a6[0].0, e.a6[0].1);
            put(&mut m, Field::Ipv6Dst, e.a6[1].0, e.a6[1].1);
            put(&mut m, Field::Ipv6Label, e.a6[2].0, e.a6[2].1);
            ip_common(&mut m);
            if let Some(p) = proto {
                exact(&mut m, Field::NwProto, (*p).into());
                l4(&mut m, *p, true);
            }
        }
        L3::Arp => {
            exact(&mut m, Field::DlType, 0x0806);
            put(&mut m, Field::ArpSpa, e.a3[0].0, e.a3[0].1);
            put(&mut m, Field::ArpTpa, e.a3[1].0, e.a3[1].1);
            if let Some(op) = e.arp_op {
                exact(&mut m, Field::ArpOp, op.into());
            }
            put(&mut m, Field::ArpSha, e.dl_src.0, e.dl_src.1);
            put(&mut m, Field::ArpTha, e.dl_dst.0, e.dl_dst.1);
        }
    }
    m
}

fn a_match() -> impl Strategy<Value = Match> {
    (l3(), extras()).prop_map(|(l, e)| build_match(&l, &e))
}

fn reg_subfield() -> impl Strategy<Value = SubField> {
    (0u8..8, 0u8..32, 1u8..=32).prop_map(|(r, ofs, n)| {
        let n = n.min(32 - ofs);
        SubField {
            field: Field::Reg(r),
            ofs,
            n_bits: n,
        }
    })
}

fn set_field() -> impl Strategy<Value = Action> {
    let fields = prop_oneof![
        Just(Field::NwDst),
        Just(Field::DlSrc),
        Just(Field::Reg(3)),
        Just(Field::TpDst),
        Just(Field::Metadata),
        Just(Field::VlanVid),
        Just(Field::Ipv6Src),
        Just(Field::NwTtl),
    ];
    (fields, any::<u128>(), any::<u128>(), any::<bool>()).prop_map(|(f, v, m, use_mask)| {
        let full = f.max_value();
        let maskable = f != Field::NwTtl;
        let mask = (m & full).max(1);
        if use_mask && maskable && mask != full {
            Action::SetField {
                field: f,
                value: v & mask,
                mask: Some(mask),
            }
        } else {
            Action::SetField {
                field: f,
                value: v & full,
                mask: None,
            }
        }
    })
}

fn plain_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (1u32..0xff00).prop_map(|p| Action::Output {
            port: p,
            max_len: 0
        }),
        prop_oneof![
            Just(port::NORMAL),
            Just(port::FLOOD),
            Just(port::ALL),
            Just(port::LOCAL),
            Just(port::IN_PORT)
        ]
        .prop_map(|p| Action::Output {
            port: p,
            max_len: 0
        }),
        any::<u16>().prop_map(|l| Action::Controller { max_len: l }),
        (0u16..4096).prop_map(Action::SetVlanVid),
        (0u8..8).prop_map(Action::SetVlanPcp),
        Just(Action::StripVlan),
        Just(Action::PopVlan),
        prop_oneof![Just(0x8100u16), Just(0x88a8u16)].prop_map(Action::PushVlan),
        set_field(),
        any::<[u8; 6]>().prop_map(Action::SetDlSrc),
        any::<[u8; 6]>().prop_map(Action::SetDlDst),
        any::<u32>().prop_map(Action::SetNwSrc),
        any::<u32>().prop_map(Action::SetNwDst),
        (0u8..64).prop_map(|d| Action::SetNwTos(d << 2)),
        any::<u16>().prop_map(Action::SetTpSrc),
        any::<u16>().prop_map(Action::SetTpDst),
        Just(Action::DecTtl),
        prop_oneof![Just(0x8847u16), Just(0x8848u16)].prop_map(Action::PushMpls),
        any::<u16>().prop_map(Action::PopMpls),
        any::<u8>().prop_map(Action::SetMplsTtl),
        Just(Action::DecMplsTtl),
        (reg_subfield(), any::<u32>()).prop_map(|(dst, v)| Action::Load {
            dst,
            value: u128::from(v) & ((1u128 << dst.n_bits) - 1),
        }),
        (reg_subfield(), 0u8..8).prop_map(|(src, r)| Action::Move {
            src,
            dst: SubField {
                field: Field::Reg(r),
                ofs: 0,
                n_bits: src.n_bits,
            },
        }),
        (
            proptest::option::of(prop_oneof![(1u32..0xff00), Just(port::IN_PORT)]),
            proptest::option::of(0u8..255)
        )
            .prop_map(|(p, t)| Action::Resubmit {
                ct: false,
                port: p.or(if t.is_none() { Some(1) } else { None }),
                table: t,
            }),
        (0u32..0xffff_ff00).prop_map(Action::Group),
    ]
}

/// Apply-actions followed by instructions in OpenFlow 1.1+ order.
fn actions() -> impl Strategy<Value = Vec<Action>> {
    (
        proptest::collection::vec(plain_action(), 0..5),
        any::<bool>(),
        proptest::option::of(proptest::collection::vec(plain_action(), 0..4)),
        proptest::option::of((any::<u64>(), any::<u64>())),
        proptest::option::of(1u8..255),
    )
        .prop_map(|(mut acts, clear, write, meta, goto)| {
            if clear {
                acts.push(Action::ClearActions);
            }
            if let Some(w) = write {
                acts.push(Action::WriteActions(w));
            }
            if let Some((v, m)) = meta {
                acts.push(Action::WriteMetadata {
                    value: v & m,
                    mask: m,
                });
            }
            if let Some(t) = goto {
                acts.push(Action::GotoTable(t));
            }
            acts
        })
}

fn add_flow() -> impl Strategy<Value = FlowMod> {
    (
        a_match(),
        (0u8..255, prop_oneof![Just(DEFAULT_PRIORITY), 0u32..65536]),
        (any::<u64>(), any::<u16>(), any::<u16>()),
        any::<[bool; 5]>(),
        actions(),
    )
        .prop_map(|(m, (table, prio), (cookie, idle, hard), fl, actions)| {
            let mut fm = FlowMod::new(FlowModCommand::Add);
            fm.m = m;
            fm.table_id = table;
            fm.priority = prio;
            fm.cookie = cookie;
            fm.idle_timeout = idle;
            fm.hard_timeout = hard;
            fm.flags.send_flow_rem = fl[0];
            fm.flags.check_overlap = fl[1];
            fm.flags.reset_counts = fl[2];
            fm.flags.no_packet_counts = fl[3];
            fm.flags.no_byte_counts = fl[4];
            fm.actions = actions;
            // goto_table must go forward (ovs-ofctl refuses it otherwise).
            for a in &mut fm.actions {
                if let Action::GotoTable(t) = a {
                    *t = (*t).max(table + 1);
                }
            }
            fm
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn add_flow_text_round_trips(fm in add_flow()) {
        // Flows whose set_field/load/move the match does not allow are
        // refused (OFPBAC_MATCH_INCONSISTENT); they have no text to round-trip.
        prop_assume!(flows::table::check_action_prereqs(&fm.m, &fm.actions).is_ok());
        let text = format_flow_mod(&fm);
        let back = parse_flow_mod(&text, FlowModCommand::Add);
        prop_assert_eq!(back.as_ref(), Ok(&fm), "text: {}", text);
    }

    #[test]
    fn match_text_round_trips(m in a_match(), prio in 0u32..65536) {
        let text = format_match(&m, DEFAULT_PRIORITY);
        prop_assert_eq!(parse_match(&text), Ok(m), "text: {}", text);
        // With a priority in front, add-flow still reads the same match.
        let with_prio = format!("{},actions=drop", format_match(&m, prio));
        let fm = parse_flow_mod(&with_prio, FlowModCommand::Add).unwrap();
        prop_assert_eq!(fm.m, m);
        prop_assert_eq!(fm.priority, prio);
    }

    #[test]
    fn delete_filter_text_round_trips(
        m in a_match(),
        table in prop_oneof![Just(TABLE_ALL), 0u8..255],
        (cookie, cookie_mask) in (any::<u64>(), any::<u64>()),
        out_port in prop_oneof![Just(port::ANY), 1u32..0xff00],
        out_group in prop_oneof![Just(u32::MAX), 0u32..0xffff_ff00],
        strict_prio in proptest::option::of(0u32..65536),
    ) {
        let cmd = if strict_prio.is_some() { FlowModCommand::DeleteStrict } else { FlowModCommand::Delete };
        let mut fm = FlowMod::new(cmd);
        fm.m = m;
        fm.table_id = table;
        fm.cookie = cookie & cookie_mask;
        fm.cookie_mask = cookie_mask;
        fm.out_port = out_port;
        fm.out_group = out_group;
        fm.priority = strict_prio.unwrap_or(DEFAULT_PRIORITY);
        let text = format_flow_mod(&fm);
        let back = parse_flow_mod(&text, cmd);
        prop_assert_eq!(back.as_ref(), Ok(&fm), "text: {}", text);
    }

    #[test]
    fn parser_never_panics_on_arbitrary_text(s in "\\PC{0,80}") {
        let _ = parse_flow_mod(&s, FlowModCommand::Add);
        let _ = parse_flow_mod(&s, FlowModCommand::Delete);
    }

    #[test]
    fn parser_never_panics_on_flow_like_text(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("ip".to_string()), Just("tcp6".to_string()), Just("actions=".to_string()),
                Just("nw_dst=".to_string()), Just("/".to_string()), Just(",".to_string()),
                Just("(".to_string()), Just(")".to_string()), Just("->".to_string()),
                Just("[".to_string()), Just("]".to_string()), Just("..".to_string()),
                Just("load:".to_string()), Just("NXM_NX_REG0".to_string()), Just(":".to_string()),
                Just("resubmit".to_string()), Just("tcp_flags=+".to_string()), Just("0x".to_string()),
                "[0-9a-f]{1,6}", Just("write_actions(".to_string()), Just("set_field:".to_string()),
            ],
            0..16,
        )
    ) {
        let s: String = parts.concat();
        let _ = parse_flow_mod(&s, FlowModCommand::Add);
    }
}

#[test]
fn key_with_every_field_prints_and_parses_as_the_same_exact_match() {
    // A fully specified TCP/IPv4 packet key, as ofproto/trace prints it.
    let k = FlowKey {
        in_port: 3,
        dl_src: [0, 1, 2, 3, 4, 5],
        dl_dst: [0, 1, 2, 3, 4, 6],
        dl_type: 0x0800,
        nw_proto: 6,
        nw_src: 0x0a00_0001,
        nw_dst: 0x0a00_0002,
        nw_ttl: 64,
        tp_src: 1234,
        tp_dst: 80,
        ..FlowKey::default()
    };
    let mut m = Match::default();
    for f in [
        Field::InPort,
        Field::DlSrc,
        Field::DlDst,
        Field::DlType,
        Field::NwProto,
        Field::NwSrc,
        Field::NwDst,
        Field::NwTtl,
        Field::TpSrc,
        Field::TpDst,
    ] {
        exact(&mut m, f, f.get(&k));
    }
    let text = format_match(&m, DEFAULT_PRIORITY);
    assert_eq!(
        text,
        "tcp,in_port=3,dl_src=00:01:02:03:04:05,dl_dst=00:01:02:03:04:06,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_ttl=64,tp_src=1234,tp_dst=80"
    );
    assert_eq!(parse_match(&text), Ok(m));
}
