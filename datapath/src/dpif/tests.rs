//! Datapath behaviour with in-memory ports.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use flows::{DpAction, FlowKey, UserspaceReason};

use super::*;
use crate::dummy::DummyPort;
use crate::offload::testframes::{make_partial, tcp4, tcp4_valid};
use crate::packet::{Offload, Packet};

/// How long a test waits for something that must happen: long enough that
/// only a hang reaches it, even on a loaded machine.
pub(super) const WAIT: Duration = Duration::from_secs(30);

/// Polls `cond` until it holds or [`WAIT`] passes.
pub(super) fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < WAIT, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

type Decide = dyn Fn(&FlowKey) -> UpcallResult + Send + Sync;

pub(super) struct TestHandler {
    calls: AtomicUsize,
    decide: Box<Decide>,
    userspace: Mutex<Vec<(DpAction, Vec<u8>)>>,
    /// When set, each upcall reports itself here and waits for a go.
    gate: Option<(Sender<()>, Receiver<()>)>,
}

impl TestHandler {
    pub(super) fn new(
        decide: impl Fn(&FlowKey) -> UpcallResult + Send + Sync + 'static,
    ) -> Arc<TestHandler> {
        Arc::new(TestHandler {
            calls: AtomicUsize::new(0),
            decide: Box::new(decide),
            userspace: Mutex::new(Vec::new()),
            gate: None,
        })
    }

    /// A handler that holds each upcall at a gate: the first receiver
    /// hears when an upcall entered, and each `()` sent on the returned
    /// sender lets one decision through.
    pub(super) fn gated(
        decide: impl Fn(&FlowKey) -> UpcallResult + Send + Sync + 'static,
    ) -> (Arc<TestHandler>, Receiver<()>, Sender<()>) {
        let (entered_tx, entered_rx) = unbounded();
        let (go_tx, go_rx) = unbounded();
        let h = Arc::new(TestHandler {
            calls: AtomicUsize::new(0),
            decide: Box::new(decide),
            userspace: Mutex::new(Vec::new()),
            gate: Some((entered_tx, go_rx)),
        });
        (h, entered_rx, go_tx)
    }

    pub(super) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl UpcallHandler for TestHandler {
    fn upcall(&self, key: &FlowKey, _packet: &Packet) -> UpcallResult {
        if let Some((entered, go)) = &self.gate {
            let _ = entered.send(());
            let _ = go.recv();
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        (self.decide)(key)
    }

    fn userspace(&self, action: &DpAction, _key: &FlowKey, packet: &Packet) {
        self.userspace
            .lock()
            .unwrap()
            .push((*action, packet.data().to_vec()));
    }
}

/// Output to `to`, megaflow on the destination MAC only.
fn forward_by_dl_dst(to: u32) -> impl Fn(&FlowKey) -> UpcallResult + Send + Sync {
    move |_| {
        let mask = FlowKey {
            dl_dst: [0xff; 6],
            ..FlowKey::default()
        };
        UpcallResult {
            actions: vec![DpAction::Output(to)],
            mask,
            install: true,
        }
    }
}

fn actions_then_output(
    actions: Vec<DpAction>,
    to: u32,
) -> impl Fn(&FlowKey) -> UpcallResult + Send + Sync {
    move |_| {
        let mut a = actions.clone();
        a.push(DpAction::Output(to));
        UpcallResult {
            actions: a,
            mask: FlowKey::all_ones(),
            install: true,
        }
    }
}

pub(super) fn frame(seq: u32) -> Vec<u8> {
    tcp4(&[1, 2, 3, 4], seq, 0x10, 7)
}

pub(super) struct Rig {
    pub dp: Datapath,
    pub p1: Arc<DummyPort>,
    pub p2: Arc<DummyPort>,
}

pub(super) fn rig(handler: Arc<TestHandler>) -> Rig {
    rig_with(DpConfig::default(), handler)
}

/// [`rig`] with datapath configuration `cfg`.
pub(super) fn rig_with(cfg: DpConfig, handler: Arc<TestHandler>) -> Rig {
    let dp = Datapath::new(cfg, handler).unwrap();
    let p1 = DummyPort::new("dp-p1");
    let p2 = DummyPort::new("dp-p2");
    dp.add_port(1, p1.clone()).unwrap();
    dp.add_port(2, p2.clone()).unwrap();
    Rig { dp, p1, p2 }
}

pub(super) fn stats(dp: &Datapath) -> PmdStats {
    dp.pmd_stats()[0]
}

#[test]
fn first_packet_upcalls_then_megaflow_then_emc_hits() {
    let h = TestHandler::new(forward_by_dl_dst(2));
    let r = rig(h.clone());
    // Every megaflow hit cached in the EMC (applied live).
    r.dp.set_emc_insert_inv_prob(1);
    r.p1.inject(&frame(1));
    assert_eq!(r.p2.recv_sent(WAIT).unwrap().data, frame(1));
    assert_eq!(h.calls(), 1);
    let flows = r.dp.dump_flows();
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].m.mask.dl_dst, [0xff; 6]);
    assert_eq!(flows[0].m.key.in_port, 1, "megaflows always match in_port");
    assert_eq!(flows[0].actions, vec![DpAction::Output(2)]);

