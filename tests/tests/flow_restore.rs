//! `other_config:flow-restore-wait`, the hot-upgrade procedure of
//! ovs-vswitchd.conf.db(5): a switch restarted with it set forwards nothing
//! and contacts no controller until the flows are restored and the key goes
//! back to false; then it forwards with exactly the restored flows.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::Result;
use ferrovs_tests::*;

/// `n_packets` of the flow whose text contains `needle` in `dump-flows`.
fn n_packets(dump: &str, needle: &str) -> Option<u64> {
    let line = dump.lines().find(|l| l.contains(needle))?;
    let v = line.split("n_packets=").nth(1)?;
    v.split(',').next()?.trim().parse().ok()
}

#[test]
fn a_restart_with_flow_restore_wait_forwards_only_after_the_flows_are_restored() -> Result<()> {
    require!();
    let tag = unique_tag();
    let (sw, br, hosts) = bridge_with_hosts(&tag, 73, 2)?;
    // A secure bridge has no default flow: only the restored ones forward.
    sw.vsctl(&["set-fail-mode", &br, "secure"])?;
    let flows = "in_port=1,actions=output:2\nin_port=2,actions=output:1\n";
    let file = sw.rundir().join("flows.txt");
    std::fs::write(&file, flows)?;
    sw.ofctl(&["add-flows", &br, file.to_str().unwrap_or_default()])?;
    assert!(
        hosts[0]
            .ns
            .ping_eventually(&hosts[1].addr, Duration::from_secs(15))
    );

    // The procedure: set the key, restart, restore, clear the key.
    sw.vsctl(&[
        "set",
        "Open_vSwitch",
        ".",
        "other_config:flow-restore-wait=true",
    ])?;
    // Set at run time, it already stops the datapath receiving.
    assert!(
        wait_until(Duration::from_secs(5), || !hosts[0]
            .ns
            .ping(&hosts[1].addr, 1)),
        "a running switch still forwards with flow-restore-wait=true"
    );
    let sw = sw.kill_and_restart()?;
    // A controller is configured; nothing may connect to it yet.
    let ctl = TcpListener::bind("127.0.0.1:0")?;
    ctl.set_nonblocking(true)?;
    let ctl_addr: SocketAddr = ctl.local_addr()?;
    sw.vsctl(&["set-controller", &br, &format!("tcp:{ctl_addr}")])?;
    assert!(wait_until(Duration::from_secs(10), || sw
        .ofctl(&["show", &br])
        .is_ok()));
    // Ports are open (the DB says so) but nothing is forwarded.
    assert!(wait_until(Duration::from_secs(10), || sw
        .vsctl(&["get", "Interface", &hosts[1].port, "ofport"])
        .is_ok_and(|p| p.trim() == "2")));
    assert!(
        !hosts[0].ns.ping(&hosts[1].addr, 3),
        "packets were forwarded before the flows were restored"
    );
    // Restore through the management socket, which works meanwhile.
    sw.ofctl(&["add-flows", &br, file.to_str().unwrap_or_default()])?;
    assert!(
        !hosts[0].ns.ping(&hosts[1].addr, 2),
        "packets were forwarded while flow-restore-wait was still true"
    );
    assert!(
        ctl.accept().is_err(),
        "vswitchd connected to its controller during flow-restore-wait"
    );
    let dump = sw.ofctl(&["dump-flows", &br])?;
    assert_eq!(n_packets(&dump, "in_port=1"), Some(0), "{dump}");

    sw.vsctl(&[
        "remove",
        "Open_vSwitch",
        ".",
        "other_config",
        "flow-restore-wait",
    ])?;
    assert!(
        hosts[0]
            .ns
            .ping_eventually(&hosts[1].addr, Duration::from_secs(15)),
        "no forwarding after flow-restore-wait ended; log:\n{}",
        sw.log_text()
    );
    let dump = sw.ofctl(&["dump-flows", &br])?;
    assert!(
        n_packets(&dump, "in_port=1").is_some_and(|n| n > 0)
            && n_packets(&dump, "in_port=2").is_some_and(|n| n > 0),
        "the restored flows did not carry the traffic:\n{dump}"
    );
    assert!(
        wait_until(Duration::from_secs(15), || ctl.accept().is_ok()),
        "vswitchd did not connect to its controller after flow-restore-wait ended"
    );
    Ok(())
}
