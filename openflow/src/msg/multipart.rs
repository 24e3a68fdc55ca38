//! Multipart (1.3 on) / stats (1.0) requests and replies: the framing, the
//! request filters, and the reply bodies that belong to no other family
//! (switch description, flow, aggregate and table stats, table features).
//! Port and group entries live with their families.

use super::{MsgType, Version, entries, group, meter, port};
use crate::actions;
use crate::consts::{MP_MORE, MP_SPLIT_BYTES, OFPG_ANY, mp};
use crate::error::{DecodeError, EncodeError, OfError};
use crate::match10::{decode_match10, encode_match10};
use crate::message::*;
use crate::oxm::{decode_ofp_match, decode_ofp_match_tm, encode_ofp_match, encode_ofp_match_tm};
use crate::wire::{Reader, Writer};

/// Length of the multipart header after the common header: type and flags,
/// plus 4 bytes of padding from 1.3 on.
fn header_pad(v: Version) -> usize {
    if v.is_of10() { 0 } else { 4 }
}

pub fn decode(ty: MsgType, v: Version, mut r: Reader) -> Result<Message, DecodeError> {
    let mtype = r.u16()?;
    let flags = r.u16()?;
    r.skip(header_pad(v))?;
    Ok(match ty {
        MsgType::MultipartRequest => Message::MultipartRequest(MultipartRequest {
            flags,
            body: decode_request(v, mtype, r)?,
        }),
        MsgType::MultipartReply => Message::MultipartReply(MultipartReply {
            flags,
            body: decode_reply(v, mtype, r)?,
        }),
        _ => return Err(OfError::BadType.into()),
    })
}

pub fn encode(w: &mut Writer, v: Version, msg: &Message) -> Result<(), EncodeError> {
    match msg {
        Message::MultipartRequest(req) => encode_request(w, v, req),
        Message::MultipartReply(rep) => {
            let (mtype, parts) = reply_parts(v, &rep.body)?;
            w.u16(mtype);
            w.u16(rep.flags);
            w.zeros(header_pad(v));
            for p in parts {
                w.bytes(&p);
            }
            Ok(())
        }
        _ => Err(v.unsupported(msg.name())),
    }
}

// ---------------------------------------------------------------- requests

fn decode_request(
    v: Version,
    mtype: u16,
    mut r: Reader,
) -> Result<MultipartRequestBody, DecodeError> {
    Ok(match mtype {
        mp::DESC => MultipartRequestBody::Desc,
        mp::FLOW => MultipartRequestBody::Flow(decode_flow_stats_request(v, r)?),
        mp::AGGREGATE => MultipartRequestBody::Aggregate(decode_flow_stats_request(v, r)?),
        mp::TABLE => MultipartRequestBody::Table,
        mp::PORT_STATS => MultipartRequestBody::PortStats {
            port_no: v.read_port(&mut r)?,
        },
        // In 1.0 this is Open vSwitch's extension (what `ovs-ofctl -O
        // OpenFlow10 dump-ports-desc` sends); the optional port filter is
        // answered with every port, as for 1.3's PORT_DESC.
        mp::PORT_DESC => MultipartRequestBody::PortDesc,
        mp::GROUP if !v.is_of10() => MultipartRequestBody::Group { group_id: r.u32()? },
        mp::GROUP_DESC if !v.is_of10() => MultipartRequestBody::GroupDesc,
        mp::TABLE_FEATURES if !v.is_of10() => {
            if !r.is_empty() {
                // Setting table features is not supported.
                return Err(OfError::BadRequestEperm.into());
            }
            MultipartRequestBody::TableFeatures
        }
        mp::METER | mp::METER_CONFIG | mp::METER_FEATURES if !v.is_of10() => {
            meter::decode_request(mtype, r)?
        }
        mp::EXPERIMENTER => return Err(OfError::BadExperimenter.into()),
        _ => return Err(OfError::BadMultipart.into()),
    })
}

