//! Connection tracking end to end (issue 15).
//!
//! - The classic stateful firewall of ovs-actions(7) on a ferrovs bridge
//!   between two namespace hosts: the inside host (port 1) opens TCP
//!   connections and pings the outside host (port 2); the outside host
//!   cannot initiate anything; `dpctl/dump-conntrack` lists the connection
//!   and `dpctl/flush-conntrack` forgets it.
//! - A differential test against stock OVS (userspace datapath,
//!   `--enable-dummy`): the same firewall table and the same hand-built
//!   frames (`netdev-dummy/receive`) must hit the same `ct_state` rule, one
//!   packet after the other, on both switches: `+new`, `+est+rpl` for the
//!   reply, `+est` for the handshake's ACK, `+inv` for a segment far
//!   outside the window, and `+new` (dropped) for a SYN from outside.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferrovs_tests::*;

/// The firewall: table 0 sends IP through conntrack into table 1; table 1
/// lets port 1 open connections, lets established traffic through both
/// ways, and drops the rest. Cookies name the table 1 rules. What the
/// bridge's own internal port sends (IPv6 MLD and router solicitations at
/// random times) is dropped first, so that it never moves a counter.
const FIREWALL: &str = "\
table=0,priority=200,in_port=LOCAL,actions=drop
table=0,priority=100,arp,actions=NORMAL
table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1)
table=0,priority=0,actions=drop
table=1,cookie=0x1,priority=10,ip,ct_state=+trk+new,in_port=1,actions=ct(commit),output:2
table=1,cookie=0x2,priority=10,ip,ct_state=+trk+est-rpl,in_port=1,actions=output:2
table=1,cookie=0x3,priority=10,ip,ct_state=+trk+est+rpl,in_port=2,actions=output:1
table=1,cookie=0x4,priority=20,ip,ct_state=+trk+inv,actions=drop
table=1,cookie=0x5,priority=10,ip,ct_state=+trk+new,in_port=2,actions=drop
table=1,cookie=0x6,priority=0,actions=drop
table=1,cookie=0x7,priority=15,ip,ct_state=+trk+rel+rpl,actions=output:1
table=1,cookie=0x8,priority=15,ip,ct_state=+trk+rel-rpl,actions=output:2
";

fn load_flows(sw: &Switch, br: &str, flows: &str) -> Result<()> {
    let file = sw.rundir().join("ct-flows.txt");
    std::fs::write(&file, flows)?;
    sw.ofctl(&["del-flows", br])?;
    sw.ofctl(&["add-flows", br, file.to_str().context("path")?])?;
    Ok(())
}

/// A one-shot TCP echo server on `port` in `ns` (python3).
fn tcp_server(ns: &Netns, port: u16) -> Result<ChildGuard> {
    let code = format!(
        "import socket\n\
         s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('0.0.0.0',{port})); s.listen(4); s.settimeout(20)\n\
         c,_=s.accept(); c.sendall(c.recv(100)); c.close()\n"
    );
    ns.spawn_server(&["python3", "-c", &code], Proto::Tcp, port)
}

