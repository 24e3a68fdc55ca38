//! Issue "config DB" acceptance against the real daemon: stock `ovs-vsctl`
//! and the Python `ovs` IDL drive vswitchd, and acknowledged transactions
//! survive kill -9.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ferrovs_tests::*;

fn ovs_vsctl(sw: &Switch, args: &[&str]) -> Result<String> {
    let db = format!("--db={}", sw.db_remote());
    run(Command::new("ovs-vsctl")
        .arg(db)
        .arg("--timeout=60")
        .args(args))
}

#[test]
fn stock_ovs_vsctl_manages_bridges_and_ports_and_traffic_follows() -> Result<()> {
    require!("ovs-vsctl");
    let tag = unique_tag();
    let sw = Switch::start()?;
    let br = format!("{tag}b");
    let h1 = VethHost::new(&tag, 1, "10.67.0.1/24")?;
    let h2 = VethHost::new(&tag, 2, "10.67.0.2/24")?;

    // Without --no-wait ovs-vsctl waits for cur_cfg to reach next_cfg: it
    // only returns because vswitchd applied the change (otherwise its
    // --timeout fails it; how long it took is no assertion).
    let t = Instant::now();
    ovs_vsctl(&sw, &["add-br", &br])?;
    eprintln!("add-br took {:?}", t.elapsed());
    ovs_vsctl(&sw, &["add-port", &br, &h1.port])?;
    ovs_vsctl(&sw, &["add-port", &br, &h2.port])?;
    ovs_vsctl(&sw, &["set", "Bridge", &br, "external_ids:owner=test"])?;
    assert_eq!(
        ovs_vsctl(&sw, &["get", "Bridge", &br, "external_ids:owner"])?.trim(),
        "test"
    );
    let ports = ovs_vsctl(&sw, &["list-ports", &br])?;
    assert!(
        ports.contains(&h1.port) && ports.contains(&h2.port),
        "{ports}"
    );
    let show = ovs_vsctl(&sw, &["show"])?;
    assert!(show.contains(&format!("Bridge {br}")), "{show}");
    let ofport = ovs_vsctl(&sw, &["get", "Interface", &h1.port, "ofport"])?;
    assert!(
        ofport.trim().parse::<i64>().is_ok_and(|n| n > 0),
        "ofport not written back: {ofport}"
    );

    assert!(
        h1.ns.ping_eventually(&h2.addr, Duration::from_secs(15)),
        "no traffic after ovs-vsctl add-port; log:\n{}",
        sw.log_text()
    );
    ovs_vsctl(&sw, &["del-port", &br, &h2.port])?;
    assert!(
        !h1.ns.ping(&h2.addr, 2),
        "traffic still flows after del-port"
    );
    ovs_vsctl(&sw, &["add-port", &br, &h2.port])?;
    assert!(h1.ns.ping_eventually(&h2.addr, Duration::from_secs(15)));

    // A clear error for a missing bridge, and the DB is unchanged.
    let out = run_output(
        Command::new("ovs-vsctl")
            .arg(format!("--db={}", sw.db_remote()))
            .args(["add-port", "nosuchbr", "x"]),
    )?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no bridge named nosuchbr"));

    ovs_vsctl(&sw, &["del-br", &br])?;
    assert!(!ovs_vsctl(&sw, &["list-br"])?.contains(&br));
    Ok(())
}

#[test]
fn python_ovs_idl_monitors_and_commits_a_bridge_that_vswitchd_creates() -> Result<()> {
    require!("python3");
    let tag = unique_tag();
    let sw = Switch::start()?;
    let br = format!("{tag}i");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/idl_add_bridge.py");
    let out = run(Command::new("timeout")
        .arg("60")
        .arg("python3")
        .arg(script)
        .arg(sw.db_remote())
        .arg(&br))?;
    assert!(out.contains("committed"), "{out}");
    assert!(sw.vsctl(&["list-br"])?.contains(&br));
    // vswitchd applied it: the bridge's OpenFlow socket and internal device exist.
    let mgmt = sw.rundir().join(format!("{br}.mgmt"));
    assert!(
        wait_until(Duration::from_secs(10), || mgmt.exists()),
        "vswitchd did not create {}; log:\n{}",
        mgmt.display(),
        sw.log_text()
    );
    assert!(wait_until(Duration::from_secs(10), || ip(&[
        "link", "show", "dev", &br
    ])
    .is_ok()));
    Ok(())
}

