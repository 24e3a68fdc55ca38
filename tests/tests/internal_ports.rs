//! Internal ports are as persistent as Open vSwitch makes them: the
//! bridge's own port and a `type=internal` port are TAP devices that outlive
//! a `kill -9` of the switch with their addresses and routes; the restarted
//! switch attaches to them again and traffic resumes with no step by the
//! host; `del-port` removes the port's device and `del-br` the bridge's.
//!
//! The same steps run against stock `ovs-vswitchd` (userspace datapath) in
//! a namespace of its own, and the two must see the same.
//!
//! Run under the e2e lock: `flock /tmp/ferrovs-e2e.lock cargo test -p
//! ferrovs-tests --test internal_ports`.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use ferrovs_tests::tunnel_hosts::Sw;
use ferrovs_tests::*;

/// What the host sees at each step.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    /// While the switch is dead: the bridge's and the internal port's
    /// addresses, and the route through the bridge.
    bridge_addr_while_down: bool,
    port_addr_while_down: bool,
    route_while_down: bool,
    /// After the restart: the same, and a VM on the bridge reaches the
    /// bridge's address again (polled; the deadline only catches a hang).
    bridge_addr_after_restart: bool,
    port_addr_after_restart: bool,
    route_after_restart: bool,
    vm_reaches_bridge_after_restart: bool,
    /// `del-port` of the internal port removes its device, not the bridge's.
    port_device_gone_after_del_port: bool,
    bridge_device_kept_after_del_port: bool,
    /// `del-br` removes the bridge's device.
    bridge_device_gone_after_del_br: bool,
}

fn has(ns: &Netns, args: &[&str], needle: &str) -> bool {
    ns.exec(args).map(|o| o.contains(needle)).unwrap_or(false)
}

fn device_exists(ns: &Netns, dev: &str) -> bool {
    ns.exec(&["ip", "link", "show", "dev", dev]).is_ok()
}

/// The steps, on ferrovs or on stock OVS (`ovs`), in namespaces `<t>`
/// (the switch's host) and `<t>v` (a VM on the bridge).
fn scenario(t: &str, ovs: bool) -> Result<Seen> {
    let ns = Netns::new(t)?;
    let vm = Netns::new(&format!("{t}v"))?;
    let (br, int, vport) = (format!("{t}b"), format!("{t}i"), format!("{t}p"));
    ns.exec(&[
        "ip", "link", "add", &vport, "type", "veth", "peer", "name", "eth0", "netns", &vm.name,
    ])?;
    ns.exec(&["ip", "link", "set", &vport, "up"])?;
    vm.exec(&["ip", "addr", "add", "10.58.0.2/24", "dev", "eth0"])?;
    vm.exec(&["ip", "link", "set", "eth0", "up"])?;
    let mut sw = Sw::start_in(&ns, ovs)?;
    sw.vsctl(&[
        "add-br",
        &br,
        "--",
        "set",
        "bridge",
        &br,
        "datapath_type=netdev",
    ])?;
    sw.vsctl(&["add-port", &br, &vport])?;
    sw.vsctl(&[
        "add-port",
        &br,
        &int,
        "--",
        "set",
        "Interface",
        &int,
        "type=internal",
    ])?;
    if !wait_until(Duration::from_secs(10), || {
        device_exists(&ns, &br) && device_exists(&ns, &int)
    }) {
        bail!("{br} or {int} never appeared\n{}", sw.log_text());
    }
    for (dev, addr) in [(&br, "10.58.0.1/24"), (&int, "10.59.0.1/24")] {
        ns.exec(&["ip", "link", "set", dev, "up"])?;
        ns.exec(&["ip", "addr", "add", addr, "dev", dev])?;
    }
    ns.exec(&["ip", "route", "add", "10.60.0.0/24", "via", "10.58.0.2"])?;
    if !vm.ping_eventually("10.58.0.1", Duration::from_secs(10)) {
        bail!("the VM cannot reach {br}\n{}", sw.log_text());
    }

    let bridge_addr = || {
        has(
            &ns,
            &["ip", "-4", "addr", "show", "dev", &br],
            "10.58.0.1/24",
        )
    };
    let port_addr = || {
        has(
            &ns,
            &["ip", "-4", "addr", "show", "dev", &int],
            "10.59.0.1/24",
        )
    };
    let route = || {
        has(
            &ns,
            &["ip", "route", "show", "10.60.0.0/24"],
            &format!("via 10.58.0.2 dev {br}"),
        )
    };

    sw.kill()?;
    std::thread::sleep(Duration::from_millis(300));
    let bridge_addr_while_down = bridge_addr();
    let port_addr_while_down = port_addr();
    let route_while_down = route();

    let restarted = Instant::now();
    sw.kill_and_restart()?;
    // The deadline only catches a hang (a restart of a debug build on a
    // busy machine is slow); the time it took is printed below.
    let vm_reaches_bridge_after_restart = vm.ping_eventually("10.58.0.1", Duration::from_secs(60));
    eprintln!(
        "{}: the VM reaches the bridge {:?} after the restart",
        if ovs { "stock OVS" } else { "ferrovs" },
        restarted.elapsed()
    );
    let bridge_addr_after_restart = bridge_addr();
    let port_addr_after_restart = port_addr();
    let route_after_restart = route();

    sw.vsctl(&["del-port", &br, &int])?;
    let port_device_gone_after_del_port =
        wait_until(Duration::from_secs(5), || !device_exists(&ns, &int));
    let bridge_device_kept_after_del_port = device_exists(&ns, &br) && bridge_addr();
    sw.vsctl(&["del-br", &br])?;
    let bridge_device_gone_after_del_br =
        wait_until(Duration::from_secs(5), || !device_exists(&ns, &br));
    if !sw.alive() {
        bail!("the switch died\n{}", sw.log_text());
    }
    Ok(Seen {
        bridge_addr_while_down,
        port_addr_while_down,
        route_while_down,
        bridge_addr_after_restart,
        port_addr_after_restart,
        route_after_restart,
        vm_reaches_bridge_after_restart,
        port_device_gone_after_del_port,
        bridge_device_kept_after_del_port,
        bridge_device_gone_after_del_br,
    })
}

#[test]
fn internal_ports_keep_addresses_and_routes_across_kill_9_and_go_with_del_port_as_in_ovs()
-> Result<()> {
    require!("ovs-vswitchd", "ovsdb-server", "ovsdb-tool", "ovs-vsctl");
    let ours = scenario("ovnrsipf", false)?;
    let all = Seen {
        bridge_addr_while_down: true,
        port_addr_while_down: true,
        route_while_down: true,
        bridge_addr_after_restart: true,
        port_addr_after_restart: true,
        route_after_restart: true,
        vm_reaches_bridge_after_restart: true,
        port_device_gone_after_del_port: true,
        bridge_device_kept_after_del_port: true,
        bridge_device_gone_after_del_br: true,
    };
    assert_eq!(ours, all, "ferrovs");
    let theirs = scenario("ovnrsipo", true)?;
    assert_eq!(ours, theirs, "ferrovs (left) and stock OVS (right) differ");
    Ok(())
}
