//! The OpenFlow 1.3 group table: all, select, indirect and fast-failover
//! groups made of buckets of actions.

use std::collections::BTreeMap;

use crate::action::{Action, GroupId, PortNo, port};
use crate::field::{Field, WireId};
use crate::key::FlowKey;

/// `OFPG_ANY` / `OFPG_ALL`: "every group" in a delete.
pub const GROUP_ALL: GroupId = 0xffff_fffc;
/// `OFPG_ANY`: no group (watch_group unset, out_group wildcard).
pub const GROUP_ANY: GroupId = 0xffff_ffff;
/// Largest id a group may have.
pub const GROUP_MAX: GroupId = 0xffff_ff00;

/// Group type.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum GroupType {
    /// Every bucket gets a copy.
    All,
    /// One bucket, chosen by a hash of the flow (weighted).
    Select,
    /// The single bucket.
    Indirect,
    /// The first bucket whose watched port is live.
    FastFailover,
}

impl GroupType {
    /// The name ovs-ofctl uses (`type=select`).
    pub fn name(self) -> &'static str {
        match self {
            GroupType::All => "all",
            GroupType::Select => "select",
            GroupType::Indirect => "indirect",
            GroupType::FastFailover => "ff",
        }
    }

    /// Parses ovs-ofctl's group type names (`ff` and `fast_failover` alike).
    pub fn from_name(s: &str) -> Option<GroupType> {
        match s {
            "all" => Some(GroupType::All),
            "select" => Some(GroupType::Select),
            "indirect" => Some(GroupType::Indirect),
            "ff" | "fast_failover" => Some(GroupType::FastFailover),
            _ => None,
        }
    }
}

/// One bucket of a group.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Bucket {
    /// Relative weight (select groups); 0 means never chosen.
    pub weight: u16,
    /// Port whose liveness enables the bucket (fast-failover); `port::ANY` if none.
    pub watch_port: PortNo,
    /// Group whose liveness enables the bucket; [`GROUP_ANY`] if none.
    pub watch_group: GroupId,
    pub actions: Vec<Action>,
}

impl Bucket {
    /// A bucket with weight 1 and nothing watched.
    pub fn new(actions: Vec<Action>) -> Bucket {
        Bucket {
            weight: 1,
            watch_port: port::ANY,
            watch_group: GROUP_ANY,
            actions,
        }
    }
}

/// A group.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Group {
    pub id: GroupId,
    pub kind: GroupType,
    pub buckets: Vec<Bucket>,
    /// How a select group picks its bucket (Open vSwitch's group property;
    /// only OpenFlow 1.5 carries it).
    pub selection: Selection,
}

/// A select group's selection method (`selection_method=`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum SelectionMethod {
    /// None named: the switch's own hash of the flow.
    #[default]
    Default,
    /// A hash of the listed fields (`fields(...)`), with
    /// `selection_method_param` as its basis.
    Hash,
    /// The datapath's hash of the flow's addresses and ports;
    /// `selection_method_param`'s low 32 bits are its basis.
    DpHash,
}

impl SelectionMethod {
    /// The name ovs-ofctl reads and prints (empty for the default).
    pub fn name(self) -> &'static str {
        match self {
            SelectionMethod::Default => "",
            SelectionMethod::Hash => "hash",
            SelectionMethod::DpHash => "dp_hash",
        }
    }

    pub fn from_name(name: &str) -> Option<SelectionMethod> {
        match name {
            "" => Some(SelectionMethod::Default),
            "hash" => Some(SelectionMethod::Hash),
            "dp_hash" => Some(SelectionMethod::DpHash),
            _ => None,
        }
    }
}

/// One field a `selection_method=hash` group hashes, with the bits of it
/// that count.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SelectField {
    /// The wire field (`tcp_src` and `udp_src` are one [`Field`] but two
    /// wire fields).
    pub wire: &'static WireId,
    pub mask: u128,
}

/// How a select group picks its bucket.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Selection {
    pub method: SelectionMethod,
    pub param: u64,
    /// In [`SelectField::rank`] order, each wire field once.
    pub fields: Vec<SelectField>,
}

