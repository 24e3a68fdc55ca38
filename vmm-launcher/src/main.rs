//! `vmm-launcher`: boot KVM guests whose NICs are ferrovs vhost-user ports,
//! and manage them in virsh's habits (list, shutdown, destroy, console).

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid;

use vmm_launcher::config::{ConsoleSpec, DiskSpec, NetAttach, NetSpec, VmConfig, parse_cpu_list};
use vmm_launcher::devices::console::{self, ConsoleSink};
use vmm_launcher::devices::vhost_user_net::Endpoint;
use vmm_launcher::state::{self, StateDir, VmRecord};
use vmm_launcher::vcpu::VmExit;
use vmm_launcher::vm::{NicSpec, Vm, VmSpec};
use vmm_launcher::{size, vsctl};

#[derive(Parser)]
#[command(
    name = "vmm-launcher",
    version,
    about = "Boot KVM guests on ferrovs vhost-user ports"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot a VM and run it in the foreground until it powers off.
    Run(Box<RunArgs>),
    /// List VMs: name, state, pid, vCPUs, memory, ports.
    List,
    /// Ask a VM to stop (SIGTERM to its launcher) and wait for it.
    Shutdown {
        name: String,
        /// Seconds to wait before giving up.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Stop a VM immediately and clean up its ports and state.
    Destroy { name: String },
    /// Attach to a VM's serial console (Ctrl-] detaches).
    Console { name: String },
}

#[derive(clap::Args)]
struct RunArgs {
    /// VM name (state directory, port names).
    #[arg(long)]
    name: String,
    /// Linux bzImage, ELF vmlinux or freestanding ELF guest.
    #[arg(long)]
    kernel: PathBuf,
    #[arg(long)]
    initrd: Option<PathBuf>,
    /// Kernel command line.
    #[arg(long, default_value = "console=ttyS0 reboot=k panic=1")]
    cmdline: String,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1)]
    cpus: u8,
    /// Guest RAM, e.g. 512M or 2G.
    #[arg(long, default_value = "512M", value_parser = parse_memory)]
    memory: u64,
    /// Back guest RAM with 2 MiB hugepages (hugetlbfs memfd).
    #[arg(long)]
    hugepages: bool,
    /// Host CPUs for the vCPU threads, e.g. 2-3 (vCPU i on the i-th CPU).
    #[arg(long, value_parser = parse_cpu_affinity)]
    cpu_affinity: Option<CpuList>,
    /// NIC: BRIDGE[,mac=MAC] (port added through the config DB) or
    /// vhost-user=SOCKET[,mac=MAC] (existing backend socket); add
    /// ,transport=pci for virtio-pci (stock kernels) instead of virtio-mmio.
    #[arg(long, value_parser = NetSpec::parse)]
    net: Vec<NetSpec>,
    /// Disk: PATH[,readonly][,format=raw|qcow2][,serial=S][,transport=mmio|pci]
    /// (virtio-blk; a qcow2 image may have a backing file).
    #[arg(long, value_parser = DiskSpec::parse)]
    disk: Vec<DiskSpec>,
    /// Serial console: stdio or file:PATH.
    #[arg(long, default_value = "stdio", value_parser = ConsoleSpec::parse)]
    console: ConsoleSpec,
    /// Seconds to wait for the switch to create a port's vhost-user socket.
    #[arg(long, default_value_t = 10)]
    port_timeout: u64,
    /// On SIGTERM (`shutdown`), first type this on the guest's serial
    /// console (e.g. "poweroff -f\n" for a console shell) and give the guest
    /// --shutdown-timeout seconds to power off before stopping it. "\n" is
    /// a newline. Without it SIGTERM stops the VM at once.
    #[arg(long)]
    shutdown_console: Option<String>,
    /// Seconds a guest gets to power off after --shutdown-console.
    #[arg(long, default_value_t = 10)]
    shutdown_timeout: u64,
}

/// A host CPU list as one argument value (clap would otherwise take a
/// `Vec` as repeated values).
#[derive(Clone, Debug)]
struct CpuList(Vec<usize>);

fn parse_cpu_affinity(s: &str) -> Result<CpuList, String> {
    parse_cpu_list(s).map(CpuList)
}

