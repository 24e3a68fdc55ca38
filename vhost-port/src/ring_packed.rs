//! The packed virtqueue layout (VIRTIO_F_RING_PACKED, virtio 1.1 section
//! 2.8) on the device side, behind the same [`Vring`] interface as the
//! split ring, so that [`crate::guest_rx`] and [`crate::guest_tx`] serve
//! both.
//!
//! One ring of 16-byte descriptors (address, length, buffer id, flags) is
//! shared by both sides: the driver makes a descriptor available by
//! setting its AVAIL flag to its wrap counter and USED to the opposite; the
//! device returns a chain by writing one used descriptor (id, length, both
//! flags equal to its own wrap counter) and moves on by the chain's length.
//! The wrap counters flip each time a side passes the end of the ring;
//! vhost-user carries a position as the slot with the wrap counter in bit
//! 15 (a *mark*, as in SET_VRING_BASE and GET_VRING_BASE).
//!
//! This device returns every chain in the order it took them, and within
//! the batch that took them, so a chain's used descriptor goes in the slot
//! its first descriptor came from and the used position always catches up
//! with the available one at the end of a batch. The used descriptors of a
//! batch are written whole except for the first one's flags, which are
//! stored last (a release store, once per batch): the driver reads used
//! descriptors in order, so the batch appears to it at once.
//!
//! Every guest address goes through [`FastMem`]'s checks; every chain is
//! bounded by the ring size; buffer ids, flags, indirect tables and
//! lengths are checked before a buffer is used.

use std::sync::atomic::{Ordering, fence};

use virtio_queue::{Queue, QueueT};

use crate::ring::{
    ChainError, DESC_F_INDIRECT, DESC_F_NEXT, DESC_SIZE, FastMem, GuestMem, RingError, Vring,
    area_fits, check_buffer, check_size,
};

/// Descriptor flag: available (compared with the driver's wrap counter).
pub const DESC_F_AVAIL: u16 = 1 << 7;
/// Descriptor flag: used (compared with the device's wrap counter).
pub const DESC_F_USED: u16 = 1 << 15;
/// Bit of a mark holding the wrap counter.
pub const WRAP: u16 = 1 << 15;
/// Event suppression: notify on every used descriptor.
pub const EVENT_ENABLE: u16 = 0;
/// Event suppression: never notify.
pub const EVENT_DISABLE: u16 = 1;
/// Event suppression: notify when the position in `off_wrap` is used
/// (only with VIRTIO_RING_F_EVENT_IDX).
pub const EVENT_DESC: u16 = 2;

/// A packed ring's configuration and the device's positions, copied for a
/// batch like [`crate::ring::RingView`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PackedRing {
    /// The descriptor ring.
    pub desc: u64,
    /// The driver event suppression area (vhost-user's "avail" address):
    /// where the driver says when it wants interrupts.
    pub driver: u64,
    /// The device event suppression area (vhost-user's "used" address):
    /// where we say when we want kicks.
    pub device: u64,
    pub size: u16,
    pub event_idx: bool,
    /// Mark of the next descriptor to take.
    pub next_avail: u16,
    /// Mark of the next used descriptor to write.
    pub next_used: u16,
    /// The batch's first used descriptor (slot, flags): its flags are
    /// stored at publication, after every other write of the batch.
    pub(crate) first_used: Option<(u16, u16)>,
}

/// A chain taken from a packed ring: where it starts, how many ring
/// descriptors it spans, and the buffer id of its last one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PackedHead {
    pub mark: u16,
    pub count: u16,
    pub id: u16,
}

/// One packed descriptor, as read from the ring or an indirect table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedDesc {
    pub addr: u64,
    pub len: u32,
    pub id: u16,
    pub flags: u16,
}

#[inline]
fn slot(mark: u16) -> u16 {
    mark & !WRAP
}

#[inline]
fn wrap(mark: u16) -> bool {
    mark & WRAP != 0
}

/// Whether descriptor flags `flags` say "available" to a device whose
/// available wrap counter at that slot is `w`.
#[inline]
fn is_avail(flags: u16, w: bool) -> bool {
    (flags & DESC_F_AVAIL != 0) == w && (flags & DESC_F_USED != 0) != w
}

impl PackedRing {
    /// A ring at the start of its life: slot 0 with both wrap counters set.
    pub fn new(desc: u64, driver: u64, device: u64, size: u16, event_idx: bool) -> PackedRing {
        let mut r = PackedRing {
            desc,
            driver,
            device,
            size,
            event_idx,
            ..Default::default()
        };
        r.set_marks(WRAP, WRAP);
        r
    }

