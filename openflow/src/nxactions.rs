//! Wire format of the Nicira extension actions that `flows::nxaction`
//! models (learn, ct, nat, clone, check_pkt_larger, the field stack,
//! output:reg, multipath, bundle, controller2, dec_ttl(ids), note, exit,
//! set_queue, fin_timeout, ct_clear, resubmit(..,ct)), laid out as Open
//! vSwitch encodes them. Shared by OpenFlow 1.0 and 1.3+; nested action
//! lists (clone, ct) use the version's own action encoding.

use flows::action::{
    Action, Bundle, BundleAlgorithm, ControllerSpec, Ct, HashFields, Learn, LearnSpec, LearnSrc,
    Multipath, MultipathAlgorithm, Nat, NatRange, PacketInReason, SubField,
};
use flows::nxaction::{
    LEARN_WRITE_RESULT, NAT_DST, NAT_PERSISTENT, NAT_PROTO_HASH, NAT_PROTO_RANDOM, NAT_SRC,
};

use crate::consts::{NX_VENDOR_ID, port_from_10, port_to_10};
use crate::error::{DecodeError, EncodeError, OfError};
use crate::oxm;
use crate::wire::{Reader, Writer};

pub(crate) mod sub {
    pub const SET_QUEUE: u16 = 4;
    pub const NOTE: u16 = 8;
    pub const MULTIPATH: u16 = 10;
    pub const BUNDLE: u16 = 12;
    pub const BUNDLE_LOAD: u16 = 13;
    pub const OUTPUT_REG: u16 = 15;
    pub const LEARN: u16 = 16;
    pub const EXIT: u16 = 17;
    pub const FIN_TIMEOUT: u16 = 19;
    pub const CONTROLLER: u16 = 20;
    pub const DEC_TTL_CNT_IDS: u16 = 21;
    pub const STACK_PUSH: u16 = 27;
    pub const STACK_POP: u16 = 28;
    pub const SAMPLE: u16 = 29;
    pub const CT: u16 = 35;
    pub const NAT: u16 = 36;
    pub const CONTROLLER2: u16 = 37;
    pub const CLONE: u16 = 42;
    pub const CT_CLEAR: u16 = 43;
    pub const RESUBMIT_TABLE_CT: u16 = 44;
    pub const LEARN2: u16 = 45;
    pub const CHECK_PKT_LARGER: u16 = 49;
}

/// NXM_OF_IN_PORT, the header `in_port[0..15]` travels with.
const NXM_OF_IN_PORT: u32 = 0x0000_0002;
/// Bundle member type: OpenFlow ports.
const BUNDLE_MEMBER_OFPORT: u32 = NXM_OF_IN_PORT;

/// Encodes and decodes a whole action list of the connection's version.
pub(crate) struct ListCodec {
    pub encode: fn(&mut Writer, &[Action]) -> Result<(), EncodeError>,
    pub decode: fn(Reader) -> Result<Vec<Action>, DecodeError>,
    pub version: &'static str,
}

fn unsupported(what: impl Into<String>, version: &'static str) -> EncodeError {
    EncodeError::Unsupported {
        what: what.into(),
        version,
    }
}

/// The NXM/OXM header word of a subfield's field.
pub(crate) fn sf_header_word(sf: &SubField, version: &'static str) -> Result<u32, EncodeError> {
    if sf.field == flows::Field::InPort && sf.ofs == 0 && sf.n_bits == 16 {
        return Ok(NXM_OF_IN_PORT);
    }
    if let flows::Field::TunMetadata { idx, .. } = sf.field {
        return Ok(oxm::tun_metadata_oxm_header(idx).word(false));
    }
    let (f, _) = oxm::from_flows_field(sf.field)
        .ok_or_else(|| unsupported(format!("field {:?}", sf.field), version))?;
    let h = oxm::nxm_header(f);
    if h.experimenter.is_some() {
        return Err(unsupported(
            format!("experimenter field {:?} in a Nicira action", sf.field),
            version,
        ));
    }
    Ok(h.word(false))
}

