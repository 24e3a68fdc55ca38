//! Both of vswitchd's JSON-RPC sockets (db.sock and vswitchd.ctl) share one
//! framer and one message-size limit: a peer that sends a message over the
//! limit gets a clear error, a log line names the problem, its connection
//! is closed before the message completes, and other clients carry on.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use ferrovs_tests::*;
use serde_json::{Value, json};

/// `ovsdb::jsonrpc::MAX_MESSAGE_BYTES`, the limit on both sockets.
const LIMIT: usize = 64 << 20;

/// What happened to a peer that sent one message of `LIMIT` + 4 MiB.
struct Oversized {
    /// Everything the server sent back before closing.
    reply: Value,
    /// Whether the whole message could be written (it should not: the
    /// server closes the connection as soon as the limit is passed).
    sent_whole: bool,
}

/// Sends an echo request whose one string argument is longer than the limit.
fn send_oversized(path: &Path) -> Result<Oversized> {
    let mut s = UnixStream::connect(path).with_context(|| format!("connect {}", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut w = s.try_clone()?;
    let writer = std::thread::spawn(move || -> bool {
        let chunk = vec![b'x'; 1 << 20];
        let head: &[u8] = br#"{"id":1,"method":"echo","params":[""#;
        if w.write_all(head).is_err() {
            return false;
        }
        for _ in 0..(LIMIT >> 20) + 4 {
            if w.write_all(&chunk).is_err() {
                return false;
            }
        }
        w.write_all(br#""]}"#).is_ok()
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // Linux resets a unix stream whose peer closed with unread
            // input, once the data before it has been read.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e).context("reading the reply to an oversized message"),
        }
    }
    let sent_whole = writer.join().expect("writer thread");
    let reply = serde_json::from_slice(&got).with_context(|| {
        format!(
            "reply to an oversized message: {:?}",
            String::from_utf8_lossy(&got)
        )
    })?;
    Ok(Oversized { reply, sent_whole })
}

/// One request on an open raw connection, and its reply.
fn echo(s: &mut UnixStream, id: u64) -> Result<Value> {
    let req = json!({"id": id, "method": "echo", "params": ["still here"]});
    s.write_all(req.to_string().as_bytes())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf)?;
        anyhow::ensure!(n > 0, "connection closed");
        got.extend_from_slice(&buf[..n]);
        if let Ok(v) = serde_json::from_slice::<Value>(&got) {
            return Ok(v);
        }
    }
}

fn limit_text() -> String {
    format!("message exceeds the limit of {LIMIT} bytes")
}

#[test]
fn oversized_message_on_db_sock_gets_an_error_and_other_clients_carry_on() -> Result<()> {
    require!();
    let sw = Switch::start()?;
    let sock = sw.rundir().join("db.sock");
    let mut other = UnixStream::connect(&sock)?;
    other.set_read_timeout(Some(Duration::from_secs(30)))?;
    assert_eq!(echo(&mut other, 1)?["result"], json!(["still here"]));

    let o = send_oversized(&sock)?;
    assert!(
        !o.sent_whole,
        "the server read the whole oversized message instead of closing"
    );
    assert!(o.reply["id"].is_null(), "{}", o.reply);
    assert_eq!(
        o.reply["error"]["details"],
        json!(limit_text()),
        "{}",
        o.reply
    );
    assert!(
        sw.log_text().contains(&limit_text()),
        "no log line about the oversized message:\n{}",
        sw.log_text()
    );

    // The connection that was open all along, and a new client, still work.
    assert_eq!(echo(&mut other, 2)?["result"], json!(["still here"]));
    sw.vsctl(&["set", "Open_vSwitch", ".", "external_ids:framing=ok"])?;
    let got = sw.vsctl(&["get", "Open_vSwitch", ".", "external_ids:framing"])?;
    assert_eq!(got.trim(), "ok");
    Ok(())
}

#[test]
fn oversized_message_on_vswitchd_ctl_gets_an_error_and_appctl_still_works() -> Result<()> {
    require!();
    let sw = Switch::start()?;
    let ctl = sw.rundir().join("vswitchd.ctl");
    assert!(
        wait_until(Duration::from_secs(20), || ctl.exists()),
        "vswitchd.ctl missing"
    );
    let before = sw.appctl(&["version"])?;

    let o = send_oversized(&ctl)?;
    assert!(
        !o.sent_whole,
        "the server read the whole oversized message instead of closing"
    );
    assert!(o.reply["id"].is_null(), "{}", o.reply);
    assert_eq!(
        o.reply["error"],
        json!(format!("request rejected: {}", limit_text())),
        "{}",
        o.reply
    );
    assert!(
        sw.log_text().contains(&limit_text()),
        "no log line about the oversized request:\n{}",
        sw.log_text()
    );

    assert_eq!(sw.appctl(&["version"])?, before);
    Ok(())
}
