//! AF_PACKET ports (`system`): a kernel interface (veth, NIC) opened with
//! mmap'ed TPACKET_V2 rings.
//!
//! - Receive: one socket with an rx ring, bound to the interface,
//!   promiscuous, `PACKET_IGNORE_OUTGOING` (it never sees what the switch
//!   sent), `PACKET_VNET_HDR` (GSO super-frames and partial checksums arrive
//!   intact with their offload metadata). Frames are copied out of the ring
//!   into the batch's buffers; stripped VLAN tags are put back.
//! - Transmit: per PMD one socket with a tx ring, `PACKET_QDISC_BYPASS`,
//!   `PACKET_VNET_HDR`; `send` fills a ring slot, `flush` issues one
//!   `sendto` for everything queued.
//!
//! Why TPACKET_V2 and not V3 for receive: a V3 block is handed to user
//! space only when it is full or its retire timer fires (at least 1 ms),
//! which adds up to a millisecond of latency at low rates; a poll-mode
//! thread wants every frame as soon as it lands. Frames are sized for a
//! 64 KiB super-frame.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use crate::netdev;
use crate::offload::{Prepared, TxOffload};
use crate::packet::{Offload, Packet, PacketBatch};
use crate::port::{OffloadCaps, Port, PortError, PortInfo, PortKind, PortStats, RxQueue, TxQueue};
use crate::vnet::{self, VNET_HDR_LEN};

const SOL_PACKET: libc::c_int = 263;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_TX_RING: libc::c_int = 13;
const PACKET_LOSS: libc::c_int = 14;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_QDISC_BYPASS: libc::c_int = 20;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_MR_PROMISC: u16 = 1;
const TPACKET_V2: libc::c_int = 1;
const TPACKET_V3: libc::c_int = 2;

const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_AVAILABLE: u32 = 0;
const TP_STATUS_SEND_REQUEST: u32 = 1;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// `struct tpacket2_hdr`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Tpacket2Hdr {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_sec: u32,
    tp_nsec: u32,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
    tp_padding: [u8; 4],
}

/// `TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)`: where a tx frame's data
/// starts in its slot.
const TX_DATA_OFFSET: usize = 32;

/// `struct packet_mreq`.
#[repr(C)]
struct PacketMreq {
    mr_ifindex: libc::c_int,
    mr_type: u16,
    mr_alen: u16,
    mr_address: [u8; 8],
}

/// TPACKET_V2 slot size: a 64 KiB super-frame plus headers.
const FRAME_SIZE: usize = 65_536 + 4096;
/// TPACKET_V3 block size: one super-frame, or hundreds of small frames.
const V3_BLOCK_SIZE: usize = 1 << 18;
const V3_BLOCKS: usize = 32;
/// TPACKET_V3 block retire timeout (ms).
const V3_RETIRE_MS: u32 = 1;
/// Ring block size (1 MiB: 15 slots).
const BLOCK_SIZE: usize = 1 << 20;
const RX_BLOCKS: usize = 8;
const TX_BLOCKS: usize = 4;

fn io_err(port: &str, op: &'static str, source: io::Error) -> PortError {
    if source.raw_os_error() == Some(libc::ENODEV) {
        return PortError::NoDevice(port.to_string());
    }
    PortError::Io {
        port: port.to_string(),
        op,
        source,
    }
}

