//! Frame builders and a tracker runner for the tracker's unit tests.

use std::net::IpAddr;

use flows::packet::{complete_l4_checksum, ipv4_header_checksum};
use flows::parse::extract;

use crate::{Conntrack, CtArgs, CtPacket, CtResult};

/// An Ethernet header (02:..:01 -> 02:..:02) of EtherType `ty`.
pub(crate) fn eth(ty: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    f.extend_from_slice(&ty.to_be_bytes());
    f
}

/// An Ethernet+IP frame around `l4` with valid checksums; an IPv4 header
/// has identification 0x1234 and may be fragmented.
pub(crate) fn frame(src: &str, dst: &str, proto: u8, l4: &[u8]) -> Vec<u8> {
    ip_frame(src, dst, proto, l4, [0x12, 0x34, 0, 0])
}

/// [`frame`] with an IPv4 header of identification 0 and don't-fragment.
pub(crate) fn frame_df(src: &str, dst: &str, proto: u8, l4: &[u8]) -> Vec<u8> {
    ip_frame(src, dst, proto, l4, [0, 0, 0x40, 0])
}

/// `id_flags`: the IPv4 identification and flags/offset words.
fn ip_frame(src: &str, dst: &str, proto: u8, l4: &[u8], id_flags: [u8; 4]) -> Vec<u8> {
    let (s, d): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut f;
    match (s, d) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f = eth(0x0800);
            let mut h = vec![0x45, 0, 0, 0];
            h.extend_from_slice(&id_flags);
            h.extend_from_slice(&[64, proto, 0, 0]);
            h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let c = ipv4_header_checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&h);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f = eth(0x86dd);
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            f.extend_from_slice(&[proto, 64]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed families"),
    }
    f.extend_from_slice(l4);
    let (_, lay) = extract(&f, 0).unwrap();
    complete_l4_checksum(&mut f, &lay);
    f
}

/// A UDP datagram with `payload` bytes of payload.
pub(crate) fn udp(src: &str, dst: &str, sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    h.extend_from_slice(&[0, 0]);
    h.extend((0..payload).map(|i| i as u8));
    frame(src, dst, 17, &h)
}

/// An ICMP/ICMPv6 echo message of type `ty`.
pub(crate) fn icmp_echo(src: &str, dst: &str, ty: u8, id: u16) -> Vec<u8> {
    let v6 = src.contains(':');
    let mut h = vec![ty, 0, 0, 0];
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&[0, 1, 9, 9, 9, 9]);
    frame(src, dst, if v6 { 58 } else { 1 }, &h)
}

/// Runs `f` through the tracker.
pub(crate) fn run(ct: &Conntrack, f: &mut [u8], args: &CtArgs, now: u64) -> CtResult {
    let (key, lay) = extract(f, 0).unwrap();
    let len = f.len();
    let mut p = CtPacket {
        buf: f,
        len,
        key: &key,
        layout: &lay,
        partial_l4_csum: false,
    };
    ct.execute(&mut p, args, now)
}

/// Runs `f` through the tracker with `room` bytes after it to grow into
/// (an ALG's rewrite under NAT); `f` takes the frame's new length.
pub(crate) fn run_with_room(
    ct: &Conntrack,
    f: &mut Vec<u8>,
    room: usize,
    args: &CtArgs,
    now: u64,
) -> CtResult {
    let len = f.len();
    f.resize(len + room, 0);
    let (key, lay) = extract(&f[..len], 0).unwrap();
    let mut p = CtPacket {
        buf: f,
        len,
        key: &key,
        layout: &lay,
        partial_l4_csum: false,
    };
    let r = ct.execute(&mut p, args, now);
    let n = p.len;
    f.truncate(n);
    r
}

pub(crate) fn commit(z: u16) -> CtArgs {
    CtArgs {
        zone: z,
        commit: true,
        ..CtArgs::default()
    }
}

/// Splits the IPv4 datagram in `f` (no options) into fragments carrying
/// `chunk` bytes of data each (a multiple of 8), with valid checksums.
pub(crate) fn fragment_v4(f: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let data = &f[34..];
    let mut out = Vec::new();
    let mut off = 0;
    while off < data.len() {
        let end = (off + chunk).min(data.len());
        let mut g = f[..34].to_vec();
        g.extend_from_slice(&data[off..end]);
        let tot = (20 + end - off) as u16;
        g[16..18].copy_from_slice(&tot.to_be_bytes());
        let mut fo = (off / 8) as u16;
        if end < data.len() {
            fo |= 0x2000;
        }
        g[20..22].copy_from_slice(&fo.to_be_bytes());
        g[24..26].copy_from_slice(&[0, 0]);
        let c = ipv4_header_checksum(&g[14..34]);
        g[24..26].copy_from_slice(&c.to_be_bytes());
        out.push(g);
        off = end;
    }
    out
}

/// Splits the IPv6 datagram in `f` (no extension headers) into fragments
/// of `chunk` data bytes each (a multiple of 8), identification `id`.
pub(crate) fn fragment_v6(f: &[u8], chunk: usize, id: u32) -> Vec<Vec<u8>> {
    let data = &f[54..];
    let nh = f[20];
    let mut out = Vec::new();
    let mut off = 0;
    while off < data.len() {
        let end = (off + chunk).min(data.len());
        let mut g = f[..54].to_vec();
        g[20] = 44;
        let mut offlg = off as u16;
        if end < data.len() {
            offlg |= 1;
        }
        g.extend_from_slice(&[nh, 0]);
        g.extend_from_slice(&offlg.to_be_bytes());
        g.extend_from_slice(&id.to_be_bytes());
        g.extend_from_slice(&data[off..end]);
        let plen = (8 + end - off) as u16;
        g[18..20].copy_from_slice(&plen.to_be_bytes());
        out.push(g);
        off = end;
    }
    out
}
