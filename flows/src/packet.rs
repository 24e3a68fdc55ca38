//! Rewriting frames for datapath actions, with incremental checksum updates.
//!
//! [`apply`] executes every [`DpAction`] that changes the frame (VLAN
//! push/pop and edits, MAC, IPv4/IPv6, TOS/TTL and L4 port rewrites).
//! Checksums are patched incrementally (RFC 1624): the IPv4 header checksum,
//! and the TCP/UDP/ICMPv6 checksum whose pseudo-header covers the addresses.
//!
//! A frame received with a virtio `NEEDS_CSUM` partial checksum carries, in
//! its L4 checksum field, the plain (non-complemented) one's-complement sum of
//! the pseudo-header; the device later adds the L4 bytes and complements.
//! With `partial_l4_csum` set, an address change adjusts that field as a
//! plain sum and a port change leaves it alone (ports are summed later).
//!
//! A rewrite on a frame that lacks the header it edits is a no-op.

use crate::dpaction::DpAction;
use crate::key::{VLAN_CFI, ethertype, ipproto};
use crate::parse::{L3Kind, L4Kind, Layout, VLAN_HEADER_LEN, extract};

/// A frame in a buffer with headroom (implemented by `datapath::Packet`).
pub trait FrameBuf {
    /// The frame.
    fn data(&self) -> &[u8];
    /// The frame, mutable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows the frame by `n` bytes at the front; false when there is no room.
    fn push_front(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front; false when the frame is shorter.
    fn pull_front(&mut self, n: usize) -> bool;
}

/// A frame in a `Vec` with headroom, for tests and the slow path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VecFrame {
    buf: Vec<u8>,
    start: usize,
}

impl VecFrame {
    /// A copy of `frame` preceded by `headroom` spare bytes.
    pub fn new(frame: &[u8], headroom: usize) -> VecFrame {
        let mut buf = vec![0u8; headroom];
        buf.extend_from_slice(frame);
        VecFrame {
            buf,
            start: headroom,
        }
    }
}

impl FrameBuf for VecFrame {
    fn data(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or(&[])
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.start..).unwrap_or(&mut [])
    }
    fn push_front(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    fn pull_front(&mut self, n: usize) -> bool {
        if n > self.buf.len() - self.start {
            return false;
        }
        self.start += n;
        true
    }
}

/// Why a rewrite failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("no headroom to push {0} bytes")]
    NoHeadroom(usize),
    #[error("{0} is not a packet rewrite (the datapath executes it)")]
    NotARewrite(&'static str),
}

// ---------------------------------------------------------------------------
// One's-complement arithmetic.

pub use wire::checksum::{
    accumulate as checksum_accumulate, fold as checksum_fold, ipv4_header_checksum,
    ones_complement_sum,
};

/// A checksum field patched for a change of `old` bytes into `new` bytes
/// (both of even length and equal alignment). `partial` selects a plain sum
/// field (virtio partial checksum) over a complemented checksum (RFC 1624 eq. 3).
#[inline]
fn adjust(field: u16, old: &[u8], new: &[u8], partial: bool) -> u16 {
    let o = u64::from(!ones_complement_sum(old));
    let n = u64::from(ones_complement_sum(new));
    if partial {
        checksum_fold(u64::from(field) + o + n)
    } else {
        !checksum_fold(u64::from(!field) + o + n)
    }
}

/// Offset in the frame of the L4 checksum field.
pub fn l4_csum_offset(layout: &Layout) -> Option<usize> {
    let l4 = usize::from(layout.l4_ofs?);
    Some(match layout.l4 {
        L4Kind::Tcp => l4 + 16,
        L4Kind::Udp => l4 + 6,
        L4Kind::Icmp | L4Kind::Icmpv6 => l4 + 2,
        L4Kind::Sctp => l4 + 8,
        L4Kind::None => return None,
    })
}

