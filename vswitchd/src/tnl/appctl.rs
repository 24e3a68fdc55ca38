//! `ovs/route/*`, `tnl/neigh/*` (and their `tnl/arp/*` aliases) and
//! `tnl/ports/show`, with OVS's arguments and output.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::json;
use wire::MacAddr;

use super::route::parse_prefix;
use crate::daemon::Ctx;
use crate::unixctl::{Format, Registry, Reply};

fn text(s: impl Into<String>) -> Result<Reply, String> {
    Ok(Reply::Text(s.into()))
}

/// Splits a trailing `pkt_mark=N` off `args`.
fn mark_of(args: &[String]) -> Result<(Vec<&str>, u32), String> {
    let mut rest = Vec::new();
    let mut mark = 0;
    for a in args {
        match a.strip_prefix("pkt_mark=") {
            Some(m) => mark = m.parse().map_err(|_| "Invalid pkt_mark".to_string())?,
            None => rest.push(a.as_str()),
        }
    }
    Ok((rest, mark))
}

pub fn register(r: &Registry, ctx: Arc<Ctx>) {
    let c = ctx.clone();
    r.register(
        "tnl/drops/show",
        "",
        0,
        0,
        Arc::new(move |_, _| {
            let n = c.switch.dp.tnl_counters();
            let d = n.decap.snapshot();
            let push = n.push_errors.load(std::sync::atomic::Ordering::Relaxed);
            let arp = c
                .switch
                .slow
                .tnl
                .arp_requests
                .load(std::sync::atomic::Ordering::Relaxed);
            text(format!(
                "decap drops: truncated={} bad_option_length={} unknown_critical_option={} \
                 wrong_vni={} bad_checksum={} malformed={}\n\
                 push drops: {push}\n\
                 next hop ARP requests and neighbour solicitations: {arp}\n",
                d.truncated,
                d.bad_option_length,
                d.unknown_critical_option,
                d.wrong_vni,
                d.bad_checksum,
                d.malformed
            ))
        }),
    );

    let c = ctx.clone();
    r.register(
        "ovs/route/add",
        "ip_addr/prefix_len out_br_name [gw] [pkt_mark=mark]",
        2,
        4,
        Arc::new(move |args, _| {
            let (a, mark) = mark_of(args)?;
            let (prefix, plen) = a
                .first()
                .and_then(|p| parse_prefix(p))
                .ok_or("Invalid parameters")?;
            let dev = a.get(1).ok_or("Invalid parameters")?;
            let gw = match a.get(2) {
                Some(g) => Some(
                    g.parse::<IpAddr>()
                        .map_err(|_| "Invalid pkt_mark or gateway".to_string())?,
                ),
                None => None,
            };
            let tnl = &c.switch.slow.tnl;
            let addrs = tnl.addrs();
            tnl.routes_mut()
                .add_user(prefix, plen, dev, gw, mark, &addrs)
                .map_err(|e| e.to_string())?;
            c.switch.revalidate_now();
            text("OK\n")
        }),
    );

    let c = ctx.clone();
    r.register(
        "ovs/route/del",
        "ip_addr/prefix_len [pkt_mark=mark]",
        1,
        2,
        Arc::new(move |args, _| {
            let (a, mark) = mark_of(args)?;
            let (prefix, plen) = a
                .first()
                .and_then(|p| parse_prefix(p))
                .ok_or("Invalid parameters")?;
            c.switch
                .slow
                .tnl
                .routes_mut()
                .del_user(prefix, plen, mark)
                .map_err(|e| e.to_string())?;
            c.switch.revalidate_now();
            text("OK\n")
        }),
    );

    let c = ctx.clone();
    r.register(
        "ovs/route/show",
        "",
        0,
        0,
        Arc::new(move |_, fmt| {
            let t = c.switch.slow.tnl.routes();
            match fmt {
                Format::Text => text(t.show()),
                Format::Json => Ok(Reply::Json(json!(
                    t.routes()
                        .iter()
                        .map(|r| json!({
                            "dst": r.prefix.to_string(), "prefix": r.plen,
                            "output": r.dev, "gateway": r.gw.map(|g| g.to_string()),
                            "prefsrc": r.src.to_string(), "mark": r.mark, "local": r.local,
                            "user": r.origin == super::route::Origin::User,
                        }))
                        .collect::<Vec<_>>()
                ))),
            }
        }),
    );

    let c = ctx.clone();
    r.register(
        "ovs/route/lookup",
        "ip_addr [pkt_mark=mark]",
        1,
        2,
        Arc::new(move |args, _| {
            let (a, mark) = mark_of(args)?;
            let ip: IpAddr = a
                .first()
                .and_then(|s| s.parse().ok())
                .ok_or("Invalid parameters")?;
            let t = c.switch.slow.tnl.routes();
            let r = t.lookup(ip, mark).ok_or("Not found")?;
            let gw = r.gw.map_or("::".to_string(), |g| g.to_string());
            text(format!("src {}\ngateway {gw}\ndev {}\n", r.src, r.dev))
        }),
    );

    for fam in ["neigh", "arp"] {
        let c = ctx.clone();
        r.register(
            &format!("tnl/{fam}/set"),
            "BRIDGE IP MAC",
            3,
            3,
            Arc::new(move |args, _| {
                let ip: IpAddr = args[1].parse().map_err(|_| "bad IP address".to_string())?;
                let mac: MacAddr = args[2].parse().map_err(|_| "bad MAC address".to_string())?;
                let tnl = &c.switch.slow.tnl;
                let now = tnl.now_ms();
                tnl.neigh().set(&args[0], ip, mac, now);
                // Cached tunnel headers may name the old MAC.
                c.switch.revalidate_now();
                text("OK\n")
            }),
        );
        let c = ctx.clone();
        r.register(
            &format!("tnl/{fam}/show"),
            "",
            0,
            0,
            Arc::new(move |_, _| {
                let tnl = &c.switch.slow.tnl;
                let now = tnl.now_ms();
                text(tnl.neigh().show(now))
            }),
        );
        let c = ctx.clone();
        r.register(
            &format!("tnl/{fam}/flush"),
            "",
            0,
            0,
            Arc::new(move |_, _| {
                c.switch.slow.tnl.neigh().flush();
                c.switch.revalidate_now();
                text("OK\n")
            }),
        );
        let c = ctx.clone();
        r.register(
            &format!("tnl/{fam}/aging"),
            "[SECS]",
            0,
            1,
            Arc::new(move |args, _| {
                let tnl = &c.switch.slow.tnl;
                match args.first() {
                    None => text(format!("{}\n", tnl.neigh().aging_ms / 1000)),
                    Some(s) => {
                        let secs: u64 = s
                            .parse()
                            .ok()
                            .filter(|&n| (1..=3600).contains(&n))
                            .ok_or("bad aging value")?;
                        tnl.neigh().aging_ms = secs * 1000;
                        text("OK\n")
                    }
                }
            }),
        );
    }

    let c = ctx;
    r.register(
        "tnl/ports/show",
        "-v",
        0,
        1,
        Arc::new(move |args, _| {
            let verbose = args.first().is_some_and(|a| a == "-v");
            // One receive port per (type, UDP port), as OVS shares them.
            let mut listeners: BTreeMap<String, (u32, usize, u16, u8)> = BTreeMap::new();
            for (_, dp_port, cfg) in c.switch.tunnel_ports() {
                let proto_num = if cfg.proto == wire::tunnel::TunnelProto::Gre {
                    47
                } else {
                    17
                };
                let e = listeners.entry(cfg.listener_name()).or_insert((
                    dp_port,
                    0,
                    cfg.dst_port,
                    proto_num,
                ));
                e.0 = e.0.min(dp_port);
                e.1 += 1;
            }
            let mut s = String::from("Listening ports:\n");
            if !verbose {
                for (name, (dp, refs, _, _)) in &listeners {
                    let _ = writeln!(s, "{name} ({dp}) ref_cnt={refs}");
                }
                return text(s);
            }
            let macs = c.switch.device_macs();
            let addrs = c.switch.slow.tnl.addrs();
            for (name, (dp, _, port, proto)) in &listeners {
                for a in &addrs {
                    let Some(mac) = macs.get(&a.dev) else {
                        continue;
                    };
                    let (et, l3) = match a.addr {
                        IpAddr::V4(ip) => {
                            ("0x0800", format!("ipv4(dst={ip},proto={proto},frag=no)"))
                        }
                        IpAddr::V6(ip) => {
                            ("0x86dd", format!("ipv6(dst={ip},proto={proto},frag=no)"))
                        }
                    };
                    let l4 = if *proto == 17 {
                        format!(",udp(dst={port})")
                    } else {
                        String::new()
                    };
                    let _ = writeln!(s, "{name} ({dp}) : eth(dst={mac}),eth_type({et}),{l3}{l4}");
                }
            }
            text(s)
        }),
    );
}

