//! IPFIX export of sampled packets (RFC 7011), for bridge-wide sampling as
//! Open vSwitch configures it: an `IPFIX` row referenced from
//! `Bridge.ipfix` with `targets`, `sampling` (one packet in N, default
//! 400), `obs_domain_id`, `obs_point_id`, `cache_active_timeout` and
//! `cache_max_flows`.
//!
//! The fast path samples: while a bridge exports, the slow path puts a
//! `DpAction::Sample` (probability `u32::MAX / sampling`) first in every
//! datapath flow of the bridge, so the packets are sampled as they enter,
//! before any rewrite. The datapath queues a sampled packet's key and
//! length on a bounded queue (no allocation, a full queue drops the
//! sample); the `ipfix` thread here drains it, aggregates the samples into
//! flow records (by input port and IPv4 5-tuple plus TOS, or by Ethernet
//! addresses and type for other packets) and sends them with their
//! templates over UDP to every target:
//!
//! - a record is sent `cache_active_timeout` seconds after its first
//!   packet; 0 (the default) means no caching: what was sampled is sent at
//!   the next export pass, within [`EXPORT_PASS`];
//! - `cache_max_flows` (0 = no limit) bounds the cache: when full,
//!   everything in it is sent.
//!
//! Records carry packetDeltaCount, layer2OctetDeltaCount (whole frames)
//! and, for IPv4, octetDeltaCount (IP packets, as OVS counts them), the
//! OpenFlow input port as ingressInterface and `obs_point_id` as
//! observationPointId; the message header carries `obs_domain_id` and the
//! sequence number (data records sent before this message). For ICMP the
//! destination port is `type << 8 | code`.
//!
//! Per-flow sampling, as in OVS: a `Flow_Sample_Collector_Set` row (`id`,
//! `bridge`, `ipfix`) names an exporter, and the OpenFlow action
//! `sample(probability=N,collector_set_id=ID,obs_domain_id=D,obs_point_id=P)`
//! translates to a `DpAction::Sample` with N/65535 of the packets, whose
//! samples go to the bridge's collector set `ID` with observation domain
//! `D` and point `P` (the IPFIX row gives targets and cache settings only).

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use datapath::Sampled;
use flows::{DpAction, DpPortNo, FlowKey, PortNo};
use ovsdb::{Data, Row};
use tracing::{info, warn};
use uuid::Uuid;

use crate::netflow::{int, parse_target};
use crate::ofproto::Ofproto;
use crate::switch::Switch;

/// How often the exporter thread looks for records to send.
pub const EXPORT_PASS: Duration = Duration::from_millis(200);
/// `sampling` when the row has none (OVS's default).
pub const DEFAULT_SAMPLING: u32 = 400;
/// Largest IPFIX message sent (fits an Ethernet MTU with IP/UDP headers).
pub const MAX_MESSAGE: usize = 1400;

const TEMPLATE_IPV4: u16 = 256;
const TEMPLATE_L2: u16 = 257;

/// (information element id, length) of the IPv4 template.
const IPV4_FIELDS: [(u16, u16); 13] = [
    (8, 4),   // sourceIPv4Address
    (12, 4),  // destinationIPv4Address
    (4, 1),   // protocolIdentifier
    (5, 1),   // ipClassOfService
    (7, 2),   // sourceTransportPort
    (11, 2),  // destinationTransportPort
    (10, 4),  // ingressInterface
    (138, 4), // observationPointId
    (152, 8), // flowStartMilliseconds
    (153, 8), // flowEndMilliseconds
    (2, 8),   // packetDeltaCount
    (1, 8),   // octetDeltaCount
    (352, 8), // layer2OctetDeltaCount
];

/// (information element id, length) of the template for other packets.
const L2_FIELDS: [(u16, u16); 9] = [
    (56, 6),  // sourceMacAddress
    (80, 6),  // destinationMacAddress
    (256, 2), // ethernetType
    (10, 4),  // ingressInterface
    (138, 4), // observationPointId
    (152, 8), // flowStartMilliseconds
    (153, 8), // flowEndMilliseconds
    (2, 8),   // packetDeltaCount
    (352, 8), // layer2OctetDeltaCount
];

