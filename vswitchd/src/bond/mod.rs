//! Bonds: a `Port` with several `Interface`s, as Open vSwitch configures
//! them (`bond_mode`, `lacp`, `bond_updelay`, `bond_downdelay`,
//! `other_config:lacp-time`, `other_config:bond-rebalance-interval`, ...).
//!
//! Every member keeps its own OpenFlow and datapath port; NORMAL treats the
//! members as one port through the [`flows::bond::BondView`] this module
//! publishes into the bridge. This module owns what changes with time: the
//! members' carrier, their up/down delays, LACP ([`lacp`]), the active
//! member. The `bond` thread runs [`Bonds::run`] every 100 ms; LACPDUs
//! reach it from the slow path ([`Bonds::receive`]) and leave through the
//! datapath's packet-out path.

pub mod appctl;
pub mod lacp;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datapath::{Datapath, Packet, Port};
use flows::Match;
use flows::bond::{BondMode, BondView, LacpStatus};
use flows::{DpAction, DpPortNo, PortNo};
use tracing::{info, warn};
use wire::MacAddr;

use crate::ofproto::SlowPath;
use lacp::Lacp;

/// `Port.lacp`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum LacpMode {
    #[default]
    Off,
    Active,
    Passive,
}

/// A bond's settings from its `Port` row.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BondSettings {
    pub mode: BondMode,
    pub lacp: LacpMode,
    /// `other_config:lacp-time=fast`.
    pub fast: bool,
    pub updelay_ms: u64,
    pub downdelay_ms: u64,
    /// `other_config:bond-rebalance-interval` (ms, default 10 000; 0 = never).
    pub rebalance_ms: u64,
    /// `other_config:lacp-system-priority` (default 65534 as in OVS).
    pub sys_priority: u16,
    /// `other_config:lacp-system-id`.
    pub sys_id: Option<[u8; 6]>,
    /// `other_config:lacp-aggregation-key`.
    pub key: Option<u16>,
}

impl Default for BondSettings {
    fn default() -> Self {
        BondSettings {
            mode: BondMode::ActiveBackup,
            lacp: LacpMode::Off,
            fast: false,
            updelay_ms: 0,
            downdelay_ms: 0,
            rebalance_ms: 10_000,
            sys_priority: 65534,
            sys_id: None,
            key: None,
        }
    }
}

impl BondSettings {
    /// Reads the bond columns of port `port`; a value that makes no sense
    /// is an error naming it.
    pub fn parse(
        port: &str,
        bond_mode: Option<&str>,
        lacp: Option<&str>,
        updelay: Option<i64>,
        downdelay: Option<i64>,
        other: &BTreeMap<String, String>,
    ) -> Result<BondSettings, String> {
        let mut s = BondSettings::default();
        if let Some(m) = bond_mode {
            s.mode =
                BondMode::parse(m).ok_or_else(|| format!("port {port}: unknown bond_mode {m}"))?;
        }
        s.lacp = match lacp {
            None | Some("off") => LacpMode::Off,
            Some("active") => LacpMode::Active,
            Some("passive") => LacpMode::Passive,
            Some(other) => return Err(format!("port {port}: unknown LACP mode {other}")),
        };
        let ms = |v: Option<i64>, what: &str| -> Result<u64, String> {
            v.map_or(Ok(0), |v| {
                u64::try_from(v).map_err(|_| format!("port {port}: {what} {v} is negative"))
            })
        };
        s.updelay_ms = ms(updelay, "bond_updelay")?;
        s.downdelay_ms = ms(downdelay, "bond_downdelay")?;
        if let Some(t) = other.get("lacp-time") {
            s.fast = match t.as_str() {
                "fast" => true,
                "slow" => false,
                _ => return Err(format!("port {port}: lacp-time {t} is not fast or slow")),
            };
        }
        if let Some(v) = other.get("bond-rebalance-interval") {
            s.rebalance_ms = v
                .parse()
                .map_err(|_| format!("port {port}: bond-rebalance-interval {v} is not a number"))?;
        }
        if let Some(v) = other.get("lacp-system-priority") {
            s.sys_priority = v
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("port {port}: lacp-system-priority {v} out of range"))?;
        }
        if let Some(v) = other.get("lacp-system-id") {
            let mac: MacAddr = v
                .parse()
                .map_err(|_| format!("port {port}: lacp-system-id {v} is not a MAC address"))?;
            s.sys_id = Some(mac.0);
        }
        if let Some(v) = other.get("lacp-aggregation-key") {
            s.key = Some(
                v.parse()
                    .map_err(|_| format!("port {port}: lacp-aggregation-key {v} out of range"))?,
            );
        }
        Ok(s)
    }
}

/// One member, as the switch opened it.
pub struct MemberSpec {
    pub ofport: PortNo,
    pub name: String,
    pub dp_port: DpPortNo,
    pub port: Arc<dyn Port>,
    /// `other_config:lacp-port-id` / `lacp-port-priority` of the interface
    /// are not read: the OpenFlow port and 65535, as OVS defaults them.
    pub mac: [u8; 6],
}

