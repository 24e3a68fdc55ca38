//! NetFlow v5 export, as Open vSwitch configures it (the `NetFlow` table,
//! referenced from `Bridge.netflow`).
//!
//! Like OVS, the records describe the bridge's traffic per datapath flow:
//! while NetFlow is on, a bridge's megaflows for IPv4 match the NetFlow
//! 5-tuple plus TOS exactly ([`unwildcard`]), so each megaflow feeds one
//! NetFlow flow. The slow path credits the packet it translates, the
//! revalidator credits each megaflow's counter deltas
//! (`SlowPath::sync_stats`), and every second [`NetFlow::run`] turns flows
//! into v5 records:
//!
//! - a flow still carrying traffic is reported every `active_timeout`
//!   seconds (0 = 600, -1 = never) with what it carried since its last
//!   record;
//! - a flow that saw nothing for [`PASSIVE_TIMEOUT_MS`] (the idle time after
//!   which OVS's userspace datapath drops a flow, and with it exports the
//!   NetFlow record) is reported and forgotten.
//!
//! Records go 30 to a datagram (the v5 maximum) over UDP to every target.
//! Sending never blocks: the socket is non-blocking and a lost datagram is
//! lost, as NetFlow over UDP always is.
//!
//! Field values follow OVS: input/output interfaces are OpenFlow port
//! numbers (output 65533 when the flow is dropped, 65534 when it goes to
//! several ports), optionally carrying the engine id in their top 7 bits
//! (`add_id_to_interface`); bytes count whole Ethernet frames; for ICMP the
//! source port is 0 and the destination port is `type << 8 | code`;
//! `sysUptime` and the first/last times are milliseconds since NetFlow was
//! enabled on the bridge; the header's flow sequence counts records sent.
//!
//! Configuration is read here from the DB rows (the reconciler calls
//! [`FlowExport::reconcile`]); a target that does not parse is logged once
//! and skipped, leaving the rest of the configuration alone.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use flows::{DpAction, FlowKey, PortNo};
use ovsdb::{Data, Row};
use tracing::{info, warn};
use uuid::Uuid;

use crate::switch::Switch;

/// NetFlow v5 header length.
pub const V5_HEADER_LEN: usize = 24;
/// NetFlow v5 record length.
pub const V5_RECORD_LEN: usize = 48;
/// Most records in one v5 datagram.
pub const V5_MAX_RECORDS: usize = 30;
/// `active_timeout` 0 means this many seconds (OVS's default).
pub const DEFAULT_ACTIVE_TIMEOUT_S: u64 = 600;
/// A flow idle this long is reported and forgotten.
pub const PASSIVE_TIMEOUT_MS: u64 = 10_000;
/// Output interface of a dropped flow.
pub const OUT_DROP: u16 = 0xfffd;
/// Output interface of a flow sent to several ports.
pub const OUT_MULTI: u16 = 0xfffe;
/// Most flows tracked per bridge; beyond it new flows are not reported.
pub const MAX_FLOWS: usize = 1 << 20;

const ETH_TYPE_IP: u16 = 0x0800;
const IPPROTO_ICMP: u8 = 1;

// ----- Configuration -----

/// A `NetFlow` row, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetFlowConfig {
    pub uuid: Uuid,
    /// Collectors (`targets`, `IP:PORT`, numeric IPv4 or `[IPv6]`).
    pub targets: Vec<SocketAddr>,
    pub engine_type: u8,
    pub engine_id: u8,
    /// Milliseconds; `None` = no active timeout (`active_timeout=-1`).
    pub active_timeout_ms: Option<u64>,
    pub add_id_to_interface: bool,
}

/// Parses one `targets` entry: a numeric IP and a port, both required.
pub fn parse_target(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => (h, p),
        _ => return Err(format!("target \"{s}\" is not IP:PORT")),
    };
    let port: u16 = match port.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => p as u16,
        Ok(p) => return Err(format!("target \"{s}\": port {p} is out of range")),
        Err(_) => return Err(format!("target \"{s}\": \"{port}\" is not a port")),
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: std::net::IpAddr = host
        .parse()
        .map_err(|_| format!("target \"{s}\": \"{host}\" is not a numeric IP address"))?;
    Ok(SocketAddr::new(ip, port))
}

pub(crate) fn int(row: &Row, col: &str) -> Option<i64> {
    row.get(col)?.integers().first().copied()
}

