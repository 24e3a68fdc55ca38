//! Executing datapath actions on one packet, the per-PMD set of transmit
//! queues those actions output to, and the re-entry queue that
//! recirculated and re-injected packets wait in for their next pass.

use crossbeam_channel::Sender;
use flows::parse::{Layout, extract_into, extract_with_layout};
use flows::{DpAction, DpPortNo, FlowKey};
use rustc_hash::FxHashMap;

use super::handler::UpcallMsg;
use super::metering::PASS;
use crate::framebuf::apply;
use crate::meter::Meters;
use crate::offload::Segmenter;
use crate::packet::{BATCH_SIZE, Offload, Packet, PacketBatch};
use crate::port::TxQueue;
use crate::tunnel::{self, HeaderTable, TnlCounters};

/// Packets waiting for another pass through the datapath, with the
/// metadata each re-enters with. Slots are allocated once; queueing copies
/// the frame into one.
pub(crate) struct ReentryBuf {
    pub batch: PacketBatch,
    /// Metadata of packet `i`: `in_port`, `pkt_mark`, `recirc_id` and the
    /// extension words ([`FlowKey::carry_metadata`]). When `parsed[i]` is
    /// set, the header fields are the frame's too: the whole key of its
    /// next pass.
    pub metas: Box<[FlowKey; BATCH_SIZE]>,
    /// The layout of packet `i` when `metas[i]` is its already parsed key
    /// (a recirculation of a frame no action changed since its pass's
    /// parse); `None`: the next pass parses the frame.
    pub parsed: [Option<Layout>; BATCH_SIZE],
}

impl ReentryBuf {
    pub fn new() -> Box<ReentryBuf> {
        Box::new(ReentryBuf {
            batch: PacketBatch::new(),
            metas: Box::new([FlowKey::default(); BATCH_SIZE]),
            parsed: [None; BATCH_SIZE],
        })
    }

    /// Hands the queued keys to `keys` (a PMD's batch of keys, whose old
    /// contents come here to be overwritten by the next packets queued):
    /// the keys of a carried parse are then in place, without a copy.
    /// [`ReentryBuf::next_pass_key`] completes each.
    #[inline]
    pub fn swap_keys(&mut self, keys: &mut Box<[FlowKey; BATCH_SIZE]>) {
        std::mem::swap(&mut self.metas, keys);
    }

    /// Completes the key packet `j` re-enters with, in `key`: its queued
    /// metadata (moved there by [`ReentryBuf::swap_keys`]), and its header
    /// fields, carried as they are when its frame was not changed since it
    /// was last parsed, else parsed again into `scratch` and taken from
    /// there. `layout` gets the frame's layout. False when the frame does
    /// not parse.
    #[inline]
    pub fn next_pass_key(
        &self,
        j: usize,
        key: &mut FlowKey,
        layout: &mut Layout,
        scratch: &mut FlowKey,
    ) -> bool {
        let frame = self.batch.packets()[j].data();
        if let Some(l) = self.parsed[j] {
            *layout = l;
            debug_assert!(
                is_parse_of(frame, key, layout),
                "a carried key differs from its frame's parse: {key:?}"
            );
            return true;
        }
        match extract_with_layout(frame, key.in_port, scratch, layout) {
            Ok(()) => {
                key.take_headers(scratch);
                true
            }
            Err(_) => false,
        }
    }
}

/// Whether `key` and `layout` are what parsing `frame` on `key.in_port`
/// gives, with `key`'s metadata ([`FlowKey::carry_metadata`]): the
/// invariant of a key carried instead of parsed again (checked in debug
/// builds).
pub(crate) fn is_parse_of(frame: &[u8], key: &FlowKey, layout: &Layout) -> bool {
    let mut fresh = FlowKey::default();
    match extract_into(frame, key.in_port, &mut fresh) {
        Ok(l) => {
            fresh.carry_metadata(key);
            fresh.words() == key.words() && l == *layout
        }
        Err(_) => false,
    }
}

