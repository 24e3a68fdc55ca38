//! Adding and removing the VM's switch ports through the config DB, by
//! running the project's `vsctl` (same options as ovs-vsctl).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Name of the `index`th port of VM `vm`.
pub fn port_name(vm: &str, index: usize) -> String {
    format!("vm-{vm}-{index}")
}

/// The vsctl to run: `$FERROVS_VSCTL`, else `vsctl` next to this
/// executable, else `vsctl` from PATH.
pub fn vsctl_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("FERROVS_VSCTL") {
        return p.into();
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        for cand in [dir.join("vsctl"), dir.join("../vsctl")] {
            if cand.is_file() {
                return cand;
            }
        }
    }
    "vsctl".into()
}

/// Arguments of the add-port transaction: a dpdkvhostuser interface, the
/// switch being the vhost-user server at `$FERROVS_RUNDIR/PORT`.
pub fn add_port_args(rundir: &Path, bridge: &str, port: &str) -> Vec<String> {
    vec![
        format!("--db=unix:{}", rundir.join("db.sock").display()),
        "add-port".into(),
        bridge.into(),
        port.into(),
        "--".into(),
        "set".into(),
        "Interface".into(),
        port.into(),
        "type=dpdkvhostuser".into(),
    ]
}

/// Arguments to remove the port again.
pub fn del_port_args(rundir: &Path, port: &str) -> Vec<String> {
    vec![
        format!("--db=unix:{}", rundir.join("db.sock").display()),
        "--if-exists".into(),
        "del-port".into(),
        port.into(),
    ]
}

/// Runs vsctl; on failure returns its stderr (first line) as the message.
pub fn run(args: &[String]) -> Result<(), String> {
    let bin = vsctl_binary();
    let out = Command::new(&bin)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let msg = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    Err(if msg.is_empty() {
        format!("{} exited with {}", bin.display(), out.status)
    } else {
        msg.trim().to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_port_creates_a_dpdkvhostuser_interface_named_after_the_vm() {
        let a = add_port_args(Path::new("/run/ferrovs"), "br0", &port_name("web", 0));
        assert_eq!(
            a.join(" "),
            "--db=unix:/run/ferrovs/db.sock add-port br0 vm-web-0 -- set Interface vm-web-0 type=dpdkvhostuser"
        );
    }

    #[test]
    fn del_port_tolerates_an_already_removed_port() {
        let a = del_port_args(Path::new("/r"), "vm-web-1");
        assert_eq!(
            a.join(" "),
            "--db=unix:/r/db.sock --if-exists del-port vm-web-1"
        );
    }
}
