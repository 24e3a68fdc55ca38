//! Conntrack zone limits: `dpctl/ct-set-limits`, `dpctl/ct-get-limits`
//! and `dpctl/ct-del-limits`, with ovs-appctl's arguments, output and
//! error texts (OVS 3.1's `dpctl`).
//!
//! A zone's own limit, else the default one, caps the connections the
//! zone may hold; 0 is unlimited (ovs-dpctl(8)). A commit beyond it is
//! refused: the packet goes on as `+trk+new`, uncommitted.

use std::fmt::Write;
use std::sync::Arc;

use conntrack::ZoneLimit;
use serde_json::json;

use crate::daemon::Ctx;
use crate::unixctl::{Format, Registry, Reply};

/// A parsed `ct-set-limits` command line.
#[derive(Debug, Default, PartialEq, Eq)]
struct SetLimits {
    default: Option<u32>,
    zones: Vec<(u16, u32)>,
}

/// Skips a leading datapath name, as OVS does when the first argument
/// names an existing datapath (ours is `netdev@ovs-netdev`).
fn skip_dp(args: &[String]) -> &[String] {
    match args.first().map(String::as_str) {
        Some("ovs-netdev" | "netdev@ovs-netdev") => &args[1..],
        _ => args,
    }
}

fn einval(msg: String) -> String {
    format!("{msg} (Invalid argument)")
}

/// `zone=N,limit=M` (in any order, each once at least).
fn parse_zone_limit(s: &str) -> Result<(u16, u32), String> {
    let (mut zone, mut limit) = (None, None);
    for kv in s.split(',').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if v.is_empty() {
            return Err(format!("field {k} missing value"));
        }
        match k {
            "zone" => {
                zone = Some(
                    v.parse()
                        .map_err(|_| format!("failed to parse field {k}"))?,
                )
            }
            "limit" => {
                limit = Some(
                    v.parse()
                        .map_err(|_| format!("failed to parse field {k}"))?,
                )
            }
            _ => return Err(format!("invalid zone limit field: {k}")),
        }
    }
    match (zone, limit) {
        (Some(z), Some(l)) => Ok((z, l)),
        _ => Err("failed to parse zone limit".into()),
    }
}

fn parse_set(args: &[String]) -> Result<SetLimits, String> {
    let mut args = skip_dp(args);
    let mut out = SetLimits::default();
    if let Some(d) = args.first().and_then(|a| a.strip_prefix("default=")) {
        out.default = Some(d.parse().map_err(|_| "invalid default limit".to_owned())?);
        args = &args[1..];
    }
    for a in args {
        out.zones.push(parse_zone_limit(a)?);
    }
    Ok(out)
}

/// `zone=N[,N]...`.
fn parse_zones(arg: &str) -> Result<Vec<u16>, String> {
    let list = arg
        .strip_prefix("zone=")
        .ok_or_else(|| format!("invalid argument {arg}"))?;
    list.split(',')
        .filter(|z| !z.is_empty())
        .map(|z| z.parse().map_err(|_| "invalid zone".to_owned()))
        .collect()
}

/// `ct-get-limits` text: the default limit, then one line per zone.
fn format_limits(default: u32, zones: &[ZoneLimit]) -> String {
    let mut s = format!("default limit={default}\n");
    for z in zones {
        let _ = writeln!(s, "zone={},limit={},count={}", z.zone, z.limit, z.count);
    }
    s
}