/// The one mechanism behind recirculation ([`DpAction::Recirc`]) and
/// re-injection ("continue as if received on port P", e.g. after tunnel
/// decapsulation): a packet and the metadata of its next pass are queued
/// here, and the PMD runs the queue as a follow-up batch through the EMC,
/// the megaflows and the slow path once the current batch is done.
pub(crate) struct Reentry {
    pub buf: Box<ReentryBuf>,
    /// Packets dropped for exceeding [`flows::dpaction::MAX_RECIRC_DEPTH`]
    /// or finding the queue full.
    pub drops: u64,
}

impl Default for Reentry {
    fn default() -> Self {
        Reentry {
            buf: ReentryBuf::new(),
            drops: 0,
        }
    }
}

impl Reentry {
    /// Queues a copy of `pkt` to re-enter the datapath with `meta`'s
    /// metadata (`meta.in_port` is the port it re-enters on, `meta.recirc_id`
    /// its recirculation id). Returns false (and counts a drop) when the
    /// packet has re-entered too often or the queue is full.
    #[inline]
    pub fn push(&mut self, pkt: &Packet, meta: &FlowKey) -> bool {
        let Some(i) = self.slot(pkt, meta.in_port) else {
            return false;
        };
        self.buf.metas[i] = *meta;
        self.buf.parsed[i] = None;
        self.buf.batch.commit();
        true
    }

    /// Queues a copy of `pkt` to recirculate with `key`'s metadata and
    /// recirculation id `id`. `parsed` is the layout of the frame when
    /// `key` is its parse (no action changed it since): the next pass then
    /// takes `key` as it is instead of parsing the frame again.
    #[inline]
    pub fn recirc(
        &mut self,
        pkt: &Packet,
        key: &FlowKey,
        id: u32,
        parsed: Option<&Layout>,
    ) -> bool {
        let Some(i) = self.slot(pkt, key.in_port) else {
            return false;
        };
        let meta = &mut self.buf.metas[i];
        *meta = *key;
        meta.recirc_id = id;
        self.buf.parsed[i] = parsed.copied();
        self.buf.batch.commit();
        true
    }

    /// Copies `pkt` into the next free slot (to re-enter on `in_port`) and
    /// returns its index, to be committed once its metadata is written;
    /// `None` (a drop counted) past the depth limit or when full.
    #[inline]
    fn slot(&mut self, pkt: &Packet, in_port: u32) -> Option<usize> {
        if pkt.recirc_depth >= flows::dpaction::MAX_RECIRC_DEPTH {
            self.drops += 1;
            return None;
        }
        let i = self.buf.batch.len();
        let Some(slot) = self.buf.batch.next_slot() else {
            self.drops += 1;
            return None;
        };
        slot.copy_from(pkt.data());
        slot.offload = pkt.offload;
        slot.in_port = in_port;
        slot.recirc_depth = pkt.recirc_depth + 1;
        Some(i)
    }

    /// True when no packet waits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.buf.batch.is_empty()
    }

    /// True when no more packets fit.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.buf.batch.free() == 0
    }
}

/// The transmit queues of one PMD, and which of them hold unflushed frames.
#[derive(Default)]
pub(crate) struct TxSet {
    txqs: FxHashMap<DpPortNo, Box<dyn TxQueue>>,
    touched: Vec<DpPortNo>,
    pub errors: u64,
    /// Egress policers (QoS `egress-policer`): datapath meter per port.
    pub egress: FxHashMap<DpPortNo, u32>,
    /// The meters the policers live in, and the batch's clock for them.
    pub meters: Option<std::sync::Arc<Meters>>,
    pub now_ns: u64,
    /// Where sampled packets go (`DpAction::Sample`), and the PMD's
    /// generator deciding which are sampled.
    pub samples: Option<crossbeam_channel::Sender<super::Sampled>>,
    pub rng: super::draw::Draw,
    /// Samples dropped because the queue was full.
    pub samples_lost: u64,
    /// Packets recirculated or re-injected by the actions run so far.
    pub reentry: Reentry,
    /// Native tunnelling: the outer headers `tnl_push` names, the receive
    /// drop counters of `tnl_pop`, and the scratch space to segment a
    /// super-frame before encapsulation (allocated once).
    pub tnl: Option<TnlExec>,
    /// Packets `tnl_push` could not encapsulate.
    pub tnl_push_errors: u64,
    /// The connection tracker `DpAction::Ct` runs packets through, and its
    /// clock for the current batch.
    pub ct: Option<std::sync::Arc<crate::ct::DpConntrack>>,
    pub ct_now_ms: u64,
}

