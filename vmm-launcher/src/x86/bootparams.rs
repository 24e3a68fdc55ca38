//! The Linux zero page (`struct boot_params`) and its e820 memory map.

use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use vm_memory::ByteValued;

use crate::layout::{CMDLINE, EBDA, HIMEM_START};

/// e820 type for usable RAM.
pub const E820_RAM: u32 = 1;
/// e820 type for reserved ranges.
pub const E820_RESERVED: u32 = 2;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448; // "HdrS"
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT: u32 = 0x0100_0000;
const LOADFLAG_CAN_USE_HEAP: u8 = 0x80;

/// `boot_params` as bytes for guest memory.
#[derive(Clone, Copy, Default)]
#[repr(transparent)]
pub struct ZeroPage(pub boot_params);

// SAFETY: boot_params is a plain-old-data, packed C struct of integers and
// arrays of integers; every bit pattern is valid and it has no padding.
unsafe impl ByteValued for ZeroPage {}

/// Where the initrd was put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitrdPlacement {
    pub addr: u64,
    pub size: u64,
}

/// The e820 map for RAM `ranges`: low memory up to the EBDA, the EBDA to
/// 1 MiB reserved, and every RAM range from 1 MiB up.
pub fn e820_map(ranges: &[(u64, u64)]) -> Vec<boot_e820_entry> {
    let e = |addr, size, r#type| boot_e820_entry { addr, size, r#type };
    let mut out = vec![
        e(0, EBDA, E820_RAM),
        e(EBDA, HIMEM_START - EBDA, E820_RESERVED),
    ];
    for &(start, len) in ranges {
        let end = start + len;
        let from = start.max(HIMEM_START);
        if end > from {
            out.push(e(from, end - from, E820_RAM));
        }
    }
    out
}

/// Fills the zero page: the kernel's own setup header (for a bzImage) with
/// the loader fields set, the command line pointer, the initrd and e820.
pub fn build(
    kernel_header: Option<setup_header>,
    cmdline_len: usize,
    initrd: Option<InitrdPlacement>,
    ram: &[(u64, u64)],
) -> ZeroPage {
    let mut p = boot_params::default();
    if let Some(h) = kernel_header {
        p.hdr = h;
    }
    p.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    p.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    p.hdr.header = KERNEL_HDR_MAGIC;
    p.hdr.cmd_line_ptr = CMDLINE as u32;
    p.hdr.cmdline_size = cmdline_len as u32;
    p.hdr.loadflags |= LOADFLAG_CAN_USE_HEAP;
    p.hdr.heap_end_ptr = 0xfe00;
    if p.hdr.kernel_alignment == 0 {
        p.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT;
    }
    if let Some(rd) = initrd {
        p.hdr.ramdisk_image = rd.addr as u32;
        p.hdr.ramdisk_size = rd.size as u32;
        p.ext_ramdisk_image = (rd.addr >> 32) as u32;
        p.ext_ramdisk_size = (rd.size >> 32) as u32;
    }
    let map = e820_map(ram);
    for (slot, entry) in p.e820_table.iter_mut().zip(map.iter()) {
        *slot = *entry;
    }
    p.e820_entries = map.len().min(p.e820_table.len()) as u8;
    ZeroPage(p)
}

