//! Nicira extension messages (experimenter id 0x00002320): the one place
//! that frames them (`experimenter`, `subtype`, body) in every version, and
//! the bodies of the ones the switch speaks: NXT_SET_PACKET_IN_FORMAT,
//! NXT_PACKET_IN2, NXT_SET_CONTROLLER_ID, NXT_SET_ASYNC_CONFIG,
//! NXT_CT_FLUSH_ZONE, NXT_CT_FLUSH (laid out in [`super::ct_flush`]) and
//! NXT_RESUME (and, laid out in [`super::tlv`], the
//! TLV table messages). A subtype not listed here decodes as
//! a plain [`Message::Experimenter`].

use flows::Match;

use super::tlv::{self, TlvTableMod, TlvTableReply};
use super::{Version, put_prop, read_props};
use crate::consts::{NO_BUFFER, NX_VENDOR_ID};
use crate::error::{DecodeError, EncodeError, OfError};
use crate::message::{AsyncConfig, Message, PacketIn};
use crate::oxm::{decode_fields, encode_fields};
use crate::wire::{Reader, Writer};

/// Nicira message subtypes (`NXT_*`).
pub mod nxt {
    pub const SET_PACKET_IN_FORMAT: u32 = 16;
    pub const SET_ASYNC_CONFIG: u32 = 19;
    pub const SET_CONTROLLER_ID: u32 = 20;
    pub const RESUME: u32 = 28;
    pub const CT_FLUSH_ZONE: u32 = 29;
    pub const PACKET_IN2: u32 = 30;
    pub const CT_FLUSH: u32 = 32;
    pub use super::tlv::nxt::*;
}

/// Packet-in formats of NXT_SET_PACKET_IN_FORMAT (`NXPIF_*`).
pub mod packet_in_format {
    /// The standard OFPT_PACKET_IN of the connection's version.
    pub const STANDARD: u32 = 0;
    /// NXT_PACKET_IN (Open vSwitch's older extension).
    pub const NXT_PACKET_IN: u32 = 1;
    /// NXT_PACKET_IN2, with properties.
    pub const NXT_PACKET_IN2: u32 = 2;
}

/// NXT_PACKET_IN2 / NXT_RESUME property types (`NXPINT_*`).
mod nxpint {
    pub const PACKET: u16 = 0;
    pub const FULL_LEN: u16 = 1;
    pub const BUFFER_ID: u16 = 2;
    pub const TABLE_ID: u16 = 3;
    pub const COOKIE: u16 = 4;
    pub const REASON: u16 = 5;
    pub const METADATA: u16 = 6;
    pub const USERDATA: u16 = 7;
    pub const CONTINUATION: u16 = 8;
}

/// A packet-in with Open vSwitch's additions: the `controller` action's
/// userdata and, for a paused pipeline, the continuation that NXT_RESUME
/// hands back (opaque to controllers; only the switch reads it).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PacketIn2 {
    pub packet_in: PacketIn,
    pub userdata: Option<Vec<u8>>,
    pub continuation: Option<Vec<u8>>,
}

impl PacketIn2 {
    /// A plain packet-in in NXT_PACKET_IN2 form.
    pub fn from_packet_in(packet_in: PacketIn) -> PacketIn2 {
        PacketIn2 {
            packet_in,
            userdata: None,
            continuation: None,
        }
    }
}

/// A Nicira message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum NxMsg {
    /// A [`packet_in_format`] value.
    SetPacketInFormat(u32),
    PacketIn2(PacketIn2),
    SetControllerId(u16),
    /// The same masks as OpenFlow 1.3's SET_ASYNC.
    SetAsyncConfig(AsyncConfig),
    /// Flush the connection-tracking entries of one zone.
    CtFlushZone(u16),
    /// Flush the connection-tracking entries matching a partial tuple.
    CtFlush(super::ct_flush::CtFlush),
    /// Continue a paused pipeline: the packet (possibly changed by the
    /// controller), its metadata and the continuation of the packet-in.
    Resume(PacketIn2),
    /// Change the Geneve TLV map.
    TlvTableMod(TlvTableMod),
    /// Ask for the Geneve TLV map.
    TlvTableRequest,
    TlvTableReply(TlvTableReply),
}