/// Connects from `ns` to `dst:port`, sends a word and returns the echo
/// (an error on timeout or refusal).
fn tcp_echo(ns: &Netns, dst: &str, port: u16) -> Result<String> {
    let code = format!(
        "import socket\n\
         c=socket.create_connection(('{dst}',{port}), timeout=3)\n\
         c.sendall(b'conntrack'); print(c.recv(100).decode())\n"
    );
    let out = ns.exec_output(&["python3", "-c", &code])?;
    if !out.status.success() {
        bail!(
            "connect to {dst}:{port} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A one-shot UDP echo server on `port` in `ns`.
fn udp_server(ns: &Netns, port: u16) -> Result<ChildGuard> {
    let code = format!(
        "import socket\n\
         s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0',{port})); s.settimeout(20)\n\
         d,peer=s.recvfrom(100); s.sendto(d, peer)\n"
    );
    ns.spawn_server(&["python3", "-c", &code], Proto::Udp, port)
}

/// Sends a datagram from `ns` to `dst:port` and returns the echo.
fn udp_echo(ns: &Netns, dst: &str, port: u16) -> Result<String> {
    let code = format!(
        "import socket\n\
         s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)\n\
         s.sendto(b'datagram', ('{dst}',{port})); print(s.recv(100).decode())\n"
    );
    let out = ns.exec_output(&["python3", "-c", &code])?;
    if !out.status.success() {
        bail!(
            "UDP to {dst}:{port} got no answer: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn nconns(sw: &Switch) -> Result<u32> {
    Ok(sw.appctl(&["dpctl/ct-get-nconns"])?.trim().parse()?)
}

#[test]
fn stateful_firewall_lets_the_inside_connect_and_ping_and_keeps_the_outside_out() -> Result<()> {
    require!("python3", "ping", "ovs-ofctl");
    let tag = format!("ct{}", std::process::id() % 10000);
    let (sw, br, hosts) = bridge_with_hosts(&tag, 61, 2)?;
    let (a, b) = (&hosts[0], &hosts[1]);
    // The hosts keep their checksum offload: TCP leaves them with partial
    // checksums, which the tracker must accept (and NAT must keep partial).
    load_flows(&sw, &br, FIREWALL)?;

    // Inside to outside: ping and a TCP connection work.
    assert!(
        a.ns.ping_eventually(&b.addr, Duration::from_secs(10)),
        "inside host cannot ping outside; log:\n{}",
        sw.log_text()
    );
    let srv = tcp_server(&b.ns, 7001)?;
    assert_eq!(tcp_echo(&a.ns, &b.addr, 7001)?, "conntrack");
    drop(srv);
    let srv = udp_server(&b.ns, 7004)?;
    assert_eq!(udp_echo(&a.ns, &b.addr, 7004)?, "datagram");
    drop(srv);

    // The connection is tracked, in OVS's dump format.
    let dump = sw.appctl(&["dpctl/dump-conntrack"])?;
    let want = format!("tcp,orig=(src={},dst={},sport=", a.addr, b.addr);
    assert!(
        dump.lines()
            .any(|l| l.starts_with(&want) && l.contains(",dport=7001),reply=(")),
        "no TCP entry in:\n{dump}"
    );
    assert!(
        dump.lines().any(|l| l.starts_with("icmp,orig=(src=")
            && l.contains(&format!("src={},dst={},id=", a.addr, b.addr))),
        "no ICMP entry in:\n{dump}"
    );
    let stats = sw.appctl(&["dpctl/ct-stats-show"])?;
    assert!(stats.contains("TCP: 1"), "{stats}");
    assert!(stats.contains("UDP: 1"), "{stats}");
    let n = nconns(&sw)?;
    assert!(n >= 3, "{n} connections");

    // Outside to inside: neither ping nor TCP gets through.
    assert!(!b.ns.ping(&a.addr, 2), "outside host pinged the inside");
    let srv = tcp_server(&a.ns, 7002)?;
    assert!(
        tcp_echo(&b.ns, &a.addr, 7002).is_err(),
        "outside host connected to the inside"
    );
    drop(srv);
    let dump = sw.appctl(&["dpctl/dump-conntrack"])?;
    assert!(
        !dump.contains("dport=7002"),
        "a refused connection was committed:\n{dump}"
    );

    // The second pass is cached: megaflows keyed on recirc_id exist, and the
    // PMD counts recirculations.
    let pmd = sw.appctl(&["dpif-netdev/pmd-stats-show"])?;
    let recirc: u64 = pmd
        .lines()
        .find_map(|l| l.trim().strip_prefix("packet recirculations: "))
        .context("no recirculation counter")?
        .parse()?;
    assert!(recirc > 0, "{pmd}");

    // NXT_CT_FLUSH_ZONE (stock ovs-ofctl ct-flush-zone) flushes its zone
    // only: the firewall tracks in zone 0.
    let mgmt = format!("unix:{}", sw.rundir().join(format!("{br}.mgmt")).display());
    run(Command::new("ovs-ofctl").args(["ct-flush-zone", &mgmt, "7"]))?;
    assert_eq!(nconns(&sw)?, n, "flushing zone 7 removed zone 0 entries");
    run(Command::new("ovs-ofctl").args(["ct-flush-zone", &mgmt, "0"]))?;
    assert_eq!(nconns(&sw)?, 0);

    // dpctl/flush-conntrack forgets every connection.
    assert!(a.ns.ping(&b.addr, 3), "ping after the flush");
    assert!(nconns(&sw)? > 0);
    sw.appctl(&["dpctl/flush-conntrack", "zone=3"])?;
    assert!(nconns(&sw)? > 0, "zone=3 flushed zone 0");
    sw.appctl(&["dpctl/flush-conntrack"])?;
    assert_eq!(sw.appctl(&["dpctl/dump-conntrack"])?, "");
    assert_eq!(sw.appctl(&["dpctl/ct-get-nconns"])?.trim(), "0");
    Ok(())
}

/// Source NAT of the inside host (port 1) to `NAT_IP` on its way out;
/// every packet first goes through `ct(nat)` so replies are translated back.
const SNAT: &str = "\
table=0,priority=100,arp,actions=NORMAL
table=0,priority=100,ip,ct_state=-trk,actions=ct(nat,table=1)
table=0,priority=0,actions=drop
table=1,priority=10,ip,ct_state=+trk+new,in_port=1,actions=ct(commit,nat(src=10.64.0.100)),output:2
table=1,priority=10,ip,ct_state=+trk+est,in_port=1,actions=output:2
table=1,priority=10,ip,ct_state=+trk+est,in_port=2,actions=output:1
table=1,priority=0,actions=drop
";

#[test]
fn snat_hides_the_inside_address_and_replies_are_translated_back() -> Result<()> {
    require!("python3", "ping", "iperf3");
    let tag = format!("cn{}", std::process::id() % 10000);
    let (sw, br, hosts) = bridge_with_hosts(&tag, 64, 2)?;
    let (a, b) = (&hosts[0], &hosts[1]);
    // The outside host reaches the NAT address through the inside host's MAC.
    let mac_a = a.ns.exec(&["cat", "/sys/class/net/eth0/address"])?;
    b.ns.exec(&[
        "ip",
        "neigh",
        "replace",
        "10.64.0.100",
        "lladdr",
        mac_a.trim(),
        "dev",
        "eth0",
    ])?;
    load_flows(&sw, &br, SNAT)?;

    assert!(
        a.ns.ping_eventually(&b.addr, Duration::from_secs(10)),
        "ping through SNAT failed; log:\n{}",
        sw.log_text()
    );
    // The outside host sees the NAT address as the client.
    let code = "import socket\n\
         s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('0.0.0.0',7003)); s.listen(4); s.settimeout(20)\n\
         c,peer=s.accept(); c.recv(100); c.sendall(peer[0].encode()); c.close()\n";
    let srv =
        b.ns.spawn_server(&["python3", "-c", code], Proto::Tcp, 7003)?;
    assert_eq!(tcp_echo(&a.ns, &b.addr, 7003)?, "10.64.0.100");
    drop(srv);
    // A bulk TCP transfer through the translation.
    let bps = iperf3_tcp(&b.ns, &a.ns, &b.addr, 2)?;
    assert!(bps > 0.0, "iperf3 through SNAT moved nothing");

    let dump = sw.appctl(&["dpctl/dump-conntrack"])?;
    let want = format!("tcp,orig=(src={},dst={},sport=", a.addr, b.addr);
    let line = dump
        .lines()
        .find(|l| l.starts_with(&want))
        .with_context(|| format!("no TCP entry in:\n{dump}"))?;
    assert!(
        line.contains(&format!("reply=(src={},dst=10.64.0.100,", b.addr)),
        "the reply direction is not translated: {line}"
    );
    Ok(())
}

/// Destination NAT of a virtual IP to the outside host (a one-backend load
/// balancer); the commit marks the connection, and replies pass only with
/// that mark.
const DNAT: &str = "\
table=0,priority=100,arp,actions=NORMAL
table=0,priority=100,ip,ct_state=-trk,actions=ct(nat,table=1)
table=0,priority=0,actions=drop
table=1,priority=10,ip,ct_state=+trk+new,in_port=1,nw_dst=10.65.0.100,actions=ct(commit,nat(dst=10.65.0.2),exec(set_field:0x5->ct_mark)),output:2
table=1,priority=10,ip,ct_state=+trk+est,ct_mark=0x5,in_port=1,actions=output:2
table=1,priority=10,ip,ct_state=+trk+est,ct_mark=0x5,in_port=2,actions=output:1
table=1,priority=0,actions=drop
";

#[test]
fn dnat_sends_a_virtual_ip_to_its_backend_which_sees_the_real_client() -> Result<()> {
    require!("python3", "ping", "iperf3");
    let tag = format!("cd{}", std::process::id() % 10000);
    let (sw, br, hosts) = bridge_with_hosts(&tag, 65, 2)?;
    let (a, b) = (&hosts[0], &hosts[1]);
    // The client reaches the virtual IP through the backend's MAC.
    let mac_b = b.ns.exec(&["cat", "/sys/class/net/eth0/address"])?;
    a.ns.exec(&[
        "ip",
        "neigh",
        "replace",
        "10.65.0.100",
        "lladdr",
        mac_b.trim(),
        "dev",
        "eth0",
    ])?;
    load_flows(&sw, &br, DNAT)?;

    assert!(
        a.ns.ping_eventually("10.65.0.100", Duration::from_secs(10)),
        "ping of the virtual IP failed; log:\n{}",
        sw.log_text()
    );
    // The backend sees the real client address.
    let code = "import socket\n\
         s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('0.0.0.0',7005)); s.listen(4); s.settimeout(20)\n\
         c,peer=s.accept(); c.recv(100); c.sendall(peer[0].encode()); c.close()\n";
    let srv =
        b.ns.spawn_server(&["python3", "-c", code], Proto::Tcp, 7005)?;
    assert_eq!(tcp_echo(&a.ns, "10.65.0.100", 7005)?, a.addr);
    drop(srv);
    // A bulk TCP transfer to the virtual IP.
    let bps = iperf3_tcp(&b.ns, &a.ns, "10.65.0.100", 2)?;
    assert!(bps > 0.0, "iperf3 through DNAT moved nothing");

    let dump = sw.appctl(&["dpctl/dump-conntrack"])?;
    let line = dump
        .lines()
        .find(|l| l.starts_with(&format!("tcp,orig=(src={},dst=10.65.0.100,", a.addr)))
        .with_context(|| format!("no TCP entry in:\n{dump}"))?;
    assert!(
        line.contains(&format!("reply=(src={},dst={},", b.addr, a.addr))
            && line.contains(",mark=5"),
        "{line}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Differential test against stock OVS.

const BR: &str = "ctfw0";
const PORTS: [&str; 2] = ["ctfwp1", "ctfwp2"];
const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const IP_A: [u8; 4] = [10, 62, 0, 1];
const IP_B: [u8; 4] = [10, 62, 0, 2];
const IP6_A: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a];
const IP6_B: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b];

fn csum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for p in parts {
        for c in p.chunks(2) {
            let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
            sum += u32::from(w);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// TCP flags.
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

/// An Ethernet/IPv4/TCP frame with valid checksums.
#[allow(clippy::too_many_arguments)]
fn tcp_frame(
    from_a: bool,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let (smac, dmac, sip, dip) = if from_a {
        (MAC_A, MAC_B, IP_A, IP_B)
    } else {
        (MAC_B, MAC_A, IP_B, IP_A)
    };
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&ack.to_be_bytes());
    tcp.push(5 << 4);
    tcp.push(flags);
    tcp.extend_from_slice(&64240u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]);
    tcp.extend_from_slice(payload);
    let len = tcp.len() as u16;
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&sip);
    pseudo.extend_from_slice(&dip);
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&len.to_be_bytes());
    let c = csum(&[&pseudo, &tcp]);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(20 + len).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
    ip.extend_from_slice(&sip);
    ip.extend_from_slice(&dip);
    let c = csum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&dmac);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&tcp);
    f
}

/// An Ethernet/IPv6/TCP frame with a valid checksum.
fn tcp6_frame(from_a: bool, sport: u16, dport: u16, seq: u32, ack: u32, flags: u8) -> Vec<u8> {
    let (smac, dmac, sip, dip) = if from_a {
        (MAC_A, MAC_B, IP6_A, IP6_B)
    } else {
        (MAC_B, MAC_A, IP6_B, IP6_A)
    };
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&ack.to_be_bytes());
    tcp.extend_from_slice(&[5 << 4, flags]);
    tcp.extend_from_slice(&64240u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]);
    let len = tcp.len() as u32;
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&sip);
    pseudo.extend_from_slice(&dip);
    pseudo.extend_from_slice(&len.to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 6]);
    let c = csum(&[&pseudo, &tcp]);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&dmac);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(len as u16).to_be_bytes());
    f.extend_from_slice(&[6, 64]);
    f.extend_from_slice(&sip);
    f.extend_from_slice(&dip);
    f.extend_from_slice(&tcp);
    f
}

