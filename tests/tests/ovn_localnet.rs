//! OVN localnet through patch ports: with
//! `external_ids:ovn-bridge-mappings=physnet1:<provider bridge>`, stock
//! ovn-controller (Debian's OVN 23.03) joins the integration bridge to the
//! provider bridge with a patch pair it creates itself, for a logical
//! switch's `localnet` port (`network_name=physnet1`). A "VM" namespace on
//! the integration bridge then reaches a "provider" namespace behind the
//! provider bridge's uplink veth (ping and TCP both ways), and
//! ovn-controller receives no OpenFlow error.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};
use ferrovs_tests::ovn::{OvnCentral, openflow_errors};
use ferrovs_tests::*;

const VM_MAC: &str = "00:00:00:00:95:01";

fn start_controller(db: &str, ovs_rundir: &Path, dir: &Path) -> Result<(ChildGuard, PathBuf)> {
    let log = dir.join("ovn-controller.log");
    let child = Command::new("ovn-controller")
        .arg(db)
        .arg(format!("--log-file={}", log.display()))
        .arg("-vconsole:off")
        .arg("-vfile:vconn:dbg")
        .env("OVS_RUNDIR", ovs_rundir)
        .env("OVN_RUNDIR", dir)
        .env("OVN_LOGDIR", dir)
        .spawn()?;
    Ok((ChildGuard(Some(child)), log))
}

/// The patch Interfaces on bridge `br` (name, ofport, error).
fn patch_ifaces(sw: &Switch, br: &str) -> Vec<(String, String, String)> {
    let Ok(ports) = sw.vsctl(&["list-ports", br]) else {
        return Vec::new();
    };
    ports
        .lines()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .filter(|p| {
            sw.vsctl(&["get", "Interface", p, "type"])
                .is_ok_and(|t| t.trim() == "patch")
        })
        .map(|p| {
            let get = |c: &str| {
                sw.vsctl(&["get", "Interface", p, c])
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default()
            };
            (p.to_string(), get("ofport"), get("error"))
        })
        .collect()
}

#[test]
fn a_vm_on_the_integration_bridge_reaches_the_provider_network_through_a_localnet_port()
-> Result<()> {
    localnet(false)
}

/// With a stateful ACL, traffic from the provider network is tracked in
/// the integration bridge after it crossed the patch pair from the
/// provider bridge: the second pass (`ct(table=N)`) resumes in the peer.
#[test]
fn provider_traffic_is_tracked_in_the_integration_bridge_behind_the_patch_pair() -> Result<()> {
    localnet(true)
}

