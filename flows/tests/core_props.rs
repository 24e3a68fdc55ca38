//! Property tests of the flows core: key extraction never panics, the
//! classifier agrees with a linear scan and returns sound wildcards, and
//! packet rewrites keep checksums valid (full and partial).

use flows::classifier::{Classifier, RuleId};
use flows::dpaction::DpAction;
use flows::key::{FlowKey, VLAN_CFI, ethertype, ipproto};
use flows::matches::Match;
use flows::packet::{
    FrameBuf, VecFrame, apply, complete_l4_checksum, l4_checksum_full, l4_csum_offset,
};
use flows::parse::{L3Kind, L4Kind, extract};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Independent reference arithmetic (deliberately naive).

fn ref_sum(parts: &[&[u8]]) -> u16 {
    let mut bytes = Vec::new();
    for p in parts {
        bytes.extend_from_slice(p);
    }
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut s: u32 = 0;
    for w in bytes.chunks(2) {
        s += u32::from(u16::from_be_bytes([w[0], w[1]]));
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn ref_crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

// ---------------------------------------------------------------------------
// Frame builder.

#[derive(Clone, Debug)]
enum L4 {
    Tcp,
    Udp { csum: bool },
    Icmp,
    Sctp,
}

#[derive(Clone, Debug)]
struct Spec {
    vlans: Vec<u16>,
    ipv6: bool,
    src: [u8; 16],
    dst: [u8; 16],
    tos: u8,
    ttl: u8,
    l4: L4,
    sport: u16,
    dport: u16,
    payload: Vec<u8>,
}

fn pseudo(ipv6: bool, src: &[u8], dst: &[u8], proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(src);
    p.extend_from_slice(dst);
    if ipv6 {
        p.extend_from_slice(&(len as u32).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, proto]);
    } else {
        p.extend_from_slice(&[0, proto]);
        p.extend_from_slice(&(len as u16).to_be_bytes());
    }
    p
}

/// Builds the frame; when `partial`, the L4 checksum field holds the plain
/// pseudo-header sum (virtio NEEDS_CSUM) instead of the full checksum.
fn build(s: &Spec, partial: bool) -> Vec<u8> {
    let proto = match (&s.l4, s.ipv6) {
        (L4::Tcp, _) => ipproto::TCP,
        (L4::Udp { .. }, _) => ipproto::UDP,
        (L4::Icmp, false) => ipproto::ICMP,
        (L4::Icmp, true) => ipproto::ICMPV6,
        (L4::Sctp, _) => ipproto::SCTP,
    };
    let mut seg = match s.l4 {
        L4::Tcp => {
            let mut t = vec![0u8; 20];
            t[12] = 0x50;
            t[13] = 0x18;
            t
        }
        L4::Udp { .. } => vec![0u8; 8],
        L4::Icmp => vec![if s.ipv6 { 128 } else { 8 }, 0, 0, 0, 0, 1, 0, 2],
        L4::Sctp => vec![0u8; 12],
    };
    if !matches!(s.l4, L4::Icmp) {
        seg[0..2].copy_from_slice(&s.sport.to_be_bytes());
        seg[2..4].copy_from_slice(&s.dport.to_be_bytes());
    }
    seg.extend_from_slice(&s.payload);
    let seg_len = seg.len();
    if let L4::Udp { .. } = s.l4 {
        seg[4..6].copy_from_slice(&(seg_len as u16).to_be_bytes());
    }
    let (asrc, adst): (&[u8], &[u8]) = if s.ipv6 {
        (&s.src, &s.dst)
    } else {
        (&s.src[..4], &s.dst[..4])
    };
    let ph = pseudo(s.ipv6, asrc, adst, proto, seg_len);
    match s.l4 {
        L4::Tcp | L4::Udp { csum: true } => {
            let at = if let L4::Tcp = s.l4 { 16 } else { 6 };
            let v = if partial {
                ref_sum(&[&ph])
            } else {
                let c = !ref_sum(&[&ph, &seg]);
                if c == 0 { 0xffff } else { c }
            };
            seg[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
        L4::Udp { csum: false } => {}
        L4::Icmp => {
            let c = if s.ipv6 {
                !ref_sum(&[&ph, &seg])
            } else {
                !ref_sum(&[&seg])
            };
            seg[2..4].copy_from_slice(&c.to_be_bytes());
        }
        L4::Sctp => {
            let c = ref_crc32c(&seg);
            seg[8..12].copy_from_slice(&c.to_le_bytes());
        }
    }
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for (i, tci) in s.vlans.iter().enumerate() {
        let tpid = if i == 0 && s.vlans.len() == 2 {
            ethertype::QINQ
        } else {
            ethertype::VLAN
        };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(tci & !VLAN_CFI).to_be_bytes());
    }
    if s.ipv6 {
        f.extend_from_slice(&ethertype::IPV6.to_be_bytes());
        let vtf = (6u32 << 28) | (u32::from(s.tos) << 20) | 0x0_1234;
        f.extend_from_slice(&vtf.to_be_bytes());
        f.extend_from_slice(&(seg_len as u16).to_be_bytes());
        f.push(proto);
        f.push(s.ttl);
        f.extend_from_slice(&s.src);
        f.extend_from_slice(&s.dst);
    } else {
        f.extend_from_slice(&ethertype::IPV4.to_be_bytes());
        let mut ip = vec![0x45, s.tos, 0, 0, 0, 7, 0x40, 0, s.ttl, proto, 0, 0];
        ip[2..4].copy_from_slice(&((20 + seg_len) as u16).to_be_bytes());
        ip.extend_from_slice(asrc);
        ip.extend_from_slice(adst);
        let c = !ref_sum(&[&ip]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
    }
    f.extend_from_slice(&seg);
    f
}

fn spec_strategy() -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec(0u16..0xffff, 0..=2),
        any::<bool>(),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<(u8, u8)>(),
        prop_oneof![
            Just(L4::Tcp),
            Just(L4::Udp { csum: true }),
            Just(L4::Udp { csum: false }),
            Just(L4::Icmp),
            Just(L4::Sctp)
        ],
        any::<(u16, u16)>(),
        prop::collection::vec(any::<u8>(), 0..41),
    )
        .prop_map(
            |(vlans, ipv6, src, dst, (tos, ttl), l4, (sport, dport), payload)| Spec {
                vlans,
                ipv6,
                src,
                dst,
                tos,
                ttl,
                l4,
                sport,
                dport,
                payload,
            },
        )
}

// ---------------------------------------------------------------------------
// (1) extract never panics.

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(Mutation::Extend),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn extract_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..160), port in any::<u32>()) {
        let _ = extract(&bytes, port);
        // Same bytes behind a plausible Ethernet/IP prefix reach deeper parsers.
        for ty in [ethertype::IPV4, ethertype::IPV6, ethertype::ARP, ethertype::VLAN] {
            let mut f = vec![0u8; 12];
            f.extend_from_slice(&ty.to_be_bytes());
            f.extend_from_slice(&bytes);
            if let Ok((k, lay)) = extract(&f, port) {
                prop_assert_eq!(k.in_port, port);
                if let Some(l4) = lay.l4_ofs {
                    prop_assert!(usize::from(l4) <= f.len());
                }
            }
        }
    }

    #[test]
    fn extract_never_panics_on_mutated_valid_frames(spec in spec_strategy(), muts in prop::collection::vec(mutation(), 1..6)) {
        let mut f = build(&spec, false);
        for m in muts {
            match m {
                Mutation::Flip(i, b) => {
                    let n = f.len();
                    if n > 0 {
                        f[i % n] ^= b;
                    }
                }
                Mutation::Truncate(n) => {
                    let n = n % (f.len() + 1);
                    f.truncate(n);
                }
                Mutation::Extend(b) => f.extend_from_slice(&b),
            }
        }
        let _ = extract(&f, 1);
        // Rewrites on damaged frames must not panic either.
        let mut b = VecFrame::new(&f, 8);
        for a in [
            DpAction::SetIpv4Src(1),
            DpAction::SetIpv6Dst([7; 16]),
            DpAction::SetTpSrc(5),
            DpAction::SetIpTos { tos: 3, mask: 0xff },
            DpAction::SetIpTtl(9),
            DpAction::PopVlan,
            DpAction::SetVlanVid(3),
        ] {
            let _ = apply(&mut b, &a, false);
            let _ = apply(&mut b, &a, true);
        }
    }

    #[test]
    fn valid_frames_parse_to_their_spec(spec in spec_strategy()) {
        let f = build(&spec, false);
        let (k, lay) = extract(&f, 4).unwrap();
        prop_assert_eq!(usize::from(lay.n_vlans), spec.vlans.len());
        if let Some(&outer) = spec.vlans.first() {
            prop_assert_eq!(k.vlan_tci, outer | VLAN_CFI);
        }
        prop_assert_eq!(k.nw_ttl, spec.ttl);
        prop_assert_eq!(k.nw_tos, spec.tos);
        if spec.ipv6 {
            prop_assert_eq!(k.ipv6_src, spec.src);
            prop_assert_eq!(lay.l3, L3Kind::Ipv6);
        } else {
            prop_assert_eq!(k.nw_src, u32::from_be_bytes(spec.src[..4].try_into().unwrap()));
            prop_assert_eq!(lay.l3, L3Kind::Ipv4);
        }
        if !matches!(spec.l4, L4::Icmp) {
            prop_assert_eq!((k.tp_src, k.tp_dst), (spec.sport, spec.dport));
        }
    }
}

