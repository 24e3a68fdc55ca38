//! The controller's own settings: ROLE_REQUEST/REPLY and the async-message
//! configuration (GET_ASYNC_REQUEST/REPLY, SET_ASYNC). OpenFlow 1.3 on;
//! 1.4 turned the async configuration's six masks into properties.

use super::{MsgType, Version};
use crate::error::{DecodeError, EncodeError, OfError};
use crate::message::{AsyncConfig, Message, RoleMsg};
use crate::wire::{Reader, Writer};

/// 1.4's async-config properties (`OFPACPT_*`): for each message kind a
/// slave property then a master one, each holding one mask.
mod acpt {
    pub const PACKET_IN_SLAVE: u16 = 0;
    pub const PACKET_IN_MASTER: u16 = 1;
    pub const PORT_STATUS_SLAVE: u16 = 2;
    pub const PORT_STATUS_MASTER: u16 = 3;
    pub const FLOW_REMOVED_SLAVE: u16 = 4;
    pub const FLOW_REMOVED_MASTER: u16 = 5;
    /// Role status, table status and request-forward (6..=11) are kept by
    /// nobody here; experimenter properties are 0xfffe and 0xffff.
    pub const LAST_KNOWN: u16 = 11;
}

/// The masks of a 1.4 async configuration. Properties a SET_ASYNC leaves
/// out keep the OpenFlow defaults.
fn decode_async14(r: Reader) -> Result<AsyncConfig, DecodeError> {
    let mut a = AsyncConfig::default();
    for (ty, mut p) in super::read_props(r)? {
        let slot = match ty {
            acpt::PACKET_IN_SLAVE => &mut a.packet_in_mask[1],
            acpt::PACKET_IN_MASTER => &mut a.packet_in_mask[0],
            acpt::PORT_STATUS_SLAVE => &mut a.port_status_mask[1],
            acpt::PORT_STATUS_MASTER => &mut a.port_status_mask[0],
            acpt::FLOW_REMOVED_SLAVE => &mut a.flow_removed_mask[1],
            acpt::FLOW_REMOVED_MASTER => &mut a.flow_removed_mask[0],
            t if t <= acpt::LAST_KNOWN || t >= 0xfffe => continue,
            _ => return Err(OfError::BadPropertyType.into()),
        };
        *slot = p.u32()?;
        p.done()?;
    }
    Ok(a)
}

fn encode_async14(w: &mut Writer, a: &AsyncConfig) {
    for (ty, mask) in [
        (acpt::PACKET_IN_SLAVE, a.packet_in_mask[1]),
        (acpt::PACKET_IN_MASTER, a.packet_in_mask[0]),
        (acpt::PORT_STATUS_SLAVE, a.port_status_mask[1]),
        (acpt::PORT_STATUS_MASTER, a.port_status_mask[0]),
        (acpt::FLOW_REMOVED_SLAVE, a.flow_removed_mask[1]),
        (acpt::FLOW_REMOVED_MASTER, a.flow_removed_mask[0]),
    ] {
        super::put_prop(w, ty, |w| w.u32(mask));
    }
}

pub fn decode(ty: MsgType, v: Version, mut r: Reader) -> Result<Message, DecodeError> {
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
        MsgType::GetAsyncReply | MsgType::SetAsync if v.has_properties() => {
            let a = decode_async14(r)?;
            if ty == MsgType::SetAsync {
                Message::SetAsync(a)
            } else {
                Message::GetAsyncReply(a)
            }
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
        Message::GetAsyncReply(a) | Message::SetAsync(a) if v.has_properties() => {
            encode_async14(w, a);
        }
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
