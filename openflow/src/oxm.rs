//! OXM (OpenFlow 1.3+) and NXM (Nicira) match fields on the wire, and the
//! OpenFlow 1.3 `ofp_match` they live in.
//!
//! This module only frames bytes: which header carries which field, its
//! width and its prerequisites all come from the one field table,
//! [`flows::field::WIRE_IDS`], and values land in the key through
//! [`flows::Field`]'s accessors. ovs-ofctl sends Nicira fields (registers,
//! `nw_ttl`, `ip_frag`, tunnel and conntrack fields) as NXM class 0x0001
//! entries inside OXM matches and `tcp_flags` as an ONF experimenter OXM;
//! all of those are accepted here.

use flows::Field;
use flows::Match;
use flows::field::{
    NXM_CLASS_1, NXM_TUN_METADATA0_NUM, OXM_CLASS_BASIC, OXM_CLASS_EXPERIMENTER, WIRE_IDS, WireId,
    wire_lookup,
};
use flows::key::{FlowKey, VLAN_CFI, ethertype, ipproto};
use flows::tlv::TunMetadataMatch;

use crate::consts::{OFPVID_PRESENT, port_from_10};
use crate::error::{DecodeError, OfError};
use crate::wire::{Reader, Writer};

/// A match field as the wire names it: a row of the field table (the
/// preferred header of its wire field).
pub type OxmField = &'static WireId;

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

fn header_of(w: &WireId) -> OxmHeader {
    OxmHeader {
        class: w.class,
        field: w.num,
        width: w.len,
        experimenter: w.experimenter,
    }
}

/// The preferred row of the wire field `f`.
fn preferred(f: OxmField) -> OxmField {
    flows::field::wire_by_name(f.name).unwrap_or(f)
}

/// The header ovs-ofctl uses for `f` in OXM matches and set_field
/// (OXM when one exists, else NXM/ONF).
pub fn oxm_header(f: OxmField) -> OxmHeader {
    header_of(preferred(f))
}

/// The header used in Nicira load/move actions (NXM first, then OXM).
pub fn nxm_header(f: OxmField) -> OxmHeader {
    WIRE_IDS
        .iter()
        .find(|w| w.name == f.name && w.is_nxm())
        .or_else(|| {
            WIRE_IDS
                .iter()
                .find(|w| w.name == f.name && w.experimenter.is_none())
        })
        .map_or_else(|| oxm_header(f), header_of)
}

/// Looks a wire header word up; for experimenter classes `exp` is the id.
pub fn lookup(class: u16, field: u8, exp: Option<u32>) -> Option<(OxmField, u8)> {
    wire_lookup(class, field, exp).map(|w| (w, w.len))
}

/// Meaningful bits of a field's value.
pub fn full_mask(f: OxmField, _width: u8) -> u128 {
    f.full_mask()
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
    f.field
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
        return flows::field::wire_of(Field::VlanVid).map(|w| (w, vid_present as ValueConv));
    }
    flows::field::wire_of(f).map(|w| (w, id as ValueConv))
}

/// Writes `(value, mask)` of wire field `f` into a key/mask pair, through
/// flows's own field accessors. Only two wire encodings need more than
/// the field they name: NXM's 16-bit in_port and OXM's "no VLAN tag".
fn apply(f: OxmField, v: u128, m: u128, key: &mut FlowKey, mask: &mut FlowKey) {
    if f.field == Field::InPort && f.len == 2 {
        Field::InPort.set(key, u128::from(port_from_10((v & m) as u16)));
        Field::InPort.set(mask, if m == 0 { 0 } else { u128::from(u32::MAX) });
    } else if f.field == Field::VlanVid
        && f.class == OXM_CLASS_BASIC
        && v & m == 0
        && m & u128::from(OFPVID_PRESENT) != 0
        && m & 0xfff == 0xfff
    {
        // OFPVID_NONE: no tag at all.
        Field::VlanTci.set(key, 0);
        Field::VlanTci.set(mask, 0xffff);
    } else {
        f.field.set_masked(key, v, m);
        f.field.set(mask, m);
    }
}

