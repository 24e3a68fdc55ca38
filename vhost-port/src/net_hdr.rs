//! The `virtio_net_hdr` in front of every frame, to and from [`Offload`].

use datapath::packet::Offload;

/// Largest header (`virtio_net_hdr_mrg_rxbuf`, also the VERSION_1 header).
pub const MAX_HDR_LEN: usize = 12;

/// Why a guest's header was refused.
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

/// Decodes the guest's header (little endian, VERSION_1 layout).
pub fn decode(hdr: &[u8; MAX_HDR_LEN]) -> Offload {
    let u16_at = |i: usize| u16::from_le_bytes([hdr[i], hdr[i + 1]]);
    Offload {
        flags: hdr[0],
        gso_type: hdr[1],
        hdr_len: u16_at(2),
        gso_size: u16_at(4),
        csum_start: u16_at(6),
        csum_offset: u16_at(8),
    }
}

/// Checks what a guest asked for against what was negotiated and the frame.
/// `DATA_VALID` from a guest is dropped (it only has a meaning towards it).
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

/// Encodes the header for a frame going to the guest; `num_buffers` is
/// only meaningful with MRG_RXBUF or VERSION_1 (12-byte header).
pub fn encode(off: &Offload, num_buffers: u16) -> [u8; MAX_HDR_LEN] {
    let mut h = [0u8; MAX_HDR_LEN];
    h[0] = off.flags;
    h[1] = off.gso_type;
    h[2..4].copy_from_slice(&off.hdr_len.to_le_bytes());
    h[4..6].copy_from_slice(&off.gso_size.to_le_bytes());
    h[6..8].copy_from_slice(&off.csum_start.to_le_bytes());
    h[8..10].copy_from_slice(&off.csum_offset.to_le_bytes());
    h[10..12].copy_from_slice(&num_buffers.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_round_trips_offload_fields() {
        let off = Offload {
            flags: Offload::F_NEEDS_CSUM,
            gso_type: Offload::GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let h = encode(&off, 3);
        assert_eq!(decode(&h), off);
        assert_eq!(u16::from_le_bytes([h[10], h[11]]), 3);
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
}
