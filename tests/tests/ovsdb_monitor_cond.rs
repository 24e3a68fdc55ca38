//! Issue 16 (what OVN asks of the DB), against the real daemon: stock
//! `ovs-vsctl` and the Python `ovs` IDL find the `_Server` database and use
//! `monitor_cond` / `monitor_cond_since` (no fallback to plain `monitor`), and
//! vswitchd reports what it supports and derives datapath ids as OVS does.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use ferrovs_tests::*;

/// The request methods a stock client sent, from its jsonrpc debug log.
fn methods_sent(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            let rest = l.split_once("send request, method=\"")?.1;
            Some(rest.split('"').next()?.to_string())
        })
        .collect()
}

fn ovs_vsctl(sw: &Switch, args: &[&str]) -> Result<String> {
    run(Command::new("ovs-vsctl")
        .arg(format!("--db={}", sw.db_remote()))
        .arg("--timeout=10")
        .args(args))
}

#[test]
fn stock_ovs_vsctl_uses_the_server_database_and_monitor_cond_since() -> Result<()> {
    require!("ovs-vsctl");
    let sw = Switch::start()?;
    let br = format!("{}m", unique_tag());
    // Without --no-wait: it also waits for vswitchd to copy next_cfg to cur_cfg.
    let out = run_output(
        Command::new("ovs-vsctl")
            .arg(format!("--db={}", sw.db_remote()))
            .args(["--timeout=10", "-vjsonrpc:console:dbg", "add-br", &br]),
    )?;
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let methods = methods_sent(&log);
    assert!(
        methods.iter().any(|m| m == "monitor_cond_since"),
        "{methods:?}"
    );
    assert!(
        !methods.iter().any(|m| m == "monitor"),
        "fell back to plain monitor: {methods:?}"
    );
    assert!(
        !log.contains("unknown method") && !log.contains("unknown database"),
        "{log}"
    );
    assert!(sw.vsctl(&["list-br"])?.contains(&br));
    Ok(())
}

#[test]
fn python_ovs_idl_follows_the_db_through_monitor_cond_since() -> Result<()> {
    require!("python3", "ovsdb-client", "ovs-vsctl");
    let sw = Switch::start()?;
    let br = format!("{}p", unique_tag());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/idl_monitor_cond.py");
    let out = run(Command::new("timeout")
        .arg("60")
        .arg("python3")
        .arg(script)
        .arg(sw.db_remote())
        .arg(&br))?;
    let methods = out
        .lines()
        .find_map(|l| l.strip_prefix("methods: "))
        .unwrap_or_default();
    assert!(methods.contains("monitor_cond(_Server)"), "{out}");
    assert!(
        methods.contains("monitor_cond_since(Open_vSwitch)"),
        "{out}"
    );
    assert!(!methods.contains("monitor(Open_vSwitch)"), "{out}");
    assert!(out.contains("errors: 0"), "{out}");
    assert!(out.contains(&format!("seen {br}")), "{out}");
    Ok(())
}

#[test]
fn vswitchd_reports_its_types_capabilities_and_ovs_datapath_ids() -> Result<()> {
    require!("ovs-vsctl");
    let sw = Switch::start()?;
    let br = format!("{}d", unique_tag());
    ovs_vsctl(
        &sw,
        &[
            "add-br",
            &br,
            "--",
            "set",
            "bridge",
            &br,
            "other_config:hwaddr=02:11:22:33:44:55",
            "other_config:disable-in-band=true",
        ],
    )?;
    let get = |args: &[&str]| ovs_vsctl(&sw, &[&["get"][..], args].concat());
    assert_eq!(
        get(&["Open_vSwitch", ".", "datapath_types"])?.trim(),
        "[netdev]"
    );
    let types = get(&["Open_vSwitch", ".", "iface_types"])?;
    // Tunnel types are listed since they forward (native tunnelling), and
    // patch since patch ports join bridges; nothing ferrovs lacks is.
    for t in [
        "internal",
        "system",
        "tap",
        "dpdkvhostuser",
        "vxlan",
        "geneve",
        "patch",
    ] {
        assert!(types.contains(t), "{t} missing from {types}");
    }
    for t in ["stt", "lisp", "bareudp", "erspan"] {
        assert!(!types.contains(t), "{t} in {types}");
    }
    assert!(
        wait_until(Duration::from_secs(10), || get(&[
            "Bridge",
            &br,
            "datapath_id"
        ])
        .is_ok_and(|d| d.trim() == "\"0000021122334455\"")),
        "datapath_id from hwaddr; log:\n{}",
        sw.log_text()
    );
    ovs_vsctl(
        &sw,
        &[
            "set",
            "bridge",
            &br,
            "other_config:datapath-id=0x00000000000000ab",
        ],
    )?;
    assert!(wait_until(Duration::from_secs(10), || get(&[
        "Bridge",
        &br,
        "datapath_id"
    ])
    .is_ok_and(|d| d.trim() == "\"00000000000000ab\"")));
    // A Datapath row, created as ovn-controller does, gets the capabilities.
    ovs_vsctl(
        &sw,
        &[
            "--",
            "--id=@dp",
            "create",
            "Datapath",
            "external_ids:owner=test",
            "--",
            "set",
            "Open_vSwitch",
            ".",
            "datapaths:netdev=@dp",
        ],
    )?;
    let list = |col: &str| {
        ovs_vsctl(
            &sw,
            &["--bare", &format!("--columns={col}"), "list", "Datapath"],
        )
        .unwrap_or_default()
    };
    let caps = || list("capabilities");
    assert!(
        wait_until(Duration::from_secs(10), || caps().contains("max_hash_alg")),
        "{}",
        caps()
    );
    let caps = caps();
    // Conntrack (h-ct) and native tunnelling (h-tun) run in the datapath.
    assert!(caps.contains("ct_state=true"), "{caps}");
    assert!(caps.contains("tnl_push_pop=true"), "{caps}");
    assert!(caps.contains("max_vlan_headers=2"), "{caps}");
    assert_eq!(list("external_ids").trim(), "owner=test");
    // The controller's Interface external_ids stay as written.
    ovs_vsctl(
        &sw,
        &[
            "set",
            "Interface",
            &br,
            "external_ids:iface-id=lsp1",
            "external_ids:attached-mac=\"02:00:00:00:00:01\"",
        ],
    )?;
    std::thread::sleep(Duration::from_secs(2));
    let ext = get(&["Interface", &br, "external_ids"])?;
    assert!(
        ext.contains("iface-id=lsp1") && ext.contains("attached-mac=\"02:00:00:00:00:01\""),
        "{ext}"
    );
    Ok(())
}
