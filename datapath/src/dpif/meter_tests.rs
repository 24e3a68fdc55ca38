//! Meters and policers in the PMD path, with in-memory ports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flows::{DpAction, FlowKey};

use super::*;
use crate::dummy::DummyPort;
use crate::meter::{LimiterBand, LimiterConfig};

/// Only a hang reaches it, even on a loaded machine.
const WAIT: Duration = Duration::from_secs(30);

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

/// Waits until every one of `n` packets offered to meter `id` has either
/// left through `out` or been dropped by the meter's band, and returns how
/// many left. The deadline only detects a hang.
fn wait_sent_or_dropped(dp: &Datapath, id: u32, out: &DummyPort, n: u64) -> u64 {
    let mut sent = 0u64;
    let t = Instant::now();
    loop {
        sent += out.take_sent().len() as u64;
        let dropped = dp.meters().stats(id).bands[0].0;
        if sent + dropped >= n {
            return sent;
        }
        assert!(
            t.elapsed() < WAIT,
            "{sent} of {n} packets sent and {dropped} dropped"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn meter_action_passes_the_bucket_and_drops_the_rest_of_the_list() {
    let (dp, id, p1, p2) = rig(|id| vec![DpAction::Meter(id), DpAction::Output(2)]);
    dp.meters().set(id, &packets(5), true);
    for i in 0..20 {
        p1.inject(&frame(i));
    }
    // Every packet either leaves through port 2 or is dropped by the band.
    let sent = wait_sent_or_dropped(&dp, id, &p2, 20);
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
    let sent = wait_sent_or_dropped(&dp, id, &p2, 10);
    assert!((3..=4).contains(&sent), "{sent}");
    // The PMD counts the port's rx drops right after the band's.
    let t = Instant::now();
    while dp.port_stats(1).unwrap().rx_dropped < 10 - sent {
        assert!(t.elapsed() < WAIT, "policer drops not counted on the port");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(dp.port_stats(1).unwrap().rx_dropped, 10 - sent);
    // Policing off: everything passes.
    dp.set_port_policing(1, None, None);
    for i in 0..10 {
        p1.inject(&frame(i));
    }
    let mut passed = 0;
    let t = Instant::now();
    while passed < 10 {
        assert!(t.elapsed() < WAIT, "{passed} of 10 unpoliced packets sent");
        passed += p2.take_sent().len();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(passed, 10);
    assert_eq!(
        dp.meters().stats(id).bands[0].0,
        10 - sent,
        "the meter was left alone"
    );
}

#[test]
fn egress_policer_limits_what_a_port_sends() {
    let (dp, id, p1, p2) = rig(|_| vec![DpAction::Output(2)]);
    dp.meters().set(id, &packets(4), true);
    dp.set_port_policing(2, None, Some(id));
    for i in 0..12 {
        p1.inject(&frame(i));
    }
    let sent = wait_sent_or_dropped(&dp, id, &p2, 12);
    assert!((4..=5).contains(&sent), "{sent}");
}
