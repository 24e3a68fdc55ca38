//! Conntrack ALGs end to end (issue 15): real FTP and TFTP transfers between
//! two namespace hosts through a ferrovs firewall that lets the client
//! (port 1) open only the control connection (TCP 21, UDP 69) and
//! otherwise passes nothing but established and related traffic.
//!
//! - With `ct(commit,alg=ftp)` a passive (PASV) and an active (PORT) FTP
//!   download work (curl against pyftpdlib), and with
//!   `ct(commit,alg=tftp)` a TFTP download works (curl against tftpd-hpa):
//!   the data connections are `+rel`.
//! - The same firewall committing without `alg=` lets the control
//!   connections through but not the data connections: the downloads
//!   fail. So the helpers, not a hole in the firewall, carry the data.
//! - Differential: the same firewall and the same hand-built FTP and TFTP
//!   frames (`netdev-dummy/receive`) hit the same `ct_state` rule, packet
//!   after packet, in stock OVS and in ferrovs: control connection, PORT,
//!   the active data connection `+new+rel` and its reply `+est+rel+rpl`,
//!   a 227 reply and the passive data connection, a PORT naming a third
//!   host (`+inv`), a TFTP request and the server's reply from a new port.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use ferrovs_tests::ct_hosts::{FTP_ACTIVE, FTP_PASSIVE, FileServers, curl, require_pyftpdlib};
use ferrovs_tests::*;

/// The firewall, with `{FTP}` and `{TFTP}` standing for the `ct` actions
/// that commit the control connections.
const FIREWALL: &str = "\
table=0,priority=200,in_port=LOCAL,actions=drop
table=0,priority=100,arp,actions=NORMAL
table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1)
table=0,priority=0,actions=drop
table=1,cookie=0x1,priority=10,tcp,ct_state=+trk+new-rel,in_port=1,tp_dst=21,actions={FTP},output:2
table=1,cookie=0x2,priority=10,udp,ct_state=+trk+new-rel,in_port=1,tp_dst=69,actions={TFTP},output:2
table=1,cookie=0x3,priority=20,ip,ct_state=+trk+rel-inv,in_port=1,actions=ct(commit),output:2
table=1,cookie=0x4,priority=20,ip,ct_state=+trk+rel-inv,in_port=2,actions=ct(commit),output:1
table=1,cookie=0x5,priority=10,ip,ct_state=+trk+est-inv,in_port=1,actions=output:2
table=1,cookie=0x6,priority=10,ip,ct_state=+trk+est-inv,in_port=2,actions=output:1
table=1,cookie=0x7,priority=0,actions=drop
";

fn load_firewall(sw: &Switch, br: &str, ftp: &str, tftp: &str) -> Result<()> {
    let flows = FIREWALL.replace("{FTP}", ftp).replace("{TFTP}", tftp);
    let file = sw.rundir().join("alg-flows.txt");
    std::fs::write(&file, flows)?;
    sw.ofctl(&["del-flows", br])?;
    sw.ofctl(&["add-flows", br, file.to_str().context("path")?])?;
    sw.appctl(&["dpctl/flush-conntrack"])?;
    Ok(())
}

