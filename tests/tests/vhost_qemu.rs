//! Issue "vhost-user ports" acceptance with real Linux guests: QEMU (TCG)
//! runs Debian's kernel, whose virtio-net driver talks to ferrovs over
//! vhost-user, in both socket modes, and across restarts of either side.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use ferrovs_tests::*;

const BOOT: Duration = Duration::from_secs(180);

fn vhost_port(
    sw: &Switch,
    br: &str,
    name: &str,
    ofport: u32,
    client_path: Option<&PathBuf>,
) -> Result<()> {
    let req = format!("ofport_request={ofport}");
    match client_path {
        None => sw.vsctl(&[
            "add-port",
            br,
            name,
            "--",
            "set",
            "Interface",
            name,
            "type=dpdkvhostuser",
            &req,
        ])?,
        Some(p) => {
            let opt = format!("options:vhost-server-path={}", p.display());
            sw.vsctl(&[
                "add-port",
                br,
                name,
                "--",
                "set",
                "Interface",
                name,
                "type=dpdkvhostuserclient",
                &opt,
                &req,
            ])?
        }
    };
    Ok(())
}

/// Two guests on one bridge ping and run iperf; their virtio-net devices
/// use packed virtqueues if `packed`, and the ports must report the layout
/// the guests negotiated.
fn two_guests_ping_and_iperf(client_mode: bool, packed: bool) -> Result<()> {
    let tag = unique_tag();
    let sw = Switch::start()?;
    let br = format!("{tag}b");
    sw.vsctl(&["add-br", &br])?;
    let (pa, pb) = (format!("{tag}va"), format!("{tag}vb"));
    let (sa, sb);
    if client_mode {
        sa = sw.rundir().join("qa.sock");
        sb = sw.rundir().join("qb.sock");
        vhost_port(&sw, &br, &pa, 1, Some(&sa))?;
        vhost_port(&sw, &br, &pb, 2, Some(&sb))?;
    } else {
        vhost_port(&sw, &br, &pa, 1, None)?;
        vhost_port(&sw, &br, &pb, 2, None)?;
        sa = sw.rundir().join(&pa);
        sb = sw.rundir().join(&pb);
        assert!(
            wait_until(Duration::from_secs(10), || sa.exists() && sb.exists()),
            "switch did not create the vhost-user sockets"
        );
    }
    let sock = |p| {
        if client_mode {
            VhostSocket::QemuIsServer(p)
        } else {
            VhostSocket::SwitchIsServer(p)
        }
    };
    let dev = if packed { ",packed=on" } else { "" };
    let ga = QemuGuest::boot_with(
        sock(&sa),
        "52:54:00:61:00:01",
        "fv.ip=10.81.0.1/24 fv.mode=iperf-server",
        dev,
    )?;
    let gb = QemuGuest::boot_with(
        sock(&sb),
        "52:54:00:61:00:02",
        "fv.ip=10.81.0.2/24 fv.peer=10.81.0.1 fv.mode=ping,iperf-client fv.count=3 fv.secs=3",
        dev,
    )?;
    ga.wait_result("iperf-server-ready", BOOT)?;
    gb.wait_result("ping-ok", BOOT)
        .map_err(|e| anyhow::anyhow!("{e}\nswitch log:\n{}", sw.log_text()))?;
    // Both guests run now (each powers off once its part is done): the
    // ports report the ring layout their guest negotiated.
    let want = if packed { "packed" } else { "split" };
    for p in [&pb, &pa] {
        let layout = || {
            sw.vsctl(&["get", "Interface", p, "status:vring_layout"])
                .map(|l| l.trim().trim_matches('"').to_string())
                .unwrap_or_default()
        };
        assert!(
            wait_until(Duration::from_secs(30), || layout() == want),
            "{p}: vring_layout {:?}, not {want}",
            layout()
        );
    }
    // Read while both guests run (each powers off once its part is
    // done); the daemon writes link_state back about once a second.
    let mut state = String::new();
    for _ in 0..50 {
        state = sw.vsctl(&["get", "Interface", &pa, "link_state"])?;
        if state.trim() == "up" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        state.trim(),
        "up",
        "Interface error: {}\nswitch log:\n{}",
        sw.vsctl(&["get", "Interface", &pa, "error"])?.trim(),
        sw.log_text()
    );
    let line = gb.wait_result("iperf-ok", BOOT)?;
    assert!(line.contains("bits/sec"), "{line}");
    Ok(())
}

