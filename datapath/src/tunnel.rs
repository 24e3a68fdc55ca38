//! Per-packet tunnel work for native tunnelling: putting a prebuilt outer
//! header in front of a packet (push) and validating and stripping one
//! (pop), with drop counters by reason. The headers themselves come from
//! `wire::tunnel`; no allocation, lock or syscall per packet.
//!
//! The datapath actions `tnl_push` and `tnl_pop` (`flows::DpAction`) run
//! these; outer headers live in a [`HeaderTable`] that the slow path fills
//! and the actions name by index.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use flows::tlv::TlvMap;
use wire::tunnel::{self, DecapPolicy, EncapHeader, TunnelMeta, TunnelProto};

use crate::offload::complete_packet_csum;
use crate::packet::{Offload, Packet};

/// Slots of a [`HeaderTable`].
pub const HEADER_SLOTS: usize = 4096;

/// The outer headers `tnl_push` actions refer to by index. The slow path
/// interns a header once ([`HeaderTable::intern`]: a lock on the slow path
/// only); the fast path reads a slot with one atomic load and no lock.
/// Slots are written once and never reused, so an index in a cached
/// megaflow always names the header it was built with; the table holds
/// one slot per distinct header (remote, next hop MAC, key, options).
///
/// The same table holds the Geneve TLV maps that `tnl_pop` actions name
/// (`DpAction::TnlPop::tlv`), interned the same way: a megaflow keeps
/// decoding options with the map it was translated under, and a changed
/// map is a new slot.
pub struct HeaderTable {
    slots: Box<[OnceLock<EncapHeader>]>,
    index: Mutex<HashMap<Vec<u8>, u32>>,
    tlv_slots: Box<[OnceLock<TlvMap>]>,
    tlv_index: Mutex<Vec<TlvMap>>,
}

/// Slots for interned TLV maps in a [`HeaderTable`].
pub const TLV_SLOTS: usize = 256;

impl Default for HeaderTable {
    fn default() -> Self {
        HeaderTable {
            slots: (0..HEADER_SLOTS).map(|_| OnceLock::new()).collect(),
            index: Mutex::new(HashMap::new()),
            tlv_slots: (0..TLV_SLOTS).map(|_| OnceLock::new()).collect(),
            tlv_index: Mutex::new(Vec::new()),
        }
    }
}

impl HeaderTable {
    /// The slot holding `hdr`, filling a new one the first time; `None`
    /// when every slot is taken.
    pub fn intern(&self, hdr: &EncapHeader) -> Option<u32> {
        let mut idx = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let mut k = Vec::with_capacity(hdr.len() + 2);
        k.extend_from_slice(hdr.as_bytes());
        k.extend_from_slice(&[hdr.proto() as u8, u8::from(hdr.has_checksum())]);
        if let Some(&i) = idx.get(&k) {
            return Some(i);
        }
        let i = idx.len();
        if i >= self.slots.len() {
            return None;
        }
        let _ = self.slots[i].set(hdr.clone());
        idx.insert(k, i as u32);
        Some(i as u32)
    }

    /// The header in slot `i` (fast path).
    #[inline]
    pub fn get(&self, i: u32) -> Option<&EncapHeader> {
        self.slots.get(i as usize)?.get()
    }

