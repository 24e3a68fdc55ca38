//! Transaction engine: every RFC 7047 operation, constraints, integrity, GC, persistence.
#![cfg(feature = "server")]

use ovsdb::Db;
use serde_json::{Value, json};

fn tx(db: &Db, ops: Value) -> Vec<Value> {
    let mut params = vec![json!("Open_vSwitch")];
    params.extend(ops.as_array().cloned().unwrap_or_default());
    db.transact(Value::Array(params))
}

fn err_of(results: &[Value]) -> Option<String> {
    results
        .iter()
        .find_map(|r| r.get("error").and_then(Value::as_str).map(str::to_owned))
}

fn ok(results: &[Value]) -> &[Value] {
    assert!(err_of(results).is_none(), "unexpected error: {results:?}");
    results
}

fn root_uuid(db: &Db) -> String {
    db.snapshot()
        .table("Open_vSwitch")
        .keys()
        .next()
        .unwrap()
        .to_string()
}

/// Insert bridge `name` with its local port and interface and attach it to the root row.
fn add_bridge(db: &Db, name: &str) -> Vec<Value> {
    let root = root_uuid(db);
    tx(
        db,
        json!([
            {"op": "insert", "table": "Interface", "row": {"name": name, "type": "internal"}, "uuid-name": "i"},
            {"op": "insert", "table": "Port", "row": {"name": name, "interfaces": ["named-uuid", "i"]}, "uuid-name": "p"},
            {"op": "insert", "table": "Bridge", "row": {"name": name, "ports": ["named-uuid", "p"]}, "uuid-name": "b"},
            {"op": "mutate", "table": "Open_vSwitch", "where": [["_uuid", "==", ["uuid", root]]],
             "mutations": [["bridges", "insert", ["set", [["named-uuid", "b"]]]]]}
        ]),
    )
}