    pub fn from_queue(q: &Queue) -> PackedRing {
        let mut r = PackedRing {
            desc: q.desc_table(),
            driver: q.avail_ring(),
            device: q.used_ring(),
            size: q.size(),
            event_idx: q.event_idx_enabled(),
            ..Default::default()
        };
        r.set_marks(q.next_avail(), q.next_used());
        r
    }

    /// Sets both positions (the slot is taken modulo the ring size, so a
    /// frontend's base cannot point past the ring) and forgets any
    /// unpublished batch.
    pub fn set_marks(&mut self, avail: u16, used: u16) {
        let mask = self.size.wrapping_sub(1);
        self.next_avail = (avail & WRAP) | (slot(avail) & mask);
        self.next_used = (used & WRAP) | (slot(used) & mask);
        self.first_used = None;
    }

    /// Checks the size, the alignment of the three areas and that they lie
    /// in guest memory.
    pub fn validate(&self, mem: &GuestMem) -> Result<(), RingError> {
        check_size(self.size)?;
        let n = u64::from(self.size);
        if !self.desc.is_multiple_of(DESC_SIZE) || !area_fits(mem, self.desc, n * DESC_SIZE) {
            return Err(RingError::AvailUnreadable(self.desc));
        }
        if !self.driver.is_multiple_of(4) || !area_fits(mem, self.driver, 4) {
            return Err(RingError::AvailUnreadable(self.driver));
        }
        if !self.device.is_multiple_of(4) || !area_fits(mem, self.device, 4) {
            return Err(RingError::UsedUnwritable(self.device));
        }
        Ok(())
    }

    /// Tells the driver not to kick us: the ring is polled.
    pub fn suppress_kicks(&self, mem: &FastMem<'_>) -> Result<(), RingError> {
        mem.store_u16(
            self.device.wrapping_add(2),
            EVENT_DISABLE,
            Ordering::Release,
        )
        .ok_or(RingError::UsedUnwritable(self.device))
    }

    /// The mark `n` descriptors after `mark` (`n` at most the ring size).
    #[inline]
    fn advance(&self, mark: u16, n: u16) -> u16 {
        let size = u32::from(self.size);
        let mut s = u32::from(slot(mark)) + u32::from(n);
        let mut w = mark & WRAP;
        if s >= size {
            s -= size;
            w ^= WRAP;
        }
        (s as u16 & !WRAP) | w
    }

    #[inline]
    fn desc_at(&self, mark: u16) -> u64 {
        self.desc
            .wrapping_add(u64::from(slot(mark)).wrapping_mul(DESC_SIZE))
    }

    #[inline]
    fn load_flags(&self, mem: &FastMem<'_>, mark: u16, order: Ordering) -> Result<u16, RingError> {
        mem.load_u16(self.desc_at(mark).wrapping_add(14), order)
            .ok_or(RingError::AvailUnreadable(self.desc))
    }

    /// Reads the descriptor at guest address `at`.
    #[inline]
    fn read(mem: &FastMem<'_>, at: u64) -> Option<PackedDesc> {
        // The split layout's reader takes the same 16 bytes: its `flags`
        // field is the packed layout's buffer id, its `next` the flags.
        let d = mem.read_desc(at)?;
        Some(PackedDesc {
            addr: d.addr().0,
            len: d.len(),
            id: d.flags(),
            flags: d.next(),
        })
    }

    /// The position on a ring of 2 × size positions (one lap per wrap
    /// counter value) of `mark`, for event index arithmetic.
    #[inline]
    fn lap_pos(&self, mark: u16) -> u32 {
        let size = u32::from(self.size);
        let s = u32::from(slot(mark)) % size.max(1);
        if wrap(mark) { s } else { s + size }
    }

