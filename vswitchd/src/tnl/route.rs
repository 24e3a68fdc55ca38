//! ferrovs's own route table for tunnel underlays, in the model and text of
//! `ovs-appctl ovs/route/*`: routes learned from the kernel ("Cached") plus
//! routes added by hand ("User"), looked up by priority: the prefix length
//! (IPv4 prefixes counted as IPv4-mapped IPv6, so a /24 ranks as a /120)
//! plus 64 for local routes and 32 for user routes, as OVS ranks them.

use std::fmt::Write;
use std::net::IpAddr;

/// Where a route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Learned from the kernel (shown as `Cached`).
    Kernel,
    /// Added with `ovs/route/add` (shown as `User`).
    User,
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Network address (host bits cleared).
    pub prefix: IpAddr,
    pub plen: u8,
    /// Output device (a bridge name for user routes).
    pub dev: String,
    pub gw: Option<IpAddr>,
    /// Source address for tunnels using this route.
    pub src: IpAddr,
    pub mark: u32,
    /// A route to one of this host's own addresses.
    pub local: bool,
    pub origin: Origin,
}

impl Route {
    /// Lookup priority: the prefix length in IPv6 terms, plus 64 for a
    /// local route or 32 for a user route (so a user route beats a kernel
    /// route up to 32 bits more specific).
    pub fn priority(&self) -> u32 {
        let mapped = match self.prefix {
            IpAddr::V4(_) => u32::from(self.plen) + 96,
            IpAddr::V6(_) => u32::from(self.plen),
        };
        let bonus = match (self.local, self.origin) {
            (true, _) => 64,
            (false, Origin::User) => 32,
            (false, Origin::Kernel) => 0,
        };
        mapped + bonus
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.prefix, ip) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let m = mask_v4(self.plen);
                u32::from(p) & m == u32::from(a) & m
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let m = mask_v6(self.plen);
                u128::from(p) & m == u128::from(a) & m
            }
            _ => false,
        }
    }
}

fn mask_v4(plen: u8) -> u32 {
    if plen == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(plen.min(32)))
    }
}

fn mask_v6(plen: u8) -> u128 {
    if plen == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(plen.min(128)))
    }
}

/// `ip` with the host bits beyond `plen` cleared.
pub fn network(ip: IpAddr, plen: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a) & mask_v4(plen)).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask_v6(plen)).into()),
    }
}

/// Parses `ADDR[/LEN]` (no length: a host route).
pub fn parse_prefix(s: &str) -> Option<(IpAddr, u8)> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = a.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let plen = match l {
        Some(l) => l.parse::<u8>().ok().filter(|&n| n <= max)?,
        None => max,
    };
    Some((network(ip, plen), plen))
}

/// An address configured on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevAddr {
    pub dev: String,
    pub addr: IpAddr,
    pub plen: u8,
}

/// The route table.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// Kept sorted by priority (highest first), stable in insertion order.
    routes: Vec<Route>,
}

/// Why `ovs/route/add` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("Invalid parameters")]
    Invalid,
    #[error("Error while inserting route.\n(no address on {0} to use as the source)")]
    NoSource(String),
    #[error("Not found")]
    NotFound,
}

impl RouteTable {
    fn insert(&mut self, r: Route) {
        self.routes.retain(|x| {
            !(x.prefix == r.prefix && x.plen == r.plen && x.mark == r.mark && x.origin == r.origin)
        });
        let at = self
            .routes
            .iter()
            .position(|x| x.priority() < r.priority())
            .unwrap_or(self.routes.len());
        self.routes.insert(at, r);
    }

