//! Data-path tests against a mock driver (virtio-queue's `MockSplitQueue`
//! over a `GuestMemoryMmap`), no VM involved.

use std::num::Wrapping;

use datapath::packet::{Offload, Packet, PacketBatch};
use virtio_queue::desc::RawDescriptor;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Address, Bytes, GuestAddress};

use crate::features::{
    F_IN_ORDER, F_VERSION_1, NET_F_CSUM, NET_F_HOST_TSO4, NET_F_MRG_RXBUF, Negotiated,
    RING_F_EVENT_IDX, RING_F_INDIRECT_DESC,
};
use crate::guest_rx::{self, Pending, SendOutcome};
use crate::guest_tx::{RxOutcome, receive_from_guest};
use crate::ring::{ChainError, GuestMem, RingError, RingView, Vring};
use wire::vnet_hdr as net_hdr;

const QSIZE: u16 = 256;
pub(crate) const MEM_SIZE: usize = 0x10_0000;
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const F_INDIRECT: u16 = 4;

pub(crate) fn mem() -> GuestMem {
    GuestMem::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap()
}

// The mock lays its used ring over the end of its available ring (its
// `end()` counts elements as bytes), so only its descriptor table is used;
// the rings live at fixed addresses of their own.
const AVAIL: u64 = 0x8000;
const USED: u64 = 0x9000;

struct Driver<'a> {
    mem: &'a GuestMem,
    q: MockSplitQueue<'a, GuestMem>,
    next_desc: u16,
}

impl<'a> Driver<'a> {
    fn new(mem: &'a GuestMem) -> Self {
        Driver {
            mem,
            q: MockSplitQueue::create(mem, GuestAddress(0), QSIZE),
            next_desc: 0,
        }
    }

    fn view(&self, event_idx: bool) -> RingView {
        RingView {
            desc: self.q.desc_table_addr().0,
            avail: AVAIL,
            used: USED,
            size: QSIZE,
            event_idx,
            next_avail: Wrapping(0),
            next_used: Wrapping(0),
        }
    }

    /// Stores `descs` (addr, len, flags) as a chain and makes it available;
    /// NEXT links are added between consecutive entries.
    fn post(&mut self, descs: &[(u64, u32, u16)]) -> u16 {
        let head = self.next_desc;
        for (i, &(addr, len, flags)) in descs.iter().enumerate() {
            let idx = self.next_desc;
            let last = i + 1 == descs.len();
            let flags = if last { flags } else { flags | F_NEXT };
            self.store_desc(idx, addr, len, flags, idx + 1);
            self.next_desc += 1;
        }
        self.make_available(head);
        head
    }

    fn store_desc(&self, idx: u16, addr: u64, len: u32, flags: u16, next: u16) {
        self.q
            .desc_table()
            .store(
                idx,
                RawDescriptor::from(Descriptor::new(addr, len, flags, next)),
            )
            .unwrap();
    }

    fn make_available(&self, head: u16) {
        let a = GuestAddress(AVAIL);
        let idx: u16 = self.mem.read_obj(a.unchecked_add(2)).unwrap();
        let slot = u64::from(idx % QSIZE);
        self.mem
            .write_obj(head, a.unchecked_add(4 + 2 * slot))
            .unwrap();
        self.mem
            .write_obj(idx.wrapping_add(1), a.unchecked_add(2))
            .unwrap();
    }

    fn set_avail_idx(&self, idx: u16) {
        self.mem
            .write_obj(idx, GuestAddress(AVAIL).unchecked_add(2))
            .unwrap();
    }

    fn set_used_event(&self, v: u16) {
        let at = GuestAddress(AVAIL).unchecked_add(4 + 2 * u64::from(QSIZE));
        self.mem.write_obj(v, at).unwrap();
    }

    fn used_idx(&self) -> u16 {
        self.mem
            .read_obj(GuestAddress(USED).unchecked_add(2))
            .unwrap()
    }

