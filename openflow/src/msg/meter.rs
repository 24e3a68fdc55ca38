//! Meters: METER_MOD and its bands, the meter instruction (1.3, 1.4) and
//! the meter action (1.5), and the OFPMP_METER, OFPMP_METER_CONFIG and
//! OFPMP_METER_FEATURES multipart bodies. The layouts are the same in
//! every version from 1.3 on; OpenFlow 1.0 has no meters (the type table in
//! [`super`] and the multipart code keep these messages away from it).
//!
//! The one difference between versions is where a flow names its meter:
//! 1.3 and 1.4 use the meter instruction ([`encode_meter_instruction`]),
//! 1.5 the meter action at the head of apply-actions
//! ([`encode_meter_action`]); both decode to `Action::Meter`.

use flows::meter::{BandType, Meter, MeterBand, MeterFlags};

use super::{MsgType, Version, entries};
use crate::error::{DecodeError, EncodeError, OfError};
use crate::message::{
    Message, MeterFeatures, MeterMod, MeterModCommand, MeterStats, MultipartReplyBody,
    MultipartRequestBody,
};
use crate::wire::{Reader, Writer};

/// `OFPMBT_*`.
const OFPMBT_DROP: u16 = 1;
const OFPMBT_DSCP_REMARK: u16 = 2;
const OFPMBT_EXPERIMENTER: u16 = 0xffff;
/// Length of a drop or dscp_remark band.
const BAND_LEN: u16 = 16;
/// `OFPIT_METER`.
const OFPIT_METER: u16 = 6;
/// `OFPAT_METER` (OpenFlow 1.5).
pub const OFPAT_METER: u16 = 29;
/// Length of an ofp_meter_stats before its band stats.
const METER_STATS_LEN: usize = 40;

impl MeterModCommand {
    pub fn wire(self) -> u16 {
        match self {
            MeterModCommand::Add => 0,
            MeterModCommand::Modify => 1,
            MeterModCommand::Delete => 2,
        }
    }

    pub fn from_wire(v: u16) -> Option<MeterModCommand> {
        Some(match v {
            0 => MeterModCommand::Add,
            1 => MeterModCommand::Modify,
            2 => MeterModCommand::Delete,
            _ => return None,
        })
    }
}

pub fn decode(ty: MsgType, _v: Version, mut r: Reader) -> Result<Message, DecodeError> {
    if ty != MsgType::MeterMod {
        return Err(OfError::BadType.into());
    }
    let command = MeterModCommand::from_wire(r.u16()?).ok_or(OfError::BadMeterCommand)?;
    let flags = r.u16()?;
    let id = r.u32()?;
    if command != MeterModCommand::Delete && flags & !MeterFlags::ALL != 0 {
        return Err(OfError::BadMeterFlags.into());
    }
    Ok(Message::MeterMod(MeterMod {
        command,
        meter: Meter {
            id,
            flags: MeterFlags(flags),
            bands: decode_bands(r)?,
        },
    }))
}

pub fn encode(w: &mut Writer, v: Version, msg: &Message) -> Result<(), EncodeError> {
    let Message::MeterMod(m) = msg else {
        return Err(v.unsupported(msg.name()));
    };
    w.u16(m.command.wire());
    w.u16(m.meter.flags.0);
    w.u32(m.meter.id);
    encode_bands(w, &m.meter.bands);
    Ok(())
}

/// Bands up to the end of `r`; a malformed one is OFPMMFC_BAD_BAND.
fn decode_bands(r: Reader) -> Result<Vec<MeterBand>, DecodeError> {
    let mut r = r.reporting(OfError::BadMeterBand);
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = r.peek_u16(2)?;
        if len < BAND_LEN || !len.is_multiple_of(8) {
            return Err(OfError::BadMeterBand.into());
        }
        let mut b = r.sub(usize::from(len))?;
        let ty = b.u16()?;
        b.skip(2)?;
        let rate = b.u32()?;
        let burst_size = b.u32()?;
        let kind = match ty {
            OFPMBT_DROP => BandType::Drop,
            OFPMBT_DSCP_REMARK => BandType::DscpRemark {
                prec_level: b.u8()?,
            },
            OFPMBT_EXPERIMENTER => return Err(OfError::BadMeterBand.into()),
            _ => return Err(OfError::BadMeterBand.into()),
        };
        out.push(MeterBand {
            kind,
            rate,
            burst_size,
        });
    }
    Ok(out)
}

