//! Connection tracking and NAT for the userspace datapath.
//!
//! Pure and I/O-free: no clock reads (every call takes `now` in
//! milliseconds), no threads. One [`Conntrack`] is shared (`Arc`) by all PMD
//! threads; each calls [`Conntrack::execute`] (or
//! [`Conntrack::execute_batch`]) for the packets of a `ct` action and stores
//! the returned [`CtResult`] in the packet's metadata before recirculating.
//! Semantics follow Open vSwitch's userspace conntrack (`lib/conntrack*.c`,
//! ovs-actions(7) `ct`, ovs-fields(7) `ct_state`).
//!
//! Per packet the tracker takes one shard lock and one connection lock;
//! established traffic allocates nothing. A commit allocates the entry.
//!
//! ```
//! use conntrack::{Conntrack, CtArgs, CtConfig, CtPacket, CtState};
//! use flows::parse::extract;
//!
//! let ct = Conntrack::new(CtConfig::default());
//! // A UDP datagram 10.0.0.1:1000 -> 10.0.0.2:53.
//! let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
//! frame.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
//! frame.extend_from_slice(&[0x03, 0xe8, 0, 53, 0, 8, 0, 0]);
//! let (key, layout) = extract(&frame, 1).unwrap();
//! let len = frame.len();
//! let mut pkt = CtPacket { buf: &mut frame, len, key: &key, layout: &layout, partial_l4_csum: false };
//! // ct(commit,zone=1)
//! let args = CtArgs { zone: 1, commit: true, ..CtArgs::default() };
//! let res = ct.execute(&mut pkt, &args, 0);
//! assert_eq!(res.state, CtState::TRK | CtState::NEW);
//! assert_eq!(res.orig.unwrap().ct_tp_dst(), 53);
//! assert_eq!(ct.nconns(), 1);
//! ```

pub mod alg;
pub mod alg_nat;
mod conn;
mod dump;
mod extract;
mod flush;
pub mod ipf;
mod limits;
pub mod nat;
mod state;
mod table;
pub mod tcp;
mod timeouts;
pub mod tuple;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use flows::key::FlowKey;
use flows::parse::Layout;

use conn::{AlgExt, Conn, ConnState, ProtoState};
use extract::Parsed;
use table::Table;
use tcp::{TcpSeg, Update};

pub use alg::Alg;
pub use dump::{CtEntry, CtStats, proto_name};
pub use flush::{CtMatch, CtTupleMatch, FlushError, TupleParseError};
pub use ipf::{FragVerdict, Ipf, IpfError, IpfStatus, Reassembled};
pub use limits::ZoneLimit;
pub use nat::{NatAction, NatError, NatRange, PortSelect};
pub use state::{CtResult, CtState};
pub use tcp::TcpState;
pub use timeouts::{DEFAULT_TIMEOUTS, MAX_POLICIES, PolicyError, TimeoutAttr, TimeoutPolicy};
pub use tuple::Tuple;

/// OVS's default global connection limit (`dpctl/ct-set-maxconns`).
pub const DEFAULT_MAX_CONNS: u32 = 3_000_000;

/// Tracker configuration.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CtConfig {
    /// Lock shards (rounded up to a power of two). Many, so that each
    /// holds few connections: a sweep locks one shard at a time, and a
    /// PMD's lookups wait for no longer than one shard's sweep.
    pub n_shards: usize,
    /// Global connection limit.
    pub max_conns: u32,
    /// TCP sequence/window checking (OVS's `dpctl/ct-enable-tcp-seq-chk`);
    /// off is liberal mode.
    pub tcp_seq_check: bool,
    /// Key of the table's hash; give a random value (the crate reads no
    /// entropy itself) so remote hosts cannot aim tuples at one bucket.
    pub hash_seed: u64,
}

impl Default for CtConfig {
    fn default() -> CtConfig {
        CtConfig {
            n_shards: 512,
            max_conns: DEFAULT_MAX_CONNS,
            tcp_seq_check: true,
            hash_seed: 0,
        }
    }
}

