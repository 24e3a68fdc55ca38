//! Issue "foundation" acceptance: switching between namespaces over veth and
//! TAP ports, through NORMAL and through explicit flows, VLAN isolation,
//! flow changes taking effect mid-stream, and malformed frames.
//!
//! Each test runs its own vswitchd with its own run directory and uses
//! names derived from a unique tag, so the tests can run in parallel.

use std::time::Duration;

use anyhow::Result;
use ferrovs_tests::*;

/// Starts a switch with one bridge named after `tag`.
fn switch_with_bridge(tag: &str) -> Result<(Switch, String)> {
    let sw = Switch::start()?;
    let br = format!("{tag}b");
    sw.vsctl(&["add-br", &br])?;
    Ok((sw, br))
}

fn add_port(sw: &Switch, br: &str, port: &str, ofport: u32, extra: &[&str]) -> Result<()> {
    add_port_numbered(|a| sw.vsctl(a), br, port, ofport, extra)
}

#[test]
fn veth_hosts_ping_and_carry_tcp_through_normal() -> Result<()> {
    require!();
    let (sw, _br, hosts) = bridge_with_hosts(&unique_tag(), 61, 2)?;
    let (h1, h2) = (&hosts[0], &hosts[1]);

    assert!(
        h1.ns.ping_eventually(&h2.addr, Duration::from_secs(15)),
        "h1 cannot reach h2 through NORMAL; log:\n{}",
        sw.log_text()
    );
    assert!(h2.ns.ping(&h1.addr, 3), "h2 -> h1 ping lost packets");

    // TCP both ways, with the hosts' default offloads (no ethtool changes):
    // checksums the hosts left partial must be completed by the switch.
    let bps = iperf3_tcp(&h2.ns, &h1.ns, &h2.addr, 2)?;
    assert!(bps > 1e6, "h1 -> h2 TCP carried only {bps} bit/s");
    let bps = iperf3_tcp(&h1.ns, &h2.ns, &h1.addr, 2)?;
    assert!(bps > 1e6, "h2 -> h1 TCP carried only {bps} bit/s");
    Ok(())
}

#[test]
fn explicit_port_flows_carry_traffic_and_nothing_else_does() -> Result<()> {
    require!();
    let (sw, br, hosts) = bridge_with_hosts(&unique_tag(), 63, 2)?;
    let (h1, h2) = (&hosts[0], &hosts[1]);

    // With no flows at all the bridge drops everything.
    sw.ofctl(&["del-flows", &br])?;
    assert!(
        !h1.ns.ping(&h2.addr, 2),
        "traffic passed a bridge with no flows"
    );

    sw.ofctl(&["add-flow", &br, "in_port=1,actions=output:2"])?;
    sw.ofctl(&["add-flow", &br, "in_port=2,actions=output:1"])?;
    let flows = sw.ofctl(&["dump-flows", &br])?;
    assert!(flows.contains("in_port=1 actions=output:2"), "{flows}");
    assert!(flows.contains("in_port=2 actions=output:1"), "{flows}");

    assert!(h1.ns.ping_eventually(&h2.addr, Duration::from_secs(10)));
    assert!(h2.ns.ping(&h1.addr, 3));
    let bps = iperf3_tcp(&h2.ns, &h1.ns, &h2.addr, 2)?;
    assert!(bps > 1e6, "h1 -> h2 TCP carried only {bps} bit/s");
    let bps = iperf3_tcp(&h1.ns, &h2.ns, &h1.addr, 2)?;
    assert!(bps > 1e6, "h2 -> h1 TCP carried only {bps} bit/s");
    Ok(())
}

#[test]
fn veth_host_and_tap_host_talk_through_normal() -> Result<()> {
    require!();
    let tag = unique_tag();
    let (sw, br) = switch_with_bridge(&tag)?;
    let h1 = VethHost::new(&tag, 1, "10.64.0.1/24")?;
    add_port(&sw, &br, &h1.port, 1, &[])?;
    let tap = format!("{tag}tp");
    add_port(&sw, &br, &tap, 2, &["type=tap"])?;
    let h2 = TapHost::adopt(&tag, 2, &tap, "10.64.0.2/24")?;

    assert!(
        h1.ns.ping_eventually(&h2.addr, Duration::from_secs(15)),
        "veth host cannot reach TAP host; log:\n{}",
        sw.log_text()
    );
    assert!(h2.ns.ping(&h1.addr, 3));
    let bps = iperf3_tcp(&h2.ns, &h1.ns, &h2.addr, 2)?;
    assert!(bps > 1e6, "veth -> tap TCP carried only {bps} bit/s");
    let bps = iperf3_tcp(&h1.ns, &h2.ns, &h1.addr, 2)?;
    assert!(bps > 1e6, "tap -> veth TCP carried only {bps} bit/s");
    Ok(())
}

