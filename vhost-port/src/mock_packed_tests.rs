//! Data-path tests of the packed ring layout against a mock driver that
//! lays out packed descriptors (with its own wrap counters) in guest
//! memory, no VM involved: the same receive and send paths as the split
//! ring's tests in [`crate::mock_tests`].

use std::collections::HashMap;

use datapath::packet::{Offload, PacketBatch};
use vm_memory::{Bytes, GuestAddress};

use crate::features::{
    F_IN_ORDER, F_RING_PACKED, F_VERSION_1, NET_F_MRG_RXBUF, Negotiated, RING_F_EVENT_IDX,
    RING_F_INDIRECT_DESC,
};
use crate::guest_rx::{self, Pending, SendOutcome};
use crate::mock_tests::{MEM_SIZE, drain, frame, hdr, hdr_and_frame, mem, neg};
use crate::ring::{ChainError, FastMem, GuestMem, RingError, Vring};
use crate::ring_packed::{
    DESC_F_AVAIL, DESC_F_USED, EVENT_DESC, EVENT_DISABLE, EVENT_ENABLE, PackedHead, PackedRing,
    WRAP,
};

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const F_INDIRECT: u16 = 4;
const PDESC: u64 = 0xa_0000;
const PDRIVER: u64 = 0xb_0000;
const PDEVICE: u64 = 0xb_0010;

/// A driver of a packed ring: fills descriptors at its avail position and
/// reads used descriptors at its used position, each with its wrap counter.
struct PDriver<'a> {
    mem: &'a GuestMem,
    size: u16,
    slot: u16,
    wrap: bool,
    used_slot: u16,
    used_wrap: bool,
    next_id: u16,
    /// Descriptors in the chain of each buffer id in flight.
    chain_len: HashMap<u16, u16>,
}

impl<'a> PDriver<'a> {
    fn new(mem: &'a GuestMem, size: u16) -> Self {
        mem.write_slice(&vec![0u8; 16 * usize::from(size)], GuestAddress(PDESC))
            .unwrap();
        mem.write_slice(&[0u8; 32], GuestAddress(PDRIVER)).unwrap();
        PDriver {
            mem,
            size,
            slot: 0,
            wrap: true,
            used_slot: 0,
            used_wrap: true,
            next_id: 0,
            chain_len: HashMap::new(),
        }
    }

    fn ring(&self, event_idx: bool) -> PackedRing {
        PackedRing::new(PDESC, PDRIVER, PDEVICE, self.size, event_idx)
    }

    fn desc_at(slot: u16) -> GuestAddress {
        GuestAddress(PDESC + 16 * u64::from(slot))
    }

    fn write_desc(&self, slot: u16, addr: u64, len: u32, id: u16) {
        let at = Self::desc_at(slot);
        self.mem.write_obj(addr, at).unwrap();
        self.mem.write_obj(len, GuestAddress(at.0 + 8)).unwrap();
        self.mem.write_obj(id, GuestAddress(at.0 + 12)).unwrap();
    }

    fn write_flags(&self, slot: u16, flags: u16) {
        self.mem
            .write_obj(flags, GuestAddress(Self::desc_at(slot).0 + 14))
            .unwrap();
    }

    fn avail_bits(wrap: bool) -> u16 {
        if wrap { DESC_F_AVAIL } else { DESC_F_USED }
    }

    /// Posts a chain (NEXT added between entries) under a fresh id.
    fn post(&mut self, descs: &[(u64, u32, u16)]) -> u16 {
        let id = self.next_id;
        self.next_id = (self.next_id + 1) % self.size;
        self.post_raw(descs, id, true, &[]);
        id
    }

    /// Posts `descs` under buffer id `id`: with `link`, NEXT joins them;
    /// entries listed in `wrong_avail` get the opposite avail bits. The
    /// first descriptor's flags are written last, as drivers do.
    fn post_raw(&mut self, descs: &[(u64, u32, u16)], id: u16, link: bool, wrong_avail: &[usize]) {
        let first = (self.slot, self.wrap);
        let mut first_flags = 0;
        for (i, &(addr, len, flags)) in descs.iter().enumerate() {
            let last = i + 1 == descs.len();
            let mut f = flags | Self::avail_bits(self.wrap ^ wrong_avail.contains(&i));
            if link && !last {
                f |= F_NEXT;
            }
            self.write_desc(self.slot, addr, len, id);
            if i == 0 {
                first_flags = f;
            } else {
                self.write_flags(self.slot, f);
            }
            self.slot += 1;
            if self.slot == self.size {
                self.slot = 0;
                self.wrap = !self.wrap;
            }
        }
        self.chain_len.insert(id, descs.len() as u16);
        self.write_flags(first.0, first_flags);
    }

