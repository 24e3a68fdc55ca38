//! A small blocking JSON-RPC client for OVSDB servers (`unix:PATH` or `tcp:IP:PORT`).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::jsonrpc::{Decoder, Message, reply, request};
use crate::schema::Schema;

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}: unknown or malformed database target (expected unix:PATH or tcp:IP:PORT)")]
    BadTarget(String),
    #[error("{target}: database connection failed ({source})")]
    Connect {
        target: String,
        source: std::io::Error,
    },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed by server")]
    Closed,
    /// The deadline set with [`Client::set_deadline`] (or given to connect) passed.
    #[error("timed out waiting for the database server")]
    Timeout,
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server answered with an error.
    #[error("server error: {0}")]
    Rpc(Value),
}

trait Stream: Read + Write + Send {
    fn set_timeout(&self, t: Option<Duration>) -> std::io::Result<()>;
    fn set_send_timeout(&self, t: Option<Duration>) -> std::io::Result<()>;
}
impl Stream for UnixStream {
    fn set_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(t)
    }
    fn set_send_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.set_write_timeout(t)
    }
}
impl Stream for TcpStream {
    fn set_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(t)
    }
    fn set_send_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.set_write_timeout(t)
    }
}

/// Whether an I/O error is a socket timeout firing.
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The time left until `deadline`; `Err(Timeout)` once it has passed.
fn remaining(deadline: Option<Instant>) -> Result<Option<Duration>, ClientError> {
    match deadline {
        None => Ok(None),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                Err(ClientError::Timeout)
            } else {
                Ok(Some(left))
            }
        }
    }
}