fn boolean(row: &Row, col: &str) -> bool {
    row.get(col)
        .and_then(|d| d.first())
        .is_some_and(|a| matches!(a, ovsdb::Atom::Boolean(true)))
}

/// Open vSwitch's `hash_string(s, 0)` (its 32-bit Murmur3-based
/// `hash_bytes`, words read little-endian as on x86).
fn ovs_hash_string(s: &str) -> u32 {
    fn add(h: u32, d: u32) -> u32 {
        let d = d
            .wrapping_mul(0xcc9e_2d51)
            .rotate_left(15)
            .wrapping_mul(0x1b87_3593);
        (h ^ d)
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64)
    }
    let b = s.as_bytes();
    let mut h = 0u32;
    for c in b.chunks(4) {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        h = add(h, u32::from_le_bytes(w));
    }
    h ^= b.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The engine type and id OVS uses when the row sets none: from the hash
/// of its datapath's name, `ovs-<datapath_type>` (`ovs-netdev` for
/// ferrovs's default type).
pub fn default_engine(datapath_type: &str) -> (u8, u8) {
    let t = match datapath_type {
        "" | "system" => "netdev",
        t => t,
    };
    let h = ovs_hash_string(&format!("ovs-{t}"));
    ((h >> 8) as u8, h as u8)
}

impl NetFlowConfig {
    /// Reads a `NetFlow` row of a bridge of `datapath_type`. Targets that
    /// do not parse are reported in `problems` and skipped; with none left,
    /// NetFlow is off (`None`).
    pub fn from_row(
        uuid: Uuid,
        row: &Row,
        datapath_type: &str,
        problems: &mut Vec<String>,
    ) -> Option<NetFlowConfig> {
        let mut targets = Vec::new();
        for t in row.get("targets").map(|d| d.strings()).unwrap_or_default() {
            match parse_target(t) {
                Ok(a) => targets.push(a),
                Err(e) => problems.push(e),
            }
        }
        if targets.is_empty() {
            problems.push(format!(
                "NetFlow {uuid}: no usable target, NetFlow stays off"
            ));
            return None;
        }
        targets.sort();
        targets.dedup();
        let byte = |c: &str| int(row, c).and_then(|v| u8::try_from(v).ok());
        let (def_type, def_id) = default_engine(datapath_type);
        let active_timeout_ms = match int(row, "active_timeout").unwrap_or(0) {
            t if t < 0 => None,
            0 => Some(DEFAULT_ACTIVE_TIMEOUT_S * 1000),
            t => Some((t as u64).saturating_mul(1000)),
        };
        Some(NetFlowConfig {
            uuid,
            targets,
            engine_type: byte("engine_type").unwrap_or(def_type),
            engine_id: byte("engine_id").unwrap_or(def_id),
            active_timeout_ms,
            add_id_to_interface: boolean(row, "add_id_to_interface"),
        })
    }
}

/// The NetFlow configuration of every bridge that has one, by bridge name.
pub fn configs_from_data(
    data: &Data,
    problems: &mut Vec<String>,
) -> BTreeMap<String, NetFlowConfig> {
    let mut out = BTreeMap::new();
    for (_, br) in data.table("Bridge").iter() {
        let Some(name) = br.get_str("name") else {
            continue;
        };
        let Some(nf) = br.get("netflow").and_then(|d| d.uuids().first().copied()) else {
            continue;
        };
        let Some(row) = data.row("NetFlow", &nf) else {
            continue;
        };
        let mut p = Vec::new();
        let dp_type = br.get_str("datapath_type").unwrap_or_default();
        if let Some(c) = NetFlowConfig::from_row(nf, row, dp_type, &mut p) {
            out.insert(name.to_string(), c);
        }
        problems.extend(p.into_iter().map(|e| format!("bridge {name}: {e}")));
    }
    out
}

// ----- Per-flow state -----

/// What identifies a NetFlow flow (IPv4 only, as in NetFlow v5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NfKey {
    /// OpenFlow input port.
    pub in_port: u16,
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub tos: u8,
    pub tp_src: u16,
    pub tp_dst: u16,
}

