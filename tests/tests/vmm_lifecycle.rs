//! Issue 18 (lifecycle) against the real switch: `info` shows a NIC with its
//! switch port and the switch's counters for it, and `reboot` keeps the
//! VM's identity — same launcher, same MAC, same port — while the rebooted
//! guest pings the namespace host again.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
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

fn launcher(sw: &Switch, args: &[&str]) -> Result<serde_json::Value> {
    let o = run_output(
        Command::new(bin("vmm-launcher"))
            .env("FERROVS_RUNDIR", sw.rundir())
            .env("FERROVS_VSCTL", bin("vsctl"))
            .arg("--format")
            .arg("json")
            .args(args),
    )?;
    if !o.status.success() {
        bail!(
            "vmm-launcher {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(serde_json::from_slice(&o.stdout)?)
}

#[test]
fn info_shows_the_port_and_its_counters_and_reboot_keeps_mac_and_port() -> Result<()> {
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
    let name = format!("{tag}l");
    let mut child = Command::new(bin("vmm-launcher"))
        .env("FERROVS_RUNDIR", sw.rundir())
        .env("FERROVS_VSCTL", bin("vsctl"))
        .args(["run", "--name", &name, "--memory", "64M"])
        .arg("--kernel")
        .arg(&guest)
        .args([
            "--cmdline",
            "testguest.mode=pingloop testguest.ip=10.9.0.10 testguest.peer=10.9.0.1 testguest.count=100000 testguest.interval=300000000",
        ])
        .args(["--net", &br])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawning vmm-launcher")?;
    let out = child.stdout.take().context("stdout")?;
    let mut vm = ChildGuard(Some(child));
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut serial: Vec<String> = Vec::new();
    let mut wait_for = |pred: &dyn Fn(&[String]) -> bool, secs: u64| -> Option<Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if pred(&serial) {
                return Some(serial.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            if let Ok(l) = rx.recv_timeout(left) {
                serial.push(l);
            }
        }
    };
    let replies = |s: &[String]| {
        s.iter()
            .filter(|l| l.starts_with("TESTGUEST: reply "))
            .count()
    };
    let s = wait_for(&|s| replies(s) >= 3, 180);
    assert!(s.is_some(), "no pings answered; log:\n{}", sw.log_text());

    // info: the NIC's port, bridge, link and the switch's counters.
    let port = format!("vm-{name}-0");
    let deadline = Instant::now() + Duration::from_secs(30);
    let info = loop {
        let info = launcher(&sw, &["info", &name])?;
        let rx = info["nics"][0]["counters"]["rx_packets"]
            .as_u64()
            .unwrap_or(0);
        if rx > 0 || Instant::now() > deadline {
            break info;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let nic = &info["nics"][0];
    assert_eq!(nic["port"], port.as_str(), "{info}");
    assert_eq!(nic["bridge"], br.as_str(), "{info}");
    assert_eq!(nic["link_up"], true, "{info}");
    assert!(
        nic["counters"]["rx_packets"].as_u64().unwrap_or(0) > 0
            && nic["counters"]["tx_packets"].as_u64().unwrap_or(0) > 0,
        "no switch counters for the port: {info}"
    );
    assert_eq!(info["state"], "running");
    let mac = nic["mac"].as_str().unwrap_or_default().to_string();
    let pid = info["pid"].clone();

    // reboot: the guest starts again with the same MAC on the same port.
    launcher(&sw, &["reboot", &name])?;
    let s = wait_for(
        &|s| {
            // A reply after the second boot.
            s.iter()
                .enumerate()
                .filter(|(_, l)| l.starts_with("TESTGUEST: start"))
                .nth(1)
                .is_some_and(|(i, _)| replies(&s[i..]) > 0)
        },
        180,
    );
    let s = s.unwrap_or_else(|| {
        panic!(
            "guest did not come back after reboot; log:\n{}",
            sw.log_text()
        )
    });
    let macs: Vec<&String> = s.iter().filter(|l| l.contains("mac=")).collect();
    assert_eq!(macs.len(), 2, "{s:?}");
    assert!(
        macs.iter().all(|l| l.contains(&format!("mac={mac} "))),
        "{macs:?}"
    );
    assert!(sw.vsctl(&["list-ports", &br])?.contains(&port));
    let info = launcher(&sw, &["info", &name])?;
    assert_eq!(info["pid"], pid, "the launcher was replaced");
    assert_eq!(info["nics"][0]["port"], port.as_str());

    launcher(&sw, &["destroy", &name])?;
    vm.kill();
    assert!(
        wait_until(Duration::from_secs(10), || {
            sw.vsctl(&["list-ports", &br])
                .map(|p| !p.contains(&port))
                .unwrap_or(false)
        }),
        "port {port} left behind"
    );
    Ok(())
}
