//! Helpers for ferrovs's end-to-end tests: the daemon as a child process in
//! a private run directory, the CLIs, and test hosts in network namespaces.
//!
//! Every name a test creates (namespaces, interfaces) carries a short unique
//! tag so that tests can run in parallel and leftovers are recognisable
//! (`fv…`). Everything is removed by `Drop` guards, also when a test fails.

pub mod ct_hosts;
pub mod ovn;
pub mod tunnel_hosts;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Path of a workspace binary (`vswitchd`, `vsctl`, …) built next to the
/// test executable (`target/<profile>/`), or next to a binary of this crate
/// such as `soak`.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash>, or target/<profile>/<bin>
    let dir = exe
        .parent()
        .map(|d| match d.parent() {
            Some(up) if d.ends_with("deps") => up,
            _ => d,
        })
        .expect("executable lives in target/<profile>");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

/// Skips the test (returning `Ok(())`) unless running as root, and fails it
/// when one of the named commands is missing (the install script provides
/// them all): `require!();`, `require!("ovs-vsctl", "python3");`.
#[macro_export]
macro_rules! require {
    ($($tool:expr),* $(,)?) => {
        if !$crate::is_root() {
            eprintln!("skipped: needs root (network namespaces)");
            return Ok(());
        }
        $( $crate::require_tool($tool); )*
    };
}

/// Panics with a clear message when `tool` is not on the PATH.
pub fn require_tool(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed: run scripts/install-test-deps.sh"
    );
}

/// `add-port BR PORT -- set Interface PORT SETTINGS...` through `vsctl`
/// (ferrovs's [`Switch::vsctl`], stock [`StockOvs::vsctl`], or stock
/// ovs-vsctl against either DB): a port whose Interface row has `settings`
/// (`type=...`, `options:...=...`) from the start.
pub fn add_port_with(
    vsctl: impl FnOnce(&[&str]) -> Result<String>,
    br: &str,
    port: &str,
    settings: &[&str],
) -> Result<()> {
    let mut args = vec!["add-port", br, port, "--", "set", "Interface", port];
    args.extend_from_slice(settings);
    vsctl(&args).map(drop)
}

/// `add-port BR PORT -- set Interface PORT ofport_request=N EXTRA...`
/// through `vsctl` (see [`add_port_with`]): a port at a known OpenFlow
/// number.
pub fn add_port_numbered(
    vsctl: impl FnOnce(&[&str]) -> Result<String>,
    br: &str,
    port: &str,
    ofport: u32,
    extra: &[&str],
) -> Result<()> {
    let req = format!("ofport_request={ofport}");
    let mut settings = vec![req.as_str()];
    settings.extend_from_slice(extra);
    add_port_with(vsctl, br, port, &settings)
}

/// Creates the Datapath row of datapath type `dp_type` and names it in
/// Open_vSwitch, as OVS's tools expect whoever needs the row to do, through
/// `vsctl` (see [`add_port_numbered`]); returns what `vsctl` printed.
pub fn create_datapath_row(
    vsctl: impl FnOnce(&[&str]) -> Result<String>,
    dp_type: &str,
) -> Result<String> {
    let datapaths = format!("datapaths:{dp_type}=@d");
    vsctl(&[
        "--",
        "--id=@d",
        "create",
        "Datapath",
        "datapath_version=0",
        "--",
        "set",
        "Open_vSwitch",
        ".",
        &datapaths,
    ])
}

/// A switch with one bridge (`<tag>b`) and `n` veth hosts on it: host `i`
/// (1-based) has address `10.<net>.0.<i>/24` and OpenFlow port `i`.
pub fn bridge_with_hosts(tag: &str, net: u8, n: u32) -> Result<(Switch, String, Vec<VethHost>)> {
    let sw = Switch::start()?;
    let br = format!("{tag}b");
    sw.vsctl(&["add-br", &br])?;
    let mut hosts = Vec::new();
    for i in 1..=n {
        let h = VethHost::new(tag, i, &format!("10.{net}.0.{i}/24"))?;
        add_port_numbered(|a| sw.vsctl(a), &br, &h.port, i, &[])?;
        hosts.push(h);
    }
    Ok((sw, br, hosts))
}

/// True when running as root (the end-to-end tests need namespaces).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A short tag unique to this process and call: `fv<pid%1000><n>`.
pub fn unique_tag() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("fv{}{}", std::process::id() % 1000, n)
}

/// Runs a command, failing with its stderr when it exits non-zero.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command and returns its whole output, whatever its exit status.
pub fn run_output(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawning {cmd:?}"))
}

