//! Tunnels that forward (issue 14): two "hypervisors", each a network
//! namespace running its own switch, joined by an underlay veth. Each has
//! an underlay bridge owning the local tunnel address on its internal port
//! (plus the underlay veth), and an integration bridge with a "VM" (a
//! namespace on a veth) and a VXLAN or Geneve port, configured as Open
//! vSwitch's userspace-tunnelling guide says. The VMs ping each other and
//! carry TCP through the tunnel; against stock Open vSwitch as the other
//! end, the same proves the wire format. A capture on the underlay checks
//! the outer headers.
//!
//! Run under the e2e lock: `flock /tmp/ferrovs-e2e.lock cargo test -p
//! ferrovs-tests --test tunnels_forwarding`.

use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};
use ferrovs_tests::*;

use ferrovs_tests::tunnel_hosts::*;

/// Pings from `a`'s VM to `b`'s until one reply comes back (ARP on both
/// levels, neighbour resolution), then expects every reply of a burst.
fn ping_through(a: &Hv, b: &Hv) -> Result<()> {
    if !a.vm.ping_eventually(&b.vm_ip(), Duration::from_secs(30)) {
        bail!(
            "no ping reply across the tunnel\nA:\n{}\nB:\n{}",
            diag(a),
            diag(b)
        );
    }
    if !a.vm.ping(&b.vm_ip(), 10) {
        bail!("replies lost once the tunnel was up\nA:\n{}", diag(a));
    }
    Ok(())
}

