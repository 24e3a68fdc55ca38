//! Bytes an empty exact-match cache writes when it is created, counted by
//! an allocator that tells zeroed requests (calloc: fresh, untouched pages
//! for a table this size) from plain ones (which the caller then writes).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use flows::emc::{EMC_DEFAULT_ENTRIES, ExactMatchCache};
use flows::key::FlowKey;

/// Counts the bytes requested through `alloc` and through `alloc_zeroed`.
struct Counting;

static PLAIN: AtomicUsize = AtomicUsize::new(0);
static ZEROED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged and only
// counts the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        PLAIN.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(l) }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        ZEROED.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc_zeroed(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `alloc` or `alloc_zeroed` with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn a_new_emc_leaves_its_key_array_to_the_zeroing_allocator_so_its_pages_stay_untouched() {
    let (plain0, zeroed0) = (
        PLAIN.load(Ordering::Relaxed),
        ZEROED.load(Ordering::Relaxed),
    );
    let mut c = ExactMatchCache::<u32>::new(EMC_DEFAULT_ENTRIES);
    let plain = PLAIN.load(Ordering::Relaxed) - plain0;
    let zeroed = ZEROED.load(Ordering::Relaxed) - zeroed0;
    println!("plain {plain} B, zeroed {zeroed} B");
    let keys = EMC_DEFAULT_ENTRIES * std::mem::size_of::<FlowKey>();
    // The keys (368 bytes each, ~3 MiB in all) and the hashes come
    // zeroed; at most the values array (a few bytes a slot) is written at
    // creation. Before, the keys were written one default key at a time,
    // which made all ~3 MiB resident in every PMD thread at start.
    assert!(
        zeroed >= keys,
        "keys not zero-allocated: {zeroed} B < {keys} B"
    );
    assert!(
        plain <= EMC_DEFAULT_ENTRIES * 16,
        "{plain} B written at creation (keys are {keys} B)"
    );
    // A zero-allocated slot behaves as an empty one, also for key 0 and
    // hash 0 (the all-zero key a zeroed slot holds).
    let zero = FlowKey::default();
    assert_eq!(c.lookup(&zero, 0), None);
    c.insert(&zero, 0, 7);
    assert_eq!(c.lookup(&zero, 0), Some(7));
    assert_eq!(c.len(), 1);
}
