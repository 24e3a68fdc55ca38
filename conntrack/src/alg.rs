//! Application-level gateways for `ct(alg=ftp)` and `ct(alg=tftp)`, as
//! OVS's userspace conntrack has them (`lib/conntrack.c`, ovs-actions(7)):
//! a connection committed with a helper is a control connection; its
//! packets that announce a data connection (FTP `PORT` and the `227`
//! passive reply over IPv4, `EPRT` and the extended-passive `229` reply
//! over IPv6; every TFTP request) leave an *expectation*: the data
//! connection's addresses, protocol, zone and destination port, any source
//! port. The first packet of a connection that meets an expectation is
//! `+new+rel`; committed, the connection stays `+rel`, takes its parent's
//! mark and label, and reports the parent's original tuple in the
//! `ct_nw_src`-style fields. Expectations live as long as their parent.
//!
//! Under NAT (`alg_nat`) the announced address is rewritten to the one the
//! receiver must use, TCP sequence numbers are shifted by the change in
//! length, and the expectation carries the address the data connection is
//! translated to.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::tuple::{Tuple, addr_bytes, proto};

/// A connection helper (`ct(alg=...)`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Alg {
    Ftp,
    Tftp,
}

/// The well-known control ports.
const FTP_PORT: u16 = 21;
const TFTP_PORT: u16 = 69;

/// Longest FTP message looked at (OVS looks at 128 bytes).
const FTP_MSG_MAX: usize = 128;

/// The most expectations held at once; more are not created.
pub const MAX_EXPECTATIONS: usize = 4096;

impl Alg {
    /// The helper's name (`helper=` in datapath actions and dumps).
    pub fn name(self) -> &'static str {
        match self {
            Alg::Ftp => "ftp",
            Alg::Tftp => "tftp",
        }
    }

    /// The helper of an OpenFlow `ct` action's `alg` field (its port).
    pub fn from_port(port: u16) -> Option<Alg> {
        match port {
            FTP_PORT => Some(Alg::Ftp),
            TFTP_PORT => Some(Alg::Tftp),
            _ => None,
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Alg::Ftp => 1,
            Alg::Tftp => 2,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Alg> {
        match c {
            1 => Some(Alg::Ftp),
            2 => Some(Alg::Tftp),
            _ => None,
        }
    }
}

/// Which control protocol a packet speaks, by its ports (as OVS decides
/// it): TCP from or to 21 is FTP, UDP to 69 is TFTP.
pub(crate) fn ctl_type(t: &Tuple) -> Option<Alg> {
    match t.proto {
        proto::TCP if t.sport == FTP_PORT || t.dport == FTP_PORT => Some(Alg::Ftp),
        proto::UDP if t.dport == TFTP_PORT => Some(Alg::Tftp),
        _ => None,
    }
}

/// Whether a connection committed with helper `helper` keeps it (OVS's
/// `ct_verify_helper`): always unless its ports say another protocol.
pub(crate) fn keeps_helper(t: &Tuple, helper: Alg) -> bool {
    ctl_type(t).is_none_or(|c| c == helper)
}

/// What an FTP control message announces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum FtpMsg {
    /// Nothing of interest.
    Other,
    /// A message of interest that does not parse (`+inv`, as in OVS).
    Invalid,
    /// `PORT`/`EPRT`: the client will listen on `addr`:`port`; the
    /// address's text is `at` in the payload.
    Active { addr: IpAddr, port: u16, at: Span },
    /// `227`: the server listens on `addr`:`port`.
    Passive { addr: IpAddr, port: u16, at: Span },
    /// IPv6 extended passive: the server listens on `port` (its address is
    /// the control connection's).
    ExtPassive { port: u16 },
}

/// Where an address's text sits in a TCP payload: offset and length.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Span {
    pub start: usize,
    pub len: usize,
}

/// Offset of `rest` in `msg`, `rest` being a suffix of `msg`.
fn ofs(msg: &[u8], rest: &[u8]) -> usize {
    msg.len() - rest.len()
}

fn starts_with_ci(s: &[u8], p: &str) -> bool {
    s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p.as_bytes())
}

fn contains_ci(s: &[u8], p: &str) -> bool {
    s.windows(p.len())
        .any(|w| w.eq_ignore_ascii_case(p.as_bytes()))
}

/// Leading decimal digits of `s` (at most `max`), their value and the rest.
fn number(s: &[u8], max: usize) -> Option<(u32, &[u8])> {
    let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > max {
        return None;
    }
    let v = std::str::from_utf8(&s[..n]).ok()?.parse().ok()?;
    Some((v, &s[n..]))
}