/// What the tunnel actions need on a PMD.
pub(crate) struct TnlExec {
    pub headers: std::sync::Arc<HeaderTable>,
    pub counters: std::sync::Arc<TnlCounters>,
    seg: Segmenter,
    scratch: Box<Packet>,
}

impl TnlExec {
    pub fn new(
        headers: std::sync::Arc<HeaderTable>,
        counters: std::sync::Arc<TnlCounters>,
    ) -> TnlExec {
        TnlExec {
            headers,
            counters,
            seg: Segmenter::new(),
            scratch: Box::new(Packet::new()),
        }
    }
}

impl TxSet {
    /// An empty set whose egress policers use `meters` and whose tunnel
    /// actions use `tnl`.
    pub fn with_tunnels(meters: std::sync::Arc<Meters>, tnl: TnlExec) -> TxSet {
        TxSet {
            meters: Some(meters),
            tnl: Some(tnl),
            ..TxSet::default()
        }
    }

    /// Sends sampled packets to `q`, deciding with a generator seeded
    /// with `seed`.
    #[cfg(test)]
    pub fn with_samples(self, q: crossbeam_channel::Sender<super::Sampled>, seed: u64) -> TxSet {
        TxSet {
            samples: Some(q),
            ..self.with_sample_seed(seed)
        }
    }

    /// Decides which packets are sampled with a generator seeded with
    /// `seed`; the queue comes later (`PmdCmd::SetSamples`).
    pub fn with_sample_seed(self, seed: u64) -> TxSet {
        TxSet {
            rng: super::draw::Draw::new(seed),
            ..self
        }
    }

    pub fn insert(&mut self, no: DpPortNo, txq: Box<dyn TxQueue>) {
        self.txqs.insert(no, txq);
    }

    pub fn remove(&mut self, no: DpPortNo) {
        if let Some(mut q) = self.txqs.remove(&no) {
            let _ = q.flush();
        }
        self.touched.retain(|n| *n != no);
    }

    /// Queues a copy of `pkt` on port `no` (dropped when there is no such port).
    #[inline]
    pub fn output(&mut self, no: DpPortNo, pkt: &mut Packet) {
        let Some(q) = self.txqs.get_mut(&no) else {
            return;
        };
        if !self.egress.is_empty()
            && let (Some(id), Some(m)) = (self.egress.get(&no), &self.meters)
            && !m.admit_one(*id, self.now_ns, pkt.len() as u32)
        {
            return;
        }
        if let Err(e) = q.send(pkt) {
            self.errors += 1;
            tracing::debug!("output to dp port {no}: {e}");
        }
        if !self.touched.contains(&no) {
            self.touched.push(no);
        }
    }

    /// Samples one packet with probability `probability / u32::MAX`
    /// (xorshift64*, no allocation, no lock: a full queue drops the sample).
    #[inline]
    pub fn sample(&mut self, action: &DpAction, key: &FlowKey, len: usize) {
        let DpAction::Sample {
            probability,
            exporter,
            obs_domain,
            obs_point,
            flow_sample,
        } = *action
        else {
            return;
        };
        if probability != u32::MAX && self.rng.next_u32() >= probability {
            return;
        }
        if let Some(q) = &self.samples
            && q.try_send(super::Sampled {
                exporter,
                obs_domain,
                obs_point,
                flow_sample,
                key: *key,
                len: len as u32,
            })
            .is_err()
        {
            self.samples_lost += 1;
        }
    }

