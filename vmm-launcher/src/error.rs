//! Errors of the launcher library, worded for the people who run VMs.

use std::path::PathBuf;

/// Everything that can go wrong while building or running a VM.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    #[error(
        "cannot open {path}: {source} (is KVM enabled, and may this user read and write {path}?)"
    )]
    KvmOpen {
        path: String,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("KVM API version mismatch or missing capability: {0}")]
    KvmCapability(String),
    #[error("KVM ioctl {op} failed: {source}")]
    Kvm {
        op: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("kernel image {path}: {source}")]
    KernelOpen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a Linux kernel (neither a bzImage nor an x86-64 ELF vmlinux)")]
    NotAKernel { path: PathBuf },
    #[error("cannot load kernel {path}: {reason}")]
    KernelLoad { path: PathBuf, reason: String },
    #[error("initrd {path}: {source}")]
    InitrdOpen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("initrd {path} ({size} bytes) does not fit in guest memory")]
    InitrdTooBig { path: PathBuf, size: u64 },
    #[error("memory size {given} is too small: at least {min_mib} MiB are needed")]
    MemoryTooSmall { given: String, min_mib: u64 },
    #[error("invalid memory size '{0}': expected a number with an optional K, M, G or T suffix")]
    BadMemorySize(String),
    #[error("cannot allocate guest memory: {0}")]
    GuestMemory(String),
    #[error("guest memory access failed: {0}")]
    GuestMemoryAccess(String),
    #[error("invalid MAC address '{0}': expected six hex octets like 52:54:00:12:34:56")]
    BadMac(String),
    #[error("MAC address {0} is a multicast address and cannot be used by a NIC")]
    MulticastMac(String),
    #[error("kernel command line: {0}")]
    Cmdline(String),
    #[error("vhost-user socket {path}: {reason}")]
    VhostUser { path: PathBuf, reason: String },
    #[error("too many {what}: at most {max}")]
    TooMany { what: &'static str, max: usize },
    #[error(transparent)]
    Disk(#[from] crate::devices::virtio_blk::DiskError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl VmmError {
    /// Wraps a KVM ioctl failure with the name of the operation.
    pub fn kvm(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmmError {
        move |source| VmmError::Kvm { op, source }
    }
}

/// Short alias used across the crate.
pub type Result<T> = std::result::Result<T, VmmError>;
