//! The PMD's random draws (which packets are sampled, which megaflow hits
//! enter the EMC): xorshift64*, a few instructions a draw, no lock, no
//! state shared between threads.

/// A xorshift64* generator.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Draw(u64);

impl Draw {
    /// A generator seeded with `seed` (0 is as good as 1).
    pub(crate) fn new(seed: u64) -> Draw {
        Draw(seed)
    }

    /// The next draw, uniform over `u32`.
    #[inline]
    pub(crate) fn next_u32(&mut self) -> u32 {
        let mut x = self.0 | 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}
