//! AF_PACKET ports (`system`): a kernel interface (veth, NIC) opened with
//! mmap'ed TPACKET_V2 rings.
//!
//! - Receive: sockets with an rx ring, bound to the interface,
//!   promiscuous, `PACKET_IGNORE_OUTGOING` (they never see what the switch
//!   sent), `PACKET_VNET_HDR` (GSO super-frames and partial checksums arrive
//!   intact with their offload metadata). A V2 queue has two: a BPF length
//!   filter sends frames up to the MTU to a deep ring of MTU-sized slots and
//!   longer ones (super-frames) to a ring of 68 KiB slots; reads merge the
//!   two in the kernel's timestamp order. Frames are copied out of the ring
//!   into the batch's buffers; stripped VLAN tags are put back.
//! - Transmit: per PMD one socket with a tx ring, `PACKET_QDISC_BYPASS`,
//!   `PACKET_VNET_HDR`; `send` fills a ring slot, `flush` issues one
//!   `sendto` for everything queued.
//!
//! Why TPACKET_V2 and not V3 for receive: a V3 block is handed to user
//! space only when it is full or its retire timer fires (at least 1 ms),
//! which adds up to a millisecond of latency at low rates; a poll-mode
//! thread wants every frame as soon as it lands. A V2 slot holds one frame
//! whatever its size, hence the two rings: one ring of super-frame slots
//! deep enough for bursts of small frames would cost hundreds of MiB.

mod ring;
mod rx;
mod sys;
mod tx;

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use crate::netdev;
use crate::offload::TxOffload;
use crate::port::{OffloadCaps, Port, PortError, PortInfo, PortKind, PortStats, RxQueue, TxQueue};
use ring::{Geometry, Ring};
use rx::AfPacketRxq;
use sys::*;
use tx::{AfPacketTxq, TxRing};

/// Layout of the receive ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxRing {
    /// One slot per frame, handed over frame by frame (lowest latency):
    /// 2 MiB of MTU-sized slots (1024 at MTU 1500) for frames up to the
    /// MTU, 30 of 68 KiB for super-frames.
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
    /// The receive rings (big-slot or V3, and the small-slot one of a
    /// split V2 queue) until the receive queue takes them.
    rx: Mutex<Option<(Ring, Option<Ring>)>>,
}

