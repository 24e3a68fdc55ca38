//! Loading a real Linux bzImage and initrd the way the launcher does, and
//! checking what the kernel will find in the zero page. Uses
//! `$VMM_TEST_BZIMAGE` / `$VMM_TEST_INITRD` (default: the Debian kernel the
//! project's guest scripts extract to /var/tmp/ferrovs-guest/); skipped when
//! absent.

use std::path::PathBuf;

use vm_memory::{Bytes, GuestAddress};
use vmm_launcher::layout::{CMDLINE, HIMEM_START, ZERO_PAGE};
use vmm_launcher::loader::{self, KernelKind};
use vmm_launcher::memory::GuestRam;

fn file(var: &str, default: &str) -> Option<PathBuf> {
    let p = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| default.into());
    p.is_file().then_some(p)
}

fn rd<T: vm_memory::ByteValued>(ram: &GuestRam, addr: u64) -> T {
    ram.mem.read_obj(GuestAddress(addr)).unwrap()
}

#[test]
fn bzimage_and_initrd_are_placed_and_described_in_the_zero_page() {
    let Some(kernel) = file("VMM_TEST_BZIMAGE", "/var/tmp/ferrovs-guest/vmlinuz") else {
        eprintln!("skipped: no bzImage (set VMM_TEST_BZIMAGE)");
        return;
    };
    let initrd = file("VMM_TEST_INITRD", "/var/tmp/ferrovs-guest/initramfs.gz");
    let ram = GuestRam::new("linux", 256 << 20, false).unwrap();
    assert_eq!(loader::sniff_kernel(&kernel).unwrap(), KernelKind::BzImage);
    let k = loader::load_kernel(&ram, &kernel).unwrap();
    assert_eq!(k.kind, KernelKind::BzImage);
    assert_eq!(k.entry, HIMEM_START + 0x200, "64-bit entry point");
    let hdr = k.header.expect("setup header");
    assert!(
        { hdr.version } >= 0x020c,
        "64-bit boot protocol needs 2.12+"
    );
    let placed = initrd
        .as_ref()
        .map(|p| loader::load_initrd(&ram, p, &k).unwrap());
    let cmdline = loader::build_cmdline("console=ttyS0 reboot=k panic=1").unwrap();
    loader::write_boot_structures(&ram, &cmdline, &k, placed, 2).unwrap();

    // setup header fields at their boot-protocol offsets in the zero page.
    assert_eq!(rd::<u16>(&ram, ZERO_PAGE + 0x1fe), 0xaa55);
    assert_eq!(&rd::<[u8; 4]>(&ram, ZERO_PAGE + 0x202), b"HdrS");
    assert_eq!(rd::<u16>(&ram, ZERO_PAGE + 0x206), { hdr.version });
    assert_eq!(rd::<u8>(&ram, ZERO_PAGE + 0x210), 0xff, "type_of_loader");
    assert_eq!(rd::<u8>(&ram, ZERO_PAGE + 0x211) & 1, 1, "LOADED_HIGH kept");
    assert_eq!(u64::from(rd::<u32>(&ram, ZERO_PAGE + 0x228)), CMDLINE);
    assert!(rd::<u8>(&ram, ZERO_PAGE + 0x1e8) >= 3, "e820 entries");
    if let Some(p) = placed {
        assert_eq!(u64::from(rd::<u32>(&ram, ZERO_PAGE + 0x218)), p.addr);
        assert_eq!(u64::from(rd::<u32>(&ram, ZERO_PAGE + 0x21c)), p.size);
        assert_eq!(p.addr % 4096, 0);
        assert!(p.addr >= k.end && p.addr + p.size <= 256 << 20);
        // The image really is in guest memory (gzip magic).
        assert_eq!(rd::<[u8; 2]>(&ram, p.addr), [0x1f, 0x8b]);
    }
    // The protected-mode kernel itself sits at 1 MiB.
    let mut first = [0u8; 16];
    ram.mem
        .read_slice(&mut first, GuestAddress(HIMEM_START))
        .unwrap();
    assert_ne!(first, [0u8; 16]);
}
