//! NAT: the `nat(...)` argument of `ct`, choosing a translated tuple that
//! collides with no tracked one, and rewriting packets (and the packets
//! embedded in related ICMP errors) between a connection's two tuples.
//!
//! Header rewrites and checksum updates reuse `flows::packet`.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use flows::dpaction::DpAction;
use flows::packet::{FrameBuf, apply, complete_l4_checksum, ipv4_header_checksum};
use flows::parse::Layout;

use crate::tuple::Tuple;

/// How a port (or address) is picked from a range.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum PortSelect {
    /// From a hash of the connection's addresses and ports (`hash`, default).
    #[default]
    Hash,
    /// Pseudo-randomly (`random`).
    Random,
}

/// `src=` or `dst=` of `nat(...)`: `IP[-IP][:port[-port]]` and its flags.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NatRange {
    pub addr_min: IpAddr,
    pub addr_max: IpAddr,
    /// 0 when no port range was given.
    pub port_min: u16,
    pub port_max: u16,
    pub select: PortSelect,
    /// `persistent`: the address depends only on the connection's
    /// addresses, so a client keeps its translated address (or backend)
    /// across connections.
    pub persistent: bool,
}

impl NatRange {
    /// A range of one address, no port range, hash selection.
    pub fn addr(a: IpAddr) -> NatRange {
        NatRange {
            addr_min: a,
            addr_max: a,
            port_min: 0,
            port_max: 0,
            select: PortSelect::Hash,
            persistent: false,
        }
    }
}

/// The `nat` argument of a `ct` action.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NatAction {
    /// Bare `nat`: apply the translation stored in an existing connection.
    Existing,
    /// `nat(src=...)`: source NAT for a committed new connection.
    Src(NatRange),
    /// `nat(dst=...)`: destination NAT for a committed new connection.
    Dst(NatRange),
}

/// Connection flag: the connection is source-NATed.
pub(crate) const NAT_SRC: u8 = 1;
/// Connection flag: the connection is destination-NATed.
pub(crate) const NAT_DST: u8 = 2;

/// Why no translation could be chosen.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum NatError {
    #[error("NAT range address family does not match the packet")]
    Family,
    #[error("NAT range min is above max")]
    EmptyRange,
    #[error("every address and port of the NAT range is in use")]
    Exhausted,
}

const MAX_ADDR_TRIES: u128 = 256;
const MAX_PORT_TRIES: u32 = 65536;
const EPHEMERAL_MIN: u16 = 1024;

fn as_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(ipv6: bool, x: u128) -> [u8; 16] {
    if ipv6 {
        x.to_be_bytes()
    } else {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&(x as u32).to_be_bytes());
        b
    }
}

