//! Conntrack ALGs through NAT end to end (issue 15), with stock OVS as the
//! oracle: the same flows (modelled on OVS's own FTP/TFTP NAT system tests)
//! and the same transfers run on stock ovs-vswitchd (userspace datapath,
//! veths in namespaces) and on ferrovs, and must come out the same.
//!
//! - SNAT: the client (port 1) reaches the server (port 2) as
//!   `10.N.0.240` through `ct(commit,alg=ftp|tftp,nat(src=...))`. A passive
//!   and an active FTP download (curl against pyftpdlib) and a TFTP
//!   download (curl against tftpd-hpa) succeed. The active one needs the
//!   ALG: the `PORT` command names the client's own address, which the
//!   switch must rewrite to the NAT address (pyftpdlib refuses a data
//!   address other than its peer's), shifting every later TCP sequence and
//!   acknowledgement number of the control connection by the longer text;
//!   the server's data connection to the NAT address is related and goes
//!   to the client.
//! - DNAT: the client reaches the server through a virtual address
//!   (`ct(commit,alg=...,nat(dst=SERVER))`); the `227` reply's server
//!   address is rewritten to the virtual one, the client's passive data
//!   connection to the virtual address and the server's active data
//!   connection and TFTP reply (from a new port) are translated like their
//!   parents.
//! - Both switches end with the same `dpctl/dump-conntrack` entries
//!   (ports, ids and TCP states cleared, as OVS's `FORMAT_CT` does).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use ferrovs_tests::ct_hosts::{
    AnySwitch, FTP_ACTIVE, FTP_PASSIVE, FileServers, curl, load_flows, require_pyftpdlib, stock_rig,
};
use ferrovs_tests::*;

/// The subnet of both rigs (one after the other): `10.NET.0.0/24`.
const NET: u8 = 76;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Nat {
    /// The client appears as `.240`.
    Src,
    /// The server is reached as `.200`.
    Dst,
}

/// The flows of a NAT scenario: every IP packet goes through `ct(nat)`
/// (established traffic is translated there) and table 1 commits new
/// control connections with their helper and NAT, related connections with
/// `ct(commit,nat)`, and passes established ones by their translated
/// addresses.
fn flows(nat: Nat) -> String {
    let c = format!("10.{NET}.0.1");
    let s = format!("10.{NET}.0.2");
    let (ctl_nat, to_server, to_client) = match nat {
        Nat::Src => (
            format!("nat(src=10.{NET}.0.240)"),
            format!("nw_src=10.{NET}.0.240"),
            format!("nw_dst={c}"),
        ),
        Nat::Dst => (
            format!("nat(dst={s})"),
            format!("nw_dst={s}"),
            format!("nw_dst={c}"),
        ),
    };
    format!(
        "\
table=0,priority=100,arp,actions=NORMAL
table=0,priority=10,ip,actions=ct(nat,table=1)
table=0,priority=0,actions=drop
table=1,priority=100,in_port=1,icmp,actions=output:2
table=1,priority=100,in_port=2,icmp,actions=output:1
table=1,priority=10,in_port=1,ct_state=+new-rel,tcp,nw_src={c},tp_dst=21,actions=ct(alg=ftp,commit,{ctl_nat}),output:2
table=1,priority=10,in_port=1,ct_state=+new-rel,udp,nw_src={c},tp_dst=69,actions=ct(alg=tftp,commit,{ctl_nat}),output:2
table=1,priority=10,in_port=1,ct_state=+new+rel,ip,nw_src={c},actions=ct(commit,nat),output:2
table=1,priority=10,in_port=2,ct_state=+new+rel,ip,nw_src={s},actions=ct(commit,nat),output:1
table=1,priority=10,in_port=1,ct_state=+est,ip,{to_server},actions=output:2
table=1,priority=10,in_port=2,ct_state=+est,ip,{to_client},actions=output:1
table=1,priority=0,actions=drop
"
    )
}

/// What one switch made of a scenario.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Passive FTP, active FTP, TFTP: the body received, or curl's error.
    passive: Result<String, String>,
    active: Result<String, String>,
    tftp: Result<String, String>,
    /// `dpctl/dump-conntrack`, normalized.
    conns: BTreeSet<String>,
}

fn mac(ns: &Netns) -> Result<String> {
    Ok(ns
        .exec(&["cat", "/sys/class/net/eth0/address"])?
        .trim()
        .to_string())
}

/// `l` with the value after every `key` replaced by `<cleared>`.
fn clear(l: &str, key: &str) -> String {
    let mut out = String::new();
    let mut rest = l;
    while let Some(i) = rest.find(key) {
        out.push_str(&rest[..i + key.len()]);
        out.push_str("<cleared>");
        rest = rest[i + key.len()..]
            .trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
    }
    out.push_str(rest);
    out
}

