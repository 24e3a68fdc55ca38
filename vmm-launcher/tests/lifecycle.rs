//! VM lifecycle in virsh's habits, with the test guest under KVM: the state
//! directory and `list`, the console socket, `shutdown`, `destroy`, and the
//! guest's own poweroff.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vmm_launcher::testsupport::{build_test_guest, wait_with_timeout};

const BIN: &str = env!("CARGO_BIN_EXE_vmm-launcher");

fn kvm_available() -> bool {
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if !ok {
        eprintln!("skipped: /dev/kvm not usable");
    }
    ok
}

fn start_echo_guest(rundir: &Path, name: &str, console: &Path) -> (Child, PathBuf) {
    start_echo_guest_with(rundir, name, console, &[])
}

fn start_echo_guest_with(
    rundir: &Path,
    name: &str,
    console: &Path,
    extra: &[&str],
) -> (Child, PathBuf) {
    let guest = build_test_guest().expect("build test guest");
    let console_arg = format!("file:{}", console.display());
    let child = Command::new(BIN)
        .args([
            "run",
            "--name",
            name,
            "--kernel",
            guest.to_str().unwrap(),
            "--memory",
            "32M",
            "--cpus",
            "2",
            "--cmdline",
            "testguest.mode=echo",
            "--console",
            &console_arg,
        ])
        .args(extra)
        .env("FERROVS_RUNDIR", rundir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, guest)
}

