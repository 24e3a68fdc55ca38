//! Bytes ↔ [`Message`] for OpenFlow 1.0 (0x01) and 1.3 (0x04).

use flows::Match;

use crate::actions;
use crate::consts::{
    HEADER_LEN, MP_MORE, MP_SPLIT_BYTES, OFP10_VERSION, OFP13_VERSION, OFPG_ANY, OFPTT_ALL, mp,
    port_from_10, port_to_10, t10, t13,
};
use crate::error::{DecodeError, EncodeError, OfError};
use crate::match10::{decode_match10, encode_match10};
use crate::message::*;
use crate::oxm::{decode_ofp_match, encode_ofp_match};
use crate::wire::{Reader, Writer};

/// True for the versions this crate speaks.
pub fn version_supported(v: u8) -> bool {
    v == OFP10_VERSION || v == OFP13_VERSION
}

/// Parses the 8-byte header at the start of `buf`.
pub fn parse_header(buf: &[u8]) -> Result<OfHeader, DecodeError> {
    let mut r = Reader::new(buf.get(..HEADER_LEN).ok_or(DecodeError::Truncated {
        need: HEADER_LEN,
        have: buf.len(),
    })?);
    let version = r.u8()?;
    let msg_type = r.u8()?;
    let length = r.u16()?;
    let xid = r.u32()?;
    if usize::from(length) < HEADER_LEN {
        return Err(DecodeError::BadHeaderLength(length));
    }
    Ok(OfHeader {
        version,
        msg_type,
        length,
        xid,
    })
}

/// Decodes exactly one message occupying all of `buf`.
pub fn decode(buf: &[u8]) -> Result<(OfHeader, Message), DecodeError> {
    let h = parse_header(buf)?;
    let len = usize::from(h.length);
    if buf.len() < len {
        return Err(DecodeError::Truncated {
            need: len,
            have: buf.len(),
        });
    }
    if buf.len() != len {
        return Err(DecodeError::BadHeaderLength(h.length));
    }
    let body = Reader::new(buf.get(HEADER_LEN..len).unwrap_or(&[]));
    if h.msg_type == t13::HELLO {
        return Ok((h, decode_hello(body)));
    }
    let msg = match h.version {
        OFP13_VERSION => decode13(h.msg_type, body)?,
        OFP10_VERSION => decode10(h.msg_type, body)?,
        v => return Err(DecodeError::UnsupportedVersion(v)),
    };
    Ok((h, msg))
}

