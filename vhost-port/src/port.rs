//! `VhostUserPort`: the datapath `Port` for vhost-user server and client
//! interfaces, with its PMD-polled receive and transmit queues.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use datapath::offload::{Prepared, TxOffload};
use datapath::packet::{BATCH_SIZE, Offload, Packet, PacketBatch};
use datapath::port::{
    OffloadCaps, Port, PortError, PortInfo, PortKind, PortStats, RxQueue, TxQueue,
};

use crate::control::{self, ConnCtl};
use crate::features::{FeatureOptions, Negotiated};
use crate::guest_rx::{self, Pending, SendOutcome};
use crate::guest_tx::{self, RxOutcome};
use crate::ring::{AnyRing, RingError};
use crate::ring_packed::PackedHead;
use crate::session::{ActiveRing, RingCache, Session, SessionCache, SessionSlot};
use crate::sockfile::{self, SockFileError, SocketPerms};

/// Settings of a vhost-user port.
#[derive(Clone, Debug)]
pub struct VhostUserOptions {
    /// Queue pairs offered (n_rxq); at most 64.
    pub n_pairs: usize,
    /// MAC address offered in the config space.
    pub mac: [u8; 6],
    pub mtu: u16,
    pub features: FeatureOptions,
    /// Datapath port number stamped on received packets.
    pub in_port: u32,
    /// Mode and group of the socket file a server-mode port creates.
    pub socket_perms: SocketPerms,
}

impl Default for VhostUserOptions {
    fn default() -> Self {
        VhostUserOptions {
            n_pairs: 1,
            mac: [0x02, 0x00, 0x00, 0x00, 0x00, 0x01],
            mtu: 1500,
            features: FeatureOptions::default(),
            in_port: 0,
            socket_perms: SocketPerms::default(),
        }
    }
}

/// Errors a vhost-user port reports when it is created.
#[derive(Debug, thiserror::Error)]
pub enum VhostPortError {
    #[error("{0}: could not create vhost-user socket: {1}")]
    Listen(String, SockFileError),
    #[error("{0}: n_rxq must be between 1 and 64, not {1}")]
    BadQueueCount(String, usize),
    #[error("{0}: could not start the control thread: {1}")]
    Thread(String, std::io::Error),
}

impl From<VhostPortError> for PortError {
    fn from(e: VhostPortError) -> PortError {
        let port = match &e {
            VhostPortError::Listen(n, ..)
            | VhostPortError::BadQueueCount(n, _)
            | VhostPortError::Thread(n, _) => n.clone(),
        };
        PortError::Invalid {
            port,
            msg: e.to_string(),
        }
    }
}

/// State shared by the port handle, its control thread and its queues.
pub struct PortShared {
    pub name: String,
    pub kind: PortKind,
    pub n_pairs: usize,
    pub opts: VhostUserOptions,
    pub slot: SessionSlot,
    pub stats: Arc<PortStats>,
    pub shutdown: AtomicBool,
    pub connected: AtomicBool,
    pub ctl: ConnCtl,
    last_error: Mutex<Option<String>>,
    errors_seen: AtomicU64,
}

impl PortShared {
    pub fn set_error(&self, msg: String) {
        self.errors_seen.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg);
    }

    /// Forgets the last problem (it went away).
    pub fn clear_error(&self) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// A vhost-user port (`dpdkvhostuser` or `dpdkvhostuserclient`).
pub struct VhostUserPort {
    shared: Arc<PortShared>,
    path: PathBuf,
    thread: Option<JoinHandle<()>>,
}

impl VhostUserPort {
    fn shared(
        name: &str,
        kind: PortKind,
        opts: VhostUserOptions,
    ) -> Result<Arc<PortShared>, VhostPortError> {
        if opts.n_pairs == 0 || opts.n_pairs > 64 {
            return Err(VhostPortError::BadQueueCount(
                name.to_string(),
                opts.n_pairs,
            ));
        }
        Ok(Arc::new(PortShared {
            name: name.to_string(),
            kind,
            n_pairs: opts.n_pairs,
            opts,
            slot: SessionSlot::default(),
            stats: Arc::new(PortStats::default()),
            shutdown: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            ctl: ConnCtl::default(),
            last_error: Mutex::new(None),
            errors_seen: AtomicU64::new(0),
        }))
    }

