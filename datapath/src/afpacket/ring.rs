//! The mmap'ed TPACKET ring shared with the kernel.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;

use super::sys::SOL_PACKET;

/// Size and shape of a ring.
#[derive(Clone, Copy, Debug)]
pub(super) struct Geometry {
    pub(super) block_size: usize,
    pub(super) blocks: usize,
    /// TPACKET_V2 slot size (V3: only the nominal size the kernel checks).
    pub(super) frame_size: usize,
}

/// An mmap'ed TPACKET_V2 or TPACKET_V3 ring of one socket.
pub(super) struct Ring {
    pub(super) fd: OwnedFd,
    pub(super) map: *mut u8,
    pub(super) map_len: usize,
    pub(super) geo: Geometry,
    pub(super) frames_per_block: usize,
    pub(super) n_frames: usize,
    /// Next slot (V2) or block (V3) to look at.
    pub(super) idx: usize,
}

// SAFETY: the mapping is owned by this value alone and only accessed
// through `&mut self` (or the kernel, through the ring protocol).
unsafe impl Send for Ring {}

impl Ring {
    /// Configures a ring on `fd` (option `which`) and maps it; `v3_tov`
    /// is the TPACKET_V3 block retire timeout in ms (None: a V2 ring).
    pub(super) fn new(
        fd: OwnedFd,
        which: libc::c_int,
        geo: Geometry,
        v3_tov: Option<u32>,
    ) -> io::Result<Ring> {
        let frames_per_block = geo.block_size / geo.frame_size;
        let n_frames = frames_per_block * geo.blocks;
        let req = [
            geo.block_size as u32,
            geo.blocks as u32,
            geo.frame_size as u32,
            n_frames as u32,
            v3_tov.unwrap_or(0),
            0,
            0,
        ];
        let req: &[u32] = if v3_tov.is_some() { &req } else { &req[..4] };
        // SAFETY: passes a live u32 array of the stated size: a
        // tpacket_req (V2) or tpacket_req3 (V3).
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                SOL_PACKET,
                which,
                req.as_ptr().cast(),
                std::mem::size_of_val(req) as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let map_len = geo.block_size * geo.blocks;
        // SAFETY: maps the ring the kernel just allocated for this socket;
        // the result is checked against MAP_FAILED.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        let map = if map == libc::MAP_FAILED {
            // MAP_LOCKED can fail under a low memlock limit: retry without.
            // SAFETY: as above.
            let m = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    map_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            };
            if m == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            m
        } else {
            map
        };
        Ok(Ring {
            fd,
            map: map.cast(),
            map_len,
            geo,
            frames_per_block,
            n_frames,
            idx: 0,
        })
    }

    /// Start of V2 slot `i`.
    #[inline]
    pub(super) fn slot(&self, i: usize) -> *mut u8 {
        let off = (i / self.frames_per_block) * self.geo.block_size
            + (i % self.frames_per_block) * self.geo.frame_size;
        debug_assert!(off + self.geo.frame_size <= self.map_len);
        // SAFETY: `off + frame_size <= map_len` because i < n_frames.
        unsafe { self.map.add(off) }
    }

    /// The status word of V2 slot `i`, shared with the kernel.
    #[inline]
    pub(super) fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: every slot starts with a 16-byte aligned tpacket2_hdr whose
        // first field is the u32 status the kernel and we hand over with
        // acquire/release ordering; the reference lives no longer than self.
        unsafe { &*(self.slot(i) as *const AtomicU32) }
    }

    /// V2 slot `i` as bytes.
    #[inline]
    pub(super) fn bytes(&mut self, i: usize) -> &mut [u8] {
        // SAFETY: slot `i` is frame_size bytes inside the mapping, owned by
        // user space while its status says so (checked by callers).
        unsafe { std::slice::from_raw_parts_mut(self.slot(i), self.geo.frame_size) }
    }

    /// Start of V3 block `b`.
    #[inline]
    pub(super) fn block(&self, b: usize) -> *mut u8 {
        debug_assert!(b < self.geo.blocks);
        // SAFETY: `b < blocks`, so the block lies inside the mapping.
        unsafe { self.map.add(b * self.geo.block_size) }
    }

    /// The status word of V3 block `b` (`tpacket_block_desc.hdr.bh1.block_status`).
    #[inline]
    pub(super) fn block_status(&self, b: usize) -> &AtomicU32 {
        // SAFETY: a block starts with a page-aligned tpacket_block_desc whose
        // block_status u32 sits at offset 8; shared with the kernel through
        // acquire/release ordering.
        unsafe { &*(self.block(b).add(8) as *const AtomicU32) }
    }

    /// V3 block `b` as bytes.
    #[inline]
    pub(super) fn block_bytes(&self, b: usize) -> &[u8] {
        // SAFETY: block `b` is block_size bytes inside the mapping; callers
        // read it only while its status hands it to user space.
        unsafe { std::slice::from_raw_parts(self.block(b), self.geo.block_size) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `Ring::new`.
        unsafe {
            libc::munmap(self.map.cast(), self.map_len);
        }
    }
}
