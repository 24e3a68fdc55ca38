//! GRE headers (RFC 2784, with the key and sequence number of RFC 2890).

use crate::checksum;
use crate::error::{Error, Layer, need};

/// IP protocol number.
pub const IP_PROTO: u8 = 47;
/// Protocol type of an Ethernet payload (transparent Ethernet bridging).
pub const PROTO_ETHERNET: u16 = 0x6558;

const F_CSUM: u16 = 0x8000;
const F_ROUTING: u16 = 0x4000;
const F_KEY: u16 = 0x2000;
const F_SEQ: u16 = 0x1000;
const VERSION_MASK: u16 = 0x0007;
/// Flag bits RFC 2784/2890 leave reserved (must be zero).
const RESERVED: u16 = 0x0ff8;

/// A read-only view of a GRE header and its payload.
#[derive(Debug, Clone, Copy)]
pub struct GrePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GrePacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        GrePacket { buffer }
    }

    /// A view whose optional fields fit the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = GrePacket { buffer };
        let have = p.buffer.as_ref().len();
        need(Layer::Gre, 4, have)?;
        need(Layer::Gre, p.header_len(), have)?;
        Ok(p)
    }

    fn be16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }
    fn be32(&self, at: usize) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }
    pub fn flags(&self) -> u16 {
        self.be16(0)
    }
    pub fn protocol(&self) -> u16 {
        self.be16(2)
    }
    /// Header length from the flags (4 + 4 per optional field).
    pub fn header_len(&self) -> usize {
        let f = self.flags();
        4 + [F_CSUM, F_KEY, F_SEQ]
            .iter()
            .filter(|&&b| f & b != 0)
            .count()
            * 4
    }
    pub fn key(&self) -> Option<u32> {
        let f = self.flags();
        (f & F_KEY != 0).then(|| self.be32(if f & F_CSUM != 0 { 8 } else { 4 }))
    }
    pub fn seq(&self) -> Option<u32> {
        let f = self.flags();
        let at = 4 + if f & F_CSUM != 0 { 4 } else { 0 } + if f & F_KEY != 0 { 4 } else { 0 };
        (f & F_SEQ != 0).then(|| self.be32(at))
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

/// A GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreRepr {
    pub protocol: u16,
    pub csum: bool,
    pub key: Option<u32>,
    pub seq: Option<u32>,
}

impl GreRepr {
    /// Parses version 0 without routing; a present checksum must verify
    /// over the header and the payload.
    pub fn parse<T: AsRef<[u8]>>(p: &GrePacket<T>) -> Result<GreRepr, Error> {
        let f = p.flags();
        let bad = |why| Error::Malformed {
            layer: Layer::Gre,
            why,
        };
        if f & VERSION_MASK != 0 {
            return Err(bad("version is not 0"));
        }
        if f & F_ROUTING != 0 {
            return Err(bad("routing present"));
        }
        if f & RESERVED != 0 {
            return Err(bad("reserved flag set"));
        }
        let csum = f & F_CSUM != 0;
        if csum && checksum::ones_complement_sum(p.buffer.as_ref()) != 0xffff {
            return Err(Error::Checksum(Layer::Gre));
        }
        Ok(GreRepr {
            protocol: p.protocol(),
            csum,
            key: p.key(),
            seq: p.seq(),
        })
    }

    pub fn header_len(&self) -> usize {
        4 + 4
            * (usize::from(self.csum)
                + usize::from(self.key.is_some())
                + usize::from(self.seq.is_some()))
    }

    /// Writes the header with a zero checksum field (see [`fill_checksum`]).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let n = self.header_len();
        let h = buf
            .get_mut(..n)
            .ok_or(Error::Unbuildable("no room for the GRE header"))?;
        let mut f = 0u16;
        let mut at = 4;
        if self.csum {
            f |= F_CSUM;
            h[4..8].fill(0);
            at += 4;
        }
        if let Some(k) = self.key {
            f |= F_KEY;
            h[at..at + 4].copy_from_slice(&k.to_be_bytes());
            at += 4;
        }
        if let Some(s) = self.seq {
            f |= F_SEQ;
            h[at..at + 4].copy_from_slice(&s.to_be_bytes());
        }
        h[0..2].copy_from_slice(&f.to_be_bytes());
        h[2..4].copy_from_slice(&self.protocol.to_be_bytes());
        Ok(n)
    }
}

/// Fills the checksum of a GRE packet (header with the C flag and a zero
/// checksum field, then payload).
pub fn fill_checksum(pkt: &mut [u8]) {
    let c = !checksum::ones_complement_sum(pkt);
    pkt[4..6].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_optional_field_combination_round_trips() {
        for (csum, key, seq) in [
            (false, None, None),
            (false, Some(0xdead_beef), None),
            (true, Some(7), Some(9)),
            (true, None, Some(1)),
        ] {
            let r = GreRepr {
                protocol: PROTO_ETHERNET,
                csum,
                key,
                seq,
            };
            let mut b = vec![0u8; r.header_len() + 5];
            let n = r.emit(&mut b).unwrap();
            b[n..].copy_from_slice(b"inner");
            if csum {
                fill_checksum(&mut b);
            }
            let p = GrePacket::new_checked(&b[..]).unwrap();
            assert_eq!(GreRepr::parse(&p), Ok(r));
            assert_eq!(p.payload(), b"inner");
        }
    }

    #[test]
    fn bad_checksum_version_routing_and_short_headers_are_refused() {
        let r = GreRepr {
            protocol: PROTO_ETHERNET,
            csum: true,
            key: Some(1),
            seq: None,
        };
        let mut b = vec![0u8; 14];
        r.emit(&mut b).unwrap();
        fill_checksum(&mut b);
        b[13] ^= 0x10;
        let p = GrePacket::new_checked(&b[..]).unwrap();
        assert_eq!(GreRepr::parse(&p), Err(Error::Checksum(Layer::Gre)));
        let v1 = [0x00u8, 0x01, 0x65, 0x58];
        assert!(GreRepr::parse(&GrePacket::new_unchecked(&v1[..])).is_err());
        let routing = [0x40u8, 0x00, 0x65, 0x58];
        assert!(GreRepr::parse(&GrePacket::new_unchecked(&routing[..])).is_err());
        let short = [0x20u8, 0x00, 0x65, 0x58, 0, 0];
        assert!(matches!(
            GrePacket::new_checked(&short[..]),
            Err(Error::Truncated {
                layer: Layer::Gre,
                need: 8,
                have: 6
            })
        ));
    }
}
