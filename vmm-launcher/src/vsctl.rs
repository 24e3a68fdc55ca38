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

/// Arguments of the add-port transaction: a dpdkvhostuserclient interface,
/// the launcher being the vhost-user server at `socket` and the switch
/// connecting (and reconnecting after a restart) to it.
pub fn add_port_args(rundir: &Path, bridge: &str, port: &str, socket: &Path) -> Vec<String> {
    vec![
        format!("--db=unix:{}", rundir.join("db.sock").display()),
        "add-port".into(),
        bridge.into(),
        port.into(),
        "--".into(),
        "set".into(),
        "Interface".into(),
        port.into(),
        "type=dpdkvhostuserclient".into(),
        format!("options:vhost-server-path={}", socket.display()),
    ]
}

/// Arguments to read `Open_vSwitch . other_config:KEY` (empty when unset).
pub fn get_other_config_args(rundir: &Path, key: &str) -> Vec<String> {
    vec![
        format!("--db=unix:{}", rundir.join("db.sock").display()),
        "--if-exists".into(),
        "get".into(),
        "Open_vSwitch".into(),
        ".".into(),
        format!("other_config:{key}"),
    ]
}

/// Where the launcher puts the vhost-user socket of `port`: the switch's
/// `other_config:vhost-sock-dir` (relative to the run directory, as for the
/// switch's own sockets) when set, else the run directory.
pub fn socket_path(rundir: &Path, sock_dir: Option<&str>, port: &str) -> Result<PathBuf, String> {
    let dir = match sock_dir.map(str::trim).filter(|d| !d.is_empty()) {
        None => rundir.to_path_buf(),
        Some(d) => {
            let rel = Path::new(d);
            let ok = rel.is_relative()
                && rel
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !ok {
                return Err(format!(
                    "other_config:vhost-sock-dir {d:?}: must be a path inside the run directory (relative, without \"..\")"
                ));
            }
            rundir.join(rel)
        }
    };
    Ok(dir.join(port))
}

/// Runs vsctl and returns its standard output with quotes and blanks
/// trimmed (`get` prints strings quoted).
pub fn output(args: &[String]) -> Result<String, String> {
    let bin = vsctl_binary();
    let out = Command::new(&bin)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err
            .lines()
            .next()
            .unwrap_or("vsctl failed")
            .trim()
            .to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_matches('"')
        .to_string())
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
    fn add_port_creates_a_client_mode_interface_pointing_at_the_launchers_socket() {
        let a = add_port_args(
            Path::new("/run/ferrovs"),
            "br0",
            &port_name("web", 0),
            Path::new("/run/ferrovs/vm-web-0"),
        );
        assert_eq!(
            a.join(" "),
            "--db=unix:/run/ferrovs/db.sock add-port br0 vm-web-0 -- set Interface vm-web-0 type=dpdkvhostuserclient options:vhost-server-path=/run/ferrovs/vm-web-0"
        );
    }

    #[test]
    fn sockets_follow_vhost_sock_dir_inside_the_run_directory() {
        let r = Path::new("/r");
        assert_eq!(socket_path(r, None, "p").unwrap(), Path::new("/r/p"));
        assert_eq!(socket_path(r, Some(""), "p").unwrap(), Path::new("/r/p"));
        assert_eq!(
            socket_path(r, Some("vhost/socks"), "p").unwrap(),
            Path::new("/r/vhost/socks/p")
        );
        for bad in ["../out", "/abs", "a/../b"] {
            assert!(
                socket_path(r, Some(bad), "p")
                    .unwrap_err()
                    .contains("vhost-sock-dir"),
                "{bad}"
            );
        }
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
