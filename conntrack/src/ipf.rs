//! IP fragment reassembly for connection tracking, with the behaviour of
//! OVS's userspace `ipf` (lib/ipf.c read as a spec): fragments of a
//! datagram are held until all have arrived; the reassembled datagram is
//! what the tracker sees, and the original fragments, carrying its
//! `ct_*` result (and its NAT), are what continue through the pipeline.
//!
//! - Datagrams are keyed by addresses, IP id, protocol (IPv4), zone and
//!   `recirc_id`, so each pass of a `ct(table=N)` pipeline reassembles on
//!   its own.
//! - Memory is bounded: at most `max_frags` fragments are held in all
//!   (`dpctl/ipf-set-max-nfrags`, default 1000, at most 5000), a datagram
//!   has at most as many fragments as the minimum fragment size allows
//!   for 65535 bytes, and a list not completed within 15 s is dropped.
//! - A fragment other than the last smaller than the minimum fragment
//!   size (`dpctl/ipf-set-min-frag`: IPv4 1200, IPv6 1280 by default, at
//!   least 400), a fragment overlapping one already held, a malformed one,
//!   and one that finds no room are not held: the tracker sees them as
//!   they are, which makes them `+inv`. Each case is counted.
//!
//! Fragments are the rare case: they are copied when held. Packets that
//! are not fragments never reach this module.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use rustc_hash::FxHashMap;

/// OVS's default and bounds.
pub const DEFAULT_MAX_FRAGS: u32 = 1000;
pub const MAX_FRAGS_BOUND: u32 = 5000;
pub const DEFAULT_MIN_FRAG_V4: u32 = 1200;
pub const DEFAULT_MIN_FRAG_V6: u32 = 1280;
pub const MIN_FRAG_LOWER_BOUND: u32 = 400;
/// A fragment list expires this long after its first fragment.
pub const LIST_TIMEOUT_MS: u64 = 15_000;

const V4_MAX_HDR: u32 = 60;
const MAX_DATAGRAM: usize = 65535;

/// Why a setting was refused (OVS's texts).
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum IpfError {
    #[error("requested minimum fragment size too small; see documentation")]
    MinFragTooSmall,
    #[error("setting maximum fragments failed")]
    MaxFragsTooLarge,
}

/// Counters of one address family (`dpctl/ipf-get-status`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct IpfFamilyStatus {
    pub enabled: bool,
    pub min_frag_size: u32,
    pub accepted: u64,
    pub completed: u64,
    pub expired: u64,
    pub too_small: u64,
    pub overlapped: u64,
    pub purged: u64,
}

/// `dpctl/ipf-get-status`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct IpfStatus {
    pub max_frags: u32,
    /// Fragments held now.
    pub nfrag: u32,
    pub v4: IpfFamilyStatus,
    pub v6: IpfFamilyStatus,
}

impl std::fmt::Display for IpfStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const I: &str = "        ";
        writeln!(f, "{I}Fragmentation Module Status")?;
        writeln!(f, "{I}---------------------------")?;
        writeln!(f, "{I}v4 enabled: {}", u8::from(self.v4.enabled))?;
        writeln!(f, "{I}v6 enabled: {}", u8::from(self.v6.enabled))?;
        writeln!(f, "{I}max num frags (v4/v6): {}", self.max_frags)?;
        writeln!(f, "{I}num frag: {}", self.nfrag)?;
        for (n, s) in [("v4", &self.v4), ("v6", &self.v6)] {
            writeln!(f, "{I}min {n} frag size: {}", s.min_frag_size)?;
            writeln!(f, "{I}{n} frags accepted: {}", s.accepted)?;
            writeln!(f, "{I}{n} frags completed: {}", s.completed)?;
            writeln!(f, "{I}{n} frags expired: {}", s.expired)?;
            writeln!(f, "{I}{n} frags too small: {}", s.too_small)?;
            writeln!(f, "{I}{n} frags overlapped: {}", s.overlapped)?;
            writeln!(f, "{I}{n} frags purged: {}", s.purged)?;
        }
        Ok(())
    }
}

