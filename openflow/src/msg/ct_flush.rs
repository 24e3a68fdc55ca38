//! NXT_CT_FLUSH (Nicira subtype 32, OVS 3.1's `ovs-ofctl ct-flush`): flush
//! the connection-tracking entries that match a partial original and/or
//! reply tuple, optionally in one zone. The body is `ip_proto`, 7 zero
//! bytes, then properties: the original tuple (0) and the reply tuple (1),
//! each nesting source (0) and destination (1) addresses (16 bytes, IPv4
//! mapped into IPv6), ports (2, 3), ICMP id (4), type (5) and code (6); and
//! the zone (2).

use super::{put_prop, read_props};
use crate::error::{DecodeError, OfError};
use crate::wire::{Reader, Writer};

const ORIG_TUPLE: u16 = 0;
const REPLY_TUPLE: u16 = 1;
const ZONE_ID: u16 = 2;

const T_SRC: u16 = 0;
const T_DST: u16 = 1;
const T_SRC_PORT: u16 = 2;
const T_DST_PORT: u16 = 3;
const T_ICMP_ID: u16 = 4;
const T_ICMP_TYPE: u16 = 5;
const T_ICMP_CODE: u16 = 6;

/// One tuple of a flush; zero fields were not given.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CtFlushTuple {
    /// IPv6, or IPv4 mapped (`::ffff:a.b.c.d`); all zero: any.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub icmp_id: u16,
    pub icmp_type: u8,
    pub icmp_code: u8,
}

/// An NXT_CT_FLUSH request.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CtFlush {
    /// 0: any protocol.
    pub ip_proto: u8,
    pub orig: CtFlushTuple,
    pub reply: CtFlushTuple,
    /// `None`: every zone (or zone 0 for a complete original tuple).
    pub zone: Option<u16>,
}

fn is_icmp(p: u8) -> bool {
    p == 1 || p == 58
}

fn decode_tuple(mut r: Reader) -> Result<CtFlushTuple, DecodeError> {
    // Nested properties start 8-byte aligned after the 4-byte header.
    r.skip(4.min(r.remaining()))?;
    let mut t = CtFlushTuple::default();
    for (ty, mut p) in read_props(r)? {
        match ty {
            T_SRC | T_DST => {
                let b: [u8; 16] = p
                    .bytes(16)?
                    .try_into()
                    .map_err(|_| OfError::BadPropertyLen)?;
                if ty == T_SRC {
                    t.src = b;
                } else {
                    t.dst = b;
                }
            }
            T_SRC_PORT => t.src_port = p.u16()?,
            T_DST_PORT => t.dst_port = p.u16()?,
            T_ICMP_ID => t.icmp_id = p.u16()?,
            T_ICMP_TYPE => t.icmp_type = p.u8()?,
            T_ICMP_CODE => t.icmp_code = p.u8()?,
            _ => {}
        }
    }
    Ok(t)
}

/// Decodes the body (after the Nicira subtype).
pub fn decode(mut r: Reader) -> Result<CtFlush, DecodeError> {
    let ip_proto = r.u8()?;
    if r.bytes(7)?.iter().any(|b| *b != 0) {
        return Err(OfError::BadLen.into());
    }
    let mut f = CtFlush {
        ip_proto,
        ..CtFlush::default()
    };
    for (ty, mut p) in read_props(r)? {
        match ty {
            ORIG_TUPLE => f.orig = decode_tuple(p)?,
            REPLY_TUPLE => f.reply = decode_tuple(p)?,
            ZONE_ID => f.zone = Some(p.u16()?),
            _ => {}
        }
    }
    Ok(f)
}

/// A 16-bit property value as OVS writes it: padded to 4 bytes.
fn put_u16(w: &mut Writer, ty: u16, v: u16) {
    put_prop(w, ty, |w| {
        w.u16(v);
        w.zeros(2);
    });
}

fn encode_tuple(w: &mut Writer, ty: u16, t: &CtFlushTuple, ip_proto: u8) {
    let icmp = is_icmp(ip_proto);
    let empty =
        t.src == [0; 16] && t.dst == [0; 16] && (icmp || (t.src_port == 0 && t.dst_port == 0));
    if empty && !icmp {
        return;
    }
    put_prop(w, ty, |w| {
        w.zeros(4);
        if t.src != [0; 16] {
            put_prop(w, T_SRC, |w| w.bytes(&t.src));
        }
        if t.dst != [0; 16] {
            put_prop(w, T_DST, |w| w.bytes(&t.dst));
        }
        if icmp {
            put_u16(w, T_ICMP_ID, t.icmp_id);
            put_prop(w, T_ICMP_TYPE, |w| w.u8(t.icmp_type));
            put_prop(w, T_ICMP_CODE, |w| w.u8(t.icmp_code));
        } else {
            if t.src_port != 0 {
                put_u16(w, T_SRC_PORT, t.src_port);
            }
            if t.dst_port != 0 {
                put_u16(w, T_DST_PORT, t.dst_port);
            }
        }
    });
}

/// Writes the body (after the Nicira subtype).
pub fn encode(w: &mut Writer, f: &CtFlush) {
    w.u8(f.ip_proto);
    w.zeros(7);
    encode_tuple(w, ORIG_TUPLE, &f.orig, f.ip_proto);
    encode_tuple(w, REPLY_TUPLE, &f.reply, f.ip_proto);
    if let Some(z) = f.zone {
        put_u16(w, ZONE_ID, z);
    }
}
