//! The OVSDB JSON-RPC server (RFC 7047 section 4) on unix sockets and TCP.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::data::Data;
use crate::db::{Attempt, Commit, Db};
use crate::error::OvsdbError;
use crate::jsonrpc::{Decoder, Message, error_reply, notification, reply};
use crate::listener::{DEFAULT_MAX_CONNECTIONS, serve_connections};
use crate::monitor::{Kind, Monitor, ServerDb};
use crate::outbox::Outbox;

/// How many transaction attempts run at once (each on a blocking thread). Blocked waits are
/// retried after every commit: this keeps a burst of retries from spawning a thread each.
const CONCURRENT_ATTEMPTS: usize = 8;

/// Transactions one connection may have in progress (blocked waits included); beyond, its
/// further requests wait unread.
const MAX_TRANSACTIONS_IN_PROGRESS: usize = 4096;

/// How much is read from a client at once.
const READ_CHUNK: usize = 64 * 1024;

/// How long a closing connection may take to write out the replies still queued for it.
const FLUSH_ON_CLOSE: Duration = Duration::from_secs(10);

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// `punix:PATH`
    Unix(PathBuf),
    /// `ptcp:PORT[:IP]` (IP defaults to 127.0.0.1)
    Tcp(SocketAddr),
}

/// A `--remote` that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}: unknown or malformed remote (expected punix:PATH or ptcp:PORT[:IP])")]
pub struct BadRemote(pub String);

impl std::str::FromStr for Remote {
    type Err = BadRemote;
    fn from_str(s: &str) -> Result<Self, BadRemote> {
        let bad = || BadRemote(s.to_owned());
        if let Some(p) = s.strip_prefix("punix:") {
            if p.is_empty() {
                return Err(bad());
            }
            return Ok(Remote::Unix(PathBuf::from(p)));
        }
        if let Some(rest) = s.strip_prefix("ptcp:") {
            let (port, ip) = match rest.split_once(':') {
                Some((p, ip)) => (p, ip),
                None => (rest, "127.0.0.1"),
            };
            let port: u16 = port.parse().map_err(|_| bad())?;
            let ip: std::net::IpAddr = ip.trim_matches(['[', ']']).parse().map_err(|_| bad())?;
            return Ok(Remote::Tcp(SocketAddr::new(ip, port)));
        }
        Err(bad())
    }
}

/// Lock ownership queues (RFC 7047 section 4.1.8): the front of each queue owns the lock.
#[derive(Default)]
struct Locks {
    queues: HashMap<String, VecDeque<u64>>,
    sessions: HashMap<u64, Outbox>,
}

impl Locks {
    fn notify(&self, conn: u64, method: &str, name: &str) {
        if let Some(out) = self.sessions.get(&conn) {
            // An overflowing session is being closed; its lock is released with it.
            let _ = out.send(&notification(method, json!([name])));
        }
    }

    fn lock(&mut self, name: &str, conn: u64) -> bool {
        let q = self.queues.entry(name.to_owned()).or_default();
        if !q.contains(&conn) {
            q.push_back(conn);
        }
        q.front() == Some(&conn)
    }

    fn steal(&mut self, name: &str, conn: u64) {
        let q = self.queues.entry(name.to_owned()).or_default();
        let old = q.front().copied();
        q.retain(|c| *c != conn);
        if let Some(old) = old.filter(|o| *o != conn) {
            q.retain(|c| *c != old);
            q.push_front(conn);
            self.notify(old, "stolen", name);
        } else {
            q.push_front(conn);
        }
    }

    fn unlock(&mut self, name: &str, conn: u64) {
        let Some(q) = self.queues.get_mut(name) else {
            return;
        };
        let was_owner = q.front() == Some(&conn);
        q.retain(|c| *c != conn);
        let next = q.front().copied();
        if q.is_empty() {
            self.queues.remove(name);
        }
        if was_owner && let Some(next) = next {
            self.notify(next, "locked", name);
        }
    }

    fn owns(&self, name: &str, conn: u64) -> bool {
        self.queues.get(name).and_then(|q| q.front()) == Some(&conn)
    }

    fn drop_session(&mut self, conn: u64) {
        self.sessions.remove(&conn);
        let names: Vec<String> = self.queues.keys().cloned().collect();
        for n in names {
            self.unlock(&n, conn);
        }
    }
}

/// Which database of the server a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Main,
    /// `_Server` (ovsdb-server(5)).
    Server,
}

/// What a running server reports about itself (for metrics).
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Client sessions open now, on every remote.
    pub clients: std::sync::atomic::AtomicUsize,
}