/// What became of a fragment handed to [`Ipf::handle`].
#[derive(Debug, PartialEq, Eq)]
pub enum FragVerdict {
    /// Not a fragment (or reassembly is off for its family): track it as is.
    NotFragment,
    /// Not held (malformed, too small, overlapping, no room): track it as
    /// is, which makes it `+inv`.
    Refused,
    /// Held until the rest of its datagram arrives.
    Held,
    /// It completed its datagram.
    Complete(Reassembled),
}

/// A completed datagram.
#[derive(Debug, PartialEq, Eq)]
pub struct Reassembled {
    /// The whole datagram as one frame (the first fragment's L2 header).
    pub packet: Vec<u8>,
    /// The fragments as they arrived (sorted by offset), to be sent on.
    pub frags: Vec<Vec<u8>>,
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// Offset of the IP header in every frame.
    pub l3: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct ListKey {
    src: [u8; 16],
    dst: [u8; 16],
    recirc_id: u32,
    ip_id: u32,
    zone: u16,
    v6: bool,
    /// IPv4 protocol; 0 for IPv6 (as in OVS).
    proto: u8,
}

struct Frag {
    frame: Vec<u8>,
    /// First and last byte of the fragmentable part it carries.
    start: usize,
    end: usize,
    /// Offset of its data in `frame`.
    data: usize,
}

struct FragList {
    frags: Vec<Frag>,
    expiration: u64,
    first_seen: bool,
    last_seen: bool,
    /// Reassembly failed (too big): later fragments are refused.
    failed: bool,
}

/// A parsed fragment.
struct FragInfo {
    key: ListKey,
    start: usize,
    end: usize,
    data: usize,
    first: bool,
    last: bool,
}

const V4: usize = 0;
const V6: usize = 1;

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    completed: AtomicU64,
    expired: AtomicU64,
    too_small: AtomicU64,
    overlapped: AtomicU64,
}

/// The fragment reassembler shared by all PMD threads (one lock, taken
/// only for fragments).
pub struct Ipf {
    lists: Mutex<FxHashMap<ListKey, FragList>>,
    nfrag: AtomicU32,
    /// Bytes of the fragments held.
    bytes: AtomicU64,
    max_frags: AtomicU32,
    enabled: [AtomicBool; 2],
    min_frag: [AtomicU32; 2],
    counters: [Counters; 2],
}

