//! Bulk flow_mods on a pipeline: many rules in, every one findable, and
//! deletes by filter touch exactly the selected ones.

use std::time::Instant;

use flows::action::Action;
use flows::field::Field;
use flows::table::{FlowFilter, FlowMod, FlowModCommand, Pipeline, RemovedReason};
use flows::{FlowKey, Match};

fn rule(i: u32) -> FlowMod {
    let mut fm = FlowMod::new(FlowModCommand::Add);
    let mut m = Match::default();
    for (f, v) in [
        (Field::DlType, 0x0800u128),
        (Field::NwDst, u128::from(0x0a00_0000 | i)),
    ] {
        f.set(&mut m.key, v);
        f.unwildcard(&mut m.mask);
    }
    fm.m = m;
    fm.priority = 100;
    fm.cookie = u64::from(i % 4);
    fm.actions = vec![Action::Output {
        port: 1 + i % 8,
        max_len: 0,
    }];
    fm
}

fn add_many(n: u32) -> Pipeline {
    let mut p = Pipeline::new();
    for i in 0..n {
        p.flow_mod(&rule(i), 0).unwrap();
    }
    p
}

fn key(i: u32) -> FlowKey {
    FlowKey {
        dl_type: 0x0800,
        nw_dst: 0x0a00_0000 | i,
        ..FlowKey::default()
    }
}

#[test]
fn twenty_thousand_rules_are_all_found_and_cookie_delete_removes_a_quarter() {
    let n = 20_000;
    let mut p = add_many(n);
    assert_eq!(p.n_rules(), n as usize);
    for i in (0..n).step_by(97) {
        let mut wc = FlowKey::default();
        let (_, r) = p.lookup(0, &key(i), &mut wc).expect("rule present");
        assert_eq!(
            r.actions,
            vec![Action::Output {
                port: 1 + i % 8,
                max_len: 0
            }]
        );
    }
    // Re-adding the same rules replaces, never duplicates.
    for i in 0..100 {
        p.flow_mod(&rule(i), 0).unwrap();
    }
    assert_eq!(p.n_rules(), n as usize);
    let removed = p
        .delete(
            &FlowFilter {
                cookie: 1,
                cookie_mask: u64::MAX,
                ..FlowFilter::default()
            },
            RemovedReason::Delete,
        )
        .unwrap();
    assert_eq!(removed.len(), (n / 4) as usize);
    assert!(removed.iter().all(|r| r.rule.cookie == 1));
    assert_eq!(p.n_rules(), (n - n / 4) as usize);
}

/// Run with `cargo test --release -p flows --test pipe_table_scale -- --ignored --nocapture`
/// to see how long 100k adds take (bench/ owns real measurements).
#[test]
#[ignore]
fn hundred_thousand_adds() {
    let t = Instant::now();
    let p = add_many(100_000);
    println!("100k flow_mod adds: {:?}", t.elapsed());
    assert_eq!(p.n_rules(), 100_000);
}

#[test]
#[ignore]
fn hundred_thousand_raw_classifier_inserts() {
    let mut c = flows::classifier::Classifier::new();
    let fms: Vec<FlowMod> = (0..100_000).map(rule).collect();
    let t = Instant::now();
    for fm in &fms {
        if c.find_exact(&fm.m, 100).is_none() {
            c.insert(fm.m, 100, fm.actions.clone());
        }
    }
    println!("100k raw classifier inserts: {:?}", t.elapsed());
    let mut p = Pipeline::new();
    let t = Instant::now();
    for fm in &fms {
        p.flow_mod(fm, 0).unwrap();
    }
    println!("100k pipeline adds (prebuilt flow_mods): {:?}", t.elapsed());
}