impl NxMsg {
    pub fn name(&self) -> &'static str {
        match self {
            NxMsg::SetPacketInFormat(_) => "NXT_SET_PACKET_IN_FORMAT",
            NxMsg::PacketIn2(_) => "NXT_PACKET_IN2",
            NxMsg::SetControllerId(_) => "NXT_SET_CONTROLLER_ID",
            NxMsg::SetAsyncConfig(_) => "NXT_SET_ASYNC_CONFIG",
            NxMsg::CtFlushZone(_) => "NXT_CT_FLUSH_ZONE",
            NxMsg::CtFlush(_) => "NXT_CT_FLUSH",
            NxMsg::Resume(_) => "NXT_RESUME",
            NxMsg::TlvTableMod(_) => "NXT_TLV_TABLE_MOD",
            NxMsg::TlvTableRequest => "NXT_TLV_TABLE_REQUEST",
            NxMsg::TlvTableReply(_) => "NXT_TLV_TABLE_REPLY",
        }
    }

    fn subtype(&self) -> u32 {
        match self {
            NxMsg::SetPacketInFormat(_) => nxt::SET_PACKET_IN_FORMAT,
            NxMsg::PacketIn2(_) => nxt::PACKET_IN2,
            NxMsg::SetControllerId(_) => nxt::SET_CONTROLLER_ID,
            NxMsg::SetAsyncConfig(_) => nxt::SET_ASYNC_CONFIG,
            NxMsg::CtFlushZone(_) => nxt::CT_FLUSH_ZONE,
            NxMsg::CtFlush(_) => nxt::CT_FLUSH,
            NxMsg::Resume(_) => nxt::RESUME,
            NxMsg::TlvTableMod(_) => nxt::TLV_TABLE_MOD,
            NxMsg::TlvTableRequest => nxt::TLV_TABLE_REQUEST,
            NxMsg::TlvTableReply(_) => nxt::TLV_TABLE_REPLY,
        }
    }
}

/// Decodes the body of a Nicira message of `subtype`; `None` for a
/// subtype this crate does not know.
pub fn decode(_v: Version, subtype: u32, mut r: Reader) -> Result<Option<NxMsg>, DecodeError> {
    let m = match subtype {
        nxt::SET_PACKET_IN_FORMAT => {
            let f = r.u32()?;
            r.done()?;
            NxMsg::SetPacketInFormat(f)
        }
        nxt::SET_CONTROLLER_ID => {
            r.skip(6)?;
            let id = r.u16()?;
            r.done()?;
            NxMsg::SetControllerId(id)
        }
        nxt::SET_ASYNC_CONFIG => {
            let mut m = [0u32; 6];
            for x in &mut m {
                *x = r.u32()?;
            }
            r.done()?;
            NxMsg::SetAsyncConfig(AsyncConfig {
                packet_in_mask: [m[0], m[1]],
                port_status_mask: [m[2], m[3]],
                flow_removed_mask: [m[4], m[5]],
            })
        }
        nxt::CT_FLUSH_ZONE => {
            r.skip(6)?;
            let zone = r.u16()?;
            r.done()?;
            NxMsg::CtFlushZone(zone)
        }
        nxt::CT_FLUSH => NxMsg::CtFlush(super::ct_flush::decode(r)?),
        nxt::PACKET_IN2 => NxMsg::PacketIn2(decode_packet_in2(r)?),
        nxt::RESUME => NxMsg::Resume(decode_packet_in2(r)?),
        nxt::TLV_TABLE_MOD => NxMsg::TlvTableMod(tlv::decode_mod(r)?),
        nxt::TLV_TABLE_REQUEST => {
            r.done()?;
            NxMsg::TlvTableRequest
        }
        nxt::TLV_TABLE_REPLY => NxMsg::TlvTableReply(tlv::decode_reply(r)?),
        _ => return Ok(None),
    };
    Ok(Some(m))
}

