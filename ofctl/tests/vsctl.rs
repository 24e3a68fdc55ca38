//! `vsctl` against an in-process OVSDB server: every verb, errors and exit statuses, and
//! all-or-nothing chained transactions.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ovsdb::Db;
use ovsdb::server::{Remote, serve};
use serde_json::{Value, json};

struct Env {
    _dir: tempfile::TempDir,
    target: String,
    db: Db,
    _rt: tokio::runtime::Runtime,
}

fn env() -> Env {
    let dir = tempfile::Builder::new()
        .prefix("db-vsctl-")
        .tempdir()
        .unwrap();
    let sock = dir.path().join("db.sock");
    let db = Db::open(dir.path().join("conf.db")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.spawn(serve(
        db.clone(),
        vec![Remote::Unix(sock.clone())],
        Default::default(),
    ));
    for _ in 0..500 {
        if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Env {
        target: format!("unix:{}", sock.display()),
        _dir: dir,
        db,
        _rt: rt,
    }
}

/// Run the vsctl binary: (status, stdout, stderr).
fn vsctl(e: &Env, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vsctl"))
        .arg(format!("--db={}", e.target))
        .arg("--no-wait")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run and require success; returns stdout.
fn ok(e: &Env, args: &[&str]) -> String {
    let (st, out, err) = vsctl(e, args);
    assert_eq!(st, 0, "vsctl {args:?} failed: {err}");
    out
}

/// Run and require failure with status 1 and a message containing `msg`.
fn fails(e: &Env, args: &[&str], msg: &str) {
    let (st, _, err) = vsctl(e, args);
    assert_eq!(st, 1, "vsctl {args:?} should fail");
    assert!(err.starts_with("vsctl: "), "{err}");
    assert!(err.contains(msg), "expected {msg:?} in {err:?}");
}

fn rows(e: &Env, table: &str) -> usize {
    e.db.snapshot().table(table).len()
}

#[test]
fn add_br_list_br_br_exists_and_del_br() {
    let e = env();
    ok(&e, &["add-br", "br1"]);
    ok(&e, &["add-br", "br0"]);
    assert_eq!(ok(&e, &["list-br"]), "br0\nbr1\n");
    assert_eq!(vsctl(&e, &["br-exists", "br0"]).0, 0);
    assert_eq!(vsctl(&e, &["br-exists", "br9"]).0, 2);
    assert_eq!(ok(&e, &["br-to-parent", "br0"]), "br0\n");
    assert_eq!(ok(&e, &["get", "interface", "br0", "type"]), "internal\n");
    fails(
        &e,
        &["add-br", "br0"],
        "cannot create a bridge named br0 because a bridge named br0 already exists",
    );
    ok(&e, &["--may-exist", "add-br", "br0"]);
    ok(&e, &["del-br", "br1"]);
    assert_eq!(ok(&e, &["list-br"]), "br0\n");
    fails(&e, &["del-br", "br9"], "no bridge named br9");
    ok(&e, &["--if-exists", "del-br", "br9"]);
    ok(&e, &["del-br", "br0"]);
    assert_eq!(
        rows(&e, "Bridge") + rows(&e, "Port") + rows(&e, "Interface"),
        0
    );
}

#[test]
fn ports_and_interfaces_are_added_listed_mapped_and_deleted() {
    let e = env();
    ok(&e, &["add-br", "br0"]);
    ok(&e, &["add-br", "br1"]);
    ok(&e, &["add-port", "br0", "p1", "tag=10", "trunks=10,20"]);
    ok(
        &e,
        &[
            "add-port",
            "br0",
            "p2",
            "--",
            "set",
            "interface",
            "p2",
            "type=dpdkvhostuser",
            "options:vhost-server-path=/tmp/x",
        ],
    );
    assert_eq!(ok(&e, &["list-ports", "br0"]), "p1\np2\n");
    assert_eq!(ok(&e, &["list-ifaces", "br0"]), "p1\np2\n");
    assert_eq!(ok(&e, &["port-to-br", "p2"]), "br0\n");
    assert_eq!(ok(&e, &["iface-to-br", "p1"]), "br0\n");
    assert_eq!(
        ok(&e, &["get", "port", "p1", "tag", "trunks"]),
        "10\n[10, 20]\n"
    );
    assert_eq!(
        ok(&e, &["get", "interface", "p2", "options:vhost-server-path"]),
        "\"/tmp/x\"\n"
    );
    fails(
        &e,
        &["add-port", "br1", "p1"],
        "cannot create a port named p1 because a port named p1 already exists on bridge br0",
    );
    ok(&e, &["--may-exist", "add-port", "br0", "p1"]);
    fails(&e, &["add-port", "br9", "p9"], "no bridge named br9");
    fails(&e, &["port-to-br", "nope"], "no port named nope");
    fails(&e, &["iface-to-br", "nope"], "no interface named nope");
    fails(
        &e,
        &["del-port", "br1", "p1"],
        "bridge br1 does not have a port p1",
    );
    ok(&e, &["del-port", "br0", "p1"]);
    ok(&e, &["del-port", "p2"]);
    fails(&e, &["del-port", "p2"], "no port named p2");
    ok(&e, &["--if-exists", "del-port", "p2"]);
    assert_eq!(ok(&e, &["list-ports", "br0"]), "");
    assert_eq!(
        rows(&e, "Interface"),
        2,
        "only the bridges' local interfaces remain"
    );
}

#[test]
fn set_get_add_remove_and_clear_on_maps_and_sets() {
    let e = env();
    ok(&e, &["add-br", "br0"]);
    ok(
        &e,
        &[
            "set",
            "bridge",
            "br0",
            "other_config:a=1",
            "external_ids={x=y, z=w}",
            "flood_vlans=[1,2,3]",
        ],
    );
    assert_eq!(
        ok(
            &e,
            &[
                "get",
                "bridge",
                "br0",
                "other_config:a",
                "external_ids",
                "flood_vlans"
            ]
        ),
        "\"1\"\n{x=y, z=w}\n[1, 2, 3]\n"
    );
    ok(&e, &["add", "bridge", "br0", "flood_vlans", "4"]);
    ok(
        &e,
        &["add", "bridge", "br0", "external_ids", "x=ignored", "n=m"],
    );
    assert_eq!(
        ok(&e, &["get", "bridge", "br0", "external_ids", "flood_vlans"]),
        "{n=m, x=y, z=w}\n[1, 2, 3, 4]\n"
    );
    ok(&e, &["remove", "bridge", "br0", "flood_vlans", "1", "2"]);
    ok(
        &e,
        &[
            "remove",
            "bridge",
            "br0",
            "external_ids",
            "x",
            "z=not-the-value",
        ],
    );
    assert_eq!(
        ok(&e, &["get", "bridge", "br0", "external_ids", "flood_vlans"]),
        "{n=m, z=w}\n[3, 4]\n"
    );
    ok(
        &e,
        &["clear", "bridge", "br0", "external_ids", "flood_vlans"],
    );
    assert_eq!(
        ok(&e, &["get", "bridge", "br0", "external_ids", "flood_vlans"]),
        "{}\n[]\n"
    );
    fails(
        &e,
        &["get", "bridge", "br0", "other_config:missing"],
        "no key \"missing\"",
    );
    assert_eq!(
        ok(
            &e,
            &[
                "--if-exists",
                "get",
                "bridge",
                "br0",
                "other_config:missing"
            ]
        ),
        ""
    );
    fails(
        &e,
        &["set", "bridge", "br0", "nosuchcolumn=1"],
        "Bridge does not contain a column whose name matches \"nosuchcolumn\"",
    );
    fails(&e, &["set", "port", "br0", "tag=5000"], "4095");
    fails(
        &e,
        &["set", "bridge", "br0", "fail_mode=bogus"],
        "allowed values",
    );
    fails(
        &e,
        &["set", "bridge", "br9", "fail_mode=secure"],
        "no row \"br9\" in table Bridge",
    );
    fails(
        &e,
        &["set", "nosuchtable", "x", "a=b"],
        "unknown table \"nosuchtable\"",
    );
    fails(
        &e,
        &["clear", "port", "br0", "interfaces"],
        "not allowed to be empty",
    );
    // Root row by ".".
    ok(
        &e,
        &["set", "open_vswitch", ".", "external_ids:system-id=host1"],
    );
    assert_eq!(
        ok(&e, &["get", "Open_vSwitch", ".", "external_ids:system-id"]),
        "host1\n"
    );
}

#[test]
fn list_and_find_print_in_every_format() {
    let e = env();
    ok(&e, &["add-br", "br0"]);
    ok(&e, &["add-port", "br0", "p1", "tag=10"]);
    ok(&e, &["add-port", "br0", "p2", "tag=20"]);
    let out = ok(&e, &["--columns=name,tag", "list", "port", "p1"]);
    assert_eq!(out, "name                : p1\ntag                 : 10\n");
    let out = ok(&e, &["--columns=name", "find", "port", "tag=20"]);
    assert_eq!(out, "name                : p2\n");
    let out = ok(&e, &["--columns=name", "find", "port", "tag>5", "tag<15"]);
    assert_eq!(out, "name                : p1\n");
    let out = ok(
        &e,
        &[
            "--format=json",
            "--columns=name,tag",
            "find",
            "port",
            "tag!=[]",
        ],
    );
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["headings"], json!(["name", "tag"]));
    let mut data = v["data"].as_array().unwrap().clone();
    data.sort_by_key(|r| r[0].as_str().unwrap().to_owned());
    assert_eq!(data, vec![json!(["p1", 10]), json!(["p2", 20])]);
    let out = ok(
        &e,
        &["--format=csv", "--columns=name,tag", "list", "port", "p2"],
    );
    assert_eq!(out, "name,tag\np2,20\n");
    let out = ok(
        &e,
        &["--format=table", "--columns=name,tag", "list", "port", "p2"],
    );
    assert_eq!(out, "name tag\n---- ---\np2   20\n");
    let out = ok(&e, &["list", "bridge"]);
    assert!(out.starts_with("_uuid               : "), "{out}");
    assert!(out.contains("\nname                : br0\n"), "{out}");
    fails(
        &e,
        &["list", "port", "nope"],
        "no row \"nope\" in table Port",
    );
}

#[test]
fn create_with_id_reference_and_destroy() {
    let e = env();
    ok(&e, &["add-br", "br0"]);
    let out = ok(&e, &["create", "QoS", "type=linux-htb"]);
    let uuid = out.trim();
    assert!(
        uuid::Uuid::parse_str(uuid).is_ok(),
        "create prints the new uuid: {out}"
    );
    assert_eq!(ok(&e, &["get", "qos", uuid, "type"]), "linux-htb\n");
    ok(
        &e,
        &[
            "--",
            "--id=@c",
            "create",
            "Controller",
            "target=\"tcp:127.0.0.1:6653\"",
            "--",
            "set",
            "bridge",
            "br0",
            "controller=@c",
        ],
    );
    assert_eq!(ok(&e, &["get-controller", "br0"]), "tcp:127.0.0.1:6653\n");
    fails(
        &e,
        &["set", "bridge", "br0", "controller=@nope"],
        "row id \"@nope\" is referenced but never created",
    );
    // A reference may come before the create that makes the row (OVS's
    // NetFlow recipe).
    ok(
        &e,
        &[
            "--",
            "set",
            "bridge",
            "br0",
            "netflow=@nf",
            "--",
            "--id=@nf",
            "create",
            "NetFlow",
            "targets=\"127.0.0.1:2055\"",
        ],
    );
    assert_eq!(rows(&e, "NetFlow"), 1);
    let nf = ok(&e, &["get", "bridge", "br0", "netflow"]);
    assert_eq!(
        ok(&e, &["get", "netflow", nf.trim(), "targets"]),
        "[\"127.0.0.1:2055\"]\n"
    );
    ok(&e, &["destroy", "qos", uuid]);
    assert_eq!(rows(&e, "QoS"), 0);
    fails(&e, &["destroy", "qos", uuid], "no row");
    ok(&e, &["--if-exists", "destroy", "qos", uuid]);
    ok(&e, &["create", "Queue", "dscp=1"]);
    ok(&e, &["create", "Queue", "dscp=2"]);
    ok(&e, &["--all", "destroy", "queue"]);
    assert_eq!(rows(&e, "Queue"), 0);
}

/// OVS's mirror recipe spells columns with dashes (`select-src-port`):
/// ovs-vsctl takes `-` for `_` and ignores case in column names.
#[test]
fn column_names_match_with_dashes_for_underscores_as_in_ovs_vsctl() {
    let e = env();
    ok(&e, &["add-br", "br0"]);
    ok(&e, &["add-port", "br0", "p1"]);
    ok(&e, &["add-port", "br0", "p2"]);
    ok(
        &e,
        &[
            "--",
            "--id=@p",
            "get",
            "port",
            "p1",
            "--",
            "--id=@out",
            "get",
            "port",
            "p2",
            "--",
            "--id=@m",
            "create",
            "mirror",
            "name=m0",
            "select-src-port=@p",
            "select-dst-port=@p",
            "output-port=@out",
            "--",
            "set",
            "bridge",
            "br0",
            "mirrors=@m",
        ],
    );
    let p1 = ok(&e, &["get", "port", "p1", "_uuid"]);
    assert_eq!(
        ok(&e, &["get", "mirror", "m0", "select_src_port"]),
        format!("[{}]\n", p1.trim())
    );
    assert_eq!(
        ok(&e, &["get", "Mirror", "m0", "SELECT-DST-PORT"]),
        format!("[{}]\n", p1.trim())
    );
    fails(
        &e,
        &["get", "mirror", "m0", "select"],
        "Mirror contains more than one column whose name matches \"select\"",
    );
}

#[test]
fn controller_fail_mode_and_manager_verbs() {
    let e = env();
    ok(&e, &["add-br", "br0"]);
    ok(
        &e,
        &[
            "set-controller",
            "br0",
            "tcp:127.0.0.1:6653",
            "tcp:127.0.0.1:6654",
        ],
    );
    assert_eq!(
        ok(&e, &["get-controller", "br0"]),
        "tcp:127.0.0.1:6653\ntcp:127.0.0.1:6654\n"
    );
    ok(&e, &["set-controller", "br0", "tcp:127.0.0.1:6655"]);
    assert_eq!(rows(&e, "Controller"), 1, "old controllers are replaced");
    ok(&e, &["del-controller", "br0"]);
    assert_eq!(ok(&e, &["get-controller", "br0"]), "");
    assert_eq!(rows(&e, "Controller"), 0);
    ok(&e, &["set-fail-mode", "br0", "secure"]);
    assert_eq!(ok(&e, &["get-fail-mode", "br0"]), "secure\n");
    fails(
        &e,
        &["set-fail-mode", "br0", "loose"],
        "fail-mode must be \"standalone\" or \"secure\"",
    );
    ok(&e, &["del-fail-mode", "br0"]);
    assert_eq!(ok(&e, &["get-fail-mode", "br0"]), "");
    fails(&e, &["get-fail-mode", "br9"], "no bridge named br9");
    ok(&e, &["set-manager", "ptcp:6640:127.0.0.1"]);
    assert_eq!(ok(&e, &["get-manager"]), "ptcp:6640:127.0.0.1\n");
    ok(&e, &["del-manager"]);
    assert_eq!(ok(&e, &["get-manager"]), "");
}

#[test]
fn show_uses_the_ovs_vsctl_layout() {
    let e = env();
    ok(&e, &["add-br", "br0"]);
    ok(&e, &["set-controller", "br0", "tcp:127.0.0.1:6653"]);
    ok(&e, &["set-fail-mode", "br0", "secure"]);
    ok(&e, &["set", "bridge", "br0", "datapath_type=netdev"]);
    ok(
        &e,
        &[
            "add-port",
            "br0",
            "vhu0",
            "tag=5",
            "--",
            "set",
            "interface",
            "vhu0",
            "type=dpdkvhostuserclient",
            "options:vhost-server-path=/tmp/vhu0",
        ],
    );
    let root =
        e.db.snapshot()
            .table("Open_vSwitch")
            .keys()
            .next()
            .unwrap()
            .to_string();
    let expected = format!(
        "{root}
    Bridge br0
        Controller \"tcp:127.0.0.1:6653\"
        fail_mode: secure
        datapath_type: netdev
        Port br0
            Interface br0
                type: internal
        Port vhu0
            tag: 5
            Interface vhu0
                type: dpdkvhostuserclient
                options: {{vhost-server-path=\"/tmp/vhu0\"}}
"
    );
    assert_eq!(ok(&e, &["show"]), expected);
}

#[test]
fn chained_commands_are_one_transaction_and_a_late_error_changes_nothing() {
    let e = env();
    ok(&e, &["add-br", "br0"]);
    let before = ok(&e, &["show"]);
    fails(
        &e,
        &[
            "add-br",
            "br1",
            "--",
            "add-port",
            "br1",
            "p1",
            "--",
            "set",
            "bridge",
            "br0",
            "fail_mode=secure",
            "--",
            "add-port",
            "br9",
            "p2",
        ],
        "no bridge named br9",
    );
    assert_eq!(
        ok(&e, &["show"]),
        before,
        "nothing of the failed chain was applied"
    );
    assert_eq!(ok(&e, &["list-br"]), "br0\n");
    // The same chain without the error applies every command at once.
    ok(
        &e,
        &[
            "add-br",
            "br1",
            "--",
            "add-port",
            "br1",
            "p1",
            "--",
            "set",
            "bridge",
            "br0",
            "fail_mode=secure",
        ],
    );
    assert_eq!(ok(&e, &["list-br"]), "br0\nbr1\n");
    assert_eq!(ok(&e, &["list-ports", "br1"]), "p1\n");
    // Later commands see earlier ones' effects: delete and re-add in one go.
    ok(&e, &["del-port", "p1", "--", "add-port", "br0", "p1"]);
    assert_eq!(ok(&e, &["port-to-br", "p1"]), "br0\n");
}

#[test]
fn wait_until_returns_once_the_condition_holds() {
    let e = env();
    ok(&e, &["add-br", "br0"]);
    let db = e.db.clone();
    let setter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        db.transact(json!(["Open_vSwitch", {"op": "update", "table": "Bridge", "where": [], "row": {"external_ids": ["map", [["ready", "yes"]]]}}]));
    });
    ok(
        &e,
        &[
            "--timeout=20",
            "wait-until",
            "bridge",
            "br0",
            "external_ids:ready=yes",
        ],
    );
    setter.join().unwrap();
    fails(
        &e,
        &[
            "--timeout=1",
            "wait-until",
            "bridge",
            "br0",
            "external_ids:ready=no",
        ],
        "timeout",
    );
}

#[test]
fn without_no_wait_vsctl_waits_for_cur_cfg() {
    let e = env();
    let stop = Arc::new(AtomicBool::new(false));
    // Stand-in for vswitchd: copy next_cfg to cur_cfg after each commit.
    let copier = {
        let (db, stop) = (e.db.clone(), stop.clone());
        let rx = db.subscribe();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if rx.recv_timeout(Duration::from_millis(50)).is_err() {
                    continue;
                }
                let r = db.transact(json!(["Open_vSwitch", {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg", "cur_cfg"]}]));
                let row = &r[0]["rows"][0];
                if row["next_cfg"] != row["cur_cfg"] {
                    db.transact(json!(["Open_vSwitch", {"op": "update", "table": "Open_vSwitch", "where": [], "row": {"cur_cfg": row["next_cfg"].clone()}}]));
                }
            }
        })
    };
    let out = Command::new(env!("CARGO_BIN_EXE_vsctl"))
        .args([
            format!("--db={}", e.target),
            "--timeout=20".into(),
            "add-br".into(),
            "br0".into(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = e.db.transact(json!(["Open_vSwitch", {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg", "cur_cfg"]}]));
    assert_eq!(r[0]["rows"][0]["next_cfg"], 1);
    assert_eq!(r[0]["rows"][0]["cur_cfg"], 1);
    stop.store(true, Ordering::Relaxed);
    copier.join().unwrap();
    // Nobody copies any more: vsctl times out (the change itself is committed).
    let out = Command::new(env!("CARGO_BIN_EXE_vsctl"))
        .args([
            format!("--db={}", e.target),
            "--timeout=1".into(),
            "add-br".into(),
            "br1".into(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timeout"));
}

#[test]
fn init_emer_reset_and_connection_errors() {
    let e = env();
    ok(&e, &["init"]);
    assert_eq!(rows(&e, "Open_vSwitch"), 1);
    ok(
        &e,
        &[
            "add-br",
            "br0",
            "--",
            "set-controller",
            "br0",
            "tcp:127.0.0.1:6653",
            "--",
            "set-fail-mode",
            "br0",
            "secure",
            "--",
            "set-manager",
            "ptcp:6640",
        ],
    );
    ok(&e, &["emer-reset"]);
    assert_eq!(ok(&e, &["get-controller", "br0"]), "");
    assert_eq!(ok(&e, &["get-fail-mode", "br0"]), "");
    assert_eq!(ok(&e, &["get-manager"]), "");
    assert_eq!(ok(&e, &["list-br"]), "br0\n", "bridges survive emer-reset");
    let out = Command::new(env!("CARGO_BIN_EXE_vsctl"))
        .args(["--db=unix:/nonexistent/db-sock", "list-br"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("vsctl: unix:/nonexistent/db-sock: database connection failed")
    );
    fails(&e, &["frobnicate"], "unknown command 'frobnicate'");
}

#[test]
fn tcp_database_target_works() {
    let dir = tempfile::Builder::new()
        .prefix("db-vsctl-tcp-")
        .tempdir()
        .unwrap();
    let db = Db::open(dir.path().join("conf.db")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let remote: Remote = format!("ptcp:{port}:127.0.0.1").parse().unwrap();
    rt.spawn(serve(db.clone(), vec![remote], Default::default()));
    let target = format!("--db=tcp:127.0.0.1:{port}");
    let mut out = None;
    for _ in 0..100 {
        let o = Command::new(env!("CARGO_BIN_EXE_vsctl"))
            .args([target.as_str(), "--no-wait", "add-br", "brt"])
            .output()
            .unwrap();
        if o.status.success() {
            out = Some(o);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(out.is_some(), "vsctl over tcp never succeeded");
    let o = Command::new(env!("CARGO_BIN_EXE_vsctl"))
        .args([target.as_str(), "list-br"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "brt\n");
    assert_eq!(db.snapshot().table("Bridge").len(), 1);
}

#[test]
fn add_bond_makes_one_port_with_every_interface_and_its_settings() {
    let e = env();
    ok(&e, &["add-br", "br0"]);
    ok(
        &e,
        &[
            "add-bond",
            "br0",
            "bond0",
            "m1",
            "m2",
            "bond_mode=balance-tcp",
            "lacp=active",
            "other_config:lacp-time=fast",
        ],
    );
    assert_eq!(ok(&e, &["list-ports", "br0"]), "bond0\n");
    assert_eq!(ok(&e, &["list-ifaces", "br0"]), "m1\nm2\n");
    assert_eq!(ok(&e, &["iface-to-br", "m2"]), "br0\n");
    assert_eq!(
        ok(
            &e,
            &[
                "get",
                "port",
                "bond0",
                "bond_mode",
                "lacp",
                "other_config:lacp-time"
            ]
        ),
        "balance-tcp\nactive\nfast\n"
    );
    fails(
        &e,
        &["add-bond", "br0", "bond1", "m3"],
        "'add-bond' command requires at least 4 arguments",
    );
    fails(
        &e,
        &["add-bond", "br0", "bond1", "m3", "lacp=active"],
        "add-bond requires at least 2 interfaces, but only 1 were specified",
    );
    fails(
        &e,
        &["add-bond", "br0", "bond1", "m1", "m4"],
        "an interface named m1 already exists",
    );
    ok(&e, &["del-port", "bond0"]);
    assert_eq!(ok(&e, &["list-ifaces", "br0"]), "");
}
