//! OpenFlow-level actions and instructions, as ovs-ofctl writes them.
//!
//! Instructions (goto_table, write_metadata, clear_actions, write_actions)
//! are carried in the same list as actions, the way ovs-ofctl's text syntax
//! does; the OpenFlow 1.3 codec splits them into instructions on the wire.

use crate::field::Field;
pub use crate::nxaction::{
    Bundle, BundleAlgorithm, ControllerSpec, Ct, HashFields, Learn, LearnSpec, LearnSrc, Multipath,
    MultipathAlgorithm, Nat, NatRange, PacketInReason,
};

/// OpenFlow port number (OpenFlow 1.3 numbering; the 1.0 codec translates).
pub type PortNo = u32;

/// Reserved OpenFlow 1.3 port numbers.
pub mod port {
    use super::PortNo;
    /// Highest number of a physical/logical port.
    pub const MAX: PortNo = 0xffff_ff00;
    pub const IN_PORT: PortNo = 0xffff_fff8;
    pub const TABLE: PortNo = 0xffff_fff9;
    pub const NORMAL: PortNo = 0xffff_fffa;
    pub const FLOOD: PortNo = 0xffff_fffb;
    pub const ALL: PortNo = 0xffff_fffc;
    pub const CONTROLLER: PortNo = 0xffff_fffd;
    pub const LOCAL: PortNo = 0xffff_fffe;
    pub const ANY: PortNo = 0xffff_ffff;
}

/// Group id (OpenFlow 1.3).
pub type GroupId = u32;

/// A bit range of a field, as in `NXM_NX_REG0[0..15]` or `reg0[]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SubField {
    pub field: Field,
    /// First bit (0 = least significant).
    pub ofs: u8,
    /// Number of bits.
    pub n_bits: u8,
}

