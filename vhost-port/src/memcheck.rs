//! Checks on a memory table a frontend sent: every region must be backed by
//! its file over its whole length, or touching the tail would SIGBUS the
//! switch.

use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use crate::ring::GuestMem;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MemTableError {
    #[error("memory region at guest address {gpa:#x} has no file behind it")]
    NoFile { gpa: u64 },
    #[error(
        "memory region at guest address {gpa:#x} maps {len:#x} bytes at file offset {offset:#x} of a {file_len:#x}-byte file"
    )]
    BeyondFile {
        gpa: u64,
        len: u64,
        offset: u64,
        file_len: u64,
    },
    #[error("cannot stat the file of memory region at {gpa:#x}: {msg}")]
    Stat { gpa: u64, msg: String },
}

/// Checks, before mapping, that `file` holds `size` bytes at `offset`.
pub fn check_file_covers(
    file: &std::fs::File,
    gpa: u64,
    offset: u64,
    size: u64,
) -> Result<(), MemTableError> {
    let file_len = file
        .metadata()
        .map_err(|e| MemTableError::Stat {
            gpa,
            msg: e.to_string(),
        })?
        .len();
    if offset.checked_add(size).is_none_or(|end| end > file_len) {
        return Err(MemTableError::BeyondFile {
            gpa,
            len: size,
            offset,
            file_len,
        });
    }
    Ok(())
}

/// Checks every region of `mem` against the size of its file.
pub fn check_table(mem: &GuestMem) -> Result<(), MemTableError> {
    for r in mem.iter() {
        let gpa = r.start_addr().0;
        let len = r.len();
        let Some(fo) = r.file_offset() else {
            return Err(MemTableError::NoFile { gpa });
        };
        let file_len = fo
            .file()
            .metadata()
            .map_err(|e| MemTableError::Stat {
                gpa,
                msg: e.to_string(),
            })?
            .len();
        let offset = fo.start();
        if offset.checked_add(len).is_none_or(|end| end > file_len) {
            return Err(MemTableError::BeyondFile {
                gpa,
                len,
                offset,
                file_len,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{FileOffset, GuestAddress, GuestRegionMmap, MmapRegion};

    fn region(file_len: u64, map_len: usize) -> GuestMem {
        let f = tempfile::tempfile().unwrap();
        f.set_len(file_len).unwrap();
        let m = MmapRegion::from_file(FileOffset::new(f, 0), map_len).unwrap();
        let r = GuestRegionMmap::new(m, GuestAddress(0)).unwrap();
        GuestMem::from_regions(vec![r]).unwrap()
    }

    #[test]
    fn a_region_longer_than_its_file_is_refused() {
        assert!(matches!(
            check_table(&region(4096, 1 << 20)),
            Err(MemTableError::BeyondFile { .. })
        ));
        assert_eq!(check_table(&region(1 << 20, 1 << 20)), Ok(()));
    }

    #[test]
    fn anonymous_memory_is_refused() {
        let m = GuestMem::from_ranges(&[(GuestAddress(0), 4096)]).unwrap();
        assert_eq!(check_table(&m), Err(MemTableError::NoFile { gpa: 0 }));
    }
}
