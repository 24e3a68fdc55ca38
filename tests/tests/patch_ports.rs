//! Patch ports (`type=patch`, `options:peer`): two bridges joined inside
//! the switch. A namespace on each bridge reaches the other (ping, TCP);
//! deleting a patch port cuts the traffic; a flow change in the peer
//! bridge applies to traffic whose megaflow is already cached; a missing
//! or one-sided peer gets stock OVS's Interface error; and
//! `ofproto/trace` crosses into the peer bridge as stock OVS's does
//! (stock `ovs-vswitchd --enable-dummy`, same configuration and flows).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferrovs_tests::*;

/// Two bridges `<tag>a` and `<tag>b`, host 1 on a and host 2 on b
/// (`10.<net>.0.<i>/24`, OpenFlow port 1 on both), joined by the patch
/// pair `<tag>pa` (port 2 of a) ↔ `<tag>pb` (port 2 of b).
struct Pair {
    sw: Switch,
    a: String,
    b: String,
    pa: String,
    pb: String,
    hosts: Vec<VethHost>,
}

fn pair(net: u8) -> Result<Pair> {
    let tag = unique_tag();
    let sw = Switch::start()?;
    let (a, b) = (format!("{tag}a"), format!("{tag}b"));
    // Patch ports named as the recipes name them, longer than a device
    // name may be: a patch port has no device.
    let (pa, pb) = (format!("patch-{a}-to-{b}"), format!("patch-{b}-to-{a}"));
    let h1 = VethHost::new(&tag, 1, &format!("10.{net}.0.1/24"))?;
    let h2 = VethHost::new(&tag, 2, &format!("10.{net}.0.2/24"))?;
    let peer_a = format!("options:peer={pb}");
    let peer_b = format!("options:peer={pa}");
    sw.vsctl(&[
        "add-br",
        &a,
        "--",
        "add-br",
        &b,
        "--",
        "add-port",
        &a,
        &h1.port,
        "--",
        "set",
        "Interface",
        &h1.port,
        "ofport_request=1",
        "--",
        "add-port",
        &b,
        &h2.port,
        "--",
        "set",
        "Interface",
        &h2.port,
        "ofport_request=1",
        "--",
        "add-port",
        &a,
        &pa,
        "--",
        "set",
        "Interface",
        &pa,
        "type=patch",
        &peer_a,
        "ofport_request=2",
        "--",
        "add-port",
        &b,
        &pb,
        "--",
        "set",
        "Interface",
        &pb,
        "type=patch",
        &peer_b,
        "ofport_request=2",
    ])?;
    // The bridges' own TAP ports would bring the kernel's IPv6 chatter.
    for br in [&a, &b] {
        let _ = ip(&["link", "set", br, "down"]);
    }
    Ok(Pair {
        sw,
        a,
        b,
        pa,
        pb,
        hosts: vec![h1, h2],
    })
}

impl Pair {
    fn iface(&self, name: &str, col: &str) -> Result<String> {
        Ok(self
            .sw
            .vsctl(&["get", "Interface", name, col])?
            .trim()
            .to_string())
    }

