//! Micro-benchmark of the vhost-user data path on one thread: a batch of
//! 32 frames taken from a guest's transmit ring (`receive_from_guest`) and
//! written into a guest's receive ring (`send_to_guest`, then `publish`),
//! the two copies and the ring work the PMD does per frame on the
//! vhost-user loop. The "guest" is plain memory whose rings are refilled
//! between batches, so this measures the switch's own work per frame; the
//! cache misses on lines the other core wrote (the larger share on the real
//! loop) are not in it: `bench/run --only vhost-loop` measures those.
//!
//! Both ring layouts are measured: split rings, and packed rings
//! (`VIRTIO_F_RING_PACKED`) whose mock driver rewrites each descriptor's
//! length, id and flags as a real one does.
//!
//! Run: `cargo bench -p ferrovs-bench --bench vhost -- --warm-up-time 1 --measurement-time 3`
//! (and see `main` for an instruction count under cachegrind).

use std::hint::black_box;
use std::num::Wrapping;
use std::sync::atomic::Ordering;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use datapath::packet::{BATCH_SIZE, Offload, PacketBatch};
use vhost_port::features::{F_IN_ORDER, F_RING_PACKED, F_VERSION_1, NET_F_MRG_RXBUF, Negotiated};
use vhost_port::guest_rx::{self, Pending, SendOutcome};
use vhost_port::guest_tx::{RxOutcome, receive_from_guest};
use vhost_port::ring::{GuestMem, RingView, Vring};
use vhost_port::ring_packed::{DESC_F_AVAIL, DESC_F_USED, PackedRing};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

const QSIZE: u16 = 256;
const HDR: u64 = 12;
const BUF: u64 = 2048;
/// Guest transmit ring (guest → switch) and guest receive ring.
const TX_DESC: u64 = 0x0000;
const TX_AVAIL: u64 = 0x1000;
const TX_USED: u64 = 0x2000;
const RX_DESC: u64 = 0x4000;
const RX_AVAIL: u64 = 0x5000;
const RX_USED: u64 = 0x6000;
const TX_BUFS: u64 = 0x10_0000;
const RX_BUFS: u64 = 0x20_0000;
const MEM: usize = 0x30_0000;

fn desc(mem: &GuestMem, table: u64, i: u16, addr: u64, len: u32, flags: u16) {
    let at = GuestAddress(table + 16 * u64::from(i));
    mem.write_obj(addr, at).unwrap();
    mem.write_obj(len, GuestAddress(at.0 + 8)).unwrap();
    mem.write_obj(flags, GuestAddress(at.0 + 12)).unwrap();
    mem.write_obj(0u16, GuestAddress(at.0 + 14)).unwrap();
}

/// Makes the next `n` chains available on the ring at `avail` (in order:
/// slot k names descriptor k, as an in-order driver posts them). Written
/// through one slice, so the driver's side costs little next to the
/// switch's.
fn post(mem: &GuestMem, avail: u64, n: u16) {
    let ring = mem
        .get_slice(GuestAddress(avail), 4 + 2 * usize::from(QSIZE))
        .unwrap();
    let idx: u16 = ring.load(2, Ordering::Relaxed).unwrap();
    for k in 0..n {
        let i = idx.wrapping_add(k) % QSIZE;
        ring.store(i, 4 + 2 * usize::from(i), Ordering::Relaxed)
            .unwrap();
    }
    ring.store(idx.wrapping_add(n), 2, Ordering::Release)
        .unwrap();
}

fn ring(desc: u64, avail: u64, used: u64) -> RingView {
    RingView {
        desc,
        avail,
        used,
        size: QSIZE,
        event_idx: false,
        next_avail: Wrapping(0),
        next_used: Wrapping(0),
    }
}

/// The driver of a packed ring: makes the next `n` descriptors available
/// again (length, id and flags; the addresses stay), the first one's flags
/// last.
struct PackedPoster {
    desc: u64,
    slot: u16,
    wrap: bool,
    len: u32,
}

impl PackedPoster {
    fn post(&mut self, mem: &GuestMem, n: u16) {
        let ring = mem
            .get_slice(GuestAddress(self.desc), 16 * usize::from(QSIZE))
            .unwrap();
        let first = self.slot;
        let mut first_flags = 0;
        for k in 0..n {
            let at = 16 * usize::from(self.slot);
            let flags = if self.wrap { DESC_F_AVAIL } else { DESC_F_USED }
                | if self.desc == RX_DESC { 2 } else { 0 };
            ring.store(self.len, at + 8, Ordering::Relaxed).unwrap();
            ring.store(self.slot, at + 12, Ordering::Relaxed).unwrap();
            if k == 0 {
                first_flags = flags;
            } else {
                ring.store(flags, at + 14, Ordering::Release).unwrap();
            }
            self.slot += 1;
            if self.slot == QSIZE {
                self.slot = 0;
                self.wrap = !self.wrap;
            }
        }
        ring.store(first_flags, 16 * usize::from(first) + 14, Ordering::Release)
            .unwrap();
    }
}