// ---------------------------------------------------------------------------
// (4) rewrites keep checksums valid.

fn rewrite_action() -> impl Strategy<Value = DpAction> {
    prop_oneof![
        any::<u32>().prop_map(DpAction::SetIpv4Src),
        any::<u32>().prop_map(DpAction::SetIpv4Dst),
        any::<[u8; 16]>().prop_map(DpAction::SetIpv6Src),
        any::<[u8; 16]>().prop_map(DpAction::SetIpv6Dst),
        any::<u8>().prop_map(|tos| DpAction::SetIpTos { tos, mask: 0xff }),
        any::<u8>().prop_map(DpAction::SetIpTtl),
        any::<u16>().prop_map(DpAction::SetTpSrc),
        any::<u16>().prop_map(DpAction::SetTpDst),
        any::<u16>().prop_map(|tci| DpAction::PushVlan {
            tpid: ethertype::VLAN,
            tci
        }),
        Just(DpAction::PopVlan),
        (0u16..4096).prop_map(DpAction::SetVlanVid),
        (0u8..8).prop_map(DpAction::SetVlanPcp),
        any::<[u8; 6]>().prop_map(DpAction::SetEthSrc),
        any::<[u8; 6]>().prop_map(DpAction::SetEthDst),
    ]
}

/// Checks every checksum of `f` from scratch. With `partial`, the TCP/UDP
/// field must hold the plain pseudo-header sum, and completing it (sum of the
/// segment, complemented) must give the from-scratch checksum.
fn check_checksums(f: &[u8], spec: &Spec, partial: bool) -> Result<(), TestCaseError> {
    let (k, lay) = extract(f, 0).map_err(|e| TestCaseError::fail(format!("reparse: {e}")))?;
    if k.dl_type == ethertype::VLAN || k.dl_type == ethertype::QINQ {
        // More than two tags: the parser (like OVS) stops at the third.
        return Ok(());
    }
    let l3 = usize::from(lay.l3_ofs.unwrap());
    let l4 = usize::from(lay.l4_ofs.unwrap());
    let seg = &f[l4..lay.l3_end as usize];
    let ph = if lay.l3 == L3Kind::Ipv4 {
        prop_assert_eq!(ref_sum(&[&f[l3..l4]]), 0xffff, "IPv4 header checksum");
        pseudo(
            false,
            &f[l3 + 12..l3 + 16],
            &f[l3 + 16..l3 + 20],
            k.nw_proto,
            seg.len(),
        )
    } else {
        pseudo(
            true,
            &f[l3 + 8..l3 + 24],
            &f[l3 + 24..l3 + 40],
            k.nw_proto,
            seg.len(),
        )
    };
    match lay.l4 {
        L4Kind::Tcp | L4Kind::Udp => {
            let at = if lay.l4 == L4Kind::Tcp { 16 } else { 6 };
            let field = u16::from_be_bytes([seg[at], seg[at + 1]]);
            if matches!(spec.l4, L4::Udp { csum: false }) {
                prop_assert_eq!(field, 0, "UDP checksum 0 must stay 0");
            } else if partial {
                prop_assert_eq!(field, ref_sum(&[&ph]), "partial field = pseudo-header sum");
                let mut zeroed = seg.to_vec();
                zeroed[at..at + 2].copy_from_slice(&[0, 0]);
                let scratch = !ref_sum(&[&ph, &zeroed]);
                prop_assert_eq!(!ref_sum(&[seg]), scratch, "completed partial checksum");
            } else {
                prop_assert_eq!(ref_sum(&[&ph, seg]), 0xffff, "L4 checksum");
            }
        }
        L4Kind::Icmp => prop_assert_eq!(ref_sum(&[seg]), 0xffff, "ICMP checksum"),
        L4Kind::Icmpv6 => prop_assert_eq!(ref_sum(&[&ph, seg]), 0xffff, "ICMPv6 checksum"),
        L4Kind::Sctp => {
            let mut z = seg.to_vec();
            let stored = u32::from_le_bytes(z[8..12].try_into().unwrap());
            z[8..12].copy_from_slice(&[0; 4]);
            if !partial {
                prop_assert_eq!(stored, ref_crc32c(&z), "SCTP CRC32c");
            }
        }
        L4Kind::None => prop_assert!(false, "L4 header lost"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn rewrites_keep_checksums_valid(spec in spec_strategy(), actions in prop::collection::vec(rewrite_action(), 1..6), partial in any::<bool>()) {
        // Partial checksums only exist for TCP and UDP with a checksum.
        let partial = partial && matches!(spec.l4, L4::Tcp | L4::Udp { csum: true });
        let f = build(&spec, partial);
        check_checksums(&f, &spec, partial)?;
        let mut b = VecFrame::new(&f, 16);
        for a in &actions {
            // Headroom may run out after many pushes; that is reported, not a panic.
            let before = b.data().to_vec();
            if apply(&mut b, a, partial).is_err() {
                prop_assert_eq!(b.data(), &before[..]);
            }
            check_checksums(b.data(), &spec, partial)?;
            let (k, _) = extract(b.data(), 0).unwrap();
            if k.dl_type == ethertype::VLAN || k.dl_type == ethertype::QINQ {
                continue;
            }
            match *a {
                DpAction::SetIpv4Src(v) if !spec.ipv6 => prop_assert_eq!(k.nw_src, v),
                DpAction::SetIpv4Dst(v) if !spec.ipv6 => prop_assert_eq!(k.nw_dst, v),
                DpAction::SetIpv6Src(v) if spec.ipv6 => prop_assert_eq!(k.ipv6_src, v),
                DpAction::SetIpv6Dst(v) if spec.ipv6 => prop_assert_eq!(k.ipv6_dst, v),
                DpAction::SetIpTos { tos, .. } => prop_assert_eq!(k.nw_tos, tos),
                DpAction::SetIpTtl(v) => prop_assert_eq!(k.nw_ttl, v),
                DpAction::SetTpSrc(v) if !matches!(spec.l4, L4::Icmp) => prop_assert_eq!(k.tp_src, v),
                DpAction::SetTpDst(v) if !matches!(spec.l4, L4::Icmp) => prop_assert_eq!(k.tp_dst, v),
                DpAction::SetEthSrc(v) => prop_assert_eq!(k.dl_src, v),
                DpAction::SetEthDst(v) => prop_assert_eq!(k.dl_dst, v),
                _ => {}
            }
        }
    }

    #[test]
    fn complete_l4_checksum_restores_a_zeroed_checksum(spec in spec_strategy()) {
        prop_assume!(!matches!(spec.l4, L4::Udp { csum: false }));
        let f = build(&spec, false);
        let (_, lay) = extract(&f, 0).unwrap();
        let at = l4_csum_offset(&lay).unwrap();
        let width = if lay.l4 == L4Kind::Sctp { 4 } else { 2 };
        if lay.l4 != L4Kind::Sctp {
            prop_assert_eq!(
                l4_checksum_full(&f, &lay),
                Some(u16::from_be_bytes([f[at], f[at + 1]]))
            );
        }
        let mut g = f.clone();
        g[at..at + width].fill(0);
        prop_assert!(complete_l4_checksum(&mut g, &lay));
        prop_assert_eq!(g, f);
    }

    #[test]
    fn vlan_push_then_pop_round_trips(spec in spec_strategy(), tci in any::<u16>(), qinq in any::<bool>()) {
        let f = build(&spec, false);
        let mut b = VecFrame::new(&f, 4);
        let tpid = if qinq { ethertype::QINQ } else { ethertype::VLAN };
        apply(&mut b, &DpAction::PushVlan { tpid, tci }, false).unwrap();
        let (k, _) = extract(b.data(), 0).unwrap();
        prop_assert_eq!(k.vlan_tci, tci | VLAN_CFI);
        apply(&mut b, &DpAction::PopVlan, false).unwrap();
        prop_assert_eq!(b.data(), &f[..]);
    }
}

// ---------------------------------------------------------------------------
// (2)(3) classifier versus a linear scan; soundness of wildcards.

const IN_PORT_MASKS: [u32; 2] = [0, !0];
const NW_SRC_MASKS: [u32; 3] = [0, 0xffff_ff00, !0];
const TP_DST_MASKS: [u16; 3] = [0, 0xfffc, !0];
const NW_PROTO_MASKS: [u8; 2] = [0, 0xff];

fn small_key() -> impl Strategy<Value = FlowKey> {
    (0u32..3, 0u32..3, 0u32..3, 0u16..8, prop::bool::ANY).prop_map(|(port, net, host, tp, tcp)| {
        FlowKey {
            in_port: port,
            nw_src: 0x0a00_0000 | (net << 8) | host,
            tp_dst: tp,
            nw_proto: if tcp { 6 } else { 17 },
            dl_type: 0x0800,
            ..FlowKey::default()
        }
    })
}

fn small_match() -> impl Strategy<Value = Match> {
    (small_key(), 0usize..2, 0usize..3, 0usize..3, 0usize..2).prop_map(|(k, a, b, c, d)| {
        let mask = FlowKey {
            in_port: IN_PORT_MASKS[a],
            nw_src: NW_SRC_MASKS[b],
            tp_dst: TP_DST_MASKS[c],
            nw_proto: NW_PROTO_MASKS[d],
            dl_type: if d == 1 { 0xffff } else { 0 },
            ..FlowKey::default()
        };
        Match::new(k, mask)
    })
}

#[derive(Clone, Debug)]
enum Op {
    Insert(Match, u32),
    Remove(usize),
    Lookup(FlowKey, FlowKey),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (small_match(), 0u32..4).prop_map(|(m, p)| Op::Insert(m, p)),
        1 => any::<usize>().prop_map(Op::Remove),
        3 => (small_key(), small_key()).prop_map(|(a, b)| Op::Lookup(a, b)),
    ]
}

/// Best live rule for `k`: highest priority, ties to the lowest id.
fn reference(rules: &[(RuleId, Match, u32)], k: &FlowKey) -> Option<RuleId> {
    rules
        .iter()
        .filter(|(_, m, _)| m.matches(k))
        .max_by(|a, b| a.2.cmp(&b.2).then(b.0.cmp(&a.0)))
        .map(|r| r.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn classifier_matches_linear_scan_and_wildcards_are_sound(ops in prop::collection::vec(op(), 1..120)) {
        let mut c = Classifier::new();
        let mut live: Vec<(RuleId, Match, u32)> = Vec::new();
        for op in ops {
            match op {
                Op::Insert(m, p) => {
                    let id = c.insert(m, p, id_tag(&live));
                    prop_assert!(live.iter().all(|r| r.0 < id), "ids grow");
                    live.push((id, m, p));
                }
                Op::Remove(i) => {
                    if !live.is_empty() {
                        let (id, _, _) = live.remove(i % live.len());
                        prop_assert!(c.remove(id).is_some());
                        prop_assert!(c.remove(id).is_none());
                    }
                }
                Op::Lookup(p, other) => {
                    let mut wc = FlowKey::default();
                    let got = c.lookup(&p, &mut wc).map(|r| r.0);
                    prop_assert_eq!(got, reference(&live, &p));
                    prop_assert_eq!(c.lookup_no_wc(&p).map(|r| r.0), got);
                    // lookup_first: some matching rule of the best priority.
                    let first = c.lookup_first(&p).map(|r| r.0);
                    prop_assert_eq!(first.is_some(), got.is_some());
                    if let (Some(f), Some(g)) = (first, got) {
                        let (fm, fp, _) = c.get(f).unwrap();
                        prop_assert!(fm.matches(&p));
                        prop_assert_eq!(fp, c.get(g).unwrap().1);
                    }
                    // p2 agrees with p on every wildcarded bit, anything elsewhere.
                    let mut p2 = p.masked(&wc);
                    let mut free = FlowKey::all_ones();
                    for (f, w) in free.words_mut().iter_mut().zip(wc.words()) {
                        *f &= !w;
                    }
                    p2.or_assign(&other.masked(&free));
                    prop_assert_eq!(c.lookup_no_wc(&p2).map(|r| r.0), got, "megaflow {:?}", wc);
                    prop_assert_eq!(reference(&live, &p2), got);
                }
            }
            prop_assert_eq!(c.len(), live.len());
        }
        for (id, m, p) in &live {
            let (gm, gp, _) = c.get(*id).unwrap();
            prop_assert_eq!((gm, gp), (*m, *p));
            let first = live.iter().filter(|r| r.1 == *m && r.2 == *p).map(|r| r.0).min();
            prop_assert_eq!(c.find_exact(m, *p), first);
        }
        prop_assert_eq!(c.iter().count(), live.len());
    }
}

fn id_tag(live: &[(RuleId, Match, u32)]) -> usize {
    live.len()
}

#[test]
fn push_pop_round_trip_on_a_built_frame_keeps_other_fields() {
    let spec = Spec {
        vlans: vec![],
        ipv6: false,
        src: [10; 16],
        dst: [11; 16],
        tos: 0,
        ttl: 64,
        l4: L4::Udp { csum: true },
        sport: 1,
        dport: 2,
        payload: vec![1, 2, 3],
    };
    let f = build(&spec, false);
    let mut b = VecFrame::new(&f, 4);
    apply(
        &mut b,
        &DpAction::PushVlan {
            tpid: ethertype::VLAN,
            tci: 42,
        },
        false,
    )
    .unwrap();
    assert_eq!(b.data().len(), f.len() + 4);
    apply(&mut b, &DpAction::PopVlan, false).unwrap();
    assert_eq!(b.data(), &f[..]);
}
