//! Groups: GROUP_MOD, its buckets, and the group-desc and group-stats
//! entries of multipart replies. OpenFlow 1.0 has no groups; the type table
//! in [`super`] keeps these messages away from it.

use super::{MsgType, Version, entries};
use crate::actions;
use crate::error::{DecodeError, EncodeError, OfError};
use crate::message::{Bucket, Group, GroupMod, GroupModCommand, GroupStats, GroupType, Message};
use crate::oxm;
use crate::wire::{Reader, Writer};
use flows::group::{SelectField, Selection, SelectionMethod};

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
/// Size of a 1.5 ofp_bucket before its actions.
const BUCKET15_HEADER_LEN: usize = 8;
/// 1.5 `command_bucket_id` meaning "every bucket" (what add, modify and
/// delete carry).
pub const OFPG15_BUCKET_ALL: u32 = 0xffff_ffff;

/// 1.5 bucket properties (`OFPGBPT15_*`).
mod gbpt {
    pub const WEIGHT: u16 = 0;
    pub const WATCH_PORT: u16 = 1;
    pub const WATCH_GROUP: u16 = 2;
}

/// Group properties: only experimenter ones exist (Open vSwitch's
/// selection method, vendor NTR 0x0000154d, type 1).
const OFPGPT15_EXPERIMENTER: u16 = 0xffff;
/// The Netronome experimenter id of the selection-method property.
const NTR_VENDOR_ID: u32 = 0x0000_154d;
/// `NTRT_SELECTION_METHOD`.
const NTRT_SELECTION_METHOD: u32 = 1;
/// Bytes of the method name, NUL-padded.
const SELECTION_METHOD_LEN: usize = 16;

