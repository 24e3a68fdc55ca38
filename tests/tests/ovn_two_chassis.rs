//! Issue 16, two hypervisors: Debian's stock OVN 23.03 (NB and SB
//! `ovsdb-server`s and `ovn-northd` in the root namespace, on unix sockets)
//! drives two ferrovs switches. Each chassis is a network namespace with its
//! own vswitchd (own run directory and DB) and its own stock
//! `ovn-controller` running inside that namespace; an underlay veth joins the
//! two, and each side's underlay address sits on its underlay bridge's
//! internal port. OVN encapsulates in Geneve, its default (the logical
//! datapath in the VNI, the logical input and output ports in OVN's option
//! 0x0102/0x80, `tun_metadata0` through the TLV map ovn-controller
//! installs), on the `ovn-<chassis>-0` tunnel ports ovn-controller creates
//! itself; the routed test runs over VXLAN (datapath and output port in the
//! VNI), so both encapsulations stay covered.
//!
//! Checks: both chassis and their encaps register in the SB, each logical
//! port is bound on its own chassis and reports `ovn-installed`, the VMs
//! ping both ways and carry TCP through the tunnel, traffic resumes after a
//! `kill -9` and restart of one vswitchd, `lsp-del` cuts the traffic,
//! neither ovn-controller receives an OpenFlow error and both vswitchds stay
//! up. A second test routes across the chassis through a logical router,
//! with a drop ACL and an `allow-related` ACL (conntrack on the far chassis);
//! a third puts a load balancer VIP in front of one backend per chassis.
//!
//! Run under the e2e lock: `flock /tmp/ferrovs-e2e.lock cargo test -p
//! ferrovs-tests --test ovn_two_chassis`.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferrovs_tests::ovn::{Chassis, Encap, OvnCentral, SwitchKind, tcp_connects, two_chassis};
use ferrovs_tests::*;

/// Two ferrovs chassis (namespaces `<t>a`, `<t>b`), VM `i` with
/// `lsp_mac(i)` and `vm_addrs[i]`, encapsulating in `encap`.
fn ferrovs_chassis(
    t: &str,
    ovn: &OvnCentral,
    vm_addrs: [&str; 2],
    encap: Encap,
) -> Result<(Chassis, Chassis)> {
    two_chassis(
        t,
        ovn,
        [SwitchKind::Ferrovs; 2],
        encap,
        [&lsp_mac(1), &lsp_mac(2)],
        vm_addrs,
    )
}

fn lsp_mac(n: u8) -> String {
    format!("00:00:00:00:96:0{n}")
}

fn vm_ip(n: u8) -> String {
    format!("10.96.0.{n}")
}

