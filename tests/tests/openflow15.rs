//! Issue 13, the protocol side: OpenFlow 1.4 and 1.5 against the real
//! daemon. Stock `ovs-ofctl -O OpenFlow15` manages flows and groups and
//! prints exactly what ferrovs's `ofctl` prints; `--bundle` is atomic in
//! 1.3, 1.4 and 1.5; stock `ovn-controller`, which speaks only 1.5, gets
//! past version negotiation on the bridge's management socket.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};
use ferrovs_tests::*;

fn ovs_ofctl(args: &[&str]) -> Result<String> {
    run(Command::new("ovs-ofctl").args(args))
}

/// A switch with one bridge and no ports; returns the switch, the bridge
/// and its management socket as `unix:PATH`.
fn switch_with_bridge(tag: &str) -> Result<(Switch, String, String)> {
    let sw = Switch::start()?;
    let br = format!("{tag}b");
    sw.vsctl(&["add-br", &br])?;
    let sock = sw.rundir().join(format!("{br}.mgmt"));
    if !wait_until(Duration::from_secs(10), || sock.exists()) {
        bail!("no management socket {}", sock.display());
    }
    let target = format!("unix:{}", sock.display());
    Ok((sw, br, target))
}

fn write_file(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, text)?;
    Ok(p)
}

const FLOWS: &str = "\
table=0,priority=100,ip,nw_dst=10.0.0.0/24,actions=output:1
table=0,priority=90,arp,actions=NORMAL
table=0,priority=50,in_port=2,dl_vlan=10,actions=mod_vlan_vid:20,output:3
table=1,priority=10,tcp,tp_dst=80,reg1=0x5,actions=set_field:0x7->reg2,resubmit(,2)
table=2,priority=1,cookie=0x42,actions=drop
";

#[test]
fn stock_ovs_ofctl_openflow15_flow_and_group_commands_print_what_ofctl_prints() -> Result<()> {
    require!("ovs-ofctl");
    let tag = unique_tag();
    let (sw, br, target) = switch_with_bridge(&tag)?;
    let dir = tempfile::Builder::new().prefix("of15-").tempdir()?;
    let flows = write_file(dir.path(), "flows.txt", FLOWS)?;
    let flows = flows.to_str().unwrap_or_default();

    let same = |what: &str, ours: &[&str], theirs: &[&str]| -> Result<String> {
        let mut o = vec!["-O", "OpenFlow15"];
        o.extend_from_slice(ours);
        let ours = sw.ofctl(&o)?;
        let mut t = vec!["-O", "OpenFlow15"];
        t.extend_from_slice(theirs);
        let theirs = ovs_ofctl(&t)?;
        assert_eq!(ours, theirs, "{what}: ofctl and ovs-ofctl disagree");
        Ok(ours)
    };

    ovs_ofctl(&["-O", "OpenFlow15", "add-flows", &target, flows])?;
    let dump = same(
        "after add-flows",
        &["--no-stats", "dump-flows", &br],
        &["--no-stats", "dump-flows", &target],
    )?;
    // The five flows and the bridge's own `priority=0 actions=NORMAL`.
    assert_eq!(dump.lines().count(), 6, "{dump}");
    assert!(
        dump.contains(
            "priority=10,tcp,reg1=0x5,tp_dst=80 actions=set_field:0x7->reg2,resubmit(,2)"
        ),
        "{dump}"
    );

    ovs_ofctl(&[
        "-O",
        "OpenFlow15",
        "mod-flows",
        &target,
        // No table: every table (OFPTT_ALL), as ovs-ofctl sends it.
        "ip,actions=output:2",
    ])?;
    let dump = same(
        "after mod-flows",
        &["--no-stats", "dump-flows", &br],
        &["--no-stats", "dump-flows", &target],
    )?;
    assert!(
        dump.contains("priority=100,ip,nw_dst=10.0.0.0/24 actions=output:2"),
        "{dump}"
    );

    ovs_ofctl(&["-O", "OpenFlow15", "del-flows", &target, "table=1"])?;
    let dump = same(
        "after del-flows",
        &["--no-stats", "dump-flows", &br],
        &["--no-stats", "dump-flows", &target],
    )?;
    assert_eq!(dump.lines().count(), 5, "{dump}");
    assert!(!dump.contains("table=1"), "{dump}");

    ovs_ofctl(&[
        "-O",
        "OpenFlow15",
        "add-group",
        &target,
        "group_id=5,type=select,bucket=weight:10,actions=output:1,bucket=weight:20,actions=output:2",
    ])?;
    ovs_ofctl(&[
        "-O",
        "OpenFlow15",
        "add-group",
        &target,
        "group_id=6,type=all,bucket=actions=output:1,bucket=actions=output:3",
    ])?;
    let groups = same(
        "dump-groups",
        &["dump-groups", &br],
        &["dump-groups", &target],
    )?;
    assert!(
        groups.contains(
            "group_id=5,type=select,bucket=bucket_id:0,weight:10,actions=output:1,bucket=bucket_id:1,weight:20,actions=output:2"
        ),
        "{groups}"
    );
    // A group made by ofctl reads back the same way through ovs-ofctl.
    sw.ofctl(&[
        "-O",
        "OpenFlow15",
        "add-group",
        &br,
        "group_id=7,type=indirect,bucket=actions=output:4",
    ])?;
    let groups = same(
        "dump-groups after ofctl add-group",
        &["dump-groups", &br],
        &["dump-groups", &target],
    )?;
    assert!(groups.contains("group_id=7,type=indirect"), "{groups}");
    for cmd in ["show", "dump-ports-desc", "dump-tables"] {
        let out = ovs_ofctl(&["-O", "OpenFlow15", cmd, &target])?;
        assert!(out.contains("(OF1.5)"), "{cmd}: {out}");
    }
    Ok(())
}

