//! Micro-benchmark of a PMD's per-batch lookup work on one thread: the
//! stages `Pmd::poll_rxq`/`Pmd::process` run over a received batch of 32
//! frames, in the same order and with the same calls: parse every frame
//! into its key and layout (`extract_with_layout`), hash every key once
//! (`hash_key`), probe the exact-match cache, then the megaflow
//! classifier for the misses (`lookup_no_wc`, a hit inserted into the
//! cache). No ports, threads or actions: this measures the flows crate's
//! share of a packet's cost.
//!
//! Cases (64 B UDP frames):
//! - `emc_hit_1flow`: 32 copies of one frame, its key cached (the vhost
//!   loop with `txpkts 60`: NORMAL, one flow each way);
//! - `emc_hit_32flows`: 32 frames of distinct 5-tuples, all cached;
//! - `megaflow_hit_1flow`: no exact-match cache, one megaflow of NORMAL's
//!   shape (in_port, Ethernet addresses and type) matching every frame.
//!
//! Run: `cargo bench -p ferrovs-bench --bench pmd -- --warm-up-time 1 --measurement-time 3`
//! (and see `main` for an instruction count under cachegrind).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use ferrovs_bench::frame_64;
use flows::classifier::Classifier;
use flows::emc::ExactMatchCache;
use flows::hash::hash_key;
use flows::key::{FlowKey, ipproto};
use flows::matches::Match;
use flows::parse::{Layout, extract_into, extract_with_layout};

const BATCH: usize = 32;
const IN_PORT: u32 = 1;
const MISS: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
enum Case {
    EmcHit1Flow,
    EmcHit32Flows,
    MegaflowHit1Flow,
}

impl Case {
    const ALL: [Case; 3] = [
        Case::EmcHit1Flow,
        Case::EmcHit32Flows,
        Case::MegaflowHit1Flow,
    ];

    fn name(self) -> &'static str {
        match self {
            Case::EmcHit1Flow => "emc_hit_1flow",
            Case::EmcHit32Flows => "emc_hit_32flows",
            Case::MegaflowHit1Flow => "megaflow_hit_1flow",
        }
    }

    fn from_name(s: &str) -> Option<Case> {
        Case::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// A PMD's lookup state and per-batch scratch, as `Pmd` keeps them.
struct Stages {
    frames: Vec<Vec<u8>>,
    cls: Classifier<u32>,
    emc: Option<ExactMatchCache<u32>>,
    keys: Box<[FlowKey; BATCH]>,
    layouts: [Layout; BATCH],
    hashes: [u64; BATCH],
    slots: [u32; BATCH],
}

impl Stages {
    fn new(case: Case) -> Stages {
        let frames: Vec<Vec<u8>> = (0..BATCH as u32)
            .map(|i| match case {
                Case::EmcHit32Flows => frame_64(ipproto::UDP, i),
                _ => frame_64(ipproto::UDP, 7),
            })
            .collect();
        // NORMAL's megaflow for this traffic: in_port, both Ethernet
        // addresses and the Ethernet type.
        let mut key = FlowKey::default();
        extract_into(&frames[0], IN_PORT, &mut key).unwrap();
        let mask = FlowKey {
            in_port: !0,
            dl_src: [0xff; 6],
            dl_dst: [0xff; 6],
            dl_type: 0xffff,
            ..FlowKey::default()
        };
        let mut cls = Classifier::new();
        cls.insert(Match::new(key, mask), 0, 0);
        let emc = match case {
            Case::MegaflowHit1Flow => None,
            _ => Some(ExactMatchCache::new(flows::emc::EMC_DEFAULT_ENTRIES)),
        };
        let mut s = Stages {
            frames,
            cls,
            emc,
            keys: Box::new([FlowKey::default(); BATCH]),
            layouts: [Layout::default(); BATCH],
            hashes: [0; BATCH],
            slots: [MISS; BATCH],
        };
        // Warm: the first batch fills the cache; every later one hits.
        s.step();
        assert!(s.slots.iter().all(|&v| v == 0), "every frame must hit");
        s
    }

    /// One batch: parse, hash and exact-match probe, megaflow for misses.
    fn step(&mut self) -> u32 {
        for (j, f) in self.frames.iter().enumerate() {
            self.slots[j] = if extract_with_layout(
                black_box(f),
                IN_PORT,
                &mut self.keys[j],
                &mut self.layouts[j],
            )
            .is_err()
            {
                MISS - 1
            } else {
                MISS
            };
        }
        let mut emc_misses = 0;
        for j in 0..BATCH {
            let hash = hash_key(&self.keys[j]);
            self.hashes[j] = hash;
            match self
                .emc
                .as_ref()
                .and_then(|e| e.lookup(&self.keys[j], hash))
            {
                Some(v) => self.slots[j] = v,
                None => emc_misses += 1,
            }
        }
        if emc_misses > 0 {
            for j in 0..BATCH {
                if self.slots[j] != MISS {
                    continue;
                }
                if let Some((_, &v)) = self.cls.lookup_no_wc(&self.keys[j]) {
                    if let Some(e) = &mut self.emc {
                        e.insert(&self.keys[j], self.hashes[j], v);
                    }
                    self.slots[j] = v;
                }
            }
        }
        self.slots.iter().fold(0, |a, &v| a ^ v)
    }
}

fn bench_stages(c: &mut Criterion) {
    let mut g = c.benchmark_group("pmd_stages");
    g.throughput(Throughput::Elements(BATCH as u64));
    for case in Case::ALL {
        let mut s = Stages::new(case);
        g.bench_function(BenchmarkId::new("batch32", case.name()), |b| {
            b.iter(|| s.step())
        });
    }
    g.finish();
}

criterion_group!(benches, bench_stages);

/// `FERROVS_PMD_BATCHES=N [FERROVS_PMD_CASE=emc_hit_1flow]`: runs N batches
/// of one case and no measurement, for an instruction count the machine's
/// load does not disturb (`valgrind --tool=cachegrind`: the difference
/// between two values of N, divided by their difference and by 32, is the
/// instructions per frame).
fn main() {
    if let Some(n) = std::env::var("FERROVS_PMD_BATCHES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let case = std::env::var("FERROVS_PMD_CASE")
            .ok()
            .map(|c| Case::from_name(&c).unwrap_or_else(|| panic!("unknown case {c}")))
            .unwrap_or(Case::EmcHit1Flow);
        let mut s = Stages::new(case);
        for _ in 0..n {
            black_box(s.step());
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