    /// Walks an indirect table (`d` names it): entries follow each other,
    /// only their WRITE flag counts, and nesting is refused.
    fn walk_indirect<F>(
        &self,
        mem: &FastMem<'_>,
        d: PackedDesc,
        writable: bool,
        max_bytes: u64,
        mut f: F,
    ) -> Result<u64, ChainError>
    where
        F: FnMut(u64, u32) -> Result<bool, ChainError>,
    {
        let n = u64::from(d.len) / DESC_SIZE;
        if d.len == 0 || !u64::from(d.len).is_multiple_of(DESC_SIZE) || n > u64::from(self.size) {
            return Err(ChainError::BadIndirectTable(d.len));
        }
        let mut total = 0u64;
        for j in 0..n {
            let at = d.addr.wrapping_add(j * DESC_SIZE);
            let e = Self::read(mem, at).ok_or(ChainError::DescUnreadable(at))?;
            if e.flags & DESC_F_INDIRECT != 0 {
                return Err(ChainError::NestedIndirect);
            }
            check_buffer(e.flags, e.len, writable, &mut total, max_bytes)?;
            if !f(e.addr, e.len)? {
                break;
            }
        }
        Ok(total)
    }
}

impl Vring for PackedRing {
    type Head = PackedHead;
    type First = PackedDesc;
    const IN_ORDER_LAST_ONLY: bool = false;

    #[inline]
    fn avail_mark(&self) -> u16 {
        self.next_avail
    }

    #[inline]
    fn set_avail_mark(&mut self, m: u16) {
        self.next_avail = m;
    }

    #[inline]
    fn used_mark(&self) -> u16 {
        self.next_used
    }

    /// Counts available chains by their descriptors' flags (the first of
    /// each with an acquire load), up to `max` chains and never more than
    /// one lap of the ring.
    #[inline]
    fn pending(&self, mem: &FastMem<'_>, max: u16) -> Result<u16, RingError> {
        let mut n = 0u16;
        let mut m = self.next_avail;
        let mut scanned = 0u16;
        while n < max && scanned < self.size {
            let mut f = self.load_flags(mem, m, Ordering::Acquire)?;
            if !is_avail(f, wrap(m)) {
                break;
            }
            n += 1;
            loop {
                scanned += 1;
                m = self.advance(m, 1);
                if f & DESC_F_NEXT == 0 || f & DESC_F_INDIRECT != 0 || scanned >= self.size {
                    break;
                }
                f = self.load_flags(mem, m, Ordering::Relaxed)?;
            }
        }
        Ok(n)
    }

    #[inline]
    fn pop_head(&mut self, mem: &FastMem<'_>) -> Result<PackedHead, RingError> {
        let first = self.next_avail;
        let mut f = self.load_flags(mem, first, Ordering::Acquire)?;
        if !is_avail(f, wrap(first)) {
            return Err(RingError::DescRetracted(slot(first)));
        }
        let mut m = first;
        let mut count = 1u16;
        // An indirect descriptor ends the chain (NEXT on it is refused by
        // the walk); a chain is at most one lap (a longer one is refused).
        while f & DESC_F_NEXT != 0 && f & DESC_F_INDIRECT == 0 && count < self.size {
            m = self.advance(m, 1);
            f = self.load_flags(mem, m, Ordering::Relaxed)?;
            count += 1;
        }
        let id = mem
            .load_u16(self.desc_at(m).wrapping_add(12), Ordering::Relaxed)
            .ok_or(RingError::AvailUnreadable(self.desc))?;
        self.next_avail = self.advance(m, 1);
        Ok(PackedHead {
            mark: first,
            count,
            id,
        })
    }

    /// Writes the used descriptor of `head` into the slot the chain started
    /// at; its flags wait for [`Vring::publish_used`] if it is the first of
    /// the batch (`k == 0`).
    #[inline]
    fn write_used(
        &mut self,
        mem: &FastMem<'_>,
        k: u16,
        head: PackedHead,
        len: u32,
    ) -> Result<(), RingError> {
        let at = self.desc_at(head.mark);
        let mut b = [0u8; 6];
        b[..4].copy_from_slice(&len.to_le_bytes());
        b[4..].copy_from_slice(&head.id.to_le_bytes());
        mem.copy_to(at.wrapping_add(8), &b)
            .map_err(|_| RingError::UsedUnwritable(self.desc))?;
        let flags = if wrap(head.mark) {
            DESC_F_AVAIL | DESC_F_USED
        } else {
            0
        };
        if k == 0 {
            self.first_used = Some((head.mark, flags));
            return Ok(());
        }
        mem.store_u16(at.wrapping_add(14), flags, Ordering::Release)
            .ok_or(RingError::UsedUnwritable(self.desc))
    }

