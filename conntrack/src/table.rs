//! The connection table: shards of one hash index that holds each
//! connection twice, under its original tuple and under its reply tuple,
//! each shard behind its own lock.
//!
//! A connection is reachable from the shard of its original tuple and the
//! shard of its reply tuple (they differ in general, and NAT makes them
//! unrelated). One index for both directions means a lookup probes once,
//! hit or miss, whichever direction the tuple turns out to be. Lookups lock
//! one shard; inserts and removals lock the two shards in index order. Lock
//! order is shard, then connection.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};

use hashbrown::HashTable;

use crate::conn::Conn;
use crate::tuple::Tuple;

/// A connection as the index holds it under one of its tuples: an
/// `Arc<Conn>` (one strong count, owned) whose pointer's low bit says which
/// tuple, set for the reply. Eight bytes, as a plain `Arc` would be, so the
/// index costs no more memory for knowing the direction, which its growth
/// needs (it rehashes each entry by the tuple it is filed under).
struct Filed(NonNull<Conn>);

// SAFETY: a `Filed` is an `Arc<Conn>` with a tag bit; `Arc<Conn>` is Send and
// Sync because `Conn` is (its mutable state is behind a Mutex).
unsafe impl Send for Filed {}
// SAFETY: as above.
unsafe impl Sync for Filed {}

const _: () = assert!(
    std::mem::align_of::<Conn>() >= 2,
    "the tag needs bit 0 free"
);

impl Filed {
    fn new(c: Arc<Conn>, reply: bool) -> Filed {
        let p = Arc::into_raw(c).cast_mut();
        // `Arc::into_raw` never returns null; the allocation is aligned to
        // `Conn` (asserted at least 2), so bit 0 is free for the tag.
        let tagged = p.map_addr(|a| a | usize::from(reply));
        Filed(NonNull::new(tagged).expect("Arc::into_raw is never null"))
    }

    #[inline]
    fn reply(&self) -> bool {
        self.0.as_ptr().addr() & 1 == 1
    }

    #[inline]
    fn raw(&self) -> *const Conn {
        self.0.as_ptr().map_addr(|a| a & !1).cast_const()
    }

    #[inline]
    fn conn(&self) -> &Conn {
        // SAFETY: `raw` is the pointer `Arc::into_raw` gave, and this entry
        // owns a strong count, so the connection lives as long as `self`.
        unsafe { &*self.raw() }
    }

    /// The tuple the entry is filed under.
    #[inline]
    fn tuple(&self) -> &Tuple {
        let c = self.conn();
        if self.reply() { &c.reply } else { &c.orig }
    }

    /// The hash the entry is filed by: its tuple's, keyed by `seed`.
    #[inline]
    fn hash64(&self, seed: u64) -> u64 {
        self.tuple().hash64(seed)
    }

    /// Runs `f` on the entry's `Arc` (borrowed: no count changes hands).
    #[inline]
    fn with_arc<R>(&self, f: impl FnOnce(&Arc<Conn>) -> R) -> R {
        // SAFETY: `raw` came from `Arc::into_raw` and the entry keeps its
        // count; ManuallyDrop makes sure this temporary `Arc` never gives
        // that count back.
        let a = ManuallyDrop::new(unsafe { Arc::from_raw(self.raw()) });
        f(&a)
    }

    fn is(&self, c: &Arc<Conn>, reply: bool) -> bool {
        std::ptr::eq(self.raw(), Arc::as_ptr(c)) && self.reply() == reply
    }
}

impl Drop for Filed {
    fn drop(&mut self) {
        // SAFETY: gives back the strong count this entry took in `new`,
        // exactly once.
        drop(unsafe { Arc::from_raw(self.raw()) });
    }
}

#[derive(Default)]
struct Shard {
    index: HashTable<Filed>,
}

/// Entries a growing index reads ahead of the one it files (see
/// [`Shard::make_room`]).
const GROW_AHEAD: usize = 8;

