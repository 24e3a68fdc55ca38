//! A polling virtio-blk driver (one request at a time) and the disk test:
//! reads a known sector pattern, asks for the serial number, writes,
//! flushes, discards and reads back, printing each request's status.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{Ordering, fence};

use crate::serial::{print, print_dec};
use crate::virtio::{Regs, r32};

const QSIZE: usize = 16;
const F_VERSION_1: u64 = 1 << 32;
const F_RO: u64 = 1 << 5;
const F_FLUSH: u64 = 1 << 9;
const F_DISCARD: u64 = 1 << 13;
const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const SECTOR: usize = 512;
/// Sectors the pattern check reads.
const PATTERN_SECTORS: usize = 8;

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
struct Bufs {
    data: [u8; PATTERN_SECTORS * SECTOR],
    header: [u8; 16],
    status: u8,
}

const ZERO_DESC: Desc = Desc {
    addr: 0,
    len: 0,
    flags: 0,
    next: 0,
};

static mut RING: Ring = Ring {
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

static mut BUFS: Bufs = Bufs {
    data: [0; PATTERN_SECTORS * SECTOR],
    header: [0; 16],
    status: 0xff,
};

pub struct BlkDevice {
    regs: Regs,
    features: u64,
    avail: u16,
}

/// What a request moves.
enum Data {
    None,
    /// Device writes `n` bytes into the data buffer.
    In(usize),
    /// Device reads `n` bytes from the data buffer.
    Out(usize),
}

impl BlkDevice {
    fn init(mut regs: Regs) -> Result<BlkDevice, &'static str> {
        regs.set_status(0);
        regs.set_status(1);
        regs.set_status(3);
        let offered = regs.device_features();
        if offered & F_VERSION_1 == 0 {
            return Err("virtio-blk: VERSION_1 not offered");
        }
        let accept = offered & (F_VERSION_1 | F_RO | F_FLUSH | F_DISCARD);
        regs.set_driver_features(accept);
        regs.set_status(0xb);
        if regs.status() & 8 == 0 {
            return Err("virtio-blk: device refused our features");
        }
        regs.select(0);
        if (regs.queue_max() as usize) < QSIZE {
            return Err("virtio-blk: queue too small");
        }
        let ring = &raw mut RING;
        let r = ring as usize;
        let avail = r + core::mem::offset_of!(Ring, avail_flags);
        let used = r + core::mem::offset_of!(Ring, used_flags);
        regs.setup_queue(0, QSIZE as u16, r, avail, used);
        regs.set_status(0xf);
        if regs.status() & 0x80 != 0 {
            return Err("virtio-blk: device failed to start");
        }
        Ok(BlkDevice {
            regs,
            features: accept,
            avail: 0,
        })
    }

    /// The first virtio-mmio window holding a block device.
    pub fn init_mmio(bases: &[usize]) -> Result<BlkDevice, &'static str> {
        for &b in bases {
            if r32(b) == 0x7472_6976 && r32(b + 4) == 2 && r32(b + 8) == 2 {
                return Self::init(Regs::Mmio(b));
            }
        }
        Err("virtio-blk: no virtio-mmio block device")
    }

    pub fn init_pci() -> Result<BlkDevice, &'static str> {
        let layout = crate::pci::find_virtio(2)?;
        Self::init(Regs::Pci(layout, [0; 2]))
    }

    fn capacity(&self) -> u64 {
        let mut v = 0u64;
        for i in 0..8 {
            v |= u64::from(self.regs.config_byte(i)) << (8 * i);
        }
        v
    }

    /// Submits one request and polls for its completion; returns the
    /// status byte (0xff: no answer).
    fn request(&mut self, ty: u32, sector: u64, data: Data) -> u8 {
        let ring = &raw mut RING;
        let bufs = &raw mut BUFS;
        // SAFETY: single-threaded guest; the ring and buffers belong to this
        // device and the device owns them only between submit and used.
        unsafe {
            let header = &mut *(&raw mut (*bufs).header);
            header[0..4].copy_from_slice(&ty.to_le_bytes());
            header[4..8].copy_from_slice(&0u32.to_le_bytes());
            header[8..16].copy_from_slice(&sector.to_le_bytes());
            write_volatile(&raw mut (*bufs).status, 0xff);
            (*ring).desc[0] = Desc {
                addr: (&raw const (*bufs).header) as u64,
                len: 16,
                flags: DESC_F_NEXT,
                next: 1,
            };
            let status_desc = match data {
                Data::None => 1,
                Data::In(n) | Data::Out(n) => {
                    (*ring).desc[1] = Desc {
                        addr: (&raw const (*bufs).data) as u64,
                        len: n as u32,
                        flags: DESC_F_NEXT
                            | if matches!(data, Data::In(_)) {
                                DESC_F_WRITE
                            } else {
                                0
                            },
                        next: 2,
                    };
                    2
                }
            };
            (*ring).desc[status_desc] = Desc {
                addr: (&raw const (*bufs).status) as u64,
                len: 1,
                flags: DESC_F_WRITE,
                next: 0,
            };
            let before = read_volatile(&raw const (*ring).used_idx);
            (*ring).avail_ring[usize::from(self.avail) % QSIZE] = 0;
            self.avail = self.avail.wrapping_add(1);
            fence(Ordering::SeqCst);
            write_volatile(&raw mut (*ring).avail_idx, self.avail);
            fence(Ordering::SeqCst);
            self.regs.notify(0);
            let start = crate::rdtsc();
            while read_volatile(&raw const (*ring).used_idx) == before {
                if crate::rdtsc().wrapping_sub(start) > 20_000_000_000 {
                    return 0xff;
                }
                core::hint::spin_loop();
            }
            fence(Ordering::SeqCst);
            read_volatile(&raw const (*bufs).status)
        }
    }

    fn data(&mut self) -> &mut [u8; PATTERN_SECTORS * SECTOR] {
        let bufs = &raw mut BUFS;
        // SAFETY: only used between requests (the device is idle).
        unsafe { &mut (*bufs).data }
    }
}

