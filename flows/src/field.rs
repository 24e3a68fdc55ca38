//! Named match fields, as ovs-ofctl names them.
//!
//! Each field maps onto bits of a [`FlowKey`](crate::key::FlowKey). Values are
//! carried as `u128` (wide enough for IPv6 addresses), right-aligned, in host
//! byte order; MAC addresses are the 48-bit big-endian number of their bytes.

use crate::key::{FlowKey, VLAN_CFI, ct_state, ethertype, ipproto, mpls};
use crate::matches::Match;

/// A field that flows can match on, set, load into or move from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Field {
    InPort,
    Metadata,
    Reg(u8),
    DlSrc,
    DlDst,
    DlType,
    /// 802.1Q VID (12 bits) — ovs-ofctl `dl_vlan`.
    DlVlan,
    /// 802.1Q PCP (3 bits) — ovs-ofctl `dl_vlan_pcp`.
    DlVlanPcp,
    /// Whole TCI incl. the present bit — ovs-ofctl `vlan_tci`.
    VlanTci,
    /// OXM `vlan_vid` (13 bits: present bit 0x1000 | VID).
    VlanVid,
    NwSrc,
    NwDst,
    NwProto,
    NwTos,
    IpDscp,
    NwEcn,
    NwTtl,
    NwFrag,
    TpSrc,
    TpDst,
    TcpFlags,
    ArpOp,
    ArpSpa,
    ArpTpa,
    ArpSha,
    ArpTha,
    Ipv6Src,
    Ipv6Dst,
    Ipv6Label,
    /// MPLS fields of the top label stack entry (`FlowKey::mpls_lse`).
    MplsLabel,
    MplsTc,
    MplsBos,
    MplsTtl,
    IcmpType,
    IcmpCode,
    NdTarget,
    NdSll,
    NdTll,
    /// 64-bit register `xreg0..7` (regs 2N and 2N+1).
    XReg(u8),
    /// 128-bit register `xxreg0..3` (regs 4N..4N+3).
    XXReg(u8),
    PktMark,
    ConjId,
    DpHash,
    RecircId,
    TunId,
    TunSrc,
    TunDst,
    TunIpv6Src,
    TunIpv6Dst,
    TunFlags,
    TunGbpId,
    TunGbpFlags,
    /// `tun_metadataN`, resolved against a bridge's TLV map
    /// ([`crate::tlv::TlvMap::field`]): `idx` is N (0..63), `off`/`len` are
    /// the option's bytes in [`FlowKey::tun_metadata`]. A value or mask
    /// written through this field also sets (in a mask: makes exact) the
    /// option's bit in [`FlowKey::tun_metadata_present`], so a match on it
    /// fails when the packet lacks the option and `set_field` makes the
    /// option present. Values are at most 16 bytes (the `u128` a field
    /// value is).
    TunMetadata {
        idx: u8,
        off: u8,
        len: u8,
    },
    CtState,
    CtZone,
    CtMark,
    CtLabel,
    CtNwSrc,
    CtNwDst,
    CtIpv6Src,
    CtIpv6Dst,
    CtNwProto,
    CtTpSrc,
    CtTpDst,
}

/// A flow names a field without what that field needs to be meaningful.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} requires {needs}")]
pub struct PrereqError {
    /// ovs-ofctl name of the offending field.
    pub field: &'static str,
    /// What is missing, in ovs-ofctl words (e.g. "ip or ipv6 and nw_proto tcp, udp or sctp").
    pub needs: &'static str,
}

/// What a field needs the flow to establish before it means anything.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Prereq {
    None,
    /// dl_type=0x0800.
    Ipv4,
    /// dl_type=0x86dd.
    Ipv6,
    /// dl_type=0x0800 or 0x86dd.
    IpAny,
    /// dl_type=0x0800 or 0x0806 (nw_src/nw_dst double as ARP addresses).
    Ipv4OrArp,
    /// dl_type=0x0806 or 0x8035 (RARP).
    Arp,
    /// IPv4/IPv6 and nw_proto tcp, udp or sctp.
    L4Ports,
    /// IPv4/IPv6 and nw_proto tcp.
    Tcp,
    /// ip+icmp or ipv6+icmp6.
    Icmp,
    /// ipv6+icmp6 with icmp_type 135 or 136.
    Nd,
    /// ipv6+icmp6 with icmp_type 135 (neighbor solicitation).
    NdSolicit,
    /// ipv6+icmp6 with icmp_type 136 (neighbor advertisement).
    NdAdvert,
    /// IPv4/IPv6 and nw_proto udp.
    Udp,
    /// IPv4/IPv6 and nw_proto sctp.
    Sctp,
    /// ip and nw_proto icmp.
    Icmpv4,
    /// ipv6 and nw_proto icmp6.
    Icmpv6,
    /// dl_type=0x8847 or 0x8848.
    Mpls,
    /// An 802.1Q tag is present (OXM `vlan_pcp`).
    VlanPresent,
    /// A tracked, valid connection: `ct_state=+trk-inv` (OVS's "CT").
    Ct,
    /// [`Prereq::Ct`] and ip.
    CtIpv4,
    /// [`Prereq::Ct`] and ipv6.
    CtIpv6,
}

const RARP: u16 = 0x8035;

fn mac_to_u128(m: [u8; 6]) -> u128 {
    m.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
}

fn u128_to_mac(v: u128) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (i, b) in out.iter_mut().enumerate() {
        *b = (v >> (8 * (5 - i))) as u8;
    }
    out
}

/// Replaces the bits of `old` selected by `mask` with those of `new`.
fn merge<T>(old: T, new: T, mask: T) -> T
where
    T: Copy
        + std::ops::BitAnd<Output = T>
        + std::ops::BitOr<Output = T>
        + std::ops::Not<Output = T>,
{
    (old & !mask) | (new & mask)
}

const REG_NAMES: [&str; 16] = [
    "reg0", "reg1", "reg2", "reg3", "reg4", "reg5", "reg6", "reg7", "reg8", "reg9", "reg10",
    "reg11", "reg12", "reg13", "reg14", "reg15",
];
const NXM_REG_NAMES: [&str; 16] = [
    "NXM_NX_REG0",
    "NXM_NX_REG1",
    "NXM_NX_REG2",
    "NXM_NX_REG3",
    "NXM_NX_REG4",
    "NXM_NX_REG5",
    "NXM_NX_REG6",
    "NXM_NX_REG7",
    "NXM_NX_REG8",
    "NXM_NX_REG9",
    "NXM_NX_REG10",
    "NXM_NX_REG11",
    "NXM_NX_REG12",
    "NXM_NX_REG13",
    "NXM_NX_REG14",
    "NXM_NX_REG15",
];
const XREG_NAMES: [&str; 8] = [
    "xreg0", "xreg1", "xreg2", "xreg3", "xreg4", "xreg5", "xreg6", "xreg7",
];
const OXM_PKT_REG_NAMES: [&str; 8] = [
    "OXM_OF_PKT_REG0",
    "OXM_OF_PKT_REG1",
    "OXM_OF_PKT_REG2",
    "OXM_OF_PKT_REG3",
    "OXM_OF_PKT_REG4",
    "OXM_OF_PKT_REG5",
    "OXM_OF_PKT_REG6",
    "OXM_OF_PKT_REG7",
];
const TUN_METADATA_NAMES: [&str; 64] = [
    "tun_metadata0",
    "tun_metadata1",
    "tun_metadata2",
    "tun_metadata3",
    "tun_metadata4",
    "tun_metadata5",
    "tun_metadata6",
    "tun_metadata7",
    "tun_metadata8",
    "tun_metadata9",
    "tun_metadata10",
    "tun_metadata11",
    "tun_metadata12",
    "tun_metadata13",
    "tun_metadata14",
    "tun_metadata15",
    "tun_metadata16",
    "tun_metadata17",
    "tun_metadata18",
    "tun_metadata19",
    "tun_metadata20",
    "tun_metadata21",
    "tun_metadata22",
    "tun_metadata23",
    "tun_metadata24",
    "tun_metadata25",
    "tun_metadata26",
    "tun_metadata27",
    "tun_metadata28",
    "tun_metadata29",
    "tun_metadata30",
    "tun_metadata31",
    "tun_metadata32",
    "tun_metadata33",
    "tun_metadata34",
    "tun_metadata35",
    "tun_metadata36",
    "tun_metadata37",
    "tun_metadata38",
    "tun_metadata39",
    "tun_metadata40",
    "tun_metadata41",
    "tun_metadata42",
    "tun_metadata43",
    "tun_metadata44",
    "tun_metadata45",
    "tun_metadata46",
    "tun_metadata47",
    "tun_metadata48",
    "tun_metadata49",
    "tun_metadata50",
    "tun_metadata51",
    "tun_metadata52",
    "tun_metadata53",
    "tun_metadata54",
    "tun_metadata55",
    "tun_metadata56",
    "tun_metadata57",
    "tun_metadata58",
    "tun_metadata59",
    "tun_metadata60",
    "tun_metadata61",
    "tun_metadata62",
    "tun_metadata63",
];
const NXM_TUN_METADATA_NAMES: [&str; 64] = [
    "NXM_NX_TUN_METADATA0",
    "NXM_NX_TUN_METADATA1",
    "NXM_NX_TUN_METADATA2",
    "NXM_NX_TUN_METADATA3",
    "NXM_NX_TUN_METADATA4",
    "NXM_NX_TUN_METADATA5",
    "NXM_NX_TUN_METADATA6",
    "NXM_NX_TUN_METADATA7",
    "NXM_NX_TUN_METADATA8",
    "NXM_NX_TUN_METADATA9",
    "NXM_NX_TUN_METADATA10",
    "NXM_NX_TUN_METADATA11",
    "NXM_NX_TUN_METADATA12",
    "NXM_NX_TUN_METADATA13",
    "NXM_NX_TUN_METADATA14",
    "NXM_NX_TUN_METADATA15",
    "NXM_NX_TUN_METADATA16",
    "NXM_NX_TUN_METADATA17",
    "NXM_NX_TUN_METADATA18",
    "NXM_NX_TUN_METADATA19",
    "NXM_NX_TUN_METADATA20",
    "NXM_NX_TUN_METADATA21",
    "NXM_NX_TUN_METADATA22",
    "NXM_NX_TUN_METADATA23",
    "NXM_NX_TUN_METADATA24",
    "NXM_NX_TUN_METADATA25",
    "NXM_NX_TUN_METADATA26",
    "NXM_NX_TUN_METADATA27",
    "NXM_NX_TUN_METADATA28",
    "NXM_NX_TUN_METADATA29",
    "NXM_NX_TUN_METADATA30",
    "NXM_NX_TUN_METADATA31",
    "NXM_NX_TUN_METADATA32",
    "NXM_NX_TUN_METADATA33",
    "NXM_NX_TUN_METADATA34",
    "NXM_NX_TUN_METADATA35",
    "NXM_NX_TUN_METADATA36",
    "NXM_NX_TUN_METADATA37",
    "NXM_NX_TUN_METADATA38",
    "NXM_NX_TUN_METADATA39",
    "NXM_NX_TUN_METADATA40",
    "NXM_NX_TUN_METADATA41",
    "NXM_NX_TUN_METADATA42",
    "NXM_NX_TUN_METADATA43",
    "NXM_NX_TUN_METADATA44",
    "NXM_NX_TUN_METADATA45",
    "NXM_NX_TUN_METADATA46",
    "NXM_NX_TUN_METADATA47",
    "NXM_NX_TUN_METADATA48",
    "NXM_NX_TUN_METADATA49",
    "NXM_NX_TUN_METADATA50",
    "NXM_NX_TUN_METADATA51",
    "NXM_NX_TUN_METADATA52",
    "NXM_NX_TUN_METADATA53",
    "NXM_NX_TUN_METADATA54",
    "NXM_NX_TUN_METADATA55",
    "NXM_NX_TUN_METADATA56",
    "NXM_NX_TUN_METADATA57",
    "NXM_NX_TUN_METADATA58",
    "NXM_NX_TUN_METADATA59",
    "NXM_NX_TUN_METADATA60",
    "NXM_NX_TUN_METADATA61",
    "NXM_NX_TUN_METADATA62",
    "NXM_NX_TUN_METADATA63",
];
/// Longest `tun_metadataN` a [`Field`] value can hold (a `u128`).
pub const TUN_METADATA_MAX_FIELD_BYTES: usize = 16;
/// The `off` of a [`Field::TunMetadata`] not yet placed by a TLV map (see
/// [`Field::tun_metadata_unbound`]).
pub const TUN_METADATA_UNBOUND: u8 = u8::MAX;
/// NXM class-1 field number of `NXM_NX_TUN_METADATA0` (N adds to it).
pub const NXM_TUN_METADATA0_NUM: u8 = 40;
const XXREG_NAMES: [&str; 4] = ["xxreg0", "xxreg1", "xxreg2", "xxreg3"];
const NXM_XXREG_NAMES: [&str; 4] = [
    "NXM_NX_XXREG0",
    "NXM_NX_XXREG1",
    "NXM_NX_XXREG2",
    "NXM_NX_XXREG3",
];

