//! `other_config:bond-rebalance-interval` on a balance-slb bond: two
//! sources whose hash buckets start on the same member, both sending
//! heavily, end up on different members after a rebalancing, and
//! `bond/show` lists each member's hashes with their loads, as OVS does.
//! Dummy ports (`netdev-dummy/receive`) make the traffic exact.

use std::time::Duration;

use anyhow::{Context, Result};
use ferrovs_tests::*;

const BR: &str = "rbr0";

/// A 1500-byte frame from `src` to a MAC nobody has (flooded: to the bond).
fn frame(src: &str) -> String {
    let mut hex = String::from("020000000099");
    hex.push_str(&src.replace(':', ""));
    hex.push_str("88b5");
    hex.push_str(&"ab".repeat(1500 - 14));
    hex
}

/// (packets, bytes) port `ofport` transmitted, from `dump-ports`.
fn tx_counts(sw: &Switch, ofport: &str) -> Result<(u64, u64)> {
    let out = sw.ofctl(&["dump-ports", BR, ofport])?;
    let tx = &out[out.find("tx pkts=").context("no tx pkts")?..];
    let num = |field: &str| -> Result<u64> {
        let at = tx.find(field).context("no such field")? + field.len();
        let n: String = tx[at..].chars().take_while(char::is_ascii_digit).collect();
        Ok(n.parse()?)
    };
    Ok((num("pkts=")?, num("bytes=")?))
}

/// The `hash N:` lines `bond/show` lists under member `m`.
fn hashes_of(show: &str, m: &str) -> Vec<u32> {
    show.split(&format!("\nmember {m}:"))
        .nth(1)
        .map(|rest| {
            rest.split("\nmember ")
                .next()
                .unwrap_or("")
                .lines()
                .filter_map(|l| l.trim().strip_prefix("hash "))
                .filter_map(|l| l.split(':').next()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn rebalancing_moves_one_of_two_heavy_sources_to_the_idle_member() -> Result<()> {
    let sw = Switch::start()?;
    sw.vsctl(&[
        "add-br",
        BR,
        "--",
        "set",
        "bridge",
        BR,
        "datapath_type=dummy",
        "--",
        "add-port",
        BR,
        "rp0",
        "--",
        "set",
        "Interface",
        "rp0",
        "type=dummy",
        "ofport_request=1",
        "--",
        "add-bond",
        BR,
        "rbond",
        "rd1",
        "rd2",
        "bond_mode=balance-slb",
        "other_config:bond-rebalance-interval=1000",
        "--",
        "set",
        "Interface",
        "rd1",
        "type=dummy",
        "ofport_request=2",
        "--",
        "set",
        "Interface",
        "rd2",
        "type=dummy",
        "ofport_request=3",
    ])?; // fmt: skip
    let ready = wait_until(Duration::from_secs(20), || {
        sw.appctl(&["bond/show", "rbond"])
            .is_ok_and(|s| s.contains("member rd1: enabled") && s.contains("member rd2: enabled"))
    });
    assert!(ready, "bond not up:\n{}", sw.log_text());
    let show = sw.appctl(&["bond/show", "rbond"])?;
    assert!(show.contains("bond_mode: balance-slb\n"), "{show}");
    assert!(show.contains("next rebalance: "), "{show}");

    // Two source MACs whose buckets have the same parity: the buckets are
    // spread over the members in turn, so both start on the same member.
    let mut macs: Vec<(String, u32)> = Vec::new();
    for i in 0..=255u8 {
        let mac = format!("02:00:00:00:01:{i:02x}");
        let bucket: u32 = sw.appctl(&["bond/hash", &mac])?.trim().parse()?;
        if let Some(first) = macs.first()
            && first.1 % 2 != bucket % 2
        {
            continue;
        }
        macs.push((mac, bucket));
        if macs.len() == 2 {
            break;
        }
    }
    let [(mac_a, a), (mac_b, b)] = <[(String, u32); 2]>::try_from(macs).unwrap();
    assert_ne!(a, b);
    let (fa, fb) = (frame(&mac_a), frame(&mac_b));

    // Each sends 150 kB or more, interleaved, until a rebalancing has put
    // the two hashes on different members.
    let mut moved = false;
    for _round in 0..20 {
        for _ in 0..50 {
            sw.appctl(&["netdev-dummy/receive", "rp0", &fa])?;
            sw.appctl(&["netdev-dummy/receive", "rp0", &fb])?;
        }
        let show = sw.appctl(&["bond/show", "rbond"])?;
        let (h1, h2) = (hashes_of(&show, "rd1"), hashes_of(&show, "rd2"));
        if !h1.is_empty() && !h2.is_empty() {
            assert_eq!(h1.len() + h2.len(), 2, "{show}");
            assert!(h1.contains(&a) != h2.contains(&a), "{show}");
            moved = true;
            break;
        }
    }
    assert!(
        moved,
        "no rebalancing:\n{}\n{}",
        sw.appctl(&["bond/show", "rbond"])?,
        sw.log_text()
    );
    assert!(sw.log_text().contains("shift hash"), "{}", sw.log_text());

    // The datapath follows: ten 1500-byte frames from each leave by
    // different members. (Counted in bytes: the bridge may flood a few small
    // frames of its own onto the bond meanwhile.)
    let before = (tx_counts(&sw, "2")?, tx_counts(&sw, "3")?);
    for _ in 0..10 {
        sw.appctl(&["netdev-dummy/receive", "rp0", &fa])?;
        sw.appctl(&["netdev-dummy/receive", "rp0", &fb])?;
    }
    let mut got = (0, 0);
    let all = wait_until(Duration::from_secs(10), || {
        let now = (
            tx_counts(&sw, "2").unwrap_or_default(),
            tx_counts(&sw, "3").unwrap_or_default(),
        );
        got = (now.0.1 - before.0.1, now.1.1 - before.1.1);
        got.0 + got.1 >= 20 * 1500
    });
    assert!(all, "frames missing: {got:?} bytes");
    assert!(
        got.0 >= 10 * 1500 && got.1 >= 10 * 1500,
        "both sources still leave by one member: {got:?} bytes"
    );
    Ok(())
}
