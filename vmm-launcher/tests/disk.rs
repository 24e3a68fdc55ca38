//! Issue 18 (disks): `--disk PATH[,readonly][,format=raw|qcow2]` gives the
//! guest a virtio-blk device. The freestanding test guest reads a known
//! sector pattern, asks for the serial number, writes a sector, flushes,
//! discards, reads back; the host then finds the write in the image. A
//! qcow2 overlay (made by `qemu-img`) reads through to its raw backing
//! file; a read-only disk refuses the write with VIRTIO_BLK_S_IOERR;
//! malformed images are refused before the VM starts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vmm_launcher::testsupport::{LauncherRun, build_test_guest, run_launcher};

const BIN: &str = env!("CARGO_BIN_EXE_vmm-launcher");
const SECTOR: usize = 512;
const WRITE_SECTOR: usize = 8;

fn have_kvm() -> bool {
    if Path::new("/dev/kvm").exists() {
        true
    } else {
        eprintln!("skipped: no /dev/kvm");
        false
    }
}

/// Byte `j` of sector `k` of the pattern the guest checks.
fn pattern(k: usize, j: usize) -> u8 {
    match j {
        0..4 => b"FVS:"[j],
        4..8 => (k as u32).to_le_bytes()[j - 4],
        _ => ((k * 7 + j) & 0xff) as u8,
    }
}

/// Byte `j` of the sector the guest writes.
fn written(j: usize) -> u8 {
    match j {
        0..8 => b"GUESTWR!"[j],
        _ => 0xa5 ^ (j & 0xff) as u8,
    }
}

/// A 1 MiB raw image: the pattern in sectors 0..8, zeros after.
fn raw_image(dir: &Path, name: &str) -> PathBuf {
    let mut img = vec![0u8; 1 << 20];
    for k in 0..8 {
        for j in 0..SECTOR {
            img[k * SECTOR + j] = pattern(k, j);
        }
    }
    let p = dir.join(name);
    std::fs::write(&p, img).unwrap();
    p
}

fn sector(data: &[u8], k: usize) -> &[u8] {
    &data[k * SECTOR..(k + 1) * SECTOR]
}

fn run_disk_guest(dir: &Path, name: &str, disk: &str, transport: &str) -> LauncherRun {
    let guest = build_test_guest().expect("build test guest");
    let cmdline = format!(
        "testguest.mode=disk testguest.write={WRITE_SECTOR} testguest.transport={transport}"
    );
    let run = run_launcher(
        Path::new(BIN),
        &[
            "run",
            "--name",
            name,
            "--kernel",
            guest.to_str().unwrap(),
            "--memory",
            "64M",
            "--cmdline",
            &cmdline,
            "--disk",
            &format!("{disk},transport={transport}"),
        ],
        &[("FERROVS_RUNDIR", dir.to_str().unwrap())],
        Duration::from_secs(120),
    )
    .unwrap();
    assert!(
        !run.timed_out && run.status.success(),
        "launcher failed ({}):\nserial:\n{}\nstderr:\n{}",
        run.status,
        run.serial,
        run.stderr
    );
    run
}

fn expect(run: &LauncherRun, line: &str) {
    assert!(
        run.serial.lines().any(|l| l.trim_end() == line),
        "expected {line:?} on the console:\n{}",
        run.serial
    );
}

#[test]
fn guest_reads_the_pattern_writes_flushes_and_the_host_sees_the_write_in_a_raw_image() {
    if !have_kvm() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let img = raw_image(d.path(), "raw.img");
    let disk = format!("{},format=raw,serial=SN-RAW-1", img.display());
    let run = run_disk_guest(d.path(), "vmm-disk-raw", &disk, "mmio");
    expect(
        &run,
        "TESTGUEST: disk capacity 2048 sectors ro=0 flush=1 discard=1",
    );
    expect(&run, "TESTGUEST: disk get-id status 0");
    expect(&run, "TESTGUEST: disk serial SN-RAW-1");
    expect(&run, "TESTGUEST: disk read status 0");
    expect(&run, "TESTGUEST: disk pattern ok");
    expect(&run, "TESTGUEST: disk write status 0");
    expect(&run, "TESTGUEST: disk flush status 0");
    expect(&run, "TESTGUEST: disk discard status 0");
    expect(&run, "TESTGUEST: disk readback holds the write");
    expect(&run, "TESTGUEST: disk read-past-end status 1");
    expect(&run, "TESTGUEST: disk unknown-request status 2");
    expect(&run, "TESTGUEST: PASS");
    let data = std::fs::read(&img).unwrap();
    let want: Vec<u8> = (0..SECTOR).map(written).collect();
    assert_eq!(
        sector(&data, WRITE_SECTOR),
        &want[..],
        "write not in the image"
    );
    assert_eq!(sector(&data, 0)[..4], *b"FVS:", "pattern sector changed");
    assert_eq!(data.len(), 1 << 20, "image size changed");
}

