//! Named match fields, as ovs-ofctl names them.
//!
//! Each field maps onto bits of a [`FlowKey`](crate::key::FlowKey). Values are
//! carried as `u128` (wide enough for IPv6 addresses), right-aligned, in host
//! byte order; MAC addresses are the 48-bit big-endian number of their bytes.

use crate::key::{FlowKey, ethertype, ipproto};
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
    IcmpType,
    IcmpCode,
    NdTarget,
    NdSll,
    NdTll,
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
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
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

impl Field {
    /// Every field, in the order ovs-ofctl prints them.
    pub const ALL: [Field; 41] = [
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
        Field::IcmpType,
        Field::IcmpCode,
        Field::NdTarget,
        Field::NdSll,
        Field::NdTll,
    ];

    /// The name ovs-ofctl prints for a match on this field.
    pub fn name(self) -> &'static str {
        match self {
            Field::InPort => "in_port",
            Field::Metadata => "metadata",
            Field::Reg(n) => match n {
                0 => "reg0",
                1 => "reg1",
                2 => "reg2",
                3 => "reg3",
                4 => "reg4",
                5 => "reg5",
                6 => "reg6",
                _ => "reg7",
            },
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
            Field::IcmpType => "icmp_type",
            Field::IcmpCode => "icmp_code",
            Field::NdTarget => "nd_target",
            Field::NdSll => "nd_sll",
            Field::NdTll => "nd_tll",
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
            Field::Reg(n) => match n {
                0 => "NXM_NX_REG0",
                1 => "NXM_NX_REG1",
                2 => "NXM_NX_REG2",
                3 => "NXM_NX_REG3",
                4 => "NXM_NX_REG4",
                5 => "NXM_NX_REG5",
                6 => "NXM_NX_REG6",
                _ => "NXM_NX_REG7",
            },
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
            Field::IcmpType => "NXM_OF_ICMP_TYPE",
            Field::IcmpCode => "NXM_OF_ICMP_CODE",
            Field::NdTarget => "NXM_NX_ND_TARGET",
            Field::NdSll => "NXM_NX_ND_SLL",
            Field::NdTll => "NXM_NX_ND_TLL",
        }
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
            "icmp_type" | "icmpv6_type" | "NXM_OF_ICMP_TYPE" | "NXM_NX_ICMPV6_TYPE"
            | "OXM_OF_ICMPV4_TYPE" | "OXM_OF_ICMPV6_TYPE" => Field::IcmpType,
            "icmp_code" | "icmpv6_code" | "NXM_OF_ICMP_CODE" | "NXM_NX_ICMPV6_CODE"
            | "OXM_OF_ICMPV4_CODE" | "OXM_OF_ICMPV6_CODE" => Field::IcmpCode,
            "nd_target" | "NXM_NX_ND_TARGET" | "OXM_OF_IPV6_ND_TARGET" => Field::NdTarget,
            "nd_sll" | "NXM_NX_ND_SLL" | "OXM_OF_IPV6_ND_SLL" => Field::NdSll,
            "nd_tll" | "NXM_NX_ND_TLL" | "OXM_OF_IPV6_ND_TLL" => Field::NdTll,
            _ => return Self::reg_from_name(name),
        };
        Some(f)
    }

    fn reg_from_name(name: &str) -> Option<Field> {
        let digits = name
            .strip_prefix("reg")
            .or_else(|| name.strip_prefix("NXM_NX_REG"))?;
        match digits.as_bytes() {
            [d @ b'0'..=b'7'] => Some(Field::Reg(d - b'0')),
            _ => None,
        }
    }

    /// Width of the field in bits.
    pub fn n_bits(self) -> u32 {
        match self {
            Field::InPort => 32,
            Field::Metadata => 64,
            Field::Reg(_) => 32,
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
            Field::IcmpType | Field::IcmpCode => 8,
            Field::NdTarget => 128,
            Field::NdSll | Field::NdTll => 48,
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
            Field::Reg(n) => k.regs[usize::from(n & 7)].into(),
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
            Field::Reg(n) => {
                let r = &mut k.regs[usize::from(n & 7)];
                *r = merge(*r, v as u32, mask as u32);
            }
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
            Field::InPort
            | Field::Metadata
            | Field::Reg(_)
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
            Field::IcmpType | Field::IcmpCode => Prereq::Icmp,
            Field::NdTarget => Prereq::Nd,
            Field::NdSll => Prereq::NdSolicit,
            Field::NdTll => Prereq::NdAdvert,
        }
    }

    /// Checks that a match establishes this field's prerequisites, as
    /// ovs-ofctl does before accepting a flow.
    pub fn check_prereqs(self, m: &Match) -> Result<(), PrereqError> {
        let exact = |f: Field| f.get(&m.mask) == f.max_value();
        let dl_type = if exact(Field::DlType) {
            Some(m.key.dl_type)
        } else {
            None
        };
        let proto = if exact(Field::NwProto) {
            Some(m.key.nw_proto)
        } else {
            None
        };
        let is_ip = matches!(dl_type, Some(ethertype::IPV4 | ethertype::IPV6));
        let icmp_type = if exact(Field::IcmpType) {
            Some(m.key.tp_src as u8)
        } else {
            None
        };
        let nd = |t: &[u8]| {
            dl_type == Some(ethertype::IPV6)
                && proto == Some(ipproto::ICMPV6)
                && icmp_type.is_some_and(|x| t.contains(&x))
        };
        let (ok, needs) = match self.prereq() {
            Prereq::None => (true, ""),
            Prereq::Ipv4 => (dl_type == Some(ethertype::IPV4), "ip"),
            Prereq::Ipv6 => (dl_type == Some(ethertype::IPV6), "ipv6"),
            Prereq::IpAny => (is_ip, "ip or ipv6"),
            Prereq::Ipv4OrArp => (
                matches!(dl_type, Some(ethertype::IPV4 | ethertype::ARP | RARP)),
                "ip or arp",
            ),
            Prereq::Arp => (
                matches!(dl_type, Some(ethertype::ARP | RARP)),
                "arp or rarp",
            ),
            Prereq::L4Ports => (
                is_ip && matches!(proto, Some(ipproto::TCP | ipproto::UDP | ipproto::SCTP)),
                "nw_proto tcp, udp or sctp (e.g. tcp, udp6)",
            ),
            Prereq::Tcp => (is_ip && proto == Some(ipproto::TCP), "tcp or tcp6"),
            Prereq::Icmp => (
                (dl_type == Some(ethertype::IPV4) && proto == Some(ipproto::ICMP))
                    || (dl_type == Some(ethertype::IPV6) && proto == Some(ipproto::ICMPV6)),
                "icmp or icmp6",
            ),
            Prereq::Nd => (nd(&[135, 136]), "icmp6 with icmp_type=135 or icmp_type=136"),
            Prereq::NdSolicit => (nd(&[135]), "icmp6 with icmp_type=135"),
            Prereq::NdAdvert => (nd(&[136]), "icmp6 with icmp_type=136"),
        };
        if ok {
            Ok(())
        } else {
            Err(PrereqError {
                field: self.name(),
                needs,
            })
        }
    }

    /// True when the packet `k` establishes this field's prerequisites;
    /// marks the key fields that decision consulted in `wc`.
    pub fn prereqs_hold(self, k: &FlowKey, wc: &mut FlowKey) -> bool {
        let pr = self.prereq();
        if pr == Prereq::None {
            return true;
        }
        Field::DlType.unwildcard(wc);
        let is_ip = matches!(k.dl_type, ethertype::IPV4 | ethertype::IPV6);
        let needs_proto = matches!(
            pr,
            Prereq::L4Ports
                | Prereq::Tcp
                | Prereq::Icmp
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
            Prereq::None => true,
            Prereq::Ipv4 => k.dl_type == ethertype::IPV4,
            Prereq::Ipv6 => k.dl_type == ethertype::IPV6,
            Prereq::IpAny => is_ip,
            Prereq::Ipv4OrArp => matches!(k.dl_type, ethertype::IPV4 | ethertype::ARP | RARP),
            Prereq::Arp => matches!(k.dl_type, ethertype::ARP | RARP),
            Prereq::L4Ports => {
                is_ip && matches!(k.nw_proto, ipproto::TCP | ipproto::UDP | ipproto::SCTP)
            }
            Prereq::Tcp => is_ip && k.nw_proto == ipproto::TCP,
            Prereq::Icmp => {
                (k.dl_type == ethertype::IPV4 && k.nw_proto == ipproto::ICMP)
                    || (k.dl_type == ethertype::IPV6 && k.nw_proto == ipproto::ICMPV6)
            }
            Prereq::Nd => nd(wc, &[135, 136]),
            Prereq::NdSolicit => nd(wc, &[135]),
            Prereq::NdAdvert => nd(wc, &[136]),
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
        (Field::Ipv6Label, &[Field::Ipv6Label], "ipv6"),
        (
            Field::NdTarget,
            &[Field::NdTarget],
            "icmp6 with icmp_type=135 or icmp_type=136",
        ),
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
        assert_eq!(Field::from_name("reg8"), None);
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