fn skip_non_digits(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|c| !c.is_ascii_digit()).count();
    &s[n..]
}

/// Parses an FTP control message (the TCP payload) as OVS does: IPv4 knows
/// `PORT h1,h2,h3,h4,p1,p2` and `227 ... (h1,h2,h3,h4,p1,p2)`; IPv6 knows
/// `EPRT |2|addr|port|` and a reply containing `EXTENDED PASSIVE` with
/// `(|||port|)`.
pub(crate) fn parse_ftp(payload: &[u8], ipv6: bool) -> FtpMsg {
    let end = payload
        .iter()
        .take(FTP_MSG_MAX - 1)
        .position(|&c| c == 0)
        .unwrap_or(payload.len().min(FTP_MSG_MAX - 1));
    let msg = &payload[..end];
    if ipv6 {
        if starts_with_ci(msg, "EPRT") {
            parse_eprt(msg).unwrap_or(FtpMsg::Invalid)
        } else if contains_ci(msg, "EXTENDED PASSIVE") {
            parse_epsv(msg).unwrap_or(FtpMsg::Invalid)
        } else {
            FtpMsg::Other
        }
    } else if starts_with_ci(msg, "PORT") {
        parse_v4(msg, 4)
            .map(|(addr, port, at)| FtpMsg::Active { addr, port, at })
            .unwrap_or(FtpMsg::Invalid)
    } else if msg.starts_with(b"227") {
        parse_v4(msg, 3)
            .map(|(addr, port, at)| FtpMsg::Passive { addr, port, at })
            .unwrap_or(FtpMsg::Invalid)
    } else {
        FtpMsg::Other
    }
}

/// ` h1,h2,h3,h4,p1,p2` after the command (`cmd` bytes of `msg`): from
/// the first space, the first digit on. The span covers `h1,h2,h3,h4`.
fn parse_v4(msg: &[u8], cmd: usize) -> Option<(IpAddr, u16, Span)> {
    let s = msg.get(cmd..)?;
    let sp = s.iter().position(|&c| c == b' ')?;
    let mut s = skip_non_digits(&s[sp..]);
    let start = ofs(msg, s);
    let mut octets = [0u8; 4];
    let mut end = start;
    for o in &mut octets {
        let (v, rest) = number(s, 3)?;
        *o = u8::try_from(v).ok()?;
        end = ofs(msg, rest);
        s = rest.strip_prefix(b",")?;
    }
    let (hi, rest) = number(s, 3)?;
    let rest = rest.get(1..)?;
    let (lo, _) = number(rest, 3)?;
    if hi > 255 || lo > 255 {
        return None;
    }
    let at = Span {
        start,
        len: end - start,
    };
    Some((
        IpAddr::V4(Ipv4Addr::from(octets)),
        (hi << 8 | lo) as u16,
        at,
    ))
}

/// `EPRT |2|addr|port|`.
fn parse_eprt(msg: &[u8]) -> Option<FtpMsg> {
    let s = skip_non_digits(msg.get(4..)?);
    if s.first() != Some(&b'2') || s.get(1).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    let s = s.get(2..)?;
    let n = s
        .iter()
        .take_while(|c| c.is_ascii_hexdigit() || **c == b':' || **c == b'.')
        .count();
    let addr: Ipv6Addr = std::str::from_utf8(&s[..n]).ok()?.parse().ok()?;
    let at = Span {
        start: ofs(msg, s),
        len: n,
    };
    let (port, _) = number(s.get(n + 1..)?, 5)?;
    Some(FtpMsg::Active {
        addr: IpAddr::V6(addr),
        port: u16::try_from(port).ok()?,
        at,
    })
}

/// `229 Entering Extended Passive Mode (|||port|)`.
fn parse_epsv(msg: &[u8]) -> Option<FtpMsg> {
    let open = msg.iter().position(|&c| c == b'(')?;
    let (port, _) = number(skip_non_digits(&msg[open..]), 5)?;
    Some(FtpMsg::ExtPassive {
        port: u16::try_from(port).ok()?,
    })
}

/// One expected data connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Expectation {
    /// The control connection's original tuple.
    pub parent: Tuple,
    pub mark: u32,
    pub label: u128,
    /// How a `ct(commit,nat)` of the expected connection translates it:
    /// its reply tuple's destination (source NAT) or source (destination
    /// NAT) becomes `nat_addr`.
    pub nat_rpl_dst: bool,
    pub nat_addr: [u8; 16],
}