/// Opens, configures and binds one receive socket with its ring; returns
/// it and whether it has virtio-net headers. `promisc`: also make the
/// interface promiscuous (one socket of the port does it).
fn open_rx_ring(
    name: &str,
    ifindex: i32,
    opts: &AfPacketOptions,
    geo: Geometry,
    tov: Option<u32>,
    filter: Option<LenFilter>,
    promisc: bool,
) -> Result<(Ring, bool), PortError> {
    let fd = packet_socket().map_err(|e| PortError::io(name, "socket(AF_PACKET)", e))?;
    let version = if tov.is_some() {
        TPACKET_V3
    } else {
        TPACKET_V2
    };
    setopt(fd.as_raw_fd(), PACKET_VERSION, &version)
        .map_err(|e| PortError::io(name, "PACKET_VERSION", e))?;
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
    if promisc {
        let mreq = PacketMreq {
            mr_ifindex: ifindex,
            mr_type: PACKET_MR_PROMISC,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        setopt(fd.as_raw_fd(), PACKET_ADD_MEMBERSHIP, &mreq)
            .map_err(|e| PortError::io(name, "set promiscuous", e))?;
    }
    if let Some(f) = filter {
        attach_len_filter(fd.as_raw_fd(), f)
            .map_err(|e| PortError::io(name, "SO_ATTACH_FILTER", e))?;
    }
    let ring = Ring::new(fd, PACKET_RX_RING, geo, tov)
        .map_err(|e| PortError::io(name, "PACKET_RX_RING", e))?;
    // Bound last: no frame reaches the socket before its filter and ring.
    bind(ring.fd.as_raw_fd(), ifindex).map_err(|e| PortError::io(name, "bind", e))?;
    Ok((ring, vnet))
}

impl AfPacketPort {
    /// Opens interface `name`: brings it up, makes it promiscuous and sets
    /// up the receive ring.
    pub fn open(name: &str) -> Result<Arc<AfPacketPort>, PortError> {
        AfPacketPort::open_with(name, AfPacketOptions::default())
    }

    /// [`AfPacketPort::open`] with explicit options.
    pub fn open_with(name: &str, opts: AfPacketOptions) -> Result<Arc<AfPacketPort>, PortError> {
        let ifindex = netdev::port_ifindex(name)?;
        netdev::set_up(name).map_err(|e| PortError::io(name, "bring up", e))?;
        let (big_geo, tov, split) = match opts.rx_ring {
            RxRing::V2 => {
                let mtu = netdev::mtu(name).unwrap_or(1500);
                let (slot, limit) = rx_small_slot(mtu);
                let small = Geometry {
                    block_size: BLOCK_SIZE,
                    blocks: RX_SMALL_BYTES / BLOCK_SIZE,
                    frame_size: slot,
                };
                (
                    Geometry {
                        block_size: BLOCK_SIZE,
                        blocks: RX_BLOCKS,
                        frame_size: FRAME_SIZE,
                    },
                    None,
                    Some((small, limit)),
                )
            }
            RxRing::V3 => (
                Geometry {
                    block_size: V3_BLOCK_SIZE,
                    blocks: V3_BLOCKS,
                    frame_size: 2048,
                },
                Some(V3_RETIRE_MS),
                None,
            ),
        };
        // With a split, frames up to `limit` bytes go to the small-slot
        // ring and longer ones (GSO super-frames) to the big-slot ring.
        let (ring, vnet) = open_rx_ring(
            name,
            ifindex,
            &opts,
            big_geo,
            tov,
            split.map(|(_, limit)| LenFilter::Above(limit)),
            true,
        )?;
        let small = match split {
            Some((geo, limit)) => Some(
                open_rx_ring(
                    name,
                    ifindex,
                    &AfPacketOptions {
                        vnet_hdr: vnet,
                        ..opts
                    },
                    geo,
                    None,
                    Some(LenFilter::AtMost(limit)),
                    false,
                )
                .and_then(|(r, v)| {
                    if v == vnet {
                        Ok(r)
                    } else {
                        Err(PortError::Invalid {
                            port: name.to_string(),
                            msg: "virtio-net headers on one receive socket only".into(),
                        })
                    }
                })?,
            ),
            None => None,
        };
        tracing::info!("{name}: AF_PACKET port open (ifindex {ifindex}, vnet headers {vnet})");
        Ok(Arc::new(AfPacketPort {
            name: name.to_string(),
            ifindex,
            vnet,
            tx_offload: opts.tx_offload,
            rx_ring: opts.rx_ring,
            stats: Arc::new(PortStats::default()),
            rx: Mutex::new(Some((ring, small))),
        }))
    }

    fn caps(&self) -> OffloadCaps {
        OffloadCaps {
            tx_csum: self.vnet && self.tx_offload,
            tx_tso: self.vnet && self.tx_offload,
            tx_uso: self.vnet && self.tx_offload,
        }
    }
}

impl Port for AfPacketPort {
    fn info(&self) -> PortInfo {
        PortInfo::of_netdev(&self.name, PortKind::System, 1)
    }

    fn stats(&self) -> Arc<PortStats> {
        self.stats.clone()
    }

    fn link_up(&self) -> bool {
        netdev::link_up(&self.name)
    }

    fn open_rxq(&self, q: usize) -> Result<Box<dyn RxQueue>, PortError> {
        let (ring, small) = self
            .rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .filter(|_| q == 0)
            .ok_or_else(|| PortError::Invalid {
                port: self.name.clone(),
                msg: format!("receive queue {q} does not exist or is already open"),
            })?;
        let epoll = match &small {
            Some(s) => {
                Some(rx::epoll_both(&ring, s).map_err(|e| PortError::io(&self.name, "epoll", e))?)
            }
            None => None,
        };
        Ok(Box::new(AfPacketRxq {
            ring,
            small,
            epoll,
            v3: self.rx_ring == RxRing::V3,
            cursor: None,
            vnet: self.vnet,
            stats: self.stats.clone(),
            drops_read: std::time::Instant::now(),
            polls: 0,
        }))
    }

    fn open_txq(&self, _pmd: usize) -> Result<Box<dyn TxQueue>, PortError> {
        let name = &self.name;
        let fd = packet_socket().map_err(|e| PortError::io(name, "socket(AF_PACKET)", e))?;
        setopt(fd.as_raw_fd(), PACKET_VERSION, &TPACKET_V2)
            .map_err(|e| PortError::io(name, "PACKET_VERSION", e))?;
        if self.vnet {
            setopt(fd.as_raw_fd(), PACKET_VNET_HDR, &1i32)
                .map_err(|e| PortError::io(name, "PACKET_VNET_HDR", e))?;
        }
        if let Err(e) = setopt(fd.as_raw_fd(), PACKET_QDISC_BYPASS, &1i32) {
            tracing::debug!("{name}: PACKET_QDISC_BYPASS not available: {e}");
        }
        // Skip frames the kernel rejects instead of stalling the ring.
        setopt(fd.as_raw_fd(), PACKET_LOSS, &1i32)
            .map_err(|e| PortError::io(name, "PACKET_LOSS", e))?;
        let geo = Geometry {
            block_size: TX_BLOCK_SIZE,
            blocks: TX_BLOCKS,
            frame_size: TX_FRAME_SIZE,
        };
        let ring = Ring::new(fd, PACKET_TX_RING, geo, None)
            .map_err(|e| PortError::io(name, "PACKET_TX_RING", e))?;
        bind(ring.fd.as_raw_fd(), self.ifindex).map_err(|e| PortError::io(name, "bind", e))?;
        // Nothing should ever be received on this socket.
        Ok(Box::new(AfPacketTxq {
            tx: TxRing {
                ring,
                vnet: self.vnet,
                stats: self.stats.clone(),
                name: self.name.clone(),
                queued: 0,
                big: None,
                ifindex: self.ifindex,
                packets: 0,
                bytes: 0,
                dropped: 0,
            },
            offload: TxOffload::new(self.caps()),
        }))
    }
}
