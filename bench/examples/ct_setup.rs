//! A driver for instruction counts of connection setup (issue 15's "new
//! connections per second through `ct(commit)`"): it sets up N new UDP
//! connections (64 B frames, distinct 5-tuples, `ferrovs_bench::frame_64`)
//! through one of three layers, and does nothing else worth counting, so
//! callgrind's inclusive count of the named function divided by N is the
//! cost of one new connection.
//!
//! - `tracker N`: `Conntrack::execute` with `ct(commit)` (as
//!   `benches/conntrack.rs`'s `conntrack_new/commit_udp`); count
//!   `ct_setup::tracker_burst`.
//! - `firewall N`: the two `ct` actions the ovs-actions(7) firewall runs on
//!   a new connection's packet, through the datapath's
//!   `DpConntrack::execute` (which parses the frame, as the PMD's `ct`
//!   action does): `ct` (lookup, a miss) then `ct(commit)`; count
//!   `ct_setup::firewall_burst`.
//! - `established N`: as `firewall`, then the N replies through `ct`
//!   (each finds its connection, `+est+rpl`); count
//!   `ct_setup::established_burst` (per packet of an established
//!   connection, for comparison).
//! - `pmd N`: the whole datapath with one PMD thread and two dummy ports,
//!   the firewall's two passes cached as megaflows (table 0 `ct`, recirc;
//!   table 1 `+trk+new` → `ct(commit)`, output 2), the frames queued
//!   while the PMD is held so it takes them in full batches; count the
//!   PMD's `Pmd::process` (the classifier and the actions of both passes;
//!   it runs for the first pass and, from `Pmd::drain_reentry`, for the
//!   recirculated one). Dummy ports copy every frame into a `Vec`, so
//!   transmission is not the AF_PACKET path and is left out.
//! - `rewrite N`: as `pmd` with the first pass rewriting the Ethernet
//!   destination before its `ct`: the frame changed, so the `ct` action
//!   and the recirculated pass parse it again (the path of tunnel
//!   re-injection and of NAT before a recirculation); count
//!   `Pmd::process`.
//! - `forward N`: as `pmd` with one pass and no conntrack (every frame's
//!   megaflow outputs it to port 2), the plain forwarding path to compare
//!   with; count `Pmd::process` per frame.
//!
//! ```text
//! cargo build --release -p ferrovs-bench --example ct_setup
//! valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!     target/release/examples/ct_setup firewall 200000
//! callgrind_annotate --inclusive=yes cg.out | grep -E 'firewall_burst|track_new'
//! valgrind --tool=callgrind --toggle-collect='datapath::dpif::pmd::Pmd::process' \
//!     --callgrind-out-file=pmd.out target/release/examples/ct_setup pmd 50000
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use conntrack::{Conntrack, CtArgs, CtConfig, CtPacket};
use datapath::{Datapath, DpConfig, DpConntrack, DummyPort, Packet, UpcallHandler, UpcallResult};
use ferrovs_bench::frame_64;
use flows::DpAction;
use flows::key::{FlowKey, ct_state, ipproto};
use flows::parse::extract;

fn ct_action(text: &str) -> flows::action::Ct {
    match flows::text::parse_actions(text)
        .expect("ct action parses")
        .remove(0)
    {
        flows::Action::Ct(ct) => *ct,
        a => panic!("not a ct action: {a:?}"),
    }
}

#[inline(never)]
fn tracker_burst(ct: &Conntrack, frames: &mut [Vec<u8>], keys: &[(FlowKey, flows::parse::Layout)]) {
    let args = CtArgs {
        commit: true,
        ..CtArgs::default()
    };
    for (f, (k, l)) in frames.iter_mut().zip(keys) {
        let len = f.len();
        let mut cp = CtPacket {
            buf: f,
            len,
            key: k,
            layout: l,
            partial_l4_csum: false,
        };
        black_box(ct.execute(&mut cp, &args, 0));
    }
}

/// Puts frame `f` into `pkt` as received on `in_port`; returns the metadata
/// a `ct` action runs with (headers unparsed: `ct` parses the frame).
#[inline]
fn load(pkt: &mut Packet, f: &[u8], in_port: u32) -> FlowKey {
    pkt.rx_buffer()[..f.len()].copy_from_slice(f);
    pkt.set_len(f.len());
    pkt.in_port = in_port;
    FlowKey {
        in_port,
        ..FlowKey::default()
    }
}

#[inline(never)]
fn firewall_burst(ct: &DpConntrack, frames: &[Vec<u8>], lookup: u32, commit: u32) {
    let mut pkt = Packet::new();
    for f in frames {
        let mut meta = load(&mut pkt, f, 1);
        black_box(ct.execute(lookup, &mut pkt, &mut meta, None, 0));
        assert_eq!(meta.ct_state, ct_state::TRK | ct_state::NEW);
        black_box(ct.execute(commit, &mut pkt, &mut meta, None, 0));
    }
}

#[inline(never)]
fn established_burst(ct: &DpConntrack, frames: &[Vec<u8>], lookup: u32) {
    let mut pkt = Packet::new();
    for f in frames {
        let mut meta = load(&mut pkt, f, 2);
        black_box(ct.execute(lookup, &mut pkt, &mut meta, None, 0));
        assert_eq!(meta.ct_state, ct_state::TRK | ct_state::EST | ct_state::RPL);
    }
}

/// The reply of a `frame_64` UDP frame: addresses and ports swapped.
fn reversed(f: &[u8]) -> Vec<u8> {
    let mut r = f.to_vec();
    for i in 0..4 {
        r.swap(26 + i, 30 + i);
    }
    r.swap(34, 36);
    r.swap(35, 37);
    r
}