    fn used(&self, i: u16) -> (u32, u32) {
        let at = GuestAddress(USED).unchecked_add(4 + 8 * u64::from(i % QSIZE));
        let id: u32 = self.mem.read_obj(at).unwrap();
        let len: u32 = self.mem.read_obj(at.unchecked_add(4)).unwrap();
        (id, len)
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

pub(crate) fn neg(bits: u64) -> Negotiated {
    Negotiated::from_bits(bits)
}

pub(crate) fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

pub(crate) fn hdr(off: &Offload) -> [u8; 12] {
    net_hdr::encode_mrg(off, 0)
}

/// `frame(len, seed)` behind a header without offload: a one-buffer chain's
/// bytes as the driver transmits them.
pub(crate) fn hdr_and_frame(len: usize, seed: u8) -> Vec<u8> {
    let mut b = hdr(&Offload::default()).to_vec();
    b.extend_from_slice(&frame(len, seed));
    b
}

/// Drains the guest's transmit ring (split or packed) into `batch` as port 7.
pub(crate) fn drain<R: Vring>(
    mem: &GuestMem,
    ring: &mut R,
    n: &Negotiated,
    batch: &mut PacketBatch,
) -> (RxOutcome, Result<(), RingError>) {
    let mut out = RxOutcome::default();
    let r = receive_from_guest(mem, ring, n, batch, 7, &mut out);
    (out, r)
}

#[test]
fn frames_posted_by_the_driver_come_out_of_rx_intact_with_offload_metadata() {
    let m = mem();
    let mut d = Driver::new(&m);
    let n = neg(F_VERSION_1 | NET_F_CSUM | NET_F_HOST_TSO4 | RING_F_INDIRECT_DESC);

    // 1: header and frame in one descriptor, partial checksum.
    let f1 = frame(60, 1);
    let off1 = Offload {
        flags: Offload::F_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 16,
        ..Default::default()
    };
    let mut b1 = hdr(&off1).to_vec();
    b1.extend_from_slice(&f1);
    d.write(0x1_0000, &b1);
    d.post(&[(0x1_0000, b1.len() as u32, 0)]);

    // 2: header alone, frame split over two descriptors, TSO request.
    let f2 = frame(3000, 2);
    let off2 = Offload {
        flags: Offload::F_NEEDS_CSUM,
        gso_type: Offload::GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    d.write(0x2_0000, &hdr(&off2));
    d.write(0x2_1000, &f2[..1000]);
    d.write(0x2_2000, &f2[1000..]);
    d.post(&[(0x2_0000, 12, 0), (0x2_1000, 1000, 0), (0x2_2000, 2000, 0)]);

    // 3: an indirect table holding header+frame in two descriptors.
    let f3 = frame(100, 3);
    d.write(0x3_0000, &hdr(&Offload::default()));
    d.write(0x3_1000, &f3);
    let table = [
        Descriptor::new(0x3_0000, 12, F_NEXT, 1),
        Descriptor::new(0x3_1000, 100, 0, 0),
    ];
    for (i, t) in table.iter().enumerate() {
        m.write_obj(
            RawDescriptor::from(*t),
            GuestAddress(0x4_0000 + 16 * i as u64),
        )
        .unwrap();
    }
    d.post(&[(0x4_0000, 32, F_INDIRECT)]);

    let mut view = d.view(false);
    let mut batch = PacketBatch::new();
    let (out, r) = drain(d.mem, &mut view, &n, &mut batch);
    r.unwrap();
    assert_eq!(out.delivered, 3);
    assert_eq!(out.errors, 0);
    let p = batch.packets();
    assert_eq!(p[0].data(), &f1[..]);
    assert_eq!(p[0].offload, off1);
    assert_eq!(p[0].in_port, 7);
    assert_eq!(p[1].data(), &f2[..]);
    assert_eq!(p[1].offload, off2);
    assert_eq!(p[2].data(), &f3[..]);
    assert!(p[2].offload.is_plain());
    // Every chain went back to the driver.
    assert_eq!(d.used_idx(), 3);
    assert_eq!(view.next_avail.0, 3);
    assert_eq!(d.used(1).0, 1);
}

#[test]
fn rx_takes_at_most_the_room_left_in_the_batch() {
    let m = mem();
    let mut d = Driver::new(&m);
    let n = neg(F_VERSION_1);
    let b = hdr_and_frame(60, 0);
    d.write(0x1_0000, &b);
    for _ in 0..40 {
        d.post(&[(0x1_0000, b.len() as u32, 0)]);
    }
    let mut view = d.view(false);
    let mut batch = PacketBatch::new();
    let (out, r) = drain(d.mem, &mut view, &n, &mut batch);
    r.unwrap();
    assert_eq!(out.delivered, 32);
    assert_eq!(d.used_idx(), 32);
    batch.clear();
    let (out, _) = drain(d.mem, &mut view, &n, &mut batch);
    assert_eq!(out.delivered, 8);
    assert_eq!(d.used_idx(), 40);
}

#[test]
fn malformed_chains_are_counted_returned_and_the_queue_keeps_working() {
    let m = mem();
    let mut d = Driver::new(&m);
    let n = neg(F_VERSION_1 | RING_F_INDIRECT_DESC);
    let good = hdr_and_frame(64, 9);
    d.write(0x1_0000, &good);

    // Outside guest memory.
    d.post(&[(MEM_SIZE as u64 + 0x1000, 100, 0)]);
    // Straddling the end of guest memory.
    d.post(&[(MEM_SIZE as u64 - 10, 100, 0)]);
    // A loop: a descriptor whose NEXT points to itself.
    let looped = d.next_desc;
    d.store_desc(looped, 0x1_0000, 20, F_NEXT, looped);
    d.next_desc += 1;
    d.make_available(looped);
    // Zero length.
    d.post(&[(0x1_0000, 0, 0)]);
    // Huge length.
    d.post(&[(0x1_0000, 0xffff_0000, 0)]);
    // Indirect inside indirect.
    m.write_obj(
        RawDescriptor::from(Descriptor::new(0x5_0000, 16, F_INDIRECT, 0)),
        GuestAddress(0x4_0000),
    )
    .unwrap();
    d.post(&[(0x4_0000, 16, F_INDIRECT)]);
    // Device-writable buffer on the transmit queue.
    d.post(&[(0x1_0000, good.len() as u32, F_WRITE)]);
    // Head index beyond the table inside a chain.
    let bad_next = d.next_desc;
    d.store_desc(bad_next, 0x1_0000, 20, F_NEXT, QSIZE + 5);
    d.next_desc += 1;
    d.make_available(bad_next);
    // Then a good one.
    d.post(&[(0x1_0000, good.len() as u32, 0)]);

    let mut view = d.view(false);
    let mut batch = PacketBatch::new();
    let (out, r) = drain(d.mem, &mut view, &n, &mut batch);
    r.unwrap();
    assert_eq!(out.errors, 8);
    assert_eq!(out.delivered, 1);
    assert_eq!(batch.packets()[0].data(), &good[12..]);
    assert_eq!(d.used_idx(), 9, "every chain is returned to the driver");
    for i in 0..8 {
        assert_eq!(d.used(i).1, 0);
    }

    // And the next good frame still flows.
    d.post(&[(0x1_0000, good.len() as u32, 0)]);
    batch.clear();
    let (out, r) = drain(d.mem, &mut view, &n, &mut batch);
    r.unwrap();
    assert_eq!((out.delivered, out.errors), (1, 0));
}

impl Driver<'_> {
    /// Fills used element `i` with a marker, to see whether it is written.
    fn mark_used(&self, i: u16) {
        let at = GuestAddress(USED).unchecked_add(4 + 8 * u64::from(i % QSIZE));
        self.mem.write_obj(0xdead_beef_u32, at).unwrap();
        self.mem
            .write_obj(0xdead_beef_u32, at.unchecked_add(4))
            .unwrap();
    }
}

#[test]
fn in_order_returns_a_transmit_batch_with_one_used_element_for_its_last_chain() {
    let m = mem();
    let mut d = Driver::new(&m);
    let n = neg(F_VERSION_1 | F_IN_ORDER);
    assert!(n.in_order);
    let good = hdr_and_frame(64, 4);
    d.write(0x1_0000, &good);
    for i in 0..8 {
        d.mark_used(i);
    }
    let mut heads = Vec::new();
    for _ in 0..5 {
        heads.push(d.post(&[(0x1_0000, good.len() as u32, 0)]));
    }
    let mut view = d.view(false);
    let mut batch = PacketBatch::new();
    let (out, r) = drain(d.mem, &mut view, &n, &mut batch);
    r.unwrap();
    assert_eq!((out.delivered, out.errors), (5, 0));
    assert_eq!(d.used_idx(), 5, "the used index covers the whole batch");
    assert_eq!(
        d.used(4),
        (u32::from(heads[4]), 0),
        "the last chain's element"
    );
    for i in 0..4 {
        assert_eq!(d.used(i), (0xdead_beef, 0xdead_beef), "element {i} skipped");
    }
    assert_eq!(d.used(5), (0xdead_beef, 0xdead_beef));
}

#[test]
fn in_order_still_refuses_and_counts_hostile_chains_and_returns_them_in_the_batch() {
    let m = mem();
    let mut d = Driver::new(&m);
    let n = neg(F_VERSION_1 | F_IN_ORDER);
    let good = hdr_and_frame(64, 6);
    d.write(0x1_0000, &good);
    d.post(&[(0x1_0000, good.len() as u32, 0)]);
    // Outside guest memory.
    d.post(&[(MEM_SIZE as u64 + 0x1000, 100, 0)]);
    // A self loop.
    let looped = d.next_desc;
    d.store_desc(looped, 0x1_0000, 20, F_NEXT, looped);
    d.next_desc += 1;
    d.make_available(looped);
    // Indirect, not negotiated.
    d.post(&[(0x4_0000, 16, F_INDIRECT)]);
    // Device-writable on the transmit queue.
    d.post(&[(0x1_0000, good.len() as u32, F_WRITE)]);
    // Next index beyond the table.
    let bad_next = d.next_desc;
    d.store_desc(bad_next, 0x1_0000, 20, F_NEXT, QSIZE + 5);
    d.next_desc += 1;
    d.make_available(bad_next);
    // The last chain of the batch is hostile too: zero length.
    let last = d.post(&[(0x1_0000, 0, 0)]);

    let mut view = d.view(false);
    let mut batch = PacketBatch::new();
    let (out, r) = drain(d.mem, &mut view, &n, &mut batch);
    r.unwrap();
    assert_eq!((out.delivered, out.errors), (1, 6));
    assert_eq!(out.last_error, Some(ChainError::ZeroLength));
    assert_eq!(batch.packets()[0].data(), &good[12..]);
    assert_eq!(d.used_idx(), 7, "refused chains are returned too");
    assert_eq!(d.used(6), (u32::from(last), 0));

    // A head beyond the ring is still a ring error.
    d.make_available(QSIZE + 1);
    batch.clear();
    let (_, r) = drain(d.mem, &mut view, &n, &mut batch);
    assert!(matches!(r, Err(RingError::HeadOutOfRange { .. })), "{r:?}");
}

#[test]
fn in_order_receive_buffers_each_get_their_length_and_one_index_update() {
    let m = mem();
    let mut d = Driver::new(&m);
    let n = neg(F_VERSION_1 | F_IN_ORDER);
    for i in 0..3u64 {
        d.post(&[(0x1_0000 + i * 0x1000, 2048, F_WRITE)]);
    }
    let mut view = d.view(false);
    let mut pending = Pending::default();
    for (i, len) in [60usize, 100, 200].into_iter().enumerate() {
        let pkt = Packet::from_bytes(&frame(len, i as u8));
        assert_eq!(
            send(&d, &mut view, &n, &pkt, &mut pending),
            SendOutcome::Sent { buffers: 1 }
        );
    }
    assert_eq!(d.used_idx(), 0, "nothing visible before the batch ends");
    guest_rx::publish(&m, &mut view, &mut pending).unwrap();
    assert_eq!(d.used_idx(), 3);
    // The driver reads each buffer's length: every element is written, in
    // the order the buffers were posted.
    assert_eq!(d.used(0), (0, 72));
    assert_eq!(d.used(1), (1, 112));
    assert_eq!(d.used(2), (2, 212));
}

#[test]
fn the_chain_errors_name_the_violation() {
    let m = mem();
    let mut d = Driver::new(&m);
    let n = neg(F_VERSION_1 | RING_F_INDIRECT_DESC);
    let mut view = d.view(false);
    let mut batch = PacketBatch::new();
    let mut check = |d: &mut Driver, descs: &[(u64, u32, u16)], want: fn(&ChainError) -> bool| {
        d.post(descs);
        let (out, r) = drain(d.mem, &mut view, &n, &mut batch);
        r.unwrap();
        let e = out.last_error.expect("an error");
        assert!(want(&e), "unexpected {e:?}");
    };
    check(&mut d, &[(0x1_0000, 0, 0)], |e| {
        matches!(e, ChainError::ZeroLength)
    });
    check(&mut d, &[(0x1_0000, 0x7fff_ffff, 0)], |e| {
        matches!(e, ChainError::TooBig(_))
    });
    check(&mut d, &[(MEM_SIZE as u64, 64, 0)], |e| {
        matches!(e, ChainError::OutOfMemory { .. })
    });
    check(&mut d, &[(0x1_0000, 17, F_INDIRECT)], |e| {
        matches!(e, ChainError::BadIndirectTable(17))
    });
    check(&mut d, &[(0x1_0000, 8, 0)], |e| {
        matches!(e, ChainError::Truncated(_))
    });
}

#[test]
fn indirect_descriptors_are_refused_unless_negotiated() {
    let m = mem();
    let mut d = Driver::new(&m);
    let n = neg(F_VERSION_1);
    d.post(&[(0x4_0000, 32, F_INDIRECT)]);
    let mut view = d.view(false);
    let mut batch = PacketBatch::new();
    let (out, r) = drain(d.mem, &mut view, &n, &mut batch);
    r.unwrap();
    assert_eq!(out.last_error, Some(ChainError::IndirectNotNegotiated));
}

#[test]
fn an_available_index_beyond_the_ring_size_is_a_ring_error() {
    let m = mem();
    let d = Driver::new(&m);
    d.set_avail_idx(QSIZE + 1);
    let mut view = d.view(false);
    let mut batch = PacketBatch::new();
    let (_, r) = drain(d.mem, &mut view, &neg(F_VERSION_1), &mut batch);
    assert!(matches!(r, Err(RingError::AvailIdxJump { .. })));
}

#[test]
fn a_head_index_beyond_the_ring_is_a_ring_error() {
    let m = mem();
    let d = Driver::new(&m);
    d.make_available(QSIZE + 3);
    let mut view = d.view(false);
    let mut batch = PacketBatch::new();
    let (_, r) = drain(d.mem, &mut view, &neg(F_VERSION_1), &mut batch);
    assert!(matches!(r, Err(RingError::HeadOutOfRange { .. })));
}

#[test]
fn ring_validation_refuses_rings_outside_guest_memory() {
    let m = mem();
    let d = Driver::new(&m);
    let mut view = d.view(false);
    assert!(view.validate(&m).is_ok());
    view.used = MEM_SIZE as u64 - 8;
    assert!(matches!(
        view.validate(&m),
        Err(RingError::UsedUnwritable(_))
    ));
    let mut view = d.view(false);
    view.size = 100;
    assert!(matches!(view.validate(&m), Err(RingError::BadSize(100))));
}

#[test]
fn event_idx_interrupts_only_when_the_driver_asked() {
    let m = mem();
    let mut d = Driver::new(&m);
    let n = neg(F_VERSION_1 | RING_F_EVENT_IDX);
    let b = hdr_and_frame(60, 0);
    d.write(0x1_0000, &b);
    let mut view = d.view(true);
    let mut batch = PacketBatch::new();

    // Driver wants an interrupt once used passes 0.
    d.set_used_event(0);
    for _ in 0..4 {
        d.post(&[(0x1_0000, b.len() as u32, 0)]);
    }
    let (out, _) = drain(d.mem, &mut view, &n, &mut batch);
    assert!(out.interrupt);
    // Threshold not moved: no more interrupts.
    for _ in 0..4 {
        d.post(&[(0x1_0000, b.len() as u32, 0)]);
    }
    batch.clear();
    let (out, _) = drain(d.mem, &mut view, &n, &mut batch);
    assert!(!out.interrupt);
    // Threshold inside the next batch: one interrupt.
    d.set_used_event(9);
    for _ in 0..4 {
        d.post(&[(0x1_0000, b.len() as u32, 0)]);
    }
    batch.clear();
    let (out, _) = drain(d.mem, &mut view, &n, &mut batch);
    assert!(out.interrupt);
    // An empty poll never interrupts.
    batch.clear();
    let (out, _) = drain(d.mem, &mut view, &n, &mut batch);
    assert!(!out.interrupt);
}

#[test]
fn without_event_idx_no_interrupt_flag_suppresses_interrupts() {
    let m = mem();
    let mut d = Driver::new(&m);
    let n = neg(F_VERSION_1);
    let b = hdr_and_frame(60, 0);
    d.write(0x1_0000, &b);
    let mut view = d.view(false);
    view.suppress_kicks(&crate::ring::FastMem::new(&m)).unwrap();
    let flags: u16 = m.read_obj(GuestAddress(USED)).unwrap();
    assert_eq!(flags, 1, "VRING_USED_F_NO_NOTIFY set while polling");
    m.write_obj(1u16, GuestAddress(AVAIL)).unwrap();
    d.post(&[(0x1_0000, b.len() as u32, 0)]);
    let mut batch = PacketBatch::new();
    let (out, _) = drain(d.mem, &mut view, &n, &mut batch);
    assert_eq!(out.delivered, 1);
    assert!(!out.interrupt);
}

// ---- switch -> guest ----

fn send(
    d: &Driver,
    view: &mut RingView,
    n: &Negotiated,
    pkt: &Packet,
    pending: &mut Pending,
) -> SendOutcome {
    guest_rx::send_to_guest(d.mem, view, n, pkt.data(), &pkt.offload, pending).unwrap()
}

#[test]
fn send_fills_one_guest_buffer_with_header_and_frame() {
    let m = mem();
    let mut d = Driver::new(&m);
    let n = neg(F_VERSION_1);
    d.post(&[(0x1_0000, 2048, F_WRITE)]);
    let mut view = d.view(false);
    let f = frame(100, 5);
    let mut pkt = Packet::from_bytes(&f);
    pkt.offload = Offload {
        flags: Offload::F_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 6,
        ..Default::default()
    };
    let mut pending = Pending::default();
    assert_eq!(
        send(&d, &mut view, &n, &pkt, &mut pending),
        SendOutcome::Sent { buffers: 1 }
    );
    assert_eq!(d.used_idx(), 0, "nothing visible before publish");
    guest_rx::publish(&m, &mut view, &mut pending).unwrap();
    assert_eq!(d.used_idx(), 1);
    assert_eq!(d.used(0), (0, 112));
    let h: [u8; 12] = d.read(0x1_0000, 12).try_into().unwrap();
    assert_eq!(net_hdr::decode_mrg(&h), pkt.offload);
    assert_eq!(u16::from_le_bytes([h[10], h[11]]), 1);
    assert_eq!(d.read(0x1_000c, 100), f);
}

#[test]
fn send_with_mrg_rxbuf_spans_buffers_and_writes_num_buffers() {
    let m = mem();
    let mut d = Driver::new(&m);
    let n = neg(F_VERSION_1 | NET_F_MRG_RXBUF);
    for i in 0..4u64 {
        d.post(&[(0x1_0000 + i * 0x1000, 1024, F_WRITE)]);
    }
    let mut view = d.view(false);
    let f = frame(2500, 11);
    let pkt = Packet::from_bytes(&f);
    let mut pending = Pending::default();
    assert_eq!(
        send(&d, &mut view, &n, &pkt, &mut pending),
        SendOutcome::Sent { buffers: 3 }
    );
    guest_rx::publish(&m, &mut view, &mut pending).unwrap();
    assert_eq!(d.used_idx(), 3);
    assert_eq!(d.used(0), (0, 1024));
    assert_eq!(d.used(1), (1, 1024));
    assert_eq!(d.used(2), (2, 2512 - 2048));
    let h = d.read(0x1_0000, 12);
    assert_eq!(u16::from_le_bytes([h[10], h[11]]), 3);
    let mut got = d.read(0x1_000c, 1012);
    got.extend(d.read(0x1_1000, 1024));
    got.extend(d.read(0x1_2000, 2512 - 2048));
    assert_eq!(got, f);
    assert_eq!(view.next_avail.0, 3, "the fourth buffer is left for later");
}

#[test]
fn send_across_the_index_wrap_uses_the_ring_slots_and_one_buffer_frames_say_num_buffers_1() {
    let m = mem();
    let mut d = Driver::new(&m);
    let n = neg(F_VERSION_1 | NET_F_MRG_RXBUF | F_IN_ORDER);
    // The free-running indices are about to wrap past u16::MAX (slots
    // 254, 255, 0, 1 of the 256-entry ring).
    d.set_avail_idx(65534);
    let bufs: Vec<u64> = (0..4u64).map(|i| 0x1_0000 + i * 0x1000).collect();
    let heads: Vec<u16> = bufs
        .iter()
        .map(|&b| {
            // Stale bytes where num_buffers goes: the frame's header must
            // overwrite them.
            d.write(b, &[0xff; 16]);
            d.post(&[(b, 2048, F_WRITE)])
        })
        .collect();
    let mut view = d.view(false);
    view.next_avail = Wrapping(65534);
    view.next_used = Wrapping(65534);
    let mut pending = Pending::default();
    let frames: Vec<Vec<u8>> = (0..4).map(|i| frame(60 + i, i as u8)).collect();
    for f in &frames {
        assert_eq!(
            send(&d, &mut view, &n, &Packet::from_bytes(f), &mut pending),
            SendOutcome::Sent { buffers: 1 }
        );
    }
    guest_rx::publish(&m, &mut view, &mut pending).unwrap();
    assert_eq!(d.used_idx(), 2, "65534 + 4 wraps to 2");
    for (k, f) in frames.iter().enumerate() {
        let i = 65534u16.wrapping_add(k as u16);
        assert_eq!(
            d.used(i),
            (u32::from(heads[k]), 12 + f.len() as u32),
            "used slot {}",
            i % QSIZE
        );
        let h = d.read(bufs[k], 12);
        assert_eq!(u16::from_le_bytes([h[10], h[11]]), 1);
        assert_eq!(d.read(bufs[k] + 12, f.len()), *f);
    }
}

#[test]
fn a_frame_over_more_buffers_than_the_batch_keeps_aside_is_published_whole_and_in_order() {
    // The used elements of a batch wait in `Pending` until `publish`; past
    // the first 64 they go to the ring directly. Either way the driver sees
    // none before the index moves, then every one with its length.
    let m = mem();
    let mut d = Driver::new(&m);
    let n = neg(F_VERSION_1 | NET_F_MRG_RXBUF);
    let bufs: Vec<u64> = (0..100u64).map(|i| 0x2_0000 + i * 0x100).collect();
    let heads: Vec<u16> = bufs.iter().map(|&b| d.post(&[(b, 256, F_WRITE)])).collect();
    let mut view = d.view(false);
    let f = frame(20_000, 7);
    let total = 12 + f.len();
    let nbufs = total.div_ceil(256);
    assert!(
        nbufs > 64,
        "the frame must need more buffers than are kept aside"
    );
    let mut pending = Pending::default();
    assert_eq!(
        send(&d, &mut view, &n, &Packet::from_bytes(&f), &mut pending),
        SendOutcome::Sent {
            buffers: nbufs as u16
        }
    );
    assert_eq!(d.used_idx(), 0, "nothing visible before publish");
    guest_rx::publish(&m, &mut view, &mut pending).unwrap();
    assert_eq!(usize::from(d.used_idx()), nbufs);
    let mut got = Vec::new();
    for k in 0..nbufs {
        let len = (total - k * 256).min(256);
        assert_eq!(
            d.used(k as u16),
            (u32::from(heads[k]), len as u32),
            "used element {k}"
        );
        got.extend(d.read(bufs[k], len));
    }
    assert_eq!(u16::from_le_bytes([got[10], got[11]]), nbufs as u16);
    assert_eq!(&got[12..], &f[..]);
    // The next batch starts clean: one small frame, one element, after them.
    assert_eq!(
        send(
            &d,
            &mut view,
            &n,
            &Packet::from_bytes(&frame(60, 1)),
            &mut pending
        ),
        SendOutcome::Sent { buffers: 1 }
    );
    guest_rx::publish(&m, &mut view, &mut pending).unwrap();
    assert_eq!(usize::from(d.used_idx()), nbufs + 1);
    assert_eq!(d.used(nbufs as u16), (u32::from(heads[nbufs]), 72));
}

#[test]
fn mrg_rxbuf_header_split_over_tiny_buffers_still_gets_num_buffers() {
    let m = mem();
    let mut d = Driver::new(&m);
    let n = neg(F_VERSION_1 | NET_F_MRG_RXBUF);
    d.post(&[(0x1_0000, 11, F_WRITE)]);
    d.post(&[(0x1_1000, 1024, F_WRITE)]);
    let mut view = d.view(false);
    let pkt = Packet::from_bytes(&frame(64, 1));
    let mut pending = Pending::default();
    assert_eq!(
        send(&d, &mut view, &n, &pkt, &mut pending),
        SendOutcome::Sent { buffers: 2 }
    );
    assert_eq!(d.read(0x1_000a, 1), vec![2]);
    assert_eq!(d.read(0x1_1000, 1), vec![0]);
}

#[test]
fn buffers_the_driver_posts_during_a_batch_are_used_by_the_same_batch() {
    for mrg in [false, true] {
        let m = mem();
        let mut d = Driver::new(&m);
        let bits = if mrg {
            F_VERSION_1 | NET_F_MRG_RXBUF
        } else {
            F_VERSION_1
        };
        let n = neg(bits);
        d.post(&[(0x1_0000, 1024, F_WRITE)]);
        let mut view = d.view(false);
        let mut pending = Pending::default();
        let small = Packet::from_bytes(&frame(500, 1));
        assert_eq!(
            send(&d, &mut view, &n, &small, &mut pending),
            SendOutcome::Sent { buffers: 1 }
        );
        // The only buffer seen so far is used up: the next frame must look
        // at the driver's index again, not trust the count it read before.
        assert_eq!(
            send(&d, &mut view, &n, &small, &mut pending),
            SendOutcome::NoRoom
        );
        d.post(&[(0x1_1000, 1024, F_WRITE)]);
        d.post(&[(0x1_2000, 1024, F_WRITE)]);
        d.post(&[(0x1_3000, 1024, F_WRITE)]);
        let second = Packet::from_bytes(&frame(500, 2));
        assert_eq!(
            send(&d, &mut view, &n, &second, &mut pending),
            SendOutcome::Sent { buffers: 1 }
        );
        assert_eq!(d.read(0x1_100c, 500), frame(500, 2));
        if mrg {
            // Two buffers are known to be left; a frame needing three finds
            // the one the driver posts now.
            d.post(&[(0x1_4000, 1024, F_WRITE)]);
            let big = Packet::from_bytes(&frame(2500, 3));
            assert_eq!(
                send(&d, &mut view, &n, &big, &mut pending),
                SendOutcome::Sent { buffers: 3 }
            );
            let mut got = d.read(0x1_200c, 1012);
            got.extend(d.read(0x1_3000, 1024));
            got.extend(d.read(0x1_4000, 2512 - 2048));
            assert_eq!(got, frame(2500, 3));
        }
        guest_rx::publish(&m, &mut view, &mut pending).unwrap();
        assert_eq!(d.used_idx(), if mrg { 5 } else { 2 });
    }
}

#[test]
fn send_without_enough_buffers_drops_and_leaves_the_ring_untouched() {
    let m = mem();
    let mut d = Driver::new(&m);
    let n = neg(F_VERSION_1 | NET_F_MRG_RXBUF);
    d.post(&[(0x1_0000, 1024, F_WRITE)]);
    let mut view = d.view(false);
    let big = Packet::from_bytes(&frame(3000, 0));
    let mut pending = Pending::default();
    assert_eq!(
        send(&d, &mut view, &n, &big, &mut pending),
        SendOutcome::NoRoom
    );
    assert_eq!(view.next_avail.0, 0);
    assert_eq!(pending.used, 0);
    // A frame that fits still goes.
    let small = Packet::from_bytes(&frame(500, 0));
    assert_eq!(
        send(&d, &mut view, &n, &small, &mut pending),
        SendOutcome::Sent { buffers: 1 }
    );

    // Without MRG_RXBUF a too-small chain is left for a smaller frame.
    let m2 = mem();
    let mut d2 = Driver::new(&m2);
    d2.post(&[(0x1_0000, 256, F_WRITE)]);
    let mut view2 = d2.view(false);
    let n2 = neg(F_VERSION_1);
    assert_eq!(
        send(&d2, &mut view2, &n2, &big, &mut pending),
        SendOutcome::NoRoom
    );
    assert_eq!(view2.next_avail.0, 0);
}

#[test]
fn malformed_receive_buffers_are_returned_empty_and_the_next_one_used() {
    // Buffers are also prefetched a chain ahead of their copy, by guest
    // address: those ending past u64::MAX must neither overflow nor send
    // the prefetch walk round from address 0.
    let m = mem();
    let mut d = Driver::new(&m);
    let n = neg(F_VERSION_1 | NET_F_MRG_RXBUF);
    d.post(&[(0x1_0000, 1024, 0)]); // not device-writable
    d.post(&[(MEM_SIZE as u64 + 0x100, 1024, F_WRITE)]); // outside memory
    d.post(&[(u64::MAX - 4, 1024, F_WRITE)]); // past the top of the address space
    d.post(&[(u64::MAX - 70, 1024, F_WRITE)]);
    d.post(&[(0x1_1000, 1024, F_WRITE)]);
    let mut view = d.view(false);
    let pkt = Packet::from_bytes(&frame(64, 3));
    let mut pending = Pending::default();
    assert!(matches!(
        send(&d, &mut view, &n, &pkt, &mut pending),
        SendOutcome::BadChain(ChainError::WrongDirection(_))
    ));
    for _ in 0..3 {
        assert!(matches!(
            send(&d, &mut view, &n, &pkt, &mut pending),
            SendOutcome::BadChain(ChainError::OutOfMemory { .. })
        ));
    }
    assert_eq!(
        send(&d, &mut view, &n, &pkt, &mut pending),
        SendOutcome::Sent { buffers: 1 }
    );
    guest_rx::publish(&m, &mut view, &mut pending).unwrap();
    assert_eq!(d.used_idx(), 5);
    for k in 0..4 {
        assert_eq!(d.used(k).1, 0, "buffer {k} returned empty");
    }
    assert_eq!(d.used(4), (4, 76));
}

#[test]
fn send_interrupts_per_batch_only_when_event_idx_says_so() {
    let m = mem();
    let mut d = Driver::new(&m);
    let n = neg(F_VERSION_1 | NET_F_MRG_RXBUF | RING_F_EVENT_IDX);
    for i in 0..64u64 {
        d.post(&[(0x1_0000 + i * 0x800, 2048, F_WRITE)]);
    }
    let mut view = d.view(true);
    let pkt = Packet::from_bytes(&frame(64, 3));
    let mut pending = Pending::default();
    d.set_used_event(40);
    for _ in 0..32 {
        send(&d, &mut view, &n, &pkt, &mut pending);
    }
    assert!(!guest_rx::publish(&m, &mut view, &mut pending).unwrap());
    for _ in 0..16 {
        assert_eq!(
            send(&d, &mut view, &n, &pkt, &mut pending),
            SendOutcome::Sent { buffers: 1 }
        );
    }
    assert!(guest_rx::publish(&m, &mut view, &mut pending).unwrap());
    assert!(!guest_rx::publish(&m, &mut view, &mut pending).unwrap());
}

// ---- switch -> guest through the transmit queue (offload completion) ----

mod txq {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use datapath::packet::{Offload, Packet};
    use datapath::port::TxQueue;
    use flows::packet::{ipv4_header_checksum, l4_checksum_full};
    use flows::parse::{L4Kind, extract};
    use vhost_user_backend::VringT;
    use vm_memory::{GuestAddressSpace, GuestMemoryAtomic};

    use super::{AVAIL, Driver, F_WRITE, QSIZE, USED, mem};
    use crate::features::{
        F_VERSION_1, NET_F_GUEST_CSUM, NET_F_GUEST_TSO4, NET_F_GUEST_TSO6, RING_F_EVENT_IDX,
    };
    use crate::port::VhostTxQueue;
    use crate::session::{Gm, Session, Vring};
    use wire::vnet_hdr as net_hdr;

    const MSS: usize = 1448;
    const SEQ0: u32 = 0xffff_f000;

    /// A session that negotiated `features` and whose guest receive ring
    /// (vring 0) is the mock driver's ring.
    fn mock_session(d: &Driver, features: u64) -> Arc<Session> {
        let gm: Gm = GuestMemoryAtomic::new(d.mem.clone());
        let rx = Vring::new(gm.clone(), QSIZE).unwrap();
        rx.set_queue_size(QSIZE);
        rx.set_queue_info(d.q.desc_table_addr().0, AVAIL, USED)
            .unwrap();
        rx.set_queue_event_idx(features & RING_F_EVENT_IDX != 0);
        rx.set_queue_ready(true);
        rx.set_enabled(true);
        let tx = Vring::new(gm.clone(), QSIZE).unwrap();
        let s = Arc::new(Session::new(gm.clone(), vec![rx, tx]));
        s.acked.store(features, Ordering::Release);
        s.set_validated(Some(gm.memory().into_inner()));
        s
    }

    fn be16(f: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([f[at], f[at + 1]])
    }

    fn be32(f: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([f[at], f[at + 1], f[at + 2], f[at + 3]])
    }

    /// Ethernet + IPv4 + TCP carrying `payload` as a TSO sender hands it
    /// over: one super-frame whose TCP checksum field holds only the
    /// pseudo-header sum (NEEDS_CSUM).
    fn tcp4_super_frame(payload: &[u8]) -> Packet {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        let mut ip = [
            0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip[2..4].copy_from_slice(&((40 + payload.len()) as u16).to_be_bytes());
        let c = ipv4_header_checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&5201u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&SEQ0.to_be_bytes());
        tcp[8..12].copy_from_slice(&1u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x18; // PSH|ACK
        tcp[14..16].copy_from_slice(&512u16.to_be_bytes());
        let mut sum: u32 = 6 + (20 + payload.len()) as u32;
        for w in ip[12..20].chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        tcp[16..18].copy_from_slice(&(sum as u16).to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&tcp);
        f.extend_from_slice(payload);
        let mut pkt = Packet::from_bytes(&f);
        pkt.offload = Offload {
            flags: Offload::F_NEEDS_CSUM,
            gso_type: Offload::GSO_TCPV4,
            hdr_len: 54,
            gso_size: MSS as u16,
            csum_start: 34,
            csum_offset: 16,
        };
        pkt
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 13 + 5) as u8).collect()
    }

    /// Posts `n` single-descriptor receive buffers of `len` bytes; returns
    /// (head, address) of each.
    fn post_buffers(d: &mut Driver, n: usize, len: u32, base: u64) -> Vec<(u16, u64)> {
        (0..n as u64)
            .map(|i| {
                let addr = base + i * 0x1_0000;
                (d.post(&[(addr, len, F_WRITE)]), addr)
            })
            .collect()
    }

    /// What the guest received, in used-ring order: header and frame.
    fn received(d: &Driver, bufs: &[(u16, u64)]) -> Vec<(Offload, Vec<u8>)> {
        (0..d.used_idx())
            .map(|i| {
                let (id, len) = d.used(i);
                let addr = bufs.iter().find(|b| u32::from(b.0) == id).unwrap().1;
                let b = d.read(addr, len as usize);
                let h: [u8; 12] = b[..12].try_into().unwrap();
                (net_hdr::decode_mrg(&h), b[12..].to_vec())
            })
            .collect()
    }

    /// Checks the IPv4 header checksum and the TCP checksum of `f` against
    /// sums computed from scratch; returns (L3, L4) offsets.
    fn assert_checksums_valid(f: &[u8]) -> (usize, usize) {
        let (_, lay) = extract(f, 0).expect("parsable frame");
        assert_eq!(lay.l4, L4Kind::Tcp);
        let l3 = usize::from(lay.l3_ofs.unwrap());
        let l4 = usize::from(lay.l4_ofs.unwrap());
        assert_eq!(be16(f, l3 + 10), ipv4_header_checksum(&f[l3..l4]), "IPv4");
        assert_eq!(Some(be16(f, l4 + 16)), l4_checksum_full(f, &lay), "TCP");
        (l3, l4)
    }

    #[test]
    fn tso_super_frame_to_a_guest_without_guest_tso_arrives_segmented_with_valid_checksums() {
        for features in [
            F_VERSION_1,
            F_VERSION_1 | NET_F_GUEST_CSUM,
            // TSO without GUEST_CSUM cannot be used.
            F_VERSION_1 | NET_F_GUEST_TSO4 | NET_F_GUEST_TSO6,
        ] {
            let m = mem();
            let mut d = Driver::new(&m);
            let bufs = post_buffers(&mut d, 8, 2048, 0x1_0000);
            let (mut q, stats) = VhostTxQueue::for_session(mock_session(&d, features));
            let data = payload(3 * MSS);
            // Twice: the second super-frame reuses the segmentation scratch.
            for _ in 0..2 {
                let mut pkt = tcp4_super_frame(&data);
                q.send(&mut pkt).unwrap();
            }
            q.flush().unwrap();

            let got = received(&d, &bufs);
            assert_eq!(got.len(), 6, "features {features:#x}");
            for (k, (hdr, f)) in got.iter().enumerate() {
                let i = k % 3;
                assert_eq!(*hdr, Offload::default(), "plain frames, no offload");
                assert_eq!(f.len(), 14 + 20 + 20 + MSS);
                let (l3, l4) = assert_checksums_valid(f);
                assert_eq!(usize::from(be16(f, l3 + 2)), 40 + MSS, "IP total length");
                assert_eq!(be32(f, l4 + 4), SEQ0.wrapping_add((i * MSS) as u32));
                let psh = f[l4 + 13] & 0x08 != 0;
                assert_eq!(psh, i == 2, "PSH only on the last segment");
                assert_eq!(&f[54..], &data[i * MSS..(i + 1) * MSS]);
            }
            let s = stats.snapshot();
            assert_eq!(s.tx_dropped, 0);
            assert_eq!(s.tx_errors, 0);
            assert_eq!(s.tx_packets, 6);
            assert_eq!(s.tx_bytes, 6 * (54 + MSS) as u64);
        }
    }

    #[test]
    fn tso_super_frame_to_a_guest_with_guest_tso4_arrives_whole_with_gso_fields() {
        let m = mem();
        let mut d = Driver::new(&m);
        let bufs = post_buffers(&mut d, 1, 8192, 0x2_0000);
        let features = F_VERSION_1 | NET_F_GUEST_CSUM | NET_F_GUEST_TSO4;
        let (mut q, stats) = VhostTxQueue::for_session(mock_session(&d, features));
        let mut pkt = tcp4_super_frame(&payload(3 * MSS));
        let sent = pkt.data().to_vec();
        let offload = pkt.offload;
        q.send(&mut pkt).unwrap();
        q.flush().unwrap();

        let got = received(&d, &bufs);
        assert_eq!(got.len(), 1);
        let (hdr, f) = &got[0];
        assert_eq!(*hdr, offload);
        assert_eq!(hdr.gso_type, Offload::GSO_TCPV4);
        assert_eq!(usize::from(hdr.gso_size), MSS);
        assert_eq!(hdr.flags & Offload::F_NEEDS_CSUM, Offload::F_NEEDS_CSUM);
        assert_eq!(*f, sent, "the super-frame is passed on untouched");
        let s = stats.snapshot();
        assert_eq!((s.tx_packets, s.tx_dropped, s.tx_errors), (1, 0, 0));
    }

    fn plain_frame(n: usize) -> Packet {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xb5];
        f.extend(payload(n));
        Packet::from_bytes(&f)
    }

