//! NAT through the FTP and TFTP helpers on real frames: the announced
//! address is rewritten, sequence numbers follow the change in length, and
//! the data connection is translated consistently with its parent.

use super::*;
use crate::tuple::addr_bytes;

const SNAT: CtState = CtState::SNAT;
const DNAT: CtState = CtState::DNAT;
const PSH: u16 = 0x08;

/// A TCP segment with `payload` as its data.
fn seg(src: &str, dst: &str, ports: (u16, u16), seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut h = tcp_seg(ports.0, ports.1, seq, ack, ACK | PSH, 0);
    h.extend_from_slice(payload);
    frame(src, dst, 6, &h)
}

/// Runs `f` through the tracker with 64 bytes of room to grow.
fn run_grow(ct: &Conntrack, f: &mut Vec<u8>, args: &CtArgs) -> CtResult {
    crate::testutil::run_with_room(ct, f, 64, args, 0)
}

fn payload(f: &[u8]) -> &[u8] {
    &f[54..]
}

fn seq_ack(f: &[u8]) -> (u32, u32) {
    let g = |at: usize| u32::from_be_bytes(f[at..at + 4].try_into().unwrap());
    (g(38), g(42))
}

fn addrs(f: &[u8]) -> ([u8; 4], [u8; 4]) {
    (f[26..30].try_into().unwrap(), f[30..34].try_into().unwrap())
}

/// IP length, IPv4 header checksum and TCP/UDP checksum all hold.
fn consistent(f: &[u8]) -> bool {
    let (_, lay) = extract(f, 0).unwrap();
    let at = l4_csum_offset(&lay).unwrap();
    u16::from_be_bytes([f[16], f[17]]) as usize == f.len() - 14
        && ipv4_header_checksum(&f[14..34]) == u16::from_be_bytes([f[24], f[25]])
        && l4_checksum_full(f, &lay) == Some(u16::from_be_bytes([f[at], f[at + 1]]))
}

fn nat_args(nat: NatAction, alg: Option<Alg>) -> CtArgs {
    CtArgs {
        commit: true,
        nat: Some(nat),
        alg,
        ..CtArgs::default()
    }
}