#[test]
fn ftp_and_tftp_data_connections_pass_a_related_only_firewall_with_their_alg_and_not_without()
-> Result<()> {
    require!("curl", "in.tftpd", "python3");
    require_pyftpdlib();
    let tag = format!("alg{}", std::process::id() % 10000);
    let (sw, br, hosts) = bridge_with_hosts(&tag, 64, 2)?;
    let (client, server) = (&hosts[0], &hosts[1]);
    let srv_ip = server.addr.clone();

    let servers = FileServers::start(&server.ns, &srv_ip)?;
    let body = servers.body.clone();
    let ftp_url = format!("ftp://{srv_ip}/data.txt");
    let tftp_url = format!("tftp://{srv_ip}/data.txt");
    let (passive, active) = (FTP_PASSIVE, FTP_ACTIVE);

    // Without helpers: the control connections pass, the data does not.
    load_firewall(&sw, &br, "ct(commit)", "ct(commit)")?;
    // The servers may take a moment to listen: the control connection
    // answering (a directory listing needs a data connection, so ask for
    // nothing but the login) shows they are up.
    let up = wait_until(Duration::from_secs(15), || {
        curl(&client.ns, &["-I"], &ftp_url).is_ok()
    });
    assert!(
        up,
        "the FTP server does not answer; log:\n{}",
        sw.log_text()
    );
    assert!(
        curl(&client.ns, passive, &ftp_url).is_err(),
        "passive FTP data passed without alg=ftp"
    );
    assert!(
        curl(&client.ns, active, &ftp_url).is_err(),
        "active FTP data passed without alg=ftp"
    );
    assert!(
        curl(&client.ns, &[], &tftp_url).is_err(),
        "TFTP data passed without alg=tftp"
    );

    // With the helpers, all three transfers work.
    load_firewall(&sw, &br, "ct(commit,alg=ftp)", "ct(commit,alg=tftp)")?;
    assert_eq!(
        curl(&client.ns, passive, &ftp_url).context("passive FTP")?,
        body
    );
    let dump = sw.appctl(&["dpctl/dump-conntrack"])?;
    assert!(
        dump.lines()
            .any(|l| l.contains("dport=21),") && l.ends_with(",helper=ftp")),
        "no FTP control connection with its helper:\n{dump}"
    );
    assert_eq!(
        curl(&client.ns, active, &ftp_url).context("active FTP")?,
        body
    );
    assert_eq!(curl(&client.ns, &[], &tftp_url).context("TFTP")?, body);
    // The related rules carried the data connections.
    let flows = sw.ofctl(&["dump-flows", &br, "table=1"])?;
    for cookie in ["0x3", "0x4"] {
        let line = flows
            .lines()
            .find(|l| l.contains(&format!("cookie={cookie},")))
            .with_context(|| format!("no rule {cookie} in:\n{flows}"))?;
        assert!(
            !line.contains("n_packets=0,"),
            "the related rule {cookie} saw nothing: {line}"
        );
    }
    Ok(())
}

const BR: &str = "ctalg0";
const PORTS: [&str; 2] = ["ctalgp1", "ctalgp2"];
const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x1a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x1b];
const IP_A: [u8; 4] = [10, 65, 0, 1];
const IP_B: [u8; 4] = [10, 65, 0, 2];
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

/// The differential firewall: each `ct_state` outcome has its own cookie.
const DIFF_FIREWALL: &str = "\
table=0,priority=100,arp,actions=NORMAL
table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1)
table=0,priority=0,actions=drop
table=1,cookie=0x1,priority=10,tcp,ct_state=+trk+new-rel,in_port=1,tp_dst=21,actions=ct(commit,alg=ftp),output:2
table=1,cookie=0x2,priority=10,udp,ct_state=+trk+new-rel,in_port=1,tp_dst=69,actions=ct(commit,alg=tftp),output:2
table=1,cookie=0x3,priority=20,ip,ct_state=+trk+rel-inv,in_port=1,actions=ct(commit),output:2
table=1,cookie=0x4,priority=20,ip,ct_state=+trk+rel-inv,in_port=2,actions=ct(commit),output:1
table=1,cookie=0x5,priority=10,ip,ct_state=+trk+est-inv,in_port=1,actions=output:2
table=1,cookie=0x6,priority=10,ip,ct_state=+trk+est-inv,in_port=2,actions=output:1
table=1,cookie=0x7,priority=0,actions=drop
table=1,cookie=0x9,priority=30,ip,ct_state=+trk+inv,actions=drop
";

fn csum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for p in parts {
        for c in p.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet/IPv4 frame from A (or B) to the other around L4 header and
/// payload `l4` of protocol `proto`, with valid checksums.
fn ip_frame(from_a: bool, proto: u8, mut l4: Vec<u8>) -> Vec<u8> {
    let (smac, dmac, sip, dip) = if from_a {
        (MAC_A, MAC_B, IP_A, IP_B)
    } else {
        (MAC_B, MAC_A, IP_B, IP_A)
    };
    let len = l4.len() as u16;
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&sip);
    pseudo.extend_from_slice(&dip);
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&len.to_be_bytes());
    let at = if proto == 6 { 16 } else { 6 };
    let c = csum(&[&pseudo, &l4]);
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(20 + len).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    ip.extend_from_slice(&sip);
    ip.extend_from_slice(&dip);
    let c = csum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&dmac);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&l4);
    f
}

fn tcp(
    from_a: bool,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    data: &[u8],
) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.push(5 << 4);
    t.push(flags);
    t.extend_from_slice(&64240u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(data);
    ip_frame(from_a, 6, t)
}