/// 1.0: match, table and a 16-bit out_port; 1.3 adds out_group and a
/// cookie filter, and puts the OXM match last.
fn decode_flow_stats_request(v: Version, mut r: Reader) -> Result<FlowStatsRequest, DecodeError> {
    if v.is_of10() {
        let match_ = decode_match10(&mut r)?;
        let table_id = r.u8()?;
        r.skip(1)?;
        let out_port = v.read_port(&mut r)?;
        return Ok(FlowStatsRequest {
            table_id,
            out_port,
            out_group: OFPG_ANY,
            cookie: 0,
            cookie_mask: 0,
            match_,
        });
    }
    let table_id = r.u8()?;
    r.skip(3)?;
    let out_port = r.u32()?;
    let out_group = r.u32()?;
    r.skip(4)?;
    let cookie = r.u64()?;
    let cookie_mask = r.u64()?;
    let match_ = decode_ofp_match(&mut r)?;
    r.done()?;
    Ok(FlowStatsRequest {
        table_id,
        out_port,
        out_group,
        cookie,
        cookie_mask,
        match_,
    })
}

fn encode_flow_stats_request(
    w: &mut Writer,
    v: Version,
    r: &FlowStatsRequest,
) -> Result<(), EncodeError> {
    if v.is_of10() {
        encode_match10(w, &r.match_)?;
        w.u8(r.table_id);
        w.u8(0);
        v.write_port(w, r.out_port)?;
    } else {
        w.u8(r.table_id);
        w.zeros(3);
        w.u32(r.out_port);
        w.u32(r.out_group);
        w.u32(0);
        w.u64(r.cookie);
        w.u64(r.cookie_mask);
        encode_ofp_match(w, &r.match_);
    }
    Ok(())
}

fn encode_request(w: &mut Writer, v: Version, req: &MultipartRequest) -> Result<(), EncodeError> {
    let of13 = !v.is_of10();
    let mtype = match &req.body {
        MultipartRequestBody::Desc => mp::DESC,
        MultipartRequestBody::Flow(_) => mp::FLOW,
        MultipartRequestBody::Aggregate(_) => mp::AGGREGATE,
        MultipartRequestBody::Table => mp::TABLE,
        MultipartRequestBody::PortStats { .. } => mp::PORT_STATS,
        MultipartRequestBody::PortDesc => mp::PORT_DESC,
        MultipartRequestBody::Group { .. } if of13 => mp::GROUP,
        MultipartRequestBody::GroupDesc if of13 => mp::GROUP_DESC,
        MultipartRequestBody::TableFeatures if of13 => mp::TABLE_FEATURES,
        MultipartRequestBody::Meter { .. } if of13 => mp::METER,
        MultipartRequestBody::MeterConfig { .. } if of13 => mp::METER_CONFIG,
        MultipartRequestBody::MeterFeatures if of13 => mp::METER_FEATURES,
        _ => return Err(v.unsupported("this multipart request")),
    };
    w.u16(mtype);
    w.u16(req.flags);
    w.zeros(header_pad(v));
    match &req.body {
        MultipartRequestBody::Flow(r) | MultipartRequestBody::Aggregate(r) => {
            encode_flow_stats_request(w, v, r)?;
        }
        MultipartRequestBody::PortStats { port_no } => {
            v.write_port(w, *port_no)?;
            w.zeros(if v.is_of10() { 6 } else { 4 });
        }
        MultipartRequestBody::Group { group_id } => {
            w.u32(*group_id);
            w.u32(0);
        }
        MultipartRequestBody::Meter { meter_id }
        | MultipartRequestBody::MeterConfig { meter_id } => {
            w.u32(*meter_id);
            w.u32(0);
        }
        _ => {}
    }
    Ok(())
}

// ----------------------------------------------------------------- replies

