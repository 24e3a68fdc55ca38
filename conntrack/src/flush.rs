//! Flushing connections by (partial) tuple: `dpctl/flush-conntrack [zone=N]
//! [ct-orig-tuple [ct-reply-tuple]]` and NXT_CT_FLUSH, with OVS 3.1's
//! semantics (lib/ct-dpif.c read as a spec):
//!
//! - a match with nothing set flushes everything (or the zone);
//! - a complete original tuple (both addresses, and both ports unless the
//!   protocol is ICMP) with no reply tuple removes exactly that connection
//!   of the zone (zone 0 unless given), found by either of its tuples
//!   (but not by the translated side of a NAT connection), and it is an
//!   error when there is none;
//! - anything else removes every connection (of the zone, if one is given)
//!   whose tuples agree with every field that is set; for ICMP the id,
//!   type and code always take part.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::Conntrack;
use crate::tuple::{Tuple, addr_bytes, proto};

/// One side of a flush match; zero (or `None`) fields match anything,
/// except the ICMP fields, which match exactly when the protocol is ICMP.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CtTupleMatch {
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub sport: u16,
    pub dport: u16,
    pub icmp_id: u16,
    pub icmp_type: u8,
    pub icmp_code: u8,
}

/// Which connections a flush by tuple removes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CtMatch {
    /// `ct_nw_proto` (0: any).
    pub proto: u8,
    /// The address family the tuples name (`None`: none given).
    pub ipv6: Option<bool>,
    pub orig: CtTupleMatch,
    pub reply: CtTupleMatch,
}

/// Why a flush by tuple failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum FlushError {
    /// A complete original tuple named no connection (OVS: ENOENT).
    #[error("failed to flush conntrack (No such file or directory)")]
    NotFound,
}

/// A malformed ct tuple (the texts are OVS's).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{0}")]
pub struct TupleParseError(pub String);

fn is_icmp(p: u8) -> bool {
    p == proto::ICMP || p == proto::ICMPV6
}

impl CtTupleMatch {
    fn is_zero(&self, p: u8) -> bool {
        self.src.is_none() && self.dst.is_none() && (is_icmp(p) || (self.sport | self.dport) == 0)
    }

    fn is_five_tuple(&self, p: u8) -> bool {
        self.src.is_some()
            && self.dst.is_some()
            && (is_icmp(p) || (self.sport != 0 && self.dport != 0))
    }

    fn matches(&self, t: &Tuple, p: u8) -> bool {
        if self.src.is_some_and(|a| addr_bytes(a) != t.src)
            || self.dst.is_some_and(|a| addr_bytes(a) != t.dst)
        {
            return false;
        }
        if is_icmp(p) {
            self.icmp_id == t.sport
                && u16::from(self.icmp_type) == t.dport >> 8
                && u16::from(self.icmp_code) == t.dport & 0xff
        } else {
            (self.sport == 0 || self.sport == t.sport) && (self.dport == 0 || self.dport == t.dport)
        }
    }

    /// The exact tuple this match names (for a five-tuple match).
    fn tuple(&self, p: u8, ipv6: bool, zone: u16) -> Tuple {
        let (sport, dport) = if is_icmp(p) {
            (
                self.icmp_id,
                u16::from(self.icmp_type) << 8 | u16::from(self.icmp_code),
            )
        } else {
            (self.sport, self.dport)
        };
        Tuple {
            src: self.src.map(addr_bytes).unwrap_or_default(),
            dst: self.dst.map(addr_bytes).unwrap_or_default(),
            sport,
            dport,
            zone,
            proto: p,
            ipv6,
        }
    }

    /// Parses one OVS ct tuple (`ct_nw_src=10.0.0.1,ct_nw_proto=6,...`)
    /// into `self`, updating the match's protocol and address family.
    pub fn parse(
        &mut self,
        s: &str,
        ip_proto: &mut u8,
        ipv6: &mut Option<bool>,
    ) -> Result<(), TupleParseError> {
        let err = |m: String| Err(TupleParseError(m));
        for item in s.split([',', ' ', '\t']).filter(|i| !i.is_empty()) {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            if value.is_empty() {
                return err(format!("field {key} missing value"));
            }
            let bad = || TupleParseError(format!("failed to parse field {key}"));
            match key {
                "ct_nw_src" | "ct_nw_dst" | "ct_ipv6_src" | "ct_ipv6_dst" => {
                    let v6 = key.starts_with("ct_ipv6");
                    if ipv6.is_some_and(|x| x != v6) {
                        return err(format!("the L3 protocol does not match {value}"));
                    }
                    let slot = if key.ends_with("src") {
                        &mut self.src
                    } else {
                        &mut self.dst
                    };
                    if slot.is_some() {
                        return err(format!("{key} is set multiple times"));
                    }
                    let a = if v6 {
                        IpAddr::V6(value.parse::<Ipv6Addr>().map_err(|_| bad())?)
                    } else {
                        IpAddr::V4(value.parse::<Ipv4Addr>().map_err(|_| bad())?)
                    };
                    *ipv6 = Some(v6);
                    // An all-zero address is "any", as in OVS.
                    *slot = (!addr_bytes(a).iter().all(|b| *b == 0)).then_some(a);
                }
                "ct_nw_proto" => *ip_proto = parse_num(value).ok_or_else(bad)?,
                "ct_tp_src" => self.sport = parse_num(value).ok_or_else(bad)?,
                "ct_tp_dst" => self.dport = parse_num(value).ok_or_else(bad)?,
                "icmp_type" | "icmp_code" | "icmp_id" => {
                    if !is_icmp(*ip_proto) {
                        return err("invalid L4 fields".into());
                    }
                    match key {
                        "icmp_type" => self.icmp_type = parse_num(value).ok_or_else(bad)?,
                        "icmp_code" => self.icmp_code = parse_num(value).ok_or_else(bad)?,
                        _ => self.icmp_id = parse_num(value).ok_or_else(bad)?,
                    }
                }
                _ => return err(format!("invalid conntrack tuple field: {key}")),
            }
        }
        if *ip_proto == 0 && (self.sport | self.dport) != 0 {
            return err("port is set without protocol".into());
        }
        Ok(())
    }
}

