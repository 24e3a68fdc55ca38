//! Output in ovs-ofctl's wording.

use std::fmt::Write as _;

use flows::text::{format_actions, format_match, format_match_with, format_port, format_rule_with};
use openflow::consts::OFP10_VERSION;
use openflow::convert::flow_stats_to_rule;
use openflow::*;

/// `OF1.0`, `OF1.3`, `OF1.4`, `OF1.5`.
pub fn ver(v: u8) -> &'static str {
    match v {
        OFP10_VERSION => "OF1.0",
        openflow::consts::OFP14_VERSION => "OF1.4",
        openflow::consts::OFP15_VERSION => "OF1.5",
        _ => "OF1.3",
    }
}

/// A group as `dump-groups` prints it: from OpenFlow 1.5 on, every bucket
/// shows its id (buckets are numbered by position).
pub fn group(g: &Group, version: u8) -> String {
    let text = flows::text::format_group(g);
    if version < openflow::consts::OFP15_VERSION {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16 * g.buckets.len());
    for (i, part) in text.split("bucket=").enumerate() {
        if i > 0 {
            let _ = write!(out, "bucket=bucket_id:{},", i - 1);
        }
        out.push_str(part);
    }
    out
}

/// A stats header as ovs-ofctl prints it: `NAME (OF1.3) (xid=0x2):`
/// (no version tag for OpenFlow 1.0).
pub fn header(name: &str, version: u8, xid: u32) -> String {
    if version == OFP10_VERSION {
        format!("{name} (xid={xid:#x}):")
    } else {
        format!("{name} ({}) (xid={xid:#x}):", ver(version))
    }
}

/// A duration as ovs-ofctl prints it: `1s`, `3.25s`.
pub fn duration(sec: u32, nsec: u32) -> String {
    if nsec == 0 {
        return format!("{sec}s");
    }
    let frac = format!("{nsec:09}");
    format!("{sec}.{}s", frac.trim_end_matches('0'))
}

/// One `dump-flows` line.
pub fn flow_line(fs: &FlowStats, no_stats: bool) -> String {
    if no_stats {
        let mut parts = Vec::new();
        if fs.cookie != 0 {
            parts.push(format!("cookie={:#x}", fs.cookie));
        }
        if fs.table_id != 0 {
            parts.push(format!("table={}", fs.table_id));
        }
        let m = format_match_with(&fs.match_, u32::from(fs.priority), &fs.tun_metadata);
        if !m.is_empty() {
            parts.push(m);
        }
        let mut s = format!(" {}", parts.join(", "));
        if !s.ends_with(' ') {
            s.push(' ');
        }
        let _ = write!(s, "actions={}", format_actions(&fs.actions));
        s
    } else {
        let (rule, dur_ms) = flow_stats_to_rule(fs);
        let line = format_rule_with(fs.table_id, &rule, dur_ms, &fs.tun_metadata);
        // Use the switch's exact duration, printed as ovs-ofctl does.
        match (line.find("duration="), line.find(", table=")) {
            (Some(a), Some(b)) if a < b => format!(
                "{}duration={}{}",
                &line[..a],
                duration(fs.duration_sec, fs.duration_nsec),
                &line[b..]
            ),
            _ => line,
        }
    }
}

/// `show` output for one port.
pub fn port_desc(p: &PortDesc) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        " {}({}): addr:{}",
        format_port(p.port_no),
        p.name,
        ::wire::MacAddr(p.hw_addr)
    );
    let cfg = if p.config & 1 != 0 { "PORT_DOWN" } else { "0" };
    let state = if p.state & 1 != 0 {
        "LINK_DOWN"
    } else if p.state & 4 != 0 {
        "LIVE"
    } else {
        "0"
    };
    let _ = writeln!(s, "     config:     {cfg}");
    let _ = writeln!(s, "     state:      {state}");
    let _ = write!(
        s,
        "     speed: {} Mbps now, {} Mbps max",
        p.curr_speed / 1000,
        p.max_speed / 1000
    );
    s
}

