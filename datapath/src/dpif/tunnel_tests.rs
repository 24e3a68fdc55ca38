//! Native tunnelling through the datapath: `tnl_push` out of a port and
//! `tnl_pop` back in, with the inner frame re-entering on the tunnel port.

use std::net::IpAddr;
use std::sync::Mutex;

use flows::dpaction::TUNNEL_PROTO_VXLAN;
use wire::tunnel::{EncapHeader, EncapSpec, TunnelProto};

use super::tests::{TestHandler, WAIT, eventually, frame, rig};
use super::*;
use crate::offload::testframes::{tcp4, tcp4_valid};
use crate::packet::Offload;

/// The tunnel port inner frames re-enter on (no device behind it).
const TNL_PORT: DpPortNo = 7;

fn vxlan_header(vni: u64) -> EncapHeader {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    EncapHeader::build(&EncapSpec {
        proto: TunnelProto::Vxlan,
        eth_src: wire::MacAddr([2, 0, 0, 0, 9, 1]),
        eth_dst: wire::MacAddr([2, 0, 0, 0, 9, 2]),
        ip_src: ip("10.99.0.1"),
        ip_dst: ip("10.99.0.2"),
        ttl: 64,
        tos: 0,
        df: true,
        csum: false,
        key: Some(vni),
        dst_port: 4789,
        gbp: None,
        geneve_options: &[],
        oam: false,
        inner_protocol: 0x6558,
    })
    .unwrap()
}

/// Port 1 is a VM: its packets are pushed with header 0 out of port 2.
/// Port 2 is the underlay: its packets are popped onto `TNL_PORT`.
/// `TNL_PORT` packets go to port 1. Keys of the last are recorded.
fn tunnel_handler(seen: Arc<Mutex<Vec<FlowKey>>>) -> Arc<TestHandler> {
    TestHandler::new(move |k| {
        let actions = match k.in_port {
            1 => vec![DpAction::TnlPush {
                tnl_port: TNL_PORT,
                header: 0,
                out: 2,
            }],
            2 => vec![DpAction::TnlPop {
                port: TNL_PORT,
                proto: TUNNEL_PROTO_VXLAN,
                dst_port: 4789,
                tlv: flows::dpaction::NO_TLV_MAP,
            }],
            _ => {
                seen.lock().unwrap().push(*k);
                vec![DpAction::Output(1)]
            }
        };
        UpcallResult {
            actions,
            mask: FlowKey {
                tun_id: u64::MAX,
                tp_src: u16::MAX,
                ..FlowKey::default()
            },
            install: true,
        }
    })
}

#[test]
fn pushed_frames_leave_encapsulated_and_popped_ones_reenter_on_the_tunnel_port_with_metadata() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let r = rig(tunnel_handler(seen.clone()));
    assert_eq!(r.dp.tnl_headers().intern(&vxlan_header(0x1234)), Some(0));
    let h = vxlan_header(0x1234);

    let inner = frame(1);
    r.p1.inject(&inner);
    let out = r.p2.recv_sent(WAIT).unwrap().data;
    assert_eq!(out.len(), inner.len() + h.len());
    assert_eq!(&out[h.len()..], &inner[..]);
    assert_eq!(&out[..12], &h.as_bytes()[..12], "outer Ethernet");
    assert_eq!(u16::from_be_bytes([out[36], out[37]]), 4789);

    // The encapsulated frame, received on the underlay, comes back out of
    // port 1 as the inner frame, its key carrying the tunnel metadata.
    r.p2.inject(&out);
    let back = r.p1.recv_sent(WAIT).unwrap().data;
    assert_eq!(back, inner);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let k = seen[0];
        assert_eq!(k.in_port, TNL_PORT);
        assert_eq!(k.tun_id, 0x1234);
        assert_eq!(k.tun_src, u32::from_be_bytes([10, 99, 0, 1]));
        assert_eq!(k.tun_dst, u32::from_be_bytes([10, 99, 0, 2]));
        assert_eq!(k.tun_ttl, 64);
        assert_eq!(
            k.nw_src,
            u32::from_be_bytes([inner[26], inner[27], inner[28], inner[29]])
        );
    }

    // Garbage to the tunnel port is counted by reason and dropped; good
    // packets keep flowing.
    let mut bad_csum = out.clone();
    bad_csum[40..42].copy_from_slice(&[0x12, 0x34]);
    r.p2.inject(&bad_csum);
    let mut bad_flags = out.clone();
    bad_flags[42] = 0;
    r.p2.inject(&bad_flags);
    eventually("decap drops counted", || {
        let d = r.dp.tnl_counters().decap.snapshot();
        (d.bad_checksum, d.malformed) == (1, 1)
    });
    assert!(
        r.p1.recv_sent(std::time::Duration::from_millis(50))
            .is_none()
    );
    r.p2.inject(&out);
    assert_eq!(r.p1.recv_sent(WAIT).unwrap().data, inner);
}

#[test]
fn a_super_frame_is_segmented_then_each_segment_encapsulated() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let r = rig(tunnel_handler(seen));
    r.dp.tnl_headers().intern(&vxlan_header(5)).unwrap();
    let h = vxlan_header(5);
    let big = tcp4(&[0x5a; 3000], 1000, 0x18, 1);
    r.p1.inject_with(
        0,
        &big,
        Offload {
            gso_type: Offload::GSO_TCPV4,
            gso_size: 1000,
            ..Offload::default()
        },
    );
    let mut payload = 0;
    for _ in 0..3 {
        let seg = r.p2.recv_sent(WAIT).expect("a segment").data;
        assert!(seg.len() <= h.len() + 14 + 20 + 20 + 1000);
        assert!(tcp4_valid(&seg[h.len()..]), "inner checksums complete");
        payload += seg.len() - h.len() - 54;
    }
    assert_eq!(payload, 3000);
    assert!(
        r.p2.recv_sent(std::time::Duration::from_millis(50))
            .is_none()
    );
}

#[test]
fn header_table_interns_each_header_once_and_has_no_slot_for_unknown_indices() {
    let t = crate::tunnel::HeaderTable::default();
    assert_eq!(t.intern(&vxlan_header(1)), Some(0));
    assert_eq!(t.intern(&vxlan_header(2)), Some(1));
    assert_eq!(t.intern(&vxlan_header(1)), Some(0));
    assert_eq!(t.len(), 2);
    assert_eq!(t.get(1), Some(&vxlan_header(2)));
    assert!(t.get(2).is_none() && t.get(u32::MAX).is_none());
}
