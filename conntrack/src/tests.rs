//! Tracker behaviour on real frames.

use std::net::IpAddr;

use flows::packet::{ipv4_header_checksum, l4_checksum_full, l4_csum_offset};
use flows::parse::extract;
use proptest::prelude::*;

use super::*;
use crate::tcp::{ACK, FIN, RST, SYN};
use crate::testutil::{eth, frame_df as frame, run};

mod alg;
mod alg_nat;

// ---------------------------------------------------------------------------
// Frame builders.

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp_seg(sport: u16, dport: u16, seq: u32, ack: u32, flags: u16, payload: usize) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&seq.to_be_bytes());
    h.extend_from_slice(&ack.to_be_bytes());
    h.push(5 << 4);
    h.push(flags as u8);
    h.extend_from_slice(&65535u16.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]);
    h.extend(std::iter::repeat_n(0xab, payload));
    h
}

fn tcp(src: &str, dst: &str, sport: u16, dport: u16, seq: u32, ack: u32, flags: u16) -> Vec<u8> {
    frame(src, dst, 6, &tcp_seg(sport, dport, seq, ack, flags, 0))
}

fn udp(src: &str, dst: &str, sport: u16, dport: u16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&[0, 0, 1, 2, 3, 4]);
    frame(src, dst, 17, &h)
}

fn icmp_echo(src: &str, dst: &str, ty: u8, id: u16) -> Vec<u8> {
    let v6 = src.contains(':');
    let mut h = vec![ty, 0, 0, 0];
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&[0, 1, 9, 9, 9, 9]);
    frame(src, dst, if v6 { 58 } else { 1 }, &h)
}

/// An ICMPv4 error (`ty`/`code`) from `src` to `dst` quoting the IP header
/// and first 8 L4 bytes of `orig` (an Ethernet frame).
fn icmp_error(src: &str, dst: &str, ty: u8, code: u8, orig: &[u8]) -> Vec<u8> {
    let mut h = vec![ty, code, 0, 0, 0, 0, 0, 0];
    h.extend_from_slice(&orig[14..14 + 28]);
    frame(src, dst, 1, &h)
}

fn zone(z: u16) -> CtArgs {
    CtArgs {
        zone: z,
        ..CtArgs::default()
    }
}

fn commit(z: u16) -> CtArgs {
    CtArgs {
        zone: z,
        commit: true,
        ..CtArgs::default()
    }
}

const TRK: CtState = CtState::TRK;
const NEW: CtState = CtState::NEW;
const EST: CtState = CtState::EST;
const RPL: CtState = CtState::RPL;
const INV: CtState = CtState::INV;
const REL: CtState = CtState::REL;

fn st(s: CtState) -> CtState {
    s
}

/// IPv4 header and L4 checksums of `f` are correct.
fn assert_checksums_valid(f: &[u8]) {
    let (_, lay) = extract(f, 0).unwrap();
    let l3 = usize::from(lay.l3_ofs.unwrap());
    if f[12..14] == [8, 0] {
        let got = u16::from_be_bytes([f[l3 + 10], f[l3 + 11]]);
        assert_eq!(
            got,
            ipv4_header_checksum(&f[l3..l3 + 20]),
            "IPv4 header checksum"
        );
    }
    let at = l4_csum_offset(&lay).unwrap();
    let got = u16::from_be_bytes([f[at], f[at + 1]]);
    assert_eq!(got, l4_checksum_full(f, &lay).unwrap(), "L4 checksum");
}

fn ipv4_addrs(f: &[u8]) -> (IpAddr, IpAddr) {
    let a = |o: usize| IpAddr::from([f[o], f[o + 1], f[o + 2], f[o + 3]]);
    (a(26), a(30))
}

fn ports(f: &[u8]) -> (u16, u16) {
    (
        u16::from_be_bytes([f[34], f[35]]),
        u16::from_be_bytes([f[36], f[37]]),
    )
}

// ---------------------------------------------------------------------------
// The stateful firewall of ovs-actions(7).

#[test]
fn firewall_tcp_handshake_is_new_then_established_both_ways() {
    let ct = Conntrack::new(CtConfig::default());
    let mut syn = tcp("10.0.0.1", "10.0.0.2", 1234, 80, 1000, 0, SYN);
    assert_eq!(run(&ct, &mut syn.clone(), &zone(0), 0).state, st(TRK | NEW));
    assert_eq!(ct.nconns(), 0, "a ct without commit does not remember");
    let r = run(&ct, &mut syn, &commit(0), 0);
    assert_eq!(r.state, TRK | NEW);
    assert_eq!(r.orig.unwrap().sport, 1234);
    assert_eq!(ct.nconns(), 1);

    let mut synack = tcp("10.0.0.2", "10.0.0.1", 80, 1234, 5000, 1001, SYN | ACK);
    assert_eq!(run(&ct, &mut synack, &zone(0), 1).state, TRK | EST | RPL);
    let mut ack = tcp("10.0.0.1", "10.0.0.2", 1234, 80, 1001, 5001, ACK);
    let r = run(&ct, &mut ack, &zone(0), 2);
    assert_eq!(r.state, TRK | EST);
    assert_eq!(r.orig.unwrap().ct_tp_dst(), 80);

    // Far outside the window: invalid.
    let mut far = frame(
        "10.0.0.1",
        "10.0.0.2",
        6,
        &tcp_seg(1234, 80, 1001 + 0x4000_0000, 5001, ACK, 10),
    );
    assert_eq!(run(&ct, &mut far, &zone(0), 3).state, TRK | INV);
    // In window again: fine.
    let mut data = frame(
        "10.0.0.1",
        "10.0.0.2",
        6,
        &tcp_seg(1234, 80, 1001, 5001, ACK, 100),
    );
    assert_eq!(run(&ct, &mut data, &zone(0), 4).state, TRK | EST);
}