impl NfKey {
    /// The key of an IPv4 flow (`key.in_port` the OpenFlow port); `None`
    /// for anything else, which NetFlow v5 does not report.
    pub fn of(key: &FlowKey) -> Option<NfKey> {
        (key.dl_type == ETH_TYPE_IP).then_some(NfKey {
            in_port: key.in_port as u16,
            src: key.nw_src,
            dst: key.nw_dst,
            proto: key.nw_proto,
            tos: key.nw_tos,
            tp_src: key.tp_src,
            tp_dst: key.tp_dst,
        })
    }
}

/// Makes a megaflow mask exact on what a NetFlow flow is keyed by.
pub fn unwildcard(key: &FlowKey, mask: &mut FlowKey) {
    mask.dl_type = u16::MAX;
    if key.dl_type != ETH_TYPE_IP {
        return;
    }
    mask.nw_src = u32::MAX;
    mask.nw_dst = u32::MAX;
    mask.nw_proto = u8::MAX;
    mask.nw_tos = u8::MAX;
    mask.tp_src = u16::MAX;
    mask.tp_dst = u16::MAX;
}

/// The NetFlow output interface of a translation's datapath actions.
pub fn output_iface(
    actions: &[DpAction],
    ofport_of: impl Fn(flows::DpPortNo) -> Option<PortNo>,
) -> u16 {
    let mut out = OUT_DROP;
    for a in actions {
        if let DpAction::Output(dp) = a {
            let p = ofport_of(*dp).map(|p| p as u16).unwrap_or(OUT_MULTI);
            out = if out == OUT_DROP || out == p {
                p
            } else {
                OUT_MULTI
            };
        }
    }
    out
}

/// What a megaflow contributes to NetFlow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NfTag {
    pub key: NfKey,
    pub output: u16,
    pub tcp_flags: u8,
}

#[derive(Clone, Debug)]
struct NfFlow {
    output: u16,
    tcp_flags: u8,
    /// Since the last record.
    packets: u64,
    bytes: u64,
    /// Milliseconds (daemon clock) of the first and last packet since the
    /// last record; `first` is 0 when nothing is pending.
    first_ms: u64,
    last_ms: u64,
    /// When the last record was sent (or the flow was created).
    last_expired_ms: u64,
}

/// One flow record, as it goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V5Record {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub input: u16,
    pub output: u16,
    pub packets: u32,
    pub bytes: u32,
    /// sysUptime at the first and the last packet.
    pub first: u32,
    pub last: u32,
    pub src_port: u16,
    pub dst_port: u16,
    pub tcp_flags: u8,
    pub proto: u8,
    pub tos: u8,
}

/// The v5 header fields that vary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V5Header {
    pub uptime_ms: u32,
    pub unix_secs: u32,
    pub unix_nsecs: u32,
    pub flow_seq: u32,
    pub engine_type: u8,
    pub engine_id: u8,
}

/// Encodes one v5 datagram (at most [`V5_MAX_RECORDS`] records).
pub fn encode_v5(h: &V5Header, records: &[V5Record]) -> Vec<u8> {
    assert!(records.len() <= V5_MAX_RECORDS);
    let mut b = Vec::with_capacity(V5_HEADER_LEN + records.len() * V5_RECORD_LEN);
    b.extend_from_slice(&5u16.to_be_bytes());
    b.extend_from_slice(&(records.len() as u16).to_be_bytes());
    b.extend_from_slice(&h.uptime_ms.to_be_bytes());
    b.extend_from_slice(&h.unix_secs.to_be_bytes());
    b.extend_from_slice(&h.unix_nsecs.to_be_bytes());
    b.extend_from_slice(&h.flow_seq.to_be_bytes());
    b.push(h.engine_type);
    b.push(h.engine_id);
    b.extend_from_slice(&0u16.to_be_bytes()); // sampling interval
    for r in records {
        b.extend_from_slice(&r.src.octets());
        b.extend_from_slice(&r.dst.octets());
        b.extend_from_slice(&[0; 4]); // next hop
        b.extend_from_slice(&r.input.to_be_bytes());
        b.extend_from_slice(&r.output.to_be_bytes());
        b.extend_from_slice(&r.packets.to_be_bytes());
        b.extend_from_slice(&r.bytes.to_be_bytes());
        b.extend_from_slice(&r.first.to_be_bytes());
        b.extend_from_slice(&r.last.to_be_bytes());
        b.extend_from_slice(&r.src_port.to_be_bytes());
        b.extend_from_slice(&r.dst_port.to_be_bytes());
        b.push(0); // pad
        b.push(r.tcp_flags);
        b.push(r.proto);
        b.push(r.tos);
        b.extend_from_slice(&[0; 8]); // src/dst AS, src/dst mask, pad
    }
    b
}