/// Reads `count` consecutive registers from `first` as one number, the
/// first register holding the most significant bits.
fn get_regs(k: &FlowKey, first: usize, count: usize) -> u128 {
    k.regs
        .iter()
        .skip(first)
        .take(count)
        .fold(0u128, |acc, r| (acc << 32) | u128::from(*r))
}

/// Writes the bits of `v` selected by `mask` into `count` registers from
/// `first` (the first register takes the most significant bits).
fn set_regs(k: &mut FlowKey, first: usize, count: usize, v: u128, mask: u128) {
    for (i, r) in k.regs.iter_mut().skip(first).take(count).enumerate() {
        let shift = 32 * (count - 1 - i);
        *r = merge(*r, (v >> shift) as u32, (mask >> shift) as u32);
    }
}

impl Field {
    /// Every field, in the order ovs-ofctl prints them.
    pub const ALL: [Field; 88] = [
        Field::InPort,
        Field::Metadata,
        Field::Reg(0),
        Field::Reg(1),
        Field::Reg(2),
        Field::Reg(3),
        Field::Reg(4),
        Field::Reg(5),
        Field::Reg(6),
        Field::Reg(7),
        Field::DlSrc,
        Field::DlDst,
        Field::DlType,
        Field::DlVlan,
        Field::DlVlanPcp,
        Field::VlanTci,
        Field::VlanVid,
        Field::NwSrc,
        Field::NwDst,
        Field::NwProto,
        Field::NwTos,
        Field::IpDscp,
        Field::NwEcn,
        Field::NwTtl,
        Field::NwFrag,
        Field::TpSrc,
        Field::TpDst,
        Field::TcpFlags,
        Field::ArpOp,
        Field::ArpSpa,
        Field::ArpTpa,
        Field::ArpSha,
        Field::ArpTha,
        Field::Ipv6Src,
        Field::Ipv6Dst,
        Field::Ipv6Label,
        Field::MplsLabel,
        Field::MplsTc,
        Field::MplsBos,
        Field::MplsTtl,
        Field::IcmpType,
        Field::IcmpCode,
        Field::NdTarget,
        Field::NdSll,
        Field::NdTll,
        Field::Reg(8),
        Field::Reg(9),
        Field::Reg(10),
        Field::Reg(11),
        Field::Reg(12),
        Field::Reg(13),
        Field::Reg(14),
        Field::Reg(15),
        Field::XReg(0),
        Field::XReg(1),
        Field::XReg(2),
        Field::XReg(3),
        Field::XReg(4),
        Field::XReg(5),
        Field::XReg(6),
        Field::XReg(7),
        Field::XXReg(0),
        Field::XXReg(1),
        Field::XXReg(2),
        Field::XXReg(3),
        Field::PktMark,
        Field::ConjId,
        Field::DpHash,
        Field::RecircId,
        Field::TunId,
        Field::TunSrc,
        Field::TunDst,
        Field::TunIpv6Src,
        Field::TunIpv6Dst,
        Field::TunFlags,
        Field::TunGbpId,
        Field::TunGbpFlags,
        Field::CtState,
        Field::CtZone,
        Field::CtMark,
        Field::CtLabel,
        Field::CtNwSrc,
        Field::CtNwDst,
        Field::CtIpv6Src,
        Field::CtIpv6Dst,
        Field::CtNwProto,
        Field::CtTpSrc,
        Field::CtTpDst,
    ];

