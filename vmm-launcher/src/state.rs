//! Per-VM state directories (`$FERROVS_RUNDIR/vms/NAME/`): pid, recorded
//! configuration, console socket. What `list`, `shutdown`, `destroy` and
//! `console` work from.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::VmConfig;

/// Default run directory when `$FERROVS_RUNDIR` is unset.
pub const DEFAULT_RUNDIR: &str = "/run/ferrovs";

/// State-directory errors.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("invalid VM name '{0}': use letters, digits, '-', '_' and '.', not starting with '.'")]
    BadName(String),
    #[error("domain '{0}' is already running (pid {1})")]
    AlreadyRunning(String, i32),
    #[error("domain '{0}' is being started by another launcher")]
    Starting(String),
    #[error("domain '{0}' not found")]
    NotFound(String),
    #[error("state directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// What is recorded about a running VM.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VmRecord {
    pub config: VmConfig,
    pub pid: i32,
    /// Switch ports the launcher added (to delete on destroy).
    pub ports: Vec<String>,
    /// vhost-user sockets the launcher listens on (removed on destroy).
    #[serde(default)]
    pub sockets: Vec<PathBuf>,
    /// Kept (shut off) when the VM stops, for `list --all` and `start`.
    #[serde(default)]
    pub persistent: bool,
    #[serde(default)]
    pub opts: RunOpts,
}

/// Launcher options that are not part of the machine but of how it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOpts {
    pub port_timeout: u64,
    pub shutdown_console: Option<String>,
    pub shutdown_timeout: u64,
}

impl Default for RunOpts {
    fn default() -> Self {
        RunOpts {
            port_timeout: 10,
            shutdown_console: None,
            shutdown_timeout: 10,
        }
    }
}

/// Running or left behind by a launcher that died.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmState {
    Running,
    /// The pid is gone (killed without cleanup).
    ShutOff,
}

impl std::fmt::Display for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VmState::Running => "running",
            VmState::ShutOff => "shut off",
        })
    }
}

/// The run directory.
pub fn rundir() -> PathBuf {
    std::env::var_os("FERROVS_RUNDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| DEFAULT_RUNDIR.into())
}

/// Checks a VM name is safe as a directory and port name.
pub fn validate_name(name: &str) -> Result<(), StateError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(StateError::BadName(name.to_string()))
    }
}

/// Whether process `pid` exists and has not exited (a zombie waiting for
/// its parent counts as gone).
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Format: "pid (comm) S ..."; comm may contain spaces and parens.
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat.get(i + 2..i + 3))
            .is_none_or(|state| state != "Z"),
        Err(_) => true,
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One VM's state directory, and (for the launcher that owns it) the lock
/// that makes it the only launcher of that name.
pub struct StateDir {
    pub path: PathBuf,
    pub lock: Option<fs::File>,
}

/// Takes `vms/.NAME.lock` (held until the process ends, SIGKILL included).
fn take_lock(rundir: &Path, name: &str) -> Result<fs::File, StateError> {
    use std::os::fd::AsRawFd;
    let vms = rundir.join("vms");
    fs::create_dir_all(&vms).map_err(io_err(&vms))?;
    let p = vms.join(format!(".{name}.lock"));
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(io_err(&p))?;
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(match read(rundir, name) {
            Ok(rec) if pid_alive(rec.pid) => StateError::AlreadyRunning(name.to_string(), rec.pid),
            _ => StateError::Starting(name.to_string()),
        });
    }
    Ok(f)
}

/// Whether a launcher holds the lock of `name` (running or starting).
pub fn locked(rundir: &Path, name: &str) -> bool {
    use std::os::fd::AsRawFd;
    let p = rundir.join("vms").join(format!(".{name}.lock"));
    let Ok(f) = fs::OpenOptions::new().write(true).open(&p) else {
        return false;
    };
    // SAFETY: flock on a descriptor we own; released when `f` closes.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    rc != 0
}

impl StateDir {
    pub fn path_for(rundir: &Path, name: &str) -> PathBuf {
        rundir.join("vms").join(name)
    }

    /// Creates the directory for a VM about to start; refuses when a VM of
    /// that name runs, takes over stale directories.
    pub fn create(rundir: &Path, record: &VmRecord) -> Result<StateDir, StateError> {
        let name = &record.config.name;
        validate_name(name)?;
        let path = Self::path_for(rundir, name);
        let lock = take_lock(rundir, name)?;
        if let Ok(old) = read(rundir, name)
            && pid_alive(old.pid)
            && old.pid != record.pid
        {
            return Err(StateError::AlreadyRunning(name.clone(), old.pid));
        }
        fs::create_dir_all(&path).map_err(io_err(&path))?;
        let dir = StateDir {
            path,
            lock: Some(lock),
        };
        dir.write(record)?;
        Ok(dir)
    }

