//! Issue 16, mixed cluster: Debian's stock OVN 23.03 drives two chassis, one
//! running ferrovs and the other stock Open vSwitch with the userspace
//! datapath (its own ovsdb-server and run directory inside its namespace),
//! each with its own stock `ovn-controller`. The encapsulation is a
//! parameter (VXLAN here: Geneve needs tun_metadata on ferrovs).
//!
//! Topology: logical router `lr` between `ls-a` (lp1 on the ferrovs
//! chassis) and `ls-b` (lp2 on the OVS chassis, lp3 on the ferrovs one);
//! `ls-b` drops TCP 8080 towards its ports and lets the rest in
//! `allow-related` (conntrack on both switches); a load balancer VIP on
//! `ls-a` and `lr` has the backends lp2 and lp3, one per chassis.
//!
//! Checks: both chassis register with their encap, every port is bound on
//! its chassis, up and `ovn-installed`; ping and TCP both ways across the
//! chassis on the same logical switch and routed; TCP 8080 is dropped and
//! 80 passes, both towards OVS and towards ferrovs; the VIP reaches both
//! backends; a DHCP client on each chassis gets its lease from OVN's native
//! DHCP (lp4 on ferrovs, lp5 on OVS, on `ls-b`). Then `kill -9` of ferrovs
//! and a restart: traffic is back within 10 s with no other step, and the
//! ACL, the VIP and DHCP work again.
//! Neither ovn-controller receives an OpenFlow error.
//!
//! Run under the e2e lock: `flock /tmp/ferrovs-e2e.lock cargo test -p
//! ferrovs-tests --test ovn_mixed_cluster`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferrovs_tests::ovn::{Chassis, Encap, OvnCentral, SwitchKind, dhcp_lease, two_chassis};
use ferrovs_tests::*;

fn mac(n: u8) -> String {
    format!("00:00:00:00:95:0{n}")
}

/// The name a backend answers with on `ip:port` to a client in `from`
/// (empty when the connection fails).
fn answer(from: &Netns, ip: &str, port: u16) -> String {
    from.exec_output(&["busybox", "nc", "-w", "3", ip, &port.to_string()])
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Logical topology: `lr` between `ls-a` and `ls-b`, lp1 on `ls-a`, lp2
/// and lp3 on `ls-b`, the ACLs on `ls-b`, the load balancer.
fn topology(ovn: &OvnCentral) -> Result<()> {
    ovn.nbctl(&["lr-add", "lr"])?;
    for (n, ls) in [(1u8, "ls-a"), (2, "ls-b")] {
        ovn.nbctl(&["ls-add", ls])?;
        ovn.attach_to_router(
            "lr",
            ls,
            &format!("00:00:00:00:95:f{n}"),
            &format!("10.95.{n}.254/24"),
        )?;
    }
    for (lp, ls, n, ip) in [
        ("lp1", "ls-a", 1u8, "10.95.1.1"),
        ("lp2", "ls-b", 2, "10.95.2.2"),
        ("lp3", "ls-b", 3, "10.95.2.3"),
        ("lp4", "ls-b", 4, "10.95.2.4"),
        ("lp5", "ls-b", 5, "10.95.2.5"),
    ] {
        ovn.nbctl(&[
            "lsp-add",
            ls,
            lp,
            "--",
            "lsp-set-addresses",
            lp,
            &format!("{} {ip}", mac(n)),
        ])?;
    }
    ovn.nbctl(&[
        "acl-add",
        "ls-b",
        "to-lport",
        "1002",
        "(outport == \"lp2\" || outport == \"lp3\") && tcp && tcp.dst == 8080",
        "drop",
    ])?;
    ovn.nbctl(&[
        "acl-add",
        "ls-b",
        "to-lport",
        "1001",
        "(outport == \"lp2\" || outport == \"lp3\") && ip4",
        "allow-related",
    ])?;
    // OVN's DHCP server for lp4 and lp5.
    let uuid = ovn.nbctl(&[
        "create",
        "DHCP_Options",
        "cidr=10.95.2.0/24",
        "options={server_id=10.95.2.254, server_mac=\"00:00:00:00:95:f2\", lease_time=3600, router=10.95.2.254}",
    ])?;
    for lp in ["lp4", "lp5"] {
        ovn.nbctl(&["lsp-set-dhcpv4-options", lp, uuid.trim()])?;
    }
    ovn.nbctl(&[
        "lb-add",
        "lb",
        "10.95.9.9:80",
        "10.95.2.2:80,10.95.2.3:80",
        "tcp",
    ])?;
    ovn.nbctl(&["ls-lb-add", "ls-a", "lb"])?;
    ovn.nbctl(&["lr-lb-add", "lr", "lb"])?;
    Ok(())
}

/// The VMs: lp1 (`a.vm`), lp2 (`b.vm`), lp3.
struct Vms<'a> {
    a: &'a Chassis,
    b: &'a Chassis,
    lp3: &'a Netns,
}

