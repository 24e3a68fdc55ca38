//! The test guest's frame building/parsing and command-line handling,
//! compiled for the host and checked against an independent packet parser
//! (etherparse), so a failing ping in a VM points at the network, not at
//! the guest's own code.

#[allow(dead_code)]
#[path = "../test-guest/src/net.rs"]
mod net;

#[allow(dead_code)]
#[path = "../test-guest/src/cmdline.rs"]
mod cmdline;

use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, Icmpv4Type, IpNumber, NetSlice,
    PacketBuilder, SlicedPacket, TransportSlice,
};

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const IP: [u8; 4] = [10, 9, 0, 10];
const PEER: [u8; 4] = [10, 9, 0, 1];

#[test]
fn arp_request_is_a_valid_broadcast_who_has() {
    let mut b = [0u8; 128];
    let n = net::arp_request(&mut b, &MAC, IP, PEER);
    let p = SlicedPacket::from_ethernet(&b[..n]).unwrap();
    let eth = p.link.unwrap().to_header().unwrap();
    let eth = eth.ethernet2().unwrap();
    assert_eq!(eth.destination, [0xff; 6]);
    assert_eq!(eth.source, MAC);
    assert_eq!(eth.ether_type, EtherType::ARP);
    let Some(NetSlice::Arp(arp)) = p.net else {
        panic!("not ARP: {:?}", p.net);
    };
    assert_eq!(arp.operation(), ArpOperation::REQUEST);
    assert_eq!(arp.hw_addr_type(), ArpHardwareId::ETHERNET);
    assert_eq!(arp.sender_hw_addr(), MAC);
    assert_eq!(arp.sender_protocol_addr(), IP);
    assert_eq!(arp.target_protocol_addr(), PEER);
}

fn arp_reply(sender_ip: [u8; 4], target_ip: [u8; 4]) -> Vec<u8> {
    let arp = ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        ArpOperation::REPLY,
        &PEER_MAC,
        &sender_ip,
        &MAC,
        &target_ip,
    )
    .unwrap();
    let mut out = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC, MAC)
        .arp(arp)
        .write(&mut out)
        .unwrap();
    out
}

#[test]
fn arp_reply_from_the_peer_yields_its_mac_and_others_are_ignored() {
    assert_eq!(
        net::parse_arp_reply(&arp_reply(PEER, IP), IP, PEER),
        Some(PEER_MAC)
    );
    assert_eq!(
        net::parse_arp_reply(&arp_reply([10, 9, 0, 7], IP), IP, PEER),
        None
    );
    assert_eq!(
        net::parse_arp_reply(&arp_reply(PEER, [10, 9, 0, 99]), IP, PEER),
        None
    );
    // Truncated frames are not a reply (and do not panic).
    let full = arp_reply(PEER, IP);
    for cut in 0..full.len() {
        let _ = net::parse_arp_reply(&full[..cut], IP, PEER);
    }
}

#[test]
fn echo_request_has_valid_ip_and_icmp_checksums() {
    let mut b = [0u8; 128];
    let n = net::icmp_echo_request(&mut b, &MAC, &PEER_MAC, IP, PEER, 0x4652, 7);
    let p = SlicedPacket::from_ethernet(&b[..n]).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4");
    };
    let h = ip.header().to_header();
    assert_eq!(h.source, IP);
    assert_eq!(h.destination, PEER);
    assert_eq!(h.protocol, IpNumber::ICMP);
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
        panic!("not ICMP");
    };
    let Icmpv4Type::EchoRequest(echo) = icmp.icmp_type() else {
        panic!("not an echo request");
    };
    assert_eq!((echo.id, echo.seq), (0x4652, 7));
    let header = icmp.header();
    assert_eq!(
        header.checksum,
        header.icmp_type.calc_checksum(icmp.payload())
    );
}

fn echo_reply(id: u16, seq: u16, from: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC, MAC)
        .ipv4(from, IP, 64)
        .icmpv4_echo_reply(id, seq)
        .write(&mut out, b"abcdefghijklmnopqrstuvwxyzabcdef")
        .unwrap();
    out
}

