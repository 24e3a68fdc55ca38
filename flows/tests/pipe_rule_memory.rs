//! Bytes a rule costs in a pipeline, counted by a counting allocator: the
//! table keeps each rule's match only in the classifier's compact form.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use flows::table::{FlowModCommand, Pipeline};
use flows::text::parse_flow_mod;

/// Counts live heap bytes (requested sizes; malloc's own overhead of
/// about 16 bytes per allocation comes on top).
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged and only
// counts the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Installs `n` rules of the bench's memory scenario (an exact IPv4
/// destination each, one output) and returns the heap bytes they hold.
fn bytes_for_rules(n: u32) -> usize {
    let fms: Vec<_> = (0..n)
        .map(|i| {
            let dst = 0x0afd_0000u32 + i;
            let text = format!(
                "priority=100,ip,nw_dst={}.{}.{}.{},actions=output:2",
                dst >> 24,
                (dst >> 16) & 0xff,
                (dst >> 8) & 0xff,
                dst & 0xff
            );
            parse_flow_mod(&text, FlowModCommand::Add).expect("valid flow")
        })
        .collect();
    let mut p = Pipeline::new();
    let before = LIVE.load(Ordering::Relaxed);
    for fm in &fms {
        p.flow_mod(fm, 0).expect("added");
    }
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(p.n_rules(), n as usize);
    drop(fms);
    (after - before) as usize
}

#[test]
fn a_rule_costs_less_than_one_full_match_so_no_rule_keeps_a_duplicate_of_its_match() {
    let n = 100_000;
    let per_rule = bytes_for_rules(n) / n as usize;
    println!("{per_rule} bytes per rule");
    let full_match = std::mem::size_of::<flows::Match>();
    // A rule costs its body, its compact key and bucket in the classifier,
    // its action list and the id index (with the growth slack of those
    // tables): 276 bytes at 100k rules. Less than one full match, so no
    // rule carries a full copy of its match any more (it used to: about
    // 580 bytes per rule).
    assert!(
        per_rule < full_match,
        "{per_rule} bytes per rule (a full match alone is {full_match})"
    );
}
