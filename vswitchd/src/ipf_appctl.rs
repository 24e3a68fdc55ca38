//! The fragment reassembly appctl commands (`dpctl/ipf-get-status`,
//! `dpctl/ipf-set-enabled`, `dpctl/ipf-set-disabled`,
//! `dpctl/ipf-set-min-frag`, `dpctl/ipf-set-max-nfrags`) in ovs-appctl's
//! vocabulary and output format.

use std::sync::Arc;

use serde_json::json;

use crate::daemon::Ctx;
use crate::unixctl::{Format, Registry, Reply};

fn reply(fmt: Format, text: String, json: serde_json::Value) -> Result<Reply, String> {
    Ok(match fmt {
        Format::Text => Reply::Text(text),
        Format::Json => Reply::Json(json),
    })
}

/// `v4` / `v6` (OVS reads the first two characters).
fn family(arg: Option<&String>) -> Option<bool> {
    match arg.map(|a| a.get(..2).unwrap_or(a)) {
        Some("v4") => Some(false),
        Some("v6") => Some(true),
        _ => None,
    }
}

/// `dpctl/ipf-get-status` text: the status, and with `-m` the lists.
pub fn status_text(ipf: &conntrack::Ipf, more: bool) -> String {
    let mut t = ipf.status().to_string();
    if more {
        t.push_str("\n        Fragment Lists:\n\n");
        for l in ipf.dump() {
            t.push_str(&l);
            t.push('\n');
        }
    }
    t
}

/// Registers the commands.
pub fn register(r: &Registry, ctx: Arc<Ctx>) {
    let c = ctx.clone();
    r.register(
        "dpctl/ipf-get-status",
        "[dp]",
        0,
        2,
        Arc::new(move |args, fmt| {
            let more = args.iter().any(|a| a == "-m" || a == "--more");
            let ipf = c.switch.slow.ct.ipf();
            let s = ipf.status();
            let fam = |f: &conntrack::ipf::IpfFamilyStatus| {
                json!({"enabled": f.enabled, "min_frag_size": f.min_frag_size,
                    "accepted": f.accepted, "completed": f.completed, "expired": f.expired,
                    "too_small": f.too_small, "overlapped": f.overlapped, "purged": f.purged})
            };
            reply(
                fmt,
                status_text(ipf, more),
                json!({"max_frags": s.max_frags, "nfrag": s.nfrag, "v4": fam(&s.v4),
                    "v6": fam(&s.v6), "lists": ipf.dump()}),
            )
        }),
    );

    for (name, on) in [
        ("dpctl/ipf-set-enabled", true),
        ("dpctl/ipf-set-disabled", false),
    ] {
        let c = ctx.clone();
        r.register(
            name,
            "[dp] v4|v6",
            1,
            2,
            Arc::new(move |args, fmt| {
                let v6 = family(args.last()).ok_or(
                    "parameter missing: 'v4' for IPv4 or 'v6' for IPv6 (Invalid argument)",
                )?;
                c.switch.slow.ct.ipf().set_enabled(v6, on);
                let what = if on { "enabling" } else { "disabling" };
                reply(
                    fmt,
                    format!("{what} fragmentation reassembly successful\n"),
                    json!({ "v6": v6, "enabled": on }),
                )
            }),
        );
    }

    let c = ctx.clone();
    r.register(
        "dpctl/ipf-set-min-frag",
        "[dp] v4|v6 minfragment",
        2,
        3,
        Arc::new(move |args, fmt| {
            let v6 = family(args.get(args.len() - 2))
                .ok_or("parameter missing: v4 for IPv4 or v6 for IPv6 (Invalid argument)")?;
            let n: u32 = args[args.len() - 1].parse().map_err(|_| {
                "parameter missing for minimum fragment size (Invalid argument)".to_string()
            })?;
            c.switch
                .slow
                .ct
                .ipf()
                .set_min_frag(v6, n)
                .map_err(|e| format!("{e} (Operation not permitted)"))?;
            reply(
                fmt,
                "setting minimum fragment size successful\n".into(),
                json!({ "v6": v6, "min_frag": n }),
            )
        }),
    );

    let c = ctx;
    r.register(
        "dpctl/ipf-set-max-nfrags",
        "[dp] maxfrags",
        1,
        2,
        Arc::new(move |args, fmt| {
            let n: u32 = args[args.len() - 1].parse().map_err(|_| {
                "parameter missing for maximum fragments (Invalid argument)".to_string()
            })?;
            c.switch
                .slow
                .ct
                .ipf()
                .set_max_frags(n)
                .map_err(|e| format!("{e} (Operation not permitted)"))?;
            reply(
                fmt,
                "setting maximum fragments successful\n".into(),
                json!({ "max_frags": n }),
            )
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_is_ovs_s_with_the_lists_under_more() {
        let ipf = conntrack::Ipf::new();
        ipf.set_max_frags(500).unwrap();
        let t = status_text(&ipf, false);
        let want_head = "        Fragmentation Module Status\n        ---------------------------\n        v4 enabled: 1\n        v6 enabled: 1\n        max num frags (v4/v6): 500\n        num frag: 0\n        min v4 frag size: 1200\n";
        assert!(t.starts_with(want_head), "{t}");
        assert!(t.ends_with("        v6 frags purged: 0\n"), "{t}");
        assert_eq!(t.lines().count(), 20);
        assert!(status_text(&ipf, true).ends_with("\n        Fragment Lists:\n\n"));
    }

    #[test]
    fn family_reads_v4_and_v6_only() {
        let s = |x: &str| x.to_string();
        assert_eq!(family(Some(&s("v4"))), Some(false));
        assert_eq!(family(Some(&s("v6"))), Some(true));
        assert_eq!(family(Some(&s("v5"))), None);
        assert_eq!(family(None), None);
    }
}
