//! The appctl commands of vswitchd, in the vocabulary of ovs-appctl.

use std::fmt::Write;
use std::sync::Arc;

use flows::action::port as ofp_port;
use serde_json::{Value, json};

use crate::daemon::Ctx;
use crate::unixctl::{Format, Registry, Reply};
use wire::MacAddr;

fn text_or_json(fmt: Format, text: String, json: Value) -> Result<Reply, String> {
    Ok(match fmt {
        Format::Text => Reply::Text(text),
        Format::Json => Reply::Json(json),
    })
}

/// Registers every command.
pub fn registry(ctx: Arc<Ctx>) -> Registry {
    let r = Registry::default();
    crate::tnl::appctl::register(&r, ctx.clone());
    crate::bond::appctl::register(&r, ctx.clone());
    crate::ct_appctl::register(&r, ctx.clone());
    crate::ct_limits::register(&r, ctx.clone());
    crate::ipf_appctl::register(&r, ctx.clone());

    let c = ctx.clone();
    r.register(
        "ofproto/trace",
        "BRIDGE FLOW [-generate] [--ct-next FLAGS]...",
        2,
        12,
        Arc::new(move |args, fmt| {
            let mut generate = false;
            let mut ct_next = Vec::new();
            let mut rest = args[2..].iter();
            while let Some(a) = rest.next() {
                match a.as_str() {
                    "-generate" => generate = true,
                    "--ct-next" => {
                        let spec = rest
                            .next()
                            .ok_or_else(|| "--ct-next: missing ct_state flags".to_string())?;
                        ct_next.push(crate::ct_appctl::parse_ct_flags(spec)?);
                    }
                    other => {
                        return Err(format!(
                            "{other}: unknown option (try -generate or --ct-next)"
                        ));
                    }
                }
            }
            trace(&c, &args[0], &args[1], generate, &ct_next, fmt)
        }),
    );

    let c = ctx.clone();
    r.register(
        "dpctl/dump-flows",
        "",
        0,
        1,
        Arc::new(move |_, fmt| {
            let flows = c.switch.dp.dump_flows();
            let ct = &c.switch.slow.ct;
            let mut text = String::new();
            let mut arr = Vec::new();
            let headers = c.switch.dp.tnl_headers();
            let tnl = |s: String| crate::tnl::appctl::expand_headers(&s, headers);
            for f in &flows {
                let ct_text = |id| ct.format_action_for(id, f.m.key.nw_proto);
                let used = f.used.map(|u| u.elapsed().as_secs_f64());
                let _ = writeln!(
                    text,
                    "{}",
                    tnl(crate::dpformat::format_flow(
                        &f.m, &f.actions, f.packets, f.bytes, used, &ct_text
                    ))
                );
                arr.push(
                    json!({"pmd": f.pmd, "match": crate::dpformat::format_match(&f.m),
                    "actions": tnl(flows::xlate::format_dp_actions_with(&f.actions, &ct_text)),
                    "packets": f.packets, "bytes": f.bytes, "used": used}),
                );
            }
            text_or_json(fmt, text, json!({"flows": arr}))
        }),
    );

    let c = ctx.clone();
    r.register(
        "dpctl/show",
        "",
        0,
        1,
        Arc::new(move |_, fmt| {
            let st = c.switch.pmd_summary();
            let mut text = format!(
                "ferrovs@netdev:\n  lookups: hit:{} missed:{} lost:{}\n  flows: {}\n",
                st.hits,
                st.upcalls,
                st.lost,
                c.switch.dp.dump_flows().len()
            );
            let mut ports = Vec::new();
            let tunnels: std::collections::BTreeMap<String, String> = c
                .switch
                .tunnel_ports()
                .into_iter()
                .map(|(n, _, cfg)| (n, format!("{}: {}", cfg.proto, cfg.describe())))
                .collect();
            for p in c.switch.port_list() {
                let s = c.switch.dp.port_stats(p.dp_port).unwrap_or_default();
                let _ = writeln!(
                    text,
                    "  port {}: {} ({})\n    RX packets:{} errors:{} dropped:{}\n    TX packets:{} errors:{} dropped:{}",
                    p.dp_port,
                    p.name,
                    tunnels.get(&p.name).map_or(
                        if p.kind.is_empty() { "system" } else { &p.kind },
                        String::as_str
                    ),
                    s.rx_packets,
                    s.rx_errors,
                    s.rx_dropped,
                    s.tx_packets,
                    s.tx_errors,
                    s.tx_dropped
                );
                ports.push(json!({"port_no": p.dp_port, "name": p.name, "bridge": p.bridge,
                    "ofport": p.ofport, "type": p.kind,
                    "rx_packets": s.rx_packets, "rx_bytes": s.rx_bytes, "rx_errors": s.rx_errors,
                    "rx_dropped": s.rx_dropped, "tx_packets": s.tx_packets, "tx_bytes": s.tx_bytes,
                    "tx_errors": s.tx_errors, "tx_dropped": s.tx_dropped}));
            }
            text_or_json(fmt, text, json!({"ports": ports}))
        }),
    );

    let c = ctx.clone();
    r.register(
        "fdb/show",
        "BRIDGE",
        1,
        1,
        Arc::new(move |args, fmt| {
            let ofp = c
                .switch
                .slow
                .bridge(&args[0])
                .ok_or_else(|| format!("no such bridge {}", args[0]))?;
            let now = c.switch.slow.now_ms();
            let st = ofp.lock();
            let mut entries: Vec<_> = st.mac.iter().collect();
            entries.sort_by_key(|e| (e.port, e.vlan, e.mac));
            let mut text = String::from(" port  VLAN  MAC                Age\n");
            let mut arr = Vec::new();
            for e in &entries {
                let port = if e.port == ofp_port::LOCAL { "LOCAL".to_string() } else { e.port.to_string() };
                let _ = writeln!(text, "{port:>5}  {:>4}  {}  {:>3}", e.vlan, MacAddr(e.mac), e.age_secs(now));
                arr.push(json!({"port": e.port, "vlan": e.vlan, "mac": MacAddr(e.mac).to_string(), "age": e.age_secs(now)}));
            }
            text_or_json(fmt, text, json!({"entries": arr}))
        }),
    );

    let c = ctx.clone();
    r.register(
        "fdb/flush",
        "[BRIDGE]",
        0,
        1,
        Arc::new(move |args, _| {
            let names: Vec<String> = match args.first() {
                Some(b) => {
                    if c.switch.slow.bridge(b).is_none() {
                        return Err(format!("no such bridge {b}"));
                    }
                    vec![b.clone()]
                }
                None => c.switch.bridge_names().into_iter().collect(),
            };
            for n in names {
                if let Some(ofp) = c.switch.slow.bridge(&n) {
                    ofp.lock().mac.flush();
                }
            }
            c.switch.revalidate_now();
            Ok(Reply::Text("table successfully flushed\n".into()))
        }),
    );

    let c = ctx.clone();
    r.register(
        "dpif-netdev/pmd-stats-show",
        "",
        0,
        0,
        Arc::new(move |_, fmt| {
            let mut text = String::new();
            let mut arr = Vec::new();
            for s in c.switch.dp.pmd_stats() {
                let total = s.busy_ns + s.idle_ns;
                let pct = |x: u64| if total == 0 { 0.0 } else { x as f64 * 100.0 / total as f64 };
                let cpu = s.cpu.map(|c| c.to_string()).unwrap_or_else(|| "unpinned".into());
                let _ = writeln!(
                    text,
                    "pmd thread numa_id 0 core_id {cpu}:\n  packets received: {}\n  packet recirculations: {}\n  avg. datapath passes per packet: {:.2}\n  emc hits: {}\n  megaflow hits: {}\n  miss with success upcall: {}\n  miss with failed upcall: {}\n  idle time: {} ns ({:.2}%)\n  processing time: {} ns ({:.2}%)\n  avg processing time per packet: {:.1} ns",
                    s.rx_packets,
                    s.recirculations,
                    s.passes_per_packet(),
                    s.emc_hits,
                    s.megaflow_hits,
                    s.upcalls,
                    s.lost_upcalls,
                    s.idle_ns,
                    pct(s.idle_ns),
                    s.busy_ns,
                    pct(s.busy_ns),
                    s.ns_per_packet()
                );
                arr.push(json!({"pmd": s.pmd, "cpu": s.cpu, "packets": s.rx_packets,
                    "emc_hits": s.emc_hits, "megaflow_hits": s.megaflow_hits,
                    "upcalls": s.upcalls, "lost_upcalls": s.lost_upcalls,
                    "recirculations": s.recirculations, "recirc_drops": s.recirc_drops,
                    "idle_ns": s.idle_ns, "busy_ns": s.busy_ns, "ns_per_packet": s.ns_per_packet()}));
            }
            text_or_json(fmt, text, json!({"pmds": arr}))
        }),
    );

    let c = ctx.clone();
    r.register(
        "dpif-netdev/pmd-perf-show",
        "",
        0,
        0,
        Arc::new(move |_, fmt| {
            let pmds = c.switch.dp.pmd_stats();
            let text = crate::dpformat::format_pmd_perf(&pmds);
            let arr: Vec<Value> = pmds
                .iter()
                .map(|s| {
                    let stages: serde_json::Map<String, Value> = datapath::Stage::ALL
                        .iter()
                        .map(|st| (st.name().to_string(), json!(s.stage(*st))))
                        .collect();
                    json!({"pmd": s.pmd, "cpu": s.cpu, "packets": s.rx_packets,
                        "busy_iterations": s.busy_iterations, "idle_iterations": s.idle_iterations,
                        "busy_cycles": s.busy_cycles, "idle_cycles": s.idle_cycles,
                        "sleep_cycles": s.sleep_cycles, "stage_cycles": stages})
                })
                .collect();
            text_or_json(fmt, text, json!({"pmds": arr}))
        }),
    );

    let c = ctx.clone();
    r.register(
        "dpif-netdev/pmd-stats-clear",
        "",
        0,
        0,
        Arc::new(move |_, _| {
            c.switch.dp.clear_pmd_stats();
            Ok(Reply::Text(String::new()))
        }),
    );

    let c = ctx.clone();
    r.register(
        "coverage/show",
        "",
        0,
        0,
        Arc::new(move |_, fmt| {
            let s = c.switch.pmd_summary();
            let ct = c.switch.slow.ct.tracker().counters();
            let up = c.started.elapsed().as_secs().max(1);
            let counters = [
                (
                    "upcall_handled",
                    c.switch
                        .slow
                        .upcalls
                        .load(std::sync::atomic::Ordering::Relaxed),
                ),
                ("datapath_hits", s.hits),
                ("datapath_misses", s.upcalls),
                ("datapath_lost_upcalls", s.lost),
                ("megaflows", c.switch.dp.dump_flows().len() as u64),
                // Commits refused by the global and by a zone limit (OVS's
                // coverage names).
                ("conntrack_full", ct.refused_full),
                ("conntrack_zone_full", ct.refused_zone_limit),
            ];
            let mut text = format!("Event coverage, uptime {up} seconds:\n");
            for (n, v) in counters {
                let _ = writeln!(
                    text,
                    "{n:<28} {:>10.1}/sec   total: {v}",
                    v as f64 / up as f64
                );
            }
            let obj: serde_json::Map<String, Value> = counters
                .iter()
                .map(|(n, v)| (n.to_string(), json!(v)))
                .collect();
            text_or_json(fmt, text, Value::Object(obj))
        }),
    );

    let c = ctx.clone();
    r.register(
        "vlog/set",
        "SPEC (e.g. debug, or info,datapath=debug)",
        1,
        1,
        Arc::new(move |args, _| {
            check_log_spec(&args[0])?;
            let f = tracing_subscriber::EnvFilter::try_new(&args[0])
                .map_err(|e| format!("invalid log specification {:?}: {e}", args[0]))?;
            c.log
                .reload(f)
                .map_err(|e| format!("cannot change the log level: {e}"))?;
            Ok(Reply::Text(String::new()))
        }),
    );

    let c = ctx.clone();
    r.register(
        "vlog/list",
        "",
        0,
        0,
        Arc::new(move |_, _| {
            let cur = c
                .log
                .with_current(|f| f.to_string())
                .map_err(|e| e.to_string())?;
            Ok(Reply::Text(format!("{cur}\n")))
        }),
    );

    let c = ctx.clone();
    r.register(
        "exit",
        "",
        0,
        0,
        Arc::new(move |_, _| {
            c.of.request_exit();
            Ok(Reply::Text(String::new()))
        }),
    );

    let c = ctx.clone();
    r.register(
        "netdev-dummy/receive",
        "PORT HEX-FRAME",
        2,
        2,
        Arc::new(move |args, _| {
            let port = c
                .switch
                .dummy(&args[0])
                .ok_or_else(|| format!("no such dummy device {}", args[0]))?;
            let hex: String = args[1].chars().filter(|c| !c.is_whitespace()).collect();
            if !hex.len().is_multiple_of(2) {
                return Err("packet: odd number of hex digits".into());
            }
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|e| format!("packet: {e}"))?;
            port.inject(&bytes);
            Ok(Reply::Text(String::new()))
        }),
    );

    let c = ctx;
    r.register(
        "version",
        "",
        0,
        0,
        Arc::new(move |_, _| {
            let _ = &c;
            Ok(Reply::Text(format!(
                "vswitchd (ferrovs) {}\n",
                env!("CARGO_PKG_VERSION")
            )))
        }),
    );
    r
}

