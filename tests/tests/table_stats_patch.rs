//! Issue 13 item 7 (table statistics), for what does not come from a
//! port: OFPMP_TABLE `lookup_count`/`matched_count` (and the rules'
//! counters) of a packet-out whose actions run the tables (`output:TABLE`,
//! `resubmit`), and of packets that cross a patch port, whose lookups in
//! the peer bridge count in the peer's tables. Stock OVS (dummy
//! datapath) and ferrovs get the same bridges, flows and packets; the
//! counters that moved must be the same, bridge by bridge.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use ferrovs_tests::*;

const BR_A: &str = "tspa0";
const BR_B: &str = "tspb0";

/// A: port 1 a dummy port, port 2 the patch to B. B: port 1 the patch to
/// A, port 2 a dummy port.
fn patch_args(peer_of_a: &str, peer_of_b: &str) -> Vec<String> {
    let mut a: Vec<String> = [
        "--",
        "add-port",
        BR_A,
        peer_of_a,
        "--",
        "set",
        "Interface",
        peer_of_a,
        "type=patch",
    ]
    .map(String::from)
    .to_vec();
    a.push(format!("options:peer={peer_of_b}"));
    a.push("ofport_request=2".into());
    a.extend(
        [
            "--",
            "add-br",
            BR_B,
            "--",
            "set",
            "bridge",
            BR_B,
            "fail_mode=secure",
            "--",
            "add-port",
            BR_B,
            peer_of_b,
            "--",
            "set",
            "Interface",
            peer_of_b,
            "type=patch",
        ]
        .map(String::from),
    );
    a.push(format!("options:peer={peer_of_a}"));
    a.push("ofport_request=1".into());
    a.extend(
        [
            "--",
            "add-port",
            BR_B,
            "tspb1",
            "--",
            "set",
            "Interface",
            "tspb1",
            "type=dummy",
            "ofport_request=2",
        ]
        .map(String::from),
    );
    a
}

const FLOWS_A: &str = "\
table=0,priority=10,in_port=1,actions=output:2
table=2,priority=10,ip,actions=goto_table:3
table=3,priority=10,udp,actions=output:2
";

const FLOWS_B: &str = "\
table=0,priority=10,in_port=1,actions=goto_table:3
table=3,priority=10,ip,actions=output:2
";

fn udp_frame() -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0x77, 2, 0x02, 0, 0, 0, 0x77, 1, 0x08, 0x00];
    // IPv4 10.77.0.1 -> 10.77.0.2, UDP 53 -> 53, no payload.
    let mut ip = vec![
        0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 77, 0, 1, 10, 77, 0, 2,
    ];
    let mut s: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    ip[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
    f.extend(ip);
    f.extend([0, 53, 0, 53, 0, 8, 0, 0]);
    while f.len() < 60 {
        f.push(0);
    }
    f
}

