use super::*;
use crate::geneve::GeneveOption;

fn inner_frame() -> Vec<u8> {
    // An Ethernet frame carrying 30 bytes of IPv4-ish payload.
    let mut f = vec![0x02, 0, 0, 0, 0, 0xbb, 0x02, 0, 0, 0, 0, 0xaa, 0x08, 0x00];
    f.extend((0..31u8).map(|i| i.wrapping_mul(7)));
    f
}

fn spec(proto: TunnelProto, v6: bool, csum: bool) -> EncapSpec<'static> {
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        ("fd00:99::1".parse().unwrap(), "fd00:99::2".parse().unwrap())
    } else {
        ("10.99.0.1".parse().unwrap(), "10.99.0.2".parse().unwrap())
    };
    EncapSpec {
        proto,
        eth_src: "02:00:00:00:01:01".parse().unwrap(),
        eth_dst: "02:00:00:00:01:02".parse().unwrap(),
        ip_src: src,
        ip_dst: dst,
        ttl: 64,
        tos: 0,
        df: true,
        csum,
        key: Some(123),
        dst_port: proto.default_port().unwrap_or(0),
        gbp: None,
        geneve_options: &[],
        oam: false,
        inner_protocol: geneve::PROTO_ETHERNET,
    }
}

fn encap(h: &EncapHeader, inner: &[u8], src_port: u16) -> Vec<u8> {
    let mut buf = vec![0u8; h.len()];
    buf.extend_from_slice(inner);
    h.write(&mut buf, src_port).unwrap();
    buf
}

fn any_option(_: u16, _: u8) -> bool {
    true
}

fn policy(proto: TunnelProto, key: Option<u64>) -> DecapPolicy<'static> {
    DecapPolicy {
        proto,
        dst_port: proto.default_port().unwrap_or(0),
        key,
        known_option: &any_option,
    }
}

