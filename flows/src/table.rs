//! OpenFlow tables of one bridge and OpenFlow 1.3 flow_mod semantics on them.
//!
//! Pure: time comes in as milliseconds from the caller. Every change bumps
//! [`Pipeline::version`], which the datapath uses to revalidate its caches.

use rustc_hash::FxHashSet;

use crate::action::{Action, GroupId, PortNo, port};
use crate::classifier::{Classifier, RuleId};
use crate::field::{Field, Prereq, PrereqError, check_match_prereqs};
use crate::group::GROUP_ANY;
use crate::key::{FlowKey, VLAN_CFI};
use crate::matches::Match;

/// Number of OpenFlow tables (0..=254).
pub const N_TABLES: usize = 255;
/// `OFPTT_ALL`: every table (delete, dump).
pub const TABLE_ALL: u8 = 0xff;
/// Priority when a flow gives none.
pub const DEFAULT_PRIORITY: u32 = 32768;

/// Flow flags (`OFPFF_*`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug)]
pub struct FlowFlags {
    pub send_flow_rem: bool,
    pub check_overlap: bool,
    pub reset_counts: bool,
    pub no_packet_counts: bool,
    pub no_byte_counts: bool,
}

/// One flow entry.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Rule {
    pub cookie: u64,
    pub priority: u32,
    pub m: Match,
    /// Actions and instructions inline (as ovs-ofctl writes them).
    pub actions: Vec<Action>,
    /// Seconds; 0 = none.
    pub idle_timeout: u16,
    /// Seconds; 0 = none.
    pub hard_timeout: u16,
    pub flags: FlowFlags,
    /// When the rule was added (ms).
    pub created_ms: u64,
    /// When a packet last hit it, or when it was added/modified (ms).
    pub last_used_ms: u64,
    pub n_packets: u64,
    pub n_bytes: u64,
}

impl Rule {
    /// True when the rule's actions (incl. write_actions) output to `p`.
    pub fn outputs_to(&self, p: PortNo) -> bool {
        p == port::ANY || actions_output_to(&self.actions, p)
    }

    /// True when the rule's actions (incl. write_actions) use group `g`.
    pub fn uses_group(&self, g: GroupId) -> bool {
        g == GROUP_ANY || actions_use_group(&self.actions, g)
    }

    /// The rule with match `m` and everything else from `body`.
    pub fn from_body(m: Match, body: RuleBody) -> Rule {
        let RuleBody {
            cookie,
            priority,
            actions,
            idle_timeout,
            hard_timeout,
            flags,
            created_ms,
            last_used_ms,
            n_packets,
            n_bytes,
        } = body;
        Rule {
            cookie,
            priority,
            m,
            actions,
            idle_timeout,
            hard_timeout,
            flags,
            created_ms,
            last_used_ms,
            n_packets,
            n_bytes,
        }
    }
}

/// A rule as a table stores it: everything but its match, which only the
/// classifier keeps (as the masked key's non-zero words, its mask shared by
/// the subtable), so a rule does not carry a second, full 304-byte copy.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RuleBody {
    pub cookie: u64,
    pub priority: u32,
    pub actions: Vec<Action>,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub flags: FlowFlags,
    pub created_ms: u64,
    pub last_used_ms: u64,
    pub n_packets: u64,
    pub n_bytes: u64,
}

impl RuleBody {
    /// True when the rule's actions (incl. write_actions) output to `p`.
    pub fn outputs_to(&self, p: PortNo) -> bool {
        p == port::ANY || actions_output_to(&self.actions, p)
    }

    /// True when the rule's actions (incl. write_actions) use group `g`.
    pub fn uses_group(&self, g: GroupId) -> bool {
        g == GROUP_ANY || actions_use_group(&self.actions, g)
    }

    fn has_timeout(&self) -> bool {
        self.idle_timeout != 0 || self.hard_timeout != 0
    }

    /// True for a conjunctive flow: its actions are all `conjunction`s, so
    /// it never matches on its own but contributes a clause to a
    /// conjunctive match.
    pub fn is_conjunctive(&self) -> bool {
        !self.actions.is_empty()
            && self
                .actions
                .iter()
                .all(|a| matches!(a, Action::Conjunction { .. }))
    }
}

/// A rule of a table, borrowed: its match rebuilt from the classifier,
/// the rest ([`RuleBody`]'s fields, through `Deref`) where the table keeps it.
#[derive(Clone, Copy, Debug)]
pub struct RuleRef<'a> {
    pub m: Match,
    body: &'a RuleBody,
}

impl std::ops::Deref for RuleRef<'_> {
    type Target = RuleBody;

    fn deref(&self) -> &RuleBody {
        self.body
    }
}

impl RuleRef<'_> {
    /// An owned copy of the rule.
    pub fn to_rule(&self) -> Rule {
        Rule::from_body(self.m, self.body.clone())
    }
}

fn actions_output_to(actions: &[Action], p: PortNo) -> bool {
    actions.iter().any(|a| match a {
        Action::Output { port, .. } => *port == p,
        Action::Controller { .. } => p == port::CONTROLLER,
        Action::WriteActions(inner) => actions_output_to(inner, p),
        _ => false,
    })
}

fn actions_use_meter(actions: &[Action], m: crate::meter::MeterId) -> bool {
    actions.iter().any(|a| match a {
        Action::Meter(x) => *x == m,
        Action::WriteActions(inner) => actions_use_meter(inner, m),
        _ => false,
    })
}

fn collect_meters(actions: &[Action], out: &mut Vec<crate::meter::MeterId>) {
    for a in actions {
        match a {
            Action::Meter(x) if !out.contains(x) => out.push(*x),
            Action::WriteActions(inner) => collect_meters(inner, out),
            _ => {}
        }
    }
}

/// The meters an action list uses (to refuse a flow whose meter is missing).
pub fn meters_used(actions: &[Action]) -> Vec<crate::meter::MeterId> {
    let mut out = Vec::new();
    collect_meters(actions, &mut out);
    out
}

