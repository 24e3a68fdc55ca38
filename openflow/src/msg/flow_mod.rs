//! Flow table changes: FLOW_MOD and FLOW_REMOVED.

use super::{MsgType, Version};
use crate::actions;
use crate::consts::{OFPG_ANY, OFPTT_ALL};
use crate::error::{DecodeError, EncodeError, OfError};
use crate::match10::{decode_match10, encode_match10};
use crate::message::{FlowMod, FlowModCommand, FlowRemoved, Message};
use crate::oxm::{decode_ofp_match, encode_ofp_match};
use crate::wire::{Reader, Writer};

/// OFPFF_EMERG (1.0 only).
const OFPFF10_EMERG: u16 = 4;
/// The flags 1.0 has in common with 1.3 (send_flow_rem, check_overlap).
const FLAGS10: u16 = 3;

pub fn decode(ty: MsgType, v: Version, r: Reader) -> Result<Message, DecodeError> {
    match ty {
        MsgType::FlowMod if v.is_of10() => decode_flow_mod10(r).map(Message::FlowMod),
        MsgType::FlowMod => decode_flow_mod13(r).map(Message::FlowMod),
        MsgType::FlowRemoved => decode_flow_removed(v, r).map(Message::FlowRemoved),
        _ => Err(OfError::BadType.into()),
    }
}

/// 1.0: the match first, a 16-bit command, no table, cookie mask, out_group
/// or instructions; emergency flows are refused.
fn decode_flow_mod10(mut r: Reader) -> Result<FlowMod, DecodeError> {
    let match_ = decode_match10(&mut r)?;
    let cookie = r.u64()?;
    let command = FlowModCommand::from_wire(r.u16()?).ok_or(OfError::BadCommand)?;
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    let priority = r.u16()?;
    let buffer_id = r.u32()?;
    let out_port = Version::Of10.read_port(&mut r)?;
    let flags = r.u16()?;
    if flags & OFPFF10_EMERG != 0 {
        return Err(OfError::BadTimeout.into());
    }
    Ok(FlowMod {
        command,
        match_,
        priority,
        cookie,
        cookie_mask: 0,
        table_id: if command.is_delete() { OFPTT_ALL } else { 0 },
        idle_timeout,
        hard_timeout,
        flags: flags & FLAGS10,
        buffer_id,
        out_port,
        out_group: OFPG_ANY,
        actions: actions::decode_actions10(r)?,
    })
}

fn decode_flow_mod13(mut r: Reader) -> Result<FlowMod, DecodeError> {
    let cookie = r.u64()?;
    let cookie_mask = r.u64()?;
    let table_id = r.u8()?;
    let command = FlowModCommand::from_wire(u16::from(r.u8()?)).ok_or(OfError::BadCommand)?;
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    let priority = r.u16()?;
    let buffer_id = r.u32()?;
    let out_port = r.u32()?;
    let out_group = r.u32()?;
    let flags = r.u16()?;
    r.skip(2)?;
    let match_ = decode_ofp_match(&mut r)?;
    if table_id == OFPTT_ALL && !command.is_delete() {
        return Err(OfError::BadTableId.into());
    }
    Ok(FlowMod {
        command,
        match_,
        priority,
        cookie,
        cookie_mask,
        table_id,
        idle_timeout,
        hard_timeout,
        flags,
        buffer_id,
        out_port,
        out_group,
        actions: actions::decode_instructions(r)?,
    })
}

/// 1.0 puts the match first and has no table or hard timeout.
fn decode_flow_removed(v: Version, mut r: Reader) -> Result<FlowRemoved, DecodeError> {
    let m10 = if v.is_of10() {
        Some(decode_match10(&mut r)?)
    } else {
        None
    };
    let cookie = r.u64()?;
    let priority = r.u16()?;
    let reason = r.u8()?;
    let table_id = r.u8()?;
    let duration_sec = r.u32()?;
    let duration_nsec = r.u32()?;
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    let packet_count = r.u64()?;
    let byte_count = r.u64()?;
    let (table_id, hard_timeout, match_) = match m10 {
        Some(m) => (0, 0, m),
        None => (table_id, hard_timeout, decode_ofp_match(&mut r)?),
    };
    Ok(FlowRemoved {
        cookie,
        priority,
        reason,
        table_id,
        duration_sec,
        duration_nsec,
        idle_timeout,
        hard_timeout,
        packet_count,
        byte_count,
        match_,
    })
}

pub fn encode(w: &mut Writer, v: Version, msg: &Message) -> Result<(), EncodeError> {
    match msg {
        Message::FlowMod(f) if v.is_of10() => {
            encode_match10(w, &f.match_)?;
            w.u64(f.cookie);
            w.u16(u16::from(f.command.wire()));
            w.u16(f.idle_timeout);
            w.u16(f.hard_timeout);
            w.u16(f.priority);
            w.u32(f.buffer_id);
            v.write_port(w, f.out_port)?;
            w.u16(f.flags & FLAGS10);
            actions::encode_actions10(w, &f.actions)?;
        }
        Message::FlowMod(f) => {
            w.u64(f.cookie);
            w.u64(f.cookie_mask);
            w.u8(f.table_id);
            w.u8(f.command.wire());
            w.u16(f.idle_timeout);
            w.u16(f.hard_timeout);
            w.u16(f.priority);
            w.u32(f.buffer_id);
            w.u32(f.out_port);
            w.u32(f.out_group);
            w.u16(f.flags);
            w.u16(0);
            encode_ofp_match(w, &f.match_);
            actions::encode_instructions(w, &f.actions)?;
        }
        Message::FlowRemoved(f) => {
            if v.is_of10() {
                encode_match10(w, &f.match_)?;
            }
            w.u64(f.cookie);
            w.u16(f.priority);
            w.u8(f.reason);
            w.u8(if v.is_of10() { 0 } else { f.table_id });
            w.u32(f.duration_sec);
            w.u32(f.duration_nsec);
            w.u16(f.idle_timeout);
            w.u16(if v.is_of10() { 0 } else { f.hard_timeout });
            w.u64(f.packet_count);
            w.u64(f.byte_count);
            if !v.is_of10() {
                encode_ofp_match(w, &f.match_);
            }
        }
        _ => return Err(v.unsupported(msg.name())),
    }
    Ok(())
}
