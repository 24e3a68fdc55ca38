//! NAT through the FTP helper: rewriting the address an FTP control
//! message announces (`PORT`, `227`, `EPRT`) to the one its receiver must
//! use, and shifting TCP sequence numbers by the change in length.
//!
//! OVS's userspace conntrack is the spec (`lib/conntrack.c`): the address
//! text is replaced whenever the `ct` action has `nat`, the change in
//! length is added to a per-connection skew, and every later packet of the
//! control connection has its sequence number (the direction that was
//! rewritten) or its acknowledgement (the other direction) shifted. Unlike
//! OVS, which keeps one skew and its direction, a skew is kept per
//! direction, so rewrites in both directions add up correctly.
//!
//! These functions work on a frame in a buffer that may be longer than the
//! frame (room to grow); they never panic on hostile input.

use std::net::IpAddr;

use flows::packet::{
    complete_l4_checksum, ipv4_header_checksum, l4_csum_offset, pseudo_header_sum,
};
use flows::parse::{L3Kind, Layout};

/// Largest IP packet a rewrite may grow a packet to, unless it was already
/// larger (the common Ethernet MTU: the switch does not know the egress
/// port's MTU here, and a control message never needs more).
pub const ALG_MTU: usize = 1500;

/// Why a payload rewrite was not done (the packet is left as it was).
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum SpliceError {
    #[error("the rewritten packet would exceed the MTU or the buffer")]
    TooBig,
    #[error("the span is not inside the packet's L4 payload")]
    OutOfBounds,
}

/// The text of an announced address as an FTP message writes it: IPv4 as
/// `h1,h2,h3,h4`, IPv6 in its usual compressed form.
pub(crate) fn addr_text(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v) => {
            let o = v.octets();
            format!("{},{},{},{}", o[0], o[1], o[2], o[3])
        }
        IpAddr::V6(v) => v.to_string(),
    }
}

