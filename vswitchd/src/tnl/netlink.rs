//! The kernel's routes and addresses over rtnetlink (a plain
//! `NETLINK_ROUTE` socket): a dump at start, then a re-dump whenever the
//! kernel announces a route, address or link change.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use tracing::{info, warn};

use super::Tnl;
use super::route::{DevAddr, Origin, Route, network};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PREFSRC: u16 = 7;
const RTA_TABLE: u16 = 15;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTN_UNICAST: u8 = 1;
const RTN_LOCAL: u8 = 2;
const RT_TABLE_MAIN: u32 = 254;
const RT_TABLE_LOCAL: u32 = 255;
const RTM_F_CLONED: u32 = 0x200;
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;

/// A route as the kernel reports it, before its source is worked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    pub prefix: IpAddr,
    pub plen: u8,
    pub oif: u32,
    pub gw: Option<IpAddr>,
    pub prefsrc: Option<IpAddr>,
    pub local: bool,
}

fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        let typ = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let data = &b[4..len];
        b = &b[len.next_multiple_of(4).min(b.len())..];
        Some((typ, data))
    })
}

fn ip_of(family: u8, d: &[u8]) -> Option<IpAddr> {
    match (i32::from(family), d.len()) {
        (libc::AF_INET, 4) => Some(IpAddr::V4(Ipv4Addr::new(d[0], d[1], d[2], d[3]))),
        (libc::AF_INET6, 16) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(d);
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

/// Parses the body of an RTM_NEWROUTE (after the netlink header). Only
/// unicast and local routes of the main and local tables with an output
/// device are kept.
pub fn parse_route(body: &[u8]) -> Option<KernelRoute> {
    let h = body.get(..12)?;
    let (family, dst_len, table8, typ) = (h[0], h[1], h[4], h[7]);
    let flags = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
    if (typ != RTN_UNICAST && typ != RTN_LOCAL) || flags & RTM_F_CLONED != 0 {
        return None;
    }
    let mut table = u32::from(table8);
    let mut dst = None;
    let mut oif = None;
    let mut gw = None;
    let mut prefsrc = None;
    for (t, d) in attrs(&body[12..]) {
        match t {
            RTA_DST => dst = ip_of(family, d),
            RTA_OIF if d.len() == 4 => oif = Some(u32::from_ne_bytes([d[0], d[1], d[2], d[3]])),
            RTA_GATEWAY => gw = ip_of(family, d),
            RTA_PREFSRC => prefsrc = ip_of(family, d),
            RTA_TABLE if d.len() == 4 => table = u32::from_ne_bytes([d[0], d[1], d[2], d[3]]),
            _ => {}
        }
    }
    if table != RT_TABLE_MAIN && table != RT_TABLE_LOCAL {
        return None;
    }
    let prefix = match dst {
        Some(d) => d,
        None => match i32::from(family) {
            libc::AF_INET => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            libc::AF_INET6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => return None,
        },
    };
    Some(KernelRoute {
        prefix: network(prefix, dst_len),
        plen: dst_len,
        oif: oif?,
        gw,
        prefsrc,
        local: typ == RTN_LOCAL,
    })
}

/// Parses the body of an RTM_NEWADDR: (ifindex, address, prefix length).
pub fn parse_addr(body: &[u8]) -> Option<(u32, IpAddr, u8)> {
    let h = body.get(..8)?;
    let (family, plen) = (h[0], h[1]);
    let index = u32::from_ne_bytes([h[4], h[5], h[6], h[7]]);
    let mut addr = None;
    let mut local = None;
    for (t, d) in attrs(&body[8..]) {
        match t {
            IFA_ADDRESS => addr = ip_of(family, d),
            IFA_LOCAL => local = ip_of(family, d),
            _ => {}
        }
    }
    Some((index, local.or(addr)?, plen))
}

/// Works out the source address of each kernel route, as `ovs/route/show`
/// prints it: the preferred source, else the route's own address for a
/// local route, else an address of the device on the gateway's or the
/// destination's subnet, else the device's first address of the family.
pub fn resolve(
    routes: Vec<KernelRoute>,
    addrs: &[DevAddr],
    name: impl Fn(u32) -> Option<String>,
) -> Vec<Route> {
    let mut out = Vec::new();
    for k in routes {
        let Some(dev) = name(k.oif) else { continue };
        let fam = |a: &&DevAddr| a.dev == dev && a.addr.is_ipv4() == k.prefix.is_ipv4();
        let in_subnet = |ip: IpAddr| {
            addrs
                .iter()
                .filter(fam)
                .find(|a| network(a.addr, a.plen) == network(ip, a.plen))
                .map(|a| a.addr)
        };
        let src = k
            .prefsrc
            .or_else(|| k.local.then_some(k.prefix))
            .or_else(|| k.gw.and_then(in_subnet))
            .or_else(|| in_subnet(k.prefix))
            .or_else(|| addrs.iter().find(fam).map(|a| a.addr));
        let Some(src) = src else { continue };
        out.push(Route {
            prefix: k.prefix,
            plen: k.plen,
            dev,
            gw: k.gw,
            src,
            mark: 0,
            local: k.local,
            origin: Origin::Kernel,
        });
    }
    out
}

fn socket(groups: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly created descriptor we own.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = groups;
    // SAFETY: sa is a valid sockaddr_nl and the length matches it.
    let r = unsafe {
        libc::bind(
            owned.as_raw_fd(),
            (&sa as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(owned)
}

fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is a valid writable buffer of buf.len() bytes.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Sends a dump request of `typ` and collects the bodies of the replies
/// of `reply`.
fn dump(typ: u16, reply: u16, body_len: usize) -> io::Result<Vec<Vec<u8>>> {
    let fd = socket(0)?;
    let mut req = vec![0u8; NLMSG_HDRLEN + body_len];
    let len = req.len() as u32;
    req[0..4].copy_from_slice(&len.to_ne_bytes());
    req[4..6].copy_from_slice(&typ.to_ne_bytes());
    req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // SAFETY: req is a valid buffer of req.len() bytes.
    let n = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = recv(&fd, &mut buf)?;
        let mut b = &buf[..n];
        while b.len() >= NLMSG_HDRLEN {
            let mlen = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
            let mtyp = u16::from_ne_bytes([b[4], b[5]]);
            if mlen < NLMSG_HDRLEN || mlen > b.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bad netlink length",
                ));
            }
            match mtyp {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let code = b
                        .get(16..20)
                        .map(|e| i32::from_ne_bytes([e[0], e[1], e[2], e[3]]))
                        .unwrap_or(0);
                    if code != 0 {
                        return Err(io::Error::from_raw_os_error(-code));
                    }
                }
                t if t == reply => out.push(b[NLMSG_HDRLEN..mlen].to_vec()),
                _ => {}
            }
            b = &b[mlen.next_multiple_of(4).min(b.len())..];
        }
    }
}