    /// The name ovs-ofctl prints for a match on this field.
    pub fn name(self) -> &'static str {
        match self {
            Field::InPort => "in_port",
            Field::Metadata => "metadata",
            Field::Reg(n) => REG_NAMES[usize::from(n) % 16],
            Field::XReg(n) => XREG_NAMES[usize::from(n) % 8],
            Field::XXReg(n) => XXREG_NAMES[usize::from(n) % 4],
            Field::DlSrc => "dl_src",
            Field::DlDst => "dl_dst",
            Field::DlType => "dl_type",
            Field::DlVlan => "dl_vlan",
            Field::DlVlanPcp => "dl_vlan_pcp",
            Field::VlanTci => "vlan_tci",
            Field::VlanVid => "vlan_vid",
            Field::NwSrc => "nw_src",
            Field::NwDst => "nw_dst",
            Field::NwProto => "nw_proto",
            Field::NwTos => "nw_tos",
            Field::IpDscp => "ip_dscp",
            Field::NwEcn => "nw_ecn",
            Field::NwTtl => "nw_ttl",
            Field::NwFrag => "nw_frag",
            Field::TpSrc => "tp_src",
            Field::TpDst => "tp_dst",
            Field::TcpFlags => "tcp_flags",
            Field::ArpOp => "arp_op",
            Field::ArpSpa => "arp_spa",
            Field::ArpTpa => "arp_tpa",
            Field::ArpSha => "arp_sha",
            Field::ArpTha => "arp_tha",
            Field::Ipv6Src => "ipv6_src",
            Field::Ipv6Dst => "ipv6_dst",
            Field::Ipv6Label => "ipv6_label",
            Field::MplsLabel => "mpls_label",
            Field::MplsTc => "mpls_tc",
            Field::MplsBos => "mpls_bos",
            Field::MplsTtl => "mpls_ttl",
            Field::IcmpType => "icmp_type",
            Field::IcmpCode => "icmp_code",
            Field::NdTarget => "nd_target",
            Field::NdSll => "nd_sll",
            Field::NdTll => "nd_tll",
            Field::PktMark => "pkt_mark",
            Field::ConjId => "conj_id",
            Field::DpHash => "dp_hash",
            Field::RecircId => "recirc_id",
            Field::TunId => "tun_id",
            Field::TunSrc => "tun_src",
            Field::TunDst => "tun_dst",
            Field::TunIpv6Src => "tun_ipv6_src",
            Field::TunIpv6Dst => "tun_ipv6_dst",
            Field::TunFlags => "tun_flags",
            Field::TunGbpId => "tun_gbp_id",
            Field::TunGbpFlags => "tun_gbp_flags",
            Field::TunMetadata { idx, .. } => TUN_METADATA_NAMES[usize::from(idx) % 64],
            Field::CtState => "ct_state",
            Field::CtZone => "ct_zone",
            Field::CtMark => "ct_mark",
            Field::CtLabel => "ct_label",
            Field::CtNwSrc => "ct_nw_src",
            Field::CtNwDst => "ct_nw_dst",
            Field::CtIpv6Src => "ct_ipv6_src",
            Field::CtIpv6Dst => "ct_ipv6_dst",
            Field::CtNwProto => "ct_nw_proto",
            Field::CtTpSrc => "ct_tp_src",
            Field::CtTpDst => "ct_tp_dst",
        }
    }

    /// The name OVS prints after `set_field:...->` (the OXM-style name).
    pub fn oxm_name(self) -> &'static str {
        match self {
            Field::DlSrc => "eth_src",
            Field::DlDst => "eth_dst",
            Field::DlType => "eth_type",
            Field::NwSrc => "ip_src",
            Field::NwDst => "ip_dst",
            Field::NwProto => "ip_proto",
            Field::NwEcn => "ip_ecn",
            Field::TpSrc => "tcp_src",
            Field::TpDst => "tcp_dst",
            Field::DlVlanPcp => "vlan_pcp",
            other => other.name(),
        }
    }

    /// The NXM/OXM name used in `load:` and `move:` (e.g. `NXM_OF_ETH_SRC`).
    pub fn nxm_name(self) -> &'static str {
        match self {
            Field::InPort => "NXM_OF_IN_PORT",
            Field::Metadata => "OXM_OF_METADATA",
            Field::Reg(n) => NXM_REG_NAMES[usize::from(n) % 16],
            Field::XReg(n) => OXM_PKT_REG_NAMES[usize::from(n) % 8],
            Field::XXReg(n) => NXM_XXREG_NAMES[usize::from(n) % 4],
            Field::DlSrc => "NXM_OF_ETH_SRC",
            Field::DlDst => "NXM_OF_ETH_DST",
            Field::DlType => "NXM_OF_ETH_TYPE",
            Field::DlVlan => "OXM_OF_VLAN_VID",
            Field::DlVlanPcp => "OXM_OF_VLAN_PCP",
            Field::VlanTci => "NXM_OF_VLAN_TCI",
            Field::VlanVid => "OXM_OF_VLAN_VID",
            Field::NwSrc => "NXM_OF_IP_SRC",
            Field::NwDst => "NXM_OF_IP_DST",
            Field::NwProto => "NXM_OF_IP_PROTO",
            Field::NwTos => "NXM_OF_IP_TOS",
            Field::IpDscp => "OXM_OF_IP_DSCP",
            Field::NwEcn => "NXM_NX_IP_ECN",
            Field::NwTtl => "NXM_NX_IP_TTL",
            Field::NwFrag => "NXM_NX_IP_FRAG",
            Field::TpSrc => "NXM_OF_TCP_SRC",
            Field::TpDst => "NXM_OF_TCP_DST",
            Field::TcpFlags => "NXM_NX_TCP_FLAGS",
            Field::ArpOp => "NXM_OF_ARP_OP",
            Field::ArpSpa => "NXM_OF_ARP_SPA",
            Field::ArpTpa => "NXM_OF_ARP_TPA",
            Field::ArpSha => "NXM_NX_ARP_SHA",
            Field::ArpTha => "NXM_NX_ARP_THA",
            Field::Ipv6Src => "NXM_NX_IPV6_SRC",
            Field::Ipv6Dst => "NXM_NX_IPV6_DST",
            Field::Ipv6Label => "NXM_NX_IPV6_LABEL",
            Field::MplsLabel => "OXM_OF_MPLS_LABEL",
            Field::MplsTc => "OXM_OF_MPLS_TC",
            Field::MplsBos => "OXM_OF_MPLS_BOS",
            Field::MplsTtl => "NXM_NX_MPLS_TTL",
            Field::IcmpType => "NXM_OF_ICMP_TYPE",
            Field::IcmpCode => "NXM_OF_ICMP_CODE",
            Field::NdTarget => "NXM_NX_ND_TARGET",
            Field::NdSll => "NXM_NX_ND_SLL",
            Field::NdTll => "NXM_NX_ND_TLL",
            Field::PktMark => "NXM_NX_PKT_MARK",
            Field::ConjId => "NXM_NX_CONJ_ID",
            Field::DpHash => "NXM_NX_DP_HASH",
            Field::RecircId => "NXM_NX_RECIRC_ID",
            Field::TunId => "NXM_NX_TUN_ID",
            Field::TunSrc => "NXM_NX_TUN_IPV4_SRC",
            Field::TunDst => "NXM_NX_TUN_IPV4_DST",
            Field::TunIpv6Src => "NXM_NX_TUN_IPV6_SRC",
            Field::TunIpv6Dst => "NXM_NX_TUN_IPV6_DST",
            Field::TunFlags => "NXM_NX_TUN_FLAGS",
            Field::TunGbpId => "NXM_NX_TUN_GBP_ID",
            Field::TunGbpFlags => "NXM_NX_TUN_GBP_FLAGS",
            Field::TunMetadata { idx, .. } => NXM_TUN_METADATA_NAMES[usize::from(idx) % 64],
            Field::CtState => "NXM_NX_CT_STATE",
            Field::CtZone => "NXM_NX_CT_ZONE",
            Field::CtMark => "NXM_NX_CT_MARK",
            Field::CtLabel => "NXM_NX_CT_LABEL",
            Field::CtNwSrc => "NXM_NX_CT_NW_SRC",
            Field::CtNwDst => "NXM_NX_CT_NW_DST",
            Field::CtIpv6Src => "NXM_NX_CT_IPV6_SRC",
            Field::CtIpv6Dst => "NXM_NX_CT_IPV6_DST",
            Field::CtNwProto => "NXM_NX_CT_NW_PROTO",
            Field::CtTpSrc => "NXM_NX_CT_TP_SRC",
            Field::CtTpDst => "NXM_NX_CT_TP_DST",
        }
    }

    /// N of `tun_metadataN` / `NXM_NX_TUN_METADATAN` (N in 0..63). These
    /// names are not in [`Field::from_name`]: where the field lives depends
    /// on the bridge's TLV map, so it is resolved with
    /// [`crate::tlv::TlvMap::field`].
    pub fn tun_metadata_index(name: &str) -> Option<u16> {
        let d = name
            .strip_prefix("tun_metadata")
            .or_else(|| name.strip_prefix("NXM_NX_TUN_METADATA"))?;
        if d.is_empty()
            || (d.len() > 1 && d.starts_with('0'))
            || !d.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        d.parse::<u16>().ok().filter(|n| *n < 64)
    }

    /// `tun_metadata{idx}` as the wire or text names it, before a bridge's
    /// TLV map places it: `len` is the length in bytes the header or value
    /// states (a value's own length for a match or `set_field`, the header's
    /// for `move`/`load`). Reading it gives 0 and writing it does nothing;
    /// [`crate::tlv::TlvMap::bind_field`] resolves it.
    pub fn tun_metadata_unbound(idx: u8, len: u8) -> Field {
        Field::TunMetadata {
            idx: idx % 64,
            off: TUN_METADATA_UNBOUND,
            len,
        }
    }

    /// True for a `tun_metadataN` no TLV map has placed yet.
    pub fn is_unbound_tun_metadata(self) -> bool {
        matches!(self, Field::TunMetadata { off, .. } if off == TUN_METADATA_UNBOUND)
    }

    /// Looks a field up by any name ovs-ofctl accepts for it: the match
    /// names and their aliases (`eth_src`, `ip_dst`, `udp_src`, ...) and the
    /// NXM/OXM names used by `load`/`move` (`NXM_OF_ETH_SRC`, `OXM_OF_METADATA`).
    pub fn from_name(name: &str) -> Option<Field> {
        let f = match name {
            "in_port" | "NXM_OF_IN_PORT" | "OXM_OF_IN_PORT" => Field::InPort,
            "metadata" | "OXM_OF_METADATA" => Field::Metadata,
            "dl_src" | "eth_src" | "NXM_OF_ETH_SRC" | "OXM_OF_ETH_SRC" => Field::DlSrc,
            "dl_dst" | "eth_dst" | "NXM_OF_ETH_DST" | "OXM_OF_ETH_DST" => Field::DlDst,
            "dl_type" | "eth_type" | "NXM_OF_ETH_TYPE" | "OXM_OF_ETH_TYPE" => Field::DlType,
            "dl_vlan" => Field::DlVlan,
            "dl_vlan_pcp" | "vlan_pcp" | "OXM_OF_VLAN_PCP" => Field::DlVlanPcp,
            "vlan_tci" | "NXM_OF_VLAN_TCI" => Field::VlanTci,
            "vlan_vid" | "OXM_OF_VLAN_VID" => Field::VlanVid,
            "nw_src" | "ip_src" | "NXM_OF_IP_SRC" | "OXM_OF_IPV4_SRC" => Field::NwSrc,
            "nw_dst" | "ip_dst" | "NXM_OF_IP_DST" | "OXM_OF_IPV4_DST" => Field::NwDst,
            "nw_proto" | "ip_proto" | "NXM_OF_IP_PROTO" | "OXM_OF_IP_PROTO" => Field::NwProto,
            "nw_tos" | "NXM_OF_IP_TOS" => Field::NwTos,
            "ip_dscp" | "OXM_OF_IP_DSCP" => Field::IpDscp,
            "nw_ecn" | "ip_ecn" | "NXM_NX_IP_ECN" | "OXM_OF_IP_ECN" => Field::NwEcn,
            "nw_ttl" | "NXM_NX_IP_TTL" => Field::NwTtl,
            "nw_frag" | "ip_frag" | "NXM_NX_IP_FRAG" => Field::NwFrag,
            "tp_src" | "tcp_src" | "udp_src" | "sctp_src" | "NXM_OF_TCP_SRC" | "NXM_OF_UDP_SRC"
            | "OXM_OF_TCP_SRC" | "OXM_OF_UDP_SRC" | "OXM_OF_SCTP_SRC" => Field::TpSrc,
            "tp_dst" | "tcp_dst" | "udp_dst" | "sctp_dst" | "NXM_OF_TCP_DST" | "NXM_OF_UDP_DST"
            | "OXM_OF_TCP_DST" | "OXM_OF_UDP_DST" | "OXM_OF_SCTP_DST" => Field::TpDst,
            "tcp_flags" | "NXM_NX_TCP_FLAGS" => Field::TcpFlags,
            "arp_op" | "NXM_OF_ARP_OP" | "OXM_OF_ARP_OP" => Field::ArpOp,
            "arp_spa" | "NXM_OF_ARP_SPA" | "OXM_OF_ARP_SPA" => Field::ArpSpa,
            "arp_tpa" | "NXM_OF_ARP_TPA" | "OXM_OF_ARP_TPA" => Field::ArpTpa,
            "arp_sha" | "NXM_NX_ARP_SHA" | "OXM_OF_ARP_SHA" => Field::ArpSha,
            "arp_tha" | "NXM_NX_ARP_THA" | "OXM_OF_ARP_THA" => Field::ArpTha,
            "ipv6_src" | "NXM_NX_IPV6_SRC" | "OXM_OF_IPV6_SRC" => Field::Ipv6Src,
            "ipv6_dst" | "NXM_NX_IPV6_DST" | "OXM_OF_IPV6_DST" => Field::Ipv6Dst,
            "ipv6_label" | "NXM_NX_IPV6_LABEL" | "OXM_OF_IPV6_FLABEL" => Field::Ipv6Label,
            "mpls_label" | "OXM_OF_MPLS_LABEL" => Field::MplsLabel,
            "mpls_tc" | "OXM_OF_MPLS_TC" => Field::MplsTc,
            "mpls_bos" | "OXM_OF_MPLS_BOS" => Field::MplsBos,
            "mpls_ttl" | "NXM_NX_MPLS_TTL" => Field::MplsTtl,
            "icmp_type" | "icmpv6_type" | "NXM_OF_ICMP_TYPE" | "NXM_NX_ICMPV6_TYPE"
            | "OXM_OF_ICMPV4_TYPE" | "OXM_OF_ICMPV6_TYPE" => Field::IcmpType,
            "icmp_code" | "icmpv6_code" | "NXM_OF_ICMP_CODE" | "NXM_NX_ICMPV6_CODE"
            | "OXM_OF_ICMPV4_CODE" | "OXM_OF_ICMPV6_CODE" => Field::IcmpCode,
            "nd_target" | "NXM_NX_ND_TARGET" | "OXM_OF_IPV6_ND_TARGET" => Field::NdTarget,
            "nd_sll" | "NXM_NX_ND_SLL" | "OXM_OF_IPV6_ND_SLL" => Field::NdSll,
            "nd_tll" | "NXM_NX_ND_TLL" | "OXM_OF_IPV6_ND_TLL" => Field::NdTll,
            "pkt_mark" | "NXM_NX_PKT_MARK" => Field::PktMark,
            "conj_id" | "NXM_NX_CONJ_ID" => Field::ConjId,
            "dp_hash" | "NXM_NX_DP_HASH" => Field::DpHash,
            "recirc_id" | "NXM_NX_RECIRC_ID" => Field::RecircId,
            "tun_id" | "NXM_NX_TUN_ID" | "tunnel_id" | "OXM_OF_TUNNEL_ID" => Field::TunId,
            "tun_src" | "NXM_NX_TUN_IPV4_SRC" | "tun_ipv4_src" => Field::TunSrc,
            "tun_dst" | "NXM_NX_TUN_IPV4_DST" | "tun_ipv4_dst" => Field::TunDst,
            "tun_ipv6_src" | "NXM_NX_TUN_IPV6_SRC" => Field::TunIpv6Src,
            "tun_ipv6_dst" | "NXM_NX_TUN_IPV6_DST" => Field::TunIpv6Dst,
            "tun_flags" | "NXM_NX_TUN_FLAGS" => Field::TunFlags,
            "tun_gbp_id" | "NXM_NX_TUN_GBP_ID" => Field::TunGbpId,
            "tun_gbp_flags" | "NXM_NX_TUN_GBP_FLAGS" => Field::TunGbpFlags,
            "ct_state" | "NXM_NX_CT_STATE" => Field::CtState,
            "ct_zone" | "NXM_NX_CT_ZONE" => Field::CtZone,
            "ct_mark" | "NXM_NX_CT_MARK" => Field::CtMark,
            "ct_label" | "NXM_NX_CT_LABEL" => Field::CtLabel,
            "ct_nw_src" | "NXM_NX_CT_NW_SRC" => Field::CtNwSrc,
            "ct_nw_dst" | "NXM_NX_CT_NW_DST" => Field::CtNwDst,
            "ct_ipv6_src" | "NXM_NX_CT_IPV6_SRC" => Field::CtIpv6Src,
            "ct_ipv6_dst" | "NXM_NX_CT_IPV6_DST" => Field::CtIpv6Dst,
            "ct_nw_proto" | "NXM_NX_CT_NW_PROTO" => Field::CtNwProto,
            "ct_tp_src" | "NXM_NX_CT_TP_SRC" => Field::CtTpSrc,
            "ct_tp_dst" | "NXM_NX_CT_TP_DST" => Field::CtTpDst,
            _ => return Self::reg_from_name(name),
        };
        Some(f)
    }

    fn reg_from_name(name: &str) -> Option<Field> {
        let num = |digits: &str, max: u8| -> Option<u8> {
            if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            if digits.len() == 2 && digits.starts_with('0') {
                return None;
            }
            let n: u8 = digits.parse().ok()?;
            (n < max).then_some(n)
        };
        if let Some(d) = name
            .strip_prefix("xxreg")
            .or_else(|| name.strip_prefix("NXM_NX_XXREG"))
        {
            return num(d, 4).map(Field::XXReg);
        }
        if let Some(d) = name
            .strip_prefix("xreg")
            .or_else(|| name.strip_prefix("OXM_OF_PKT_REG"))
        {
            return num(d, 8).map(Field::XReg);
        }
        let d = name
            .strip_prefix("reg")
            .or_else(|| name.strip_prefix("NXM_NX_REG"))?;
        num(d, 16).map(Field::Reg)
    }

    /// Width of the field in bits.
    pub fn n_bits(self) -> u32 {
        match self {
            Field::InPort => 32,
            Field::Metadata => 64,
            Field::Reg(_) => 32,
            Field::XReg(_) => 64,
            Field::XXReg(_) => 128,
            Field::PktMark | Field::ConjId | Field::DpHash | Field::RecircId => 32,
            Field::TunId => 64,
            Field::TunSrc | Field::TunDst => 32,
            Field::TunIpv6Src | Field::TunIpv6Dst => 128,
            Field::TunFlags => 16,
            Field::TunGbpId => 16,
            Field::TunGbpFlags => 8,
            Field::TunMetadata { len, .. } => u32::from(len) * 8,
            Field::CtState | Field::CtMark => 32,
            Field::CtZone => 16,
            Field::CtLabel => 128,
            Field::CtNwSrc | Field::CtNwDst => 32,
            Field::CtIpv6Src | Field::CtIpv6Dst => 128,
            Field::CtNwProto => 8,
            Field::CtTpSrc | Field::CtTpDst => 16,
            Field::DlSrc | Field::DlDst => 48,
            Field::DlType => 16,
            Field::DlVlan => 12,
            Field::DlVlanPcp => 3,
            Field::VlanTci => 16,
            Field::VlanVid => 13,
            Field::NwSrc | Field::NwDst => 32,
            Field::NwProto => 8,
            Field::NwTos => 8,
            Field::IpDscp => 6,
            Field::NwEcn => 2,
            Field::NwTtl => 8,
            Field::NwFrag => 2,
            Field::TpSrc | Field::TpDst => 16,
            Field::TcpFlags => 12,
            Field::ArpOp => 16,
            Field::ArpSpa | Field::ArpTpa => 32,
            Field::ArpSha | Field::ArpTha => 48,
            Field::Ipv6Src | Field::Ipv6Dst => 128,
            Field::Ipv6Label => 20,
            Field::MplsLabel => 20,
            Field::MplsTc => 3,
            Field::MplsBos => 1,
            Field::MplsTtl => 8,
            Field::IcmpType | Field::IcmpCode => 8,
            Field::NdTarget => 128,
            Field::NdSll | Field::NdTll => 48,
        }
    }

    /// True when a match may give this field an arbitrary bitwise mask
    /// (OVS's "Masking: arbitrary bitwise masks"); `false` for fields
    /// that only match exactly.
    pub fn maskable(self) -> bool {
        !matches!(
            self,
            Field::InPort
                | Field::DlType
                | Field::NwProto
                | Field::NwTos
                | Field::IpDscp
                | Field::NwEcn
                | Field::NwTtl
                | Field::DlVlan
                | Field::DlVlanPcp
                | Field::ArpOp
                | Field::IcmpType
                | Field::IcmpCode
                | Field::ConjId
                | Field::RecircId
                | Field::CtZone
                | Field::CtNwProto
                | Field::MplsLabel
                | Field::MplsTc
                | Field::MplsBos
                | Field::MplsTtl
        )
    }

    /// Why `set_field`/`load`/`move` may not write this field, in
    /// ovs-ofctl's words; `None` when it is writable.
    pub fn read_only_reason(self) -> Option<&'static str> {
        match self {
            Field::ConjId
            | Field::DpHash
            | Field::RecircId
            | Field::CtState
            | Field::CtZone
            | Field::CtNwSrc
            | Field::CtNwDst
            | Field::CtIpv6Src
            | Field::CtIpv6Dst
            | Field::CtNwProto
            | Field::CtTpSrc
            | Field::CtTpDst
            | Field::MplsBos => Some("is read-only"),
            Field::CtMark | Field::CtLabel => Some("can only be set inside a ct action"),
            _ => None,
        }
    }

    /// All-ones value of the field's width.
    pub fn max_value(self) -> u128 {
        let n = self.n_bits();
        if n >= 128 {
            u128::MAX
        } else {
            (1u128 << n) - 1
        }
    }

    /// Reads the field from a key (or a mask).
    pub fn get(self, k: &FlowKey) -> u128 {
        match self {
            Field::InPort => k.in_port.into(),
            Field::Metadata => k.metadata.into(),
            Field::Reg(n) => get_regs(k, usize::from(n), 1),
            Field::XReg(n) => get_regs(k, 2 * usize::from(n), 2),
            Field::XXReg(n) => get_regs(k, 4 * usize::from(n), 4),
            Field::PktMark => k.pkt_mark.into(),
            Field::ConjId => k.conj_id.into(),
            Field::DpHash => k.dp_hash.into(),
            Field::RecircId => k.recirc_id.into(),
            Field::TunId => k.tun_id.into(),
            Field::TunSrc => k.tun_src.into(),
            Field::TunDst => k.tun_dst.into(),
            Field::TunIpv6Src => u128::from_be_bytes(k.tun_ipv6_src),
            Field::TunIpv6Dst => u128::from_be_bytes(k.tun_ipv6_dst),
            Field::TunFlags => k.tun_flags.into(),
            Field::TunGbpId => k.tun_gbp_id.into(),
            Field::TunGbpFlags => k.tun_gbp_flags.into(),
            Field::TunMetadata { off, len, .. } => {
                let (off, len) = (usize::from(off), usize::from(len));
                // An unbound field (no place in the key yet) reads as 0.
                k.tun_metadata
                    .get(off..off + len)
                    .unwrap_or(&[])
                    .iter()
                    .fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
            }
            Field::CtState => k.ct_state.into(),
            Field::CtZone => k.ct_zone.into(),
            Field::CtMark => k.ct_mark.into(),
            Field::CtLabel => u128::from_be_bytes(k.ct_label),
            Field::CtNwSrc => k.ct_nw_src.into(),
            Field::CtNwDst => k.ct_nw_dst.into(),
            Field::CtIpv6Src => u128::from_be_bytes(k.ct_ipv6_src),
            Field::CtIpv6Dst => u128::from_be_bytes(k.ct_ipv6_dst),
            Field::CtNwProto => k.ct_nw_proto.into(),
            Field::CtTpSrc => k.ct_tp_src.into(),
            Field::CtTpDst => k.ct_tp_dst.into(),
            Field::DlSrc => mac_to_u128(k.dl_src),
            Field::DlDst => mac_to_u128(k.dl_dst),
            Field::DlType => k.dl_type.into(),
            Field::DlVlan => (k.vlan_tci & 0x0fff).into(),
            Field::DlVlanPcp => (k.vlan_tci >> 13).into(),
            Field::VlanTci => k.vlan_tci.into(),
            Field::VlanVid => (k.vlan_tci & 0x1fff).into(),
            Field::NwSrc | Field::ArpSpa => k.nw_src.into(),
            Field::NwDst | Field::ArpTpa => k.nw_dst.into(),
            Field::NwProto | Field::ArpOp => k.nw_proto.into(),
            Field::NwTos => (k.nw_tos & 0xfc).into(),
            Field::IpDscp => (k.nw_tos >> 2).into(),
            Field::NwEcn => (k.nw_tos & 0x03).into(),
            Field::NwTtl => k.nw_ttl.into(),
            Field::NwFrag => (k.nw_frag & 0x03).into(),
            Field::TpSrc => k.tp_src.into(),
            Field::TpDst => k.tp_dst.into(),
            Field::TcpFlags => (k.tcp_flags & 0x0fff).into(),
            Field::ArpSha | Field::NdSll => mac_to_u128(k.arp_sha),
            Field::ArpTha | Field::NdTll => mac_to_u128(k.arp_tha),
            Field::Ipv6Src => u128::from_be_bytes(k.ipv6_src),
            Field::Ipv6Dst => u128::from_be_bytes(k.ipv6_dst),
            Field::Ipv6Label => (k.ipv6_label & 0x000f_ffff).into(),
            Field::MplsLabel => ((k.mpls_lse() & mpls::LABEL_MASK) >> mpls::LABEL_SHIFT).into(),
            Field::MplsTc => ((k.mpls_lse() & mpls::TC_MASK) >> mpls::TC_SHIFT).into(),
            Field::MplsBos => ((k.mpls_lse() & mpls::BOS_MASK) >> mpls::BOS_SHIFT).into(),
            Field::MplsTtl => (k.mpls_lse() & mpls::TTL_MASK).into(),
            Field::IcmpType => (k.tp_src & 0xff).into(),
            Field::IcmpCode => (k.tp_dst & 0xff).into(),
            Field::NdTarget => u128::from_be_bytes(k.nd_target),
        }
    }

    /// Writes the field into a key (or a mask), leaving every other bit of
    /// the key alone. Bits of `v` beyond the field's width are ignored.
    pub fn set(self, k: &mut FlowKey, v: u128) {
        self.set_masked(k, v, self.max_value());
    }

    /// Writes the bits of the field selected by `mask` (right-aligned like
    /// the value), leaving the others alone.
    pub fn set_masked(self, k: &mut FlowKey, v: u128, mask: u128) {
        let mask = mask & self.max_value();
        let v = v & mask;
        match self {
            Field::InPort => k.in_port = merge(k.in_port, v as u32, mask as u32),
            Field::Metadata => k.metadata = merge(k.metadata, v as u64, mask as u64),
            Field::Reg(n) => set_regs(k, usize::from(n), 1, v, mask),
            Field::XReg(n) => set_regs(k, 2 * usize::from(n), 2, v, mask),
            Field::XXReg(n) => set_regs(k, 4 * usize::from(n), 4, v, mask),
            Field::PktMark => k.pkt_mark = merge(k.pkt_mark, v as u32, mask as u32),
            Field::ConjId => k.conj_id = merge(k.conj_id, v as u32, mask as u32),
            Field::DpHash => k.dp_hash = merge(k.dp_hash, v as u32, mask as u32),
            Field::RecircId => k.recirc_id = merge(k.recirc_id, v as u32, mask as u32),
            Field::TunId => k.tun_id = merge(k.tun_id, v as u64, mask as u64),
            Field::TunSrc => k.tun_src = merge(k.tun_src, v as u32, mask as u32),
            Field::TunDst => k.tun_dst = merge(k.tun_dst, v as u32, mask as u32),
            Field::TunIpv6Src => {
                k.tun_ipv6_src = merge(u128::from_be_bytes(k.tun_ipv6_src), v, mask).to_be_bytes();
            }
            Field::TunIpv6Dst => {
                k.tun_ipv6_dst = merge(u128::from_be_bytes(k.tun_ipv6_dst), v, mask).to_be_bytes();
            }
            Field::TunFlags => k.tun_flags = merge(k.tun_flags, v as u16, mask as u16),
            Field::TunGbpId => k.tun_gbp_id = merge(k.tun_gbp_id, v as u16, mask as u16),
            Field::TunGbpFlags => {
                k.tun_gbp_flags = merge(k.tun_gbp_flags, v as u8, mask as u8);
            }
            Field::TunMetadata { idx, off, len } => {
                let (off, len) = (usize::from(off), usize::from(len));
                // An unbound field (no place in the key yet) writes nothing.
                let Some(area) = k.tun_metadata.get_mut(off..off + len) else {
                    return;
                };
                for (i, b) in area.iter_mut().enumerate() {
                    let shift = 8 * (len - 1 - i);
                    *b = merge(*b, (v >> shift) as u8, (mask >> shift) as u8);
                }
                if mask != 0 {
                    k.tun_metadata_present |= 1u64 << (idx % 64);
                }
            }
            Field::CtState => k.ct_state = merge(k.ct_state, v as u32, mask as u32),
            Field::CtZone => k.ct_zone = merge(k.ct_zone, v as u16, mask as u16),
            Field::CtMark => k.ct_mark = merge(k.ct_mark, v as u32, mask as u32),
            Field::CtLabel => {
                k.ct_label = merge(u128::from_be_bytes(k.ct_label), v, mask).to_be_bytes();
            }
            Field::CtNwSrc => k.ct_nw_src = merge(k.ct_nw_src, v as u32, mask as u32),
            Field::CtNwDst => k.ct_nw_dst = merge(k.ct_nw_dst, v as u32, mask as u32),
            Field::CtIpv6Src => {
                k.ct_ipv6_src = merge(u128::from_be_bytes(k.ct_ipv6_src), v, mask).to_be_bytes();
            }
            Field::CtIpv6Dst => {
                k.ct_ipv6_dst = merge(u128::from_be_bytes(k.ct_ipv6_dst), v, mask).to_be_bytes();
            }
            Field::CtNwProto => k.ct_nw_proto = merge(k.ct_nw_proto, v as u8, mask as u8),
            Field::CtTpSrc => k.ct_tp_src = merge(k.ct_tp_src, v as u16, mask as u16),
            Field::CtTpDst => k.ct_tp_dst = merge(k.ct_tp_dst, v as u16, mask as u16),
            Field::DlSrc => {
                k.dl_src = u128_to_mac(merge(mac_to_u128(k.dl_src), v, mask));
            }
            Field::DlDst => {
                k.dl_dst = u128_to_mac(merge(mac_to_u128(k.dl_dst), v, mask));
            }
            Field::DlType => k.dl_type = merge(k.dl_type, v as u16, mask as u16),
            Field::DlVlan => k.vlan_tci = merge(k.vlan_tci, v as u16, mask as u16),
            Field::DlVlanPcp => {
                k.vlan_tci = merge(k.vlan_tci, (v as u16) << 13, (mask as u16) << 13);
            }
            Field::VlanTci => k.vlan_tci = merge(k.vlan_tci, v as u16, mask as u16),
            Field::VlanVid => k.vlan_tci = merge(k.vlan_tci, v as u16, mask as u16),
            Field::NwSrc | Field::ArpSpa => k.nw_src = merge(k.nw_src, v as u32, mask as u32),
            Field::NwDst | Field::ArpTpa => k.nw_dst = merge(k.nw_dst, v as u32, mask as u32),
            Field::NwProto | Field::ArpOp => {
                k.nw_proto = merge(k.nw_proto, v as u8, mask as u8);
            }
            Field::NwTos => k.nw_tos = merge(k.nw_tos, v as u8, (mask as u8) & 0xfc),
            Field::IpDscp => k.nw_tos = merge(k.nw_tos, (v as u8) << 2, (mask as u8) << 2),
            Field::NwEcn => k.nw_tos = merge(k.nw_tos, v as u8, mask as u8),
            Field::NwTtl => k.nw_ttl = merge(k.nw_ttl, v as u8, mask as u8),
            Field::NwFrag => k.nw_frag = merge(k.nw_frag, v as u8, mask as u8),
            Field::TpSrc => k.tp_src = merge(k.tp_src, v as u16, mask as u16),
            Field::TpDst => k.tp_dst = merge(k.tp_dst, v as u16, mask as u16),
            Field::TcpFlags => k.tcp_flags = merge(k.tcp_flags, v as u16, mask as u16),
            Field::ArpSha | Field::NdSll => {
                k.arp_sha = u128_to_mac(merge(mac_to_u128(k.arp_sha), v, mask));
            }
            Field::ArpTha | Field::NdTll => {
                k.arp_tha = u128_to_mac(merge(mac_to_u128(k.arp_tha), v, mask));
            }
            Field::Ipv6Src => {
                k.ipv6_src = merge(u128::from_be_bytes(k.ipv6_src), v, mask).to_be_bytes();
            }
            Field::Ipv6Dst => {
                k.ipv6_dst = merge(u128::from_be_bytes(k.ipv6_dst), v, mask).to_be_bytes();
            }
            Field::Ipv6Label => {
                k.ipv6_label = merge(k.ipv6_label, v as u32, mask as u32);
            }
            Field::MplsLabel | Field::MplsTc | Field::MplsBos | Field::MplsTtl => {
                let shift = match self {
                    Field::MplsLabel => mpls::LABEL_SHIFT,
                    Field::MplsTc => mpls::TC_SHIFT,
                    Field::MplsBos => mpls::BOS_SHIFT,
                    _ => 0,
                };
                let bits = (self.max_value() as u32) << shift;
                let (v, m) = ((v as u32) << shift, ((mask as u32) << shift) & bits);
                k.set_mpls_lse(merge(k.mpls_lse(), v, m));
            }
            Field::IcmpType => k.tp_src = merge(k.tp_src, v as u16, mask as u16),
            Field::IcmpCode => k.tp_dst = merge(k.tp_dst, v as u16, mask as u16),
            Field::NdTarget => {
                k.nd_target = merge(u128::from_be_bytes(k.nd_target), v, mask).to_be_bytes();
            }
        }
    }

    /// Marks bits of this field as significant in a mask, keeping the bits
    /// already marked (so it accumulates, as a megaflow mask does).
    pub fn set_mask_bits(self, mask: &mut FlowKey, bits: u128) {
        let old = self.get(mask);
        self.set(mask, old | bits);
    }

    /// Marks the whole field as significant in a mask.
    pub fn unwildcard(self, mask: &mut FlowKey) {
        self.set_mask_bits(mask, self.max_value());
    }

    /// What the flow must establish for this field to be meaningful.
    pub fn prereq(self) -> Prereq {
        match self {
            Field::CtNwSrc | Field::CtNwDst => Prereq::CtIpv4,
            Field::CtIpv6Src | Field::CtIpv6Dst => Prereq::CtIpv6,
            Field::CtNwProto | Field::CtTpSrc | Field::CtTpDst => Prereq::Ct,
            Field::InPort
            | Field::Metadata
            | Field::Reg(_)
            | Field::XReg(_)
            | Field::XXReg(_)
            | Field::PktMark
            | Field::ConjId
            | Field::DpHash
            | Field::RecircId
            | Field::TunId
            | Field::TunSrc
            | Field::TunDst
            | Field::TunIpv6Src
            | Field::TunIpv6Dst
            | Field::TunFlags
            | Field::TunGbpId
            | Field::TunGbpFlags
            | Field::TunMetadata { .. }
            | Field::CtState
            | Field::CtZone
            | Field::CtMark
            | Field::CtLabel
            | Field::DlSrc
            | Field::DlDst
            | Field::DlType
            | Field::DlVlan
            | Field::DlVlanPcp
            | Field::VlanTci
            | Field::VlanVid => Prereq::None,
            Field::NwSrc | Field::NwDst => Prereq::Ipv4OrArp,
            Field::NwProto
            | Field::NwTos
            | Field::IpDscp
            | Field::NwEcn
            | Field::NwTtl
            | Field::NwFrag => Prereq::IpAny,
            Field::TpSrc | Field::TpDst => Prereq::L4Ports,
            Field::TcpFlags => Prereq::Tcp,
            Field::ArpOp | Field::ArpSpa | Field::ArpTpa | Field::ArpSha | Field::ArpTha => {
                Prereq::Arp
            }
            Field::Ipv6Src | Field::Ipv6Dst | Field::Ipv6Label => Prereq::Ipv6,
            Field::MplsLabel | Field::MplsTc | Field::MplsBos | Field::MplsTtl => Prereq::Mpls,
            Field::IcmpType | Field::IcmpCode => Prereq::Icmp,
            Field::NdTarget => Prereq::Nd,
            Field::NdSll => Prereq::NdSolicit,
            Field::NdTll => Prereq::NdAdvert,
        }
    }

    /// What a flow's match must establish before an action (set_field,
    /// load, move) may read or write this field: the field's own
    /// prerequisite, except that `ip_src`/`ip_dst` mean IPv4 only (ARP
    /// addresses are `arp_spa`/`arp_tpa`) and `vlan_pcp` needs a VLAN.
    pub fn action_prereq(self) -> Prereq {
        match self {
            Field::NwSrc | Field::NwDst => Prereq::Ipv4,
            Field::DlVlanPcp => Prereq::VlanPresent,
            other => other.prereq(),
        }
    }

    /// Checks that a match establishes this field's prerequisites, as
    /// ovs-ofctl does before accepting a flow.
    pub fn check_prereqs(self, m: &Match) -> Result<(), PrereqError> {
        let pr = self.prereq();
        if pr.holds_in(m) {
            Ok(())
        } else {
            Err(PrereqError {
                field: self.name(),
                needs: pr.describe(),
            })
        }
    }

    /// True when the packet `k` establishes this field's prerequisites;
    /// marks the key fields that decision consulted in `wc`.
    pub fn prereqs_hold(self, k: &FlowKey, wc: &mut FlowKey) -> bool {
        self.prereq().holds_for(k, wc)
    }
}

