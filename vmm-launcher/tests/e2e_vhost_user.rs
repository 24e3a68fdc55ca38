//! End to end under KVM: the test guest's virtio-net is served over
//! vhost-user by DPDK testpmd (net_vhost, the socket server) forwarding in
//! macswap mode, so every frame the guest sends comes back to it. Proves the
//! frontend's negotiation, memory table, ring addresses, kick ioeventfds and
//! the shared guest memory, in both attachment modes.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use vmm_launcher::testsupport::{build_test_guest, run_launcher, wait_with_timeout};

const BIN: &str = env!("CARGO_BIN_EXE_vmm-launcher");

/// One testpmd at a time: two busy pollers plus vCPUs starve a small host.
static SERIAL: Mutex<()> = Mutex::new(());

fn prerequisites() -> bool {
    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let testpmd = Command::new("dpdk-testpmd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !kvm || !testpmd {
        eprintln!("skipped: needs /dev/kvm ({kvm}) and dpdk-testpmd ({testpmd})");
    }
    kvm && testpmd
}

/// testpmd as the vhost-user backend on `socket`, reflecting frames.
struct Testpmd {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    prefix: String,
    socket: PathBuf,
}

impl Testpmd {
    fn start(socket: &Path, prefix: &str) -> Testpmd {
        let _ = std::fs::remove_file(socket);
        let mut child = Command::new("dpdk-testpmd")
            .args([
                "--no-huge",
                "-m",
                "512",
                "--no-pci",
                &format!("--file-prefix={prefix}"),
                "--vdev",
                &format!("net_vhost0,iface={},queues=1", socket.display()),
                "--",
                "-i",
                "--total-num-mbufs=16384",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dpdk-testpmd");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut t = Testpmd {
            child,
            stdin,
            lines,
            prefix: prefix.to_string(),
            socket: socket.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() && Instant::now() < deadline {
            if let Ok(Some(st)) = t.child.try_wait() {
                panic!("dpdk-testpmd exited early: {st}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            socket.exists(),
            "testpmd did not create {}",
            socket.display()
        );
        t.cmd("set fwd macswap");
        t.cmd("start");
        t
    }

    fn cmd(&mut self, c: &str) {
        writeln!(self.stdin, "{c}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Stops forwarding and returns the port's forwarded RX packet count.
    /// (testpmd's piped stdout is block-buffered: read it to the end.)
    fn stop_and_count_rx(mut self) -> u64 {
        self.cmd("stop");
        self.cmd("quit");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut rx = None;
        let mut in_port_stats = false;
        while Instant::now() < deadline && rx.is_none() {
            match self.lines.recv_timeout(Duration::from_millis(500)) {
                Ok(l) if l.contains("Forward statistics for port 0") => in_port_stats = true,
                Ok(l) if in_port_stats && l.contains("RX-packets:") => {
                    rx = l
                        .split_whitespace()
                        .nth(1)
                        .and_then(|n| n.parse::<u64>().ok());
                }
                Ok(_) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        rx.expect("testpmd forward statistics")
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        if wait_with_timeout(&mut self.child, Duration::from_secs(15)).is_err() {
            let _ = self.child.kill();
        }
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
    }
}

#[test]
fn guest_frames_go_through_a_vhost_user_backend_and_come_back() {
    if !prerequisites() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let guest = build_test_guest().expect("build test guest");
    let pid = std::process::id();
    let socket = PathBuf::from(format!("/tmp/vmm-e2e-{pid}.sock"));
    let pmd = Testpmd::start(&socket, &format!("vmm-e2e-{pid}"));
    let rundir = tempfile::tempdir().unwrap();
    let net = format!("vhost-user={},mac=52:54:00:e2:e0:01", socket.display());
    let run = run_launcher(
        Path::new(BIN),
        &[
            "run",
            "--name",
            "vmm-e2e",
            "--kernel",
            guest.to_str().unwrap(),
            "--memory",
            "64M",
            "--cmdline",
            "testguest.mode=loop testguest.count=8",
            "--net",
            &net,
        ],
        &[("FERROVS_RUNDIR", rundir.path().to_str().unwrap())],
        Duration::from_secs(120),
    )
    .unwrap();
    assert!(
        run.status.success() && !run.timed_out,
        "launcher: {:?}\nserial:\n{}\nstderr:\n{}",
        run.status,
        run.serial,
        run.stderr
    );
    assert!(
        run.serial.contains("TESTGUEST: mac=52:54:00:e2:e0:01"),
        "{}",
        run.serial
    );
    assert!(
        run.serial.contains("TESTGUEST: loop 8/8 frames back"),
        "{}",
        run.serial
    );
    assert!(run.serial.contains("TESTGUEST: PASS"), "{}", run.serial);
    let rx = pmd.stop_and_count_rx();
    assert!(rx >= 8, "testpmd received {rx} frames from the guest");
}

#[test]
fn bridge_attachment_adds_the_port_connects_to_its_socket_and_removes_it() {
    if !prerequisites() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let guest = build_test_guest().expect("build test guest");
    let pid = std::process::id();
    // The switch side of a dpdkvhostuser port: server at $FERROVS_RUNDIR/PORT.
    let rundir = PathBuf::from(format!("/tmp/vmm-e2e-run-{pid}"));
    std::fs::create_dir_all(&rundir).unwrap();
    let pmd = Testpmd::start(&rundir.join("vm-vmm-br-0"), &format!("vmm-e2e-br-{pid}"));
    // Config DB client stand-in: records the transactions.
    let vsctl = rundir.join("vsctl");
    let log = rundir.join("vsctl.log");
    std::fs::write(
        &vsctl,
        format!("#!/bin/sh\necho \"$@\" >> {}\nexit 0\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&vsctl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let run = run_launcher(
        Path::new(BIN),
        &[
            "run",
            "--name",
            "vmm-br",
            "--kernel",
            guest.to_str().unwrap(),
            "--memory",
            "64M",
            "--cmdline",
            "testguest.mode=loop testguest.count=4",
            "--net",
            "br-int",
        ],
        &[
            ("FERROVS_RUNDIR", rundir.to_str().unwrap()),
            ("FERROVS_VSCTL", vsctl.to_str().unwrap()),
        ],
        Duration::from_secs(120),
    )
    .unwrap();
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    drop(pmd);
    let _ = std::fs::remove_dir_all(&rundir);
    assert!(
        run.status.success(),
        "serial:\n{}\nstderr:\n{}",
        run.serial,
        run.stderr
    );
    assert!(
        run.serial.contains("TESTGUEST: loop 4/4 frames back"),
        "{}",
        run.serial
    );
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines.len(), 2, "{calls}");
    assert!(
        lines[0].ends_with(
            "add-port br-int vm-vmm-br-0 -- set Interface vm-vmm-br-0 type=dpdkvhostuser"
        )
    );
    assert!(lines[1].ends_with("--if-exists del-port vm-vmm-br-0"));
}
