//! Emulated devices and the I/O dispatch between them.

pub mod bus;
pub mod console;
pub mod i8042;
pub mod pci;
pub mod vhost_user_net;
pub mod virtio_blk;
pub mod virtio_mmio;
pub mod virtio_pci;
