//! Issue "vmm-launcher" acceptance against the real switch: the launcher
//! boots the freestanding test guest under KVM with `--net BRIDGE`, which
//! adds a vhost-user port through the config DB; the guest gets its MAC from
//! the device, resolves a namespace host by ARP and gets its pings answered
//! through the bridge; the port is gone when the VM ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferrovs_tests::*;

fn test_guest() -> Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vmm-launcher/test-guest/build.sh");
    let out = run(Command::new("sh").arg(script).env(
        "VMM_TEST_GUEST_TARGET_DIR",
        std::env::temp_dir().join("ferrovs-test-guest"),
    ))?;
    let p = PathBuf::from(out.trim());
    if !p.exists() {
        bail!("test guest not built: {out}");
    }
    Ok(p)
}

#[test]
fn launcher_boots_a_guest_onto_a_bridge_that_pings_a_namespace_host() -> Result<()> {
    if !is_root() || !Path::new("/dev/kvm").exists() {
        eprintln!("skipped: needs root and /dev/kvm");
        return Ok(());
    }
    let tag = unique_tag();
    let sw = Switch::start()?;
    let br = format!("{tag}b");
    sw.vsctl(&["add-br", &br])?;
    let h = VethHost::new(&tag, 1, "10.9.0.1/24")?;
    sw.vsctl(&["add-port", &br, &h.port])?;
    let guest = test_guest()?;

    let name = format!("{tag}g");
    let child = Command::new(bin("vmm-launcher"))
        .env("FERROVS_RUNDIR", sw.rundir())
        .env("FERROVS_VSCTL", bin("vsctl"))
        .args([
            "run",
            "--name",
            &name,
            "--memory",
            "64M",
            "--console",
            "stdio",
        ])
        .arg("--kernel")
        .arg(&guest)
        .args([
            "--cmdline",
            "testguest.mode=ping testguest.ip=10.9.0.10 testguest.peer=10.9.0.1 testguest.count=3",
        ])
        .args(["--net", &br])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning vmm-launcher")?;
    let mut vm = ChildGuard(Some(child));

    // The port appears in the DB while the VM runs.
    let port = format!("vm-{name}-0");
    let appeared = wait_until(Duration::from_secs(30), || {
        sw.vsctl(&["list-ports", &br])
            .map(|p| p.contains(&port))
            .unwrap_or(false)
    });
    let exited = wait_until(Duration::from_secs(240), || {
        matches!(vm.child().try_wait(), Ok(Some(_)))
    });
    let out = vm.wait_output()?;
    let serial = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        appeared,
        "port {port} never appeared on {br}; launcher: {stderr}"
    );
    assert!(
        exited,
        "guest did not finish; serial:\n{serial}\nlog:\n{}",
        sw.log_text()
    );
    assert!(
        serial.contains("TESTGUEST: arp ok 10.9.0.1"),
        "no ARP answer; serial:\n{serial}\nlauncher:\n{stderr}"
    );
    assert!(
        serial.contains("TESTGUEST: ping ok 3/3"),
        "pings not answered; serial:\n{serial}"
    );
    assert!(serial.contains("TESTGUEST: PASS"), "serial:\n{serial}");
    assert!(
        out.status.success(),
        "launcher exited {}: {stderr}",
        out.status
    );
    // The guest's MAC came from the device, and the bridge learned it.
    let mac = serial
        .lines()
        .find_map(|l| l.split("mac=").nth(1))
        .map(|m| m.split_whitespace().next().unwrap_or("").to_string())
        .unwrap_or_default();
    assert!(
        mac.starts_with("52:54:00:"),
        "guest did not report a device MAC: {serial}"
    );

    // The port is gone once the VM has ended, with no other command.
    assert!(
        wait_until(Duration::from_secs(10), || {
            sw.vsctl(&["list-ports", &br])
                .map(|p| !p.contains(&port))
                .unwrap_or(false)
        }),
        "port {port} left behind after the VM ended"
    );
    Ok(())
}