fn wait_for_text(path: &Path, text: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        if s.contains(text) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cli(rundir: &Path, args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut c = Command::new(BIN)
        .args(args)
        .env("FERROVS_RUNDIR", rundir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin).unwrap();
    c.wait_with_output().unwrap()
}

#[test]
fn running_vm_is_listed_reachable_on_its_console_and_shuts_down_cleanly() {
    if !kvm_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let console = d.path().join("console.log");
    let (mut child, _) = start_echo_guest(d.path(), "vmm-life", &console);
    let out = wait_for_text(&console, "echo ready", Duration::from_secs(30));
    assert!(out.contains("TESTGUEST: echo ready"), "console: {out:?}");

    let state = d.path().join("vms/vmm-life");
    assert_eq!(
        std::fs::read_to_string(state.join("pid")).unwrap().trim(),
        child.id().to_string()
    );
    let list = cli(d.path(), &["list"], b"");
    let text = String::from_utf8_lossy(&list.stdout);
    let row = text
        .lines()
        .find(|l| l.contains("vmm-life"))
        .expect("listed");
    assert!(row.contains("running"), "{row}");
    assert!(row.contains(&child.id().to_string()), "{row}");
    assert!(row.contains(" 2 "), "vCPUs: {row}");
    assert!(row.contains("32Mi"), "memory: {row}");

    // Typed characters reach the guest, which echoes them back.
    let con = cli(d.path(), &["console", "vmm-life"], b"ping-me");
    assert!(
        con.status.success(),
        "{}",
        String::from_utf8_lossy(&con.stderr)
    );
    assert!(String::from_utf8_lossy(&con.stdout).contains("ping-me"));

    let sd = cli(d.path(), &["shutdown", "vmm-life"], b"");
    assert!(
        sd.status.success(),
        "{}",
        String::from_utf8_lossy(&sd.stderr)
    );
    assert!(String::from_utf8_lossy(&sd.stdout).contains("Domain 'vmm-life' is being shutdown"));
    let (st, timed_out) = wait_with_timeout(&mut child, Duration::from_secs(20)).unwrap();
    assert!(!timed_out && st.success(), "launcher exit: {st:?}");
    assert!(!state.exists(), "state directory removed");
}

#[test]
fn destroy_kills_the_launcher_and_removes_its_state() {
    if !kvm_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let console = d.path().join("console.log");
    let (mut child, _) = start_echo_guest(d.path(), "vmm-gone", &console);
    wait_for_text(&console, "echo ready", Duration::from_secs(30));
    let out = cli(d.path(), &["destroy", "vmm-gone"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Domain 'vmm-gone' destroyed"));
    let (st, timed_out) = wait_with_timeout(&mut child, Duration::from_secs(10)).unwrap();
    assert!(!timed_out);
    assert!(!st.success(), "killed, not a clean exit");
    assert!(!d.path().join("vms/vmm-gone").exists());
}

#[test]
fn guest_poweroff_ends_the_launcher_with_success() {
    if !kvm_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let console = d.path().join("console.log");
    let (mut child, _) = start_echo_guest(d.path(), "vmm-off", &console);
    wait_for_text(&console, "echo ready", Duration::from_secs(30));
    // 'q' makes the guest reset through the i8042.
    let con = cli(d.path(), &["console", "vmm-off"], b"q");
    assert!(con.status.success());
    let (st, timed_out) = wait_with_timeout(&mut child, Duration::from_secs(20)).unwrap();
    assert!(!timed_out && st.success(), "{st:?}");
    let out = std::fs::read_to_string(&console).unwrap();
    assert!(out.contains("TESTGUEST: bye"), "{out}");
    assert!(!d.path().join("vms/vmm-off").exists());
}

#[test]
fn a_second_vm_with_the_same_name_is_refused() {
    if !kvm_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let console = d.path().join("console.log");
    let (mut child, guest) = start_echo_guest(d.path(), "vmm-dup", &console);
    wait_for_text(&console, "echo ready", Duration::from_secs(30));
    let out = cli(
        d.path(),
        &[
            "run",
            "--name",
            "vmm-dup",
            "--kernel",
            guest.to_str().unwrap(),
            "--memory",
            "32M",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("domain 'vmm-dup' is already running"), "{e}");
    assert!(
        d.path().join("vms/vmm-dup/pid").exists(),
        "first VM's state kept"
    );
    cli(d.path(), &["destroy", "vmm-dup"], b"");
    let _ = wait_with_timeout(&mut child, Duration::from_secs(10));
}

#[test]
fn shutdown_asks_the_guest_on_its_console_and_the_guest_powers_off() {
    if !kvm_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let console = d.path().join("console.log");
    // The echo guest powers off when it reads 'q'.
    let (mut child, _) = start_echo_guest_with(
        d.path(),
        "vmm-ask",
        &console,
        &["--shutdown-console", "q", "--shutdown-timeout", "30"],
    );
    wait_for_text(&console, "echo ready", Duration::from_secs(30));
    let sd = cli(d.path(), &["shutdown", "vmm-ask"], b"");
    assert!(
        sd.status.success(),
        "{}",
        String::from_utf8_lossy(&sd.stderr)
    );
    let (st, timed_out) = wait_with_timeout(&mut child, Duration::from_secs(40)).unwrap();
    assert!(!timed_out && st.success(), "{st:?}");
    let out = std::fs::read_to_string(&console).unwrap();
    assert!(out.contains("TESTGUEST: bye"), "guest was not asked: {out}");
    assert!(!d.path().join("vms/vmm-ask").exists());
}

#[test]
fn vcpu_threads_are_pinned_to_the_requested_host_cpus() {
    if !kvm_available() {
        return;
    }
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let target = ncpu - 1;
    let d = tempfile::tempdir().unwrap();
    let console = d.path().join("console.log");
    let list = target.to_string();
    let (mut child, _) =
        start_echo_guest_with(d.path(), "vmm-pin", &console, &["--cpu-affinity", &list]);
    wait_for_text(&console, "echo ready", Duration::from_secs(30));
    // vcpu0 printed; vcpu1 may still be starting (named and pinned by its
    // own thread): look until both are there and pinned, or time runs out.
    let deadline = Instant::now() + Duration::from_secs(30);
    let pinned = loop {
        let pinned = vcpu_affinities(child.id());
        if (pinned.len() == 2 && pinned.iter().all(|(_, a)| *a == list))
            || Instant::now() > deadline
        {
            break pinned;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    cli(d.path(), &["destroy", "vmm-pin"], b"");
    let _ = wait_with_timeout(&mut child, Duration::from_secs(10));
    assert_eq!(pinned.len(), 2, "{pinned:?}");
    for (name, allowed) in pinned {
        assert_eq!(allowed, list, "{name}");
    }
}

/// The vCPU threads of process `pid` and the host CPUs each may run on.
fn vcpu_affinities(pid: u32) -> Vec<(String, String)> {
    let mut pinned = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return pinned;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim().starts_with("vcpu") {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            let allowed = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .unwrap_or_default()
                .trim()
                .to_string();
            pinned.push((comm.trim().to_string(), allowed));
        }
    }
    pinned
}