    // Another TCP sequence number: different exact key, same megaflow.
    r.p1.inject(&frame(2));
    assert_eq!(r.p2.recv_sent(WAIT).unwrap().data, frame(2));
    r.p1.inject(&frame(2));
    assert_eq!(r.p2.recv_sent(WAIT).unwrap().data, frame(2));
    assert_eq!(h.calls(), 1, "the slow path was asked only once");
    eventually("stats published", || stats(&r.dp).rx_packets == 3);
    let s = stats(&r.dp);
    assert_eq!((s.upcalls, s.megaflow_hits, s.emc_hits), (1, 1, 1));
    // The packet that asked the slow path is counted there, not in the
    // megaflow (OVS's datapath shows packets:0 after the first packet).
    let f = &r.dp.dump_flows()[0];
    assert_eq!(f.packets, 2);
    assert_eq!(f.bytes, 2 * frame(1).len() as u64);
    assert!(f.used.is_some());
    let ps = r.dp.port_stats(2).unwrap();
    assert_eq!(ps.tx_packets, 3);
    assert_eq!(r.dp.port_stats(1).unwrap().rx_packets, 3);
}

#[test]
fn flush_sends_the_next_packet_to_the_slow_path_again() {
    let h = TestHandler::new(forward_by_dl_dst(2));
    let r = rig(h.clone());
    r.p1.inject(&frame(1));
    r.p2.recv_sent(WAIT).unwrap();
    let g = r.dp.generation();
    r.dp.flush();
    assert!(r.dp.generation() > g);
    assert!(r.dp.dump_flows().is_empty());
    r.p1.inject(&frame(1));
    r.p2.recv_sent(WAIT).unwrap();
    assert_eq!(h.calls(), 2);
    assert_eq!(r.dp.dump_flows().len(), 1);
}

#[test]
fn flush_where_drops_only_the_selected_megaflows() {
    let h = TestHandler::new(forward_by_dl_dst(2));
    let r = rig(h.clone());
    // Two megaflows: one from each port.
    r.p1.inject(&frame(1));
    r.p2.recv_sent(WAIT).unwrap();
    r.p2.inject(&frame(1));
    r.p2.recv_sent(WAIT).unwrap();
    assert_eq!(r.dp.dump_flows().len(), 2);
    let g = r.dp.generation();
    r.dp.flush_where(Arc::new(|m: &flows::Match| m.key.in_port == 2));
    assert!(
        r.dp.generation() > g,
        "a targeted flush also bumps the generation"
    );
    let left = r.dp.dump_flows();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].m.key.in_port, 1, "the unselected megaflow stays");
    // The kept megaflow still serves packets without the slow path.
    let calls = h.calls();
    r.p1.inject(&frame(2));
    r.p2.recv_sent(WAIT).unwrap();
    assert_eq!(h.calls(), calls);
}

#[test]
fn set_pmd_cpus_repins_and_reports_the_cpu() {
    let h = TestHandler::new(forward_by_dl_dst(2));
    let r = rig(h);
    r.dp.set_pmd_cpus(&[0]);
    eventually("cpu published", || stats(&r.dp).cpu == Some(0));
}

#[test]
fn malformed_frame_counts_an_rx_error_and_is_dropped() {
    let h = TestHandler::new(forward_by_dl_dst(2));
    let r = rig(h.clone());
    r.p1.inject(&[0xff; 5]);
    r.p1.inject(&frame(1));
    assert_eq!(r.p2.recv_sent(WAIT).unwrap().data, frame(1));
    eventually("rx error counted", || {
        r.dp.port_stats(1).unwrap().rx_errors == 1
    });
    assert!(r.p2.take_sent().is_empty(), "the runt was not forwarded");
    assert_eq!(h.calls(), 1, "the runt never reached the slow path");
}

