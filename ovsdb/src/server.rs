//! The OVSDB JSON-RPC server (RFC 7047 section 4) on unix sockets and TCP.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use uuid::Uuid;

use crate::data::{Data, Row};
use crate::db::{Commit, Db};
use crate::error::OvsdbError;
use crate::jsonrpc::{Decoder, Message, error_reply, notification, reply};

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
    sessions: HashMap<u64, UnboundedSender<Value>>,
}

impl Locks {
    fn notify(&self, conn: u64, method: &str, name: &str) {
        if let Some(tx) = self.sessions.get(&conn) {
            let _ = tx.send(notification(method, json!([name])));
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

struct Shared {
    db: Db,
    locks: Mutex<Locks>,
    next_conn: AtomicU64,
}

impl Shared {
    fn locks(&self) -> std::sync::MutexGuard<'_, Locks> {
        self.locks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Listen on every remote and serve clients until an accept loop fails.
pub async fn serve(db: Db, remotes: Vec<Remote>) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        db,
        locks: Mutex::new(Locks::default()),
        next_conn: AtomicU64::new(1),
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
                tasks.spawn(async move {
                    loop {
                        let (s, _) = l.accept().await?;
                        tokio::spawn(handle_connection(sh.clone(), s));
                    }
                });
            }
            Remote::Tcp(addr) => {
                let l = TcpListener::bind(addr).await?;
                tracing::info!(%addr, "listening");
                let sh = shared.clone();
                tasks.spawn(async move {
                    loop {
                        let (s, peer) = l.accept().await?;
                        tracing::debug!(%peer, "connection");
                        tokio::spawn(handle_connection(sh.clone(), s));
                    }
                });
            }
        }
    }
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Err(e)) => return Err(e),
            Ok(Ok(())) => {}
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
    }
    Ok(())
}

/// What one monitored table asks for.
#[derive(Debug, Clone)]
struct MonitorTable {
    columns: Option<Vec<String>>,
    initial: bool,
    insert: bool,
    delete: bool,
    modify: bool,
}

type Monitor = BTreeMap<String, MonitorTable>;

struct Session {
    shared: Arc<Shared>,
    conn: u64,
    out: UnboundedSender<Value>,
    view: Data,
    commits: UnboundedReceiver<Arc<Commit>>,
    monitors: HashMap<String, (Value, Monitor)>,
    pending: Arc<Mutex<HashMap<String, Arc<AtomicBool>>>>,
    done_tx: UnboundedSender<Value>,
}

async fn handle_connection<S: AsyncRead + AsyncWrite + Send + 'static>(
    shared: Arc<Shared>,
    stream: S,
) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (out, mut out_rx) = unbounded_channel::<Value>();
    let writer = tokio::spawn(async move {
        while let Some(v) = out_rx.recv().await {
            let Ok(bytes) = serde_json::to_vec(&v) else {
                continue;
            };
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    shared.locks().sessions.insert(conn, out.clone());
    let (view, commits) = shared.db.snapshot_and_subscribe_async();
    let (done_tx, mut done_rx) = unbounded_channel::<Value>();
    let mut s = Session {
        shared: shared.clone(),
        conn,
        out,
        view,
        commits,
        monitors: HashMap::new(),
        pending: Arc::new(Mutex::new(HashMap::new())),
        done_tx,
    };
    let mut decoder = Decoder::new();
    let mut buf = vec![0u8; 65536];
    'conn: loop {
        tokio::select! {
            n = rd.read(&mut buf) => {
                let n = match n { Ok(0) | Err(_) => break, Ok(n) => n };
                decoder.feed(&buf[..n]);
                loop {
                    match decoder.next_value() {
                        Ok(Some(v)) => s.handle(v),
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(conn, error = %e, "closing connection on undecodable input");
                            let _ = s.out.send(error_reply(&Value::Null, json!({"error": "syntax error", "details": e.to_string()})));
                            break 'conn;
                        }
                    }
                }
            }
            Some(c) = s.commits.recv() => s.apply_commit(&c),
            Some(r) = done_rx.recv() => {
                // Deliver the updates of the transaction before its reply, as ovsdb-server does.
                while let Ok(c) = s.commits.try_recv() {
                    s.apply_commit(&c);
                }
                let _ = s.out.send(r);
            }
        }
    }
    shared.locks().drop_session(conn);
    drop(s);
    let _ = writer.await;
}

fn row_columns(row: &Row, cols: &Option<Vec<String>>) -> Value {
    let mut obj = Map::new();
    for (c, d) in &row.columns {
        if cols.as_ref().is_none_or(|cs| cs.contains(c)) {
            obj.insert(c.clone(), d.to_json());
        }
    }
    Value::Object(obj)
}

