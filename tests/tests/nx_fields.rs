//! Issue 13 (Nicira/ONF match fields, conjunctive matches, prerequisites),
//! with stock Open vSwitch as the oracle: the same flows go into ferrovs and
//! into `ovs-vswitchd --enable-dummy`, through stock `ovs-ofctl`, and what
//! both give back (flow dumps, traces, errors) must agree.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use ferrovs_tests::*;

/// A stock ovs-vswitchd (userspace, dummy datapath) with one bridge whose
/// ports 1 and 2 are dummy ports, on a private run directory.
struct OvsBridge {
    ovs: StockOvs,
    br: String,
}

impl OvsBridge {
    fn start(br: &str) -> Result<OvsBridge> {
        let ovs = StockOvs::start("nxfields-ovs-")?;
        ovs.vsctl(&[
            "add-br",
            br,
            "--",
            "set",
            "bridge",
            br,
            "datapath_type=netdev",
        ])?;
        for i in 1..=2 {
            let p = format!("{br}p{i}");
            let req = format!("ofport_request={i}");
            ovs.vsctl(&[
                "add-port",
                br,
                &p,
                "--",
                "set",
                "Interface",
                &p,
                "type=dummy",
                &req,
            ])?;
        }
        Ok(OvsBridge {
            ovs,
            br: br.to_string(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.ovs.dir().join(name)
    }

    fn target(&self) -> String {
        self.ovs.mgmt(&self.br)
    }

    fn appctl(&self, args: &[&str]) -> Result<String> {
        self.ovs.appctl(args)
    }
}

fn ovs_ofctl(target: &str, cmd: &str, args: &[&str]) -> Result<String> {
    run(Command::new("ovs-ofctl")
        .args(["-O", "OpenFlow13", cmd, target])
        .args(args))
}

/// Flow lines of a dump, without statistics, sorted.
fn flow_lines(dump: &str) -> Vec<String> {
    let mut v: Vec<String> = dump
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("actions="))
        .map(|l| {
            // Drop "cookie=..., duration=..., ..., n_bytes=N, " if present.
            l.split(", ")
                .filter(|part| {
                    ![
                        "cookie=",
                        "duration=",
                        "n_packets=",
                        "n_bytes=",
                        "idle_age=",
                        "hard_age=",
                    ]
                    .iter()
                    .any(|p| part.starts_with(p))
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    v.sort();
    v
}

/// Flows using the new fields, conjunctions and Nicira field actions.
const FLOWS: &[&str] = &[
    "priority=100,reg8=5,reg15=0x10/0xf0,pkt_mark=3,tcp,tp_dst=80,actions=output:2",
    "priority=90,tun_id=0x5,tun_src=1.2.3.4,tun_dst=5.6.7.0/24,tun_flags=+oam,tun_gbp_id=5,tun_gbp_flags=1,ip,actions=drop",
    "priority=80,ct_state=+trk+est-rel,ct_zone=5,ct_mark=0x4/0xf,ct_label=0x10/0xff,ip,actions=output:1",
    "priority=70,ct_state=-inv+trk,ct_nw_src=1.1.1.1,ct_nw_dst=1.1.1.0/24,ct_nw_proto=6,ct_tp_src=0x10/0xf0,ct_tp_dst=80,ip,actions=drop",
    "priority=60,xreg4=7,xxreg1=0x1234/0xffff,ip,actions=drop",
    "priority=55,tun_ipv6_src=::1,tun_ipv6_dst=2001:db8::/32,ipv6,actions=drop",
    "priority=40,ip,nw_dst=10.9.9.9,actions=move:NXM_NX_TUN_ID[0..31]->NXM_NX_REG8[],load:0x5->NXM_NX_PKT_MARK[],set_field:0x6->reg12,set_field:0x7->tun_id,output:1",
    "priority=30,ip,nw_src=10.0.0.1,actions=conjunction(1,1/2)",
    "priority=30,ip,nw_src=10.0.0.2,actions=conjunction(1,1/2),conjunction(2,1/2)",
    "priority=30,tcp,tp_dst=80,actions=conjunction(1,2/2)",
    "priority=30,udp,tp_dst=53,actions=conjunction(2,2/2)",
    "priority=30,conj_id=1,ip,actions=output:2",
    "priority=30,conj_id=2,ip,actions=output:1",
    "priority=1,actions=drop",
];

#[test]
fn nicira_fields_and_conjunctions_dump_like_stock_ovs() -> Result<()> {
    require!("ovs-ofctl", "ovs-vswitchd", "ovsdb-server", "ovsdb-tool");
    let tag = unique_tag();
    let br = format!("{tag}n");
    let sw = Switch::start()?;
    sw.vsctl(&["add-br", &br])?;
    let ours = format!("unix:{}", sw.rundir().join(format!("{br}.mgmt")).display());
    let ovs = OvsBridge::start(&br)?;
    for target in [&ours, &ovs.target()] {
        ovs_ofctl(target, "del-flows", &[])?;
        for f in FLOWS {
            ovs_ofctl(target, "add-flow", &[f]).with_context(|| format!("{target}: {f}"))?;
        }
    }
    let stock = flow_lines(&ovs_ofctl(&ovs.target(), "dump-flows", &[])?);
    let from_ours = flow_lines(&ovs_ofctl(&ours, "dump-flows", &[])?);
    assert_eq!(stock.len(), FLOWS.len(), "{stock:#?}");
    assert_eq!(
        from_ours, stock,
        "stock ovs-ofctl reads different flows back from ferrovs than from OVS"
    );
    // ferrovs's own ofctl prints them as ovs-ofctl does.
    let own = flow_lines(&sw.ofctl(&["-O", "OpenFlow13", "dump-flows", &br])?);
    assert_eq!(own, stock, "ferrovs ofctl output differs from ovs-ofctl's");
    Ok(())
}

#[test]
fn conjunctive_matches_pick_the_rules_stock_ovs_picks() -> Result<()> {
    require!("ovs-ofctl", "ovs-vswitchd", "ovsdb-server", "ovsdb-tool");
    let tag = unique_tag();
    // ferrovs traces need real ports 1 and 2: two veth hosts.
    let (sw, br, _hosts) = bridge_with_hosts(&tag, 76, 2)?;
    let ours = format!("unix:{}", sw.rundir().join(format!("{br}.mgmt")).display());
    let ovs = OvsBridge::start(&br)?;
    for target in [&ours, &ovs.target()] {
        ovs_ofctl(target, "del-flows", &[])?;
        for f in FLOWS {
            ovs_ofctl(target, "add-flow", &[f])?;
        }
    }
    // The table rule lines of a trace: " 0. MATCH, priority N".
    let rules = |trace: &str| -> Vec<String> {
        trace
            .lines()
            .filter(|l| l.trim_start().starts_with("0. "))
            // ferrovs prints a zero cookie, OVS 3.1 does not.
            .map(|l| l.trim().trim_end_matches(", cookie 0x0").to_string())
            .collect()
    };
    for pkt in [
        "tcp,nw_src=10.0.0.1,nw_dst=10.0.0.9,tp_dst=80",
        "tcp,nw_src=10.0.0.2,nw_dst=10.0.0.9,tp_dst=443",
        "tcp,nw_src=10.0.0.3,nw_dst=10.0.0.9,tp_dst=80",
        "udp,nw_src=10.0.0.2,nw_dst=10.0.0.9,udp_dst=53",
        "udp,nw_src=10.0.0.1,nw_dst=10.0.0.9,udp_dst=53",
        "tcp,nw_src=10.0.0.5,nw_dst=10.9.9.9,tp_dst=80",
    ] {
        let flow = format!("in_port=1,{pkt}");
        let stock = ovs.appctl(&["ofproto/trace", &br, &flow])?;
        let mine = sw.appctl(&["ofproto/trace", &br, &flow])?;
        let want = rules(&stock);
        assert!(!want.is_empty(), "{stock}");
        assert_eq!(rules(&mine), want, "{pkt}\nOVS:\n{stock}\nferrovs:\n{mine}");
    }
    Ok(())
}

#[test]
fn set_field_without_its_prerequisite_is_refused_like_stock_ovs() -> Result<()> {
    require!("ovs-ofctl", "ovs-vswitchd", "ovsdb-server", "ovsdb-tool");
    let tag = unique_tag();
    let br = format!("{tag}p");
    let sw = Switch::start()?;
    sw.vsctl(&["add-br", &br])?;
    let ours = sw.rundir().join(format!("{br}.mgmt"));
    let ovs = OvsBridge::start(&br)?;
    let theirs = ovs.path(&format!("{br}.mgmt"));
    // An OpenFlow 1.3 flow_mod (ovs-ofctl refuses to send it) with an empty
    // match and apply_actions(set_field:10.0.0.1->ip_dst), then the same
    // with `ip` in the match.
    let bad = unhex(
        "04 0e 00 50 00 00 00 02 0000000000000000 0000000000000000
                   00 00 0000 0000 8000 ffffffff ffffffff ffffffff 0000 0000
                   0001 0004 00000000
                   0004 0018 00000000 0019 0010 80001804 0a000001 00000000",
    );
    let good = unhex(
        "04 0e 00 58 00 00 00 03 0000000000000000 0000000000000000
                    00 00 0000 0000 8000 ffffffff ffffffff ffffffff 0000 0000
                    0001 000a 80000a02 0800 000000000000
                    0004 0018 00000000 0019 0010 80001804 0a000001 00000000",
    );
    for t in [&ours, &theirs] {
        ovs_ofctl(&format!("unix:{}", t.display()), "del-flows", &[])?;
    }
    let stock_bad = openflow13_error(&theirs, &bad)?;
    assert_eq!(stock_bad, Some((2, 10)), "OVS: OFPBAC_MATCH_INCONSISTENT");
    assert_eq!(openflow13_error(&ours, &bad)?, stock_bad);
    assert_eq!(openflow13_error(&theirs, &good)?, None);
    assert_eq!(openflow13_error(&ours, &good)?, None);
    // Flow stats give the match back as installed, prerequisite included.
    let target = format!("unix:{}", ours.display());
    let stock = flow_lines(&ovs_ofctl(&ovs.target(), "dump-flows", &[])?);
    let mine = flow_lines(&ovs_ofctl(&target, "dump-flows", &[])?);
    assert_eq!(
        stock,
        vec!["table=0, ip actions=set_field:10.0.0.1->ip_dst".to_string()]
    );
    assert_eq!(mine, stock);
    Ok(())
}