/// Asks the CPU to start loading the cache line at `p`.
#[inline]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is only a hint: it never faults, and reads or
        // writes nothing architecturally; SSE is in x86_64's baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl Shard {
    /// Makes room for `n` more entries without a rehash inside the insert.
    ///
    /// A full index doubles here rather than in hashbrown's own growth,
    /// which rehashes each entry by dereferencing its connection, one cache
    /// miss after another. Here the connections are read `GROW_AHEAD`
    /// entries ahead of their filing, so the misses overlap. Same sizes as
    /// hashbrown's growth: capacity doubles.
    fn make_room(&mut self, n: usize, seed: u64) {
        if self.index.capacity() - self.index.len() >= n {
            return;
        }
        let want = (self.index.capacity() * 2).max(self.index.len() + n);
        let old = std::mem::replace(&mut self.index, HashTable::with_capacity(want));
        let rehash = |f: &Filed| f.hash64(seed);
        let mut ahead: [Option<Filed>; GROW_AHEAD] = Default::default();
        for (k, f) in old.into_iter().enumerate() {
            prefetch(f.tuple());
            if let Some(due) = ahead[k % GROW_AHEAD].replace(f) {
                self.index.insert_unique(rehash(&due), due, rehash);
            }
        }
        for due in ahead.into_iter().flatten() {
            self.index.insert_unique(rehash(&due), due, rehash);
        }
    }

    /// The entry of tuple `t` (hash `h`).
    #[inline]
    fn find(&self, h: u64, t: &Tuple) -> Option<&Filed> {
        self.index.find(h, |f| f.tuple() == t)
    }
}

pub(crate) struct Table {
    shards: Box<[Mutex<Shard>]>,
    mask: usize,
    seed: u64,
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Table {
    /// A table of `n_shards` (rounded up to a power of two) shards whose
    /// hashes are keyed by `seed`.
    pub(crate) fn new(n_shards: usize, seed: u64) -> Table {
        let n = n_shards.max(1).next_power_of_two();
        Table {
            shards: (0..n).map(|_| Mutex::new(Shard::default())).collect(),
            mask: n - 1,
            seed,
        }
    }

    /// Number of shards.
    pub(crate) fn n_shards(&self) -> usize {
        self.shards.len()
    }

    #[inline]
    fn idx(&self, h: u64) -> usize {
        (h >> 40) as usize & self.mask
    }

    /// The hash of `t` in this table (for [`Table::visit_hashed`] and
    /// [`Table::insert`], so a lookup that misses and the insert after it
    /// hash the tuple once).
    #[inline]
    pub(crate) fn hash(&self, t: &Tuple) -> u64 {
        t.hash64(self.seed)
    }

    /// Runs `f` on the connection `t` belongs to (with whether `t` is its
    /// reply tuple) while its shard is locked.
    #[inline]
    pub(crate) fn visit<R>(&self, t: &Tuple, f: impl FnOnce(&Arc<Conn>, bool) -> R) -> Option<R> {
        self.visit_hashed(self.hash(t), t, f)
    }

    /// [`Table::visit`] with `h`, the [`Table::hash`] of `t`.
    #[inline]
    pub(crate) fn visit_hashed<R>(
        &self,
        h: u64,
        t: &Tuple,
        f: impl FnOnce(&Arc<Conn>, bool) -> R,
    ) -> Option<R> {
        let s = lock(&self.shards[self.idx(h)]);
        s.find(h, t).map(|e| e.with_arc(|c| f(c, e.reply())))
    }

    /// Whether `t` is the original or reply tuple of a connection.
    pub(crate) fn contains(&self, t: &Tuple) -> bool {
        self.visit(t, |_, _| ()).is_some()
    }

    /// Locks the shards of hashes `a` and `b` in index order.
    fn lock_pair(&self, a: u64, b: u64) -> (MutexGuard<'_, Shard>, Option<MutexGuard<'_, Shard>>) {
        let (ia, ib) = (self.idx(a), self.idx(b));
        if ia == ib {
            (lock(&self.shards[ia]), None)
        } else if ia < ib {
            let ga = lock(&self.shards[ia]);
            let gb = lock(&self.shards[ib]);
            (ga, Some(gb))
        } else {
            let gb = lock(&self.shards[ib]);
            let ga = lock(&self.shards[ia]);
            (ga, Some(gb))
        }
    }

    /// Inserts `c` under both tuples (once when they are the same tuple);
    /// false (nothing inserted) when either tuple already belongs to a
    /// connection, in either direction. `ho` is the [`Table::hash`] of
    /// `c.orig`.
    ///
    /// Each tuple's probe sequence is searched once; the reply's insert
    /// follows its search, whose cache lines are still warm.
    pub(crate) fn insert(&self, c: Arc<Conn>, ho: u64) -> bool {
        debug_assert_eq!(ho, self.hash(&c.orig));
        let own_reply = c.reply == c.orig;
        let hr = if own_reply { ho } else { self.hash(&c.reply) };
        let (mut go, mut gr) = self.lock_pair(ho, hr);
        let seed = self.seed;
        let rehash = move |f: &Filed| f.hash64(seed);
        match gr.as_deref_mut() {
            Some(sr) => {
                go.make_room(1, seed);
                sr.make_room(usize::from(!own_reply), seed);
            }
            None => go.make_room(1 + usize::from(!own_reply), seed),
        }
        {
            let sr: &Shard = gr.as_deref().unwrap_or(&go);
            if !own_reply && sr.find(hr, &c.reply).is_some() {
                return false;
            }
        }
        match go.index.entry(ho, |f| *f.tuple() == c.orig, rehash) {
            hashbrown::hash_table::Entry::Occupied(_) => return false,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(Filed::new(c.clone(), false));
            }
        }
        if !own_reply {
            let sr: &mut Shard = gr.as_deref_mut().unwrap_or(&mut go);
            sr.index.insert_unique(hr, Filed::new(c, true), rehash);
        }
        true
    }

