//! Conntrack timeout policies from the DB and zone limits, end to end
//! (issue 15), on a ferrovs bridge with dummy ports (`netdev-dummy/receive`).
//!
//! - Stock `ovs-vsctl add-zone-tp netdev zone=5 udp_first=1 ...` against
//!   ferrovs's DB gives zone 5 short UDP timeouts: a UDP connection
//!   committed in zone 5 leaves `dpctl/dump-conntrack` while the same
//!   5-tuple committed in zone 6 stays; `list-zone-tp` and `del-zone-tp`
//!   work, and after `del-zone-tp` zone 5 is back to the defaults. The
//!   Datapath row claims `ct_timeout`.
//! - `dpctl/ct-set-limits zone=7,limit=3`: of five UDP flows committed in
//!   zones 7 and 8, zone 7 holds three and zone 8 all five; the refused
//!   commits are counted. The limits commands print what stock OVS 3.1
//!   prints for the same command sequence.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use ferrovs_tests::*;

const BR: &str = "ctpol0";
const PORTS: [&str; 2] = ["ctpolp1", "ctpolp2"];

fn csum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for p in parts {
        for c in p.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet/IPv4/UDP frame 10.63.0.1:sport -> 10.63.0.2:dport with
/// valid checksums, as hex for `netdev-dummy/receive`.
fn udp_hex(sport: u16, dport: u16) -> String {
    let (src, dst) = ([10, 63, 0, 1], [10, 63, 0, 2]);
    let payload = b"ctpol";
    let ulen = 8 + payload.len() as u16;
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&ulen.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&ulen.to_be_bytes());
    let c = csum(&[&pseudo, &udp]);
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(20 + ulen).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = csum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = vec![2, 0, 0, 0, 0, 0x0b, 2, 0, 0, 0, 0, 0x0a, 0x08, 0x00];
    f.extend_from_slice(&ip);
    f.extend_from_slice(&udp);
    f.iter().map(|b| format!("{b:02x}")).collect()
}

