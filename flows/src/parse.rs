//! One-pass flow key extraction from an Ethernet frame.
//!
//! [`extract`] fills a [`FlowKey`] following Open vSwitch's `struct flow`
//! conventions (see [`crate::key`]) and returns a [`Layout`] with the header
//! offsets that rewriting and checksum code need. It never panics: every read
//! is bounds-checked. Malformed L3/L4 headers are reported as [`ParseError`]
//! (the datapath counts them as rx errors); protocols it does not know are
//! not errors, the key just stops at what was parsed.

use crate::key::{FRAG_ANY, FRAG_LATER, FlowKey, VLAN_CFI, ethertype, ipproto};

/// Length of an Ethernet header without tags.
pub const ETH_HEADER_LEN: usize = 14;
/// Length of one 802.1Q/802.1ad tag.
pub const VLAN_HEADER_LEN: usize = 4;
/// Most VLAN tags parsed (outer and inner).
pub const MAX_VLAN_HEADERS: usize = 2;
/// `dl_type` of 802.3 frames without a SNAP header (OVS's `FLOW_DL_TYPE_NONE`).
pub const DL_TYPE_NONE: u16 = 0x05ff;
/// Reverse ARP, keyed like ARP (as OVS does).
pub const ETH_TYPE_RARP: u16 = 0x8035;

const ARP_LEN: usize = 28;
const IPV4_MIN_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const TCP_MIN_LEN: usize = 20;
const UDP_LEN: usize = 8;
const SCTP_LEN: usize = 12;
const ICMP_LEN: usize = 8;
const ICMPV6_LEN: usize = 4;
const ND_MSG_LEN: usize = 24;

const IPV6_HOPOPTS: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AH: u8 = 51;
const IPV6_DSTOPTS: u8 = 60;

const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ND_OPT_SOURCE_LINKADDR: u8 = 1;
const ND_OPT_TARGET_LINKADDR: u8 = 2;

/// Why a frame could not be parsed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ParseError {
    #[error("frame of {len} bytes is shorter than an Ethernet header")]
    ShortFrame { len: usize },
    #[error("truncated ARP header: {avail} of 28 bytes")]
    TruncatedArp { avail: usize },
    #[error("truncated IPv4 header: {avail} bytes, header needs {need}")]
    TruncatedIpv4 { avail: usize, need: usize },
    #[error("bad IPv4 header length {ihl} (minimum 5)")]
    BadIpv4HeaderLen { ihl: u8 },
    #[error("bad IPv4 total length {tot_len}: header is {hdr_len} bytes, {avail} bytes available")]
    BadIpv4TotalLen {
        tot_len: u16,
        hdr_len: usize,
        avail: usize,
    },
    #[error("bad IP version {version} for ethertype {dl_type:#06x}")]
    BadIpVersion { version: u8, dl_type: u16 },
    #[error("truncated IPv6 header: {avail} of 40 bytes")]
    TruncatedIpv6 { avail: usize },
    #[error("bad IPv6 payload length {payload_len}: {avail} bytes available")]
    BadIpv6PayloadLen { payload_len: u16, avail: usize },
    #[error("truncated IPv6 extension header {next_header}")]
    TruncatedIpv6Ext { next_header: u8 },
    #[error("truncated {proto} header: {avail} bytes, header needs {need}")]
    TruncatedL4 {
        proto: &'static str,
        avail: usize,
        need: usize,
    },
}

/// Network-layer protocol found in a frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum L3Kind {
    #[default]
    None,
    Arp,
    Ipv4,
    Ipv6,
}

/// Transport-layer protocol found in a frame (only when its header was parsed).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum L4Kind {
    #[default]
    None,
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmpv6,
}

/// Header offsets of a parsed frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Layout {
    /// Number of VLAN tags parsed (0..=2). The outer tag's TPID is at offset
    /// 12, the inner one's at 16.
    pub n_vlans: u8,
    /// Bytes of L2 header (Ethernet, tags, LLC/SNAP): where L3 starts.
    pub l2_len: u16,
    /// Offset of the ARP/IPv4/IPv6 header.
    pub l3_ofs: Option<u16>,
    /// Offset of the TCP/UDP/SCTP/ICMP/ICMPv6 header (absent on later fragments).
    pub l4_ofs: Option<u16>,
    /// End of the IP packet according to its length field (excludes Ethernet
    /// padding); the frame length for anything else.
    pub l3_end: u32,
    pub l3: L3Kind,
    pub l4: L4Kind,
}

#[inline(always)]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    match b.get(at..at.checked_add(2)?) {
        Some(&[x, y]) => Some(u16::from_be_bytes([x, y])),
        _ => None,
    }
}

#[inline(always)]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(s.try_into().ok()?))
}

#[inline(always)]
fn arr<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Extracts the flow key of `frame` received on `in_port`.
pub fn extract(frame: &[u8], in_port: u32) -> Result<(FlowKey, Layout), ParseError> {
    let mut key = FlowKey::default();
    let layout = extract_into(frame, in_port, &mut key)?;
    Ok((key, layout))
}

