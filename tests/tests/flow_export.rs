//! Flow export to a real collector: NetFlow v5 configured with stock
//! `ovs-vsctl` exactly as OVS's documentation does it, received by
//! `nfcapd` (Debian's nfdump) on 127.0.0.1 and read back with `nfdump`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use ferrovs_tests::*;

/// Stock ovs-vsctl against the switch's DB.
fn ovs_vsctl(sw: &Switch, args: &[&str]) -> Result<String> {
    run(Command::new("ovs-vsctl")
        .arg(format!("--db={}", sw.db_remote()))
        .arg("--no-wait")
        .args(args))
}

/// A UDP port nobody listens on right now, on 127.0.0.1.
fn free_udp_port() -> Result<u16> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
    Ok(s.local_addr()?.port())
}

/// `nfcapd` on 127.0.0.1:`port`, writing a new file every 2 seconds.
struct Collector {
    child: ChildGuard,
    dir: tempfile::TempDir,
    port: u16,
}

impl Collector {
    fn start() -> Result<Collector> {
        let dir = tempfile::Builder::new().prefix("flowexp-nfcapd-").tempdir()?;
        let port = free_udp_port()?;
        let flows = dir.path().join("flows");
        std::fs::create_dir(&flows)?;
        let log = std::fs::File::create(dir.path().join("nfcapd.log"))?;
        let child = Command::new("nfcapd")
            .arg("-w")
            .arg(&flows)
            .args(["-b", "127.0.0.1", "-p", &port.to_string(), "-t", "2"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning nfcapd")?;
        let c = Collector {
            child: ChildGuard(Some(child)),
            dir,
            port,
        };
        let started = wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(c.dir.path().join("nfcapd.log"))
                .is_ok_and(|l| l.contains("Startup"))
        });
        anyhow::ensure!(started, "nfcapd did not start: {}", c.log());
        Ok(c)
    }

    fn flows_dir(&self) -> PathBuf {
        self.dir.path().join("flows")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nfcapd.log")).unwrap_or_default()
    }

    /// Every record in the files nfcapd closed so far.
    fn records(&self) -> Vec<Record> {
        nfdump_records(&self.flows_dir())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.child.kill();
    }
}

/// One NetFlow record as nfdump prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    src: String,
    dst: String,
    proto: String,
    sport: String,
    dport: String,
    input: u32,
    output: u32,
    packets: u64,
    bytes: u64,
}

fn nfdump_records(dir: &Path) -> Vec<Record> {
    // Only closed files (nfcapd.YYYYMMDDhhmm...), not nfcapd.current.*.
    let closed = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .any(|e| !e.file_name().to_string_lossy().contains("current"))
        })
        .unwrap_or(false);
    if !closed {
        return Vec::new();
    }
    let out = run(Command::new("nfdump")
        .arg("-R")
        .arg(dir)
        .args(["-q", "-N", "-o", "fmt:%sa|%da|%pr|%sp|%dp|%in|%out|%pkt|%byt"]));
    let Ok(out) = out else {
        return Vec::new();
    };
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').map(str::trim).collect();
            (f.len() == 9).then(|| Record {
                src: f[0].to_string(),
                dst: f[1].to_string(),
                proto: f[2].to_string(),
                sport: f[3].to_string(),
                dport: f[4].to_string(),
                input: f[5].parse().unwrap_or(u32::MAX),
                output: f[6].parse().unwrap_or(u32::MAX),
                packets: f[7].parse().unwrap_or(u64::MAX),
                bytes: f[8].parse().unwrap_or(u64::MAX),
            })
        })
        .collect()
}

/// Packets and bytes of every record from `src` to `dst` with protocol
/// `proto` and destination port `dport`, summed.
fn total(records: &[Record], src: &str, dst: &str, proto: &str, dport: &str) -> (u64, u64) {
    records
        .iter()
        .filter(|r| r.src == src && r.dst == dst && r.proto == proto && r.dport == dport)
        .fold((0, 0), |(p, b), r| (p + r.packets, b + r.bytes))
}

/// `ping -c COUNT -s SIZE -i 0.2`; true when every reply came back.
fn ping_sized(ns: &Netns, dst: &str, count: u32, size: u32) -> bool {
    ns.exec_output(&[
        "ping",
        "-n",
        "-q",
        "-c",
        &count.to_string(),
        "-s",
        &size.to_string(),
        "-i",
        "0.2",
        "-W",
        "1",
        dst,
    ])
    .map(|o| o.status.success())
    .unwrap_or(false)
}

/// Ethernet + IPv4 + ICMP headers around a ping payload of `size` bytes:
/// NetFlow byte counts are whole frames, as in OVS.
fn icmp_frame_len(size: u32) -> u64 {
    u64::from(14 + 20 + 8 + size)
}

