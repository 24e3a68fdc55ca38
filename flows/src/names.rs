//! Interface and bridge names: the one check every component applies.
//!
//! A name becomes a kernel interface name (`ifreq`), a file name in the run
//! directory (`RUNDIR/NAME` for a vhost-user socket, `RUNDIR/NAME.mgmt` for
//! a bridge), and an OpenFlow port name. So it must fit in `IFNAMSIZ` and
//! must never reach outside the directory it is joined to.

/// Longest name, in bytes: `IFNAMSIZ - 1`, as Linux and Open vSwitch allow.
pub const NAME_MAX: usize = 15;

/// Why a name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name must not be empty string")]
    Empty,
    #[error("invalid interface name {0:?}: longer than {NAME_MAX} bytes")]
    TooLong(String),
    #[error(
        "invalid interface name {0:?}: must not contain '/', '\\', \"..\", NUL, spaces or control characters"
    )]
    BadCharacter(String),
}

/// Checks that `name` can name an interface, a bridge, or a file in the run
/// directory.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    // Characters first: a caller that lets a long name through (a patch
    // port has no device) still gets a name that stays in its directory.
    if name.contains("..")
        || name
            .chars()
            .any(|c| matches!(c, '/' | '\\') || c.is_whitespace() || c.is_control())
    {
        return Err(NameError::BadCharacter(name.to_owned()));
    }
    if name.len() > NAME_MAX {
        return Err(NameError::TooLong(name.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass() {
        for n in ["br0", "vhost-user-1", "eth0.100", "p_1", "a23456789012345"] {
            assert_eq!(check_name(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn names_that_reach_outside_a_directory_are_refused() {
        for n in ["../victim", "/tmp/x", "a/b", "..", "x..y", "a\\b", "nul\0x"] {
            assert!(
                matches!(check_name(n), Err(NameError::BadCharacter(_))),
                "{n:?}"
            );
        }
    }

    #[test]
    fn empty_long_and_blank_names_are_refused() {
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert!(matches!(
            check_name("a234567890123456"),
            Err(NameError::TooLong(_))
        ));
        assert!(check_name("a b").is_err());
        // A long name with a path in it is refused for the path.
        assert!(matches!(
            check_name("patch-../../../etc/x"),
            Err(NameError::BadCharacter(_))
        ));
        assert!(check_name("tab\t").is_err());
    }
}
