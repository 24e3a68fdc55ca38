//! Software completion of a partial checksum (NEEDS_CSUM) for guests that
//! did not negotiate GUEST_CSUM.

use datapath::packet::{Offload, Packet};

/// One's complement sum of `data` (big-endian 16-bit words), folded.
fn ones_sum(data: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Fills in the checksum the offload metadata says is pending (the field
/// holds the pseudo-header sum, as with CHECKSUM_PARTIAL) and clears
/// NEEDS_CSUM. Returns false when the offsets do not fit the frame.
pub fn complete_partial(pkt: &mut Packet) -> bool {
    let start = usize::from(pkt.offload.csum_start);
    let is_udp = pkt.offload.csum_offset == 6;
    let field = start + usize::from(pkt.offload.csum_offset);
    let data = pkt.data_mut();
    if field + 2 > data.len() {
        return false;
    }
    let Some(region) = data.get(start..) else {
        return false;
    };
    let mut c = !ones_sum(region);
    if c == 0 && is_udp {
        // UDP transmits an all-zero checksum as 0xffff.
        c = 0xffff;
    }
    data[field..field + 2].copy_from_slice(&c.to_be_bytes());
    pkt.offload.flags &= !Offload::F_NEEDS_CSUM;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_checksum_verifies_to_zero_over_the_region() {
        // 14-byte "L2" header then a region whose checksum field is at +4
        // and holds a seed value.
        let mut frame = vec![0u8; 14];
        frame.extend_from_slice(&[0x12, 0x34, 0x56, 0x78, 0x00, 0x2a, 0x9a, 0xbc, 0xde]);
        let mut p = Packet::from_bytes(&frame);
        p.offload.flags = Offload::F_NEEDS_CSUM;
        p.offload.csum_start = 14;
        p.offload.csum_offset = 4;
        assert!(complete_partial(&mut p));
        assert_eq!(p.offload.flags & Offload::F_NEEDS_CSUM, 0);
        // The receiver adds the pseudo-header sum (the seed) back in.
        let mut total = u32::from(ones_sum(&p.data()[14..])) + 0x002a;
        total = (total & 0xffff) + (total >> 16);
        assert_eq!(total, 0xffff);
    }

    #[test]
    fn checksum_field_beyond_the_frame_is_refused() {
        let mut p = Packet::from_bytes(&[0u8; 20]);
        p.offload.flags = Offload::F_NEEDS_CSUM;
        p.offload.csum_start = 14;
        p.offload.csum_offset = 6;
        assert!(!complete_partial(&mut p));
    }
}
