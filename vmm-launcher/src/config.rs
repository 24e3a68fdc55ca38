//! A VM's configuration as given on the command line and recorded in its
//! state directory.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::devices::virtio_blk::ImageFormat;
use crate::error::VmmError;
use crate::mac::MacAddr;

/// How a NIC reaches the switch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetAttach {
    /// A port added to this bridge through the config DB.
    Bridge(String),
    /// An existing vhost-user server socket.
    VhostUser(PathBuf),
}

/// How the guest sees a NIC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transport {
    /// virtio-mmio, declared on the kernel command line.
    #[default]
    Mmio,
    /// Modern virtio-pci on bus 0 (stock distribution kernels).
    Pci,
}

/// One `--net` argument.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetSpec {
    pub attach: NetAttach,
    pub mac: Option<String>,
    #[serde(default)]
    pub transport: Transport,
}

impl NetSpec {
    /// Parses `BRIDGE[,mac=MAC][,transport=mmio|pci]` or
    /// `vhost-user=SOCKET[,mac=MAC][,transport=mmio|pci]`.
    pub fn parse(s: &str) -> Result<NetSpec, String> {
        let mut parts = s.split(',');
        let first = parts.next().unwrap_or_default();
        if first.is_empty() {
            return Err(
                "empty --net value: expected BRIDGE[,mac=MAC] or vhost-user=SOCKET[,mac=MAC]"
                    .into(),
            );
        }
        let attach = match first.split_once('=') {
            Some(("vhost-user", path)) if !path.is_empty() => NetAttach::VhostUser(path.into()),
            Some((k, _)) => return Err(format!("unknown --net attachment '{k}'")),
            None => NetAttach::Bridge(first.to_string()),
        };
        let mut mac = None;
        let mut transport = Transport::Mmio;
        for opt in parts {
            match opt.split_once('=') {
                Some(("mac", m)) => {
                    crate::mac::parse_nic_mac(m).map_err(|e| e.to_string())?;
                    mac = Some(m.to_string());
                }
                Some(("transport", "mmio")) => transport = Transport::Mmio,
                Some(("transport", "pci")) => transport = Transport::Pci,
                Some(("transport", t)) => {
                    return Err(format!("unknown transport '{t}' (known: mmio, pci)"));
                }
                _ => {
                    return Err(format!(
                        "unknown --net option '{opt}' (known: mac=, transport=)"
                    ));
                }
            }
        }
        Ok(NetSpec {
            attach,
            mac,
            transport,
        })
    }

    /// The MAC to use for NIC `index` of VM `name`.
    pub fn mac_for(&self, name: &str, index: usize) -> Result<MacAddr, VmmError> {
        match &self.mac {
            Some(m) => crate::mac::parse_nic_mac(m),
            None => Ok(crate::mac::derived(name, index)),
        }
    }
}

/// One `--disk` argument.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskSpec {
    pub path: PathBuf,
    #[serde(default)]
    pub readonly: bool,
    /// `None`: raw (refused when the file is a qcow2 image).
    #[serde(default)]
    pub format: Option<ImageFormat>,
    /// GET_ID answer; default `NAME-dI`.
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub transport: Transport,
}

impl DiskSpec {
    /// Parses `PATH[,readonly][,format=raw|qcow2][,serial=S][,transport=mmio|pci]`.
    pub fn parse(s: &str) -> Result<DiskSpec, String> {
        let mut parts = s.split(',');
        let path = parts.next().unwrap_or_default();
        if path.is_empty() {
            return Err("empty --disk value: expected PATH[,readonly][,format=raw|qcow2]".into());
        }
        let mut d = DiskSpec {
            path: path.into(),
            readonly: false,
            format: None,
            serial: None,
            transport: Transport::Mmio,
        };
        for opt in parts {
            match opt.split_once('=') {
                None if opt == "readonly" || opt == "ro" => d.readonly = true,
                Some(("readonly", "on" | "true" | "yes")) => d.readonly = true,
                Some(("readonly", "off" | "false" | "no")) => d.readonly = false,
                Some(("format", "raw")) => d.format = Some(ImageFormat::Raw),
                Some(("format", "qcow2")) => d.format = Some(ImageFormat::Qcow2),
                Some(("format", f)) => {
                    return Err(format!("unknown disk format '{f}' (known: raw, qcow2)"));
                }
                Some(("serial", v)) => {
                    if v.is_empty() || v.len() > 20 || !v.is_ascii() {
                        return Err(format!(
                            "invalid disk serial '{v}': 1 to 20 ASCII characters"
                        ));
                    }
                    d.serial = Some(v.to_string());
                }
                Some(("transport", "mmio")) => d.transport = Transport::Mmio,
                Some(("transport", "pci")) => d.transport = Transport::Pci,
                Some(("transport", t)) => {
                    return Err(format!("unknown transport '{t}' (known: mmio, pci)"));
                }
                _ => {
                    return Err(format!(
                        "unknown --disk option '{opt}' (known: readonly, format=, serial=, transport=)"
                    ));
                }
            }
        }
        Ok(d)
    }