    /// The next used descriptor (id, len), if the device wrote it.
    fn used(&mut self) -> Option<(u16, u32)> {
        let at = Self::desc_at(self.used_slot);
        let flags: u16 = self.mem.read_obj(GuestAddress(at.0 + 14)).unwrap();
        let (a, u) = (flags & DESC_F_AVAIL != 0, flags & DESC_F_USED != 0);
        if a != self.used_wrap || u != self.used_wrap {
            return None;
        }
        let len: u32 = self.mem.read_obj(GuestAddress(at.0 + 8)).unwrap();
        let id: u16 = self.mem.read_obj(GuestAddress(at.0 + 12)).unwrap();
        let n = self.chain_len.remove(&id).expect("used id was in flight");
        for _ in 0..n {
            self.used_slot += 1;
            if self.used_slot == self.size {
                self.used_slot = 0;
                self.used_wrap = !self.used_wrap;
            }
        }
        Some((id, len))
    }

    fn all_used(&mut self) -> Vec<(u16, u32)> {
        std::iter::from_fn(|| self.used()).collect()
    }

    fn set_driver_event(&self, flags: u16, off_wrap: u16) {
        self.mem.write_obj(off_wrap, GuestAddress(PDRIVER)).unwrap();
        self.mem
            .write_obj(flags, GuestAddress(PDRIVER + 2))
            .unwrap();
    }

    fn write(&self, addr: u64, data: &[u8]) {
        self.mem.write_slice(data, GuestAddress(addr)).unwrap();
    }

    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }
}

fn send(
    d: &PDriver,
    ring: &mut PackedRing,
    n: &Negotiated,
    data: &[u8],
    pending: &mut Pending<PackedHead>,
) -> SendOutcome {
    guest_rx::send_to_guest(d.mem, ring, n, data, &Offload::default(), pending).unwrap()
}

/// Runs `round` `rounds` times on `ring` (with the round's number) and
/// returns in how many rounds the available wrap counter flipped.
fn wrap_flips(
    ring: &mut PackedRing,
    rounds: u8,
    mut round: impl FnMut(&mut PackedRing, u8),
) -> u32 {
    let mut flips = 0;
    for r in 0..rounds {
        let before = ring.next_avail & WRAP;
        round(ring, r);
        if ring.next_avail & WRAP != before {
            flips += 1;
        }
    }
    flips
}

/// Posts the good one-buffer chain `(addr, len)` (a frame behind its
/// header) after refused ones: it is delivered and returned, nothing else.
fn next_good_chain_flows(d: &mut PDriver, ring: &mut PackedRing, n: &Negotiated, good: (u64, u32)) {
    let id = d.post(&[(good.0, good.1, 0)]);
    let mut batch = PacketBatch::new();
    let (out, r) = drain(d.mem, ring, n, &mut batch);
    r.unwrap();
    assert_eq!((out.delivered, out.errors), (1, 0));
    assert_eq!(d.all_used(), vec![(id, 0)]);
}

fn packed(bits: u64) -> Negotiated {
    neg(F_VERSION_1 | F_RING_PACKED | bits)
}