#[test]
fn acknowledged_transactions_survive_kill_9_during_concurrent_load() -> Result<()> {
    require!("python3");
    let mut sw = Switch::start()?;
    let acked = sw.rundir().join("acked.txt");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ovsdb_hammer.py");
    let sock = sw.rundir().join("db.sock");
    let mut hammer = ChildGuard(Some(
        Command::new("python3")
            .arg(&script)
            .arg(&sock)
            .arg("4")
            .arg("2500")
            .arg(&acked)
            .spawn()?,
    ));
    // Let a good number of transactions through, then kill -9.
    assert!(
        wait_until(Duration::from_secs(60), || {
            std::fs::read_to_string(&acked)
                .map(|s| s.lines().count() >= 300)
                .unwrap_or(false)
        }),
        "the hammer made no progress; log:\n{}",
        sw.log_text()
    );
    sw.proc.kill();
    let _ = hammer.child().wait();
    let acked_keys: BTreeSet<String> = std::fs::read_to_string(&acked)?
        .lines()
        .map(str::to_string)
        .collect();
    assert!(!acked_keys.is_empty());

    // Restart on the same DB file.
    let Switch { rundir, db, .. } = sw;
    let sw = Switch::start_in(rundir, db)?;
    let out = sw.vsctl(&["get", "Open_vSwitch", ".", "external_ids"])?;
    let present: BTreeSet<String> = out
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("hammer-"))
        .map(str::to_string)
        .collect();
    let missing: Vec<_> = acked_keys.difference(&present).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged transactions lost after kill -9, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // And the DB still takes writes.
    let br = format!("{}k", unique_tag());
    sw.vsctl(&["add-br", &br])
        .context("DB not writable after restart")?;
    Ok(())
}

#[test]
fn a_port_that_cannot_be_opened_gets_an_error_and_the_bridge_keeps_working() -> Result<()> {
    require!();
    let tag = unique_tag();
    let sw = Switch::start()?;
    let br = format!("{tag}b");
    sw.vsctl(&["add-br", &br])?;
    let h1 = VethHost::new(&tag, 1, "10.68.0.1/24")?;
    let h2 = VethHost::new(&tag, 2, "10.68.0.2/24")?;
    let missing = format!("{tag}zz");
    sw.vsctl(&["add-port", &br, &h1.port])?;
    sw.vsctl(&["add-port", &br, &missing])?;
    sw.vsctl(&["add-port", &br, &h2.port])?;
    let error_set = wait_until(Duration::from_secs(10), || {
        sw.vsctl(&["get", "Interface", &missing, "error"])
            .map(|e| e.contains(&missing))
            .unwrap_or(false)
    });
    assert!(
        error_set,
        "no Interface.error for a missing device; log:\n{}",
        sw.log_text()
    );
    assert_eq!(
        sw.vsctl(&["get", "Interface", &missing, "ofport"])?.trim(),
        "-1"
    );
    assert!(
        h1.ns.ping_eventually(&h2.addr, Duration::from_secs(15)),
        "the bridge stopped working because of one bad port"
    );
    // An unknown interface type is refused the same way.
    let odd = format!("{tag}yy");
    add_port_with(|a| sw.vsctl(a), &br, &odd, &["type=stt"])?;
    assert!(wait_until(Duration::from_secs(10), || {
        sw.vsctl(&["get", "Interface", &odd, "error"])
            .map(|e| e.contains("Unsupported interface type"))
            .unwrap_or(false)
    }));
    // When the device appears, the switch opens it by itself.
    let peer = format!("{missing}p");
    ip(&[
        "link", "add", &missing, "type", "veth", "peer", "name", &peer,
    ])?;
    let opened = wait_until(Duration::from_secs(15), || {
        sw.vsctl(&["get", "Interface", &missing, "ofport"])
            .map(|p| p.trim().parse::<i64>().is_ok_and(|n| n > 0))
            .unwrap_or(false)
    });
    let _ = ip(&["link", "del", &missing]);
    assert!(
        opened,
        "the late device was not picked up; log:\n{}",
        sw.log_text()
    );
    Ok(())
}
