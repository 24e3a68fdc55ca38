//! Tunnel encapsulation and decapsulation over IPv4 or IPv6: VXLAN and
//! Geneve over UDP, and GRE. Pure functions over byte slices.
//!
//! Encapsulation is split the way a datapath wants it: [`EncapHeader::build`]
//! renders the whole outer header (Ethernet, IP, UDP or GRE, tunnel header)
//! once, in the slow path, from an [`EncapSpec`]; [`EncapHeader::write`]
//! then copies it in front of each inner frame and patches what differs per
//! packet (lengths, IPv4 header checksum, UDP source port, outer checksum).
//!
//! [`decap`] parses and validates a received frame against a tunnel port's
//! [`DecapPolicy`] and returns the tunnel metadata and where the inner frame
//! is, or a typed [`Error`] saying why the frame is dropped.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::str::FromStr;

use crate::checksum;
use crate::error::{Error, Layer, need};
use crate::geneve::{self, GenevePacket, GeneveRepr};
use crate::gre::{self, GrePacket, GreRepr};
use crate::ipv4::{self, Ipv4Packet, Ipv4Repr};
use crate::ipv6::{self, Ipv6Packet, Ipv6Repr};
use crate::mac::MacAddr;
use crate::udp::{self, UdpPacket, UdpRepr};
use crate::vxlan::{self, Gbp, VxlanPacket, VxlanRepr};

pub const ETH_HLEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const IPPROTO_UDP: u8 = 17;

/// Longest outer header: Ethernet, IPv6, UDP, Geneve with 252 option bytes.
pub const ENCAP_MAX_LEN: usize =
    ETH_HLEN + ipv6::HEADER_LEN + udp::HEADER_LEN + geneve::HEADER_LEN + geneve::MAX_OPTIONS_LEN;

/// Default range of outer UDP source ports (Linux's ephemeral range).
pub const SRC_PORT_MIN: u16 = 32768;
pub const SRC_PORT_MAX: u16 = 60999;

/// Tunnel encapsulations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelProto {
    Vxlan,
    Geneve,
    Gre,
}

impl TunnelProto {
    /// The name used as an Interface `type`.
    pub fn name(self) -> &'static str {
        match self {
            TunnelProto::Vxlan => "vxlan",
            TunnelProto::Geneve => "geneve",
            TunnelProto::Gre => "gre",
        }
    }

    /// The IANA UDP port, `None` for GRE.
    pub fn default_port(self) -> Option<u16> {
        match self {
            TunnelProto::Vxlan => Some(vxlan::PORT),
            TunnelProto::Geneve => Some(geneve::PORT),
            TunnelProto::Gre => None,
        }
    }

    /// Largest key the header carries (24-bit VNI or 32-bit GRE key).
    pub fn max_key(self) -> u64 {
        match self {
            TunnelProto::Vxlan | TunnelProto::Geneve => 0xff_ffff,
            TunnelProto::Gre => 0xffff_ffff,
        }
    }
}

impl fmt::Display for TunnelProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TunnelProto {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "vxlan" => Ok(TunnelProto::Vxlan),
            "geneve" => Ok(TunnelProto::Geneve),
            "gre" => Ok(TunnelProto::Gre),
            _ => Err(()),
        }
    }
}

/// Tunnel flag bits, as OVS numbers its `FLOW_TNL_F_*`.
pub mod flags {
    pub const OAM: u16 = 1 << 0;
    pub const DONT_FRAGMENT: u16 = 1 << 1;
    pub const CSUM: u16 = 1 << 2;
    pub const KEY: u16 = 1 << 3;
}

/// What a received tunnel header says (OpenFlow's `tun_*` fields). Geneve
/// options stay in the frame; see [`Decapsulated::geneve_options`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelMeta {
    pub tun_id: u64,
    pub ip_src: IpAddr,
    pub ip_dst: IpAddr,
    pub tos: u8,
    pub ttl: u8,
    /// [`flags`] bits.
    pub flags: u16,
    pub tp_src: u16,
    pub tp_dst: u16,
    pub gbp_id: u16,
    pub gbp_flags: u8,
}

impl Default for TunnelMeta {
    fn default() -> Self {
        TunnelMeta {
            tun_id: 0,
            ip_src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ip_dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            tos: 0,
            ttl: 0,
            flags: 0,
            tp_src: 0,
            tp_dst: 0,
            gbp_id: 0,
            gbp_flags: 0,
        }
    }
}

