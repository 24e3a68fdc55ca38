//! The flow hashes of multipath and bundle, and their link choices,
//! computed the way Open vSwitch computes them (`jhash_bytes` of the
//! fields, its murmur-style `hash_2words` for the link weights, on a
//! little-endian host), so that a flow table picks the same link in ferrovs
//! as in OVS.

use crate::action::{BundleAlgorithm, HashFields, MultipathAlgorithm, PortNo};
use crate::key::{FlowKey, ethertype, ipproto};

fn mhash_add(hash: u32, data: u32) -> u32 {
    let d = data
        .wrapping_mul(0xcc9e_2d51)
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593);
    (hash ^ d)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

fn mhash_finish(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

fn hash_finish(h: u32, fin: u32) -> u32 {
    mhash_finish(h ^ fin)
}

fn jhash_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

fn jhash_final(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

/// OVS `jhash_bytes` (Bob Jenkins' lookup3 on little-endian words), which
/// multipath and bundle hash packet fields with.
pub fn jhash_bytes(p: &[u8], basis: u32) -> u32 {
    let init = 0xdead_beefu32
        .wrapping_add(p.len() as u32)
        .wrapping_add(basis);
    let (mut a, mut b, mut c) = (init, init, init);
    let word = |s: &[u8]| {
        let mut t = [0u8; 4];
        t[..s.len()].copy_from_slice(s);
        u32::from_le_bytes(t)
    };
    let mut rest = p;
    while rest.len() >= 12 {
        a = a.wrapping_add(word(&rest[0..4]));
        b = b.wrapping_add(word(&rest[4..8]));
        c = c.wrapping_add(word(&rest[8..12]));
        jhash_mix(&mut a, &mut b, &mut c);
        rest = &rest[12..];
    }
    if !rest.is_empty() {
        let mut t = [0u8; 12];
        t[..rest.len()].copy_from_slice(rest);
        a = a.wrapping_add(word(&t[0..4]));
        b = b.wrapping_add(word(&t[4..8]));
        c = c.wrapping_add(word(&t[8..12]));
        jhash_final(&mut a, &mut b, &mut c);
    }
    c
}

/// OVS `hash_2words`.
pub fn hash_2words(x: u32, y: u32) -> u32 {
    hash_finish(mhash_add(mhash_add(x, 0), y), 8)
}

/// Hash of the packet fields `fields` with `basis`. `eth_src` (and
/// `nw_src`/`nw_dst`, the same function) is checked against OVS
/// (`tests/trace_vs_ovs.rs`); the symmetric ones hash the same fields (so
/// they are symmetric where the name says so) but their values may differ
/// from OVS's.
pub fn flow_hash_fields(k: &FlowKey, fields: HashFields, basis: u16) -> u32 {
    let basis = u32::from(basis);
    let ip = k.dl_type == ethertype::IPV4;
    let ip6 = k.dl_type == ethertype::IPV6;
    match fields {
        HashFields::EthSrc => jhash_bytes(&k.dl_src, basis),
        HashFields::NwSrc if ip => jhash_bytes(&k.nw_src.to_be_bytes(), basis),
        HashFields::NwDst if ip => jhash_bytes(&k.nw_dst.to_be_bytes(), basis),
        HashFields::NwSrc if ip6 => jhash_bytes(&k.ipv6_src, basis),
        HashFields::NwDst if ip6 => jhash_bytes(&k.ipv6_dst, basis),
        HashFields::NwSrc | HashFields::NwDst => basis,
        HashFields::SymmetricL4
        | HashFields::SymmetricL3L4
        | HashFields::SymmetricL3L4Udp
        | HashFields::SymmetricL3 => {
            let mut buf = Vec::with_capacity(40);
            if fields == HashFields::SymmetricL4 {
                let eth: [u8; 6] = std::array::from_fn(|i| k.dl_src[i] ^ k.dl_dst[i]);
                buf.extend_from_slice(&eth);
                buf.extend_from_slice(&k.dl_type.to_be_bytes());
            }
            if ip {
                buf.extend_from_slice(&(k.nw_src ^ k.nw_dst).to_be_bytes());
            } else if ip6 {
                let x: [u8; 16] = std::array::from_fn(|i| k.ipv6_src[i] ^ k.ipv6_dst[i]);
                buf.extend_from_slice(&x);
            }
            if (ip || ip6) && fields != HashFields::SymmetricL3 {
                buf.push(k.nw_proto);
                let l4 = k.nw_proto == ipproto::TCP
                    || k.nw_proto == ipproto::SCTP
                    || (k.nw_proto == ipproto::UDP && fields != HashFields::SymmetricL3L4);
                if l4 {
                    buf.extend_from_slice(&(k.tp_src ^ k.tp_dst).to_be_bytes());
                }
            }
            jhash_bytes(&buf, basis)
        }
    }
}

/// Marks in `wc` the fields [`flow_hash_fields`] read for this packet.
pub fn mask_hash_fields(k: &FlowKey, fields: HashFields, wc: &mut FlowKey) {
    use crate::field::Field;
    let ip = k.dl_type == ethertype::IPV4;
    let ip6 = k.dl_type == ethertype::IPV6;
    match fields {
        HashFields::EthSrc => Field::DlSrc.unwildcard(wc),
        HashFields::NwSrc => {
            if ip {
                Field::NwSrc.unwildcard(wc);
            } else if ip6 {
                Field::Ipv6Src.unwildcard(wc);
            }
        }
        HashFields::NwDst => {
            if ip {
                Field::NwDst.unwildcard(wc);
            } else if ip6 {
                Field::Ipv6Dst.unwildcard(wc);
            }
        }
        _ => {
            if fields == HashFields::SymmetricL4 {
                Field::DlSrc.unwildcard(wc);
                Field::DlDst.unwildcard(wc);
            }
            if ip {
                Field::NwSrc.unwildcard(wc);
                Field::NwDst.unwildcard(wc);
            } else if ip6 {
                Field::Ipv6Src.unwildcard(wc);
                Field::Ipv6Dst.unwildcard(wc);
            }
            if (ip || ip6) && fields != HashFields::SymmetricL3 {
                Field::NwProto.unwildcard(wc);
                if matches!(k.nw_proto, ipproto::TCP | ipproto::UDP | ipproto::SCTP) {
                    Field::TpSrc.unwildcard(wc);
                    Field::TpDst.unwildcard(wc);
                }
            }
        }
    }
}

/// The link multipath picks for `hash` among `n_links`.
pub fn multipath_link(hash: u32, alg: MultipathAlgorithm, n_links: u32, arg: u32) -> u32 {
    match alg {
        MultipathAlgorithm::ModuloN => hash % n_links,
        MultipathAlgorithm::HashThreshold => {
            if n_links == 1 {
                0
            } else {
                hash / (u32::MAX / n_links + 1)
            }
        }
        MultipathAlgorithm::Hrw => {
            let mut best = 0;
            let mut best_w = hash_2words(hash, 0);
            for link in 1..n_links {
                let w = hash_2words(hash, link);
                if w > best_w {
                    best = link;
                    best_w = w;
                }
            }
            best
        }
        MultipathAlgorithm::IterHash => {
            // Hash again with a growing index until the link, masked to
            // `arg` bits (at least enough for n_links), is in range.
            let mut bits = arg.min(31);
            while bits < 31 && (1u32 << bits) < n_links {
                bits += 1;
            }
            let m = (1u32 << bits) - 1;
            let mut i = 0u32;
            loop {
                let link = hash_2words(hash, i) & m;
                if link < n_links {
                    return link;
                }
                i += 1;
            }
        }
    }
}

/// The member a bundle picks (`None` when no member is live).
pub fn bundle_member(
    members: &[PortNo],
    alg: BundleAlgorithm,
    hash: u32,
    live: &dyn Fn(PortNo) -> bool,
) -> Option<PortNo> {
    match alg {
        BundleAlgorithm::ActiveBackup => members.iter().copied().find(|p| live(*p)),
        BundleAlgorithm::Hrw => {
            let mut best: Option<(u32, PortNo)> = None;
            for (i, p) in members.iter().enumerate() {
                if live(*p) {
                    let h = hash_2words(i as u32, hash);
                    if best.is_none_or(|(bh, _)| h > bh) {
                        best = Some((h, *p));
                    }
                }
            }
            best.map(|(_, p)| p)
        }
    }
}
