//! The vhost-user request handler of a port (control plane): features,
//! memory table, vring setup, config space. It runs on the port's control
//! thread under the vhost crate's `BackendReqHandler`; the data path reads
//! what it set up through [`Session`].
//!
//! vhost-user-backend's own handler is not used: it refuses
//! SET_VRING_ENABLE before SET_FEATURES, which QEMU's virtio-net sends, and
//! it installs a memory table before the backend can check it.

use std::fs::File;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use vhost::VhostUserMemoryRegionBase;
use vhost::vhost_user::message::{
    VhostTransferStateDirection, VhostTransferStatePhase, VhostUserConfigFlags, VhostUserInflight,
    VhostUserLog, VhostUserMemoryRegion, VhostUserProtocolFeatures, VhostUserShMemConfig,
    VhostUserSharedMsg, VhostUserSingleMemoryRegion, VhostUserVringAddrFlags, VhostUserVringState,
};
use vhost::vhost_user::{
    Backend, Error as VuError, GpuBackend, Result as VuResult, VhostUserBackendReqHandlerMut,
};
use vhost_user_backend::VringT;
use virtio_queue::QueueT;
use vm_memory::{GuestAddress, GuestAddressSpace, GuestRegionMmap};

use crate::features::{
    F_RING_PACKED, FeatureOptions, RING_F_EVENT_IDX, VHOST_USER_F_PROTOCOL_FEATURES,
};
use crate::memcheck;
use crate::ring::GuestMem;
use crate::session::{Gm, Session, Vring};

/// Largest ring a frontend may set up.
pub const MAX_QUEUE_SIZE: u32 = 32768;
const VIRTIO_NET_S_LINK_UP: u16 = 1;

/// `struct virtio_net_config`: mac, status, max_virtqueue_pairs, mtu.
pub fn config_space(mac: [u8; 6], pairs: u16, mtu: u16) -> Vec<u8> {
    let mut c = Vec::with_capacity(12);
    c.extend_from_slice(&mac);
    c.extend_from_slice(&VIRTIO_NET_S_LINK_UP.to_le_bytes());
    c.extend_from_slice(&pairs.to_le_bytes());
    c.extend_from_slice(&mtu.to_le_bytes());
    c
}

/// The bytes `[offset, offset+size)` of `config`, clipped to it.
pub fn config_window(config: &[u8], offset: u32, size: u32) -> Vec<u8> {
    let start = (offset as usize).min(config.len());
    let end = start.saturating_add(size as usize).min(config.len());
    config.get(start..end).unwrap_or_default().to_vec()
}

struct Mapping {
    uva: u64,
    size: u64,
    gpa: u64,
}

fn unsupported(what: &'static str) -> VuError {
    VuError::InvalidOperation(what)
}

fn handler_err(msg: String) -> VuError {
    VuError::ReqHandlerError(io::Error::other(msg))
}

/// Per-connection request handler.
pub struct NetHandler {
    session: Arc<Session>,
    vrings: Vec<Vring>,
    mem: Gm,
    features: FeatureOptions,
    n_pairs: usize,
    config: Vec<u8>,
    acked_features: u64,
    acked_protocol: u64,
    mappings: Vec<Mapping>,
    backend_req: Option<Backend>,
    early_enable: bool,
}

impl NetHandler {
    /// A handler and the session it sets up.
    pub fn new(
        features: FeatureOptions,
        n_pairs: usize,
        mac: [u8; 6],
        mtu: u16,
    ) -> Result<(NetHandler, Arc<Session>), String> {
        let mem: Gm = vm_memory::GuestMemoryAtomic::new(GuestMem::default());
        let mut vrings = Vec::with_capacity(2 * n_pairs);
        for _ in 0..2 * n_pairs {
            vrings.push(
                Vring::new(mem.clone(), MAX_QUEUE_SIZE as u16)
                    .map_err(|e| format!("vring setup failed: {e}"))?,
            );
        }
        let session = Arc::new(Session::new(mem.clone(), vrings.clone()));
        Ok((
            NetHandler {
                session: session.clone(),
                vrings,
                mem,
                features,
                n_pairs,
                config: config_space(mac, n_pairs as u16, mtu),
                acked_features: 0,
                acked_protocol: 0,
                mappings: Vec::new(),
                backend_req: None,
                early_enable: false,
            },
            session,
        ))
    }

