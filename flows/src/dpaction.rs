//! Datapath actions: what the fast path executes on a packet. Translation of
//! the OpenFlow pipeline (and NORMAL) produces a list of these plus the
//! megaflow mask; the datapath caches and executes them without the slow path.

/// A datapath port number (global across bridges, allocated by vswitchd).
pub type DpPortNo = u32;

/// Why a packet goes to the controller: OVS's packet-in reasons, including
/// the two it keeps internal (a table-miss rule's controller action, and a
/// miss with no rule), numbered as OVS numbers them in its datapath
/// actions (`userspace(...,controller(reason=N,...))`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum UserspaceReason {
    /// No rule matched; or `controller(reason=no_match)`.
    NoMatch,
    /// A CONTROLLER output or `controller` action.
    Action,
    /// `controller(reason=invalid_ttl)`.
    InvalidTtl,
    /// A CONTROLLER output in the action set.
    ActionSet,
    /// A CONTROLLER output in a group bucket.
    Group,
    /// A CONTROLLER output in a packet-out's actions.
    PacketOut,
    /// A CONTROLLER output of a table-miss rule (priority 0, matches
    /// everything): a table miss from OpenFlow 1.3 on.
    ExplicitMiss,
}

impl From<crate::nxaction::PacketInReason> for UserspaceReason {
    fn from(r: crate::nxaction::PacketInReason) -> Self {
        use crate::nxaction::PacketInReason as P;
        match r {
            P::NoMatch => UserspaceReason::NoMatch,
            P::Action => UserspaceReason::Action,
            P::InvalidTtl => UserspaceReason::InvalidTtl,
            P::ActionSet => UserspaceReason::ActionSet,
            P::Group => UserspaceReason::Group,
            P::PacketOut => UserspaceReason::PacketOut,
        }
    }
}

impl UserspaceReason {
    /// OVS's number for the reason (OFPR_* with its internal ones after).
    pub fn code(self) -> u8 {
        match self {
            UserspaceReason::NoMatch => 0,
            UserspaceReason::Action => 1,
            UserspaceReason::InvalidTtl => 2,
            UserspaceReason::ActionSet => 3,
            UserspaceReason::Group => 4,
            UserspaceReason::PacketOut => 5,
            UserspaceReason::ExplicitMiss => 6,
        }
    }

    /// The reason a packet-in carries on a connection of OpenFlow wire
    /// version `version` (1 = 1.0, 4 = 1.3, 5 = 1.4, ...): versions before
    /// 1.4 know only no_match, action and invalid_ttl, and 1.0 has no
    /// table-miss rules (such a rule's output is an action there).
    pub fn wire_code(self, version: u8) -> u8 {
        match self {
            UserspaceReason::ActionSet | UserspaceReason::Group | UserspaceReason::PacketOut
                if version < 5 =>
            {
                1
            }
            UserspaceReason::ExplicitMiss if version < 4 => 1,
            UserspaceReason::ExplicitMiss => 0,
            r => r.code(),
        }
    }
}

