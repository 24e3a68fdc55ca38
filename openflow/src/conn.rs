//! The switch side of one OpenFlow connection, independent of transport.
//!
//! Feed received bytes to [`OfConnection::receive`], write what
//! [`OfConnection::take_output`] returns, call [`OfConnection::tick`]
//! periodically, and drop the transport once [`OfConnection::closed`]
//! says so. Everything the switch itself must do goes through
//! [`SwitchAgent`], synchronously: when a request's reply is queued, the
//! request has been applied, which is what makes BARRIER correct.

use tracing::{debug, warn};

use crate::codec::{self, encode, encode_multipart_reply, parse_header, version_supported};
use crate::consts::{HEADER_LEN, NO_BUFFER, OFP10_VERSION, OFP13_VERSION};
use crate::error::OfError;
use crate::message::*;

/// What the daemon does for a connection.
pub trait SwitchAgent {
    /// Datapath id, tables, capabilities, and (for 1.0) ports.
    fn features(&self) -> Features;
    /// Applies a flow_mod to the tables (and, before returning, to
    /// whatever the datapath caches).
    fn flow_mod(&mut self, fm: FlowMod) -> Result<(), OfError>;
    fn group_mod(&mut self, gm: GroupMod) -> Result<(), OfError>;
    /// METER_MOD; a switch without meters refuses it.
    fn meter_mod(&mut self, _mm: MeterMod) -> Result<(), OfError> {
        Err(OfError::BadType)
    }
    fn port_mod(&mut self, pm: PortMod) -> Result<(), OfError>;
    fn packet_out(&mut self, po: PacketOut) -> Result<(), OfError>;
    /// Answers a statistics request; large bodies are split by the
    /// connection.
    fn multipart(&mut self, req: &MultipartRequestBody) -> Result<MultipartReplyBody, OfError>;
    /// Ensures every change applied so far has reached the datapath.
    fn barrier(&mut self);
    /// SET_CONFIG received (miss_send_len, fragment handling).
    fn set_config(&mut self, _cfg: SwitchConfig) {}
}

/// Connection settings.
#[derive(Clone, Copy, Debug)]
pub struct ConnConfig {
    /// Versions offered, as a HELLO bitmap (bit 1 = 1.0, bit 4 = 1.3).
    pub versions: u32,
    /// Send an echo request after this much silence, and disconnect after
    /// as much again without an answer. 0 disables probing.
    pub probe_interval_ms: u64,
}

impl Default for ConnConfig {
    fn default() -> ConnConfig {
        ConnConfig {
            versions: (1 << OFP10_VERSION) | (1 << OFP13_VERSION),
            probe_interval_ms: 5_000,
        }
    }
}

/// Why the connection ended.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CloseReason {
    /// No common version (an OFPHFC_INCOMPATIBLE error was sent).
    Incompatible,
    /// A header length below 8 (an OFPBRC_BAD_LEN error was sent).
    BadLength,
    /// A message before HELLO.
    NoHello,
    /// The peer did not answer the inactivity probe.
    Timeout,
}

/// Highest version present in both bitmaps.
pub fn negotiate(ours: u32, theirs: u32) -> Option<u8> {
    let common = ours & theirs;
    (common != 0).then(|| (31 - common.leading_zeros()) as u8)
}

fn highest(bitmap: u32) -> u8 {
    negotiate(bitmap, bitmap).unwrap_or(OFP13_VERSION)
}

/// One switch-side OpenFlow connection.
#[derive(Debug)]
pub struct OfConnection {
    cfg: ConnConfig,
    version: Option<u8>,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    role: u32,
    generation_id: Option<u64>,
    async_cfg: AsyncConfig,
    switch_config: SwitchConfig,
    last_rx_ms: u64,
    probe_sent_ms: Option<u64>,
    closed: Option<CloseReason>,
    next_xid: u32,
}

