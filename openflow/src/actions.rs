//! Actions and instructions ↔ [`flows::Action`], for OpenFlow 1.3 and 1.0,
//! including the Nicira extension actions ovs-ofctl emits.

use flows::action::port as ofpp;
use flows::{Action, Field, SubField};

use crate::consts::{NX_VENDOR_ID, OFPVID_PRESENT, port_from_10, port_to_10};
use crate::error::{DecodeError, EncodeError, OfError};
use crate::nxactions::{self, ListCodec};
use crate::oxm::{self, OxmField};

/// OpenFlow 1.3 (and later) action lists, for nested lists.
const LC13: ListCodec = ListCodec {
    encode: encode_actions13,
    decode: decode_actions13,
    version: "1.3",
};

/// OpenFlow 1.5 action lists: as 1.3, except that masked writes travel
/// as masked set_field and moves as OFPAT_COPY_FIELD (OVS accepts
/// NXAST_REG_LOAD/LOAD2 only up to 1.4).
const LC15: ListCodec = ListCodec {
    encode: encode_actions15,
    decode: decode_actions13,
    version: "1.5",
};

#[cfg(test)]
pub(crate) const LC13_FOR_TESTS: ListCodec = LC13;
#[cfg(test)]
pub(crate) const LC10_FOR_TESTS: ListCodec = LC10;

/// OpenFlow 1.0 action lists, for nested lists.
const LC10: ListCodec = ListCodec {
    encode: encode_actions10,
    decode: decode_actions10,
    version: "1.0",
};
use crate::wire::{Reader, Writer};

mod at13 {
    pub const OUTPUT: u16 = 0;
    pub const COPY_TTL_OUT: u16 = 11;
    pub const COPY_TTL_IN: u16 = 12;
    pub const SET_MPLS_TTL: u16 = 15;
    pub const DEC_MPLS_TTL: u16 = 16;
    pub const PUSH_VLAN: u16 = 17;
    pub const POP_VLAN: u16 = 18;
    pub const PUSH_MPLS: u16 = 19;
    pub const POP_MPLS: u16 = 20;
    pub const SET_QUEUE: u16 = 21;
    pub const GROUP: u16 = 22;
    pub const SET_NW_TTL: u16 = 23;
    pub const DEC_NW_TTL: u16 = 24;
    pub const SET_FIELD: u16 = 25;
    /// OpenFlow 1.5 only.
    pub const COPY_FIELD: u16 = 28;
    pub const EXPERIMENTER: u16 = 0xffff;
}

mod at10 {
    pub const OUTPUT: u16 = 0;
    pub const SET_VLAN_VID: u16 = 1;
    pub const SET_VLAN_PCP: u16 = 2;
    pub const STRIP_VLAN: u16 = 3;
    pub const SET_DL_SRC: u16 = 4;
    pub const SET_DL_DST: u16 = 5;
    pub const SET_NW_SRC: u16 = 6;
    pub const SET_NW_DST: u16 = 7;
    pub const SET_NW_TOS: u16 = 8;
    pub const SET_TP_SRC: u16 = 9;
    pub const SET_TP_DST: u16 = 10;
    pub const ENQUEUE: u16 = 11;
    pub const VENDOR: u16 = 0xffff;
}

mod nxast {
    pub const RESUBMIT: u16 = 1;
    pub const REG_MOVE: u16 = 6;
    pub const REG_LOAD: u16 = 7;
    pub const RESUBMIT_TABLE: u16 = 14;
    pub const DEC_TTL: u16 = 18;
    pub const CONTROLLER: u16 = 20;
    pub const REG_LOAD2: u16 = 33;
    pub const CONJUNCTION: u16 = 34;
}

mod it {
    pub const GOTO_TABLE: u16 = 1;
    pub const WRITE_METADATA: u16 = 2;
    pub const WRITE_ACTIONS: u16 = 3;
    pub const APPLY_ACTIONS: u16 = 4;
    pub const CLEAR_ACTIONS: u16 = 5;
    pub const METER: u16 = 6;
}

pub use crate::msg::meter::MeterPlacement;

/// OpenFlow 1.0 port number of "in_port" used by Nicira resubmit.
const NX_IN_PORT: u16 = 0xfff8;

fn unsupported(what: impl Into<String>, version: &'static str) -> EncodeError {
    EncodeError::Unsupported {
        what: what.into(),
        version,
    }
}

/// Splits the next action TLV off `r`: (type, whole action bytes reader
/// positioned after type and length).
/// Short reads inside the TLV are reported as `bad_len`.
fn next_tlv<'a>(r: &mut Reader<'a>, bad_len: OfError) -> Result<(u16, Reader<'a>), DecodeError> {
    r.within(bad_len, |r| {
        let ty = r.peek_u16(0)?;
        let len = usize::from(r.peek_u16(2)?);
        if len < 8 || !len.is_multiple_of(8) || len > r.remaining() {
            return Err(bad_len.into());
        }
        let mut body = r.sub(len)?;
        body.skip(4)?;
        Ok((ty, body))
    })
}

fn check_port(p: u32) -> Result<u32, OfError> {
    if p == 0 || p == ofpp::ANY || (p > ofpp::MAX && p < ofpp::IN_PORT) {
        Err(OfError::BadOutPort)
    } else {
        Ok(p)
    }
}

fn subfield_header(sf: &SubField) -> Result<oxm::OxmHeader, EncodeError> {
    if let Field::TunMetadata { idx, .. } = sf.field {
        // ovs-ofctl names tun_metadata in move/load with OVS's maximum
        // option length.
        return Ok(oxm::tun_metadata_oxm_header(idx));
    }
    let (f, _) = oxm::from_flows_field(sf.field)
        .ok_or_else(|| unsupported(format!("field {:?}", sf.field), "1.x"))?;
    if sf.field == Field::InPort && sf.ofs == 0 && sf.n_bits == 16 {
        // `NXM_OF_IN_PORT[]`: the 16-bit port number.
        // (the field table's `nxm_in_port` row).
        if let Some((w, _)) = oxm::lookup(flows::field::NXM_CLASS_0, 0, None) {
            return Ok(oxm::nxm_header(w));
        }
    }
    Ok(oxm::nxm_header(f))
}

fn read_subfield(header: u32, ofs: u16, n_bits: u16) -> Result<SubField, OfError> {
    nxactions::sf_from_header(header, ofs, n_bits)
}

