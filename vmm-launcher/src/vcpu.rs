//! The vCPU threads: run the guest, route exits to the devices.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;

use kvm_ioctls::{VcpuExit, VcpuFd};

use crate::devices::bus::{Bus, BusAction};
use crate::devices::virtio_mmio::VirtioBackend;

/// Why a VM stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmExit {
    /// The guest reset or powered off (i8042 0xfe, triple fault, KVM system event).
    GuestPoweroff,
    /// The launcher got SIGTERM/SIGINT.
    Signal(i32),
    /// A vCPU hit an error the VMM cannot handle.
    Error(String),
}

/// Signal used to pull a vCPU out of KVM_RUN.
pub fn kick_signal() -> i32 {
    vmm_sys_util::signal::SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the no-op handler for [`kick_signal`] (once per process).
pub fn install_kick_handler() -> std::io::Result<()> {
    vmm_sys_util::signal::register_signal_handler(kick_signal(), on_kick)
        .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
}

fn pin(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_err() {
        tracing::warn!("cannot pin vCPU to host CPU {cpu}: out of range");
        return;
    }
    if let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set) {
        tracing::warn!("cannot pin vCPU to host CPU {cpu}: {e}");
    }
}

/// Runs vCPU `id` until the VM stops; reports why through `exits`.
pub fn run<B: VirtioBackend + 'static>(
    id: u8,
    mut vcpu: VcpuFd,
    bus: Arc<Bus<B>>,
    stop: Arc<AtomicBool>,
    exits: Sender<VmExit>,
    host_cpu: Option<usize>,
) {
    if let Some(cpu) = host_cpu {
        pin(cpu);
    }
    let report = |e: VmExit| {
        stop.store(true, Ordering::SeqCst);
        let _ = exits.send(e);
    };
    while !stop.load(Ordering::SeqCst) {
        match vcpu.run() {
            Ok(VcpuExit::IoIn(port, data)) => bus.pio_read(port, data),
            Ok(VcpuExit::IoOut(port, data)) => {
                if bus.pio_write(port, data) == BusAction::Reset {
                    tracing::info!(vcpu = id, "guest requested reset/poweroff (i8042)");
                    report(VmExit::GuestPoweroff);
                }
            }
            Ok(VcpuExit::MmioRead(addr, data)) => bus.mmio_read(addr, data),
            Ok(VcpuExit::MmioWrite(addr, data)) => bus.mmio_write(addr, data),
            Ok(VcpuExit::Hlt) => {
                // Only seen without an in-kernel irqchip: nothing will wake us.
                report(VmExit::GuestPoweroff);
            }
            Ok(VcpuExit::Shutdown) | Ok(VcpuExit::SystemEvent(..)) => {
                tracing::info!(vcpu = id, "guest shut down (triple fault or system event)");
                report(VmExit::GuestPoweroff);
            }
            Ok(VcpuExit::Intr) => {}
            Ok(VcpuExit::InternalError) => {
                let rip = vcpu.get_regs().map(|r| r.rip).unwrap_or(0);
                report(VmExit::Error(format!(
                    "vCPU {id}: KVM internal error (instruction emulation failed?) at rip {rip:#x}"
                )));
            }
            Ok(VcpuExit::FailEntry(reason, cpu)) => {
                report(VmExit::Error(format!(
                    "vCPU {id}: KVM entry failed (hardware reason {reason:#x}, cpu {cpu})"
                )));
            }
            Ok(other) => {
                report(VmExit::Error(format!(
                    "vCPU {id}: unhandled exit {other:?}"
                )));
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                vcpu.set_kvm_immediate_exit(0);
            }
            Err(e) => report(VmExit::Error(format!("vCPU {id}: KVM_RUN: {e}"))),
        }
    }
}