fn encode_bands(w: &mut Writer, bands: &[MeterBand]) {
    for b in bands {
        match b.kind {
            BandType::Drop => w.u16(OFPMBT_DROP),
            BandType::DscpRemark { .. } => w.u16(OFPMBT_DSCP_REMARK),
        }
        w.u16(BAND_LEN);
        w.u32(b.rate);
        w.u32(b.burst_size);
        match b.kind {
            BandType::Drop => w.u32(0),
            BandType::DscpRemark { prec_level } => {
                w.u8(prec_level);
                w.zeros(3);
            }
        }
    }
}

// ------------------------------------------------- instruction and action

/// Where a version writes a flow's meter.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MeterPlacement {
    /// OFPIT_METER, before apply-actions (OpenFlow 1.3, 1.4).
    Instruction,
    /// OFPAT_METER, first in apply-actions (OpenFlow 1.5).
    Action,
}

impl MeterPlacement {
    /// The placement of wire version `wire` (0x06 = OpenFlow 1.5).
    pub fn for_version(wire: u8) -> MeterPlacement {
        if wire >= 0x06 {
            MeterPlacement::Action
        } else {
            MeterPlacement::Instruction
        }
    }
}

/// The meter instruction (OpenFlow 1.3, 1.4).
pub fn encode_meter_instruction(w: &mut Writer, id: u32) {
    w.u16(OFPIT_METER);
    w.u16(8);
    w.u32(id);
}

/// The body of a meter instruction whose TLV length is `len`.
pub fn decode_meter_instruction(len: usize, mut b: Reader) -> Result<u32, DecodeError> {
    if len != 8 {
        return Err(OfError::BadInstructionLen.into());
    }
    b.u32()
}

/// The meter action (OpenFlow 1.5): the 1.5 codec writes it first in its
/// apply-actions, where OpenFlow 1.5 puts the meter.
pub fn encode_meter_action(w: &mut Writer, id: u32) {
    w.u16(OFPAT_METER);
    w.u16(8);
    w.u32(id);
}

/// The body of a 1.5 meter action whose TLV length is `len` (after the
/// 4-byte type and length).
pub fn decode_meter_action(len: usize, mut b: Reader) -> Result<u32, DecodeError> {
    if len != 8 {
        return Err(OfError::BadActionLen.into());
    }
    b.u32()
}

// --------------------------------------------------------------- multipart

/// A meter multipart request body (`mtype` is OFPMP_METER, _CONFIG or
/// _FEATURES).
pub fn decode_request(mtype: u16, mut r: Reader) -> Result<MultipartRequestBody, DecodeError> {
    use crate::consts::mp;
    Ok(match mtype {
        mp::METER => MultipartRequestBody::Meter { meter_id: r.u32()? },
        mp::METER_CONFIG => MultipartRequestBody::MeterConfig { meter_id: r.u32()? },
        mp::METER_FEATURES => MultipartRequestBody::MeterFeatures,
        _ => return Err(OfError::BadMultipart.into()),
    })
}

/// A meter multipart reply body.
pub fn decode_reply(mtype: u16, r: Reader) -> Result<MultipartReplyBody, DecodeError> {
    use crate::consts::mp;
    Ok(match mtype {
        mp::METER => MultipartReplyBody::Meter(decode_meter_stats(r)?),
        mp::METER_CONFIG => MultipartReplyBody::MeterConfig(decode_meter_configs(r)?),
        mp::METER_FEATURES => MultipartReplyBody::MeterFeatures(decode_meter_features(r)?),
        _ => return Err(OfError::BadMultipart.into()),
    })
}

fn decode_meter_stats(r: Reader) -> Result<Vec<MeterStats>, DecodeError> {
    let mut out = Vec::new();
    let mut r = r;
    while !r.is_empty() {
        // ofp_meter_stats: the length is after the 4-byte meter id.
        let len = usize::from(r.peek_u16(4)?);
        if len < METER_STATS_LEN {
            return Err(OfError::BadLen.into());
        }
        let mut b = r.sub(len)?;
        let meter_id = b.u32()?;
        b.skip(8)?;
        let flow_count = b.u32()?;
        let packet_in_count = b.u64()?;
        let byte_in_count = b.u64()?;
        let duration_sec = b.u32()?;
        let duration_nsec = b.u32()?;
        let mut band_stats = Vec::new();
        while !b.is_empty() {
            band_stats.push((b.u64()?, b.u64()?));
        }
        out.push(MeterStats {
            meter_id,
            flow_count,
            packet_in_count,
            byte_in_count,
            duration_sec,
            duration_nsec,
            band_stats,
        });
    }
    Ok(out)
}

