//! When an idle PMD thread may sleep, and for how long.
//!
//! As in Open vSwitch, a PMD that owns a dedicated core (`pmd-cpu-mask`)
//! busy-polls and never sleeps, so no packet waits for it to wake up.
//! `other_config:pmd-maxsleep` (microseconds) overrides that either way: 0
//! forbids sleeping, a positive value allows sleeps up to it. Without a
//! dedicated core and without the setting, the PMD sleeps when idle (it
//! shares its core with everything else).

use std::time::Duration;

/// Largest `pmd-maxsleep` honoured (as in OVS: 10 ms).
pub const MAX_SLEEP_LIMIT: Duration = Duration::from_micros(10_000);

/// The inputs of the decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollPolicy {
    /// The PMD is pinned to a CPU of `pmd-cpu-mask`.
    pub pinned: bool,
    /// `other_config:pmd-maxsleep`, when set.
    pub max_sleep: Option<Duration>,
    /// Longest sleep of an unpinned PMD when `pmd-maxsleep` is not set.
    pub default_sleep: Duration,
}

impl PollPolicy {
    /// Longest sleep allowed when idle; zero means spin, never sleep.
    pub fn max_sleep(&self) -> Duration {
        match self.max_sleep {
            Some(d) => d.min(MAX_SLEEP_LIMIT),
            None if self.pinned => Duration::ZERO,
            None => self.default_sleep,
        }
    }

    /// Whether an idle PMD may sleep at all.
    pub fn may_sleep(&self) -> bool {
        !self.max_sleep().is_zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Duration = Duration::from_micros(500);

    fn policy(pinned: bool, max_sleep: Option<u64>) -> PollPolicy {
        PollPolicy {
            pinned,
            max_sleep: max_sleep.map(Duration::from_micros),
            default_sleep: DEFAULT,
        }
    }

    #[test]
    fn a_pmd_on_a_dedicated_core_spins_without_sleeping() {
        let p = policy(true, None);
        assert!(!p.may_sleep());
        assert_eq!(p.max_sleep(), Duration::ZERO);
    }

    #[test]
    fn an_unpinned_pmd_sleeps_up_to_the_default() {
        let p = policy(false, None);
        assert!(p.may_sleep());
        assert_eq!(p.max_sleep(), DEFAULT);
    }

    #[test]
    fn pmd_maxsleep_lets_a_pinned_pmd_sleep_up_to_it() {
        let p = policy(true, Some(50));
        assert!(p.may_sleep());
        assert_eq!(p.max_sleep(), Duration::from_micros(50));
    }

    #[test]
    fn pmd_maxsleep_zero_forbids_sleeping_even_unpinned() {
        assert!(!policy(false, Some(0)).may_sleep());
    }

    #[test]
    fn pmd_maxsleep_is_capped_at_ten_milliseconds() {
        assert_eq!(policy(false, Some(1_000_000)).max_sleep(), MAX_SLEEP_LIMIT);
    }
}
