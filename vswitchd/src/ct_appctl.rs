//! The connection-tracking appctl commands (`dpctl/dump-conntrack`,
//! `dpctl/flush-conntrack`, `dpctl/ct-stats-show`, `dpctl/ct-get-nconns`,
//! `dpctl/ct-set-maxconns`, `dpctl/ct-get-maxconns`) in ovs-appctl's
//! vocabulary and output format.

use std::fmt::Write;
use std::sync::Arc;

use conntrack::FlushFilter;
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
        "[dp] [zone=N]",
        0,
        3,
        Arc::new(move |args, fmt| {
            let a = parse_args(args)?;
            let n = c.switch.slow.ct.tracker().flush(&FlushFilter {
                zone: a.zone,
                tuple: None,
            });
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