#[test]
fn outside_syn_without_commit_leaves_no_state_and_the_answer_is_invalid() {
    let ct = Conntrack::new(CtConfig::default());
    let mut syn = tcp("192.0.2.9", "10.0.0.1", 4000, 22, 77, 0, SYN);
    assert_eq!(run(&ct, &mut syn, &zone(0), 0).state, TRK | NEW);
    let mut synack = tcp("10.0.0.1", "192.0.2.9", 22, 4000, 900, 78, SYN | ACK);
    assert_eq!(run(&ct, &mut synack, &zone(0), 1).state, TRK | INV);
    let mut bad = tcp("10.0.0.1", "192.0.2.9", 22, 4000, 900, 78, SYN | RST);
    assert_eq!(run(&ct, &mut bad, &commit(0), 1).state, TRK | INV);
    assert_eq!(ct.nconns(), 0);
    assert_eq!(ct.counters().invalid, 2);
}

#[test]
fn tcp_liberal_mode_accepts_a_segment_outside_the_window() {
    let ct = Conntrack::new(CtConfig {
        tcp_seq_check: false,
        ..CtConfig::default()
    });
    run(
        &ct,
        &mut tcp("10.0.0.1", "10.0.0.2", 1, 2, 10, 0, SYN),
        &commit(0),
        0,
    );
    run(
        &ct,
        &mut tcp("10.0.0.2", "10.0.0.1", 2, 1, 50, 11, SYN | ACK),
        &zone(0),
        0,
    );
    let mut far = frame(
        "10.0.0.1",
        "10.0.0.2",
        6,
        &tcp_seg(1, 2, 11 + 0x4000_0000, 51, ACK, 10),
    );
    assert_eq!(run(&ct, &mut far, &zone(0), 1).state, TRK | EST);
    ct.set_tcp_seq_check(true);
    let mut far2 = frame(
        "10.0.0.1",
        "10.0.0.2",
        6,
        &tcp_seg(1, 2, 11 + 0x7000_0000, 51, ACK, 10),
    );
    assert_eq!(run(&ct, &mut far2, &zone(0), 1).state, TRK | INV);
}

#[test]
fn tcp_close_then_new_syn_starts_a_new_connection() {
    let ct = Conntrack::new(CtConfig::default());
    run(
        &ct,
        &mut tcp("10.0.0.1", "10.0.0.2", 1, 2, 10, 0, SYN),
        &commit(0),
        0,
    );
    run(
        &ct,
        &mut tcp("10.0.0.2", "10.0.0.1", 2, 1, 50, 11, SYN | ACK),
        &zone(0),
        0,
    );
    run(
        &ct,
        &mut tcp("10.0.0.1", "10.0.0.2", 1, 2, 11, 51, ACK | FIN),
        &zone(0),
        0,
    );
    run(
        &ct,
        &mut tcp("10.0.0.2", "10.0.0.1", 2, 1, 51, 12, ACK | FIN),
        &zone(0),
        0,
    );
    run(
        &ct,
        &mut tcp("10.0.0.1", "10.0.0.2", 1, 2, 12, 52, ACK),
        &zone(0),
        0,
    );
    let dumped = ct.dump(None)[0].to_string();
    assert!(dumped.ends_with("protoinfo=(state=TIME_WAIT)"), "{dumped}");
    let r = run(
        &ct,
        &mut tcp("10.0.0.1", "10.0.0.2", 1, 2, 9999, 0, SYN),
        &commit(0),
        1,
    );
    assert_eq!(r.state, TRK | NEW);
    assert_eq!(ct.nconns(), 1);
    assert!(
        ct.dump(None)[0]
            .to_string()
            .ends_with("protoinfo=(state=SYN_SENT)")
    );
}

#[test]
fn udp_second_packet_is_new_and_answered_ones_established_as_in_ovs() {
    let ct = Conntrack::new(CtConfig::default());
    let mut out = udp("10.0.0.1", "8.8.8.8", 5353, 53);
    assert_eq!(run(&ct, &mut out.clone(), &commit(0), 0).state, TRK | NEW);
    assert_eq!(run(&ct, &mut out.clone(), &zone(0), 1).state, TRK | NEW);
    assert_eq!(run(&ct, &mut out, &zone(0), 1).state, TRK | EST);
    let mut back = udp("8.8.8.8", "10.0.0.1", 53, 5353);
    assert_eq!(run(&ct, &mut back, &zone(0), 2).state, TRK | EST | RPL);
    let mut out = udp("10.0.0.1", "8.8.8.8", 5353, 53);
    assert_eq!(run(&ct, &mut out, &zone(0), 3).state, TRK | EST);
}

#[test]
fn icmp_echo_is_a_connection_and_a_lone_reply_is_invalid() {
    let ct = Conntrack::new(CtConfig::default());
    let mut lone = icmp_echo("10.0.0.2", "10.0.0.1", 0, 7);
    assert_eq!(run(&ct, &mut lone, &commit(0), 0).state, TRK | INV);
    let mut req = icmp_echo("10.0.0.1", "10.0.0.2", 8, 7);
    assert_eq!(run(&ct, &mut req, &commit(0), 0).state, TRK | NEW);
    let mut rep = icmp_echo("10.0.0.2", "10.0.0.1", 0, 7);
    assert_eq!(run(&ct, &mut rep, &zone(0), 1).state, TRK | EST | RPL);
    let mut other_id = icmp_echo("10.0.0.2", "10.0.0.1", 0, 8);
    assert_eq!(run(&ct, &mut other_id, &zone(0), 1).state, TRK | INV);
}