/// The groups an action list names, nested lists (write_actions, clone)
/// included: a flow naming a missing group is refused.
pub fn groups_used(actions: &[Action]) -> Vec<GroupId> {
    fn collect(actions: &[Action], out: &mut Vec<GroupId>) {
        for a in actions {
            match a {
                Action::Group(g) if !out.contains(g) => out.push(*g),
                Action::WriteActions(inner) | Action::Clone(inner) => collect(inner, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    collect(actions, &mut out);
    out
}

fn actions_use_group(actions: &[Action], g: GroupId) -> bool {
    actions.iter().any(|a| match a {
        Action::Group(x) => *x == g,
        Action::WriteActions(inner) => actions_use_group(inner, g),
        _ => false,
    })
}

/// flow_mod command.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FlowModCommand {
    Add,
    Modify,
    ModifyStrict,
    Delete,
    DeleteStrict,
}

impl FlowModCommand {
    /// `delete` or `delete_strict`.
    pub fn is_delete(self) -> bool {
        matches!(self, FlowModCommand::Delete | FlowModCommand::DeleteStrict)
    }
}

/// A flow_mod, as ovs-ofctl or a controller expresses it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FlowMod {
    pub command: FlowModCommand,
    /// Table, or [`TABLE_ALL`] (modify/delete only; add treats it as 0).
    pub table_id: u8,
    pub priority: u32,
    pub m: Match,
    /// New cookie (add) or cookie to filter on (modify/delete, with `cookie_mask`).
    pub cookie: u64,
    pub cookie_mask: u64,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub flags: FlowFlags,
    /// Filter for delete: rules that output to this port (`port::ANY` = no filter).
    pub out_port: PortNo,
    /// Filter for delete: rules that use this group ([`GROUP_ANY`] = no filter).
    pub out_group: GroupId,
    pub actions: Vec<Action>,
    /// Matches on `tun_metadataN` not yet placed in `m` by a bridge's TLV
    /// map (as decoded from the wire or parsed from text);
    /// [`crate::tlv::TlvMap::bind_flow_mod`] moves them into `m`.
    pub tun_metadata: Vec<crate::tlv::TunMetadataMatch>,
}

impl FlowMod {
    /// A flow_mod with OpenFlow's defaults: table 0 (all tables for
    /// modify/delete), priority 32768, no filters, no timeouts, drop.
    pub fn new(command: FlowModCommand) -> FlowMod {
        let table_id = match command {
            FlowModCommand::Add => 0,
            _ => TABLE_ALL,
        };
        FlowMod {
            command,
            table_id,
            priority: DEFAULT_PRIORITY,
            m: Match::default(),
            cookie: 0,
            cookie_mask: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: FlowFlags::default(),
            out_port: port::ANY,
            out_group: GROUP_ANY,
            actions: Vec::new(),
            tun_metadata: Vec::new(),
        }
    }
}

/// Why a rule left a table (`OFPRR_*`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RemovedReason {
    IdleTimeout,
    HardTimeout,
    Delete,
    GroupDelete,
}

/// A rule that left a table (for FLOW_REMOVED messages).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RemovedRule {
    pub table_id: u8,
    pub rule: Rule,
    pub reason: RemovedReason,
}

/// A flow_mod was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlowModError {
    #[error("table {0} does not exist (OFPFMFC_BAD_TABLE_ID)")]
    BadTable(u8),
    /// Table 254 is OVS's hidden internal table: controllers may not add
    /// flows to it.
    #[error("table {0} is read-only (OFPBRC_EPERM)")]
    ReadOnlyTable(u8),
    #[error("flow overlaps an existing flow of the same priority (OFPFMFC_OVERLAP)")]
    Overlap,
    #[error("goto_table:{to} in table {from} must go to a later table (OFPBIC_BAD_TABLE_ID)")]
    BadGoto { from: u8, to: u8 },
    #[error("{0} (OFPBMC_BAD_PREREQ)")]
    BadPrereq(#[from] PrereqError),
    /// The actions do not fit the flow's match.
    #[error(transparent)]
    Actions(#[from] ActionCheckError),
}

/// Why an action list is refused for a flow's match, before the flow is
/// added (OVS checks the same, in ovs-ofctl and in the switch).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActionCheckError {
    /// An action reads or writes a field whose prerequisites the flow's
    /// match (and the actions before it) do not establish.
    #[error("actions are invalid with specified match: {0} (OFPBAC_MATCH_INCONSISTENT)")]
    MatchInconsistent(#[from] PrereqError),
    /// A `push_vlan` onto a packet that already has the two tags a flow
    /// key holds.
    #[error(
        "actions are invalid with specified match: push_vlan beyond {MAX_VLAN_TAGS} VLAN tags (OFPBAC_BAD_TAG)"
    )]
    TooManyVlanTags,
}

/// VLAN tags a flow key holds (outer and inner), as in OVS.
pub const MAX_VLAN_TAGS: usize = 2;

/// Checks that every set_field, load and move in `actions` (including
/// inside write_actions) uses fields whose prerequisites `m` establishes,
/// as OVS does before accepting a flow (OFPBAC_MATCH_INCONSISTENT).
///
/// Actions that change the packet's ethertype (push_mpls, pop_mpls)
/// change what later actions may use, as in OVS: after `push_mpls` the
/// IP fields are out of reach, and `pop_mpls` needs an MPLS packet.
///
/// VLAN tags likewise: set_field on `vlan_vid` or `vlan_pcp` needs a tag
/// (matched, or pushed by an earlier action), and so does OpenFlow 1.1+'s
/// `pop_vlan` (OpenFlow 1.0's `strip_vlan` may run on an untagged packet).
/// The check follows both tags a key holds, as OVS does: a push moves the
/// outer tag inward, a pop brings the inner tag out (known only if an
/// earlier push made it), and a push onto two known tags is refused
/// (OFPBAC_BAD_TAG). `mod_vlan_vid`/`mod_vlan_pcp` (OpenFlow 1.0, pushing a
/// tag if there is none) and set_field on `vlan_tci` leave what they write.
pub fn check_action_prereqs(m: &Match, actions: &[Action]) -> Result<(), ActionCheckError> {
    let mut cur = *m;
    check_action_prereqs_in(&mut cur, actions)
}

fn check_action_prereqs_in(m: &mut Match, actions: &[Action]) -> Result<(), ActionCheckError> {
    let check = |m: &Match, f: Field| {
        let pr = f.action_prereq();
        if pr.holds_in(m) {
            Ok(())
        } else {
            Err(PrereqError {
                field: f.name(),
                needs: pr.describe(),
            })
        }
    };
    for a in actions {
        match a {
            Action::SetField {
                field: Field::VlanTci,
                value,
                mask,
            } => {
                // The written TCI is what later actions see (with its
                // present bit, or without: then there is no tag).
                let w = mask.map_or(0xffff, |x| x as u16);
                m.key.vlan_tci = (m.key.vlan_tci & !w) | (*value as u16 & w);
                m.mask.vlan_tci |= w;
            }
            // set_field on OXM vlan_vid writes into an existing tag only
            // (load and move reach it as bits, without that condition).
            Action::SetField {
                field: Field::VlanVid,
                ..
            } if !Prereq::VlanPresent.holds_in(m) => {
                return Err(PrereqError {
                    field: Field::VlanVid.name(),
                    needs: Prereq::VlanPresent.describe(),
                }
                .into());
            }
            Action::SetField { field, .. } => check(m, *field)?,
            Action::Load { dst, .. } => check(m, dst.field)?,
            Action::Move { src, dst } => {
                check(m, src.field)?;
                check(m, dst.field)?;
            }
            Action::WriteActions(inner) => check_action_prereqs_in(&mut m.clone(), inner)?,
            Action::PushVlan(_) => {
                if m.key.vlan_tci_inner & m.mask.vlan_tci_inner & VLAN_CFI != 0 {
                    return Err(ActionCheckError::TooManyVlanTags);
                }
                m.key.vlan_tci_inner = m.key.vlan_tci;
                m.mask.vlan_tci_inner = m.mask.vlan_tci;
                m.key.vlan_tci = VLAN_CFI;
                m.mask.vlan_tci = VLAN_CFI;
            }
            Action::SetVlanVid(_) | Action::SetVlanPcp(_) => {
                m.key.vlan_tci |= VLAN_CFI;
                m.mask.vlan_tci |= VLAN_CFI;
            }
            Action::PopVlan | Action::StripVlan => {
                if matches!(a, Action::PopVlan) && !Prereq::VlanPresent.holds_in(m) {
                    return Err(PrereqError {
                        field: "pop_vlan",
                        needs: Prereq::VlanPresent.describe(),
                    }
                    .into());
                }
                // The inner tag comes out; what lies beyond it is not known.
                m.key.vlan_tci = m.key.vlan_tci_inner;
                m.mask.vlan_tci = m.mask.vlan_tci_inner;
                m.key.vlan_tci_inner = 0;
                m.mask.vlan_tci_inner = 0;
            }
            Action::PushMpls(t) => {
                m.key.dl_type = *t;
                m.mask.dl_type = 0xffff;
            }
            Action::PopMpls(t) => {
                if !crate::field::Prereq::Mpls.holds_in(m) {
                    return Err(PrereqError {
                        field: "pop_mpls",
                        needs: crate::field::Prereq::Mpls.describe(),
                    }
                    .into());
                }
                m.key.dl_type = *t;
                m.mask.dl_type = 0xffff;
            }
            Action::SetMplsTtl(_) | Action::DecMplsTtl
                if !crate::field::Prereq::Mpls.holds_in(m) =>
            {
                return Err(PrereqError {
                    field: "mpls_ttl",
                    needs: crate::field::Prereq::Mpls.describe(),
                }
                .into());
            }
            _ => {}
        }
    }
    Ok(())
}

