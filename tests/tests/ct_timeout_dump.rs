//! `dpctl/dump-flows` prints the timeout policy of a committing `ct`
//! action, as stock OVS 3.1 does (issue 15): the same flows and packets on
//! stock OVS (dummy datapath) and ferrovs, with a timeout policy on zone 5
//! from stock `ovs-vsctl add-zone-tp`, give the same datapath `ct(...)`
//! actions: `timeout=` (OVS's userspace name of the policy: its id) on
//! commits in zone 5 of TCP and UDP, and not on commits in zone 6, not on
//! `ct` without commit, and not for a protocol timeout policies do not
//! cover.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use ferrovs_tests::ct_hosts::{AnySwitch, ipv4_frame, tcp_syn_l4, udp_l4};
use ferrovs_tests::*;

const BR: &str = "cttod0";
const PORTS: [&str; 2] = ["cttodp1", "cttodp2"];

const FLOWS: &str = "\
table=0,priority=10,udp,tp_dst=53,actions=ct(commit,zone=5),output:2
table=0,priority=10,tcp,tp_dst=80,actions=ct(commit,zone=5,exec(set_field:0x1->ct_mark)),output:2
table=0,priority=10,udp,tp_dst=54,actions=ct(commit,zone=6),output:2
table=0,priority=10,udp,tp_dst=55,actions=ct(zone=5,table=1)
table=0,priority=10,ip,nw_proto=47,actions=ct(commit,zone=5),output:2
table=0,priority=0,actions=drop
table=1,priority=0,actions=output:2
";

/// The `ct(...)` actions in `dpctl/dump-flows`.
fn ct_actions(dump: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for l in dump.lines() {
        let Some(acts) = l.split("actions:").nth(1) else {
            continue;
        };
        let mut rest = acts;
        while let Some(i) = rest.find("ct(") {
            let tail = &rest[i..];
            let mut depth = 0;
            let end = tail
                .char_indices()
                .find_map(|(j, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(j + 1);
                            }
                        }
                        _ => {}
                    }
                    None
                })
                .unwrap_or(tail.len());
            out.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    out
}

fn run_on(sw: &dyn AnySwitch, target: &str, dir: &std::path::Path) -> Result<BTreeSet<String>> {
    let file = dir.join("ct-tod-flows.txt");
    std::fs::write(&file, FLOWS)?;
    let loaded = wait_until(Duration::from_secs(20), || {
        sw.ofctl(&["add-flows", target, file.to_str().unwrap_or_default()])
            .is_ok()
    });
    anyhow::ensure!(loaded, "cannot load flows into {target}");
    let (a, b) = ([10, 64, 0, 1], [10, 64, 0, 2]);
    let frames = [
        ipv4_frame(a, b, 17, udp_l4(1000, 53, b"q")),
        ipv4_frame(a, b, 6, tcp_syn_l4(1001, 80, 7)),
        ipv4_frame(a, b, 17, udp_l4(1002, 54, b"q")),
        ipv4_frame(a, b, 17, udp_l4(1003, 55, b"q")),
        ipv4_frame(a, b, 47, vec![0, 0, 0x08, 0x00, 0x45, 0, 0, 20]),
    ];
    for f in &frames {
        sw.appctl(&["netdev-dummy/receive", PORTS[0], &hex(f)])?;
    }
    Ok(ct_actions(&sw.appctl(&["dpctl/dump-flows"])?))
}

#[test]
fn committing_ct_actions_in_a_zone_with_a_timeout_policy_print_its_timeout_as_in_stock_ovs()
-> Result<()> {
    require!("ovs-vswitchd", "ovsdb-server", "ovs-ofctl", "ovs-vsctl");
    let (ovs, fv) = dummy_pair("cttod-ovs-", BR, &PORTS)?;
    // The policy: on stock OVS for its bridge's datapath type (dummy), on
    // ferrovs for netdev, each through stock ovs-vsctl.
    let policy = ["zone=5", "udp_first=11", "udp_single=12", "tcp_syn_sent=13"];
    // Stock ovs-vsctl against stock OVS's DB, or against ferrovs's.
    let vsctl = |fv_db: Option<&str>, args: &[&str]| -> Result<String> {
        let mut c = match fv_db {
            Some(db) => {
                let mut c = Command::new("ovs-vsctl");
                c.arg(format!("--db={db}")).arg("--timeout=20");
                c
            }
            None => ovs.cmd("ovs-vsctl"),
        };
        run(c.args(args))
    };
    let fv_db = fv.db_remote();
    for (db, dp) in [(None, "dummy"), (Some(fv_db.as_str()), "netdev")] {
        create_datapath_row(|a| vsctl(db, a), dp)?;
        let mut args = vec!["add-zone-tp", dp];
        args.extend(policy);
        vsctl(db, &args)?;
    }

    let stock = run_on(&ovs, &ovs.mgmt(BR), ovs.dir()).context("stock OVS")?;
    let fv_target = format!("unix:{}", fv.rundir().join(format!("{BR}.mgmt")).display());
    let ours = run_on(&fv, &fv_target, fv.rundir())
        .with_context(|| format!("ferrovs; log:\n{}", fv.log_text()))?;
    // What the oracle says, spelled out: the policy shows on the zone-5
    // commits of UDP and TCP only.
    assert!(
        stock.iter().filter(|a| a.contains("timeout=")).count() == 2,
        "{stock:?}"
    );
    assert_eq!(ours, stock, "ferrovs (left) and stock OVS (right) differ");
    Ok(())
}
