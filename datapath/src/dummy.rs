//! An in-memory port: tests inject frames into its receive queues and
//! collect what the datapath transmitted on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};

use crate::offload::{Prepared, TxOffload};
use crate::packet::{Offload, Packet, PacketBatch};
use crate::port::{OffloadCaps, Port, PortError, PortInfo, PortKind, PortStats, RxQueue, TxQueue};
use crate::wakeup::EventFd;

/// A frame the datapath transmitted on a dummy port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentFrame {
    pub data: Vec<u8>,
    /// Offload state it left with (within the port's caps).
    pub offload: Offload,
}

/// A frame waiting in a receive queue.
type Injected = (Vec<u8>, Offload);

struct RxSide {
    rx: Receiver<Injected>,
    wake: Arc<EventFd>,
}

/// An in-memory port.
pub struct DummyPort {
    name: String,
    mac: [u8; 6],
    caps: OffloadCaps,
    stats: Arc<PortStats>,
    up: AtomicBool,
    inject: Vec<(Sender<Injected>, Arc<EventFd>)>,
    rx_sides: Mutex<Vec<Option<RxSide>>>,
    sent_tx: Sender<SentFrame>,
    sent_rx: Receiver<SentFrame>,
}

impl DummyPort {
    /// A dummy port with one receive queue and no offload caps.
    pub fn new(name: &str) -> Arc<DummyPort> {
        DummyPort::with(name, 1, OffloadCaps::default())
    }

    /// A dummy port with `n_rxq` receive queues and the given tx caps.
    pub fn with(name: &str, n_rxq: usize, caps: OffloadCaps) -> Arc<DummyPort> {
        let mut inject = Vec::new();
        let mut sides = Vec::new();
        for _ in 0..n_rxq.max(1) {
            let (tx, rx) = unbounded();
            let wake = Arc::new(EventFd::new().expect("eventfd"));
            inject.push((tx, wake.clone()));
            sides.push(Some(RxSide { rx, wake }));
        }
        let (sent_tx, sent_rx) = unbounded();
        let h = name
            .bytes()
            .fold(0u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
        Arc::new(DummyPort {
            name: name.to_string(),
            mac: [0x02, 0xd0, 0, 0, 0, h],
            caps,
            stats: Arc::new(PortStats::default()),
            up: AtomicBool::new(true),
            inject,
            rx_sides: Mutex::new(sides),
            sent_tx,
            sent_rx,
        })
    }

    /// Queues `frame` for reception on receive queue 0.
    pub fn inject(&self, frame: &[u8]) {
        self.inject_with(0, frame, Offload::default());
    }

    /// Queues `frame` with offload metadata on receive queue `q`.
    pub fn inject_with(&self, q: usize, frame: &[u8], offload: Offload) {
        if let Some((tx, wake)) = self.inject.get(q) {
            let _ = tx.send((frame.to_vec(), offload));
            wake.signal();
        }
    }

    /// Waits up to `timeout` for the next transmitted frame.
    pub fn recv_sent(&self, timeout: Duration) -> Option<SentFrame> {
        self.sent_rx.recv_timeout(timeout).ok()
    }

    /// Everything transmitted so far and not yet taken.
    pub fn take_sent(&self) -> Vec<SentFrame> {
        self.sent_rx.try_iter().collect()
    }

    pub fn set_link_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }
}

impl Port for DummyPort {
    fn info(&self) -> PortInfo {
        PortInfo {
            name: self.name.clone(),
            kind: PortKind::Dummy,
            mac: Some(self.mac),
            mtu: 1500,
            n_rxq: self.inject.len(),
        }
    }

    fn stats(&self) -> Arc<PortStats> {
        self.stats.clone()
    }

    fn link_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn open_rxq(&self, q: usize) -> Result<Box<dyn RxQueue>, PortError> {
        let mut sides = self.rx_sides.lock().unwrap_or_else(|e| e.into_inner());
        let side = sides
            .get_mut(q)
            .and_then(Option::take)
            .ok_or_else(|| PortError::Invalid {
                port: self.name.clone(),
                msg: format!("receive queue {q} does not exist or is already open"),
            })?;
        Ok(Box::new(DummyRxq {
            side,
            stats: self.stats.clone(),
        }))
    }

    fn open_txq(&self, _pmd: usize) -> Result<Box<dyn TxQueue>, PortError> {
        Ok(Box::new(DummyTxq {
            out: self.sent_tx.clone(),
            offload: TxOffload::new(self.caps),
            stats: self.stats.clone(),
            pending: Vec::new(),
        }))
    }
}

struct DummyRxq {
    side: RxSide,
    stats: Arc<PortStats>,
}

impl RxQueue for DummyRxq {
    fn rx_batch(&mut self, batch: &mut PacketBatch) -> Result<usize, PortError> {
        self.side.wake.drain();
        let mut n = 0;
        let mut bytes = 0;
        while let Some(slot) = batch.next_slot() {
            let Ok((frame, offload)) = self.side.rx.try_recv() else {
                break;
            };
            slot.copy_from(&frame);
            slot.offload = offload;
            bytes += slot.len() as u64;
            batch.commit();
            n += 1;
        }
        if !self.side.rx.is_empty() {
            self.side.wake.signal();
        }
        PortStats::add(&self.stats.rx_packets, n as u64);
        PortStats::add(&self.stats.rx_bytes, bytes);
        Ok(n)
    }

    fn wait_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(self.side.wake.fd())
    }
}

struct DummyTxq {
    out: Sender<SentFrame>,
    offload: TxOffload,
    stats: Arc<PortStats>,
    pending: Vec<SentFrame>,
}

impl TxQueue for DummyTxq {
    fn send(&mut self, pkt: &mut Packet) -> Result<(), PortError> {
        match self.offload.prepare(pkt) {
            Ok(Prepared::Single) => self.pending.push(SentFrame {
                data: pkt.data().to_vec(),
                offload: pkt.offload,
            }),
            Ok(Prepared::Segments(_)) => {
                for s in self.offload.segments() {
                    self.pending.push(SentFrame {
                        data: s.to_vec(),
                        offload: Offload::default(),
                    });
                }
            }
            Err(e) => {
                tracing::debug!("dummy txq: dropping frame: {e}");
                PortStats::add(&self.stats.tx_errors, 1);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PortError> {
        let n = self.pending.len() as u64;
        let bytes: u64 = self.pending.iter().map(|f| f.data.len() as u64).sum();
        // Counted before the frames are handed over: whoever receives a
        // frame sees it in the port's statistics too.
        PortStats::add(&self.stats.tx_packets, n);
        PortStats::add(&self.stats.tx_bytes, bytes);
        for f in self.pending.drain(..) {
            let _ = self.out.send(f);
        }
        Ok(())
    }
}