fn capabilities(c: u32) -> String {
    let names = [
        (1, "FLOW_STATS"),
        (2, "TABLE_STATS"),
        (4, "PORT_STATS"),
        (8, "GROUP_STATS"),
        (32, "IP_REASM"),
        (64, "QUEUE_STATS"),
        (256, "PORT_BLOCKED"),
    ];
    names
        .iter()
        .filter(|(b, _)| c & b != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `show` header (features).
pub fn features(f: &Features, version: u8, xid: u32) -> String {
    format!(
        "{} dpid:{:016x}\nn_tables:{}, n_buffers:{}\ncapabilities: {}",
        header("OFPT_FEATURES_REPLY", version, xid),
        f.datapath_id,
        f.n_tables,
        f.n_buffers,
        capabilities(f.capabilities)
    )
}

/// `dump-ports` entry; from 1.3 on, with the port's duration.
pub fn port_stats(p: &PortStats, version: u8) -> String {
    let port = if p.port_no == flows::action::port::LOCAL {
        "LOCAL".to_string()
    } else {
        format!("{:>2}", p.port_no)
    };
    let mut s = format!(
        "  port {port}: rx pkts={}, bytes={}, drop={}, errs={}, frame={}, over={}, crc={}\n           tx pkts={}, bytes={}, drop={}, errs={}, coll={}",
        p.rx_packets,
        p.rx_bytes,
        p.rx_dropped,
        p.rx_errors,
        p.rx_frame_err,
        p.rx_over_err,
        p.rx_crc_err,
        p.tx_packets,
        p.tx_bytes,
        p.tx_dropped,
        p.tx_errors,
        p.collisions
    );
    if version != OFP10_VERSION {
        let _ = write!(
            s,
            "\n           duration={}",
            duration(p.duration_sec, p.duration_nsec)
        );
    }
    s
}

/// `dump-tables` entry.
pub fn table_stats(t: &TableStats) -> String {
    let name = if t.name.is_empty() {
        String::new()
    } else {
        format!(" (\"{}\")", t.name)
    };
    format!(
        "  table {}{name}:\n    active={}, lookup={}, matched={}",
        t.table_id, t.active_count, t.lookup_count, t.matched_count
    )
}

/// A decoded OFPT_ERROR, as ovs-ofctl prints it.
pub fn error(e: &ErrorMsg, version: u8, xid: u32) -> String {
    let name = e.error(version);
    let mut s = format!("OFPT_ERROR ({}) (xid={xid:#x}): {name}", ver(version));
    // An experimenter error's data starts with the experimenter id.
    let data = if e.err_type == openflow::consts::et13::EXPERIMENTER && version != OFP10_VERSION {
        e.data.get(4..).unwrap_or(&[])
    } else {
        &e.data[..]
    };
    if let Ok((h, m)) = openflow::decode(data) {
        match &m {
            // ovs-ofctl prints a refused TLV table mod in full.
            Message::Nicira(openflow::msg::nicira::NxMsg::TlvTableMod(t)) => {
                let _ = write!(s, "\n{}", super::tlv::mod_text(t, h.version, h.xid));
            }
            _ => {
                let _ = write!(s, "\n{}", m.name());
            }
        }
    } else if let Ok(h) = openflow::codec::parse_header(data) {
        let _ = write!(
            s,
            "\n(type {} message, first {} bytes)",
            h.msg_type,
            data.len()
        );
    }
    s
}

/// `monitor` line for an asynchronous message.
pub fn async_msg(m: &Message, version: u8, xid: u32) -> String {
    match m {
        Message::PacketIn(p) => {
            let reason = match p.reason {
                0 => "no_match",
                1 => "action",
                2 => "invalid_ttl",
                3 => "action_set",
                4 => "group",
                5 => "packet_out",
                _ => "other",
            };
            format!(
                "OFPT_PACKET_IN ({}) (xid={xid:#x}): table_id={} cookie={:#x} total_len={} in_port={} (via {reason}) data_len={} (unbuffered)\n{}",
                ver(version),
                p.table_id,
                p.cookie,
                p.total_len,
                format_port(p.match_.key.in_port),
                p.data.len(),
                hex_dump(&p.data)
            )
        }
        Message::FlowRemoved(f) => {
            let reason = match f.reason {
                0 => "idle",
                1 => "hard",
                2 => "delete",
                3 => "group_delete",
                _ => "other",
            };
            format!(
                "OFPT_FLOW_REMOVED ({}) (xid={xid:#x}): {} reason={reason} table_id={} cookie={:#x} duration{}.{:03}s idle{} hard{} pkts{} bytes{}",
                ver(version),
                format_match(&f.match_, u32::from(f.priority)),
                f.table_id,
                f.cookie,
                f.duration_sec,
                f.duration_nsec / 1_000_000,
                f.idle_timeout,
                f.hard_timeout,
                f.packet_count,
                f.byte_count
            )
        }
        Message::PortStatus(p) => {
            let reason = match p.reason {
                0 => "ADD",
                1 => "DELETE",
                _ => "MOD",
            };
            format!(
                "OFPT_PORT_STATUS ({}) (xid={xid:#x}): {reason}:{}",
                ver(version),
                port_desc(&p.desc)
            )
        }
        other => format!("{} ({}) (xid={xid:#x})", other.name(), ver(version)),
    }
}

fn hex_dump(d: &[u8]) -> String {
    d.chunks(16)
        .enumerate()
        .map(|(i, c)| {
            let h = c
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ");
            format!("{:08x}  {h}", i * 16)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use flows::Action;
    use flows::key::FlowKey;

    #[test]
    fn dump_flows_line_matches_ovs_ofctl_layout() {
        let mut k = FlowKey::default();
        let mut m = FlowKey::default();
        k.dl_type = 0x0800;
        m.dl_type = 0xffff;
        k.nw_dst = 0x0a00_0000;
        m.nw_dst = 0xffff_ff00;
        let fs = FlowStats {
            tun_metadata: Vec::new(),
            table_id: 0,
            duration_sec: 3,
            duration_nsec: 250_000_000,
            priority: 10,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: 0,
            cookie: 0,
            packet_count: 5,
            byte_count: 300,
            match_: flows::Match::new(k, m),
            actions: vec![Action::Output {
                port: 2,
                max_len: 0,
            }],
        };
        assert_eq!(
            flow_line(&fs, false),
            " cookie=0x0, duration=3.25s, table=0, n_packets=5, n_bytes=300, priority=10,ip,nw_dst=10.0.0.0/24 actions=output:2"
        );
        assert_eq!(
            flow_line(&fs, true),
            " priority=10,ip,nw_dst=10.0.0.0/24 actions=output:2"
        );
    }

    #[test]
    fn durations_trim_trailing_zeros_like_ovs() {
        assert_eq!(duration(1, 0), "1s");
        assert_eq!(duration(3, 250_000_000), "3.25s");
        assert_eq!(duration(0, 1), "0.000000001s");
    }

    #[test]
    fn errors_are_printed_with_their_ovs_names() {
        let e = ErrorMsg {
            err_type: 5,
            code: 1,
            data: vec![],
        };
        assert!(error(&e, 4, 3).contains("OFPFMFC_TABLE_FULL"));
    }
}