    /// `tnl_push`: sends a copy of `pkt` with outer header `header` on
    /// `out`, leaving `pkt` as it was. A segmentation offload super-frame
    /// is cut into segments first, each encapsulated on its own.
    #[inline]
    pub fn tnl_push(&mut self, header: u32, out: DpPortNo, pkt: &mut Packet, hash: u32) {
        let Some(mut t) = self.tnl.take() else {
            self.tnl_push_errors += 1;
            return;
        };
        match t.headers.get(header) {
            None => self.tnl_push_errors += 1,
            Some(hdr) if pkt.offload.gso_type & !Offload::GSO_ECN != Offload::GSO_NONE => {
                let o = pkt.offload;
                let n = match o.gso_type & !Offload::GSO_ECN {
                    Offload::GSO_UDP_L4 => t.seg.segment_udp(pkt.data(), &o),
                    _ => t.seg.segment_tcp(pkt.data(), &o),
                };
                match n {
                    Ok(_) => {
                        for seg in t.seg.segments() {
                            let s = &mut *t.scratch;
                            s.rx_buffer()[..seg.len()].copy_from_slice(seg);
                            s.set_len(seg.len());
                            s.in_port = pkt.in_port;
                            match tunnel::push(s, hdr, hash) {
                                Ok(()) => self.output(out, s),
                                Err(_) => self.tnl_push_errors += 1,
                            }
                        }
                    }
                    Err(_) => self.tnl_push_errors += 1,
                }
            }
            Some(hdr) => {
                let o = pkt.offload;
                match tunnel::push(pkt, hdr, hash) {
                    Ok(()) => {
                        let completed = o.flags & Offload::F_NEEDS_CSUM != 0
                            && pkt.offload.flags & Offload::F_NEEDS_CSUM == 0;
                        self.output(out, pkt);
                        pkt.pull_front(hdr.len());
                        pkt.offload = if completed { Offload::default() } else { o };
                    }
                    Err(_) => self.tnl_push_errors += 1,
                }
            }
        }
        self.tnl = Some(t);
    }

