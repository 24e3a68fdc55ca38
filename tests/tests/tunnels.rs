//! Tunnel ports, the route table and the neighbour cache (issue 14), end to
//! end: a ferrovs vswitchd inside a namespace of its own, configured with
//! ferrovs's `vsctl` and stock `ovs-vsctl`, and stock Open vSwitch in a
//! twin namespace as the oracle for appctl output.
//!
//! Run under the e2e lock: `flock /tmp/ferrovs-e2e.lock cargo test -p
//! ferrovs-tests --test tunnels`.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferrovs_tests::tunnel_hosts::switch_in;
use ferrovs_tests::*;

fn tag() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "tnl{}{}",
        std::process::id() % 1000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Stock Open vSwitch (userspace datapath) with its vswitchd in `ns`.
struct StockOvs {
    dir: tempfile::TempDir,
}

impl StockOvs {
    fn start(ns: &Netns) -> Result<StockOvs> {
        let dir = tempfile::Builder::new()
            .prefix("ferrovs-tnl-ovs-")
            .tempdir()?;
        let d = dir.path().to_str().context("path")?.to_string();
        let env = |c: &mut Command| {
            c.env("OVS_RUNDIR", &d)
                .env("OVS_LOGDIR", &d)
                .env("OVS_DBDIR", &d);
        };
        let mut c = Command::new("ovsdb-tool");
        c.args([
            "create",
            &format!("{d}/conf.db"),
            "/usr/share/openvswitch/vswitch.ovsschema",
        ]);
        run(&mut c)?;
        let mut c = Command::new("ovsdb-server");
        env(&mut c);
        c.args([
            &format!("{d}/conf.db"),
            &format!("--remote=punix:{d}/db.sock"),
            &format!("--pidfile={d}/ovsdb-server.pid"),
            &format!("--log-file={d}/ovsdb-server.log"),
            "--detach",
        ]);
        run(&mut c)?;
        let ovs = StockOvs { dir };
        ovs.vsctl(&["--no-wait", "init"])?;
        let mut c = Command::new("ip");
        env(&mut c);
        c.args(["netns", "exec", &ns.name, "ovs-vswitchd"]).args([
            &format!("unix:{d}/db.sock"),
            &format!("--pidfile={d}/ovs-vswitchd.pid"),
            &format!("--log-file={d}/ovs-vswitchd.log"),
            "--detach",
        ]);
        run(&mut c)?;
        Ok(ovs)
    }

    fn d(&self) -> &Path {
        self.dir.path()
    }

