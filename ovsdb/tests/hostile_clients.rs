//! The DB server against clients that misbehave: waits that never hold, monitors and echo
//! floods whose replies are never read. Bounds here are on resources (memory, threads), with
//! generous margins; timeouts only detect hangs.
#![cfg(feature = "server")]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::Server;
use ovsdb::jsonrpc::Decoder;
use serde_json::{Value, json};

const MIB: u64 = 1 << 20;

fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Resident memory of the server, in bytes.
fn rss(srv: &Server) -> u64 {
    status_field(srv.child.as_ref().unwrap().id(), "VmRSS:") * 1024
}

fn threads(srv: &Server) -> u64 {
    status_field(srv.child.as_ref().unwrap().id(), "Threads:")
}

/// The server's open sockets (their inodes): its listeners and its connections. Sockets only:
/// the server also holds descriptors it inherited from this test process, whose other threads
/// open and close pipes and files while they spawn their own servers.
fn server_sockets(srv: &Server) -> std::collections::BTreeSet<String> {
    let pid = srv.child.as_ref().unwrap().id();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.starts_with("socket:"))
        .collect()
}

fn connect(srv: &Server) -> UnixStream {
    let s = UnixStream::connect(srv.sock()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Next message on `s`; None when the server closed the connection or `s`'s read timeout fired.
fn recv(s: &mut UnixStream, d: &mut Decoder) -> Option<Value> {
    let mut buf = [0u8; 65536];
    loop {
        if let Some(v) = d.next_value().unwrap() {
            return Some(v);
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => d.feed(&buf[..n]),
        }
    }
}

fn wait_op(timeout: Option<u64>, value: &str) -> Value {
    let mut op = json!({"op": "wait", "table": "Open_vSwitch", "where": [],
        "columns": ["external_ids"], "until": "==",
        "rows": [{"external_ids": ["map", [["k", value]]]}]});
    if let Some(t) = timeout {
        op["timeout"] = json!(t);
    }
    op
}

fn set_external_id(srv: &Server, value: &str) {
    let mut c = srv.client();
    let r = c
        .transact(vec![
            json!({"op": "update", "table": "Open_vSwitch", "where": [],
            "row": {"external_ids": ["map", [["k", value]]]}}),
        ])
        .unwrap();
    assert!(ovsdb::client::first_error(&r).is_none(), "{r:?}");
}

#[test]
fn wait_without_timeout_blocks_until_a_later_transaction_makes_it_true() {
    let srv = Server::start();
    let mut s = connect(&srv);
    let mut d = Decoder::new();
    let req = json!({"method": "transact", "id": 1, "params": ["Open_vSwitch", wait_op(None, "later"),
        {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["external_ids"]}]});
    s.write_all(req.to_string().as_bytes()).unwrap();
    // Nothing comes back while the condition does not hold (RFC 7047: no timeout, no limit).
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert_eq!(
        recv(&mut s, &mut d),
        None,
        "a wait without timeout returned early"
    );
    set_external_id(&srv, "later");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let r = recv(&mut s, &mut d).expect("no reply after the wait came true");
    assert_eq!(r["id"], 1);
    assert_eq!(r["error"], Value::Null, "{r}");
    assert_eq!(r["result"][0], json!({}));
    assert_eq!(
        r["result"][1]["rows"][0]["external_ids"],
        json!(["map", [["k", "later"]]])
    );
}

#[test]
fn wait_with_timeout_fails_with_timed_out_once_it_passes() {
    let srv = Server::start();
    let mut c = srv.client();
    let r = c.transact(vec![wait_op(Some(300), "never")]).unwrap();
    assert_eq!(r[0]["error"], "timed out", "{r:?}");
}

#[test]
fn many_blocked_waits_hold_no_threads_and_do_not_starve_other_clients() {
    let srv = Server::start();
    let mut flood = connect(&srv);
    let mut batch = String::new();
    for i in 0..520 {
        let tx = if i % 2 == 0 {
            wait_op(Some(600_000), "never")
        } else {
            wait_op(None, "never")
        };
        batch.push_str(
            &json!({"method": "transact", "id": i, "params": ["Open_vSwitch", tx]}).to_string(),
        );
    }
    flood.write_all(batch.as_bytes()).unwrap();
    // While they are pending, everyone else is served, commits included.
    let mut c = srv.client();
    assert_eq!(c.request("echo", json!(["x"])).unwrap(), json!(["x"]));
    set_external_id(&srv, "other");
    assert!(
        threads(&srv) < 100,
        "{} threads serve 520 blocked waits",
        threads(&srv)
    );
    // Closing the connection cancels its waits; the server keeps serving.
    drop(flood);
    set_external_id(&srv, "after-close");
    let mut c = srv.client();
    assert_eq!(c.request("echo", json!(["y"])).unwrap(), json!(["y"]));
    assert_eq!(
        common::select(&mut c, "Open_vSwitch", &["external_ids"])[0]["external_ids"],
        json!(["map", [["k", "after-close"]]])
    );
}

#[test]
fn blocked_wait_is_cancelled_by_cancel_and_others_complete() {
    let srv = Server::start();
    let mut s = connect(&srv);
    let mut d = Decoder::new();
    let w1 = json!({"method": "transact", "id": "a", "params": ["Open_vSwitch", wait_op(None, "never")]});
    let w2 =
        json!({"method": "transact", "id": "b", "params": ["Open_vSwitch", wait_op(None, "soon")]});
    s.write_all(format!("{w1}{w2}").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.write_all(
        json!({"method": "cancel", "id": null, "params": ["a"]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let r = recv(&mut s, &mut d).unwrap();
    assert_eq!((&r["id"], &r["error"]), (&json!("a"), &json!("canceled")));
    set_external_id(&srv, "soon");
    let r = recv(&mut s, &mut d).unwrap();
    assert_eq!((&r["id"], &r["error"]), (&json!("b"), &Value::Null), "{r}");
}

#[test]
fn monitor_that_is_never_read_is_dropped_and_memory_stays_bounded() {
    let srv = Server::start();
    let mut slow = connect(&srv);
    slow.write_all(
        json!({"method": "monitor", "id": "m", "params": ["Open_vSwitch", "mon",
            {"Open_vSwitch": {"columns": ["external_ids"]}}]})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let before = rss(&srv);
    // 100 commits of a 1 MiB value: each update carries the old and the new value, so about
    // 200 MiB of updates for a client that reads none of them.
    let mut c = srv.client();
    for i in 0..100 {
        let big = format!("{i:04}{}", "v".repeat(MIB as usize));
        let r = c
            .transact(vec![
                json!({"op": "update", "table": "Open_vSwitch", "where": [],
                "row": {"external_ids": ["map", [["k", big]]]}}),
            ])
            .unwrap();
        assert!(ovsdb::client::first_error(&r).is_none());
    }
    let grown = rss(&srv).saturating_sub(before);
    println!("unread monitor: server RSS grew by {} MiB", grown / MIB);
    assert!(
        grown < 100 * MIB,
        "server grew by {} MiB for an unread monitor",
        grown / MIB
    );
    // The slow client was disconnected: after what was queued, its stream ends.
    let mut d = Decoder::new();
    let mut updates = 0;
    while let Some(m) = recv(&mut slow, &mut d) {
        if m["method"] == "update" {
            updates += 1;
        }
    }
    assert!(
        updates < 100,
        "the unread monitor received all {updates} updates"
    );
    assert_eq!(c.request("echo", json!([1])).unwrap(), json!([1]));
}

#[test]
fn pipelined_echo_flood_without_reading_is_bounded() {
    let srv = Server::start();
    let before = rss(&srv);
    let mut flood = connect(&srv);
    flood
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let payload = "e".repeat(64 * 1024);
    let mut written: u64 = 0;
    let mut id = 0u64;
    // Up to 500 MiB of echo requests, never reading a reply; a server that stops reading
    // makes the write block, and the write timeout ends the flood.
    while written < 500 * MIB {
        id += 1;
        let req = json!({"method": "echo", "id": id, "params": [payload]}).to_string();
        match flood.write_all(req.as_bytes()) {
            Ok(()) => written += req.len() as u64,
            Err(_) => break,
        }
    }
    let grown = rss(&srv).saturating_sub(before);
    println!(
        "echo flood: {} MiB written before the server stopped reading; RSS grew by {} MiB",
        written / MIB,
        grown / MIB
    );
    assert!(
        grown < 100 * MIB,
        "server grew by {} MiB after {} MiB of unread echoes",
        grown / MIB,
        written / MIB
    );
    // Others are still served while the flood is held open.
    let mut c = srv.client();
    assert_eq!(c.request("echo", json!(["ok"])).unwrap(), json!(["ok"]));
    // And the flooding client gets its replies once it reads.
    let mut d = Decoder::new();
    let first = recv(&mut flood, &mut d).unwrap();
    assert_eq!(first["id"], 1);
}

#[test]
fn flooding_client_that_closes_without_reading_is_released() {
    let srv = Server::start();
    // A client of the server itself first, so its own descriptors are all open.
    let mut c = srv.client();
    assert_eq!(c.request("echo", json!([])).unwrap(), json!([]));
    let before = server_sockets(&srv);
    let mut flood = connect(&srv);
    // One answered echo first: the server has accepted this connection, so the sockets compared
    // below do not depend on how soon a loaded server gets to its accept.
    flood
        .write_all(
            json!({"method": "echo", "id": "hello", "params": []})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    let mut d = Decoder::new();
    assert_eq!(
        recv(&mut flood, &mut d).expect("echo answered")["id"],
        "hello"
    );
    flood
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let payload = "f".repeat(64 * 1024);
    for id in 0..2000 {
        let req = json!({"method": "echo", "id": id, "params": [payload]}).to_string();
        if flood.write_all(req.as_bytes()).is_err() {
            break;
        }
    }
    // The flooding connection is the socket that is new since it connected (the harness's own
    // probe of the socket may still be closing then, so the sockets are compared, not counted).
    let flood_side: Vec<String> = server_sockets(&srv).difference(&before).cloned().collect();
    assert_eq!(
        flood_side.len(),
        1,
        "server sockets new since the flood: {flood_side:?}"
    );
    // The server stopped reading it; once it closes, the server lets go of the connection.
    drop(flood);
    let start = std::time::Instant::now();
    while server_sockets(&srv).contains(&flood_side[0]) && start.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !server_sockets(&srv).contains(&flood_side[0]),
        "the closed flooding connection was never released"
    );
    assert_eq!(c.request("echo", json!([1])).unwrap(), json!([1]));
}

#[test]
fn requests_beyond_the_transactions_in_progress_cap_wait_and_are_then_served() {
    let srv = Server::start();
    let s = connect(&srv);
    let mut w = s.try_clone().unwrap();
    // More blocked waits than one connection may have in progress, then an echo behind them.
    let writer = std::thread::spawn(move || {
        let mut batch = String::new();
        for i in 0..4200 {
            batch.push_str(
                &json!({"method": "transact", "id": i, "params": ["Open_vSwitch", wait_op(None, "go")]})
                    .to_string(),
            );
        }
        batch.push_str(&json!({"method": "echo", "id": "last", "params": []}).to_string());
        w.write_all(batch.as_bytes()).unwrap();
    });
    let mut s = s;
    let mut d = Decoder::new();
    // The echo stays unread behind the cap: nothing comes back while the waits block.
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    assert_eq!(
        recv(&mut s, &mut d),
        None,
        "a request beyond the cap was handled"
    );
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    set_external_id(&srv, "go");
    writer.join().unwrap();
    let mut answered = 0;
    let mut echoed = false;
    while answered < 4200 || !echoed {
        let m = recv(&mut s, &mut d).expect("server stopped answering");
        if m["id"] == "last" {
            echoed = true;
            continue;
        }
        assert_eq!(m["error"], Value::Null, "{m}");
        answered += 1;
    }
    assert_eq!(answered, 4200);
}
