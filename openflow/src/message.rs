//! Typed OpenFlow messages, independent of the wire version. The codec
//! ([`crate::codec`]) maps them to and from OpenFlow 1.0, 1.3, 1.4 and 1.5.

pub use flows::group::{Bucket, Group, GroupType};
pub use flows::meter::{BandType, Meter, MeterBand, MeterFlags};
pub use flows::table::{FlowFlags, FlowMod, FlowModCommand};
use flows::{Action, Match, PortNo};

use crate::error::{OfError, WireError};

/// The common OpenFlow header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OfHeader {
    pub version: u8,
    pub msg_type: u8,
    pub length: u16,
    pub xid: u32,
}

/// OFPT_ERROR.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ErrorMsg {
    pub err_type: u16,
    pub code: u16,
    /// Usually the first 64 bytes of the offending message.
    pub data: Vec<u8>,
}

impl ErrorMsg {
    /// The error answering `offending` (its first 64 bytes become data,
    /// after the experimenter id of an experimenter error).
    pub fn for_request(e: OfError, version: u8, offending: &[u8]) -> ErrorMsg {
        let offending = offending.get(..64).unwrap_or(offending);
        match e.wire_full(version) {
            WireError::Std(err_type, code) => ErrorMsg {
                err_type,
                code,
                data: offending.to_vec(),
            },
            WireError::Experimenter { code, experimenter } => {
                let mut data = experimenter.to_be_bytes().to_vec();
                data.extend_from_slice(offending);
                ErrorMsg {
                    err_type: crate::consts::et13::EXPERIMENTER,
                    code,
                    data,
                }
            }
        }
    }

    /// Names this error.
    pub fn error(&self, version: u8) -> OfError {
        if self.err_type == crate::consts::et13::EXPERIMENTER
            && version != crate::consts::OFP10_VERSION
            && let Some(exp) = self.data.get(..4)
        {
            let exp = u32::from_be_bytes([exp[0], exp[1], exp[2], exp[3]]);
            if let Some(e) = OfError::from_experimenter(version, self.code, exp) {
                return e;
            }
        }
        OfError::from_wire(version, self.err_type, self.code)
    }
}

/// A port description (ofp_port / ofp_phy_port).
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct PortDesc {
    pub port_no: PortNo,
    pub hw_addr: [u8; 6],
    pub name: String,
    /// OFPPC_* bits (PORT_DOWN=1, NO_RECV=4, NO_FWD=32, NO_PACKET_IN=64).
    pub config: u32,
    /// OFPPS_* bits (LINK_DOWN=1, BLOCKED=2, LIVE=4).
    pub state: u32,
    pub curr: u32,
    pub advertised: u32,
    pub supported: u32,
    pub peer: u32,
    /// kbps (1.3 only).
    pub curr_speed: u32,
    pub max_speed: u32,
}

/// FEATURES_REPLY contents.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Features {
    pub datapath_id: u64,
    pub n_buffers: u32,
    pub n_tables: u8,
    pub auxiliary_id: u8,
    pub capabilities: u32,
    /// OpenFlow 1.0 supported-actions bitmap.
    pub actions: u32,
    /// Ports: sent in the 1.0 features reply; in 1.3 via PORT_DESC.
    pub ports: Vec<PortDesc>,
}

/// GET_CONFIG_REPLY / SET_CONFIG.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct SwitchConfig {
    pub flags: u16,
    pub miss_send_len: u16,
}

