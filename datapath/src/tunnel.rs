//! Per-packet tunnel work for native tunnelling: putting a prebuilt outer
//! header in front of a packet (push) and validating and stripping one
//! (pop), with drop counters by reason. The headers themselves come from
//! `wire::tunnel`; no allocation, lock or syscall per packet.
//!
//! Not yet wired to datapath actions (see docs/ARCHITECTURE.md, Tunnels).

use std::sync::atomic::{AtomicU64, Ordering};

use wire::tunnel::{self, DecapPolicy, EncapHeader, TunnelMeta};

use crate::offload::complete_packet_csum;
use crate::packet::{Offload, Packet};

/// Why a packet could not be encapsulated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("a {0}-byte outer header does not fit the packet's headroom")]
    NoHeadroom(usize),
    #[error("segmentation offload frames must be segmented before encapsulation")]
    NeedsSegmentation,
    #[error("inner checksum: {0}")]
    InnerChecksum(#[from] crate::offload::OffloadError),
    #[error(transparent)]
    Header(#[from] wire::Error),
}

/// Encapsulates `pkt` in place. The outer UDP source port comes from
/// `flow_hash` (the inner flow's hash). A pending inner checksum is kept
/// pending (its offsets moved past the outer header) unless the outer
/// header carries a checksum of its own, which needs the inner bytes final.
pub fn push(pkt: &mut Packet, hdr: &EncapHeader, flow_hash: u32) -> Result<(), PushError> {
    let o = pkt.offload;
    if o.gso_type & !Offload::GSO_ECN != Offload::GSO_NONE {
        return Err(PushError::NeedsSegmentation);
    }
    let n = hdr.len();
    let outer_csum = hdr.has_checksum();
    if o.flags & Offload::F_NEEDS_CSUM != 0 && outer_csum {
        complete_packet_csum(pkt)?;
    }
    if !pkt.push_front(n) {
        return Err(PushError::NoHeadroom(n));
    }
    let port = tunnel::udp_src_port(flow_hash, tunnel::SRC_PORT_MIN, tunnel::SRC_PORT_MAX);
    if let Err(e) = hdr.write(pkt.data_mut(), port) {
        pkt.pull_front(n);
        return Err(e.into());
    }
    if pkt.offload.flags & Offload::F_NEEDS_CSUM != 0 {
        pkt.offload.csum_start += n as u16;
    } else {
        pkt.offload = Offload::default();
    }
    Ok(())
}

/// Tunnel packets dropped on receive, by reason.
#[derive(Debug, Default)]
pub struct DecapStats {
    pub truncated: AtomicU64,
    pub bad_option_length: AtomicU64,
    pub unknown_critical_option: AtomicU64,
    pub wrong_vni: AtomicU64,
    pub bad_checksum: AtomicU64,
    pub malformed: AtomicU64,
}

/// A copy of [`DecapStats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DecapStatsSnapshot {
    pub truncated: u64,
    pub bad_option_length: u64,
    pub unknown_critical_option: u64,
    pub wrong_vni: u64,
    pub bad_checksum: u64,
    pub malformed: u64,
}