/// The translation an expected connection gets under `nat` (OVS's rule):
/// it mirrors the control connection's, seen from the data connection's
/// direction; a control connection without NAT maps to its own address.
/// `reply` is the announcing packet's direction, `dnat` whether the
/// control connection is destination-NATed.
pub(crate) fn expected_nat(orig: &Tuple, rev: &Tuple, reply: bool, dnat: bool) -> (bool, [u8; 16]) {
    match (reply, dnat) {
        (true, true) => (false, rev.src),
        (true, false) => (true, rev.dst),
        (false, true) => (true, orig.dst),
        (false, false) => (false, orig.src),
    }
}

/// The expectations, keyed by the data connection's tuple with source port
/// 0. Kept apart from the connection table: new connections look here only
/// while there is at least one.
pub(crate) struct Expectations {
    map: Mutex<HashMap<Tuple, Expectation>>,
    n: AtomicUsize,
}

impl Expectations {
    pub(crate) fn new() -> Expectations {
        Expectations {
            map: Mutex::new(HashMap::new()),
            n: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Tuple, Expectation>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The expectation a new connection with tuple `t` meets.
    #[inline]
    pub(crate) fn lookup(&self, t: &Tuple) -> Option<Expectation> {
        if self.n.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let key = Tuple { sport: 0, ..*t };
        self.lock().get(&key).copied()
    }

    /// Expects a connection `src` → `dst`:`dport` (any source port) of the
    /// parent's protocol and zone. An existing expectation for the same
    /// tuple is kept; false when the table is full.
    pub(crate) fn add(&self, src: [u8; 16], dst: [u8; 16], dport: u16, e: Expectation) -> bool {
        let key = Tuple {
            src,
            dst,
            sport: 0,
            dport,
            zone: e.parent.zone,
            proto: e.parent.proto,
            ipv6: e.parent.ipv6,
        };
        let mut m = self.lock();
        if m.contains_key(&key) {
            return true;
        }
        if m.len() >= MAX_EXPECTATIONS {
            return false;
        }
        m.insert(key, e);
        self.n.store(m.len(), Ordering::Relaxed);
        true
    }

    /// Forgets the expectations of the control connection `parent`.
    pub(crate) fn remove_parent(&self, parent: &Tuple) {
        if self.n.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut m = self.lock();
        m.retain(|_, e| e.parent != *parent);
        self.n.store(m.len(), Ordering::Relaxed);
    }

    /// Number held.
    pub(crate) fn len(&self) -> usize {
        self.n.load(Ordering::Relaxed)
    }
}

/// The payload of the TCP segment in `frame` (IP length, not padding).
pub(crate) fn tcp_payload(frame: &[u8], l4: usize, l3_end: usize) -> &[u8] {
    let Some(doff) = frame.get(l4 + 12).map(|b| usize::from(b >> 4) * 4) else {
        return &[];
    };
    frame.get(l4 + doff..l3_end.min(frame.len())).unwrap_or(&[])
}

/// The data connection a control message announces, as (source,
/// destination, destination port), checked against the control
/// connection's tuples; `Err` for a message of interest that is invalid
/// or names a third host; `Ok(None)` for other messages.
///
/// `reply` is the packet's direction. As OVS, the expected connection runs
/// from the receiver of the message to its sender.
pub(crate) fn ftp_expectation(
    msg: FtpMsg,
    orig: &Tuple,
    rev: &Tuple,
    reply: bool,
) -> Result<Option<Endpoints>, ()> {
    let port = match msg {
        FtpMsg::Other => return Ok(None),
        FtpMsg::Invalid => return Err(()),
        FtpMsg::Active { addr, port, .. } => {
            // The client's own address, or what NAT made of it.
            let a = addr_bytes(addr);
            if a != orig.src && a != rev.dst {
                return Err(());
            }
            port
        }
        FtpMsg::Passive { addr, port, .. } => {
            let a = addr_bytes(addr);
            if a != orig.dst && a != rev.src {
                return Err(());
            }
            port
        }
        FtpMsg::ExtPassive { port } => port,
    };
    Ok(Some(endpoints(orig, rev, reply, port)))
}

/// An expected connection's source and destination addresses and
/// destination port.
pub(crate) type Endpoints = ([u8; 16], [u8; 16], u16);

/// Source and destination of a connection expected by a control packet in
/// direction `reply`, to `port`.
pub(crate) fn endpoints(orig: &Tuple, rev: &Tuple, reply: bool, port: u16) -> Endpoints {
    if reply {
        (orig.src, orig.dst, port)
    } else {
        (rev.src, rev.dst, port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ftp_v4_port_and_pasv_parse_as_ovs_reads_them() {
        assert_eq!(
            parse_ftp(b"PORT 10,0,0,1,4,1\r\n", false),
            FtpMsg::Active {
                addr: v4("10.0.0.1"),
                port: 1025,
                at: Span { start: 5, len: 8 }
            }
        );
        assert_eq!(
            parse_ftp(b"port 10,0,0,1,0,20\r\n", false),
            FtpMsg::Active {
                addr: v4("10.0.0.1"),
                port: 20,
                at: Span { start: 5, len: 8 }
            }
        );
        assert_eq!(
            parse_ftp(b"227 Entering passive mode (10,0,0,2,195,80).\r\n", false),
            FtpMsg::Passive {
                addr: v4("10.0.0.2"),
                port: 195 * 256 + 80,
                at: Span { start: 27, len: 8 }
            }
        );
        assert_eq!(parse_ftp(b"USER anonymous\r\n", false), FtpMsg::Other);
        assert_eq!(
            parse_ftp(b"229 Extended (|||5000|)\r\n", false),
            FtpMsg::Other
        );
        assert_eq!(parse_ftp(b"PORT 10,0,0\r\n", false), FtpMsg::Invalid);
        assert_eq!(
            parse_ftp(b"PORT 10,0,0,1,256,1\r\n", false),
            FtpMsg::Invalid
        );
        assert_eq!(parse_ftp(b"PORT10,0,0,1,4,1", false), FtpMsg::Invalid);
    }

    #[test]
    fn ftp_v6_eprt_and_extended_passive_parse() {
        assert_eq!(
            parse_ftp(b"EPRT |2|fd00::1|5282|\r\n", true),
            FtpMsg::Active {
                addr: "fd00::1".parse().unwrap(),
                port: 5282,
                at: Span { start: 8, len: 7 }
            }
        );
        assert_eq!(
            parse_ftp(b"229 Entering Extended Passive Mode (|||6446|)\r\n", true),
            FtpMsg::ExtPassive { port: 6446 }
        );
        assert_eq!(parse_ftp(b"EPRT |1|10.0.0.1|5282|", true), FtpMsg::Invalid);
        assert_eq!(parse_ftp(b"PORT 10,0,0,1,4,1", true), FtpMsg::Other);
    }

    #[test]
    fn announced_addresses_must_be_the_connections_own() {
        let orig = Tuple {
            src: addr_bytes(v4("10.0.0.1")),
            dst: addr_bytes(v4("10.0.0.2")),
            sport: 40000,
            dport: 21,
            proto: proto::TCP,
            ..Tuple::default()
        };
        let rev = orig.reverse();
        let at = Span { start: 0, len: 0 };
        let act = FtpMsg::Active {
            addr: v4("10.0.0.1"),
            port: 1025,
            at,
        };
        // PORT from the client: the server will connect to the client.
        assert_eq!(
            ftp_expectation(act, &orig, &rev, false),
            Ok(Some((orig.dst, orig.src, 1025)))
        );
        let third = FtpMsg::Active {
            addr: v4("10.9.9.9"),
            port: 1025,
            at,
        };
        assert_eq!(ftp_expectation(third, &orig, &rev, false), Err(()));
        // 227 from the server: the client will connect to the server.
        let pasv = FtpMsg::Passive {
            addr: v4("10.0.0.2"),
            port: 5000,
            at,
        };
        assert_eq!(
            ftp_expectation(pasv, &orig, &rev, true),
            Ok(Some((orig.src, orig.dst, 5000)))
        );
    }

    #[test]
    fn expectations_match_any_source_port_and_go_with_their_parent() {
        let ex = Expectations::new();
        let parent = Tuple {
            proto: proto::UDP,
            zone: 3,
            dport: 69,
            sport: 5555,
            ..Tuple::default()
        };
        let e = Expectation {
            parent,
            mark: 7,
            label: 0,
            nat_rpl_dst: false,
            nat_addr: [1; 16],
        };
        assert!(ex.add([1; 16], [2; 16], 5555, e));
        let data = Tuple {
            src: [1; 16],
            dst: [2; 16],
            sport: 40123,
            dport: 5555,
            zone: 3,
            proto: proto::UDP,
            ipv6: false,
        };
        assert_eq!(ex.lookup(&data), Some(e));
        assert_eq!(ex.lookup(&Tuple { zone: 4, ..data }), None);
        ex.remove_parent(&parent);
        assert_eq!(ex.lookup(&data), None);
        assert_eq!(ex.len(), 0);
    }
}
