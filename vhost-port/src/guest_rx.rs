//! Switch → guest: copying frames into the guest's receive virtqueue (the
//! work behind `TxQueue::send`/`flush`).

use datapath::packet::{BATCH_SIZE, Offload};

use crate::features::Negotiated;
use crate::ring::{ChainError, FastMem, GuestMem, RingError, Vring};
use wire::vnet_hdr::{self as net_hdr, MAX_HDR_LEN};

/// What happened to one frame.
#[derive(Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// Written into `buffers` guest buffers.
    Sent { buffers: u16 },
    /// The guest has no (large enough) buffer posted: dropped.
    NoRoom,
    /// A guest buffer was malformed: it was returned empty, frame dropped.
    BadChain(ChainError),
}

/// Used elements written since the last publish, and what is known of the
/// available ring during the batch (in either layout: `H` is the ring's
/// [`Vring::Head`]).
#[derive(Debug)]
pub struct Pending<H = u16> {
    pub used: u16,
    /// The used elements of the batch (id, len), kept here and written to
    /// the ring together at [`publish`]: one burst of stores per ring line
    /// instead of one between every two frame copies. Elements past
    /// [`SHADOW`] go to the ring directly.
    shadow: [(H, u32); SHADOW],
    /// Chains after `next_avail` known to be available, as last counted
    /// during the batch: the driver's side of the ring is read again only
    /// when they run out, not for every frame (it lives on cache lines the
    /// driver keeps writing).
    pub known: u16,
}

const SHADOW: usize = 64;

/// How many chains ahead a packed ring is counted when the known ones run
/// out (a split ring tells them all with one read).
const READ_AHEAD: u16 = BATCH_SIZE as u16;

impl<H: Copy + Default> Default for Pending<H> {
    fn default() -> Pending<H> {
        Pending {
            used: 0,
            shadow: [(H::default(), 0); SHADOW],
            known: 0,
        }
    }
}

impl<H: Copy + Default> Pending<H> {
    /// Forgets the batch (after [`publish`], or when the ring broke).
    pub fn reset(&mut self) {
        self.used = 0;
        self.known = 0;
    }

    /// Records used element `k` of the batch.
    #[inline]
    fn put_used<R: Vring<Head = H>>(
        &mut self,
        mem: &FastMem<'_>,
        ring: &mut R,
        k: u16,
        id: H,
        len: u32,
    ) -> Result<(), RingError> {
        match self.shadow.get_mut(usize::from(k)) {
            Some(e) => {
                *e = (id, len);
                Ok(())
            }
            None => ring.write_used(mem, k, id, len),
        }
    }

    /// Counts the chains the driver has made available after the ring's
    /// next one.
    fn read_avail<R: Vring<Head = H>>(
        &mut self,
        mem: &FastMem<'_>,
        ring: &R,
    ) -> Result<u16, RingError> {
        ring.pending(mem, READ_AHEAD)
    }
}

/// How many chains ahead of the one being filled descriptors are prefetched
/// ([`BUF_AHEAD`] for buffers, whose address needs the descriptor read).
const DESC_AHEAD: u16 = 4;
const BUF_AHEAD: u16 = 2;

/// After a fresh read of the available index: starts loading the
/// descriptors of the first chains (`avail` of them are available), by
/// address only (the available ring's line was just read).
#[inline]
fn prefetch_first<R: Vring>(mem: &FastMem<'_>, ring: &R, avail: u16) {
    for k in 0..avail.min(DESC_AHEAD) {
        if let Some(h) = ring.peek_head(mem, k) {
            ring.prefetch_head(mem, h);
        }
    }
}

/// Starts loading what the next frames will touch: the buffer of a chain
/// [`BUF_AHEAD`] ahead and the descriptor of one [`DESC_AHEAD`] ahead
/// (`left` chains after the one just taken are known to be available), so
/// that each miss overlaps the copies of the frames before it.
#[inline]
fn prefetch_ahead<R: Vring>(mem: &FastMem<'_>, ring: &R, left: u16, bytes: usize) {
    // This chain's descriptor was prefetched DESC_AHEAD - BUF_AHEAD frames
    // ago, so reading it here does not wait on the other core.
    if left > BUF_AHEAD - 1
        && let Some(h) = ring.peek_head(mem, BUF_AHEAD - 1)
        && let Some(d) = ring.read_first(mem, h)
    {
        let (addr, len) = R::first_buffer(&d);
        mem.prefetch_buffer_for_write(addr, len, bytes);
    }
    if left > DESC_AHEAD - 1
        && let Some(h) = ring.peek_head(mem, DESC_AHEAD - 1)
    {
        ring.prefetch_head(mem, h);
    }
}

