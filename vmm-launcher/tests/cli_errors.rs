//! The errors people hit when starting a VM: each has a clear message and a
//! non-zero exit status, and leaves no state directory or switch port behind.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_vmm-launcher");

fn launcher(rundir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("FERROVS_RUNDIR", rundir)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run vmm-launcher")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A file that passes the kernel sniffing (ELF64 magic) without being run.
fn fake_elf(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("fake-vmlinux");
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(b"\x7fELF\x02\x01\x01\0").unwrap();
    f.write_all(&[0u8; 600]).unwrap();
    p
}

fn no_state_left(rundir: &Path) {
    let vms = rundir.join("vms");
    let left: Vec<_> = std::fs::read_dir(&vms)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name())
                // `.NAME.lock`: the name lock, harmlessly left behind.
                .filter(|n| !n.to_string_lossy().starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "state left behind: {left:?}");
}

#[test]
fn missing_kernel_file_is_reported_with_its_path() {
    let d = tempfile::tempdir().unwrap();
    let o = launcher(
        d.path(),
        &["run", "--name", "a", "--kernel", "/nonexistent/vmm-bzImage"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("kernel image /nonexistent/vmm-bzImage"), "{e}");
    assert!(e.contains("No such file"), "{e}");
    no_state_left(d.path());
}

#[test]
fn a_file_that_is_not_a_kernel_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let txt = d.path().join("notes.txt");
    std::fs::write(&txt, "hello, this is not a kernel\n".repeat(100)).unwrap();
    let o = launcher(
        d.path(),
        &["run", "--name", "a", "--kernel", txt.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("is not a Linux kernel"), "{e}");
}

#[test]
fn memory_below_the_minimum_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let k = fake_elf(d.path());
    let o = launcher(
        d.path(),
        &[
            "run",
            "--name",
            "a",
            "--kernel",
            k.to_str().unwrap(),
            "--memory",
            "4M",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("memory size 4 MiB is too small: at least 16 MiB"),
        "{e}"
    );
}

#[test]
fn unparsable_memory_size_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let o = launcher(
        d.path(),
        &["run", "--name", "a", "--kernel", "/k", "--memory", "lots"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid memory size 'lots'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_mac_is_a_usage_error_naming_the_mac() {
    let d = tempfile::tempdir().unwrap();
    for (mac, why) in [
        (
            "52:54:00:zz:00:01",
            "invalid MAC address '52:54:00:zz:00:01'",
        ),
        ("01:00:5e:00:00:01", "is a multicast address"),
    ] {
        let net = format!("br0,mac={mac}");
        let o = launcher(
            d.path(),
            &["run", "--name", "a", "--kernel", "/k", "--net", &net],
            &[],
        );
        assert_eq!(o.status.code(), Some(2), "{mac}");
        assert!(stderr(&o).contains(why), "{}", stderr(&o));
    }
}

#[test]
fn no_kvm_device_says_which_device_and_what_to_check() {
    let d = tempfile::tempdir().unwrap();
    let k = fake_elf(d.path());
    let o = launcher(
        d.path(),
        &[
            "run",
            "--name",
            "a",
            "--kernel",
            k.to_str().unwrap(),
            "--memory",
            "32M",
        ],
        &[("VMM_KVM_DEVICE", "/nonexistent/vmm-kvm")],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("cannot open /nonexistent/vmm-kvm"), "{e}");
    assert!(e.contains("is KVM enabled"), "{e}");
    no_state_left(d.path());
}

#[test]
fn no_such_bridge_reports_vsctls_message_and_cleans_up() {
    let d = tempfile::tempdir().unwrap();
    let k = fake_elf(d.path());
    // Stand-in for the config DB client: refuses the bridge like ovs-vsctl.
    let vsctl = d.path().join("vsctl");
    let log = d.path().join("vsctl.log");
    std::fs::write(
        &vsctl,
        format!(
            "#!/bin/sh\necho \"$@\" >> {log}\ncase \"$*\" in *add-port*) echo 'vsctl: no bridge named br9' >&2; exit 1;; esac\nexit 0\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&vsctl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = launcher(
        d.path(),
        &[
            "run",
            "--name",
            "web",
            "--kernel",
            k.to_str().unwrap(),
            "--memory",
            "32M",
            "--net",
            "br9",
        ],
        &[("FERROVS_VSCTL", vsctl.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("cannot add port vm-web-0 to bridge br9: vsctl: no bridge named br9"),
        "{e}"
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        calls.contains(&format!(
            "add-port br9 vm-web-0 -- set Interface vm-web-0 type=dpdkvhostuserclient options:vhost-server-path={}",
            d.path().join("vm-web-0").display()
        )),
        "{calls}"
    );
    assert!(
        !d.path().join("vm-web-0").exists(),
        "the launcher's listening socket was left behind"
    );
    no_state_left(d.path());
}

#[test]
fn switch_that_never_connects_is_reported_and_the_port_removed() {
    if !Path::new("/dev/kvm").exists() {
        eprintln!("skipped: no /dev/kvm");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let k = fake_elf(d.path());
    // The port is "added" but no switch ever connects to the launcher.
    let vsctl = d.path().join("vsctl");
    let log = d.path().join("vsctl.log");
    std::fs::write(
        &vsctl,
        format!("#!/bin/sh\necho \"$@\" >> {}\nexit 0\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&vsctl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let sock = d.path().join("vm-db-0");
    let o = launcher(
        d.path(),
        &[
            "run",
            "--name",
            "db",
            "--kernel",
            k.to_str().unwrap(),
            "--memory",
            "32M",
            "--net",
            "br0",
            "--port-timeout",
            "1",
        ],
        &[("FERROVS_VSCTL", vsctl.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("vhost-user socket {}", sock.display())),
        "{e}"
    );
    assert!(
        e.contains("no vhost-user backend connected within 1 s"),
        "{e}"
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        calls.contains("--if-exists del-port vm-db-0"),
        "port not removed: {calls}"
    );
    assert!(!sock.exists(), "listening socket left behind");
    no_state_left(d.path());
}

#[test]
fn a_vhost_sock_dir_outside_the_run_directory_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let k = fake_elf(d.path());
    let vsctl = d.path().join("vsctl");
    std::fs::write(
        &vsctl,
        "#!/bin/sh\ncase \"$*\" in *vhost-sock-dir*) echo '\"../elsewhere\"';; esac\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&vsctl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = launcher(
        d.path(),
        &[
            "run",
            "--name",
            "x",
            "--kernel",
            k.to_str().unwrap(),
            "--memory",
            "32M",
            "--net",
            "br0",
        ],
        &[("FERROVS_VSCTL", vsctl.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("other_config:vhost-sock-dir \"../elsewhere\""),
        "{}",
        stderr(&o)
    );
    no_state_left(d.path());
}

#[test]
fn missing_vhost_user_socket_is_reported() {
    if !Path::new("/dev/kvm").exists() {
        eprintln!("skipped: no /dev/kvm");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let k = fake_elf(d.path());
    let net = format!("vhost-user={}/vmm-none.sock", d.path().display());
    let o = launcher(
        d.path(),
        &[
            "run",
            "--name",
            "a",
            "--kernel",
            k.to_str().unwrap(),
            "--memory",
            "32M",
            "--net",
            &net,
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no such socket"), "{}", stderr(&o));
}

#[test]
fn lifecycle_commands_on_an_unknown_vm_fail_clearly() {
    let d = tempfile::tempdir().unwrap();
    for cmd in ["shutdown", "destroy", "console"] {
        let o = launcher(d.path(), &[cmd, "ghost"], &[]);
        assert_eq!(o.status.code(), Some(1), "{cmd}");
        assert!(
            stderr(&o).contains("domain 'ghost' not found"),
            "{cmd}: {}",
            stderr(&o)
        );
    }
    let o = launcher(d.path(), &["list"], &[]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("Name"));
}

#[test]
fn hugepage_shortage_is_reported_instead_of_crashing_later() {
    let reserved = std::fs::read_to_string("/proc/sys/vm/nr_hugepages").unwrap_or_default();
    if reserved.trim() != "0" || !Path::new("/dev/kvm").exists() {
        eprintln!("skipped: needs /dev/kvm and no reserved hugepages");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let k = fake_elf(d.path());
    let o = launcher(
        d.path(),
        &[
            "run",
            "--name",
            "a",
            "--kernel",
            k.to_str().unwrap(),
            "--memory",
            "64M",
            "--hugepages",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("cannot reserve 64 MiB of 2 MiB hugepages"),
        "{e}"
    );
    assert!(e.contains("nr_hugepages"), "{e}");
    no_state_left(d.path());
}

#[test]
fn bad_cpu_affinity_and_console_are_usage_errors() {
    let d = tempfile::tempdir().unwrap();
    let o = launcher(
        d.path(),
        &[
            "run",
            "--name",
            "a",
            "--kernel",
            "/k",
            "--cpu-affinity",
            "3-1",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid CPU list '3-1'"),
        "{}",
        stderr(&o)
    );
    let o = launcher(
        d.path(),
        &["run", "--name", "a", "--kernel", "/k", "--console", "pty"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("expected stdio or file:PATH"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn vm_names_that_are_not_safe_paths_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let k = fake_elf(d.path());
    let o = launcher(
        d.path(),
        &["run", "--name", "../etc", "--kernel", k.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("invalid VM name '../etc'"),
        "{}",
        stderr(&o)
    );
    no_state_left(d.path());
}