#[test]
fn ipv6_tcp_and_icmpv6_echo_are_tracked() {
    let ct = Conntrack::new(CtConfig::default());
    let mut syn = tcp("fd00::1", "fd00::2", 4321, 443, 1, 0, SYN);
    assert_eq!(run(&ct, &mut syn, &commit(0), 0).state, TRK | NEW);
    let mut synack = tcp("fd00::2", "fd00::1", 443, 4321, 100, 2, SYN | ACK);
    assert_eq!(run(&ct, &mut synack, &zone(0), 0).state, TRK | EST | RPL);
    let mut req = icmp_echo("fd00::1", "fd00::2", 128, 3);
    assert_eq!(run(&ct, &mut req, &commit(0), 0).state, TRK | NEW);
    let mut rep = icmp_echo("fd00::2", "fd00::1", 129, 3);
    assert_eq!(run(&ct, &mut rep, &zone(0), 0).state, TRK | EST | RPL);
    let mut lines: Vec<String> = ct.dump(None).iter().map(|e| e.to_string()).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "icmpv6,orig=(src=fd00::1,dst=fd00::2,id=3,type=128,code=0),reply=(src=fd00::2,dst=fd00::1,id=3,type=129,code=0)",
            "tcp,orig=(src=fd00::1,dst=fd00::2,sport=4321,dport=443),reply=(src=fd00::2,dst=fd00::1,sport=443,dport=4321),protoinfo=(state=ESTABLISHED)",
        ]
    );
}

#[test]
fn icmp_error_about_a_tcp_connection_is_related_and_unknown_ones_invalid() {
    let ct = Conntrack::new(CtConfig::default());
    let syn = tcp("10.0.0.1", "10.0.0.2", 1234, 80, 1000, 0, SYN);
    run(&ct, &mut syn.clone(), &commit(0), 0);
    // A router tells the client its SYN could not be delivered.
    let mut err = icmp_error("192.0.2.254", "10.0.0.1", 3, 1, &syn);
    let r = run(&ct, &mut err, &zone(0), 1);
    assert_eq!(r.state, TRK | REL | RPL);
    assert_eq!(r.orig.unwrap().dport, 80);
    let other = tcp("10.0.0.1", "10.0.0.3", 1234, 80, 1000, 0, SYN);
    let mut err2 = icmp_error("192.0.2.254", "10.0.0.1", 3, 1, &other);
    assert_eq!(run(&ct, &mut err2, &zone(0), 1).state, TRK | INV);
    // An error quoting the connection's packet but sent to someone else
    // than that packet's sender is invalid.
    let mut misdirected = icmp_error("192.0.2.254", "10.0.0.9", 3, 1, &syn);
    assert_eq!(run(&ct, &mut misdirected, &zone(0), 1).state, TRK | INV);
}

#[test]
fn zones_keep_identical_tuples_apart() {
    let ct = Conntrack::new(CtConfig::default());
    let pkt = udp("10.0.0.1", "10.0.0.2", 1000, 2000);
    assert_eq!(run(&ct, &mut pkt.clone(), &commit(1), 0).state, TRK | NEW);
    assert_eq!(run(&ct, &mut pkt.clone(), &commit(2), 0).state, TRK | NEW);
    assert_eq!(ct.nconns(), 2);
    let mut back = udp("10.0.0.2", "10.0.0.1", 2000, 1000);
    let r = run(&ct, &mut back.clone(), &zone(2), 1);
    assert_eq!((r.state, r.zone), (TRK | EST | RPL, 2));
    assert_eq!(run(&ct, &mut back, &zone(3), 1).state, TRK | NEW);
    assert_eq!(ct.zone_count(1), 1);
    assert_eq!(
        ct.flush(&FlushFilter {
            zone: Some(1),
            tuple: None
        }),
        1
    );
    assert_eq!(ct.nconns(), 1);
    assert_eq!(ct.dump(None)[0].zone, 2);
}

#[test]
fn mark_and_label_are_set_on_commit_with_masks_and_reported() {
    let ct = Conntrack::new(CtConfig::default());
    let args = CtArgs {
        set_mark: Some((0x12, 0xff)),
        set_label: Some((1 << 100, 1 << 100)),
        ..commit(5)
    };
    let r = run(&ct, &mut udp("10.0.0.1", "10.0.0.2", 1, 2), &args, 0);
    assert_eq!((r.mark, r.label), (0x12, 1 << 100));
    // Without commit, exec is not applied.
    let no = CtArgs {
        commit: false,
        set_mark: Some((0x100, 0xf00)),
        ..zone(5)
    };
    let r = run(&ct, &mut udp("10.0.0.2", "10.0.0.1", 2, 1), &no, 1);
    assert_eq!(r.mark, 0x12);
    let again = CtArgs {
        set_mark: Some((0x300, 0xf00)),
        set_label: None,
        ..commit(5)
    };
    let r = run(&ct, &mut udp("10.0.0.2", "10.0.0.1", 2, 1), &again, 2);
    assert_eq!((r.mark, r.label), (0x312, 1 << 100));
}

#[test]
fn force_commit_in_the_reply_direction_replaces_the_connection() {
    let ct = Conntrack::new(CtConfig::default());
    run(&ct, &mut udp("10.0.0.1", "10.0.0.2", 1, 2), &commit(0), 0);
    let forced = CtArgs {
        force: true,
        ..commit(0)
    };
    let r = run(&ct, &mut udp("10.0.0.2", "10.0.0.1", 2, 1), &forced, 1);
    assert_eq!(r.state, TRK | NEW);
    assert_eq!(ct.nconns(), 1);
    assert_eq!(ct.dump(None)[0].orig.sport, 2);
}

// ---------------------------------------------------------------------------
// Expiry, policies and limits.

#[test]
fn connections_expire_after_their_timeout() {
    let ct = Conntrack::new(CtConfig::default());
    run(
        &ct,
        &mut udp("10.0.0.1", "10.0.0.2", 1, 2),
        &commit(0),
        1_000,
    );
    assert_eq!(ct.sweep(60_999), 0);
    assert_eq!(ct.nconns(), 1);
    let swept: usize = (0..ct.n_shards()).map(|i| ct.sweep_shard(i, 61_000)).sum();
    assert_eq!(swept, 1);
    assert_eq!(ct.nconns(), 0);
    // An expired but unswept connection is not matched either.
    run(&ct, &mut udp("10.0.0.1", "10.0.0.2", 1, 2), &commit(0), 0);
    let r = run(
        &ct,
        &mut udp("10.0.0.2", "10.0.0.1", 2, 1),
        &zone(0),
        60_000,
    );
    assert_eq!(r.state, TRK | NEW);
    assert_eq!(ct.nconns(), 0);
}

