//! The tunnel neighbour cache (`ovs-appctl tnl/neigh/*`, `tnl/arp/*`):
//! next-hop IP to MAC, set by hand or learned from ARP replies and IPv6
//! neighbour advertisements seen in the slow path.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;

use flows::FlowKey;
use flows::key::{ethertype, ipproto};
use wire::MacAddr;

/// Learned entries expire after this long without being refreshed.
pub const DEFAULT_AGING_MS: u64 = 15 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighEntry {
    pub mac: MacAddr,
    pub bridge: String,
    /// Set by hand: never expires.
    pub is_static: bool,
    /// When it was learned or last refreshed (ms on the caller's clock).
    pub updated_ms: u64,
}

#[derive(Debug)]
pub struct NeighCache {
    entries: BTreeMap<IpAddr, NeighEntry>,
    pub aging_ms: u64,
}

impl Default for NeighCache {
    fn default() -> Self {
        NeighCache {
            entries: BTreeMap::new(),
            aging_ms: DEFAULT_AGING_MS,
        }
    }
}

impl NeighCache {
    /// A static entry (`tnl/neigh/set`).
    pub fn set(&mut self, bridge: &str, ip: IpAddr, mac: MacAddr, now_ms: u64) {
        self.entries.insert(
            ip,
            NeighEntry {
                mac,
                bridge: bridge.to_string(),
                is_static: true,
                updated_ms: now_ms,
            },
        );
    }

    /// A learned entry; a static one for the same IP is left alone.
    /// Returns true when the cache changed.
    pub fn learn(&mut self, bridge: &str, ip: IpAddr, mac: MacAddr, now_ms: u64) -> bool {
        if mac == MacAddr::ZERO || mac.is_multicast() || ip.is_unspecified() || ip.is_multicast() {
            return false;
        }
        match self.entries.get_mut(&ip) {
            Some(e) if e.is_static => false,
            Some(e) if e.mac == mac && e.bridge == bridge => {
                e.updated_ms = now_ms;
                false
            }
            _ => {
                self.entries.insert(
                    ip,
                    NeighEntry {
                        mac,
                        bridge: bridge.to_string(),
                        is_static: false,
                        updated_ms: now_ms,
                    },
                );
                true
            }
        }
    }

    /// The MAC for `ip`, if known and not expired.
    /// Whether some entry has MAC `mac`.
    pub fn has_mac(&self, mac: MacAddr) -> bool {
        self.entries.values().any(|e| e.mac == mac)
    }

    pub fn lookup(&self, ip: IpAddr, now_ms: u64) -> Option<&NeighEntry> {
        self.entries
            .get(&ip)
            .filter(|e| e.is_static || now_ms.saturating_sub(e.updated_ms) < self.aging_ms)
    }

    /// Drops expired learned entries.
    pub fn expire(&mut self, now_ms: u64) {
        let aging = self.aging_ms;
        self.entries
            .retain(|_, e| e.is_static || now_ms.saturating_sub(e.updated_ms) < aging);
    }

