//! One module per message family. Each holds the decoder and the encoder
//! of its messages side by side, for every wire version, with the
//! differences between versions in one place ([`Version`]'s predicates and
//! the branches that test them).
//!
//! [`crate::codec`] frames messages and dispatches on [`MsgType`], whose
//! table below is the one place that maps a message kind to its type code
//! in each version.

pub mod bundle;
pub mod controller;
pub mod ct_flush;
pub mod features;
pub mod flow_mod;
pub mod group;
pub mod hello;
pub mod meter;
pub mod multipart;
pub mod nicira;
pub mod oxs;
pub mod packet_io;
pub mod port;
pub mod tlv;

use flows::Action;

use crate::actions;
use crate::consts::{
    OFP10_VERSION, OFP13_VERSION, OFP14_VERSION, OFP15_VERSION, port_from_10, port_to_10, t10, t13,
    t14,
};
use crate::error::{DecodeError, EncodeError, OfError};
use crate::wire::{Reader, Writer};

/// A wire version this crate speaks.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Version {
    Of10,
    Of13,
    Of14,
    Of15,
}

impl Version {
    /// Every version, oldest first.
    pub const ALL: [Version; 4] = [Version::Of10, Version::Of13, Version::Of14, Version::Of15];

    pub fn from_wire(v: u8) -> Option<Version> {
        match v {
            OFP10_VERSION => Some(Version::Of10),
            OFP13_VERSION => Some(Version::Of13),
            OFP14_VERSION => Some(Version::Of14),
            OFP15_VERSION => Some(Version::Of15),
            _ => None,
        }
    }

    pub fn wire(self) -> u8 {
        match self {
            Version::Of10 => OFP10_VERSION,
            Version::Of13 => OFP13_VERSION,
            Version::Of14 => OFP14_VERSION,
            Version::Of15 => OFP15_VERSION,
        }
    }

    /// "1.0", "1.3", "1.4", "1.5": how error messages name the version.
    pub fn name(self) -> &'static str {
        match self {
            Version::Of10 => "1.0",
            Version::Of13 => "1.3",
            Version::Of14 => "1.4",
            Version::Of15 => "1.5",
        }
    }

    /// OpenFlow 1.4's additions, kept by 1.5: properties (TLVs) at the end
    /// of port descriptions, port stats, port mods and the async
    /// configuration, flow importance, and bundles as core messages.
    pub fn has_properties(self) -> bool {
        self >= Version::Of14
    }

    /// OpenFlow 1.5's layouts: packet-out with a match, flow statistics
    /// as OXS, group mods with bucket ids and bucket properties, a new
    /// flow-removed layout.
    pub fn is_of15(self) -> bool {
        self == Version::Of15
    }

    /// OpenFlow 1.0's layouts: 16-bit ports, `ofp_match`, actions without
    /// instructions, the 12-byte stats header.
    pub fn is_of10(self) -> bool {
        self == Version::Of10
    }

    /// The error for something this version cannot express.
    pub fn unsupported(self, what: &str) -> EncodeError {
        EncodeError::Unsupported {
            what: what.to_string(),
            version: self.name(),
        }
    }

    /// Reads a port number: 16 bits in 1.0 (mapped to 1.3 numbering), 32
    /// bits from 1.3 on.
    pub fn read_port(self, r: &mut Reader) -> Result<u32, DecodeError> {
        if self.is_of10() {
            r.u16().map(port_from_10)
        } else {
            r.u32()
        }
    }

    /// Writes a port number in this version's width.
    pub fn write_port(self, w: &mut Writer, p: u32) -> Result<(), EncodeError> {
        if self.is_of10() {
            w.u16(self.port10(p)?);
        } else {
            w.u32(p);
        }
        Ok(())
    }

    /// `p` in 1.0's 16-bit numbering.
    pub fn port10(self, p: u32) -> Result<u16, EncodeError> {
        port_to_10(p).ok_or_else(|| self.unsupported("port number"))
    }
}

/// Every kind of message, independent of version.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum MsgType {
    Hello,
    Error,
    EchoRequest,
    EchoReply,
    Experimenter,
    FeaturesRequest,
    FeaturesReply,
    GetConfigRequest,
    GetConfigReply,
    SetConfig,
    PacketIn,
    FlowRemoved,
    PortStatus,
    PacketOut,
    FlowMod,
    GroupMod,
    MeterMod,
    PortMod,
    MultipartRequest,
    MultipartReply,
    BarrierRequest,
    BarrierReply,
    QueueGetConfigRequest,
    QueueGetConfigReply,
    RoleRequest,
    RoleReply,
    GetAsyncRequest,
    GetAsyncReply,
    SetAsync,
    BundleControl,
    BundleAddMessage,
}

/// (kind, 1.0 type code, 1.3 type code, 1.4 and 1.5 type code); `None`
/// where the version lacks it. 1.3's Open Networking Foundation bundle
/// extension and the Nicira messages travel inside EXPERIMENTER messages
/// (see [`bundle`] and [`nicira`]).
type TypeRow = (MsgType, Option<u8>, Option<u8>, Option<u8>);

