//! Socket calls the kernel-socket ports (AF_PACKET, AF_XDP) share: thin,
//! checked wrappers over `socket`, `setsockopt`, `getsockopt`, `bind` and
//! the zero-length `sendto` that kicks a tx ring. Each port's `sys` module
//! keeps only what is its own (its level, its address structure).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// `Err(last OS error)` when a call returned a negative value.
fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A new socket (`ty` should carry `SOCK_CLOEXEC`), owned.
pub(crate) fn socket(
    domain: libc::c_int,
    ty: libc::c_int,
    proto: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(domain, ty, proto) };
    check(fd)?;
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(fd, level, name, val)`.
pub(crate) fn setsockopt<T>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: `val` points to a live T of the given size for the call.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
}

/// `getsockopt(fd, level, name)` into a `T` (zero-filled first; the
/// kernel may write fewer bytes than `T` has).
pub(crate) fn getsockopt<T: Default>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    let mut val = T::default();
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is a live, writable T of `len` bytes for the call.
    check(unsafe { libc::getsockopt(fd, level, name, (&mut val as *mut T).cast(), &mut len) })?;
    Ok(val)
}

/// `bind(fd, addr)`; `A` is the family's `sockaddr_*` structure.
pub(crate) fn bind<A>(fd: RawFd, addr: &A) -> io::Result<()> {
    // SAFETY: passes a live socket address of the stated size.
    check(unsafe {
        libc::bind(
            fd,
            (addr as *const A).cast(),
            std::mem::size_of::<A>() as libc::socklen_t,
        )
    })
}

/// A zero-length, non-blocking `sendto`: makes the kernel process the tx
/// ring of a ring-mapped socket (AF_PACKET, AF_XDP). Returns the error the
/// caller sorts (EAGAIN, ENOBUFS, ... mean "try again later").
#[inline]
pub(crate) fn kick_tx(fd: RawFd) -> io::Result<()> {
    // SAFETY: sendto with no buffer and no address on a socket the caller
    // owns: it only triggers transmission of what the ring holds.
    let r = unsafe {
        libc::sendto(
            fd,
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