/// Adds to an `ofproto/trace` text, for each output to a tunnel port, the
/// `tnl_push(...)` the datapath runs there (route, neighbour cache, port
/// options and the packet's `tun_*` now), in OVS's text.
pub fn trace_tunnel_pushes(
    ctx: &Ctx,
    key: &flows::FlowKey,
    x: &flows::xlate::XlateResult,
    text: &mut String,
) {
    let tnl = &ctx.switch.slow.tnl;
    let view = tnl.view();
    for (i, a) in x.actions.iter().enumerate() {
        let flows::DpAction::Output(dp) = a else {
            continue;
        };
        let Some(t) = view.tunnels.iter().find(|t| t.dp_port == *dp) else {
            continue;
        };
        let tk = x
            .tunnel_keys
            .iter()
            .find(|(j, _)| *j == i)
            .map_or(*key, |(_, k)| *k);
        let _ = match tnl.resolve_push(&view, &t.cfg, &t.bridge, &tk) {
            Ok(p) => write!(
                text,
                "\nTunnel push on {} via {}: tnl_push(tnl_port({dp}),{},out_port({}))",
                t.name,
                p.dev,
                p.header.ovs_text(),
                p.dev
            ),
            Err(e) => write!(text, "\nTunnel push on {} impossible: {e}", t.name),
        };
    }
}