    /// Forgets every entry.
    pub fn flush(&mut self) {
        self.entries.clear();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `tnl/neigh/show` text (IPv4 entries first, each family in address
    /// order).
    pub fn show(&self, now_ms: u64) -> String {
        let mut s = format!("{:<45} {:<19} {}\n", "IP", "MAC", "Bridge");
        s.push_str(&"=".repeat(74));
        s.push('\n');
        for (ip, e) in &self.entries {
            if self.lookup(*ip, now_ms).is_none() {
                continue;
            }
            let _ = writeln!(
                s,
                "{:<45} {:<19} {}",
                ip.to_string(),
                e.mac.to_string(),
                e.bridge
            );
        }
        s
    }
}

/// The neighbour a slow-path packet announces, if it is an ARP reply or an
/// IPv6 neighbour advertisement with a target link-layer address: (IP,
/// MAC). The key fields it reads are returned in `used` so the caller can
/// un-wildcard them (each neighbour then gets its own upcall).
pub fn announced(key: &FlowKey, used: &mut FlowKey) -> Option<(IpAddr, MacAddr)> {
    used.dl_type = u16::MAX;
    match key.dl_type {
        ethertype::ARP => {
            used.nw_proto = u8::MAX;
            if key.nw_proto != 2 {
                return None;
            }
            used.nw_src = u32::MAX;
            used.arp_sha = [0xff; 6];
            Some((IpAddr::V4(key.nw_src.into()), MacAddr(key.arp_sha)))
        }
        ethertype::IPV6 => {
            used.nw_proto = u8::MAX;
            if key.nw_proto != ipproto::ICMPV6 {
                return None;
            }
            used.tp_src = u16::MAX;
            if key.tp_src != 136 {
                return None;
            }
            used.nd_target = [0xff; 16];
            used.arp_tha = [0xff; 6];
            if key.arp_tha == [0; 6] {
                return None;
            }
            Some((IpAddr::V6(key.nd_target.into()), MacAddr(key.arp_tha)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    #[test]
    fn show_matches_the_ovs_layout() {
        let mut c = NeighCache::default();
        c.set("br-phys", ip("fd00::2"), mac("02:00:00:00:01:03"), 0);
        c.set("br-phys", ip("10.99.0.2"), mac("02:00:00:00:01:02"), 0);
        assert_eq!(
            c.show(0),
            "IP                                            MAC                 Bridge\n\
             ==========================================================================\n\
             10.99.0.2                                     02:00:00:00:01:02   br-phys\n\
             fd00::2                                       02:00:00:00:01:03   br-phys\n"
        );
    }

    #[test]
    fn learned_entries_age_out_but_static_ones_stay_and_win() {
        let mut c = NeighCache::default();
        c.set("br-phys", ip("10.99.0.2"), mac("02:00:00:00:01:02"), 0);
        assert!(!c.learn("br-phys", ip("10.99.0.2"), mac("02:00:00:00:09:09"), 5));
        assert!(c.learn("br-phys", ip("10.99.0.3"), mac("02:00:00:00:01:03"), 10));
        assert!(!c.learn("br-phys", ip("10.99.0.3"), mac("02:00:00:00:01:03"), 20));
        assert!(!c.learn("br-phys", ip("10.99.0.4"), MacAddr::BROADCAST, 20));
        let late = 20 + DEFAULT_AGING_MS;
        assert_eq!(
            c.lookup(ip("10.99.0.3"), late - 1).unwrap().mac,
            mac("02:00:00:00:01:03")
        );
        assert!(c.lookup(ip("10.99.0.3"), late).is_none());
        c.expire(late);
        assert_eq!(c.len(), 1);
        assert_eq!(
            c.lookup(ip("10.99.0.2"), late).unwrap().mac,
            mac("02:00:00:00:01:02")
        );
        c.flush();
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn arp_replies_and_neighbour_advertisements_announce_a_neighbour() {
        let mut k = FlowKey {
            dl_type: ethertype::ARP,
            nw_proto: 2,
            nw_src: u32::from(std::net::Ipv4Addr::new(10, 99, 0, 2)),
            arp_sha: [2, 0, 0, 0, 1, 2],
            ..Default::default()
        };
        let mut used = FlowKey::default();
        assert_eq!(
            announced(&k, &mut used),
            Some((ip("10.99.0.2"), mac("02:00:00:00:01:02")))
        );
        assert_eq!(used.arp_sha, [0xff; 6]);
        k.nw_proto = 1;
        assert_eq!(
            announced(&k, &mut FlowKey::default()),
            None,
            "requests are not learned"
        );
        let mut n = FlowKey {
            dl_type: ethertype::IPV6,
            nw_proto: ipproto::ICMPV6,
            tp_src: 136,
            nd_target: "fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets(),
            arp_tha: [2, 0, 0, 0, 1, 3],
            ..Default::default()
        };
        assert_eq!(
            announced(&n, &mut FlowKey::default()),
            Some((ip("fd00::2"), mac("02:00:00:00:01:03")))
        );
        n.tp_src = 135;
        assert_eq!(announced(&n, &mut FlowKey::default()), None);
    }
}
