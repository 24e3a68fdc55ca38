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
use std::collections::BTreeMap;

use crate::consts::{
    HEADER_LEN, NO_BUFFER, NX_VENDOR_ID, OFP10_VERSION, OFP13_VERSION, OFP14_VERSION,
    OFP15_VERSION, ONF_VENDOR_ID,
};
use crate::error::OfError;
use crate::message::*;
use crate::msg::nicira::{NxMsg, PacketIn2, packet_in_format};
use crate::msg::tlv::{TlvTableMod, TlvTableReply};

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
    /// Applies the messages of a committed bundle, in order. With
    /// `atomic`, either every message applies or none does (the tables are
    /// left exactly as they were); the error names the index of the
    /// message that failed. This default applies them one by one and is
    /// not atomic: a switch that offers atomic bundles overrides it.
    fn bundle_commit(&mut self, msgs: &[BundledMod], atomic: bool) -> Result<(), (usize, OfError)> {
        let _ = atomic;
        for (i, m) in msgs.iter().enumerate() {
            match m {
                BundledMod::Flow(fm) => self.flow_mod(fm.as_ref().clone()),
                BundledMod::Group(gm) => self.group_mod(gm.clone()),
                BundledMod::Port(pm) => self.port_mod(pm.clone()),
            }
            .map_err(|e| (i, e))?;
        }
        Ok(())
    }
    /// NXT_RESUME: continue the paused pipeline `p` carries (its packet,
    /// metadata and continuation). A switch that never pauses refuses it.
    fn resume(&mut self, _p: PacketIn2) -> Result<(), OfError> {
        Err(OfError::ResumeNotSupported)
    }
    /// NXT_CT_FLUSH_ZONE: forget the connection-tracking entries of `zone`.
    fn ct_flush_zone(&mut self, zone: u16) -> Result<(), OfError> {
        debug!("ct_flush_zone {zone}: no connection tracker to flush");
        Ok(())
    }
    /// NXT_CT_FLUSH: forget the connection-tracking entries matching a
    /// partial tuple. A switch without a tracker refuses it.
    fn ct_flush(&mut self, _f: crate::msg::ct_flush::CtFlush) -> Result<(), OfError> {
        Err(OfError::BadExpType)
    }
    /// NXT_TLV_TABLE_MOD: changes the bridge's Geneve TLV map, all of the
    /// request or none of it. A switch without tunnel metadata refuses it.
    fn tlv_table_mod(&mut self, _m: TlvTableMod) -> Result<(), OfError> {
        Err(OfError::BadExpType)
    }
    /// NXT_TLV_TABLE_REQUEST: the bridge's Geneve TLV map.
    fn tlv_table(&mut self) -> Result<TlvTableReply, OfError> {
        Err(OfError::BadExpType)
    }
}

/// A message a bundle may carry, decoded when it was added.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum BundledMod {
    Flow(Box<FlowMod>),
    Group(GroupMod),
    Port(PortMod),
}

/// A bundle being filled on one connection.
#[derive(Debug)]
struct OpenBundle {
    flags: u16,
    closed: bool,
    /// Each message as received (for errors) and decoded.
    msgs: Vec<(Vec<u8>, BundledMod)>,
}

/// Most bundles one connection may hold open at once.
const MAX_BUNDLES: usize = 64;
/// Most messages one bundle may hold (OFPBFC_MSG_TOO_MANY beyond).
const MAX_BUNDLE_MSGS: usize = 1 << 20;

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
            versions: DEFAULT_VERSIONS,
            probe_interval_ms: 5_000,
        }
    }
}

/// Every version this crate speaks, as a HELLO bitmap.
pub const DEFAULT_VERSIONS: u32 =
    (1 << OFP10_VERSION) | (1 << OFP13_VERSION) | (1 << OFP14_VERSION) | (1 << OFP15_VERSION);

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

