//! Frame builders for the tests of flushing and fragment reassembly.

use std::net::IpAddr;

use flows::packet::{complete_l4_checksum, ipv4_header_checksum};
use flows::parse::extract;

use crate::{Conntrack, CtArgs, CtPacket, CtResult};

fn eth(ty: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    f.extend_from_slice(&ty.to_be_bytes());
    f
}

/// An Ethernet+IP frame around `l4` with valid checksums.
pub(crate) fn frame(src: &str, dst: &str, proto: u8, l4: &[u8]) -> Vec<u8> {
    let (s, d): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut f;
    match (s, d) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f = eth(0x0800);
            let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0, 0, 64, proto, 0, 0];
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
    let mut p = CtPacket {
        frame: f,
        key: &key,
        layout: &lay,
        partial_l4_csum: false,
    };
    ct.execute(&mut p, args, now)
}

pub(crate) fn commit(z: u16) -> CtArgs {
    CtArgs {
        zone: z,
        commit: true,
        ..CtArgs::default()
    }
}