/// The frame as the guest sees it: header then data.
struct Source<'a> {
    hdr: [u8; MAX_HDR_LEN],
    hdr_len: usize,
    data: &'a [u8],
}

impl Source<'_> {
    fn len(&self) -> usize {
        self.hdr_len + self.data.len()
    }

    /// Copies `n` bytes from offset `off` to guest address `addr`.
    fn copy_out(
        &self,
        mem: &FastMem<'_>,
        off: usize,
        n: usize,
        addr: u64,
    ) -> Result<(), ChainError> {
        let mut addr = addr;
        let mut off = off;
        let mut n = n;
        if off < self.hdr_len {
            let take = n.min(self.hdr_len - off);
            mem.copy_to(addr, &self.hdr[off..off + take])?;
            addr = addr.wrapping_add(take as u64);
            off += take;
            n -= take;
        }
        if n > 0 {
            let d = off - self.hdr_len;
            let src = self
                .data
                .get(d..d + n)
                .ok_or(ChainError::TooBig((d + n) as u64))?;
            mem.copy_to(addr, src)?;
        }
        Ok(())
    }

    /// Copies the frame from byte `*off` on into the receive chain at `head`
    /// (writable buffers, indirect tables as negotiated, no byte limit), a
    /// buffer at a time until the frame or the chain ends; `*off` is where
    /// the copy stopped. `note(addr, off, n)` sees each piece before it is
    /// copied.
    #[inline(always)]
    fn copy_into_chain<R: Vring>(
        &self,
        mem: &FastMem<'_>,
        ring: &R,
        head: R::Head,
        neg: &Negotiated,
        off: &mut usize,
        mut note: impl FnMut(u64, usize, usize),
    ) -> Result<u64, ChainError> {
        let total = self.len();
        ring.walk(
            mem,
            head,
            None,
            true,
            neg.indirect,
            u64::MAX,
            |addr, len| {
                let n = (len as usize).min(total - *off);
                note(addr, *off, n);
                self.copy_out(mem, *off, n, addr)?;
                *off += n;
                Ok(*off < total)
            },
        )
    }
}

