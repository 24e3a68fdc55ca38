//! The MAC learning table behind the NORMAL action: (VLAN, MAC) → port.
//!
//! Entries age out after `aging_secs` without being seen; when the table is
//! full, learning a new address evicts the least recently seen one. Time is
//! passed in (milliseconds, any monotonic origin).

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use crate::action::PortNo;

/// Default capacity (OVS's `mac-table-size` default).
pub const DEFAULT_MAX_ENTRIES: usize = 8192;
/// Default aging time in seconds (OVS's `mac-aging-time` default).
pub const DEFAULT_AGING_SECS: u32 = 300;

/// One learned address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MacEntry {
    pub vlan: u16,
    pub mac: [u8; 6],
    pub port: PortNo,
    /// When the address was last seen (ms).
    pub last_seen_ms: u64,
}

impl MacEntry {
    /// Age in whole seconds at `now_ms` (as `fdb/show` prints it).
    pub fn age_secs(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.last_seen_ms) / 1000
    }
}

/// What learning an address did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LearnOutcome {
    /// A new entry.
    New,
    /// A new entry, after evicting the oldest one because the table was full.
    NewEvicted { evicted: MacEntry },
    /// The address moved from another port.
    Moved { from: PortNo },
    /// Same port; only the timestamp changed.
    Refreshed,
}

/// The MAC learning table of one bridge.
#[derive(Clone, Debug)]
pub struct MacLearning {
    max_entries: usize,
    aging_secs: u32,
    entries: FxHashMap<(u16, [u8; 6]), (PortNo, u64)>,
    /// (last_seen, vlan, mac): oldest first, for eviction and aging.
    by_age: BTreeSet<(u64, u16, [u8; 6])>,
    version: u64,
}

impl Default for MacLearning {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ENTRIES, DEFAULT_AGING_SECS)
    }
}

impl MacLearning {
    /// A table holding at most `max_entries` (at least 1) that ages entries
    /// after `aging_secs`.
    pub fn new(max_entries: usize, aging_secs: u32) -> MacLearning {
        MacLearning {
            max_entries: max_entries.max(1),
            aging_secs,
            entries: FxHashMap::default(),
            by_age: BTreeSet::new(),
            version: 0,
        }
    }

    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    pub fn aging_secs(&self) -> u32 {
        self.aging_secs
    }

    /// Changes the capacity, evicting the oldest entries if needed.
    pub fn set_max_entries(&mut self, n: usize) -> Vec<MacEntry> {
        self.max_entries = n.max(1);
        let mut out = Vec::new();
        while self.entries.len() > self.max_entries {
            match self.evict_oldest() {
                Some(e) => out.push(e),
                None => break,
            }
        }
        out
    }

    pub fn set_aging_secs(&mut self, secs: u32) {
        self.aging_secs = secs;
    }

    /// Bumped whenever a forwarding decision could change (an entry added,
    /// moved or removed; not on a mere refresh).
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn is_expired(&self, last_seen_ms: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(last_seen_ms) >= u64::from(self.aging_secs) * 1000
    }

    fn evict_oldest(&mut self) -> Option<MacEntry> {
        let (seen, vlan, mac) = self.by_age.pop_first()?;
        let (port, _) = self.entries.remove(&(vlan, mac))?;
        self.version += 1;
        Some(MacEntry {
            vlan,
            mac,
            port,
            last_seen_ms: seen,
        })
    }

    /// Records that `mac` was seen on `port` in `vlan` at `now_ms`.
    pub fn learn(&mut self, vlan: u16, mac: [u8; 6], port: PortNo, now_ms: u64) -> LearnOutcome {
        if let Some((old_port, seen)) = self.entries.get_mut(&(vlan, mac)) {
            let old_seen = *seen;
            let from = *old_port;
            *seen = now_ms;
            *old_port = port;
            self.by_age.remove(&(old_seen, vlan, mac));
            self.by_age.insert((now_ms, vlan, mac));
            if from != port {
                self.version += 1;
                return LearnOutcome::Moved { from };
            }
            return LearnOutcome::Refreshed;
        }
        let evicted = if self.entries.len() >= self.max_entries {
            self.evict_oldest()
        } else {
            None
        };
        self.entries.insert((vlan, mac), (port, now_ms));
        self.by_age.insert((now_ms, vlan, mac));
        self.version += 1;
        match evicted {
            Some(evicted) => LearnOutcome::NewEvicted { evicted },
            None => LearnOutcome::New,
        }
    }

