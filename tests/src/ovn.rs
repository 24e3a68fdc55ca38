//! The central part of an OVN deployment for the tests: the NB and SB
//! `ovsdb-server`s and `ovn-northd`, from Debian's `ovn-central` package.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::tunnel_hosts::Sw;
use crate::{ChildGuard, Netns, Proto, ip, run, wait_until};

/// NB and SB `ovsdb-server`s and `ovn-northd` in `dir`, stopped on drop.
pub struct OvnCentral {
    pub dir: PathBuf,
    _procs: Vec<ChildGuard>,
}

impl OvnCentral {
    pub fn start(dir: &Path) -> Result<OvnCentral> {
        std::fs::create_dir_all(dir)?;
        let mut procs = Vec::new();
        for (db, schema) in [
            ("nb", "/usr/share/ovn/ovn-nb.ovsschema"),
            ("sb", "/usr/share/ovn/ovn-sb.ovsschema"),
        ] {
            let file = dir.join(format!("{db}.db"));
            run(Command::new("ovsdb-tool")
                .arg("create")
                .arg(&file)
                .arg(schema))?;
            let child = Command::new("ovsdb-server")
                .arg(&file)
                .arg(format!(
                    "--remote=punix:{}",
                    dir.join(format!("{db}.sock")).display()
                ))
                .arg(format!(
                    "--unixctl={}",
                    dir.join(format!("{db}.ctl")).display()
                ))
                .arg("--no-chdir")
                .arg("-vconsole:off")
                .env("OVS_RUNDIR", dir)
                .env("OVS_LOGDIR", dir)
                .env("OVS_DBDIR", dir)
                .spawn()?;
            procs.push(ChildGuard(Some(child)));
        }
        if !wait_until(Duration::from_secs(10), || {
            dir.join("nb.sock").exists() && dir.join("sb.sock").exists()
        }) {
            bail!("OVN databases did not start");
        }
        let northd = Command::new("ovn-northd")
            .arg(format!("--ovnnb-db=unix:{}", dir.join("nb.sock").display()))
            .arg(format!("--ovnsb-db=unix:{}", dir.join("sb.sock").display()))
            .arg(format!("--unixctl={}", dir.join("northd.ctl").display()))
            .arg(format!("--log-file={}", dir.join("northd.log").display()))
            .arg("-vconsole:off")
            .env("OVN_RUNDIR", dir)
            .env("OVN_LOGDIR", dir)
            .spawn()?;
        procs.push(ChildGuard(Some(northd)));
        Ok(OvnCentral {
            dir: dir.to_path_buf(),
            _procs: procs,
        })
    }

    pub fn sb_remote(&self) -> String {
        format!("unix:{}", self.dir.join("sb.sock").display())
    }

    pub fn nbctl(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ovn-nbctl")
            .arg(format!("--db=unix:{}", self.dir.join("nb.sock").display()))
            .arg("--timeout=20")
            .args(args))
    }

    pub fn sbctl(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ovn-sbctl")
            .arg(format!("--db=unix:{}", self.dir.join("sb.sock").display()))
            .arg("--timeout=20")
            .args(args))
    }

    /// The uuid of the chassis logical port `lp` is bound to (empty while
    /// unbound).
    pub fn bound_chassis_uuid(&self, lp: &str) -> String {
        self.sbctl(&[
            "--bare",
            "--columns=chassis",
            "find",
            "Port_Binding",
            &format!("logical_port={lp}"),
        ])
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
    }
}

/// The lines of ovn-controller's log that report an OpenFlow error it
/// received (on any of its connections).
pub fn openflow_errors(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.contains("received: OFPT_ERROR")
                || l.contains("OpenFlow error")
                || l.contains("|ofctrl|WARN")
                || l.contains("|pinctrl|WARN")
        })
        .map(str::to_string)
        .collect()
}