pub fn decode(ty: MsgType, v: Version, mut r: Reader) -> Result<Message, DecodeError> {
    if ty != MsgType::GroupMod {
        return Err(OfError::BadType.into());
    }
    let command = GroupModCommand::from_wire(r.u16()?).ok_or(OfError::BadGroupCommand)?;
    let kind = type_from_wire(r.u8()?).ok_or(OfError::BadGroupType)?;
    r.skip(1)?;
    let id = r.u32()?;
    let (buckets, selection) = if v.is_of15() {
        let blen = usize::from(r.u16()?);
        r.skip(2)?;
        // Inserting and removing single buckets are 1.5 commands this
        // switch refuses (see `GroupModCommand::from_wire`); add, modify
        // and delete address every bucket, whatever this says.
        let _command_bucket_id = r.u32()?;
        let b = r.sub(blen)?;
        let buckets = decode_buckets15(b)?;
        (buckets, decode_group_props(r, kind)?)
    } else {
        (decode_buckets(r)?, Selection::default())
    };
    Ok(Message::GroupMod(GroupMod {
        command,
        group: Group {
            id,
            kind,
            buckets,
            selection,
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
    if v.is_of15() {
        let at = w.len_placeholder();
        w.u16(0);
        w.u32(OFPG15_BUCKET_ALL);
        let start = w.len();
        encode_buckets15(w, g.group.kind, &g.group.buckets)?;
        w.patch_len_since(at, start);
        encode_group_props(w, &g.group.selection);
        Ok(())
    } else {
        encode_buckets(w, &g.group.buckets)
    }
}

/// 1.5 group properties: Open vSwitch's selection method is the only one.
/// An unknown method, or one on a group that is not `select`, is
/// OFPBPC_BAD_VALUE, as Open vSwitch answers.
fn decode_group_props(r: Reader, kind: GroupType) -> Result<Selection, DecodeError> {
    let mut sel = Selection::default();
    for (ty, mut p) in super::read_props(r)? {
        if ty != OFPGPT15_EXPERIMENTER {
            return Err(OfError::BadPropertyType.into());
        }
        if p.u32()? != NTR_VENDOR_ID || p.u32()? != NTRT_SELECTION_METHOD {
            return Err(OfError::BadPropertyType.into());
        }
        if kind != GroupType::Select {
            return Err(OfError::BadPropertyValue.into());
        }
        p.skip(4)?;
        let name = p.bytes(SELECTION_METHOD_LEN)?;
        let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
        let name = std::str::from_utf8(&name[..end]).map_err(|_| OfError::BadPropertyValue)?;
        sel.method = SelectionMethod::from_name(name).ok_or(OfError::BadPropertyValue)?;
        sel.param = p.u64()?;
        // Each field is an OXM header whose value is the mask of the bits
        // that count (all ones: the whole field).
        while !p.is_empty() {
            let (wire, mask, _) = oxm::read_tlv(&mut p)?;
            sel.fields.push(SelectField { wire, mask });
        }
        if !sel.fields.is_empty() && sel.method != SelectionMethod::Hash {
            return Err(OfError::BadPropertyValue.into());
        }
    }
    sel.normalize();
    Ok(sel)
}

/// Writes the selection-method property unless the method is the default.
fn encode_group_props(w: &mut Writer, sel: &Selection) {
    if sel.method == SelectionMethod::Default {
        return;
    }
    super::put_prop(w, OFPGPT15_EXPERIMENTER, |w| {
        w.u32(NTR_VENDOR_ID);
        w.u32(NTRT_SELECTION_METHOD);
        w.zeros(4);
        let name = sel.method.name().as_bytes();
        w.bytes(name);
        w.zeros(SELECTION_METHOD_LEN - name.len());
        w.u64(sel.param);
        for f in &sel.fields {
            oxm::write_tlv(
                w,
                f.wire,
                oxm::oxm_header(f.wire),
                f.mask,
                oxm::full_mask(f.wire, 0),
            );
        }
    });
}

/// 1.5 buckets: length, action length, bucket id, actions, then weight
/// and watch properties. Bucket ids are not kept: buckets are numbered by
/// position when written back.
fn decode_buckets15(r: Reader) -> Result<Vec<Bucket>, DecodeError> {
    let mut r = r.reporting(OfError::BadBucket);
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = usize::from(r.peek_u16(0)?);
        if len < BUCKET15_HEADER_LEN {
            return Err(OfError::BadBucket.into());
        }
        let mut b = r.sub(len)?;
        b.skip(2)?;
        let alen = usize::from(b.u16()?);
        let _bucket_id = b.u32()?;
        let acts = b.sub(alen)?;
        let mut bucket = Bucket::new(actions::decode_actions13(acts)?);
        for (ty, mut p) in super::read_props(b)? {
            match ty {
                gbpt::WEIGHT => bucket.weight = p.u16()?,
                gbpt::WATCH_PORT => bucket.watch_port = p.u32()?,
                gbpt::WATCH_GROUP => bucket.watch_group = p.u32()?,
                _ => return Err(OfError::BadPropertyType.into()),
            }
        }
        out.push(bucket);
    }
    Ok(out)
}

/// Weights are written for select groups only, as Open vSwitch does.
fn encode_buckets15(
    w: &mut Writer,
    kind: GroupType,
    buckets: &[Bucket],
) -> Result<(), EncodeError> {
    for (i, b) in buckets.iter().enumerate() {
        let start = w.len();
        let at = w.len_placeholder();
        let alen_at = w.len_placeholder();
        w.u32(u32::try_from(i).unwrap_or(u32::MAX));
        let astart = w.len();
        actions::encode_actions15(w, &b.actions)?;
        w.patch_len_since(alen_at, astart);
        if kind == GroupType::Select || b.weight != Bucket::new(Vec::new()).weight {
            super::put_prop(w, gbpt::WEIGHT, |w| {
                w.u16(b.weight);
                w.u16(0);
            });
        }
        if b.watch_port != Bucket::new(Vec::new()).watch_port {
            super::put_prop(w, gbpt::WATCH_PORT, |w| w.u32(b.watch_port));
        }
        if b.watch_group != Bucket::new(Vec::new()).watch_group {
            super::put_prop(w, gbpt::WATCH_GROUP, |w| w.u32(b.watch_group));
        }
        w.patch_len_since(at, start);
    }
    Ok(())
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

/// The entries of an OFPMP_GROUP_DESC reply; 1.5's have a bucket-list
/// length and properties after the buckets.
pub fn decode_group_descs(v: Version, r: Reader) -> Result<Vec<Group>, DecodeError> {
    let mut out = Vec::new();
    for mut b in entries(r, if v.is_of15() { 16 } else { 8 })? {
        b.skip(2)?;
        let kind = type_from_wire(b.u8()?).ok_or(OfError::BadGroupType)?;
        b.skip(1)?;
        let id = b.u32()?;
        let (buckets, selection) = if v.is_of15() {
            let blen = usize::from(b.u16()?);
            b.skip(6)?;
            let list = b.sub(blen)?;
            let buckets = decode_buckets15(list)?;
            (buckets, decode_group_props(b, kind)?)
        } else {
            (decode_buckets(b)?, Selection::default())
        };
        out.push(Group {
            id,
            kind,
            buckets,
            selection,
        });
    }
    Ok(out)
}

pub fn encode_group_desc(w: &mut Writer, v: Version, g: &Group) -> Result<(), EncodeError> {
    let start = w.len();
    let at = w.len_placeholder();
    w.u8(type_to_wire(g.kind));
    w.u8(0);
    w.u32(g.id);
    if v.is_of15() {
        let blen_at = w.len_placeholder();
        w.zeros(6);
        let bstart = w.len();
        encode_buckets15(w, g.kind, &g.buckets)?;
        w.patch_len_since(blen_at, bstart);
        encode_group_props(w, &g.selection);
    } else {
        encode_buckets(w, &g.buckets)?;
    }
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