pub fn encode_meter_stats(w: &mut Writer, m: &MeterStats) {
    let len = METER_STATS_LEN + 16 * m.band_stats.len();
    w.u32(m.meter_id);
    w.u16(u16::try_from(len).unwrap_or(u16::MAX));
    w.zeros(6);
    w.u32(m.flow_count);
    w.u64(m.packet_in_count);
    w.u64(m.byte_in_count);
    w.u32(m.duration_sec);
    w.u32(m.duration_nsec);
    for (p, b) in &m.band_stats {
        w.u64(*p);
        w.u64(*b);
    }
}

fn decode_meter_configs(r: Reader) -> Result<Vec<Meter>, DecodeError> {
    let mut out = Vec::new();
    for mut b in entries(r, 8)? {
        b.skip(2)?;
        let flags = b.u16()?;
        let id = b.u32()?;
        out.push(Meter {
            id,
            flags: MeterFlags(flags),
            bands: decode_bands(b)?,
        });
    }
    Ok(out)
}

pub fn encode_meter_config(w: &mut Writer, m: &Meter) {
    let start = w.len();
    let at = w.len_placeholder();
    w.u16(m.flags.0);
    w.u32(m.id);
    encode_bands(w, &m.bands);
    w.patch_len_since(at, start);
}

fn decode_meter_features(mut r: Reader) -> Result<MeterFeatures, DecodeError> {
    let f = MeterFeatures {
        max_meter: r.u32()?,
        band_types: r.u32()?,
        capabilities: r.u32()?,
        max_bands: r.u8()?,
        max_color: r.u8()?,
    };
    Ok(f)
}

