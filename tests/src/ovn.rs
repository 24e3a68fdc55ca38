//! The central part of an OVN deployment for the tests: the NB and SB
//! `ovsdb-server`s and `ovn-northd`, from Debian's `ovn-central` package.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::{ChildGuard, run, wait_until};

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