/// Writes the frame `data` into the guest's receive ring, behind a header
/// carrying `offload`. Used elements are written but not published: call
/// [`publish`] once per batch.
pub fn send_to_guest<R: Vring>(
    mem: &GuestMem,
    ring: &mut R,
    neg: &Negotiated,
    data: &[u8],
    offload: &Offload,
    pending: &mut Pending<R::Head>,
) -> Result<SendOutcome, RingError> {
    let mem = &FastMem::new(mem);
    let src = Source {
        hdr: net_hdr::encode_mrg(offload, 1),
        hdr_len: neg.hdr_len,
        data,
    };
    let total = src.len();
    let mut avail = pending.known;
    if avail == 0 {
        avail = pending.read_avail(mem, ring)?;
        pending.known = avail;
        prefetch_first(mem, ring, avail);
    }
    let save = ring.avail_mark();
    if !neg.mrg_rxbuf {
        if avail == 0 {
            return Ok(SendOutcome::NoRoom);
        }
        let head = ring.pop_head(mem)?;
        prefetch_ahead(mem, ring, avail - 1, total);
        let mut off = 0usize;
        let walked = src.copy_into_chain(mem, ring, head, neg, &mut off, |_, _, _| {});
        return match walked {
            Err(e) => {
                pending.put_used(mem, ring, pending.used, head, 0)?;
                pending.used += 1;
                pending.known = avail - 1;
                Ok(SendOutcome::BadChain(e))
            }
            Ok(_) if off < total => {
                // Too small for this frame; leave it for a smaller one.
                ring.set_avail_mark(save);
                Ok(SendOutcome::NoRoom)
            }
            Ok(_) => {
                pending.put_used(mem, ring, pending.used, head, total as u32)?;
                pending.used += 1;
                pending.known = avail - 1;
                Ok(SendOutcome::Sent { buffers: 1 })
            }
        };
    }

    // MRG_RXBUF: as many buffers as the frame needs, num_buffers in the
    // first header.
    let mut off = 0usize;
    let mut nbufs: u16 = 0;
    let mut nb_addr = [None::<u64>; 2];
    while off < total {
        if nbufs == avail {
            // The known chains ran out: the driver may have posted more.
            let more = pending.read_avail(mem, ring)?;
            if more == 0 {
                ring.set_avail_mark(save);
                pending.known = avail;
                return Ok(SendOutcome::NoRoom);
            }
            avail = nbufs.saturating_add(more);
        }
        let head = ring.pop_head(mem)?;
        prefetch_ahead(mem, ring, avail - nbufs - 1, total - off);
        let start = off;
        let walked = src.copy_into_chain(mem, ring, head, neg, &mut off, |addr, off, n| {
            // Where num_buffers (header bytes 10 and 11) lands, for its
            // rewrite when the frame takes several buffers: nearly always
            // both in the first buffer, which holds the whole header.
            if src.hdr_len == MAX_HDR_LEN && off < MAX_HDR_LEN {
                if off == 0 && n >= MAX_HDR_LEN {
                    nb_addr = [Some(addr.wrapping_add(10)), Some(addr.wrapping_add(11))];
                } else {
                    for (i, slot) in nb_addr.iter_mut().enumerate() {
                        let b = 10 + i;
                        if (off..off + n).contains(&b) {
                            *slot = Some(addr.wrapping_add((b - off) as u64));
                        }
                    }
                }
            }
        });
        if let Err(e) = walked {
            // Return every buffer taken for this frame empty.
            return_empty(mem, ring, pending, save, nbufs, head)?;
            pending.known = avail - nbufs - 1;
            return Ok(SendOutcome::BadChain(e));
        }
        pending.put_used(mem, ring, pending.used + nbufs, head, (off - start) as u32)?;
        nbufs += 1;
    }
    pending.known = avail - nbufs;
    // The header went out with num_buffers = 1: only a frame spread over
    // several buffers needs it rewritten.
    let nb = nbufs.to_le_bytes();
    let rewrite = if nbufs == 1 { &[][..] } else { &nb_addr[..] };
    for (i, a) in rewrite.iter().enumerate() {
        if let Some(a) = a
            && let Err(e) = mem.copy_to(*a, &nb[i..i + 1])
        {
            // Checked when the header went out, so this cannot fail short
            // of a memory table change; treat as a bad chain.
            pending.used += nbufs;
            return Ok(SendOutcome::BadChain(e));
        }
    }
    pending.used += nbufs;
    Ok(SendOutcome::Sent { buffers: nbufs })
}

/// Returns the `nbufs` chains taken from mark `save` for a frame, and the
/// chain `bad` after them, as used elements of length 0 (the frame is
/// dropped). The chains are taken again from `save` on a copy of the ring
/// (one pass).
#[cold]
#[inline(never)]
fn return_empty<R: Vring>(
    mem: &FastMem<'_>,
    ring: &mut R,
    pending: &mut Pending<R::Head>,
    save: u16,
    nbufs: u16,
    bad: R::Head,
) -> Result<(), RingError> {
    pending.put_used(mem, ring, pending.used + nbufs, bad, 0)?;
    let mut again = *ring;
    again.set_avail_mark(save);
    for k in 0..nbufs {
        let h = again.pop_head(mem)?;
        pending.put_used(mem, ring, pending.used + k, h, 0)?;
    }
    pending.used += nbufs + 1;
    Ok(())
}

/// Publishes the pending used elements; returns whether the guest wants an
/// interrupt.
pub fn publish<R: Vring>(
    mem: &GuestMem,
    ring: &mut R,
    pending: &mut Pending<R::Head>,
) -> Result<bool, RingError> {
    let mem = &FastMem::new(mem);
    let old = ring.used_mark();
    let n = std::mem::take(&mut pending.used);
    for (k, &(id, len)) in pending.shadow.iter().enumerate().take(usize::from(n)) {
        ring.write_used(mem, k as u16, id, len)?;
    }
    ring.publish_used(mem, n)?;
    ring.needs_interrupt(mem, old)
}