/// Connect to a unix socket, giving up at `deadline`. A server that stopped accepting leaves
/// its listen queue full, where a blocking connect would wait forever.
fn connect_unix(path: &str, deadline: Option<Instant>) -> std::io::Result<UnixStream> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let Some(deadline) = deadline else {
        return UnixStream::connect(path);
    };
    let bytes = path.as_bytes();
    // SAFETY: sockaddr_un is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(std::io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut pause = Duration::from_millis(5);
    loop {
        // SAFETY: `addr` is a valid sockaddr_un and the length passed is its size.
        let rc = unsafe {
            libc::connect(
                sock.as_raw_fd(),
                (&raw const addr).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        // A unix socket whose listen queue is full answers EAGAIN: try again shortly.
        if e.raw_os_error() != Some(libc::EAGAIN) {
            return Err(e);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(std::io::Error::from(std::io::ErrorKind::TimedOut));
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
    let stream = UnixStream::from(sock);
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// A connection to an OVSDB server.
pub struct Client {
    stream: Box<dyn Stream>,
    decoder: Decoder,
    next_id: u64,
    notifications: VecDeque<(String, Value)>,
    db_name: String,
    /// Requests fail with [`ClientError::Timeout`] after this.
    deadline: Option<Instant>,
}

impl Client {
    /// Connect to `unix:PATH` or `tcp:IP:PORT`.
    pub fn connect(target: &str) -> Result<Client, ClientError> {
        Self::connect_until(target, None)
    }

    /// Connect to `unix:PATH` or `tcp:IP:PORT`, giving up at `deadline`, which then bounds
    /// every request too (see [`Client::set_deadline`]).
    pub fn connect_until(target: &str, deadline: Option<Instant>) -> Result<Client, ClientError> {
        let conn_err = |source: std::io::Error| {
            if is_timeout(&source) {
                ClientError::Timeout
            } else {
                ClientError::Connect {
                    target: target.to_owned(),
                    source,
                }
            }
        };
        let stream: Box<dyn Stream> = if let Some(p) = target.strip_prefix("unix:") {
            Box::new(connect_unix(p, deadline).map_err(conn_err)?)
        } else if let Some(a) = target.strip_prefix("tcp:") {
            let (ip, port) = a
                .rsplit_once(':')
                .ok_or_else(|| ClientError::BadTarget(target.to_owned()))?;
            let addr = format!("{}:{port}", ip.trim_matches(['[', ']']));
            let addr: std::net::SocketAddr = if ip.contains(':') {
                format!("[{}]:{port}", ip.trim_matches(['[', ']'])).parse()
            } else {
                addr.parse()
            }
            .map_err(|_| ClientError::BadTarget(target.to_owned()))?;
            let stream = match remaining(deadline)? {
                Some(left) => TcpStream::connect_timeout(&addr, left),
                None => TcpStream::connect(addr),
            };
            Box::new(stream.map_err(conn_err)?)
        } else {
            return Err(ClientError::BadTarget(target.to_owned()));
        };
        Ok(Client {
            stream,
            decoder: Decoder::new(),
            next_id: 0,
            notifications: VecDeque::new(),
            db_name: "Open_vSwitch".into(),
            deadline,
        })
    }

    /// Make every later request fail with [`ClientError::Timeout`] once `deadline` passes
    /// (None: no deadline).
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// Limit how long a single read may block (None: forever).
    pub fn set_timeout(&mut self, t: Option<Duration>) -> Result<(), ClientError> {
        self.stream.set_timeout(t)?;
        Ok(())
    }

    fn send(&mut self, v: &Value) -> Result<(), ClientError> {
        let bytes = serde_json::to_vec(v).map_err(|e| ClientError::Protocol(e.to_string()))?;
        if self.deadline.is_some() {
            self.stream.set_send_timeout(remaining(self.deadline)?)?;
        }
        match self.stream.write_all(&bytes) {
            Err(e) if self.deadline.is_some() && is_timeout(&e) => Err(ClientError::Timeout),
            r => Ok(r?),
        }
    }

    fn read_message(&mut self) -> Result<Message, ClientError> {
        let mut buf = [0u8; 65536];
        loop {
            match self.decoder.next_value() {
                Ok(Some(v)) => return Message::from_value(v).map_err(ClientError::Protocol),
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            }
            if self.deadline.is_some() {
                self.stream.set_timeout(remaining(self.deadline)?)?;
            }
            let n = match self.stream.read(&mut buf) {
                Err(e) if self.deadline.is_some() && is_timeout(&e) => {
                    return Err(ClientError::Timeout);
                }
                r => r?,
            };
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.decoder.feed(&buf[..n]);
        }
    }

    /// Send a request and wait for its reply, answering echoes and queueing notifications.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.next_id += 1;
        let id = json!(self.next_id);
        self.send(&request(method, params, id.clone()))?;
        loop {
            match self.read_message()? {
                Message::Response {
                    result,
                    error,
                    id: rid,
                } if rid == id => {
                    return if error.is_null() {
                        Ok(result)
                    } else {
                        Err(ClientError::Rpc(error))
                    };
                }
                Message::Response { .. } => {}
                Message::Request { method, params, id } => {
                    if method == "echo" {
                        self.send(&reply(&id, params))?;
                    }
                }
                Message::Notification { method, params } => {
                    self.notifications.push_back((method, params))
                }
            }
        }
    }

    /// The next notification (e.g. "update"), waiting for one if none is queued.
    pub fn next_notification(&mut self) -> Result<(String, Value), ClientError> {
        loop {
            if let Some(n) = self.notifications.pop_front() {
                return Ok(n);
            }
            match self.read_message()? {
                Message::Notification { method, params } => return Ok((method, params)),
                Message::Request { method, params, id } if method == "echo" => {
                    self.send(&reply(&id, params))?
                }
                _ => {}
            }
        }
    }

    /// Fetch and parse the database schema.
    pub fn get_schema(&mut self) -> Result<Schema, ClientError> {
        let v = self.request("get_schema", json!([self.db_name]))?;
        Schema::parse(&v).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Run a transaction of `ops` on the database and return the result array.
    pub fn transact(&mut self, ops: Vec<Value>) -> Result<Vec<Value>, ClientError> {
        let mut params = vec![json!(self.db_name)];
        params.extend(ops);
        match self.request("transact", Value::Array(params))? {
            Value::Array(a) => Ok(a),
            other => Err(ClientError::Protocol(format!(
                "transact result is not an array: {other}"
            ))),
        }
    }
}

/// The first error object in a transaction's results, if any.
pub fn first_error(results: &[Value]) -> Option<&Value> {
    results.iter().find(|r| r.get("error").is_some())
}
