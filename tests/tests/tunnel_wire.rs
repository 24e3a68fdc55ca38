//! Outer headers built by `wire::tunnel` decoded by an independent
//! implementation: tcpdump reads them from a pcap file and must see the
//! encapsulation, VNI/key, options and valid checksums we meant to write.
//! (No daemons, no namespaces: no e2e lock needed.)

use std::net::IpAddr;
use std::process::Command;

use wire::geneve::GeneveOption;
use wire::tunnel::{EncapHeader, EncapSpec, TunnelProto};

fn inner_icmp() -> Vec<u8> {
    // Ethernet + IPv4 + ICMP echo request 192.168.7.1 -> 192.168.7.2.
    let mut f = vec![0x02, 0, 0, 0, 0, 0xbb, 0x02, 0, 0, 0, 0, 0xaa, 0x08, 0x00];
    let mut ip = vec![
        0x45, 0, 0, 28, 0, 1, 0, 0, 64, 1, 0, 0, 192, 168, 7, 1, 192, 168, 7, 2,
    ];
    let c = wire::checksum::ipv4_header_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    let c = !wire::checksum::ones_complement_sum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&icmp);
    f
}

fn spec(proto: TunnelProto, v6: bool, csum: bool, opts: &[u8]) -> EncapSpec<'_> {
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
        key: Some(0x1234),
        dst_port: proto.default_port().unwrap_or(0),
        gbp: None,
        geneve_options: opts,
        oam: false,
        inner_protocol: 0x6558,
    }
}

fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// tcpdump's verbose decoding of `frames`, one string per packet.
fn tcpdump(frames: &[Vec<u8>]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tunnels.pcap");
    std::fs::write(&path, pcap(frames)).unwrap();
    // tcpdump comes from scripts/install-test-deps.sh.
    let out = Command::new("tcpdump")
        .args(["-nvvv", "-r"])
        .arg(&path)
        .output()
        .expect("tcpdump (scripts/install-test-deps.sh) runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut pkts: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with(|c: char| c.is_ascii_digit()) {
            pkts.push(String::new());
        }
        if let Some(p) = pkts.last_mut() {
            p.push_str(line);
            p.push('\n');
        }
    }
    pkts
}

fn encap(spec: &EncapSpec<'_>) -> Vec<u8> {
    let h = EncapHeader::build(spec).unwrap();
    let inner = inner_icmp();
    let mut buf = vec![0u8; h.len()];
    buf.extend_from_slice(&inner);
    h.write(&mut buf, 51234).unwrap();
    buf
}

#[test]
fn tcpdump_decodes_vxlan_geneve_and_gre_headers_we_build() {
    let mut opts = [0u8; 8];
    GeneveOption {
        class: 0x0102,
        typ: 0x80,
        data: &[0, 0, 0, 7],
    }
    .emit(&mut opts)
    .unwrap();
    let frames = vec![
        encap(&spec(TunnelProto::Vxlan, false, true, &[])),
        encap(&spec(TunnelProto::Geneve, false, false, &opts)),
        encap(&spec(TunnelProto::Gre, false, true, &[])),
        encap(&spec(TunnelProto::Vxlan, true, true, &[])),
    ];
    let pkts = tcpdump(&frames);
    for p in &pkts {
        eprintln!("{p}");
    }
    assert_eq!(pkts.len(), 4, "{pkts:?}");
    let vx = &pkts[0];
    assert!(vx.contains("10.99.0.1.51234 > 10.99.0.2.4789"), "{vx}");
    assert!(vx.contains("[udp sum ok]"), "{vx}");
    assert!(vx.contains("VXLAN, flags [I] (0x08), vni 4660"), "{vx}");
    assert!(
        vx.contains("192.168.7.1 > 192.168.7.2: ICMP echo request"),
        "{vx}"
    );
    let gn = &pkts[1];
    assert!(gn.contains("Geneve"), "{gn}");
    assert!(gn.contains("Flags [C], vni 0x1234"), "{gn}");
    assert!(
        gn.contains("(0x102) type 0x80(C) len 8 data 00000007"),
        "{gn}"
    );
    assert!(
        gn.contains("192.168.7.1 > 192.168.7.2: ICMP echo request"),
        "{gn}"
    );
    let gre = &pkts[2];
    assert!(gre.contains("GREv0"), "{gre}");
    assert!(gre.contains("key=0x1234"), "{gre}");
    assert!(
        gre.contains("192.168.7.1 > 192.168.7.2: ICMP echo request"),
        "{gre}"
    );
    let v6 = &pkts[3];
    assert!(v6.contains("fd00:99::1.51234 > fd00:99::2.4789"), "{v6}");
    assert!(v6.contains("[udp sum ok]"), "{v6}");
    assert!(v6.contains("vni 4660"), "{v6}");
    for p in &pkts {
        assert!(!p.contains("bad cksum") && !p.contains("incorrect"), "{p}");
    }
}
