//! Kernel interface facts and settings through ioctl: index, MTU, MAC,
//! administrative state.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Maximum interface name length (without the NUL), as `IFNAMSIZ - 1`.
pub const IFNAMSIZ_MAX: usize = libc::IFNAMSIZ - 1;
const _: () = assert!(IFNAMSIZ_MAX == flows::names::NAME_MAX);

/// Checks that `name` fits in an `ifreq` (the project-wide name rule).
pub fn valid_ifname(name: &str) -> bool {
    flows::names::check_name(name).is_ok()
}

pub(crate) fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    if !valid_ifname(name) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name {name:?}"),
        ));
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(ifr)
}

fn ctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ioctl(req: libc::c_ulong, ifr: &mut libc::ifreq) -> io::Result<()> {
    let s = ctl_socket()?;
    // SAFETY: `ifr` is a valid, initialised ifreq for the duration of the call
    // and every request used here reads or writes only an ifreq.
    let r = unsafe { libc::ioctl(s.as_raw_fd(), req as _, ifr as *mut libc::ifreq) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Interface index of `name`, or `NotFound`.
pub fn ifindex(name: &str) -> io::Result<i32> {
    let c = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no such device: {name}"),
        ));
    }
    Ok(idx as i32)
}

/// Interface index of the device a port opens: a missing device is
/// [`PortError::NoDevice`].
pub fn port_ifindex(name: &str) -> Result<i32, crate::port::PortError> {
    ifindex(name).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            crate::port::PortError::NoDevice(name.to_string())
        } else {
            crate::port::PortError::io(name, "if_nametoindex", e)
        }
    })
}

/// How many receive queues `name` has (its `queues/rx-*` in sysfs).
pub fn n_rx_queues(name: &str) -> io::Result<u32> {
    if !valid_ifname(name) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad name"));
    }
    let n = std::fs::read_dir(format!("/sys/class/net/{name}/queues"))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    Ok(n as u32)
}

/// MTU of `name`.
pub fn mtu(name: &str) -> io::Result<u32> {
    let mut ifr = ifreq_for(name)?;
    ioctl(libc::SIOCGIFMTU, &mut ifr)?;
    // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member.
    Ok(unsafe { ifr.ifr_ifru.ifru_mtu } as u32)
}

/// Set the MTU of `name` (`Interface.mtu_request`).
pub fn set_mtu(name: &str, mtu: u32) -> io::Result<()> {
    let mut ifr = ifreq_for(name)?;
    ifr.ifr_ifru.ifru_mtu = i32::try_from(mtu)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "MTU out of range"))?;
    ioctl(libc::SIOCSIFMTU, &mut ifr)
}

/// Ethernet address of `name`.
pub fn mac(name: &str) -> io::Result<[u8; 6]> {
    let mut ifr = ifreq_for(name)?;
    ioctl(libc::SIOCGIFHWADDR, &mut ifr)?;
    // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member.
    let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    let mut m = [0u8; 6];
    for (d, s) in m.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(m)
}

fn flags(name: &str) -> io::Result<libc::c_int> {
    let mut ifr = ifreq_for(name)?;
    ioctl(libc::SIOCGIFFLAGS, &mut ifr)?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member.
    Ok(libc::c_int::from(unsafe { ifr.ifr_ifru.ifru_flags }))
}

/// Sets the given `IFF_*` bits (and clears none).
pub fn set_flags(name: &str, add: libc::c_int) -> io::Result<()> {
    let cur = flags(name)?;
    if cur & add == add {
        return Ok(());
    }
    let mut ifr = ifreq_for(name)?;
    ifr.ifr_ifru.ifru_flags = (cur | add) as libc::c_short;
    ioctl(libc::SIOCSIFFLAGS, &mut ifr)
}

/// Brings `name` administratively up.
pub fn set_up(name: &str) -> io::Result<()> {
    set_flags(name, libc::IFF_UP)
}

/// True when `name` is up and has carrier (`IFF_RUNNING`... or, for
/// interfaces without carrier reporting, `IFF_UP`).
pub fn link_up(name: &str) -> bool {
    flags(name).is_ok_and(|f| f & libc::IFF_UP != 0 && f & libc::IFF_RUNNING != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_facts_are_read() {
        assert_eq!(ifindex("lo").unwrap(), 1);
        assert_eq!(mac("lo").unwrap(), [0; 6]);
        assert!(mtu("lo").unwrap() >= 1500);
        assert!(n_rx_queues("lo").unwrap() >= 1);
    }

    #[test]
    fn missing_and_invalid_names_are_errors() {
        assert_eq!(
            ifindex("dp-nosuchdev").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(mtu("a-name-much-too-long-for-linux").is_err());
        assert!(!valid_ifname(""));
    }
}