/// The order Open vSwitch lists a group's hash fields in (its field ids'
/// order), by wire field name.
const FIELD_ORDER: &[&str] = &[
    "tun_id",
    "tun_src",
    "tun_dst",
    "tun_ipv6_src",
    "tun_ipv6_dst",
    "tun_flags",
    "metadata",
    "in_port",
    "nxm_in_port",
    "reg0",
    "reg1",
    "reg2",
    "reg3",
    "reg4",
    "reg5",
    "reg6",
    "reg7",
    "reg8",
    "reg9",
    "reg10",
    "reg11",
    "reg12",
    "reg13",
    "reg14",
    "reg15",
    "xreg0",
    "xreg1",
    "xreg2",
    "xreg3",
    "xreg4",
    "xreg5",
    "xreg6",
    "xreg7",
    "xxreg0",
    "xxreg1",
    "xxreg2",
    "xxreg3",
    "eth_src",
    "eth_dst",
    "eth_type",
    "vlan_tci",
    "vlan_vid",
    "vlan_pcp",
    "ipv4_src",
    "ipv4_dst",
    "ipv6_src",
    "ipv6_dst",
    "ipv6_flabel",
    "ip_proto",
    "nw_tos",
    "ip_dscp",
    "ip_ecn",
    "ip_ttl",
    "ip_frag",
    "arp_op",
    "arp_spa",
    "arp_tpa",
    "arp_sha",
    "arp_tha",
    "tcp_src",
    "tcp_dst",
    "tcp_flags",
    "udp_src",
    "udp_dst",
    "sctp_src",
    "sctp_dst",
    "icmpv4_type",
    "icmpv4_code",
    "icmpv6_type",
    "icmpv6_code",
    "nd_target",
    "nd_sll",
    "nd_tll",
];

impl SelectField {
    /// Position in Open vSwitch's listing order (unknown names last).
    pub fn rank(&self) -> usize {
        FIELD_ORDER
            .iter()
            .position(|n| *n == self.wire.name)
            .unwrap_or(FIELD_ORDER.len())
    }
}

impl Selection {
    /// Puts `fields` in listing order, each wire field once (the last
    /// mask given wins).
    pub fn normalize(&mut self) {
        let mut seen: Vec<SelectField> = Vec::with_capacity(self.fields.len());
        for f in self.fields.drain(..) {
            match seen.iter_mut().find(|s| s.wire.name == f.wire.name) {
                Some(s) => s.mask = f.mask,
                None => seen.push(f),
            }
        }
        seen.sort_by_key(SelectField::rank);
        self.fields = seen;
    }

    /// The hash that picks the bucket; marks in `wc` the bits it read.
    fn hash(&self, key: &FlowKey, wc: &mut FlowKey) -> u64 {
        match self.method {
            SelectionMethod::Hash => {
                let mut h = Fnv::new(self.param);
                for f in &self.fields {
                    let field = f.wire.field;
                    if !field.prereqs_hold(key, wc) {
                        continue;
                    }
                    field.set_mask_bits(wc, f.mask);
                    h.feed(field.get(key) & f.mask);
                }
                h.finish()
            }
            SelectionMethod::DpHash => select_hash_with(key, wc, self.param & 0xffff_ffff),
            SelectionMethod::Default => select_hash(key, wc),
        }
    }
}

/// FNV-1a over 128-bit little-endian words, then an avalanche.
struct Fnv(u64);

impl Fnv {
    fn new(basis: u64) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325 ^ basis)
    }

    fn feed(&mut self, v: u128) {
        for b in v.to_le_bytes() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// Final avalanche so that nearby inputs spread over buckets.
    fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    }
}

/// A group operation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("group {0} already exists (OFPGMFC_GROUP_EXISTS)")]
    Exists(GroupId),
    #[error("group {0} does not exist (OFPGMFC_UNKNOWN_GROUP)")]
    Unknown(GroupId),
    #[error("group id {0} is reserved (OFPGMFC_INVALID_GROUP)")]
    InvalidId(GroupId),
    #[error("indirect group {0} must have exactly one bucket (OFPGMFC_INVALID_GROUP)")]
    IndirectBuckets(GroupId),
    #[error("group {0} chains to itself (OFPGMFC_CHAINING_UNSUPPORTED)")]
    SelfReference(GroupId),
}

/// The groups of one bridge.
#[derive(Clone, Debug, Default)]
pub struct GroupTable {
    groups: BTreeMap<GroupId, Group>,
    version: u64,
}