#[test]
fn established_tcp_uses_the_long_timeout_and_zone_policies_override() {
    let ct = Conntrack::new(CtConfig::default());
    ct.set_timeout_policy(
        2,
        &TimeoutPolicy {
            udp_first: Some(5),
            ..TimeoutPolicy::default()
        },
    )
    .unwrap();
    ct.set_zone_timeout_policy(7, 2).unwrap();
    run(&ct, &mut udp("10.0.0.1", "10.0.0.2", 1, 2), &commit(7), 0);
    run(&ct, &mut udp("10.0.0.1", "10.0.0.2", 1, 2), &commit(8), 0);
    assert_eq!(ct.sweep(5_000), 1);
    assert_eq!(ct.dump(None)[0].zone, 8);

    run(
        &ct,
        &mut tcp("10.0.0.1", "10.0.0.2", 1, 2, 10, 0, SYN),
        &commit(0),
        0,
    );
    run(
        &ct,
        &mut tcp("10.0.0.2", "10.0.0.1", 2, 1, 50, 11, SYN | ACK),
        &zone(0),
        0,
    );
    run(
        &ct,
        &mut tcp("10.0.0.1", "10.0.0.2", 1, 2, 11, 51, ACK),
        &zone(0),
        0,
    );
    ct.sweep(3_600_000);
    let left: Vec<u8> = ct.dump(None).iter().map(|e| e.orig.proto).collect();
    assert_eq!(left, [6]);
    assert_eq!(ct.sweep(86_400_000), 1);
}

#[test]
fn global_limit_refuses_commits_and_counts_them() {
    let ct = Conntrack::new(CtConfig {
        max_conns: 2,
        ..CtConfig::default()
    });
    for p in 1..=3 {
        let r = run(&ct, &mut udp("10.0.0.1", "10.0.0.2", p, 9), &commit(0), 0);
        assert_eq!(r.state, TRK | NEW);
    }
    assert_eq!(ct.nconns(), 2);
    assert_eq!(ct.counters().refused_full, 1);
    // The refused one was not committed: its reply is new, not established.
    let r = run(&ct, &mut udp("10.0.0.2", "10.0.0.1", 9, 3), &zone(0), 1);
    assert_eq!(r.state, TRK | NEW);
    ct.set_max_conns(3);
    assert_eq!(ct.max_conns(), 3);
    run(&ct, &mut udp("10.0.0.1", "10.0.0.2", 3, 9), &commit(0), 0);
    assert_eq!(ct.nconns(), 3);
}

#[test]
fn zone_limit_refuses_commits_in_that_zone_only() {
    let ct = Conntrack::new(CtConfig::default());
    ct.set_zone_limit(4, Some(1));
    run(&ct, &mut udp("10.0.0.1", "10.0.0.2", 1, 9), &commit(4), 0);
    run(&ct, &mut udp("10.0.0.1", "10.0.0.2", 2, 9), &commit(4), 0);
    run(&ct, &mut udp("10.0.0.1", "10.0.0.2", 2, 9), &commit(5), 0);
    assert_eq!((ct.zone_count(4), ct.zone_count(5)), (1, 1));
    assert_eq!(ct.counters().refused_zone_limit, 1);
    ct.set_default_zone_limit(1);
    assert_eq!(ct.default_zone_limit(), 1);
    run(&ct, &mut udp("10.0.0.1", "10.0.0.2", 3, 9), &commit(5), 0);
    assert_eq!(ct.zone_count(5), 1);
    assert_eq!(ct.zone_limit(6), Some(1));
}

// ---------------------------------------------------------------------------
// NAT.

fn snat(range: NatRange) -> CtArgs {
    CtArgs {
        nat: Some(NatAction::Src(range)),
        ..commit(0)
    }
}

fn nat_existing() -> CtArgs {
    CtArgs {
        nat: Some(NatAction::Existing),
        ..zone(0)
    }
}

#[test]
fn snat_with_a_port_range_translates_both_ways_with_valid_checksums() {
    let ct = Conntrack::new(CtConfig::default());
    let range = NatRange {
        addr_min: ip("192.0.2.10"),
        addr_max: ip("192.0.2.11"),
        port_min: 20000,
        port_max: 20009,
        select: PortSelect::Hash,
        persistent: false,
    };
    let mut seen = Vec::new();
    for cport in [1000, 1001, 1002] {
        let mut syn = tcp("10.0.0.1", "198.51.100.1", cport, 80, 1, 0, SYN);
        let r = run(&ct, &mut syn, &snat(range), 0);
        assert_eq!(r.state, TRK | NEW | CtState::SNAT);
        assert_eq!(r.orig.unwrap().sport, cport);
        let (s, d) = ipv4_addrs(&syn);
        let (sp, dp) = ports(&syn);
        assert!(s == ip("192.0.2.10") || s == ip("192.0.2.11"), "{s}");
        assert_eq!((d, dp), (ip("198.51.100.1"), 80));
        assert!((20000..=20009).contains(&sp));
        assert_checksums_valid(&syn);
        seen.push((s, sp));
        // The reply to the translated address goes back to the client.
        let IpAddr::V4(_) = s else { unreachable!() };
        let mut synack = tcp("198.51.100.1", &s.to_string(), 80, sp, 500, 2, SYN | ACK);
        let r = run(&ct, &mut synack, &nat_existing(), 1);
        assert_eq!(r.state, TRK | EST | RPL | CtState::SNAT);
        assert_eq!(ipv4_addrs(&synack), (ip("198.51.100.1"), ip("10.0.0.1")));
        assert_eq!(ports(&synack), (80, cport));
        assert_checksums_valid(&synack);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        3,
        "each connection has its own translated tuple"
    );
    let mut lines: Vec<String> = ct.dump(None).iter().map(|e| e.to_string()).collect();
    lines.sort();
    assert!(lines[0].starts_with("tcp,orig=(src=10.0.0.1,dst=198.51.100.1,sport=1000,dport=80),reply=(src=198.51.100.1,dst=192.0.2.1"));
}