/// What a flow_mod did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowModOutcome {
    /// Rules added (table, id).
    pub added: Vec<(u8, RuleId)>,
    /// Rules whose actions were replaced.
    pub modified: Vec<(u8, RuleId)>,
    /// Rules removed (delete, or replaced by an identical add).
    pub removed: Vec<RemovedRule>,
}

/// Filter for dump-flows, dump-aggregate and delete.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FlowFilter {
    /// Table, or [`TABLE_ALL`].
    pub table_id: u8,
    /// Rules whose match is a subset of this one.
    pub m: Match,
    /// With `strict`: the exact match and this priority only.
    pub strict: Option<u32>,
    pub out_port: PortNo,
    pub out_group: GroupId,
    pub cookie: u64,
    pub cookie_mask: u64,
}

impl Default for FlowFilter {
    fn default() -> Self {
        FlowFilter {
            table_id: TABLE_ALL,
            m: Match::default(),
            strict: None,
            out_port: port::ANY,
            out_group: GROUP_ANY,
            cookie: 0,
            cookie_mask: 0,
        }
    }
}

impl FlowFilter {
    /// The filter a modify/delete flow_mod selects rules with.
    pub fn from_flow_mod(fm: &FlowMod) -> FlowFilter {
        let strict = matches!(
            fm.command,
            FlowModCommand::ModifyStrict | FlowModCommand::DeleteStrict
        );
        FlowFilter {
            table_id: fm.table_id,
            m: fm.m,
            strict: strict.then_some(fm.priority),
            out_port: fm.out_port,
            out_group: fm.out_group,
            cookie: fm.cookie,
            cookie_mask: fm.cookie_mask,
        }
    }

    fn selects(&self, m: &Match, priority: u32, r: &RuleBody) -> bool {
        let by_match = match self.strict {
            Some(p) => p == priority && *m == self.m,
            None => m.is_subset_of(&self.m),
        };
        by_match
            && (r.cookie & self.cookie_mask) == (self.cookie & self.cookie_mask)
            && r.outputs_to(self.out_port)
            && r.uses_group(self.out_group)
    }
}

/// Totals for dump-aggregate.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct AggregateStats {
    pub packet_count: u64,
    pub byte_count: u64,
    pub flow_count: u64,
}

/// One table lookup a translation made (for OFPMP_TABLE statistics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableLookup {
    pub table: u8,
    pub matched: bool,
}

/// One OpenFlow table.
#[derive(Clone, Default)]
pub struct FlowTable {
    cls: Classifier<RuleBody>,
    /// Set once a conjunctive flow enters the table (never cleared until the
    /// table is emptied): until then lookups take the plain path.
    has_conj: bool,
    /// Packets whose lookup in this table found a rule, and found none
    /// (OFPMP_TABLE: `lookup_count` is their sum, `matched_count` the
    /// first), credited by [`Pipeline::credit_lookups`].
    n_matched: u64,
    n_missed: u64,
}

impl FlowTable {
    /// Packets looked up in this table (OFPMP_TABLE `lookup_count`).
    pub fn lookup_count(&self) -> u64 {
        self.n_matched.saturating_add(self.n_missed)
    }

    /// Packets whose lookup in this table found a rule (`matched_count`).
    pub fn matched_count(&self) -> u64 {
        self.n_matched
    }

    pub fn len(&self) -> usize {
        self.cls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cls.is_empty()
    }

    pub fn get(&self, id: RuleId) -> Option<RuleRef<'_>> {
        self.cls.get(id).map(|(m, _, body)| RuleRef { m, body })
    }

    /// Where the table keeps rule `id` (without rebuilding its match).
    fn body(&self, id: RuleId) -> Option<&RuleBody> {
        self.cls.get_value(id)
    }

    /// Highest-priority rule matching `key`; consulted mask bits go to `wc`.
    ///
    /// With conjunctive flows in the table this is OVS's conjunctive match:
    /// the best ordinary ("hard") rule is found first; then every
    /// conjunctive flow of higher priority that matches contributes its
    /// clause to the conjunction `(priority, id)`; the highest-priority
    /// conjunction whose every clause matched sets `conj_id` to its id and
    /// the table is searched again (ordinary rules only, typically finding
    /// a `conj_id=ID` flow). If that finds a rule it is the answer,
    /// otherwise the next complete conjunction is tried, and finally the
    /// hard rule. `conj_id` is only set for that second search; `key` is
    /// not changed. Every subtable consulted goes into `wc`.
    pub fn lookup(&self, key: &FlowKey, wc: &mut FlowKey) -> Option<(RuleId, RuleRef<'_>)> {
        let (id, _) = if self.has_conj {
            self.conjunctive_lookup(key, wc)?
        } else {
            self.cls.lookup(key, wc)?
        };
        Some((id, self.get(id)?))
    }

    /// [`FlowTable::lookup`] with conjunctive flows in the table.
    fn conjunctive_lookup(&self, key: &FlowKey, wc: &mut FlowKey) -> Option<(RuleId, &RuleBody)> {
        let hard = self.cls.lookup_where(key, wc, |r| !r.is_conjunctive());
        let hard_pri = hard.map(|(_, r)| r.priority);
        // (priority, id, n_clauses, clauses seen as bits).
        let mut soft: Vec<(u32, u32, u8, u64)> = Vec::new();
        self.cls
            .for_each_match_above(key, wc, hard_pri, |_, priority, r| {
                if !r.is_conjunctive() {
                    return;
                }
                for a in &r.actions {
                    if let Action::Conjunction {
                        id,
                        clause,
                        n_clauses,
                    } = *a
                    {
                        let bit = 1u64 << (clause.saturating_sub(1) % 64);
                        match soft
                            .iter_mut()
                            .find(|s| (s.0, s.1, s.2) == (priority, id, n_clauses))
                        {
                            Some(s) => s.3 |= bit,
                            None => soft.push((priority, id, n_clauses, bit)),
                        }
                    }
                }
            });
        soft.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, id, n, bits) in soft {
            let all = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
            if bits & all != all {
                continue;
            }
            let mut k = *key;
            k.conj_id = id;
            if let Some(hit) = self.cls.lookup_where(&k, wc, |r| !r.is_conjunctive()) {
                return Some(hit);
            }
        }
        hard
    }

    pub fn iter(&self) -> impl Iterator<Item = (RuleId, RuleRef<'_>)> {
        self.cls
            .iter()
            .map(|(id, m, _, body)| (id, RuleRef { m, body }))
    }
}