/// Registers the commands.
pub fn register(r: &Registry, ctx: Arc<Ctx>) {
    let c = ctx.clone();
    r.register(
        "dpctl/ct-set-limits",
        "[dp] [default=default_limit] [zone=N,limit=M]...",
        1,
        usize::MAX,
        Arc::new(move |args, fmt| {
            let set = parse_set(args).map_err(einval)?;
            let ct = c.switch.slow.ct.tracker();
            if let Some(d) = set.default {
                ct.set_default_zone_limit(d);
            }
            for &(z, l) in &set.zones {
                ct.set_zone_limit(z, Some(l));
            }
            Ok(match fmt {
                Format::Text => Reply::Text(String::new()),
                Format::Json => Reply::Json(json!({})),
            })
        }),
    );

    let c = ctx.clone();
    r.register(
        "dpctl/ct-del-limits",
        "[dp] zone=N[,N]...",
        1,
        2,
        Arc::new(move |args, fmt| {
            let rest = skip_dp(args);
            let [arg] = rest else {
                return Err(einval("invalid argument".into()));
            };
            let zones = parse_zones(arg).map_err(einval)?;
            let ct = c.switch.slow.ct.tracker();
            for z in zones {
                ct.del_zone_limit(z);
            }
            Ok(match fmt {
                Format::Text => Reply::Text(String::new()),
                Format::Json => Reply::Json(json!({})),
            })
        }),
    );

    let c = ctx;
    r.register(
        "dpctl/ct-get-limits",
        "[dp] [zone=N[,N]...]",
        0,
        2,
        Arc::new(move |args, fmt| {
            let rest = skip_dp(args);
            let ct = c.switch.slow.ct.tracker();
            let zones = match rest {
                [] => ct.zone_limits(),
                [arg] => parse_zones(arg)
                    .map_err(einval)?
                    .into_iter()
                    .map(|z| ct.zone_limit_info(z))
                    .collect(),
                _ => return Err(einval(format!("invalid argument {}", rest[1]))),
            };
            let default = ct.default_zone_limit();
            Ok(match fmt {
                Format::Text => Reply::Text(format_limits(default, &zones)),
                Format::Json => Reply::Json(json!({
                    "default": default,
                    "zones": zones.iter().map(|z| json!({
                        "zone": z.zone, "limit": z.limit, "count": z.count
                    })).collect::<Vec<_>>(),
                })),
            })
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
    fn set_limits_parses_a_datapath_a_default_and_zone_tuples() {
        assert_eq!(
            parse_set(&s(&[
                "netdev@ovs-netdev",
                "default=10",
                "zone=3,limit=5",
                "limit=1,zone=4"
            ]))
            .unwrap(),
            SetLimits {
                default: Some(10),
                zones: vec![(3, 5), (4, 1)]
            }
        );
        assert_eq!(parse_set(&s(&["zone=4,limit=0"])).unwrap().default, None);
    }

    #[test]
    fn set_limits_errors_are_ovs_texts() {
        let err = |v: &[&str]| parse_set(&s(v)).unwrap_err();
        assert_eq!(err(&["zone=70000,limit=3"]), "failed to parse field zone");
        assert_eq!(err(&["zone=3"]), "failed to parse zone limit");
        assert_eq!(err(&["bogus"]), "field bogus missing value");
        assert_eq!(err(&["default=x"]), "invalid default limit");
        assert_eq!(err(&["zone=3,limit=x"]), "failed to parse field limit");
        assert_eq!(
            err(&["zone=3,limit=4,foo=5"]),
            "invalid zone limit field: foo"
        );
        // `default=` only comes first.
        assert_eq!(
            err(&["zone=3,limit=4", "default=5"]),
            "invalid zone limit field: default"
        );
    }

    #[test]
    fn zone_lists_and_the_limits_text_are_as_ovs_prints_them() {
        assert_eq!(parse_zones("zone=3,9").unwrap(), [3, 9]);
        assert_eq!(parse_zones("zone=x").unwrap_err(), "invalid zone");
        assert_eq!(parse_zones("zone=3,limit=4").unwrap_err(), "invalid zone");
        assert_eq!(parse_zones("bogus").unwrap_err(), "invalid argument bogus");
        let z = [
            ZoneLimit {
                zone: 3,
                limit: 5,
                count: 2,
            },
            ZoneLimit {
                zone: 7,
                limit: 10,
                count: 0,
            },
        ];
        assert_eq!(
            format_limits(10, &z),
            "default limit=10\nzone=3,limit=5,count=2\nzone=7,limit=10,count=0\n"
        );
        assert_eq!(format_limits(0, &[]), "default limit=0\n");
    }
}
