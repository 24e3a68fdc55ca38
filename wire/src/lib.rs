//! Frame primitives shared by every crate that touches packet bytes: the
//! Internet checksum, Ethernet addresses, the virtio-net header and (in
//! later modules) tunnel headers. Everything here is pure and I/O-free.

pub mod checksum;
pub mod mac;
pub mod vnet_hdr;

pub use mac::{MacAddr, MacParseError};
pub use vnet_hdr::Offload;

pub mod error;
pub mod geneve;
pub mod gre;
pub mod ipv4;
pub mod ipv6;
pub mod tunnel;
pub mod udp;
pub mod vxlan;

pub use error::{Error, Layer};