fn existing_nat() -> CtArgs {
    CtArgs {
        nat: Some(NatAction::Existing),
        ..CtArgs::default()
    }
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Client 10.0.0.1:40000 -> server 10.0.0.2:21 committed with
/// `ct(commit,alg=ftp,nat(src=192.168.77.100))`, handshake done. Returns
/// the next sequence numbers (client, server).
fn snat_control(ct: &Conntrack) -> (u32, u32) {
    let a = nat_args(
        NatAction::Src(NatRange::addr(addr("192.168.77.100"))),
        Some(Alg::Ftp),
    );
    let mut f = tcp("10.0.0.1", "10.0.0.2", 40000, 21, 100, 0, SYN);
    assert_eq!(run_grow(ct, &mut f, &a).state, TRK | NEW | SNAT);
    let mut f = tcp("10.0.0.2", "192.168.77.100", 21, 40000, 500, 101, SYN | ACK);
    assert_eq!(
        run_grow(ct, &mut f, &existing_nat()).state,
        TRK | EST | RPL | SNAT
    );
    let mut f = tcp("10.0.0.1", "10.0.0.2", 40000, 21, 101, 501, ACK);
    assert_eq!(
        run_grow(ct, &mut f, &existing_nat()).state,
        TRK | EST | SNAT
    );
    (101, 501)
}

#[test]
fn snat_rewrites_the_port_address_shifts_sequence_numbers_and_dnats_the_data_connection() {
    let ct = Conntrack::new(CtConfig::default());
    let (cs, ss) = snat_control(&ct);
    let msg = b"PORT 10,0,0,1,156,65\r\n";
    let mut f = seg("10.0.0.1", "10.0.0.2", (40000, 21), cs, ss, msg);
    let r = run_grow(&ct, &mut f, &existing_nat());
    assert_eq!(r.state, TRK | EST | SNAT);
    let new_msg = b"PORT 192,168,77,100,156,65\r\n";
    assert_eq!(payload(&f), new_msg);
    assert_eq!(addrs(&f), ([192, 168, 77, 100], [10, 0, 0, 2]));
    assert_eq!(seq_ack(&f), (cs, ss), "the rewritten segment keeps its seq");
    assert!(consistent(&f));
    let skew = (new_msg.len() - msg.len()) as u32;

    // The server acknowledges the longer segment; the client sees its own
    // numbering (and the tracker does not call it out of window).
    let sent = cs + new_msg.len() as u32;
    let mut f = seg(
        "10.0.0.2",
        "192.168.77.100",
        (21, 40000),
        ss,
        sent,
        b"200 ok\r\n",
    );
    let r = run_grow(&ct, &mut f, &existing_nat());
    assert_eq!(r.state, TRK | EST | RPL | SNAT);
    assert_eq!(seq_ack(&f), (ss, sent - skew));
    assert_eq!(addrs(&f).1, [10, 0, 0, 1]);
    assert!(consistent(&f));
    // The client's next segment is moved up by the skew.
    let next = cs + msg.len() as u32;
    let mut f = seg(
        "10.0.0.1",
        "10.0.0.2",
        (40000, 21),
        next,
        ss + 8,
        b"RETR x\r\n",
    );
    let r = run_grow(&ct, &mut f, &existing_nat());
    assert_eq!(r.state, TRK | EST | SNAT);
    assert_eq!(seq_ack(&f), (next + skew, ss + 8));
    assert!(consistent(&f));

    // The server's data connection to the translated address is related
    // and goes to the real client.
    let mut f = tcp("10.0.0.2", "192.168.77.100", 20, 40001, 9000, 0, SYN);
    let r = run_grow(&ct, &mut f, &nat_args(NatAction::Existing, None));
    assert_eq!(r.state, TRK | NEW | REL | DNAT);
    assert_eq!(addrs(&f), ([10, 0, 0, 2], [10, 0, 0, 1]));
    assert!(consistent(&f));
    let mut f = tcp("10.0.0.1", "10.0.0.2", 40001, 20, 7000, 9001, SYN | ACK);
    let r = run_grow(&ct, &mut f, &existing_nat());
    assert_eq!(r.state, TRK | EST | RPL | REL | DNAT);
    assert_eq!(addrs(&f), ([192, 168, 77, 100], [10, 0, 0, 2]));
    let dump = ct.dump(None);
    assert_eq!(dump.len(), 2);
}

#[test]
fn dnat_rewrites_the_passive_reply_to_the_virtual_address_and_the_data_connection_follows() {
    let ct = Conntrack::new(CtConfig::default());
    let vip = "10.0.0.100";
    let a = nat_args(
        NatAction::Dst(NatRange::addr(addr("10.0.0.2"))),
        Some(Alg::Ftp),
    );
    let mut f = tcp("10.0.0.1", vip, 40000, 21, 100, 0, SYN);
    assert_eq!(run_grow(&ct, &mut f, &a).state, TRK | NEW | DNAT);
    assert_eq!(addrs(&f).1, [10, 0, 0, 2]);
    let mut f = tcp("10.0.0.2", "10.0.0.1", 21, 40000, 500, 101, SYN | ACK);
    run_grow(&ct, &mut f, &existing_nat());
    let mut f = tcp("10.0.0.1", vip, 40000, 21, 101, 501, ACK);
    run_grow(&ct, &mut f, &existing_nat());

    let msg = b"227 Entering Passive Mode (10,0,0,2,39,16).\r\n";
    let mut f = seg("10.0.0.2", "10.0.0.1", (21, 40000), 501, 101, msg);
    let r = run_grow(&ct, &mut f, &existing_nat());
    assert_eq!(r.state, TRK | EST | RPL | DNAT);
    assert_eq!(
        payload(&f),
        b"227 Entering Passive Mode (10,0,0,100,39,16).\r\n"
    );
    assert_eq!(addrs(&f).0, [10, 0, 0, 100]);
    assert!(consistent(&f));
    // The client acknowledges two more bytes than the server sent.
    let acked = 501 + msg.len() as u32 + 2;
    let mut f = tcp("10.0.0.1", vip, 40000, 21, 101, acked, ACK);
    let r = run_grow(&ct, &mut f, &existing_nat());
    assert_eq!(r.state, TRK | EST | DNAT);
    assert_eq!(seq_ack(&f), (101, acked - 2));
    assert!(consistent(&f));
    // The server's next segment moves up by two.
    let next = 501 + msg.len() as u32;
    let mut f = seg(
        "10.0.0.2",
        "10.0.0.1",
        (21, 40000),
        next,
        101,
        b"150 ok\r\n",
    );
    run_grow(&ct, &mut f, &existing_nat());
    assert_eq!(seq_ack(&f).0, next + 2);

    // The client's data connection to the virtual address reaches the server.
    let mut f = tcp("10.0.0.1", vip, 41000, 10000, 3000, 0, SYN);
    let r = run_grow(&ct, &mut f, &nat_args(NatAction::Existing, None));
    assert_eq!(r.state, TRK | NEW | REL | DNAT);
    assert_eq!(addrs(&f), ([10, 0, 0, 1], [10, 0, 0, 2]));
    let mut f = tcp("10.0.0.2", "10.0.0.1", 10000, 41000, 8000, 3001, SYN | ACK);
    let r = run_grow(&ct, &mut f, &existing_nat());
    assert_eq!(r.state, TRK | EST | RPL | REL | DNAT);
    assert_eq!(addrs(&f).0, [10, 0, 0, 100]);
}

#[test]
fn hostile_port_commands_under_nat_are_invalid_and_change_nothing() {
    let bad: [&[u8]; 6] = [
        b"PORT 10,0,0",
        b"PORT 10,0,0,1,99999999999999999999,1\r\n",
        b"PORT 10,0,0,1,4",
        b"PORT \xff\xfe\xfd,0,0,1,4,1\r\n",
        b"PORT 10,0,0,1\xc3\xa9,4,1\r\n",
        b"PORT 4294967306,0,0,1,4,1\r\n",
    ];
    for msg in bad {
        let ct = Conntrack::new(CtConfig::default());
        let (cs, ss) = snat_control(&ct);
        let mut f = seg("10.0.0.1", "10.0.0.2", (40000, 21), cs, ss, msg);
        let r = run_grow(&ct, &mut f, &existing_nat());
        assert!(
            r.state.contains(INV),
            "{:?}: {:?}",
            String::from_utf8_lossy(msg),
            r.state
        );
        assert_eq!(payload(&f), msg);
        assert_eq!(ct.n_expectations(), 0);
        // No skew: the next segment keeps its numbers.
        let next = cs + msg.len() as u32;
        let mut f = seg("10.0.0.1", "10.0.0.2", (40000, 21), next, ss, b"NOOP\r\n");
        run_grow(&ct, &mut f, &existing_nat());
        assert_eq!(seq_ack(&f), (next, ss));
    }
}

#[test]
fn a_rewrite_past_the_mtu_is_skipped_but_the_data_connection_is_still_expected() {
    let ct = Conntrack::new(CtConfig::default());
    let (cs, ss) = snat_control(&ct);
    let mut msg = b"PORT 10,0,0,1,156,65\r\n".to_vec();
    msg.resize(1500 - 40, b' ');
    let mut f = seg("10.0.0.1", "10.0.0.2", (40000, 21), cs, ss, &msg);
    let r = run_grow(&ct, &mut f, &existing_nat());
    assert_eq!(r.state, TRK | EST | SNAT);
    assert_eq!(payload(&f), msg.as_slice());
    assert!(consistent(&f));
    assert_eq!(ct.counters().alg_rewrite_refused, 1);
    assert_eq!(ct.n_expectations(), 1);
    let next = cs + msg.len() as u32;
    let mut f = seg("10.0.0.1", "10.0.0.2", (40000, 21), next, ss, b"NOOP\r\n");
    run_grow(&ct, &mut f, &existing_nat());
    assert_eq!(seq_ack(&f), (next, ss));
}

#[test]
fn tftp_reply_from_a_new_port_is_related_and_translated_back_to_the_client() {
    let ct = Conntrack::new(CtConfig::default());
    let a = nat_args(
        NatAction::Src(NatRange::addr(addr("192.168.77.100"))),
        Some(Alg::Tftp),
    );
    let mut f = udp("10.0.0.1", "10.0.0.2", 5000, 69);
    assert_eq!(run_grow(&ct, &mut f, &a).state, TRK | NEW | SNAT);
    assert_eq!(addrs(&f).0, [192, 168, 77, 100]);
    let mut f = udp("10.0.0.2", "192.168.77.100", 47000, 5000);
    let r = run_grow(&ct, &mut f, &nat_args(NatAction::Existing, None));
    assert_eq!(r.state, TRK | NEW | REL | DNAT);
    assert_eq!(addrs(&f), ([10, 0, 0, 2], [10, 0, 0, 1]));
    assert!(consistent(&f));
    let mut f = udp("10.0.0.1", "10.0.0.2", 5000, 47000);
    let r = run_grow(&ct, &mut f, &existing_nat());
    assert_eq!(r.state, TRK | EST | RPL | REL | DNAT);
    assert_eq!(addrs(&f).0, [192, 168, 77, 100]);
}

#[test]
fn ipv6_eprt_under_snat_is_rewritten_and_the_payload_length_follows() {
    let ct = Conntrack::new(CtConfig::default());
    let (c, s, n) = ("fd00::1", "fd00::2", "fd00:77::100");
    let a = nat_args(NatAction::Src(NatRange::addr(addr(n))), Some(Alg::Ftp));
    let mut f = tcp(c, s, 40000, 21, 100, 0, SYN);
    assert_eq!(run_grow(&ct, &mut f, &a).state, TRK | NEW | SNAT);
    let mut f = tcp(s, n, 21, 40000, 500, 101, SYN | ACK);
    run_grow(&ct, &mut f, &existing_nat());
    let msg = b"EPRT |2|fd00::1|40001|\r\n";
    let mut h = tcp_seg(40000, 21, 101, 501, ACK | PSH, 0);
    h.extend_from_slice(msg);
    let mut f = frame(c, s, 6, &h);
    let r = run_grow(&ct, &mut f, &existing_nat());
    assert_eq!(r.state, TRK | EST | SNAT);
    let new_msg = b"EPRT |2|fd00:77::100|40001|\r\n";
    assert_eq!(&f[74..], new_msg);
    assert_eq!(u16::from_be_bytes([f[18], f[19]]) as usize, f.len() - 54);
    let (_, lay) = extract(&f, 0).unwrap();
    let at = l4_csum_offset(&lay).unwrap();
    assert_eq!(
        l4_checksum_full(&f, &lay),
        Some(u16::from_be_bytes([f[at], f[at + 1]]))
    );
    // The server's data connection to the translated address reaches the
    // client.
    let mut f = tcp(s, n, 20, 40001, 9000, 0, SYN);
    let r = run_grow(&ct, &mut f, &nat_args(NatAction::Existing, None));
    assert_eq!(r.state, TRK | NEW | REL | DNAT);
    assert_eq!(&f[38..54], &addr_bytes(addr(c)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever a control message holds, the tracker does not panic and
    /// leaves a consistent frame (lengths and checksums), rewritten or not.
    #[test]
    fn arbitrary_control_payloads_under_nat_leave_consistent_frames(
        prefix in prop::sample::select(vec!["PORT ", "port ", "PORT 10,0,0,1,", "227 (10,0,0,2,", "EPRT |1|", ""]),
        body in prop::collection::vec(any::<u8>(), 0..200),
        digits in prop::collection::vec(0..100000u32, 0..8),
        reply in any::<bool>(),
    ) {
        let ct = Conntrack::new(CtConfig::default());
        let (cs, ss) = snat_control(&ct);
        let mut msg = prefix.as_bytes().to_vec();
        let nums: Vec<String> = digits.iter().map(u32::to_string).collect();
        msg.extend_from_slice(nums.join(",").as_bytes());
        msg.extend_from_slice(&body);
        let mut f = if reply {
            seg("10.0.0.2", "192.168.77.100", (21, 40000), ss, cs, &msg)
        } else {
            seg("10.0.0.1", "10.0.0.2", (40000, 21), cs, ss, &msg)
        };
        let r = run_grow(&ct, &mut f, &existing_nat());
        prop_assert!(r.state.contains(TRK));
        prop_assert!(consistent(&f));
        prop_assert!(f.len() <= 14 + 40 + msg.len() + 64);
    }
}
