//! Tunnel routes follow the host (issue 14): "Route and neighbour tables
//! are shown by appctl, and follow a route change made with `ip route` in
//! the host."
//!
//! Two ferrovs hypervisors joined by two underlay veths. Hypervisor A has
//! one underlay bridge per path (10.99.0.1/24 on the first, 10.98.0.1/24
//! on the second); B has one underlay bridge holding both veths (10.99.0.2
//! and 10.98.0.2). The tunnel endpoints are /32 addresses (10.88.0.1 on A,
//! 10.88.0.2 on B) reached through a next hop, so which path A's tunnel
//! traffic takes is decided by A's kernel route to 10.88.0.2 alone. After
//! `ip route replace` moves that route to the second next hop, ferrovs's
//! route table (followed over rtnetlink) shows it, the next hop gets
//! resolved, and the encapsulated packets leave on the second underlay.
//!
//! Run under the e2e lock: `flock /tmp/ferrovs-e2e.lock cargo test -p
//! ferrovs-tests --test tunnel_routes`.

use std::time::Duration;

use anyhow::{Result, bail};
use ferrovs_tests::tunnel_hosts::*;
use ferrovs_tests::*;

const PINGS: u32 = 20;

fn ferrovs(h: &Hv) -> &Switch {
    match &h.sw {
        Sw::Ferrovs(s) => s,
        Sw::Ovs(_) => unreachable!("both hypervisors run ferrovs"),
    }
}

/// Both switches' datapath flows, routes, neighbours and drop counters.
fn diag(a: &Hv, b: &Hv) -> String {
    let mut out = String::new();
    for h in [a, b] {
        let s = ferrovs(h);
        for cmd in [
            "dpctl/dump-flows",
            "ovs/route/show",
            "tnl/neigh/show",
            "tnl/drops/show",
        ] {
            out += &format!(
                "{} {cmd}:\n{}\n",
                h.ns.name,
                s.appctl(&[cmd]).unwrap_or_default()
            );
        }
    }
    out
}

/// Pings from A's VM to B's and returns how many packets each of A's two
/// underlay veths sent meanwhile.
fn burst(a: &Hv, b: &Hv, path1: &str, path2: &str) -> Result<(u64, u64)> {
    let (p1, p2) = (a.tx_packets(path1)?, a.tx_packets(path2)?);
    if !a.vm.ping(&b.vm_ip(), PINGS) {
        bail!("pings lost\n{}", diag(a, b));
    }
    Ok((a.tx_packets(path1)? - p1, a.tx_packets(path2)? - p2))
}