#[test]
fn snat_without_ports_keeps_the_port_until_it_collides() {
    let ct = Conntrack::new(CtConfig::default());
    let range = NatRange::addr(ip("192.0.2.1"));
    let mut a = udp("10.0.0.1", "198.51.100.1", 5000, 53);
    run(&ct, &mut a, &snat(range), 0);
    assert_eq!(ports(&a).0, 5000);
    let mut b = udp("10.0.0.2", "198.51.100.1", 5000, 53);
    run(&ct, &mut b, &snat(range), 0);
    assert_eq!(ipv4_addrs(&b).0, ip("192.0.2.1"));
    assert_ne!(ports(&b).0, 5000, "second client gets another port");
    assert_checksums_valid(&b);
}

#[test]
fn snat_range_exhaustion_is_counted_and_leaves_the_packet_alone() {
    let ct = Conntrack::new(CtConfig::default());
    let range = NatRange {
        port_min: 7000,
        port_max: 7000,
        ..NatRange::addr(ip("192.0.2.1"))
    };
    run(
        &ct,
        &mut udp("10.0.0.1", "198.51.100.1", 1, 53),
        &snat(range),
        0,
    );
    let mut b = udp("10.0.0.2", "198.51.100.1", 1, 53);
    let before = b.clone();
    let r = run(&ct, &mut b, &snat(range), 0);
    assert_eq!(r.state, TRK | NEW);
    assert_eq!(b, before);
    assert_eq!(ct.counters().nat_exhausted, 1);
    assert_eq!(ct.nconns(), 1);
}

#[test]
fn dnat_keeps_a_client_on_one_backend_across_connections() {
    let ct = Conntrack::new(CtConfig::default());
    let lb = CtArgs {
        nat: Some(NatAction::Dst(NatRange {
            addr_min: ip("10.1.0.1"),
            addr_max: ip("10.1.0.2"),
            port_min: 8080,
            port_max: 8080,
            select: PortSelect::Hash,
            persistent: true,
        })),
        ..commit(0)
    };
    let mut backends = std::collections::BTreeSet::new();
    let mut first = None;
    for cport in 40000..40010 {
        let mut syn = tcp("172.16.0.5", "203.0.113.1", cport, 80, 1, 0, SYN);
        let r = run(&ct, &mut syn, &lb, 0);
        assert_eq!(r.state, TRK | NEW | CtState::DNAT);
        let (s, d) = ipv4_addrs(&syn);
        assert_eq!(s, ip("172.16.0.5"), "the backend sees the real client");
        assert_eq!(ports(&syn), (cport, 8080));
        assert_checksums_valid(&syn);
        first.get_or_insert(d);
        backends.insert(d);
        // The backend's answer leaves with the virtual IP.
        let mut synack = tcp(&d.to_string(), "172.16.0.5", 8080, cport, 9, 2, SYN | ACK);
        let r = run(&ct, &mut synack, &nat_existing(), 1);
        assert_eq!(r.state, TRK | EST | RPL | CtState::DNAT);
        assert_eq!(ipv4_addrs(&synack).0, ip("203.0.113.1"));
        assert_eq!(ports(&synack).0, 80);
    }
    assert_eq!(backends.len(), 1, "{backends:?}");
    // Other clients spread over both backends.
    for c in 1..40u8 {
        let mut syn = tcp(
            &format!("172.16.1.{c}"),
            "203.0.113.1",
            40000,
            80,
            1,
            0,
            SYN,
        );
        run(&ct, &mut syn, &lb, 0);
        backends.insert(ipv4_addrs(&syn).1);
    }
    assert_eq!(backends.len(), 2);
}

#[test]
fn packets_of_a_nat_connection_are_translated_only_when_ct_has_nat() {
    let ct = Conntrack::new(CtConfig::default());
    let mut a = udp("10.0.0.1", "198.51.100.1", 5000, 53);
    run(&ct, &mut a, &snat(NatRange::addr(ip("192.0.2.1"))), 0);
    let mut again = udp("10.0.0.1", "198.51.100.1", 5000, 53);
    let r = run(&ct, &mut again, &zone(0), 1);
    assert_eq!(ipv4_addrs(&again).0, ip("10.0.0.1"));
    assert!(!r.state.contains(CtState::SNAT));
    let r = run(&ct, &mut again, &nat_existing(), 1);
    assert_eq!(ipv4_addrs(&again).0, ip("192.0.2.1"));
    assert!(r.state.contains(CtState::SNAT));
}

#[test]
fn icmp_error_for_a_snat_flow_is_translated_back_to_the_inside_host() {
    let ct = Conntrack::new(CtConfig::default());
    let mut out = udp("10.0.0.1", "198.51.100.1", 5000, 53);
    let range = NatRange {
        port_min: 30000,
        port_max: 30000,
        ..NatRange::addr(ip("192.0.2.1"))
    };
    run(&ct, &mut out, &snat(range), 0);
    assert_eq!(ports(&out).0, 30000);
    // `out` is now the translated packet as it left; a router answers it.
    let mut err = icmp_error("203.0.113.254", "192.0.2.1", 11, 0, &out);
    let r = run(&ct, &mut err, &nat_existing(), 1);
    assert_eq!(r.state, TRK | REL | RPL | CtState::SNAT);
    assert_eq!(ipv4_addrs(&err), (ip("203.0.113.254"), ip("10.0.0.1")));
    // The quoted packet is the client's original.
    let inner = 14 + 20 + 8;
    assert_eq!(&err[inner + 12..inner + 16], &[10, 0, 0, 1]);
    assert_eq!(u16::from_be_bytes([err[inner + 20], err[inner + 21]]), 5000);
    assert_eq!(
        u16::from_be_bytes([err[inner + 10], err[inner + 11]]),
        ipv4_header_checksum(&err[inner..inner + 20])
    );
    assert_checksums_valid(&err);
}

