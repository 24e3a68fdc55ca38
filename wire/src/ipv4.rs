//! IPv4 headers (RFC 791).

use std::net::Ipv4Addr;

use crate::checksum;
use crate::error::{Error, Layer, need};

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Don't-fragment flag in the flags/fragment-offset word.
const DF: u16 = 0x4000;
const MF: u16 = 0x2000;

/// A read-only view of an IPv4 header and its payload.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// A view without any check; accessors may panic on short buffers.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// A view whose version, header length and total length are consistent
    /// with the buffer (the buffer may be longer than the packet: padding).
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = Ipv4Packet { buffer };
        let b = p.buffer.as_ref();
        need(Layer::Ipv4, HEADER_LEN, b.len())?;
        if p.version() != 4 {
            return Err(Error::Malformed {
                layer: Layer::Ipv4,
                why: "version is not 4",
            });
        }
        let hl = p.header_len();
        if hl < HEADER_LEN {
            return Err(Error::Malformed {
                layer: Layer::Ipv4,
                why: "header length below 20",
            });
        }
        need(Layer::Ipv4, hl, b.len())?;
        let tl = usize::from(p.total_len());
        if tl < hl {
            return Err(Error::Malformed {
                layer: Layer::Ipv4,
                why: "total length below header length",
            });
        }
        need(Layer::Ipv4, tl, b.len())?;
        Ok(p)
    }

    fn be16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[0] & 0x0f) * 4
    }
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    pub fn total_len(&self) -> u16 {
        self.be16(2)
    }
    pub fn ident(&self) -> u16 {
        self.be16(4)
    }
    pub fn dont_frag(&self) -> bool {
        self.be16(6) & DF != 0
    }
    /// True for any fragment but a whole datagram.
    pub fn is_fragment(&self) -> bool {
        self.be16(6) & (MF | 0x1fff) != 0
    }
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[8]
    }
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[9]
    }
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }
    /// True when the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        let h = &self.buffer.as_ref()[..self.header_len()];
        checksum::ones_complement_sum(h) == 0xffff
    }
    /// The payload (up to the total length, without link-layer padding).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

/// The fields of an IPv4 header that tunnelling uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub tos: u8,
    pub dont_frag: bool,
    pub payload_len: usize,
}

impl Ipv4Repr {
    /// Parses a checked view, verifying the header checksum and refusing
    /// fragments.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Result<Ipv4Repr, Error> {
        if !p.verify_checksum() {
            return Err(Error::Checksum(Layer::Ipv4));
        }
        if p.is_fragment() {
            return Err(Error::Fragment);
        }
        Ok(Ipv4Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            ttl: p.ttl(),
            tos: p.tos(),
            dont_frag: p.dont_frag(),
            payload_len: usize::from(p.total_len()) - p.header_len(),
        })
    }

    /// Writes a 20-byte header (identification 0) with its checksum into
    /// `buf[..20]`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        let total = HEADER_LEN + self.payload_len;
        let total =
            u16::try_from(total).map_err(|_| Error::Unbuildable("IPv4 packet over 64 KiB"))?;
        let h = buf
            .get_mut(..HEADER_LEN)
            .ok_or(Error::Unbuildable("no room for the IPv4 header"))?;
        h[0] = 0x45;
        h[1] = self.tos;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&[0, 0]);
        let flags: u16 = if self.dont_frag { DF } else { 0 };
        h[6..8].copy_from_slice(&flags.to_be_bytes());
        h[8] = self.ttl;
        h[9] = self.protocol;
        h[10..12].copy_from_slice(&[0, 0]);
        h[12..16].copy_from_slice(&self.src.octets());
        h[16..20].copy_from_slice(&self.dst.octets());
        let c = checksum::ipv4_header_checksum(h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src: Ipv4Addr::new(10, 99, 0, 1),
            dst: Ipv4Addr::new(10, 99, 0, 2),
            protocol: 17,
            ttl: 64,
            tos: 0x10,
            dont_frag: true,
            payload_len: 8,
        }
    }

    #[test]
    fn emit_then_parse_round_trips_with_a_valid_checksum() {
        let mut b = [0u8; 28];
        repr().emit(&mut b).unwrap();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p).unwrap(), repr());
    }

    #[test]
    fn bad_version_short_header_and_overlong_total_length_are_refused() {
        let mut b = [0u8; 28];
        repr().emit(&mut b).unwrap();
        assert!(matches!(
            Ipv4Packet::new_checked(&b[..19]),
            Err(Error::Truncated { .. })
        ));
        let mut v6 = b;
        v6[0] = 0x65;
        assert!(matches!(
            Ipv4Packet::new_checked(&v6[..]),
            Err(Error::Malformed { .. })
        ));
        assert!(matches!(
            Ipv4Packet::new_checked(&b[..27]),
            Err(Error::Truncated { .. })
        ));
        let mut ihl = b;
        ihl[0] = 0x44;
        assert!(Ipv4Packet::new_checked(&ihl[..]).is_err());
    }

    #[test]
    fn corrupted_checksum_and_fragments_are_refused() {
        let mut b = [0u8; 28];
        repr().emit(&mut b).unwrap();
        let mut bad = b;
        bad[8] = 63;
        let p = Ipv4Packet::new_checked(&bad[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p), Err(Error::Checksum(Layer::Ipv4)));
        let mut frag = b;
        frag[6] = 0x20; // MF
        frag[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::ipv4_header_checksum(&frag[..20]);
        frag[10..12].copy_from_slice(&c.to_be_bytes());
        let p = Ipv4Packet::new_checked(&frag[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p), Err(Error::Fragment));
    }
}