/// The arguments of one `ct` action.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CtArgs {
    /// `zone=`.
    pub zone: u16,
    /// `commit`.
    pub commit: bool,
    /// `force`: a packet of a connection in the reply direction ends it and
    /// (with `commit`) starts a new one in its direction.
    pub force: bool,
    /// `nat` / `nat(src=...)` / `nat(dst=...)`.
    pub nat: Option<NatAction>,
    /// `exec(set_field:V/M->ct_mark)` on commit: (value, mask).
    pub set_mark: Option<(u32, u32)>,
    /// `exec(set_field:V/M->ct_label)` on commit: (value, mask).
    pub set_label: Option<(u128, u128)>,
    /// `alg=ftp|tftp`: a connection committed with it is a control
    /// connection whose announcements make data connections `+rel`.
    pub alg: Option<Alg>,
}

/// One packet handed to the tracker.
pub struct CtPacket<'a> {
    /// The frame (`buf[..len]`) and any room after it. NAT rewrites the
    /// frame in place; only the FTP helper under NAT changes its length
    /// (within `buf`), and then sets `len`.
    pub buf: &'a mut [u8],
    /// The frame's length.
    pub len: usize,
    /// The flow key `flows::parse::extract` gave for the frame.
    pub key: &'a FlowKey,
    /// The layout `flows::parse::extract` gave for the frame.
    pub layout: &'a Layout,
    /// The frame carries a virtio `NEEDS_CSUM` partial L4 checksum.
    pub partial_l4_csum: bool,
}

impl CtPacket<'_> {
    /// The frame.
    pub fn frame(&mut self) -> &mut [u8] {
        let n = self.len.min(self.buf.len());
        &mut self.buf[..n]
    }
}

/// Event counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CtCounters {
    /// Commits refused because the table held `max_conns` connections.
    pub refused_full: u64,
    /// Commits refused by a zone limit.
    pub refused_zone_limit: u64,
    /// Commits that found no free NAT address/port.
    pub nat_exhausted: u64,
    /// Packets tracked as `+inv`.
    pub invalid: u64,
    /// ALG announcements dropped because the expectation table was full.
    pub expect_full: u64,
    /// FTP address rewrites not done because the packet would exceed the
    /// MTU (or its buffer).
    pub alg_rewrite_refused: u64,
}

/// Bytes used by the tracker for its connections.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CtMemory {
    pub conns: u64,
    /// Connection entries (each in its own allocation with its reference
    /// counts; allocator rounding not included).
    pub entry_bytes: usize,
    /// Hash index buckets (both directions).
    pub index_bytes: usize,
}

impl CtMemory {
    /// Average bytes per connection.
    pub fn per_conn(&self) -> usize {
        (self.entry_bytes + self.index_bytes)
            .checked_div(self.conns as usize)
            .unwrap_or(0)
    }
}

/// Which connections `flush` removes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct FlushFilter {
    /// Only this zone.
    pub zone: Option<u16>,
    /// Only the connection with this original or reply tuple (its zone
    /// field is the zone).
    pub tuple: Option<Tuple>,
}

/// The connection tracker shared by all PMD threads.
pub struct Conntrack {
    table: Table,
    policies: timeouts::Policies,
    expect: alg::Expectations,
    nconns: AtomicU32,
    max_conns: AtomicU32,
    zone_counts: Box<[AtomicU32]>,
    /// Per-zone limit; `u32::MAX` means "the default limit".
    zone_limits: Box<[AtomicU32]>,
    /// Limit for zones without their own; 0 is unlimited.
    default_zone_limit: AtomicU32,
    tcp_seq_check: AtomicBool,
    salt: AtomicU64,
    refused_full: AtomicU64,
    refused_zone_limit: AtomicU64,
    nat_exhausted: AtomicU64,
    invalid: AtomicU64,
    expect_full: AtomicU64,
    alg_rewrite_refused: AtomicU64,
}

