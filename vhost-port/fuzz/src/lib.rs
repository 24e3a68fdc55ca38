//! The checks behind the vhost-port fuzz target, as plain functions so that
//! unit tests can run them on stable without libFuzzer.

use std::num::Wrapping;

use datapath::packet::{MAX_FRAME, Offload, PacketBatch};
use vhost_port::features::{
    F_VERSION_1, NET_F_CSUM, NET_F_HOST_TSO4, NET_F_MRG_RXBUF, Negotiated, RING_F_EVENT_IDX,
    RING_F_INDIRECT_DESC,
};
use vhost_port::guest_rx::{Pending, SendOutcome, publish, send_to_guest};
use vhost_port::guest_tx::{RxOutcome, receive_from_guest};
use vhost_port::ring::{GuestMem, RingView, Vring};
use vhost_port::ring_packed::{PackedRing, WRAP};
use vm_memory::{Bytes, GuestAddress};

/// Guest memory: a 64 KiB region at 0 and a 4 KiB one after a hole, so
/// buffers can straddle regions or fall in the hole.
const LOW: (u64, usize) = (0, 0x1_0000);
const HIGH: (u64, usize) = (0x2_0000, 0x1000);
/// Where the rings live, close to the start of the image so that short
/// inputs reach them: the descriptor table at 0, the available ring at
/// 0x100 and the used ring at 0x200. Rings of more than 16 entries overlap
/// (a driver may do that; the device must cope).
const AVAIL: u64 = 0x100;
const USED: u64 = 0x200;

fn guest_memory(image: &[u8], avail_idx: Option<u16>) -> GuestMem {
    let mem =
        GuestMem::from_ranges(&[(GuestAddress(LOW.0), LOW.1), (GuestAddress(HIGH.0), HIGH.1)])
            .expect("guest memory");
    let n = image.len().min(LOW.1);
    mem.write_slice(&image[..n], GuestAddress(0))
        .expect("image fits");
    if let Some(idx) = avail_idx {
        mem.write_obj(idx, GuestAddress(AVAIL + 2))
            .expect("avail ring in memory");
    }
    mem
}

fn used_idx(mem: &GuestMem) -> u16 {
    mem.read_obj(GuestAddress(USED + 2))
        .expect("used ring in memory")
}

/// The settings taken from the first five input bytes.
struct Setup {
    neg: Negotiated,
    ring: RingView,
    frame_len: usize,
    /// The driver's available index to store over the image's, if any.
    avail_idx: Option<u16>,
}

fn setup(head: [u8; 5]) -> Setup {
    let [feat, size, start, avail, len] = head;
    let bits = [
        NET_F_MRG_RXBUF,
        RING_F_INDIRECT_DESC,
        RING_F_EVENT_IDX,
        NET_F_CSUM,
        NET_F_HOST_TSO4,
        F_VERSION_1,
    ];
    let features = bits
        .iter()
        .enumerate()
        .filter(|(i, _)| feat & (1 << i) != 0)
        .fold(0, |acc, (_, b)| acc | b);
    let ring = RingView {
        desc: 0,
        avail: AVAIL,
        used: USED,
        // 1..=64, and now and then a size that validation must refuse.
        size: if size & 0x80 != 0 {
            u16::from(size & 0x7f)
        } else {
            1 << (size % 7)
        },
        event_idx: features & RING_F_EVENT_IDX != 0,
        next_avail: Wrapping(u16::from(start)),
        next_used: Wrapping(u16::from(start)),
    };
    // Mostly a plausible index (0..=127 chains past the start), so that
    // short inputs get chains walked; with the top bit set, whatever the
    // image holds (often an index jump the ring must refuse).
    let avail_idx = (avail & 0x80 == 0).then(|| u16::from(start).wrapping_add(u16::from(avail)));
    Setup {
        neg: Negotiated::from_bits(features),
        ring,
        frame_len: usize::from(len) * 8 + 14,
        avail_idx,
    }
}

