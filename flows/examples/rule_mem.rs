//! Memory cost of OpenFlow rules: inserts 100,000 rules into a
//! [`flows::table::Pipeline`] and prints the process RSS before and after.
//!
//! `cargo run --release -p flows --example rule_mem`

use flows::table::{FlowModCommand, Pipeline};
use flows::text::parse_flow_mod;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let mut p = Pipeline::new();
    let before = rss_kib();
    for i in 0..n {
        let s = format!(
            "priority=100,ip,nw_src=10.{}.{}.{},nw_dst=10.200.0.1,actions=output:1",
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff
        );
        let fm = parse_flow_mod(&s, FlowModCommand::Add).expect("valid flow");
        p.flow_mod(&fm, 0).expect("flow added");
    }
    let after = rss_kib();
    println!(
        "rules={} rss_before={} KiB rss_after={} KiB delta={} KiB ({} bytes/rule)",
        p.n_rules(),
        before,
        after,
        after - before,
        (after - before) * 1024 / u64::from(n.max(1))
    );
}
