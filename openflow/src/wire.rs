//! Bounds-checked big-endian reader and a growable writer.
//!
//! Every read returns a [`DecodeError`] instead of panicking when the input
//! is short, so decoders written with `?` can never index out of bounds.
//! A reader carries the OpenFlow error that a short read means where it is
//! used (`OFPBRC_BAD_LEN` for a message body, `OFPBAC_BAD_LEN` inside an
//! action, …); sub-readers inherit it.

use crate::error::{DecodeError, OfError};

/// A cursor over untrusted bytes.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// What a read past the end is answered with.
    short: OfError,
}

impl<'a> Reader<'a> {
    /// A reader whose short reads are `OFPBRC_BAD_LEN`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            short: OfError::BadLen,
        }
    }

    /// This reader, reporting short reads as `error` from now on.
    pub fn reporting(mut self, error: OfError) -> Reader<'a> {
        self.short = error;
        self
    }

    /// Runs `f` with short reads reported as `error`, then goes back to
    /// this reader's own error.
    pub fn within<T>(
        &mut self,
        error: OfError,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        let own = std::mem::replace(&mut self.short, error);
        let out = f(self);
        self.short = own;
        out
    }

    /// The error this reader reports for a short read.
    pub fn short_error(&self) -> OfError {
        self.short
    }

    fn short(&self, need: usize) -> DecodeError {
        DecodeError::Short {
            error: self.short,
            offset: self.pos,
            need,
            have: self.remaining(),
        }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unconsumed bytes, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Fails with this reader's error unless every byte has been read.
    pub fn done(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Refused(self.short))
        }
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let s = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
            .ok_or_else(|| self.short(n))?;
        self.pos += n;
        Ok(s)
    }

    /// A sub-reader over the next `n` bytes, reporting the same error.
    pub fn sub(&mut self, n: usize) -> Result<Reader<'a>, DecodeError> {
        let short = self.short;
        self.bytes(n).map(|b| Reader::new(b).reporting(short))
    }

    pub fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.bytes(n).map(|_| ())
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let b = self.bytes(N)?;
        let mut a = [0; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        self.array::<1>().map(|a| a[0])
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_be_bytes)
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_be_bytes)
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_be_bytes)
    }

    /// Peeks a big-endian u16 at `off` bytes from the current position.
    pub fn peek_u16(&self, off: usize) -> Result<u16, DecodeError> {
        let mut ahead = self.clone();
        ahead.skip(off)?;
        ahead.u16()
    }

    /// Reads a NUL-terminated string from a fixed-size field of `n` bytes.
    /// As in OVS, at most `n - 1` bytes are taken even when the field holds
    /// no NUL; bytes that are not UTF-8 become `?`, one per bad sequence, so
    /// the string never needs more room than the field gave it.
    pub fn string(&mut self, n: usize) -> Result<String, DecodeError> {
        let b = self.bytes(n)?;
        let b = &b[..n.saturating_sub(1)];
        let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
        let mut s = String::with_capacity(end);
        for chunk in b[..end].utf8_chunks() {
            s.push_str(chunk.valid());
            if !chunk.invalid().is_empty() {
                s.push('?');
            }
        }
        Ok(s)
    }
}

