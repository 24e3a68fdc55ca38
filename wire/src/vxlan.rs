//! VXLAN headers (RFC 7348), with the Group Based Policy extension
//! (draft-smith-vxlan-group-policy) that OVS exposes as `tun_gbp_*`.

use crate::error::{Error, Layer, need};

pub const HEADER_LEN: usize = 8;
/// IANA port.
pub const PORT: u16 = 4789;
/// "VNI present" flag.
const FLAG_I: u8 = 0x08;
/// Group Based Policy extension present.
const FLAG_G: u8 = 0x80;

/// A read-only view of a VXLAN header and the inner frame.
#[derive(Debug, Clone, Copy)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        VxlanPacket { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        need(Layer::Vxlan, HEADER_LEN, buffer.as_ref().len())?;
        Ok(VxlanPacket { buffer })
    }
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    pub fn vni(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([0, b[4], b[5], b[6]])
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

/// Group Based Policy fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gbp {
    /// The flags byte (D = 0x40 "don't learn", A = 0x08 "policy applied").
    pub flags: u8,
    pub id: u16,
}

/// A VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanRepr {
    /// 24-bit network identifier.
    pub vni: u32,
    pub gbp: Option<Gbp>,
}

impl VxlanRepr {
    /// Parses the header: the I flag must be set and no flag but G may be.
    pub fn parse<T: AsRef<[u8]>>(p: &VxlanPacket<T>) -> Result<VxlanRepr, Error> {
        let f = p.flags();
        if f & FLAG_I == 0 {
            return Err(Error::Malformed {
                layer: Layer::Vxlan,
                why: "VNI flag not set",
            });
        }
        if f & !(FLAG_I | FLAG_G) != 0 {
            return Err(Error::Malformed {
                layer: Layer::Vxlan,
                why: "reserved flag set",
            });
        }
        let b = p.buffer.as_ref();
        let gbp = (f & FLAG_G != 0).then(|| Gbp {
            flags: b[1],
            id: u16::from_be_bytes([b[2], b[3]]),
        });
        Ok(VxlanRepr { vni: p.vni(), gbp })
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        if self.vni > 0xff_ffff {
            return Err(Error::Unbuildable("VXLAN VNI over 24 bits"));
        }
        let h = buf
            .get_mut(..HEADER_LEN)
            .ok_or(Error::Unbuildable("no room for the VXLAN header"))?;
        h.fill(0);
        h[0] = FLAG_I;
        if let Some(g) = self.gbp {
            h[0] |= FLAG_G;
            h[1] = g.flags;
            h[2..4].copy_from_slice(&g.id.to_be_bytes());
        }
        h[4..7].copy_from_slice(&self.vni.to_be_bytes()[1..]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_matches_rfc7348_layout_and_parses_back() {
        let r = VxlanRepr {
            vni: 0x123456,
            gbp: None,
        };
        let mut b = [0xaau8; 8];
        r.emit(&mut b).unwrap();
        assert_eq!(b, [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        assert_eq!(
            VxlanRepr::parse(&VxlanPacket::new_checked(&b[..]).unwrap()),
            Ok(r)
        );
        let g = VxlanRepr {
            vni: 7,
            gbp: Some(Gbp {
                flags: 0x40,
                id: 0x1234,
            }),
        };
        g.emit(&mut b).unwrap();
        assert_eq!(b, [0x88, 0x40, 0x12, 0x34, 0, 0, 7, 0]);
        assert_eq!(VxlanRepr::parse(&VxlanPacket::new_unchecked(&b[..])), Ok(g));
    }

    #[test]
    fn missing_vni_flag_reserved_flags_and_short_headers_are_refused() {
        let no_i = [0u8, 0, 0, 0, 0, 0, 1, 0];
        assert!(VxlanRepr::parse(&VxlanPacket::new_unchecked(&no_i[..])).is_err());
        let rsvd = [0x0cu8, 0, 0, 0, 0, 0, 1, 0];
        assert!(VxlanRepr::parse(&VxlanPacket::new_unchecked(&rsvd[..])).is_err());
        assert!(matches!(
            VxlanPacket::new_checked(&no_i[..7]),
            Err(Error::Truncated {
                layer: Layer::Vxlan,
                ..
            })
        ));
        assert!(
            VxlanRepr {
                vni: 1 << 24,
                gbp: None
            }
            .emit(&mut [0u8; 8])
            .is_err()
        );
    }
}