/// `ip ARGS…`
pub fn ip(args: &[&str]) -> Result<String> {
    run(Command::new("ip").args(args))
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str) -> Result<Netns> {
        let _ = ip(&["netns", "del", name]);
        ip(&["netns", "add", name])?;
        let ns = Netns {
            name: name.to_string(),
        };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs a command inside the namespace, failing on a non-zero exit.
    pub fn exec(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args))
    }

    /// Runs a command inside the namespace and returns its output.
    pub fn exec_output(&self, args: &[&str]) -> Result<Output> {
        run_output(
            Command::new("ip")
                .args(["netns", "exec", &self.name])
                .args(args),
        )
    }

    /// Spawns a long-running command inside the namespace.
    pub fn spawn(&self, args: &[&str]) -> Result<ChildGuard> {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {args:?} in {}", self.name))?;
        Ok(ChildGuard(Some(child)))
    }

    /// `ping -c COUNT -W 1 -i 0.2 DST`; true when at least one reply came
    /// back (ping's own exit status), so the first request may be lost
    /// while ARP resolves or a flow is set up; `!ping(..)` holds only when
    /// no request of the COUNT got an answer.
    pub fn ping(&self, dst: &str, count: u32) -> bool {
        let c = count.to_string();
        self.exec_output(&["ping", "-n", "-q", "-c", &c, "-i", "0.2", "-W", "1", dst])
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// The output of `ping -c 3 -i 0.2 -W 2 DST` whatever its exit status,
    /// for checks on the reply lines (`ttl=63`): one lost request of three
    /// does not fail the check, as a single `ping -c 1` did.
    pub fn ping_replies(&self, dst: &str) -> String {
        self.exec_output(&["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", dst])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// After a change that should cut `dst` off (a flow or tunnel option
    /// removed) and that the switch applies asynchronously (revalidation of
    /// cached flows): pings once at a time until a request goes unanswered
    /// (or `timeout` passes), then true only when three more requests all
    /// go unanswered too.
    pub fn ping_stops(&self, dst: &str, timeout: Duration) -> bool {
        wait_until(timeout, || !self.ping(dst, 1)) && !self.ping(dst, 3)
    }

    /// Pings until one reply arrives or `timeout` passes (learning, ARP).
    pub fn ping_eventually(&self, dst: &str, timeout: Duration) -> bool {
        wait_until(timeout, || {
            self.exec_output(&["ping", "-n", "-q", "-c", "1", "-W", "1", dst])
                .map(|o| o.status.success())
                .unwrap_or(false)
        })
    }
}

impl Netns {
    /// True when a socket in the namespace listens on (TCP) or is bound
    /// to (UDP) local port `port`.
    fn listens(&self, proto: Proto, port: u16) -> bool {
        let flags = match proto {
            Proto::Tcp => "-Hltn",
            Proto::Udp => "-Hlun",
        };
        self.exec(&["ss", flags, &format!("sport = :{port}")])
            .is_ok_and(|out| !out.trim().is_empty())
    }

    /// Spawns a server (`args`: python3, iperf3, …) and returns once it
    /// listens on `port`; fails with its output if it exits first. A
    /// server spawned a moment ago may not have bound yet on a busy
    /// machine, and a client that comes too early is refused (TCP) or its
    /// datagram is lost (UDP): never a fixed sleep.
    pub fn spawn_server(&self, args: &[&str], proto: Proto, port: u16) -> Result<ChildGuard> {
        let mut g = self.spawn(args)?;
        let mut exited = false;
        let up = wait_until(Duration::from_secs(30), || {
            if matches!(g.child().try_wait(), Ok(Some(_))) {
                exited = true;
                return true;
            }
            self.listens(proto, port)
        });
        if exited || !up {
            let out = g.wait_output()?;
            bail!(
                "server {args:?} in {} did not come to listen on {proto:?} port {port}: {}{}",
                self.name,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(g)
    }

    /// Starts `tcpdump ARGS` in the namespace (killed after `secs` seconds
    /// by `timeout`) and returns once it captures: tcpdump says "listening
    /// on" after its filter is in place. A capture started with a fixed
    /// sleep misses the first packets when tcpdump is slow to start.
    pub fn tcpdump(&self, secs: u32, args: &[&str]) -> Result<Tcpdump> {
        let dir = tempfile::Builder::new().prefix("ferrovs-cap-").tempdir()?;
        let out = dir.path().join("stdout");
        let err = dir.path().join("stderr");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "timeout",
                &secs.to_string(),
                "tcpdump",
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out)?)
            .stderr(std::fs::File::create(&err)?)
            .spawn()
            .with_context(|| format!("spawning tcpdump {args:?} in {}", self.name))?;
        let mut g = ChildGuard(Some(child));
        let stderr = || std::fs::read_to_string(&err).unwrap_or_default();
        let mut exited = false;
        let ready = wait_until(Duration::from_secs(30), || {
            if matches!(g.child().try_wait(), Ok(Some(_))) {
                exited = true;
                return true;
            }
            stderr().contains("listening on")
        });
        if exited || !ready {
            bail!(
                "tcpdump {args:?} did not start in {}: {}",
                self.name,
                stderr()
            );
        }
        Ok(Tcpdump {
            child: g,
            out,
            _dir: dir,
        })
    }

    /// Captures on `dev` the first `count` packets that `filter` selects
    /// while `traffic` runs (20 s at most) and returns them as a pcap file's
    /// bytes. The capture is running before `traffic` starts.
    pub fn capture_pcap(
        &self,
        dev: &str,
        filter: &str,
        count: u32,
        traffic: impl FnOnce(),
    ) -> Result<Vec<u8>> {
        let file = tempfile::Builder::new().suffix(".pcap").tempfile()?;
        let path = file.path().to_str().context("pcap path")?.to_string();
        let c = count.to_string();
        let dump = self.tcpdump(20, &["-i", dev, "-n", "-U", "-c", &c, "-w", &path, filter])?;
        traffic();
        dump.wait()?;
        Ok(std::fs::read(&path)?)
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// A transport protocol, for [`Netns::spawn_server`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// A running `tcpdump` started by [`Netns::tcpdump`].
pub struct Tcpdump {
    child: ChildGuard,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tcpdump {
    /// What tcpdump printed so far (its decoded packets with `-l`).
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until tcpdump ends (its `-c` count reached, or its `timeout`)
    /// and returns what it printed.
    pub fn wait(mut self) -> Result<String> {
        let _ = self.child.child().wait();
        Ok(self.text())
    }

    /// Stops tcpdump now and returns what it printed.
    pub fn stop(mut self) -> String {
        self.terminate();
        self.text()
    }

    /// SIGTERM to `timeout`, which passes it on to tcpdump (a SIGKILL
    /// would leave tcpdump running), and reaps it.
    fn terminate(&mut self) {
        let Some(c) = self.child.0.as_mut() else {
            return;
        };
        if !matches!(c.try_wait(), Ok(None)) {
            return;
        }
        // SAFETY: kill has no memory-safety preconditions; the pid is our
        // own child, not yet reaped.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let exited = wait_until(Duration::from_secs(10), || {
            matches!(self.child.child().try_wait(), Ok(Some(_)))
        });
        if !exited {
            self.child.kill();
        }
    }

    /// Waits until what tcpdump printed satisfies `done` (or `timeout`
    /// passes), then stops it and returns what it printed.
    pub fn stop_when(mut self, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        wait_until(timeout, || done(&self.text()));
        self.terminate();
        self.text()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A host: a namespace whose `eth0` is one end of a veth pair; the other
/// end (`port`) stays in the root namespace for the switch.
pub struct VethHost {
    pub ns: Netns,
    /// Name of the switch-side end in the root namespace.
    pub port: String,
    pub addr: String,
}

impl VethHost {
    /// Creates namespace `<tag>h<i>` with eth0 = `addr` (CIDR), and the
    /// root-side veth end `<tag>p<i>`.
    pub fn new(tag: &str, i: u32, addr: &str) -> Result<VethHost> {
        let ns = Netns::new(&format!("{tag}h{i}"))?;
        let port = format!("{tag}p{i}");
        let _ = ip(&["link", "del", &port]);
        ip(&[
            "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ])?;
        // No IPv6 on either end: a fresh veth sends router solicitations,
        // MLD reports and DAD probes for seconds after it comes up, which
        // the switch would count and flood among the test's own packets.
        std::fs::write(format!("/proc/sys/net/ipv6/conf/{port}/disable_ipv6"), "1")
            .with_context(|| format!("disabling IPv6 on {port}"))?;
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1"])?;
        ip(&["link", "set", &port, "up"])?;
        ns.exec(&["ip", "addr", "add", addr, "dev", "eth0"])?;
        ns.exec(&["ip", "link", "set", "eth0", "up"])?;
        Ok(VethHost {
            ns,
            port,
            addr: addr.split('/').next().unwrap_or(addr).to_string(),
        })
    }
}

impl Drop for VethHost {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.port]);
    }
}

/// A host behind a TAP port: the switch creates the TAP device `dev`, the
/// test moves it into a namespace and configures it there.
pub struct TapHost {
    pub ns: Netns,
    pub dev: String,
    pub addr: String,
}

impl TapHost {
    /// Waits for the switch to create `dev`, moves it into `<tag>t<i>` and
    /// gives it `addr`.
    pub fn adopt(tag: &str, i: u32, dev: &str, addr: &str) -> Result<TapHost> {
        let ns = Netns::new(&format!("{tag}t{i}"))?;
        if !wait_until(Duration::from_secs(10), || {
            ip(&["link", "show", "dev", dev]).is_ok()
        }) {
            bail!("the switch did not create TAP device {dev}");
        }
        ip(&["link", "set", dev, "netns", &ns.name])?;
        ns.exec(&["ip", "addr", "add", addr, "dev", dev])?;
        ns.exec(&["ip", "link", "set", dev, "up"])?;
        Ok(TapHost {
            ns,
            dev: dev.to_string(),
            addr: addr.split('/').next().unwrap_or(addr).to_string(),
        })
    }
}

/// Kills and reaps a child process on drop.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child")
    }

    /// Waits for the child and returns its output.
    pub fn wait_output(mut self) -> Result<Output> {
        let child = self.0.take().expect("child");
        Ok(child.wait_with_output()?)
    }

    /// Sends SIGKILL now (the guard still reaps it).
    pub fn kill(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Deletes, when dropped while the vswitchd it was made for still runs,
/// the devices of that switch's bridges and `internal`/`tap` interfaces.
/// ferrovs makes them persistent as Open vSwitch does (they outlive the
/// daemon), so a test that stops its switch would leave them behind.
pub struct TapCleanup {
    rundir: PathBuf,
    pid: Option<u32>,
}

impl TapCleanup {
    /// For the vswitchd `child` serving `rundir`.
    pub fn new(rundir: &Path, child: &Child) -> TapCleanup {
        TapCleanup {
            rundir: rundir.to_path_buf(),
            pid: Some(child.id()),
        }
    }

    /// The names of the switch's persistent devices, asked of the daemon.
    fn devices(&self) -> Vec<String> {
        let vsctl = |args: &[&str]| {
            run(Command::new("timeout")
                .arg("5")
                .arg(bin("vsctl"))
                .env("FERROVS_RUNDIR", &self.rundir)
                .args(args))
            .unwrap_or_default()
        };
        let mut names: Vec<String> = vsctl(&["list-br"])
            .lines()
            .map(|l| l.trim().to_string())
            .collect();
        for ty in ["type=internal", "type=tap"] {
            names.extend(
                vsctl(&["--bare", "--columns=name", "find", "Interface", ty])
                    .split_whitespace()
                    .map(str::to_string),
            );
        }
        names.retain(|n| !n.is_empty());
        names
    }
}

impl Drop for TapCleanup {
    fn drop(&mut self) {
        let Some(pid) = self.pid else { return };
        // SAFETY: signal 0 only checks that the process exists.
        if unsafe { libc::kill(pid as i32, 0) } != 0 {
            return;
        }
        for name in self.devices() {
            // Only devices of this (the test's) namespace: a switch in
            // another namespace leaves its devices to that namespace.
            if Path::new("/sys/class/net")
                .join(&name)
                .join("tun_flags")
                .exists()
            {
                let _ = ip(&["link", "del", &name]);
            }
        }
    }
}

/// A vswitchd process on a private run directory and DB file.
pub struct Switch {
    /// First, so that it runs while the daemon is still up.
    pub devices: TapCleanup,
    pub rundir: tempfile::TempDir,
    pub db: PathBuf,
    pub proc: ChildGuard,
    pub log: PathBuf,
    /// The network namespace it runs in (None: the test's own).
    pub netns: Option<String>,
}

/// Starts vswitchd on `rundir` and `db` (appending to `log`), inside
/// namespace `netns` if given, and waits until it serves its DB socket.
fn spawn_vswitchd(rundir: &Path, db: &Path, log: &Path, netns: Option<&str>) -> Result<Child> {
    // A killed daemon leaves its sockets behind, where a client would be
    // refused: wait for fresh ones (the control socket comes after the
    // DB's, and tests call appctl at once).
    let sock = rundir.join("db.sock");
    let ctl = rundir.join("vswitchd.ctl");
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(&ctl);
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(bin("vswitchd"));
            c
        }
        None => Command::new(bin("vswitchd")),
    };
    let mut child = cmd
        .arg("--rundir")
        .arg(rundir)
        .arg("--db")
        .arg(db)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(logf.try_clone()?)
        .stderr(logf)
        .spawn()
        .context("spawning vswitchd")?;
    if !wait_until(Duration::from_secs(20), || sock.exists() && ctl.exists()) {
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "vswitchd did not create {}; log:\n{}",
            sock.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    Ok(child)
}

impl Switch {
    /// Starts vswitchd and waits until its DB socket answers.
    pub fn start() -> Result<Switch> {
        let rundir = tempfile::Builder::new().prefix("ferrovs-test-").tempdir()?;
        let db = rundir.path().join("conf.db");
        Self::start_in(rundir, db)
    }

    /// Starts vswitchd on an existing run directory and DB (restarts).
    pub fn start_in(rundir: tempfile::TempDir, db: PathBuf) -> Result<Switch> {
        Self::launch(rundir, db, None)
    }

    /// Starts vswitchd inside network namespace `ns`, on a new private run
    /// directory whose name begins with `prefix`.
    pub fn start_in_netns(ns: &Netns, prefix: &str) -> Result<Switch> {
        let rundir = tempfile::Builder::new().prefix(prefix).tempdir()?;
        let db = rundir.path().join("conf.db");
        Self::launch(rundir, db, Some(&ns.name))
    }

    fn launch(rundir: tempfile::TempDir, db: PathBuf, netns: Option<&str>) -> Result<Switch> {
        let log = rundir.path().join("vswitchd.log");
        let child = spawn_vswitchd(rundir.path(), &db, &log, netns)?;
        Ok(Switch {
            devices: TapCleanup::new(rundir.path(), &child),
            rundir,
            db,
            proc: ChildGuard(Some(child)),
            log,
            netns: netns.map(str::to_string),
        })
    }

    /// Kills vswitchd (SIGKILL) and starts it again on the same run
    /// directory and DB.
    pub fn kill_and_restart(mut self) -> Result<Switch> {
        self.kill_and_restart_in_place()?;
        Ok(self)
    }

    /// `kill -9` of vswitchd, then a new one on the same run directory, DB
    /// and namespace, in place (for switches that others refer to).
    pub fn kill_and_restart_in_place(&mut self) -> Result<()> {
        self.proc.kill();
        let child = spawn_vswitchd(
            self.rundir.path(),
            &self.db,
            &self.log,
            self.netns.as_deref(),
        )?;
        self.devices = TapCleanup::new(self.rundir.path(), &child);
        self.proc = ChildGuard(Some(child));
        Ok(())
    }

    pub fn rundir(&self) -> &Path {
        self.rundir.path()
    }

    /// The daemon's log so far (for assertion messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn tool(&self, name: &str, args: &[&str]) -> Result<String> {
        let out = run_output(
            Command::new(bin(name))
                .env("FERROVS_RUNDIR", self.rundir())
                .args(args),
        )?;
        if !out.status.success() {
            bail!(
                "{name} {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs ferrovs's `vsctl` against this switch.
    pub fn vsctl(&self, args: &[&str]) -> Result<String> {
        self.tool("vsctl", args)
    }

    /// Runs ferrovs's `ofctl` against this switch.
    pub fn ofctl(&self, args: &[&str]) -> Result<String> {
        self.tool("ofctl", args)
    }

    /// Runs ferrovs's `appctl` against this switch.
    pub fn appctl(&self, args: &[&str]) -> Result<String> {
        self.tool("appctl", args)
    }

    /// Runs a tool and returns its raw output (for error-path tests).
    pub fn tool_output(&self, name: &str, args: &[&str]) -> Result<Output> {
        run_output(
            Command::new(bin(name))
                .env("FERROVS_RUNDIR", self.rundir())
                .args(args),
        )
    }

    /// `unix:RUNDIR/db.sock`, for stock OVS clients.
    pub fn db_remote(&self) -> String {
        format!("unix:{}", self.rundir().join("db.sock").display())
    }

    /// True while the daemon process is alive.
    pub fn alive(&mut self) -> bool {
        matches!(self.proc.child().try_wait(), Ok(None))
    }
}

/// Parses `iperf3 -J` output into bits per second received.
pub fn iperf3_bps(json: &str) -> Result<f64> {
    let v: serde_json::Value = serde_json::from_str(json).context("iperf3 JSON")?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .or_else(|| v["end"]["sum"]["bits_per_second"].as_f64())
        .context("no bits_per_second in iperf3 output")
}

/// Runs an iperf3 TCP test from `client` to `server` (`server_ip`) for
/// `secs` seconds and returns the received bits per second.
pub fn iperf3_tcp(server: &Netns, client: &Netns, server_ip: &str, secs: u32) -> Result<f64> {
    let port = 5201 + (std::process::id() % 500) as u16 + (unique_tag().len() as u16);
    let p = port.to_string();
    let _srv = server.spawn_server(&["iperf3", "-s", "-1", "-p", &p], Proto::Tcp, port)?;
    let t = secs.to_string();
    let out = client.exec_output(&[
        "timeout", "30", "iperf3", "-c", server_ip, "-p", &p, "-t", &t, "-J",
    ])?;
    if !out.status.success() {
        bail!(
            "iperf3 client failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    iperf3_bps(&String::from_utf8_lossy(&out.stdout))
}

/// The guest kernel and initramfs for QEMU tests, built once per machine by
/// `tests/scripts/build-guest.sh` (Debian's kernel and busybox).
pub fn guest_image() -> Result<PathBuf> {
    let dir = PathBuf::from(
        std::env::var("FERROVS_GUEST_DIR").unwrap_or_else(|_| "/var/tmp/ferrovs-guest".into()),
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-guest.sh");
    // Serialise concurrent builders with a lock file.
    std::fs::create_dir_all(&dir)?;
    let lock = std::fs::File::create(dir.join(".lock"))?;
    // SAFETY: flock on a file descriptor we own; blocks until exclusive.
    unsafe {
        libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX);
    }
    run(Command::new("bash").arg(script).arg(&dir))?;
    drop(lock);
    Ok(dir)
}

/// How a QEMU guest reaches its vhost-user socket.
pub enum VhostSocket<'a> {
    /// The switch listens (`dpdkvhostuser`); QEMU connects, and reconnects
    /// every second if the switch goes away.
    SwitchIsServer(&'a Path),
    /// QEMU listens (`dpdkvhostuserclient`); the switch connects.
    QemuIsServer(&'a Path),
}

/// A Linux guest under QEMU (TCG) whose virtio-net is a vhost-user port.
pub struct QemuGuest {
    pub proc: ChildGuard,
    pub serial: PathBuf,
    _dir: tempfile::TempDir,
}

impl QemuGuest {
    /// Boots the test guest; `args` are the `fv.*` kernel parameters
    /// (see build-guest.sh).
    pub fn boot(sock: VhostSocket<'_>, mac: &str, args: &str) -> Result<QemuGuest> {
        Self::boot_with(sock, mac, args, "")
    }

    /// [`QemuGuest::boot`] with `device_opts` appended to the
    /// `-device virtio-net-pci` options (e.g. `,packed=on`).
    pub fn boot_with(
        sock: VhostSocket<'_>,
        mac: &str,
        args: &str,
        device_opts: &str,
    ) -> Result<QemuGuest> {
        let img = guest_image()?;
        let dir = tempfile::Builder::new().prefix("ferrovs-qemu-").tempdir()?;
        let serial = dir.path().join("serial.log");
        let chardev = match sock {
            VhostSocket::SwitchIsServer(p) => {
                format!("socket,id=chr0,path={},reconnect=1", p.display())
            }
            VhostSocket::QemuIsServer(p) => {
                format!("socket,id=chr0,path={},server=on,wait=off", p.display())
            }
        };
        let append = format!("console=ttyS0 panic=-1 edd=off quiet {args}");
        let child = Command::new("qemu-system-x86_64")
            .args(["-machine", "pc,accel=tcg", "-m", "256M", "-smp", "1"])
            .args([
                "-object",
                "memory-backend-memfd,id=mem0,size=256M,share=on",
                "-numa",
                "node,memdev=mem0",
            ])
            .arg("-kernel")
            .arg(img.join("vmlinuz"))
            .arg("-initrd")
            .arg(img.join("initramfs.gz"))
            .args(["-append", &append])
            .args(["-display", "none", "-no-reboot", "-monitor", "none"])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .args([
                "-chardev",
                &chardev,
                "-netdev",
                "vhost-user,id=net0,chardev=chr0",
            ])
            .args([
                "-device",
                &format!("virtio-net-pci,netdev=net0,mac={mac},romfile=,vectors=0{device_opts}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning qemu-system-x86_64")?;
        Ok(QemuGuest {
            proc: ChildGuard(Some(child)),
            serial,
            _dir: dir,
        })
    }

    /// What the guest printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.serial).unwrap_or_default()
    }

    /// Waits until the guest printed a line containing `FV-RESULT <what>`;
    /// returns that line. Fails early on a `-fail` result.
    pub fn wait_result(&self, what: &str, timeout: Duration) -> Result<String> {
        let needle = format!("FV-RESULT {what}");
        let mut found = None;
        let ok = wait_until(timeout, || {
            let out = self.output();
            if let Some(l) = out.lines().find(|l| l.contains(&needle)) {
                found = Some(l.to_string());
                return true;
            }
            out.contains("-fail")
        });
        match found {
            Some(l) if ok => Ok(l),
            _ => bail!(
                "guest did not report `{what}` in {timeout:?}; serial:\n{}",
                self.output()
            ),
        }
    }
}

/// Stock `ovsdb-server` and `ovs-vswitchd --enable-dummy=override` (the
/// userspace datapath with dummy devices, as OVS's own tests run it) in a
/// private directory: the oracle that differential tests compare ferrovs
/// with. Both daemons are stopped, by the pids read from their pidfiles,
/// on drop.
pub struct StockOvs {
    dir: tempfile::TempDir,
    /// ovsdb-server's, then ovs-vswitchd's.
    pids: Vec<u32>,
    netns: Option<String>,
}

impl StockOvs {
    /// Starts both daemons in a new directory whose name begins with
    /// `prefix`.
    pub fn start(prefix: &str) -> Result<StockOvs> {
        Self::launch(prefix, None)
    }

    /// Starts both daemons with real (system) devices instead of dummy
    /// ones, ovs-vswitchd inside namespace `netns` (one stock userspace
    /// instance per namespace: it creates the TAP `ovs-netdev`).
    pub fn start_system(prefix: &str, netns: &str) -> Result<StockOvs> {
        Self::launch(prefix, Some(netns))
    }

    fn launch(prefix: &str, netns: Option<&str>) -> Result<StockOvs> {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
        let mut ovs = StockOvs {
            dir,
            pids: Vec::new(),
            netns: netns.map(str::to_string),
        };
        let d = ovs.dir.path().to_path_buf();
        let db = d.join("conf.db");
        run(ovs
            .cmd("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg("/usr/share/openvswitch/vswitch.ovsschema"))?;
        run(ovs
            .cmd("ovsdb-server")
            .arg(&db)
            .arg(format!("--remote=punix:{}", d.join("db.sock").display()))
            .arg(format!("--pidfile={}", d.join("ovsdb.pid").display()))
            .arg(format!("--log-file={}", d.join("ovsdb.log").display()))
            .arg("--detach"))?;
        ovs.pids.push(read_pid(&d.join("ovsdb.pid"))?);
        let pid = ovs.spawn_vswitchd()?;
        ovs.pids.push(pid);
        Ok(ovs)
    }

    /// Starts ovs-vswitchd (detached) and returns its pid.
    fn spawn_vswitchd(&self) -> Result<u32> {
        let d = self.dir.path();
        let mut vswitchd = match &self.netns {
            None => {
                let mut c = self.cmd("ovs-vswitchd");
                c.arg("--enable-dummy=override");
                c
            }
            Some(ns) => {
                let mut c = self.cmd("ip");
                c.args(["netns", "exec", ns, "ovs-vswitchd"]);
                c
            }
        };
        run(vswitchd
            .arg(format!("unix:{}", d.join("db.sock").display()))
            .arg(format!("--pidfile={}", d.join("vswitchd.pid").display()))
            .arg(format!("--log-file={}", d.join("vswitchd.log").display()))
            .arg("--detach"))?;
        read_pid(&d.join("vswitchd.pid"))
    }

    /// `kill -9` of ovs-vswitchd; waits until it is gone.
    pub fn kill_vswitchd(&self) -> Result<()> {
        let pid = self.pids[1];
        // SAFETY: kill has no memory-safety preconditions; the pid is the
        // daemon this harness started.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
        if !wait_until(Duration::from_secs(5), || !self.alive()) {
            bail!("ovs-vswitchd {pid} survived SIGKILL");
        }
        Ok(())
    }

    /// `kill -9` of ovs-vswitchd (if it still runs), then a new one on the
    /// same DB and in the same namespace; ovsdb-server keeps running.
    pub fn kill_and_restart_vswitchd(&mut self) -> Result<()> {
        self.kill_vswitchd()?;
        self.pids[1] = self.spawn_vswitchd()?;
        Ok(())
    }

    /// ovs-vswitchd's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("vswitchd.log")).unwrap_or_default()
    }

    /// `unix:DIR/db.sock`, the DB remote for clients such as ovn-controller.
    pub fn db_remote(&self) -> String {
        format!("unix:{}", self.dir.path().join("db.sock").display())
    }

    /// True while ovs-vswitchd is alive.
    pub fn alive(&self) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(self.pids[1] as i32, 0) == 0 }
    }

    /// The private directory (OVS_RUNDIR, OVS_LOGDIR and OVS_DBDIR).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A command for an OVS tool with the OVS_* directories set.
    pub fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        let d = self.dir.path();
        c.env("OVS_RUNDIR", d)
            .env("OVS_LOGDIR", d)
            .env("OVS_DBDIR", d);
        c
    }

    /// Stock `ovs-vsctl ARGS` against this instance's DB.
    pub fn vsctl(&self, args: &[&str]) -> Result<String> {
        let db = format!("--db=unix:{}", self.dir.path().join("db.sock").display());
        run(self.cmd("ovs-vsctl").arg(db).arg("--timeout=20").args(args))
    }

    /// Stock `ovs-appctl ARGS` against this instance's ovs-vswitchd.
    pub fn appctl(&self, args: &[&str]) -> Result<String> {
        let pid = self.pids[1];
        let ctl = self.dir.path().join(format!("ovs-vswitchd.{pid}.ctl"));
        run(self.cmd("ovs-appctl").arg("-t").arg(ctl).args(args))
    }

    /// The OpenFlow target of bridge `br` (`unix:DIR/BR.mgmt`).
    pub fn mgmt(&self, br: &str) -> String {
        format!(
            "unix:{}",
            self.dir.path().join(format!("{br}.mgmt")).display()
        )
    }
}

/// `vsctl` arguments that create bridge `br` (`fail_mode=secure`) with the
/// dummy ports `ports`, OpenFlow port numbers 1, 2, … in their order.
pub fn dummy_bridge_args(br: &str, ports: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["add-br", br, "--", "set", "bridge", br, "fail_mode=secure"]
        .map(String::from)
        .to_vec();
    for (i, p) in ports.iter().enumerate() {
        args.extend(
            [
                "--",
                "add-port",
                br,
                p,
                "--",
                "set",
                "Interface",
                p,
                "type=dummy",
            ]
            .map(String::from),
        );
        args.push(format!("ofport_request={}", i + 1));
    }
    args
}

/// Stock OVS (its dummy datapath; its run directory named after `prefix`)
/// and ferrovs, each with the bridge of [`dummy_bridge_args`]: the same
/// ports and numbers on both, for tests that compare the two pipelines.
pub fn dummy_pair(prefix: &str, br: &str, ports: &[&str]) -> Result<(StockOvs, Switch)> {
    let args = dummy_bridge_args(br, ports);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ovs = StockOvs::start(prefix)?;
    let mut ovs_args = args.clone();
    ovs_args.extend(["--", "set", "bridge", br, "datapath_type=dummy"]);
    ovs.vsctl(&ovs_args)?;
    let fv = Switch::start()?;
    fv.vsctl(&args)?;
    Ok((ovs, fv))
}

impl Drop for StockOvs {
    fn drop(&mut self) {
        for pid in self.pids.iter().rev() {
            // SAFETY: kill has no memory-safety preconditions; the pids are
            // the daemons this harness started (read from their pidfiles).
            unsafe {
                libc::kill(*pid as i32, libc::SIGTERM);
            }
        }
        // Only one stock userspace instance fits in a namespace (it creates
        // the TAP `ovs-netdev`): wait until these are gone, so that the
        // next test's instance does not meet them.
        wait_until(Duration::from_secs(5), || {
            self.pids.iter().all(|pid| {
                // SAFETY: signal 0 only checks that the process exists.
                unsafe { libc::kill(*pid as i32, 0) != 0 }
            })
        });
    }
}

fn read_pid(p: &Path) -> Result<u32> {
    let s = std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?;
    Ok(s.trim().parse()?)
}

/// Sends OpenFlow 1.3 `msg` after a hello on the switch socket `sock`,
/// then a barrier; returns the (type, code) of the first error received
/// before the barrier reply, if any.
pub fn openflow13_error(sock: &Path, msg: &[u8]) -> Result<Option<(u16, u16)>> {
    openflow_error(4, sock, msg)
}

/// [`openflow13_error`] for OpenFlow wire version `version` (4 = 1.3,
/// 6 = 1.5): `msg` must carry that version in its header.
pub fn openflow_error(version: u8, sock: &Path, msg: &[u8]) -> Result<Option<(u16, u16)>> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(&[version, 0, 0, 8, 0, 0, 0, 1])?;
    s.write_all(msg)?;
    s.write_all(&[version, 20, 0, 8, 0, 0, 0, 9])?;
    let mut err = None;
    loop {
        let mut h = [0u8; 8];
        s.read_exact(&mut h)?;
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let mut body = vec![0u8; len.saturating_sub(8)];
        s.read_exact(&mut body)?;
        match h[1] {
            1 if err.is_none() && body.len() >= 4 => {
                err = Some((
                    u16::from_be_bytes([body[0], body[1]]),
                    u16::from_be_bytes([body[2], body[3]]),
                ));
            }
            21 => return Ok(err),
            _ => {}
        }
    }
}

/// Lower-case hex of `b`, as `netdev-dummy/receive` takes a frame.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Stock `ovs-ofctl -O OpenFlow13 dump-tables` of `target` parsed: table → (lookup, matched), for every
/// table listed (stock ovs-ofctl prints "table N: ditto" or "tables
/// A...B: ditto" for tables equal to the one before; those are expanded).
pub fn table_counts(target: &str) -> Result<std::collections::BTreeMap<u8, (u64, u64)>> {
    let text = run(Command::new("ovs-ofctl").args(["-O", "OpenFlow13", "dump-tables", target]))?;
    let mut out = std::collections::BTreeMap::new();
    let mut cur: Option<u8> = None;
    let mut last = (0, 0);
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("tables ") {
            let (range, _) = rest.split_once(':').context("ditto line")?;
            let (a, b) = range.split_once("...").context("ditto range")?;
            for t in a.parse::<u8>()?..=b.parse::<u8>()? {
                out.insert(t, last);
            }
        } else if let Some(rest) = line.strip_prefix("table ") {
            let id = rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .context("table id")?;
            cur = Some(id.parse()?);
            // "table N: ditto": the same counters as the table before.
            if line.ends_with("ditto") {
                out.insert(id.parse()?, last);
            }
        } else if line.starts_with("active=") {
            let num = |name: &str| -> Result<u64> {
                let v = line
                    .split(", ")
                    .find_map(|kv| kv.strip_prefix(name))
                    .with_context(|| format!("{name} in {line}"))?;
                Ok(v.trim().parse()?)
            };
            last = (num("lookup=")?, num("matched=")?);
            out.insert(cur.context("stats before a table")?, last);
        }
    }
    Ok(out)
}

/// `n_packets` of the table-1 rules by cookie (summed over the rules that
/// share one), as stock ovs-ofctl dumps them from OpenFlow target `target`.
pub fn table1_counters(target: &str) -> Result<std::collections::BTreeMap<u64, u64>> {
    let text =
        run(Command::new("ovs-ofctl").args(["-O", "OpenFlow13", "dump-flows", target, "table=1"]))?;
    let mut out = std::collections::BTreeMap::new();
    for l in text.lines() {
        let field = |name: &str| {
            l.split(", ")
                .flat_map(|p| p.split(' '))
                .find_map(|p| p.trim().strip_prefix(name))
                .map(|v| v.trim_end_matches(','))
                .map(String::from)
        };
        let (Some(c), Some(n)) = (field("cookie="), field("n_packets=")) else {
            continue;
        };
        *out.entry(u64::from_str_radix(c.trim_start_matches("0x"), 16)?)
            .or_insert(0) += n.parse::<u64>()?;
    }
    Ok(out)
}

/// Injects `frame` on `port` with `inject` and returns the cookie of the
/// one table-1 rule of `target` whose counter moved.
pub fn rule_hit(
    target: &str,
    inject: &dyn Fn(&str, &str) -> Result<String>,
    port: &str,
    frame: &[u8],
) -> Result<u64> {
    let before = table1_counters(target)?;
    inject(port, &hex(frame))?;
    let mut moved = Vec::new();
    // Counters of cached flows reach the rules on the next revalidation.
    wait_until(Duration::from_secs(5), || {
        let Ok(now) = table1_counters(target) else {
            return false;
        };
        moved = now
            .iter()
            .filter(|(c, n)| before.get(c).copied().unwrap_or(0) != **n)
            .map(|(c, _)| *c)
            .collect();
        !moved.is_empty()
    });
    match moved.as_slice() {
        [c] => Ok(*c),
        other => bail!("rules moved after one packet: {other:?}"),
    }
}

/// Bytes of a hex string (whitespace ignored).
pub fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}
