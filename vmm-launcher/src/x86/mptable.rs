//! Intel MultiProcessor Specification 1.4 tables, so Linux finds every vCPU,
//! the IOAPIC and the ISA IRQ routing without ACPI.

use crate::layout::{APIC_ADDR, EBDA, IOAPIC_ADDR, LOW_MEM_END};

const SPEC_REV: u8 = 4;
const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
const CPU_ENABLED: u8 = 1;
const CPU_BOOTSTRAP: u8 = 2;
const CPU_SIGNATURE: u32 = 0x600;
const CPU_FEATURES: u32 = 0x201; // FPU | APIC
const IOAPIC_PINS: u8 = 24;
const ENTRY_PROCESSOR: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IOAPIC: u8 = 2;
const ENTRY_IO_INT: u8 = 3;
const ENTRY_LOCAL_INT: u8 = 4;
const INT_TYPE_INT: u8 = 0;
const INT_TYPE_NMI: u8 = 1;
const INT_TYPE_EXTINT: u8 = 3;
const FLOATING_LEN: usize = 16;
const HEADER_LEN: usize = 44;

const ISA_BUS: u8 = 0;
const PCI_BUS: u8 = 1;
/// Edge triggered, active high: what a KVM irqfd pulse delivers.
const IRQ_FLAGS_EDGE_HIGH: u8 = 0x05;

/// Most vCPUs whose entries fit between the EBDA and 640 KiB.
pub fn max_cpus() -> usize {
    let room = (LOW_MEM_END - EBDA) as usize - FLOATING_LEN - HEADER_LEN;
    let fixed = 3 * 8 + usize::from(IOAPIC_PINS) * 8 + 2 * 8;
    (room - fixed) / 20
}

/// A PCI function's INTA# routed to an IOAPIC pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciIrq {
    pub slot: u8,
    pub pin: u8,
}

/// Two's complement byte sum: the byte that makes the sum of `bytes` zero.
pub fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// Builds the floating pointer followed by the configuration table, to be
/// written at guest address `base`. Returns None for more vCPUs than fit.
pub fn build(num_cpus: u8, base: u64) -> Option<Vec<u8>> {
    build_with_pci(num_cpus, base, &[])
}

