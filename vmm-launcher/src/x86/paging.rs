//! Identity-mapped page tables with 2 MiB pages for the first GiBs.

use crate::layout::{IDENTITY_MAPPED_GIB, PD, PDPT, PML4};

const PRESENT_RW: u64 = 0x3;
const PAGE_SIZE_2M: u64 = 0x80;

/// A page table page and where it goes in guest memory.
pub struct TablePage {
    pub addr: u64,
    pub entries: Box<[u64; 512]>,
}

/// Builds PML4, PDPT and one PD per GiB so that virtual == physical for
/// the first `IDENTITY_MAPPED_GIB` GiB (RAM and the 32-bit MMIO hole).
pub fn identity_tables() -> Vec<TablePage> {
    let mut pml4 = Box::new([0u64; 512]);
    pml4[0] = PDPT | PRESENT_RW;
    let mut pdpt = Box::new([0u64; 512]);
    let mut out = Vec::new();
    for gib in 0..IDENTITY_MAPPED_GIB {
        let pd_addr = PD + gib * 0x1000;
        pdpt[gib as usize] = pd_addr | PRESENT_RW;
        let mut pd = Box::new([0u64; 512]);
        for (i, e) in pd.iter_mut().enumerate() {
            *e = (gib << 30) | ((i as u64) << 21) | PRESENT_RW | PAGE_SIZE_2M;
        }
        out.push(TablePage {
            addr: pd_addr,
            entries: pd,
        });
    }
    out.insert(
        0,
        TablePage {
            addr: PDPT,
            entries: pdpt,
        },
    );
    out.insert(
        0,
        TablePage {
            addr: PML4,
            entries: pml4,
        },
    );
    out
}

/// Walks the tables the way the MMU does; returns the physical address for
/// `virt`, or None when unmapped. Used by tests and debugging.
pub fn translate(tables: &[TablePage], virt: u64) -> Option<u64> {
    let page = |addr: u64| tables.iter().find(|t| t.addr == addr);
    let pml4e = page(PML4)?.entries[((virt >> 39) & 0x1ff) as usize];
    if pml4e & 1 == 0 {
        return None;
    }
    let pdpte = page(pml4e & !0xfff)?.entries[((virt >> 30) & 0x1ff) as usize];
    if pdpte & 1 == 0 {
        return None;
    }
    let pde = page(pdpte & !0xfff)?.entries[((virt >> 21) & 0x1ff) as usize];
    if pde & 1 == 0 || pde & PAGE_SIZE_2M == 0 {
        return None;
    }
    Some((pde & !0x1f_ffff & 0x000f_ffff_ffff_ffff) | (virt & 0x1f_ffff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_live_at_the_documented_addresses_without_overlap() {
        let t = identity_tables();
        assert_eq!(t[0].addr, PML4);
        assert_eq!(t[1].addr, PDPT);
        assert_eq!(t.len(), 2 + IDENTITY_MAPPED_GIB as usize);
        let mut addrs: Vec<u64> = t.iter().map(|p| p.addr).collect();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), t.len());
    }

    #[test]
    fn low_memory_kernel_and_mmio_hole_are_identity_mapped() {
        let t = identity_tables();
        for addr in [
            0u64,
            0x7000,
            0x10_0000,
            0x20_0123,
            0x3fff_ffff,
            0xd000_0050,
            0xfee0_0000,
        ] {
            assert_eq!(translate(&t, addr), Some(addr), "{addr:#x}");
        }
    }

    #[test]
    fn addresses_beyond_the_mapped_range_are_unmapped() {
        let t = identity_tables();
        assert_eq!(translate(&t, IDENTITY_MAPPED_GIB << 30), None);
    }
}
