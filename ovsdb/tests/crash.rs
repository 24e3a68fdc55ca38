//! Crash consistency: concurrent clients commit transactions while the server is killed with
//! SIGKILL; after a restart every acknowledged transaction is present and each transaction is
//! all-or-nothing.
#![cfg(feature = "server")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, select};
use ovsdb::client::Client;
use serde_json::{Value, json};

const CLIENTS: usize = 4;

/// Transactions per client: 500 by default (2,000 in all, under a minute on a loaded 2-core
/// machine); set `FERROVS_CRASH_TXNS_PER_CLIENT=2500` for the 10,000-transaction run.
fn per_client() -> i64 {
    std::env::var("FERROVS_CRASH_TXNS_PER_CLIENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

fn connect(target: &str) -> Client {
    let start = Instant::now();
    loop {
        if let Ok(mut c) = Client::connect(target) {
            c.set_timeout(Some(Duration::from_secs(30))).unwrap();
            return c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "server did not come back"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One transaction: a new Queue row tagged (client, seq) and the client's counter set to seq.
fn ops(client: usize, seq: i64) -> Vec<Value> {
    let key = format!("c{client}");
    vec![
        json!({"op": "insert", "table": "Queue",
               "row": {"external_ids": ["map", [["client", client.to_string()], ["seq", seq.to_string()]]]}}),
        json!({"op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": [
            ["external_ids", "delete", ["set", [key.clone()]]],
            ["external_ids", "insert", ["map", [[key, seq.to_string()]]]]]}),
    ]
}

fn map_of(v: &Value) -> BTreeMap<String, String> {
    v[1].as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p[0].as_str()?.to_owned(), p[1].as_str()?.to_owned())))
        .collect()
}

#[test]
fn every_acknowledged_transaction_survives_kill_9() {
    let mut srv = Server::start();
    let target = srv.target();
    let acked: Arc<Mutex<Vec<(usize, i64)>>> = Arc::new(Mutex::new(Vec::new()));
    let n_acked = Arc::new(AtomicUsize::new(0));
    let n_failed = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|k| {
            let (target, acked, n_acked, n_failed) = (
                target.clone(),
                acked.clone(),
                n_acked.clone(),
                n_failed.clone(),
            );
            std::thread::spawn(move || {
                let mut conn: Option<Client> = None;
                for seq in 1..=per_client() {
                    let c = conn.get_or_insert_with(|| connect(&target));
                    match c.transact(ops(k, seq)) {
                        Ok(r) => {
                            assert!(
                                r.iter().all(|x| x.get("error").is_none()),
                                "transaction failed: {r:?}"
                            );
                            acked.lock().unwrap().push((k, seq));
                            n_acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            // The server died: this one is unacknowledged; go on after reconnecting.
                            n_failed.fetch_add(1, Ordering::Relaxed);
                            conn = None;
                        }
                    }
                }
            })
        })
        .collect();
    // Kill the server mid-way, twice, and bring it back.
    let total = per_client() as usize * CLIENTS;
    for threshold in [total / 5, total * 3 / 5] {
        let start = Instant::now();
        while n_acked.load(Ordering::Relaxed) < threshold {
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "clients made no progress"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        srv.kill9();
        std::thread::sleep(Duration::from_millis(100));
        srv.spawn();
    }
    for w in workers {
        w.join().unwrap();
    }
    srv.kill9();
    srv.spawn();

    let mut c = connect(&srv.target());
    let rows = select(&mut c, "Queue", &["external_ids"]);
    let mut present: BTreeSet<(usize, i64)> = BTreeSet::new();
    let mut max_seq: BTreeMap<usize, i64> = BTreeMap::new();
    for r in &rows {
        let m = map_of(&r["external_ids"]);
        let k: usize = m["client"].parse().unwrap();
        let s: i64 = m["seq"].parse().unwrap();
        assert!(
            present.insert((k, s)),
            "transaction ({k},{s}) applied twice"
        );
        let e = max_seq.entry(k).or_default();
        *e = (*e).max(s);
    }
    let acked = acked.lock().unwrap();
    assert!(
        acked.len() > total * 3 / 5,
        "the test must run past both kills"
    );
    for a in acked.iter() {
        assert!(present.contains(a), "acknowledged transaction {a:?} lost");
    }
    // Atomicity: each transaction set the client's counter and inserted its row together.
    let root = &select(&mut c, "Open_vSwitch", &["external_ids"])[0];
    let counters = map_of(&root["external_ids"]);
    for k in 0..CLIENTS {
        let counter: i64 = counters[&format!("c{k}")].parse().unwrap();
        assert_eq!(
            counter, max_seq[&k],
            "client {k}: counter and rows disagree"
        );
    }
    println!(
        "acked {}, unacknowledged (in flight at a kill) {}, rows {}",
        acked.len(),
        n_failed.load(Ordering::Relaxed),
        rows.len()
    );
}