/// Decodes a Nicira vendor action body (after type/len).
fn decode_nx(mut b: Reader, len: usize, lc: &ListCodec) -> Result<Action, DecodeError> {
    let e = OfError::BadActionLen;
    let vendor = b.u32()?;
    if vendor != NX_VENDOR_ID {
        return Err(OfError::BadActionExperimenter.into());
    }
    let subtype = b.u16()?;
    let fixed = |n: usize| if len == n { Ok(()) } else { Err(e) };
    match subtype {
        nxast::RESUBMIT | nxast::RESUBMIT_TABLE => {
            fixed(16)?;
            let port = b.u16()?;
            let table = b.u8()?;
            Ok(Action::Resubmit {
                port: (port != NX_IN_PORT).then(|| port_from_10(port)),
                table: (subtype == nxast::RESUBMIT_TABLE && table != 0xff).then_some(table),
                ct: false,
            })
        }
        nxast::REG_LOAD => {
            fixed(24)?;
            let ofs_nbits = b.u16()?;
            let dst = b.u32()?;
            let value = b.u64()?;
            let sf = read_subfield(dst, ofs_nbits >> 6, (ofs_nbits & 0x3f) + 1)?;
            if sf.n_bits < 64 && value >> sf.n_bits != 0 {
                return Err(OfError::BadActionArgument.into());
            }
            Ok(Action::Load {
                dst: sf,
                value: u128::from(value),
            })
        }
        nxast::REG_LOAD2 => {
            let (f, v, m) = match oxm::read_entry(&mut b).map_err(|_| OfError::BadSetArgument)? {
                oxm::Entry::Field(f, v, m) => (f, v, m),
                oxm::Entry::TunMetadata(e) => return Ok(tun_metadata_set_field(e)),
            };
            let full = oxm::full_mask(f, oxm::oxm_header(f).width);
            check_vlan_vid_present(f, v, m & full)?;
            Ok(Action::SetField {
                field: oxm::to_flows_field(f),
                value: v & m,
                mask: (m & full != full).then_some(m),
            })
        }
        nxast::REG_MOVE => {
            fixed(24)?;
            let n_bits = b.u16()?;
            let src_ofs = b.u16()?;
            let dst_ofs = b.u16()?;
            let src = b.u32()?;
            let dst = b.u32()?;
            Ok(Action::Move {
                src: read_subfield(src, src_ofs, n_bits)?,
                dst: read_subfield(dst, dst_ofs, n_bits)?,
            })
        }
        nxast::DEC_TTL => {
            fixed(16)?;
            Ok(Action::DecTtl)
        }
        nxast::CONTROLLER => {
            fixed(16)?;
            let max_len = b.u16()?;
            let id = b.u16()?;
            let reason = b.u8()?;
            if id == 0 && reason == 1 {
                Ok(Action::Controller { max_len })
            } else {
                let r = flows::action::PacketInReason::from_wire(reason)
                    .ok_or(OfError::BadActionArgument)?;
                Ok(flows::action::ControllerSpec {
                    max_len,
                    controller_id: id,
                    reason: r,
                    ..Default::default()
                }
                .into_action())
            }
        }
        nxast::CONJUNCTION => {
            fixed(16)?;
            // The clause travels 0-based.
            let clause = b.u8()?;
            let n_clauses = b.u8()?;
            let id = b.u32()?;
            if !(2..=64).contains(&n_clauses) || clause >= n_clauses {
                return Err(OfError::BadActionArgument.into());
            }
            Ok(Action::Conjunction {
                id,
                clause: clause + 1,
                n_clauses,
            })
        }
        _ => {
            nxactions::decode(subtype, b, len, lc)?.ok_or_else(|| OfError::BadActionExpType.into())
        }
    }
}

fn nx_header(w: &mut Writer, len: u16, subtype: u16) {
    w.u16(0xffff);
    w.u16(len);
    w.u32(NX_VENDOR_ID);
    w.u16(subtype);
}