/// Like [`extract`] but fills a caller-provided key (every field is reset
/// first, metadata and registers included).
#[inline]
pub fn extract_into(frame: &[u8], in_port: u32, key: &mut FlowKey) -> Result<Layout, ParseError> {
    let mut lay = Layout::default();
    extract_with_layout(frame, in_port, key, &mut lay)?;
    Ok(lay)
}

/// Like [`extract_into`] but writes the layout to `lay` (for a caller that
/// keeps each key's layout beside it: no copy of a returned one). On an
/// error, `lay` holds whatever was parsed before it.
#[inline]
pub fn extract_with_layout(
    frame: &[u8],
    in_port: u32,
    key: &mut FlowKey,
    lay: &mut Layout,
) -> Result<(), ParseError> {
    *key = FlowKey::default();
    key.in_port = in_port;
    *lay = Layout {
        l3_end: u32::try_from(frame.len()).unwrap_or(u32::MAX),
        ..Layout::default()
    };
    let (Some(dst), Some(src), Some(mut ty)) =
        (arr::<6>(frame, 0), arr::<6>(frame, 6), be16(frame, 12))
    else {
        return Err(ParseError::ShortFrame { len: frame.len() });
    };
    key.dl_dst = dst;
    key.dl_src = src;
    let mut ofs = ETH_HEADER_LEN;

    // VLAN tags: a tag is parsed only when it and the following type fit.
    while usize::from(lay.n_vlans) < MAX_VLAN_HEADERS
        && (ty == ethertype::VLAN || ty == ethertype::QINQ)
    {
        let (Some(tci), Some(next)) = (be16(frame, ofs), be16(frame, ofs + 2)) else {
            break;
        };
        if lay.n_vlans == 0 {
            key.vlan_tci = tci | VLAN_CFI;
        } else {
            key.vlan_tci_inner = tci | VLAN_CFI;
        }
        lay.n_vlans += 1;
        ty = next;
        ofs += VLAN_HEADER_LEN;
    }

    // 802.3 length field: SNAP with a zero OUI carries an ethertype.
    if ty < 0x0600 {
        match (arr::<6>(frame, ofs), be16(frame, ofs + 6)) {
            (Some([0xaa, 0xaa, 0x03, 0, 0, 0]), Some(snap_ty)) if snap_ty >= 0x0600 => {
                ty = snap_ty;
                ofs += 8;
            }
            _ => ty = DL_TYPE_NONE,
        }
    }
    key.dl_type = ty;
    lay.l2_len = ofs as u16;

    match ty {
        ethertype::IPV4 => parse_ipv4(frame, ofs, key, lay)?,
        ethertype::IPV6 => parse_ipv6(frame, ofs, key, lay)?,
        ethertype::ARP | ETH_TYPE_RARP => parse_arp(frame, ofs, key, lay)?,
        // MPLS: the top label stack entry; nothing beneath it is parsed
        // (as in OVS, the payload's type is unknown until a pop).
        ethertype::MPLS | ethertype::MPLS_MCAST => {
            if let (Some(hi), Some(lo)) = (be16(frame, ofs), be16(frame, ofs + 2)) {
                key.set_mpls_lse(u32::from(hi) << 16 | u32::from(lo));
            }
        }
        _ => {}
    }
    Ok(())
}

fn parse_arp(
    frame: &[u8],
    ofs: usize,
    key: &mut FlowKey,
    lay: &mut Layout,
) -> Result<(), ParseError> {
    let avail = frame.len().saturating_sub(ofs);
    let (Some(hrd), Some(pro), Some(&hln), Some(&pln), Some(op)) = (
        be16(frame, ofs),
        be16(frame, ofs + 2),
        frame.get(ofs + 4),
        frame.get(ofs + 5),
        be16(frame, ofs + 6),
    ) else {
        return Err(ParseError::TruncatedArp { avail });
    };
    lay.l3_ofs = Some(ofs as u16);
    lay.l3 = L3Kind::Arp;
    if hrd != 1 || pro != ethertype::IPV4 || hln != 6 || pln != 4 {
        return Ok(());
    }
    let (Some(sha), Some(spa), Some(tha), Some(tpa)) = (
        arr::<6>(frame, ofs + 8),
        be32(frame, ofs + 14),
        arr::<6>(frame, ofs + 18),
        be32(frame, ofs + 24),
    ) else {
        return Err(ParseError::TruncatedArp { avail });
    };
    debug_assert!(avail >= ARP_LEN);
    if op <= 0xff {
        key.nw_proto = op as u8;
    }
    key.nw_src = spa;
    key.nw_dst = tpa;
    key.arp_sha = sha;
    key.arp_tha = tha;
    Ok(())
}

