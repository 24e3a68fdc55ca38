//! Geneve headers (RFC 8926) and their options.

use crate::error::{Error, Layer, need};

pub const HEADER_LEN: usize = 8;
/// IANA port.
pub const PORT: u16 = 6081;
/// Largest options area (6-bit length in 4-byte words).
pub const MAX_OPTIONS_LEN: usize = 63 * 4;
/// Protocol type of an Ethernet payload.
pub const PROTO_ETHERNET: u16 = 0x6558;
/// Option header length.
pub const OPTION_HEADER_LEN: usize = 4;
/// The critical bit in an option's type.
pub const OPTION_CRITICAL: u8 = 0x80;

const FLAG_OAM: u8 = 0x80;
const FLAG_CRITICAL: u8 = 0x40;

/// A read-only view of a Geneve header, its options and the payload.
#[derive(Debug, Clone, Copy)]
pub struct GenevePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GenevePacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        GenevePacket { buffer }
    }

    /// A view whose fixed header and options area fit the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = GenevePacket { buffer };
        let have = p.buffer.as_ref().len();
        need(Layer::Geneve, HEADER_LEN, have)?;
        need(Layer::Geneve, HEADER_LEN + p.options_len(), have)?;
        Ok(p)
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 6
    }
    /// Length of the options area in bytes.
    pub fn options_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[0] & 0x3f) * 4
    }
    pub fn oam(&self) -> bool {
        self.buffer.as_ref()[1] & FLAG_OAM != 0
    }
    pub fn critical(&self) -> bool {
        self.buffer.as_ref()[1] & FLAG_CRITICAL != 0
    }
    pub fn protocol(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }
    pub fn vni(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([0, b[4], b[5], b[6]])
    }
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + self.options_len()]
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN + self.options_len()..]
    }
}

/// One option (TLV) of a Geneve header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneveOption<'a> {
    pub class: u16,
    /// The type, critical bit (0x80) included.
    pub typ: u8,
    /// The data (a multiple of 4 bytes, at most 124).
    pub data: &'a [u8],
}

impl GeneveOption<'_> {
    pub fn is_critical(&self) -> bool {
        self.typ & OPTION_CRITICAL != 0
    }

    /// Bytes this option takes on the wire.
    pub fn wire_len(&self) -> usize {
        OPTION_HEADER_LEN + self.data.len()
    }

    /// Writes the option into `buf`, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        if self.data.len() % 4 != 0 || self.data.len() > 31 * 4 {
            return Err(Error::Unbuildable(
                "Geneve option data must be a multiple of 4 bytes, at most 124",
            ));
        }
        let n = self.wire_len();
        let o = buf
            .get_mut(..n)
            .ok_or(Error::Unbuildable("no room for the Geneve option"))?;
        o[0..2].copy_from_slice(&self.class.to_be_bytes());
        o[2] = self.typ;
        o[3] = (self.data.len() / 4) as u8;
        o[4..].copy_from_slice(self.data);
        Ok(n)
    }
}

/// Iterates over an options area, yielding an error (then stopping) at an
/// option that overruns it.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

/// The options of the options area `area`.
pub fn options(area: &[u8]) -> Options<'_> {
    Options { rest: area }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<GeneveOption<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let avail = self.rest.len();
        if avail < OPTION_HEADER_LEN {
            self.rest = &[];
            return Some(Err(Error::BadOptionLength {
                len: OPTION_HEADER_LEN,
                avail,
            }));
        }
        let r = self.rest;
        let len = OPTION_HEADER_LEN + usize::from(r[3] & 0x1f) * 4;
        if len > avail {
            self.rest = &[];
            return Some(Err(Error::BadOptionLength { len, avail }));
        }
        self.rest = &r[len..];
        Some(Ok(GeneveOption {
            class: u16::from_be_bytes([r[0], r[1]]),
            typ: r[2],
            data: &r[OPTION_HEADER_LEN..len],
        }))
    }
}

/// A Geneve header; `options` is the raw options area (validated by
/// [`GeneveRepr::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneveRepr<'a> {
    pub vni: u32,
    pub oam: bool,
    /// The C bit: the options include a critical one.
    pub critical: bool,
    pub protocol: u16,
    pub options: &'a [u8],
}

