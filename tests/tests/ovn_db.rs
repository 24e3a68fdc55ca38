//! Issue 16, the DB side under stock OVN (Debian's OVN 23.03): an unmodified
//! ovn-controller on ferrovs registers its chassis, creates `br-int` and the
//! `netdev` `Datapath` row, reads the capabilities ferrovs writes there, and
//! talks to the DB with `monitor_cond_since` (no fallback).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Result;
use ferrovs_tests::*;

/// A stock OVSDB server or OVN daemon in the foreground, killed on drop.
fn daemon(dir: &Path, prog: &str, args: &[String]) -> Result<ChildGuard> {
    Ok(ChildGuard(Some(
        Command::new(prog)
            .args(args)
            .envs([
                ("OVN_RUNDIR", dir),
                ("OVN_LOGDIR", dir),
                ("OVN_DBDIR", dir),
                ("OVS_RUNDIR", dir),
                ("OVS_LOGDIR", dir),
                ("OVS_DBDIR", dir),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    )))
}

#[test]
fn stock_ovn_controller_registers_and_builds_br_int_on_ferrovs() -> Result<()> {
    require!(
        "ovsdb-tool",
        "ovsdb-server",
        "ovn-northd",
        "ovn-controller",
        "ovn-sbctl",
        "ovs-vsctl"
    );
    let central = tempfile::Builder::new()
        .prefix("ovndb-central-")
        .tempdir()?;
    let c = central.path();
    let p = |name: &str| c.join(name).display().to_string();
    for (db, schema) in [("nb.db", "ovn-nb"), ("sb.db", "ovn-sb")] {
        run(Command::new("ovsdb-tool").args([
            "create",
            &p(db),
            &format!("/usr/share/ovn/{schema}.ovsschema"),
        ]))?;
    }
    let mut keep = Vec::new();
    for (db, name) in [("nb.db", "nb"), ("sb.db", "sb")] {
        keep.push(daemon(
            c,
            "ovsdb-server",
            &[
                p(db),
                format!("--remote=punix:{}", p(&format!("{name}.sock"))),
                format!("--unixctl={}", p(&format!("{name}.ctl"))),
                format!("--log-file={}", p(&format!("{name}.log"))),
            ],
        )?);
    }
    assert!(wait_until(Duration::from_secs(10), || c
        .join("nb.sock")
        .exists()
        && c.join("sb.sock").exists()));
    keep.push(daemon(
        c,
        "ovn-northd",
        &[
            format!("--ovnnb-db=unix:{}", p("nb.sock")),
            format!("--ovnsb-db=unix:{}", p("sb.sock")),
            format!("--unixctl={}", p("northd.ctl")),
            format!("--log-file={}", p("northd.log")),
        ],
    )?);

    let sw = Switch::start()?;
    let vsctl = |args: &[&str]| {
        run(Command::new("ovs-vsctl")
            .arg(format!("--db={}", sw.db_remote()))
            .arg("--timeout=10")
            .args(args))
    };
    let chassis = format!("{}hv", unique_tag());
    vsctl(&[
        "set",
        "Open_vSwitch",
        ".",
        &format!("external_ids:system-id={chassis}"),
        &format!("external_ids:ovn-remote=unix:{}", p("sb.sock")),
        "external_ids:ovn-encap-type=geneve",
        "external_ids:ovn-encap-ip=192.0.2.1",
        "external_ids:ovn-bridge-datapath-type=netdev",
    ])?;
    let ctl_dir = tempfile::Builder::new().prefix("ovndb-ctl-").tempdir()?;
    let log = ctl_dir.path().join("ovn-controller.log");
    let _controller = ChildGuard(Some(
        Command::new("ovn-controller")
            .arg(sw.db_remote())
            .arg(format!("--log-file={}", log.display()))
            .arg("-vjsonrpc:file:dbg")
            .env("OVS_RUNDIR", sw.rundir())
            .env("OVN_RUNDIR", ctl_dir.path())
            .env("OVN_LOGDIR", ctl_dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    ));
    let sbctl = |args: &[&str]| {
        run(Command::new("ovn-sbctl")
            .arg(format!("--db=unix:{}", p("sb.sock")))
            .args(args))
        .unwrap_or_default()
    };
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(30), || sbctl(&[
            "--bare",
            "--columns=name",
            "list",
            "Chassis"
        ])
        .contains(&chassis)),
        "the chassis did not register; ovn-controller log:\n{}",
        log_text()
    );
    let br = |col: &str| {
        vsctl(&["get", "Bridge", "br-int", col])
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(20), || br("fail_mode") == "secure"),
        "br-int not created; log:\n{}",
        log_text()
    );
    assert_eq!(br("datapath_type"), "netdev");
    // ovn-controller gives br-int a hwaddr: the datapath id follows it, as in OVS.
    let hwaddr = br("other_config:hwaddr").trim_matches('"').replace(':', "");
    assert_eq!(hwaddr.len(), 12, "{}", br("other_config"));
    assert!(wait_until(Duration::from_secs(10), || br("datapath_id")
        == format!("\"0000{hwaddr}\"")));
    // The Datapath row ovn-controller made carries ferrovs's capabilities.
    let caps =
        || vsctl(&["--bare", "--columns=capabilities", "list", "Datapath"]).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || caps()
            .contains("ct_zero_snat=false")),
        "{}",
        caps()
    );
    // A VM port keeps the iface-id ovn-controller reads.
    let vm = format!("{}v", unique_tag());
    vsctl(&[
        "add-port",
        "br-int",
        &vm,
        "--",
        "set",
        "Interface",
        &vm,
        "type=internal",
        "external_ids:iface-id=lsp-vm",
    ])?;
    assert_eq!(
        vsctl(&["get", "Interface", &vm, "external_ids:iface-id"])?.trim(),
        "lsp-vm"
    );
    let log = log_text();
    assert!(
        log.contains("method=\"monitor_cond_since\", params=[\"Open_vSwitch\""),
        "ovn-controller did not use monitor_cond_since on the switch's DB:\n{log}"
    );
    assert!(!log.contains("unknown method"), "{log}");
    drop(keep);
    Ok(())
}