fn decode_reply(v: Version, mtype: u16, mut r: Reader) -> Result<MultipartReplyBody, DecodeError> {
    let of13 = !v.is_of10();
    Ok(match mtype {
        mp::DESC => MultipartReplyBody::Desc(decode_desc(&mut r)?),
        mp::FLOW => MultipartReplyBody::Flow(decode_flow_stats(v, r)?),
        mp::AGGREGATE if v.is_of15() => {
            let st = super::oxs::decode(&mut r)?;
            MultipartReplyBody::Aggregate(AggregateStats {
                packet_count: st.packet_count,
                byte_count: st.byte_count,
                flow_count: st.flow_count.unwrap_or(0),
            })
        }
        mp::AGGREGATE => MultipartReplyBody::Aggregate(AggregateStats {
            packet_count: r.u64()?,
            byte_count: r.u64()?,
            flow_count: r.u32()?,
        }),
        mp::TABLE => MultipartReplyBody::Table(decode_table_stats(v, r)?),
        mp::PORT_STATS => MultipartReplyBody::PortStats(port::decode_port_stats(v, r)?),
        mp::PORT_DESC => {
            let mut out = Vec::new();
            while !r.is_empty() {
                out.push(port::decode_port_desc(v, &mut r)?);
            }
            MultipartReplyBody::PortDesc(out)
        }
        mp::GROUP if of13 => MultipartReplyBody::Group(group::decode_group_stats(r)?),
        mp::GROUP_DESC if of13 => MultipartReplyBody::GroupDesc(group::decode_group_descs(v, r)?),
        mp::TABLE_FEATURES if of13 => MultipartReplyBody::TableFeatures(decode_table_features(r)?),
        mp::METER | mp::METER_CONFIG | mp::METER_FEATURES if of13 => meter::decode_reply(mtype, r)?,
        _ => return Err(OfError::BadMultipart.into()),
    })
}

const DESC_STR_LEN: usize = 256;
const SERIAL_NUM_LEN: usize = 32;

fn decode_desc(r: &mut Reader) -> Result<SwitchDesc, DecodeError> {
    Ok(SwitchDesc {
        mfr_desc: r.string(DESC_STR_LEN)?,
        hw_desc: r.string(DESC_STR_LEN)?,
        sw_desc: r.string(DESC_STR_LEN)?,
        serial_num: r.string(SERIAL_NUM_LEN)?,
        dp_desc: r.string(DESC_STR_LEN)?,
    })
}

fn encode_desc(w: &mut Writer, d: &SwitchDesc) {
    w.string(&d.mfr_desc, DESC_STR_LEN);
    w.string(&d.hw_desc, DESC_STR_LEN);
    w.string(&d.sw_desc, DESC_STR_LEN);
    w.string(&d.serial_num, SERIAL_NUM_LEN);
    w.string(&d.dp_desc, DESC_STR_LEN);
}

/// 1.5's flow description: table, priority, timeouts, flags, importance
/// and cookie, then the match, OXS statistics and instructions.
fn decode_flow_desc15(r: Reader) -> Result<Vec<FlowStats>, DecodeError> {
    let mut out = Vec::new();
    for mut b in entries(r, 32)? {
        b.skip(4)?;
        let table_id = b.u8()?;
        b.skip(1)?;
        let priority = b.u16()?;
        let idle_timeout = b.u16()?;
        let hard_timeout = b.u16()?;
        let flags = b.u16()?;
        let _importance = b.u16()?;
        let cookie = b.u64()?;
        let (match_, tun_metadata) = decode_ofp_match_tm(&mut b)?;
        let st = super::oxs::decode(&mut b)?;
        out.push(FlowStats {
            table_id,
            duration_sec: st.duration_sec,
            duration_nsec: st.duration_nsec,
            priority,
            idle_timeout,
            hard_timeout,
            flags,
            cookie,
            packet_count: st.packet_count,
            byte_count: st.byte_count,
            match_,
            tun_metadata,
            actions: actions::decode_instructions(b)?,
        });
    }
    Ok(out)
}

