//! Issue 16 part 3 against the real daemon: `Interface.ofport_request` and
//! `Interface.mtu_request` as ovn-controller and stock `ovs-vsctl` set them.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use ferrovs_tests::*;

fn ovs_vsctl(sw: &Switch, args: &[&str]) -> Result<String> {
    run(Command::new("ovs-vsctl")
        .arg(format!("--db={}", sw.db_remote()))
        .arg("--timeout=10")
        .args(args))
}

/// The MTU of a device in the root namespace.
fn device_mtu(dev: &str) -> Option<u32> {
    let out = ip(&["-o", "link", "show", "dev", dev]).ok()?;
    let rest = out.split(" mtu ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

#[test]
fn ofport_request_and_mtu_request_are_honoured_and_reported() -> Result<()> {
    require!("ovs-vsctl");
    let tag = unique_tag();
    let sw = Switch::start()?;
    let br = format!("{tag}o");
    let h1 = VethHost::new(&tag, 1, "10.68.0.1/24")?;
    let int = format!("{tag}i");
    ovs_vsctl(&sw, &["add-br", &br])?;
    ovs_vsctl(
        &sw,
        &[
            "add-port",
            &br,
            &h1.port,
            "--",
            "set",
            "Interface",
            &h1.port,
            "ofport_request=7",
            "mtu_request=1300",
        ],
    )?;
    ovs_vsctl(
        &sw,
        &[
            "add-port",
            &br,
            &int,
            "--",
            "set",
            "Interface",
            &int,
            "type=internal",
            "ofport_request=12",
            "mtu_request=1400",
        ],
    )?;
    let get = |iface: &str, col: &str| {
        ovs_vsctl(&sw, &["get", "Interface", iface, col])
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(10), || get(&h1.port, "ofport") == "7"
            && get(&int, "ofport") == "12"),
        "ofports {} {}; log:\n{}",
        get(&h1.port, "ofport"),
        get(&int, "ofport"),
        sw.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(10), || device_mtu(&h1.port)
            == Some(1300)
            && device_mtu(&int) == Some(1400)),
        "device MTUs {:?} {:?}",
        device_mtu(&h1.port),
        device_mtu(&int)
    );
    assert!(
        wait_until(Duration::from_secs(10), || get(&h1.port, "mtu") == "1300"
            && get(&int, "mtu") == "1400"),
        "mtu column {} {}",
        get(&h1.port, "mtu"),
        get(&int, "mtu")
    );
    // A new request moves the port and changes the MTU.
    ovs_vsctl(
        &sw,
        &[
            "set",
            "Interface",
            &h1.port,
            "ofport_request=9",
            "mtu_request=1280",
        ],
    )?;
    assert!(
        wait_until(Duration::from_secs(10), || get(&h1.port, "ofport") == "9"
            && device_mtu(&h1.port) == Some(1280)
            && get(&h1.port, "mtu") == "1280"),
        "after the change: ofport {} mtu {:?}",
        get(&h1.port, "ofport"),
        device_mtu(&h1.port)
    );
    // An MTU the device refuses is an error on the row, and the daemon goes on.
    ovs_vsctl(&sw, &["set", "Interface", &int, "mtu_request=70000"])?;
    assert!(
        wait_until(Duration::from_secs(10), || get(&int, "error")
            .contains("cannot set MTU")),
        "error {}",
        get(&int, "error")
    );
    assert_eq!(device_mtu(&int), Some(1400));
    ovs_vsctl(&sw, &["set", "Interface", &int, "mtu_request=1450"])?;
    assert!(wait_until(Duration::from_secs(10), || device_mtu(&int)
        == Some(1450)
        && get(&int, "error") == "[]"));
    Ok(())
}