/// An ICMPv6 error from `src` to `dst` quoting the IPv6 header and first
/// 8 L4 bytes of `orig`.
fn icmpv6_error(src: &str, dst: &str, ty: u8, orig: &[u8]) -> Vec<u8> {
    let mut h = vec![ty, 0, 0, 0, 0, 0, 0, 0];
    h.extend_from_slice(&orig[14..14 + 48]);
    frame(src, dst, 58, &h)
}

#[test]
fn icmp_error_from_a_dnat_backend_shows_the_virtual_ip_to_the_client() {
    let ct = Conntrack::new(CtConfig::default());
    let lb = CtArgs {
        nat: Some(NatAction::Dst(NatRange {
            port_min: 8080,
            port_max: 8080,
            ..NatRange::addr(ip("10.1.0.1"))
        })),
        ..commit(0)
    };
    let mut req = udp("172.16.0.5", "203.0.113.1", 4444, 80);
    run(&ct, &mut req, &lb, 0);
    assert_eq!(ipv4_addrs(&req).1, ip("10.1.0.1"));
    // The backend itself answers the translated datagram with an error:
    // the client must see it from the virtual IP, quoting what it sent.
    let mut err = icmp_error("10.1.0.1", "172.16.0.5", 3, 3, &req);
    let r = run(&ct, &mut err, &nat_existing(), 1);
    assert_eq!(r.state, TRK | REL | RPL | CtState::DNAT);
    assert_eq!(ipv4_addrs(&err), (ip("203.0.113.1"), ip("172.16.0.5")));
    let inner = 14 + 20 + 8;
    assert_eq!(&err[inner + 16..inner + 20], &[203, 0, 113, 1]);
    assert_eq!(u16::from_be_bytes([err[inner + 22], err[inner + 23]]), 80);
    assert_checksums_valid(&err);
}

#[test]
fn icmpv6_error_is_related_to_its_connection_and_translated() {
    let ct = Conntrack::new(CtConfig::default());
    let mut out = udp("fd00::1", "2001:db8::1", 5000, 53);
    let range = NatRange {
        port_min: 30000,
        port_max: 30000,
        ..NatRange::addr(ip("2001:db8:ff::1"))
    };
    run(&ct, &mut out, &snat(range), 0);
    let mut err = icmpv6_error("2001:db8::fe", "2001:db8:ff::1", 1, &out);
    let r = run(&ct, &mut err, &nat_existing(), 1);
    assert_eq!(r.state, TRK | REL | RPL | CtState::SNAT);
    assert_eq!(
        &err[38..54],
        &"fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets()
    );
    let inner = 14 + 40 + 8;
    assert_eq!(
        &err[inner + 8..inner + 24],
        &"fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets()
    );
    assert_eq!(u16::from_be_bytes([err[inner + 40], err[inner + 41]]), 5000);
    assert_checksums_valid(&err);
    let mut unknown = icmpv6_error(
        "2001:db8::fe",
        "fd00::9",
        1,
        &udp("fd00::9", "2001:db8::1", 1, 2),
    );
    assert_eq!(run(&ct, &mut unknown, &zone(0), 1).state, TRK | INV);
}

#[test]
fn ipv6_snat_translates_and_keeps_the_checksum_valid() {
    let ct = Conntrack::new(CtConfig::default());
    let mut syn = tcp("fd00::1", "2001:db8::1", 1000, 80, 1, 0, SYN);
    let r = run(
        &ct,
        &mut syn,
        &snat(NatRange::addr(ip("2001:db8:ff::1"))),
        0,
    );
    assert!(r.state.contains(CtState::SNAT));
    assert_eq!(
        &syn[22..38],
        &ip("2001:db8:ff::1")
            .to_string()
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
    );
    assert_checksums_valid(&syn);
    // Wrong family range: not committed.
    let r = run(
        &ct,
        &mut tcp("fd00::1", "2001:db8::1", 1001, 80, 1, 0, SYN),
        &snat(NatRange::addr(ip("192.0.2.1"))),
        0,
    );
    assert_eq!(r.state, TRK | NEW);
}

// ---------------------------------------------------------------------------
// Management.

