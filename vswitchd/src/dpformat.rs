//! Datapath flows in the text form `ovs-appctl dpctl/dump-flows` prints:
//! `in_port(2),eth(src=…,dst=…),eth_type(0x0800),ipv4(src=…,proto=1,frag=no), packets:3, bytes:294, used:0.520s, actions:3`.
//! Only the fields a megaflow matches on are shown; partially masked ones
//! as `value/mask`. Actions use [`flows::xlate::format_dp_actions`], the
//! same text `ofproto/trace` prints.

use std::net::{Ipv4Addr, Ipv6Addr};

use flows::key::{FRAG_ANY, FRAG_LATER, ethertype, ipproto};
use flows::{DpAction, FlowKey, Match};

/// `aa:bb:cc:dd:ee:ff`.
pub(crate) fn mac(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
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
    let mut parts = vec![format!("in_port({})", k.in_port)];
    let mut eth = Vec::new();
    field(&mut eth, "src", k.dl_src, m.dl_src, [0; 6], [0xff; 6], mac);
    field(&mut eth, "dst", k.dl_dst, m.dl_dst, [0; 6], [0xff; 6], mac);
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
            field(&mut v, "sha", k.arp_sha, m.arp_sha, [0; 6], [0xff; 6], mac);
            field(&mut v, "tha", k.arp_tha, m.arp_tha, [0; 6], [0xff; 6], mac);
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
) -> String {
    let used = match used_secs {
        Some(s) => format!("{s:.3}s"),
        None => "never".to_string(),
    };
    format!(
        "{}, packets:{packets}, bytes:{bytes}, used:{used}, actions:{}",
        format_match(m),
        flows::xlate::format_dp_actions(actions)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "in_port(2),eth(dst=00:01:02:03:04:05),eth_type(0x0800),ipv4(dst=10.0.0.0/255.255.255.0,proto=1,frag=no)"
        );
    }

    #[test]
    fn a_flow_line_carries_counters_and_age() {
        let m = Match::catch_all();
        let line = format_flow(&m, &[DpAction::Output(1)], 3, 294, Some(0.52));
        assert_eq!(
            line,
            "in_port(0), packets:3, bytes:294, used:0.520s, actions:1"
        );
    }
}