/// Everything an outer header is built from.
#[derive(Debug, Clone, Copy)]
pub struct EncapSpec<'a> {
    pub proto: TunnelProto,
    pub eth_src: MacAddr,
    pub eth_dst: MacAddr,
    pub ip_src: IpAddr,
    pub ip_dst: IpAddr,
    pub ttl: u8,
    pub tos: u8,
    /// IPv4 don't-fragment bit.
    pub df: bool,
    /// Outer UDP checksum (VXLAN, Geneve; always on over IPv6) or GRE
    /// checksum.
    pub csum: bool,
    /// VNI or GRE key; `None` sends VNI 0 or a GRE header without key.
    pub key: Option<u64>,
    /// UDP destination port (VXLAN, Geneve).
    pub dst_port: u16,
    /// VXLAN Group Based Policy.
    pub gbp: Option<Gbp>,
    /// Encoded Geneve options (TLVs).
    pub geneve_options: &'a [u8],
    /// Geneve OAM flag (`tun_flags=+oam`).
    pub oam: bool,
    /// Payload protocol for Geneve and GRE (0x6558 for Ethernet).
    pub inner_protocol: u16,
}

/// A rendered outer header, ready to be put in front of frames.
#[derive(Clone, PartialEq, Eq)]
pub struct EncapHeader {
    bytes: [u8; ENCAP_MAX_LEN],
    len: u16,
    l4: u8,
    v6: bool,
    proto: TunnelProto,
    csum: bool,
}