/// Highest page-aligned address below the first RAM range's end (and the
/// kernel's `initrd_addr_max`) where an initrd of `size` bytes fits above
/// `kernel_end`.
pub fn place_initrd(
    size: u64,
    ram: &[(u64, u64)],
    initrd_addr_max: u32,
    kernel_end: u64,
) -> Option<InitrdPlacement> {
    let &(start, len) = ram.first()?;
    let limit = if initrd_addr_max == 0 {
        0x37ff_ffff
    } else {
        u64::from(initrd_addr_max)
    };
    let top = (start + len).min(limit + 1);
    let addr = top.checked_sub(size)? & !0xfff;
    (addr >= kernel_end.max(HIMEM_START)).then_some(InitrdPlacement { addr, size })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::ram_ranges;

    #[test]
    fn e820_has_low_ram_reserved_ebda_and_high_ram() {
        let m = e820_map(&ram_ranges(128 << 20));
        let v: Vec<(u64, u64, u32)> = m.iter().map(|e| (e.addr, e.size, e.r#type)).collect();
        assert_eq!(
            v,
            vec![
                (0, 0x9fc00, E820_RAM),
                (0x9fc00, 0x10_0000 - 0x9fc00, E820_RESERVED),
                (0x10_0000, (128 << 20) - 0x10_0000, E820_RAM),
            ]
        );
    }

    #[test]
    fn e820_describes_ram_above_4g_when_memory_exceeds_the_hole() {
        let m = e820_map(&ram_ranges(5 << 30));
        let last = m.last().unwrap();
        assert_eq!(
            (last.addr, last.size, last.r#type),
            (4 << 30, 2 << 30, E820_RAM)
        );
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn zero_page_sets_loader_fields_cmdline_initrd_and_e820() {
        let hdr = setup_header {
            version: 0x020f,
            kernel_alignment: 0x20_0000,
            ..Default::default()
        };
        let ram = ram_ranges(256 << 20);
        let rd = InitrdPlacement {
            addr: 0x0f00_0000,
            size: 0x12345,
        };
        let zp = build(Some(hdr), 42, Some(rd), &ram).0;
        let h = zp.hdr;
        assert_eq!({ h.type_of_loader }, 0xff);
        assert_eq!({ h.boot_flag }, 0xaa55);
        assert_eq!({ h.header }, 0x5372_6448);
        assert_eq!({ h.version }, 0x020f, "kernel's own header is kept");
        assert_eq!({ h.kernel_alignment }, 0x20_0000);
        assert_eq!({ h.cmd_line_ptr }, CMDLINE as u32);
        assert_eq!({ h.cmdline_size }, 42);
        assert_eq!({ h.ramdisk_image }, 0x0f00_0000);
        assert_eq!({ h.ramdisk_size }, 0x12345);
        assert_eq!({ zp.e820_entries }, 3);
        let e2 = zp.e820_table[2];
        assert_eq!(
            ({ e2.addr }, { e2.size }),
            (HIMEM_START, (256 << 20) - HIMEM_START)
        );
    }

    #[test]
    fn zero_page_is_4k_and_fields_sit_at_boot_protocol_offsets() {
        let zp = build(None, 10, None, &ram_ranges(64 << 20));
        let bytes = zp.as_slice();
        assert_eq!(bytes.len(), 4096);
        assert_eq!(bytes[0x1e8], 3, "e820_entries at 0x1e8");
        assert_eq!(&bytes[0x1fe..0x200], &[0x55, 0xaa], "boot_flag at 0x1fe");
        assert_eq!(&bytes[0x202..0x206], b"HdrS");
        assert_eq!(bytes[0x210], 0xff, "type_of_loader at 0x210");
        assert_eq!(
            u32::from_le_bytes(bytes[0x228..0x22c].try_into().unwrap()),
            CMDLINE as u32,
            "cmd_line_ptr at 0x228"
        );
    }

    #[test]
    fn initrd_goes_page_aligned_at_the_top_of_low_ram_above_the_kernel() {
        let ram = ram_ranges(64 << 20);
        let p = place_initrd(0x1800, &ram, 0, 0x20_0000).unwrap();
        assert_eq!(p.addr, (64 << 20) - 0x2000);
        assert_eq!(p.addr % 4096, 0);
        assert!(p.addr + p.size <= 64 << 20);
        assert!(place_initrd(63 << 20, &ram, 0, 0x20_0000).is_none());
    }

    #[test]
    fn initrd_respects_the_kernels_initrd_addr_max() {
        let ram = ram_ranges(2 << 30);
        let p = place_initrd(0x1000, &ram, 0x0fff_ffff, 0x20_0000).unwrap();
        assert_eq!(p.addr, 0x0fff_f000);
    }
}
