//! Two "hypervisors" for the tunnel tests: each a network namespace running
//! its own switch (ferrovs, or stock Open vSwitch with the userspace
//! datapath), an underlay bridge owning the local tunnel address, an
//! integration bridge with a "VM" namespace, and an underlay veth between
//! them, configured as Open vSwitch's userspace-tunnelling guide says.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::*;

/// ferrovs's vswitchd running inside `ns`.
pub fn switch_in(ns: &Netns) -> Result<Switch> {
    Switch::start_in_netns(ns, "ferrovs-tunhost-")
}

/// The switch of one hypervisor: ferrovs or stock OVS (userspace datapath).
pub enum Sw {
    Ferrovs(Switch),
    Ovs(StockOvs),
}

impl Sw {
    /// ferrovs's vswitchd, or stock Open vSwitch (`ovs`), inside `ns`.
    pub fn start_in(ns: &Netns, ovs: bool) -> Result<Sw> {
        Ok(if ovs {
            Sw::Ovs(StockOvs::start_system("ferrovs-tunhost-ovs-", &ns.name)?)
        } else {
            Sw::Ferrovs(switch_in(ns)?)
        })
    }

    pub fn vsctl(&self, args: &[&str]) -> Result<String> {
        match self {
            Sw::Ferrovs(s) => s.vsctl(args),
            Sw::Ovs(o) => o.vsctl(args),
        }
    }

    pub fn appctl(&self, args: &[&str]) -> Result<String> {
        match self {
            Sw::Ferrovs(s) => s.appctl(args),
            Sw::Ovs(o) => o.appctl(args),
        }
    }

    /// `ofctl CMD BR REST…` (ovs-ofctl, in OpenFlow 1.5, reaches stock OVS
    /// through `DIR/BR.mgmt`).
    pub fn ofctl(&self, cmd: &str, br: &str, rest: &[&str]) -> Result<String> {
        match self {
            Sw::Ferrovs(s) => {
                let mut args = vec![cmd, br];
                args.extend_from_slice(rest);
                s.ofctl(&args)
            }
            Sw::Ovs(o) => {
                let mgmt = o.mgmt(br);
                run(Command::new("ovs-ofctl")
                    .args(["-O", "OpenFlow15", cmd, &mgmt])
                    .args(rest))
            }
        }
    }

    pub fn add_flow(&self, br: &str, flow: &str) -> Result<()> {
        match self {
            Sw::Ferrovs(s) => s.ofctl(&["add-flow", br, flow]).map(|_| ()),
            Sw::Ovs(o) => {
                run(Command::new("ovs-ofctl").args(["add-flow", &o.mgmt(br), flow])).map(|_| ())
            }
        }
    }

    /// The run directory: where the bridges' `BR.mgmt` sockets are (what
    /// ovn-controller needs as `OVS_RUNDIR`).
    pub fn rundir(&self) -> &Path {
        match self {
            Sw::Ferrovs(s) => s.rundir(),
            Sw::Ovs(o) => o.dir(),
        }
    }

    /// `unix:…/db.sock` for OVSDB clients.
    pub fn db_remote(&self) -> String {
        match self {
            Sw::Ferrovs(s) => s.db_remote(),
            Sw::Ovs(o) => o.db_remote(),
        }
    }

    /// `kill -9` of the switch daemon (the DB server keeps running).
    pub fn kill(&mut self) -> Result<()> {
        match self {
            Sw::Ferrovs(s) => {
                s.proc.kill();
                Ok(())
            }
            Sw::Ovs(o) => o.kill_vswitchd(),
        }
    }

    /// `kill -9` of the switch daemon (if it still runs) and a restart on
    /// the same DB.
    pub fn kill_and_restart(&mut self) -> Result<()> {
        match self {
            Sw::Ferrovs(s) => s.kill_and_restart_in_place(),
            Sw::Ovs(o) => o.kill_and_restart_vswitchd(),
        }
    }

    pub fn alive(&mut self) -> bool {
        match self {
            Sw::Ferrovs(s) => s.alive(),
            Sw::Ovs(o) => o.alive(),
        }
    }

    pub fn log_text(&self) -> String {
        match self {
            Sw::Ferrovs(s) => s.log_text(),
            Sw::Ovs(o) => o.log_text(),
        }
    }

