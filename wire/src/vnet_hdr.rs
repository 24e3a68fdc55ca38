//! The virtio-net header (`struct virtio_net_hdr`, little endian) in front
//! of frames exchanged with guests, TAP devices and AF_PACKET sockets, to
//! and from [`Offload`], the switch's model of a frame's pending offloads.

/// Offload state of a frame: the fields of a virtio-net header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offload {
    /// `VIRTIO_NET_HDR_F_*` flags (NEEDS_CSUM = 1, DATA_VALID = 2).
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*` (NONE = 0, TCPV4 = 1, UDP = 3, TCPV6 = 4, UDP_L4 = 5, ECN = 0x80).
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl Offload {
    pub const F_NEEDS_CSUM: u8 = 1;
    pub const F_DATA_VALID: u8 = 2;
    pub const GSO_NONE: u8 = 0;
    pub const GSO_TCPV4: u8 = 1;
    pub const GSO_UDP: u8 = 3;
    pub const GSO_TCPV6: u8 = 4;
    /// UDP segmentation (`VIRTIO_NET_HDR_GSO_UDP_L4`): one UDP header per segment.
    pub const GSO_UDP_L4: u8 = 5;
    pub const GSO_ECN: u8 = 0x80;

    /// True when the frame needs no offload work from anyone.
    pub fn is_plain(&self) -> bool {
        self.flags & Self::F_NEEDS_CSUM == 0 && self.gso_type == Self::GSO_NONE
    }
}

/// Size of `struct virtio_net_hdr` (no `num_buffers`), as TAP and
/// AF_PACKET use it.
pub const VNET_HDR_LEN: usize = 10;

/// Size of the header with `num_buffers` (`virtio_net_hdr_mrg_rxbuf`, also
/// the VERSION_1 layout vhost-user guests use).
pub const MAX_HDR_LEN: usize = 12;

/// Decodes the first [`VNET_HDR_LEN`] bytes of `b`; `None` when `b` is
/// shorter.
#[inline]
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

/// Decodes a full 12-byte header (`num_buffers` is ignored).
#[inline]
pub fn decode_mrg(h: &[u8; MAX_HDR_LEN]) -> Offload {
    let u16_at = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
    Offload {
        flags: h[0],
        gso_type: h[1],
        hdr_len: u16_at(2),
        gso_size: u16_at(4),
        csum_start: u16_at(6),
        csum_offset: u16_at(8),
    }
}

/// Encodes `o` into the first [`VNET_HDR_LEN`] bytes of `b`; false when `b`
/// is shorter.
#[inline]
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

/// Encodes the 12-byte header with `num_buffers` (meaningful with
/// MRG_RXBUF or VERSION_1).
#[inline]
pub fn encode_mrg(o: &Offload, num_buffers: u16) -> [u8; MAX_HDR_LEN] {
    let mut h = [0u8; MAX_HDR_LEN];
    encode(o, &mut h);
    h[10..12].copy_from_slice(&num_buffers.to_le_bytes());
    h
}

/// Why a sender's header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HdrError {
    #[error("unknown gso_type {0:#x}")]
    UnknownGso(u8),
    #[error("segmentation offload requested but not negotiated")]
    TsoNotNegotiated,
    #[error("checksum offload requested but not negotiated")]
    CsumNotNegotiated,
    #[error("checksum position {start}+{offset} outside a {len}-byte frame")]
    CsumOutOfFrame { start: u16, offset: u16, len: usize },
    #[error("gso_size 0 on a segmentation request")]
    ZeroGsoSize,
}

/// Checks what a guest asked for against what was negotiated (`csum_ok`,
/// `tso_ok`) and the frame's length. `DATA_VALID` from a guest is dropped
/// (it only has a meaning towards it).
pub fn validate(
    mut off: Offload,
    frame_len: usize,
    csum_ok: bool,
    tso_ok: bool,
) -> Result<Offload, HdrError> {
    off.flags &= Offload::F_NEEDS_CSUM;
    let gso = off.gso_type & !Offload::GSO_ECN;
    match gso {
        Offload::GSO_NONE => {}
        Offload::GSO_TCPV4 | Offload::GSO_TCPV6 => {
            if !tso_ok {
                return Err(HdrError::TsoNotNegotiated);
            }
            if off.gso_size == 0 {
                return Err(HdrError::ZeroGsoSize);
            }
        }
        other => return Err(HdrError::UnknownGso(other)),
    }
    if off.flags & Offload::F_NEEDS_CSUM != 0 {
        if !csum_ok {
            return Err(HdrError::CsumNotNegotiated);
        }
        let end = off.csum_start as usize + off.csum_offset as usize + 2;
        if end > frame_len {
            return Err(HdrError::CsumOutOfFrame {
                start: off.csum_start,
                offset: off.csum_offset,
                len: frame_len,
            });
        }
    }
    if gso == Offload::GSO_NONE {
        off.gso_size = 0;
        off.hdr_len = 0;
        off.gso_type = Offload::GSO_NONE;
    }
    Ok(off)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Offload {
        Offload {
            flags: Offload::F_NEEDS_CSUM,
            gso_type: Offload::GSO_TCPV6,
            hdr_len: 86,
            gso_size: 1428,
            csum_start: 54,
            csum_offset: 16,
        }
    }

    #[test]
    fn encode_then_decode_round_trips_every_field_little_endian() {
        let o = sample();
        let mut b = [0u8; VNET_HDR_LEN];
        assert!(encode(&o, &mut b));
        assert_eq!(b, [1, 4, 86, 0, 0x94, 0x05, 54, 0, 16, 0]);
        assert_eq!(decode(&b), Some(o));
        let h = encode_mrg(&o, 3);
        assert_eq!(decode_mrg(&h), o);
        assert_eq!(decode(&h), Some(o));
        assert_eq!(u16::from_le_bytes([h[10], h[11]]), 3);
    }

    #[test]
    fn short_buffers_are_rejected() {
        assert_eq!(decode(&[0u8; 9]), None);
        assert!(!encode(&Offload::default(), &mut [0u8; 9]));
    }

    #[test]
    fn validate_refuses_checksum_outside_the_frame() {
        let off = Offload {
            flags: Offload::F_NEEDS_CSUM,
            csum_start: 60,
            csum_offset: 6,
            ..Default::default()
        };
        assert!(matches!(
            validate(off, 64, true, true),
            Err(HdrError::CsumOutOfFrame { .. })
        ));
        assert!(validate(off, 68, true, true).is_ok());
    }

    #[test]
    fn validate_refuses_offloads_that_were_not_negotiated() {
        let tso = Offload {
            gso_type: Offload::GSO_TCPV6,
            gso_size: 1400,
            ..Default::default()
        };
        assert_eq!(
            validate(tso, 3000, true, false),
            Err(HdrError::TsoNotNegotiated)
        );
        let csum = Offload {
            flags: Offload::F_NEEDS_CSUM,
            csum_start: 14,
            csum_offset: 6,
            ..Default::default()
        };
        assert_eq!(
            validate(csum, 100, false, true),
            Err(HdrError::CsumNotNegotiated)
        );
        let udp = Offload {
            gso_type: Offload::GSO_UDP,
            gso_size: 1400,
            ..Default::default()
        };
        assert_eq!(
            validate(udp, 3000, true, true),
            Err(HdrError::UnknownGso(3))
        );
    }

    #[test]
    fn validate_drops_data_valid_and_clears_gso_fields_without_gso() {
        let o = Offload {
            flags: Offload::F_DATA_VALID,
            hdr_len: 40,
            gso_size: 9,
            ..Default::default()
        };
        let v = validate(o, 100, true, true).unwrap();
        assert_eq!(v, Offload::default());
    }
}