/// Packet-in reasons.
pub mod packet_in_reason {
    pub const NO_MATCH: u8 = 0;
    pub const ACTION: u8 = 1;
    pub const INVALID_TTL: u8 = 2;
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PacketIn {
    pub buffer_id: u32,
    pub total_len: u16,
    pub reason: u8,
    pub table_id: u8,
    pub cookie: u64,
    /// Pipeline fields: in_port (and metadata/registers when set).
    pub match_: Match,
    pub data: Vec<u8>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FlowRemoved {
    pub cookie: u64,
    pub priority: u16,
    /// 0 idle timeout, 1 hard timeout, 2 delete, 3 group delete.
    pub reason: u8,
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub packet_count: u64,
    pub byte_count: u64,
    pub match_: Match,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PortStatus {
    /// 0 add, 1 delete, 2 modify.
    pub reason: u8,
    pub desc: PortDesc,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PacketOut {
    pub buffer_id: u32,
    pub in_port: PortNo,
    /// Pipeline fields besides `in_port` (metadata, registers, tunnel
    /// fields) the packet starts with: only OpenFlow 1.5's packet-out,
    /// which carries a match, can express them; empty otherwise.
    pub metadata: Match,
    pub actions: Vec<Action>,
    pub data: Vec<u8>,
}

/// A FLOW_MOD: flows's flow_mod, plus the buffered packet that only the
/// wire carries.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FlowModMsg {
    pub flow_mod: FlowMod,
    /// A packet buffered by the switch to run through the new flow;
    /// [`crate::consts::NO_BUFFER`] when none.
    pub buffer_id: u32,
    /// Eviction importance (OpenFlow 1.4 on); the switch evicts nothing,
    /// so it is carried on the wire only.
    pub importance: u16,
}

impl FlowModMsg {
    /// `flow_mod` with no buffered packet.
    pub fn new(flow_mod: FlowMod) -> FlowModMsg {
        FlowModMsg {
            flow_mod,
            buffer_id: crate::consts::NO_BUFFER,
            importance: 0,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum GroupModCommand {
    Add,
    Modify,
    Delete,
}

/// A GROUP_MOD: flows's group, plus the command that only the wire
/// carries. A delete uses only `group.id`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct GroupMod {
    pub command: GroupModCommand,
    pub group: Group,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum MeterModCommand {
    Add,
    Modify,
    Delete,
}

/// A METER_MOD: flows's meter, plus the command that only the wire
/// carries. A delete uses only `meter.id`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MeterMod {
    pub command: MeterModCommand,
    pub meter: Meter,
}

/// One entry of an OFPMP_METER reply.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct MeterStats {
    pub meter_id: u32,
    pub flow_count: u32,
    pub packet_in_count: u64,
    pub byte_in_count: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    /// (packet_band_count, byte_band_count) per band.
    pub band_stats: Vec<(u64, u64)>,
}

/// The OFPMP_METER_FEATURES reply.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct MeterFeatures {
    pub max_meter: u32,
    /// Bit n set: band type n supported (`1 << 1`: drop).
    pub band_types: u32,
    /// `OFPMF_*` flags supported.
    pub capabilities: u32,
    pub max_bands: u8,
    pub max_color: u8,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PortMod {
    pub port_no: PortNo,
    pub hw_addr: [u8; 6],
    pub config: u32,
    pub mask: u32,
    pub advertise: u32,
}

/// Bundle control types (`OFPBCT_*`) and flags (`OFPBF_*`).
pub mod bundle_ctrl {
    pub const OPEN_REQUEST: u16 = 0;
    pub const OPEN_REPLY: u16 = 1;
    pub const CLOSE_REQUEST: u16 = 2;
    pub const CLOSE_REPLY: u16 = 3;
    pub const COMMIT_REQUEST: u16 = 4;
    pub const COMMIT_REPLY: u16 = 5;
    pub const DISCARD_REQUEST: u16 = 6;
    pub const DISCARD_REPLY: u16 = 7;
    /// Apply every message or none.
    pub const ATOMIC: u16 = 1;
    /// Apply the messages in the order they were added.
    pub const ORDERED: u16 = 2;
}

/// OFPT_BUNDLE_CONTROL (1.4, 1.5) or ONFT_BUNDLE_CONTROL (the 1.3
/// extension). Properties are not kept.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BundleCtrl {
    pub bundle_id: u32,
    /// `bundle_ctrl::*_REQUEST` / `*_REPLY`.
    pub ctrl_type: u16,
    /// `bundle_ctrl::ATOMIC | ORDERED`.
    pub flags: u16,
}

/// OFPT_BUNDLE_ADD_MESSAGE: one message (whole, with its header, in the
/// bundle's version) to apply when the bundle commits. It stays in wire
/// form: the switch decodes it when it is added and answers a failed
/// commit with an error quoting it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BundleAdd {
    pub bundle_id: u32,
    pub flags: u16,
    pub message: Vec<u8>,
}

/// Controller roles (OpenFlow 1.3 numbering).
pub mod role {
    pub const NOCHANGE: u32 = 0;
    pub const EQUAL: u32 = 1;
    pub const MASTER: u32 = 2;
    pub const SLAVE: u32 = 3;
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RoleMsg {
    pub role: u32,
    pub generation_id: u64,
}

/// Async message filters: index 0 applies to master/equal, 1 to slave.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AsyncConfig {
    pub packet_in_mask: [u32; 2],
    pub port_status_mask: [u32; 2],
    pub flow_removed_mask: [u32; 2],
}

impl Default for AsyncConfig {
    /// The OpenFlow 1.3 defaults: masters get everything, slaves only
    /// port-status. "Everything" includes OpenFlow 1.4's packet-in reasons
    /// (action_set, group, packet_out), which only 1.4+ connections see on
    /// the wire (earlier ones get `action`), as OVS enables them.
    fn default() -> AsyncConfig {
        AsyncConfig {
            packet_in_mask: [0b11_1111, 0],
            port_status_mask: [0b111, 0b111],
            flow_removed_mask: [0b1111, 0],
        }
    }
}

/// Flow/aggregate statistics request filter.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FlowStatsRequest {
    pub table_id: u8,
    pub out_port: PortNo,
    pub out_group: u32,
    pub cookie: u64,
    pub cookie_mask: u64,
    pub match_: Match,
}

impl Default for FlowStatsRequest {
    fn default() -> FlowStatsRequest {
        FlowStatsRequest {
            table_id: crate::consts::OFPTT_ALL,
            out_port: flows::action::port::ANY,
            out_group: crate::consts::OFPG_ANY,
            cookie: 0,
            cookie_mask: 0,
            match_: Match::catch_all(),
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MultipartRequestBody {
    Desc,
    Flow(FlowStatsRequest),
    Aggregate(FlowStatsRequest),
    Table,
    PortStats {
        port_no: PortNo,
    },
    PortDesc,
    Group {
        group_id: u32,
    },
    GroupDesc,
    TableFeatures,
    /// OFPMP_METER for one meter or `METER_ALL`.
    Meter {
        meter_id: u32,
    },
    /// OFPMP_METER_CONFIG for one meter or `METER_ALL`.
    MeterConfig {
        meter_id: u32,
    },
    MeterFeatures,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MultipartRequest {
    pub flags: u16,
    pub body: MultipartRequestBody,
}

#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct SwitchDesc {
    pub mfr_desc: String,
    pub hw_desc: String,
    pub sw_desc: String,
    pub serial_num: String,
    pub dp_desc: String,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FlowStats {
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub flags: u16,
    pub cookie: u64,
    pub packet_count: u64,
    pub byte_count: u64,
    pub match_: Match,
    /// `tun_metadataN` entries of the match, map-independent (the bridge's
    /// TLV map turns its rule's match into them).
    pub tun_metadata: Vec<flows::tlv::TunMetadataMatch>,
    pub actions: Vec<Action>,
}

#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct AggregateStats {
    pub packet_count: u64,
    pub byte_count: u64,
    pub flow_count: u32,
}

#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct TableStats {
    pub table_id: u8,
    /// 1.0 only.
    pub name: String,
    /// 1.0 only.
    pub max_entries: u32,
    pub active_count: u32,
    pub lookup_count: u64,
    pub matched_count: u64,
}

#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct PortStats {
    pub port_no: PortNo,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_frame_err: u64,
    pub rx_over_err: u64,
    pub rx_crc_err: u64,
    pub collisions: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
}

#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct GroupStats {
    pub group_id: u32,
    pub ref_count: u32,
    pub packet_count: u64,
    pub byte_count: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    /// (packet_count, byte_count) per bucket.
    pub bucket_stats: Vec<(u64, u64)>,
}

/// A table-features entry; the reply carries the properties OpenFlow
/// requires, empty.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct TableFeatures {
    pub table_id: u8,
    pub name: String,
    pub metadata_match: u64,
    pub metadata_write: u64,
    pub config: u32,
    pub max_entries: u32,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MultipartReplyBody {
    Desc(SwitchDesc),
    Flow(Vec<FlowStats>),
    Aggregate(AggregateStats),
    Table(Vec<TableStats>),
    PortStats(Vec<PortStats>),
    PortDesc(Vec<PortDesc>),
    Group(Vec<GroupStats>),
    GroupDesc(Vec<Group>),
    TableFeatures(Vec<TableFeatures>),
    Meter(Vec<MeterStats>),
    MeterConfig(Vec<Meter>),
    MeterFeatures(MeterFeatures),
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MultipartReply {
    /// `MP_MORE` when more parts follow.
    pub flags: u16,
    pub body: MultipartReplyBody,
}

/// Every message this crate speaks.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// HELLO; `versions` is the bitmap (bit n = version n), 0 if absent.
    Hello {
        versions: u32,
    },
    Error(ErrorMsg),
    EchoRequest(Vec<u8>),
    EchoReply(Vec<u8>),
    Experimenter {
        experimenter: u32,
        exp_type: u32,
        data: Vec<u8>,
    },
    FeaturesRequest,
    FeaturesReply(Features),
    GetConfigRequest,
    GetConfigReply(SwitchConfig),
    SetConfig(SwitchConfig),
    PacketIn(PacketIn),
    FlowRemoved(FlowRemoved),
    PortStatus(PortStatus),
    PacketOut(PacketOut),
    FlowMod(FlowModMsg),
    GroupMod(GroupMod),
    MeterMod(MeterMod),
    PortMod(PortMod),
    MultipartRequest(MultipartRequest),
    MultipartReply(MultipartReply),
    BarrierRequest,
    BarrierReply,
    QueueGetConfigRequest {
        port: PortNo,
    },
    QueueGetConfigReply {
        port: PortNo,
    },
    RoleRequest(RoleMsg),
    RoleReply(RoleMsg),
    GetAsyncRequest,
    GetAsyncReply(AsyncConfig),
    SetAsync(AsyncConfig),
    BundleControl(BundleCtrl),
    BundleAddMessage(BundleAdd),
    /// A Nicira extension message (experimenter 0x00002320).
    Nicira(crate::msg::nicira::NxMsg),
}

impl Message {
    /// Short OVS-style name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "OFPT_HELLO",
            Message::Error(_) => "OFPT_ERROR",
            Message::EchoRequest(_) => "OFPT_ECHO_REQUEST",
            Message::EchoReply(_) => "OFPT_ECHO_REPLY",
            Message::Experimenter { .. } => "OFPT_EXPERIMENTER",
            Message::FeaturesRequest => "OFPT_FEATURES_REQUEST",
            Message::FeaturesReply(_) => "OFPT_FEATURES_REPLY",
            Message::GetConfigRequest => "OFPT_GET_CONFIG_REQUEST",
            Message::GetConfigReply(_) => "OFPT_GET_CONFIG_REPLY",
            Message::SetConfig(_) => "OFPT_SET_CONFIG",
            Message::PacketIn(_) => "OFPT_PACKET_IN",
            Message::FlowRemoved(_) => "OFPT_FLOW_REMOVED",
            Message::PortStatus(_) => "OFPT_PORT_STATUS",
            Message::PacketOut(_) => "OFPT_PACKET_OUT",
            Message::FlowMod(_) => "OFPT_FLOW_MOD",
            Message::GroupMod(_) => "OFPT_GROUP_MOD",
            Message::MeterMod(_) => "OFPT_METER_MOD",
            Message::PortMod(_) => "OFPT_PORT_MOD",
            Message::MultipartRequest(_) => "OFPT_MULTIPART_REQUEST",
            Message::MultipartReply(_) => "OFPT_MULTIPART_REPLY",
            Message::BarrierRequest => "OFPT_BARRIER_REQUEST",
            Message::BarrierReply => "OFPT_BARRIER_REPLY",
            Message::QueueGetConfigRequest { .. } => "OFPT_QUEUE_GET_CONFIG_REQUEST",
            Message::QueueGetConfigReply { .. } => "OFPT_QUEUE_GET_CONFIG_REPLY",
            Message::RoleRequest(_) => "OFPT_ROLE_REQUEST",
            Message::RoleReply(_) => "OFPT_ROLE_REPLY",
            Message::GetAsyncRequest => "OFPT_GET_ASYNC_REQUEST",
            Message::GetAsyncReply(_) => "OFPT_GET_ASYNC_REPLY",
            Message::SetAsync(_) => "OFPT_SET_ASYNC",
            Message::BundleControl(_) => "OFPT_BUNDLE_CONTROL",
            Message::BundleAddMessage(_) => "OFPT_BUNDLE_ADD_MESSAGE",
            Message::Nicira(m) => m.name(),
        }
    }
}
