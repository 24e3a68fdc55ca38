//! A PMD (poll-mode driver) thread: polls its receive queues, classifies
//! each packet through the exact-match cache and the megaflow classifier,
//! executes cached actions batch-wise, and sends misses to the handler.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use flows::classifier::Classifier;
use flows::emc::ExactMatchCache;
use flows::hash::hash_key;
use flows::parse::{Layout, extract_into, extract_with_layout};
use flows::{DpAction, DpPortNo, FlowKey, Match};
use rustc_hash::FxHashMap;

use super::cmd::{PmdCmd, UpcallReply};
use super::draw::Draw;
use super::exec::{ReentryBuf, TnlExec, TxSet, execute};
use super::handler::UpcallMsg;
use super::metering::{PASS, count_meters, meter_flow, meter_one};
use super::poll_policy::PollPolicy;
use super::stats::{Local, PmdCounters, Stage, StageClock, cycles_now};
use super::{DpConfig, MegaflowInfo, Shared};
use crate::packet::{BATCH_SIZE, Packet, PacketBatch};
use crate::port::{PortStats, RxQueue};
use crate::wakeup::{EventFd, wait_readable};

/// Slot value of a packet that missed every cache.
const MISS: u32 = u32::MAX;
/// Slot value of a packet that failed to parse, or was already handled.
const SKIP: u32 = u32::MAX - 1;
/// Packets held per pending upcall key (more are dropped as lost).
const MAX_QUEUED_PER_UPCALL: usize = 64;
/// Longest time a PMD stops receiving while its upcalls are answered (see
/// [`Pmd::receiving`]); past it, a slow or lost answer no longer holds up
/// the PMD's other traffic.
const MAX_UPCALL_WAIT: Duration = Duration::from_millis(100);
/// Shortest back-off sleep.
const MIN_SLEEP: Duration = Duration::from_micros(10);
/// Sleep when every queue can wake the PMD (only commands and timers matter).
const FD_SLEEP: Duration = Duration::from_millis(100);
/// `ppoll` capacity of [`wait_readable`], minus the wake fd.
const MAX_WAIT_FDS: usize = 15;
/// Busy iterations between two clock reads (the time-stamp counter is
/// read every iteration).
const CLOCK_EVERY: u32 = 64;
/// Busy iterations between two looks at the command channel (and two
/// publications of the counters).
const CMD_EVERY: u32 = 16;
/// How often a held PMD (flow-restore-wait) looks for commands.
const HOLD_POLL: Duration = Duration::from_millis(20);
/// How often idle megaflows (and IP fragments waiting too long) are looked
/// for.
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);
/// How often a PMD sweeps the next of its conntrack shards for expired
/// connections. One shard at a time keeps each sweep short (a whole pass at
/// once stalled polling for tens of milliseconds with a million
/// connections); with the tracker's 512 shards one PMD passes over all of
/// them in about 5 s, the longest interval of OVS's conntrack cleaner.
const CT_SWEEP_STEP: Duration = Duration::from_millis(10);

struct RxEntry {
    no: DpPortNo,
    rxq: Box<dyn RxQueue>,
    stats: Arc<PortStats>,
    /// Ingress policer (datapath meter).
    policer: Option<u32>,
}

struct Megaflow {
    m: Match,
    actions: Arc<[DpAction]>,
    /// Meter actions in `actions` (0: no metering pass).
    n_meters: u8,
    packets: u64,
    bytes: u64,
    used: Option<Instant>,
    created: Instant,
}

/// The two flow caches of one PMD. Megaflows are only ever removed all
/// together (flush), so their index is stable for the EMC to store.
struct FlowCache {
    flows: Vec<Megaflow>,
    cls: Classifier<u32>,
    emc: Option<ExactMatchCache<u32>>,
    /// A megaflow hit goes into the EMC when a draw of `rng` is at most
    /// this (0: never, `u32::MAX`: always): `emc-insert-inv-prob` as OVS
    /// applies it.
    emc_insert_min: u32,
    rng: Draw,
}

/// The insertion threshold of `emc-insert-inv-prob` `inv_prob`.
fn emc_insert_min(inv_prob: u32) -> u32 {
    u32::MAX.checked_div(inv_prob).unwrap_or(0)
}

impl FlowCache {
    /// Exact-match cache lookup of a key whose hash is `hash`.
    #[inline]
    fn emc_lookup(&self, key: &FlowKey, hash: u64) -> Option<u32> {
        self.emc.as_ref()?.lookup(key, hash)
    }

