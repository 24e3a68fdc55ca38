//! Receive side: frames copied out of the TPACKET_V2/V3 rx ring into the
//! batch, offload metadata decoded, stripped VLAN tags restored.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::ring::Ring;
use super::sys::*;
use crate::packet::{Offload, PacketBatch};
use crate::port::{PortError, PortStats, RxQueue};
use crate::sock;
use wire::vnet_hdr::{self as vnet, VNET_HDR_LEN};

pub(super) struct AfPacketRxq {
    /// V2: the big-slot ring (frames longer than the small ring takes);
    /// V3: the only ring.
    pub(super) ring: Ring,
    /// V2: the small-slot ring (frames up to about the MTU).
    pub(super) small: Option<Ring>,
    /// Epoll set of both rings' sockets, to wait on as one fd.
    pub(super) epoll: Option<OwnedFd>,
    pub(super) v3: bool,
    /// V3: (packets left, offset of the next one) in the block being read.
    pub(super) cursor: Option<(u32, usize)>,
    pub(super) vnet: bool,
    pub(super) stats: Arc<PortStats>,
    /// When the kernel's drop counter was last read.
    pub(super) drops_read: std::time::Instant,
    /// Polls so far (wrapping), to read the clock only now and then.
    pub(super) polls: u32,
}

/// How often an idle receive queue collects the kernel's drop counter.
const DROPS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);
/// Polls between two looks at the clock for [`DROPS_INTERVAL`].
const DROPS_CHECK_EVERY: u32 = 64;

impl AfPacketRxq {
    /// Adds the frames the kernel dropped (ring full) since the last call
    /// to `rx_dropped` (reading `PACKET_STATISTICS` resets it).
    pub(super) fn collect_kernel_drops(&mut self) {
        let mut dropped = kernel_drops(&self.ring);
        if let Some(small) = &self.small {
            dropped += kernel_drops(small);
        }
        PortStats::add(&self.stats.rx_dropped, dropped);
    }
}

/// Frames the kernel dropped on `ring`'s socket (ring full) since the last
/// call: reading `PACKET_STATISTICS` resets the counters.
fn kernel_drops(ring: &Ring) -> u64 {
    // `struct tpacket_stats`: packets, drops.
    sock::getsockopt::<[u32; 2]>(ring.fd.as_raw_fd(), SOL_PACKET, PACKET_STATISTICS)
        .map_or(0, |st| u64::from(st[1]))
}

