//! [`Packet`] as a frame buffer for the flows crate's header rewrites.

use flows::packet::FrameBuf;
pub(crate) use flows::packet::apply;

use crate::packet::{Offload, Packet};

impl FrameBuf for Packet {
    #[inline]
    fn data(&self) -> &[u8] {
        Packet::data(self)
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        Packet::data_mut(self)
    }
    #[inline]
    fn push_front(&mut self, n: usize) -> bool {
        // Headers after the pushed bytes move back: so do the offload offsets.
        let ok = Packet::push_front(self, n);
        if ok {
            shift_offload(&mut self.offload, n as isize);
        }
        ok
    }
    #[inline]
    fn pull_front(&mut self, n: usize) -> bool {
        let ok = Packet::pull_front(self, n);
        if ok {
            shift_offload(&mut self.offload, -(n as isize));
        }
        ok
    }
}

/// Moves the header offsets of offload metadata by `delta` bytes.
fn shift_offload(o: &mut Offload, delta: isize) {
    let shift = |v: u16| (v as isize + delta).clamp(0, u16::MAX as isize) as u16;
    if o.flags & Offload::F_NEEDS_CSUM != 0 {
        o.csum_start = shift(o.csum_start);
    }
    if o.gso_type != Offload::GSO_NONE && o.hdr_len != 0 {
        o.hdr_len = shift(o.hdr_len);
    }
}
