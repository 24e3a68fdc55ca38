//! Kernel ABI of AF_PACKET sockets: constants, structures, and the
//! socket calls the port makes.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::port::PortError;

pub(super) const SOL_PACKET: libc::c_int = 263;
pub(super) const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
pub(super) const PACKET_STATISTICS: libc::c_int = 6;
pub(super) const PACKET_RX_RING: libc::c_int = 5;
pub(super) const PACKET_VERSION: libc::c_int = 10;
pub(super) const PACKET_TX_RING: libc::c_int = 13;
pub(super) const PACKET_LOSS: libc::c_int = 14;
pub(super) const PACKET_VNET_HDR: libc::c_int = 15;
pub(super) const PACKET_QDISC_BYPASS: libc::c_int = 20;
pub(super) const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
pub(super) const PACKET_MR_PROMISC: u16 = 1;
pub(super) const TPACKET_V2: libc::c_int = 1;
pub(super) const TPACKET_V3: libc::c_int = 2;

pub(super) const TP_STATUS_KERNEL: u32 = 0;
pub(super) const TP_STATUS_USER: u32 = 1;
pub(super) const TP_STATUS_AVAILABLE: u32 = 0;
pub(super) const TP_STATUS_SEND_REQUEST: u32 = 1;
pub(super) const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
pub(super) const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// `struct tpacket2_hdr`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct Tpacket2Hdr {
    pub(super) tp_status: u32,
    pub(super) tp_len: u32,
    pub(super) tp_snaplen: u32,
    pub(super) tp_mac: u16,
    pub(super) tp_net: u16,
    pub(super) tp_sec: u32,
    pub(super) tp_nsec: u32,
    pub(super) tp_vlan_tci: u16,
    pub(super) tp_vlan_tpid: u16,
    pub(super) tp_padding: [u8; 4],
}

/// `TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)`: where a tx frame's data
/// starts in its slot.
pub(super) const TX_DATA_OFFSET: usize = 32;

/// `struct packet_mreq`.
#[repr(C)]
pub(super) struct PacketMreq {
    pub(super) mr_ifindex: libc::c_int,
    pub(super) mr_type: u16,
    pub(super) mr_alen: u16,
    pub(super) mr_address: [u8; 8],
}

/// TPACKET_V2 slot size: a 64 KiB super-frame plus headers.
pub(super) const FRAME_SIZE: usize = 65_536 + 4096;
/// TPACKET_V3 block size: one super-frame, or hundreds of small frames.
pub(super) const V3_BLOCK_SIZE: usize = 1 << 18;
pub(super) const V3_BLOCKS: usize = 32;
/// TPACKET_V3 block retire timeout (ms).
pub(super) const V3_RETIRE_MS: u32 = 1;
/// Ring block size (1 MiB: 15 slots).
pub(super) const BLOCK_SIZE: usize = 1 << 20;
/// Ring sizes. Every page of a ring is resident (the kernel allocates and
/// maps all of it), and every port has an rx ring plus one tx ring per PMD,
/// so these constants dominate the daemon's memory: 4 ports with one PMD cost
/// 4 × (4 + 0.25) MiB = 17 MiB (it was 48 MiB with 8 + 4 blocks of 68 KiB
/// slots, then 28 MiB with 4 + 3).
///
/// Receive: 4 blocks, 60 slots: almost two full batches (`BATCH_SIZE` =
/// 32) of slack while the PMD is busy elsewhere. A slot holds one frame
/// whatever its size, so this absorbs 60 small frames or 60 GSO
/// super-frames (~3.9 MB of TCP payload) between two polls.
pub(super) const RX_BLOCKS: usize = 4;
/// Transmit: 128 slots of 2 KiB (256 KiB per PMD and port, was 3 MiB of
/// 68 KiB slots): four batches of plain frames fit without a mid-batch
/// `sendto` (slots come back as soon as the kernel has sent their frames,
/// which on veth is within the `sendto` call or its softirq). A frame too
/// big for a slot (a GSO super-frame, a jumbo frame) leaves through a
/// second, ring-less socket with one `sendmsg`, after the slots queued
/// before it.
pub(super) const TX_FRAME_SIZE: usize = 2048;
pub(super) const TX_BLOCK_SIZE: usize = 1 << 16;
pub(super) const TX_BLOCKS: usize = 4;

pub(super) fn io_err(port: &str, op: &'static str, source: io::Error) -> PortError {
    if source.raw_os_error() == Some(libc::ENODEV) {
        return PortError::NoDevice(port.to_string());
    }
    PortError::Io {
        port: port.to_string(),
        op,
        source,
    }
}

pub(super) fn setopt<T>(fd: RawFd, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live T of the given size for the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            SOL_PACKET,
            name,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub(super) fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; protocol 0 receives nothing until bind.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(super) fn bind(fd: RawFd, ifindex: i32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: passes a live sockaddr_ll of the stated size.
    let r = unsafe {
        libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
