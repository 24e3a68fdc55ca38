//! The connection-tracking appctl commands (`dpctl/dump-conntrack`,
//! `dpctl/flush-conntrack`, `dpctl/ct-stats-show`, `dpctl/ct-get-nconns`,
//! `dpctl/ct-set-maxconns`, `dpctl/ct-get-maxconns`) in ovs-appctl's
//! vocabulary and output format.

use std::fmt::Write;
use std::sync::Arc;

use conntrack::{CtMatch, CtTupleMatch};
use serde_json::json;

use crate::daemon::Ctx;
use crate::unixctl::{Format, Registry, Reply};

/// The arguments the conntrack commands share: an optional datapath name
/// (ignored: there is one datapath), `zone=N`, and display flags.
#[derive(Default, Debug, PartialEq, Eq)]
struct CtArgs {
    zone: Option<u16>,
    verbose: bool,
}

fn parse_args(args: &[String]) -> Result<CtArgs, String> {
    let mut out = CtArgs::default();
    for (i, a) in args.iter().enumerate() {
        if let Some(z) = a.strip_prefix("zone=") {
            out.zone = Some(
                z.parse()
                    .map_err(|_| format!("{z}: invalid zone (0 to 65535)"))?,
            );
        } else if matches!(a.as_str(), "-m" | "--more" | "-s" | "--statistics") {
        } else if a == "verbose" {
            out.verbose = true;
        } else if i == 0 && !a.contains('=') {
            // A datapath name such as `netdev@ovs-netdev`.
        } else {
            return Err(format!("{a}: invalid argument"));
        }
    }
    Ok(out)
}

/// `dpctl/flush-conntrack`'s arguments as OVS 3.1 reads them: an optional
/// datapath name, `zone=N`, then the original tuple (may be empty) and the
/// reply tuple. Errors carry OVS's texts.
fn parse_flush_args(args: &[String]) -> Result<(Option<u16>, CtMatch), String> {
    let mut rest: &[String] = args;
    if let Some(first) = rest.first()
        && first.contains('@')
        && !first.contains('=')
    {
        // A datapath name such as `netdev@ovs-netdev`.
        rest = &rest[1..];
    }
    let mut zone = None;
    if let Some(z) = rest.first().and_then(|a| a.strip_prefix("zone=")) {
        zone = Some(
            z.parse::<u16>()
                .map_err(|_| "failed to parse zone (Invalid argument)".to_string())?,
        );
        rest = &rest[1..];
    }
    if rest.len() > 2 {
        return Err("invalid arguments (Invalid argument)".into());
    }
    let orig = rest.first().map(String::as_str).unwrap_or("");
    let m = CtMatch::parse(orig, rest.get(1).map(String::as_str))
        .map_err(|e| format!("{e} (Invalid argument)"))?;
    Ok((zone, m))
}

/// The tracker's match for an NXT_CT_FLUSH request.
pub fn ct_match_of(f: &openflow::msg::ct_flush::CtFlush) -> CtMatch {
    use std::net::{IpAddr, Ipv6Addr};
    let mut ipv6 = None;
    let mut addr = |b: [u8; 16]| -> Option<IpAddr> {
        if b == [0; 16] {
            return None;
        }
        let a = Ipv6Addr::from(b);
        let ip = match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(a),
        };
        ipv6 = Some(ip.is_ipv6());
        Some(ip)
    };
    let side = |t: &openflow::msg::ct_flush::CtFlushTuple,
                addr: &mut dyn FnMut([u8; 16]) -> Option<IpAddr>| CtTupleMatch {
        src: addr(t.src),
        dst: addr(t.dst),
        sport: t.src_port,
        dport: t.dst_port,
        icmp_id: t.icmp_id,
        icmp_type: t.icmp_type,
        icmp_code: t.icmp_code,
    };
    let orig = side(&f.orig, &mut addr);
    let reply = side(&f.reply, &mut addr);
    CtMatch {
        proto: f.ip_proto,
        ipv6,
        orig,
        reply,
    }
}

