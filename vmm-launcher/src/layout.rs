//! Guest physical address layout shared by the loader, the boot structures
//! and the devices.

/// GDT location.
pub const BOOT_GDT: u64 = 0x500;
/// IDT location (an empty IDT; the kernel installs its own).
pub const BOOT_IDT: u64 = 0x520;
/// Linux zero page (`struct boot_params`).
pub const ZERO_PAGE: u64 = 0x7000;
/// Initial stack pointer.
pub const BOOT_STACK: u64 = 0x8ff0;
/// Top-level page table (PML4).
pub const PML4: u64 = 0x9000;
/// Page directory pointer table.
pub const PDPT: u64 = 0xa000;
/// First of the page directories (one per identity-mapped GiB).
pub const PD: u64 = 0xb000;
/// Number of GiB identity mapped with 2 MiB pages (covers the MMIO hole).
pub const IDENTITY_MAPPED_GIB: u64 = 4;
/// Kernel command line.
pub const CMDLINE: u64 = 0x20000;
/// Largest command line we place (bytes, including the NUL).
pub const CMDLINE_MAX: usize = 4096;
/// Extended BIOS data area; the MP table lives here.
pub const EBDA: u64 = 0x9fc00;
/// End of conventional memory below 1 MiB.
pub const LOW_MEM_END: u64 = 0xa0000;
/// Start of high memory where the kernel is loaded.
pub const HIMEM_START: u64 = 0x10_0000;
/// Start of the 32-bit MMIO hole (RAM above it is moved above 4 GiB).
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
/// End of the 32-bit MMIO hole.
pub const MMIO_HOLE_END: u64 = 0x1_0000_0000;
/// Base of the virtio-mmio windows.
pub const VIRTIO_MMIO_BASE: u64 = 0xd000_0000;
/// Size of one virtio-mmio window.
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
/// First IRQ (GSI) given to virtio-mmio devices.
pub const VIRTIO_MMIO_FIRST_IRQ: u32 = 5;
/// Base of the virtio-pci BAR window (one 16 KiB BAR per NIC).
pub const PCI_BAR_BASE: u64 = 0xe000_0000;

/// IOAPIC base address.
pub const IOAPIC_ADDR: u32 = 0xfec0_0000;
/// Local APIC base address.
pub const APIC_ADDR: u32 = 0xfee0_0000;
/// COM1 I/O port base and IRQ.
pub const COM1_PORT: u16 = 0x3f8;
pub const COM1_IRQ: u32 = 4;
/// Smallest guest RAM we accept.
pub const MIN_MEMORY: u64 = 16 << 20;
/// Most vCPUs the MP table and APIC id scheme handle.
pub const MAX_VCPUS: usize = 254;
/// Most virtio-mmio devices (IRQs 5..=23 minus the serial).
pub const MAX_VIRTIO_DEVICES: usize = 16;

/// Guest RAM ranges `(guest address, length)` for a VM with `size` bytes of
/// RAM: one range below the MMIO hole and, if needed, the rest above 4 GiB.
pub fn ram_ranges(size: u64) -> Vec<(u64, u64)> {
    if size <= MMIO_HOLE_START {
        vec![(0, size)]
    } else {
        vec![
            (0, MMIO_HOLE_START),
            (MMIO_HOLE_END, size - MMIO_HOLE_START),
        ]
    }
}

/// Guest address of the `index`th virtio-mmio window and its IRQ.
pub fn virtio_mmio_slot(index: usize) -> (u64, u32) {
    (
        VIRTIO_MMIO_BASE + index as u64 * VIRTIO_MMIO_SIZE,
        VIRTIO_MMIO_FIRST_IRQ + index as u32,
    )
}

/// BAR0 address of the `index`th NIC when it is on virtio-pci.
pub fn virtio_pci_bar(index: usize) -> u64 {
    PCI_BAR_BASE + index as u64 * crate::devices::virtio_pci::BAR_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_memory_is_one_range_from_zero() {
        assert_eq!(ram_ranges(256 << 20), vec![(0, 256 << 20)]);
    }

    #[test]
    fn memory_beyond_the_hole_continues_at_4g() {
        let r = ram_ranges(4 << 30);
        assert_eq!(r, vec![(0, 3 << 30), (4 << 30, 1 << 30)]);
    }

    #[test]
    fn virtio_slots_are_4k_apart_and_do_not_use_the_serial_irq() {
        assert_eq!(virtio_mmio_slot(0), (0xd000_0000, 5));
        assert_eq!(virtio_mmio_slot(1), (0xd000_1000, 6));
        for i in 0..MAX_VIRTIO_DEVICES {
            assert_ne!(virtio_mmio_slot(i).1, COM1_IRQ);
            assert!(virtio_mmio_slot(i).1 < 24);
        }
    }
}