fn setopt<T>(fd: RawFd, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live T of the given size for the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            SOL_PACKET,
            name,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; protocol 0 receives nothing until bind.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bind(fd: RawFd, ifindex: i32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: passes a live sockaddr_ll of the stated size.
    let r = unsafe {
        libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Size and shape of a ring.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    block_size: usize,
    blocks: usize,
    /// TPACKET_V2 slot size (V3: only the nominal size the kernel checks).
    frame_size: usize,
}

/// An mmap'ed TPACKET_V2 or TPACKET_V3 ring of one socket.
struct Ring {
    fd: OwnedFd,
    map: *mut u8,
    map_len: usize,
    geo: Geometry,
    frames_per_block: usize,
    n_frames: usize,
    /// Next slot (V2) or block (V3) to look at.
    idx: usize,
}

// SAFETY: the mapping is owned by this value alone and only accessed
// through `&mut self` (or the kernel, through the ring protocol).
unsafe impl Send for Ring {}

impl Ring {
    /// Configures a ring on `fd` (option `which`) and maps it; `v3_tov`
    /// is the TPACKET_V3 block retire timeout in ms (None: a V2 ring).
    fn new(
        fd: OwnedFd,
        which: libc::c_int,
        geo: Geometry,
        v3_tov: Option<u32>,
    ) -> io::Result<Ring> {
        let frames_per_block = geo.block_size / geo.frame_size;
        let n_frames = frames_per_block * geo.blocks;
        let req = [
            geo.block_size as u32,
            geo.blocks as u32,
            geo.frame_size as u32,
            n_frames as u32,
            v3_tov.unwrap_or(0),
            0,
            0,
        ];
        let req: &[u32] = if v3_tov.is_some() { &req } else { &req[..4] };
        // SAFETY: passes a live u32 array of the stated size: a
        // tpacket_req (V2) or tpacket_req3 (V3).
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                SOL_PACKET,
                which,
                req.as_ptr().cast(),
                std::mem::size_of_val(req) as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let map_len = geo.block_size * geo.blocks;
        // SAFETY: maps the ring the kernel just allocated for this socket;
        // the result is checked against MAP_FAILED.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        let map = if map == libc::MAP_FAILED {
            // MAP_LOCKED can fail under a low memlock limit: retry without.
            // SAFETY: as above.
            let m = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    map_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            };
            if m == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            m
        } else {
            map
        };
        Ok(Ring {
            fd,
            map: map.cast(),
            map_len,
            geo,
            frames_per_block,
            n_frames,
            idx: 0,
        })
    }

    /// Start of V2 slot `i`.
    #[inline]
    fn slot(&self, i: usize) -> *mut u8 {
        let off = (i / self.frames_per_block) * self.geo.block_size
            + (i % self.frames_per_block) * self.geo.frame_size;
        debug_assert!(off + self.geo.frame_size <= self.map_len);
        // SAFETY: `off + frame_size <= map_len` because i < n_frames.
        unsafe { self.map.add(off) }
    }

    /// The status word of V2 slot `i`, shared with the kernel.
    #[inline]
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: every slot starts with a 16-byte aligned tpacket2_hdr whose
        // first field is the u32 status the kernel and we hand over with
        // acquire/release ordering; the reference lives no longer than self.
        unsafe { &*(self.slot(i) as *const AtomicU32) }
    }

    /// V2 slot `i` as bytes.
    #[inline]
    fn bytes(&mut self, i: usize) -> &mut [u8] {
        // SAFETY: slot `i` is frame_size bytes inside the mapping, owned by
        // user space while its status says so (checked by callers).
        unsafe { std::slice::from_raw_parts_mut(self.slot(i), self.geo.frame_size) }
    }

    /// Start of V3 block `b`.
    #[inline]
    fn block(&self, b: usize) -> *mut u8 {
        debug_assert!(b < self.geo.blocks);
        // SAFETY: `b < blocks`, so the block lies inside the mapping.
        unsafe { self.map.add(b * self.geo.block_size) }
    }

    /// The status word of V3 block `b` (`tpacket_block_desc.hdr.bh1.block_status`).
    #[inline]
    fn block_status(&self, b: usize) -> &AtomicU32 {
        // SAFETY: a block starts with a page-aligned tpacket_block_desc whose
        // block_status u32 sits at offset 8; shared with the kernel through
        // acquire/release ordering.
        unsafe { &*(self.block(b).add(8) as *const AtomicU32) }
    }

    /// V3 block `b` as bytes.
    #[inline]
    fn block_bytes(&self, b: usize) -> &[u8] {
        // SAFETY: block `b` is block_size bytes inside the mapping; callers
        // read it only while its status hands it to user space.
        unsafe { std::slice::from_raw_parts(self.block(b), self.geo.block_size) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `Ring::new`.
        unsafe {
            libc::munmap(self.map.cast(), self.map_len);
        }
    }
}

/// Layout of the receive ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxRing {
    /// One 68 KiB slot per frame, handed over frame by frame: lowest
    /// latency, 120 slots.
    V2,
    /// 256 KiB blocks packed with frames, handed over when full or after
    /// 1 ms: absorbs bursts of small frames, adds up to 1 ms at low rates.
    V3,
}

/// Options of an AF_PACKET port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfPacketOptions {
    /// Use `PACKET_VNET_HDR` (offload metadata in both directions).
    pub vnet_hdr: bool,
    /// Let partial checksums and TSO super-frames leave as they are (needs
    /// `vnet_hdr`); when false they are completed in software.
    pub tx_offload: bool,
    /// Receive ring layout.
    pub rx_ring: RxRing,
}

impl Default for AfPacketOptions {
    fn default() -> Self {
        AfPacketOptions {
            vnet_hdr: true,
            tx_offload: true,
            rx_ring: RxRing::V2,
        }
    }
}

/// A kernel interface opened with AF_PACKET.
pub struct AfPacketPort {
    name: String,
    ifindex: i32,
    vnet: bool,
    tx_offload: bool,
    rx_ring: RxRing,
    stats: Arc<PortStats>,
    rx: Mutex<Option<Ring>>,
}

impl AfPacketPort {
    /// Opens interface `name`: brings it up, makes it promiscuous and sets
    /// up the receive ring.
    pub fn open(name: &str) -> Result<Arc<AfPacketPort>, PortError> {
        AfPacketPort::open_with(name, AfPacketOptions::default())
    }

