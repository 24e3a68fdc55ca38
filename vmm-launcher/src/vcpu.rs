//! The vCPU threads: run the guest, route exits to the devices.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use kvm_bindings::{
    Msrs, kvm_fpu, kvm_lapic_state, kvm_mp_state, kvm_msr_entry, kvm_regs, kvm_sregs,
};
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

/// A vCPU's state right after the launcher set it up: what a reboot
/// restores.
#[derive(Clone)]
pub struct VcpuSnapshot {
    regs: kvm_regs,
    sregs: kvm_sregs,
    fpu: kvm_fpu,
    lapic: kvm_lapic_state,
    mp_state: kvm_mp_state,
    msrs: Vec<kvm_msr_entry>,
}

impl VcpuSnapshot {
    /// Reads the state of a freshly set-up vCPU; `msrs` are its boot MSRs.
    pub fn take(fd: &VcpuFd, msrs: Vec<kvm_msr_entry>) -> Result<VcpuSnapshot, kvm_ioctls::Error> {
        Ok(VcpuSnapshot {
            regs: fd.get_regs()?,
            sregs: fd.get_sregs()?,
            fpu: fd.get_fpu()?,
            lapic: fd.get_lapic()?,
            mp_state: fd.get_mp_state()?,
            msrs,
        })
    }

    fn restore(&self, fd: &VcpuFd) -> Result<(), String> {
        let e = |op: &'static str| move |err: kvm_ioctls::Error| format!("{op}: {err}");
        fd.set_mp_state(self.mp_state)
            .map_err(e("KVM_SET_MP_STATE"))?;
        fd.set_sregs(&self.sregs).map_err(e("KVM_SET_SREGS"))?;
        fd.set_regs(&self.regs).map_err(e("KVM_SET_REGS"))?;
        fd.set_fpu(&self.fpu).map_err(e("KVM_SET_FPU"))?;
        fd.set_lapic(&self.lapic).map_err(e("KVM_SET_LAPIC"))?;
        let msrs = Msrs::from_entries(&self.msrs).map_err(|err| format!("MSR list: {err:?}"))?;
        fd.set_msrs(&msrs).map_err(e("KVM_SET_MSRS"))?;
        Ok(())
    }
}

#[derive(Default)]
struct CtlState {
    paused: bool,
    /// vCPU threads waiting in [`VcpuCtl::park`].
    parked: usize,
    /// Bumped to make every parked vCPU restore its snapshot.
    reset_gen: u64,
    restored: usize,
    released: bool,
}

/// Pausing, resetting and releasing the vCPU threads.
#[derive(Default)]
pub struct VcpuCtl {
    pause_requested: AtomicBool,
    state: Mutex<CtlState>,
    cv: Condvar,
}

impl VcpuCtl {
    fn lock(&self) -> MutexGuard<'_, CtlState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the vCPUs to park (the caller kicks them out of KVM_RUN).
    pub fn request_pause(&self) {
        self.lock().paused = true;
        self.pause_requested.store(true, Ordering::SeqCst);
    }

    pub fn is_paused(&self) -> bool {
        self.lock().paused
    }

    pub fn parked(&self) -> usize {
        self.lock().parked
    }

    /// Lets parked vCPUs run again.
    pub fn resume(&self) {
        let mut st = self.lock();
        st.paused = false;
        self.pause_requested.store(false, Ordering::SeqCst);
        self.cv.notify_all();
    }

    /// Makes every parked vCPU restore its boot snapshot; waits until
    /// `n` did.
    pub fn reset_parked(&self, n: usize, timeout: std::time::Duration) -> bool {
        let mut st = self.lock();
        st.reset_gen += 1;
        st.restored = 0;
        self.cv.notify_all();
        let deadline = std::time::Instant::now() + timeout;
        while st.restored < n {
            let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
                return false;
            };
            st = self
                .cv
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Wakes everything for good (VM teardown).
    pub fn release(&self) {
        let mut st = self.lock();
        st.released = true;
        st.paused = false;
        self.pause_requested.store(false, Ordering::SeqCst);
        self.cv.notify_all();
    }

    fn park(&self, id: u8, fd: &VcpuFd, snap: &VcpuSnapshot, my_gen: &mut u64) {
        let mut st = self.lock();
        st.parked += 1;
        self.cv.notify_all();
        loop {
            if st.reset_gen != *my_gen {
                *my_gen = st.reset_gen;
                if let Err(e) = snap.restore(fd) {
                    tracing::error!(vcpu = id, "cannot reset the vCPU: {e}");
                }
                st.restored += 1;
                self.cv.notify_all();
            }
            if !st.paused || st.released {
                break;
            }
            st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.parked -= 1;
    }
}

/// Runs vCPU `id` until the VM stops; reports why through `exits`. Parks
/// while the VM is paused, restoring `snapshot` when a reboot asks.
#[allow(clippy::too_many_arguments)]
pub fn run<B: VirtioBackend + 'static>(
    id: u8,
    mut vcpu: VcpuFd,
    bus: Arc<Bus<B>>,
    stop: Arc<AtomicBool>,
    exits: Sender<VmExit>,
    host_cpu: Option<usize>,
    ctl: Arc<VcpuCtl>,
    snapshot: VcpuSnapshot,
) {
    if let Some(cpu) = host_cpu {
        pin(cpu);
    }
    let report = |e: VmExit| {
        stop.store(true, Ordering::SeqCst);
        let _ = exits.send(e);
    };
    let mut my_gen = 0;
    while !stop.load(Ordering::SeqCst) {
        if ctl.pause_requested.load(Ordering::SeqCst) {
            ctl.park(id, &vcpu, &snapshot, &mut my_gen);
            continue;
        }
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