/// The lines of `dpctl/dump-conntrack` about the rig's subnet, with ports,
/// ids and TCP states cleared (as OVS's `FORMAT_CT`), sorted and
/// deduplicated.
fn normalized_conns(dump: &str) -> BTreeSet<String> {
    let net = format!("=10.{NET}.0.");
    dump.lines()
        .filter(|l| l.contains(&net))
        .map(|l| clear(&clear(&clear(l, "port="), "id="), "state="))
        .collect()
}

/// Runs scenario `nat` on switch `sw` (bridge `br`, flows written in
/// `dir`) between `client` and `server`.
fn scenario(
    sw: &dyn AnySwitch,
    br: &str,
    dir: &Path,
    client: &VethHost,
    server: &VethHost,
    nat: Nat,
) -> Result<Outcome> {
    load_flows(sw, br, dir, &flows(nat))?;
    sw.appctl(&["dpctl/flush-conntrack"])?;
    // The translated address has no host behind it: its neighbour entry
    // points at the real one.
    let target = match nat {
        Nat::Src => {
            let n = format!("10.{NET}.0.240");
            let m = mac(&client.ns)?;
            server
                .ns
                .exec(&["ip", "neigh", "replace", &n, "lladdr", &m, "dev", "eth0"])?;
            server.addr.clone()
        }
        Nat::Dst => {
            let v = format!("10.{NET}.0.200");
            let m = mac(&server.ns)?;
            client
                .ns
                .exec(&["ip", "neigh", "replace", &v, "lladdr", &m, "dev", "eth0"])?;
            v
        }
    };
    let servers = FileServers::start(&server.ns, &server.addr)?;
    let ftp_url = format!("ftp://{target}/data.txt");
    let tftp_url = format!("tftp://{target}/data.txt");
    // The server is up once the control connection answers (a listing
    // would need a data connection).
    let up = wait_until(Duration::from_secs(15), || {
        curl(&client.ns, &["-I"], &ftp_url).is_ok()
    });
    anyhow::ensure!(up, "{nat:?}: the FTP server does not answer through NAT");
    let get = |opts: &[&str], url: &str| curl(&client.ns, opts, url).map_err(|e| e.to_string());
    let passive = get(FTP_PASSIVE, &ftp_url);
    // Active FTP needs the server's data connection established at the
    // client before the control connection's `226`: curl gives up when
    // the reply comes first (datapath `Pmd::receiving`).
    let active = get(FTP_ACTIVE, &ftp_url);
    let tftp = get(&[], &tftp_url);
    let conns = normalized_conns(&sw.appctl(&["dpctl/dump-conntrack"])?);
    let body = servers.body.clone();
    drop(servers);
    // Show bodies as "ok" so a mismatch report stays readable.
    let tidy = |r: Result<String, String>| match r {
        Ok(b) if b == body => Ok("ok".to_string()),
        Ok(b) => Ok(format!("{} bytes, not the file", b.len())),
        Err(e) => Err(e),
    };
    Ok(Outcome {
        passive: tidy(passive),
        active: tidy(active),
        tftp: tidy(tftp),
        conns,
    })
}

fn ferrovs_rig(tag: &str) -> Result<(Switch, String, Vec<VethHost>)> {
    let (sw, br, hosts) = bridge_with_hosts(tag, NET, 2)?;
    for h in &hosts {
        h.ns.exec(&["ethtool", "-K", "eth0", "tx", "off"])?;
    }
    Ok((sw, br, hosts))
}

#[test]
fn ftp_and_tftp_through_snat_and_dnat_work_and_leave_the_same_connections_as_stock_ovs()
-> Result<()> {
    require!(
        "curl",
        "in.tftpd",
        "python3",
        "ethtool",
        "ovs-vswitchd",
        "ovs-ofctl"
    );
    require_pyftpdlib();
    let id = std::process::id() % 10000;

    let mut stock = Vec::new();
    {
        let (_ns, ovs, hosts) = stock_rig(&format!("can{id}"), NET)?;
        for nat in [Nat::Src, Nat::Dst] {
            let o = scenario(&ovs, "br0", ovs.dir(), &hosts[0], &hosts[1], nat)
                .with_context(|| format!("stock OVS; log:\n{}", ovs.log_text()))?;
            stock.push((nat, o));
        }
    }
    let mut ours = Vec::new();
    {
        let (sw, br, hosts) = ferrovs_rig(&format!("cfn{id}"))?;
        for nat in [Nat::Src, Nat::Dst] {
            let o = scenario(&sw, &br, sw.rundir(), &hosts[0], &hosts[1], nat)
                .with_context(|| format!("ferrovs; log:\n{}", sw.log_text()))?;
            ours.push((nat, o));
        }
    }
    for ((nat, s), (_, o)) in stock.iter().zip(&ours) {
        // The oracle itself transfers everything.
        for (what, r) in [
            ("passive", &s.passive),
            ("active", &s.active),
            ("tftp", &s.tftp),
        ] {
            assert_eq!(r.as_deref(), Ok("ok"), "stock OVS, {nat:?}, {what}");
        }
        assert_eq!(
            o, s,
            "{nat:?}: ferrovs (left) and stock OVS (right) disagree"
        );
    }
    Ok(())
}
