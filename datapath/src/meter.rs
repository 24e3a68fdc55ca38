//! Datapath meters: token-bucket rate limiters shared by every PMD thread,
//! used by the OpenFlow meters (`DpAction::Meter`) and by port policing
//! (`ingress_policing_rate`, QoS `egress-policer`).
//!
//! Each band is a token bucket kept as one atomic "theoretical arrival
//! time" (the GCRA form of a token bucket): the moment at which the bucket
//! would be full again. A packet of cost `c` (in time units: its bits or 1
//! packet, divided by the rate) conforms when `max(tat, now) + c <= now +
//! capacity`, and then moves `tat` forward by `c`. A PMD meters a whole
//! batch of packets with one compare-and-swap per band, so threads share a
//! meter exactly, without locks, and the packet path never allocates.
//!
//! Meters live in fixed slots (ids `0..MAX_DP_METERS`), allocated by the
//! control path and filled lazily by chunks, so a lookup is an index and an
//! acquire load.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use flows::meter::{MAX_BANDS, Meter};

/// Time units per second: 1/64 ns, so that a 64-byte frame at 100 Gbit/s
/// still costs hundreds of units; a `u64` of them lasts 9 years.
const TICKS_PER_SEC: u128 = 64_000_000_000;
const TICKS_PER_NS: u64 = 64;
/// Meters per chunk, and chunks.
const CHUNK: usize = 256;
const N_CHUNKS: usize = 256;
/// How many datapath meters there can be.
pub const MAX_DP_METERS: u32 = (CHUNK * N_CHUNKS) as u32;

/// A mask of packets in a batch (bit i = packet i).
pub type BatchMask = u64;

/// One band of a limiter, in datapath terms.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LimiterBand {
    /// Units per second: bits/s, or packets/s for a packet meter.
    pub rate: u64,
    /// Bucket size in units (bits or packets).
    pub burst: u64,
}

/// What a datapath meter enforces.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LimiterConfig {
    /// Count packets instead of bits.
    pub pktps: bool,
    /// Bands, any order; a packet is dropped when it exceeds any of them.
    pub bands: Vec<LimiterBand>,
}

impl LimiterConfig {
    /// The limiter of an OpenFlow meter: kbps rates and kilobit bursts, or
    /// packets; a band without a burst size gets a bucket of one second of
    /// its rate.
    pub fn from_meter(m: &Meter) -> LimiterConfig {
        let pktps = m.flags.pktps();
        let scale = if pktps { 1 } else { 1000 };
        LimiterConfig {
            pktps,
            bands: m
                .bands
                .iter()
                .map(|b| {
                    let rate = u64::from(b.rate) * scale;
                    let burst = if b.burst_size == 0 {
                        rate
                    } else {
                        u64::from(b.burst_size) * scale
                    };
                    LimiterBand { rate, burst }
                })
                .collect(),
        }
    }

    /// A policer of `rate` bits/s with a bucket of `burst` bits.
    pub fn policer(rate_bps: u64, burst_bits: u64) -> LimiterConfig {
        LimiterConfig {
            pktps: false,
            bands: vec![LimiterBand {
                rate: rate_bps.max(1),
                burst: burst_bits,
            }],
        }
    }
}

/// Counters of one datapath meter.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct LimiterStats {
    /// Packets and bytes offered to the meter.
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Per band (configuration order): packets and bytes it dropped.
    pub bands: Vec<(u64, u64)>,
}

#[derive(Default)]
struct Band {
    rate: AtomicU64,
    /// Capacity in ticks.
    cap: AtomicU64,
    tat: AtomicU64,
    packets: AtomicU64,
    bytes: AtomicU64,
}

#[derive(Default)]
struct Slot {
    /// Number of bands in use (0: the meter lets everything through).
    n_bands: AtomicU32,
    pktps: AtomicU32,
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    bands: [Band; MAX_BANDS],
    /// Band indices by decreasing rate: the band credited with a drop is the
    /// highest-rate band the packet exceeded.
    order: [AtomicU32; MAX_BANDS],
}

struct Alloc {
    next: u32,
    free: Vec<u32>,
}

/// Every datapath meter.
pub struct Meters {
    chunks: Box<[OnceLock<Box<[Slot]>>]>,
    alloc: Mutex<Alloc>,
    epoch: Instant,
}

impl Default for Meters {
    fn default() -> Self {
        Meters::new()
    }
}

/// The cost in ticks of `units` at `rate` units per second.
#[inline]
fn cost(units: u64, rate: u64) -> u64 {
    let c = u128::from(units) * TICKS_PER_SEC / u128::from(rate.max(1));
    u64::try_from(c).unwrap_or(u64::MAX)
}

