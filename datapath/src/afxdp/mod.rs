//! AF_XDP ports (`afxdp`): a kernel interface whose frames an XDP program
//! redirects into AF_XDP sockets, one per receive queue, as OVS's
//! netdev-afxdp does.
//!
//! - XDP ([`bpf`]): an XSKMAP and a five-instruction program that
//!   redirects each frame to the socket of its receive queue (and passes
//!   it to the kernel stack when that queue has none), attached with a
//!   BPF link in driver mode (`xdp-mode=native`), generic mode
//!   (`generic`), or driver mode if the driver has it and generic
//!   otherwise (`best-effort`, the default). The link lives as long as
//!   the port: closing it detaches the program.
//! - Per queue ([`umem`]): one socket with its own UMEM of
//!   [`umem::RX_FRAMES`] receive and [`umem::TX_FRAMES`] transmit frames
//!   of 2 KiB, and its four rings (fill, rx, tx, completion) mmap'ed.
//!   Bound zero-copy when the driver allows it (native mode), copy mode
//!   otherwise (veth), with `XDP_USE_NEED_WAKEUP`.
//! - Receive ([`rx`]): frames copied from the UMEM into the batch; their
//!   frames go straight back on the fill ring.
//! - Transmit ([`tx`]): each PMD copies into transmit frames it holds, then
//!   once per batch takes the socket's transmit half (a lock, per batch),
//!   queues the descriptors, kicks with `sendto` when the ring asks for it,
//!   and takes back completed frames.
//!
//! AF_XDP has no offload metadata: received frames are taken as they are
//! (a frame the peer left with a partial checksum stays so: hosts on a
//! veth should run with `tx off`, as OVS documents for AF_XDP), and
//! frames leave with checksums completed and super-frames segmented.

mod bpf;
mod rx;
mod sys;
mod tx;
mod umem;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

pub use bpf::{XdpError, XdpMode};

use crate::netdev;
use crate::offload::TxOffload;
use crate::port::{OffloadCaps, Port, PortError, PortInfo, PortKind, PortStats, RxQueue, TxQueue};
use rx::AfXdpRxq;
use sys::*;
use tx::{AfXdpTxq, TxSide, XskTx};
use umem::{FRAME_SIZE, RX_FRAMES, TX_FRAMES, Umem, XskRing};

/// Options of an AF_XDP port (`options:xdp-mode`, `options:n_rxq`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AfXdpOptions {
    pub mode: XdpMode,
    /// Receive queues (sockets), bound to the device's queues 0..n_rxq;
    /// `None`: every receive queue the device has (a veth has one per CPU
    /// by default, and a frame is taken only from a queue with a socket:
    /// on the others it goes to the kernel stack).
    pub n_rxq: Option<u32>,
}

/// Largest accepted `n_rxq`.
pub const MAX_RXQ: u32 = 64;

/// One AF_XDP socket, its UMEM and its transmit half.
struct Xsk {
    umem: Umem,
    fd: OwnedFd,
    /// The tx and completion rings and free transmit frames, taken once
    /// per batch by the PMDs that send through this socket.
    tx: Mutex<XskTx>,
    /// Frames were left on the tx ring by the last kick: the receive
    /// queue's next poll kicks again.
    tx_stalled: AtomicBool,
}

/// A kernel interface opened with AF_XDP sockets.
pub struct AfXdpPort {
    name: String,
    stats: Arc<PortStats>,
    /// Receive halves, until each queue's PMD takes its own.
    rx: Mutex<Vec<Option<AfXdpRxq>>>,
    /// The sockets (PMD `p` sends through socket `p % n`).
    xsks: Vec<Arc<Xsk>>,
    /// The XDP program; dropped with the port, which detaches it.
    prog: bpf::XdpProgram,
    zerocopy: bool,
}

fn invalid(name: &str, msg: impl std::fmt::Display) -> PortError {
    PortError::Invalid {
        port: name.to_string(),
        msg: msg.to_string(),
    }
}

impl AfXdpPort {
    /// Opens interface `name`: brings it up, attaches the XDP program and
    /// binds one socket per receive queue.
    pub fn open(name: &str, opts: AfXdpOptions) -> Result<Arc<AfXdpPort>, PortError> {
        let ifindex = netdev::port_ifindex(name)?;
        let device_queues = netdev::n_rx_queues(name).unwrap_or(1).max(1);
        let n_rxq = opts.n_rxq.unwrap_or(device_queues.min(MAX_RXQ));
        if n_rxq == 0 || n_rxq > MAX_RXQ {
            return Err(invalid(
                name,
                format!("n_rxq {n_rxq} is out of range 1..={MAX_RXQ}"),
            ));
        }
        if n_rxq < device_queues {
            tracing::warn!(
                "{name}: {n_rxq} of {device_queues} receive queues have an AF_XDP socket; \
                 frames arriving on the others go to the kernel stack"
            );
        }
        netdev::set_up(name).map_err(|e| PortError::io(name, "bring up", e))?;
        let prog =
            bpf::XdpProgram::attach(ifindex, n_rxq, opts.mode).map_err(|e| invalid(name, e))?;
        let stats = Arc::new(PortStats::default());
        let (mut rxs, mut xsks) = (Vec::new(), Vec::new());
        let mut zerocopy = prog.native();
        for q in 0..n_rxq {
            let (xsk, rx, zc) = open_queue(name, ifindex, q, zerocopy, &stats)?;
            zerocopy = zc;
            prog.set_socket(q, xsk.fd.as_raw_fd())
                .map_err(|e| invalid(name, e))?;
            rxs.push(Some(rx));
            xsks.push(xsk);
        }
        tracing::info!(
            "{name}: AF_XDP port open (ifindex {ifindex}, {} mode, {}, {} queue(s))",
            if prog.native() { "native" } else { "generic" },
            if zerocopy { "zero-copy" } else { "copy" },
            n_rxq
        );
        Ok(Arc::new(AfXdpPort {
            name: name.to_string(),
            stats,
            rx: Mutex::new(rxs),
            xsks,
            prog,
            zerocopy,
        }))
    }