#[test]
fn stock_ovn_spans_two_ferrovs_chassis_over_geneve() -> Result<()> {
    require!(
        "ovn-controller",
        "ovn-northd",
        "ovn-nbctl",
        "ovn-sbctl",
        "ovsdb-server",
        "ovsdb-tool",
        "iperf3",
        "ethtool",
        "tcpdump"
    );
    let t = "ovn2";
    let central = tempfile::Builder::new()
        .prefix("ferrovs-ovn2-central-")
        .tempdir()?;
    let ovn = OvnCentral::start(central.path())?;
    // One logical switch, one port per chassis.
    ovn.nbctl(&["ls-add", "ls"])?;
    for n in 1..=2u8 {
        let lp = format!("lp{n}");
        ovn.nbctl(&[
            "lsp-add",
            "ls",
            &lp,
            "--",
            "lsp-set-addresses",
            &lp,
            &format!("{} {}", lsp_mac(n), vm_ip(n)),
        ])?;
    }
    let (mut a, mut b) = ferrovs_chassis(
        t,
        &ovn,
        [&format!("{}/24", vm_ip(1)), &format!("{}/24", vm_ip(2))],
        Encap::Geneve,
    )?;
    ovn.bind_and_check(&[("lp1", &a), ("lp2", &b)])?;

    // Traffic crosses the tunnel both ways: ARP (answered by OVN's
    // responder), ICMP, TCP.
    if !a.vm.ping_eventually(&vm_ip(2), Duration::from_secs(30)) {
        bail!("a cannot reach b\n{}\n{}", a.diag(), b.diag());
    }
    assert!(a.vm.ping(&vm_ip(2), 5), "a -> b\n{}", a.diag());
    assert!(b.vm.ping(&vm_ip(1), 5), "b -> a\n{}", b.diag());
    let bps = iperf3_tcp(&b.vm, &a.vm, &vm_ip(2), 2)?;
    assert!(bps > 0.0, "no TCP data a -> b");
    let bps = iperf3_tcp(&a.vm, &b.vm, &vm_ip(1), 2)?;
    assert!(bps > 0.0, "no TCP data b -> a");
    check_encapsulation(&a, &format!("{t}ua"))?;
    // The datapath encapsulates and decapsulates natively.
    let flows = a.sw.appctl(&["dpctl/dump-flows"])?;
    assert!(flows.contains("tnl_push("), "{flows}");
    assert!(flows.contains("tnl_pop("), "{flows}");

    // kill -9 of b's switch and a restart: the DB brings back the bridges
    // and ports, the underlay address is still on its persistent internal
    // port, ovn-controller reconnects and reinstalls its flows, and
    // traffic flows again within 10 s (the bound) with no other
    // step.
    let killed = std::time::Instant::now();
    b.kill_and_restart_switch()?;
    let left = Duration::from_secs(10).saturating_sub(killed.elapsed());
    if !a.vm.ping_eventually(&vm_ip(2), left) {
        bail!(
            "no traffic within 10 s of b's restart\n{}\n{}",
            a.diag(),
            b.diag()
        );
    }
    eprintln!("traffic back {:?} after the kill", killed.elapsed());
    assert!(
        a.vm.ping(&vm_ip(2), 5),
        "a -> b after restart\n{}",
        b.diag()
    );
    assert!(
        b.vm.ping(&vm_ip(1), 5),
        "b -> a after restart\n{}",
        b.diag()
    );

    // Deleting lp2 removes its flows: b's VM is cut off.
    ovn.nbctl(&["lsp-del", "lp2"])?;
    // ovn-controller removes the flows asynchronously.
    assert!(
        a.vm.ping_stops(&vm_ip(2), Duration::from_secs(20)),
        "b still reachable after lsp-del lp2"
    );

    assert_healthy([&mut a, &mut b])
}

/// OVN's encapsulation on chassis `c` (underlay veth `uplink`): the rules
/// that send to and receive from its tunnel port carry the logical
/// datapath and ports the way the encapsulation does, and the underlay
/// shows it (tcpdump: UDP to the encapsulation's port, and for Geneve
/// OVN's option class 0x0102).
fn check_encapsulation(c: &Chassis, uplink: &str) -> Result<()> {
    let tport =
        c.sw.vsctl(&[
            "--bare",
            "--columns=ofport",
            "find",
            "Interface",
            &format!("type={}", c.encap),
        ])?
        .trim()
        .to_string();
    let table = c.sw.ofctl("dump-flows", &c.int, &[])?;
    let out = format!("output:{tport}");
    let from = format!("in_port={tport} ");
    let encap_rule = |l: &str| match c.encap {
        // Datapath in the VNI, logical in/out ports in tun_metadata0.
        Encap::Geneve => l.contains("->tun_id") && l.contains("TUN_METADATA0") && l.contains(&out),
        // Datapath and output port in the VNI (a masked set_field).
        Encap::Vxlan => l.contains("->tun_id,output:") && l.contains(&out),
    };
    let decap_rule = |l: &str| {
        l.contains("table=0,")
            && l.contains(&from)
            && match c.encap {
                Encap::Geneve => {
                    l.contains("move:NXM_NX_TUN_ID[0..23]->OXM_OF_METADATA[0..23]")
                        && l.contains("move:NXM_NX_TUN_METADATA0[16..30]->NXM_NX_REG14[0..14]")
                        && l.contains("move:NXM_NX_TUN_METADATA0[0..15]->NXM_NX_REG15[0..15]")
                }
                Encap::Vxlan => l.contains("move:NXM_NX_TUN_ID[0..11]->OXM_OF_METADATA[0..11]"),
            }
    };
    assert!(
        table.lines().any(encap_rule),
        "no rule encapsulates to port {tport}:\n{table}"
    );
    assert!(
        table.lines().any(decap_rule),
        "no rule decapsulates from port {tport}:\n{table}"
    );
    // The wire: tcpdump decodes the encapsulation on its UDP port.
    let port = c.encap.udp_port().to_string();
    let dump = c.ns.tcpdump(
        15,
        &[
            "-i", uplink, "-nn", "-vv", "-l", "-c", "4", "udp", "dst", "port", &port,
        ],
    )?;
    c.vm.ping(&vm_ip(2), 3);
    let text = dump.wait()?;
    assert!(
        text.contains(&format!(".{port}: ")),
        "no UDP {port}:\n{text}"
    );
    match c.encap {
        Encap::Geneve => assert!(
            text.contains("Geneve") && text.contains("(0x102)"),
            "no Geneve with OVN's option class 0x0102:\n{text}"
        ),
        Encap::Vxlan => assert!(text.contains("VXLAN"), "no VXLAN:\n{text}"),
    }
    Ok(())
}