/// An epoll set holding both rings' sockets (level-triggered): readable
/// when either ring holds a frame, so a sleeping PMD waits on one fd.
pub(super) fn epoll_both(a: &Ring, b: &Ring) -> io::Result<OwnedFd> {
    // SAFETY: plain epoll_create1(2); the result is checked.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    let ep = unsafe { OwnedFd::from_raw_fd(fd) };
    for r in [a, b] {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        // SAFETY: registers a live socket fd with a live epoll_event.
        let rc = unsafe {
            libc::epoll_ctl(
                ep.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                r.fd.as_raw_fd(),
                &mut ev,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(ep)
}

/// Per-batch receive counters.
#[derive(Default)]
pub(super) struct RxCount {
    pub(super) n: u64,
    pub(super) bytes: u64,
    pub(super) dropped: u64,
}

/// Where the kernel put a received frame inside a ring slot or block.
pub(super) struct RxFrame {
    /// Offset of the Ethernet header.
    pub(super) mac: usize,
    pub(super) snaplen: usize,
    pub(super) len: usize,
    pub(super) status: u32,
    pub(super) vlan_tci: u16,
    pub(super) vlan_tpid: u16,
}

/// Copies the frame described by `f` out of `area` into the next batch
/// slot, with its virtio_net_hdr (just before the frame) decoded and a
/// VLAN tag the kernel moved into metadata put back in place.
fn deliver(area: &[u8], f: &RxFrame, vnet: bool, batch: &mut PacketBatch, c: &mut RxCount) {
    let Some(slot) = batch.next_slot() else {
        return;
    };
    let hdr_len = if vnet { VNET_HDR_LEN } else { 0 };
    let (Some(data), Some(hdr)) = (
        area.get(f.mac..f.mac.saturating_add(f.snaplen)),
        area.get(f.mac.saturating_sub(hdr_len)..f.mac),
    ) else {
        c.dropped += 1;
        return;
    };
    if f.snaplen != f.len || f.mac < hdr_len {
        // Truncated by the ring: never forward a partial frame.
        c.dropped += 1;
        return;
    }
    let mut offload = if vnet {
        vnet::decode(hdr).unwrap_or_default()
    } else {
        Offload::default()
    };
    let tagged = f.status & TP_STATUS_VLAN_VALID != 0 && data.len() >= 12;
    let buf = slot.rx_buffer();
    let len = if tagged && data.len() + 4 <= buf.len() {
        let tpid = if f.status & TP_STATUS_VLAN_TPID_VALID != 0 && f.vlan_tpid != 0 {
            f.vlan_tpid
        } else {
            0x8100
        };
        buf[..12].copy_from_slice(&data[..12]);
        buf[12..14].copy_from_slice(&tpid.to_be_bytes());
        buf[14..16].copy_from_slice(&f.vlan_tci.to_be_bytes());
        buf[16..data.len() + 4].copy_from_slice(&data[12..]);
        if offload.flags & Offload::F_NEEDS_CSUM != 0 {
            offload.csum_start = offload.csum_start.saturating_add(4);
        }
        if offload.gso_type != Offload::GSO_NONE && offload.hdr_len != 0 {
            offload.hdr_len = offload.hdr_len.saturating_add(4);
        }
        data.len() + 4
    } else if !tagged && data.len() <= buf.len() {
        buf[..data.len()].copy_from_slice(data);
        data.len()
    } else {
        c.dropped += 1;
        return;
    };
    slot.set_len(len);
    slot.offload = offload;
    c.bytes += len as u64;
    c.n += 1;
    batch.commit();
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_ne_bytes([s[0], s[1]]))
}

impl AfPacketRxq {
    /// Drains the V2 ring(s) into `batch`. With two rings, frames leave in
    /// the order the kernel stamped them (`tp_sec`/`tp_nsec`, taken as
    /// each frame entered its ring), so a flow whose frames are split
    /// between the rings by size keeps its order.
    pub(super) fn rx_v2(&mut self, batch: &mut PacketBatch, c: &mut RxCount) {
        let vnet = self.vnet;
        while batch.free() > 0 {
            let big = v2_head(&self.ring);
            let small = self.small.as_ref().and_then(v2_head);
            let ring = match (big, small) {
                (None, None) => break,
                (Some(_), None) => &mut self.ring,
                (Some(b), Some(s)) if b < s => &mut self.ring,
                (_, Some(_)) => match self.small.as_mut() {
                    Some(r) => r,
                    None => break,
                },
            };
            v2_take(ring, vnet, batch, c);
        }
    }

    pub(super) fn rx_v3(&mut self, batch: &mut PacketBatch, c: &mut RxCount) {
        while batch.free() > 0 {
            let b = self.ring.idx;
            let (left, off) = match self.cursor {
                Some(cur) => cur,
                None => {
                    if self.ring.block_status(b).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                        break;
                    }
                    let blk = self.ring.block_bytes(b);
                    (u32_at(blk, 12), u32_at(blk, 16) as usize)
                }
            };
            if left == 0 {
                self.ring
                    .block_status(b)
                    .store(TP_STATUS_KERNEL, Ordering::Release);
                self.ring.idx = (b + 1) % self.ring.geo.blocks;
                self.cursor = None;
                continue;
            }
            let blk = self.ring.block_bytes(b);
            // struct tpacket3_hdr at `off`.
            let next = u32_at(blk, off) as usize;
            let f = RxFrame {
                snaplen: u32_at(blk, off + 12) as usize,
                len: u32_at(blk, off + 16) as usize,
                status: u32_at(blk, off + 20),
                mac: off + usize::from(u16_at(blk, off + 24)),
                vlan_tci: u32_at(blk, off + 32) as u16,
                vlan_tpid: u16_at(blk, off + 36),
            };
            deliver(blk, &f, self.vnet, batch, c);
            let left = if next == 0 { 0 } else { left - 1 };
            self.cursor = Some((left, off + next));
        }
    }
}

/// The kernel's timestamp of `ring`'s next frame, when user space owns it.
#[inline]
fn v2_head(ring: &Ring) -> Option<(u32, u32)> {
    let i = ring.idx;
    if ring.status(i).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
        return None;
    }
    // SAFETY: slot `i` begins with a tpacket2_hdr written by the kernel
    // before it set TP_STATUS_USER (acquired above).
    let hdr: Tpacket2Hdr = unsafe { std::ptr::read_unaligned(ring.slot(i).cast()) };
    Some((hdr.tp_sec, hdr.tp_nsec))
}

/// Delivers `ring`'s next frame (which user space owns: [`v2_head`]) into
/// `batch` and hands its slot back to the kernel.
#[inline]
fn v2_take(ring: &mut Ring, vnet: bool, batch: &mut PacketBatch, c: &mut RxCount) {
    let i = ring.idx;
    let area = ring.bytes(i);
    // SAFETY: as in `v2_head`: the header is the kernel's, owned by us.
    let hdr: Tpacket2Hdr = unsafe { std::ptr::read_unaligned(area.as_ptr().cast()) };
    let f = RxFrame {
        mac: usize::from(hdr.tp_mac),
        snaplen: hdr.tp_snaplen as usize,
        len: hdr.tp_len as usize,
        status: hdr.tp_status,
        vlan_tci: hdr.tp_vlan_tci,
        vlan_tpid: hdr.tp_vlan_tpid,
    };
    deliver(area, &f, vnet, batch, c);
    ring.status(i).store(TP_STATUS_KERNEL, Ordering::Release);
    ring.idx = (i + 1) % ring.n_frames;
}

impl RxQueue for AfPacketRxq {
    fn rx_batch(&mut self, batch: &mut PacketBatch) -> Result<usize, PortError> {
        let mut c = RxCount::default();
        if self.v3 {
            self.rx_v3(batch, &mut c);
        } else {
            self.rx_v2(batch, &mut c);
        }
        PortStats::add(&self.stats.rx_packets, c.n);
        PortStats::add(&self.stats.rx_bytes, c.bytes);
        PortStats::add(&self.stats.rx_dropped, c.dropped);
        // The kernel's drop counter is read every DROPS_INTERVAL, busy or
        // idle (a ring overflows precisely when the queue is busy); the
        // clock is read only every DROPS_CHECK_EVERY polls.
        self.polls = self.polls.wrapping_add(1);
        if self.polls.is_multiple_of(DROPS_CHECK_EVERY)
            && self.drops_read.elapsed() >= DROPS_INTERVAL
        {
            self.drops_read = std::time::Instant::now();
            self.collect_kernel_drops();
        }
        Ok(c.n as usize)
    }

    fn wait_fd(&self) -> Option<RawFd> {
        Some(match &self.epoll {
            Some(ep) => ep.as_raw_fd(),
            None => self.ring.fd.as_raw_fd(),
        })
    }
}
