//! Loading the kernel, initrd and boot structures into guest memory.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use linux_loader::cmdline::Cmdline;
use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::{BzImage, Elf, KernelLoader};
use vm_memory::{Bytes, GuestAddress};

use crate::error::{Result, VmmError};
use crate::layout::{BOOT_GDT, BOOT_IDT, CMDLINE, CMDLINE_MAX, EBDA, HIMEM_START, ZERO_PAGE};
use crate::memory::GuestRam;
use crate::x86::bootparams::{self, InitrdPlacement};
use crate::x86::{gdt, mptable, paging};

/// What kind of image was loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelKind {
    BzImage,
    Elf,
}

/// A kernel in guest memory.
pub struct LoadedKernel {
    pub kind: KernelKind,
    /// 64-bit entry point.
    pub entry: u64,
    /// End of the loaded image.
    pub end: u64,
    pub header: Option<setup_header>,
}

/// Checks that `path` looks like a kernel we can load (ELF or bzImage
/// magic) without loading it.
pub fn sniff_kernel(path: &Path) -> Result<KernelKind> {
    let open_err = |source| VmmError::KernelOpen {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(open_err)?;
    let not_kernel = || VmmError::NotAKernel {
        path: path.to_path_buf(),
    };
    if f.metadata().map_err(open_err)?.is_dir() {
        return Err(not_kernel());
    }
    let mut head = [0u8; 0x206];
    let mut got = 0;
    while got < head.len() {
        match f.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(open_err(e)),
        }
    }
    if got >= 5 && head[..4] == *b"\x7fELF" {
        // ELFCLASS64 only.
        return if head[4] == 2 {
            Ok(KernelKind::Elf)
        } else {
            Err(not_kernel())
        };
    }
    if got >= 0x206 && head[0x202..0x206] == *b"HdrS" {
        return Ok(KernelKind::BzImage);
    }
    Err(not_kernel())
}