impl OfConnection {
    /// A new connection; our HELLO is already queued for output.
    pub fn new(cfg: ConnConfig, now_ms: u64) -> OfConnection {
        let mut c = OfConnection {
            cfg,
            version: None,
            inbuf: Vec::new(),
            out: Vec::new(),
            role: role::EQUAL,
            generation_id: None,
            async_cfg: AsyncConfig::default(),
            switch_config: SwitchConfig {
                flags: 0,
                miss_send_len: 128,
            },
            last_rx_ms: now_ms,
            probe_sent_ms: None,
            closed: None,
            next_xid: 1,
        };
        let hello = Message::Hello {
            versions: cfg.versions,
        };
        if let Ok(b) = encode(&hello, highest(cfg.versions), 0) {
            c.out.extend_from_slice(&b);
        }
        c
    }

    /// The negotiated version, once HELLOs have been exchanged.
    pub fn version(&self) -> Option<u8> {
        self.version
    }

    /// Set when the connection must be dropped (after flushing output).
    pub fn closed(&self) -> Option<&CloseReason> {
        self.closed.as_ref()
    }

    /// The controller role (OpenFlow 1.3 numbering).
    pub fn role(&self) -> u32 {
        self.role
    }

    /// Sets the role, e.g. to demote a former master when another
    /// connection becomes master.
    pub fn set_role(&mut self, r: u32) {
        self.role = r;
    }

    pub fn switch_config(&self) -> SwitchConfig {
        self.switch_config
    }

    /// Bytes to send to the peer (drained).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// True when output is waiting.
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    fn queue(&mut self, msg: &Message, xid: u32) {
        let v = self.version.unwrap_or(OFP13_VERSION);
        match encode(msg, v, xid) {
            Ok(b) => self.out.extend_from_slice(&b),
            Err(e) => warn!("cannot encode {}: {e}", msg.name()),
        }
    }

    fn queue_error(&mut self, e: OfError, offending: &[u8], xid: u32) {
        let v = self.version.unwrap_or(OFP13_VERSION);
        debug!("sending error {e} for xid {xid}");
        self.queue(&Message::Error(ErrorMsg::for_request(e, v, offending)), xid);
    }

    /// Handles timeouts: sends an inactivity probe after `probe_interval`
    /// of silence and closes after another interval without an answer.
    pub fn tick(&mut self, now_ms: u64) {
        let iv = self.cfg.probe_interval_ms;
        if iv == 0 || self.closed.is_some() {
            return;
        }
        match self.probe_sent_ms {
            Some(t) if now_ms.saturating_sub(t) >= iv => {
                warn!(
                    "no response to inactivity probe after {} s, disconnecting",
                    iv / 1000
                );
                self.closed = Some(CloseReason::Timeout);
            }
            None if now_ms.saturating_sub(self.last_rx_ms) >= iv && self.version.is_some() => {
                let xid = self.alloc_xid();
                self.queue(&Message::EchoRequest(Vec::new()), xid);
                self.probe_sent_ms = Some(now_ms);
            }
            _ => {}
        }
    }