    /// Megaflow classifier lookup; a hit is inserted into the exact-match
    /// cache.
    #[inline]
    fn megaflow_lookup(&mut self, key: &FlowKey, hash: u64) -> Option<u32> {
        let (_, &idx) = self.cls.lookup_no_wc(key)?;
        if let Some(emc) = &mut self.emc
            && self.emc_insert_min != 0
            && (self.emc_insert_min == u32::MAX || self.rng.next_u32() <= self.emc_insert_min)
        {
            emc.insert(key, hash, idx);
        }
        Some(idx)
    }

    /// Removes the megaflows `keep` rejects; re-indexes the rest.
    fn retain(&mut self, keep: impl FnMut(&Megaflow) -> bool) -> usize {
        let before = self.flows.len();
        self.flows.retain(keep);
        let removed = before - self.flows.len();
        if removed > 0 {
            self.cls.clear();
            if let Some(emc) = &mut self.emc {
                emc.clear();
            }
            for (i, f) in self.flows.iter().enumerate() {
                self.cls.insert(f.m, 0, i as u32);
            }
        }
        removed
    }

    fn clear(&mut self) {
        self.flows.clear();
        self.cls.clear();
        if let Some(emc) = &mut self.emc {
            emc.clear();
        }
    }
}

pub(crate) struct Pmd {
    id: usize,
    cpu: Option<usize>,
    cmd_rx: Receiver<PmdCmd>,
    wake: Arc<EventFd>,
    upcall_tx: Sender<UpcallMsg>,
    counters: Arc<PmdCounters>,
    local: Local,
    policy: PollPolicy,
    idle_spin: Duration,
    max_megaflows: usize,
    flow_idle_timeout: Option<Duration>,
    rxqs: Vec<RxEntry>,
    /// Wait fds of the receive queues plus the wake fd.
    wait_fds: Vec<RawFd>,
    /// Whether every receive queue has a wait fd.
    all_fds: bool,
    tx: TxSet,
    cache: FlowCache,
    /// Flow-cache generation this PMD has flushed up to.
    generation: u64,
    /// Receiving is held (`PmdCmd::SetHold`).
    held: bool,
    meters: Arc<crate::meter::Meters>,
    /// PMD threads of the datapath (this one sweeps its share of the
    /// connection tracker's shards).
    n_pmd: usize,
    /// Which of its conntrack shards this PMD sweeps next
    /// (`DpConntrack::sweep_next`).
    ct_sweep_cursor: usize,
    /// The empty half of the re-entry double buffer (the other half is
    /// `tx.reentry.buf`, being filled by actions).
    reentry_spare: Option<Box<ReentryBuf>>,
    /// Ingress policers by port (kept for queues added later).
    ingress: FxHashMap<DpPortNo, u32>,
    /// Keys with an upcall in flight, and packets of the same key that
    /// arrived meanwhile.
    pending: FxHashMap<FlowKey, Vec<Packet>>,
    /// Since when `pending` has been non-empty: the PMD receives nothing
    /// meanwhile (for at most [`MAX_UPCALL_WAIT`]).
    pending_since: Option<Instant>,
    /// The loop's clock, read every [`CLOCK_EVERY`] iterations.
    now: Instant,
    keys: Box<[FlowKey; BATCH_SIZE]>,
    /// The layout of each frame of the batch, from the parse that gave its
    /// key (the `ct` action and recirculation reuse both).
    layouts: [Layout; BATCH_SIZE],
    /// Where a re-entering frame is parsed again (its metadata waits in
    /// `keys`).
    scratch: FlowKey,
    /// Hash of each key of the batch, computed once.
    hashes: [u64; BATCH_SIZE],
    slots: [u32; BATCH_SIZE],
}

