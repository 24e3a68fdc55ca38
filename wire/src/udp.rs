//! UDP headers (RFC 768).

use crate::checksum;
use crate::error::{Error, Layer, need};

pub const HEADER_LEN: usize = 8;

/// A read-only view of a UDP datagram.
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// A view whose length field is at least 8 and fits the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = UdpPacket { buffer };
        let have = p.buffer.as_ref().len();
        need(Layer::Udp, HEADER_LEN, have)?;
        let len = usize::from(p.len());
        if len < HEADER_LEN {
            return Err(Error::Malformed {
                layer: Layer::Udp,
                why: "length below 8",
            });
        }
        need(Layer::Udp, len, have)?;
        Ok(p)
    }

    fn be16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }
    pub fn src_port(&self) -> u16 {
        self.be16(0)
    }
    pub fn dst_port(&self) -> u16 {
        self.be16(2)
    }
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        self.be16(4)
    }
    pub fn checksum(&self) -> u16 {
        self.be16(6)
    }
    /// The datagram (header and payload, up to the length field).
    pub fn datagram(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.len())]
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
    /// True when the checksum is absent (0) or verifies against the
    /// pseudo-header running sum `pseudo`.
    pub fn verify_checksum(&self, pseudo: u64) -> bool {
        self.checksum() == 0
            || checksum::fold(checksum::accumulate(pseudo, self.datagram())) == 0xffff
    }
}

/// The fields of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &UdpPacket<T>) -> UdpRepr {
        UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        }
    }

    /// Writes the header for a `payload_len`-byte payload with a zero
    /// checksum.
    pub fn emit(&self, buf: &mut [u8], payload_len: usize) -> Result<(), Error> {
        let len = u16::try_from(HEADER_LEN + payload_len)
            .map_err(|_| Error::Unbuildable("UDP datagram over 64 KiB"))?;
        let h = buf
            .get_mut(..HEADER_LEN)
            .ok_or(Error::Unbuildable("no room for the UDP header"))?;
        h[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        h[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        h[4..6].copy_from_slice(&len.to_be_bytes());
        h[6..8].copy_from_slice(&[0, 0]);
        Ok(())
    }
}

/// Fills the checksum of the UDP datagram `dgram` (header with a zero
/// checksum field, then payload) given its pseudo-header running sum.
pub fn fill_checksum(dgram: &mut [u8], pseudo: u64) {
    let c = checksum::finish(checksum::accumulate(pseudo, dgram), true);
    dgram[6..8].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_checksum_verifies_and_a_flipped_bit_does_not() {
        let mut d = [0u8; 13];
        UdpRepr {
            src_port: 49152,
            dst_port: 4789,
        }
        .emit(&mut d, 5)
        .unwrap();
        d[8..].copy_from_slice(b"hello");
        let pseudo = checksum::pseudo_header_v4([10, 0, 0, 1], [10, 0, 0, 2], 17, 13);
        fill_checksum(&mut d, pseudo);
        let p = UdpPacket::new_checked(&d[..]).unwrap();
        assert!(p.verify_checksum(pseudo));
        assert_eq!(p.payload(), b"hello");
        let mut bad = d;
        bad[9] ^= 1;
        assert!(
            !UdpPacket::new_checked(&bad[..])
                .unwrap()
                .verify_checksum(pseudo)
        );
    }

    #[test]
    fn length_field_below_8_or_beyond_the_buffer_is_refused() {
        let mut d = [0u8; 8];
        d[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert!(matches!(
            UdpPacket::new_checked(&d[..]),
            Err(Error::Malformed { .. })
        ));
        d[4..6].copy_from_slice(&9u16.to_be_bytes());
        assert!(matches!(
            UdpPacket::new_checked(&d[..]),
            Err(Error::Truncated { .. })
        ));
    }
}