fn record_len(fields: &[(u16, u16)]) -> usize {
    fields.iter().map(|(_, l)| usize::from(*l)).sum()
}

// ----- Configuration -----

/// An `IPFIX` row used for bridge-wide sampling, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpfixConfig {
    pub uuid: Uuid,
    pub targets: Vec<SocketAddr>,
    /// One packet in `sampling`.
    pub sampling: u32,
    pub obs_domain_id: u32,
    pub obs_point_id: u32,
    /// Milliseconds; 0 = no caching.
    pub cache_active_timeout_ms: u64,
    /// 0 = no limit.
    pub cache_max_flows: usize,
}

impl IpfixConfig {
    /// The datapath action that samples for this configuration.
    pub fn probability(&self) -> u32 {
        u32::MAX / self.sampling.max(1)
    }

    /// Reads an `IPFIX` row; bad targets are reported and skipped; with
    /// none left, export stays off (`None`).
    pub fn from_row(uuid: Uuid, row: &Row, problems: &mut Vec<String>) -> Option<IpfixConfig> {
        let mut targets = Vec::new();
        for t in row.get("targets").map(|d| d.strings()).unwrap_or_default() {
            match parse_target(t) {
                Ok(a) => targets.push(a),
                Err(e) => problems.push(format!("IPFIX {e}")),
            }
        }
        if targets.is_empty() {
            problems.push(format!("IPFIX {uuid}: no usable target, IPFIX stays off"));
            return None;
        }
        targets.sort();
        targets.dedup();
        let u32_col = |c: &str| int(row, c).and_then(|v| u32::try_from(v).ok());
        Some(IpfixConfig {
            uuid,
            targets,
            sampling: u32_col("sampling")
                .filter(|s| *s > 0)
                .unwrap_or(DEFAULT_SAMPLING),
            obs_domain_id: u32_col("obs_domain_id").unwrap_or(0),
            obs_point_id: u32_col("obs_point_id").unwrap_or(0),
            cache_active_timeout_ms: u64::from(u32_col("cache_active_timeout").unwrap_or(0)) * 1000,
            cache_max_flows: u32_col("cache_max_flows").unwrap_or(0) as usize,
        })
    }
}

/// The bridge-wide IPFIX configuration of every bridge that has one.
pub fn configs_from_data(data: &Data, problems: &mut Vec<String>) -> BTreeMap<String, IpfixConfig> {
    let mut out = BTreeMap::new();
    for (_, br) in data.table("Bridge").iter() {
        let Some(name) = br.get_str("name") else {
            continue;
        };
        let Some(u) = br.get("ipfix").and_then(|d| d.uuids().first().copied()) else {
            continue;
        };
        let Some(row) = data.row("IPFIX", &u) else {
            continue;
        };
        let mut p = Vec::new();
        if let Some(c) = IpfixConfig::from_row(u, row, &mut p) {
            out.insert(name.to_string(), c);
        }
        problems.extend(p.into_iter().map(|e| format!("bridge {name}: {e}")));
    }
    out
}

/// Which samples an exporter takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `Bridge.ipfix`.
    Bridge,
    /// `Flow_Sample_Collector_Set` with this `id`.
    FlowSet(u32),
}

