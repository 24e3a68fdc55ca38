//! Two "hypervisors" for the tunnel tests: each a network namespace running
//! its own switch (ferrovs, or stock Open vSwitch with the userspace
//! datapath), an underlay bridge owning the local tunnel address, an
//! integration bridge with a "VM" namespace, and an underlay veth between
//! them, configured as Open vSwitch's userspace-tunnelling guide says.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::*;

/// ferrovs's vswitchd running inside `ns`.
pub fn switch_in(ns: &Netns) -> Result<Switch> {
    Switch::start_in_netns(ns, "ferrovs-tunhost-")
}

/// Stock Open vSwitch (userspace datapath) with its vswitchd in `ns`.
pub struct OvsIn {
    pub dir: tempfile::TempDir,
}

impl OvsIn {
    pub fn start(ns: &Netns) -> Result<OvsIn> {
        let dir = tempfile::Builder::new()
            .prefix("ferrovs-tunhost-ovs-")
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

    pub fn d(&self) -> &Path {
        self.dir.path()
    }

    pub fn vsctl(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ovs-vsctl")
            .arg(format!("--db=unix:{}/db.sock", self.d().display()))
            .args(args))
    }

    pub fn appctl(&self, args: &[&str]) -> Result<String> {
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
pub enum Sw {
    Ferrovs(Switch),
    Ovs(OvsIn),
}

impl Sw {
    pub fn vsctl(&self, args: &[&str]) -> Result<String> {
        match self {
            Sw::Ferrovs(s) => s.vsctl(args),
            Sw::Ovs(o) => o.vsctl(args),
        }
    }

    pub fn add_flow(&self, br: &str, flow: &str) -> Result<()> {
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
pub struct Hv {
    pub ns: Netns,
    pub vm: Netns,
    pub sw: Sw,
    /// Underlay bridge, integration bridge, tunnel port names.
    pub phy: String,
    pub int: String,
    pub tnl: String,
    pub vport: String,
    /// Underlay address (10.99.0.N) and VM address (192.168.77.N).
    pub n: u8,
}

/// Two namespaces `<t>a`, `<t>b` joined by the underlay veth `<t>ua` /
/// `<t>ub`, each with a VM namespace on a veth `<t>va` / `<t>vb`.
pub fn hypervisor(t: &str, side: char, n: u8, ovs: bool) -> Result<Hv> {
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

pub fn underlay_link(t: &str, a: &Hv, b: &Hv) -> Result<()> {
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
    pub fn configure(&self, uplink: &str, kind: &str, opts: &[&str]) -> Result<()> {
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

    pub fn vport(&self) -> String {
        self.vport.clone()
    }

    pub fn vm_ip(&self) -> String {
        format!("192.168.77.{}", self.n)
    }
}
