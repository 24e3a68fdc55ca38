//! Transmit side: frames (or their software-completed segments) copied
//! into the tx ring, one `sendto` per batch; a frame too big for a ring
//! slot goes out through a second, ring-less socket (one `sendmsg`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::ring::Ring;
use super::sys::*;
use crate::offload::{Prepared, TxOffload};
use crate::packet::{Offload, Packet};
use crate::port::{PortError, PortStats, TxQueue};
use crate::sock;
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
    /// Socket without a ring for frames bigger than a slot (opened on
    /// first use: a socket with a tx ring only ever sends from its ring).
    pub(super) big: Option<OwnedFd>,
    pub(super) ifindex: i32,
    pub(super) packets: u64,
    pub(super) bytes: u64,
    pub(super) dropped: u64,
}

impl TxRing {
    /// Copies one frame into the next free slot; false when the ring is full.
    pub(super) fn put(&mut self, frame: &[u8], offload: &Offload) -> bool {
        let hdr_len = if self.vnet { VNET_HDR_LEN } else { 0 };
        if TX_DATA_OFFSET + hdr_len + frame.len() > self.ring.geo.frame_size {
            self.send_big(frame, offload, hdr_len);
            return true;
        }
        let i = self.ring.idx;
        if self.ring.status(i).load(Ordering::Acquire) != TP_STATUS_AVAILABLE {
            return false;
        }
        let slot = self.ring.bytes(i);
        let data = &mut slot[TX_DATA_OFFSET..];
        if self.vnet {
            let mut o = *offload;
            if o.gso_type == Offload::GSO_NONE {
                // The kernel copies `hdr_len` bytes of a slot into the
                // skb's own buffer and attaches the rest as fragments that
                // point into the ring. A veth (or any forward into another
                // namespace) must then copy those fragments into a freshly
                // allocated page, per packet; asking for the whole frame to
                // be copied is one small memcpy instead. The frame fits a
                // slot, so its length fits the field.
                o.hdr_len = frame.len() as u16;
            }
            vnet::encode(&o, data);
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

    /// Sends a frame too big for a ring slot with one `sendmsg`, after
    /// the slots already queued (so frames leave in order).
    #[cold]
    fn send_big(&mut self, frame: &[u8], offload: &Offload, hdr_len: usize) {
        self.kick();
        if self.big.is_none() {
            match self.open_big() {
                Ok(fd) => self.big = Some(fd),
                Err(e) => {
                    tracing::debug!("{}: socket for large frames: {e}", self.name);
                    self.dropped += 1;
                    return;
                }
            }
        }
        let Some(fd) = self.big.as_ref() else {
            return;
        };
        let mut hdr = [0u8; VNET_HDR_LEN];
        vnet::encode(offload, &mut hdr);
        let iov = [
            libc::iovec {
                iov_base: hdr.as_mut_ptr().cast(),
                iov_len: hdr_len,
            },
            libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            },
        ];
        // SAFETY: msghdr is plain data; all-zero is valid (no address, no
        // control data).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = 2;
        // SAFETY: both iovecs point into live buffers of the stated
        // lengths, which sendmsg only reads; the socket is ours.
        let r = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN | libc::ENOBUFS) => self.dropped += 1,
                _ => {
                    PortStats::add(&self.stats.tx_errors, 1);
                    tracing::debug!("{}: sendmsg: {e}", self.name);
                }
            }
            return;
        }
        self.packets += 1;
        self.bytes += frame.len() as u64;
    }

    fn open_big(&self) -> io::Result<OwnedFd> {
        let fd = packet_socket()?;
        if self.vnet {
            setopt(fd.as_raw_fd(), PACKET_VNET_HDR, &1i32)?;
        }
        let _ = setopt(fd.as_raw_fd(), PACKET_QDISC_BYPASS, &1i32);
        bind(fd.as_raw_fd(), self.ifindex)?;
        Ok(fd)
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
        if let Err(e) = sock::kick_tx(self.ring.fd.as_raw_fd()) {
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
