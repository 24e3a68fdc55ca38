//! Meters and policers in the PMD path, with in-memory ports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flows::{DpAction, FlowKey};

use super::*;
use crate::dummy::DummyPort;
use crate::meter::{LimiterBand, LimiterConfig};

const WAIT: Duration = Duration::from_secs(5);

struct Fixed(Vec<DpAction>);

impl UpcallHandler for Fixed {
    fn upcall(&self, _key: &FlowKey, _packet: &Packet) -> UpcallResult {
        UpcallResult {
            actions: self.0.clone(),
            mask: FlowKey::default(),
            install: true,
        }
    }
    fn userspace(&self, _: &DpAction, _: &FlowKey, _: &Packet) {}
}

fn frame(i: u8) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, i]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

/// A packet meter of 1/s with a bucket of `burst` packets: within the
/// test's few milliseconds, exactly `burst` packets fit (one more if a
/// second passes).
fn packets(burst: u64) -> LimiterConfig {
    LimiterConfig {
        pktps: true,
        bands: vec![LimiterBand { rate: 1, burst }],
    }
}

fn rig(
    actions: impl FnOnce(u32) -> Vec<DpAction>,
) -> (Datapath, u32, Arc<DummyPort>, Arc<DummyPort>) {
    // The handler's actions are fixed before the meter is allocated: a
    // fresh datapath's first meter is id 0.
    let dp = Datapath::new(DpConfig::default(), Arc::new(Fixed(actions(0)))).unwrap();
    let id = dp.meters().alloc().unwrap();
    assert_eq!(id, 0);
    let p1 = DummyPort::new("mtr-p1");
    let p2 = DummyPort::new("mtr-p2");
    dp.add_port(1, p1.clone()).unwrap();
    dp.add_port(2, p2.clone()).unwrap();
    (dp, id, p1, p2)
}

fn wait_rx(dp: &Datapath, n: u64) {
    let t = Instant::now();
    while dp.pmd_stats()[0].rx_packets < n {
        assert!(t.elapsed() < WAIT, "PMD did not receive {n} packets");
        std::thread::sleep(Duration::from_millis(2));
    }
    // Let the batch finish executing.
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn meter_action_passes_the_bucket_and_drops_the_rest_of_the_list() {
    let (dp, id, p1, p2) = rig(|id| vec![DpAction::Meter(id), DpAction::Output(2)]);
    dp.meters().set(id, &packets(5), true);
    for i in 0..20 {
        p1.inject(&frame(i));
    }
    wait_rx(&dp, 20);
    // Every packet either leaves through port 2 or is dropped by the band:
    // wait until all 20 are accounted for, however slow the machine.
    let mut sent = 0u64;
    let t = Instant::now();
    while sent + dp.meters().stats(id).bands[0].0 < 20 {
        assert!(
            t.elapsed() < WAIT,
            "{sent} packets sent, the rest not dropped"
        );
        sent += p2.take_sent().len() as u64;
        std::thread::sleep(Duration::from_millis(2));
    }
    sent += p2.take_sent().len() as u64;
    assert!(
        (5..=6).contains(&sent),
        "{sent} packets passed a 5-packet bucket"
    );
    let st = dp.meters().stats(id);
    assert_eq!(st.packets_in, 20);
    assert_eq!(st.bands[0].0, 20 - sent);
}

#[test]
fn ingress_policer_drops_before_the_caches_and_counts_rx_drops() {
    let (dp, id, p1, p2) = rig(|_| vec![DpAction::Output(2)]);
    dp.meters().set(id, &packets(3), true);
    dp.set_port_policing(1, Some(id), None);
    for i in 0..10 {
        p1.inject(&frame(i));
    }
    wait_rx(&dp, 10);
    let sent = p2.take_sent().len() as u64;
    assert!((3..=4).contains(&sent), "{sent}");
    assert_eq!(dp.port_stats(1).unwrap().rx_dropped, 10 - sent);
    // Policing off: everything passes.
    dp.set_port_policing(1, None, None);
    for i in 0..10 {
        p1.inject(&frame(i));
    }
    wait_rx(&dp, 20);
    assert_eq!(p2.take_sent().len(), 10);
}

#[test]
fn egress_policer_limits_what_a_port_sends() {
    let (dp, id, p1, p2) = rig(|_| vec![DpAction::Output(2)]);
    dp.meters().set(id, &packets(4), true);
    dp.set_port_policing(2, None, Some(id));
    for i in 0..12 {
        p1.inject(&frame(i));
    }
    wait_rx(&dp, 12);
    let sent = p2.take_sent().len();
    assert!((4..=5).contains(&sent), "{sent}");
}
