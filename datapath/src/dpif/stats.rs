//! PMD thread counters: written by the PMD once per poll iteration (single
//! writer, relaxed stores), read by anyone.
//!
//! Besides packet counts, a PMD accounts its time in cycles of the
//! time-stamp counter ([`cycles_now`]), per iteration (busy, idle polling,
//! sleeping) and, within busy iterations, per stage of the packet path
//! ([`Stage`]). Stages are timed once per batch, not per packet.

use std::sync::atomic::{AtomicU64, Ordering};

/// A stage of the packet path, timed once per batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Taking frames from the rx queue (copies out of rings and sockets).
    Receive = 0,
    /// Flow key extraction.
    Parse,
    /// Hashing and the exact-match cache.
    Emc,
    /// The megaflow classifier, for exact-match cache misses.
    Megaflow,
    /// Misses handed to the slow path.
    Upcall,
    /// Running datapath actions, including copying into tx queues.
    Execute,
    /// Flushing the touched tx queues (publishing, notifying).
    Send,
}

/// Number of [`Stage`]s.
pub const N_STAGES: usize = 7;

impl Stage {
    pub const ALL: [Stage; N_STAGES] = [
        Stage::Receive,
        Stage::Parse,
        Stage::Emc,
        Stage::Megaflow,
        Stage::Upcall,
        Stage::Execute,
        Stage::Send,
    ];

    /// The stage's name in `dpif-netdev/pmd-perf-show`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Receive => "receive",
            Stage::Parse => "parse",
            Stage::Emc => "emc",
            Stage::Megaflow => "megaflow",
            Stage::Upcall => "upcall",
            Stage::Execute => "execute",
            Stage::Send => "send",
        }
    }
}

/// The current value of the CPU's time-stamp counter (x86_64), or of a
/// monotonic nanosecond clock elsewhere. Only differences are meaningful;
/// [`PmdStats::cycles_per_ns`] relates them to wall time.
#[inline]
pub fn cycles_now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC reads a counter; it has no memory effects and is
        // part of every x86_64 CPU.
        unsafe { std::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static T0: OnceLock<Instant> = OnceLock::new();
        T0.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// A PMD thread's counters, as `dpif-netdev/pmd-stats-show` and
/// `dpif-netdev/pmd-perf-show` report them.
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
    /// Extra passes through the datapath (recirculated or re-injected
    /// packets).
    pub recirculations: u64,
    /// Re-entries dropped: past the depth limit
    /// ([`flows::dpaction::MAX_RECIRC_DEPTH`]) or with the re-entry queue full.
    pub recirc_drops: u64,
    /// Nanoseconds spent in iterations that processed packets.
    pub busy_ns: u64,
    /// Nanoseconds spent polling empty queues or sleeping.
    pub idle_ns: u64,
    /// Poll iterations that received packets.
    pub busy_iterations: u64,
    /// Poll iterations that received nothing.
    pub idle_iterations: u64,
    /// Cycles of busy iterations.
    pub busy_cycles: u64,
    /// Cycles of idle iterations spent polling (sleep excluded).
    pub idle_cycles: u64,
    /// Cycles spent sleeping.
    pub sleep_cycles: u64,
    /// Cycles per [`Stage`] (indexed by `Stage as usize`).
    pub stage_cycles: [u64; N_STAGES],
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

    /// Average passes through the datapath per received packet
    /// (`1 + recirculations / rx_packets`; 0 when none).
    pub fn passes_per_packet(&self) -> f64 {
        if self.rx_packets == 0 {
            0.0
        } else {
            1.0 + self.recirculations as f64 / self.rx_packets as f64
        }
    }

    /// Cycles of `stage` so far.
    pub fn stage(&self, stage: Stage) -> u64 {
        self.stage_cycles[stage as usize]
    }

    /// Counter cycles per nanosecond, measured by the PMD itself over all
    /// its iterations (0 before any).
    pub fn cycles_per_ns(&self) -> f64 {
        let ns = self.busy_ns + self.idle_ns;
        if ns == 0 {
            0.0
        } else {
            (self.busy_cycles + self.idle_cycles + self.sleep_cycles) as f64 / ns as f64
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
    pub recirculations: u64,
    pub recirc_drops: u64,
    pub busy_ns: u64,
    pub idle_ns: u64,
    pub busy_iterations: u64,
    pub idle_iterations: u64,
    pub busy_cycles: u64,
    pub idle_cycles: u64,
    pub sleep_cycles: u64,
    pub stage_cycles: [u64; N_STAGES],
}

/// Times consecutive stages of one batch: each [`StageClock::lap`] charges
/// the cycles since the previous lap to a stage.
pub(crate) struct StageClock {
    last: u64,
}

impl StageClock {
    #[inline]
    pub fn start() -> StageClock {
        StageClock { last: cycles_now() }
    }

    /// A clock whose last lap was at `cycles` (a reading the caller
    /// already took: chaining laps across batches saves a counter read,
    /// which costs tens of nanoseconds in a VM).
    #[inline]
    pub fn at(cycles: u64) -> StageClock {
        StageClock { last: cycles }
    }

    /// The counter at the last lap.
    #[inline]
    pub fn last(&self) -> u64 {
        self.last
    }

    #[inline]
    pub fn lap(&mut self, local: &mut Local, stage: Stage) {
        let now = cycles_now();
        local.stage_cycles[stage as usize] += now.wrapping_sub(self.last);
        self.last = now;
    }
}

#[derive(Default)]
pub(crate) struct PmdCounters {
    cpu: AtomicU64,
    rx_packets: AtomicU64,
    emc_hits: AtomicU64,
    megaflow_hits: AtomicU64,
    upcalls: AtomicU64,
    lost_upcalls: AtomicU64,
    recirculations: AtomicU64,
    recirc_drops: AtomicU64,
    busy_ns: AtomicU64,
    idle_ns: AtomicU64,
    busy_iterations: AtomicU64,
    idle_iterations: AtomicU64,
    busy_cycles: AtomicU64,
    idle_cycles: AtomicU64,
    sleep_cycles: AtomicU64,
    stage_cycles: [AtomicU64; N_STAGES],
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
        s(&self.recirculations, l.recirculations);
        s(&self.recirc_drops, l.recirc_drops);
        s(&self.busy_ns, l.busy_ns);
        s(&self.idle_ns, l.idle_ns);
        s(&self.busy_iterations, l.busy_iterations);
        s(&self.idle_iterations, l.idle_iterations);
        s(&self.busy_cycles, l.busy_cycles);
        s(&self.idle_cycles, l.idle_cycles);
        s(&self.sleep_cycles, l.sleep_cycles);
        for (a, v) in self.stage_cycles.iter().zip(l.stage_cycles) {
            s(a, v);
        }
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
            recirculations: g(&self.recirculations),
            recirc_drops: g(&self.recirc_drops),
            busy_ns: g(&self.busy_ns),
            idle_ns: g(&self.idle_ns),
            busy_iterations: g(&self.busy_iterations),
            idle_iterations: g(&self.idle_iterations),
            busy_cycles: g(&self.busy_cycles),
            idle_cycles: g(&self.idle_cycles),
            sleep_cycles: g(&self.sleep_cycles),
            stage_cycles: std::array::from_fn(|i| g(&self.stage_cycles[i])),
        }
    }
}