/// Sum of the TCP/UDP/ICMPv6 pseudo-header (folded, not complemented): the
/// value a `NEEDS_CSUM` frame carries in its checksum field.
pub fn pseudo_header_sum(frame: &[u8], layout: &Layout) -> Option<u16> {
    let l3 = usize::from(layout.l3_ofs?);
    let l4 = usize::from(layout.l4_ofs?);
    let l4_len = (layout.l3_end as usize).checked_sub(l4)?;
    let proto = match layout.l4 {
        L4Kind::Tcp => ipproto::TCP,
        L4Kind::Udp => ipproto::UDP,
        L4Kind::Icmpv6 => ipproto::ICMPV6,
        _ => return None,
    };
    let acc = match layout.l3 {
        L3Kind::Ipv4 => checksum_accumulate(0, frame.get(l3 + 12..l3 + 20)?),
        L3Kind::Ipv6 => checksum_accumulate(0, frame.get(l3 + 8..l3 + 40)?),
        _ => return None,
    };
    Some(checksum_fold(acc + u64::from(proto) + l4_len as u64))
}

/// The L4 checksum of the frame computed from scratch (checksum field taken
/// as zero) for TCP, UDP, ICMP and ICMPv6; `None` for anything else or when
/// the L4 segment is not all there. A UDP checksum of 0 is returned as 0xffff.
pub fn l4_checksum_full(frame: &[u8], layout: &Layout) -> Option<u16> {
    let l4 = usize::from(layout.l4_ofs?);
    let seg = frame.get(l4..layout.l3_end as usize)?;
    let csum_at = l4_csum_offset(layout)? - l4;
    let start = match layout.l4 {
        L4Kind::Icmp => 0,
        L4Kind::Tcp | L4Kind::Udp | L4Kind::Icmpv6 => u64::from(pseudo_header_sum(frame, layout)?),
        _ => return None,
    };
    let acc = checksum_accumulate(start, seg.get(..csum_at)?);
    let acc = checksum_accumulate(acc, seg.get(csum_at + 2..)?);
    Some(wire::checksum::finish(acc, layout.l4 == L4Kind::Udp))
}

/// Computes and stores the full L4 checksum (TCP/UDP/ICMP/ICMPv6/SCTP),
/// e.g. to complete a `NEEDS_CSUM` frame for a port without checksum
/// offload. Returns false when the frame has no such header.
pub fn complete_l4_checksum(frame: &mut [u8], layout: &Layout) -> bool {
    let Some(at) = l4_csum_offset(layout) else {
        return false;
    };
    if layout.l4 == L4Kind::Sctp {
        let Some(crc) = sctp_checksum(frame, layout) else {
            return false;
        };
        return put(frame, at, &crc.to_le_bytes());
    }
    match l4_checksum_full(frame, layout) {
        Some(c) => put(frame, at, &c.to_be_bytes()),
        None => false,
    }
}

/// The SCTP CRC32c of the frame's SCTP packet (checksum field taken as zero),
/// as the value whose little-endian bytes go into the header.
pub fn sctp_checksum(frame: &[u8], layout: &Layout) -> Option<u32> {
    if layout.l4 != L4Kind::Sctp {
        return None;
    }
    let l4 = usize::from(layout.l4_ofs?);
    let seg = frame.get(l4..layout.l3_end as usize)?;
    Some(wire::checksum::crc32c(&[
        seg.get(..8)?,
        &[0; 4],
        seg.get(12..)?,
    ]))
}

// ---------------------------------------------------------------------------
// Bounds-checked field access.

#[inline]
fn get16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

#[inline]
fn put(d: &mut [u8], at: usize, v: &[u8]) -> bool {
    match d.get_mut(at..at + v.len()) {
        Some(s) => {
            s.copy_from_slice(v);
            true
        }
        None => false,
    }
}

#[inline]
fn is_vlan_tpid(t: Option<u16>) -> bool {
    matches!(t, Some(ethertype::VLAN | ethertype::QINQ))
}

// ---------------------------------------------------------------------------
// Actions.