/// One action or instruction.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Action {
    /// `output:PORT` (including reserved ports: `NORMAL`, `FLOOD`, `ALL`,
    /// `IN_PORT`, `LOCAL`, `TABLE`) — `max_len` only matters for CONTROLLER.
    Output { port: PortNo, max_len: u16 },
    /// `CONTROLLER[:max_len]` / `controller(max_len=N,reason=...)`.
    Controller { max_len: u16 },
    /// `mod_vlan_vid:VID` (pushes a tag if none).
    SetVlanVid(u16),
    /// `mod_vlan_pcp:PCP` (pushes a tag if none).
    SetVlanPcp(u8),
    /// `strip_vlan` (OpenFlow 1.0 semantics: remove the outer tag).
    StripVlan,
    /// `push_vlan:ETHERTYPE`.
    PushVlan(u16),
    /// `pop_vlan`.
    PopVlan,
    /// `set_field:VALUE[/MASK]->FIELD`.
    SetField {
        field: Field,
        value: u128,
        mask: Option<u128>,
    },
    /// `mod_dl_src:MAC`.
    SetDlSrc([u8; 6]),
    /// `mod_dl_dst:MAC`.
    SetDlDst([u8; 6]),
    /// `mod_nw_src:IP`.
    SetNwSrc(u32),
    /// `mod_nw_dst:IP`.
    SetNwDst(u32),
    /// `mod_nw_tos:TOS` (DSCP bits of the TOS byte).
    SetNwTos(u8),
    /// `mod_tp_src:PORT`.
    SetTpSrc(u16),
    /// `mod_tp_dst:PORT`.
    SetTpDst(u16),
    /// `dec_ttl`.
    DecTtl,
    /// `push_mpls:ETHERTYPE` (0x8847 or 0x8848): a new top label stack
    /// entry (label 0; TC, TTL from the IP header or the entry below).
    PushMpls(u16),
    /// `pop_mpls:ETHERTYPE`: removes the top entry; ETHERTYPE is what
    /// lies beneath it.
    PopMpls(u16),
    /// `set_mpls_ttl(TTL)`.
    SetMplsTtl(u8),
    /// `dec_mpls_ttl`.
    DecMplsTtl,
    /// `load:VALUE->DST`.
    Load { dst: SubField, value: u128 },
    /// `move:SRC->DST`.
    Move { src: SubField, dst: SubField },
    /// `resubmit([port],[table][,ct])`; `None` means in_port / current table.
    /// `ct` looks the table up with the connection's original tuple.
    Resubmit {
        port: Option<PortNo>,
        table: Option<u8>,
        ct: bool,
    },
    /// `group:ID`.
    Group(GroupId),
    /// Instruction `goto_table:N`.
    GotoTable(u8),
    /// Instruction `write_metadata:VALUE[/MASK]`.
    WriteMetadata { value: u64, mask: u64 },
    /// `conjunction(ID,K/N)`: this flow is clause `clause` (1-based) of
    /// the `n_clauses`-dimension conjunctive match `id`. A flow whose
    /// actions are all conjunctions never matches on its own; the table
    /// lookup combines them (see [`crate::table::FlowTable::lookup`]).
    Conjunction { id: u32, clause: u8, n_clauses: u8 },
    /// Instruction `clear_actions`.
    ClearActions,
    /// Instruction `write_actions(ACTIONS)`.
    WriteActions(Vec<Action>),
    /// `meter:ID`: the OpenFlow 1.3 meter instruction (first in the list),
    /// the meter action from 1.5 on. Packets over the meter's rate stop here.
    Meter(crate::meter::MeterId),
    /// `controller(reason=..,max_len=..,id=..,userdata=..,pause,meter_id=..)`:
    /// the Nicira controller action with anything beyond `max_len`.
    ControllerEx(Box<ControllerSpec>),
    /// `dec_ttl(id,...)`: on expiry, packet-ins go to these controller ids.
    DecTtlIds(Vec<u16>),
    /// `push:SRC` onto the pipeline's field stack.
    StackPush(SubField),
    /// `pop:DST` from the pipeline's field stack.
    StackPop(SubField),
    /// `output:SRC[]` / `output(port=SRC[],max_len=N)`: output to the port
    /// number held in a subfield (`max_len` 65535 unless given; OVS 3.1
    /// itself only knows the first form).
    OutputReg { src: SubField, max_len: u16 },
    /// `note:HEX.HEX...` (does nothing).
    Note(Vec<u8>),
    /// `exit`: stop the whole pipeline (the action set still runs).
    Exit,
    /// `multipath(fields,basis,algorithm,n_links,arg,dst)`.
    Multipath(Box<Multipath>),
    /// `bundle(...)` / `bundle_load(...)` (with `dst`).
    Bundle(Box<Bundle>),
    /// `learn(...)`: adds or refreshes a flow built from the packet.
    Learn(Box<Learn>),
    /// `sample(probability=N,collector_set_id=N,obs_domain_id=N,obs_point_id=N)`:
    /// samples the packet (N/65535) to the IPFIX exporter of
    /// `Flow_Sample_Collector_Set` `collector_set_id`.
    Sample {
        probability: u16,
        collector_set_id: u32,
        obs_domain_id: u32,
        obs_point_id: u32,
    },
    /// `fin_timeout(idle_timeout=N,hard_timeout=N)`.
    FinTimeout { idle: u16, hard: u16 },
    /// `set_queue:N`.
    SetQueue(u32),
    /// `enqueue:PORT:QUEUE` (OpenFlow 1.0).
    Enqueue { port: PortNo, queue: u32 },
    /// `clone(ACTIONS)`: runs ACTIONS on a copy of the packet.
    Clone(Vec<Action>),
    /// `ct_clear`.
    CtClear,
    /// `check_pkt_larger(LEN)->DST`: DST (one bit) = packet length > LEN.
    CheckPktLarger { pkt_len: u16, dst: SubField },
    /// `ct(...)`.
    Ct(Box<Ct>),
    /// `nat(...)` (only inside `ct`).
    Nat(Box<Nat>),
}