#[inline(always)]
fn parse_ipv4(
    frame: &[u8],
    ofs: usize,
    key: &mut FlowKey,
    lay: &mut Layout,
) -> Result<(), ParseError> {
    let avail = frame.len().saturating_sub(ofs);
    let Some(hdr) = frame.get(ofs..ofs + IPV4_MIN_LEN) else {
        return Err(ParseError::TruncatedIpv4 {
            avail,
            need: IPV4_MIN_LEN,
        });
    };
    let (
        Some(&vihl),
        Some(&tos),
        Some(tot_len),
        Some(frag),
        Some(&ttl),
        Some(&proto),
        Some(src),
        Some(dst),
    ) = (
        hdr.first(),
        hdr.get(1),
        be16(hdr, 2),
        be16(hdr, 6),
        hdr.get(8),
        hdr.get(9),
        be32(hdr, 12),
        be32(hdr, 16),
    )
    else {
        return Err(ParseError::TruncatedIpv4 {
            avail,
            need: IPV4_MIN_LEN,
        });
    };
    let version = vihl >> 4;
    if version != 4 {
        return Err(ParseError::BadIpVersion {
            version,
            dl_type: ethertype::IPV4,
        });
    }
    let ihl = vihl & 0x0f;
    if ihl < 5 {
        return Err(ParseError::BadIpv4HeaderLen { ihl });
    }
    let hdr_len = usize::from(ihl) * 4;
    if hdr_len > avail {
        return Err(ParseError::TruncatedIpv4 {
            avail,
            need: hdr_len,
        });
    }
    if usize::from(tot_len) < hdr_len || usize::from(tot_len) > avail {
        return Err(ParseError::BadIpv4TotalLen {
            tot_len,
            hdr_len,
            avail,
        });
    }
    key.nw_src = src;
    key.nw_dst = dst;
    key.nw_proto = proto;
    key.nw_tos = tos;
    key.nw_ttl = ttl;
    if frag & 0x3fff != 0 {
        key.nw_frag = FRAG_ANY;
        if frag & 0x1fff != 0 {
            key.nw_frag |= FRAG_LATER;
        }
    }
    lay.l3 = L3Kind::Ipv4;
    lay.l3_ofs = Some(ofs as u16);
    let end = ofs + usize::from(tot_len);
    lay.l3_end = end as u32;
    if key.nw_frag & FRAG_LATER != 0 {
        return Ok(());
    }
    let l4 = ofs + hdr_len;
    match frame.get(l4..end) {
        Some(payload) => parse_l4(payload, l4, proto, false, key, lay),
        None => Ok(()),
    }
}

fn parse_ipv6(
    frame: &[u8],
    ofs: usize,
    key: &mut FlowKey,
    lay: &mut Layout,
) -> Result<(), ParseError> {
    let avail = frame.len().saturating_sub(ofs);
    let (Some(vtcfl), Some(payload_len), Some(&next), Some(&hlim), Some(src), Some(dst)) = (
        be32(frame, ofs),
        be16(frame, ofs + 4),
        frame.get(ofs + 6),
        frame.get(ofs + 7),
        arr::<16>(frame, ofs + 8),
        arr::<16>(frame, ofs + 24),
    ) else {
        return Err(ParseError::TruncatedIpv6 { avail });
    };
    let version = (vtcfl >> 28) as u8;
    if version != 6 {
        return Err(ParseError::BadIpVersion {
            version,
            dl_type: ethertype::IPV6,
        });
    }
    if usize::from(payload_len) > avail - IPV6_HEADER_LEN {
        return Err(ParseError::BadIpv6PayloadLen { payload_len, avail });
    }
    key.nw_tos = (vtcfl >> 20) as u8;
    key.ipv6_label = vtcfl & 0x000f_ffff;
    key.nw_ttl = hlim;
    key.ipv6_src = src;
    key.ipv6_dst = dst;
    lay.l3 = L3Kind::Ipv6;
    lay.l3_ofs = Some(ofs as u16);
    let end = ofs + IPV6_HEADER_LEN + usize::from(payload_len);
    lay.l3_end = end as u32;
    let Some(pkt) = frame.get(..end) else {
        return Ok(());
    };

    // Extension headers.
    let mut nh = next;
    let mut pos = ofs + IPV6_HEADER_LEN;
    loop {
        let len = match nh {
            IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS => match pkt.get(pos + 1) {
                Some(&l) => (usize::from(l) + 1) * 8,
                None => return Err(ParseError::TruncatedIpv6Ext { next_header: nh }),
            },
            IPV6_AH => match pkt.get(pos + 1) {
                Some(&l) => (usize::from(l) + 2) * 4,
                None => return Err(ParseError::TruncatedIpv6Ext { next_header: nh }),
            },
            IPV6_FRAGMENT => 8,
            _ => break,
        };
        let (Some(&following), true) = (pkt.get(pos), pos + len <= pkt.len()) else {
            return Err(ParseError::TruncatedIpv6Ext { next_header: nh });
        };
        if nh == IPV6_FRAGMENT {
            let Some(off) = be16(pkt, pos + 2) else {
                return Err(ParseError::TruncatedIpv6Ext { next_header: nh });
            };
            // Offset (13 bits << 3) and the M flag.
            if off & 0xfff9 != 0 {
                key.nw_frag = FRAG_ANY;
                if off & 0xfff8 != 0 {
                    key.nw_frag |= FRAG_LATER;
                    key.nw_proto = following;
                    return Ok(());
                }
            }
        }
        nh = following;
        pos += len;
    }
    key.nw_proto = nh;
    match pkt.get(pos..) {
        Some(payload) => parse_l4(payload, pos, nh, true, key, lay),
        None => Ok(()),
    }
}