    /// [`AfPacketPort::open`] with explicit options.
    pub fn open_with(name: &str, opts: AfPacketOptions) -> Result<Arc<AfPacketPort>, PortError> {
        let ifindex = netdev::ifindex(name).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                PortError::NoDevice(name.to_string())
            } else {
                io_err(name, "if_nametoindex", e)
            }
        })?;
        netdev::set_up(name).map_err(|e| io_err(name, "bring up", e))?;
        let fd = packet_socket().map_err(|e| io_err(name, "socket(AF_PACKET)", e))?;
        let version = match opts.rx_ring {
            RxRing::V2 => TPACKET_V2,
            RxRing::V3 => TPACKET_V3,
        };
        setopt(fd.as_raw_fd(), PACKET_VERSION, &version)
            .map_err(|e| io_err(name, "PACKET_VERSION", e))?;
        let vnet = opts.vnet_hdr
            && match setopt(fd.as_raw_fd(), PACKET_VNET_HDR, &1i32) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("{name}: PACKET_VNET_HDR not available ({e}); no offloads");
                    false
                }
            };
        if let Err(e) = setopt(fd.as_raw_fd(), PACKET_IGNORE_OUTGOING, &1i32) {
            tracing::warn!("{name}: PACKET_IGNORE_OUTGOING not available: {e}");
        }
        let mreq = PacketMreq {
            mr_ifindex: ifindex,
            mr_type: PACKET_MR_PROMISC,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        setopt(fd.as_raw_fd(), PACKET_ADD_MEMBERSHIP, &mreq)
            .map_err(|e| io_err(name, "set promiscuous", e))?;
        let (geo, tov) = match opts.rx_ring {
            RxRing::V2 => (
                Geometry {
                    block_size: BLOCK_SIZE,
                    blocks: RX_BLOCKS,
                    frame_size: FRAME_SIZE,
                },
                None,
            ),
            RxRing::V3 => (
                Geometry {
                    block_size: V3_BLOCK_SIZE,
                    blocks: V3_BLOCKS,
                    frame_size: 2048,
                },
                Some(V3_RETIRE_MS),
            ),
        };
        let ring = Ring::new(fd, PACKET_RX_RING, geo, tov)
            .map_err(|e| io_err(name, "PACKET_RX_RING", e))?;
        bind(ring.fd.as_raw_fd(), ifindex).map_err(|e| io_err(name, "bind", e))?;
        tracing::info!("{name}: AF_PACKET port open (ifindex {ifindex}, vnet headers {vnet})");
        Ok(Arc::new(AfPacketPort {
            name: name.to_string(),
            ifindex,
            vnet,
            tx_offload: opts.tx_offload,
            rx_ring: opts.rx_ring,
            stats: Arc::new(PortStats::default()),
            rx: Mutex::new(Some(ring)),
        }))
    }

    fn caps(&self) -> OffloadCaps {
        OffloadCaps {
            tx_csum: self.vnet && self.tx_offload,
            tx_tso: self.vnet && self.tx_offload,
            tx_uso: false,
        }
    }
}

impl Port for AfPacketPort {
    fn info(&self) -> PortInfo {
        PortInfo {
            name: self.name.clone(),
            kind: PortKind::System,
            mac: netdev::mac(&self.name).ok(),
            mtu: netdev::mtu(&self.name).unwrap_or(1500),
            n_rxq: 1,
        }
    }

    fn stats(&self) -> Arc<PortStats> {
        self.stats.clone()
    }

    fn link_up(&self) -> bool {
        netdev::link_up(&self.name)
    }

    fn open_rxq(&self, q: usize) -> Result<Box<dyn RxQueue>, PortError> {
        let ring = self
            .rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .filter(|_| q == 0)
            .ok_or_else(|| PortError::Invalid {
                port: self.name.clone(),
                msg: format!("receive queue {q} does not exist or is already open"),
            })?;
        Ok(Box::new(AfPacketRxq {
            ring,
            v3: self.rx_ring == RxRing::V3,
            cursor: None,
            vnet: self.vnet,
            stats: self.stats.clone(),
            drops_read: std::time::Instant::now(),
        }))
    }

