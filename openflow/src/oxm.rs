//! OXM (OpenFlow 1.3) and NXM (Nicira) match fields, and the OpenFlow 1.3
//! `ofp_match` they live in.
//!
//! ovs-ofctl sends Nicira fields (registers, `nw_ttl`, `ip_frag`) as NXM
//! class 0x0001 entries inside OXM matches and `tcp_flags` as an ONF
//! experimenter OXM; all of those are accepted here.

use flows::Field;
use flows::Match;
use flows::key::{FlowKey, VLAN_CFI, ethertype, ipproto};

use crate::consts::{OFPVID_PRESENT, ONF_VENDOR_ID, port_from_10};
use crate::error::{DecodeError, OfError};
use crate::wire::{Reader, Writer};

const OXM_CLASS: u16 = 0x8000;
const NXM0: u16 = 0x0000;
const NXM1: u16 = 0x0001;
const EXP_CLASS: u16 = 0xffff;

/// A match field as the wire names it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum OxmField {
    InPort,
    /// NXM_OF_IN_PORT: 16-bit OpenFlow 1.0 port number.
    InPort16,
    Metadata,
    Reg(u8),
    EthDst,
    EthSrc,
    EthType,
    VlanVid,
    VlanPcp,
    /// NXM_OF_VLAN_TCI (OVS CFI convention).
    VlanTci,
    IpDscp,
    /// NXM_OF_IP_TOS: the TOS byte's DSCP bits in place.
    NwTos,
    IpEcn,
    IpProto,
    Ipv4Src,
    Ipv4Dst,
    TcpSrc,
    TcpDst,
    UdpSrc,
    UdpDst,
    SctpSrc,
    SctpDst,
    Icmpv4Type,
    Icmpv4Code,
    ArpOp,
    ArpSpa,
    ArpTpa,
    ArpSha,
    ArpTha,
    Ipv6Src,
    Ipv6Dst,
    Ipv6Flabel,
    Icmpv6Type,
    Icmpv6Code,
    NdTarget,
    NdSll,
    NdTll,
    TcpFlags,
    IpTtl,
    IpFrag,
}

use OxmField as F;

/// One wire id: (wire field, the flows field it carries, class, field
/// number, payload width in bytes, experimenter id). Where a flows field
/// has several wire ids, the first row is the one this crate writes.
type Entry = (OxmField, Field, u16, u8, u8, Option<u32>);

