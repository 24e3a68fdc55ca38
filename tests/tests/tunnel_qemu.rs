//! Tunnels with a real guest (issue 14: "one of the VMs is a QEMU guest on
//! vhost-user"). Two ferrovs hypervisors as in `tunnels_forwarding`; on
//! hypervisor A, a QEMU (TCG) Linux guest sits on a vhost-user port of the
//! integration bridge beside A's namespace VM. The guest pings the
//! namespace VM of hypervisor B through the tunnel, then B's VM pings the
//! guest back.
//!
//! Run under the e2e lock: `flock /tmp/ferrovs-e2e.lock cargo test -p
//! ferrovs-tests --test tunnel_qemu`.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use ferrovs_tests::tunnel_hosts::*;
use ferrovs_tests::*;

const BOOT: Duration = Duration::from_secs(240);
const GUEST_IP: &str = "192.168.77.3";

fn ferrovs(h: &Hv) -> &Switch {
    match &h.sw {
        Sw::Ferrovs(s) => s,
        Sw::Ovs(_) => unreachable!("both hypervisors run ferrovs"),
    }
}

fn guest_pings_a_namespace_vm_over(t: &str, kind: &str, key: &str) -> Result<()> {
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
    // The guest's port: dpdkvhostuser, the switch listens in its rundir.
    let sa = ferrovs(&a);
    let port = format!("{t}qa");
    sa.vsctl(&[
        "add-port",
        &a.int,
        &port,
        "--",
        "set",
        "Interface",
        &port,
        "type=dpdkvhostuser",
        "ofport_request=3",
    ])?;
    let sock = sa.rundir().join(&port);
    if !wait_until(Duration::from_secs(10), || sock.exists()) {
        bail!("no vhost-user socket {}", sock.display());
    }
    let args = format!(
        "fv.ip={GUEST_IP}/24 fv.peer={} fv.mode=ping,idle fv.count=5",
        b.vm_ip()
    );
    let guest = QemuGuest::boot(
        VhostSocket::SwitchIsServer(&sock),
        "52:54:00:77:00:03",
        &args,
    )?;
    guest.wait_result("ping-ok", BOOT).map_err(|e| {
        anyhow!(
            "{e}\nA's datapath:\n{}\nA's neighbours:\n{}",
            sa.appctl(&["dpctl/dump-flows"]).unwrap_or_default(),
            sa.appctl(&["tnl/neigh/show"]).unwrap_or_default()
        )
    })?;
    guest.wait_result("idle", BOOT)?;
    // And the other way, from the namespace VM to the guest.
    if !b.vm.ping(GUEST_IP, 5) {
        bail!("B's VM gets no replies from the guest");
    }
    // The guest's frames were encapsulated by the datapath.
    let flows = sa.appctl(&["dpctl/dump-flows"])?;
    assert!(
        flows
            .lines()
            .any(|l| l.contains("52:54:00:77:00:03") && l.contains("tnl_push(")),
        "{flows}"
    );
    Ok(())
}

#[test]
fn a_qemu_guest_on_vhost_user_pings_a_vm_on_another_host_over_vxlan() -> Result<()> {
    require!("qemu-system-x86_64", "ping");
    guest_pings_a_namespace_vm_over("tnqx", "vxlan", "4343")
}

#[test]
fn a_qemu_guest_on_vhost_user_pings_a_vm_on_another_host_over_geneve() -> Result<()> {
    require!("qemu-system-x86_64", "ping");
    guest_pings_a_namespace_vm_over("tnqg", "geneve", "78")
}