/// What a lookup of an existing connection concluded.
enum Seen {
    Hit {
        res: CtResult,
        rewrite: Option<(Tuple, Tuple)>,
        /// A control connection (it has a helper), and the packet's
        /// direction, for the ALG.
        ctl: Option<(Arc<Conn>, bool)>,
    },
    /// Expired, restarted (TCP SYN after close) or ended by `force`:
    /// remove it and treat the packet as new.
    Replace(Arc<Conn>),
}

const ZONES: usize = u16::MAX as usize + 1;

impl Conntrack {
    /// An empty tracker.
    pub fn new(cfg: CtConfig) -> Conntrack {
        Conntrack {
            table: Table::new(cfg.n_shards, cfg.hash_seed),
            policies: timeouts::Policies::new(),
            expect: alg::Expectations::new(),
            nconns: AtomicU32::new(0),
            max_conns: AtomicU32::new(cfg.max_conns),
            zone_counts: (0..ZONES).map(|_| AtomicU32::new(0)).collect(),
            zone_limits: (0..ZONES).map(|_| AtomicU32::new(u32::MAX)).collect(),
            default_zone_limit: AtomicU32::new(0),
            tcp_seq_check: AtomicBool::new(cfg.tcp_seq_check),
            salt: AtomicU64::new(0x5eed),
            refused_full: AtomicU64::new(0),
            refused_zone_limit: AtomicU64::new(0),
            nat_exhausted: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            expect_full: AtomicU64::new(0),
            alg_rewrite_refused: AtomicU64::new(0),
        }
    }