/// Descriptor walks over guest memory from the fuzzer: the first five bytes
/// choose the negotiated features, the ring size, the starting indices, the
/// driver's available index and a frame length; the rest is the guest memory image from address 0
/// (descriptor table at 0, available ring at 0x100, used ring at 0x200,
/// buffers anywhere). On a ring that validates, draining it as the guest's
/// transmit queue and filling it as its receive queue must not panic; a
/// drain returns every chain it took (each one delivered or counted as an
/// error) and publishes exactly those; frames are within size limits.
pub fn descriptors(data: &[u8]) {
    let Some((head, image)) = data.split_first_chunk::<5>() else {
        return;
    };
    let Setup {
        neg,
        ring,
        frame_len,
        avail_idx,
    } = setup(*head);
    let mem = guest_memory(image, avail_idx);
    if ring.validate(&mem).is_err() {
        return;
    }

    // Guest → switch.
    let used_before = used_idx(&mem);
    if let Some((rx, out)) = drain(&mem, ring, &neg) {
        let taken = (rx.next_avail - ring.next_avail).0;
        assert_eq!(
            (rx.next_used - ring.next_used).0,
            taken,
            "every chain taken is returned"
        );
        assert_eq!(out.delivered as u64 + out.errors, u64::from(taken));
        if taken > 0 {
            assert_eq!(used_idx(&mem), rx.next_used.0, "used index published");
        } else {
            assert_eq!(used_idx(&mem), used_before);
        }
    }

    // Switch → guest, on a fresh copy of the same memory.
    let mem = guest_memory(image, avail_idx);
    let frame: Vec<u8> = (0..frame_len).map(|i| i as u8).collect();
    let Some((tx, written, published)) = fill(&mem, ring, &neg, &frame) else {
        return;
    };
    if published {
        assert_eq!((tx.next_used - ring.next_used).0, written);
        assert!((tx.next_avail - ring.next_avail).0 >= written || neg.mrg_rxbuf);
    }

    // The same image as a packed ring: descriptors at 0, the driver event
    // area where the available ring was, the device's where the used one.
    let start = ring.next_avail.0 | if head[3] & 1 == 0 { WRAP } else { 0 };
    let mut packed = PackedRing::new(0, AVAIL, USED, ring.size, ring.event_idx);
    packed.set_marks(start, start);
    packed_descriptors(image, avail_idx, packed, &neg, &frame);
}

/// Drains `ring` as the guest's transmit queue into port 3, on either ring
/// layout, and checks what it delivered: one packet a delivered chain, each
/// within frame size limits and from port 3. Returns the ring after the
/// drain and its outcome, `None` where the drain met a ring error.
fn drain<R: Vring>(mem: &GuestMem, ring: R, neg: &Negotiated) -> Option<(R, RxOutcome)> {
    let mut rx = ring;
    let mut batch = PacketBatch::new();
    let mut out = RxOutcome::default();
    receive_from_guest(mem, &mut rx, neg, &mut batch, 3, &mut out).ok()?;
    assert_eq!(batch.len(), out.delivered);
    for p in batch.packets() {
        assert!(
            (14..=MAX_FRAME).contains(&p.len()),
            "frame of {} bytes",
            p.len()
        );
        assert_eq!(p.in_port, 3);
    }
    Some((rx, out))
}

/// Fills `ring` as the guest's receive queue with `frame` three times, on
/// either ring layout (every frame sent takes at least one buffer), and
/// publishes. Returns the ring after, the used elements written and whether
/// the publication succeeded; `None` where a send met a ring error.
fn fill<R: Vring>(
    mem: &GuestMem,
    ring: R,
    neg: &Negotiated,
    frame: &[u8],
) -> Option<(R, u16, bool)> {
    let mut tx = ring;
    let mut pending = Pending::default();
    for _ in 0..3 {
        match send_to_guest(mem, &mut tx, neg, frame, &Offload::default(), &mut pending) {
            Ok(SendOutcome::Sent { buffers }) => assert!(buffers >= 1),
            Ok(SendOutcome::NoRoom | SendOutcome::BadChain(_)) => {}
            Err(_) => return None,
        }
    }
    let written = pending.used;
    let published = publish(mem, &mut tx, &mut pending).is_ok();
    Some((tx, written, published))
}

