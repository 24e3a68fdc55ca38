//! Issue 13, group properties: a select group's `selection_method`,
//! `selection_method_param` and `fields(...)` (Open vSwitch's OpenFlow 1.5
//! group property) set with stock `ovs-ofctl`, kept by ferrovs, dumped as
//! stock OVS dumps the same group, and used for the bucket choice: the
//! megaflow reads exactly the bits the hash reads, as OVS's does.

use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};
use ferrovs_tests::*;

const BR: &str = "gsel0";
const GROUPS: [&str; 3] = [
    "group_id=9,type=select,selection_method=hash,fields(ip_src,nw_proto,eth_dst=ff:ff:ff:00:00:00),selection_method_param=5,bucket=actions=output:2,bucket=actions=output:3",
    "group_id=12,type=select,selection_method=dp_hash,selection_method_param=7,bucket=actions=output:2",
    "group_id=15,type=select,selection_method=hash,fields(tcp_src),bucket=actions=output:2,bucket=actions=output:3",
];

fn ovs_ofctl(args: &[&str]) -> Result<String> {
    run(Command::new("ovs-ofctl").args(args))
}

/// The group lines of a dump-groups, sorted.
fn group_lines(dump: &str) -> Vec<String> {
    let mut v: Vec<String> = dump
        .lines()
        .filter(|l| l.trim_start().starts_with("group_id="))
        .map(|l| l.trim().to_string())
        .collect();
    v.sort();
    v
}

/// `Megaflow: ...` of a trace, as a set of its match fields.
fn megaflow_fields(trace: &str) -> Result<Vec<String>> {
    let Some(line) = trace.lines().find_map(|l| l.strip_prefix("Megaflow: ")) else {
        bail!("no megaflow in\n{trace}");
    };
    let mut v: Vec<String> = line.split(',').map(str::to_string).collect();
    v.sort();
    Ok(v)
}

#[test]
fn select_group_selection_methods_are_kept_dumped_like_ovs_and_hash_only_their_fields() -> Result<()>
{
    require!("ovs-ofctl", "ovs-vswitchd", "ovsdb-server");
    let (ovs, sw) = dummy_pair("gsel-ovs-", BR, &["gsel1", "gsel2", "gsel3"])?;
    let fv_mgmt = format!("unix:{}", sw.rundir().join(format!("{BR}.mgmt")).display());
    let fv_sock = sw.rundir().join(format!("{BR}.mgmt"));
    if !wait_until(Duration::from_secs(10), || fv_sock.exists()) {
        bail!("no management socket {}", fv_sock.display());
    }
    // ferrovs's LOCAL port is a kernel TAP: keep its chatter out.
    ip(&["link", "set", BR, "down"])?;
    for target in [ovs.mgmt(BR), fv_mgmt.clone()] {
        for g in GROUPS {
            ovs_ofctl(&["-O", "OpenFlow15", "add-group", &target, g])?;
        }
        ovs_ofctl(&[
            "-O",
            "OpenFlow15",
            "add-flow",
            &target,
            "in_port=1,ip,actions=group:9",
        ])?;
        ovs_ofctl(&[
            "-O",
            "OpenFlow15",
            "add-flow",
            &target,
            "in_port=2,tcp,actions=group:15",
        ])?;
    }

    // Dumped as stock OVS dumps its own copy, by stock ovs-ofctl and by ofctl.
    let theirs = group_lines(&ovs_ofctl(&[
        "-O",
        "OpenFlow15",
        "dump-groups",
        &ovs.mgmt(BR),
    ])?);
    assert_eq!(theirs.len(), 3, "{theirs:?}");
    let ours_stock = group_lines(&ovs_ofctl(&["-O", "OpenFlow15", "dump-groups", &fv_mgmt])?);
    assert_eq!(ours_stock, theirs);
    let ours = group_lines(&sw.ofctl(&["-O", "OpenFlow15", "dump-groups", BR])?);
    assert_eq!(ours, theirs);
    // OpenFlow 1.3 cannot carry the property: both leave it out.
    let theirs13 = group_lines(&ovs_ofctl(&[
        "-O",
        "OpenFlow13",
        "dump-groups",
        &ovs.mgmt(BR),
    ])?);
    let ours13 = group_lines(&sw.ofctl(&["-O", "OpenFlow13", "dump-groups", BR])?);
    assert_eq!(ours13, theirs13);
    assert!(ours13.iter().all(|l| !l.contains("selection_method")));

    // The bucket choice reads exactly the hashed bits: the megaflow has the
    // masked eth_dst, ip_src and the protocol, and no ports, as OVS's has.
    // (OVS also prints recirc_id, eth and nw_frag in every megaflow.)
    let ovs_only = ["recirc_id=0", "eth", "nw_frag=no"];
    for (flow, expect_in) in [
        (
            "in_port=1,tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=5,tp_dst=80",
            "dl_dst=00:00:00:00:00:00/ff:ff:ff:00:00:00",
        ),
        (
            "in_port=2,tcp,nw_src=10.0.0.1,tp_src=77,tp_dst=80",
            "tp_src=77",
        ),
    ] {
        let o = ovs.appctl(&["ofproto/trace", BR, flow])?;
        let f = sw.appctl(&["ofproto/trace", BR, flow])?;
        let mut o_fields = megaflow_fields(&o)?;
        o_fields.retain(|x| !ovs_only.contains(&x.as_str()));
        let f_fields = megaflow_fields(&f)?;
        assert_eq!(f_fields, o_fields, "{flow}\novs:\n{o}\nferrovs:\n{f}");
        assert!(f_fields.iter().any(|x| x == expect_in), "{f_fields:?}");
    }

    // Packets that differ only in what the hash does not read share a bucket.
    let out = |flow: &str| -> Result<String> {
        let t = sw.appctl(&["ofproto/trace", BR, flow])?;
        Ok(t.lines()
            .find_map(|l| l.strip_prefix("Datapath actions: "))
            .unwrap_or_default()
            .to_string())
    };
    let first = out("in_port=1,tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=5,tp_dst=80")?;
    for other in [
        "in_port=1,tcp,nw_src=10.0.0.1,nw_dst=10.9.9.9,tp_src=6,tp_dst=22",
        "in_port=1,tcp,nw_src=10.0.0.1,nw_dst=10.0.0.3,tp_src=1000,tp_dst=443",
    ] {
        assert_eq!(out(other)?, first, "{other}");
    }
    // Sources spread over both buckets.
    let mut seen = std::collections::BTreeSet::new();
    for i in 1..40 {
        seen.insert(out(&format!("in_port=1,tcp,nw_src=10.0.1.{i},tp_src=5"))?);
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    Ok(())
}
