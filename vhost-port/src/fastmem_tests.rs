//! `FastMem`'s copies: the fast path (inside the remembered region) and
//! the slow one (another region, across two regions, outside memory) must
//! agree byte for byte with vm-memory's checked accessors, and refuse
//! exactly what they refuse.

use std::num::Wrapping;

use vm_memory::{Bytes, GuestAddress};

use crate::ring::{ChainError, FastMem, GuestMem, RingError, RingView};

/// Two regions: [0x1000, 0x3000) and [0x3000, 0x4000) adjacent, then a gap,
/// then [0x8000, 0x9000).
fn mem() -> GuestMem {
    GuestMem::from_ranges(&[
        (GuestAddress(0x1000), 0x2000),
        (GuestAddress(0x3000), 0x1000),
        (GuestAddress(0x8000), 0x1000),
    ])
    .unwrap()
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| seed.wrapping_add((i as u8).wrapping_mul(7)))
        .collect()
}

#[test]
fn copies_in_each_region_and_across_adjacent_regions_match_checked_accesses() {
    let m = mem();
    let f = FastMem::new(&m);
    // (address, length): first region (remembered at start), its last
    // byte, the third region (a lookup), back to the first, and a buffer
    // across the boundary of the two adjacent regions.
    let cases = [
        (0x1000u64, 60usize),
        (0x2fff, 1),
        (0x8000, 1514),
        (0x1800, 64),
        (0x2ff0, 0x20),
    ];
    for (k, &(addr, len)) in cases.iter().enumerate() {
        let src = pattern(len, k as u8);
        f.copy_to(addr, &src).unwrap();
        let mut via_vm = vec![0u8; len];
        m.read_slice(&mut via_vm, GuestAddress(addr)).unwrap();
        assert_eq!(via_vm, src, "copy_to at {addr:#x}+{len}");
        let mut back = vec![0u8; len];
        f.copy_from(addr, &mut back).unwrap();
        assert_eq!(back, src, "copy_from at {addr:#x}+{len}");
    }
}

#[test]
fn copies_reaching_outside_guest_memory_are_refused() {
    let m = mem();
    let f = FastMem::new(&m);
    // (address, length): below the first region (the offset from it
    // wraps), one byte past the end of the adjacent pair, into the gap,
    // one byte past the last region, and an address whose end overflows.
    let cases = [
        (0x0ff0u64, 0x20usize),
        (0x3ff0, 0x11),
        (0x5000, 4),
        (0x8ff0, 0x11),
        (u64::MAX - 3, 8),
    ];
    // Twice: the second pass starts with the last region remembered (the
    // failed copy next to it looked it up), so the remembered region's own
    // end and overflow checks refuse too.
    for &(addr, len) in cases.iter().chain(&cases) {
        let mut dst = vec![0u8; len];
        assert!(
            matches!(
                f.copy_from(addr, &mut dst),
                Err(ChainError::OutOfMemory { .. })
            ),
            "copy_from at {addr:#x}+{len}"
        );
        assert!(
            matches!(
                f.copy_to(addr, &vec![0x55; len]),
                Err(ChainError::OutOfMemory { .. })
            ),
            "copy_to at {addr:#x}+{len}"
        );
    }
}

fn view_at(avail: u64) -> RingView {
    RingView {
        desc: 0x1000,
        avail,
        used: 0x1800,
        size: 8,
        event_idx: false,
        next_avail: Wrapping(0),
        next_used: Wrapping(0),
    }
}

#[test]
fn ring_words_read_in_any_region_and_a_misaligned_ring_word_is_refused() {
    let m = mem();
    let f = FastMem::new(&m);
    // The available index (offset 2) of a ring in the remembered region,
    // then of one in another region: both read the driver's value.
    for avail in [0x2000u64, 0x8100] {
        m.write_obj(3u16, GuestAddress(avail + 2)).unwrap();
        assert_eq!(view_at(avail).pending(&f), Ok(3), "ring at {avail:#x}");
    }
    // At an odd address the index cannot be read atomically: refused,
    // in the remembered region and outside it.
    for avail in [0x2001u64, 0x8101] {
        assert_eq!(
            view_at(avail).pending(&FastMem::new(&m)),
            Err(RingError::AvailUnreadable(avail)),
            "ring at {avail:#x}"
        );
    }
}

#[test]
fn descriptors_are_read_from_any_region_even_unaligned() {
    let m = mem();
    // A one-descriptor chain (addr 0x8800, len 60, no flags) at descriptor
    // tables in the remembered region, in another, and unaligned.
    for table in [0x1000u64, 0x8000, 0x1003] {
        m.write_obj(0x8800u64, GuestAddress(table)).unwrap();
        m.write_obj(60u32, GuestAddress(table + 8)).unwrap();
        m.write_obj(0u16, GuestAddress(table + 12)).unwrap();
        let mut r = view_at(0x2000);
        r.desc = table;
        let mut seen = Vec::new();
        let total = r
            .walk_chain_from(&FastMem::new(&m), 0, None, false, false, 1 << 16, |a, l| {
                seen.push((a, l));
                Ok(true)
            })
            .unwrap();
        assert_eq!(
            (total, seen),
            (60, vec![(0x8800, 60)]),
            "table at {table:#x}"
        );
    }
}
