//! Tuple-space-search classifier.
//!
//! Rules are grouped into subtables, one per distinct mask. Each subtable is
//! a hash table keyed by the masked key; a bucket is a chain of the rules
//! that share the masked key, sorted by (priority descending, id ascending),
//! so the chain's head is the bucket's answer. Subtables are visited in
//! decreasing order of their highest priority, and a lookup stops as soon as
//! the best rule found beats every rule the remaining subtables could hold.
//!
//! Rule ids are never reused: they grow with every insertion, so "lowest id"
//! and "inserted first" agree. (After 2^32 insertions into one classifier the
//! counter wraps; a megaflow cache replacing 100k flows per second reaches
//! that after about 12 hours, so long-lived users should `clear()` and
//! rebuild, or compare ids only within a generation.)

use std::collections::BTreeMap;

use hashbrown::HashTable;
use rustc_hash::FxHashMap;

use crate::hash::hash_masked_sparse;
use crate::key::{FlowKey, KEY_WORDS};
use crate::matches::Match;

/// Identity of a rule in a [`Classifier`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct RuleId(pub u32);

const NIL: u32 = u32::MAX;

/// Masked-key words a rule stores inline; keys with more non-zero mask
/// words go to the heap.
const INLINE_WORDS: usize = 4;

/// A rule's masked key, reduced to the words where its subtable's mask is
/// non-zero (in the order of [`Subtable::words`]). The mask itself lives in
/// the subtable, so a rule costs a few words instead of a full [`Match`].
#[derive(Clone)]
enum SparseKey {
    /// Unused trailing words are zero.
    Inline([u64; INLINE_WORDS]),
    Heap(Box<[u64]>),
}

impl SparseKey {
    fn new(key: &FlowKey, words: &[u8]) -> SparseKey {
        let kw = key.words();
        let word = |i: &u8| kw.get(usize::from(*i)).copied().unwrap_or(0);
        if words.len() <= INLINE_WORDS {
            let mut a = [0u64; INLINE_WORDS];
            for (d, i) in a.iter_mut().zip(words) {
                *d = word(i);
            }
            SparseKey::Inline(a)
        } else {
            SparseKey::Heap(words.iter().map(word).collect())
        }
    }

    /// The stored words (for `Inline`, padded with zeros up to
    /// [`INLINE_WORDS`]; callers zip with the subtable's word list).
    #[inline]
    fn words(&self) -> &[u64] {
        match self {
            SparseKey::Inline(a) => a,
            SparseKey::Heap(b) => b,
        }
    }
}

/// One rule, stored in a slab slot. `repr(C)` keeps the fields a lookup
/// reads (priority, id, key) together at the start.
#[repr(C)]
#[derive(Clone)]
struct Entry<T> {
    priority: u32,
    id: u32,
    /// Slab slot of the next rule in the same bucket, or [`NIL`].
    next: u32,
    /// Subtable slot.
    subtable: u32,
    key: SparseKey,
    value: T,
}

/// A bucket head inside a subtable's hash table.
#[derive(Clone, Copy)]
struct Head {
    hash: u64,
    slot: u32,
}

#[derive(Clone)]
struct Subtable {
    mask: FlowKey,
    /// Indices of the non-zero words of `mask`.
    words: Vec<u8>,
    table: HashTable<Head>,
    /// Number of rules per priority (to maintain `max_priority`).
    priorities: BTreeMap<u32, u32>,
    max_priority: u32,
    n_rules: usize,
}

impl Subtable {
    fn new(mask: FlowKey) -> Subtable {
        let words = (0..KEY_WORDS)
            .filter(|&i| mask.words()[i] != 0)
            .map(|i| i as u8)
            .collect();
        Subtable {
            mask,
            words,
            table: HashTable::new(),
            priorities: BTreeMap::new(),
            max_priority: 0,
            n_rules: 0,
        }
    }

    #[inline]
    fn hash(&self, key: &FlowKey) -> u64 {
        hash_masked_sparse(key, &self.mask, &self.words)
    }

    /// True when `key & mask` equals the rule's (masked, sparse) `rule_key`.
    #[inline]
    fn key_matches(&self, key: &FlowKey, rule_key: &SparseKey) -> bool {
        sparse_key_matches(&self.words, &self.mask, key, rule_key)
    }

