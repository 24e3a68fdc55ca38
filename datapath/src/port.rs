//! The port abstraction every port type implements.
//!
//! A port is opened once; each PMD thread then gets its own receive queues
//! (assigned to exactly one PMD) and its own transmit queue handle, so that
//! the per-packet path takes no lock. `send` copies the packet out
//! immediately (into a ring slot, a socket, or guest memory), which lets the
//! caller keep modifying and re-outputting the same buffer; `flush` pushes
//! what was queued (one syscall or one guest notification per batch).

use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::packet::{Packet, PacketBatch};

/// What kind of port this is (the OVSDB Interface `type`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PortKind {
    /// A kernel interface opened with AF_PACKET (`system`, veth).
    System,
    /// A kernel interface opened with AF_XDP sockets (`afxdp`).
    AfXdp,
    /// A TAP device created or attached by the switch (`tap`).
    Tap,
    /// The bridge's own interface (`internal`), a TAP device named after it.
    Internal,
    /// vhost-user, switch is the socket server (`dpdkvhostuser`).
    VhostUser,
    /// vhost-user, switch is the socket client (`dpdkvhostuserclient`).
    VhostUserClient,
    /// In-memory port for tests.
    Dummy,
    /// A tunnel (`vxlan`, `geneve`, `gre`): no device of its own.
    Tunnel,
}

/// Offloads a transmit queue accepts as they are: anything else is completed
/// in software before the frame leaves.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct OffloadCaps {
    /// Frames may leave with a partial checksum (NEEDS_CSUM).
    pub tx_csum: bool,
    /// TCP segmentation offload: super-frames may leave unsegmented.
    pub tx_tso: bool,
    /// UDP fragmentation/segmentation offload.
    pub tx_uso: bool,
}

/// Per-port counters, shared by all queues of a port. Updated once per
/// batch by each queue, read by the daemon at any time.
#[derive(Default, Debug)]
pub struct PortStats {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub rx_dropped: AtomicU64,
    pub rx_errors: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub tx_dropped: AtomicU64,
    pub tx_errors: AtomicU64,
}

/// A plain copy of [`PortStats`].
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct PortStatsSnapshot {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub rx_errors: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
    pub tx_errors: u64,
}

impl PortStats {
    pub fn snapshot(&self) -> PortStatsSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PortStatsSnapshot {
            rx_packets: l(&self.rx_packets),
            rx_bytes: l(&self.rx_bytes),
            rx_dropped: l(&self.rx_dropped),
            rx_errors: l(&self.rx_errors),
            tx_packets: l(&self.tx_packets),
            tx_bytes: l(&self.tx_bytes),
            tx_dropped: l(&self.tx_dropped),
            tx_errors: l(&self.tx_errors),
        }
    }

    /// Adds `n` to a counter (relaxed; call once per batch, not per packet).
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        if n != 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Errors a port reports.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("no such device: {0}")]
    NoDevice(String),
    #[error("{op} on {port}: {source}")]
    Io {
        port: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("port {0} is not connected")]
    NotConnected(String),
    #[error("port {port}: {msg}")]
    Invalid { port: String, msg: String },
}

impl PortError {
    /// An I/O error of operation `op` on `port`; ENODEV (the device went
    /// away or never existed) becomes [`PortError::NoDevice`].
    pub fn io(port: &str, op: &'static str, source: std::io::Error) -> PortError {
        if source.raw_os_error() == Some(libc::ENODEV) {
            return PortError::NoDevice(port.to_string());
        }
        PortError::Io {
            port: port.to_string(),
            op,
            source,
        }
    }
}

/// Static facts about an open port.
#[derive(Clone, Debug)]
pub struct PortInfo {
    pub name: String,
    pub kind: PortKind,
    /// MAC address of the interface, when it has one.
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    /// Number of receive queues.
    pub n_rxq: usize,
}

impl PortInfo {
    /// The facts of a port over kernel interface `name`: MAC and MTU as
    /// the kernel reports them now (no MAC, MTU 1500 when it cannot).
    pub fn of_netdev(name: &str, kind: PortKind, n_rxq: usize) -> PortInfo {
        PortInfo {
            name: name.to_string(),
            kind,
            mac: crate::netdev::mac(name).ok(),
            mtu: crate::netdev::mtu(name).unwrap_or(1500),
            n_rxq,
        }
    }
}

/// An open port.
pub trait Port: Send + Sync {
    /// Name, type, MAC and queue count.
    fn info(&self) -> PortInfo;
    /// Counters shared by all queues.
    fn stats(&self) -> Arc<PortStats>;
    /// Whether the link is up (for vhost-user: a frontend is connected and
    /// the queues are enabled).
    fn link_up(&self) -> bool;
    /// Opens receive queue `q` (`q < info().n_rxq`); called once per queue by
    /// the PMD that owns it.
    fn open_rxq(&self, q: usize) -> Result<Box<dyn RxQueue>, PortError>;
    /// Opens a transmit queue for PMD thread `pmd`.
    fn open_txq(&self, pmd: usize) -> Result<Box<dyn TxQueue>, PortError>;
    /// The port leaves the configuration: remove what the switch made for
    /// it that outlives the process (a persistent TAP device), once the
    /// port is closed. Closing a port without this (a restart, a crash)
    /// keeps such devices for the next run. Nothing to do for most ports.
    fn delete_device(&self) -> Result<(), PortError> {
        Ok(())
    }
}

/// A receive queue, polled by exactly one PMD thread.
pub trait RxQueue: Send {
    /// Receives up to `batch.free()` frames into `batch`, returns how many.
    /// Malformed frames are counted in `rx_errors` and not returned.
    fn rx_batch(&mut self, batch: &mut PacketBatch) -> Result<usize, PortError>;
    /// A file descriptor that becomes readable when frames are waiting, if
    /// the port has one (used to sleep when the PMD is idle).
    fn wait_fd(&self) -> Option<RawFd> {
        None
    }
}

/// A transmit queue, used by exactly one PMD thread.
pub trait TxQueue: Send {
    /// Copies `pkt` out. Offloads the port cannot carry are completed first
    /// (which may modify `pkt`, e.g. filling in a checksum).
    fn send(&mut self, pkt: &mut Packet) -> Result<(), PortError>;
    /// Pushes everything sent since the last flush.
    fn flush(&mut self) -> Result<(), PortError>;
}
