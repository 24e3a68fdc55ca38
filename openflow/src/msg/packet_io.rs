//! Packets to and from the controller: PACKET_IN and PACKET_OUT. The
//! packet-in layout is 1.3's in 1.4 and 1.5; 1.5's packet-out carries a
//! match instead of an input port.

use flows::{FlowKey, Match};

use super::{MsgType, Version, decode_actions, encode_actions};
use crate::error::{DecodeError, EncodeError, OfError};
use crate::message::{Message, PacketIn, PacketOut};
use crate::oxm::{decode_ofp_match, encode_ofp_match};
use crate::wire::{Reader, Writer};

pub fn decode(ty: MsgType, v: Version, r: Reader) -> Result<Message, DecodeError> {
    match ty {
        MsgType::PacketIn => decode_packet_in(v, r).map(Message::PacketIn),
        MsgType::PacketOut => decode_packet_out(v, r).map(Message::PacketOut),
        _ => Err(OfError::BadType.into()),
    }
}

/// 1.0 carries only the in_port; 1.3 the table, cookie and an OXM match
/// with the pipeline fields.
fn decode_packet_in(v: Version, mut r: Reader) -> Result<PacketIn, DecodeError> {
    let buffer_id = r.u32()?;
    let total_len = r.u16()?;
    let (reason, table_id, cookie, match_) = if v.is_of10() {
        let in_port = v.read_port(&mut r)?;
        let reason = r.u8()?;
        r.skip(1)?;
        let mut key = FlowKey::default();
        let mut mask = FlowKey::default();
        key.in_port = in_port;
        mask.in_port = u32::MAX;
        (reason, 0, 0, Match::new(key, mask))
    } else {
        let reason = r.u8()?;
        let table_id = r.u8()?;
        let cookie = r.u64()?;
        let m = decode_ofp_match(&mut r)?;
        r.skip(2)?;
        (reason, table_id, cookie, m)
    };
    Ok(PacketIn {
        buffer_id,
        total_len,
        reason,
        table_id,
        cookie,
        match_,
        data: r.rest().to_vec(),
    })
}

/// 1.0 and 1.3 name the input port; 1.5 replaces it with a match that
/// holds it and whatever other pipeline fields the packet starts with.
fn decode_packet_out(v: Version, mut r: Reader) -> Result<PacketOut, DecodeError> {
    let buffer_id = r.u32()?;
    let (in_port, metadata, alen) = if v.is_of15() {
        let alen = usize::from(r.u16()?);
        r.skip(2)?;
        let m = decode_ofp_match(&mut r)?;
        let (in_port, metadata) = split_in_port(m);
        (in_port, metadata, alen)
    } else {
        let in_port = v.read_port(&mut r)?;
        let alen = usize::from(r.u16()?);
        if !v.is_of10() {
            r.skip(6)?;
        }
        (in_port, Match::catch_all(), alen)
    };
    let acts = r.sub(alen)?;
    Ok(PacketOut {
        buffer_id,
        in_port,
        metadata,
        actions: decode_actions(v, acts)?,
        data: r.rest().to_vec(),
    })
}

/// A 1.5 packet-out match split into its input port (the controller's
/// port when absent) and the rest.
fn split_in_port(m: Match) -> (u32, Match) {
    let in_port = if m.mask.in_port == 0 {
        flows::action::port::CONTROLLER
    } else {
        m.key.in_port
    };
    let (mut key, mut mask) = (m.key, m.mask);
    key.in_port = 0;
    mask.in_port = 0;
    (in_port, Match::new(key, mask))
}

/// The 1.5 packet-out match: `metadata` plus the input port.
fn join_in_port(in_port: u32, metadata: &Match) -> Match {
    let (mut key, mut mask) = (metadata.key, metadata.mask);
    key.in_port = in_port;
    mask.in_port = u32::MAX;
    Match::new(key, mask)
}

pub fn encode(w: &mut Writer, v: Version, msg: &Message) -> Result<(), EncodeError> {
    match msg {
        Message::PacketIn(p) => {
            w.u32(p.buffer_id);
            w.u16(p.total_len);
            if v.is_of10() {
                v.write_port(w, p.match_.key.in_port)?;
                w.u8(p.reason);
                w.u8(0);
            } else {
                w.u8(p.reason);
                w.u8(p.table_id);
                w.u64(p.cookie);
                encode_ofp_match(w, &p.match_);
                w.u16(0);
            }
            w.bytes(&p.data);
        }
        Message::PacketOut(p) => {
            w.u32(p.buffer_id);
            let alen_at = if v.is_of15() {
                let at = w.len_placeholder();
                w.zeros(2);
                encode_ofp_match(w, &join_in_port(p.in_port, &p.metadata));
                at
            } else {
                if p.metadata.mask != FlowKey::default() {
                    return Err(v.unsupported("packet-out metadata"));
                }
                v.write_port(w, p.in_port)?;
                let at = w.len_placeholder();
                if !v.is_of10() {
                    w.zeros(6);
                }
                at
            };
            let start = w.len();
            encode_actions(w, v, &p.actions)?;
            w.patch_len_since(alen_at, start);
            w.bytes(&p.data);
        }
        _ => return Err(v.unsupported(msg.name())),
    }
    Ok(())
}