impl Meters {
    pub fn new() -> Meters {
        Meters {
            chunks: (0..N_CHUNKS).map(|_| OnceLock::new()).collect(),
            alloc: Mutex::new(Alloc {
                next: 0,
                free: Vec::new(),
            }),
            epoch: Instant::now(),
        }
    }

    /// Nanoseconds since this set was made: the clock [`Meters::run`] takes.
    #[inline]
    pub fn now_ns(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    #[inline]
    fn slot(&self, id: u32) -> Option<&Slot> {
        let id = id as usize;
        self.chunks.get(id / CHUNK)?.get()?.get(id % CHUNK)
    }

    fn slot_or_create(&self, id: u32) -> Option<&Slot> {
        let id = id as usize;
        let chunk = self.chunks.get(id / CHUNK)?;
        chunk
            .get_or_init(|| (0..CHUNK).map(|_| Slot::default()).collect())
            .get(id % CHUNK)
    }

    /// Reserves a free meter id (control path). `None` when all are used.
    pub fn alloc(&self) -> Option<u32> {
        let mut a = self.alloc.lock().unwrap_or_else(|e| e.into_inner());
        let id = match a.free.pop() {
            Some(id) => id,
            None if a.next < MAX_DP_METERS => {
                a.next += 1;
                a.next - 1
            }
            None => return None,
        };
        drop(a);
        let s = self.slot_or_create(id)?;
        s.n_bands.store(0, Ordering::Release);
        Some(id)
    }

    /// Returns `id` to the free list; it lets everything through until
    /// reused.
    pub fn free(&self, id: u32) {
        if let Some(s) = self.slot(id) {
            s.n_bands.store(0, Ordering::Release);
        }
        let mut a = self.alloc.lock().unwrap_or_else(|e| e.into_inner());
        if id < a.next && !a.free.contains(&id) {
            a.free.push(id);
        }
    }

    /// Configures meter `id` (control path). `reset` zeroes its counters
    /// and fills its buckets (a new meter); a modified meter keeps them.
    pub fn set(&self, id: u32, cfg: &LimiterConfig, reset: bool) {
        let Some(s) = self.slot_or_create(id) else {
            return;
        };
        let n = cfg.bands.len().min(MAX_BANDS);
        let had = s.n_bands.load(Ordering::Acquire) as usize;
        s.pktps.store(u32::from(cfg.pktps), Ordering::Relaxed);
        for (i, b) in cfg.bands.iter().take(n).enumerate() {
            let band = &s.bands[i];
            band.rate.store(b.rate.max(1), Ordering::Relaxed);
            band.cap.store(cost(b.burst, b.rate), Ordering::Relaxed);
            // A new meter, or a band the modified meter did not have,
            // starts full and uncounted.
            if reset || i >= had {
                band.tat.store(0, Ordering::Relaxed);
                band.packets.store(0, Ordering::Relaxed);
                band.bytes.store(0, Ordering::Relaxed);
            }
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(cfg.bands[i].rate));
        for (k, i) in order.into_iter().enumerate() {
            s.order[k].store(i as u32, Ordering::Relaxed);
        }
        if reset {
            s.packets_in.store(0, Ordering::Relaxed);
            s.bytes_in.store(0, Ordering::Relaxed);
        }
        s.n_bands.store(n as u32, Ordering::Release);
    }

    /// Counters of meter `id`.
    pub fn stats(&self, id: u32) -> LimiterStats {
        let Some(s) = self.slot(id) else {
            return LimiterStats::default();
        };
        let n = s.n_bands.load(Ordering::Acquire) as usize;
        LimiterStats {
            packets_in: s.packets_in.load(Ordering::Relaxed),
            bytes_in: s.bytes_in.load(Ordering::Relaxed),
            bands: s.bands[..n]
                .iter()
                .map(|b| {
                    (
                        b.packets.load(Ordering::Relaxed),
                        b.bytes.load(Ordering::Relaxed),
                    )
                })
                .collect(),
        }
    }

    /// Meters the packets of a batch whose lengths (bytes) are `lens` and
    /// whose bit is set in `offered`, at `now_ns` ([`Meters::now_ns`]).
    /// Returns the mask of those dropped. One compare-and-swap per band;
    /// no allocation, no lock.
    pub fn run(&self, id: u32, now_ns: u64, lens: &[u32], offered: BatchMask) -> BatchMask {
        debug_assert!(lens.len() <= BatchMask::BITS as usize);
        let Some(s) = self.slot(id) else {
            return 0;
        };
        let n_bands = (s.n_bands.load(Ordering::Acquire) as usize).min(MAX_BANDS);
        if offered == 0 {
            return 0;
        }
        let (mut n_in, mut bytes_in) = (0u64, 0u64);
        for (i, &l) in lens.iter().enumerate() {
            if offered & (1 << i) != 0 {
                n_in += 1;
                bytes_in += u64::from(l);
            }
        }
        s.packets_in.fetch_add(n_in, Ordering::Relaxed);
        s.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        if n_bands == 0 {
            return 0;
        }
        let pktps = s.pktps.load(Ordering::Relaxed) != 0;
        let now = now_ns.saturating_mul(TICKS_PER_NS);
        let mut exceeded = [0 as BatchMask; MAX_BANDS];
        let mut dropped: BatchMask = 0;
        for (b, band) in s.bands[..n_bands].iter().enumerate() {
            let rate = band.rate.load(Ordering::Relaxed);
            let limit = now.saturating_add(band.cap.load(Ordering::Relaxed));
            let per_packet = cost(1, rate);
            let mut old = band.tat.load(Ordering::Relaxed);
            let over = loop {
                let mut t = old.max(now);
                let mut over: BatchMask = 0;
                for (i, &l) in lens.iter().enumerate() {
                    if offered & (1 << i) == 0 {
                        continue;
                    }
                    let c = if pktps {
                        per_packet
                    } else {
                        cost(u64::from(l) * 8, rate)
                    };
                    match t.checked_add(c) {
                        Some(nt) if nt <= limit => t = nt,
                        _ => over |= 1 << i,
                    }
                }
                if t == old.max(now) {
                    // Nothing passed: the bucket is as it was.
                    break over;
                }
                match band
                    .tat
                    .compare_exchange_weak(old, t, Ordering::AcqRel, Ordering::Relaxed)
                {
                    Ok(_) => break over,
                    Err(cur) => old = cur,
                }
            };
            exceeded[b] = over;
            dropped |= over;
        }
        if dropped != 0 {
            // Credit each drop to the highest-rate band it exceeded.
            let mut left = dropped;
            for k in 0..n_bands {
                let b = (s.order[k].load(Ordering::Relaxed) as usize).min(n_bands - 1);
                let mine = exceeded[b] & left;
                if mine == 0 {
                    continue;
                }
                left &= !mine;
                let (mut p, mut by) = (0u64, 0u64);
                for (i, &l) in lens.iter().enumerate() {
                    if mine & (1 << i) != 0 {
                        p += 1;
                        by += u64::from(l);
                    }
                }
                s.bands[b].packets.fetch_add(p, Ordering::Relaxed);
                s.bands[b].bytes.fetch_add(by, Ordering::Relaxed);
            }
        }
        dropped
    }

    /// Meters one packet; true when it passes (slow paths and egress).
    #[inline]
    pub fn admit_one(&self, id: u32, now_ns: u64, len: u32) -> bool {
        self.run(id, now_ns, &[len], 1) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flows::meter::{MeterBand, MeterFlags};

    const MS: u64 = 1_000_000;

    fn pktps(rate: u32, burst: u32) -> LimiterConfig {
        LimiterConfig::from_meter(&Meter {
            id: 1,
            flags: MeterFlags(MeterFlags::PKTPS | MeterFlags::BURST),
            bands: vec![MeterBand::drop(rate, burst)],
        })
    }

    /// Offers `pps` packets per second in batches of `batch` for `secs`
    /// seconds of simulated time; returns how many passed.
    fn offer(m: &Meters, id: u32, pps: u64, batch: usize, len: u32, secs: u64) -> u64 {
        let lens = vec![len; batch];
        let all: BatchMask = if batch == 64 {
            u64::MAX
        } else {
            (1 << batch) - 1
        };
        let batches = pps * secs / batch as u64;
        let step = 1_000_000_000 * secs / batches;
        let mut passed = 0;
        for k in 0..batches {
            let dropped = m.run(id, 1_000_000_000 + k * step, &lens, all);
            passed += u64::from((all & !dropped).count_ones());
        }
        passed
    }

    #[test]
    fn pktps_meter_holds_ten_times_the_offered_rate_to_its_rate() {
        let m = Meters::new();
        let id = m.alloc().unwrap();
        m.set(id, &pktps(1000, 10), true);
        // 10 burst packets plus 1000 per second for 5 seconds.
        let passed = offer(&m, id, 10_000, 32, 64, 5);
        assert!((5000..=5010 + 32).contains(&passed), "{passed}");
        let st = m.stats(id);
        assert_eq!(st.packets_in, 10_000 * 5 / 32 * 32);
        assert_eq!(st.bands[0].0, st.packets_in - passed);
        assert_eq!(st.bytes_in, st.packets_in * 64);
    }

    #[test]
    fn kbps_meter_counts_bits_and_a_full_bucket_lets_the_burst_through() {
        let m = Meters::new();
        let id = m.alloc().unwrap();
        // 1000 kbit/s, burst 12 kbit = one 1500-byte frame.
        m.set(
            id,
            &LimiterConfig::from_meter(&Meter {
                id: 1,
                flags: MeterFlags(MeterFlags::KBPS | MeterFlags::BURST),
                bands: vec![MeterBand::drop(1000, 12)],
            }),
            true,
        );
        // Two frames at the same instant: the bucket holds one.
        assert_eq!(m.run(id, 10 * MS, &[1500, 1500], 0b11), 0b10);
        // 12 ms later the bucket has refilled 12 kbit.
        assert_eq!(m.run(id, 22 * MS, &[1500], 1), 0);
        // 1 ms later only 1 kbit: a 125-byte frame fits, a 1500-byte not.
        assert_eq!(m.run(id, 23 * MS, &[1500, 125], 0b11), 0b01);
        // Long term: 1 Mbit/s of 1000-byte frames offered at 10 Mbit/s.
        let passed = offer(&m, id, 1250, 1, 1000, 4);
        let bits = passed * 8000;
        assert!(
            (4_000_000..=4_000_000 + 12_000 + 8000).contains(&bits),
            "{bits}"
        );
    }

    #[test]
    fn packets_not_offered_are_neither_counted_nor_charged() {
        let m = Meters::new();
        let id = m.alloc().unwrap();
        m.set(id, &pktps(1, 1), true);
        assert_eq!(m.run(id, MS, &[60, 60, 60], 0b100), 0);
        assert_eq!(m.run(id, MS, &[60, 60, 60], 0b011), 0b011);
        assert_eq!(m.stats(id).packets_in, 3);
    }

    #[test]
    fn two_bands_drop_over_either_and_credit_the_highest_rate_exceeded() {
        let m = Meters::new();
        let id = m.alloc().unwrap();
        m.set(
            id,
            &LimiterConfig {
                pktps: true,
                bands: vec![
                    LimiterBand { rate: 10, burst: 2 },
                    LimiterBand {
                        rate: 100,
                        burst: 4,
                    },
                ],
            },
            true,
        );
        let lens = [100u32; 6];
        let dropped = m.run(id, MS, &lens, 0b11_1111);
        // Band 0 lets 2 through, band 1 lets 4: packets 2..6 are dropped.
        assert_eq!(dropped, 0b11_1100);
        let st = m.stats(id);
        // Packets 4 and 5 exceeded both: credited to band 1 (rate 100);
        // packets 2 and 3 only band 0.
        assert_eq!(st.bands, vec![(2, 200), (2, 200)]);
    }

    #[test]
    fn modify_keeps_counters_and_reset_refills() {
        let m = Meters::new();
        let id = m.alloc().unwrap();
        m.set(id, &pktps(1, 1), true);
        assert_eq!(m.run(id, MS, &[60, 60], 0b11), 0b10);
        m.set(id, &pktps(1, 5), false);
        assert_eq!(m.stats(id).packets_in, 2);
        m.set(id, &pktps(1, 5), true);
        assert_eq!(m.stats(id).packets_in, 0);
        assert_eq!(m.run(id, MS, &[60; 6], 0b11_1111), 0b10_0000);
    }

    #[test]
    fn freed_ids_are_reused_and_pass_everything_meanwhile() {
        let m = Meters::new();
        let a = m.alloc().unwrap();
        let b = m.alloc().unwrap();
        assert_ne!(a, b);
        m.set(a, &pktps(1, 1), true);
        m.free(a);
        assert_eq!(m.run(a, MS, &[60; 4], 0b1111), 0);
        assert_eq!(m.alloc(), Some(a));
        // Unknown ids never drop.
        assert_eq!(m.run(MAX_DP_METERS + 5, MS, &[60], 1), 0);
    }

    #[test]
    fn threads_sharing_a_meter_get_no_more_than_its_rate_together() {
        let m = std::sync::Arc::new(Meters::new());
        let id = m.alloc().unwrap();
        m.set(id, &pktps(1000, 64), true);
        // Four threads offer batches at the same simulated instants: in
        // total no more than the bucket (64) plus 2 s at 1000/s may pass.
        let passed: u64 = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || offer(&m, id, 8_000, 32, 64, 2))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert!((1990..=2064).contains(&passed), "{passed}");
    }
}