#[test]
fn a_route_replaced_with_ip_route_moves_tunnel_traffic_to_the_new_underlay() -> Result<()> {
    require!("ping");
    let t = "tnrt";
    let a = hypervisor(t, 'a', 1, false)?;
    let b = hypervisor(t, 'b', 2, false)?;
    let (ua, ub, ua2, ub2) = (
        format!("{t}ua"),
        format!("{t}ub"),
        format!("{t}ua2"),
        format!("{t}ub2"),
    );
    underlay_link(t, &a, &b)?;
    veth_between(&ua2, &a, &ub2, &b)?;
    // B's ARP requests reach both of A's underlay bridges: only the one
    // owning the address may answer (else B sends to A's second bridge,
    // which does not own the tunnel endpoint).
    a.ns.exec(&["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1"])?;
    let key = "options:key=808";
    a.configure(
        &ua,
        "vxlan",
        &[
            "options:remote_ip=10.88.0.2",
            "options:local_ip=10.88.0.1",
            key,
        ],
    )?;
    b.configure(
        &ub,
        "vxlan",
        &[
            "options:remote_ip=10.88.0.1",
            "options:local_ip=10.88.0.2",
            key,
        ],
    )?;
    // The second path: its own underlay bridge on A, a second port of the
    // underlay bridge on B.
    let p2a = format!("{t}qa");
    a.add_bridge(&p2a)?;
    a.underlay_bridge_up(&p2a, &ua2, "10.98.0.1/24")?;
    b.sw.vsctl(&["add-port", &b.phy, &ub2])?;
    b.ns.exec(&["ip", "addr", "add", "10.98.0.2/24", "dev", &b.phy])?;
    // Tunnel endpoints behind a next hop.
    a.ns.exec(&["ip", "addr", "add", "10.88.0.1/32", "dev", &a.phy])?;
    b.ns.exec(&["ip", "addr", "add", "10.88.0.2/32", "dev", &b.phy])?;
    b.ns.exec(&["ip", "route", "add", "10.88.0.1/32", "via", "10.99.0.1"])?;
    a.ns.exec(&["ip", "route", "add", "10.88.0.2/32", "via", "10.99.0.2"])?;

    let sa = ferrovs(&a);
    let first = "10.88.0.2/32 dev tnrtpa GW 10.99.0.2";
    if !wait_until(Duration::from_secs(10), || {
        sa.appctl(&["ovs/route/show"])
            .is_ok_and(|r| r.contains(first))
    }) {
        bail!("route never shown:\n{}", sa.appctl(&["ovs/route/show"])?);
    }
    if !a.vm.ping_eventually(&b.vm_ip(), Duration::from_secs(30)) {
        bail!("no ping across the tunnel\n{}", diag(&a, &b));
    }
    let (on1, on2) = burst(&a, &b, &ua, &ua2)?;
    assert!(
        on1 >= PINGS as u64 && on2 < PINGS as u64,
        "first path: {on1} packets on {ua}, {on2} on {ua2}"
    );
    let neigh = sa.appctl(&["tnl/neigh/show"])?;
    assert!(neigh.contains("10.99.0.2"), "{neigh}");

    // The host moves the route to the second next hop.
    a.ns.exec(&["ip", "route", "replace", "10.88.0.2/32", "via", "10.98.0.2"])?;
    let second = format!("10.88.0.2/32 dev {p2a} GW 10.98.0.2");
    if !wait_until(Duration::from_secs(10), || {
        sa.appctl(&["ovs/route/show"])
            .is_ok_and(|r| r.contains(&second) && !r.contains(first))
    }) {
        bail!(
            "route change not followed:\n{}",
            sa.appctl(&["ovs/route/show"])?
        );
    }
    let lookup = sa.appctl(&["ovs/route/lookup", "10.88.0.2"])?;
    assert!(
        lookup.contains(&p2a) && lookup.contains("10.98.0.2"),
        "{lookup}"
    );
    // The first pings may go to resolving the new next hop.
    if !a.vm.ping_eventually(&b.vm_ip(), Duration::from_secs(30)) {
        bail!("no ping after the route change\n{}", diag(&a, &b));
    }
    let (on1, on2) = burst(&a, &b, &ua, &ua2)?;
    assert!(
        on2 >= PINGS as u64 && on1 < PINGS as u64,
        "second path: {on1} packets on {ua}, {on2} on {ua2}"
    );
    let neigh = sa.appctl(&["tnl/neigh/show"])?;
    assert!(
        neigh.contains("10.98.0.2") && neigh.contains(&p2a),
        "{neigh}"
    );
    // And back: the route removed and re-added on the first path.
    a.ns.exec(&["ip", "route", "replace", "10.88.0.2/32", "via", "10.99.0.2"])?;
    if !wait_until(Duration::from_secs(10), || {
        sa.appctl(&["ovs/route/show"])
            .is_ok_and(|r| r.contains(first) && !r.contains(&second))
    }) {
        bail!("route change back not followed");
    }
    let (on1, on2) = burst(&a, &b, &ua, &ua2)?;
    assert!(
        on1 >= PINGS as u64 && on2 < PINGS as u64,
        "back on the first path: {on1} packets on {ua}, {on2} on {ua2}"
    );
    Ok(())
}