/// The tunnel encapsulation a chassis announces (`ovn-encap-type`): the
/// port type ovn-controller creates and what the underlay carries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Encap {
    /// OVN's default: the logical datapath in the VNI, the logical input
    /// and output ports in the Geneve option class 0x0102 type 0x80
    /// (`tun_metadata0`, mapped by NXT_TLV_TABLE_MOD).
    Geneve,
    /// The logical datapath and output port in the 24-bit VNI.
    Vxlan,
}

impl Encap {
    /// `ovn-encap-type` value and Interface `type`.
    pub fn name(self) -> &'static str {
        match self {
            Encap::Geneve => "geneve",
            Encap::Vxlan => "vxlan",
        }
    }

    /// The outer UDP destination port.
    pub fn udp_port(self) -> u16 {
        match self {
            Encap::Geneve => 6081,
            Encap::Vxlan => 4789,
        }
    }
}

impl std::fmt::Display for Encap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
/// One OVN hypervisor for the multi-chassis tests: a network namespace with
/// its own switch (ferrovs, or stock Open vSwitch with the userspace
/// datapath: [`Sw`]) and its own stock `ovn-controller` inside it, an
/// underlay bridge whose internal port holds the chassis' tunnel address,
/// and a "VM" namespace behind the integration bridge that ovn-controller
/// creates.
pub struct Chassis {
    /// The chassis name (`system-id`).
    pub name: String,
    /// Integration bridge (created by ovn-controller) and underlay bridge.
    pub int: String,
    pub phy: String,
    /// The VM's veth end on the chassis side.
    pub vport: String,
    /// Underlay address.
    pub ip: String,
    /// The encapsulation this chassis announces.
    pub encap: Encap,
    /// ovn-controller's log.
    pub log: PathBuf,
    // Drop order: the controller before the switch, the namespaces last.
    pub controller: ChildGuard,
    pub sw: Sw,
    pub vm: Netns,
    pub ns: Netns,
}

/// Which switch a chassis runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SwitchKind {
    Ferrovs,
    StockOvs,
}

