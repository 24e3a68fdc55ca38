//! What one frontend connection set up (vrings, memory, features), and how
//! PMD threads pick it up: a generation counter checked once per batch, the
//! `Arc` re-read under a mutex only when the generation moved; within a
//! session, rings are used without their locks (see [`Session`]).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use vhost_user_backend::VringT;
use virtio_queue::QueueT;
use vm_memory::GuestAddressSpace;
use vm_memory::GuestMemoryAtomic;

use crate::features::Negotiated;
use crate::ring::{AnyRing, GuestMem, RingError};

pub type Gm = GuestMemoryAtomic<GuestMem>;
pub type Vring = vhost_user_backend::VringMutex<Gm>;

/// Bit of [`Session`]'s per-vring index word saying a PMD left indices there.
const IDX_VALID: u64 = 1 << 32;

/// The state of one frontend connection.
///
/// The PMDs run batches without the vring locks: each keeps the ring's
/// configuration in a [`RingCache`], valid while the session's control
/// generation does not move, and the ring's two indices live in one atomic
/// word per vring while PMDs own the ring. The control thread changes a
/// ring only inside [`Session::pause`], which stops new batches, waits for
/// the ones in flight, folds the PMDs' indices back into the queue, and
/// bumps the generation (so every PMD re-reads the configuration, under
/// the lock, once).
pub struct Session {
    vrings: Vec<Vring>,
    pub mem: Gm,
    /// Per vring: a PMD batch is in flight (also serializes PMDs sharing a
    /// transmit vring).
    pub busy: Vec<AtomicBool>,
    /// Per vring: `next_avail | next_used << 16 | IDX_VALID` as the last
    /// PMD batch left them; 0 when the queue's own indices are current.
    idx: Vec<AtomicU64>,
    /// Bumped by every control change (see [`Session::pause`]).
    generation: AtomicU64,
    /// Number of [`Pause`] guards alive: no batch starts while non-zero.
    paused: AtomicU32,
    /// Negotiated virtio features.
    pub acked: AtomicU64,
    /// The memory table that passed [`crate::memcheck`]; batches only run on
    /// it (the handler installs a new table before the backend can check it).
    validated: Mutex<Option<Arc<GuestMem>>>,
    validated_ptr: AtomicUsize,
}

/// While alive, no PMD batch runs on the session (see [`Session::pause`]).
pub struct Pause<'a>(&'a Session);

