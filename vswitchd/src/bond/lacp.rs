//! LACP (IEEE 802.3ad / 802.1AX) for one bond: the PDU codec and a pure
//! state machine driven by received PDUs, carrier changes and the clock
//! (`now` in milliseconds, from the caller).
//!
//! Per member: the partner's last advertised information, a receive timer
//! (current → expired → defaulted when PDUs stop), a transmit timer (1 s when
//! the partner asked for fast timeouts, 30 s otherwise) and "attached"
//! (selected for the aggregate: not defaulted, and the same partner system
//! and key as the best-priority member). A member may carry traffic when it
//! is attached and its partner says it is in sync.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use flows::PortNo;
use wire::MacAddr;

/// The slow protocols group address LACPDUs are sent to.
pub const SLOW_PROTOCOLS_MAC: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x02];
/// The slow protocols ethertype.
pub const ETH_TYPE_SLOW: u16 = 0x8809;
/// A LACPDU frame: Ethernet header plus the 110-byte PDU.
pub const PDU_FRAME_LEN: usize = 14 + 110;

/// Transmit period with fast timeouts (ms).
pub const FAST_TX_MS: u64 = 1_000;
/// Transmit period with slow timeouts (ms).
pub const SLOW_TX_MS: u64 = 30_000;
/// Receive timeout in transmit periods.
pub const RX_MULTIPLIER: u64 = 3;

/// Actor/partner state bits.
pub mod state {
    pub const ACTIVITY: u8 = 0x01;
    pub const TIMEOUT: u8 = 0x02;
    pub const AGGREGATION: u8 = 0x04;
    pub const SYNC: u8 = 0x08;
    pub const COLLECTING: u8 = 0x10;
    pub const DISTRIBUTING: u8 = 0x20;
    pub const DEFAULTED: u8 = 0x40;
    pub const EXPIRED: u8 = 0x80;
}

/// One side's information in a LACPDU.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LacpInfo {
    pub sys_priority: u16,
    pub sys_id: [u8; 6],
    pub key: u16,
    pub port_priority: u16,
    pub port_id: u16,
    pub state: u8,
}

impl LacpInfo {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sys_priority.to_be_bytes());
        out.extend_from_slice(&self.sys_id);
        out.extend_from_slice(&self.key.to_be_bytes());
        out.extend_from_slice(&self.port_priority.to_be_bytes());
        out.extend_from_slice(&self.port_id.to_be_bytes());
        out.push(self.state);
        out.extend_from_slice(&[0; 3]);
    }

    fn read(b: &[u8]) -> LacpInfo {
        let be = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let mut sys_id = [0; 6];
        sys_id.copy_from_slice(&b[2..8]);
        LacpInfo {
            sys_priority: be(0),
            sys_id,
            key: be(8),
            port_priority: be(10),
            port_id: be(12),
            state: b[14],
        }
    }

    /// True when the two differ in something that needs a new PDU: the
    /// identifiers, the key, or the activity/timeout/sync/aggregation bits.
    fn needs_tx(&self, sent: &LacpInfo) -> bool {
        const BITS: u8 = state::ACTIVITY | state::TIMEOUT | state::SYNC | state::AGGREGATION;
        (self.state ^ sent.state) & BITS != 0
            || self.port_id != sent.port_id
            || self.port_priority != sent.port_priority
            || self.key != sent.key
            || self.sys_priority != sent.sys_priority
            || self.sys_id != sent.sys_id
    }
}

/// A parsed LACPDU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Pdu {
    pub actor: LacpInfo,
    pub partner: LacpInfo,
}

/// Why a slow-protocols frame is not a LACPDU we understand.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum PduError {
    #[error("frame too short for a LACPDU ({0} bytes)")]
    Short(usize),
    #[error("not a slow-protocols frame")]
    NotSlow,
    #[error("slow-protocols subtype {0} is not LACP")]
    Subtype(u8),
    #[error("malformed actor or partner TLV")]
    Tlv,
}