/// The OpenFlow tables of one bridge. Cloning copies every rule: an
/// atomic bundle commit keeps the clone to restore if a message fails.
#[derive(Clone)]
pub struct Pipeline {
    tables: Vec<FlowTable>,
    version: u64,
    /// Rules with an idle or hard timeout, so expiry scans only them.
    timed: FxHashSet<(u8, RuleId)>,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::new()
    }
}

fn overlaps(a: &Match, b: &Match) -> bool {
    a.key
        .words()
        .iter()
        .zip(b.key.words())
        .zip(a.mask.words().iter().zip(b.mask.words()))
        .all(|((ka, kb), (ma, mb))| (ka ^ kb) & ma & mb == 0)
}

impl Pipeline {
    /// 255 empty tables.
    pub fn new() -> Pipeline {
        Pipeline {
            tables: (0..N_TABLES).map(|_| FlowTable::default()).collect(),
            version: 0,
            timed: FxHashSet::default(),
        }
    }

    /// Bumped on every change to any rule's match, priority or actions.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Table `id` (ids above 254 give table 254's neighbour: none; callers
    /// should stay in range).
    pub fn table(&self, id: u8) -> Option<&FlowTable> {
        self.tables.get(usize::from(id))
    }

    /// Total number of rules.
    pub fn n_rules(&self) -> usize {
        self.tables.iter().map(FlowTable::len).sum()
    }