fn encode_flow_desc15(w: &mut Writer, f: &FlowStats) -> Result<(), EncodeError> {
    let start = w.len();
    let at = w.len_placeholder();
    w.u16(0);
    w.u8(f.table_id);
    w.u8(0);
    w.u16(f.priority);
    w.u16(f.idle_timeout);
    w.u16(f.hard_timeout);
    w.u16(f.flags);
    w.u16(0);
    w.u64(f.cookie);
    encode_ofp_match_tm(w, &f.match_, &f.tun_metadata);
    super::oxs::encode(
        w,
        &super::oxs::Stats {
            duration_sec: f.duration_sec,
            duration_nsec: f.duration_nsec,
            packet_count: f.packet_count,
            byte_count: f.byte_count,
            flow_count: None,
        },
    );
    actions::encode_instructions_with(w, &f.actions, actions::MeterPlacement::Action)?;
    w.patch_len_since(at, start);
    Ok(())
}

/// Flow-stats entries. 1.0 puts its match after the table id, has no
/// flags and carries plain actions; 1.3 ends with an OXM match and
/// instructions (1.4 turns padding into the importance, not kept); 1.5
/// has its own layout ([`decode_flow_desc15`]).
fn decode_flow_stats(v: Version, r: Reader) -> Result<Vec<FlowStats>, DecodeError> {
    if v.is_of15() {
        return decode_flow_desc15(r);
    }
    let mut out = Vec::new();
    for mut b in entries(r, if v.is_of10() { 88 } else { 56 })? {
        b.skip(2)?;
        let table_id = b.u8()?;
        b.skip(1)?;
        let m10 = if v.is_of10() {
            Some(decode_match10(&mut b)?)
        } else {
            None
        };
        let duration_sec = b.u32()?;
        let duration_nsec = b.u32()?;
        let priority = b.u16()?;
        let idle_timeout = b.u16()?;
        let hard_timeout = b.u16()?;
        let flags = if v.is_of10() {
            b.skip(6)?;
            0
        } else {
            let f = b.u16()?;
            b.skip(4)?;
            f
        };
        let cookie = b.u64()?;
        let packet_count = b.u64()?;
        let byte_count = b.u64()?;
        let (match_, tun_metadata, acts) = match m10 {
            Some(m) => (m, Vec::new(), actions::decode_actions10(b)?),
            None => {
                let (m, tm) = decode_ofp_match_tm(&mut b)?;
                (m, tm, actions::decode_instructions(b)?)
            }
        };
        out.push(FlowStats {
            table_id,
            duration_sec,
            duration_nsec,
            priority,
            idle_timeout,
            hard_timeout,
            flags,
            cookie,
            packet_count,
            byte_count,
            match_,
            tun_metadata,
            actions: acts,
        });
    }
    Ok(out)
}

fn encode_flow_stats(w: &mut Writer, v: Version, f: &FlowStats) -> Result<(), EncodeError> {
    if v.is_of15() {
        return encode_flow_desc15(w, f);
    }
    let start = w.len();
    let at = w.len_placeholder();
    w.u8(f.table_id);
    w.u8(0);
    if v.is_of10() {
        encode_match10(w, &f.match_)?;
    }
    w.u32(f.duration_sec);
    w.u32(f.duration_nsec);
    w.u16(f.priority);
    w.u16(f.idle_timeout);
    w.u16(f.hard_timeout);
    if v.is_of10() {
        w.zeros(6);
    } else {
        w.u16(f.flags);
        w.u32(0);
    }
    w.u64(f.cookie);
    w.u64(f.packet_count);
    w.u64(f.byte_count);
    if v.is_of10() {
        actions::encode_actions10(w, &f.actions)?;
    } else {
        encode_ofp_match_tm(w, &f.match_, &f.tun_metadata);
        actions::encode_instructions_with(
            w,
            &f.actions,
            actions::MeterPlacement::for_version(v.wire()),
        )?;
    }
    w.patch_len_since(at, start);
    Ok(())
}

