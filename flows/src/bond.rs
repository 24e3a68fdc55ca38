//! Bonds as NORMAL sees them: which member a packet leaves by, and whether
//! a packet received on a member is admitted.
//!
//! Pure: the daemon (`vswitchd::bond`) runs LACP and the link timers and
//! publishes a [`BondView`] per bond into the bridge's ports
//! ([`crate::xlate::BridgePorts::set_bonds`]); translation only reads it.
//! Every member keeps its own OpenFlow port, as in Open vSwitch; NORMAL
//! treats the members together as one port (learning, flooding, output),
//! identified by its first member ([`BondView::id`]).

use crate::action::PortNo;
use crate::field::Field;
use crate::hash::{finish, mix_word};
use crate::key::{FlowKey, ethertype};
use crate::mac_learning::is_multicast;

/// `Port.bond_mode`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum BondMode {
    /// One member carries everything; the others wait.
    #[default]
    ActiveBackup,
    /// Source MAC and VLAN choose the member.
    BalanceSlb,
    /// The L3/L4 5-tuple chooses the member (needs LACP).
    BalanceTcp,
}

impl BondMode {
    /// The `bond_mode` value.
    pub fn as_str(self) -> &'static str {
        match self {
            BondMode::ActiveBackup => "active-backup",
            BondMode::BalanceSlb => "balance-slb",
            BondMode::BalanceTcp => "balance-tcp",
        }
    }

    pub fn parse(s: &str) -> Option<BondMode> {
        Some(match s {
            "active-backup" => BondMode::ActiveBackup,
            "balance-slb" => BondMode::BalanceSlb,
            "balance-tcp" => BondMode::BalanceTcp,
            _ => return None,
        })
    }
}

/// Where LACP stands on a bond (OVS's `lacp_status`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum LacpStatus {
    /// `lacp=off`.
    #[default]
    Off,
    /// Configured, but no member is in sync with a partner.
    Configured,
    /// At least one member negotiated with a partner.
    Negotiated,
}

/// What NORMAL does with a packet received on a bond member.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Admit {
    Accept,
    Drop,
    /// balance-slb: drop when the source MAC was learned on another port
    /// (the packet came back to us through the bond), unless it is a
    /// gratuitous ARP (the host moved).
    DropIfMoved,
}

/// One bond's state as translation needs it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BondView {
    pub name: String,
    pub mode: BondMode,
    /// Every member's OpenFlow port, ascending.
    pub members: Vec<PortNo>,
    /// The members that may carry traffic now (link up for long enough and,
    /// with LACP, collecting and distributing), ascending.
    pub enabled: Vec<PortNo>,
    /// The member that carries active-backup traffic and is the only one
    /// to accept multicast and broadcast.
    pub active: Option<PortNo>,
    pub lacp: LacpStatus,
    /// Balanced modes: the member each hash bucket is assigned to
    /// ([`BUCKETS`] entries, moved between members by the daemon's
    /// rebalancing). A bucket whose member is not enabled, or a table that is
    /// empty, falls back to the bucket modulo the enabled members.
    pub buckets: Vec<PortNo>,
}

/// Hash buckets per bond: a flow's hash picks a bucket, the bucket a member.
pub const BUCKETS: u64 = 256;

impl BondView {
    /// The port NORMAL learns MACs on and compares with (the first member).
    pub fn id(&self) -> PortNo {
        self.members.first().copied().unwrap_or(0)
    }

    /// The member the packet `key` (in VLAN `vlan`) leaves by, or `None`
    /// when no member may carry it. Sets in `wc` what the choice read.
    pub fn select(&self, key: &FlowKey, vlan: u16, wc: &mut FlowKey) -> Option<PortNo> {
        if self.mode == BondMode::BalanceTcp && self.lacp != LacpStatus::Negotiated {
            return None;
        }
        if self.enabled.is_empty() {
            return None;
        }
        match self.mode {
            BondMode::ActiveBackup => self.active,
            BondMode::BalanceSlb => {
                Field::DlSrc.unwildcard(wc);
                Field::VlanVid.unwildcard(wc);
                Some(self.bucket_member(slb_hash(key, vlan)))
            }
            BondMode::BalanceTcp => Some(self.bucket_member(tcp_hash(key, wc))),
        }
    }

