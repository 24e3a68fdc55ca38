//! OpenFlow 1.0 `ofp_match`: fixed fields plus a wildcard bitmap.

use flows::Match;
use flows::key::{FlowKey, VLAN_CFI, VLAN_VID_MASK, ethertype};

use crate::consts::{port_from_10, port_to_10};
use crate::error::{DecodeError, EncodeError, OfError};
use crate::wire::{Reader, Writer};

pub const MATCH10_LEN: usize = 40;

const W_IN_PORT: u32 = 1 << 0;
const W_DL_VLAN: u32 = 1 << 1;
const W_DL_SRC: u32 = 1 << 2;
const W_DL_DST: u32 = 1 << 3;
const W_DL_TYPE: u32 = 1 << 4;
const W_NW_PROTO: u32 = 1 << 5;
const W_TP_SRC: u32 = 1 << 6;
const W_TP_DST: u32 = 1 << 7;
const W_NW_SRC_SHIFT: u32 = 8;
const W_NW_DST_SHIFT: u32 = 14;
const W_DL_VLAN_PCP: u32 = 1 << 20;
const W_NW_TOS: u32 = 1 << 21;
/// Every field wildcarded.
pub const W_ALL: u32 = (1 << 22) - 1;
const OFP_VLAN_NONE: u16 = 0xffff;

fn prefix_mask(wild_bits: u32) -> u32 {
    if wild_bits >= 32 {
        0
    } else {
        u32::MAX << wild_bits
    }
}

fn wild_bits(mask: u32) -> Option<u32> {
    let n = mask.trailing_zeros().min(32);
    (prefix_mask(n) == mask).then_some(n)
}

/// Reads a 40-byte OpenFlow 1.0 match.
pub fn decode_match10(r: &mut Reader) -> Result<Match, DecodeError> {
    let mut b = r.within(OfError::BadLen, |r| r.sub(MATCH10_LEN))?;
    let wc = b.u32()?;
    let in_port = b.u16()?;
    let dl_src = b.array::<6>()?;
    let dl_dst = b.array::<6>()?;
    let dl_vlan = b.u16()?;
    let pcp = b.u8()?;
    b.skip(1)?;
    let dl_type = b.u16()?;
    let nw_tos = b.u8()?;
    let nw_proto = b.u8()?;
    b.skip(2)?;
    let nw_src = b.u32()?;
    let nw_dst = b.u32()?;
    let tp_src = b.u16()?;
    let tp_dst = b.u16()?;

    let mut k = FlowKey::default();
    let mut m = FlowKey::default();
    if wc & W_IN_PORT == 0 {
        k.in_port = port_from_10(in_port);
        m.in_port = u32::MAX;
    }
    if wc & W_DL_SRC == 0 {
        k.dl_src = dl_src;
        m.dl_src = [0xff; 6];
    }
    if wc & W_DL_DST == 0 {
        k.dl_dst = dl_dst;
        m.dl_dst = [0xff; 6];
    }
    if wc & W_DL_VLAN == 0 {
        if dl_vlan == OFP_VLAN_NONE {
            k.vlan_tci = 0;
            m.vlan_tci = 0xffff;
        } else {
            k.vlan_tci = VLAN_CFI | (dl_vlan & VLAN_VID_MASK);
            m.vlan_tci = VLAN_CFI | VLAN_VID_MASK;
        }
    }
    if wc & W_DL_VLAN_PCP == 0 && !(wc & W_DL_VLAN == 0 && dl_vlan == OFP_VLAN_NONE) {
        k.vlan_tci |= VLAN_CFI | (u16::from(pcp & 7) << 13);
        m.vlan_tci |= VLAN_CFI | 0xe000;
    }
    if wc & W_DL_TYPE == 0 {
        k.dl_type = dl_type;
        m.dl_type = 0xffff;
    }
    let l3 = wc & W_DL_TYPE == 0 && (dl_type == ethertype::IPV4 || dl_type == ethertype::ARP);
    let ip = wc & W_DL_TYPE == 0 && dl_type == ethertype::IPV4;
    if ip && wc & W_NW_TOS == 0 {
        k.nw_tos = nw_tos & 0xfc;
        m.nw_tos = 0xfc;
    }
    if l3 && wc & W_NW_PROTO == 0 {
        k.nw_proto = nw_proto;
        m.nw_proto = 0xff;
    }
    if l3 {
        m.nw_src = prefix_mask((wc >> W_NW_SRC_SHIFT) & 0x3f);
        k.nw_src = nw_src & m.nw_src;
        m.nw_dst = prefix_mask((wc >> W_NW_DST_SHIFT) & 0x3f);
        k.nw_dst = nw_dst & m.nw_dst;
    }
    let l4 = ip && wc & W_NW_PROTO == 0 && matches!(nw_proto, 1 | 6 | 17 | 132);
    if l4 && wc & W_TP_SRC == 0 {
        k.tp_src = tp_src;
        m.tp_src = if nw_proto == 1 { 0xff } else { 0xffff };
    }
    if l4 && wc & W_TP_DST == 0 {
        k.tp_dst = tp_dst;
        m.tp_dst = if nw_proto == 1 { 0xff } else { 0xffff };
    }
    Ok(Match::new(k, m))
}