/// Applies one rewriting datapath action to the frame in `buf`.
/// `partial_l4_csum` tells that the frame carries a virtio partial checksum.
pub fn apply<B: FrameBuf + ?Sized>(
    buf: &mut B,
    action: &DpAction,
    partial_l4_csum: bool,
) -> Result<(), RewriteError> {
    match *action {
        DpAction::Output(_) => return Err(RewriteError::NotARewrite("output")),
        DpAction::Userspace { .. } => return Err(RewriteError::NotARewrite("userspace")),
        DpAction::Meter(_) => return Err(RewriteError::NotARewrite("meter")),
        DpAction::CheckPktLen { .. } => return Err(RewriteError::NotARewrite("check_pkt_len")),
        DpAction::Sample { .. } => return Err(RewriteError::NotARewrite("sample")),
        DpAction::TnlPush { .. } => return Err(RewriteError::NotARewrite("tnl_push")),
        DpAction::TnlPop { .. } => return Err(RewriteError::NotARewrite("tnl_pop")),
        DpAction::Recirc(_) => return Err(RewriteError::NotARewrite("recirc")),
        DpAction::Ct(_) => return Err(RewriteError::NotARewrite("ct")),
        DpAction::CtClear => return Err(RewriteError::NotARewrite("ct_clear")),
        DpAction::PushVlan { tpid, tci } => push_vlan(buf, tpid, tci)?,
        DpAction::PopVlan => pop_vlan(buf),
        DpAction::PushMpls { ethertype, lse } => push_mpls(buf, ethertype, lse)?,
        DpAction::PopMpls(ethertype) => pop_mpls(buf, ethertype),
        DpAction::SetMpls(lse) => {
            let d = buf.data_mut();
            let o = ethertype_offset(d);
            if get16(d, o).is_some_and(ethertype::is_mpls) {
                put(d, o + 2, &lse.to_be_bytes());
            }
        }
        DpAction::SetVlanVid(vid) => edit_tci(buf.data_mut(), 0xf000, vid & 0x0fff),
        DpAction::SetVlanPcp(pcp) => edit_tci(buf.data_mut(), 0x1fff, u16::from(pcp & 7) << 13),
        DpAction::SetEthDst(mac) => {
            put(buf.data_mut(), 0, &mac);
        }
        DpAction::SetEthSrc(mac) => {
            put(buf.data_mut(), 6, &mac);
        }
        DpAction::SetIpv4Src(a) => set_ipv4_addr(buf.data_mut(), 12, a, partial_l4_csum),
        DpAction::SetIpv4Dst(a) => set_ipv4_addr(buf.data_mut(), 16, a, partial_l4_csum),
        DpAction::SetIpv6Src(a) => set_ipv6_addr(buf.data_mut(), 8, &a, partial_l4_csum),
        DpAction::SetIpv6Dst(a) => set_ipv6_addr(buf.data_mut(), 24, &a, partial_l4_csum),
        DpAction::SetIpv6Label(label) => set_ipv6_label(buf.data_mut(), label),
        DpAction::SetIpTos { tos, mask } => set_tos(buf.data_mut(), tos, mask),
        DpAction::SetIpTtl(ttl) => set_ttl(buf.data_mut(), ttl),
        DpAction::SetTpSrc(p) => set_port(buf.data_mut(), 0, p, partial_l4_csum),
        DpAction::SetTpDst(p) => set_port(buf.data_mut(), 2, p, partial_l4_csum),
        DpAction::SetIcmpType(t) => set_icmp(buf.data_mut(), 0, t),
        DpAction::SetIcmpCode(c) => set_icmp(buf.data_mut(), 1, c),
        DpAction::SetArpOp(op) => set_arp(buf.data_mut(), 6, &op.to_be_bytes()),
        DpAction::SetArpSha(mac) => set_arp(buf.data_mut(), 8, &mac),
        DpAction::SetArpSpa(a) => set_arp(buf.data_mut(), 14, &a.to_be_bytes()),
        DpAction::SetArpTha(mac) => set_arp(buf.data_mut(), 18, &mac),
        DpAction::SetArpTpa(a) => set_arp(buf.data_mut(), 24, &a.to_be_bytes()),
    }
    Ok(())
}

/// Writes the ICMP type (`field` 0) or code (1) and patches the ICMP
/// checksum (the pseudo-header of ICMPv6 does not change).
fn set_icmp(d: &mut [u8], field: usize, v: u8) {
    let Ok((_, lay)) = extract(d, 0) else {
        return;
    };
    let (L4Kind::Icmp | L4Kind::Icmpv6, Some(l4)) = (lay.l4, lay.l4_ofs.map(usize::from)) else {
        return;
    };
    let (Some(old), Some(c)) = (get16(d, l4), get16(d, l4 + 2)) else {
        return;
    };
    let mut new = old.to_be_bytes();
    new[field] = v;
    let n = adjust(c, &old.to_be_bytes(), &new, false);
    put(d, l4, &new);
    put(d, l4 + 2, &n.to_be_bytes());
}