    /// The enabled member serving the bucket of `hash`.
    fn bucket_member(&self, hash: u64) -> PortNo {
        let bucket = (hash % BUCKETS) as usize;
        match self.buckets.get(bucket) {
            Some(m) if self.enabled.contains(m) => *m,
            _ => self.enabled[bucket % self.enabled.len()],
        }
    }

    /// Whether NORMAL admits `key`, received on member `member`.
    pub fn admit(&self, member: PortNo, key: &FlowKey) -> Admit {
        let enabled = self.enabled.contains(&member);
        match self.lacp {
            // A partner that speaks LACP sends only on members in sync;
            // anything arriving on another one is dropped.
            LacpStatus::Negotiated => {
                return if enabled { Admit::Accept } else { Admit::Drop };
            }
            // LACP configured but not negotiated: nothing is admitted.
            LacpStatus::Configured => return Admit::Drop,
            LacpStatus::Off if self.mode == BondMode::BalanceTcp => return Admit::Drop,
            LacpStatus::Off => {}
        }
        let on_active = self.active == Some(member);
        if is_multicast(key.dl_dst) && !on_active {
            return Admit::Drop;
        }
        match self.mode {
            BondMode::ActiveBackup | BondMode::BalanceTcp => {
                if on_active {
                    Admit::Accept
                } else {
                    Admit::Drop
                }
            }
            BondMode::BalanceSlb => Admit::DropIfMoved,
        }
    }
}

/// The hash bucket (`0..BUCKETS`) a packet `key` in VLAN `vlan` falls in
/// under `mode`; `None` for active-backup, which has no buckets. The same
/// hash [`BondView::select`] uses, for the daemon's load accounting.
pub fn bucket(mode: BondMode, key: &FlowKey, vlan: u16) -> Option<usize> {
    let hash = match mode {
        BondMode::ActiveBackup => return None,
        BondMode::BalanceSlb => slb_hash(key, vlan),
        BondMode::BalanceTcp => tcp_hash(key, &mut FlowKey::default()),
    };
    Some((hash % BUCKETS) as usize)
}

/// The balance-slb bucket of source MAC `mac` in VLAN `vlan` (`bond/hash`).
pub fn slb_bucket(mac: [u8; 6], vlan: u16) -> usize {
    let key = FlowKey {
        dl_src: mac,
        ..FlowKey::default()
    };
    (slb_hash(&key, vlan) % BUCKETS) as usize
}

/// True for a gratuitous ARP (sender and target protocol address equal),
/// which balance-slb admits even from a host learned elsewhere.
pub fn is_gratuitous_arp(key: &FlowKey) -> bool {
    key.dl_type == ethertype::ARP && key.nw_src == key.nw_dst
}

fn slb_hash(key: &FlowKey, vlan: u16) -> u64 {
    let mut mac = [0u8; 8];
    mac[..6].copy_from_slice(&key.dl_src);
    finish(mix_word(
        mix_word(0x5eed_b0d5, u64::from_le_bytes(mac)),
        u64::from(vlan),
    ))
}

