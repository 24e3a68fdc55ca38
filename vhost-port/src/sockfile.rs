//! Unix socket files a port creates (server mode) or connects to (client
//! mode), handled so that nothing but a socket this process made is ever
//! removed.
//!
//! Before binding, whatever is at the path is removed only if it is a
//! socket (a stale one from an earlier run); any other file makes the bind
//! fail. The new socket gets its mode before it appears in the file system
//! (so the umask never widens it), then exactly the configured mode and
//! group. On close it is removed only if the path still holds the same
//! socket (device and inode recorded at bind).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// Who may connect to a server socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketPerms {
    /// Permission bits of the socket file (e.g. `0o660`).
    pub mode: u32,
    /// Group to give the socket file; `None` keeps the daemon's group.
    pub gid: Option<u32>,
}

impl Default for SocketPerms {
    /// Owner only (`0600`), the daemon's group.
    fn default() -> Self {
        SocketPerms {
            mode: 0o600,
            gid: None,
        }
    }
}

/// Why a socket file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SockFileError {
    #[error("{path} exists and is not a socket ({kind}); not replacing it")]
    NotASocket { path: PathBuf, kind: &'static str },
    #[error("{path}: {op}: {err}")]
    Io {
        path: PathBuf,
        op: &'static str,
        err: io::Error,
    },
}

fn io_err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> SockFileError + use<> {
    let path = path.to_path_buf();
    move |err| SockFileError::Io { path, op, err }
}

/// The kind of file at `path` (not following symlinks), for messages.
fn kind_of(ft: std::fs::FileType) -> &'static str {
    if ft.is_socket() {
        "socket"
    } else if ft.is_file() {
        "regular file"
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_symlink() {
        "symbolic link"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "device"
    }
}

/// `Ok(())` if `path` is absent or a socket; the file's kind otherwise.
pub fn check_socket_or_absent(path: &Path) -> Result<(), SockFileError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => Ok(()),
        Ok(m) => Err(SockFileError::NotASocket {
            path: path.to_path_buf(),
            kind: kind_of(m.file_type()),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, "stat")(e)),
    }
}

/// A socket file this process bound; removed by [`OwnedSocket::remove`]
/// only while the path still refers to it.
#[derive(Debug)]
pub struct OwnedSocket {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl OwnedSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file at the path is still the socket bound here.
    pub fn still_ours(&self) -> bool {
        std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && m.dev() == self.dev && m.ino() == self.ino)
    }

    /// Removes the socket file if it is still ours; leaves anything else.
    pub fn remove(&self) {
        if self.still_ours() {
            let _ = std::fs::remove_file(&self.path);
        } else {
            tracing::warn!(
                path = %self.path.display(),
                "socket file was replaced by something else; leaving it in place"
            );
        }
    }
}

/// Binds a listening socket at `path` with `perms`, replacing only a stale
/// socket.
pub fn bind_listener(
    path: &Path,
    perms: SocketPerms,
) -> Result<(UnixListener, OwnedSocket), SockFileError> {
    check_socket_or_absent(path)?;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path, "remove stale socket")(e)),
    }
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io_err(path, "socket")(io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // The socket inode's mode is what bind(2) gives the file (less the
    // umask): setting it first means the file never exists with more.
    // SAFETY: fchmod on a valid descriptor with plain mode bits.
    if unsafe { libc::fchmod(fd.as_raw_fd(), perms.mode & 0o777) } < 0 {
        return Err(io_err(path, "fchmod")(io::Error::last_os_error()));
    }
    let listener = bind_fd(fd, path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(perms.mode & 0o7777))
        .map_err(io_err(path, "chmod"))?;
    if let Some(gid) = perms.gid {
        std::os::unix::fs::lchown(path, None, Some(gid)).map_err(io_err(path, "chown"))?;
    }
    let m = std::fs::symlink_metadata(path).map_err(io_err(path, "stat"))?;
    Ok((
        listener,
        OwnedSocket {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        },
    ))
}

fn bind_fd(fd: OwnedFd, path: &Path) -> Result<UnixListener, SockFileError> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io_err(path, "bind")(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path too long for a unix socket",
        )));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    // SAFETY: `addr` is a valid sockaddr_un and `len` does not exceed its size.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io_err(path, "bind")(io::Error::last_os_error()));
    }
    // SAFETY: listen(2) on a valid, bound descriptor.
    if unsafe { libc::listen(fd.as_raw_fd(), 128) } < 0 {
        return Err(io_err(path, "listen")(io::Error::last_os_error()));
    }
    Ok(UnixListener::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_at_the_path_is_kept_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sock");
        std::fs::write(&p, b"precious").unwrap();
        let e = bind_listener(&p, SocketPerms::default()).unwrap_err();
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"precious");
    }

    #[test]
    fn a_symlink_at_the_path_is_not_followed_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"x").unwrap();
        let p = dir.path().join("sock");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        assert!(bind_listener(&p, SocketPerms::default()).is_err());
        assert!(
            std::fs::symlink_metadata(&p)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(target.exists());
    }

    #[test]
    fn a_stale_socket_is_replaced_and_the_mode_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sock");
        drop(UnixListener::bind(&p).unwrap());
        let (_l, owned) = bind_listener(
            &p,
            SocketPerms {
                mode: 0o660,
                gid: None,
            },
        )
        .unwrap();
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert!(m.file_type().is_socket());
        assert_eq!(m.mode() & 0o7777, 0o660);
        assert!(owned.still_ours());
    }

    #[test]
    fn remove_leaves_a_file_that_replaced_our_socket() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sock");
        let (_l, owned) = bind_listener(&p, SocketPerms::default()).unwrap();
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, b"someone else's").unwrap();
        owned.remove();
        assert_eq!(std::fs::read(&p).unwrap(), b"someone else's");
        // And our own socket does go.
        std::fs::remove_file(&p).unwrap();
        let (_l2, owned2) = bind_listener(&p, SocketPerms::default()).unwrap();
        owned2.remove();
        assert!(!p.exists());
    }
}