/// The ovs-actions(7) firewall as datapath flows: ct (ids interned by the
/// caller: 0 `ct`, 1 `ct(commit)`); with `rewrite`, the first pass
/// rewrites the Ethernet destination before its `ct`.
struct Firewall {
    rewrite: bool,
}

impl UpcallHandler for Firewall {
    fn upcall(&self, key: &FlowKey, _packet: &Packet) -> UpcallResult {
        let actions = if key.recirc_id == 0 && self.rewrite {
            vec![
                DpAction::SetEthDst([2, 0, 0, 0, 0, 9]),
                DpAction::Ct(0),
                DpAction::Recirc(1),
            ]
        } else if key.recirc_id == 0 {
            vec![DpAction::Ct(0), DpAction::Recirc(1)]
        } else if key.ct_state & ct_state::NEW != 0 {
            vec![DpAction::Ct(1), DpAction::Output(2)]
        } else {
            vec![]
        };
        UpcallResult {
            actions,
            mask: FlowKey {
                recirc_id: u32::MAX,
                ct_state: u32::MAX,
                dl_type: u16::MAX,
                ..FlowKey::default()
            },
            install: true,
        }
    }

    fn userspace(&self, _: &DpAction, _: &FlowKey, _: &Packet) {}
}

/// One pass, no conntrack: every frame out of port 2.
struct Forward;

impl UpcallHandler for Forward {
    fn upcall(&self, _key: &FlowKey, _packet: &Packet) -> UpcallResult {
        UpcallResult {
            actions: vec![DpAction::Output(2)],
            mask: FlowKey {
                dl_type: u16::MAX,
                ..FlowKey::default()
            },
            install: true,
        }
    }

    fn userspace(&self, _: &DpAction, _: &FlowKey, _: &Packet) {}
}

/// N frames through a datapath with one PMD and two dummy ports, queued
/// while the PMD is held so that it takes them in full batches.
fn through_pmd(dp: &Datapath, n: u32) {
    let (p1, p2) = (DummyPort::new("ct-p1"), DummyPort::new("ct-p2"));
    dp.add_port(1, p1.clone()).expect("port 1");
    dp.add_port(2, p2.clone()).expect("port 2");
    // Warm up: the megaflows installed by a first frame.
    p1.inject(&frame_64(ipproto::UDP, n));
    p2.recv_sent(Duration::from_secs(60))
        .expect("warm-up frame forwarded");
    // Queued while the PMD receives nothing, so it then takes them in
    // full batches whatever the scheduling.
    dp.set_hold(true);
    for i in 0..n {
        p1.inject(&frame_64(ipproto::UDP, i));
    }
    dp.set_hold(false);
    for _ in 0..n {
        p2.recv_sent(Duration::from_secs(600))
            .expect("frame forwarded");
    }
}

fn forward(n: u32) {
    let dp = Datapath::new(DpConfig::default(), Arc::new(Forward)).expect("datapath");
    through_pmd(&dp, n);
    dp.shutdown();
}

fn pmd(n: u32, rewrite: bool) {
    let ct = Arc::new(DpConntrack::default());
    assert_eq!(ct.intern(&ct_action("ct(table=1)"), 0), Ok(0));
    assert_eq!(ct.intern(&ct_action("ct(commit)"), 0), Ok(1));
    let dp = Datapath::with_conntrack(
        DpConfig::default(),
        Arc::new(Firewall { rewrite }),
        ct.clone(),
    )
    .expect("datapath");
    through_pmd(&dp, n);
    assert_eq!(ct.tracker().nconns(), n + 1);
    dp.shutdown();
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "tracker".into());
    let n: u32 = args.next().map_or(200_000, |s| s.parse().expect("N"));
    let mut frames: Vec<Vec<u8>> = (0..n).map(|i| frame_64(ipproto::UDP, i)).collect();
    match mode.as_str() {
        "tracker" => {
            let keys: Vec<_> = frames
                .iter()
                .map(|f| extract(f, 1).expect("frame parses"))
                .collect();
            let ct = Conntrack::new(CtConfig::default());
            tracker_burst(&ct, &mut frames, &keys);
            assert_eq!(ct.nconns(), n);
        }
        "firewall" => {
            let ct = DpConntrack::default();
            let lookup = ct.intern(&ct_action("ct(table=1)"), 0).expect("intern");
            let commit = ct.intern(&ct_action("ct(commit)"), 0).expect("intern");
            firewall_burst(&ct, &frames, lookup, commit);
            assert_eq!(ct.tracker().nconns(), n);
            let m = ct.tracker().memory();
            println!(
                "{} B per connection (entries {} B, index {} B)",
                m.per_conn(),
                m.entry_bytes,
                m.index_bytes
            );
        }
        "established" => {
            let ct = DpConntrack::default();
            let lookup = ct.intern(&ct_action("ct(table=1)"), 0).expect("intern");
            let commit = ct.intern(&ct_action("ct(commit)"), 0).expect("intern");
            firewall_burst(&ct, &frames, lookup, commit);
            let replies: Vec<Vec<u8>> = frames.iter().map(|f| reversed(f)).collect();
            established_burst(&ct, &replies, lookup);
        }
        "pmd" => pmd(n, false),
        "rewrite" => pmd(n, true),
        "forward" => forward(n),
        m => panic!("unknown mode {m} (tracker, firewall, established, pmd, rewrite, forward)"),
    }
    println!("{mode}: {n} new connections");
}