impl Pmd {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: usize,
        cpu: Option<usize>,
        cfg: &DpConfig,
        cmd_rx: Receiver<PmdCmd>,
        wake: Arc<EventFd>,
        upcall_tx: Sender<UpcallMsg>,
        shared: Arc<Shared>,
        counters: Arc<PmdCounters>,
    ) -> Pmd {
        let generation = shared.generation.load(std::sync::atomic::Ordering::Acquire);
        let mut p = Pmd {
            id,
            cpu,
            cmd_rx,
            wake,
            upcall_tx,
            counters,
            local: Local::default(),
            policy: PollPolicy {
                pinned: cpu.is_some(),
                max_sleep: cfg.max_sleep,
                default_sleep: cfg.idle_sleep.max(MIN_SLEEP),
            },
            idle_spin: cfg.idle_spin,
            max_megaflows: cfg.max_megaflows,
            flow_idle_timeout: cfg.flow_idle_timeout,
            rxqs: Vec::new(),
            wait_fds: Vec::new(),
            all_fds: true,
            tx: TxSet::with_tunnels(
                shared.meters.clone(),
                TnlExec::new(shared.tnl_headers.clone(), shared.tnl_counters.clone()),
            )
            .with_sample_seed(0x9e37_79b9_7f4a_7c15 ^ ((id as u64 + 1) << 32)),
            n_pmd: cfg.n_pmd.max(1),
            ct_sweep_cursor: 0,
            cache: FlowCache {
                flows: Vec::new(),
                cls: Classifier::new(),
                emc: (cfg.emc_entries > 0).then(|| ExactMatchCache::new(cfg.emc_entries)),
                emc_insert_min: emc_insert_min(cfg.emc_insert_inv_prob),
                rng: Draw::new(0x2545_f491_4f6c_dd1d ^ (id as u64 + 1) << 40),
            },
            generation,
            held: false,
            meters: shared.meters.clone(),
            reentry_spare: Some(ReentryBuf::new()),
            ingress: FxHashMap::default(),
            pending: FxHashMap::default(),
            pending_since: None,
            now: Instant::now(),
            keys: Box::new([FlowKey::default(); BATCH_SIZE]),
            layouts: [Layout::default(); BATCH_SIZE],
            scratch: FlowKey::default(),
            hashes: [0; BATCH_SIZE],
            slots: [MISS; BATCH_SIZE],
        };
        p.tx.ct = Some(shared.ct.clone());
        p.rebuild_wait_fds();
        p
    }

    fn rebuild_wait_fds(&mut self) {
        self.wait_fds.clear();
        self.wait_fds.push(self.wake.fd());
        self.all_fds = self.rxqs.len() <= MAX_WAIT_FDS;
        for r in &self.rxqs {
            match r.rxq.wait_fd() {
                Some(fd) if self.wait_fds.len() <= MAX_WAIT_FDS => self.wait_fds.push(fd),
                _ => self.all_fds = false,
            }
        }
    }

    fn pin(&self) {
        let Some(cpu) = self.cpu else { return };
        // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: CPU_SET writes one bit of the live set; `cpu` is bounded by
        // the set's size inside the macro.
        unsafe { libc::CPU_SET(cpu, &mut set) };
        // SAFETY: passes a live cpu_set_t of the stated size for this thread.
        let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
        if r != 0 {
            tracing::warn!(
                "pmd {}: cannot pin to cpu {cpu}: {}",
                self.id,
                std::io::Error::last_os_error()
            );
        }
    }

    /// The poll loop; returns on [`PmdCmd::Quit`].
    ///
    /// Per iteration it reads the time-stamp counter at most once per stage
    /// of a busy queue, or once when every queue was empty (a read costs
    /// tens of nanoseconds in a VM): the clock (`Instant::now`, a vDSO
    /// call) is read every [`CLOCK_EVERY`] iterations and whenever the
    /// thread is idle and may sleep, and nanoseconds are derived from
    /// cycles with the rate measured between clock reads. Commands are
    /// looked for, and counters published, every [`CMD_EVERY`] iterations,
    /// and every iteration when the thread is idle and may sleep.
    pub fn run(mut self) {
        self.pin();
        tracing::info!("pmd {} started (cpu {:?})", self.id, self.cpu);
        let mut batch = PacketBatch::new();
        let start = Instant::now();
        let start_cycles = cycles_now();
        let mut last = start;
        let mut last_cycles = start_cycles;
        // Nanoseconds per cycle, refined at every clock read.
        let mut rate = TscRate::new(start, start_cycles);
        let mut idle_since: Option<Instant> = None;
        let mut sleep = MIN_SLEEP;
        let mut last_sweep = last;
        let mut last_ct_sweep = last;
        let mut iteration: u32 = 0;
        // Commands are looked for every iteration while the thread may
        // sleep, else every CMD_EVERY iterations (a spinning PMD gets to
        // them within microseconds, and an empty channel's check is not
        // free).
        let mut check_cmds = true;
        loop {
            iteration = iteration.wrapping_add(1);
            let mut handled = false;
            if check_cmds || iteration.is_multiple_of(CMD_EVERY) {
                while let Ok(cmd) = self.cmd_rx.try_recv() {
                    handled = true;
                    if !self.handle(cmd) {
                        self.counters.publish(&self.local);
                        tracing::info!("pmd {} stopped", self.id);
                        return;
                    }
                }
            }
            if self.held {
                // Receive nothing; wake for commands only.
                if let Ok(cmd) = self.cmd_rx.recv_timeout(HOLD_POLL)
                    && !self.handle(cmd)
                {
                    self.counters.publish(&self.local);
                    tracing::info!("pmd {} stopped", self.id);
                    return;
                }
                last = Instant::now();
                last_cycles = cycles_now();
                self.now = last;
                continue;
            }
            let mut got = 0;
            // The stage clock runs on from the last reading: an empty poll
            // reads no counter, and a busy iteration ends at its last lap.
            // Commands (rare) may have charged stages of their own: the
            // clock then restarts after them, so no cycle counts twice.
            let mut cyc = if handled { cycles_now() } else { last_cycles };
            let receiving = self.receiving();
            if receiving {
                for i in 0..self.rxqs.len() {
                    got += self.poll_rxq(i, &mut batch, &mut cyc);
                }
            }
            let now_cycles = if got > 0 { cyc } else { cycles_now() };
            let dc = now_cycles.wrapping_sub(last_cycles);
            last_cycles = now_cycles;
            let dt = rate.ns(dc);
            let max_sleep = self.policy.max_sleep();
            let may_sleep = got == 0 && !max_sleep.is_zero();
            check_cmds = may_sleep;
            if may_sleep || iteration.is_multiple_of(CLOCK_EVERY) {
                last = Instant::now();
                rate.update(last, now_cycles);
                self.now = last;
            }
            if got > 0 {
                self.local.busy_ns += dt;
                self.local.busy_cycles += dc;
                self.local.busy_iterations += 1;
                idle_since = None;
                sleep = MIN_SLEEP;
            } else {
                self.local.idle_ns += dt;
                self.local.idle_cycles += dc;
                self.local.idle_iterations += 1;
                if may_sleep {
                    let since = *idle_since.get_or_insert(last);
                    if last.duration_since(since) >= self.idle_spin {
                        self.wake.drain();
                        if self.cmd_rx.is_empty() {
                            let timeout = if self.all_fds {
                                FD_SLEEP
                            } else {
                                let s = sleep.min(max_sleep);
                                sleep = (sleep * 2).min(max_sleep);
                                s
                            };
                            if receiving {
                                wait_readable(&self.wait_fds, timeout);
                            } else {
                                // Only the answer (a command) ends the wait:
                                // the queues' fds would wake it for nothing.
                                wait_readable(&self.wait_fds[..1], timeout.min(MAX_UPCALL_WAIT));
                            }
                        }
                        let after = Instant::now();
                        let after_cycles = cycles_now();
                        self.local.idle_ns += after.duration_since(last).as_nanos() as u64;
                        self.local.sleep_cycles += after_cycles.wrapping_sub(last_cycles);
                        last = after;
                        last_cycles = after_cycles;
                        rate.update(after, after_cycles);
                        self.now = after;
                    }
                }
            }
            if last.duration_since(last_sweep) >= SWEEP_INTERVAL {
                last_sweep = last;
                self.expire_idle_flows(last);
            }
            if last.duration_since(last_ct_sweep) >= CT_SWEEP_STEP {
                last_ct_sweep = last;
                if let Some(ct) = &self.tx.ct {
                    let now_ms = ct.now_ms(last);
                    ct.sweep_next(self.id, self.n_pmd, &mut self.ct_sweep_cursor, now_ms);
                }
            }
            if may_sleep || iteration.is_multiple_of(CMD_EVERY) {
                self.counters.publish(&self.local);
            }
        }
    }

    fn expire_idle_flows(&mut self, now: Instant) {
        if let Some(ct) = self.tx.ct.as_ref().filter(|_| self.id == 0) {
            ct.expire_fragments(ct.now_ms(now));
        }
        let Some(timeout) = self.flow_idle_timeout else {
            return;
        };
        let removed = self
            .cache
            .retain(|f| now.duration_since(f.used.unwrap_or(f.created)) < timeout);
        if removed > 0 {
            tracing::debug!("pmd {}: expired {removed} idle megaflows", self.id);
        }
    }

    /// Receives and forwards one batch from receive queue `i`. Each stage
    /// runs over the whole batch before the next starts, and is timed once.
    /// `cyc` is the counter at the last lap; the receive stage runs from it
    /// (so it includes empty polls before this one), and it is moved to
    /// the last lap of this batch.
    fn poll_rxq(&mut self, i: usize, batch: &mut PacketBatch, cyc: &mut u64) -> usize {
        batch.clear();
        let Some(entry) = self.rxqs.get_mut(i) else {
            return 0;
        };
        let mut clock = StageClock::at(*cyc);
        let n = match entry.rxq.rx_batch(batch) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!("rx on dp port {}: {e}", entry.no);
                0
            }
        };
        if n == 0 {
            return 0;
        }
        clock.lap(&mut self.local, Stage::Receive);
        let no = entry.no;
        self.local.rx_packets += n as u64;

        let mut errors = 0u64;
        for (j, pkt) in batch.packets_mut().iter_mut().enumerate() {
            pkt.in_port = no;
            pkt.recirc_depth = 0;
            self.slots[j] = match extract_with_layout(
                pkt.data(),
                no,
                &mut self.keys[j],
                &mut self.layouts[j],
            ) {
                Ok(()) => MISS,
                Err(_) => {
                    errors += 1;
                    SKIP
                }
            };
        }
        if errors > 0 {
            PortStats::add(&self.rxqs[i].stats.rx_errors, errors);
        }
        if let Some(id) = self.rxqs[i].policer {
            self.police_ingress(i, id, batch, n);
        }
        clock.lap(&mut self.local, Stage::Parse);
        self.process(batch, n, &mut clock);
        self.drain_reentry(&mut clock);
        self.tx.flush();
        clock.lap(&mut self.local, Stage::Send);
        *cyc = clock.last();
        n
    }

    /// Runs the packets that actions recirculated or re-injected, as
    /// follow-up batches, until none is left (each packet's depth is bounded
    /// by `MAX_RECIRC_DEPTH`, so this ends).
    fn drain_reentry(&mut self, clock: &mut StageClock) {
        let Some(mut work) = self.reentry_spare.take() else {
            return;
        };
        while !self.tx.reentry.is_empty() {
            work.batch.clear();
            std::mem::swap(&mut work, &mut self.tx.reentry.buf);
            let n = work.batch.len();
            self.local.recirculations += n as u64;
            work.swap_keys(&mut self.keys);
            for j in 0..n {
                self.slots[j] = if work.next_pass_key(
                    j,
                    &mut self.keys[j],
                    &mut self.layouts[j],
                    &mut self.scratch,
                ) {
                    MISS
                } else {
                    SKIP
                };
            }
            clock.lap(&mut self.local, Stage::Parse);
            self.process(&mut work.batch, n, clock);
        }
        work.batch.clear();
        self.reentry_spare = Some(work);
        self.local.recirc_drops += std::mem::take(&mut self.tx.reentry.drops);
    }

    /// Classifies and forwards the first `n` packets of `batch`, whose keys
    /// are in `self.keys` and whose slots are `MISS` (or `SKIP` for packets
    /// already handled). Transmit queues are left for the caller to flush.
    fn process(&mut self, batch: &mut PacketBatch, n: usize, clock: &mut StageClock) {
        let mut emc_misses = 0usize;
        let mut looked_up = 0usize;
        for j in 0..n {
            if self.slots[j] == SKIP {
                continue;
            }
            looked_up += 1;
            let hash = hash_key(&self.keys[j]);
            self.hashes[j] = hash;
            match self.cache.emc_lookup(&self.keys[j], hash) {
                Some(idx) => self.slots[j] = idx,
                None => emc_misses += 1,
            }
        }
        self.local.emc_hits += (looked_up - emc_misses) as u64;
        clock.lap(&mut self.local, Stage::Emc);

        let mut misses = 0usize;
        if emc_misses > 0 {
            for j in 0..n {
                if self.slots[j] != MISS {
                    continue;
                }
                match self.cache.megaflow_lookup(&self.keys[j], self.hashes[j]) {
                    Some(idx) => {
                        self.slots[j] = idx;
                        self.local.megaflow_hits += 1;
                    }
                    None => misses += 1,
                }
            }
            clock.lap(&mut self.local, Stage::Megaflow);
        }

        if misses > 0 {
            for j in 0..n {
                if self.slots[j] == MISS {
                    let key = self.keys[j];
                    self.miss(&key, &batch.packets()[j]);
                    self.slots[j] = SKIP;
                }
            }
            clock.lap(&mut self.local, Stage::Upcall);
        }

        // Run each megaflow's actions over its packets of the batch (their
        // `used` time is the loop's clock, read every CLOCK_EVERY iterations).
        let pkts = &mut batch.packets_mut()[..n];
        let now = self.now;
        let now_ns = self.meters.now_ns(now);
        self.tx.now_ns = now_ns;
        self.set_ct_clock(now);
        let mut fate = [PASS; BATCH_SIZE];
        for j in 0..n {
            let s = self.slots[j];
            if s >= SKIP {
                continue;
            }
            let Some(flow) = self.cache.flows.get_mut(s as usize) else {
                continue;
            };
            if flow.n_meters > 0 {
                // Meter this flow's packets of the batch all at once.
                let of_flow = self.slots[..n].iter().map(|&x| x == s);
                meter_flow(
                    &self.meters,
                    &flow.actions,
                    now_ns,
                    of_flow,
                    pkts,
                    &mut fate,
                );
            }
            let (mut cnt, mut bytes) = (0u64, 0u64);
            for (k, pkt) in pkts.iter_mut().enumerate().skip(j) {
                if self.slots[k] != s {
                    continue;
                }
                self.slots[k] = SKIP;
                cnt += 1;
                bytes += pkt.len() as u64;
                self.local.lost_upcalls += execute(
                    &flow.actions,
                    pkt,
                    &self.keys[k],
                    Some(&self.layouts[k]),
                    &mut self.tx,
                    &self.upcall_tx,
                    std::mem::replace(&mut fate[k], PASS),
                );
            }
            flow.packets += cnt;
            flow.bytes += bytes;
            flow.used = Some(now);
        }
        clock.lap(&mut self.local, Stage::Execute);
    }

    /// Sets the connection tracker's clock for the actions about to run.
    #[inline]
    fn set_ct_clock(&mut self, now: Instant) {
        if let Some(ct) = &self.tx.ct {
            self.tx.ct_now_ms = ct.now_ms(now);
        }
    }

    /// Ingress policing of the first `n` packets of a batch received on
    /// queue `i`: those over the rate are skipped and counted as rx drops.
    fn police_ingress(&mut self, i: usize, id: u32, batch: &PacketBatch, n: usize) -> usize {
        let mut lens = [0u32; BATCH_SIZE];
        let mut offered = 0u64;
        for (j, pkt) in batch.packets().iter().enumerate().take(n) {
            lens[j] = pkt.len() as u32;
            if self.slots[j] != SKIP {
                offered |= 1 << j;
            }
        }
        let now_ns = self.meters.now_ns(Instant::now());
        let dropped = self.meters.run(id, now_ns, &lens[..n], offered);
        if dropped != 0 {
            for j in 0..n {
                if dropped & (1 << j) != 0 {
                    self.slots[j] = SKIP;
                }
            }
            PortStats::add(
                &self.rxqs[i].stats.rx_dropped,
                u64::from(dropped.count_ones()),
            );
        }
        dropped.count_ones() as usize
    }

    /// Sends a missed packet to the handler, or queues it behind a pending
    /// upcall for the same key.
    fn miss(&mut self, key: &FlowKey, pkt: &Packet) {
        self.local.upcalls += 1;
        if let Some(q) = self.pending.get_mut(key) {
            if q.len() < MAX_QUEUED_PER_UPCALL {
                q.push(copy_packet(pkt));
            } else {
                self.local.lost_upcalls += 1;
            }
            return;
        }
        self.ask(*key, copy_packet(pkt), Vec::new());
    }

    /// Whether the PMD polls its receive queues now: not while upcalls it
    /// sent are unanswered (up to [`MAX_UPCALL_WAIT`]). Stock OVS's PMD
    /// runs the slow path itself, so nothing it receives after a miss
    /// leaves before the missed packet; here the handler thread decides,
    /// and a PMD that went on receiving would forward later packets of
    /// other, cached flows first. Two connections of one application then
    /// arrive out of order: a server's ACK completing an active FTP data
    /// connection (a new megaflow, +rel) reached the client after the
    /// `226` sent later on the control connection, and curl, seeing the
    /// reply before the connection, gave up. Packets of one batch behind a
    /// miss still go ahead of it.
    fn receiving(&self) -> bool {
        match self.pending_since {
            None => true,
            Some(t) => t.elapsed() >= MAX_UPCALL_WAIT,
        }
    }

    /// Sends `packet`'s miss to the handler, with `waiting` (packets of the
    /// same key) queued behind it; all are lost when the queue is full.
    fn ask(&mut self, key: FlowKey, packet: Packet, waiting: Vec<Packet>) {
        let msg = UpcallMsg::Miss {
            pmd: self.id,
            key,
            packet,
        };
        if self.upcall_tx.try_send(msg).is_ok() {
            if self.pending.is_empty() {
                self.pending_since = Some(Instant::now());
            }
            self.pending.insert(key, waiting);
        } else {
            self.local.lost_upcalls += 1 + waiting.len() as u64;
        }
    }

    /// Handles one command; false means quit.
    fn handle(&mut self, cmd: PmdCmd) -> bool {
        match cmd {
            PmdCmd::AddTxq { no, txq, ack } => {
                self.tx.insert(no, txq);
                let _ = ack.send(());
            }
            PmdCmd::AddRxq {
                no,
                rxq,
                stats,
                ack,
            } => {
                let policer = self.ingress.get(&no).copied();
                self.rxqs.push(RxEntry {
                    no,
                    rxq,
                    stats,
                    policer,
                });
                self.rebuild_wait_fds();
                let _ = ack.send(());
            }
            PmdCmd::DelPort { no, ack } => {
                self.rxqs.retain(|r| r.no != no);
                self.tx.remove(no);
                self.rebuild_wait_fds();
                let _ = ack.send(());
            }
            PmdCmd::Flush { generation, ack } => {
                self.generation = self.generation.max(generation);
                let gone = self.cache.flows.iter().map(|f| self.info(f)).collect();
                self.cache.clear();
                let _ = ack.send(gone);
            }
            PmdCmd::FlushWhere {
                generation,
                pred,
                ack,
            } => {
                self.generation = self.generation.max(generation);
                let gone = self
                    .cache
                    .flows
                    .iter()
                    .filter(|f| pred(&f.m))
                    .map(|f| self.info(f))
                    .collect();
                self.cache.retain(|f| !pred(&f.m));
                let _ = ack.send(gone);
            }
            PmdCmd::SetCpu { cpu, ack } => {
                self.cpu = Some(cpu);
                self.policy.pinned = true;
                self.pin();
                self.counters.set_cpu(Some(cpu));
                let _ = ack.send(());
            }
            PmdCmd::SetMaxSleep { max_sleep, ack } => {
                self.policy.max_sleep = max_sleep;
                let _ = ack.send(());
            }
            PmdCmd::SetEmcInsertInvProb { inv_prob, ack } => {
                self.cache.emc_insert_min = emc_insert_min(inv_prob);
                let _ = ack.send(());
            }
            PmdCmd::SetSamples { q, ack } => {
                self.tx.samples = Some(q);
                let _ = ack.send(());
            }
            PmdCmd::SetHold { hold, ack } => {
                self.held = hold;
                let _ = ack.send(());
            }
            PmdCmd::UpcallReply(r) => self.upcall_reply(*r),
            PmdCmd::Execute {
                mut packet,
                actions,
            } => {
                let mut key = FlowKey::default();
                let _ = extract_into(packet.data(), packet.in_port, &mut key);
                let now = Instant::now();
                let now_ns = self.meters.now_ns(now);
                self.tx.now_ns = now_ns;
                self.set_ct_clock(now);
                let fate = meter_one(&self.meters, &actions, now_ns, packet.len() as u32);
                self.local.lost_upcalls += execute(
                    &actions,
                    &mut packet,
                    &key,
                    None,
                    &mut self.tx,
                    &self.upcall_tx,
                    fate,
                );
                self.drain_reentry(&mut StageClock::start());
                self.tx.flush();
            }
            PmdCmd::SetPolicing {
                no,
                ingress,
                egress,
                ack,
            } => {
                match ingress {
                    Some(id) => self.ingress.insert(no, id),
                    None => self.ingress.remove(&no),
                };
                for r in self.rxqs.iter_mut().filter(|r| r.no == no) {
                    r.policer = ingress;
                }
                match egress {
                    Some(id) => self.tx.egress.insert(no, id),
                    None => self.tx.egress.remove(&no),
                };
                let _ = ack.send(());
            }
            PmdCmd::DumpFlows { reply } => {
                let v = self.cache.flows.iter().map(|f| self.info(f)).collect();
                let _ = reply.send(v);
            }
            PmdCmd::ClearStats { ack } => {
                self.local = Local::default();
                self.counters.publish(&self.local);
                let _ = ack.send(());
            }
            PmdCmd::Quit => return false,
        }
        true
    }

    /// What a dump or a flush reports of megaflow `f`.
    fn info(&self, f: &Megaflow) -> MegaflowInfo {
        MegaflowInfo {
            pmd: self.id,
            m: f.m,
            actions: f.actions.to_vec(),
            packets: f.packets,
            bytes: f.bytes,
            used: f.used,
            created: f.created,
        }
    }

    /// Applies the slow path's decision for a miss: the packet that asked
    /// is executed with it, once, whatever happens to the decision; the
    /// decision is cached unless the slow path said not to or a flush
    /// landed while it was made (then it may rest on rules that are gone).
    /// Packets of the same key that queued behind the miss follow the
    /// cached megaflow and count in it; without one, each is a miss of its
    /// own again, so that it is decided and counted for itself.
    fn upcall_reply(&mut self, reply: UpcallReply) {
        let UpcallReply {
            generation,
            key,
            mut mask,
            actions,
            install,
            packet,
        } = reply;
        let mut queued = self.pending.remove(&key).unwrap_or_default();
        let fresh = generation >= self.generation;
        // A megaflow always matches the ingress port and the recirculation
        // id exactly: each pass of a packet has its own megaflows.
        mask.in_port = u32::MAX;
        mask.recirc_id = u32::MAX;
        let mut flow_idx = None;
        if install && fresh {
            // Another miss of the same batch (a different key, such as the
            // first and a later IP fragment) may have installed it already.
            if let Some((_, &idx)) = self.cache.cls.lookup_no_wc(&key) {
                flow_idx = Some(idx);
            } else if self.cache.flows.len() < self.max_megaflows {
                let m = Match::new(key, mask);
                let idx = self.cache.flows.len() as u32;
                self.cache.flows.push(Megaflow {
                    m,
                    n_meters: count_meters(&actions),
                    actions: actions.clone(),
                    packets: 0,
                    bytes: 0,
                    used: None,
                    created: Instant::now(),
                });
                self.cache.cls.insert(m, 0, idx);
                flow_idx = Some(idx);
            }
        }
        let (mut cnt, mut bytes) = (0u64, 0u64);
        let now = Instant::now();
        // The loop's clock moves on with it: packets received next must not
        // run (meters, `used`) at a time before this answer's.
        self.now = now;
        let now_ns = self.meters.now_ns(now);
        self.tx.now_ns = now_ns;
        self.set_ct_clock(now);
        // Without a megaflow, the first packet queued asks for itself and
        // the rest wait on it.
        let (follow, retry) = match flow_idx {
            Some(_) => (std::mem::take(&mut queued), None),
            None if queued.is_empty() => (Vec::new(), None),
            None => (Vec::new(), Some(queued.remove(0))),
        };
        for (n, mut p) in std::iter::once(packet).chain(follow).enumerate() {
            if n > 0 {
                cnt += 1;
                bytes += p.len() as u64;
            }
            let fate = meter_one(&self.meters, &actions, now_ns, p.len() as u32);
            self.local.lost_upcalls += execute(
                &actions,
                &mut p,
                &key,
                None,
                &mut self.tx,
                &self.upcall_tx,
                fate,
            );
            if self.tx.reentry.is_full() {
                self.drain_reentry(&mut StageClock::start());
            }
        }
        self.drain_reentry(&mut StageClock::start());
        self.tx.flush();
        if cnt > 0
            && let Some(f) = flow_idx.and_then(|i| self.cache.flows.get_mut(i as usize))
        {
            f.packets += cnt;
            f.bytes += bytes;
            f.used = Some(Instant::now());
        }
        if self.pending.is_empty() {
            self.pending_since = None;
        }
        if let Some(packet) = retry {
            self.ask(key, packet, queued);
        }
    }
}