impl Pdu {
    /// The whole Ethernet frame, sent from `src`.
    pub fn encode(&self, src: [u8; 6]) -> Vec<u8> {
        let mut f = Vec::with_capacity(PDU_FRAME_LEN);
        f.extend_from_slice(&SLOW_PROTOCOLS_MAC);
        f.extend_from_slice(&src);
        f.extend_from_slice(&ETH_TYPE_SLOW.to_be_bytes());
        f.extend_from_slice(&[1, 1]); // subtype LACP, version 1
        f.extend_from_slice(&[1, 20]);
        self.actor.write(&mut f);
        f.extend_from_slice(&[2, 20]);
        self.partner.write(&mut f);
        f.extend_from_slice(&[3, 16]); // collector information
        f.extend_from_slice(&0u16.to_be_bytes());
        f.extend_from_slice(&[0; 12]);
        f.extend_from_slice(&[0, 0]); // terminator
        f.resize(PDU_FRAME_LEN, 0);
        f
    }

    /// Parses a received frame (untagged).
    pub fn decode(frame: &[u8]) -> Result<Pdu, PduError> {
        if frame.len() < 14 + 2 + 2 * 20 {
            return Err(PduError::Short(frame.len()));
        }
        if u16::from_be_bytes([frame[12], frame[13]]) != ETH_TYPE_SLOW {
            return Err(PduError::NotSlow);
        }
        let p = &frame[14..];
        if p[0] != 1 {
            return Err(PduError::Subtype(p[0]));
        }
        if p[2..4] != [1, 20] || p[22..24] != [2, 20] {
            return Err(PduError::Tlv);
        }
        Ok(Pdu {
            actor: LacpInfo::read(&p[4..22]),
            partner: LacpInfo::read(&p[24..42]),
        })
    }
}

/// Where a member stands with its partner.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MemberStatus {
    /// PDUs arrive in time.
    Current,
    /// PDUs stopped for one receive timeout.
    Expired,
    /// No partner (never heard, or PDUs stopped for two timeouts).
    Defaulted,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Current => "current",
            MemberStatus::Expired => "expired",
            MemberStatus::Defaulted => "defaulted",
        }
    }
}

/// One member's LACP state.
#[derive(Clone, Debug)]
pub struct Member {
    pub name: String,
    pub port_id: u16,
    pub port_priority: u16,
    pub status: MemberStatus,
    pub partner: LacpInfo,
    pub attached: bool,
    rx_deadline: Option<u64>,
    tx_deadline: u64,
    /// What we last told the partner about ourselves.
    sent: Option<LacpInfo>,
    pub rx_pdus: u64,
    pub rx_bad: u64,
    pub tx_pdus: u64,
}

/// LACP of one bond.
#[derive(Clone, Debug)]
pub struct Lacp {
    pub name: String,
    pub active: bool,
    pub fast: bool,
    pub sys_id: [u8; 6],
    pub sys_priority: u16,
    /// Configured aggregation key (`other_config:lacp-aggregation-key`).
    pub key: Option<u16>,
    members: BTreeMap<PortNo, Member>,
    negotiated: bool,
    update: bool,
}

impl Lacp {
    pub fn new(name: &str, active: bool, fast: bool, sys_id: [u8; 6], sys_priority: u16) -> Lacp {
        Lacp {
            name: name.to_string(),
            active,
            fast,
            sys_id,
            sys_priority,
            key: None,
            members: BTreeMap::new(),
            negotiated: false,
            update: true,
        }
    }

    /// Adds member `id` (its OpenFlow port; the LACP port id unless
    /// configured otherwise), defaulted.
    pub fn add_member(&mut self, id: PortNo, name: &str, port_id: u16, port_priority: u16) {
        let m = self.members.entry(id).or_insert_with(|| Member {
            name: name.to_string(),
            port_id,
            port_priority,
            status: MemberStatus::Defaulted,
            partner: LacpInfo::default(),
            attached: false,
            rx_deadline: None,
            tx_deadline: 0,
            sent: None,
            rx_pdus: 0,
            rx_bad: 0,
            tx_pdus: 0,
        });
        m.name = name.to_string();
        if m.port_id != port_id || m.port_priority != port_priority {
            m.port_id = port_id;
            m.port_priority = port_priority;
            self.update = true;
        }
    }