/// A bit range of `tun_metadata{idx}` named by a header of `len` bytes,
/// unbound until a bridge's TLV map places it (at most 128 bits, what a
/// field value holds).
pub(crate) fn tun_metadata_subfield(
    idx: u8,
    len: u8,
    ofs: u16,
    n_bits: u16,
) -> Result<SubField, OfError> {
    let end = u32::from(ofs) + u32::from(n_bits);
    if n_bits == 0 || end > u32::from(len) * 8 || end > 128 {
        return Err(OfError::BadActionArgument);
    }
    Ok(SubField {
        field: flows::Field::tun_metadata_unbound(idx, len),
        ofs: ofs as u8,
        n_bits: n_bits as u8,
    })
}

/// The subfield a header word with `ofs`/`n_bits` names.
pub(crate) fn sf_from_header(header: u32, ofs: u16, n_bits: u16) -> Result<SubField, OfError> {
    let class = (header >> 16) as u16;
    let field_no = ((header >> 9) & 0x7f) as u8;
    if let Some(idx) = oxm::tun_metadata_index(class, field_no) {
        return tun_metadata_subfield(idx, (header & 0xff) as u8, ofs, n_bits);
    }
    let (f, width) = oxm::lookup(class, field_no, None).ok_or(OfError::BadActionArgument)?;
    if n_bits == 0 || u32::from(ofs) + u32::from(n_bits) > u32::from(width) * 8 {
        return Err(OfError::BadActionArgument);
    }
    Ok(SubField {
        field: oxm::to_flows_field(f),
        ofs: u8::try_from(ofs).map_err(|_| OfError::BadActionArgument)?,
        n_bits: u8::try_from(n_bits).map_err(|_| OfError::BadActionArgument)?,
    })
}

fn ofs_nbits(sf: &SubField) -> u16 {
    (u16::from(sf.ofs) << 6) | u16::from(sf.n_bits - 1)
}

fn sf_from_ofs_nbits(header: u32, v: u16) -> Result<SubField, OfError> {
    sf_from_header(header, v >> 6, (v & 0x3f) + 1)
}

/// Starts a Nicira action; returns (start, length slot) for `finish`.
fn begin(w: &mut Writer, subtype: u16) -> (usize, usize) {
    let start = w.len();
    w.u16(0xffff);
    let at = w.len_placeholder();
    w.u32(NX_VENDOR_ID);
    w.u16(subtype);
    (start, at)
}

fn finish(w: &mut Writer, (start, at): (usize, usize)) {
    w.pad_to(8);
    w.patch_len_since(at, start);
}

fn port16(p: u32, version: &'static str) -> Result<u16, EncodeError> {
    port_to_10(p).ok_or_else(|| unsupported(format!("port {p}"), version))
}