const TABLE: &[Entry] = &[
    (F::InPort, Field::InPort, OXM_CLASS, 0, 4, None),
    (F::Metadata, Field::Metadata, OXM_CLASS, 2, 8, None),
    (F::EthDst, Field::DlDst, OXM_CLASS, 3, 6, None),
    (F::EthSrc, Field::DlSrc, OXM_CLASS, 4, 6, None),
    (F::EthType, Field::DlType, OXM_CLASS, 5, 2, None),
    (F::VlanVid, Field::VlanVid, OXM_CLASS, 6, 2, None),
    (F::VlanPcp, Field::DlVlanPcp, OXM_CLASS, 7, 1, None),
    (F::IpDscp, Field::IpDscp, OXM_CLASS, 8, 1, None),
    (F::IpEcn, Field::NwEcn, OXM_CLASS, 9, 1, None),
    (F::IpProto, Field::NwProto, OXM_CLASS, 10, 1, None),
    (F::Ipv4Src, Field::NwSrc, OXM_CLASS, 11, 4, None),
    (F::Ipv4Dst, Field::NwDst, OXM_CLASS, 12, 4, None),
    (F::TcpSrc, Field::TpSrc, OXM_CLASS, 13, 2, None),
    (F::TcpDst, Field::TpDst, OXM_CLASS, 14, 2, None),
    (F::UdpSrc, Field::TpSrc, OXM_CLASS, 15, 2, None),
    (F::UdpDst, Field::TpDst, OXM_CLASS, 16, 2, None),
    (F::SctpSrc, Field::TpSrc, OXM_CLASS, 17, 2, None),
    (F::SctpDst, Field::TpDst, OXM_CLASS, 18, 2, None),
    (F::Icmpv4Type, Field::IcmpType, OXM_CLASS, 19, 1, None),
    (F::Icmpv4Code, Field::IcmpCode, OXM_CLASS, 20, 1, None),
    (F::ArpOp, Field::ArpOp, OXM_CLASS, 21, 2, None),
    (F::ArpSpa, Field::ArpSpa, OXM_CLASS, 22, 4, None),
    (F::ArpTpa, Field::ArpTpa, OXM_CLASS, 23, 4, None),
    (F::ArpSha, Field::ArpSha, OXM_CLASS, 24, 6, None),
    (F::ArpTha, Field::ArpTha, OXM_CLASS, 25, 6, None),
    (F::Ipv6Src, Field::Ipv6Src, OXM_CLASS, 26, 16, None),
    (F::Ipv6Dst, Field::Ipv6Dst, OXM_CLASS, 27, 16, None),
    (F::Ipv6Flabel, Field::Ipv6Label, OXM_CLASS, 28, 4, None),
    (F::Icmpv6Type, Field::IcmpType, OXM_CLASS, 29, 1, None),
    (F::Icmpv6Code, Field::IcmpCode, OXM_CLASS, 30, 1, None),
    (F::NdTarget, Field::NdTarget, OXM_CLASS, 31, 16, None),
    (F::NdSll, Field::NdSll, OXM_CLASS, 32, 6, None),
    (F::NdTll, Field::NdTll, OXM_CLASS, 33, 6, None),
    (
        F::TcpFlags,
        Field::TcpFlags,
        EXP_CLASS,
        42,
        2,
        Some(ONF_VENDOR_ID),
    ),
    // OpenFlow 1.5 made tcp_flags a standard OXM (ovs-ofctl -O OpenFlow15
    // sends this form); read only, the ONF form above is what is written.
    (F::TcpFlags, Field::TcpFlags, OXM_CLASS, 42, 2, None),
    // NXM_OF_*
    (F::InPort16, Field::InPort, NXM0, 0, 2, None),
    (F::EthDst, Field::DlDst, NXM0, 1, 6, None),
    (F::EthSrc, Field::DlSrc, NXM0, 2, 6, None),
    (F::EthType, Field::DlType, NXM0, 3, 2, None),
    (F::VlanTci, Field::VlanTci, NXM0, 4, 2, None),
    (F::NwTos, Field::NwTos, NXM0, 5, 1, None),
    (F::IpProto, Field::NwProto, NXM0, 6, 1, None),
    (F::Ipv4Src, Field::NwSrc, NXM0, 7, 4, None),
    (F::Ipv4Dst, Field::NwDst, NXM0, 8, 4, None),
    (F::TcpSrc, Field::TpSrc, NXM0, 9, 2, None),
    (F::TcpDst, Field::TpDst, NXM0, 10, 2, None),
    (F::UdpSrc, Field::TpSrc, NXM0, 11, 2, None),
    (F::UdpDst, Field::TpDst, NXM0, 12, 2, None),
    (F::Icmpv4Type, Field::IcmpType, NXM0, 13, 1, None),
    (F::Icmpv4Code, Field::IcmpCode, NXM0, 14, 1, None),
    (F::ArpOp, Field::ArpOp, NXM0, 15, 2, None),
    (F::ArpSpa, Field::ArpSpa, NXM0, 16, 4, None),
    (F::ArpTpa, Field::ArpTpa, NXM0, 17, 4, None),
    // NXM_NX_*
    (F::Reg(0), Field::Reg(0), NXM1, 0, 4, None),
    (F::Reg(1), Field::Reg(1), NXM1, 1, 4, None),
    (F::Reg(2), Field::Reg(2), NXM1, 2, 4, None),
    (F::Reg(3), Field::Reg(3), NXM1, 3, 4, None),
    (F::Reg(4), Field::Reg(4), NXM1, 4, 4, None),
    (F::Reg(5), Field::Reg(5), NXM1, 5, 4, None),
    (F::Reg(6), Field::Reg(6), NXM1, 6, 4, None),
    (F::Reg(7), Field::Reg(7), NXM1, 7, 4, None),
    (F::ArpSha, Field::ArpSha, NXM1, 17, 6, None),
    (F::ArpTha, Field::ArpTha, NXM1, 18, 6, None),
    (F::Ipv6Src, Field::Ipv6Src, NXM1, 19, 16, None),
    (F::Ipv6Dst, Field::Ipv6Dst, NXM1, 20, 16, None),
    (F::Icmpv6Type, Field::IcmpType, NXM1, 21, 1, None),
    (F::Icmpv6Code, Field::IcmpCode, NXM1, 22, 1, None),
    (F::NdTarget, Field::NdTarget, NXM1, 23, 16, None),
    (F::NdSll, Field::NdSll, NXM1, 24, 6, None),
    (F::NdTll, Field::NdTll, NXM1, 25, 6, None),
    (F::IpFrag, Field::NwFrag, NXM1, 26, 1, None),
    (F::Ipv6Flabel, Field::Ipv6Label, NXM1, 27, 4, None),
    (F::IpEcn, Field::NwEcn, NXM1, 28, 1, None),
    (F::IpTtl, Field::NwTtl, NXM1, 29, 1, None),
    (F::TcpFlags, Field::TcpFlags, NXM1, 34, 2, None),
];