/// A trace sends no packet-in: its controller actions say so
/// (`dont_send=1`), as OVS's trace prints them.
fn unsent_packet_ins(x: &mut flows::xlate::XlateResult) {
    for a in &mut x.actions {
        if let flows::DpAction::Userspace { dont_send, .. } = a {
            *dont_send = true;
        }
    }
}

/// `ofproto/trace`. As in OVS, a trace has no side effects unless
/// `-generate` (a packet is generated from the flow): then NORMAL's MAC
/// learning and `learn` actions apply, as for a real packet.
fn trace(
    ctx: &Ctx,
    bridge: &str,
    flow: &str,
    generate: bool,
    ct_next: &[u32],
    fmt: Format,
) -> Result<Reply, String> {
    let ofp = ctx
        .switch
        .slow
        .bridge(bridge)
        .ok_or_else(|| format!("{bridge}: unknown bridge"))?;
    let (key, tun_metadata) =
        flows::text::parse_flow_key_tm(flow).map_err(|e| format!("{flow}: {e}"))?;
    let now = ctx.switch.slow.now_ms();
    let slow = &ctx.switch.slow;
    // The bridges patch ports lead to are locked with it, in id order.
    let group = slow.patch_group(&ofp);
    let root = group.iter().position(|b| Arc::ptr_eq(b, &ofp)).unwrap_or(0);
    let mut guards = crate::patch::lock_all(&group);
    // tun_metadataN of the flow land where the bridge's TLV map puts them
    // (and mark the options present).
    let mut m = flows::Match {
        key,
        mask: flows::FlowKey::default(),
    };
    guards[root]
        .tlv
        .bind_match(&mut m, &tun_metadata)
        .map_err(|e| format!("{flow}: {e}"))?;
    let key = m.key;
    if guards[root].ports.get(key.in_port).is_none() {
        return Err(format!(
            "{bridge}: no port with OpenFlow port number {} (in_port)",
            key.in_port
        ));
    }
    let res = crate::recirc::Resources {
        ct: &slow.ct,
        recirc: &slow.recirc,
    };
    let fail_open = ofp.fail_open(&guards[root]);
    let mut x = {
        let set = crate::patch::patch_set(&group, &guards, root);
        guards[root]
            .translate_dp(&key, now, fail_open, Some(&res), 0, set.as_ref())
            .0
    };
    unsent_packet_ins(&mut x);
    let ct_text = |id| slow.ct.format_action_for(id, key.nw_proto);
    // Later passes (ct(table=N) recirculations), with the ct_state
    // --ct-next gives each (default trk|new), as OVS's trace does.
    let mut passes = Vec::new();
    let mut queue: std::collections::VecDeque<(flows::FlowKey, Vec<flows::DpAction>)> =
        std::collections::VecDeque::from([(key, x.actions.clone())]);
    let mut next_state = ct_next.iter();
    while let Some((k, actions)) = queue.pop_front() {
        let mut zone = 0;
        for a in actions {
            match a {
                flows::DpAction::Ct(id) => {
                    zone = slow.ct.args(id).map_or(0, |a| a.zone);
                }
                flows::DpAction::Recirc(rid) if passes.len() < 6 => {
                    let Some(frozen) = slow.recirc.get(rid) else {
                        continue;
                    };
                    let (state, default) = match next_state.next() {
                        Some(s) => (*s, false),
                        None => (flows::key::ct_state::TRK | flows::key::ct_state::NEW, true),
                    };
                    let mut k2 = k;
                    k2.recirc_id = rid;
                    k2.ct_state = state;
                    k2.ct_zone = zone;
                    frozen.thaw(&mut k2);
                    // The pass runs in the bridge that froze (a peer
                    // behind a patch port, or this one).
                    let at = group
                        .iter()
                        .position(|b| frozen.bridge != 0 && b.id == frozen.bridge)
                        .unwrap_or(root);
                    let mut x2 = {
                        let set = crate::patch::patch_set(&group, &guards, at);
                        let fo = group[at].fail_open(&guards[at]);
                        guards[at]
                            .translate_dp(&k2, now, fo, Some(&res), frozen.table_id, set.as_ref())
                            .0
                    };
                    unsent_packet_ins(&mut x2);
                    queue.push_back((k2, x2.actions.clone()));
                    passes.push((rid, state, default, frozen.table_id, k2, x2));
                }
                _ => {}
            }
        }
    }
    if generate {
        let mut macs = guards[root].learn(&x, now);
        let mut changed = guards[root].apply_learned(&x, now);
        for eff in &x.patch_effects {
            if let Some(i) = group.iter().position(|b| b.id == eff.bridge) {
                macs.extend(guards[i].learn_requests(&eff.learned, now));
                let lx = flows::xlate::XlateResult {
                    learned_flows: eff.learned_flows.clone(),
                    ..Default::default()
                };
                changed |= guards[i].apply_learned(&lx, now);
            }
        }
        drop(guards);
        ctx.switch.slow.request_flush_macs(macs);
        if changed {
            ctx.switch.slow.request_flush_all();
        }
    } else {
        drop(guards);
    }
    let mut text = flows::xlate::format_trace_with(bridge, &key, &x, &ct_text);
    crate::tnl::appctl::trace_tunnel_pushes(ctx, &key, &x, &mut text);
    for (rid, state, default, table, k2, x2) in &passes {
        let bar = "=".repeat(79);
        let flags = crate::ct_appctl::format_ct_flags(*state);
        let how = if *default {
            format!("default ct_state={flags} (use --ct-next to customize)")
        } else {
            format!("ct_state={flags}")
        };
        let _ = write!(
            text,
            "\n\n{bar}\nrecirc({rid:#x}) - resume conntrack with {how}\n{bar}\n\n"
        );
        let pass = flows::xlate::format_trace_with(bridge, k2, x2, &ct_text);
        // The thaw comes first in the bridge's section, as in OVS.
        let dashes = format!("{}\n", "-".repeat(bridge.len() + 10));
        let thaw = format!("{dashes}    thaw\n        Resuming from table {table}\n");
        text.push_str(&pass.replacen(&dashes, &thaw, 1));
    }
    let mega = flows::Match::new(key, x.wc);
    text_or_json(
        fmt,
        format!("{text}\n"),
        json!({"bridge": bridge,
            "megaflow": flows::text::format_match(&mega, flows::table::DEFAULT_PRIORITY),
            "datapath_actions": flows::xlate::format_dp_actions_with(&x.actions, &ct_text),
            "recirculations": passes.iter().map(|p| json!({"recirc_id": p.0,
                "datapath_actions": flows::xlate::format_dp_actions_with(&p.5.actions, &ct_text)}))
                .collect::<Vec<_>>(),
            "trace": text}),
    )
}