fn dl_is(m: &Match, t: u16) -> bool {
    m.mask.dl_type == 0xffff && m.key.dl_type == t
}

/// True when the prerequisites of `f` hold in `m` (OpenFlow 1.3 table 12,
/// plus OVS's for Nicira fields).
pub fn prereq_ok(f: OxmField, m: &Match) -> bool {
    f.prereq.holds_in(m)
}

/// N of an `NXM_NX_TUN_METADATA{N}` header's class and field number.
pub fn tun_metadata_index(class: u16, field: u8) -> Option<u8> {
    (class == NXM_CLASS_1 && (NXM_TUN_METADATA0_NUM..NXM_TUN_METADATA0_NUM + 64).contains(&field))
        .then(|| field - NXM_TUN_METADATA0_NUM)
}

/// The NXM header word of `tun_metadata{idx}` with `len` bytes of value.
pub fn tun_metadata_header(idx: u8, len: u8, has_mask: bool) -> u32 {
    OxmHeader {
        class: NXM_CLASS_1,
        field: NXM_TUN_METADATA0_NUM + (idx % 64),
        width: len,
        experimenter: None,
    }
    .word(has_mask)
}

/// The header a `move`/`load` names `tun_metadata{idx}` with: OVS's
/// maximum option length, 124 bytes, as ovs-ofctl writes it.
pub fn tun_metadata_oxm_header(idx: u8) -> OxmHeader {
    OxmHeader {
        class: NXM_CLASS_1,
        field: NXM_TUN_METADATA0_NUM + (idx % 64),
        width: flows::tlv::MAX_OPTION_LEN,
        experimenter: None,
    }
}

/// One match entry on the wire: a field of the field table, or
/// `tun_metadataN`, whose length the TLV map decides (kept map-independent
/// until a bridge binds it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Entry {
    Field(OxmField, u128, u128),
    TunMetadata(TunMetadataMatch),
}

/// Reads one OXM/NXM TLV: (field, value, mask, header). `tun_metadataN`
/// is refused with OFPBMC_BAD_FIELD here; [`read_entry`] accepts it.
pub fn read_tlv(r: &mut Reader) -> Result<(OxmField, u128, u128), DecodeError> {
    match read_entry(r)? {
        Entry::Field(f, v, m) => Ok((f, v, m)),
        Entry::TunMetadata(_) => Err(OfError::BadField.into()),
    }
}

/// Reads one OXM/NXM TLV, `tun_metadataN` included.
pub fn read_entry(r: &mut Reader) -> Result<Entry, DecodeError> {
    r.within(OfError::BadMatchLen, read_tlv_body)
}