/// One bond to run: its bridge, settings and open members.
pub struct BondSpec {
    pub bridge: String,
    pub name: String,
    pub settings: BondSettings,
    /// The LACP system id when not configured: the bridge's MAC.
    pub bridge_mac: [u8; 6],
    pub members: Vec<MemberSpec>,
}

struct MemberRt {
    name: String,
    dp_port: DpPortNo,
    port: Arc<dyn Port>,
    mac: [u8; 6],
    carrier: bool,
    may_enable: bool,
    enabled: bool,
    /// When a pending up/down change takes effect.
    delay_expires: Option<u64>,
}

struct BondRt {
    bridge: String,
    name: String,
    settings: BondSettings,
    members: BTreeMap<PortNo, MemberRt>,
    lacp: Option<Lacp>,
    active: Option<PortNo>,
    next_rebalance: u64,
    published: Option<BondView>,
    /// Balanced modes: the member of each hash bucket (empty otherwise).
    buckets: Vec<PortNo>,
    /// Bytes sent recently per bucket (halved after every rebalancing).
    tx_bytes: Vec<u64>,
    /// The enabled members `buckets` was spread over.
    spread_over: Vec<PortNo>,
}

impl BondRt {
    fn lacp_status(&self) -> LacpStatus {
        match &self.lacp {
            None => LacpStatus::Off,
            Some(l) if l.negotiated() => LacpStatus::Negotiated,
            Some(_) => LacpStatus::Configured,
        }
    }

    fn view(&self) -> BondView {
        BondView {
            name: self.name.clone(),
            mode: self.settings.mode,
            members: self.members.keys().copied().collect(),
            enabled: self
                .members
                .iter()
                .filter(|(_, m)| m.enabled)
                .map(|(id, _)| *id)
                .collect(),
            active: self.active,
            lacp: self.lacp_status(),
            buckets: self.buckets.clone(),
        }
    }

    fn balanced(&self) -> bool {
        self.settings.mode != BondMode::ActiveBackup
    }

    /// Spreads the buckets evenly over the enabled members when that set
    /// changed (and forgets any rebalancing: the loads are measured again).
    fn spread_buckets(&mut self) {
        if !self.balanced() {
            self.buckets.clear();
            self.tx_bytes.clear();
            self.spread_over.clear();
            return;
        }
        let enabled: Vec<PortNo> = self
            .members
            .iter()
            .filter(|(_, m)| m.enabled)
            .map(|(id, _)| *id)
            .collect();
        if self.tx_bytes.len() != BUCKETS {
            self.tx_bytes = vec![0; BUCKETS];
        }
        if enabled == self.spread_over && self.buckets.len() == BUCKETS {
            return;
        }
        self.buckets = if enabled.is_empty() {
            Vec::new()
        } else {
            (0..BUCKETS).map(|b| enabled[b % enabled.len()]).collect()
        };
        self.spread_over = enabled;
    }

    /// Moves hash buckets from the most to the least loaded enabled member
    /// while that evens them out, as Open vSwitch's bond rebalancing does:
    /// nothing moves when the two differ by less than 100 kB or ~3 %; from
    /// the heavier member, buckets (heaviest first) whose load fits in half
    /// the difference move, or else its lightest one, and only if that
    /// brings the lighter member at least 10 % closer to the midpoint; a
    /// member with a single loaded bucket keeps it. Afterwards every
    /// bucket's load is halved (a moving average over the intervals).
    /// Returns the moves as (bucket, from, to).
    fn rebalance(&mut self) -> Vec<(usize, PortNo, PortNo)> {
        let mut moves = Vec::new();
        if !self.balanced() || self.buckets.len() != BUCKETS {
            return moves;
        }
        // Per enabled member: its load and its loaded buckets, heaviest first.
        let mut bals: Vec<(PortNo, u64, Vec<usize>)> = self
            .members
            .iter()
            .filter(|(_, m)| m.enabled)
            .map(|(id, _)| (*id, 0, Vec::new()))
            .collect();
        let mut order: Vec<usize> = (0..BUCKETS).filter(|&b| self.tx_bytes[b] > 0).collect();
        order.sort_by(|a, b| self.tx_bytes[*b].cmp(&self.tx_bytes[*a]).then(a.cmp(b)));
        for b in order {
            if let Some(e) = bals.iter_mut().find(|e| e.0 == self.buckets[b]) {
                e.1 += self.tx_bytes[b];
                e.2.push(b);
            }
        }
        while bals.len() > 1 {
            bals.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let last = bals.len() - 1;
            let (from_load, to_load) = (bals[0].1, bals[last].1);
            let overload = from_load - to_load;
            if overload < to_load >> 5 || overload < 100_000 {
                break;
            }
            let chosen = choose_buckets(&bals[0].2, &self.tx_bytes, from_load, to_load);
            if chosen.is_empty() {
                bals.remove(0);
                continue;
            }
            let to = bals[last].0;
            for b in chosen {
                let load = self.tx_bytes[b];
                moves.push((b, bals[0].0, to));
                self.buckets[b] = to;
                bals[0].1 -= load;
                bals[0].2.retain(|x| *x != b);
                // Not added to `to`'s list: a bucket moves once per run.
                bals[last].1 += load;
            }
        }
        for t in &mut self.tx_bytes {
            *t /= 2;
        }
        for (b, from, to) in &moves {
            let name = |id: &PortNo| self.members.get(id).map_or("?", |m| m.name.as_str());
            info!(bond = %self.name, "shift hash {b} ({} kB) from {} to {}",
                self.tx_bytes[*b] * 2 / 1024, name(from), name(to));
        }
        moves
    }