/// Decimal or `0x` hexadecimal, as OVS's `str_to_u8`/`str_to_u16` take.
fn parse_num<T: TryFrom<u64>>(s: &str) -> Option<T> {
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok()?,
        None => s.parse::<u64>().ok()?,
    };
    T::try_from(v).ok()
}

impl CtMatch {
    /// Parses `dpctl/flush-conntrack`'s tuple arguments: the original
    /// tuple (may be empty) and optionally the reply tuple.
    pub fn parse(orig: &str, reply: Option<&str>) -> Result<CtMatch, TupleParseError> {
        let mut m = CtMatch::default();
        m.orig.parse(orig, &mut m.proto, &mut m.ipv6)?;
        if let Some(r) = reply {
            m.reply.parse(r, &mut m.proto, &mut m.ipv6)?;
        }
        Ok(m)
    }

    /// Whether the match sets nothing (flush everything, or the zone).
    pub fn is_zero(&self) -> bool {
        self.proto == 0
            && self.ipv6.is_none()
            && self.orig.is_zero(self.proto)
            && self.reply.is_zero(self.proto)
    }

    /// Whether a connection with these tuples agrees with the match.
    pub fn matches(&self, orig: &Tuple, reply: &Tuple) -> bool {
        self.ipv6.is_none_or(|v6| v6 == orig.ipv6)
            && (self.proto == 0 || self.proto == orig.proto)
            && self.orig.matches(orig, self.proto)
            && self.reply.matches(reply, self.proto)
    }
}