impl Vms<'_> {
    fn diag(&self) -> String {
        format!("{}\n{}", self.a.diag(), self.b.diag())
    }

    /// Ping both ways, routed (lp1 <-> lp2) and on the same logical switch
    /// (lp3 <-> lp2), within `within` for the first reply.
    fn ping_across(&self, within: Duration) -> Result<()> {
        let t = Instant::now();
        for (from, to, what) in [
            (&self.a.vm, "10.95.2.2", "routed a -> b"),
            (self.lp3, "10.95.2.2", "same switch a -> b"),
            (&self.b.vm, "10.95.1.1", "routed b -> a"),
            (&self.b.vm, "10.95.2.3", "same switch b -> a"),
        ] {
            let left = within.saturating_sub(t.elapsed());
            if !from.ping_eventually(to, left) {
                bail!("{what}: no ping reply within {within:?}\n{}", self.diag());
            }
        }
        Ok(())
    }

    /// Ping bursts and TCP data both ways, routed and on the same switch.
    fn traffic_across(&self) -> Result<()> {
        for (from, to, what) in [
            (&self.a.vm, "10.95.2.2", "routed a -> b"),
            (self.lp3, "10.95.2.2", "same switch a -> b"),
            (&self.b.vm, "10.95.1.1", "routed b -> a"),
            (&self.b.vm, "10.95.2.3", "same switch b -> a"),
        ] {
            assert!(from.ping(to, 5), "{what}: replies lost\n{}", self.diag());
        }
        let out = self.a.vm.ping_replies("10.95.2.2");
        assert!(out.contains("ttl=63"), "one routed hop: {out}");
        for (server, client, ip, what) in [
            (&self.b.vm, &self.a.vm, "10.95.2.2", "routed a -> b"),
            (&self.a.vm, &self.b.vm, "10.95.1.1", "routed b -> a"),
            (&self.b.vm, self.lp3, "10.95.2.2", "same switch a -> b"),
            (self.lp3, &self.b.vm, "10.95.2.3", "same switch b -> a"),
        ] {
            let bps = iperf3_tcp(server, client, ip, 1)
                .with_context(|| format!("{what}\n{}", self.diag()))?;
            assert!(bps > 0.0, "{what}: no TCP data");
        }
        Ok(())
    }

    /// The ACL: 8080 dropped, 80 passes, towards the OVS chassis (from
    /// lp1) and towards the ferrovs one (from lp2); the VIP reaches both
    /// backends.
    fn acl_and_vip(&self) -> Result<()> {
        for (from, ip, backend) in [
            (&self.a.vm, "10.95.2.2", "on-b"),
            (&self.b.vm, "10.95.2.3", "on-a"),
        ] {
            assert_eq!(
                answer(from, ip, 80),
                backend,
                "TCP 80 to {ip} blocked\n{}",
                self.diag()
            );
            assert_eq!(
                answer(from, ip, 8080),
                "",
                "TCP 8080 to {ip} got through the drop ACL"
            );
        }
        let mut seen = BTreeMap::<String, u32>::new();
        for _ in 0..20 {
            *seen.entry(answer(&self.a.vm, "10.95.9.9", 80)).or_default() += 1;
        }
        assert!(
            seen.get("on-a").copied().unwrap_or(0) > 0
                && seen.get("on-b").copied().unwrap_or(0) > 0,
            "the VIP did not reach both backends: {seen:?}\n{}",
            self.diag()
        );
        eprintln!("backends seen: {seen:?}");
        Ok(())
    }
}

/// Each backend answers every connection on ports 80 and 8080 with its
/// name (`on-a`, `on-b`).
fn backends(vms: &[(&Netns, &str)]) -> Result<(tempfile::TempDir, Vec<ChildGuard>)> {
    let dir = tempfile::Builder::new()
        .prefix("ferrovs-ovnmix-")
        .tempdir()?;
    let mut servers = Vec::new();
    for (vm, name) in vms {
        let script = dir.path().join(name);
        std::fs::write(&script, format!("#!/bin/sh\necho {name}\n"))?;
        run(Command::new("chmod").arg("+x").arg(&script))?;
        let s = script.to_str().context("path")?.to_string();
        for port in ["80", "8080"] {
            servers.push(vm.spawn(&["busybox", "nc", "-ll", "-p", port, "-e", &s])?);
        }
    }
    Ok((dir, servers))
}

