//! Meters and policing (issue 13 part 6, issue 17 part 3): stock
//! `ovs-ofctl -O OpenFlow13` managing meters on ferrovs with the same output
//! as ofctl (and as stock Open vSwitch), a 1,000 pktps meter holding a
//! 10,000 pktps stream between two namespaces, and ingress policing and the
//! egress-policer QoS holding iperf3 UDP offered at ten times the rate.
//!
//! Names carry the `mtr` prefix (namespaces, veths, bridges). Run with the
//! machine-wide lock: `flock /tmp/ferrovs-e2e.lock cargo test -p tests
//! --test meters`.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferrovs_tests::*;

fn tag() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "mtr{}{}",
        std::process::id() % 100,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn ovs_ofctl(target: &str, args: &[&str]) -> Result<String> {
    run(Command::new("ovs-ofctl")
        .args(["-O", "OpenFlow13", args[0], target])
        .args(&args[1..]))
}

/// Drops the `duration:...s` of meter-stats lines (time moves on).
fn without_durations(s: &str) -> String {
    s.split_whitespace()
        .filter(|w| !w.starts_with("duration:"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn stock_ovs_ofctl_add_meter_and_dump_meters_match_ofctl_and_ovs() -> Result<()> {
    require!("ovs-ofctl");
    let t = tag();
    let (sw, br, _hosts) = bridge_with_hosts(&t, 81, 2)?;
    let target = format!("unix:{}", sw.rundir().join(format!("{br}.mgmt")).display());
    ovs_ofctl(
        &target,
        &[
            "add-meter",
            "meter=1,pktps,burst,stats,bands=type=drop,rate=1000,burst_size=100",
        ],
    )?;
    sw.ofctl(&[
        "-O",
        "OpenFlow13",
        "add-meter",
        &br,
        "meter=2,kbps,bands=type=drop,rate=5000",
    ])?;
    ovs_ofctl(
        &target,
        &[
            "add-meter",
            "meter=3 kbps stats bands=type=drop rate=200 type=drop rate=400",
        ],
    )?;
    // What stock ovs-vswitchd 3.1 answers to the same three add-meters.
    let expected = "OFPST_METER_CONFIG reply (OF1.3) (xid=0x2):\n\
        meter=1 pktps burst stats bands=\ntype=drop rate=1000 burst_size=100\n\n\
        meter=2 kbps bands=\ntype=drop rate=5000\n\n\
        meter=3 kbps stats bands=\ntype=drop rate=200\ntype=drop rate=400\n";
    let stock = ovs_ofctl(&target, &["dump-meters"])?;
    let ours = sw.ofctl(&["-O", "OpenFlow13", "dump-meters", &br])?;
    assert_eq!(stock, expected);
    assert_eq!(ours, stock);

    let stock = ovs_ofctl(&target, &["meter-features"])?;
    assert_eq!(
        stock,
        sw.ofctl(&["-O", "OpenFlow13", "meter-features", &br])?
    );
    assert!(
        stock.contains("band_types: drop\ncapabilities: kbps pktps burst stats"),
        "{stock}"
    );

    // A flow naming a missing meter is refused as OVS refuses it.
    let out = run_output(
        Command::new("ovs-ofctl")
            .args(["-O", "OpenFlow13", "add-flow", &target])
            .arg("in_port=1,actions=meter:9,output:2"),
    )?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("OFPMMFC_INVALID_METER"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ovs_ofctl(&target, &["add-flow", "in_port=1,actions=meter:1,output:2"])?;
    let flows = ovs_ofctl(&target, &["dump-flows"])?;
    assert!(
        flows.contains("in_port=1 actions=meter:1,output:2"),
        "{flows}"
    );

    let stock = ovs_ofctl(&target, &["meter-stats", "meter=1"])?;
    let ours = sw.ofctl(&["-O", "OpenFlow13", "meter-stats", &br, "meter=1"])?;
    assert_eq!(without_durations(&stock), without_durations(&ours));
    assert!(
        stock.contains("meter:1 flow_count:1 packet_in_count:0 byte_in_count:0"),
        "{stock}"
    );

    // Adding an existing meter, modifying a missing one: OVS's errors.
    let out = run_output(
        Command::new("ovs-ofctl")
            .args(["-O", "OpenFlow13", "add-meter", &target])
            .arg("meter=1,pktps,bands=type=drop,rate=1"),
    )?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("OFPMMFC_METER_EXISTS"));
    let out = run_output(
        Command::new("ovs-ofctl")
            .args(["-O", "OpenFlow13", "mod-meter", &target])
            .arg("meter=5,pktps,bands=type=drop,rate=1"),
    )?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("OFPMMFC_UNKNOWN_METER"));

    // Deleting a meter deletes the flows that use it.
    ovs_ofctl(&target, &["del-meters", "meter=1"])?;
    let flows = ovs_ofctl(&target, &["dump-flows"])?;
    assert!(!flows.contains("meter:1"), "{flows}");
    let left = sw.ofctl(&["-O", "OpenFlow13", "dump-meters", &br])?;
    assert!(
        !left.contains("meter=1 ") && left.contains("meter=2 "),
        "{left}"
    );
    sw.ofctl(&["-O", "OpenFlow13", "del-meters", &br])?;
    assert_eq!(
        ovs_ofctl(&target, &["dump-meters"])?,
        "OFPST_METER_CONFIG reply (OF1.3) (xid=0x2):\n"
    );
    Ok(())
}

/// Received packets and bytes on `eth0` of `ns`.
fn rx_counters(ns: &Netns) -> Result<(u64, u64)> {
    let out = ns.exec(&["ip", "-j", "-s", "link", "show", "dev", "eth0"])?;
    let v: serde_json::Value = serde_json::from_str(&out).context("ip -j output")?;
    let rx = &v[0]["stats64"]["rx"];
    Ok((
        rx["packets"].as_u64().context("rx packets")?,
        rx["bytes"].as_u64().context("rx bytes")?,
    ))
}

/// Quiets a host: no IPv6 (router solicitations, DAD) and no offloads.
fn quiet(h: &VethHost) -> Result<()> {
    h.ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
    let _ = h.ns.exec(&["ethtool", "-K", "eth0", "tx", "off"]);
    Ok(())
}

/// Sends `pps` UDP frames per second for `secs` seconds out of eth0 with
/// an AF_PACKET socket, paced in bursts of ten; prints how many it sent.
const SENDER: &str = r#"
import socket, struct, sys, time
pps, secs = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
payload = b"m" * 18
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 0, 0, 64, 17, 0,
                 bytes([10, 82, 0, 1]), bytes([10, 82, 0, 2]))
udp = struct.pack("!HHHH", 4000, 4001, 8 + len(payload), 0)
frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip + udp + payload
sent, start, burst = 0, time.monotonic(), 10
while True:
    now = time.monotonic() - start
    if now >= secs:
        break
    due = int(now * pps)
    while sent < due:
        for _ in range(burst):
            s.send(frame)
        sent += burst
    time.sleep(0.0005)
print(sent)
"#;

#[test]
fn meter_of_1000_pktps_holds_10000_pktps_to_1000() -> Result<()> {
    require!("python3");
    let t = tag();
    let (sw, br, hosts) = bridge_with_hosts(&t, 82, 2)?;
    let (h1, h2) = (&hosts[0], &hosts[1]);
    quiet(h1)?;
    quiet(h2)?;
    let of = |args: &[&str]| -> Result<String> {
        let mut a = vec!["-O", "OpenFlow13", args[0], br.as_str()];
        a.extend_from_slice(&args[1..]);
        sw.ofctl(&a)
    };
    of(&["del-flows"])?;
    of(&[
        "add-meter",
        "meter=1,pktps,burst,stats,bands=type=drop,rate=1000,burst_size=100",
    ])?;
    of(&["add-flow", "in_port=1,actions=meter:1,output:2"])?;

    let secs = 5.0;
    let (before, _) = rx_counters(&h2.ns)?;
    let out = h1.ns.exec(&["python3", "-c", SENDER, "10000", "5"])?;
    std::thread::sleep(Duration::from_millis(500));
    let (after, _) = rx_counters(&h2.ns)?;
    let sent: u64 = out.trim().parse().context("sender output")?;
    let got = after - before;
    let offered_pps = sent as f64 / secs;
    let pps = got as f64 / secs;
    eprintln!("offered {offered_pps:.0} pps, received {pps:.0} pps");
    if offered_pps < 9000.0 {
        bail!("the sender offered only {offered_pps:.0} pps, not 10,000: the test proves nothing");
    }
    assert!(
        (900.0..=1100.0).contains(&pps),
        "meter of 1000 pktps let {pps:.0} pps through (offered {offered_pps:.0}); log:\n{}",
        sw.log_text()
    );
    // The meter's counters saw the traffic: offered in, the rest dropped by
    // its band.
    let stats = of(&["meter-stats"])?;
    let num = |key: &str| -> u64 {
        stats
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (inn, dropped) = (num("packet_in_count:"), num("packet_count:"));
    assert!(
        inn >= sent * 95 / 100,
        "packet_in_count {inn} of {sent} sent: {stats}"
    );
    assert!(
        dropped + got >= inn * 98 / 100 && dropped <= inn,
        "band drops {dropped} + received {got} should be the {inn} offered: {stats}"
    );
    Ok(())
}

/// Runs iperf3 UDP from h1 to h2 at `offer` bits/s for 5 s; returns the
/// bits per second h2's eth0 received meanwhile (whole frames).
fn iperf3_udp_received(h1: &VethHost, h2: &VethHost, offer: &str) -> Result<f64> {
    let port = 5300 + (std::process::id() % 500) as u16;
    let _srv = h2.ns.spawn_server(
        &["iperf3", "-s", "-1", "-p", &port.to_string()],
        Proto::Tcp,
        port,
    )?;
    let (_, before) = rx_counters(&h2.ns)?;
    let out = h1.ns.exec_output(&[
        "timeout",
        "30",
        "iperf3",
        "-c",
        &h2.addr,
        "-p",
        &port.to_string(),
        "-u",
        "-b",
        offer,
        "-l",
        "1400",
        "-t",
        "5",
        "-J",
    ])?;
    let (_, after) = rx_counters(&h2.ns)?;
    if !out.status.success() {
        bail!(
            "iperf3 client failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("iperf3 JSON")?;
    let sent_bps = v["end"]["sum"]["bits_per_second"].as_f64().unwrap_or(0.0);
    eprintln!("iperf3 offered {:.1} Mbit/s", sent_bps / 1e6);
    Ok((after - before) as f64 * 8.0 / 5.0)
}

fn policing_hosts(net: u8) -> Result<(Switch, Vec<VethHost>)> {
    let t = tag();
    let (sw, _br, hosts) = bridge_with_hosts(&t, net, 2)?;
    for h in &hosts {
        quiet(h)?;
    }
    if !hosts[0]
        .ns
        .ping_eventually(&hosts[1].addr, Duration::from_secs(15))
    {
        bail!("no connectivity before policing; log:\n{}", sw.log_text());
    }
    Ok((sw, hosts))
}

#[test]
fn ingress_policing_holds_iperf3_udp_at_ten_times_the_rate_to_the_rate() -> Result<()> {
    require!("iperf3", "ovs-vsctl");
    let (sw, hosts) = policing_hosts(83)?;
    let (h1, h2) = (&hosts[0], &hosts[1]);
    // 4 Mbit/s, a 400 kbit bucket, as ovs-vsctl sets it on stock OVS.
    run(Command::new("ovs-vsctl")
        .arg(format!("--db={}", sw.db_remote()))
        .args(["set", "interface", &h1.port])
        .args(["ingress_policing_rate=4000", "ingress_policing_burst=400"]))?;
    std::thread::sleep(Duration::from_millis(500));
    let bps = iperf3_udp_received(h1, h2, "40M")?;
    eprintln!(
        "ingress policing at 4 Mbit/s: received {:.2} Mbit/s",
        bps / 1e6
    );
    assert!(
        (3.6e6..=4.4e6).contains(&bps),
        "received {:.2} Mbit/s through a 4 Mbit/s ingress policer; log:\n{}",
        bps / 1e6,
        sw.log_text()
    );
    // Policing off again: the same offer goes through.
    run(Command::new("ovs-vsctl")
        .arg(format!("--db={}", sw.db_remote()))
        .args(["set", "interface", &h1.port, "ingress_policing_rate=0"]))?;
    std::thread::sleep(Duration::from_millis(500));
    let bps = iperf3_udp_received(h1, h2, "20M")?;
    assert!(
        bps > 15e6,
        "policing removed, yet only {:.2} Mbit/s",
        bps / 1e6
    );
    Ok(())
}

#[test]
fn egress_policer_qos_holds_iperf3_udp_at_ten_times_the_rate_to_the_rate() -> Result<()> {
    require!("iperf3", "ovs-vsctl");
    let (sw, hosts) = policing_hosts(84)?;
    let (h1, h2) = (&hosts[0], &hosts[1]);
    // cir 500,000 bytes/s = 4 Mbit/s, cbs 50,000 bytes, on h2's port.
    run(Command::new("ovs-vsctl")
        .arg(format!("--db={}", sw.db_remote()))
        .args([
            "set", "port", &h2.port, "qos=@q", "--", "--id=@q", "create", "qos",
        ])
        .args([
            "type=egress-policer",
            "other_config:cir=500000",
            "other_config:cbs=50000",
        ]))?;
    std::thread::sleep(Duration::from_millis(500));
    let bps = iperf3_udp_received(h1, h2, "40M")?;
    eprintln!(
        "egress policer at 4 Mbit/s: received {:.2} Mbit/s",
        bps / 1e6
    );
    assert!(
        (3.6e6..=4.4e6).contains(&bps),
        "received {:.2} Mbit/s through a 4 Mbit/s egress policer; log:\n{}",
        bps / 1e6,
        sw.log_text()
    );
    Ok(())
}