    /// Adds (or replaces) a user route; its source is the device address
    /// on the gateway's subnet, or else on the destination's, or else the
    /// device's first address of the family.
    pub fn add_user(
        &mut self,
        prefix: IpAddr,
        plen: u8,
        dev: &str,
        gw: Option<IpAddr>,
        mark: u32,
        addrs: &[DevAddr],
    ) -> Result<(), RouteError> {
        if gw.is_some_and(|g| g.is_ipv4() != prefix.is_ipv4()) {
            return Err(RouteError::Invalid);
        }
        let on_dev = || {
            addrs
                .iter()
                .filter(move |a| a.dev == dev && a.addr.is_ipv4() == prefix.is_ipv4())
        };
        let in_subnet =
            |ip: IpAddr| on_dev().find(|a| network(a.addr, a.plen) == network(ip, a.plen));
        let src = gw
            .and_then(in_subnet)
            .or_else(|| in_subnet(prefix))
            .or_else(|| on_dev().find(|a| !is_link_local(a.addr)))
            .map(|a| a.addr)
            .ok_or_else(|| RouteError::NoSource(dev.to_string()))?;
        self.insert(Route {
            prefix: network(prefix, plen),
            plen,
            dev: dev.to_string(),
            gw,
            src,
            mark,
            local: false,
            origin: Origin::User,
        });
        Ok(())
    }

    /// Deletes the user route for exactly `prefix/plen` and `mark`.
    pub fn del_user(&mut self, prefix: IpAddr, plen: u8, mark: u32) -> Result<(), RouteError> {
        let n = self.routes.len();
        let net = network(prefix, plen);
        self.routes.retain(|r| {
            !(r.origin == Origin::User && r.prefix == net && r.plen == plen && r.mark == mark)
        });
        if self.routes.len() == n {
            Err(RouteError::NotFound)
        } else {
            Ok(())
        }
    }

    /// Replaces every kernel route with `routes`.
    pub fn set_kernel(&mut self, routes: Vec<Route>) {
        self.routes.retain(|r| r.origin == Origin::User);
        for r in routes {
            self.insert(r);
        }
    }