    fn open_txq(&self, _pmd: usize) -> Result<Box<dyn TxQueue>, PortError> {
        let name = &self.name;
        let fd = packet_socket().map_err(|e| io_err(name, "socket(AF_PACKET)", e))?;
        setopt(fd.as_raw_fd(), PACKET_VERSION, &TPACKET_V2)
            .map_err(|e| io_err(name, "PACKET_VERSION", e))?;
        if self.vnet {
            setopt(fd.as_raw_fd(), PACKET_VNET_HDR, &1i32)
                .map_err(|e| io_err(name, "PACKET_VNET_HDR", e))?;
        }
        if let Err(e) = setopt(fd.as_raw_fd(), PACKET_QDISC_BYPASS, &1i32) {
            tracing::debug!("{name}: PACKET_QDISC_BYPASS not available: {e}");
        }
        // Skip frames the kernel rejects instead of stalling the ring.
        setopt(fd.as_raw_fd(), PACKET_LOSS, &1i32).map_err(|e| io_err(name, "PACKET_LOSS", e))?;
        let geo = Geometry {
            block_size: BLOCK_SIZE,
            blocks: TX_BLOCKS,
            frame_size: FRAME_SIZE,
        };
        let ring = Ring::new(fd, PACKET_TX_RING, geo, None)
            .map_err(|e| io_err(name, "PACKET_TX_RING", e))?;
        bind(ring.fd.as_raw_fd(), self.ifindex).map_err(|e| io_err(name, "bind", e))?;
        // Nothing should ever be received on this socket.
        Ok(Box::new(AfPacketTxq {
            tx: TxRing {
                ring,
                vnet: self.vnet,
                stats: self.stats.clone(),
                name: self.name.clone(),
                queued: 0,
                packets: 0,
                bytes: 0,
                dropped: 0,
            },
            offload: TxOffload::new(self.caps()),
        }))
    }
}

struct AfPacketRxq {
    ring: Ring,
    v3: bool,
    /// V3: (packets left, offset of the next one) in the block being read.
    cursor: Option<(u32, usize)>,
    vnet: bool,
    stats: Arc<PortStats>,
    /// When the kernel's drop counter was last read.
    drops_read: std::time::Instant,
}

/// How often an idle receive queue collects the kernel's drop counter.
const DROPS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

impl AfPacketRxq {
    /// Adds the frames the kernel dropped (ring full) since the last call
    /// to `rx_dropped` (reading `PACKET_STATISTICS` resets it).
    fn collect_kernel_drops(&mut self) {
        let mut st = [0u32; 2];
        let mut len = std::mem::size_of_val(&st) as libc::socklen_t;
        // SAFETY: `st` is a live `struct tpacket_stats` (two u32) of `len` bytes.
        let r = unsafe {
            libc::getsockopt(
                self.ring.fd.as_raw_fd(),
                SOL_PACKET,
                PACKET_STATISTICS,
                st.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if r == 0 {
            PortStats::add(&self.stats.rx_dropped, u64::from(st[1]));
        }
    }
}

/// Per-batch receive counters.
#[derive(Default)]
struct RxCount {
    n: u64,
    bytes: u64,
    dropped: u64,
}

/// Where the kernel put a received frame inside a ring slot or block.
struct RxFrame {
    /// Offset of the Ethernet header.
    mac: usize,
    snaplen: usize,
    len: usize,
    status: u32,
    vlan_tci: u16,
    vlan_tpid: u16,
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
    fn rx_v2(&mut self, batch: &mut PacketBatch, c: &mut RxCount) {
        while batch.free() > 0 {
            let i = self.ring.idx;
            if self.ring.status(i).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                break;
            }
            let vnet = self.vnet;
            let area = self.ring.bytes(i);
            // SAFETY: the slot begins with a tpacket2_hdr written by the
            // kernel before it set TP_STATUS_USER (acquired above).
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
            self.ring
                .status(i)
                .store(TP_STATUS_KERNEL, Ordering::Release);
            self.ring.idx = (i + 1) % self.ring.n_frames;
        }
    }

    fn rx_v3(&mut self, batch: &mut PacketBatch, c: &mut RxCount) {
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
        if c.n == 0 && self.drops_read.elapsed() >= DROPS_INTERVAL {
            self.drops_read = std::time::Instant::now();
            self.collect_kernel_drops();
        }
        Ok(c.n as usize)
    }

    fn wait_fd(&self) -> Option<RawFd> {
        Some(self.ring.fd.as_raw_fd())
    }
}

struct AfPacketTxq {
    tx: TxRing,
    offload: TxOffload,
}

struct TxRing {
    ring: Ring,
    vnet: bool,
    stats: Arc<PortStats>,
    name: String,
    /// Slots filled since the last `sendto`.
    queued: usize,
    packets: u64,
    bytes: u64,
    dropped: u64,
}

impl TxRing {
    /// Copies one frame into the next free slot; false when the ring is full.
    fn put(&mut self, frame: &[u8], offload: &Offload) -> bool {
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

    fn put_or_kick(&mut self, frame: &[u8], offload: &Offload) {
        if !self.put(frame, offload) {
            self.kick();
            if !self.put(frame, offload) {
                self.dropped += 1;
            }
        }
    }

    /// Asks the kernel to transmit every slot marked for sending.
    fn kick(&mut self) {
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