fn bridge_names(db: &Db) -> Vec<String> {
    let r = tx(
        db,
        json!([{"op": "select", "table": "Bridge", "where": [], "columns": ["name"]}]),
    );
    let mut v: Vec<String> = r[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn new_database_has_exactly_one_root_row() {
    let db = Db::in_memory();
    assert_eq!(db.snapshot().table("Open_vSwitch").len(), 1);
    let r = tx(
        &db,
        json!([{"op": "insert", "table": "Open_vSwitch", "row": {}}]),
    );
    assert_eq!(
        err_of(&r).as_deref(),
        Some("constraint violation"),
        "maxRows 1 enforced: {r:?}"
    );
}

#[test]
fn insert_with_named_uuid_references_and_select_returns_rows() {
    let db = Db::in_memory();
    let r = add_bridge(&db, "br0");
    ok(&r);
    assert!(r[2]["uuid"][1].is_string());
    assert_eq!(bridge_names(&db), vec!["br0"]);
    let sel = tx(
        &db,
        json!([{"op": "select", "table": "Port", "where": [["name", "==", "br0"]]}]),
    );
    let row = &sel[0]["rows"][0];
    assert_eq!(row["interfaces"][0], "uuid");
    assert!(row["_uuid"].is_array() && row["_version"].is_array());
}

#[test]
fn forward_named_uuid_reference_resolves() {
    let db = Db::in_memory();
    let r = tx(
        &db,
        json!([
            {"op": "insert", "table": "QoS", "row": {"type": "linux-htb", "queues": ["map", [[0, ["named-uuid", "q"]]]]}},
            {"op": "insert", "table": "Queue", "row": {"dscp": 1}, "uuid-name": "q"}
        ]),
    );
    ok(&r);
    assert_eq!(db.snapshot().table("Queue").len(), 1);
}

#[test]
fn update_changes_only_matching_rows_and_counts_them() {
    let db = Db::in_memory();
    ok(&add_bridge(&db, "br0"));
    ok(&add_bridge(&db, "br1"));
    let r = tx(
        &db,
        json!([{"op": "update", "table": "Bridge", "where": [["name", "==", "br1"]], "row": {"fail_mode": "secure"}}]),
    );
    assert_eq!(r[0]["count"], 1);
    let sel = tx(
        &db,
        json!([{"op": "select", "table": "Bridge", "where": [["fail_mode", "==", "secure"]], "columns": ["name"]}]),
    );
    assert_eq!(sel[0]["rows"], json!([{"name": "br1"}]));
}

#[test]
fn update_of_immutable_column_is_a_constraint_violation() {
    let db = Db::in_memory();
    ok(&add_bridge(&db, "br0"));
    let r = tx(
        &db,
        json!([{"op": "update", "table": "Bridge", "where": [], "row": {"name": "x"}}]),
    );
    assert_eq!(err_of(&r).as_deref(), Some("constraint violation"));
}

#[test]
fn unknown_column_and_table_are_reported() {
    let db = Db::in_memory();
    let r = tx(
        &db,
        json!([{"op": "insert", "table": "Bridge", "row": {"nope": 1}}]),
    );
    assert_eq!(err_of(&r).as_deref(), Some("unknown column"));
    let r = tx(&db, json!([{"op": "select", "table": "Nope", "where": []}]));
    assert_eq!(err_of(&r).as_deref(), Some("unknown table"));
    let r = tx(&db, json!([{"op": "frobnicate"}]));
    assert_eq!(err_of(&r).as_deref(), Some("syntax error"));
}

#[test]
fn failed_operation_rolls_back_everything_and_pads_results_with_null() {
    let db = Db::in_memory();
    let r = tx(
        &db,
        json!([
            {"op": "insert", "table": "Bridge", "row": {"name": "brX"}},
            {"op": "abort"},
            {"op": "comment", "comment": "never reached"}
        ]),
    );
    assert_eq!(r.len(), 3);
    assert_eq!(r[1]["error"], "aborted");
    assert!(r[2].is_null());
    assert!(bridge_names(&db).is_empty());
}

#[test]
fn mutate_supports_arithmetic_and_set_and_map_mutators() {
    let db = Db::in_memory();
    let root = root_uuid(&db);
    let w = json!([["_uuid", "==", ["uuid", root]]]);
    ok(&tx(
        &db,
        json!([{"op": "mutate", "table": "Open_vSwitch", "where": w, "mutations": [
            ["next_cfg", "+=", 5], ["next_cfg", "*=", 3], ["next_cfg", "-=", 1], ["next_cfg", "/=", 2], ["next_cfg", "%=", 4],
            ["external_ids", "insert", ["map", [["a", "1"], ["b", "2"]]]],
            ["iface_types", "insert", ["set", ["x", "y", "z"]]]
        ]}]),
    ));
    ok(&tx(
        &db,
        json!([{"op": "mutate", "table": "Open_vSwitch", "where": w, "mutations": [
            ["external_ids", "insert", ["map", [["a", "changed"]]]],
            ["external_ids", "delete", ["set", ["b"]]],
            ["iface_types", "delete", ["set", ["y"]]]
        ]}]),
    ));
    let sel = tx(
        &db,
        json!([{"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg", "external_ids", "iface_types"]}]),
    );
    let row = &sel[0]["rows"][0];
    assert_eq!(row["next_cfg"], ((5 * 3 - 1) / 2) % 4);
    assert_eq!(
        row["external_ids"],
        json!(["map", [["a", "1"]]]),
        "insert does not overwrite existing keys"
    );
    assert_eq!(row["iface_types"], json!(["set", ["x", "z"]]));
    // Map delete by key/value pair only removes exact pairs.
    ok(&tx(
        &db,
        json!([{"op": "mutate", "table": "Open_vSwitch", "where": w, "mutations": [["external_ids", "delete", ["map", [["a", "2"]]]]]}]),
    ));
    let sel = tx(
        &db,
        json!([{"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["external_ids"]}]),
    );
    assert_eq!(
        sel[0]["rows"][0]["external_ids"],
        json!(["map", [["a", "1"]]])
    );
}

#[test]
fn mutate_errors_division_by_zero_and_range() {
    let db = Db::in_memory();
    let w = json!([["_uuid", "==", ["uuid", root_uuid(&db)]]]);
    let r = tx(
        &db,
        json!([{"op": "mutate", "table": "Open_vSwitch", "where": w, "mutations": [["next_cfg", "/=", 0]]}]),
    );
    assert_eq!(err_of(&r).as_deref(), Some("domain error"));
    ok(&add_bridge(&db, "br0"));
    ok(&tx(
        &db,
        json!([{"op": "update", "table": "Port", "where": [], "row": {"tag": 4000}}]),
    ));
    let r = tx(
        &db,
        json!([{"op": "mutate", "table": "Port", "where": [], "mutations": [["tag", "+=", 1000]]}]),
    );
    assert_eq!(
        err_of(&r).as_deref(),
        Some("constraint violation"),
        "tag beyond 4095: {r:?}"
    );
}

#[test]
fn delete_of_strongly_referenced_row_is_referential_integrity_violation() {
    let db = Db::in_memory();
    ok(&add_bridge(&db, "br0"));
    let r = tx(
        &db,
        json!([{"op": "delete", "table": "Port", "where": [["name", "==", "br0"]]}]),
    );
    assert_eq!(
        err_of(&r).as_deref(),
        Some("referential integrity violation")
    );
    assert_eq!(db.snapshot().table("Port").len(), 1);
}

#[test]
fn unreferenced_rows_of_non_root_tables_are_garbage_collected() {
    let db = Db::in_memory();
    ok(&add_bridge(&db, "br0"));
    let root = root_uuid(&db);
    // Removing the bridge from the root row makes bridge, port and interface garbage.
    ok(&tx(
        &db,
        json!([{"op": "update", "table": "Open_vSwitch", "where": [["_uuid", "==", ["uuid", root]]], "row": {"bridges": ["set", []]}}]),
    ));
    let snap = db.snapshot();
    assert!(snap.table("Bridge").is_empty());
    assert!(snap.table("Port").is_empty());
    assert!(snap.table("Interface").is_empty());
    // A non-root row inserted without a reference disappears at commit.
    ok(&tx(
        &db,
        json!([{"op": "insert", "table": "Controller", "row": {"target": "tcp:127.0.0.1:6653"}}]),
    ));
    assert!(db.snapshot().table("Controller").is_empty());
    // Root tables are kept.
    ok(&tx(
        &db,
        json!([{"op": "insert", "table": "Queue", "row": {}}]),
    ));
    assert_eq!(db.snapshot().table("Queue").len(), 1);
}

#[test]
fn weak_references_to_deleted_rows_are_removed() {
    let db = Db::in_memory();
    ok(&add_bridge(&db, "br0"));
    let port = db
        .snapshot()
        .table("Port")
        .keys()
        .next()
        .unwrap()
        .to_string();
    ok(&tx(
        &db,
        json!([
            {"op": "insert", "table": "Mirror", "row": {"name": "m", "select_src_port": ["set", [["uuid", port]]], "output_port": ["uuid", port]}, "uuid-name": "m"},
            {"op": "mutate", "table": "Bridge", "where": [], "mutations": [["mirrors", "insert", ["set", [["named-uuid", "m"]]]]]}
        ]),
    ));
    let root = root_uuid(&db);
    // Delete the port by detaching it from the bridge (GC): the mirror's weak refs go away.
    ok(&tx(
        &db,
        json!([
            {"op": "insert", "table": "Interface", "row": {"name": "other"}, "uuid-name": "i"},
            {"op": "insert", "table": "Port", "row": {"name": "other", "interfaces": ["named-uuid", "i"]}, "uuid-name": "p"},
            {"op": "update", "table": "Bridge", "where": [], "row": {"ports": ["named-uuid", "p"]}},
            {"op": "comment", "comment": root}
        ]),
    ));
    let sel = tx(
        &db,
        json!([{"op": "select", "table": "Mirror", "where": [], "columns": ["select_src_port", "output_port"]}]),
    );
    assert_eq!(sel[0]["rows"][0]["select_src_port"], json!(["set", []]));
    assert_eq!(sel[0]["rows"][0]["output_port"], json!(["set", []]));
}

#[test]
fn reference_to_nonexistent_row_is_rejected() {
    let db = Db::in_memory();
    let r = tx(
        &db,
        json!([{"op": "insert", "table": "Port", "row": {"name": "p", "interfaces": ["uuid", "2f0d1bcf-0000-4000-8000-000000000001"]}},
               {"op": "insert", "table": "Flow_Sample_Collector_Set", "row": {"id": 1, "bridge": ["uuid", "2f0d1bcf-0000-4000-8000-000000000002"]}}]),
    );
    assert_eq!(
        err_of(&r).as_deref(),
        Some("referential integrity violation"),
        "{r:?}"
    );
    assert_eq!(r.len(), 3, "commit error is an extra result element");
}

#[test]
fn min_cardinality_is_checked_at_commit() {
    let db = Db::in_memory();
    ok(&add_bridge(&db, "br0"));
    let r = tx(
        &db,
        json!([{"op": "update", "table": "Port", "where": [], "row": {"interfaces": ["set", []]}}]),
    );
    assert_eq!(
        err_of(&r).as_deref(),
        Some("constraint violation"),
        "Port.interfaces needs at least one: {r:?}"
    );
}

#[test]
fn duplicate_index_values_are_a_constraint_violation() {
    let db = Db::in_memory();
    ok(&add_bridge(&db, "br0"));
    let r = add_bridge(&db, "br0");
    assert_eq!(err_of(&r).as_deref(), Some("constraint violation"));
    assert!(
        r.last().unwrap()["details"]
            .as_str()
            .unwrap()
            .contains("index")
    );
    assert_eq!(bridge_names(&db), vec!["br0"]);
}

#[test]
fn wait_succeeds_fails_and_times_out() {
    let db = Db::in_memory();
    ok(&add_bridge(&db, "br0"));
    let ok_wait = tx(
        &db,
        json!([{"op": "wait", "timeout": 0, "table": "Bridge", "where": [], "columns": ["name"], "until": "==", "rows": [{"name": "br0"}]}]),
    );
    ok(&ok_wait);
    let ne = tx(
        &db,
        json!([{"op": "wait", "timeout": 0, "table": "Bridge", "where": [], "columns": ["name"], "until": "!=", "rows": [{"name": "br0"}]}]),
    );
    assert_eq!(err_of(&ne).as_deref(), Some("timed out"));
    let timed = tx(
        &db,
        json!([{"op": "wait", "timeout": 50, "table": "Bridge", "where": [], "columns": ["name"], "until": "==", "rows": [{"name": "br7"}]}]),
    );
    assert_eq!(err_of(&timed).as_deref(), Some("timed out"));
}

#[test]
fn wait_with_timeout_completes_when_another_thread_commits() {
    let db = Db::in_memory();
    let db2 = db.clone();
    let waiter = std::thread::spawn(move || {
        tx(
            &db2,
            json!([{"op": "wait", "timeout": 30000, "table": "Bridge", "where": [], "columns": ["name"], "until": "==", "rows": [{"name": "late"}]},
                   {"op": "select", "table": "Bridge", "where": [], "columns": ["name"]}]),
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    ok(&add_bridge(&db, "late"));
    let r = waiter.join().unwrap();
    ok(&r);
    assert_eq!(r[1]["rows"], json!([{"name": "late"}]));
}

#[test]
fn commit_comment_and_assert_without_lock() {
    let db = Db::in_memory();
    ok(&tx(
        &db,
        json!([{"op": "commit", "durable": true}, {"op": "comment", "comment": "hi"}]),
    ));
    let r = tx(&db, json!([{"op": "assert", "lock": "foo"}]));
    assert_eq!(err_of(&r).as_deref(), Some("not owner"));
    let owner = db.transact_with(
        &json!(["Open_vSwitch", {"op": "assert", "lock": "foo"}]),
        &|n| n == "foo",
        None,
    );
    assert!(err_of(&owner.unwrap()).is_none());
}

#[test]
fn conditions_support_ordering_includes_and_excludes() {
    let db = Db::in_memory();
    ok(&add_bridge(&db, "br0"));
    ok(&tx(
        &db,
        json!([{"op": "update", "table": "Port", "where": [], "row": {"trunks": ["set", [1, 2, 3]], "tag": 7}}]),
    ));
    let q = |w: Value| {
        tx(
            &db,
            json!([{"op": "select", "table": "Port", "where": w, "columns": ["name"]}]),
        )[0]["rows"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(q(json!([["trunks", "includes", ["set", [1, 3]]]])), 1);
    assert_eq!(q(json!([["trunks", "excludes", ["set", [9]]]])), 1);
    assert_eq!(q(json!([["trunks", "excludes", ["set", [2]]]])), 0);
    let r = tx(
        &db,
        json!([{"op": "select", "table": "Open_vSwitch", "where": [["next_cfg", "<", 1]]}]),
    );
    assert_eq!(r[0]["rows"].as_array().unwrap().len(), 1);
    let r = tx(
        &db,
        json!([{"op": "select", "table": "Port", "where": [["name", "<", "x"]]}]),
    );
    assert_eq!(
        err_of(&r).as_deref(),
        Some("syntax error"),
        "ordering on strings is refused"
    );
}

#[test]
fn subscribers_see_committed_changes_in_order() {
    let db = Db::in_memory();
    let rx = db.subscribe();
    ok(&add_bridge(&db, "br0"));
    ok(&add_bridge(&db, "br1"));
    let a = rx.recv().unwrap();
    let b = rx.recv().unwrap();
    assert!(a.seq < b.seq);
    assert!(
        a.changes
            .changes
            .iter()
            .any(|c| c.table == "Bridge" && c.old.is_none())
    );
    let failed = add_bridge(&db, "br0");
    assert!(err_of(&failed).is_some());
    assert!(
        rx.try_recv().is_err(),
        "failed transactions are not published"
    );
}

#[test]
fn database_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conf.db");
    let root;
    {
        let db = Db::open(&path).unwrap();
        root = root_uuid(&db);
        ok(&add_bridge(&db, "br0"));
        ok(&add_bridge(&db, "br1"));
        ok(&tx(
            &db,
            json!([{"op": "update", "table": "Bridge", "where": [["name", "==", "br1"]], "row": {"external_ids": ["map", [["k", "v"]]]}}]),
        ));
        ok(&tx(
            &db,
            json!([{"op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": [["bridges", "delete", ["set", []]]]}]),
        ));
    }
    let db = Db::open(&path).unwrap();
    assert_eq!(root_uuid(&db), root, "root row is not recreated");
    assert_eq!(bridge_names(&db), vec!["br0", "br1"]);
    let r = tx(
        &db,
        json!([{"op": "select", "table": "Bridge", "where": [["name", "==", "br1"]], "columns": ["external_ids"]}]),
    );
    assert_eq!(
        r[0]["rows"][0]["external_ids"],
        json!(["map", [["k", "v"]]])
    );
    // Deletion persists too.
    ok(&tx(
        &db,
        json!([{"op": "update", "table": "Open_vSwitch", "where": [], "row": {"bridges": ["set", []]}}]),
    ));
    drop(db);
    let db = Db::open(&path).unwrap();
    assert!(bridge_names(&db).is_empty());
    assert!(db.snapshot().table("Interface").is_empty());
}

#[test]
fn transactions_from_many_threads_all_apply() {
    let db = Db::in_memory();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let r = tx(&db, json!([{"op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": [
                        ["next_cfg", "+=", 1], ["external_ids", "insert", ["map", [[format!("t{t}-{i}"), "x"]]]]]}]));
                    assert!(err_of(&r).is_none());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let r = tx(
        &db,
        json!([{"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg", "external_ids"]}]),
    );
    assert_eq!(r[0]["rows"][0]["next_cfg"], 200);
    assert_eq!(
        r[0]["rows"][0]["external_ids"][1].as_array().unwrap().len(),
        200
    );
}

#[test]
fn exceeding_the_row_limit_is_resources_exhausted() {
    let db = Db::in_memory();
    db.set_row_limit(2);
    ok(&tx(
        &db,
        json!([{"op": "insert", "table": "Queue", "row": {}}]),
    ));
    let r = tx(&db, json!([{"op": "insert", "table": "Queue", "row": {}}]));
    assert_eq!(err_of(&r).as_deref(), Some("resources exhausted"));
    assert_eq!(db.snapshot().table("Queue").len(), 1);
    // Shrinking is still allowed when over the limit.
    db.set_row_limit(1);
    ok(&tx(
        &db,
        json!([{"op": "delete", "table": "Queue", "where": []}]),
    ));
}