/// Replaces each `header#N` in datapath actions text (`DpAction::TnlPush`
/// names its header by index) with the header as OVS prints it.
pub fn expand_headers(text: &str, table: &datapath::tunnel::HeaderTable) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("header#") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + "header#".len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        match tail[..digits]
            .parse::<u32>()
            .ok()
            .and_then(|i| table.get(i))
        {
            Some(h) => out.push_str(&h.ovs_text()),
            None => out.push_str(&rest[at..at + "header#".len() + digits]),
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_indices_in_action_text_become_ovs_header_text() {
        let t = datapath::tunnel::HeaderTable::default();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let h = wire::tunnel::EncapHeader::build(&wire::tunnel::EncapSpec {
            proto: wire::tunnel::TunnelProto::Vxlan,
            eth_src: MacAddr([2, 0, 0, 0, 0, 1]),
            eth_dst: MacAddr([2, 0, 0, 0, 0, 2]),
            ip_src: ip("10.99.0.1"),
            ip_dst: ip("10.99.0.2"),
            ttl: 64,
            tos: 0,
            df: true,
            csum: false,
            key: Some(9),
            dst_port: 4789,
            gbp: None,
            geneve_options: &[],
            oam: false,
            inner_protocol: 0x6558,
        })
        .unwrap();
        let i = t.intern(&h).unwrap();
        let s = expand_headers(
            &format!("tnl_push(tnl_port(5),header#{i},out_port(3)),header#77"),
            &t,
        );
        assert_eq!(
            s,
            format!(
                "tnl_push(tnl_port(5),{},out_port(3)),header#77",
                h.ovs_text()
            )
        );
        assert!(s.contains("vxlan(flags=0x8000000,vni=0x9)"));
    }
}