    /// (rx packets, tx packets) of OpenFlow port `port` of `br`, from
    /// `ofctl dump-ports`.
    fn port_counts(&self, br: &str, port: u32) -> Result<(u64, u64)> {
        let text = self.sw.ofctl(&["dump-ports", br, &port.to_string()])?;
        let num = |s: &str, key: &str| -> Option<u64> {
            let i = s.find(key)? + key.len();
            s[i..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        let rx_line = text
            .lines()
            .find(|l| l.contains("rx pkts"))
            .context("no rx line")?;
        let tx_line = text
            .lines()
            .find(|l| l.contains("tx pkts"))
            .context("no tx line")?;
        Ok((
            num(rx_line, "rx pkts=").context("rx")?,
            num(tx_line, "tx pkts=").context("tx")?,
        ))
    }
}

#[test]
fn namespaces_on_two_bridges_joined_by_a_patch_pair_ping_and_carry_tcp() -> Result<()> {
    require!("iperf3");
    let p = pair(71)?;
    let (h1, h2) = (&p.hosts[0], &p.hosts[1]);
    assert!(
        h1.ns.ping_eventually(&h2.addr, Duration::from_secs(15)),
        "h1 on {} cannot reach h2 on {}; log:\n{}",
        p.a,
        p.b,
        p.sw.log_text()
    );
    assert!(h2.ns.ping(&h1.addr, 3), "h2 -> h1 lost packets");
    let bps = iperf3_tcp(&h2.ns, &h1.ns, &h2.addr, 2)?;
    assert!(bps > 1e6, "h1 -> h2 TCP carried only {bps} bit/s");
    let bps = iperf3_tcp(&h1.ns, &h2.ns, &h1.addr, 2)?;
    assert!(bps > 1e6, "h2 -> h1 TCP carried only {bps} bit/s");

    // Written back as OVS does: OpenFlow port, no error.
    assert_eq!(p.iface(&p.pa, "ofport")?, "2");
    assert_eq!(p.iface(&p.pb, "ofport")?, "2");
    assert_eq!(p.iface(&p.pa, "error")?, "[]");
    // No datapath port: the datapath does not list the patch ports.
    let dp = p.sw.appctl(&["dpctl/show"])?;
    assert!(!dp.contains(&p.pa) && !dp.contains(&p.pb), "{dp}");
    // The listed types include patch.
    let types = p.sw.vsctl(&["get", "Open_vSwitch", ".", "iface_types"])?;
    assert!(types.contains("patch"), "{types}");

    // Counted as OVS counts them: what crossed a -> b was sent by pa and
    // received by pb, and the other way round. Megaflow counters reach
    // the ports with the revalidator's next pass.
    let ok = wait_until(Duration::from_secs(5), || {
        let (Ok((pa_rx, pa_tx)), Ok((pb_rx, pb_tx))) =
            (p.port_counts(&p.a, 2), p.port_counts(&p.b, 2))
        else {
            return false;
        };
        pa_tx > 1000 && pb_rx == pa_tx && pb_tx > 1000 && pa_rx == pb_tx
    });
    assert!(
        ok,
        "patch counters:\n{}\n{}",
        p.sw.ofctl(&["dump-ports", &p.a])?,
        p.sw.ofctl(&["dump-ports", &p.b])?
    );
    Ok(())
}

#[test]
fn deleting_a_patch_port_cuts_the_traffic_and_its_peer_reports_the_missing_peer() -> Result<()> {
    require!();
    let p = pair(72)?;
    let (h1, h2) = (&p.hosts[0], &p.hosts[1]);
    assert!(h1.ns.ping_eventually(&h2.addr, Duration::from_secs(15)));
    // Cached now.
    assert!(h1.ns.ping(&h2.addr, 3));
    p.sw.vsctl(&["del-port", &p.a, &p.pa])?;
    assert!(
        !h1.ns.ping(&h2.addr, 3),
        "packets crossed after the patch port was deleted"
    );
    assert_eq!(
        p.iface(&p.pb, "error")?,
        format!("\"No usable peer '{}' exists in 'netdev' datapath.\"", p.pa)
    );
    // Putting it back restores the path.
    let peer = format!("options:peer={}", p.pb);
    p.sw.vsctl(&[
        "add-port",
        &p.a,
        &p.pa,
        "--",
        "set",
        "Interface",
        &p.pa,
        "type=patch",
        &peer,
        "ofport_request=2",
    ])?;
    assert!(
        h1.ns.ping_eventually(&h2.addr, Duration::from_secs(10)),
        "the re-added patch pair carries nothing"
    );
    assert_eq!(p.iface(&p.pb, "error")?, "[]");
    Ok(())
}

#[test]
fn a_flow_change_in_the_peer_bridge_applies_to_traffic_already_cached() -> Result<()> {
    require!();
    let p = pair(73)?;
    let (h1, h2) = (&p.hosts[0], &p.hosts[1]);
    assert!(h1.ns.ping_eventually(&h2.addr, Duration::from_secs(15)));
    assert!(h1.ns.ping(&h2.addr, 3));
    // The ping's megaflow is cached: it enters on bridge a and its
    // decision was made partly by bridge b's tables.
    let flows = p.sw.appctl(&["dpctl/dump-flows"])?;
    assert!(
        flows.contains("0x0800") || flows.contains("ipv4"),
        "{flows}"
    );

    p.sw.ofctl(&["add-flow", &p.b, "priority=100,icmp,actions=drop"])?;
    assert!(
        !h1.ns.ping(&h2.addr, 3),
        "pings crossed after the peer bridge's drop flow was acknowledged"
    );
    p.sw.ofctl(&["del-flows", &p.b, "--strict", "priority=100,icmp"])?;
    assert!(
        h1.ns.ping(&h2.addr, 3),
        "removing the peer's drop flow did not restore traffic"
    );
    Ok(())
}

#[test]
fn a_patch_port_without_a_usable_peer_gets_ovs_error_and_carries_nothing() -> Result<()> {
    require!();
    let tag = unique_tag();
    let sw = Switch::start()?;
    let (a, b) = (format!("{tag}a"), format!("{tag}b"));
    let h1 = VethHost::new(&tag, 1, "10.74.0.1/24")?;
    let h2 = VethHost::new(&tag, 2, "10.74.0.2/24")?;
    let (pa, pb, px) = (format!("{tag}pa"), format!("{tag}pb"), format!("{tag}px"));
    // pa names pb, but pb names px: not reciprocal. px has no peer.
    let peer_a = format!("options:peer={pb}");
    let peer_b = format!("options:peer={px}");
    // A device name cannot be that long: vsctl takes it (the type could be
    // patch), and the switch reports the device it cannot open.
    let long_system = format!("{tag}-long-system-dev");
    sw.vsctl(&[
        "add-br",
        &a,
        "--",
        "add-br",
        &b,
        "--",
        "add-port",
        &a,
        &h1.port,
        "--",
        "add-port",
        &b,
        &h2.port,
        "--",
        "add-port",
        &a,
        &pa,
        "--",
        "set",
        "Interface",
        &pa,
        "type=patch",
        &peer_a,
        "--",
        "add-port",
        &b,
        &pb,
        "--",
        "set",
        "Interface",
        &pb,
        "type=patch",
        &peer_b,
        "--",
        "add-port",
        &b,
        &px,
        "--",
        "set",
        "Interface",
        &px,
        "type=patch",
        "--",
        "add-port",
        &a,
        &long_system,
    ])?;
    let get = |name: &str, col: &str| -> Result<String> {
        Ok(sw
            .vsctl(&["get", "Interface", name, col])?
            .trim()
            .to_string())
    };
    assert_eq!(
        get(&pa, "error")?,
        format!("\"No usable peer '{pb}' exists in 'netdev' datapath.\"")
    );
    assert_eq!(
        get(&pb, "error")?,
        format!("\"No usable peer '{px}' exists in 'netdev' datapath.\"")
    );
    assert_eq!(
        get(&px, "error")?,
        format!("\"{px}: patch type requires valid 'peer' argument\"")
    );
    // As in OVS: an unusable peer still gets its OpenFlow port, a patch
    // port that cannot be configured at all does not.
    assert_ne!(get(&pa, "ofport")?, "-1");
    assert_eq!(get(&px, "ofport")?, "-1");
    assert!(
        get(&long_system, "error")?
            .starts_with(&format!("\"could not open network device {long_system} (")),
        "{}",
        get(&long_system, "error")?
    );
    assert_eq!(get(&long_system, "ofport")?, "-1");
    assert!(
        !h1.ns.ping(&h2.addr, 3),
        "traffic crossed a non-reciprocal patch pair"
    );
    Ok(())
}

/// The lines of an `ofproto/trace` that say where translation went:
/// bridge headings and the rules looked up (table, match, priority),
/// without indentation and without the cookie (OVS omits a zero cookie,
/// ferrovs prints it).
fn trace_skeleton(trace: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in trace.lines() {
        let t = line.trim();
        if t.starts_with("bridge(\"") {
            out.push(t.to_string());
            continue;
        }
        let Some((num, rest)) = t.split_once(". ") else {
            continue;
        };
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let rest = rest.split(", cookie ").next().unwrap_or(rest);
        out.push(format!("{num}. {rest}"));
    }
    out
}

fn dp_actions(trace: &str) -> Result<String> {
    trace
        .lines()
        .find_map(|l| l.strip_prefix("Datapath actions: "))
        .map(str::to_string)
        .context("no datapath actions in trace")
}

/// Datapath port numbers in `actions` replaced by port names; each run of
/// consecutive outputs (a flood) is sorted, since the two switches flood
/// their ports in different orders.
fn by_name(actions: &str, ports: &BTreeMap<u32, String>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Vec<String> = Vec::new();
    for a in actions.split(',') {
        match a.parse::<u32>() {
            Ok(n) => run.push(ports.get(&n).cloned().unwrap_or_else(|| format!("?{n}"))),
            Err(_) => {
                run.sort();
                out.append(&mut run);
                out.push(a.to_string());
            }
        }
    }
    run.sort();
    out.append(&mut run);
    out.join(",")
}

#[test]
fn ofproto_trace_crosses_the_patch_pair_as_stock_ovs_does() -> Result<()> {
    require!("ovs-vswitchd", "ovs-ofctl");
    const A: &str = "pcha0";
    const B: &str = "pchb0";
    let vsctl_args: Vec<&str> = vec![
        "add-br",
        A,
        "--",
        "set",
        "bridge",
        A,
        "fail_mode=secure",
        "--",
        "add-br",
        B,
        "--",
        "set",
        "bridge",
        B,
        "fail_mode=secure",
        "--",
        "add-port",
        A,
        "pchp1",
        "--",
        "set",
        "Interface",
        "pchp1",
        "type=dummy",
        "ofport_request=1",
        "--",
        "add-port",
        B,
        "pchp2",
        "--",
        "set",
        "Interface",
        "pchp2",
        "type=dummy",
        "ofport_request=1",
        "--",
        "add-port",
        A,
        "pchpa",
        "--",
        "set",
        "Interface",
        "pchpa",
        "type=patch",
        "options:peer=pchpb",
        "ofport_request=2",
        "--",
        "add-port",
        B,
        "pchpb",
        "--",
        "set",
        "Interface",
        "pchpb",
        "type=patch",
        "options:peer=pchpa",
        "ofport_request=2",
        "--",
        "add-port",
        A,
        "pchpx",
        "--",
        "set",
        "Interface",
        "pchpx",
        "type=patch",
        "options:peer=pchnone",
        "ofport_request=3",
    ];
    let ovs = StockOvs::start("pch-ovs-")?;
    let mut ovs_args = vsctl_args.clone();
    ovs_args.extend([
        "--",
        "set",
        "bridge",
        A,
        "datapath_type=netdev",
        "--",
        "set",
        "bridge",
        B,
        "datapath_type=netdev",
    ]);
    ovs.vsctl(&ovs_args)?;
    let fv = Switch::start()?;
    fv.vsctl(&vsctl_args)?;
    for br in [A, B] {
        let _ = ip(&["link", "set", br, "down"]);
    }

    // The same Interface error for the patch port whose peer is missing.
    // (Each daemon writes it back after the change; stock OVS refreshes
    // Interface status when connectivity changes: a link flap of a dummy
    // port makes it write the error now.)
    ovs.appctl(&["netdev-dummy/set-admin-state", "pchp1", "down"])?;
    ovs.appctl(&["netdev-dummy/set-admin-state", "pchp1", "up"])?;
    let error_of = |get: &dyn Fn() -> Result<String>| -> String {
        let mut last = String::new();
        wait_until(Duration::from_secs(12), || {
            last = get().map(|s| s.trim().to_string()).unwrap_or_default();
            last != "[]" && !last.is_empty()
        });
        last
    };
    let ovs_err = error_of(&|| ovs.vsctl(&["get", "Interface", "pchpx", "error"]));
    let fv_err = error_of(&|| fv.vsctl(&["get", "Interface", "pchpx", "error"]));
    assert_eq!(fv_err, ovs_err);

    let flows_a = "in_port=1,actions=mod_dl_src:00:00:00:00:00:99,output:2\n\
                   in_port=2,actions=output:1\n";
    let flows_b = "table=0,in_port=2,ip,actions=resubmit(,1)\n\
                   table=0,in_port=2,arp,actions=NORMAL\n\
                   table=0,in_port=1,actions=output:2\n\
                   table=1,ip,nw_dst=10.9.0.2,actions=mod_nw_dst:10.9.9.9,output:1\n\
                   table=1,priority=0,actions=IN_PORT\n";
    let fv_mgmt = |br: &str| format!("unix:{}", fv.rundir().join(format!("{br}.mgmt")).display());
    for (br, flows) in [(A, flows_a), (B, flows_b)] {
        let file = fv.rundir().join(format!("patch-{br}.txt"));
        std::fs::write(&file, flows)?;
        for target in [ovs.mgmt(br), fv_mgmt(br)] {
            run(Command::new("ovs-ofctl")
                .args(["-O", "OpenFlow13", "add-flows", &target])
                .arg(&file))?;
        }
    }

    // Datapath port numbers → names on each side.
    let mut ovs_ports = BTreeMap::new();
    for line in ovs.appctl(&["dpif/show"])?.lines() {
        let mut it = line.split_whitespace();
        if let (Some(name), Some(nums)) = (it.next(), it.next())
            && name.starts_with("pch")
            && let Some((_, dp)) = nums.trim_end_matches(':').split_once('/')
            && let Ok(n) = dp.parse::<u32>()
        {
            ovs_ports.insert(n, name.to_string());
        }
    }
    let mut fv_ports = BTreeMap::new();
    for line in fv.appctl(&["dpctl/show"])?.lines() {
        if let Some(rest) = line.trim().strip_prefix("port ")
            && let Some((no, rest)) = rest.split_once(": ")
            && let Some(name) = rest.split_whitespace().next()
        {
            fv_ports.insert(no.parse::<u32>()?, name.to_string());
        }
    }

    let packets = [
        // a -> patch -> b, table 0 then table 1: rewritten on both sides.
        "in_port=1,dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:02,icmp,nw_src=10.9.0.1,nw_dst=10.9.0.2",
        // b sends it back through the patch pair (IN_PORT), a outputs it.
        "in_port=1,dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:02,icmp,nw_src=10.9.0.1,nw_dst=10.9.0.3",
        // NORMAL in the peer bridge floods.
        "in_port=1,dl_src=00:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,arp,arp_spa=10.9.0.1,arp_tpa=10.9.0.2",
        // And from b's side into a.
        "in_port=1,dl_src=00:00:00:00:00:02,dl_dst=00:00:00:00:00:01,icmp,nw_src=10.9.0.2,nw_dst=10.9.0.1",
    ];
    for (i, flow) in packets.iter().enumerate() {
        let br = if i == 3 { B } else { A };
        let o = ovs.appctl(&["ofproto/trace", br, flow])?;
        let f = fv.appctl(&["ofproto/trace", br, flow])?;
        assert_eq!(
            trace_skeleton(&f),
            trace_skeleton(&o),
            "trace {flow}\n--- ovs:\n{o}\n--- ferrovs:\n{f}"
        );
        let (oa, fa) = (
            by_name(&dp_actions(&o)?, &ovs_ports),
            by_name(&dp_actions(&f)?, &fv_ports),
        );
        assert_eq!(
            fa, oa,
            "datapath actions of {flow}\n--- ovs:\n{o}\n--- ferrovs:\n{f}"
        );
        let other = if i == 3 { A } else { B };
        let crossing = format!("bridge(\"{other}\")");
        if !trace_skeleton(&o).contains(&crossing) {
            bail!("the oracle's trace of {flow} does not cross into {other}:\n{o}");
        }
    }
    // A direct output from table 0 prints the peer's heading like OVS:
    // a blank line, then the heading and its rule at the left margin.
    let o = ovs.appctl(&["ofproto/trace", A, packets[0]])?;
    let f = fv.appctl(&["ofproto/trace", A, packets[0]])?;
    let heading = format!("\n\nbridge(\"{B}\")\n{}\n 0. ", "-".repeat(B.len() + 10));
    assert!(o.contains(&heading), "oracle:\n{o}");
    assert!(f.contains(&heading), "ferrovs:\n{f}");
    Ok(())
}
