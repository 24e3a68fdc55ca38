//! Packet buffers and batches.
//!
//! A [`Packet`] owns one buffer large enough for a 64 KiB GSO super-frame plus
//! headroom for pushing VLAN tags, allocated once and reused: the hot path
//! never allocates. [`PacketBatch`] holds up to [`BATCH_SIZE`] of them.

/// Packets handled per rx burst.
pub const BATCH_SIZE: usize = 32;
/// Bytes reserved in front of the frame (VLAN pushes, encapsulation).
pub const HEADROOM: usize = 128;
/// Largest frame a packet can hold (a TSO/GSO super-frame plus L2 header).
pub const MAX_FRAME: usize = 65_536 + 64;

/// Offload metadata, with the meaning of `struct virtio_net_hdr` (its home
/// and codec are in [`wire::vnet_hdr`]).
pub use wire::Offload;

/// One frame in a reusable buffer.
pub struct Packet {
    buf: Box<[u8]>,
    start: usize,
    len: usize,
    /// Offload state of the frame (checksum to complete, segmentation to do).
    pub offload: Offload,
    /// Datapath port the frame arrived on.
    pub in_port: u32,
    /// How many times the packet re-entered the datapath (recirculation or
    /// re-injection); 0 for a packet fresh from a port.
    pub recirc_depth: u8,
}

impl Default for Packet {
    fn default() -> Self {
        Self::new()
    }
}

impl Packet {
    /// A packet with a fresh buffer of `HEADROOM + MAX_FRAME` bytes.
    pub fn new() -> Packet {
        Packet {
            buf: vec![0u8; HEADROOM + MAX_FRAME].into_boxed_slice(),
            start: HEADROOM,
            len: 0,
            offload: Offload::default(),
            in_port: 0,
            recirc_depth: 0,
        }
    }

    /// A packet holding a copy of `frame` (tests and the slow path).
    pub fn from_bytes(frame: &[u8]) -> Packet {
        let mut p = Packet::new();
        let n = frame.len().min(MAX_FRAME);
        p.rx_buffer()[..n].copy_from_slice(&frame[..n]);
        p.set_len(n);
        p
    }

    /// Clears the packet and returns the whole receive area (after the
    /// headroom) for a port to fill; call [`Packet::set_len`] afterwards.
    #[inline]
    pub fn rx_buffer(&mut self) -> &mut [u8] {
        self.start = HEADROOM;
        self.len = 0;
        self.offload = Offload::default();
        &mut self.buf[HEADROOM..]
    }

    /// Sets the frame length after a fill through [`Packet::rx_buffer`].
    #[inline]
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.buf.len() - self.start);
    }

    /// The frame.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// The frame, mutable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }

    /// The frame and all the room after it in the buffer (for a rewrite
    /// that grows the frame; call [`Packet::set_len`] with the new length).
    #[inline]
    pub fn data_and_tailroom_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Grows the frame by `n` bytes at the front (taken from the headroom);
    /// returns false when the headroom is exhausted.
    pub fn push_front(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        self.len += n;
        true
    }

    /// Removes `n` bytes from the front; returns false when the frame is shorter.
    pub fn pull_front(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.start += n;
        self.len -= n;
        true
    }

    /// Sets the frame to a copy of `frame`, resetting offload state.
    pub fn copy_from(&mut self, frame: &[u8]) {
        let n = frame.len().min(MAX_FRAME);
        self.rx_buffer()[..n].copy_from_slice(&frame[..n]);
        self.set_len(n);
    }
}

/// Up to [`BATCH_SIZE`] packets whose buffers are allocated once.
pub struct PacketBatch {
    pkts: Vec<Packet>,
    len: usize,
}

impl Default for PacketBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketBatch {
    pub fn new() -> PacketBatch {
        PacketBatch {
            pkts: (0..BATCH_SIZE).map(|_| Packet::new()).collect(),
            len: 0,
        }
    }

    /// Number of packets in the batch.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left.
    #[inline]
    pub fn free(&self) -> usize {
        BATCH_SIZE - self.len
    }

    /// Empties the batch (buffers are kept).
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The next free packet slot, for a port to fill; `None` when full.
    /// The slot becomes part of the batch only after [`PacketBatch::commit`].
    #[inline]
    pub fn next_slot(&mut self) -> Option<&mut Packet> {
        self.pkts.get_mut(self.len)
    }

    /// Adds the slot returned by the last [`PacketBatch::next_slot`].
    #[inline]
    pub fn commit(&mut self) {
        debug_assert!(self.len < BATCH_SIZE);
        self.len += 1;
    }

    /// The packets in the batch.
    #[inline]
    pub fn packets(&self) -> &[Packet] {
        &self.pkts[..self.len]
    }

    /// The packets in the batch, mutable.
    #[inline]
    pub fn packets_mut(&mut self) -> &mut [Packet] {
        &mut self.pkts[..self.len]
    }
}