fn localnet(stateful: bool) -> Result<()> {
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
    let tag = unique_tag();
    let mut sw = Switch::start()?;
    let ovn_dir = sw.rundir().join("ovn");
    let ovn = OvnCentral::start(&ovn_dir)?;
    let br_int = format!("{tag}i");
    let br_phys = format!("{tag}ph");

    // The provider bridge and its uplink to the "provider" namespace.
    let provider = VethHost::new(&tag, 9, "10.95.0.100/24")?;
    provider.ns.exec(&["ethtool", "-K", "eth0", "tx", "off"])?;
    sw.vsctl(&[
        "add-br",
        &br_phys,
        "--",
        "set",
        "bridge",
        &br_phys,
        "datapath_type=netdev",
        "--",
        "add-port",
        &br_phys,
        &provider.port,
    ])?;
    let _ = ip(&["link", "set", &br_phys, "down"]);

    sw.vsctl(&[
        "set",
        "Open_vSwitch",
        ".",
        &format!("external_ids:system-id={tag}hv"),
        &format!("external_ids:ovn-remote={}", ovn.sb_remote()),
        "external_ids:ovn-encap-type=geneve",
        "external_ids:ovn-encap-ip=127.0.0.1",
        "external_ids:ovn-bridge-datapath-type=netdev",
        &format!("external_ids:ovn-bridge={br_int}"),
        &format!("external_ids:ovn-bridge-mappings=physnet1:{br_phys}"),
    ])?;
    let (_controller, log) = start_controller(&sw.db_remote(), sw.rundir(), &ovn_dir)?;

    // One logical switch: a VM port and a localnet port on physnet1.
    ovn.nbctl(&["ls-add", "ls"])?;
    ovn.nbctl(&[
        "lsp-add",
        "ls",
        "lp1",
        "--",
        "lsp-set-addresses",
        "lp1",
        &format!("{VM_MAC} 10.95.0.1"),
    ])?;
    ovn.nbctl(&[
        "lsp-add",
        "ls",
        "ln",
        "--",
        "lsp-set-type",
        "ln",
        "localnet",
        "--",
        "lsp-set-addresses",
        "ln",
        "unknown",
        "--",
        "lsp-set-options",
        "ln",
        "network_name=physnet1",
    ])?;
    if stateful {
        // Allow ICMP and TCP both ways, statefully: every packet of the
        // switch goes through conntrack (OVN's allow-related).
        for dir in ["to-lport", "from-lport"] {
            ovn.nbctl(&["acl-add", "ls", dir, "1001", "ip4", "allow-related"])?;
        }
    }
    if !wait_until(Duration::from_secs(30), || {
        sw.vsctl(&["br-exists", &br_int]).is_ok()
    }) {
        bail!("ovn-controller did not create {br_int}");
    }
    let _ = ip(&["link", "set", &br_int, "down"]);

    let vm = VethHost::new(&tag, 1, "10.95.0.1/24")?;
    vm.ns
        .exec(&["ip", "link", "set", "eth0", "address", VM_MAC])?;
    vm.ns.exec(&["ethtool", "-K", "eth0", "tx", "off"])?;
    sw.vsctl(&[
        "add-port",
        &br_int,
        &vm.port,
        "--",
        "set",
        "Interface",
        &vm.port,
        "external_ids:iface-id=lp1",
    ])?;
    if !wait_until(Duration::from_secs(30), || {
        sw.vsctl(&["get", "Interface", &vm.port, "external_ids"])
            .map(|s| s.contains("ovn-installed=\"true\""))
            .unwrap_or(false)
    }) {
        bail!(
            "{} never got ovn-installed; OpenFlow errors: {:?}",
            vm.port,
            openflow_errors(&log)
        );
    }

    // ovn-controller made the patch pair itself, and the switch joined it.
    let mut pair = Vec::new();
    if !wait_until(Duration::from_secs(30), || {
        let (a, b) = (patch_ifaces(&sw, &br_int), patch_ifaces(&sw, &br_phys));
        pair = a.into_iter().chain(b).collect();
        pair.len() == 2
            && pair
                .iter()
                .all(|(_, ofport, error)| ofport != "-1" && ofport != "[]" && error == "[]")
    }) {
        bail!(
            "no working patch pair between {br_int} and {br_phys}: {pair:?}\n{}",
            sw.log_text()
        );
    }

    // The VM and the provider network reach each other.
    assert!(
        vm.ns
            .ping_eventually(&provider.addr, Duration::from_secs(15)),
        "the VM cannot reach the provider namespace; OpenFlow errors: {:?}\n{}",
        openflow_errors(&log),
        sw.appctl(&["dpctl/dump-flows"]).unwrap_or_default()
    );
    assert!(vm.ns.ping(&provider.addr, 3), "VM -> provider");
    assert!(provider.ns.ping(&vm.addr, 3), "provider -> VM");
    let neigh = provider.ns.exec(&["ip", "neigh", "show", &vm.addr])?;
    assert!(neigh.contains(VM_MAC), "{neigh}");
    let bps = iperf3_tcp(&provider.ns, &vm.ns, &provider.addr, 2)?;
    assert!(bps > 1e6, "VM -> provider TCP carried only {bps} bit/s");
    let bps = iperf3_tcp(&vm.ns, &provider.ns, &vm.addr, 2)?;
    assert!(bps > 1e6, "provider -> VM TCP carried only {bps} bit/s");

    assert!(sw.alive(), "vswitchd died:\n{}", sw.log_text());
    if stateful {
        // The connections were tracked (OVN's zone for the VM port).
        let ct = sw.appctl(&["dpctl/dump-conntrack"])?;
        assert!(
            ct.contains(&format!("src={}", provider.addr)) && ct.contains("tcp"),
            "no tracked connection from the provider network:\n{ct}"
        );
    }
    let errors = openflow_errors(&log);
    assert!(
        errors.is_empty(),
        "ovn-controller received OpenFlow errors:\n{}",
        errors.join("\n")
    );
    Ok(())
}