impl fmt::Debug for EncapHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncapHeader({} ", self.proto)?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

impl EncapHeader {
    /// Renders the outer header for `spec` (lengths, checksums and the UDP
    /// source port are filled per packet by [`EncapHeader::write`]).
    pub fn build(spec: &EncapSpec<'_>) -> Result<EncapHeader, Error> {
        if let Some(k) = spec.key
            && k > spec.proto.max_key()
        {
            return Err(Error::Unbuildable("key too large for the tunnel type"));
        }
        let mut b = [0u8; ENCAP_MAX_LEN];
        b[0..6].copy_from_slice(&spec.eth_dst.0);
        b[6..12].copy_from_slice(&spec.eth_src.0);
        let next = match spec.proto {
            TunnelProto::Gre => gre::IP_PROTO,
            _ => IPPROTO_UDP,
        };
        let (v6, l4) = match (spec.ip_src, spec.ip_dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                b[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
                Ipv4Repr {
                    src,
                    dst,
                    protocol: next,
                    ttl: spec.ttl,
                    tos: spec.tos,
                    dont_frag: spec.df,
                    payload_len: 0,
                }
                .emit(&mut b[ETH_HLEN..])?;
                (false, ETH_HLEN + ipv4::HEADER_LEN)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                b[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
                Ipv6Repr {
                    src,
                    dst,
                    next_header: next,
                    hop_limit: spec.ttl,
                    traffic_class: spec.tos,
                    flow_label: 0,
                    payload_len: 0,
                }
                .emit(&mut b[ETH_HLEN..])?;
                (true, ETH_HLEN + ipv6::HEADER_LEN)
            }
            _ => {
                return Err(Error::Unbuildable(
                    "local and remote IP of different families",
                ));
            }
        };
        let key24 = spec.key.unwrap_or(0) as u32;
        let end = match spec.proto {
            TunnelProto::Vxlan | TunnelProto::Geneve => {
                UdpRepr {
                    src_port: 0,
                    dst_port: spec.dst_port,
                }
                .emit(&mut b[l4..], 0)?;
                let t = l4 + udp::HEADER_LEN;
                if spec.proto == TunnelProto::Vxlan {
                    VxlanRepr {
                        vni: key24,
                        gbp: spec.gbp,
                    }
                    .emit(&mut b[t..])?;
                    t + vxlan::HEADER_LEN
                } else {
                    t + GeneveRepr {
                        vni: key24,
                        oam: spec.oam,
                        critical: false,
                        protocol: spec.inner_protocol,
                        options: spec.geneve_options,
                    }
                    .emit(&mut b[t..])?
                }
            }
            TunnelProto::Gre => {
                l4 + GreRepr {
                    protocol: spec.inner_protocol,
                    csum: spec.csum,
                    key: spec.key.map(|k| k as u32),
                    seq: None,
                }
                .emit(&mut b[l4..])?
            }
        };
        // Over IPv6 a UDP tunnel always carries a checksum (a zero one is
        // refused by receivers without udp6zerocsumrx; OVS sends one too).
        let udp = spec.proto != TunnelProto::Gre;
        Ok(EncapHeader {
            bytes: b,
            len: end as u16,
            l4: l4 as u8,
            v6,
            proto: spec.proto,
            csum: spec.csum || (v6 && udp),
        })
    }

    /// Length of the outer header.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn proto(&self) -> TunnelProto {
        self.proto
    }

    /// Whether the outer header carries a checksum (UDP or GRE) computed
    /// over the inner frame.
    pub fn has_checksum(&self) -> bool {
        self.csum
    }

    /// The rendered header (zero lengths, checksums and source port).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len()]
    }

    /// Writes the header into the first [`EncapHeader::len`] bytes of
    /// `buf`, whose remainder is the inner frame, and patches the lengths,
    /// the IPv4 header checksum, the UDP source port and, with `csum`, the
    /// outer UDP or GRE checksum.
    pub fn write(&self, buf: &mut [u8], src_port: u16) -> Result<(), Error> {
        let n = self.len();
        need(Layer::Ethernet, n, buf.len())?;
        buf[..n].copy_from_slice(self.as_bytes());
        let l3 = ETH_HLEN;
        let l4 = usize::from(self.l4);
        let l3_len = buf.len() - l3;
        let l4_len = buf.len() - l4;
        let too_big = Error::Unbuildable("encapsulated packet over 64 KiB");
        if self.v6 {
            let plen = u16::try_from(l4_len).map_err(|_| too_big)?;
            buf[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
        } else {
            let tot = u16::try_from(l3_len).map_err(|_| too_big)?;
            let h = &mut buf[l3..l4];
            h[2..4].copy_from_slice(&tot.to_be_bytes());
            h[10..12].copy_from_slice(&[0, 0]);
            let c = checksum::ipv4_header_checksum(h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
        }
        match self.proto {
            TunnelProto::Vxlan | TunnelProto::Geneve => {
                let ulen = u16::try_from(l4_len).map_err(|_| too_big)?;
                buf[l4..l4 + 2].copy_from_slice(&src_port.to_be_bytes());
                buf[l4 + 4..l4 + 6].copy_from_slice(&ulen.to_be_bytes());
                buf[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
                if self.csum {
                    let pseudo = self.pseudo_header(buf, l4_len);
                    udp::fill_checksum(&mut buf[l4..], pseudo);
                }
            }
            TunnelProto::Gre => {
                if self.csum {
                    buf[l4 + 4..l4 + 6].copy_from_slice(&[0, 0]);
                    gre::fill_checksum(&mut buf[l4..]);
                }
            }
        }
        Ok(())
    }

    /// The header as OVS prints it inside `tnl_push(...)` in datapath
    /// actions: `header(size=50,type=4,eth(...),ipv4(...),udp(...),vxlan(...))`.
    /// A checksum to be computed per packet shows as `csum=0xffff` (UDP).
    pub fn ovs_text(&self) -> String {
        use std::fmt::Write as _;
        let b = self.as_bytes();
        let be16 = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
        let be32 = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let vport_type = match (self.proto, self.v6) {
            (TunnelProto::Gre, false) => 3,
            (TunnelProto::Gre, true) => 109,
            (TunnelProto::Vxlan, _) => 4,
            (TunnelProto::Geneve, _) => 5,
        };
        let mut s = format!("header(size={},type={vport_type},", self.len());
        let mac =
            |at: usize| MacAddr([b[at], b[at + 1], b[at + 2], b[at + 3], b[at + 4], b[at + 5]]);
        let _ = write!(
            s,
            "eth(dst={},src={},dl_type={:#06x}),",
            mac(0),
            mac(6),
            be16(12)
        );
        let l3 = ETH_HLEN;
        let l4 = usize::from(self.l4);
        if self.v6 {
            let p = Ipv6Packet::new_unchecked(&b[l3..]);
            let _ = write!(
                s,
                "ipv6(src={},dst={},label={},proto={},tclass={:#x},hlimit={}),",
                p.src_addr(),
                p.dst_addr(),
                p.flow_label(),
                p.next_header(),
                p.traffic_class(),
                p.hop_limit()
            );
        } else {
            let p = Ipv4Packet::new_unchecked(&b[l3..]);
            // OVS prints the TOS C-style ("%#x": 0 without a prefix).
            let tos = match p.tos() {
                0 => "0".to_string(),
                t => format!("{t:#x}"),
            };
            let _ = write!(
                s,
                "ipv4(src={},dst={},proto={},tos={tos},ttl={},frag={:#x}),",
                p.src_addr(),
                p.dst_addr(),
                p.protocol(),
                p.ttl(),
                be16(l3 + 6)
            );
        }
        match self.proto {
            TunnelProto::Vxlan | TunnelProto::Geneve => {
                let csum = if self.csum { 0xffff } else { 0 };
                let _ = write!(
                    s,
                    "udp(src={},dst={},csum={csum:#x}),",
                    be16(l4),
                    be16(l4 + 2)
                );
                let t = l4 + udp::HEADER_LEN;
                if self.proto == TunnelProto::Vxlan {
                    let _ = write!(s, "vxlan(flags={:#x},vni={:#x})", be32(t), be32(t + 4) >> 8);
                } else {
                    let g = GenevePacket::new_unchecked(&b[t..]);
                    s.push_str("geneve(");
                    if g.oam() {
                        s.push_str("oam,");
                    }
                    if g.critical() {
                        s.push_str("crit,");
                    }
                    let _ = write!(s, "vni={:#x}", g.vni());
                    if g.options_len() > 0 {
                        s.push_str(",options(");
                        for (i, o) in geneve::options(g.options()).flatten().enumerate() {
                            if i > 0 {
                                s.push(',');
                            }
                            let _ = write!(
                                s,
                                "{{class={:#x},type={:#x},len={},0x",
                                o.class,
                                o.typ,
                                o.data.len()
                            );
                            for d in o.data {
                                let _ = write!(s, "{d:02x}");
                            }
                            s.push('}');
                        }
                        s.push(')');
                    }
                    s.push(')');
                }
            }
            TunnelProto::Gre => {
                let g = GrePacket::new_unchecked(&b[l4..]);
                let _ = write!(s, "gre((flags={:#x},proto={:#x})", g.flags(), g.protocol());
                if g.flags() & 0x8000 != 0 {
                    s.push_str(",csum=0x0");
                }
                if let Some(k) = g.key() {
                    let _ = write!(s, ",key={k:#x}");
                }
                if let Some(q) = g.seq() {
                    let _ = write!(s, ",seq={q:#x}");
                }
                s.push(')');
            }
        }
        s.push(')');
        s
    }

    fn pseudo_header(&self, buf: &[u8], l4_len: usize) -> u64 {
        let l3 = ETH_HLEN;
        let addrs = if self.v6 {
            &buf[l3 + 8..l3 + 40]
        } else {
            &buf[l3 + 12..l3 + 20]
        };
        checksum::accumulate(0, addrs) + u64::from(IPPROTO_UDP) + l4_len as u64
    }
}

/// The outer UDP source port for an inner flow's hash: spread over
/// `[min, max]` so that receivers can balance flows (RFC 7348 §5).
pub fn udp_src_port(hash: u32, min: u16, max: u16) -> u16 {
    let (lo, hi) = if min <= max { (min, max) } else { (max, min) };
    let span = u64::from(hi - lo) + 1;
    lo + ((u64::from(hash) * span) >> 32) as u16
}

/// How a tunnel port accepts packets.
#[derive(Clone, Copy)]
pub struct DecapPolicy<'a> {
    pub proto: TunnelProto,
    /// UDP destination port (VXLAN, Geneve).
    pub dst_port: u16,
    /// The port's fixed key (`options:key`); `None` for `key=flow`.
    pub key: Option<u64>,
    /// Whether a critical Geneve option (class, type) is understood (the
    /// TLV table maps it).
    pub known_option: &'a dyn Fn(u16, u8) -> bool,
}

/// A validated tunnel packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decapsulated {
    pub meta: TunnelMeta,
    /// The inner frame within the received frame (outer padding excluded).
    pub inner: Range<usize>,
    /// The payload's protocol: 0x6558 for Ethernet, an ethertype for an L3
    /// payload (GRE and Geneve with `packet_type=legacy_l3`).
    pub inner_protocol: u16,
    /// Geneve options area within the received frame (empty otherwise).
    pub geneve_options: Range<usize>,
}

/// Parses and validates a received frame (starting with Ethernet) as a
/// tunnel packet for a port with `policy`.
pub fn decap(frame: &[u8], policy: &DecapPolicy<'_>) -> Result<Decapsulated, Error> {
    need(Layer::Ethernet, ETH_HLEN, frame.len())?;
    let mut l3 = ETH_HLEN;
    let mut et = u16::from_be_bytes([frame[12], frame[13]]);
    while et == ETHERTYPE_VLAN || et == ETHERTYPE_QINQ {
        need(Layer::Ethernet, l3 + 4, frame.len())?;
        et = u16::from_be_bytes([frame[l3 + 2], frame[l3 + 3]]);
        l3 += 4;
    }
    let mut meta = TunnelMeta::default();
    // (IP protocol, offset of L4, end of the IP packet, pseudo-header sum of
    // the addresses)
    let (proto, l4, end, addr_sum) = match et {
        ETHERTYPE_IPV4 => {
            let p = Ipv4Packet::new_checked(&frame[l3..])?;
            let r = Ipv4Repr::parse(&p)?;
            meta.ip_src = r.src.into();
            meta.ip_dst = r.dst.into();
            meta.tos = r.tos;
            meta.ttl = r.ttl;
            if r.dont_frag {
                meta.flags |= flags::DONT_FRAGMENT;
            }
            let l4 = l3 + p.header_len();
            let sum = checksum::accumulate(0, &frame[l3 + 12..l3 + 20]);
            (r.protocol, l4, l3 + usize::from(p.total_len()), sum)
        }
        ETHERTYPE_IPV6 => {
            let p = Ipv6Packet::new_checked(&frame[l3..])?;
            let r = Ipv6Repr::parse(&p);
            meta.ip_src = r.src.into();
            meta.ip_dst = r.dst.into();
            meta.tos = r.traffic_class;
            meta.ttl = r.hop_limit;
            let sum = checksum::accumulate(0, &frame[l3 + 8..l3 + 40]);
            (
                r.next_header,
                l3 + ipv6::HEADER_LEN,
                l3 + ipv6::HEADER_LEN + r.payload_len,
                sum,
            )
        }
        other => return Err(Error::NotIp(other)),
    };
    let ip_payload = &frame[l4..end];
    let (tun, key, inner_protocol, opts) = match (policy.proto, proto) {
        (TunnelProto::Vxlan | TunnelProto::Geneve, IPPROTO_UDP) => {
            let u = UdpPacket::new_checked(ip_payload)?;
            meta.tp_src = u.src_port();
            meta.tp_dst = u.dst_port();
            if u.dst_port() != policy.dst_port {
                return Err(Error::NotTunnel {
                    proto,
                    port: u.dst_port(),
                });
            }
            if u.checksum() != 0 {
                let pseudo = addr_sum + u64::from(IPPROTO_UDP) + u64::from(u.len());
                if !u.verify_checksum(pseudo) {
                    return Err(Error::Checksum(Layer::Udp));
                }
                meta.flags |= flags::CSUM;
            }
            let t = l4 + udp::HEADER_LEN;
            let tun_bytes = u.payload();
            if policy.proto == TunnelProto::Vxlan {
                let v = VxlanRepr::parse(&VxlanPacket::new_checked(tun_bytes)?)?;
                if let Some(g) = v.gbp {
                    meta.gbp_id = g.id;
                    meta.gbp_flags = g.flags;
                }
                (
                    t + vxlan::HEADER_LEN,
                    Some(u64::from(v.vni)),
                    geneve::PROTO_ETHERNET,
                    0..0,
                )
            } else {
                let g = GenevePacket::new_checked(tun_bytes)?;
                let r = GeneveRepr::parse(&g, policy.known_option)?;
                if r.oam {
                    meta.flags |= flags::OAM;
                }
                let o = t + geneve::HEADER_LEN;
                (
                    t + r.header_len(),
                    Some(u64::from(r.vni)),
                    r.protocol,
                    o..o + r.options.len(),
                )
            }
        }
        (TunnelProto::Gre, gre::IP_PROTO) => {
            let g = GrePacket::new_checked(ip_payload)?;
            let r = GreRepr::parse(&g)?;
            if r.csum {
                meta.flags |= flags::CSUM;
            }
            (l4 + r.header_len(), r.key.map(u64::from), r.protocol, 0..0)
        }
        (_, p) => return Err(Error::NotTunnel { proto: p, port: 0 }),
    };
    if let Some(k) = key {
        meta.tun_id = k;
        meta.flags |= flags::KEY;
    }
    if let Some(want) = policy.key {
        let got = key.unwrap_or(0);
        if got != want {
            return Err(Error::WrongVni {
                got: got as u32,
                want: want as u32,
            });
        }
    }
    Ok(Decapsulated {
        meta,
        inner: tun..end,
        inner_protocol,
        geneve_options: opts,
    })
}

#[cfg(test)]
mod tests;
