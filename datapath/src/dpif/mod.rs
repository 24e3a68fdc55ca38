//! The datapath interface: a set of ports polled by PMD threads that move
//! packets through an exact-match cache and a megaflow classifier, and ask a
//! slow-path [`UpcallHandler`] (on a separate handler thread) on a miss.
//!
//! Control operations (`add_port`, `del_port`, `flush`, dumps) are
//! commands sent over one channel per PMD; the PMD drains its channel once
//! per poll iteration, so the per-packet path holds no lock.

mod cmd;
mod draw;
mod exec;
pub(crate) use exec::is_parse_of;
mod handler;
mod metering;
mod pmd;
mod poll_policy;
mod stats;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use flows::{DpAction, DpPortNo, FlowKey, Match};

use crate::packet::Packet;
use crate::port::{Port, PortError, PortStatsSnapshot};
use crate::wakeup::EventFd;

pub use cmd::MegaflowPredicate;
use cmd::{PmdCmd, PmdLink};
pub use poll_policy::{MAX_SLEEP_LIMIT, PollPolicy};
use stats::PmdCounters;
pub use stats::{N_STAGES, PmdStats, Stage};

/// Datapath configuration.
#[derive(Clone, Debug)]
pub struct DpConfig {
    /// Number of PMD threads.
    pub n_pmd: usize,
    /// CPUs to pin PMD threads to (PMD `i` on `pmd_cpus[i % len]`); empty:
    /// no pinning.
    pub pmd_cpus: Vec<usize>,
    /// Longest sleep of an idle unpinned PMD whose queues cannot wake it
    /// (queues without a wait fd), when `max_sleep` is not set. The PMD
    /// spins for `idle_spin` first, then sleeps with an adaptive back-off up
    /// to this value. Pinned PMDs do not sleep ([`PollPolicy`]).
    pub idle_sleep: Duration,
    /// `other_config:pmd-maxsleep`: overrides the sleep policy (0: never
    /// sleep; otherwise sleep up to this, pinned or not).
    pub max_sleep: Option<Duration>,
    /// How long a PMD keeps polling an idle datapath before sleeping.
    pub idle_spin: Duration,
    /// Exact-match cache entries per PMD (0 disables the EMC).
    pub emc_entries: usize,
    /// `other_config:emc-insert-inv-prob`: a megaflow hit is inserted into
    /// the EMC with probability 1 / this (0: never; 1: always), so that a
    /// burst of new flows does not churn the EMC, as in OVS (default 100).
    pub emc_insert_inv_prob: u32,
    /// Depth of the upcall queue to the handler thread; misses beyond it are
    /// dropped and counted as lost upcalls.
    pub upcall_queue: usize,
    /// Megaflows per PMD; upcall results beyond it are executed, not cached.
    pub max_megaflows: usize,
    /// Megaflows unused for this long are removed (checked about once a
    /// second); `None` keeps them until a flush.
    pub flow_idle_timeout: Option<Duration>,
}

/// OVS's default `emc-insert-inv-prob`: one megaflow hit in 100 is cached
/// in the EMC.
pub const EMC_INSERT_INV_PROB_DEFAULT: u32 = 100;

impl Default for DpConfig {
    fn default() -> Self {
        DpConfig {
            n_pmd: 1,
            pmd_cpus: Vec::new(),
            idle_sleep: Duration::from_micros(500),
            max_sleep: None,
            idle_spin: Duration::from_micros(100),
            emc_entries: flows::emc::EMC_DEFAULT_ENTRIES,
            emc_insert_inv_prob: EMC_INSERT_INV_PROB_DEFAULT,
            upcall_queue: 1024,
            max_megaflows: 65_536,
            flow_idle_timeout: Some(Duration::from_secs(10)),
        }
    }
}

