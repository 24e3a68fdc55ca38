//! A polling virtio-net driver over virtio-mmio v2 with split rings.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{Ordering, fence};

const QSIZE: usize = 16;
const BUF_SIZE: usize = 2048;
const HDR_LEN: usize = 12; // virtio_net_hdr with num_buffers (VERSION_1)
const DESC_F_WRITE: u16 = 2;
const F_VERSION_1: u64 = 1 << 32;
const NET_F_MAC: u64 = 1 << 5;
const NET_F_STATUS: u64 = 1 << 16;

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

/// Register access for either transport.
pub enum Regs {
    Mmio(usize),
    Pci(crate::pci::VirtioPciLayout, [u16; 2]),
}

pub(crate) fn r8(a: usize) -> u8 {
    // SAFETY: a is inside an identity-mapped virtio register window.
    unsafe { read_volatile(a as *const u8) }
}
fn w8(a: usize, v: u8) {
    // SAFETY: as above.
    unsafe { write_volatile(a as *mut u8, v) }
}
fn r16(a: usize) -> u16 {
    // SAFETY: as above.
    unsafe { read_volatile(a as *const u16) }
}
fn w16(a: usize, v: u16) {
    // SAFETY: as above.
    unsafe { write_volatile(a as *mut u16, v) }
}
pub(crate) fn r32(a: usize) -> u32 {
    // SAFETY: as above.
    unsafe { read_volatile(a as *const u32) }
}
fn w32(a: usize, v: u32) {
    // SAFETY: as above.
    unsafe { write_volatile(a as *mut u32, v) }
}

impl Regs {
    pub(crate) fn status(&self) -> u8 {
        match self {
            Regs::Mmio(b) => r32(b + 0x70) as u8,
            Regs::Pci(l, _) => r8(l.common + 0x14),
        }
    }
    pub(crate) fn set_status(&self, v: u8) {
        match self {
            Regs::Mmio(b) => w32(b + 0x70, u32::from(v)),
            Regs::Pci(l, _) => w8(l.common + 0x14, v),
        }
    }
    pub(crate) fn device_features(&self) -> u64 {
        let (sel, val) = match self {
            Regs::Mmio(b) => (b + 0x14, b + 0x10),
            Regs::Pci(l, _) => (l.common, l.common + 0x04),
        };
        w32(sel, 0);
        let lo = u64::from(r32(val));
        w32(sel, 1);
        lo | (u64::from(r32(val)) << 32)
    }
    pub(crate) fn set_driver_features(&self, f: u64) {
        let (sel, val) = match self {
            Regs::Mmio(b) => (b + 0x24, b + 0x20),
            Regs::Pci(l, _) => (l.common + 0x08, l.common + 0x0c),
        };
        w32(sel, 0);
        w32(val, f as u32);
        w32(sel, 1);
        w32(val, (f >> 32) as u32);
    }
    pub(crate) fn select(&mut self, q: u16) {
        match self {
            Regs::Mmio(b) => w32(*b + 0x30, u32::from(q)),
            Regs::Pci(l, _) => w16(l.common + 0x16, q),
        }
    }
    pub(crate) fn queue_max(&self) -> u16 {
        match self {
            Regs::Mmio(b) => r32(b + 0x34) as u16,
            Regs::Pci(l, _) => r16(l.common + 0x18),
        }
    }
    pub(crate) fn setup_queue(
        &mut self,
        q: u16,
        size: u16,
        desc: usize,
        avail: usize,
        used: usize,
    ) {
        self.select(q);
        match self {
            Regs::Mmio(b) => {
                let b = *b;
                w32(b + 0x38, u32::from(size));
                for (off, a) in [(0x80, desc), (0x90, avail), (0xa0, used)] {
                    w32(b + off, a as u32);
                    w32(b + off + 4, (a as u64 >> 32) as u32);
                }
                w32(b + 0x44, 1);
            }
            Regs::Pci(l, notify_off) => {
                let c = l.common;
                w16(c + 0x18, size);
                for (off, a) in [(0x20, desc), (0x28, avail), (0x30, used)] {
                    w32(c + off, a as u32);
                    w32(c + off + 4, (a as u64 >> 32) as u32);
                }
                if let Some(n) = notify_off.get_mut(usize::from(q)) {
                    *n = r16(c + 0x1e);
                }
                w16(c + 0x1c, 1);
            }
        }
    }
    pub(crate) fn config_byte(&self, i: usize) -> u8 {
        match self {
            Regs::Mmio(b) => r8(b + 0x100 + i),
            Regs::Pci(l, _) => r8(l.device + i),
        }
    }
    /// Reads and acknowledges the interrupt status (bit 1: config change).
    fn take_isr(&self) -> u32 {
        match self {
            Regs::Mmio(b) => {
                let v = r32(b + 0x60);
                w32(b + 0x64, v);
                v
            }
            // Reading the ISR acknowledges it.
            Regs::Pci(l, _) => u32::from(r8(l.isr)),
        }
    }
    pub(crate) fn notify(&self, q: u16) {
        match self {
            Regs::Mmio(b) => w32(b + 0x50, u32::from(q)),
            Regs::Pci(l, off) => {
                let n = off.get(usize::from(q)).copied().unwrap_or(0);
                w16(l.notify + n as usize * l.notify_mult as usize, q);
            }
        }
    }
}

