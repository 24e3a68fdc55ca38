//! Issue 11 hardening: names that would be paths, socket files that are not
//! ours, two daemons on one run directory, file modes under any umask,
//! empty DB files, and the error messages of the CLIs.
//!
//! Each test runs its own vswitchd on its own run directory. Names that
//! reach outside the run directory are written with stock `ovs-vsctl`
//! (ferrovs's vsctl refuses them), as any DB client could.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use ferrovs_tests::*;

const T: Duration = Duration::from_secs(10);

fn ovs_vsctl(sw: &Switch, args: &[&str]) -> Result<String> {
    run(Command::new("ovs-vsctl")
        .arg(format!("--db={}", sw.db_remote()))
        .arg("--timeout=10")
        .arg("--no-wait")
        .args(args))
}

/// Waits until Interface `name` has an `error` containing `want`.
fn wait_iface_error(sw: &Switch, name: &str, want: &str) -> String {
    let mut last = String::new();
    let ok = wait_until(T, || {
        last = sw
            .vsctl(&["get", "Interface", name, "error"])
            .unwrap_or_default();
        last.contains(want)
    });
    assert!(
        ok,
        "Interface {name:?} error {last:?} lacks {want:?}; log:\n{}",
        sw.log_text()
    );
    last
}

/// A file outside any run directory, with known content; removed on drop.
struct Victim(PathBuf);

impl Victim {
    fn new(path: PathBuf) -> Victim {
        std::fs::write(&path, b"precious").unwrap();
        Victim(path)
    }

    fn assert_intact(&self) {
        let m = std::fs::symlink_metadata(&self.0)
            .unwrap_or_else(|e| panic!("{} is gone: {e}", self.0.display()));
        assert!(
            m.is_file(),
            "{} was replaced by a {:?}",
            self.0.display(),
            m.file_type()
        );
        assert_eq!(std::fs::read(&self.0).unwrap(), b"precious");
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs a vswitchd that is expected to refuse to start: its exit status
/// and stderr. Fails (instead of hanging) if it keeps running.
fn refused_start(cmd: &mut Command) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let errf = dir.path().join("stderr");
    let mut child = ChildGuard(Some(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errf).unwrap())
            .spawn()
            .unwrap(),
    ));
    let mut status = None;
    let exited = wait_until(T, || {
        status = child.child().try_wait().ok().flatten();
        status.is_some()
    });
    let err = std::fs::read_to_string(&errf).unwrap_or_default();
    if !exited {
        child.kill();
        panic!("vswitchd kept running instead of refusing to start; stderr:\n{err}");
    }
    (status.unwrap(), err)
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn interface_and_bridge_names_never_reach_files_outside_the_rundir() -> Result<()> {
    require!("ovs-vsctl");
    let tag = unique_tag();
    let sw = Switch::start()?;
    let br = format!("{tag}b");
    sw.vsctl(&["add-br", &br])?;
    // The run directory is /tmp/ferrovs-test-XXXX: "../NAME" is /tmp/NAME.
    let parent = sw.rundir().parent().context("rundir parent")?;
    let rel = format!("../{tag}v");
    let victim = Victim::new(parent.join(format!("{tag}v")));
    let abs_victim = Victim::new(parent.join(format!("{tag}a")));
    let abs = abs_victim.0.display().to_string();
    let mgmt_victim = Victim::new(parent.join(format!("{tag}x.mgmt")));
    let bad_br = format!("../{tag}x");

    // ferrovs's vsctl refuses the names outright, and changes nothing.
    for (args, what) in [
        (
            vec![
                "add-port",
                &br,
                &rel,
                "--",
                "set",
                "Interface",
                &rel,
                "type=dpdkvhostuser",
            ],
            "port",
        ),
        (vec!["add-br", &bad_br], "bridge"),
    ] {
        let out = sw.tool_output("vsctl", &args)?;
        assert!(!out.status.success(), "vsctl {args:?} succeeded");
        let err = stderr_of(&out);
        assert!(
            err.contains(&format!("cannot create a {what} named"))
                && err.contains("invalid interface name"),
            "{err}"
        );
    }
    assert!(!sw.vsctl(&["list-ports", &br])?.contains(&rel));
    assert!(!sw.vsctl(&["list-br"])?.contains(&bad_br));

    // Another DB client can write them: the daemon refuses to open them.
    ovs_vsctl(
        &sw,
        &[
            "add-port",
            &br,
            &rel,
            "--",
            "set",
            "Interface",
            &rel,
            "type=dpdkvhostuser",
        ],
    )?;
    ovs_vsctl(
        &sw,
        &[
            "add-port",
            &br,
            &abs,
            "--",
            "set",
            "Interface",
            &abs,
            "type=dpdkvhostuser",
        ],
    )?;
    ovs_vsctl(&sw, &["add-br", &bad_br])?;
    wait_iface_error(&sw, &rel, "could not open network device");
    wait_iface_error(&sw, &abs, "could not open network device");
    wait_iface_error(&sw, &bad_br, "invalid interface name");
    victim.assert_intact();
    abs_victim.assert_intact();
    mgmt_victim.assert_intact();
    // Removing them touches nothing either.
    ovs_vsctl(&sw, &["del-port", &br, &rel, "--", "del-port", &br, &abs])?;
    ovs_vsctl(&sw, &["del-br", &bad_br])?;
    sw.vsctl(&["show"])?;
    victim.assert_intact();
    abs_victim.assert_intact();
    mgmt_victim.assert_intact();

    // An empty name is refused by vsctl as ovs-vsctl does.
    let out = sw.tool_output("vsctl", &["add-port", &br, ""])?;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("port name must not be empty string"),
        "{}",
        stderr_of(&out)
    );
    // The daemon is still serving.
    sw.appctl(&["vlog/list"])?;
    Ok(())
}