impl Chassis {
    /// Chassis `n` in namespace `<t><side>`, its VM in `<t><side>v` with
    /// MAC `mac` and address `vm_addr` (CIDR), its underlay address
    /// 172.31.`n`.1, encapsulating in `encap`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        t: &str,
        side: char,
        n: u8,
        kind: SwitchKind,
        encap: Encap,
        mac: &str,
        vm_addr: &str,
        ovn: &OvnCentral,
    ) -> Result<Chassis> {
        let ns = Netns::new(&format!("{t}{side}"))?;
        let vm = Netns::new(&format!("{t}{side}v"))?;
        let vport = format!("{t}v{side}");
        ns.exec(&[
            "ip", "link", "add", &vport, "type", "veth", "peer", "name", "eth0", "netns", &vm.name,
        ])?;
        ns.exec(&["ip", "link", "set", &vport, "up"])?;
        vm.exec(&["ip", "link", "set", "eth0", "address", mac])?;
        vm.exec(&["ip", "addr", "add", vm_addr, "dev", "eth0"])?;
        // Room for the outer headers on the 1500-byte underlay.
        vm.exec(&["ip", "link", "set", "eth0", "mtu", "1400", "up"])?;
        // Stock OVS forwards partial checksums as they are: the VMs finish
        // their own (shared/README.md).
        vm.exec(&["ethtool", "-K", "eth0", "tx", "off"])?;
        let sw = Sw::start_in(&ns, kind == SwitchKind::StockOvs)?;
        let name = format!("{t}hv{n}");
        let int = format!("{t}i{side}");
        let phy = format!("{t}p{side}");
        let ip = format!("172.31.{n}.1");
        sw.vsctl(&[
            "set",
            "Open_vSwitch",
            ".",
            &format!("external_ids:system-id={name}"),
            &format!("external_ids:ovn-remote={}", ovn.sb_remote()),
            &format!("external_ids:ovn-encap-type={encap}"),
            &format!("external_ids:ovn-encap-ip={ip}"),
            "external_ids:ovn-bridge-datapath-type=netdev",
            &format!("external_ids:ovn-bridge={int}"),
        ])?;
        let dir = sw.rundir().join("ovn");
        std::fs::create_dir_all(&dir)?;
        let log = dir.join("ovn-controller.log");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "ovn-controller"])
            .arg(sw.db_remote())
            .arg(format!("--log-file={}", log.display()))
            .arg("-vconsole:off")
            // Every message on its OpenFlow connections, errors included.
            .arg("-vfile:vconn:dbg")
            .env("OVS_RUNDIR", sw.rundir())
            .env("OVN_RUNDIR", &dir)
            .env("OVN_LOGDIR", &dir)
            .stdin(Stdio::null())
            .spawn()
            .context("spawning ovn-controller")?;
        Ok(Chassis {
            name,
            int,
            phy,
            vport,
            ip,
            encap,
            log,
            controller: ChildGuard(Some(child)),
            sw,
            vm,
            ns,
        })
    }

    /// Underlay bridge with `uplink`, this chassis' underlay address on its
    /// internal port (a /16 covering every side's 172.31.N.1).
    pub fn underlay(&self, uplink: &str) -> Result<()> {
        self.ns.exec(&["ip", "link", "set", uplink, "up"])?;
        self.sw.vsctl(&[
            "add-br",
            &self.phy,
            "--",
            "set",
            "bridge",
            &self.phy,
            "datapath_type=netdev",
        ])?;
        self.sw.vsctl(&["add-port", &self.phy, uplink])?;
        if !wait_until(Duration::from_secs(10), || {
            self.ns.exec(&["ip", "link", "show", &self.phy]).is_ok()
        }) {
            bail!("{} never appeared", self.phy);
        }
        self.ns.exec(&["ip", "link", "set", &self.phy, "up"])?;
        let addr = format!("{}/16", self.ip);
        self.ns
            .exec(&["ip", "addr", "add", &addr, "dev", &self.phy])?;
        if let Sw::Ovs(o) = &self.sw {
            // Userspace tunnelling as OVS documents it: the underlay route
            // through the bridge that owns the address.
            o.appctl(&["ovs/route/add", "172.31.0.0/16", &self.phy])?;
        }
        Ok(())
    }

    /// Waits for the integration bridge, then adds port `port` to it bound
    /// to logical port `lp`.
    pub fn bind_port(&self, port: &str, lp: &str) -> Result<()> {
        if !wait_until(Duration::from_secs(30), || {
            self.sw.vsctl(&["br-exists", &self.int]).is_ok()
        }) {
            bail!(
                "ovn-controller did not create {}; its log:\n{}",
                self.int,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        self.sw.vsctl(&[
            "add-port",
            &self.int,
            port,
            "--",
            "set",
            "Interface",
            port,
            &format!("external_ids:iface-id={lp}"),
        ])?;
        Ok(())
    }

    /// The VM's port, bound to logical port `lp`.
    pub fn bind(&self, lp: &str) -> Result<()> {
        self.bind_port(&self.vport, lp)
    }

    /// Whether ovn-controller marked `port` `ovn-installed`.
    pub fn installed(&self, port: &str) -> bool {
        self.sw
            .vsctl(&["get", "Interface", port, "external_ids"])
            .map(|s| s.contains("ovn-installed=\"true\""))
            .unwrap_or(false)
    }

    /// A second VM namespace `<name>` behind this chassis' integration
    /// bridge (veth `<name>p`), with `mac`, bound to logical port `lp` and
    /// installed; `net` is its address (CIDR) and default gateway, or None
    /// for a VM that is to get them by DHCP.
    pub fn extra_vm(
        &self,
        name: &str,
        mac: &str,
        lp: &str,
        net: Option<(&str, &str)>,
    ) -> Result<Netns> {
        let vm = Netns::new(name)?;
        let port = format!("{name}p");
        self.ns.exec(&[
            "ip", "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &vm.name,
        ])?;
        self.ns.exec(&["ip", "link", "set", &port, "up"])?;
        vm.exec(&["ip", "link", "set", "eth0", "address", mac])?;
        vm.exec(&["ip", "link", "set", "eth0", "mtu", "1400", "up"])?;
        vm.exec(&["ethtool", "-K", "eth0", "tx", "off"])?;
        if let Some((addr, gw)) = net {
            vm.exec(&["ip", "addr", "add", addr, "dev", "eth0"])?;
            vm.exec(&["ip", "route", "add", "default", "via", gw])?;
        }
        self.bind_port(&port, lp)?;
        if !wait_until(Duration::from_secs(30), || self.installed(&port)) {
            bail!("{port} never got ovn-installed\n{}", self.diag());
        }
        Ok(vm)
    }

    /// `kill -9` of this chassis' switch daemon and a restart on the same
    /// DB; ovn-controller and the host are left alone.
    pub fn kill_and_restart_switch(&mut self) -> Result<()> {
        self.sw.kill_and_restart()
    }

    /// The switch's state, for failure messages.
    pub fn diag(&self) -> String {
        let ports = self.sw.vsctl(&["show"]).unwrap_or_default()
            + &self.ns.exec(&["ip", "-br", "addr"]).unwrap_or_default();
        let flows = self.sw.appctl(&["dpctl/dump-flows"]).unwrap_or_default();
        let neigh = self.sw.appctl(&["tnl/neigh/show"]).unwrap_or_default();
        let log = self.sw.log_text();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        format!(
            "== {} ==\n{ports}\n{flows}\n{neigh}\n{}\nOpenFlow errors: {:?}",
            self.name,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            openflow_errors(&self.log)
        )
    }

    /// The switch is alive, ovn-controller runs and never received an
    /// OpenFlow error.
    pub fn assert_healthy(&mut self) -> Result<()> {
        assert!(
            self.sw.alive(),
            "the switch of {} died:\n{}",
            self.name,
            self.sw.log_text()
        );
        let errors = openflow_errors(&self.log);
        assert!(
            errors.is_empty(),
            "ovn-controller of {} received OpenFlow errors:\n{}",
            self.name,
            errors.join("\n")
        );
        assert!(
            self.controller.child().try_wait()?.is_none(),
            "ovn-controller of {} exited",
            self.name
        );
        Ok(())
    }
}

/// Chassis `a` (`kinds[0]`) and `b` (`kinds[1]`) in namespaces `<t>a`,
/// `<t>b`, joined by the underlay veth `<t>ua` / `<t>ub`; VM `i` has
/// `macs[i]` and `vm_addrs[i]` (CIDR).
pub fn two_chassis(
    t: &str,
    ovn: &OvnCentral,
    kinds: [SwitchKind; 2],
    encap: Encap,
    macs: [&str; 2],
    vm_addrs: [&str; 2],
) -> Result<(Chassis, Chassis)> {
    let a = Chassis::start(t, 'a', 1, kinds[0], encap, macs[0], vm_addrs[0], ovn)?;
    let b = Chassis::start(t, 'b', 2, kinds[1], encap, macs[1], vm_addrs[1], ovn)?;
    let (ua, ub) = (format!("{t}ua"), format!("{t}ub"));
    ip(&[
        "link", "add", &ua, "netns", &a.ns.name, "type", "veth", "peer", "name", &ub, "netns",
        &b.ns.name,
    ])?;
    a.underlay(&ua)?;
    b.underlay(&ub)?;
    Ok((a, b))
}

impl OvnCentral {
    /// Joins logical switch `ls` to logical router `lr`: router port
    /// `<lr>-<ls>` with `mac` and the gateway address `cidr`, and its peer
    /// `<ls>-<lr>` on the switch.
    pub fn attach_to_router(&self, lr: &str, ls: &str, mac: &str, cidr: &str) -> Result<()> {
        let rp = format!("{lr}-{ls}");
        self.nbctl(&["lrp-add", lr, &rp, mac, cidr])?;
        let sp = format!("{ls}-{lr}");
        self.nbctl(&[
            "lsp-add",
            ls,
            &sp,
            "--",
            "lsp-set-type",
            &sp,
            "router",
            "--",
            "lsp-set-addresses",
            &sp,
            "router",
            "--",
            "lsp-set-options",
            &sp,
            &format!("router-port={rp}"),
        ])?;
        Ok(())
    }

    /// The name of the chassis logical port `lp` is bound to (empty while
    /// unbound).
    pub fn bound_chassis(&self, lp: &str) -> String {
        let uuid = self.bound_chassis_uuid(lp);
        if uuid.is_empty() {
            return uuid;
        }
        self.sbctl(&["--bare", "--columns=name", "list", "Chassis", &uuid])
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    /// Binds each `(lp, chassis)` on its chassis' VM port, then checks:
    /// every chassis registered with its encap on its underlay address,
    /// each port bound on its own chassis, `ovn-installed` and `up`, and a
    /// tunnel port of the encap type from each chassis to each other.
    pub fn bind_and_check(&self, ports: &[(&str, &Chassis)]) -> Result<()> {
        for (lp, c) in ports {
            c.bind(lp)?;
        }
        let diag = || {
            ports
                .iter()
                .map(|(_, c)| c.diag())
                .collect::<Vec<_>>()
                .join("\n")
        };
        if !wait_until(Duration::from_secs(30), || {
            let names = self
                .sbctl(&["--bare", "--columns=name", "list", "Chassis"])
                .unwrap_or_default();
            ports.iter().all(|(_, c)| names.contains(&c.name))
        }) {
            bail!("chassis did not register\n{}", diag());
        }
        for (_, c) in ports {
            let encap = self.sbctl(&[
                "--bare",
                "--columns=type,ip",
                "find",
                "Encap",
                &format!("chassis_name={}", c.name),
            ])?;
            let words: Vec<&str> = encap.split_whitespace().collect();
            assert_eq!(words, [c.encap.name(), c.ip.as_str()], "{} encap", c.name);
        }
        for (lp, c) in ports {
            if !wait_until(Duration::from_secs(30), || self.bound_chassis(lp) == c.name) {
                bail!(
                    "{lp} not bound to {} (bound: {:?})\n{}",
                    c.name,
                    self.bound_chassis(lp),
                    c.diag()
                );
            }
            if !wait_until(Duration::from_secs(30), || c.installed(&c.vport)) {
                bail!("{} never got ovn-installed\n{}", c.vport, c.diag());
            }
            let up = self.sbctl(&[
                "--bare",
                "--columns=up",
                "find",
                "Port_Binding",
                &format!("logical_port={lp}"),
            ])?;
            assert_eq!(up.trim(), "true", "{lp} up");
        }
        for (_, c) in ports {
            for (_, peer) in ports {
                if peer.name == c.name {
                    continue;
                }
                if !wait_until(Duration::from_secs(20), || {
                    c.sw.vsctl(&[
                        "--bare",
                        "--columns=name",
                        "find",
                        "Interface",
                        &format!("type={}", c.encap),
                        &format!("options:remote_ip={}", peer.ip),
                    ])
                    .map(|s| !s.trim().is_empty())
                    .unwrap_or(false)
                }) {
                    bail!("no tunnel port on {} to {}\n{}", c.name, peer.ip, c.diag());
                }
            }
        }
        Ok(())
    }
}

/// Whether a TCP connection from `client` to `ip:port` gets through (an
/// `iperf3` server is started on `server` for it).
pub fn tcp_connects(server: &Netns, client: &Netns, ip: &str, port: u16) -> Result<bool> {
    let p = port.to_string();
    let _srv = server.spawn_server(&["iperf3", "-s", "-1", "-p", &p], Proto::Tcp, port)?;
    let out = client.exec_output(&[
        "timeout",
        "8",
        "iperf3",
        "-c",
        ip,
        "-p",
        &p,
        "-t",
        "1",
        "--connect-timeout",
        "3000",
    ])?;
    Ok(out.status.success())
}

/// Runs busybox `udhcpc` on `vm`'s eth0 until it reports the lease of
/// `ip` from `server`, for up to `within` (the flows of the DHCP options
/// may land after `ovn-installed`). Returns whether it did, and the
/// client's last output.
pub fn dhcp_lease(vm: &Netns, ip: &str, server: &str, within: Duration) -> (bool, String) {
    let mut out = String::new();
    let want = format!("lease of {ip} obtained from {server}");
    let ok = wait_until(within, || {
        out = vm
            .exec_output(&[
                "timeout",
                "10",
                "busybox",
                "udhcpc",
                "-i",
                "eth0",
                "-n",
                "-q",
                "-f",
                "-t",
                "2",
                "-T",
                "1",
                "-s",
                "/bin/true",
            ])
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr)
            })
            .unwrap_or_default();
        out.contains(&want)
    });
    (ok, out)
}