fn udp(from_a: bool, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&(8 + data.len() as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    ip_frame(from_a, 17, u)
}

#[test]
fn ftp_and_tftp_alg_ct_states_match_stock_ovs_packet_by_packet() -> Result<()> {
    require!("ovs-vswitchd", "ovsdb-server", "ovs-ofctl", "ovs-appctl");
    let (ovs, fv) = dummy_pair("ctalg-ovs-", BR, &PORTS)?;
    let fv_mgmt = format!("unix:{}", fv.rundir().join(format!("{BR}.mgmt")).display());
    let file = fv.rundir().join("ct-alg-fw.txt");
    std::fs::write(&file, DIFF_FIREWALL)?;
    for target in [ovs.mgmt(BR), fv_mgmt.clone()] {
        let loaded = wait_until(Duration::from_secs(20), || {
            run(Command::new("ovs-ofctl")
                .args(["-O", "OpenFlow13", "add-flows", &target])
                .arg(&file))
            .is_ok()
        });
        assert!(loaded, "cannot load flows into {target}");
    }

    let port_cmd: &[u8] = b"PORT 10,65,0,1,156,64\r\n";
    let pasv: &[u8] = b"227 Entering Passive Mode (10,65,0,2,39,16).\r\n";
    let third: &[u8] = b"PORT 10,65,0,99,156,65\r\n";
    let (c, s) = (101u32, 501u32);
    let (pl, vl) = (port_cmd.len() as u32, pasv.len() as u32);
    let packets: Vec<(&str, usize, Vec<u8>)> = vec![
        ("control SYN", 0, tcp(true, 40000, 21, 100, 0, SYN, &[])),
        (
            "control SYN-ACK",
            1,
            tcp(false, 21, 40000, 500, c, SYN | ACK, &[]),
        ),
        ("control ACK", 0, tcp(true, 40000, 21, c, s, ACK, &[])),
        ("PORT", 0, tcp(true, 40000, 21, c, s, ACK | PSH, port_cmd)),
        (
            "active data SYN",
            1,
            tcp(false, 20, 40000, 9000, 0, SYN, &[]),
        ),
        (
            "active data SYN-ACK",
            0,
            tcp(true, 40000, 20, 7000, 9001, SYN | ACK, &[]),
        ),
        (
            "227 reply",
            1,
            tcp(false, 21, 40000, s, c + pl, ACK | PSH, pasv),
        ),
        (
            "passive data SYN",
            0,
            tcp(true, 41000, 10000, 3000, 0, SYN, &[]),
        ),
        (
            "PORT naming a third host",
            0,
            tcp(true, 40000, 21, c + pl, s + vl, ACK | PSH, third),
        ),
        (
            "SYN to the third host's port",
            1,
            tcp(false, 20, 40001, 9100, 0, SYN, &[]),
        ),
        (
            "TFTP read request",
            0,
            udp(true, 5000, 69, b"\x00\x01data.txt\x00octet\x00"),
        ),
        (
            "TFTP data from a new port",
            1,
            udp(false, 47000, 5000, b"\x00\x03\x00\x01hello"),
        ),
        ("UDP to another port", 1, udp(false, 47001, 5001, b"x")),
    ];
    let ovs_inject = |p: &str, h: &str| ovs.appctl(&["netdev-dummy/receive", p, h]);
    let fv_inject = |p: &str, h: &str| fv.appctl(&["netdev-dummy/receive", p, h]);
    let (mut seq_ovs, mut seq_fv) = (Vec::new(), Vec::new());
    for (what, port, frame) in &packets {
        let o = rule_hit(&ovs.mgmt(BR), &ovs_inject, PORTS[*port], frame)
            .with_context(|| format!("stock OVS, {what}"))?;
        let f = rule_hit(&fv_mgmt, &fv_inject, PORTS[*port], frame)
            .with_context(|| format!("ferrovs, {what}; log:\n{}", fv.log_text()))?;
        seq_ovs.push((*what, o));
        seq_fv.push((*what, f));
    }
    assert_eq!(
        seq_fv, seq_ovs,
        "ferrovs (left) and stock OVS (right) disagree"
    );
    // And the oracle saw what the helpers are about.
    let cookies: Vec<u64> = seq_ovs.iter().map(|s| s.1).collect();
    assert_eq!(cookies, [1, 6, 5, 5, 4, 3, 6, 3, 9, 7, 2, 4, 7]);
    Ok(())
}