#[test]
fn packed_transmit_ring_wraps_many_times_with_chains_and_indirect_tables_and_returns_every_id() {
    let m = mem();
    let mut d = PDriver::new(&m, 8);
    let n = packed(RING_F_INDIRECT_DESC);
    assert!(n.packed);
    let mut ring = d.ring(false);
    let flips = wrap_flips(&mut ring, 40, |ring, round| {
        // One descriptor: header and frame.
        let f1 = frame(60, round);
        let mut b1 = hdr(&Offload::default()).to_vec();
        b1.extend_from_slice(&f1);
        d.write(0x1_0000, &b1);
        let id1 = d.post(&[(0x1_0000, b1.len() as u32, 0)]);
        // Three descriptors: header, then the frame in two parts.
        let f2 = frame(1000, round.wrapping_add(1));
        d.write(0x2_0000, &hdr(&Offload::default()));
        d.write(0x2_1000, &f2[..300]);
        d.write(0x2_2000, &f2[300..]);
        let id2 = d.post(&[(0x2_0000, 12, 0), (0x2_1000, 300, 0), (0x2_2000, 700, 0)]);
        // An indirect table of two entries (header, frame).
        let f3 = frame(100, round.wrapping_add(2));
        d.write(0x3_0000, &hdr(&Offload::default()));
        d.write(0x3_1000, &f3);
        for (i, (addr, len)) in [(0x3_0000u64, 12u32), (0x3_1000, 100)].iter().enumerate() {
            let at = GuestAddress(0x4_0000 + 16 * i as u64);
            m.write_obj(*addr, at).unwrap();
            m.write_obj(*len, GuestAddress(at.0 + 8)).unwrap();
            m.write_obj(0u32, GuestAddress(at.0 + 12)).unwrap();
        }
        let id3 = d.post(&[(0x4_0000, 32, F_INDIRECT)]);

        let mut batch = PacketBatch::new();
        let (out, r) = drain(d.mem, ring, &n, &mut batch);
        r.unwrap();
        assert_eq!((out.delivered, out.errors), (3, 0), "round {round}");
        let p = batch.packets();
        assert_eq!(p[0].data(), &f1[..]);
        assert_eq!(p[1].data(), &f2[..]);
        assert_eq!(p[2].data(), &f3[..]);
        assert_eq!(d.all_used(), vec![(id1, 0), (id2, 0), (id3, 0)]);
        assert_eq!(ring.next_used, ring.next_avail);
    });
    // 40 rounds of 5 descriptors on a ring of 8: 25 laps.
    assert!(flips >= 24, "the wrap counter flipped {flips} times");
}

#[test]
fn packed_in_order_still_returns_a_used_descriptor_per_chain() {
    let m = mem();
    let mut d = PDriver::new(&m, 16);
    let n = packed(F_IN_ORDER);
    let b = hdr_and_frame(60, 3);
    d.write(0x1_0000, &b);
    let ids: Vec<u16> = (0..5)
        .map(|_| d.post(&[(0x1_0000, b.len() as u32, 0)]))
        .collect();
    let mut ring = d.ring(false);
    let mut batch = PacketBatch::new();
    let (out, r) = drain(d.mem, &mut ring, &n, &mut batch);
    r.unwrap();
    assert_eq!(out.delivered, 5);
    let used: Vec<u16> = d.all_used().into_iter().map(|(id, _)| id).collect();
    assert_eq!(used, ids);
}

#[test]
fn packed_receive_ring_wraps_many_times_with_mrg_rxbuf_and_num_buffers_is_right() {
    let m = mem();
    let mut d = PDriver::new(&m, 8);
    let n = packed(NET_F_MRG_RXBUF);
    let mut ring = d.ring(false);
    let flips = wrap_flips(&mut ring, 30, |ring, round| {
        let bufs = [0x1_0000u64, 0x2_0000, 0x3_0000, 0x4_0000];
        let ids: Vec<u16> = bufs
            .iter()
            .map(|&a| d.post(&[(a, 1024, F_WRITE)]))
            .collect();
        let mut pending = Pending::default();
        let frames = [
            frame(600, round),
            frame(1500, round ^ 0x55),
            frame(100, !round),
        ];
        let want = [1u16, 2, 1];
        for (f, &nb) in frames.iter().zip(&want) {
            assert_eq!(
                send(&d, ring, &n, f, &mut pending),
                SendOutcome::Sent { buffers: nb }
            );
        }
        guest_rx::publish(&m, ring, &mut pending).unwrap();
        let used = d.all_used();
        assert_eq!(
            used,
            vec![
                (ids[0], 612),
                (ids[1], 1024),
                (ids[2], 1512 - 1024),
                (ids[3], 112)
            ],
            "round {round}"
        );
        // Header num_buffers, then the data.
        assert_eq!(d.read(bufs[0] + 10, 2), 1u16.to_le_bytes());
        assert_eq!(d.read(bufs[0] + 12, 600), frames[0]);
        assert_eq!(d.read(bufs[1] + 10, 2), 2u16.to_le_bytes());
        let mut f2 = d.read(bufs[1] + 12, 1012);
        f2.extend(d.read(bufs[2], 1500 - 1012));
        assert_eq!(f2, frames[1]);
        assert_eq!(d.read(bufs[3] + 12, 100), frames[2]);
    });
    assert!(flips >= 14, "the wrap counter flipped {flips} times");
}

