//! The boot GDT: null, 64-bit code, data and TSS descriptors.

use kvm_bindings::kvm_segment;

/// Selector index of the code segment.
pub const CODE_INDEX: u8 = 1;
/// Selector index of the data segment.
pub const DATA_INDEX: u8 = 2;
/// Selector index of the TSS.
pub const TSS_INDEX: u8 = 3;

/// Encodes a segment descriptor from its flags (access byte in the low 8
/// bits, granularity/size nibble in bits 12..16), base and 20-bit limit.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((base as u64 & 0xff00_0000) << (56 - 24))
        | ((flags as u64 & 0x0000_f0ff) << 40)
        | ((limit as u64 & 0x000f_0000) << (48 - 16))
        | ((base as u64 & 0x00ff_ffff) << 16)
        | (limit as u64 & 0x0000_ffff)
}

/// The four descriptors the launcher installs.
pub fn boot_gdt() -> [u64; 4] {
    [
        gdt_entry(0, 0, 0),
        gdt_entry(0xa09b, 0, 0xfffff), // code: present, ring 0, exec/read, L=1, G=1
        gdt_entry(0xc093, 0, 0xfffff), // data: present, ring 0, read/write, D/B=1, G=1
        gdt_entry(0x808b, 0, 0xfffff), // TSS: present, busy 64-bit TSS
    ]
}

fn base(entry: u64) -> u64 {
    ((entry & 0xff00_0000_0000_0000) >> 32)
        | ((entry & 0x0000_00ff_0000_0000) >> 16)
        | ((entry & 0x0000_0000_ffff_0000) >> 16)
}

fn limit(entry: u64) -> u32 {
    let raw = (((entry & 0x000f_0000_0000_0000) >> 32) | (entry & 0xffff)) as u32;
    if (entry >> 55) & 1 == 1 {
        (raw << 12) | 0xfff
    } else {
        raw
    }
}

/// The KVM view of descriptor `entry` loaded through selector `index`.
pub fn segment_from_gdt(entry: u64, index: u8) -> kvm_segment {
    kvm_segment {
        base: base(entry),
        limit: limit(entry),
        selector: u16::from(index) * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g: ((entry >> 55) & 1) as u8,
        avl: ((entry >> 52) & 1) as u8,
        unusable: u8::from((entry >> 47) & 1 == 0),
        padding: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_segment_is_present_ring0_long_mode_executable() {
        let gdt = boot_gdt();
        let cs = segment_from_gdt(gdt[CODE_INDEX as usize], CODE_INDEX);
        assert_eq!(gdt[1], 0x00af_9b00_0000_ffff);
        assert_eq!(cs.selector, 0x08);
        assert_eq!(cs.l, 1);
        assert_eq!(cs.db, 0);
        assert_eq!(cs.present, 1);
        assert_eq!(cs.dpl, 0);
        assert_eq!(cs.s, 1);
        assert_eq!(cs.type_, 0xb);
        assert_eq!(cs.g, 1);
        assert_eq!(cs.limit, 0xffff_ffff);
        assert_eq!(cs.base, 0);
    }

    #[test]
    fn data_and_tss_segments_decode_with_their_selectors() {
        let gdt = boot_gdt();
        assert_eq!(gdt[0], 0);
        let ds = segment_from_gdt(gdt[2], DATA_INDEX);
        assert_eq!((ds.selector, ds.type_, ds.db, ds.l), (0x10, 3, 1, 0));
        let tss = segment_from_gdt(gdt[3], TSS_INDEX);
        assert_eq!((tss.selector, tss.type_, tss.s), (0x18, 0xb, 0));
    }

    #[test]
    fn base_and_byte_granular_limit_round_trip() {
        let e = gdt_entry(0x0093, 0x1234_5678, 0xabcde);
        let s = segment_from_gdt(e, 5);
        assert_eq!(s.base, 0x1234_5678);
        assert_eq!(s.limit, 0xabcde);
        assert_eq!(s.g, 0);
    }
}