    /// One step of the timers at `now`; returns the LACPDUs to send as
    /// (datapath port, frame).
    fn run(&mut self, now: u64) -> Vec<(DpPortNo, Vec<u8>)> {
        let mut out = Vec::new();
        for (id, m) in &mut self.members {
            let carrier = m.port.link_up();
            if carrier != m.carrier {
                m.carrier = carrier;
                info!(bond = %self.name, "member {}: carrier {}", m.name, if carrier { "up" } else { "down" });
                if let Some(l) = &mut self.lacp {
                    l.carrier_changed(*id, now);
                }
            }
        }
        if let Some(l) = &mut self.lacp {
            for (id, pdu) in l.run(now) {
                if let Some(m) = self.members.get(&id)
                    && m.carrier
                {
                    out.push((m.dp_port, pdu.encode(m.mac)));
                }
            }
        }
        for (id, m) in &mut self.members {
            m.may_enable = self.lacp.as_ref().is_none_or(|l| l.may_enable(*id));
            let up = m.carrier && m.may_enable;
            if (up == m.enabled) != m.delay_expires.is_none() {
                if up == m.enabled {
                    m.delay_expires = None;
                } else {
                    let delay = if up {
                        self.settings.updelay_ms
                    } else {
                        self.settings.downdelay_ms
                    };
                    info!(bond = %self.name, "member {}: link state {}, {} in {delay} ms",
                        m.name, if up { "up" } else { "down" }, if up { "enabling" } else { "disabling" });
                    m.delay_expires = Some(now + delay);
                }
            }
            if m.delay_expires.is_some_and(|d| now >= d) {
                m.delay_expires = None;
                if m.enabled != up {
                    m.enabled = up;
                    info!(bond = %self.name, "member {}: {}", m.name, if up { "enabled" } else { "disabled" });
                }
            }
        }
        self.choose_active(now);
        self.spread_buckets();
        if now >= self.next_rebalance && self.settings.rebalance_ms > 0 {
            self.next_rebalance = now + self.settings.rebalance_ms;
            self.rebalance();
        }
        out
    }

    /// Adds `bytes` sent in hash bucket `bucket`.
    fn account(&mut self, bucket: usize, bytes: u64) {
        if let Some(t) = self.tx_bytes.get_mut(bucket) {
            *t = t.saturating_add(bytes);
        }
    }

    /// Keeps the active member while it is enabled; otherwise takes the
    /// first enabled one, or, when none is, the one whose updelay ends
    /// first (enabled at once, as OVS does).
    fn choose_active(&mut self, _now: u64) {
        if self
            .active
            .is_some_and(|a| self.members.get(&a).is_some_and(|m| m.enabled))
        {
            return;
        }
        let mut next = self
            .members
            .iter()
            .find(|(_, m)| m.enabled)
            .map(|(id, _)| *id);
        if next.is_none() {
            next = self
                .members
                .iter()
                .filter(|(_, m)| m.delay_expires.is_some() && m.may_enable && m.carrier)
                .min_by_key(|(_, m)| m.delay_expires)
                .map(|(id, _)| *id);
            if let Some(id) = next
                && let Some(m) = self.members.get_mut(&id)
            {
                info!(bond = %self.name, "member {}: enabled, skipping the rest of its updelay (no member was enabled)", m.name);
                m.enabled = true;
                m.delay_expires = None;
            }
        }
        if next != self.active {
            match next.and_then(|id| self.members.get(&id)) {
                Some(m) => info!(bond = %self.name, "active member is now {}", m.name),
                None => warn!(bond = %self.name, "all members disabled"),
            }
            self.active = next;
        }
    }

