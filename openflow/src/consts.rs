//! Wire constants of OpenFlow 1.0, 1.3, 1.4 and 1.5.

pub const OFP10_VERSION: u8 = 0x01;
pub const OFP13_VERSION: u8 = 0x04;
pub const OFP14_VERSION: u8 = 0x05;
pub const OFP15_VERSION: u8 = 0x06;
/// Length of the common header.
pub const HEADER_LEN: usize = 8;
/// `buffer_id` meaning "no buffered packet".
pub const NO_BUFFER: u32 = 0xffff_ffff;
/// `table_id` meaning "all tables" (delete, stats).
pub const OFPTT_ALL: u8 = 0xff;
/// Group "any" / "all".
pub const OFPG_ANY: u32 = 0xffff_ffff;
pub const OFPG_ALL: u32 = 0xffff_fffc;
/// Nicira vendor / experimenter id.
pub const NX_VENDOR_ID: u32 = 0x0000_2320;
/// ONF experimenter id (used by OVS for OXM tcp_flags in 1.3).
pub const ONF_VENDOR_ID: u32 = 0x4f4e_4600;
/// OFPVID_PRESENT of OXM VLAN_VID.
pub const OFPVID_PRESENT: u16 = 0x1000;
/// OFPMPF_REQ_MORE / OFPMPF_REPLY_MORE.
pub const MP_MORE: u16 = 1;
/// Largest message body a multipart reply carries before splitting.
pub const MP_SPLIT_BYTES: usize = 60_000;

/// Message types of OpenFlow 1.3.
pub mod t13 {
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const EXPERIMENTER: u8 = 4;
    pub const FEATURES_REQUEST: u8 = 5;
    pub const FEATURES_REPLY: u8 = 6;
    pub const GET_CONFIG_REQUEST: u8 = 7;
    pub const GET_CONFIG_REPLY: u8 = 8;
    pub const SET_CONFIG: u8 = 9;
    pub const PACKET_IN: u8 = 10;
    pub const FLOW_REMOVED: u8 = 11;
    pub const PORT_STATUS: u8 = 12;
    pub const PACKET_OUT: u8 = 13;
    pub const FLOW_MOD: u8 = 14;
    pub const GROUP_MOD: u8 = 15;
    pub const PORT_MOD: u8 = 16;
    pub const TABLE_MOD: u8 = 17;
    pub const MULTIPART_REQUEST: u8 = 18;
    pub const MULTIPART_REPLY: u8 = 19;
    pub const BARRIER_REQUEST: u8 = 20;
    pub const BARRIER_REPLY: u8 = 21;
    pub const QUEUE_GET_CONFIG_REQUEST: u8 = 22;
    pub const QUEUE_GET_CONFIG_REPLY: u8 = 23;
    pub const ROLE_REQUEST: u8 = 24;
    pub const ROLE_REPLY: u8 = 25;
    pub const GET_ASYNC_REQUEST: u8 = 26;
    pub const GET_ASYNC_REPLY: u8 = 27;
    pub const SET_ASYNC: u8 = 28;
    pub const METER_MOD: u8 = 29;
}

/// Message types OpenFlow 1.4 added (1.5 keeps every 1.4 code).
pub mod t14 {
    pub const ROLE_STATUS: u8 = 30;
    pub const TABLE_STATUS: u8 = 31;
    pub const REQUESTFORWARD: u8 = 32;
    pub const BUNDLE_CONTROL: u8 = 33;
    pub const BUNDLE_ADD_MESSAGE: u8 = 34;
}