const TYPES: &[TypeRow] = {
    use MsgType as M;
    &[
        (
            M::Hello,
            Some(t10::HELLO),
            Some(t13::HELLO),
            Some(t13::HELLO),
        ),
        (
            M::Error,
            Some(t10::ERROR),
            Some(t13::ERROR),
            Some(t13::ERROR),
        ),
        (
            M::EchoRequest,
            Some(t10::ECHO_REQUEST),
            Some(t13::ECHO_REQUEST),
            Some(t13::ECHO_REQUEST),
        ),
        (
            M::EchoReply,
            Some(t10::ECHO_REPLY),
            Some(t13::ECHO_REPLY),
            Some(t13::ECHO_REPLY),
        ),
        (
            M::Experimenter,
            Some(t10::VENDOR),
            Some(t13::EXPERIMENTER),
            Some(t13::EXPERIMENTER),
        ),
        (
            M::FeaturesRequest,
            Some(t10::FEATURES_REQUEST),
            Some(t13::FEATURES_REQUEST),
            Some(t13::FEATURES_REQUEST),
        ),
        (
            M::FeaturesReply,
            Some(t10::FEATURES_REPLY),
            Some(t13::FEATURES_REPLY),
            Some(t13::FEATURES_REPLY),
        ),
        (
            M::GetConfigRequest,
            Some(t10::GET_CONFIG_REQUEST),
            Some(t13::GET_CONFIG_REQUEST),
            Some(t13::GET_CONFIG_REQUEST),
        ),
        (
            M::GetConfigReply,
            Some(t10::GET_CONFIG_REPLY),
            Some(t13::GET_CONFIG_REPLY),
            Some(t13::GET_CONFIG_REPLY),
        ),
        (
            M::SetConfig,
            Some(t10::SET_CONFIG),
            Some(t13::SET_CONFIG),
            Some(t13::SET_CONFIG),
        ),
        (
            M::PacketIn,
            Some(t10::PACKET_IN),
            Some(t13::PACKET_IN),
            Some(t13::PACKET_IN),
        ),
        (
            M::FlowRemoved,
            Some(t10::FLOW_REMOVED),
            Some(t13::FLOW_REMOVED),
            Some(t13::FLOW_REMOVED),
        ),
        (
            M::PortStatus,
            Some(t10::PORT_STATUS),
            Some(t13::PORT_STATUS),
            Some(t13::PORT_STATUS),
        ),
        (
            M::PacketOut,
            Some(t10::PACKET_OUT),
            Some(t13::PACKET_OUT),
            Some(t13::PACKET_OUT),
        ),
        (
            M::FlowMod,
            Some(t10::FLOW_MOD),
            Some(t13::FLOW_MOD),
            Some(t13::FLOW_MOD),
        ),
        (
            M::GroupMod,
            None,
            Some(t13::GROUP_MOD),
            Some(t13::GROUP_MOD),
        ),
        (
            M::PortMod,
            Some(t10::PORT_MOD),
            Some(t13::PORT_MOD),
            Some(t13::PORT_MOD),
        ),
        (
            M::MeterMod,
            None,
            Some(t13::METER_MOD),
            Some(t13::METER_MOD),
        ),
        (
            M::MultipartRequest,
            Some(t10::STATS_REQUEST),
            Some(t13::MULTIPART_REQUEST),
            Some(t13::MULTIPART_REQUEST),
        ),
        (
            M::MultipartReply,
            Some(t10::STATS_REPLY),
            Some(t13::MULTIPART_REPLY),
            Some(t13::MULTIPART_REPLY),
        ),
        (
            M::BarrierRequest,
            Some(t10::BARRIER_REQUEST),
            Some(t13::BARRIER_REQUEST),
            Some(t13::BARRIER_REQUEST),
        ),
        (
            M::BarrierReply,
            Some(t10::BARRIER_REPLY),
            Some(t13::BARRIER_REPLY),
            Some(t13::BARRIER_REPLY),
        ),
        // 1.4 replaced these with a multipart request (queue desc).
        (
            M::QueueGetConfigRequest,
            Some(t10::QUEUE_GET_CONFIG_REQUEST),
            Some(t13::QUEUE_GET_CONFIG_REQUEST),
            None,
        ),
        (
            M::QueueGetConfigReply,
            Some(t10::QUEUE_GET_CONFIG_REPLY),
            Some(t13::QUEUE_GET_CONFIG_REPLY),
            None,
        ),
        (
            M::RoleRequest,
            None,
            Some(t13::ROLE_REQUEST),
            Some(t13::ROLE_REQUEST),
        ),
        (
            M::RoleReply,
            None,
            Some(t13::ROLE_REPLY),
            Some(t13::ROLE_REPLY),
        ),
        (
            M::GetAsyncRequest,
            None,
            Some(t13::GET_ASYNC_REQUEST),
            Some(t13::GET_ASYNC_REQUEST),
        ),
        (
            M::GetAsyncReply,
            None,
            Some(t13::GET_ASYNC_REPLY),
            Some(t13::GET_ASYNC_REPLY),
        ),
        (
            M::SetAsync,
            None,
            Some(t13::SET_ASYNC),
            Some(t13::SET_ASYNC),
        ),
        (M::BundleControl, None, None, Some(t14::BUNDLE_CONTROL)),
        (
            M::BundleAddMessage,
            None,
            None,
            Some(t14::BUNDLE_ADD_MESSAGE),
        ),
    ]
};

