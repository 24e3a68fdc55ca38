//! Frame primitives shared by every crate that touches packet bytes: the
//! Internet checksum, Ethernet addresses, the virtio-net header and (in
//! later modules) tunnel headers. Everything here is pure and I/O-free.

pub mod checksum;
pub mod mac;
pub mod vnet_hdr;

pub use mac::{MacAddr, MacParseError};
pub use vnet_hdr::Offload;
