//! The checks behind the flows fuzz target, as plain functions so that unit
//! tests can run them on stable without libFuzzer.

use flows::dpaction::DpAction;
use flows::key::{FlowKey, ipproto};
use flows::packet::{
    FrameBuf, VecFrame, apply, ipv4_header_checksum, l4_checksum_full, l4_csum_offset,
};
use flows::parse::{L3Kind, L4Kind, Layout, extract, extract_into};

/// Bytes of headroom given to the frame: room for two VLAN pushes, so a
/// third one reaches the no-headroom error.
const HEADROOM: usize = 8;

/// Reads choices from the fuzz input; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take())
    }
}

fn action(b: &mut Bytes) -> DpAction {
    match b.u8() % 17 {
        0 => DpAction::PushVlan {
            tpid: if b.u8() & 1 == 0 { 0x8100 } else { 0x88a8 },
            tci: b.u16(),
        },
        1 => DpAction::PopVlan,
        2 => DpAction::SetVlanVid(b.u16()),
        3 => DpAction::SetVlanPcp(b.u8()),
        4 => DpAction::SetEthSrc(b.take()),
        5 => DpAction::SetEthDst(b.take()),
        6 => DpAction::SetIpv4Src(u32::from_be_bytes(b.take())),
        7 => DpAction::SetIpv4Dst(u32::from_be_bytes(b.take())),
        8 => DpAction::SetIpv6Src(b.take()),
        9 => DpAction::SetIpv6Dst(b.take()),
        10 => DpAction::SetIpTos {
            tos: b.u8(),
            mask: b.u8(),
        },
        11 => DpAction::SetIpTtl(b.u8()),
        12 => DpAction::SetTpSrc(b.u16()),
        13 => DpAction::PushMpls {
            ethertype: if b.u8() & 1 == 0 { 0x8847 } else { 0x8848 },
            lse: u32::from_be_bytes(b.take()),
        },
        14 => DpAction::PopMpls(b.u16()),
        15 => DpAction::SetMpls(u32::from_be_bytes(b.take())),
        _ => DpAction::SetTpDst(b.u16()),
    }
}

fn be16(frame: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?))
}

/// Whether the frame's IPv4 header checksum is right.
fn ipv4_csum_ok(frame: &[u8], lay: &Layout) -> Option<bool> {
    if lay.l3 != L3Kind::Ipv4 {
        return None;
    }
    let l3 = usize::from(lay.l3_ofs?);
    let ihl = usize::from(frame.get(l3)? & 0x0f) * 4;
    let hdr = frame.get(l3..l3 + ihl)?;
    Some(be16(hdr, 10)? == ipv4_header_checksum(hdr))
}

/// Whether the frame's TCP/UDP/ICMP/ICMPv6 checksum is right (`None` when
/// it has none to check, including UDP's "no checksum" zero).
fn l4_csum_ok(frame: &[u8], lay: &Layout) -> Option<bool> {
    if !matches!(
        lay.l4,
        L4Kind::Tcp | L4Kind::Udp | L4Kind::Icmp | L4Kind::Icmpv6
    ) {
        return None;
    }
    let stored = be16(frame, l4_csum_offset(lay)?)?;
    if lay.l4 == L4Kind::Udp && stored == 0 {
        return None;
    }
    Some(stored == l4_checksum_full(frame, lay)?)
}

/// Checks the offsets of a parsed frame against its length.
fn assert_layout_in_frame(frame: &[u8], lay: &Layout) {
    let len = frame.len();
    assert!(usize::from(lay.l2_len) <= len, "{lay:?} for {len} bytes");
    assert!(lay.l3_ofs.is_none_or(|o| usize::from(o) <= len), "{lay:?}");
    assert!(lay.l4_ofs.is_none_or(|o| usize::from(o) <= len), "{lay:?}");
    assert!(lay.l3_end as usize <= len, "{lay:?} for {len} bytes");
    assert!(usize::from(lay.n_vlans) <= 2);
}

