//! The metrics endpoint (`other_config:metrics-address`): Prometheus's own
//! tools accept what it serves, a real Prometheus scrapes it, its counters
//! agree with `ofctl dump-ports`, and the listener follows the DB.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferrovs_tests::*;

/// A TCP port on 127.0.0.1 that nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One HTTP/1.0 request; the status code and body.
fn http(addr: SocketAddr, request: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").context("no end of head")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status code")?;
    Ok((code, body.to_string()))
}

/// True when nothing accepts connections on `addr`. (A connection to
/// itself, which the kernel can make when the port is in the ephemeral
/// range and unused, counts as nothing.)
fn closed(addr: SocketAddr) -> bool {
    match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
        Err(_) => true,
        Ok(s) => s.local_addr().ok() == s.peer_addr().ok(),
    }
}

fn get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    http(addr, &format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n"))
}

/// The value of the sample `name{...}` whose labels include every one of
/// `labels` (`key="value"` strings).
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let rest = series.strip_prefix(name)?;
        if !(rest.is_empty() || rest.starts_with('{')) {
            return None;
        }
        labels
            .iter()
            .all(|want| rest.contains(want))
            .then(|| value.parse().ok())?
    })
}

/// `rx pkts` and `tx pkts` of one port from `ofctl dump-ports BR PORT`.
fn dump_port_packets(sw: &Switch, br: &str, port: u32) -> Result<(u64, u64)> {
    let out = sw.ofctl(&["dump-ports", br, &port.to_string()])?;
    let pkts = |dir: &str| -> Result<u64> {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("{dir} pkts=")))
            .with_context(|| format!("no {dir} line in:\n{out}"))?;
        let v = line.split(&format!("{dir} pkts=")).nth(1).unwrap_or("");
        Ok(v.split(',').next().unwrap_or("").trim().parse()?)
    };
    Ok((pkts("rx")?, pkts("tx")?))
}

