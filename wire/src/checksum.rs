//! The Internet checksum (RFC 1071) and its variants: the IPv4 header
//! checksum, completion of a pending (CHECKSUM_PARTIAL / virtio
//! `NEEDS_CSUM`) L4 checksum, and SCTP's CRC32c.
//!
//! Zero results: a UDP checksum that computes to 0 is sent as 0xffff (0 on
//! the wire means "no checksum", RFC 768); TCP, ICMP and ICMPv6 store the
//! computed value as it is (both are the same number in one's complement,
//! and receivers verify either).

/// Adds `data` to a running one's-complement sum `acc` as big-endian 16-bit
/// words (a trailing odd byte is padded with zero). Only the last piece of a
/// multi-piece sum may have an odd length.
#[inline]
pub fn accumulate(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [b] = pairs.remainder() {
        acc += u64::from(*b) << 8;
    }
    acc
}

/// Folds a running sum to 16 bits with end-around carry (not complemented).
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// One's-complement sum of `data` (folded, not complemented).
pub fn ones_complement_sum(data: &[u8]) -> u16 {
    fold(accumulate(0, data))
}

/// The checksum to store for a running sum: its complement, with a UDP zero
/// sent as 0xffff.
#[inline]
pub fn finish(acc: u64, udp: bool) -> u16 {
    let c = !fold(acc);
    if c == 0 && udp { 0xffff } else { c }
}

/// The IPv4 header checksum of `hdr` (the whole header, options included),
/// computed with its checksum field taken as zero.
pub fn ipv4_header_checksum(hdr: &[u8]) -> u16 {
    let before = hdr.get(..10).unwrap_or(hdr);
    let after = hdr.get(12..).unwrap_or(&[]);
    !fold(accumulate(accumulate(0, before), after))
}

/// Running sum of an IPv4 pseudo-header (source, destination, protocol,
/// L4 length).
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: usize) -> u64 {
    accumulate(accumulate(0, &src), &dst) + u64::from(proto) + l4_len as u64
}

/// Running sum of an IPv6 pseudo-header.
pub fn pseudo_header_v6(src: [u8; 16], dst: [u8; 16], proto: u8, l4_len: usize) -> u64 {
    accumulate(accumulate(0, &src), &dst) + u64::from(proto) + l4_len as u64
}

/// Offset of the checksum inside a UDP header: the only L4 header whose
/// checksum sits at +6, which is how a bare (start, offset) pair tells UDP.
pub const UDP_CSUM_OFFSET: u16 = 6;

/// Why a pending checksum could not be completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("checksum start {start} + offset {offset} is outside the {len}-byte frame")]
pub struct CsumOutOfRange {
    pub start: u16,
    pub offset: u16,
    pub len: usize,
}

/// Completes a pending checksum in place: the field at `start + offset`
/// holds the pseudo-header sum (CHECKSUM_PARTIAL), and the checksum covers
/// everything from `start` to the end of the frame. A UDP result of 0 is
/// stored as 0xffff; other protocols store the computed value.
pub fn complete_partial(frame: &mut [u8], start: u16, offset: u16) -> Result<(), CsumOutOfRange> {
    let s = usize::from(start);
    let pos = s + usize::from(offset);
    if s >= frame.len() || pos + 2 > frame.len() {
        return Err(CsumOutOfRange {
            start,
            offset,
            len: frame.len(),
        });
    }
    let c = finish(accumulate(0, &frame[s..]), offset == UDP_CSUM_OFFSET);
    frame[pos..pos + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

const CRC32C_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC32c (Castagnoli) over the concatenation of `parts`.
pub fn crc32c(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for p in parts {
        for &b in *p {
            crc = CRC32C_TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte-pair-by-byte-pair reference, independent of `accumulate`.
    fn naive(bytes: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in bytes.chunks(2) {
            sum += (u32::from(pair[0]) << 8) | pair.get(1).map_or(0, |b| u32::from(*b));
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn sum_folds_carries_and_pads_odd_bytes() {
        assert_eq!(ones_complement_sum(&[0xff, 0xff, 0x00, 0x01]), 0x0001);
        assert_eq!(ones_complement_sum(&[0x12, 0x34, 0x56]), 0x6834);
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 37 + 11) as u8).collect();
        assert_eq!(ones_complement_sum(&data), naive(&data));
    }

    #[test]
    fn ipv4_header_checksum_matches_a_known_header() {
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xff, 0xff, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_header_checksum(&hdr), 0xb861);
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(&[b"123456789"]), 0xe306_9283);
    }

    /// A 4-byte pseudo-header seed and an L4 segment whose checksum field is
    /// at `offset`, with two trailing bytes chosen so that the complete
    /// checksum computes to zero.
    fn frame_summing_to_zero(offset: usize) -> (Vec<u8>, u16) {
        let seed = 0x1234u16;
        let mut l4 = vec![0u8; 20];
        for (i, b) in l4.iter_mut().enumerate() {
            *b = (i * 13 + 5) as u8;
        }
        l4[offset..offset + 2].copy_from_slice(&[0, 0]);
        // Make sum(seed, l4 with zero field, pad) == 0xffff.
        let partial = fold(accumulate(u64::from(seed), &l4));
        let pad = !partial;
        l4.extend_from_slice(&pad.to_be_bytes());
        assert_eq!(fold(accumulate(u64::from(seed), &l4)), 0xffff);
        l4[offset..offset + 2].copy_from_slice(&seed.to_be_bytes());
        let mut frame = vec![0u8; 14];
        frame.extend_from_slice(&l4);
        (frame, seed)
    }

    #[test]
    fn pending_udp_checksum_of_zero_is_sent_as_ffff() {
        let (mut f, _) = frame_summing_to_zero(6);
        complete_partial(&mut f, 14, 6).unwrap();
        assert_eq!(&f[20..22], &[0xff, 0xff]);
    }

    #[test]
    fn pending_tcp_checksum_of_zero_is_stored_as_zero() {
        let (mut f, _) = frame_summing_to_zero(16);
        complete_partial(&mut f, 14, 16).unwrap();
        assert_eq!(&f[30..32], &[0, 0]);
    }

    #[test]
    fn completed_checksum_verifies_over_region_plus_pseudo_header() {
        let mut frame = vec![0u8; 14];
        frame.extend_from_slice(&[0x12, 0x34, 0x56, 0x78, 0x00, 0x2a, 0x9a, 0xbc, 0xde]);
        complete_partial(&mut frame, 14, 4).unwrap();
        // The receiver adds the pseudo-header sum (the seed) back in.
        assert_eq!(fold(accumulate(0x002a, &frame[14..])), 0xffff);
    }

    #[test]
    fn checksum_range_outside_the_frame_is_an_error_not_a_panic() {
        let mut f = vec![0u8; 40];
        assert!(complete_partial(&mut f, 39, 16).is_err());
        assert!(complete_partial(&mut f, 60, 0).is_err());
        assert!(complete_partial(&mut f, 38, 0).is_ok());
    }
}