fn parse_memory(s: &str) -> Result<u64, String> {
    size::parse_size(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Run(a) => run(*a),
        Cmd::List => list(),
        Cmd::Shutdown { name, timeout } => shutdown(&name, timeout),
        Cmd::Destroy { name } => destroy(&name),
        Cmd::Console { name } => attach_console(&name),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vmm-launcher: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Undoes what `run` set up, whichever way it ends.
struct Cleanup {
    rundir: PathBuf,
    ports: Vec<String>,
    sockets: Vec<PathBuf>,
    state: Option<StateDir>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for port in self.ports.drain(..) {
            if let Err(e) = vsctl::run(&vsctl::del_port_args(&self.rundir, &port)) {
                eprintln!("vmm-launcher: cannot remove port {port}: {e}");
            }
        }
        for sock in self.sockets.drain(..) {
            let _ = std::fs::remove_file(sock);
        }
        if let Some(s) = self.state.take() {
            s.remove();
        }
    }
}

/// Creates the listening vhost-user socket for switch port `port`, in the
/// switch's `other_config:vhost-sock-dir` when it has one.
fn listen_for_switch(rundir: &Path, port: &str) -> Result<(UnixListener, PathBuf)> {
    let dir =
        vsctl::output(&vsctl::get_other_config_args(rundir, "vhost-sock-dir")).map_err(|e| {
            anyhow!("cannot read the switch configuration (is ferrovs-vswitchd running?): {e}")
        })?;
    let sock = vsctl::socket_path(rundir, Some(&dir), port).map_err(|e| anyhow!(e))?;
    if let Some(parent) = sock.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    // A socket left by a launcher that was killed.
    if std::fs::symlink_metadata(&sock).is_ok_and(|m| m.file_type().is_socket()) {
        std::fs::remove_file(&sock)
            .with_context(|| format!("removing stale {}", sock.display()))?;
    }
    let l = UnixListener::bind(&sock)
        .with_context(|| format!("cannot listen on vhost-user socket {}", sock.display()))?;
    Ok((l, sock))
}

fn run(a: RunArgs) -> Result<ExitCode> {
    state::validate_name(&a.name)?;
    let rundir = state::rundir();
    let config = VmConfig {
        name: a.name.clone(),
        kernel: a.kernel.clone(),
        initrd: a.initrd.clone(),
        cmdline: a.cmdline.clone(),
        cpus: a.cpus,
        memory: a.memory,
        hugepages: a.hugepages,
        cpu_affinity: a.cpu_affinity.clone().map(|l| l.0),
        nets: a.net.clone(),
        disks: a.disk.clone(),
        console: a.console.clone(),
    };
    let mut nics = Vec::new();
    for (i, n) in a.net.iter().enumerate() {
        let mac = n.mac_for(&a.name, i)?;
        nics.push((n.attach.clone(), mac, n.transport));
    }
    let console_sink = match &a.console {
        ConsoleSpec::Stdio => ConsoleSink::Stdout,
        ConsoleSpec::File(p) => ConsoleSink::File(
            std::fs::File::create(p).with_context(|| format!("console file {}", p.display()))?,
        ),
    };
    // Check what needs no KVM before touching the switch.
    let precheck = VmSpec {
        name: a.name.clone(),
        kernel: a.kernel.clone(),
        initrd: a.initrd.clone(),
        cmdline: a.cmdline.clone(),
        cpus: a.cpus,
        memory: a.memory,
        hugepages: a.hugepages,
        cpu_affinity: a.cpu_affinity.clone().map(|l| l.0),
        nics: vec![],
        disks: a.disk.clone(),
        console: ConsoleSink::Buffer(Default::default()),
        console_socket: None,
    };
    vmm_launcher::vm::validate(&precheck)?;

    // Signals go to one thread that waits for them.
    let mut sigs = SigSet::empty();
    sigs.add(Signal::SIGTERM);
    sigs.add(Signal::SIGINT);
    sigs.thread_block().context("blocking SIGTERM/SIGINT")?;

    let mut record = VmRecord {
        config,
        pid: std::process::id() as i32,
        ports: vec![],
        sockets: vec![],
    };
    let mut cleanup = Cleanup {
        rundir: rundir.clone(),
        ports: vec![],
        sockets: vec![],
        state: None,
    };
    let sd = StateDir::create(&rundir, &record)?;
    let console_socket = sd.console_socket();
    cleanup.state = Some(sd);

    let mut nic_specs = Vec::new();
    for (i, (attach, mac, transport)) in nics.into_iter().enumerate() {
        let endpoint = match attach {
            NetAttach::VhostUser(p) => Endpoint::Connect(p),
            NetAttach::Bridge(br) => {
                let port = vsctl::port_name(&a.name, i);
                let (listener, sock) = listen_for_switch(&rundir, &port)?;
                cleanup.sockets.push(sock.clone());
                record.sockets.push(sock.clone());
                vsctl::run(&vsctl::add_port_args(&rundir, &br, &port, &sock))
                    .map_err(|e| anyhow!("cannot add port {port} to bridge {br}: {e}"))?;
                cleanup.ports.push(port.clone());
                record.ports.push(port.clone());
                if let Some(s) = &cleanup.state {
                    s.write(&record)?;
                }
                Endpoint::Listen(listener, sock)
            }
        };
        nic_specs.push(NicSpec {
            endpoint,
            wait: Duration::from_secs(a.port_timeout),
            mac,
            transport,
        });
    }

    let vm = Vm::build(VmSpec {
        nics: nic_specs,
        console: console_sink,
        console_socket: Some(console_socket),
        ..precheck
    })?;
    let serial = vm.serial();
    let running = vm.start()?;
    let tx = running.exit_sender();
    let ask = a.shutdown_console.as_ref().map(|s| s.replace("\\n", "\n"));
    let grace = Duration::from_secs(a.shutdown_timeout);
    let serial_for_signals = serial.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Ok(sig) = sigs.wait() else { return };
            if let (Some(text), Signal::SIGTERM) = (&ask, sig) {
                tracing::info!("got SIGTERM: asking the guest to power off");
                console::feed_input(&serial_for_signals, text.as_bytes());
                let tx_timer = tx.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(grace);
                    tracing::warn!("guest did not power off in time: stopping it");
                    let _ = tx_timer.send(VmExit::Signal(sig as i32));
                });
                // A second signal stops the VM at once.
                let Ok(sig) = sigs.wait() else { return };
                let _ = tx.send(VmExit::Signal(sig as i32));
                return;
            }
            tracing::info!("got {sig}: stopping the VM");
            let _ = tx.send(VmExit::Signal(sig as i32));
        })?;
    if a.console == ConsoleSpec::Stdio {
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || console::feed_input(&serial, std::io::stdin()))?;
    }
    let reason = running.wait();
    drop(cleanup);
    match reason {
        VmExit::GuestPoweroff => {
            tracing::info!("guest powered off");
            Ok(ExitCode::SUCCESS)
        }
        VmExit::Signal(s) => {
            tracing::info!("stopped by signal {s}");
            Ok(ExitCode::SUCCESS)
        }
        VmExit::Error(e) => Err(anyhow!(e)),
    }
}

