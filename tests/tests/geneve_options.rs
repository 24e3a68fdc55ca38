//! Geneve options as `tun_metadata` (OVN's option class 0x0102, type
//! 0x80, 4 bytes, critical) between ferrovs and stock Open vSwitch: two
//! "hypervisors" in namespaces joined by an underlay veth, set up as in
//! `tunnels_forwarding.rs`. Stock OVS sets `tun_metadata0` on what it
//! sends; ferrovs accepts the critical option only while its bridge's TLV
//! map knows it, and a capture checks the option bytes on the wire.
//!
//! Run under the e2e lock: `flock /tmp/ferrovs-e2e.lock cargo test -p
//! ferrovs-tests --test geneve_options`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferrovs_tests::*;

/// ferrovs's vswitchd running inside `ns`.
fn switch_in(ns: &Netns) -> Result<Switch> {
    let rundir = tempfile::Builder::new()
        .prefix("ferrovs-geneve-")
        .tempdir()?;
    let db = rundir.path().join("conf.db");
    let log = rundir.path().join("vswitchd.log");
    let logf = std::fs::File::create(&log)?;
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(bin("vswitchd"))
        .arg("--rundir")
        .arg(rundir.path())
        .arg("--db")
        .arg(&db)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(logf.try_clone()?)
        .stderr(logf)
        .spawn()
        .context("spawning vswitchd")?;
    let sw = Switch {
        rundir,
        db,
        proc: ChildGuard(Some(child)),
        log,
    };
    let sock = sw.rundir().join("db.sock");
    if !wait_until(Duration::from_secs(20), || sock.exists()) {
        bail!("vswitchd did not start; log:\n{}", sw.log_text());
    }
    Ok(sw)
}

/// Stock Open vSwitch (userspace datapath) with its vswitchd in `ns`.
struct OvsIn {
    dir: tempfile::TempDir,
}

impl OvsIn {
    fn start(ns: &Netns) -> Result<OvsIn> {
        let dir = tempfile::Builder::new()
            .prefix("ferrovs-geneve-ovs-")
            .tempdir()?;
        let d = dir.path().to_str().context("path")?.to_string();
        let env = |c: &mut Command| {
            c.env("OVS_RUNDIR", &d)
                .env("OVS_LOGDIR", &d)
                .env("OVS_DBDIR", &d);
        };
        run(Command::new("ovsdb-tool").args([
            "create",
            &format!("{d}/conf.db"),
            "/usr/share/openvswitch/vswitch.ovsschema",
        ]))?;
        let mut c = Command::new("ovsdb-server");
        env(&mut c);
        c.args([
            &format!("{d}/conf.db"),
            &format!("--remote=punix:{d}/db.sock"),
            &format!("--pidfile={d}/ovsdb-server.pid"),
            &format!("--log-file={d}/ovsdb-server.log"),
            "--detach",
        ]);
        run(&mut c)?;
        let ovs = OvsIn { dir };
        ovs.vsctl(&["--no-wait", "init"])?;
        let mut c = Command::new("ip");
        env(&mut c);
        c.args(["netns", "exec", &ns.name, "ovs-vswitchd"]).args([
            &format!("unix:{d}/db.sock"),
            &format!("--pidfile={d}/ovs-vswitchd.pid"),
            &format!("--log-file={d}/ovs-vswitchd.log"),
            "--detach",
        ]);
        run(&mut c)?;
        Ok(ovs)
    }

    fn d(&self) -> &Path {
        self.dir.path()
    }

    fn vsctl(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ovs-vsctl")
            .arg(format!("--db=unix:{}/db.sock", self.d().display()))
            .args(args))
    }

    fn appctl(&self, args: &[&str]) -> Result<String> {
        let pid = std::fs::read_to_string(self.d().join("ovs-vswitchd.pid"))?;
        let ctl = self.d().join(format!("ovs-vswitchd.{}.ctl", pid.trim()));
        run(Command::new("ovs-appctl").arg("-t").arg(ctl).args(args))
    }
}