#[test]
fn dump_lines_match_ovs_format() {
    let ct = Conntrack::new(CtConfig::default());
    let args = CtArgs {
        set_mark: Some((1, u32::MAX)),
        ..commit(5)
    };
    run(
        &ct,
        &mut tcp("10.0.0.1", "10.0.0.2", 1234, 80, 1, 0, SYN),
        &args,
        0,
    );
    run(
        &ct,
        &mut tcp("10.0.0.2", "10.0.0.1", 80, 1234, 9, 2, SYN | ACK),
        &zone(5),
        0,
    );
    run(
        &ct,
        &mut tcp("10.0.0.1", "10.0.0.2", 1234, 80, 2, 10, ACK),
        &zone(5),
        0,
    );
    let lab = CtArgs {
        set_label: Some((0xabcd, u128::MAX)),
        ..commit(0)
    };
    run(&ct, &mut udp("10.0.0.1", "10.0.0.2", 5, 6), &lab, 0);
    run(
        &ct,
        &mut icmp_echo("10.0.0.1", "10.0.0.2", 8, 44),
        &commit(0),
        0,
    );
    run(
        &ct,
        &mut frame("10.0.0.1", "10.0.0.2", 47, &[0; 4]),
        &commit(0),
        0,
    );
    let mut lines: Vec<String> = ct.dump(None).iter().map(|e| e.to_string()).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "47,orig=(src=10.0.0.1,dst=10.0.0.2,sport=0,dport=0),reply=(src=10.0.0.2,dst=10.0.0.1,sport=0,dport=0)",
            "icmp,orig=(src=10.0.0.1,dst=10.0.0.2,id=44,type=8,code=0),reply=(src=10.0.0.2,dst=10.0.0.1,id=44,type=0,code=0)",
            "tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1234,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=1234),zone=5,mark=1,protoinfo=(state=ESTABLISHED)",
            "udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=5,dport=6),reply=(src=10.0.0.2,dst=10.0.0.1,sport=6,dport=5),labels=0xabcd",
        ]
    );
    assert_eq!(ct.dump(Some(5)).len(), 1);
    let s = ct.stats(None);
    assert_eq!((s.total, s.tcp, s.udp, s.icmp, s.other), (4, 1, 1, 1, 1));
    assert_eq!(s.tcp_states[TcpState::Established as usize], 1);
    assert_eq!(
        s.to_string(),
        "Connections Stats:\n    Total: 4\n  TCP: 1\n  UDP: 1\n  ICMP: 1\n  Other: 1\n"
    );
}

#[test]
fn flush_by_tuple_removes_only_that_connection_in_either_direction() {
    let ct = Conntrack::new(CtConfig::default());
    run(&ct, &mut udp("10.0.0.1", "10.0.0.2", 1, 2), &commit(3), 0);
    run(&ct, &mut udp("10.0.0.1", "10.0.0.2", 1, 3), &commit(3), 0);
    let reply = ct
        .dump(None)
        .iter()
        .find(|e| e.orig.dport == 2)
        .unwrap()
        .reply;
    let n = ct.flush(&FlushFilter {
        zone: None,
        tuple: Some(reply),
    });
    assert_eq!(n, 1);
    assert_eq!(ct.dump(None)[0].orig.dport, 3);
    assert_eq!(ct.clear(), 1);
    assert_eq!(ct.nconns(), 0);
    assert_eq!(ct.zone_count(3), 0);
}

#[test]
fn memory_per_connection_stays_within_256_bytes() {
    let ct = Conntrack::new(CtConfig::default());
    let n = 40_000u32;
    for i in 0..n {
        let src = format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
        run(&ct, &mut udp(&src, "10.255.0.1", 1000, 53), &commit(0), 0);
    }
    let m = ct.memory();
    assert_eq!(m.conns, u64::from(n));
    eprintln!("{m:?}: {} B per connection", m.per_conn());
    assert!(
        m.per_conn() <= 256,
        "{m:?}: {} B per connection",
        m.per_conn()
    );
    assert!(m.per_conn() >= std::mem::size_of::<conn::Conn>(), "{m:?}");
}

#[test]
fn threads_sharing_the_tracker_see_each_others_connections() {
    let ct = Conntrack::new(CtConfig {
        n_shards: 4,
        ..CtConfig::default()
    });
    let host = |t: u16, i: u16| format!("10.{t}.{}.{}", i >> 8, i & 0xff);
    std::thread::scope(|s| {
        for t in 0..4u16 {
            let ct = &ct;
            s.spawn(move || {
                for i in 0..300u16 {
                    let r = run(
                        ct,
                        &mut udp(&host(t, i), "10.200.0.1", 1000 + i, 53),
                        &commit(0),
                        0,
                    );
                    assert_eq!(r.state, TRK | NEW);
                }
            });
        }
    });
    assert_eq!(ct.nconns(), 1200);
    std::thread::scope(|s| {
        for t in 0..4u16 {
            let ct = &ct;
            s.spawn(move || {
                let other = (t + 1) % 4;
                for i in 0..300u16 {
                    let r = run(
                        ct,
                        &mut udp("10.200.0.1", &host(other, i), 53, 1000 + i),
                        &zone(0),
                        1,
                    );
                    assert_eq!(r.state, TRK | EST | RPL);
                }
            });
        }
    });
}

// ---------------------------------------------------------------------------
// Fuzz: random packet sequences.