    /// The route for `dst` with packet mark `mark`.
    pub fn lookup(&self, dst: IpAddr, mark: u32) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.mark == mark && r.contains(dst))
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// `ovs/route/show` text.
    pub fn show(&self) -> String {
        let mut s = String::from("Route Table:\n");
        for r in &self.routes {
            let origin = match r.origin {
                Origin::Kernel => "Cached",
                Origin::User => "User",
            };
            let _ = write!(s, "{origin}: {}/{}", r.prefix, r.plen);
            if r.mark != 0 {
                let _ = write!(s, " MARK {}", r.mark);
            }
            let _ = write!(s, " dev {}", r.dev);
            if let Some(g) = r.gw {
                let _ = write!(s, " GW {g}");
            }
            let _ = write!(s, " SRC {}", r.src);
            if r.local {
                s.push_str(" local");
            }
            s.push('\n');
        }
        s
    }
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn addrs() -> Vec<DevAddr> {
        vec![
            DevAddr {
                dev: "br-phys".into(),
                addr: ip("10.99.0.1"),
                plen: 24,
            },
            DevAddr {
                dev: "br-phys".into(),
                addr: ip("fd00::1"),
                plen: 64,
            },
        ]
    }

    fn kernel(prefix: &str, plen: u8, dev: &str, src: &str, local: bool) -> Route {
        Route {
            prefix: ip(prefix),
            plen,
            dev: dev.into(),
            gw: None,
            src: ip(src),
            mark: 0,
            local,
            origin: Origin::Kernel,
        }
    }

    #[test]
    fn show_ranks_local_then_user_bonus_then_prefix_length_as_ovs_does() {
        let mut t = RouteTable::default();
        t.set_kernel(vec![
            kernel("10.99.0.0", 24, "br-phys", "10.99.0.1", false),
            kernel("fd00::", 64, "br-phys", "fd00::1", false),
            kernel("127.0.0.0", 8, "lo", "127.0.0.1", true),
            kernel("10.99.0.1", 32, "br-phys", "10.99.0.1", true),
            kernel("fd00::1", 128, "br-phys", "fd00::1", true),
        ]);
        t.add_user(
            ip("10.98.0.0"),
            16,
            "br-phys",
            Some(ip("10.99.0.254")),
            0,
            &addrs(),
        )
        .unwrap();
        t.add_user(
            ip("10.96.0.0"),
            16,
            "br-phys",
            Some(ip("10.99.0.254")),
            5,
            &addrs(),
        )
        .unwrap();
        assert_eq!(
            t.show(),
            "Route Table:\n\
             Cached: 10.99.0.1/32 dev br-phys SRC 10.99.0.1 local\n\
             Cached: fd00::1/128 dev br-phys SRC fd00::1 local\n\
             Cached: 127.0.0.0/8 dev lo SRC 127.0.0.1 local\n\
             User: 10.98.0.0/16 dev br-phys GW 10.99.0.254 SRC 10.99.0.1\n\
             User: 10.96.0.0/16 MARK 5 dev br-phys GW 10.99.0.254 SRC 10.99.0.1\n\
             Cached: 10.99.0.0/24 dev br-phys SRC 10.99.0.1\n\
             Cached: fd00::/64 dev br-phys SRC fd00::1\n"
        );
    }

    #[test]
    fn lookup_takes_the_highest_priority_route_with_the_right_mark() {
        let mut t = RouteTable::default();
        t.set_kernel(vec![
            kernel("10.99.0.0", 24, "br-phys", "10.99.0.1", false),
            kernel("10.99.0.0", 16, "br-phys", "10.99.0.1", false),
        ]);
        assert_eq!(
            t.lookup(ip("10.99.0.7"), 0).unwrap().plen,
            24,
            "longest kernel prefix"
        );
        t.add_user(
            ip("10.0.0.0"),
            8,
            "br-phys",
            Some(ip("10.99.0.254")),
            0,
            &addrs(),
        )
        .unwrap();
        // A user /8 (priority 104 + 32) outranks a kernel /24 (120).
        assert_eq!(t.lookup(ip("10.99.0.7"), 0).unwrap().plen, 8);
        let r = t.lookup(ip("10.5.0.7"), 0).unwrap();
        assert_eq!((r.plen, r.gw), (8, Some(ip("10.99.0.254"))));
        assert!(t.lookup(ip("10.5.0.7"), 3).is_none());
        assert!(t.lookup(ip("172.16.0.1"), 0).is_none());
        assert!(t.lookup(ip("fd00::5"), 0).is_none());
    }

    #[test]
    fn user_routes_need_a_source_address_and_delete_only_exact_matches() {
        let mut t = RouteTable::default();
        assert_eq!(
            t.add_user(ip("1.2.3.0"), 24, "nosuch", None, 0, &addrs()),
            Err(RouteError::NoSource("nosuch".into()))
        );
        t.add_user(
            ip("10.98.0.0"),
            16,
            "br-phys",
            Some(ip("10.99.0.254")),
            0,
            &addrs(),
        )
        .unwrap();
        // Same prefix again replaces.
        t.add_user(
            ip("10.98.0.0"),
            16,
            "br-phys",
            Some(ip("10.99.0.253")),
            0,
            &addrs(),
        )
        .unwrap();
        assert_eq!(t.routes().len(), 1);
        assert_eq!(
            t.del_user(ip("10.98.0.0"), 24, 0),
            Err(RouteError::NotFound)
        );
        assert_eq!(t.del_user(ip("10.98.0.0"), 16, 0), Ok(()));
        assert!(t.routes().is_empty());
    }

    #[test]
    fn kernel_refresh_keeps_user_routes() {
        let mut t = RouteTable::default();
        t.add_user(
            ip("10.98.0.0"),
            16,
            "br-phys",
            Some(ip("10.99.0.254")),
            0,
            &addrs(),
        )
        .unwrap();
        t.set_kernel(vec![kernel("10.99.0.0", 24, "br-phys", "10.99.0.1", false)]);
        t.set_kernel(vec![]);
        assert_eq!(t.routes().len(), 1);
        assert_eq!(t.routes()[0].origin, Origin::User);
    }

    #[test]
    fn prefixes_parse_with_and_without_length_and_clear_host_bits() {
        assert_eq!(parse_prefix("10.1.2.3/16"), Some((ip("10.1.0.0"), 16)));
        assert_eq!(parse_prefix("10.1.2.3"), Some((ip("10.1.2.3"), 32)));
        assert_eq!(parse_prefix("fd00::1/64"), Some((ip("fd00::"), 64)));
        assert_eq!(parse_prefix("10.1.2.3/33"), None);
        assert_eq!(parse_prefix("bogus"), None);
    }
}