/// Sends one ARP request tagged with `vlan` from the namespace's eth0 (raw
/// socket: this machine has no 8021q module for VLAN sub-interfaces).
fn send_tagged_arp(ns: &Netns, vlan: u16, src_ip: &str, dst_ip: &str) -> Result<()> {
    let script = format!(
        r#"
import socket, struct
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
mac = bytes.fromhex(open("/sys/class/net/eth0/address").read().strip().replace(":", ""))
ip = lambda a: socket.inet_aton(a)
arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip("{src_ip}") + b"\0" * 6 + ip("{dst_ip}")
s.send(b"\xff" * 6 + mac + struct.pack("!HH", 0x8100, {vlan}) + b"\x08\x06" + arp + b"\0" * 18)
"#
    );
    ns.exec(&["python3", "-c", &script])?;
    Ok(())
}

#[test]
fn vlan_access_ports_are_isolated_and_a_trunk_carries_both_tagged() -> Result<()> {
    require!();
    let tag = unique_tag();
    let (sw, br) = switch_with_bridge(&tag)?;
    // VLAN 10: h1, h2. VLAN 20: h3, which also has an address in VLAN 10's
    // subnet so that it would answer if any frame leaked across.
    let h1 = VethHost::new(&tag, 1, "10.62.10.1/24")?;
    let h2 = VethHost::new(&tag, 2, "10.62.10.2/24")?;
    let h3 = VethHost::new(&tag, 3, "10.62.20.3/24")?;
    h3.ns
        .exec(&["ip", "addr", "add", "10.62.10.3/24", "dev", "eth0"])?;
    // h4 is a trunk; it watches what arrives, tags included.
    let h4 = VethHost::new(&tag, 4, "192.0.2.4/32")?;

    add_port(&sw, &br, &h1.port, 1, &[])?;
    add_port(&sw, &br, &h2.port, 2, &[])?;
    add_port(&sw, &br, &h3.port, 3, &[])?;
    add_port(&sw, &br, &h4.port, 4, &[])?;
    sw.vsctl(&["set", "Port", &h1.port, "tag=10"])?;
    sw.vsctl(&["set", "Port", &h2.port, "tag=10"])?;
    sw.vsctl(&["set", "Port", &h3.port, "tag=20"])?;
    sw.vsctl(&["set", "Port", &h4.port, "trunks=10,20"])?;

    let h1_mac = h1
        .ns
        .exec(&["cat", "/sys/class/net/eth0/address"])?
        .trim()
        .to_string();
    // h3 watches for anything from h1's MAC or for h1's address.
    let filter = format!("ether src {h1_mac} or host 10.62.10.1");
    // Both run until stopped below (120 s only bounds a hang): a fixed
    // capture window ended before the last frames on a busy machine.
    let spy = h3.ns.tcpdump(
        120,
        &["-Q", "in", "-n", "-i", "eth0", "-c", "1", "-l", &filter],
    )?;
    let trunk = h4
        .ns
        .tcpdump(120, &["-e", "-n", "-l", "-i", "eth0", "vlan"])?;

    assert!(
        h1.ns.ping_eventually("10.62.10.2", Duration::from_secs(15)),
        "access ports on VLAN 10 cannot talk; log:\n{}",
        sw.log_text()
    );
    assert!(
        !h3.ns.ping("10.62.10.1", 2),
        "VLAN 20 host reached a VLAN 10 host"
    );
    assert!(
        !h1.ns.ping("10.62.10.3", 2),
        "VLAN 10 host reached the VLAN 20 host"
    );
    // Into the trunk, tagged: a VLAN 10 ARP request from the trunk host gets
    // h1's reply, which leaves on the trunk tagged 10.
    // Sent again until the reply shows (a request may be lost while the
    // switch learns the trunk host's MAC).
    let replied = |t: &str| {
        t.lines()
            .any(|l| l.contains("vlan 10") && l.contains("Reply 10.62.10.1 is-at"))
    };
    wait_until(Duration::from_secs(30), || {
        send_tagged_arp(&h4.ns, 10, "10.62.10.4", "10.62.10.1").is_ok()
            && wait_until(Duration::from_secs(1), || replied(&trunk.text()))
    });

    let trunk = trunk.stop();
    let text = spy.stop();
    assert!(
        !text.contains(&h1_mac) && !text.contains("10.62.10.1"),
        "the VLAN 20 port saw VLAN 10 traffic: {text}"
    );
    assert!(
        trunk.contains("vlan 10"),
        "no VLAN 10 frames on the trunk:\n{trunk}"
    );
    assert!(
        trunk.contains("vlan 20"),
        "no VLAN 20 frames on the trunk:\n{trunk}"
    );
    assert!(
        trunk
            .lines()
            .any(|l| l.contains("vlan 10") && l.contains("Reply 10.62.10.1 is-at")),
        "h1 did not answer a tagged request arriving on the trunk:\n{trunk}"
    );
    assert!(
        !trunk
            .lines()
            .any(|l| l.contains("vlan 20") && l.contains(&h1_mac)),
        "VLAN 10 traffic left the trunk tagged 20:\n{trunk}"
    );
    Ok(())
}

