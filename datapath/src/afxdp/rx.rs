//! Receive side: descriptors taken off the rx ring, their frames copied
//! into the batch and handed straight back to the kernel on the fill
//! ring, one index update of each ring per batch.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Xsk;
use super::sys::{XDP_STATISTICS, XdpDesc, XdpStatistics, getopt};
use super::umem::{FRAME_SIZE, RX_FRAMES, XskRing};
use crate::packet::PacketBatch;
use crate::port::{PortError, PortStats, RxQueue};

pub(super) struct AfXdpRxq {
    pub(super) xsk: Arc<Xsk>,
    pub(super) fill: XskRing<u64>,
    pub(super) rx: XskRing<XdpDesc>,
    /// Receive frames waiting to go back on the fill ring (allocated once
    /// with room for every receive frame): the kernel publishes how far it
    /// has read the fill ring lazily, so the ring may look full for a
    /// while after it handed frames back on the rx ring.
    pub(super) stash: Vec<u64>,
    pub(super) stats: Arc<PortStats>,
    /// The kernel's cumulative drop count, as last read.
    pub(super) kernel_dropped: u64,
    /// When the kernel's drop counter was last read.
    pub(super) drops_read: std::time::Instant,
    /// Polls so far (wrapping), to read the clock only now and then.
    pub(super) polls: u32,
}

/// How often the kernel's drop counter is collected.
const DROPS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);
/// Polls between two looks at the clock for [`DROPS_INTERVAL`].
const DROPS_CHECK_EVERY: u32 = 64;

/// `struct xdp_statistics` with the ring-full counters (Linux >= 5.9).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct XdpStatisticsFull {
    v1: XdpStatistics,
    rx_ring_full: u64,
    rx_fill_ring_empty_descs: u64,
    tx_ring_empty_descs: u64,
}

impl AfXdpRxq {
    /// Adds what the kernel dropped since the last call (its counters are
    /// cumulative) to `rx_dropped`.
    fn collect_kernel_drops(&mut self) {
        let Ok(s) = getopt::<XdpStatisticsFull>(self.xsk.fd.as_raw_fd(), XDP_STATISTICS) else {
            return;
        };
        let total = s.v1.rx_dropped + s.rx_ring_full;
        PortStats::add(
            &self.stats.rx_dropped,
            total.saturating_sub(self.kernel_dropped),
        );
        self.kernel_dropped = total;
    }

    /// Asks the kernel to process the fill ring (only drivers in
    /// zero-copy mode set the flag that calls for it).
    #[cold]
    fn wake(&self) {
        // SAFETY: a zero-length, non-blocking recvfrom on a socket we own:
        // it only kicks the kernel's receive processing.
        unsafe {
            libc::recvfrom(
                self.xsk.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    }
}

impl AfXdpRxq {
    /// Gives the stashed receive frames back to the kernel, as many as the
    /// fill ring has room for (one index store).
    #[inline]
    fn refill(&mut self) {
        let room = self.fill.prod_room(self.stash.len() as u32);
        for i in 0..room {
            if let Some(a) = self.stash.pop() {
                self.fill.prod_write(i, a);
            }
        }
        self.fill.prod_submit(room);
    }
}

impl AfXdpRxq {
    /// Kicks the frames a transmit queue left on the tx ring (unless a
    /// transmit queue holds the lock: it kicks itself).
    #[cold]
    fn kick_tx(&self) {
        if let Ok(mut t) = self.xsk.tx.try_lock() {
            let left = t.kick();
            self.xsk.tx_stalled.store(left, Ordering::Relaxed);
        }
    }
}

/// Where a receive frame starts (the kernel hands back an address inside
/// it, past its headroom), if it is one of the receive frames.
#[inline]
pub(super) fn rx_frame_base(addr: u64) -> Option<u64> {
    let base = addr & !(FRAME_SIZE as u64 - 1);
    (base < u64::from(RX_FRAMES) * FRAME_SIZE as u64).then_some(base)
}

impl RxQueue for AfXdpRxq {
    fn rx_batch(&mut self, batch: &mut PacketBatch) -> Result<usize, PortError> {
        let n = self.rx.cons_ready(batch.free() as u32);
        let mut got = 0u64;
        if n == 0 {
            if self.fill.needs_wakeup() {
                self.wake();
            }
        } else {
            let (mut bytes, mut bad) = (0u64, 0u64);
            for i in 0..n {
                let d = self.rx.cons_read(i);
                let Some(base) = rx_frame_base(d.addr) else {
                    bad += 1;
                    continue;
                };
                let frame = (d.addr + u64::from(d.len) <= base + FRAME_SIZE as u64)
                    .then(|| self.xsk.umem.frame(d.addr, d.len as usize))
                    .flatten();
                match (frame, batch.next_slot()) {
                    (Some(f), Some(slot)) => {
                        let buf = slot.rx_buffer();
                        buf[..f.len()].copy_from_slice(f);
                        slot.set_len(f.len());
                        batch.commit();
                        got += 1;
                        bytes += f.len() as u64;
                    }
                    _ => bad += 1,
                }
                // Never beyond the capacity: each receive frame is in the
                // stash at most once.
                if self.stash.len() < self.stash.capacity() {
                    self.stash.push(base);
                }
            }
            self.rx.cons_release(n);
            PortStats::add(&self.stats.rx_packets, got);
            PortStats::add(&self.stats.rx_bytes, bytes);
            PortStats::add(&self.stats.rx_errors, bad);
        }
        if !self.stash.is_empty() {
            self.refill();
        }
        if self.xsk.tx_stalled.load(Ordering::Relaxed) {
            self.kick_tx();
        }
        self.polls = self.polls.wrapping_add(1);
        if self.polls.is_multiple_of(DROPS_CHECK_EVERY)
            && self.drops_read.elapsed() >= DROPS_INTERVAL
        {
            self.drops_read = std::time::Instant::now();
            self.collect_kernel_drops();
        }
        Ok(got as usize)
    }

    fn wait_fd(&self) -> Option<RawFd> {
        Some(self.xsk.fd.as_raw_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_addresses_map_back_to_their_frame() {
        let f = FRAME_SIZE as u64;
        assert_eq!(rx_frame_base(256), Some(0));
        assert_eq!(rx_frame_base(3 * f + 256), Some(3 * f));
        assert_eq!(
            rx_frame_base(u64::from(RX_FRAMES - 1) * f + 1),
            Some(u64::from(RX_FRAMES - 1) * f)
        );
        // Transmit frames (after the receive ones) are not receive frames.
        assert_eq!(rx_frame_base(u64::from(RX_FRAMES) * f), None);
    }
}