/// Writes the Nicira framing (vendor id, subtype) and `m`'s body; the
/// common header is already written.
pub fn encode(w: &mut Writer, _v: Version, m: &NxMsg) -> Result<(), EncodeError> {
    w.u32(NX_VENDOR_ID);
    w.u32(m.subtype());
    match m {
        NxMsg::SetPacketInFormat(f) => w.u32(*f),
        NxMsg::SetControllerId(id) => {
            w.zeros(6);
            w.u16(*id);
        }
        NxMsg::SetAsyncConfig(a) => {
            for x in a
                .packet_in_mask
                .iter()
                .chain(&a.port_status_mask)
                .chain(&a.flow_removed_mask)
            {
                w.u32(*x);
            }
        }
        NxMsg::CtFlushZone(zone) => {
            w.zeros(6);
            w.u16(*zone);
        }
        NxMsg::CtFlush(f) => super::ct_flush::encode(w, f),
        NxMsg::PacketIn2(p) | NxMsg::Resume(p) => encode_packet_in2(w, p)?,
        NxMsg::TlvTableMod(m) => tlv::encode_mod(w, m),
        NxMsg::TlvTableRequest => {}
        NxMsg::TlvTableReply(m) => tlv::encode_reply(w, m),
    }
    Ok(())
}

/// The properties of NXT_PACKET_IN2 and NXT_RESUME. Absent properties
/// take their defaults: no buffer, the whole packet, table 0, cookie 0,
/// reason "no match", no metadata.
fn decode_packet_in2(r: Reader) -> Result<PacketIn2, DecodeError> {
    let mut data = None;
    let mut full_len = None;
    let mut pi = PacketIn {
        buffer_id: NO_BUFFER,
        total_len: 0,
        reason: 0,
        table_id: 0,
        cookie: 0,
        match_: Match::catch_all(),
        data: Vec::new(),
    };
    let mut userdata = None;
    let mut continuation = None;
    for (ty, mut p) in read_props(r)? {
        match ty {
            nxpint::PACKET => data = Some(p.rest().to_vec()),
            nxpint::FULL_LEN => {
                let n = p.u32()?;
                full_len = Some(u16::try_from(n).map_err(|_| OfError::BadPropertyValue)?);
            }
            nxpint::BUFFER_ID => pi.buffer_id = p.u32()?,
            nxpint::TABLE_ID => pi.table_id = p.u8()?,
            nxpint::COOKIE => {
                p.skip(4)?;
                pi.cookie = p.u64()?;
            }
            nxpint::REASON => pi.reason = p.u8()?,
            nxpint::METADATA => pi.match_ = decode_fields(p)?,
            nxpint::USERDATA => userdata = Some(p.rest().to_vec()),
            nxpint::CONTINUATION => continuation = Some(p.rest().to_vec()),
            _ => return Err(OfError::BadPropertyType.into()),
        }
    }
    pi.data = data.ok_or(OfError::BadPropertyType)?;
    let whole = u16::try_from(pi.data.len()).map_err(|_| OfError::BadPropertyValue)?;
    pi.total_len = full_len.unwrap_or(whole);
    Ok(PacketIn2 {
        packet_in: pi,
        userdata,
        continuation,
    })
}

fn encode_packet_in2(w: &mut Writer, p: &PacketIn2) -> Result<(), EncodeError> {
    let pi = &p.packet_in;
    put_prop(w, nxpint::PACKET, |w| w.bytes(&pi.data));
    if usize::from(pi.total_len) != pi.data.len() {
        put_prop(w, nxpint::FULL_LEN, |w| w.u32(u32::from(pi.total_len)));
    }
    if pi.buffer_id != NO_BUFFER {
        put_prop(w, nxpint::BUFFER_ID, |w| w.u32(pi.buffer_id));
    }
    put_prop(w, nxpint::TABLE_ID, |w| w.u8(pi.table_id));
    put_prop(w, nxpint::COOKIE, |w| {
        w.u32(0);
        w.u64(pi.cookie);
    });
    put_prop(w, nxpint::REASON, |w| w.u8(pi.reason));
    put_prop(w, nxpint::METADATA, |w| encode_fields(w, &pi.match_));
    if let Some(u) = &p.userdata {
        put_prop(w, nxpint::USERDATA, |w| w.bytes(u));
    }
    if let Some(c) = &p.continuation {
        put_prop(w, nxpint::CONTINUATION, |w| w.bytes(c));
    }
    Ok(())
}

