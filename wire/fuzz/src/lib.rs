//! Checks behind the `decap` fuzz target, callable (and unit-tested) on
//! stable Rust.

use wire::tunnel::{DecapPolicy, EncapHeader, EncapSpec, TunnelProto, decap as wire_decap};
use wire::{Error, MacAddr};

/// Critical Geneve options this fuzz run "knows": one class, odd types.
fn known(class: u16, typ: u8) -> bool {
    class == 0x0102 && typ & 1 == 1
}

/// The first byte chooses the port (protocol, fixed key or `key=flow`);
/// the rest is the received frame. Decapsulation must not panic; what it
/// accepts must lie inside the frame, and re-encapsulating the inner frame
/// with the decoded metadata must decapsulate to the same metadata and
/// inner bytes.
pub fn decap(data: &[u8]) {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let proto = match sel % 3 {
        0 => TunnelProto::Vxlan,
        1 => TunnelProto::Geneve,
        _ => TunnelProto::Gre,
    };
    let key = (sel & 0x80 != 0).then_some(u64::from(sel & 0x0f));
    let policy = DecapPolicy {
        proto,
        dst_port: proto.default_port().unwrap_or(0),
        key,
        known_option: &known,
    };
    let Ok(d) = wire_decap(frame, &policy) else {
        return;
    };
    assert!(d.inner.start <= d.inner.end && d.inner.end <= frame.len());
    assert!(d.geneve_options.end <= frame.len());
    if let Some(k) = key {
        assert_eq!(d.meta.tun_id, k);
    }
    let inner = &frame[d.inner.clone()];
    let opts = &frame[d.geneve_options.clone()];
    let has_key = d.meta.flags & wire::tunnel::flags::KEY != 0;
    let spec = EncapSpec {
        proto,
        eth_src: MacAddr([2, 0, 0, 0, 0, 1]),
        eth_dst: MacAddr([2, 0, 0, 0, 0, 2]),
        ip_src: d.meta.ip_src,
        ip_dst: d.meta.ip_dst,
        ttl: d.meta.ttl,
        tos: d.meta.tos,
        df: d.meta.flags & wire::tunnel::flags::DONT_FRAGMENT != 0,
        csum: d.meta.flags & wire::tunnel::flags::CSUM != 0,
        key: has_key.then_some(d.meta.tun_id),
        dst_port: d.meta.tp_dst,
        gbp: (d.meta.gbp_id != 0 || d.meta.gbp_flags != 0).then_some(wire::vxlan::Gbp {
            flags: d.meta.gbp_flags,
            id: d.meta.gbp_id,
        }),
        geneve_options: opts,
        oam: d.meta.flags & wire::tunnel::flags::OAM != 0,
        inner_protocol: d.inner_protocol,
    };
    let h = EncapHeader::build(&spec).expect("decoded metadata re-encodes");
    let mut buf = vec![0u8; h.len()];
    buf.extend_from_slice(inner);
    match h.write(&mut buf, d.meta.tp_src) {
        Ok(()) => {}
        // A received frame near 64 KiB may not fit a bigger header.
        Err(Error::Unbuildable(_)) => return,
        Err(e) => panic!("unexpected {e}"),
    }
    let again = wire_decap(&buf, &policy).expect("re-encapsulated frame decapsulates");
    let mut want = d.meta;
    // A VXLAN GBP header with zero fields is not re-sent; flags follow.
    want.gbp_flags = again.meta.gbp_flags;
    want.gbp_id = again.meta.gbp_id;
    assert_eq!(again.meta, want);
    assert_eq!(&buf[again.inner.clone()], inner);
    assert_eq!(&buf[again.geneve_options.clone()], opts);
    assert_eq!(again.inner_protocol, d.inner_protocol);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(proto: TunnelProto, v6: bool, csum: bool) -> Vec<u8> {
        let (src, dst): (std::net::IpAddr, std::net::IpAddr) = if v6 {
            ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap())
        } else {
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap())
        };
        let opts = [0x01, 0x02, 0x81, 0x01, 0, 0, 0, 9];
        let spec = EncapSpec {
            proto,
            eth_src: MacAddr([2, 0, 0, 0, 0, 3]),
            eth_dst: MacAddr([2, 0, 0, 0, 0, 4]),
            ip_src: src,
            ip_dst: dst,
            ttl: 17,
            tos: 4,
            df: !v6,
            csum,
            key: Some(5),
            dst_port: proto.default_port().unwrap_or(0),
            gbp: None,
            geneve_options: if proto == TunnelProto::Geneve {
                &opts
            } else {
                &[]
            },
            oam: false,
            inner_protocol: 0x6558,
        };
        let h = EncapHeader::build(&spec).unwrap();
        let mut buf = vec![0u8; h.len()];
        buf.extend_from_slice(&[0xab; 20]);
        h.write(&mut buf, 40000).unwrap();
        buf
    }

    #[test]
    fn valid_packets_round_trip_for_every_port_kind() {
        for (i, proto) in [TunnelProto::Vxlan, TunnelProto::Geneve, TunnelProto::Gre]
            .into_iter()
            .enumerate()
        {
            for v6 in [false, true] {
                for csum in [false, true] {
                    let f = sample(proto, v6, csum);
                    let keyed = (0x80u8..=0xff)
                        .find(|s| usize::from(s % 3) == i && s & 0x0f == 5)
                        .unwrap();
                    for sel in [i as u8, keyed] {
                        let mut d = vec![sel];
                        d.extend_from_slice(&f);
                        decap(&d);
                    }
                }
            }
        }
    }

    /// Found by the fuzzer: a Geneve packet with the OAM flag must keep it
    /// through re-encapsulation.
    #[test]
    fn geneve_oam_flag_survives_re_encapsulation() {
        let hex = "0102000000000402000000000308004500004e000040004011269d0a0000010a0000029c4017c1003a000002ff655800000500010281010000000902000000000202000000000108004500001400010000400100000000000000000000";
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        decap(&bytes);
    }

    #[test]
    fn truncated_and_bit_flipped_packets_do_not_panic() {
        let mut seed = 0x1234_5678u32;
        for (i, proto) in [TunnelProto::Vxlan, TunnelProto::Geneve, TunnelProto::Gre]
            .into_iter()
            .enumerate()
        {
            let f = sample(proto, i == 1, true);
            for n in 0..=f.len() {
                let mut d = vec![i as u8];
                d.extend_from_slice(&f[..n]);
                decap(&d);
            }
            for _ in 0..2000 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let mut d = vec![i as u8];
                d.extend_from_slice(&f);
                let at = 1 + (seed as usize % f.len());
                d[at] ^= 1 << (seed >> 29);
                decap(&d);
            }
        }
    }
}
