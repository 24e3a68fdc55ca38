//! Micro-benchmarks of the flows core: key extraction, classifier lookup at
//! 1, 1k, 100k and 1M rules, the exact-match cache and key hashing.
//!
//! Run: `cargo bench -p ferrovs-bench --bench flows -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrovs_bench::{five_tuple_key, five_tuple_rules, frame_64, mixed_mask_rules};
use flows::classifier::Classifier;
use flows::emc::ExactMatchCache;
use flows::hash::hash_key;
use flows::key::{FlowKey, ipproto};
use flows::parse::{extract, extract_into};

/// Number of distinct packets cycled through by the lookup benchmarks.
const PROBES: u32 = 4096;

fn bench_extract(c: &mut Criterion) {
    let mut g = c.benchmark_group("extract");
    g.throughput(Throughput::Elements(1));
    for (name, proto) in [("udp_64B", ipproto::UDP), ("tcp_64B", ipproto::TCP)] {
        let frame = frame_64(proto, 12345);
        assert!(extract(&frame, 1).is_ok());
        g.bench_function(BenchmarkId::new("extract", name), |b| {
            b.iter(|| extract(black_box(&frame), 1))
        });
        let mut key = FlowKey::default();
        g.bench_function(BenchmarkId::new("extract_into", name), |b| {
            b.iter(|| {
                let lay = extract_into(black_box(&frame), 1, &mut key);
                black_box(&key);
                lay
            })
        });
    }
    g.finish();
}

fn probe_keys(n_rules: u32) -> Vec<FlowKey> {
    (0..PROBES)
        .map(|j| five_tuple_key(j.wrapping_mul(2_654_435_761) % n_rules))
        .collect()
}

fn bench_classifier(c: &mut Criterion) {
    let mut g = c.benchmark_group("classifier");
    g.throughput(Throughput::Elements(1));
    for n in [1u32, 1_000, 100_000, 1_000_000] {
        let mut cls = Classifier::new();
        for (i, (m, p)) in five_tuple_rules(n).enumerate() {
            cls.insert(m, p, i as u32);
        }
        let keys = probe_keys(n);
        for k in &keys {
            assert!(cls.lookup_no_wc(k).is_some(), "probe must hit");
        }
        let mut i = 0usize;
        g.bench_with_input(
            BenchmarkId::new("5tuple_4masks/lookup_no_wc", n),
            &n,
            |b, _| {
                b.iter(|| {
                    i = (i + 1) % keys.len();
                    cls.lookup_no_wc(black_box(&keys[i])).map(|r| *r.1)
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("5tuple_4masks/lookup_first", n),
            &n,
            |b, _| {
                b.iter(|| {
                    i = (i + 1) % keys.len();
                    cls.lookup_first(black_box(&keys[i])).map(|r| *r.1)
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("5tuple_4masks/lookup_wc", n),
            &n,
            |b, _| {
                b.iter(|| {
                    i = (i + 1) % keys.len();
                    let mut wc = FlowKey::default();
                    let r = cls.lookup(black_box(&keys[i]), &mut wc).map(|r| *r.1);
                    black_box(wc);
                    r
                })
            },
        );
        drop(cls);

        let mut cls = Classifier::new();
        for (i, (m, p)) in mixed_mask_rules(n, 32).enumerate() {
            cls.insert(m, p, i as u32);
        }
        g.bench_with_input(
            BenchmarkId::new("mixed_32masks/lookup_wc", n),
            &n,
            |b, _| {
                b.iter(|| {
                    i = (i + 1) % keys.len();
                    let mut wc = FlowKey::default();
                    let r = cls.lookup(black_box(&keys[i]), &mut wc).map(|r| *r.1);
                    black_box(wc);
                    r
                })
            },
        );
    }
    g.finish();
}

fn bench_classifier_insert(c: &mut Criterion) {
    let mut g = c.benchmark_group("classifier_insert");
    g.sample_size(10);
    let n = 100_000u32;
    g.throughput(Throughput::Elements(u64::from(n)));
    let rules: Vec<_> = five_tuple_rules(n).collect();
    g.bench_function(BenchmarkId::new("5tuple_4masks", n), |b| {
        b.iter(|| {
            let mut cls = Classifier::new();
            for (i, (m, p)) in rules.iter().enumerate() {
                cls.insert(*m, *p, i as u32);
            }
            cls.len()
        })
    });
    g.finish();
}

fn bench_emc_and_hash(c: &mut Criterion) {
    let mut g = c.benchmark_group("emc");
    g.throughput(Throughput::Elements(1));
    let keys: Vec<(FlowKey, u64)> = (0..PROBES / 2)
        .map(|i| {
            let k = five_tuple_key(i);
            (k, hash_key(&k))
        })
        .collect();
    let mut emc = ExactMatchCache::new(8192);
    for (j, (k, h)) in keys.iter().enumerate() {
        emc.insert(k, *h, j as u32);
    }
    let hits: Vec<_> = keys
        .iter()
        .filter(|(k, h)| emc.lookup(k, *h).is_some())
        .copied()
        .collect();
    let mut i = 0usize;
    g.bench_function("lookup_hit", |b| {
        b.iter(|| {
            i = (i + 1) % hits.len();
            let (k, h) = &hits[i];
            emc.lookup(black_box(k), *h)
        })
    });
    g.bench_function("hash_then_lookup_hit", |b| {
        b.iter(|| {
            i = (i + 1) % hits.len();
            let k = black_box(&hits[i].0);
            emc.lookup(k, hash_key(k))
        })
    });
    g.bench_function("hash_key", |b| {
        b.iter(|| {
            i = (i + 1) % hits.len();
            hash_key(black_box(&hits[i].0))
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_extract,
    bench_classifier,
    bench_classifier_insert,
    bench_emc_and_hash
);
criterion_main!(benches);