/// Replaces `old_len` bytes at frame offset `at` (inside the L4 payload of
/// the frame `buf[..*len]`) by `text`: the rest of the packet moves, the
/// IP length field (and the IPv4 header checksum) follow, Ethernet padding
/// is dropped, and `*len` and `lay.l3_end` take the new size. Returns the
/// change in length. The L4 checksum is left to [`finish_l4_checksum`].
pub(crate) fn splice(
    buf: &mut [u8],
    len: &mut usize,
    lay: &mut Layout,
    at: usize,
    old_len: usize,
    text: &[u8],
) -> Result<i32, SpliceError> {
    let (Some(l3), Some(l4)) = (lay.l3_ofs.map(usize::from), lay.l4_ofs.map(usize::from)) else {
        return Err(SpliceError::OutOfBounds);
    };
    let end = lay.l3_end as usize;
    let doff = buf.get(l4 + 12).map_or(0, |b| usize::from(b >> 4) * 4);
    let old_end = at.checked_add(old_len).ok_or(SpliceError::OutOfBounds)?;
    if doff < 20 || at < l4 + doff || old_end > end || end > *len || end > buf.len() {
        return Err(SpliceError::OutOfBounds);
    }
    let ip_len = end - l3;
    let new_ip_len = (ip_len + text.len())
        .checked_sub(old_len)
        .ok_or(SpliceError::OutOfBounds)?;
    let new_end = l3 + new_ip_len;
    if (new_ip_len > ip_len && new_ip_len > ALG_MTU) || new_end > buf.len() || new_ip_len > 65535 {
        return Err(SpliceError::TooBig);
    }
    buf.copy_within(old_end..end, at + text.len());
    buf[at..at + text.len()].copy_from_slice(text);
    match lay.l3 {
        L3Kind::Ipv4 => {
            buf[l3 + 2..l3 + 4].copy_from_slice(&(new_ip_len as u16).to_be_bytes());
            let ihl = usize::from(buf[l3] & 0x0f) * 4;
            if let Some(hdr) = buf.get(l3..l3 + ihl) {
                let c = ipv4_header_checksum(hdr);
                buf[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
            }
        }
        L3Kind::Ipv6 => {
            let plen = new_ip_len.saturating_sub(40) as u16;
            buf[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
        }
        _ => return Err(SpliceError::OutOfBounds),
    }
    *len = new_end;
    lay.l3_end = new_end as u32;
    Ok(new_ip_len as i32 - ip_len as i32)
}

/// Adds `seq_add` to the TCP sequence number and subtracts `ack_sub` from
/// the acknowledgement number (both modulo 2^32) of the TCP header at `l4`.
pub(crate) fn shift_seq(frame: &mut [u8], l4: usize, seq_add: i32, ack_sub: i32) {
    let mut shift = |at: usize, by: i32| {
        if let Some(f) = frame.get_mut(at..at + 4) {
            let v = u32::from_be_bytes([f[0], f[1], f[2], f[3]]).wrapping_add(by as u32);
            f.copy_from_slice(&v.to_be_bytes());
        }
    };
    if seq_add != 0 {
        shift(l4 + 4, seq_add);
    }
    if ack_sub != 0 {
        shift(l4 + 8, ack_sub.wrapping_neg());
    }
}

/// Recomputes the TCP checksum after a rewrite: in full, or, for a frame
/// whose checksum a later stage completes (`partial`), the pseudo-header
/// sum it must carry.
pub(crate) fn finish_l4_checksum(frame: &mut [u8], lay: &Layout, partial: bool) {
    if partial {
        let sum = pseudo_header_sum(frame, lay);
        let at = l4_csum_offset(lay);
        if let (Some(sum), Some(f)) = (sum, at.and_then(|a| frame.get_mut(a..a + 2))) {
            f.copy_from_slice(&sum.to_be_bytes());
        }
    } else {
        complete_l4_checksum(frame, lay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flows::packet::l4_checksum_full;
    use flows::parse::extract;

    /// An Ethernet/IPv4/TCP frame 10.0.0.1:40000 -> 10.0.0.2:21 carrying
    /// `data`, with valid checksums, followed by `room` spare bytes.
    fn tcp_frame(data: &[u8], room: usize) -> (Vec<u8>, usize) {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
        let tot = (40 + data.len()) as u16;
        f.extend_from_slice(&[0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0]);
        f[16..18].copy_from_slice(&tot.to_be_bytes());
        f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&21u16.to_be_bytes());
        f.extend_from_slice(&0xffff_fff0u32.to_be_bytes());
        f.extend_from_slice(&5u32.to_be_bytes());
        f.extend_from_slice(&[0x50, 0x18, 0xfa, 0xf0, 0, 0, 0, 0]);
        f.extend_from_slice(data);
        let c = ipv4_header_checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        let (_, lay) = extract(&f, 0).unwrap();
        complete_l4_checksum(&mut f, &lay);
        let len = f.len();
        f.resize(len + room, 0);
        (f, len)
    }

    fn checks_ok(f: &[u8]) -> bool {
        let (_, lay) = extract(f, 0).unwrap();
        let csum = u16::from_be_bytes([f[50], f[51]]);
        ipv4_header_checksum(&f[14..34]) == u16::from_be_bytes([f[24], f[25]])
            && l4_checksum_full(f, &lay) == Some(csum)
    }

    #[test]
    fn a_port_address_rewritten_longer_moves_the_rest_and_fixes_lengths_and_checksums() {
        let msg = b"PORT 10,0,0,1,156,64\r\n";
        let (mut buf, mut len) = tcp_frame(msg, 64);
        let (_, mut lay) = extract(&buf[..len], 0).unwrap();
        let text = addr_text("192.168.100.200".parse().unwrap());
        let d = splice(&mut buf, &mut len, &mut lay, 54 + 5, 8, text.as_bytes()).unwrap();
        assert_eq!(d, text.len() as i32 - 8);
        finish_l4_checksum(&mut buf[..len], &lay, false);
        let f = &buf[..len];
        assert_eq!(&f[54..], b"PORT 192,168,100,200,156,64\r\n");
        assert_eq!(u16::from_be_bytes([f[16], f[17]]) as usize, len - 14);
        assert!(checks_ok(f));
        // And shorter again.
        let (_, mut lay) = extract(f, 0).unwrap();
        let d = splice(&mut buf, &mut len, &mut lay, 59, text.len(), b"1,2,3,4").unwrap();
        assert_eq!(d, 7 - text.len() as i32);
        finish_l4_checksum(&mut buf[..len], &lay, false);
        assert_eq!(&buf[54..len], b"PORT 1,2,3,4,156,64\r\n");
        assert!(checks_ok(&buf[..len]));
    }

    #[test]
    fn a_rewrite_past_the_mtu_or_the_buffer_is_refused_and_leaves_the_packet_alone() {
        // An IP packet of exactly 1500 bytes: any growth exceeds the MTU.
        let mut msg = b"PORT 1,2,3,4,4,1\r\n".to_vec();
        msg.resize(1500 - 40, b' ');
        let (mut buf, mut len) = tcp_frame(&msg, 64);
        let before = buf.clone();
        let (_, mut lay) = extract(&buf[..len], 0).unwrap();
        let lay0 = lay;
        assert_eq!(
            splice(&mut buf, &mut len, &mut lay, 59, 7, b"100,100,100,100"),
            Err(SpliceError::TooBig)
        );
        assert_eq!((buf.as_slice(), lay), (before.as_slice(), lay0));
        // Shrinking is fine.
        assert_eq!(
            splice(&mut buf, &mut len, &mut lay, 59, 7, b"1,2,3,"),
            Ok(-1)
        );
        // No room in the buffer.
        let (mut buf, mut len) = tcp_frame(b"PORT 1,2,3,4,4,1\r\n", 0);
        let (_, mut lay) = extract(&buf[..len], 0).unwrap();
        assert_eq!(
            splice(&mut buf, &mut len, &mut lay, 59, 7, b"100,100,100,100"),
            Err(SpliceError::TooBig)
        );
        // Spans outside the payload, or overflowing.
        for (at, n) in [(20, 4), (59, 1000), (usize::MAX - 2, 8), (40, 0)] {
            assert_eq!(
                splice(&mut buf, &mut len, &mut lay, at, n, b"x"),
                Err(SpliceError::OutOfBounds),
                "{at} {n}"
            );
        }
    }

    #[test]
    fn sequence_shifts_wrap_around_and_go_both_ways() {
        let (mut f, _) = tcp_frame(b"", 0);
        shift_seq(&mut f, 34, 0x20, -3);
        assert_eq!(&f[38..42], &0x10u32.to_be_bytes());
        assert_eq!(&f[42..46], &8u32.to_be_bytes());
        shift_seq(&mut f, 34, -0x20, 3);
        assert_eq!(&f[38..42], &0xffff_fff0u32.to_be_bytes());
        assert_eq!(&f[42..46], &5u32.to_be_bytes());
        // A truncated header is left alone.
        let mut short = f[..40].to_vec();
        shift_seq(&mut short, 34, 1, 1);
        assert_eq!(short, f[..40]);
    }

    #[test]
    fn a_partial_checksum_frame_gets_the_new_pseudo_header_sum() {
        let (mut buf, mut len) = tcp_frame(b"PORT 1,2,3,4,4,1\r\n", 16);
        let (_, mut lay) = extract(&buf[..len], 0).unwrap();
        splice(&mut buf, &mut len, &mut lay, 59, 7, b"10,20,30,40").unwrap();
        finish_l4_checksum(&mut buf[..len], &lay, true);
        let f = &buf[..len];
        assert_eq!(
            u16::from_be_bytes([f[50], f[51]]),
            pseudo_header_sum(f, &lay).unwrap()
        );
    }
}