impl Default for Ipf {
    fn default() -> Self {
        Ipf::new()
    }
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

fn ipv4_header_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for (i, c) in h.chunks(2).enumerate() {
        if i != 5 {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl Ipf {
    /// OVS's defaults: both families on, 1000 fragments, minimum sizes
    /// 1200 (IPv4) and 1280 (IPv6).
    pub fn new() -> Ipf {
        Ipf {
            lists: Mutex::new(FxHashMap::default()),
            nfrag: AtomicU32::new(0),
            bytes: AtomicU64::new(0),
            max_frags: AtomicU32::new(DEFAULT_MAX_FRAGS),
            enabled: [AtomicBool::new(true), AtomicBool::new(true)],
            min_frag: [
                AtomicU32::new(DEFAULT_MIN_FRAG_V4),
                AtomicU32::new(DEFAULT_MIN_FRAG_V6),
            ],
            counters: Default::default(),
        }
    }

    /// `dpctl/ipf-set-enabled|disabled v4|v6`.
    pub fn set_enabled(&self, v6: bool, on: bool) {
        self.enabled[usize::from(v6)].store(on, Ordering::Relaxed);
    }

    /// `dpctl/ipf-set-min-frag v4|v6 N`.
    pub fn set_min_frag(&self, v6: bool, n: u32) -> Result<(), IpfError> {
        if n < MIN_FRAG_LOWER_BOUND {
            return Err(IpfError::MinFragTooSmall);
        }
        self.min_frag[usize::from(v6)].store(n, Ordering::Relaxed);
        Ok(())
    }

    /// `dpctl/ipf-set-max-nfrags N`.
    pub fn set_max_frags(&self, n: u32) -> Result<(), IpfError> {
        if n > MAX_FRAGS_BOUND {
            return Err(IpfError::MaxFragsTooLarge);
        }
        self.max_frags.store(n, Ordering::Relaxed);
        Ok(())
    }

    /// Fragments held now.
    pub fn nfrag(&self) -> u32 {
        self.nfrag.load(Ordering::Relaxed)
    }

    /// Bytes of the fragments held now.
    pub fn held_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// `dpctl/ipf-get-status`.
    pub fn status(&self) -> IpfStatus {
        let fam = |i: usize| {
            let c = &self.counters[i];
            IpfFamilyStatus {
                enabled: self.enabled[i].load(Ordering::Relaxed),
                min_frag_size: self.min_frag[i].load(Ordering::Relaxed),
                accepted: c.accepted.load(Ordering::Relaxed),
                completed: c.completed.load(Ordering::Relaxed),
                expired: c.expired.load(Ordering::Relaxed),
                too_small: c.too_small.load(Ordering::Relaxed),
                overlapped: c.overlapped.load(Ordering::Relaxed),
                purged: 0,
            }
        };
        IpfStatus {
            max_frags: self.max_frags.load(Ordering::Relaxed),
            nfrag: self.nfrag(),
            v4: fam(V4),
            v6: fam(V6),
        }
    }

    /// The fragment lists being assembled, as `dpctl/ipf-get-status -m`
    /// prints them.
    pub fn dump(&self) -> Vec<String> {
        let lists = self.lock();
        let mut out: Vec<String> = lists
            .iter()
            .map(|(k, l)| {
                let (src, dst) = if k.v6 {
                    (
                        Ipv6Addr::from(k.src).to_string(),
                        Ipv6Addr::from(k.dst).to_string(),
                    )
                } else {
                    let a = |b: &[u8; 16]| Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string();
                    (a(&k.src), a(&k.dst))
                };
                let state = match (l.failed, l.first_seen, l.last_seen) {
                    (true, _, _) => "reassemble fail",
                    (_, true, true) => "first/last frag",
                    (_, true, false) => "first frag",
                    (_, false, true) => "last frag",
                    _ => "other frag",
                };
                format!(
                    "(src={src},dst={dst},recirc_id={},ip_id={},dl_type={:#x},zone={},nw_proto={},num_fragments={},state={state})",
                    k.recirc_id,
                    k.ip_id,
                    if k.v6 { 0x86dd } else { 0x0800 },
                    k.zone,
                    k.proto,
                    l.frags.len()
                )
            })
            .collect();
        out.sort();
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FxHashMap<ListKey, FragList>> {
        self.lists.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, v6: bool) -> &Counters {
        &self.counters[usize::from(v6)]
    }

    /// Parses an IPv4 fragment whose IP header is at `l3`. `Err(())` for a
    /// malformed or too small one, `Ok(None)` for a non-fragment.
    fn parse_v4(
        &self,
        frame: &[u8],
        l3: usize,
        zone: u16,
        recirc_id: u32,
    ) -> Result<Option<FragInfo>, ()> {
        let h = frame.get(l3..l3 + 20).ok_or(())?;
        let frag_off = be16(h, 6).ok_or(())?;
        if frag_off & 0x3fff == 0 {
            return Ok(None);
        }
        let ihl = usize::from(h[0] & 0x0f) * 4;
        let tot = usize::from(be16(h, 2).ok_or(())?);
        if h[0] >> 4 != 4 || ihl < 20 || tot < ihl || frame.len() < l3 + tot {
            return Err(());
        }
        let hdr = &frame[l3..l3 + ihl];
        if ipv4_header_checksum(hdr) != be16(hdr, 10).ok_or(())? {
            return Err(());
        }
        let more = frag_off & 0x2000 != 0;
        let offset = usize::from(frag_off & 0x1fff) * 8;
        let len = tot - ihl;
        if len == 0 || offset + len > MAX_DATAGRAM {
            return Err(());
        }
        if more && (tot as u32) < self.min_frag[V4].load(Ordering::Relaxed) {
            self.count(false).too_small.fetch_add(1, Ordering::Relaxed);
            return Err(());
        }
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src[..4].copy_from_slice(&h[12..16]);
        dst[..4].copy_from_slice(&h[16..20]);
        Ok(Some(FragInfo {
            key: ListKey {
                src,
                dst,
                recirc_id,
                ip_id: u32::from(be16(h, 4).ok_or(())?),
                zone,
                v6: false,
                proto: h[9],
            },
            start: offset,
            end: offset + len - 1,
            data: l3 + ihl,
            first: offset == 0 && more,
            last: offset != 0 && !more,
        }))
    }

    /// Like `parse_v4` for IPv6: the fragment header may follow hop-by-hop,
    /// routing and destination options headers.
    fn parse_v6(
        &self,
        frame: &[u8],
        l3: usize,
        zone: u16,
        recirc_id: u32,
    ) -> Result<Option<FragInfo>, ()> {
        let h = frame.get(l3..l3 + 40).ok_or(())?;
        let plen = usize::from(be16(h, 4).ok_or(())?);
        let end_of_packet = l3 + 40 + plen;
        if frame.len() < end_of_packet {
            return Err(());
        }
        let mut nh = h[6];
        let mut at = l3 + 40;
        while matches!(nh, 0 | 43 | 60) {
            let len = (usize::from(*frame.get(at + 1).ok_or(())?) + 1) * 8;
            nh = frame[at];
            at += len;
            if at > end_of_packet {
                return Err(());
            }
        }
        if nh != 44 {
            return Ok(None);
        }
        let fh = frame.get(at..at + 8).ok_or(())?;
        let offlg = be16(fh, 2).ok_or(())?;
        if offlg & 0xfff9 == 0 {
            // An atomic fragment (offset 0, no more): not really fragmented.
            return Ok(None);
        }
        let more = offlg & 1 != 0;
        let offset = usize::from(offlg & 0xfff8);
        let data = at + 8;
        if data > end_of_packet {
            return Err(());
        }
        let len = end_of_packet - data;
        if len == 0 || offset + len > MAX_DATAGRAM {
            return Err(());
        }
        if more && ((end_of_packet - l3) as u32) < self.min_frag[V6].load(Ordering::Relaxed) {
            self.count(true).too_small.fetch_add(1, Ordering::Relaxed);
            return Err(());
        }
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&h[8..24]);
        dst.copy_from_slice(&h[24..40]);
        Ok(Some(FragInfo {
            key: ListKey {
                src,
                dst,
                recirc_id,
                ip_id: u32::from_be_bytes(fh[4..8].try_into().map_err(|_| ())?),
                zone,
                v6: true,
                proto: 0,
            },
            start: offset,
            end: offset + len - 1,
            data,
            first: offset == 0 && more,
            last: offset != 0 && !more,
        }))
    }

    /// The most fragments one datagram may have.
    fn max_list_len(&self, v6: bool) -> usize {
        let min = self.min_frag[usize::from(v6)].load(Ordering::Relaxed);
        let hdr = if v6 { 48 } else { V4_MAX_HDR };
        (MAX_DATAGRAM as u32 - hdr).div_ceil(min.saturating_sub(hdr).max(1)) as usize
    }

    /// Takes a packet a `ct` action sees: `frame` with its IP header at
    /// `l3`, `v6` for IPv6, tracked in `zone` on pass `recirc_id`. The
    /// caller has seen that the flow key marks it as a fragment.
    pub fn handle(
        &self,
        frame: &[u8],
        l3: usize,
        v6: bool,
        zone: u16,
        recirc_id: u32,
        now_ms: u64,
    ) -> FragVerdict {
        if !self.enabled[usize::from(v6)].load(Ordering::Relaxed) {
            return FragVerdict::NotFragment;
        }
        let parsed = if v6 {
            self.parse_v6(frame, l3, zone, recirc_id)
        } else {
            self.parse_v4(frame, l3, zone, recirc_id)
        };
        let info = match parsed {
            Ok(Some(i)) => i,
            Ok(None) => return FragVerdict::NotFragment,
            Err(()) => return FragVerdict::Refused,
        };
        let mut lists = self.lock();
        self.expire_locked(&mut lists, now_ms);
        if self.nfrag.load(Ordering::Relaxed) >= self.max_frags.load(Ordering::Relaxed) {
            return FragVerdict::Refused;
        }
        let max_len = self.max_list_len(v6);
        let list = lists.entry(info.key).or_insert_with(|| FragList {
            frags: Vec::with_capacity(4),
            expiration: now_ms.saturating_add(LIST_TIMEOUT_MS),
            first_seen: false,
            last_seen: false,
            failed: false,
        });
        if list.failed || list.frags.len() >= max_len {
            return FragVerdict::Refused;
        }
        let overlaps = list
            .frags
            .iter()
            .any(|f| info.start <= f.end && f.start <= info.end);
        if overlaps {
            self.count(v6).overlapped.fetch_add(1, Ordering::Relaxed);
            if list.frags.is_empty() {
                lists.remove(&info.key);
            }
            return FragVerdict::Refused;
        }
        list.frags.push(Frag {
            frame: frame.to_vec(),
            start: info.start,
            end: info.end,
            data: info.data,
        });
        list.first_seen |= info.first;
        list.last_seen |= info.last;
        self.nfrag.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
        self.count(v6).accepted.fetch_add(1, Ordering::Relaxed);
        if !(list.first_seen && list.last_seen) {
            return FragVerdict::Held;
        }
        list.frags.sort_by_key(|f| f.start);
        if list.frags[0].start != 0 || list.frags.windows(2).any(|w| w[0].end + 1 != w[1].start) {
            return FragVerdict::Held;
        }
        let Some(packet) = reassemble(&list.frags, l3, v6) else {
            list.failed = true;
            return FragVerdict::Refused;
        };
        let Some(list) = lists.remove(&info.key) else {
            return FragVerdict::Held;
        };
        let n = list.frags.len();
        let bytes: usize = list.frags.iter().map(|f| f.frame.len()).sum();
        self.nfrag.fetch_sub(n as u32, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes as u64, Ordering::Relaxed);
        self.count(v6)
            .completed
            .fetch_add(n as u64, Ordering::Relaxed);
        FragVerdict::Complete(Reassembled {
            packet,
            frags: list.frags.into_iter().map(|f| f.frame).collect(),
            v6,
            l3,
        })
    }

    /// Drops the fragment lists whose time is up; returns how many
    /// fragments went.
    pub fn expire(&self, now_ms: u64) -> usize {
        let mut lists = self.lock();
        self.expire_locked(&mut lists, now_ms)
    }

    fn expire_locked(&self, lists: &mut FxHashMap<ListKey, FragList>, now_ms: u64) -> usize {
        let mut gone = 0;
        lists.retain(|k, l| {
            if l.expiration > now_ms {
                return true;
            }
            let n = l.frags.len();
            let bytes: usize = l.frags.iter().map(|f| f.frame.len()).sum();
            self.nfrag.fetch_sub(n as u32, Ordering::Relaxed);
            self.bytes.fetch_sub(bytes as u64, Ordering::Relaxed);
            self.count(k.v6)
                .expired
                .fetch_add(n as u64, Ordering::Relaxed);
            gone += n;
            false
        });
        gone
    }
}

/// Builds the datagram from a complete, sorted list.
fn reassemble(frags: &[Frag], l3: usize, v6: bool) -> Option<Vec<u8>> {
    let total: usize = frags.last()?.end + 1;
    let first = &frags[0];
    if v6 {
        // Drop the fragment header: the unfragmentable part, then the data.
        let fh = first.data - 8;
        let mut out = Vec::with_capacity(fh + total);
        out.extend_from_slice(&first.frame[..fh]);
        if 40 + (fh - l3 - 40) + total > MAX_DATAGRAM + 40 {
            return None;
        }
        for f in frags {
            let len = f.end - f.start + 1;
            out.extend_from_slice(f.frame.get(f.data..f.data + len)?);
        }
        // The header that named the fragment header names its successor.
        let next = first.frame[fh];
        let mut nh_at = l3 + 6;
        let mut at = l3 + 40;
        while at < fh {
            nh_at = at;
            at += (usize::from(out[at + 1]) + 1) * 8;
        }
        out[nh_at] = next;
        let plen = u16::try_from(out.len() - l3 - 40).ok()?;
        out[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
        Some(out)
    } else {
        let hdr = first.data - l3;
        let tot = u16::try_from(hdr + total).ok()?;
        let mut out = Vec::with_capacity(first.data + total);
        out.extend_from_slice(&first.frame[..first.data]);
        for f in frags {
            let len = f.end - f.start + 1;
            out.extend_from_slice(f.frame.get(f.data..f.data + len)?);
        }
        out[l3 + 2..l3 + 4].copy_from_slice(&tot.to_be_bytes());
        // Clear MF and the offset, keep DF.
        out[l3 + 6] &= 0x40;
        out[l3 + 7] = 0;
        let c = ipv4_header_checksum(&out[l3..l3 + hdr]);
        out[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        Some(out)
    }
}

impl Reassembled {
    /// After the tracker has run on `packet` (and NAT may have rewritten
    /// it), carries its addresses into every fragment and its L4 header
    /// into the first, as OVS does, so the fragments leave translated.
    pub fn copy_nat_to_frags(&mut self) {
        let l3 = self.l3;
        if self.v6 {
            let (src, dst) = (&self.packet[l3 + 8..l3 + 40], l3 + 8..l3 + 40);
            for f in &mut self.frags {
                if let Some(d) = f.get_mut(dst.clone()) {
                    d.copy_from_slice(src);
                }
            }
            // The first fragment's data follows its fragment header, 8
            // bytes later than in the datagram.
            if let Some(f0) = self.frags.first_mut() {
                let Some(data) = fh_data_v6(f0, l3) else {
                    return;
                };
                let n = f0.len() - data;
                if let Some(s) = self.packet.get(data - 8..data - 8 + n) {
                    f0[data..data + n].copy_from_slice(s);
                }
            }
        } else {
            let addrs = self.packet[l3 + 12..l3 + 20].to_vec();
            for f in &mut self.frags {
                if f.len() < l3 + 20 {
                    continue;
                }
                f[l3 + 12..l3 + 20].copy_from_slice(&addrs);
                let ihl = usize::from(f[l3] & 0x0f) * 4;
                let Some(h) = f.get(l3..l3 + ihl) else {
                    continue;
                };
                let c = ipv4_header_checksum(h);
                f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
            }
            if let Some(f0) = self.frags.first_mut() {
                let ihl = usize::from(f0[l3] & 0x0f) * 4;
                let tot = usize::from(be16(f0, l3 + 2).unwrap_or(0));
                let (a, b) = (l3 + ihl, (l3 + tot).min(f0.len()));
                if let Some(s) = self.packet.get(a..b) {
                    f0[a..b].copy_from_slice(s);
                }
            }
        }
    }
}

/// The data offset of an IPv6 fragment whose IP header is at `l3`.
fn fh_data_v6(f: &[u8], l3: usize) -> Option<usize> {
    let mut nh = *f.get(l3 + 6)?;
    let mut at = l3 + 40;
    while matches!(nh, 0 | 43 | 60) {
        nh = *f.get(at)?;
        at += (usize::from(*f.get(at + 1)?) + 1) * 8;
    }
    (nh == 44).then_some(at + 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fragment_v4, fragment_v6, udp};
    use proptest::prelude::*;

    fn feed(ipf: &Ipf, frags: &[Vec<u8>], now: u64) -> Vec<FragVerdict> {
        frags
            .iter()
            .map(|f| ipf.handle(f, 14, f[12] == 0x86, 0, 0, now))
            .collect()
    }

    #[test]
    fn a_6000_byte_udp_datagram_in_five_fragments_reassembles_in_any_order() {
        let whole = udp("10.0.0.1", "10.0.0.2", 1000, 2000, 6000 - 28);
        let mut frags = fragment_v4(&whole, 1480);
        assert_eq!(frags.len(), 5);
        frags.swap(0, 3);
        let ipf = Ipf::new();
        let v = feed(&ipf, &frags[..4], 0);
        assert!(v.iter().all(|x| *x == FragVerdict::Held));
        assert_eq!(ipf.nfrag(), 4);
        let last = feed(&ipf, &frags[4..], 0).pop().unwrap();
        let FragVerdict::Complete(r) = last else {
            panic!("{last:?}")
        };
        assert_eq!(r.packet, whole, "the datagram, byte for byte");
        assert_eq!(r.frags.len(), 5);
        assert_eq!(
            r.frags[0],
            fragment_v4(&whole, 1480)[0],
            "sorted, unchanged"
        );
        let s = ipf.status();
        assert_eq!((s.nfrag, s.v4.accepted, s.v4.completed), (0, 5, 5));
        assert_eq!(ipf.held_bytes(), 0);
    }

    #[test]
    fn an_ipv6_datagram_reassembles_without_its_fragment_header() {
        let whole = udp("fc00::1", "fc00::2", 1000, 2000, 4000);
        let frags = fragment_v6(&whole, 1448, 77);
        assert_eq!(frags.len(), 3);
        let ipf = Ipf::new();
        let mut v = feed(&ipf, &frags, 0);
        let FragVerdict::Complete(r) = v.pop().unwrap() else {
            panic!()
        };
        assert_eq!(r.packet, whole);
        assert_eq!(ipf.status().v6.completed, 3);
    }

    #[test]
    fn overlapping_and_too_small_fragments_are_refused_and_counted() {
        let whole = udp("10.0.0.1", "10.0.0.2", 1, 2, 3000);
        let frags = fragment_v4(&whole, 1480);
        let ipf = Ipf::new();
        assert_eq!(feed(&ipf, &frags[..1], 0), [FragVerdict::Held]);
        assert_eq!(feed(&ipf, &frags[..1], 0), [FragVerdict::Refused]);
        assert_eq!(ipf.status().v4.overlapped, 1);
        let small = fragment_v4(&udp("10.0.0.1", "10.0.0.2", 1, 2, 3000), 400);
        assert_eq!(feed(&ipf, &small[..1], 0), [FragVerdict::Refused]);
        assert_eq!(ipf.status().v4.too_small, 1);
        ipf.set_min_frag(false, 400).unwrap();
        assert_eq!(ipf.set_min_frag(false, 399), Err(IpfError::MinFragTooSmall));
        // The same small fragment, now big enough (another datagram id).
        let mut s0 = small[0].clone();
        s0[19] ^= 1;
        let c = super::ipv4_header_checksum(&s0[14..34]);
        s0[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(feed(&ipf, &[s0], 0), [FragVerdict::Held]);
        // A bad header checksum is malformed.
        let mut bad = frags[1].clone();
        bad[24] ^= 0xff;
        assert_eq!(feed(&ipf, &[bad], 0), [FragVerdict::Refused]);
    }

    #[test]
    fn incomplete_lists_expire_after_15_s_and_free_their_fragments() {
        let whole = udp("10.0.0.1", "10.0.0.2", 1, 2, 3000);
        let frags = fragment_v4(&whole, 1480);
        let ipf = Ipf::new();
        feed(&ipf, &frags[..2], 1000);
        assert_eq!(ipf.expire(1000 + LIST_TIMEOUT_MS - 1), 0);
        assert_eq!(ipf.expire(1000 + LIST_TIMEOUT_MS), 2);
        assert_eq!((ipf.nfrag(), ipf.held_bytes()), (0, 0));
        assert_eq!(ipf.status().v4.expired, 2);
        // The last fragment alone now starts a new list.
        assert_eq!(feed(&ipf, &frags[2..], 20_000), [FragVerdict::Held]);
    }

    #[test]
    fn the_fragment_limit_holds_and_the_limit_has_ovs_bounds() {
        let ipf = Ipf::new();
        ipf.set_max_frags(3).unwrap();
        assert_eq!(ipf.set_max_frags(5001), Err(IpfError::MaxFragsTooLarge));
        for port in 0..5u16 {
            let f = fragment_v4(&udp("10.0.0.1", "10.0.0.2", port, 2, 3000), 1480);
            let mut g = f[0].clone();
            g[18..20].copy_from_slice(&port.to_be_bytes());
            let c = super::ipv4_header_checksum(&{
                let mut h = g[14..34].to_vec();
                h[10] = 0;
                h[11] = 0;
                h
            });
            g[24..26].copy_from_slice(&c.to_be_bytes());
            let want = if port < 3 {
                FragVerdict::Held
            } else {
                FragVerdict::Refused
            };
            assert_eq!(feed(&ipf, &[g], 0), [want]);
        }
        assert_eq!(ipf.nfrag(), 3);
    }

    #[test]
    fn a_non_fragment_and_a_disabled_family_are_left_to_the_tracker() {
        let ipf = Ipf::new();
        let whole = udp("10.0.0.1", "10.0.0.2", 1, 2, 100);
        assert_eq!(
            feed(&ipf, std::slice::from_ref(&whole), 0),
            [FragVerdict::NotFragment]
        );
        ipf.set_enabled(false, false);
        let frags = fragment_v4(&udp("10.0.0.1", "10.0.0.2", 1, 2, 3000), 1480);
        assert_eq!(feed(&ipf, &frags[..1], 0), [FragVerdict::NotFragment]);
        assert!(!ipf.status().v4.enabled);
        let st = ipf.status().to_string();
        assert!(st.starts_with("        Fragmentation Module Status\n"));
        assert!(st.contains("        v4 enabled: 0\n        v6 enabled: 1\n"));
        assert!(st.contains("        max num frags (v4/v6): 1000\n"));
    }

    #[test]
    fn a_list_is_dumped_as_ovs_prints_it() {
        let ipf = Ipf::new();
        let frags = fragment_v4(&udp("10.0.0.1", "10.0.0.2", 1, 2, 3000), 1480);
        feed(&ipf, &frags[..1], 0);
        assert_eq!(
            ipf.dump(),
            [
                "(src=10.0.0.1,dst=10.0.0.2,recirc_id=0,ip_id=4660,dl_type=0x800,zone=0,nw_proto=17,num_fragments=1,state=first frag)"
            ]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Random fragment sequences (cut, shuffled, duplicated, corrupted,
        /// mixed families, moving clock) never panic, never hold more than
        /// the limit, and the byte count always matches what is held.
        #[test]
        fn random_fragment_sequences_never_panic_and_stay_within_bounds(
            ops in proptest::collection::vec(
                (0usize..6, 0usize..8, any::<u16>(), 0usize..64, any::<u8>(), 0u64..4000),
                1..120,
            ),
            max in 1u32..40,
        ) {
            let ipf = Ipf::new();
            ipf.set_max_frags(max).unwrap();
            let _ = ipf.set_min_frag(false, 400);
            let _ = ipf.set_min_frag(true, 400);
            let dgrams: Vec<Vec<Vec<u8>>> = (0..3u16)
                .map(|i| fragment_v4(&udp("10.0.0.1", "10.0.0.2", i, 9, 600 + 700 * usize::from(i)), 408))
                .chain((0..3u16).map(|i| fragment_v6(&udp("fc00::1", "fc00::2", i, 9, 500 + 900 * usize::from(i)), 408, u32::from(i))))
                .collect();
            let mut now = 0;
            let max_frame = dgrams.iter().flatten().map(Vec::len).max().unwrap() as u64;
            for (d, idx, id, at, byte, dt) in ops {
                now += dt;
                let frags = &dgrams[d];
                let mut f = frags[idx % frags.len()].clone();
                // Vary the datagram id (IPv4) so lists multiply.
                if d < 3 {
                    f[18] = (id & 3) as u8;
                }
                if at < f.len() && byte % 4 == 0 {
                    f[at] = byte;
                }
                if byte % 7 == 0 {
                    f.truncate(at.min(f.len()));
                }
                if f.len() < 14 {
                    continue;
                }
                let v = ipf.handle(&f, 14, f[12] == 0x86, 0, u32::from(id % 2), now);
                if let FragVerdict::Complete(r) = &v {
                    prop_assert!(!r.frags.is_empty());
                }
                prop_assert!(ipf.nfrag() <= max);
                prop_assert!(ipf.held_bytes() <= u64::from(ipf.nfrag()) * max_frame);
                if ipf.nfrag() == 0 {
                    prop_assert_eq!(ipf.held_bytes(), 0);
                }
            }
            ipf.expire(now + LIST_TIMEOUT_MS);
            prop_assert_eq!((ipf.nfrag(), ipf.held_bytes()), (0, 0));
        }
    }
}
