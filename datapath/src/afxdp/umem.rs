//! The UMEM (the frame area shared with the kernel) and the four
//! single-producer/single-consumer rings of an AF_XDP socket.
//!
//! A ring is a power-of-two array of entries with a free-running `u32`
//! producer and consumer index; entry `i` lives at `i & mask`. Each side
//! keeps a cached copy of the other side's index and reads the shared one
//! (acquire) only when the cache says the ring is full or empty, and
//! publishes its own index (release) once per batch.

use std::io;
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};

use super::sys::{XDP_RING_NEED_WAKEUP, XdpRingOffset, XdpUmemReg, setopt};

/// Bytes of one UMEM frame (a chunk): a frame up to the MTU fits with the
/// kernel's 256 bytes of XDP headroom in front of it.
pub(super) const FRAME_SIZE: usize = 2048;
/// Frames of the receive side (the fill ring and the rx ring hold this
/// many): 1024 frames absorb a stall of several milliseconds at line rate,
/// as the AF_PACKET port's small-frame ring does.
pub(super) const RX_FRAMES: u32 = 1024;
/// Frames of the transmit side (tx and completion rings).
pub(super) const TX_FRAMES: u32 = 512;

/// Entries ready to consume when the producer is at `prod` and the consumer
/// at `cons` (both free-running).
#[inline]
pub(super) fn ready(prod: u32, cons: u32) -> u32 {
    prod.wrapping_sub(cons)
}

/// Entries a producer at `prod` may still write when the consumer is at
/// `cons`, in a ring of `size` entries.
#[inline]
pub(super) fn room(size: u32, prod: u32, cons: u32) -> u32 {
    size - ready(prod, cons)
}

/// One ring: either user space produces (fill, tx) or consumes (rx,
/// completion). Entries are `T` (`u64` frame addresses or `XdpDesc`).
pub(super) struct XskRing<T> {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    entries: *mut T,
    mask: u32,
    /// Our own index (producer or consumer, whichever side we are).
    local: u32,
    /// The last value read of the other side's index.
    cached: u32,
    /// The mapping to unmap on drop (`None` for a test ring).
    map: Option<(*mut libc::c_void, usize)>,
    _t: PhantomData<T>,
}

// SAFETY: the ring memory is owned by this value (and the kernel, through
// the ring protocol); it is only accessed through `&mut self`.
unsafe impl<T: Send> Send for XskRing<T> {}