#[derive(Clone, Debug)]
enum Op {
    Tcp {
        c: u8,
        s: u8,
        flags: u16,
        seq: u32,
        ack: u32,
    },
    Udp {
        c: u8,
        s: u8,
        rev: bool,
    },
    Icmp {
        c: u8,
        ty: u8,
    },
    IcmpErr {
        c: u8,
        s: u8,
    },
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4u8, 0..3u8, 0..64u16, any::<u32>(), any::<u32>()).prop_map(
            |(c, s, flags, seq, ack)| Op::Tcp {
                c,
                s,
                flags,
                seq,
                ack
            }
        ),
        (0..4u8, 0..3u8, any::<bool>()).prop_map(|(c, s, rev)| Op::Udp { c, s, rev }),
        (
            0..4u8,
            prop::sample::select(vec![0u8, 3, 8, 11, 13, 14, 42])
        )
            .prop_map(|(c, ty)| Op::Icmp { c, ty }),
        (0..4u8, 0..3u8).prop_map(|(c, s)| Op::IcmpErr { c, s }),
        Just(Op::Sweep),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_packet_sequences_never_panic_and_respect_limits(
        ops in prop::collection::vec((op(), any::<bool>(), 0..3u16, 0..4u8, 0..5000u64), 1..120),
        cut in any::<prop::sample::Index>(),
    ) {
        let ct = Conntrack::new(CtConfig { max_conns: 6, n_shards: 4, ..CtConfig::default() });
        ct.set_zone_limit(1, Some(2));
        let mut now = 0;
        for (o, do_commit, z, nat, dt) in ops {
            now += dt;
            let nat = match nat {
                0 => None,
                1 => Some(NatAction::Existing),
                2 => Some(NatAction::Src(NatRange { port_min: 100, port_max: 101, ..NatRange::addr(ip("192.0.2.1")) })),
                _ => Some(NatAction::Dst(NatRange { addr_max: ip("10.9.0.2"), ..NatRange::addr(ip("10.9.0.1")) })),
            };
            let args = CtArgs { zone: z, commit: do_commit, nat, ..CtArgs::default() };
            let host = |c: u8| format!("10.0.0.{}", c + 1);
            let srv = |s: u8| format!("198.51.100.{}", s + 1);
            let mut f = match o {
                Op::Tcp { c, s, flags, seq, ack } => {
                    let (a, b) = if flags & 1 == 0 { (host(c), srv(s)) } else { (srv(s), host(c)) };
                    tcp(&a, &b, 1000 + u16::from(c), 80, seq, ack, flags & !1 | (flags & FIN))
                }
                Op::Udp { c, s, rev } => if rev { udp(&srv(s), &host(c), 53, 5000) } else { udp(&host(c), &srv(s), 5000, 53) },
                Op::Icmp { c, ty } => icmp_echo(&host(c), &srv(0), ty, 1),
                Op::IcmpErr { c, s } => {
                    let orig = udp(&host(c), &srv(s), 5000, 53);
                    icmp_error(&srv(s), &host(c), 3, 3, &orig)
                }
                Op::Sweep => { ct.sweep(now); continue; }
            };
            let r = run(&ct, &mut f, &args, now);
            prop_assert!(r.state.contains(CtState::TRK));
            prop_assert!(extract(&f, 0).is_ok());
            prop_assert!(ct.nconns() <= 6);
            prop_assert!(ct.zone_count(1) <= 2);
        }
        prop_assert_eq!(ct.dump(None).len() as u32, ct.nconns());
        let total: u32 = (0..3).map(|z| ct.zone_count(z)).sum();
        prop_assert_eq!(total, ct.nconns());
        let _ = cut;
        ct.sweep(u64::MAX);
        prop_assert_eq!(ct.nconns(), 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn nat_rewrites_always_leave_valid_checksums(
        c in 1..250u8, s in 1..250u8, sport in 1..u16::MAX, dport in 1..u16::MAX,
        is_tcp in any::<bool>(), src_nat in any::<bool>(), pmin in 1..60000u16, span in 0..100u16,
    ) {
        let ct = Conntrack::new(CtConfig::default());
        let range = NatRange {
            port_min: pmin,
            port_max: pmin + span,
            ..NatRange::addr(ip("192.0.2.77"))
        };
        let nat = if src_nat { NatAction::Src(range) } else { NatAction::Dst(range) };
        let (a, b) = (format!("10.0.0.{c}"), format!("198.51.100.{s}"));
        let mut f = if is_tcp {
            tcp(&a, &b, sport, dport, 1, 0, SYN)
        } else {
            udp(&a, &b, sport, dport)
        };
        let r = run(&ct, &mut f, &CtArgs { nat: Some(nat), ..commit(0) }, 0);
        let bit = if src_nat { CtState::SNAT } else { CtState::DNAT };
        prop_assert!(r.state.contains(bit));
        assert_checksums_valid(&f);
        let (ns, nd) = ipv4_addrs(&f);
        let (nsp, ndp) = ports(&f);
        // The answer is translated back to the original tuple.
        let mut back = if is_tcp {
            tcp(&nd.to_string(), &ns.to_string(), ndp, nsp, 9, 2, SYN | ACK)
        } else {
            udp(&nd.to_string(), &ns.to_string(), ndp, nsp)
        };
        let r = run(&ct, &mut back, &nat_existing(), 1);
        prop_assert!(r.state.contains(CtState::EST | CtState::RPL));
        prop_assert_eq!(ipv4_addrs(&back), (ip(&b), ip(&a)));
        prop_assert_eq!(ports(&back), (dport, sport));
        assert_checksums_valid(&back);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_frames_never_panic_the_tracker(
        ty in prop::sample::select(vec![0x0800u16, 0x86dd]),
        proto in prop::sample::select(vec![1u8, 6, 17, 58, 132, 47]),
        body in prop::collection::vec(any::<u8>(), 0..120),
        do_commit in any::<bool>(),
        src_nat in any::<bool>(),
    ) {
        // A plausible IP header so parsing gets past L3, then random bytes.
        let mut f = eth(ty);
        if ty == 0x0800 {
            let len = (20 + body.len()) as u16;
            f.extend_from_slice(&[0x45, 0, (len >> 8) as u8, len as u8, 0, 0, 0, 0, 64, proto, 0, 0]);
            f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        } else {
            let len = body.len() as u16;
            f.extend_from_slice(&[0x60, 0, 0, 0, (len >> 8) as u8, len as u8, proto, 64]);
            f.extend_from_slice(&ip("fd00::1").to_string().parse::<std::net::Ipv6Addr>().unwrap().octets());
            f.extend_from_slice(&ip("fd00::2").to_string().parse::<std::net::Ipv6Addr>().unwrap().octets());
        }
        f.extend_from_slice(&body);
        let Ok((key, lay)) = extract(&f, 0) else { return Ok(()); };
        let ct = Conntrack::new(CtConfig::default());
        let addr = if ty == 0x0800 { ip("192.0.2.1") } else { ip("fd00::99") };
        let range = NatRange { port_min: 10, port_max: 20, ..NatRange::addr(addr) };
        let nat = if src_nat { NatAction::Src(range) } else { NatAction::Dst(range) };
        let args = CtArgs { commit: do_commit, nat: Some(nat), ..CtArgs::default() };
        let len = f.len();
        for now in 0..3 {
            let mut p = CtPacket { buf: &mut f, len, key: &key, layout: &lay, partial_l4_csum: false };
            let r = ct.execute(&mut p, &args, now);
            prop_assert!(r.state.contains(CtState::TRK));
        }
        prop_assert_eq!(f.len(), len);
    }
}