fn status_line(what: &str, st: u8) {
    print("TESTGUEST: disk ");
    print(what);
    print(" status ");
    print_dec(u64::from(st));
    print("\n");
}

/// Byte `j` of sector `k` of the host's test pattern.
fn pattern(k: usize, j: usize) -> u8 {
    match j {
        0..4 => b"FVS:"[j],
        4..8 => (k as u32).to_le_bytes()[j - 4],
        _ => ((k * 7 + j) & 0xff) as u8,
    }
}

/// Byte `j` of the sector the guest writes.
pub fn written(j: usize) -> u8 {
    match j {
        0..8 => b"GUESTWR!"[j],
        _ => 0xa5 ^ (j & 0xff) as u8,
    }
}

pub fn run_disk(cfg: &crate::cmdline::Config) -> Result<(), &'static str> {
    let mut dev = if cfg.pci {
        BlkDevice::init_pci()?
    } else {
        BlkDevice::init_mmio(&cfg.mmio_bases[..cfg.mmio_count])?
    };
    let ro = dev.features & F_RO != 0;
    print("TESTGUEST: disk capacity ");
    print_dec(dev.capacity());
    print(" sectors ro=");
    print_dec(u64::from(ro));
    print(" flush=");
    print_dec(u64::from(dev.features & F_FLUSH != 0));
    print(" discard=");
    print_dec(u64::from(dev.features & F_DISCARD != 0));
    print("\n");

    // Serial number.
    let st = dev.request(8, 0, Data::In(20));
    status_line("get-id", st);
    if st == 0 {
        print("TESTGUEST: disk serial ");
        let id = *dev.data();
        for &c in id.iter().take(20) {
            if c == 0 {
                break;
            }
            crate::serial::putc_pub(c);
        }
        print("\n");
    }

    // The host's pattern in the first sectors.
    let st = dev.request(0, 0, Data::In(PATTERN_SECTORS * SECTOR));
    status_line("read", st);
    let data = *dev.data();
    let mut bad = None;
    'outer: for k in 0..PATTERN_SECTORS {
        for j in 0..SECTOR {
            if data[k * SECTOR + j] != pattern(k, j) {
                bad = Some(k);
                break 'outer;
            }
        }
    }
    match bad {
        None => print("TESTGUEST: disk pattern ok\n"),
        Some(k) => {
            print("TESTGUEST: disk pattern mismatch in sector ");
            print_dec(k as u64);
            print("\n");
        }
    }

    // Write one sector, flush, read it back.
    for (j, b) in dev.data()[..SECTOR].iter_mut().enumerate() {
        *b = written(j);
    }
    let w = dev.request(1, cfg.write_sector, Data::Out(SECTOR));
    status_line("write", w);
    status_line("flush", dev.request(4, 0, Data::None));
    if dev.features & F_DISCARD != 0 {
        // One segment: the sector after the written one.
        let seg = dev.data();
        seg[..8].copy_from_slice(&(cfg.write_sector + 1).to_le_bytes());
        seg[8..12].copy_from_slice(&1u32.to_le_bytes());
        seg[12..16].copy_from_slice(&0u32.to_le_bytes());
        status_line("discard", dev.request(11, 0, Data::Out(16)));
    }
    dev.data().fill(0);
    let st = dev.request(0, cfg.write_sector, Data::In(SECTOR));
    status_line("readback", st);
    let same = dev.data()[..SECTOR]
        .iter()
        .enumerate()
        .all(|(j, &b)| b == written(j));
    print(if same {
        "TESTGUEST: disk readback holds the write\n"
    } else {
        "TESTGUEST: disk readback differs from the write\n"
    });
    // Reading past the end must fail.
    let st = dev.request(0, dev.capacity(), Data::In(SECTOR));
    status_line("read-past-end", st);
    status_line("unknown-request", dev.request(0x7f, 0, Data::None));
    Ok(())
}
