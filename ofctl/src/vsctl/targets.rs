//! Connection targets (`set-controller`, `set-manager`) and the names
//! `add-br`/`add-port` create, checked before anything is written.

use std::net::IpAddr;

use flows::names::{NameError, check_name};

use super::VsctlError;

/// Active (`tcp:`, `ssl:`, `unix:`) and passive (`ptcp:`, `pssl:`,
/// `punix:`) target forms, for messages.
const FORMS: &str =
    "tcp:IP[:PORT], ssl:IP[:PORT], unix:FILE, ptcp:[PORT][:IP], pssl:[PORT][:IP], punix:FILE";

fn ip(s: &str) -> bool {
    let s = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    s.parse::<IpAddr>().is_ok()
}

fn port(s: &str) -> bool {
    s.parse::<u16>().is_ok()
}

/// Splits `IP[:PORT]`, with IPv6 addresses in brackets.
fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if s.starts_with('[') {
        match s.find(']') {
            Some(i) => (&s[..=i], s[i + 1..].strip_prefix(':')),
            None => (s, None),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    }
}

/// Whether `t` is a well-formed connection target.
fn valid_target(t: &str) -> bool {
    let Some((kind, rest)) = t.split_once(':') else {
        return false;
    };
    match kind {
        "tcp" | "ssl" => {
            let (h, p) = split_host_port(rest);
            ip(h) && p.is_none_or(port)
        }
        "ptcp" | "pssl" => {
            if rest.is_empty() {
                return true;
            }
            let (p, h) = match rest.split_once(':') {
                Some((p, h)) => (p, Some(h)),
                None => (rest, None),
            };
            (p.is_empty() || port(p)) && h.is_none_or(ip)
        }
        "unix" | "punix" => !rest.is_empty(),
        _ => false,
    }
}

/// Refuses a `set-controller`/`set-manager` target ferrovs (and Open
/// vSwitch) could never connect with. `what` is "controller" or "manager".
pub fn check_target(t: &str, what: &str) -> Result<(), VsctlError> {
    if valid_target(t) {
        Ok(())
    } else {
        Err(VsctlError::msg(format!(
            "{t}: unsupported {what} target (expected {FORMS})"
        )))
    }
}

/// Refuses a bridge, port or interface name that is empty or could reach
/// outside a directory. `what` is "bridge", "port" or "interface".
///
/// A port or interface may be longer than a device name, as with
/// ovs-vsctl: a patch port has no device (recipes name them
/// `patch-br-int-to-br-ex`), and its type is only set by a later command.
/// vswitchd reports a device type that cannot take such a name in the
/// Interface's `error` column. A bridge is its own internal device, so its
/// name must fit one.
pub fn check_new_name(name: &str, what: &str) -> Result<(), VsctlError> {
    match check_name(name) {
        Ok(()) => Ok(()),
        Err(NameError::TooLong(_)) if what != "bridge" => Ok(()),
        Err(NameError::Empty) => Err(VsctlError::msg(format!(
            "{what} name must not be empty string"
        ))),
        Err(e) => Err(VsctlError::msg(format!(
            "cannot create a {what} named {name}: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_targets_pass() {
        for t in [
            "tcp:127.0.0.1",
            "tcp:127.0.0.1:6653",
            "tcp:[::1]:6653",
            "ssl:10.0.0.1:6653",
            "unix:/run/ctl.sock",
            "ptcp:6653",
            "ptcp:6640:127.0.0.1",
            "ptcp:",
            "punix:/tmp/x",
        ] {
            assert!(check_target(t, "controller").is_ok(), "{t}");
        }
    }

    #[test]
    fn unknown_kinds_and_malformed_addresses_are_refused() {
        for t in [
            "bogus:target",
            "tcp:",
            "tcp:foo",
            "tcp:1.2.3.4:99999",
            "unix:",
            "ptcp:x",
            "127.0.0.1",
        ] {
            let e = check_target(t, "controller").unwrap_err();
            assert!(
                e.message
                    .starts_with(&format!("{t}: unsupported controller target")),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn names_with_paths_and_empty_names_are_refused() {
        assert_eq!(
            check_new_name("", "port").unwrap_err().message,
            "port name must not be empty string"
        );
        let e = check_new_name("../victim", "port").unwrap_err();
        assert!(
            e.message
                .starts_with("cannot create a port named ../victim: invalid interface name"),
            "{}",
            e.message
        );
        assert!(check_new_name("/tmp/x", "bridge").is_err());
        assert!(check_new_name("br0", "bridge").is_ok());
    }

    #[test]
    fn ports_may_be_longer_than_a_device_name_but_bridges_may_not() {
        assert!(check_new_name("patch-br-int-to-br-ex", "port").is_ok());
        assert!(check_new_name("patch-br-int-to-br-ex", "interface").is_ok());
        let e = check_new_name("bridge-name-too-long", "bridge").unwrap_err();
        assert!(e.message.contains("longer than 15 bytes"), "{}", e.message);
        assert!(check_new_name("patch-../../x-long-name", "port").is_err());
    }
}