impl GroupTable {
    pub fn new() -> GroupTable {
        GroupTable::default()
    }

    /// Bumped on every change.
    pub fn version(&self) -> u64 {
        self.version
    }

    fn validate(g: &Group) -> Result<(), GroupError> {
        if g.id > GROUP_MAX {
            return Err(GroupError::InvalidId(g.id));
        }
        if g.kind == GroupType::Indirect && g.buckets.len() != 1 {
            return Err(GroupError::IndirectBuckets(g.id));
        }
        let refers_to_self = g.buckets.iter().any(|b| {
            b.actions
                .iter()
                .any(|a| matches!(a, Action::Group(x) if *x == g.id))
        });
        if refers_to_self {
            return Err(GroupError::SelfReference(g.id));
        }
        Ok(())
    }

    /// OFPGC_ADD.
    pub fn add(&mut self, g: Group) -> Result<(), GroupError> {
        Self::validate(&g)?;
        if self.groups.contains_key(&g.id) {
            return Err(GroupError::Exists(g.id));
        }
        self.groups.insert(g.id, g);
        self.version += 1;
        Ok(())
    }

    /// OFPGC_MODIFY: replaces type and buckets of an existing group.
    pub fn modify(&mut self, g: Group) -> Result<(), GroupError> {
        Self::validate(&g)?;
        let slot = self
            .groups
            .get_mut(&g.id)
            .ok_or(GroupError::Unknown(g.id))?;
        *slot = g;
        self.version += 1;
        Ok(())
    }

    /// OFPGC_DELETE: removes one group, or every group for [`GROUP_ALL`].
    /// Deleting a group that does not exist is not an error. Returns the ids
    /// removed (the caller deletes the flows that referenced them).
    pub fn delete(&mut self, id: GroupId) -> Vec<GroupId> {
        let removed: Vec<GroupId> = if id == GROUP_ALL {
            let ids = self.groups.keys().copied().collect();
            self.groups.clear();
            ids
        } else {
            self.groups.remove(&id).map(|g| g.id).into_iter().collect()
        };
        if !removed.is_empty() {
            self.version += 1;
        }
        removed
    }

