//! The `VhostUserBackend` a port gives vhost-user-backend's request
//! handler: features, config space, queue count. It moves no data: the PMD
//! threads poll the vrings themselves.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost_user_backend::VhostUserBackend;
use vm_memory::GuestAddressSpace;
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier,
};

use crate::features::FeatureOptions;
use crate::session::{Gm, Session};

/// Largest ring a frontend may set up.
pub const MAX_QUEUE_SIZE: usize = 32768;
const VIRTIO_NET_S_LINK_UP: u16 = 1;

#[derive(Clone)]
pub struct NetBackend {
    session: Arc<Session>,
    features: FeatureOptions,
    n_pairs: usize,
    config: Arc<[u8]>,
}

impl NetBackend {
    pub fn new(
        session: Arc<Session>,
        features: FeatureOptions,
        n_pairs: usize,
        mac: [u8; 6],
        mtu: u16,
    ) -> NetBackend {
        NetBackend {
            session,
            features,
            n_pairs,
            config: config_space(mac, n_pairs as u16, mtu).into(),
        }
    }
}

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

impl VhostUserBackend for NetBackend {
    type Bitmap = ();
    type Vring = crate::vring::NetVring;

    fn num_queues(&self) -> usize {
        2 * self.n_pairs
    }

    fn max_queue_size(&self) -> usize {
        MAX_QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        self.features.virtio_features()
    }

    fn acked_features(&self, features: u64) {
        self.session.acked.store(features, Ordering::Release);
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        self.features.protocol_features()
    }

    fn set_event_idx(&self, _enabled: bool) {}

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        config_window(&self.config, offset, size)
    }

    fn update_memory(&self, mem: Gm) -> io::Result<()> {
        // The handler has already installed the new table; batches only
        // start on it once it is checked here.
        let m = mem.memory().into_inner();
        match crate::memcheck::check_table(&m) {
            Ok(()) => {
                self.session.set_validated(Some(m));
                Ok(())
            }
            Err(e) => {
                self.session.set_validated(None);
                mem.lock()
                    .map_err(|_| io::Error::other("memory lock poisoned"))?
                    .replace(crate::ring::GuestMem::default());
                Err(io::Error::other(e))
            }
        }
    }

    fn stop_vring(&self, queue_index: u32) -> io::Result<()> {
        self.session.wait_idle(queue_index as usize);
        Ok(())
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        // Lets the control thread stop the (idle) vring worker per session.
        new_event_consumer_and_notifier(EventFlag::NONBLOCK).ok()
    }

    fn handle_event(
        &self,
        _device_event: u16,
        _evset: EventSet,
        _vrings: &[Self::Vring],
        _thread_id: usize,
    ) -> io::Result<()> {
        // A kick: the rings are polled by the PMD threads, nothing to do.
        Ok(())
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
}
