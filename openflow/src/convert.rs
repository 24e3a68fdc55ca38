//! Conversions between wire statistics and the flows crate's table types.
//! Flow mods and groups need none: the messages carry flows's own types.

use flows::table::{ActionCheckError, FlowModError, Rule};

use crate::error::OfError;
use crate::message::FlowStats;
pub use crate::msg::flow_mod::{flags_from_wire, flags_to_wire};

/// The OpenFlow error for a refused flow_mod.
pub fn flow_mod_error(e: &FlowModError) -> OfError {
    match e {
        FlowModError::BadTable(_) => OfError::BadTableId,
        FlowModError::ReadOnlyTable(_) => OfError::BadRequestEperm,
        FlowModError::Overlap => OfError::Overlap,
        FlowModError::BadGoto { .. } => OfError::BadInstructionTableId,
        FlowModError::BadPrereq(_) => OfError::BadPrereq,
        FlowModError::Actions(ActionCheckError::MatchInconsistent(_)) => OfError::MatchInconsistent,
        FlowModError::Actions(ActionCheckError::TooManyVlanTags) => OfError::BadTag,
    }
}

/// Why a flow's `tun_metadataN` does not bind to the bridge's TLV map, as
/// an OpenFlow error (what Open vSwitch 3.1 answers).
pub fn tun_metadata_error(e: flows::tlv::TunMetadataFieldError) -> OfError {
    use flows::tlv::TunMetadataFieldError as T;
    match e {
        T::Unmapped(_) => OfError::InvalidTlvField,
        T::LongerThanMapped { .. } | T::TooLong { .. } | T::RangeTooWide { .. } => {
            OfError::BadSetLen
        }
    }
}

/// A flow stats entry for a rule, `now_ms` being the caller's clock; its
/// `tun_metadataN` matches are read back through the bridge's TLV map.
pub fn rule_to_flow_stats(
    table_id: u8,
    r: &Rule,
    now_ms: u64,
    tlv: &flows::tlv::TlvMap,
) -> FlowStats {
    let age = now_ms.saturating_sub(r.created_ms);
    let tun_metadata = tlv.match_entries(&r.m);
    let mut match_ = r.m;
    for k in [&mut match_.key, &mut match_.mask] {
        k.tun_metadata = Default::default();
        k.tun_metadata_present = 0;
    }
    FlowStats {
        table_id,
        duration_sec: u32::try_from(age / 1000).unwrap_or(u32::MAX),
        duration_nsec: ((age % 1000) * 1_000_000) as u32,
        priority: u16::try_from(r.priority).unwrap_or(u16::MAX),
        idle_timeout: r.idle_timeout,
        hard_timeout: r.hard_timeout,
        flags: flags_to_wire(&r.flags),
        cookie: r.cookie,
        packet_count: r.n_packets,
        byte_count: r.n_bytes,
        match_,
        tun_metadata,
        actions: r.actions.clone(),
    }
}

/// A rule reconstructed from a flow stats entry, so that
/// `flows::text::format_rule(table, &rule, duration_ms(fs))` prints it.
pub fn flow_stats_to_rule(fs: &FlowStats) -> (Rule, u64) {
    let dur_ms = u64::from(fs.duration_sec) * 1000 + u64::from(fs.duration_nsec / 1_000_000);
    (
        Rule {
            cookie: fs.cookie,
            priority: u32::from(fs.priority),
            m: fs.match_,
            actions: fs.actions.clone(),
            idle_timeout: fs.idle_timeout,
            hard_timeout: fs.hard_timeout,
            flags: flags_from_wire(fs.flags),
            created_ms: 0,
            last_used_ms: 0,
            n_packets: fs.packet_count,
            n_bytes: fs.byte_count,
        },
        dur_ms,
    )
}

/// The OpenFlow error for a refused TLV table mod.
pub fn tlv_error(e: flows::tlv::TlvError) -> OfError {
    use flows::tlv::TlvError as T;
    match e {
        T::BadCommand => OfError::TlvBadCommand,
        T::BadOptLen => OfError::TlvBadOptLen,
        T::BadFieldIdx => OfError::TlvBadFieldIdx,
        T::TableFull => OfError::TlvTableFull,
        T::AlreadyMapped => OfError::TlvAlreadyMapped,
        T::DupEntry => OfError::TlvDupEntry,
        T::InvalidTlvDel => OfError::TlvInvalidDel,
    }
}