/// Writes `v` at `field` bytes into the ARP header, if the frame is an
/// (IPv4 over Ethernet) ARP packet; ARP has no checksum.
fn set_arp(d: &mut [u8], field: usize, v: &[u8]) {
    let Ok((_, lay)) = extract(d, 0) else {
        return;
    };
    if let (L3Kind::Arp, Some(l3)) = (lay.l3, lay.l3_ofs) {
        put(d, usize::from(l3) + field, v);
    }
}

fn push_vlan<B: FrameBuf + ?Sized>(buf: &mut B, tpid: u16, tci: u16) -> Result<(), RewriteError> {
    if buf.data().len() < 12 {
        return Ok(());
    }
    if !buf.push_front(VLAN_HEADER_LEN) {
        return Err(RewriteError::NoHeadroom(VLAN_HEADER_LEN));
    }
    let d = buf.data_mut();
    d.copy_within(VLAN_HEADER_LEN..VLAN_HEADER_LEN + 12, 0);
    put(d, 12, &tpid.to_be_bytes());
    put(d, 14, &(tci & !VLAN_CFI).to_be_bytes());
    Ok(())
}

fn pop_vlan<B: FrameBuf + ?Sized>(buf: &mut B) {
    let d = buf.data_mut();
    if d.len() < 12 + VLAN_HEADER_LEN + 2 || !is_vlan_tpid(get16(d, 12)) {
        return;
    }
    d.copy_within(0..12, VLAN_HEADER_LEN);
    buf.pull_front(VLAN_HEADER_LEN);
}

/// Offset of the ethertype that follows the MAC addresses and any VLAN tags.
fn ethertype_offset(d: &[u8]) -> usize {
    let mut o = 12;
    while o < 12 + 2 * VLAN_HEADER_LEN && is_vlan_tpid(get16(d, o)) {
        o += VLAN_HEADER_LEN;
    }
    o
}

/// MPLS label stack entry length.
const MPLS_HLEN: usize = 4;

fn push_mpls<B: FrameBuf + ?Sized>(
    buf: &mut B,
    ethertype: u16,
    lse: u32,
) -> Result<(), RewriteError> {
    let o = ethertype_offset(buf.data());
    if buf.data().len() < o + 2 {
        return Ok(());
    }
    if !buf.push_front(MPLS_HLEN) {
        return Err(RewriteError::NoHeadroom(MPLS_HLEN));
    }
    let d = buf.data_mut();
    d.copy_within(MPLS_HLEN..MPLS_HLEN + o, 0);
    put(d, o, &ethertype.to_be_bytes());
    put(d, o + 2, &lse.to_be_bytes());
    Ok(())
}

fn pop_mpls<B: FrameBuf + ?Sized>(buf: &mut B, ethertype: u16) {
    let d = buf.data_mut();
    let o = ethertype_offset(d);
    if d.len() < o + 2 + MPLS_HLEN || !get16(d, o).is_some_and(ethertype::is_mpls) {
        return;
    }
    put(d, o + MPLS_HLEN, &ethertype.to_be_bytes());
    d.copy_within(0..o, MPLS_HLEN);
    buf.pull_front(MPLS_HLEN);
}

/// Keeps the TCI bits in `keep` and ORs in `set`, on the outer tag.
fn edit_tci(d: &mut [u8], keep: u16, set: u16) {
    if !is_vlan_tpid(get16(d, 12)) {
        return;
    }
    if let Some(tci) = get16(d, 14) {
        put(d, 14, &((tci & keep) | set).to_be_bytes());
    }
}

/// Patches the L4 checksum of a TCP/UDP/ICMPv6 segment for a pseudo-header
/// change from `old` to `new`.
fn fix_l4_for_pseudo(d: &mut [u8], lay: &Layout, old: &[u8], new: &[u8], partial: bool) {
    let Some(at) = l4_csum_offset(lay) else {
        return;
    };
    if !matches!(lay.l4, L4Kind::Tcp | L4Kind::Udp | L4Kind::Icmpv6) {
        return;
    }
    let Some(c) = get16(d, at) else {
        return;
    };
    if lay.l4 == L4Kind::Udp && c == 0 && !partial {
        return; // no checksum
    }
    let mut n = adjust(c, old, new, partial);
    if lay.l4 == L4Kind::Udp && n == 0 && !partial {
        n = 0xffff;
    }
    put(d, at, &n.to_be_bytes());
}