    /// Whether the program runs in the driver (`native`) rather than in
    /// the generic (skb) hook.
    pub fn native(&self) -> bool {
        self.prog.native()
    }

    /// Whether the sockets are bound zero-copy.
    pub fn zerocopy(&self) -> bool {
        self.zerocopy
    }
}

/// Creates, configures and binds the socket of queue `q`; `try_zc`: try
/// zero-copy first. Returns whether it is bound zero-copy.
fn open_queue(
    name: &str,
    ifindex: i32,
    q: u32,
    try_zc: bool,
    stats: &Arc<PortStats>,
) -> Result<(Arc<Xsk>, AfXdpRxq, bool), PortError> {
    let err = |op: &'static str| move |e| PortError::io(name, op, e);
    let fd = xsk_socket().map_err(err("socket(AF_XDP)"))?;
    let raw = fd.as_raw_fd();
    let umem = Umem::register(raw, RX_FRAMES + TX_FRAMES).map_err(err("XDP_UMEM_REG"))?;
    setopt(raw, XDP_UMEM_FILL_RING, &RX_FRAMES).map_err(err("XDP_UMEM_FILL_RING"))?;
    setopt(raw, XDP_UMEM_COMPLETION_RING, &TX_FRAMES).map_err(err("XDP_UMEM_COMPLETION_RING"))?;
    setopt(raw, XDP_RX_RING, &RX_FRAMES).map_err(err("XDP_RX_RING"))?;
    setopt(raw, XDP_TX_RING, &TX_FRAMES).map_err(err("XDP_TX_RING"))?;
    let off: XdpMmapOffsets = getopt(raw, XDP_MMAP_OFFSETS).map_err(err("XDP_MMAP_OFFSETS"))?;
    let mut fill = XskRing::<u64>::map(raw, XDP_UMEM_PGOFF_FILL_RING, &off.fr, RX_FRAMES)
        .map_err(err("mmap fill ring"))?;
    let comp = XskRing::<u64>::map(raw, XDP_UMEM_PGOFF_COMPLETION_RING, &off.cr, TX_FRAMES)
        .map_err(err("mmap completion ring"))?;
    let rx = XskRing::<XdpDesc>::map(raw, XDP_PGOFF_RX_RING, &off.rx, RX_FRAMES)
        .map_err(err("mmap rx ring"))?;
    let txr = XskRing::<XdpDesc>::map(raw, XDP_PGOFF_TX_RING, &off.tx, TX_FRAMES)
        .map_err(err("mmap tx ring"))?;
    // Every receive frame starts on the fill ring.
    let n = fill.prod_room(RX_FRAMES);
    for i in 0..n {
        fill.prod_write(i, u64::from(i) * FRAME_SIZE as u64);
    }
    fill.prod_submit(n);
    let mut zc = try_zc;
    if try_zc && let Err(e) = bind(raw, ifindex, q, XDP_ZEROCOPY | XDP_USE_NEED_WAKEUP) {
        tracing::debug!("{name}: queue {q}: no zero-copy ({e}); copy mode");
        zc = false;
    }
    if !zc {
        bind(raw, ifindex, q, XDP_COPY | XDP_USE_NEED_WAKEUP).map_err(err("bind(AF_XDP)"))?;
    }
    let mut free = Vec::with_capacity(TX_FRAMES as usize);
    free.extend((RX_FRAMES..RX_FRAMES + TX_FRAMES).map(|i| u64::from(i) * FRAME_SIZE as u64));
    let tx = XskTx {
        fd: raw,
        tx: txr,
        comp,
        free,
        name: name.to_string(),
        stats: stats.clone(),
    };
    let xsk = Arc::new(Xsk {
        umem,
        fd,
        tx: Mutex::new(tx),
        tx_stalled: AtomicBool::new(false),
    });
    let rxq = AfXdpRxq {
        xsk: xsk.clone(),
        fill,
        rx,
        stash: Vec::with_capacity(RX_FRAMES as usize),
        stats: stats.clone(),
        kernel_dropped: 0,
        drops_read: std::time::Instant::now(),
        polls: 0,
    };
    Ok((xsk, rxq, zc))
}

impl Port for AfXdpPort {
    fn info(&self) -> PortInfo {
        PortInfo::of_netdev(&self.name, PortKind::AfXdp, self.xsks.len())
    }

    fn stats(&self) -> Arc<PortStats> {
        self.stats.clone()
    }

    fn link_up(&self) -> bool {
        netdev::link_up(&self.name)
    }

    fn open_rxq(&self, q: usize) -> Result<Box<dyn RxQueue>, PortError> {
        let rxq = self
            .rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(q)
            .and_then(Option::take)
            .ok_or_else(|| {
                invalid(
                    &self.name,
                    format!("receive queue {q} does not exist or is already open"),
                )
            })?;
        Ok(Box::new(rxq))
    }

    fn open_txq(&self, pmd: usize) -> Result<Box<dyn TxQueue>, PortError> {
        let i = pmd % self.xsks.len();
        Ok(Box::new(AfXdpTxq {
            tx: TxSide::new(self.xsks[i].clone(), self.stats.clone()),
            offload: TxOffload::new(OffloadCaps::default()),
        }))
    }
}
