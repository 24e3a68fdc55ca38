//! The controller's own settings: ROLE_REQUEST/REPLY and the async-message
//! configuration (GET_ASYNC_REQUEST/REPLY, SET_ASYNC). OpenFlow 1.3 on.

use super::{MsgType, Version};
use crate::error::{DecodeError, EncodeError, OfError};
use crate::message::{AsyncConfig, Message, RoleMsg};
use crate::wire::{Reader, Writer};

pub fn decode(ty: MsgType, _v: Version, mut r: Reader) -> Result<Message, DecodeError> {
    Ok(match ty {
        MsgType::RoleRequest | MsgType::RoleReply => {
            let role = r.u32()?;
            r.skip(4)?;
            let rm = RoleMsg {
                role,
                generation_id: r.u64()?,
            };
            r.done()?;
            if ty == MsgType::RoleRequest {
                Message::RoleRequest(rm)
            } else {
                Message::RoleReply(rm)
            }
        }
        MsgType::GetAsyncRequest => {
            r.done()?;
            Message::GetAsyncRequest
        }
        MsgType::GetAsyncReply | MsgType::SetAsync => {
            let mut v = [0u32; 6];
            for x in &mut v {
                *x = r.u32()?;
            }
            r.done()?;
            let a = AsyncConfig {
                packet_in_mask: [v[0], v[1]],
                port_status_mask: [v[2], v[3]],
                flow_removed_mask: [v[4], v[5]],
            };
            if ty == MsgType::SetAsync {
                Message::SetAsync(a)
            } else {
                Message::GetAsyncReply(a)
            }
        }
        _ => return Err(OfError::BadType.into()),
    })
}

pub fn encode(w: &mut Writer, v: Version, msg: &Message) -> Result<(), EncodeError> {
    match msg {
        Message::RoleRequest(r) | Message::RoleReply(r) => {
            w.u32(r.role);
            w.u32(0);
            w.u64(r.generation_id);
        }
        Message::GetAsyncRequest => {}
        Message::GetAsyncReply(a) | Message::SetAsync(a) => {
            for x in a
                .packet_in_mask
                .iter()
                .chain(&a.port_status_mask)
                .chain(&a.flow_removed_mask)
            {
                w.u32(*x);
            }
        }
        _ => return Err(v.unsupported(msg.name())),
    }
    Ok(())
}