fn promtool_accepts(text: &str) -> Result<()> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "promtool check metrics refused the exposition:\n{}{}\n--- exposition ---\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[test]
fn prometheus_scrapes_the_endpoint_and_its_counters_match_dump_ports() -> Result<()> {
    require!();
    require_tool("promtool");
    require_tool("prometheus");
    let tag = unique_tag();
    let (sw, br, hosts) = bridge_with_hosts(&tag, 71, 2)?;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
    // Off by default.
    assert!(
        closed(addr),
        "something listens on {addr} before the endpoint is enabled"
    );
    sw.vsctl(&[
        "set",
        "Open_vSwitch",
        ".",
        &format!("other_config:metrics-address={addr}"),
    ])?;
    assert!(
        wait_until(Duration::from_secs(10), || get(addr, "/metrics")
            .is_ok_and(|(c, _)| c == 200)),
        "the endpoint did not come up on {addr}; log:\n{}",
        sw.log_text()
    );
    assert!(
        hosts[0]
            .ns
            .ping_eventually(&hosts[1].addr, Duration::from_secs(15))
    );
    assert!(hosts[0].ns.ping(&hosts[1].addr, 5));

    // The counters agree with dump-ports (read before and after, so that
    // a stray neighbour packet in between cannot make the test flaky).
    let before = dump_port_packets(&sw, &br, 1)?;
    let (code, text) = get(addr, "/metrics")?;
    let after = dump_port_packets(&sw, &br, 1)?;
    assert_eq!(code, 200);
    promtool_accepts(&text)?;
    let port = format!("interface=\"{}\"", hosts[0].port);
    let rx = sample(
        &text,
        "ferrovs_interface_rx_packets_total",
        &[&port, "ofport=\"1\""],
    )
    .with_context(|| format!("no rx counter for {port}:\n{text}"))?;
    let tx =
        sample(&text, "ferrovs_interface_tx_packets_total", &[&port]).context("no tx counter")?;
    assert!(
        (before.0 as f64..=after.0 as f64).contains(&rx),
        "metrics rx {rx} outside dump-ports {before:?}..{after:?}"
    );
    assert!(
        (before.1 as f64..=after.1 as f64).contains(&tx),
        "metrics tx {tx} outside dump-ports {before:?}..{after:?}"
    );
    assert!(rx >= 6.0, "the pings are not counted: rx {rx}");
    // The PMD, flow and connection families are there.
    let hits = sample(&text, "ferrovs_pmd_emc_hits_total", &[]).unwrap_or(0.0)
        + sample(&text, "ferrovs_pmd_megaflow_hits_total", &[]).unwrap_or(0.0);
    assert!(hits > 0.0, "no cache hits counted:\n{text}");
    assert!(sample(&text, "ferrovs_pmd_cycles_total", &["state=\"busy\""]).is_some());
    assert!(
        sample(
            &text,
            "ferrovs_openflow_rules",
            &[&format!("bridge=\"{br}\"")]
        )
        .is_some_and(|n| n >= 1.0),
        "NORMAL's rule is not counted:\n{text}"
    );
    assert!(sample(&text, "ferrovs_datapath_megaflows", &[]).is_some());
    let nconns: f64 = sw.appctl(&["dpctl/ct-get-nconns"])?.trim().parse()?;
    assert_eq!(
        sample(&text, "ferrovs_conntrack_connections", &[]),
        Some(nconns),
        "connections differ from dpctl/ct-get-nconns"
    );
    assert!(sample(&text, "ferrovs_ovsdb_clients", &[]).is_some());

    // Other paths and methods get HTTP errors, and a garbage request does
    // not stop the endpoint.
    assert_eq!(get(addr, "/")?.0, 404);
    assert_eq!(http(addr, "POST /metrics HTTP/1.0\r\n\r\n")?.0, 405);
    let mut junk = TcpStream::connect(addr)?;
    junk.write_all(&[0xff; 20_000])?;
    drop(junk);
    assert_eq!(get(addr, "/metrics")?.0, 200);

    // A real Prometheus scrapes it.
    let dir = tempfile::tempdir()?;
    let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ferrovs\n    static_configs:\n      - targets: ['{addr}']\n"
        ),
    )?;
    let mut prom = ChildGuard(Some(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log"))?)
            .spawn()?,
    ));
    let query = |q: &str| get(web, &format!("/api/v1/query?query={q}"));
    let scraped = wait_until(Duration::from_secs(30), || {
        query("up").is_ok_and(|(c, body)| {
            c == 200 && body.contains("\"value\":[") && body.contains(",\"1\"]")
        })
    });
    let rx_seen = query(&format!(
        "ferrovs_interface_rx_packets_total%7Binterface%3D%22{}%22%7D",
        hosts[0].port
    ))?;
    prom.kill();
    assert!(
        scraped,
        "Prometheus did not report the target up; its log:\n{}",
        std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
    );
    assert!(
        rx_seen.1.contains(&hosts[0].port),
        "Prometheus has no rx series for the port: {}",
        rx_seen.1
    );

    // The listener follows the DB: moved, then turned off.
    let moved: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
    sw.vsctl(&[
        "set",
        "Open_vSwitch",
        ".",
        &format!("other_config:metrics-address={moved}"),
    ])?;
    assert!(wait_until(Duration::from_secs(10), || get(
        moved, "/metrics"
    )
    .is_ok_and(|(c, _)| c == 200)));
    assert!(
        wait_until(Duration::from_secs(10), || closed(addr)),
        "the old address still answers"
    );
    sw.vsctl(&[
        "remove",
        "Open_vSwitch",
        ".",
        "other_config",
        "metrics-address",
    ])?;
    assert!(
        wait_until(Duration::from_secs(10), || closed(moved)),
        "the endpoint is still on after the key was removed"
    );
    Ok(())
}

#[test]
fn a_bad_metrics_address_is_logged_and_the_switch_keeps_working() -> Result<()> {
    require!();
    let tag = unique_tag();
    let (mut sw, _br, hosts) = bridge_with_hosts(&tag, 72, 2)?;
    sw.vsctl(&[
        "set",
        "Open_vSwitch",
        ".",
        "other_config:metrics-address=localhost-ish",
    ])?;
    assert!(
        wait_until(Duration::from_secs(10), || sw
            .log_text()
            .contains("metrics-address=\"localhost-ish\": expected IP:PORT")),
        "no error in the log:\n{}",
        sw.log_text()
    );
    assert!(sw.alive());
    assert!(
        hosts[0]
            .ns
            .ping_eventually(&hosts[1].addr, Duration::from_secs(15))
    );
    Ok(())
}