    /// The rule `id` of table `table`.
    pub fn rule(&self, table: u8, id: RuleId) -> Option<RuleRef<'_>> {
        self.table(table)?.get(id)
    }

    /// Looks a packet up in one table.
    pub fn lookup(
        &self,
        table: u8,
        key: &FlowKey,
        wc: &mut FlowKey,
    ) -> Option<(RuleId, RuleRef<'_>)> {
        self.table(table)?.lookup(key, wc)
    }

    fn table_ids(&self, table_id: u8) -> Result<std::ops::RangeInclusive<u8>, FlowModError> {
        if table_id == TABLE_ALL {
            Ok(0..=(N_TABLES - 1) as u8)
        } else if usize::from(table_id) < N_TABLES {
            Ok(table_id..=table_id)
        } else {
            Err(FlowModError::BadTable(table_id))
        }
    }

    fn check_gotos(table: u8, actions: &[Action]) -> Result<(), FlowModError> {
        for a in actions {
            if let Action::GotoTable(to) = a
                && *to <= table
            {
                return Err(FlowModError::BadGoto {
                    from: table,
                    to: *to,
                });
            }
        }
        Ok(())
    }

    /// Applies a flow_mod at time `now_ms`.
    pub fn flow_mod(&mut self, fm: &FlowMod, now_ms: u64) -> Result<FlowModOutcome, FlowModError> {
        match fm.command {
            FlowModCommand::Add => self.add(fm, now_ms),
            FlowModCommand::Modify | FlowModCommand::ModifyStrict => self.modify(fm, now_ms),
            FlowModCommand::Delete | FlowModCommand::DeleteStrict => {
                let removed = self.delete(&FlowFilter::from_flow_mod(fm), RemovedReason::Delete)?;
                Ok(FlowModOutcome {
                    removed,
                    ..FlowModOutcome::default()
                })
            }
        }
    }

    fn new_rule(fm: &FlowMod, now_ms: u64) -> RuleBody {
        RuleBody {
            cookie: fm.cookie,
            priority: fm.priority,
            actions: fm.actions.clone(),
            idle_timeout: fm.idle_timeout,
            hard_timeout: fm.hard_timeout,
            flags: fm.flags,
            created_ms: now_ms,
            last_used_ms: now_ms,
            n_packets: 0,
            n_bytes: 0,
        }
    }

    /// OFPFC_ADD: a rule with the same match and priority is replaced
    /// (its counters carried over unless `reset_counts`).
    pub fn add(&mut self, fm: &FlowMod, now_ms: u64) -> Result<FlowModOutcome, FlowModError> {
        let table_id = if fm.table_id == TABLE_ALL {
            0
        } else {
            fm.table_id
        };
        let tid = usize::from(table_id);
        if tid >= N_TABLES {
            return Err(FlowModError::BadTable(table_id));
        }
        if tid == N_TABLES - 1 {
            return Err(FlowModError::ReadOnlyTable(table_id));
        }
        Self::check_gotos(table_id, &fm.actions)?;
        check_match_prereqs(&fm.m)?;
        check_action_prereqs(&fm.m, &fm.actions)?;
        let table = &mut self.tables[tid];
        let m = Match::new(fm.m.key, fm.m.mask);
        let mut out = FlowModOutcome::default();
        let mut rule = Self::new_rule(fm, now_ms);
        if let Some(old_id) = table.cls.find_exact(&m, fm.priority) {
            if let Some(old) = table.cls.remove(old_id) {
                if !fm.flags.reset_counts {
                    rule.n_packets = old.n_packets;
                    rule.n_bytes = old.n_bytes;
                }
                self.timed.remove(&(table_id, old_id));
                out.removed.push(RemovedRule {
                    table_id,
                    rule: Rule::from_body(m, old),
                    reason: RemovedReason::Delete,
                });
            }
        } else if fm.flags.check_overlap {
            let clash = table
                .cls
                .iter()
                .any(|(_, om, op, _)| op == fm.priority && overlaps(&om, &m));
            if clash {
                return Err(FlowModError::Overlap);
            }
        }
        let timed = rule.has_timeout();
        table.has_conj |= rule.is_conjunctive();
        let id = table.cls.insert(m, fm.priority, rule);
        if timed {
            self.timed.insert((table_id, id));
        }
        out.added.push((table_id, id));
        self.version += 1;
        Ok(out)
    }

    fn select(&self, filter: &FlowFilter) -> Result<Vec<(u8, RuleId)>, FlowModError> {
        let mut hits = Vec::new();
        for t in self.table_ids(filter.table_id)? {
            let table = &self.tables[usize::from(t)];
            if let Some(p) = filter.strict {
                if let Some(id) = table.cls.find_exact(&filter.m, p)
                    && let Some((m, prio, r)) = table.cls.get(id)
                    && filter.selects(&m, prio, r)
                {
                    hits.push((t, id));
                }
            } else {
                hits.extend(
                    table
                        .cls
                        .iter()
                        .filter(|(_, m, p, r)| filter.selects(m, *p, r))
                        .map(|(id, ..)| (t, id)),
                );
            }
        }
        Ok(hits)
    }

    /// OFPFC_MODIFY(_STRICT): replaces the actions of the selected rules
    /// (counters reset with `reset_counts`). As in OpenFlow 1.0, when no
    /// rule is selected and no cookie mask is given, the flow is added.
    pub fn modify(&mut self, fm: &FlowMod, now_ms: u64) -> Result<FlowModOutcome, FlowModError> {
        let filter = FlowFilter {
            out_port: port::ANY,
            out_group: GROUP_ANY,
            ..FlowFilter::from_flow_mod(fm)
        };
        let hits = self.select(&filter)?;
        for (t, id) in &hits {
            Self::check_gotos(*t, &fm.actions)?;
            if let Some(r) = self.tables[usize::from(*t)].get(*id) {
                check_action_prereqs(&r.m, &fm.actions)?;
            }
        }
        if hits.is_empty() {
            if fm.cookie_mask == 0 {
                return self.add(fm, now_ms);
            }
            return Ok(FlowModOutcome::default());
        }
        let mut out = FlowModOutcome::default();
        for (t, id) in hits {
            let table = &mut self.tables[usize::from(t)];
            if let Some(r) = table.cls.get_mut(id) {
                r.actions = fm.actions.clone();
                table.has_conj |= r.is_conjunctive();
                if fm.flags.reset_counts {
                    r.n_packets = 0;
                    r.n_bytes = 0;
                }
                out.modified.push((t, id));
            }
        }
        self.version += 1;
        Ok(out)
    }

    /// OFPFC_DELETE(_STRICT) with a filter: removes and returns the rules.
    pub fn delete(
        &mut self,
        filter: &FlowFilter,
        reason: RemovedReason,
    ) -> Result<Vec<RemovedRule>, FlowModError> {
        let hits = self.select(filter)?;
        Ok(self.remove_rules(&hits, reason))
    }

    /// Removes the rules that use group `g` (after the group is deleted).
    pub fn delete_group_users(&mut self, g: GroupId) -> Vec<RemovedRule> {
        let filter = FlowFilter {
            out_group: g,
            ..FlowFilter::default()
        };
        let hits = self.select(&filter).unwrap_or_default();
        self.remove_rules(&hits, RemovedReason::GroupDelete)
    }

    /// Rules whose instructions or actions use meter `m`.
    fn meter_users(&self, m: crate::meter::MeterId) -> Vec<(u8, RuleId)> {
        let mut out = Vec::new();
        for (t, table) in self.tables.iter().enumerate() {
            for (id, rule) in table.iter() {
                if actions_use_meter(&rule.actions, m) {
                    out.push((t as u8, id));
                }
            }
        }
        out
    }

    /// How many rules use each meter (the `flow_count` of meter stats).
    pub fn meter_flow_counts(&self) -> std::collections::BTreeMap<crate::meter::MeterId, u32> {
        let mut out = std::collections::BTreeMap::new();
        for table in &self.tables {
            for (_, rule) in table.iter() {
                let mut seen = Vec::new();
                collect_meters(&rule.actions, &mut seen);
                seen.dedup();
                for m in seen {
                    *out.entry(m).or_insert(0) += 1;
                }
            }
        }
        out
    }

    /// Deletes every rule that uses meter `m` (a meter delete takes its
    /// flows with it, as in Open vSwitch); reported as plain deletes.
    pub fn delete_meter_users(&mut self, m: crate::meter::MeterId) -> Vec<RemovedRule> {
        let hits = self.meter_users(m);
        self.remove_rules(&hits, RemovedReason::Delete)
    }

    fn remove_rules(&mut self, ids: &[(u8, RuleId)], reason: RemovedReason) -> Vec<RemovedRule> {
        let mut out = Vec::with_capacity(ids.len());
        for &(t, id) in ids {
            let cls = &mut self.tables[usize::from(t)].cls;
            let Some((m, ..)) = cls.get(id) else {
                continue;
            };
            if let Some(body) = cls.remove(id) {
                self.timed.remove(&(t, id));
                out.push(RemovedRule {
                    table_id: t,
                    rule: Rule::from_body(m, body),
                    reason,
                });
            }
        }
        if !out.is_empty() {
            self.version += 1;
        }
        out
    }

    /// Removes every rule whose idle or hard timeout has passed at `now_ms`.
    pub fn expire(&mut self, now_ms: u64) -> Vec<RemovedRule> {
        let mut idle = Vec::new();
        let mut hard = Vec::new();
        for &(t, id) in &self.timed {
            let Some(r) = self.tables[usize::from(t)].body(id) else {
                continue;
            };
            let hard_at = r.created_ms + u64::from(r.hard_timeout) * 1000;
            let idle_at = r.last_used_ms + u64::from(r.idle_timeout) * 1000;
            if r.hard_timeout != 0 && now_ms >= hard_at {
                hard.push((t, id));
            } else if r.idle_timeout != 0 && now_ms >= idle_at {
                idle.push((t, id));
            }
        }
        hard.sort_unstable();
        idle.sort_unstable();
        let mut out = self.remove_rules(&hard, RemovedReason::HardTimeout);
        out.extend(self.remove_rules(&idle, RemovedReason::IdleTimeout));
        out
    }

    /// Credits `packets` to the tables of `lookups` (one entry per lookup a
    /// translation made: the table, and whether a rule matched), as OVS
    /// credits its tables from each megaflow's statistics.
    pub fn credit_lookups(&mut self, lookups: &[TableLookup], packets: u64) {
        for l in lookups {
            if let Some(t) = self.tables.get_mut(usize::from(l.table)) {
                let n = if l.matched {
                    &mut t.n_matched
                } else {
                    &mut t.n_missed
                };
                *n = n.saturating_add(packets);
            }
        }
    }

    /// Adds traffic to a rule's counters and marks it used at `now_ms`.
    /// Does not change [`version`](Self::version). Returns false if the rule is gone.
    pub fn credit(&mut self, table: u8, id: RuleId, packets: u64, bytes: u64, now_ms: u64) -> bool {
        let Some(t) = self.tables.get_mut(usize::from(table)) else {
            return false;
        };
        match t.cls.get_mut(id) {
            Some(r) => {
                r.n_packets = r.n_packets.saturating_add(packets);
                r.n_bytes = r.n_bytes.saturating_add(bytes);
                if packets > 0 {
                    r.last_used_ms = r.last_used_ms.max(now_ms);
                }
                true
            }
            None => false,
        }
    }

    /// Rules selected by `filter`, in table order then by descending
    /// priority (as ovs-ofctl dump-flows --sort would list them per table).
    /// Each rule's match is rebuilt as the iterator reaches it, so a dump
    /// of many rules does not hold a rebuilt match per rule at once.
    pub fn dump(
        &self,
        filter: &FlowFilter,
    ) -> impl Iterator<Item = (u8, RuleId, RuleRef<'_>)> + '_ {
        let hits = self.select(filter).unwrap_or_default();
        let mut keyed: Vec<(u8, u32, RuleId)> = hits
            .into_iter()
            .filter_map(|(t, id)| {
                let body = self.tables.get(usize::from(t))?.body(id)?;
                Some((t, body.priority, id))
            })
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        keyed
            .into_iter()
            .filter_map(move |(t, _, id)| self.rule(t, id).map(|r| (t, id, r)))
    }

    /// Totals over the rules selected by `filter`.
    pub fn aggregate(&self, filter: &FlowFilter) -> AggregateStats {
        let hits = self.select(filter).unwrap_or_default();
        hits.into_iter()
            .filter_map(|(t, id)| self.tables[usize::from(t)].body(id))
            .fold(AggregateStats::default(), |mut a, r| {
                a.packet_count += r.n_packets;
                a.byte_count += r.n_bytes;
                a.flow_count += 1;
                a
            })
    }

    /// Removes every rule of every table (`del-flows` without arguments
    /// does this through [`delete`](Self::delete); this skips the bookkeeping).
    pub fn clear(&mut self) {
        for t in &mut self.tables {
            t.cls.clear();
            t.has_conj = false;
        }
        self.timed.clear();
        self.version += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::Field;

    fn m(fields: &[(Field, u128)]) -> Match {
        let mut mm = Match::default();
        for (f, v) in fields {
            f.set(&mut mm.key, *v);
            f.unwildcard(&mut mm.mask);
        }
        mm
    }

    fn add(p: &mut Pipeline, table: u8, prio: u32, mm: Match, out_port: PortNo) -> RuleId {
        let mut fm = FlowMod::new(FlowModCommand::Add);
        fm.table_id = table;
        fm.priority = prio;
        fm.m = mm;
        fm.actions = vec![Action::Output {
            port: out_port,
            max_len: 0,
        }];
        p.flow_mod(&fm, 0).unwrap().added[0].1
    }

    fn ip_dst(v: u32) -> Match {
        m(&[(Field::DlType, 0x0800), (Field::NwDst, v.into())])
    }

    #[test]
    fn identical_add_replaces_and_keeps_counters_unless_reset_counts() {
        let mut p = Pipeline::new();
        let id = add(&mut p, 0, 10, ip_dst(1), 1);
        p.credit(0, id, 3, 300, 5);
        let id2 = add(&mut p, 0, 10, ip_dst(1), 2);
        assert_eq!(p.n_rules(), 1);
        let r = p.rule(0, id2).unwrap();
        assert_eq!((r.n_packets, r.n_bytes), (3, 300));
        assert_eq!(
            r.actions,
            vec![Action::Output {
                port: 2,
                max_len: 0
            }]
        );
        let mut fm = FlowMod::new(FlowModCommand::Add);
        fm.priority = 10;
        fm.m = ip_dst(1);
        fm.flags.reset_counts = true;
        let id3 = p.flow_mod(&fm, 0).unwrap().added[0].1;
        assert_eq!(p.rule(0, id3).unwrap().n_packets, 0);
    }

    #[test]
    fn check_overlap_refuses_overlapping_rule_of_same_priority() {
        let mut p = Pipeline::new();
        add(&mut p, 0, 10, m(&[(Field::DlType, 0x0800)]), 1);
        let mut fm = FlowMod::new(FlowModCommand::Add);
        fm.priority = 10;
        fm.m = ip_dst(5);
        fm.flags.check_overlap = true;
        assert_eq!(p.flow_mod(&fm, 0), Err(FlowModError::Overlap));
        fm.priority = 11;
        assert!(p.flow_mod(&fm, 0).is_ok());
        // Disjoint matches at the same priority do not overlap.
        fm.priority = 10;
        fm.m = m(&[(Field::DlType, 0x0806)]);
        assert!(p.flow_mod(&fm, 0).is_ok());
    }

    #[test]
    fn modify_loose_changes_subset_rules_and_strict_only_the_exact_one() {
        let mut p = Pipeline::new();
        let a = add(&mut p, 0, 10, ip_dst(1), 1);
        let b = add(&mut p, 0, 20, ip_dst(2), 1);
        let c = add(&mut p, 0, 10, m(&[(Field::DlType, 0x0806)]), 1);
        let new_actions = vec![Action::Output {
            port: 9,
            max_len: 0,
        }];
        let mut fm = FlowMod::new(FlowModCommand::Modify);
        fm.m = m(&[(Field::DlType, 0x0800)]);
        fm.actions = new_actions.clone();
        let o = p.flow_mod(&fm, 0).unwrap();
        assert_eq!(o.modified.len(), 2);
        assert_eq!(p.rule(0, a).unwrap().actions, new_actions);
        assert_eq!(p.rule(0, b).unwrap().actions, new_actions);
        assert_ne!(p.rule(0, c).unwrap().actions, new_actions);

        let mut fm = FlowMod::new(FlowModCommand::ModifyStrict);
        fm.m = ip_dst(2);
        fm.priority = 10; // b has priority 20: not selected, so added (OF1.0)
        fm.actions = vec![];
        let o = p.flow_mod(&fm, 0).unwrap();
        assert_eq!(o.added.len(), 1);
        assert_eq!(p.rule(0, b).unwrap().actions, new_actions);
        assert_eq!(p.n_rules(), 4);
    }

    #[test]
    fn modify_with_cookie_mask_and_no_match_adds_nothing() {
        let mut p = Pipeline::new();
        let mut fm = FlowMod::new(FlowModCommand::Modify);
        fm.cookie = 1;
        fm.cookie_mask = u64::MAX;
        assert!(p.flow_mod(&fm, 0).unwrap().added.is_empty());
        assert_eq!(p.n_rules(), 0);
    }

    #[test]
    fn delete_filters_by_out_port_cookie_and_strictness() {
        let mut p = Pipeline::new();
        add(&mut p, 0, 10, ip_dst(1), 1);
        add(&mut p, 0, 10, ip_dst(2), 2);
        add(&mut p, 3, 10, ip_dst(3), 2);
        let mut fm = FlowMod::new(FlowModCommand::Delete);
        fm.out_port = 2;
        let o = p.flow_mod(&fm, 0).unwrap();
        assert_eq!(o.removed.len(), 2, "both tables searched");
        assert!(o.removed.iter().all(|r| r.reason == RemovedReason::Delete));
        assert_eq!(p.n_rules(), 1);

        let mut fm = FlowMod::new(FlowModCommand::DeleteStrict);
        fm.m = ip_dst(1);
        fm.priority = 11;
        assert!(p.flow_mod(&fm, 0).unwrap().removed.is_empty());
        fm.priority = 10;
        assert_eq!(p.flow_mod(&fm, 0).unwrap().removed.len(), 1);

        let mut fm = FlowMod::new(FlowModCommand::Add);
        fm.cookie = 0x1234;
        p.flow_mod(&fm, 0).unwrap();
        let mut del = FlowMod::new(FlowModCommand::Delete);
        del.cookie = 0x1200;
        del.cookie_mask = 0xff00;
        assert_eq!(p.flow_mod(&del, 0).unwrap().removed.len(), 1);
    }

    #[test]
    fn timeouts_expire_idle_and_hard_rules_with_reason() {
        let mut p = Pipeline::new();
        let mut fm = FlowMod::new(FlowModCommand::Add);
        fm.m = ip_dst(1);
        fm.idle_timeout = 10;
        let idle_id = p.flow_mod(&fm, 0).unwrap().added[0].1;
        fm.m = ip_dst(2);
        fm.idle_timeout = 0;
        fm.hard_timeout = 30;
        p.flow_mod(&fm, 0).unwrap();
        assert!(p.expire(9_999).is_empty());
        p.credit(0, idle_id, 1, 60, 9_000); // used: idle clock restarts
        assert!(p.expire(18_999).is_empty());
        let gone = p.expire(19_000);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].reason, RemovedReason::IdleTimeout);
        let gone = p.expire(30_000);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].reason, RemovedReason::HardTimeout);
        assert_eq!(p.n_rules(), 0);
    }

    #[test]
    fn version_bumps_on_changes_but_not_on_credit() {
        let mut p = Pipeline::new();
        let v0 = p.version();
        let id = add(&mut p, 0, 1, Match::default(), 1);
        let v1 = p.version();
        assert!(v1 > v0);
        p.credit(0, id, 1, 1, 1);
        assert_eq!(p.version(), v1);
        p.delete(&FlowFilter::default(), RemovedReason::Delete)
            .unwrap();
        assert!(p.version() > v1);
    }

    #[test]
    fn goto_table_must_go_forward() {
        let mut p = Pipeline::new();
        let mut fm = FlowMod::new(FlowModCommand::Add);
        fm.table_id = 2;
        fm.actions = vec![Action::GotoTable(2)];
        assert_eq!(
            p.flow_mod(&fm, 0),
            Err(FlowModError::BadGoto { from: 2, to: 2 })
        );
    }

    #[test]
    fn dump_and_aggregate_respect_filter() {
        let mut p = Pipeline::new();
        let a = add(&mut p, 0, 10, ip_dst(1), 1);
        add(&mut p, 0, 20, ip_dst(2), 2);
        add(&mut p, 1, 10, m(&[(Field::DlType, 0x0806)]), 1);
        p.credit(0, a, 2, 200, 1);
        let f = FlowFilter {
            m: m(&[(Field::DlType, 0x0800)]),
            ..FlowFilter::default()
        };
        let d: Vec<_> = p.dump(&f).collect();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].2.priority, 20, "higher priority first");
        let agg = p.aggregate(&FlowFilter {
            out_port: 1,
            ..FlowFilter::default()
        });
        assert_eq!(agg.flow_count, 2);
        assert_eq!(agg.packet_count, 2);
        assert_eq!(agg.byte_count, 200);
    }

    #[test]
    fn deleting_a_group_removes_the_rules_that_use_it() {
        let mut p = Pipeline::new();
        let mut fm = FlowMod::new(FlowModCommand::Add);
        fm.m = ip_dst(1);
        fm.actions = vec![Action::WriteActions(vec![Action::Group(7)])];
        p.flow_mod(&fm, 0).unwrap();
        add(&mut p, 0, 10, ip_dst(2), 1);
        let f = FlowFilter {
            out_group: 7,
            ..FlowFilter::default()
        };
        assert_eq!(p.dump(&f).count(), 1, "out_group sees into write_actions");
        let gone = p.delete_group_users(7);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].reason, RemovedReason::GroupDelete);
        assert_eq!(p.n_rules(), 1);
    }

    #[test]
    fn modify_with_reset_counts_zeroes_counters_and_keeps_the_rule() {
        let mut p = Pipeline::new();
        let id = add(&mut p, 0, 10, ip_dst(1), 1);
        p.credit(0, id, 5, 500, 1);
        let mut fm = FlowMod::new(FlowModCommand::ModifyStrict);
        fm.table_id = 0;
        fm.priority = 10;
        fm.m = ip_dst(1);
        fm.flags.reset_counts = true;
        let o = p.flow_mod(&fm, 2).unwrap();
        assert_eq!(o.modified, vec![(0, id)]);
        let r = p.rule(0, id).unwrap();
        assert_eq!((r.n_packets, r.n_bytes), (0, 0));
        assert!(r.actions.is_empty());
    }

    #[test]
    fn add_refuses_a_match_missing_prerequisites() {
        let mut p = Pipeline::new();
        let mut fm = FlowMod::new(FlowModCommand::Add);
        fm.m = m(&[(Field::TpDst, 80)]);
        let e = p.flow_mod(&fm, 0).unwrap_err();
        assert!(e.to_string().starts_with("tp_dst requires"), "{e}");
        assert_eq!(p.n_rules(), 0);
    }

    fn conj_pipeline() -> Pipeline {
        let mut p = Pipeline::new();
        for f in [
            "priority=100,ip,nw_src=10.0.0.1,actions=conjunction(1,1/2)",
            "priority=100,ip,nw_src=10.0.0.2,actions=conjunction(1,1/2),conjunction(2,1/2)",
            "priority=100,tcp,tp_dst=80,actions=conjunction(1,2/2)",
            "priority=100,tcp,tp_dst=443,actions=conjunction(1,2/2)",
            "priority=100,udp,tp_dst=53,actions=conjunction(2,2/2)",
            "priority=100,conj_id=1,ip,actions=output:1",
            "priority=100,conj_id=2,ip,actions=output:2",
            "priority=1,actions=output:9",
        ] {
            p.add(
                &crate::text::parse_flow_mod(f, FlowModCommand::Add).unwrap(),
                0,
            )
            .unwrap();
        }
        p
    }

    fn pkt(src: u32, proto: u8, dport: u16) -> FlowKey {
        FlowKey {
            dl_type: 0x0800,
            nw_src: src,
            nw_proto: proto,
            tp_dst: dport,
            ..FlowKey::default()
        }
    }

    fn out_port(p: &Pipeline, k: &FlowKey, wc: &mut FlowKey) -> Option<u32> {
        let (_, r) = p.lookup(0, k, wc)?;
        match r.actions.first() {
            Some(Action::Output { port, .. }) => Some(*port),
            _ => None,
        }
    }

    #[test]
    fn conjunctive_match_needs_one_flow_from_every_dimension() {
        let p = conj_pipeline();
        let cases = [
            (pkt(0x0a00_0001, 6, 80), 1),
            (pkt(0x0a00_0002, 6, 443), 1),
            (pkt(0x0a00_0003, 6, 80), 9),
            (pkt(0x0a00_0001, 6, 22), 9),
            // 10.0.0.2 is in both conjunctions; udp/53 completes only id 2.
            (pkt(0x0a00_0002, 17, 53), 2),
            (pkt(0x0a00_0001, 17, 53), 9),
        ];
        for (k, want) in cases {
            let mut wc = FlowKey::default();
            assert_eq!(out_port(&p, &k, &mut wc), Some(want), "{k:?}");
            // The key itself is untouched: conj_id is only set for the
            // second search.
            assert_eq!(k.conj_id, 0);
        }
    }

    #[test]
    fn conjunctive_lookup_wildcards_are_sound() {
        let p = conj_pipeline();
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (src, proto, dport) in [(1, 6, 80), (2, 17, 53), (3, 6, 443), (2, 6, 22)] {
            let k = pkt(0x0a00_0000 | src, proto, dport);
            let mut wc = FlowKey::default();
            let want = out_port(&p, &k, &mut wc);
            for _ in 0..200 {
                // Any packet that agrees with `k` on the consulted bits gets
                // the same answer.
                let mut q = k;
                for (w, m) in q.words_mut().iter_mut().zip(wc.words()) {
                    *w = (*w & m) | (rnd() & !m);
                }
                q.conj_id = 0;
                let mut wc2 = FlowKey::default();
                assert_eq!(out_port(&p, &q, &mut wc2), want, "{q:?}");
            }
        }
    }

    #[test]
    fn a_table_without_conjunctions_keeps_the_plain_lookup() {
        let mut p = Pipeline::new();
        p.add(
            &crate::text::parse_flow_mod("priority=5,ip,actions=output:3", FlowModCommand::Add)
                .unwrap(),
            0,
        )
        .unwrap();
        assert!(!p.tables[0].has_conj);
        let mut wc = FlowKey::default();
        assert_eq!(out_port(&p, &pkt(1, 6, 1), &mut wc), Some(3));
        assert!(conj_pipeline().tables[0].has_conj);
    }

    #[test]
    fn vlan_actions_need_a_tag_that_the_match_or_a_push_establishes() {
        let vid = |v: u128| Action::SetField {
            field: Field::VlanVid,
            value: v,
            mask: None,
        };
        let pcp = Action::SetField {
            field: Field::DlVlanPcp,
            value: 3,
            mask: None,
        };
        let any = Match::default();
        let tagged = crate::text::parse_flow_mod("dl_vlan=3,actions=drop", FlowModCommand::Add)
            .unwrap()
            .m;
        let untagged = crate::text::parse_flow_mod("vlan_tci=0,actions=drop", FlowModCommand::Add)
            .unwrap()
            .m;
        // (match, actions, accepted) as stock OVS 3.1 answers them.
        let cases: Vec<(&Match, Vec<Action>, bool)> = vec![
            (&any, vec![vid(0x1005)], false),
            (&untagged, vec![vid(0x1005)], false),
            (&tagged, vec![vid(0x1005)], true),
            (&any, vec![Action::PushVlan(0x8100), vid(0x1005)], true),
            (&any, vec![Action::PushVlan(0x8100), pcp.clone()], true),
            (&any, vec![Action::WriteActions(vec![vid(0x1005)])], false),
            (&any, vec![Action::PopVlan], false),
            (&any, vec![Action::StripVlan], true),
            (&any, vec![Action::PushVlan(0x8100), Action::PopVlan], true),
            (&tagged, vec![Action::PopVlan], true),
            (&tagged, vec![Action::PopVlan, Action::PopVlan], false),
            (&tagged, vec![Action::PopVlan, vid(0x1005)], false),
            (&tagged, vec![Action::PopVlan, pcp.clone()], false),
            (&any, vec![Action::SetVlanVid(5), pcp.clone()], true),
            (
                &any,
                vec![
                    Action::SetField {
                        field: Field::VlanTci,
                        value: 0x1003,
                        mask: None,
                    },
                    vid(0x1005),
                ],
                true,
            ),
            (
                &tagged,
                vec![
                    Action::SetField {
                        field: Field::VlanTci,
                        value: 0,
                        mask: None,
                    },
                    pcp.clone(),
                ],
                false,
            ),
        ];
        for (m, actions, ok) in cases {
            assert_eq!(
                check_action_prereqs(m, &actions).is_ok(),
                ok,
                "{actions:?} on {m:?}"
            );
        }
    }

    #[test]
    fn vlan_pushes_and_pops_follow_both_tags_and_a_third_tag_is_refused() {
        let parse = |t: &str| {
            crate::text::parse_flow_mod(&format!("{t}actions=drop"), FlowModCommand::Add)
                .unwrap()
                .m
        };
        let (any, tagged, untagged) = (parse(""), parse("dl_vlan=3,"), parse("vlan_tci=0,"));
        let push = Action::PushVlan(0x8100);
        let pop = Action::PopVlan;
        let too_many = Err(ActionCheckError::TooManyVlanTags);
        // (match, actions, outcome) as stock OVS 3.1 answers them.
        let cases: Vec<(&Match, Vec<Action>, Result<(), ActionCheckError>)> = vec![
            (&any, vec![push.clone(), push.clone()], Ok(())),
            (
                &any,
                vec![push.clone(), push.clone(), push.clone()],
                too_many.clone(),
            ),
            (&tagged, vec![push.clone(), push.clone()], too_many.clone()),
            (
                &any,
                vec![Action::SetVlanVid(3), push.clone(), push.clone()],
                too_many.clone(),
            ),
            (
                &any,
                vec![push.clone(), push.clone(), pop.clone(), pop.clone()],
                Ok(()),
            ),
            (
                &untagged,
                vec![push.clone(), push.clone(), pop.clone(), push.clone()],
                Ok(()),
            ),
            (
                &any,
                vec![push.clone(), push.clone(), Action::SetVlanVid(4)],
                Ok(()),
            ),
        ];
        for (m, actions, want) in cases {
            assert_eq!(
                check_action_prereqs(m, &actions),
                want,
                "{actions:?} on {m:?}"
            );
        }
        // A pushed tag covers the matched one, which a pop then brings back; an
        // unmatched packet's inner tag is not known, so it cannot be popped.
        assert_eq!(
            check_action_prereqs(&tagged, &[push.clone(), pop.clone(), pop.clone()]),
            Ok(())
        );
        assert!(matches!(
            check_action_prereqs(&any, &[push.clone(), pop.clone(), pop.clone()]),
            Err(ActionCheckError::MatchInconsistent(_))
        ));
        // The switch refuses a flow_mod that would push a third tag.
        let mut p = Pipeline::new();
        let mut fm = FlowMod::new(FlowModCommand::Add);
        fm.m = tagged;
        fm.actions = vec![push.clone(), push];
        assert_eq!(
            p.add(&fm, 0).unwrap_err(),
            FlowModError::Actions(ActionCheckError::TooManyVlanTags)
        );
        assert_eq!(p.n_rules(), 0);
    }

    #[test]
    fn set_field_without_its_prerequisite_is_refused_on_add_and_modify() {
        let mut p = Pipeline::new();
        let mut fm = FlowMod::new(FlowModCommand::Add);
        fm.actions = vec![Action::SetField {
            field: Field::NwDst,
            value: 1,
            mask: None,
        }];
        assert!(matches!(
            p.add(&fm, 0),
            Err(FlowModError::Actions(ActionCheckError::MatchInconsistent(
                _
            )))
        ));
        assert_eq!(p.n_rules(), 0);
        // A catch-all rule may not be modified into one either.
        let plain = FlowMod::new(FlowModCommand::Add);
        p.add(&plain, 0).unwrap();
        let mut m = fm.clone();
        m.command = FlowModCommand::Modify;
        assert!(matches!(
            p.modify(&m, 0),
            Err(FlowModError::Actions(ActionCheckError::MatchInconsistent(
                _
            )))
        ));
    }
}
