//! Giving the memory malloc keeps after a burst back to the system.

use std::time::Instant;

use tracing::debug;

/// Hands the memory malloc keeps after a burst back to the system.
///
/// Adding 100,000 flows, or dumping them, allocates and frees hundreds of
/// thousands of small blocks (decoded flow_mods, flow stats, reply
/// buffers). glibc keeps freed blocks in its heap and returns on its own
/// only what lies at the very top, so RSS stayed ~24 MiB above the live
/// data after such a burst. `malloc_trim(0)` releases every free page. It
/// walks every arena under its lock, so it runs in the revalidator thread,
/// and only after RSS grew by [`HeapTrimmer::GROWTH_KIB`] since its lowest
/// point, which only bursts of OpenFlow or database work do; then again
/// at each following tick while RSS keeps moving, since a trim in the
/// middle of a burst cannot release what the burst frees afterwards.
pub struct HeapTrimmer {
    /// Lowest RSS seen since the last trim, or RSS right after it (KiB).
    floor_kib: u64,
    /// RSS at the previous tick (KiB).
    last_kib: u64,
    /// The previous tick trimmed.
    settling: bool,
}

impl HeapTrimmer {
    const GROWTH_KIB: u64 = 16 * 1024;
    /// RSS change that counts as "still moving" after a trim.
    const MOVING_KIB: u64 = 1024;

    pub fn new() -> HeapTrimmer {
        let rss = rss_kib().unwrap_or(0);
        HeapTrimmer {
            floor_kib: rss,
            last_kib: rss,
            settling: false,
        }
    }

    /// Called once per revalidator tick.
    pub fn tick(&mut self) {
        let Some(rss) = rss_kib() else {
            return;
        };
        if !self.should_trim(rss) {
            return;
        }
        let start = Instant::now();
        trim_heap();
        let after = rss_kib().unwrap_or(rss);
        debug!(
            "malloc_trim: RSS {rss} KiB -> {after} KiB in {:?}",
            start.elapsed()
        );
        self.trimmed(after);
    }

    /// Whether RSS `rss` (KiB) calls for a trim now; if not, remembers it.
    fn should_trim(&mut self, rss: u64) -> bool {
        let grown = rss >= self.floor_kib.saturating_add(Self::GROWTH_KIB);
        let moving = self.settling && rss.abs_diff(self.last_kib) >= Self::MOVING_KIB;
        if !grown && !moving {
            self.settling = false;
            self.floor_kib = self.floor_kib.min(rss);
            self.last_kib = rss;
        }
        grown || moving
    }

    /// Records the RSS after a trim.
    fn trimmed(&mut self, after: u64) {
        self.floor_kib = after;
        self.last_kib = after;
        self.settling = true;
    }
}

/// VmRSS of this process in KiB.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim only gives free pages of glibc's arenas back to
    // the kernel; it takes the arenas' locks itself and may be called from
    // any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

#[cfg(test)]
mod tests {
    use super::HeapTrimmer;

    fn at(rss: u64) -> HeapTrimmer {
        HeapTrimmer {
            floor_kib: rss,
            last_kib: rss,
            settling: false,
        }
    }

    #[test]
    fn small_rss_changes_never_trigger_a_trim() {
        let mut t = at(40_000);
        for rss in [41_000, 39_000, 45_000, 39_000 + HeapTrimmer::GROWTH_KIB - 1] {
            assert!(!t.should_trim(rss), "{rss}");
        }
    }

    #[test]
    fn growth_above_the_lowest_point_triggers_a_trim_then_settling_stops_it() {
        let mut t = at(40_000);
        assert!(!t.should_trim(30_000), "a new, lower floor");
        assert!(t.should_trim(30_000 + HeapTrimmer::GROWTH_KIB));
        t.trimmed(60_000);
        // Still moving (the burst goes on): trim again on the next tick.
        assert!(t.should_trim(70_000));
        t.trimmed(65_000);
        // Settled: no more trims, and the floor is what the trim left.
        assert!(!t.should_trim(65_200));
        assert!(!t.should_trim(65_000 + HeapTrimmer::GROWTH_KIB - 1));
        assert!(t.should_trim(65_000 + HeapTrimmer::GROWTH_KIB));
    }
}
