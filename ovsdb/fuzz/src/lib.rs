//! The checks behind the ovsdb fuzz targets, as plain functions so that
//! unit tests can run them on stable without libFuzzer.

use std::sync::atomic::AtomicBool;

use ovsdb::Db;
use ovsdb::data::Data;
use ovsdb::jsonrpc::Decoder;
use serde_json::{Value, json};

/// What a decoder made of a stream: the values in order, and whether it
/// stopped on an error.
#[derive(Debug, PartialEq)]
struct Decoded {
    values: Vec<Value>,
    failed: bool,
}

fn decode_chunks<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> Decoded {
    let mut dec = Decoder::new();
    let mut values = Vec::new();
    for chunk in chunks {
        dec.feed(chunk);
        loop {
            match dec.next_value() {
                Ok(Some(v)) => values.push(v),
                Ok(None) => break,
                Err(_) => {
                    return Decoded {
                        values,
                        failed: true,
                    };
                }
            }
        }
    }
    Decoded {
        values,
        failed: false,
    }
}

/// Splits `stream` into pieces whose sizes cycle through `sizes` (each byte
/// `s` meaning `s + 1` bytes; one byte at a time when `sizes` is empty).
fn chunks<'a>(stream: &'a [u8], sizes: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    let mut rest = stream;
    let mut k = 0usize;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = sizes
            .get(k % sizes.len().max(1))
            .map_or(1, |&s| usize::from(s) + 1);
        k += 1;
        let (head, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        Some(head)
    })
}

/// JSON-RPC framing: the first byte says how many of the next bytes (0..15)
/// are chunk sizes, the rest is the stream. Fed in those chunks, the decoder
/// must yield what it yields for the whole stream at once, and fail where
/// that fails. Streams with a top-level number are exempt: a number at the end
/// of what has arrived may still be growing ("1" then "2" is 12), and
/// RFC 7047 messages are objects anyway.
pub fn framer(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (sizes, stream) = rest.split_at(usize::from(n % 16).min(rest.len()));
    let whole = decode_chunks(std::iter::once(stream));
    let chunked = decode_chunks(chunks(stream, sizes));
    let top_level_number = |d: &Decoded| d.values.iter().any(Value::is_number);
    if !top_level_number(&whole) && !top_level_number(&chunked) {
        assert_eq!(whole, chunked, "chunk sizes {sizes:?}");
    }
}