/// An append-only big-endian writer.
#[derive(Default, Debug)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            buf: Vec::with_capacity(64),
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    pub fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    /// Pads with zeros to a multiple of `align` bytes.
    pub fn pad_to(&mut self, align: usize) {
        let n = self.buf.len().next_multiple_of(align) - self.buf.len();
        self.zeros(n);
    }

    /// Writes a string NUL-padded to `n` bytes, truncated (at a character
    /// boundary) to leave room for the NUL.
    pub fn string(&mut self, s: &str, n: usize) {
        let mut take = s.len().min(n.saturating_sub(1));
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes(&s.as_bytes()[..take]);
        self.zeros(n - take);
    }

    /// Reserves a u16 length field and returns its offset.
    pub fn len_placeholder(&mut self) -> usize {
        let at = self.buf.len();
        self.u16(0);
        at
    }

    /// Patches a u16 at `at` with `v`.
    pub fn patch_u16(&mut self, at: usize, v: u16) {
        if let Some(s) = self.buf.get_mut(at..at + 2) {
            s.copy_from_slice(&v.to_be_bytes());
        }
    }

    /// Patches the u16 length at `at` with the number of bytes since `start`.
    pub fn patch_len_since(&mut self, at: usize, start: usize) {
        let n = self.buf.len() - start;
        self.patch_u16(at, u16::try_from(n).unwrap_or(u16::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_its_error_instead_of_reading_past_the_end() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), Ok(0x0102));
        assert_eq!(
            r.u16(),
            Err(DecodeError::Short {
                error: OfError::BadLen,
                offset: 2,
                need: 2,
                have: 1
            })
        );
        assert_eq!(r.u8(), Ok(3));
        assert!(r.u8().is_err());
        assert!(r.bytes(usize::MAX).is_err());
    }

    #[test]
    fn sub_readers_report_the_error_of_their_context() {
        let mut r = Reader::new(&[0, 8, 1]).reporting(OfError::BadBucket);
        let mut b = r.sub(2).unwrap();
        b.u16().unwrap();
        assert_eq!(b.u8().unwrap_err().of_error(), OfError::BadBucket);
        assert_eq!(r.peek_u16(0).unwrap_err().of_error(), OfError::BadBucket);
        assert_eq!(
            r.done(),
            Err(DecodeError::Refused(OfError::BadBucket)),
            "one byte left over"
        );
    }

    #[test]
    fn a_name_filling_its_whole_field_is_read_as_ovs_does_without_the_last_byte() {
        let mut r = Reader::new(b"0123456789abcdefXY");
        assert_eq!(r.string(16).as_deref().ok(), Some("0123456789abcde"));
        assert_eq!(r.u8(), Ok(b'X'), "the whole field is consumed");
    }

    #[test]
    fn names_read_from_the_wire_write_back_to_the_same_name() {
        for field in [
            &b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3\xf2\xf1\xf0"[..],
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}".as_bytes(),
            b"eth0\0garbage\xff\0\0\0",
        ] {
            let name = Reader::new(field).string(16).expect("16 bytes");
            let mut w = Writer::new();
            w.string(&name, 16);
            assert_eq!(w.buf.len(), 16);
            let again = Reader::new(&w.buf).string(16).expect("16 bytes");
            assert_eq!(again, name, "from {field:?}");
        }
    }

    #[test]
    fn a_long_name_is_truncated_at_a_character_boundary() {
        let mut w = Writer::new();
        w.string("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}x", 16);
        assert_eq!(
            &w.buf[14..],
            &[0, 0],
            "7 two-byte characters, then NUL padding"
        );
        assert_eq!(
            Reader::new(&w.buf).string(16).as_deref().ok(),
            Some("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}")
        );
    }

    /// Found by the `decode` fuzz target: an OpenFlow 1.0 port status whose
    /// port name fills its 16 bytes decoded to a name that encodes differently.
    #[test]
    fn a_port_status_with_an_unterminated_name_survives_a_round_trip() {
        let hex = [
            "010c007d000f0074747474747474747474747474747474747474747474747474",
            "747474347474747474747474747474747474747474747474747474041b00140e",
            "000000fffffffffffffffa0000041b00140e000000ff74747474747474000000",
            "0000ffff7474747474747474002dff7408fffffffa0000740100002d41",
        ]
        .concat();
        let msg: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let (h, m) = crate::decode(&msg).expect("decodes");
        let bytes = crate::encode(&m, h.version, h.xid).expect("encodes");
        let (_, again) = crate::decode(&bytes).expect("decodes again");
        assert_eq!(again, m);
    }

    #[test]
    fn writer_pads_to_alignment_and_patches_lengths() {
        let mut w = Writer::new();
        let at = w.len_placeholder();
        w.u8(7);
        w.pad_to(8);
        w.patch_len_since(at, 0);
        assert_eq!(w.buf, vec![0, 8, 7, 0, 0, 0, 0, 0]);
    }
}