/// Encodes the Nicira actions shared by both versions; `Ok(false)` when `a`
/// is not one of them.
fn encode_nx(w: &mut Writer, a: &Action, version: &'static str) -> Result<bool, EncodeError> {
    match a {
        Action::Resubmit {
            port,
            table,
            ct: false,
        } => {
            let p = match port {
                None => NX_IN_PORT,
                Some(p) => port_to_10(*p).ok_or_else(|| unsupported("resubmit port", version))?,
            };
            nx_header(w, 16, nxast::RESUBMIT_TABLE);
            w.u16(p);
            w.u8(table.unwrap_or(0xff));
            w.zeros(3);
        }
        Action::Load { dst, value } if dst.n_bits <= 64 && dst.n_bits > 0 => {
            let h = subfield_header(dst)?;
            nx_header(w, 24, nxast::REG_LOAD);
            w.u16((u16::from(dst.ofs) << 6) | u16::from(dst.n_bits - 1));
            w.u32(h.word(false));
            w.u64(*value as u64);
        }
        Action::Load { dst, value } => {
            let h = subfield_header(dst)?;
            let ones = if dst.n_bits >= 128 {
                u128::MAX
            } else {
                (1u128 << dst.n_bits) - 1
            };
            let mask = ones << dst.ofs;
            encode_load2(w, h, value << dst.ofs, mask);
        }
        Action::Conjunction {
            id,
            clause,
            n_clauses,
        } => {
            nx_header(w, 16, nxast::CONJUNCTION);
            w.u8(clause.saturating_sub(1));
            w.u8(*n_clauses);
            w.u32(*id);
        }
        Action::Move { src, dst } => {
            let sh = subfield_header(src)?;
            let dh = subfield_header(dst)?;
            nx_header(w, 24, nxast::REG_MOVE);
            w.u16(u16::from(src.n_bits));
            w.u16(u16::from(src.ofs));
            w.u16(u16::from(dst.ofs));
            w.u32(sh.word(false));
            w.u32(dh.word(false));
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn encode_load2(w: &mut Writer, h: oxm::OxmHeader, v: u128, m: u128) {
    let start = w.len();
    w.u16(0xffff);
    let at = w.len_placeholder();
    w.u32(NX_VENDOR_ID);
    w.u16(nxast::REG_LOAD2);
    // Always write the mask so the receiver sees a masked load.
    w.u32(h.word(true));
    if let Some(e) = h.experimenter {
        w.u32(e);
    }
    oxm::write_be(w, v & m, h.width);
    oxm::write_be(w, m, h.width);
    w.pad_to(8);
    w.patch_len_since(at, start);
}

/// Decodes an OpenFlow 1.3 action list.
pub fn decode_actions13(mut r: Reader) -> Result<Vec<Action>, DecodeError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = usize::from(r.peek_u16(2).unwrap_or(0));
        let (ty, mut b) = next_tlv(&mut r, OfError::BadActionLen)?;
        let e = OfError::BadActionLen;
        let fixed = |n: usize| if len == n { Ok(()) } else { Err(e) };
        let a = match ty {
            at13::OUTPUT => {
                fixed(16)?;
                let port = b.u32()?;
                let max_len = b.u16()?;
                if port == ofpp::CONTROLLER {
                    Action::Controller { max_len }
                } else {
                    Action::Output {
                        port: check_port(port)?,
                        max_len,
                    }
                }
            }
            at13::PUSH_VLAN => {
                fixed(8)?;
                let t = b.u16()?;
                if t != 0x8100 && t != 0x88a8 {
                    return Err(OfError::BadActionArgument.into());
                }
                Action::PushVlan(t)
            }
            at13::POP_VLAN => {
                fixed(8)?;
                Action::PopVlan
            }
            at13::PUSH_MPLS => {
                fixed(8)?;
                let t = b.u16()?;
                if !flows::key::ethertype::is_mpls(t) {
                    return Err(OfError::BadActionArgument.into());
                }
                Action::PushMpls(t)
            }
            at13::POP_MPLS => {
                fixed(8)?;
                Action::PopMpls(b.u16()?)
            }
            at13::SET_MPLS_TTL => {
                fixed(8)?;
                Action::SetMplsTtl(b.u8()?)
            }
            at13::DEC_MPLS_TTL => {
                fixed(8)?;
                Action::DecMplsTtl
            }
            at13::GROUP => {
                fixed(8)?;
                Action::Group(b.u32()?)
            }
            at13::SET_NW_TTL => {
                fixed(8)?;
                Action::SetField {
                    field: Field::NwTtl,
                    value: u128::from(b.u8()?),
                    mask: None,
                }
            }
            crate::msg::meter::OFPAT_METER => {
                Action::Meter(crate::msg::meter::decode_meter_action(len, b)?)
            }
            at13::DEC_NW_TTL => {
                fixed(8)?;
                Action::DecTtl
            }
            at13::SET_FIELD => {
                // OVS 3.1 answers OFPBAC_BAD_SET_LEN for a field it does
                // not know (pbb_isid, ipv6_exthdr, ...) as for a bad length.
                let entry = oxm::read_entry(&mut b).map_err(|_| OfError::BadSetLen)?;
                let (f, v, m) = match entry {
                    oxm::Entry::Field(f, v, m) => (f, v, m),
                    oxm::Entry::TunMetadata(e) => {
                        if b.rest().iter().any(|x| *x != 0) {
                            return Err(OfError::BadSetLen.into());
                        }
                        out.push(tun_metadata_set_field(e));
                        continue;
                    }
                };
                // A field OVS never writes (mpls_bos, conj_id, ct_state, ...):
                // OFPBAC_BAD_SET_ARGUMENT, as OVS answers.
                if f.field.read_only_reason() == Some("is read-only") {
                    return Err(OfError::BadSetArgument.into());
                }
                let full = oxm::full_mask(f, oxm::oxm_header(f).width);
                if b.rest().iter().any(|x| *x != 0) {
                    return Err(OfError::BadSetLen.into());
                }
                // OpenFlow 1.5 lets set_field carry a mask (OVS sends
                // `set_field:V/M->F` this way from 1.5 on, and as
                // NXAST_REG_LOAD2 before): a partial mask writes only the
                // masked bits.
                let m = m & full;
                check_vlan_vid_present(f, v, m)?;
                if f.field == Field::InPort && f.len == 2 && m == full {
                    // NXM_OF_IN_PORT, which OVS writes for `set_field:…->in_port`:
                    // a 16-bit port number (0xffff is ANY).
                    Action::SetField {
                        field: Field::InPort,
                        value: u128::from(port_from_10(v as u16)),
                        mask: None,
                    }
                } else {
                    Action::SetField {
                        field: oxm::to_flows_field(f),
                        value: v & m,
                        mask: (m != full).then_some(m),
                    }
                }
            }
            at13::COPY_FIELD => {
                let n_bits = b.u16()?;
                let src_ofs = b.u16()?;
                let dst_ofs = b.u16()?;
                b.skip(2)?;
                let src = copy_field_subfield(&mut b, src_ofs, n_bits)?;
                let dst = copy_field_subfield(&mut b, dst_ofs, n_bits)?;
                if b.rest().iter().any(|x| *x != 0) {
                    return Err(OfError::BadActionLen.into());
                }
                Action::Move { src, dst }
            }
            at13::EXPERIMENTER => decode_nx(b, len, &LC13)?,
            at13::SET_QUEUE => {
                fixed(8)?;
                Action::SetQueue(b.u32()?)
            }
            at13::COPY_TTL_OUT | at13::COPY_TTL_IN => return Err(OfError::BadActionType.into()),
            _ => return Err(OfError::BadActionType.into()),
        };
        out.push(a);
    }
    Ok(out)
}

/// One field header of a copy_field (4 bytes, or 8 for an experimenter
/// class) and its bit range.
fn copy_field_subfield(b: &mut Reader, ofs: u16, n_bits: u16) -> Result<SubField, DecodeError> {
    let word = b.u32()?;
    let class = (word >> 16) as u16;
    let exp = if class == 0xffff {
        Some(b.u32()?)
    } else {
        None
    };
    let field_no = ((word >> 9) & 0x7f) as u8;
    if let Some(idx) = oxm::tun_metadata_index(class, field_no) {
        return nxactions::tun_metadata_subfield(idx, (word & 0xff) as u8, ofs, n_bits)
            .map_err(Into::into);
    }
    let (f, width) = oxm::lookup(class, field_no, exp).ok_or(OfError::BadSetType)?;
    if n_bits == 0 || u32::from(ofs) + u32::from(n_bits) > u32::from(width) * 8 {
        return Err(OfError::BadActionArgument.into());
    }
    Ok(SubField {
        field: oxm::to_flows_field(f),
        ofs: u8::try_from(ofs).map_err(|_| OfError::BadActionArgument)?,
        n_bits: u8::try_from(n_bits).map_err(|_| OfError::BadActionArgument)?,
    })
}

fn set_field13(w: &mut Writer, field: Field, value: u128) -> Result<(), EncodeError> {
    if field == Field::NwTtl {
        w.u16(at13::SET_NW_TTL);
        w.u16(8);
        w.u8(value as u8);
        w.zeros(3);
        return Ok(());
    }
    if field == Field::InPort
        && let Some(p) = port_to_10(value as u32)
        && let Some((f, _)) = oxm::lookup(flows::field::NXM_CLASS_0, 0, None)
    {
        // OVS writes (and reads back) `set_field:…->in_port` as
        // NXM_OF_IN_PORT, a 16-bit port; it refuses OXM in_port ANY.
        let start = w.len();
        w.u16(at13::SET_FIELD);
        let at = w.len_placeholder();
        let h = oxm::nxm_header(f);
        oxm::write_tlv(w, f, h, u128::from(p), oxm::full_mask(f, h.width));
        w.pad_to(8);
        w.patch_len_since(at, start);
        return Ok(());
    }
    let (f, conv) = oxm::from_flows_field(field)
        .ok_or_else(|| unsupported(format!("set_field {field:?}"), "1.3"))?;
    let h = oxm::oxm_header(f);
    let start = w.len();
    w.u16(at13::SET_FIELD);
    let at = w.len_placeholder();
    oxm::write_tlv(w, f, h, conv(value), oxm::full_mask(f, h.width));
    w.pad_to(8);
    w.patch_len_since(at, start);
    Ok(())
}

fn output13(w: &mut Writer, port: u32, max_len: u16) {
    w.u16(at13::OUTPUT);
    w.u16(16);
    w.u32(port);
    w.u16(max_len);
    w.zeros(6);
}

/// Encodes one plain (non-instruction) action for OpenFlow 1.3 and 1.4,
/// or for 1.5 when `v15`.
fn encode_action13(w: &mut Writer, a: &Action, v15: bool) -> Result<(), EncodeError> {
    if encode_tun_metadata_write(w, a, v15) {
        return Ok(());
    }
    if v15 && encode_action15_only(w, a)? {
        return Ok(());
    }
    let simple = |w: &mut Writer, ty: u16, arg: Option<u16>| {
        w.u16(ty);
        w.u16(8);
        w.u16(arg.unwrap_or(0));
        w.u16(0);
    };
    match a {
        Action::Output { port, max_len } => output13(w, *port, *max_len),
        Action::Controller { max_len } => output13(w, ofpp::CONTROLLER, *max_len),
        Action::SetVlanVid(v) => set_field13(w, Field::VlanVid, u128::from(*v | OFPVID_PRESENT))?,
        Action::SetVlanPcp(p) => set_field13(w, Field::DlVlanPcp, u128::from(*p))?,
        Action::StripVlan | Action::PopVlan => simple(w, at13::POP_VLAN, None),
        Action::PushVlan(t) => simple(w, at13::PUSH_VLAN, Some(*t)),
        Action::SetField { field, value, mask } => {
            let (f, conv) = oxm::from_flows_field(*field)
                .ok_or_else(|| unsupported(format!("set_field {field:?}"), "1.3"))?;
            let h = oxm::oxm_header(f);
            let full = oxm::full_mask(f, h.width);
            match mask {
                Some(m) if m & full != full => encode_load2(w, h, conv(*value), *m),
                _ => set_field13(w, *field, *value)?,
            }
        }
        Action::SetDlSrc(m) => set_field13(w, Field::DlSrc, oxm::be_to_u128(m))?,
        Action::SetDlDst(m) => set_field13(w, Field::DlDst, oxm::be_to_u128(m))?,
        Action::SetNwSrc(a) => set_field13(w, Field::NwSrc, u128::from(*a))?,
        Action::SetNwDst(a) => set_field13(w, Field::NwDst, u128::from(*a))?,
        Action::SetNwTos(t) => set_field13(w, Field::IpDscp, u128::from(*t >> 2))?,
        Action::SetTpSrc(p) => set_field13(w, Field::TpSrc, u128::from(*p))?,
        Action::SetTpDst(p) => set_field13(w, Field::TpDst, u128::from(*p))?,
        Action::DecTtl => simple(w, at13::DEC_NW_TTL, None),
        Action::PushMpls(t) => simple(w, at13::PUSH_MPLS, Some(*t)),
        Action::PopMpls(t) => simple(w, at13::POP_MPLS, Some(*t)),
        Action::SetMplsTtl(t) => simple(w, at13::SET_MPLS_TTL, Some(u16::from(*t) << 8)),
        Action::DecMplsTtl => simple(w, at13::DEC_MPLS_TTL, None),
        Action::Group(g) => {
            w.u16(at13::GROUP);
            w.u16(8);
            w.u32(*g);
        }
        Action::Load { .. }
        | Action::Move { .. }
        | Action::Resubmit { ct: false, .. }
        | Action::Conjunction { .. } => {
            encode_nx(w, a, "1.3")?;
        }
        Action::SetQueue(q) => {
            w.u16(at13::SET_QUEUE);
            w.u16(8);
            w.u32(*q);
        }
        Action::Enqueue { port, queue } => {
            w.u16(at13::SET_QUEUE);
            w.u16(8);
            w.u32(*queue);
            output13(w, *port, 0);
        }
        other if nxactions::encode(w, other, if v15 { &LC15 } else { &LC13 })? => {}
        Action::GotoTable(_)
        | Action::WriteMetadata { .. }
        | Action::ClearActions
        | Action::WriteActions(_)
        | Action::Meter(_) => {
            return Err(unsupported("an instruction inside an action list", "1.3"));
        }
        other => return Err(unsupported(format!("{other:?}"), "1.3")),
    }
    Ok(())
}

/// Encodes an OpenFlow 1.3 action list (no instructions allowed).
pub fn encode_actions13(w: &mut Writer, actions: &[Action]) -> Result<(), EncodeError> {
    actions
        .iter()
        .try_for_each(|a| encode_action13(w, a, false))
}

/// Encodes an OpenFlow 1.5 action list (no instructions allowed).
pub fn encode_actions15(w: &mut Writer, actions: &[Action]) -> Result<(), EncodeError> {
    actions.iter().try_for_each(|a| encode_action13(w, a, true))
}

/// The 1.5 encodings that differ from 1.3: a masked write is a set_field
/// with a mask, a move is OFPAT_COPY_FIELD. False for every other action.
fn encode_action15_only(w: &mut Writer, a: &Action) -> Result<bool, EncodeError> {
    match a {
        Action::SetField {
            field: Field::NwTtl,
            value,
            mask: None,
        } => {
            // `set_field:255->nw_ttl` (OVN's router) as OVS writes it in
            // 1.5: an OXM set_field, not OFPAT_SET_NW_TTL.
            let (f, _) = oxm::from_flows_field(Field::NwTtl)
                .ok_or_else(|| unsupported("set_field nw_ttl", "1.5"))?;
            let h = oxm::oxm_header(f);
            let start = w.len();
            w.u16(at13::SET_FIELD);
            let at = w.len_placeholder();
            oxm::write_tlv(w, f, h, *value, oxm::full_mask(f, h.width));
            w.pad_to(8);
            w.patch_len_since(at, start);
            Ok(true)
        }
        Action::SetField {
            field,
            value,
            mask: Some(m),
        } => {
            let (f, conv) = oxm::from_flows_field(*field)
                .ok_or_else(|| unsupported(format!("set_field {field:?}"), "1.5"))?;
            let h = oxm::oxm_header(f);
            let full = oxm::full_mask(f, h.width);
            if m & full == full {
                return Ok(false);
            }
            set_field_masked15(w, f, h, conv(*value), *m);
            Ok(true)
        }
        Action::Load { dst, value } => {
            let (f, _) = oxm::from_flows_field(dst.field)
                .ok_or_else(|| unsupported(format!("load {:?}", dst.field), "1.5"))?;
            let h = oxm::oxm_header(f);
            let ones = if dst.n_bits >= 128 {
                u128::MAX
            } else {
                (1u128 << dst.n_bits) - 1
            };
            let mask = ones << dst.ofs;
            let full = oxm::full_mask(f, h.width);
            if mask & full == full {
                set_field13(w, dst.field, *value)?;
            } else {
                set_field_masked15(w, f, h, value << dst.ofs, mask);
            }
            Ok(true)
        }
        Action::Move { src, dst } => {
            let sh = copy_field_header(src)?;
            let dh = copy_field_header(dst)?;
            let start = w.len();
            w.u16(at13::COPY_FIELD);
            let at = w.len_placeholder();
            w.u16(u16::from(src.n_bits));
            w.u16(u16::from(src.ofs));
            w.u16(u16::from(dst.ofs));
            w.zeros(2);
            for h in [sh, dh] {
                w.u32(h.word(false));
                if let Some(e) = h.experimenter {
                    w.u32(e);
                }
            }
            w.pad_to(8);
            w.patch_len_since(at, start);
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// The header a 1.5 copy_field names a subfield's field with.
fn copy_field_header(sf: &SubField) -> Result<oxm::OxmHeader, EncodeError> {
    let h = subfield_header(sf)?;
    if h.class == flows::field::NXM_CLASS_0 {
        // NXM_OF_* fields have OXM twins, which 1.5 prefers.
        let (f, _) = oxm::from_flows_field(sf.field)
            .ok_or_else(|| unsupported(format!("field {:?}", sf.field), "1.5"))?;
        if !(sf.field == Field::InPort && sf.n_bits == 16) {
            return Ok(oxm::oxm_header(f));
        }
    }
    Ok(h)
}

fn set_field_masked15(w: &mut Writer, f: OxmField, h: oxm::OxmHeader, v: u128, m: u128) {
    let start = w.len();
    w.u16(at13::SET_FIELD);
    let at = w.len_placeholder();
    w.u32(h.word(true));
    if let Some(e) = h.experimenter {
        w.u32(e);
    }
    oxm::write_be(w, v & m, h.width);
    oxm::write_be(w, m, h.width);
    let _ = f;
    w.pad_to(8);
    w.patch_len_since(at, start);
}

/// A set_field on OXM `vlan_vid` must carry OFPVID_PRESENT in its value
/// and its mask (OpenFlow 1.5 spells this out; OVS applies it from 1.2
/// on): OFPBAC_BAD_SET_ARGUMENT otherwise, as OVS answers.
fn check_vlan_vid_present(f: OxmField, v: u128, m: u128) -> Result<(), DecodeError> {
    let present = u128::from(OFPVID_PRESENT);
    if f.field == Field::VlanVid && (v & present == 0 || m & present == 0) {
        return Err(OfError::BadSetArgument.into());
    }
    Ok(())
}

/// A decoded set_field (or NXAST_REG_LOAD2) on `tun_metadataN`: unbound
/// until a bridge's TLV map places it.
fn tun_metadata_set_field(e: flows::tlv::TunMetadataMatch) -> Action {
    Action::SetField {
        field: Field::tun_metadata_unbound(e.idx, e.len),
        value: e.value,
        mask: e.mask,
    }
}

/// Writes a set_field on `tun_metadataN`, and in 1.5 a load into it (1.5
/// has masked set_field and OVS writes loads that way), as OFPAT_SET_FIELD
/// carrying a `tun_metadataN` entry; a masked set_field before 1.5 is
/// NXAST_REG_LOAD2. False for every other action.
fn encode_tun_metadata_write(w: &mut Writer, a: &Action, v15: bool) -> bool {
    let entry = match a {
        Action::SetField {
            field: field @ Field::TunMetadata { idx, .. },
            value,
            mask,
        } => {
            let len = (field.n_bits() / 8).min(16) as u8;
            let full = field.max_value();
            flows::tlv::TunMetadataMatch {
                idx: *idx,
                len,
                value: *value,
                // Unbound, the option's width is unknown: keep any mask.
                mask: mask.filter(|m| field.is_unbound_tun_metadata() || m & full != full),
            }
        }
        Action::Load { dst, value } if v15 || dst.n_bits > 64 => {
            let Field::TunMetadata { idx, .. } = dst.field else {
                return false;
            };
            let end = u32::from(dst.ofs) + u32::from(dst.n_bits);
            let len = if dst.field.is_unbound_tun_metadata() {
                end.div_ceil(8).min(16) as u8
            } else {
                (dst.field.n_bits() / 8).min(16) as u8
            };
            let ones = if dst.n_bits >= 128 {
                u128::MAX
            } else {
                (1u128 << dst.n_bits) - 1
            };
            flows::tlv::TunMetadataMatch {
                idx,
                len,
                value: *value << dst.ofs,
                mask: Some(ones << dst.ofs),
            }
        }
        _ => return false,
    };
    let start = w.len();
    if entry.mask.is_some() && !v15 {
        w.u16(0xffff);
        let at = w.len_placeholder();
        w.u32(NX_VENDOR_ID);
        w.u16(nxast::REG_LOAD2);
        oxm::write_tun_metadata(w, &entry);
        w.pad_to(8);
        w.patch_len_since(at, start);
    } else {
        w.u16(at13::SET_FIELD);
        let at = w.len_placeholder();
        oxm::write_tun_metadata(w, &entry);
        w.pad_to(8);
        w.patch_len_since(at, start);
    }
    true
}

fn is_instruction(a: &Action) -> bool {
    matches!(
        a,
        Action::Meter(_)
            | Action::GotoTable(_)
            | Action::WriteMetadata { .. }
            | Action::ClearActions
            | Action::WriteActions(_)
    )
}

/// Encodes a flows action list as OpenFlow 1.3 instructions, in the order
/// OVS uses: meter, apply_actions, clear_actions, write_actions,
/// write_metadata, goto_table.
pub fn encode_instructions(w: &mut Writer, actions: &[Action]) -> Result<(), EncodeError> {
    encode_instructions_with(w, actions, MeterPlacement::Instruction)
}

/// [`encode_instructions`] for a version that puts the meter where
/// `meter` says: OpenFlow 1.5 passes [`MeterPlacement::Action`]
/// (`MeterPlacement::for_version`), and its meter becomes the first action
/// of apply-actions.
pub fn encode_instructions_with(
    w: &mut Writer,
    actions: &[Action],
    meter: MeterPlacement,
) -> Result<(), EncodeError> {
    let meters = actions.iter().filter_map(|a| match a {
        Action::Meter(m) => Some(*m),
        _ => None,
    });
    if meter == MeterPlacement::Instruction {
        for m in meters.clone() {
            crate::msg::meter::encode_meter_instruction(w, m);
        }
    }
    let apply: Vec<&Action> = actions.iter().filter(|a| !is_instruction(a)).collect();
    let meter_actions = meter == MeterPlacement::Action && meters.clone().next().is_some();
    if !apply.is_empty() || meter_actions {
        let start = w.len();
        w.u16(it::APPLY_ACTIONS);
        let at = w.len_placeholder();
        w.u32(0);
        if meter == MeterPlacement::Action {
            for m in meters {
                crate::msg::meter::encode_meter_action(w, m);
            }
        }
        let v15 = meter == MeterPlacement::Action;
        for a in apply {
            encode_action13(w, a, v15)?;
        }
        w.patch_len_since(at, start);
    }
    if actions.iter().any(|a| matches!(a, Action::ClearActions)) {
        w.u16(it::CLEAR_ACTIONS);
        w.u16(8);
        w.u32(0);
    }
    for a in actions {
        if let Action::WriteActions(list) = a {
            let start = w.len();
            w.u16(it::WRITE_ACTIONS);
            let at = w.len_placeholder();
            w.u32(0);
            if meter == MeterPlacement::Action {
                encode_actions15(w, list)?;
            } else {
                encode_actions13(w, list)?;
            }
            w.patch_len_since(at, start);
        }
    }
    for a in actions {
        if let Action::WriteMetadata { value, mask } = a {
            w.u16(it::WRITE_METADATA);
            w.u16(24);
            w.u32(0);
            w.u64(*value);
            w.u64(*mask);
        }
    }
    for a in actions {
        if let Action::GotoTable(t) = a {
            w.u16(it::GOTO_TABLE);
            w.u16(8);
            w.u8(*t);
            w.zeros(3);
        }
    }
    Ok(())
}

/// Decodes OpenFlow 1.3 instructions into a flows action list (apply
/// actions first, then clear, write, write_metadata, goto_table).
pub fn decode_instructions(mut r: Reader) -> Result<Vec<Action>, DecodeError> {
    let mut apply = Vec::new();
    let mut tail = Vec::new();
    let mut seen = Vec::new();
    let mut write = None;
    let mut meta = None;
    let mut goto = None;
    let mut clear = false;
    let mut meter = None;
    while !r.is_empty() {
        let len = usize::from(r.peek_u16(2).unwrap_or(0));
        let (ty, mut b) = next_tlv(&mut r, OfError::BadInstructionLen)?;
        if seen.contains(&ty) {
            return Err(OfError::UnsupportedInstruction.into());
        }
        seen.push(ty);
        let e = OfError::BadInstructionLen;
        match ty {
            it::GOTO_TABLE => {
                if len != 8 {
                    return Err(e.into());
                }
                goto = Some(b.u8()?);
            }
            it::WRITE_METADATA => {
                if len != 24 {
                    return Err(e.into());
                }
                b.skip(4)?;
                let value = b.u64()?;
                let mask = b.u64()?;
                meta = Some((value, mask));
            }
            it::WRITE_ACTIONS | it::APPLY_ACTIONS => {
                b.skip(4)?;
                let list = decode_actions13(b)?;
                if ty == it::APPLY_ACTIONS {
                    apply = list;
                } else {
                    write = Some(list);
                }
            }
            it::CLEAR_ACTIONS => {
                if len != 8 {
                    return Err(e.into());
                }
                clear = true;
            }
            it::METER => meter = Some(crate::msg::meter::decode_meter_instruction(len, b)?),
            0xffff => return Err(OfError::UnsupportedInstruction.into()),
            _ => return Err(OfError::UnknownInstruction.into()),
        }
    }
    if clear {
        tail.push(Action::ClearActions);
    }
    if let Some(list) = write {
        tail.push(Action::WriteActions(list));
    }
    if let Some((value, mask)) = meta {
        tail.push(Action::WriteMetadata { value, mask });
    }
    if let Some(t) = goto {
        tail.push(Action::GotoTable(t));
    }
    apply.extend(tail);
    if let Some(m) = meter {
        apply.insert(0, Action::Meter(m));
    }
    Ok(apply)
}

/// Decodes an OpenFlow 1.0 action list.
pub fn decode_actions10(mut r: Reader) -> Result<Vec<Action>, DecodeError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = usize::from(r.peek_u16(2).unwrap_or(0));
        let (ty, mut b) = next_tlv(&mut r, OfError::BadActionLen)?;
        let e = OfError::BadActionLen;
        let fixed = |n: usize| if len == n { Ok(()) } else { Err(e) };
        let a = match ty {
            at10::OUTPUT => {
                fixed(8)?;
                let port = b.u16()?;
                let max_len = b.u16()?;
                let p = port_from_10(port);
                if p == ofpp::CONTROLLER {
                    Action::Controller { max_len }
                } else {
                    Action::Output {
                        port: check_port(p)?,
                        max_len,
                    }
                }
            }
            at10::SET_VLAN_VID => {
                fixed(8)?;
                let v = b.u16()?;
                if v > 0xfff {
                    return Err(OfError::BadActionArgument.into());
                }
                Action::SetVlanVid(v)
            }
            at10::SET_VLAN_PCP => {
                fixed(8)?;
                let p = b.u8()?;
                if p > 7 {
                    return Err(OfError::BadActionArgument.into());
                }
                Action::SetVlanPcp(p)
            }
            at10::STRIP_VLAN => {
                fixed(8)?;
                Action::StripVlan
            }
            at10::SET_DL_SRC | at10::SET_DL_DST => {
                fixed(16)?;
                let m = b.array::<6>()?;
                if ty == at10::SET_DL_SRC {
                    Action::SetDlSrc(m)
                } else {
                    Action::SetDlDst(m)
                }
            }
            at10::SET_NW_SRC | at10::SET_NW_DST => {
                fixed(8)?;
                let a = b.u32()?;
                if ty == at10::SET_NW_SRC {
                    Action::SetNwSrc(a)
                } else {
                    Action::SetNwDst(a)
                }
            }
            at10::SET_NW_TOS => {
                fixed(8)?;
                let t = b.u8()?;
                if t & 3 != 0 {
                    return Err(OfError::BadActionArgument.into());
                }
                Action::SetNwTos(t)
            }
            at10::SET_TP_SRC | at10::SET_TP_DST => {
                fixed(8)?;
                let p = b.u16()?;
                if ty == at10::SET_TP_SRC {
                    Action::SetTpSrc(p)
                } else {
                    Action::SetTpDst(p)
                }
            }
            at10::ENQUEUE => {
                fixed(16)?;
                let p = port_from_10(b.u16()?);
                b.skip(6)?;
                let queue = b.u32()?;
                if p == ofpp::ANY || p == ofpp::CONTROLLER {
                    return Err(OfError::BadOutPort.into());
                }
                Action::Enqueue {
                    port: check_port(p)?,
                    queue,
                }
            }
            at10::VENDOR => decode_nx(b, len, &LC10)?,
            _ => return Err(OfError::BadActionType.into()),
        };
        out.push(a);
    }
    Ok(out)
}

fn act10(w: &mut Writer, ty: u16, len: u16) {
    w.u16(ty);
    w.u16(len);
}

/// Encodes a flows action list as OpenFlow 1.0 actions.
pub fn encode_actions10(w: &mut Writer, actions: &[Action]) -> Result<(), EncodeError> {
    for a in actions {
        match a {
            Action::Output { port, max_len } => {
                let p = port_to_10(*port).ok_or_else(|| unsupported("output port", "1.0"))?;
                act10(w, at10::OUTPUT, 8);
                w.u16(p);
                w.u16(*max_len);
            }
            Action::Controller { max_len } => {
                act10(w, at10::OUTPUT, 8);
                w.u16(0xfffd);
                w.u16(*max_len);
            }
            Action::SetVlanVid(v) => {
                act10(w, at10::SET_VLAN_VID, 8);
                w.u16(*v & 0xfff);
                w.u16(0);
            }
            Action::SetVlanPcp(p) => {
                act10(w, at10::SET_VLAN_PCP, 8);
                w.u8(*p);
                w.zeros(3);
            }
            Action::StripVlan | Action::PopVlan => {
                act10(w, at10::STRIP_VLAN, 8);
                w.u32(0);
            }
            Action::SetDlSrc(m) | Action::SetDlDst(m) => {
                let ty = if matches!(a, Action::SetDlSrc(_)) {
                    at10::SET_DL_SRC
                } else {
                    at10::SET_DL_DST
                };
                act10(w, ty, 16);
                w.bytes(m);
                w.zeros(6);
            }
            Action::SetNwSrc(x) => {
                act10(w, at10::SET_NW_SRC, 8);
                w.u32(*x);
            }
            Action::SetNwDst(x) => {
                act10(w, at10::SET_NW_DST, 8);
                w.u32(*x);
            }
            Action::SetNwTos(t) => {
                act10(w, at10::SET_NW_TOS, 8);
                w.u8(*t & 0xfc);
                w.zeros(3);
            }
            Action::SetTpSrc(p) | Action::SetTpDst(p) => {
                let ty = if matches!(a, Action::SetTpSrc(_)) {
                    at10::SET_TP_SRC
                } else {
                    at10::SET_TP_DST
                };
                act10(w, ty, 8);
                w.u16(*p);
                w.u16(0);
            }
            Action::DecTtl => {
                nx_header(w, 16, nxast::DEC_TTL);
                w.zeros(6);
            }
            Action::SetField { field, value, mask } => {
                let (f, conv) = oxm::from_flows_field(*field)
                    .ok_or_else(|| unsupported(format!("set_field {field:?}"), "1.0"))?;
                let h = oxm::nxm_header(f);
                if h.class == 0x8000 || h.experimenter.is_some() {
                    return Err(unsupported(format!("set_field {field:?}"), "1.0"));
                }
                let v = conv(*value);
                let full = oxm::full_mask(f, h.width);
                let m = mask.unwrap_or(full) & full;
                // A contiguous mask becomes one load; anything else is refused.
                let ofs = m.trailing_zeros();
                let n = (m >> ofs).trailing_ones();
                if m == 0 || (m >> ofs) >> n != 0 || n > 64 {
                    return Err(unsupported("masked set_field", "1.0"));
                }
                let sf = SubField {
                    field: *field,
                    ofs: ofs as u8,
                    n_bits: n as u8,
                };
                encode_nx(
                    w,
                    &Action::Load {
                        dst: sf,
                        value: (v & m) >> ofs,
                    },
                    "1.0",
                )?;
            }
            Action::Load { .. }
            | Action::Move { .. }
            | Action::Resubmit { ct: false, .. }
            | Action::Conjunction { .. } => {
                encode_nx(w, a, "1.0")?;
            }
            Action::Enqueue { port, queue } => {
                let p = port_to_10(*port).ok_or_else(|| unsupported("enqueue port", "1.0"))?;
                act10(w, at10::ENQUEUE, 16);
                w.u16(p);
                w.zeros(6);
                w.u32(*queue);
            }
            other if nxactions::encode(w, other, &LC10)? => {}
            // OpenFlow 1.0 has no meters: like OVS, a flow's meter is left out
            // of its 1.0 form (a 1.0 flow dump of metered flows still works).
            Action::Meter(_) => {}
            Action::PushVlan(_)
            | Action::Group(_)
            | Action::GotoTable(_)
            | Action::WriteMetadata { .. }
            | Action::ClearActions
            | Action::WriteActions(_) => {
                return Err(unsupported(format!("{a:?}"), "1.0"));
            }
            other => return Err(unsupported(format!("{other:?}"), "1.0")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meter_is_left_out_of_openflow_1_0_actions_as_ovs_does() {
        let mut with = Writer::new();
        encode_actions10(
            &mut with,
            &[
                Action::Meter(1),
                Action::Output {
                    port: 2,
                    max_len: 0,
                },
            ],
        )
        .unwrap();
        let mut without = Writer::new();
        encode_actions10(
            &mut without,
            &[Action::Output {
                port: 2,
                max_len: 0,
            }],
        )
        .unwrap();
        assert_eq!(with.buf, without.buf);
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn ovs_ofctl_nicira_actions_decode() {
        // resubmit(,3), load:5->NXM_NX_REG1[0..7], move:reg0[]->reg2[]
        // exactly as ovs-ofctl -O OpenFlow13 sends them.
        let b = hex(concat!(
            "ffff001000002320000efff803000000",
            "ffff0018000023200007000700010204",
            "0000000000000005",
            "ffff0018000023200006002000000000",
            "0001000400010404"
        ));
        let acts = decode_actions13(Reader::new(&b)).unwrap();
        let reg = |n, ofs, n_bits| SubField {
            field: Field::Reg(n),
            ofs,
            n_bits,
        };
        assert_eq!(
            acts,
            vec![
                Action::Resubmit {
                    port: None,
                    table: Some(3),
                    ct: false,
                },
                Action::Load {
                    dst: reg(1, 0, 8),
                    value: 5
                },
                Action::Move {
                    src: reg(0, 0, 32),
                    dst: reg(2, 0, 32)
                },
            ]
        );
        let mut w = Writer::new();
        encode_actions13(&mut w, &acts).unwrap();
        assert_eq!(w.buf, b);
    }

    #[test]
    fn conjunction_encodes_like_ovs_with_a_zero_based_clause() {
        // `conjunction(1,2/3),conjunction(5,1/2)` as ovs-ofctl 3.1 sends it.
        let b = hex(concat!(
            "ffff0010000023200022010300000001",
            "ffff0010000023200022000200000005"
        ));
        let acts = vec![
            Action::Conjunction {
                id: 1,
                clause: 2,
                n_clauses: 3,
            },
            Action::Conjunction {
                id: 5,
                clause: 1,
                n_clauses: 2,
            },
        ];
        assert_eq!(decode_actions13(Reader::new(&b)).unwrap(), acts);
        let mut w = Writer::new();
        encode_actions13(&mut w, &acts).unwrap();
        assert_eq!(w.buf, b);
        let mut w = Writer::new();
        encode_actions10(&mut w, &acts).unwrap();
        assert_eq!(w.buf, b);
        // A clause index past the number of clauses is refused.
        let bad = hex("ffff0010000023200022020200000001");
        assert_eq!(
            decode_actions13(Reader::new(&bad)).map_err(|e| e.of_error()),
            Err(OfError::BadActionArgument)
        );
    }

    #[test]
    fn load_and_move_on_nicira_fields_encode_like_ovs() {
        // move:NXM_NX_TUN_ID[0..31]->NXM_NX_REG8[],load:0x5->NXM_NX_PKT_MARK[],
        // move:NXM_NX_XXREG0[0..63]->OXM_OF_PKT_REG3[],
        // load:0x6->NXM_NX_REG15[3..10],
        // move:NXM_NX_CT_LABEL[0..31]->NXM_NX_TUN_IPV4_DST[]
        // as ovs-ofctl 3.1 writes them.
        let b = hex(concat!(
            "ffff0018000023200006002000000000000120080001100",
            "4",
            "ffff0018000023200007001f000142040000000000000005",
            "ffff00180000232000060040000000000001de1080010608",
            "ffff001800002320000700c700011e040000000000000006",
            "ffff00180000232000060020000000000001d81000014004"
        ));
        let text = "move:NXM_NX_TUN_ID[0..31]->NXM_NX_REG8[],load:0x5->NXM_NX_PKT_MARK[],move:NXM_NX_XXREG0[0..63]->OXM_OF_PKT_REG3[],load:0x6->NXM_NX_REG15[3..10],move:NXM_NX_CT_LABEL[0..31]->NXM_NX_TUN_IPV4_DST[]";
        let acts = flows::text::parse_actions(text).unwrap();
        let mut w = Writer::new();
        encode_actions10(&mut w, &acts).unwrap();
        assert_eq!(w.buf, b);
        assert_eq!(decode_actions10(Reader::new(&b)).unwrap(), acts);
    }

    #[test]
    fn controller_output_and_instructions_round_trip() {
        let acts = vec![
            Action::Controller { max_len: 100 },
            Action::Output {
                port: 3,
                max_len: 0,
            },
            Action::ClearActions,
            Action::WriteActions(vec![Action::Group(7)]),
            Action::WriteMetadata {
                value: 5,
                mask: 0xff,
            },
            Action::GotoTable(5),
        ];
        let mut w = Writer::new();
        encode_instructions(&mut w, &acts).unwrap();
        assert_eq!(decode_instructions(Reader::new(&w.buf)).unwrap(), acts);
    }

    #[test]
    fn action_length_not_multiple_of_8_is_bad_len() {
        let b = hex("0000000c00000001000000000000");
        assert_eq!(
            decode_actions13(Reader::new(&b)).map_err(|e| e.of_error()),
            Err(OfError::BadActionLen)
        );
    }

    #[test]
    fn copy_ttl_is_refused_and_enqueue_decodes_as_ovs_does() {
        let b = hex("000b000800000000");
        assert_eq!(
            decode_actions13(Reader::new(&b)).map_err(|e| e.of_error()),
            Err(OfError::BadActionType)
        );
        let b = hex("000b001000010000000000000000000a");
        assert_eq!(
            decode_actions10(Reader::new(&b)).map_err(|e| e.of_error()),
            Ok(vec![Action::Enqueue { port: 1, queue: 10 }])
        );
    }

    #[test]
    fn set_field_vlan_vid_carries_the_present_bit() {
        let mut w = Writer::new();
        encode_actions13(&mut w, &[Action::SetVlanVid(5)]).unwrap();
        assert_eq!(w.buf, hex("0019001080000c021005000000000000"));
    }

    #[test]
    fn one_zero_actions_round_trip() {
        let acts = vec![
            Action::Output {
                port: 2,
                max_len: 0,
            },
            Action::SetVlanVid(10),
            Action::StripVlan,
            Action::SetDlSrc([0, 1, 2, 3, 4, 5]),
            Action::SetNwDst(0x0a00_0001),
            Action::SetNwTos(16),
            Action::SetTpDst(80),
            Action::Controller { max_len: 128 },
            Action::Resubmit {
                port: Some(4),
                table: None,
                ct: false,
            },
            Action::DecTtl,
        ];
        let mut w = Writer::new();
        encode_actions10(&mut w, &acts).unwrap();
        assert_eq!(decode_actions10(Reader::new(&w.buf)).unwrap(), acts);
    }

    /// OpenFlow 1.5 as ovn-controller sends it: masked set_field
    /// (`set_field:0/0x1000->reg10`), copy_field for move, and
    /// `set_field:ANY->in_port`, each decoded and re-encoded byte for byte.
    #[test]
    fn openflow15_masked_set_field_copy_field_and_in_port_any_round_trip() {
        // set_field:0/0x1000->reg10 (NXM1 reg10, masked)
        let masked = hex("00190010000115080000000000001000");
        // move:NXM_NX_REG10[12]->NXM_NX_XXREG0[111]
        let copy = hex("001c00180001000c006f0000000114040001de1000000000");
        // set_field:ANY->in_port
        let any = hex("0019001080000004ffffffff00000000");
        // The same as OVS writes it: NXM_OF_IN_PORT, 16 bits.
        let nxm_any = hex("0019001000000002ffff000000000000");
        assert_eq!(
            decode_actions13(Reader::new(&nxm_any)).unwrap(),
            decode_actions13(Reader::new(&any)).unwrap()
        );
        for b in [masked, copy, nxm_any.clone()] {
            let acts = decode_actions13(Reader::new(&b)).unwrap();
            let mut w = Writer::new();
            encode_actions15(&mut w, &acts).unwrap();
            assert_eq!(w.buf, b, "{acts:?}");
        }
        let acts = decode_actions13(Reader::new(&hex(
            "001c00180001000c006f0000000114040001de1000000000",
        )))
        .unwrap();
        assert_eq!(
            acts,
            vec![Action::Move {
                src: SubField {
                    field: Field::Reg(10),
                    ofs: 12,
                    n_bits: 1
                },
                dst: SubField {
                    field: Field::XXReg(0),
                    ofs: 111,
                    n_bits: 1
                },
            }]
        );
    }
}
