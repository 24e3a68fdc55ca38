//! Datapath actions: what the fast path executes on a packet. Translation of
//! the OpenFlow pipeline (and NORMAL) produces a list of these plus the
//! megaflow mask; the datapath caches and executes them without the slow path.

/// A datapath port number (global across bridges, allocated by vswitchd).
pub type DpPortNo = u32;

/// Why a packet goes to userspace.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum UserspaceReason {
    /// OpenFlow table miss sent to the controller.
    NoMatch,
    /// Explicit CONTROLLER action.
    Action,
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
    /// Rewrite the whole TOS/traffic class byte.
    SetIpTos(u8),
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
}

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
