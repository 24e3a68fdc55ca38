//! Kernel ABI of AF_PACKET sockets: constants, structures, and the
//! socket calls the port makes.

use std::io;
use std::os::fd::{OwnedFd, RawFd};

use crate::sock;

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

/// `struct sock_filter`: one classic BPF instruction.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct SockFilter {
    pub(super) code: u16,
    pub(super) jt: u8,
    pub(super) jf: u8,
    pub(super) k: u32,
}

/// `struct sock_fprog`.
#[repr(C)]
pub(super) struct SockFprog {
    pub(super) len: u16,
    pub(super) filter: *const SockFilter,
}

/// Which frames a receive socket takes, by length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LenFilter {
    /// Frames of at most this many bytes.
    AtMost(u32),
    /// Frames longer than this many bytes.
    Above(u32),
}

/// Attaches a classic BPF program to `fd` that accepts only the frames
/// `f` selects; the kernel runs it before it copies a frame into the
/// ring, so a refused frame costs neither a slot nor a drop count.
pub(super) fn attach_len_filter(fd: RawFd, f: LenFilter) -> io::Result<()> {
    const LD_LEN: u16 = 0x80; // BPF_LD | BPF_W | BPF_LEN
    const JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const ALL: u32 = u32::MAX;
    let (limit, small, big) = match f {
        LenFilter::AtMost(n) => (n, ALL, 0),
        LenFilter::Above(n) => (n, 0, ALL),
    };
    let prog = [
        SockFilter {
            code: LD_LEN,
            jt: 0,
            jf: 0,
            k: 0,
        },
        SockFilter {
            code: JGT_K,
            jt: 1,
            jf: 0,
            k: limit,
        },
        SockFilter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: small,
        },
        SockFilter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: big,
        },
    ];
    let fprog = SockFprog {
        len: prog.len() as u16,
        filter: prog.as_ptr(),
    };
    // SAFETY: `fprog` points to `prog`, a live array of `len` instructions;
    // the kernel copies the program during the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const SockFprog).cast(),
            std::mem::size_of::<SockFprog>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `struct packet_mreq`.
#[repr(C)]
pub(super) struct PacketMreq {
    pub(super) mr_ifindex: libc::c_int,
    pub(super) mr_type: u16,
    pub(super) mr_alen: u16,
    pub(super) mr_address: [u8; 8],
}

/// TPACKET_V2 slot size of the big-frame ring: a 64 KiB super-frame plus
/// headers.
pub(super) const FRAME_SIZE: usize = 65_536 + 4096;
/// TPACKET_V3 block size: one super-frame, or hundreds of small frames.
pub(super) const V3_BLOCK_SIZE: usize = 1 << 18;
pub(super) const V3_BLOCKS: usize = 32;
/// TPACKET_V3 block retire timeout (ms).
pub(super) const V3_RETIRE_MS: u32 = 1;
/// Ring block size (1 MiB: 15 big slots, or 512 small ones of 2 KiB).
pub(super) const BLOCK_SIZE: usize = 1 << 20;
/// Ring sizes. Every page of a ring is resident (the kernel allocates and
/// maps all of it), and every port has its rx rings plus one tx ring per
/// PMD, so these constants dominate the daemon's memory.
///
/// A V2 receive queue is two rings, split by frame length with a BPF
/// filter on each socket (see [`rx_small_slot`]):
/// - the small-frame ring: slots sized for the MTU, [`RX_SMALL_BYTES`] of
///   them (1024 slots of 2 KiB at MTU 1500): absorbs a scheduling stall
///   of several milliseconds at line rate without a drop;
/// - the big-frame ring: [`RX_BLOCKS`] blocks of 68 KiB slots for GSO
///   super-frames (and anything longer than the MTU).
///
/// Before the split, one ring of 60 big slots overflowed whenever the PMD
/// lost its core for more than 60 frames (about 0.7 ms of 1500-byte
/// frames at 1 Gbit/s): TCP without offloads lost frames to the ring.
pub(super) const RX_BLOCKS: usize = 2;
/// Bytes of the small-frame ring.
pub(super) const RX_SMALL_BYTES: usize = 2 << 20;
/// Bytes a V2 rx slot needs besides the frame: `tpacket2_hdr` and
/// `sockaddr_ll` (aligned), the virtio-net header, a VLAN tag, slack.
const RX_SLOT_OVERHEAD: usize = 128;

/// Slot size of the small-frame ring for an interface MTU, and the
/// longest frame it takes: every frame of at most MTU + 18 bytes
/// (Ethernet header and one VLAN tag) lands there whole.
pub(super) fn rx_small_slot(mtu: u32) -> (usize, u32) {
    let need = mtu as usize + 18 + RX_SLOT_OVERHEAD;
    let slot = need.div_ceil(2048) * 2048;
    (slot, (slot - RX_SLOT_OVERHEAD) as u32)
}
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

/// `setsockopt(fd, SOL_PACKET, name, val)`.
pub(super) fn setopt<T>(fd: RawFd, name: libc::c_int, val: &T) -> io::Result<()> {
    sock::setsockopt(fd, SOL_PACKET, name, val)
}

/// A new packet socket; protocol 0 receives nothing until bind.
pub(super) fn packet_socket() -> io::Result<OwnedFd> {
    sock::socket(
        libc::AF_PACKET,
        libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        0,
    )
}

/// Binds a packet socket to every protocol of `ifindex`.
pub(super) fn bind(fd: RawFd, ifindex: i32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex;
    sock::bind(fd, &sll)
}