    /// The dispatcher refused a SET_VRING_ENABLE sent before SET_FEATURES
    /// (QEMU's virtio-net does that at device reset, for the first queue
    /// pair, and does not repeat it when the device starts).
    pub fn note_early_enable(&mut self) {
        self.early_enable = true;
    }

    /// Whether the driver lays its queues out as packed rings.
    fn packed(&self) -> bool {
        self.acked_features & F_RING_PACKED != 0
    }

    fn vring(&self, index: u32) -> VuResult<&Vring> {
        self.vrings.get(index as usize).ok_or(VuError::InvalidParam)
    }

    fn uva_to_gpa(&self, uva: u64) -> VuResult<u64> {
        self.mappings
            .iter()
            .find(|m| uva >= m.uva && uva - m.uva < m.size)
            .map(|m| uva - m.uva + m.gpa)
            .ok_or_else(|| handler_err(format!("ring address {uva:#x} is not in the memory table")))
    }

    fn install_memory(&mut self, mem: GuestMem, mappings: Vec<Mapping>) -> VuResult<()> {
        let _p = self.session.pause();
        self.mem
            .lock()
            .map_err(|_| handler_err("memory lock poisoned".into()))?
            .replace(mem);
        // Checked before it was installed: batches may use it.
        self.session
            .set_validated(Some(self.mem.memory().into_inner()));
        self.mappings = mappings;
        Ok(())
    }
}

impl VhostUserBackendReqHandlerMut for NetHandler {
    fn set_owner(&mut self) -> VuResult<()> {
        Ok(())
    }

    fn reset_owner(&mut self) -> VuResult<()> {
        self.acked_features = 0;
        self.acked_protocol = 0;
        Ok(())
    }

    fn reset_device(&mut self) -> VuResult<()> {
        let _p = self.session.pause();
        for v in &self.vrings {
            v.set_enabled(false);
        }
        self.acked_features = 0;
        Ok(())
    }

    fn get_features(&mut self) -> VuResult<u64> {
        Ok(self.features.virtio_features())
    }

    fn set_features(&mut self, features: u64) -> VuResult<()> {
        if features & !self.features.virtio_features() != 0 {
            return Err(VuError::InvalidParam);
        }
        tracing::debug!("SET_FEATURES {features:#x}");
        let _p = self.session.pause();
        self.acked_features = features;
        self.session.acked.store(features, Ordering::Release);
        let event_idx = features & RING_F_EVENT_IDX != 0;
        for v in &self.vrings {
            v.set_queue_event_idx(event_idx);
            if features & F_RING_PACKED != 0 && !v.get_ref().get_queue().ready() {
                // A packed ring starts at slot 0 with both wrap counters
                // set, unless SET_VRING_BASE says otherwise.
                v.set_queue_next_avail(crate::ring_packed::WRAP);
                v.set_queue_next_used(crate::ring_packed::WRAP);
            }
            // Without PROTOCOL_FEATURES rings are enabled from the start.
            if features & VHOST_USER_F_PROTOCOL_FEATURES == 0 {
                v.set_enabled(true);
            }
        }
        if features & VHOST_USER_F_PROTOCOL_FEATURES != 0 && self.early_enable {
            // Apply what QEMU's refused reset-time enable asked for: the
            // first pair on; later changes arrive after SET_FEATURES.
            for v in self.vrings.iter().take(2) {
                v.set_enabled(true);
            }
        }
        Ok(())
    }