    pub fn get(&self, id: GroupId) -> Option<&Group> {
        self.groups.get(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// Fields a select group hashes on (OVS's default "hash of the flow":
/// L2 addresses, ethertype, L3 addresses and protocol, L4 ports).
const SELECT_HASH_FIELDS: [Field; 11] = [
    Field::DlSrc,
    Field::DlDst,
    Field::DlType,
    Field::VlanVid,
    Field::NwSrc,
    Field::NwDst,
    Field::Ipv6Src,
    Field::Ipv6Dst,
    Field::NwProto,
    Field::TpSrc,
    Field::TpDst,
];

/// Hash of the fields a select group balances on; marks them in `wc`.
pub fn select_hash(key: &FlowKey, wc: &mut FlowKey) -> u64 {
    select_hash_with(key, wc, 0)
}

/// [`select_hash`] from basis `basis`.
fn select_hash_with(key: &FlowKey, wc: &mut FlowKey, basis: u64) -> u64 {
    let mut h = Fnv::new(basis);
    for f in SELECT_HASH_FIELDS {
        f.unwildcard(wc);
        h.feed(f.get(key));
    }
    h.finish()
}

impl Group {
    /// The buckets a packet goes through: every bucket for `all`, one for
    /// `select`/`indirect`, the first live one for fast-failover (none if no
    /// bucket is live). `port_live` says whether a port is usable.
    pub fn choose_buckets<'a>(
        &'a self,
        key: &FlowKey,
        wc: &mut FlowKey,
        port_live: &dyn Fn(PortNo) -> bool,
    ) -> Vec<&'a Bucket> {
        match self.kind {
            GroupType::All => self.buckets.iter().collect(),
            GroupType::Indirect => self.buckets.first().into_iter().collect(),
            GroupType::Select => {
                // Only live buckets are chosen (a watched port that is down
                // takes its bucket out), as Open vSwitch does.
                let live = |b: &&Bucket| b.watch_port == port::ANY || port_live(b.watch_port);
                let total: u64 = self
                    .buckets
                    .iter()
                    .filter(live)
                    .map(|b| u64::from(b.weight))
                    .sum();
                if total == 0 {
                    return Vec::new();
                }
                let mut pick = self.selection.hash(key, wc) % total;
                for b in self.buckets.iter().filter(live) {
                    let w = u64::from(b.weight);
                    if pick < w {
                        return vec![b];
                    }
                    pick -= w;
                }
                Vec::new()
            }
            GroupType::FastFailover => self
                .buckets
                .iter()
                .find(|b| b.watch_port == port::ANY || port_live(b.watch_port))
                .into_iter()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(p: PortNo) -> Vec<Action> {
        vec![Action::Output {
            port: p,
            max_len: 0,
        }]
    }

    #[test]
    fn a_hash_selection_reads_only_its_fields_and_their_masked_bits() {
        let wire = |n: &str| crate::field::wire_rows(n).next().unwrap();
        let mut g = group(
            1,
            GroupType::Select,
            (1..=8).map(|p| Bucket::new(out(p))).collect(),
        );
        g.selection = Selection {
            method: SelectionMethod::Hash,
            param: 0,
            fields: vec![SelectField {
                wire: wire("ipv4_src"),
                mask: 0xffff_ff00,
            }],
        };
        let live = |_| true;
        let k = FlowKey {
            dl_type: 0x0800,
            nw_src: 0x0a00_0001,
            nw_proto: 6,
            tp_src: 1000,
            ..Default::default()
        };
        let mut wc = FlowKey::default();
        let first = g.choose_buckets(&k, &mut wc, &live)[0].actions.clone();
        // Only the masked source bits (and the IPv4 prerequisite) are read.
        assert_eq!(wc.nw_src, 0xffff_ff00);
        assert_eq!(wc.tp_src, 0);
        assert_eq!(wc.nw_dst, 0);
        assert_eq!(wc.dl_type, u16::MAX);
        // Packets that differ elsewhere, or in the low byte, share a bucket.
        for (src, port) in [(0x0a00_00fe, 1), (0x0a00_0001, 2000), (0x0a00_0010, 7)] {
            let mut k2 = k;
            k2.nw_src = src;
            k2.tp_src = port;
            let mut wc2 = FlowKey::default();
            assert_eq!(g.choose_buckets(&k2, &mut wc2, &live)[0].actions, first);
        }
        // Other /24s spread over the buckets.
        let picked: std::collections::BTreeSet<_> = (0..64u32)
            .map(|i| {
                let mut k2 = k;
                k2.nw_src = 0x0a00_0001 + (i << 8);
                let mut wc2 = FlowKey::default();
                format!("{:?}", g.choose_buckets(&k2, &mut wc2, &live)[0].actions)
            })
            .collect();
        assert!(picked.len() >= 4, "{} buckets used", picked.len());
        // The parameter is the basis: it moves packets between buckets.
        let moved = (0..64u32).any(|i| {
            let mut k2 = k;
            k2.nw_src = 0x0a00_0001 + (i << 8);
            let mut h = g.clone();
            h.selection.param = 99;
            let mut w1 = FlowKey::default();
            let mut w2 = FlowKey::default();
            g.choose_buckets(&k2, &mut w1, &live)[0].actions
                != h.choose_buckets(&k2, &mut w2, &live)[0].actions
        });
        assert!(moved);
    }

    #[test]
    fn a_select_group_chooses_only_among_live_buckets() {
        let mut watched = Bucket::new(out(3));
        watched.watch_port = 3;
        let g = group(1, GroupType::Select, vec![Bucket::new(out(2)), watched]);
        let mut used = std::collections::BTreeSet::new();
        for src in 0..32u32 {
            let k = FlowKey {
                dl_type: 0x0800,
                nw_src: src,
                ..Default::default()
            };
            let mut wc = FlowKey::default();
            let down = g.choose_buckets(&k, &mut wc, &|p| p != 3);
            assert_eq!(down.len(), 1);
            assert_eq!(down[0].actions, out(2), "a bucket watching a down port");
            let mut wc = FlowKey::default();
            used.insert(format!(
                "{:?}",
                g.choose_buckets(&k, &mut wc, &|_| true)[0].actions
            ));
        }
        assert_eq!(used.len(), 2, "both buckets serve while both are live");
        let k = FlowKey::default();
        let mut wc = FlowKey::default();
        let all_down = group(
            1,
            GroupType::Select,
            vec![{
                let mut b = Bucket::new(out(3));
                b.watch_port = 3;
                b
            }],
        );
        assert!(all_down.choose_buckets(&k, &mut wc, &|_| false).is_empty());
    }

    #[test]
    fn selection_fields_are_kept_in_ovs_order_each_once() {
        let wire = |n: &str| crate::field::wire_rows(n).next().unwrap();
        let mut s = Selection {
            method: SelectionMethod::Hash,
            param: 0,
            fields: vec![
                SelectField {
                    wire: wire("ip_proto"),
                    mask: 0xff,
                },
                SelectField {
                    wire: wire("eth_dst"),
                    mask: 1,
                },
                SelectField {
                    wire: wire("ipv4_src"),
                    mask: 0xffff_ffff,
                },
                SelectField {
                    wire: wire("eth_dst"),
                    mask: 0xff,
                },
            ],
        };
        s.normalize();
        let names: Vec<_> = s.fields.iter().map(|f| (f.wire.name, f.mask)).collect();
        assert_eq!(
            names,
            vec![
                ("eth_dst", 0xff),
                ("ipv4_src", 0xffff_ffff),
                ("ip_proto", 0xff)
            ]
        );
    }

    fn group(id: GroupId, kind: GroupType, buckets: Vec<Bucket>) -> Group {
        Group {
            id,
            kind,
            buckets,
            selection: Selection::default(),
        }
    }

    #[test]
    fn add_existing_group_fails_and_modify_unknown_fails() {
        let mut t = GroupTable::new();
        let g = group(1, GroupType::All, vec![Bucket::new(out(1))]);
        t.add(g.clone()).unwrap();
        assert_eq!(t.add(g.clone()), Err(GroupError::Exists(1)));
        let mut g2 = g.clone();
        g2.id = 2;
        assert_eq!(t.modify(g2), Err(GroupError::Unknown(2)));
        let mut g3 = g;
        g3.kind = GroupType::Select;
        t.modify(g3).unwrap();
        assert_eq!(t.get(1).unwrap().kind, GroupType::Select);
    }

    #[test]
    fn delete_all_removes_every_group() {
        let mut t = GroupTable::new();
        for id in 1..4 {
            t.add(group(id, GroupType::All, vec![])).unwrap();
        }
        assert_eq!(t.delete(2), vec![2]);
        assert_eq!(t.delete(GROUP_ALL), vec![1, 3]);
        assert!(t.is_empty());
    }

    #[test]
    fn indirect_group_needs_exactly_one_bucket() {
        let mut t = GroupTable::new();
        assert_eq!(
            t.add(group(5, GroupType::Indirect, vec![])),
            Err(GroupError::IndirectBuckets(5))
        );
    }

    #[test]
    fn fast_failover_uses_first_live_bucket() {
        let mut b1 = Bucket::new(out(1));
        b1.watch_port = 1;
        let mut b2 = Bucket::new(out(2));
        b2.watch_port = 2;
        let g = group(1, GroupType::FastFailover, vec![b1, b2]);
        let key = FlowKey::default();
        let mut wc = FlowKey::default();
        let chosen = g.choose_buckets(&key, &mut wc, &|p| p != 1);
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].watch_port, 2);
        assert!(g.choose_buckets(&key, &mut wc, &|_| false).is_empty());
    }

    #[test]
    fn select_spreads_flows_and_is_stable_per_flow() {
        let g = group(
            1,
            GroupType::Select,
            vec![Bucket::new(out(1)), Bucket::new(out(2))],
        );
        let mut seen = [0usize; 2];
        for i in 0..200u16 {
            let k = FlowKey {
                tp_src: i,
                ..FlowKey::default()
            };
            let mut wc = FlowKey::default();
            let a = g.choose_buckets(&k, &mut wc, &|_| true)[0].actions.clone();
            let b = g.choose_buckets(&k, &mut wc, &|_| true)[0].actions.clone();
            assert_eq!(a, b);
            assert_eq!(wc.tp_src, 0xffff, "hashed fields are in the megaflow");
            if a == out(1) {
                seen[0] += 1;
            } else {
                seen[1] += 1;
            }
        }
        assert!(seen[0] > 30 && seen[1] > 30, "{seen:?}");
    }
}