/// ferrovs with bridge `BR` (fail_mode secure) and two dummy ports.
fn switch_with_dummy_ports() -> Result<Switch> {
    let sw = Switch::start()?;
    let mut args: Vec<String> = ["add-br", BR, "--", "set", "bridge", BR, "fail_mode=secure"]
        .map(String::from)
        .to_vec();
    for (i, p) in PORTS.iter().enumerate() {
        for a in [
            "--",
            "add-port",
            BR,
            p,
            "--",
            "set",
            "Interface",
            p,
            "type=dummy",
        ] {
            args.push(a.into());
        }
        args.push(format!("ofport_request={}", i + 1));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sw.vsctl(&args)?;
    Ok(sw)
}

/// Stock `ovs-vsctl` against ferrovs's DB.
fn stock_vsctl(sw: &Switch, args: &[&str]) -> Result<String> {
    run(Command::new("ovs-vsctl")
        .arg(format!("--db={}", sw.db_remote()))
        .arg("--timeout=20")
        .args(args))
}

/// The lines of `dpctl/dump-conntrack zone=Z`.
fn conns(sw: &Switch, zone: u16) -> Result<Vec<String>> {
    Ok(sw
        .appctl(&["dpctl/dump-conntrack", &format!("zone={zone}")])?
        .lines()
        .map(String::from)
        .collect())
}

fn inject(sw: &Switch, sport: u16) -> Result<()> {
    sw.appctl(&["netdev-dummy/receive", PORTS[0], &udp_hex(sport, 53)])?;
    Ok(())
}

#[test]
fn zone_timeout_policy_from_stock_vsctl_expires_its_zone_and_not_another() -> Result<()> {
    require!("ovs-vsctl");
    let sw = switch_with_dummy_ports()?;
    // The same datagram is committed in zone 5 and, as a second
    // connection, in zone 6.
    sw.ofctl(&[
        "add-flow",
        BR,
        "in_port=1,udp,actions=ct(commit,zone=5),ct(commit,zone=6)",
    ])?;

    // As with stock OVS, the Datapath row is created by whoever wants it;
    // then `add-zone-tp` adds a CT_Zone and its CT_Timeout_Policy.
    let dp = create_datapath_row(|a| stock_vsctl(&sw, a), "netdev")?;
    let dp = dp.trim().to_owned();
    stock_vsctl(
        &sw,
        &[
            "add-zone-tp",
            "netdev",
            "zone=5",
            "udp_first=1",
            "udp_single=1",
            "udp_multiple=1",
        ],
    )?;
    assert_eq!(
        stock_vsctl(&sw, &["list-zone-tp", "netdev"])?,
        "Zone:5, Timeout Policies: udp_first=1 udp_multiple=1 udp_single=1\n"
    );
    let claims = wait_until(Duration::from_secs(10), || {
        stock_vsctl(&sw, &["get", "Datapath", &dp, "capabilities:ct_timeout"])
            .is_ok_and(|v| v.trim() == "\"true\"")
    });
    assert!(claims, "the Datapath row does not claim ct_timeout");

    inject(&sw, 1001)?;
    let both = wait_until(
        Duration::from_secs(10),
        || matches!((conns(&sw, 5), conns(&sw, 6)), (Ok(a), Ok(b)) if a.len() == 1 && b.len() == 1),
    );
    assert!(
        both,
        "the datagram was not committed in both zones: {:?} {:?}; log:\n{}",
        conns(&sw, 5),
        conns(&sw, 6),
        sw.log_text()
    );
    assert!(conns(&sw, 5)?[0].contains("sport=1001,dport=53"));

    // Zone 5's connection times out after its policy's second; zone 6's
    // has OVS's default (udp_first, 60 s) and is still there.
    let gone = wait_until(Duration::from_secs(30), || {
        conns(&sw, 5).is_ok_and(|c| c.is_empty())
    });
    assert!(gone, "zone 5 still holds {:?}", conns(&sw, 5)?);
    assert_eq!(conns(&sw, 6)?.len(), 1, "zone 6 lost its connection");

    // del-zone-tp: zone 5 is back to the defaults, so a new connection
    // there outlives the old policy's timeout several times over.
    stock_vsctl(&sw, &["del-zone-tp", "netdev", "zone=5"])?;
    assert_eq!(stock_vsctl(&sw, &["list-zone-tp", "netdev"])?, "");
    assert!(
        stock_vsctl(&sw, &["del-zone-tp", "netdev", "zone=5"]).is_err(),
        "deleting a zone twice succeeded"
    );
    inject(&sw, 1002)?;
    assert!(wait_until(Duration::from_secs(10), || {
        conns(&sw, 5).is_ok_and(|c| c.len() == 1)
    }));
    std::thread::sleep(Duration::from_secs(4));
    let left = conns(&sw, 5)?;
    assert_eq!(left.len(), 1, "zone 5 kept the deleted policy: {left:?}");
    assert!(left[0].contains("sport=1002"));
    Ok(())
}

#[test]
fn zone_limit_of_three_admits_three_of_five_flows_and_leaves_other_zones_alone() -> Result<()> {
    require!("ovs-appctl");
    let sw = switch_with_dummy_ports()?;
    sw.ofctl(&[
        "add-flow",
        BR,
        "in_port=1,udp,actions=ct(commit,zone=7),ct(commit,zone=8)",
    ])?;
    assert_eq!(sw.appctl(&["dpctl/ct-set-limits", "zone=7,limit=3"])?, "");
    for sport in 2001..=2005 {
        inject(&sw, sport)?;
    }
    let all = wait_until(Duration::from_secs(10), || {
        conns(&sw, 8).is_ok_and(|c| c.len() == 5)
    });
    assert!(all, "zone 8 holds {:?}", conns(&sw, 8)?);
    assert_eq!(conns(&sw, 7)?.len(), 3, "{:?}", conns(&sw, 7)?);
    assert_eq!(
        sw.appctl(&["dpctl/ct-get-limits", "zone=7,8"])?,
        "default limit=0\nzone=7,limit=3,count=3\nzone=8,limit=0,count=5\n"
    );
    // How many commits the zone limit refused (coverage/show).
    let refused = || -> Result<String> {
        let cov = sw.appctl(&["coverage/show"])?;
        Ok(cov
            .lines()
            .find(|l| l.starts_with("conntrack_zone_full"))
            .and_then(|l| l.rsplit("total: ").next())
            .context(cov.clone())?
            .trim()
            .to_string())
    };
    assert_eq!(refused()?, "2");

    // The refused flows were not committed: with the limit raised they
    // commit now, and the zone's count follows.
    sw.appctl(&["dpctl/ct-set-limits", "zone=7,limit=4"])?;
    inject(&sw, 2004)?;
    assert!(wait_until(Duration::from_secs(10), || {
        conns(&sw, 7).is_ok_and(|c| c.len() == 4)
    }));
    inject(&sw, 2005)?;
    // Processed once the limit refused it (not after a fixed sleep).
    assert!(
        wait_until(Duration::from_secs(10), || refused()
            .is_ok_and(|r| r == "3")),
        "the fifth flow was not refused: {:?}",
        refused()
    );
    assert_eq!(conns(&sw, 7)?.len(), 4);
    // Deleting the zone's limit returns it to the default (unlimited).
    sw.appctl(&["dpctl/ct-del-limits", "zone=7"])?;
    inject(&sw, 2005)?;
    assert!(wait_until(Duration::from_secs(10), || {
        conns(&sw, 7).is_ok_and(|c| c.len() == 5)
    }));
    Ok(())
}

#[test]
fn ct_limits_commands_print_what_stock_ovs_prints() -> Result<()> {
    require!("ovs-vswitchd", "ovsdb-server", "ovs-appctl", "ovs-vsctl");
    let ovs = StockOvs::start("ctpol-ovs-")?;
    ovs.vsctl(&[
        "add-br",
        BR,
        "--",
        "set",
        "bridge",
        BR,
        "datapath_type=netdev",
    ])?;
    let sw = switch_with_dummy_ports()?;
    // Commands whose output does not depend on connection counts (3.1
    // counts default-limited zones together; ferrovs counts each zone).
    let steps: &[&[&str]] = &[
        &["dpctl/ct-get-limits"],
        &["dpctl/ct-set-limits", "default=10", "zone=3,limit=5"],
        &["dpctl/ct-get-limits"],
        &["dpctl/ct-get-limits", "zone=3,7"],
        &["dpctl/ct-set-limits", "zone=4,limit=0", "limit=2,zone=9"],
        &["dpctl/ct-get-limits"],
        &["dpctl/ct-del-limits", "zone=3"],
        &["dpctl/ct-del-limits", "zone=3,9"],
        &["dpctl/ct-get-limits"],
        &["dpctl/ct-set-limits", "netdev@ovs-netdev", "zone=8,limit=2"],
        &["dpctl/ct-get-limits", "netdev@ovs-netdev"],
        &["dpctl/ct-set-limits", "default=0"],
        &["dpctl/ct-get-limits", "zone=8,4,12"],
    ];
    for step in steps {
        let o = ovs
            .appctl(step)
            .with_context(|| format!("stock OVS {step:?}"))?;
        let f = sw
            .appctl(step)
            .with_context(|| format!("ferrovs {step:?}"))?;
        assert_eq!(f, o, "{step:?}: ferrovs (left) and stock OVS (right)");
    }
    // What stock OVS refuses, ferrovs refuses too (and keeps running).
    let refused: &[&[&str]] = &[
        &["dpctl/ct-set-limits", "zone=70000,limit=3"],
        &["dpctl/ct-set-limits", "zone=3"],
        &["dpctl/ct-set-limits", "bogus"],
        &["dpctl/ct-set-limits", "default=x"],
        &["dpctl/ct-set-limits", "zone=3,limit=4", "default=5"],
        &["dpctl/ct-get-limits", "zone=x"],
        &["dpctl/ct-del-limits", "zone=3,limit=4"],
        &["dpctl/ct-del-limits", "default"],
    ];
    for step in refused {
        assert!(ovs.appctl(step).is_err(), "stock OVS accepted {step:?}");
        let out = sw.tool_output("appctl", step)?;
        assert!(!out.status.success(), "ferrovs accepted {step:?}");
    }
    assert_eq!(
        sw.appctl(&["dpctl/ct-get-limits"])?,
        ovs.appctl(&["dpctl/ct-get-limits"])?
    );
    Ok(())
}