    /// `dpdkvhostuser`: creates `socket_path` and waits for a frontend; after
    /// one disconnects, accepts the next.
    pub fn server(
        name: &str,
        socket_path: impl AsRef<Path>,
        opts: VhostUserOptions,
    ) -> Result<VhostUserPort, VhostPortError> {
        let path = socket_path.as_ref().to_path_buf();
        let shared = Self::shared(name, PortKind::VhostUser, opts)?;
        let (listener, owned) = sockfile::bind_listener(&path, shared.opts.socket_perms)
            .map_err(|e| VhostPortError::Listen(name.to_string(), e))?;
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("vhost-{name}"))
            .spawn(move || control::serve(s, listener, owned))
            .map_err(|e| VhostPortError::Thread(name.to_string(), e))?;
        Ok(VhostUserPort {
            shared,
            path,
            thread: Some(thread),
        })
    }

    /// `dpdkvhostuserclient`: connects to the frontend's socket at
    /// `server_path`, and reconnects (with backoff) whenever it goes away.
    pub fn client(
        name: &str,
        server_path: impl AsRef<Path>,
        opts: VhostUserOptions,
    ) -> Result<VhostUserPort, VhostPortError> {
        let path = server_path.as_ref().to_path_buf();
        let shared = Self::shared(name, PortKind::VhostUserClient, opts)?;
        let s = shared.clone();
        let p = path.clone();
        let thread = std::thread::Builder::new()
            .name(format!("vhost-{name}"))
            .spawn(move || control::connect_loop(s, p))
            .map_err(|e| VhostPortError::Thread(name.to_string(), e))?;
        Ok(VhostUserPort {
            shared,
            path,
            thread: Some(thread),
        })
    }

    /// The socket path (created by the port in server mode).
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// The last problem seen on this port (for Interface.error).
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether a frontend is connected (queues may not be enabled yet).
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// The Interface `status` of the port, with OVS's keys for vhost-user
    /// ports where they exist: `mode` (client or server), `status`
    /// (connected or disconnected) and, once features are negotiated,
    /// `features` (the virtio feature bits, hex) and `vring_layout`
    /// (`split` or `packed`).
    pub fn status(&self) -> std::collections::BTreeMap<String, String> {
        let mut m = std::collections::BTreeMap::new();
        let mode = match self.shared.kind {
            PortKind::VhostUserClient => "client",
            _ => "server",
        };
        m.insert("mode".to_string(), mode.to_string());
        let connected = self.connected();
        m.insert(
            "status".to_string(),
            if connected {
                "connected"
            } else {
                "disconnected"
            }
            .to_string(),
        );
        if let Some(s) = self.shared.slot.get().filter(|_| connected) {
            let acked = s.acked.load(Ordering::Acquire);
            if acked != 0 {
                m.insert("features".to_string(), format!("{acked:#018x}"));
                let packed = Negotiated::from_bits(acked).packed;
                m.insert(
                    "vring_layout".to_string(),
                    if packed { "packed" } else { "split" }.to_string(),
                );
            }
        }
        m
    }

    /// Offloads frames sent to this port may keep, given what the guest
    /// negotiated (everything is completed in software when nobody is
    /// connected).
    pub fn tx_offload_caps(&self) -> OffloadCaps {
        let Some(s) = self.shared.slot.get() else {
            return OffloadCaps::default();
        };
        let n = Negotiated::from_bits(s.acked.load(Ordering::Acquire));
        OffloadCaps {
            tx_csum: n.guest_csum,
            tx_tso: n.guest_tso && n.guest_csum,
            tx_uso: false,
        }
    }

    /// Opens receive queue `q` (same as [`Port::open_rxq`], typed).
    pub fn rxq(&self, q: usize) -> Result<VhostRxQueue, PortError> {
        if q >= self.shared.n_pairs {
            return Err(PortError::Invalid {
                port: self.shared.name.clone(),
                msg: format!("no receive queue {q} (n_rxq={})", self.shared.n_pairs),
            });
        }
        Ok(VhostRxQueue {
            shared: self.shared.clone(),
            cache: SessionCache::default(),
            ring: RingCache::default(),
            vring: 2 * q + 1,
            checked: None,
        })
    }

    /// Opens the transmit queue of PMD `pmd` (same as [`Port::open_txq`], typed).
    pub fn txq(&self, pmd: usize) -> VhostTxQueue {
        VhostTxQueue::new(self.shared.clone(), pmd)
    }
}

impl Drop for VhostUserPort {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.ctl.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Port for VhostUserPort {
    fn info(&self) -> PortInfo {
        PortInfo {
            name: self.shared.name.clone(),
            kind: self.shared.kind,
            mac: Some(self.shared.opts.mac),
            mtu: u32::from(self.shared.opts.mtu),
            n_rxq: self.shared.n_pairs,
        }
    }

