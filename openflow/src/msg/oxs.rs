//! OXS, OpenFlow 1.5's flow statistics (`ofp_stats`): a 4-byte header
//! (reserved, length) and TLVs of class OFPXSC_OPENFLOW_BASIC, padded to 8
//! bytes. Flow-removed, flow-desc and aggregate replies carry them.

use crate::error::{DecodeError, OfError};
use crate::wire::{Reader, Writer};

const OXS_CLASS: u16 = 0x8002;
const DURATION: u8 = 0;
const IDLE_TIME: u8 = 1;
const FLOW_COUNT: u8 = 3;
const PACKET_COUNT: u8 = 4;
const BYTE_COUNT: u8 = 5;

/// The statistics this crate reads and writes.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Stats {
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub packet_count: u64,
    pub byte_count: u64,
    /// Aggregate replies only.
    pub flow_count: Option<u32>,
}

/// Reads an `ofp_stats` with its padding. Statistics this crate has no
/// field for (idle time, experimenter ones) are skipped.
pub fn decode(r: &mut Reader) -> Result<Stats, DecodeError> {
    r.within(OfError::BadLen, |r| {
        r.skip(2)?;
        let len = usize::from(r.u16()?);
        if len < 4 {
            return Err(OfError::BadLen.into());
        }
        let mut b = r.sub(len - 4)?;
        r.skip((len.next_multiple_of(8) - len).min(r.remaining()))?;
        let mut st = Stats::default();
        while !b.is_empty() {
            let class = b.u16()?;
            let field = b.u8()? >> 1;
            let n = usize::from(b.u8()?);
            let mut v = b.sub(n)?;
            if class != OXS_CLASS {
                continue;
            }
            match (field, n) {
                (DURATION, 8) => {
                    st.duration_sec = v.u32()?;
                    st.duration_nsec = v.u32()?;
                }
                (FLOW_COUNT, 4) => st.flow_count = Some(v.u32()?),
                (PACKET_COUNT, 8) => st.packet_count = v.u64()?,
                (BYTE_COUNT, 8) => st.byte_count = v.u64()?,
                (IDLE_TIME, 8) => {}
                (DURATION | FLOW_COUNT | PACKET_COUNT | BYTE_COUNT | IDLE_TIME, _) => {
                    return Err(OfError::BadLen.into());
                }
                _ => {}
            }
        }
        Ok(st)
    })
}

fn tlv(w: &mut Writer, field: u8, len: u8) {
    w.u16(OXS_CLASS);
    w.u8(field << 1);
    w.u8(len);
}

/// Writes an `ofp_stats`: the duration, packet and byte counts, and the
/// flow count when present (aggregates), padded to 8 bytes.
pub fn encode(w: &mut Writer, st: &Stats) {
    let start = w.len();
    w.u16(0);
    let at = w.len_placeholder();
    if let Some(n) = st.flow_count {
        tlv(w, FLOW_COUNT, 4);
        w.u32(n);
    } else {
        tlv(w, DURATION, 8);
        w.u32(st.duration_sec);
        w.u32(st.duration_nsec);
    }
    tlv(w, PACKET_COUNT, 8);
    w.u64(st.packet_count);
    tlv(w, BYTE_COUNT, 8);
    w.u64(st.byte_count);
    w.patch_len_since(at, start);
    let n = w.len() - start;
    w.zeros(n.next_multiple_of(8) - n);
}
