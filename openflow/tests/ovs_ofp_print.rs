//! Stock OVS as the oracle for the wire bytes of every 1.4/1.5 layout and
//! of the Nicira and bundle messages: each message is encoded by this
//! crate, and `ovs-ofctl ofp-print` must decode it to the text Open
//! vSwitch prints for the same message (no decode error, same fields).

use std::process::Command;

use flows::text::{parse_actions, parse_match};
use flows::tlv::{TlvCommand, TlvMapping};
use flows::{Action, Match};
use openflow::consts::{NO_BUFFER, OFP13_VERSION, OFP14_VERSION, OFP15_VERSION};
use openflow::msg::nicira::{NxMsg, PacketIn2};
use openflow::msg::tlv::{TlvTableMod, TlvTableReply};
use openflow::*;

fn have_ovs_ofctl() -> bool {
    Command::new("ovs-ofctl").arg("--version").output().is_ok()
}

fn m(s: &str) -> Match {
    parse_match(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn acts(s: &str) -> Vec<Action> {
    parse_actions(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What `ovs-ofctl ofp-print` says about `msg` encoded in `version`.
fn ofp_print(msg: &Message, version: u8) -> String {
    let b = encode(msg, version, 0x11).unwrap_or_else(|e| panic!("{}: {e}", msg.name()));
    let out = Command::new("ovs-ofctl")
        .args(["ofp-print", &hex(&b)])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // Whatever OVS decodes must also decode here to the same message.
    assert_eq!(decode(&b).unwrap().1, *msg, "{}", msg.name());
    text
}

/// Asserts OVS decoded `msg` without complaint and printed each of `want`.
fn check(msg: &Message, version: u8, want: &[&str]) {
    let text = ofp_print(msg, version);
    for bad in ["decode error", "WARN", "only uses", "***"] {
        assert!(!text.contains(bad), "{} v{version}: {text}", msg.name());
    }
    for w in want {
        assert!(
            text.contains(w),
            "{} v{version}: want {w:?} in\n{text}",
            msg.name()
        );
    }
}

fn port(n: u32) -> PortDesc {
    PortDesc {
        port_no: n,
        hw_addr: [2, 0, 0, 0, 0, n as u8],
        name: format!("p{n}"),
        config: 1,
        state: 4,
        curr: 0x820,
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: 10_000_000,
        max_speed: 0,
    }
}

fn flow_mod_msg() -> FlowModMsg {
    let mut fm = FlowMod::new(FlowModCommand::Add);
    fm.table_id = 3;
    fm.priority = 100;
    fm.m = m("ip,nw_dst=10.0.0.0/8,reg3=7");
    fm.actions = acts("set_field:5->reg5,output:2");
    fm.cookie = 0xabc;
    let mut fmm = FlowModMsg::new(fm);
    fmm.importance = 9;
    fmm
}

fn packet_in() -> PacketIn {
    PacketIn {
        buffer_id: NO_BUFFER,
        total_len: 60,
        reason: packet_in_reason::ACTION,
        table_id: 4,
        cookie: 0x77,
        match_: m("in_port=3,reg2=0x10"),
        data: vec![0xff; 60],
    }
}

fn flow_stats() -> FlowStats {
    FlowStats {
        tun_metadata: Vec::new(),
        table_id: 2,
        duration_sec: 5,
        duration_nsec: 500_000_000,
        priority: 10,
        idle_timeout: 0,
        hard_timeout: 30,
        flags: 0,
        cookie: 0x5,
        packet_count: 7,
        byte_count: 700,
        match_: m("tcp,tp_dst=80"),
        actions: acts("output:3"),
    }
}

fn group() -> Group {
    let mut b1 = Bucket::new(acts("output:1"));
    b1.weight = 5;
    let mut b2 = Bucket::new(acts("output:2"));
    b2.weight = 3;
    b2.watch_port = 2;
    Group {
        id: 7,
        kind: GroupType::Select,
        buckets: vec![b1, b2],
        selection: Default::default(),
    }
}

/// A select group with Open vSwitch's selection-method property, as
/// stock `ovs-ofctl add-group` writes it for
/// `selection_method=hash,fields(ip_src,nw_proto,eth_dst=ff:ff:ff:00:00:00),selection_method_param=5`.
fn hashed_group() -> Group {
    flows::text::parse_group(
        "group_id=9,type=select,selection_method=hash,fields(ip_src,nw_proto,eth_dst=ff:ff:ff:00:00:00),selection_method_param=5,bucket=actions=output:2",
    )
    .unwrap()
}

/// (message, versions, what OVS prints for it).
fn cases() -> Vec<(Message, Vec<u8>, Vec<&'static str>)> {
    let v1345 = vec![OFP13_VERSION, OFP14_VERSION, OFP15_VERSION];
    let v45 = vec![OFP14_VERSION, OFP15_VERSION];
    let reply = |body| Message::MultipartReply(MultipartReply { flags: 0, body });
    vec![
        (
            Message::FeaturesReply(Features {
                datapath_id: 0x1234,
                n_buffers: 0,
                n_tables: 254,
                auxiliary_id: 0,
                capabilities: 0xf,
                actions: 0,
                ports: vec![],
            }),
            v45.clone(),
            vec!["dpid:0000000000001234", "n_tables:254"],
        ),
        (
            Message::FlowMod(flow_mod_msg()),
            v45.clone(),
            vec![
                "ADD table:3 priority=100,ip,reg3=0x7,nw_dst=10.0.0.0/8 cookie:0xabc importance:9 actions=set_field:0x5->reg5,output:2",
            ],
        ),
        (
            Message::PacketOut(PacketOut {
                buffer_id: NO_BUFFER,
                in_port: 3,
                metadata: m("reg4=5,metadata=0x9"),
                actions: acts("output:1"),
                data: vec![0xff; 60],
            }),
            vec![OFP15_VERSION],
            vec!["reg4=0x5,metadata=0x9,in_port=3 actions=output:1 data_len=60"],
        ),
        (
            Message::PacketIn(packet_in()),
            v45.clone(),
            vec!["cookie=0x77 total_len=60 reg2=0x10,in_port=3 (via action) data_len=60"],
        ),
        (
            Message::PortStatus(PortStatus {
                reason: 2,
                desc: port(5),
            }),
            v45.clone(),
            vec![
                "MOD: 5(p5): addr:02:00:00:00:00:05",
                "config:     PORT_DOWN",
                "state:      LIVE",
                "current:    1GB-FD COPPER",
                "speed: 10000 Mbps now",
            ],
        ),
        (
            Message::FlowRemoved(FlowRemoved {
                cookie: 0x9,
                priority: 3,
                reason: 0,
                table_id: 6,
                duration_sec: 4,
                duration_nsec: 0,
                idle_timeout: 10,
                hard_timeout: 0,
                packet_count: 2,
                byte_count: 128,
                match_: m("udp"),
            }),
            v1345.clone(),
            vec![
                "priority=3,udp reason=idle table_id=6 cookie:0x9 duration4s idle10 pkts2 bytes128",
            ],
        ),
        (
            Message::PortMod(PortMod {
                port_no: 5,
                hw_addr: [2, 0, 0, 0, 0, 5],
                config: 1,
                mask: 1,
                advertise: 0x20,
            }),
            v45.clone(),
            vec![
                "port: 5: addr:02:00:00:00:00:05",
                "config: PORT_DOWN",
                "mask:   PORT_DOWN",
                "advertise: 1GB-FD",
            ],
        ),
        (
            Message::MultipartRequest(MultipartRequest {
                flags: 0,
                body: MultipartRequestBody::Flow(FlowStatsRequest {
                    table_id: 2,
                    match_: m("tcp"),
                    ..FlowStatsRequest::default()
                }),
            }),
            v45.clone(),
            vec!["table=2 tcp"],
        ),
        (
            reply(MultipartReplyBody::Flow(vec![flow_stats()])),
            v1345.clone(),
            vec![
                "cookie=0x5, duration=5.500s, table=2, n_packets=7, n_bytes=700, hard_timeout=30, priority=10,tcp,tp_dst=80 actions=output:3",
            ],
        ),
        (
            reply(MultipartReplyBody::Aggregate(AggregateStats {
                packet_count: 4,
                byte_count: 400,
                flow_count: 2,
            })),
            v1345.clone(),
            vec!["packet_count=4 byte_count=400 flow_count=2"],
        ),
        (
            reply(MultipartReplyBody::PortStats(vec![PortStats {
                port_no: 5,
                rx_packets: 10,
                tx_packets: 20,
                rx_crc_err: 3,
                duration_sec: 2,
                ..PortStats::default()
            }])),
            v45.clone(),
            vec!["port  5: rx pkts=10", "crc=3", "tx pkts=20", "duration=2s"],
        ),
        (
            reply(MultipartReplyBody::PortDesc(vec![port(1), port(2)])),
            v45.clone(),
            vec![
                " 1(p1): addr:02:00:00:00:00:01",
                " 2(p2): addr:02:00:00:00:00:02",
                "speed: 10000 Mbps now",
            ],
        ),
        (
            Message::GroupMod(GroupMod {
                command: GroupModCommand::Add,
                group: group(),
            }),
            v1345.clone(),
            vec![
                "group_id=7,type=select",
                "weight:5,actions=output:1",
                "weight:3,watch_port:2,actions=output:2",
            ],
        ),
        (
            Message::GroupMod(GroupMod {
                command: GroupModCommand::Add,
                group: hashed_group(),
            }),
            vec![OFP15_VERSION],
            vec![
                "group_id=9,type=select,selection_method=hash,selection_method_param=5,fields(eth_dst=ff:ff:ff:00:00:00,ip_src,nw_proto)",
            ],
        ),
        (
            reply(MultipartReplyBody::GroupDesc(vec![hashed_group()])),
            vec![OFP15_VERSION],
            vec![
                "selection_method=hash,selection_method_param=5,fields(eth_dst=ff:ff:ff:00:00:00,ip_src,nw_proto)",
            ],
        ),
        (
            reply(MultipartReplyBody::GroupDesc(vec![group()])),
            v1345.clone(),
            vec![
                "group_id=7,type=select",
                "weight:5,actions=output:1",
                "weight:3,watch_port:2,actions=output:2",
            ],
        ),
        (
            Message::GetAsyncReply(AsyncConfig::default()),
            v1345.clone(),
            vec![
                "primary:",
                "PACKET_IN: no_match action invalid_ttl",
                "FLOW_REMOVED: idle hard delete group_delete",
            ],
        ),
        (
            Message::RoleReply(RoleMsg {
                role: role::MASTER,
                generation_id: 3,
            }),
            v1345.clone(),
            vec!["role=primary generation_id=3"],
        ),
        (
            Message::BundleControl(BundleCtrl {
                bundle_id: 9,
                ctrl_type: bundle_ctrl::COMMIT_REPLY,
                flags: bundle_ctrl::ATOMIC | bundle_ctrl::ORDERED,
            }),
            v1345.clone(),
            vec!["bundle_id=0x9 type=COMMIT_REPLY flags=atomic ordered"],
        ),
        (
            Message::BundleAddMessage(BundleAdd {
                bundle_id: 9,
                flags: bundle_ctrl::ATOMIC,
                message: encode(&Message::FlowMod(flow_mod_msg()), OFP14_VERSION, 0x11).unwrap(),
            }),
            vec![OFP14_VERSION],
            vec![
                "bundle_id=0x9 flags=atomic",
                "OFPT_FLOW_MOD (OF1.4) (xid=0x11): ADD table:3 priority=100",
            ],
        ),
        (
            Message::BundleAddMessage(BundleAdd {
                bundle_id: 9,
                flags: bundle_ctrl::ATOMIC,
                message: encode(&Message::FlowMod(flow_mod_msg()), OFP13_VERSION, 0x11).unwrap(),
            }),
            vec![OFP13_VERSION],
            vec![
                "ONFT_BUNDLE_ADD_MESSAGE",
                "bundle_id=0x9 flags=atomic",
                "OFPT_FLOW_MOD (OF1.3) (xid=0x11): ADD table:3 priority=100",
            ],
        ),
        (
            Message::Error(ErrorMsg::for_request(
                OfError::BundleMsgFailed,
                OFP13_VERSION,
                &[4, 20, 0, 8, 0, 0, 0, 1],
            )),
            vec![OFP13_VERSION],
            vec!["OFPBFC_MSG_FAILED"],
        ),
        (
            Message::Error(ErrorMsg::for_request(
                OfError::BundleMsgFailed,
                OFP15_VERSION,
                &[6, 2, 0, 8, 0, 0, 0, 1],
            )),
            vec![OFP15_VERSION],
            vec!["OFPBFC_MSG_FAILED"],
        ),
        (
            Message::Error(ErrorMsg::for_request(
                OfError::ResumeNotSupported,
                OFP15_VERSION,
                &[6, 2, 0, 8, 0, 0, 0, 1],
            )),
            vec![OFP15_VERSION],
            vec!["NXR_NOT_SUPPORTED"],
        ),
        (
            Message::Nicira(NxMsg::SetPacketInFormat(2)),
            v1345.clone(),
            vec!["NXT_SET_PACKET_IN_FORMAT", "format=nxt_packet_in2"],
        ),
        (
            Message::Nicira(NxMsg::SetControllerId(12)),
            v1345.clone(),
            vec!["NXT_SET_CONTROLLER_ID", "id=12"],
        ),
        (
            Message::Nicira(NxMsg::CtFlushZone(5)),
            v1345.clone(),
            vec!["NXT_CT_FLUSH_ZONE", "zone_id=5"],
        ),
        (
            Message::Nicira(NxMsg::SetAsyncConfig(AsyncConfig::default())),
            v1345.clone(),
            vec![
                "NXT_SET_ASYNC_CONFIG",
                "PACKET_IN: no_match action invalid_ttl",
            ],
        ),
        (
            Message::Nicira(NxMsg::PacketIn2(PacketIn2 {
                packet_in: packet_in(),
                userdata: Some(vec![1, 2, 3, 4, 5]),
                continuation: None,
            })),
            v1345.clone(),
            vec![
                "NXT_PACKET_IN2",
                "cookie=0x77 total_len=60 reg2=0x10,in_port=3 (via action) data_len=60",
                "userdata=01.02.03.04.05",
            ],
        ),
        (
            // A paused pipeline (controller(pause)): the continuation's
            // properties as OVS reads them.
            Message::Nicira(NxMsg::PacketIn2(PacketIn2 {
                packet_in: packet_in(),
                userdata: Some(vec![0, 0, 0, 5]),
                continuation: Some(
                    openflow::msg::nicira::continuation::encode(&flows::xlate::Continuation {
                        table_id: 21,
                        cookie: 0x1234,
                        actions: acts("set_field:0x1->reg10,resubmit(,22)"),
                    })
                    .unwrap(),
                ),
            })),
            vec![OFP15_VERSION],
            vec![
                "NXT_PACKET_IN2",
                "userdata=00.00.00.05",
                "continuation.actions=unroll_xlate(table=21, cookie=4660),set_field:0x1->reg10,resubmit(,22)",
            ],
        ),
        (
            Message::Nicira(NxMsg::TlvTableMod(TlvTableMod {
                command: TlvCommand::Add,
                mappings: vec![tlv(0x102, 0x80, 4, 0), tlv(0xffff, 0x1, 124, 63)],
            })),
            v1345.clone(),
            vec![
                "NXT_TLV_TABLE_MOD",
                " ADD mapping table:",
                "  0x102  0x80       4  tun_metadata0",
                " 0xffff   0x1     124  tun_metadata63",
            ],
        ),
        (
            Message::Nicira(NxMsg::TlvTableMod(TlvTableMod {
                command: TlvCommand::Delete,
                mappings: vec![tlv(0x102, 0x80, 4, 7)],
            })),
            v1345.clone(),
            vec![
                " DEL mapping table:",
                "  0x102  0x80       4  tun_metadata7",
            ],
        ),
        (
            Message::Nicira(NxMsg::TlvTableMod(TlvTableMod {
                command: TlvCommand::Clear,
                mappings: vec![],
            })),
            v1345.clone(),
            vec!["NXT_TLV_TABLE_MOD", " CLEAR"],
        ),
        (
            Message::Nicira(NxMsg::TlvTableRequest),
            v1345.clone(),
            vec!["NXT_TLV_TABLE_REQUEST"],
        ),
        (
            Message::Nicira(NxMsg::TlvTableReply(TlvTableReply {
                max_option_space: 256,
                max_fields: 64,
                mappings: vec![tlv(0x102, 0x80, 4, 0), tlv(1, 1, 8, 63)],
            })),
            v1345.clone(),
            vec![
                "NXT_TLV_TABLE_REPLY",
                " max option space=256 max fields=64",
                " allocated option space=12",
                "    0x1   0x1       8  tun_metadata63",
            ],
        ),
        (
            Message::Error(ErrorMsg::for_request(
                OfError::TlvDupEntry,
                OFP15_VERSION,
                &[6, 4, 0, 16, 0, 0, 0, 1, 0, 0, 0x23, 0x20, 0, 0, 0, 25],
            )),
            vec![OFP15_VERSION],
            vec!["NXTTMFC_DUP_ENTRY"],
        ),
        (
            Message::Error(ErrorMsg::for_request(
                OfError::TlvTableFull,
                OFP13_VERSION,
                &[4, 4, 0, 16, 0, 0, 0, 1, 0, 0, 0x23, 0x20, 0, 0, 0, 25],
            )),
            vec![OFP13_VERSION],
            vec!["NXTTMFC_TABLE_FULL"],
        ),
    ]
}

fn tlv(class: u16, type_: u8, len: u8, index: u16) -> TlvMapping {
    TlvMapping {
        class,
        type_,
        len,
        index,
    }
}

#[test]
fn ovs_ofctl_decodes_every_1_4_1_5_nicira_and_bundle_layout_as_ovs_prints_it() {
    if !have_ovs_ofctl() {
        eprintln!("ovs-ofctl not installed; skipping");
        return;
    }
    for (msg, versions, want) in cases() {
        for v in versions {
            check(&msg, v, &want);
        }
    }
}