fn list() -> Result<ExitCode> {
    let rundir = state::rundir();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        " {:<20} {:<10} {:>8} {:>5} {:>8}  Ports",
        "Name", "State", "PID", "vCPUs", "Memory"
    )?;
    writeln!(out, "{}", "-".repeat(70))?;
    for (rec, st) in state::list(&rundir) {
        writeln!(
            out,
            " {:<20} {:<10} {:>8} {:>5} {:>6}Mi  {}",
            rec.config.name,
            st.to_string(),
            rec.pid,
            rec.config.cpus,
            rec.config.memory >> 20,
            rec.ports.join(",")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while state::pid_alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

fn running_record(rundir: &Path, name: &str) -> Result<VmRecord> {
    let rec = state::read(rundir, name)?;
    if !state::pid_alive(rec.pid) {
        bail!("domain '{name}' is not running");
    }
    Ok(rec)
}

fn shutdown(name: &str, timeout: u64) -> Result<ExitCode> {
    let rundir = state::rundir();
    let rec = running_record(&rundir, name)?;
    nix::sys::signal::kill(Pid::from_raw(rec.pid), Signal::SIGTERM)
        .with_context(|| format!("signalling pid {}", rec.pid))?;
    println!("Domain '{name}' is being shutdown");
    if !wait_gone(rec.pid, Duration::from_secs(timeout)) {
        bail!("domain '{name}' did not stop within {timeout} s; use destroy");
    }
    Ok(ExitCode::SUCCESS)
}

fn destroy(name: &str) -> Result<ExitCode> {
    let rundir = state::rundir();
    let rec = state::read(&rundir, name)?;
    if state::pid_alive(rec.pid) {
        nix::sys::signal::kill(Pid::from_raw(rec.pid), Signal::SIGKILL)
            .with_context(|| format!("killing pid {}", rec.pid))?;
        wait_gone(rec.pid, Duration::from_secs(10));
    }
    // The launcher could not clean up after SIGKILL: do it here.
    let mut cleanup = Cleanup {
        rundir: rundir.clone(),
        ports: rec.ports.clone(),
        sockets: rec.sockets.clone(),
        state: Some(StateDir {
            path: StateDir::path_for(&rundir, name),
        }),
    };
    cleanup.ports.retain(|p| !p.is_empty());
    drop(cleanup);
    println!("Domain '{name}' destroyed");
    Ok(ExitCode::SUCCESS)
}

fn attach_console(name: &str) -> Result<ExitCode> {
    let rundir = state::rundir();
    running_record(&rundir, name)?;
    let sock = StateDir::path_for(&rundir, name).join("console.sock");
    let stream = UnixStream::connect(&sock)
        .with_context(|| format!("cannot connect to console {}", sock.display()))?;
    eprintln!("Connected to domain '{name}'\nEscape character is ^]");
    let mut reader = stream.try_clone()?;
    let output = std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        let mut out = std::io::stdout();
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).is_err() {
                break;
            }
            let _ = out.flush();
        }
    });
    let mut writer = stream.try_clone()?;
    let mut buf = [0u8; 256];
    let mut stdin = std::io::stdin();
    loop {
        let n = stdin.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if let Some(pos) = buf[..n].iter().position(|&b| b == 0x1d) {
            writer.write_all(&buf[..pos])?;
            break;
        }
        writer.write_all(&buf[..n])?;
    }
    // Input ended (EOF or ^]): show what the guest still prints for a
    // moment, then detach.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(1500)));
    let _ = stream.shutdown(std::net::Shutdown::Write);
    std::thread::sleep(Duration::from_millis(1500));
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = output.join();
    Ok(ExitCode::SUCCESS)
}