/// Rewrites 2 bytes of the IPv4 header at `field` (relative to the header)
/// and patches the header checksum.
fn ipv4_put(d: &mut [u8], l3: usize, field: usize, new: [u8; 2]) {
    let (Some(old), Some(c)) = (get16(d, l3 + field), get16(d, l3 + 10)) else {
        return;
    };
    let c = adjust(c, &old.to_be_bytes(), &new, false);
    put(d, l3 + field, &new);
    put(d, l3 + 10, &c.to_be_bytes());
}

fn set_ipv4_addr(d: &mut [u8], field: usize, addr: u32, partial: bool) {
    let Ok((_, lay)) = extract(d, 0) else {
        return;
    };
    let (L3Kind::Ipv4, Some(l3)) = (lay.l3, lay.l3_ofs) else {
        return;
    };
    let l3 = usize::from(l3);
    let Some(old) = d
        .get(l3 + field..l3 + field + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
    else {
        return;
    };
    let new = addr.to_be_bytes();
    fix_l4_for_pseudo(d, &lay, &old, &new, partial);
    if let Some(c) = get16(d, l3 + 10) {
        let c = adjust(c, &old, &new, false);
        put(d, l3 + 10, &c.to_be_bytes());
    }
    put(d, l3 + field, &new);
}

fn set_ipv6_addr(d: &mut [u8], field: usize, addr: &[u8; 16], partial: bool) {
    let Ok((_, lay)) = extract(d, 0) else {
        return;
    };
    let (L3Kind::Ipv6, Some(l3)) = (lay.l3, lay.l3_ofs) else {
        return;
    };
    let l3 = usize::from(l3);
    let Some(old) = d
        .get(l3 + field..l3 + field + 16)
        .and_then(|s| <[u8; 16]>::try_from(s).ok())
    else {
        return;
    };
    fix_l4_for_pseudo(d, &lay, &old, addr, partial);
    put(d, l3 + field, addr);
}

/// Writes the bits `mask` of the IPv4 TOS or IPv6 traffic class byte.
fn set_tos(d: &mut [u8], tos: u8, mask: u8) {
    let Ok((_, lay)) = extract(d, 0) else {
        return;
    };
    let Some(l3) = lay.l3_ofs.map(usize::from) else {
        return;
    };
    let merge = |old: u8| (old & !mask) | (tos & mask);
    match lay.l3 {
        L3Kind::Ipv4 => {
            if let (Some(&vihl), Some(&old)) = (d.get(l3), d.get(l3 + 1)) {
                ipv4_put(d, l3, 0, [vihl, merge(old)]);
            }
        }
        L3Kind::Ipv6 => {
            if let (Some(&b0), Some(&b1)) = (d.get(l3), d.get(l3 + 1)) {
                let t = merge((b0 << 4) | (b1 >> 4));
                put(d, l3, &[(b0 & 0xf0) | (t >> 4), (b1 & 0x0f) | (t << 4)]);
            }
        }
        _ => {}
    }
}

/// Writes the 20-bit flow label of an IPv6 header (the traffic class's low
/// nibble beside it stays).
fn set_ipv6_label(d: &mut [u8], label: u32) {
    let Ok((_, lay)) = extract(d, 0) else {
        return;
    };
    if lay.l3 != L3Kind::Ipv6 {
        return;
    }
    let Some(l3) = lay.l3_ofs.map(usize::from) else {
        return;
    };
    if let Some(&b1) = d.get(l3 + 1) {
        let [_, hi, mid, lo] = (label & 0xf_ffff).to_be_bytes();
        put(d, l3 + 1, &[(b1 & 0xf0) | hi, mid, lo]);
    }
}

fn set_ttl(d: &mut [u8], ttl: u8) {
    let Ok((_, lay)) = extract(d, 0) else {
        return;
    };
    let Some(l3) = lay.l3_ofs.map(usize::from) else {
        return;
    };
    match lay.l3 {
        L3Kind::Ipv4 => {
            if let Some(&proto) = d.get(l3 + 9) {
                ipv4_put(d, l3, 8, [ttl, proto]);
            }
        }
        L3Kind::Ipv6 => {
            put(d, l3 + 7, &[ttl]);
        }
        _ => {}
    }
}

fn set_port(d: &mut [u8], field: usize, port: u16, partial: bool) {
    let Ok((_, lay)) = extract(d, 0) else {
        return;
    };
    let Some(l4) = lay.l4_ofs.map(usize::from) else {
        return;
    };
    let Some(old) = get16(d, l4 + field) else {
        return;
    };
    let new = port.to_be_bytes();
    match lay.l4 {
        L4Kind::Tcp | L4Kind::Udp => {
            put(d, l4 + field, &new);
            if !partial
                && let Some(at) = l4_csum_offset(&lay)
                && let Some(c) = get16(d, at)
                && !(lay.l4 == L4Kind::Udp && c == 0)
            {
                let mut n = adjust(c, &old.to_be_bytes(), &new, false);
                if lay.l4 == L4Kind::Udp && n == 0 {
                    n = 0xffff;
                }
                put(d, at, &n.to_be_bytes());
            }
        }
        L4Kind::Sctp => {
            put(d, l4 + field, &new);
            if !partial && let Some(crc) = sctp_checksum(d, &lay) {
                put(d, l4 + 8, &crc.to_le_bytes());
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::VLAN_CFI;

    /// Ethernet + IPv4 + UDP frame with valid checksums (UDP checksum `udp_csum` if false → 0).
    fn ipv4_udp(with_udp_csum: bool) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        let payload = b"ferrovs!";
        let tot = (20 + 8 + payload.len()) as u16;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 192, 168, 0, 1, 192, 168, 0, 199,
        ];
        ip[2..4].copy_from_slice(&tot.to_be_bytes());
        let c = ipv4_header_checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 16, 0, 0]);
        f.extend_from_slice(payload);
        if with_udp_csum {
            let (_, lay) = extract(&f, 0).unwrap();
            assert!(complete_l4_checksum(&mut f, &lay));
        }
        f
    }

    fn field16(f: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([f[at], f[at + 1]])
    }

    #[test]
    fn push_then_pop_vlan_round_trips_the_frame() {
        let orig = ipv4_udp(true);
        let mut b = VecFrame::new(&orig, 8);
        apply(
            &mut b,
            &DpAction::PushVlan {
                tpid: 0x8100,
                tci: 0x2064 | VLAN_CFI,
            },
            false,
        )
        .unwrap();
        let d = b.data();
        assert_eq!(d.len(), orig.len() + 4);
        assert_eq!(d[..12], orig[..12]);
        assert_eq!(d[12..16], [0x81, 0x00, 0x20, 0x64]);
        assert_eq!(d[16..], orig[12..]);
        let (k, _) = extract(d, 0).unwrap();
        assert_eq!(k.vlan_tci, 0x2064 | VLAN_CFI);
        apply(&mut b, &DpAction::PopVlan, false).unwrap();
        assert_eq!(b.data(), &orig[..]);
    }

    #[test]
    fn push_vlan_without_headroom_is_an_error_and_leaves_frame_alone() {
        let orig = ipv4_udp(true);
        let mut b = VecFrame::new(&orig, 2);
        assert_eq!(
            apply(
                &mut b,
                &DpAction::PushVlan {
                    tpid: 0x8100,
                    tci: 1
                },
                false
            ),
            Err(RewriteError::NoHeadroom(4))
        );
        assert_eq!(b.data(), &orig[..]);
    }

    #[test]
    fn set_vid_and_pcp_edit_only_their_bits_of_the_outer_tag() {
        let mut b = VecFrame::new(&ipv4_udp(true), 4);
        apply(
            &mut b,
            &DpAction::PushVlan {
                tpid: 0x88a8,
                tci: 0xe00a,
            },
            false,
        )
        .unwrap();
        apply(&mut b, &DpAction::SetVlanVid(0x123), false).unwrap();
        assert_eq!(field16(b.data(), 14), 0xe123);
        apply(&mut b, &DpAction::SetVlanPcp(2), false).unwrap();
        assert_eq!(field16(b.data(), 14), 0x4123);
    }

    #[test]
    fn vlan_edits_on_untagged_frame_and_pop_on_untagged_frame_are_noops() {
        let orig = ipv4_udp(true);
        let mut b = VecFrame::new(&orig, 4);
        for a in [
            DpAction::SetVlanVid(5),
            DpAction::SetVlanPcp(3),
            DpAction::PopVlan,
        ] {
            apply(&mut b, &a, false).unwrap();
        }
        assert_eq!(b.data(), &orig[..]);
    }

    #[test]
    fn arp_rewrites_turn_a_request_into_a_reply() {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&[0, 0, 0, 0, 0, 1, 10, 0, 0, 1]);
        f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        let mut b = VecFrame::new(&f, 0);
        for a in [
            DpAction::SetArpOp(2),
            DpAction::SetArpSha([0, 0, 0, 0, 1, 2]),
            DpAction::SetArpSpa(0x0a00_0002),
            DpAction::SetArpTha([0, 0, 0, 0, 0, 1]),
            DpAction::SetArpTpa(0x0a00_0001),
        ] {
            apply(&mut b, &a, false).unwrap();
        }
        let (k, _) = extract(b.data(), 0).unwrap();
        assert_eq!(
            (k.nw_proto, k.arp_sha, k.nw_src, k.arp_tha, k.nw_dst),
            (
                2,
                [0, 0, 0, 0, 1, 2],
                0x0a00_0002,
                [0, 0, 0, 0, 0, 1],
                0x0a00_0001
            )
        );
        // Not ARP: untouched.
        let orig = ipv4_udp(true);
        let mut b = VecFrame::new(&orig, 0);
        apply(&mut b, &DpAction::SetArpOp(2), false).unwrap();
        assert_eq!(b.data(), &orig[..]);
    }

    #[test]
    fn icmp_type_rewrite_turns_an_echo_request_into_a_reply_with_a_valid_checksum() {
        // Ethernet + IPv4 (no options) + ICMP echo request, checksummed.
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        let mut icmp = vec![8u8, 0, 0, 0, 0x12, 0x34, 0, 1];
        let sum = |b: &[u8]| -> u16 {
            let mut s: u32 = b
                .chunks(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
                .sum();
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            !(s as u16)
        };
        let c = sum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&icmp);
        let mut b = VecFrame::new(&f, 0);
        apply(&mut b, &DpAction::SetIcmpType(0), false).unwrap();
        let d = b.data();
        let (k, _) = extract(d, 0).unwrap();
        assert_eq!((k.tp_src, k.tp_dst), (0, 0));
        // A valid checksum sums (with itself) to zero.
        assert_eq!(sum(&d[34..42]), 0);
    }

    #[test]
    fn output_is_not_a_rewrite() {
        let mut b = VecFrame::new(&ipv4_udp(true), 0);
        assert!(matches!(
            apply(&mut b, &DpAction::Output(1), false),
            Err(RewriteError::NotARewrite(_))
        ));
    }

    #[test]
    fn ipv4_rewrite_keeps_ip_and_udp_checksums_valid() {
        let mut b = VecFrame::new(&ipv4_udp(true), 0);
        apply(&mut b, &DpAction::SetIpv4Src(0x0a01_0203), false).unwrap();
        apply(&mut b, &DpAction::SetTpDst(8080), false).unwrap();
        apply(&mut b, &DpAction::SetIpTtl(3), false).unwrap();
        apply(
            &mut b,
            &DpAction::SetIpTos {
                tos: 0x2e,
                mask: 0xff,
            },
            false,
        )
        .unwrap();
        let d = b.data();
        let (k, lay) = extract(d, 0).unwrap();
        assert_eq!(
            (k.nw_src, k.tp_dst, k.nw_ttl, k.nw_tos),
            (0x0a01_0203, 8080, 3, 0x2e)
        );
        assert_eq!(field16(d, 24), ipv4_header_checksum(&d[14..34]));
        assert_eq!(field16(d, 40), l4_checksum_full(d, &lay).unwrap());
    }

    #[test]
    fn the_ipv6_flow_label_is_rewritten_beside_the_traffic_class_and_checksums_stay() {
        // IPv6 UDP: traffic class 0xab, flow label 0x54321, payload "hi".
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xdd];
        f.extend_from_slice(&[0x6a, 0xb5, 0x43, 0x21, 0, 10, 17, 64]);
        f.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 10, 0, 0, b'h', b'i']);
        let (_, lay) = extract(&f, 0).unwrap();
        let csum = l4_checksum_full(&f, &lay).unwrap();
        f[60..62].copy_from_slice(&csum.to_be_bytes());
        let mut b = VecFrame::new(&f, 0);
        apply(&mut b, &DpAction::SetIpv6Label(0xf_edcb), false).unwrap();
        let d = b.data();
        let (k, lay) = extract(d, 0).unwrap();
        assert_eq!((k.ipv6_label, k.nw_tos), (0xf_edcb, 0xab));
        // The label is outside the pseudo-header: the UDP checksum holds.
        assert_eq!(field16(d, 60), l4_checksum_full(d, &lay).unwrap());
        assert_eq!(&d[..15], &f[..15]);
        // A DSCP-only rewrite keeps the ECN bits and the label.
        let dscp = DpAction::SetIpTos {
            tos: 0x08,
            mask: 0xfc,
        };
        apply(&mut b, &dscp, false).unwrap();
        let (k, _) = extract(b.data(), 0).unwrap();
        assert_eq!((k.nw_tos, k.ipv6_label), (0x0b, 0xf_edcb));
    }

    #[test]
    fn a_masked_tos_rewrite_keeps_the_other_bits_and_the_ip_checksum() {
        let mut b = VecFrame::new(&ipv4_udp(true), 0);
        let all = DpAction::SetIpTos {
            tos: 0x03,
            mask: 0xff,
        };
        apply(&mut b, &all, false).unwrap();
        let dscp = DpAction::SetIpTos {
            tos: 0x28,
            mask: 0xfc,
        };
        apply(&mut b, &dscp, false).unwrap();
        let d = b.data();
        let (k, _) = extract(d, 0).unwrap();
        assert_eq!(k.nw_tos, 0x2b);
        assert_eq!(field16(d, 24), ipv4_header_checksum(&d[14..34]));
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        let mut b = VecFrame::new(&ipv4_udp(false), 0);
        apply(&mut b, &DpAction::SetIpv4Dst(0x0a00_0009), false).unwrap();
        apply(&mut b, &DpAction::SetTpSrc(1), false).unwrap();
        assert_eq!(field16(b.data(), 40), 0);
    }

    #[test]
    fn partial_checksum_is_updated_as_a_plain_pseudo_header_sum() {
        let mut f = ipv4_udp(false);
        let (_, lay) = extract(&f, 0).unwrap();
        let ph = pseudo_header_sum(&f, &lay).unwrap();
        f[40..42].copy_from_slice(&ph.to_be_bytes());
        let mut b = VecFrame::new(&f, 0);
        apply(&mut b, &DpAction::SetIpv4Src(0xc0a8_0a0b), true).unwrap();
        apply(&mut b, &DpAction::SetTpSrc(999), true).unwrap();
        let d = b.data().to_vec();
        let (_, lay) = extract(&d, 0).unwrap();
        // The field is the pseudo-header sum of the new addresses.
        assert_eq!(field16(&d, 40), pseudo_header_sum(&d, &lay).unwrap());
        // Completing it the way a NIC does gives the from-scratch checksum.
        let completed = !ones_complement_sum(&d[34..]);
        assert_eq!(completed, l4_checksum_full(&d, &lay).unwrap());
    }

    #[test]
    fn rewrites_on_frames_without_the_header_are_noops() {
        let arp = {
            let mut f = vec![0xff; 6];
            f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
            f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
            f.extend_from_slice(&[0; 20]);
            f
        };
        let mut b = VecFrame::new(&arp, 0);
        for a in [
            DpAction::SetIpv4Src(1),
            DpAction::SetIpv6Dst([1; 16]),
            DpAction::SetIpv6Label(0x12345),
            DpAction::SetTpDst(2),
            DpAction::SetIpTtl(1),
            DpAction::SetIpTos { tos: 4, mask: 0xff },
        ] {
            apply(&mut b, &a, false).unwrap();
        }
        assert_eq!(b.data(), &arp[..]);
        let mut tiny = VecFrame::new(&[1, 2, 3], 8);
        apply(
            &mut tiny,
            &DpAction::PushVlan {
                tpid: 0x8100,
                tci: 1,
            },
            false,
        )
        .unwrap();
        apply(&mut tiny, &DpAction::SetEthSrc([9; 6]), false).unwrap();
        assert_eq!(tiny.data(), &[1, 2, 3]);
    }
}
