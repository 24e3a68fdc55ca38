//! Transmit side: each PMD's queue copies frames into transmit frames it
//! holds (no lock), then once per batch takes the socket's transmit half,
//! puts the descriptors on the tx ring, kicks the kernel with one `sendto`
//! when the ring asks for it, and takes back completed frames.
//!
//! Offloads: AF_XDP carries no offload metadata, so partial checksums are
//! completed and super-frames segmented in software before they leave.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Xsk;
use super::sys::XdpDesc;
use super::umem::{FRAME_SIZE, XskRing};
use crate::offload::{Prepared, TxOffload};
use crate::port::{PortError, PortStats, TxQueue};
use crate::sock;

/// Transmit frames a queue holds for the frames of its next batch.
const LOCAL: usize = 64;
/// `sendto` calls per kick at most (a copy-mode socket sends up to 32
/// frames per call, then says EAGAIN).
const MAX_KICKS: usize = 16;

/// The transmit half of one socket: its tx and completion rings and the
/// free transmit frames, shared by the PMDs that send through it (behind
/// [`Xsk::tx`]).
pub(super) struct XskTx {
    /// The socket (owned by the [`Xsk`] this lives in).
    pub(super) fd: RawFd,
    pub(super) tx: XskRing<XdpDesc>,
    pub(super) comp: XskRing<u64>,
    /// Free transmit frames (allocated once with room for all of them).
    pub(super) free: Vec<u64>,
    pub(super) name: String,
    pub(super) stats: Arc<PortStats>,
}

impl XskTx {
    /// Takes completed frames back from the completion ring.
    fn reap(&mut self) {
        let n = self.comp.cons_ready(u32::MAX);
        for i in 0..n {
            let a = self.comp.cons_read(i);
            if self.free.len() < self.free.capacity() {
                self.free.push(a & !(FRAME_SIZE as u64 - 1));
            }
        }
        self.comp.cons_release(n);
    }

    /// Lets the kernel transmit what the tx ring holds, when it asks for a
    /// syscall (always, in copy mode): one `sendto` per 32 frames. Returns
    /// whether frames are left on the ring (the device pushed back).
    pub(super) fn kick(&mut self) -> bool {
        self.tx.prod_refresh();
        if self.tx.prod_outstanding() == 0 {
            return false;
        }
        for _ in 0..MAX_KICKS {
            if !self.tx.needs_wakeup() {
                return false;
            }
            if let Err(e) = sock::kick_tx(self.fd) {
                match e.raw_os_error() {
                    // EAGAIN: more than one call's worth queued, or the
                    // device is busy; EBUSY: the device dropped a frame
                    // (it is consumed) and the rest waits. Go on while
                    // frames are left.
                    Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS) => {}
                    _ => {
                        PortStats::add(&self.stats.tx_errors, 1);
                        tracing::debug!("{}: sendto: {e}", self.name);
                        return false;
                    }
                }
            }
            self.tx.prod_refresh();
            if self.tx.prod_outstanding() == 0 {
                return false;
            }
        }
        true
    }
}

/// One PMD's transmit queue.
pub(super) struct AfXdpTxq {
    pub(super) tx: TxSide,
    pub(super) offload: TxOffload,
}

pub(super) struct TxSide {
    pub(super) xsk: Arc<Xsk>,
    /// Free transmit frames this queue holds.
    pub(super) local: [u64; LOCAL],
    pub(super) n_local: usize,
    /// Filled frames waiting for the next push.
    pub(super) pending: [XdpDesc; LOCAL],
    pub(super) n_pending: usize,
    pub(super) stats: Arc<PortStats>,
    pub(super) packets: u64,
    pub(super) bytes: u64,
    pub(super) dropped: u64,
}

impl TxSide {
    pub(super) fn new(xsk: Arc<Xsk>, stats: Arc<PortStats>) -> TxSide {
        TxSide {
            xsk,
            local: [0; LOCAL],
            n_local: 0,
            pending: [XdpDesc::default(); LOCAL],
            n_pending: 0,
            stats,
            packets: 0,
            bytes: 0,
            dropped: 0,
        }
    }

    /// Copies one frame into a transmit frame of this queue.
    fn put(&mut self, frame: &[u8]) {
        if frame.len() > FRAME_SIZE {
            // Longer than a UMEM frame (a jumbo frame): cannot leave here.
            self.dropped += 1;
            return;
        }
        if self.n_local == 0 || self.n_pending == LOCAL {
            self.push();
        }
        if self.n_local == 0 {
            self.dropped += 1;
            return;
        }
        self.n_local -= 1;
        let addr = self.local[self.n_local];
        let Some(buf) = self.xsk.umem.frame_mut(addr) else {
            self.dropped += 1;
            return;
        };
        buf[..frame.len()].copy_from_slice(frame);
        self.pending[self.n_pending] = XdpDesc {
            addr,
            len: frame.len() as u32,
            options: 0,
        };
        self.n_pending += 1;
    }

    /// Under the socket's transmit lock (once per batch): takes back
    /// completed frames, puts the pending descriptors on the tx ring,
    /// kicks the kernel, and refills this queue's frames.
    fn push(&mut self) {
        let mut s = self.xsk.tx.lock().unwrap_or_else(|e| e.into_inner());
        s.reap();
        let want = self.n_pending as u32;
        let room = s.tx.prod_room(want);
        for (i, d) in self.pending[..room as usize].iter().enumerate() {
            s.tx.prod_write(i as u32, *d);
            self.packets += 1;
            self.bytes += u64::from(d.len);
        }
        s.tx.prod_submit(room);
        // The ring is full: what did not fit is dropped, its frames freed.
        for d in &self.pending[room as usize..self.n_pending] {
            self.dropped += 1;
            s.free.push(d.addr);
        }
        self.n_pending = 0;
        // Frames the device did not take now are kicked again by the
        // receive queue's next poll (flush comes only after sends).
        let left = s.kick();
        self.xsk.tx_stalled.store(left, Ordering::Relaxed);
        // In copy mode the kernel sends within the kick: most frames are
        // complete already.
        s.reap();
        while self.n_local < LOCAL {
            let Some(a) = s.free.pop() else { break };
            self.local[self.n_local] = a;
            self.n_local += 1;
        }
    }
}

impl Drop for TxSide {
    fn drop(&mut self) {
        // Frames this queue holds go back to the socket.
        let mut s = self.xsk.tx.lock().unwrap_or_else(|e| e.into_inner());
        for &a in &self.local[..self.n_local] {
            s.free.push(a);
        }
        for d in &self.pending[..self.n_pending] {
            s.free.push(d.addr);
        }
    }
}

impl TxQueue for AfXdpTxq {
    fn send(&mut self, pkt: &mut crate::packet::Packet) -> Result<(), PortError> {
        match self.offload.prepare(pkt) {
            Ok(Prepared::Single) => self.tx.put(pkt.data()),
            Ok(Prepared::Segments(_)) => {
                for s in self.offload.segments() {
                    self.tx.put(s);
                }
            }
            Err(e) => {
                tracing::debug!("dropping frame: {e}");
                PortStats::add(&self.tx.stats.tx_errors, 1);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PortError> {
        let t = &mut self.tx;
        if t.n_pending != 0 {
            t.push();
        }
        PortStats::add(&t.stats.tx_packets, std::mem::take(&mut t.packets));
        PortStats::add(&t.stats.tx_bytes, std::mem::take(&mut t.bytes));
        PortStats::add(&t.stats.tx_dropped, std::mem::take(&mut t.dropped));
        Ok(())
    }
}