const CT_FLAGS: [&str; 8] = ["new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat"];

/// Parses `ofproto/trace --ct-next` flags: names such as `trk,est` or
/// `trk|new` (a leading `+` on each is accepted).
pub fn parse_ct_flags(spec: &str) -> Result<u32, String> {
    let mut v = 0;
    for f in spec
        .split([',', '|'])
        .map(|f| f.trim().trim_start_matches('+'))
    {
        if f.is_empty() {
            continue;
        }
        let bit = CT_FLAGS
            .iter()
            .position(|n| *n == f)
            .ok_or_else(|| format!("{f}: unknown ct_state flag"))?;
        v |= 1 << bit;
    }
    Ok(v)
}

/// `trk|new` style, the bits in the order OVS prints them.
pub fn format_ct_flags(state: u32) -> String {
    const ORDER: [u32; 8] = [0x20, 0x01, 0x02, 0x04, 0x08, 0x10, 0x40, 0x80];
    ORDER
        .iter()
        .filter(|b| state & **b != 0)
        .map(|b| CT_FLAGS[b.trailing_zeros() as usize])
        .collect::<Vec<_>>()
        .join("|")
}

fn reply(fmt: Format, text: String, json: serde_json::Value) -> Result<Reply, String> {
    Ok(match fmt {
        Format::Text => Reply::Text(text),
        Format::Json => Reply::Json(json),
    })
}

