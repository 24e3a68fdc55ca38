//! Kernel ABI of AF_XDP sockets (`<linux/if_xdp.h>`) and of the `bpf(2)`
//! commands the port uses (`<linux/bpf.h>`): constants, structures, and
//! thin wrappers over the calls.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::sock;

pub(super) const AF_XDP: libc::c_int = 44;
pub(super) const SOL_XDP: libc::c_int = 283;

// Socket options (level SOL_XDP).
pub(super) const XDP_MMAP_OFFSETS: libc::c_int = 1;
pub(super) const XDP_RX_RING: libc::c_int = 2;
pub(super) const XDP_TX_RING: libc::c_int = 3;
pub(super) const XDP_UMEM_REG: libc::c_int = 4;
pub(super) const XDP_UMEM_FILL_RING: libc::c_int = 5;
pub(super) const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
pub(super) const XDP_STATISTICS: libc::c_int = 7;

// mmap offsets of the four rings.
pub(super) const XDP_PGOFF_RX_RING: libc::off_t = 0;
pub(super) const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
pub(super) const XDP_UMEM_PGOFF_FILL_RING: libc::off_t = 0x1_0000_0000;
pub(super) const XDP_UMEM_PGOFF_COMPLETION_RING: libc::off_t = 0x1_8000_0000;

// `sockaddr_xdp.sxdp_flags`.
pub(super) const XDP_COPY: u16 = 1 << 1;
pub(super) const XDP_ZEROCOPY: u16 = 1 << 2;
pub(super) const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;

/// A ring's `flags` word: the kernel wants a syscall to make progress.
pub(super) const XDP_RING_NEED_WAKEUP: u32 = 1;

// XDP attach flags (`IFLA_XDP_FLAGS`, `link_create.flags`).
pub(super) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub(super) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// `struct sockaddr_xdp`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(super) struct SockaddrXdp {
    pub(super) family: u16,
    pub(super) flags: u16,
    pub(super) ifindex: u32,
    pub(super) queue_id: u32,
    pub(super) shared_umem_fd: u32,
}

/// `struct xdp_umem_reg` (with `flags` and `tx_metadata_len`, both 0).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(super) struct XdpUmemReg {
    pub(super) addr: u64,
    pub(super) len: u64,
    pub(super) chunk_size: u32,
    pub(super) headroom: u32,
    pub(super) flags: u32,
    pub(super) tx_metadata_len: u32,
}

/// `struct xdp_ring_offset`: where a ring's fields sit in its mapping.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub(super) struct XdpRingOffset {
    pub(super) producer: u64,
    pub(super) consumer: u64,
    pub(super) desc: u64,
    pub(super) flags: u64,
}

/// `struct xdp_mmap_offsets`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub(super) struct XdpMmapOffsets {
    pub(super) rx: XdpRingOffset,
    pub(super) tx: XdpRingOffset,
    pub(super) fr: XdpRingOffset,
    pub(super) cr: XdpRingOffset,
}

/// `struct xdp_desc`: one rx or tx descriptor.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(super) struct XdpDesc {
    pub(super) addr: u64,
    pub(super) len: u32,
    pub(super) options: u32,
}

/// `struct xdp_statistics` (the first three fields every kernel has).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub(super) struct XdpStatistics {
    pub(super) rx_dropped: u64,
    pub(super) rx_invalid_descs: u64,
    pub(super) tx_invalid_descs: u64,
}

/// A new AF_XDP socket.
pub(super) fn xsk_socket() -> io::Result<OwnedFd> {
    sock::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0)
}

/// `setsockopt(fd, SOL_XDP, name, val)`.
pub(super) fn setopt<T>(fd: RawFd, name: libc::c_int, val: &T) -> io::Result<()> {
    sock::setsockopt(fd, SOL_XDP, name, val)
}

/// `getsockopt(fd, SOL_XDP, name)` into a `T` (zero-filled first; the
/// kernel may write fewer bytes than `T` has).
pub(super) fn getopt<T: Default>(fd: RawFd, name: libc::c_int) -> io::Result<T> {
    sock::getsockopt(fd, SOL_XDP, name)
}

/// Binds an AF_XDP socket to queue `queue_id` of `ifindex`.
pub(super) fn bind(fd: RawFd, ifindex: i32, queue_id: u32, flags: u16) -> io::Result<()> {
    let sa = SockaddrXdp {
        family: AF_XDP as u16,
        flags,
        ifindex: ifindex as u32,
        queue_id,
        shared_umem_fd: 0,
    };
    sock::bind(fd, &sa)
}

/// `bpf(cmd, attr, size_of(attr))`; returns the (non-negative) result.
pub(super) fn bpf<A>(cmd: libc::c_int, attr: &mut A) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, zero-padded `union bpf_attr` prefix of the
    // stated size; the kernel reads (and for some commands writes) only
    // within it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut A).cast::<libc::c_void>(),
            std::mem::size_of::<A>() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// Takes ownership of a file descriptor a `bpf(2)` call returned.
pub(super) fn owned_fd(r: libc::c_long) -> OwnedFd {
    // SAFETY: `r` is a new fd the kernel just returned to us; nobody else
    // owns it.
    unsafe { OwnedFd::from_raw_fd(r as RawFd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structures_have_the_kernel_sizes() {
        assert_eq!(std::mem::size_of::<SockaddrXdp>(), 16);
        assert_eq!(std::mem::size_of::<XdpUmemReg>(), 32);
        assert_eq!(std::mem::size_of::<XdpMmapOffsets>(), 128);
        assert_eq!(std::mem::size_of::<XdpDesc>(), 16);
    }
}
