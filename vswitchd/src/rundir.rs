//! The run directory: created with a fixed mode, checked for loose
//! permissions, and locked by one daemon at a time (`RUNDIR/vswitchd.pid`).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tracing::warn;

/// Mode of a run directory vswitchd creates: owner, plus group read and
/// search so a frontend in the daemon's group can reach vhost-user sockets.
pub const RUNDIR_MODE: u32 = 0o750;

/// Name of the lock and pid file inside the run directory.
pub const PIDFILE: &str = "vswitchd.pid";

#[derive(Debug, thiserror::Error)]
pub enum RundirError {
    #[error("cannot create run directory {0}: {1}")]
    Create(PathBuf, std::io::Error),
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("cannot lock {0}: {1}")]
    Lock(PathBuf, std::io::Error),
    #[error("another vswitchd (pid {pid}) is running with rundir {dir}")]
    Busy { pid: String, dir: PathBuf },
}

/// Creates `dir` (mode [`RUNDIR_MODE`] whatever the umask) if missing;
/// warns when an existing one is writable by group or others.
pub fn prepare(dir: &Path) -> Result<(), RundirError> {
    let create = |e| RundirError::Create(dir.to_path_buf(), e);
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => return Err(RundirError::NotADirectory(dir.to_path_buf())),
        Ok(m) => {
            if let Some(w) = loose_mode_warning(dir, m.mode()) {
                warn!("{w}");
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(RUNDIR_MODE)
                .create(dir)
                .map_err(create)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(RUNDIR_MODE))
                .map_err(create)?;
        }
        Err(e) => return Err(create(e)),
    }
    Ok(())
}

/// The warning for a run directory others may write to, if `mode` allows it.
fn loose_mode_warning(dir: &Path, mode: u32) -> Option<String> {
    (mode & 0o022 != 0).then(|| {
        format!(
            "run directory {} is writable by {} (mode {:04o}): other users can replace its sockets",
            dir.display(),
            if mode & 0o002 != 0 {
                "everyone"
            } else {
                "its group"
            },
            mode & 0o7777
        )
    })
}

/// The run directory's lock, held for the daemon's lifetime; the pid
/// file goes away with it.
#[derive(Debug)]
pub struct RundirLock {
    /// Holds the lock until dropped (after the file is removed).
    _file: File,
    path: PathBuf,
}

impl RundirLock {
    /// Takes the lock on `dir` (which must exist) and writes our pid, or
    /// says which daemon holds it.
    pub fn acquire(dir: &Path) -> Result<RundirLock, RundirError> {
        let path = dir.join(PIDFILE);
        let err = |e| RundirError::Lock(path.clone(), e);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(err)?;
        // SAFETY: flock on a descriptor owned by `file`.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(err(e));
            }
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(RundirError::Busy {
                pid: if pid.is_empty() {
                    "unknown".into()
                } else {
                    pid.into()
                },
                dir: dir.to_path_buf(),
            });
        }
        file.set_len(0).map_err(err)?;
        file.rewind().map_err(err)?;
        writeln!(file, "{}", std::process::id()).map_err(err)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(err)?;
        Ok(RundirLock { _file: file, path })
    }
}

impl Drop for RundirLock {
    fn drop(&mut self) {
        // Removed while still locked, so no other daemon holds this file.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_rundir_is_refused_with_the_holder_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = RundirLock::acquire(dir.path()).unwrap();
        let pidfile = std::fs::read_to_string(dir.path().join(PIDFILE)).unwrap();
        assert_eq!(pidfile.trim(), std::process::id().to_string());
        let e = RundirLock::acquire(dir.path()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "another vswitchd (pid {}) is running with rundir {}",
                std::process::id(),
                dir.path().display()
            )
        );
        drop(first);
        assert!(!dir.path().join(PIDFILE).exists());
        RundirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn a_new_rundir_gets_its_mode_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("a/run");
        // SAFETY: umask only changes this process's file creation mask.
        let old = unsafe { libc::umask(0) };
        let r = prepare(&run);
        // SAFETY: as above, restoring the previous mask.
        unsafe { libc::umask(old) };
        r.unwrap();
        let m = std::fs::metadata(&run).unwrap();
        assert_eq!(m.mode() & 0o7777, RUNDIR_MODE);
    }

    #[test]
    fn a_rundir_writable_by_group_or_others_is_warned_about() {
        let d = Path::new("/r");
        assert_eq!(loose_mode_warning(d, 0o40750), None);
        assert_eq!(loose_mode_warning(d, 0o40700), None);
        assert!(
            loose_mode_warning(d, 0o40770)
                .unwrap()
                .contains("by its group")
        );
        assert!(
            loose_mode_warning(d, 0o41777)
                .unwrap()
                .contains("by everyone")
        );
    }

    #[test]
    fn a_file_is_not_a_rundir() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"").unwrap();
        assert!(matches!(prepare(&f), Err(RundirError::NotADirectory(_))));
    }
}