/// Every exporter the DB asks for: (bridge name, kind) → configuration.
pub fn all_configs(
    data: &Data,
    problems: &mut Vec<String>,
) -> BTreeMap<(String, Kind), IpfixConfig> {
    let mut out: BTreeMap<(String, Kind), IpfixConfig> = configs_from_data(data, problems)
        .into_iter()
        .map(|(b, c)| ((b, Kind::Bridge), c))
        .collect();
    for (u, row) in data.table("Flow_Sample_Collector_Set").iter() {
        let Some(id) = int(row, "id").and_then(|v| u32::try_from(v).ok()) else {
            continue;
        };
        let Some(br) = row
            .get("bridge")
            .and_then(|d| d.uuids().first().copied())
            .and_then(|b| data.row("Bridge", &b))
            .and_then(|b| b.get_str("name").map(str::to_string))
        else {
            continue;
        };
        let Some(ipfix) = row.get("ipfix").and_then(|d| d.uuids().first().copied()) else {
            continue;
        };
        let Some(irow) = data.row("IPFIX", &ipfix) else {
            continue;
        };
        let mut p = Vec::new();
        if let Some(c) = IpfixConfig::from_row(ipfix, irow, &mut p) {
            out.insert((br.clone(), Kind::FlowSet(id)), c);
        }
        problems.extend(
            p.into_iter()
                .map(|e| format!("Flow_Sample_Collector_Set {u} (id {id}): {e}")),
        );
    }
    out
}

// ----- Records and their encoding -----

/// What a record aggregates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowId {
    Ipv4 {
        in_port: u32,
        src: u32,
        dst: u32,
        proto: u8,
        tos: u8,
        sport: u16,
        dport: u16,
    },
    L2 {
        in_port: u32,
        src: [u8; 6],
        dst: [u8; 6],
        eth_type: u16,
    },
}

impl FlowId {
    /// The record a packet with `key` (in_port = OpenFlow port) counts in.
    pub fn of(key: &FlowKey, in_port: PortNo) -> FlowId {
        if key.dl_type == 0x0800 {
            let (sport, dport) = if key.nw_proto == 1 {
                (0, (key.tp_src << 8) | (key.tp_dst & 0xff))
            } else {
                (key.tp_src, key.tp_dst)
            };
            FlowId::Ipv4 {
                in_port,
                src: key.nw_src,
                dst: key.nw_dst,
                proto: key.nw_proto,
                tos: key.nw_tos,
                sport,
                dport,
            }
        } else {
            FlowId::L2 {
                in_port,
                src: key.dl_src,
                dst: key.dl_dst,
                eth_type: key.dl_type,
            }
        }
    }
}

/// Counters of one record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub packets: u64,
    /// IP bytes (IPv4 records only).
    pub octets: u64,
    /// Whole frames.
    pub l2_octets: u64,
    /// Wall clock, milliseconds since the epoch.
    pub start_ms: u64,
    pub end_ms: u64,
}