/// Table-stats entries; 1.0 also names the table and its size and
/// wildcards.
fn decode_table_stats(v: Version, mut r: Reader) -> Result<Vec<TableStats>, DecodeError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let mut b = r.sub(if v.is_of10() { 64 } else { 24 })?;
        let table_id = b.u8()?;
        b.skip(3)?;
        let (name, max_entries) = if v.is_of10() {
            let n = b.string(32)?;
            b.skip(4)?;
            (n, b.u32()?)
        } else {
            (String::new(), 0)
        };
        out.push(TableStats {
            table_id,
            name,
            max_entries,
            active_count: b.u32()?,
            lookup_count: b.u64()?,
            matched_count: b.u64()?,
        });
    }
    Ok(out)
}

fn encode_table_stats(w: &mut Writer, v: Version, t: &TableStats) {
    w.u8(t.table_id);
    w.zeros(3);
    if v.is_of10() {
        w.string(&t.name, 32);
        w.u32(crate::match10::W_ALL);
        w.u32(t.max_entries);
    }
    w.u32(t.active_count);
    w.u64(t.lookup_count);
    w.u64(t.matched_count);
}

fn decode_table_features(r: Reader) -> Result<Vec<TableFeatures>, DecodeError> {
    let mut out = Vec::new();
    for mut b in entries(r, 64)? {
        b.skip(2)?;
        let table_id = b.u8()?;
        b.skip(5)?;
        out.push(TableFeatures {
            table_id,
            name: b.string(32)?,
            metadata_match: b.u64()?,
            metadata_write: b.u64()?,
            config: b.u32()?,
            max_entries: b.u32()?,
        });
    }
    Ok(out)
}

fn encode_table_features(w: &mut Writer, t: &TableFeatures) {
    let start = w.len();
    let at = w.len_placeholder();
    w.u8(t.table_id);
    w.zeros(5);
    w.string(&t.name, 32);
    w.u64(t.metadata_match);
    w.u64(t.metadata_write);
    w.u32(t.config);
    w.u32(t.max_entries);
    // The eight properties OpenFlow requires, each empty: instructions,
    // next_tables, write/apply actions, match, wildcards, write/apply
    // setfield.
    for prop in [0u16, 2, 4, 6, 8, 10, 12, 14] {
        w.u16(prop);
        w.u16(4);
        w.u32(0);
    }
    w.patch_len_since(at, start);
}

/// The multipart type and the encoded entries of a reply body, one buffer
/// per entry so that long replies can be split between entries.
fn reply_parts(v: Version, body: &MultipartReplyBody) -> Result<(u16, Vec<Vec<u8>>), EncodeError> {
    fn each<T>(
        list: &[T],
        mut f: impl FnMut(&mut Writer, &T) -> Result<(), EncodeError>,
    ) -> Result<Vec<Vec<u8>>, EncodeError> {
        list.iter()
            .map(|x| {
                let mut w = Writer::new();
                f(&mut w, x)?;
                Ok(w.buf)
            })
            .collect()
    }
    let of13 = !v.is_of10();
    Ok(match body {
        MultipartReplyBody::Desc(d) => (
            mp::DESC,
            each(std::slice::from_ref(d), |w, d| {
                encode_desc(w, d);
                Ok(())
            })?,
        ),
        MultipartReplyBody::Flow(list) => {
            (mp::FLOW, each(list, |w, f| encode_flow_stats(w, v, f))?)
        }
        MultipartReplyBody::Aggregate(a) => (
            mp::AGGREGATE,
            each(std::slice::from_ref(a), |w, a| {
                if v.is_of15() {
                    super::oxs::encode(
                        w,
                        &super::oxs::Stats {
                            packet_count: a.packet_count,
                            byte_count: a.byte_count,
                            flow_count: Some(a.flow_count),
                            ..Default::default()
                        },
                    );
                } else {
                    w.u64(a.packet_count);
                    w.u64(a.byte_count);
                    w.u32(a.flow_count);
                    w.u32(0);
                }
                Ok(())
            })?,
        ),
        MultipartReplyBody::Table(list) => (
            mp::TABLE,
            each(list, |w, t| {
                encode_table_stats(w, v, t);
                Ok(())
            })?,
        ),
        MultipartReplyBody::PortStats(list) => (
            mp::PORT_STATS,
            each(list, |w, p| port::encode_port_stats(w, v, p))?,
        ),
        MultipartReplyBody::PortDesc(list) => (
            mp::PORT_DESC,
            each(list, |w, p| port::encode_port_desc(w, v, p))?,
        ),
        MultipartReplyBody::Group(list) if of13 => (
            mp::GROUP,
            each(list, |w, g| {
                group::encode_group_stats(w, g);
                Ok(())
            })?,
        ),
        MultipartReplyBody::GroupDesc(list) if of13 => (
            mp::GROUP_DESC,
            each(list, |w, g| group::encode_group_desc(w, v, g))?,
        ),
        MultipartReplyBody::TableFeatures(list) if of13 => (
            mp::TABLE_FEATURES,
            each(list, |w, t| {
                encode_table_features(w, t);
                Ok(())
            })?,
        ),
        MultipartReplyBody::Meter(list) if of13 => (
            mp::METER,
            each(list, |w, m| {
                meter::encode_meter_stats(w, m);
                Ok(())
            })?,
        ),
        MultipartReplyBody::MeterConfig(list) if of13 => (
            mp::METER_CONFIG,
            each(list, |w, m| {
                meter::encode_meter_config(w, m);
                Ok(())
            })?,
        ),
        MultipartReplyBody::MeterFeatures(f) if of13 => (
            mp::METER_FEATURES,
            each(std::slice::from_ref(f), |w, f| {
                meter::encode_meter_features(w, f);
                Ok(())
            })?,
        ),
        _ => return Err(v.unsupported("this multipart reply")),
    })
}