    fn set_mem_table(
        &mut self,
        ctx: &[VhostUserMemoryRegion],
        files: Vec<File>,
        postcopy_listening: Option<bool>,
    ) -> VuResult<Option<Vec<VhostUserMemoryRegionBase>>> {
        tracing::debug!("SET_MEM_TABLE {} regions", ctx.len());
        if postcopy_listening.is_some() {
            return Err(unsupported("postcopy is not supported"));
        }
        if ctx.len() != files.len() {
            return Err(VuError::InvalidParam);
        }
        let mut regions = Vec::with_capacity(ctx.len());
        let mut mappings = Vec::with_capacity(ctx.len());
        for (r, file) in ctx.iter().zip(files) {
            let (gpa, size, uva, offset) =
                (r.guest_phys_addr, r.memory_size, r.user_addr, r.mmap_offset);
            memcheck::check_file_covers(&file, gpa, offset, size)
                .map_err(|e| handler_err(e.to_string()))?;
            let region = GuestRegionMmap::new(r.mmap_region::<()>(file)?, GuestAddress(gpa))
                .ok_or_else(|| handler_err(format!("memory region at {gpa:#x} overflows")))?;
            regions.push(region);
            mappings.push(Mapping { uva, size, gpa });
        }
        let mem = GuestMem::from_regions(regions)
            .map_err(|e| handler_err(format!("malformed memory table: {e}")))?;
        self.install_memory(mem, mappings)?;
        Ok(None)
    }

    fn set_vring_num(&mut self, index: u32, num: u32) -> VuResult<()> {
        let v = self.vring(index)?;
        if num == 0 || num > MAX_QUEUE_SIZE || !num.is_power_of_two() {
            return Err(VuError::InvalidParam);
        }
        let _p = self.session.pause();
        v.set_queue_size(num as u16);
        Ok(())
    }

    fn set_vring_addr(
        &mut self,
        index: u32,
        _flags: VhostUserVringAddrFlags,
        descriptor: u64,
        used: u64,
        available: u64,
        _log: u64,
    ) -> VuResult<()> {
        tracing::debug!(
            "SET_VRING_ADDR {index} desc={descriptor:#x} used={used:#x} avail={available:#x}"
        );
        let desc = self.uva_to_gpa(descriptor)?;
        let avail = self.uva_to_gpa(available)?;
        let used = self.uva_to_gpa(used)?;
        let v = self.vring(index)?;
        let _p = self.session.pause();
        v.set_queue_info(desc, avail, used)
            .map_err(|e| handler_err(format!("bad ring addresses: {e}")))?;
        if self.packed() {
            // A packed ring has no used index: the device's position comes
            // with SET_VRING_BASE.
            return Ok(());
        }
        // After a driver restart the used index starts where the ring says.
        let idx = v
            .queue_used_idx()
            .map_err(|e| handler_err(format!("used ring unreadable: {e}")))?;
        v.set_queue_next_used(idx);
        Ok(())
    }

    fn set_vring_base(&mut self, index: u32, base: u32) -> VuResult<()> {
        let v = self.vring(index)?;
        let _p = self.session.pause();
        v.set_queue_next_avail(base as u16);
        if self.packed() {
            // The slot and wrap counter (bit 15) of the next descriptor to
            // take; every one before it was used, so the device's used
            // position is the same.
            v.set_queue_next_used(base as u16);
        }
        Ok(())
    }

    fn get_vring_base(&mut self, index: u32) -> VuResult<VhostUserVringState> {
        tracing::debug!("GET_VRING_BASE {index}");
        let v = self.vring(index)?;
        // Stop batches (those in flight finish and their indices are
        // folded into the queue), then stop the ring.
        let _p = self.session.pause();
        v.set_queue_ready(false);
        let next = v.queue_next_avail();
        v.set_kick(None);
        v.set_call(None);
        Ok(VhostUserVringState::new(index, u32::from(next)))
    }