    fn alloc_xid(&mut self) -> u32 {
        let x = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1).max(1);
        x
    }

    /// Feeds bytes read from the transport; every complete message is
    /// handled (replies queued) before this returns.
    pub fn receive<A: SwitchAgent + ?Sized>(&mut self, bytes: &[u8], agent: &mut A, now_ms: u64) {
        if self.closed.is_some() {
            return;
        }
        if !bytes.is_empty() {
            self.last_rx_ms = now_ms;
            self.probe_sent_ms = None;
        }
        self.inbuf.extend_from_slice(bytes);
        let mut off = 0;
        while self.closed.is_none() {
            let avail = self.inbuf.get(off..).unwrap_or(&[]);
            if avail.len() < HEADER_LEN {
                break;
            }
            let h = match parse_header(avail) {
                Ok(h) => h,
                Err(_) => {
                    let xid = u32::from_be_bytes([avail[4], avail[5], avail[6], avail[7]]);
                    let head = avail[..HEADER_LEN].to_vec();
                    self.queue_error(OfError::BadLen, &head, xid);
                    self.closed = Some(CloseReason::BadLength);
                    break;
                }
            };
            let len = usize::from(h.length);
            if avail.len() < len {
                break;
            }
            let msg = avail[..len].to_vec();
            off += len;
            self.handle(&h, &msg, agent);
        }
        self.inbuf.drain(..off.min(self.inbuf.len()));
    }

    fn handle<A: SwitchAgent + ?Sized>(&mut self, h: &OfHeader, raw: &[u8], agent: &mut A) {
        let Some(version) = self.version else {
            self.handle_hello(h, raw);
            return;
        };
        if h.version != version {
            self.queue_error(OfError::BadVersion, raw, h.xid);
            return;
        }
        let msg = match codec::decode(raw) {
            Ok((_, m)) => m,
            Err(e) => {
                self.queue_error(e.of_error(), raw, h.xid);
                return;
            }
        };
        let xid = h.xid;
        let modifies = matches!(
            msg,
            Message::FlowMod(_)
                | Message::GroupMod(_)
                | Message::MeterMod(_)
                | Message::PortMod(_)
                | Message::PacketOut(_)
        );
        if modifies && self.role == role::SLAVE {
            self.queue_error(OfError::IsSlave, raw, xid);
            return;
        }
        match msg {
            Message::Hello { .. } | Message::EchoReply(_) => {}
            Message::EchoRequest(d) => self.queue(&Message::EchoReply(d), xid),
            Message::Error(e) => {
                warn!(
                    "controller sent error: {}",
                    OfError::from_wire(version, e.err_type, e.code)
                )
            }
            Message::Experimenter { .. } => {
                self.queue_error(OfError::BadExperimenter, raw, xid);
            }
            Message::FeaturesRequest => {
                let mut f = agent.features();
                if version != OFP10_VERSION {
                    f.ports.clear();
                }
                self.queue(&Message::FeaturesReply(f), xid);
            }
            Message::GetConfigRequest => {
                self.queue(&Message::GetConfigReply(self.switch_config), xid);
            }
            Message::SetConfig(c) => {
                self.switch_config = c;
                agent.set_config(c);
            }
            Message::FlowMod(FlowModMsg {
                flow_mod,
                buffer_id,
            }) => {
                let is_delete = flow_mod.command.is_delete();
                match agent.flow_mod(flow_mod) {
                    Err(e) => self.queue_error(e, raw, xid),
                    Ok(()) if buffer_id != NO_BUFFER && !is_delete => {
                        self.queue_error(OfError::BufferUnknown, raw, xid);
                    }
                    Ok(()) => {}
                }
            }
            Message::GroupMod(gm) => {
                if let Err(e) = agent.group_mod(gm) {
                    self.queue_error(e, raw, xid);
                }
            }
            Message::MeterMod(mm) => {
                if let Err(e) = agent.meter_mod(mm) {
                    self.queue_error(e, raw, xid);
                }
            }
            Message::PortMod(pm) => {
                if let Err(e) = agent.port_mod(pm) {
                    self.queue_error(e, raw, xid);
                }
            }
            Message::PacketOut(po) => {
                if po.buffer_id != NO_BUFFER {
                    self.queue_error(OfError::BufferUnknown, raw, xid);
                } else if let Err(e) = agent.packet_out(po) {
                    self.queue_error(e, raw, xid);
                }
            }
            Message::MultipartRequest(req) => self.handle_multipart(req, raw, xid, agent),
            Message::BarrierRequest => {
                agent.barrier();
                self.queue(&Message::BarrierReply, xid);
            }
            Message::QueueGetConfigRequest { port } => {
                self.queue(&Message::QueueGetConfigReply { port }, xid);
            }
            Message::RoleRequest(r) => self.handle_role(r, raw, xid),
            Message::GetAsyncRequest => {
                self.queue(&Message::GetAsyncReply(self.async_cfg), xid);
            }
            Message::SetAsync(a) => self.async_cfg = a,
            Message::FeaturesReply(_)
            | Message::GetConfigReply(_)
            | Message::PacketIn(_)
            | Message::FlowRemoved(_)
            | Message::PortStatus(_)
            | Message::MultipartReply(_)
            | Message::BarrierReply
            | Message::QueueGetConfigReply { .. }
            | Message::RoleReply(_)
            | Message::GetAsyncReply(_) => self.queue_error(OfError::BadType, raw, xid),
        }
    }

    fn handle_hello(&mut self, h: &OfHeader, raw: &[u8]) {
        if h.msg_type != 0 {
            self.queue_error(OfError::BadType, raw, h.xid);
            self.closed = Some(CloseReason::NoHello);
            return;
        }
        let theirs = match codec::decode(raw) {
            Ok((_, Message::Hello { versions })) if versions != 0 => versions,
            // No bitmap: the peer supports its header version and below.
            _ => {
                let v = u32::from(h.version.min(31));
                ((1u64 << (v + 1)) - 1) as u32
            }
        };
        match negotiate(self.cfg.versions, theirs).filter(|v| version_supported(*v)) {
            Some(v) => {
                debug!("negotiated OpenFlow version 0x{v:02x}");
                self.version = Some(v);
            }
            None => {
                let v = h.version;
                let e = ErrorMsg {
                    err_type: 0,
                    code: 0,
                    data: format!(
                        "We support versions 0x01 and 0x04, you support version 0x{v:02x}."
                    )
                    .into_bytes(),
                };
                let ev = if h.version >= OFP13_VERSION {
                    OFP13_VERSION
                } else {
                    OFP10_VERSION
                };
                if let Ok(b) = encode(&Message::Error(e), ev, h.xid) {
                    self.out.extend_from_slice(&b);
                }
                self.closed = Some(CloseReason::Incompatible);
            }
        }
    }

    fn handle_multipart<A: SwitchAgent + ?Sized>(
        &mut self,
        req: MultipartRequest,
        raw: &[u8],
        xid: u32,
        agent: &mut A,
    ) {
        let version = self.version.unwrap_or(OFP13_VERSION);
        match agent.multipart(&req.body) {
            Ok(body) => match encode_multipart_reply(&body, version, xid) {
                Ok(parts) => {
                    for p in parts {
                        self.out.extend_from_slice(&p);
                    }
                }
                Err(e) => {
                    warn!("cannot encode multipart reply: {e}");
                    self.queue_error(OfError::BadRequestEperm, raw, xid);
                }
            },
            Err(e) => self.queue_error(e, raw, xid),
        }
    }

    fn handle_role(&mut self, r: RoleMsg, raw: &[u8], xid: u32) {
        match r.role {
            role::NOCHANGE => {}
            role::EQUAL => self.role = role::EQUAL,
            role::MASTER | role::SLAVE => {
                if let Some(g) = self.generation_id
                    && (r.generation_id.wrapping_sub(g) as i64) < 0
                {
                    self.queue_error(OfError::RoleStale, raw, xid);
                    return;
                }
                self.generation_id = Some(r.generation_id);
                self.role = r.role;
            }
            _ => {
                self.queue_error(OfError::BadRole, raw, xid);
                return;
            }
        }
        let reply = RoleMsg {
            role: self.role,
            generation_id: self.generation_id.unwrap_or(u64::MAX),
        };
        self.queue(&Message::RoleReply(reply), xid);
    }

    /// Sends an asynchronous message (packet-in, flow-removed,
    /// port-status) if the role and async configuration let it through.
    /// Returns whether it was queued.
    pub fn send_async(&mut self, msg: &Message) -> bool {
        if self.closed.is_some() || self.version.is_none() {
            return false;
        }
        let idx = usize::from(self.role == role::SLAVE);
        let a = &self.async_cfg;
        let allowed = match msg {
            Message::PacketIn(p) => a.packet_in_mask[idx] & (1u32 << (p.reason & 31)) != 0,
            Message::FlowRemoved(f) => a.flow_removed_mask[idx] & (1u32 << (f.reason & 31)) != 0,
            Message::PortStatus(p) => a.port_status_mask[idx] & (1u32 << (p.reason & 31)) != 0,
            _ => true,
        };
        if allowed {
            let xid = 0;
            self.queue(msg, xid);
        }
        allowed
    }
}
