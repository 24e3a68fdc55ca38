//! Bounds-checked access to a split virtqueue in guest memory, as the
//! device side sees it: reading available chains, writing used elements,
//! deciding whether the driver wants an interrupt.
//!
//! Every guest address is checked against the memory table before it is
//! touched. [`FastMem`] checks it against the region it remembers (one
//! subtraction and comparison) and then copies, loads or stores through the
//! region's mapping itself (`memcpy`, an `AtomicU16` on an aligned ring
//! word, one unaligned descriptor read: the `unsafe` blocks in `FastMem`);
//! anything else goes through `vm-memory`'s checked accessors (`get_slice`,
//! `load`, `store`, `read_obj`, `read_slice`, `write_slice`).

use std::num::Wrapping;
use std::sync::atomic::{AtomicU16, Ordering, fence};

use std::cell::Cell;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueT};

use vm_memory::{
    Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap,
    MemoryRegionAddress, VolatileSlice,
};

/// The guest memory a port works on.
pub type GuestMem = GuestMemoryMmap<()>;

pub(crate) const DESC_F_NEXT: u16 = 1;
pub(crate) const DESC_F_WRITE: u16 = 2;
pub(crate) const DESC_F_INDIRECT: u16 = 4;
const USED_F_NO_NOTIFY: u16 = 1;
const AVAIL_F_NO_INTERRUPT: u16 = 1;
pub(crate) const DESC_SIZE: u64 = 16;
const _: () = assert!(std::mem::size_of::<Descriptor>() == DESC_SIZE as usize);

/// A problem with the ring itself: the queue cannot be trusted any more and
/// is stopped until the frontend sets it up again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    #[error("available ring at {0:#x} is outside guest memory")]
    AvailUnreadable(u64),
    #[error("used ring at {0:#x} is outside guest memory")]
    UsedUnwritable(u64),
    #[error("available index jumped from {from} to {to} on a ring of {size}")]
    AvailIdxJump { from: u16, to: u16, size: u16 },
    #[error("available ring names descriptor {head} on a ring of {size}")]
    HeadOutOfRange { head: u16, size: u16 },
    #[error("ring size {0} is not a power of two up to 32768")]
    BadSize(u16),
    #[error("packed ring descriptor {0} counted as available is not any more")]
    DescRetracted(u16),
}

/// A problem with one descriptor chain: the chain is returned unused and
/// counted as an error, the queue keeps working.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("descriptor {0} outside the descriptor table")]
    IndexOutOfRange(u16),
    #[error("descriptor table entry at {0:#x} is outside guest memory")]
    DescUnreadable(u64),
    #[error("descriptor chain longer than its table (loop?)")]
    TooLong,
    #[error("indirect descriptor inside an indirect table")]
    NestedIndirect,
    #[error("indirect descriptor with NEXT set")]
    IndirectWithNext,
    #[error("indirect descriptors were not negotiated")]
    IndirectNotNegotiated,
    #[error("indirect table of {0} bytes is malformed")]
    BadIndirectTable(u32),
    #[error("zero-length descriptor")]
    ZeroLength,
    #[error("buffer id {0} is beyond the ring")]
    BadId(u16),
    #[error("descriptor {0} of a chain is not marked available")]
    NotAvailable(u16),
    #[error("descriptor chain of {0} bytes is too large")]
    TooBig(u64),
    #[error("descriptor has the wrong direction (device-writable {0})")]
    WrongDirection(bool),
    #[error("buffer {addr:#x}+{len} is outside guest memory")]
    OutOfMemory { addr: u64, len: u32 },
    #[error("frame shorter than the virtio-net header ({0} bytes)")]
    Truncated(usize),
    #[error("bad virtio-net header: {0}")]
    Header(#[from] wire::vnet_hdr::HdrError),
}

/// A copy of a queue's configuration and indices, taken under the vring
/// lock at the start of a batch and written back at its end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingView {
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    pub size: u16,
    pub event_idx: bool,
    pub next_avail: Wrapping<u16>,
    pub next_used: Wrapping<u16>,
}