impl<T: Copy> XskRing<T> {
    /// Maps ring `pgoff` of socket `fd` with `size` entries laid out as
    /// `off` says.
    pub(super) fn map(
        fd: RawFd,
        pgoff: libc::off_t,
        off: &XdpRingOffset,
        size: u32,
    ) -> io::Result<XskRing<T>> {
        let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        // SAFETY: maps the ring the kernel allocated for this socket at
        // `pgoff`; the result is checked against MAP_FAILED.
        let m = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff,
            )
        };
        if m == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = m.cast::<u8>();
        // SAFETY: the offsets come from XDP_MMAP_OFFSETS and lie inside the
        // `len` bytes just mapped; the kernel aligns each field.
        let ring = unsafe {
            XskRing::from_raw(
                base.add(off.producer as usize).cast(),
                base.add(off.consumer as usize).cast(),
                base.add(off.flags as usize).cast(),
                base.add(off.desc as usize).cast(),
                size,
            )
        };
        Ok(XskRing {
            map: Some((m, len)),
            ..ring
        })
    }

    /// A ring over memory the caller provides.
    ///
    /// # Safety
    /// The three index words and `size` entries must stay valid (and be
    /// accessed by the other side only atomically, for the indexes) for the
    /// life of the ring; `size` must be a power of two.
    pub(super) unsafe fn from_raw(
        producer: *const AtomicU32,
        consumer: *const AtomicU32,
        flags: *const AtomicU32,
        entries: *mut T,
        size: u32,
    ) -> XskRing<T> {
        debug_assert!(size.is_power_of_two());
        XskRing {
            producer,
            consumer,
            flags,
            entries,
            mask: size - 1,
            local: 0,
            cached: 0,
            map: None,
            _t: PhantomData,
        }
    }

    fn size(&self) -> u32 {
        self.mask + 1
    }

    fn index(&self, which: *const AtomicU32) -> &AtomicU32 {
        // SAFETY: the index words live as long as the ring (see `map` and
        // `from_raw`).
        unsafe { &*which }
    }

    /// Whether the kernel asks for a syscall to make progress on this ring.
    #[inline]
    pub(super) fn needs_wakeup(&self) -> bool {
        self.index(self.flags).load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }

    // --- Producer side (fill, tx) ---

    /// How many entries may be produced now (at most `want`; re-reads the
    /// consumer only when the cached value leaves too little room).
    #[inline]
    pub(super) fn prod_room(&mut self, want: u32) -> u32 {
        let mut n = room(self.size(), self.local, self.cached);
        if n < want {
            self.cached = self.index(self.consumer).load(Ordering::Acquire);
            n = room(self.size(), self.local, self.cached);
        }
        n.min(want)
    }

    /// Writes entry `i` (0-based) past the producer index; `i` must be
    /// below what [`XskRing::prod_room`] granted.
    #[inline]
    pub(super) fn prod_write(&mut self, i: u32, v: T) {
        let at = (self.local.wrapping_add(i) & self.mask) as usize;
        // SAFETY: `at <= mask`, inside the entry array; the entry is ours
        // (between the producer and the consumer's position + size).
        unsafe { self.entries.add(at).write_volatile(v) }
    }

    /// Publishes `n` written entries to the kernel.
    #[inline]
    pub(super) fn prod_submit(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        self.index(self.producer)
            .store(self.local, Ordering::Release);
    }

    /// Re-reads the consumer's index.
    #[inline]
    pub(super) fn prod_refresh(&mut self) {
        self.cached = self.index(self.consumer).load(Ordering::Acquire);
    }

    /// Entries produced and not yet consumed by the kernel (as of the last
    /// look at its index: [`XskRing::prod_refresh`]).
    #[inline]
    pub(super) fn prod_outstanding(&self) -> u32 {
        ready(self.local, self.cached)
    }

    // --- Consumer side (rx, completion) ---

    /// How many entries are ready to consume (at most `want`; re-reads the
    /// producer only when the cached value shows fewer).
    #[inline]
    pub(super) fn cons_ready(&mut self, want: u32) -> u32 {
        let mut n = ready(self.cached, self.local);
        if n < want {
            self.cached = self.index(self.producer).load(Ordering::Acquire);
            n = ready(self.cached, self.local);
        }
        n.min(want)
    }

    /// Reads entry `i` past the consumer index; `i` must be below what
    /// [`XskRing::cons_ready`] granted.
    #[inline]
    pub(super) fn cons_read(&self, i: u32) -> T {
        let at = (self.local.wrapping_add(i) & self.mask) as usize;
        // SAFETY: `at <= mask`, inside the entry array; the kernel wrote the
        // entry before publishing the producer index we acquired.
        unsafe { self.entries.add(at).read_volatile() }
    }

    /// Hands `n` consumed entries back to the kernel.
    #[inline]
    pub(super) fn cons_release(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        self.index(self.consumer)
            .store(self.local, Ordering::Release);
    }
}

impl<T> Drop for XskRing<T> {
    fn drop(&mut self) {
        if let Some((m, len)) = self.map {
            // SAFETY: unmaps exactly the mapping made in `XskRing::map`.
            unsafe {
                libc::munmap(m, len);
            }
        }
    }
}

/// The frame area: anonymous memory registered with one socket.
pub(super) struct Umem {
    base: *mut u8,
    len: usize,
}

// SAFETY: the area is plain memory owned by this value; which frames each
// thread touches is decided by ring ownership (receive frames by the
// receive queue, transmit frames by the transmit side).
unsafe impl Send for Umem {}
// SAFETY: as above: concurrent users touch disjoint frames.
unsafe impl Sync for Umem {}

impl Umem {
    /// Maps `frames` frames and registers them with socket `fd`.
    pub(super) fn register(fd: RawFd, frames: u32) -> io::Result<Umem> {
        let len = frames as usize * FRAME_SIZE;
        // SAFETY: a fresh private anonymous mapping; checked below.
        let m = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if m == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let umem = Umem {
            base: m.cast(),
            len,
        };
        let reg = XdpUmemReg {
            addr: m as u64,
            len: len as u64,
            chunk_size: FRAME_SIZE as u32,
            ..Default::default()
        };
        setopt(fd, super::sys::XDP_UMEM_REG, &reg)?;
        Ok(umem)
    }

    /// `len` bytes at UMEM offset `addr`, if they lie inside the area.
    #[inline]
    pub(super) fn frame(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let a = usize::try_from(addr).ok()?;
        if a.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: in bounds (checked); the frame is owned by the caller's
        // side of the rings (the kernel handed it over and does not write
        // it until it is given back).
        Some(unsafe { std::slice::from_raw_parts(self.base.add(a), len) })
    }