/// One datapath action.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DpAction {
    /// Transmit a copy of the packet, as it is at this point, on a port.
    Output(DpPortNo),
    /// Hand a copy of the packet to the slow path (e.g. packet-in to a controller).
    Userspace {
        reason: UserspaceReason,
        /// Bridge-local identity of the rule and table that asked for it.
        cookie: u64,
        table_id: u8,
        max_len: u16,
        /// The `controller(id=N)` connection id (0 = every controller).
        controller_id: u16,
        /// `controller(pause)`: the packet-in carries a continuation.
        continuation: bool,
        /// The packet-in is not sent: a translation without side effects
        /// (`ofproto/trace`) marks its packet-ins so.
        dont_send: bool,
        /// Which of the translation's packet-ins this is (an index into
        /// `XlateResult::packet_ins`, which the slow path may renumber to
        /// find the pipeline metadata and userdata again).
        slot: u32,
    },
    /// Push an 802.1Q tag with this TPID and TCI (TCI without the CFI bit).
    PushVlan {
        tpid: u16,
        tci: u16,
    },
    /// Remove the outer 802.1Q tag.
    PopVlan,
    /// Push an MPLS label stack entry (`lse`, host order) after the L2
    /// header and set the ethertype to `ethertype` (0x8847 or 0x8848).
    PushMpls {
        ethertype: u16,
        lse: u32,
    },
    /// Remove the top MPLS label stack entry; `ethertype` becomes the
    /// packet's ethertype.
    PopMpls(u16),
    /// Rewrite the top MPLS label stack entry.
    SetMpls(u32),
    /// Rewrite the VID of the outer tag.
    SetVlanVid(u16),
    /// Rewrite the PCP of the outer tag.
    SetVlanPcp(u8),
    SetEthSrc([u8; 6]),
    SetEthDst([u8; 6]),
    /// Rewrite IPv4 source (checksums updated incrementally).
    SetIpv4Src(u32),
    SetIpv4Dst(u32),
    SetIpv6Src([u8; 16]),
    SetIpv6Dst([u8; 16]),
    /// Rewrite the IPv6 flow label (20 bits; no checksum covers it).
    SetIpv6Label(u32),
    /// Rewrite the bits `mask` of the TOS/traffic class byte with those of
    /// `tos` (the others stay as the packet has them).
    SetIpTos {
        tos: u8,
        mask: u8,
    },
    SetIpTtl(u8),
    /// Rewrite the L4 source port (TCP/UDP/SCTP; checksums updated).
    SetTpSrc(u16),
    SetTpDst(u16),
    /// Rewrite the ICMP (v4 or v6) type; the checksum is updated.
    SetIcmpType(u8),
    /// Rewrite the ICMP (v4 or v6) code; the checksum is updated.
    SetIcmpCode(u8),
    /// Rewrite the ARP opcode (IPv4-over-Ethernet ARP only).
    SetArpOp(u16),
    /// Rewrite the ARP sender protocol address.
    SetArpSpa(u32),
    /// Rewrite the ARP target protocol address.
    SetArpTpa(u32),
    /// Rewrite the ARP sender hardware address.
    SetArpSha([u8; 6]),
    /// Rewrite the ARP target hardware address.
    SetArpTha([u8; 6]),
    /// Run the packet through datapath meter N (`datapath::meter`); a packet
    /// over its rate is dropped and the rest of the list is skipped.
    Meter(u32),
    /// `check_pkt_len(size=N,gt(...),le(...))`, kept flat so that actions
    /// stay `Copy`: the `gt` actions that follow run when the frame is
    /// longer than `size` bytes, else the `le` actions after them; then
    /// execution goes on after both branches. `gt` and `le` count every
    /// action of their branch, including those of nested checks.
    CheckPktLen {
        size: u16,
        gt: u16,
        le: u16,
    },
    /// Samples the packet with probability `probability / u32::MAX` for
    /// flow export: a sampled packet's key and length go to the datapath's
    /// sample queue (`Datapath::samples`) with the other fields. The packet
    /// itself is not changed.
    Sample {
        probability: u32,
        /// The OpenFlow `collector_set_id` (`flow_sample`), or the
        /// bridge-wide exporter's id.
        exporter: u32,
        obs_domain: u32,
        obs_point: u32,
        /// From an OpenFlow `sample` action (else bridge-wide sampling).
        flow_sample: bool,
    },
    /// Native tunnelling, send side: a copy of the packet gets the outer
    /// header number `header` of the datapath's tunnel header table
    /// (`datapath::tunnel::HeaderTable`, filled by the slow path) and
    /// leaves on underlay port `out`; the packet itself is unchanged for
    /// the actions that follow. `tnl_port` is the tunnel port it was output
    /// to (for display).
    TnlPush {
        tnl_port: DpPortNo,
        header: u32,
        out: DpPortNo,
    },
    /// Native tunnelling, receive side: validate and strip the outer
    /// headers of a `proto` tunnel packet (`TUNNEL_PROTO_*`) sent to UDP
    /// port `dst_port`, put the tunnel metadata into the key and continue
    /// as if the inner frame had arrived on tunnel port `port`
    /// (recirculation). Invalid packets are counted and dropped. For
    /// Geneve, `tlv` names the tunnel port's bridge's TLV map in the
    /// datapath's tunnel table (`datapath::tunnel::HeaderTable::tlv`,
    /// [`NO_TLV_MAP`] for none): the options it maps go into the key's
    /// `tun_metadata`, and a packet with a critical option it does not map
    /// is dropped.
    TnlPop {
        port: DpPortNo,
        proto: u8,
        dst_port: u16,
        tlv: u32,
    },
    /// Recirculate: the packet, as it is at this point, goes through the
    /// datapath's caches again with `recirc_id` set to this id and its
    /// metadata (ingress port, `pkt_mark`, tunnel, conntrack and `dp_hash`
    /// fields) carried over. The slow path keys the second pass on the id.
    Recirc(u32),
    /// Send the packet through the connection tracker with the `ct`
    /// arguments the datapath registered under this id (the slow path
    /// interns them through `xlate::DpResources::ct_action`). The packet's
    /// `ct_*` metadata is set from the result (and NAT may rewrite it); a
    /// following `Recirc` carries that metadata into the next pass.
    Ct(u32),
    /// `ct_clear`: the packet's `ct_*` metadata becomes zero (untracked).
    CtClear,
}

/// [`DpAction::TnlPop`]'s `tlv` when the port's bridge maps no option.
pub const NO_TLV_MAP: u32 = u32::MAX;

/// [`DpAction::TnlPop`] protocol numbers.
pub const TUNNEL_PROTO_VXLAN: u8 = 0;
pub const TUNNEL_PROTO_GENEVE: u8 = 1;
pub const TUNNEL_PROTO_GRE: u8 = 2;

/// How many times a packet may re-enter the datapath (recirculation or
/// re-injection) before it is dropped; OVS's limit.
pub const MAX_RECIRC_DEPTH: u8 = 6;

/// Splits `actions` at a [`DpAction::CheckPktLen`] found at index `i`:
/// its greater branch and its less-or-equal branch.
pub fn check_pkt_len_branches(actions: &[DpAction], i: usize) -> (&[DpAction], &[DpAction]) {
    let DpAction::CheckPktLen { gt, le, .. } = actions[i] else {
        return (&[], &[]);
    };
    let start = (i + 1).min(actions.len());
    let mid = (start + usize::from(gt)).min(actions.len());
    let end = (mid + usize::from(le)).min(actions.len());
    (&actions[start..mid], &actions[mid..end])
}