    fn stats(&self) -> Arc<PortStats> {
        self.shared.stats.clone()
    }

    fn link_up(&self) -> bool {
        self.shared
            .slot
            .get()
            .is_some_and(|s| s.vring_running(0) && s.vring_running(1))
    }

    fn open_rxq(&self, q: usize) -> Result<Box<dyn RxQueue>, PortError> {
        Ok(Box::new(self.rxq(q)?))
    }

    fn open_txq(&self, pmd: usize) -> Result<Box<dyn TxQueue>, PortError> {
        Ok(Box::new(self.txq(pmd)))
    }
}

/// Identifies a ring setup already checked against guest memory.
type CheckedKey = (u64, u64, u64, u16, usize);

fn key_of(ar: &ActiveRing) -> CheckedKey {
    let (desc, driver, device, size) = ar.view.key();
    (desc, driver, device, size, Arc::as_ptr(&ar.mem) as usize)
}

/// Validates a ring once per setup (and memory table) and tells the guest
/// not to kick: the ring is polled.
fn check_ring(ar: &ActiveRing, checked: &mut Option<CheckedKey>) -> Result<(), RingError> {
    let key = key_of(ar);
    if *checked != Some(key) {
        ar.view.validate(&ar.mem)?;
        ar.view
            .suppress_kicks(&crate::ring::FastMem::new(&ar.mem))?;
        *checked = Some(key);
    }
    Ok(())
}

/// Receive queue `q`: polls the guest's transmit virtqueue `2q+1`.
pub struct VhostRxQueue {
    shared: Arc<PortShared>,
    cache: SessionCache,
    ring: RingCache,
    vring: usize,
    checked: Option<CheckedKey>,
}

impl RxQueue for VhostRxQueue {
    fn rx_batch(&mut self, batch: &mut PacketBatch) -> Result<usize, PortError> {
        let Some(s) = self.cache.get(&self.shared.slot) else {
            return Ok(0);
        };
        if !s.begin(self.vring, &mut self.ring) {
            return Ok(0);
        }
        let Some(ar) = self.ring.ring_mut() else {
            return Ok(0);
        };
        if let Err(e) = check_ring(ar, &mut self.checked) {
            s.end(&mut self.ring, false, Some(&e));
            PortStats::add(&self.shared.stats.rx_errors, 1);
            self.shared.set_error(format!(
                "guest transmit queue {} stopped: {e}",
                self.vring / 2
            ));
            return Ok(0);
        }
        let before = batch.len();
        let mut out = RxOutcome::default();
        let in_port = self.shared.opts.in_port;
        let r = match &mut ar.view {
            AnyRing::Split(v) => {
                guest_tx::receive_from_guest(&ar.mem, v, &ar.neg, batch, in_port, &mut out)
            }
            AnyRing::Packed(v) => {
                guest_tx::receive_from_guest(&ar.mem, v, &ar.neg, batch, in_port, &mut out)
            }
        };
        s.end(&mut self.ring, out.interrupt, r.as_ref().err());
        let stats = &self.shared.stats;
        PortStats::add(&stats.rx_packets, out.delivered as u64);
        PortStats::add(&stats.rx_bytes, out.bytes);
        PortStats::add(&stats.rx_errors, out.errors + u64::from(r.is_err()));
        if let Some(e) = out.last_error {
            self.shared
                .set_error(format!("malformed frame from guest: {e}"));
        }
        if let Err(e) = r {
            self.checked = None;
            self.shared.set_error(format!(
                "guest transmit queue {} stopped: {e}",
                self.vring / 2
            ));
        }
        Ok(batch.len() - before)
    }
}

#[derive(Default)]
struct TxCounts {
    packets: u64,
    bytes: u64,
    dropped: u64,
    errors: u64,
}

/// Transmit queue of one PMD: writes into the guest's receive virtqueue.
pub struct VhostTxQueue {
    shared: Arc<PortShared>,
    cache: SessionCache,
    pair: usize,
    /// The session of the batch in progress (its ring is `ring`'s).
    active: Option<Arc<Session>>,
    ring: RingCache,
    /// The batch's used elements, for a split ring or a packed one.
    pending: Pending,
    pending_packed: Pending<PackedHead>,
    checked: Option<CheckedKey>,
    in_batch: usize,
    counts: TxCounts,
    /// Software segmentation for super-frames the guest cannot take: its
    /// scratch is allocated the first time it is needed and reused for
    /// every later super-frame (none on the plain-frame path).
    sw_gso: Option<TxOffload>,
}

/// Whether a guest with features `neg` accepts a super-frame of `gso_type`
/// as it is (the virtio header carries the GSO request).
#[inline]
fn guest_takes_gso(neg: &Negotiated, gso_type: u8) -> bool {
    neg.guest_csum
        && match gso_type & !Offload::GSO_ECN {
            Offload::GSO_TCPV4 => neg.guest_tso4,
            Offload::GSO_TCPV6 => neg.guest_tso6,
            // GUEST_UFO and GUEST_USO are never offered.
            _ => false,
        }
}

impl VhostTxQueue {
    fn new(shared: Arc<PortShared>, pmd: usize) -> VhostTxQueue {
        VhostTxQueue {
            pair: pmd % shared.n_pairs,
            shared,
            cache: SessionCache::default(),
            active: None,
            ring: RingCache::default(),
            pending: Pending::default(),
            pending_packed: Pending::default(),
            checked: None,
            in_batch: 0,
            counts: TxCounts::default(),
            sw_gso: None,
        }
    }