    pub fn remove_member(&mut self, id: PortNo) {
        if self.members.remove(&id).is_some() {
            self.update = true;
        }
    }

    #[cfg(test)]
    pub fn members(&self) -> impl Iterator<Item = (&PortNo, &Member)> {
        self.members.iter()
    }

    /// Member `id`'s receive status.
    pub fn status_of(&self, id: PortNo) -> Option<MemberStatus> {
        self.members.get(&id).map(|m| m.status)
    }

    /// True when some member is attached to a partner.
    pub fn negotiated(&self) -> bool {
        self.negotiated
    }

    fn rx_timeout(&self) -> u64 {
        RX_MULTIPLIER * if self.fast { FAST_TX_MS } else { SLOW_TX_MS }
    }

    /// A frame with the slow-protocols ethertype arrived on member `id`.
    pub fn receive(&mut self, id: PortNo, frame: &[u8], now: u64) -> Result<(), PduError> {
        let timeout = self.rx_timeout();
        let Some(m) = self.members.get_mut(&id) else {
            return Ok(());
        };
        m.rx_pdus += 1;
        let pdu = match Pdu::decode(frame) {
            Ok(p) => p,
            Err(e) => {
                m.rx_bad += 1;
                return Err(e);
            }
        };
        m.status = MemberStatus::Current;
        m.rx_deadline = Some(now + timeout);
        // What the partner believes about us: if it is stale, tell it again.
        m.sent = Some(pdu.partner);
        if m.partner != pdu.actor {
            m.partner = pdu.actor;
            self.update = true;
        }
        Ok(())
    }

    /// The carrier of member `id` changed: its partner information can no
    /// longer be trusted.
    pub fn carrier_changed(&mut self, id: PortNo, now: u64) {
        let active = self.active;
        if let Some(m) = self.members.get_mut(&id)
            && (m.status == MemberStatus::Current || active)
        {
            set_expired(m, now);
            self.update = true;
        }
    }

    /// Runs the timers; returns the PDUs to send now, per member.
    pub fn run(&mut self, now: u64) -> Vec<(PortNo, Pdu)> {
        for m in self.members.values_mut() {
            if m.rx_deadline.is_some_and(|d| now >= d) {
                match m.status {
                    MemberStatus::Current => set_expired(m, now),
                    MemberStatus::Expired => {
                        m.status = MemberStatus::Defaulted;
                        m.partner = LacpInfo::default();
                        m.rx_deadline = None;
                    }
                    MemberStatus::Defaulted => m.rx_deadline = None,
                }
                self.update = true;
            }
        }
        if self.update {
            self.update_attached();
        }
        let mut out = Vec::new();
        let ids: Vec<PortNo> = self.members.keys().copied().collect();
        for id in ids {
            let actor = self.actor(id);
            let active = self.active;
            let Some(m) = self.members.get_mut(&id) else {
                continue;
            };
            if !active && m.status == MemberStatus::Defaulted {
                continue;
            }
            let stale = m.sent.is_none_or(|s| actor.needs_tx(&s));
            if now >= m.tx_deadline || stale {
                m.sent = Some(actor);
                m.tx_pdus += 1;
                m.tx_deadline = now
                    + if m.partner.state & state::TIMEOUT != 0 {
                        FAST_TX_MS
                    } else {
                        SLOW_TX_MS
                    };
                out.push((
                    id,
                    Pdu {
                        actor,
                        partner: m.partner,
                    },
                ));
            }
        }
        out
    }