pub fn encode_meter_features(w: &mut Writer, f: &MeterFeatures) {
    w.u32(f.max_meter);
    w.u32(f.band_types);
    w.u32(f.capabilities);
    w.u8(f.max_bands);
    w.u8(f.max_color);
    w.zeros(2);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode};
    use crate::message::{MultipartReply, MultipartRequest};

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const V13: u8 = 0x04;

    fn round_trip(m: &Message) -> Vec<u8> {
        let b = encode(m, V13, 2).unwrap();
        assert_eq!(&decode(&b).unwrap().1, m);
        b
    }

    // Each golden message below was checked with stock `ovs-ofctl
    // ofp-print` (Open vSwitch 3.1), whose output is quoted.

    #[test]
    fn meter_mod_add_matches_ovs_bytes() {
        // OFPT_METER_MOD (OF1.3) (xid=0x2): ADD meter=1 pktps burst stats
        // bands=
        // type=drop rate=1000 burst_size=100
        let m = Message::MeterMod(MeterMod {
            command: MeterModCommand::Add,
            meter: Meter {
                id: 1,
                flags: MeterFlags(0xe),
                bands: vec![MeterBand::drop(1000, 100)],
            },
        });
        assert_eq!(
            round_trip(&m),
            hex("041d002000000002 0000000e00000001 00010010000003e8 0000006400000000")
        );
    }

    #[test]
    fn meter_mod_delete_and_two_kbps_bands_round_trip() {
        round_trip(&Message::MeterMod(MeterMod {
            command: MeterModCommand::Delete,
            meter: Meter {
                id: flows::meter::METER_ALL,
                flags: MeterFlags(0),
                bands: vec![],
            },
        }));
        round_trip(&Message::MeterMod(MeterMod {
            command: MeterModCommand::Modify,
            meter: Meter {
                id: 3,
                flags: MeterFlags(MeterFlags::KBPS | MeterFlags::STATS),
                bands: vec![
                    MeterBand::drop(200, 0),
                    MeterBand {
                        kind: BandType::DscpRemark { prec_level: 1 },
                        rate: 400,
                        burst_size: 0,
                    },
                ],
            },
        }));
    }

    #[test]
    fn bad_meter_flags_and_bands_are_refused_with_meter_mod_errors() {
        // ADD with an undefined flag bit.
        let b = hex("041d001000000002 0000001000000001");
        assert_eq!(decode(&b).unwrap_err().of_error(), OfError::BadMeterFlags);
        // A band of unknown type 5.
        let b = hex("041d002000000002 0000000100000001 0005001000000001 0000000000000000");
        assert_eq!(decode(&b).unwrap_err().of_error(), OfError::BadMeterBand);
        // A truncated band.
        let b = hex("041d001800000002 0000000100000001 0001001000000001");
        assert_eq!(decode(&b).unwrap_err().of_error(), OfError::BadMeterBand);
        // Unknown command.
        let b = hex("041d001000000002 0007000100000001");
        assert_eq!(decode(&b).unwrap_err().of_error(), OfError::BadMeterCommand);
    }

    #[test]
    fn meter_multipart_requests_and_replies_round_trip() {
        for body in [
            MultipartRequestBody::Meter { meter_id: 1 },
            MultipartRequestBody::MeterConfig {
                meter_id: flows::meter::METER_ALL,
            },
            MultipartRequestBody::MeterFeatures,
        ] {
            round_trip(&Message::MultipartRequest(MultipartRequest {
                flags: 0,
                body,
            }));
        }
        for body in [
            MultipartReplyBody::Meter(vec![MeterStats {
                meter_id: 1,
                flow_count: 2,
                packet_in_count: 100,
                byte_in_count: 6400,
                duration_sec: 3,
                duration_nsec: 500_000_000,
                band_stats: vec![(90, 5760), (1, 64)],
            }]),
            MultipartReplyBody::MeterConfig(vec![Meter {
                id: 2,
                flags: MeterFlags(MeterFlags::KBPS),
                bands: vec![MeterBand::drop(5000, 0)],
            }]),
            MultipartReplyBody::MeterFeatures(MeterFeatures {
                max_meter: 65536,
                band_types: 2,
                capabilities: 0xf,
                max_bands: 8,
                max_color: 0,
            }),
        ] {
            round_trip(&Message::MultipartReply(MultipartReply { flags: 0, body }));
        }
    }

    #[test]
    fn meter_features_reply_matches_ovs_bytes() {
        // OFPST_METER_FEATURES reply (OF1.3) (xid=0x2):
        // max_meter:262144 max_bands:8 max_color:0
        // band_types: drop
        // capabilities: kbps pktps burst stats
        let m = Message::MultipartReply(MultipartReply {
            flags: 0,
            body: MultipartReplyBody::MeterFeatures(MeterFeatures {
                max_meter: 262144,
                band_types: 2,
                capabilities: 0xf,
                max_bands: 8,
                max_color: 0,
            }),
        });
        assert_eq!(
            round_trip(&m),
            hex("0413002000000002 000b000000000000 0004000000000002 0000000f08000000")
        );
    }

    #[test]
    fn meter_stats_reply_matches_ovs_bytes() {
        // OFPST_METER reply (OF1.3) (xid=0x2):
        // meter:1 flow_count:1 packet_in_count:10 byte_in_count:640 duration:2.500s bands:
        // 0: packet_count:4 byte_count:256
        let m = Message::MultipartReply(MultipartReply {
            flags: 0,
            body: MultipartReplyBody::Meter(vec![MeterStats {
                meter_id: 1,
                flow_count: 1,
                packet_in_count: 10,
                byte_in_count: 640,
                duration_sec: 2,
                duration_nsec: 500_000_000,
                band_stats: vec![(4, 256)],
            }]),
        });
        assert_eq!(
            round_trip(&m),
            hex(concat!(
                "0413004800000002 0009000000000000",
                "0000000100380000 0000000000000001",
                "000000000000000a 0000000000000280",
                "000000021dcd6500",
                "0000000000000004 0000000000000100"
            ))
        );
    }

    #[test]
    fn meter_instruction_comes_first_and_the_1_5_action_is_eight_bytes() {
        use flows::Action;
        let acts = vec![
            Action::Meter(7),
            Action::Output {
                port: 2,
                max_len: 0,
            },
        ];
        let mut w = Writer::new();
        crate::actions::encode_instructions(&mut w, &acts).unwrap();
        assert_eq!(&w.buf[..8], &hex("0006000800000007")[..]);
        assert_eq!(
            crate::actions::decode_instructions(Reader::new(&w.buf)).unwrap(),
            acts
        );
        let mut w = Writer::new();
        encode_meter_action(&mut w, 7);
        assert_eq!(w.buf, hex("001d000800000007"));
        assert_eq!(decode_meter_action(8, Reader::new(&w.buf[4..])).unwrap(), 7);
        assert!(decode_meter_action(16, Reader::new(&w.buf[4..])).is_err());
        // In 1.5 the same flow carries the meter as the first action of
        // apply-actions: 8-byte instruction header, meter, output.
        let mut w = Writer::new();
        crate::actions::encode_instructions_with(&mut w, &acts, MeterPlacement::for_version(6))
            .unwrap();
        assert_eq!(&w.buf[..16], &hex("0004002000000000 001d000800000007")[..]);
        assert_eq!(MeterPlacement::for_version(4), MeterPlacement::Instruction);
    }
}