fn unsupported(what: &str) -> EncodeError {
    EncodeError::Unsupported {
        what: what.to_string(),
        version: "1.0",
    }
}

/// Writes `m` as a 40-byte OpenFlow 1.0 match; fails for fields 1.0 cannot
/// express (registers, IPv6, partial MAC masks...).
pub fn encode_match10(w: &mut Writer, m: &Match) -> Result<(), EncodeError> {
    let (k, mk) = (&m.key, &m.mask);
    let mut extra = *mk;
    let mut wc = 0u32;
    let in_port = if mk.in_port == 0 {
        wc |= W_IN_PORT;
        0
    } else {
        port_to_10(k.in_port).ok_or_else(|| unsupported("in_port"))?
    };
    extra.in_port = 0;
    let mac = |mm: [u8; 6], bit: u32, wc: &mut u32, name: &str| -> Result<(), EncodeError> {
        match mm {
            [0, 0, 0, 0, 0, 0] => {
                *wc |= bit;
                Ok(())
            }
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] => Ok(()),
            _ => Err(unsupported(name)),
        }
    };
    mac(mk.dl_src, W_DL_SRC, &mut wc, "dl_src mask")?;
    mac(mk.dl_dst, W_DL_DST, &mut wc, "dl_dst mask")?;
    extra.dl_src = [0; 6];
    extra.dl_dst = [0; 6];
    let (dl_vlan, pcp) = match (mk.vlan_tci, k.vlan_tci & VLAN_CFI != 0) {
        (0, _) => {
            wc |= W_DL_VLAN | W_DL_VLAN_PCP;
            (0, 0)
        }
        (0xffff, false) => {
            wc |= W_DL_VLAN_PCP;
            (OFP_VLAN_NONE, 0)
        }
        (0x1fff, true) => {
            wc |= W_DL_VLAN_PCP;
            (k.vlan_tci & VLAN_VID_MASK, 0)
        }
        (0xf000, true) => {
            wc |= W_DL_VLAN;
            (0, (k.vlan_tci >> 13) as u8)
        }
        (0xffff, true) => (k.vlan_tci & VLAN_VID_MASK, (k.vlan_tci >> 13) as u8),
        _ => return Err(unsupported("vlan_tci mask")),
    };
    extra.vlan_tci = 0;
    if mk.dl_type == 0 {
        wc |= W_DL_TYPE;
    } else if mk.dl_type != 0xffff {
        return Err(unsupported("dl_type mask"));
    }
    extra.dl_type = 0;
    match mk.nw_tos {
        0 => wc |= W_NW_TOS,
        0xfc => {}
        _ => return Err(unsupported("nw_tos/nw_ecn")),
    }
    extra.nw_tos = 0;
    match mk.nw_proto {
        0 => wc |= W_NW_PROTO,
        0xff => {}
        _ => return Err(unsupported("nw_proto mask")),
    }
    extra.nw_proto = 0;
    let sw = wild_bits(mk.nw_src).ok_or_else(|| unsupported("non-CIDR nw_src mask"))?;
    let dw = wild_bits(mk.nw_dst).ok_or_else(|| unsupported("non-CIDR nw_dst mask"))?;
    wc |= sw << W_NW_SRC_SHIFT | dw << W_NW_DST_SHIFT;
    extra.nw_src = 0;
    extra.nw_dst = 0;
    for (mm, bit, name) in [
        (mk.tp_src, W_TP_SRC, "tp_src mask"),
        (mk.tp_dst, W_TP_DST, "tp_dst mask"),
    ] {
        match mm {
            0 => wc |= bit,
            0xffff | 0xff => {}
            _ => return Err(unsupported(name)),
        }
    }
    extra.tp_src = 0;
    extra.tp_dst = 0;
    if !extra.is_zero() {
        return Err(unsupported("a field outside OpenFlow 1.0's match"));
    }
    w.u32(wc);
    w.u16(in_port);
    w.bytes(&k.dl_src);
    w.bytes(&k.dl_dst);
    w.u16(dl_vlan);
    w.u8(pcp);
    w.u8(0);
    w.u16(k.dl_type);
    w.u8(k.nw_tos);
    w.u8(k.nw_proto);
    w.u16(0);
    w.u32(k.nw_src);
    w.u32(k.nw_dst);
    w.u16(k.tp_src);
    w.u16(k.tp_dst);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_nw_dst_uses_wildcard_bit_count_and_round_trips() {
        let mut k = FlowKey::default();
        let mut m = FlowKey::default();
        k.dl_type = ethertype::IPV4;
        m.dl_type = 0xffff;
        k.nw_dst = 0x0a00_0000;
        m.nw_dst = 0xffff_ff00;
        let mt = Match::new(k, m);
        let mut w = Writer::new();
        encode_match10(&mut w, &mt).unwrap();
        let wc = u32::from_be_bytes([w.buf[0], w.buf[1], w.buf[2], w.buf[3]]);
        assert_eq!((wc >> W_NW_DST_SHIFT) & 0x3f, 8);
        assert_eq!((wc >> W_NW_SRC_SHIFT) & 0x3f, 32);
        assert_eq!(decode_match10(&mut Reader::new(&w.buf)).unwrap(), mt);
    }

    #[test]
    fn ovs_ofctl_1_0_ip_dst_prefix_decodes() {
        // Bytes ovs-ofctl -O OpenFlow10 sends for `ip,nw_dst=10.0.0.0/24`.
        let mut buf = vec![0x00, 0x32, 0x20, 0xef, 0, 0];
        buf.extend_from_slice(&[0; 12]);
        buf.extend_from_slice(&[0, 0, 0, 0, 0x08, 0x00, 0, 0, 0, 0]);
        buf.extend_from_slice(&[0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0]);
        let m = decode_match10(&mut Reader::new(&buf)).unwrap();
        assert_eq!(m.key.dl_type, ethertype::IPV4);
        assert_eq!((m.key.nw_dst, m.mask.nw_dst), (0x0a00_0000, 0xffff_ff00));
        assert_eq!(m.mask.nw_src, 0);
        assert_eq!(m.mask.in_port, 0);
    }

    #[test]
    fn registers_cannot_be_expressed_in_1_0() {
        let mut k = FlowKey::default();
        let mut m = FlowKey::default();
        k.regs[0] = 1;
        m.regs[0] = u32::MAX;
        let mut w = Writer::new();
        assert!(encode_match10(&mut w, &Match::new(k, m)).is_err());
    }
}