    fn set_vring_kick(&mut self, index: u8, fd: Option<File>) -> VuResult<()> {
        tracing::debug!("SET_VRING_KICK {index} fd={}", fd.is_some());
        let v = self.vring(u32::from(index))?;
        let _p = self.session.pause();
        v.set_kick(fd);
        // A frontend that outlived its backend (DPDK's virtio_user in server
        // mode, after a vswitchd restart) sends SET_VRING_BASE 0 although its
        // ring is far along: every descriptor it made available before was
        // used, so the next available one is where the used index stands.
        // (DPDK's vhost library reconciles the two the same way.) Checked
        // here, when the ring starts, so the order of SET_VRING_BASE and
        // SET_VRING_ADDR does not matter.
        if !self.packed()
            && let Ok(used) = v.queue_used_idx()
        {
            let next_avail = v.queue_next_avail();
            if next_avail != used {
                tracing::warn!(
                    "vring {index}: base {next_avail} but the used ring is at {used}; resuming from {used}"
                );
                v.set_queue_next_avail(used);
                v.set_queue_next_used(used);
            }
        }
        // The ring starts when its kick fd arrives.
        v.set_queue_ready(true);
        Ok(())
    }

    fn set_vring_call(&mut self, index: u8, fd: Option<File>) -> VuResult<()> {
        let v = self.vring(u32::from(index))?;
        let _p = self.session.pause();
        v.set_call(fd);
        Ok(())
    }

    fn set_vring_err(&mut self, index: u8, fd: Option<File>) -> VuResult<()> {
        self.vring(u32::from(index))?.set_err(fd);
        Ok(())
    }

    fn get_protocol_features(&mut self) -> VuResult<VhostUserProtocolFeatures> {
        Ok(self.features.protocol_features())
    }

    fn set_protocol_features(&mut self, features: u64) -> VuResult<()> {
        self.acked_protocol = features;
        Ok(())
    }

    fn get_queue_num(&mut self) -> VuResult<u64> {
        Ok(self.n_pairs as u64)
    }

    fn set_vring_enable(&mut self, index: u32, enable: bool) -> VuResult<()> {
        tracing::debug!("SET_VRING_ENABLE {index} {enable}");
        // Accepted before SET_FEATURES too: QEMU's virtio-net sends it at
        // device reset, once GET_FEATURES showed PROTOCOL_FEATURES.
        let v = self.vring(index)?;
        let _p = self.session.pause();
        v.set_enabled(enable);
        Ok(())
    }

    fn get_config(
        &mut self,
        offset: u32,
        size: u32,
        _flags: VhostUserConfigFlags,
    ) -> VuResult<Vec<u8>> {
        Ok(config_window(&self.config, offset, size))
    }

    fn set_config(
        &mut self,
        _offset: u32,
        _buf: &[u8],
        _flags: VhostUserConfigFlags,
    ) -> VuResult<()> {
        // The config space is read-only for virtio-net.
        Ok(())
    }

    fn set_backend_req_fd(&mut self, backend: Backend) {
        if self.acked_protocol & VhostUserProtocolFeatures::REPLY_ACK.bits() != 0 {
            backend.set_reply_ack_flag(true);
        }
        self.backend_req = Some(backend);
    }

    fn set_gpu_socket(&mut self, _gpu_backend: GpuBackend) -> VuResult<()> {
        Err(unsupported("not a GPU device"))
    }

    fn get_shared_object(&mut self, _uuid: VhostUserSharedMsg) -> VuResult<File> {
        Err(unsupported("shared objects are not supported"))
    }

    fn get_inflight_fd(
        &mut self,
        _inflight: &VhostUserInflight,
    ) -> VuResult<(VhostUserInflight, File)> {
        Err(unsupported("inflight tracking is not supported"))
    }

    fn set_inflight_fd(&mut self, _inflight: &VhostUserInflight, _file: File) -> VuResult<()> {
        Err(unsupported("inflight tracking is not supported"))
    }

    fn get_max_mem_slots(&mut self) -> VuResult<u64> {
        Err(unsupported("memory slots are not supported"))
    }

    fn add_mem_region(
        &mut self,
        _region: &VhostUserSingleMemoryRegion,
        _fd: File,
        _postcopy_listening: Option<bool>,
    ) -> VuResult<Option<VhostUserMemoryRegionBase>> {
        Err(unsupported("memory slots are not supported"))
    }

    fn remove_mem_region(&mut self, _region: &VhostUserSingleMemoryRegion) -> VuResult<()> {
        Err(unsupported("memory slots are not supported"))
    }