#[test]
fn netflow_v5_records_at_nfcapd_count_exactly_the_packets_and_bytes_sent() -> Result<()> {
    require!("ovs-vsctl", "nfcapd", "nfdump");
    let tag = unique_tag();
    let (sw, br, hosts) = bridge_with_hosts(&tag, 91, 2)?;
    let (h1, h2) = (&hosts[0], &hosts[1]);
    // ARP and MAC learning first, before NetFlow is on.
    assert!(h1.ns.ping_eventually(&h2.addr, Duration::from_secs(15)));

    let nfcapd = Collector::start()?;
    let target = format!("\"127.0.0.1:{}\"", nfcapd.port);
    // The recipe of OVS's documentation.
    ovs_vsctl(
        &sw,
        &[
            "--",
            "set",
            "Bridge",
            &br,
            "netflow=@nf",
            "--",
            "--id=@nf",
            "create",
            "NetFlow",
            &format!("targets={target}"),
            "active_timeout=60",
        ],
    )?;
    assert!(
        wait_until(Duration::from_secs(10), || sw
            .log_text()
            .contains("NetFlow on")),
        "NetFlow was not enabled:\n{}",
        sw.log_text()
    );

    let (count, size) = (7u32, 200u32);
    assert!(ping_sized(&h1.ns, &h2.addr, count, size), "h1 -> h2 broken with NetFlow on");
    let want = (u64::from(count), u64::from(count) * icmp_frame_len(size));
    let (a1, a2) = (h1.addr.as_str(), h2.addr.as_str());
    // The flows go idle, are reported (passive timeout) and nfcapd closes
    // the file holding them.
    let complete = wait_until(Duration::from_secs(40), || {
        let r = nfcapd.records();
        total(&r, a1, a2, "1", "8.0") == want && total(&r, a2, a1, "1", "0.0") == want
    });
    let records = nfcapd.records();
    assert!(
        complete,
        "want {want:?} each way, nfcapd has:\n{records:#?}\nnfcapd log:\n{}\nswitch log:\n{}",
        nfcapd.log(),
        sw.log_text()
    );
    // One record per direction (the flows were short and then idle), with
    // OpenFlow port numbers as interfaces.
    let req: Vec<_> = records.iter().filter(|r| r.src == a1 && r.dst == a2).collect();
    assert_eq!(req.len(), 1, "{records:#?}");
    assert_eq!((req[0].input, req[0].output), (1, 2), "{records:#?}");
    assert_eq!(req[0].sport, "0", "ICMP source port is 0 in NetFlow");
    let rep: Vec<_> = records.iter().filter(|r| r.src == a2 && r.dst == a1).collect();
    assert_eq!(rep.len(), 1, "{records:#?}");
    assert_eq!((rep[0].input, rep[0].output), (2, 1), "{records:#?}");
    assert!(
        records.iter().all(|r| r.proto == "1"),
        "traffic that was not sent was reported: {records:#?}"
    );

    // Turning NetFlow off stops the records and keeps switching.
    ovs_vsctl(&sw, &["clear", "Bridge", &br, "netflow"])?;
    assert!(wait_until(Duration::from_secs(10), || sw
        .log_text()
        .contains("NetFlow off")));
    assert!(h1.ns.ping(&h2.addr, 2));
    Ok(())
}

#[test]
fn a_bad_netflow_target_is_logged_and_an_unreachable_collector_never_stops_switching(
) -> Result<()> {
    require!("ovs-vsctl");
    let tag = unique_tag();
    let (sw, br, hosts) = bridge_with_hosts(&tag, 92, 2)?;
    let (h1, h2) = (&hosts[0], &hosts[1]);
    assert!(h1.ns.ping_eventually(&h2.addr, Duration::from_secs(15)));

    // A port out of range and a host name: both refused with the reason.
    ovs_vsctl(
        &sw,
        &[
            "--",
            "set",
            "Bridge",
            &br,
            "netflow=@nf",
            "--",
            "--id=@nf",
            "create",
            "NetFlow",
            "targets=\"127.0.0.1:70000\",\"collector.invalid:2055\"",
        ],
    )?;
    assert!(
        wait_until(Duration::from_secs(10), || {
            let l = sw.log_text();
            l.contains("port 70000 is out of range") && l.contains("not a numeric IP address")
        }),
        "no clear message for bad targets:\n{}",
        sw.log_text()
    );
    assert!(!sw.log_text().contains("NetFlow on"));
    assert!(h1.ns.ping(&h2.addr, 3), "a bad NetFlow row broke switching");
    // The rest of the configuration still applies.
    let h3 = VethHost::new(&tag, 3, "10.92.0.3/24")?;
    ovs_vsctl(&sw, &["add-port", &br, &h3.port])?;
    assert!(h1.ns.ping_eventually(&h3.addr, Duration::from_secs(15)));

    // A collector nobody listens on, with a one-second active timeout so
    // that the switch sends all the time.
    let port = free_udp_port()?;
    ovs_vsctl(
        &sw,
        &[
            "set",
            "NetFlow",
            &run(Command::new("ovs-vsctl")
                .arg(format!("--db={}", sw.db_remote()))
                .args(["get", "Bridge", &br, "netflow"]))?
            .trim()
            .to_string(),
            &format!("targets=\"127.0.0.1:{port}\""),
            "active_timeout=1",
        ],
    )?;
    assert!(wait_until(Duration::from_secs(10), || sw
        .log_text()
        .contains("NetFlow on")));
    for _ in 0..3 {
        assert!(
            h1.ns.ping(&h2.addr, 5),
            "switching stalled with an unreachable collector"
        );
    }
    Ok(())
}