/// Loads `path` as an x86-64 ELF (vmlinux or a freestanding test guest) or
/// as a bzImage.
pub fn load_kernel(ram: &GuestRam, path: &Path) -> Result<LoadedKernel> {
    let open_err = |source| VmmError::KernelOpen {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(open_err)?;
    if f.metadata().map_err(open_err)?.is_dir() {
        return Err(VmmError::NotAKernel {
            path: path.to_path_buf(),
        });
    }
    let mut magic = [0u8; 4];
    let is_elf = f.read_exact(&mut magic).is_ok() && magic == *b"\x7fELF";
    let load_err = |e: linux_loader::loader::Error| VmmError::KernelLoad {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if is_elf {
        let r = Elf::load(&ram.mem, None, &mut f, Some(GuestAddress(HIMEM_START))).map_err(
            |e| match e {
                linux_loader::loader::Error::Elf(
                    linux_loader::loader::elf::Error::InvalidElfMagicNumber
                    | linux_loader::loader::elf::Error::InvalidProgramHeaderSize
                    | linux_loader::loader::elf::Error::BigEndianElfOnLittle,
                ) => VmmError::NotAKernel {
                    path: path.to_path_buf(),
                },
                other => load_err(other),
            },
        )?;
        return Ok(LoadedKernel {
            kind: KernelKind::Elf,
            entry: r.kernel_load.0,
            end: r.kernel_end,
            header: None,
        });
    }
    let r = BzImage::load(&ram.mem, None, &mut f, Some(GuestAddress(HIMEM_START))).map_err(
        |e| match e {
            linux_loader::loader::Error::Bzimage(
                linux_loader::loader::bzimage::Error::InvalidBzImage,
            ) => VmmError::NotAKernel {
                path: path.to_path_buf(),
            },
            other => load_err(other),
        },
    )?;
    Ok(LoadedKernel {
        kind: KernelKind::BzImage,
        // The 64-bit entry is 0x200 past the protected-mode code start.
        entry: r.kernel_load.0 + 0x200,
        end: r.kernel_end,
        header: r.setup_header,
    })
}

/// Copies the initrd to the top of low RAM.
pub fn load_initrd(ram: &GuestRam, path: &Path, kernel: &LoadedKernel) -> Result<InitrdPlacement> {
    let open_err = |source| VmmError::InitrdOpen {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(open_err)?;
    let size = f.metadata().map_err(open_err)?.len();
    let addr_max = kernel.header.map(|h| h.initrd_addr_max).unwrap_or(0);
    let place = bootparams::place_initrd(size, &ram.ranges, addr_max, kernel.end).ok_or(
        VmmError::InitrdTooBig {
            path: path.to_path_buf(),
            size,
        },
    )?;
    ram.mem
        .read_exact_volatile_from(GuestAddress(place.addr), &mut f, size as usize)
        .map_err(|e| VmmError::GuestMemoryAccess(format!("initrd: {e}")))?;
    Ok(place)
}

/// Builds the command line, refusing strings the kernel would truncate.
pub fn build_cmdline(s: &str) -> Result<Cmdline> {
    let mut c = Cmdline::new(CMDLINE_MAX).map_err(|e| VmmError::Cmdline(e.to_string()))?;
    if !s.trim().is_empty() {
        c.insert_str(s.trim())
            .map_err(|e| VmmError::Cmdline(e.to_string()))?;
    }
    Ok(c)
}

fn write<T: vm_memory::ByteValued>(ram: &GuestRam, val: T, addr: u64, what: &str) -> Result<()> {
    ram.mem
        .write_obj(val, GuestAddress(addr))
        .map_err(|e| VmmError::GuestMemoryAccess(format!("{what}: {e}")))
}

/// Writes command line, zero page, GDT, IDT, page tables and MP table.
pub fn write_boot_structures(
    ram: &GuestRam,
    cmdline: &Cmdline,
    kernel: &LoadedKernel,
    initrd: Option<InitrdPlacement>,
    vcpus: u8,
) -> Result<()> {
    write_boot_structures_with_pci(ram, cmdline, kernel, initrd, vcpus, &[])
}

/// [`write_boot_structures`] for a VM with virtio-pci functions.
pub fn write_boot_structures_with_pci(
    ram: &GuestRam,
    cmdline: &Cmdline,
    kernel: &LoadedKernel,
    initrd: Option<InitrdPlacement>,
    vcpus: u8,
    pci: &[mptable::PciIrq],
) -> Result<()> {
    linux_loader::loader::load_cmdline(&ram.mem, GuestAddress(CMDLINE), cmdline)
        .map_err(|e| VmmError::Cmdline(e.to_string()))?;
    let cmdline_len = cmdline
        .as_cstring()
        .map_err(|e| VmmError::Cmdline(e.to_string()))?
        .as_bytes()
        .len();
    let zp = bootparams::build(kernel.header, cmdline_len, initrd, &ram.ranges);
    write(ram, zp, ZERO_PAGE, "zero page")?;
    for (i, entry) in gdt::boot_gdt().iter().enumerate() {
        write(ram, *entry, BOOT_GDT + i as u64 * 8, "GDT")?;
    }
    write(ram, 0u64, BOOT_IDT, "IDT")?;
    for table in paging::identity_tables() {
        ram.mem
            .write_slice(
                &table
                    .entries
                    .iter()
                    .flat_map(|e| e.to_le_bytes())
                    .collect::<Vec<u8>>(),
                GuestAddress(table.addr),
            )
            .map_err(|e| VmmError::GuestMemoryAccess(format!("page tables: {e}")))?;
    }
    let mp = mptable::build_with_pci(vcpus, EBDA, pci).ok_or(VmmError::TooMany {
        what: "vCPUs",
        max: mptable::max_cpus(),
    })?;
    ram.mem
        .write_slice(&mp, GuestAddress(EBDA))
        .map_err(|e| VmmError::GuestMemoryAccess(format!("MP table: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn boot_structures_land_at_their_addresses() {
        let ram = GuestRam::new("ldr", 32 << 20, false).unwrap();
        let k = LoadedKernel {
            kind: KernelKind::Elf,
            entry: 0x20_0000,
            end: 0x30_0000,
            header: None,
        };
        let c = build_cmdline("console=ttyS0 testguest.ip=10.9.0.10").unwrap();
        write_boot_structures(&ram, &c, &k, None, 2).unwrap();
        let mut buf = [0u8; 37];
        ram.mem.read_slice(&mut buf, GuestAddress(CMDLINE)).unwrap();
        assert_eq!(&buf[..36], b"console=ttyS0 testguest.ip=10.9.0.10");
        assert_eq!(buf[36], 0, "NUL terminated");
        let ptr: u32 = ram.mem.read_obj(GuestAddress(ZERO_PAGE + 0x228)).unwrap();
        assert_eq!(u64::from(ptr), CMDLINE);
        let code: u64 = ram.mem.read_obj(GuestAddress(BOOT_GDT + 8)).unwrap();
        assert_eq!(code, gdt::boot_gdt()[1]);
        let pml4e: u64 = ram.mem.read_obj(GuestAddress(crate::layout::PML4)).unwrap();
        assert_eq!(pml4e, crate::layout::PDPT | 3);
        let mut mp = [0u8; 4];
        ram.mem.read_slice(&mut mp, GuestAddress(EBDA)).unwrap();
        assert_eq!(&mp, b"_MP_");
    }

    #[test]
    fn a_text_file_is_not_a_kernel_and_a_missing_file_says_so() {
        let ram = GuestRam::new("ldr2", 32 << 20, false).unwrap();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&[b'x'; 8192]).unwrap();
        assert!(matches!(
            load_kernel(&ram, f.path()),
            Err(VmmError::NotAKernel { .. })
        ));
        assert!(matches!(
            load_kernel(&ram, Path::new("/nonexistent/vmm-kernel")),
            Err(VmmError::KernelOpen { .. })
        ));
    }

    #[test]
    fn sniffing_tells_elf64_and_bzimage_from_other_files() {
        let mut elf = tempfile::NamedTempFile::new().unwrap();
        elf.write_all(b"\x7fELF\x02\x01\x01").unwrap();
        assert_eq!(sniff_kernel(elf.path()).unwrap(), KernelKind::Elf);
        let mut elf32 = tempfile::NamedTempFile::new().unwrap();
        elf32.write_all(b"\x7fELF\x01\x01\x01").unwrap();
        assert!(matches!(
            sniff_kernel(elf32.path()),
            Err(VmmError::NotAKernel { .. })
        ));
        let mut bz = vec![0u8; 0x400];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        let mut bzf = tempfile::NamedTempFile::new().unwrap();
        bzf.write_all(&bz).unwrap();
        assert_eq!(sniff_kernel(bzf.path()).unwrap(), KernelKind::BzImage);
        let mut short = tempfile::NamedTempFile::new().unwrap();
        short.write_all(b"MZ").unwrap();
        assert!(matches!(
            sniff_kernel(short.path()),
            Err(VmmError::NotAKernel { .. })
        ));
        assert!(matches!(
            sniff_kernel(Path::new("/nonexistent/vmm-kernel")),
            Err(VmmError::KernelOpen { .. })
        ));
    }

    #[test]
    fn overlong_command_lines_are_refused() {
        assert!(build_cmdline(&"a".repeat(CMDLINE_MAX + 10)).is_err());
        assert!(build_cmdline("").is_ok());
    }
}
