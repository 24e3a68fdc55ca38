//! Named match fields, as ovs-ofctl names them.
//!
//! Each field maps onto bits of a [`FlowKey`](crate::key::FlowKey). Values are
//! carried as `u128` (wide enough for IPv6 addresses), right-aligned, in host
//! byte order; MAC addresses are the 48-bit big-endian number of their bytes.

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
