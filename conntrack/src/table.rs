//! The connection table: shards of two hash indexes (by original tuple and
//! by reply tuple), each shard behind its own lock.
//!
//! A connection is reachable from the shard of its original tuple and the
//! shard of its reply tuple (they differ in general, and NAT makes them
//! unrelated). Lookups lock one shard; inserts and removals lock the two
//! shards in index order. Lock order is shard, then connection.

use std::sync::{Arc, Mutex, MutexGuard};

use hashbrown::HashTable;

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

    /// Runs `f` on the connection `t` belongs to (with whether `t` is its
    /// reply tuple) while its shard is locked.
    #[inline]
    pub(crate) fn visit<R>(&self, t: &Tuple, f: impl FnOnce(&Arc<Conn>, bool) -> R) -> Option<R> {
        let h = t.hash64(self.seed);
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
    /// tuple already belongs to a connection.
    pub(crate) fn insert(&self, c: &Arc<Conn>) -> bool {
        let (ho, hr) = (c.orig.hash64(self.seed), c.reply.hash64(self.seed));
        let (mut go, mut gr) = self.lock_pair(ho, hr);
        let taken_o = go.find(ho, &c.orig).is_some();
        let sr: &mut Shard = gr.as_deref_mut().unwrap_or(&mut go);
        if taken_o || (c.reply != c.orig && sr.find(hr, &c.reply).is_some()) {
            return false;
        }
        let seed = self.seed;
        sr.reply
            .insert_unique(hr, c.clone(), |x| x.reply.hash64(seed));
        go.orig
            .insert_unique(ho, c.clone(), |x| x.orig.hash64(seed));
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
