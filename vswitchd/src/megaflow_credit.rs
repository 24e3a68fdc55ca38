//! How much of a megaflow's counters has been counted already: credited to
//! the OpenFlow rules (tables, mirrors, NetFlow, patch ports) its decision
//! stands for, or to a bond's load buckets.
//!
//! Each PMD keeps its own copy of a megaflow with its own counters, and a
//! megaflow dropped and installed again with the same match starts again
//! from zero. So what was credited is kept per PMD and per installation
//! (`MegaflowInfo::created`), and each report gives only what is new.

use std::time::Instant;

use datapath::MegaflowInfo;

/// What was credited of one match's megaflows, per PMD.
#[derive(Clone, Debug, Default)]
pub struct Credited {
    seen: Vec<Seen>,
}

#[derive(Clone, Copy, Debug)]
struct Seen {
    pmd: usize,
    created: Instant,
    packets: u64,
    bytes: u64,
}

impl Credited {
    /// The packets and bytes of `f` not credited yet, now marked credited.
    pub fn take(&mut self, f: &MegaflowInfo) -> (u64, u64) {
        let fresh = Seen {
            pmd: f.pmd,
            created: f.created,
            packets: f.packets,
            bytes: f.bytes,
        };
        match self.seen.iter_mut().find(|s| s.pmd == f.pmd) {
            Some(s) if s.created == f.created => {
                let new = (
                    f.packets.saturating_sub(s.packets),
                    f.bytes.saturating_sub(s.bytes),
                );
                s.packets = s.packets.max(f.packets);
                s.bytes = s.bytes.max(f.bytes);
                new
            }
            // Installed again on this PMD since: it counted from zero.
            Some(s) if f.created > s.created => {
                *s = fresh;
                (f.packets, f.bytes)
            }
            // A report about an installation already replaced.
            Some(_) => (0, 0),
            None => {
                self.seen.push(fresh);
                (f.packets, f.bytes)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn info(pmd: usize, created: Instant, packets: u64) -> MegaflowInfo {
        MegaflowInfo {
            pmd,
            m: Default::default(),
            actions: Vec::new(),
            packets,
            bytes: packets * 100,
            used: None,
            created,
        }
    }

    #[test]
    fn each_report_credits_only_what_is_new() {
        let t = Instant::now();
        let mut c = Credited::default();
        assert_eq!(c.take(&info(0, t, 3)), (3, 300));
        assert_eq!(c.take(&info(0, t, 3)), (0, 0));
        assert_eq!(c.take(&info(0, t, 5)), (2, 200));
        // An older dump read after a newer one credits nothing.
        assert_eq!(c.take(&info(0, t, 4)), (0, 0));
        assert_eq!(c.take(&info(0, t, 6)), (1, 100));
    }

    #[test]
    fn two_pmds_with_the_same_match_are_credited_separately() {
        let t = Instant::now();
        let mut c = Credited::default();
        assert_eq!(c.take(&info(0, t, 5)), (5, 500));
        assert_eq!(c.take(&info(1, t, 3)), (3, 300));
        assert_eq!(c.take(&info(0, t, 6)), (1, 100));
        assert_eq!(c.take(&info(1, t, 3)), (0, 0));
    }

    #[test]
    fn a_megaflow_installed_again_counts_from_zero() {
        let t = Instant::now();
        let later = t + Duration::from_millis(5);
        let mut c = Credited::default();
        assert_eq!(c.take(&info(0, t, 9)), (9, 900));
        assert_eq!(c.take(&info(0, later, 2)), (2, 200));
        assert_eq!(c.take(&info(0, later, 4)), (2, 200));
        // The replaced installation's late report is not credited again.
        assert_eq!(c.take(&info(0, t, 12)), (0, 0));
    }
}