/// Encodes `a` if it is one of this module's actions; `Ok(false)` if not.
pub(crate) fn encode(w: &mut Writer, a: &Action, lc: &ListCodec) -> Result<bool, EncodeError> {
    let v = lc.version;
    match a {
        Action::Resubmit {
            port,
            table,
            ct: true,
        } => {
            let h = begin(w, sub::RESUBMIT_TABLE_CT);
            w.u16(match port {
                None => 0xfff8,
                Some(p) => port16(*p, v)?,
            });
            w.u8(table.unwrap_or(0xff));
            finish(w, h);
        }
        Action::ControllerEx(c) => encode_controller(w, c),
        Action::DecTtlIds(ids) => {
            let h = begin(w, sub::DEC_TTL_CNT_IDS);
            w.u16(ids.len() as u16);
            w.zeros(4);
            for id in ids {
                w.u16(*id);
            }
            finish(w, h);
        }
        Action::StackPush(sf) | Action::StackPop(sf) => {
            let st = if matches!(a, Action::StackPush(_)) {
                sub::STACK_PUSH
            } else {
                sub::STACK_POP
            };
            let h = begin(w, st);
            w.u16(u16::from(sf.ofs));
            w.u32(sf_header_word(sf, v)?);
            w.u16(u16::from(sf.n_bits));
            w.zeros(6);
            finish(w, h);
        }
        Action::OutputReg { src, max_len } => {
            let h = begin(w, sub::OUTPUT_REG);
            w.u16(ofs_nbits(src));
            w.u32(sf_header_word(src, v)?);
            w.u16(*max_len);
            w.zeros(6);
            finish(w, h);
        }
        Action::Note(bytes) => {
            let h = begin(w, sub::NOTE);
            w.bytes(bytes);
            // At least the six bytes that fill the 16-byte minimum.
            if bytes.len() < 6 {
                w.zeros(6 - bytes.len());
            }
            finish(w, h);
        }
        Action::Exit => {
            let h = begin(w, sub::EXIT);
            w.zeros(6);
            finish(w, h);
        }
        Action::Multipath(m) => {
            let h = begin(w, sub::MULTIPATH);
            w.u16(m.fields.wire());
            w.u16(m.basis);
            w.u16(0);
            w.u16(m.algorithm.wire());
            w.u16((m.n_links - 1) as u16);
            w.u32(m.arg);
            w.u16(0);
            w.u16(ofs_nbits(&m.dst));
            w.u32(sf_header_word(&m.dst, v)?);
            finish(w, h);
        }
        Action::Bundle(b) => {
            let h = begin(
                w,
                if b.dst.is_some() {
                    sub::BUNDLE_LOAD
                } else {
                    sub::BUNDLE
                },
            );
            w.u16(b.algorithm.wire());
            w.u16(b.fields.wire());
            w.u16(b.basis);
            w.u32(BUNDLE_MEMBER_OFPORT);
            w.u16(b.members.len() as u16);
            match &b.dst {
                Some(d) => {
                    w.u16(ofs_nbits(d));
                    w.u32(sf_header_word(d, v)?);
                }
                None => {
                    w.u16(0);
                    w.u32(0);
                }
            }
            w.zeros(4);
            for p in &b.members {
                w.u16(port16(*p, v)?);
            }
            finish(w, h);
        }
        Action::Learn(l) => encode_learn(w, l, v)?,
        Action::Sample {
            probability,
            collector_set_id,
            obs_domain_id,
            obs_point_id,
        } => {
            let h = begin(w, sub::SAMPLE);
            w.u16(*probability);
            w.u32(*collector_set_id);
            w.u32(*obs_domain_id);
            w.u32(*obs_point_id);
            finish(w, h);
        }
        Action::FinTimeout { idle, hard } => {
            let h = begin(w, sub::FIN_TIMEOUT);
            w.u16(*idle);
            w.u16(*hard);
            w.zeros(2);
            finish(w, h);
        }
        Action::SetQueue(q) => {
            let h = begin(w, sub::SET_QUEUE);
            w.zeros(2);
            w.u32(*q);
            finish(w, h);
        }
        Action::Clone(inner) => {
            let h = begin(w, sub::CLONE);
            w.zeros(6);
            (lc.encode)(w, inner)?;
            finish(w, h);
        }
        Action::CtClear => {
            let h = begin(w, sub::CT_CLEAR);
            w.zeros(6);
            finish(w, h);
        }
        Action::CheckPktLarger { pkt_len, dst } => {
            let h = begin(w, sub::CHECK_PKT_LARGER);
            w.u16(*pkt_len);
            w.u16(u16::from(dst.ofs));
            w.u32(sf_header_word(dst, v)?);
            w.zeros(6);
            finish(w, h);
        }
        Action::Ct(ct) => encode_ct(w, ct, lc)?,
        Action::Nat(n) => encode_nat(w, n),
        _ => return Ok(false),
    }
    Ok(true)
}

