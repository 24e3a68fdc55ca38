//! The reason a packet-in carries, per OpenFlow version, compared with
//! stock OVS (dummy datapath, the same flows and packets): a table-miss
//! rule's CONTROLLER output is `no_match` from OpenFlow 1.3 on and
//! `action` in 1.0; one from a group bucket or the action set is `group`
//! / `action_set` in 1.4+ and `action` before. Read from stock
//! `ovs-ofctl monitor` on each switch.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use ferrovs_tests::*;

const BR: &str = "pirb0";
const PORTS: [&str; 2] = ["pirp1", "pirp2"];

const FLOWS: &str = "\
priority=0,actions=CONTROLLER:64
priority=10,udp,actions=group:1
priority=10,tcp,actions=write_actions(output:CONTROLLER)
";

/// The ethertype of the probe frames (IEEE local experimental), as
/// `ovs-ofctl monitor` prints it in a packet-in's flow.
const PROBE_TYPE: &str = "dl_type=0x88b5";

/// An Ethernet frame of `ethertype`: for IPv4, a packet of protocol
/// `proto` (UDP or TCP) from port 40000 to 80; otherwise zeros; padded to
/// 60 bytes.
fn frame(ethertype: u16, proto: u8) -> String {
    let mut f = vec![0x02, 0, 0, 0, 0x51, 2, 0x02, 0, 0, 0, 0x51, 1];
    f.extend(ethertype.to_be_bytes());
    if ethertype == 0x0800 {
        f.extend([0x45, 0, 0, 40, 0, 1, 0, 0, 64, proto, 0, 0]);
        f.extend([10, 81, 0, 1, 10, 81, 0, 2]);
        f.extend([0x9c, 0x40, 0, 80]);
        if proto == 6 {
            // seq, ack, data offset 5, SYN, window.
            f.extend([0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        } else {
            f.extend([0, 8, 0, 0]);
        }
    }
    while f.len() < 60 {
        f.push(0);
    }
    hex(&f)
}

/// The `(via REASON)` of every packet-in `ovs-ofctl -O version monitor`
/// prints while `send` runs (three packets expected), once `probe` (which
/// injects a [`PROBE_TYPE`] frame) has shown that the monitor listens.
fn reasons(
    dir: &std::path::Path,
    target: &str,
    version: &str,
    probe: &dyn Fn() -> Result<()>,
    send: &dyn Fn() -> Result<()>,
) -> Result<Vec<String>> {
    let out = dir.join(format!("monitor-{version}.txt"));
    let file = std::fs::File::create(&out)?;
    let mut mon = ChildGuard(Some(
        // Line-buffered: the monitor's output is read while it runs.
        Command::new("stdbuf")
            .env("OVS_RUNDIR", dir)
            .args([
                "-oL",
                "ovs-ofctl",
                "-O",
                version,
                "monitor",
                target,
                "65534",
            ])
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()?,
    ));
    // The packet-ins printed so far: (reason, whether it is a probe).
    let read = || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        text.split("PACKET_IN")
            .skip(1)
            .filter_map(|block| {
                let (_, r) = block.split_once("(via ")?;
                let (r, _) = r.split_once(')')?;
                Some((r.to_string(), block.contains(PROBE_TYPE)))
            })
            .collect::<Vec<_>>()
    };
    // The monitor is listening once a probe (a table miss of its own
    // ethertype) comes back as a packet-in; probes are sent until one
    // does, and left out of the result. A fixed wait lost the packet-ins
    // when the monitor connected late.
    let probing = wait_until(Duration::from_secs(30), || {
        probe().is_ok() && wait_until(Duration::from_secs(1), || read().iter().any(|(_, p)| *p))
    });
    anyhow::ensure!(
        probing,
        "{version} monitor of {target} never showed a probe:\n{}",
        std::fs::read_to_string(&out).unwrap_or_default()
    );
    send()?;
    let read = || {
        read()
            .into_iter()
            .filter(|(_, p)| !p)
            .map(|(r, _)| r)
            .collect::<Vec<_>>()
    };
    wait_until(Duration::from_secs(10), || read().len() >= 3);
    mon.kill();
    Ok(read())
}

#[test]
fn packet_in_reasons_per_version_match_stock_ovs() -> Result<()> {
    require!("ovs-vswitchd", "ovsdb-server", "ovs-ofctl", "stdbuf");
    let (ovs, fv) = dummy_pair("pir-ovs-", BR, &PORTS)?;
    // ferrovs's LOCAL port is a kernel TAP: keep the kernel's packets out.
    let fv_sock = fv.rundir().join(format!("{BR}.mgmt"));
    assert!(wait_until(Duration::from_secs(20), || fv_sock.exists()));
    ip(&["link", "set", BR, "down"])?;
    let fv_t = format!("unix:{}", fv_sock.display());
    let ovs_t = ovs.mgmt(BR);
    let file = fv.rundir().join("pir-flows.txt");
    std::fs::write(&file, FLOWS)?;
    for t in [&ovs_t, &fv_t] {
        let o13 = |args: &[&str]| {
            run(Command::new("ovs-ofctl")
                .args(["-O", "OpenFlow13"])
                .args(args))
        };
        o13(&[
            "add-group",
            t,
            "group_id=1,type=all,bucket=actions=output:CONTROLLER",
        ])?;
        o13(&["add-flows", t, &file.display().to_string()])?;
    }
    let frames = [frame(0x0806, 0), frame(0x0800, 17), frame(0x0800, 6)];
    let probe = frame(0x88b5, 0);
    let tmp = tempfile::Builder::new().prefix("pir-").tempdir()?;
    for version in ["OpenFlow10", "OpenFlow13", "OpenFlow14", "OpenFlow15"] {
        let o = reasons(
            tmp.path(),
            &ovs_t,
            version,
            &|| {
                ovs.appctl(&["netdev-dummy/receive", PORTS[0], &probe])
                    .map(drop)
            },
            &|| {
                for f in &frames {
                    ovs.appctl(&["netdev-dummy/receive", PORTS[0], f])?;
                }
                Ok(())
            },
        )?;
        let f = reasons(
            tmp.path(),
            &fv_t,
            version,
            &|| {
                fv.appctl(&["netdev-dummy/receive", PORTS[0], &probe])
                    .map(drop)
            },
            &|| {
                for f in &frames {
                    fv.appctl(&["netdev-dummy/receive", PORTS[0], f])?;
                }
                Ok(())
            },
        )?;
        assert_eq!(
            o.len(),
            3,
            "stock OVS, {version}: {o:?}\n{}",
            std::fs::read_to_string(tmp.path().join(format!("monitor-{version}.txt")))
                .unwrap_or_default()
        );
        assert_eq!(f, o, "{version}: ferrovs (left), stock OVS (right)");
    }
    Ok(())
}
