//! Groups: GROUP_MOD, its buckets, and the group-desc and group-stats
//! entries of multipart replies. OpenFlow 1.0 has no groups; the type table
//! in [`super`] keeps these messages away from it.

use super::{MsgType, Version, entries};
use crate::actions;
use crate::error::{DecodeError, EncodeError, OfError};
use crate::message::{Bucket, Group, GroupMod, GroupModCommand, GroupStats, GroupType, Message};
use crate::wire::{Reader, Writer};

impl GroupModCommand {
    pub fn wire(self) -> u16 {
        match self {
            GroupModCommand::Add => 0,
            GroupModCommand::Modify => 1,
            GroupModCommand::Delete => 2,
        }
    }

    pub fn from_wire(v: u16) -> Option<GroupModCommand> {
        Some(match v {
            0 => GroupModCommand::Add,
            1 => GroupModCommand::Modify,
            2 => GroupModCommand::Delete,
            _ => return None,
        })
    }
}

/// `OFPGT_*`.
pub fn type_to_wire(t: GroupType) -> u8 {
    match t {
        GroupType::All => 0,
        GroupType::Select => 1,
        GroupType::Indirect => 2,
        GroupType::FastFailover => 3,
    }
}

pub fn type_from_wire(v: u8) -> Option<GroupType> {
    Some(match v {
        0 => GroupType::All,
        1 => GroupType::Select,
        2 => GroupType::Indirect,
        3 => GroupType::FastFailover,
        _ => return None,
    })
}

/// Size of an ofp_bucket before its actions.
const BUCKET_HEADER_LEN: usize = 16;

pub fn decode(ty: MsgType, _v: Version, mut r: Reader) -> Result<Message, DecodeError> {
    if ty != MsgType::GroupMod {
        return Err(OfError::BadType.into());
    }
    let command = GroupModCommand::from_wire(r.u16()?).ok_or(OfError::BadGroupCommand)?;
    let kind = type_from_wire(r.u8()?).ok_or(OfError::BadGroupType)?;
    r.skip(1)?;
    let id = r.u32()?;
    Ok(Message::GroupMod(GroupMod {
        command,
        group: Group {
            id,
            kind,
            buckets: decode_buckets(r)?,
        },
    }))
}

pub fn encode(w: &mut Writer, v: Version, msg: &Message) -> Result<(), EncodeError> {
    let Message::GroupMod(g) = msg else {
        return Err(v.unsupported(msg.name()));
    };
    w.u16(g.command.wire());
    w.u8(type_to_wire(g.group.kind));
    w.u8(0);
    w.u32(g.group.id);
    encode_buckets(w, &g.group.buckets)
}

/// Buckets up to the end of `r`; any malformed one is OFPGMFC_BAD_BUCKET.
fn decode_buckets(r: Reader) -> Result<Vec<Bucket>, DecodeError> {
    let mut r = r.reporting(OfError::BadBucket);
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = usize::from(r.peek_u16(0)?);
        if len < BUCKET_HEADER_LEN || !len.is_multiple_of(8) {
            return Err(OfError::BadBucket.into());
        }
        let mut b = r.sub(len)?;
        b.skip(2)?;
        let weight = b.u16()?;
        let watch_port = b.u32()?;
        let watch_group = b.u32()?;
        b.skip(4)?;
        out.push(Bucket {
            weight,
            watch_port,
            watch_group,
            actions: actions::decode_actions13(b)?,
        });
    }
    Ok(out)
}

fn encode_buckets(w: &mut Writer, buckets: &[Bucket]) -> Result<(), EncodeError> {
    for b in buckets {
        let start = w.len();
        let at = w.len_placeholder();
        w.u16(b.weight);
        w.u32(b.watch_port);
        w.u32(b.watch_group);
        w.u32(0);
        actions::encode_actions13(w, &b.actions)?;
        w.patch_len_since(at, start);
    }
    Ok(())
}

/// The entries of an OFPMP_GROUP_DESC reply.
pub fn decode_group_descs(r: Reader) -> Result<Vec<Group>, DecodeError> {
    let mut out = Vec::new();
    for mut b in entries(r, 8)? {
        b.skip(2)?;
        let kind = type_from_wire(b.u8()?).ok_or(OfError::BadGroupType)?;
        b.skip(1)?;
        let id = b.u32()?;
        out.push(Group {
            id,
            kind,
            buckets: decode_buckets(b)?,
        });
    }
    Ok(out)
}

pub fn encode_group_desc(w: &mut Writer, g: &Group) -> Result<(), EncodeError> {
    let start = w.len();
    let at = w.len_placeholder();
    w.u8(type_to_wire(g.kind));
    w.u8(0);
    w.u32(g.id);
    encode_buckets(w, &g.buckets)?;
    w.patch_len_since(at, start);
    Ok(())
}

/// The entries of an OFPMP_GROUP reply.
pub fn decode_group_stats(r: Reader) -> Result<Vec<GroupStats>, DecodeError> {
    let mut out = Vec::new();
    for mut b in entries(r, 40)? {
        b.skip(4)?;
        let group_id = b.u32()?;
        let ref_count = b.u32()?;
        b.skip(4)?;
        let packet_count = b.u64()?;
        let byte_count = b.u64()?;
        let duration_sec = b.u32()?;
        let duration_nsec = b.u32()?;
        let mut bucket_stats = Vec::new();
        while !b.is_empty() {
            bucket_stats.push((b.u64()?, b.u64()?));
        }
        out.push(GroupStats {
            group_id,
            ref_count,
            packet_count,
            byte_count,
            duration_sec,
            duration_nsec,
            bucket_stats,
        });
    }
    Ok(out)
}

pub fn encode_group_stats(w: &mut Writer, g: &GroupStats) {
    let start = w.len();
    let at = w.len_placeholder();
    w.u16(0);
    w.u32(g.group_id);
    w.u32(g.ref_count);
    w.u32(0);
    w.u64(g.packet_count);
    w.u64(g.byte_count);
    w.u32(g.duration_sec);
    w.u32(g.duration_nsec);
    for (p, b) in &g.bucket_stats {
        w.u64(*p);
        w.u64(*b);
    }
    w.patch_len_since(at, start);
}
