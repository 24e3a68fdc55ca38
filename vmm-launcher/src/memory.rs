//! Guest RAM: one memfd (optionally on hugetlbfs) mapped shared, so a
//! vhost-user backend can map the very same pages.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use vhost::VhostUserMemoryRegionInfo;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::error::{Result, VmmError};
use crate::layout::ram_ranges;

const HUGE_PAGE: u64 = 2 << 20;

/// The guest's RAM and the file behind it.
pub struct GuestRam {
    pub mem: GuestMemoryMmap,
    /// `(guest address, length)` of every RAM range.
    pub ranges: Vec<(u64, u64)>,
    pub size: u64,
    _file: Arc<File>,
}

fn memfd(name: &str, hugepages: bool) -> Result<File> {
    let cname =
        std::ffi::CString::new(name).map_err(|_| VmmError::GuestMemory("bad name".into()))?;
    let mut flags = libc::MFD_CLOEXEC;
    if hugepages {
        flags |= libc::MFD_HUGETLB;
    }
    // SAFETY: cname is a valid NUL-terminated string; memfd_create does not
    // retain the pointer.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), flags) };
    if fd < 0 {
        return Err(VmmError::GuestMemory(format!(
            "memfd_create{}: {}",
            if hugepages { " (hugetlb)" } else { "" },
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: fd was just returned by memfd_create and is owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(File::from(owned))
}

impl GuestRam {
    /// Allocates `size` bytes of shareable guest RAM; with `hugepages` the
    /// memfd lives on hugetlbfs and `size` is rounded up to 2 MiB.
    pub fn new(name: &str, size: u64, hugepages: bool) -> Result<GuestRam> {
        let size = if hugepages {
            size.div_ceil(HUGE_PAGE) * HUGE_PAGE
        } else {
            size
        };
        let file = Arc::new(memfd(&format!("ferrovs-vm-{name}"), hugepages)?);
        file.set_len(size).map_err(|e| {
            VmmError::GuestMemory(format!("cannot size guest memory to {size} bytes: {e}"))
        })?;
        if hugepages {
            // Reserve every huge page now, so a shortage fails here and not
            // with SIGBUS when the guest first touches the page.
            let len = libc::off_t::try_from(size)
                .map_err(|_| VmmError::GuestMemory(format!("{size} bytes is too large")))?;
            // SAFETY: fallocate on a file descriptor we own; no memory is
            // passed to the kernel.
            let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
            if rc != 0 {
                return Err(VmmError::GuestMemory(format!(
                    "cannot reserve {} MiB of 2 MiB hugepages: {} (reserve more in /proc/sys/vm/nr_hugepages)",
                    size >> 20,
                    std::io::Error::last_os_error()
                )));
            }
        }
        let ranges = ram_ranges(size);
        let mut offset = 0;
        let mut spec = Vec::new();
        for &(gpa, len) in &ranges {
            spec.push((
                GuestAddress(gpa),
                len as usize,
                Some(FileOffset::from_arc(file.clone(), offset)),
            ));
            offset += len;
        }
        let mem = GuestMemoryMmap::from_ranges_with_files(spec)
            .map_err(|e| VmmError::GuestMemory(format!("cannot map {size} bytes: {e}")))?;
        Ok(GuestRam {
            mem,
            ranges,
            size,
            _file: file,
        })
    }

    /// Gives the guest zeroed RAM again (a reboot): the memfd's pages are
    /// released, so every mapping, the switch's included, reads zeros.
    pub fn zero(&self) -> Result<()> {
        let len = libc::off_t::try_from(self.size)
            .map_err(|_| VmmError::GuestMemory(format!("{} bytes is too large", self.size)))?;
        // SAFETY: fallocate on a file descriptor we own; no memory is passed.
        let rc = unsafe {
            libc::fallocate(
                self._file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                0,
                len,
            )
        };
        if rc != 0 {
            return Err(VmmError::GuestMemory(format!(
                "cannot clear guest memory: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }

    /// One entry per region: `(slot, guest address, length, host address)`
    /// for KVM_SET_USER_MEMORY_REGION.
    pub fn kvm_regions(&self) -> Vec<(u32, u64, u64, u64)> {
        self.mem
            .iter()
            .enumerate()
            .map(|(slot, r)| (slot as u32, r.start_addr().0, r.len(), r.as_ptr() as u64))
            .collect()
    }

    /// The regions as a vhost-user backend must map them (fd + offset).
    pub fn vhost_regions(&self) -> Result<Vec<VhostUserMemoryRegionInfo>> {
        self.mem
            .iter()
            .map(|r| {
                VhostUserMemoryRegionInfo::from_guest_region(r)
                    .map_err(|e| VmmError::GuestMemory(format!("vhost-user region: {e}")))
            })
            .collect()
    }

    /// Host virtual address of guest physical `gpa` with `len` bytes behind it.
    pub fn host_address(&self, gpa: u64, len: u64) -> Option<u64> {
        let r = self.mem.find_region(GuestAddress(gpa))?;
        let off = gpa - r.start_addr().0;
        (off.checked_add(len)? <= r.len()).then(|| r.as_ptr() as u64 + off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    #[test]
    fn memory_is_file_backed_and_translates_guest_to_host_addresses() {
        let ram = GuestRam::new("unit", 32 << 20, false).unwrap();
        assert_eq!(ram.ranges, vec![(0, 32 << 20)]);
        ram.mem
            .write_obj(0xdead_beefu32, GuestAddress(0x1000))
            .unwrap();
        let hva = ram.host_address(0x1000, 4).unwrap();
        // SAFETY: hva points at 4 mapped bytes of guest RAM.
        let v = unsafe { std::ptr::read_volatile(hva as *const u32) };
        assert_eq!(v, 0xdead_beef);
        assert!(ram.host_address((32 << 20) - 2, 4).is_none());
        let regions = ram.vhost_regions().unwrap();
        assert_eq!(regions.len(), 1);
        assert_eq!(regions[0].memory_size, 32 << 20);
        assert!(regions[0].mmap_handle >= 0);
        assert_eq!(ram.kvm_regions()[0].2, 32 << 20);
        ram.zero().unwrap();
        // SAFETY: as above.
        let v = unsafe { std::ptr::read_volatile(hva as *const u32) };
        assert_eq!(v, 0, "zero() clears what the guest wrote");
    }
}