    pub fn is_ovs(&self) -> bool {
        matches!(self, Sw::Ovs(_))
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
    let sw = Sw::start_in(&ns, ovs)?;
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
    veth_between(&format!("{t}ua"), a, &format!("{t}ub"), b)
}

/// A veth `ua` in `a`'s namespace, `ub` in `b`'s, both up.
pub fn veth_between(ua: &str, a: &Hv, ub: &str, b: &Hv) -> Result<()> {
    ip(&[
        "link", "add", ua, "netns", &a.ns.name, "type", "veth", "peer", "name", ub, "netns",
        &b.ns.name,
    ])?;
    a.ns.exec(&["ip", "link", "set", ua, "up"])?;
    b.ns.exec(&["ip", "link", "set", ub, "up"])?;
    Ok(())
}

impl Hv {
    /// Underlay bridge with the underlay veth `uplink`, the local address
    /// on its internal port; integration bridge with the VM (OpenFlow port
    /// 1) and a tunnel port (OpenFlow port 2) of `kind` with `opts`.
    pub fn configure(&self, uplink: &str, kind: &str, opts: &[&str]) -> Result<()> {
        self.add_bridge(&self.phy)?;
        self.add_bridge(&self.int)?;
        let addr = format!("10.99.0.{}/24", self.n);
        self.underlay_bridge_up(&self.phy, uplink, &addr)?;
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

    /// A bridge of this hypervisor's switch (`datapath_type=netdev` on OVS).
    pub fn add_bridge(&self, br: &str) -> Result<()> {
        if matches!(self.sw, Sw::Ovs(_)) {
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
        Ok(())
    }

    /// Makes `br` an underlay bridge: `uplink` its port, its internal port
    /// up with `addr` (ADDR/LEN).
    pub fn underlay_bridge_up(&self, br: &str, uplink: &str, addr: &str) -> Result<()> {
        self.sw.vsctl(&["add-port", br, uplink])?;
        if !wait_until(Duration::from_secs(10), || {
            self.ns.exec(&["ip", "link", "show", br]).is_ok()
        }) {
            bail!("{br} never appeared");
        }
        self.ns.exec(&["ip", "link", "set", br, "up"])?;
        self.ns.exec(&["ip", "addr", "add", addr, "dev", br])?;
        Ok(())
    }

    /// On a stock OVS hypervisor (a no-op on ferrovs): the underlay route
    /// of OVS's userspace-tunnelling guide (`ovs/route/add 10.99.0.0/24
    /// PHY`), then waits until OVS would decapsulate what arrives for
    /// this host's underlay address and UDP `port`
    /// (`tnl/ports/show -v` lists it). OVS learns its bridge's address
    /// asynchronously, and a tunnel packet that comes before goes to the
    /// host stack, by a cached flow that the test's traffic keeps alive.
    pub fn ovs_underlay_route(&self, port: u16) -> Result<()> {
        let Sw::Ovs(o) = &self.sw else {
            return Ok(());
        };
        o.appctl(&["ovs/route/add", "10.99.0.0/24", &self.phy])?;
        // `tnl/ports/show -v` lists, per tunnel UDP port, the datapath
        // matches that OVS decapsulates: the local address must be there.
        let (ip, udp) = (format!("dst=10.99.0.{},", self.n), format!("dst={port})"));
        let mut shown = String::new();
        if !wait_until(Duration::from_secs(30), || {
            shown = o
                .appctl(&["tnl/ports/show", "-v"])
                .unwrap_or_else(|e| format!("{e:#}"));
            shown.lines().any(|l| l.contains(&ip) && l.contains(&udp))
        }) {
            bail!(
                "stock OVS never listens for UDP {port} on 10.99.0.{}:\n{shown}",
                self.n
            );
        }
        Ok(())
    }

    /// Transmitted packets of `dev` in this hypervisor's namespace.
    pub fn tx_packets(&self, dev: &str) -> Result<u64> {
        let path = format!("/sys/class/net/{dev}/statistics/tx_packets");
        let out = self.ns.exec(&["cat", &path])?;
        out.trim()
            .parse()
            .with_context(|| format!("tx_packets of {dev}: {out:?}"))
    }

    pub fn vport(&self) -> String {
        self.vport.clone()
    }

    pub fn vm_ip(&self) -> String {
        format!("192.168.77.{}", self.n)
    }
}