/// The L4 hash of balance-tcp: addresses, protocol and ports for IP,
/// the Ethernet addresses and type otherwise.
fn tcp_hash(key: &FlowKey, wc: &mut FlowKey) -> u64 {
    let mut h = mix_word(0x7c9_b0d5, u64::from(key.dl_type));
    Field::DlType.unwildcard(wc);
    let ports = |h: u64, wc: &mut FlowKey| {
        Field::NwProto.unwildcard(wc);
        let mut h = mix_word(h, u64::from(key.nw_proto));
        if matches!(key.nw_proto, 6 | 17 | 132) {
            Field::TpSrc.unwildcard(wc);
            Field::TpDst.unwildcard(wc);
            h = mix_word(h, (u64::from(key.tp_src) << 16) | u64::from(key.tp_dst));
        }
        h
    };
    match key.dl_type {
        ethertype::IPV4 => {
            Field::NwSrc.unwildcard(wc);
            Field::NwDst.unwildcard(wc);
            h = mix_word(h, (u64::from(key.nw_src) << 32) | u64::from(key.nw_dst));
            h = ports(h, wc);
        }
        ethertype::IPV6 => {
            Field::Ipv6Src.unwildcard(wc);
            Field::Ipv6Dst.unwildcard(wc);
            for a in [key.ipv6_src, key.ipv6_dst] {
                h = mix_word(h, u64::from_le_bytes(a[..8].try_into().unwrap_or_default()));
                h = mix_word(h, u64::from_le_bytes(a[8..].try_into().unwrap_or_default()));
            }
            h = ports(h, wc);
        }
        _ => {
            Field::DlSrc.unwildcard(wc);
            Field::DlDst.unwildcard(wc);
            let mut m = [0u8; 16];
            m[..6].copy_from_slice(&key.dl_src);
            m[8..14].copy_from_slice(&key.dl_dst);
            h = mix_word(h, u64::from_le_bytes(m[..8].try_into().unwrap_or_default()));
            h = mix_word(h, u64::from_le_bytes(m[8..].try_into().unwrap_or_default()));
        }
    }
    finish(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(mode: BondMode, lacp: LacpStatus, enabled: &[PortNo]) -> BondView {
        BondView {
            name: "bond0".into(),
            mode,
            members: vec![1, 2],
            enabled: enabled.to_vec(),
            active: enabled.first().copied(),
            lacp,
            buckets: Vec::new(),
        }
    }

    fn tcp(sport: u16) -> FlowKey {
        FlowKey {
            dl_type: ethertype::IPV4,
            dl_src: [0, 0, 0, 0, 0, 1],
            dl_dst: [0, 0, 0, 0, 0, 2],
            nw_proto: 6,
            nw_src: 0x0a00_0001,
            nw_dst: 0x0a00_0002,
            tp_src: sport,
            tp_dst: 5201,
            ..FlowKey::default()
        }
    }

    #[test]
    fn active_backup_uses_the_active_member_and_reads_no_header() {
        let v = view(BondMode::ActiveBackup, LacpStatus::Off, &[2]);
        let mut wc = FlowKey::default();
        assert_eq!(v.select(&tcp(1000), 0, &mut wc), Some(2));
        assert_eq!(wc, FlowKey::default());
        let none = view(BondMode::ActiveBackup, LacpStatus::Off, &[]);
        assert_eq!(none.select(&tcp(1000), 0, &mut wc), None);
    }

    #[test]
    fn balance_tcp_spreads_flows_over_members_and_unwildcards_the_5_tuple() {
        let v = view(BondMode::BalanceTcp, LacpStatus::Negotiated, &[1, 2]);
        let mut wc = FlowKey::default();
        let chosen: std::collections::BTreeSet<PortNo> = (0..32)
            .filter_map(|p| v.select(&tcp(40000 + p), 0, &mut wc))
            .collect();
        assert_eq!(chosen, [1, 2].into_iter().collect());
        assert_eq!(wc.tp_src, 0xffff);
        assert_eq!(wc.tp_dst, 0xffff);
        assert_eq!(wc.nw_src, u32::MAX);
        assert_eq!(wc.nw_proto, 0xff);
        // The same flow always takes the same member.
        let a = v.select(&tcp(40001), 0, &mut wc);
        assert_eq!(a, v.select(&tcp(40001), 0, &mut wc));
        // With one member left, everything goes there.
        let one = view(BondMode::BalanceTcp, LacpStatus::Negotiated, &[2]);
        assert!((0..32).all(|p| one.select(&tcp(p), 0, &mut wc) == Some(2)));
    }

    #[test]
    fn balance_tcp_without_negotiated_lacp_sends_and_admits_nothing() {
        for lacp in [LacpStatus::Off, LacpStatus::Configured] {
            let v = view(BondMode::BalanceTcp, lacp, &[1, 2]);
            assert_eq!(v.select(&tcp(1), 0, &mut FlowKey::default()), None);
            assert_eq!(v.admit(1, &tcp(1)), Admit::Drop);
        }
    }

    #[test]
    fn the_bucket_table_decides_the_member_and_a_disabled_one_falls_back() {
        let mut v = view(BondMode::BalanceSlb, LacpStatus::Off, &[1, 2]);
        let mut key = tcp(1);
        let b = bucket(BondMode::BalanceSlb, &key, 0).unwrap();
        assert_eq!(b, slb_bucket(key.dl_src, 0));
        assert_eq!(bucket(BondMode::ActiveBackup, &key, 0), None);
        let mut wc = FlowKey::default();
        // No table: bucket modulo the enabled members.
        let spread = [1, 2][b % 2];
        assert_eq!(v.select(&key, 0, &mut wc), Some(spread));
        // The table moves the bucket to the other member.
        let other = 3 - spread;
        v.buckets = vec![spread; BUCKETS as usize];
        v.buckets[b] = other;
        assert_eq!(v.select(&key, 0, &mut wc), Some(other));
        // Another MAC of another bucket stays where the table says.
        key.dl_src = [0, 0, 0, 0, 0, 7];
        if slb_bucket(key.dl_src, 0) != b {
            assert_eq!(v.select(&key, 0, &mut wc), Some(spread));
        }
        // The assigned member is disabled: the enabled one takes it.
        v.enabled = vec![spread];
        key.dl_src = tcp(1).dl_src;
        assert_eq!(v.select(&key, 0, &mut wc), Some(spread));
        // balance-tcp buckets come from the 5-tuple.
        let t = bucket(BondMode::BalanceTcp, &tcp(5), 0).unwrap();
        assert_eq!(
            t,
            (tcp_hash(&tcp(5), &mut FlowKey::default()) % BUCKETS) as usize
        );
    }

    #[test]
    fn balance_slb_hashes_source_mac_and_vlan_only() {
        let v = view(BondMode::BalanceSlb, LacpStatus::Off, &[1, 2]);
        let mut wc = FlowKey::default();
        let a = v.select(&tcp(1), 10, &mut wc);
        assert!((0..100).all(|p| v.select(&tcp(p), 10, &mut wc) == a));
        assert_eq!(wc.dl_src, [0xff; 6]);
        assert_eq!(wc.tp_src, 0);
        let members: std::collections::BTreeSet<_> = (0..64u8)
            .filter_map(|m| {
                let mut k = tcp(1);
                k.dl_src[5] = m;
                v.select(&k, 0, &mut wc)
            })
            .collect();
        assert_eq!(members.len(), 2);
    }

    #[test]
    fn admission_follows_ovs_rules() {
        let mut bcast = tcp(1);
        bcast.dl_dst = [0xff; 6];
        let ab = view(BondMode::ActiveBackup, LacpStatus::Off, &[1, 2]);
        assert_eq!(ab.admit(1, &tcp(1)), Admit::Accept);
        assert_eq!(ab.admit(2, &tcp(1)), Admit::Drop, "backup member");
        let slb = view(BondMode::BalanceSlb, LacpStatus::Off, &[1, 2]);
        assert_eq!(slb.admit(2, &bcast), Admit::Drop, "multicast on inactive");
        assert_eq!(slb.admit(1, &bcast), Admit::DropIfMoved);
        assert_eq!(slb.admit(2, &tcp(1)), Admit::DropIfMoved);
        let lacp = view(BondMode::BalanceSlb, LacpStatus::Negotiated, &[2]);
        assert_eq!(lacp.admit(2, &bcast), Admit::Accept);
        assert_eq!(lacp.admit(1, &tcp(1)), Admit::Drop, "member not in sync");
        let down = view(BondMode::ActiveBackup, LacpStatus::Configured, &[]);
        assert_eq!(down.admit(1, &tcp(1)), Admit::Drop);
    }

    /// NORMAL over a bridge whose ports 1 and 2 are the members of `bond`
    /// and port 3 a plain port (datapath ports 101..103).
    mod normal {
        use super::*;
        use crate::dpaction::DpAction;
        use crate::group::GroupTable;
        use crate::mac_learning::MacLearning;
        use crate::table::{FlowModCommand, Pipeline};
        use crate::text::parse_flow_mod;
        use crate::xlate::{BridgePort, BridgePorts, XlateCtx, XlateResult, translate};

        struct Rig {
            pipeline: Pipeline,
            groups: GroupTable,
            ports: BridgePorts,
            mac: MacLearning,
        }

        impl Rig {
            fn new(bond: BondView) -> Rig {
                let mut pipeline = Pipeline::new();
                let fm = parse_flow_mod("actions=NORMAL", FlowModCommand::Add).unwrap();
                pipeline.flow_mod(&fm, 0).unwrap();
                let mut ports = BridgePorts::new();
                for p in 1..=3 {
                    ports.insert(BridgePort::new(p, 100 + p));
                }
                ports.set_bonds(vec![bond]);
                Rig {
                    pipeline,
                    groups: GroupTable::new(),
                    ports,
                    mac: MacLearning::default(),
                }
            }

            fn xlate(&mut self, key: &FlowKey) -> XlateResult {
                let ctx = XlateCtx {
                    pipeline: &self.pipeline,
                    groups: &self.groups,
                    ports: &self.ports,
                    mac: &self.mac,
                    now_ms: 1000,
                    dp: None,
                    patch: None,
                };
                let r = translate(&ctx, key);
                for l in &r.learned {
                    self.mac.learn(l.vlan, l.mac, l.port, 1000);
                }
                r
            }
        }

        fn from(in_port: PortNo, src: u8, dst: [u8; 6]) -> FlowKey {
            let mut k = tcp(1000);
            k.in_port = in_port;
            k.dl_src = [0, 0, 0, 0, 0, src];
            k.dl_dst = dst;
            k
        }

        const BCAST: [u8; 6] = [0xff; 6];

        #[test]
        fn active_backup_floods_once_to_the_active_member_and_learns_the_bond() {
            let mut bond = view(BondMode::ActiveBackup, LacpStatus::Off, &[1, 2]);
            bond.active = Some(2);
            let mut r = Rig::new(bond);
            // Flooding reaches the bond once, by its active member.
            let x = r.xlate(&from(3, 0x33, BCAST));
            assert_eq!(x.actions, vec![DpAction::Output(102)]);
            // The backup member admits nothing.
            let x = r.xlate(&from(1, 0x11, BCAST));
            assert!(x.actions.is_empty() && x.learned.is_empty(), "{x:?}");
            // The active member's packets are the bond's: learned on it,
            // and never sent back into it.
            let x = r.xlate(&from(2, 0x22, BCAST));
            assert_eq!(x.actions, vec![DpAction::Output(103)]);
            assert_eq!(x.learned[0].port, 1, "learned on the bond (its id)");
            let x = r.xlate(&from(3, 0x33, [0, 0, 0, 0, 0, 0x22]));
            assert_eq!(x.actions, vec![DpAction::Output(102)]);
        }

        #[test]
        fn balance_tcp_spreads_learned_unicast_over_members_by_5_tuple() {
            let mut r = Rig::new(view(BondMode::BalanceTcp, LacpStatus::Negotiated, &[1, 2]));
            r.xlate(&from(2, 0x22, BCAST));
            let mut outs = std::collections::BTreeSet::new();
            for sport in 0..32 {
                let mut k = from(3, 0x33, [0, 0, 0, 0, 0, 0x22]);
                k.tp_src = 40000 + sport;
                let x = r.xlate(&k);
                assert_eq!(x.wc.tp_src, 0xffff, "the hash read the ports");
                for a in x.actions {
                    if let DpAction::Output(p) = a {
                        outs.insert(p);
                    }
                }
            }
            assert_eq!(outs, [101, 102].into_iter().collect());
            // A member LACP did not enable drops what it receives.
            let mut r = Rig::new(view(BondMode::BalanceTcp, LacpStatus::Negotiated, &[2]));
            assert!(r.xlate(&from(1, 0x11, BCAST)).actions.is_empty());
        }

        #[test]
        fn balance_slb_drops_a_source_that_came_back_through_the_bond() {
            let mut r = Rig::new(view(BondMode::BalanceSlb, LacpStatus::Off, &[1, 2]));
            // Host 0x33 is learned on port 3 ...
            r.xlate(&from(3, 0x33, BCAST));
            // ... so its own frame reflected back by the partner is dropped.
            let x = r.xlate(&from(1, 0x33, [0, 0, 0, 0, 0, 0x44]));
            assert!(x.actions.is_empty(), "{x:?}");
            // A host behind the bond is admitted.
            let x = r.xlate(&from(1, 0x55, [0, 0, 0, 0, 0, 0x33]));
            assert_eq!(x.actions, vec![DpAction::Output(103)]);
        }
    }
}
