//! DPDK testpmd (virtio-user, which takes VIRTIO_F_IN_ORDER when offered)
//! as the vhost-user frontend of two ports: frames circulate through the
//! switch in an io loop, and `dpif-netdev/pmd-perf-show` accounts the
//! cycles of every stage they pass.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferrovs_tests::*;

/// The `label: value` lines of `pmd-perf-show` (labels without the `- `).
fn perf_counters(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (label, rest) = l.trim().split_once(':')?;
            let v = rest.split_whitespace().next()?.parse().ok()?;
            Some((label.trim_start_matches("- ").to_string(), v))
        })
        .collect()
}

#[test]
fn testpmd_io_loop_with_in_order_rings_circulates_and_every_stage_is_accounted() -> Result<()> {
    io_loop("", "split")
}

#[test]
fn testpmd_io_loop_over_packed_in_order_rings_circulates_and_the_ports_report_packed() -> Result<()>
{
    io_loop(",packed_vq=1", "packed")
}

/// testpmd's io loop over two ports, its virtio-user devices given the
/// extra devargs `extra`: frames circulate, every stage is accounted, and
/// the ports report the ring layout `layout`.
fn io_loop(extra: &str, layout: &str) -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    require_tool("dpdk-testpmd");
    let tag = unique_tag();
    let sw = Switch::start()?;
    let br = format!("{tag}b");
    sw.vsctl(&["add-br", &br])?;
    let ports = [format!("{tag}p0"), format!("{tag}p1")];
    for (i, p) in ports.iter().enumerate() {
        let req = format!("ofport_request={}", i + 1);
        sw.vsctl(&[
            "add-port",
            &br,
            p,
            "--",
            "set",
            "Interface",
            p,
            "type=dpdkvhostuser",
            &req,
        ])?;
    }
    let socks: Vec<_> = ports.iter().map(|p| sw.rundir().join(p)).collect();
    assert!(
        wait_until(Duration::from_secs(20), || socks.iter().all(|s| s.exists())),
        "vhost-user sockets not created"
    );
    let log = sw.rundir().join("testpmd.log");
    let prefix = format!("ferrovs-{tag}");
    let vdev = |i: usize| {
        format!(
            "net_virtio_user{i},path={},queues=1,in_order=1{extra}",
            socks[i].display()
        )
    };
    let mut tp = ChildGuard(Some(
        Command::new("stdbuf")
            .args(["-oL", "dpdk-testpmd", "-l", "0,1", "--main-lcore", "1"])
            .args(["--no-huge", "-m", "512", "--no-pci"])
            .arg(format!("--file-prefix={prefix}"))
            .args(["--vdev", &vdev(0), "--vdev", &vdev(1)])
            .args(["--", "-i", "--forward-mode=io", "--nb-cores=1"])
            .arg("--total-num-mbufs=32768")
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&log)?)
            .stderr(Stdio::null())
            .spawn()
            .context("dpdk-testpmd")?,
    ));
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    if !wait_until(Duration::from_secs(60), || text().contains("testpmd> ")) {
        bail!("testpmd did not start:\n{}", text());
    }
    let up = |p: &str| {
        sw.vsctl(&["get", "Interface", p, "link_state"])
            .is_ok_and(|s| s.trim() == "up")
    };
    assert!(
        wait_until(Duration::from_secs(30), || ports.iter().all(|p| up(p))),
        "vhost ports did not come up; switch log:\n{}",
        sw.log_text()
    );
    sw.appctl(&["dpif-netdev/pmd-stats-clear"])?;
    let stdin = tp.child().stdin.as_mut().context("testpmd stdin")?;
    stdin.write_all(b"start tx_first 4\n")?;
    stdin.flush()?;

    // 4 bursts of 32 frames per port: far more than that through the switch
    // means the frames go round and round.
    let mut perf = String::new();
    let circulating = wait_until(Duration::from_secs(60), || {
        perf = sw
            .appctl(&["dpif-netdev/pmd-perf-show"])
            .unwrap_or_default();
        perf_counters(&perf).get("Rx packets").copied().unwrap_or(0) > 100_000
    });
    let layouts: Vec<String> = ports
        .iter()
        .map(|p| {
            sw.vsctl(&["get", "Interface", p, "status:vring_layout"])
                .map(|l| l.trim().trim_matches('"').to_string())
                .unwrap_or_default()
        })
        .collect();
    let stdin = tp.child().stdin.as_mut().context("testpmd stdin")?;
    let _ = stdin.write_all(b"stop\nquit\n");
    let _ = stdin.flush();
    assert!(
        circulating,
        "the loop does not circulate:\n{perf}\ntestpmd:\n{}\nswitch log:\n{}",
        text(),
        sw.log_text()
    );
    let c = perf_counters(&perf);
    for stage in ["receive", "parse", "emc", "execute", "send"] {
        assert!(
            c.get(stage).copied().unwrap_or(0) > 0,
            "no cycles for {stage}:\n{perf}"
        );
    }
    assert!(c["busy iterations"] > 0 && c["Iterations"] >= c["busy iterations"]);
    assert!(c["EMC hits"] > 0, "{perf}");
    assert_eq!(layouts, [layout, layout], "ring layout the ports report");
    assert_eq!(
        sw.vsctl(&["get", "Interface", &ports[0], "error"])?.trim(),
        "[]",
        "no malformed frame or ring error"
    );
    tp.kill();
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    Ok(())
}
