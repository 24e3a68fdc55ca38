//! JSON-RPC server behaviour (RFC 7047 section 4) against the `ferrovs-ovsdb` binary.
#![cfg(feature = "server")]

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::Server;
use ovsdb::client::ClientError;
use ovsdb::jsonrpc::Decoder;
use serde_json::{Value, json};

/// A raw connection for byte-level tests.
struct Raw {
    s: UnixStream,
    d: Decoder,
}

impl Raw {
    fn new(server: &Server) -> Raw {
        let s = UnixStream::connect(server.sock()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw {
            s,
            d: Decoder::new(),
        }
    }
    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }
    /// Next message, or None when the server closed the connection.
    fn recv(&mut self) -> Option<Value> {
        let mut buf = [0u8; 65536];
        loop {
            if let Some(v) = self.d.next_value().unwrap() {
                return Some(v);
            }
            match self.s.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.d.feed(&buf[..n]),
            }
        }
    }
}

#[test]
fn socket_is_private_to_its_owner() {
    let srv = Server::start();
    let mode = std::fs::metadata(srv.sock()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn list_dbs_get_schema_and_echo() {
    let srv = Server::start();
    let mut c = srv.client();
    assert_eq!(
        c.request("list_dbs", json!([])).unwrap(),
        json!(["Open_vSwitch", "_Server"])
    );
    let schema = c.request("get_schema", json!(["Open_vSwitch"])).unwrap();
    assert_eq!(schema["name"], "Open_vSwitch");
    assert!(schema["tables"]["Interface"]["columns"]["mtu_request"].is_object());
    assert_eq!(
        c.request("echo", json!(["hello", 1])).unwrap(),
        json!(["hello", 1])
    );
}

#[test]
fn server_database_describes_open_vswitch_and_unknown_methods_are_refused() {
    let srv = Server::start();
    let mut c = srv.client();
    // The Python IDL asks with two params.
    let schema = c
        .request(
            "get_schema",
            json!(["_Server", "2a0d7444-e730-11f1-a7cc-02fc00000001"]),
        )
        .unwrap();
    assert_eq!(schema["name"], "_Server");
    let init = c
        .request(
            "monitor_cond",
            json!(["_Server", ["srv"], {"Database": [{
                "columns": ["name", "model", "connected", "leader", "schema"],
                "where": [["name", "==", "Open_vSwitch"]]}]}]),
        )
        .unwrap();
    let rows = init["Database"].as_object().unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows.values().next().unwrap()["initial"];
    assert_eq!(row["model"], "standalone");
    assert_eq!(row["connected"], true);
    let embedded: Value = serde_json::from_str(row["schema"].as_str().unwrap()).unwrap();
    assert_eq!(embedded["name"], "Open_vSwitch");
    // _Server is read-only.
    match c.request(
        "transact",
        json!(["_Server", {"op": "delete", "table": "Database", "where": []}]),
    ) {
        Err(ClientError::Rpc(e)) => assert_eq!(e["error"], "not allowed"),
        other => panic!("expected not allowed, got {other:?}"),
    }
    assert_eq!(
        c.request("set_db_change_aware", json!([true])).unwrap(),
        json!({})
    );
    match c.request("get_server_id", json!([])) {
        Err(ClientError::Rpc(e)) => assert_eq!(e, json!("unknown method")),
        other => panic!("expected unknown method, got {other:?}"),
    }
    match c.request(
        "transact",
        json!(["Nope", {"op": "comment", "comment": "x"}]),
    ) {
        Err(ClientError::Rpc(e)) => assert_eq!(e["error"], "unknown database"),
        other => panic!("expected unknown database, got {other:?}"),
    }
    // The session still works afterwards.
    assert_eq!(c.request("echo", json!([])).unwrap(), json!([]));
}

#[test]
fn monitor_cond_since_skips_the_initial_rows_when_the_client_is_current() {
    let srv = Server::start();
    let mut c = srv.client();
    let req = json!({"Open_vSwitch": [{"columns": ["next_cfg"]}]});
    let first = c
        .request(
            "monitor_cond_since",
            json!([
                "Open_vSwitch",
                "a",
                req,
                "00000000-0000-0000-0000-000000000000"
            ]),
        )
        .unwrap();
    assert_eq!(first[0], false);
    assert_eq!(first[2]["Open_vSwitch"].as_object().unwrap().len(), 1);
    let txn = first[1].as_str().unwrap().to_owned();
    // A second client that already has that transaction gets nothing again.
    let mut c2 = srv.client();
    let again = c2
        .request("monitor_cond_since", json!(["Open_vSwitch", "b", req, txn]))
        .unwrap();
    assert_eq!(again, json!([true, txn, {}]));
    // A change arrives as update3 with a new transaction id.
    c.request(
        "transact",
        json!(["Open_vSwitch", {"op": "mutate", "table": "Open_vSwitch", "where": [],
            "mutations": [["next_cfg", "+=", 1]]}]),
    )
    .unwrap();
    c2.set_deadline(Some(std::time::Instant::now() + Duration::from_secs(10)));
    let (method, params) = c2.next_notification().expect("update3");
    assert_eq!(method, "update3");
    assert_eq!(params[0], "b");
    assert_ne!(params[1], json!(txn));
    let rows = params[2]["Open_vSwitch"].as_object().unwrap();
    assert!(rows.values().next().unwrap()["modify"]["next_cfg"].is_i64());
}

#[test]
fn messages_split_across_writes_and_batched_in_one_write_are_handled() {
    let srv = Server::start();
    let mut raw = Raw::new(&srv);
    let msg = br#"{"method":"echo","params":["a"],"id":1}"#;
    for b in msg {
        raw.send(&[*b]);
    }
    assert_eq!(raw.recv().unwrap()["result"], json!(["a"]));
    raw.send(
        br#"{"method":"echo","params":["b"],"id":2} {"method":"list_dbs","params":[],"id":3}"#,
    );
    let a = raw.recv().unwrap();
    let b = raw.recv().unwrap();
    assert_eq!(a["id"], 2);
    assert_eq!(b["result"], json!(["Open_vSwitch", "_Server"]));
}

#[test]
fn malformed_json_closes_only_that_connection() {
    let srv = Server::start();
    let mut good = srv.client();
    let mut bad = Raw::new(&srv);
    bad.send(b"{\"method\": ]]] garbage");
    let reply = bad.recv().expect("an error reply before closing");
    assert!(!reply["error"].is_null());
    assert!(bad.recv().is_none(), "connection closed after garbage");
    // Non-object JSON gets an error reply but the connection stays.
    let mut odd = Raw::new(&srv);
    odd.send(b"[1,2,3]");
    assert!(!odd.recv().unwrap()["error"].is_null());
    odd.send(br#"{"method":"echo","params":[],"id":9}"#);
    assert_eq!(odd.recv().unwrap()["id"], 9);
    assert_eq!(
        good.request("echo", json!(["still"])).unwrap(),
        json!(["still"])
    );
}

#[test]
fn transact_over_the_wire_reports_rfc7047_errors() {
    let srv = Server::start();
    let mut c = srv.client();
    let r = c
        .transact(vec![
            json!({"op": "insert", "table": "Bridge", "row": {"name": "b", "fail_mode": "bogus"}}),
        ])
        .unwrap();
    assert_eq!(r[0]["error"], "constraint violation");
    let r = c
        .transact(vec![
            json!({"op": "delete", "table": "Interface", "where": [["nope", "==", 1]]}),
        ])
        .unwrap();
    assert_eq!(r[0]["error"], "unknown column");
}

#[test]
fn monitor_sends_initial_contents_and_selected_updates() {
    let srv = Server::start();
    let mut m = srv.client();
    let mut w = srv.client();
    w.transact(vec![
        json!({"op": "insert", "table": "Queue", "row": {"dscp": 1}}),
    ])
    .unwrap();
    let initial = m
        .request(
            "monitor",
            json!(["Open_vSwitch", "mon1", {"Queue": {"columns": ["dscp"], "select": {"initial": true, "insert": true, "delete": false, "modify": true}}}]),
        )
        .unwrap();
    let rows = initial["Queue"].as_object().unwrap();
    assert_eq!(rows.len(), 1);
    let (uuid, row) = rows.iter().next().unwrap();
    assert_eq!(row["new"], json!({"dscp": 1}), "only the selected column");
    // Modify: old has the changed columns, new has all selected ones.
    w.transact(vec![json!({"op": "update", "table": "Queue", "where": [], "row": {"dscp": 2, "external_ids": ["map", [["k", "v"]]]}})])
        .unwrap();
    let (method, params) = m.next_notification().unwrap();
    assert_eq!(method, "update");
    assert_eq!(params[0], "mon1");
    assert_eq!(
        params[1]["Queue"][uuid],
        json!({"old": {"dscp": 1}, "new": {"dscp": 2}})
    );
    // A change to an unmonitored column only: no notification; delete not selected either.
    w.transact(vec![json!({"op": "update", "table": "Queue", "where": [], "row": {"external_ids": ["map", []]}})]).unwrap();
    w.transact(vec![json!({"op": "delete", "table": "Queue", "where": []})])
        .unwrap();
    w.transact(vec![
        json!({"op": "insert", "table": "Queue", "row": {"dscp": 5}}),
    ])
    .unwrap();
    let (_, params) = m.next_notification().unwrap();
    let q = params[1]["Queue"].as_object().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q.values().next().unwrap(), &json!({"new": {"dscp": 5}}));
    assert_eq!(
        m.request("monitor_cancel", json!(["mon1"])).unwrap(),
        json!({})
    );
    assert!(m.request("monitor_cancel", json!(["mon1"])).is_err());
}

#[test]
fn locks_are_granted_queued_stolen_and_released() {
    let srv = Server::start();
    let mut a = srv.client();
    let mut b = srv.client();
    assert_eq!(
        a.request("lock", json!(["L"])).unwrap(),
        json!({"locked": true})
    );
    assert_eq!(
        b.request("lock", json!(["L"])).unwrap(),
        json!({"locked": false})
    );
    let assert_op = json!({"op": "assert", "lock": "L"});
    assert!(
        a.transact(vec![assert_op.clone()]).unwrap()[0]
            .get("error")
            .is_none()
    );
    assert_eq!(
        b.transact(vec![assert_op.clone()]).unwrap()[0]["error"],
        "not owner"
    );
    // a unlocks: b is told it got the lock.
    assert_eq!(a.request("unlock", json!(["L"])).unwrap(), json!({}));
    assert_eq!(
        b.next_notification().unwrap(),
        ("locked".to_string(), json!(["L"]))
    );
    assert!(
        b.transact(vec![assert_op.clone()]).unwrap()[0]
            .get("error")
            .is_none()
    );
    // a steals it back: b is told.
    assert_eq!(
        a.request("steal", json!(["L"])).unwrap(),
        json!({"locked": true})
    );
    assert_eq!(
        b.next_notification().unwrap(),
        ("stolen".to_string(), json!(["L"]))
    );
    assert_eq!(
        b.transact(vec![assert_op]).unwrap()[0]["error"],
        "not owner"
    );
}

#[test]
fn lock_is_released_when_its_owner_disconnects() {
    let srv = Server::start();
    let mut b = srv.client();
    {
        let mut a = srv.client();
        assert_eq!(
            a.request("lock", json!(["L"])).unwrap(),
            json!({"locked": true})
        );
        assert_eq!(
            b.request("lock", json!(["L"])).unwrap(),
            json!({"locked": false})
        );
    }
    assert_eq!(
        b.next_notification().unwrap(),
        ("locked".to_string(), json!(["L"]))
    );
}

#[test]
fn blocked_wait_can_be_cancelled() {
    let srv = Server::start();
    let mut raw = Raw::new(&srv);
    raw.send(
        json!({"method": "transact", "id": 7, "params": ["Open_vSwitch",
            {"op": "wait", "timeout": 60000, "table": "Bridge", "where": [], "columns": ["name"], "until": "==", "rows": [{"name": "never"}]}]})
        .to_string()
        .as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(200));
    raw.send(
        json!({"method": "cancel", "id": null, "params": [7]})
            .to_string()
            .as_bytes(),
    );
    let r = raw.recv().unwrap();
    assert_eq!(r["id"], 7);
    assert_eq!(r["error"], "canceled");
}

#[test]
fn tcp_remote_serves_the_same_database() {
    let dir = tempfile::Builder::new()
        .prefix("db-tcp-")
        .tempdir()
        .unwrap();
    let sock = dir.path().join("db.sock");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferrovs-ovsdb"))
        .args(["--db", dir.path().join("conf.db").to_str().unwrap()])
        .args(["--remote", &format!("punix:{}", sock.display())])
        .args(["--remote", &format!("ptcp:{port}:127.0.0.1")])
        .spawn()
        .unwrap();
    // The unix remote is bound before the TCP one: wait for the latter.
    common::wait_for_socket(&sock);
    common::wait_for_tcp(&format!("127.0.0.1:{port}"));
    let mut c = ovsdb::client::Client::connect(&format!("tcp:127.0.0.1:{port}")).unwrap();
    assert_eq!(
        c.request("list_dbs", json!([])).unwrap(),
        json!(["Open_vSwitch", "_Server"])
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A client that asks after another client's transaction was answered sees that transaction,
/// as from a single-threaded ovsdb-server: its session must take in the commits already
/// published to it before it handles the request, not after.
#[test]
fn a_monitor_requested_after_another_clients_commit_was_answered_includes_it() {
    let srv = Server::start();
    let mut m = srv.client();
    let mut w = srv.client();
    for i in 1..=300u64 {
        w.transact(vec![
            json!({"op": "insert", "table": "Queue", "row": {"dscp": i % 64}}),
        ])
        .unwrap();
        let id = format!("m{i}");
        let initial = m
            .request(
                "monitor",
                json!(["Open_vSwitch", id, {"Queue": {"columns": ["dscp"]}}]),
            )
            .unwrap();
        let rows = initial
            .get("Queue")
            .and_then(Value::as_object)
            .map_or(0, |r| r.len());
        assert_eq!(rows as u64, i, "monitor {i} missed a committed row");
        m.request("monitor_cancel", json!([id])).unwrap();
    }
}