/// A fixed service-monitor MAC: northd otherwise picks a random one, and it
/// shows up in the flow table.
pub const SVC_MONITOR_MAC: &str = "0a:00:00:00:00:fe";

/// The OVN central part, with a fixed service-monitor MAC.
pub fn central(dir: &Path) -> Result<OvnCentral> {
    let ovn = OvnCentral::start(dir)?;
    ovn.nbctl(&[
        "set",
        "NB_Global",
        ".",
        &format!("options:svc_monitor_mac=\"{SVC_MONITOR_MAC}\""),
    ])?;
    Ok(ovn)
}

pub fn lsp_mac(i: u32) -> String {
    format!("00:00:00:00:99:0{i}")
}

/// Stock `ovn-controller` for the switch whose DB socket is `db` and whose
/// run directory (where it finds `<bridge>.mgmt`) is `ovs_rundir`.
pub fn start_controller(db: &str, ovs_rundir: &Path, dir: &Path) -> Result<(ChildGuard, PathBuf)> {
    let log = dir.join("ovn-controller.log");
    let child = Command::new("ovn-controller")
        .arg(db)
        .arg(format!("--log-file={}", log.display()))
        .arg("-vconsole:off")
        // Every message on its three OpenFlow connections, errors included.
        .arg("-vfile:vconn:dbg")
        .env("OVS_RUNDIR", ovs_rundir)
        .env("OVN_RUNDIR", dir)
        .env("OVN_LOGDIR", dir)
        .spawn()?;
    Ok((ChildGuard(Some(child)), log))
}

