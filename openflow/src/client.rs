//! A blocking OpenFlow client for the CLI tools: connect to `unix:PATH`
//! or `tcp:IP:PORT`, exchange HELLOs, then request/reply by xid.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;

use crate::codec::{decode, encode, merge_reply};
use crate::conn::negotiate;
use crate::consts::{HEADER_LEN, MP_MORE};
use crate::error::{DecodeError, EncodeError, OfError};
use crate::message::*;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{target}: failed to connect to socket ({reason})")]
    Connect { target: String, reason: String },
    #[error("{0}: unknown target syntax (use unix:PATH or tcp:IP:PORT)")]
    BadTarget(String),
    #[error("connection closed by peer")]
    Closed,
    #[error("{0}")]
    Io(String),
    #[error("version negotiation failed (we support {ours:#x}, peer supports {theirs:#x})")]
    Incompatible { ours: u32, theirs: u32 },
    #[error("received bad reply: {0}")]
    Decode(#[from] DecodeError),
    #[error("{0}")]
    Encode(#[from] EncodeError),
    /// The switch answered with OFPT_ERROR.
    #[error("{error}")]
    Of { error: OfError, msg: ErrorMsg },
    #[error("unexpected reply {0}")]
    Unexpected(&'static str),
}

/// Formats an I/O error like strerror(3) (no "(os error N)" suffix).
pub fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A connected OpenFlow client.
pub struct OfClient {
    stream: Box<dyn Stream>,
    version: u8,
    next_xid: u32,
    inbuf: Vec<u8>,
    /// Messages received while waiting for something else.
    pending: VecDeque<(OfHeader, Message)>,
    last_xid: u32,
}

impl std::fmt::Debug for OfClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfClient")
            .field("version", &self.version)
            .finish()
    }
}

impl OfClient {
    /// Connects to `target` (`unix:PATH` or `tcp:IP:PORT`) and negotiates
    /// a version among `versions` (HELLO bitmap).
    pub fn connect(target: &str, versions: u32) -> Result<OfClient, ClientError> {
        let conn_err = |e: std::io::Error| ClientError::Connect {
            target: target.to_string(),
            reason: strerror(&e),
        };
        let stream: Box<dyn Stream> = if let Some(p) = target.strip_prefix("unix:") {
            Box::new(UnixStream::connect(p).map_err(conn_err)?)
        } else if let Some(a) = target.strip_prefix("tcp:") {
            let s = TcpStream::connect(a).map_err(conn_err)?;
            let _ = s.set_nodelay(true);
            Box::new(s)
        } else {
            return Err(ClientError::BadTarget(target.to_string()));
        };
        Self::handshake(stream, versions)
    }

    fn handshake(stream: Box<dyn Stream>, versions: u32) -> Result<OfClient, ClientError> {
        let mut c = OfClient {
            stream,
            version: 0,
            // The HELLO is xid 1, like ovs-ofctl.
            next_xid: 2,
            inbuf: Vec::new(),
            pending: VecDeque::new(),
            last_xid: 0,
        };
        let top = negotiate(versions, versions).unwrap_or(4);
        let hello = encode(&Message::Hello { versions }, top, 1)?;
        c.write_all(&hello)?;
        let (h, m) = c.read_message()?;
        let theirs = match m {
            Message::Hello { versions: v } if v != 0 => v,
            Message::Hello { .. } => ((1u64 << (u32::from(h.version.min(31)) + 1)) - 1) as u32,
            Message::Error(e) => {
                return Err(ClientError::Of {
                    error: e.error(h.version),
                    msg: e,
                });
            }
            other => return Err(ClientError::Unexpected(other.name())),
        };
        c.version = negotiate(versions, theirs).ok_or(ClientError::Incompatible {
            ours: versions,
            theirs,
        })?;
        Ok(c)
    }

    /// The negotiated version.
    pub fn version(&self) -> u8 {
        self.version
    }

    fn write_all(&mut self, b: &[u8]) -> Result<(), ClientError> {
        self.stream
            .write_all(b)
            .map_err(|e| ClientError::Io(strerror(&e)))
    }

    /// The xid of the last request sent.
    pub fn last_xid(&self) -> u32 {
        self.last_xid
    }

    /// Allocates a transaction id.
    pub fn alloc_xid(&mut self) -> u32 {
        let x = self.next_xid;
        self.last_xid = x;
        self.next_xid = self.next_xid.wrapping_add(1).max(1);
        x
    }

    /// Encodes `msg` and appends it to `buf` without sending (pipelining).
    pub fn encode_into(&mut self, msg: &Message, buf: &mut Vec<u8>) -> Result<u32, ClientError> {
        let xid = self.alloc_xid();
        buf.extend_from_slice(&encode(msg, self.version, xid)?);
        Ok(xid)
    }

