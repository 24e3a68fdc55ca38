//! Issue 18 (reconnect): a launched VM's NIC survives a switch restart.
//!
//! The freestanding test guest pings a namespace host once every few
//! hundred milliseconds through a ferrovs bridge. vswitchd is killed with
//! SIGKILL and started again on the same DB and run directory; the guest's
//! link goes down and up (config-change interrupt) and its pings are
//! answered again, with no guest or launcher restart. Two ways:
//! - `--net BRIDGE`: the port is `dpdkvhostuserclient`, the launcher listens
//!   and the restarted switch connects to it again;
//! - `--net vhost-user=PATH` on a `dpdkvhostuser` port: the launcher
//!   reconnects with backoff to the socket the restarted switch recreates.
//!
//! The outage (kill to first answered ping) is printed; bench/README.md
//! records it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

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

/// The guest's serial console, line by line, with arrival times.
struct Serial {
    rx: Receiver<(Instant, String)>,
    lines: Vec<(Instant, String)>,
}

impl Serial {
    /// Waits until a line after index `from` satisfies `f`; returns its index.
    fn wait_for(
        &mut self,
        from: usize,
        timeout: Duration,
        f: impl Fn(&str) -> bool,
    ) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.lines.iter().skip(from).position(|(_, l)| f(l)) {
                return Some(from + i);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(l) => self.lines.push(l),
                Err(_) => return None,
            }
        }
    }

    fn text(&self) -> String {
        self.lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn spawn_launcher(sw: &Switch, name: &str, net: &str) -> Result<(ChildGuard, Serial)> {
    let transport = if net.contains("transport=pci") {
        "pci"
    } else {
        "mmio"
    };
    let guest = test_guest()?;
    let mut child = Command::new(bin("vmm-launcher"))
        .env("FERROVS_RUNDIR", sw.rundir())
        .env("FERROVS_VSCTL", bin("vsctl"))
        .env("RUST_LOG", "warn")
        .args(["run", "--name", name, "--memory", "64M"])
        .arg("--kernel")
        .arg(&guest)
        .arg("--cmdline")
        .arg(format!(
            "testguest.mode=pingloop testguest.ip=10.9.0.10 testguest.peer=10.9.0.1 testguest.count=100000 testguest.interval=300000000 testguest.transport={transport}"
        ))
        .args(["--net", net])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawning vmm-launcher")?;
    let out = child.stdout.take().context("launcher stdout")?;
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    Ok((
        ChildGuard(Some(child)),
        Serial {
            rx,
            lines: Vec::new(),
        },
    ))
}

fn is_reply(l: &str) -> bool {
    l.starts_with("TESTGUEST: reply ")
}

/// Kills the switch, restarts it on the same DB, and checks that the
/// guest's pings come back; returns (kill → restart, kill → first reply).
fn kill_restart_and_resume(
    sw: Switch,
    vm: &mut ChildGuard,
    serial: &mut Serial,
) -> Result<(Switch, Duration, Duration)> {
    let Switch {
        rundir,
        db,
        mut proc,
        ..
    } = sw;
    let before = serial.lines.len();
    let t_kill = Instant::now();
    proc.kill(); // SIGKILL
    let down = serial.wait_for(before, Duration::from_secs(60), |l| {
        l.starts_with("TESTGUEST: link down")
    });
    assert!(
        down.is_some(),
        "guest never saw its link go down; serial:\n{}",
        serial.text()
    );
    let down = down.unwrap_or_default();
    assert!(
        serial.lines[down].1.contains("(config interrupt)"),
        "link change without a config interrupt: {}",
        serial.lines[down].1
    );
    let sw = Switch::start_in(rundir, db)?;
    let t_restart = Instant::now();
    let up = serial.wait_for(down, Duration::from_secs(90), |l| {
        l.starts_with("TESTGUEST: link up")
    });
    assert!(
        up.is_some(),
        "guest's link did not come back; serial:\n{}\nswitch log:\n{}",
        serial.text(),
        sw.log_text()
    );
    let up = up.unwrap_or_default();
    let reply = serial.wait_for(up, Duration::from_secs(90), is_reply);
    assert!(
        reply.is_some(),
        "pings not answered after the restart; serial:\n{}\nswitch log:\n{}",
        serial.text(),
        sw.log_text()
    );
    let t_reply = serial.lines[reply.unwrap_or_default()].0;
    // A few more, to show it is steady.
    let again = serial.wait_for(
        reply.unwrap_or_default() + 1,
        Duration::from_secs(60),
        is_reply,
    );
    assert!(again.is_some(), "only one ping answered after the restart");
    assert!(
        matches!(vm.child().try_wait(), Ok(None)),
        "the launcher exited"
    );
    let starts = serial
        .lines
        .iter()
        .filter(|(_, l)| l.starts_with("TESTGUEST: start"))
        .count();
    assert_eq!(starts, 1, "the guest restarted:\n{}", serial.text());
    Ok((sw, t_restart - t_kill, t_reply - t_kill))
}

fn setup(tag: &str) -> Result<(Switch, String, VethHost)> {
    let sw = Switch::start()?;
    let br = format!("{tag}b");
    sw.vsctl(&["add-br", &br])?;
    let h = VethHost::new(tag, 1, "10.9.0.1/24")?;
    sw.vsctl(&["add-port", &br, &h.port])?;
    Ok((sw, br, h))
}

fn stop(mut vm: ChildGuard) {
    if let Some(c) = vm.0.as_ref() {
        let _ = nix_kill_term(c.id());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if matches!(vm.child().try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    vm.kill();
}

fn nix_kill_term(pid: u32) -> Result<()> {
    run(Command::new("kill").args(["-TERM", &pid.to_string()]))?;
    Ok(())
}

#[test]
fn bridge_nic_survives_a_switch_kill_and_restart_as_a_client_mode_port() -> Result<()> {
    if !is_root() || !Path::new("/dev/kvm").exists() {
        eprintln!("skipped: needs root and /dev/kvm");
        return Ok(());
    }
    let tag = unique_tag();
    let (sw, br, _h) = setup(&tag)?;
    // Sockets go to the switch's vhost-sock-dir.
    sw.vsctl(&[
        "set",
        "Open_vSwitch",
        ".",
        "other_config:vhost-sock-dir=vmm-socks",
    ])?;
    let name = format!("{tag}r");
    let (mut vm, mut serial) = spawn_launcher(&sw, &name, &br)?;
    let port = format!("vm-{name}-0");
    let first = serial.wait_for(0, Duration::from_secs(180), is_reply);
    assert!(
        first.is_some(),
        "no ping answered before the restart; serial:\n{}\nlog:\n{}",
        serial.text(),
        sw.log_text()
    );
    let sock = sw.rundir().join("vmm-socks").join(&port);
    assert!(
        sock.exists(),
        "the launcher's socket is not in vhost-sock-dir: {}",
        sock.display()
    );
    let ty = sw.vsctl(&["get", "Interface", &port, "type"])?;
    assert_eq!(ty.trim().trim_matches('"'), "dpdkvhostuserclient");
    let path = sw.vsctl(&["get", "Interface", &port, "options:vhost-server-path"])?;
    assert_eq!(path.trim().trim_matches('"'), sock.display().to_string());

    let (sw, restart, gap) = kill_restart_and_resume(sw, &mut vm, &mut serial)?;
    eprintln!(
        "reconnect (dpdkvhostuserclient): switch restarted {:.2} s after the kill; first answered ping {:.2} s after the kill",
        restart.as_secs_f64(),
        gap.as_secs_f64()
    );
    stop(vm);
    assert!(
        wait_until(Duration::from_secs(10), || {
            sw.vsctl(&["list-ports", &br])
                .map(|p| !p.contains(&port))
                .unwrap_or(false)
        }),
        "port {port} left behind after the VM ended"
    );
    assert!(!sock.exists(), "socket {} left behind", sock.display());
    Ok(())
}

#[test]
fn vhost_user_nic_reconnects_with_backoff_to_a_restarted_server_port() -> Result<()> {
    if !is_root() || !Path::new("/dev/kvm").exists() {
        eprintln!("skipped: needs root and /dev/kvm");
        return Ok(());
    }
    let tag = unique_tag();
    let (sw, br, _h) = setup(&tag)?;
    let port = format!("{tag}v");
    sw.vsctl(&[
        "add-port",
        &br,
        &port,
        "--",
        "set",
        "Interface",
        &port,
        "type=dpdkvhostuser",
    ])?;
    let sock = sw.rundir().join(&port);
    assert!(
        wait_until(Duration::from_secs(20), || sock.exists()),
        "switch did not create {}",
        sock.display()
    );
    let name = format!("{tag}c");
    let (mut vm, mut serial) =
        spawn_launcher(&sw, &name, &format!("vhost-user={}", sock.display()))?;
    let first = serial.wait_for(0, Duration::from_secs(180), is_reply);
    assert!(
        first.is_some(),
        "no ping answered before the restart; serial:\n{}\nlog:\n{}",
        serial.text(),
        sw.log_text()
    );
    let (_sw, restart, gap) = kill_restart_and_resume(sw, &mut vm, &mut serial)?;
    eprintln!(
        "reconnect (dpdkvhostuser, launcher as client): switch restarted {:.2} s after the kill; first answered ping {:.2} s after the kill",
        restart.as_secs_f64(),
        gap.as_secs_f64()
    );
    stop(vm);
    Ok(())
}

#[test]
fn a_virtio_pci_nic_sees_the_link_flap_through_its_isr_and_resumes() -> Result<()> {
    if !is_root() || !Path::new("/dev/kvm").exists() {
        eprintln!("skipped: needs root and /dev/kvm");
        return Ok(());
    }
    let tag = unique_tag();
    let (sw, br, _h) = setup(&tag)?;
    let name = format!("{tag}p");
    let (mut vm, mut serial) = spawn_launcher(&sw, &name, &format!("{br},transport=pci"))?;
    let first = serial.wait_for(0, Duration::from_secs(180), is_reply);
    assert!(
        first.is_some(),
        "no ping answered before the restart; serial:\n{}",
        serial.text()
    );
    assert!(serial.text().contains("transport=pci"), "{}", serial.text());
    let (_sw, _, gap) = kill_restart_and_resume(sw, &mut vm, &mut serial)?;
    eprintln!(
        "reconnect (virtio-pci, dpdkvhostuserclient): first answered ping {:.2} s after the kill",
        gap.as_secs_f64()
    );
    stop(vm);
    Ok(())
}