fn arp_frame() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend([0x02, 0, 0, 0, 0x77, 1, 0x08, 0x06]);
    f.extend([0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend([0x02, 0, 0, 0, 0x77, 1, 10, 77, 0, 1]);
    f.extend([0, 0, 0, 0, 0, 0, 10, 77, 0, 2]);
    while f.len() < 60 {
        f.push(0);
    }
    f
}

/// The (lookup, matched) deltas of tables 0..=4.
fn delta(now: &BTreeMap<u8, (u64, u64)>, before: &BTreeMap<u8, (u64, u64)>) -> Vec<(u64, u64)> {
    (0..=4u8)
        .map(|t| {
            let (l, m) = now.get(&t).copied().unwrap_or_default();
            let (bl, bm) = before.get(&t).copied().unwrap_or_default();
            (l - bl, m - bm)
        })
        .collect()
}

/// `n_packets` of every rule, by "table,match" as ovs-ofctl prints it.
fn rule_packets(target: &str) -> Result<BTreeMap<String, u64>> {
    let text = run(Command::new("ovs-ofctl").args(["-O", "OpenFlow13", "dump-flows", target]))?;
    let mut out = BTreeMap::new();
    for l in text.lines().skip(1) {
        let parts: Vec<&str> = l.trim().split(", ").collect();
        let get = |name: &str| parts.iter().find_map(|p| p.strip_prefix(name));
        let (Some(t), Some(n)) = (get("table="), get("n_packets=")) else {
            continue;
        };
        let rest = parts.last().copied().unwrap_or_default();
        let m = rest.split(" actions=").next().unwrap_or_default();
        out.insert(format!("{t},{m}"), n.parse()?);
    }
    Ok(out)
}

#[test]
fn packet_out_and_patch_peer_lookups_credit_table_stats_like_stock_ovs() -> Result<()> {
    require!("ovs-vswitchd", "ovsdb-server", "ovs-ofctl");
    let (ovs, fv) = dummy_pair("tsp-ovs-", BR_A, &["tspa1"])?;
    let args = patch_args("tspa-pb", "tspb-pa");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut ovs_args = args.clone();
    ovs_args.extend(["--", "set", "bridge", BR_B, "datapath_type=dummy"]);
    ovs.vsctl(&ovs_args)?;
    fv.vsctl(&args)?;
    // ferrovs's LOCAL ports are kernel TAPs: keep the kernel's own IPv6
    // chatter out of the tables.
    let mgmt = |br: &str| format!("unix:{}", fv.rundir().join(format!("{br}.mgmt")).display());
    let targets = |br: &str| [ovs.mgmt(br), mgmt(br)];
    for br in [BR_A, BR_B] {
        let ok = wait_until(Duration::from_secs(20), || {
            std::path::Path::new(&mgmt(br)[5..]).exists()
                && ip(&["link", "set", br, "down"]).is_ok()
        });
        assert!(ok, "ferrovs bridge {br} did not come up");
    }
    for (br, flows) in [(BR_A, FLOWS_A), (BR_B, FLOWS_B)] {
        let file = fv.rundir().join(format!("{br}-flows.txt"));
        std::fs::write(&file, flows)?;
        for t in targets(br) {
            run(Command::new("ovs-ofctl")
                .args(["-O", "OpenFlow13", "add-flows", &t])
                .arg(&file))?;
        }
    }
    let before: Vec<[BTreeMap<u8, (u64, u64)>; 2]> = [BR_A, BR_B]
        .iter()
        .map(|br| {
            let [o, f] = targets(br);
            Ok([table_counts(&o)?, table_counts(&f)?])
        })
        .collect::<Result<_>>()?;

    // Through a port: A's table 0 sends to the patch port; B looks up in
    // table 0 and 3 (the ARP frames miss table 3). Repeats hit the caches.
    let (udp, arp) = (hex(&udp_frame()), hex(&arp_frame()));
    for f in [&udp, &udp, &udp, &udp, &arp, &arp] {
        ovs.appctl(&["netdev-dummy/receive", "tspa1", f])?;
        fv.appctl(&["netdev-dummy/receive", "tspa1", f])?;
    }
    // Packet-outs on A: output:TABLE (through A's table 0 into B), and
    // resubmits into A's tables 2 and 3, and 4 (a miss).
    let [ovs_a, fv_a] = targets(BR_A);
    for t in [&ovs_a, &fv_a] {
        for acts in [
            "output:TABLE",
            "output:TABLE",
            "resubmit(,2)",
            "resubmit(,4)",
        ] {
            run(Command::new("ovs-ofctl").args([
                "-O",
                "OpenFlow13",
                "packet-out",
                t,
                "1",
                acts,
                &udp,
            ]))?;
        }
    }
    // Cached packets reach the tables on the next revalidation (both
    // switches): wait until B's table 0 has counted all nine.
    for (t, b) in targets(BR_B).iter().zip(&before[1]) {
        let ok = wait_until(Duration::from_secs(15), || {
            table_counts(t).is_ok_and(|now| delta(&now, b)[0].0 >= 9)
        });
        assert!(ok, "{t}: table 0 of {BR_B} never counted 9 lookups");
    }
    if let Err(e) = ovs.appctl(&["revalidator/wait"]) {
        eprintln!("revalidator/wait: {e}");
    }
    let mut got = Vec::new();
    for (i, br) in [BR_A, BR_B].iter().enumerate() {
        let [o, f] = targets(br);
        let od = delta(&table_counts(&o)?, &before[i][0]);
        let fd = delta(&table_counts(&f)?, &before[i][1]);
        got.push((br, od.clone()));
        assert_eq!(
            fd, od,
            "{br} tables 0..4: ferrovs (left), stock OVS (right)"
        );
        assert_eq!(
            rule_packets(&f)?,
            rule_packets(&o)?,
            "{br} rule counters: ferrovs (left), stock OVS (right)"
        );
    }
    // What the flows imply: A's table 0 sees the 6 frames and the 2
    // output:TABLE packet-outs, its tables 2 and 3 the first resubmit, 4
    // the missing one; B's table 0 sees those 8 and the resubmitted UDP
    // packet, its table 3 matches the 7 IPv4 ones.
    assert_eq!(
        got[0].1,
        vec![(8, 8), (0, 0), (1, 1), (1, 1), (1, 0)],
        "stock OVS, {BR_A}"
    );
    assert_eq!(
        got[1].1,
        vec![(9, 9), (0, 0), (0, 0), (9, 7), (0, 0)],
        "stock OVS, {BR_B}"
    );
    Ok(())
}
