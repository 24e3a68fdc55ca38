//! `type=afxdp` interfaces (AF_XDP sockets behind an XDP program, as OVS's
//! netdev-afxdp): two namespaces on veth pairs whose switch-side ends are
//! afxdp ports of one bridge carry ping and TCP; an afxdp interface on a
//! device that does not exist, or with an unknown `xdp-mode`, gets an
//! `error` and the bridge keeps forwarding; removing a port detaches its
//! XDP program.

use std::time::Duration;

use anyhow::{Context, Result};
use ferrovs_tests::*;

const T: Duration = Duration::from_secs(30);

/// What `ip -d link` says of `dev` when an XDP program is attached to it
/// ("" if none): the first line names the mode (`xdp` for the driver's
/// hook, `xdpgeneric`), a later one the program.
fn xdp_on(dev: &str) -> String {
    let out = ip(&["-d", "link", "show", "dev", dev]).unwrap_or_default();
    if out.contains("prog/xdp") {
        out
    } else {
        String::new()
    }
}

fn iface(sw: &Switch, name: &str, col: &str) -> String {
    sw.vsctl(&["get", "Interface", name, col])
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn afxdp_ports_carry_ping_and_tcp_and_a_bad_port_gets_an_error() -> Result<()> {
    require!("iperf3", "ethtool");
    let tag = unique_tag();
    let sw = Switch::start()?;
    let br = format!("{tag}b");
    sw.vsctl(&["add-br", &br])?;
    let h1 = VethHost::new(&tag, 1, "10.87.0.1/24")?;
    let h2 = VethHost::new(&tag, 2, "10.87.0.2/24")?;
    // AF_XDP carries no checksum state: the hosts checksum what they send.
    for h in [&h1, &h2] {
        h.ns.exec(&["ethtool", "-K", "eth0", "tx", "off"])?;
    }
    // One port in the default mode (best-effort: native on veth), one in
    // generic mode.
    add_port_numbered(|a| sw.vsctl(a), &br, &h1.port, 1, &["type=afxdp"])?;
    add_port_numbered(
        |a| sw.vsctl(a),
        &br,
        &h2.port,
        2,
        &["type=afxdp", "options:xdp-mode=generic"],
    )?;
    for h in [&h1, &h2] {
        assert_eq!(iface(&sw, &h.port, "error"), "[]", "{}", sw.log_text());
        assert!(
            wait_until(T, || !xdp_on(&h.port).is_empty()),
            "no XDP program on {}",
            h.port
        );
    }
    let native = xdp_on(&h1.port);
    assert!(
        native.lines().next().unwrap_or("").contains(" xdp "),
        "{native}"
    );
    let generic = xdp_on(&h2.port);
    assert!(
        generic
            .lines()
            .next()
            .unwrap_or("")
            .contains(" xdpgeneric "),
        "{generic}"
    );

    assert!(
        h1.ns.ping_eventually(&h2.addr, T),
        "h1 cannot reach h2 over afxdp ports; log:\n{}",
        sw.log_text()
    );
    assert!(h2.ns.ping(&h1.addr, 3), "h2 -> h1 ping lost packets");
    // On a failure, the ports' counters tell which side lost what.
    let diag = || {
        format!(
            "ports:\n{}\nlog:\n{}",
            sw.ofctl(&["dump-ports", &br]).unwrap_or_default(),
            sw.log_text()
        )
    };
    let bps = iperf3_tcp(&h2.ns, &h1.ns, &h2.addr, 2).with_context(diag)?;
    assert!(bps > 1e6, "h1 -> h2 TCP carried only {bps} bit/s");
    let bps = iperf3_tcp(&h1.ns, &h2.ns, &h1.addr, 2).with_context(diag)?;
    assert!(bps > 1e6, "h2 -> h1 TCP carried only {bps} bit/s");

    // A device that does not exist, and a mode OVS does not know: errors
    // with the reason; the daemon and the bridge carry on.
    let ghost = format!("{tag}gh");
    add_port_with(|a| sw.vsctl(a), &br, &ghost, &["type=afxdp"])?;
    let odd = format!("{tag}od");
    add_port_with(
        |a| sw.vsctl(a),
        &br,
        &odd,
        &["type=afxdp", "options:xdp-mode=turbo"],
    )?;
    let mut last = String::new();
    assert!(
        wait_until(T, || {
            last = iface(&sw, &ghost, "error");
            last.contains("no such device")
        }),
        "error of {ghost}: {last:?}"
    );
    assert!(
        wait_until(T, || {
            last = iface(&sw, &odd, "error");
            last.contains("xdp-mode") && last.contains("turbo")
        }),
        "error of {odd}: {last:?}"
    );
    assert!(
        h1.ns.ping(&h2.addr, 3),
        "forwarding stopped after bad ports"
    );

    // Removing a port detaches its program.
    sw.vsctl(&["del-port", &br, &h1.port])?;
    assert!(
        wait_until(T, || xdp_on(&h1.port).is_empty()),
        "XDP program left on {}: {}",
        h1.port,
        xdp_on(&h1.port)
    );
    assert!(
        !xdp_on(&h2.port).is_empty(),
        "the other port lost its program"
    );
    Ok(())
}