/// Packet parsing and rewriting: the first byte is an in_port and the
/// number of actions (0..=7), their parameters follow, the rest is the
/// frame. Extraction must not panic, its offsets must lie in the frame,
/// `extract_into` must reset a dirty key; each rewrite must not panic, and a
/// rewrite of an IP address, TOS, TTL or L4 port must keep a correct IPv4
/// header checksum and a correct L4 checksum correct.
pub fn packet(data: &[u8]) {
    let mut b = Bytes(data);
    let first = b.u8();
    let actions: Vec<DpAction> = (0..first % 8).map(|_| action(&mut b)).collect();
    let in_port = u32::from(first >> 3);
    let mut frame = VecFrame::new(b.0, HEADROOM);

    let parsed = extract(frame.data(), in_port);
    let mut dirty = FlowKey::all_ones();
    let again = extract_into(frame.data(), in_port, &mut dirty);
    match (&parsed, &again) {
        (Ok((key, lay)), Ok(lay2)) => {
            assert_eq!(*key, dirty, "extract_into left stale fields");
            assert_eq!(lay, lay2);
            assert_eq!(key.in_port, in_port);
            assert_layout_in_frame(frame.data(), lay);
        }
        (Err(e), Err(e2)) => assert_eq!(e, e2),
        _ => panic!("extract {parsed:?} but extract_into {again:?}"),
    }

    for act in &actions {
        let before = extract(frame.data(), in_port).ok();
        let ip_ok = before
            .as_ref()
            .and_then(|(_, l)| ipv4_csum_ok(frame.data(), l));
        let l4_ok = before
            .as_ref()
            .and_then(|(_, l)| l4_csum_ok(frame.data(), l));
        let orig = frame.data().to_vec();
        let pushed = apply(&mut frame, act, false).is_ok();
        if let (DpAction::PushMpls { .. }, true) = (act, pushed) {
            // pop_mpls back to the ethertype the push covered (after the
            // MACs and up to two VLAN tags) restores the frame exactly.
            let mut o = 12;
            while o < 20 && matches!(be16(&orig, o), Some(0x8100 | 0x88a8)) {
                o += 4;
            }
            if let Some(t) = be16(&orig, o) {
                let mut copy = VecFrame::new(frame.data(), 0);
                let _ = apply(&mut copy, &DpAction::PopMpls(t), false);
                assert_eq!(copy.data(), &orig[..], "push_mpls then pop_mpls");
            }
        }
        let keeps_l2 = !matches!(
            act,
            DpAction::PushVlan { .. }
                | DpAction::PopVlan
                | DpAction::PushMpls { .. }
                | DpAction::PopMpls(_)
        );
        if !keeps_l2 || before.is_none() {
            continue;
        }
        let Ok((key, lay)) = extract(frame.data(), in_port) else {
            panic!("{act:?} made a parsable frame unparsable");
        };
        if ip_ok == Some(true) {
            assert_eq!(
                ipv4_csum_ok(frame.data(), &lay),
                Some(true),
                "{act:?} broke the IPv4 checksum"
            );
        }
        // ICMPv4's checksum covers no addresses; the others' pseudo-header does.
        if l4_ok == Some(true) && !(lay.l4 == L4Kind::Icmp && key.nw_proto != ipproto::ICMP) {
            assert_eq!(
                l4_csum_ok(frame.data(), &lay),
                Some(true),
                "{act:?} broke the L4 checksum"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(seed: u64, count: usize, max_len: usize) -> Vec<Vec<u8>> {
        let mut x = seed;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..count)
            .map(|_| {
                let len = (next() as usize) % max_len;
                (0..len).map(|_| next() as u8).collect()
            })
            .collect()
    }

    /// An Ethernet + IPv4 + UDP frame with correct checksums.
    fn udp_frame() -> Vec<u8> {
        let mut f = vec![
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00, // Ethernet
            0x45, 0, 0, 32, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, // IPv4
            0x12, 0x34, 0x00, 0x35, 0, 12, 0, 0, // UDP
            1, 2, 3, 4, // payload
        ];
        let csum = ipv4_header_checksum(&f[14..34]);
        f[24..26].copy_from_slice(&csum.to_be_bytes());
        let (_, lay) = extract(&f, 0).unwrap();
        let l4 = l4_checksum_full(&f, &lay).unwrap();
        f[40..42].copy_from_slice(&l4.to_be_bytes());
        f
    }

    #[test]
    fn rewrites_of_a_valid_udp_frame_keep_its_checksums() {
        let frame = udp_frame();
        let (_, lay) = extract(&frame, 0).unwrap();
        assert_eq!(ipv4_csum_ok(&frame, &lay), Some(true));
        assert_eq!(l4_csum_ok(&frame, &lay), Some(true));
        // Every action kind, in turn, with as many parameter bytes as it
        // reads, so the frame that follows is the valid one.
        let params = [3, 0, 2, 1, 6, 6, 4, 4, 16, 16, 2, 1, 2, 5, 2, 4, 2];
        for (kind, &n) in params.iter().enumerate() {
            let mut data = vec![1, kind as u8];
            data.extend((0..n).map(|i| 0xa5u8.wrapping_mul(i + 3)));
            data.extend_from_slice(&frame);
            let mut b = Bytes(&data[1..]);
            action(&mut b);
            assert_eq!(b.0, &frame[..], "action {kind} reads {n} bytes");
            packet(&data);
        }
    }

    #[test]
    fn the_checksum_checks_see_a_broken_checksum() {
        let mut frame = udp_frame();
        frame[41] ^= 1;
        let (_, lay) = extract(&frame, 0).unwrap();
        assert_eq!(l4_csum_ok(&frame, &lay), Some(false));
        frame[25] ^= 1;
        assert_eq!(ipv4_csum_ok(&frame, &lay), Some(false));
    }

    #[test]
    fn packet_survives_pseudo_random_frames() {
        for data in inputs(0x9e37_79b9_7f4a_7c15, 5000, 120) {
            packet(&data);
        }
        // Random bytes behind a valid header reach the deeper parsers.
        let frame = udp_frame();
        for (i, tail) in inputs(11, 5000, 60).into_iter().enumerate() {
            let mut data = vec![(i % 8) as u8];
            data.extend_from_slice(&tail[..tail.len().min(24)]);
            let mut f = frame.clone();
            let cut = (i * 7) % f.len();
            f.truncate(cut.max(14));
            f.extend_from_slice(&tail);
            data.extend_from_slice(&f);
            packet(&data);
        }
    }
}
