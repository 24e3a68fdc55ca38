//! The connection key: zone and 5-tuple, for IPv4 and IPv6.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol numbers the tracker knows.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
    pub const IGMP: u8 = 2;
    pub const DCCP: u8 = 33;
    pub const UDPLITE: u8 = 136;
}

/// One direction of a connection.
///
/// Addresses are stored in 16 bytes; an IPv4 address uses the first 4 and
/// leaves the rest zero. For ICMP/ICMPv6 query messages `sport` is the
/// identifier and `dport` is `type << 8 | code`; for protocols without ports
/// both are zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Tuple {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub zone: u16,
    pub proto: u8,
    pub ipv6: bool,
}

/// Stores an address in the tuple's 16-byte form.
pub fn addr_bytes(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            b
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The reply type of an ICMP/ICMPv6 query type, if it is one the tracker
/// follows as a connection (echo, and for IPv4 also timestamp and info).
pub fn icmp_reply_type(ipv6: bool, ty: u8) -> Option<u8> {
    match (ipv6, ty) {
        (false, 8) => Some(0),
        (false, 0) => Some(8),
        (false, 13) => Some(14),
        (false, 14) => Some(13),
        (false, 15) => Some(16),
        (false, 16) => Some(15),
        (true, 128) => Some(129),
        (true, 129) => Some(128),
        _ => None,
    }
}

/// Whether an ICMP query type may start a connection (a request).
pub fn icmp_is_request(ipv6: bool, ty: u8) -> bool {
    matches!((ipv6, ty), (false, 8 | 13 | 15) | (true, 128))
}

impl Tuple {
    /// Whether this is an ICMP or ICMPv6 tuple.
    pub fn is_icmp(&self) -> bool {
        self.proto == proto::ICMP || self.proto == proto::ICMPV6
    }

    /// Whether the protocol has ports that NAT may translate.
    pub fn has_ports(&self) -> bool {
        matches!(self.proto, proto::TCP | proto::UDP | proto::SCTP)
    }

    /// The tuple of a packet going the other way.
    pub fn reverse(&self) -> Tuple {
        let (sport, dport) = if self.is_icmp() {
            let ty = (self.dport >> 8) as u8;
            let code = self.dport & 0xff;
            let rty = icmp_reply_type(self.ipv6, ty).unwrap_or(ty);
            (self.sport, u16::from(rty) << 8 | code)
        } else {
            (self.dport, self.sport)
        };
        Tuple {
            src: self.dst,
            dst: self.src,
            sport,
            dport,
            ..*self
        }
    }

    /// The source address.
    pub fn src_ip(&self) -> IpAddr {
        to_ip(self.ipv6, &self.src)
    }

    /// The destination address.
    pub fn dst_ip(&self) -> IpAddr {
        to_ip(self.ipv6, &self.dst)
    }

    /// The source IPv4 address as a host-order integer (0 for IPv6).
    pub fn nw_src(&self) -> u32 {
        if self.ipv6 {
            0
        } else {
            u32::from_be_bytes([self.src[0], self.src[1], self.src[2], self.src[3]])
        }
    }

    /// The destination IPv4 address as a host-order integer (0 for IPv6).
    pub fn nw_dst(&self) -> u32 {
        if self.ipv6 {
            0
        } else {
            u32::from_be_bytes([self.dst[0], self.dst[1], self.dst[2], self.dst[3]])
        }
    }

    /// `ct_tp_src` as OVS defines it: the source port, or the ICMP type.
    pub fn ct_tp_src(&self) -> u16 {
        if self.is_icmp() {
            self.dport >> 8
        } else {
            self.sport
        }
    }

    /// `ct_tp_dst` as OVS defines it: the destination port, or the ICMP code.
    pub fn ct_tp_dst(&self) -> u16 {
        if self.is_icmp() {
            self.dport & 0xff
        } else {
            self.dport
        }
    }

    /// The hash that places the tuple in the table, keyed by `seed` (a
    /// secret seed keeps crafted tuples from piling into one bucket).
    ///
    /// The tuple is taken as five 64-bit words (addresses, then ports,
    /// zone, protocol and family in one), each folded in with one
    /// multiply, then the high bits are mixed down: the table rehashes
    /// every entry as it grows, so this runs for a connection several
    /// times beyond its own lookups.
    #[inline]
    pub fn hash64(&self, seed: u64) -> u64 {
        const K: u64 = 0xf135_7aea_2e62_a9c5;
        let half = |b: &[u8; 16], i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        let rest = u64::from(self.sport)
            | u64::from(self.dport) << 16
            | u64::from(self.zone) << 32
            | u64::from(self.proto) << 48
            | u64::from(self.ipv6) << 56;
        let mut h = seed;
        for w in [
            half(&self.src, 0),
            half(&self.src, 1),
            half(&self.dst, 0),
            half(&self.dst, 1),
            rest,
        ] {
            h = (h ^ w).wrapping_mul(K).rotate_left(23);
        }
        let x = (h ^ (h >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^ (x >> 29)
    }
}

fn to_ip(ipv6: bool, b: &[u8; 16]) -> IpAddr {
    if ipv6 {
        IpAddr::V6(Ipv6Addr::from(*b))
    } else {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(proto: u8, sport: u16, dport: u16) -> Tuple {
        Tuple {
            src: addr_bytes("10.0.0.1".parse().unwrap()),
            dst: addr_bytes("10.0.0.2".parse().unwrap()),
            sport,
            dport,
            zone: 3,
            proto,
            ipv6: false,
        }
    }

    #[test]
    fn reverse_swaps_addresses_and_ports_and_round_trips() {
        let a = t(proto::TCP, 1234, 80);
        let r = a.reverse();
        assert_eq!(r.src_ip(), "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!((r.sport, r.dport, r.zone), (80, 1234, 3));
        assert_eq!(r.reverse(), a);
    }

    #[test]
    fn icmp_echo_reverse_keeps_the_id_and_turns_request_into_reply() {
        let a = t(proto::ICMP, 77, 8 << 8);
        let r = a.reverse();
        assert_eq!((r.sport, r.dport >> 8), (77, 0));
        assert_eq!(r.reverse(), a);
        assert_eq!((a.ct_tp_src(), a.ct_tp_dst()), (8, 0));
    }

    #[test]
    fn zone_is_part_of_the_key() {
        let a = t(proto::UDP, 1, 2);
        let b = Tuple { zone: 4, ..a };
        assert_ne!(a, b);
        assert_ne!(a.hash64(0), b.hash64(0));
        assert_ne!(a.hash64(0), a.hash64(1));
    }

    #[test]
    fn hash_spreads_sequential_tuples_over_shards_and_tags() {
        // The table takes bits 40.. for the shard, hashbrown the top 7 for
        // its tags and the low ones for the bucket.
        let n = 1u32 << 16;
        let (mut shards, mut tags, mut buckets) = ([0u32; 64], [0u32; 128], [0u32; 1024]);
        for i in 0..n {
            let mut a = t(proto::UDP, 1024 + (i & 0xff) as u16, 80);
            a.src[2] = (i >> 8) as u8;
            let h = a.hash64(0);
            shards[(h >> 40) as usize & 63] += 1;
            tags[(h >> 57) as usize] += 1;
            buckets[h as usize & 1023] += 1;
        }
        for (counts, name) in [
            (&shards[..], "shard"),
            (&tags[..], "tag"),
            (&buckets[..], "bucket"),
        ] {
            // Pearson's chi-squared against uniform: about k - 1 for a
            // random hash (k bins), standard deviation sqrt(2k).
            let k = counts.len() as f64;
            let mean = f64::from(n) / k;
            let chi2: f64 = counts
                .iter()
                .map(|&c| (f64::from(c) - mean).powi(2) / mean)
                .sum();
            assert!(
                chi2 < k + 6.0 * (2.0 * k).sqrt(),
                "{name}: chi2 {chi2} over {k} bins"
            );
        }
    }
}