    /// The transmit queue of PMD 0 of a port whose session is `session`, and
    /// the port's counters (for tests driving a mock guest).
    #[cfg(test)]
    pub(crate) fn for_session(session: Arc<Session>) -> (VhostTxQueue, Arc<PortStats>) {
        let shared =
            VhostUserPort::shared("mock", PortKind::VhostUser, VhostUserOptions::default())
                .expect("default options are valid");
        shared.slot.publish(Some(session));
        let stats = shared.stats.clone();
        (VhostTxQueue::new(shared, 0), stats)
    }

    /// Starts a batch on the guest receive ring of our pair (or pair 0 when
    /// the guest did not enable ours).
    fn start(&mut self) -> bool {
        let Some(s) = self.cache.get(&self.shared.slot) else {
            return false;
        };
        for pair in [self.pair, 0] {
            if s.begin(2 * pair, &mut self.ring) {
                let Some(ar) = self.ring.ring() else {
                    return false;
                };
                if let Err(e) = check_ring(ar, &mut self.checked) {
                    s.end(&mut self.ring, false, Some(&e));
                    self.counts.errors += 1;
                    self.shared
                        .set_error(format!("guest receive queue {pair} stopped: {e}"));
                    return false;
                }
                self.active = Some(s.clone());
                return true;
            }
            if self.pair == 0 {
                break;
            }
        }
        false
    }

    fn finish(&mut self, broken: Option<RingError>) {
        let Some(s) = self.active.take() else {
            return;
        };
        let Some(ar) = self.ring.ring_mut() else {
            return;
        };
        let index = ar.index;
        let (interrupt, broken) = match broken {
            Some(e) => (false, Some(e)),
            None => {
                let published = match &mut ar.view {
                    AnyRing::Split(v) => guest_rx::publish(&ar.mem, v, &mut self.pending),
                    AnyRing::Packed(v) => guest_rx::publish(&ar.mem, v, &mut self.pending_packed),
                };
                match published {
                    Ok(i) => (i, None),
                    Err(e) => (false, Some(e)),
                }
            }
        };
        self.pending.reset();
        self.pending_packed.reset();
        s.end(&mut self.ring, interrupt, broken.as_ref());
        if let Some(e) = broken {
            self.counts.errors += 1;
            self.checked = None;
            self.shared
                .set_error(format!("guest receive queue {} stopped: {e}", index / 2));
        }
        self.in_batch = 0;
        let st = &self.shared.stats;
        let c = std::mem::take(&mut self.counts);
        PortStats::add(&st.tx_packets, c.packets);
        PortStats::add(&st.tx_bytes, c.bytes);
        PortStats::add(&st.tx_dropped, c.dropped);
        PortStats::add(&st.tx_errors, c.errors);
    }