    /// The whole frame at `addr` (a frame start), writable.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(super) fn frame_mut(&self, addr: u64) -> Option<&mut [u8]> {
        let a = usize::try_from(addr).ok()?;
        if a.checked_add(FRAME_SIZE)? > self.len {
            return None;
        }
        // SAFETY: in bounds (checked); transmit frames are owned by exactly
        // one transmit queue from the free list until the completion ring
        // returns them, so no one else reads or writes this frame now.
        Some(unsafe { std::slice::from_raw_parts_mut(self.base.add(a), FRAME_SIZE) })
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `Umem::register`.
        unsafe {
            libc::munmap(self.base.cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_arithmetic_wraps() {
        assert_eq!(ready(5, 3), 2);
        assert_eq!(ready(2, u32::MAX - 1), 4);
        assert_eq!(room(8, 2, u32::MAX - 1), 4);
        assert_eq!(room(8, 7, 7), 8);
        assert_eq!(room(8, 15, 7), 0);
    }

    /// A ring in test memory, with the "kernel" side driven by hand.
    struct Mock {
        prod: Box<AtomicU32>,
        cons: Box<AtomicU32>,
        flags: Box<AtomicU32>,
        slots: Vec<u64>,
    }

    impl Mock {
        fn new(size: usize, start: u32) -> Mock {
            Mock {
                prod: Box::new(AtomicU32::new(start)),
                cons: Box::new(AtomicU32::new(start)),
                flags: Box::new(AtomicU32::new(0)),
                slots: vec![0; size],
            }
        }
        fn ring(&mut self) -> XskRing<u64> {
            // SAFETY: the mock outlives the ring in each test.
            let mut r = unsafe {
                XskRing::from_raw(
                    &*self.prod,
                    &*self.cons,
                    &*self.flags,
                    self.slots.as_mut_ptr(),
                    self.slots.len() as u32,
                )
            };
            r.local = self.prod.load(Ordering::Relaxed);
            r.cached = r.local;
            r
        }
    }

    #[test]
    fn producer_ring_fills_wraps_and_waits_for_the_consumer() {
        // Indexes start just below the u32 wrap.
        let mut m = Mock::new(4, u32::MAX - 1);
        let mut r = m.ring();
        assert_eq!(r.prod_room(8), 4);
        for i in 0..3 {
            r.prod_write(i, 100 + u64::from(i));
        }
        r.prod_submit(3);
        assert_eq!(m.prod.load(Ordering::Relaxed), 1);
        assert_eq!(r.prod_room(8), 1);
        // The "kernel" consumes two entries: room comes back.
        assert_eq!(m.slots[(u32::MAX - 1) as usize & 3], 100);
        assert_eq!(m.slots[0], 102);
        m.cons.store(u32::MAX.wrapping_add(1), Ordering::Release);
        assert_eq!(r.prod_room(8), 3);
        assert_eq!(r.prod_outstanding(), 1);
        m.flags.store(XDP_RING_NEED_WAKEUP, Ordering::Relaxed);
        assert!(r.needs_wakeup());
    }

    #[test]
    fn consumer_ring_reads_what_was_published_in_order() {
        let mut m = Mock::new(4, u32::MAX);
        let mut r = m.ring();
        assert_eq!(r.cons_ready(4), 0);
        // The "kernel" produces three entries across the wrap.
        for (k, v) in [(u32::MAX, 7u64), (0, 8), (1, 9)] {
            m.slots[(k & 3) as usize] = v;
        }
        m.prod.store(2, Ordering::Release);
        assert_eq!(r.cons_ready(2), 2);
        assert_eq!((r.cons_read(0), r.cons_read(1)), (7, 8));
        r.cons_release(2);
        assert_eq!(m.cons.load(Ordering::Relaxed), 1);
        assert_eq!(r.cons_ready(4), 1);
        assert_eq!(r.cons_read(0), 9);
        r.cons_release(1);
        assert_eq!(r.cons_ready(4), 0);
    }

    #[test]
    fn frames_outside_the_area_are_refused() {
        let fake = Umem {
            base: std::ptr::NonNull::<u8>::dangling().as_ptr(),
            len: 0,
        };
        assert!(fake.frame(0, 1).is_none());
        assert!(fake.frame(u64::MAX, 1).is_none());
        assert!(fake.frame_mut(0).is_none());
        std::mem::forget(fake);
    }
}
