//! Transmit side: frames (or their software-completed segments) copied
//! into the tx ring, one `sendto` per batch.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::ring::Ring;
use super::sys::*;
use crate::offload::{Prepared, TxOffload};
use crate::packet::{Offload, Packet};
use crate::port::{PortError, PortStats, TxQueue};
use wire::vnet_hdr::{self as vnet, VNET_HDR_LEN};

pub(super) struct AfPacketTxq {
    pub(super) tx: TxRing,
    pub(super) offload: TxOffload,
}

pub(super) struct TxRing {
    pub(super) ring: Ring,
    pub(super) vnet: bool,
    pub(super) stats: Arc<PortStats>,
    pub(super) name: String,
    /// Slots filled since the last `sendto`.
    pub(super) queued: usize,
    pub(super) packets: u64,
    pub(super) bytes: u64,
    pub(super) dropped: u64,
}

impl TxRing {
    /// Copies one frame into the next free slot; false when the ring is full.
    pub(super) fn put(&mut self, frame: &[u8], offload: &Offload) -> bool {
        let hdr_len = if self.vnet { VNET_HDR_LEN } else { 0 };
        if TX_DATA_OFFSET + hdr_len + frame.len() > self.ring.geo.frame_size {
            self.dropped += 1;
            return true;
        }
        let i = self.ring.idx;
        if self.ring.status(i).load(Ordering::Acquire) != TP_STATUS_AVAILABLE {
            return false;
        }
        let slot = self.ring.bytes(i);
        let data = &mut slot[TX_DATA_OFFSET..];
        if self.vnet {
            vnet::encode(offload, data);
        }
        data[hdr_len..hdr_len + frame.len()].copy_from_slice(frame);
        let tp_len = (hdr_len + frame.len()) as u32;
        slot[4..8].copy_from_slice(&tp_len.to_ne_bytes());
        self.ring
            .status(i)
            .store(TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.ring.idx = (i + 1) % self.ring.n_frames;
        self.queued += 1;
        self.packets += 1;
        self.bytes += frame.len() as u64;
        true
    }

    pub(super) fn put_or_kick(&mut self, frame: &[u8], offload: &Offload) {
        if !self.put(frame, offload) {
            self.kick();
            if !self.put(frame, offload) {
                self.dropped += 1;
            }
        }
    }

    /// Asks the kernel to transmit every slot marked for sending.
    pub(super) fn kick(&mut self) {
        if self.queued == 0 {
            return;
        }
        self.queued = 0;
        // SAFETY: sendto with no buffer triggers transmission of the tx ring
        // of a socket we own.
        let r = unsafe {
            libc::sendto(
                self.ring.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // The device queue is full: the slots stay marked for
                // sending and go with the next kick.
                Some(libc::EAGAIN | libc::ENOBUFS) => self.queued = 1,
                _ => {
                    PortStats::add(&self.stats.tx_errors, 1);
                    tracing::debug!("{}: sendto: {e}", self.name);
                }
            }
        }
    }
}

impl TxQueue for AfPacketTxq {
    fn send(&mut self, pkt: &mut Packet) -> Result<(), PortError> {
        match self.offload.prepare(pkt) {
            Ok(Prepared::Single) => {
                let o = pkt.offload;
                self.tx.put_or_kick(pkt.data(), &o);
            }
            Ok(Prepared::Segments(_)) => {
                for s in self.offload.segments() {
                    self.tx.put_or_kick(s, &Offload::default());
                }
            }
            Err(e) => {
                tracing::debug!("{}: dropping frame: {e}", self.tx.name);
                PortStats::add(&self.tx.stats.tx_errors, 1);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PortError> {
        let t = &mut self.tx;
        t.kick();
        PortStats::add(&t.stats.tx_packets, std::mem::take(&mut t.packets));
        PortStats::add(&t.stats.tx_bytes, std::mem::take(&mut t.bytes));
        PortStats::add(&t.stats.tx_dropped, std::mem::take(&mut t.dropped));
        Ok(())
    }
}
