//! Flow table changes: FLOW_MOD and FLOW_REMOVED.

use super::{MsgType, Version, oxs};
use crate::actions;
use crate::consts::{OFPG_ANY, OFPTT_ALL};
use crate::error::{DecodeError, EncodeError, OfError};
use crate::match10::{decode_match10, encode_match10};
use crate::message::{FlowFlags, FlowMod, FlowModCommand, FlowModMsg, FlowRemoved, Message};
use crate::oxm::{decode_ofp_match, decode_ofp_match_tm, encode_ofp_match, encode_ofp_match_tm};
use crate::wire::{Reader, Writer};

/// Flow-mod flags (`OFPFF_*`, OpenFlow 1.3 numbering).
pub mod flags {
    pub const SEND_FLOW_REM: u16 = 1;
    pub const CHECK_OVERLAP: u16 = 2;
    pub const RESET_COUNTS: u16 = 4;
    pub const NO_PKT_COUNTS: u16 = 8;
    pub const NO_BYT_COUNTS: u16 = 16;
    /// OFPFF_EMERG (1.0 only, where it takes RESET_COUNTS's bit).
    pub const EMERG10: u16 = 4;
    /// The flags 1.0 has in common with 1.3 (send_flow_rem, check_overlap).
    pub const COMMON10: u16 = SEND_FLOW_REM | CHECK_OVERLAP;
}

/// Flow flag bits → flows's flag struct (unknown bits are ignored).
pub fn flags_from_wire(f: u16) -> FlowFlags {
    FlowFlags {
        send_flow_rem: f & flags::SEND_FLOW_REM != 0,
        check_overlap: f & flags::CHECK_OVERLAP != 0,
        reset_counts: f & flags::RESET_COUNTS != 0,
        no_packet_counts: f & flags::NO_PKT_COUNTS != 0,
        no_byte_counts: f & flags::NO_BYT_COUNTS != 0,
    }
}

/// flows's flag struct → flow flag bits.
pub fn flags_to_wire(f: &FlowFlags) -> u16 {
    [
        (f.send_flow_rem, flags::SEND_FLOW_REM),
        (f.check_overlap, flags::CHECK_OVERLAP),
        (f.reset_counts, flags::RESET_COUNTS),
        (f.no_packet_counts, flags::NO_PKT_COUNTS),
        (f.no_byte_counts, flags::NO_BYT_COUNTS),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0, |v, (_, bit)| v | bit)
}

/// `OFPFC_*`.
pub fn command_to_wire(c: FlowModCommand) -> u8 {
    match c {
        FlowModCommand::Add => 0,
        FlowModCommand::Modify => 1,
        FlowModCommand::ModifyStrict => 2,
        FlowModCommand::Delete => 3,
        FlowModCommand::DeleteStrict => 4,
    }
}

pub fn command_from_wire(v: u16) -> Option<FlowModCommand> {
    Some(match v {
        0 => FlowModCommand::Add,
        1 => FlowModCommand::Modify,
        2 => FlowModCommand::ModifyStrict,
        3 => FlowModCommand::Delete,
        4 => FlowModCommand::DeleteStrict,
        _ => return None,
    })
}

/// flows keeps priorities as u32; the wire has 16 bits.
fn priority_to_wire(p: u32) -> u16 {
    u16::try_from(p).unwrap_or(u16::MAX)
}

pub fn decode(ty: MsgType, v: Version, r: Reader) -> Result<Message, DecodeError> {
    match ty {
        MsgType::FlowMod if v.is_of10() => decode_flow_mod10(r).map(Message::FlowMod),
        MsgType::FlowMod => decode_flow_mod13(v, r).map(Message::FlowMod),
        MsgType::FlowRemoved => decode_flow_removed(v, r).map(Message::FlowRemoved),
        _ => Err(OfError::BadType.into()),
    }
}

/// 1.0: the match first, a 16-bit command, no table, cookie mask, out_group
/// or instructions; emergency flows are refused.
fn decode_flow_mod10(mut r: Reader) -> Result<FlowModMsg, DecodeError> {
    let m = decode_match10(&mut r)?;
    let cookie = r.u64()?;
    let command = command_from_wire(r.u16()?).ok_or(OfError::BadCommand)?;
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    let priority = u32::from(r.u16()?);
    let buffer_id = r.u32()?;
    let out_port = Version::Of10.read_port(&mut r)?;
    let wire_flags = r.u16()?;
    if wire_flags & flags::EMERG10 != 0 {
        return Err(OfError::BadTimeout.into());
    }
    Ok(FlowModMsg {
        flow_mod: FlowMod {
            command,
            table_id: if command.is_delete() { OFPTT_ALL } else { 0 },
            priority,
            m,
            cookie,
            cookie_mask: 0,
            idle_timeout,
            hard_timeout,
            flags: flags_from_wire(wire_flags & flags::COMMON10),
            out_port,
            out_group: OFPG_ANY,
            actions: actions::decode_actions10(r)?,
            tun_metadata: Vec::new(),
        },
        buffer_id,
        importance: 0,
    })
}