/// The `Open_vSwitch` settings that make ovn-controller manage bridge `br`.
pub fn chassis_settings(system_id: &str, sb: &str, br: &str) -> Vec<String> {
    vec![
        "set".into(),
        "Open_vSwitch".into(),
        ".".into(),
        format!("external_ids:system-id={system_id}"),
        format!("external_ids:ovn-remote={sb}"),
        "external_ids:ovn-encap-type=geneve".into(),
        "external_ids:ovn-encap-ip=127.0.0.1".into(),
        "external_ids:ovn-bridge-datapath-type=netdev".into(),
        format!("external_ids:ovn-bridge={br}"),
    ]
}

/// `ovs-ofctl dump-flows` output without what differs from run to run
/// (cookies come from logical-flow UUIDs, counters and ages from timing),
/// one flow per line, sorted.
pub fn normalise_flows(dump: &str) -> Vec<String> {
    let mut out: Vec<String> = dump
        .lines()
        .filter(|l| !l.starts_with("OFPST_FLOW") && !l.trim().is_empty())
        .map(|l| {
            l.trim()
                .split(", ")
                .filter(|part| {
                    ![
                        "cookie=",
                        "duration=",
                        "n_packets=",
                        "n_bytes=",
                        "idle_age=",
                        "hard_age=",
                    ]
                    .iter()
                    .any(|p| part.starts_with(p))
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        // ferrovs has one field for the ICMP and ICMPv6 type and writes
        // the ICMPv4 OXM in set_field (the datapath effect is the same).
        .map(|l| l.replace("->icmpv6_type", "->icmp_type"))
        .map(|l| sort_fanout(&hide_zones(&l)))
        .collect();
    out.sort();
    out
}

/// Conntrack zones (reg11, reg12, reg13 in OVN 23.03's pipeline) are
/// numbered by ovn-controller in the order it meets datapaths and ports,
/// which varies from run to run: keep only where a zone is loaded.
pub fn hide_zones(line: &str) -> String {
    let mut out = line.to_string();
    for reg in ["reg11", "reg12", "reg13"] {
        let pat = format!("->{reg}");
        let mut from = 0;
        while let Some(at) = out[from..].find(&pat).map(|i| i + from) {
            match out[..at].rfind("set_field:") {
                Some(sf) if !out[sf..at].contains(',') => {
                    let start = sf + "set_field:".len();
                    out.replace_range(start..at, "ZONE");
                    from = start + "ZONE".len() + pat.len();
                }
                _ => from = at + pat.len(),
            }
        }
    }
    out
}

/// OVN's multicast-group flows visit every member port (`set_field…,
/// resubmit(,N)` per port) in the order ovn-controller happened to bind
/// them: sort those per-port chunks so that the order does not count.
pub fn sort_fanout(line: &str) -> String {
    let Some((head, acts)) = line.split_once(" actions=") else {
        return line.to_string();
    };
    // Top-level action tokens (commas inside parentheses do not split).
    let mut tokens = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in acts.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                tokens.push(&acts[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    tokens.push(&acts[start..]);
    let mut chunks: Vec<Vec<&str>> = vec![Vec::new()];
    for t in tokens {
        chunks.last_mut().expect("one chunk").push(t);
        if t.starts_with("resubmit(") {
            chunks.push(Vec::new());
        }
    }
    let tail = chunks.pop().unwrap_or_default();
    if chunks.len() < 2 {
        return line.to_string();
    }
    chunks.sort();
    let mut all: Vec<&str> = chunks.concat();
    all.extend(tail);
    format!("{head} actions={}", all.join(","))
}

/// Two logical switches (`ls-a` with `lp1`, `ls-b` with `lp2`) joined by
/// logical router `lr`.
pub fn routed_pair(ovn: &OvnCentral) -> Result<()> {
    ovn.nbctl(&["lr-add", "lr"])?;
    for (i, ls) in [(1u32, "ls-a"), (2, "ls-b")] {
        let lp = format!("lp{i}");
        ovn.nbctl(&["ls-add", ls])?;
        ovn.nbctl(&[
            "lsp-add",
            ls,
            &lp,
            "--",
            "lsp-set-addresses",
            &lp,
            &format!("{} 10.94.{i}.1", lsp_mac(i)),
        ])?;
        ovn.attach_to_router(
            "lr",
            ls,
            &format!("00:00:00:00:94:f{i}"),
            &format!("10.94.{i}.254/24"),
        )?;
    }
    Ok(())
}

/// OVN adds `nat(src)` to its ct commits only when the datapath reports
/// `ct_zero_snat` (stock OVS's userspace datapath does, ferrovs reports
/// what it executes): `text` (a flow or datapath actions) without it.
pub fn without_zero_snat(text: &str) -> String {
    text.replace(",nat(src),", ",").replace(",nat(src))", ")")
}

/// Whether a `Datapath` table listing (`vsctl list Datapath`) reports
/// `ct_zero_snat`.
pub fn reports_zero_snat(datapaths: &str) -> bool {
    datapaths.contains("ct_zero_snat=\"true\"") || datapaths.contains("ct_zero_snat=true")
}
