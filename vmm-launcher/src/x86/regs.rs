//! Initial vCPU register state for the 64-bit boot protocol.

use kvm_bindings::{kvm_fpu, kvm_lapic_state, kvm_msr_entry, kvm_regs, kvm_sregs};

use super::gdt::{self, CODE_INDEX, DATA_INDEX, TSS_INDEX};
use crate::layout::{BOOT_GDT, BOOT_IDT, BOOT_STACK, PML4, ZERO_PAGE};

/// CR0: PE | MP | ET | NE | WP | AM | PG.
pub const CR0_BOOT: u64 = 0x8005_0033;
/// CR4.PAE.
pub const CR4_PAE: u64 = 1 << 5;
/// CR4.OSFXSR | CR4.OSXMMEXCPT: SSE usable (compilers emit it freely).
pub const CR4_SSE: u64 = (1 << 9) | (1 << 10);
/// EFER.LME | EFER.LMA.
pub const EFER_LME_LMA: u64 = (1 << 8) | (1 << 10);

/// General registers: entry point, stack, and `rsi` pointing at the zero
/// page as the 64-bit Linux boot protocol requires.
pub fn boot_regs(entry: u64) -> kvm_regs {
    kvm_regs {
        rflags: 0x2,
        rip: entry,
        rsp: BOOT_STACK,
        rbp: BOOT_STACK,
        rsi: ZERO_PAGE,
        ..Default::default()
    }
}

/// Puts `sregs` into long mode with the boot GDT and identity paging.
pub fn set_long_mode_sregs(sregs: &mut kvm_sregs) {
    let table = gdt::boot_gdt();
    let code = gdt::segment_from_gdt(table[CODE_INDEX as usize], CODE_INDEX);
    let data = gdt::segment_from_gdt(table[DATA_INDEX as usize], DATA_INDEX);
    let tss = gdt::segment_from_gdt(table[TSS_INDEX as usize], TSS_INDEX);
    sregs.gdt.base = BOOT_GDT;
    sregs.gdt.limit = (std::mem::size_of_val(&table) - 1) as u16;
    sregs.idt.base = BOOT_IDT;
    sregs.idt.limit = 7;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;
    sregs.cr0 = CR0_BOOT;
    sregs.cr3 = PML4;
    sregs.cr4 |= CR4_PAE | CR4_SSE;
    sregs.efer |= EFER_LME_LMA;
}

/// x87/SSE defaults (as after FNINIT and with all SSE exceptions masked).
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}

/// MSRs that a fresh 64-bit CPU should see (SYSCALL/SYSENTER cleared,
/// TSC at zero, fast string operations enabled).
pub fn boot_msrs() -> Vec<kvm_msr_entry> {
    const IA32_SYSENTER_CS: u32 = 0x174;
    const IA32_SYSENTER_ESP: u32 = 0x175;
    const IA32_SYSENTER_EIP: u32 = 0x176;
    const STAR: u32 = 0xc000_0081;
    const LSTAR: u32 = 0xc000_0082;
    const CSTAR: u32 = 0xc000_0083;
    const SYSCALL_MASK: u32 = 0xc000_0084;
    const KERNEL_GS_BASE: u32 = 0xc000_0102;
    const IA32_TSC: u32 = 0x10;
    const IA32_MISC_ENABLE: u32 = 0x1a0;
    const MISC_ENABLE_FAST_STRING: u64 = 1;
    [
        (IA32_SYSENTER_CS, 0),
        (IA32_SYSENTER_ESP, 0),
        (IA32_SYSENTER_EIP, 0),
        (STAR, 0),
        (CSTAR, 0),
        (KERNEL_GS_BASE, 0),
        (SYSCALL_MASK, 0),
        (LSTAR, 0),
        (IA32_TSC, 0),
        (IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
    ]
    .into_iter()
    .map(|(index, data)| kvm_msr_entry {
        index,
        data,
        ..Default::default()
    })
    .collect()
}

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

fn lapic_reg(lapic: &kvm_lapic_state, offset: usize) -> u32 {
    let bytes: [u8; 4] = std::array::from_fn(|i| lapic.regs[offset + i] as u8);
    u32::from_le_bytes(bytes)
}

fn set_lapic_reg(lapic: &mut kvm_lapic_state, offset: usize, value: u32) {
    for (i, b) in value.to_le_bytes().into_iter().enumerate() {
        lapic.regs[offset + i] = b as _;
    }
}

/// Routes LINT0 as ExtINT (the PIC) and LINT1 as NMI, like a PC BIOS.
pub fn set_lint(lapic: &mut kvm_lapic_state) {
    let delivery = |reg: u32, mode: u32| (reg & !0x700) | (mode << 8);
    let lvt0 = lapic_reg(lapic, APIC_LVT0);
    set_lapic_reg(lapic, APIC_LVT0, delivery(lvt0, APIC_MODE_EXTINT));
    let lvt1 = lapic_reg(lapic, APIC_LVT1);
    set_lapic_reg(lapic, APIC_LVT1, delivery(lvt1, APIC_MODE_NMI));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_regs_enter_at_the_entry_with_rsi_at_the_zero_page() {
        let r = boot_regs(0x20_0000);
        assert_eq!(
            (r.rip, r.rsi, r.rsp, r.rflags),
            (0x20_0000, ZERO_PAGE, BOOT_STACK, 2)
        );
    }

    #[test]
    fn sregs_enable_paging_pae_and_long_mode() {
        let mut s = kvm_sregs::default();
        set_long_mode_sregs(&mut s);
        assert_eq!(s.cr0, 0x8005_0033);
        assert_eq!(s.cr3, PML4);
        assert_ne!(s.cr4 & CR4_PAE, 0);
        assert_eq!(s.cr4 & CR4_SSE, CR4_SSE);
        assert_eq!(s.efer & EFER_LME_LMA, EFER_LME_LMA);
        assert_eq!(s.cs.l, 1);
        assert_eq!(s.cs.selector, 8);
        assert_eq!(s.ss.selector, 0x10);
        assert_eq!(s.gdt.base, BOOT_GDT);
        assert_eq!(s.gdt.limit, 31);
    }

    #[test]
    fn lint0_becomes_extint_and_lint1_nmi_keeping_other_bits() {
        let mut l = kvm_lapic_state::default();
        set_lapic_reg(&mut l, APIC_LVT0, 0x0001_0000);
        set_lint(&mut l);
        assert_eq!(lapic_reg(&l, APIC_LVT0), 0x0001_0700);
        assert_eq!(lapic_reg(&l, APIC_LVT1), 0x0000_0400);
    }

    #[test]
    fn msr_list_enables_fast_strings() {
        let m = boot_msrs();
        assert!(m.iter().any(|e| e.index == 0x1a0 && e.data == 1));
        assert!(m.iter().all(|e| e.index != 0x10a));
    }
}