fn qemu_img(args: &[&str]) -> std::process::Output {
    let o = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img (Debian qemu-utils; scripts/install-test-deps.sh)");
    assert!(
        o.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

#[test]
fn a_qcow2_overlay_reads_through_to_its_raw_base_and_keeps_the_write_on_pci() {
    if !have_kvm() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let base = raw_image(d.path(), "base.img");
    let overlay = d.path().join("overlay.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        base.to_str().unwrap(),
        "-F",
        "raw",
        overlay.to_str().unwrap(),
    ]);
    let base_before = std::fs::read(&base).unwrap();
    let disk = format!("{},format=qcow2", overlay.display());
    let run = run_disk_guest(d.path(), "vmm-disk-qcow", &disk, "pci");
    expect(
        &run,
        "TESTGUEST: disk capacity 2048 sectors ro=0 flush=1 discard=1",
    );
    expect(&run, "TESTGUEST: disk serial vmm-disk-qcow-d0");
    expect(&run, "TESTGUEST: disk pattern ok");
    expect(&run, "TESTGUEST: disk write status 0");
    expect(&run, "TESTGUEST: disk flush status 0");
    expect(&run, "TESTGUEST: disk readback holds the write");
    expect(&run, "TESTGUEST: PASS");
    // The base is untouched; the overlay holds the write and is consistent.
    assert_eq!(
        std::fs::read(&base).unwrap(),
        base_before,
        "base image changed"
    );
    qemu_img(&["check", "-q", overlay.to_str().unwrap()]);
    let flat = d.path().join("flat.raw");
    qemu_img(&[
        "convert",
        "-O",
        "raw",
        overlay.to_str().unwrap(),
        flat.to_str().unwrap(),
    ]);
    let data = std::fs::read(&flat).unwrap();
    let want: Vec<u8> = (0..SECTOR).map(written).collect();
    assert_eq!(
        sector(&data, WRITE_SECTOR),
        &want[..],
        "write not in the overlay"
    );
    for k in 0..WRITE_SECTOR {
        let p: Vec<u8> = (0..SECTOR).map(|j| pattern(k, j)).collect();
        assert_eq!(sector(&data, k), &p[..], "sector {k} not read through");
    }
}

#[test]
fn a_readonly_disk_refuses_the_write_with_ioerr_and_stays_unchanged() {
    if !have_kvm() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let img = raw_image(d.path(), "ro.img");
    let before = std::fs::read(&img).unwrap();
    let disk = format!("{},readonly", img.display());
    let run = run_disk_guest(d.path(), "vmm-disk-ro", &disk, "mmio");
    expect(
        &run,
        "TESTGUEST: disk capacity 2048 sectors ro=1 flush=1 discard=0",
    );
    expect(&run, "TESTGUEST: disk pattern ok");
    expect(&run, "TESTGUEST: disk write status 1");
    expect(&run, "TESTGUEST: disk flush status 0");
    expect(&run, "TESTGUEST: disk readback differs from the write");
    assert_eq!(
        std::fs::read(&img).unwrap(),
        before,
        "read-only image changed"
    );
}

#[test]
fn malformed_or_mislabelled_images_are_refused_before_the_vm_starts() {
    let d = tempfile::tempdir().unwrap();
    // A kernel the launcher accepts, so the disk is what fails.
    let kernel = d.path().join("k.elf");
    std::fs::copy("/proc/self/exe", &kernel).unwrap();
    let run = |disk: &str| {
        let o = Command::new(BIN)
            .args([
                "run", "--name", "vmm-bad", "--memory", "32M", "--disk", disk,
            ])
            .arg("--kernel")
            .arg(&kernel)
            .env("FERROVS_RUNDIR", d.path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // qcow2 magic, then a header that makes no sense (version 99).
    let bad = d.path().join("bad.qcow2");
    let mut h = b"QFI\xfb".to_vec();
    h.extend_from_slice(&99u32.to_be_bytes());
    h.resize(4096, 0xee);
    std::fs::write(&bad, &h).unwrap();
    let e = run(&format!("{},format=qcow2", bad.display()));
    assert!(
        e.contains(&format!("disk {}: not a valid qcow2 image", bad.display())),
        "{e}"
    );
    // A qcow2 file without format=: refused rather than exposed as raw.
    let ok_qcow = d.path().join("ok.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        ok_qcow.to_str().unwrap(),
        "1M",
    ]);
    let e = run(ok_qcow.to_str().unwrap());
    assert!(
        e.contains("the file is a qcow2 image; say format=qcow2"),
        "{e}"
    );
    // format=qcow2 on a raw file.
    let raw = raw_image(d.path(), "plain.img");
    let e = run(&format!("{},format=qcow2", raw.display()));
    assert!(e.contains("not a valid qcow2 image: no qcow2 magic"), "{e}");
    // A missing file.
    let e = run("/nonexistent/vmm-disk.img");
    assert!(
        e.contains("disk /nonexistent/vmm-disk.img: No such file"),
        "{e}"
    );
    // Nothing was left behind.
    let left: Vec<_> = std::fs::read_dir(d.path().join("vms"))
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name())
                .filter(|n| !n.to_string_lossy().starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