fn encode_controller(w: &mut Writer, c: &ControllerSpec) {
    if c.userdata.is_empty() && !c.pause && c.meter_id == 0 {
        let h = begin(w, sub::CONTROLLER);
        w.u16(c.max_len);
        w.u16(c.controller_id);
        w.u8(c.reason.wire());
        w.u8(0);
        finish(w, h);
        return;
    }
    let h = begin(w, sub::CONTROLLER2);
    w.zeros(6);
    let prop = |w: &mut Writer, ty: u16, body: &[u8]| {
        let start = w.len();
        w.u16(ty);
        w.u16((4 + body.len()) as u16);
        w.bytes(body);
        let pad = (8 - (w.len() - start) % 8) % 8;
        w.zeros(pad);
    };
    // OVS writes 16-bit properties as the value and two zero bytes, both
    // inside the property's length.
    let u16_body = |v: u16| {
        let b = v.to_be_bytes();
        [b[0], b[1], 0, 0]
    };
    if c.max_len != u16::MAX {
        prop(w, 0, &u16_body(c.max_len));
    }
    if c.controller_id != 0 {
        prop(w, 1, &u16_body(c.controller_id));
    }
    if c.reason != PacketInReason::Action {
        prop(w, 2, &[c.reason.wire()]);
    }
    if !c.userdata.is_empty() {
        prop(w, 3, &c.userdata);
    }
    if c.pause {
        prop(w, 4, &[]);
    }
    if c.meter_id != 0 {
        prop(w, 5, &c.meter_id.to_be_bytes());
    }
    finish(w, h);
}

fn write_imm(w: &mut Writer, v: u128, n_bits: u8) {
    let n_bytes = usize::from(n_bits).div_ceil(16) * 2;
    let be = v.to_be_bytes();
    w.bytes(&be[16 - n_bytes..]);
}

fn encode_learn(w: &mut Writer, l: &Learn, v: &'static str) -> Result<(), EncodeError> {
    let learn2 = l.limit != 0 || l.result_dst.is_some();
    let h = begin(w, if learn2 { sub::LEARN2 } else { sub::LEARN });
    w.u16(l.idle_timeout);
    w.u16(l.hard_timeout);
    w.u16(l.priority);
    w.u64(l.cookie);
    w.u16(l.flags);
    w.u8(l.table);
    w.u8(0);
    w.u16(l.fin_idle_timeout);
    w.u16(l.fin_hard_timeout);
    if learn2 {
        w.u32(l.limit);
        w.u16(l.result_dst.map_or(0, |r| u16::from(r.ofs)));
        w.zeros(2);
        if let Some(r) = &l.result_dst {
            w.u32(sf_header_word(r, v)?);
        }
    }
    for spec in &l.specs {
        let n = u16::from(spec.n_bits());
        let (src_imm, dst_type) = match spec {
            LearnSpec::Match { src, .. } => (matches!(src, LearnSrc::Imm(_)), 0u16),
            LearnSpec::Load { src, .. } => (matches!(src, LearnSrc::Imm(_)), 1),
            LearnSpec::Output { .. } => (false, 2),
        };
        w.u16((u16::from(src_imm) << 13) | (dst_type << 11) | n);
        match spec {
            LearnSpec::Match { src, .. } | LearnSpec::Load { src, .. } => match src {
                LearnSrc::Field(s) => {
                    w.u32(sf_header_word(s, v)?);
                    w.u16(u16::from(s.ofs));
                }
                LearnSrc::Imm(x) => write_imm(w, *x, spec.n_bits()),
            },
            LearnSpec::Output { src } => {
                w.u32(sf_header_word(src, v)?);
                w.u16(u16::from(src.ofs));
            }
        }
        if let LearnSpec::Match { dst, .. } | LearnSpec::Load { dst, .. } = spec {
            w.u32(sf_header_word(dst, v)?);
            w.u16(u16::from(dst.ofs));
        }
    }
    finish(w, h);
    Ok(())
}

fn encode_ct(w: &mut Writer, ct: &Ct, lc: &ListCodec) -> Result<(), EncodeError> {
    let h = begin(w, sub::CT);
    w.u16(ct.flags);
    match &ct.zone_src {
        Some(z) => {
            w.u32(sf_header_word(z, lc.version)?);
            w.u16(ofs_nbits(z));
        }
        None => {
            w.u32(0);
            w.u16(ct.zone_imm);
        }
    }
    w.u8(ct.table.unwrap_or(0xff));
    w.zeros(3);
    w.u16(ct.alg);
    (lc.encode)(w, &ct.actions)?;
    finish(w, h);
    Ok(())
}