    /// Removes `c`; false when it was not (or no longer) in the table.
    pub(crate) fn remove(&self, c: &Arc<Conn>) -> bool {
        let (ho, hr) = (c.orig.hash64(self.seed), c.reply.hash64(self.seed));
        let (mut go, mut gr) = self.lock_pair(ho, hr);
        let removed = match go.index.find_entry(ho, |f| f.is(c, false)) {
            Ok(e) => {
                e.remove();
                true
            }
            Err(_) => false,
        };
        let sr: &mut Shard = gr.as_deref_mut().unwrap_or(&mut go);
        if let Ok(e) = sr.index.find_entry(hr, |f| f.is(c, true)) {
            e.remove();
        }
        if removed {
            c.lock().dead = true;
        }
        removed
    }

    /// The connections for which `pred` holds (called with each shard
    /// locked in turn; management path, allocates).
    pub(crate) fn select(&self, mut pred: impl FnMut(&Conn) -> bool) -> Vec<Arc<Conn>> {
        let mut out = Vec::new();
        for i in 0..self.shards.len() {
            self.select_in(i, &mut pred, &mut out);
        }
        out
    }

    /// Like `select` for shard `i` only, appending to `out`.
    pub(crate) fn select_in(
        &self,
        i: usize,
        pred: &mut impl FnMut(&Conn) -> bool,
        out: &mut Vec<Arc<Conn>>,
    ) {
        if let Some(s) = self.shards.get(i) {
            let g = lock(s);
            for f in g.index.iter().filter(|f| !f.reply() && pred(f.conn())) {
                out.push(f.with_arc(Arc::clone));
            }
        }
    }