    fn flush_counts_only(&mut self) {
        let st = &self.shared.stats;
        let c = std::mem::take(&mut self.counts);
        PortStats::add(&st.tx_dropped, c.dropped);
        PortStats::add(&st.tx_errors, c.errors);
    }
}

impl TxQueue for VhostTxQueue {
    fn send(&mut self, pkt: &mut Packet) -> Result<(), PortError> {
        if self.active.is_none() && !self.start() {
            self.counts.dropped += 1;
            return Ok(());
        }
        let Some(ar) = self.ring.ring() else {
            return Ok(());
        };
        let neg = ar.neg;
        let mut off = pkt.offload;
        if off.gso_type != Offload::GSO_NONE && !guest_takes_gso(&neg, off.gso_type) {
            self.send_segmented(pkt);
            return Ok(());
        }
        if off.flags & Offload::F_NEEDS_CSUM != 0 && !neg.guest_csum {
            if datapath::offload::complete_packet_csum(pkt).is_err() {
                self.counts.errors += 1;
                return Ok(());
            }
            off = pkt.offload;
        }
        if !neg.guest_csum {
            off = Offload::default();
        }
        self.put(pkt.data(), &off);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PortError> {
        if self.active.is_some() {
            self.finish(None);
        } else {
            self.flush_counts_only();
        }
        Ok(())
    }
}

impl VhostTxQueue {
    /// Writes one frame into the batch's guest receive ring (which must be
    /// active) and ends the batch when it is full.
    #[inline(always)]
    fn put(&mut self, data: &[u8], off: &Offload) {
        let Some(ar) = self.ring.ring_mut().filter(|_| self.active.is_some()) else {
            self.counts.dropped += 1;
            return;
        };
        let r = match &mut ar.view {
            AnyRing::Split(v) => {
                guest_rx::send_to_guest(&ar.mem, v, &ar.neg, data, off, &mut self.pending)
            }
            AnyRing::Packed(v) => {
                guest_rx::send_to_guest(&ar.mem, v, &ar.neg, data, off, &mut self.pending_packed)
            }
        };
        match r {
            Ok(SendOutcome::Sent { .. }) => {
                self.counts.packets += 1;
                self.counts.bytes += data.len() as u64;
            }
            Ok(SendOutcome::NoRoom) => self.counts.dropped += 1,
            Ok(SendOutcome::BadChain(e)) => {
                self.counts.errors += 1;
                self.shared
                    .set_error(format!("malformed receive buffer from guest: {e}"));
            }
            Err(e) => {
                self.finish(Some(e));
                return;
            }
        }
        self.in_batch += 1;
        if self.in_batch >= BATCH_SIZE {
            self.finish(None);
        }
    }

    /// A super-frame the guest did not negotiate offload for: cut into
    /// plain frames with complete checksums (as the kernel does for a
    /// device without TSO), each sent as one frame of the batch.
    #[cold]
    #[inline(never)]
    fn send_segmented(&mut self, pkt: &mut Packet) {
        // Taken out for the loop (moving it allocates nothing) so that the
        // segments can be read while the queue writes them out.
        let mut sw = self
            .sw_gso
            .take()
            .unwrap_or_else(|| TxOffload::new(OffloadCaps::default()));
        match sw.prepare(pkt) {
            Ok(Prepared::Segments(_)) => {
                for seg in sw.segments() {
                    // A full batch ends mid-frame; the next segment starts
                    // another one.
                    if self.active.is_none() && !self.start() {
                        self.counts.dropped += 1;
                        continue;
                    }
                    // Segments carry complete checksums and no offload.
                    self.put(seg, &Offload::default());
                }
            }
            Ok(Prepared::Single) => {
                // Not produced for a GSO frame by a TxOffload without
                // capabilities; never hand the guest a super-frame.
                self.counts.errors += 1;
            }
            Err(e) => {
                tracing::debug!("{}: dropping super-frame: {e}", self.shared.name);
                self.counts.errors += 1;
            }
        }
        self.sw_gso = Some(sw);
    }
}

impl Drop for VhostTxQueue {
    fn drop(&mut self) {
        self.finish(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{NET_F_GUEST_CSUM, NET_F_GUEST_TSO4, NET_F_GUEST_TSO6};

    #[test]
    fn a_super_frame_is_passed_on_only_for_the_tso_kind_the_guest_negotiated() {
        let v4 = Offload::GSO_TCPV4;
        let v6 = Offload::GSO_TCPV6;
        let n = Negotiated::from_bits(NET_F_GUEST_CSUM | NET_F_GUEST_TSO4);
        assert!(guest_takes_gso(&n, v4));
        assert!(guest_takes_gso(&n, v4 | Offload::GSO_ECN));
        assert!(!guest_takes_gso(&n, v6));
        let n = Negotiated::from_bits(NET_F_GUEST_CSUM | NET_F_GUEST_TSO4 | NET_F_GUEST_TSO6);
        assert!(guest_takes_gso(&n, v6));
        // UDP segmentation/fragmentation is never negotiated.
        assert!(!guest_takes_gso(&n, Offload::GSO_UDP_L4));
        assert!(!guest_takes_gso(&n, Offload::GSO_UDP));
        // TSO is unusable without GUEST_CSUM.
        let n = Negotiated::from_bits(NET_F_GUEST_TSO4 | NET_F_GUEST_TSO6);
        assert!(!guest_takes_gso(&n, v4) && !guest_takes_gso(&n, v6));
    }
}