#[test]
fn a_file_that_is_not_a_socket_is_never_replaced_by_a_vhost_port() -> Result<()> {
    require!();
    let tag = unique_tag();
    let sw = Switch::start()?;
    let br = format!("{tag}b");
    sw.vsctl(&["add-br", &br])?;

    // Server mode: a regular file where the socket would go.
    let vhu = format!("{tag}s");
    let in_rundir = Victim::new(sw.rundir().join(&vhu));
    sw.vsctl(&[
        "add-port",
        &br,
        &vhu,
        "--",
        "set",
        "Interface",
        &vhu,
        "type=dpdkvhostuser",
    ])?;
    let e = wait_iface_error(&sw, &vhu, "not a socket");
    assert!(e.contains("regular file"), "{e}");
    in_rundir.assert_intact();
    sw.vsctl(&["del-port", &br, &vhu])?;
    sw.vsctl(&["show"])?;
    in_rundir.assert_intact();

    // Client mode: the server path may be anywhere, but a regular file is
    // reported instead of being retried silently.
    let dir = tempfile::tempdir()?;
    let not_sock = Victim::new(dir.path().join("server.sock"));
    let vhc = format!("{tag}c");
    let opt = format!("options:vhost-server-path={}", not_sock.0.display());
    sw.vsctl(&[
        "add-port",
        &br,
        &vhc,
        "--",
        "set",
        "Interface",
        &vhc,
        "type=dpdkvhostuserclient",
        &opt,
    ])?;
    wait_iface_error(&sw, &vhc, "not a socket");
    not_sock.assert_intact();
    Ok(())
}

#[test]
fn a_second_daemon_on_the_same_rundir_refuses_to_start() -> Result<()> {
    require!();
    let mut sw = Switch::start()?;
    let first_pid = sw.proc.child().id();
    let other_db = tempfile::tempdir()?;
    let (status, err) = refused_start(
        Command::new(bin("vswitchd"))
            .arg("--rundir")
            .arg(sw.rundir())
            .arg("--db")
            .arg(other_db.path().join("conf.db"))
            .env("RUST_BACKTRACE", "1"),
    );
    assert!(!status.success(), "second daemon exited with success");
    assert!(
        err.contains(&format!(
            "another vswitchd (pid {first_pid}) is running with rundir {}",
            sw.rundir().display()
        )),
        "{err}"
    );
    assert!(!err.contains("acktrace"), "{err}");
    assert!(!other_db.path().join("conf.db").exists());
    // The first daemon still has its sockets and answers.
    assert!(sw.alive());
    assert!(sw.rundir().join("db.sock").exists());
    assert!(sw.rundir().join("vswitchd.ctl").exists());
    sw.vsctl(&["show"])?;
    sw.appctl(&["vlog/list"])?;
    Ok(())
}