/// A field's wire header: class, field number, payload width, experimenter.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OxmHeader {
    pub class: u16,
    pub field: u8,
    pub width: u8,
    pub experimenter: Option<u32>,
}

impl OxmHeader {
    /// The 32-bit header word (NXM/OXM header) with or without mask.
    pub fn word(&self, has_mask: bool) -> u32 {
        let mut len = u32::from(self.width) * if has_mask { 2 } else { 1 };
        if self.experimenter.is_some() {
            len += 4;
        }
        (u32::from(self.class) << 16)
            | (u32::from(self.field) << 9)
            | (u32::from(has_mask) << 8)
            | len
    }
}

fn entry_header(e: &Entry) -> OxmHeader {
    OxmHeader {
        class: e.2,
        field: e.3,
        width: e.4,
        experimenter: e.5,
    }
}

/// The header ovs-ofctl uses for `f` in OXM matches and set_field
/// (OXM when one exists, else NXM/ONF).
pub fn oxm_header(f: OxmField) -> OxmHeader {
    TABLE
        .iter()
        .find(|e| e.0 == f)
        .map(entry_header)
        .unwrap_or(OxmHeader {
            class: OXM_CLASS,
            field: 0,
            width: 4,
            experimenter: None,
        })
}

/// The header used in Nicira load/move actions (NXM first, then OXM).
pub fn nxm_header(f: OxmField) -> OxmHeader {
    TABLE
        .iter()
        .find(|e| e.0 == f && e.2 != OXM_CLASS && e.5.is_none())
        .or_else(|| TABLE.iter().find(|e| e.0 == f && e.5.is_none()))
        .map(entry_header)
        .unwrap_or_else(|| oxm_header(f))
}

/// Looks a wire header word up; for experimenter classes `exp` is the id.
pub fn lookup(class: u16, field: u8, exp: Option<u32>) -> Option<(OxmField, u8)> {
    TABLE
        .iter()
        .find(|e| e.2 == class && e.3 == field && e.5 == exp)
        .map(|e| (e.0, e.4))
}

/// Meaningful bits of a field's value.
pub fn full_mask(f: OxmField, width: u8) -> u128 {
    match f {
        F::VlanVid => 0x1fff,
        F::VlanPcp => 0x7,
        F::IpDscp => 0x3f,
        F::IpEcn | F::IpFrag => 0x3,
        F::NwTos => 0xfc,
        F::Ipv6Flabel => 0xf_ffff,
        F::TcpFlags => 0xfff,
        _ => width_mask(width),
    }
}

fn width_mask(width: u8) -> u128 {
    if width >= 16 {
        u128::MAX
    } else {
        (1u128 << (u32::from(width) * 8)) - 1
    }
}

/// Right-aligned big-endian value of `bytes`.
pub fn be_to_u128(bytes: &[u8]) -> u128 {
    bytes
        .iter()
        .take(16)
        .fold(0u128, |a, b| (a << 8) | u128::from(*b))
}

/// Writes the low `width` bytes of `v` big-endian.
pub fn write_be(w: &mut Writer, v: u128, width: u8) {
    let b = v.to_be_bytes();
    let n = usize::from(width).min(16);
    w.bytes(&b[16 - n..]);
}

/// The flows field a wire field carries.
pub fn to_flows_field(f: OxmField) -> Field {
    TABLE
        .iter()
        .find(|e| e.0 == f)
        .map_or(Field::InPort, |e| e.1)
}

/// Converts a flows-level value to the wire field's value.
pub type ValueConv = fn(u128) -> u128;