/// The checks every buffer of a chain passes, in either ring layout: the
/// direction the caller needs, a non-zero length, and a running total
/// (`total`, updated) of at most `max_bytes`.
#[inline]
pub(crate) fn check_buffer(
    flags: u16,
    len: u32,
    writable: bool,
    total: &mut u64,
    max_bytes: u64,
) -> Result<(), ChainError> {
    if (flags & DESC_F_WRITE != 0) != writable {
        return Err(ChainError::WrongDirection(!writable));
    }
    if len == 0 {
        return Err(ChainError::ZeroLength);
    }
    *total = total.saturating_add(u64::from(len));
    if *total > max_bytes {
        return Err(ChainError::TooBig(*total));
    }
    Ok(())
}

/// Refuses ring sizes other than powers of two up to 32768 (the slot of an
/// index is then a mask, and bit 15 of a packed ring's mark is free for its
/// wrap counter).
pub(crate) fn check_size(size: u16) -> Result<(), RingError> {
    if size == 0 || !size.is_power_of_two() || size > 32768 {
        return Err(RingError::BadSize(size));
    }
    Ok(())
}

/// Whether the `len` bytes at guest `addr` lie in guest memory (without
/// wrapping past the top of the address space).
pub(crate) fn area_fits(mem: &GuestMem, addr: u64, len: u64) -> bool {
    addr.checked_add(len)
        .is_some_and(|_| mem.check_range(GuestAddress(addr), len as usize))
}

impl RingView {
    pub fn from_queue(q: &Queue) -> RingView {
        RingView {
            desc: q.desc_table(),
            avail: q.avail_ring(),
            used: q.used_ring(),
            size: q.size(),
            event_idx: q.event_idx_enabled(),
            next_avail: Wrapping(q.next_avail()),
            next_used: Wrapping(q.next_used()),
        }
    }

    /// Checks the ring's size and that its three areas lie in guest memory.
    pub fn validate(&self, mem: &GuestMem) -> Result<(), RingError> {
        check_size(self.size)?;
        let n = u64::from(self.size);
        let fits = |addr: u64, len: u64| area_fits(mem, addr, len);
        if !fits(self.desc, n * DESC_SIZE) {
            return Err(RingError::AvailUnreadable(self.desc));
        }
        if !fits(self.avail, 6 + 2 * n) {
            return Err(RingError::AvailUnreadable(self.avail));
        }
        if !fits(self.used, 6 + 8 * n) {
            return Err(RingError::UsedUnwritable(self.used));
        }
        Ok(())
    }

    fn avail_at(&self, off: u64) -> u64 {
        self.avail.wrapping_add(off)
    }

    /// The ring slot of free-running index `i`. The size is a power of two
    /// ([`RingView::validate`] refuses other sizes before any batch), so a
    /// mask replaces the division, which the compiler cannot know to avoid
    /// and which costs tens of cycles, several times per frame. Whatever
    /// the size, the slot is below it (and every address is still checked
    /// against guest memory).
    #[inline]
    fn slot(&self, i: Wrapping<u16>) -> u64 {
        u64::from(i.0 & self.size.wrapping_sub(1))
    }

    /// Address of the available-ring entry `ahead` slots after `next_avail`.
    fn avail_entry(&self, ahead: u16) -> u64 {
        let slot = self.slot(self.next_avail + Wrapping(ahead));
        self.avail_at(4 + 2 * slot)
    }

    /// Address of entry `idx` of the ring's descriptor table.
    fn desc_addr(&self, idx: u16) -> u64 {
        self.desc.wrapping_add(u64::from(idx) * DESC_SIZE)
    }

    fn used_at(&self, off: u64) -> u64 {
        self.used.wrapping_add(off)
    }

    /// Number of chains the driver has made available and we have not taken.
    pub fn pending(&self, mem: &FastMem<'_>) -> Result<u16, RingError> {
        let idx = mem
            .load_u16(self.avail_at(2), Ordering::Acquire)
            .ok_or(RingError::AvailUnreadable(self.avail))?;
        let n = (Wrapping(idx) - self.next_avail).0;
        if n > self.size {
            return Err(RingError::AvailIdxJump {
                from: self.next_avail.0,
                to: idx,
                size: self.size,
            });
        }
        Ok(n)
    }

    /// Takes the head of the next available chain (the caller checked
    /// [`RingView::pending`]).
    pub fn pop_head(&mut self, mem: &FastMem<'_>) -> Result<u16, RingError> {
        let head = mem
            .load_u16(self.avail_entry(0), Ordering::Relaxed)
            .ok_or(RingError::AvailUnreadable(self.avail))?;
        if head >= self.size {
            return Err(RingError::HeadOutOfRange {
                head,
                size: self.size,
            });
        }
        self.next_avail += 1;
        Ok(head)
    }