fn put_template_set(b: &mut Vec<u8>) {
    let start = b.len();
    b.extend_from_slice(&2u16.to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    for (id, fields) in [
        (TEMPLATE_IPV4, &IPV4_FIELDS[..]),
        (TEMPLATE_L2, &L2_FIELDS[..]),
    ] {
        b.extend_from_slice(&id.to_be_bytes());
        b.extend_from_slice(&(fields.len() as u16).to_be_bytes());
        for (ie, len) in fields {
            b.extend_from_slice(&ie.to_be_bytes());
            b.extend_from_slice(&len.to_be_bytes());
        }
    }
    let len = (b.len() - start) as u16;
    b[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_record(b: &mut Vec<u8>, obs_point: u32, id: &FlowId, c: &Counts) {
    match id {
        FlowId::Ipv4 {
            in_port,
            src,
            dst,
            proto,
            tos,
            sport,
            dport,
        } => {
            b.extend_from_slice(&src.to_be_bytes());
            b.extend_from_slice(&dst.to_be_bytes());
            b.push(*proto);
            b.push(*tos);
            b.extend_from_slice(&sport.to_be_bytes());
            b.extend_from_slice(&dport.to_be_bytes());
            b.extend_from_slice(&in_port.to_be_bytes());
            b.extend_from_slice(&obs_point.to_be_bytes());
            for v in [c.start_ms, c.end_ms, c.packets, c.octets, c.l2_octets] {
                b.extend_from_slice(&v.to_be_bytes());
            }
        }
        FlowId::L2 {
            in_port,
            src,
            dst,
            eth_type,
        } => {
            b.extend_from_slice(src);
            b.extend_from_slice(dst);
            b.extend_from_slice(&eth_type.to_be_bytes());
            b.extend_from_slice(&in_port.to_be_bytes());
            b.extend_from_slice(&obs_point.to_be_bytes());
            for v in [c.start_ms, c.end_ms, c.packets, c.l2_octets] {
                b.extend_from_slice(&v.to_be_bytes());
            }
        }
    }
}

/// Encodes `records` (observation point, flow, counters) of one
/// observation domain as IPFIX messages of at most [`MAX_MESSAGE`] bytes,
/// each with the template set first. `seq` counts the data records sent
/// before in the domain (it is advanced).
pub fn encode(
    records: &[(u32, FlowId, Counts)],
    obs_domain: u32,
    export_secs: u32,
    seq: &mut u32,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = records;
    while !rest.is_empty() {
        let mut b = Vec::with_capacity(MAX_MESSAGE);
        b.extend_from_slice(&10u16.to_be_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&export_secs.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&obs_domain.to_be_bytes());
        put_template_set(&mut b);
        let mut n = 0;
        // One data set per run of records of the same template.
        while let Some((pt, id, c)) = rest.first() {
            let (tid, rlen) = match id {
                FlowId::Ipv4 { .. } => (TEMPLATE_IPV4, record_len(&IPV4_FIELDS)),
                FlowId::L2 { .. } => (TEMPLATE_L2, record_len(&L2_FIELDS)),
            };
            if b.len() + 4 + rlen > MAX_MESSAGE && n > 0 {
                break;
            }
            let set_start = b.len();
            b.extend_from_slice(&tid.to_be_bytes());
            b.extend_from_slice(&[0, 0]);
            put_record(&mut b, *pt, id, c);
            n += 1;
            rest = &rest[1..];
            while let Some((pt2, id2, c2)) = rest.first() {
                let same = matches!(
                    (id, id2),
                    (FlowId::Ipv4 { .. }, FlowId::Ipv4 { .. })
                        | (FlowId::L2 { .. }, FlowId::L2 { .. })
                );
                if !same || b.len() + rlen > MAX_MESSAGE {
                    break;
                }
                put_record(&mut b, *pt2, id2, c2);
                n += 1;
                rest = &rest[1..];
            }
            let set_len = (b.len() - set_start) as u16;
            b[set_start + 2..set_start + 4].copy_from_slice(&set_len.to_be_bytes());
        }
        let len = b.len() as u16;
        b[2..4].copy_from_slice(&len.to_be_bytes());
        *seq = seq.wrapping_add(n);
        out.push(b);
    }
    out
}

// ----- The exporter -----

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// The exporter of one bridge.
pub struct Exporter {
    pub cfg: IpfixConfig,
    kind: Kind,
    bridge: Arc<Ofproto>,
    /// Datapath port to OpenFlow port, refreshed every export pass.
    ports: HashMap<DpPortNo, PortNo>,
    /// By observation domain, point and flow.
    cache: HashMap<(u32, u32, FlowId), Counts>,
    /// Data records sent, per observation domain.
    seq: HashMap<u32, u32>,
    socket: Option<UdpSocket>,
    send_errors: u64,
}

impl Exporter {
    fn new(cfg: IpfixConfig, kind: Kind, bridge: Arc<Ofproto>) -> Exporter {
        let socket = UdpSocket::bind(if cfg.targets.iter().all(SocketAddr::is_ipv6) {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        })
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .map_err(|e| warn!("IPFIX: cannot open a UDP socket: {e}"))
        .ok();
        let mut e = Exporter {
            cfg,
            kind,
            bridge,
            ports: HashMap::new(),
            cache: HashMap::new(),
            seq: HashMap::new(),
            socket,
            send_errors: 0,
        };
        e.refresh_ports();
        e
    }

    fn refresh_ports(&mut self) {
        let st = self.bridge.lock();
        self.ports = st.runtime.iter().map(|(of, r)| (r.dp_port, *of)).collect();
    }

    /// Counts one sample.
    fn add(&mut self, s: &Sampled, now_ms: u64) {
        let Some(of) = self.ports.get(&s.key.in_port).copied() else {
            return;
        };
        let id = FlowId::of(&s.key, of);
        let (dom, pt) = match self.kind {
            Kind::Bridge => (self.cfg.obs_domain_id, self.cfg.obs_point_id),
            Kind::FlowSet(_) => (s.obs_domain, s.obs_point),
        };
        if self.cfg.cache_max_flows > 0
            && self.cache.len() >= self.cfg.cache_max_flows
            && !self.cache.contains_key(&(dom, pt, id))
        {
            self.run(now_ms, true);
        }
        let l2 = u64::from(s.len);
        let l2_hdr =
            14 + 4 * u64::from(s.key.vlan_tci != 0) + 4 * u64::from(s.key.vlan_tci_inner != 0);
        let c = self.cache.entry((dom, pt, id)).or_insert(Counts {
            start_ms: now_ms,
            ..Counts::default()
        });
        c.packets += 1;
        c.l2_octets += l2;
        if matches!(id, FlowId::Ipv4 { .. }) {
            c.octets += l2.saturating_sub(l2_hdr);
        }
        c.end_ms = now_ms;
    }

    /// Sends the records due at `now_ms` (all of them when `flush`).
    fn run(&mut self, now_ms: u64, flush: bool) {
        let timeout = self.cfg.cache_active_timeout_ms;
        let mut due: BTreeMap<u32, Vec<(u32, FlowId, Counts)>> = BTreeMap::new();
        self.cache.retain(|(dom, pt, id), c| {
            if flush || now_ms >= c.start_ms.saturating_add(timeout) {
                due.entry(*dom).or_default().push((*pt, *id, *c));
                false
            } else {
                true
            }
        });
        let mut msgs = Vec::new();
        for (dom, mut recs) in due {
            recs.sort_by_key(|(pt, id, c)| (c.start_ms, *pt, *id));
            let seq = self.seq.entry(dom).or_insert(0);
            msgs.extend(encode(&recs, dom, (now_ms / 1000) as u32, seq));
        }
        let Some(sock) = &self.socket else {
            return;
        };
        for m in &msgs {
            for t in &self.cfg.targets {
                if let Err(e) = sock.send_to(m, t) {
                    self.send_errors += 1;
                    if self.send_errors % 1000 == 1 {
                        warn!(
                            "IPFIX: sending to {t} failed: {e} ({} failures)",
                            self.send_errors
                        );
                    }
                }
            }
        }
    }
}

/// The exporters, by exporter id (the `DpAction::Sample` tag).
type Exporters = Arc<Mutex<BTreeMap<u32, Exporter>>>;

fn lock(e: &Exporters) -> std::sync::MutexGuard<'_, BTreeMap<u32, Exporter>> {
    e.lock().unwrap_or_else(|p| p.into_inner())
}

/// Drains the datapath's sample queue into the exporters and sends what
/// is due every [`EXPORT_PASS`].
fn run_thread(rx: crossbeam_channel::Receiver<Sampled>, exporters: Exporters) {
    let mut next = Instant::now() + EXPORT_PASS;
    loop {
        let timeout = next.saturating_duration_since(Instant::now());
        match rx.recv_timeout(timeout) {
            Ok(first) => {
                let now = wall_ms();
                let mut ex = lock(&exporters);
                for s in std::iter::once(first).chain(rx.try_iter().take(4095)) {
                    let e = if s.flow_sample {
                        ex.values_mut().find(|e| {
                            e.kind == Kind::FlowSet(s.exporter)
                                && e.ports.contains_key(&s.key.in_port)
                        })
                    } else {
                        ex.get_mut(&s.exporter)
                    };
                    if let Some(e) = e {
                        e.add(&s, now);
                    }
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
        if Instant::now() >= next {
            next = Instant::now() + EXPORT_PASS;
            let now = wall_ms();
            for e in lock(&exporters).values_mut() {
                e.run(now, false);
                e.refresh_ports();
            }
        }
    }
}

/// Keeps the bridges' IPFIX exporters in step with the DB.
#[derive(Default)]
pub struct IpfixExport {
    exporters: Exporters,
    started: bool,
    last_problems: Vec<String>,
}

impl IpfixExport {
    /// Applies the `IPFIX` rows referenced by bridges (bridge-wide
    /// sampling) and by `Flow_Sample_Collector_Set` rows (per-flow).
    pub fn reconcile(&mut self, sw: &Switch, data: &Data) {
        let mut problems = Vec::new();
        let wanted = all_configs(data, &mut problems);
        if problems != self.last_problems {
            for p in &problems {
                warn!("IPFIX configuration: {p}");
            }
            self.last_problems = problems;
        }
        if !self.started && !wanted.is_empty() {
            let (rx, ex) = (sw.dp.samples(), self.exporters.clone());
            match std::thread::Builder::new()
                .name("ipfix".into())
                .spawn(move || run_thread(rx, ex))
            {
                Ok(_) => self.started = true,
                Err(e) => {
                    warn!("IPFIX: cannot start the exporter thread: {e}");
                    return;
                }
            }
        }
        let bridges = sw.slow.all_bridges();
        let mut changed = false;
        let mut ex = lock(&self.exporters);
        // Exporters no longer wanted (or of bridges that are gone).
        let stale: Vec<u32> = ex
            .iter()
            .filter(|(_, e)| {
                !bridges.iter().any(|b| Arc::ptr_eq(b, &e.bridge))
                    || wanted.get(&(e.bridge.name.clone(), e.kind)) != Some(&e.cfg)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some(mut old) = ex.remove(&id) {
                old.run(wall_ms(), true);
                info!(bridge = %old.bridge.name, "IPFIX off ({:?})", old.kind);
                if old.kind == Kind::Bridge {
                    old.bridge.lock().ipfix_sample = None;
                    changed = true;
                }
            }
        }
        for ((name, kind), cfg) in &wanted {
            let Some(br) = bridges.iter().find(|b| &b.name == name) else {
                continue;
            };
            if ex
                .values()
                .any(|e| Arc::ptr_eq(&e.bridge, br) && e.kind == *kind)
            {
                continue;
            }
            let id = (1..).find(|i| !ex.contains_key(i)).unwrap_or(u32::MAX);
            ex.insert(id, Exporter::new(cfg.clone(), *kind, br.clone()));
            match kind {
                Kind::Bridge => {
                    info!(
                        bridge = %br.name,
                        "IPFIX on: 1 packet in {} to {:?}",
                        cfg.sampling,
                        cfg.targets
                    );
                    br.lock().ipfix_sample = Some(DpAction::Sample {
                        probability: cfg.probability(),
                        exporter: id,
                        obs_domain: cfg.obs_domain_id,
                        obs_point: cfg.obs_point_id,
                        flow_sample: false,
                    });
                    changed = true;
                }
                Kind::FlowSet(set) => info!(
                    bridge = %br.name,
                    "IPFIX on: collector set {set} to {:?}",
                    cfg.targets
                ),
            }
        }
        drop(ex);
        if changed {
            // Every datapath flow of the bridge must (or must no longer)
            // sample.
            sw.revalidate_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn icmp_key() -> FlowKey {
        FlowKey {
            in_port: 1,
            dl_type: 0x0800,
            nw_src: 0x0a00_0001,
            nw_dst: 0x0a00_0002,
            nw_proto: 1,
            nw_tos: 0x10,
            tp_src: 8,
            tp_dst: 0,
            ..FlowKey::default()
        }
    }

    #[test]
    fn ipfix_message_matches_the_hand_checked_layout() {
        let id = FlowId::of(&icmp_key(), 3);
        let c = Counts {
            packets: 7,
            octets: 7 * 228,
            l2_octets: 7 * 242,
            start_ms: 0x0000_0100_0000_0001,
            end_ms: 0x0000_0100_0000_0002,
        };
        let mut seq = 41;
        let msgs = encode(&[(0x0102_0304, id, c)], 0xdead_beef, 0x6000_0000, &mut seq);
        assert_eq!(msgs.len(), 1);
        assert_eq!(seq, 42, "the sequence counts data records");
        let m = &msgs[0];
        #[rustfmt::skip]
        let header = [
            0x00, 0x0a, 0x00, 0x00, // version 10, length (checked below)
            0x60, 0x00, 0x00, 0x00, // export time
            0x00, 0x00, 0x00, 0x29, // sequence 41
            0xde, 0xad, 0xbe, 0xef, // observation domain
        ];
        assert_eq!(&m[..2], &header[..2]);
        assert_eq!(&m[4..16], &header[4..16]);
        assert_eq!(u16::from_be_bytes([m[2], m[3]]) as usize, m.len());
        // Template set: id 2, two templates (13 and 9 fields).
        let tset_len = 4 + (4 + 13 * 4) + (4 + 9 * 4);
        #[rustfmt::skip]
        let tset_head = [
            0x00, 0x02, 0x00, tset_len as u8,
            0x01, 0x00, 0x00, 13, // template 256, 13 fields
            0x00, 8, 0x00, 4,     // sourceIPv4Address
            0x00, 12, 0x00, 4,    // destinationIPv4Address
        ];
        assert_eq!(&m[16..32], &tset_head);
        let d = &m[16 + tset_len..];
        #[rustfmt::skip]
        let data = [
            0x01, 0x00, 0x00, 4 + 62, // data set of template 256, one record
            10, 0, 0, 1,
            10, 0, 0, 2,
            1, 0x10,                  // ICMP, TOS
            0x00, 0x00, 0x08, 0x00,   // src port 0, dst port type 8 code 0
            0, 0, 0, 3,               // ingressInterface
            1, 2, 3, 4,               // observationPointId
            0, 0, 1, 0, 0, 0, 0, 1,   // flowStartMilliseconds
            0, 0, 1, 0, 0, 0, 0, 2,   // flowEndMilliseconds
            0, 0, 0, 0, 0, 0, 0, 7,   // packetDeltaCount
            0, 0, 0, 0, 0, 0, 6, 60,  // octetDeltaCount 1596
            0, 0, 0, 0, 0, 0, 6, 158, // layer2OctetDeltaCount 1694
        ];
        assert_eq!(d, &data);
    }

    #[test]
    fn many_records_split_into_messages_that_fit_and_keep_the_sequence() {
        let recs: Vec<_> = (0..100u16)
            .map(|i| {
                let mut k = icmp_key();
                k.tp_src = i;
                (1, FlowId::of(&k, 1), Counts::default())
            })
            .collect();
        let mut seq = 0;
        let msgs = encode(&recs, 1, 0, &mut seq);
        assert!(msgs.len() > 1);
        assert!(msgs.iter().all(|m| m.len() <= MAX_MESSAGE));
        assert_eq!(seq, 100);
        let seqs: Vec<u32> = msgs
            .iter()
            .map(|m| u32::from_be_bytes(m[8..12].try_into().unwrap()))
            .collect();
        assert_eq!(seqs[0], 0);
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn sampling_one_in_n_is_the_probability_of_the_datapath_action() {
        let mut c = IpfixConfig {
            uuid: Uuid::nil(),
            targets: vec![],
            sampling: 1,
            obs_domain_id: 0,
            obs_point_id: 0,
            cache_active_timeout_ms: 0,
            cache_max_flows: 0,
        };
        assert_eq!(c.probability(), u32::MAX);
        c.sampling = 400;
        assert_eq!(c.probability(), u32::MAX / 400);
    }
}
