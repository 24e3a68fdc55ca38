//! ALGs (`ct(alg=ftp)`, `ct(alg=tftp)`) on real frames: the data
//! connection an FTP or TFTP control connection announces is `+rel`.

use super::*;

/// A TCP segment with `payload` as its data.
fn tcp_data(
    src: &str,
    dst: &str,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut h = tcp_seg(sport, dport, seq, ack, ACK, 0);
    h.extend_from_slice(payload);
    frame(src, dst, 6, &h)
}

fn with_alg(args: CtArgs, alg: Alg) -> CtArgs {
    CtArgs {
        alg: Some(alg),
        ..args
    }
}

/// Opens an FTP control connection client:40000 -> server:21 through
/// `ct(commit,alg=ftp)` (handshake done); returns the next sequence
/// numbers (client, server).
fn ftp_control(ct: &Conntrack, client: &str, server: &str) -> (u32, u32) {
    let a = with_alg(commit(0), Alg::Ftp);
    run(ct, &mut tcp(client, server, 40000, 21, 100, 0, SYN), &a, 0);
    run(
        ct,
        &mut tcp(server, client, 21, 40000, 500, 101, SYN | ACK),
        &zone(0),
        0,
    );
    run(
        ct,
        &mut tcp(client, server, 40000, 21, 101, 501, ACK),
        &zone(0),
        0,
    );
    (101, 501)
}

#[test]
fn ftp_active_port_makes_the_servers_data_connection_related() {
    let ct = Conntrack::new(CtConfig::default());
    let (cs, ss) = ftp_control(&ct, "10.0.0.1", "10.0.0.2");
    let msg = b"PORT 10,0,0,1,156,64\r\n";
    let r = run(
        &ct,
        &mut tcp_data("10.0.0.1", "10.0.0.2", 40000, 21, cs, ss, msg),
        &zone(0),
        0,
    );
    assert_eq!(r.state, TRK | EST);
    assert_eq!(ct.n_expectations(), 1);
    // The server connects from port 20 to the announced port 40000.
    let r = run(
        &ct,
        &mut tcp("10.0.0.2", "10.0.0.1", 20, 156 * 256 + 64, 9000, 0, SYN),
        &commit(0),
        0,
    );
    assert_eq!(r.state, TRK | NEW | REL);
    // ct_nw_src and friends report the control connection.
    assert_eq!(r.orig.unwrap().ct_tp_dst(), 21);
    let r = run(
        &ct,
        &mut tcp("10.0.0.1", "10.0.0.2", 40000, 20, 7000, 9001, SYN | ACK),
        &zone(0),
        0,
    );
    assert_eq!(r.state, TRK | EST | RPL | REL);
    // Another port, or another host, is not related.
    let r = run(
        &ct,
        &mut tcp("10.0.0.2", "10.0.0.1", 20, 40001, 9000, 0, SYN),
        &zone(0),
        0,
    );
    assert_eq!(r.state, TRK | NEW);
    // The dump names the control connection's helper.
    let helpers: Vec<Option<Alg>> = ct.dump(None).iter().map(|e| e.helper).collect();
    assert!(helpers.contains(&Some(Alg::Ftp)));
    assert!(
        ct.dump(None)
            .iter()
            .any(|e| e.to_string().ends_with(",helper=ftp"))
    );
}

#[test]
fn ftp_passive_reply_makes_the_clients_data_connection_related_and_dies_with_its_parent() {
    let ct = Conntrack::new(CtConfig::default());
    let (cs, ss) = ftp_control(&ct, "10.0.0.1", "10.0.0.2");
    let msg = b"227 Entering Passive Mode (10,0,0,2,39,16).\r\n";
    let r = run(
        &ct,
        &mut tcp_data("10.0.0.2", "10.0.0.1", 21, 40000, ss, cs, msg),
        &zone(0),
        0,
    );
    assert_eq!(r.state, TRK | EST | RPL);
    let data = || tcp("10.0.0.1", "10.0.0.2", 41000, 39 * 256 + 16, 1, 0, SYN);
    assert_eq!(run(&ct, &mut data(), &zone(0), 0).state, TRK | NEW | REL);
    // Without the control connection nothing is expected any more.
    ct.flush(&FlushFilter::default());
    assert_eq!(ct.n_expectations(), 0);
    assert_eq!(run(&ct, &mut data(), &zone(0), 0).state, TRK | NEW);
}

#[test]
fn ftp_announcement_of_a_third_host_is_invalid_and_expects_nothing() {
    let ct = Conntrack::new(CtConfig::default());
    let (cs, ss) = ftp_control(&ct, "10.0.0.1", "10.0.0.2");
    let msg = b"PORT 10,0,0,99,156,64\r\n";
    let r = run(
        &ct,
        &mut tcp_data("10.0.0.1", "10.0.0.2", 40000, 21, cs, ss, msg),
        &zone(0),
        0,
    );
    assert!(r.state.contains(INV), "{:?}", r.state);
    assert_eq!(ct.n_expectations(), 0);
}

#[test]
fn without_the_helper_an_ftp_port_command_expects_nothing() {
    let ct = Conntrack::new(CtConfig::default());
    run(
        &ct,
        &mut tcp("10.0.0.1", "10.0.0.2", 40000, 21, 100, 0, SYN),
        &commit(0),
        0,
    );
    run(
        &ct,
        &mut tcp("10.0.0.2", "10.0.0.1", 21, 40000, 500, 101, SYN | ACK),
        &zone(0),
        0,
    );
    let msg = b"PORT 10,0,0,1,156,64\r\n";
    run(
        &ct,
        &mut tcp_data("10.0.0.1", "10.0.0.2", 40000, 21, 101, 501, msg),
        &zone(0),
        0,
    );
    assert_eq!(ct.n_expectations(), 0);
}

#[test]
fn tftp_request_makes_the_servers_reply_from_a_new_port_related() {
    let ct = Conntrack::new(CtConfig::default());
    let args = CtArgs {
        set_mark: Some((0x42, u32::MAX)),
        ..with_alg(commit(3), Alg::Tftp)
    };
    let r = run(&ct, &mut udp("10.0.0.1", "10.0.0.2", 5000, 69), &args, 0);
    assert_eq!(r.state, TRK | NEW);
    assert_eq!(ct.n_expectations(), 1);
    // The server answers from its own new port to the client's port.
    let r = run(
        &ct,
        &mut udp("10.0.0.2", "10.0.0.1", 47000, 5000),
        &commit(3),
        0,
    );
    assert_eq!(r.state, TRK | NEW | REL);
    assert_eq!(
        r.mark, 0x42,
        "the related connection takes the parent's mark"
    );
    let r = run(
        &ct,
        &mut udp("10.0.0.1", "10.0.0.2", 5000, 47000),
        &zone(3),
        0,
    );
    assert_eq!(r.state, TRK | EST | RPL | REL);
    // Only in the parent's zone.
    let r = run(
        &ct,
        &mut udp("10.0.0.2", "10.0.0.1", 47001, 5000),
        &zone(4),
        0,
    );
    assert_eq!(r.state, TRK | NEW);
}
