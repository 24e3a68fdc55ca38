//! Port mirrors configured with stock `ovs-vsctl` exactly as OVS's
//! documentation does it: tcpdump on the mirror port sees exactly the
//! selected traffic, in both directions, and nothing else reaches it.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use ferrovs_tests::*;

/// Stock ovs-vsctl against the switch's DB.
fn ovs_vsctl(sw: &Switch, args: &[&str]) -> Result<String> {
    run(Command::new("ovs-vsctl")
        .arg(format!("--db={}", sw.db_remote()))
        .arg("--no-wait")
        .args(args))
}

fn count(lines: &[String], what: &str) -> usize {
    lines.iter().filter(|l| l.contains(what)).count()
}

#[test]
fn a_port_mirror_shows_exactly_the_selected_traffic_in_both_directions() -> Result<()> {
    require!();
    require_tool("ovs-vsctl");
    require_tool("tcpdump");
    let tag = unique_tag();
    let (sw, br, hosts) = bridge_with_hosts(&tag, 74, 4)?;
    let (h1, h2, sink, h4) = (&hosts[0], &hosts[1], &hosts[2], &hosts[3]);
    // Learn every MAC first, so that no flood reaches the sink by chance.
    for h in [h2, h4] {
        assert!(h1.ns.ping_eventually(&h.addr, Duration::from_secs(15)));
    }
    assert!(h2.ns.ping_eventually(&h4.addr, Duration::from_secs(15)));

    // The recipe of OVS's FAQ: mirror everything to and from port 1 onto
    // port 3.
    ovs_vsctl(
        &sw,
        &[
            "--",
            "--id=@src",
            "get",
            "Port",
            &h1.port,
            "--",
            "--id=@out",
            "get",
            "Port",
            &sink.port,
            "--",
            "--id=@m",
            "create",
            "Mirror",
            "name=m0",
            "select_src_port=@src",
            "select_dst_port=@src",
            "output_port=@out",
            "--",
            "set",
            "Bridge",
            &br,
            "mirrors=@m",
        ],
    )?;
    assert!(wait_until(Duration::from_secs(10), || {
        sw.appctl(&["ofproto/trace", &br, "in_port=1,dl_dst=ff:ff:ff:ff:ff:ff"])
            .is_ok_and(|t| t.contains("Datapath actions"))
            && ovs_vsctl(&sw, &["get", "Mirror", "m0", "output_port"]).is_ok()
    }));
    std::thread::sleep(Duration::from_secs(1));

    let cap = sink.ns.tcpdump(120, &["-i", "eth0", "-n", "-l"])?;
    assert!(h1.ns.ping(&h2.addr, 5), "h1 -> h2 broken by the mirror");
    assert!(h2.ns.ping(&h4.addr, 5), "h2 -> h4 broken by the mirror");
    // The mirror port is reserved: what the sink sends is dropped.
    assert!(
        !sink.ns.ping(&h1.addr, 2),
        "a mirror output port forwarded its own traffic"
    );
    let (a1, a2, a4) = (&h1.addr, &h2.addr, &h4.addr);
    let (req, rep) = (
        format!("IP {a1} > {a2}: ICMP echo request"),
        format!("IP {a2} > {a1}: ICMP echo reply"),
    );
    // Stopped once the mirrored copies are all in, not after a fixed time.
    let text = cap.stop_when(Duration::from_secs(15), |t| {
        t.matches(req.as_str()).count() >= 5 && t.matches(rep.as_str()).count() >= 5
    });
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert_eq!(
        count(&lines, &req),
        5,
        "requests from port 1 not mirrored once each:\n{}",
        lines.join("\n")
    );
    assert_eq!(
        count(&lines, &rep),
        5,
        "replies to port 1 not mirrored once each:\n{}",
        lines.join("\n")
    );
    assert_eq!(
        count(&lines, a4.as_str()),
        0,
        "traffic that never touched port 1 reached the mirror:\n{}",
        lines.join("\n")
    );

    // Statistics (Mirror.statistics) count what the mirror sent.
    let stats_ok = wait_until(Duration::from_secs(15), || {
        ovs_vsctl(&sw, &["get", "Mirror", "m0", "statistics:tx_packets"])
            .ok()
            .and_then(|s| s.trim().trim_matches('"').parse::<u64>().ok())
            .is_some_and(|n| n >= 10)
    });
    assert!(
        stats_ok,
        "Mirror statistics missing or too small: {:?}",
        ovs_vsctl(&sw, &["get", "Mirror", "m0", "statistics"])
    );

    // Removing the mirror gives the port back to ordinary switching.
    ovs_vsctl(&sw, &["clear", "Bridge", &br, "mirrors"])?;
    assert!(
        sink.ns.ping_eventually(&h1.addr, Duration::from_secs(15)),
        "the former mirror port does not switch again"
    );
    Ok(())
}