/// A bundle whose last flow fails (check_overlap against an earlier flow
/// of the same bundle) leaves the table exactly as it was, in every
/// version that has bundles; the error names the failing flow.
#[test]
fn bundle_with_one_bad_flow_leaves_the_table_exactly_as_it_was() -> Result<()> {
    require!("ovs-ofctl");
    let tag = unique_tag();
    let (sw, br, target) = switch_with_bridge(&tag)?;
    let dir = tempfile::Builder::new().prefix("of15-").tempdir()?;
    let good = write_file(dir.path(), "good.txt", FLOWS)?;
    let bad = write_file(
        dir.path(),
        "bad.txt",
        "priority=7,udp,actions=output:1\n\
         priority=8,icmp,actions=output:2\n\
         priority=200,ip,actions=output:3\n\
         check_overlap,priority=200,ip,nw_src=10.0.0.1,actions=output:4\n",
    )?;
    let (good, bad) = (
        good.to_str().unwrap_or_default(),
        bad.to_str().unwrap_or_default(),
    );
    ovs_ofctl(&["-O", "OpenFlow15", "--bundle", "add-flows", &target, good])?;
    let before = sw.ofctl(&["--no-stats", "-O", "OpenFlow15", "dump-flows", &br])?;
    // The five flows and the bridge's own `priority=0 actions=NORMAL`.
    assert_eq!(before.lines().count(), 6, "{before}");
    for v in ["OpenFlow13", "OpenFlow14", "OpenFlow15"] {
        let out = run_output(Command::new("ovs-ofctl").args([
            "-O",
            v,
            "--bundle",
            "add-flows",
            &target,
            bad,
        ]))?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{v}: the bundle must fail");
        assert!(err.contains("OFPFMFC_OVERLAP"), "{v}: {err}");
        let after = sw.ofctl(&["--no-stats", "-O", "OpenFlow15", "dump-flows", &br])?;
        assert_eq!(after, before, "{v}: the failed bundle changed the table");
        // ferrovs's ofctl sends the same bundle and fails the same way.
        let out = sw.tool_output("ofctl", &["-O", v, "--bundle", "add-flows", &br, bad])?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{v}: ofctl's bundle must fail");
        assert!(err.contains("OFPFMFC_OVERLAP"), "{v}: {err}");
        assert!(err.contains("OFPBFC_MSG_FAILED"), "{v}: {err}");
        let after = sw.ofctl(&["--no-stats", "-O", "OpenFlow15", "dump-flows", &br])?;
        assert_eq!(
            after, before,
            "{v}: ofctl's failed bundle changed the table"
        );
    }
    // replace-flows and del-flows as bundles.
    let fixed = write_file(
        dir.path(),
        "fixed.txt",
        &std::fs::read_to_string(bad)?.replace("check_overlap,", ""),
    )?;
    sw.ofctl(&[
        "--bundle",
        "replace-flows",
        &br,
        fixed.to_str().unwrap_or_default(),
    ])?;
    let after = sw.ofctl(&["--no-stats", "-O", "OpenFlow15", "dump-flows", &br])?;
    assert_eq!(after.lines().count(), 4, "{after}");
    assert!(
        after.contains("priority=8,icmp actions=output:2"),
        "{after}"
    );
    sw.ofctl(&["--bundle", "del-flows", &br])?;
    let after = sw.ofctl(&["--no-stats", "dump-flows", &br])?;
    assert!(after.trim().is_empty(), "{after}");
    Ok(())
}