impl DecapStats {
    fn count(&self, e: &wire::Error) {
        let c = match e {
            wire::Error::Truncated { .. } => &self.truncated,
            wire::Error::BadOptionLength { .. } => &self.bad_option_length,
            wire::Error::UnknownCriticalOption { .. } => &self.unknown_critical_option,
            wire::Error::WrongVni { .. } => &self.wrong_vni,
            wire::Error::Checksum(_) => &self.bad_checksum,
            _ => &self.malformed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> DecapStatsSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DecapStatsSnapshot {
            truncated: l(&self.truncated),
            bad_option_length: l(&self.bad_option_length),
            unknown_critical_option: l(&self.unknown_critical_option),
            wrong_vni: l(&self.wrong_vni),
            bad_checksum: l(&self.bad_checksum),
            malformed: l(&self.malformed),
        }
    }
}

/// Validates `pkt` as a tunnel packet for a port with `policy` and strips
/// the outer header (and any link-layer padding). Returns the tunnel
/// metadata, or `None` after counting the reason in `stats` (the caller
/// drops the packet).
pub fn pop(pkt: &mut Packet, policy: &DecapPolicy<'_>, stats: &DecapStats) -> Option<TunnelMeta> {
    let d = match tunnel::decap(pkt.data(), policy) {
        Ok(d) => d,
        Err(e) => {
            stats.count(&e);
            return None;
        }
    };
    pkt.pull_front(d.inner.start);
    pkt.set_len(d.inner.end - d.inner.start);
    // The outer packet's offload state says nothing about the inner one.
    pkt.offload = Offload::default();
    Some(d.meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::testframes::{make_partial, tcp4, tcp4_valid};
    use std::net::IpAddr;
    use wire::tunnel::{EncapSpec, TunnelProto};

    fn header(proto: TunnelProto, csum: bool, key: u64) -> EncapHeader {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        EncapHeader::build(&EncapSpec {
            proto,
            eth_src: wire::MacAddr([2, 0, 0, 0, 9, 1]),
            eth_dst: wire::MacAddr([2, 0, 0, 0, 9, 2]),
            ip_src: ip("10.99.0.1"),
            ip_dst: ip("10.99.0.2"),
            ttl: 64,
            tos: 0,
            df: true,
            csum,
            key: Some(key),
            dst_port: proto.default_port().unwrap_or(0),
            gbp: None,
            geneve_options: &[],
            oam: false,
            inner_protocol: 0x6558,
        })
        .unwrap()
    }

    fn any(_: u16, _: u8) -> bool {
        false
    }

    fn policy(proto: TunnelProto, key: u64) -> DecapPolicy<'static> {
        DecapPolicy {
            proto,
            dst_port: proto.default_port().unwrap_or(0),
            key: Some(key),
            known_option: &any,
        }
    }

    #[test]
    fn push_then_pop_gives_back_the_inner_frame_and_metadata() {
        let inner = tcp4(&[7u8; 100], 1, 0x18, 3);
        for proto in [TunnelProto::Vxlan, TunnelProto::Geneve, TunnelProto::Gre] {
            let mut pkt = Packet::from_bytes(&inner);
            push(&mut pkt, &header(proto, true, 77), 0xdead_beef).unwrap();
            assert_eq!(pkt.len(), inner.len() + header(proto, true, 77).len());
            let stats = DecapStats::default();
            let meta = pop(&mut pkt, &policy(proto, 77), &stats).unwrap();
            assert_eq!(pkt.data(), &inner[..], "{proto}");
            assert_eq!(meta.tun_id, 77);
            assert_eq!(meta.ip_src, "10.99.0.1".parse::<IpAddr>().unwrap());
            assert_eq!(stats.snapshot(), DecapStatsSnapshot::default());
        }
    }

    #[test]
    fn outer_source_port_follows_the_flow_hash() {
        let inner = tcp4(&[1u8; 10], 1, 0x18, 3);
        let sport = |hash| {
            let mut p = Packet::from_bytes(&inner);
            push(&mut p, &header(TunnelProto::Vxlan, false, 1), hash).unwrap();
            u16::from_be_bytes([p.data()[34], p.data()[35]])
        };
        assert_eq!(sport(5), sport(5));
        assert_ne!(sport(5), sport(0x8000_0000));
        assert!((tunnel::SRC_PORT_MIN..=tunnel::SRC_PORT_MAX).contains(&sport(12345)));
    }

    #[test]
    fn pending_inner_checksum_moves_with_the_header_or_is_completed_for_an_outer_checksum() {
        let full = tcp4(&[9u8; 300], 1, 0x18, 3);
        let mut partial = full.clone();
        make_partial(&mut partial, 14, 34, true);
        let pending = Offload {
            flags: Offload::F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 16,
            ..Offload::default()
        };
        // No outer checksum: still pending, offsets moved by the header.
        let mut p = Packet::from_bytes(&partial);
        p.offload = pending;
        let h = header(TunnelProto::Vxlan, false, 1);
        push(&mut p, &h, 1).unwrap();
        assert_eq!(p.offload.csum_start as usize, 34 + h.len());
        let o = p.offload;
        crate::offload::complete_csum(p.data_mut(), o.csum_start, o.csum_offset).unwrap();
        assert!(tcp4_valid(&p.data()[h.len()..]));
        // Outer checksum: the inner one is completed first.
        let mut p = Packet::from_bytes(&partial);
        p.offload = pending;
        let h = header(TunnelProto::Vxlan, true, 1);
        push(&mut p, &h, 1).unwrap();
        assert_eq!(p.offload, Offload::default());
        assert_eq!(&p.data()[h.len()..], &full[..]);
    }

    #[test]
    fn super_frames_and_headers_beyond_the_headroom_are_refused_untouched() {
        let inner = tcp4(&[1u8; 3000], 1, 0x18, 3);
        let mut p = Packet::from_bytes(&inner);
        p.offload = Offload {
            gso_type: Offload::GSO_TCPV4,
            gso_size: 1448,
            ..Offload::default()
        };
        let h = header(TunnelProto::Vxlan, false, 1);
        assert_eq!(push(&mut p, &h, 1), Err(PushError::NeedsSegmentation));
        let mut p = Packet::from_bytes(&inner);
        while p.push_front(1) {}
        let before = p.len();
        assert_eq!(push(&mut p, &h, 1), Err(PushError::NoHeadroom(h.len())));
        assert_eq!(p.len(), before);
    }

    #[test]
    fn malformed_tunnel_packets_are_counted_by_reason() {
        let inner = tcp4(&[1u8; 20], 1, 0x18, 3);
        let stats = DecapStats::default();
        let mut p = Packet::from_bytes(&inner);
        push(&mut p, &header(TunnelProto::Vxlan, false, 5), 1).unwrap();
        let good = p.data().to_vec();
        // Wrong VNI.
        assert!(
            pop(
                &mut Packet::from_bytes(&good),
                &policy(TunnelProto::Vxlan, 6),
                &stats
            )
            .is_none()
        );
        // Truncated.
        assert!(
            pop(
                &mut Packet::from_bytes(&good[..45]),
                &policy(TunnelProto::Vxlan, 5),
                &stats
            )
            .is_none()
        );
        // Bad IPv4 header checksum.
        let mut bad = good.clone();
        bad[22] ^= 1;
        assert!(
            pop(
                &mut Packet::from_bytes(&bad),
                &policy(TunnelProto::Vxlan, 5),
                &stats
            )
            .is_none()
        );
        let s = stats.snapshot();
        assert_eq!((s.wrong_vni, s.truncated, s.bad_checksum), (1, 1, 1));
        // And a good one still goes through.
        assert!(
            pop(
                &mut Packet::from_bytes(&good),
                &policy(TunnelProto::Vxlan, 5),
                &stats
            )
            .is_some()
        );
    }
}
