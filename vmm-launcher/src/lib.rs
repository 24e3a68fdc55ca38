//! ferrovs VMM launcher: a small KVM virtual machine monitor whose virtio-net
//! devices are served by the switch over vhost-user.
//!
//! The library holds everything the `vmm-launcher` binary needs: guest memory
//! (memfd / hugetlbfs backed, shareable with the switch), the x86-64 Linux
//! boot protocol (zero page, e820, GDT, page tables, CPUID, MP table), the
//! emulated devices (16550 serial, i8042 reset, virtio-mmio net with a
//! vhost-user frontend), the VM run loop and the per-VM state directory.

pub mod config;
pub mod control;
pub mod devices;
pub mod error;
pub mod layout;
pub mod loader;
pub mod mac;
pub mod memory;
pub mod size;
pub mod state;
pub mod testsupport;
pub mod vcpu;
pub mod vm;
pub mod vsctl;
pub mod x86;

pub use error::VmmError;
pub use mac::MacAddr;