    /// The full masked key of a rule stored as `rule_key`.
    fn expand(&self, rule_key: &SparseKey) -> FlowKey {
        let mut k = FlowKey::default();
        let kw = k.words_mut();
        for (&i, r) in self.words.iter().zip(rule_key.words()) {
            if let Some(w) = kw.get_mut(usize::from(i)) {
                *w = *r;
            }
        }
        k
    }
}

/// True when `key & mask` equals `rule_key`, stored for a subtable whose
/// non-zero mask words are `words`.
#[inline]
fn sparse_key_matches(words: &[u8], mask: &FlowKey, key: &FlowKey, rule_key: &SparseKey) -> bool {
    let kw = key.words();
    let mw = mask.words();
    let rw = rule_key.words();
    rw.len() >= words.len()
        && words.iter().zip(rw).all(|(&i, r)| {
            let i = usize::from(i);
            matches!((kw.get(i), mw.get(i)), (Some(k), Some(m)) if k & m == *r)
        })
}

/// ORs a subtable's mask into a megaflow mask.
#[inline]
fn or_subtable_mask(wc: &mut FlowKey, sub: &Subtable) {
    let mw = sub.mask.words();
    let ww = wc.words_mut();
    for &i in &sub.words {
        let i = usize::from(i);
        if let (Some(w), Some(m)) = (ww.get_mut(i), mw.get(i)) {
            *w |= m;
        }
    }
}

/// A set of prioritized matches, each with a value of type `T`. Cloning
/// copies every rule (a bundle commit snapshots tables with it).
#[derive(Clone)]
pub struct Classifier<T> {
    entries: Vec<Option<Entry<T>>>,
    free_slots: Vec<u32>,
    ids: FxHashMap<u32, u32>,
    next_id: u32,
    subtables: Vec<Option<Subtable>>,
    free_subtables: Vec<u32>,
    by_mask: FxHashMap<FlowKey, u32>,
    /// Live subtable slots by decreasing `max_priority`.
    order: Vec<u32>,
}

impl<T> Default for Classifier<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> std::fmt::Debug for Classifier<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("rules", &self.ids.len())
            .field("subtables", &self.order.len())
            .finish()
    }
}

impl<T> Classifier<T> {
    pub fn new() -> Self {
        Classifier {
            entries: Vec::new(),
            free_slots: Vec::new(),
            ids: FxHashMap::default(),
            next_id: 0,
            subtables: Vec::new(),
            free_subtables: Vec::new(),
            by_mask: FxHashMap::default(),
            order: Vec::new(),
        }
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Number of subtables (distinct masks).
    pub fn n_subtables(&self) -> usize {
        self.order.len()
    }

    /// Removes every rule. Ids of removed rules are not reused.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.free_slots.clear();
        self.ids.clear();
        self.subtables.clear();
        self.free_subtables.clear();
        self.by_mask.clear();
        self.order.clear();
    }

    #[inline]
    fn entry(&self, slot: u32) -> Option<&Entry<T>> {
        self.entries.get(slot as usize).and_then(Option::as_ref)
    }

    #[inline]
    fn entry_mut(&mut self, slot: u32) -> Option<&mut Entry<T>> {
        self.entries.get_mut(slot as usize).and_then(Option::as_mut)
    }

    #[inline]
    fn subtable(&self, st: u32) -> Option<&Subtable> {
        self.subtables.get(st as usize).and_then(Option::as_ref)
    }