/// An ICMP destination-unreachable (port unreachable) from B to A quoting
/// the first 28 bytes of the IP packet of `about` (an Ethernet frame).
fn icmp_unreachable_from_b(about: &[u8]) -> Vec<u8> {
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&about[14..14 + 28]);
    let c = csum(&[&icmp]);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(20 + icmp.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 2, 0, 0, 64, 1, 0, 0]);
    ip.extend_from_slice(&IP_B);
    ip.extend_from_slice(&IP_A);
    let c = csum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&icmp);
    f
}

#[test]
fn ct_state_sequence_of_a_tcp_handshake_matches_stock_ovs() -> Result<()> {
    require!("ovs-vswitchd", "ovsdb-server", "ovs-ofctl", "ovs-appctl");
    let (ovs, fv) = dummy_pair("ct-ovs-", BR, &PORTS)?;
    let fv_mgmt = format!("unix:{}", fv.rundir().join(format!("{BR}.mgmt")).display());
    let file = fv.rundir().join("ct-fw.txt");
    // The same firewall, IPv6 included.
    // (Each IPv4 rule of table 1 gets an IPv6 twin with its cookie.)
    let v6: String = FIREWALL
        .lines()
        .filter(|l| l.contains(",ip,"))
        .map(|l| format!("{}\n", l.replace(",ip,", ",ipv6,")))
        .collect();
    let flows = format!("{FIREWALL}{v6}");
    std::fs::write(&file, flows)?;
    for target in [ovs.mgmt(BR), fv_mgmt.clone()] {
        let loaded = wait_until(Duration::from_secs(20), || {
            run(Command::new("ovs-ofctl")
                .args(["-O", "OpenFlow13", "add-flows", &target])
                .arg(&file))
            .is_ok()
        });
        assert!(loaded, "cannot load flows into {target}");
    }

    let (csp, ssp) = (40000u16, 80u16);
    let (isn_a, isn_b) = (1000u32, 5000u32);
    let packets: Vec<(&str, &str, usize, Vec<u8>)> = vec![
        (
            "SYN from inside",
            "+trk+new",
            0,
            tcp_frame(true, csp, ssp, isn_a, 0, SYN, &[]),
        ),
        (
            "SYN-ACK reply",
            "+trk+est+rpl",
            1,
            tcp_frame(false, ssp, csp, isn_b, isn_a + 1, SYN | ACK, &[]),
        ),
        (
            "ACK from inside",
            "+trk+est",
            0,
            tcp_frame(true, csp, ssp, isn_a + 1, isn_b + 1, ACK, &[]),
        ),
        (
            "data from inside",
            "+trk+est",
            0,
            tcp_frame(true, csp, ssp, isn_a + 1, isn_b + 1, ACK | PSH, b"hello"),
        ),
        (
            "reply data",
            "+trk+est+rpl",
            1,
            tcp_frame(false, ssp, csp, isn_b + 1, isn_a + 6, ACK | PSH, b"world"),
        ),
        (
            "segment far outside the window",
            "+trk+inv",
            0,
            tcp_frame(
                true,
                csp,
                ssp,
                isn_a + 0x4000_0000,
                isn_b + 6,
                ACK | PSH,
                b"x",
            ),
        ),
        (
            "SYN from outside",
            "+trk+new (outside)",
            1,
            tcp_frame(false, 40001, 22, 9000, 0, SYN, &[]),
        ),
        (
            "ICMP error about the connection",
            "+trk+rel",
            1,
            icmp_unreachable_from_b(&tcp_frame(
                true,
                csp,
                ssp,
                isn_a + 6,
                isn_b + 6,
                ACK | PSH,
                b"more",
            )),
        ),
        (
            "IPv6 SYN from inside",
            "+trk+new",
            0,
            tcp6_frame(true, 41000, 443, 7000, 0, SYN),
        ),
        (
            "IPv6 SYN-ACK reply",
            "+trk+est+rpl",
            1,
            tcp6_frame(false, 443, 41000, 8000, 7001, SYN | ACK),
        ),
        (
            "IPv6 SYN from outside",
            "+trk+new (outside)",
            1,
            tcp6_frame(false, 41001, 22, 9000, 0, SYN),
        ),
    ];

    let ovs_counters = || table1_counters(&ovs.mgmt(BR));
    let fv_counters = || table1_counters(&fv_mgmt);
    let ovs_inject = |p: &str, h: &str| ovs.appctl(&["netdev-dummy/receive", p, h]);
    let fv_inject = |p: &str, h: &str| fv.appctl(&["netdev-dummy/receive", p, h]);
    let mut seq_ovs = Vec::new();
    let mut seq_fv = Vec::new();
    for (what, state, port, frame) in &packets {
        let o = rule_hit(&ovs.mgmt(BR), &ovs_inject, PORTS[*port], frame)
            .with_context(|| format!("stock OVS, {what}"))?;
        let f = rule_hit(&fv_mgmt, &fv_inject, PORTS[*port], frame)
            .with_context(|| format!("ferrovs, {what}; log:\n{}", fv.log_text()))?;
        seq_ovs.push((*what, *state, o));
        seq_fv.push((*what, *state, f));
    }
    assert_eq!(
        seq_fv, seq_ovs,
        "ferrovs (left) and stock OVS (right) disagree"
    );
    // And the oracle saw what the firewall is about.
    let cookies: Vec<u64> = seq_ovs.iter().map(|s| s.2).collect();
    assert_eq!(&cookies[..7], [1, 3, 2, 2, 3, 4, 5]);
    assert!(
        [7, 8].contains(&cookies[7]),
        "the ICMP error was not +rel: {cookies:?}"
    );
    assert_eq!(&cookies[8..], [1, 3, 5], "IPv6");

    // Rule counters agree too (each packet counted once, cached or not).
    let mut last = (BTreeMap::new(), BTreeMap::new());
    let same = wait_until(Duration::from_secs(5), || {
        if let (Ok(o), Ok(f)) = (ovs_counters(), fv_counters()) {
            last = (o, f);
        }
        last.0 == last.1
    });
    assert!(
        same,
        "rule counters differ: OVS {:?}, ferrovs {:?}",
        last.0, last.1
    );

    // Both keep the same committed connections.
    let fv_dump = fv.appctl(&["dpctl/dump-conntrack"])?;
    let ovs_dump = ovs.appctl(&["dpctl/dump-conntrack"])?;
    let strip = |d: &str| -> Vec<String> {
        let mut v: Vec<String> = d
            .lines()
            .map(|l| l.split(",protoinfo").next().unwrap_or(l).to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(strip(&fv_dump), strip(&ovs_dump), "dump-conntrack differs");
    Ok(())
}

/// Datapath port number → name, from `ovs-appctl dpif/show` (stock) or
/// `appctl dpctl/show` (ferrovs).
fn port_names(
    ovs: &StockOvs,
    fv: &Switch,
) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    let mut o = BTreeMap::new();
    for line in ovs.appctl(&["dpif/show"])?.lines() {
        let mut it = line.split_whitespace();
        if let (Some(name), Some(nums)) = (it.next(), it.next())
            && PORTS.contains(&name)
            && let Some((_, dp)) = nums.trim_end_matches(':').split_once('/')
        {
            o.insert(dp.to_string(), name.to_string());
        }
    }
    let mut f = BTreeMap::new();
    for line in fv.appctl(&["dpctl/show"])?.lines() {
        if let Some(rest) = line.trim().strip_prefix("port ")
            && let Some((no, rest)) = rest.split_once(": ")
            && let Some(name) = rest.split_whitespace().next()
            && PORTS.contains(&name)
        {
            f.insert(no.to_string(), name.to_string());
        }
    }
    Ok((o, f))
}

/// Every "Datapath actions:" line of a trace (one per pass), with output
/// ports renamed and recirculation ids (allocated differently) blanked.
fn trace_actions(trace: &str, ports: &BTreeMap<String, String>) -> Vec<String> {
    trace
        .lines()
        .filter_map(|l| l.strip_prefix("Datapath actions: "))
        .map(|a| {
            a.trim()
                .split(',')
                .map(|t| {
                    if let Some(name) = ports.get(t) {
                        name.clone()
                    } else if t.starts_with("recirc(") {
                        "recirc(X)".to_string()
                    } else {
                        t.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

#[test]
fn ofproto_trace_of_ct_pipelines_gives_stock_ovs_datapath_actions_in_every_pass() -> Result<()> {
    require!("ovs-vswitchd", "ovsdb-server", "ovs-ofctl", "ovs-appctl");
    let (ovs, fv) = dummy_pair("ct-trace-ovs-", BR, &PORTS)?;
    let flows = "\
table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1,zone=5)
table=1,priority=10,ip,ct_state=+trk+new,in_port=1,actions=ct(commit,zone=5,exec(set_field:0x3->ct_mark),nat(src=10.0.0.100)),output:2
table=1,priority=10,ip,ct_state=+trk+est,actions=output:2
table=1,priority=10,ip,ct_state=+trk+new,in_port=2,actions=drop
table=1,priority=20,ip,ct_state=+trk+inv,actions=ct_clear,output:1
table=1,priority=30,udp,ct_state=+trk+new,actions=ct(commit,nat(dst=10.0.0.7-10.0.0.8:53)),output:2
";
    let file = fv.rundir().join("ct-trace.txt");
    std::fs::write(&file, flows)?;
    let fv_mgmt = format!("unix:{}", fv.rundir().join(format!("{BR}.mgmt")).display());
    for target in [ovs.mgmt(BR), fv_mgmt] {
        let loaded = wait_until(Duration::from_secs(20), || {
            run(Command::new("ovs-ofctl")
                .args(["-O", "OpenFlow13", "add-flows", &target])
                .arg(&file))
            .is_ok()
        });
        assert!(loaded, "cannot load flows into {target}");
    }
    let mut names = (BTreeMap::new(), BTreeMap::new());
    wait_until(Duration::from_secs(20), || {
        port_names(&ovs, &fv).is_ok_and(|n| {
            names = n;
            names.0.len() == 2 && names.1.len() == 2
        })
    });
    let tcp1 = "in_port=1,tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=1000,tp_dst=80";
    let tcp2 = "in_port=2,tcp,nw_src=10.0.0.2,nw_dst=10.0.0.1,tp_src=80,tp_dst=1000";
    let udp1 = "udp,in_port=1,nw_src=10.0.0.1,nw_dst=10.0.0.9,udp_src=1000,udp_dst=53";
    let cases: [(&str, &[&str]); 6] = [
        (tcp1, &[]),
        (tcp1, &["--ct-next", "trk,est"]),
        (tcp2, &[]),
        (tcp2, &["--ct-next", "trk,inv"]),
        (udp1, &[]),
        ("in_port=1,arp", &[]),
    ];
    let mut compared = 0;
    for (flow, extra) in cases {
        let mut a = vec!["ofproto/trace", BR, flow];
        a.extend_from_slice(extra);
        let o = ovs.appctl(&a)?;
        let f = fv.appctl(&a)?;
        let (oa, fa) = (trace_actions(&o, &names.0), trace_actions(&f, &names.1));
        assert!(!oa.is_empty(), "{o}");
        assert_eq!(
            fa, oa,
            "trace {flow} {extra:?}: ferrovs (left) vs stock OVS (right)\n--- ferrovs:\n{f}\n--- OVS:\n{o}"
        );
        compared += oa.len();
    }
    assert!(compared >= 10, "{compared} passes compared");
    Ok(())
}