    fn vsctl(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ovs-vsctl")
            .arg(format!("--db=unix:{}/db.sock", self.d().display()))
            .args(args))
    }

    fn appctl_output(&self, args: &[&str]) -> Result<std::process::Output> {
        let pid = std::fs::read_to_string(self.d().join("ovs-vswitchd.pid"))?;
        let ctl = self.d().join(format!("ovs-vswitchd.{}.ctl", pid.trim()));
        run_output(Command::new("ovs-appctl").arg("-t").arg(ctl).args(args))
    }

    fn appctl(&self, args: &[&str]) -> Result<String> {
        let o = self.appctl_output(args)?;
        if !o.status.success() {
            bail!(
                "ovs-appctl {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }
}

impl Drop for StockOvs {
    fn drop(&mut self) {
        for p in ["ovs-vswitchd.pid", "ovsdb-server.pid"] {
            if let Ok(pid) = std::fs::read_to_string(self.d().join(p))
                && let Ok(pid) = pid.trim().parse::<i32>()
            {
                // SAFETY: kill(2) on a process this test started.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        }
    }
}

/// Gives the underlay bridge's internal port `dev` (in `ns`) its addresses.
fn underlay(ns: &Netns, dev: &str) -> Result<()> {
    if !wait_until(Duration::from_secs(10), || {
        ns.exec(&["ip", "link", "show", dev]).is_ok()
    }) {
        bail!("{dev} never appeared in {}", ns.name);
    }
    ns.exec(&["ip", "link", "set", dev, "up"])?;
    ns.exec(&["ip", "addr", "add", "10.99.0.1/24", "dev", dev])?;
    ns.exec(&["ip", "addr", "add", "fd00:99::1/64", "dev", dev, "nodad"])?;
    Ok(())
}

/// The lines of `ovs/route/show` that do not depend on random link-local
/// addresses.
fn stable_routes(show: &str) -> Vec<String> {
    show.lines()
        .filter(|l| !l.contains("fe80"))
        .map(str::to_string)
        .collect()
}

#[test]
fn route_table_follows_the_kernel_and_matches_stock_ovs() -> Result<()> {
    require!("ovs-vswitchd", "ovs-appctl");
    let t = tag();
    let ns = Netns::new(&format!("{t}f"))?;
    let ons = Netns::new(&format!("{t}o"))?;
    let sw = switch_in(&ns)?;
    let ovs = StockOvs::start(&ons)?;
    let br = format!("{t}p");
    sw.vsctl(&["add-br", &br])?;
    ovs.vsctl(&[
        "add-br",
        &br,
        "--",
        "set",
        "bridge",
        &br,
        "datapath_type=netdev",
    ])?;
    underlay(&ns, &br)?;
    underlay(&ons, &br)?;
    for n in [&ns, &ons] {
        n.exec(&["ip", "route", "add", "10.98.0.0/16", "via", "10.99.0.254"])?;
    }
    let want_gw = format!("Cached: 10.98.0.0/16 dev {br} GW 10.99.0.254 SRC 10.99.0.1");
    let both_have = |line: &str| {
        wait_until(Duration::from_secs(10), || {
            sw.appctl(&["ovs/route/show"])
                .is_ok_and(|s| s.contains(line))
                && ovs
                    .appctl(&["ovs/route/show"])
                    .is_ok_and(|s| s.contains(line))
        })
    };
    assert!(
        both_have(&want_gw),
        "ferrovs:\n{}\nOVS:\n{}",
        sw.appctl(&["ovs/route/show"])?,
        ovs.appctl(&["ovs/route/show"])?
    );
    assert_eq!(
        stable_routes(&sw.appctl(&["ovs/route/show"])?),
        stable_routes(&ovs.appctl(&["ovs/route/show"])?),
        "route tables differ"
    );

    // A route removed in the kernel leaves both tables.
    for n in [&ns, &ons] {
        n.exec(&["ip", "route", "del", "10.98.0.0/16"])?;
    }
    assert!(
        wait_until(Duration::from_secs(10), || {
            sw.appctl(&["ovs/route/show"])
                .is_ok_and(|s| !s.contains(&want_gw))
        }),
        "ferrovs kept a deleted kernel route"
    );

    // Routes added and deleted by hand, and lookups.
    let gw_args = ["ovs/route/add", "10.97.0.0/16", br.as_str(), "10.99.0.254"];
    let mark_args = [
        "ovs/route/add",
        "10.96.0.0/16",
        br.as_str(),
        "10.99.0.254",
        "pkt_mark=5",
    ];
    for args in [&gw_args[..], &mark_args[..]] {
        assert_eq!(sw.appctl(args)?, ovs.appctl(args)?);
    }
    assert!(
        wait_until(Duration::from_secs(5), || {
            ovs.appctl(&["ovs/route/show"])
                .is_ok_and(|s| s.contains("User: 10.96.0.0/16"))
        }),
        "OVS took the user routes"
    );
    assert_eq!(
        stable_routes(&sw.appctl(&["ovs/route/show"])?),
        stable_routes(&ovs.appctl(&["ovs/route/show"])?),
        "route tables with user routes differ"
    );
    for args in [
        &["ovs/route/lookup", "10.97.1.1"][..],
        &["ovs/route/lookup", "10.96.1.1", "pkt_mark=5"][..],
        &["ovs/route/lookup", "fd00:99::7"][..],
    ] {
        assert_eq!(sw.appctl(args)?, ovs.appctl(args)?, "{args:?}");
    }
    // Errors: both refuse, with the same first words.
    for args in [
        &["ovs/route/lookup", "172.16.0.1"][..],
        &["ovs/route/del", "10.95.0.0/16"][..],
        &["ovs/route/add", "bogus", br.as_str()][..],
        &["ovs/route/add", "1.2.3.0/24", "nosuchdev"][..],
        &[
            "ovs/route/add",
            "10.50.0.0/16",
            br.as_str(),
            "10.99.0.254",
            "pkt_mark=x",
        ][..],
    ] {
        let ours = sw.tool_output("appctl", args)?;
        let theirs = ovs.appctl_output(args)?;
        assert!(
            !ours.status.success() && !theirs.status.success(),
            "{args:?} must fail"
        );
        let first = |o: &std::process::Output| {
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .next()
                .unwrap_or("")
                .split(':')
                .next()
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(first(&ours), first(&theirs), "{args:?}");
    }
    assert_eq!(
        sw.appctl(&["ovs/route/del", "10.97.0.0/16"])?,
        ovs.appctl(&["ovs/route/del", "10.97.0.0/16"])?
    );
    assert!(!sw.appctl(&["ovs/route/show"])?.contains("10.97.0.0/16"));
    Ok(())
}

#[test]
fn neighbour_cache_commands_match_stock_ovs() -> Result<()> {
    require!("ovs-vswitchd", "ovs-appctl");
    let t = tag();
    let ns = Netns::new(&format!("{t}f"))?;
    let ons = Netns::new(&format!("{t}o"))?;
    let sw = switch_in(&ns)?;
    let ovs = StockOvs::start(&ons)?;
    let br = format!("{t}p");
    sw.vsctl(&["add-br", &br])?;
    ovs.vsctl(&[
        "add-br",
        &br,
        "--",
        "set",
        "bridge",
        &br,
        "datapath_type=netdev",
    ])?;
    let script: &[&[&str]] = &[
        &["tnl/arp/set", &br, "10.99.0.2", "02:00:00:00:01:02"],
        &["tnl/neigh/set", &br, "fd00:99::2", "02:00:00:00:01:03"],
        &["tnl/neigh/set", &br, "10.99.0.3", "02:00:00:00:01:04"],
    ];
    for cmd in script {
        assert_eq!(sw.appctl(cmd)?, ovs.appctl(cmd)?, "{cmd:?}");
    }
    for show in ["tnl/neigh/show", "tnl/arp/show"] {
        let ours = sw.appctl(&[show])?;
        let theirs = ovs.appctl(&[show])?;
        // OVS lists entries in hash order: compare header and entry sets.
        let sorted = |s: &str| {
            let mut l: Vec<String> = s.lines().map(str::to_string).collect();
            l[2..].sort();
            l
        };
        assert_eq!(sorted(&ours), sorted(&theirs), "{show}");
        assert_eq!(ours.lines().count(), 5, "{ours}");
    }
    let bad = sw.tool_output("appctl", &["tnl/neigh/set", &br, "10.99.0.9", "zz"])?;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bad MAC address"));
    let aging_ours = sw.appctl(&["tnl/neigh/aging"])?;
    assert_eq!(aging_ours, ovs.appctl(&["tnl/neigh/aging"])?);
    assert_eq!(
        sw.appctl(&["tnl/arp/flush"])?,
        ovs.appctl(&["tnl/arp/flush"])?
    );
    assert_eq!(
        sw.appctl(&["tnl/neigh/show"])?,
        ovs.appctl(&["tnl/neigh/show"])?
    );
    Ok(())
}

#[test]
fn tunnel_ports_are_configured_by_vsctl_and_ovs_vsctl_with_status_and_errors() -> Result<()> {
    require!("ovs-vsctl");
    let t = tag();
    let ns = Netns::new(&format!("{t}f"))?;
    let sw = switch_in(&ns)?;
    let (brp, bri) = (format!("{t}p"), format!("{t}i"));
    sw.vsctl(&["add-br", &brp])?;
    sw.vsctl(&["add-br", &bri])?;
    underlay(&ns, &brp)?;
    sw.vsctl(&[
        "add-port",
        &bri,
        "vx0",
        "--",
        "set",
        "Interface",
        "vx0",
        "type=vxlan",
        "options:remote_ip=10.99.0.2",
        "options:key=123",
    ])?;
    let ovs_vsctl = |args: &[&str]| {
        run(Command::new("ovs-vsctl")
            .arg(format!("--db={}", sw.db_remote()))
            .args(args))
    };
    ovs_vsctl(&[
        "add-port",
        &bri,
        "gn0",
        "--",
        "set",
        "Interface",
        "gn0",
        "type=geneve",
        "options:remote_ip=flow",
        "options:key=flow",
        "options:csum=true",
    ])?;
    ovs_vsctl(&[
        "add-port",
        &bri,
        "gr0",
        "--",
        "set",
        "Interface",
        "gr0",
        "type=gre",
        "options:remote_ip=fd00:99::2",
        "options:packet_type=legacy_l3",
    ])?;
    // Bad options: the port is refused with a clear error, the rest goes on.
    let _ = sw.vsctl(&[
        "add-port",
        &bri,
        "bad0",
        "--",
        "set",
        "Interface",
        "bad0",
        "type=vxlan",
        "options:remote_ip=notanip",
    ]);
    let _ = ovs_vsctl(&[
        "add-port",
        &bri,
        "bad1",
        "--",
        "set",
        "Interface",
        "bad1",
        "type=geneve",
        "options:remote_ip=10.99.0.2",
        "options:dst_port=99999",
    ]);
    let get = |iface: &str, col: &str| -> String {
        sw.vsctl(&["get", "Interface", iface, col])
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    assert!(
        wait_until(Duration::from_secs(10), || get("bad0", "ofport") == "-1"
            && get("bad1", "ofport") == "-1"),
        "bad ports not refused; log:\n{}",
        sw.log_text()
    );
    let e0 = get("bad0", "error");
    assert!(e0.contains("remote_ip") && e0.contains("notanip"), "{e0}");
    let e1 = get("bad1", "error");
    assert!(e1.contains("dst_port") && e1.contains("99999"), "{e1}");
    for p in ["vx0", "gn0", "gr0"] {
        let of: i64 = get(p, "ofport").parse().unwrap_or(-1);
        assert!(of > 0, "{p} has ofport {of}: {}", get(p, "error"));
        assert_eq!(get(p, "error"), "[]", "{p}");
    }
    // vx0's remote is routed through the underlay bridge, as OVS reports.
    assert!(
        wait_until(Duration::from_secs(10), || get("vx0", "status")
            == format!(
                "{{tunnel_egress_iface={brp}, tunnel_egress_iface_carrier=up}}"
            )),
        "vx0 status: {}",
        get("vx0", "status")
    );
    assert_eq!(
        get("gn0", "status"),
        "{}",
        "a flow-based remote has no fixed egress"
    );

    let ports = sw.appctl(&["tnl/ports/show"])?;
    let lines: Vec<&str> = ports.lines().collect();
    assert_eq!(lines[0], "Listening ports:");
    let names: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        ["genev_sys_6081", "gre_sys", "vxlan_sys_4789"],
        "{ports}"
    );
    assert!(
        lines[1..].iter().all(|l| l.ends_with("ref_cnt=1")),
        "{ports}"
    );
    let verbose = sw.appctl(&["tnl/ports/show", "-v"])?;
    assert!(
        verbose.contains(",eth_type(0x0800),ipv4(dst=10.99.0.1,proto=17,frag=no),udp(dst=4789)"),
        "{verbose}"
    );
    let show = sw.appctl(&["dpctl/show"])?;
    assert!(
        show.contains("vx0 (vxlan: key=123, remote_ip=10.99.0.2)"),
        "{show}"
    );
    assert!(
        show.contains("gn0 (geneve: key=flow, remote_ip=flow, csum=true)"),
        "{show}"
    );

    // Fixing a bad port brings it up; the daemon kept running throughout.
    sw.vsctl(&["set", "Interface", "bad0", "options:remote_ip=10.99.0.9"])?;
    assert!(
        wait_until(Duration::from_secs(10), || get("bad0", "ofport") != "-1"),
        "bad0 not recovered: {}",
        get("bad0", "error")
    );
    Ok(())
}

#[test]
fn neighbours_are_learned_from_arp_replies_through_the_switch() -> Result<()> {
    require!();
    let (sw, br, hosts) = bridge_with_hosts(&tag(), 95, 2)?;
    assert!(
        hosts[0]
            .ns
            .ping_eventually(&hosts[1].addr, Duration::from_secs(15)),
        "hosts cannot ping; log:\n{}",
        sw.log_text()
    );
    let mac = hosts[1]
        .ns
        .exec(&["cat", "/sys/class/net/eth0/address"])?
        .trim()
        .to_string();
    let want = format!("{:<45} {:<19} {}", hosts[1].addr, mac, br);
    assert!(
        wait_until(Duration::from_secs(5), || sw
            .appctl(&["tnl/neigh/show"])
            .is_ok_and(|s| s.lines().any(|l| l == want))),
        "{want:?} not learned:\n{}",
        sw.appctl(&["tnl/neigh/show"])?
    );
    Ok(())
}

/// The `header(...)` inside a `tnl_push(...)` of a line.
fn push_header(line: &str) -> Option<String> {
    let start = line.find("header(")?;
    let mut depth = 0;
    for (i, c) in line[start..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(line[start..=start + i].to_string());
                }
            }
            _ => {}
        }
    }
    None
}

#[test]
fn outer_headers_for_tunnel_ports_match_stock_ovs_tnl_push() -> Result<()> {
    require!("ovs-vswitchd", "ovs-appctl", "ovs-ofctl");
    let t = tag();
    let ns = Netns::new(&format!("{t}f"))?;
    let ons = Netns::new(&format!("{t}o"))?;
    let sw = switch_in(&ns)?;
    let ovs = StockOvs::start(&ons)?;
    let (brp, bri) = (format!("{t}p"), format!("{t}i"));
    sw.vsctl(&["add-br", &brp])?;
    sw.vsctl(&["add-br", &bri])?;
    underlay(&ns, &brp)?;
    // Stock OVS gets the same underlay MAC, and a second port on its
    // underlay bridge (with only LOCAL it would have nowhere to flood).
    let mac = ns
        .exec(&["cat", &format!("/sys/class/net/{brp}/address")])?
        .trim()
        .to_string();
    let hw = format!("other_config:hwaddr={mac}");
    ovs.vsctl(&[
        "add-br",
        &brp,
        "--",
        "set",
        "bridge",
        &brp,
        "datapath_type=netdev",
        &hw,
    ])?;
    ovs.vsctl(&[
        "add-br",
        &bri,
        "--",
        "set",
        "bridge",
        &bri,
        "datapath_type=netdev",
    ])?;
    underlay(&ons, &brp)?;
    let (va, vb) = (format!("{t}a"), format!("{t}b"));
    ons.exec(&[
        "ip", "link", "add", &va, "type", "veth", "peer", "name", &vb,
    ])?;
    ons.exec(&["ip", "link", "set", &va, "up"])?;
    ovs.vsctl(&["add-port", &brp, &va])?;
    let ports: &[(&str, &[&str])] = &[
        ("vxlan", &["options:remote_ip=10.99.0.2", "options:key=123"]),
        (
            "geneve",
            &[
                "options:remote_ip=10.99.0.2",
                "options:key=5",
                "options:csum=true",
            ],
        ),
        ("gre", &["options:remote_ip=10.99.0.2", "options:key=7"]),
        ("vxlan", &["options:remote_ip=fd00:99::2"]),
        (
            "gre",
            &["options:remote_ip=fd00:99::2", "options:csum=true"],
        ),
        (
            "geneve",
            &[
                "options:remote_ip=10.99.0.2",
                "options:ttl=9",
                "options:tos=0x10",
                "options:df_default=false",
            ],
        ),
    ];
    for (i, (kind, opts)) in ports.iter().enumerate() {
        let n = i + 1;
        let name = format!("t{n}");
        let ty = format!("type={kind}");
        let req = format!("ofport_request={n}");
        let mut args = vec![
            "add-port",
            &bri,
            &name,
            "--",
            "set",
            "Interface",
            &name,
            &ty,
            &req,
        ];
        args.extend_from_slice(opts);
        sw.vsctl(&args)?;
        ovs.vsctl(&args)?;
    }
    for a in [
        ["tnl/neigh/set", &brp, "10.99.0.2", "02:00:00:00:bb:02"],
        ["tnl/neigh/set", &brp, "fd00:99::2", "02:00:00:00:bb:03"],
    ] {
        sw.appctl(&a)?;
        ovs.appctl(&a)?;
    }
    let ovs_mgmt = format!("unix:{}/{bri}.mgmt", ovs.d().display());
    for n in 1..=ports.len() {
        let flow = format!("in_port=LOCAL,ip,nw_src=192.168.0.{n},actions=output:{n}");
        sw.ofctl(&["add-flow", &bri, &flow])?;
        run(Command::new("ovs-ofctl").args(["-O", "OpenFlow13", "add-flow", &ovs_mgmt, &flow]))?;
    }
    for n in 1..=ports.len() {
        let pkt = format!(
            "in_port=LOCAL,ip,nw_src=192.168.0.{n},dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02"
        );
        let theirs = wait_until(Duration::from_secs(10), || {
            ovs.appctl(&["ofproto/trace", &bri, &pkt])
                .is_ok_and(|s| s.contains("tnl_push("))
        });
        let ovs_trace = ovs.appctl(&["ofproto/trace", &bri, &pkt])?;
        assert!(theirs, "stock OVS did not push for port {n}:\n{ovs_trace}");
        let our_trace = sw.appctl(&["ofproto/trace", &bri, &pkt])?;
        let ours = our_trace
            .lines()
            .find(|l| l.starts_with(&format!("Tunnel push on t{n} ")))
            .and_then(push_header);
        let want = ovs_trace
            .lines()
            .find(|l| l.starts_with("Datapath actions:"))
            .and_then(push_header);
        assert!(want.is_some(), "{ovs_trace}");
        assert_eq!(
            ours,
            want,
            "port t{n} {:?}; ours:\n{our_trace}",
            ports[n - 1]
        );
    }
    Ok(())
}