/// The slow path.
pub trait UpcallHandler: Send + Sync {
    /// Slow path for a packet that missed every cache (called on the handler
    /// thread). `key.in_port` is the datapath port.
    ///
    /// Each call is one packet, executed once with the actions returned
    /// (whether or not they are cached), so the slow path counts it here.
    /// A megaflow installed from the result does not count this packet:
    /// its counters hold only the packets that later matched it, as in
    /// OVS's datapath (`packets:0` after the first packet).
    fn upcall(&self, key: &FlowKey, packet: &Packet) -> UpcallResult;
    /// A [`DpAction::Userspace`] reached in the fast path (packet-in etc.).
    fn userspace(&self, action: &DpAction, key: &FlowKey, packet: &Packet);
}

/// What the slow path decided for a missed packet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpcallResult {
    /// Actions for this packet (and, when installed, the megaflow).
    pub actions: Vec<DpAction>,
    /// Megaflow mask in datapath-key terms. `in_port` is always matched
    /// exactly, whatever the mask says.
    pub mask: FlowKey,
    /// Whether to cache the decision as a megaflow.
    pub install: bool,
}

/// One cached megaflow, as `dump_flows` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MegaflowInfo {
    /// PMD thread that owns it.
    pub pmd: usize,
    pub m: Match,
    pub actions: Vec<DpAction>,
    pub packets: u64,
    pub bytes: u64,
    /// When it last matched a packet (`None`: never).
    pub used: Option<Instant>,
    /// When it was installed: with `pmd` and `m`, it tells this megaflow
    /// from an earlier one with the same match (whose counters restarted).
    pub created: Instant,
}

/// Datapath errors.
#[derive(Debug, thiserror::Error)]
pub enum DpError {
    #[error("port {0} already exists")]
    PortExists(DpPortNo),
    #[error("no such port: {0}")]
    NoSuchPort(DpPortNo),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("invalid datapath configuration: {0}")]
    InvalidConfig(String),
    #[error("cannot start datapath thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("a PMD thread is gone")]
    PmdGone,
}

struct Shared {
    /// Bumped by every flush; installs decided under an older generation
    /// are ignored.
    generation: AtomicU64,
    /// The meters and policers, shared by every PMD.
    meters: Arc<crate::meter::Meters>,
    /// The queue of packets `DpAction::Sample` picked, for the flow
    /// exporters; made, and handed to the PMDs, when an exporter first
    /// asks for it ([`Datapath::samples`]). Its 8192 slots of ~400 bytes
    /// are written when it is made (3.3 MiB), which a switch exporting
    /// nothing need not hold; until then sampled packets are dropped
    /// uncounted, as nobody would read them.
    samples: Mutex<Option<crossbeam_channel::Receiver<Sampled>>>,
    /// Outer headers of `tnl_push` actions, filled by the slow path.
    tnl_headers: Arc<crate::tunnel::HeaderTable>,
    tnl_counters: Arc<crate::tunnel::TnlCounters>,
    /// The connection tracker, shared by every PMD.
    ct: Arc<crate::ct::DpConntrack>,
}

/// A packet a `DpAction::Sample` picked: its key (datapath `in_port`) and
/// its length, for the exporter the action names.
#[derive(Clone, Copy, Debug)]
pub struct Sampled {
    pub exporter: u32,
    pub obs_domain: u32,
    pub obs_point: u32,
    /// From an OpenFlow `sample` action (`exporter` is its collector set).
    pub flow_sample: bool,
    pub key: FlowKey,
    pub len: u32,
}

/// Samples waiting for the exporters at most (more are dropped).
pub const SAMPLE_QUEUE: usize = 8192;

struct PmdHandle {
    link: PmdLink,
    counters: Arc<PmdCounters>,
    thread: Option<JoinHandle<()>>,
    /// The thread's kernel id, once it has started (0 before).
    tid: Arc<AtomicI32>,
}

struct PortEntry {
    port: Arc<dyn Port>,
    /// PMD owning each receive queue.
    rxq_pmds: Vec<usize>,
}

#[derive(Default)]
struct PortTable {
    ports: BTreeMap<DpPortNo, PortEntry>,
    /// Receive queues per PMD (the load used to place new queues).
    rxqs_per_pmd: Vec<usize>,
}

/// The datapath: PMD threads, a handler thread and the ports they serve.
pub struct Datapath {
    shared: Arc<Shared>,
    pmds: Vec<PmdHandle>,
    handler: Option<JoinHandle<()>>,
    table: Mutex<PortTable>,
}