#[inline]
fn truncated(proto: &'static str, avail: usize, need: usize) -> ParseError {
    ParseError::TruncatedL4 { proto, avail, need }
}

#[inline(always)]
fn parse_l4(
    p: &[u8],
    ofs: usize,
    proto: u8,
    ipv6: bool,
    key: &mut FlowKey,
    lay: &mut Layout,
) -> Result<(), ParseError> {
    let kind = match (proto, ipv6) {
        (ipproto::TCP, _) => {
            let (Some(sp), Some(dp), Some(ctl)) = (be16(p, 0), be16(p, 2), be16(p, 12)) else {
                return Err(truncated("TCP", p.len(), TCP_MIN_LEN));
            };
            let doff = usize::from(ctl >> 12) * 4;
            if p.len() < TCP_MIN_LEN || doff < TCP_MIN_LEN || doff > p.len() {
                return Err(truncated("TCP", p.len(), doff.max(TCP_MIN_LEN)));
            }
            key.tp_src = sp;
            key.tp_dst = dp;
            key.tcp_flags = ctl & 0x0fff;
            L4Kind::Tcp
        }
        (ipproto::UDP, _) => {
            let (Some(sp), Some(dp), true) = (be16(p, 0), be16(p, 2), p.len() >= UDP_LEN) else {
                return Err(truncated("UDP", p.len(), UDP_LEN));
            };
            key.tp_src = sp;
            key.tp_dst = dp;
            L4Kind::Udp
        }
        (ipproto::SCTP, _) => {
            let (Some(sp), Some(dp), true) = (be16(p, 0), be16(p, 2), p.len() >= SCTP_LEN) else {
                return Err(truncated("SCTP", p.len(), SCTP_LEN));
            };
            key.tp_src = sp;
            key.tp_dst = dp;
            L4Kind::Sctp
        }
        (ipproto::ICMP, false) => {
            let (Some(&ty), Some(&code), true) = (p.first(), p.get(1), p.len() >= ICMP_LEN) else {
                return Err(truncated("ICMP", p.len(), ICMP_LEN));
            };
            key.tp_src = u16::from(ty);
            key.tp_dst = u16::from(code);
            L4Kind::Icmp
        }
        (ipproto::ICMPV6, true) => {
            let (Some(&ty), Some(&code), true) = (p.first(), p.get(1), p.len() >= ICMPV6_LEN)
            else {
                return Err(truncated("ICMPv6", p.len(), ICMPV6_LEN));
            };
            key.tp_src = u16::from(ty);
            key.tp_dst = u16::from(code);
            if code == 0 && (ty == ND_NEIGHBOR_SOLICIT || ty == ND_NEIGHBOR_ADVERT) {
                parse_nd(p, ty, key);
            }
            L4Kind::Icmpv6
        }
        _ => return Ok(()),
    };
    lay.l4_ofs = u16::try_from(ofs).ok();
    lay.l4 = kind;
    Ok(())
}

/// Neighbour solicitation/advertisement: target and link-layer options. A
/// malformed message leaves all three fields zero (as OVS does).
fn parse_nd(p: &[u8], ty: u8, key: &mut FlowKey) {
    let Some(target) = arr::<16>(p, 8) else {
        return;
    };
    let mut sll = [0u8; 6];
    let mut tll = [0u8; 6];
    let mut pos = ND_MSG_LEN;
    while pos < p.len() {
        let (Some(&opt), Some(&len)) = (p.get(pos), p.get(pos + 1)) else {
            return;
        };
        let opt_len = usize::from(len) * 8;
        if opt_len == 0 || pos + opt_len > p.len() {
            return;
        }
        if opt_len == 8 {
            match (opt, ty, arr::<6>(p, pos + 2)) {
                (ND_OPT_SOURCE_LINKADDR, ND_NEIGHBOR_SOLICIT, Some(mac)) => {
                    if sll != [0; 6] {
                        return; // duplicate option: invalid
                    }
                    sll = mac;
                }
                (ND_OPT_TARGET_LINKADDR, ND_NEIGHBOR_ADVERT, Some(mac)) => {
                    if tll != [0; 6] {
                        return;
                    }
                    tll = mac;
                }
                _ => {}
            }
        }
        pos += opt_len;
    }
    key.nd_target = target;
    key.arp_sha = sll;
    key.arp_tha = tll;
}

#[cfg(test)]
mod tests {
    use super::*;

    const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

