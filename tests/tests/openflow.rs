//! Issue "OpenFlow" acceptance: stock ovs-ofctl in both protocol versions,
//! an os-ken controller, fail modes when the controller dies, tracing that
//! agrees with the datapath, and malformed messages.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Result, bail};
use ferrovs_tests::*;

/// os-ken is a library (PyPI os-ken==4.2.2); the test app starts itself.
macro_rules! require_osken {
    () => {
        require!("python3");
        if !Command::new("python3")
            .args(["-c", "import os_ken"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
        {
            panic!("os-ken is not installed: run scripts/install-test-deps.sh");
        }
    };
}

fn two_hosts(tag: &str, net: u8) -> Result<(Switch, String, VethHost, VethHost)> {
    let (sw, br, mut hosts) = bridge_with_hosts(tag, net, 2)?;
    let h2 = hosts.pop().expect("two hosts");
    let h1 = hosts.pop().expect("two hosts");
    Ok((sw, br, h1, h2))
}

fn ovs_ofctl(version: &str, target: &str, args: &[&str]) -> Result<String> {
    run(Command::new("ovs-ofctl")
        .arg("-O")
        .arg(version)
        .arg(args[0])
        .arg(target)
        .args(&args[1..]))
}

#[test]
fn stock_ovs_ofctl_manages_flows_in_openflow13_and_openflow10() -> Result<()> {
    require!("ovs-ofctl");
    let tag = unique_tag();
    let (sw, br, h1, h2) = two_hosts(&tag, 70)?;
    let target = format!("unix:{}", sw.rundir().join(format!("{br}.mgmt")).display());
    for version in ["OpenFlow13", "OpenFlow10"] {
        ovs_ofctl(version, &target, &["del-flows"])?;
        assert!(!h1.ns.ping(&h2.addr, 1), "{version}: traffic with no flows");
        ovs_ofctl(
            version,
            &target,
            &["add-flow", "priority=10,in_port=1,actions=output:2"],
        )?;
        ovs_ofctl(
            version,
            &target,
            &["add-flow", "priority=10,in_port=2,actions=output:1"],
        )?;
        ovs_ofctl(
            version,
            &target,
            &[
                "add-flow",
                "priority=20,ip,nw_dst=10.70.0.0/24,nw_src=10.70.0.1,actions=output:2",
            ],
        )?;
        let dump = ovs_ofctl(version, &target, &["dump-flows"])?;
        assert!(
            dump.contains("priority=10,in_port=1 actions=output:2"),
            "{version}: {dump}"
        );
        assert!(
            dump.contains("priority=20,ip,nw_src=10.70.0.1,nw_dst=10.70.0.0/24 actions=output:2"),
            "{version}: {dump}"
        );
        assert!(
            h1.ns.ping_eventually(&h2.addr, Duration::from_secs(10)),
            "{version}: flows don't carry traffic"
        );

        let ports = ovs_ofctl(version, &target, &["dump-ports"])?;
        assert!(
            ports.contains("port  1: rx pkts=") || ports.contains("port 1: rx pkts="),
            "{version}: {ports}"
        );
        let desc = ovs_ofctl(version, &target, &["dump-ports-desc"])?;
        assert!(
            desc.contains(&format!("1({})", h1.port)),
            "{version}: {desc}"
        );
        let show = ovs_ofctl(version, &target, &["show"])?;
        assert!(
            show.contains("dpid:") && show.contains(&format!("2({})", h2.port)),
            "{version}: {show}"
        );

        ovs_ofctl(version, &target, &["del-flows", "in_port=2"])?;
        let dump = ovs_ofctl(version, &target, &["dump-flows"])?;
        assert!(!dump.contains("in_port=2"), "{version}: {dump}");
        assert!(
            !h1.ns.ping(&h2.addr, 1),
            "{version}: replies pass after their flow was deleted"
        );
    }
    Ok(())
}

struct Controller {
    _proc: ChildGuard,
    port: u16,
}

fn start_osken(port: u16) -> Result<Controller> {
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/osken_learning_switch.py");
    let child = Command::new("python3")
        .env("OSKEN_HUB_TYPE", "eventlet")
        .arg(app)
        .arg("--ofp-tcp-listen-port")
        .arg(port.to_string())
        .arg("--ofp-listen-host")
        .arg("127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let c = Controller {
        _proc: ChildGuard(Some(child)),
        port,
    };
    if !wait_until(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }) {
        bail!("os-ken did not listen on {port}");
    }
    Ok(c)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(16653)
}

#[test]
fn os_ken_learning_switch_controls_a_secure_bridge() -> Result<()> {
    require_osken!();
    let tag = unique_tag();
    let (sw, br, h1, h2) = two_hosts(&tag, 71)?;
    let ctl = start_osken(free_port())?;
    sw.vsctl(&["set-fail-mode", &br, "secure"])?;
    sw.vsctl(&["set", "Bridge", &br, "protocols=OpenFlow13"])?;
    sw.vsctl(&[
        "set-controller",
        &br,
        &format!("tcp:127.0.0.1:{}", ctl.port),
    ])?;
    assert!(
        wait_until(Duration::from_secs(20), || sw
            .vsctl(&["get", "Controller", &br, "is_connected"])
            .map(|s| s.trim() == "true")
            .unwrap_or(false)),
        "bridge never connected to os-ken; log:\n{}",
        sw.log_text()
    );
    assert!(
        h1.ns.ping_eventually(&h2.addr, Duration::from_secs(30)),
        "no ping through the os-ken learning switch"
    );
    assert!(h2.ns.ping(&h1.addr, 3));
    let flows = sw.ofctl(&["dump-flows", &br])?;
    assert!(
        flows.contains("actions=CONTROLLER:65535"),
        "table-miss flow from os-ken missing:\n{flows}"
    );
    assert!(
        flows.contains("priority=1,in_port=") && flows.contains("dl_dst="),
        "learned flows missing:\n{flows}"
    );
    Ok(())
}

#[test]
fn without_its_controller_standalone_falls_back_to_normal_and_secure_keeps_its_flows() -> Result<()>
{
    require_osken!();
    let tag = unique_tag();
    let (sw, br, h1, h2) = two_hosts(&tag, 72)?;
    let port = free_port();
    let target = format!("tcp:127.0.0.1:{port}");
    // Secure: the controller's flows stay when it dies; nothing else appears.
    sw.vsctl(&["set-fail-mode", &br, "secure"])?;
    sw.vsctl(&["set-controller", &br, &target])?;
    let connected = || {
        sw.vsctl(&["get", "Controller", &br, "is_connected"])
            .map(|s| s.trim() == "true")
            .unwrap_or(false)
    };
    let mut ctl = start_osken(port)?;
    assert!(
        wait_until(Duration::from_secs(20), connected),
        "log:\n{}",
        sw.log_text()
    );
    assert!(h1.ns.ping_eventually(&h2.addr, Duration::from_secs(30)));
    let before = sw.ofctl(&["dump-flows", &br, "--no-stats"])?;
    ctl._proc.kill();
    assert!(
        wait_until(Duration::from_secs(20), || !connected()),
        "disconnect not noticed"
    );
    let after = sw.ofctl(&["dump-flows", &br, "--no-stats"])?;
    assert_eq!(
        before, after,
        "secure bridge changed its flows when the controller died"
    );
    assert!(
        h1.ns.ping(&h2.addr, 2),
        "secure bridge stopped forwarding learned flows"
    );

    // Standalone: with the controller gone the bridge behaves as NORMAL.
    sw.ofctl(&["del-flows", &br])?;
    sw.vsctl(&["set-fail-mode", &br, "standalone"])?;
    assert!(
        h1.ns.ping_eventually(&h2.addr, Duration::from_secs(20)),
        "standalone bridge did not fall back to NORMAL"
    );

    // The controller comes back: the bridge reconnects by itself.
    ctl = start_osken(port)?;
    assert!(
        wait_until(Duration::from_secs(30), connected),
        "no reconnect; log:\n{}",
        sw.log_text()
    );
    drop(ctl);
    Ok(())
}

#[test]
fn ofproto_trace_agrees_with_what_the_datapath_does() -> Result<()> {
    require!();
    let tag = unique_tag();
    let (sw, br, h1, h2) = two_hosts(&tag, 73)?;
    let h1_mac = h1
        .ns
        .exec(&["cat", "/sys/class/net/eth0/address"])?
        .trim()
        .to_string();
    let h2_mac = h2
        .ns
        .exec(&["cat", "/sys/class/net/eth0/address"])?
        .trim()
        .to_string();
    sw.ofctl(&["del-flows", &br])?;
    // Table 0 classifies, table 1 forwards ICMP, table 2 forwards the rest.
    sw.ofctl(&[
        "add-flow",
        &br,
        "table=0,priority=10,icmp,actions=load:0x7->NXM_NX_REG0[],goto_table:1",
    ])?;
    sw.ofctl(&["add-flow", &br, "table=0,priority=5,actions=goto_table:2"])?;
    sw.ofctl(&[
        "add-flow",
        &br,
        "table=1,priority=10,reg0=7,in_port=1,actions=output:2",
    ])?;
    sw.ofctl(&[
        "add-flow",
        &br,
        "table=1,priority=10,reg0=7,in_port=2,actions=output:1",
    ])?;
    sw.ofctl(&["add-flow", &br, "table=2,priority=1,actions=NORMAL"])?;

    let flow = format!(
        "in_port=1,dl_src={h1_mac},dl_dst={h2_mac},icmp,nw_src=10.73.0.1,nw_dst=10.73.0.2,icmp_type=8,icmp_code=0"
    );
    let trace = sw.appctl(&["ofproto/trace", &br, &flow])?;
    assert!(
        trace.contains(" 0. icmp, priority 10"),
        "trace does not show table 0's rule:\n{trace}"
    );
    assert!(
        trace.contains(" 1. reg0=0x7,in_port=1, priority 10"),
        "trace does not show table 1's rule:\n{trace}"
    );
    assert!(
        !trace.contains("NORMAL"),
        "trace went through table 2:\n{trace}"
    );
    assert!(trace.contains("Megaflow:"), "{trace}");

    // Now send that packet for real (a ping) and compare with the datapath.
    // (MAC learning for the ARP exchange through table 2 may flush the
    // caches once, so look again after another ping if needed.)
    assert!(h1.ns.ping_eventually(&h2.addr, Duration::from_secs(15)));
    let traced_actions = trace
        .lines()
        .find_map(|l| l.strip_prefix("Datapath actions: "))
        .unwrap_or("?")
        .trim()
        .to_string();
    let mut dp = String::new();
    let found = wait_until(Duration::from_secs(10), || {
        let _ = h1.ns.ping(&h2.addr, 1);
        dp = sw.appctl(&["dpctl/dump-flows"]).unwrap_or_default();
        dp.lines().any(|l| {
            l.contains("ipv4(")
                && l.contains("proto=1")
                && l.trim_end().ends_with(&format!("actions:{traced_actions}"))
        })
    });
    assert!(
        found,
        "no ICMP datapath flow with the traced actions {traced_actions}:\n{dp}"
    );
    Ok(())
}

#[test]
fn malformed_openflow_messages_get_errors_and_other_connections_carry_on() -> Result<()> {
    require!();
    let tag = unique_tag();
    let sw = Switch::start()?;
    let br = format!("{tag}b");
    sw.vsctl(&["add-br", &br])?;
    let mgmt = sw.rundir().join(format!("{br}.mgmt"));
    assert!(wait_until(Duration::from_secs(10), || mgmt.exists()));

    let hello13 = [0x04u8, 0, 0, 8, 0, 0, 0, 1];
    let read_msg = |s: &mut UnixStream| -> Option<Vec<u8>> {
        let mut h = [0u8; 8];
        s.read_exact(&mut h).ok()?;
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        let mut body = vec![0u8; len.saturating_sub(8)];
        s.read_exact(&mut body).ok()?;
        let mut m = h.to_vec();
        m.extend(body);
        Some(m)
    };
    let mut bystander = UnixStream::connect(&mgmt)?;
    bystander.set_read_timeout(Some(Duration::from_secs(5)))?;
    bystander.write_all(&hello13)?;
    assert_eq!(read_msg(&mut bystander).map(|m| m[1]), Some(0), "no HELLO");

    // Unknown message type → OFPT_ERROR (type 1) with OFPET_BAD_REQUEST (1) / OFPBRC_BAD_TYPE (1).
    let mut s = UnixStream::connect(&mgmt)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(&hello13)?;
    read_msg(&mut s);
    s.write_all(&[0x04, 0xee, 0, 8, 0, 0, 0, 2])?;
    let err = read_msg(&mut s).expect("an error reply");
    assert_eq!(err[1], 1, "expected OFPT_ERROR, got type {}", err[1]);
    assert_eq!(&err[8..12], &[0, 1, 0, 1], "expected BAD_REQUEST/BAD_TYPE");

    // A FLOW_MOD with a truncated OXM match → an error, not a crash.
    let mut fm = vec![0x04, 14, 0, 0, 0, 0, 0, 3];
    fm.extend_from_slice(&[0u8; 40]); // cookie..pad
    fm.extend_from_slice(&[0, 1, 0, 12, 0x80, 0, 0, 8, 0, 0]); // OXM header claims 8 bytes, 2 given
    let len = fm.len() as u16;
    fm[2..4].copy_from_slice(&len.to_be_bytes());
    s.write_all(&fm)?;
    let reply = read_msg(&mut s);
    assert!(
        reply.as_ref().is_none_or(|m| m[1] == 1),
        "expected an error or a close, got {reply:?}"
    );

    // A header whose length is shorter than a header → the connection closes.
    let mut bad = UnixStream::connect(&mgmt)?;
    bad.set_read_timeout(Some(Duration::from_secs(5)))?;
    bad.write_all(&hello13)?;
    read_msg(&mut bad);
    bad.write_all(&[0x04, 2, 0, 4, 0, 0, 0, 9])?;
    let mut rest = Vec::new();
    let _ = bad.read_to_end(&mut rest);

    // The bystander and the daemon are fine.
    bystander.write_all(&[0x04, 2, 0, 8, 0, 0, 0, 42])?; // ECHO_REQUEST
    let echo = read_msg(&mut bystander).expect("echo reply");
    assert_eq!((echo[1], &echo[4..8]), (3, &[0u8, 0, 0, 42][..]));
    sw.ofctl(&["dump-flows", &br])?;
    Ok(())
}
