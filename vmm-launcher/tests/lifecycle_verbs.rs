//! Issue 18 (lifecycle): virsh's verbs with the test guest under KVM —
//! pause, resume, reboot, info, list --all, start of a kept definition,
//! undefine — with `--format json`, and their errors: an unknown name, a VM
//! in the wrong state, two launchers racing for one name.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
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

fn run_args(guest: &Path, name: &str, console: &Path) -> Vec<String> {
    vec![
        "run".into(),
        "--name".into(),
        name.into(),
        "--kernel".into(),
        guest.display().to_string(),
        "--memory".into(),
        "32M".into(),
        "--cpus".into(),
        "2".into(),
        "--cmdline".into(),
        "testguest.mode=echo".into(),
        "--console".into(),
        format!("file:{}", console.display()),
    ]
}

/// A launcher process, killed when the test ends, even by a panic (else
/// it would outlive the test).
struct Launcher(Option<Child>);

impl Launcher {
    /// The process, no longer killed on drop.
    fn into_child(mut self) -> Child {
        self.0.take().expect("a launcher")
    }
}

impl std::ops::Deref for Launcher {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("a launcher")
    }
}

impl std::ops::DerefMut for Launcher {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("a launcher")
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut()
            && matches!(c.try_wait(), Ok(None))
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(rundir: &Path, args: &[String]) -> Launcher {
    Launcher(Some(
        Command::new(BIN)
            .args(args)
            .env("FERROVS_RUNDIR", rundir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ))
}

fn start_echo(rundir: &Path, name: &str, extra: &[&str]) -> (Launcher, PathBuf, PathBuf) {
    let guest = build_test_guest().expect("build test guest");
    let console = rundir.join(format!("{name}.console"));
    let mut args = run_args(&guest, name, &console);
    args.extend(extra.iter().map(|s| s.to_string()));
    let child = spawn(rundir, &args);
    let out = wait_for_count(
        &console,
        "TESTGUEST: echo ready",
        1,
        Duration::from_secs(30),
    );
    assert!(out.contains("echo ready"), "guest did not start: {out:?}");
    (child, guest, console)
}

fn wait_for_count(path: &Path, text: &str, n: usize, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        if s.matches(text).count() >= n || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cli(rundir: &Path, args: &[&str]) -> Output {
    cli_in(rundir, args, b"")
}

fn cli_in(rundir: &Path, args: &[&str], stdin: &[u8]) -> Output {
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

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected failure: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

fn row_state(rundir: &Path, name: &str, all: bool) -> Option<String> {
    let mut args = vec!["--format", "json", "list"];
    if all {
        args.push("--all");
    }
    let v = json(&cli(rundir, &args));
    v.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .map(|r| r["state"].as_str().unwrap().to_string())
}

#[test]
fn pause_stops_the_vcpus_until_resume_and_wrong_states_are_refused() {
    if !kvm_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let (mut child, _, console) = start_echo(d.path(), "vmm-pause", &[]);

    assert_eq!(
        ok(&cli(d.path(), &["pause", "vmm-pause"])).trim(),
        "Domain 'vmm-pause' suspended"
    );
    assert_eq!(
        row_state(d.path(), "vmm-pause", false).as_deref(),
        Some("paused")
    );
    let info = json(&cli(d.path(), &["--format", "json", "info", "vmm-pause"]));
    assert_eq!(info["state"], "paused");
    let e = err(&cli(d.path(), &["pause", "vmm-pause"]));
    assert!(e.contains("domain 'vmm-pause' is already paused"), "{e}");

    // Typed while paused: nobody runs to echo it...
    cli_in(
        d.path(),
        &["console", "vmm-pause"],
        b"zx-typed-while-stopped",
    );
    let text = std::fs::read_to_string(&console).unwrap();
    assert!(!text.contains("zx-typed"), "a paused guest echoed: {text}");
    // ...until the VM resumes.
    let v = json(&cli(d.path(), &["--format", "json", "resume", "vmm-pause"]));
    assert_eq!(
        v,
        serde_json::json!({"name": "vmm-pause", "state": "running"})
    );
    let text = wait_for_count(&console, "zx-typed", 1, Duration::from_secs(30));
    assert!(text.contains("zx-typed"), "no echo after resume: {text}");
    let e = err(&cli(d.path(), &["resume", "vmm-pause"]));
    assert!(e.contains("domain 'vmm-pause' is not paused"), "{e}");
    // Errors are JSON too with --format json.
    let o = cli(d.path(), &["--format", "json", "resume", "vmm-pause"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        json(&o)["error"]
            .as_str()
            .unwrap()
            .contains("is not paused")
    );

    ok(&cli(d.path(), &["destroy", "vmm-pause"]));
    let _ = wait_with_timeout(&mut child, Duration::from_secs(10));
}

#[test]
fn reboot_boots_the_guest_again_in_the_same_launcher() {
    if !kvm_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let (mut child, _, console) = start_echo(d.path(), "vmm-reboot", &[]);
    // A paused VM can be rebooted too, and runs afterwards.
    ok(&cli(d.path(), &["pause", "vmm-reboot"]));
    assert_eq!(
        ok(&cli(d.path(), &["reboot", "vmm-reboot"])).trim(),
        "Domain 'vmm-reboot' is being rebooted"
    );
    let text = wait_for_count(
        &console,
        "TESTGUEST: echo ready",
        2,
        Duration::from_secs(30),
    );
    assert_eq!(text.matches("TESTGUEST: start").count(), 2, "{text}");
    assert_eq!(text.matches("TESTGUEST: echo ready").count(), 2, "{text}");
    let info = json(&cli(d.path(), &["--format", "json", "info", "vmm-reboot"]));
    assert_eq!(info["state"], "running");
    assert_eq!(info["pid"], child.id(), "same launcher");
    // The rebooted guest works: it echoes.
    cli_in(d.path(), &["console", "vmm-reboot"], b"after-reboot");
    let text = wait_for_count(&console, "after-reboot", 1, Duration::from_secs(30));
    assert!(text.contains("after-reboot"), "{text}");
    assert!(matches!(child.try_wait(), Ok(None)), "launcher exited");
    ok(&cli(d.path(), &["destroy", "vmm-reboot"]));
    let _ = wait_with_timeout(&mut child, Duration::from_secs(10));
}

#[test]
fn a_persistent_vm_is_kept_shut_off_started_again_and_undefined() {
    if !kvm_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let disk = d.path().join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let disk_arg = format!("{},serial=PDISK", disk.display());
    let (mut child, _, console) =
        start_echo(d.path(), "vmm-pers", &["--persistent", "--disk", &disk_arg]);
    let first_pid = child.id();
    let info = json(&cli(d.path(), &["--format", "json", "info", "vmm-pers"]));
    assert_eq!(info["persistent"], true);
    assert_eq!(info["vcpus"], 2);
    assert_eq!(info["memory_mib"], 32);
    assert_eq!(info["disks"][0]["serial"], "PDISK");
    assert_eq!(info["disks"][0]["format"], "raw");
    assert!(info["uptime_secs"].is_u64());
    let text = ok(&cli(d.path(), &["info", "vmm-pers"]));
    assert!(text.contains("State:          running"), "{text}");
    assert!(text.contains("serial=PDISK"), "{text}");

    ok(&cli(d.path(), &["shutdown", "vmm-pers"]));
    let _ = wait_with_timeout(&mut child, Duration::from_secs(10));
    // Gone from the active list, kept in --all.
    assert_eq!(row_state(d.path(), "vmm-pers", false), None);
    assert_eq!(
        row_state(d.path(), "vmm-pers", true).as_deref(),
        Some("shut off")
    );
    let all = ok(&cli(d.path(), &["list", "--all"]));
    assert!(
        all.lines()
            .any(|l| l.contains("vmm-pers") && l.contains("shut off")),
        "{all}"
    );
    let info = json(&cli(d.path(), &["--format", "json", "info", "vmm-pers"]));
    assert_eq!(info["state"], "shut off");
    assert!(info["pid"].is_null());
    for verb in ["pause", "resume", "reboot", "shutdown", "destroy"] {
        let e = err(&cli(d.path(), &[verb, "vmm-pers"]));
        assert!(
            e.contains("domain 'vmm-pers' is not running"),
            "{verb}: {e}"
        );
    }

    // start boots it again from the definition, in the background.
    let _ = std::fs::remove_file(&console);
    assert_eq!(
        ok(&cli(d.path(), &["start", "vmm-pers"])).trim(),
        "Domain 'vmm-pers' started"
    );
    let text = wait_for_count(
        &console,
        "TESTGUEST: echo ready",
        1,
        Duration::from_secs(30),
    );
    assert!(text.contains("echo ready"), "{text}");
    let info = json(&cli(d.path(), &["--format", "json", "info", "vmm-pers"]));
    assert_eq!(info["state"], "running");
    assert_ne!(info["pid"], first_pid);
    assert_eq!(info["disks"][0]["serial"], "PDISK", "same definition");
    let e = err(&cli(d.path(), &["start", "vmm-pers"]));
    assert!(e.contains("domain 'vmm-pers' is already running"), "{e}");
    let e = err(&cli(d.path(), &["undefine", "vmm-pers"]));
    assert!(e.contains("is running"), "{e}");

    let v = json(&cli(d.path(), &["--format", "json", "destroy", "vmm-pers"]));
    assert_eq!(v["state"], "shut off");
    assert_eq!(
        row_state(d.path(), "vmm-pers", true).as_deref(),
        Some("shut off")
    );
    ok(&cli(d.path(), &["undefine", "vmm-pers"]));
    assert_eq!(row_state(d.path(), "vmm-pers", true), None);
    let e = err(&cli(d.path(), &["info", "vmm-pers"]));
    assert!(e.contains("domain 'vmm-pers' not found"), "{e}");
}

#[test]
fn every_verb_names_an_unknown_domain_and_start_needs_a_kept_definition() {
    let d = tempfile::tempdir().unwrap();
    for verb in ["info", "pause", "resume", "reboot", "start", "undefine"] {
        let e = err(&cli(d.path(), &[verb, "ghost"]));
        assert!(e.contains("domain 'ghost' not found"), "{verb}: {e}");
        let o = cli(d.path(), &["--format", "json", verb, "ghost"]);
        assert_eq!(
            json(&o)["error"].as_str(),
            Some("domain 'ghost' not found"),
            "{verb}"
        );
    }
    assert_eq!(
        json(&cli(d.path(), &["--format", "json", "list", "--all"])),
        serde_json::json!([])
    );
}

#[test]
fn a_stopped_vm_without_persistent_cannot_be_started() {
    if !kvm_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let (mut child, _, _) = start_echo(d.path(), "vmm-once", &[]);
    // SIGKILL: the launcher leaves its state behind (shut off).
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        row_state(d.path(), "vmm-once", true).as_deref(),
        Some("shut off")
    );
    let e = err(&cli(d.path(), &["start", "vmm-once"]));
    assert!(e.contains("has no kept definition"), "{e}");
    ok(&cli(d.path(), &["destroy", "vmm-once"]));
    assert_eq!(row_state(d.path(), "vmm-once", true), None);
}

#[test]
fn of_two_launchers_racing_for_one_name_exactly_one_runs() {
    if !kvm_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let guest = build_test_guest().expect("build test guest");
    let a = run_args(&guest, "vmm-race", &d.path().join("a.console"));
    let b = run_args(&guest, "vmm-race", &d.path().join("b.console"));
    let mut ca = spawn(d.path(), &a);
    let mut cb = spawn(d.path(), &b);
    // One of them fails at once with a clear message; the other keeps running.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (loser, mut winner) = loop {
        if let Ok(Some(_)) = ca.try_wait() {
            break (ca, cb);
        }
        if let Ok(Some(_)) = cb.try_wait() {
            break (cb, ca);
        }
        assert!(Instant::now() < deadline, "both launchers kept running");
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = loser.into_child().wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("domain 'vmm-race' is already running")
            || e.contains("domain 'vmm-race' is being started by another launcher"),
        "{e}"
    );
    assert!(matches!(winner.try_wait(), Ok(None)), "the winner stopped");
    // The loser may have lost while the winner held the name but had not
    // yet written its record ("being started by another launcher"): wait
    // until the winner's record is there.
    let deadline = Instant::now() + Duration::from_secs(30);
    let info = loop {
        let info = json(&cli(d.path(), &["--format", "json", "info", "vmm-race"]));
        if !info["pid"].is_null() || Instant::now() > deadline {
            break info;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(info["pid"], winner.id(), "{info}");
    ok(&cli(d.path(), &["destroy", "vmm-race"]));
    let _ = wait_with_timeout(&mut winner, Duration::from_secs(10));
}