impl<'a> GeneveRepr<'a> {
    /// Parses the header: version 0, options that tile the options area
    /// exactly, and no critical option `known` does not accept.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        p: &GenevePacket<&'a T>,
        known: impl Fn(u16, u8) -> bool,
    ) -> Result<GeneveRepr<'a>, Error> {
        let v = p.version();
        if v != 0 {
            return Err(Error::GeneveVersion(v));
        }
        let buf: &'a [u8] = p.buffer.as_ref();
        let area = &buf[HEADER_LEN..HEADER_LEN + p.options_len()];
        for opt in options(area) {
            let opt = opt?;
            if opt.is_critical() && !known(opt.class, opt.typ) {
                return Err(Error::UnknownCriticalOption {
                    class: opt.class,
                    typ: opt.typ,
                });
            }
        }
        Ok(GeneveRepr {
            vni: p.vni(),
            oam: p.oam(),
            critical: p.critical(),
            protocol: p.protocol(),
            options: area,
        })
    }

    /// Bytes of header plus options.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Writes the header and options; the C bit is set when `critical` is
    /// or any option is critical.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        if self.vni > 0xff_ffff {
            return Err(Error::Unbuildable("Geneve VNI over 24 bits"));
        }
        if self.options.len() % 4 != 0 || self.options.len() > MAX_OPTIONS_LEN {
            return Err(Error::Unbuildable(
                "Geneve options not a multiple of 4 or over 252 bytes",
            ));
        }
        let mut crit = self.critical;
        for o in options(self.options) {
            crit |= o
                .map_err(|_| Error::Unbuildable("malformed Geneve options"))?
                .is_critical();
        }
        let n = self.header_len();
        let h = buf
            .get_mut(..n)
            .ok_or(Error::Unbuildable("no room for the Geneve header"))?;
        h[0] = (self.options.len() / 4) as u8;
        h[1] = if self.oam { FLAG_OAM } else { 0 } | if crit { FLAG_CRITICAL } else { 0 };
        h[2..4].copy_from_slice(&self.protocol.to_be_bytes());
        h[4..7].copy_from_slice(&self.vni.to_be_bytes()[1..]);
        h[7] = 0;
        h[HEADER_LEN..].copy_from_slice(self.options);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Vec<u8> {
        let mut a = vec![0u8; 16];
        let n = GeneveOption {
            class: 0x0102,
            typ: 0x80,
            data: &[0, 0, 0, 5],
        }
        .emit(&mut a)
        .unwrap();
        GeneveOption {
            class: 0xffff,
            typ: 0x01,
            data: &[1, 2, 3, 4],
        }
        .emit(&mut a[n..])
        .unwrap();
        a
    }

    #[test]
    fn header_with_options_round_trips_and_sets_the_critical_bit() {
        let o = opts();
        let r = GeneveRepr {
            vni: 0xabcdef,
            oam: false,
            critical: false,
            protocol: PROTO_ETHERNET,
            options: &o,
        };
        let mut b = vec![0u8; r.header_len() + 3];
        assert_eq!(r.emit(&mut b).unwrap(), 24);
        assert_eq!(&b[..8], &[4, 0x40, 0x65, 0x58, 0xab, 0xcd, 0xef, 0]);
        let p = GenevePacket::new_checked(&b[..]).unwrap();
        let back = GeneveRepr::parse(&p, |c, t| c == 0x0102 && t == 0x80).unwrap();
        assert_eq!(back.vni, 0xabcdef);
        assert!(back.critical);
        assert_eq!(back.options, &o[..]);
        assert_eq!(p.payload().len(), 3);
        let all: Vec<_> = options(back.options).map(Result::unwrap).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].data, &[1, 2, 3, 4]);
    }

    #[test]
    fn unknown_critical_option_is_refused_and_unknown_plain_option_is_not() {
        let o = opts();
        let r = GeneveRepr {
            vni: 1,
            oam: false,
            critical: false,
            protocol: PROTO_ETHERNET,
            options: &o,
        };
        let mut b = vec![0u8; r.header_len()];
        r.emit(&mut b).unwrap();
        let p = GenevePacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            GeneveRepr::parse(&p, |_, _| false),
            Err(Error::UnknownCriticalOption {
                class: 0x0102,
                typ: 0x80
            })
        );
        // Only the non-critical 0xffff/0x01 option is unknown: accepted.
        assert!(GeneveRepr::parse(&p, |c, _| c == 0x0102).is_ok());
    }

    #[test]
    fn option_overrunning_the_options_area_is_a_bad_option_length() {
        let mut b = opts();
        b[3] = 4;
        let mut hdr = vec![4u8, 0, 0x65, 0x58, 0, 0, 1, 0];
        hdr.extend_from_slice(&b);
        let p = GenevePacket::new_checked(&hdr[..]).unwrap();
        assert_eq!(
            GeneveRepr::parse(&p, |_, _| true),
            Err(Error::BadOptionLength { len: 20, avail: 16 })
        );
    }

    #[test]
    fn options_area_longer_than_the_packet_and_other_versions_are_refused() {
        let hdr = [2u8, 0, 0x65, 0x58, 0, 0, 1, 0, 0, 0, 0];
        assert!(matches!(
            GenevePacket::new_checked(&hdr[..]),
            Err(Error::Truncated {
                layer: Layer::Geneve,
                need: 16,
                have: 11
            })
        ));
        let v1 = [0x40u8, 0, 0x65, 0x58, 0, 0, 1, 0];
        let p = GenevePacket::new_checked(&v1[..]).unwrap();
        assert_eq!(
            GeneveRepr::parse(&p, |_, _| true),
            Err(Error::GeneveVersion(1))
        );
    }
}