#[test]
fn del_port_stops_traffic_to_and_from_the_port() {
    let h = TestHandler::new(forward_by_dl_dst(2));
    let r = rig(h.clone());
    r.p1.inject(&frame(1));
    r.p2.recv_sent(WAIT).unwrap();
    r.dp.del_port(2).unwrap();
    assert!(r.dp.port_stats(2).is_none());
    r.p1.inject(&frame(1));
    eventually("second packet received", || {
        r.dp.port_stats(1).unwrap().rx_packets == 2
    });
    eventually("second packet processed", || stats(&r.dp).rx_packets == 2);
    assert!(r.p2.take_sent().is_empty());
    assert_eq!(r.p2.stats().snapshot().tx_packets, 1);

    r.dp.del_port(1).unwrap();
    r.p1.inject(&frame(1));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        r.p1.stats().snapshot().rx_packets,
        2,
        "a deleted port is not polled"
    );
    assert!(matches!(r.dp.del_port(1), Err(DpError::NoSuchPort(1))));
}

#[test]
fn adding_a_port_number_twice_is_refused() {
    let h = TestHandler::new(forward_by_dl_dst(2));
    let r = rig(h);
    let again = DummyPort::new("dp-p3");
    assert!(matches!(
        r.dp.add_port(1, again),
        Err(DpError::PortExists(1))
    ));
}

#[test]
fn push_vlan_and_set_eth_actions_are_executed() {
    let h = TestHandler::new(actions_then_output(
        vec![
            DpAction::SetEthDst([0x02, 9, 9, 9, 9, 9]),
            DpAction::PushVlan {
                tpid: 0x8100,
                tci: 42,
            },
        ],
        2,
    ));
    let r = rig(h);
    let f = frame(1);
    r.p1.inject(&f);
    let out = r.p2.recv_sent(WAIT).unwrap().data;
    assert_eq!(out.len(), f.len() + 4);
    assert_eq!(&out[0..6], &[0x02, 9, 9, 9, 9, 9]);
    assert_eq!(&out[6..12], &f[6..12]);
    assert_eq!(&out[12..16], &[0x81, 0x00, 0x00, 42]);
    assert_eq!(&out[16..], &f[12..]);
}

