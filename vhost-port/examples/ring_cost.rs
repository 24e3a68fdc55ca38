//! Per-packet cost of the vhost-user data path without a VM or a second
//! process: one thread plays the guest driver (posting 64-byte frames on a
//! transmit ring and empty buffers on a receive ring, in guest memory) and
//! runs the port's guest→switch and switch→guest code on them. Prints the
//! rate the switch side sustains on one core (driver work included).
//!
//! cargo run --release -p vhost-port --example ring_cost -- --seconds 5

use std::num::Wrapping;
use std::time::{Duration, Instant};

use clap::Parser;
use datapath::packet::PacketBatch;
use vhost_port::features::{F_VERSION_1, NET_F_MRG_RXBUF, Negotiated};
use vhost_port::guest_rx::{self, Pending};
use vhost_port::guest_tx::{RxOutcome, receive_from_guest};
use vhost_port::ring::{GuestMem, RingView};
use vm_memory::{Bytes, GuestAddress};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, default_value_t = 64)]
    frame: usize,
}

const QSIZE: u16 = 256;
const TXQ: u64 = 0x0;
const RXQ: u64 = 0x1_0000;

fn ring(base: u64) -> RingView {
    RingView {
        desc: base,
        avail: base + 0x1000,
        used: base + 0x2000,
        size: QSIZE,
        event_idx: false,
        next_avail: Wrapping(0),
        next_used: Wrapping(0),
    }
}

fn write_desc(mem: &GuestMem, base: u64, i: u16, addr: u64, len: u32, flags: u16) {
    let at = base + 16 * u64::from(i);
    mem.write_obj(addr, GuestAddress(at)).unwrap();
    mem.write_obj(len, GuestAddress(at + 8)).unwrap();
    mem.write_obj(flags, GuestAddress(at + 12)).unwrap();
}

/// Makes `n` more descriptors available (ids reused cyclically).
fn post(mem: &GuestMem, base: u64, idx: &mut u16, n: u16) {
    for _ in 0..n {
        let slot = u64::from(*idx % QSIZE);
        mem.write_obj(*idx % QSIZE, GuestAddress(base + 0x1004 + 2 * slot))
            .unwrap();
        *idx = idx.wrapping_add(1);
    }
    mem.write_obj(*idx, GuestAddress(base + 0x1002)).unwrap();
}

fn main() {
    let args = Args::parse();
    let mem = GuestMem::from_ranges(&[(GuestAddress(0), 16 << 20)]).unwrap();
    // Suppress interrupts the way a polling driver does.
    mem.write_obj(1u16, GuestAddress(TXQ + 0x1000)).unwrap();
    mem.write_obj(1u16, GuestAddress(RXQ + 0x1000)).unwrap();
    let frame = vec![0x5au8; args.frame];
    for i in 0..QSIZE {
        let tx_buf = 0x10_0000 + u64::from(i) * 2048;
        let mut b = vec![0u8; 12];
        b.extend_from_slice(&frame);
        mem.write_slice(&b, GuestAddress(tx_buf)).unwrap();
        write_desc(&mem, TXQ, i, tx_buf, b.len() as u32, 0);
        write_desc(&mem, RXQ, i, 0x40_0000 + u64::from(i) * 2048, 2048, 2);
    }
    let neg = Negotiated::from_bits(F_VERSION_1 | NET_F_MRG_RXBUF);
    let (mut tx_ring, mut rx_ring) = (ring(TXQ), ring(RXQ));
    let (mut tx_idx, mut rx_idx) = (0u16, 0u16);
    let mut batch = PacketBatch::new();
    let mut pending = Pending::default();
    let mut moved = 0u64;
    let start = Instant::now();
    let limit = Duration::from_secs(args.seconds);
    while start.elapsed() < limit {
        for _ in 0..1000 {
            post(&mem, TXQ, &mut tx_idx, 32);
            post(&mem, RXQ, &mut rx_idx, 32);
            batch.clear();
            let mut out = RxOutcome::default();
            receive_from_guest(&mem, &mut tx_ring, &neg, &mut batch, 0, &mut out).unwrap();
            for p in batch.packets() {
                guest_rx::send_to_guest(
                    &mem,
                    &mut rx_ring,
                    &neg,
                    p.data(),
                    &p.offload,
                    &mut pending,
                )
                .unwrap();
            }
            guest_rx::publish(&mem, &mut rx_ring, &mut pending).unwrap();
            moved += out.delivered as u64;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} B frames: {:.2} Mpps guest->switch->guest on one thread ({:.1} ns/frame)",
        args.frame,
        moved as f64 / secs / 1e6,
        secs * 1e9 / moved as f64
    );
}
