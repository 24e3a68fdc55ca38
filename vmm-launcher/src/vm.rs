//! Building and running one VM: KVM objects, memory, devices, vCPUs.

use std::os::unix::thread::JoinHandleExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_bindings::{
    KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY, Msrs, kvm_irqchip, kvm_pit_config,
    kvm_pit_state2, kvm_userspace_memory_region,
};
use kvm_ioctls::{IoEventAddress, Kvm, NoDatamatch, VmFd};
use vm_superio::Serial;
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::signal::Killable;

use crate::config::{DiskSpec, Transport};
use crate::devices::bus::Bus;
use crate::devices::console::{self, ConsoleOut, ConsoleSink, IrqTrigger};
use crate::devices::vhost_user_net::{Endpoint, NicStatus, VhostUserNet};
use crate::devices::virtio_blk::{BlkDevice, BlkStats, Image};
use crate::devices::virtio_mmio::{NUM_QUEUES, QUEUE_NOTIFY, VirtioBackend, VirtioMmioNet};
use crate::devices::virtio_pci::{self, VirtioPciNet};
use crate::error::{Result, VmmError};
use crate::layout::{self, COM1_IRQ, MAX_VIRTIO_DEVICES, MIN_MEMORY};
use crate::loader;
use crate::mac::MacAddr;
use crate::memory::GuestRam;
use crate::vcpu::{self, VcpuCtl, VcpuSnapshot, VmExit};
use crate::x86::mptable::PciIrq;
use crate::x86::{cpuid, mptable, regs};

/// Default KVM device; `VMM_KVM_DEVICE` overrides it (tests).
pub const KVM_DEVICE: &str = "/dev/kvm";

/// One NIC as the VM sees it.
pub struct NicSpec {
    /// Where the vhost-user connection comes from.
    pub endpoint: Endpoint,
    /// How long a listening endpoint waits for the backend's first
    /// connection.
    pub wait: Duration,
    pub mac: MacAddr,
    pub transport: Transport,
}

/// Everything [`Vm::build`] needs.
pub struct VmSpec {
    pub name: String,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub cpus: u8,
    pub memory: u64,
    pub hugepages: bool,
    pub cpu_affinity: Option<Vec<usize>>,
    pub nics: Vec<NicSpec>,
    pub disks: Vec<DiskSpec>,
    pub console: ConsoleSink,
    pub console_socket: Option<PathBuf>,
}

