//! Bundles: BUNDLE_CONTROL and BUNDLE_ADD_MESSAGE. OpenFlow 1.4 and 1.5
//! have them as message types 33 and 34; for 1.3, Open vSwitch (and
//! `ovs-ofctl --bundle`) uses the Open Networking Foundation's extension,
//! the same bodies inside an ONF experimenter message (types 2300, 2301).
//! That is the only difference between versions, and it lives in
//! [`encode`] and in the experimenter dispatch of [`super::hello`].

use super::{MsgType, Version, read_props};
use crate::consts::{HEADER_LEN, ONF_VENDOR_ID};
use crate::error::{DecodeError, EncodeError, OfError};
use crate::message::{BundleAdd, BundleCtrl, Message};
use crate::wire::{Reader, Writer};

/// ONF experimenter types of the 1.3 extension.
pub const ONFT_BUNDLE_CONTROL: u32 = 2300;
pub const ONFT_BUNDLE_ADD_MESSAGE: u32 = 2301;

/// True when the 1.3 extension carries bundles in `v`.
pub fn via_onf(v: Version) -> bool {
    v == Version::Of13
}

pub fn decode(ty: MsgType, _v: Version, mut r: Reader) -> Result<Message, DecodeError> {
    let bundle_id = r.u32()?;
    match ty {
        MsgType::BundleControl => {
            let ctrl_type = r.u16()?;
            let flags = r.u16()?;
            // Properties (only experimenter ones exist) are checked for
            // framing and otherwise ignored.
            read_props(r)?;
            Ok(Message::BundleControl(BundleCtrl {
                bundle_id,
                ctrl_type,
                flags,
            }))
        }
        MsgType::BundleAddMessage => {
            r.skip(2)?;
            let flags = r.u16()?;
            if r.remaining() < HEADER_LEN {
                return Err(OfError::BundleMsgBadLen.into());
            }
            let len = usize::from(r.peek_u16(2)?);
            if len < HEADER_LEN || len > r.remaining() {
                return Err(OfError::BundleMsgBadLen.into());
            }
            let message = r.bytes(len)?.to_vec();
            // Padding and properties may follow the inner message.
            Ok(Message::BundleAddMessage(BundleAdd {
                bundle_id,
                flags,
                message,
            }))
        }
        _ => Err(OfError::BadType.into()),
    }
}

pub fn encode(w: &mut Writer, v: Version, msg: &Message) -> Result<(), EncodeError> {
    let onf = |w: &mut Writer, exp_type: u32| {
        if via_onf(v) {
            w.u32(ONF_VENDOR_ID);
            w.u32(exp_type);
        }
    };
    match msg {
        Message::BundleControl(c) => {
            onf(w, ONFT_BUNDLE_CONTROL);
            w.u32(c.bundle_id);
            w.u16(c.ctrl_type);
            w.u16(c.flags);
        }
        Message::BundleAddMessage(a) => {
            onf(w, ONFT_BUNDLE_ADD_MESSAGE);
            w.u32(a.bundle_id);
            w.u16(0);
            w.u16(a.flags);
            w.bytes(&a.message);
        }
        _ => return Err(v.unsupported(msg.name())),
    }
    Ok(())
}

/// The kind of a 1.3 ONF experimenter message, if it is a bundle message.
pub fn onf_kind(v: Version, exp_type: u32) -> Option<MsgType> {
    match exp_type {
        ONFT_BUNDLE_CONTROL if via_onf(v) => Some(MsgType::BundleControl),
        ONFT_BUNDLE_ADD_MESSAGE if via_onf(v) => Some(MsgType::BundleAddMessage),
        _ => None,
    }
}