    /// Chooses the members that form the aggregate: the best-priority
    /// member that has a partner leads, and every member whose partner is
    /// the same system with the same key joins it.
    fn update_attached(&mut self) {
        self.update = false;
        let sys = (self.sys_priority, self.sys_id);
        // (not in sync, priority): the smallest leads.
        let mut lead: Option<((bool, LinkPriority), PortNo)> = None;
        let ids: Vec<PortNo> = self.members.keys().copied().collect();
        for id in &ids {
            let m = self.members.get_mut(id).expect("listed");
            m.attached = false;
            if m.partner.sys_id == self.sys_id {
                // Looped back to ourselves.
                continue;
            }
            if m.status == MemberStatus::Defaulted {
                continue;
            }
            m.attached = true;
            let enable = m.partner.state & state::SYNC != 0;
            // The higher-priority system's view orders the members.
            let pri = if (sys.0, sys.1) < (m.partner.sys_priority, m.partner.sys_id) {
                (sys.0, sys.1, m.port_priority, m.port_id)
            } else {
                (
                    m.partner.sys_priority,
                    m.partner.sys_id,
                    m.partner.port_priority,
                    m.partner.port_id,
                )
            };
            let rank = (!enable, pri);
            if lead.as_ref().is_none_or(|(r, _)| rank < *r) {
                lead = Some((rank, *id));
            }
        }
        self.negotiated = lead.is_some();
        if let Some((_, lead_id)) = lead {
            let lp = self.members[&lead_id].partner;
            for m in self.members.values_mut() {
                if m.partner.key != lp.key || m.partner.sys_id != lp.sys_id {
                    m.attached = false;
                }
            }
        }
    }

    /// The aggregation key: configured, else the first member's port id.
    pub fn aggregation_key(&self) -> Option<u16> {
        self.key
            .or_else(|| self.members.values().next().map(|m| m.port_id))
    }

    /// What we advertise on member `id`.
    pub fn actor(&self, id: PortNo) -> LacpInfo {
        let Some(m) = self.members.get(&id) else {
            return LacpInfo::default();
        };
        let mut s = 0;
        if self.active {
            s |= state::ACTIVITY;
        }
        if self.fast {
            s |= state::TIMEOUT;
        }
        if m.attached {
            s |= state::SYNC;
        }
        match m.status {
            MemberStatus::Defaulted => s |= state::DEFAULTED,
            MemberStatus::Expired => s |= state::EXPIRED,
            MemberStatus::Current => {}
        }
        if self.members.len() > 1 {
            s |= state::AGGREGATION;
        }
        if m.attached || !self.negotiated {
            s |= state::COLLECTING | state::DISTRIBUTING;
        }
        LacpInfo {
            sys_priority: self.sys_priority,
            sys_id: self.sys_id,
            key: self.aggregation_key().unwrap_or(0),
            port_priority: m.port_priority,
            port_id: m.port_id,
            state: s,
        }
    }

    /// True when member `id` may carry traffic: attached, with a partner in sync.
    pub fn may_enable(&self, id: PortNo) -> bool {
        self.members
            .get(&id)
            .is_some_and(|m| m.attached && m.partner.state & state::SYNC != 0)
    }

    /// `lacp/show` for this bond, in Open vSwitch's layout.
    pub fn show(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "---- {} ----", self.name);
        let _ = writeln!(
            s,
            "  status: {}{}",
            if self.active { "active" } else { "passive" },
            if self.negotiated { " negotiated" } else { "" }
        );
        let _ = writeln!(s, "  sys_id: {}", MacAddr(self.sys_id));
        let _ = writeln!(s, "  sys_priority: {}", self.sys_priority);
        let _ = writeln!(
            s,
            "  aggregation key: {}",
            self.aggregation_key()
                .map_or("none".to_string(), |k| k.to_string())
        );
        let _ = writeln!(
            s,
            "  lacp_time: {}",
            if self.fast { "fast" } else { "slow" }
        );
        let mut by_name: Vec<(&String, PortNo)> =
            self.members.iter().map(|(id, m)| (&m.name, *id)).collect();
        by_name.sort();
        for (name, id) in by_name {
            let m = &self.members[&id];
            let a = self.actor(id);
            let _ = writeln!(
                s,
                "\nmember: {name}: {} {}",
                m.status.as_str(),
                if m.attached { "attached" } else { "detached" }
            );
            let _ = writeln!(s, "  port_id: {}", m.port_id);
            let _ = writeln!(s, "  port_priority: {}", m.port_priority);
            let _ = writeln!(s, "  may_enable: {}", self.may_enable(id));
            for (who, i) in [("actor", &a), ("partner", &m.partner)] {
                let _ = writeln!(s, "\n  {who} sys_id: {}", MacAddr(i.sys_id));
                let _ = writeln!(s, "  {who} sys_priority: {}", i.sys_priority);
                let _ = writeln!(s, "  {who} port_id: {}", i.port_id);
                let _ = writeln!(s, "  {who} port_priority: {}", i.port_priority);
                let _ = writeln!(s, "  {who} key: {}", i.key);
                let _ = writeln!(s, "  {who} state:{}", state_words(i.state));
            }
        }
        s
    }
}

