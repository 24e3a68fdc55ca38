//! Micro-benchmarks of the connection tracker: new connections committed per
//! second (plain and with SNAT) and established-connection lookups per
//! second with 1k, 100k and 1M connections tracked (all held at once).
//!
//! Run: `cargo bench -p ferrovs-bench --bench conntrack -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use conntrack::{Conntrack, CtArgs, CtConfig, CtPacket, CtState, NatAction, NatRange};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrovs_bench::frame_64;
use flows::key::{FlowKey, ipproto};
use flows::parse::{Layout, extract};

type Pkt = (Vec<u8>, FlowKey, Layout);

fn pkt(f: Vec<u8>) -> Pkt {
    let (k, l) = extract(&f, 1).expect("bench frame parses");
    (f, k, l)
}

/// The reply of a 64-byte UDP frame: addresses and ports swapped.
fn reversed(mut f: Vec<u8>) -> Vec<u8> {
    for i in 0..4 {
        f.swap(26 + i, 30 + i);
    }
    f.swap(34, 36);
    f.swap(35, 37);
    f
}

fn run(ct: &Conntrack, p: &mut Pkt, args: &CtArgs) -> CtState {
    let (f, k, l) = p;
    let len = f.len();
    let mut cp = CtPacket {
        buf: f,
        len,
        key: k,
        layout: l,
        partial_l4_csum: false,
    };
    ct.execute(&mut cp, args, 0).state
}

fn bench_new(c: &mut Criterion) {
    const N: u32 = 10_000;
    let frames: Vec<Pkt> = (0..N).map(|i| pkt(frame_64(ipproto::UDP, i))).collect();
    let mut g = c.benchmark_group("conntrack_new");
    g.throughput(Throughput::Elements(u64::from(N)));
    g.sample_size(20);
    let snat = NatAction::Src(NatRange {
        port_min: 1024,
        port_max: 65535,
        ..NatRange::addr("192.0.2.1".parse().unwrap())
    });
    for (name, nat) in [("commit_udp", None), ("commit_udp_snat", Some(snat))] {
        let args = CtArgs {
            commit: true,
            nat,
            ..CtArgs::default()
        };
        g.bench_function(BenchmarkId::new("conns", name), |b| {
            b.iter_batched(
                || (Conntrack::new(CtConfig::default()), frames.clone()),
                |(ct, mut fs)| {
                    for p in fs.iter_mut() {
                        black_box(run(&ct, p, &args));
                    }
                    assert_eq!(ct.nconns(), N);
                    ct
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn bench_established(c: &mut Criterion) {
    const BATCH: usize = 32;
    let mut g = c.benchmark_group("conntrack_established");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, n) in [
        ("1k_conns", 1_000u32),
        ("100k_conns", 100_000),
        ("1M_conns", 1_000_000),
    ] {
        let ct = Conntrack::new(CtConfig::default());
        let commit = CtArgs {
            commit: true,
            ..CtArgs::default()
        };
        let plain = CtArgs::default();
        let mut frames: Vec<Pkt> = Vec::with_capacity(n as usize);
        for i in 0..n {
            let f = frame_64(ipproto::UDP, i);
            let mut p = pkt(f.clone());
            run(&ct, &mut p, &commit);
            let mut r = pkt(reversed(f));
            assert!(run(&ct, &mut r, &plain).contains(CtState::EST));
            frames.push(p);
        }
        assert!(run(&ct, &mut frames[7], &plain).contains(CtState::EST));
        // Every connection is held at once (1M: the issue's "1M concurrent
        // connections held").
        assert_eq!(ct.nconns(), n);
        let mut at = 0usize;
        g.bench_function(BenchmarkId::new("lookup_udp", name), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    at = (at + 7919) % frames.len();
                    black_box(run(&ct, &mut frames[at], &plain));
                }
            })
        });
        let m = ct.memory();
        eprintln!(
            "conntrack memory: {} connections, {} B per connection (entries {} B, index {} B)",
            m.conns,
            m.per_conn(),
            m.entry_bytes,
            m.index_bytes
        );
    }
    g.finish();
}

criterion_group!(benches, bench_new, bench_established);
criterion_main!(benches);