/// Like [`build`], plus a PCI bus whose functions' INTA# go to the given
/// IOAPIC pins (those pins are then not ISA interrupts).
pub fn build_with_pci(num_cpus: u8, base: u64, pci: &[PciIrq]) -> Option<Vec<u8>> {
    if num_cpus == 0 || usize::from(num_cpus) > max_cpus() {
        return None;
    }
    let ioapic_id = num_cpus + 1;
    let mut entries = Vec::new();
    for cpu in 0..num_cpus {
        entries.push(ENTRY_PROCESSOR);
        entries.push(cpu);
        entries.push(APIC_VERSION);
        entries.push(CPU_ENABLED | if cpu == 0 { CPU_BOOTSTRAP } else { 0 });
        entries.extend_from_slice(&CPU_SIGNATURE.to_le_bytes());
        entries.extend_from_slice(&CPU_FEATURES.to_le_bytes());
        entries.extend_from_slice(&[0u8; 8]);
    }
    entries.extend_from_slice(&[ENTRY_BUS, ISA_BUS]);
    entries.extend_from_slice(b"ISA   ");
    let mut bus_entries = 1u16;
    if !pci.is_empty() {
        entries.extend_from_slice(&[ENTRY_BUS, PCI_BUS]);
        entries.extend_from_slice(b"PCI   ");
        bus_entries += 1;
    }
    entries.extend_from_slice(&[ENTRY_IOAPIC, ioapic_id, IOAPIC_VERSION, 1]);
    entries.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    let mut io_entries = 0u16;
    for pin in 0..IOAPIC_PINS {
        if pci.iter().any(|p| p.pin == pin) {
            continue;
        }
        // type, irq type, flags (2 bytes: conforming), src bus, src irq, dst ioapic, dst pin
        entries.extend_from_slice(&[
            ENTRY_IO_INT,
            INT_TYPE_INT,
            0,
            0,
            ISA_BUS,
            pin,
            ioapic_id,
            pin,
        ]);
        io_entries += 1;
    }
    for p in pci {
        if p.pin >= IOAPIC_PINS {
            return None;
        }
        // Source IRQ of a PCI interrupt: device number << 2 | INTx (A = 0).
        entries.extend_from_slice(&[
            ENTRY_IO_INT,
            INT_TYPE_INT,
            IRQ_FLAGS_EDGE_HIGH,
            0,
            PCI_BUS,
            p.slot << 2,
            ioapic_id,
            p.pin,
        ]);
        io_entries += 1;
    }
    entries.extend_from_slice(&[ENTRY_LOCAL_INT, INT_TYPE_EXTINT, 0, 0, 0, 0, 0xff, 0]);
    entries.extend_from_slice(&[ENTRY_LOCAL_INT, INT_TYPE_NMI, 0, 0, 0, 0, 0xff, 1]);
    let entry_count = u16::from(num_cpus) + bus_entries + 1 + io_entries + 2;

    let table_addr = u32::try_from(base + FLOATING_LEN as u64).ok()?;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(b"PCMP");
    header.extend_from_slice(&((HEADER_LEN + entries.len()) as u16).to_le_bytes());
    header.push(SPEC_REV);
    header.push(0); // checksum, patched below
    header.extend_from_slice(b"FERROVS ");
    header.extend_from_slice(b"VMM-LAUNCHER");
    header.extend_from_slice(&0u32.to_le_bytes()); // OEM table pointer
    header.extend_from_slice(&0u16.to_le_bytes()); // OEM table size
    header.extend_from_slice(&entry_count.to_le_bytes());
    header.extend_from_slice(&APIC_ADDR.to_le_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]); // extended table length, checksum, reserved
    debug_assert_eq!(header.len(), HEADER_LEN);
    let mut table = header;
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);

    let mut floating = Vec::with_capacity(FLOATING_LEN);
    floating.extend_from_slice(b"_MP_");
    floating.extend_from_slice(&table_addr.to_le_bytes());
    floating.push(1); // length in 16-byte units
    floating.push(SPEC_REV);
    floating.push(0); // checksum
    floating.extend_from_slice(&[0u8; 5]); // features: config table present
    floating[10] = checksum(&floating);

    floating.extend_from_slice(&table);
    Some(floating)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    #[test]
    fn floating_pointer_and_config_table_checksums_are_zero() {
        for cpus in [1u8, 2, 8, max_cpus() as u8] {
            let t = build(cpus, EBDA).unwrap();
            assert_eq!(&t[..4], b"_MP_");
            assert_eq!(sum(&t[..16]), 0, "floating pointer, {cpus} cpus");
            let len = u16::from_le_bytes([t[20], t[21]]) as usize;
            assert_eq!(&t[16..20], b"PCMP");
            assert_eq!(len, t.len() - 16);
            assert_eq!(sum(&t[16..16 + len]), 0, "config table, {cpus} cpus");
            assert!(EBDA + t.len() as u64 <= LOW_MEM_END);
        }
    }

    #[test]
    fn floating_pointer_points_at_the_table_and_counts_entries() {
        let t = build(4, EBDA).unwrap();
        let ptr = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        assert_eq!(u64::from(ptr), EBDA + 16);
        let count = u16::from_le_bytes([t[16 + 34], t[16 + 35]]);
        assert_eq!(count, 4 + 1 + 1 + 24 + 2);
    }

    #[test]
    fn one_processor_entry_per_vcpu_only_the_first_is_bootstrap() {
        let t = build(3, EBDA).unwrap();
        let entries = &t[16 + HEADER_LEN..];
        for cpu in 0..3usize {
            let e = &entries[cpu * 20..cpu * 20 + 20];
            assert_eq!(e[0], ENTRY_PROCESSOR);
            assert_eq!(usize::from(e[1]), cpu, "APIC id");
            assert_eq!(e[3] & CPU_BOOTSTRAP != 0, cpu == 0);
        }
        assert_eq!(entries[60], ENTRY_BUS);
    }

    #[test]
    fn pci_functions_get_a_pci_bus_and_their_own_ioapic_pins() {
        let pci = [PciIrq { slot: 1, pin: 5 }, PciIrq { slot: 2, pin: 6 }];
        let t = build_with_pci(max_cpus() as u8, EBDA, &pci).unwrap();
        assert!(EBDA + t.len() as u64 <= LOW_MEM_END);
        let len = u16::from_le_bytes([t[20], t[21]]) as usize;
        assert_eq!(sum(&t[16..16 + len]), 0);
        let t = build_with_pci(1, EBDA, &pci).unwrap();
        let entries = &t[16 + HEADER_LEN + 20..];
        assert_eq!(&entries[..8], b"\x01\x00ISA   ");
        assert_eq!(&entries[8..16], b"\x01\x01PCI   ");
        let ints: Vec<&[u8]> = entries[24..]
            .chunks(8)
            .filter(|e| e[0] == ENTRY_IO_INT)
            .collect();
        assert_eq!(ints.len(), 24, "every pin routed exactly once");
        let isa5 = ints.iter().filter(|e| e[4] == ISA_BUS && e[7] == 5).count();
        assert_eq!(isa5, 0, "pin 5 belongs to PCI");
        let pci5: Vec<_> = ints.iter().filter(|e| e[4] == PCI_BUS).collect();
        assert_eq!(pci5.len(), 2);
        assert_eq!((pci5[0][5], pci5[0][7]), (1 << 2, 5));
        assert_eq!((pci5[1][5], pci5[1][7]), (2 << 2, 6));
        let count = u16::from_le_bytes([t[16 + 34], t[16 + 35]]);
        assert_eq!(count, 1 + 2 + 1 + 24 + 2);
    }

    #[test]
    fn zero_or_too_many_cpus_are_refused() {
        assert!(build(0, EBDA).is_none());
        assert!(build(max_cpus() as u8 + 1, EBDA).is_none());
    }
}