/// Log levels `vlog/set` accepts.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Checks a `vlog/set` specification: comma-separated `LEVEL` or
/// `MODULE=LEVEL` (MODULE a Rust module path such as `datapath::dpif`).
/// The log filter itself would take almost anything (a bare word is a
/// module to trace), so mistakes would pass silently.
fn check_log_spec(spec: &str) -> Result<(), String> {
    let level = |l: &str| LEVELS.contains(&l.to_ascii_lowercase().as_str());
    let module = |m: &str| {
        !m.is_empty()
            && m.split("::").all(|part| {
                part.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
    };
    if spec.trim().is_empty() {
        return Err("empty log specification".into());
    }
    for d in spec.split(',').map(str::trim) {
        match d.split_once('=') {
            Some((m, l)) if module(m) && level(l) => {}
            Some((m, _)) if !module(m) => {
                return Err(format!("no destination, level, or module \"{m}\""));
            }
            Some((_, l)) => {
                return Err(format!(
                    "unknown level \"{l}\" (expected one of {})",
                    LEVELS.join(", ")
                ));
            }
            None if level(d) => {}
            None => return Err(format!("no destination, level, or module \"{d}\"")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_log_spec;

    #[test]
    fn log_specs_are_levels_or_module_levels() {
        for ok in [
            "debug",
            "info,datapath=debug",
            "vhost_port::control=trace",
            "WARN",
        ] {
            assert_eq!(check_log_spec(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            check_log_spec("bogus:::").unwrap_err(),
            "no destination, level, or module \"bogus:::\""
        );
        assert!(check_log_spec("bogus").is_err());
        assert!(
            check_log_spec("datapath=loud")
                .unwrap_err()
                .contains("unknown level")
        );
        assert!(check_log_spec("").is_err());
        assert!(check_log_spec("info,").is_err());
    }
}