    /// Bytes of the hash index (buckets of one pointer and one control
    /// byte each).
    pub(crate) fn index_bytes(&self) -> usize {
        let per = std::mem::size_of::<Filed>() + 1;
        let buckets = |cap: usize| {
            if cap == 0 {
                0
            } else if cap < 8 {
                (cap + 1).next_power_of_two()
            } else {
                (cap * 8 / 7).next_power_of_two()
            }
        };
        self.shards
            .iter()
            .map(|s| {
                let g = lock(s);
                buckets(g.index.capacity()) * per
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::conn::{ConnState, OtherState, ProtoState};
    use crate::tuple::proto;

    fn tuple(i: u32, ipv6: bool) -> Tuple {
        let mut t = Tuple {
            sport: 1024 + (i % 50_000) as u16,
            dport: 53,
            zone: (i % 3) as u16,
            proto: proto::UDP,
            ipv6,
            ..Tuple::default()
        };
        t.src[..4].copy_from_slice(&(0x0a00_0000 | i).to_be_bytes());
        t.dst[..4].copy_from_slice(&0x0b00_0001u32.to_be_bytes());
        if ipv6 {
            t.src[15] = 1;
        }
        t
    }

    fn conn(orig: Tuple, reply: Tuple) -> Arc<Conn> {
        Arc::new(Conn {
            orig,
            reply,
            nat: 0,
            tp: 0,
            alg: 0,
            ext: None,
            st: Mutex::new(ConnState {
                expiration: 0,
                label: [0; 2],
                mark: 0,
                proto: ProtoState::Other(OtherState::First),
                dead: false,
            }),
        })
    }

    fn insert(t: &Table, c: &Arc<Conn>) -> bool {
        t.insert(c.clone(), t.hash(&c.orig))
    }

    /// The connection `t` names in the table, and whether as its reply.
    fn found(table: &Table, t: &Tuple) -> Option<(Arc<Conn>, bool)> {
        table.visit(t, |c, reply| (c.clone(), reply))
    }

    #[test]
    fn growth_keeps_every_connection_findable_in_both_directions() {
        for shards in [1, 4] {
            let table = Table::new(shards, 7);
            // From empty, each index doubles a dozen times; a third of the
            // connections are translated (the reply is not the reverse).
            let conns: Vec<_> = (0..20_000u32)
                .map(|i| {
                    let o = tuple(i, i % 2 == 1);
                    let mut r = o.reverse();
                    if i % 3 == 0 {
                        r.dst[..4].copy_from_slice(&(0x0c00_0000 | i).to_be_bytes());
                    }
                    conn(o, r)
                })
                .collect();
            for c in &conns {
                assert!(insert(&table, c));
            }
            for c in &conns {
                let (o, rev) = found(&table, &c.orig).expect("original tuple found");
                assert!(Arc::ptr_eq(&o, c) && !rev);
                let (r, rev) = found(&table, &c.reply).expect("reply tuple found");
                assert!(Arc::ptr_eq(&r, c) && rev);
            }
            assert_eq!(table.select(|_| true).len(), conns.len());
            for c in conns.iter().step_by(2) {
                assert!(table.remove(c));
            }
            for (i, c) in conns.iter().enumerate() {
                assert_eq!(found(&table, &c.orig).is_some(), i % 2 == 1);
                assert_eq!(found(&table, &c.reply).is_some(), i % 2 == 1);
            }
            assert_eq!(table.select(|_| true).len(), conns.len() / 2);
        }
    }

    #[test]
    fn the_index_holds_one_count_per_tuple_and_gives_it_back_on_remove_and_drop() {
        let table = Table::new(4, 3);
        let a = conn(tuple(1, false), tuple(1, false).reverse());
        assert!(insert(&table, &a));
        assert_eq!(Arc::strong_count(&a), 3, "ours and one per tuple");
        let mut own = tuple(2, false);
        own.dst = own.src;
        own.dport = own.sport;
        let s = conn(own, own);
        assert!(insert(&table, &s));
        assert_eq!(Arc::strong_count(&s), 2, "filed once: both tuples are one");
        // A refused insert takes no count.
        assert!(!insert(&table, &conn(tuple(1, false), tuple(9, false))));
        assert!(table.remove(&a));
        assert_eq!(Arc::strong_count(&a), 1);
        assert!(!table.remove(&a));
        let b = conn(tuple(3, true), tuple(3, true).reverse());
        assert!(insert(&table, &b));
        drop(table);
        assert_eq!(Arc::strong_count(&b), 1);
        assert_eq!(Arc::strong_count(&s), 1);
    }

    #[test]
    fn a_growing_index_doubles_as_hashbrown_would_and_no_further() {
        for n in [3_000u32, 20_000, 33_000] {
            let table = Table::new(1, 11);
            for i in 0..n {
                let o = tuple(i, false);
                assert!(insert(&table, &conn(o, o.reverse())));
            }
            // 2n entries in power-of-two buckets at most 7/8 full.
            let buckets = (2 * n as usize * 8 / 7).next_power_of_two();
            let per = std::mem::size_of::<usize>() + 1;
            assert_eq!(table.index_bytes(), buckets * per, "{n} connections");
        }
    }

    #[test]
    fn insert_refuses_a_tuple_taken_in_either_direction_and_changes_nothing() {
        let table = Table::new(4, 0);
        let (o, r) = (tuple(1, false), tuple(2, false).reverse());
        let a = conn(o, r);
        assert!(insert(&table, &a));
        let other = |i| tuple(i, false);
        for (orig, reply) in [
            (o, other(3)),
            (r, other(3)),
            (other(3), o),
            (other(3), r),
            (o, r),
        ] {
            let b = conn(orig, reply);
            assert!(!insert(&table, &b), "{orig:?} -> {reply:?}");
            assert!(found(&table, &other(3)).is_none());
        }
        assert_eq!(table.select(|_| true).len(), 1);
        assert!(Arc::ptr_eq(&found(&table, &o).unwrap().0, &a));
        assert!(Arc::ptr_eq(&found(&table, &r).unwrap().0, &a));
        // A connection that is its own reply is indexed once each way.
        let mut own = tuple(4, false);
        own.dst = own.src;
        own.dport = own.sport;
        assert_eq!(own.reverse(), own);
        let s = conn(own, own);
        assert!(insert(&table, &s));
        assert!(!insert(&table, &conn(own, own)));
        assert_eq!(
            found(&table, &own).map(|(c, rev)| (Arc::ptr_eq(&c, &s), rev)),
            Some((true, false))
        );
        assert!(table.remove(&s));
        assert!(found(&table, &own).is_none());
    }
}