/// The two rings of a guest-to-guest batch, in one layout.
enum Rings {
    Split(RingView, RingView),
    Packed(PackedRing, PackedRing, PackedPoster, PackedPoster),
}

/// The two rings of a guest-to-guest batch, in one guest memory.
struct Loop {
    mem: GuestMem,
    neg: Negotiated,
    rings: Rings,
    batch: PacketBatch,
}

/// The switch's work on one batch: drain the transmit ring, fill the
/// receive ring, publish.
fn move_batch<R: Vring>(
    mem: &GuestMem,
    neg: &Negotiated,
    txr: &mut R,
    rxr: &mut R,
    batch: &mut PacketBatch,
) -> bool {
    batch.clear();
    let mut out = RxOutcome::default();
    receive_from_guest(mem, txr, neg, batch, 1, &mut out).unwrap();
    assert_eq!(out.delivered, BATCH_SIZE);
    let mut pending = Pending::default();
    let off = Offload::default();
    for p in batch.packets() {
        let r = guest_rx::send_to_guest(mem, rxr, neg, black_box(p.data()), &off, &mut pending)
            .unwrap();
        debug_assert_eq!(r, SendOutcome::Sent { buffers: 1 });
    }
    guest_rx::publish(mem, rxr, &mut pending).unwrap()
}

impl Loop {
    fn new(size: u32, packed: bool) -> Loop {
        let frame_len = size - 4;
        let mem = GuestMem::from_ranges(&[(GuestAddress(0), MEM)]).unwrap();
        for i in 0..QSIZE {
            let tx_buf = TX_BUFS + u64::from(i) * BUF;
            // Header (all zero: no offload) then an Ethernet/IPv4 frame.
            let mut f = vec![0u8; frame_len as usize];
            f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            mem.write_slice(&f, GuestAddress(tx_buf + HDR)).unwrap();
            desc(&mem, TX_DESC, i, tx_buf, HDR as u32 + frame_len, 0);
            desc(
                &mem,
                RX_DESC,
                i,
                RX_BUFS + u64::from(i) * BUF,
                BUF as u32,
                2,
            );
        }
        let mut bits = F_VERSION_1 | NET_F_MRG_RXBUF | F_IN_ORDER;
        let rings = if packed {
            bits |= F_RING_PACKED;
            let poster = |desc, len| PackedPoster {
                desc,
                slot: 0,
                wrap: true,
                len,
            };
            Rings::Packed(
                PackedRing::new(TX_DESC, TX_AVAIL, TX_USED, QSIZE, false),
                PackedRing::new(RX_DESC, RX_AVAIL, RX_USED, QSIZE, false),
                poster(TX_DESC, HDR as u32 + frame_len),
                poster(RX_DESC, BUF as u32),
            )
        } else {
            Rings::Split(
                ring(TX_DESC, TX_AVAIL, TX_USED),
                ring(RX_DESC, RX_AVAIL, RX_USED),
            )
        };
        Loop {
            mem,
            neg: Negotiated::from_bits(bits),
            rings,
            batch: PacketBatch::new(),
        }
    }

    /// The driver posts a batch on both rings; the switch moves it across.
    fn step(&mut self) -> bool {
        let mem = &self.mem;
        let n = BATCH_SIZE as u16;
        match &mut self.rings {
            Rings::Split(txr, rxr) => {
                post(mem, TX_AVAIL, n);
                post(mem, RX_AVAIL, n);
                move_batch(mem, &self.neg, txr, rxr, &mut self.batch)
            }
            Rings::Packed(txr, rxr, txp, rxp) => {
                txp.post(mem, n);
                rxp.post(mem, n);
                move_batch(mem, &self.neg, txr, rxr, &mut self.batch)
            }
        }
    }
}

fn bench_loop(c: &mut Criterion) {
    let mut g = c.benchmark_group("vhost_path");
    g.throughput(Throughput::Elements(BATCH_SIZE as u64));
    for (packed, name) in [(false, "guest_to_guest"), (true, "guest_to_guest_packed")] {
        for size in SIZES {
            let mut l = Loop::new(size, packed);
            g.bench_function(BenchmarkId::new(name, format!("{size}B")), |b| {
                b.iter(|| l.step())
            });
        }
    }
    g.finish();
}

const SIZES: [u32; 2] = [64, 1518];

criterion_group!(benches, bench_loop);

/// `FERROVS_VHOST_BATCHES=N [FERROVS_VHOST_SIZE=64] [FERROVS_VHOST_PACKED=1]`:
/// runs N batches (on packed rings with `FERROVS_VHOST_PACKED=1`) and
/// no measurement, for an instruction count that the machine's load does
/// not disturb (`valgrind --tool=cachegrind`: the difference between two
/// values of N, divided by their difference and by 32, is the switch's
/// instructions per frame plus the mock driver's few).
fn main() {
    if let Some(n) = std::env::var("FERROVS_VHOST_BATCHES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let size = std::env::var("FERROVS_VHOST_SIZE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64);
        let packed = std::env::var("FERROVS_VHOST_PACKED").is_ok_and(|v| v == "1");
        let mut l = Loop::new(size, packed);
        for _ in 0..n {
            black_box(l.step());
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