/// Encodes a multipart reply, split into as many messages as needed (all
/// but the last flagged `OFPMPF_REPLY_MORE`).
pub fn encode_reply_split(
    v: Version,
    body: &MultipartReplyBody,
    xid: u32,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    let (mtype, parts) = reply_parts(v, body)?;
    let mut chunks: Vec<Vec<&[u8]>> = vec![Vec::new()];
    let mut size = 0;
    for p in &parts {
        if size + p.len() > MP_SPLIT_BYTES && size > 0 {
            chunks.push(Vec::new());
            size = 0;
        }
        size += p.len();
        if let Some(c) = chunks.last_mut() {
            c.push(p);
        }
    }
    let n = chunks.len();
    let ty = MsgType::MultipartReply
        .wire(v)
        .ok_or_else(|| v.unsupported("multipart reply"))?;
    let mut out = Vec::with_capacity(n);
    for (i, c) in chunks.into_iter().enumerate() {
        let mut w = Writer {
            buf: Vec::with_capacity(16 + c.iter().map(|p| p.len()).sum::<usize>()),
        };
        super::begin(&mut w, v.wire(), ty, xid);
        w.u16(mtype);
        w.u16(if i + 1 < n { MP_MORE } else { 0 });
        w.zeros(header_pad(v));
        for p in c {
            w.bytes(p);
        }
        out.push(super::finish(w)?);
    }
    Ok(out)
}

/// Appends `more` to `acc` (same kind of body), for collecting the parts
/// of a multipart reply. Returns false when the kinds differ.
pub fn merge_reply(acc: &mut MultipartReplyBody, more: MultipartReplyBody) -> bool {
    use MultipartReplyBody as B;
    match (acc, more) {
        (B::Flow(a), B::Flow(b)) => a.extend(b),
        (B::Table(a), B::Table(b)) => a.extend(b),
        (B::PortStats(a), B::PortStats(b)) => a.extend(b),
        (B::PortDesc(a), B::PortDesc(b)) => a.extend(b),
        (B::Group(a), B::Group(b)) => a.extend(b),
        (B::GroupDesc(a), B::GroupDesc(b)) => a.extend(b),
        (B::TableFeatures(a), B::TableFeatures(b)) => a.extend(b),
        (B::Meter(a), B::Meter(b)) => a.extend(b),
        (B::MeterConfig(a), B::MeterConfig(b)) => a.extend(b),
        _ => return false,
    }
    true
}