    /// `bond/show` for this bond, in Open vSwitch's layout.
    fn show(&self, now: u64) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "---- {} ----", self.name);
        let _ = writeln!(s, "bond_mode: {}", self.settings.mode.as_str());
        let _ = writeln!(s, "bond may use recirculation: no, Recirc-ID : -1");
        let _ = writeln!(s, "bond-hash-basis: 0");
        let _ = writeln!(s, "lb_output action: disabled, bond-id: -1");
        if self.settings.mode == BondMode::BalanceSlb {
            // `other_config:all-members-active` is not supported.
            let _ = writeln!(s, "all members active: false");
        }
        let _ = writeln!(s, "updelay: {} ms", self.settings.updelay_ms);
        let _ = writeln!(s, "downdelay: {} ms", self.settings.downdelay_ms);
        if self.settings.mode != BondMode::ActiveBackup {
            let _ = writeln!(
                s,
                "next rebalance: {} ms",
                self.next_rebalance.saturating_sub(now)
            );
        }
        let lacp = match self.lacp_status() {
            LacpStatus::Negotiated => "negotiated",
            LacpStatus::Configured => "configured",
            LacpStatus::Off => "off",
        };
        let _ = writeln!(s, "lacp_status: {lacp}");
        let _ = writeln!(s, "lacp_fallback_ab: false");
        let _ = writeln!(s, "active-backup primary: <none>");
        let active = self.active.and_then(|a| self.members.get(&a));
        let _ = writeln!(
            s,
            "active member mac: {}({})",
            MacAddr(active.map_or([0; 6], |m| m.mac)),
            active.map_or("none", |m| m.name.as_str())
        );
        let mut by_name: Vec<(&str, PortNo)> = self
            .members
            .iter()
            .map(|(id, m)| (m.name.as_str(), *id))
            .collect();
        by_name.sort();
        for (name, id) in by_name {
            let m = &self.members[&id];
            let _ = writeln!(
                s,
                "\nmember {name}: {}",
                if m.enabled { "enabled" } else { "disabled" }
            );
            if self.active == Some(id) {
                let _ = writeln!(s, "  active member");
            }
            if let Some(d) = m.delay_expires {
                let _ = writeln!(
                    s,
                    "  {} expires in {} ms",
                    if m.enabled { "downdelay" } else { "updelay" },
                    d.saturating_sub(now)
                );
            }
            let _ = writeln!(s, "  may_enable: {}", m.may_enable && m.carrier);
            for (b, member) in self.buckets.iter().enumerate() {
                let kb = self.tx_bytes.get(b).copied().unwrap_or(0) / 1024;
                if *member == id && kb > 0 {
                    let _ = writeln!(s, "  hash {b}: {kb} kB load");
                }
            }
        }
        s.push('\n');
        s
    }
}

/// Hash buckets per balanced bond.
const BUCKETS: usize = flows::bond::BUCKETS as usize;
/// How often the datapath flows' byte counters are read into the buckets'
/// loads (as often as OVS's revalidators dump the flows).
const ACCOUNT_MS: u64 = 500;

#[derive(Default)]
struct Inner {
    /// By bond (port) name.
    bonds: BTreeMap<String, BondRt>,
    /// What was accounted of each megaflow that sends to a balanced bond
    /// (per PMD and installation): the next accounting adds only the rest.
    flow_bytes: HashMap<Match, crate::megaflow_credit::Credited>,
    next_account: u64,
    /// Member datapath port → bond name, member OpenFlow port.
    by_dp: HashMap<DpPortNo, (String, PortNo)>,
    /// Bridges whose bonds must be published again.
    dirty: BTreeSet<String>,
}

/// Every bond of the switch.
#[derive(Default)]
pub struct Bonds {
    inner: Mutex<Inner>,
}