/// Stock ovn-controller (OpenFlow 1.5 only) against ferrovs: it creates
/// its integration bridge in ferrovs's DB, connects to the bridge's
/// management socket and negotiates version 0x06 on every connection
/// (flow programming, features, packet-in); NXT_SET_PACKET_IN_FORMAT is
/// accepted without an error.
#[test]
fn ovn_controller_negotiates_openflow15_on_the_integration_bridge() -> Result<()> {
    require!("ovn-controller", "ovn-northd", "ovsdb-server", "ovsdb-tool");
    let tag = unique_tag();
    let sw = Switch::start()?;
    let d = sw.rundir().to_path_buf();
    let ovn = d.join("ovn");
    std::fs::create_dir_all(&ovn)?;
    let central = ferrovs_tests::ovn::OvnCentral::start(&ovn)?;
    let mut guards = Vec::new();
    // The integration bridge's internal port is a host interface: give it
    // this test's own name.
    let br = format!("{tag}i");
    sw.vsctl(&[
        "set",
        "Open_vSwitch",
        ".",
        &format!("external_ids:system-id={tag}"),
        &format!("external_ids:ovn-remote={}", central.sb_remote()),
        "external_ids:ovn-encap-type=geneve",
        "external_ids:ovn-encap-ip=127.0.0.1",
        "external_ids:ovn-bridge-datapath-type=netdev",
        &format!("external_ids:ovn-bridge={br}"),
    ])?;
    let log = ovn.join("ovn-controller.log");
    let controller = Command::new("ovn-controller")
        .arg(sw.db_remote())
        .arg(format!("--log-file={}", log.display()))
        .arg("-vconsole:off")
        .arg("-vfile:vconn:dbg")
        .env("OVS_RUNDIR", &d)
        .env("OVN_RUNDIR", &ovn)
        .env("OVN_LOGDIR", &ovn)
        .spawn()?;
    guards.push(ChildGuard(Some(controller)));
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    // Three connections: ofctrl, features and pinctrl.
    let negotiated = |t: &str| {
        t.matches(&format!("{br}.mgmt: negotiated OpenFlow version 0x06"))
            .count()
    };
    // ovn-controller connects as soon as it has created the bridge, before
    // the switch has made its management socket, and a connection that
    // failed retries only when ovn-controller's main loop wakes (it has no
    // timer of its own for the features connection). A DB change wakes
    // the loop, as any change would in a real deployment.
    let mut nudges = 0;
    if !wait_until(Duration::from_secs(60), || {
        let t = text();
        if negotiated(&t) >= 3 && t.contains("NXT_SET_PACKET_IN_FORMAT") {
            return true;
        }
        nudges += 1;
        if nudges % 50 == 0 {
            let _ = sw.vsctl(&[
                "set",
                "Open_vSwitch",
                ".",
                &format!("external_ids:test-nudge={nudges}"),
            ]);
        }
        false
    }) {
        bail!("ovn-controller did not negotiate 1.5:\n{}", text());
    }
    let t = text();
    assert!(!t.contains("version negotiation failed"), "{t}");
    let listed = sw.vsctl(&["list-br"])?;
    assert!(listed.contains(&br), "{listed}");
    // The packet-in format request got no error: the next thing the
    // pinctrl connection hears about is the SET_CONFIG exchange, not an
    // OFPT_ERROR naming its xid.
    let pif_xid = t
        .lines()
        .find(|l| l.contains("sent (Success): NXT_SET_PACKET_IN_FORMAT"))
        .and_then(|l| l.split("(xid=").nth(1))
        .and_then(|s| s.split(')').next())
        .map(str::to_string)
        .unwrap_or_default();
    assert!(!pif_xid.is_empty(), "{t}");
    std::thread::sleep(Duration::from_secs(1));
    let t = text();
    assert!(
        !t.contains(&format!("received: OFPT_ERROR (OF1.5) (xid={pif_xid})")),
        "NXT_SET_PACKET_IN_FORMAT was refused:\n{t}"
    );
    drop(guards);
    Ok(())
}