    /// The port `mac` was learned on in `vlan`, unless it has aged out.
    pub fn lookup(&self, vlan: u16, mac: [u8; 6], now_ms: u64) -> Option<PortNo> {
        let (port, seen) = self.entries.get(&(vlan, mac))?;
        (!self.is_expired(*seen, now_ms)).then_some(*port)
    }

    /// Removes entries not seen for `aging_secs`.
    pub fn expire(&mut self, now_ms: u64) -> Vec<MacEntry> {
        let mut out = Vec::new();
        while let Some(&(seen, _, _)) = self.by_age.first() {
            if !self.is_expired(seen, now_ms) {
                break;
            }
            if let Some(e) = self.evict_oldest() {
                out.push(e);
            }
        }
        out
    }

    /// Removes every entry learned on `port` (the port was deleted or went down).
    pub fn flush_port(&mut self, port: PortNo) -> usize {
        let doomed: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, (p, _))| *p == port)
            .map(|(k, (_, seen))| (*k, *seen))
            .collect();
        for ((vlan, mac), seen) in &doomed {
            self.entries.remove(&(*vlan, *mac));
            self.by_age.remove(&(*seen, *vlan, *mac));
        }
        if !doomed.is_empty() {
            self.version += 1;
        }
        doomed.len()
    }

    /// Removes every entry (`fdb/flush`).
    pub fn flush(&mut self) {
        if !self.entries.is_empty() {
            self.version += 1;
        }
        self.entries.clear();
        self.by_age.clear();
    }

    /// Entries, oldest first, as `fdb/show` lists them.
    pub fn iter(&self) -> impl Iterator<Item = MacEntry> + '_ {
        self.by_age.iter().map(|&(seen, vlan, mac)| {
            let port = self.entries.get(&(vlan, mac)).map_or(0, |(p, _)| *p);
            MacEntry {
                vlan,
                mac,
                port,
                last_seen_ms: seen,
            }
        })
    }
}

/// True for group (multicast/broadcast) addresses.
pub fn is_multicast(mac: [u8; 6]) -> bool {
    mac[0] & 1 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [0, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [0, 0, 0, 0, 0, 0xb];
    const C: [u8; 6] = [0, 0, 0, 0, 0, 0xc];

    #[test]
    fn learning_reports_new_refreshed_and_moved() {
        let mut t = MacLearning::default();
        assert_eq!(t.learn(10, A, 1, 0), LearnOutcome::New);
        assert_eq!(t.learn(10, A, 1, 5), LearnOutcome::Refreshed);
        assert_eq!(t.learn(10, A, 2, 6), LearnOutcome::Moved { from: 1 });
        assert_eq!(t.lookup(10, A, 7), Some(2));
        assert_eq!(t.lookup(20, A, 7), None, "entries are per VLAN");
    }

    #[test]
    fn full_table_evicts_the_least_recently_seen() {
        let mut t = MacLearning::new(2, 300);
        t.learn(0, A, 1, 0);
        t.learn(0, B, 2, 10);
        t.learn(0, A, 1, 20); // A is now newer than B
        match t.learn(0, C, 3, 30) {
            LearnOutcome::NewEvicted { evicted } => assert_eq!(evicted.mac, B),
            o => panic!("expected eviction, got {o:?}"),
        }
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup(0, B, 30), None);
        assert_eq!(t.lookup(0, A, 30), Some(1));
    }

    #[test]
    fn entries_age_out_after_aging_time() {
        let mut t = MacLearning::new(10, 300);
        t.learn(1, A, 1, 0);
        t.learn(1, B, 2, 100_000);
        assert_eq!(t.lookup(1, A, 299_999), Some(1));
        assert_eq!(t.lookup(1, A, 300_000), None, "aged entry is not used");
        let gone = t.expire(300_000);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].mac, A);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn version_changes_on_new_and_move_but_not_refresh() {
        let mut t = MacLearning::default();
        let v0 = t.version();
        t.learn(1, A, 1, 0);
        let v1 = t.version();
        assert!(v1 > v0);
        t.learn(1, A, 1, 1);
        assert_eq!(t.version(), v1);
        t.learn(1, A, 2, 2);
        assert!(t.version() > v1);
    }

    #[test]
    fn flush_port_removes_only_that_ports_entries() {
        let mut t = MacLearning::default();
        t.learn(1, A, 1, 0);
        t.learn(1, B, 2, 0);
        assert_eq!(t.flush_port(1), 1);
        assert_eq!(t.iter().map(|e| e.mac).collect::<Vec<_>>(), vec![B]);
        t.flush();
        assert!(t.is_empty());
    }
}