impl Bonds {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the running bonds those of `specs` (after the reconciler
    /// applied a configuration). Bonds and members that stay keep their
    /// LACP and delay state.
    pub fn configure(&self, specs: Vec<BondSpec>, now: u64) {
        let mut g = self.lock();
        let inner = &mut *g;
        let wanted: BTreeSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let gone: Vec<String> = inner
            .bonds
            .keys()
            .filter(|n| !wanted.contains(n.as_str()))
            .cloned()
            .collect();
        for n in gone {
            if let Some(b) = inner.bonds.remove(&n) {
                info!(bond = %n, "bond removed");
                inner.dirty.insert(b.bridge);
            }
        }
        inner.by_dp.clear();
        for spec in specs {
            let fresh = inner.bonds.get(&spec.name).is_none_or(|b| {
                b.bridge != spec.bridge
                    || (b.lacp.is_some() != (spec.settings.lacp != LacpMode::Off))
            });
            if fresh {
                info!(bond = %spec.name, bridge = %spec.bridge, "bond created ({})", spec.settings.mode.as_str());
                inner.bonds.insert(
                    spec.name.clone(),
                    BondRt {
                        bridge: spec.bridge.clone(),
                        name: spec.name.clone(),
                        settings: spec.settings.clone(),
                        members: BTreeMap::new(),
                        lacp: None,
                        active: None,
                        next_rebalance: now + spec.settings.rebalance_ms,
                        published: None,
                        buckets: Vec::new(),
                        tx_bytes: Vec::new(),
                        spread_over: Vec::new(),
                    },
                );
            }
            let b = inner.bonds.get_mut(&spec.name).expect("inserted");
            b.settings = spec.settings.clone();
            let s = &spec.settings;
            if s.lacp == LacpMode::Off {
                b.lacp = None;
            } else {
                let sys_id = s.sys_id.unwrap_or(spec.bridge_mac);
                let l = b.lacp.get_or_insert_with(|| {
                    Lacp::new(
                        &spec.name,
                        s.lacp == LacpMode::Active,
                        s.fast,
                        sys_id,
                        s.sys_priority,
                    )
                });
                l.active = s.lacp == LacpMode::Active;
                l.fast = s.fast;
                l.sys_id = sys_id;
                l.sys_priority = s.sys_priority;
                l.key = s.key;
            }
            let ids: BTreeSet<PortNo> = spec.members.iter().map(|m| m.ofport).collect();
            let old: Vec<PortNo> = b.members.keys().copied().collect();
            for id in old {
                if !ids.contains(&id) {
                    b.members.remove(&id);
                    if let Some(l) = &mut b.lacp {
                        l.remove_member(id);
                    }
                }
            }
            for m in spec.members {
                inner.by_dp.insert(m.dp_port, (spec.name.clone(), m.ofport));
                if let Some(l) = &mut b.lacp {
                    l.add_member(m.ofport, &m.name, m.ofport.min(0xffff) as u16, 65535);
                }
                let same = b
                    .members
                    .get(&m.ofport)
                    .is_some_and(|r| r.dp_port == m.dp_port && r.name == m.name);
                if !same {
                    b.members.insert(
                        m.ofport,
                        MemberRt {
                            name: m.name,
                            dp_port: m.dp_port,
                            port: m.port,
                            mac: m.mac,
                            carrier: false,
                            may_enable: false,
                            enabled: false,
                            delay_expires: None,
                        },
                    );
                }
            }
            inner.dirty.insert(spec.bridge);
        }
    }

    /// Hands a slow-protocols frame received on datapath port `dp` to its
    /// bond's LACP. False when `dp` is not a member of a bond running LACP
    /// (the caller then treats the frame as any other).
    pub fn receive(&self, dp: DpPortNo, frame: &[u8], now: u64) -> bool {
        let mut g = self.lock();
        let inner = &mut *g;
        let Some((bond, id)) = inner.by_dp.get(&dp).cloned() else {
            return false;
        };
        let Some(l) = inner.bonds.get_mut(&bond).and_then(|b| b.lacp.as_mut()) else {
            return false;
        };
        if let Err(e) = l.receive(id, frame, now) {
            warn!(bond = %bond, "unparsable LACPDU on member port {id}: {e}");
        }
        true
    }

    /// One pass of every bond's timers: sends due LACPDUs and publishes
    /// changed member states to the bridges (then drops the cached
    /// decisions that depended on them).
    pub fn run(&self, sp: &SlowPath, dp: &Datapath) {
        let now = sp.now_ms();
        self.account_loads(sp, dp, now);
        let mut send = Vec::new();
        let mut publish: BTreeMap<String, Vec<BondView>> = BTreeMap::new();
        {
            let mut g = self.lock();
            let inner = &mut *g;
            let mut dirty = std::mem::take(&mut inner.dirty);
            for b in inner.bonds.values_mut() {
                send.extend(b.run(now));
                let v = b.view();
                if b.published.as_ref() != Some(&v) {
                    b.published = Some(v);
                    dirty.insert(b.bridge.clone());
                }
            }
            for br in dirty {
                let views = inner
                    .bonds
                    .values()
                    .filter(|b| b.bridge == br)
                    .map(|b| b.view())
                    .collect();
                publish.insert(br, views);
            }
        }
        for (dp_port, frame) in send {
            dp.execute(Packet::from_bytes(&frame), vec![DpAction::Output(dp_port)]);
        }
        if !publish.is_empty() {
            for (br, views) in publish {
                if let Some(ofp) = sp.bridge(&br) {
                    ofp.lock().ports.set_bonds(views);
                }
            }
            sp.request_flush_all();
        }
    }

    /// Reads the datapath flows' byte counters into the hash buckets of the
    /// balanced bonds they send to (every [`ACCOUNT_MS`]): a megaflow's
    /// match holds every field the bucket's hash read, and its input port's
    /// VLAN configuration gives the VLAN NORMAL hashed with.
    fn account_loads(&self, sp: &SlowPath, dp: &Datapath, now: u64) {
        let (bridges, by_dp, mut old) = {
            let mut g = self.lock();
            if now < g.next_account {
                return;
            }
            g.next_account = now + ACCOUNT_MS;
            let bridges: BTreeSet<String> = g
                .bonds
                .values()
                .filter(|b| b.balanced() && b.settings.rebalance_ms > 0)
                .map(|b| b.bridge.clone())
                .collect();
            if bridges.is_empty() {
                g.flow_bytes.clear();
                return;
            }
            (bridges, g.by_dp.clone(), std::mem::take(&mut g.flow_bytes))
        };
        let ports: Vec<flows::xlate::BridgePorts> = bridges
            .iter()
            .filter_map(|br| sp.bridge(br).map(|o| o.lock().ports.clone()))
            .collect();
        let mut seen = HashMap::new();
        // (bond, megaflow key, NORMAL's VLAN, new bytes)
        let mut sent: Vec<(String, flows::FlowKey, u16, u64)> = Vec::new();
        for f in dp.dump_flows() {
            let mut bonds_hit: Vec<&String> = Vec::new();
            for a in &f.actions {
                if let DpAction::Output(p) = a
                    && let Some((bond, _)) = by_dp.get(p)
                    && !bonds_hit.contains(&bond)
                {
                    bonds_hit.push(bond);
                }
            }
            if bonds_hit.is_empty() {
                continue;
            }
            let key = f.m.key;
            let vlan = ports
                .iter()
                .find_map(|pp| pp.ofport_of(key.in_port).and_then(|o| pp.get(o)))
                .and_then(|p| p.vlan.input_vlan(key.vlan_tci))
                .unwrap_or(0);
            let (_, new) = seen
                .entry(f.m)
                .or_insert_with(|| old.remove(&f.m).unwrap_or_default())
                .take(&f);
            if new > 0 {
                for bond in bonds_hit {
                    sent.push((bond.clone(), key, vlan, new));
                }
            }
        }
        let mut g = self.lock();
        g.flow_bytes = seen;
        for (bond, key, vlan, bytes) in sent {
            if let Some(b) = g.bonds.get_mut(&bond)
                && let Some(bucket) = flows::bond::bucket(b.settings.mode, &key, vlan)
            {
                b.account(bucket, bytes);
            }
        }
    }

    /// `bond/show [PORT]`.
    pub fn show_bonds(&self, name: Option<&str>, now: u64) -> Result<String, String> {
        let g = self.lock();
        match name {
            Some(n) => g
                .bonds
                .get(n)
                .map(|b| b.show(now))
                .ok_or_else(|| "no such bond".to_string()),
            None => Ok(g.bonds.values().map(|b| b.show(now)).collect()),
        }
    }

    /// `lacp/show [PORT]`.
    pub fn show_lacp(&self, name: Option<&str>) -> Result<String, String> {
        let g = self.lock();
        match name {
            Some(n) => g
                .bonds
                .get(n)
                .and_then(|b| b.lacp.as_ref())
                .map(|l| l.show())
                .ok_or_else(|| "no such lacp object".to_string()),
            None => Ok(g
                .bonds
                .values()
                .filter_map(|b| b.lacp.as_ref().map(|l| l.show()))
                .collect()),
        }
    }

    /// `Interface.lacp_current` of interface `iface`: whether its LACP
    /// partner is known (not defaulted); `None` when it is not a member of
    /// a bond running LACP.
    pub fn lacp_current(&self, iface: &str) -> Option<bool> {
        let g = self.lock();
        g.bonds.values().find_map(|b| {
            let (id, _) = b.members.iter().find(|(_, m)| m.name == iface)?;
            let l = b.lacp.as_ref()?;
            l.status_of(*id).map(|s| s != lacp::MemberStatus::Defaulted)
        })
    }

    /// `bond/hash MAC [VLAN [BASIS]]`: the balance-slb bucket of a source
    /// MAC (this switch's hash; only basis 0, the default, exists here).
    pub fn hash(args: &[String]) -> Result<String, String> {
        let mac: MacAddr = args
            .first()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| "invalid mac".to_string())?;
        let vlan = match args.get(1) {
            None => 0,
            Some(v) => v
                .parse::<u16>()
                .ok()
                .filter(|v| *v < 4096)
                .ok_or_else(|| "invalid vlan".to_string())?,
        };
        match args.get(2).map(|b| b.parse::<u32>()) {
            None | Some(Ok(0)) => {}
            Some(Ok(_)) => return Err("only bond-hash-basis 0 is supported".into()),
            Some(Err(_)) => return Err("invalid basis".into()),
        }
        Ok(format!("{}\n", flows::bond::slb_bucket(mac.0, vlan)))
    }