/// 1.3 on; 1.4 turned the last two bytes of padding into `importance`.
fn decode_flow_mod13(v: Version, mut r: Reader) -> Result<FlowModMsg, DecodeError> {
    let cookie = r.u64()?;
    let cookie_mask = r.u64()?;
    let table_id = r.u8()?;
    let command = command_from_wire(u16::from(r.u8()?)).ok_or(OfError::BadCommand)?;
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    let priority = u32::from(r.u16()?);
    let buffer_id = r.u32()?;
    let out_port = r.u32()?;
    let out_group = r.u32()?;
    let wire_flags = r.u16()?;
    let importance = if v.has_properties() {
        r.u16()?
    } else {
        r.skip(2)?;
        0
    };
    let (m, tun_metadata) = decode_ofp_match_tm(&mut r)?;
    // OFPTT_ALL names every table for modify and delete (as in Open
    // vSwitch, and what `ovs-ofctl mod-flows` sends without `table=`); an
    // add needs one table.
    if table_id == OFPTT_ALL && command == FlowModCommand::Add {
        return Err(OfError::BadTableId.into());
    }
    Ok(FlowModMsg {
        flow_mod: FlowMod {
            command,
            table_id,
            priority,
            m,
            cookie,
            cookie_mask,
            idle_timeout,
            hard_timeout,
            flags: flags_from_wire(wire_flags),
            out_port,
            out_group,
            actions: actions::decode_instructions(r)?,
            tun_metadata,
        },
        buffer_id,
        importance,
    })
}

/// 1.0 puts the match first and has no table or hard timeout; 1.5 moves
/// the table first and the counters into OXS statistics after the match.
fn decode_flow_removed(v: Version, mut r: Reader) -> Result<FlowRemoved, DecodeError> {
    if v.is_of15() {
        let table_id = r.u8()?;
        let reason = r.u8()?;
        let priority = r.u16()?;
        let idle_timeout = r.u16()?;
        let hard_timeout = r.u16()?;
        let cookie = r.u64()?;
        let match_ = decode_ofp_match(&mut r)?;
        let st = oxs::decode(&mut r)?;
        return Ok(FlowRemoved {
            cookie,
            priority,
            reason,
            table_id,
            duration_sec: st.duration_sec,
            duration_nsec: st.duration_nsec,
            idle_timeout,
            hard_timeout,
            packet_count: st.packet_count,
            byte_count: st.byte_count,
            match_,
        });
    }
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
        Message::FlowMod(FlowModMsg {
            flow_mod: f,
            buffer_id,
            ..
        }) if v.is_of10() => {
            encode_match10(w, &f.m)?;
            w.u64(f.cookie);
            w.u16(u16::from(command_to_wire(f.command)));
            w.u16(f.idle_timeout);
            w.u16(f.hard_timeout);
            w.u16(priority_to_wire(f.priority));
            w.u32(*buffer_id);
            v.write_port(w, f.out_port)?;
            w.u16(flags_to_wire(&f.flags) & flags::COMMON10);
            actions::encode_actions10(w, &f.actions)?;
        }
        Message::FlowMod(FlowModMsg {
            flow_mod: f,
            buffer_id,
            importance,
        }) => {
            w.u64(f.cookie);
            w.u64(f.cookie_mask);
            w.u8(f.table_id);
            w.u8(command_to_wire(f.command));
            w.u16(f.idle_timeout);
            w.u16(f.hard_timeout);
            w.u16(priority_to_wire(f.priority));
            w.u32(*buffer_id);
            w.u32(f.out_port);
            w.u32(f.out_group);
            w.u16(flags_to_wire(&f.flags));
            w.u16(if v.has_properties() { *importance } else { 0 });
            encode_ofp_match_tm(w, &f.m, &f.tun_metadata);
            actions::encode_instructions_with(
                w,
                &f.actions,
                actions::MeterPlacement::for_version(v.wire()),
            )?;
        }
        Message::FlowRemoved(f) if v.is_of15() => {
            w.u8(f.table_id);
            w.u8(f.reason);
            w.u16(f.priority);
            w.u16(f.idle_timeout);
            w.u16(f.hard_timeout);
            w.u64(f.cookie);
            encode_ofp_match(w, &f.match_);
            oxs::encode(
                w,
                &oxs::Stats {
                    duration_sec: f.duration_sec,
                    duration_nsec: f.duration_nsec,
                    packet_count: f.packet_count,
                    byte_count: f.byte_count,
                    flow_count: None,
                },
            );
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
