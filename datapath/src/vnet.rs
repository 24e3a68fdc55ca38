//! `struct virtio_net_hdr` (10 bytes, native byte order as the kernel's TAP
//! and AF_PACKET sockets use it on little-endian hosts) to and from
//! [`Offload`].

use crate::packet::Offload;

/// Size of `struct virtio_net_hdr` without `num_buffers`.
pub const VNET_HDR_LEN: usize = 10;

/// Decodes a virtio_net_hdr; `None` when `b` is too short.
pub fn decode(b: &[u8]) -> Option<Offload> {
    let h = b.get(..VNET_HDR_LEN)?;
    let u16_at = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
    Some(Offload {
        flags: h[0],
        gso_type: h[1],
        hdr_len: u16_at(2),
        gso_size: u16_at(4),
        csum_start: u16_at(6),
        csum_offset: u16_at(8),
    })
}

/// Encodes `o` into the first [`VNET_HDR_LEN`] bytes of `b`; returns false
/// when `b` is too short.
pub fn encode(o: &Offload, b: &mut [u8]) -> bool {
    let Some(h) = b.get_mut(..VNET_HDR_LEN) else {
        return false;
    };
    h[0] = o.flags;
    h[1] = o.gso_type;
    h[2..4].copy_from_slice(&o.hdr_len.to_le_bytes());
    h[4..6].copy_from_slice(&o.gso_size.to_le_bytes());
    h[6..8].copy_from_slice(&o.csum_start.to_le_bytes());
    h[8..10].copy_from_slice(&o.csum_offset.to_le_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_round_trips_every_field() {
        let o = Offload {
            flags: Offload::F_NEEDS_CSUM,
            gso_type: Offload::GSO_TCPV6,
            hdr_len: 86,
            gso_size: 1428,
            csum_start: 54,
            csum_offset: 16,
        };
        let mut b = [0u8; VNET_HDR_LEN];
        assert!(encode(&o, &mut b));
        assert_eq!(decode(&b), Some(o));
    }

    #[test]
    fn short_buffers_are_rejected() {
        assert_eq!(decode(&[0u8; 9]), None);
        assert!(!encode(&Offload::default(), &mut [0u8; 9]));
    }
}
