//! Helpers for tests that boot the freestanding test guest: build it, run
//! the launcher with given arguments, capture the serial console.
//!
//! Used by this crate's integration tests and meant for the end-to-end
//! tests that wire the guest to a ferrovs bridge.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Directory of the test guest crate.
pub fn test_guest_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test-guest")
}

/// The cargo target directory the running test binary lives in
/// (`target/debug/deps/test-xxxx` → `target`).
fn target_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    let profile = if deps.ends_with("deps") {
        deps.parent()?
    } else {
        deps
    };
    Some(profile.parent()?.to_path_buf())
}

/// Builds the test guest (test-guest/build.sh) and returns its ELF path.
pub fn build_test_guest() -> io::Result<PathBuf> {
    let script = test_guest_dir().join("build.sh");
    let mut cmd = Command::new("sh");
    cmd.arg(&script);
    if let Some(t) = target_dir() {
        cmd.env("VMM_TEST_GUEST_TARGET_DIR", t.join("test-guest"));
    }
    let out = cmd.stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{} failed with {}",
            script.display(),
            out.status
        )));
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if path.is_file() {
        Ok(path)
    } else {
        Err(io::Error::other(format!(
            "test guest not found at {}",
            path.display()
        )))
    }
}

/// The launcher binary: `$VMM_LAUNCHER_BIN`, else `vmm-launcher` in the
/// target profile directory of the running test.
pub fn launcher_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("VMM_LAUNCHER_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("vmm-launcher")
}

/// What a finished launcher run produced.
#[derive(Debug)]
pub struct LauncherRun {
    pub status: ExitStatus,
    /// The guest's serial console (stdout with `--console stdio`).
    pub serial: String,
    pub stderr: String,
    pub timed_out: bool,
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = r.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    })
}

/// Waits for `child` up to `timeout`, killing it when time is up.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> io::Result<(ExitStatus, bool)> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok((st, false));
        }
        if Instant::now() > deadline {
            child.kill()?;
            return Ok((child.wait()?, true));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `launcher args...` with extra environment, stdin closed, and
/// captures stdout (the serial console) and stderr.
pub fn run_launcher(
    launcher: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> io::Result<LauncherRun> {
    let mut child = Command::new(launcher)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let out = drain(
        child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?,
    );
    let err = drain(
        child
            .stderr
            .take()
            .ok_or_else(|| io::Error::other("no stderr"))?,
    );
    let (status, timed_out) = wait_with_timeout(&mut child, timeout)?;
    Ok(LauncherRun {
        status,
        serial: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        timed_out,
    })
}
