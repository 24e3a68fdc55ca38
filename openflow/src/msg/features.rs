//! Switch features and configuration: FEATURES_REQUEST/REPLY,
//! GET_CONFIG_REQUEST/REPLY and SET_CONFIG.

use super::{MsgType, Version, port};
use crate::error::{DecodeError, EncodeError, OfError};
use crate::message::{Features, Message, SwitchConfig};
use crate::wire::{Reader, Writer};

/// OpenFlow 1.0 tolerates trailing bytes on these bodies; 1.3 refuses them.
fn done(v: Version, r: &Reader) -> Result<(), DecodeError> {
    if v.is_of10() { Ok(()) } else { r.done() }
}

pub fn decode(ty: MsgType, v: Version, mut r: Reader) -> Result<Message, DecodeError> {
    Ok(match ty {
        MsgType::FeaturesRequest => {
            done(v, &r)?;
            Message::FeaturesRequest
        }
        MsgType::FeaturesReply => Message::FeaturesReply(decode_features(v, r)?),
        MsgType::GetConfigRequest => {
            done(v, &r)?;
            Message::GetConfigRequest
        }
        MsgType::GetConfigReply | MsgType::SetConfig => {
            let c = SwitchConfig {
                flags: r.u16()?,
                miss_send_len: r.u16()?,
            };
            done(v, &r)?;
            if ty == MsgType::SetConfig {
                Message::SetConfig(c)
            } else {
                Message::GetConfigReply(c)
            }
        }
        _ => return Err(OfError::BadType.into()),
    })
}

/// 1.0 ends with the supported-actions bitmap and the ports; 1.3 has an
/// auxiliary id instead and sends ports in PORT_DESC.
fn decode_features(v: Version, mut r: Reader) -> Result<Features, DecodeError> {
    let datapath_id = r.u64()?;
    let n_buffers = r.u32()?;
    let n_tables = r.u8()?;
    let mut f = Features {
        datapath_id,
        n_buffers,
        n_tables,
        ..Features::default()
    };
    if v.is_of10() {
        r.skip(3)?;
        f.capabilities = r.u32()?;
        f.actions = r.u32()?;
        while !r.is_empty() {
            f.ports.push(port::decode_port_desc(v, &mut r)?);
        }
    } else {
        f.auxiliary_id = r.u8()?;
        r.skip(2)?;
        f.capabilities = r.u32()?;
        r.skip(4)?;
    }
    Ok(f)
}

pub fn encode(w: &mut Writer, v: Version, msg: &Message) -> Result<(), EncodeError> {
    match msg {
        Message::FeaturesRequest | Message::GetConfigRequest => {}
        Message::FeaturesReply(f) => {
            w.u64(f.datapath_id);
            w.u32(f.n_buffers);
            w.u8(f.n_tables);
            if v.is_of10() {
                w.zeros(3);
                w.u32(f.capabilities);
                w.u32(f.actions);
                for p in &f.ports {
                    port::encode_port_desc(w, v, p)?;
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
        _ => return Err(v.unsupported(msg.name())),
    }
    Ok(())
}
