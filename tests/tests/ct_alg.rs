//! Conntrack ALGs end to end (issue 15): real FTP and TFTP transfers between
//! two namespace hosts through a ferrovs firewall that lets the client
//! (port 1) open only the control connection (TCP 21, UDP 69) and
//! otherwise passes nothing but established and related traffic.
//!
//! - With `ct(commit,alg=ftp)` a passive (PASV) and an active (PORT) FTP
//!   download work (curl against pyftpdlib), and with
//!   `ct(commit,alg=tftp)` a TFTP download works (curl against tftpd-hpa):
//!   the data connections are `+rel`.
//! - The same firewall committing without `alg=` lets the control
//!   connections through but not the data connections: the downloads
//!   fail. So the helpers, not a hole in the firewall, carry the data.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferrovs_tests::*;

/// The firewall, with `{FTP}` and `{TFTP}` standing for the `ct` actions
/// that commit the control connections.
const FIREWALL: &str = "\
table=0,priority=200,in_port=LOCAL,actions=drop
table=0,priority=100,arp,actions=NORMAL
table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1)
table=0,priority=0,actions=drop
table=1,cookie=0x1,priority=10,tcp,ct_state=+trk+new-rel,in_port=1,tp_dst=21,actions={FTP},output:2
table=1,cookie=0x2,priority=10,udp,ct_state=+trk+new-rel,in_port=1,tp_dst=69,actions={TFTP},output:2
table=1,cookie=0x3,priority=20,ip,ct_state=+trk+rel-inv,in_port=1,actions=ct(commit),output:2
table=1,cookie=0x4,priority=20,ip,ct_state=+trk+rel-inv,in_port=2,actions=ct(commit),output:1
table=1,cookie=0x5,priority=10,ip,ct_state=+trk+est-inv,in_port=1,actions=output:2
table=1,cookie=0x6,priority=10,ip,ct_state=+trk+est-inv,in_port=2,actions=output:1
table=1,cookie=0x7,priority=0,actions=drop
";

fn load_firewall(sw: &Switch, br: &str, ftp: &str, tftp: &str) -> Result<()> {
    let flows = FIREWALL.replace("{FTP}", ftp).replace("{TFTP}", tftp);
    let file = sw.rundir().join("alg-flows.txt");
    std::fs::write(&file, flows)?;
    sw.ofctl(&["del-flows", br])?;
    sw.ofctl(&["add-flows", br, file.to_str().context("path")?])?;
    sw.appctl(&["dpctl/flush-conntrack"])?;
    Ok(())
}

/// Downloads `url` with curl in `ns` (extra curl options first); the body,
/// or an error when curl fails or times out.
fn curl(ns: &Netns, opts: &[&str], url: &str) -> Result<String> {
    let mut args = vec!["curl", "-s", "-S", "--max-time", "8"];
    args.extend_from_slice(opts);
    args.push(url);
    let out = ns.exec_output(&args)?;
    if !out.status.success() {
        bail!(
            "curl {opts:?} {url}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn require_pyftpdlib() {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import pyftpdlib"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "pyftpdlib is not installed: run scripts/install-test-deps.sh"
    );
}

#[test]
fn ftp_and_tftp_data_connections_pass_a_related_only_firewall_with_their_alg_and_not_without()
-> Result<()> {
    require!("curl", "in.tftpd", "python3");
    require_pyftpdlib();
    let tag = format!("alg{}", std::process::id() % 10000);
    let (sw, br, hosts) = bridge_with_hosts(&tag, 64, 2)?;
    let (client, server) = (&hosts[0], &hosts[1]);
    let srv_ip = server.addr.clone();

    // What the servers offer (world-readable: in.tftpd drops to user tftp).
    let dir = tempfile::Builder::new().prefix("ctpol-alg-").tempdir()?;
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let body = "ferrovs ALG test payload\n".repeat(200);
    std::fs::write(dir.path().join("data.txt"), &body)?;
    std::fs::set_permissions(
        dir.path().join("data.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )?;
    let d = dir.path().to_str().context("path")?;
    let _ftpd = server.ns.spawn(&[
        "python3",
        "-m",
        "pyftpdlib",
        "-p",
        "21",
        "-i",
        &srv_ip,
        "-d",
        d,
    ])?;
    let tftp_addr = format!("{srv_ip}:69");
    let _tftpd = server
        .ns
        .spawn(&["in.tftpd", "-L", "-s", d, "-a", &tftp_addr])?;

    let ftp_url = format!("ftp://{srv_ip}/data.txt");
    let tftp_url = format!("tftp://{srv_ip}/data.txt");
    // Passive: PASV (curl tries EPSV first otherwise, which OVS's ALG reads
    // over IPv6 only). Active: PORT, the client's own address.
    let passive: &[&str] = &["--disable-epsv"];
    let active: &[&str] = &["--disable-eprt", "-P", "-"];

    // Without helpers: the control connections pass, the data does not.
    load_firewall(&sw, &br, "ct(commit)", "ct(commit)")?;
    // The servers may take a moment to listen: the control connection
    // answering (a directory listing needs a data connection, so ask for
    // nothing but the login) shows they are up.
    let up = wait_until(Duration::from_secs(15), || {
        curl(&client.ns, &["-I"], &ftp_url).is_ok()
    });
    assert!(
        up,
        "the FTP server does not answer; log:\n{}",
        sw.log_text()
    );
    assert!(
        curl(&client.ns, passive, &ftp_url).is_err(),
        "passive FTP data passed without alg=ftp"
    );
    assert!(
        curl(&client.ns, active, &ftp_url).is_err(),
        "active FTP data passed without alg=ftp"
    );
    assert!(
        curl(&client.ns, &[], &tftp_url).is_err(),
        "TFTP data passed without alg=tftp"
    );

    // With the helpers, all three transfers work.
    load_firewall(&sw, &br, "ct(commit,alg=ftp)", "ct(commit,alg=tftp)")?;
    assert_eq!(
        curl(&client.ns, passive, &ftp_url).context("passive FTP")?,
        body
    );
    let dump = sw.appctl(&["dpctl/dump-conntrack"])?;
    assert!(
        dump.lines()
            .any(|l| l.contains("dport=21),") && l.ends_with(",helper=ftp")),
        "no FTP control connection with its helper:\n{dump}"
    );
    assert_eq!(
        curl(&client.ns, active, &ftp_url).context("active FTP")?,
        body
    );
    assert_eq!(curl(&client.ns, &[], &tftp_url).context("TFTP")?, body);
    // The related rules carried the data connections.
    let flows = sw.ofctl(&["dump-flows", &br, "table=1"])?;
    for cookie in ["0x3", "0x4"] {
        let line = flows
            .lines()
            .find(|l| l.contains(&format!("cookie={cookie},")))
            .with_context(|| format!("no rule {cookie} in:\n{flows}"))?;
        assert!(
            !line.contains("n_packets=0,"),
            "the related rule {cookie} saw nothing: {line}"
        );
    }
    Ok(())
}
