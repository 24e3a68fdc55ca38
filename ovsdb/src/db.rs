//! The database handle: schema, current data, durable store, and change subscribers.
//! Cheap to clone and safe to share between threads.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::data::{ChangeSet, Data};
use crate::error::{DbError, OvsdbError};
use crate::schema::Schema;
use crate::store::Store;
use crate::txn::{Outcome, TxnContext, execute};

/// One committed transaction, as delivered to subscribers.
#[derive(Debug)]
pub struct Commit {
    /// Commit sequence number, increasing by one per commit since the process started.
    pub seq: u64,
    pub changes: ChangeSet,
    /// The data right after this commit.
    pub data: Data,
    /// The transaction id clients of `monitor_cond_since` track.
    pub txn_id: uuid::Uuid,
}

/// How one attempt at a transaction ended.
#[derive(Debug)]
pub enum Attempt {
    /// The transaction finished (committed, failed, or had nothing to change): its results.
    Done(Vec<Value>),
    /// A "wait" does not hold yet. Try again once a commit newer than `seq` exists, or with
    /// `waits_expired` once `timeout` (counted from the first attempt) has passed; no timeout
    /// means the wait may last forever (RFC 7047 section 5.2.6).
    Blocked { timeout: Option<Duration>, seq: u64 },
}

type Subscriber = Box<dyn Fn(&Arc<Commit>) -> bool + Send>;

struct State {
    /// The newest data, including committed transactions whose storage write is in flight.
    data: Data,
    seq: u64,
    subscribers: Vec<Subscriber>,
    /// Commits waiting for the next storage write (group commit).
    pending: Vec<Arc<Commit>>,
    /// A thread is writing a batch to storage.
    flushing: bool,
    /// Every commit up to this sequence number is on disk (and published).
    durable_seq: u64,
    /// The data as of `durable_seq`: what readers and new subscribers see.
    durable: Data,
    /// The transaction id of `durable` (random at start: no history is kept across restarts).
    durable_txn: uuid::Uuid,
    /// Set when a storage write failed: memory is ahead of disk, so nothing more is accepted.
    broken: Option<String>,
}

struct Inner {
    schema: Arc<Schema>,
    state: Mutex<State>,
    changed: Condvar,
    store: Option<Store>,
    /// Transactions that would leave more rows than this fail with "resources exhausted".
    row_limit: std::sync::atomic::AtomicUsize,
    /// The sequence number of the newest commit (in memory), for async waiters.
    seq_watch: tokio::sync::watch::Sender<u64>,
}

/// A handle on an OVSDB database.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

/// The default cap on the total number of rows.
pub const DEFAULT_ROW_LIMIT: usize = 1 << 22;

/// How long a blocked "wait" sleeps at most before re-checking cancellation.
const WAIT_POLL: Duration = Duration::from_millis(100);

