//! NXT_CT_FLUSH as stock OVS 3.1's `ovs-ofctl ct-flush` sends it: the
//! bytes below were captured from `ovs-ofctl -O OpenFlow13 ct-flush` on
//! this machine; they decode to the tuple given on its command line and
//! encode back to the same bytes.

use openflow::codec::{decode, encode};
use openflow::message::Message;
use openflow::msg::ct_flush::{CtFlush, CtFlushTuple};
use openflow::msg::nicira::NxMsg;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn mapped(a: [u8; 4]) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[10] = 0xff;
    b[11] = 0xff;
    b[12..].copy_from_slice(&a);
    b
}

/// `ct-flush br 'ct_nw_src=10.0.0.1,ct_nw_dst=10.0.0.2,ct_nw_proto=17,ct_tp_src=1000,ct_tp_dst=53'`
const FIVE_TUPLE: &str = "04040060000000020000232000000020110000000000000000000048000000000000001400000000000000000000ffff0a000001000000000001001400000000000000000000ffff0a000002000000000002000803e800000003000800350000";
/// `ct-flush br zone=5 'ct_nw_proto=1,ct_nw_src=10.0.0.1,icmp_id=42,icmp_type=8' 'ct_nw_dst=10.0.0.1'`
const ICMP_ZONE: &str = "04040090000000020000232000000020010000000000000000000038000000000000001400000000000000000000ffff0a0000010000000000040008002a00000005000508000000000600050000000000010038000000000001001400000000000000000000ffff0a000001000000000004000800000000000500050000000000060005000000000002000800050000";
/// `ct-flush br zone=7`
const ZONE_ONLY: &str = "0404002000000002000023200000002000000000000000000002000800070000";

fn check(hex: &str, want: CtFlush) {
    let bytes = unhex(hex);
    let (_, msg) = decode(&bytes).unwrap();
    assert_eq!(msg, Message::Nicira(NxMsg::CtFlush(want)));
    assert_eq!(encode(&msg, 4, 2).unwrap(), bytes);
}

#[test]
fn ovs_ofctl_ct_flush_of_a_five_tuple_decodes_and_encodes_byte_for_byte() {
    check(
        FIVE_TUPLE,
        CtFlush {
            ip_proto: 17,
            orig: CtFlushTuple {
                src: mapped([10, 0, 0, 1]),
                dst: mapped([10, 0, 0, 2]),
                src_port: 1000,
                dst_port: 53,
                ..CtFlushTuple::default()
            },
            reply: CtFlushTuple::default(),
            zone: None,
        },
    );
}

#[test]
fn ovs_ofctl_ct_flush_of_icmp_tuples_in_a_zone_decodes_and_encodes_byte_for_byte() {
    check(
        ICMP_ZONE,
        CtFlush {
            ip_proto: 1,
            orig: CtFlushTuple {
                src: mapped([10, 0, 0, 1]),
                icmp_id: 42,
                icmp_type: 8,
                ..CtFlushTuple::default()
            },
            reply: CtFlushTuple {
                dst: mapped([10, 0, 0, 1]),
                ..CtFlushTuple::default()
            },
            zone: Some(5),
        },
    );
}

#[test]
fn ovs_ofctl_ct_flush_of_a_zone_alone_decodes_and_encodes_byte_for_byte() {
    check(
        ZONE_ONLY,
        CtFlush {
            zone: Some(7),
            ..CtFlush::default()
        },
    );
}

#[test]
fn a_ct_flush_with_nonzero_padding_is_refused() {
    let mut bytes = unhex(ZONE_ONLY);
    bytes[17] = 1;
    assert!(decode(&bytes).is_err());
}

#[test]
fn stock_ovs_ofctl_prints_our_encoding_of_an_ipv6_flush_with_its_tuples() {
    if std::process::Command::new("ovs-ofctl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("ovs-ofctl not installed; skipping");
        return;
    }
    let v6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
    let msg = Message::Nicira(NxMsg::CtFlush(CtFlush {
        ip_proto: 6,
        orig: CtFlushTuple {
            src: v6("fc00::1"),
            dst_port: 80,
            ..CtFlushTuple::default()
        },
        reply: CtFlushTuple {
            src: v6("fc00::2"),
            ..CtFlushTuple::default()
        },
        zone: Some(3),
    }));
    let bytes = encode(&msg, 4, 9).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let out = std::process::Command::new("ovs-ofctl")
        .args(["ofp-print", &hex])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        "NXT_CT_FLUSH (OF1.3) (xid=0x9): zone=3 \
         'ct_ipv6_src=fc00::1,ct_ipv6_dst=::,ct_tp_src=0,ct_tp_dst=80,ct_nw_proto=6' \
         'ct_ipv6_src=fc00::2,ct_ipv6_dst=::,ct_tp_src=0,ct_tp_dst=0'"
    );
}
