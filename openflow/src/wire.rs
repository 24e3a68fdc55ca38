//! Bounds-checked big-endian reader and a growable writer.
//!
//! Every read returns `None` instead of panicking when the input is short,
//! so decoders written with `?` can never index out of bounds.

/// A cursor over untrusted bytes.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
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

    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// A sub-reader over the next `n` bytes.
    pub fn sub(&mut self, n: usize) -> Option<Reader<'a>> {
        self.bytes(n).map(Reader::new)
    }

    pub fn skip(&mut self, n: usize) -> Option<()> {
        self.bytes(n).map(|_| ())
    }

    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|a| a[0])
    }

    pub fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    /// Peeks a big-endian u16 at `off` bytes from the current position.
    pub fn peek_u16(&self, off: usize) -> Option<u16> {
        let s = self.pos.checked_add(off)?;
        let b = self.buf.get(s..s.checked_add(2)?)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a NUL-padded fixed-size string.
    pub fn string(&mut self, n: usize) -> Option<String> {
        let b = self.bytes(n)?;
        let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
        Some(String::from_utf8_lossy(&b[..end]).into_owned())
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

    /// Writes a string NUL-padded (and truncated) to `n` bytes.
    pub fn string(&mut self, s: &str, n: usize) {
        let b = s.as_bytes();
        let take = b.len().min(n.saturating_sub(1));
        self.bytes(&b[..take]);
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
    fn reader_returns_none_instead_of_reading_past_the_end() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), Some(0x0102));
        assert_eq!(r.u16(), None);
        assert_eq!(r.u8(), Some(3));
        assert_eq!(r.u8(), None);
        assert!(r.bytes(usize::MAX).is_none());
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
