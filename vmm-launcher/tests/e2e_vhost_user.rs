//! End to end under KVM: the test guest's virtio-net is served over
//! vhost-user by DPDK testpmd (net_vhost, the socket server) forwarding in
//! macswap mode, so every frame the guest sends comes back to it. Proves the
//! frontend's negotiation, memory table, ring addresses, kick ioeventfds and
//! the shared guest memory, in both attachment modes and both transports;
//! and, with testpmd wiring the guest to a veth in a network namespace, the
//! guest's ARP + ping against a Linux host.

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
        Self::start_with(socket, prefix, &[], "macswap")
    }

    /// testpmd with extra ports (`--vdev` values) forwarding in `fwd` mode.
    fn start_with(socket: &Path, prefix: &str, vdevs: &[String], fwd: &str) -> Testpmd {
        Self::start_mode(socket, prefix, vdevs, fwd, false)
    }

    /// testpmd as the vhost-user *client* of `socket` (connecting, and
    /// reconnecting, to a frontend that listens there).
    fn start_client(socket: &Path, prefix: &str) -> Testpmd {
        Self::start_mode(socket, prefix, &[], "macswap", true)
    }

    fn start_mode(
        socket: &Path,
        prefix: &str,
        vdevs: &[String],
        fwd: &str,
        client: bool,
    ) -> Testpmd {
        if !client {
            let _ = std::fs::remove_file(socket);
        }
        let mut args = vec![
            "--no-huge".to_string(),
            "-m".into(),
            "512".into(),
            "--no-pci".into(),
            format!("--file-prefix={prefix}"),
            "--vdev".into(),
            format!(
                "net_vhost0,iface={},queues=1{}",
                socket.display(),
                if client { ",client=1" } else { "" }
            ),
        ];
        for v in vdevs {
            args.push("--vdev".into());
            args.push(v.clone());
        }
        args.extend(["--".into(), "-i".into(), "--total-num-mbufs=16384".into()]);
        let mut child = Command::new("dpdk-testpmd")
            .args(&args)
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
        while !client && !socket.exists() && Instant::now() < deadline {
            if let Ok(Some(st)) = t.child.try_wait() {
                panic!("dpdk-testpmd exited early: {st}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            client || socket.exists(),
            "testpmd did not create {}",
            socket.display()
        );
        t.cmd(&format!("set fwd {fwd}"));
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

/// Boots the loop guest on `transport` with testpmd reflecting its frames.
fn loop_through_testpmd(transport: &str, tag: &str) {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let guest = build_test_guest().expect("build test guest");
    let pid = std::process::id();
    let socket = PathBuf::from(format!("/tmp/vmm-e2e-{tag}-{pid}.sock"));
    let pmd = Testpmd::start(&socket, &format!("vmm-e2e-{tag}-{pid}"));
    let rundir = tempfile::tempdir().unwrap();
    let net = format!(
        "vhost-user={},mac=52:54:00:e2:e0:01,transport={transport}",
        socket.display()
    );
    let cmdline = format!("testguest.mode=loop testguest.count=8 testguest.transport={transport}");
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
            &cmdline,
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
        run.serial.contains(&format!(
            "TESTGUEST: mac=52:54:00:e2:e0:01 ip=10.9.0.10 peer=10.9.0.1 transport={transport}"
        )),
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
fn guest_frames_go_through_a_vhost_user_backend_and_come_back() {
    if prerequisites() {
        loop_through_testpmd("mmio", "mmio");
    }
}

#[test]
fn virtio_pci_transport_carries_frames_through_the_backend_too() {
    if prerequisites() {
        loop_through_testpmd("pci", "pci");
    }
}

#[test]
fn bridge_attachment_adds_the_port_connects_to_its_socket_and_removes_it() {
    if !prerequisites() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let guest = build_test_guest().expect("build test guest");
    let pid = std::process::id();
    // The switch side of a dpdkvhostuserclient port: it connects to the
    // launcher's socket at $FERROVS_RUNDIR/PORT.
    let rundir = PathBuf::from(format!("/tmp/vmm-e2e-run-{pid}"));
    std::fs::create_dir_all(&rundir).unwrap();
    let sock = rundir.join("vm-vmm-br-0");
    let pmd = Testpmd::start_client(&sock, &format!("vmm-e2e-br-{pid}"));
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
    assert_eq!(lines.len(), 3, "{calls}");
    assert!(lines[0].ends_with("--if-exists get Open_vSwitch . other_config:vhost-sock-dir"));
    assert!(
        lines[1].ends_with(&format!(
            "add-port br-int vm-vmm-br-0 -- set Interface vm-vmm-br-0 type=dpdkvhostuserclient options:vhost-server-path={}",
            sock.display()
        )),
        "{calls}"
    );
    assert!(lines[2].ends_with("--if-exists del-port vm-vmm-br-0"));
}

/// A network namespace with one end of a veth pair (10.9.0.1/24); the other
/// end stays in the host for testpmd's af_packet port. Removed on drop.
struct NamespaceHost {
    ns: String,
    host_if: String,
}

impl NamespaceHost {
    fn create(tag: u32) -> Option<NamespaceHost> {
        let ns = format!("vmm-h{tag}");
        let host_if = format!("vmm-va{tag}");
        let peer_if = format!("vmm-vb{tag}");
        let h = NamespaceHost {
            ns: ns.clone(),
            host_if: host_if.clone(),
        };
        let steps: [Vec<&str>; 6] = [
            vec!["netns", "add", &ns],
            vec![
                "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if, "netns", &ns,
            ],
            vec!["-n", &ns, "addr", "add", "10.9.0.1/24", "dev", &peer_if],
            vec!["-n", &ns, "link", "set", &peer_if, "up"],
            vec!["-n", &ns, "link", "set", "lo", "up"],
            vec!["link", "set", &host_if, "up"],
        ];
        for args in steps {
            let ok = Command::new("ip")
                .args(&args)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!("skipped: cannot run ip {}", args.join(" "));
                return None;
            }
        }
        Some(h)
    }
}

impl Drop for NamespaceHost {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

#[test]
fn guest_resolves_and_pings_a_namespace_host_through_the_backend() {
    if !prerequisites() {
        return;
    }
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let guest = build_test_guest().expect("build test guest");
    let pid = std::process::id();
    let Some(host) = NamespaceHost::create(pid % 100_000) else {
        return;
    };
    let socket = PathBuf::from(format!("/tmp/vmm-e2e-ping-{pid}.sock"));
    // vhost-user port 0 <-> af_packet port 1 on the veth: a two-port wire.
    let pmd = Testpmd::start_with(
        &socket,
        &format!("vmm-e2e-ping-{pid}"),
        &[format!("net_af_packet0,iface={}", host.host_if)],
        "io",
    );
    let rundir = tempfile::tempdir().unwrap();
    let net = format!("vhost-user={},mac=52:54:00:e2:e0:02", socket.display());
    let run = run_launcher(
        Path::new(BIN),
        &[
            "run",
            "--name",
            "vmm-ping",
            "--kernel",
            guest.to_str().unwrap(),
            "--memory",
            "64M",
            "--cmdline",
            "testguest.mode=ping testguest.ip=10.9.0.10 testguest.peer=10.9.0.1",
            "--net",
            &net,
        ],
        &[("FERROVS_RUNDIR", rundir.path().to_str().unwrap())],
        Duration::from_secs(120),
    )
    .unwrap();
    drop(pmd);
    let neigh = Command::new("ip")
        .args(["-n", &host.ns, "neigh", "show", "10.9.0.10"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    drop(host);
    assert!(
        run.status.success(),
        "serial:\n{}\nstderr:\n{}",
        run.serial,
        run.stderr
    );
    assert!(
        run.serial.contains("TESTGUEST: arp ok 10.9.0.1 is "),
        "{}",
        run.serial
    );
    assert!(
        run.serial.contains("TESTGUEST: ping ok 3/3 replies"),
        "{}",
        run.serial
    );
    assert!(run.serial.contains("TESTGUEST: PASS"), "{}", run.serial);
    // The namespace host learnt the guest's MAC from its ARP request.
    assert!(
        neigh.contains("52:54:00:e2:e0:02"),
        "neighbour table: {neigh}"
    );
}