    /// Flushes every queue written since the last flush.
    pub fn flush(&mut self) {
        if self.tnl_push_errors > 0
            && let Some(t) = &self.tnl
        {
            t.counters.push_errors.fetch_add(
                std::mem::take(&mut self.tnl_push_errors),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        for no in self.touched.drain(..) {
            if let Some(q) = self.txqs.get_mut(&no)
                && let Err(e) = q.flush()
            {
                self.errors += 1;
                tracing::debug!("flush of dp port {no}: {e}");
            }
        }
    }
}

/// The inner flow's hash that picks a tunnel's outer source port. Kept out
/// of line: inlined, the compiler hoists this hash of the whole key out of
/// [`execute`]'s action loop and computes it for every packet, tunnelled or
/// not (a tenth of `execute`'s cycles in the vhost-user loop).
#[inline(never)]
fn tnl_flow_hash(key: &FlowKey) -> u32 {
    let h = flows::hash::hash_key(key);
    (h ^ (h >> 32)) as u32
}

/// Runs `actions` in order on `pkt`, stopping at the meter action numbered
/// `fate` (the packet's verdict from `metering::meter_batch`; `PASS`: none).
/// `parsed` is the frame's layout when `key` is the parse of `pkt` as it is
/// (the pass's parse): while no action changes the frame, the `ct` action
/// and a recirculation use `key` and `parsed` instead of parsing it again.
/// Returns the number of userspace copies that could not be queued.
#[inline]
pub(crate) fn execute(
    actions: &[DpAction],
    pkt: &mut Packet,
    key: &FlowKey,
    parsed: Option<&Layout>,
    tx: &mut TxSet,
    upcalls: &Sender<UpcallMsg>,
    fate: u8,
) -> u64 {
    let mut lost = 0;
    let mut meter_no = 0u8;
    // The packet's metadata once an action changed it (conntrack); a
    // recirculation carries it into the next pass.
    let mut own: Option<FlowKey> = None;
    // The layout of the frame while `key` (and `own`) is still its parse:
    // any action that may change the frame clears it. Only what surely
    // leaves the frame alone keeps it (output, meter, sample, userspace,
    // recirculation, ct_clear, and a `ct` without NAT).
    let mut parsed = parsed;
    let mut i = 0;
    while i < actions.len() {
        let a = &actions[i];
        i += 1;
        match a {
            DpAction::Meter(_) => {
                if fate != PASS && meter_no == fate {
                    return lost;
                }
                meter_no = meter_no.saturating_add(1);
            }
            DpAction::CheckPktLen { size, .. } => {
                // The two branches follow; execution resumes after both.
                // Meters are numbered in the flat list, branches included.
                let (gt, le) = flows::dpaction::check_pkt_len_branches(actions, i - 1);
                let (branch, before) = if pkt.data().len() > usize::from(*size) {
                    (gt, 0)
                } else {
                    (le, count_meters(gt))
                };
                let first = meter_no.saturating_add(before);
                let branch_fate = match fate {
                    PASS => PASS,
                    f if f >= first => f - first,
                    // The packet's meter lies in the branch not taken.
                    _ => PASS,
                };
                let cur = own.as_ref().unwrap_or(key);
                lost += execute(branch, pkt, cur, parsed, tx, upcalls, branch_fate);
                // The branch may have changed the frame.
                parsed = None;
                if branch_fate != PASS && branch_fate < count_meters(branch) {
                    return lost;
                }
                meter_no = first.saturating_add(count_meters(branch));
                if before == 0 {
                    meter_no = meter_no.saturating_add(count_meters(le));
                }
                i += gt.len() + le.len();
            }
            DpAction::Output(no) => tx.output(*no, pkt),
            DpAction::Sample { .. } => tx.sample(a, key, pkt.len()),
            DpAction::TnlPush { header, out, .. } => {
                tx.tnl_push(*header, *out, pkt, tnl_flow_hash(key));
                // The frame is restored, but its offload state may not be.
                parsed = None;
            }
            DpAction::TnlPop {
                port,
                proto,
                dst_port,
                tlv,
            } => {
                if let Some(t) = &tx.tnl {
                    let reentry = &mut tx.reentry;
                    let map = t.headers.tlv(*tlv);
                    tunnel::pop_then(
                        pkt,
                        *port,
                        *proto,
                        *dst_port,
                        map,
                        &t.counters.decap,
                        |p, m| {
                            reentry.push(p, m);
                        },
                    );
                }
                parsed = None;
            }
            DpAction::Recirc(id) => {
                let meta = own.as_ref().unwrap_or(key);
                tx.reentry.recirc(pkt, meta, *id, parsed);
            }
            DpAction::Ct(id) => {
                let meta = own.get_or_insert(*key);
                let outcome = match &tx.ct {
                    Some(ct) => {
                        let o = ct.execute(*id, pkt, meta, parsed, tx.ct_now_ms);
                        if ct.rewrites(*id) {
                            parsed = None;
                        }
                        o
                    }
                    None => {
                        meta.clear_ct();
                        continue;
                    }
                };
                match outcome {
                    crate::ct::CtOutcome::Done => {}
                    // A fragment waiting for the rest of its datagram.
                    crate::ct::CtOutcome::Held => return lost,
                    crate::ct::CtOutcome::Fragments(frags) => {
                        // The datagram's fragments go on in its place, each
                        // with the datagram's conntrack result.
                        let meta = *meta;
                        let rest = &actions[i..];
                        let mut p = Packet::new();
                        for f in &frags {
                            let buf = p.rx_buffer();
                            let n = f.len().min(buf.len());
                            buf[..n].copy_from_slice(&f[..n]);
                            p.set_len(n);
                            p.in_port = pkt.in_port;
                            p.recirc_depth = pkt.recirc_depth;
                            lost += execute(rest, &mut p, &meta, None, tx, upcalls, PASS);
                        }
                        return lost;
                    }
                }
            }
            DpAction::CtClear => own.get_or_insert(*key).clear_ct(),
            DpAction::Userspace { .. } => {
                let mut copy = Packet::from_bytes(pkt.data());
                copy.offload = pkt.offload;
                copy.in_port = pkt.in_port;
                let msg = UpcallMsg::Userspace {
                    action: *a,
                    key: *own.as_ref().unwrap_or(key),
                    packet: copy,
                };
                if upcalls.try_send(msg).is_err() {
                    lost += 1;
                }
            }
            other => {
                parsed = None;
                let partial = pkt.offload.flags & Offload::F_NEEDS_CSUM != 0;
                if let Err(e) = apply(pkt, other, partial) {
                    tracing::debug!("action {other:?} not applied: {e}");
                }
            }
        }
    }
    lost
}

/// Meter actions in `actions` (nested branches included).
fn count_meters(actions: &[DpAction]) -> u8 {
    let n = actions
        .iter()
        .filter(|a| matches!(a, DpAction::Meter(_)))
        .count();
    u8::try_from(n).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod sample_tests {
    use super::*;

    fn set(cap: usize) -> (TxSet, crossbeam_channel::Receiver<super::super::Sampled>) {
        let (tx, rx) = crossbeam_channel::bounded(cap);
        (TxSet::default().with_samples(tx, 0x1234_5678_9abc_def0), rx)
    }

    fn act(probability: u32, exporter: u32) -> DpAction {
        DpAction::Sample {
            probability,
            exporter,
            obs_domain: 0,
            obs_point: 0,
            flow_sample: false,
        }
    }

    #[test]
    fn probability_max_samples_every_packet_with_its_key_and_length() {
        let (mut t, rx) = set(100);
        let key = FlowKey {
            in_port: 7,
            ..FlowKey::default()
        };
        for _ in 0..50 {
            t.sample(&act(u32::MAX, 3), &key, 98);
        }
        let got: Vec<_> = rx.try_iter().collect();
        assert_eq!(got.len(), 50);
        assert!(
            got.iter()
                .all(|s| s.exporter == 3 && s.len == 98 && s.key.in_port == 7)
        );
    }

    #[test]
    fn probability_zero_samples_nothing_and_a_quarter_samples_about_a_quarter() {
        let (mut t, rx) = set(100_000);
        let key = FlowKey::default();
        for _ in 0..40_000 {
            t.sample(&act(0, 1), &key, 60);
        }
        assert_eq!(rx.try_iter().count(), 0);
        for _ in 0..40_000 {
            t.sample(&act(u32::MAX / 4, 1), &key, 60);
        }
        let n = rx.try_iter().count();
        assert!((9_000..11_000).contains(&n), "{n} of 40000 sampled at 25%");
    }

    #[test]
    fn a_full_sample_queue_drops_and_counts_instead_of_blocking() {
        let (mut t, rx) = set(4);
        for _ in 0..10 {
            t.sample(&act(u32::MAX, 1), &FlowKey::default(), 60);
        }
        assert_eq!(rx.try_iter().count(), 4);
        assert_eq!(t.samples_lost, 6);
    }
}

#[cfg(test)]
mod parse_once_tests {
    //! A frame is parsed once per pass while no action changes it: the
    //! `ct` action and a recirculation take the pass's key and layout.
    //! Every action that may change the frame makes both parse again.
    use std::sync::Arc;

    use flows::key::ct_state;
    use flows::parse::extract;

    use super::*;
    use crate::ct::DpConntrack;
    use crate::offload::testframes::udp4;

    /// The id `d` gives the `ct` action `text` (whose zone is `zone`).
    fn ct_id(d: &DpConntrack, text: &str, zone: u16) -> u32 {
        d.intern(&crate::ct::ct_of(text), zone).unwrap()
    }

    /// Runs `actions` on `frame` received on port 1, with its parse as
    /// the pass's key; returns the transmit set holding what recirculated.
    fn run(d: &Arc<DpConntrack>, frame: &[u8], actions: &[DpAction]) -> TxSet {
        let mut tx = TxSet {
            ct: Some(d.clone()),
            ..TxSet::default()
        };
        let (upcalls, _rx) = crossbeam_channel::bounded(1);
        let mut pkt = Packet::from_bytes(frame);
        pkt.in_port = 1;
        let (key, layout) = extract(frame, 1).unwrap();
        execute(
            actions,
            &mut pkt,
            &key,
            Some(&layout),
            &mut tx,
            &upcalls,
            PASS,
        );
        tx
    }

    /// The key packet `j` of the re-entry queue takes its next pass with.
    fn next_key(tx: &TxSet, j: usize) -> FlowKey {
        let (mut k, mut l) = (tx.reentry.buf.metas[j], Layout::default());
        assert!(
            tx.reentry
                .buf
                .next_pass_key(j, &mut k, &mut l, &mut FlowKey::default())
        );
        k
    }

    #[test]
    fn an_unchanged_frame_recirculates_with_its_key_and_layout_carried() {
        let d = Arc::new(DpConntrack::default());
        let frame = udp4(&[1; 18], 1);
        let tx = run(
            &d,
            &frame,
            &[
                DpAction::Ct(ct_id(&d, "ct(commit)", 0)),
                DpAction::Recirc(7),
            ],
        );
        let (want, layout) = extract(&frame, 1).unwrap();
        assert_eq!(
            tx.reentry.buf.parsed[0],
            Some(layout),
            "carried, not parsed again"
        );
        let k = next_key(&tx, 0);
        assert_eq!(
            (k.recirc_id, k.ct_state),
            (7, ct_state::TRK | ct_state::NEW)
        );
        assert_eq!((k.nw_src, k.tp_dst), (want.nw_src, want.tp_dst));
        assert!(is_parse_of(&frame, &k, &layout));
    }

    #[test]
    fn a_header_rewrite_before_ct_is_tracked_from_the_rewritten_frame_and_parsed_again() {
        let d = Arc::new(DpConntrack::default());
        let frame = udp4(&[1; 18], 1);
        let moved = u32::from_be_bytes([10, 9, 9, 9]);
        let tx = run(
            &d,
            &frame,
            &[
                DpAction::SetIpv4Src(moved),
                DpAction::Ct(ct_id(&d, "ct(commit)", 0)),
                DpAction::Recirc(3),
            ],
        );
        assert_eq!(
            tx.reentry.buf.parsed[0], None,
            "the frame changed: parse again"
        );
        let k = next_key(&tx, 0);
        assert_eq!(k.nw_src, moved, "the next pass sees the rewrite");
        assert_eq!(k.ct_nw_src, moved, "the tracker saw the rewritten frame");
        // A tag pushed before ct moves the IP header: tracked all the same.
        let tx = run(
            &d,
            &udp4(&[2; 18], 2),
            &[
                DpAction::PushVlan {
                    tpid: 0x8100,
                    tci: 0x1005,
                },
                DpAction::Ct(ct_id(&d, "ct(commit)", 0)),
                DpAction::Recirc(3),
            ],
        );
        assert_eq!(tx.reentry.buf.parsed[0], None);
        let k = next_key(&tx, 0);
        assert_eq!(k.vlan_tci & 0x0fff, 5);
        assert_eq!(k.ct_state, ct_state::TRK | ct_state::NEW);
        assert_eq!((k.ct_nw_proto, k.ct_tp_dst), (17, k.tp_dst));
    }

    #[test]
    fn nat_by_ct_before_recirculation_makes_the_next_pass_parse_the_translated_frame() {
        let d = Arc::new(DpConntrack::default());
        let frame = udp4(&[1; 18], 1);
        let tx = run(
            &d,
            &frame,
            &[
                DpAction::Ct(ct_id(&d, "ct(commit,nat(src=10.0.0.100))", 0)),
                DpAction::Recirc(2),
            ],
        );
        assert_eq!(tx.reentry.buf.parsed[0], None, "NAT changed the frame");
        let k = next_key(&tx, 0);
        assert_eq!(k.nw_src, u32::from_be_bytes([10, 0, 0, 100]));
        assert_ne!(k.ct_state & ct_state::SNAT, 0);
        assert_eq!(
            k.ct_nw_src,
            u32::from_be_bytes([10, 0, 0, 1]),
            "original tuple"
        );
    }

    #[test]
    fn nat_by_a_first_ct_makes_a_second_ct_parse_the_translated_frame() {
        let d = Arc::new(DpConntrack::default());
        let frame = udp4(&[1; 18], 1);
        // The second ct (zone 5) must see the translated source.
        let second = ct_id(&d, "ct(commit,zone=5)", 5);
        let tx = run(
            &d,
            &frame,
            &[
                DpAction::Ct(ct_id(&d, "ct(commit,nat(src=10.0.0.100))", 0)),
                DpAction::Ct(second),
                DpAction::Recirc(2),
            ],
        );
        let k = next_key(&tx, 0);
        assert_eq!(k.ct_zone, 5);
        assert_eq!(
            k.ct_nw_src,
            u32::from_be_bytes([10, 0, 0, 100]),
            "zone 5 tracked the translated frame"
        );
        let z5 = d.tracker().dump(Some(5));
        assert_eq!(z5.len(), 1);
    }
}
