//! Golden bytes per message family: a representative set of messages is
//! encoded in every version that can express it and compared, byte for
//! byte, with `tests/golden/<family>.hex`. Those files were produced by the
//! codec as it stood before it was reorganised per message, so any change
//! on the wire shows up here. `OPENFLOW_BLESS=1` rewrites them (only do
//! that for an intended wire change).

use flows::text::{parse_actions, parse_match};
use flows::{Action, Match};
use openflow::consts::{MP_MORE, NO_BUFFER, OFP10_VERSION, OFP13_VERSION, OFPG_ANY, OFPTT_ALL};
use openflow::*;

const VERSIONS: [u8; 2] = [OFP10_VERSION, OFP13_VERSION];

fn m(s: &str) -> Match {
    parse_match(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn acts(s: &str) -> Vec<Action> {
    parse_actions(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn port(n: u32) -> PortDesc {
    PortDesc {
        port_no: n,
        hw_addr: [2, 0, 0, 0, 0, n as u8],
        name: format!("p{n}"),
        config: 1,
        state: 4,
        curr: 0x20,
        advertised: 0x40,
        supported: 0x80,
        peer: 0x100,
        curr_speed: 10_000,
        max_speed: 20_000,
    }
}

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, x| {
        (h ^ u64::from(*x)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Encodes every message in every version that accepts it, one line each:
/// `name version hex` (or `name version refused` when the codec refuses).
fn render(msgs: &[(&str, Message)]) -> String {
    let mut out = String::new();
    for (name, msg) in msgs {
        for v in VERSIONS {
            let line = match encode(msg, v, 0x0102_0304) {
                Ok(b) => hex(&b),
                Err(_) => "refused".to_string(),
            };
            out.push_str(&format!("{name} {v} {line}\n"));
        }
    }
    out
}

fn check(family: &str, text: String) {
    let path = format!("{}/tests/golden/{family}.hex", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("OPENFLOW_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (got, want) in text.lines().zip(want.lines()) {
        assert_eq!(got, want, "{family}: wire bytes changed");
    }
    assert_eq!(text.lines().count(), want.lines().count(), "{family}");
}

#[test]
fn hello_echo_error_and_experimenter_bytes_are_unchanged() {
    check(
        "hello",
        render(&[
            ("hello_bitmap", Message::Hello { versions: 0x12 }),
            ("hello_plain", Message::Hello { versions: 0 }),
            (
                "error",
                Message::Error(ErrorMsg {
                    err_type: 1,
                    code: 5,
                    data: vec![1, 2, 3],
                }),
            ),
            ("echo_request", Message::EchoRequest(vec![9, 9])),
            ("echo_reply", Message::EchoReply(vec![])),
            (
                "experimenter",
                Message::Experimenter {
                    experimenter: 0x2320,
                    exp_type: 5,
                    data: vec![0, 0, 0, 5],
                },
            ),
            ("barrier_request", Message::BarrierRequest),
            ("barrier_reply", Message::BarrierReply),
        ]),
    );
}

#[test]
fn features_and_config_bytes_are_unchanged() {
    check(
        "features",
        render(&[
            ("features_request", Message::FeaturesRequest),
            (
                "features_reply",
                Message::FeaturesReply(Features {
                    datapath_id: 0xabcd,
                    n_buffers: 0,
                    n_tables: 254,
                    auxiliary_id: 0,
                    capabilities: 0x4f,
                    actions: 0xfff,
                    ports: vec![port(1), port(2)],
                }),
            ),
            ("get_config_request", Message::GetConfigRequest),
            (
                "get_config_reply",
                Message::GetConfigReply(SwitchConfig {
                    flags: 0,
                    miss_send_len: 128,
                }),
            ),
            (
                "set_config",
                Message::SetConfig(SwitchConfig {
                    flags: 1,
                    miss_send_len: 0xffff,
                }),
            ),
        ]),
    );
}

#[test]
fn packet_in_out_and_flow_removed_bytes_are_unchanged() {
    check(
        "packet_io",
        render(&[
            (
                "packet_in",
                Message::PacketIn(PacketIn {
                    buffer_id: NO_BUFFER,
                    total_len: 60,
                    reason: 1,
                    table_id: 3,
                    cookie: 0x99,
                    match_: m("in_port=7"),
                    data: vec![0xab; 60],
                }),
            ),
            (
                "packet_in_regs",
                Message::PacketIn(PacketIn {
                    buffer_id: NO_BUFFER,
                    total_len: 4,
                    reason: 0,
                    table_id: 0,
                    cookie: 0,
                    match_: m("in_port=7,reg0=5,metadata=0x9"),
                    data: vec![1, 2, 3, 4],
                }),
            ),
            (
                "packet_out",
                Message::PacketOut(PacketOut {
                    buffer_id: NO_BUFFER,
                    in_port: flows::action::port::CONTROLLER,
                    metadata: Match::catch_all(),
                    actions: acts("mod_vlan_vid:5,output:TABLE"),
                    data: vec![0xff; 60],
                }),
            ),
            (
                "flow_removed",
                Message::FlowRemoved(FlowRemoved {
                    cookie: 1,
                    priority: 2,
                    reason: 1,
                    table_id: 1,
                    duration_sec: 3,
                    duration_nsec: 4,
                    idle_timeout: 5,
                    hard_timeout: 6,
                    packet_count: 7,
                    byte_count: 8,
                    match_: m("tcp,in_port=3,nw_dst=10.0.0.0/24,tp_dst=80"),
                }),
            ),
        ]),
    );
}

fn flow_mod(command: FlowModCommand, table_id: u8, mat: &str, actions: &str) -> FlowModMsg {
    FlowModMsg::new(FlowMod {
        tun_metadata: Vec::new(),
        command,
        table_id,
        priority: 10,
        m: m(mat),
        cookie: 0x42,
        cookie_mask: if command == FlowModCommand::Add {
            0
        } else {
            0xff
        },
        idle_timeout: 5,
        hard_timeout: 7,
        flags: FlowFlags {
            send_flow_rem: true,
            ..FlowFlags::default()
        },
        out_port: if command.is_delete() {
            2
        } else {
            flows::action::port::ANY
        },
        out_group: if command.is_delete() { 7 } else { OFPG_ANY },
        actions: if actions.is_empty() {
            vec![]
        } else {
            acts(actions)
        },
    })
}

#[test]
fn flow_mod_bytes_are_unchanged() {
    check(
        "flow_mod",
        render(&[
            (
                "add_l4",
                Message::FlowMod(flow_mod(
                    FlowModCommand::Add,
                    0,
                    "tcp,in_port=3,nw_dst=10.0.0.0/24,tp_dst=80",
                    "mod_vlan_vid:5,output:2,CONTROLLER:128",
                )),
            ),
            (
                "add_rewrites",
                Message::FlowMod(flow_mod(
                    FlowModCommand::Add,
                    0,
                    "udp,dl_src=00:11:22:33:44:55,nw_src=192.168.1.1,tp_src=53",
                    "mod_dl_src:00:00:00:00:00:01,mod_dl_dst:00:00:00:00:00:02,\
                     mod_nw_src:1.2.3.4,mod_nw_dst:5.6.7.8,mod_nw_tos:16,mod_tp_src:1,\
                     mod_tp_dst:2,strip_vlan,mod_vlan_pcp:3,output:IN_PORT",
                )),
            ),
            (
                "add_instructions",
                Message::FlowMod(flow_mod(
                    FlowModCommand::Add,
                    3,
                    "ipv6,ipv6_dst=2001:db8::/32,reg3=0x5/0xff,vlan_tci=0x1005",
                    "push_vlan:0x8100,set_field:4101->vlan_vid,group:4,\
                     write_metadata:0x1/0xff,goto_table:4",
                )),
            ),
            (
                "add_nicira",
                Message::FlowMod(flow_mod(
                    FlowModCommand::Add,
                    1,
                    "arp,arp_op=1,arp_tpa=10.0.0.1,reg0=1",
                    "load:0x7->NXM_NX_REG1[0..15],move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],\
                     resubmit(,2),dec_ttl,clear_actions,write_actions(output:1)",
                )),
            ),
            (
                "add_icmp6",
                Message::FlowMod(flow_mod(
                    FlowModCommand::Add,
                    0,
                    "icmp6,icmp_type=135,nd_target=fe80::1,nw_ttl=64,ip_dscp=10",
                    "output:NORMAL",
                )),
            ),
            (
                "modify_strict",
                Message::FlowMod(flow_mod(
                    FlowModCommand::ModifyStrict,
                    0,
                    "ip,nw_proto=17",
                    "drop",
                )),
            ),
            (
                "delete",
                Message::FlowMod(flow_mod(FlowModCommand::Delete, OFPTT_ALL, "ip", "")),
            ),
            (
                "delete_strict",
                Message::FlowMod(flow_mod(
                    FlowModCommand::DeleteStrict,
                    OFPTT_ALL,
                    "dl_vlan=10",
                    "",
                )),
            ),
        ]),
    );
}

fn bucket(w: u16) -> Bucket {
    Bucket {
        weight: w,
        watch_port: if w == 2 { 5 } else { flows::action::port::ANY },
        watch_group: OFPG_ANY,
        actions: acts(&format!("mod_vlan_vid:{w},output:{w}")),
    }
}

#[test]
fn group_mod_bytes_are_unchanged() {
    let mut msgs = Vec::new();
    for (name, command, group_type) in [
        ("add_all", GroupModCommand::Add, GroupType::All),
        ("modify_select", GroupModCommand::Modify, GroupType::Select),
        ("add_indirect", GroupModCommand::Add, GroupType::Indirect),
        (
            "delete_ff",
            GroupModCommand::Delete,
            GroupType::FastFailover,
        ),
    ] {
        msgs.push((
            name,
            Message::GroupMod(GroupMod {
                command,
                group: Group {
                    id: 5,
                    kind: group_type,
                    buckets: vec![bucket(1), bucket(2)],
                    selection: Default::default(),
                },
            }),
        ));
    }
    check("group", render(&msgs));
}

#[test]
fn port_status_and_port_mod_bytes_are_unchanged() {
    check(
        "port",
        render(&[
            (
                "port_status",
                Message::PortStatus(PortStatus {
                    reason: 2,
                    desc: port(4),
                }),
            ),
            (
                "port_status_local",
                Message::PortStatus(PortStatus {
                    reason: 0,
                    desc: port(flows::action::port::LOCAL),
                }),
            ),
            (
                "port_mod",
                Message::PortMod(PortMod {
                    port_no: 3,
                    hw_addr: [2, 0, 0, 0, 0, 3],
                    config: 1,
                    mask: 1,
                    advertise: 0x20,
                }),
            ),
            (
                "queue_get_config_request",
                Message::QueueGetConfigRequest { port: 1 },
            ),
            (
                "queue_get_config_reply",
                Message::QueueGetConfigReply { port: 1 },
            ),
        ]),
    );
}

#[test]
fn role_and_async_bytes_are_unchanged() {
    check(
        "controller",
        render(&[
            (
                "role_request",
                Message::RoleRequest(RoleMsg {
                    role: role::MASTER,
                    generation_id: 9,
                }),
            ),
            (
                "role_reply",
                Message::RoleReply(RoleMsg {
                    role: role::SLAVE,
                    generation_id: 9,
                }),
            ),
            ("get_async_request", Message::GetAsyncRequest),
            (
                "get_async_reply",
                Message::GetAsyncReply(AsyncConfig {
                    packet_in_mask: [7, 0],
                    port_status_mask: [7, 7],
                    flow_removed_mask: [15, 0],
                }),
            ),
            (
                "set_async",
                Message::SetAsync(AsyncConfig {
                    packet_in_mask: [1, 2],
                    port_status_mask: [3, 4],
                    flow_removed_mask: [5, 6],
                }),
            ),
        ]),
    );
}

fn flow_stats(i: u8) -> FlowStats {
    FlowStats {
        tun_metadata: Vec::new(),
        table_id: i,
        duration_sec: 1,
        duration_nsec: 2,
        priority: 3,
        idle_timeout: 4,
        hard_timeout: 5,
        flags: 1,
        cookie: 6,
        packet_count: 7,
        byte_count: 8,
        match_: m("tcp,in_port=3,nw_dst=10.0.0.0/24,tp_dst=80"),
        actions: acts("strip_vlan,output:2"),
    }
}

#[test]
fn multipart_bytes_are_unchanged() {
    let mut msgs = Vec::new();
    let filter = FlowStatsRequest {
        table_id: 2,
        out_port: 4,
        out_group: OFPG_ANY,
        cookie: 0x10,
        cookie_mask: 0xf0,
        match_: m("ip,nw_src=10.0.0.1"),
    };
    for (name, body) in [
        ("req_desc", MultipartRequestBody::Desc),
        ("req_flow", MultipartRequestBody::Flow(filter.clone())),
        ("req_aggregate", MultipartRequestBody::Aggregate(filter)),
        ("req_table", MultipartRequestBody::Table),
        (
            "req_port_stats",
            MultipartRequestBody::PortStats { port_no: 1 },
        ),
        ("req_port_desc", MultipartRequestBody::PortDesc),
        ("req_group", MultipartRequestBody::Group { group_id: 1 }),
        ("req_group_desc", MultipartRequestBody::GroupDesc),
        ("req_table_features", MultipartRequestBody::TableFeatures),
    ] {
        msgs.push((
            name,
            Message::MultipartRequest(MultipartRequest { flags: 0, body }),
        ));
    }
    for (name, flags, body) in [
        (
            "rep_desc",
            0,
            MultipartReplyBody::Desc(SwitchDesc {
                mfr_desc: "ferrovs".into(),
                hw_desc: "hw".into(),
                sw_desc: "sw".into(),
                serial_num: "1".into(),
                dp_desc: "dp".into(),
            }),
        ),
        (
            "rep_flow",
            MP_MORE,
            MultipartReplyBody::Flow(vec![flow_stats(0), flow_stats(1)]),
        ),
        (
            "rep_aggregate",
            0,
            MultipartReplyBody::Aggregate(AggregateStats {
                packet_count: 10,
                byte_count: 1000,
                flow_count: 3,
            }),
        ),
        (
            "rep_table",
            0,
            MultipartReplyBody::Table(vec![TableStats {
                table_id: 0,
                name: "classifier".into(),
                max_entries: 1000,
                active_count: 1,
                lookup_count: 2,
                matched_count: 3,
            }]),
        ),
        (
            "rep_port_stats",
            0,
            MultipartReplyBody::PortStats(vec![PortStats {
                port_no: 1,
                rx_packets: 1,
                tx_packets: 2,
                rx_bytes: 3,
                tx_bytes: 4,
                rx_dropped: 5,
                tx_dropped: 6,
                rx_errors: 7,
                tx_errors: 8,
                rx_frame_err: 9,
                rx_over_err: 10,
                rx_crc_err: 11,
                collisions: 12,
                duration_sec: 13,
                duration_nsec: 14,
            }]),
        ),
        (
            "rep_port_desc",
            0,
            MultipartReplyBody::PortDesc(vec![port(1), port(2)]),
        ),
        (
            "rep_group",
            0,
            MultipartReplyBody::Group(vec![GroupStats {
                group_id: 1,
                ref_count: 2,
                packet_count: 3,
                byte_count: 4,
                duration_sec: 5,
                duration_nsec: 6,
                bucket_stats: vec![(1, 2), (3, 4)],
            }]),
        ),
        (
            "rep_group_desc",
            0,
            MultipartReplyBody::GroupDesc(vec![Group {
                id: 9,
                kind: GroupType::Select,
                buckets: vec![bucket(3), bucket(2)],
                selection: Default::default(),
            }]),
        ),
        (
            "rep_table_features",
            0,
            MultipartReplyBody::TableFeatures(vec![TableFeatures {
                table_id: 0,
                name: "classifier".into(),
                metadata_match: u64::MAX,
                metadata_write: u64::MAX,
                config: 0,
                max_entries: 1000,
            }]),
        ),
    ] {
        msgs.push((
            name,
            Message::MultipartReply(MultipartReply { flags, body }),
        ));
    }
    let mut text = render(&msgs);
    // A reply too large for one message, split with REPLY_MORE.
    let many = MultipartReplyBody::Flow((0..700).map(|i| flow_stats((i % 200) as u8)).collect());
    for v in VERSIONS {
        let parts = encode_multipart_reply(&many, v, 7).unwrap();
        for (i, p) in parts.iter().enumerate() {
            // Too long to keep as hex: its length and FNV-1a digest.
            let len = p.len();
            let digest = fnv1a(p);
            text.push_str(&format!(
                "rep_flow_split_{i} {v} len={len} fnv={digest:016x}\n"
            ));
        }
    }
    check("multipart", text);
}