impl MsgType {
    fn column(v: Version, row: &TypeRow) -> Option<u8> {
        match v {
            Version::Of10 => row.1,
            Version::Of13 => row.2,
            Version::Of14 | Version::Of15 => row.3,
        }
    }

    /// The kind of message with type code `code` in `v`.
    pub fn from_wire(v: Version, code: u8) -> Option<MsgType> {
        TYPES
            .iter()
            .find(|row| MsgType::column(v, row) == Some(code))
            .map(|row| row.0)
    }

    /// This kind's type code in `v`, if `v` has it.
    pub fn wire(self, v: Version) -> Option<u8> {
        TYPES
            .iter()
            .find(|row| row.0 == self)
            .and_then(|row| MsgType::column(v, row))
    }
}

/// An action list as `v` writes it (no instructions).
pub(crate) fn decode_actions(v: Version, r: Reader) -> Result<Vec<Action>, DecodeError> {
    if v.is_of10() {
        actions::decode_actions10(r)
    } else {
        actions::decode_actions13(r)
    }
}

pub(crate) fn encode_actions(
    w: &mut Writer,
    v: Version,
    acts: &[Action],
) -> Result<(), EncodeError> {
    if v.is_of10() {
        actions::encode_actions10(w, acts)
    } else if v == Version::Of15 {
        actions::encode_actions15(w, acts)
    } else {
        actions::encode_actions13(w, acts)
    }
}

/// Writes the common header with a length to be patched by [`finish`].
pub(crate) fn begin(w: &mut Writer, version: u8, ty: u8, xid: u32) {
    w.u8(version);
    w.u8(ty);
    w.u16(0);
    w.u32(xid);
}

/// Patches the header's length and returns the message.
pub(crate) fn finish(mut w: Writer) -> Result<Vec<u8>, EncodeError> {
    let n = w.len();
    let len = u16::try_from(n).map_err(|_| EncodeError::TooLong(n))?;
    w.patch_u16(2, len);
    Ok(w.buf)
}

/// `OFPBRC_BAD_LEN`: what a malformed message body is answered with.
pub(crate) const BAD_LEN: DecodeError = DecodeError::Refused(OfError::BadLen);

/// Splits `r` into length-prefixed entries (u16 length at offset 0), each
/// at least `min` bytes.
pub(crate) fn entries<'a>(mut r: Reader<'a>, min: usize) -> Result<Vec<Reader<'a>>, DecodeError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = usize::from(r.peek_u16(0)?);
        if len < min {
            return Err(BAD_LEN);
        }
        out.push(r.sub(len)?);
    }
    Ok(out)
}

/// Splits `r` into OpenFlow 1.4 properties: (type, body) where each is a
/// u16 type, a u16 length counting the 4-byte header but not the padding
/// that follows up to a multiple of 8. A malformed one is OFPBPC_BAD_LEN.
pub(crate) fn read_props(r: Reader) -> Result<Vec<(u16, Reader)>, DecodeError> {
    let mut r = r.reporting(OfError::BadPropertyLen);
    let mut out = Vec::new();
    while !r.is_empty() {
        let ty = r.u16()?;
        let len = usize::from(r.u16()?);
        if len < 4 {
            return Err(OfError::BadPropertyLen.into());
        }
        let body = r.sub(len - 4)?;
        let pad = len.next_multiple_of(8) - len;
        // The last property's padding may be missing.
        r.skip(pad.min(r.remaining()))?;
        out.push((ty, body));
    }
    Ok(out)
}

/// Writes one property: type, length, what `body` writes, zero padding to
/// a multiple of 8.
pub(crate) fn put_prop(w: &mut Writer, ty: u16, body: impl FnOnce(&mut Writer)) {
    let start = w.len();
    w.u16(ty);
    let at = w.len_placeholder();
    body(w);
    w.patch_len_since(at, start);
    let n = w.len() - start;
    w.zeros(n.next_multiple_of(8) - n);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_code_maps_back_to_its_kind_in_each_version() {
        for v in Version::ALL {
            for row in TYPES {
                if let Some(code) = row.0.wire(v) {
                    assert_eq!(MsgType::from_wire(v, code), Some(row.0), "{v:?} {code}");
                }
            }
        }
        assert_eq!(MsgType::GroupMod.wire(Version::Of10), None);
        assert_eq!(
            MsgType::from_wire(Version::Of10, 15),
            Some(MsgType::PortMod)
        );
        assert_eq!(
            MsgType::from_wire(Version::Of13, 15),
            Some(MsgType::GroupMod)
        );
    }
}
