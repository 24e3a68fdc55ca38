//! Recirculation and re-entry through the datapath.

use std::sync::Mutex;

use flows::dpaction::MAX_RECIRC_DEPTH;

use super::exec::Reentry;
use super::tests::{TestHandler, WAIT, eventually, frame, rig, stats};
use super::*;

/// First pass (recirc_id 0): rewrite dl_dst and recirculate with id 5.
/// Second pass (recirc_id 5): output to port 2. Every key the slow path
/// sees is recorded.
fn two_pass(seen: Arc<Mutex<Vec<FlowKey>>>) -> impl Fn(&FlowKey) -> UpcallResult + Send + Sync {
    move |k| {
        seen.lock().unwrap().push(*k);
        let actions = if k.recirc_id == 0 {
            vec![DpAction::SetEthDst([0xaa; 6]), DpAction::Recirc(5)]
        } else {
            vec![DpAction::Output(2)]
        };
        UpcallResult {
            actions,
            mask: FlowKey {
                dl_dst: [0xff; 6],
                ..FlowKey::default()
            },
            install: true,
        }
    }
}

#[test]
fn recirculated_packet_takes_a_second_pass_keyed_on_its_recirc_id_with_rewritten_headers() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let h = TestHandler::new(two_pass(seen.clone()));
    let r = rig(h.clone());
    r.p1.inject(&frame(1));
    let out = r.p2.recv_sent(WAIT).unwrap().data;
    assert_eq!(&out[..6], &[0xaa; 6], "the second pass sees the rewrite");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!((seen[0].recirc_id, seen[1].recirc_id), (0, 5));
        assert_eq!(
            seen[1].in_port, 1,
            "a recirculated packet keeps its in_port"
        );
        assert_eq!(seen[1].dl_dst, [0xaa; 6], "headers are parsed again");
    }
    let mut flows = r.dp.dump_flows();
    flows.sort_by_key(|f| f.m.key.recirc_id);
    assert_eq!(flows.len(), 2);
    for (f, id) in flows.iter().zip([0, 5]) {
        assert_eq!(f.m.key.recirc_id, id);
        assert_eq!(
            f.m.mask.recirc_id,
            u32::MAX,
            "megaflows match recirc_id exactly"
        );
    }

    // The next packet of the flow makes both passes in the caches.
    r.p1.inject(&frame(2));
    assert_eq!(&r.p2.recv_sent(WAIT).unwrap().data[..6], &[0xaa; 6]);
    assert_eq!(h.calls(), 2, "no new upcall for a cached two-pass flow");
    eventually("recirculations counted", || {
        stats(&r.dp).recirculations == 2
    });
    let s = stats(&r.dp);
    assert_eq!(s.rx_packets, 2);
    assert_eq!(s.recirc_drops, 0);
    assert!((s.passes_per_packet() - 2.0).abs() < 1e-9);
}

#[test]
fn a_recirculation_loop_stops_at_the_depth_limit_and_counts_a_drop() {
    let h = TestHandler::new(|_| UpcallResult {
        actions: vec![DpAction::Recirc(1)],
        mask: FlowKey::default(),
        install: true,
    });
    let r = rig(h.clone());
    r.p1.inject(&frame(1));
    eventually("the looping packet is dropped", || {
        stats(&r.dp).recirc_drops == 1
    });
    let s = stats(&r.dp);
    assert_eq!(s.recirculations, u64::from(MAX_RECIRC_DEPTH));
    // Once cached, the whole loop runs in one poll iteration.
    r.p1.inject(&frame(2));
    eventually("the second looping packet is dropped", || {
        stats(&r.dp).recirc_drops == 2
    });
    assert_eq!(stats(&r.dp).recirculations, 2 * u64::from(MAX_RECIRC_DEPTH));
    assert_eq!(h.calls(), 2, "one upcall per pass key: recirc_id 0 and 1");
    assert!(
        r.p2.recv_sent(std::time::Duration::from_millis(50))
            .is_none()
    );
}

#[test]
fn reentry_takes_the_metadata_port_and_refuses_past_the_depth_limit_or_when_full() {
    let mut q = Reentry::default();
    let mut pkt = Packet::from_bytes(&frame(1));
    pkt.in_port = 1;
    let meta = FlowKey {
        in_port: 9,
        recirc_id: 0,
        tun_id: 77,
        ..FlowKey::default()
    };
    assert!(q.push(&pkt, &meta));
    let p = &q.buf.batch.packets()[0];
    assert_eq!((p.in_port, p.recirc_depth), (9, 1));
    assert_eq!(p.data(), &frame(1)[..]);
    assert_eq!(q.buf.metas[0].tun_id, 77);

    pkt.recirc_depth = MAX_RECIRC_DEPTH;
    assert!(!q.push(&pkt, &meta));
    assert_eq!(q.drops, 1);

    pkt.recirc_depth = 0;
    while !q.is_full() {
        assert!(q.push(&pkt, &meta));
    }
    assert!(!q.push(&pkt, &meta));
    assert_eq!(q.drops, 2);
}

#[test]
fn ct_then_recirc_gives_the_second_pass_the_connection_state_and_caches_both_passes() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let h = TestHandler::new(move |k: &FlowKey| {
        s2.lock().unwrap().push(*k);
        let actions = if k.recirc_id == 0 {
            // ct(commit,zone=4,table=...) as translation emits it; id 0 is
            // the first action the test interns.
            vec![DpAction::Ct(0), DpAction::Recirc(3)]
        } else {
            vec![DpAction::Output(2)]
        };
        UpcallResult {
            actions,
            // The second pass depends on ct_state, as a firewall table does.
            mask: FlowKey {
                ct_state: 0xff,
                ..FlowKey::default()
            },
            install: true,
        }
    });
    let r = rig(h.clone());
    let ct = crate::ct::ct_of("ct(commit,zone=4)");
    assert_eq!(r.dp.conntrack().intern(&ct, 4).unwrap(), 0);

    let syn = crate::offload::testframes::tcp4(&[], 1, 0x02, 1);
    r.p1.inject(&syn);
    r.p2.recv_sent(WAIT).unwrap();
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].ct_state, 0, "untracked before ct");
        assert_eq!(seen[1].recirc_id, 3);
        assert_eq!(seen[1].ct_state, 0x21, "+trk+new after ct");
        assert_eq!(seen[1].ct_zone, 4);
        assert_eq!(seen[1].ct_nw_proto, 6);
    }
    assert_eq!(r.dp.conntrack().tracker().nconns(), 1);
    let dump = r.dp.conntrack().tracker().dump(Some(4));
    assert_eq!(dump.len(), 1);
    assert_eq!(dump[0].zone, 4);

    // A second SYN: both passes are served from the caches.
    r.p1.inject(&syn);
    r.p2.recv_sent(WAIT).unwrap();
    let first_passes = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|k| k.recirc_id == 0)
        .count();
    assert_eq!(
        first_passes, 1,
        "the first pass of the second SYN was cached"
    );
}