/// Message types of OpenFlow 1.0.
pub mod t10 {
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const VENDOR: u8 = 4;
    pub const FEATURES_REQUEST: u8 = 5;
    pub const FEATURES_REPLY: u8 = 6;
    pub const GET_CONFIG_REQUEST: u8 = 7;
    pub const GET_CONFIG_REPLY: u8 = 8;
    pub const SET_CONFIG: u8 = 9;
    pub const PACKET_IN: u8 = 10;
    pub const FLOW_REMOVED: u8 = 11;
    pub const PORT_STATUS: u8 = 12;
    pub const PACKET_OUT: u8 = 13;
    pub const FLOW_MOD: u8 = 14;
    pub const PORT_MOD: u8 = 15;
    pub const STATS_REQUEST: u8 = 16;
    pub const STATS_REPLY: u8 = 17;
    pub const BARRIER_REQUEST: u8 = 18;
    pub const BARRIER_REPLY: u8 = 19;
    pub const QUEUE_GET_CONFIG_REQUEST: u8 = 20;
    pub const QUEUE_GET_CONFIG_REPLY: u8 = 21;
}

/// Error types of OpenFlow 1.3.
pub mod et13 {
    pub const HELLO_FAILED: u16 = 0;
    pub const BAD_REQUEST: u16 = 1;
    pub const BAD_ACTION: u16 = 2;
    pub const BAD_INSTRUCTION: u16 = 3;
    pub const BAD_MATCH: u16 = 4;
    pub const FLOW_MOD_FAILED: u16 = 5;
    pub const GROUP_MOD_FAILED: u16 = 6;
    pub const PORT_MOD_FAILED: u16 = 7;
    pub const TABLE_MOD_FAILED: u16 = 8;
    pub const QUEUE_OP_FAILED: u16 = 9;
    pub const SWITCH_CONFIG_FAILED: u16 = 10;
    pub const ROLE_REQUEST_FAILED: u16 = 11;
    pub const METER_MOD_FAILED: u16 = 12;
    pub const TABLE_FEATURES_FAILED: u16 = 13;
    /// From 1.4 on.
    pub const BAD_PROPERTY: u16 = 14;
    pub const ASYNC_CONFIG_FAILED: u16 = 15;
    pub const FLOW_MONITOR_FAILED: u16 = 16;
    pub const BUNDLE_FAILED: u16 = 17;
    /// An experimenter error (`ofp_error_experimenter_msg`): a 16-bit
    /// experimenter code, then the experimenter id.
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// Error types of OpenFlow 1.0.
pub mod et10 {
    pub const HELLO_FAILED: u16 = 0;
    pub const BAD_REQUEST: u16 = 1;
    pub const BAD_ACTION: u16 = 2;
    pub const FLOW_MOD_FAILED: u16 = 3;
    pub const PORT_MOD_FAILED: u16 = 4;
    pub const QUEUE_OP_FAILED: u16 = 5;
}

/// Multipart (1.3) / stats (1.0) types.
pub mod mp {
    pub const DESC: u16 = 0;
    pub const FLOW: u16 = 1;
    pub const AGGREGATE: u16 = 2;
    pub const TABLE: u16 = 3;
    pub const PORT_STATS: u16 = 4;
    pub const QUEUE: u16 = 5;
    pub const GROUP: u16 = 6;
    pub const GROUP_DESC: u16 = 7;
    pub const GROUP_FEATURES: u16 = 8;
    pub const METER: u16 = 9;
    pub const METER_CONFIG: u16 = 10;
    pub const METER_FEATURES: u16 = 11;
    pub const TABLE_FEATURES: u16 = 12;
    pub const PORT_DESC: u16 = 13;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// Converts an OpenFlow 1.0 16-bit port number to 1.3 numbering.
pub fn port_from_10(p: u16) -> u32 {
    if p >= 0xff00 {
        0xffff_0000 | u32::from(p)
    } else {
        u32::from(p)
    }
}

/// Converts a 1.3 port number to 1.0 numbering (`None` if out of range).
pub fn port_to_10(p: u32) -> Option<u16> {
    if p >= 0xffff_ff00 {
        Some((p & 0xffff) as u16)
    } else {
        u16::try_from(p).ok().filter(|p| *p < 0xff00)
    }
}