    /// Writes used element number `k` after `next_used` without publishing it.
    pub fn write_used(
        &self,
        mem: &FastMem<'_>,
        k: u16,
        id: u16,
        len: u32,
    ) -> Result<(), RingError> {
        let slot = self.slot(self.next_used + Wrapping(k));
        let mut elem = [0u8; 8];
        elem[..4].copy_from_slice(&u32::from(id).to_le_bytes());
        elem[4..].copy_from_slice(&len.to_le_bytes());
        mem.copy_to(self.used_at(4 + 8 * slot), &elem)
            .map_err(|_| RingError::UsedUnwritable(self.used))
    }

    /// Makes `n` written used elements visible to the driver.
    pub fn publish_used(&mut self, mem: &FastMem<'_>, n: u16) -> Result<(), RingError> {
        if n == 0 {
            return Ok(());
        }
        self.next_used += Wrapping(n);
        mem.store_u16(self.used_at(2), self.next_used.0, Ordering::Release)
            .ok_or(RingError::UsedUnwritable(self.used))
    }

    /// Whether the driver wants an interrupt now that the used index moved
    /// from `old` to `next_used`.
    pub fn needs_interrupt(
        &self,
        mem: &FastMem<'_>,
        old: Wrapping<u16>,
    ) -> Result<bool, RingError> {
        if old == self.next_used {
            return Ok(false);
        }
        // The used index store must be visible before reading the driver's
        // threshold, or both sides may decide the other will act.
        fence(Ordering::SeqCst);
        if self.event_idx {
            let used_event = mem
                .load_u16(
                    self.avail_at(4 + 2 * u64::from(self.size)),
                    Ordering::Acquire,
                )
                .ok_or(RingError::AvailUnreadable(self.avail))?;
            let new = self.next_used;
            Ok((new - Wrapping(used_event) - Wrapping(1)) < (new - old))
        } else {
            let flags = mem
                .load_u16(self.avail_at(0), Ordering::Acquire)
                .ok_or(RingError::AvailUnreadable(self.avail))?;
            Ok(flags & AVAIL_F_NO_INTERRUPT == 0)
        }
    }

    /// Tells the driver not to kick us: this ring is polled.
    pub fn suppress_kicks(&self, mem: &FastMem<'_>) -> Result<(), RingError> {
        if self.event_idx {
            // With EVENT_IDX the driver kicks when it passes avail_event;
            // leaving it behind means (almost) no kicks.
            Ok(())
        } else {
            mem.store_u16(self.used_at(0), USED_F_NO_NOTIFY, Ordering::Release)
                .ok_or(RingError::UsedUnwritable(self.used))
        }
    }

    /// Walks the chain starting at `head`, calling `f(addr, len)` for each
    /// buffer. `writable` is the direction every buffer must have; chains
    /// are bounded by their table size, indirect tables are not nested,
    /// zero lengths and totals above `max_bytes` are refused. When the
    /// head's descriptor table entry was already read (`first`, from
    /// [`FastMem::read_head_desc`] on this ring), it is used instead of
    /// reading the entry again, and goes through every check a read entry
    /// does.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn walk_chain_from<F>(
        &self,
        mem: &FastMem<'_>,
        head: u16,
        first: Option<Descriptor>,
        writable: bool,
        indirect_ok: bool,
        max_bytes: u64,
        mut f: F,
    ) -> Result<u64, ChainError>
    where
        F: FnMut(u64, u32) -> Result<bool, ChainError>,
    {
        let mut pre = first;
        let mut table = self.desc;
        let mut table_len = self.size;
        let mut ttl = self.size;
        let mut idx = head;
        let mut in_indirect = false;
        let mut total: u64 = 0;
        loop {
            if idx >= table_len {
                return Err(ChainError::IndexOutOfRange(idx));
            }
            let at = table.wrapping_add(u64::from(idx) * DESC_SIZE);
            let d = match pre.take() {
                Some(d) => d,
                None => mem.read_desc(at).ok_or(ChainError::DescUnreadable(at))?,
            };
            let flags = d.flags();
            if flags & DESC_F_INDIRECT != 0 {
                if in_indirect {
                    return Err(ChainError::NestedIndirect);
                }
                if !indirect_ok {
                    return Err(ChainError::IndirectNotNegotiated);
                }
                if flags & DESC_F_NEXT != 0 {
                    return Err(ChainError::IndirectWithNext);
                }
                let len = d.len();
                let n = u64::from(len) / DESC_SIZE;
                if len == 0 || u64::from(len) % DESC_SIZE != 0 || n > u64::from(self.size) {
                    return Err(ChainError::BadIndirectTable(len));
                }
                table = d.addr().0;
                table_len = n as u16;
                ttl = table_len;
                idx = 0;
                in_indirect = true;
                continue;
            }
            let len = d.len();
            check_buffer(flags, len, writable, &mut total, max_bytes)?;
            if !f(d.addr().0, len)? {
                return Ok(total);
            }
            if flags & DESC_F_NEXT == 0 {
                return Ok(total);
            }
            ttl -= 1;
            if ttl == 0 {
                return Err(ChainError::TooLong);
            }
            idx = d.next();
        }
    }
}