/// Registers the commands.
pub fn register(r: &Registry, ctx: Arc<Ctx>) {
    let c = ctx.clone();
    r.register(
        "dpctl/dump-conntrack",
        "[dp] [zone=N]",
        0,
        4,
        Arc::new(move |args, fmt| {
            let a = parse_args(args)?;
            let mut lines: Vec<String> = c
                .switch
                .slow
                .ct
                .tracker()
                .dump(a.zone)
                .iter()
                .map(|e| e.to_string())
                .collect();
            lines.sort();
            let mut text = String::new();
            for l in &lines {
                let _ = writeln!(text, "{l}");
            }
            reply(fmt, text, json!({ "connections": lines }))
        }),
    );

    let c = ctx.clone();
    r.register(
        "dpctl/flush-conntrack",
        "[dp] [zone=N] [ct-orig-tuple [ct-reply-tuple]]",
        0,
        4,
        Arc::new(move |args, fmt| {
            let (zone, m) = parse_flush_args(args)?;
            let n = c
                .switch
                .slow
                .ct
                .tracker()
                .flush_match(zone, &m)
                .map_err(|e| e.to_string())?;
            reply(fmt, String::new(), json!({ "flushed": n }))
        }),
    );

    let c = ctx.clone();
    r.register(
        "dpctl/ct-stats-show",
        "[dp] [zone=N] [verbose]",
        0,
        4,
        Arc::new(move |args, fmt| {
            let a = parse_args(args)?;
            let s = c.switch.slow.ct.tracker().stats(a.zone);
            reply(
                fmt,
                s.to_string(),
                json!({"total": s.total, "tcp": s.tcp, "udp": s.udp, "icmp": s.icmp,
                    "icmpv6": s.icmpv6, "sctp": s.sctp, "other": s.other}),
            )
        }),
    );

    let c = ctx.clone();
    r.register(
        "dpctl/ct-get-nconns",
        "[dp]",
        0,
        1,
        Arc::new(move |args, fmt| {
            parse_args(args)?;
            let n = c.switch.slow.ct.tracker().nconns();
            reply(fmt, format!("{n}\n"), json!(n))
        }),
    );

    let c = ctx.clone();
    r.register(
        "dpctl/ct-get-maxconns",
        "[dp]",
        0,
        1,
        Arc::new(move |args, fmt| {
            parse_args(args)?;
            let n = c.switch.slow.ct.tracker().max_conns();
            reply(fmt, format!("{n}\n"), json!(n))
        }),
    );

    let c = ctx;
    r.register(
        "dpctl/ct-set-maxconns",
        "[dp] maxconns",
        1,
        2,
        Arc::new(move |args, fmt| {
            let v = args.last().map(String::as_str).unwrap_or("");
            let n: u32 = v
                .parse()
                .map_err(|_| format!("{v}: maxconns missing or malformed"))?;
            c.switch.slow.ct.tracker().set_max_conns(n);
            reply(
                fmt,
                "setting maxconns successful\n".into(),
                json!({ "maxconns": n }),
            )
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn ct_next_flags_parse_and_print_in_ovs_order() {
        assert_eq!(parse_ct_flags("trk,est").unwrap(), 0x22);
        assert_eq!(parse_ct_flags("+trk|+new").unwrap(), 0x21);
        assert!(parse_ct_flags("trk,bogus").is_err());
        assert_eq!(format_ct_flags(0x21), "trk|new");
        assert_eq!(format_ct_flags(0x2a), "trk|est|rpl");
    }

    #[test]
    fn flush_arguments_take_a_zone_and_original_and_reply_tuples_as_ovs_does() {
        let (z, m) = parse_flush_args(&s(&[
            "zone=5",
            "ct_nw_src=10.0.0.1,ct_nw_proto=6",
            "ct_tp_src=80",
        ]))
        .unwrap();
        assert_eq!((z, m.proto, m.reply.sport), (Some(5), 6, 80));
        assert!(m.orig.src.is_some());
        let (z, m) = parse_flush_args(&s(&["netdev@ovs-netdev"])).unwrap();
        assert!(z.is_none() && m.is_zero());
        let (_, m) = parse_flush_args(&s(&["", "ct_nw_dst=10.0.0.1"])).unwrap();
        assert!(m.orig.dst.is_none() && m.reply.dst.is_some());
        assert_eq!(
            parse_flush_args(&s(&["zone=x"])).unwrap_err(),
            "failed to parse zone (Invalid argument)"
        );
        assert_eq!(
            parse_flush_args(&s(&["ct_tp_src=5"])).unwrap_err(),
            "port is set without protocol (Invalid argument)"
        );
        assert!(parse_flush_args(&s(&["a=1", "b=2", "c=3"])).is_err());
    }

    #[test]
    fn an_nxt_ct_flush_maps_to_the_same_match_as_the_dpctl_text() {
        use openflow::msg::ct_flush::{CtFlush, CtFlushTuple};
        let mut src = [0u8; 16];
        src[10..].copy_from_slice(&[0xff, 0xff, 10, 0, 0, 1]);
        let f = CtFlush {
            ip_proto: 6,
            orig: CtFlushTuple {
                src,
                dst_port: 80,
                ..CtFlushTuple::default()
            },
            reply: CtFlushTuple::default(),
            zone: Some(3),
        };
        let (_, want) =
            parse_flush_args(&s(&["ct_nw_src=10.0.0.1,ct_nw_proto=6,ct_tp_dst=80"])).unwrap();
        assert_eq!(ct_match_of(&f), want);
        let v6 = CtFlush {
            orig: CtFlushTuple {
                dst: "fc00::2".parse::<std::net::Ipv6Addr>().unwrap().octets(),
                ..CtFlushTuple::default()
            },
            ..CtFlush::default()
        };
        let (_, want) = parse_flush_args(&s(&["ct_ipv6_dst=fc00::2"])).unwrap();
        assert_eq!(ct_match_of(&v6), want);
    }

    #[test]
    fn arguments_take_a_datapath_name_a_zone_and_flags() {
        assert_eq!(
            parse_args(&s(&["netdev@ovs-netdev", "zone=5", "-m"])).unwrap(),
            CtArgs {
                zone: Some(5),
                verbose: false
            }
        );
        assert!(parse_args(&s(&["verbose"])).unwrap().verbose);
        assert!(parse_args(&s(&["zone=70000"])).is_err());
        assert!(parse_args(&s(&["zone=1", "bogus"])).is_err());
    }
}