/// The database must pass every commit check as if all of it had just been
/// inserted, with nothing collected or changed, and keep maxRows.
pub fn assert_consistent(db: &Db) {
    let schema = db.schema();
    let snap = db.snapshot();
    let mut copy = snap.clone();
    ovsdb::integrity::finalize(schema, &Data::empty(schema), &mut copy)
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

/// Reads choices from the fuzz input; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[usize::from(self.byte()) % from.len()]
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const TABLES: &[&str] = &[
    "Bridge",
    "Port",
    "Interface",
    "Open_vSwitch",
    "Mirror",
    "QoS",
    "Queue",
    "Controller",
    "Flow_Table",
    "NoSuchTable",
];
const COLUMNS: &[&str] = &[
    "name",
    "ports",
    "interfaces",
    "bridges",
    "tag",
    "trunks",
    "fail_mode",
    "external_ids",
    "other_config",
    "select_src_port",
    "output_port",
    "mirrors",
    "queues",
    "qos",
    "dscp",
    "type",
    "controller",
    "next_cfg",
    "cur_cfg",
    "_uuid",
    "bogus",
];
const UUIDS: &[&str] = &[
    "00000000-0000-4000-8000-00000000000a",
    "00000000-0000-4000-8000-00000000000b",
    "00000000-0000-4000-8000-00000000000c",
    "not-a-uuid",
];
const NAMES: &[&str] = &["n0", "n1", "n2"];

fn value(b: &mut Bytes) -> Value {
    match b.byte() % 12 {
        0 => json!(b.pick(&["br0", "p0", "secure", "internal", "dummy", ""])),
        1 => json!(b.pick(&[0i64, 1, 5, 4095, 4096, -1, i64::MAX])),
        2 => json!(["uuid", b.pick(UUIDS)]),
        3 => json!(["named-uuid", b.pick(NAMES)]),
        4 => {
            let n = b.byte() % 4;
            json!([
                "set",
                (0..n)
                    .map(|_| json!(["uuid", b.pick(UUIDS)]))
                    .collect::<Vec<_>>()
            ])
        }
        5 => {
            let n = b.byte() % 4;
            json!([
                "set",
                (0..n)
                    .map(|_| json!(b.pick(&[1, 2, 4094, 4096])))
                    .collect::<Vec<_>>()
            ])
        }
        6 => {
            let n = b.byte() % 3;
            json!([
                "map",
                (0..n)
                    .map(|_| json!([b.pick(&["k", "j"]), b.pick(&["v", "w"])]))
                    .collect::<Vec<_>>()
            ])
        }
        7 => json!(b.pick(&[true, false])),
        8 => json!(1.5),
        9 => json!(["set", [["named-uuid", b.pick(NAMES)]]]),
        10 => Value::Null,
        _ => json!(["map", [["k", ["uuid", b.pick(UUIDS)]]]]),
    }
}

fn row(b: &mut Bytes) -> Value {
    let n = b.byte() % 4;
    Value::Object(
        (0..n)
            .map(|_| (b.pick(COLUMNS).to_owned(), value(b)))
            .collect(),
    )
}

fn where_(b: &mut Bytes) -> Value {
    let n = b.byte() % 3;
    Value::Array(
        (0..n)
            .map(|_| {
                let f = b.pick(&["==", "!=", "includes", "excludes", "<", ">=", "~"]);
                json!([b.pick(COLUMNS), f, value(b)])
            })
            .collect(),
    )
}

fn op(b: &mut Bytes) -> Value {
    let table = b.pick(TABLES);
    match b.byte() % 9 {
        0 | 1 => {
            let mut op = json!({"op": "insert", "table": table, "row": row(b)});
            match b.byte() % 3 {
                0 => op["uuid-name"] = json!(b.pick(NAMES)),
                1 => op["uuid"] = json!(b.pick(UUIDS)),
                _ => {}
            }
            op
        }
        2 => json!({"op": "update", "table": table, "where": where_(b), "row": row(b)}),
        3 => json!({"op": "delete", "table": table, "where": where_(b)}),
        4 => {
            let m = b.pick(&["insert", "delete", "+=", "-=", "*=", "/=", "%="]);
            json!({"op": "mutate", "table": table, "where": where_(b),
                   "mutations": [[b.pick(COLUMNS), m, value(b)]]})
        }
        5 => json!({"op": "select", "table": table, "where": where_(b)}),
        6 => json!({"op": "wait", "table": table, "where": where_(b), "columns": [b.pick(COLUMNS)],
                    "until": b.pick(&["==", "!="]), "rows": [row(b)], "timeout": 0}),
        7 => json!({"op": b.pick(&["comment", "abort", "commit", "assert"]), "comment": "x",
                    "durable": false, "lock": "l"}),
        _ => json!({"op": "insert", "table": "Bridge", "uuid-name": b.pick(NAMES),
                    "row": {"name": b.pick(&["br0", "br1"]), "ports": ["set", [["named-uuid", b.pick(NAMES)]]]}}),
    }
}

/// Runs one transaction (blocking waits are canceled at once) and checks
/// the result shape: one result per operation, plus one error when it failed.
fn run(db: &Db, params: &Value, n_ops: Option<usize>) {
    let cancel = AtomicBool::new(true);
    let Ok(results) = db.transact_with(params, &|_| false, Some(&cancel)) else {
        return;
    };
    if let Some(n) = n_ops {
        let canceled = results.len() == 1 && results[0].get("error") == Some(&json!("canceled"));
        let failed = results.iter().any(|r| r.get("error").is_some());
        assert!(
            canceled || results.len() == n || (failed && results.len() == n + 1),
            "{n} ops gave {results:?}"
        );
    }
}

/// OVSDB transactions on the Open_vSwitch schema: the first byte selects raw
/// mode (the rest is JSON text for the transact params) or structured mode
/// (the bytes choose up to 8 transactions of 1..=4 operations from the
/// schema's vocabulary). Nothing may panic, every transaction answers in
/// the RFC 7047 shape, and the database stays consistent after each one.
pub fn transact(data: &[u8]) {
    let db = Db::in_memory();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 4 == 0 {
        if let Ok(params) = serde_json::from_slice::<Value>(rest) {
            run(&db, &params, None);
            assert_consistent(&db);
        }
        return;
    }
    let mut b = Bytes(rest);
    for _ in 0..8 {
        if b.is_empty() {
            break;
        }
        let n = usize::from(b.byte() % 4) + 1;
        let mut params = vec![json!("Open_vSwitch")];
        params.extend((0..n).map(|_| op(&mut b)));
        run(&db, &Value::Array(params), Some(n));
        assert_consistent(&db);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random inputs (xorshift), so the tests need no
    /// extra crates.
    fn inputs(seed: u64, count: usize, max_len: usize) -> Vec<Vec<u8>> {
        let mut x = seed;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..count)
            .map(|_| {
                let len = (next() as usize) % max_len;
                (0..len).map(|_| next() as u8).collect()
            })
            .collect()
    }

    #[test]
    fn framer_agrees_between_whole_and_chunked_rfc7047_messages() {
        let stream = br#" {"method":"echo","params":[],"id":1}
            {"id":1,"result":["a\u00e9",{"x":[1,2.5e3,null,true]}],"error":null}[]{}"#;
        for sizes in [&[][..], &[0, 2], &[6, 0, 30], &[255]] {
            let mut data = vec![sizes.len() as u8];
            data.extend_from_slice(sizes);
            data.extend_from_slice(stream);
            framer(&data);
        }
        let whole = decode_chunks(std::iter::once(&stream[..]));
        assert_eq!(whole.values.len(), 4);
        assert!(!whole.failed);
    }

    #[test]
    fn framer_reports_garbage_after_good_messages_in_any_chunking() {
        let stream = br#"{"id":1}[2]{"bad":}"#;
        let mut data = vec![2, 0, 3];
        data.extend_from_slice(stream);
        framer(&data);
        let chunked = decode_chunks(chunks(stream, &[0, 3]));
        assert_eq!(chunked.values.len(), 2);
        assert!(chunked.failed);
    }

    #[test]
    fn framer_survives_pseudo_random_streams() {
        for data in inputs(0x9e37_79b9_7f4a_7c15, 3000, 200) {
            framer(&data);
        }
        // Mostly-JSON bytes reach deeper than uniform ones.
        let alphabet = br#"{}[]",:0123456789.eE+-\u truenullfalse  "#;
        for data in inputs(7, 3000, 200) {
            let data: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if i < 8 {
                        *b
                    } else {
                        alphabet[usize::from(*b) % alphabet.len()]
                    }
                })
                .collect();
            framer(&data);
        }
    }

    #[test]
    fn transact_raw_mode_runs_json_params_and_never_blocks_on_wait() {
        let insert = br#"["Open_vSwitch",{"op":"insert","table":"Bridge","row":{"name":"b"}}]"#;
        let mut data = vec![0];
        data.extend_from_slice(insert);
        transact(&data);
        // An unmet wait with a long timeout is canceled at once, not waited for.
        let wait = br#"["Open_vSwitch",{"op":"wait","table":"Bridge","where":[],"columns":["name"],"until":"==","rows":[{"name":"x"}],"timeout":100000000}]"#;
        let mut data = vec![4];
        data.extend_from_slice(wait);
        transact(&data);
    }

    #[test]
    fn structured_ops_name_real_tables_and_operations() {
        let mut b = Bytes(&[0, 0, 0, 0, 0]);
        let op = op(&mut b);
        assert_eq!(op["op"], "insert");
        assert_eq!(op["table"], "Bridge");
        let db = Db::in_memory();
        let r = db.transact(json!(["Open_vSwitch", op]));
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(r[0].get("uuid").is_some(), "{r:?}");
    }

    #[test]
    fn transact_survives_pseudo_random_inputs() {
        for data in inputs(0x2545_f491_4f6c_dd1d, 400, 120) {
            transact(&data);
        }
    }
}