    fn eth(ty: u16) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&DST);
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&ty.to_be_bytes());
        f
    }

    fn ipv4(proto: u8, frag: u16, options: &[u8], payload: &[u8]) -> Vec<u8> {
        let hl = 20 + options.len();
        let mut h = vec![
            0x40 | (hl / 4) as u8,
            0xb8,
            0,
            0,
            0x12,
            0x34,
            (frag >> 8) as u8,
            frag as u8,
            64,
            proto,
            0,
            0,
            10,
            0,
            0,
            1,
            10,
            0,
            0,
            2,
        ];
        h.extend_from_slice(options);
        let tot = (hl + payload.len()) as u16;
        h[2..4].copy_from_slice(&tot.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }

    fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
        // tc 0xa5, flow label 0x12345
        let mut h = vec![0x6a, 0x51, 0x23, 0x45];
        h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        h.push(next);
        h.push(255);
        let mut src = [0u8; 16];
        src[0] = 0xfe;
        src[1] = 0x80;
        src[15] = 1;
        let mut dst = [0u8; 16];
        dst[0] = 0xff;
        dst[1] = 0x02;
        dst[15] = 2;
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h.extend_from_slice(payload);
        h
    }

    fn udp(sp: u16, dp: u16, data: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend_from_slice(&sp.to_be_bytes());
        u.extend_from_slice(&dp.to_be_bytes());
        u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(data);
        u
    }

    fn tcp(sp: u16, dp: u16, flags: u16) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&sp.to_be_bytes());
        t[2..4].copy_from_slice(&dp.to_be_bytes());
        t[12..14].copy_from_slice(&((5u16 << 12) | flags).to_be_bytes());
        t
    }

    fn frame(ty: u16, l3: &[u8]) -> Vec<u8> {
        let mut f = eth(ty);
        f.extend_from_slice(l3);
        f
    }

    #[test]
    fn ethernet_only_frame_with_unknown_type_is_keyed_not_rejected() {
        let f = frame(0x88cc, &[1, 2, 3]);
        let (k, lay) = extract(&f, 7).unwrap();
        assert_eq!(k.in_port, 7);
        assert_eq!(k.dl_dst, DST);
        assert_eq!(k.dl_src, SRC);
        assert_eq!(k.dl_type, 0x88cc);
        assert_eq!(lay.l3_ofs, None);
        assert_eq!(lay.l2_len, 14);
    }

    #[test]
    fn short_frame_is_an_error() {
        assert_eq!(
            extract(&[0u8; 13], 1),
            Err(ParseError::ShortFrame { len: 13 })
        );
        assert!(extract(&[], 1).is_err());
    }

    #[test]
    fn llc_without_snap_gets_dl_type_none_and_snap_gets_inner_type() {
        let mut f = eth(60);
        f.extend_from_slice(&[0x42, 0x42, 0x03, 0, 0, 0, 0, 0]);
        assert_eq!(extract(&f, 1).unwrap().0.dl_type, DL_TYPE_NONE);
        let mut f = eth(60);
        f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x06]);
        f.extend_from_slice(&arp_body(1));
        let (k, lay) = extract(&f, 1).unwrap();
        assert_eq!(k.dl_type, ethertype::ARP);
        assert_eq!(lay.l3_ofs, Some(22));
        assert_eq!(k.nw_proto, 1);
    }

    #[test]
    fn single_vlan_tag_sets_tci_with_cfi_and_inner_ethertype() {
        let mut f = eth(ethertype::VLAN);
        f.extend_from_slice(&[0xa0, 0x64]); // pcp 5, vid 100
        f.extend_from_slice(&ethertype::IPV4.to_be_bytes());
        f.extend_from_slice(&ipv4(17, 0, &[], &udp(1, 2, &[])));
        let (k, lay) = extract(&f, 1).unwrap();
        assert_eq!(k.vlan_tci, 0xa064 | VLAN_CFI);
        assert_eq!(k.vlan_tci_inner, 0);
        assert_eq!(k.vlan_vid(), 100);
        assert_eq!(k.dl_type, ethertype::IPV4);
        assert_eq!(lay.n_vlans, 1);
        assert_eq!(lay.l3_ofs, Some(18));
        assert_eq!(lay.l4_ofs, Some(38));
        assert_eq!((k.tp_src, k.tp_dst), (1, 2));
    }

    #[test]
    fn double_tag_puts_outer_in_vlan_tci_and_inner_in_vlan_tci_inner() {
        let mut f = eth(ethertype::QINQ);
        f.extend_from_slice(&[0x00, 0x0a]);
        f.extend_from_slice(&ethertype::VLAN.to_be_bytes());
        f.extend_from_slice(&[0x20, 0x14]);
        f.extend_from_slice(&ethertype::IPV6.to_be_bytes());
        f.extend_from_slice(&ipv6(17, &udp(53, 5353, &[])));
        let (k, lay) = extract(&f, 1).unwrap();
        assert_eq!(k.vlan_tci, 0x000a | VLAN_CFI);
        assert_eq!(k.vlan_tci_inner, 0x2014 | VLAN_CFI);
        assert_eq!(k.dl_type, ethertype::IPV6);
        assert_eq!(lay.n_vlans, 2);
        assert_eq!(lay.l3_ofs, Some(22));
        assert_eq!((k.tp_src, k.tp_dst), (53, 5353));
    }

    #[test]
    fn truncated_vlan_tag_leaves_vlan_ethertype() {
        let mut f = eth(ethertype::VLAN);
        f.extend_from_slice(&[0x00]);
        let (k, _) = extract(&f, 1).unwrap();
        assert_eq!(k.dl_type, ethertype::VLAN);
        assert_eq!(k.vlan_tci, 0);
    }

    fn arp_body(op: u16) -> Vec<u8> {
        let mut a = vec![0, 1, 0x08, 0, 6, 4];
        a.extend_from_slice(&op.to_be_bytes());
        a.extend_from_slice(&SRC);
        a.extend_from_slice(&[10, 0, 0, 1]);
        a.extend_from_slice(&if op == 1 { [0; 6] } else { DST });
        a.extend_from_slice(&[10, 0, 0, 2]);
        a
    }

    #[test]
    fn arp_request_and_reply_fill_opcode_and_addresses() {
        for op in [1u16, 2] {
            let f = frame(ethertype::ARP, &arp_body(op));
            let (k, lay) = extract(&f, 1).unwrap();
            assert_eq!(k.nw_proto, op as u8);
            assert_eq!(k.nw_src, 0x0a00_0001);
            assert_eq!(k.nw_dst, 0x0a00_0002);
            assert_eq!(k.arp_sha, SRC);
            assert_eq!(k.arp_tha, if op == 1 { [0; 6] } else { DST });
            assert_eq!(lay.l3, L3Kind::Arp);
        }
    }

    #[test]
    fn rarp_is_keyed_like_arp() {
        let f = frame(ETH_TYPE_RARP, &arp_body(3));
        let (k, _) = extract(&f, 1).unwrap();
        assert_eq!((k.dl_type, k.nw_proto), (ETH_TYPE_RARP, 3));
        assert_eq!(k.arp_sha, SRC);
    }

    #[test]
    fn arp_for_other_hardware_is_keyed_without_addresses() {
        let mut body = arp_body(1);
        body[1] = 6; // IEEE 802 hardware type
        let (k, lay) = extract(&frame(ethertype::ARP, &body), 1).unwrap();
        assert_eq!(k.nw_src, 0);
        assert_eq!(k.nw_proto, 0);
        assert_eq!(lay.l3, L3Kind::Arp);
    }

    #[test]
    fn truncated_arp_is_an_error() {
        let body = arp_body(1);
        for n in [0, 7, 27] {
            let f = frame(ethertype::ARP, &body[..n]);
            assert!(
                matches!(extract(&f, 1), Err(ParseError::TruncatedArp { .. })),
                "{n}"
            );
        }
    }

    #[test]
    fn ipv4_udp_fills_addresses_tos_ttl_and_ports() {
        let f = frame(ethertype::IPV4, &ipv4(17, 0, &[], &udp(1234, 53, b"hello")));
        let (k, lay) = extract(&f, 3).unwrap();
        assert_eq!(k.nw_src, 0x0a00_0001);
        assert_eq!(k.nw_dst, 0x0a00_0002);
        assert_eq!(k.nw_proto, 17);
        assert_eq!(k.nw_tos, 0xb8);
        assert_eq!(k.nw_ttl, 64);
        assert_eq!(k.nw_frag, 0);
        assert_eq!((k.tp_src, k.tp_dst), (1234, 53));
        assert_eq!(lay.l4, L4Kind::Udp);
        assert_eq!(lay.l3_end as usize, f.len());
    }

    #[test]
    fn ipv4_options_are_skipped_and_padding_excluded_from_l3_end() {
        let mut f = frame(
            ethertype::IPV4,
            &ipv4(6, 0, &[1, 1, 1, 0], &tcp(80, 443, 0x012)),
        );
        let real_end = f.len();
        f.extend_from_slice(&[0; 6]); // Ethernet padding
        let (k, lay) = extract(&f, 1).unwrap();
        assert_eq!(lay.l4_ofs, Some(14 + 24));
        assert_eq!((k.tp_src, k.tp_dst), (80, 443));
        assert_eq!(k.tcp_flags, 0x012);
        assert_eq!(lay.l3_end as usize, real_end);
    }

    #[test]
    fn tcp_flags_keep_twelve_bits() {
        let f = frame(ethertype::IPV4, &ipv4(6, 0, &[], &tcp(1, 2, 0xfff)));
        assert_eq!(extract(&f, 1).unwrap().0.tcp_flags, 0x0fff);
    }

    #[test]
    fn ipv4_first_fragment_is_flagged_and_parsed_later_fragment_is_not() {
        let f = frame(ethertype::IPV4, &ipv4(17, 0x2000, &[], &udp(7, 9, &[0; 8])));
        let (k, lay) = extract(&f, 1).unwrap();
        assert_eq!(k.nw_frag, FRAG_ANY);
        assert_eq!((k.tp_src, k.tp_dst), (7, 9));
        assert!(lay.l4_ofs.is_some());

        let f = frame(ethertype::IPV4, &ipv4(17, 0x0003, &[], &[0xff; 16]));
        let (k, lay) = extract(&f, 1).unwrap();
        assert_eq!(k.nw_frag, FRAG_ANY | FRAG_LATER);
        assert_eq!(k.nw_proto, 17);
        assert_eq!((k.tp_src, k.tp_dst), (0, 0));
        assert_eq!(lay.l4_ofs, None);
    }

    #[test]
    fn ipv4_later_fragment_too_short_for_l4_is_not_an_error() {
        let f = frame(ethertype::IPV4, &ipv4(6, 0x2001, &[], &[1, 2]));
        assert!(extract(&f, 1).is_ok());
    }

    #[test]
    fn icmpv4_type_and_code_go_to_tp_src_and_tp_dst() {
        let f = frame(ethertype::IPV4, &ipv4(1, 0, &[], &[3, 4, 0, 0, 0, 0, 0, 0]));
        let (k, lay) = extract(&f, 1).unwrap();
        assert_eq!((k.tp_src, k.tp_dst), (3, 4));
        assert_eq!(lay.l4, L4Kind::Icmp);
    }

    #[test]
    fn sctp_ports_are_parsed() {
        let mut s = vec![0u8; 12];
        s[0..2].copy_from_slice(&5000u16.to_be_bytes());
        s[2..4].copy_from_slice(&6000u16.to_be_bytes());
        let f = frame(ethertype::IPV4, &ipv4(132, 0, &[], &s));
        let (k, _) = extract(&f, 1).unwrap();
        assert_eq!((k.tp_src, k.tp_dst), (5000, 6000));
    }

    #[test]
    fn unknown_ip_protocol_is_keyed_without_l4() {
        let f = frame(ethertype::IPV4, &ipv4(47, 0, &[], &[0; 4]));
        let (k, lay) = extract(&f, 1).unwrap();
        assert_eq!(k.nw_proto, 47);
        assert_eq!(lay.l4_ofs, None);
    }

    #[test]
    fn malformed_ipv4_headers_are_errors() {
        let good = ipv4(17, 0, &[], &udp(1, 2, &[]));
        // Truncated below 20 bytes.
        let f = frame(ethertype::IPV4, &good[..19]);
        assert!(matches!(
            extract(&f, 1),
            Err(ParseError::TruncatedIpv4 { .. })
        ));
        // IHL < 5.
        let mut b = good.clone();
        b[0] = 0x44;
        assert_eq!(
            extract(&frame(ethertype::IPV4, &b), 1),
            Err(ParseError::BadIpv4HeaderLen { ihl: 4 })
        );
        // IHL beyond the frame.
        let mut b = good.clone();
        b[0] = 0x4f;
        assert!(matches!(
            extract(&frame(ethertype::IPV4, &b), 1),
            Err(ParseError::TruncatedIpv4 { .. })
        ));
        // Total length shorter than the header / longer than the frame.
        for tot in [19u16, 29] {
            let mut b = good.clone();
            b[2..4].copy_from_slice(&tot.to_be_bytes());
            assert!(matches!(
                extract(&frame(ethertype::IPV4, &b), 1),
                Err(ParseError::BadIpv4TotalLen { .. })
            ));
        }
        // Wrong version.
        let mut b = good.clone();
        b[0] = 0x65;
        assert!(matches!(
            extract(&frame(ethertype::IPV4, &b), 1),
            Err(ParseError::BadIpVersion { .. })
        ));
    }

    #[test]
    fn truncated_l4_headers_are_errors() {
        let cases: [(u8, usize); 4] = [(6, 19), (17, 7), (132, 11), (1, 7)];
        for (proto, n) in cases {
            let f = frame(ethertype::IPV4, &ipv4(proto, 0, &[], &vec![0x50; n]));
            assert!(
                matches!(extract(&f, 1), Err(ParseError::TruncatedL4 { .. })),
                "proto {proto}"
            );
        }
        // TCP data offset pointing past the segment.
        let mut t = tcp(1, 2, 0);
        t[12] = 0xf0;
        let f = frame(ethertype::IPV4, &ipv4(6, 0, &[], &t));
        assert!(matches!(
            extract(&f, 1),
            Err(ParseError::TruncatedL4 { .. })
        ));
        // ICMPv6 shorter than 4 bytes.
        let f = frame(ethertype::IPV6, &ipv6(58, &[135, 0, 0]));
        assert!(matches!(
            extract(&f, 1),
            Err(ParseError::TruncatedL4 { .. })
        ));
    }

    #[test]
    fn ipv6_udp_fills_tc_label_hlim_and_addresses() {
        let f = frame(ethertype::IPV6, &ipv6(17, &udp(546, 547, &[1, 2, 3])));
        let (k, lay) = extract(&f, 1).unwrap();
        assert_eq!(k.nw_tos, 0xa5);
        assert_eq!(k.ipv6_label, 0x12345);
        assert_eq!(k.nw_ttl, 255);
        assert_eq!(k.nw_proto, 17);
        assert_eq!(k.ipv6_src[0..2], [0xfe, 0x80]);
        assert_eq!(k.ipv6_dst[15], 2);
        assert_eq!((k.tp_src, k.tp_dst), (546, 547));
        assert_eq!(lay.l4_ofs, Some(54));
    }

    #[test]
    fn ipv6_extension_headers_are_skipped() {
        // Hop-by-hop (8 bytes) -> routing (16 bytes) -> dest opts (8) -> TCP.
        let mut p = vec![43, 0, 1, 4, 0, 0, 0, 0];
        p.extend_from_slice(&[60, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        p.extend_from_slice(&tcp(22, 2222, 0x002));
        let f = frame(ethertype::IPV6, &ipv6(0, &p));
        let (k, lay) = extract(&f, 1).unwrap();
        assert_eq!(k.nw_proto, 6);
        assert_eq!((k.tp_src, k.tp_dst), (22, 2222));
        assert_eq!(k.tcp_flags, 0x002);
        assert_eq!(lay.l4_ofs, Some(14 + 40 + 32));
    }

    #[test]
    fn ipv6_fragments_are_flagged_and_later_fragments_not_parsed() {
        // First fragment (offset 0, M set).
        let mut p = vec![17, 0, 0x00, 0x01, 0, 0, 0, 1];
        p.extend_from_slice(&udp(10, 20, &[0; 8]));
        let (k, _) = extract(&frame(ethertype::IPV6, &ipv6(44, &p)), 1).unwrap();
        assert_eq!(k.nw_frag, FRAG_ANY);
        assert_eq!(k.nw_proto, 17);
        assert_eq!((k.tp_src, k.tp_dst), (10, 20));
        // Later fragment (offset 8 bytes).
        let mut p = vec![17, 0, 0x00, 0x08, 0, 0, 0, 1];
        p.extend_from_slice(&[0xee; 8]);
        let (k, lay) = extract(&frame(ethertype::IPV6, &ipv6(44, &p)), 1).unwrap();
        assert_eq!(k.nw_frag, FRAG_ANY | FRAG_LATER);
        assert_eq!(k.nw_proto, 17);
        assert_eq!((k.tp_src, k.tp_dst), (0, 0));
        assert_eq!(lay.l4_ofs, None);
        // Atomic fragment (offset 0, no M) is not a fragment.
        let mut p = vec![17, 0, 0, 0, 0, 0, 0, 1];
        p.extend_from_slice(&udp(10, 20, &[]));
        let (k, _) = extract(&frame(ethertype::IPV6, &ipv6(44, &p)), 1).unwrap();
        assert_eq!(k.nw_frag, 0);
    }

    #[test]
    fn malformed_ipv6_is_an_error() {
        let good = ipv6(17, &udp(1, 2, &[]));
        let f = frame(ethertype::IPV6, &good[..39]);
        assert!(matches!(
            extract(&f, 1),
            Err(ParseError::TruncatedIpv6 { .. })
        ));
        let mut b = good.clone();
        b[4..6].copy_from_slice(&100u16.to_be_bytes());
        assert!(matches!(
            extract(&frame(ethertype::IPV6, &b), 1),
            Err(ParseError::BadIpv6PayloadLen { .. })
        ));
        let mut b = good.clone();
        b[0] = 0x45;
        assert!(matches!(
            extract(&frame(ethertype::IPV6, &b), 1),
            Err(ParseError::BadIpVersion { .. })
        ));
        // Extension header longer than the payload.
        let f = frame(ethertype::IPV6, &ipv6(0, &[6, 3, 0, 0, 0, 0, 0, 0]));
        assert!(matches!(
            extract(&f, 1),
            Err(ParseError::TruncatedIpv6Ext { .. })
        ));
    }

    fn nd(ty: u8, opts: &[u8]) -> Vec<u8> {
        let mut m = vec![ty, 0, 0, 0, 0, 0, 0, 0];
        let mut target = [0u8; 16];
        target[0] = 0x20;
        target[1] = 0x01;
        target[15] = 0x99;
        m.extend_from_slice(&target);
        m.extend_from_slice(opts);
        m
    }

    #[test]
    fn nd_solicit_fills_target_and_source_link_layer_address() {
        let mut opt = vec![1, 1];
        opt.extend_from_slice(&SRC);
        let f = frame(ethertype::IPV6, &ipv6(58, &nd(135, &opt)));
        let (k, lay) = extract(&f, 1).unwrap();
        assert_eq!((k.tp_src, k.tp_dst), (135, 0));
        assert_eq!(k.nd_target[15], 0x99);
        assert_eq!(k.arp_sha, SRC);
        assert_eq!(k.arp_tha, [0; 6]);
        assert_eq!(lay.l4, L4Kind::Icmpv6);
    }

    #[test]
    fn nd_advert_fills_target_link_layer_address() {
        let mut opt = vec![2, 1];
        opt.extend_from_slice(&DST);
        let f = frame(ethertype::IPV6, &ipv6(58, &nd(136, &opt)));
        let (k, _) = extract(&f, 1).unwrap();
        assert_eq!(k.arp_tha, DST);
        assert_eq!(k.arp_sha, [0; 6]);
        assert_eq!(k.nd_target[0..2], [0x20, 0x01]);
    }

    #[test]
    fn nd_with_zero_length_option_is_keyed_without_nd_fields() {
        let f = frame(
            ethertype::IPV6,
            &ipv6(58, &nd(135, &[1, 0, 0, 0, 0, 0, 0, 0])),
        );
        let (k, _) = extract(&f, 1).unwrap();
        assert_eq!(k.tp_src, 135);
        assert_eq!(k.nd_target, [0; 16]);
        assert_eq!(k.arp_sha, [0; 6]);
    }

    #[test]
    fn extract_into_resets_every_field_of_a_reused_key() {
        let f = frame(ethertype::IPV4, &ipv4(17, 0, &[], &udp(1, 2, &[])));
        let mut k = FlowKey::all_ones();
        extract_into(&f, 9, &mut k).unwrap();
        assert_eq!(k, extract(&f, 9).unwrap().0);
    }
}