impl Db {
    /// Open (or create) the `Open_vSwitch` database stored at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Db, DbError> {
        Self::open_with_schema(path, Schema::vswitch())
    }

    /// Open (or create) a database with the given schema.
    pub fn open_with_schema(path: impl AsRef<Path>, schema: Schema) -> Result<Db, DbError> {
        let (store, fresh) = Store::open(path.as_ref())?;
        let data = store.load(&schema)?;
        let db = Self::build(schema, data, Some(store));
        if fresh {
            db.init_root()?;
        }
        Ok(db)
    }

    /// A database kept only in memory (tests, tools).
    pub fn in_memory() -> Db {
        let schema = Schema::vswitch();
        let data = Data::empty(&schema);
        let db = Self::build(schema, data, None);
        // In-memory init cannot fail on storage.
        let _ = db.init_root();
        db
    }

    fn build(schema: Schema, data: Data, store: Option<Store>) -> Db {
        Db {
            inner: Arc::new(Inner {
                schema: Arc::new(schema),
                state: Mutex::new(State {
                    durable: data.clone(),
                    data,
                    seq: 0,
                    subscribers: Vec::new(),
                    pending: Vec::new(),
                    flushing: false,
                    durable_seq: 0,
                    durable_txn: uuid::Uuid::new_v4(),
                    broken: None,
                }),
                changed: Condvar::new(),
                store,
                row_limit: std::sync::atomic::AtomicUsize::new(DEFAULT_ROW_LIMIT),
                seq_watch: tokio::sync::watch::Sender::new(0),
            }),
        }
    }

    fn init_root(&self) -> Result<(), DbError> {
        if self.inner.schema.name != "Open_vSwitch"
            || !self.snapshot().table("Open_vSwitch").is_empty()
        {
            return Ok(());
        }
        let results = self.transact(json!([
            "Open_vSwitch",
            {"op": "insert", "table": "Open_vSwitch",
             "row": {"db_version": self.inner.schema.version}}
        ]));
        match results.first().and_then(|r| r.get("error")) {
            Some(e) => Err(DbError::Storage(format!("initializing root row: {e}"))),
            None => Ok(()),
        }
    }

    /// Cap the total number of rows; transactions that would exceed it fail with
    /// "resources exhausted".
    pub fn set_row_limit(&self, limit: usize) {
        self.inner.row_limit.store(limit, Ordering::Relaxed);
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.inner.schema
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the data half-written: data is replaced
        // wholesale, so the poisoned state is still consistent.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A consistent snapshot of every table.
    pub fn snapshot(&self) -> Data {
        self.lock().durable.clone()
    }

    /// Receive every commit from now on, in commit order.
    pub fn subscribe(&self) -> crossbeam_channel::Receiver<Arc<Commit>> {
        self.snapshot_and_subscribe().1
    }

    /// A snapshot and a subscription starting exactly after it.
    pub fn snapshot_and_subscribe(&self) -> (Data, crossbeam_channel::Receiver<Arc<Commit>>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut st = self.lock();
        st.subscribers
            .push(Box::new(move |c| tx.send(c.clone()).is_ok()));
        (st.durable.clone(), rx)
    }

    /// Like [`Db::snapshot_and_subscribe`], delivering into a tokio channel; also the
    /// transaction id of the snapshot.
    pub fn snapshot_and_subscribe_async(
        &self,
    ) -> (
        Data,
        uuid::Uuid,
        tokio::sync::mpsc::UnboundedReceiver<Arc<Commit>>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut st = self.lock();
        st.subscribers
            .push(Box::new(move |c| tx.send(c.clone()).is_ok()));
        (st.durable.clone(), st.durable_txn, rx)
    }

    /// Wait until commit `seq` is on disk, writing pending commits as one batch when no other
    /// thread is (group commit), then publish them to subscribers in order.
    fn make_durable(&self, seq: u64) -> Result<(), String> {
        let mut st = self.lock();
        loop {
            if st.durable_seq >= seq {
                return Ok(());
            }
            if let Some(why) = &st.broken {
                return Err(why.clone());
            }
            if st.flushing {
                st = self
                    .inner
                    .changed
                    .wait(st)
                    .unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.flushing = true;
            let batch = std::mem::take(&mut st.pending);
            drop(st);
            let written = match &self.inner.store {
                Some(store) => store.commit_batch(batch.iter().map(|c| &c.changes)),
                None => Ok(()),
            };
            st = self.lock();
            st.flushing = false;
            match written {
                Ok(()) => {
                    if let Some(last) = batch.last() {
                        st.durable_seq = last.seq;
                        st.durable = last.data.clone();
                        st.durable_txn = last.txn_id;
                    }
                    for c in &batch {
                        st.subscribers.retain(|s| s(c));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "commit to storage failed; refusing further changes");
                    st.broken = Some(e.to_string());
                }
            }
            self.inner.changed.notify_all();
        }
    }

    /// Run a transaction; `params` is `["Open_vSwitch", op, op...]` (or just the ops array).
    /// Returns the result array, with the same semantics as the wire protocol.
    pub fn transact(&self, params: Value) -> Vec<Value> {
        match self.transact_with(&params, &|_| false, None) {
            Ok(r) => r,
            Err(e) => vec![e.to_json()],
        }
    }

    /// Run typed write operations as one transaction; the first error, if any.
    pub fn write(&self, ops: &[crate::ops::Op]) -> Result<(), OvsdbError> {
        if ops.is_empty() {
            return Ok(());
        }
        let params = crate::ops::transaction(&self.inner.schema.name, ops);
        let results = self.transact(params);
        match results.iter().find_map(|r| r.get("error")) {
            None => Ok(()),
            Some(e) => {
                let details = results
                    .iter()
                    .find_map(|r| r.get("details"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                Err(OvsdbError::new(e.as_str().unwrap_or("error"), details))
            }
        }
    }

    /// Follows the sequence number of the newest commit: a blocked transaction
    /// ([`Attempt::Blocked`]) is worth retrying once it moves past the attempt's `seq`.
    pub fn watch_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.seq_watch.subscribe()
    }

    /// Run a transaction for a session holding locks (`has_lock`), cancellable through `cancel`
    /// while a "wait" blocks it; blocks the calling thread until it finishes.
    /// Errors are for params that are not a transaction of this database.
    pub fn transact_with(
        &self,
        params: &Value,
        has_lock: &dyn Fn(&str) -> bool,
        cancel: Option<&AtomicBool>,
    ) -> Result<Vec<Value>, OvsdbError> {
        let mut deadline: Option<Option<Instant>> = None;
        let mut expired = false;
        loop {
            let (timeout, seen) = match self.transact_once(params, has_lock, expired)? {
                Attempt::Done(results) => return Ok(results),
                Attempt::Blocked { timeout, seq } => (timeout, seq),
            };
            let deadline = *deadline.get_or_insert_with(|| timeout.map(|t| Instant::now() + t));
            let mut st = self.lock();
            while st.seq == seen {
                if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                    return Ok(vec![
                        OvsdbError::new("canceled", "Transaction was canceled.").to_json(),
                    ]);
                }
                let now = Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    expired = true;
                    break;
                }
                let wait = deadline.map_or(WAIT_POLL, |d| (d - now).min(WAIT_POLL));
                st = self
                    .inner
                    .changed
                    .wait_timeout(st, wait)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
    }

    /// Try a transaction once, without waiting for a "wait" to hold: a blocked transaction
    /// changes nothing and reports [`Attempt::Blocked`]. With `waits_expired`, unmet waits fail
    /// with "timed out" instead. Blocks only while its commit is written to storage.
    pub fn transact_once(
        &self,
        params: &Value,
        has_lock: &dyn Fn(&str) -> bool,
        waits_expired: bool,
    ) -> Result<Attempt, OvsdbError> {
        let arr = params
            .as_array()
            .ok_or_else(|| OvsdbError::syntax("transact params must be an array"))?;
        let ops = match arr.first() {
            Some(Value::String(name)) => {
                if *name != self.inner.schema.name {
                    return Err(OvsdbError::new(
                        "unknown database",
                        format!("{name} is not a valid database name"),
                    ));
                }
                &arr[1..]
            }
            _ => &arr[..],
        };
        let mut st = self.lock();
        let ctx = TxnContext {
            has_lock,
            waits_expired,
        };
        match execute(&self.inner.schema, &st.data, ops, &ctx) {
            Outcome::Failed { results } => Ok(Attempt::Done(results)),
            Outcome::Blocked { timeout_ms } => Ok(Attempt::Blocked {
                timeout: timeout_ms.map(Duration::from_millis),
                seq: st.seq,
            }),
            Outcome::Commit { mut results, data } => {
                let changes = ChangeSet::diff(&st.data, &data);
                if changes.is_empty() {
                    return Ok(Attempt::Done(results));
                }
                if let Some(why) = &st.broken {
                    results.push(OvsdbError::new("I/O error", why.clone()).to_json());
                    return Ok(Attempt::Done(results));
                }
                let limit = self.inner.row_limit.load(Ordering::Relaxed);
                if data.row_count() > limit && data.row_count() > st.data.row_count() {
                    results.push(
                        OvsdbError::new(
                            "resources exhausted",
                            format!("Transaction would leave more than {limit} rows."),
                        )
                        .to_json(),
                    );
                    return Ok(Attempt::Done(results));
                }
                st.seq += 1;
                let seq = st.seq;
                st.data = data.clone();
                st.pending.push(Arc::new(Commit {
                    seq,
                    changes,
                    data,
                    txn_id: uuid::Uuid::new_v4(),
                }));
                self.inner.seq_watch.send_replace(seq);
                drop(st);
                if let Err(why) = self.make_durable(seq) {
                    results.push(OvsdbError::new("I/O error", why).to_json());
                }
                Ok(Attempt::Done(results))
            }
        }
    }
}