impl Session {
    fn send(&self, v: Value) {
        let _ = self.out.send(v);
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
        let unknown_db = |name: &Option<String>| json!({"error": "unknown database", "details": format!("{} is not a valid database name", name.as_deref().unwrap_or(""))});
        match method.as_str() {
            "echo" => self.send(reply(&id, params)),
            "list_dbs" => self.send(reply(&id, json!([db_name]))),
            "get_schema" => {
                if first.as_deref() == Some(db_name.as_str()) {
                    self.send(reply(&id, self.shared.db.schema().json.clone()));
                } else {
                    self.send(error_reply(&id, unknown_db(&first)));
                }
            }
            "transact" => {
                if first.as_deref() != Some(db_name.as_str()) {
                    self.send(error_reply(&id, unknown_db(&first)));
                    return;
                }
                self.transact(params, id);
            }
            "cancel" => {
                let key = params.get(0).map(Value::to_string).unwrap_or_default();
                if let Some(flag) = self
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&key)
                {
                    flag.store(true, Ordering::Relaxed);
                }
            }
            "monitor" => {
                if first.as_deref() != Some(db_name.as_str()) {
                    self.send(error_reply(&id, unknown_db(&first)));
                    return;
                }
                match self.monitor(&params) {
                    Ok(initial) => self.send(reply(&id, initial)),
                    Err(e) => self.send(error_reply(&id, e.to_json())),
                }
            }
            "monitor_cancel" => {
                let key = params.get(0).map(Value::to_string).unwrap_or_default();
                if self.monitors.remove(&key).is_some() {
                    self.send(reply(&id, json!({})));
                } else {
                    self.send(error_reply(&id, json!({"error": "unknown monitor"})));
                }
            }
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
        let flag = Arc::new(AtomicBool::new(false));
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), flag.clone());
        let shared = self.shared.clone();
        let conn = self.conn;
        let pending = self.pending.clone();
        let done = self.done_tx.clone();
        tokio::task::spawn_blocking(move || {
            let has_lock = |name: &str| shared.locks().owns(name, conn);
            let r = shared.db.transact_with(&params, &has_lock, Some(&flag));
            pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            let canceled =
                |r: &[Value]| r.len() == 1 && r[0].get("error") == Some(&json!("canceled"));
            let msg = match r {
                Ok(results) if canceled(&results) => error_reply(&id, json!("canceled")),
                Ok(results) => reply(&id, Value::Array(results)),
                Err(e) => error_reply(&id, e.to_json()),
            };
            let _ = done.send(msg);
        });
    }

    fn monitor(&mut self, params: &Value) -> Result<Value, OvsdbError> {
        let mon_id = params.get(1).cloned().unwrap_or(Value::Null);
        let key = mon_id.to_string();
        if self.monitors.contains_key(&key) {
            return Err(OvsdbError::new(
                "duplicate monitor ID",
                format!("monitor {key} exists"),
            ));
        }
        let reqs = params
            .get(2)
            .and_then(Value::as_object)
            .ok_or_else(|| OvsdbError::syntax("monitor requests must be an object"))?;
        let schema = self.shared.db.schema();
        let mut mon = Monitor::new();
        for (table, req) in reqs {
            let ts = schema
                .table(table)
                .ok_or_else(|| OvsdbError::unknown_table(table))?;
            let list: Vec<&Value> = match req {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            let mut mt = MonitorTable {
                columns: Some(Vec::new()),
                initial: false,
                insert: false,
                delete: false,
                modify: false,
            };
            for r in list {
                match r.get("columns") {
                    None => mt.columns = None,
                    Some(Value::Array(cols)) => {
                        for c in cols {
                            let c = c.as_str().ok_or_else(|| {
                                OvsdbError::syntax("column name must be a string")
                            })?;
                            if !ts.columns.contains_key(c) {
                                return Err(OvsdbError::unknown_column(table, c));
                            }
                            if let Some(cs) = mt.columns.as_mut()
                                && !cs.iter().any(|x| x == c)
                            {
                                cs.push(c.to_owned());
                            }
                        }
                    }
                    Some(_) => return Err(OvsdbError::syntax("\"columns\" must be an array")),
                }
                let sel = r.get("select");
                let flag = |n: &str| {
                    sel.and_then(|s| s.get(n))
                        .and_then(Value::as_bool)
                        .unwrap_or(true)
                };
                mt.initial |= flag("initial");
                mt.insert |= flag("insert");
                mt.delete |= flag("delete");
                mt.modify |= flag("modify");
            }
            if mt.columns.as_ref().is_some_and(|c| c.is_empty()) {
                mt.columns = None;
            }
            mon.insert(table.clone(), mt);
        }
        let mut initial = Map::new();
        for (table, mt) in &mon {
            if !mt.initial {
                continue;
            }
            let mut rows = Map::new();
            for (u, r) in self.view.table(table).iter() {
                rows.insert(u.to_string(), json!({"new": row_columns(r, &mt.columns)}));
            }
            if !rows.is_empty() {
                initial.insert(table.clone(), Value::Object(rows));
            }
        }
        self.monitors.insert(key, (mon_id, mon));
        Ok(Value::Object(initial))
    }

    fn apply_commit(&mut self, c: &Arc<Commit>) {
        self.view = c.data.clone();
        for (mon_id, mon) in self.monitors.values() {
            let mut updates: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
            for ch in &c.changes.changes {
                let Some(mt) = mon.get(&ch.table) else {
                    continue;
                };
                let entry = match (&ch.old, &ch.new) {
                    (None, Some(n)) if mt.insert => json!({"new": row_columns(n, &mt.columns)}),
                    (Some(o), None) if mt.delete => json!({"old": row_columns(o, &mt.columns)}),
                    (Some(o), Some(n)) if mt.modify => {
                        let mut old = Map::new();
                        for (col, d) in &o.columns {
                            if mt.columns.as_ref().is_none_or(|cs| cs.contains(col))
                                && n.get(col) != Some(d)
                            {
                                old.insert(col.clone(), d.to_json());
                            }
                        }
                        if old.is_empty() {
                            continue;
                        }
                        json!({"old": old, "new": row_columns(n, &mt.columns)})
                    }
                    _ => continue,
                };
                updates
                    .entry(ch.table.clone())
                    .or_default()
                    .insert(uuid_key(ch.uuid), entry);
            }
            if !updates.is_empty() {
                self.send(notification("update", json!([mon_id, updates])));
            }
        }
    }
}

fn uuid_key(u: Uuid) -> String {
    u.to_string()
}
