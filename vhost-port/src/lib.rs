//! vhost-user ports: the switch as the vhost-user backend of a guest's
//! virtio-net device.
//!
//! The vhost-user protocol (socket, memory table, vring setup) is handled on
//! a control thread per port ([`control`], [`handler`]) with the vhost
//! crate's request dispatcher and vhost-user-backend's vrings; no worker
//! threads and no eventfd wake-ups: the PMD thread that owns a receive
//! queue polls the guest's transmit virtqueue itself
//! ([`guest_tx`]) and a transmit queue writes straight into the guest's
//! receive virtqueue ([`guest_rx`]), taking the vring lock twice per batch
//! ([`session`]) and never per packet.

pub mod control;
pub mod features;
pub mod guest_rx;
pub mod guest_tx;
pub mod handler;
pub mod memcheck;
pub mod port;
pub mod ring;
pub mod ring_packed;
pub mod session;
pub mod sockfile;

pub use features::FeatureOptions;
pub use port::{VhostPortError, VhostRxQueue, VhostTxQueue, VhostUserOptions, VhostUserPort};
pub use sockfile::SocketPerms;

#[cfg(test)]
mod fastmem_tests;
#[cfg(test)]
mod mock_packed_tests;
#[cfg(test)]
mod mock_tests;