fn read_tlv_body(r: &mut Reader) -> Result<Entry, DecodeError> {
    let word = r.u32()?;
    let class = (word >> 16) as u16;
    let field = ((word >> 9) & 0x7f) as u8;
    let has_mask = word & 0x100 != 0;
    let len = usize::from((word & 0xff) as u8);
    let mut body = r.sub(len)?;
    if let Some(idx) = tun_metadata_index(class, field) {
        let n = if has_mask { len / 2 } else { len };
        if has_mask && len % 2 != 0 {
            return Err(OfError::BadMatchLen.into());
        }
        if n > flows::field::TUN_METADATA_MAX_FIELD_BYTES {
            // A value wider than a field value holds (OVS allows 124
            // bytes; ferrovs's key carries 24 in all).
            return Err(OfError::BadField.into());
        }
        let value = be_to_u128(body.bytes(n)?);
        let mask = if has_mask {
            Some(be_to_u128(body.bytes(n)?))
        } else {
            None
        };
        return Ok(Entry::TunMetadata(TunMetadataMatch {
            idx,
            len: n as u8,
            value: mask.map_or(value, |m| value & m),
            mask,
        }));
    }
    let exp = if class == OXM_CLASS_EXPERIMENTER {
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
    Ok(Entry::Field(f, v, m))
}

/// Writes a `tun_metadataN` match entry (or set_field payload) in its own
/// length.
pub fn write_tun_metadata(w: &mut Writer, e: &TunMetadataMatch) {
    w.u32(tun_metadata_header(e.idx, e.len, e.mask.is_some()));
    write_be(w, e.value & e.mask.unwrap_or(u128::MAX), e.len);
    if let Some(m) = e.mask {
        write_be(w, m, e.len);
    }
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
/// duplicates and prerequisites; `tun_metadataN` is refused (BAD_FIELD)
/// where no bridge can bind it.
pub fn decode_fields(r: Reader) -> Result<Match, DecodeError> {
    let (m, tm) = decode_fields_tm(r)?;
    if !tm.is_empty() {
        return Err(OfError::BadField.into());
    }
    Ok(m)
}

/// [`decode_fields`] that also returns the `tun_metadataN` entries,
/// map-independent (a bridge's TLV map binds them).
pub fn decode_fields_tm(mut r: Reader) -> Result<(Match, Vec<TunMetadataMatch>), DecodeError> {
    let mut key = FlowKey::default();
    let mut mask = FlowKey::default();
    let mut seen: Vec<OxmField> = Vec::new();
    let mut tm: Vec<TunMetadataMatch> = Vec::new();
    while !r.is_empty() {
        match read_entry(&mut r)? {
            Entry::Field(f, v, m) => {
                if seen.iter().any(|s| s.name == f.name) {
                    return Err(OfError::DupField.into());
                }
                seen.push(f);
                apply(f, v, m, &mut key, &mut mask);
            }
            Entry::TunMetadata(e) => {
                if tm.iter().any(|s| s.idx == e.idx) {
                    return Err(OfError::DupField.into());
                }
                tm.push(e);
            }
        }
    }
    let m = Match::new(key, mask);
    for f in &seen {
        if !prereq_ok(f, &m) {
            return Err(OfError::BadPrereq.into());
        }
    }
    Ok((m, tm))
}

/// The wire fields (with values and masks) that express `m`, in the order
/// OVS writes them, read through flows's field accessors. Where one key
/// field has several wire names (ports, ICMP type/code, ARP/IPv4
/// addresses, ARP/ND hardware addresses) the match's own dl_type/nw_proto
/// choose the name ovs-ofctl would use.
pub fn match_fields(m: &Match) -> Vec<(OxmField, u128, u128)> {
    let (k, mk) = (&m.key, &m.mask);
    let ids = order();
    // RARP (0x8035) carries the same fields as ARP (`rarp,arp_op=3`).
    let arp = dl_is(m, ethertype::ARP) || dl_is(m, 0x8035);
    let ipv6 = dl_is(m, ethertype::IPV6);
    let proto = (mk.nw_proto == 0xff && !arp).then_some(k.nw_proto);
    let tp = match proto {
        Some(ipproto::UDP) => &ids.udp,
        Some(ipproto::SCTP) => &ids.sctp,
        Some(ipproto::ICMP) => &ids.icmp,
        Some(ipproto::ICMPV6) => &ids.icmp6,
        _ => &ids.tcp,
    };
    let mut out = Vec::new();
    let push = |out: &mut Vec<(OxmField, u128, u128)>, fields: &[OxmField]| {
        for &f in fields {
            let mut mm = f.field.get(mk);
            if f.field == Field::ArpOp && mm == 0xff {
                // arp_op lives in the key's 8-bit nw_proto; on the wire it
                // is 16 bits and not maskable (OVS refuses a mask on it).
                mm = 0xffff;
            }
            if mm != 0 {
                out.push((f, f.field.get(k) & mm, mm));
            }
        }
    };
    push(&mut out, &ids.head);
    let untagged = mk.vlan_tci & VLAN_CFI != 0 && k.vlan_tci & VLAN_CFI == 0;
    if untagged && (k.vlan_tci != 0 || mk.vlan_tci != 0xffff) {
        // A TCI without the present bit that is not plain "no tag" (an
        // NXM match or NXT_RESUME metadata can say so): NXM_OF_VLAN_TCI
        // as it is, so that it reads back unchanged.
        push(&mut out, &ids.vlan_tci);
    } else if untagged {
        if let Some(f) = ids.vlan_vid.first() {
            // OFPVID_NONE.
            out.push((f, 0, 0x1fff));
        }
    } else {
        push(&mut out, &ids.vlan_vid);
        push(&mut out, &ids.vlan_pcp);
    }
    let mpls = dl_is(m, ethertype::MPLS) || dl_is(m, ethertype::MPLS_MCAST);
    if mpls {
        // An MPLS packet has no L3 fields; its label stack entry shares
        // the key word of ipv6_label.
        push(&mut out, &ids.mpls);
    } else if arp {
        push(&mut out, &ids.arp);
    } else {
        push(&mut out, &ids.ip);
        push(&mut out, tp);
        push(&mut out, &ids.ip_after_ports);
        let hw = if ipv6 { &ids.nd_hw } else { &ids.arp_hw };
        push(&mut out, hw);
    }
    push(&mut out, &ids.tail);
    out
}

/// The wire fields [`match_fields`] writes, in OVS's order, resolved once
/// from their names (a flow-stats reply encodes every flow's match).
struct FieldOrder {
    head: Vec<OxmField>,
    vlan_tci: Vec<OxmField>,
    vlan_vid: Vec<OxmField>,
    vlan_pcp: Vec<OxmField>,
    mpls: Vec<OxmField>,
    arp: Vec<OxmField>,
    ip: Vec<OxmField>,
    tcp: Vec<OxmField>,
    udp: Vec<OxmField>,
    sctp: Vec<OxmField>,
    icmp: Vec<OxmField>,
    icmp6: Vec<OxmField>,
    ip_after_ports: Vec<OxmField>,
    nd_hw: Vec<OxmField>,
    arp_hw: Vec<OxmField>,
    tail: Vec<OxmField>,
}

fn order() -> &'static FieldOrder {
    static ORDER: std::sync::OnceLock<FieldOrder> = std::sync::OnceLock::new();
    ORDER.get_or_init(|| {
        let ids = |names: &[&str]| -> Vec<OxmField> {
            names
                .iter()
                .filter_map(|n| flows::field::wire_by_name(n))
                .collect()
        };
        FieldOrder {
            head: ids(&[
                "dp_hash",
                "recirc_id",
                "conj_id",
                "in_port",
                "eth_src",
                "eth_dst",
                "eth_type",
            ]),
            vlan_tci: ids(&["vlan_tci"]),
            vlan_vid: ids(&["vlan_vid"]),
            vlan_pcp: ids(&["vlan_pcp"]),
            mpls: ids(&["mpls_tc", "mpls_bos", "mpls_ttl", "mpls_label"]),
            arp: ids(&["arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha"]),
            ip: ids(&[
                "ipv4_src",
                "ipv4_dst",
                "ipv6_src",
                "ipv6_dst",
                "ipv6_flabel",
                "ip_frag",
                "ip_dscp",
                "ip_ecn",
                "ip_ttl",
                "ip_proto",
            ]),
            tcp: ids(&["tcp_src", "tcp_dst"]),
            udp: ids(&["udp_src", "udp_dst"]),
            sctp: ids(&["sctp_src", "sctp_dst"]),
            icmp: ids(&["icmpv4_type", "icmpv4_code"]),
            icmp6: ids(&["icmpv6_type", "icmpv6_code"]),
            ip_after_ports: ids(&["tcp_flags", "nd_target"]),
            nd_hw: ids(&["nd_sll", "nd_tll"]),
            arp_hw: ids(&["arp_sha", "arp_tha"]),
            tail: ids(&[
                "tun_id",
                "tun_flags",
                "tun_src",
                "tun_dst",
                "tun_ipv6_src",
                "tun_ipv6_dst",
                "tun_gbp_id",
                "tun_gbp_flags",
                "reg0",
                "reg1",
                "reg2",
                "reg3",
                "reg4",
                "reg5",
                "reg6",
                "reg7",
                "reg8",
                "reg9",
                "reg10",
                "reg11",
                "reg12",
                "reg13",
                "reg14",
                "reg15",
                "pkt_mark",
                "ct_state",
                "ct_zone",
                "ct_mark",
                "ct_label",
                "ct_nw_src",
                "ct_nw_dst",
                "ct_ipv6_src",
                "ct_ipv6_dst",
                "ct_nw_proto",
                "ct_tp_src",
                "ct_tp_dst",
                "metadata",
            ]),
        }
    })
}

/// Writes `m` as OXM TLVs (no ofp_match header).
pub fn encode_fields(w: &mut Writer, m: &Match) {
    encode_fields_tm(w, m, &[]);
}

/// [`encode_fields`] plus map-independent `tun_metadataN` entries, which
/// go after the other tunnel fields (before the registers), as in OVS.
pub fn encode_fields_tm(w: &mut Writer, m: &Match, tm: &[TunMetadataMatch]) {
    let after_tunnel = |f: &Field| {
        matches!(
            f,
            Field::Reg(_)
                | Field::PktMark
                | Field::Metadata
                | Field::CtState
                | Field::CtZone
                | Field::CtMark
                | Field::CtLabel
                | Field::CtNwSrc
                | Field::CtNwDst
                | Field::CtIpv6Src
                | Field::CtIpv6Dst
                | Field::CtNwProto
                | Field::CtTpSrc
                | Field::CtTpDst
        )
    };
    let mut pending = Some(tm);
    for (f, v, mm) in match_fields(m) {
        if after_tunnel(&f.field)
            && let Some(tm) = pending.take()
        {
            tm.iter().for_each(|e| write_tun_metadata(w, e));
        }
        write_tlv(w, f, oxm_header(f), v, mm);
    }
    if let Some(tm) = pending {
        tm.iter().for_each(|e| write_tun_metadata(w, e));
    }
}

/// Writes an OpenFlow 1.3 `ofp_match` (type OXM), padded to 8 bytes.
pub fn encode_ofp_match(w: &mut Writer, m: &Match) {
    encode_ofp_match_tm(w, m, &[]);
}

/// [`encode_ofp_match`] with `tun_metadataN` entries.
pub fn encode_ofp_match_tm(w: &mut Writer, m: &Match, tm: &[TunMetadataMatch]) {
    let start = w.len();
    w.u16(1);
    let at = w.len_placeholder();
    encode_fields_tm(w, m, tm);
    w.patch_len_since(at, start);
    w.pad_to(8);
}

/// Reads an OpenFlow 1.3 `ofp_match` including its padding.
pub fn decode_ofp_match(r: &mut Reader) -> Result<Match, DecodeError> {
    let (m, tm) = decode_ofp_match_tm(r)?;
    if !tm.is_empty() {
        return Err(OfError::BadField.into());
    }
    Ok(m)
}

/// [`decode_ofp_match`] that also returns the `tun_metadataN` entries.
pub fn decode_ofp_match_tm(r: &mut Reader) -> Result<(Match, Vec<TunMetadataMatch>), DecodeError> {
    r.within(OfError::BadMatchLen, decode_ofp_match_body)
}

fn decode_ofp_match_body(r: &mut Reader) -> Result<(Match, Vec<TunMetadataMatch>), DecodeError> {
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
    decode_fields_tm(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(name: &str) -> OxmField {
        WIRE_IDS.iter().find(|r| r.name == name).unwrap()
    }

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
    fn nxt_resume_metadata_with_a_tci_lacking_the_present_bit_round_trips() {
        // Found by the decode fuzz target: NXT_RESUME whose metadata holds
        // NXM_OF_VLAN_TCI=0x0028 (no CFI) and NXM_OF_IN_PORT=7.
        let hex =
            "0604002800000005000023200000001c000600100000080200280000000200070000000400000028";
        let b: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let (h, msg) = crate::decode(&b).unwrap();
        let again = crate::encode(&msg, h.version, h.xid).unwrap();
        assert_eq!(crate::decode(&again).unwrap().1, msg);
    }

    #[test]
    fn rarp_opcode_travels_as_arp_op_not_ip_proto() {
        // OVN's `rarp,arp_op=3` (router port, table 33) read back by
        // ovs-ofctl and by ferrovs's own decoder (prerequisites).
        let mut k = FlowKey::default();
        let mut m = FlowKey::default();
        k.dl_type = 0x8035;
        m.dl_type = 0xffff;
        Field::ArpOp.set(&mut k, 3);
        Field::ArpOp.set(&mut m, 0xffff);
        let want = Match::new(k, m);
        let mut w = Writer::new();
        encode_ofp_match(&mut w, &want);
        assert_eq!(&w.buf[10..16], &[0x80, 0x00, 0x2a, 0x02, 0x00, 0x03]);
        assert_eq!(decode_ofp_match(&mut Reader::new(&w.buf)).unwrap(), want);
    }

    #[test]
    fn exact_arp_op_encodes_unmasked_as_ovs_requires() {
        // `arp,arp_op=1`: OVS refuses a masked arp_op in a flow-stats reply.
        let mut k = FlowKey::default();
        let mut m = FlowKey::default();
        k.dl_type = ethertype::ARP;
        m.dl_type = 0xffff;
        Field::ArpOp.set(&mut k, 1);
        Field::ArpOp.set(&mut m, 0xffff);
        let want = Match::new(k, m);
        let mut w = Writer::new();
        encode_ofp_match(&mut w, &want);
        let expect = [
            0x00, 0x01, 0x00, 0x10, 0x80, 0x00, 0x0a, 0x02, 0x08, 0x06, 0x80, 0x00, 0x2a, 0x02,
            0x00, 0x01,
        ];
        assert_eq!(w.buf, expect);
        let back = decode_ofp_match(&mut Reader::new(&w.buf)).unwrap();
        assert_eq!(back, want);
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
            wf("ipv4_dst"),
            oxm_header(wf("ipv4_dst")),
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
        write_tlv(
            &mut w,
            wf("eth_type"),
            oxm_header(wf("eth_type")),
            0x800,
            0xffff,
        );
        write_tlv(
            &mut w,
            wf("eth_type"),
            oxm_header(wf("eth_type")),
            0x800,
            0xffff,
        );
        assert_eq!(
            decode_fields(Reader::new(&w.buf)).map_err(|e| e.of_error()),
            Err(OfError::DupField)
        );
    }

    #[test]
    fn vlan_vid_none_means_untagged_and_present_bit_maps_to_cfi() {
        let mut w = Writer::new();
        write_tlv(
            &mut w,
            wf("vlan_vid"),
            oxm_header(wf("vlan_vid")),
            0,
            0x1fff,
        );
        let m = decode_fields(Reader::new(&w.buf)).unwrap();
        assert_eq!((m.key.vlan_tci, m.mask.vlan_tci), (0, 0xffff));
        let mut w = Writer::new();
        write_tlv(
            &mut w,
            wf("vlan_vid"),
            oxm_header(wf("vlan_vid")),
            0x1005,
            0x1fff,
        );
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
    }

    #[test]
    fn every_wire_id_reads_back_as_its_row() {
        for e in WIRE_IDS {
            let (f, len) = lookup(e.class, e.num, e.experimenter).unwrap();
            assert_eq!((f, len), (e, e.len), "{e:?}");
        }
    }

    /// Parses OVS's hex of a match's TLVs.
    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn nicira_fields_encode_in_ovs_order_with_ovs_headers() {
        // TLVs ovs-ofctl 3.1 writes (NXM flavour, `ovs-ofctl -O OpenFlow10
        // parse-flow` of `dp_hash=4/0xf,recirc_id=2,conj_id=9,tcp,tp_dst=80,
        // tun_flags=+oam,tun_src=1.2.3.4,tun_dst=5.6.7.0/24,tun_gbp_id=5,
        // tun_gbp_flags=1,reg0=1,reg8=5,reg15=0x10/0xf0,pkt_mark=3,
        // ct_zone=5,ct_mark=0x4/0xf,ct_label=0x10/0xff`); an OXM match
        // carries the same NXM class-1 TLVs in the same order.
        let want = hex("
            00 01 47 08 00000004 0000000f
            00 01 48 04 00000002
            00 01 4a 04 00000009
            80 00 0a 02 0800
            80 00 14 01 06
            80 00 1c 02 0050
            00 01 d1 04 0001 0001
            00 01 3e 04 01020304
            00 01 41 08 05060700 ffffff00
            00 01 4c 02 0005
            00 01 4e 01 01
            00 01 00 04 00000001
            00 01 10 04 00000005
            00 01 1f 08 00000010 000000f0
            00 01 42 04 00000003
            00 01 d4 02 0005
            00 01 d7 08 00000004 0000000f
            00 01 d9 20 00000000000000000000000000000010 000000000000000000000000000000ff
        ");
        let m = flows::text::parse_match(
            "dp_hash=4/0xf,recirc_id=2,conj_id=9,tcp,tp_dst=80,tun_flags=+oam,\
             tun_src=1.2.3.4,tun_dst=5.6.7.0/24,tun_gbp_id=5,tun_gbp_flags=1,reg0=1,\
             reg8=5,reg15=0x10/0xf0,pkt_mark=3,ct_zone=5,ct_mark=0x4/0xf,ct_label=0x10/0xff",
        )
        .unwrap();
        let mut w = Writer::new();
        encode_fields(&mut w, &m);
        assert_eq!(w.buf, want);
        assert_eq!(decode_fields(Reader::new(&w.buf)).unwrap(), m);
    }

    #[test]
    fn conntrack_tuple_encodes_like_ovs_and_needs_tracked_state() {
        // `ct_state=+trk-inv,ct_nw_src=1.1.1.1,ct_nw_dst=2.2.2.2,ct_nw_proto=6,
        // ct_tp_src=1,ct_tp_dst=2,ip` as OVS writes it.
        let want = hex("
            80 00 0a 02 0800
            00 01 d3 08 00000020 00000030
            00 01 f0 04 01010101
            00 01 f2 04 02020202
            00 01 ee 01 06
            00 01 f8 02 0001
            00 01 fa 02 0002
        ");
        let m = flows::text::parse_match(
            "ct_state=+trk-inv,ct_nw_src=1.1.1.1,ct_nw_dst=2.2.2.2,ct_nw_proto=6,\
             ct_tp_src=1,ct_tp_dst=2,ip",
        )
        .unwrap();
        let mut w = Writer::new();
        encode_fields(&mut w, &m);
        assert_eq!(w.buf, want);
        assert_eq!(decode_fields(Reader::new(&w.buf)).unwrap(), m);
        // Without ct_state=+trk-inv the tuple fields are refused.
        let bare = hex("80 00 0a 02 0800 00 01 f0 04 01010101");
        assert_eq!(
            decode_fields(Reader::new(&bare)).map_err(|e| e.of_error()),
            Err(OfError::BadPrereq)
        );
    }

    #[test]
    fn tun_id_travels_as_oxm_tunnel_id_and_xregs_as_registers() {
        let m = flows::text::parse_match("tun_id=0x5,xreg4=7").unwrap();
        let mut w = Writer::new();
        encode_fields(&mut w, &m);
        // OXM_OF_TUNNEL_ID, then reg8=0 and reg9=7 (an xreg is two registers).
        let want = hex("
            80 00 4c 08 0000000000000005
            00 01 10 04 00000000
            00 01 12 04 00000007
        ");
        assert_eq!(w.buf, want);
        // An OpenFlow 1.5 OXM_OF_PKT_REG4 decodes into the same registers.
        let pkt_reg = hex("80 01 08 08 0000000000000007");
        let back = decode_fields(Reader::new(&pkt_reg)).unwrap();
        assert_eq!((back.key.regs[8], back.key.regs[9]), (0, 7));
        assert_eq!((back.mask.regs[8], back.mask.regs[9]), (u32::MAX, u32::MAX));
        // NXM_NX_TUN_ID decodes to the same field.
        let nx = hex("00 01 20 08 0000000000000005");
        assert_eq!(decode_fields(Reader::new(&nx)).unwrap().key.tun_id, 5);
    }

    #[test]
    fn tun_metadata_entries_have_ovs_ofctl_bytes_and_round_trip_map_independent() {
        // Bytes stock ovs-ofctl 3.1 sends (no map at hand: a value in its
        // own length): `tun_metadata0=0x1234`, `tun_metadata0=0`,
        // `tun_metadata1=0x1200/0xff00`, after an eth_type and before reg0.
        let want = hex("
            80 00 0a 02 0800
            00 01 50 02 1234
            00 01 52 00
            00 01 00 04 00000001
        ");
        let (m, tm) = decode_fields_tm(Reader::new(&want)).unwrap();
        assert_eq!(m.key.regs[0], 1);
        assert_eq!(
            tm,
            [
                TunMetadataMatch {
                    idx: 0,
                    len: 2,
                    value: 0x1234,
                    mask: None
                },
                TunMetadataMatch {
                    idx: 1,
                    len: 0,
                    value: 0,
                    mask: None
                },
            ]
        );
        let mut w = Writer::new();
        encode_fields_tm(&mut w, &m, &tm);
        assert_eq!(w.buf, want);
        let masked = hex("00 01 51 04 1200 ff00");
        let (_, tm) = decode_fields_tm(Reader::new(&masked)).unwrap();
        assert_eq!(tm[0].mask, Some(0xff00));
        let mut w = Writer::new();
        encode_fields_tm(&mut w, &Match::default(), &tm);
        assert_eq!(w.buf, masked);
        // Where no bridge can bind it, the field is refused, as is a
        // repeated index.
        assert_eq!(
            decode_fields(Reader::new(&masked)).map_err(|e| e.of_error()),
            Err(OfError::BadField)
        );
        let twice = hex("00 01 50 01 01 00 01 50 01 02");
        assert_eq!(
            decode_fields_tm(Reader::new(&twice)).map_err(|e| e.of_error()),
            Err(OfError::DupField)
        );
    }

    #[test]
    fn tun_metadata_actions_have_ovs_ofctl_headers_and_round_trip() {
        let acts = flows::text::parse_actions(
            "set_field:0x5->tun_metadata1,move:NXM_NX_REG0[0..15]->NXM_NX_TUN_METADATA0[0..15],\
             set_field:0xab/0xff->tun_metadata1",
        )
        .unwrap();
        let mut w = Writer::new();
        crate::actions::encode_actions13(&mut w, &acts).unwrap();
        // OFPAT_SET_FIELD with NXM_NX_TUN_METADATA1, 1 byte, as ovs-ofctl.
        assert_eq!(&w.buf[..9], &hex("0019 0010 0001 5201 05")[..]);
        // NXAST_REG_MOVE naming the destination with OVS's 124 bytes.
        assert!(
            w.buf.windows(4).any(|x| x == hex("0001507c")),
            "{:02x?}",
            w.buf
        );
        let back = crate::actions::decode_actions13(Reader::new(&w.buf)).unwrap();
        assert_eq!(back, acts);
        let mut w15 = Writer::new();
        crate::actions::encode_actions15(&mut w15, &acts).unwrap();
        let back = crate::actions::decode_actions13(Reader::new(&w15.buf)).unwrap();
        assert_eq!(back, acts);
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