struct Shared {
    db: Db,
    stats: Arc<ServerStats>,
    server_db: ServerDb,
    locks: Mutex<Locks>,
    next_conn: AtomicU64,
    attempts: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    fn locks(&self) -> std::sync::MutexGuard<'_, Locks> {
        self.locks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Listen on every remote and serve clients, counting them in `stats`. Returns only when a
/// remote cannot be set up: failing accepts are retried (see [`crate::listener`]).
pub async fn serve(db: Db, remotes: Vec<Remote>, stats: Arc<ServerStats>) -> std::io::Result<()> {
    let server_db = ServerDb::new(&[db.schema()])
        .map_err(|e| std::io::Error::other(format!("_Server database: {e}")))?;
    let shared = Arc::new(Shared {
        db,
        stats,
        server_db,
        locks: Mutex::new(Locks::default()),
        next_conn: AtomicU64::new(1),
        attempts: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_ATTEMPTS)),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for r in remotes {
        match r {
            Remote::Unix(path) => {
                if path.exists() {
                    std::fs::remove_file(&path)?;
                }
                let l = UnixListener::bind(&path)?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                tracing::info!(path = %path.display(), "listening");
                let sh = shared.clone();
                let name = path.display().to_string();
                tasks.spawn(async move {
                    serve_connections(l, &name, DEFAULT_MAX_CONNECTIONS, |s| {
                        handle_connection(sh.clone(), s)
                    })
                    .await
                });
            }
            Remote::Tcp(addr) => {
                let l = TcpListener::bind(addr).await?;
                tracing::info!(%addr, "listening");
                let sh = shared.clone();
                let name = format!("ptcp:{addr}");
                tasks.spawn(async move {
                    serve_connections(l, &name, DEFAULT_MAX_CONNECTIONS, |s| {
                        handle_connection(sh.clone(), s)
                    })
                    .await
                });
            }
        }
    }
    // The accept loops never return; only a panic ends one.
    match tasks.join_next().await {
        Some(Err(e)) => Err(std::io::Error::other(e.to_string())),
        Some(Ok(never)) => match never {},
        None => Ok(()),
    }
}

struct Session {
    shared: Arc<Shared>,
    conn: u64,
    out: Outbox,
    view: Data,
    /// The transaction id of `view`.
    view_txn: Uuid,
    commits: UnboundedReceiver<Arc<Commit>>,
    /// Monitors by id (as JSON text), with the database each watches.
    monitors: HashMap<String, (Which, Monitor)>,
    /// Transactions in progress, by request id (as JSON text), each with its cancel signal.
    pending: HashMap<String, Arc<Notify>>,
    /// The tasks running them; dropping the session cancels them all.
    transactions: JoinSet<(String, Value)>,
}

async fn handle_connection<S: AsyncRead + AsyncWrite + Send + 'static>(
    shared: Arc<Shared>,
    stream: S,
) {
    let (mut rd, wr) = tokio::io::split(stream);
    let (out, mut writer) = Outbox::spawn(wr);
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    shared.locks().sessions.insert(conn, out.clone());
    shared.stats.clients.fetch_add(1, Ordering::Relaxed);
    let (view, view_txn, commits) = shared.db.snapshot_and_subscribe_async();
    let mut s = Session {
        shared: shared.clone(),
        conn,
        out,
        view,
        view_txn,
        commits,
        monitors: HashMap::new(),
        pending: HashMap::new(),
        transactions: JoinSet::new(),
    };
    let mut decoder = Decoder::new();
    let mut buf = vec![0u8; READ_CHUNK];
    // Bytes read while the session holds off handling requests: at most one chunk, read only
    // to notice a peer that closes meanwhile.
    let mut held: Vec<u8> = Vec::new();
    let mut peer_closed = false;
    'conn: loop {
        if !s.holding_off() && !held.is_empty() {
            decoder.feed(&held);
            held.clear();
        }
        // Handle what has been read, as long as the client reads its replies.
        while !s.holding_off() && !s.out.overflowed() && !s.out.writer_failed() {
            match decoder.next_value() {
                Ok(Some(v)) => {
                    // Commits published before this request was read happened before it (another
                    // client may have had its reply already): take them in first, so the request
                    // sees them, as in a single-threaded ovsdb-server.
                    s.apply_published_commits();
                    s.handle(v)
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(conn, error = %e, "closing connection on undecodable input");
                    s.send(error_reply(
                        &Value::Null,
                        json!({"error": "syntax error", "details": e.to_string()}),
                    ));
                    break 'conn;
                }
            }
        }
        if s.out.writer_failed() {
            tracing::debug!(conn, "connection lost while writing");
            break;
        }
        if s.out.overflowed() {
            tracing::warn!(
                conn,
                backlog = s.out.queued(),
                monitors = s.monitors.len(),
                "excessive sending backlog: client is not reading; dropping its monitors and disconnecting"
            );
            writer.abort();
            break;
        }
        let holding_off = s.holding_off();
        let room = if holding_off {
            READ_CHUNK - held.len()
        } else {
            READ_CHUNK
        };
        tokio::select! {
            n = rd.read(&mut buf[..room]), if room > 0 => {
                match n {
                    Ok(0) | Err(_) => {
                        peer_closed = true;
                        break;
                    }
                    Ok(n) if holding_off => held.extend_from_slice(&buf[..n]),
                    Ok(n) => decoder.feed(&buf[..n]),
                }
            }
            () = s.out.wait_for_room(), if s.out.paused() => {}
            Some(c) = s.commits.recv() => s.apply_commit(&c),
            Some(done) = s.transactions.join_next(), if !s.transactions.is_empty() => {
                if let Ok((key, msg)) = done {
                    s.pending.remove(&key);
                    // Deliver the updates of the transaction before its reply, as ovsdb-server does.
                    s.apply_published_commits();
                    s.send(msg);
                }
            }
        }
    }
    if peer_closed {
        tracing::debug!(conn, "connection closed by peer");
    }
    shared.locks().drop_session(conn);
    shared.stats.clients.fetch_sub(1, Ordering::Relaxed);
    // Dropping the session aborts its transactions (a closed connection cancels its waits) and
    // its outbox; the writer then flushes what is queued, for a bounded time.
    drop(s);
    if tokio::time::timeout(FLUSH_ON_CLOSE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

impl Session {
    /// Whether to leave the client's further requests unhandled for now: its replies are not
    /// being read, or too many of its transactions are in progress.
    fn holding_off(&self) -> bool {
        self.out.paused() || self.transactions.len() >= MAX_TRANSACTIONS_IN_PROGRESS
    }

    /// Queue a message; an overflow is noticed (and the connection closed) by the session loop.
    fn send(&self, v: Value) {
        let _ = self.out.send(&v);
    }

    fn handle(&mut self, v: Value) {
        let msg = match Message::from_value(v) {
            Ok(m) => m,
            Err(e) => {
                self.send(error_reply(
                    &Value::Null,
                    json!({"error": "syntax error", "details": e}),
                ));
                return;
            }
        };
        let (method, params, id) = match msg {
            Message::Request { method, params, id } => (method, params, id),
            // "cancel" is a notification (RFC 7047 section 4.1.4).
            Message::Notification { method, params } if method == "cancel" => {
                (method, params, Value::Null)
            }
            Message::Notification { .. } | Message::Response { .. } => return,
        };
        tracing::debug!(conn = self.conn, %method, %params, "request");
        let db_name = self.shared.db.schema().name.clone();
        let first = params.get(0).and_then(Value::as_str).map(str::to_owned);
        let which = match first.as_deref() {
            Some(n) if n == db_name => Some(Which::Main),
            Some("_Server") => Some(Which::Server),
            _ => None,
        };
        let unknown_db = |name: &Option<String>| json!({"error": "unknown database", "details": format!("{} is not a valid database name", name.as_deref().unwrap_or(""))});
        match method.as_str() {
            "echo" => self.send(reply(&id, params)),
            "list_dbs" => self.send(reply(&id, json!([db_name, "_Server"]))),
            "get_schema" => match which {
                Some(w) => self.send(reply(&id, self.schema(w).json.clone())),
                None => self.send(error_reply(&id, unknown_db(&first))),
            },
            "transact" => match which {
                Some(Which::Main) => self.transact(params, id),
                Some(Which::Server) => {
                    self.send(self.transact_server(&params, &id));
                }
                None => self.send(error_reply(&id, unknown_db(&first))),
            },
            "cancel" => {
                let key = params.get(0).map(Value::to_string).unwrap_or_default();
                if let Some(cancel) = self.pending.get(&key) {
                    cancel.notify_one();
                }
            }
            "monitor" | "monitor_cond" | "monitor_cond_since" => {
                let Some(w) = which else {
                    self.send(error_reply(&id, unknown_db(&first)));
                    return;
                };
                let kind = match method.as_str() {
                    "monitor" => Kind::Plain,
                    "monitor_cond" => Kind::Cond,
                    _ => Kind::CondSince,
                };
                match self.monitor(w, kind, &params) {
                    Ok(result) => self.send(reply(&id, result)),
                    Err(e) => self.send(error_reply(&id, e.to_json())),
                }
            }
            "monitor_cond_change" => match self.monitor_cond_change(&params) {
                Ok(()) => self.send(reply(&id, json!({}))),
                Err(e) => self.send(error_reply(&id, e.to_json())),
            },
            "monitor_cancel" => {
                let key = params.get(0).map(Value::to_string).unwrap_or_default();
                if self.monitors.remove(&key).is_some() {
                    self.send(reply(&id, json!({})));
                } else {
                    self.send(error_reply(&id, json!({"error": "unknown monitor"})));
                }
            }
            // This server never removes a database, so a client's awareness changes nothing.
            "set_db_change_aware" => self.send(reply(&id, json!({}))),
            "lock" | "steal" | "unlock" => {
                let Some(name) = first else {
                    self.send(error_reply(
                        &id,
                        OvsdbError::syntax("lock name required").to_json(),
                    ));
                    return;
                };
                let mut locks = self.shared.locks();
                let result = match method.as_str() {
                    "lock" => json!({"locked": locks.lock(&name, self.conn)}),
                    "steal" => {
                        locks.steal(&name, self.conn);
                        json!({"locked": true})
                    }
                    _ => {
                        locks.unlock(&name, self.conn);
                        json!({})
                    }
                };
                drop(locks);
                self.send(reply(&id, result));
            }
            other => {
                tracing::debug!(method = other, "unknown method");
                self.send(error_reply(&id, json!("unknown method")));
            }
        }
    }

    fn transact(&mut self, params: Value, id: Value) {
        let key = id.to_string();
        let cancel = Arc::new(Notify::new());
        self.pending.insert(key.clone(), cancel.clone());
        let shared = self.shared.clone();
        let conn = self.conn;
        self.transactions.spawn(async move {
            let msg = match run_transaction(shared, conn, params, &cancel).await {
                Ok(results) => reply(&id, Value::Array(results)),
                Err(e) if e.error == "canceled" => error_reply(&id, json!("canceled")),
                Err(e) => error_reply(&id, e.to_json()),
            };
            (key, msg)
        });
    }

    fn schema(&self, w: Which) -> &crate::schema::Schema {
        match w {
            Which::Main => self.shared.db.schema(),
            Which::Server => &self.shared.server_db.schema,
        }
    }

    /// A read-only transaction on `_Server`: anything that would change it is refused.
    fn transact_server(&self, params: &Value, id: &Value) -> Value {
        let ops = params
            .as_array()
            .map(|a| a.get(1..).unwrap_or_default())
            .unwrap_or_default();
        let sdb = &self.shared.server_db;
        let ctx = crate::txn::TxnContext {
            has_lock: &|_| false,
            waits_expired: true,
        };
        match crate::txn::execute(&sdb.schema, &sdb.data, ops, &ctx) {
            crate::txn::Outcome::Commit { results, data }
                if crate::data::ChangeSet::diff(&sdb.data, &data).is_empty() =>
            {
                reply(id, Value::Array(results))
            }
            crate::txn::Outcome::Failed { results } => reply(id, Value::Array(results)),
            _ => error_reply(
                id,
                OvsdbError::new("not allowed", "the _Server database is read-only").to_json(),
            ),
        }
    }

    fn monitor(&mut self, w: Which, kind: Kind, params: &Value) -> Result<Value, OvsdbError> {
        let mon_id = params.get(1).cloned().unwrap_or(Value::Null);
        let key = mon_id.to_string();
        if self.monitors.contains_key(&key) {
            return Err(OvsdbError::new(
                "duplicate monitor ID",
                format!("monitor {key} exists"),
            ));
        }
        let reqs = params.get(2).unwrap_or(&Value::Null);
        let schema = self.schema(w);
        let mon = Monitor::parse(schema, kind, mon_id, reqs)?;
        let data = match w {
            Which::Main => &self.view,
            Which::Server => &self.shared.server_db.data,
        };
        let result = match kind {
            Kind::CondSince => {
                // No history is kept: a client already at the newest transaction gets
                // nothing, any other one everything.
                let last = params
                    .get(3)
                    .and_then(Value::as_str)
                    .and_then(|s| Uuid::parse_str(s).ok());
                let (txn, found) = match w {
                    Which::Main => (self.view_txn, last == Some(self.view_txn)),
                    Which::Server => (Uuid::nil(), false),
                };
                let updates = if found {
                    json!({})
                } else {
                    mon.initial(schema, data)
                };
                json!([found, txn.to_string(), updates])
            }
            _ => mon.initial(schema, data),
        };
        self.monitors.insert(key, (w, mon));
        Ok(result)
    }

    fn monitor_cond_change(&mut self, params: &Value) -> Result<(), OvsdbError> {
        let old_key = params.get(0).map(Value::to_string).unwrap_or_default();
        let new_id = params.get(1).cloned().unwrap_or(Value::Null);
        let new_key = new_id.to_string();
        let reqs = params.get(2).unwrap_or(&Value::Null);
        if new_key != old_key && self.monitors.contains_key(&new_key) {
            return Err(OvsdbError::new(
                "duplicate monitor ID",
                format!("monitor {new_key} exists"),
            ));
        }
        let Some((w, mut mon)) = self.monitors.remove(&old_key) else {
            return Err(OvsdbError::new(
                "unknown monitor session",
                format!("no monitor {old_key}"),
            ));
        };
        let (schema, data) = match w {
            Which::Main => (self.shared.db.schema(), &self.view),
            Which::Server => (&self.shared.server_db.schema, &self.shared.server_db.data),
        };
        let changed = mon.change_conditions(schema, data, reqs);
        let updates = match changed {
            Ok(u) => u,
            Err(e) => {
                self.monitors.insert(old_key, (w, mon));
                return Err(e);
            }
        };
        mon.id = new_id;
        if let Some(u) = updates {
            self.send(self.notification_for(&mon, u, None));
        }
        self.monitors.insert(new_key, (w, mon));
        Ok(())
    }

    /// The notification carrying `updates` for a monitor of its kind.
    fn notification_for(&self, mon: &Monitor, updates: Value, txn: Option<Uuid>) -> Value {
        match mon.kind {
            Kind::Plain => notification("update", json!([mon.id, updates])),
            Kind::Cond => notification("update2", json!([mon.id, updates])),
            Kind::CondSince => notification(
                "update3",
                json!([mon.id, txn.unwrap_or(self.view_txn).to_string(), updates]),
            ),
        }
    }

    /// Take in every commit already published to this session.
    fn apply_published_commits(&mut self) {
        while let Ok(c) = self.commits.try_recv() {
            self.apply_commit(&c);
        }
    }

    fn apply_commit(&mut self, c: &Arc<Commit>) {
        self.view = c.data.clone();
        self.view_txn = c.txn_id;
        let schema = self.shared.db.schema();
        for (w, mon) in self.monitors.values() {
            if *w != Which::Main {
                continue;
            }
            if let Some(updates) = mon.updates(schema, &c.changes) {
                self.send(self.notification_for(mon, updates, Some(c.txn_id)));
            }
        }
    }
}

/// Run one transaction for session `conn`. A blocked "wait" holds no thread: the transaction
/// is tried again after each commit, and once more (to fail with "timed out") when its timeout
/// runs out; `cancel` ends it with "canceled" while it waits.
async fn run_transaction(
    shared: Arc<Shared>,
    conn: u64,
    params: Value,
    cancel: &Notify,
) -> Result<Vec<Value>, OvsdbError> {
    let params = Arc::new(params);
    let mut commits = shared.db.watch_commits();
    let mut deadline: Option<Option<tokio::time::Instant>> = None;
    let mut expired = false;
    loop {
        let slot = shared
            .attempts
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| OvsdbError::new("internal error", e.to_string()))?;
        commits.borrow_and_update();
        let (sh, p) = (shared.clone(), params.clone());
        let attempt = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let has_lock = |name: &str| sh.locks().owns(name, conn);
            sh.db.transact_once(&p, &has_lock, expired)
        })
        .await
        .map_err(|e| OvsdbError::new("internal error", e.to_string()))??;
        let (timeout, seen) = match attempt {
            Attempt::Done(results) => return Ok(results),
            Attempt::Blocked { timeout, seq } => (timeout, seq),
        };
        let deadline =
            *deadline.get_or_insert_with(|| timeout.map(|t| tokio::time::Instant::now() + t));
        if *commits.borrow() != seen {
            continue;
        }
        tokio::select! {
            changed = commits.changed() => {
                if changed.is_err() {
                    return Err(OvsdbError::new("internal error", "database closed"));
                }
            }
            () = sleep_until(deadline) => expired = true,
            () = cancel.notified() => {
                return Err(OvsdbError::new("canceled", "Transaction was canceled."));
            }
        }
    }
}

/// Sleep until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