/// A link's priority: system priority, system id, port priority, port id
/// of the higher-priority end of the link (smaller is better).
type LinkPriority = (u16, [u8; 6], u16, u16);

fn set_expired(m: &mut Member, now: u64) {
    m.status = MemberStatus::Expired;
    m.partner.state |= state::TIMEOUT;
    m.partner.state &= !state::SYNC;
    m.rx_deadline = Some(now + RX_MULTIPLIER * FAST_TX_MS);
}

/// The state bits as `lacp/show` spells them, each after a space.
pub fn state_words(st: u8) -> String {
    const NAMES: [(u8, &str); 8] = [
        (state::ACTIVITY, "activity"),
        (state::TIMEOUT, "timeout"),
        (state::AGGREGATION, "aggregation"),
        (state::SYNC, "synchronized"),
        (state::COLLECTING, "collecting"),
        (state::DISTRIBUTING, "distributing"),
        (state::DEFAULTED, "defaulted"),
        (state::EXPIRED, "expired"),
    ];
    NAMES
        .iter()
        .filter(|(b, _)| st & b != 0)
        .map(|(_, n)| format!(" {n}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [0xaa, 0, 0, 0, 0, 1];
    const B: [u8; 6] = [0xbb, 0, 0, 0, 0, 2];

    fn pair(fast: bool) -> (Lacp, Lacp) {
        let mut a = Lacp::new("bond-a", true, fast, A, 65534);
        let mut b = Lacp::new("bond-b", true, fast, B, 65534);
        for l in [&mut a, &mut b] {
            l.add_member(1, "m1", 1, 65535);
            l.add_member(2, "m2", 2, 65535);
        }
        (a, b)
    }

    /// Runs both sides, delivering PDUs on the members in `links`.
    fn exchange(a: &mut Lacp, b: &mut Lacp, links: &[PortNo], now: u64) {
        let pa = a.run(now);
        let pb = b.run(now);
        for (id, pdu) in pa {
            if links.contains(&id) {
                b.receive(id, &pdu.encode(A), now).unwrap();
            }
        }
        for (id, pdu) in pb {
            if links.contains(&id) {
                a.receive(id, &pdu.encode(B), now).unwrap();
            }
        }
    }

    #[test]
    fn pdu_encodes_to_124_bytes_and_decodes_back() {
        let pdu = Pdu {
            actor: LacpInfo {
                sys_priority: 65534,
                sys_id: A,
                key: 7,
                port_priority: 65535,
                port_id: 3,
                state: state::ACTIVITY | state::SYNC,
            },
            partner: LacpInfo::default(),
        };
        let f = pdu.encode(A);
        assert_eq!(f.len(), PDU_FRAME_LEN);
        assert_eq!(&f[..6], &SLOW_PROTOCOLS_MAC);
        assert_eq!(&f[12..16], &[0x88, 0x09, 1, 1]);
        assert_eq!(Pdu::decode(&f), Ok(pdu));
        assert_eq!(Pdu::decode(&f[..40]), Err(PduError::Short(40)));
        let mut marker = f.clone();
        marker[14] = 2;
        assert_eq!(Pdu::decode(&marker), Err(PduError::Subtype(2)));
    }

    #[test]
    fn two_active_sides_negotiate_and_both_members_may_enable() {
        let (mut a, mut b) = pair(true);
        for t in 0..4 {
            exchange(&mut a, &mut b, &[1, 2], t * 100);
        }
        assert!(a.negotiated() && b.negotiated());
        for l in [&a, &b] {
            for id in [1, 2] {
                assert!(l.may_enable(id), "{} member {id}\n{}", l.name, l.show());
            }
        }
        let st = a.actor(1).state;
        assert_eq!(
            state_words(st),
            " activity timeout aggregation synchronized collecting distributing"
        );
        assert!(a.show().contains("member: m1: current attached"));
    }

    #[test]
    fn a_member_whose_pdus_stop_expires_then_defaults_and_is_not_used() {
        let (mut a, mut b) = pair(true);
        for t in 0..4 {
            exchange(&mut a, &mut b, &[1, 2], t * 100);
        }
        // Link 2 goes silent; link 1 keeps going every second.
        let mut now = 400;
        while now < 400 + 3_000 + 10 {
            now += 100;
            exchange(&mut a, &mut b, &[1], now);
        }
        let m2 = a.members().find(|(id, _)| **id == 2).unwrap().1;
        assert_eq!(m2.status, MemberStatus::Expired);
        assert!(!a.may_enable(2));
        assert!(a.may_enable(1));
        while now < 400 + 6_000 + 10 {
            now += 100;
            exchange(&mut a, &mut b, &[1], now);
        }
        let m2 = a.members().find(|(id, _)| **id == 2).unwrap().1;
        assert_eq!(m2.status, MemberStatus::Defaulted);
        assert_eq!(m2.partner, LacpInfo::default());
        assert!(!m2.attached);
        assert!(a.negotiated(), "member 1 still negotiated");
        // The partner comes back: a defaulted member talks at the slow
        // rate, so within 30 s both sides are in sync again.
        let back = now;
        while !a.may_enable(2) && now < back + 31_000 {
            now += 100;
            exchange(&mut a, &mut b, &[1, 2], now);
        }
        assert!(a.may_enable(2) && b.may_enable(2));
    }

    #[test]
    fn carrier_loss_expires_the_member_at_once() {
        let (mut a, mut b) = pair(false);
        for t in 0..4 {
            exchange(&mut a, &mut b, &[1, 2], t * 100);
        }
        assert!(a.may_enable(1));
        a.carrier_changed(1, 500);
        a.run(500);
        assert!(!a.may_enable(1));
        assert!(a.may_enable(2));
    }

    #[test]
    fn a_passive_side_stays_quiet_until_it_hears_an_active_partner() {
        let mut p = Lacp::new("p", false, true, A, 65534);
        p.add_member(1, "m1", 1, 65535);
        assert!(p.run(0).is_empty());
        let mut b = Lacp::new("b", true, true, B, 65534);
        b.add_member(1, "m1", 1, 65535);
        let sent = b.run(0);
        assert_eq!(sent.len(), 1);
        p.receive(1, &sent[0].1.encode(B), 0).unwrap();
        assert_eq!(p.run(0).len(), 1, "answers once it has a partner");
    }

    #[test]
    fn fast_partners_get_a_pdu_every_second_slow_ones_every_30() {
        let (mut a, mut b) = pair(true);
        for t in 0..4 {
            exchange(&mut a, &mut b, &[1, 2], t * 100);
        }
        // Settled: nothing to say until the periodic timer.
        assert!(a.run(500).is_empty());
        assert_eq!(a.run(1_400).len(), 2);
        let (mut a, mut b) = pair(false);
        for t in 0..4 {
            exchange(&mut a, &mut b, &[1, 2], t * 100);
        }
        assert!(a.run(5_000).is_empty());
        assert_eq!(a.run(30_400).len(), 2);
    }

    #[test]
    fn a_loop_to_ourselves_attaches_nothing() {
        let mut a = Lacp::new("a", true, true, A, 65534);
        a.add_member(1, "m1", 1, 65535);
        a.add_member(2, "m2", 2, 65535);
        for t in 0..4 {
            let out = a.run(t * 100);
            for (id, pdu) in out {
                // m1 and m2 cabled to each other.
                a.receive(3 - id, &pdu.encode(A), t * 100).unwrap();
            }
        }
        assert!(!a.may_enable(1) && !a.may_enable(2));
    }
}
