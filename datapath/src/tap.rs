//! TAP ports (`tap`) and internal ports (`internal`, the bridge's own
//! interface): a TAP device opened with `IFF_TAP | IFF_NO_PI |
//! IFF_VNET_HDR`, so that checksum-offloaded and TSO super-frames cross in
//! both directions with a `virtio_net_hdr`.
//!
//! Receive is one nonblocking `readv` per frame (header + frame straight
//! into the batch's buffer), only while the device's readiness flag
//! ([`crate::readiness`]) is up; transmit is one `writev` per frame.
//!
//! Lifetime, as Open vSwitch's userspace datapath has it: the device is
//! made persistent when the port opens it, so it outlives the process that
//! opened it. After a crash or `kill -9` the device stays with its
//! addresses and routes (without carrier); the restarted switch attaches to
//! it again by name. Only [`Port::delete_device`] (the port leaving the
//! configuration) removes it. Closing the port (dropping it, or the daemon
//! exiting) leaves it in place.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use crate::netdev;
use crate::offload::{Prepared, TxOffload};
use crate::packet::{Offload, Packet, PacketBatch};
use crate::port::{OffloadCaps, Port, PortError, PortInfo, PortKind, PortStats, RxQueue, TxQueue};
use crate::readiness::ReadyFlag;
use wire::vnet_hdr::{self as vnet, VNET_HDR_LEN};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_TSO_ECN: libc::c_uint = 0x08;
const TUN_F_USO4: libc::c_uint = 0x20;
const TUN_F_USO6: libc::c_uint = 0x40;

/// A TAP device.
pub struct TapPort {
    name: String,
    kind: PortKind,
    fd: Arc<OwnedFd>,
    /// Whether the kernel takes UDP segmentation offload (Linux >= 6.2).
    uso: bool,
    stats: Arc<PortStats>,
    rx_taken: std::sync::atomic::AtomicBool,
}

impl TapPort {
    /// Opens TAP device `name` as a `tap` port: attaches to it if it exists
    /// (left by an earlier run, or created by `ip tuntap`), creates it
    /// persistent otherwise.
    pub fn open(name: &str) -> Result<Arc<TapPort>, PortError> {
        TapPort::open_kind(name, PortKind::Tap)
    }

    /// Opens the internal port of bridge `bridge`: a TAP device named after it.
    pub fn open_internal(bridge: &str) -> Result<Arc<TapPort>, PortError> {
        TapPort::open_kind(bridge, PortKind::Internal)
    }

    fn open_kind(name: &str, kind: PortKind) -> Result<Arc<TapPort>, PortError> {
        let mut ifr = netdev::ifreq_for(name).map_err(|e| PortError::Invalid {
            port: name.to_string(),
            msg: e.to_string(),
        })?;
        let existed = netdev::ifindex(name).is_ok();
        // SAFETY: opens a character device with a NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(PortError::io(
                name,
                "open /dev/net/tun",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: fd was just opened and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        ifr.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        // SAFETY: TUNSETIFF reads and writes the live ifreq.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut ifr as *mut libc::ifreq) } < 0
        {
            return Err(PortError::io(name, "TUNSETIFF", io::Error::last_os_error()));
        }
        // Persistent: the device, its addresses and routes survive this
        // process; a restart attaches to it again.
        // SAFETY: TUNSETPERSIST takes its argument by value.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETPERSIST as _, 1 as libc::c_ulong) } < 0 {
            return Err(PortError::io(
                name,
                "TUNSETPERSIST",
                io::Error::last_os_error(),
            ));
        }
        let hdr_sz: libc::c_int = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int from the live pointer.
        if unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                TUNSETVNETHDRSZ as _,
                &hdr_sz as *const libc::c_int,
            )
        } < 0
        {
            return Err(PortError::io(
                name,
                "TUNSETVNETHDRSZ",
                io::Error::last_os_error(),
            ));
        }
        // USO (UDP segmentation) needs Linux 6.2; without it, TSO and csum.
        let base = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
        let mut uso = true;
        for offloads in [base | TUN_F_USO4 | TUN_F_USO6, base] {
            // SAFETY: TUNSETOFFLOAD takes its argument by value.
            let r = unsafe {
                libc::ioctl(
                    fd.as_raw_fd(),
                    TUNSETOFFLOAD as _,
                    offloads as libc::c_ulong,
                )
            };
            if r == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if !uso {
                return Err(PortError::io(name, "TUNSETOFFLOAD", e));
            }
            uso = false;
        }
        netdev::set_up(name).map_err(|e| PortError::io(name, "bring up", e))?;
        if existed {
            tracing::info!("{name}: TAP port open ({kind:?}), attached to the existing device");
        } else {
            tracing::info!("{name}: TAP port open ({kind:?}), device created");
        }
        Ok(Arc::new(TapPort {
            name: name.to_string(),
            kind,
            fd: Arc::new(fd),
            uso,
            stats: Arc::new(PortStats::default()),
            rx_taken: std::sync::atomic::AtomicBool::new(false),
        }))
    }
}

impl Port for TapPort {
    fn info(&self) -> PortInfo {
        PortInfo::of_netdev(&self.name, self.kind, 1)
    }

    fn stats(&self) -> Arc<PortStats> {
        self.stats.clone()
    }

    fn link_up(&self) -> bool {
        netdev::link_up(&self.name)
    }

