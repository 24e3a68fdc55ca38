//! Datapath state in the text forms `ovs-appctl` prints.
//!
//! Datapath flows in the text form `ovs-appctl dpctl/dump-flows` prints:
//! `recirc_id(0),in_port(2),eth(src=…,dst=…),eth_type(0x0800),ipv4(src=…,proto=1,frag=no), packets:3, bytes:294, used:0.520s, actions:3`.
//! Only the fields a megaflow matches on are shown; partially masked ones
//! as `value/mask`. Actions use [`flows::xlate::format_dp_actions`], the
//! same text `ofproto/trace` prints.

use std::net::{Ipv4Addr, Ipv6Addr};

use datapath::{PmdStats, Stage};
use flows::key::{FRAG_ANY, FRAG_LATER, ethertype, ipproto};
use flows::{DpAction, FlowKey, Match};
use std::fmt::Write as _;

fn mac_text(m: [u8; 6]) -> String {
    wire::MacAddr(m).to_string()
}

/// Appends `name=value[/mask]` for one field when its mask is not zero.
fn field<T: PartialEq + Copy>(
    out: &mut Vec<String>,
    name: &str,
    v: T,
    m: T,
    zero: T,
    full: T,
    fmt: impl Fn(T) -> String,
) {
    if m == zero {
        return;
    }
    if m == full {
        out.push(format!("{name}={}", fmt(v)));
    } else {
        out.push(format!("{name}={}/{}", fmt(v), fmt(m)));
    }
}

