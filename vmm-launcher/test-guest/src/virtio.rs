//! A polling virtio-net driver over virtio-mmio v2 with split rings.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{Ordering, fence};

const QSIZE: usize = 16;
const BUF_SIZE: usize = 2048;
const HDR_LEN: usize = 12; // virtio_net_hdr with num_buffers (VERSION_1)
const DESC_F_WRITE: u16 = 2;
const F_VERSION_1: u64 = 1 << 32;
const NET_F_MAC: u64 = 1 << 5;

#[repr(C)]
#[derive(Clone, Copy)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

#[repr(C, align(4096))]
struct Ring {
    desc: [Desc; QSIZE],
    avail_flags: u16,
    avail_idx: u16,
    avail_ring: [u16; QSIZE],
    used_event: u16,
    _pad: [u8; 2048 - 16 * QSIZE - 6 - 2 * QSIZE],
    used_flags: u16,
    used_idx: u16,
    used_ring: [(u32, u32); QSIZE],
    avail_event: u16,
}

#[repr(C, align(4096))]
struct Buffers([[u8; BUF_SIZE]; QSIZE]);

const ZERO_DESC: Desc = Desc {
    addr: 0,
    len: 0,
    flags: 0,
    next: 0,
};
const EMPTY_RING: Ring = Ring {
    desc: [ZERO_DESC; QSIZE],
    avail_flags: 0,
    avail_idx: 0,
    avail_ring: [0; QSIZE],
    used_event: 0,
    _pad: [0; 2048 - 16 * QSIZE - 6 - 2 * QSIZE],
    used_flags: 0,
    used_idx: 0,
    used_ring: [(0, 0); QSIZE],
    avail_event: 0,
};

static mut RINGS: [Ring; 2] = [EMPTY_RING, EMPTY_RING];
static mut RX_BUFS: Buffers = Buffers([[0; BUF_SIZE]; QSIZE]);
static mut TX_BUFS: Buffers = Buffers([[0; BUF_SIZE]; QSIZE]);

pub struct NetDevice {
    base: usize,
    pub mac: [u8; 6],
    rx: *mut Ring,
    tx: *mut Ring,
    rx_last_used: u16,
    rx_avail: u16,
    tx_avail: u16,
}

fn rd(base: usize, off: usize) -> u32 {
    // SAFETY: base is the identity-mapped virtio-mmio window.
    unsafe { read_volatile((base + off) as *const u32) }
}

fn wr(base: usize, off: usize, v: u32) {
    // SAFETY: base is the identity-mapped virtio-mmio window.
    unsafe { write_volatile((base + off) as *mut u32, v) }
}