    /// The serial number of disk `index` of VM `name`.
    pub fn serial_for(&self, name: &str, index: usize) -> String {
        self.serial
            .clone()
            .unwrap_or_else(|| format!("{name}-d{index}").chars().take(20).collect())
    }
}

/// Host CPUs for vCPU pinning, parsed from "0-3,6".
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let bad = || format!("invalid CPU list '{s}': expected e.g. 0-3,6");
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: usize = a.trim().parse().map_err(|_| bad())?;
        let b: usize = b.trim().parse().map_err(|_| bad())?;
        if a > b || b >= 1024 {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// Where the serial console goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsoleSpec {
    Stdio,
    File(PathBuf),
}

impl ConsoleSpec {
    pub fn parse(s: &str) -> Result<ConsoleSpec, String> {
        match s {
            "stdio" => Ok(ConsoleSpec::Stdio),
            _ => match s.strip_prefix("file:") {
                Some(p) if !p.is_empty() => Ok(ConsoleSpec::File(p.into())),
                _ => Err(format!(
                    "invalid console '{s}': expected stdio or file:PATH"
                )),
            },
        }
    }
}

/// Everything needed to start a VM.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VmConfig {
    pub name: String,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub cpus: u8,
    pub memory: u64,
    pub hugepages: bool,
    pub cpu_affinity: Option<Vec<usize>>,
    pub nets: Vec<NetSpec>,
    #[serde(default)]
    pub disks: Vec<DiskSpec>,
    pub console: ConsoleSpec,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_spec_accepts_bridge_and_vhost_user_with_optional_mac() {
        assert_eq!(
            NetSpec::parse("br0").unwrap(),
            NetSpec {
                attach: NetAttach::Bridge("br0".into()),
                mac: None,
                transport: Transport::Mmio,
            }
        );
        let n = NetSpec::parse("vhost-user=/tmp/vmm-s,mac=52:54:00:00:00:01").unwrap();
        assert_eq!(n.attach, NetAttach::VhostUser("/tmp/vmm-s".into()));
        assert_eq!(n.mac.as_deref(), Some("52:54:00:00:00:01"));
    }

    #[test]
    fn net_spec_selects_the_transport() {
        let n = NetSpec::parse("br0,transport=pci,mac=52:54:00:00:00:02").unwrap();
        assert_eq!(n.transport, Transport::Pci);
        assert_eq!(
            NetSpec::parse("br0,transport=mmio").unwrap().transport,
            Transport::Mmio
        );
        assert!(
            NetSpec::parse("br0,transport=isa")
                .unwrap_err()
                .contains("unknown transport")
        );
    }

    #[test]
    fn net_spec_rejects_bad_mac_and_unknown_options() {
        assert!(
            NetSpec::parse("br0,mac=zz")
                .unwrap_err()
                .contains("invalid MAC")
        );
        assert!(
            NetSpec::parse("br0,queues=2")
                .unwrap_err()
                .contains("unknown --net option")
        );
        assert!(NetSpec::parse("tap=x").is_err());
        assert!(NetSpec::parse("").is_err());
    }

    #[test]
    fn disk_spec_parses_readonly_format_serial_and_transport() {
        let d =
            DiskSpec::parse("/img/a.qcow2,readonly,format=qcow2,serial=SN1,transport=pci").unwrap();
        assert_eq!(d.path, PathBuf::from("/img/a.qcow2"));
        assert!(d.readonly);
        assert_eq!(d.format, Some(ImageFormat::Qcow2));
        assert_eq!(d.serial.as_deref(), Some("SN1"));
        assert_eq!(d.transport, Transport::Pci);
        let d = DiskSpec::parse("/img/b.raw").unwrap();
        assert!(!d.readonly);
        assert_eq!(d.format, None);
        assert_eq!(d.serial_for("web", 1), "web-d1");
        assert!(
            DiskSpec::parse("x,format=vmdk")
                .unwrap_err()
                .contains("unknown disk format")
        );
        assert!(
            DiskSpec::parse("x,cache=none")
                .unwrap_err()
                .contains("unknown --disk option")
        );
        assert!(DiskSpec::parse("x,serial=012345678901234567890").is_err());
        assert!(DiskSpec::parse("").is_err());
    }

    #[test]
    fn default_mac_is_derived_from_name_and_index() {
        let n = NetSpec::parse("br0").unwrap();
        assert_eq!(n.mac_for("a", 0).unwrap(), crate::mac::derived("a", 0));
    }

    #[test]
    fn cpu_lists_expand_ranges_and_reject_garbage() {
        assert_eq!(parse_cpu_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(parse_cpu_list("1").unwrap(), vec![1]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
        assert!(parse_cpu_list("").is_err());
    }

    #[test]
    fn console_spec_parses_stdio_and_file() {
        assert_eq!(ConsoleSpec::parse("stdio").unwrap(), ConsoleSpec::Stdio);
        assert_eq!(
            ConsoleSpec::parse("file:/tmp/x").unwrap(),
            ConsoleSpec::File("/tmp/x".into())
        );
        assert!(ConsoleSpec::parse("pty").is_err());
    }
}
