//! The test guest against ferrovs' own vhost-user backend (vhost-port, the
//! switch as the socket server, i.e. a `dpdkvhostuser` port): every frame the
//! guest sends is received from the port and sent back into it.
//! `cargo test -p vmm-launcher --features switch-interop --test switch_interop`
#![cfg(feature = "switch-interop")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use datapath::packet::PacketBatch;
use datapath::port::{RxQueue, TxQueue};
use vhost_port::{VhostUserOptions, VhostUserPort};
use vmm_launcher::testsupport::{build_test_guest, run_launcher};

const BIN: &str = env!("CARGO_BIN_EXE_vmm-launcher");

#[test]
fn guest_frames_are_reflected_by_the_switchs_vhost_user_port() {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        eprintln!("skipped: /dev/kvm not usable");
        return;
    }
    let guest = build_test_guest().expect("build test guest");
    let socket = PathBuf::from(format!("/tmp/vmm-interop-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    let port = VhostUserPort::server("vm-interop-0", &socket, VhostUserOptions::default())
        .expect("vhost-user port");
    let mut rxq = port.rxq(0).expect("rx queue");
    let mut txq = port.txq(0);
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let reflector = std::thread::spawn(move || {
        let mut batch = PacketBatch::new();
        let mut reflected = 0usize;
        while !stop2.load(Ordering::Relaxed) {
            batch.clear();
            match rxq.rx_batch(&mut batch) {
                Ok(0) | Err(_) => std::thread::sleep(Duration::from_millis(1)),
                Ok(_) => {
                    for p in batch.packets_mut() {
                        if txq.send(p).is_ok() {
                            reflected += 1;
                        }
                    }
                    let _ = txq.flush();
                }
            }
        }
        reflected
    });
    let rundir = tempfile::tempdir().unwrap();
    let net = format!("vhost-user={},mac=52:54:00:e2:e0:03", socket.display());
    let run = run_launcher(
        Path::new(BIN),
        &[
            "run",
            "--name",
            "vmm-interop",
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
    stop.store(true, Ordering::Relaxed);
    let reflected = reflector.join().unwrap();
    drop(port);
    let _ = std::fs::remove_file(&socket);
    assert!(
        run.status.success(),
        "serial:\n{}\nstderr:\n{}",
        run.serial,
        run.stderr
    );
    assert!(
        run.serial.contains("TESTGUEST: loop 8/8 frames back"),
        "{}",
        run.serial
    );
    assert!(reflected >= 8, "port reflected {reflected} frames");
}