impl Prereq {
    /// What is needed, in ovs-ofctl words.
    pub fn describe(self) -> &'static str {
        match self {
            Prereq::None => "",
            Prereq::Ipv4 => "ip",
            Prereq::Ipv6 => "ipv6",
            Prereq::IpAny => "ip or ipv6",
            Prereq::Ipv4OrArp => "ip or arp",
            Prereq::Arp => "arp or rarp",
            Prereq::L4Ports => "nw_proto tcp, udp or sctp (e.g. tcp, udp6)",
            Prereq::Tcp => "tcp or tcp6",
            Prereq::Udp => "udp or udp6",
            Prereq::Sctp => "sctp or sctp6",
            Prereq::Icmp => "icmp or icmp6",
            Prereq::Icmpv4 => "icmp",
            Prereq::Icmpv6 => "icmp6",
            Prereq::Mpls => "mpls or mplsm",
            Prereq::Nd => "icmp6 with icmp_type=135 or icmp_type=136",
            Prereq::NdSolicit => "icmp6 with icmp_type=135",
            Prereq::NdAdvert => "icmp6 with icmp_type=136",
            Prereq::VlanPresent => "a VLAN tag (dl_vlan or vlan_tci with the present bit)",
            Prereq::Ct => "ct_state=+trk-inv",
            Prereq::CtIpv4 => "ct_state=+trk-inv and ip",
            Prereq::CtIpv6 => "ct_state=+trk-inv and ipv6",
        }
    }

    /// True when the match `m` itself establishes the prerequisite (every
    /// packet it matches satisfies it), as OVS checks a flow's match.
    pub fn holds_in(self, m: &Match) -> bool {
        let exact = |f: Field| f.get(&m.mask) == f.max_value();
        let dl_type = exact(Field::DlType).then_some(m.key.dl_type);
        let proto = exact(Field::NwProto).then_some(m.key.nw_proto);
        let is_ip = matches!(dl_type, Some(ethertype::IPV4 | ethertype::IPV6));
        let icmp_type = exact(Field::IcmpType).then_some(m.key.tp_src as u8);
        let nd = |t: &[u8]| {
            dl_type == Some(ethertype::IPV6)
                && proto == Some(ipproto::ICMPV6)
                && icmp_type.is_some_and(|x| t.contains(&x))
        };
        let ct = {
            let need = ct_state::TRK | ct_state::INV;
            m.mask.ct_state & need == need && m.key.ct_state & need == ct_state::TRK
        };
        match self {
            Prereq::None => true,
            Prereq::Ipv4 => dl_type == Some(ethertype::IPV4),
            Prereq::Ipv6 => dl_type == Some(ethertype::IPV6),
            Prereq::IpAny => is_ip,
            Prereq::Ipv4OrArp => matches!(dl_type, Some(ethertype::IPV4 | ethertype::ARP | RARP)),
            Prereq::Arp => matches!(dl_type, Some(ethertype::ARP | RARP)),
            Prereq::L4Ports => {
                is_ip && matches!(proto, Some(ipproto::TCP | ipproto::UDP | ipproto::SCTP))
            }
            Prereq::Tcp => is_ip && proto == Some(ipproto::TCP),
            Prereq::Udp => is_ip && proto == Some(ipproto::UDP),
            Prereq::Sctp => is_ip && proto == Some(ipproto::SCTP),
            Prereq::Icmp => Prereq::Icmpv4.holds_in(m) || Prereq::Icmpv6.holds_in(m),
            Prereq::Icmpv4 => dl_type == Some(ethertype::IPV4) && proto == Some(ipproto::ICMP),
            Prereq::Icmpv6 => dl_type == Some(ethertype::IPV6) && proto == Some(ipproto::ICMPV6),
            Prereq::Mpls => dl_type.is_some_and(ethertype::is_mpls),
            Prereq::Nd => nd(&[135, 136]),
            Prereq::NdSolicit => nd(&[135]),
            Prereq::NdAdvert => nd(&[136]),
            Prereq::VlanPresent => {
                m.mask.vlan_tci & VLAN_CFI != 0 && m.key.vlan_tci & VLAN_CFI != 0
            }
            Prereq::Ct => ct,
            Prereq::CtIpv4 => ct && dl_type == Some(ethertype::IPV4),
            Prereq::CtIpv6 => ct && dl_type == Some(ethertype::IPV6),
        }
    }

    /// True when the packet `k` establishes the prerequisite; marks the key
    /// fields that decision consulted in `wc` (for megaflows).
    pub fn holds_for(self, k: &FlowKey, wc: &mut FlowKey) -> bool {
        let pr = self;
        if pr == Prereq::None {
            return true;
        }
        if pr == Prereq::VlanPresent {
            Field::VlanTci.set_mask_bits(wc, u128::from(VLAN_CFI));
            return k.vlan_tci & VLAN_CFI != 0;
        }
        let ct = |wc: &mut FlowKey| {
            Field::CtState.set_mask_bits(wc, u128::from(ct_state::TRK | ct_state::INV));
            k.ct_state & (ct_state::TRK | ct_state::INV) == ct_state::TRK
        };
        if pr == Prereq::Ct {
            return ct(wc);
        }
        Field::DlType.unwildcard(wc);
        let is_ip = matches!(k.dl_type, ethertype::IPV4 | ethertype::IPV6);
        let needs_proto = matches!(
            pr,
            Prereq::L4Ports
                | Prereq::Tcp
                | Prereq::Udp
                | Prereq::Sctp
                | Prereq::Icmp
                | Prereq::Icmpv4
                | Prereq::Icmpv6
                | Prereq::Nd
                | Prereq::NdSolicit
                | Prereq::NdAdvert
        );
        if needs_proto && is_ip {
            Field::NwProto.unwildcard(wc);
        }
        let nd = |wc: &mut FlowKey, t: &[u8]| {
            if k.dl_type == ethertype::IPV6 && k.nw_proto == ipproto::ICMPV6 {
                Field::IcmpType.unwildcard(wc);
                t.contains(&(k.tp_src as u8))
            } else {
                false
            }
        };
        match pr {
            Prereq::None | Prereq::VlanPresent | Prereq::Ct => true,
            Prereq::Ipv4 => k.dl_type == ethertype::IPV4,
            Prereq::Ipv6 => k.dl_type == ethertype::IPV6,
            Prereq::IpAny => is_ip,
            Prereq::Ipv4OrArp => matches!(k.dl_type, ethertype::IPV4 | ethertype::ARP | RARP),
            Prereq::Arp => matches!(k.dl_type, ethertype::ARP | RARP),
            Prereq::L4Ports => {
                is_ip && matches!(k.nw_proto, ipproto::TCP | ipproto::UDP | ipproto::SCTP)
            }
            Prereq::Tcp => is_ip && k.nw_proto == ipproto::TCP,
            Prereq::Udp => is_ip && k.nw_proto == ipproto::UDP,
            Prereq::Sctp => is_ip && k.nw_proto == ipproto::SCTP,
            Prereq::Icmp => {
                (k.dl_type == ethertype::IPV4 && k.nw_proto == ipproto::ICMP)
                    || (k.dl_type == ethertype::IPV6 && k.nw_proto == ipproto::ICMPV6)
            }
            Prereq::Icmpv4 => k.dl_type == ethertype::IPV4 && k.nw_proto == ipproto::ICMP,
            Prereq::Icmpv6 => k.dl_type == ethertype::IPV6 && k.nw_proto == ipproto::ICMPV6,
            Prereq::Mpls => ethertype::is_mpls(k.dl_type),
            Prereq::Nd => nd(wc, &[135, 136]),
            Prereq::NdSolicit => nd(wc, &[135]),
            Prereq::NdAdvert => nd(wc, &[136]),
            Prereq::CtIpv4 => k.dl_type == ethertype::IPV4 && ct(wc),
            Prereq::CtIpv6 => k.dl_type == ethertype::IPV6 && ct(wc),
        }
    }
}