fn diag(h: &Hv) -> String {
    match &h.sw {
        Sw::Ferrovs(s) => {
            let flows = s.appctl(&["dpctl/dump-flows"]).unwrap_or_default();
            let neigh = s.appctl(&["tnl/neigh/show"]).unwrap_or_default();
            let routes = s.appctl(&["ovs/route/show"]).unwrap_or_default();
            let log = s.log_text();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            format!(
                "{flows}\n{neigh}\n{routes}\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        }
        Sw::Ovs(o) => o.appctl(&["dpctl/dump-flows"]).unwrap_or_default(),
    }
}

fn tcp_through(a: &Hv, b: &Hv) -> Result<f64> {
    let bps = iperf3_tcp(&b.vm, &a.vm, &b.vm_ip(), 2)?;
    if bps <= 0.0 {
        bail!("no TCP data crossed the tunnel");
    }
    Ok(bps)
}

/// Two ferrovs hypervisors, one tunnel port each (per-remote).
fn two_ferrovs(t: &str, kind: &str, key: &str) -> Result<(Hv, Hv)> {
    let a = hypervisor(t, 'a', 1, false)?;
    let b = hypervisor(t, 'b', 2, false)?;
    underlay_link(t, &a, &b)?;
    let k = format!("options:key={key}");
    a.configure(
        &format!("{t}ua"),
        kind,
        &["options:remote_ip=10.99.0.2", &k],
    )?;
    b.configure(
        &format!("{t}ub"),
        kind,
        &["options:remote_ip=10.99.0.1", &k],
    )?;
    Ok((a, b))
}

#[test]
fn vms_on_two_ferrovs_hosts_ping_and_carry_tcp_over_vxlan() -> Result<()> {
    require!("iperf3");
    let (a, b) = two_ferrovs("tunx", "vxlan", "4242")?;
    ping_through(&a, &b)?;
    ping_through(&b, &a)?;
    tcp_through(&a, &b)?;
    tcp_through(&b, &a)?;
    // Both directions are cached: the datapath shows the push and the pop.
    let Sw::Ferrovs(s) = &a.sw else {
        unreachable!()
    };
    let flows = s.appctl(&["dpctl/dump-flows"])?;
    assert!(flows.contains("tnl_push("), "{flows}");
    assert!(flows.contains("tnl_pop("), "{flows}");
    // In OVS's words: the header pushed, and the metadata a popped packet
    // is matched on (VNI 4242).
    assert!(
        flows.contains("vxlan(flags=0x8000000,vni=0x1092)"),
        "{flows}"
    );
    assert!(
        flows.contains("tunnel(tun_id=0x1092,src=10.99.0.2,dst=10.99.0.1)"),
        "{flows}"
    );
    Ok(())
}

#[test]
fn vms_on_two_ferrovs_hosts_ping_and_carry_tcp_over_geneve() -> Result<()> {
    require!("iperf3");
    let (a, b) = two_ferrovs("tung", "geneve", "77")?;
    ping_through(&a, &b)?;
    tcp_through(&a, &b)?;
    tcp_through(&b, &a)?;
    Ok(())
}

#[test]
fn vms_on_two_ferrovs_hosts_ping_and_carry_tcp_over_gre() -> Result<()> {
    require!("iperf3");
    let (a, b) = two_ferrovs("tunr", "gre", "9")?;
    ping_through(&a, &b)?;
    tcp_through(&a, &b)?;
    Ok(())
}

/// An IPv6 underlay: VXLAN over IPv6 (outer UDP checksum mandatory); the
/// next hops are found by neighbour solicitation and the snooped
/// advertisements.
#[test]
fn vms_on_two_ferrovs_hosts_ping_and_carry_tcp_over_vxlan_on_an_ipv6_underlay() -> Result<()> {
    require!("iperf3");
    let t = "tun6";
    let a = hypervisor(t, 'a', 1, false)?;
    let b = hypervisor(t, 'b', 2, false)?;
    underlay_link(t, &a, &b)?;
    a.configure(
        &format!("{t}ua"),
        "vxlan",
        &["options:remote_ip=fd00:99::2", "options:key=66"],
    )?;
    b.configure(
        &format!("{t}ub"),
        "vxlan",
        &["options:remote_ip=fd00:99::1", "options:key=66"],
    )?;
    ping_through(&a, &b)?;
    tcp_through(&a, &b)?;
    tcp_through(&b, &a)?;
    let Sw::Ferrovs(s) = &a.sw else {
        unreachable!()
    };
    let neigh = s.appctl(&["tnl/neigh/show"])?;
    assert!(neigh.contains("fd00:99::2"), "{neigh}");
    let drops = s.appctl(&["tnl/drops/show"])?;
    assert!(!drops.contains("neighbour solicitations: 0"), "{drops}");
    Ok(())
}

/// A flow-based Geneve port (`remote_ip=flow key=flow`) driven by
/// OpenFlow rules that set tun_dst and tun_id, and accept only that VNI.
#[test]
fn flow_based_geneve_ports_send_where_the_rules_set_tun_dst_and_tun_id() -> Result<()> {
    require!("iperf3");
    let t = "tunf";
    let a = hypervisor(t, 'a', 1, false)?;
    let b = hypervisor(t, 'b', 2, false)?;
    underlay_link(t, &a, &b)?;
    let flow_opts = ["options:remote_ip=flow", "options:key=flow"];
    a.configure(&format!("{t}ua"), "geneve", &flow_opts)?;
    b.configure(&format!("{t}ub"), "geneve", &flow_opts)?;
    for (h, peer) in [(&a, "10.99.0.2"), (&b, "10.99.0.1")] {
        h.sw.add_flow(
            &h.int,
            &format!(
                "priority=100,in_port=1,actions=set_field:{peer}->tun_dst,set_field:0x5a5->tun_id,output:2"
            ),
        )?;
        h.sw.add_flow(
            &h.int,
            "priority=100,in_port=2,tun_id=0x5a5,actions=output:1",
        )?;
        h.sw.add_flow(&h.int, "priority=90,in_port=2,actions=drop")?;
    }
    ping_through(&a, &b)?;
    tcp_through(&a, &b)?;
    // A rule that sends another VNI: the far side's rules drop it.
    a.sw.add_flow(
        &a.int,
        "priority=200,in_port=1,actions=set_field:10.99.0.2->tun_dst,set_field:0x5a6->tun_id,output:2",
    )?;
    // ofctl ends with a barrier, and ferrovs revalidates its cached flows
    // before it answers it: this holds at once (no sleep).
    assert!(
        !a.vm.ping(&b.vm_ip(), 3),
        "VNI 0x5a6 should find no rule at the far end"
    );
    Ok(())
}

/// Outer headers from a pcap, via scapy: one line per packet,
/// `src dst sport dport ttl df vni`.
fn outer_headers(pcap: &[u8]) -> Result<Vec<String>> {
    let f = tempfile::Builder::new().suffix(".pcap").tempfile()?;
    std::fs::write(f.path(), pcap)?;
    let script = r#"
import sys
from scapy.all import rdpcap, IP, UDP
from scapy.layers.vxlan import VXLAN
for p in rdpcap(sys.argv[1]):
    ip, udp = p[IP], p[UDP]
    v = p[VXLAN].vni if VXLAN in p else -1
    print(ip.src, ip.dst, udp.sport, udp.dport, ip.ttl, int(ip.flags.DF), v, udp.chksum)
"#;
    let out = run(Command::new("python3").args(["-c", script]).arg(f.path()))?;
    Ok(out.lines().map(str::to_string).collect())
}

/// ferrovs on one side, stock Open vSwitch (userspace datapath, the
/// userspace-tunnelling guide's setup) on the other: VXLAN both ways, and
/// the outer headers ferrovs sends look like the ones OVS sends.
#[test]
fn ferrovs_and_stock_ovs_talk_vxlan_with_the_same_outer_headers() -> Result<()> {
    require!("ovs-vswitchd", "iperf3", "tcpdump", "python3");
    interop("tuno", "vxlan", 4789)
}

#[test]
fn ferrovs_and_stock_ovs_talk_geneve_with_the_same_outer_headers() -> Result<()> {
    require!("ovs-vswitchd", "iperf3", "tcpdump", "python3");
    interop("tunq", "geneve", 6081)
}

fn interop(t: &str, kind: &str, port: u16) -> Result<()> {
    let a = hypervisor(t, 'a', 1, false)?;
    let b = hypervisor(t, 'b', 2, true)?;
    // Partial checksums cross a veth as they are, and OVS's AF_PACKET
    // ports (no virtio-net header) pass them on unfinished: the VMs finish
    // their own, as OVS's setup needs.
    a.vm.exec(&["ethtool", "-K", "eth0", "tx", "off"])?;
    underlay_link(t, &a, &b)?;
    let opts_a = ["options:remote_ip=10.99.0.2", "options:key=99"];
    let opts_b = ["options:remote_ip=10.99.0.1", "options:key=99"];
    a.configure(&format!("{t}ua"), kind, &opts_a)?;
    b.configure(&format!("{t}ub"), kind, &opts_b)?;
    // The guide's route for the underlay on the OVS side.
    b.ovs_underlay_route(port)?;
    ping_through(&a, &b)?;
    ping_through(&b, &a)?;
    tcp_through(&a, &b)?;
    tcp_through(&b, &a)?;

    // Outer headers, as captured on B's underlay veth (what ferrovs sent)
    // and on A's (what OVS sent), for several inner flows.
    let ping_some = |from: &Hv, to: &Hv| {
        let script = format!(
            "import socket\nfor p in range(7001, 7007):\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    s.bind(('', p))\n    s.sendto(b'x', ('{}', 9))\n",
            to.vm_ip()
        );
        let _ = from.vm.exec_output(&["python3", "-c", &script]);
    };
    let ours = outer_headers(&b.ns.capture_pcap(
        &format!("{t}ub"),
        &format!("udp dst port {port} and src host 10.99.0.1"),
        6,
        || ping_some(&a, &b),
    )?)?;
    let theirs = outer_headers(&a.ns.capture_pcap(
        &format!("{t}ua"),
        &format!("udp dst port {port} and src host 10.99.0.2"),
        6,
        || ping_some(&b, &a),
    )?)?;
    assert!(ours.len() >= 6 && theirs.len() >= 6, "{ours:?} {theirs:?}");
    let fields = |l: &String| l.split(' ').map(str::to_string).collect::<Vec<_>>();
    for l in &ours {
        let f = fields(l);
        assert_eq!(&f[0..2], ["10.99.0.1", "10.99.0.2"], "{l}");
        assert_eq!(f[3], port.to_string(), "{l}");
        if kind == "vxlan" {
            assert_eq!(f[6], "99", "VNI: {l}");
        }
    }
    // TTL, DF and the UDP checksum policy (none over IPv4 unless csum=true)
    // as OVS sends them.
    let policy = |l: &String| {
        let f = fields(l);
        (f[4].clone(), f[5].clone(), f[7] == "0")
    };
    assert_eq!(policy(&ours[0]), policy(&theirs[0]), "{ours:?}\n{theirs:?}");
    // The outer source port follows the inner flow: different flows spread
    // over several ports in the ephemeral range.
    let sports: std::collections::BTreeSet<u16> = ours
        .iter()
        .map(|l| fields(l)[2].parse().unwrap_or(0))
        .collect();
    assert!(sports.len() > 1, "one source port for six flows: {ours:?}");
    assert!(
        sports.iter().all(|p| (32768..=60999).contains(p)),
        "{sports:?}"
    );
    Ok(())
}

/// Garbage sent to the VXLAN port of the local tunnel address is counted
/// and dropped; the daemon keeps forwarding.
#[test]
fn malformed_tunnel_packets_are_dropped_and_traffic_continues() -> Result<()> {
    require!("python3");
    let (a, b) = two_ferrovs("tunm", "vxlan", "5")?;
    ping_through(&a, &b)?;
    // From B's host stack (not through its switch's tunnel port): short
    // VXLAN headers and a wrong flag byte, to A's tunnel address.
    let script = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for payload in [b"\x08", b"\x00" * 8 + b"\x01" * 4, b"\x08\x00\x00\x00\x00\x00\x05\x00" + b"\x00" * 5]:
    for _ in range(5):
        s.sendto(payload, ("10.99.0.1", 4789))
"#;
    b.ns.exec(&["python3", "-c", script])?;
    std::thread::sleep(Duration::from_millis(500));
    let Sw::Ferrovs(s) = &a.sw else {
        unreachable!()
    };
    let shown = s.appctl(&["tnl/drops/show"])?;
    let first = shown.lines().next().unwrap_or_default();
    let dropped: u64 = first
        .split_whitespace()
        .filter_map(|w| w.split_once('=').and_then(|(_, n)| n.parse::<u64>().ok()))
        .sum();
    assert!(dropped >= 10, "{shown}");
    ping_through(&a, &b)?;
    Ok(())
}
