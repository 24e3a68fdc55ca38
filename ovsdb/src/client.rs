//! A small blocking JSON-RPC client for OVSDB servers (`unix:PATH` or `tcp:IP:PORT`).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

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
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server answered with an error.
    #[error("server error: {0}")]
    Rpc(Value),
}

trait Stream: Read + Write + Send {
    fn set_timeout(&self, t: Option<Duration>) -> std::io::Result<()>;
}
impl Stream for UnixStream {
    fn set_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(t)
    }
}
impl Stream for TcpStream {
    fn set_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(t)
    }
}

/// A connection to an OVSDB server.
pub struct Client {
    stream: Box<dyn Stream>,
    decoder: Decoder,
    next_id: u64,
    notifications: VecDeque<(String, Value)>,
    db_name: String,
}

impl Client {
    /// Connect to `unix:PATH` or `tcp:IP:PORT`.
    pub fn connect(target: &str) -> Result<Client, ClientError> {
        let conn_err = |source| ClientError::Connect {
            target: target.to_owned(),
            source,
        };
        let stream: Box<dyn Stream> = if let Some(p) = target.strip_prefix("unix:") {
            Box::new(UnixStream::connect(p).map_err(conn_err)?)
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
            Box::new(TcpStream::connect(addr).map_err(conn_err)?)
        } else {
            return Err(ClientError::BadTarget(target.to_owned()));
        };
        Ok(Client {
            stream,
            decoder: Decoder::new(),
            next_id: 0,
            notifications: VecDeque::new(),
            db_name: "Open_vSwitch".into(),
        })
    }

    /// Limit how long a single read may block (None: forever).
    pub fn set_timeout(&mut self, t: Option<Duration>) -> Result<(), ClientError> {
        self.stream.set_timeout(t)?;
        Ok(())
    }

    fn send(&mut self, v: &Value) -> Result<(), ClientError> {
        let bytes = serde_json::to_vec(v).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.stream.write_all(&bytes)?;
        Ok(())
    }

    fn read_message(&mut self) -> Result<Message, ClientError> {
        let mut buf = [0u8; 65536];
        loop {
            match self.decoder.next_value() {
                Ok(Some(v)) => return Message::from_value(v).map_err(ClientError::Protocol),
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            }
            let n = self.stream.read(&mut buf)?;
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