/// The `virtio_mmio.device=` kernel parameters for the NICs at these
/// indexes.
pub fn virtio_mmio_cmdline(indexes: impl IntoIterator<Item = usize>) -> String {
    indexes
        .into_iter()
        .map(|i| {
            let (base, irq) = layout::virtio_mmio_slot(i);
            format!("virtio_mmio.device=4K@{base:#x}:{irq}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks the parts of a spec that need no KVM.
pub fn validate(spec: &VmSpec) -> Result<()> {
    if spec.memory < MIN_MEMORY {
        return Err(VmmError::MemoryTooSmall {
            given: format!("{} MiB", spec.memory >> 20),
            min_mib: MIN_MEMORY >> 20,
        });
    }
    if spec.cpus == 0 || usize::from(spec.cpus) > mptable::max_cpus() {
        return Err(VmmError::TooMany {
            what: "vCPUs (and at least 1)",
            max: mptable::max_cpus(),
        });
    }
    if spec.nics.len() + spec.disks.len() > MAX_VIRTIO_DEVICES {
        return Err(VmmError::TooMany {
            what: "virtio devices (NICs and disks)",
            max: MAX_VIRTIO_DEVICES,
        });
    }
    for d in &spec.disks {
        // Open now, so a missing file or a malformed image header is
        // reported before anything starts.
        Image::open(&d.path, d.format, d.readonly)?;
    }
    loader::sniff_kernel(&spec.kernel)?;
    if let Some(initrd) = &spec.initrd {
        std::fs::metadata(initrd).map_err(|source| VmmError::InitrdOpen {
            path: initrd.clone(),
            source,
        })?;
    }
    Ok(())
}

/// The in-kernel interrupt controllers and timer as the launcher set them
/// up.
struct ChipSnapshot {
    chips: Vec<kvm_irqchip>,
    pit: kvm_pit_state2,
}

impl ChipSnapshot {
    fn take(vm: &VmFd) -> Result<ChipSnapshot> {
        let mut chips = Vec::new();
        // 0: PIC master, 1: PIC slave, 2: IOAPIC.
        for id in 0..3 {
            let mut c = kvm_irqchip {
                chip_id: id,
                ..Default::default()
            };
            vm.get_irqchip(&mut c)
                .map_err(VmmError::kvm("KVM_GET_IRQCHIP"))?;
            chips.push(c);
        }
        let pit = vm.get_pit2().map_err(VmmError::kvm("KVM_GET_PIT2"))?;
        Ok(ChipSnapshot { chips, pit })
    }

    fn restore(&self, vm: &VmFd) -> std::result::Result<(), String> {
        for c in &self.chips {
            vm.set_irqchip(c)
                .map_err(|e| format!("KVM_SET_IRQCHIP: {e}"))?;
        }
        vm.set_pit2(&self.pit)
            .map_err(|e| format!("KVM_SET_PIT2: {e}"))
    }
}

/// What a reboot loads again.
struct BootInfo {
    kernel: PathBuf,
    initrd: Option<PathBuf>,
    /// The command line as the guest gets it (virtio-mmio devices included).
    cmdline: String,
    cpus: u8,
    pci_irqs: Vec<PciIrq>,
}

impl BootInfo {
    fn load(&self, ram: &GuestRam) -> Result<()> {
        let kernel = loader::load_kernel(ram, &self.kernel)?;
        let initrd = match &self.initrd {
            Some(p) => Some(loader::load_initrd(ram, p, &kernel)?),
            None => None,
        };
        let cmdline = loader::build_cmdline(&self.cmdline)?;
        loader::write_boot_structures_with_pci(
            ram,
            &cmdline,
            &kernel,
            initrd,
            self.cpus,
            &self.pci_irqs,
        )?;
        Ok(())
    }
}

/// A VM ready to run.
pub struct Vm {
    _kvm: Kvm,
    vm: Arc<VmFd>,
    /// PICs, IOAPIC and PIT as set up: what a reboot restores.
    chips: Arc<ChipSnapshot>,
    ram: Arc<GuestRam>,
    bus: Arc<Bus<Box<dyn VirtioBackend>>>,
    disk_stats: Vec<Arc<BlkStats>>,
    nics: Vec<NicStatus>,
    boot: Arc<BootInfo>,
    snapshots: Vec<VcpuSnapshot>,
    vcpus: Vec<kvm_ioctls::VcpuFd>,
    cpu_affinity: Option<Vec<usize>>,
    _eventfds: Vec<EventFd>,
}

fn open_kvm() -> Result<Kvm> {
    let path = std::env::var_os("VMM_KVM_DEVICE").unwrap_or_else(|| KVM_DEVICE.into());
    let cpath = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
        .map_err(|_| VmmError::KvmCapability("bad KVM device path".into()))?;
    let kvm = Kvm::new_with_path(&cpath).map_err(|source| VmmError::KvmOpen {
        path: path.to_string_lossy().into_owned(),
        source,
    })?;
    if kvm.get_api_version() != 12 {
        return Err(VmmError::KvmCapability(format!(
            "KVM API version {} (need 12)",
            kvm.get_api_version()
        )));
    }
    for (cap, name) in [
        (kvm_ioctls::Cap::Irqchip, "KVM_CAP_IRQCHIP"),
        (kvm_ioctls::Cap::Irqfd, "KVM_CAP_IRQFD"),
        (kvm_ioctls::Cap::Ioeventfd, "KVM_CAP_IOEVENTFD"),
        (kvm_ioctls::Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
    ] {
        if !kvm.check_extension(cap) {
            return Err(VmmError::KvmCapability(name.into()));
        }
    }
    Ok(kvm)
}

impl Vm {
    /// Creates the VM: memory, kernel, boot structures, devices, vCPUs.
    pub fn build(spec: VmSpec) -> Result<Vm> {
        validate(&spec)?;
        let kvm = open_kvm()?;
        let vm = kvm.create_vm().map_err(VmmError::kvm("KVM_CREATE_VM"))?;
        vm.set_tss_address(0xfffb_d000)
            .map_err(VmmError::kvm("KVM_SET_TSS_ADDR"))?;
        vm.create_irq_chip()
            .map_err(VmmError::kvm("KVM_CREATE_IRQCHIP"))?;
        vm.create_pit2(kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        })
        .map_err(VmmError::kvm("KVM_CREATE_PIT2"))?;

        let ram = Arc::new(GuestRam::new(&spec.name, spec.memory, spec.hugepages)?);
        for (slot, gpa, len, hva) in ram.kvm_regions() {
            let region = kvm_userspace_memory_region {
                slot,
                guest_phys_addr: gpa,
                memory_size: len,
                userspace_addr: hva,
                flags: 0,
            };
            // SAFETY: hva..hva+len is a live mapping owned by `ram`, which
            // outlives the VM file descriptor (both live in `Vm`).
            unsafe { vm.set_user_memory_region(region) }
                .map_err(VmmError::kvm("KVM_SET_USER_MEMORY_REGION"))?;
        }

        let mut eventfds = Vec::new();
        let serial_evt = EventFd::new(libc::EFD_NONBLOCK)?;
        vm.register_irqfd(&serial_evt, COM1_IRQ)
            .map_err(VmmError::kvm("KVM_IRQFD"))?;
        let out = ConsoleOut::new(spec.console);
        let serial = Arc::new(Mutex::new(Serial::new(
            IrqTrigger(serial_evt.try_clone()?),
            out.clone(),
        )));
        eventfds.push(serial_evt);
        if let Some(sock) = &spec.console_socket {
            console::serve_socket(sock, out, serial.clone())?;
        }

        let mut bus = Bus::new(serial);
        let mut pci_irqs = Vec::new();
        let mut nic_status = Vec::new();
        let nic_transports: Vec<Transport> = spec.nics.iter().map(|n| n.transport).collect();
        for (i, nic) in spec.nics.into_iter().enumerate() {
            // NIC i: IRQ 5 + i; an MMIO window or a PCI BAR of its own.
            let (base, irq) = layout::virtio_mmio_slot(i);
            let bar = layout::virtio_pci_bar(i);
            let mut kicks = Vec::new();
            let mut calls = Vec::new();
            for q in 0..NUM_QUEUES {
                let kick = EventFd::new(libc::EFD_NONBLOCK)?;
                match nic.transport {
                    Transport::Mmio => vm.register_ioevent(
                        &kick,
                        &IoEventAddress::Mmio(base + QUEUE_NOTIFY),
                        q as u32,
                    ),
                    // One address per queue: any write width matches.
                    Transport::Pci => vm.register_ioevent(
                        &kick,
                        &IoEventAddress::Mmio(virtio_pci::notify_address(bar, q)),
                        NoDatamatch,
                    ),
                }
                .map_err(VmmError::kvm("KVM_IOEVENTFD"))?;
                let call = EventFd::new(libc::EFD_NONBLOCK)?;
                vm.register_irqfd(&call, irq)
                    .map_err(VmmError::kvm("KVM_IRQFD"))?;
                kicks.push(kick);
                calls.push(call);
            }
            let config_irq = EventFd::new(libc::EFD_NONBLOCK)?;
            vm.register_irqfd(&config_irq, irq)
                .map_err(VmmError::kvm("KVM_IRQFD"))?;
            let backend = VhostUserNet::new(
                nic.endpoint,
                nic.wait,
                ram.clone(),
                kicks,
                calls,
                config_irq,
            )?;
            let socket = backend.socket().to_path_buf();
            nic_status.push(backend.status());
            let dev = VirtioMmioNet::new(Box::new(backend) as Box<dyn VirtioBackend>, nic.mac);
            match nic.transport {
                Transport::Mmio => {
                    bus.add_virtio(base, dev);
                    tracing::info!(mac = %nic.mac, socket = %socket.display(), base = format_args!("{base:#x}"), irq, "virtio-net (mmio) attached");
                }
                Transport::Pci => {
                    let slot = bus.add_pci(VirtioPciNet::new(dev, bar, irq as u8));
                    pci_irqs.push(PciIrq {
                        slot,
                        pin: irq as u8,
                    });
                    tracing::info!(mac = %nic.mac, socket = %socket.display(), slot, bar = format_args!("{bar:#x}"), irq, "virtio-net (pci) attached");
                }
            }
        }

        let mut disk_stats = Vec::new();
        let mut transports = nic_transports;
        for (j, disk) in spec.disks.iter().enumerate() {
            // Disks take the device slots after the NICs.
            let i = transports.len();
            let (base, irq) = layout::virtio_mmio_slot(i);
            let bar = layout::virtio_pci_bar(i);
            let kick = EventFd::new(libc::EFD_NONBLOCK)?;
            match disk.transport {
                Transport::Mmio => {
                    vm.register_ioevent(&kick, &IoEventAddress::Mmio(base + QUEUE_NOTIFY), 0u32)
                }
                Transport::Pci => vm.register_ioevent(
                    &kick,
                    &IoEventAddress::Mmio(virtio_pci::notify_address(bar, 0)),
                    NoDatamatch,
                ),
            }
            .map_err(VmmError::kvm("KVM_IOEVENTFD"))?;
            let call = EventFd::new(libc::EFD_NONBLOCK)?;
            vm.register_irqfd(&call, irq)
                .map_err(VmmError::kvm("KVM_IRQFD"))?;
            let image = Image::open(&disk.path, disk.format, disk.readonly)?;
            let format = image.format;
            let blk = BlkDevice::new(
                image,
                &disk.serial_for(&spec.name, j),
                ram.clone(),
                kick,
                call,
            )?;
            disk_stats.push(blk.stats());
            let dev = VirtioMmioNet::new(Box::new(blk) as Box<dyn VirtioBackend>, MacAddr([0; 6]));
            match disk.transport {
                Transport::Mmio => bus.add_virtio(base, dev),
                Transport::Pci => {
                    let slot = bus.add_pci(VirtioPciNet::new(dev, bar, irq as u8));
                    pci_irqs.push(PciIrq {
                        slot,
                        pin: irq as u8,
                    });
                }
            }
            tracing::info!(path = %disk.path.display(), %format, readonly = disk.readonly, transport = ?disk.transport, irq, "virtio-blk attached");
            transports.push(disk.transport);
        }

        let mut cmdline = spec.cmdline.clone();
        let mmio_nics = transports
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == Transport::Mmio)
            .map(|(i, _)| i);
        let mmio_params = virtio_mmio_cmdline(mmio_nics);
        if !mmio_params.is_empty() {
            cmdline = format!("{cmdline} {mmio_params}");
        }
        let boot = BootInfo {
            kernel: spec.kernel.clone(),
            initrd: spec.initrd.clone(),
            cmdline,
            cpus: spec.cpus,
            pci_irqs,
        };
        boot.load(&ram)?;
        let kernel = loader::load_kernel(&ram, &spec.kernel)?;
        tracing::info!(kernel = %spec.kernel.display(), kind = ?kernel.kind, entry = format_args!("{:#x}", kernel.entry), "kernel loaded");

        let supported = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(VmmError::kvm("KVM_GET_SUPPORTED_CPUID"))?;
        let mut vcpus = Vec::new();
        let mut snapshots = Vec::new();
        for id in 0..spec.cpus {
            let vcpu = vm
                .create_vcpu(u64::from(id))
                .map_err(VmmError::kvm("KVM_CREATE_VCPU"))?;
            let mut cpuid = supported.clone();
            cpuid::patch_for_vcpu(cpuid.as_mut_slice(), id, spec.cpus);
            vcpu.set_cpuid2(&cpuid)
                .map_err(VmmError::kvm("KVM_SET_CPUID2"))?;
            let entries = regs::boot_msrs();
            let msrs = Msrs::from_entries(&entries)
                .map_err(|e| VmmError::KvmCapability(format!("MSR list: {e:?}")))?;
            let set = vcpu
                .set_msrs(&msrs)
                .map_err(VmmError::kvm("KVM_SET_MSRS"))?;
            if set != entries.len() {
                tracing::warn!(
                    vcpu = id,
                    set,
                    wanted = entries.len(),
                    "KVM accepted only some boot MSRs"
                );
            }
            let mut lapic = vcpu.get_lapic().map_err(VmmError::kvm("KVM_GET_LAPIC"))?;
            regs::set_lint(&mut lapic);
            vcpu.set_lapic(&lapic)
                .map_err(VmmError::kvm("KVM_SET_LAPIC"))?;
            if id == 0 {
                vcpu.set_fpu(&regs::boot_fpu())
                    .map_err(VmmError::kvm("KVM_SET_FPU"))?;
                vcpu.set_regs(&regs::boot_regs(kernel.entry))
                    .map_err(VmmError::kvm("KVM_SET_REGS"))?;
                let mut sregs = vcpu.get_sregs().map_err(VmmError::kvm("KVM_GET_SREGS"))?;
                regs::set_long_mode_sregs(&mut sregs);
                vcpu.set_sregs(&sregs)
                    .map_err(VmmError::kvm("KVM_SET_SREGS"))?;
            }
            snapshots.push(
                VcpuSnapshot::take(&vcpu, entries).map_err(VmmError::kvm("KVM_GET_VCPU_STATE"))?,
            );
            vcpus.push(vcpu);
        }

        Ok(Vm {
            _kvm: kvm,
            chips: Arc::new(ChipSnapshot::take(&vm)?),
            vm: Arc::new(vm),
            ram,
            bus: Arc::new(bus),
            disk_stats,
            nics: nic_status,
            boot: Arc::new(boot),
            snapshots,
            vcpus,
            cpu_affinity: spec.cpu_affinity,
            _eventfds: eventfds,
        })
    }

    /// The serial device (to feed console input).
    pub fn serial(&self) -> Arc<Mutex<crate::devices::console::SerialDevice>> {
        self.bus.serial.clone()
    }

    /// I/O counters of the disks, in `--disk` order.
    pub fn disk_stats(&self) -> Vec<Arc<BlkStats>> {
        self.disk_stats.clone()
    }

    /// Link state and reconnect counts of the NICs, in `--net` order.
    pub fn nic_status(&self) -> Vec<NicStatus> {
        self.nics.clone()
    }

    /// Guest memory (for inspection).
    pub fn ram(&self) -> &GuestRam {
        &self.ram
    }

    /// Starts the vCPU threads.
    pub fn start(mut self) -> Result<RunningVm> {
        vcpu::install_kick_handler()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = channel();
        let mut threads = Vec::new();
        let ctl = Arc::new(VcpuCtl::default());
        let snapshots = std::mem::take(&mut self.snapshots);
        for ((i, fd), snap) in self.vcpus.drain(..).enumerate().zip(snapshots) {
            let ctl = ctl.clone();
            let host_cpu = self
                .cpu_affinity
                .as_ref()
                .filter(|l| !l.is_empty())
                .map(|l| l[i % l.len()]);
            let bus = self.bus.clone();
            let stop = stop.clone();
            let tx = tx.clone();
            let h = std::thread::Builder::new()
                .name(format!("vcpu{i}"))
                .spawn(move || vcpu::run(i as u8, fd, bus, stop, tx, host_cpu, ctl, snap))?;
            threads.push(h);
        }
        let control = Arc::new(VmControl {
            ctl: ctl.clone(),
            tids: threads.iter().map(|t| t.as_pthread_t()).collect(),
            ram: self.ram.clone(),
            bus: self.bus.clone(),
            boot: self.boot.clone(),
            vm: self.vm.clone(),
            chips: self.chips.clone(),
            booted_at: Mutex::new(Instant::now()),
            op: Mutex::new(()),
        });
        Ok(RunningVm {
            vm: self,
            stop,
            exits_tx: tx,
            exits_rx: rx,
            threads,
            control,
        })
    }
}

/// Why a pause, resume or reboot was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("is already paused")]
    AlreadyPaused,
    #[error("is not paused")]
    NotPaused,
    #[error("did not stop its vCPUs within {0} s")]
    Timeout(u64),
    #[error("could not be reset: {0}")]
    Reset(String),
}

/// Whether the vCPUs run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    Paused,
}

/// Pause, resume and reboot of a running VM (used by the control socket).
pub struct VmControl {
    ctl: Arc<VcpuCtl>,
    tids: Vec<libc::pthread_t>,
    ram: Arc<GuestRam>,
    bus: Arc<Bus<Box<dyn VirtioBackend>>>,
    boot: Arc<BootInfo>,
    vm: Arc<VmFd>,
    chips: Arc<ChipSnapshot>,
    booted_at: Mutex<Instant>,
    /// One operation at a time.
    op: Mutex<()>,
}

const PAUSE_TIMEOUT: Duration = Duration::from_secs(10);

impl VmControl {
    pub fn state(&self) -> RunState {
        if self.ctl.is_paused() {
            RunState::Paused
        } else {
            RunState::Running
        }
    }

    /// Time since the guest was (re)booted.
    pub fn uptime(&self) -> Duration {
        self.booted_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    /// Stops every vCPU; returns once all are parked.
    fn park_all(&self) -> std::result::Result<(), ControlError> {
        self.ctl.request_pause();
        let deadline = Instant::now() + PAUSE_TIMEOUT;
        while self.ctl.parked() < self.tids.len() {
            if Instant::now() > deadline {
                self.ctl.resume();
                return Err(ControlError::Timeout(PAUSE_TIMEOUT.as_secs()));
            }
            for &t in &self.tids {
                // SAFETY: t is a vCPU thread of this process, alive until
                // the VM is torn down (which holds `op`-free callers out by
                // joining only after the control socket is gone); the
                // signal has a no-op handler.
                unsafe { libc::pthread_kill(t, vcpu::kick_signal()) };
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    pub fn pause(&self) -> std::result::Result<(), ControlError> {
        let _op = self.op.lock().unwrap_or_else(|p| p.into_inner());
        if self.ctl.is_paused() {
            return Err(ControlError::AlreadyPaused);
        }
        self.park_all()
    }

    pub fn resume(&self) -> std::result::Result<(), ControlError> {
        let _op = self.op.lock().unwrap_or_else(|p| p.into_inner());
        if !self.ctl.is_paused() {
            return Err(ControlError::NotPaused);
        }
        self.ctl.resume();
        Ok(())
    }

    /// A hard reset keeping the VM's identity: vCPUs stop, devices reset
    /// (NIC rings stop; ports, MACs and sockets stay), the interrupt
    /// controllers and PIT go back to their boot state, RAM is cleared, the
    /// kernel is loaded again and every vCPU gets its boot state back; then
    /// the VM runs (also when it was paused).
    pub fn reboot(&self) -> std::result::Result<(), ControlError> {
        let _op = self.op.lock().unwrap_or_else(|p| p.into_inner());
        if !self.ctl.is_paused() {
            self.park_all()?;
        }
        self.bus.reset_devices();
        self.chips.restore(&self.vm).map_err(ControlError::Reset)?;
        self.ram
            .zero()
            .and_then(|()| self.boot.load(&self.ram))
            .map_err(|e| ControlError::Reset(e.to_string()))?;
        if !self.ctl.reset_parked(self.tids.len(), PAUSE_TIMEOUT) {
            return Err(ControlError::Reset("vCPUs did not reset".into()));
        }
        *self.booted_at.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.ctl.resume();
        tracing::info!("VM rebooted");
        Ok(())
    }
}

/// A VM whose vCPUs run.
pub struct RunningVm {
    vm: Vm,
    stop: Arc<AtomicBool>,
    exits_tx: Sender<VmExit>,
    exits_rx: Receiver<VmExit>,
    threads: Vec<JoinHandle<()>>,
    control: Arc<VmControl>,
}

impl RunningVm {
    /// Pause, resume, reboot.
    pub fn control(&self) -> Arc<VmControl> {
        self.control.clone()
    }

    /// A sender other threads (signal handling) use to stop the VM.
    pub fn exit_sender(&self) -> Sender<VmExit> {
        self.exits_tx.clone()
    }

    /// Waits until the guest powers off, a vCPU fails or someone sends an
    /// exit; then stops every vCPU and the devices' queues.
    pub fn wait(self) -> VmExit {
        let reason = self
            .exits_rx
            .recv()
            .unwrap_or_else(|_| VmExit::Error("exit channel closed".into()));
        self.stop.store(true, Ordering::SeqCst);
        let _op = self.control.op.lock().unwrap_or_else(|p| p.into_inner());
        self.control.ctl.release();
        let sig = vcpu::kick_signal();
        while self.threads.iter().any(|t| !t.is_finished()) {
            for t in self.threads.iter().filter(|t| !t.is_finished()) {
                let _ = t.kill(sig);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for t in self.threads {
            let _ = t.join();
        }
        self.vm.bus.reset_devices();
        reason
    }
}

/// Waits up to `timeout` for `path` to exist (sockets the switch creates).
pub fn wait_for_socket(path: &Path, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtio_devices_are_declared_on_the_kernel_command_line() {
        assert_eq!(
            virtio_mmio_cmdline([0, 1]),
            "virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6"
        );
        assert_eq!(virtio_mmio_cmdline([]), "");
        assert_eq!(
            virtio_mmio_cmdline([1]),
            "virtio_mmio.device=4K@0xd0001000:6",
            "slot follows the NIC index"
        );
    }

    fn spec(memory: u64, cpus: u8) -> VmSpec {
        VmSpec {
            name: "t".into(),
            kernel: "/bin/sh".into(),
            initrd: None,
            cmdline: String::new(),
            cpus,
            memory,
            hugepages: false,
            cpu_affinity: None,
            nics: vec![],
            disks: vec![],
            console: ConsoleSink::Buffer(Arc::default()),
            console_socket: None,
        }
    }

    #[test]
    fn validation_refuses_tiny_memory_and_zero_vcpus() {
        assert!(matches!(
            validate(&spec(1 << 20, 1)),
            Err(VmmError::MemoryTooSmall { .. })
        ));
        assert!(matches!(
            validate(&spec(64 << 20, 0)),
            Err(VmmError::TooMany { .. })
        ));
        assert!(validate(&spec(64 << 20, 2)).is_ok());
    }
}