/// The match part of a megaflow, ODP style.
pub fn format_match(mt: &Match) -> String {
    let (k, m) = (&mt.key, &mt.mask);
    // `%#x` as C prints it: 0 without a prefix.
    let cx = |v: u32| {
        if v == 0 {
            "0".to_string()
        } else {
            format!("{v:#x}")
        }
    };
    let mut parts = vec![format!("recirc_id({})", cx(k.recirc_id))];
    // Tunnel metadata of a popped packet, as OVS prints `tunnel(...)`.
    let mut tun = Vec::new();
    if m.tun_id != 0 {
        tun.push(format!("tun_id={:#x}", k.tun_id));
    }
    if m.tun_src != 0 {
        tun.push(format!("src={}", std::net::Ipv4Addr::from(k.tun_src)));
    }
    if m.tun_dst != 0 {
        tun.push(format!("dst={}", std::net::Ipv4Addr::from(k.tun_dst)));
    }
    if m.tun_ipv6_src != [0; 16] {
        tun.push(format!(
            "ipv6_src={}",
            std::net::Ipv6Addr::from(k.tun_ipv6_src)
        ));
    }
    if m.tun_ipv6_dst != [0; 16] {
        tun.push(format!(
            "ipv6_dst={}",
            std::net::Ipv6Addr::from(k.tun_ipv6_dst)
        ));
    }
    if !tun.is_empty() {
        parts.push(format!("tunnel({})", tun.join(",")));
    }
    parts.push(format!("in_port({})", k.in_port));
    if m.ct_state != 0 {
        const NAMES: [&str; 8] = ["new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat"];
        let mut t = String::new();
        for (i, n) in NAMES.iter().enumerate() {
            let bit = 1u32 << i;
            if m.ct_state & bit != 0 {
                t.push(if k.ct_state & bit != 0 { '+' } else { '-' });
                t.push_str(n);
            }
        }
        parts.push(format!("ct_state({t})"));
    }
    if m.ct_zone != 0 {
        parts.push(format!("ct_zone({:#x})", k.ct_zone));
    }
    if m.ct_mark != 0 {
        parts.push(if m.ct_mark == u32::MAX {
            format!("ct_mark({})", cx(k.ct_mark))
        } else {
            format!("ct_mark({}/{:#x})", cx(k.ct_mark), m.ct_mark)
        });
    }
    if m.ct_label != [0; 16] {
        let v = u128::from_be_bytes(k.ct_label);
        let mm = u128::from_be_bytes(m.ct_label);
        parts.push(if mm == u128::MAX {
            format!("ct_label({v:#x})")
        } else {
            format!("ct_label({v:#x}/{mm:#x})")
        });
    }
    let mut eth = Vec::new();
    field(
        &mut eth, "src", k.dl_src, m.dl_src, [0; 6], [0xff; 6], mac_text,
    );
    field(
        &mut eth, "dst", k.dl_dst, m.dl_dst, [0; 6], [0xff; 6], mac_text,
    );
    if !eth.is_empty() {
        parts.push(format!("eth({})", eth.join(",")));
    }
    if m.vlan_tci != 0 {
        if k.vlan_tci == 0 && m.vlan_tci & flows::key::VLAN_CFI != 0 {
            parts.push("vlan(none)".to_string());
        } else {
            let mut v = Vec::new();
            field(
                &mut v,
                "vid",
                k.vlan_tci & 0xfff,
                m.vlan_tci & 0xfff,
                0,
                0xfff,
                |x| x.to_string(),
            );
            field(
                &mut v,
                "pcp",
                k.vlan_tci >> 13,
                m.vlan_tci >> 13,
                0,
                7,
                |x| x.to_string(),
            );
            parts.push(format!("vlan({})", v.join(",")));
        }
    }
    if m.dl_type != 0 {
        parts.push(format!("eth_type(0x{:04x})", k.dl_type));
    }
    let frag = |k: &FlowKey, m: &FlowKey| -> Option<&'static str> {
        if m.nw_frag == 0 {
            return None;
        }
        Some(if k.nw_frag & FRAG_ANY == 0 {
            "no"
        } else if m.nw_frag & FRAG_LATER != 0 && k.nw_frag & FRAG_LATER != 0 {
            "later"
        } else if m.nw_frag & FRAG_LATER != 0 {
            "first"
        } else {
            "yes"
        })
    };
    let l3 = match k.dl_type {
        ethertype::IPV4 if m.dl_type != 0 => {
            let mut v = Vec::new();
            field(&mut v, "src", k.nw_src, m.nw_src, 0, u32::MAX, |x| {
                Ipv4Addr::from(x).to_string()
            });
            field(&mut v, "dst", k.nw_dst, m.nw_dst, 0, u32::MAX, |x| {
                Ipv4Addr::from(x).to_string()
            });
            field(&mut v, "proto", k.nw_proto, m.nw_proto, 0, 0xff, |x| {
                x.to_string()
            });
            field(&mut v, "tos", k.nw_tos, m.nw_tos, 0, 0xff, |x| {
                format!("{x:#x}")
            });
            field(&mut v, "ttl", k.nw_ttl, m.nw_ttl, 0, 0xff, |x| {
                x.to_string()
            });
            if let Some(f) = frag(k, m) {
                v.push(format!("frag={f}"));
            }
            (!v.is_empty()).then(|| format!("ipv4({})", v.join(",")))
        }
        ethertype::IPV6 if m.dl_type != 0 => {
            let mut v = Vec::new();
            field(
                &mut v,
                "src",
                k.ipv6_src,
                m.ipv6_src,
                [0; 16],
                [0xff; 16],
                |x| Ipv6Addr::from(x).to_string(),
            );
            field(
                &mut v,
                "dst",
                k.ipv6_dst,
                m.ipv6_dst,
                [0; 16],
                [0xff; 16],
                |x| Ipv6Addr::from(x).to_string(),
            );
            field(
                &mut v,
                "label",
                k.ipv6_label,
                m.ipv6_label,
                0,
                0xfffff,
                |x| format!("{x:#x}"),
            );
            field(&mut v, "proto", k.nw_proto, m.nw_proto, 0, 0xff, |x| {
                x.to_string()
            });
            field(&mut v, "tclass", k.nw_tos, m.nw_tos, 0, 0xff, |x| {
                format!("{x:#x}")
            });
            field(&mut v, "hlimit", k.nw_ttl, m.nw_ttl, 0, 0xff, |x| {
                x.to_string()
            });
            if let Some(f) = frag(k, m) {
                v.push(format!("frag={f}"));
            }
            (!v.is_empty()).then(|| format!("ipv6({})", v.join(",")))
        }
        ethertype::ARP if m.dl_type != 0 => {
            let mut v = Vec::new();
            field(&mut v, "sip", k.nw_src, m.nw_src, 0, u32::MAX, |x| {
                Ipv4Addr::from(x).to_string()
            });
            field(&mut v, "tip", k.nw_dst, m.nw_dst, 0, u32::MAX, |x| {
                Ipv4Addr::from(x).to_string()
            });
            field(&mut v, "op", k.nw_proto, m.nw_proto, 0, 0xff, |x| {
                x.to_string()
            });
            field(
                &mut v, "sha", k.arp_sha, m.arp_sha, [0; 6], [0xff; 6], mac_text,
            );
            field(
                &mut v, "tha", k.arp_tha, m.arp_tha, [0; 6], [0xff; 6], mac_text,
            );
            (!v.is_empty()).then(|| format!("arp({})", v.join(",")))
        }
        _ => None,
    };
    if let Some(l3) = l3 {
        parts.push(l3);
    }
    let is_ip = m.dl_type != 0 && (k.dl_type == ethertype::IPV4 || k.dl_type == ethertype::IPV6);
    if is_ip && m.nw_proto != 0 {
        let name = match (k.dl_type, k.nw_proto) {
            (_, ipproto::TCP) => Some("tcp"),
            (_, ipproto::UDP) => Some("udp"),
            (_, ipproto::SCTP) => Some("sctp"),
            (ethertype::IPV4, ipproto::ICMP) => Some("icmp"),
            (ethertype::IPV6, ipproto::ICMPV6) => Some("icmpv6"),
            _ => None,
        };
        if let Some(name) = name {
            let icmp = name.starts_with("icmp");
            let (a, b) = if icmp {
                ("type", "code")
            } else {
                ("src", "dst")
            };
            let mut v = Vec::new();
            field(&mut v, a, k.tp_src, m.tp_src, 0, 0xffff, |x| x.to_string());
            field(&mut v, b, k.tp_dst, m.tp_dst, 0, 0xffff, |x| x.to_string());
            if !v.is_empty() {
                parts.push(format!("{name}({})", v.join(",")));
            }
            if name == "tcp" && m.tcp_flags != 0 {
                parts.push(format!("tcp_flags({:#x}/{:#x})", k.tcp_flags, m.tcp_flags));
            }
        }
    }
    parts.join(",")
}