    /// `bond/list`.
    pub fn list(&self) -> String {
        let g = self.lock();
        let mut s = String::from("bond\ttype\trecircID\tmembers\n");
        for b in g.bonds.values() {
            let names: Vec<&str> = b.members.values().map(|m| m.name.as_str()).collect();
            let _ = writeln!(
                s,
                "{}\t{}\t-1\t{}",
                b.name,
                b.settings.mode.as_str(),
                names.join(", ")
            );
        }
        s
    }
}

/// From `loaded` (the heavier member's loaded buckets, heaviest first), the
/// buckets to move to a member carrying `to_load` bytes; empty when moving
/// would not help enough.
fn choose_buckets(loaded: &[usize], tx_bytes: &[u64], from_load: u64, to_load: u64) -> Vec<usize> {
    if loaded.len() <= 1 {
        return Vec::new();
    }
    let ideal = (from_load - to_load) / 2;
    let threshold = ideal / 10;
    let mut chosen = Vec::new();
    let mut delta = 0u64;
    for &b in loaded {
        if delta + tx_bytes[b] <= ideal {
            chosen.push(b);
            delta += tx_bytes[b];
        }
        if ideal - delta < threshold {
            break;
        }
    }
    if chosen.is_empty() {
        let lightest = loaded[loaded.len() - 1];
        chosen.push(lightest);
        delta = tx_bytes[lightest];
    }
    let new_low = (from_load - delta).min(to_load + delta);
    if new_low > to_load && new_low - to_load >= threshold {
        chosen
    } else {
        Vec::new()
    }
}