#[test]
fn a_drop_flow_added_mid_stream_stops_it_and_removing_it_restores_it() -> Result<()> {
    require!();
    let (sw, br, hosts) = bridge_with_hosts(&unique_tag(), 65, 2)?;
    let (h1, h2) = (&hosts[0], &hosts[1]);
    assert!(h1.ns.ping_eventually(&h2.addr, Duration::from_secs(15)));
    // The stream's megaflow is now cached in the datapath.
    assert!(h1.ns.ping(&h2.addr, 3));

    sw.ofctl(&["add-flow", &br, "priority=100,ip,actions=drop"])?;
    // Once add-flow has returned, no packet may follow the old decision.
    assert!(
        !h1.ns.ping(&h2.addr, 3),
        "packets passed after a drop flow was acknowledged"
    );
    let dp = sw.appctl(&["dpctl/dump-flows"])?;
    assert!(
        dp.contains("actions:drop"),
        "no drop megaflow installed:\n{dp}"
    );

    sw.ofctl(&["del-flows", &br, "--strict", "priority=100,ip"])?;
    assert!(
        h1.ns.ping(&h2.addr, 3),
        "removing the drop flow did not restore traffic"
    );
    Ok(())
}

#[test]
fn truncated_and_inconsistent_frames_are_counted_as_errors_and_dropped() -> Result<()> {
    require!();
    let (sw, _br, hosts) = bridge_with_hosts(&unique_tag(), 66, 2)?;
    let (h1, h2) = (&hosts[0], &hosts[1]);
    assert!(h1.ns.ping_eventually(&h2.addr, Duration::from_secs(15)));

    // Three bad frames from h1: an IPv4 header cut short, an IPv4 header
    // whose length field exceeds the frame, and a TCP header cut short.
    let script = r#"
import socket
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
eth = bytes.fromhex("ffffffffffff" "020000000001" "0800")
s.send(eth + bytes.fromhex("4500003c0000"))
s.send(eth + bytes.fromhex("4500ffff00004000400600000a4200010a420002") + b"\0" * 20)
s.send(eth + bytes.fromhex("450000280000400040060000 0a420001 0a420002".replace(" ", "")) + bytes.fromhex("0050"))
"#;
    h1.ns.exec(&["python3", "-c", script])?;

    let ok = wait_until(Duration::from_secs(5), || {
        sw.appctl(&["--format", "json", "dpctl/show"])
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| {
                v["ports"].as_array().and_then(|ports| {
                    ports
                        .iter()
                        .find(|p| p["name"] == h1.port.as_str())
                        .and_then(|p| p["rx_errors"].as_u64())
                })
            })
            .is_some_and(|n| n >= 3)
    });
    assert!(
        ok,
        "rx_errors did not count the bad frames: {}",
        sw.appctl(&["dpctl/show"])?
    );
    // And the switch still forwards.
    assert!(
        h1.ns.ping(&h2.addr, 2),
        "switch stopped forwarding after bad frames"
    );
    Ok(())
}