/// Nanoseconds per time-stamp-counter cycle, measured between clock reads
/// since the thread started.
struct TscRate {
    start: Instant,
    start_cycles: u64,
    ns_per_cycle: f64,
}

impl TscRate {
    fn new(start: Instant, start_cycles: u64) -> TscRate {
        TscRate {
            start,
            start_cycles,
            // Until the first measurement: a 1 GHz guess.
            ns_per_cycle: 1.0,
        }
    }

    fn update(&mut self, now: Instant, cycles: u64) {
        let dc = cycles.wrapping_sub(self.start_cycles);
        let dt = now.duration_since(self.start).as_nanos() as f64;
        // Measured over at least a millisecond, so the clock's granularity
        // does not matter (and a counter that does not tick leaves 1.0).
        if dc > 0 && dt >= 1e6 {
            self.ns_per_cycle = dt / dc as f64;
        }
    }

    #[inline]
    fn ns(&self, cycles: u64) -> u64 {
        (cycles as f64 * self.ns_per_cycle) as u64
    }
}

/// A copy of `pkt` for the slow path (allocates: misses only).
fn copy_packet(pkt: &Packet) -> Packet {
    let mut c = Packet::from_bytes(pkt.data());
    c.offload = pkt.offload;
    c.in_port = pkt.in_port;
    c.recirc_depth = pkt.recirc_depth;
    c
}