    /// Clears the persistent flag: the kernel removes the device when the
    /// last descriptor on it closes (this port's, once its queues are gone).
    fn delete_device(&self) -> Result<(), PortError> {
        // SAFETY: TUNSETPERSIST takes its argument by value.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), TUNSETPERSIST as _, 0 as libc::c_ulong) } < 0 {
            return Err(PortError::io(
                &self.name,
                "TUNSETPERSIST",
                io::Error::last_os_error(),
            ));
        }
        tracing::info!("{}: TAP device will be removed", self.name);
        Ok(())
    }

    fn open_rxq(&self, q: usize) -> Result<Box<dyn RxQueue>, PortError> {
        if q != 0
            || self
                .rx_taken
                .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return Err(PortError::Invalid {
                port: self.name.clone(),
                msg: format!("receive queue {q} does not exist or is already open"),
            });
        }
        Ok(Box::new(TapRxq {
            ready: ReadyFlag::watch(self.fd.as_raw_fd()),
            fd: self.fd.clone(),
            stats: self.stats.clone(),
            name: self.name.clone(),
        }))
    }

    fn open_txq(&self, _pmd: usize) -> Result<Box<dyn TxQueue>, PortError> {
        Ok(Box::new(TapTxq {
            fd: self.fd.clone(),
            stats: self.stats.clone(),
            offload: TxOffload::new(OffloadCaps {
                tx_csum: true,
                tx_tso: true,
                tx_uso: self.uso,
            }),
            name: self.name.clone(),
            packets: 0,
            bytes: 0,
            errors: 0,
        }))
    }
}

struct TapRxq {
    /// Raised by the readiness watcher when the device may hold frames:
    /// an idle poll costs one load instead of a `readv` (declared before
    /// `fd` so that it unregisters while the fd is open).
    ready: ReadyFlag,
    fd: Arc<OwnedFd>,
    stats: Arc<PortStats>,
    name: String,
}

impl RxQueue for TapRxq {
    fn rx_batch(&mut self, batch: &mut PacketBatch) -> Result<usize, PortError> {
        if !self.ready.take() {
            return Ok(0);
        }
        let (mut n, mut bytes, mut dropped) = (0u64, 0u64, 0u64);
        let mut hdr = [0u8; VNET_HDR_LEN];
        let mut drained = false;
        while let Some(slot) = batch.next_slot() {
            let buf = slot.rx_buffer();
            let iov = [
                libc::iovec {
                    iov_base: hdr.as_mut_ptr().cast(),
                    iov_len: hdr.len(),
                },
                libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: buf.len(),
                },
            ];
            // SAFETY: both iovecs point into live buffers of the stated lengths.
            let r = unsafe { libc::readv(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted {
                    tracing::debug!("{}: read: {e}", self.name);
                }
                drained = e.kind() == io::ErrorKind::WouldBlock;
                break;
            }
            let r = r as usize;
            if r <= VNET_HDR_LEN {
                dropped += 1;
                continue;
            }
            slot.set_len(r - VNET_HDR_LEN);
            slot.offload = vnet::decode(&hdr).unwrap_or_default();
            bytes += (r - VNET_HDR_LEN) as u64;
            n += 1;
            batch.commit();
        }
        if !drained {
            // Stopped before the device said it was empty (full batch, or
            // an error): look again next poll.
            self.ready.raise();
        }
        PortStats::add(&self.stats.rx_packets, n);
        PortStats::add(&self.stats.rx_bytes, bytes);
        PortStats::add(&self.stats.rx_dropped, dropped);
        Ok(n as usize)
    }

    fn wait_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }
}

struct TapTxq {
    fd: Arc<OwnedFd>,
    stats: Arc<PortStats>,
    offload: TxOffload,
    name: String,
    packets: u64,
    bytes: u64,
    errors: u64,
}

fn write_frame(fd: RawFd, frame: &[u8], o: &Offload) -> io::Result<()> {
    let mut hdr = [0u8; VNET_HDR_LEN];
    vnet::encode(o, &mut hdr);
    let iov = [
        libc::iovec {
            iov_base: hdr.as_mut_ptr().cast(),
            iov_len: hdr.len(),
        },
        libc::iovec {
            iov_base: frame.as_ptr() as *mut libc::c_void,
            iov_len: frame.len(),
        },
    ];
    // SAFETY: both iovecs point into live buffers of the stated lengths;
    // writev only reads them.
    let r = unsafe { libc::writev(fd, iov.as_ptr(), 2) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl TapTxq {
    fn emit(&mut self, frame: &[u8], o: &Offload) {
        match write_frame(self.fd.as_raw_fd(), frame, o) {
            Ok(()) => {
                self.packets += 1;
                self.bytes += frame.len() as u64;
            }
            Err(e) => {
                self.errors += 1;
                tracing::debug!("{}: write: {e}", self.name);
            }
        }
    }
}

impl TxQueue for TapTxq {
    fn send(&mut self, pkt: &mut Packet) -> Result<(), PortError> {
        match self.offload.prepare(pkt) {
            Ok(Prepared::Single) => {
                let o = pkt.offload;
                self.emit(pkt.data(), &o);
            }
            Ok(Prepared::Segments(_)) => {
                // Only UDP segmentation on kernels without USO.
                let fd = self.fd.as_raw_fd();
                for s in self.offload.segments() {
                    if write_frame(fd, s, &Offload::default()).is_err() {
                        self.errors += 1;
                    } else {
                        self.packets += 1;
                        self.bytes += s.len() as u64;
                    }
                }
            }
            Err(e) => {
                tracing::debug!("{}: dropping frame: {e}", self.name);
                self.errors += 1;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PortError> {
        PortStats::add(&self.stats.tx_packets, std::mem::take(&mut self.packets));
        PortStats::add(&self.stats.tx_bytes, std::mem::take(&mut self.bytes));
        PortStats::add(&self.stats.tx_errors, std::mem::take(&mut self.errors));
        Ok(())
    }
}