/// The device side of a virtqueue as the data path uses it, for both ring
/// layouts: the split ring ([`RingView`]) and the packed ring
/// ([`crate::ring_packed::PackedRing`]). [`crate::guest_rx`] and
/// [`crate::guest_tx`] are written once against it (and monomorphized: no
/// dispatch per frame).
///
/// A *mark* is a ring position as vhost-user carries it in
/// SET_VRING_BASE/GET_VRING_BASE: the split ring's free-running index, or
/// the packed ring's slot with its wrap counter in bit 15.
pub trait Vring: Copy {
    /// A chain taken from the ring: what walking and returning it needs.
    type Head: Copy + Default;
    /// The first descriptor of a chain, read ahead of the walk.
    type First: Copy;
    /// Whether, under VIRTIO_F_IN_ORDER, a batch of transmit chains may be
    /// returned as one used element written in the slot of its last chain
    /// (the split ring's rule; the packed ring puts it in the first slot).
    const IN_ORDER_LAST_ONLY: bool;

    fn avail_mark(&self) -> u16;
    fn set_avail_mark(&mut self, m: u16);
    fn used_mark(&self) -> u16;
    /// Chains the driver made available that we have not taken, counted
    /// up to at least `max` when there are that many.
    fn pending(&self, mem: &FastMem<'_>, max: u16) -> Result<u16, RingError>;
    /// Takes the next available chain (the caller checked `pending`).
    fn pop_head(&mut self, mem: &FastMem<'_>) -> Result<Self::Head, RingError>;
    /// Writes used element number `k` of the batch (returning `head` with
    /// `len` bytes written) without making it visible.
    fn write_used(
        &mut self,
        mem: &FastMem<'_>,
        k: u16,
        head: Self::Head,
        len: u32,
    ) -> Result<(), RingError>;
    /// Makes the `n` used elements written since the last publish visible.
    fn publish_used(&mut self, mem: &FastMem<'_>, n: u16) -> Result<(), RingError>;
    /// Whether the driver wants an interrupt now that the used position
    /// moved from mark `old`.
    fn needs_interrupt(&self, mem: &FastMem<'_>, old: u16) -> Result<bool, RingError>;
    /// The chain `ahead` chains after the next one, when it is known to be
    /// there, for prefetching only.
    fn peek_head(&self, mem: &FastMem<'_>, ahead: u16) -> Option<Self::Head>;
    /// Prefetches the descriptor of `head`.
    fn prefetch_head(&self, mem: &FastMem<'_>, head: Self::Head);
    /// Reads the first descriptor of `head` (`None` outside guest memory:
    /// the walk then reports it).
    fn read_first(&self, mem: &FastMem<'_>, head: Self::Head) -> Option<Self::First>;
    /// The buffer (address, length) a first descriptor names, for prefetching.
    fn first_buffer(first: &Self::First) -> (u64, u32);
    /// Walks the chain `head` (its first descriptor `first` if read
    /// already), calling `f(addr, len)` for each buffer until it returns
    /// false. `writable` is the direction every buffer must have;
    /// indirect tables are followed if `indirect_ok`, zero lengths and
    /// totals above `max_bytes` are refused, chains are bounded by the ring.
    #[allow(clippy::too_many_arguments)]
    fn walk<F>(
        &self,
        mem: &FastMem<'_>,
        head: Self::Head,
        first: Option<Self::First>,
        writable: bool,
        indirect_ok: bool,
        max_bytes: u64,
        f: F,
    ) -> Result<u64, ChainError>
    where
        F: FnMut(u64, u32) -> Result<bool, ChainError>;
}

impl Vring for RingView {
    type Head = u16;
    type First = Descriptor;
    const IN_ORDER_LAST_ONLY: bool = true;

    #[inline]
    fn avail_mark(&self) -> u16 {
        self.next_avail.0
    }
    #[inline]
    fn set_avail_mark(&mut self, m: u16) {
        self.next_avail = Wrapping(m);
    }
    #[inline]
    fn used_mark(&self) -> u16 {
        self.next_used.0
    }
    #[inline]
    fn pending(&self, mem: &FastMem<'_>, _max: u16) -> Result<u16, RingError> {
        RingView::pending(self, mem)
    }
    #[inline]
    fn pop_head(&mut self, mem: &FastMem<'_>) -> Result<u16, RingError> {
        RingView::pop_head(self, mem)
    }
    #[inline]
    fn write_used(
        &mut self,
        mem: &FastMem<'_>,
        k: u16,
        head: u16,
        len: u32,
    ) -> Result<(), RingError> {
        RingView::write_used(self, mem, k, head, len)
    }
    #[inline]
    fn publish_used(&mut self, mem: &FastMem<'_>, n: u16) -> Result<(), RingError> {
        RingView::publish_used(self, mem, n)
    }
    #[inline]
    fn needs_interrupt(&self, mem: &FastMem<'_>, old: u16) -> Result<bool, RingError> {
        RingView::needs_interrupt(self, mem, Wrapping(old))
    }
    #[inline]
    fn peek_head(&self, mem: &FastMem<'_>, ahead: u16) -> Option<u16> {
        mem.peek_head(self, ahead)
    }
    #[inline]
    fn prefetch_head(&self, mem: &FastMem<'_>, head: u16) {
        mem.prefetch_desc(self, head);
    }
    #[inline]
    fn read_first(&self, mem: &FastMem<'_>, head: u16) -> Option<Descriptor> {
        mem.read_head_desc(self, head)
    }
    #[inline]
    fn first_buffer(first: &Descriptor) -> (u64, u32) {
        (first.addr().0, first.len())
    }
    #[inline]
    fn walk<F>(
        &self,
        mem: &FastMem<'_>,
        head: u16,
        first: Option<Descriptor>,
        writable: bool,
        indirect_ok: bool,
        max_bytes: u64,
        f: F,
    ) -> Result<u64, ChainError>
    where
        F: FnMut(u64, u32) -> Result<bool, ChainError>,
    {
        self.walk_chain_from(mem, head, first, writable, indirect_ok, max_bytes, f)
    }
}

/// The ring of a queue in whichever layout was negotiated: what the
/// session caches and the control side (validation, indices) works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnyRing {
    Split(RingView),
    Packed(crate::ring_packed::PackedRing),
}

impl AnyRing {
    /// The ring `q` describes, in the packed layout if `packed`.
    pub fn from_queue(q: &Queue, packed: bool) -> AnyRing {
        if packed {
            AnyRing::Packed(crate::ring_packed::PackedRing::from_queue(q))
        } else {
            AnyRing::Split(RingView::from_queue(q))
        }
    }

    /// Descriptor area, driver area, device area and size.
    pub fn key(&self) -> (u64, u64, u64, u16) {
        match self {
            AnyRing::Split(r) => (r.desc, r.avail, r.used, r.size),
            AnyRing::Packed(r) => (r.desc, r.driver, r.device, r.size),
        }
    }

    /// Whether `q` still describes the same ring (addresses and size).
    pub fn same_ring(&self, q: &Queue) -> bool {
        self.key() == (q.desc_table(), q.avail_ring(), q.used_ring(), q.size())
    }

    /// The (available, used) marks.
    #[inline]
    pub fn marks(&self) -> (u16, u16) {
        match self {
            AnyRing::Split(r) => (r.avail_mark(), r.used_mark()),
            AnyRing::Packed(r) => (r.avail_mark(), r.used_mark()),
        }
    }

    /// Sets the (available, used) marks where the last batch left them.
    #[inline]
    pub fn set_marks(&mut self, avail: u16, used: u16) {
        match self {
            AnyRing::Split(r) => {
                r.next_avail = Wrapping(avail);
                r.next_used = Wrapping(used);
            }
            AnyRing::Packed(r) => r.set_marks(avail, used),
        }
    }

    /// Writes the marks back into the queue.
    pub fn store_indices(&self, q: &mut Queue) {
        let (a, u) = self.marks();
        q.set_next_avail(a);
        q.set_next_used(u);
    }

    pub fn validate(&self, mem: &GuestMem) -> Result<(), RingError> {
        match self {
            AnyRing::Split(r) => r.validate(mem),
            AnyRing::Packed(r) => r.validate(mem),
        }
    }

    pub fn suppress_kicks(&self, mem: &FastMem<'_>) -> Result<(), RingError> {
        match self {
            AnyRing::Split(r) => r.suppress_kicks(mem),
            AnyRing::Packed(r) => r.suppress_kicks(mem),
        }
    }

    /// "split" or "packed", for status reports.
    pub fn layout(&self) -> &'static str {
        match self {
            AnyRing::Split(_) => "split",
            AnyRing::Packed(_) => "packed",
        }
    }
}

/// Bytes at the start of a guest buffer prefetched before its copy.
const PREFETCH_BYTES: u32 = 128;

/// Guest memory as the data path reads it: the region of the last access
/// is remembered, so most accesses skip the region lookup. Every access is
/// still bounds-checked against the region (or, across regions, by
/// `vm-memory`'s general accessors).
pub struct FastMem<'a> {
    mem: &'a GuestMem,
    last: Cell<Option<&'a GuestRegionMmap<()>>>,
}

impl<'a> FastMem<'a> {
    /// Starts with the first region remembered: a frontend's table often
    /// has one region (or keeps its rings and buffers in the first), and a
    /// `FastMem` lives for one frame on the transmit path, so a region
    /// lookup on its first access would be paid per frame.
    pub fn new(mem: &'a GuestMem) -> FastMem<'a> {
        FastMem {
            mem,
            last: Cell::new(mem.iter().next()),
        }
    }

    #[inline]
    fn in_region(
        r: &'a GuestRegionMmap<()>,
        addr: u64,
        len: usize,
    ) -> Option<VolatileSlice<'a, ()>> {
        let off = addr.checked_sub(r.start_addr().0)?;
        if off.checked_add(len as u64)? > r.len() {
            return None;
        }
        r.get_slice(MemoryRegionAddress(off), len).ok()
    }

    /// The host address of guest `[addr, addr + len)` when it lies in the
    /// remembered region (no lookup, no slice: one subtraction and one
    /// comparison). The pointer is valid for `len` bytes for as long as
    /// the memory table borrowed for `'a` lives.
    #[inline(always)]
    fn host(&self, addr: u64, len: usize) -> Option<*mut u8> {
        let r = self.last.get()?;
        let off = addr.wrapping_sub(r.start_addr().0);
        // `off <= r.len()` first, so `r.len() - off` cannot wrap: an
        // address below the region wraps to a huge `off` and is refused.
        if off > r.len() || (len as u64) > r.len() - off {
            return None;
        }
        // The mapping is `r.len()` bytes long and `off + len` lies within
        // it, so the pointer stays inside one mapping.
        Some(r.as_ptr().wrapping_add(off as usize))
    }

    /// `len` bytes at `addr` when they lie in one region.
    #[inline]
    fn slice(&self, addr: u64, len: usize) -> Option<VolatileSlice<'a, ()>> {
        if let Some(r) = self.last.get()
            && let Some(s) = Self::in_region(r, addr, len)
        {
            return Some(s);
        }
        let r = self.mem.find_region(GuestAddress(addr))?;
        self.last.set(Some(r));
        Self::in_region(r, addr, len)
    }

    /// The host address of the aligned `u16` at guest `addr`, when it lies
    /// in the remembered region.
    #[inline(always)]
    fn host_u16(&self, addr: u64) -> Option<&'a AtomicU16> {
        let p = self.host(addr, 2)?;
        if !(p as usize).is_multiple_of(std::mem::align_of::<AtomicU16>()) {
            return None;
        }
        // SAFETY: `host` checked that the 2 bytes at `p` lie in a mapping
        // that lives for `'a` (the memory table is borrowed for it), and `p`
        // is aligned for `AtomicU16` (checked above). The guest accesses
        // these ring words concurrently, as the virtio ring protocol has
        // both sides do; every access from this side goes through the
        // atomic, never through a plain reference.
        Some(unsafe { AtomicU16::from_ptr(p.cast::<u16>()) })
    }

    #[inline]
    pub(crate) fn load_u16(&self, addr: u64, order: Ordering) -> Option<u16> {
        if let Some(a) = self.host_u16(addr) {
            return Some(a.load(order));
        }
        self.load_u16_slow(addr, order)
    }

    /// [`FastMem::load_u16`] outside the remembered region (or misaligned:
    /// vm-memory then refuses it).
    #[cold]
    #[inline(never)]
    fn load_u16_slow(&self, addr: u64, order: Ordering) -> Option<u16> {
        self.slice(addr, 2)?.load::<u16>(0, order).ok()
    }

    #[inline]
    pub(crate) fn store_u16(&self, addr: u64, v: u16, order: Ordering) -> Option<()> {
        if let Some(a) = self.host_u16(addr) {
            a.store(v, order);
            return Some(());
        }
        self.store_u16_slow(addr, v, order)
    }

    #[cold]
    #[inline(never)]
    fn store_u16_slow(&self, addr: u64, v: u16, order: Ordering) -> Option<()> {
        self.slice(addr, 2)?.store(v, 0, order).ok()
    }

    /// Asks the CPU to start loading the cache line holding guest address
    /// `addr`, so that a later access overlaps its miss with other work.
    /// Addresses outside guest memory are ignored.
    #[inline]
    pub fn prefetch(&self, addr: u64) {
        #[cfg(target_arch = "x86_64")]
        if let Some(p) = self.host(addr, 1) {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // SAFETY: a prefetch is a hint: it never faults and reads or
            // writes nothing architecturally; SSE is part of x86_64's baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = addr;
    }

    /// Like [`FastMem::prefetch`], for a line about to be written: asks for
    /// it in exclusive state (`PREFETCHW`), so the write does not first
    /// fetch a shared copy and then invalidate the other core's (the guest
    /// last touched its receive buffers).
    #[inline]
    pub fn prefetch_write(&self, addr: u64) {
        #[cfg(target_arch = "x86_64")]
        if let Some(p) = self.host(addr, 1) {
            // SAFETY: PREFETCHW is a hint: it never faults and changes no
            // architectural state (CPUs without it run it as a NOP; every
            // AMD64 CPU and Intel's since Broadwell have it). It neither
            // reads nor writes memory nor touches the stack or flags.
            unsafe {
                std::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, preserves_flags, readonly));
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = addr;
    }

    /// The head that available-ring slot `next_avail + ahead` names, for
    /// prefetching only (the real read is [`RingView::pop_head`]).
    #[inline]
    pub fn peek_head(&self, ring: &RingView, ahead: u16) -> Option<u16> {
        self.load_u16(ring.avail_entry(ahead), Ordering::Relaxed)
            .filter(|h| *h < ring.size)
    }

    /// Prefetches the descriptor table entry of `head`.
    #[inline]
    pub fn prefetch_desc(&self, ring: &RingView, head: u16) {
        self.prefetch(ring.desc_addr(head));
    }

    /// Reads the descriptor table entry of chain `head` (`head` below the
    /// ring size, as [`RingView::pop_head`] returns it): the one read of it,
    /// to hand to [`RingView::walk_chain_from`]. `None` when it lies outside
    /// guest memory (the walk then reports the error).
    #[inline]
    pub fn read_head_desc(&self, ring: &RingView, head: u16) -> Option<Descriptor> {
        self.read_desc(ring.desc_addr(head))
    }

    /// Prefetches the buffer descriptor `d` points to (no memory access of
    /// its own: the descriptor was read already).
    #[inline]
    pub fn prefetch_buffer_of(&self, addr: u64, len: u32) {
        // The whole of a small frame and its header (two lines, see
        // [`FastMem::prefetch_buffer_for_write`]); the start of a large one.
        self.prefetch_span(addr, len.min(PREFETCH_BYTES), false);
    }

    /// [`FastMem::prefetch_buffer_of`] for a buffer about to be written.
    #[inline]
    pub fn prefetch_buffer_for_write(&self, addr: u64, len: u32, bytes: usize) {
        // The lines the next write will start on, guessed from this frame's
        // size (`bytes`), at most [`PREFETCH_BYTES`]: a header and a small
        // frame span two lines (the driver puts the header just before a
        // line boundary, as DPDK does in front of an mbuf's data); a larger
        // frame's copy is a stream the hardware prefetcher follows.
        let n = len
            .min(PREFETCH_BYTES)
            .min(u32::try_from(bytes).unwrap_or(u32::MAX));
        self.prefetch_span(addr, n, true);
    }

    /// Prefetches every line of `n` bytes at guest address `start`.
    #[inline]
    pub(crate) fn prefetch_span(&self, start: u64, n: u32, write: bool) {
        // The guest chooses `start`: near the top of the address space the
        // next line does not exist, and the walk stops there instead of
        // wrapping to address 0 (and on through the whole space).
        let end = start.saturating_add(u64::from(n));
        let mut line = start;
        while line < end {
            if write {
                self.prefetch_write(line);
            } else {
                self.prefetch(line);
            }
            let Some(next) = (line | 63).checked_add(1) else {
                break;
            };
            line = next;
        }
    }

    #[inline]
    pub(crate) fn read_desc(&self, addr: u64) -> Option<Descriptor> {
        if let Some(p) = self.host(addr, DESC_SIZE as usize) {
            // SAFETY: `host` checked that the 16 bytes at `p` lie in a live
            // mapping; `Descriptor` is 16 bytes of plain integers (any bit
            // pattern is a value), read once into our copy, unaligned as
            // vm-memory's `read_obj` allows.
            return Some(unsafe { std::ptr::read_unaligned(p.cast::<Descriptor>()) });
        }
        self.read_desc_slow(addr)
    }

    #[cold]
    #[inline(never)]
    fn read_desc_slow(&self, addr: u64) -> Option<Descriptor> {
        self.slice(addr, DESC_SIZE as usize)?.read_obj(0).ok()
    }

    /// Copies guest memory `[addr, addr+dst.len())` into `dst`.
    #[inline]
    pub fn copy_from(&self, addr: u64, dst: &mut [u8]) -> Result<(), ChainError> {
        let len = dst.len();
        if let Some(p) = self.host(addr, len) {
            // SAFETY: `host` checked that `[p, p + len)` lies in the mapping
            // of a region of the memory table borrowed for `'a`; `dst` is
            // our own memory, so the two do not overlap. The guest may write
            // its bytes meanwhile: they are plain bytes, copied once and
            // never referenced, as vm-memory's own copies treat them.
            unsafe { std::ptr::copy_nonoverlapping(p.cast_const(), dst.as_mut_ptr(), len) };
            return Ok(());
        }
        self.copy_from_slow(addr, dst)
    }

    /// [`FastMem::copy_from`] outside the remembered region: looks the
    /// region up (and remembers it), or crosses regions.
    #[cold]
    #[inline(never)]
    fn copy_from_slow(&self, addr: u64, dst: &mut [u8]) -> Result<(), ChainError> {
        let len = dst.len();
        if let Some(s) = self.slice(addr, len) {
            s.copy_to(dst);
            return Ok(());
        }
        // The buffer may cross a region boundary: take the general path.
        self.mem
            .read_slice(dst, GuestAddress(addr))
            .map_err(|_| ChainError::OutOfMemory {
                addr,
                len: len as u32,
            })
    }

    /// Copies `src` into guest memory at `addr`.
    #[inline]
    pub fn copy_to(&self, addr: u64, src: &[u8]) -> Result<(), ChainError> {
        let len = src.len();
        if let Some(p) = self.host(addr, len) {
            // SAFETY: as in `copy_from`: `[p, p + len)` lies in a live
            // mapping of guest memory, `src` is our own memory; the memory
            // table has no dirty bitmap (`GuestMem` is `GuestMemoryMmap<()>`),
            // so nothing else needs to learn of the write.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), p, len) };
            return Ok(());
        }
        self.copy_to_slow(addr, src)
    }

    /// [`FastMem::copy_to`] outside the remembered region.
    #[cold]
    #[inline(never)]
    fn copy_to_slow(&self, addr: u64, src: &[u8]) -> Result<(), ChainError> {
        let len = src.len();
        if let Some(s) = self.slice(addr, len) {
            s.copy_from(src);
            return Ok(());
        }
        self.mem
            .write_slice(src, GuestAddress(addr))
            .map_err(|_| ChainError::OutOfMemory {
                addr,
                len: len as u32,
            })
    }
}