/// Checks every field a match constrains against its prerequisites, as
/// ovs-ofctl does before accepting a flow; the first failure names the field.
///
/// Fields that share storage in [`FlowKey`] (`tp_src`/`icmp_type`,
/// `nw_src`/`arp_spa`, `arp_sha`/`nd_sll`, ...) are accepted under either
/// meaning.
pub fn check_match_prereqs(m: &Match) -> Result<(), PrereqError> {
    let any = |fields: &[Field]| fields.iter().any(|f| f.check_prereqs(m).is_ok());
    let groups: &[(Field, &[Field], &'static str)] = &[
        (Field::NwSrc, &[Field::NwSrc], "ip or arp"),
        (Field::NwDst, &[Field::NwDst], "ip or arp"),
        (
            Field::NwProto,
            &[Field::NwProto, Field::ArpOp],
            "ip, ipv6 or arp",
        ),
        (Field::NwTos, &[Field::NwTos], "ip or ipv6"),
        (Field::NwEcn, &[Field::NwEcn], "ip or ipv6"),
        (Field::NwTtl, &[Field::NwTtl], "ip or ipv6"),
        (Field::NwFrag, &[Field::NwFrag], "ip or ipv6"),
        (
            Field::TpSrc,
            &[Field::TpSrc, Field::IcmpType],
            "nw_proto tcp, udp, sctp or icmp (e.g. tcp, udp6, icmp)",
        ),
        (
            Field::TpDst,
            &[Field::TpDst, Field::IcmpCode],
            "nw_proto tcp, udp, sctp or icmp (e.g. tcp, udp6, icmp)",
        ),
        (Field::TcpFlags, &[Field::TcpFlags], "tcp or tcp6"),
        (
            Field::ArpSha,
            &[Field::ArpSha, Field::NdSll],
            "arp, or icmp6 with icmp_type=135",
        ),
        (
            Field::ArpTha,
            &[Field::ArpTha, Field::NdTll],
            "arp, or icmp6 with icmp_type=136",
        ),
        (Field::Ipv6Src, &[Field::Ipv6Src], "ipv6"),
        (Field::Ipv6Dst, &[Field::Ipv6Dst], "ipv6"),
        // ipv6_label's word holds an MPLS packet's label stack entry.
        (
            Field::Ipv6Label,
            &[
                Field::Ipv6Label,
                Field::MplsLabel,
                Field::MplsTc,
                Field::MplsBos,
                Field::MplsTtl,
            ],
            "ipv6 or mpls",
        ),
        (
            Field::MplsLabel,
            &[Field::MplsLabel, Field::Ipv6Label],
            "mpls or mplsm",
        ),
        (
            Field::NdTarget,
            &[Field::NdTarget],
            "icmp6 with icmp_type=135 or icmp_type=136",
        ),
        (
            Field::CtNwSrc,
            &[Field::CtNwSrc],
            "ct_state=+trk-inv and ip",
        ),
        (
            Field::CtNwDst,
            &[Field::CtNwDst],
            "ct_state=+trk-inv and ip",
        ),
        (
            Field::CtIpv6Src,
            &[Field::CtIpv6Src],
            "ct_state=+trk-inv and ipv6",
        ),
        (
            Field::CtIpv6Dst,
            &[Field::CtIpv6Dst],
            "ct_state=+trk-inv and ipv6",
        ),
        (Field::CtNwProto, &[Field::CtNwProto], "ct_state=+trk-inv"),
        (Field::CtTpSrc, &[Field::CtTpSrc], "ct_state=+trk-inv"),
        (Field::CtTpDst, &[Field::CtTpDst], "ct_state=+trk-inv"),
    ];
    for (storage, meanings, needs) in groups {
        if storage.get(&m.mask) != 0 && !any(meanings) {
            return Err(PrereqError {
                field: storage.name(),
                needs,
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Wire ids

/// OXM class of the OpenFlow basic fields.
pub const OXM_CLASS_BASIC: u16 = 0x8000;
/// OXM class of the packet registers (`xreg0..7`, OpenFlow 1.5).
pub const OXM_CLASS_PKT_REGS: u16 = 0x8001;
/// OXM class of experimenter fields (the experimenter id follows the header).
pub const OXM_CLASS_EXPERIMENTER: u16 = 0xffff;
/// NXM class 0 (`NXM_OF_*`).
pub const NXM_CLASS_0: u16 = 0x0000;
/// NXM class 1 (`NXM_NX_*`).
pub const NXM_CLASS_1: u16 = 0x0001;
/// The ONF experimenter id (`tcp_flags` in OpenFlow 1.3).
pub const ONF_EXPERIMENTER_ID: u32 = 0x4f4e_4600;

/// One OXM/NXM header a field travels under, as OVS assigns them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct WireId {
    /// Name of the wire field; rows with one name are one wire field under
    /// several headers (OXM and NXM), e.g. `tcp_src`. Different names for
    /// one [`Field`] (`tcp_src`, `udp_src`) differ in their prerequisites.
    pub name: &'static str,
    /// The field the value lands in.
    pub field: Field,
    pub class: u16,
    /// Field number within the class (7 bits).
    pub num: u8,
    /// Length of the value in bytes (a mask doubles it).
    pub len: u8,
    /// Experimenter id, for [`OXM_CLASS_EXPERIMENTER`].
    pub experimenter: Option<u32>,
    /// What a match must establish before it may carry this field.
    pub prereq: Prereq,
}

impl WireId {
    /// True for an NXM class (what Nicira actions prefer).
    pub fn is_nxm(&self) -> bool {
        matches!(self.class, NXM_CLASS_0 | NXM_CLASS_1)
    }

    /// Bits of the value that mean something: the field's width, or the
    /// header's when narrower (NXM's 16-bit in_port), and the TOS byte's
    /// DSCP bits for `NXM_OF_IP_TOS`.
    pub fn full_mask(&self) -> u128 {
        if self.field == Field::NwTos {
            return 0xfc;
        }
        let bits = u32::from(self.len) * 8;
        let width = if bits >= 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        width & self.field.max_value()
    }
}

/// Every wire id. Where a wire field has several headers, the first row is
/// the one written in OXM matches and set_field (OXM when OVS has one);
/// Nicira actions (load, move) write the NXM row when there is one.
pub const WIRE_IDS: &[WireId] = &[
    WireId {
        name: "in_port",
        field: Field::InPort,
        class: OXM_CLASS_BASIC,
        num: 0,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "metadata",
        field: Field::Metadata,
        class: OXM_CLASS_BASIC,
        num: 2,
        len: 8,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "eth_dst",
        field: Field::DlDst,
        class: OXM_CLASS_BASIC,
        num: 3,
        len: 6,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "eth_src",
        field: Field::DlSrc,
        class: OXM_CLASS_BASIC,
        num: 4,
        len: 6,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "eth_type",
        field: Field::DlType,
        class: OXM_CLASS_BASIC,
        num: 5,
        len: 2,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "vlan_vid",
        field: Field::VlanVid,
        class: OXM_CLASS_BASIC,
        num: 6,
        len: 2,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "vlan_pcp",
        field: Field::DlVlanPcp,
        class: OXM_CLASS_BASIC,
        num: 7,
        len: 1,
        experimenter: None,
        prereq: Prereq::VlanPresent,
    },
    WireId {
        name: "ip_dscp",
        field: Field::IpDscp,
        class: OXM_CLASS_BASIC,
        num: 8,
        len: 1,
        experimenter: None,
        prereq: Prereq::IpAny,
    },
    WireId {
        name: "ip_ecn",
        field: Field::NwEcn,
        class: OXM_CLASS_BASIC,
        num: 9,
        len: 1,
        experimenter: None,
        prereq: Prereq::IpAny,
    },
    WireId {
        name: "ip_proto",
        field: Field::NwProto,
        class: OXM_CLASS_BASIC,
        num: 10,
        len: 1,
        experimenter: None,
        prereq: Prereq::IpAny,
    },
    WireId {
        name: "ipv4_src",
        field: Field::NwSrc,
        class: OXM_CLASS_BASIC,
        num: 11,
        len: 4,
        experimenter: None,
        prereq: Prereq::Ipv4,
    },
    WireId {
        name: "ipv4_dst",
        field: Field::NwDst,
        class: OXM_CLASS_BASIC,
        num: 12,
        len: 4,
        experimenter: None,
        prereq: Prereq::Ipv4,
    },
    WireId {
        name: "tcp_src",
        field: Field::TpSrc,
        class: OXM_CLASS_BASIC,
        num: 13,
        len: 2,
        experimenter: None,
        prereq: Prereq::Tcp,
    },
    WireId {
        name: "tcp_dst",
        field: Field::TpDst,
        class: OXM_CLASS_BASIC,
        num: 14,
        len: 2,
        experimenter: None,
        prereq: Prereq::Tcp,
    },
    WireId {
        name: "udp_src",
        field: Field::TpSrc,
        class: OXM_CLASS_BASIC,
        num: 15,
        len: 2,
        experimenter: None,
        prereq: Prereq::Udp,
    },
    WireId {
        name: "udp_dst",
        field: Field::TpDst,
        class: OXM_CLASS_BASIC,
        num: 16,
        len: 2,
        experimenter: None,
        prereq: Prereq::Udp,
    },
    WireId {
        name: "sctp_src",
        field: Field::TpSrc,
        class: OXM_CLASS_BASIC,
        num: 17,
        len: 2,
        experimenter: None,
        prereq: Prereq::Sctp,
    },
    WireId {
        name: "sctp_dst",
        field: Field::TpDst,
        class: OXM_CLASS_BASIC,
        num: 18,
        len: 2,
        experimenter: None,
        prereq: Prereq::Sctp,
    },
    WireId {
        name: "icmpv4_type",
        field: Field::IcmpType,
        class: OXM_CLASS_BASIC,
        num: 19,
        len: 1,
        experimenter: None,
        prereq: Prereq::Icmpv4,
    },
    WireId {
        name: "icmpv4_code",
        field: Field::IcmpCode,
        class: OXM_CLASS_BASIC,
        num: 20,
        len: 1,
        experimenter: None,
        prereq: Prereq::Icmpv4,
    },
    WireId {
        name: "arp_op",
        field: Field::ArpOp,
        class: OXM_CLASS_BASIC,
        num: 21,
        len: 2,
        experimenter: None,
        prereq: Prereq::Arp,
    },
    WireId {
        name: "arp_spa",
        field: Field::ArpSpa,
        class: OXM_CLASS_BASIC,
        num: 22,
        len: 4,
        experimenter: None,
        prereq: Prereq::Arp,
    },
    WireId {
        name: "arp_tpa",
        field: Field::ArpTpa,
        class: OXM_CLASS_BASIC,
        num: 23,
        len: 4,
        experimenter: None,
        prereq: Prereq::Arp,
    },
    WireId {
        name: "arp_sha",
        field: Field::ArpSha,
        class: OXM_CLASS_BASIC,
        num: 24,
        len: 6,
        experimenter: None,
        prereq: Prereq::Arp,
    },
    WireId {
        name: "arp_tha",
        field: Field::ArpTha,
        class: OXM_CLASS_BASIC,
        num: 25,
        len: 6,
        experimenter: None,
        prereq: Prereq::Arp,
    },
    WireId {
        name: "ipv6_src",
        field: Field::Ipv6Src,
        class: OXM_CLASS_BASIC,
        num: 26,
        len: 16,
        experimenter: None,
        prereq: Prereq::Ipv6,
    },
    WireId {
        name: "ipv6_dst",
        field: Field::Ipv6Dst,
        class: OXM_CLASS_BASIC,
        num: 27,
        len: 16,
        experimenter: None,
        prereq: Prereq::Ipv6,
    },
    WireId {
        name: "ipv6_flabel",
        field: Field::Ipv6Label,
        class: OXM_CLASS_BASIC,
        num: 28,
        len: 4,
        experimenter: None,
        prereq: Prereq::Ipv6,
    },
    WireId {
        name: "mpls_label",
        field: Field::MplsLabel,
        class: OXM_CLASS_BASIC,
        num: 34,
        len: 4,
        experimenter: None,
        prereq: Prereq::Mpls,
    },
    WireId {
        name: "mpls_tc",
        field: Field::MplsTc,
        class: OXM_CLASS_BASIC,
        num: 35,
        len: 1,
        experimenter: None,
        prereq: Prereq::Mpls,
    },
    WireId {
        name: "mpls_bos",
        field: Field::MplsBos,
        class: OXM_CLASS_BASIC,
        num: 36,
        len: 1,
        experimenter: None,
        prereq: Prereq::Mpls,
    },
    WireId {
        name: "mpls_ttl",
        field: Field::MplsTtl,
        class: NXM_CLASS_1,
        num: 30,
        len: 1,
        experimenter: None,
        prereq: Prereq::Mpls,
    },
    WireId {
        name: "icmpv6_type",
        field: Field::IcmpType,
        class: OXM_CLASS_BASIC,
        num: 29,
        len: 1,
        experimenter: None,
        prereq: Prereq::Icmpv6,
    },
    WireId {
        name: "icmpv6_code",
        field: Field::IcmpCode,
        class: OXM_CLASS_BASIC,
        num: 30,
        len: 1,
        experimenter: None,
        prereq: Prereq::Icmpv6,
    },
    WireId {
        name: "nd_target",
        field: Field::NdTarget,
        class: OXM_CLASS_BASIC,
        num: 31,
        len: 16,
        experimenter: None,
        prereq: Prereq::Nd,
    },
    WireId {
        name: "nd_sll",
        field: Field::NdSll,
        class: OXM_CLASS_BASIC,
        num: 32,
        len: 6,
        experimenter: None,
        prereq: Prereq::NdSolicit,
    },
    WireId {
        name: "nd_tll",
        field: Field::NdTll,
        class: OXM_CLASS_BASIC,
        num: 33,
        len: 6,
        experimenter: None,
        prereq: Prereq::NdAdvert,
    },
    WireId {
        name: "tun_id",
        field: Field::TunId,
        class: OXM_CLASS_BASIC,
        num: 38,
        len: 8,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "tcp_flags",
        field: Field::TcpFlags,
        class: OXM_CLASS_EXPERIMENTER,
        num: 42,
        len: 2,
        experimenter: Some(ONF_EXPERIMENTER_ID),
        prereq: Prereq::Tcp,
    },
    // OpenFlow 1.5 made tcp_flags a standard OXM (ovs-ofctl -O OpenFlow15
    // sends this form); read only: the ONF form above is what is written.
    WireId {
        name: "tcp_flags",
        field: Field::TcpFlags,
        class: OXM_CLASS_BASIC,
        num: 42,
        len: 2,
        experimenter: None,
        prereq: Prereq::Tcp,
    },
    WireId {
        name: "xreg0",
        field: Field::XReg(0),
        class: OXM_CLASS_PKT_REGS,
        num: 0,
        len: 8,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "xreg1",
        field: Field::XReg(1),
        class: OXM_CLASS_PKT_REGS,
        num: 1,
        len: 8,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "xreg2",
        field: Field::XReg(2),
        class: OXM_CLASS_PKT_REGS,
        num: 2,
        len: 8,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "xreg3",
        field: Field::XReg(3),
        class: OXM_CLASS_PKT_REGS,
        num: 3,
        len: 8,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "xreg4",
        field: Field::XReg(4),
        class: OXM_CLASS_PKT_REGS,
        num: 4,
        len: 8,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "xreg5",
        field: Field::XReg(5),
        class: OXM_CLASS_PKT_REGS,
        num: 5,
        len: 8,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "xreg6",
        field: Field::XReg(6),
        class: OXM_CLASS_PKT_REGS,
        num: 6,
        len: 8,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "xreg7",
        field: Field::XReg(7),
        class: OXM_CLASS_PKT_REGS,
        num: 7,
        len: 8,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "nxm_in_port",
        field: Field::InPort,
        class: NXM_CLASS_0,
        num: 0,
        len: 2,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "eth_dst",
        field: Field::DlDst,
        class: NXM_CLASS_0,
        num: 1,
        len: 6,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "eth_src",
        field: Field::DlSrc,
        class: NXM_CLASS_0,
        num: 2,
        len: 6,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "eth_type",
        field: Field::DlType,
        class: NXM_CLASS_0,
        num: 3,
        len: 2,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "vlan_tci",
        field: Field::VlanTci,
        class: NXM_CLASS_0,
        num: 4,
        len: 2,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "nw_tos",
        field: Field::NwTos,
        class: NXM_CLASS_0,
        num: 5,
        len: 1,
        experimenter: None,
        prereq: Prereq::IpAny,
    },
    WireId {
        name: "ip_proto",
        field: Field::NwProto,
        class: NXM_CLASS_0,
        num: 6,
        len: 1,
        experimenter: None,
        prereq: Prereq::IpAny,
    },
    WireId {
        name: "ipv4_src",
        field: Field::NwSrc,
        class: NXM_CLASS_0,
        num: 7,
        len: 4,
        experimenter: None,
        prereq: Prereq::Ipv4,
    },
    WireId {
        name: "ipv4_dst",
        field: Field::NwDst,
        class: NXM_CLASS_0,
        num: 8,
        len: 4,
        experimenter: None,
        prereq: Prereq::Ipv4,
    },
    WireId {
        name: "tcp_src",
        field: Field::TpSrc,
        class: NXM_CLASS_0,
        num: 9,
        len: 2,
        experimenter: None,
        prereq: Prereq::Tcp,
    },
    WireId {
        name: "tcp_dst",
        field: Field::TpDst,
        class: NXM_CLASS_0,
        num: 10,
        len: 2,
        experimenter: None,
        prereq: Prereq::Tcp,
    },
    WireId {
        name: "udp_src",
        field: Field::TpSrc,
        class: NXM_CLASS_0,
        num: 11,
        len: 2,
        experimenter: None,
        prereq: Prereq::Udp,
    },
    WireId {
        name: "udp_dst",
        field: Field::TpDst,
        class: NXM_CLASS_0,
        num: 12,
        len: 2,
        experimenter: None,
        prereq: Prereq::Udp,
    },
    WireId {
        name: "icmpv4_type",
        field: Field::IcmpType,
        class: NXM_CLASS_0,
        num: 13,
        len: 1,
        experimenter: None,
        prereq: Prereq::Icmpv4,
    },
    WireId {
        name: "icmpv4_code",
        field: Field::IcmpCode,
        class: NXM_CLASS_0,
        num: 14,
        len: 1,
        experimenter: None,
        prereq: Prereq::Icmpv4,
    },
    WireId {
        name: "arp_op",
        field: Field::ArpOp,
        class: NXM_CLASS_0,
        num: 15,
        len: 2,
        experimenter: None,
        prereq: Prereq::Arp,
    },
    WireId {
        name: "arp_spa",
        field: Field::ArpSpa,
        class: NXM_CLASS_0,
        num: 16,
        len: 4,
        experimenter: None,
        prereq: Prereq::Arp,
    },
    WireId {
        name: "arp_tpa",
        field: Field::ArpTpa,
        class: NXM_CLASS_0,
        num: 17,
        len: 4,
        experimenter: None,
        prereq: Prereq::Arp,
    },
    WireId {
        name: "reg0",
        field: Field::Reg(0),
        class: NXM_CLASS_1,
        num: 0,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "reg1",
        field: Field::Reg(1),
        class: NXM_CLASS_1,
        num: 1,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "reg2",
        field: Field::Reg(2),
        class: NXM_CLASS_1,
        num: 2,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "reg3",
        field: Field::Reg(3),
        class: NXM_CLASS_1,
        num: 3,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "reg4",
        field: Field::Reg(4),
        class: NXM_CLASS_1,
        num: 4,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "reg5",
        field: Field::Reg(5),
        class: NXM_CLASS_1,
        num: 5,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "reg6",
        field: Field::Reg(6),
        class: NXM_CLASS_1,
        num: 6,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "reg7",
        field: Field::Reg(7),
        class: NXM_CLASS_1,
        num: 7,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "reg8",
        field: Field::Reg(8),
        class: NXM_CLASS_1,
        num: 8,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "reg9",
        field: Field::Reg(9),
        class: NXM_CLASS_1,
        num: 9,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "reg10",
        field: Field::Reg(10),
        class: NXM_CLASS_1,
        num: 10,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "reg11",
        field: Field::Reg(11),
        class: NXM_CLASS_1,
        num: 11,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "reg12",
        field: Field::Reg(12),
        class: NXM_CLASS_1,
        num: 12,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "reg13",
        field: Field::Reg(13),
        class: NXM_CLASS_1,
        num: 13,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "reg14",
        field: Field::Reg(14),
        class: NXM_CLASS_1,
        num: 14,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "reg15",
        field: Field::Reg(15),
        class: NXM_CLASS_1,
        num: 15,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "tun_id",
        field: Field::TunId,
        class: NXM_CLASS_1,
        num: 16,
        len: 8,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "arp_sha",
        field: Field::ArpSha,
        class: NXM_CLASS_1,
        num: 17,
        len: 6,
        experimenter: None,
        prereq: Prereq::Arp,
    },
    WireId {
        name: "arp_tha",
        field: Field::ArpTha,
        class: NXM_CLASS_1,
        num: 18,
        len: 6,
        experimenter: None,
        prereq: Prereq::Arp,
    },
    WireId {
        name: "ipv6_src",
        field: Field::Ipv6Src,
        class: NXM_CLASS_1,
        num: 19,
        len: 16,
        experimenter: None,
        prereq: Prereq::Ipv6,
    },
    WireId {
        name: "ipv6_dst",
        field: Field::Ipv6Dst,
        class: NXM_CLASS_1,
        num: 20,
        len: 16,
        experimenter: None,
        prereq: Prereq::Ipv6,
    },
    WireId {
        name: "icmpv6_type",
        field: Field::IcmpType,
        class: NXM_CLASS_1,
        num: 21,
        len: 1,
        experimenter: None,
        prereq: Prereq::Icmpv6,
    },
    WireId {
        name: "icmpv6_code",
        field: Field::IcmpCode,
        class: NXM_CLASS_1,
        num: 22,
        len: 1,
        experimenter: None,
        prereq: Prereq::Icmpv6,
    },
    WireId {
        name: "nd_target",
        field: Field::NdTarget,
        class: NXM_CLASS_1,
        num: 23,
        len: 16,
        experimenter: None,
        prereq: Prereq::Nd,
    },
    WireId {
        name: "nd_sll",
        field: Field::NdSll,
        class: NXM_CLASS_1,
        num: 24,
        len: 6,
        experimenter: None,
        prereq: Prereq::NdSolicit,
    },
    WireId {
        name: "nd_tll",
        field: Field::NdTll,
        class: NXM_CLASS_1,
        num: 25,
        len: 6,
        experimenter: None,
        prereq: Prereq::NdAdvert,
    },
    WireId {
        name: "ip_frag",
        field: Field::NwFrag,
        class: NXM_CLASS_1,
        num: 26,
        len: 1,
        experimenter: None,
        prereq: Prereq::IpAny,
    },
    WireId {
        name: "ipv6_flabel",
        field: Field::Ipv6Label,
        class: NXM_CLASS_1,
        num: 27,
        len: 4,
        experimenter: None,
        prereq: Prereq::Ipv6,
    },
    WireId {
        name: "ip_ecn",
        field: Field::NwEcn,
        class: NXM_CLASS_1,
        num: 28,
        len: 1,
        experimenter: None,
        prereq: Prereq::IpAny,
    },
    WireId {
        name: "ip_ttl",
        field: Field::NwTtl,
        class: NXM_CLASS_1,
        num: 29,
        len: 1,
        experimenter: None,
        prereq: Prereq::IpAny,
    },
    WireId {
        name: "tun_src",
        field: Field::TunSrc,
        class: NXM_CLASS_1,
        num: 31,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "tun_dst",
        field: Field::TunDst,
        class: NXM_CLASS_1,
        num: 32,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "pkt_mark",
        field: Field::PktMark,
        class: NXM_CLASS_1,
        num: 33,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "tcp_flags",
        field: Field::TcpFlags,
        class: NXM_CLASS_1,
        num: 34,
        len: 2,
        experimenter: None,
        prereq: Prereq::Tcp,
    },
    WireId {
        name: "dp_hash",
        field: Field::DpHash,
        class: NXM_CLASS_1,
        num: 35,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "recirc_id",
        field: Field::RecircId,
        class: NXM_CLASS_1,
        num: 36,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "conj_id",
        field: Field::ConjId,
        class: NXM_CLASS_1,
        num: 37,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "tun_gbp_id",
        field: Field::TunGbpId,
        class: NXM_CLASS_1,
        num: 38,
        len: 2,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "tun_gbp_flags",
        field: Field::TunGbpFlags,
        class: NXM_CLASS_1,
        num: 39,
        len: 1,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "tun_flags",
        field: Field::TunFlags,
        class: NXM_CLASS_1,
        num: 104,
        len: 2,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "ct_state",
        field: Field::CtState,
        class: NXM_CLASS_1,
        num: 105,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "ct_zone",
        field: Field::CtZone,
        class: NXM_CLASS_1,
        num: 106,
        len: 2,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "ct_mark",
        field: Field::CtMark,
        class: NXM_CLASS_1,
        num: 107,
        len: 4,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "ct_label",
        field: Field::CtLabel,
        class: NXM_CLASS_1,
        num: 108,
        len: 16,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "tun_ipv6_src",
        field: Field::TunIpv6Src,
        class: NXM_CLASS_1,
        num: 109,
        len: 16,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "tun_ipv6_dst",
        field: Field::TunIpv6Dst,
        class: NXM_CLASS_1,
        num: 110,
        len: 16,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "xxreg0",
        field: Field::XXReg(0),
        class: NXM_CLASS_1,
        num: 111,
        len: 16,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "xxreg1",
        field: Field::XXReg(1),
        class: NXM_CLASS_1,
        num: 112,
        len: 16,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "xxreg2",
        field: Field::XXReg(2),
        class: NXM_CLASS_1,
        num: 113,
        len: 16,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "xxreg3",
        field: Field::XXReg(3),
        class: NXM_CLASS_1,
        num: 114,
        len: 16,
        experimenter: None,
        prereq: Prereq::None,
    },
    WireId {
        name: "ct_nw_proto",
        field: Field::CtNwProto,
        class: NXM_CLASS_1,
        num: 119,
        len: 1,
        experimenter: None,
        prereq: Prereq::Ct,
    },
    WireId {
        name: "ct_nw_src",
        field: Field::CtNwSrc,
        class: NXM_CLASS_1,
        num: 120,
        len: 4,
        experimenter: None,
        prereq: Prereq::CtIpv4,
    },
    WireId {
        name: "ct_nw_dst",
        field: Field::CtNwDst,
        class: NXM_CLASS_1,
        num: 121,
        len: 4,
        experimenter: None,
        prereq: Prereq::CtIpv4,
    },
    WireId {
        name: "ct_ipv6_src",
        field: Field::CtIpv6Src,
        class: NXM_CLASS_1,
        num: 122,
        len: 16,
        experimenter: None,
        prereq: Prereq::CtIpv6,
    },
    WireId {
        name: "ct_ipv6_dst",
        field: Field::CtIpv6Dst,
        class: NXM_CLASS_1,
        num: 123,
        len: 16,
        experimenter: None,
        prereq: Prereq::CtIpv6,
    },
    WireId {
        name: "ct_tp_src",
        field: Field::CtTpSrc,
        class: NXM_CLASS_1,
        num: 124,
        len: 2,
        experimenter: None,
        prereq: Prereq::Ct,
    },
    WireId {
        name: "ct_tp_dst",
        field: Field::CtTpDst,
        class: NXM_CLASS_1,
        num: 125,
        len: 2,
        experimenter: None,
        prereq: Prereq::Ct,
    },
];

/// The wire ids of the wire field `name`, preferred first.
pub fn wire_rows(name: &str) -> impl Iterator<Item = &'static WireId> + '_ {
    WIRE_IDS.iter().filter(move |w| w.name == name)
}

/// The preferred wire id of the wire field `name` (the first of
/// [`wire_rows`]), from an index built once: encoding a flow-stats reply
/// names dozens of fields per flow.
pub fn wire_by_name(name: &str) -> Option<&'static WireId> {
    static INDEX: std::sync::OnceLock<std::collections::HashMap<&'static str, &'static WireId>> =
        std::sync::OnceLock::new();
    INDEX
        .get_or_init(|| {
            let mut m = std::collections::HashMap::with_capacity(WIRE_IDS.len());
            for w in WIRE_IDS {
                m.entry(w.name).or_insert(w);
            }
            m
        })
        .get(name)
        .copied()
}

/// Looks a header up by class, number and (for experimenter classes) id.
pub fn wire_lookup(class: u16, num: u8, experimenter: Option<u32>) -> Option<&'static WireId> {
    WIRE_IDS
        .iter()
        .find(|w| w.class == class && w.num == num && w.experimenter == experimenter)
}

/// The preferred wire id that carries `f` (for set_field and matches).
pub fn wire_of(f: Field) -> Option<&'static WireId> {
    WIRE_IDS.iter().find(|w| w.field == f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_round_trips_its_own_name() {
        for f in Field::ALL {
            assert_eq!(Field::from_name(f.name()), Some(f), "{f:?}");
            assert!(Field::from_name(f.nxm_name()).is_some(), "{f:?}");
        }
        assert_eq!(Field::from_name("eth_src"), Some(Field::DlSrc));
        assert_eq!(Field::from_name("udp_dst"), Some(Field::TpDst));
        assert_eq!(Field::from_name("NXM_NX_REG5"), Some(Field::Reg(5)));
        assert_eq!(Field::from_name("reg8"), Some(Field::Reg(8)));
        assert_eq!(Field::from_name("NXM_NX_REG15"), Some(Field::Reg(15)));
        assert_eq!(Field::from_name("reg16"), None);
        assert_eq!(Field::from_name("reg08"), None);
        assert_eq!(Field::from_name("xreg7"), Some(Field::XReg(7)));
        assert_eq!(Field::from_name("xreg8"), None);
        assert_eq!(Field::from_name("OXM_OF_PKT_REG3"), Some(Field::XReg(3)));
        assert_eq!(Field::from_name("xxreg3"), Some(Field::XXReg(3)));
        assert_eq!(Field::from_name("xxreg4"), None);
        assert_eq!(Field::from_name("NXM_NX_TUN_IPV4_SRC"), Some(Field::TunSrc));
        assert_eq!(Field::from_name("tunnel_id"), Some(Field::TunId));
        assert_eq!(Field::from_name("nw_dstt"), None);
    }

    #[test]
    fn set_then_get_returns_the_value_for_every_field() {
        for f in Field::ALL {
            let mut k = FlowKey::default();
            let mut v = 0x0123_4567_89ab_cdef_0011_2233_4455_6677u128 & f.max_value();
            match f {
                // The TOS form of DSCP has its low two bits clear.
                Field::NwTos => v &= 0xfc,
                // The key keeps the opcode's low byte (like OVS's struct flow).
                Field::ArpOp => v &= 0xff,
                _ => {}
            }
            f.set(&mut k, v);
            assert_eq!(f.get(&k), v, "{f:?}");
        }
    }

    #[test]
    fn subfields_sharing_a_byte_do_not_clobber_each_other() {
        let mut k = FlowKey::default();
        Field::IpDscp.set(&mut k, 0x2e);
        Field::NwEcn.set(&mut k, 0x3);
        assert_eq!(k.nw_tos, 0xbb);
        assert_eq!(Field::NwTos.get(&k), 0xb8);
        Field::DlVlanPcp.set(&mut k, 5);
        Field::DlVlan.set(&mut k, 100);
        assert_eq!(k.vlan_tci, (5 << 13) | 100);
    }

    #[test]
    fn wide_registers_are_views_of_the_32_bit_registers_most_significant_first() {
        let mut k = FlowKey::default();
        Field::XReg(4).set(&mut k, 0x1111_2222_3333_4444);
        assert_eq!((k.regs[8], k.regs[9]), (0x1111_2222, 0x3333_4444));
        Field::XXReg(1).set_masked(&mut k, 0xabcd << 96, 0xffff << 96);
        assert_eq!(k.regs[4], 0xabcd);
        assert_eq!(k.regs[5..8], [0, 0, 0]);
        assert_eq!(Field::XXReg(2).get(&k), 0x1111_2222_3333_4444u128 << 64);
        // A bit range of an xxreg lands in the right register.
        Field::XXReg(0).set_masked(&mut k, 1 << 33, 1 << 33);
        assert_eq!(k.regs[2], 2);
    }

    #[test]
    fn every_field_has_one_preferred_wire_id_in_the_table() {
        for f in Field::ALL {
            let Some(w) = wire_of(f) else {
                // dl_vlan travels as vlan_vid.
                assert_eq!(f, Field::DlVlan);
                continue;
            };
            assert_eq!(w.field, f);
            assert_eq!(wire_lookup(w.class, w.num, w.experimenter), Some(w));
            assert!(u32::from(w.len) * 8 >= f.n_bits().min(128) || f == Field::InPort);
        }
    }

    #[test]
    fn conntrack_tuple_needs_a_tracked_valid_connection() {
        let mut m = Match::default();
        for (f, v) in [(Field::DlType, 0x0800u128), (Field::CtNwSrc, 0x0101_0101)] {
            f.set(&mut m.key, v);
            f.unwildcard(&mut m.mask);
        }
        assert_eq!(check_match_prereqs(&m).unwrap_err().field, "ct_nw_src");
        // +trk alone is not enough: OVS also needs -inv.
        m.key.ct_state = ct_state::TRK;
        m.mask.ct_state = ct_state::TRK;
        assert!(check_match_prereqs(&m).is_err());
        m.mask.ct_state = ct_state::TRK | ct_state::INV;
        assert!(check_match_prereqs(&m).is_ok());
        // At run time the decision reads only those two bits.
        let pkt = FlowKey {
            dl_type: 0x0800,
            ct_state: ct_state::TRK | ct_state::EST,
            ..FlowKey::default()
        };
        let mut wc = FlowKey::default();
        assert!(Field::CtNwSrc.prereqs_hold(&pkt, &mut wc));
        assert_eq!(wc.ct_state, ct_state::TRK | ct_state::INV);
    }

    #[test]
    fn mac_is_the_big_endian_number_of_its_bytes() {
        let mut k = FlowKey::default();
        Field::DlSrc.set(&mut k, 0x0011_2233_4455);
        assert_eq!(k.dl_src, [0x00, 0x11, 0x22, 0x33, 0x44, 0x55]);
    }

    #[test]
    fn tp_dst_without_a_protocol_is_rejected_naming_the_field() {
        let mut m = Match::default();
        Field::TpDst.set(&mut m.key, 80);
        Field::TpDst.unwildcard(&mut m.mask);
        let e = check_match_prereqs(&m).unwrap_err();
        assert_eq!(e.field, "tp_dst");
        assert!(e.to_string().starts_with("tp_dst requires nw_proto"), "{e}");
        Field::DlType.set(&mut m.key, 0x0800);
        Field::DlType.unwildcard(&mut m.mask);
        Field::NwProto.set(&mut m.key, 6);
        Field::NwProto.unwildcard(&mut m.mask);
        assert!(check_match_prereqs(&m).is_ok());
    }

    #[test]
    fn nd_target_needs_icmp6_neighbor_discovery_type() {
        let mut m = Match::default();
        for (f, v) in [
            (Field::DlType, 0x86dd),
            (Field::NwProto, 58),
            (Field::IcmpType, 128),
        ] {
            f.set(&mut m.key, v);
            f.unwildcard(&mut m.mask);
        }
        Field::NdTarget.unwildcard(&mut m.mask);
        assert_eq!(check_match_prereqs(&m).unwrap_err().field, "nd_target");
        Field::IcmpType.set(&mut m.key, 135);
        assert!(check_match_prereqs(&m).is_ok());
    }

    #[test]
    fn runtime_prereq_check_marks_what_it_consulted() {
        let mut k = FlowKey {
            dl_type: 0x0800,
            nw_proto: 17,
            ..FlowKey::default()
        };
        let mut wc = FlowKey::default();
        assert!(Field::TpSrc.prereqs_hold(&k, &mut wc));
        assert_eq!(wc.dl_type, 0xffff);
        assert_eq!(wc.nw_proto, 0xff);
        k.nw_proto = 1;
        assert!(!Field::TpSrc.prereqs_hold(&k, &mut wc));
    }
}