fn ifname(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success if_indextoname wrote a NUL-terminated name in buf.
    let c = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(c.to_string_lossy().into_owned())
}

/// Reads the kernel's addresses and routes into `tnl`.
pub fn refresh(tnl: &Tnl) -> io::Result<()> {
    let addrs: Vec<DevAddr> = dump(RTM_GETADDR, RTM_NEWADDR, 8)?
        .iter()
        .filter_map(|b| parse_addr(b))
        .filter_map(|(i, addr, plen)| {
            Some(DevAddr {
                dev: ifname(i)?,
                addr,
                plen,
            })
        })
        .collect();
    let routes: Vec<KernelRoute> = dump(RTM_GETROUTE, RTM_NEWROUTE, 12)?
        .iter()
        .filter_map(|b| parse_route(b))
        .collect();
    let routes = resolve(routes, &addrs, ifname);
    tnl.set_kernel_state(addrs, routes);
    Ok(())
}

/// Reads the kernel's state now, then follows it on a thread of its own.
pub fn spawn_monitor(tnl: Arc<Tnl>) {
    if let Err(e) = refresh(&tnl) {
        warn!("cannot read the kernel's routes: {e}");
    }
    let groups = RTMGRP_LINK
        | RTMGRP_IPV4_IFADDR
        | RTMGRP_IPV4_ROUTE
        | RTMGRP_IPV6_IFADDR
        | RTMGRP_IPV6_ROUTE;
    let fd = match socket(groups) {
        Ok(fd) => fd,
        Err(e) => {
            warn!("cannot follow the kernel's routes: {e}");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("route-monitor".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match recv(&fd, &mut buf) {
                    Ok(_) => {}
                    // ENOBUFS: events were lost; a re-dump catches up.
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        warn!("route monitor stopped: {e}");
                        return;
                    }
                }
                if let Err(e) = refresh(&tnl) {
                    warn!("cannot re-read the kernel's routes: {e}");
                }
            }
        });
    match spawned {
        Ok(_) => info!("following the kernel's routes"),
        Err(e) => warn!("cannot start the route monitor: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(typ: u16, data: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&typ.to_ne_bytes());
        a.extend_from_slice(data);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    fn route_msg(family: u8, dst_len: u8, typ: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![family, dst_len, 0, 0, 254, 3, 0, typ, 0, 0, 0, 0];
        for a in attrs {
            b.extend_from_slice(a);
        }
        b
    }

    #[test]
    fn unicast_route_with_gateway_and_device_is_parsed() {
        let m = route_msg(
            libc::AF_INET as u8,
            16,
            RTN_UNICAST,
            &[
                attr(RTA_TABLE, &254u32.to_ne_bytes()),
                attr(RTA_DST, &[10, 98, 0, 0]),
                attr(RTA_GATEWAY, &[10, 99, 0, 254]),
                attr(RTA_OIF, &7u32.to_ne_bytes()),
            ],
        );
        assert_eq!(
            parse_route(&m),
            Some(KernelRoute {
                prefix: "10.98.0.0".parse().unwrap(),
                plen: 16,
                oif: 7,
                gw: Some("10.99.0.254".parse().unwrap()),
                prefsrc: None,
                local: false,
            })
        );
    }

    #[test]
    fn broadcast_routes_other_tables_and_routes_without_device_are_skipped() {
        let oif = attr(RTA_OIF, &7u32.to_ne_bytes());
        let bcast = route_msg(libc::AF_INET as u8, 32, 3, std::slice::from_ref(&oif));
        assert_eq!(parse_route(&bcast), None);
        let other = route_msg(
            libc::AF_INET as u8,
            24,
            RTN_UNICAST,
            &[attr(RTA_TABLE, &100u32.to_ne_bytes()), oif],
        );
        assert_eq!(parse_route(&other), None);
        let nodev = route_msg(libc::AF_INET6 as u8, 64, RTN_UNICAST, &[]);
        assert_eq!(parse_route(&nodev), None);
        assert_eq!(parse_route(&[1, 2, 3]), None);
    }

    #[test]
    fn sources_come_from_prefsrc_local_address_or_the_device_subnet() {
        let addrs = vec![
            DevAddr {
                dev: "br-phys".into(),
                addr: "10.99.0.1".parse().unwrap(),
                plen: 24,
            },
            DevAddr {
                dev: "br-phys".into(),
                addr: "fd00::1".parse().unwrap(),
                plen: 64,
            },
        ];
        let k = |p: &str, plen, gw: Option<&str>, local| KernelRoute {
            prefix: p.parse().unwrap(),
            plen,
            oif: 3,
            gw: gw.map(|g| g.parse().unwrap()),
            prefsrc: None,
            local,
        };
        let routes = resolve(
            vec![
                k("10.98.0.0", 16, Some("10.99.0.254"), false),
                k("fd00::", 64, None, false),
                k("fd00::1", 128, None, true),
                KernelRoute {
                    oif: 9,
                    ..k("10.1.0.0", 16, None, false)
                },
            ],
            &addrs,
            |i| (i == 3).then(|| "br-phys".to_string()),
        );
        let srcs: Vec<String> = routes.iter().map(|r| r.src.to_string()).collect();
        assert_eq!(
            srcs,
            ["10.99.0.1", "fd00::1", "fd00::1"],
            "unknown device dropped"
        );
    }

    #[test]
    fn address_messages_prefer_the_local_address() {
        let mut b = vec![libc::AF_INET as u8, 24, 0, 0];
        b.extend_from_slice(&5u32.to_ne_bytes());
        b.extend_from_slice(&attr(IFA_ADDRESS, &[10, 99, 0, 9]));
        b.extend_from_slice(&attr(IFA_LOCAL, &[10, 99, 0, 1]));
        assert_eq!(parse_addr(&b), Some((5, "10.99.0.1".parse().unwrap(), 24)));
    }
}