/// One `dpctl/dump-flows` line.
pub fn format_flow(
    m: &Match,
    actions: &[DpAction],
    packets: u64,
    bytes: u64,
    used_secs: Option<f64>,
    ct_text: &dyn Fn(u32) -> String,
) -> String {
    let used = match used_secs {
        Some(s) => format!("{s:.3}s"),
        None => "never".to_string(),
    };
    format!(
        "{}, packets:{packets}, bytes:{bytes}, used:{used}, actions:{}",
        format_match(m),
        flows::xlate::format_dp_actions_with(actions, ct_text)
    )
}

/// `part` as a percentage of `whole` (0 when `whole` is 0).
fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// `a / b` (0 when `b` is 0).
fn ratio(a: f64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a / b as f64 }
}

/// `dpif-netdev/pmd-perf-show` for the given PMDs: per PMD, its iterations
/// and where their cycles went, its packets and how the caches served
/// them, then the cycles of each stage of the packet path. Measured since
/// the PMD started or since `dpif-netdev/pmd-stats-clear`.
pub fn format_pmd_perf(pmds: &[PmdStats]) -> String {
    let mut out = String::new();
    let duration_ns = pmds
        .iter()
        .map(|s| s.busy_ns + s.idle_ns)
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "Measurement duration: {:.3} s\n",
        duration_ns as f64 / 1e9
    );
    for s in pmds {
        let core = s
            .cpu
            .map_or_else(|| "unpinned".to_string(), |c| c.to_string());
        let iterations = s.busy_iterations + s.idle_iterations;
        let used = s.busy_cycles + s.idle_cycles;
        let total = used + s.sleep_cycles;
        let secs = (s.busy_ns + s.idle_ns) as f64 / 1e9;
        let kpps = if secs > 0.0 {
            s.rx_packets as f64 / secs / 1e3
        } else {
            0.0
        };
        let rx = s.rx_packets;
        let line = |out: &mut String, label: &str, v: u64, note: String| {
            let _ = writeln!(out, "  {:<22}{v:>14}  ({note})", format!("{label}:"));
        };
        let _ = writeln!(out, "pmd thread numa_id 0 core_id {core}:\n");
        line(
            &mut out,
            "Iterations",
            iterations,
            format!(
                "{:.2} us/it",
                ratio((s.busy_ns + s.idle_ns) as f64 / 1e3, iterations)
            ),
        );
        line(
            &mut out,
            "- Used TSC cycles",
            used,
            format!("{:5.1} % of total cycles", pct(used, total)),
        );
        line(
            &mut out,
            "- idle iterations",
            s.idle_iterations,
            format!("{:5.1} % of used cycles", pct(s.idle_cycles, used)),
        );
        line(
            &mut out,
            "- busy iterations",
            s.busy_iterations,
            format!("{:5.1} % of used cycles", pct(s.busy_cycles, used)),
        );
        line(
            &mut out,
            "- sleep cycles",
            s.sleep_cycles,
            format!("{:5.1} % of total cycles", pct(s.sleep_cycles, total)),
        );
        line(
            &mut out,
            "Rx packets",
            rx,
            format!(
                "{kpps:.0} Kpps, {:.0} cycles/pkt",
                ratio(s.busy_cycles as f64, rx)
            ),
        );
        line(
            &mut out,
            "Datapath passes",
            rx,
            format!("{:.2} passes/pkt", ratio(rx as f64, rx)),
        );
        for (label, v) in [
            ("- EMC hits", s.emc_hits),
            ("- Megaflow hits", s.megaflow_hits),
            ("- Upcalls", s.upcalls),
            ("- Lost upcalls", s.lost_upcalls),
        ] {
            line(&mut out, label, v, format!("{:5.1} %", pct(v, rx)));
        }
        let _ = writeln!(out, "  Cycles per stage:");
        for stage in Stage::ALL {
            let c = s.stage(stage);
            line(
                &mut out,
                &format!("- {}", stage.name()),
                c,
                format!(
                    "{:5.1} % of busy cycles, {:.0} cycles/pkt",
                    pct(c, s.busy_cycles),
                    ratio(c as f64, rx)
                ),
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_popped_packets_megaflow_shows_its_tunnel_metadata_before_in_port() {
        let k = FlowKey {
            in_port: 5,
            tun_id: 0x5a5,
            tun_src: 0x0a63_0002,
            tun_dst: 0x0a63_0001,
            ..FlowKey::default()
        };
        let m = FlowKey {
            in_port: u32::MAX,
            tun_id: u64::MAX,
            tun_src: u32::MAX,
            tun_dst: u32::MAX,
            ..FlowKey::default()
        };
        let s = format_match(&Match::new(k, m));
        assert!(
            s.starts_with(
                "recirc_id(0),tunnel(tun_id=0x5a5,src=10.99.0.2,dst=10.99.0.1),in_port(5)"
            ),
            "{s}"
        );
    }

    #[test]
    fn megaflow_shows_only_matched_fields_with_partial_masks() {
        let mut k = FlowKey::default();
        let mut m = FlowKey::default();
        k.in_port = 2;
        m.in_port = u32::MAX;
        k.dl_dst = [0, 1, 2, 3, 4, 5];
        m.dl_dst = [0xff; 6];
        k.dl_type = ethertype::IPV4;
        m.dl_type = 0xffff;
        k.nw_dst = 0x0a00_0000;
        m.nw_dst = 0xffff_ff00;
        k.nw_proto = 1;
        m.nw_proto = 0xff;
        m.nw_frag = 0xff;
        let s = format_match(&Match::new(k, m));
        assert_eq!(
            s,
            "recirc_id(0),in_port(2),eth(dst=00:01:02:03:04:05),eth_type(0x0800),ipv4(dst=10.0.0.0/255.255.255.0,proto=1,frag=no)"
        );
    }

    #[test]
    fn a_second_pass_megaflow_shows_its_recirc_id_and_conntrack_fields() {
        let k = FlowKey {
            recirc_id: 1,
            in_port: 2,
            ct_state: 0x21,
            ct_zone: 5,
            ct_mark: 3,
            ..FlowKey::default()
        };
        let m = FlowKey {
            recirc_id: u32::MAX,
            in_port: u32::MAX,
            ct_state: 0x23,
            ct_zone: 0xffff,
            ct_mark: 0xff,
            ..FlowKey::default()
        };
        assert_eq!(
            format_match(&Match::new(k, m)),
            "recirc_id(0x1),in_port(2),ct_state(+new-est+trk),ct_zone(0x5),ct_mark(0x3/0xff)"
        );
    }

    #[test]
    fn a_flow_line_carries_counters_and_age() {
        let m = Match::catch_all();
        let line = format_flow(
            &m,
            &[DpAction::Output(1)],
            3,
            294,
            Some(0.52),
            &|_| unreachable!(),
        );
        assert_eq!(
            line,
            "recirc_id(0),in_port(0), packets:3, bytes:294, used:0.520s, actions:1"
        );
    }

    fn perf_sample() -> PmdStats {
        let mut s = PmdStats {
            pmd: 0,
            cpu: Some(1),
            rx_packets: 1000,
            emc_hits: 900,
            megaflow_hits: 90,
            upcalls: 10,
            lost_upcalls: 0,
            recirculations: 0,
            recirc_drops: 0,
            busy_ns: 1_000_000,
            idle_ns: 1_000_000,
            busy_iterations: 40,
            idle_iterations: 60,
            busy_cycles: 3_000_000,
            idle_cycles: 1_000_000,
            sleep_cycles: 2_000_000,
            ..PmdStats::default()
        };
        for (i, st) in Stage::ALL.iter().enumerate() {
            s.stage_cycles[*st as usize] = 100_000 * (i as u64 + 1);
        }
        s
    }

    /// The `label: value (note)` lines of one PMD's block.
    fn parse_perf(text: &str) -> std::collections::HashMap<String, (u64, String)> {
        let mut m = std::collections::HashMap::new();
        for l in text.lines() {
            let Some((label, rest)) = l.trim().split_once(':') else {
                continue;
            };
            let rest = rest.trim();
            let Some((v, note)) = rest.split_once("  (") else {
                continue;
            };
            let v: u64 = v.trim().parse().expect("a counter");
            let note = note.strip_suffix(')').expect("closing parenthesis");
            m.insert(
                label.trim_start_matches("- ").to_string(),
                (v, note.to_string()),
            );
        }
        m
    }

    #[test]
    fn pmd_perf_show_parses_into_every_counter_and_stage() {
        let s = perf_sample();
        let text = format_pmd_perf(&[s]);
        assert!(text.starts_with("Measurement duration: 0.002 s"));
        assert!(text.contains("pmd thread numa_id 0 core_id 1:"));
        let m = parse_perf(&text);
        assert_eq!(m["Iterations"], (100, "20.00 us/it".into()));
        assert_eq!(
            m["Used TSC cycles"],
            (4_000_000, " 66.7 % of total cycles".into())
        );
        assert_eq!(m["busy iterations"], (40, " 75.0 % of used cycles".into()));
        assert_eq!(m["Rx packets"], (1000, "500 Kpps, 3000 cycles/pkt".into()));
        assert_eq!(m["EMC hits"], (900, " 90.0 %".into()));
        assert_eq!(m["Upcalls"].0, 10);
        for (i, st) in Stage::ALL.iter().enumerate() {
            let (v, note) = &m[st.name()];
            assert_eq!(*v, 100_000 * (i as u64 + 1), "{}", st.name());
            assert!(
                note.ends_with(&format!("{} cycles/pkt", 100 * (i + 1))),
                "{note}"
            );
        }
    }

    #[test]
    fn pmd_perf_show_of_an_idle_pmd_has_no_nan() {
        let text = format_pmd_perf(&[PmdStats::default()]);
        assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
        assert!(text.contains("core_id unpinned"));
    }
}