#[test]
fn two_linux_guests_ping_and_iperf_over_server_mode_vhost_user_ports() -> Result<()> {
    require!("qemu-system-x86_64");
    two_guests_ping_and_iperf(false, false)
}

#[test]
fn two_linux_guests_ping_and_iperf_over_packed_virtqueues_and_the_ports_report_packed() -> Result<()>
{
    require!("qemu-system-x86_64");
    two_guests_ping_and_iperf(false, true)
}

#[test]
fn two_linux_guests_ping_and_iperf_over_client_mode_vhost_user_ports() -> Result<()> {
    require!("qemu-system-x86_64");
    two_guests_ping_and_iperf(true, false)
}

#[test]
fn guest_and_namespace_host_ping_and_qemu_reconnects_after_vswitchd_restarts() -> Result<()> {
    require!("qemu-system-x86_64");
    let tag = unique_tag();
    let (sw, br, hosts) = bridge_with_hosts(&tag, 82, 1)?;
    let h = &hosts[0];
    let vp = format!("{tag}v");
    vhost_port(&sw, &br, &vp, 2, None)?;
    let sock = sw.rundir().join(&vp);
    assert!(wait_until(Duration::from_secs(10), || sock.exists()));
    let g = QemuGuest::boot(
        VhostSocket::SwitchIsServer(&sock),
        "52:54:00:62:00:02",
        "fv.ip=10.82.0.2/24 fv.mode=idle",
    )?;
    g.wait_result("idle", BOOT)?;
    assert!(
        h.ns.ping_eventually("10.82.0.2", Duration::from_secs(60)),
        "namespace cannot reach the guest; log:\n{}",
        sw.log_text()
    );

    // Restart vswitchd: QEMU (reconnect=1) comes back by itself.
    let sw = sw.kill_and_restart()?;
    assert!(
        h.ns.ping_eventually("10.82.0.2", Duration::from_secs(60)),
        "guest unreachable after vswitchd restart; log:\n{}",
        sw.log_text()
    );
    Ok(())
}

#[test]
fn client_mode_traffic_resumes_when_the_guests_qemu_restarts() -> Result<()> {
    require!("qemu-system-x86_64");
    let tag = unique_tag();
    let (sw, br, hosts) = bridge_with_hosts(&tag, 83, 1)?;
    let h = &hosts[0];
    let vp = format!("{tag}v");
    let sock = sw.rundir().join("guest.sock");
    vhost_port(&sw, &br, &vp, 2, Some(&sock))?;

    let g = QemuGuest::boot(
        VhostSocket::QemuIsServer(&sock),
        "52:54:00:63:00:02",
        "fv.ip=10.83.0.2/24 fv.mode=idle",
    )?;
    g.wait_result("idle", BOOT)?;
    assert!(
        h.ns.ping_eventually("10.83.0.2", Duration::from_secs(60)),
        "log:\n{}",
        sw.log_text()
    );
    drop(g);
    assert!(
        wait_until(Duration::from_secs(20), || sw
            .vsctl(&["get", "Interface", &vp, "link_state"])
            .map(|s| s.trim() == "down")
            .unwrap_or(false)),
        "link_state did not follow the guest going away"
    );

    // The VM restarts on the same socket; the switch reconnects by itself.
    let _ = std::fs::remove_file(&sock);
    let g = QemuGuest::boot(
        VhostSocket::QemuIsServer(&sock),
        "52:54:00:63:00:02",
        "fv.ip=10.83.0.2/24 fv.mode=idle",
    )?;
    g.wait_result("idle", BOOT)?;
    assert!(
        h.ns.ping_eventually("10.83.0.2", Duration::from_secs(60)),
        "no traffic after the guest restarted; log:\n{}",
        sw.log_text()
    );
    Ok(())
}