/// A bridge's NetFlow exporter.
pub struct NetFlow {
    pub cfg: NetFlowConfig,
    /// Daemon clock when NetFlow was enabled (sysUptime 0).
    boot_ms: u64,
    flows: HashMap<NfKey, NfFlow>,
    /// Records sent so far (the header's flow sequence).
    seq: u32,
    socket: Option<Arc<UdpSocket>>,
    /// Send errors seen (logged when this goes from 0 to 1, then every 1000).
    send_errors: u64,
}

impl NetFlow {
    pub fn new(cfg: NetFlowConfig, now_ms: u64) -> NetFlow {
        let socket = match UdpSocket::bind(if cfg.targets.iter().all(SocketAddr::is_ipv6) {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        })
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                warn!("NetFlow: cannot open a UDP socket: {e}");
                None
            }
        };
        NetFlow {
            cfg,
            boot_ms: now_ms,
            flows: HashMap::new(),
            seq: 0,
            socket,
            send_errors: 0,
        }
    }

    /// Takes a new configuration, keeping flows, counters and sequence.
    pub fn reconfigure(&mut self, cfg: NetFlowConfig) {
        let ipv6_only = |c: &NetFlowConfig| c.targets.iter().all(SocketAddr::is_ipv6);
        if ipv6_only(&cfg) != ipv6_only(&self.cfg) {
            let fresh = NetFlow::new(cfg.clone(), self.boot_ms);
            self.socket = fresh.socket;
        }
        self.cfg = cfg;
    }

    /// Number of flows tracked.
    #[cfg(test)]
    pub fn n_flows(&self) -> usize {
        self.flows.len()
    }

    /// Counts `packets`/`bytes` for the flow of `tag`, the last of them at
    /// `used_ms`.
    pub fn credit(&mut self, tag: &NfTag, packets: u64, bytes: u64, used_ms: u64, now_ms: u64) {
        if packets == 0 {
            return;
        }
        if !self.flows.contains_key(&tag.key) && self.flows.len() >= MAX_FLOWS {
            return;
        }
        let f = self.flows.entry(tag.key).or_insert_with(|| NfFlow {
            output: tag.output,
            tcp_flags: 0,
            packets: 0,
            bytes: 0,
            first_ms: 0,
            last_ms: 0,
            last_expired_ms: now_ms,
        });
        f.output = tag.output;
        f.tcp_flags |= tag.tcp_flags;
        if f.packets == 0 {
            f.first_ms = used_ms.max(self.boot_ms);
        }
        f.packets += packets;
        f.bytes += bytes;
        f.last_ms = f.last_ms.max(used_ms);
    }

    fn record(&self, k: &NfKey, f: &NfFlow) -> V5Record {
        let iface = |p: u16| {
            if self.cfg.add_id_to_interface {
                (u16::from(self.cfg.engine_id & 0x7f) << 9) | (p & 0x1ff)
            } else {
                p
            }
        };
        let (src_port, dst_port) = if k.proto == IPPROTO_ICMP {
            (0, (k.tp_src << 8) | (k.tp_dst & 0xff))
        } else {
            (k.tp_src, k.tp_dst)
        };
        let up = |ms: u64| ms.saturating_sub(self.boot_ms) as u32;
        V5Record {
            src: Ipv4Addr::from(k.src),
            dst: Ipv4Addr::from(k.dst),
            input: iface(k.in_port),
            output: iface(f.output),
            packets: f.packets.min(u64::from(u32::MAX)) as u32,
            bytes: f.bytes.min(u64::from(u32::MAX)) as u32,
            first: up(f.first_ms),
            last: up(f.last_ms.max(f.first_ms)),
            src_port,
            dst_port,
            tcp_flags: f.tcp_flags,
            proto: k.proto,
            tos: k.tos,
        }
    }

    /// Expires flows at `now_ms` (daemon clock): returns the datagrams to
    /// send (see the module documentation for when a flow is reported).
    /// `flush` reports every flow with pending traffic.
    pub fn run(&mut self, now_ms: u64, flush: bool) -> Vec<Vec<u8>> {
        let active = self.cfg.active_timeout_ms;
        let mut records = Vec::new();
        let mut gone = Vec::new();
        for (k, f) in &self.flows {
            let idle = now_ms.saturating_sub(f.last_ms) >= PASSIVE_TIMEOUT_MS;
            let active_due = active.is_some_and(|t| now_ms >= f.last_expired_ms.saturating_add(t));
            if f.packets > 0 && (idle || active_due || flush) {
                records.push((*k, self.record(k, f)));
            }
            if idle {
                gone.push(*k);
            }
        }
        for (k, _) in &records {
            if let Some(f) = self.flows.get_mut(k) {
                f.packets = 0;
                f.bytes = 0;
                f.tcp_flags = 0;
                f.last_expired_ms = now_ms;
            }
        }
        for k in gone {
            self.flows.remove(&k);
        }
        let mut records: Vec<V5Record> = records.into_iter().map(|(_, r)| r).collect();
        records.sort_by_key(|r| (r.first, r.src, r.dst));
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut out = Vec::new();
        for chunk in records.chunks(V5_MAX_RECORDS) {
            let h = V5Header {
                uptime_ms: now_ms.saturating_sub(self.boot_ms) as u32,
                unix_secs: wall.as_secs() as u32,
                unix_nsecs: wall.subsec_nanos(),
                flow_seq: self.seq,
                engine_type: self.cfg.engine_type,
                engine_id: self.cfg.engine_id,
            };
            self.seq = self.seq.wrapping_add(chunk.len() as u32);
            out.push(encode_v5(&h, chunk));
        }
        out
    }

    /// Sends `datagrams` to every target, never blocking.
    pub fn send(&mut self, datagrams: &[Vec<u8>]) {
        let Some(sock) = &self.socket else {
            return;
        };
        for d in datagrams {
            for t in &self.cfg.targets {
                if let Err(e) = sock.send_to(d, t) {
                    self.send_errors += 1;
                    if self.send_errors % 1000 == 1 {
                        warn!(
                            "NetFlow: sending to {t} failed: {e} ({} failures)",
                            self.send_errors
                        );
                    }
                }
            }
        }
    }
}

