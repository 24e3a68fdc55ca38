//! Guest → switch: draining the guest's transmit virtqueue into a
//! [`PacketBatch`] (the work behind `RxQueue::rx_batch`).

use datapath::packet::{BATCH_SIZE, MAX_FRAME, Packet, PacketBatch};

use crate::features::Negotiated;
use crate::ring::{ChainError, FastMem, GuestMem, RingError, Vring};
use wire::vnet_hdr::{self as net_hdr, MAX_HDR_LEN};

/// Smallest frame accepted from a guest (an Ethernet header).
const MIN_FRAME: usize = 14;

/// What one drain did.
#[derive(Debug, Default)]
pub struct RxOutcome {
    /// Frames added to the batch.
    pub delivered: usize,
    pub bytes: u64,
    /// Chains refused (counted in `rx_errors`).
    pub errors: u64,
    /// The last refusal, for the port's error string.
    pub last_error: Option<ChainError>,
    /// The driver asked to be interrupted for the returned buffers.
    pub interrupt: bool,
}

/// Moves up to `batch.free()` frames from the ring into `batch`, returning
/// every chain to the driver (refused ones with length 0). A `RingError`
/// means the ring itself is broken; frames already committed stay in the
/// batch.
pub fn receive_from_guest<R: Vring>(
    mem: &GuestMem,
    ring: &mut R,
    neg: &Negotiated,
    batch: &mut PacketBatch,
    in_port: u32,
    out: &mut RxOutcome,
) -> Result<(), RingError> {
    let mem = &FastMem::new(mem);
    let old_used = ring.used_mark();
    // The driver's side of the ring, read once for the batch.
    let room = u16::try_from(batch.free()).unwrap_or(u16::MAX);
    let n = usize::from(ring.pending(mem, room)?).min(batch.free());
    let mut used: u16 = 0;
    let mut result = Ok(());
    // Three passes over the batch, so that the cache misses on guest memory
    // overlap instead of coming one after another: take the heads (one
    // read of the available ring's line) and prefetch their descriptor
    // table entries by address; then read each entry (the only read of
    // it) and prefetch the buffer it names; then copy.
    let mut heads = [R::Head::default(); BATCH_SIZE];
    let mut taken = 0;
    while taken < n {
        match ring.pop_head(mem) {
            Ok(h) => {
                ring.prefetch_head(mem, h);
                heads[taken] = h;
                taken += 1;
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let mut firsts = [None; BATCH_SIZE];
    for (first, &h) in firsts.iter_mut().zip(&heads[..taken]) {
        *first = ring.read_first(mem, h);
        if let Some(d) = first {
            let (addr, len) = R::first_buffer(d);
            mem.prefetch_buffer_of(addr, len);
        }
    }
    for (k, &head) in heads[..taken].iter().enumerate() {
        let Some(slot) = batch.next_slot() else {
            break;
        };
        match copy_chain(mem, ring, neg, head, firsts[k], slot) {
            Ok(len) => {
                slot.in_port = in_port;
                batch.commit();
                out.delivered += 1;
                out.bytes += len as u64;
            }
            Err(e) => {
                out.errors += 1;
                out.last_error = Some(e);
            }
        }
        // In order, the driver of a split ring learns of the whole batch
        // from the last element; otherwise every chain gets its own.
        if !(neg.in_order && R::IN_ORDER_LAST_ONLY)
            && let Err(e) = ring.write_used(mem, used, head, 0)
        {
            result = Err(e);
            break;
        }
        used += 1;
    }
    if neg.in_order
        && R::IN_ORDER_LAST_ONLY
        && used > 0
        && let Err(e) = ring.write_used(mem, used - 1, heads[usize::from(used) - 1], 0)
    {
        return Err(e);
    }
    // One release store of the used index for the batch.
    ring.publish_used(mem, used)?;
    out.interrupt = ring.needs_interrupt(mem, old_used)?;
    result
}

/// Copies one chain (header, then frame) into `slot`; returns the frame length.
fn copy_chain<R: Vring>(
    mem: &FastMem<'_>,
    ring: &R,
    neg: &Negotiated,
    head: R::Head,
    first: Option<R::First>,
    slot: &mut Packet,
) -> Result<usize, ChainError> {
    let hdr_len = neg.hdr_len;
    let mut hdr = [0u8; MAX_HDR_LEN];
    let mut hdr_got = 0usize;
    let mut frame_len = 0usize;
    let buf = slot.rx_buffer();
    ring.walk(
        mem,
        head,
        first,
        false,
        neg.indirect,
        (hdr_len + MAX_FRAME) as u64,
        |mut addr, len| {
            let mut len = len as usize;
            if hdr_got < hdr_len {
                let take = len.min(hdr_len - hdr_got);
                mem.copy_from(addr, &mut hdr[hdr_got..hdr_got + take])?;
                hdr_got += take;
                addr = addr.wrapping_add(take as u64);
                len -= take;
            }
            if len > 0 {
                let end = frame_len + len;
                let dst = buf
                    .get_mut(frame_len..end)
                    .ok_or(ChainError::TooBig(end as u64))?;
                mem.copy_from(addr, dst)?;
                frame_len = end;
            }
            Ok(true)
        },
    )?;
    if hdr_got < hdr_len || frame_len < MIN_FRAME {
        return Err(ChainError::Truncated(frame_len));
    }
    slot.set_len(frame_len);
    let off = net_hdr::validate(
        net_hdr::decode_mrg(&hdr),
        frame_len,
        neg.host_csum,
        neg.host_tso,
    )?;
    slot.offload = off;
    Ok(frame_len)
}