impl NetDevice {
    pub fn init(base: usize) -> Result<NetDevice, &'static str> {
        if rd(base, 0) != 0x7472_6976 {
            return Err("virtio: no virtio-mmio device (bad magic)");
        }
        if rd(base, 4) != 2 {
            return Err("virtio: not a version 2 virtio-mmio device");
        }
        if rd(base, 8) != 1 {
            return Err("virtio: device is not a network card");
        }
        wr(base, 0x70, 0);
        wr(base, 0x70, 1); // ACKNOWLEDGE
        wr(base, 0x70, 3); // DRIVER
        wr(base, 0x14, 0);
        let lo = u64::from(rd(base, 0x10));
        wr(base, 0x14, 1);
        let hi = u64::from(rd(base, 0x10));
        let offered = lo | (hi << 32);
        if offered & F_VERSION_1 == 0 {
            return Err("virtio: VERSION_1 not offered");
        }
        let accept = offered & (F_VERSION_1 | NET_F_MAC);
        wr(base, 0x24, 0);
        wr(base, 0x20, accept as u32);
        wr(base, 0x24, 1);
        wr(base, 0x20, (accept >> 32) as u32);
        wr(base, 0x70, 0xb); // FEATURES_OK
        if rd(base, 0x70) & 8 == 0 {
            return Err("virtio: device refused our features");
        }
        let mut mac = [0u8; 6];
        if accept & NET_F_MAC != 0 {
            for (i, m) in mac.iter_mut().enumerate() {
                // SAFETY: config space byte reads inside the window.
                *m = unsafe { read_volatile((base + 0x100 + i) as *const u8) };
            }
        } else {
            mac = [0x52, 0x54, 0x00, 0xfe, 0xfe, 0x01];
        }
        let rings = &raw mut RINGS;
        // SAFETY: single-threaded guest; the rings are only used through
        // this one device.
        let (rx, tx) = unsafe { (&raw mut (*rings)[0], &raw mut (*rings)[1]) };
        for (q, ring) in [(0u32, rx), (1u32, tx)] {
            wr(base, 0x30, q);
            if (rd(base, 0x34) as usize) < QSIZE {
                return Err("virtio: queue too small");
            }
            wr(base, 0x38, QSIZE as u32);
            let r = ring as usize;
            let desc = r;
            let avail = r + core::mem::offset_of!(Ring, avail_flags);
            let used = r + core::mem::offset_of!(Ring, used_flags);
            wr(base, 0x80, desc as u32);
            wr(base, 0x84, (desc >> 32) as u32);
            wr(base, 0x90, avail as u32);
            wr(base, 0x94, (avail >> 32) as u32);
            wr(base, 0xa0, used as u32);
            wr(base, 0xa4, (used >> 32) as u32);
            wr(base, 0x44, 1);
        }
        let rxb = &raw mut RX_BUFS;
        let txb = &raw mut TX_BUFS;
        // SAFETY: exclusive use of the statics (see above); indexes < QSIZE.
        unsafe {
            for i in 0..QSIZE {
                (*rx).desc[i] = Desc {
                    addr: (&raw mut (*rxb).0[i]) as u64,
                    len: BUF_SIZE as u32,
                    flags: DESC_F_WRITE,
                    next: 0,
                };
                (*rx).avail_ring[i] = i as u16;
                (*tx).desc[i] = Desc {
                    addr: (&raw mut (*txb).0[i]) as u64,
                    len: 0,
                    flags: 0,
                    next: 0,
                };
            }
            fence(Ordering::SeqCst);
            write_volatile(&raw mut (*rx).avail_idx, QSIZE as u16);
        }
        wr(base, 0x70, 0xf); // DRIVER_OK
        if rd(base, 0x70) & 0x80 != 0 {
            return Err("virtio: device failed to start (backend refused)");
        }
        wr(base, 0x50, 0); // rx buffers available
        Ok(NetDevice {
            base,
            mac,
            rx,
            tx,
            rx_last_used: 0,
            rx_avail: QSIZE as u16,
            tx_avail: 0,
        })
    }

    /// Queues one frame; waits for a free slot if all are in flight.
    pub fn send(&mut self, frame: &[u8]) {
        let len = frame.len().min(BUF_SIZE - HDR_LEN);
        let tx = self.tx;
        // SAFETY: tx is our ring; slot index < QSIZE; buffers are ours until
        // the device reports them used.
        unsafe {
            let start = crate::rdtsc();
            while self
                .tx_avail
                .wrapping_sub(read_volatile(&raw const (*tx).used_idx)) as usize
                >= QSIZE
            {
                if crate::rdtsc().wrapping_sub(start) > 4_000_000_000 {
                    return;
                }
            }
            let slot = usize::from(self.tx_avail) % QSIZE;
            let buf = (*tx).desc[slot].addr as *mut u8;
            core::ptr::write_bytes(buf, 0, HDR_LEN);
            core::ptr::copy_nonoverlapping(frame.as_ptr(), buf.add(HDR_LEN), len);
            (*tx).desc[slot].len = (HDR_LEN + len) as u32;
            (*tx).avail_ring[slot] = slot as u16;
            self.tx_avail = self.tx_avail.wrapping_add(1);
            fence(Ordering::SeqCst);
            write_volatile(&raw mut (*tx).avail_idx, self.tx_avail);
            fence(Ordering::SeqCst);
        }
        wr(self.base, 0x50, 1);
    }

    /// Hands every received frame (without the virtio header) to `f` and
    /// gives the buffers back to the device.
    pub fn poll_rx(&mut self, mut f: impl FnMut(&[u8])) {
        let rx = self.rx;
        let mut refilled = false;
        // SAFETY: rx is our ring; ids from the device are bounds-checked.
        unsafe {
            loop {
                let used = read_volatile(&raw const (*rx).used_idx);
                if used == self.rx_last_used {
                    break;
                }
                fence(Ordering::SeqCst);
                let (id, len) = read_volatile(
                    &raw const (*rx).used_ring[usize::from(self.rx_last_used) % QSIZE],
                );
                self.rx_last_used = self.rx_last_used.wrapping_add(1);
                let id = id as usize;
                if id >= QSIZE {
                    continue;
                }
                let len = (len as usize).min(BUF_SIZE);
                if len > HDR_LEN {
                    let buf = (*rx).desc[id].addr as *const u8;
                    f(core::slice::from_raw_parts(buf.add(HDR_LEN), len - HDR_LEN));
                }
                (*rx).avail_ring[usize::from(self.rx_avail) % QSIZE] = id as u16;
                self.rx_avail = self.rx_avail.wrapping_add(1);
                refilled = true;
            }
            if refilled {
                fence(Ordering::SeqCst);
                write_volatile(&raw mut (*rx).avail_idx, self.rx_avail);
            }
        }
        if refilled {
            wr(self.base, 0x50, 0);
        }
    }
}