// ----- Reconciling with the DB -----

/// Keeps each bridge's NetFlow exporter in step with the DB.
#[derive(Default)]
pub struct FlowExport {
    applied: BTreeMap<String, NetFlowConfig>,
    last_problems: Vec<String>,
}

impl FlowExport {
    /// Applies the `NetFlow` rows of `data` to the bridges of `sw`.
    pub fn reconcile(&mut self, sw: &Switch, data: &Data) {
        let mut problems = Vec::new();
        let wanted = configs_from_data(data, &mut problems);
        if problems != self.last_problems {
            for p in &problems {
                warn!("NetFlow configuration: {p}");
            }
            self.last_problems = problems;
        }
        let mut changed = false;
        let now = sw.slow.now_ms();
        for br in sw.slow.all_bridges() {
            let want = wanted.get(&br.name);
            let mut st = br.lock();
            let have = st.netflow.as_ref().map(|n| &n.cfg);
            if have == want {
                continue;
            }
            match (st.netflow.as_mut(), want) {
                (Some(nf), Some(c)) => {
                    info!(bridge = %br.name, "NetFlow reconfigured: targets {:?}", c.targets);
                    nf.reconfigure(c.clone());
                }
                (None, Some(c)) => {
                    info!(bridge = %br.name, "NetFlow on: targets {:?}", c.targets);
                    st.netflow = Some(NetFlow::new(c.clone(), now));
                    changed = true;
                }
                (Some(nf), None) => {
                    let last = nf.run(now, true);
                    nf.send(&last);
                    st.netflow = None;
                    info!(bridge = %br.name, "NetFlow off");
                    changed = true;
                }
                (None, None) => {}
            }
        }
        self.applied = wanted;
        if changed {
            // Megaflows must now match (or no longer match) the NetFlow
            // fields exactly.
            sw.revalidate_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_numeric_ip_and_port_and_refuse_the_rest() {
        assert_eq!(
            parse_target("127.0.0.1:2055").unwrap(),
            "127.0.0.1:2055".parse().unwrap()
        );
        assert_eq!(
            parse_target("[::1]:9995").unwrap(),
            "[::1]:9995".parse().unwrap()
        );
        let e = parse_target("127.0.0.1:70000").unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let e = parse_target("127.0.0.1:0").unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let e = parse_target("collector.example:2055").unwrap_err();
        assert!(e.contains("not a numeric IP"), "{e}");
        assert!(parse_target("127.0.0.1").is_err());
        assert!(parse_target("127.0.0.1:abc").is_err());
    }

    fn rec() -> V5Record {
        V5Record {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            input: 1,
            output: 2,
            packets: 5,
            bytes: 490,
            first: 0x0102_0304,
            last: 0x0506_0708,
            src_port: 0,
            dst_port: 0x0800,
            tcp_flags: 0x12,
            proto: 1,
            tos: 0xb8,
        }
    }

    #[test]
    fn v5_datagram_matches_the_hand_checked_layout() {
        let h = V5Header {
            uptime_ms: 0x0000_1388,
            unix_secs: 0x6000_0000,
            unix_nsecs: 0x0000_00ff,
            flow_seq: 7,
            engine_type: 0xaa,
            engine_id: 0xbb,
        };
        let b = encode_v5(&h, &[rec()]);
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            // header: version 5, count 1, uptime, secs, nsecs, seq, engine type/id, sampling
            0x00, 0x05, 0x00, 0x01,
            0x00, 0x00, 0x13, 0x88,
            0x60, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0xff,
            0x00, 0x00, 0x00, 0x07,
            0xaa, 0xbb, 0x00, 0x00,
            // record: src, dst, nexthop
            10, 0, 0, 1,
            10, 0, 0, 2,
            0, 0, 0, 0,
            // input, output
            0x00, 0x01, 0x00, 0x02,
            // packets, bytes
            0x00, 0x00, 0x00, 0x05,
            0x00, 0x00, 0x01, 0xea,
            // first, last
            0x01, 0x02, 0x03, 0x04,
            0x05, 0x06, 0x07, 0x08,
            // src port, dst port (ICMP echo request: type 8 code 0)
            0x00, 0x00, 0x08, 0x00,
            // pad, tcp flags, proto, tos
            0x00, 0x12, 0x01, 0xb8,
            // src AS, dst AS, src mask, dst mask, pad
            0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(b.len(), V5_HEADER_LEN + V5_RECORD_LEN);
        assert_eq!(b, want);
    }

    fn cfg(active: Option<u64>) -> NetFlowConfig {
        NetFlowConfig {
            uuid: Uuid::nil(),
            targets: vec!["127.0.0.1:9".parse().unwrap()],
            engine_type: 3,
            engine_id: 5,
            active_timeout_ms: active,
            add_id_to_interface: false,
        }
    }

    fn icmp_tag() -> NfTag {
        NfTag {
            key: NfKey {
                in_port: 1,
                src: 0x0a00_0001,
                dst: 0x0a00_0002,
                proto: 1,
                tos: 0,
                tp_src: 8,
                tp_dst: 0,
            },
            output: 2,
            tcp_flags: 0,
        }
    }

    fn parse_records(d: &[u8]) -> Vec<(u32, u32, u16, u16, u16)> {
        let n = u16::from_be_bytes([d[2], d[3]]) as usize;
        assert_eq!(d.len(), V5_HEADER_LEN + n * V5_RECORD_LEN);
        (0..n)
            .map(|i| {
                let r = &d[V5_HEADER_LEN + i * V5_RECORD_LEN..];
                let u32at = |o: usize| u32::from_be_bytes(r[o..o + 4].try_into().unwrap());
                let u16at = |o: usize| u16::from_be_bytes(r[o..o + 2].try_into().unwrap());
                (u32at(16), u32at(20), u16at(12), u16at(14), u16at(34))
            })
            .collect()
    }

    #[test]
    fn an_idle_flow_is_reported_once_with_all_its_traffic_then_forgotten() {
        let mut nf = NetFlow::new(cfg(None), 1000);
        nf.credit(&icmp_tag(), 1, 98, 1500, 1500);
        nf.credit(&icmp_tag(), 4, 392, 2500, 3000);
        assert!(
            nf.run(3000, false).is_empty(),
            "active flow, no active timeout"
        );
        let out = nf.run(2500 + PASSIVE_TIMEOUT_MS, false);
        assert_eq!(out.len(), 1);
        // ICMP echo request: src port 0, dst port type<<8|code.
        assert_eq!(parse_records(&out[0]), vec![(5, 490, 1, 2, 0x0800)]);
        assert_eq!(nf.n_flows(), 0);
        assert!(nf.run(100_000, true).is_empty());
    }

    #[test]
    fn active_timeout_splits_a_busy_flow_and_no_traffic_is_lost_or_counted_twice() {
        let mut nf = NetFlow::new(cfg(Some(2000)), 0);
        let mut total = 0;
        let mut now = 0;
        for _ in 0..10 {
            now += 500;
            nf.credit(&icmp_tag(), 3, 300, now, now);
            for d in nf.run(now, false) {
                total += parse_records(&d).iter().map(|r| r.0).sum::<u32>();
            }
        }
        assert!(
            total > 0 && total < 30,
            "some records sent while active: {total}"
        );
        for d in nf.run(now + PASSIVE_TIMEOUT_MS, false) {
            total += parse_records(&d).iter().map(|r| r.0).sum::<u32>();
        }
        assert_eq!(total, 30);
    }

    #[test]
    fn sequence_numbers_count_records_and_datagrams_hold_at_most_thirty() {
        let mut nf = NetFlow::new(cfg(None), 0);
        for i in 0..45u16 {
            let mut t = icmp_tag();
            t.key.tp_src = i;
            nf.credit(&t, 1, 100, 10, 10);
        }
        let out = nf.run(10 + PASSIVE_TIMEOUT_MS, false);
        assert_eq!(out.len(), 2);
        let seq = |d: &[u8]| u32::from_be_bytes(d[16..20].try_into().unwrap());
        let count = |d: &[u8]| u16::from_be_bytes([d[2], d[3]]);
        assert_eq!((count(&out[0]), seq(&out[0])), (30, 0));
        assert_eq!((count(&out[1]), seq(&out[1])), (15, 30));
        assert_eq!((out[0][20], out[0][21]), (3, 5), "engine type and id");
    }

    #[test]
    fn add_id_to_interface_puts_the_engine_id_in_the_top_seven_bits() {
        let mut c = cfg(None);
        c.add_id_to_interface = true;
        c.engine_id = 0x85; // only the low 7 bits (5) are used
        let mut nf = NetFlow::new(c, 0);
        let mut t = icmp_tag();
        t.key.in_port = 0x201; // only the low 9 bits (1) are kept
        nf.credit(&t, 1, 64, 1, 1);
        let out = nf.run(1 + PASSIVE_TIMEOUT_MS, false);
        let r = parse_records(&out[0]);
        assert_eq!((r[0].2, r[0].3), ((5 << 9) | 1, (5 << 9) | 2));
    }

    #[test]
    fn output_interface_is_the_port_or_drop_or_multi() {
        let of = |dp: flows::DpPortNo| Some(dp + 10);
        assert_eq!(output_iface(&[], of), OUT_DROP);
        assert_eq!(output_iface(&[DpAction::Output(1)], of), 11);
        assert_eq!(
            output_iface(&[DpAction::Output(1), DpAction::Output(1)], of),
            11
        );
        assert_eq!(
            output_iface(&[DpAction::Output(1), DpAction::Output(2)], of),
            OUT_MULTI
        );
    }

    #[test]
    fn default_engine_type_and_id_come_from_the_datapath_name_as_in_ovs() {
        // Values stock ovs-vswitchd sends (nfdump's "engine type/id") for a
        // bridge of datapath_type=dummy, and computed for netdev.
        assert_eq!(default_engine("dummy"), (204, 62));
        assert_eq!(ovs_hash_string("ovs-dummy"), 0x51aa_cc3e);
        assert_eq!(default_engine("netdev"), (47, 209));
        assert_eq!(default_engine(""), default_engine("netdev"));
    }

    #[test]
    fn a_config_with_one_bad_target_keeps_the_good_one_and_says_why() {
        let mut problems = Vec::new();
        let mut row = Row {
            columns: BTreeMap::new(),
            version: Uuid::nil(),
        };
        row.columns.insert(
            "targets".into(),
            ovsdb::Datum::Set(
                ["127.0.0.1:99999", "127.0.0.1:2055"]
                    .into_iter()
                    .map(|s| ovsdb::Atom::String(s.into()))
                    .collect(),
            ),
        );
        let c = NetFlowConfig::from_row(Uuid::nil(), &row, "", &mut problems).unwrap();
        assert_eq!(c.targets, vec!["127.0.0.1:2055".parse().unwrap()]);
        assert_eq!(c.active_timeout_ms, Some(600_000));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("99999"), "{problems:?}");
    }
}