    /// Tracks a batch of packets with the same `ct` arguments, writing one
    /// result per packet into `out` (which must be at least as long).
    pub fn execute_batch(
        &self,
        pkts: &mut [CtPacket<'_>],
        args: &CtArgs,
        now_ms: u64,
        out: &mut [CtResult],
    ) {
        for (p, o) in pkts.iter_mut().zip(out.iter_mut()) {
            *o = self.execute(p, args, now_ms);
        }
    }

    /// Tracks one packet: looks up (and on `commit` creates) its
    /// connection, applies NAT, and returns its `ct_*` metadata.
    pub fn execute(&self, pkt: &mut CtPacket<'_>, args: &CtArgs, now_ms: u64) -> CtResult {
        let (key, layout) = (pkt.key, pkt.layout);
        match extract::parse(pkt.frame(), key, layout, args.zone) {
            None => self.invalid(args.zone),
            Some(Parsed::Conn {
                tuple,
                tcp,
                icmp_request,
            }) => self.track(pkt, args, &tuple, tcp.as_ref(), icmp_request, now_ms),
            Some(Parsed::IcmpError {
                inner,
                inner_l3,
                inner_l4,
            }) => self.related(pkt, args, &inner, inner_l3, inner_l4, now_ms),
        }
    }

    fn invalid(&self, zone: u16) -> CtResult {
        self.invalid.fetch_add(1, Ordering::Relaxed);
        CtResult {
            state: CtState::TRK | CtState::INV,
            zone,
            ..CtResult::default()
        }
    }

    fn track(
        &self,
        pkt: &mut CtPacket<'_>,
        args: &CtArgs,
        tuple: &Tuple,
        seg: Option<&TcpSeg>,
        icmp_request: bool,
        now: u64,
    ) -> CtResult {
        let seq_check = self.tcp_seq_check.load(Ordering::Relaxed);
        // Hashed once for the lookup and, when it misses, the insert.
        let h = self.table.hash(tuple);
        let seen = self.table.visit_hashed(h, tuple, |c, reply| {
            let mut st = c.lock();
            if st.dead || st.expiration <= now || (reply && args.force && args.commit) {
                return Seen::Replace(c.clone());
            }
            // Under NAT, an FTP control connection's acknowledgements of
            // rewritten data are taken back to the sender's numbering
            // before window tracking (the frame is shifted in `alg_ctl`).
            let ack_shift = match (&c.ext, seg) {
                (Some(x), Some(_)) if args.nat.is_some() => x.skew(!reply),
                _ => 0,
            };
            let shifted;
            let seg = match seg {
                Some(s) if ack_shift != 0 => {
                    shifted = TcpSeg {
                        ack: s.ack.wrapping_sub(ack_shift as u32),
                        ..*s
                    };
                    Some(&shifted)
                }
                _ => seg,
            };
            let upd = st.proto.update(seg, reply, seq_check);
            let mut state = match upd {
                Update::Reopen => return Seen::Replace(c.clone()),
                Update::Invalid => {
                    return Seen::Hit {
                        res: CtResult {
                            state: CtState::TRK | CtState::INV,
                            zone: args.zone,
                            ..CtResult::default()
                        },
                        rewrite: None,
                        ctl: None,
                    };
                }
                Update::ValidNew => CtState::NEW,
                Update::Valid if reply => CtState::EST | CtState::RPL,
                Update::Valid => CtState::EST,
            };
            st.expiration = now.saturating_add(self.policies.ms(c.tp, st.proto.timeout_attr()));
            // A related connection keeps its parent's mark and label.
            if args.commit && c.parent().is_none() {
                apply_marks(&mut st, args);
            }
            if c.parent().is_some() {
                state |= CtState::REL;
            }
            let mut rewrite = None;
            if args.nat.is_some() && c.nat != 0 {
                state |= nat_bits(c.nat);
                let to = if reply {
                    c.orig.reverse()
                } else {
                    c.reply.reverse()
                };
                rewrite = Some((*tuple, to));
            }
            Seen::Hit {
                res: CtResult {
                    state: state | CtState::TRK,
                    zone: args.zone,
                    mark: st.mark,
                    label: st.label(),
                    orig: Some(c.parent().copied().unwrap_or(c.orig)),
                },
                rewrite,
                ctl: (c.alg != 0).then(|| (c.clone(), reply)),
            }
        });
        match seen {
            Some(Seen::Hit {
                mut res,
                rewrite,
                ctl,
            }) => {
                if res.state.contains(CtState::INV) {
                    self.invalid.fetch_add(1, Ordering::Relaxed);
                } else if let Some((c, reply)) = ctl {
                    self.alg_ctl(pkt, tuple, &c, reply, args.nat.is_some(), &mut res);
                }
                if let Some((from, to)) = rewrite {
                    let partial = pkt.partial_l4_csum;
                    nat::rewrite(pkt.frame(), &from, &to, partial);
                }
                res
            }
            Some(Seen::Replace(old)) => {
                self.remove(&old);
                self.track_new(pkt, args, (tuple, h), seg, icmp_request, now)
            }
            None => self.track_new(pkt, args, (tuple, h), seg, icmp_request, now),
        }
    }

    fn track_new(
        &self,
        pkt: &mut CtPacket<'_>,
        args: &CtArgs,
        (tuple, h): (&Tuple, u64),
        seg: Option<&TcpSeg>,
        icmp_request: bool,
        now: u64,
    ) -> CtResult {
        let valid = match seg {
            Some(s) => tcp::valid_new(s),
            None => !tuple.is_icmp() || icmp_request,
        };
        if !valid {
            return self.invalid(args.zone);
        }
        let mut res = CtResult {
            state: CtState::TRK | CtState::NEW,
            zone: args.zone,
            orig: Some(*tuple),
            ..CtResult::default()
        };
        let expected = self.expect.lookup(tuple);
        if let Some(e) = &expected {
            res.state |= CtState::REL;
            res.mark = e.mark;
            res.label = e.label;
            res.orig = Some(e.parent);
        }
        if !args.commit || !self.reserve(args.zone) {
            return res;
        }
        let (reply, nat_flag) = match (args.nat, &expected) {
            // An expected connection takes the translation its control
            // connection implies, whatever the `nat` argument says.
            (Some(_), Some(e)) => {
                let mut r = tuple.reverse();
                if e.nat_rpl_dst {
                    r.dst = e.nat_addr;
                    (r, nat::NAT_SRC)
                } else {
                    r.src = e.nat_addr;
                    (r, nat::NAT_DST)
                }
            }
            (Some(NatAction::Src(r)) | Some(NatAction::Dst(r)), None) => {
                let src = matches!(args.nat, Some(NatAction::Src(_)));
                let salt = self.salt.fetch_add(0x9e37_79b9, Ordering::Relaxed);
                match nat::choose(tuple, &r, src, salt, |t| self.table.contains(t)) {
                    Ok(t) => (t, if src { nat::NAT_SRC } else { nat::NAT_DST }),
                    Err(_) => {
                        self.nat_exhausted.fetch_add(1, Ordering::Relaxed);
                        self.release(args.zone);
                        return res;
                    }
                }
            }
            _ => (tuple.reverse(), 0),
        };
        let proto = ProtoState::new(tuple, seg);
        let tp = self.policies.zone_policy(args.zone);
        let mut st = ConnState {
            expiration: now.saturating_add(self.policies.ms(tp, proto.timeout_attr())),
            label: [0; 2],
            mark: 0,
            proto,
            dead: false,
        };
        match &expected {
            Some(e) => {
                st.mark = e.mark;
                st.set_label(e.label);
            }
            None => apply_marks(&mut st, args),
        }
        let (mark, label) = (st.mark, st.label());
        let helper = args
            .alg
            .filter(|a| alg::keeps_helper(tuple, *a))
            .map_or(0, Alg::code);
        let ext = (helper != 0 || expected.is_some()).then(|| {
            Box::new(AlgExt {
                parent: expected.map(|e| e.parent),
                ..AlgExt::default()
            })
        });
        let c = Arc::new(Conn {
            orig: *tuple,
            reply,
            nat: nat_flag,
            tp,
            alg: helper,
            ext,
            st: std::sync::Mutex::new(st),
        });
        let ctl = (helper != 0).then(|| c.clone());
        if !self.table.insert(c, h) {
            // Another thread committed the same tuple meanwhile.
            self.release(args.zone);
            return res;
        }
        res.mark = mark;
        res.label = label;
        if let Some(c) = ctl {
            self.alg_ctl(pkt, tuple, &c, false, args.nat.is_some(), &mut res);
        }
        if nat_flag != 0 {
            res.state |= nat_bits(nat_flag);
            let partial = pkt.partial_l4_csum;
            nat::rewrite(pkt.frame(), tuple, &reply.reverse(), partial);
        }
        res
    }

    /// The ALG's look at a packet of control connection `c` (tuple `t`,
    /// direction `reply`): announcements become expectations; an FTP
    /// announcement that does not parse, or names another host, makes the
    /// packet `+inv` (added to its state, as OVS does). Under `nat` (the
    /// `ct` action has one), the FTP helper rewrites the announced address
    /// and shifts sequence numbers (`alg_nat`); the L4 checksum is redone
    /// before the caller's header NAT, which updates it incrementally.
    fn alg_ctl(
        &self,
        pkt: &mut CtPacket<'_>,
        t: &Tuple,
        c: &Conn,
        reply: bool,
        nat: bool,
        res: &mut CtResult,
    ) {
        let Some(ctl) = alg::ctl_type(t) else {
            return;
        };
        if Alg::from_code(c.alg).is_none() {
            return;
        }
        let mut lay = *pkt.layout;
        let mut delta = 0;
        let mut touched = false;
        let ends = match ctl {
            Alg::Tftp => Some(alg::endpoints(&c.orig, &c.reply, reply, c.orig.sport)),
            Alg::Ftp => {
                let Some(l4) = lay.l4_ofs.map(usize::from) else {
                    return;
                };
                let payload = alg::tcp_payload(pkt.frame(), l4, lay.l3_end as usize);
                let start = lay.l3_end as usize - payload.len();
                let msg = if payload.is_empty() {
                    alg::FtpMsg::Other
                } else {
                    alg::parse_ftp(payload, t.ipv6)
                };
                let ends = match alg::ftp_expectation(msg, &c.orig, &c.reply, reply) {
                    Ok(e) => e,
                    Err(()) => {
                        self.invalid.fetch_add(1, Ordering::Relaxed);
                        res.state |= CtState::TRK | CtState::INV;
                        return;
                    }
                };
                // The address the receiver must see: the client's as the
                // server knows it, the server's as the client knows it.
                let target = match msg {
                    alg::FtpMsg::Active { at, .. } => Some((at, c.reply.dst_ip())),
                    alg::FtpMsg::Passive { at, .. } => Some((at, c.orig.dst_ip())),
                    _ => None,
                };
                if let (true, Some((at, addr))) = (nat, target) {
                    let text = alg_nat::addr_text(addr);
                    let len = &mut pkt.len;
                    match alg_nat::splice(
                        pkt.buf,
                        len,
                        &mut lay,
                        start + at.start,
                        at.len,
                        text.as_bytes(),
                    ) {
                        Ok(d) => {
                            delta = d;
                            touched = true;
                        }
                        Err(_) => {
                            self.alg_rewrite_refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                if let (true, Some(x)) = (nat, c.ext.as_deref()) {
                    let seq_add = if delta != 0 {
                        x.add_skew(reply, delta)
                    } else {
                        x.skew(reply)
                    };
                    let ack_sub = x.skew(!reply);
                    if seq_add != 0 || ack_sub != 0 {
                        alg_nat::shift_seq(pkt.frame(), l4, seq_add, ack_sub);
                        touched = true;
                    }
                }
                ends
            }
        };
        if touched {
            let partial = pkt.partial_l4_csum;
            alg_nat::finish_l4_checksum(pkt.frame(), &lay, partial);
        }
        if let Some((src, dst, dport)) = ends {
            let (mark, label) = {
                let st = c.lock();
                (st.mark, st.label())
            };
            let dnat = c.nat & nat::NAT_DST != 0;
            let (nat_rpl_dst, nat_addr) = alg::expected_nat(&c.orig, &c.reply, reply, dnat);
            let e = alg::Expectation {
                parent: c.orig,
                mark,
                label,
                nat_rpl_dst,
                nat_addr,
            };
            if !self.expect.add(src, dst, dport, e) {
                self.expect_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn related(
        &self,
        pkt: &mut CtPacket<'_>,
        args: &CtArgs,
        inner: &Tuple,
        inner_l3: usize,
        inner_l4: usize,
        now: u64,
    ) -> CtResult {
        let key = inner.reverse();
        let hit = self.table.visit(&key, |c, reply| {
            let st = c.lock();
            if st.dead || st.expiration <= now {
                return None;
            }
            let mut state = CtState::TRK | CtState::REL;
            if reply {
                state |= CtState::RPL;
            }
            let mut rewrite = None;
            if args.nat.is_some() && c.nat != 0 {
                state |= nat_bits(c.nat);
                rewrite = Some(if reply { c.orig } else { c.reply });
            }
            Some((
                CtResult {
                    state,
                    zone: args.zone,
                    mark: st.mark,
                    label: st.label(),
                    orig: Some(c.orig),
                },
                rewrite,
            ))
        });
        match hit.flatten() {
            Some((res, rewrite)) => {
                if let Some(to) = rewrite {
                    let lay = pkt.layout;
                    nat::rewrite_icmp_error(pkt.frame(), lay, inner_l3, inner_l4, inner, &to);
                }
                res
            }
            None => self.invalid(args.zone),
        }
    }

    /// Counts a new connection against the global and zone limits.
    fn reserve(&self, zone: u16) -> bool {
        let max = self.max_conns.load(Ordering::Relaxed);
        if self.nconns.fetch_add(1, Ordering::Relaxed) >= max {
            self.nconns.fetch_sub(1, Ordering::Relaxed);
            self.refused_full.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let limit = self.zone_limit(zone).unwrap_or(0);
        let zc = &self.zone_counts[usize::from(zone)];
        if zc.fetch_add(1, Ordering::Relaxed) >= limit && limit != 0 {
            zc.fetch_sub(1, Ordering::Relaxed);
            self.nconns.fetch_sub(1, Ordering::Relaxed);
            self.refused_zone_limit.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn release(&self, zone: u16) {
        self.nconns.fetch_sub(1, Ordering::Relaxed);
        self.zone_counts[usize::from(zone)].fetch_sub(1, Ordering::Relaxed);
    }

    fn remove(&self, c: &Arc<Conn>) -> bool {
        let removed = self.table.remove(c);
        if removed {
            self.release(c.orig.zone);
            if c.alg != 0 {
                self.expect.remove_parent(&c.orig);
            }
        }
        removed
    }

    /// Expectations the ALGs hold (data connections announced on control
    /// connections and not yet gone with them).
    pub fn n_expectations(&self) -> usize {
        self.expect.len()
    }

    /// Removes connections expired at `now_ms`; returns how many.
    pub fn sweep(&self, now_ms: u64) -> usize {
        (0..self.table.n_shards())
            .map(|i| self.sweep_shard(i, now_ms))
            .sum()
    }

    /// Removes the expired connections of shard `shard` only, so a sweeper
    /// can spread the work and hold each lock briefly.
    pub fn sweep_shard(&self, shard: usize, now_ms: u64) -> usize {
        let mut expired = Vec::new();
        self.table
            .select_in(shard, &mut |c| c.lock().expiration <= now_ms, &mut expired);
        expired.iter().filter(|c| self.remove(c)).count()
    }

    /// Number of lock shards (for [`Conntrack::sweep_shard`]).
    pub fn n_shards(&self) -> usize {
        self.table.n_shards()
    }

    /// `dpctl/flush-conntrack`: removes the connections `filter` selects;
    /// returns how many.
    pub fn flush(&self, filter: &FlushFilter) -> usize {
        let victims = self.table.select(|c| {
            filter.zone.is_none_or(|z| c.orig.zone == z)
                && filter.tuple.is_none_or(|t| c.orig == t || c.reply == t)
        });
        victims.iter().filter(|c| self.remove(c)).count()
    }

    /// `dpctl/dump-conntrack [zone=N]`: a snapshot of the connections.
    pub fn dump(&self, zone: Option<u16>) -> Vec<CtEntry> {
        self.table
            .select(|c| zone.is_none_or(|z| c.orig.zone == z))
            .iter()
            .map(|c| CtEntry::of(c))
            .collect()
    }

    /// `dpctl/ct-stats-show [zone=N]`: connection counts by protocol.
    pub fn stats(&self, zone: Option<u16>) -> CtStats {
        let mut s = CtStats::default();
        for e in self.dump(zone) {
            s.add(&e);
        }
        s
    }

    /// `dpctl/ct-get-nconns`.
    pub fn nconns(&self) -> u32 {
        self.nconns.load(Ordering::Relaxed)
    }

    /// `dpctl/ct-get-maxconns`.
    pub fn max_conns(&self) -> u32 {
        self.max_conns.load(Ordering::Relaxed)
    }

    /// `dpctl/ct-set-maxconns`. Existing connections stay; new commits are
    /// refused while the table holds at least `n`.
    pub fn set_max_conns(&self, n: u32) {
        self.max_conns.store(n, Ordering::Relaxed);
    }

    /// `dpctl/ct-set-limits zone=N,limit=M`: `None` returns the zone to
    /// the default limit; `Some(0)` is unlimited.
    pub fn set_zone_limit(&self, zone: u16, limit: Option<u32>) {
        self.zone_limits[usize::from(zone)].store(limit.unwrap_or(u32::MAX), Ordering::Relaxed);
    }

    /// `dpctl/ct-set-limits default=M` (0 is unlimited).
    pub fn set_default_zone_limit(&self, limit: u32) {
        self.default_zone_limit.store(limit, Ordering::Relaxed);
    }

    /// The default zone limit (0 is unlimited), for `dpctl/ct-get-limits`.
    pub fn default_zone_limit(&self) -> u32 {
        self.default_zone_limit.load(Ordering::Relaxed)
    }

    /// The limit applying to `zone` (0 unlimited); `None` for none set.
    pub fn zone_limit(&self, zone: u16) -> Option<u32> {
        match self.zone_limits[usize::from(zone)].load(Ordering::Relaxed) {
            u32::MAX => match self.default_zone_limit.load(Ordering::Relaxed) {
                0 => None,
                d => Some(d),
            },
            l => Some(l),
        }
    }

    /// Connections in `zone` (`dpctl/ct-get-limits` "count").
    pub fn zone_count(&self, zone: u16) -> u32 {
        self.zone_counts[usize::from(zone)].load(Ordering::Relaxed)
    }

    /// `dpctl/ct-enable-tcp-seq-chk` / `ct-disable-tcp-seq-chk`.
    pub fn set_tcp_seq_check(&self, on: bool) {
        self.tcp_seq_check.store(on, Ordering::Relaxed);
    }

    /// Whether TCP sequence checking is on.
    pub fn tcp_seq_check(&self) -> bool {
        self.tcp_seq_check.load(Ordering::Relaxed)
    }

    /// Defines timeout policy `id` (from `CT_Timeout_Policy`); new and
    /// refreshed connections of zones using it take its timeouts.
    pub fn set_timeout_policy(&self, id: usize, p: &TimeoutPolicy) -> Result<(), PolicyError> {
        self.policies.set(id, p)
    }

    /// Makes `zone` use timeout policy `id` for new connections (0 is the
    /// default policy).
    pub fn set_zone_timeout_policy(&self, zone: u16, id: usize) -> Result<(), PolicyError> {
        self.policies.set_zone(zone, id)
    }

    /// The timeout policy id (0: the defaults) connections committed in
    /// `zone` now take. OVS names it in the datapath `ct` action of a
    /// commit as `timeout=ID` (see [`timeout_policy_covers`]).
    pub fn zone_timeout_policy(&self, zone: u16) -> u8 {
        self.policies.zone_policy(zone)
    }

    /// Event counters.
    pub fn counters(&self) -> CtCounters {
        CtCounters {
            refused_full: self.refused_full.load(Ordering::Relaxed),
            refused_zone_limit: self.refused_zone_limit.load(Ordering::Relaxed),
            nat_exhausted: self.nat_exhausted.load(Ordering::Relaxed),
            invalid: self.invalid.load(Ordering::Relaxed),
            expect_full: self.expect_full.load(Ordering::Relaxed),
            alg_rewrite_refused: self.alg_rewrite_refused.load(Ordering::Relaxed),
        }
    }

    /// Memory held for connections.
    pub fn memory(&self) -> CtMemory {
        let conns = u64::from(self.nconns());
        CtMemory {
            conns,
            entry_bytes: conns as usize
                * (std::mem::size_of::<Conn>() + 2 * std::mem::size_of::<usize>()),
            index_bytes: self.table.index_bytes(),
        }
    }

    /// Forgets every connection.
    pub fn clear(&self) -> usize {
        self.flush(&FlushFilter::default())
    }
}

/// Whether timeout policies apply to IP protocol `nw_proto` (TCP, UDP,
/// ICMP, ICMPv6), as OVS decides whether a `ct` action names one.
pub fn timeout_policy_covers(nw_proto: u8) -> bool {
    matches!(
        nw_proto,
        tuple::proto::TCP | tuple::proto::UDP | tuple::proto::ICMP | tuple::proto::ICMPV6
    )
}

fn nat_bits(flags: u8) -> CtState {
    let mut s = CtState::default();
    if flags & nat::NAT_SRC != 0 {
        s |= CtState::SNAT;
    }
    if flags & nat::NAT_DST != 0 {
        s |= CtState::DNAT;
    }
    s
}

fn apply_marks(st: &mut ConnState, args: &CtArgs) {
    if let Some((v, m)) = args.set_mark {
        st.mark = (st.mark & !m) | (v & m);
    }
    if let Some((v, m)) = args.set_label {
        let l = (st.label() & !m) | (v & m);
        st.set_label(l);
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