/// Starts vswitchd with umask 0 on a run directory it must create.
fn start_with_umask_0(root: &Path) -> Result<Switch> {
    let rundir = tempfile::Builder::new()
        .prefix("ferrovs-umask-")
        .tempdir_in(root)?;
    std::fs::remove_dir(rundir.path())?;
    let db = root.join("conf.db");
    let log = root.join("vswitchd.log");
    let logf = std::fs::File::create(&log)?;
    let child = Command::new("sh")
        .arg("-c")
        .arg("umask 0; exec \"$0\" \"$@\"")
        .arg(bin("vswitchd"))
        .arg("--rundir")
        .arg(rundir.path())
        .arg("--db")
        .arg(&db)
        .stdin(Stdio::null())
        .stdout(logf.try_clone()?)
        .stderr(logf)
        .spawn()?;
    let sw = Switch {
        devices: TapCleanup::new(rundir.path(), &child),
        rundir,
        db,
        proc: ChildGuard(Some(child)),
        log,
        netns: None,
    };
    let sock = sw.rundir().join("db.sock");
    assert!(
        wait_until(T, || sock.exists()),
        "no db.sock; log:\n{}",
        sw.log_text()
    );
    Ok(sw)
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

#[test]
fn file_modes_do_not_depend_on_the_umask() -> Result<()> {
    require!();
    let tag = unique_tag();
    let root = tempfile::tempdir()?;
    let sw = start_with_umask_0(root.path())?;
    assert_eq!(mode(sw.rundir()), 0o750, "rundir");
    assert_eq!(mode(&sw.db), 0o600, "DB file");
    assert_eq!(mode(&sw.rundir().join("db.sock")), 0o600, "db.sock");

    // vhost-user sockets: in vhost-sock-dir, with the configured mode and group.
    let gid = std::fs::metadata(root.path())?.gid();
    let group = format!("other_config:vhost-sock-group={gid}");
    sw.vsctl(&[
        "set",
        "Open_vSwitch",
        ".",
        "other_config:vhost-sock-dir=vhost",
        "other_config:vhost-sock-mode=0660",
        &group,
    ])?;
    let br = format!("{tag}b");
    sw.vsctl(&["add-br", &br])?;
    let vhu = format!("{tag}v");
    sw.vsctl(&[
        "add-port",
        &br,
        &vhu,
        "--",
        "set",
        "Interface",
        &vhu,
        "type=dpdkvhostuser",
    ])?;
    let sock = sw.rundir().join("vhost").join(&vhu);
    assert!(
        wait_until(T, || std::fs::symlink_metadata(&sock)
            .is_ok_and(|m| m.file_type().is_socket())),
        "no vhost socket at {}; log:\n{}",
        sock.display(),
        sw.log_text()
    );
    assert_eq!(mode(&sock), 0o660, "vhost socket");
    assert_eq!(std::fs::metadata(&sock)?.gid(), gid);
    assert_eq!(mode(&sw.rundir().join("vhost")), 0o750, "vhost-sock-dir");

    // A vhost-sock-dir outside the run directory is an error on the port.
    sw.vsctl(&[
        "set",
        "Open_vSwitch",
        ".",
        "other_config:vhost-sock-dir=../out",
    ])?;
    let vh2 = format!("{tag}w");
    sw.vsctl(&[
        "add-port",
        &br,
        &vh2,
        "--",
        "set",
        "Interface",
        &vh2,
        "type=dpdkvhostuser",
    ])?;
    wait_iface_error(&sw, &vh2, "vhost-sock-dir");
    assert!(!root.path().join("out").exists());
    Ok(())
}

#[test]
fn an_empty_db_file_is_an_error_unless_db_create_is_given() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("conf.db");
    std::fs::write(&db, b"")?;
    let rundir = dir.path().join("run");
    let (status, err) = refused_start(
        Command::new(bin("vswitchd"))
            .arg("--rundir")
            .arg(&rundir)
            .arg("--db")
            .arg(&db)
            .env("RUST_BACKTRACE", "1"),
    );
    assert!(!status.success(), "exited with success on an empty DB file");
    assert!(
        err.contains(&format!("database file {} is empty", db.display()))
            && err.contains("--db-create"),
        "{err}"
    );
    assert!(!err.contains("acktrace"), "a backtrace was printed:\n{err}");
    assert_eq!(std::fs::metadata(&db)?.len(), 0, "the file was changed");
    // The lock went away with the refused daemon.
    assert!(!rundir.join("vswitchd.pid").exists());

    // With --db-create it starts on a fresh configuration.
    let mut child = ChildGuard(Some(
        Command::new(bin("vswitchd"))
            .arg("--rundir")
            .arg(&rundir)
            .arg("--db")
            .arg(&db)
            .arg("--db-create")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    ));
    assert!(wait_until(T, || rundir.join("db.sock").exists()));
    let out = Command::new(bin("vsctl"))
        .env("FERROVS_RUNDIR", &rundir)
        .arg("show")
        .output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(std::fs::metadata(&db)?.len() > 0);
    child.kill();
    Ok(())
}

#[test]
fn malformed_cli_input_fails_with_a_short_clear_message() -> Result<()> {
    require!();
    let tag = unique_tag();
    let sw = Switch::start()?;
    let br = format!("{tag}b");
    sw.vsctl(&["add-br", &br])?;

    let out = sw.tool_output("appctl", &["vlog/set", "bogus:::"])?;
    assert!(!out.status.success(), "vlog/set bogus::: succeeded");
    let msg = stderr_of(&out) + &String::from_utf8_lossy(&out.stdout);
    assert!(
        msg.contains("no destination, level, or module \"bogus:::\""),
        "{msg}"
    );
    sw.appctl(&["vlog/set", "info,datapath=debug"])?;

    let out = sw.tool_output("vsctl", &["set-controller", &br, "bogus:target"])?;
    assert!(
        !out.status.success(),
        "set-controller bogus:target succeeded"
    );
    assert!(
        stderr_of(&out).contains("bogus:target: unsupported controller target"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(sw.vsctl(&["get-controller", &br])?.trim(), "");
    let out = sw.tool_output("vsctl", &["set-manager", "bogus:x"])?;
    assert!(!out.status.success(), "set-manager bogus:x succeeded");

    // A flow too big for one OpenFlow message: the reason, not 40 KB of flow.
    let actions = vec!["output:1"; 5000].join(",");
    let flow = format!("priority=1,actions={actions}");
    let out = sw.tool_output("ofctl", &["add-flow", &br, &flow])?;
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("message too long"), "{err}");
    assert!(err.len() < 400, "{} bytes of error:\n{err}", err.len());
    assert!(err.contains(" bytes)"), "{err}");
    Ok(())
}
