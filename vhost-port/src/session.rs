//! What one frontend connection set up (vrings, memory, features), and how
//! PMD threads pick it up: a generation counter checked once per batch, the
//! `Arc` re-read under a mutex only when the generation moved.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use vhost_user_backend::VringT;
use virtio_queue::QueueT;
use vm_memory::GuestAddressSpace;
use vm_memory::GuestMemoryAtomic;

use crate::features::Negotiated;
use crate::ring::{GuestMem, RingError, RingView};

pub type Gm = GuestMemoryAtomic<GuestMem>;
pub type Vring = vhost_user_backend::VringMutex<Gm>;

/// The state of one frontend connection.
pub struct Session {
    vrings: Vec<Vring>,
    pub mem: Gm,
    /// Per vring: a PMD batch is in flight (also serializes PMDs sharing a
    /// transmit vring).
    pub busy: Vec<AtomicBool>,
    /// Negotiated virtio features.
    pub acked: AtomicU64,
    /// The memory table that passed [`crate::memcheck`]; batches only run on
    /// it (the handler installs a new table before the backend can check it).
    validated: Mutex<Option<Arc<GuestMem>>>,
    validated_ptr: AtomicUsize,
}

impl Session {
    pub fn new(mem: Gm, vrings: Vec<Vring>) -> Session {
        Session {
            busy: (0..vrings.len()).map(|_| AtomicBool::new(false)).collect(),
            vrings,
            mem,
            acked: AtomicU64::new(0),
            validated: Mutex::new(None),
            validated_ptr: AtomicUsize::new(0),
        }
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
            if !b.load(Ordering::Acquire) {
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
    /// while another PMD holds it), then copies the ring under the vring lock.
    /// `None` when the ring is not running.
    pub fn begin(&self, i: usize) -> Option<ActiveRing> {
        let vring = self.vring(i)?;
        let busy = self.busy.get(i)?;
        while busy
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        let st = vring.get_ref();
        let q = st.get_queue();
        if !q.ready() || !st.is_enabled() {
            drop(st);
            busy.store(false, Ordering::Release);
            return None;
        }
        let view = RingView::from_queue(q);
        drop(st);
        let mem = self.mem.memory().into_inner();
        if Arc::as_ptr(&mem) as usize != self.validated_ptr.load(Ordering::Acquire) {
            // A memory table not (yet) checked: never touch it.
            busy.store(false, Ordering::Release);
            return None;
        }
        Some(ActiveRing {
            index: i,
            view,
            mem,
            neg: Negotiated::from_bits(self.acked.load(Ordering::Acquire)),
        })
    }

    /// Ends a batch: writes the indices back (if the ring was not replaced
    /// meanwhile), stops the ring if it turned out broken, interrupts the
    /// guest if asked, and releases the in-flight flag.
    pub fn end(&self, ring: &ActiveRing, interrupt: bool, broken: Option<&RingError>) {
        let Some(vring) = self.vring(ring.index) else {
            return;
        };
        let mut st = vring.get_mut();
        if ring.view.same_ring(st.get_queue()) {
            ring.view.store_indices(st.get_queue_mut());
            if broken.is_some() {
                // The frontend has to set the ring up again.
                st.get_queue_mut().set_ready(false);
            }
        }
        if interrupt
            && let Some(call) = st.get_call()
            && let Err(e) = call.notify()
        {
            tracing::debug!(error = %e, "guest interrupt failed");
        }
        drop(st);
        if let Some(b) = self.busy.get(ring.index) {
            b.store(false, Ordering::Release);
        }
    }
}

/// A ring being worked on by a PMD for one batch.
pub struct ActiveRing {
    pub index: usize,
    pub view: RingView,
    pub mem: Arc<GuestMem>,
    pub neg: Negotiated,
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