#[test]
fn packed_receive_without_mrg_rxbuf_fills_chains_and_leaves_too_small_ones() {
    let m = mem();
    let mut d = PDriver::new(&m, 8);
    let n = packed(0);
    let mut ring = d.ring(false);
    for round in 0..12u8 {
        let id = d.post(&[(0x1_0000, 12, F_WRITE), (0x2_0000, 1514, F_WRITE)]);
        let mut pending = Pending::default();
        let f = frame(1400, round);
        assert_eq!(
            send(&d, &mut ring, &n, &f, &mut pending),
            SendOutcome::Sent { buffers: 1 }
        );
        // No buffer left: the next frame is dropped, nothing taken.
        let mark = ring.next_avail;
        assert_eq!(
            send(&d, &mut ring, &n, &f, &mut pending),
            SendOutcome::NoRoom
        );
        assert_eq!(ring.next_avail, mark);
        guest_rx::publish(&m, &mut ring, &mut pending).unwrap();
        assert_eq!(d.all_used(), vec![(id, 1412)]);
        assert_eq!(d.read(0x2_0000, 1400), f);
    }
    // A chain too small for the frame stays available for a smaller one.
    let small = d.post(&[(0x1_0000, 100, F_WRITE)]);
    let mut pending = Pending::default();
    let mark = ring.next_avail;
    assert_eq!(
        send(&d, &mut ring, &n, &frame(500, 1), &mut pending),
        SendOutcome::NoRoom
    );
    assert_eq!(ring.next_avail, mark);
    assert_eq!(
        send(&d, &mut ring, &n, &frame(60, 1), &mut pending),
        SendOutcome::Sent { buffers: 1 }
    );
    guest_rx::publish(&m, &mut ring, &mut pending).unwrap();
    assert_eq!(d.all_used(), vec![(small, 72)]);
}

