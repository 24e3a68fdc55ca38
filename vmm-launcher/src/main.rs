//! `vmm-launcher`: boot KVM guests whose NICs are ferrovs vhost-user ports,
//! and manage them in virsh's habits (list, shutdown, destroy, console).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid;

use vmm_launcher::config::{ConsoleSpec, DiskSpec, NetAttach, NetSpec, VmConfig, parse_cpu_list};
use vmm_launcher::control::{self, DiskLive, LiveInfo, NicLive, Reply, Request};
use vmm_launcher::devices::console::{self, ConsoleSink};
use vmm_launcher::devices::vhost_user_net::Endpoint;
use vmm_launcher::state::{self, RunOpts, StateDir, VmRecord};
use vmm_launcher::vcpu::VmExit;
use vmm_launcher::vm::{NicSpec, RunState, Vm, VmSpec};
use vmm_launcher::{size, vsctl};

#[derive(Parser)]
#[command(
    name = "vmm-launcher",
    version,
    about = "Boot KVM guests on ferrovs vhost-user ports"
)]
struct Cli {
    /// Output of the lifecycle commands: text (virsh-like) or json.
    #[arg(long, global = true, value_enum, default_value = "text")]
    format: Format,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot a VM and run it in the foreground until it powers off.
    Run(Box<RunArgs>),
    /// List VMs: name, state, pid, vCPUs, memory, ports.
    List {
        /// Also shut-off VMs (definitions kept with --persistent).
        #[arg(long)]
        all: bool,
    },
    /// Details of a VM: vCPUs, memory, disks, NICs with their switch port
    /// and counters, state, uptime.
    Info { name: String },
    /// Stop a running VM's vCPUs.
    Pause { name: String },
    /// Let a paused VM run again.
    Resume { name: String },
    /// Reset the VM (CPUs, devices, RAM) and boot it again, keeping its
    /// name, MACs, ports and disks.
    Reboot { name: String },
    /// Boot a shut-off VM from its kept definition (run --persistent), in
    /// the background.
    Start {
        name: String,
        /// Seconds to wait for it to come up.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Forget a shut-off VM's kept definition.
    Undefine { name: String },
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
    /// Runs a kept definition (what `start` launches).
    #[command(hide = true)]
    RunRecord { name: String },
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
    /// Keep the VM's definition when it stops (`list --all`, `start`).
    #[arg(long)]
    persistent: bool,
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
    let fmt = cli.format;
    let r = match cli.cmd {
        Cmd::Run(a) => run(*a),
        Cmd::RunRecord { name } => run_record(&name),
        Cmd::List { all } => list(all, fmt),
        Cmd::Info { name } => info(&name, fmt),
        Cmd::Pause { name } => control_verb(&name, Request::Pause, fmt),
        Cmd::Resume { name } => control_verb(&name, Request::Resume, fmt),
        Cmd::Reboot { name } => control_verb(&name, Request::Reboot, fmt),
        Cmd::Start { name, timeout } => start(&name, timeout, fmt),
        Cmd::Undefine { name } => undefine(&name, fmt),
        Cmd::Shutdown { name, timeout } => shutdown(&name, timeout, fmt),
        Cmd::Destroy { name } => destroy(&name, fmt),
        Cmd::Console { name } => attach_console(&name),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            if fmt == Format::Json {
                println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
            }
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
    /// `--persistent`: keep this definition instead of removing the state.
    keep: Option<VmRecord>,
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
            match self.keep.take() {
                Some(rec) => s.keep_definition(&rec),
                None => s.remove(),
            }
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
    let opts = RunOpts {
        port_timeout: a.port_timeout,
        shutdown_console: a.shutdown_console.clone(),
        shutdown_timeout: a.shutdown_timeout,
    };
    run_config(config, opts, a.persistent)
}

/// `start`'s background launcher: runs a kept definition.
fn run_record(name: &str) -> Result<ExitCode> {
    let rec = state::read(&state::rundir(), name)?;
    run_config(rec.config, rec.opts, true)
}

fn run_config(config: VmConfig, opts: RunOpts, persistent: bool) -> Result<ExitCode> {
    let rundir = state::rundir();
    let name = config.name.clone();
    let mut nics = Vec::new();
    for (i, n) in config.nets.iter().enumerate() {
        let mac = n.mac_for(&name, i)?;
        nics.push((n.attach.clone(), mac, n.transport));
    }
    let console_sink = match &config.console {
        ConsoleSpec::Stdio => ConsoleSink::Stdout,
        ConsoleSpec::File(p) => ConsoleSink::File(
            std::fs::File::create(p).with_context(|| format!("console file {}", p.display()))?,
        ),
    };
    // Check what needs no KVM before touching the switch.
    let precheck = VmSpec {
        name: name.clone(),
        kernel: config.kernel.clone(),
        initrd: config.initrd.clone(),
        cmdline: config.cmdline.clone(),
        cpus: config.cpus,
        memory: config.memory,
        hugepages: config.hugepages,
        cpu_affinity: config.cpu_affinity.clone(),
        nics: vec![],
        disks: config.disks.clone(),
        console: ConsoleSink::Buffer(Default::default()),
        console_socket: None,
    };
    vmm_launcher::vm::validate(&precheck)?;

    // Signals go to one thread that waits for them.
    let mut sigs = SigSet::empty();
    sigs.add(Signal::SIGTERM);
    sigs.add(Signal::SIGINT);
    sigs.thread_block().context("blocking SIGTERM/SIGINT")?;

    let stdio_console = config.console == ConsoleSpec::Stdio;
    let mut record = VmRecord {
        config,
        pid: std::process::id() as i32,
        ports: vec![],
        sockets: vec![],
        persistent,
        opts: opts.clone(),
    };
    let mut cleanup = Cleanup {
        rundir: rundir.clone(),
        ports: vec![],
        sockets: vec![],
        state: None,
        keep: None,
    };
    let sd = StateDir::create(&rundir, &record)?;
    let console_socket = sd.console_socket();
    let control_socket = sd.control_socket();
    cleanup.state = Some(sd);
    if persistent {
        cleanup.keep = Some(record.clone());
    }

    let mut nic_specs = Vec::new();
    for (i, (attach, mac, transport)) in nics.into_iter().enumerate() {
        let endpoint = match attach {
            NetAttach::VhostUser(p) => Endpoint::Connect(p),
            NetAttach::Bridge(br) => {
                let port = vsctl::port_name(&name, i);
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
            wait: Duration::from_secs(opts.port_timeout),
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
    let nic_status = vm.nic_status();
    let disk_stats = vm.disk_stats();
    // The control socket exists before the guest runs: whoever sees the
    // guest's output (or the pid) can pause, reboot or query it.
    let control_listener = control::bind(&control_socket)
        .with_context(|| format!("control socket {}", control_socket.display()))?;
    let running = vm.start()?;
    let control = running.control();
    control::serve(
        control_listener,
        Arc::new(move |req| {
            let verb = |r: std::result::Result<(), vmm_launcher::vm::ControlError>| Reply {
                error: r.err().map(|e| e.to_string()),
                info: None,
            };
            match req {
                Request::Pause => verb(control.pause()),
                Request::Resume => verb(control.resume()),
                Request::Reboot => verb(control.reboot()),
                Request::Info => Reply {
                    error: None,
                    info: Some(LiveInfo {
                        state: control.state(),
                        uptime_secs: control.uptime().as_secs(),
                        nics: nic_status
                            .iter()
                            .map(|n| NicLive {
                                socket: n.socket().to_path_buf(),
                                link_up: n.link_up(),
                                reconnects: n.reconnects(),
                            })
                            .collect(),
                        disks: disk_stats
                            .iter()
                            .map(|d| DiskLive {
                                reads: d.reads.load(Ordering::Relaxed),
                                writes: d.writes.load(Ordering::Relaxed),
                                flushes: d.flushes.load(Ordering::Relaxed),
                                discards: d.discards.load(Ordering::Relaxed),
                                errors: d.errors.load(Ordering::Relaxed),
                            })
                            .collect(),
                    }),
                },
            }
        }),
    )
    .with_context(|| format!("control socket {}", control_socket.display()))?;
    let tx = running.exit_sender();
    let ask = opts
        .shutdown_console
        .as_ref()
        .map(|s| s.replace("\\n", "\n"));
    let grace = Duration::from_secs(opts.shutdown_timeout);
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
    if stdio_console {
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

/// A VM's state as the lifecycle verbs name it.
fn domain_state(rundir: &Path, rec: &VmRecord) -> &'static str {
    if !state::pid_alive(rec.pid) {
        return if state::locked(rundir, &rec.config.name) {
            "starting"
        } else {
            "shut off"
        };
    }
    let sock = StateDir::path_for(rundir, &rec.config.name).join("control.sock");
    match control::request(&sock, Request::Info) {
        Ok(Reply { info: Some(i), .. }) if i.state == RunState::Paused => "paused",
        _ => "running",
    }
}

/// One row of `list`.
#[derive(serde::Serialize)]
struct ListRow {
    name: String,
    state: String,
    pid: Option<i32>,
    vcpus: u8,
    memory_mib: u64,
    persistent: bool,
    ports: Vec<String>,
}

fn list(all: bool, fmt: Format) -> Result<ExitCode> {
    let rundir = state::rundir();
    let rows: Vec<ListRow> = state::list(&rundir)
        .into_iter()
        .map(|(rec, _)| {
            let st = domain_state(&rundir, &rec);
            ListRow {
                name: rec.config.name.clone(),
                state: st.to_string(),
                pid: (st != "shut off").then_some(rec.pid),
                vcpus: rec.config.cpus,
                memory_mib: rec.config.memory >> 20,
                persistent: rec.persistent,
                ports: rec.ports.clone(),
            }
        })
        .filter(|r| all || r.state != "shut off")
        .collect();
    let mut out = std::io::stdout().lock();
    if fmt == Format::Json {
        writeln!(out, "{}", serde_json::to_string(&rows)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        " {:<20} {:<10} {:>8} {:>5} {:>8}  Ports",
        "Name", "State", "PID", "vCPUs", "Memory"
    )?;
    writeln!(out, "{}", "-".repeat(70))?;
    for r in rows {
        writeln!(
            out,
            " {:<20} {:<10} {:>8} {:>5} {:>6}Mi  {}",
            r.name,
            r.state,
            r.pid.map_or("-".to_string(), |p| p.to_string()),
            r.vcpus,
            r.memory_mib,
            r.ports.join(",")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `info NAME`.
#[derive(serde::Serialize)]
struct DomainInfo {
    name: String,
    state: String,
    pid: Option<i32>,
    persistent: bool,
    vcpus: u8,
    memory_mib: u64,
    uptime_secs: Option<u64>,
    nics: Vec<NicInfo>,
    disks: Vec<DiskInfo>,
}

#[derive(serde::Serialize)]
struct NicInfo {
    index: usize,
    mac: String,
    transport: String,
    bridge: Option<String>,
    port: Option<String>,
    socket: Option<PathBuf>,
    link_up: Option<bool>,
    reconnects: Option<u32>,
    /// The switch's counters for the port (`Interface.statistics`).
    counters: BTreeMap<String, u64>,
}

#[derive(serde::Serialize)]
struct DiskInfo {
    index: usize,
    path: PathBuf,
    format: String,
    readonly: bool,
    serial: String,
    transport: String,
    #[serde(flatten)]
    counters: Option<DiskLive>,
}

fn transport_name(t: vmm_launcher::config::Transport) -> String {
    match t {
        vmm_launcher::config::Transport::Mmio => "mmio".into(),
        vmm_launcher::config::Transport::Pci => "pci".into(),
    }
}

/// The switch's `statistics` of a port, through vsctl.
fn port_counters(rundir: &Path, port: &str) -> BTreeMap<String, u64> {
    let args = vec![
        format!("--db=unix:{}", rundir.join("db.sock").display()),
        "--if-exists".to_string(),
        "get".to_string(),
        "Interface".to_string(),
        port.to_string(),
        "statistics".to_string(),
    ];
    let Ok(out) = vsctl::output(&args) else {
        return BTreeMap::new();
    };
    out.trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn info(name: &str, fmt: Format) -> Result<ExitCode> {
    let rundir = state::rundir();
    let rec = state::read(&rundir, name)?;
    let st = domain_state(&rundir, &rec);
    let live = if st == "shut off" {
        None
    } else {
        let sock = StateDir::path_for(&rundir, name).join("control.sock");
        control::request(&sock, Request::Info)
            .ok()
            .and_then(|r| r.info)
    };
    let c = &rec.config;
    let nics = c
        .nets
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let lv = live.as_ref().and_then(|l| l.nics.get(i));
            let port = rec
                .ports
                .get(i)
                .cloned()
                .filter(|_| matches!(n.attach, NetAttach::Bridge(_)));
            NicInfo {
                index: i,
                mac: n
                    .mac_for(name, i)
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                transport: transport_name(n.transport),
                bridge: match &n.attach {
                    NetAttach::Bridge(b) => Some(b.clone()),
                    NetAttach::VhostUser(_) => None,
                },
                counters: match (&port, lv) {
                    (Some(p), Some(_)) => port_counters(&rundir, p),
                    _ => BTreeMap::new(),
                },
                port,
                socket: lv.map(|l| l.socket.clone()),
                link_up: lv.map(|l| l.link_up),
                reconnects: lv.map(|l| l.reconnects),
            }
        })
        .collect();
    let disks = c
        .disks
        .iter()
        .enumerate()
        .map(|(i, d)| DiskInfo {
            index: i,
            path: d.path.clone(),
            format: d.format.map_or("raw".into(), |f| f.to_string()),
            readonly: d.readonly,
            serial: d.serial_for(name, i),
            transport: transport_name(d.transport),
            counters: live.as_ref().and_then(|l| l.disks.get(i).cloned()),
        })
        .collect();
    let info = DomainInfo {
        name: name.to_string(),
        state: st.to_string(),
        pid: (st != "shut off").then_some(rec.pid),
        persistent: rec.persistent,
        vcpus: c.cpus,
        memory_mib: c.memory >> 20,
        uptime_secs: live.as_ref().map(|l| l.uptime_secs),
        nics,
        disks,
    };
    let mut out = std::io::stdout().lock();
    if fmt == Format::Json {
        writeln!(out, "{}", serde_json::to_string(&info)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    writeln!(out, "{:<16}{}", "Name:", info.name)?;
    writeln!(out, "{:<16}{}", "State:", info.state)?;
    writeln!(
        out,
        "{:<16}{}",
        "PID:",
        opt(info.pid.map(|p| p.to_string()))
    )?;
    writeln!(
        out,
        "{:<16}{}",
        "Persistent:",
        if info.persistent { "yes" } else { "no" }
    )?;
    writeln!(out, "{:<16}{}", "CPU(s):", info.vcpus)?;
    writeln!(out, "{:<16}{} MiB", "Max memory:", info.memory_mib)?;
    writeln!(
        out,
        "{:<16}{}",
        "Uptime:",
        opt(info.uptime_secs.map(|u| format!("{u} s")))
    )?;
    for n in &info.nics {
        let counters: Vec<String> = n.counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(
            out,
            "{:<16}mac={} transport={} bridge={} port={} link={} reconnects={}{}{}",
            format!("NIC {}:", n.index),
            n.mac,
            n.transport,
            opt(n.bridge.clone()),
            opt(n.port.clone()),
            opt(n
                .link_up
                .map(|u| if u { "up".into() } else { "down".into() })),
            opt(n.reconnects.map(|r| r.to_string())),
            if counters.is_empty() { "" } else { " " },
            counters.join(" ")
        )?;
    }
    for d in &info.disks {
        let counters = d.counters.as_ref().map_or(String::new(), |c| {
            format!(
                " reads={} writes={} flushes={} discards={} errors={}",
                c.reads, c.writes, c.flushes, c.discards, c.errors
            )
        });
        writeln!(
            out,
            "{:<16}path={} format={} readonly={} serial={} transport={}{}",
            format!("Disk {}:", d.index),
            d.path.display(),
            d.format,
            if d.readonly { "yes" } else { "no" },
            d.serial,
            d.transport,
            counters
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// pause, resume, reboot: through the launcher's control socket.
fn control_verb(name: &str, req: Request, fmt: Format) -> Result<ExitCode> {
    let rundir = state::rundir();
    running_record(&rundir, name)?;
    let sock = StateDir::path_for(&rundir, name).join("control.sock");
    let reply = control::request(&sock, req)?;
    if let Some(e) = reply.error {
        bail!("domain '{name}' {e}");
    }
    let (state, text) = match req {
        Request::Pause => ("paused", format!("Domain '{name}' suspended")),
        Request::Resume => ("running", format!("Domain '{name}' resumed")),
        Request::Reboot => ("running", format!("Domain '{name}' is being rebooted")),
        Request::Info => ("running", String::new()),
    };
    print_outcome(fmt, name, state, &text);
    Ok(ExitCode::SUCCESS)
}

fn print_outcome(fmt: Format, name: &str, state: &str, text: &str) {
    match fmt {
        Format::Json => println!("{}", serde_json::json!({ "name": name, "state": state })),
        Format::Text => println!("{text}"),
    }
}

fn start(name: &str, timeout: u64, fmt: Format) -> Result<ExitCode> {
    let rundir = state::rundir();
    let rec = state::read(&rundir, name)?;
    if state::pid_alive(rec.pid) || state::locked(&rundir, name) {
        bail!("domain '{name}' is already running");
    }
    if !rec.persistent {
        bail!("domain '{name}' has no kept definition to start (run it with --persistent)");
    }
    let dir = StateDir::path_for(&rundir, name);
    let log_path = dir.join("launcher.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let exe = std::env::current_exe().context("finding the launcher binary")?;
    let mut child = std::process::Command::new(exe)
        .args(["run-record", name])
        .env("FERROVS_RUNDIR", &rundir)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting the launcher")?;
    let sock = dir.join("control.sock");
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        if let Ok(Reply { info: Some(_), .. }) = control::request(&sock, Request::Info) {
            break;
        }
        if let Ok(Some(st)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let last = log
                .lines()
                .rev()
                .find(|l| l.contains("vmm-launcher:"))
                .unwrap_or(log.trim());
            bail!("domain '{name}' failed to start ({st}): {last}");
        }
        if Instant::now() > deadline {
            bail!(
                "domain '{name}' did not come up within {timeout} s (see {})",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    print_outcome(fmt, name, "running", &format!("Domain '{name}' started"));
    Ok(ExitCode::SUCCESS)
}

fn undefine(name: &str, fmt: Format) -> Result<ExitCode> {
    let rundir = state::rundir();
    let rec = state::read(&rundir, name)?;
    if state::pid_alive(rec.pid) || state::locked(&rundir, name) {
        bail!("domain '{name}' is running: destroy or shut it down first");
    }
    StateDir {
        path: StateDir::path_for(&rundir, name),
        lock: None,
    }
    .remove();
    print_outcome(
        fmt,
        name,
        "undefined",
        &format!("Domain '{name}' has been undefined"),
    );
    Ok(ExitCode::SUCCESS)
}

/// Waits until launcher `pid` of VM `name` is gone and has let go of the
/// name lock (its last thread may exit after the leader is a zombie).
fn wait_gone(rundir: &Path, name: &str, pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while state::pid_alive(pid) || state::locked(rundir, name) {
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

fn shutdown(name: &str, timeout: u64, fmt: Format) -> Result<ExitCode> {
    let rundir = state::rundir();
    let rec = running_record(&rundir, name)?;
    nix::sys::signal::kill(Pid::from_raw(rec.pid), Signal::SIGTERM)
        .with_context(|| format!("signalling pid {}", rec.pid))?;
    if !wait_gone(&rundir, name, rec.pid, Duration::from_secs(timeout)) {
        bail!("domain '{name}' did not stop within {timeout} s; use destroy");
    }
    print_outcome(
        fmt,
        name,
        "shut off",
        &format!("Domain '{name}' is being shutdown"),
    );
    Ok(ExitCode::SUCCESS)
}

fn destroy(name: &str, fmt: Format) -> Result<ExitCode> {
    let rundir = state::rundir();
    let rec = state::read(&rundir, name)?;
    if !state::pid_alive(rec.pid) && rec.persistent {
        bail!("domain '{name}' is not running");
    }
    if state::pid_alive(rec.pid) {
        nix::sys::signal::kill(Pid::from_raw(rec.pid), Signal::SIGKILL)
            .with_context(|| format!("killing pid {}", rec.pid))?;
        wait_gone(&rundir, name, rec.pid, Duration::from_secs(10));
    }
    // The launcher could not clean up after SIGKILL: do it here.
    let mut cleanup = Cleanup {
        rundir: rundir.clone(),
        ports: rec.ports.clone(),
        sockets: rec.sockets.clone(),
        state: Some(StateDir {
            path: StateDir::path_for(&rundir, name),
            lock: None,
        }),
        keep: rec.persistent.then(|| rec.clone()),
    };
    cleanup.ports.retain(|p| !p.is_empty());
    drop(cleanup);
    print_outcome(fmt, name, "shut off", &format!("Domain '{name}' destroyed"));
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