/// The wire field written for a flows field, plus a value conversion for
/// fields whose flows representation differs (`dl_vlan` travels as
/// `vlan_vid` with the present bit).
pub fn from_flows_field(f: Field) -> Option<(OxmField, ValueConv)> {
    fn id(v: u128) -> u128 {
        v
    }
    fn vid_present(v: u128) -> u128 {
        v | u128::from(OFPVID_PRESENT)
    }
    if f == Field::DlVlan {
        return Some((F::VlanVid, vid_present));
    }
    TABLE
        .iter()
        .find(|e| e.1 == f)
        .map(|e| (e.0, id as ValueConv))
}

/// Writes `(value, mask)` of wire field `f` into a key/mask pair, through
/// flows's own field accessors. Only two wire encodings need more than
/// the field they name: NXM's 16-bit in_port and OXM's "no VLAN tag".
fn apply(f: OxmField, v: u128, m: u128, key: &mut FlowKey, mask: &mut FlowKey) {
    match f {
        F::InPort16 => {
            Field::InPort.set(key, u128::from(port_from_10((v & m) as u16)));
            Field::InPort.set(mask, if m == 0 { 0 } else { u128::from(u32::MAX) });
        }
        F::VlanVid if v & m == 0 && m & u128::from(OFPVID_PRESENT) != 0 && m & 0xfff == 0xfff => {
            // OFPVID_NONE: no tag at all.
            Field::VlanTci.set(key, 0);
            Field::VlanTci.set(mask, 0xffff);
        }
        _ => {
            let field = to_flows_field(f);
            field.set_masked(key, v, m);
            field.set(mask, m);
        }
    }
}

fn is_ip(m: &Match) -> bool {
    m.mask.dl_type == 0xffff
        && (m.key.dl_type == ethertype::IPV4 || m.key.dl_type == ethertype::IPV6)
}

fn dl_is(m: &Match, t: u16) -> bool {
    m.mask.dl_type == 0xffff && m.key.dl_type == t
}

fn proto_is(m: &Match, p: u8) -> bool {
    is_ip(m) && m.mask.nw_proto == 0xff && m.key.nw_proto == p
}

fn icmp6_type_is(m: &Match, types: &[u16]) -> bool {
    proto_is(m, ipproto::ICMPV6)
        && dl_is(m, ethertype::IPV6)
        && m.mask.tp_src & 0xff == 0xff
        && types.contains(&m.key.tp_src)
}

/// True when the prerequisites of `f` hold in `m` (OpenFlow 1.3 table 12).
pub fn prereq_ok(f: OxmField, m: &Match) -> bool {
    match f {
        F::VlanPcp => m.mask.vlan_tci & VLAN_CFI != 0 && m.key.vlan_tci & VLAN_CFI != 0,
        F::IpDscp | F::NwTos | F::IpEcn | F::IpProto | F::IpTtl | F::IpFrag => is_ip(m),
        F::Ipv4Src | F::Ipv4Dst => dl_is(m, ethertype::IPV4),
        F::TcpSrc | F::TcpDst | F::TcpFlags => proto_is(m, ipproto::TCP),
        F::UdpSrc | F::UdpDst => proto_is(m, ipproto::UDP),
        F::SctpSrc | F::SctpDst => proto_is(m, ipproto::SCTP),
        F::Icmpv4Type | F::Icmpv4Code => dl_is(m, ethertype::IPV4) && proto_is(m, ipproto::ICMP),
        F::ArpOp | F::ArpSpa | F::ArpTpa | F::ArpSha | F::ArpTha => dl_is(m, ethertype::ARP),
        F::Ipv6Src | F::Ipv6Dst | F::Ipv6Flabel => dl_is(m, ethertype::IPV6),
        F::Icmpv6Type | F::Icmpv6Code => dl_is(m, ethertype::IPV6) && proto_is(m, ipproto::ICMPV6),
        F::NdTarget => icmp6_type_is(m, &[135, 136]),
        F::NdSll => icmp6_type_is(m, &[135]),
        F::NdTll => icmp6_type_is(m, &[136]),
        _ => true,
    }
}

/// Reads one OXM/NXM TLV: (field, value, mask, header).
pub fn read_tlv(r: &mut Reader) -> Result<(OxmField, u128, u128), DecodeError> {
    r.within(OfError::BadMatchLen, read_tlv_body)
}