    fn set_device_state_fd(
        &mut self,
        _direction: VhostTransferStateDirection,
        _phase: VhostTransferStatePhase,
        _fd: File,
    ) -> VuResult<Option<File>> {
        Err(unsupported("device state transfer is not supported"))
    }

    fn check_device_state(&mut self) -> VuResult<()> {
        Err(unsupported("device state transfer is not supported"))
    }

    fn get_shmem_config(&mut self) -> VuResult<VhostUserShMemConfig> {
        Err(unsupported("shared memory regions are not supported"))
    }

    fn set_log_base(&mut self, _log: &VhostUserLog, _file: File) -> VuResult<()> {
        Err(unsupported("dirty logging is not supported"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_space_carries_mac_link_up_and_pairs() {
        let c = config_space([2, 0, 0, 0, 0, 1], 4, 1500);
        assert_eq!(&c[..6], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(u16::from_le_bytes([c[6], c[7]]), 1);
        assert_eq!(u16::from_le_bytes([c[8], c[9]]), 4);
        assert_eq!(u16::from_le_bytes([c[10], c[11]]), 1500);
    }

    #[test]
    fn config_window_clips_out_of_range_requests() {
        let c = config_space([1; 6], 1, 1500);
        assert_eq!(config_window(&c, 6, 2), vec![1, 0]);
        assert!(config_window(&c, 100, 4).is_empty());
        assert_eq!(config_window(&c, 10, u32::MAX).len(), 2);
    }

    #[test]
    fn vring_enable_is_accepted_before_set_features() {
        let (mut h, s) = NetHandler::new(FeatureOptions::default(), 1, [2; 6], 1500).unwrap();
        h.set_vring_enable(0, true).unwrap();
        assert!(h.set_vring_enable(2, true).is_err());
        assert!(
            !s.vring_running(0),
            "not running before its kick fd arrives"
        );
    }

    #[test]
    fn a_refused_early_enable_turns_on_the_first_pair_when_features_arrive() {
        let (mut h, _) = NetHandler::new(FeatureOptions::default(), 2, [2; 6], 1500).unwrap();
        h.note_early_enable();
        h.set_features(crate::features::F_VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES)
            .unwrap();
        let enabled: Vec<bool> = h.vrings.iter().map(|v| v.get_ref().is_enabled()).collect();
        assert_eq!(enabled, vec![true, true, false, false]);
    }

    #[test]
    fn with_protocol_features_rings_wait_for_set_vring_enable() {
        let (mut h, _) = NetHandler::new(FeatureOptions::default(), 1, [2; 6], 1500).unwrap();
        h.set_features(crate::features::F_VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES)
            .unwrap();
        assert!(h.vrings.iter().all(|v| !v.get_ref().is_enabled()));
        h.set_vring_enable(1, true).unwrap();
        assert!(h.vrings[1].get_ref().is_enabled());
    }

    #[test]
    fn a_packed_ring_takes_both_positions_and_its_wrap_counter_from_set_vring_base() {
        use crate::ring_packed::WRAP;
        let (mut h, s) = NetHandler::new(FeatureOptions::default(), 1, [2; 6], 1500).unwrap();
        h.set_features(crate::features::F_VERSION_1 | F_RING_PACKED)
            .unwrap();
        assert_eq!(
            s.queue_indices(0),
            (WRAP, WRAP),
            "slot 0, wrap counters set"
        );
        h.set_vring_base(0, 5).unwrap();
        assert_eq!(s.queue_indices(0), (5, 5));
        h.set_vring_base(0, u32::from(WRAP | 7)).unwrap();
        assert_eq!(s.queue_indices(0), (WRAP | 7, WRAP | 7));
        let num = { h.get_vring_base(0).unwrap().num };
        assert_eq!(num, u32::from(WRAP | 7));
    }

    #[test]
    fn unknown_feature_bits_are_refused() {
        let (mut h, _) = NetHandler::new(FeatureOptions::default(), 1, [2; 6], 1500).unwrap();
        assert!(h.set_features(1 << 63).is_err());
        assert!(h.set_features(crate::features::F_VERSION_1).is_ok());
    }
}