fn mix(v: impl Hash) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    v.hash(&mut h);
    let x = h.finish();
    let x = (x ^ (x >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
}

/// Chooses the reply tuple of a new connection with original tuple `orig`
/// under `nat` (`src` true for SNAT). `in_use` tells whether a candidate
/// reply tuple is taken; `salt` varies `random` selection.
pub(crate) fn choose(
    orig: &Tuple,
    range: &NatRange,
    src: bool,
    salt: u64,
    mut in_use: impl FnMut(&Tuple) -> bool,
) -> Result<Tuple, NatError> {
    if range.addr_min.is_ipv6() != orig.ipv6 || range.addr_max.is_ipv6() != orig.ipv6 {
        return Err(NatError::Family);
    }
    let (lo, hi) = (as_u128(range.addr_min), as_u128(range.addr_max));
    if lo > hi || (range.port_min != 0 && range.port_min > range.port_max) {
        return Err(NatError::EmptyRange);
    }
    let random = range.select == PortSelect::Random;
    let n_addrs = (hi - lo).saturating_add(1);
    let addr_hash = if random && !range.persistent {
        mix((orig.src, orig.dst, salt))
    } else {
        mix((orig.src, orig.dst, orig.zone, orig.proto))
    };
    let port_hash = if random { mix((orig, salt)) } else { mix(orig) };
    let base = orig.reverse();
    let orig_port = if src { orig.sport } else { orig.dport };
    let candidate = |addr: u128, port: u16| {
        let mut t = base;
        let a = from_u128(orig.ipv6, addr);
        if src {
            t.dst = a;
            if orig.has_ports() {
                t.dport = port;
            }
        } else {
            t.src = a;
            if orig.has_ports() {
                t.sport = port;
            }
        }
        t
    };
    let start = u128::from(addr_hash) % n_addrs;
    for i in 0..n_addrs.min(MAX_ADDR_TRIES) {
        // (start + i) mod n without overflowing on a whole-space range.
        let off = start
            .checked_add(i)
            .map_or(start.wrapping_sub(n_addrs - i), |x| x % n_addrs);
        let addr = lo + off;
        if !orig.has_ports() {
            let t = candidate(addr, 0);
            if !in_use(&t) {
                return Ok(t);
            }
            continue;
        }
        // Port ranges to try: the given range, or the original port and
        // then (for SNAT) the ephemeral ports.
        let (pmin, pmax) = if range.port_min != 0 {
            (range.port_min, range.port_max)
        } else {
            let t = candidate(addr, orig_port);
            if !in_use(&t) {
                return Ok(t);
            }
            if !src {
                continue;
            }
            (EPHEMERAL_MIN, u16::MAX)
        };
        let span = u32::from(pmax - pmin) + 1;
        let pstart = (port_hash % u64::from(span)) as u32;
        for j in 0..span.min(MAX_PORT_TRIES) {
            let port = pmin + ((pstart + j) % span) as u16;
            let t = candidate(addr, port);
            if !in_use(&t) {
                return Ok(t);
            }
        }
    }
    Err(NatError::Exhausted)
}

/// A frame in a plain slice, for `flows::packet::apply` rewrites that never
/// change the frame's length.
struct SliceFrame<'a>(&'a mut [u8]);

impl FrameBuf for SliceFrame<'_> {
    fn data(&self) -> &[u8] {
        self.0
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self.0
    }
    fn push_front(&mut self, _n: usize) -> bool {
        false
    }
    fn pull_front(&mut self, _n: usize) -> bool {
        false
    }
}

fn set_addr(f: &mut SliceFrame<'_>, ipv6: bool, src: bool, a: &[u8; 16], partial: bool) {
    let act = match (ipv6, src) {
        (false, s) => {
            let v = u32::from_be_bytes([a[0], a[1], a[2], a[3]]);
            if s {
                DpAction::SetIpv4Src(v)
            } else {
                DpAction::SetIpv4Dst(v)
            }
        }
        (true, true) => DpAction::SetIpv6Src(*a),
        (true, false) => DpAction::SetIpv6Dst(*a),
    };
    // Address and port rewrites never fail (they are no-ops on frames
    // without the header).
    let _ = apply(f, &act, partial);
}

/// Rewrites a packet whose tuple is `from` so that its tuple is `to`
/// (addresses, and ports for TCP/UDP/SCTP), with checksums updated.
pub(crate) fn rewrite(frame: &mut [u8], from: &Tuple, to: &Tuple, partial: bool) {
    let mut f = SliceFrame(frame);
    if from.src != to.src {
        set_addr(&mut f, to.ipv6, true, &to.src, partial);
    }
    if from.dst != to.dst {
        set_addr(&mut f, to.ipv6, false, &to.dst, partial);
    }
    if from.has_ports() {
        if from.sport != to.sport {
            let _ = apply(&mut f, &DpAction::SetTpSrc(to.sport), partial);
        }
        if from.dport != to.dport {
            let _ = apply(&mut f, &DpAction::SetTpDst(to.dport), partial);
        }
    }
}

