//! Session messages: hello (with its version bitmap), error, echo,
//! experimenter and barrier.

use super::{MsgType, Version};
use crate::consts::{NX_VENDOR_ID, ONF_VENDOR_ID};
use crate::error::{DecodeError, EncodeError, OfError};
use crate::message::{ErrorMsg, Message};
use crate::wire::{Reader, Writer};

/// OFPHET_VERSIONBITMAP.
const HELLO_ELEM_VERSIONBITMAP: u16 = 1;

/// A hello in any version: its version bitmap, 0 if absent. Malformed
/// elements end the scan instead of failing, as hellos must be tolerated.
pub fn decode_hello(mut r: Reader) -> Message {
    let mut versions = 0;
    while r.remaining() >= 4 {
        let (Ok(ty), Ok(len)) = (r.u16(), r.u16()) else {
            break;
        };
        let len = usize::from(len);
        if len < 4 {
            break;
        }
        let Ok(mut b) = r.sub(len - 4) else { break };
        if ty == HELLO_ELEM_VERSIONBITMAP
            && let Ok(bm) = b.u32()
        {
            versions = bm;
        }
        let pad = len.next_multiple_of(8) - len;
        if r.skip(pad.min(r.remaining())).is_err() {
            break;
        }
    }
    Message::Hello { versions }
}

/// A hello body in any version.
pub fn encode_hello(w: &mut Writer, versions: u32) {
    if versions != 0 {
        w.u16(HELLO_ELEM_VERSIONBITMAP);
        w.u16(8);
        w.u32(versions);
    }
}

/// Whether an experimenter/vendor message carries a 32-bit subtype after
/// its id: always from 1.1 on, and Nicira's in 1.0 too.
fn has_exp_type(v: Version, experimenter: u32) -> bool {
    !v.is_of10() || experimenter == NX_VENDOR_ID
}

pub fn decode(ty: MsgType, v: Version, mut r: Reader) -> Result<Message, DecodeError> {
    Ok(match ty {
        MsgType::Hello => decode_hello(r),
        MsgType::Error => Message::Error(ErrorMsg {
            err_type: r.u16()?,
            code: r.u16()?,
            data: r.rest().to_vec(),
        }),
        MsgType::EchoRequest => Message::EchoRequest(r.rest().to_vec()),
        MsgType::EchoReply => Message::EchoReply(r.rest().to_vec()),
        MsgType::Experimenter => {
            let experimenter = r.u32()?;
            // 1.0's vendor message has no subtype, except Nicira's.
            let exp_type = if has_exp_type(v, experimenter) {
                r.u32()?
            } else {
                0
            };
            if experimenter == NX_VENDOR_ID
                && let Some(m) = super::nicira::decode(v, exp_type, r.clone())?
            {
                return Ok(Message::Nicira(m));
            }
            if experimenter == ONF_VENDOR_ID
                && let Some(kind) = super::bundle::onf_kind(v, exp_type)
            {
                return super::bundle::decode(kind, v, r);
            }
            Message::Experimenter {
                experimenter,
                exp_type,
                data: r.rest().to_vec(),
            }
        }
        MsgType::BarrierRequest => Message::BarrierRequest,
        MsgType::BarrierReply => Message::BarrierReply,
        _ => return Err(OfError::BadType.into()),
    })
}

pub fn encode(w: &mut Writer, v: Version, msg: &Message) -> Result<(), EncodeError> {
    match msg {
        Message::Hello { versions } => encode_hello(w, *versions),
        Message::Error(e) => {
            w.u16(e.err_type);
            w.u16(e.code);
            w.bytes(&e.data);
        }
        Message::EchoRequest(d) | Message::EchoReply(d) => w.bytes(d),
        Message::Experimenter {
            experimenter,
            exp_type,
            data,
        } => {
            w.u32(*experimenter);
            if has_exp_type(v, *experimenter) {
                w.u32(*exp_type);
            }
            w.bytes(data);
        }
        Message::BarrierRequest | Message::BarrierReply => {}
        _ => return Err(v.unsupported(msg.name())),
    }
    Ok(())
}