impl Drop for Pause<'_> {
    fn drop(&mut self) {
        // Changes made under the pause invalidate what PMDs cached.
        self.0.generation.fetch_add(1, Ordering::SeqCst);
        self.0.paused.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Session {
    pub fn new(mem: Gm, vrings: Vec<Vring>) -> Session {
        Session {
            busy: (0..vrings.len()).map(|_| AtomicBool::new(false)).collect(),
            idx: (0..vrings.len()).map(|_| AtomicU64::new(0)).collect(),
            vrings,
            mem,
            generation: AtomicU64::new(1),
            paused: AtomicU32::new(0),
            acked: AtomicU64::new(0),
            validated: Mutex::new(None),
            validated_ptr: AtomicUsize::new(0),
        }
    }

    /// Stops PMD batches on every vring until the guard is dropped, and
    /// brings the queues' indices up to date: the control thread holds one
    /// while it reads or changes a ring, the memory table or the features.
    pub fn pause(&self) -> Pause<'_> {
        // SeqCst against the PMD's busy flag then paused check: either the
        // PMD sees the pause, or this thread sees its busy flag and waits.
        self.paused.fetch_add(1, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        for i in 0..self.vrings.len() {
            self.wait_idle(i);
            self.fold_indices(i);
        }
        Pause(self)
    }

    /// Moves the indices a PMD left for vring `i` into its queue.
    fn fold_indices(&self, i: usize) {
        let (Some(v), Some(idx)) = (self.vrings.get(i), self.idx.get(i)) else {
            return;
        };
        let w = idx.swap(0, Ordering::AcqRel);
        if w & IDX_VALID != 0 {
            let mut st = v.get_mut();
            let q = st.get_queue_mut();
            q.set_next_avail(w as u16);
            q.set_next_used((w >> 16) as u16);
        }
    }

    /// The queue's own `(next_avail, next_used)` of vring `i` (tests).
    #[cfg(test)]
    pub(crate) fn queue_indices(&self, i: usize) -> (u16, u16) {
        let st = self.vrings[i].get_ref();
        (st.get_queue().next_avail(), st.get_queue().next_used())
    }

    /// Sets vring `i`'s next available index, as SET_VRING_BASE does
    /// (tests; the caller holds a [`Pause`]).
    #[cfg(test)]
    pub(crate) fn set_queue_next_avail(&self, i: usize, v: u16) {
        self.vrings[i].set_queue_next_avail(v);
    }

    /// Starts or stops vring `i` (tests; the caller holds a [`Pause`]).
    #[cfg(test)]
    pub(crate) fn set_queue_ready(&self, i: usize, ready: bool) {
        self.vrings[i].set_queue_ready(ready);
    }

    /// Records `mem` as checked (or, with `None`, that nothing is).
    pub fn set_validated(&self, mem: Option<Arc<GuestMem>>) {
        let mut v = self.validated.lock().unwrap_or_else(|e| e.into_inner());
        self.validated_ptr.store(
            mem.as_ref().map_or(0, |m| Arc::as_ptr(m) as usize),
            Ordering::Release,
        );
        *v = mem;
    }

    fn vring(&self, i: usize) -> Option<&Vring> {
        self.vrings.get(i)
    }

    /// Whether vring `i` is set up, started and enabled.
    pub fn vring_running(&self, i: usize) -> bool {
        self.vring(i).is_some_and(|v| {
            let st = v.get_ref();
            st.get_queue().ready() && st.is_enabled()
        })
    }

    /// Waits until no PMD batch is in flight on vring `i` (the control
    /// thread stopping a ring). Gives up after about a second.
    pub fn wait_idle(&self, i: usize) {
        let Some(b) = self.busy.get(i) else { return };
        for n in 0..100_000u32 {
            if !b.load(Ordering::SeqCst) {
                return;
            }
            if n < 1000 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(10));
            }
        }
        tracing::warn!(vring = i, "datapath still busy on a vring being stopped");
    }

    /// Starts a batch on vring `i`: takes the vring's in-flight flag (spinning
    /// while another PMD holds it). On success `cache.ring()` is the ring
    /// with its current indices. False when the ring is not running (or the
    /// control thread holds a [`Pause`]). No lock is taken unless the
    /// control generation moved since `cache` was filled.
    #[inline]
    pub fn begin(&self, i: usize, cache: &mut RingCache) -> bool {
        let (Some(busy), Some(idx)) = (self.busy.get(i), self.idx.get(i)) else {
            return false;
        };
        while busy
            .compare_exchange_weak(false, true, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        if self.paused.load(Ordering::SeqCst) != 0 {
            busy.store(false, Ordering::Release);
            return false;
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let w = idx.load(Ordering::Acquire);
        let me = self as *const Session as usize;
        if cache.generation != generation || cache.session != me || cache.index != i {
            self.refresh(i, cache);
            cache.generation = generation;
            cache.session = me;
            cache.index = i;
        }
        let Some(ar) = cache.ring.as_mut() else {
            busy.store(false, Ordering::Release);
            return false;
        };
        if w & IDX_VALID != 0 {
            // Where the last batch (of any PMD) left the ring.
            ar.view.set_marks(w as u16, (w >> 16) as u16);
        }
        true
    }

    /// Re-reads vring `i`'s configuration under its lock (the slow path of
    /// [`Session::begin`]); `cache.ring` becomes `None` when it is not
    /// running or its memory is not checked.
    #[cold]
    fn refresh(&self, i: usize, cache: &mut RingCache) {
        cache.ring = None;
        let Some(vring) = self.vring(i) else { return };
        let st = vring.get_ref();
        let q = st.get_queue();
        if !q.ready() || !st.is_enabled() {
            return;
        }
        let neg = Negotiated::from_bits(self.acked.load(Ordering::Acquire));
        let view = AnyRing::from_queue(q, neg.packed);
        drop(st);
        let mem = self.mem.memory().into_inner();
        if Arc::as_ptr(&mem) as usize != self.validated_ptr.load(Ordering::Acquire) {
            // A memory table not (yet) checked: never touch it.
            return;
        }
        cache.ring = Some(ActiveRing {
            index: i,
            view,
            mem,
            neg,
        });
    }

    /// Ends a batch begun with [`Session::begin`] on `cache`: leaves the
    /// indices for the next batch, stops the ring if it turned out broken,
    /// interrupts the guest if asked (these two take the vring lock), and
    /// releases the in-flight flag.
    #[inline]
    pub fn end(&self, cache: &mut RingCache, interrupt: bool, broken: Option<&RingError>) {
        let Some(ar) = cache.ring.as_ref() else {
            return;
        };
        let i = ar.index;
        let (Some(vring), Some(idx), Some(busy)) =
            (self.vring(i), self.idx.get(i), self.busy.get(i))
        else {
            return;
        };
        let (avail, used) = ar.view.marks();
        let w = IDX_VALID | u64::from(avail) | (u64::from(used) << 16);
        idx.store(w, Ordering::Release);
        if broken.is_some() || interrupt {
            self.end_slow(vring, i, ar, interrupt, broken.is_some());
            if broken.is_some() {
                cache.ring = None;
            }
        }
        busy.store(false, Ordering::Release);
    }

    #[cold]
    fn end_slow(&self, vring: &Vring, i: usize, ar: &ActiveRing, interrupt: bool, broken: bool) {
        let mut st = vring.get_mut();
        if broken {
            // The frontend has to set the ring up again; every PMD's cache
            // must see that.
            if ar.view.same_ring(st.get_queue()) {
                ar.view.store_indices(st.get_queue_mut());
                if let Some(idx) = self.idx.get(i) {
                    idx.store(0, Ordering::Release);
                }
                st.get_queue_mut().set_ready(false);
            }
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        if interrupt
            && let Some(call) = st.get_call()
            && let Err(e) = call.notify()
        {
            tracing::debug!(error = %e, "guest interrupt failed");
        }
    }
}

/// A ring being worked on by a PMD for one batch.
pub struct ActiveRing {
    pub index: usize,
    pub view: AnyRing,
    pub mem: Arc<GuestMem>,
    pub neg: Negotiated,
}

/// A PMD's copy of one vring's configuration, valid for one control
/// generation of one session.
#[derive(Default)]
pub struct RingCache {
    generation: u64,
    session: usize,
    index: usize,
    ring: Option<ActiveRing>,
}

impl RingCache {
    /// The ring of the batch begun last (valid between `begin` and `end`).
    #[inline]
    pub fn ring(&self) -> Option<&ActiveRing> {
        self.ring.as_ref()
    }

    #[inline]
    pub fn ring_mut(&mut self) -> Option<&mut ActiveRing> {
        self.ring.as_mut()
    }

    /// Forgets the cached ring (next `begin` re-reads it).
    pub fn invalidate(&mut self) {
        self.generation = 0;
        self.ring = None;
    }
}

/// The published session of a port.
#[derive(Default)]
pub struct SessionSlot {
    generation: AtomicU64,
    current: Mutex<Option<Arc<Session>>>,
}

impl SessionSlot {
    pub fn publish(&self, s: Option<Arc<Session>>) {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        *cur = s;
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn get(&self) -> Option<Arc<Session>> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A PMD's cached view of a [`SessionSlot`].
#[derive(Default)]
pub struct SessionCache {
    generation: u64,
    session: Option<Arc<Session>>,
    loaded: bool,
}

impl SessionCache {
    /// The current session; one atomic load unless it changed.
    #[inline]
    pub fn get(&mut self, slot: &SessionSlot) -> Option<&Arc<Session>> {
        let g = slot.generation.load(Ordering::Acquire);
        if g != self.generation || !self.loaded {
            self.session = slot.get();
            self.generation = g;
            self.loaded = true;
        }
        self.session.as_ref()
    }
}