fn decode_hello(mut r: Reader) -> Message {
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
        if ty == 1
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

const BAD_LEN: DecodeError = DecodeError::Refused(OfError::BadLen);

fn port_desc13(r: &mut Reader) -> Result<PortDesc, DecodeError> {
    let port_no = r.u32()?;
    r.skip(4)?;
    let hw_addr = r.array()?;
    r.skip(2)?;
    Ok(PortDesc {
        port_no,
        hw_addr,
        name: r.string(16)?,
        config: r.u32()?,
        state: r.u32()?,
        curr: r.u32()?,
        advertised: r.u32()?,
        supported: r.u32()?,
        peer: r.u32()?,
        curr_speed: r.u32()?,
        max_speed: r.u32()?,
    })
}

fn port_desc10(r: &mut Reader) -> Result<PortDesc, DecodeError> {
    Ok(PortDesc {
        port_no: port_from_10(r.u16()?),
        hw_addr: r.array()?,
        name: r.string(16)?,
        config: r.u32()?,
        state: r.u32()?,
        curr: r.u32()?,
        advertised: r.u32()?,
        supported: r.u32()?,
        peer: r.u32()?,
        curr_speed: 0,
        max_speed: 0,
    })
}

fn buckets(r: Reader) -> Result<Vec<Bucket>, DecodeError> {
    let mut r = r.reporting(OfError::BadBucket);
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = usize::from(r.peek_u16(0)?);
        if len < 16 || !len.is_multiple_of(8) {
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

fn decode13(ty: u8, mut r: Reader) -> Result<Message, DecodeError> {
    let m = match ty {
        t13::ERROR => Message::Error(ErrorMsg {
            err_type: r.u16()?,
            code: r.u16()?,
            data: r.rest().to_vec(),
        }),
        t13::ECHO_REQUEST => Message::EchoRequest(r.rest().to_vec()),
        t13::ECHO_REPLY => Message::EchoReply(r.rest().to_vec()),
        t13::EXPERIMENTER => Message::Experimenter {
            experimenter: r.u32()?,
            exp_type: r.u32()?,
            data: r.rest().to_vec(),
        },
        t13::FEATURES_REQUEST => {
            r.done()?;
            Message::FeaturesRequest
        }
        t13::FEATURES_REPLY => {
            let f = (|| -> Result<_, DecodeError> {
                let datapath_id = r.u64()?;
                let n_buffers = r.u32()?;
                let n_tables = r.u8()?;
                let auxiliary_id = r.u8()?;
                r.skip(2)?;
                let capabilities = r.u32()?;
                r.skip(4)?;
                Ok(Features {
                    datapath_id,
                    n_buffers,
                    n_tables,
                    auxiliary_id,
                    capabilities,
                    actions: 0,
                    ports: Vec::new(),
                })
            })()?;
            Message::FeaturesReply(f)
        }
        t13::GET_CONFIG_REQUEST => {
            r.done()?;
            Message::GetConfigRequest
        }
        t13::GET_CONFIG_REPLY | t13::SET_CONFIG => {
            let c = SwitchConfig {
                flags: r.u16()?,
                miss_send_len: r.u16()?,
            };
            r.done()?;
            if ty == t13::SET_CONFIG {
                Message::SetConfig(c)
            } else {
                Message::GetConfigReply(c)
            }
        }
        t13::PACKET_IN => {
            let buffer_id = r.u32()?;
            let total_len = r.u16()?;
            let reason = r.u8()?;
            let table_id = r.u8()?;
            let cookie = r.u64()?;
            let match_ = decode_ofp_match(&mut r)?;
            r.skip(2)?;
            Message::PacketIn(PacketIn {
                buffer_id,
                total_len,
                reason,
                table_id,
                cookie,
                match_,
                data: r.rest().to_vec(),
            })
        }
        t13::FLOW_REMOVED => {
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
            let match_ = decode_ofp_match(&mut r)?;
            Message::FlowRemoved(FlowRemoved {
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
        t13::PORT_STATUS => {
            let reason = r.u8()?;
            r.skip(7)?;
            let desc = port_desc13(&mut r)?;
            Message::PortStatus(PortStatus { reason, desc })
        }
        t13::PACKET_OUT => {
            let buffer_id = r.u32()?;
            let in_port = r.u32()?;
            let alen = usize::from(r.u16()?);
            r.skip(6)?;
            let acts = r.sub(alen)?;
            Message::PacketOut(PacketOut {
                buffer_id,
                in_port,
                actions: actions::decode_actions13(acts)?,
                data: r.rest().to_vec(),
            })
        }
        t13::FLOW_MOD => {
            let cookie = r.u64()?;
            let cookie_mask = r.u64()?;
            let table_id = r.u8()?;
            let command =
                FlowModCommand::from_wire(u16::from(r.u8()?)).ok_or(OfError::BadCommand)?;
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
            let acts = actions::decode_instructions(r)?;
            Message::FlowMod(FlowMod {
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
                actions: acts,
            })
        }
        t13::GROUP_MOD => {
            let command = match r.u16()? {
                0 => GroupModCommand::Add,
                1 => GroupModCommand::Modify,
                2 => GroupModCommand::Delete,
                _ => return Err(OfError::BadGroupCommand.into()),
            };
            let group_type = GroupType::from_wire(r.u8()?).ok_or(OfError::BadGroupType)?;
            r.skip(1)?;
            let group_id = r.u32()?;
            Message::GroupMod(GroupMod {
                command,
                group_type,
                group_id,
                buckets: buckets(r)?,
            })
        }
        t13::PORT_MOD => {
            let port_no = r.u32()?;
            r.skip(4)?;
            let hw_addr = r.array()?;
            r.skip(2)?;
            let pm = PortMod {
                port_no,
                hw_addr,
                config: r.u32()?,
                mask: r.u32()?,
                advertise: r.u32()?,
            };
            r.skip(4)?;
            r.done()?;
            Message::PortMod(pm)
        }
        t13::MULTIPART_REQUEST => {
            let mtype = r.u16()?;
            let flags = r.u16()?;
            r.skip(4)?;
            Message::MultipartRequest(MultipartRequest {
                flags,
                body: mp_request13(mtype, r)?,
            })
        }
        t13::MULTIPART_REPLY => {
            let mtype = r.u16()?;
            let flags = r.u16()?;
            r.skip(4)?;
            Message::MultipartReply(MultipartReply {
                flags,
                body: mp_reply(mtype, r, false)?,
            })
        }
        t13::BARRIER_REQUEST => Message::BarrierRequest,
        t13::BARRIER_REPLY => Message::BarrierReply,
        t13::QUEUE_GET_CONFIG_REQUEST => Message::QueueGetConfigRequest { port: r.u32()? },
        t13::QUEUE_GET_CONFIG_REPLY => Message::QueueGetConfigReply { port: r.u32()? },
        t13::ROLE_REQUEST | t13::ROLE_REPLY => {
            let role = r.u32()?;
            r.skip(4)?;
            let rm = RoleMsg {
                role,
                generation_id: r.u64()?,
            };
            r.done()?;
            if ty == t13::ROLE_REQUEST {
                Message::RoleRequest(rm)
            } else {
                Message::RoleReply(rm)
            }
        }
        t13::GET_ASYNC_REQUEST => {
            r.done()?;
            Message::GetAsyncRequest
        }
        t13::GET_ASYNC_REPLY | t13::SET_ASYNC => {
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
            if ty == t13::SET_ASYNC {
                Message::SetAsync(a)
            } else {
                Message::GetAsyncReply(a)
            }
        }
        _ => return Err(OfError::BadType.into()),
    };
    Ok(m)
}

fn flow_stats_request13(mut r: Reader) -> Result<FlowStatsRequest, DecodeError> {
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

fn mp_request13(mtype: u16, mut r: Reader) -> Result<MultipartRequestBody, DecodeError> {
    Ok(match mtype {
        mp::DESC => MultipartRequestBody::Desc,
        mp::FLOW => MultipartRequestBody::Flow(flow_stats_request13(r)?),
        mp::AGGREGATE => MultipartRequestBody::Aggregate(flow_stats_request13(r)?),
        mp::TABLE => MultipartRequestBody::Table,
        mp::PORT_STATS => MultipartRequestBody::PortStats { port_no: r.u32()? },
        mp::PORT_DESC => MultipartRequestBody::PortDesc,
        mp::GROUP => MultipartRequestBody::Group { group_id: r.u32()? },
        mp::GROUP_DESC => MultipartRequestBody::GroupDesc,
        mp::TABLE_FEATURES => {
            if !r.is_empty() {
                // Setting table features is not supported.
                return Err(OfError::BadRequestEperm.into());
            }
            MultipartRequestBody::TableFeatures
        }
        mp::EXPERIMENTER => return Err(OfError::BadExperimenter.into()),
        _ => return Err(OfError::BadMultipart.into()),
    })
}

fn desc(r: &mut Reader) -> Result<SwitchDesc, DecodeError> {
    Ok(SwitchDesc {
        mfr_desc: r.string(256)?,
        hw_desc: r.string(256)?,
        sw_desc: r.string(256)?,
        serial_num: r.string(32)?,
        dp_desc: r.string(256)?,
    })
}

/// Splits `r` into length-prefixed entries (u16 length at offset 0).
fn entries<'a>(mut r: Reader<'a>, min: usize) -> Result<Vec<Reader<'a>>, DecodeError> {
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

fn mp_reply(mtype: u16, mut r: Reader, v10: bool) -> Result<MultipartReplyBody, DecodeError> {
    Ok(match mtype {
        mp::DESC => MultipartReplyBody::Desc(desc(&mut r)?),
        mp::FLOW => {
            let mut out = Vec::new();
            for mut b in entries(r, if v10 { 88 } else { 56 })? {
                b.skip(2)?;
                let table_id = b.u8()?;
                b.skip(1)?;
                let m10 = if v10 {
                    Some(decode_match10(&mut b)?)
                } else {
                    None
                };
                let duration_sec = b.u32()?;
                let duration_nsec = b.u32()?;
                let priority = b.u16()?;
                let idle_timeout = b.u16()?;
                let hard_timeout = b.u16()?;
                let flags = if v10 {
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
                let (match_, acts) = match m10 {
                    Some(m) => (m, actions::decode_actions10(b)?),
                    None => {
                        let m = decode_ofp_match(&mut b)?;
                        (m, actions::decode_instructions(b)?)
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
                    actions: acts,
                });
            }
            MultipartReplyBody::Flow(out)
        }
        mp::AGGREGATE => MultipartReplyBody::Aggregate(AggregateStats {
            packet_count: r.u64()?,
            byte_count: r.u64()?,
            flow_count: r.u32()?,
        }),
        mp::TABLE => {
            let mut out = Vec::new();
            while !r.is_empty() {
                let mut b = r.sub(if v10 { 64 } else { 24 })?;
                let t = (|| -> Result<_, DecodeError> {
                    let table_id = b.u8()?;
                    b.skip(3)?;
                    let (name, max_entries) = if v10 {
                        let n = b.string(32)?;
                        b.skip(4)?;
                        (n, b.u32()?)
                    } else {
                        (String::new(), 0)
                    };
                    Ok(TableStats {
                        table_id,
                        name,
                        max_entries,
                        active_count: b.u32()?,
                        lookup_count: b.u64()?,
                        matched_count: b.u64()?,
                    })
                })()?;
                out.push(t);
            }
            MultipartReplyBody::Table(out)
        }
        mp::PORT_STATS => {
            let mut out = Vec::new();
            while !r.is_empty() {
                let mut b = r.sub(if v10 { 104 } else { 112 })?;
                let p = (|| -> Result<_, DecodeError> {
                    let port_no = if v10 {
                        let p = port_from_10(b.u16()?);
                        b.skip(6)?;
                        p
                    } else {
                        let p = b.u32()?;
                        b.skip(4)?;
                        p
                    };
                    let mut c = [0u64; 12];
                    for x in &mut c {
                        *x = b.u64()?;
                    }
                    let (ds, dn) = if v10 { (0, 0) } else { (b.u32()?, b.u32()?) };
                    Ok(PortStats {
                        port_no,
                        rx_packets: c[0],
                        tx_packets: c[1],
                        rx_bytes: c[2],
                        tx_bytes: c[3],
                        rx_dropped: c[4],
                        tx_dropped: c[5],
                        rx_errors: c[6],
                        tx_errors: c[7],
                        rx_frame_err: c[8],
                        rx_over_err: c[9],
                        rx_crc_err: c[10],
                        collisions: c[11],
                        duration_sec: ds,
                        duration_nsec: dn,
                    })
                })()?;
                out.push(p);
            }
            MultipartReplyBody::PortStats(out)
        }
        mp::PORT_DESC => {
            let mut out = Vec::new();
            while !r.is_empty() {
                let p = if v10 {
                    port_desc10(&mut r)
                } else {
                    port_desc13(&mut r)
                };
                out.push(p?);
            }
            MultipartReplyBody::PortDesc(out)
        }
        mp::GROUP if !v10 => {
            let mut out = Vec::new();
            for mut b in entries(r, 40)? {
                let g = (|| -> Result<_, DecodeError> {
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
                    Ok(GroupStats {
                        group_id,
                        ref_count,
                        packet_count,
                        byte_count,
                        duration_sec,
                        duration_nsec,
                        bucket_stats,
                    })
                })()?;
                out.push(g);
            }
            MultipartReplyBody::Group(out)
        }
        mp::GROUP_DESC if !v10 => {
            let mut out = Vec::new();
            for mut b in entries(r, 8)? {
                b.skip(2)?;
                let group_type = GroupType::from_wire(b.u8()?).ok_or(OfError::BadGroupType)?;
                b.skip(1)?;
                let group_id = b.u32()?;
                out.push(GroupDesc {
                    group_type,
                    group_id,
                    buckets: buckets(b)?,
                });
            }
            MultipartReplyBody::GroupDesc(out)
        }
        mp::TABLE_FEATURES if !v10 => {
            let mut out = Vec::new();
            for mut b in entries(r, 64)? {
                let t = (|| -> Result<_, DecodeError> {
                    b.skip(2)?;
                    let table_id = b.u8()?;
                    b.skip(5)?;
                    Ok(TableFeatures {
                        table_id,
                        name: b.string(32)?,
                        metadata_match: b.u64()?,
                        metadata_write: b.u64()?,
                        config: b.u32()?,
                        max_entries: b.u32()?,
                    })
                })()?;
                out.push(t);
            }
            MultipartReplyBody::TableFeatures(out)
        }
        _ => return Err(OfError::BadMultipart.into()),
    })
}

fn decode10(ty: u8, mut r: Reader) -> Result<Message, DecodeError> {
    let m = match ty {
        t10::ERROR => Message::Error(ErrorMsg {
            err_type: r.u16()?,
            code: r.u16()?,
            data: r.rest().to_vec(),
        }),
        t10::ECHO_REQUEST => Message::EchoRequest(r.rest().to_vec()),
        t10::ECHO_REPLY => Message::EchoReply(r.rest().to_vec()),
        t10::VENDOR => Message::Experimenter {
            experimenter: r.u32()?,
            exp_type: 0,
            data: r.rest().to_vec(),
        },
        t10::FEATURES_REQUEST => Message::FeaturesRequest,
        t10::FEATURES_REPLY => {
            let datapath_id = r.u64()?;
            let n_buffers = r.u32()?;
            let n_tables = r.u8()?;
            r.skip(3)?;
            let capabilities = r.u32()?;
            let acts = r.u32()?;
            let mut ports = Vec::new();
            while !r.is_empty() {
                ports.push(port_desc10(&mut r)?);
            }
            Message::FeaturesReply(Features {
                datapath_id,
                n_buffers,
                n_tables,
                auxiliary_id: 0,
                capabilities,
                actions: acts,
                ports,
            })
        }
        t10::GET_CONFIG_REQUEST => Message::GetConfigRequest,
        t10::GET_CONFIG_REPLY | t10::SET_CONFIG => {
            let c = SwitchConfig {
                flags: r.u16()?,
                miss_send_len: r.u16()?,
            };
            if ty == t10::SET_CONFIG {
                Message::SetConfig(c)
            } else {
                Message::GetConfigReply(c)
            }
        }
        t10::PACKET_IN => {
            let buffer_id = r.u32()?;
            let total_len = r.u16()?;
            let in_port = r.u16()?;
            let reason = r.u8()?;
            r.skip(1)?;
            let mut key = flows::FlowKey::default();
            let mut mask = flows::FlowKey::default();
            key.in_port = port_from_10(in_port);
            mask.in_port = u32::MAX;
            Message::PacketIn(PacketIn {
                buffer_id,
                total_len,
                reason,
                table_id: 0,
                cookie: 0,
                match_: Match::new(key, mask),
                data: r.rest().to_vec(),
            })
        }
        t10::FLOW_REMOVED => {
            let match_ = decode_match10(&mut r)?;
            let cookie = r.u64()?;
            let priority = r.u16()?;
            let reason = r.u8()?;
            r.skip(1)?;
            let duration_sec = r.u32()?;
            let duration_nsec = r.u32()?;
            let idle_timeout = r.u16()?;
            r.skip(2)?;
            Message::FlowRemoved(FlowRemoved {
                cookie,
                priority,
                reason,
                table_id: 0,
                duration_sec,
                duration_nsec,
                idle_timeout,
                hard_timeout: 0,
                packet_count: r.u64()?,
                byte_count: r.u64()?,
                match_,
            })
        }
        t10::PORT_STATUS => {
            let reason = r.u8()?;
            r.skip(7)?;
            let desc = port_desc10(&mut r)?;
            Message::PortStatus(PortStatus { reason, desc })
        }
        t10::PACKET_OUT => {
            let buffer_id = r.u32()?;
            let in_port = port_from_10(r.u16()?);
            let alen = usize::from(r.u16()?);
            let acts = r.sub(alen)?;
            Message::PacketOut(PacketOut {
                buffer_id,
                in_port,
                actions: actions::decode_actions10(acts)?,
                data: r.rest().to_vec(),
            })
        }
        t10::FLOW_MOD => {
            let match_ = decode_match10(&mut r)?;
            let cookie = r.u64()?;
            let command = FlowModCommand::from_wire(r.u16()?).ok_or(OfError::BadCommand)?;
            let idle_timeout = r.u16()?;
            let hard_timeout = r.u16()?;
            let priority = r.u16()?;
            let buffer_id = r.u32()?;
            let out_port = port_from_10(r.u16()?);
            let flags = r.u16()?;
            if flags & 4 != 0 {
                // OFPFF_EMERG: emergency flows are not supported.
                return Err(OfError::BadTimeout.into());
            }
            Message::FlowMod(FlowMod {
                command,
                match_,
                priority,
                cookie,
                cookie_mask: 0,
                table_id: if command.is_delete() { OFPTT_ALL } else { 0 },
                idle_timeout,
                hard_timeout,
                flags: flags & 3,
                buffer_id,
                out_port,
                out_group: OFPG_ANY,
                actions: actions::decode_actions10(r)?,
            })
        }
        t10::PORT_MOD => {
            let port_no = port_from_10(r.u16()?);
            let hw_addr = r.array()?;
            Message::PortMod(PortMod {
                port_no,
                hw_addr,
                config: r.u32()?,
                mask: r.u32()?,
                advertise: r.u32()?,
            })
        }
        t10::STATS_REQUEST => {
            let stype = r.u16()?;
            let flags = r.u16()?;
            Message::MultipartRequest(MultipartRequest {
                flags,
                body: stats_request10(stype, r)?,
            })
        }
        t10::STATS_REPLY => {
            let stype = r.u16()?;
            let flags = r.u16()?;
            Message::MultipartReply(MultipartReply {
                flags,
                body: mp_reply(stype, r, true)?,
            })
        }
        t10::BARRIER_REQUEST => Message::BarrierRequest,
        t10::BARRIER_REPLY => Message::BarrierReply,
        t10::QUEUE_GET_CONFIG_REQUEST => Message::QueueGetConfigRequest {
            port: port_from_10(r.u16()?),
        },
        t10::QUEUE_GET_CONFIG_REPLY => Message::QueueGetConfigReply {
            port: port_from_10(r.u16()?),
        },
        _ => return Err(OfError::BadType.into()),
    };
    Ok(m)
}

fn stats_request10(stype: u16, mut r: Reader) -> Result<MultipartRequestBody, DecodeError> {
    Ok(match stype {
        mp::DESC => MultipartRequestBody::Desc,
        mp::FLOW | mp::AGGREGATE => {
            let match_ = decode_match10(&mut r)?;
            let table_id = r.u8()?;
            r.skip(1)?;
            let out_port = port_from_10(r.u16()?);
            let req = FlowStatsRequest {
                table_id,
                out_port,
                out_group: OFPG_ANY,
                cookie: 0,
                cookie_mask: 0,
                match_,
            };
            if stype == mp::FLOW {
                MultipartRequestBody::Flow(req)
            } else {
                MultipartRequestBody::Aggregate(req)
            }
        }
        mp::TABLE => MultipartRequestBody::Table,
        mp::PORT_STATS => MultipartRequestBody::PortStats {
            port_no: port_from_10(r.u16()?),
        },
        // Open vSwitch's extension to OpenFlow 1.0 (what `ovs-ofctl -O
        // OpenFlow10 dump-ports-desc` sends); the optional port filter is
        // answered with every port, as for 1.3's PORT_DESC.
        mp::PORT_DESC => MultipartRequestBody::PortDesc,
        mp::EXPERIMENTER => return Err(OfError::BadExperimenter.into()),
        _ => return Err(OfError::BadMultipart.into()),
    })
}

// ----------------------------------------------------------------- encode

fn unsupported(what: &str, version: u8) -> EncodeError {
    EncodeError::Unsupported {
        what: what.to_string(),
        version: if version == OFP10_VERSION {
            "1.0"
        } else {
            "1.3"
        },
    }
}

fn begin(w: &mut Writer, version: u8, ty: u8, xid: u32) {
    w.u8(version);
    w.u8(ty);
    w.u16(0);
    w.u32(xid);
}

fn finish(mut w: Writer) -> Result<Vec<u8>, EncodeError> {
    let n = w.len();
    let len = u16::try_from(n).map_err(|_| EncodeError::TooLong(n))?;
    w.patch_u16(2, len);
    Ok(w.buf)
}

fn port10(p: u32, version: u8) -> Result<u16, EncodeError> {
    port_to_10(p).ok_or_else(|| unsupported("port number", version))
}

fn write_port_desc(w: &mut Writer, p: &PortDesc, v10: bool) -> Result<(), EncodeError> {
    if v10 {
        w.u16(port10(p.port_no, OFP10_VERSION)?);
        w.bytes(&p.hw_addr);
        w.string(&p.name, 16);
    } else {
        w.u32(p.port_no);
        w.u32(0);
        w.bytes(&p.hw_addr);
        w.u16(0);
        w.string(&p.name, 16);
    }
    for x in [p.config, p.state, p.curr, p.advertised, p.supported, p.peer] {
        w.u32(x);
    }
    if !v10 {
        w.u32(p.curr_speed);
        w.u32(p.max_speed);
    }
    Ok(())
}

fn write_buckets(w: &mut Writer, buckets: &[Bucket]) -> Result<(), EncodeError> {
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

fn msg_type(msg: &Message, v10: bool) -> Option<u8> {
    let (a, b) = match msg {
        Message::Hello { .. } => (t13::HELLO, Some(t10::HELLO)),
        Message::Error(_) => (t13::ERROR, Some(t10::ERROR)),
        Message::EchoRequest(_) => (t13::ECHO_REQUEST, Some(t10::ECHO_REQUEST)),
        Message::EchoReply(_) => (t13::ECHO_REPLY, Some(t10::ECHO_REPLY)),
        Message::Experimenter { .. } => (t13::EXPERIMENTER, Some(t10::VENDOR)),
        Message::FeaturesRequest => (t13::FEATURES_REQUEST, Some(t10::FEATURES_REQUEST)),
        Message::FeaturesReply(_) => (t13::FEATURES_REPLY, Some(t10::FEATURES_REPLY)),
        Message::GetConfigRequest => (t13::GET_CONFIG_REQUEST, Some(t10::GET_CONFIG_REQUEST)),
        Message::GetConfigReply(_) => (t13::GET_CONFIG_REPLY, Some(t10::GET_CONFIG_REPLY)),
        Message::SetConfig(_) => (t13::SET_CONFIG, Some(t10::SET_CONFIG)),
        Message::PacketIn(_) => (t13::PACKET_IN, Some(t10::PACKET_IN)),
        Message::FlowRemoved(_) => (t13::FLOW_REMOVED, Some(t10::FLOW_REMOVED)),
        Message::PortStatus(_) => (t13::PORT_STATUS, Some(t10::PORT_STATUS)),
        Message::PacketOut(_) => (t13::PACKET_OUT, Some(t10::PACKET_OUT)),
        Message::FlowMod(_) => (t13::FLOW_MOD, Some(t10::FLOW_MOD)),
        Message::GroupMod(_) => (t13::GROUP_MOD, None),
        Message::PortMod(_) => (t13::PORT_MOD, Some(t10::PORT_MOD)),
        Message::MultipartRequest(_) => (t13::MULTIPART_REQUEST, Some(t10::STATS_REQUEST)),
        Message::MultipartReply(_) => (t13::MULTIPART_REPLY, Some(t10::STATS_REPLY)),
        Message::BarrierRequest => (t13::BARRIER_REQUEST, Some(t10::BARRIER_REQUEST)),
        Message::BarrierReply => (t13::BARRIER_REPLY, Some(t10::BARRIER_REPLY)),
        Message::QueueGetConfigRequest { .. } => (
            t13::QUEUE_GET_CONFIG_REQUEST,
            Some(t10::QUEUE_GET_CONFIG_REQUEST),
        ),
        Message::QueueGetConfigReply { .. } => (
            t13::QUEUE_GET_CONFIG_REPLY,
            Some(t10::QUEUE_GET_CONFIG_REPLY),
        ),
        Message::RoleRequest(_) => (t13::ROLE_REQUEST, None),
        Message::RoleReply(_) => (t13::ROLE_REPLY, None),
        Message::GetAsyncRequest => (t13::GET_ASYNC_REQUEST, None),
        Message::GetAsyncReply(_) => (t13::GET_ASYNC_REPLY, None),
        Message::SetAsync(_) => (t13::SET_ASYNC, None),
    };
    if v10 { b } else { Some(a) }
}

/// Encodes `msg` as one message of `version` with transaction id `xid`.
/// Multipart replies larger than 64 KiB need [`encode_multipart_reply`].
pub fn encode(msg: &Message, version: u8, xid: u32) -> Result<Vec<u8>, EncodeError> {
    if !version_supported(version) && !matches!(msg, Message::Hello { .. }) {
        return Err(unsupported("this version", version));
    }
    let v10 = version == OFP10_VERSION;
    let ty = msg_type(msg, v10).ok_or_else(|| unsupported(msg.name(), version))?;
    let mut w = Writer::new();
    begin(&mut w, version, ty, xid);
    match msg {
        Message::Hello { versions } => {
            if *versions != 0 {
                w.u16(1);
                w.u16(8);
                w.u32(*versions);
            }
        }
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
            if !v10 {
                w.u32(*exp_type);
            }
            w.bytes(data);
        }
        Message::FeaturesRequest
        | Message::GetConfigRequest
        | Message::BarrierRequest
        | Message::BarrierReply
        | Message::GetAsyncRequest => {}
        Message::FeaturesReply(f) => {
            w.u64(f.datapath_id);
            w.u32(f.n_buffers);
            w.u8(f.n_tables);
            if v10 {
                w.zeros(3);
                w.u32(f.capabilities);
                w.u32(f.actions);
                for p in &f.ports {
                    write_port_desc(&mut w, p, true)?;
                }
            } else {
                w.u8(f.auxiliary_id);
                w.u16(0);
                w.u32(f.capabilities);
                w.u32(0);
            }
        }
        Message::GetConfigReply(c) | Message::SetConfig(c) => {
            w.u16(c.flags);
            w.u16(c.miss_send_len);
        }
        Message::PacketIn(p) => {
            w.u32(p.buffer_id);
            w.u16(p.total_len);
            if v10 {
                w.u16(port10(p.match_.key.in_port, version)?);
                w.u8(p.reason);
                w.u8(0);
            } else {
                w.u8(p.reason);
                w.u8(p.table_id);
                w.u64(p.cookie);
                encode_ofp_match(&mut w, &p.match_);
                w.u16(0);
            }
            w.bytes(&p.data);
        }
        Message::FlowRemoved(f) => {
            if v10 {
                encode_match10(&mut w, &f.match_)?;
                w.u64(f.cookie);
                w.u16(f.priority);
                w.u8(f.reason);
                w.u8(0);
                w.u32(f.duration_sec);
                w.u32(f.duration_nsec);
                w.u16(f.idle_timeout);
                w.u16(0);
                w.u64(f.packet_count);
                w.u64(f.byte_count);
            } else {
                w.u64(f.cookie);
                w.u16(f.priority);
                w.u8(f.reason);
                w.u8(f.table_id);
                w.u32(f.duration_sec);
                w.u32(f.duration_nsec);
                w.u16(f.idle_timeout);
                w.u16(f.hard_timeout);
                w.u64(f.packet_count);
                w.u64(f.byte_count);
                encode_ofp_match(&mut w, &f.match_);
            }
        }
        Message::PortStatus(p) => {
            w.u8(p.reason);
            w.zeros(7);
            write_port_desc(&mut w, &p.desc, v10)?;
        }
        Message::PacketOut(p) => {
            w.u32(p.buffer_id);
            let alen_at;
            if v10 {
                w.u16(port10(p.in_port, version)?);
                alen_at = w.len_placeholder();
            } else {
                w.u32(p.in_port);
                alen_at = w.len_placeholder();
                w.zeros(6);
            }
            let start = w.len();
            if v10 {
                actions::encode_actions10(&mut w, &p.actions)?;
            } else {
                actions::encode_actions13(&mut w, &p.actions)?;
            }
            w.patch_len_since(alen_at, start);
            w.bytes(&p.data);
        }
        Message::FlowMod(f) => {
            if v10 {
                encode_match10(&mut w, &f.match_)?;
                w.u64(f.cookie);
                w.u16(u16::from(f.command.wire()));
                w.u16(f.idle_timeout);
                w.u16(f.hard_timeout);
                w.u16(f.priority);
                w.u32(f.buffer_id);
                w.u16(port10(f.out_port, version)?);
                w.u16(f.flags & 3);
                actions::encode_actions10(&mut w, &f.actions)?;
            } else {
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
                encode_ofp_match(&mut w, &f.match_);
                actions::encode_instructions(&mut w, &f.actions)?;
            }
        }
        Message::GroupMod(g) => {
            w.u16(match g.command {
                GroupModCommand::Add => 0,
                GroupModCommand::Modify => 1,
                GroupModCommand::Delete => 2,
            });
            w.u8(g.group_type.wire());
            w.u8(0);
            w.u32(g.group_id);
            write_buckets(&mut w, &g.buckets)?;
        }
        Message::PortMod(p) => {
            if v10 {
                w.u16(port10(p.port_no, version)?);
                w.bytes(&p.hw_addr);
            } else {
                w.u32(p.port_no);
                w.u32(0);
                w.bytes(&p.hw_addr);
                w.u16(0);
            }
            w.u32(p.config);
            w.u32(p.mask);
            w.u32(p.advertise);
            w.u32(0);
        }
        Message::MultipartRequest(req) => encode_mp_request(&mut w, req, version)?,
        Message::MultipartReply(rep) => {
            let (mtype, parts) = reply_parts(&rep.body, version)?;
            w.u16(mtype);
            w.u16(rep.flags);
            if !v10 {
                w.u32(0);
            }
            for p in parts {
                w.bytes(&p);
            }
        }
        Message::QueueGetConfigRequest { port } | Message::QueueGetConfigReply { port } => {
            if v10 {
                w.u16(port10(*port, version)?);
                let pad = if matches!(msg, Message::QueueGetConfigRequest { .. }) {
                    2
                } else {
                    6
                };
                w.zeros(pad);
            } else {
                w.u32(*port);
                w.u32(0);
            }
        }
        Message::RoleRequest(r) | Message::RoleReply(r) => {
            w.u32(r.role);
            w.u32(0);
            w.u64(r.generation_id);
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
    }
    finish(w)
}

fn encode_flow_stats_request(
    w: &mut Writer,
    r: &FlowStatsRequest,
    version: u8,
) -> Result<(), EncodeError> {
    if version == OFP10_VERSION {
        encode_match10(w, &r.match_)?;
        w.u8(r.table_id);
        w.u8(0);
        w.u16(port10(r.out_port, version)?);
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

fn encode_mp_request(
    w: &mut Writer,
    req: &MultipartRequest,
    version: u8,
) -> Result<(), EncodeError> {
    let v10 = version == OFP10_VERSION;
    let mtype = match &req.body {
        MultipartRequestBody::Desc => mp::DESC,
        MultipartRequestBody::Flow(_) => mp::FLOW,
        MultipartRequestBody::Aggregate(_) => mp::AGGREGATE,
        MultipartRequestBody::Table => mp::TABLE,
        MultipartRequestBody::PortStats { .. } => mp::PORT_STATS,
        MultipartRequestBody::PortDesc => mp::PORT_DESC,
        MultipartRequestBody::Group { .. } if !v10 => mp::GROUP,
        MultipartRequestBody::GroupDesc if !v10 => mp::GROUP_DESC,
        MultipartRequestBody::TableFeatures if !v10 => mp::TABLE_FEATURES,
        _ => return Err(unsupported("this multipart request", version)),
    };
    w.u16(mtype);
    w.u16(req.flags);
    if !v10 {
        w.u32(0);
    }
    match &req.body {
        MultipartRequestBody::Flow(r) | MultipartRequestBody::Aggregate(r) => {
            encode_flow_stats_request(w, r, version)?;
        }
        MultipartRequestBody::PortStats { port_no } => {
            if v10 {
                w.u16(port10(*port_no, version)?);
                w.zeros(6);
            } else {
                w.u32(*port_no);
                w.u32(0);
            }
        }
        MultipartRequestBody::Group { group_id } => {
            w.u32(*group_id);
            w.u32(0);
        }
        _ => {}
    }
    Ok(())
}

/// The multipart type and the encoded entries of a reply body.
fn reply_parts(body: &MultipartReplyBody, version: u8) -> Result<(u16, Vec<Vec<u8>>), EncodeError> {
    let v10 = version == OFP10_VERSION;
    let mut parts = Vec::new();
    let mtype = match body {
        MultipartReplyBody::Desc(d) => {
            let mut w = Writer::new();
            w.string(&d.mfr_desc, 256);
            w.string(&d.hw_desc, 256);
            w.string(&d.sw_desc, 256);
            w.string(&d.serial_num, 32);
            w.string(&d.dp_desc, 256);
            parts.push(w.buf);
            mp::DESC
        }
        MultipartReplyBody::Flow(list) => {
            for f in list {
                let mut w = Writer::new();
                let at = w.len_placeholder();
                w.u8(f.table_id);
                w.u8(0);
                if v10 {
                    encode_match10(&mut w, &f.match_)?;
                }
                w.u32(f.duration_sec);
                w.u32(f.duration_nsec);
                w.u16(f.priority);
                w.u16(f.idle_timeout);
                w.u16(f.hard_timeout);
                if v10 {
                    w.zeros(6);
                } else {
                    w.u16(f.flags);
                    w.u32(0);
                }
                w.u64(f.cookie);
                w.u64(f.packet_count);
                w.u64(f.byte_count);
                if v10 {
                    actions::encode_actions10(&mut w, &f.actions)?;
                } else {
                    encode_ofp_match(&mut w, &f.match_);
                    actions::encode_instructions(&mut w, &f.actions)?;
                }
                w.patch_len_since(at, 0);
                parts.push(w.buf);
            }
            mp::FLOW
        }
        MultipartReplyBody::Aggregate(a) => {
            let mut w = Writer::new();
            w.u64(a.packet_count);
            w.u64(a.byte_count);
            w.u32(a.flow_count);
            w.u32(0);
            parts.push(w.buf);
            mp::AGGREGATE
        }
        MultipartReplyBody::Table(list) => {
            for t in list {
                let mut w = Writer::new();
                w.u8(t.table_id);
                w.zeros(3);
                if v10 {
                    w.string(&t.name, 32);
                    w.u32(crate::match10::W_ALL);
                    w.u32(t.max_entries);
                }
                w.u32(t.active_count);
                w.u64(t.lookup_count);
                w.u64(t.matched_count);
                parts.push(w.buf);
            }
            mp::TABLE
        }
        MultipartReplyBody::PortStats(list) => {
            for p in list {
                let mut w = Writer::new();
                if v10 {
                    w.u16(port10(p.port_no, version)?);
                    w.zeros(6);
                } else {
                    w.u32(p.port_no);
                    w.u32(0);
                }
                for x in [
                    p.rx_packets,
                    p.tx_packets,
                    p.rx_bytes,
                    p.tx_bytes,
                    p.rx_dropped,
                    p.tx_dropped,
                    p.rx_errors,
                    p.tx_errors,
                    p.rx_frame_err,
                    p.rx_over_err,
                    p.rx_crc_err,
                    p.collisions,
                ] {
                    w.u64(x);
                }
                if !v10 {
                    w.u32(p.duration_sec);
                    w.u32(p.duration_nsec);
                }
                parts.push(w.buf);
            }
            mp::PORT_STATS
        }
        MultipartReplyBody::PortDesc(list) => {
            for p in list {
                let mut w = Writer::new();
                write_port_desc(&mut w, p, v10)?;
                parts.push(w.buf);
            }
            mp::PORT_DESC
        }
        MultipartReplyBody::Group(list) if !v10 => {
            for g in list {
                let mut w = Writer::new();
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
                w.patch_len_since(at, 0);
                parts.push(w.buf);
            }
            mp::GROUP
        }
        MultipartReplyBody::GroupDesc(list) if !v10 => {
            for g in list {
                let mut w = Writer::new();
                let at = w.len_placeholder();
                w.u8(g.group_type.wire());
                w.u8(0);
                w.u32(g.group_id);
                write_buckets(&mut w, &g.buckets)?;
                w.patch_len_since(at, 0);
                parts.push(w.buf);
            }
            mp::GROUP_DESC
        }
        MultipartReplyBody::TableFeatures(list) if !v10 => {
            for t in list {
                let mut w = Writer::new();
                let at = w.len_placeholder();
                w.u8(t.table_id);
                w.zeros(5);
                w.string(&t.name, 32);
                w.u64(t.metadata_match);
                w.u64(t.metadata_write);
                w.u32(t.config);
                w.u32(t.max_entries);
                // The eight properties OpenFlow requires, each empty:
                // instructions, next_tables, write/apply actions, match,
                // wildcards, write/apply setfield.
                for prop in [0u16, 2, 4, 6, 8, 10, 12, 14] {
                    w.u16(prop);
                    w.u16(4);
                    w.u32(0);
                }
                w.patch_len_since(at, 0);
                parts.push(w.buf);
            }
            mp::TABLE_FEATURES
        }
        _ => return Err(unsupported("this multipart reply", version)),
    };
    Ok((mtype, parts))
}

/// Encodes a multipart reply, split into as many messages as needed (all
/// but the last flagged `OFPMPF_REPLY_MORE`).
pub fn encode_multipart_reply(
    body: &MultipartReplyBody,
    version: u8,
    xid: u32,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    let v10 = version == OFP10_VERSION;
    let (mtype, parts) = reply_parts(body, version)?;
    let hdr = if v10 { 12 } else { 16 };
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
    let mut out = Vec::with_capacity(n);
    let ty = if v10 {
        t10::STATS_REPLY
    } else {
        t13::MULTIPART_REPLY
    };
    for (i, c) in chunks.into_iter().enumerate() {
        let mut w = Writer {
            buf: Vec::with_capacity(hdr + c.iter().map(|p| p.len()).sum::<usize>()),
        };
        begin(&mut w, version, ty, xid);
        w.u16(mtype);
        w.u16(if i + 1 < n { MP_MORE } else { 0 });
        if !v10 {
            w.u32(0);
        }
        for p in c {
            w.bytes(p);
        }
        out.push(finish(w)?);
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
        _ => return false,
    }
    true
}