pub struct NetDevice {
    regs: Regs,
    /// VIRTIO_NET_F_STATUS negotiated: the config space has a link bit.
    status: bool,
    pub mac: [u8; 6],
    rx: *mut Ring,
    tx: *mut Ring,
    rx_last_used: u16,
    rx_avail: u16,
    tx_avail: u16,
}

impl NetDevice {
    /// Probes the virtio-mmio window at `base`.
    pub fn init_mmio(base: usize) -> Result<NetDevice, &'static str> {
        if r32(base) != 0x7472_6976 {
            return Err("virtio: no virtio-mmio device (bad magic)");
        }
        if r32(base + 4) != 2 {
            return Err("virtio: not a version 2 virtio-mmio device");
        }
        if r32(base + 8) != 1 {
            return Err("virtio: device is not a network card");
        }
        Self::init(Regs::Mmio(base))
    }

    /// Finds the virtio-net PCI function on bus 0.
    pub fn init_pci() -> Result<NetDevice, &'static str> {
        let layout = crate::pci::find_virtio_net()?;
        Self::init(Regs::Pci(layout, [0; 2]))
    }

    fn init(mut regs: Regs) -> Result<NetDevice, &'static str> {
        regs.set_status(0);
        regs.set_status(1); // ACKNOWLEDGE
        regs.set_status(3); // DRIVER
        let offered = regs.device_features();
        if offered & F_VERSION_1 == 0 {
            return Err("virtio: VERSION_1 not offered");
        }
        let accept = offered & (F_VERSION_1 | NET_F_MAC | NET_F_STATUS);
        regs.set_driver_features(accept);
        regs.set_status(0xb); // FEATURES_OK
        if regs.status() & 8 == 0 {
            return Err("virtio: device refused our features");
        }
        let mut mac = [0u8; 6];
        if accept & NET_F_MAC != 0 {
            for (i, m) in mac.iter_mut().enumerate() {
                *m = regs.config_byte(i);
            }
        } else {
            mac = [0x52, 0x54, 0x00, 0xfe, 0xfe, 0x01];
        }
        let rings = &raw mut RINGS;
        // SAFETY: single-threaded guest; the rings are only used through
        // this one device.
        let (rx, tx) = unsafe { (&raw mut (*rings)[0], &raw mut (*rings)[1]) };
        for (q, ring) in [(0u16, rx), (1u16, tx)] {
            regs.select(q);
            if (regs.queue_max() as usize) < QSIZE {
                return Err("virtio: queue too small");
            }
            let r = ring as usize;
            let avail = r + core::mem::offset_of!(Ring, avail_flags);
            let used = r + core::mem::offset_of!(Ring, used_flags);
            regs.setup_queue(q, QSIZE as u16, r, avail, used);
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
        regs.set_status(0xf); // DRIVER_OK
        if regs.status() & 0x80 != 0 {
            return Err("virtio: device failed to start (backend refused)");
        }
        regs.notify(0); // rx buffers available
        Ok(NetDevice {
            status: accept & NET_F_STATUS != 0,
            regs,
            mac,
            rx,
            tx,
            rx_last_used: 0,
            rx_avail: QSIZE as u16,
            tx_avail: 0,
        })
    }

    /// VIRTIO_NET_S_LINK_UP from the config space (always up without
    /// VIRTIO_NET_F_STATUS).
    pub fn link_up(&self) -> bool {
        !self.status || self.regs.config_byte(6) & 1 != 0
    }

    /// True when a configuration-change interrupt was pending (and
    /// acknowledges it).
    pub fn take_config_interrupt(&self) -> bool {
        self.regs.take_isr() & 2 != 0
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
        self.regs.notify(1);
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
            self.regs.notify(0);
        }
    }
}
