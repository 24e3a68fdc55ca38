//! Bytes the datapath allocates, and on which thread, counted by a
//! counting allocator (per thread, so tests running side by side do not
//! see each other's allocations).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use datapath::dpif::SAMPLE_QUEUE;
use datapath::{Datapath, DpConfig, Packet, Sampled, UpcallHandler, UpcallResult};
use flows::{DpAction, FlowKey};

/// Counts every byte the current thread requests (`alloc`,
/// `alloc_zeroed`, growth).
struct Counting;

thread_local! {
    static HERE: Cell<usize> = const { Cell::new(0) };
}

fn count(n: usize) {
    let _ = HERE.try_with(|c| c.set(c.get() + n));
}

fn here() -> usize {
    HERE.with(Cell::get)
}

// SAFETY: forwards every call to the system allocator unchanged and only
// counts the sizes (in a const thread-local, which never allocates).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size());
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(l) }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        count(l.size());
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc_zeroed(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `alloc` or `alloc_zeroed` with this layout.
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        count(new.saturating_sub(l.size()));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

struct Nothing;

impl UpcallHandler for Nothing {
    fn upcall(&self, _key: &FlowKey, _packet: &Packet) -> UpcallResult {
        UpcallResult::default()
    }

    fn userspace(&self, _action: &DpAction, _key: &FlowKey, _packet: &Packet) {}
}

#[test]
fn the_sample_queue_is_allocated_when_an_exporter_first_asks_for_it() {
    let queue = SAMPLE_QUEUE * std::mem::size_of::<Sampled>();
    let dp = Datapath::new(DpConfig::default(), Arc::new(Nothing)).expect("datapath");
    let first = here();
    let rx = dp.samples();
    let asked = here() - first;
    let second = here();
    let again = dp.samples();
    let asked_again = here() - second;
    println!("first samples() {asked} B, second {asked_again} B");
    // The queue's slots (~400 bytes each, written when the queue is
    // made: 3.2 MiB) come with the first exporter, so a switch that
    // exports nothing does not hold them.
    assert!(
        asked >= queue,
        "first samples() allocated {asked} B < {queue} B"
    );
    assert!(
        asked_again < queue / 8,
        "second samples() allocated {asked_again} B"
    );
    assert!(again.same_channel(&rx));
}

#[test]
fn each_pmd_allocates_its_caches_and_buffers_on_its_own_thread() {
    let before = here();
    let dp = Datapath::new(DpConfig::default(), Arc::new(Nothing)).expect("datapath");
    let created = here() - before;
    println!("Datapath::new allocated {created} B on the caller's thread");
    // A PMD's EMC (~3 MiB) and packet batches (2 MiB each) are made on
    // the PMD's thread, in its malloc arena, where calloc does not clear
    // fresh pages; made on the caller's (main) arena they were cleared,
    // and so resident, from the start (about 7 MiB per PMD: 10 MB here
    // then, 3 MB now). What is left here: the shared tunnel header table
    // (1.4 MiB), the connection tracker and small parts.
    let one_batch =
        datapath::BATCH_SIZE * (datapath::packet::HEADROOM + datapath::packet::MAX_FRAME);
    assert!(
        created < 2 * one_batch,
        "{created} B allocated on the caller's thread (a batch is {one_batch} B)"
    );
    drop(dp);
}