/// Both chassis stay healthy: vswitchd alive, ovn-controller running and
/// never sent an OpenFlow error.
fn assert_healthy(cs: [&mut Chassis; 2]) -> Result<()> {
    for c in cs {
        c.assert_healthy()?;
    }
    Ok(())
}

/// Routed across chassis, with stateful ACLs: `ls-a` (lp1, on chassis a)
/// and `ls-b` (lp2, on chassis b) joined by logical router `lr`; `ls-b`
/// drops TCP 8080 towards lp2 and lets the rest in `allow-related`, so the
/// pipeline commits connections to conntrack on both chassis (the logical
/// switch ingress on a, the egress on b after the tunnel) and replies pass
/// as related.
#[test]
fn stock_ovn_routes_across_two_ferrovs_chassis_with_stateful_acls() -> Result<()> {
    require!(
        "ovn-controller",
        "ovn-northd",
        "ovn-nbctl",
        "ovn-sbctl",
        "ovsdb-server",
        "ovsdb-tool",
        "iperf3",
        "ethtool"
    );
    let t = "ovn2r";
    let central = tempfile::Builder::new()
        .prefix("ferrovs-ovn2-central-")
        .tempdir()?;
    let ovn = OvnCentral::start(central.path())?;
    ovn.nbctl(&["lr-add", "lr"])?;
    for (n, ls) in [(1u8, "ls-a"), (2, "ls-b")] {
        let lp = format!("lp{n}");
        ovn.nbctl(&["ls-add", ls])?;
        ovn.nbctl(&[
            "lsp-add",
            ls,
            &lp,
            "--",
            "lsp-set-addresses",
            &lp,
            &format!("{} 10.97.{n}.1", lsp_mac(n)),
        ])?;
        ovn.attach_to_router(
            "lr",
            ls,
            &format!("00:00:00:00:97:f{n}"),
            &format!("10.97.{n}.254/24"),
        )?;
    }
    ovn.nbctl(&[
        "acl-add",
        "ls-b",
        "to-lport",
        "1002",
        "outport == \"lp2\" && tcp && tcp.dst == 8080",
        "drop",
    ])?;
    ovn.nbctl(&[
        "acl-add",
        "ls-b",
        "to-lport",
        "1001",
        "outport == \"lp2\" && ip4",
        "allow-related",
    ])?;
    let (mut a, mut b) = ferrovs_chassis(t, &ovn, ["10.97.1.1/24", "10.97.2.1/24"], Encap::Vxlan)?;
    a.vm.exec(&["ip", "route", "add", "default", "via", "10.97.1.254"])?;
    b.vm.exec(&["ip", "route", "add", "default", "via", "10.97.2.254"])?;
    ovn.bind_and_check(&[("lp1", &a), ("lp2", &b)])?;

    if !a.vm.ping_eventually("10.97.2.1", Duration::from_secs(30)) {
        bail!("a cannot reach b through lr\n{}\n{}", a.diag(), b.diag());
    }
    assert!(b.vm.ping("10.97.1.1", 3), "b -> a\n{}", b.diag());
    let out = a.vm.ping_replies("10.97.2.1");
    assert!(out.contains("ttl=63"), "one routed hop: {out}");
    let bps = iperf3_tcp(&b.vm, &a.vm, "10.97.2.1", 2)?;
    assert!(bps > 0.0, "no TCP data routed a -> b");
    // The ACLs: 8080 is dropped, 80 passes.
    assert!(
        !tcp_connects(&b.vm, &a.vm, "10.97.2.1", 8080)?,
        "TCP 8080 got through the drop ACL"
    );
    assert!(
        tcp_connects(&b.vm, &a.vm, "10.97.2.1", 80)?,
        "TCP 80 blocked\n{}",
        b.diag()
    );
    // The stateful ACL committed the connection on b's conntrack.
    let ct = b.sw.appctl(&["dpctl/dump-conntrack"])?;
    assert!(
        ct.contains("src=10.97.1.1,dst=10.97.2.1") && ct.contains("dport=80"),
        "{ct}"
    );
    assert_healthy([&mut a, &mut b])
}