#[test]
fn hostile_packed_transmit_descriptors_are_refused_counted_returned_and_the_ring_goes_on() {
    let m = mem();
    let mut d = PDriver::new(&m, 32);
    let n = packed(RING_F_INDIRECT_DESC);
    let good = hdr_and_frame(64, 9);
    d.write(0x1_0000, &good);
    let glen = good.len() as u32;
    // Indirect tables: one holding an indirect entry, one of 0 bytes.
    m.write_obj(0x5_0000u64, GuestAddress(0x4_0000)).unwrap();
    m.write_obj(16u32, GuestAddress(0x4_0008)).unwrap();
    m.write_obj(u32::from(F_INDIRECT) << 16, GuestAddress(0x4_000c))
        .unwrap();
    let mut ids = Vec::new();
    let mut post = |d: &mut PDriver, descs: &[(u64, u32, u16)]| ids.push(d.post(descs));
    // Outside guest memory.
    post(&mut d, &[(MEM_SIZE as u64 + 0x1000, 100, 0)]);
    // Straddling the end of guest memory.
    post(&mut d, &[(MEM_SIZE as u64 - 10, 100, 0)]);
    // Wrapping past the top of the address space.
    post(&mut d, &[(u64::MAX - 10, 100, 0)]);
    // Zero length.
    post(&mut d, &[(0x1_0000, 0, 0)]);
    // Huge length.
    post(&mut d, &[(0x1_0000, 0xffff_0000, 0)]);
    // Device-writable buffer on the transmit queue.
    post(&mut d, &[(0x1_0000, glen, F_WRITE)]);
    // Indirect inside indirect.
    post(&mut d, &[(0x4_0000, 16, F_INDIRECT)]);
    // An indirect table of 0 bytes, and one of a length not a multiple of 16.
    post(&mut d, &[(0x4_0000, 0, F_INDIRECT)]);
    post(&mut d, &[(0x4_0000, 24, F_INDIRECT)]);
    // An indirect descriptor with NEXT.
    post(&mut d, &[(0x4_0000, 16, F_INDIRECT | F_NEXT)]);
    // An indirect descriptor in the middle of a chain.
    post(&mut d, &[(0x1_0000, 12, 0), (0x4_0000, 16, F_INDIRECT)]);
    let mut errors = 11;
    // A buffer id beyond the ring.
    d.post_raw(&[(0x1_0000, glen, 0)], 32 + 3, true, &[]);
    ids.push(35);
    errors += 1;
    // A chain whose second descriptor is not marked available.
    let id = d.next_id;
    d.next_id += 1;
    d.post_raw(
        &[(0x1_0000, 12, 0), (0x1_0000 + 12, glen - 12, 0)],
        id,
        true,
        &[1],
    );
    ids.push(id);
    errors += 1;
    // Then a good one.
    let good_id = d.post(&[(0x1_0000, glen, 0)]);
    ids.push(good_id);

    let mut ring = d.ring(false);
    let mut batch = PacketBatch::new();
    let (out, r) = drain(d.mem, &mut ring, &n, &mut batch);
    r.unwrap();
    assert_eq!(out.errors, errors);
    assert_eq!(out.delivered, 1);
    assert_eq!(batch.packets()[0].data(), &good[12..]);
    let used = d.all_used();
    assert_eq!(
        used.iter().map(|u| u.0).collect::<Vec<_>>(),
        ids,
        "every chain is returned to the driver, in order"
    );
    assert!(used.iter().all(|u| u.1 == 0));

    // Without INDIRECT_DESC, an indirect descriptor is refused too.
    let id = d.post(&[(0x4_0000, 16, F_INDIRECT)]);
    let n2 = packed(0);
    batch.clear();
    let (out, r) = drain(d.mem, &mut ring, &n2, &mut batch);
    r.unwrap();
    assert_eq!((out.delivered, out.errors), (0, 1));
    assert!(matches!(
        out.last_error,
        Some(ChainError::IndirectNotNegotiated)
    ));
    assert_eq!(d.all_used(), vec![(id, 0)]);

    // And the next good frame still flows.
    next_good_chain_flows(&mut d, &mut ring, &n, (0x1_0000, glen));
}

