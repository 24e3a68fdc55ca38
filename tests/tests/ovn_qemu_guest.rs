//! Issue 16, "plus one QEMU guest on vhost-user": Debian's stock OVN 23.03
//! drives two ferrovs chassis over Geneve (the shared
//! [`ferrovs_tests::ovn`] cluster: each chassis a namespace with its own
//! vswitchd and its own stock `ovn-controller`). On chassis A, a QEMU (TCG)
//! Linux guest sits on a `dpdkvhostuser` port of the integration bridge
//! that ovn-controller created, bound to a logical switch port through
//! `external_ids:iface-id`, beside A's namespace VM.
//!
//! Checks: the guest's port is bound on chassis A, reports `up` in the SB
//! and gets `ovn-installed` from ovn-controller; the guest pings the
//! namespace VM of chassis B through OVN's pipeline and the Geneve tunnel,
//! and B's VM pings the guest back; A's datapath pushed a tunnel header for
//! the guest's frames; neither ovn-controller receives an OpenFlow error.
//!
//! Run under the e2e lock: `flock /tmp/ferrovs-e2e.lock cargo test -p
//! ferrovs-tests --test ovn_qemu_guest`.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use ferrovs_tests::ovn::{Encap, OvnCentral, SwitchKind, two_chassis};
use ferrovs_tests::*;

const BOOT: Duration = Duration::from_secs(240);
const GUEST_MAC: &str = "52:54:00:96:00:03";
const GUEST_IP: &str = "10.96.0.3";

#[test]
fn a_qemu_guest_on_vhost_user_under_ovn_is_installed_and_pings_a_vm_on_another_chassis_over_geneve()
-> Result<()> {
    require!(
        "qemu-system-x86_64",
        "ovn-northd",
        "ovn-controller",
        "ovsdb-server",
        "ping"
    );
    let t = "ofinq";
    let dir = tempfile::Builder::new().prefix("ferrovs-ovnq-").tempdir()?;
    let ovn = OvnCentral::start(dir.path())?;
    ovn.nbctl(&["ls-add", "ls"])?;
    for (lp, addr) in [
        ("lp-a", "00:00:00:00:96:01 10.96.0.1"),
        ("lp-b", "00:00:00:00:96:02 10.96.0.2"),
        ("lp-g", &format!("{GUEST_MAC} {GUEST_IP}")),
    ] {
        ovn.nbctl(&["lsp-add", "ls", lp, "--", "lsp-set-addresses", lp, addr])?;
        // Port security as a cloud sets it: only the guest's own MAC and IP.
        ovn.nbctl(&["lsp-set-port-security", lp, addr])?;
    }
    let (mut a, mut b) = two_chassis(
        t,
        &ovn,
        [SwitchKind::Ferrovs, SwitchKind::Ferrovs],
        Encap::Geneve,
        ["00:00:00:00:96:01", "00:00:00:00:96:02"],
        ["10.96.0.1/24", "10.96.0.2/24"],
    )?;
    ovn.bind_and_check(&[("lp-a", &a), ("lp-b", &b)])?;

    // The guest's port: dpdkvhostuser on A's integration bridge, the switch
    // listening in its run directory, bound to lp-g.
    let port = format!("{t}qa");
    a.sw.vsctl(&[
        "add-port",
        &a.int,
        &port,
        "--",
        "set",
        "Interface",
        &port,
        "type=dpdkvhostuser",
        "external_ids:iface-id=lp-g",
    ])?;
    let sock = a.sw.rundir().join(&port);
    if !wait_until(Duration::from_secs(10), || sock.exists()) {
        bail!("no vhost-user socket {}\n{}", sock.display(), a.diag());
    }
    if !wait_until(Duration::from_secs(30), || {
        ovn.bound_chassis("lp-g") == a.name
    }) {
        bail!(
            "lp-g not bound to {} (bound: {:?})\n{}",
            a.name,
            ovn.bound_chassis("lp-g"),
            a.diag()
        );
    }
    if !wait_until(Duration::from_secs(30), || a.installed(&port)) {
        bail!("{port} never got ovn-installed\n{}", a.diag());
    }
    let up = ovn.sbctl(&[
        "--bare",
        "--columns=up",
        "find",
        "Port_Binding",
        "logical_port=lp-g",
    ])?;
    assert_eq!(up.trim(), "true", "lp-g up");

    let args = format!("fv.ip={GUEST_IP}/24 fv.peer=10.96.0.2 fv.mode=ping,idle fv.count=5");
    let guest = QemuGuest::boot(VhostSocket::SwitchIsServer(&sock), GUEST_MAC, &args)?;
    guest
        .wait_result("ping-ok", BOOT)
        .map_err(|e| anyhow!("{e}\n{}\n{}", a.diag(), b.diag()))?;
    guest.wait_result("idle", BOOT)?;
    // And the other way, from B's namespace VM to the guest.
    if !b.vm.ping(GUEST_IP, 5) {
        bail!(
            "B's VM gets no replies from the guest\n{}\n{}",
            a.diag(),
            b.diag()
        );
    }
    // The guest's frames left A encapsulated by its datapath.
    let flows = a.sw.appctl(&["dpctl/dump-flows"])?;
    assert!(
        flows
            .lines()
            .any(|l| l.contains(GUEST_MAC) && l.contains("tnl_push(")),
        "{flows}"
    );
    a.assert_healthy()?;
    b.assert_healthy()?;
    Ok(())
}