/// Rewrites an ICMP error whose embedded packet has tuple `from` so that
/// it carries `to` instead, and translates the outer addresses that name
/// the embedded packet's endpoints the same way. The embedded IPv4 header
/// checksum and the ICMP checksum are recomputed.
pub(crate) fn rewrite_icmp_error(
    frame: &mut [u8],
    lay: &Layout,
    inner_l3: usize,
    inner_l4: usize,
    from: &Tuple,
    to: &Tuple,
) {
    let Some(l3) = lay.l3_ofs.map(usize::from) else {
        return;
    };
    let ipv6 = from.ipv6;
    let (so, do_) = if ipv6 { (8, 24) } else { (12, 16) };
    let alen = if ipv6 { 16 } else { 4 };
    let read = |fr: &[u8], at: usize| -> Option<[u8; 16]> {
        let mut b = [0u8; 16];
        b[..alen].copy_from_slice(fr.get(at..at + alen)?);
        Some(b)
    };
    let (Some(osrc), Some(odst)) = (read(frame, l3 + so), read(frame, l3 + do_)) else {
        return;
    };
    {
        let mut f = SliceFrame(frame);
        if odst == from.src && from.src != to.src {
            set_addr(&mut f, ipv6, false, &to.src, false);
        }
        if osrc == from.dst && from.dst != to.dst {
            set_addr(&mut f, ipv6, true, &to.dst, false);
        }
    }
    let put = |fr: &mut [u8], at: usize, v: &[u8]| {
        if let Some(s) = fr.get_mut(at..at + v.len()) {
            s.copy_from_slice(v);
        }
    };
    put(frame, inner_l3 + so, &to.src[..alen]);
    put(frame, inner_l3 + do_, &to.dst[..alen]);
    if !ipv6 {
        let ihl = usize::from(frame.get(inner_l3).copied().unwrap_or(0) & 0x0f) * 4;
        if let Some(hdr) = frame.get(inner_l3..inner_l3 + ihl) {
            let c = ipv4_header_checksum(hdr);
            put(frame, inner_l3 + 10, &c.to_be_bytes());
        }
    }
    if from.has_ports() {
        put(frame, inner_l4, &to.sport.to_be_bytes());
        put(frame, inner_l4 + 2, &to.dport.to_be_bytes());
    }
    complete_l4_checksum(frame, lay);
}

/// Whether address `a` (tuple form) is inside the range.
pub fn range_contains(range: &NatRange, a: &[u8; 16], ipv6: bool) -> bool {
    let x = if ipv6 {
        u128::from_be_bytes(*a)
    } else {
        u128::from(u32::from_be_bytes([a[0], a[1], a[2], a[3]]))
    };
    (as_u128(range.addr_min)..=as_u128(range.addr_max)).contains(&x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple::{addr_bytes, proto};

    fn orig(v6: bool) -> Tuple {
        let (s, d) = if v6 {
            ("fd00::1", "fd00::2")
        } else {
            ("10.0.0.1", "10.0.0.2")
        };
        Tuple {
            src: addr_bytes(s.parse().unwrap()),
            dst: addr_bytes(d.parse().unwrap()),
            sport: 1000,
            dport: 80,
            zone: 0,
            proto: proto::TCP,
            ipv6: v6,
        }
    }

    #[test]
    fn a_range_over_the_whole_ipv6_space_does_not_overflow() {
        let r = NatRange {
            addr_min: "::".parse().unwrap(),
            addr_max: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
            ..NatRange::addr("::".parse().unwrap())
        };
        let mut calls = 0;
        let got = choose(&orig(true), &r, true, 0, |_| {
            calls += 1;
            calls < 300
        });
        assert!(got.is_ok());
    }

    #[test]
    fn taken_candidates_are_skipped_and_the_result_stays_in_range() {
        let r = NatRange {
            addr_min: "192.0.2.1".parse().unwrap(),
            addr_max: "192.0.2.4".parse().unwrap(),
            port_min: 100,
            port_max: 103,
            select: PortSelect::Random,
            persistent: false,
        };
        let o = orig(false);
        let mut taken = Vec::new();
        for _ in 0..16 {
            let t = choose(&o, &r, true, 7, |t| taken.contains(t)).unwrap();
            assert!(range_contains(&r, &t.dst, false));
            assert!((100..=103).contains(&t.dport));
            assert_eq!((t.src, t.sport), (o.dst, o.dport));
            taken.push(t);
        }
        assert_eq!(
            choose(&o, &r, true, 7, |t| taken.contains(t)),
            Err(NatError::Exhausted)
        );
        let wrong = NatRange::addr("fd00::9".parse().unwrap());
        assert_eq!(
            choose(&o, &wrong, true, 0, |_| false),
            Err(NatError::Family)
        );
    }
}
