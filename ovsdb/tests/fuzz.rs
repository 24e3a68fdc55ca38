//! Fuzz-style property tests: arbitrary JSON and random operation sequences never panic the
//! engine, and the database stays consistent (references, constraints, indexes, maxRows).
#![cfg(feature = "server")]

use ovsdb::data::Data;
use ovsdb::{Db, Schema};
use proptest::prelude::*;
use serde_json::{Value, json};

/// The database must pass every commit check as if all of it had just been inserted,
/// without anything being collected or changed.
fn assert_consistent(db: &Db) {
    let schema = Schema::vswitch();
    let snap = db.snapshot();
    let mut copy = snap.clone();
    ovsdb::integrity::finalize(&schema, &Data::empty(&schema), &mut copy)
        .expect("database is consistent");
    for (t, rows) in &snap.tables {
        assert_eq!(
            rows.len(),
            copy.table(t).len(),
            "table {t} had garbage or dangling rows"
        );
    }
    assert!(
        snap.table("Open_vSwitch").len() <= 1,
        "maxRows of Open_vSwitch"
    );
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        prop_oneof![
            Just("Bridge"),
            Just("Port"),
            Just("insert"),
            Just("uuid"),
            Just("set"),
            Just("map"),
            Just("named-uuid"),
            Just("op"),
            Just("=="),
            Just("name"),
            Just("")
        ]
        .prop_map(|s| json!(s)),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("op".to_string()),
                    Just("table".to_string()),
                    Just("row".to_string()),
                    Just("where".to_string()),
                    Just("mutations".to_string()),
                    Just("uuid-name".to_string()),
                    Just("columns".to_string()),
                    Just("until".to_string()),
                    Just("rows".to_string()),
                    "[a-z_]{1,6}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const UUIDS: [&str; 4] = [
    "00000000-0000-4000-8000-00000000000a",
    "00000000-0000-4000-8000-00000000000b",
    "00000000-0000-4000-8000-00000000000c",
    "00000000-0000-4000-8000-00000000000d",
];

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop_oneof![
            Just("br0"),
            Just("p0"),
            Just("secure"),
            Just("internal"),
            Just("x")
        ]
        .prop_map(|s| json!(s)),
        prop_oneof![Just(0), Just(5), Just(4095), Just(5000), Just(-1)].prop_map(|i| json!(i)),
        (0..UUIDS.len()).prop_map(|i| json!(["uuid", UUIDS[i]])),
        prop_oneof![Just("n0"), Just("n1"), Just("zz")].prop_map(|n| json!(["named-uuid", n])),
        prop::collection::vec(
            (0..UUIDS.len()).prop_map(|i| json!(["uuid", UUIDS[i]])),
            0..3
        )
        .prop_map(|v| json!(["set", v])),
        prop::collection::vec(
            prop_oneof![Just(1), Just(2), Just(4096)].prop_map(|i| json!(i)),
            0..3
        )
        .prop_map(|v| json!(["set", v])),
        Just(json!(["map", [["k", "v"]]])),
        Just(json!(["map", []])),
    ]
}

fn arb_op() -> impl Strategy<Value = Value> {
    let table = prop_oneof![
        Just("Bridge"),
        Just("Port"),
        Just("Interface"),
        Just("Open_vSwitch"),
        Just("Mirror"),
        Just("Queue"),
        Just("QoS"),
        Just("Controller")
    ];
    let column = prop_oneof![
        Just("name"),
        Just("ports"),
        Just("interfaces"),
        Just("bridges"),
        Just("tag"),
        Just("trunks"),
        Just("fail_mode"),
        Just("external_ids"),
        Just("select_src_port"),
        Just("output_port"),
        Just("mirrors"),
        Just("queues"),
        Just("dscp"),
        Just("type"),
        Just("controller"),
        Just("next_cfg")
    ];
    let clause = (
        column.clone(),
        prop_oneof![Just("=="), Just("!="), Just("includes"), Just("<")],
        arb_value(),
    )
        .prop_map(|(c, f, v)| json!([c, f, v]));
    let where_ = prop::collection::vec(clause, 0..2).boxed();
    let row =
        prop::collection::btree_map(column.clone().prop_map(str::to_owned), arb_value(), 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
            .boxed();
    prop_oneof![
        (table.clone(), row.clone(), prop::option::of(prop_oneof![Just("n0"), Just("n1")]), prop::option::of(0..UUIDS.len()))
            .prop_map(|(t, r, n, u)| {
                let mut op = json!({"op": "insert", "table": t, "row": r});
                if let Some(n) = n { op["uuid-name"] = json!(n); }
                if let Some(u) = u { op["uuid"] = json!(UUIDS[u]); }
                op
            }),
        (table.clone(), where_.clone(), row).prop_map(|(t, w, r)| json!({"op": "update", "table": t, "where": w, "row": r})),
        (table.clone(), where_.clone()).prop_map(|(t, w)| json!({"op": "delete", "table": t, "where": w})),
        (table.clone(), where_.clone(), column, prop_oneof![Just("insert"), Just("delete"), Just("+="), Just("/=")], arb_value())
            .prop_map(|(t, w, c, m, v)| json!({"op": "mutate", "table": t, "where": w, "mutations": [[c, m, v]]})),
        (table, where_).prop_map(|(t, w)| json!({"op": "select", "table": t, "where": w})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_transactions_never_panic_or_corrupt(params in prop::collection::vec(arb_json(), 0..4)) {
        let db = Db::in_memory();
        let mut p = vec![json!("Open_vSwitch")];
        p.extend(params.clone());
        let results = db.transact(Value::Array(p));
        prop_assert!(!results.is_empty() || params.is_empty());
        // Also without the database name and as a non-array.
        let _ = db.transact(Value::Array(params));
        let _ = db.transact(json!({"not": "an array"}));
        assert_consistent(&db);
    }

    #[test]
    fn random_operation_sequences_keep_the_database_consistent(txns in prop::collection::vec(prop::collection::vec(arb_op(), 1..5), 1..8)) {
        let db = Db::in_memory();
        for ops in txns {
            let mut p = vec![json!("Open_vSwitch")];
            p.extend(ops.clone());
            let results = db.transact(Value::Array(p));
            let failed = results.iter().any(|r| r.get("error").is_some());
            prop_assert!(results.len() == ops.len() || (failed && results.len() == ops.len() + 1));
            assert_consistent(&db);
        }
    }
}