impl Conntrack {
    /// Flushes by tuple (see the module documentation); returns how many
    /// connections went.
    pub fn flush_match(&self, zone: Option<u16>, m: &CtMatch) -> Result<usize, FlushError> {
        if m.is_zero() {
            return Ok(self.flush(&crate::FlushFilter { zone, tuple: None }));
        }
        if m.orig.is_five_tuple(m.proto) && m.reply.is_zero(m.proto) {
            let t = m
                .orig
                .tuple(m.proto, m.ipv6.unwrap_or(false), zone.unwrap_or(0));
            let found = self.table.visit(&t, |c, reply| {
                // The translated side of a NAT connection is not its key.
                (!(reply && c.nat != 0)).then(|| c.clone())
            });
            return match found.flatten() {
                Some(c) if self.remove(&c) => Ok(1),
                _ => Err(FlushError::NotFound),
            };
        }
        let victims = self
            .table
            .select(|c| zone.is_none_or(|z| c.orig.zone == z) && m.matches(&c.orig, &c.reply));
        Ok(victims.iter().filter(|c| self.remove(c)).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{commit, icmp_echo, run, udp};
    use crate::{CtConfig, NatAction, NatRange, PortSelect};

    fn m(orig: &str, reply: Option<&str>) -> CtMatch {
        CtMatch::parse(orig, reply).unwrap()
    }

    fn three_conns() -> Conntrack {
        let ct = Conntrack::new(CtConfig::default());
        run(
            &ct,
            &mut udp("10.0.0.1", "10.0.0.2", 1000, 53, 4),
            &commit(0),
            0,
        );
        run(
            &ct,
            &mut udp("10.0.0.1", "10.0.0.3", 1001, 53, 4),
            &commit(0),
            0,
        );
        run(
            &ct,
            &mut udp("10.0.0.1", "10.0.0.2", 1000, 53, 4),
            &commit(7),
            0,
        );
        run(
            &ct,
            &mut icmp_echo("10.0.0.1", "10.0.0.2", 8, 42),
            &commit(0),
            0,
        );
        ct
    }

    #[test]
    fn ovs_tuple_syntax_parses_and_bad_tuples_get_ovs_messages() {
        let t = m(
            "ct_nw_src=10.0.0.1,ct_nw_dst=10.0.0.2,ct_nw_proto=17,ct_tp_src=1000,ct_tp_dst=53",
            None,
        );
        assert_eq!((t.proto, t.ipv6), (17, Some(false)));
        assert_eq!((t.orig.sport, t.orig.dport), (1000, 53));
        assert!(t.orig.is_five_tuple(17));
        let i = m(
            "ct_ipv6_src=fc00::1,ct_nw_proto=58,icmp_type=128,icmp_code=0,icmp_id=0x10",
            None,
        );
        assert_eq!(
            (i.ipv6, i.orig.icmp_type, i.orig.icmp_id),
            (Some(true), 128, 16)
        );
        let e = |o: &str| CtMatch::parse(o, None).unwrap_err().0;
        assert_eq!(e("ct_tp_src=5"), "port is set without protocol");
        assert_eq!(e("ct_nw_src=1.1.1.x"), "failed to parse field ct_nw_src");
        assert_eq!(e("bogus=1"), "invalid conntrack tuple field: bogus");
        assert_eq!(
            e("ct_nw_src=1.1.1.1,ct_ipv6_dst=::1"),
            "the L3 protocol does not match ::1"
        );
        assert_eq!(e("ct_nw_proto=17,icmp_type=3"), "invalid L4 fields");
        assert_eq!(e("ct_nw_src"), "field ct_nw_src missing value");
        assert_eq!(e("ct_nw_proto=300"), "failed to parse field ct_nw_proto");
        assert!(m("", None).is_zero());
        assert!(!m("", Some("ct_nw_dst=10.0.0.1")).is_zero());
    }

    #[test]
    fn a_partial_tuple_flushes_every_matching_connection_in_every_zone() {
        let ct = three_conns();
        // Source address only: the three UDP ones and the ping.
        assert_eq!(ct.flush_match(None, &m("ct_nw_dst=10.0.0.2", None)), Ok(3));
        assert_eq!(ct.nconns(), 1);
        assert_eq!(ct.dump(None)[0].orig.dst[..4], [10, 0, 0, 3]);
    }

    #[test]
    fn a_partial_tuple_with_a_zone_and_a_reply_side_selects_only_those() {
        let ct = three_conns();
        let n = ct.flush_match(Some(7), &m("ct_nw_proto=17", Some("ct_tp_src=53")));
        assert_eq!(n, Ok(1));
        assert_eq!(ct.nconns(), 3);
        assert!(ct.dump(Some(7)).is_empty());
        // Protocol alone.
        assert_eq!(ct.flush_match(None, &m("ct_nw_proto=1", None)), Ok(0));
        // As in OVS, a partial ICMP match compares id, type and code on
        // both sides: without the reply side it selects nothing.
        let ping = "ct_nw_src=10.0.0.1,ct_nw_proto=1,icmp_type=8,icmp_id=42";
        assert_eq!(ct.flush_match(None, &m(ping, None)), Ok(0));
        assert_eq!(ct.flush_match(None, &m(ping, Some("icmp_id=42"))), Ok(1));
        assert_eq!(ct.nconns(), 2);
    }

    #[test]
    fn a_full_tuple_removes_one_connection_of_zone_0_or_fails_with_enoent() {
        let ct = three_conns();
        let full = m(
            "ct_nw_src=10.0.0.1,ct_nw_dst=10.0.0.2,ct_nw_proto=17,ct_tp_src=1000,ct_tp_dst=53",
            None,
        );
        assert_eq!(ct.flush_match(None, &full), Ok(1));
        assert_eq!(ct.flush_match(None, &full), Err(FlushError::NotFound));
        assert_eq!(ct.flush_match(Some(7), &full), Ok(1));
        // The reply tuple of a plain connection names it too.
        let rev = m(
            "ct_nw_src=10.0.0.3,ct_nw_dst=10.0.0.1,ct_nw_proto=17,ct_tp_src=53,ct_tp_dst=1001",
            None,
        );
        assert_eq!(ct.flush_match(None, &rev), Ok(1));
        assert_eq!(ct.nconns(), 1);
    }

    #[test]
    fn the_translated_side_of_a_nat_connection_does_not_flush_it() {
        let ct = Conntrack::new(CtConfig::default());
        let snat = crate::CtArgs {
            nat: Some(NatAction::Src(NatRange {
                addr_min: "192.168.0.9".parse().unwrap(),
                addr_max: "192.168.0.9".parse().unwrap(),
                port_min: 0,
                port_max: 0,
                select: PortSelect::Hash,
                persistent: false,
            })),
            ..commit(0)
        };
        run(&ct, &mut udp("10.0.0.1", "10.0.0.2", 1000, 53, 4), &snat, 0);
        let reply = ct.dump(None)[0].reply;
        let text = format!(
            "ct_nw_src=10.0.0.2,ct_nw_dst={},ct_nw_proto=17,ct_tp_src=53,ct_tp_dst={}",
            reply.dst_ip(),
            reply.dport
        );
        assert_eq!(
            ct.flush_match(None, &m(&text, None)),
            Err(FlushError::NotFound)
        );
        // As a partial reply match it goes.
        let partial = format!("ct_nw_dst={}", reply.dst_ip());
        assert_eq!(ct.flush_match(None, &m("", Some(&partial))), Ok(1));
        assert_eq!(ct.nconns(), 0);
    }
}
