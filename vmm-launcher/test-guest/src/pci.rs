//! Finding the virtio-net PCI function and its virtio structures
//! (configuration mechanism #1, bus 0).

use core::arch::asm;

fn outl(port: u16, v: u32) {
    // SAFETY: port I/O to the emulated PCI configuration ports.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack)) };
}

fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: port I/O to the emulated PCI configuration ports.
    unsafe { asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack)) };
    v
}

fn cfg_read(slot: u32, reg: u32) -> u32 {
    outl(0xcf8, 0x8000_0000 | (slot << 11) | (reg & 0xfc));
    inl(0xcfc)
}

fn cfg_write(slot: u32, reg: u32, v: u32) {
    outl(0xcf8, 0x8000_0000 | (slot << 11) | (reg & 0xfc));
    outl(0xcfc, v);
}

/// Guest addresses of the virtio structures of one function.
pub struct VirtioPciLayout {
    pub common: usize,
    pub isr: usize,
    pub device: usize,
    pub notify: usize,
    pub notify_mult: u32,
}

/// Scans bus 0 for a modern virtio-net function (1af4:1041).
pub fn find_virtio_net() -> Result<VirtioPciLayout, &'static str> {
    find_virtio(1).map_err(|_| "pci: no virtio-net function (1af4:1041) on bus 0")
}

/// Scans bus 0 for a modern virtio function of device type `id`
/// (1af4:1040+id).
pub fn find_virtio(id: u32) -> Result<VirtioPciLayout, &'static str> {
    let want = ((0x1040 + id) << 16) | 0x1af4;
    let slot = (0..32u32)
        .find(|&s| cfg_read(s, 0) == want)
        .ok_or("pci: no such virtio function on bus 0")?;
    // Memory decoding on.
    let cmd = cfg_read(slot, 4);
    cfg_write(slot, 4, (cmd & 0xffff) | 0x2);
    let mut bars = [0u64; 6];
    let mut i = 0;
    while i < 6 {
        let lo = cfg_read(slot, 0x10 + 4 * i as u32);
        if lo & 1 == 0 && (lo >> 1) & 3 == 2 && i < 5 {
            let hi = cfg_read(slot, 0x14 + 4 * i as u32);
            bars[i] = (u64::from(hi) << 32) | u64::from(lo & !0xf);
            i += 2;
        } else {
            bars[i] = u64::from(lo & !0xf);
            i += 1;
        }
    }
    let mut layout = VirtioPciLayout {
        common: 0,
        isr: 0,
        device: 0,
        notify: 0,
        notify_mult: 0,
    };
    let mut at = cfg_read(slot, 0x34) & 0xfc;
    let mut guard = 0;
    while at != 0 && guard < 48 {
        guard += 1;
        let head = cfg_read(slot, at);
        if head & 0xff == 0x09 {
            let kind = (head >> 24) as u8;
            let bar = (cfg_read(slot, at + 4) & 0xff) as usize;
            let offset = cfg_read(slot, at + 8);
            let addr = bars.get(bar).copied().unwrap_or(0) as usize + offset as usize;
            match kind {
                1 => layout.common = addr,
                2 => {
                    layout.notify = addr;
                    layout.notify_mult = cfg_read(slot, at + 16);
                }
                3 => layout.isr = addr,
                4 => layout.device = addr,
                _ => {}
            }
        }
        at = (head >> 8) & 0xfc;
    }
    if layout.common == 0 || layout.notify == 0 || layout.device == 0 {
        return Err("pci: virtio capabilities missing");
    }
    Ok(layout)
}
