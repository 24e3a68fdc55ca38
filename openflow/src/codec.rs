//! Bytes ↔ [`Message`]: framing, and dispatch to the message families in
//! [`crate::msg`], which hold each message's layout in every version.

use crate::consts::HEADER_LEN;
use crate::error::{DecodeError, EncodeError, OfError};
use crate::message::*;
use crate::msg::{self, MsgType, Version, begin, finish};
use crate::wire::{Reader, Writer};

pub use crate::msg::multipart::merge_reply;

/// True for the versions this crate speaks.
pub fn version_supported(v: u8) -> bool {
    Version::from_wire(v).is_some()
}

/// Parses the 8-byte header at the start of `buf`.
pub fn parse_header(buf: &[u8]) -> Result<OfHeader, DecodeError> {
    let mut r = Reader::new(buf.get(..HEADER_LEN).ok_or(DecodeError::Truncated {
        need: HEADER_LEN,
        have: buf.len(),
    })?);
    let version = r.u8()?;
    let msg_type = r.u8()?;
    let length = r.u16()?;
    let xid = r.u32()?;
    if usize::from(length) < HEADER_LEN {
        return Err(DecodeError::BadHeaderLength(length));
    }
    Ok(OfHeader {
        version,
        msg_type,
        length,
        xid,
    })
}

/// Decodes exactly one message occupying all of `buf`.
pub fn decode(buf: &[u8]) -> Result<(OfHeader, Message), DecodeError> {
    let h = parse_header(buf)?;
    let len = usize::from(h.length);
    if buf.len() < len {
        return Err(DecodeError::Truncated {
            need: len,
            have: buf.len(),
        });
    }
    if buf.len() != len {
        return Err(DecodeError::BadHeaderLength(h.length));
    }
    let body = Reader::new(buf.get(HEADER_LEN..len).unwrap_or(&[]));
    // Hellos are read in any version: they are how versions are agreed.
    if h.msg_type == crate::consts::t13::HELLO {
        return Ok((h, msg::hello::decode_hello(body)));
    }
    let v = Version::from_wire(h.version).ok_or(DecodeError::UnsupportedVersion(h.version))?;
    let ty = MsgType::from_wire(v, h.msg_type).ok_or(OfError::BadType)?;
    Ok((h, decode_body(ty, v, body)?))
}

fn decode_body(ty: MsgType, v: Version, r: Reader) -> Result<Message, DecodeError> {
    use MsgType as T;
    match ty {
        T::Hello | T::Error | T::EchoRequest | T::EchoReply | T::Experimenter => {
            msg::hello::decode(ty, v, r)
        }
        T::BarrierRequest | T::BarrierReply => msg::hello::decode(ty, v, r),
        T::FeaturesRequest
        | T::FeaturesReply
        | T::GetConfigRequest
        | T::GetConfigReply
        | T::SetConfig => msg::features::decode(ty, v, r),
        T::PacketIn | T::PacketOut => msg::packet_io::decode(ty, v, r),
        T::FlowMod | T::FlowRemoved => msg::flow_mod::decode(ty, v, r),
        T::GroupMod => msg::group::decode(ty, v, r),
        T::MeterMod => msg::meter::decode(ty, v, r),
        T::PortStatus | T::PortMod | T::QueueGetConfigRequest | T::QueueGetConfigReply => {
            msg::port::decode(ty, v, r)
        }
        T::MultipartRequest | T::MultipartReply => msg::multipart::decode(ty, v, r),
        T::RoleRequest | T::RoleReply | T::GetAsyncRequest | T::GetAsyncReply | T::SetAsync => {
            msg::controller::decode(ty, v, r)
        }
        T::BundleControl | T::BundleAddMessage => msg::bundle::decode(ty, v, r),
    }
}