/// Wraps `m` as a message.
impl From<NxMsg> for Message {
    fn from(m: NxMsg) -> Message {
        Message::Nicira(m)
    }
}

/// The continuation of a paused pipeline, as ferrovs lays it out inside
/// NXPINT_CONTINUATION (opaque to controllers, which hand it back in
/// NXT_RESUME): Open vSwitch's NXCPT_TABLE_ID, NXCPT_COOKIE and
/// NXCPT_ACTIONS properties, the actions in OpenFlow 1.5 encoding.
pub mod continuation {
    use flows::xlate::Continuation;

    use super::{put_prop, read_props};
    use crate::actions::{decode_actions13, encode_actions15};
    use crate::error::{DecodeError, EncodeError, OfError};
    use crate::wire::{Reader, Writer};

    const BRIDGE: u16 = 0x8000;
    const STACK: u16 = 0x8001;
    const MIRRORS: u16 = 0x8002;
    const CONNTRACKED: u16 = 0x8003;
    const TABLE_ID: u16 = 0x8004;
    const COOKIE: u16 = 0x8005;
    const ACTIONS: u16 = 0x8006;
    const ACTION_SET: u16 = 0x8007;
    const ODP_PORT: u16 = 0x8008;

    /// The continuation's bytes.
    pub fn encode(c: &Continuation) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer::new();
        // Nested properties start 8-aligned: 4 bytes of padding after the
        // NXPINT_CONTINUATION header, as Open vSwitch lays them out.
        w.zeros(4);
        put_prop(&mut w, TABLE_ID, |w| w.u8(c.table_id));
        put_prop(&mut w, COOKIE, |w| {
            w.zeros(4);
            w.u64(c.cookie);
        });
        let mut acts = Writer::new();
        encode_actions15(&mut acts, &c.actions)?;
        put_prop(&mut w, ACTIONS, |w| {
            w.zeros(4);
            w.bytes(&acts.buf);
        });
        Ok(w.buf)
    }

    /// Reads back what [`encode`] wrote, also as Open vSwitch's library
    /// re-encodes it in NXT_RESUME (ovn-controller's pinctrl decodes the
    /// continuation and writes it again, adding a zero bridge UUID, an
    /// empty stack, …). What ferrovs never pauses with (a field stack,
    /// an action set, conntrack state) is refused.
    pub fn decode(b: &[u8]) -> Result<Continuation, DecodeError> {
        let (mut table_id, mut cookie, mut actions) = (None, 0, None);
        let b = b.get(4..).ok_or(OfError::BadPropertyLen)?;
        for (ty, mut p) in read_props(Reader::new(b))? {
            match ty {
                TABLE_ID => table_id = Some(p.u8()?),
                COOKIE => {
                    p.skip(4)?;
                    cookie = p.u64()?;
                }
                ACTIONS => {
                    p.skip(4)?;
                    actions = Some(decode_actions13(p)?);
                }
                BRIDGE | MIRRORS | ODP_PORT => {}
                STACK | ACTION_SET if p.rest().iter().all(|b| *b == 0) => {}
                STACK | ACTION_SET | CONNTRACKED => {
                    return Err(OfError::BadPropertyValue.into());
                }
                _ => return Err(OfError::BadPropertyType.into()),
            }
        }
        Ok(Continuation {
            table_id: table_id.ok_or(OfError::BadPropertyType)?,
            cookie,
            actions: actions.ok_or(OfError::BadPropertyType)?,
        })
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn continuation_round_trips() {
            let c = flows::xlate::Continuation {
                table_id: 21,
                cookie: 0xdead_beef,
                actions: flows::text::parse_actions("set_field:0x1->reg10,resubmit(,22)").unwrap(),
            };
            let b = super::encode(&c).unwrap();
            assert_eq!(super::decode(&b).unwrap(), c);
            assert!(super::decode(&b[..8]).is_err());
        }
    }
}