/// The `bond` thread: runs the bonds' timers every 100 ms.
pub fn run_thread(sp: Arc<SlowPath>, dp: Arc<Datapath>) {
    loop {
        sp.bonds.run(&sp, &dp);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_columns_parse_into_settings_and_bad_values_are_named() {
        let mut other = BTreeMap::new();
        other.insert("lacp-time".to_string(), "fast".to_string());
        other.insert("bond-rebalance-interval".to_string(), "0".to_string());
        let s = BondSettings::parse(
            "b",
            Some("balance-tcp"),
            Some("active"),
            Some(200),
            None,
            &other,
        )
        .unwrap();
        assert_eq!(s.mode, BondMode::BalanceTcp);
        assert_eq!(s.lacp, LacpMode::Active);
        assert!(s.fast);
        assert_eq!((s.updelay_ms, s.downdelay_ms, s.rebalance_ms), (200, 0, 0));
        let d = BondSettings::parse("b", None, None, None, None, &BTreeMap::new()).unwrap();
        assert_eq!(d, BondSettings::default());
        let e = BondSettings::parse("b", Some("balance-x"), None, None, None, &BTreeMap::new());
        assert_eq!(e.unwrap_err(), "port b: unknown bond_mode balance-x");
        let e = BondSettings::parse("b", None, Some("on"), None, None, &BTreeMap::new());
        assert!(e.unwrap_err().contains("unknown LACP mode on"));
        let e = BondSettings::parse("b", None, None, Some(-1), None, &BTreeMap::new());
        assert!(e.unwrap_err().contains("bond_updelay -1"));
    }

    fn member(ofport: PortNo, name: &str, port: Arc<datapath::DummyPort>) -> MemberSpec {
        MemberSpec {
            ofport,
            name: name.into(),
            dp_port: 100 + ofport,
            port,
            mac: [0, 0, 0, 0, 0, ofport as u8],
        }
    }

    fn ab_bond(updelay: u64) -> (Bonds, Arc<datapath::DummyPort>, Arc<datapath::DummyPort>) {
        let p1 = datapath::DummyPort::new("m1");
        let p2 = datapath::DummyPort::new("m2");
        let bonds = Bonds::default();
        bonds.configure(
            vec![BondSpec {
                bridge: "br0".into(),
                name: "bond0".into(),
                settings: BondSettings {
                    updelay_ms: updelay,
                    ..BondSettings::default()
                },
                bridge_mac: [2, 0, 0, 0, 0, 1],
                members: vec![member(1, "m1", p1.clone()), member(2, "m2", p2.clone())],
            }],
            0,
        );
        (bonds, p1, p2)
    }

    fn step(bonds: &Bonds, now: u64) -> BondView {
        let mut g = bonds.lock();
        let b = g.bonds.get_mut("bond0").unwrap();
        b.run(now);
        b.view()
    }

    #[test]
    fn active_backup_fails_over_when_the_active_link_drops_and_honours_updelay() {
        let (bonds, p1, p2) = ab_bond(500);
        // Both links come up together: no member is enabled, so the first
        // skips its updelay and becomes active; the other waits.
        let v = step(&bonds, 0);
        assert_eq!(v.active, Some(1));
        assert_eq!(v.enabled, vec![1]);
        let v = step(&bonds, 499);
        assert_eq!(v.enabled, vec![1]);
        let v = step(&bonds, 500);
        assert_eq!(v.enabled, vec![1, 2]);
        p1.set_link_up(false);
        let v = step(&bonds, 600);
        assert_eq!(v.active, Some(2), "moved to the other member");
        assert_eq!(v.enabled, vec![2]);
        // The first comes back: it waits out its updelay, and the active
        // member stays where it is.
        p1.set_link_up(true);
        let v = step(&bonds, 700);
        assert_eq!(v.enabled, vec![2]);
        let v = step(&bonds, 1_200);
        assert_eq!((v.active, v.enabled.clone()), (Some(2), vec![1, 2]));
        p2.set_link_up(false);
        p1.set_link_up(false);
        let v = step(&bonds, 1_300);
        assert_eq!((v.active, v.enabled.len()), (None, 0));
        let text = bonds.show_bonds(Some("bond0"), 1_300).unwrap();
        assert!(text.contains("bond_mode: active-backup\n"), "{text}");
        assert!(
            text.contains("\nmember m1: disabled\n  may_enable: false\n"),
            "{text}"
        );
        assert_eq!(
            bonds.show_bonds(Some("nope"), 0).unwrap_err(),
            "no such bond"
        );
    }

    fn slb_bond(rebalance_ms: u64) -> Bonds {
        let bonds = Bonds::default();
        bonds.configure(
            vec![BondSpec {
                bridge: "br0".into(),
                name: "bond0".into(),
                settings: BondSettings {
                    mode: BondMode::BalanceSlb,
                    rebalance_ms,
                    ..BondSettings::default()
                },
                bridge_mac: [2, 0, 0, 0, 0, 1],
                members: vec![
                    member(1, "m1", datapath::DummyPort::new("m1")),
                    member(2, "m2", datapath::DummyPort::new("m2")),
                ],
            }],
            0,
        );
        bonds
    }

    fn account(bonds: &Bonds, bucket: usize, bytes: u64) {
        bonds
            .lock()
            .bonds
            .get_mut("bond0")
            .unwrap()
            .account(bucket, bytes);
    }

    /// A source MAC whose balance-slb bucket is `bucket` modulo 2 == `parity`.
    fn mac_with_parity(parity: usize, skip: usize) -> ([u8; 6], usize) {
        (0u8..=255)
            .map(|i| {
                (
                    [2, 0, 0, 0, 1, i],
                    flows::bond::slb_bucket([2, 0, 0, 0, 1, i], 0),
                )
            })
            .filter(|(_, b)| b % 2 == parity)
            .nth(skip)
            .unwrap()
    }

    #[test]
    fn rebalancing_moves_one_of_two_heavy_buckets_to_the_idle_member() {
        let bonds = slb_bond(10_000);
        let v = step(&bonds, 0);
        assert_eq!(v.enabled, vec![1, 2]);
        // Two sources whose buckets both sit on m1 (even buckets spread to
        // the first enabled member).
        let (mac_a, a) = mac_with_parity(0, 0);
        let (mac_b, b) = mac_with_parity(0, 1);
        assert_ne!(a, b);
        let key = |mac| flows::FlowKey {
            dl_src: mac,
            ..flows::FlowKey::default()
        };
        let mut wc = flows::FlowKey::default();
        assert_eq!(v.select(&key(mac_a), 0, &mut wc), Some(1));
        assert_eq!(v.select(&key(mac_b), 0, &mut wc), Some(1));
        account(&bonds, a, 1_024_000);
        account(&bonds, b, 614_400);
        let text = bonds.show_bonds(Some("bond0"), 100).unwrap();
        assert!(
            text.contains(&format!("  hash {a}: 1000 kB load\n")),
            "{text}"
        );
        assert!(text.contains("next rebalance: 9900 ms\n"), "{text}");
        // Nothing moves before the interval is up.
        let v = step(&bonds, 9_999);
        assert_eq!(v.select(&key(mac_b), 0, &mut wc), Some(1));
        // At the interval: the lighter of the two goes to m2 (the heavier
        // alone would overshoot the midpoint), and the loads decay by half.
        let v = step(&bonds, 10_000);
        assert_eq!(v.select(&key(mac_a), 0, &mut wc), Some(1));
        assert_eq!(v.select(&key(mac_b), 0, &mut wc), Some(2));
        assert_eq!(v.buckets[b], 2);
        let text = bonds.show_bonds(Some("bond0"), 10_000).unwrap();
        let m2 = text.split("member m2").nth(1).unwrap();
        assert!(m2.contains(&format!("  hash {b}: 300 kB load\n")), "{text}");
        let m1 = text.split("member m2").next().unwrap();
        assert!(m1.contains(&format!("  hash {a}: 500 kB load\n")), "{text}");
    }

    #[test]
    fn rebalancing_leaves_a_single_heavy_bucket_and_small_differences_alone() {
        let bonds = slb_bond(1_000);
        step(&bonds, 0);
        let (_, a) = mac_with_parity(0, 0);
        let (_, b) = mac_with_parity(0, 1);
        // One bucket carries everything: moving it only moves the problem.
        account(&bonds, a, 5_000_000);
        let v = step(&bonds, 1_000);
        assert_eq!(v.buckets[a], 1);
        // Two buckets, but m1 carries under 100 kB more than m2.
        let bonds = slb_bond(1_000);
        step(&bonds, 0);
        account(&bonds, a, 50_000);
        account(&bonds, b, 40_000);
        let v = step(&bonds, 1_000);
        assert_eq!((v.buckets[a], v.buckets[b]), (1, 1));
        // With rebalancing off the buckets are still spread over both.
        let bonds = slb_bond(0);
        let v = step(&bonds, 0);
        assert!(v.buckets.iter().all(|m| *m == 1 || *m == 2));
        assert!(v.buckets.contains(&2));
    }

    #[test]
    fn lacp_members_are_disabled_until_the_partner_is_in_sync() {
        let p1 = datapath::DummyPort::new("m1");
        let p2 = datapath::DummyPort::new("m2");
        let bonds = Bonds::default();
        bonds.configure(
            vec![BondSpec {
                bridge: "br0".into(),
                name: "bond0".into(),
                settings: BondSettings {
                    mode: BondMode::BalanceTcp,
                    lacp: LacpMode::Active,
                    fast: true,
                    ..BondSettings::default()
                },
                bridge_mac: [2, 0, 0, 0, 0, 1],
                members: vec![member(1, "m1", p1), member(2, "m2", p2)],
            }],
            0,
        );
        // No partner yet: nothing may carry traffic.
        let v = step(&bonds, 0);
        assert!(v.enabled.is_empty());
        // A partner that is in sync on both links.
        let mut partner = Lacp::new("peer", true, true, [2, 0, 0, 0, 0, 9], 65534);
        partner.add_member(1, "p1", 1, 65535);
        partner.add_member(2, "p2", 2, 65535);
        for t in 1..5 {
            let now = t * 100;
            for (id, pdu) in partner.run(now) {
                assert!(bonds.receive(100 + id, &pdu.encode([2, 0, 0, 0, 0, 9]), now));
            }
            let mut g = bonds.lock();
            let b = g.bonds.get_mut("bond0").unwrap();
            let l = b.lacp.as_ref().unwrap().clone();
            drop(g);
            for id in [1, 2] {
                let frame = lacp::Pdu {
                    actor: l.actor(id),
                    partner: partner.actor(id),
                }
                .encode([2, 0, 0, 0, 0, 1]);
                partner.receive(id, &frame, now).unwrap();
            }
            step(&bonds, now);
        }
        let v = step(&bonds, 600);
        assert_eq!(v.lacp, LacpStatus::Negotiated);
        assert_eq!(v.enabled, vec![1, 2]);
        let text = bonds.show_lacp(Some("bond0")).unwrap();
        assert!(text.contains("status: active negotiated"), "{text}");
        assert!(text.contains("member: m1: current attached"), "{text}");
        assert!(!bonds.receive(999, &[], 0), "not a member");
    }
}