#[test]
fn vxlan_over_ipv4_has_the_rfc_layout_and_decapsulates_to_the_inner_frame() {
    let h = EncapHeader::build(&spec(TunnelProto::Vxlan, false, false)).unwrap();
    assert_eq!(h.len(), 50);
    let inner = inner_frame();
    let pkt = encap(&h, &inner, 50000);
    // Ethernet, IPv4 with DF and protocol UDP, UDP 50000 -> 4789, VXLAN I flag, VNI 123.
    assert_eq!(&pkt[12..14], &[0x08, 0x00]);
    assert_eq!(pkt[14], 0x45);
    assert_eq!(
        u16::from_be_bytes([pkt[16], pkt[17]]) as usize,
        36 + inner.len()
    );
    assert_eq!(&pkt[20..22], &[0x40, 0x00]);
    assert_eq!(pkt[23], 17);
    assert_eq!(checksum::ones_complement_sum(&pkt[14..34]), 0xffff);
    assert_eq!(&pkt[34..38], &[0xc3, 0x50, 0x12, 0xb5]);
    assert_eq!(
        u16::from_be_bytes([pkt[38], pkt[39]]) as usize,
        16 + inner.len()
    );
    assert_eq!(&pkt[40..42], &[0, 0], "no UDP checksum without csum");
    assert_eq!(&pkt[42..50], &[0x08, 0, 0, 0, 0, 0, 123, 0]);
    let d = decap(&pkt, &policy(TunnelProto::Vxlan, Some(123))).unwrap();
    assert_eq!(&pkt[d.inner.clone()], &inner[..]);
    assert_eq!(d.meta.tun_id, 123);
    assert_eq!(d.meta.ip_src, "10.99.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(d.meta.ip_dst, "10.99.0.2".parse::<IpAddr>().unwrap());
    assert_eq!(d.meta.ttl, 64);
    assert_eq!(d.meta.tp_src, 50000);
    assert_eq!(d.meta.flags, flags::KEY | flags::DONT_FRAGMENT);
    assert_eq!(d.inner_protocol, 0x6558);
}

#[test]
fn outer_udp_checksum_is_computed_when_csum_is_set_and_verified_on_receive() {
    for v6 in [false, true] {
        let h = EncapHeader::build(&spec(TunnelProto::Vxlan, v6, true)).unwrap();
        let mut pkt = encap(&h, &inner_frame(), 40000);
        let l4 = if v6 { 54 } else { 34 };
        assert_ne!(&pkt[l4 + 6..l4 + 8], &[0, 0]);
        let d = decap(&pkt, &policy(TunnelProto::Vxlan, None)).unwrap();
        assert_ne!(d.meta.flags & flags::CSUM, 0);
        let last = pkt.len() - 1;
        pkt[last] ^= 0x55;
        assert_eq!(
            decap(&pkt, &policy(TunnelProto::Vxlan, None)),
            Err(Error::Checksum(Layer::Udp))
        );
    }
}

#[test]
fn geneve_over_ipv6_carries_options_to_the_receiver() {
    let mut opts = [0u8; 8];
    GeneveOption {
        class: 0x0102,
        typ: 0x80,
        data: &[0, 0, 0, 42],
    }
    .emit(&mut opts)
    .unwrap();
    let mut s = spec(TunnelProto::Geneve, true, true);
    s.geneve_options = &opts;
    let h = EncapHeader::build(&s).unwrap();
    assert_eq!(h.len(), 14 + 40 + 8 + 8 + 8);
    let inner = inner_frame();
    let pkt = encap(&h, &inner, 33333);
    assert_eq!(&pkt[12..14], &[0x86, 0xdd]);
    assert_eq!(pkt[20], 17);
    let known = |c: u16, t: u8| c == 0x0102 && t == 0x80;
    let p = DecapPolicy {
        known_option: &known,
        ..policy(TunnelProto::Geneve, Some(123))
    };
    let d = decap(&pkt, &p).unwrap();
    assert_eq!(&pkt[d.inner.clone()], &inner[..]);
    assert_eq!(&pkt[d.geneve_options.clone()], &opts[..]);
    assert_eq!(d.meta.ip_src, "fd00:99::1".parse::<IpAddr>().unwrap());
    assert_eq!(d.meta.tp_dst, 6081);
    let unknown = |_: u16, _: u8| false;
    let strict = DecapPolicy {
        known_option: &unknown,
        ..p
    };
    assert_eq!(
        decap(&pkt, &strict),
        Err(Error::UnknownCriticalOption {
            class: 0x0102,
            typ: 0x80
        })
    );
}

#[test]
fn gre_with_key_and_checksum_round_trips() {
    let h = EncapHeader::build(&spec(TunnelProto::Gre, false, true)).unwrap();
    assert_eq!(h.len(), 14 + 20 + 12);
    let inner = inner_frame();
    let mut pkt = encap(&h, &inner, 0);
    assert_eq!(pkt[23], 47);
    assert_eq!(&pkt[34..38], &[0xa0, 0x00, 0x65, 0x58]);
    assert_eq!(&pkt[42..46], &123u32.to_be_bytes());
    let d = decap(&pkt, &policy(TunnelProto::Gre, Some(123))).unwrap();
    assert_eq!(&pkt[d.inner.clone()], &inner[..]);
    assert_eq!(
        d.meta.flags,
        flags::KEY | flags::CSUM | flags::DONT_FRAGMENT
    );
    pkt[50] ^= 1;
    assert_eq!(
        decap(&pkt, &policy(TunnelProto::Gre, None)),
        Err(Error::Checksum(Layer::Gre))
    );
}

#[test]
fn gre_without_key_matches_key_zero_only() {
    let mut s = spec(TunnelProto::Gre, false, false);
    s.key = None;
    let h = EncapHeader::build(&s).unwrap();
    assert_eq!(h.len(), 14 + 20 + 4);
    let pkt = encap(&h, &inner_frame(), 0);
    let d = decap(&pkt, &policy(TunnelProto::Gre, Some(0))).unwrap();
    assert_eq!(d.meta.flags & flags::KEY, 0);
    assert_eq!(
        decap(&pkt, &policy(TunnelProto::Gre, Some(5))),
        Err(Error::WrongVni { got: 0, want: 5 })
    );
}

#[test]
fn wrong_vni_wrong_port_and_wrong_protocol_are_refused() {
    let h = EncapHeader::build(&spec(TunnelProto::Vxlan, false, false)).unwrap();
    let pkt = encap(&h, &inner_frame(), 1);
    assert_eq!(
        decap(&pkt, &policy(TunnelProto::Vxlan, Some(124))),
        Err(Error::WrongVni {
            got: 123,
            want: 124
        })
    );
    assert_eq!(
        decap(&pkt, &policy(TunnelProto::Geneve, None)),
        Err(Error::NotTunnel {
            proto: 17,
            port: 4789
        })
    );
    assert!(matches!(
        decap(&pkt, &policy(TunnelProto::Gre, None)),
        Err(Error::NotTunnel { proto: 17, .. })
    ));
    let mut arp = pkt.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(
        decap(&arp, &policy(TunnelProto::Vxlan, None)),
        Err(Error::NotIp(0x0806))
    );
}

#[test]
fn every_truncation_of_a_tunnel_packet_is_an_error_not_a_panic() {
    for proto in [TunnelProto::Vxlan, TunnelProto::Geneve, TunnelProto::Gre] {
        for v6 in [false, true] {
            let h = EncapHeader::build(&spec(proto, v6, false)).unwrap();
            let pkt = encap(&h, &[], 7);
            let p = policy(proto, None);
            assert!(decap(&pkt, &p).is_ok());
            for n in 0..pkt.len() {
                assert!(decap(&pkt[..n], &p).is_err(), "{proto} v6={v6} cut at {n}");
            }
        }
    }
}

#[test]
fn short_headers_report_the_layer_that_is_cut() {
    let h = EncapHeader::build(&spec(TunnelProto::Vxlan, false, false)).unwrap();
    let mut pkt = encap(&h, &[], 7);
    // Shrink the IP and UDP lengths so the VXLAN header is cut at 4 bytes.
    pkt.truncate(46);
    let tot = (46 - 14) as u16;
    pkt[16..18].copy_from_slice(&tot.to_be_bytes());
    pkt[24..26].copy_from_slice(&[0, 0]);
    let c = checksum::ipv4_header_checksum(&pkt[14..34]);
    pkt[24..26].copy_from_slice(&c.to_be_bytes());
    pkt[38..40].copy_from_slice(&12u16.to_be_bytes());
    assert_eq!(
        decap(&pkt, &policy(TunnelProto::Vxlan, None)),
        Err(Error::Truncated {
            layer: Layer::Vxlan,
            need: 8,
            have: 4
        })
    );
}

#[test]
fn outer_padding_after_the_ip_packet_is_not_part_of_the_inner_frame() {
    let h = EncapHeader::build(&spec(TunnelProto::Vxlan, false, false)).unwrap();
    let inner = inner_frame();
    let mut pkt = encap(&h, &inner, 7);
    pkt.extend_from_slice(&[0xee; 6]);
    let d = decap(&pkt, &policy(TunnelProto::Vxlan, None)).unwrap();
    assert_eq!(&pkt[d.inner], &inner[..]);
}

#[test]
fn vlan_tagged_outer_frames_are_decapsulated() {
    let h = EncapHeader::build(&spec(TunnelProto::Vxlan, false, false)).unwrap();
    let inner = inner_frame();
    let pkt = encap(&h, &inner, 7);
    let mut tagged = pkt[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    tagged.extend_from_slice(&pkt[12..]);
    let d = decap(&tagged, &policy(TunnelProto::Vxlan, None)).unwrap();
    assert_eq!(&tagged[d.inner], &inner[..]);
}

#[test]
fn header_build_refuses_mixed_families_and_oversized_keys() {
    let mut s = spec(TunnelProto::Vxlan, false, false);
    s.ip_dst = "fd00::2".parse().unwrap();
    assert!(EncapHeader::build(&s).is_err());
    let mut s = spec(TunnelProto::Vxlan, false, false);
    s.key = Some(1 << 24);
    assert!(EncapHeader::build(&s).is_err());
    let mut s = spec(TunnelProto::Gre, false, false);
    s.key = Some(0xffff_ffff);
    assert!(EncapHeader::build(&s).is_ok());
}

#[test]
fn source_port_stays_in_range_and_follows_the_hash() {
    assert_eq!(udp_src_port(0, SRC_PORT_MIN, SRC_PORT_MAX), SRC_PORT_MIN);
    assert_eq!(
        udp_src_port(u32::MAX, SRC_PORT_MIN, SRC_PORT_MAX),
        SRC_PORT_MAX
    );
    let mut seen = std::collections::HashSet::new();
    for i in 0..1000u32 {
        let p = udp_src_port(i.wrapping_mul(0x9e37_79b9), SRC_PORT_MIN, SRC_PORT_MAX);
        assert!((SRC_PORT_MIN..=SRC_PORT_MAX).contains(&p));
        seen.insert(p);
    }
    assert!(seen.len() > 900, "hashes spread over the range");
}

#[test]
fn header_text_has_ovs_tnl_push_layout() {
    let h = EncapHeader::build(&spec(TunnelProto::Vxlan, false, false)).unwrap();
    assert_eq!(
        h.ovs_text(),
        "header(size=50,type=4,eth(dst=02:00:00:00:01:02,src=02:00:00:00:01:01,dl_type=0x0800),\
         ipv4(src=10.99.0.1,dst=10.99.0.2,proto=17,tos=0,ttl=64,frag=0x4000),\
         udp(src=0,dst=4789,csum=0x0),vxlan(flags=0x8000000,vni=0x7b))"
    );
    let h = EncapHeader::build(&spec(TunnelProto::Gre, true, true)).unwrap();
    assert_eq!(
        h.ovs_text(),
        "header(size=66,type=109,eth(dst=02:00:00:00:01:02,src=02:00:00:00:01:01,dl_type=0x86dd),\
         ipv6(src=fd00:99::1,dst=fd00:99::2,label=0,proto=47,tclass=0x0,hlimit=64),\
         gre((flags=0xa000,proto=0x6558),csum=0x0,key=0x7b))"
    );
}

#[test]
fn udp_tunnels_over_ipv6_always_carry_a_checksum_and_gre_only_when_asked() {
    let h = EncapHeader::build(&spec(TunnelProto::Geneve, true, false)).unwrap();
    assert!(h.has_checksum());
    let pkt = encap(&h, &inner_frame(), 40000);
    assert_ne!(&pkt[60..62], &[0, 0]);
    assert!(
        !EncapHeader::build(&spec(TunnelProto::Geneve, false, false))
            .unwrap()
            .has_checksum()
    );
    assert!(
        !EncapHeader::build(&spec(TunnelProto::Gre, true, false))
            .unwrap()
            .has_checksum()
    );
}
