//! PMD thread counters: written by the PMD once per poll iteration (single
//! writer, relaxed stores), read by anyone.

use std::sync::atomic::{AtomicU64, Ordering};

/// A PMD thread's counters, as `dpif-netdev/pmd-stats-show` reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PmdStats {
    pub pmd: usize,
    /// CPU the thread is pinned to.
    pub cpu: Option<usize>,
    pub rx_packets: u64,
    pub emc_hits: u64,
    pub megaflow_hits: u64,
    /// Misses sent to the slow path.
    pub upcalls: u64,
    /// Misses dropped because the upcall queue was full.
    pub lost_upcalls: u64,
    /// Nanoseconds spent in iterations that processed packets.
    pub busy_ns: u64,
    /// Nanoseconds spent polling empty queues or sleeping.
    pub idle_ns: u64,
}

impl PmdStats {
    /// Busy nanoseconds per received packet (0 when none).
    pub fn ns_per_packet(&self) -> f64 {
        if self.rx_packets == 0 {
            0.0
        } else {
            self.busy_ns as f64 / self.rx_packets as f64
        }
    }
}

/// Local (plain) counters of the PMD, published to [`PmdCounters`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Local {
    pub rx_packets: u64,
    pub emc_hits: u64,
    pub megaflow_hits: u64,
    pub upcalls: u64,
    pub lost_upcalls: u64,
    pub busy_ns: u64,
    pub idle_ns: u64,
}

#[derive(Default)]
pub(crate) struct PmdCounters {
    cpu: AtomicU64,
    rx_packets: AtomicU64,
    emc_hits: AtomicU64,
    megaflow_hits: AtomicU64,
    upcalls: AtomicU64,
    lost_upcalls: AtomicU64,
    busy_ns: AtomicU64,
    idle_ns: AtomicU64,
}

impl PmdCounters {
    pub fn set_cpu(&self, cpu: Option<usize>) {
        self.cpu
            .store(cpu.map_or(u64::MAX, |c| c as u64), Ordering::Relaxed);
    }

    pub fn publish(&self, l: &Local) {
        let s = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        s(&self.rx_packets, l.rx_packets);
        s(&self.emc_hits, l.emc_hits);
        s(&self.megaflow_hits, l.megaflow_hits);
        s(&self.upcalls, l.upcalls);
        s(&self.lost_upcalls, l.lost_upcalls);
        s(&self.busy_ns, l.busy_ns);
        s(&self.idle_ns, l.idle_ns);
    }

    pub fn snapshot(&self, pmd: usize) -> PmdStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let cpu = g(&self.cpu);
        PmdStats {
            pmd,
            cpu: (cpu != u64::MAX).then_some(cpu as usize),
            rx_packets: g(&self.rx_packets),
            emc_hits: g(&self.emc_hits),
            megaflow_hits: g(&self.megaflow_hits),
            upcalls: g(&self.upcalls),
            lost_upcalls: g(&self.lost_upcalls),
            busy_ns: g(&self.busy_ns),
            idle_ns: g(&self.idle_ns),
        }
    }
}