impl Drop for OvsIn {
    fn drop(&mut self) {
        for p in ["ovs-vswitchd.pid", "ovsdb-server.pid"] {
            if let Ok(pid) = std::fs::read_to_string(self.d().join(p))
                && let Ok(pid) = pid.trim().parse::<i32>()
            {
                // SAFETY: kill(2) on a process this test started.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        }
    }
}

/// The switch of one hypervisor: ferrovs or stock OVS.
enum Sw {
    Ferrovs(Switch),
    Ovs(OvsIn),
}

impl Sw {
    fn vsctl(&self, args: &[&str]) -> Result<String> {
        match self {
            Sw::Ferrovs(s) => s.vsctl(args),
            Sw::Ovs(o) => o.vsctl(args),
        }
    }

    fn add_flow(&self, br: &str, flow: &str) -> Result<()> {
        match self {
            Sw::Ferrovs(s) => s.ofctl(&["add-flow", br, flow]).map(|_| ()),
            Sw::Ovs(o) => {
                let mgmt = format!("unix:{}/{br}.mgmt", o.d().display());
                run(Command::new("ovs-ofctl").args(["add-flow", &mgmt, flow])).map(|_| ())
            }
        }
    }
}

/// One hypervisor: its namespace, its VM's namespace, its switch.
struct Hv {
    ns: Netns,
    vm: Netns,
    sw: Sw,
    /// Underlay bridge, integration bridge, tunnel port names.
    phy: String,
    int: String,
    tnl: String,
    vport: String,
    /// Underlay address (10.99.0.N) and VM address (192.168.77.N).
    n: u8,
}

/// Two namespaces `<t>a`, `<t>b` joined by the underlay veth `<t>ua` /
/// `<t>ub`, each with a VM namespace on a veth `<t>va` / `<t>vb`.
fn hypervisor(t: &str, side: char, n: u8, ovs: bool) -> Result<Hv> {
    let ns = Netns::new(&format!("{t}{side}"))?;
    let vm = Netns::new(&format!("{t}{side}v"))?;
    let vport = format!("{t}v{side}");
    ns.exec(&[
        "ip", "link", "add", &vport, "type", "veth", "peer", "name", "eth0", "netns", &vm.name,
    ])?;
    ns.exec(&["ip", "link", "set", &vport, "up"])?;
    let vm_ip = format!("192.168.77.{n}/24");
    vm.exec(&["ip", "addr", "add", &vm_ip, "dev", "eth0"])?;
    // Room for the outer headers on the 1500-byte underlay.
    vm.exec(&["ip", "link", "set", "eth0", "mtu", "1400", "up"])?;
    if ovs {
        // Stock OVS's userspace datapath forwards partial checksums as
        // they are: the VMs must finish them (shared/README.md).
        vm.exec(&["ethtool", "-K", "eth0", "tx", "off"])?;
    }
    let sw = if ovs {
        Sw::Ovs(OvsIn::start(&ns)?)
    } else {
        Sw::Ferrovs(switch_in(&ns)?)
    };
    Ok(Hv {
        ns,
        vm,
        sw,
        phy: format!("{t}p{side}"),
        int: format!("{t}i{side}"),
        tnl: format!("{t}x{side}"),
        vport,
        n,
    })
}

fn underlay_link(t: &str, a: &Hv, b: &Hv) -> Result<()> {
    let (ua, ub) = (format!("{t}ua"), format!("{t}ub"));
    ip(&[
        "link", "add", &ua, "netns", &a.ns.name, "type", "veth", "peer", "name", &ub, "netns",
        &b.ns.name,
    ])?;
    a.ns.exec(&["ip", "link", "set", &ua, "up"])?;
    b.ns.exec(&["ip", "link", "set", &ub, "up"])?;
    Ok(())
}

impl Hv {
    /// Underlay bridge with the underlay veth `uplink`, the local address
    /// on its internal port; integration bridge with the VM (OpenFlow port
    /// 1) and a tunnel port (OpenFlow port 2) of `kind` with `opts`.
    fn configure(&self, uplink: &str, kind: &str, opts: &[&str]) -> Result<()> {
        let netdev = matches!(self.sw, Sw::Ovs(_));
        for br in [&self.phy, &self.int] {
            if netdev {
                self.sw.vsctl(&[
                    "add-br",
                    br,
                    "--",
                    "set",
                    "bridge",
                    br,
                    "datapath_type=netdev",
                ])?;
            } else {
                self.sw.vsctl(&["add-br", br])?;
            }
        }
        self.sw.vsctl(&["add-port", &self.phy, uplink])?;
        if !wait_until(Duration::from_secs(10), || {
            self.ns.exec(&["ip", "link", "show", &self.phy]).is_ok()
        }) {
            bail!("{} never appeared", self.phy);
        }
        self.ns.exec(&["ip", "link", "set", &self.phy, "up"])?;
        let addr = format!("10.99.0.{}/24", self.n);
        self.ns
            .exec(&["ip", "addr", "add", &addr, "dev", &self.phy])?;
        let addr6 = format!("fd00:99::{}/64", self.n);
        self.ns
            .exec(&["ip", "addr", "add", &addr6, "dev", &self.phy, "nodad"])?;
        let vport = self.vport();
        self.sw.vsctl(&[
            "add-port",
            &self.int,
            &vport,
            "--",
            "set",
            "Interface",
            &vport,
            "ofport_request=1",
        ])?;
        let ty = format!("type={kind}");
        let mut args = vec![
            "add-port",
            &self.int,
            &self.tnl,
            "--",
            "set",
            "Interface",
            &self.tnl,
            &ty,
            "ofport_request=2",
        ];
        args.extend_from_slice(opts);
        self.sw.vsctl(&args)?;
        Ok(())
    }

    fn vport(&self) -> String {
        self.vport.clone()
    }

    fn vm_ip(&self) -> String {
        format!("192.168.77.{}", self.n)
    }
}

fn diag(h: &Hv) -> String {
    match &h.sw {
        Sw::Ferrovs(s) => {
            let flows = s.appctl(&["dpctl/dump-flows"]).unwrap_or_default();
            let neigh = s.appctl(&["tnl/neigh/show"]).unwrap_or_default();
            let routes = s.appctl(&["ovs/route/show"]).unwrap_or_default();
            let log = s.log_text();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            format!(
                "{flows}\n{neigh}\n{routes}\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        }
        Sw::Ovs(o) => o.appctl(&["dpctl/dump-flows"]).unwrap_or_default(),
    }
}

/// Captures `count` packets that `filter` selects on the underlay veth of `h` into
/// a pcap file while `traffic` runs; returns the file.
fn capture(h: &Hv, dev: &str, filter: &str, count: u32, traffic: impl FnOnce()) -> Result<Vec<u8>> {
    let file = tempfile::Builder::new().suffix(".pcap").tempfile()?;
    let path = file.path().to_str().context("path")?.to_string();
    let c = count.to_string();
    let mut dump = h.ns.spawn(&[
        "timeout", "20", "tcpdump", "-i", dev, "-n", "-U", "-c", &c, "-w", &path, filter,
    ])?;
    std::thread::sleep(Duration::from_millis(800));
    traffic();
    let _ = dump.child().wait();
    Ok(std::fs::read(&path)?)
}

const OVN_OPTION: &str = "{class=0x102,type=0x80,len=4}->tun_metadata0";

/// Geneve payloads (UDP data) of a pcap, hex, one line per packet.
fn geneve_headers(pcap: &[u8]) -> Result<Vec<String>> {
    let f = tempfile::Builder::new().suffix(".pcap").tempfile()?;
    std::fs::write(f.path(), pcap)?;
    let script = r#"
import sys
from scapy.all import rdpcap, UDP
for p in rdpcap(sys.argv[1]):
    print(bytes(p[UDP].payload)[:16].hex())
"#;
    let out = run(Command::new("python3").args(["-c", script]).arg(f.path()))?;
    Ok(out.lines().map(str::to_string).collect())
}

fn decap_drops(s: &Switch) -> String {
    s.appctl(&["tnl/drops/show"]).unwrap_or_default()
}

/// Stock OVS puts OVN's critical option on every packet it tunnels to
/// ferrovs. ferrovs, whose bridge maps that option to tun_metadata0,
/// decapsulates them and the VMs ping; without the mapping it drops them
/// as carrying an unknown critical option (counted), and adding the map
/// back restores the traffic.
#[test]
fn stock_ovs_geneve_option_is_accepted_only_while_ferrovs_maps_it() -> Result<()> {
    require!("ovs-vswitchd", "ovs-ofctl", "tcpdump", "python3");
    let t = "geneve";
    let a = hypervisor(t, 'a', 1, false)?;
    let b = hypervisor(t, 'b', 2, true)?;
    a.vm.exec(&["ethtool", "-K", "eth0", "tx", "off"])?;
    underlay_link(t, &a, &b)?;
    a.configure(
        &format!("{t}ua"),
        "geneve",
        &["options:remote_ip=10.99.0.2", "options:key=99"],
    )?;
    b.configure(
        &format!("{t}ub"),
        "geneve",
        &["options:remote_ip=10.99.0.1", "options:key=99"],
    )?;
    let Sw::Ovs(o) = &b.sw else {
        bail!("B is stock OVS")
    };
    let Sw::Ferrovs(fa) = &a.sw else {
        bail!("A is ferrovs")
    };
    o.appctl(&["ovs/route/add", "10.99.0.0/24", &b.phy])?;
    let mgmt = format!("unix:{}/{}.mgmt", o.d().display(), b.int);
    run(Command::new("ovs-ofctl").args(["add-tlv-map", &mgmt, OVN_OPTION]))?;
    run(Command::new("ovs-ofctl").args(["del-flows", &mgmt]))?;
    b.sw.add_flow(
        &b.int,
        "in_port=1,actions=set_field:0x1234->tun_metadata0,output:2",
    )?;
    b.sw.add_flow(&b.int, "in_port=2,actions=output:1")?;

    fa.ofctl(&["add-tlv-map", &a.int, OVN_OPTION])?;
    if !a.vm.ping_eventually(&b.vm_ip(), Duration::from_secs(30)) {
        bail!(
            "no ping with the option mapped\nA:\n{}\nB:\n{}",
            diag(&a),
            diag(&b)
        );
    }
    assert!(a.vm.ping(&b.vm_ip(), 5), "replies lost\n{}", diag(&a));
    assert!(
        decap_drops(fa).contains("unknown_critical_option=0"),
        "{}",
        decap_drops(fa)
    );

    // What OVS sent: Geneve with the C bit, 2 words of options, VNI 99,
    // then class 0x0102, type 0x80, length 1 word, 0x00001234.
    let pcap = capture(
        &a,
        &format!("{t}ua"),
        "udp dst port 6081 and src host 10.99.0.2",
        2,
        || {
            let _ = b.vm.ping(&a.vm_ip(), 2);
        },
    )?;
    let hdrs = geneve_headers(&pcap)?;
    assert!(!hdrs.is_empty(), "nothing captured");
    for h in &hdrs {
        assert_eq!(h, "02406558000063000102800100001234");
    }

    // Without the mapping, the critical option is unknown: dropped.
    fa.ofctl(&["del-tlv-map", &a.int])?;
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !a.vm.ping(&b.vm_ip(), 3),
        "replies carry an unmapped critical option: they must be dropped"
    );
    assert!(
        !decap_drops(fa).contains("unknown_critical_option=0"),
        "{}",
        decap_drops(fa)
    );
    fa.ofctl(&["add-tlv-map", &a.int, OVN_OPTION])?;
    if !a.vm.ping_eventually(&b.vm_ip(), Duration::from_secs(10)) {
        bail!("no ping once the map is back\nA:\n{}", diag(&a));
    }
    Ok(())
}