#[test]
fn echo_reply_is_matched_on_addresses_id_seq_and_checksum() {
    assert!(net::is_echo_reply(
        &echo_reply(0x4652, 3, PEER),
        PEER,
        IP,
        0x4652,
        3
    ));
    assert!(!net::is_echo_reply(
        &echo_reply(0x4652, 4, PEER),
        PEER,
        IP,
        0x4652,
        3
    ));
    assert!(!net::is_echo_reply(
        &echo_reply(0x1111, 3, PEER),
        PEER,
        IP,
        0x4652,
        3
    ));
    assert!(!net::is_echo_reply(
        &echo_reply(0x4652, 3, [10, 9, 0, 8]),
        PEER,
        IP,
        0x4652,
        3
    ));
    let mut corrupt = echo_reply(0x4652, 3, PEER);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert!(!net::is_echo_reply(&corrupt, PEER, IP, 0x4652, 3));
    let full = echo_reply(0x4652, 3, PEER);
    for cut in 0..full.len() {
        assert!(
            !net::is_echo_reply(&full[..cut], PEER, IP, 0x4652, 3),
            "cut at {cut}"
        );
    }
}

#[test]
fn loop_frames_carry_their_sequence_whatever_the_macs_become() {
    let mut b = [0u8; 128];
    let n = net::loop_frame(&mut b, &MAC, 42);
    let mut f = b[..n].to_vec();
    assert_eq!(net::parse_loop_frame(&f), Some(42));
    // A macswap forwarder exchanges source and destination.
    let (dst, src) = f.split_at_mut(6);
    dst.swap_with_slice(&mut src[..6]);
    assert_eq!(net::parse_loop_frame(&f), Some(42));
    f[14] = b'X';
    assert_eq!(net::parse_loop_frame(&f), None);
    assert_eq!(net::parse_loop_frame(&f[..20]), None);
}

#[test]
fn command_line_sets_addresses_mode_counts_and_the_first_mmio_device() {
    let c = cmdline::Config::parse(
        b"console=ttyS0 testguest.ip=192.168.7.2 testguest.peer=192.168.7.1 testguest.mode=loop \
          testguest.count=9 virtio_mmio.device=4K@0xd0002000:7 virtio_mmio.device=4K@0xd0003000:8",
    );
    assert_eq!(c.ip, [192, 168, 7, 2]);
    assert_eq!(c.peer, [192, 168, 7, 1]);
    assert_eq!(c.mode, cmdline::Mode::Loop);
    assert_eq!(c.count, 9);
    assert_eq!(c.mmio_base, 0xd000_2000);
    assert!(!c.pci);
    assert!(cmdline::Config::parse(b"testguest.transport=pci").pci);
}

#[test]
fn command_line_defaults_and_garbage_fall_back_to_defaults() {
    let d = cmdline::Config::parse(b"");
    assert_eq!((d.ip, d.peer, d.mode), (IP, PEER, cmdline::Mode::Ping));
    let g = cmdline::Config::parse(
        b"testguest.ip=10.9.0.300 testguest.peer=1.2.3 testguest.count=x virtio_mmio.device=4K@zz:5",
    );
    assert_eq!(
        (g.ip, g.peer, g.count, g.mmio_base),
        (IP, PEER, 3, 0xd000_0000)
    );
    // Large counts are for pingloop (loop mode takes at most 64 itself).
    assert_eq!(
        cmdline::Config::parse(b"testguest.count=5000000").count,
        1_000_000
    );
}

#[test]
fn every_virtio_mmio_window_is_kept_and_the_first_is_the_nic() {
    let c = cmdline::Config::parse(
        b"virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6 testguest.mode=disk testguest.write=12 testguest.interval=99999999",
    );
    assert_eq!(c.mmio_base, 0xd000_0000);
    assert_eq!(&c.mmio_bases[..c.mmio_count], &[0xd000_0000, 0xd000_1000]);
    assert_eq!(c.mode, cmdline::Mode::Disk);
    assert_eq!(c.write_sector, 12);
    assert_eq!(c.interval, 99_999_999);
    assert_eq!(
        cmdline::Config::parse(b"testguest.mode=pingloop").mode,
        cmdline::Mode::PingLoop
    );
}
