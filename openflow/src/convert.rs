//! Conversions between wire messages and the flows crate's table types.

use flows::table::{
    FlowFlags, FlowMod as TableFlowMod, FlowModCommand as TableCmd, FlowModError, Rule,
};

use crate::error::OfError;
use crate::message::{FlowMod, FlowModCommand, FlowStats, flow_mod_flags as ff};

/// Flow flags bits → flows' flag struct.
pub fn flags_from_wire(f: u16) -> FlowFlags {
    FlowFlags {
        send_flow_rem: f & ff::SEND_FLOW_REM != 0,
        check_overlap: f & ff::CHECK_OVERLAP != 0,
        reset_counts: f & ff::RESET_COUNTS != 0,
        no_packet_counts: f & ff::NO_PKT_COUNTS != 0,
        no_byte_counts: f & ff::NO_BYT_COUNTS != 0,
    }
}

/// flows' flag struct → flow flags bits.
pub fn flags_to_wire(f: &FlowFlags) -> u16 {
    let mut v = 0;
    for (on, bit) in [
        (f.send_flow_rem, ff::SEND_FLOW_REM),
        (f.check_overlap, ff::CHECK_OVERLAP),
        (f.reset_counts, ff::RESET_COUNTS),
        (f.no_packet_counts, ff::NO_PKT_COUNTS),
        (f.no_byte_counts, ff::NO_BYT_COUNTS),
    ] {
        if on {
            v |= bit;
        }
    }
    v
}

fn cmd_to_table(c: FlowModCommand) -> TableCmd {
    match c {
        FlowModCommand::Add => TableCmd::Add,
        FlowModCommand::Modify => TableCmd::Modify,
        FlowModCommand::ModifyStrict => TableCmd::ModifyStrict,
        FlowModCommand::Delete => TableCmd::Delete,
        FlowModCommand::DeleteStrict => TableCmd::DeleteStrict,
    }
}

fn cmd_from_table(c: TableCmd) -> FlowModCommand {
    match c {
        TableCmd::Add => FlowModCommand::Add,
        TableCmd::Modify => FlowModCommand::Modify,
        TableCmd::ModifyStrict => FlowModCommand::ModifyStrict,
        TableCmd::Delete => FlowModCommand::Delete,
        TableCmd::DeleteStrict => FlowModCommand::DeleteStrict,
    }
}

/// A decoded FLOW_MOD as the flows crate's flow_mod (buffer_id is
/// handled by the connection).
pub fn to_table_flow_mod(fm: &FlowMod) -> TableFlowMod {
    TableFlowMod {
        command: cmd_to_table(fm.command),
        table_id: fm.table_id,
        priority: u32::from(fm.priority),
        m: fm.match_,
        cookie: fm.cookie,
        cookie_mask: fm.cookie_mask,
        idle_timeout: fm.idle_timeout,
        hard_timeout: fm.hard_timeout,
        flags: flags_from_wire(fm.flags),
        out_port: fm.out_port,
        out_group: fm.out_group,
        actions: fm.actions.clone(),
    }
}

/// The flows crate's flow_mod (e.g. parsed from ovs-ofctl text) as a
/// FLOW_MOD message body.
pub fn from_table_flow_mod(fm: &TableFlowMod) -> FlowMod {
    FlowMod {
        command: cmd_from_table(fm.command),
        match_: fm.m,
        priority: u16::try_from(fm.priority).unwrap_or(u16::MAX),
        cookie: fm.cookie,
        cookie_mask: fm.cookie_mask,
        table_id: fm.table_id,
        idle_timeout: fm.idle_timeout,
        hard_timeout: fm.hard_timeout,
        flags: flags_to_wire(&fm.flags),
        buffer_id: crate::consts::NO_BUFFER,
        out_port: fm.out_port,
        out_group: fm.out_group,
        actions: fm.actions.clone(),
    }
}

/// The OpenFlow error for a refused flow_mod.
pub fn flow_mod_error(e: &FlowModError) -> OfError {
    match e {
        FlowModError::BadTable(_) => OfError::BadTableId,
        FlowModError::Overlap => OfError::Overlap,
        FlowModError::BadGoto { .. } => OfError::BadInstructionTableId,
        FlowModError::BadPrereq(_) => OfError::BadPrereq,
    }
}

/// A flow stats entry for a rule, `now_ms` being the caller's clock.
pub fn rule_to_flow_stats(table_id: u8, r: &Rule, now_ms: u64) -> FlowStats {
    let age = now_ms.saturating_sub(r.created_ms);
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
        match_: r.m,
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