    #[test]
    fn batches_run_without_the_vring_lock_and_a_pause_folds_their_indices_into_the_queue() {
        let m = mem();
        let mut d = Driver::new(&m);
        let bufs = post_buffers(&mut d, 6, 2048, 0x1_0000);
        let s = mock_session(&d, F_VERSION_1);
        let (mut q, stats) = VhostTxQueue::for_session(s.clone());
        for _ in 0..2 {
            q.send(&mut plain_frame(100)).unwrap();
        }
        q.flush().unwrap();
        // The PMD left its indices beside the queue, not in it.
        assert_eq!(s.queue_indices(0), (0, 0));
        {
            let _p = s.pause();
            assert_eq!(s.queue_indices(0), (2, 2), "folded by the pause");
            // No batch runs while the control thread holds the pause.
            q.send(&mut plain_frame(100)).unwrap();
            q.flush().unwrap();
            assert_eq!(stats.snapshot().tx_dropped, 1);
            assert_eq!(d.used_idx(), 2);
            // A control change made under the pause is what the next batch sees.
            s.set_queue_next_avail(0, 3);
        }
        q.send(&mut plain_frame(60)).unwrap();
        q.flush().unwrap();
        assert_eq!(d.used_idx(), 3);
        let (id, len) = d.used(2);
        assert_eq!(
            id,
            u32::from(bufs[3].0),
            "buffer 2 was skipped by the new base"
        );
        assert_eq!(len, 12 + 74);
        let _p = s.pause();
        assert_eq!(s.queue_indices(0), (4, 3));
        assert_eq!(stats.snapshot().tx_packets, 3);
    }

    #[test]
    fn a_ring_stopped_under_a_pause_is_not_used_by_a_pmd_with_a_cached_copy() {
        let m = mem();
        let mut d = Driver::new(&m);
        post_buffers(&mut d, 4, 2048, 0x1_0000);
        let s = mock_session(&d, F_VERSION_1);
        let (mut q, stats) = VhostTxQueue::for_session(s.clone());
        q.send(&mut plain_frame(100)).unwrap();
        q.flush().unwrap();
        assert_eq!(d.used_idx(), 1);
        {
            let _p = s.pause();
            s.set_queue_ready(0, false);
        }
        q.send(&mut plain_frame(100)).unwrap();
        q.flush().unwrap();
        assert_eq!(d.used_idx(), 1, "the stopped ring is left alone");
        assert_eq!(stats.snapshot().tx_dropped, 1);
        {
            let _p = s.pause();
            s.set_queue_ready(0, true);
        }
        q.send(&mut plain_frame(100)).unwrap();
        q.flush().unwrap();
        assert_eq!(d.used_idx(), 2, "restarted where it stopped");
    }
}