/// Every DHCP client gets the lease of its address within `within`.
fn leases(dhcp: &[(Netns, &str)], a: &Chassis, b: &Chassis, within: Duration) -> Result<()> {
    let mut failed = Vec::new();
    for (vm, ip) in dhcp {
        let (ok, out) = dhcp_lease(vm, ip, "10.95.2.254", within);
        if !ok {
            failed.push(format!("no DHCP lease of {ip}: {out}"));
        }
    }
    if !failed.is_empty() {
        let pinctrl = |c: &Chassis| {
            std::fs::read_to_string(&c.log)
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    let l = l.to_ascii_lowercase();
                    l.contains("pinctrl") || l.contains("dhcp") || l.contains("resume")
                })
                .map(str::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        };
        bail!(
            "{}\n{}\n{}\npinctrl a:\n{}\npinctrl b:\n{}",
            failed.join("\n"),
            a.diag(),
            b.diag(),
            pinctrl(a),
            pinctrl(b)
        );
    }
    Ok(())
}

fn mixed_cluster(t: &str, kinds: [SwitchKind; 2], encap: Encap) -> Result<()> {
    assert_eq!(kinds[0], SwitchKind::Ferrovs, "chassis a runs ferrovs");
    let central = tempfile::Builder::new()
        .prefix("ferrovs-ovnmix-central-")
        .tempdir()?;
    let ovn = OvnCentral::start(central.path())?;
    topology(&ovn)?;
    let (mut a, mut b) = two_chassis(
        t,
        &ovn,
        kinds,
        encap,
        [&mac(1), &mac(2)],
        ["10.95.1.1/24", "10.95.2.2/24"],
    )?;
    a.vm.exec(&["ip", "route", "add", "default", "via", "10.95.1.254"])?;
    b.vm.exec(&["ip", "route", "add", "default", "via", "10.95.2.254"])?;
    ovn.bind_and_check(&[("lp1", &a), ("lp2", &b)])?;
    let lp3 = a.extra_vm(
        &format!("{t}w"),
        &mac(3),
        "lp3",
        Some(("10.95.2.3/24", "10.95.2.254")),
    )?;
    // DHCP clients, one per chassis: each chassis' ovn-controller answers
    // its own (controller(pause) and NXT_RESUME through its switch).
    let dhcp = [
        (
            a.extra_vm(&format!("{t}d"), &mac(4), "lp4", None)?,
            "10.95.2.4",
        ),
        (
            b.extra_vm(&format!("{t}e"), &mac(5), "lp5", None)?,
            "10.95.2.5",
        ),
    ];
    let (_dir, servers) = backends(&[(&b.vm, "on-b"), (&lp3, "on-a")])?;

    let vms = Vms {
        a: &a,
        b: &b,
        lp3: &lp3,
    };
    vms.ping_across(Duration::from_secs(30))?;
    vms.traffic_across()?;
    vms.acl_and_vip()?;
    leases(&dhcp, &a, &b, Duration::from_secs(30))?;

    // kill -9 of ferrovs and a restart: its DB brings back the bridges
    // and ports, the underlay address is still on its persistent internal
    // port, ovn-controller reinstalls its flows; traffic is back within
    // 10 s with no other step.
    let killed = Instant::now();
    a.kill_and_restart_switch()?;
    let vms = Vms {
        a: &a,
        b: &b,
        lp3: &lp3,
    };
    vms.ping_across(Duration::from_secs(10).saturating_sub(killed.elapsed()))?;
    eprintln!("traffic back {:?} after the kill", killed.elapsed());
    vms.traffic_across()?;
    vms.acl_and_vip()?;
    leases(&dhcp, &a, &b, Duration::from_secs(10))?;
    drop(servers);
    a.assert_healthy()?;
    b.assert_healthy()
}

#[test]
fn stock_ovn_spans_a_ferrovs_and_a_stock_ovs_chassis_over_vxlan() -> Result<()> {
    require!(
        "ovn-controller",
        "ovn-northd",
        "ovn-nbctl",
        "ovn-sbctl",
        "ovsdb-server",
        "ovsdb-tool",
        "ovs-vswitchd",
        "iperf3",
        "busybox",
        "ethtool"
    );
    mixed_cluster(
        "ovnrsm",
        [SwitchKind::Ferrovs, SwitchKind::StockOvs],
        Encap::Vxlan,
    )
}