/// The kind of `msg` in `v`: extension messages travel as experimenter
/// messages.
fn msg_type(msg: &Message, v: Version) -> MsgType {
    use MsgType as T;
    match msg {
        Message::Nicira(_) => T::Experimenter,
        Message::BundleControl(_) | Message::BundleAddMessage(_) if msg::bundle::via_onf(v) => {
            T::Experimenter
        }
        Message::BundleControl(_) => T::BundleControl,
        Message::BundleAddMessage(_) => T::BundleAddMessage,
        Message::Hello { .. } => T::Hello,
        Message::Error(_) => T::Error,
        Message::EchoRequest(_) => T::EchoRequest,
        Message::EchoReply(_) => T::EchoReply,
        Message::Experimenter { .. } => T::Experimenter,
        Message::FeaturesRequest => T::FeaturesRequest,
        Message::FeaturesReply(_) => T::FeaturesReply,
        Message::GetConfigRequest => T::GetConfigRequest,
        Message::GetConfigReply(_) => T::GetConfigReply,
        Message::SetConfig(_) => T::SetConfig,
        Message::PacketIn(_) => T::PacketIn,
        Message::FlowRemoved(_) => T::FlowRemoved,
        Message::PortStatus(_) => T::PortStatus,
        Message::PacketOut(_) => T::PacketOut,
        Message::FlowMod(_) => T::FlowMod,
        Message::GroupMod(_) => T::GroupMod,
        Message::MeterMod(_) => T::MeterMod,
        Message::PortMod(_) => T::PortMod,
        Message::MultipartRequest(_) => T::MultipartRequest,
        Message::MultipartReply(_) => T::MultipartReply,
        Message::BarrierRequest => T::BarrierRequest,
        Message::BarrierReply => T::BarrierReply,
        Message::QueueGetConfigRequest { .. } => T::QueueGetConfigRequest,
        Message::QueueGetConfigReply { .. } => T::QueueGetConfigReply,
        Message::RoleRequest(_) => T::RoleRequest,
        Message::RoleReply(_) => T::RoleReply,
        Message::GetAsyncRequest => T::GetAsyncRequest,
        Message::GetAsyncReply(_) => T::GetAsyncReply,
        Message::SetAsync(_) => T::SetAsync,
    }
}

/// Encodes `msg` as one message of `version` with transaction id `xid`.
/// Multipart replies larger than 64 KiB need [`encode_multipart_reply`].
pub fn encode(msg: &Message, version: u8, xid: u32) -> Result<Vec<u8>, EncodeError> {
    let mut w = Writer::new();
    // A hello may offer versions this crate does not speak.
    if let Message::Hello { versions } = msg {
        begin(&mut w, version, crate::consts::t13::HELLO, xid);
        msg::hello::encode_hello(&mut w, *versions);
        return finish(w);
    }
    let v = Version::from_wire(version).ok_or_else(|| unsupported_version(version))?;
    let ty = msg_type(msg, v)
        .wire(v)
        .ok_or_else(|| v.unsupported(msg.name()))?;
    begin(&mut w, version, ty, xid);
    match msg {
        Message::Hello { .. }
        | Message::Error(_)
        | Message::EchoRequest(_)
        | Message::EchoReply(_)
        | Message::Experimenter { .. }
        | Message::BarrierRequest
        | Message::BarrierReply => msg::hello::encode(&mut w, v, msg)?,
        Message::FeaturesRequest
        | Message::FeaturesReply(_)
        | Message::GetConfigRequest
        | Message::GetConfigReply(_)
        | Message::SetConfig(_) => msg::features::encode(&mut w, v, msg)?,
        Message::PacketIn(_) | Message::PacketOut(_) => msg::packet_io::encode(&mut w, v, msg)?,
        Message::FlowMod(_) | Message::FlowRemoved(_) => msg::flow_mod::encode(&mut w, v, msg)?,
        Message::GroupMod(_) => msg::group::encode(&mut w, v, msg)?,
        Message::MeterMod(_) => msg::meter::encode(&mut w, v, msg)?,
        Message::PortStatus(_)
        | Message::PortMod(_)
        | Message::QueueGetConfigRequest { .. }
        | Message::QueueGetConfigReply { .. } => msg::port::encode(&mut w, v, msg)?,
        Message::MultipartRequest(_) | Message::MultipartReply(_) => {
            msg::multipart::encode(&mut w, v, msg)?
        }
        Message::RoleRequest(_)
        | Message::RoleReply(_)
        | Message::GetAsyncRequest
        | Message::GetAsyncReply(_)
        | Message::SetAsync(_) => msg::controller::encode(&mut w, v, msg)?,
        Message::BundleControl(_) | Message::BundleAddMessage(_) => {
            msg::bundle::encode(&mut w, v, msg)?
        }
        Message::Nicira(m) => msg::nicira::encode(&mut w, v, m)?,
    }
    finish(w)
}

fn unsupported_version(version: u8) -> EncodeError {
    EncodeError::Unsupported {
        what: format!("wire version 0x{version:02x}"),
        version: "1.0, 1.3, 1.4 or 1.5",
    }
}

/// Encodes a multipart reply, split into as many messages as needed (all
/// but the last flagged `OFPMPF_REPLY_MORE`).
pub fn encode_multipart_reply(
    body: &MultipartReplyBody,
    version: u8,
    xid: u32,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    let v = Version::from_wire(version).ok_or_else(|| unsupported_version(version))?;
    msg::multipart::encode_reply_split(v, body, xid)
}