/// A load balancer VIP on the router with one backend on each chassis:
/// connections from a VM on chassis a reach both backends (one local, one
/// through the tunnel), which answer with their names.
#[test]
fn stock_ovn_load_balancer_spreads_connections_over_backends_on_both_chassis() -> Result<()> {
    require!(
        "ovn-controller",
        "ovn-northd",
        "ovn-nbctl",
        "ovn-sbctl",
        "ovsdb-server",
        "ovsdb-tool",
        "busybox",
        "ethtool"
    );
    let t = "ovn2l";
    let central = tempfile::Builder::new()
        .prefix("ferrovs-ovn2-central-")
        .tempdir()?;
    let ovn = OvnCentral::start(central.path())?;
    ovn.nbctl(&["lr-add", "lr"])?;
    for (n, ls) in [(1u8, "ls-a"), (2, "ls-b")] {
        ovn.nbctl(&["ls-add", ls])?;
        ovn.attach_to_router(
            "lr",
            ls,
            &format!("00:00:00:00:98:f{n}"),
            &format!("10.98.{n}.254/24"),
        )?;
    }
    // lp1: the client on ls-a (chassis a); lp2 (chassis b) and lp3
    // (chassis a): the backends, on ls-b.
    for (lp, ls, mac, ip) in [
        ("lp1", "ls-a", lsp_mac(1), "10.98.1.1"),
        ("lp2", "ls-b", lsp_mac(2), "10.98.2.2"),
        ("lp3", "ls-b", lsp_mac(3), "10.98.2.3"),
    ] {
        ovn.nbctl(&[
            "lsp-add",
            ls,
            lp,
            "--",
            "lsp-set-addresses",
            lp,
            &format!("{mac} {ip}"),
        ])?;
    }
    ovn.nbctl(&[
        "lb-add",
        "lb",
        "10.98.9.9:80",
        "10.98.2.2:80,10.98.2.3:80",
        "tcp",
    ])?;
    ovn.nbctl(&["ls-lb-add", "ls-a", "lb"])?;
    ovn.nbctl(&["lr-lb-add", "lr", "lb"])?;
    let (mut a, mut b) = ferrovs_chassis(t, &ovn, ["10.98.1.1/24", "10.98.2.2/24"], Encap::Geneve)?;
    a.vm.exec(&["ip", "route", "add", "default", "via", "10.98.1.254"])?;
    b.vm.exec(&["ip", "route", "add", "default", "via", "10.98.2.254"])?;
    ovn.bind_and_check(&[("lp1", &a), ("lp2", &b)])?;
    let c = a.extra_vm(
        &format!("{t}w"),
        &lsp_mac(3),
        "lp3",
        Some(("10.98.2.3/24", "10.98.2.254")),
    )?;
    // Each backend answers every connection on port 80 with its name.
    let dir = tempfile::Builder::new()
        .prefix("ferrovs-ovn2-lb-")
        .tempdir()?;
    let mut servers = Vec::new();
    for (vm, name) in [(&b.vm, "on-b"), (&c, "on-a")] {
        let script = dir.path().join(name);
        std::fs::write(&script, format!("#!/bin/sh\necho {name}\n"))?;
        run(Command::new("chmod").arg("+x").arg(&script))?;
        let s = script.to_str().context("path")?.to_string();
        servers.push(vm.spawn(&["busybox", "nc", "-ll", "-p", "80", "-e", &s])?);
    }
    if !a.vm.ping_eventually("10.98.2.2", Duration::from_secs(30)) {
        bail!("a cannot reach b through lr\n{}\n{}", a.diag(), b.diag());
    }
    assert!(a.vm.ping("10.98.2.3", 3), "a -> its local backend");
    let mut seen = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..20 {
        let out =
            a.vm.exec_output(&["busybox", "nc", "-w", "3", "10.98.9.9", "80"])?;
        let who = String::from_utf8_lossy(&out.stdout).trim().to_string();
        *seen.entry(who).or_default() += 1;
    }
    assert!(
        seen.get("on-a").copied().unwrap_or(0) > 0 && seen.get("on-b").copied().unwrap_or(0) > 0,
        "the VIP did not reach both backends: {seen:?}\n{}\n{}",
        a.diag(),
        b.diag()
    );
    eprintln!("backends seen: {seen:?}");
    drop(servers);
    assert_healthy([&mut a, &mut b])
}
