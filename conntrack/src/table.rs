//! The connection table: shards of two hash indexes (by original tuple and
//! by reply tuple), each shard behind its own lock.
//!
//! A connection is reachable from the shard of its original tuple and the
//! shard of its reply tuple (they differ in general, and NAT makes them
//! unrelated). Lookups lock one shard; inserts and removals lock the two
//! shards in index order. Lock order is shard, then connection.

use std::sync::{Arc, Mutex, MutexGuard};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use crate::conn::Conn;
use crate::tuple::Tuple;

#[derive(Default)]
struct Shard {
    orig: HashTable<Arc<Conn>>,
    reply: HashTable<Arc<Conn>>,
}

impl Shard {
    /// The connection `t` belongs to, and whether `t` is its reply tuple.
    fn find(&self, h: u64, t: &Tuple) -> Option<(&Arc<Conn>, bool)> {
        if let Some(c) = self.orig.find(h, |c| c.orig == *t) {
            return Some((c, false));
        }
        self.reply.find(h, |c| c.reply == *t).map(|c| (c, true))
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
        s.find(h, t).map(|(c, reply)| f(c, reply))
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

    /// Inserts `c` under both tuples; false (nothing inserted) when either
    /// tuple already belongs to a connection. `ho` is the [`Table::hash`]
    /// of `c.orig`.
    ///
    /// One probe per index checks the tuple is free there and finds its
    /// slot (hashbrown's entry); the other index of each tuple is only
    /// searched.
    pub(crate) fn insert(&self, c: Arc<Conn>, ho: u64) -> bool {
        debug_assert_eq!(ho, self.hash(&c.orig));
        let hr = self.hash(&c.reply);
        let (mut go, mut gr) = self.lock_pair(ho, hr);
        // Either tuple may be another connection's tuple of the other
        // direction.
        if go.reply.find(ho, |x| x.reply == c.orig).is_some() {
            return false;
        }
        let sr: &Shard = gr.as_deref().unwrap_or(&go);
        if sr.orig.find(hr, |x| x.orig == c.reply).is_some() {
            return false;
        }
        let (orig, reply) = match gr.as_deref_mut() {
            Some(sr) => (&mut go.orig, &mut sr.reply),
            None => {
                let s = &mut *go;
                (&mut s.orig, &mut s.reply)
            }
        };
        let seed = self.seed;
        let Entry::Vacant(vo) = orig.entry(ho, |x| x.orig == c.orig, |x| x.orig.hash64(seed))
        else {
            return false;
        };
        let Entry::Vacant(vr) = reply.entry(hr, |x| x.reply == c.reply, |x| x.reply.hash64(seed))
        else {
            return false;
        };
        vr.insert(c.clone());
        vo.insert(c);
        true
    }

    /// Removes `c`; false when it was not (or no longer) in the table.
    pub(crate) fn remove(&self, c: &Arc<Conn>) -> bool {
        let (ho, hr) = (c.orig.hash64(self.seed), c.reply.hash64(self.seed));
        let (mut go, mut gr) = self.lock_pair(ho, hr);
        let removed = match go.orig.find_entry(ho, |x| Arc::ptr_eq(x, c)) {
            Ok(e) => {
                e.remove();
                true
            }
            Err(_) => false,
        };
        let sr: &mut Shard = gr.as_deref_mut().unwrap_or(&mut go);
        if let Ok(e) = sr.reply.find_entry(hr, |x| Arc::ptr_eq(x, c)) {
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
            out.extend(g.orig.iter().filter(|c| pred(c)).cloned());
        }
    }

    /// Bytes of the hash indexes (buckets of one pointer and one control
    /// byte each).
    pub(crate) fn index_bytes(&self) -> usize {
        let per = std::mem::size_of::<Arc<Conn>>() + 1;
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
                (buckets(g.orig.capacity()) + buckets(g.reply.capacity())) * per
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