fn read_tlv_body(r: &mut Reader) -> Result<(OxmField, u128, u128), DecodeError> {
    let word = r.u32()?;
    let class = (word >> 16) as u16;
    let field = ((word >> 9) & 0x7f) as u8;
    let has_mask = word & 0x100 != 0;
    let len = usize::from((word & 0xff) as u8);
    let mut body = r.sub(len)?;
    let exp = if class == EXP_CLASS {
        Some(body.u32()?)
    } else {
        None
    };
    let (f, width) = lookup(class, field, exp).ok_or(OfError::BadField)?;
    let want = usize::from(width) * if has_mask { 2 } else { 1 };
    if body.remaining() != want {
        return Err(OfError::BadMatchLen.into());
    }
    let v = be_to_u128(body.bytes(usize::from(width))?);
    let m = if has_mask {
        be_to_u128(body.bytes(usize::from(width))?)
    } else {
        full_mask(f, width)
    };
    Ok((f, v, m))
}

/// OXM class OFPXMC_PACKET_REGS (OpenFlow 1.5): 64-bit registers, of
/// which register N is Open vSwitch's `xregN`, i.e. `reg(2N)` in the high
/// half and `reg(2N+1)` in the low half.
const PACKET_REGS_CLASS: u16 = 0x8001;

/// Reads one packet-register TLV as the (up to two) 32-bit registers it
/// sets; a half whose mask is zero is left out.
fn read_packet_reg(r: &mut Reader) -> Result<Vec<(OxmField, u128, u128)>, DecodeError> {
    r.within(OfError::BadMatchLen, |r| {
        let word = r.u32()?;
        let n = ((word >> 9) & 0x7f) as u8;
        let has_mask = word & 0x100 != 0;
        let len = usize::from((word & 0xff) as u8);
        if len != if has_mask { 16 } else { 8 } {
            return Err(OfError::BadMatchLen.into());
        }
        let v = r.u64()?;
        let m = if has_mask { r.u64()? } else { u64::MAX };
        let mut out = Vec::new();
        for (i, shift) in [(0u8, 32u32), (1, 0)] {
            let half_m = u128::from((m >> shift) as u32);
            if half_m == 0 {
                continue;
            }
            let reg = n
                .checked_mul(2)
                .and_then(|b| b.checked_add(i))
                .ok_or(OfError::BadField)?;
            let f = F::Reg(reg);
            if !TABLE.iter().any(|e| e.0 == f) {
                return Err(OfError::BadField.into());
            }
            out.push((f, u128::from((v >> shift) as u32), half_m));
        }
        Ok(out)
    })
}

/// Writes one TLV with header `h`; the mask is omitted when it is full.
pub fn write_tlv(w: &mut Writer, f: OxmField, h: OxmHeader, v: u128, m: u128) {
    let full = full_mask(f, h.width);
    let has_mask = m & full != full;
    w.u32(h.word(has_mask));
    if let Some(e) = h.experimenter {
        w.u32(e);
    }
    write_be(w, v & m, h.width);
    if has_mask {
        write_be(w, m, h.width);
    }
}

/// Decodes OXM TLVs (no ofp_match header) into a match, checking
/// duplicates and prerequisites.
pub fn decode_fields(mut r: Reader) -> Result<Match, DecodeError> {
    let mut key = FlowKey::default();
    let mut mask = FlowKey::default();
    let mut seen: Vec<OxmField> = Vec::new();
    while !r.is_empty() {
        if r.peek_u16(0)? == PACKET_REGS_CLASS {
            // OpenFlow 1.5's packet registers, as ovs-ofctl sends 32-bit
            // register matches from 1.5 on: two registers per TLV.
            for (f, v, m) in read_packet_reg(&mut r)? {
                if seen.contains(&f) {
                    return Err(OfError::DupField.into());
                }
                seen.push(f);
                apply(f, v, m, &mut key, &mut mask);
            }
            continue;
        }
        let (f, v, m) = read_tlv(&mut r)?;
        if seen.contains(&f) {
            return Err(OfError::DupField.into());
        }
        seen.push(f);
        apply(f, v, m, &mut key, &mut mask);
    }
    let m = Match::new(key, mask);
    for f in &seen {
        if !prereq_ok(*f, &m) {
            return Err(OfError::BadPrereq.into());
        }
    }
    Ok(m)
}

