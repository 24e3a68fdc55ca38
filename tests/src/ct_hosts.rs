//! Shared setup of the conntrack end-to-end tests that run real traffic
//! through ferrovs and through stock OVS: one trait to drive either switch,
//! stock OVS on veth hosts, and FTP/TFTP servers for the ALG tests.

use std::os::unix::fs::PermissionsExt;

use anyhow::{Context, Result, bail};

use crate::{ChildGuard, Netns, StockOvs, Switch, VethHost, ip, run};

/// One switch under test: ferrovs or stock OVS, driven the same way.
pub trait AnySwitch {
    fn ofctl(&self, args: &[&str]) -> Result<String>;
    fn appctl(&self, args: &[&str]) -> Result<String>;
    /// How `ovs-ofctl` names bridge `br` of this switch.
    fn target(&self, br: &str) -> String;
}

impl AnySwitch for Switch {
    fn ofctl(&self, args: &[&str]) -> Result<String> {
        Switch::ofctl(self, args)
    }
    fn appctl(&self, args: &[&str]) -> Result<String> {
        Switch::appctl(self, args)
    }
    fn target(&self, br: &str) -> String {
        br.to_string()
    }
}

impl AnySwitch for StockOvs {
    fn ofctl(&self, args: &[&str]) -> Result<String> {
        run(self.cmd("ovs-ofctl").args(args))
    }
    fn appctl(&self, args: &[&str]) -> Result<String> {
        StockOvs::appctl(self, args)
    }
    fn target(&self, br: &str) -> String {
        self.mgmt(br)
    }
}

/// Two hosts (`10.<net>.0.1` and `.2`, OpenFlow ports 1 and 2 of `br0`)
/// on stock OVS's userspace datapath: ovs-vswitchd runs in its own
/// namespace, which holds the switch ends of the hosts' veths. The hosts
/// send with checksum offload off (stock OVS does not finish checksums).
pub fn stock_rig(tag: &str, net: u8) -> Result<(Netns, StockOvs, Vec<VethHost>)> {
    let ovs_ns = Netns::new(&format!("{tag}o"))?;
    let mut hosts = Vec::new();
    for i in 1..=2 {
        let h = VethHost::new(tag, i, &format!("10.{net}.0.{i}/24"))?;
        ip(&["link", "set", &h.port, "netns", &ovs_ns.name])?;
        ovs_ns.exec(&["ip", "link", "set", &h.port, "up"])?;
        h.ns.exec(&["ethtool", "-K", "eth0", "tx", "off"])?;
        hosts.push(h);
    }
    let ovs = StockOvs::start_system(&format!("{tag}-ovs-"), &ovs_ns.name)?;
    ovs.vsctl(&[
        "add-br",
        "br0",
        "--",
        "set",
        "bridge",
        "br0",
        "datapath_type=netdev",
    ])?;
    for (i, h) in hosts.iter().enumerate() {
        let req = format!("ofport_request={}", i + 1);
        ovs.vsctl(&[
            "add-port",
            "br0",
            &h.port,
            "--",
            "set",
            "Interface",
            &h.port,
            &req,
        ])?;
    }
    Ok((ovs_ns, ovs, hosts))
}

/// Replaces the flows of bridge `br` with `flows` (ovs-ofctl's text, one
/// flow a line) through a file in `dir`.
pub fn load_flows(sw: &dyn AnySwitch, br: &str, dir: &std::path::Path, flows: &str) -> Result<()> {
    let file = dir.join("ct-test-flows.txt");
    std::fs::write(&file, flows)?;
    let t = sw.target(br);
    sw.ofctl(&["del-flows", &t])?;
    sw.ofctl(&["add-flows", &t, file.to_str().context("path")?])?;
    Ok(())
}

/// Panics when the Python FTP server is missing.
pub fn require_pyftpdlib() {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import pyftpdlib"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "pyftpdlib is not installed: run scripts/install-test-deps.sh"
    );
}

/// An FTP server (pyftpdlib, port 21) and a TFTP server (tftpd-hpa, port
/// 69) on `addr` in a namespace, both serving `data.txt` (`body`) from a
/// temporary directory; stopped on drop.
pub struct FileServers {
    pub body: String,
    _ftpd: ChildGuard,
    _tftpd: ChildGuard,
    _dir: tempfile::TempDir,
}

impl FileServers {
    pub fn start(ns: &Netns, addr: &str) -> Result<FileServers> {
        // World-readable: in.tftpd drops to user tftp.
        let dir = tempfile::Builder::new().prefix("ferrovs-ftp-").tempdir()?;
        std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755))?;
        let body = "ferrovs ALG test payload\n".repeat(200);
        let file = dir.path().join("data.txt");
        std::fs::write(&file, &body)?;
        std::fs::set_permissions(&file, PermissionsExt::from_mode(0o644))?;
        let d = dir.path().to_str().context("path")?;
        let ftpd = ns.spawn(&[
            "python3",
            "-m",
            "pyftpdlib",
            "-p",
            "21",
            "-i",
            addr,
            "-d",
            d,
        ])?;
        let tftp_addr = format!("{addr}:69");
        let tftpd = ns.spawn(&["in.tftpd", "-L", "-s", d, "-a", &tftp_addr])?;
        Ok(FileServers {
            body,
            _ftpd: ftpd,
            _tftpd: tftpd,
            _dir: dir,
        })
    }
}

/// Downloads `url` with curl in `ns` (extra curl options first); the body,
/// or an error when curl fails or times out.
pub fn curl(ns: &Netns, opts: &[&str], url: &str) -> Result<String> {
    let mut args = vec!["curl", "-s", "-S", "--max-time", "8"];
    args.extend_from_slice(opts);
    args.push(url);
    let out = ns.exec_output(&args)?;
    if !out.status.success() {
        bail!(
            "curl {opts:?} {url}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// curl options for a passive (PASV) download: curl tries EPSV first
/// otherwise, which OVS's ALG reads over IPv6 only.
pub const FTP_PASSIVE: &[&str] = &["--disable-epsv"];
/// curl options for an active (PORT) download from the client's own
/// address.
pub const FTP_ACTIVE: &[&str] = &["--disable-eprt", "-P", "-"];