#[test]
fn the_packed_chain_errors_name_the_violation() {
    let m = mem();
    let n = packed(RING_F_INDIRECT_DESC);
    type Case = (Vec<(u64, u32, u16)>, u16, &'static [usize], ChainError);
    let cases: Vec<Case> = vec![
        (vec![(0x1_0000, 0, 0)], 0, &[], ChainError::ZeroLength),
        (vec![(0x1_0000, 100, 0)], 40, &[], ChainError::BadId(40)),
        (
            vec![(0x1_0000, 12, 0), (0x1_1000, 100, 0)],
            0,
            &[1],
            ChainError::NotAvailable(1),
        ),
        (
            vec![(0x1_0000, 100, F_WRITE)],
            0,
            &[],
            ChainError::WrongDirection(true),
        ),
        (
            vec![(0x4_0000, 16, F_INDIRECT | F_NEXT)],
            0,
            &[],
            ChainError::IndirectWithNext,
        ),
    ];
    for (descs, id, wrong, want) in cases {
        let mut d = PDriver::new(&m, 16);
        d.post_raw(&descs, id, true, wrong);
        let mut ring = d.ring(false);
        let mut batch = PacketBatch::new();
        let (out, r) = drain(d.mem, &mut ring, &n, &mut batch);
        r.unwrap();
        assert_eq!(out.last_error, Some(want));
    }
}

#[test]
fn a_packed_chain_that_never_ends_is_refused_after_one_lap_and_the_ring_goes_on() {
    let m = mem();
    let mut d = PDriver::new(&m, 8);
    let n = packed(0);
    // Every slot says NEXT: the chain would go round for ever.
    let descs = vec![(0x1_0000u64, 64u32, 0u16); 8];
    d.post_raw(&descs, 0, true, &[]);
    for s in 0..8 {
        let f: u16 = m.read_obj(GuestAddress(PDESC + 16 * s + 14)).unwrap();
        m.write_obj(f | F_NEXT, GuestAddress(PDESC + 16 * s + 14))
            .unwrap();
    }
    let mut ring = d.ring(false);
    let mut batch = PacketBatch::new();
    let (out, r) = drain(d.mem, &mut ring, &n, &mut batch);
    r.unwrap();
    assert_eq!((out.delivered, out.errors), (0, 1));
    assert_eq!(out.last_error, Some(ChainError::TooLong));
    assert_eq!(d.all_used(), vec![(0, 0)]);
    // One lap: back at slot 0 with the wrap counter flipped.
    assert_eq!(ring.next_avail, 0);

    let good = hdr_and_frame(64, 1);
    d.write(0x2_0000, &good);
    next_good_chain_flows(&mut d, &mut ring, &n, (0x2_0000, good.len() as u32));
}

#[test]
fn hostile_packed_receive_buffers_are_returned_empty_and_the_next_one_used() {
    let m = mem();
    let mut d = PDriver::new(&m, 16);
    let mut ring = d.ring(false);
    for n in [packed(0), packed(NET_F_MRG_RXBUF)] {
        let bad = [
            d.post(&[(0x1_0000, 2048, 0)]),
            d.post(&[(MEM_SIZE as u64 - 100, 2048, F_WRITE)]),
            d.post(&[(u64::MAX - 100, 2048, F_WRITE)]),
        ];
        let good = d.post(&[(0x2_0000, 2048, F_WRITE)]);
        let mut pending = Pending::default();
        let f = frame(200, 5);
        for _ in 0..3 {
            assert!(matches!(
                send(&d, &mut ring, &n, &f, &mut pending),
                SendOutcome::BadChain(_)
            ));
        }
        assert_eq!(
            send(&d, &mut ring, &n, &f, &mut pending),
            SendOutcome::Sent { buffers: 1 }
        );
        guest_rx::publish(&m, &mut ring, &mut pending).unwrap();
        assert_eq!(
            d.all_used(),
            vec![(bad[0], 0), (bad[1], 0), (bad[2], 0), (good, 212)]
        );
        assert_eq!(d.read(0x2_0000 + 12, 200), f);
    }
}

#[test]
fn packed_used_descriptors_appear_to_the_driver_only_when_the_batch_is_published() {
    let m = mem();
    let mut d = PDriver::new(&m, 16);
    let ids: Vec<u16> = (0..3).map(|_| d.post(&[(0x1_0000, 64, 0)])).collect();
    let mut ring = d.ring(false);
    let fm = FastMem::new(&m);
    assert_eq!(ring.pending(&fm, 16).unwrap(), 3);
    let heads: Vec<PackedHead> = (0..3).map(|_| ring.pop_head(&fm).unwrap()).collect();
    for (k, h) in heads.iter().enumerate() {
        assert_eq!(h.id, ids[k]);
        ring.write_used(&fm, k as u16, *h, 0).unwrap();
    }
    assert_eq!(
        d.used(),
        None,
        "the first element's flags wait for publication"
    );
    ring.publish_used(&fm, 3).unwrap();
    assert_eq!(
        d.all_used(),
        ids.iter().map(|&i| (i, 0)).collect::<Vec<_>>()
    );
    assert_eq!(ring.pending(&fm, 16).unwrap(), 0);
}

#[test]
fn a_retracted_packed_descriptor_is_a_ring_error() {
    let m = mem();
    let mut d = PDriver::new(&m, 16);
    d.post(&[(0x1_0000, 64, 0)]);
    let mut ring = d.ring(false);
    let fm = FastMem::new(&m);
    assert_eq!(ring.pending(&fm, 16).unwrap(), 1);
    d.write_flags(0, 0);
    assert_eq!(ring.pop_head(&fm), Err(RingError::DescRetracted(0)));
}

#[test]
fn packed_interrupts_follow_the_driver_event_suppression() {
    let m = mem();
    let mut d = PDriver::new(&m, 8);
    let n = packed(RING_F_EVENT_IDX);
    let mut ring = d.ring(true);
    let b = hdr_and_frame(60, 3);
    d.write(0x1_0000, &b);
    let round = |d: &mut PDriver, ring: &mut PackedRing, k: usize| {
        for _ in 0..k {
            d.post(&[(0x1_0000, b.len() as u32, 0)]);
        }
        let mut batch = PacketBatch::new();
        let (out, r) = drain(d.mem, ring, &n, &mut batch);
        r.unwrap();
        assert_eq!(out.delivered, k);
        d.all_used();
        out.interrupt
    };
    d.set_driver_event(EVENT_DISABLE, 0);
    assert!(!round(&mut d, &mut ring, 2));
    d.set_driver_event(EVENT_ENABLE, 0);
    assert!(round(&mut d, &mut ring, 2));
    // Used positions so far: 0..4 (wrap 1). Ask for slot 5: the next
    // batch of 3 (slots 4, 5, 6) passes it, the one after (7, 0, 1) not.
    d.set_driver_event(EVENT_DESC, 5 | WRAP);
    assert!(round(&mut d, &mut ring, 3));
    assert!(!round(&mut d, &mut ring, 3));
    // Slot 3 of the second lap (wrap counter 0): passed by slots 2, 3, 4.
    d.set_driver_event(EVENT_DESC, 3);
    assert!(round(&mut d, &mut ring, 3));
    // Without EVENT_IDX, DESC is not a valid request: interrupt.
    let mut ring2 = PackedRing {
        event_idx: false,
        ..ring
    };
    d.set_driver_event(EVENT_DESC, 0);
    assert!(round(&mut d, &mut ring2, 1));
}

#[test]
fn packed_ring_validation_refuses_misplaced_rings_and_kicks_are_suppressed() {
    let m = mem();
    let d = PDriver::new(&m, 16);
    let ring = d.ring(false);
    assert!(ring.validate(&m).is_ok());
    let bad = [
        PackedRing {
            desc: PDESC + 8,
            ..ring
        },
        PackedRing {
            desc: MEM_SIZE as u64 - 64,
            ..ring
        },
        PackedRing {
            driver: PDRIVER + 2,
            ..ring
        },
        PackedRing {
            device: MEM_SIZE as u64,
            ..ring
        },
        PackedRing {
            desc: u64::MAX - 15,
            ..ring
        },
    ];
    for r in bad {
        assert!(r.validate(&m).is_err(), "{r:?}");
    }
    assert!(matches!(
        PackedRing { size: 24, ..ring }.validate(&m),
        Err(RingError::BadSize(24))
    ));
    ring.suppress_kicks(&FastMem::new(&m)).unwrap();
    let f: u16 = m.read_obj(GuestAddress(PDEVICE + 2)).unwrap();
    assert_eq!(f, EVENT_DISABLE);
}

#[test]
fn packed_marks_keep_the_slot_inside_the_ring() {
    let d_mem = mem();
    let d = PDriver::new(&d_mem, 16);
    let mut ring = d.ring(false);
    ring.set_marks(0x7fff, 0x8000 | 0x7fff);
    assert_eq!(ring.next_avail, 15);
    assert_eq!(ring.next_used, WRAP | 15);
}

#[test]
fn a_bad_buffer_in_the_middle_of_a_packed_mrg_frame_returns_every_buffer_of_the_frame_empty() {
    let m = mem();
    let mut d = PDriver::new(&m, 8);
    let n = packed(NET_F_MRG_RXBUF);
    let mut ring = d.ring(false);
    let ids = [
        d.post(&[(0x1_0000, 1024, F_WRITE)]),
        d.post(&[(0x2_0000, 1024, 0)]),
        d.post(&[(0x3_0000, 2048, F_WRITE)]),
    ];
    let mut pending = Pending::default();
    assert!(matches!(
        send(&d, &mut ring, &n, &frame(1500, 1), &mut pending),
        SendOutcome::BadChain(ChainError::WrongDirection(false))
    ));
    let f = frame(1500, 2);
    assert_eq!(
        send(&d, &mut ring, &n, &f, &mut pending),
        SendOutcome::Sent { buffers: 1 }
    );
    guest_rx::publish(&m, &mut ring, &mut pending).unwrap();
    assert_eq!(d.all_used(), vec![(ids[0], 0), (ids[1], 0), (ids[2], 1512)]);
    assert_eq!(d.read(0x3_0000 + 12, 1500), f);
}