/// The wire fields (with values and masks) that express `m`, read through
/// flows's field accessors. Where one key field has several wire names
/// (ports, ICMP type/code, ARP/IPv4 addresses, ARP/ND hardware addresses)
/// the match's own dl_type/nw_proto choose the name ovs-ofctl would use.
pub fn match_fields(m: &Match) -> Vec<(OxmField, u128, u128)> {
    let (k, mk) = (&m.key, &m.mask);
    let arp = dl_is(m, ethertype::ARP);
    let ipv6 = dl_is(m, ethertype::IPV6);
    let proto = (mk.nw_proto == 0xff && !arp).then_some(k.nw_proto);
    let (tp_src, tp_dst) = match proto {
        Some(ipproto::UDP) => (F::UdpSrc, F::UdpDst),
        Some(ipproto::SCTP) => (F::SctpSrc, F::SctpDst),
        Some(ipproto::ICMP) => (F::Icmpv4Type, F::Icmpv4Code),
        Some(ipproto::ICMPV6) => (F::Icmpv6Type, F::Icmpv6Code),
        _ => (F::TcpSrc, F::TcpDst),
    };
    let mut out = Vec::new();
    let mut push = |f: OxmField| {
        let field = to_flows_field(f);
        let mm = field.get(mk);
        if mm != 0 {
            out.push((f, field.get(k) & mm, mm));
        }
    };
    for f in [F::InPort, F::Metadata] {
        push(f);
    }
    for i in 0..8u8 {
        push(F::Reg(i));
    }
    for f in [F::EthDst, F::EthSrc, F::EthType] {
        push(f);
    }
    let untagged = mk.vlan_tci & VLAN_CFI != 0 && k.vlan_tci & VLAN_CFI == 0;
    if !untagged {
        push(F::VlanVid);
        push(F::VlanPcp);
    }
    for f in [
        F::IpDscp,
        F::IpEcn,
        if arp { F::ArpOp } else { F::IpProto },
        F::IpTtl,
        F::IpFrag,
        if arp { F::ArpSpa } else { F::Ipv4Src },
        if arp { F::ArpTpa } else { F::Ipv4Dst },
        F::Ipv6Src,
        F::Ipv6Dst,
        F::Ipv6Flabel,
        tp_src,
        tp_dst,
        F::TcpFlags,
        F::NdTarget,
        if ipv6 { F::NdSll } else { F::ArpSha },
        if ipv6 { F::NdTll } else { F::ArpTha },
    ] {
        push(f);
    }
    if untagged {
        // OFPVID_NONE, in the place VLAN_VID has above.
        let at = out
            .iter()
            .take_while(|(f, _, _)| {
                matches!(
                    f,
                    F::InPort | F::Metadata | F::Reg(_) | F::EthDst | F::EthSrc | F::EthType
                )
            })
            .count();
        out.insert(at, (F::VlanVid, 0, 0x1fff));
    }
    out
}

/// Writes `m` as OXM TLVs (no ofp_match header).
pub fn encode_fields(w: &mut Writer, m: &Match) {
    for (f, v, mm) in match_fields(m) {
        write_tlv(w, f, oxm_header(f), v, mm);
    }
}

/// Writes an OpenFlow 1.3 `ofp_match` (type OXM), padded to 8 bytes.
pub fn encode_ofp_match(w: &mut Writer, m: &Match) {
    let start = w.len();
    w.u16(1);
    let at = w.len_placeholder();
    encode_fields(w, m);
    w.patch_len_since(at, start);
    w.pad_to(8);
}

/// Reads an OpenFlow 1.3 `ofp_match` including its padding.
pub fn decode_ofp_match(r: &mut Reader) -> Result<Match, DecodeError> {
    r.within(OfError::BadMatchLen, decode_ofp_match_body)
}