impl Datapath {
    /// Starts `cfg.n_pmd` PMD threads and one upcall handler thread.
    pub fn new(cfg: DpConfig, handler: Arc<dyn UpcallHandler>) -> Result<Datapath, DpError> {
        Datapath::with_conntrack(cfg, handler, Arc::new(crate::ct::DpConntrack::default()))
    }

    /// Like [`Datapath::new`], with the connection tracker `ct` (owned by
    /// the caller, which also interns the `ct` actions the slow path
    /// translates).
    pub fn with_conntrack(
        cfg: DpConfig,
        handler: Arc<dyn UpcallHandler>,
        ct: Arc<crate::ct::DpConntrack>,
    ) -> Result<Datapath, DpError> {
        if cfg.n_pmd == 0 {
            return Err(DpError::InvalidConfig("n_pmd must be at least 1".into()));
        }
        let shared = Arc::new(Shared {
            generation: AtomicU64::new(1),
            meters: Arc::new(crate::meter::Meters::new()),
            samples: Mutex::new(None),
            tnl_headers: Arc::new(crate::tunnel::HeaderTable::default()),
            tnl_counters: Arc::new(crate::tunnel::TnlCounters::default()),
            ct,
        });
        let (upcall_tx, upcall_rx) = bounded(cfg.upcall_queue.max(1));
        let mut pmds = Vec::new();
        let mut starters = Vec::new();
        for id in 0..cfg.n_pmd {
            let (tx, rx) = crossbeam_channel::unbounded();
            let wake = Arc::new(EventFd::new().map_err(DpError::Thread)?);
            let counters = Arc::new(PmdCounters::default());
            let cpu = (!cfg.pmd_cpus.is_empty()).then(|| cfg.pmd_cpus[id % cfg.pmd_cpus.len()]);
            counters.set_cpu(cpu);
            let link = PmdLink { tx, wake };
            // The PMD builds its state on its own thread, so its buffers
            // come from that thread's malloc arena, where calloc hands out
            // fresh pages without clearing them: its packet batches (2 MiB
            // each, 64 KiB a frame) become resident as frames fill them.
            // Built here, on the main arena, each calloc of a frame buffer
            // was cleared byte by byte (4 MiB resident per PMD at start).
            let (pcfg, wake, utx, pshared, pcounters) = (
                cfg.clone(),
                link.wake.clone(),
                upcall_tx.clone(),
                shared.clone(),
                counters.clone(),
            );
            starters.push(move || pmd::Pmd::new(id, cpu, &pcfg, rx, wake, utx, pshared, pcounters));
            pmds.push(PmdHandle {
                link,
                counters,
                thread: None,
                tid: Arc::new(AtomicI32::new(0)),
            });
        }
        drop(upcall_tx);
        let links: Vec<PmdLink> = pmds.iter().map(|p| p.link.clone()).collect();
        let hshared = shared.clone();
        let handler_thread = std::thread::Builder::new()
            .name("handler".into())
            .spawn(move || handler::run(upcall_rx, handler, links, hshared))
            .map_err(DpError::Thread)?;
        let mut dp = Datapath {
            shared,
            pmds,
            handler: Some(handler_thread),
            table: Mutex::new(PortTable {
                ports: BTreeMap::new(),
                rxqs_per_pmd: vec![0; cfg.n_pmd],
            }),
        };
        for (id, (h, make)) in dp.pmds.iter_mut().zip(starters).enumerate() {
            let tid = h.tid.clone();
            h.thread = Some(
                std::thread::Builder::new()
                    .name(format!("pmd-{id}"))
                    .spawn(move || {
                        // SAFETY: gettid has no preconditions; it returns this thread's id.
                        tid.store(unsafe { libc::gettid() }, Ordering::Release);
                        make().run()
                    })
                    .map_err(DpError::Thread)?,
            );
        }
        Ok(dp)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, PortTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `make(reply)` to every PMD and waits until each has handled
    /// it, returning what each one answered (PMDs that are gone answer
    /// nothing; one that dies before answering is an error).
    fn gather<T>(
        &self,
        make: impl Fn(crossbeam_channel::Sender<T>) -> PmdCmd,
    ) -> Result<Vec<T>, DpError> {
        let (tx, rx) = bounded(self.pmds.len());
        let mut waiting = 0;
        for (i, p) in self.pmds.iter().enumerate() {
            if p.link.send(make(tx.clone())).is_err() {
                tracing::warn!("PMD {i} is gone");
                continue;
            }
            waiting += 1;
        }
        drop(tx);
        (0..waiting)
            .map(|_| rx.recv().map_err(|_| DpError::PmdGone))
            .collect()
    }

    /// Sends `make(ack)` to every PMD and waits until each has handled it.
    fn broadcast(
        &self,
        make: impl Fn(crossbeam_channel::Sender<()>) -> PmdCmd,
    ) -> Result<(), DpError> {
        self.gather(make).map(|_| ())
    }

    /// The megaflows every PMD reports to `make(reply)`, together.
    fn gather_flows(
        &self,
        make: impl Fn(crossbeam_channel::Sender<Vec<MegaflowInfo>>) -> PmdCmd,
    ) -> Vec<MegaflowInfo> {
        self.gather(make)
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .collect()
    }

    /// Adds `port` as datapath port `no`: its receive queues go to the least
    /// loaded PMDs and every PMD gets a transmit queue. Returns once every
    /// PMD polls it.
    pub fn add_port(&self, no: DpPortNo, port: Arc<dyn Port>) -> Result<(), DpError> {
        let mut t = self.table();
        if t.ports.contains_key(&no) {
            return Err(DpError::PortExists(no));
        }
        let info = port.info();
        // Open every queue first, so that a failure leaves nothing behind.
        let mut txqs = Vec::with_capacity(self.pmds.len());
        for pmd in 0..self.pmds.len() {
            txqs.push(port.open_txq(pmd)?);
        }
        let mut rxqs = Vec::with_capacity(info.n_rxq);
        for q in 0..info.n_rxq {
            rxqs.push(port.open_rxq(q)?);
        }
        let (ack_tx, ack_rx) = bounded(self.pmds.len() + rxqs.len());
        let mut waiting = 0;
        for (p, txq) in self.pmds.iter().zip(txqs) {
            if p.link
                .send(PmdCmd::AddTxq {
                    no,
                    txq,
                    ack: ack_tx.clone(),
                })
                .is_ok()
            {
                waiting += 1;
            }
        }
        let stats = port.stats();
        let mut rxq_pmds = Vec::new();
        for (q, rxq) in rxqs.into_iter().enumerate() {
            let pmd = (0..self.pmds.len())
                .min_by_key(|&i| t.rxqs_per_pmd[i])
                .unwrap_or(0);
            t.rxqs_per_pmd[pmd] += 1;
            rxq_pmds.push(pmd);
            tracing::info!(
                "port {} (dp port {no}) rxq {q} assigned to pmd {pmd}",
                info.name
            );
            if self.pmds[pmd]
                .link
                .send(PmdCmd::AddRxq {
                    no,
                    rxq,
                    stats: stats.clone(),
                    ack: ack_tx.clone(),
                })
                .is_ok()
            {
                waiting += 1;
            }
        }
        drop(ack_tx);
        for _ in 0..waiting {
            let _ = ack_rx.recv();
        }
        t.ports.insert(no, PortEntry { port, rxq_pmds });
        Ok(())
    }

    /// Removes port `no`; returns once no PMD polls or transmits on it.
    pub fn del_port(&self, no: DpPortNo) -> Result<(), DpError> {
        let mut t = self.table();
        let entry = t.ports.remove(&no).ok_or(DpError::NoSuchPort(no))?;
        for pmd in &entry.rxq_pmds {
            if let Some(n) = t.rxqs_per_pmd.get_mut(*pmd) {
                *n = n.saturating_sub(1);
            }
        }
        drop(t);
        self.broadcast(|ack| PmdCmd::DelPort { no, ack })?;
        tracing::info!("removed port {} (dp port {no})", entry.port.info().name);
        Ok(())
    }

    /// The port added as `no`.
    pub fn port(&self, no: DpPortNo) -> Option<Arc<dyn Port>> {
        self.table().ports.get(&no).map(|e| e.port.clone())
    }

    /// Which PMD polls each receive queue: `(port, queue, pmd)`, like
    /// `dpif-netdev/pmd-rxq-show`.
    pub fn rxq_assignment(&self) -> Vec<(DpPortNo, usize, usize)> {
        let t = self.table();
        t.ports
            .iter()
            .flat_map(|(no, e)| {
                e.rxq_pmds
                    .iter()
                    .enumerate()
                    .map(move |(q, pmd)| (*no, q, *pmd))
            })
            .collect()
    }

    /// Numbers of all ports.
    pub fn port_numbers(&self) -> Vec<DpPortNo> {
        self.table().ports.keys().copied().collect()
    }

    /// Drops every cached flow (EMC and megaflows) on every PMD. When this
    /// returns, no decision made before the call is cached any more or will
    /// be: a decision still in flight forwards the packet that asked for it
    /// (as OVS's upcall handlers do) but is not installed.
    ///
    /// Returns the final counters of the megaflows it dropped, so that no
    /// packet they counted after the last [`Datapath::dump_flows`] is lost.
    pub fn flush(&self) -> Vec<MegaflowInfo> {
        let generation = self.shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.gather_flows(|ack| PmdCmd::Flush { generation, ack })
    }

    /// Drops, on every PMD, the megaflows `pred` selects (and the exact-match
    /// caches); like [`Datapath::flush`] it is synchronous and bumps the
    /// generation, so no decision older than the call survives where `pred`
    /// holds, while unrelated megaflows stay cached.
    ///
    /// Returns the final counters of the megaflows it dropped.
    pub fn flush_where(&self, pred: cmd::MegaflowPredicate) -> Vec<MegaflowInfo> {
        let generation = self.shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.gather_flows(|ack| PmdCmd::FlushWhere {
            generation,
            pred: pred.clone(),
            ack,
        })
    }

    /// Re-pins PMD thread `i` to `cpu % cpus` for `cpus` = the given list.
    /// The number of PMD threads is fixed when the datapath starts.
    pub fn set_pmd_cpus(&self, cpus: &[usize]) {
        if cpus.is_empty() {
            return;
        }
        for (i, p) in self.pmds.iter().enumerate() {
            let (tx, rx) = bounded(1);
            let cpu = cpus[i % cpus.len()];
            if p.link.send(PmdCmd::SetCpu { cpu, ack: tx }).is_ok() {
                let _ = rx.recv();
            }
        }
    }

    /// Applies `other_config:pmd-maxsleep` (`None`: not set) to every PMD.
    pub fn set_pmd_max_sleep(&self, max_sleep: Option<Duration>) {
        let _ = self.broadcast(|ack| PmdCmd::SetMaxSleep { max_sleep, ack });
    }

    /// Applies `other_config:emc-insert-inv-prob` (see
    /// [`DpConfig::emc_insert_inv_prob`]) to every PMD.
    pub fn set_emc_insert_inv_prob(&self, inv_prob: u32) {
        let _ = self.broadcast(|ack| PmdCmd::SetEmcInsertInvProb { inv_prob, ack });
    }

    /// Holds (`true`) or releases every PMD thread's receive queues. A
    /// held datapath takes nothing from its ports (frames wait in the
    /// rings and sockets, or are dropped there when they fill), keeps its
    /// flows and still carries out packet-outs: OVS's
    /// `other_config:flow-restore-wait`. Returns once every PMD obeys.
    pub fn set_hold(&self, hold: bool) {
        let _ = self.broadcast(|ack| PmdCmd::SetHold { hold, ack });
    }

    /// The number of PMD threads.
    pub fn n_pmds(&self) -> usize {
        self.pmds.len()
    }

    /// The kernel thread ids of the PMD threads, waiting (briefly) for any
    /// that has not started yet; one that never starts is left out.
    pub fn pmd_thread_ids(&self) -> Vec<i32> {
        let deadline = Instant::now() + Duration::from_secs(5);
        self.pmds
            .iter()
            .filter_map(|p| {
                loop {
                    match p.tid.load(Ordering::Acquire) {
                        0 if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(1))
                        }
                        0 => break None,
                        tid => break Some(tid),
                    }
                }
            })
            .collect()
    }

    /// The current flow-cache generation (bumped by every flush).
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// Executes `actions` on `packet` (packet-out from the slow path) on the
    /// first PMD thread. Asynchronous.
    pub fn execute(&self, packet: Packet, actions: Vec<DpAction>) {
        if let Some(p) = self.pmds.first() {
            let _ = p.link.send(PmdCmd::Execute { packet, actions });
        }
    }

    /// Every megaflow of every PMD.
    pub fn dump_flows(&self) -> Vec<MegaflowInfo> {
        let mut out = Vec::new();
        for p in &self.pmds {
            let (tx, rx) = bounded(1);
            if p.link.send(PmdCmd::DumpFlows { reply: tx }).is_ok()
                && let Ok(mut v) = rx.recv()
            {
                out.append(&mut v);
            }
        }
        out
    }

    /// The queue of sampled packets (`DpAction::Sample`), for the flow
    /// exporters. The first call makes the queue and hands it to every PMD.
    pub fn samples(&self) -> crossbeam_channel::Receiver<Sampled> {
        let mut rx = self
            .shared
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = &*rx {
            return rx.clone();
        }
        let (tx, new) = bounded(SAMPLE_QUEUE);
        if self
            .broadcast(|ack| PmdCmd::SetSamples { q: tx.clone(), ack })
            .is_err()
        {
            tracing::warn!("a PMD did not take the sample queue");
        }
        *rx = Some(new.clone());
        new
    }

    /// The outer headers `DpAction::TnlPush` names by index.
    pub fn tnl_headers(&self) -> &Arc<crate::tunnel::HeaderTable> {
        &self.shared.tnl_headers
    }

    /// Tunnel receive drops and push errors.
    pub fn tnl_counters(&self) -> &crate::tunnel::TnlCounters {
        &self.shared.tnl_counters
    }

    /// The connection tracker and its `ct` action table (`DpAction::Ct`).
    pub fn conntrack(&self) -> &Arc<crate::ct::DpConntrack> {
        &self.shared.ct
    }

    /// The datapath meters (`DpAction::Meter` ids and port policers).
    pub fn meters(&self) -> &crate::meter::Meters {
        &self.shared.meters
    }

    /// Polices port `no`: received batches through datapath meter
    /// `ingress`, transmitted packets through `egress` (`None`: not
    /// policed). Synchronous.
    pub fn set_port_policing(&self, no: DpPortNo, ingress: Option<u32>, egress: Option<u32>) {
        let _ = self.broadcast(|ack| PmdCmd::SetPolicing {
            no,
            ingress,
            egress,
            ack,
        });
    }

    /// Counters of every PMD thread.
    pub fn pmd_stats(&self) -> Vec<PmdStats> {
        self.pmds
            .iter()
            .enumerate()
            .map(|(i, p)| p.counters.snapshot(i))
            .collect()
    }

    /// Zeroes every PMD's counters (synchronous).
    pub fn clear_pmd_stats(&self) {
        let _ = self.broadcast(|ack| PmdCmd::ClearStats { ack });
    }

    /// Counters of port `no`.
    pub fn port_stats(&self, no: DpPortNo) -> Option<PortStatsSnapshot> {
        self.table()
            .ports
            .get(&no)
            .map(|e| e.port.stats().snapshot())
    }

    /// Stops and joins every thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for p in &self.pmds {
            let _ = p.link.send(PmdCmd::Quit);
        }
        for p in &mut self.pmds {
            if let Some(t) = p.thread.take() {
                let _ = t.join();
            }
        }
        if let Some(h) = self.handler.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Datapath {
    fn drop(&mut self) {
        self.stop();
    }
}

// The daemon shares the datapath between threads.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Datapath>();
};

#[cfg(test)]
mod meter_tests;
#[cfg(test)]
mod recirc_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tunnel_tests;