    /// Adds a rule. Several rules may share a (match, priority); the one
    /// inserted first wins lookups.
    pub fn insert(&mut self, m: Match, priority: u32, value: T) -> RuleId {
        let m = Match::new(m.key, m.mask);
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let st = self.subtable_for(&m.mask);
        let Some(sparse) = self.subtable(st).map(|s| SparseKey::new(&m.key, &s.words)) else {
            unreachable!("subtable_for returns a live subtable");
        };
        let entry = Entry {
            key: sparse,
            priority,
            id,
            next: NIL,
            subtable: st,
            value,
        };
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.entries[s as usize] = Some(entry);
                s
            }
            None => {
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as u32
            }
        };
        self.ids.insert(id, slot);

        // Link into the bucket.
        let entries = &mut self.entries;
        let Some(sub) = self.subtables.get_mut(st as usize).and_then(Option::as_mut) else {
            unreachable!("subtable_for returns a live subtable");
        };
        let hash = sub.hash(&m.key);
        let found = sub.table.find_mut(hash, |h| {
            h.hash == hash
                && entries[h.slot as usize]
                    .as_ref()
                    .is_some_and(|e| sparse_key_matches(&sub.words, &sub.mask, &m.key, &e.key))
        });
        match found {
            None => {
                sub.table
                    .insert_unique(hash, Head { hash, slot }, |h| h.hash);
            }
            Some(head) => {
                let rank = |e: &Entry<T>| (std::cmp::Reverse(e.priority), e.id);
                let new_rank = (std::cmp::Reverse(priority), id);
                let head_slot = head.slot;
                let head_rank = entries[head_slot as usize].as_ref().map(rank);
                if head_rank.is_none_or(|r| new_rank < r) {
                    if let Some(e) = entries[slot as usize].as_mut() {
                        e.next = head_slot;
                    }
                    head.slot = slot;
                } else {
                    let mut prev = head_slot;
                    loop {
                        let next = entries[prev as usize].as_ref().map_or(NIL, |e| e.next);
                        let after = next == NIL
                            || entries[next as usize]
                                .as_ref()
                                .is_none_or(|e| new_rank < rank(e));
                        if after {
                            if let Some(e) = entries[slot as usize].as_mut() {
                                e.next = next;
                            }
                            if let Some(e) = entries[prev as usize].as_mut() {
                                e.next = slot;
                            }
                            break;
                        }
                        prev = next;
                    }
                }
            }
        }
        sub.n_rules += 1;
        *sub.priorities.entry(priority).or_insert(0) += 1;
        if sub.n_rules == 1 || priority > sub.max_priority {
            sub.max_priority = priority;
            self.reposition(st);
        }
        RuleId(id)
    }

    /// Slot of the subtable for `mask`, created when missing.
    fn subtable_for(&mut self, mask: &FlowKey) -> u32 {
        if let Some(&st) = self.by_mask.get(mask) {
            return st;
        }
        let sub = Subtable::new(*mask);
        let st = match self.free_subtables.pop() {
            Some(s) => {
                self.subtables[s as usize] = Some(sub);
                s
            }
            None => {
                self.subtables.push(Some(sub));
                (self.subtables.len() - 1) as u32
            }
        };
        self.by_mask.insert(*mask, st);
        st
    }

    /// Moves subtable `st` to its place in `order` after its max priority
    /// changed (inserting it when it is not there yet).
    fn reposition(&mut self, st: u32) {
        if let Some(pos) = self.order.iter().position(|&s| s == st) {
            self.order.remove(pos);
        }
        let Some(prio) = self.subtable(st).map(|s| s.max_priority) else {
            return;
        };
        let subtables = &self.subtables;
        let max_of = |s: u32| {
            subtables
                .get(s as usize)
                .and_then(Option::as_ref)
                .map_or(0, |t| t.max_priority)
        };
        let at = self.order.partition_point(|&s| max_of(s) >= prio);
        self.order.insert(at, st);
    }

    /// Removes a rule, returning its value.
    pub fn remove(&mut self, id: RuleId) -> Option<T> {
        let slot = self.ids.remove(&id.0)?;
        let (st, key, priority, next) = {
            let e = self.entry(slot)?;
            let key = self.subtable(e.subtable)?.expand(&e.key);
            (e.subtable, key, e.priority, e.next)
        };
        let entries = &mut self.entries;
        let sub = self
            .subtables
            .get_mut(st as usize)
            .and_then(Option::as_mut)?;
        let hash = sub.hash(&key);
        if let Ok(mut head) = sub.table.find_entry(hash, |h| {
            h.hash == hash
                && entries[h.slot as usize]
                    .as_ref()
                    .is_some_and(|e| sparse_key_matches(&sub.words, &sub.mask, &key, &e.key))
        }) {
            let head_slot = head.get().slot;
            if head_slot == slot {
                if next == NIL {
                    head.remove();
                } else {
                    head.get_mut().slot = next;
                }
            } else {
                let mut prev = head_slot;
                while prev != NIL {
                    let pnext = entries[prev as usize].as_ref().map_or(NIL, |e| e.next);
                    if pnext == slot {
                        if let Some(e) = entries[prev as usize].as_mut() {
                            e.next = next;
                        }
                        break;
                    }
                    prev = pnext;
                }
            }
        }
        sub.n_rules -= 1;
        if let Some(c) = sub.priorities.get_mut(&priority) {
            *c -= 1;
            if *c == 0 {
                sub.priorities.remove(&priority);
            }
        }
        if sub.n_rules == 0 {
            let mask = sub.mask;
            self.subtables[st as usize] = None;
            self.free_subtables.push(st);
            self.by_mask.remove(&mask);
            if let Some(pos) = self.order.iter().position(|&s| s == st) {
                self.order.remove(pos);
            }
        } else {
            let new_max = sub.priorities.keys().next_back().copied().unwrap_or(0);
            if new_max != sub.max_priority {
                sub.max_priority = new_max;
                self.reposition(st);
            }
        }
        let e = self.entries.get_mut(slot as usize)?.take()?;
        self.free_slots.push(slot);
        Some(e.value)
    }

    /// The match of a stored rule, rebuilt from its sparse key and its
    /// subtable's mask.
    fn match_of(&self, e: &Entry<T>) -> Match {
        self.subtable(e.subtable)
            .map_or_else(Match::default, |s| Match {
                key: s.expand(&e.key),
                mask: s.mask,
            })
    }

    /// The match, priority and value of a rule. The match is rebuilt (rules
    /// store only the masked key's non-zero-mask words).
    pub fn get(&self, id: RuleId) -> Option<(Match, u32, &T)> {
        let e = self.entry(*self.ids.get(&id.0)?)?;
        Some((self.match_of(e), e.priority, &e.value))
    }

    /// The value of a rule (without rebuilding its match).
    pub fn get_value(&self, id: RuleId) -> Option<&T> {
        let e = self.entry(*self.ids.get(&id.0)?)?;
        Some(&e.value)
    }

    /// The value of a rule, mutable.
    pub fn get_mut(&mut self, id: RuleId) -> Option<&mut T> {
        let slot = *self.ids.get(&id.0)?;
        self.entry_mut(slot).map(|e| &mut e.value)
    }

    /// The first-inserted rule with exactly this match and priority.
    pub fn find_exact(&self, m: &Match, priority: u32) -> Option<RuleId> {
        let m = Match::new(m.key, m.mask);
        let st = *self.by_mask.get(&m.mask)?;
        let sub = self.subtable(st)?;
        let mut slot = self.bucket_head(sub, &m.key)?;
        let mut best: Option<u32> = None;
        while let Some(e) = self.entry(slot) {
            if e.priority == priority {
                best = Some(best.map_or(e.id, |b| b.min(e.id)));
            }
            slot = e.next;
        }
        best.map(RuleId)
    }

    #[inline]
    fn bucket_head(&self, sub: &Subtable, key: &FlowKey) -> Option<u32> {
        let hash = sub.hash(key);
        sub.table
            .find(hash, |h| {
                h.hash == hash
                    && self
                        .entry(h.slot)
                        .is_some_and(|e| sub.key_matches(key, &e.key))
            })
            .map(|h| h.slot)
    }

    /// Highest-priority rule matching `key`; ties between equal priorities go
    /// to the rule inserted first (lowest [`RuleId`]).
    ///
    /// ORs into `wc` the mask of every subtable consulted, so that
    /// `Match::new(*key, *wc)` is a correct megaflow: every packet it matches
    /// gets the same answer.
    pub fn lookup(&self, key: &FlowKey, wc: &mut FlowKey) -> Option<(RuleId, &T)> {
        self.lookup_inner::<true>(key, wc)
    }

    /// [`Classifier::lookup`] without wildcard tracking (megaflow cache fast path).
    #[inline]
    pub fn lookup_no_wc(&self, key: &FlowKey) -> Option<(RuleId, &T)> {
        let mut unused = FlowKey::default();
        self.lookup_inner::<false>(key, &mut unused)
    }

    #[inline]
    fn lookup_inner<const WC: bool>(
        &self,
        key: &FlowKey,
        wc: &mut FlowKey,
    ) -> Option<(RuleId, &T)> {
        let mut best: Option<&Entry<T>> = None;
        for &st in &self.order {
            let Some(sub) = self.subtable(st) else {
                continue;
            };
            if let Some(b) = best
                && b.priority > sub.max_priority
            {
                break;
            }
            if WC {
                let mw = sub.mask.words();
                let ww = wc.words_mut();
                for &i in &sub.words {
                    let i = usize::from(i);
                    if let (Some(w), Some(m)) = (ww.get_mut(i), mw.get(i)) {
                        *w |= m;
                    }
                }
            }
            if let Some(e) = self.bucket_head(sub, key).and_then(|s| self.entry(s)) {
                let better = best.is_none_or(|b| {
                    (e.priority, std::cmp::Reverse(e.id)) > (b.priority, std::cmp::Reverse(b.id))
                });
                if better {
                    best = Some(e);
                }
            }
        }
        best.map(|e| (RuleId(e.id), &e.value))
    }

    /// Like [`Classifier::lookup`], but only rules whose value satisfies
    /// `keep` are candidates: a bucket's chain is walked past the others.
    /// (Used for tables holding conjunctive flows, which never match on
    /// their own.)
    pub fn lookup_where(
        &self,
        key: &FlowKey,
        wc: &mut FlowKey,
        keep: impl Fn(&T) -> bool,
    ) -> Option<(RuleId, &T)> {
        let mut best: Option<&Entry<T>> = None;
        for &st in &self.order {
            let Some(sub) = self.subtable(st) else {
                continue;
            };
            if let Some(b) = best
                && b.priority > sub.max_priority
            {
                break;
            }
            or_subtable_mask(wc, sub);
            let mut slot = self.bucket_head(sub, key);
            while let Some(e) = slot.and_then(|s| self.entry(s)) {
                if keep(&e.value) {
                    let better = best.is_none_or(|b| {
                        (e.priority, std::cmp::Reverse(e.id))
                            > (b.priority, std::cmp::Reverse(b.id))
                    });
                    if better {
                        best = Some(e);
                    }
                    break;
                }
                slot = (e.next != NIL).then_some(e.next);
            }
        }
        best.map(|e| (RuleId(e.id), &e.value))
    }

    /// Calls `f` with every rule matching `key` whose priority is above
    /// `min` (every matching rule when `min` is `None`), highest-priority
    /// subtables first; ORs the mask of every subtable consulted into `wc`.
    pub fn for_each_match_above(
        &self,
        key: &FlowKey,
        wc: &mut FlowKey,
        min: Option<u32>,
        mut f: impl FnMut(RuleId, u32, &T),
    ) {
        for &st in &self.order {
            let Some(sub) = self.subtable(st) else {
                continue;
            };
            if min.is_some_and(|m| sub.max_priority <= m) {
                break;
            }
            or_subtable_mask(wc, sub);
            let mut slot = self.bucket_head(sub, key);
            while let Some(e) = slot.and_then(|s| self.entry(s)) {
                if min.is_some_and(|m| e.priority <= m) {
                    break;
                }
                f(RuleId(e.id), e.priority, &e.value);
                slot = (e.next != NIL).then_some(e.next);
            }
        }
    }

    /// Like [`Classifier::lookup_no_wc`] but returns the first match found
    /// without looking for an equal-priority rule with a lower id in the
    /// remaining subtables. Gives the same answer as `lookup_no_wc` whenever
    /// no packet matches two rules of the same priority, as in a megaflow
    /// cache (whose flows are disjoint by construction); faster there because
    /// a hit ends the search.
    #[inline]
    pub fn lookup_first(&self, key: &FlowKey) -> Option<(RuleId, &T)> {
        let mut best: Option<&Entry<T>> = None;
        for &st in &self.order {
            let Some(sub) = self.subtable(st) else {
                continue;
            };
            if let Some(b) = best
                && b.priority >= sub.max_priority
            {
                break;
            }
            if let Some(e) = self.bucket_head(sub, key).and_then(|s| self.entry(s))
                && best.is_none_or(|b| e.priority > b.priority)
            {
                best = Some(e);
            }
        }
        best.map(|e| (RuleId(e.id), &e.value))
    }

    /// Every rule, in no particular order. Matches are rebuilt, as in
    /// [`Classifier::get`].
    pub fn iter(&self) -> impl Iterator<Item = (RuleId, Match, u32, &T)> {
        self.entries
            .iter()
            .flatten()
            .map(|e| (RuleId(e.id), self.match_of(e), e.priority, &e.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(in_port: u32, nw_dst: u32, tp_dst: u16) -> FlowKey {
        FlowKey {
            in_port,
            nw_dst,
            tp_dst,
            dl_type: 0x0800,
            ..FlowKey::default()
        }
    }

    fn mask(in_port: u32, nw_dst: u32, tp_dst: u16) -> FlowKey {
        FlowKey {
            in_port,
            nw_dst,
            tp_dst,
            ..FlowKey::default()
        }
    }

    #[test]
    fn empty_classifier_misses_and_reports_no_wildcards() {
        let c: Classifier<u8> = Classifier::new();
        let mut wc = FlowKey::default();
        assert!(c.lookup(&key(1, 2, 3), &mut wc).is_none());
        assert!(wc.is_zero());
        assert!(c.is_empty());
    }

    #[test]
    fn highest_priority_match_wins_across_subtables() {
        let mut c = Classifier::new();
        let low = c.insert(Match::catch_all(), 0, "low");
        let mid = c.insert(Match::new(key(1, 0, 0), mask(!0, 0, 0)), 10, "port");
        let high = c.insert(
            Match::new(key(0, 0x0a00_0000, 0), mask(0, 0xff00_0000, 0)),
            20,
            "net",
        );
        assert_eq!(
            c.lookup_no_wc(&key(1, 0x0a00_0001, 80)).map(|r| r.0),
            Some(high)
        );
        assert_eq!(
            c.lookup_no_wc(&key(1, 0x0b00_0001, 80)).map(|r| r.0),
            Some(mid)
        );
        assert_eq!(
            c.lookup_no_wc(&key(2, 0x0b00_0001, 80)).map(|r| r.0),
            Some(low)
        );
        assert_eq!(c.n_subtables(), 3);
    }

    #[test]
    fn equal_priorities_go_to_the_rule_inserted_first_even_across_subtables() {
        let mut c = Classifier::new();
        let a = c.insert(Match::new(key(0, 0, 80), mask(0, 0, !0)), 5, 'a');
        let b = c.insert(Match::new(key(1, 0, 0), mask(!0, 0, 0)), 5, 'b');
        let b2 = c.insert(Match::new(key(1, 0, 0), mask(!0, 0, 0)), 5, 'c');
        assert!(a < b && b < b2);
        assert_eq!(c.lookup_no_wc(&key(1, 0, 80)).map(|r| r.0), Some(a));
        assert_eq!(c.lookup_no_wc(&key(1, 0, 81)).map(|r| r.0), Some(b));
        assert_eq!(c.remove(b), Some('b'));
        assert_eq!(c.lookup_no_wc(&key(1, 0, 81)).map(|r| r.0), Some(b2));
    }

    #[test]
    fn lookup_stops_early_and_leaves_skipped_masks_out_of_the_wildcards() {
        let mut c = Classifier::new();
        let hi = c.insert(Match::new(key(1, 0, 0), mask(!0, 0, 0)), 100, ());
        c.insert(Match::new(key(0, 0, 22), mask(0, 0, !0)), 1, ());
        let mut wc = FlowKey::default();
        assert_eq!(c.lookup(&key(1, 9, 22), &mut wc).map(|r| r.0), Some(hi));
        assert_eq!(wc, mask(!0, 0, 0));
        // A miss in the first subtable consults the second.
        let mut wc = FlowKey::default();
        assert!(c.lookup(&key(2, 9, 22), &mut wc).is_some());
        assert_eq!(wc, mask(!0, 0, !0));
    }

    #[test]
    fn remove_lowers_subtable_priority_and_deletes_empty_subtables() {
        let mut c = Classifier::new();
        let m = mask(!0, 0, 0);
        let hi = c.insert(Match::new(key(1, 0, 0), m), 100, 1);
        c.insert(Match::new(key(2, 0, 0), m), 1, 2);
        let other = c.insert(Match::new(key(0, 0, 22), mask(0, 0, !0)), 50, 3);
        assert_eq!(c.remove(hi), Some(1));
        assert_eq!(c.remove(hi), None);
        // The port subtable now has max priority 1: the tp_dst rule is consulted first.
        let mut wc = FlowKey::default();
        assert_eq!(c.lookup(&key(2, 0, 22), &mut wc).map(|r| r.0), Some(other));
        assert_eq!(wc, mask(0, 0, !0));
        assert_eq!(c.remove(other), Some(3));
        assert_eq!(c.n_subtables(), 1);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn get_find_exact_get_mut_and_iter_see_the_same_rules() {
        let mut c = Classifier::new();
        let m = Match::new(key(3, 0x0a00_0001, 0), mask(!0, !0, 0));
        let id = c.insert(m, 7, 10u32);
        let dup = c.insert(m, 7, 11);
        c.insert(m, 8, 12);
        assert_eq!(c.find_exact(&m, 7), Some(id));
        assert_eq!(c.find_exact(&m, 9), None);
        *c.get_mut(dup).unwrap() += 100;
        let (gm, prio, v) = c.get(dup).unwrap();
        assert_eq!((gm, prio, *v), (m, 7, 111));
        let mut all: Vec<_> = c.iter().map(|(id, _, p, v)| (id, p, *v)).collect();
        all.sort();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1], (dup, 7, 111));
        assert_eq!(c.remove(id), Some(10));
        assert_eq!(c.find_exact(&m, 7), Some(dup));
        c.clear();
        assert!(c.is_empty());
        assert!(c.lookup_no_wc(&key(3, 0x0a00_0001, 0)).is_none());
        assert!(c.get(dup).is_none());
    }

    #[test]
    fn insert_masks_the_key_of_a_non_normalized_match() {
        let mut c = Classifier::new();
        let raw = Match {
            key: key(1, 0x0a00_00ff, 0),
            mask: mask(0, 0xffff_ff00, 0),
        };
        let id = c.insert(raw, 1, ());
        assert_eq!(
            c.lookup_no_wc(&key(9, 0x0a00_0001, 1)).map(|r| r.0),
            Some(id)
        );
        assert_eq!(c.find_exact(&raw, 1), Some(id));
    }

    #[test]
    fn lookup_first_agrees_with_lookup_on_disjoint_rules() {
        let mut c = Classifier::new();
        // Megaflow-like: disjoint rules under several masks, all priority 0.
        for p in 0..4u32 {
            c.insert(Match::new(key(p, 0, 0), mask(!0, 0, !0)), 0, p);
            c.insert(
                Match::new(key(p + 10, 0x0a00_0000, 0), mask(!0, 0xff00_0000, 0)),
                0,
                p + 10,
            );
        }
        for p in 0..14u32 {
            for nw in [0u32, 0x0a00_0001] {
                let k = key(p, nw, 0);
                assert_eq!(
                    c.lookup_first(&k).map(|r| r.0),
                    c.lookup_no_wc(&k).map(|r| r.0)
                );
            }
        }
        assert_eq!(
            c.lookup_first(&key(12, 0x0a01_0203, 9)).map(|r| *r.1),
            Some(12)
        );
        assert!(c.lookup_first(&key(12, 0x0b00_0000, 9)).is_none());
    }

    #[test]
    fn a_hundred_thousand_exact_rules_all_resolve() {
        let mut c = Classifier::new();
        let m = mask(!0, !0, !0);
        for i in 0..100_000u32 {
            c.insert(Match::new(key(i % 7, i, (i % 1000) as u16), m), i % 3, i);
        }
        assert_eq!(c.len(), 100_000);
        for i in (0..100_000u32).step_by(997) {
            assert_eq!(
                c.lookup_no_wc(&key(i % 7, i, (i % 1000) as u16))
                    .map(|r| *r.1),
                Some(i)
            );
        }
    }
}