/// "0x01, 0x04" for a version bitmap.
fn hex_versions(bitmap: u32) -> String {
    (0..32u8)
        .filter(|v| bitmap & (1 << v) != 0)
        .map(|v| format!("0x{v:02x}"))
        .collect::<Vec<_>>()
        .join(", ")
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
    bundles: BTreeMap<u32, OpenBundle>,
    /// NXT_SET_PACKET_IN_FORMAT's choice.
    packet_in_format: u32,
    /// NXT_SET_CONTROLLER_ID's id.
    controller_id: u16,
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
            bundles: BTreeMap::new(),
            packet_in_format: packet_in_format::STANDARD,
            controller_id: 0,
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

    /// The controller id set by NXT_SET_CONTROLLER_ID (0 by default).
    pub fn controller_id(&self) -> u16 {
        self.controller_id
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
                | Message::BundleAddMessage(_)
                | Message::Nicira(
                    NxMsg::CtFlushZone(_)
                        | NxMsg::CtFlush(_)
                        | NxMsg::Resume(_)
                        | NxMsg::TlvTableMod(_)
                )
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
            Message::Experimenter { experimenter, .. } => {
                // A known experimenter with a message type this switch
                // lacks is OFPBRC_BAD_EXP_TYPE (Open vSwitch's
                // OFPBRC_BAD_SUBTYPE); anyone else is OFPBRC_BAD_EXPERIMENTER.
                let e = if experimenter == NX_VENDOR_ID || experimenter == ONF_VENDOR_ID {
                    OfError::BadExpType
                } else {
                    OfError::BadExperimenter
                };
                self.queue_error(e, raw, xid);
            }
            Message::BundleControl(c) => self.handle_bundle_control(c, raw, xid, agent),
            Message::BundleAddMessage(a) => self.handle_bundle_add(a, raw, xid),
            Message::Nicira(m) => self.handle_nicira(m, raw, xid, agent),
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
                ..
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
                let e = ErrorMsg {
                    err_type: 0,
                    code: 0,
                    data: format!(
                        "We support versions {}, you support versions {}.",
                        hex_versions(self.cfg.versions),
                        hex_versions(theirs)
                    )
                    .into_bytes(),
                };
                // The error goes out in the highest version both headers
                // allow, so that the peer can read it.
                let ev = [OFP15_VERSION, OFP14_VERSION, OFP13_VERSION]
                    .into_iter()
                    .find(|v| h.version >= *v)
                    .unwrap_or(OFP10_VERSION);
                if let Ok(b) = encode(&Message::Error(e), ev, h.xid) {
                    self.out.extend_from_slice(&b);
                }
                self.closed = Some(CloseReason::Incompatible);
            }
        }
    }

    fn handle_bundle_control<A: SwitchAgent + ?Sized>(
        &mut self,
        c: BundleCtrl,
        raw: &[u8],
        xid: u32,
        agent: &mut A,
    ) {
        let reply_type = match c.ctrl_type {
            bundle_ctrl::OPEN_REQUEST => {
                if self.bundles.contains_key(&c.bundle_id) {
                    return self.queue_error(OfError::BundleExists, raw, xid);
                }
                if self.bundles.len() >= MAX_BUNDLES {
                    return self.queue_error(OfError::OutOfBundles, raw, xid);
                }
                self.bundles.insert(
                    c.bundle_id,
                    OpenBundle {
                        flags: c.flags,
                        closed: false,
                        msgs: Vec::new(),
                    },
                );
                bundle_ctrl::OPEN_REPLY
            }
            bundle_ctrl::CLOSE_REQUEST => {
                let Some(b) = self.bundles.get_mut(&c.bundle_id) else {
                    return self.queue_error(OfError::BundleBadId, raw, xid);
                };
                if b.closed {
                    return self.queue_error(OfError::BundleClosed, raw, xid);
                }
                if b.flags != c.flags {
                    return self.queue_error(OfError::BundleBadFlags, raw, xid);
                }
                b.closed = true;
                bundle_ctrl::CLOSE_REPLY
            }
            bundle_ctrl::COMMIT_REQUEST => {
                if self.role == role::SLAVE {
                    return self.queue_error(OfError::IsSlave, raw, xid);
                }
                // The bundle is gone whatever the outcome.
                let Some(b) = self.bundles.remove(&c.bundle_id) else {
                    return self.queue_error(OfError::BundleBadId, raw, xid);
                };
                if b.flags != c.flags {
                    return self.queue_error(OfError::BundleBadFlags, raw, xid);
                }
                let mods: Vec<BundledMod> = b.msgs.iter().map(|(_, m)| m.clone()).collect();
                let atomic = b.flags & bundle_ctrl::ATOMIC != 0;
                if let Err((i, e)) = agent.bundle_commit(&mods, atomic) {
                    // As Open vSwitch does: the error for the message that
                    // failed (its own xid and bytes), then MSG_FAILED for
                    // the commit.
                    if let Some((inner, _)) = b.msgs.get(i) {
                        let inner_xid = parse_header(inner).map(|h| h.xid).unwrap_or(xid);
                        self.queue_error(e, inner, inner_xid);
                    }
                    return self.queue_error(OfError::BundleMsgFailed, raw, xid);
                }
                bundle_ctrl::COMMIT_REPLY
            }
            bundle_ctrl::DISCARD_REQUEST => {
                if self.bundles.remove(&c.bundle_id).is_none() {
                    return self.queue_error(OfError::BundleBadId, raw, xid);
                }
                bundle_ctrl::DISCARD_REPLY
            }
            _ => return self.queue_error(OfError::BundleBadType, raw, xid),
        };
        let reply = BundleCtrl {
            bundle_id: c.bundle_id,
            ctrl_type: reply_type,
            flags: c.flags,
        };
        self.queue(&Message::BundleControl(reply), xid);
    }

    /// Checks and decodes a message added to a bundle; errors name the
    /// add message. A bundle that does not exist yet is opened with the
    /// message's flags.
    fn handle_bundle_add(&mut self, a: BundleAdd, raw: &[u8], xid: u32) {
        let version = self.version.unwrap_or(OFP13_VERSION);
        let decoded = match parse_header(&a.message) {
            Err(_) => Err(OfError::BundleMsgBadLen),
            Ok(h) if h.version != version => Err(OfError::BadVersion),
            Ok(h) if h.xid != xid => Err(OfError::BundleMsgBadXid),
            Ok(_) => match codec::decode(&a.message) {
                Err(e) => Err(e.of_error()),
                Ok((_, Message::FlowMod(f))) => Ok(BundledMod::Flow(Box::new(f.flow_mod))),
                Ok((_, Message::GroupMod(g))) => Ok(BundledMod::Group(g)),
                Ok((_, Message::PortMod(p))) => Ok(BundledMod::Port(p)),
                Ok(_) => Err(OfError::BundleMsgUnsup),
            },
        };
        let m = match decoded {
            Ok(m) => m,
            Err(e) => return self.queue_error(e, raw, xid),
        };
        if !self.bundles.contains_key(&a.bundle_id) && self.bundles.len() >= MAX_BUNDLES {
            return self.queue_error(OfError::OutOfBundles, raw, xid);
        }
        let b = self.bundles.entry(a.bundle_id).or_insert(OpenBundle {
            flags: a.flags,
            closed: false,
            msgs: Vec::new(),
        });
        if b.closed {
            self.queue_error(OfError::BundleClosed, raw, xid);
        } else if b.msgs.len() >= MAX_BUNDLE_MSGS {
            self.queue_error(OfError::BundleMsgTooMany, raw, xid);
        } else if b.flags != a.flags {
            self.queue_error(OfError::BundleBadFlags, raw, xid);
        } else if matches!(m, BundledMod::Port(_)) && b.flags & bundle_ctrl::ATOMIC != 0 {
            // Port changes cannot be undone, so they cannot be atomic.
            self.queue_error(OfError::BundleMsgUnsup, raw, xid);
        } else {
            b.msgs.push((a.message, m));
        }
    }

    fn handle_nicira<A: SwitchAgent + ?Sized>(
        &mut self,
        m: NxMsg,
        raw: &[u8],
        xid: u32,
        agent: &mut A,
    ) {
        match m {
            NxMsg::SetPacketInFormat(f) => match f {
                packet_in_format::STANDARD | packet_in_format::NXT_PACKET_IN2 => {
                    self.packet_in_format = f;
                }
                _ => self.queue_error(OfError::BadRequestEperm, raw, xid),
            },
            NxMsg::SetControllerId(id) => self.controller_id = id,
            NxMsg::SetAsyncConfig(a) => self.async_cfg = a,
            NxMsg::CtFlushZone(zone) => {
                debug!("NXT_CT_FLUSH_ZONE zone {zone}");
                if let Err(e) = agent.ct_flush_zone(zone) {
                    self.queue_error(e, raw, xid);
                }
            }
            NxMsg::CtFlush(f) => {
                debug!("NXT_CT_FLUSH {f:?}");
                if let Err(e) = agent.ct_flush(f) {
                    self.queue_error(e, raw, xid);
                }
            }
            NxMsg::Resume(p) => {
                if let Err(e) = agent.resume(p) {
                    self.queue_error(e, raw, xid);
                }
            }
            NxMsg::TlvTableMod(m) => {
                if let Err(e) = agent.tlv_table_mod(m) {
                    self.queue_error(e, raw, xid);
                }
            }
            NxMsg::TlvTableRequest => match agent.tlv_table() {
                Ok(t) => self.queue(&Message::Nicira(NxMsg::TlvTableReply(t)), xid),
                Err(e) => self.queue_error(e, raw, xid),
            },
            NxMsg::PacketIn2(_) | NxMsg::TlvTableReply(_) => {
                self.queue_error(OfError::BadType, raw, xid)
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
            Message::Nicira(NxMsg::PacketIn2(p)) => {
                a.packet_in_mask[idx] & (1u32 << (p.packet_in.reason & 31)) != 0
            }
            Message::FlowRemoved(f) => a.flow_removed_mask[idx] & (1u32 << (f.reason & 31)) != 0,
            Message::PortStatus(p) => a.port_status_mask[idx] & (1u32 << (p.reason & 31)) != 0,
            _ => true,
        };
        if allowed {
            let xid = 0;
            match msg {
                Message::PacketIn(p)
                    if self.packet_in_format == packet_in_format::NXT_PACKET_IN2 =>
                {
                    let m = Message::Nicira(NxMsg::PacketIn2(PacketIn2::from_packet_in(p.clone())));
                    self.queue(&m, xid);
                }
                // Userdata only travels in packet-in2; other connections
                // get the plain packet-in.
                Message::Nicira(NxMsg::PacketIn2(p))
                    if self.packet_in_format != packet_in_format::NXT_PACKET_IN2 =>
                {
                    self.queue(&Message::PacketIn(p.packet_in.clone()), xid);
                }
                _ => self.queue(msg, xid),
            }
        }
        allowed
    }
}
