//! Shared setup of the conntrack end-to-end tests that run real traffic
//! through ferrovs and through stock OVS: one trait to drive either switch,
//! stock OVS on veth hosts, and FTP/TFTP servers for the ALG tests.

use std::os::unix::fs::PermissionsExt;

use anyhow::{Context, Result, bail};

use crate::{ChildGuard, Netns, StockOvs, Switch, VethHost, add_port_numbered, ip, run};

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
        add_port_numbered(|a| ovs.vsctl(a), "br0", &h.port, i as u32 + 1, &[])?;
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

/// An Ethernet/IPv4 frame `src` -> `dst` (MACs 02:..:01 -> 02:..:02)
/// around the L4 header and payload `l4` of protocol `proto` (6 TCP, 17
/// UDP: their checksum is filled in), with a valid IPv4 header checksum.
pub fn ipv4_frame(src: [u8; 4], dst: [u8; 4], proto: u8, mut l4: Vec<u8>) -> Vec<u8> {
    use wire::checksum::{accumulate, finish, ipv4_header_checksum, pseudo_header_v4};
    let csum_at = match proto {
        6 => Some(16),
        17 => Some(6),
        _ => None,
    };
    if let Some(at) = csum_at {
        l4[at..at + 2].copy_from_slice(&[0, 0]);
        let acc = accumulate(pseudo_header_v4(src, dst, proto, l4.len()), &l4);
        let c = finish(acc, proto == 17);
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = ipv4_header_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&ip);
    f.extend_from_slice(&l4);
    f
}

/// A UDP header `sport` -> `dport` and `payload`, checksum left to
/// [`ipv4_frame`].
pub fn udp_l4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// A TCP SYN `sport` -> `dport`, checksum left to [`ipv4_frame`].
pub fn tcp_syn_l4(sport: u16, dport: u16, seq: u32) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0, 5 << 4, 0x02]);
    t.extend_from_slice(&64240u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t
}