fn encode_nat(w: &mut Writer, n: &Nat) {
    let h = begin(w, sub::NAT);
    w.zeros(2);
    w.u16(n.flags);
    let mut present = 0u16;
    let mut body = Writer::new();
    match n.range {
        Some(NatRange::V4 { min, max }) => {
            if min != 0 {
                present |= 1;
                body.u32(min);
            }
            if let Some(m) = max.filter(|m| *m != 0) {
                present |= 2;
                body.u32(m);
            }
        }
        Some(NatRange::V6 { min, max }) => {
            if min != 0 {
                present |= 4;
                body.bytes(&min.to_be_bytes());
            }
            if let Some(m) = max.filter(|m| *m != 0) {
                present |= 8;
                body.bytes(&m.to_be_bytes());
            }
        }
        None => {}
    }
    if let Some(p) = n.proto_min.filter(|p| *p != 0) {
        present |= 16;
        body.u16(p);
    }
    if let Some(p) = n.proto_max.filter(|p| *p != 0) {
        present |= 32;
        body.u16(p);
    }
    w.u16(present);
    w.bytes(&body.buf);
    finish(w, h);
}

/// Decodes the Nicira action `subtype` (body after the subtype; `len` is
/// the whole action's length). `Ok(None)` when the subtype is not one of
/// this module's.
pub(crate) fn decode(
    subtype: u16,
    mut b: Reader,
    len: usize,
    lc: &ListCodec,
) -> Result<Option<Action>, DecodeError> {
    let e = OfError::BadActionLen;
    let fixed = |n: usize| if len == n { Ok(()) } else { Err(e) };
    let arg = OfError::BadActionArgument;
    let a = match subtype {
        sub::RESUBMIT_TABLE_CT => {
            fixed(16)?;
            let port = b.u16()?;
            let table = b.u8()?;
            Action::Resubmit {
                port: (port != 0xfff8).then(|| port_from_10(port)),
                table: (table != 0xff).then_some(table),
                ct: true,
            }
        }
        sub::CONTROLLER => {
            fixed(16)?;
            let max_len = b.u16()?;
            let controller_id = b.u16()?;
            let reason = PacketInReason::from_wire(b.u8()?).ok_or(arg)?;
            ControllerSpec {
                max_len,
                controller_id,
                reason,
                ..ControllerSpec::default()
            }
            .into_action()
        }
        sub::CONTROLLER2 => {
            b.skip(6)?;
            let mut c = ControllerSpec::default();
            while !b.is_empty() {
                let ty = b.u16()?;
                let plen = usize::from(b.u16()?);
                if plen < 4 {
                    return Err(e.into());
                }
                let body = b.bytes(plen - 4)?;
                let pad = (8 - plen % 8) % 8;
                b.skip(pad.min(b.remaining()))?;
                let be16 = || -> Result<u16, OfError> {
                    match body {
                        [a, b] | [a, b, 0, 0] => Ok(u16::from_be_bytes([*a, *b])),
                        _ => Err(e),
                    }
                };
                match ty {
                    0 => c.max_len = be16()?,
                    1 => c.controller_id = be16()?,
                    2 => {
                        let r = *body.first().ok_or(e)?;
                        c.reason = PacketInReason::from_wire(r).ok_or(arg)?;
                    }
                    3 => c.userdata = body.to_vec(),
                    4 => c.pause = true,
                    5 => c.meter_id = u32::from_be_bytes(body.try_into().map_err(|_| e)?),
                    _ => return Err(arg.into()),
                }
            }
            Action::ControllerEx(Box::new(c))
        }
        sub::DEC_TTL_CNT_IDS => {
            let n = usize::from(b.u16()?);
            b.skip(4)?;
            let mut ids = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                ids.push(b.u16()?);
            }
            Action::DecTtlIds(ids)
        }
        sub::STACK_PUSH | sub::STACK_POP => {
            fixed(24)?;
            let ofs = b.u16()?;
            let header = b.u32()?;
            let n_bits = b.u16()?;
            let sf = sf_from_header(header, ofs, n_bits)?;
            if subtype == sub::STACK_PUSH {
                Action::StackPush(sf)
            } else {
                Action::StackPop(sf)
            }
        }
        sub::OUTPUT_REG => {
            fixed(24)?;
            let on = b.u16()?;
            let header = b.u32()?;
            let max_len = b.u16()?;
            Action::OutputReg {
                src: sf_from_ofs_nbits(header, on)?,
                max_len,
            }
        }
        sub::NOTE => Action::Note(b.rest().to_vec()),
        sub::EXIT => {
            fixed(16)?;
            Action::Exit
        }
        sub::MULTIPATH => {
            fixed(32)?;
            let fields = HashFields::from_wire(b.u16()?).ok_or(arg)?;
            let basis = b.u16()?;
            b.skip(2)?;
            let algorithm = MultipathAlgorithm::from_wire(b.u16()?).ok_or(arg)?;
            let max_link = b.u16()?;
            let a = b.u32()?;
            b.skip(2)?;
            let on = b.u16()?;
            let dst = sf_from_ofs_nbits(b.u32()?, on)?;
            Action::Multipath(Box::new(Multipath {
                fields,
                basis,
                algorithm,
                n_links: u32::from(max_link) + 1,
                arg: a,
                dst,
            }))
        }
        sub::BUNDLE | sub::BUNDLE_LOAD => {
            let algorithm = BundleAlgorithm::from_wire(b.u16()?).ok_or(arg)?;
            let fields = HashFields::from_wire(b.u16()?).ok_or(arg)?;
            let basis = b.u16()?;
            if b.u32()? != BUNDLE_MEMBER_OFPORT {
                return Err(arg.into());
            }
            let n = usize::from(b.u16()?);
            let on = b.u16()?;
            let header = b.u32()?;
            b.skip(4)?;
            let dst = if subtype == sub::BUNDLE_LOAD {
                Some(sf_from_ofs_nbits(header, on)?)
            } else {
                None
            };
            if b.remaining() < n * 2 {
                return Err(e.into());
            }
            let mut members = Vec::with_capacity(n);
            for _ in 0..n {
                members.push(port_from_10(b.u16()?));
            }
            Action::Bundle(Box::new(Bundle {
                fields,
                basis,
                algorithm,
                members,
                dst,
            }))
        }
        sub::LEARN | sub::LEARN2 => Action::Learn(Box::new(decode_learn(subtype, b)?)),
        sub::SAMPLE => {
            fixed(24)?;
            Action::Sample {
                probability: b.u16()?,
                collector_set_id: b.u32()?,
                obs_domain_id: b.u32()?,
                obs_point_id: b.u32()?,
            }
        }
        sub::FIN_TIMEOUT => {
            fixed(16)?;
            Action::FinTimeout {
                idle: b.u16()?,
                hard: b.u16()?,
            }
        }
        sub::SET_QUEUE => {
            fixed(16)?;
            b.skip(2)?;
            Action::SetQueue(b.u32()?)
        }
        sub::CLONE => {
            b.skip(6)?;
            Action::Clone((lc.decode)(b)?)
        }
        sub::CT_CLEAR => {
            fixed(16)?;
            Action::CtClear
        }
        sub::CHECK_PKT_LARGER => {
            fixed(24)?;
            let pkt_len = b.u16()?;
            let ofs = b.u16()?;
            let header = b.u32()?;
            Action::CheckPktLarger {
                pkt_len,
                dst: sf_from_header(header, ofs, 1)?,
            }
        }
        sub::CT => {
            let flags = b.u16()?;
            let zone_src = b.u32()?;
            let zone = b.u16()?;
            let table = b.u8()?;
            b.skip(3)?;
            let alg = b.u16()?;
            let actions = (lc.decode)(b)?;
            let ct = Ct {
                flags,
                zone_src: if zone_src != 0 {
                    Some(sf_from_ofs_nbits(zone_src, zone)?)
                } else {
                    None
                },
                zone_imm: if zone_src == 0 { zone } else { 0 },
                table: (table != 0xff).then_some(table),
                alg,
                actions,
            };
            Action::Ct(Box::new(ct))
        }
        sub::NAT => {
            b.skip(2)?;
            let flags = b.u16()?;
            let present = b.u16()?;
            if flags & NAT_SRC != 0 && flags & NAT_DST != 0 {
                return Err(arg.into());
            }
            let mut n = Nat {
                flags,
                ..Nat::default()
            };
            if present & 3 != 0 {
                let min = if present & 1 != 0 { b.u32()? } else { 0 };
                let max = if present & 2 != 0 {
                    Some(b.u32()?)
                } else {
                    None
                };
                n.range = Some(NatRange::V4 { min, max });
            } else if present & 12 != 0 {
                let min = if present & 4 != 0 {
                    u128::from_be_bytes(b.array::<16>()?)
                } else {
                    0
                };
                let max = if present & 8 != 0 {
                    Some(u128::from_be_bytes(b.array::<16>()?))
                } else {
                    None
                };
                n.range = Some(NatRange::V6 { min, max });
            }
            if present & 16 != 0 {
                n.proto_min = Some(b.u16()?);
            }
            if present & 32 != 0 {
                n.proto_max = Some(b.u16()?);
            }
            let _ = (NAT_PERSISTENT, NAT_PROTO_HASH, NAT_PROTO_RANDOM);
            Action::Nat(Box::new(n))
        }
        _ => return Ok(None),
    };
    Ok(Some(a))
}