    /// Sends raw, already encoded messages.
    pub fn send_raw(&mut self, b: &[u8]) -> Result<(), ClientError> {
        self.write_all(b)
    }

    /// Sends `msg`; returns its xid.
    pub fn send(&mut self, msg: &Message) -> Result<u32, ClientError> {
        let xid = self.alloc_xid();
        let b = encode(msg, self.version, xid)?;
        self.write_all(&b)?;
        Ok(xid)
    }

    fn read_message(&mut self) -> Result<(OfHeader, Message), ClientError> {
        loop {
            if self.inbuf.len() >= HEADER_LEN {
                let len = usize::from(u16::from_be_bytes([self.inbuf[2], self.inbuf[3]]));
                if len < HEADER_LEN {
                    return Err(DecodeError::BadHeaderLength(len as u16).into());
                }
                if self.inbuf.len() >= len {
                    let raw: Vec<u8> = self.inbuf.drain(..len).collect();
                    return Ok(decode(&raw)?);
                }
            }
            let mut tmp = [0u8; 65536];
            let n = self
                .stream
                .read(&mut tmp)
                .map_err(|e| ClientError::Io(strerror(&e)))?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.inbuf.extend_from_slice(&tmp[..n]);
        }
    }

    /// Receives the next message, answering echo requests on the way.
    pub fn recv(&mut self) -> Result<(OfHeader, Message), ClientError> {
        if let Some(m) = self.pending.pop_front() {
            return Ok(m);
        }
        loop {
            let (h, m) = self.read_message()?;
            if let Message::EchoRequest(d) = &m {
                let b = encode(&Message::EchoReply(d.clone()), self.version, h.xid)?;
                self.write_all(&b)?;
                continue;
            }
            return Ok((h, m));
        }
    }

    /// Waits for the message with `xid`; an OFPT_ERROR for it is an error.
    /// Other messages are kept for later [`OfClient::recv`] calls.
    pub fn wait_for(&mut self, xid: u32) -> Result<Message, ClientError> {
        loop {
            let (h, m) = self.read_message_answering_echo()?;
            if h.xid != xid {
                self.pending.push_back((h, m));
                continue;
            }
            if let Message::Error(e) = m {
                return Err(ClientError::Of {
                    error: e.error(h.version),
                    msg: e,
                });
            }
            return Ok(m);
        }
    }

    fn read_message_answering_echo(&mut self) -> Result<(OfHeader, Message), ClientError> {
        loop {
            let (h, m) = self.read_message()?;
            if let Message::EchoRequest(d) = &m {
                let b = encode(&Message::EchoReply(d.clone()), self.version, h.xid)?;
                self.write_all(&b)?;
                continue;
            }
            return Ok((h, m));
        }
    }

    /// Sends a request and waits for its reply.
    pub fn transact(&mut self, msg: &Message) -> Result<Message, ClientError> {
        let xid = self.send(msg)?;
        self.wait_for(xid)
    }

    /// Sends BARRIER_REQUEST and waits for the reply. An error for an
    /// earlier request, arriving first, is returned as that error.
    pub fn barrier(&mut self) -> Result<(), ClientError> {
        let xid = self.send(&Message::BarrierRequest)?;
        loop {
            let (h, m) = self.read_message_answering_echo()?;
            match m {
                Message::BarrierReply if h.xid == xid => return Ok(()),
                Message::Error(e) => {
                    return Err(ClientError::Of {
                        error: e.error(h.version),
                        msg: e,
                    });
                }
                other => self.pending.push_back((h, other)),
            }
        }
    }

    /// Sends a multipart request and collects every part of the reply.
    pub fn multipart(
        &mut self,
        body: MultipartRequestBody,
    ) -> Result<MultipartReplyBody, ClientError> {
        let xid = self.send(&Message::MultipartRequest(MultipartRequest {
            flags: 0,
            body,
        }))?;
        let mut acc: Option<MultipartReplyBody> = None;
        loop {
            match self.wait_for(xid)? {
                Message::MultipartReply(r) => {
                    let more = r.flags & MP_MORE != 0;
                    match acc.as_mut() {
                        None => acc = Some(r.body),
                        Some(a) => {
                            if !merge_reply(a, r.body) {
                                return Err(ClientError::Unexpected("mixed multipart reply"));
                            }
                        }
                    }
                    if !more {
                        return acc.ok_or(ClientError::Unexpected("empty multipart reply"));
                    }
                }
                other => return Err(ClientError::Unexpected(other.name())),
            }
        }
    }
}