    /// Rewrites the record (e.g. after ports were added).
    pub fn write(&self, record: &VmRecord) -> Result<(), StateError> {
        let cfg = self.path.join("config.json");
        let tmp = self.path.join("config.json.tmp");
        let json = serde_json::to_vec_pretty(record).map_err(|e| StateError::Corrupt {
            path: cfg.clone(),
            reason: e.to_string(),
        })?;
        fs::write(&tmp, json).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &cfg).map_err(io_err(&cfg))?;
        let pid = self.path.join("pid");
        fs::write(&pid, format!("{}\n", record.pid)).map_err(io_err(&pid))?;
        Ok(())
    }

    pub fn console_socket(&self) -> PathBuf {
        self.path.join("console.sock")
    }

    pub fn control_socket(&self) -> PathBuf {
        self.path.join("control.sock")
    }

    /// The VM stopped but its definition stays (`--persistent`): the
    /// record remains with no pid; sockets and pid file go.
    pub fn keep_definition(&self, record: &VmRecord) {
        let mut r = record.clone();
        r.pid = 0;
        r.ports.clear();
        r.sockets.clear();
        let _ = self.write(&r);
        for f in ["pid", "console.sock", "control.sock"] {
            let _ = fs::remove_file(self.path.join(f));
        }
    }

    /// Removes the directory (VM ended).
    pub fn remove(&self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Reads a VM's record.
pub fn read(rundir: &Path, name: &str) -> Result<VmRecord, StateError> {
    validate_name(name)?;
    let cfg = StateDir::path_for(rundir, name).join("config.json");
    let data = match fs::read(&cfg) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StateError::NotFound(name.to_string()));
        }
        Err(e) => return Err(io_err(&cfg)(e)),
    };
    serde_json::from_slice(&data).map_err(|e| StateError::Corrupt {
        path: cfg,
        reason: e.to_string(),
    })
}

/// Every VM with a state directory, sorted by name.
pub fn list(rundir: &Path) -> Vec<(VmRecord, VmState)> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(rundir.join("vms")) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Ok(rec) = read(rundir, &name) {
            let st = if pid_alive(rec.pid) {
                VmState::Running
            } else {
                VmState::ShutOff
            };
            out.push((rec, st));
        }
    }
    out.sort_by(|a, b| a.0.config.name.cmp(&b.0.config.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConsoleSpec;

    fn record(name: &str, pid: i32) -> VmRecord {
        VmRecord {
            config: VmConfig {
                name: name.into(),
                kernel: "/k".into(),
                initrd: None,
                cmdline: String::new(),
                cpus: 2,
                memory: 256 << 20,
                hugepages: false,
                cpu_affinity: None,
                nets: vec![],
                disks: vec![],
                console: ConsoleSpec::Stdio,
            },
            pid,
            ports: vec!["vm-a-0".into()],
            sockets: vec![],
            persistent: false,
            opts: RunOpts::default(),
        }
    }

    /// Whether `f` becomes true within a deadline that only detects a hang. Other tests in this
    /// process spawn children, and a child forked while a lock's descriptor is open shares that
    /// lock until it execs: a released name can look held for that moment.
    fn eventually(mut f: impl FnMut() -> bool) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !f() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        true
    }

    #[test]
    fn exited_children_count_as_gone_even_before_they_are_reaped() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while pid_alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(!pid_alive(pid), "zombie must not count as running");
        child.wait().unwrap();
        assert!(pid_alive(std::process::id() as i32));
        assert!(!pid_alive(0));
    }

    #[test]
    fn names_that_could_escape_the_directory_are_refused() {
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name("web-01.prod_x").is_ok());
    }

    #[test]
    fn create_read_list_and_remove_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let me = std::process::id() as i32;
        let sd = StateDir::create(d.path(), &record("a", me)).unwrap();
        assert_eq!(
            fs::read_to_string(sd.path.join("pid")).unwrap().trim(),
            me.to_string()
        );
        let r = read(d.path(), "a").unwrap();
        assert_eq!((r.pid, r.config.cpus, r.ports.len()), (me, 2, 1));
        let l = list(d.path());
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].1, VmState::Running);
        sd.remove();
        assert!(matches!(read(d.path(), "a"), Err(StateError::NotFound(_))));
    }

    #[test]
    fn the_name_lock_refuses_a_second_launcher_until_the_first_lets_go() {
        let d = tempfile::tempdir().unwrap();
        let me = std::process::id() as i32;
        let first = StateDir::create(d.path(), &record("r", me)).unwrap();
        assert!(locked(d.path(), "r"));
        // Same process, another open file description: flock conflicts.
        assert!(matches!(
            StateDir::create(d.path(), &record("r", me)),
            Err(StateError::AlreadyRunning(_, p)) if p == me
        ));
        drop(first);
        assert!(eventually(|| !locked(d.path(), "r")));
        assert!(eventually(
            || StateDir::create(d.path(), &record("r", me)).is_ok()
        ));
    }

    #[test]
    fn a_second_vm_with_a_running_name_is_refused_but_stale_dirs_are_reused() {
        let d = tempfile::tempdir().unwrap();
        let me = std::process::id() as i32;
        let _held = StateDir::create(d.path(), &record("a", me)).unwrap();
        assert!(matches!(
            StateDir::create(d.path(), &record("a", me + 1_000_000)),
            Err(StateError::AlreadyRunning(_, p)) if p == me
        ));
        // A dead pid is stale: listed as shut off, and replaceable.
        StateDir::create(d.path(), &record("b", i32::MAX)).unwrap();
        assert_eq!(list(d.path())[1].1, VmState::ShutOff);
        assert!(eventually(
            || StateDir::create(d.path(), &record("b", me)).is_ok()
        ));
    }
}