fn decode_learn(subtype: u16, mut b: Reader) -> Result<Learn, DecodeError> {
    let arg = OfError::BadActionArgument;
    let mut l = Learn {
        idle_timeout: b.u16()?,
        hard_timeout: b.u16()?,
        priority: b.u16()?,
        cookie: b.u64()?,
        flags: b.u16()?,
        table: b.u8()?,
        ..Learn::default()
    };
    b.skip(1)?;
    l.fin_idle_timeout = b.u16()?;
    l.fin_hard_timeout = b.u16()?;
    if l.table == 0xff {
        return Err(arg.into());
    }
    if subtype == sub::LEARN2 {
        l.limit = b.u32()?;
        let ofs = b.u16()?;
        b.skip(2)?;
        if l.flags & LEARN_WRITE_RESULT != 0 {
            l.result_dst = Some(sf_from_header(b.u32()?, ofs, 1)?);
        }
    }
    while b.remaining() >= 2 {
        let hdr = b.u16()?;
        if hdr == 0 {
            // Padding: the rest must be zeros.
            if b.rest().iter().any(|x| *x != 0) {
                return Err(arg.into());
            }
            break;
        }
        let n_bits = hdr & 0x3ff;
        let src_imm = hdr & (1 << 13) != 0;
        let dst_type = (hdr >> 11) & 3;
        if n_bits == 0 || n_bits > 128 || hdr & 0xc000 != 0 {
            return Err(arg.into());
        }
        let src = if dst_type == 2 || !src_imm {
            let h = b.u32()?;
            let ofs = b.u16()?;
            LearnSrc::Field(sf_from_header(h, ofs, n_bits)?)
        } else {
            let n_bytes = usize::from(n_bits).div_ceil(16) * 2;
            let raw = b.bytes(n_bytes)?;
            let v = raw.iter().fold(0u128, |acc, x| (acc << 8) | u128::from(*x));
            LearnSrc::Imm(v)
        };
        let spec = match dst_type {
            0 | 1 => {
                let h = b.u32()?;
                let ofs = b.u16()?;
                let dst = sf_from_header(h, ofs, n_bits)?;
                if dst_type == 0 {
                    LearnSpec::Match { src, dst }
                } else {
                    LearnSpec::Load { src, dst }
                }
            }
            2 => match src {
                LearnSrc::Field(s) => LearnSpec::Output { src: s },
                LearnSrc::Imm(_) => return Err(arg.into()),
            },
            _ => return Err(arg.into()),
        };
        l.specs.push(spec);
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) {
        let acts = flows::text::parse_actions(text).unwrap();
        for lc in [
            &crate::actions::LC13_FOR_TESTS,
            &crate::actions::LC10_FOR_TESTS,
        ] {
            let mut w = Writer::new();
            (lc.encode)(&mut w, &acts).unwrap();
            assert_eq!(w.buf.len() % 8, 0, "{text}");
            let back = (lc.decode)(Reader::new(&w.buf))
                .unwrap_or_else(|e| panic!("{text} ({}): {e:?} {:02x?}", lc.version, w.buf));
            assert_eq!(
                flows::text::format_actions(&back),
                flows::text::format_actions(&acts),
                "{text} ({})",
                lc.version
            );
        }
    }

    #[test]
    fn sample_is_nxast_sample_with_the_hand_checked_layout() {
        let acts = flows::text::parse_actions(
            "sample(probability=65535,collector_set_id=7,obs_domain_id=123,obs_point_id=456)",
        )
        .unwrap();
        let mut w = Writer::new();
        (crate::actions::LC13_FOR_TESTS.encode)(&mut w, &acts).unwrap();
        #[rustfmt::skip]
        let want = [
            0xff, 0xff, 0x00, 0x18, // OFPAT_VENDOR, length 24
            0x00, 0x00, 0x23, 0x20, // NX_VENDOR_ID
            0x00, 0x1d, 0xff, 0xff, // NXAST_SAMPLE (29), probability 65535
            0x00, 0x00, 0x00, 0x07, // collector_set_id
            0x00, 0x00, 0x00, 0x7b, // obs_domain_id
            0x00, 0x00, 0x01, 0xc8, // obs_point_id
        ];
        assert_eq!(w.buf, want);
        assert!(flows::text::parse_actions("sample(probability=0)").is_err());
        assert!(flows::text::parse_actions("sample(probability=5,sampling_port=1)").is_err());
    }

    #[test]
    fn every_nicira_action_round_trips_through_both_versions() {
        for t in [
            "sample(probability=5,collector_set_id=6,obs_domain_id=7,obs_point_id=8)",
            "controller(reason=no_match,max_len=100,id=3,userdata=01.02,pause,meter_id=5)",
            "controller(userdata=00.00.00.0c.00.00.00.00,pause)",
            "controller(reason=invalid_ttl)",
            "learn(table=2,limit=5,result_dst=NXM_NX_REG0[3],eth_src=00:00:00:00:00:01,load:0x12345678->NXM_NX_REG1[],output:NXM_NX_REG2[0..15])",
            "clone(clone(output:1),ct_clear)",
            "check_pkt_larger(1500)->NXM_NX_REG3[7]",
            "dec_ttl(1,2,3)",
            "push:NXM_NX_REG0[0..15],pop:NXM_OF_IN_PORT[]",
            "output(port=NXM_NX_REG0[0..15],max_len=100),output:NXM_NX_REG1[]",
            "note:01.02.03.04.05.06",
            "exit,set_queue:7,fin_timeout(idle_timeout=1)",
            "multipath(symmetric_l4,5,iter_hash,3,2,NXM_NX_REG0[0..1])",
            "bundle(eth_src,0,active_backup,ofport,members:1,2,3),bundle_load(nw_src,3,hrw,ofport,NXM_NX_REG0[],members:)",
            "ct(commit,force,table=3,zone=NXM_NX_REG0[0..15],nat(src=[fe80::1]-[fe80::5]:100-200,persistent,random),alg=ftp)",
            "resubmit(,3,ct),resubmit(5,,ct)",
        ] {
            round_trip(t);
        }
    }

    #[test]
    fn ct_exec_actions_travel_nested_after_nat() {
        let Ok(mut acts) = flows::text::parse_actions("ct(commit,nat(src=10.0.0.1))") else {
            panic!()
        };
        let Action::Ct(ct) = &mut acts[0] else {
            panic!()
        };
        ct.actions.push(Action::Load {
            dst: SubField {
                field: flows::Field::Reg(1),
                ofs: 0,
                n_bits: 32,
            },
            value: 7,
        });
        for lc in [
            &crate::actions::LC13_FOR_TESTS,
            &crate::actions::LC10_FOR_TESTS,
        ] {
            let mut w = Writer::new();
            (lc.encode)(&mut w, &acts).unwrap();
            assert_eq!((lc.decode)(Reader::new(&w.buf)).unwrap(), acts);
        }
    }
}