fn decode_ofp_match_body(r: &mut Reader) -> Result<Match, DecodeError> {
    let ty = r.u16()?;
    let len = usize::from(r.u16()?);
    if ty != 1 {
        return Err(OfError::BadMatchType.into());
    }
    if len < 4 {
        return Err(OfError::BadMatchLen.into());
    }
    let body = r.sub(len - 4)?;
    let pad = len.next_multiple_of(8) - len;
    r.skip(pad)?;
    decode_fields(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip_dst_match() -> Match {
        let mut k = FlowKey::default();
        let mut m = FlowKey::default();
        k.dl_type = ethertype::IPV4;
        m.dl_type = 0xffff;
        k.nw_dst = 0x0a00_0000;
        m.nw_dst = 0xffff_ff00;
        Match::new(k, m)
    }

    #[test]
    fn ipv4_dst_prefix_encodes_as_masked_oxm_like_ovs() {
        let mut w = Writer::new();
        encode_ofp_match(&mut w, &ip_dst_match());
        // Bytes ovs-ofctl 3.x sends for `ip,nw_dst=10.0.0.0/24`.
        let want = [
            0x00, 0x01, 0x00, 0x16, 0x80, 0x00, 0x0a, 0x02, 0x08, 0x00, 0x80, 0x00, 0x19, 0x08,
            0x0a, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x00, 0, 0,
        ];
        assert_eq!(w.buf, want);
        let back = decode_ofp_match(&mut Reader::new(&w.buf)).unwrap();
        assert_eq!(back, ip_dst_match());
    }

    #[test]
    fn ipv4_field_without_eth_type_is_bad_prereq() {
        let mut w = Writer::new();
        write_tlv(
            &mut w,
            F::Ipv4Dst,
            oxm_header(F::Ipv4Dst),
            1,
            u128::from(u32::MAX),
        );
        assert_eq!(
            decode_fields(Reader::new(&w.buf)).map_err(|e| e.of_error()),
            Err(OfError::BadPrereq)
        );
    }

    #[test]
    fn repeated_field_is_dup_field() {
        let mut w = Writer::new();
        write_tlv(&mut w, F::EthType, oxm_header(F::EthType), 0x800, 0xffff);
        write_tlv(&mut w, F::EthType, oxm_header(F::EthType), 0x800, 0xffff);
        assert_eq!(
            decode_fields(Reader::new(&w.buf)).map_err(|e| e.of_error()),
            Err(OfError::DupField)
        );
    }

    #[test]
    fn vlan_vid_none_means_untagged_and_present_bit_maps_to_cfi() {
        let mut w = Writer::new();
        write_tlv(&mut w, F::VlanVid, oxm_header(F::VlanVid), 0, 0x1fff);
        let m = decode_fields(Reader::new(&w.buf)).unwrap();
        assert_eq!((m.key.vlan_tci, m.mask.vlan_tci), (0, 0xffff));
        let mut w = Writer::new();
        write_tlv(&mut w, F::VlanVid, oxm_header(F::VlanVid), 0x1005, 0x1fff);
        let m = decode_fields(Reader::new(&w.buf)).unwrap();
        assert_eq!(m.key.vlan_tci, VLAN_CFI | 5);
        assert_eq!(m.mask.vlan_tci, 0x1fff);
    }

    #[test]
    fn registers_travel_as_nxm_class_1() {
        let mut k = FlowKey::default();
        let mut mk = FlowKey::default();
        k.regs[3] = 7;
        mk.regs[3] = u32::MAX;
        let m = Match::new(k, mk);
        let mut w = Writer::new();
        encode_fields(&mut w, &m);
        assert_eq!(&w.buf[..4], &[0x00, 0x01, 0x06, 0x04]);
        assert_eq!(decode_fields(Reader::new(&w.buf)).unwrap(), m);
    }

    #[test]
    fn every_flows_field_has_a_wire_id_that_maps_back_to_it() {
        for f in Field::ALL {
            let (wire, conv) = from_flows_field(f).unwrap_or_else(|| panic!("{f:?}"));
            let back = to_flows_field(wire);
            if f == Field::DlVlan {
                assert_eq!((back, conv(5)), (Field::VlanVid, 0x1005));
            } else {
                assert_eq!(back, f, "{f:?} via {wire:?}");
                assert_eq!(conv(5), 5);
            }
        }
        assert!(from_flows_field(Field::Reg(8)).is_none());
    }

    #[test]
    fn every_wire_id_reads_back_as_its_row() {
        for e in TABLE {
            assert_eq!(lookup(e.2, e.3, e.5), Some((e.0, e.4)), "{e:?}");
            assert_eq!(to_flows_field(e.0), e.1, "{e:?}");
        }
    }

    #[test]
    fn truncated_tlv_is_bad_len_not_a_panic() {
        let buf = [0x80, 0x00, 0x0a, 0x02, 0x08];
        assert_eq!(
            decode_fields(Reader::new(&buf)).map_err(|e| e.of_error()),
            Err(OfError::BadMatchLen)
        );
    }
}
