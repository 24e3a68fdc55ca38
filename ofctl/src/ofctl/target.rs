//! Where ofctl connects: a bridge name, `unix:PATH` or `tcp:IP:PORT`.

use std::path::PathBuf;

/// Default run directory of the daemon's sockets.
pub const DEFAULT_RUNDIR: &str = "/run/ferrovs";

/// The daemon's run directory (`$FERROVS_RUNDIR` or [`DEFAULT_RUNDIR`]).
pub fn rundir() -> PathBuf {
    std::env::var_os("FERROVS_RUNDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNDIR))
}

/// Resolves a target as ovs-ofctl does: `unix:` and `tcp:` are used as
/// they are; anything else is a bridge whose management socket is
/// `RUNDIR/BRIDGE.mgmt`.
pub fn resolve(target: &str) -> String {
    if target.starts_with("unix:") || target.starts_with("tcp:") {
        target.to_string()
    } else {
        format!("unix:{}", rundir().join(format!("{target}.mgmt")).display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_targets_are_kept_and_bridges_map_to_mgmt_sockets() {
        assert_eq!(resolve("tcp:127.0.0.1:6653"), "tcp:127.0.0.1:6653");
        assert_eq!(resolve("unix:/x/y"), "unix:/x/y");
        let r = resolve("br0");
        assert!(r.starts_with("unix:"));
        assert!(r.ends_with("/br0.mgmt"));
    }
}