    /// Stores the first used descriptor's flags (release: after every
    /// other write of the batch); the used position catches up with the
    /// available one, as every chain taken was returned.
    #[inline]
    fn publish_used(&mut self, mem: &FastMem<'_>, n: u16) -> Result<(), RingError> {
        if n == 0 {
            return Ok(());
        }
        if let Some((mark, flags)) = self.first_used.take() {
            mem.store_u16(
                self.desc_at(mark).wrapping_add(14),
                flags,
                Ordering::Release,
            )
            .ok_or(RingError::UsedUnwritable(self.desc))?;
        }
        self.next_used = self.next_avail;
        Ok(())
    }

    fn needs_interrupt(&self, mem: &FastMem<'_>, old: u16) -> Result<bool, RingError> {
        if old == self.next_used {
            return Ok(false);
        }
        // As on the split ring: our used flags must be visible before we
        // read the driver's wish, or both sides may wait for the other.
        fence(Ordering::SeqCst);
        let flags = mem
            .load_u16(self.driver.wrapping_add(2), Ordering::Acquire)
            .ok_or(RingError::AvailUnreadable(self.driver))?;
        match flags {
            EVENT_DISABLE => Ok(false),
            EVENT_DESC if self.event_idx => {
                let off_wrap = mem
                    .load_u16(self.driver, Ordering::Acquire)
                    .ok_or(RingError::AvailUnreadable(self.driver))?;
                // Positions on the double lap: interrupt when the event
                // position lies in [old, new).
                let laps = 2 * u32::from(self.size).max(1);
                let new = self.lap_pos(self.next_used);
                let old = self.lap_pos(old);
                let event = self.lap_pos(off_wrap);
                let since_event = (new + laps - event - 1) % laps;
                let moved = (new + laps - old) % laps;
                Ok(since_event < moved)
            }
            // ENABLE, or a value the driver may not use: interrupt.
            _ => Ok(true),
        }
    }

    #[inline]
    fn peek_head(&self, mem: &FastMem<'_>, ahead: u16) -> Option<PackedHead> {
        if ahead >= self.size {
            return None;
        }
        let m = self.advance(self.next_avail, ahead);
        let f = mem.load_u16(self.desc_at(m).wrapping_add(14), Ordering::Relaxed)?;
        is_avail(f, wrap(m)).then_some(PackedHead {
            mark: m,
            count: 1,
            id: 0,
        })
    }

    #[inline]
    fn prefetch_head(&self, mem: &FastMem<'_>, head: PackedHead) {
        mem.prefetch(self.desc_at(head.mark));
    }

    #[inline]
    fn read_first(&self, mem: &FastMem<'_>, head: PackedHead) -> Option<PackedDesc> {
        Self::read(mem, self.desc_at(head.mark))
    }

    #[inline]
    fn first_buffer(first: &PackedDesc) -> (u64, u32) {
        (first.addr, first.len)
    }

    fn walk<F>(
        &self,
        mem: &FastMem<'_>,
        head: PackedHead,
        first: Option<PackedDesc>,
        writable: bool,
        indirect_ok: bool,
        max_bytes: u64,
        mut f: F,
    ) -> Result<u64, ChainError>
    where
        F: FnMut(u64, u32) -> Result<bool, ChainError>,
    {
        if head.id >= self.size {
            return Err(ChainError::BadId(head.id));
        }
        let mut pre = first;
        let mut m = head.mark;
        let mut total = 0u64;
        for i in 0..head.count {
            let at = self.desc_at(m);
            let d = match pre.take() {
                Some(d) => d,
                None => Self::read(mem, at).ok_or(ChainError::DescUnreadable(at))?,
            };
            // The first descriptor's flags were checked (acquire) when the
            // chain was taken; the others must say available as well.
            if i > 0 && !is_avail(d.flags, wrap(m)) {
                return Err(ChainError::NotAvailable(slot(m)));
            }
            if d.flags & DESC_F_INDIRECT != 0 {
                if !indirect_ok {
                    return Err(ChainError::IndirectNotNegotiated);
                }
                if head.count != 1 || d.flags & DESC_F_NEXT != 0 {
                    return Err(ChainError::IndirectWithNext);
                }
                return self.walk_indirect(mem, d, writable, max_bytes, f);
            }
            if i + 1 == head.count && d.flags & DESC_F_NEXT != 0 {
                // Still asking for more after a whole lap of the ring.
                return Err(ChainError::TooLong);
            }
            check_buffer(d.flags, d.len, writable, &mut total, max_bytes)?;
            if !f(d.addr, d.len)? {
                return Ok(total);
            }
            m = self.advance(m, 1);
        }
        Ok(total)
    }
}
