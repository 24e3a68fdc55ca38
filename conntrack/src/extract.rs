//! Reading the tracker's view of a packet: its tuple and TCP fields, or, for
//! an ICMP error, the tuple of the packet embedded in it.

use flows::key::{FRAG_ANY, FlowKey};
use flows::parse::{L3Kind, Layout};

use crate::tcp::{TcpSeg, parse_wscale};
use crate::tuple::{Tuple, icmp_is_request, icmp_reply_type, proto};

/// A packet as the tracker sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// A packet of a connection.
    Conn {
        tuple: Tuple,
        tcp: Option<TcpSeg>,
        /// For ICMP: the type may start a connection.
        icmp_request: bool,
    },
    /// An ICMP/ICMPv6 error carrying the start of a packet of a connection.
    IcmpError {
        /// The embedded packet's tuple, as it was sent.
        inner: Tuple,
        /// Offsets of the embedded IP and L4 headers in the frame.
        inner_l3: usize,
        inner_l4: usize,
    },
}

#[inline]
fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

#[inline]
fn be32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn addrs(d: &[u8], l3: usize, ipv6: bool) -> Option<([u8; 16], [u8; 16])> {
    let mut s = [0u8; 16];
    let mut t = [0u8; 16];
    if ipv6 {
        s.copy_from_slice(d.get(l3 + 8..l3 + 24)?);
        t.copy_from_slice(d.get(l3 + 24..l3 + 40)?);
    } else {
        s[..4].copy_from_slice(d.get(l3 + 12..l3 + 16)?);
        t[..4].copy_from_slice(d.get(l3 + 16..l3 + 20)?);
    }
    Some((s, t))
}

fn is_icmp_error(ipv6: bool, ty: u8) -> bool {
    if ipv6 {
        (1..=4).contains(&ty)
    } else {
        matches!(ty, 3 | 4 | 5 | 11 | 12)
    }
}

/// Parses `frame` (flow key and layout from `flows::parse::extract`) for
/// tracking in `zone`. `None` means the tracker cannot follow the packet: it
/// is `+inv` (non-IP, fragments, truncated or unknown ICMP messages).
pub(crate) fn parse(frame: &[u8], key: &FlowKey, lay: &Layout, zone: u16) -> Option<Parsed> {
    let ipv6 = match lay.l3 {
        L3Kind::Ipv4 => false,
        L3Kind::Ipv6 => true,
        _ => return None,
    };
    if key.nw_frag & FRAG_ANY != 0 {
        return None;
    }
    let l3 = usize::from(lay.l3_ofs?);
    let (src, dst) = addrs(frame, l3, ipv6)?;
    let p = key.nw_proto;
    let mut tuple = Tuple {
        src,
        dst,
        sport: 0,
        dport: 0,
        zone,
        proto: p,
        ipv6,
    };
    let l3_end = lay.l3_end as usize;
    match p {
        proto::TCP => {
            let l4 = usize::from(lay.l4_ofs?);
            let doff = usize::from(*frame.get(l4 + 12)? >> 4) * 4;
            if doff < 20 {
                return None;
            }
            let opts = frame.get(l4 + 20..l4 + doff)?;
            let payload_len = l3_end.checked_sub(l4 + doff)?;
            tuple.sport = be16(frame, l4)?;
            tuple.dport = be16(frame, l4 + 2)?;
            let seg = TcpSeg {
                flags: be16(frame, l4 + 12)? & 0x0fff,
                seq: be32(frame, l4 + 4)?,
                ack: be32(frame, l4 + 8)?,
                win: be16(frame, l4 + 14)?,
                payload_len: u32::try_from(payload_len).ok()?,
                wscale: parse_wscale(opts),
            };
            Some(Parsed::Conn {
                tuple,
                tcp: Some(seg),
                icmp_request: false,
            })
        }
        proto::UDP | proto::SCTP => {
            let l4 = usize::from(lay.l4_ofs?);
            tuple.sport = be16(frame, l4)?;
            tuple.dport = be16(frame, l4 + 2)?;
            Some(Parsed::Conn {
                tuple,
                tcp: None,
                icmp_request: false,
            })
        }
        proto::ICMP | proto::ICMPV6 => {
            if (p == proto::ICMPV6) != ipv6 {
                return None;
            }
            let l4 = usize::from(lay.l4_ofs?);
            let ty = *frame.get(l4)?;
            let code = *frame.get(l4 + 1)?;
            if icmp_reply_type(ipv6, ty).is_some() {
                tuple.sport = be16(frame, l4 + 4)?;
                tuple.dport = u16::from(ty) << 8 | u16::from(code);
                Some(Parsed::Conn {
                    tuple,
                    tcp: None,
                    icmp_request: icmp_is_request(ipv6, ty),
                })
            } else if is_icmp_error(ipv6, ty) {
                let inner_l3 = l4 + 8;
                let (inner, inner_l4) = parse_inner(frame, inner_l3, ipv6, zone)?;
                // An error goes back to the sender of the packet it quotes.
                if inner.src != dst {
                    return None;
                }
                Some(Parsed::IcmpError {
                    inner,
                    inner_l3,
                    inner_l4,
                })
            } else {
                None
            }
        }
        _ => Some(Parsed::Conn {
            tuple,
            tcp: None,
            icmp_request: false,
        }),
    }
}

/// The tuple of the IP packet embedded at `l3` in an ICMP error.
fn parse_inner(d: &[u8], l3: usize, ipv6: bool, zone: u16) -> Option<(Tuple, usize)> {
    let (p, l4) = if ipv6 {
        if *d.get(l3)? >> 4 != 6 {
            return None;
        }
        (*d.get(l3 + 6)?, l3 + 40)
    } else {
        let vihl = *d.get(l3)?;
        let ihl = usize::from(vihl & 0x0f) * 4;
        if vihl >> 4 != 4 || ihl < 20 || be16(d, l3 + 6)? & 0x1fff != 0 {
            return None;
        }
        (*d.get(l3 + 9)?, l3 + ihl)
    };
    let (src, dst) = addrs(d, l3, ipv6)?;
    let mut t = Tuple {
        src,
        dst,
        sport: 0,
        dport: 0,
        zone,
        proto: p,
        ipv6,
    };
    match p {
        proto::TCP | proto::UDP | proto::SCTP => {
            t.sport = be16(d, l4)?;
            t.dport = be16(d, l4 + 2)?;
        }
        proto::ICMP | proto::ICMPV6 => {
            if (p == proto::ICMPV6) != ipv6 {
                return None;
            }
            let ty = *d.get(l4)?;
            icmp_reply_type(ipv6, ty)?;
            t.sport = be16(d, l4 + 4)?;
            t.dport = u16::from(ty) << 8 | u16::from(*d.get(l4 + 1)?);
        }
        _ => {}
    }
    Some((t, l4))
}
