//! Process resource limits vswitchd adjusts at start.

/// Raises the soft limit on open files to the hard limit (every port,
/// connection and vhost-user memory region holds descriptors). Returns the
/// (old, new) soft limits.
pub fn raise_nofile_limit() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into `lim`, which is valid.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let old = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads one valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((old, lim.rlim_cur))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_open_files_limit_ends_at_the_hard_limit() {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in raise_nofile_limit.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
        // Test processes usually start below the hard limit (1024 of a
        // much higher maximum), so this observes a real raise there.
        let (old, new) = raise_nofile_limit().unwrap();
        assert!(old <= new);
        assert_eq!(new, lim.rlim_max);
        let mut after = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut after) };
        assert_eq!(after.rlim_cur, lim.rlim_max);
    }
}