#[test]
fn pop_vlan_restores_the_untagged_frame() {
    let h = TestHandler::new(actions_then_output(vec![DpAction::PopVlan], 2));
    let r = rig(h);
    let f = frame(1);
    let mut tagged = f[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    tagged.extend_from_slice(&f[12..]);
    r.p1.inject(&tagged);
    assert_eq!(r.p2.recv_sent(WAIT).unwrap().data, f);
}

#[test]
fn userspace_action_hands_a_copy_to_the_slow_path() {
    let ua = DpAction::Userspace {
        reason: UserspaceReason::Action,
        cookie: 5,
        table_id: 0,
        max_len: 128,
        controller_id: 0,
        continuation: false,
        dont_send: false,
        slot: 0,
    };
    let h = TestHandler::new(actions_then_output(vec![ua], 2));
    let r = rig(h.clone());
    r.p1.inject(&frame(1));
    r.p2.recv_sent(WAIT).unwrap();
    r.p1.inject(&frame(1));
    r.p2.recv_sent(WAIT).unwrap();
    eventually("two packet-ins", || h.userspace.lock().unwrap().len() == 2);
    let got = h.userspace.lock().unwrap();
    assert_eq!(got[0], (ua, frame(1)));
}

#[test]
fn packets_of_a_pending_upcall_wait_for_its_answer_without_new_upcalls() {
    let (h, entered_rx, go_tx) = TestHandler::gated(forward_by_dl_dst(2));
    let r = rig(h.clone());
    // One batch: the first packet misses, the other two queue behind it.
    r.dp.set_hold(true);
    for _ in 0..3 {
        r.p1.inject(&frame(1));
    }
    r.dp.set_hold(false);
    entered_rx.recv_timeout(WAIT).unwrap();
    eventually("queued packets received", || stats(&r.dp).rx_packets == 3);
    go_tx.send(()).unwrap();
    for _ in 0..3 {
        assert_eq!(r.p2.recv_sent(WAIT).unwrap().data, frame(1));
    }
    assert_eq!(h.calls(), 1);
    // The two that waited followed the megaflow; the first was counted by
    // the slow path.
    assert_eq!(r.dp.dump_flows()[0].packets, 2);
}

/// The active-FTP-through-NAT failure of issue 15: a server's ACK
/// completing a new connection missed (its megaflow was new) while the
/// server's later reply on an established connection hit a megaflow; the
/// PMD forwarded the reply while the ACK waited for the handler, and the
/// client saw the reply before the connection. Here: while B's upcall is
/// unanswered, C (of a cached flow, received after B) must not overtake it.
#[test]
fn a_packet_received_after_a_miss_does_not_overtake_it() {
    let (h, entered_rx, go_tx) = TestHandler::gated(forward_by_dl_dst(2));
    let r = rig(h.clone());
    let cached = frame(1);
    let mut new = frame(2);
    new[5] = 0x42;
    r.p1.inject(&cached);
    entered_rx.recv_timeout(WAIT).unwrap();
    go_tx.send(()).unwrap();
    assert_eq!(r.p2.recv_sent(WAIT).unwrap().data, cached);
    eventually("megaflow installed", || r.dp.dump_flows().len() == 1);
    // B misses and the slow path is mid-decision when C arrives.
    r.p1.inject(&new);
    entered_rx.recv_timeout(WAIT).unwrap();
    r.p1.inject(&cached);
    // Time for a PMD that went on receiving to forward C.
    std::thread::sleep(Duration::from_millis(10));
    let early = r.p2.take_sent();
    // (Answer first: a failed assertion must not leave the handler waiting.)
    go_tx.send(()).unwrap();
    assert!(
        early.is_empty(),
        "a cached flow's packet overtook a pending miss"
    );
    assert_eq!(r.p2.recv_sent(WAIT).unwrap().data, new);
    assert_eq!(r.p2.recv_sent(WAIT).unwrap().data, cached);
    assert_eq!(h.calls(), 2);
}

#[test]
fn a_drop_decision_after_flush_stops_the_stream() {
    let dropping = Arc::new(AtomicBool::new(false));
    let d = dropping.clone();
    let h = TestHandler::new(move |_| UpcallResult {
        actions: if d.load(Ordering::SeqCst) {
            vec![]
        } else {
            vec![DpAction::Output(2)]
        },
        mask: FlowKey::default(),
        install: true,
    });
    let r = rig(h);
    for i in 0..10 {
        r.p1.inject(&frame(i));
        r.p2.recv_sent(WAIT).unwrap();
    }
    dropping.store(true, Ordering::SeqCst);
    r.dp.flush();
    for i in 0..10 {
        r.p1.inject(&frame(i));
    }
    eventually("all received", || stats(&r.dp).rx_packets == 20);
    std::thread::sleep(Duration::from_millis(20));
    assert!(r.p2.take_sent().is_empty());
}

/// A handler whose decision is forward to port 2 until `dropping` is set,
/// then drop (megaflow on nothing), each upcall held at the gate.
fn gated_forward_then_drop(
    dropping: Arc<AtomicBool>,
) -> (Arc<TestHandler>, Receiver<()>, Sender<()>) {
    TestHandler::gated(move |_| UpcallResult {
        actions: if dropping.load(Ordering::SeqCst) {
            vec![]
        } else {
            vec![DpAction::Output(2)]
        },
        mask: FlowKey::default(),
        install: true,
    })
}

#[test]
fn a_decision_made_before_a_flush_forwards_its_packet_but_is_not_cached() {
    let dropping = Arc::new(AtomicBool::new(false));
    let (h, entered, go) = gated_forward_then_drop(dropping.clone());
    let r = rig(h.clone());
    r.p1.inject(&frame(1));
    entered.recv_timeout(WAIT).unwrap();
    // The slow path is mid-decision (forward) when the rules change: its
    // packet still goes where the decision says, once, as in OVS.
    r.dp.flush();
    go.send(()).unwrap();
    assert_eq!(r.p2.recv_sent(WAIT).unwrap().data, frame(1));
    assert!(
        r.dp.dump_flows().is_empty(),
        "a decision older than the flush is not cached"
    );
    // The next packet is decided anew, under the new rule (drop).
    dropping.store(true, Ordering::SeqCst);
    r.p1.inject(&frame(1));
    entered.recv_timeout(WAIT).unwrap();
    go.send(()).unwrap();
    eventually("drop flow installed", || r.dp.dump_flows().len() == 1);
    assert_eq!(r.dp.dump_flows()[0].actions, vec![]);
    assert_eq!(h.calls(), 2, "one decision per packet that missed");
    assert!(r.p2.take_sent().is_empty(), "the drop decision was used");
}

#[test]
fn packets_queued_behind_a_stale_decision_are_decided_again() {
    let dropping = Arc::new(AtomicBool::new(false));
    let (h, entered, go) = gated_forward_then_drop(dropping.clone());
    let r = rig(h.clone());
    r.dp.set_hold(true);
    for _ in 0..3 {
        r.p1.inject(&frame(1));
    }
    r.dp.set_hold(false);
    entered.recv_timeout(WAIT).unwrap();
    eventually("queued packets received", || stats(&r.dp).rx_packets == 3);
    r.dp.flush();
    // The stale decision forwards only the packet that asked for it.
    go.send(()).unwrap();
    assert_eq!(r.p2.recv_sent(WAIT).unwrap().data, frame(1));
    dropping.store(true, Ordering::SeqCst);
    // The first queued packet asks for itself; the other waits on it and
    // then follows the new (drop) megaflow, which counts it.
    entered.recv_timeout(WAIT).unwrap();
    go.send(()).unwrap();
    eventually("drop flow installed", || {
        r.dp.dump_flows().first().is_some_and(|f| f.packets == 1)
    });
    assert_eq!(h.calls(), 2);
    assert_eq!(r.dp.dump_flows()[0].actions, vec![]);
    assert!(r.p2.take_sent().is_empty());
}

#[test]
fn a_flush_reports_the_final_counters_of_what_it_dropped() {
    let h = TestHandler::new(forward_by_dl_dst(2));
    let r = rig(h.clone());
    for _ in 0..4 {
        r.p1.inject(&frame(1));
        r.p2.recv_sent(WAIT).unwrap();
    }
    r.p2.inject(&frame(1));
    r.p2.recv_sent(WAIT).unwrap();
    let before = r.dp.dump_flows();
    let mut gone =
        r.dp.flush_where(Arc::new(|m: &flows::Match| m.key.in_port == 1));
    assert_eq!(gone.len(), 1);
    assert_eq!((gone[0].m.key.in_port, gone[0].packets), (1, 3));
    let same = before.iter().find(|f| f.m == gone[0].m).unwrap();
    assert_eq!(same.created, gone[0].created, "the same megaflow");
    gone = r.dp.flush();
    assert_eq!(gone.len(), 1);
    assert_eq!((gone[0].m.key.in_port, gone[0].packets), (2, 0));
    assert!(r.dp.dump_flows().is_empty());
}

#[test]
fn execute_transmits_a_packet_out() {
    let h = TestHandler::new(forward_by_dl_dst(2));
    let r = rig(h.clone());
    r.dp.execute(
        Packet::from_bytes(&frame(9)),
        vec![DpAction::Output(2), DpAction::Output(1)],
    );
    assert_eq!(r.p2.recv_sent(WAIT).unwrap().data, frame(9));
    assert_eq!(r.p1.recv_sent(WAIT).unwrap().data, frame(9));
    assert_eq!(h.calls(), 0);
}

#[test]
fn tso_super_frame_is_segmented_for_a_port_without_offloads() {
    let h = TestHandler::new(forward_by_dl_dst(2));
    let r = rig(h);
    let payload: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    let mut f = tcp4(&payload, 100, 0x18, 1);
    make_partial(&mut f, 14, 34, true);
    let o = Offload {
        flags: Offload::F_NEEDS_CSUM,
        gso_type: Offload::GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    r.p1.inject_with(0, &f, o);
    let mut joined = Vec::new();
    for _ in 0..4 {
        let s = r.p2.recv_sent(WAIT).unwrap();
        assert!(tcp4_valid(&s.data));
        assert!(s.offload.is_plain());
        joined.extend_from_slice(&s.data[54..]);
    }
    assert_eq!(joined, payload);
}

#[test]
fn clear_pmd_stats_zeroes_the_counters() {
    let h = TestHandler::new(forward_by_dl_dst(2));
    let r = rig(h);
    r.p1.inject(&frame(1));
    r.p2.recv_sent(WAIT).unwrap();
    eventually("counted", || stats(&r.dp).rx_packets == 1);
    r.dp.clear_pmd_stats();
    let s = stats(&r.dp);
    assert_eq!((s.rx_packets, s.upcalls), (0, 0));
}

#[test]
fn every_stage_of_the_packet_path_is_charged_cycles_and_clear_resets_them() {
    let h = TestHandler::new(forward_by_dl_dst(2));
    let r = rig(h);
    // A miss (receive, parse, EMC, megaflow, upcall), then a megaflow hit
    // and an EMC hit (execute, send).
    for seq in [1, 2, 2] {
        r.p1.inject(&frame(seq));
        r.p2.recv_sent(WAIT).unwrap();
    }
    eventually("counted", || stats(&r.dp).rx_packets == 3);
    let s = stats(&r.dp);
    for stage in Stage::ALL {
        assert!(s.stage(stage) > 0, "no cycles charged to {}", stage.name());
    }
    assert!(s.busy_iterations >= 1 && s.busy_cycles > 0);
    assert!(
        s.busy_cycles >= s.stage_cycles.iter().sum::<u64>(),
        "stages lie within busy iterations"
    );
    eventually("idle iterations counted", || {
        stats(&r.dp).idle_iterations > 0
    });
    r.dp.clear_pmd_stats();
    let s = stats(&r.dp);
    assert_eq!(s.stage_cycles, [0; N_STAGES]);
    assert_eq!((s.busy_iterations, s.busy_cycles), (0, 0));
}

#[test]
fn a_pinned_pmd_never_sleeps_and_pmd_maxsleep_lets_it() {
    let h = TestHandler::new(forward_by_dl_dst(2));
    let cfg = DpConfig {
        pmd_cpus: vec![0],
        idle_spin: Duration::ZERO,
        ..DpConfig::default()
    };
    let dp = Datapath::new(cfg, h).unwrap();
    dp.add_port(1, DummyPort::new("dp-pin")).unwrap();
    eventually("many idle iterations", || {
        stats(&dp).idle_iterations > 10_000
    });
    assert_eq!(stats(&dp).sleep_cycles, 0, "a pinned PMD spins");
    dp.set_pmd_max_sleep(Some(Duration::from_micros(50)));
    eventually("the PMD sleeps", || stats(&dp).sleep_cycles > 0);
    dp.set_pmd_max_sleep(Some(Duration::ZERO));
    dp.clear_pmd_stats();
    eventually("many idle iterations", || {
        stats(&dp).idle_iterations > 10_000
    });
    assert_eq!(
        stats(&dp).sleep_cycles,
        0,
        "pmd-maxsleep=0 forbids sleeping"
    );
}

#[test]
fn an_unpinned_idle_pmd_sleeps() {
    let h = TestHandler::new(forward_by_dl_dst(2));
    let cfg = DpConfig {
        idle_spin: Duration::ZERO,
        ..DpConfig::default()
    };
    let dp = Datapath::new(cfg, h).unwrap();
    dp.add_port(1, DummyPort::new("dp-unpin")).unwrap();
    eventually("the PMD sleeps", || stats(&dp).sleep_cycles > 0);
}

#[test]
fn receive_queues_spread_over_pmds() {
    let h = TestHandler::new(forward_by_dl_dst(2));
    let cfg = DpConfig {
        n_pmd: 2,
        ..DpConfig::default()
    };
    let dp = Datapath::new(cfg, h).unwrap();
    let p1 = DummyPort::with("dp-mq", 2, crate::port::OffloadCaps::default());
    let p2 = DummyPort::new("dp-out");
    dp.add_port(1, p1.clone()).unwrap();
    dp.add_port(2, p2.clone()).unwrap();
    assert_eq!(dp.rxq_assignment(), vec![(1, 0, 0), (1, 1, 1), (2, 0, 0)]);
    p1.inject_with(0, &frame(1), Offload::default());
    p1.inject_with(1, &frame(2), Offload::default());
    p2.recv_sent(WAIT).unwrap();
    p2.recv_sent(WAIT).unwrap();
    eventually("both pmds counted", || {
        dp.pmd_stats().iter().all(|s| s.rx_packets == 1)
    });
    dp.shutdown();
}

#[test]
fn set_ipv4_dst_keeps_ip_and_tcp_checksums_valid() {
    let h = TestHandler::new(actions_then_output(
        vec![DpAction::SetIpv4Dst(0x0a00_0063)],
        2,
    ));
    let r = rig(h);
    r.p1.inject(&frame(1));
    let out = r.p2.recv_sent(WAIT).unwrap().data;
    assert_eq!(&out[30..34], &[10, 0, 0, 99]);
    assert!(tcp4_valid(&out));
}

#[test]
fn rewritten_partial_checksum_frame_is_completed_for_a_port_without_csum() {
    let h = TestHandler::new(actions_then_output(
        vec![DpAction::SetIpv4Src(0x0a00_0042)],
        2,
    ));
    let r = rig(h);
    let mut f = tcp4(&[9; 300], 1, 0x10, 1);
    make_partial(&mut f, 14, 34, true);
    let o = Offload {
        flags: Offload::F_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 16,
        ..Offload::default()
    };
    r.p1.inject_with(0, &f, o);
    let out = r.p2.recv_sent(WAIT).unwrap();
    assert_eq!(&out.data[26..30], &[10, 0, 0, 0x42]);
    assert!(tcp4_valid(&out.data));
    assert!(out.offload.is_plain());
}

#[test]
fn pushing_a_vlan_tag_on_a_partial_checksum_frame_moves_the_checksum_start() {
    let caps = crate::port::OffloadCaps {
        tx_csum: true,
        tx_tso: true,
        tx_uso: false,
    };
    let h = TestHandler::new(actions_then_output(
        vec![DpAction::PushVlan {
            tpid: 0x8100,
            tci: 7,
        }],
        2,
    ));
    let dp = Datapath::new(DpConfig::default(), h).unwrap();
    let p1 = DummyPort::new("dp-p1");
    let p2 = DummyPort::with("dp-p2", 1, caps);
    dp.add_port(1, p1.clone()).unwrap();
    dp.add_port(2, p2.clone()).unwrap();
    let mut f = tcp4(&[9; 300], 1, 0x10, 1);
    make_partial(&mut f, 14, 34, true);
    let o = Offload {
        flags: Offload::F_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 16,
        ..Offload::default()
    };
    p1.inject_with(0, &f, o);
    let out = p2.recv_sent(WAIT).unwrap();
    assert_eq!(
        out.offload.csum_start, 38,
        "offload offsets follow the pushed tag"
    );
    let mut data = out.data.clone();
    crate::offload::complete_csum(&mut data, out.offload.csum_start, out.offload.csum_offset)
        .unwrap();
    let mut untagged = data[..12].to_vec();
    untagged.extend_from_slice(&data[16..]);
    assert!(tcp4_valid(&untagged));
}

#[test]
fn idle_megaflows_expire_and_the_next_packet_asks_again() {
    let h = TestHandler::new(forward_by_dl_dst(2));
    let cfg = DpConfig {
        flow_idle_timeout: Some(Duration::from_millis(30)),
        ..DpConfig::default()
    };
    let dp = Datapath::new(cfg, h.clone()).unwrap();
    let p1 = DummyPort::new("dp-p1");
    let p2 = DummyPort::new("dp-p2");
    dp.add_port(1, p1.clone()).unwrap();
    dp.add_port(2, p2.clone()).unwrap();
    // The megaflow lives only 30 ms: on a loaded machine it may expire
    // before a dump right after the first packet sees it, so packets are
    // sent until one dump does (each either refreshes it or installs it
    // again).
    let t = Instant::now();
    loop {
        p1.inject(&frame(1));
        p2.recv_sent(WAIT).unwrap();
        if dp.dump_flows().len() == 1 {
            break;
        }
        assert!(t.elapsed() < WAIT, "the megaflow was never installed");
    }
    eventually("flow expired", || dp.dump_flows().is_empty());
    let asked = h.calls();
    p1.inject(&frame(1));
    p2.recv_sent(WAIT).unwrap();
    assert_eq!(h.calls(), asked + 1, "the packet after expiry asks again");
}

#[test]
fn misses_beyond_the_upcall_queue_are_counted_as_lost() {
    let (h, entered_rx, go_tx) = TestHandler::gated(forward_by_dl_dst(2));
    let cfg = DpConfig {
        upcall_queue: 1,
        ..DpConfig::default()
    };
    let dp = Datapath::new(cfg, h.clone()).unwrap();
    let p1 = DummyPort::new("dp-p1");
    let p2 = DummyPort::new("dp-p2");
    dp.add_port(1, p1.clone()).unwrap();
    dp.add_port(2, p2.clone()).unwrap();
    // The handler holds the first miss; the queue holds one more; the
    // third distinct key finds the queue full. (The PMD receives the
    // second and third once it stops waiting for the first answer.)
    let mut f1 = frame(1);
    f1[5] = 0x11;
    let mut f2 = frame(1);
    f2[5] = 0x22;
    let mut f3 = frame(1);
    f3[5] = 0x33;
    p1.inject(&f1);
    entered_rx.recv_timeout(WAIT).unwrap();
    p1.inject(&f2);
    p1.inject(&f3);
    eventually("three misses", || stats(&dp).upcalls == 3);
    assert_eq!(stats(&dp).lost_upcalls, 1);
    go_tx.send(()).unwrap();
    go_tx.send(()).unwrap();
    assert_eq!(p2.recv_sent(WAIT).unwrap().data, f1);
    assert_eq!(p2.recv_sent(WAIT).unwrap().data, f2);
    assert_eq!(h.calls(), 2);
}

#[test]
fn check_pkt_len_runs_the_branch_for_the_frame_length_then_what_follows() {
    let len = frame(1).len() as u16;
    for (size, want) in [
        (len - 1, [0x02, 0xa, 0, 0, 0, 1]),
        (len, [0x02, 0xb, 0, 0, 0, 1]),
    ] {
        let h = TestHandler::new(actions_then_output(
            vec![
                DpAction::CheckPktLen { size, gt: 1, le: 1 },
                DpAction::SetEthDst([0x02, 0xa, 0, 0, 0, 1]),
                DpAction::SetEthDst([0x02, 0xb, 0, 0, 0, 1]),
            ],
            2,
        ));
        let r = rig(h);
        r.p1.inject(&frame(1));
        let out = r.p2.recv_sent(WAIT).unwrap().data;
        assert_eq!(&out[0..6], &want, "size {size}, frame {len}");
    }
}

#[test]
fn samples_reach_the_queue_only_once_an_exporter_asked_for_it() {
    let sample = DpAction::Sample {
        probability: u32::MAX,
        exporter: 7,
        obs_domain: 1,
        obs_point: 2,
        flow_sample: true,
    };
    let h = TestHandler::new(move |_: &FlowKey| UpcallResult {
        actions: vec![sample, DpAction::Output(2)],
        mask: FlowKey {
            dl_dst: [0xff; 6],
            ..FlowKey::default()
        },
        install: true,
    });
    let r = rig(h);
    // No queue yet: the packet is forwarded, its sample goes nowhere.
    r.p1.inject(&frame(1));
    assert_eq!(r.p2.recv_sent(WAIT).unwrap().data, frame(1));
    let rx = r.dp.samples();
    assert!(rx.is_empty(), "nothing was queued before the queue existed");
    assert!(
        r.dp.samples().same_channel(&rx),
        "every caller gets the same queue"
    );
    r.p1.inject(&frame(2));
    assert_eq!(r.p2.recv_sent(WAIT).unwrap().data, frame(2));
    let s = rx.recv_timeout(WAIT).expect("a sample");
    assert_eq!((s.exporter, s.obs_domain, s.obs_point), (7, 1, 2));
    assert!(s.flow_sample);
    assert_eq!(s.len as usize, frame(2).len());
    assert_eq!(s.key.in_port, 1);
}

/// The frame of `frame(1)` from TCP source port `sport`: another exact key
/// of the same `dl_dst` megaflow.
fn frame_from_port(sport: u16) -> Vec<u8> {
    let mut f = frame(1);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f
}

#[test]
fn emc_insert_inv_prob_0_never_caches_a_megaflow_hit_in_the_emc() {
    let h = TestHandler::new(forward_by_dl_dst(2));
    let cfg = DpConfig {
        emc_insert_inv_prob: 0,
        ..DpConfig::default()
    };
    let r = rig_with(cfg, h);
    for _ in 0..50 {
        r.p1.inject(&frame(1));
        r.p2.recv_sent(WAIT).unwrap();
    }
    eventually("stats published", || stats(&r.dp).rx_packets == 50);
    let s = stats(&r.dp);
    assert_eq!((s.upcalls, s.megaflow_hits, s.emc_hits), (1, 49, 0));
}

#[test]
fn by_default_about_one_megaflow_hit_in_100_enters_the_emc() {
    // OVS's default emc-insert-inv-prob: 2,000 distinct keys of one
    // megaflow, each seen twice; the second sighting hits the EMC only when
    // the first was drawn for insertion.
    let h = TestHandler::new(forward_by_dl_dst(2));
    let r = rig(h.clone());
    r.p1.inject(&frame_from_port(1));
    r.p2.recv_sent(WAIT).unwrap();
    for _ in 0..2 {
        for sport in 2..2002u16 {
            r.p1.inject(&frame_from_port(sport));
        }
        for _ in 2..2002u16 {
            r.p2.recv_sent(WAIT).expect("forwarded");
        }
    }
    eventually("stats published", || stats(&r.dp).rx_packets == 4001);
    let s = stats(&r.dp);
    assert_eq!(h.calls(), 1);
    assert_eq!(s.megaflow_hits + s.emc_hits, 4000);
    // Binomial(2000, 1/100): 20 expected; outside 3..=60 has a probability
    // far below 1e-6 (and the generator is seeded, so a run repeats).
    assert!((3..=60).contains(&s.emc_hits), "emc hits {}", s.emc_hits);
}