/// [`descriptors`] on a packed ring: draining and filling never panic, a
/// drain or a publication that succeeds leaves the used position where the
/// available one is (every chain taken was returned), frames are within
/// size limits.
fn packed_descriptors(
    image: &[u8],
    avail_idx: Option<u16>,
    ring: PackedRing,
    neg: &Negotiated,
    frame: &[u8],
) {
    let mem = guest_memory(image, avail_idx);
    if ring.validate(&mem).is_err() {
        return;
    }
    if let Some((rx, _)) = drain(&mem, ring, neg) {
        assert_eq!(rx.next_used, rx.next_avail, "every chain taken is returned");
    }
    let mem = guest_memory(image, avail_idx);
    if let Some((tx, _, true)) = fill(&mem, ring, neg, frame) {
        assert_eq!(tx.next_used, tx.next_avail);
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

    /// A memory image with one chain of `descs` (addr, len, flags) made
    /// available at slot 0, on a ring of 4.
    fn image(descs: &[(u64, u32, u16)]) -> Vec<u8> {
        let mut img = vec![0u8; 0x800];
        for (i, &(addr, len, flags)) in descs.iter().enumerate() {
            let at = i * 16;
            let next = if i + 1 < descs.len() { 1 } else { 0 };
            img[at..at + 8].copy_from_slice(&addr.to_le_bytes());
            img[at + 8..at + 12].copy_from_slice(&len.to_le_bytes());
            img[at + 12..at + 14].copy_from_slice(&(flags | next).to_le_bytes());
            img[at + 14..at + 16].copy_from_slice(&((i + 1) as u16).to_le_bytes());
        }
        let avail = AVAIL as usize;
        img[avail + 2..avail + 4].copy_from_slice(&1u16.to_le_bytes()); // idx 1
        img
    }

    #[test]
    fn a_well_formed_chain_is_delivered_and_returned() {
        // VERSION_1 (12-byte header), ring of 4: header+frame in two buffers.
        let mut data = vec![1 << 5, 2, 0, 0x80, 0];
        data.extend(image(&[(0x1000, 12, 0), (0x2000, 60, 0)]));
        let Setup { neg, ring, .. } = setup(data[..5].try_into().unwrap());
        let mem = guest_memory(&data[5..], None);
        let mut rx = ring;
        let mut batch = PacketBatch::new();
        let mut out = RxOutcome::default();
        receive_from_guest(&mem, &mut rx, &neg, &mut batch, 3, &mut out).unwrap();
        assert_eq!((out.delivered, out.errors), (1, 0));
        assert_eq!(batch.packets()[0].len(), 60);
        descriptors(&data);
    }

    #[test]
    fn a_short_input_reaches_a_chain_through_the_header_avail_index() {
        // Header: VERSION_1, ring of 4, start 0, one chain available; then
        // descriptor 0 only (the available ring's slot 0 is zero: head 0).
        let mut data = vec![1 << 5, 2, 0, 1, 0];
        data.extend_from_slice(&0x1000u64.to_le_bytes());
        data.extend_from_slice(&72u32.to_le_bytes());
        data.extend_from_slice(&[0, 0, 0, 0]);
        let Setup {
            neg,
            ring,
            avail_idx,
            ..
        } = setup(data[..5].try_into().unwrap());
        let mem = guest_memory(&data[5..], avail_idx);
        let mut rx = ring;
        let mut batch = PacketBatch::new();
        let mut out = RxOutcome::default();
        receive_from_guest(&mem, &mut rx, &neg, &mut batch, 3, &mut out).unwrap();
        assert_eq!((out.delivered, out.errors), (1, 0));
        descriptors(&data);
    }

    #[test]
    fn chains_outside_memory_or_looping_are_refused_and_returned() {
        for descs in [
            vec![(0x1_8000, 100, 0)],     // in the hole
            vec![(0xfff0, 0x100, 0)],     // runs off the low region
            vec![(u64::MAX - 4, 100, 0)], // wraps around
            vec![(0x1000, 12, 4)],        // indirect, not negotiated
            vec![(0x1000, 72, 2)],        // device-writable on transmit
        ] {
            let mut data = vec![1 << 5, 2, 0, 0x80, 0];
            data.extend(image(&descs));
            let Setup { neg, ring, .. } = setup(data[..5].try_into().unwrap());
            let mem = guest_memory(&data[5..], None);
            let mut rx = ring;
            let mut batch = PacketBatch::new();
            let mut out = RxOutcome::default();
            receive_from_guest(&mem, &mut rx, &neg, &mut batch, 3, &mut out).unwrap();
            assert_eq!((out.delivered, out.errors), (0, 1), "{descs:?}");
            assert_eq!(used_idx(&mem), 1);
            descriptors(&data);
        }
        // A loop: descriptor 1 points back to 0.
        let mut data = vec![1 << 5, 2, 0, 0x80, 0];
        let mut img = image(&[(0x1000, 12, 0), (0x2000, 60, 0)]);
        img[16 + 12..16 + 14].copy_from_slice(&1u16.to_le_bytes());
        img[16 + 14..16 + 16].copy_from_slice(&0u16.to_le_bytes());
        data.extend(img);
        descriptors(&data);
    }

    #[test]
    fn a_well_formed_packed_chain_is_delivered_and_returned() {
        // Ring of 4 at slot 0, wrap counter set: header+frame in two
        // descriptors (NEXT on the first), both marked available, id 0.
        let mut img = vec![0u8; 0x800];
        for (i, (addr, len)) in [(0x1000u64, 12u32), (0x2000, 60)].iter().enumerate() {
            let at = i * 16;
            let flags: u16 = (1 << 7) | if i == 0 { 1 } else { 0 };
            img[at..at + 8].copy_from_slice(&addr.to_le_bytes());
            img[at + 8..at + 12].copy_from_slice(&len.to_le_bytes());
            img[at + 14..at + 16].copy_from_slice(&flags.to_le_bytes());
        }
        let neg = Negotiated::from_bits(F_VERSION_1 | (1 << 34));
        let mem = guest_memory(&img, None);
        let mut rx = PackedRing::new(0, AVAIL, USED, 4, false);
        let mut batch = PacketBatch::new();
        let mut out = RxOutcome::default();
        receive_from_guest(&mem, &mut rx, &neg, &mut batch, 3, &mut out).unwrap();
        assert_eq!((out.delivered, out.errors), (1, 0));
        assert_eq!(batch.packets()[0].len(), 60);
        assert_eq!(rx.next_used, WRAP | 2);
        let mut data = vec![1 << 5, 2, 0, 0x80, 0];
        data.extend(img);
        descriptors(&data);
    }

    #[test]
    fn descriptors_survive_pseudo_random_memory() {
        for data in inputs(0x9e37_79b9_7f4a_7c15, 1500, 0x700) {
            descriptors(&data);
        }
        // Mostly-valid images: random descriptors over a ring with chains available.
        for (i, mut data) in inputs(5, 1500, 0x700).into_iter().enumerate() {
            if data.len() < 5 + AVAIL as usize + 4 {
                continue;
            }
            data[1] = (i % 7) as u8;
            let avail = 5 + AVAIL as usize;
            data[avail + 2] = (i % 9) as u8;
            data[avail + 3] = 0;
            data[2] = 0;
            data[3] = 0x80;
            descriptors(&data);
        }
    }
}