    /// Headers in use.
    pub fn len(&self) -> usize {
        self.index.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slot holding TLV map `map` (slow path), filling a new one the
    /// first time. An empty map needs no slot: `NO_TLV_MAP`. `None` when
    /// every slot is taken.
    pub fn intern_tlv(&self, map: &TlvMap) -> Option<u32> {
        if map.mappings().next().is_none() {
            return Some(flows::dpaction::NO_TLV_MAP);
        }
        let mut idx = self.tlv_index.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = idx.iter().position(|m| m == map) {
            return Some(i as u32);
        }
        let i = idx.len();
        if i >= self.tlv_slots.len() {
            return None;
        }
        let _ = self.tlv_slots[i].set(map.clone());
        idx.push(map.clone());
        Some(i as u32)
    }

    /// The TLV map in slot `i` (fast path); `None` for `NO_TLV_MAP`.
    #[inline]
    pub fn tlv(&self, i: u32) -> Option<&TlvMap> {
        self.tlv_slots.get(i as usize)?.get()
    }
}

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

/// The datapath's tunnel counters: receive drops by reason, and packets
/// `tnl_push` could not encapsulate (no headroom, header slot empty,
/// unsegmentable super-frame).
#[derive(Debug, Default)]
pub struct TnlCounters {
    pub decap: DecapStats,
    pub push_errors: AtomicU64,
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
    let meta = strip(pkt, &d);
    if meta.is_none() {
        stats.malformed.fetch_add(1, Ordering::Relaxed);
    }
    meta
}

/// Strips the outer header `d` describes from `pkt`.
fn strip(pkt: &mut Packet, d: &tunnel::Decapsulated) -> Option<TunnelMeta> {
    if d.inner_protocol != wire::geneve::PROTO_ETHERNET {
        // An L3 payload (GRE, Geneve legacy_l3) needs packet_type support.
        return None;
    }
    let o = pkt.offload;
    pkt.pull_front(d.inner.start);
    pkt.set_len(d.inner.end - d.inner.start);
    // A checksum left pending inside the inner frame (a sender on this
    // host that kept it partial) stays pending at its new offset; any
    // other outer offload state says nothing about the inner frame.
    pkt.offload = match usize::from(o.csum_start).checked_sub(d.inner.start) {
        Some(start) if o.flags & Offload::F_NEEDS_CSUM != 0 && o.gso_type == 0 => Offload {
            flags: Offload::F_NEEDS_CSUM,
            csum_start: start as u16,
            csum_offset: o.csum_offset,
            ..Offload::default()
        },
        _ => Offload::default(),
    };
    Some(d.meta)
}

/// The tunnel protocol a `tnl_pop` action names
/// (`flows::dpaction::TUNNEL_PROTO_*`).
pub fn proto_of(n: u8) -> Option<TunnelProto> {
    match n {
        flows::dpaction::TUNNEL_PROTO_VXLAN => Some(TunnelProto::Vxlan),
        flows::dpaction::TUNNEL_PROTO_GENEVE => Some(TunnelProto::Geneve),
        flows::dpaction::TUNNEL_PROTO_GRE => Some(TunnelProto::Gre),
        _ => None,
    }
}

/// The `tnl_pop` number of a tunnel protocol.
pub fn proto_number(p: TunnelProto) -> u8 {
    match p {
        TunnelProto::Vxlan => flows::dpaction::TUNNEL_PROTO_VXLAN,
        TunnelProto::Geneve => flows::dpaction::TUNNEL_PROTO_GENEVE,
        TunnelProto::Gre => flows::dpaction::TUNNEL_PROTO_GRE,
    }
}

/// `tnl_pop`: validates and strips the outer header of `pkt` (a `proto`
/// packet to UDP port `dst_port`), hands the inner frame and the tunnel
/// metadata (as the extension words of a key whose `in_port` is tunnel
/// port `port`) to `then`, and puts the packet back as it was for the
/// actions that follow. False (counted in `stats`) when the packet is not
/// a valid tunnel packet. Geneve options that `tlv` maps (with their
/// mapped length) go into the key's `tun_metadata` and set their bit in
/// `tun_metadata_present`; a packet with a critical option that `tlv`
/// does not map is refused, other unknown options are ignored.
#[allow(clippy::too_many_arguments)]
pub fn pop_then(
    pkt: &mut Packet,
    port: u32,
    proto: u8,
    dst_port: u16,
    tlv: Option<&TlvMap>,
    stats: &DecapStats,
    then: impl FnOnce(&Packet, &flows::FlowKey),
) -> bool {
    let Some(proto) = proto_of(proto) else {
        stats.malformed.fetch_add(1, Ordering::Relaxed);
        return false;
    };
    let known = |class: u16, typ: u8| tlv.is_some_and(|t| t.find(class, typ).is_some());
    let policy = DecapPolicy {
        proto,
        dst_port,
        key: None,
        known_option: &known,
    };
    let (o, len) = (pkt.offload, pkt.len());
    let d = match tunnel::decap(pkt.data(), &policy) {
        Ok(d) => d,
        Err(e) => {
            stats.count(&e);
            return false;
        }
    };
    let start = d.inner.start;
    let mut m = flows::FlowKey {
        in_port: port,
        ..flows::FlowKey::default()
    };
    if let Some(t) = tlv {
        // The area was validated by `decap`; options are read before the
        // outer header is stripped.
        for o in wire::geneve::options(&pkt.data()[d.geneve_options.clone()]).flatten() {
            t.store(&mut m, o.class, o.typ, o.data);
        }
    }
    let Some(meta) = strip(pkt, &d) else {
        stats.malformed.fetch_add(1, Ordering::Relaxed);
        return false;
    };
    set_key_meta(&mut m, &meta);
    let in_port = pkt.in_port;
    pkt.in_port = port;
    then(pkt, &m);
    pkt.in_port = in_port;
    pkt.push_front(start);
    pkt.set_len(len);
    pkt.offload = o;
    true
}

/// The Geneve options an encapsulating port sends for a packet whose key
/// is `key`: each `tun_metadataN` present in the key, as the option `tlv`
/// maps it to, in index order (slow path: the result goes into the
/// interned outer header).
pub fn geneve_options(tlv: &TlvMap, key: &flows::FlowKey) -> Vec<u8> {
    let mut out = Vec::new();
    for (class, typ, data) in tlv.options(key) {
        let o = wire::geneve::GeneveOption { class, typ, data };
        let at = out.len();
        out.resize(at + o.wire_len(), 0);
        // Mapped lengths are multiples of 4 up to 124: emit cannot fail.
        let _ = o.emit(&mut out[at..]);
    }
    out
}

/// Writes received tunnel metadata into the `tun_*` fields of `key`.
pub fn set_key_meta(key: &mut flows::FlowKey, meta: &TunnelMeta) {
    use std::net::IpAddr;
    key.tun_id = meta.tun_id;
    match (meta.ip_src, meta.ip_dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            key.tun_src = u32::from(s);
            key.tun_dst = u32::from(d);
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V6(a) => a.octets(),
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            };
            key.tun_ipv6_src = v6(s);
            key.tun_ipv6_dst = v6(d);
        }
    }
    key.tun_flags = meta.flags & tunnel::flags::OAM;
    key.tun_gbp_id = meta.gbp_id;
    key.tun_gbp_flags = meta.gbp_flags;
    key.tun_ttl = meta.ttl;
    key.tun_tos = meta.tos;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::testframes::{make_partial, tcp4, tcp4_valid};
    use std::net::IpAddr;
    use wire::tunnel::EncapSpec;

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

    fn ovn_map() -> TlvMap {
        let mut t = TlvMap::new();
        t.apply(
            flows::tlv::TlvCommand::Add,
            &[flows::tlv::TlvMapping {
                class: 0x0102,
                type_: 0x80,
                len: 4,
                index: 0,
            }],
            |_| false,
        )
        .unwrap();
        t
    }

    fn geneve_with(options: &[u8]) -> EncapHeader {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        EncapHeader::build(&EncapSpec {
            proto: TunnelProto::Geneve,
            eth_src: wire::MacAddr([2, 0, 0, 0, 9, 1]),
            eth_dst: wire::MacAddr([2, 0, 0, 0, 9, 2]),
            ip_src: ip("10.99.0.1"),
            ip_dst: ip("10.99.0.2"),
            ttl: 64,
            tos: 0,
            df: true,
            csum: false,
            key: Some(5),
            dst_port: 6081,
            gbp: None,
            geneve_options: options,
            oam: false,
            inner_protocol: 0x6558,
        })
        .unwrap()
    }

    /// Pops `pkt` as Geneve on port 9 with `tlv`; the key it re-entered
    /// with, or `None` when dropped.
    fn pop_key(
        pkt: &mut Packet,
        tlv: Option<&TlvMap>,
        stats: &DecapStats,
    ) -> Option<flows::FlowKey> {
        let mut got = None;
        let proto = flows::dpaction::TUNNEL_PROTO_GENEVE;
        pop_then(pkt, 9, proto, 6081, tlv, stats, |_, k| got = Some(*k));
        got
    }

    #[test]
    fn geneve_options_mapped_by_the_tlv_map_round_trip_through_push_and_pop() {
        let map = ovn_map();
        let mut sent = flows::FlowKey::default();
        assert!(map.set_value(&mut sent, 0, &[0x00, 0x01, 0x00, 0x02]));
        let opts = geneve_options(&map, &sent);
        // class 0x0102, type 0x80 (critical), 1 word, then the data.
        assert_eq!(opts, [0x01, 0x02, 0x80, 0x01, 0x00, 0x01, 0x00, 0x02]);
        let inner = tcp4(&[7u8; 60], 1, 0x18, 3);
        let mut pkt = Packet::from_bytes(&inner);
        push(&mut pkt, &geneve_with(&opts), 1).unwrap();
        let stats = DecapStats::default();
        let k = pop_key(&mut pkt, Some(&map), &stats).unwrap();
        assert_eq!(map.value(&k, 0), Some(&[0x00, 0x01, 0x00, 0x02][..]));
        assert_eq!(k.tun_metadata_present, 1);
        assert_eq!((k.in_port, k.tun_id), (9, 5));
        // Put back as it was for the actions after tnl_pop.
        assert_eq!(pkt.len(), inner.len() + geneve_with(&opts).len());
        // No option present in the key: none sent.
        assert!(geneve_options(&map, &flows::FlowKey::default()).is_empty());
    }

    #[test]
    fn critical_geneve_option_is_dropped_unless_mapped_and_absent_option_is_not_present() {
        let map = ovn_map();
        let crit = [0x01, 0x02, 0x80, 0x01, 0, 0, 0, 7];
        let inner = tcp4(&[7u8; 60], 1, 0x18, 3);
        let stats = DecapStats::default();
        let mut pkt = Packet::from_bytes(&inner);
        push(&mut pkt, &geneve_with(&crit), 1).unwrap();
        assert!(pop_key(&mut pkt, None, &stats).is_none());
        assert_eq!(stats.snapshot().unknown_critical_option, 1);
        // A non-critical unknown option is ignored; the mapped one absent.
        let plain = [0xff, 0xff, 0x01, 0x01, 1, 2, 3, 4];
        let mut pkt = Packet::from_bytes(&inner);
        push(&mut pkt, &geneve_with(&plain), 1).unwrap();
        let k = pop_key(&mut pkt, Some(&map), &stats).unwrap();
        assert_eq!(k.tun_metadata_present, 0);
        assert_eq!(map.value(&k, 0), None);
    }

    #[test]
    fn tlv_maps_are_interned_once_and_empty_map_needs_no_slot() {
        let t = HeaderTable::default();
        assert_eq!(
            t.intern_tlv(&TlvMap::new()),
            Some(flows::dpaction::NO_TLV_MAP)
        );
        assert!(t.tlv(flows::dpaction::NO_TLV_MAP).is_none());
        let a = t.intern_tlv(&ovn_map()).unwrap();
        assert_eq!(t.intern_tlv(&ovn_map()), Some(a));
        assert_eq!(t.tlv(a), Some(&ovn_map()));
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
