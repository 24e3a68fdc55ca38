//! Benchmark helpers: deterministic frames, flow keys and rule sets shared
//! by the criterion benchmarks in `benches/`.

use flows::key::{FlowKey, ethertype, ipproto};
use flows::matches::Match;

/// A minimum-size Ethernet/IPv4 frame (60 bytes, 64 on the wire with the
/// FCS) carrying TCP or UDP between `i`-derived hosts. Checksums are left
/// zero: parsing does not read them.
pub fn frame_64(proto: u8, i: u32) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&ethertype::IPV4.to_be_bytes());
    let l4_len: u16 = if proto == ipproto::TCP { 20 } else { 8 };
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(20 + l4_len).to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&(0x0a00_0000 | (i & 0xffff)).to_be_bytes());
    ip[16..20].copy_from_slice(&(0x0b00_0000 | (i >> 16)).to_be_bytes());
    let l4 = &mut f[34..];
    l4[0..2].copy_from_slice(&(1024 + (i % 50_000) as u16).to_be_bytes());
    l4[2..4].copy_from_slice(&80u16.to_be_bytes());
    if proto == ipproto::TCP {
        l4[12] = 0x50;
        l4[13] = 0x10;
    } else {
        l4[4..6].copy_from_slice(&l4_len.to_be_bytes());
    }
    f
}

/// The packet key number `i` of a 5-tuple workload (all distinct for
/// `i < 2^32`), as the datapath would extract it.
pub fn five_tuple_key(i: u32) -> FlowKey {
    FlowKey {
        in_port: 1 + (i & 3),
        dl_type: ethertype::IPV4,
        nw_proto: if i & 4 == 0 {
            ipproto::UDP
        } else {
            ipproto::TCP
        },
        nw_src: 0x0a00_0000 | (i & 0x00ff_ffff),
        nw_dst: 0x0b00_0000 | (i >> 8),
        tp_src: (i % 60_000) as u16,
        tp_dst: (i % 7) as u16 + 80,
        nw_ttl: 64,
        dl_src: [2, 0, 0, 0, 0, 1],
        dl_dst: [2, 0, 0, 0, 0, 2],
        ..FlowKey::default()
    }
}

/// A handful of masks typical of megaflows: the full 5-tuple, the 5-tuple
/// plus in_port, and address-only variants. Every mask keeps enough of the
/// key that `five_tuple_key(i)` masked by it is unique per `i`.
pub fn five_tuple_masks() -> Vec<FlowKey> {
    let base = FlowKey {
        dl_type: 0xffff,
        nw_proto: 0xff,
        nw_src: !0,
        nw_dst: !0,
        ..FlowKey::default()
    };
    vec![
        FlowKey {
            tp_src: !0,
            tp_dst: !0,
            ..base
        },
        FlowKey {
            in_port: !0,
            tp_src: !0,
            tp_dst: !0,
            ..base
        },
        FlowKey {
            in_port: !0,
            tp_src: !0,
            ..base
        },
        FlowKey { tp_dst: !0, ..base },
    ]
}

/// `n` exact 5-tuple rules spread round-robin over [`five_tuple_masks`]:
/// rule `i` matches exactly `five_tuple_key(i)` (plus its neighbours on the
/// wildcarded bits).
pub fn five_tuple_rules(n: u32) -> impl Iterator<Item = (Match, u32)> {
    let masks = five_tuple_masks();
    (0..n).map(move |i| {
        let m = masks[i as usize % masks.len()];
        (Match::new(five_tuple_key(i), m), 100)
    })
}

/// `n` distinct ACL-like rules over `n_masks` distinct masks: exact source
/// host, destination prefix /8../32, and for every other mask the L4
/// protocol and destination port too; priorities grow with the prefix length.
/// Rule `i` matches `five_tuple_key(i)`, so a probe visits the subtables in
/// priority order until it reaches the one holding its rule.
pub fn mixed_mask_rules(n: u32, n_masks: u32) -> impl Iterator<Item = (Match, u32)> {
    (0..n).map(move |i| {
        let which = i % n_masks.max(1);
        let plen = 8 + (which / 2) % 25;
        let with_port = which % 2 == 1;
        let mask = FlowKey {
            dl_type: 0xffff,
            nw_src: !0,
            nw_dst: u32::MAX << (32 - plen),
            tp_dst: if with_port { 0xffff } else { 0 },
            nw_proto: if with_port { 0xff } else { 0 },
            ..FlowKey::default()
        };
        (
            Match::new(five_tuple_key(i), mask),
            plen * 2 + u32::from(with_port),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flows::parse::extract;
    use std::collections::HashSet;

    #[test]
    fn frames_are_64_bytes_with_fcs_and_parse() {
        for proto in [ipproto::UDP, ipproto::TCP] {
            let f = frame_64(proto, 7);
            assert_eq!(f.len() + 4, 64);
            let (k, _) = extract(&f, 1).unwrap();
            assert_eq!(k.nw_proto, proto);
            assert_eq!(k.tp_dst, 80);
        }
    }

    #[test]
    fn rule_sets_have_no_duplicate_matches() {
        let a: HashSet<_> = five_tuple_rules(20_000).map(|r| r.0).collect();
        assert_eq!(a.len(), 20_000);
        let b: HashSet<_> = mixed_mask_rules(20_000, 32).map(|r| r.0).collect();
        assert_eq!(b.len(), 20_000);
    }

    #[test]
    fn rule_i_matches_key_i() {
        for i in [0u32, 1, 2, 3, 999, 123_456] {
            let k = five_tuple_key(i);
            let (m, _) = five_tuple_rules(i + 1).last().unwrap();
            assert!(m.matches(&k));
            let (m, _) = mixed_mask_rules(i + 1, 32).last().unwrap();
            assert!(m.matches(&k));
        }
    }
}
