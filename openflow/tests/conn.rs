//! OfConnection driven byte by byte with an in-memory agent.

mod support;

use flows::Action;
use flows::key::ethertype;
use openflow::conn::CloseReason;
use openflow::consts::{NO_BUFFER, OFP10_VERSION, OFP13_VERSION};
use openflow::*;
use support::MemAgent;

fn msgs(bytes: &[u8]) -> Vec<(OfHeader, Message)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 8 <= bytes.len() {
        let len = usize::from(u16::from_be_bytes([bytes[off + 2], bytes[off + 3]]));
        out.push(decode(&bytes[off..off + len]).unwrap());
        off += len;
    }
    assert_eq!(off, bytes.len());
    out
}

/// A connection that has completed HELLO at `version`.
fn established(version: u8, agent: &mut MemAgent) -> OfConnection {
    let mut c = OfConnection::new(ConnConfig::default(), 0);
    let hello = msgs(&c.take_output());
    assert_eq!(
        hello[0].1,
        Message::Hello {
            versions: openflow::conn::DEFAULT_VERSIONS
        }
    );
    assert_eq!(openflow::conn::DEFAULT_VERSIONS, 0x72, "1.0, 1.3, 1.4, 1.5");
    let theirs = encode(
        &Message::Hello {
            versions: 1 << version,
        },
        version,
        1,
    )
    .unwrap();
    c.receive(&theirs, agent, 0);
    assert_eq!(c.version(), Some(version));
    assert!(c.take_output().is_empty());
    c
}

fn add_flow(port: u32) -> Message {
    let mut fm = FlowMod::new(FlowModCommand::Add);
    fm.m.key.dl_type = ethertype::IPV4;
    fm.m.mask.dl_type = 0xffff;
    fm.priority = port;
    fm.actions = vec![Action::Output { port, max_len: 0 }];
    Message::FlowMod(FlowModMsg::new(fm))
}

#[test]
fn hello_negotiates_the_highest_common_version() {
    let mut a = MemAgent::default();
    let mut c = OfConnection::new(ConnConfig::default(), 0);
    c.take_output();
    let hello = encode(&Message::Hello { versions: 0x1e }, 4, 1).unwrap();
    c.receive(&hello, &mut a, 0);
    assert_eq!(c.version(), Some(OFP13_VERSION));
    // A 1.0 peer without a bitmap gets 1.0.
    let mut c = OfConnection::new(ConnConfig::default(), 0);
    c.receive(&[1, 0, 0, 8, 0, 0, 0, 1], &mut a, 0);
    assert_eq!(c.version(), Some(OFP10_VERSION));
}

#[test]
fn no_common_version_sends_hello_failed_and_closes() {
    let mut a = MemAgent::default();
    let mut c = OfConnection::new(ConnConfig::default(), 0);
    c.take_output();
    let hello = encode(&Message::Hello { versions: 1 << 7 }, 4, 1).unwrap();
    let mut hello = hello;
    hello[0] = 7;
    c.receive(&hello, &mut a, 0);
    assert_eq!(c.closed(), Some(&CloseReason::Incompatible));
    let out = msgs(&c.take_output());
    let Message::Error(e) = &out[0].1 else {
        panic!("{out:?}")
    };
    assert_eq!((e.err_type, e.code), (0, 0)); // OFPET_HELLO_FAILED / INCOMPATIBLE
    assert_eq!(out[0].0.version, openflow::consts::OFP15_VERSION);
    assert_eq!(
        String::from_utf8_lossy(&e.data),
        "We support versions 0x01, 0x04, 0x05, 0x06, you support versions 0x07."
    );
}

#[test]
fn echo_requests_are_answered_with_the_same_xid_and_data() {
    let mut a = MemAgent::default();
    let mut c = established(OFP13_VERSION, &mut a);
    let req = encode(&Message::EchoRequest(vec![1, 2, 3]), 4, 77).unwrap();
    c.receive(&req, &mut a, 10);
    let out = msgs(&c.take_output());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.xid, 77);
    assert_eq!(out[0].1, Message::EchoReply(vec![1, 2, 3]));
}

#[test]
fn messages_split_across_reads_and_batched_in_one_read_are_all_handled() {
    let mut a = MemAgent::default();
    let mut c = established(OFP13_VERSION, &mut a);
    let mut stream = Vec::new();
    for p in 1..=3 {
        stream.extend(encode(&add_flow(p), 4, p).unwrap());
    }
    stream.extend(encode(&Message::BarrierRequest, 4, 99).unwrap());
    // One byte at a time, then everything at once on a second connection.
    for b in &stream {
        c.receive(std::slice::from_ref(b), &mut a, 0);
    }
    assert_eq!(a.flows.len(), 3);
    let mut a2 = MemAgent::default();
    let mut c2 = established(OFP13_VERSION, &mut a2);
    c2.receive(&stream, &mut a2, 0);
    assert_eq!(a2.flows.len(), 3);
    assert_eq!(msgs(&c.take_output()), msgs(&c2.take_output()));
}

#[test]
fn barrier_reply_comes_after_every_earlier_change_and_reply() {
    let mut a = MemAgent::default();
    let mut c = established(OFP13_VERSION, &mut a);
    let mut stream = Vec::new();
    stream.extend(encode(&add_flow(1), 4, 1).unwrap());
    stream.extend(encode(&Message::EchoRequest(vec![]), 4, 2).unwrap());
    stream.extend(encode(&add_flow(2), 4, 3).unwrap());
    stream.extend(encode(&Message::BarrierRequest, 4, 4).unwrap());
    c.receive(&stream, &mut a, 0);
    assert_eq!(a.calls, vec!["flow_mod", "flow_mod", "barrier"]);
    let out = msgs(&c.take_output());
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].1, Message::EchoReply(vec![]));
    assert_eq!((out[1].0.xid, &out[1].1), (4, &Message::BarrierReply));
}

#[test]
fn refused_flow_mod_gets_the_agent_error_with_64_bytes_and_the_connection_continues() {
    let mut a = MemAgent::with_capacity(0);
    let mut c = established(OFP13_VERSION, &mut a);
    let fm = encode(&add_flow(1), 4, 5).unwrap();
    assert!(fm.len() > 64);
    c.receive(&fm, &mut a, 0);
    let out = msgs(&c.take_output());
    let Message::Error(e) = &out[0].1 else {
        panic!("{out:?}")
    };
    assert_eq!(out[0].0.xid, 5);
    assert_eq!((e.err_type, e.code), (5, 1)); // OFPET_FLOW_MOD_FAILED / TABLE_FULL
    assert_eq!(e.data, fm[..64].to_vec());
    c.receive(
        &encode(&Message::EchoRequest(vec![]), 4, 6).unwrap(),
        &mut a,
        0,
    );
    assert_eq!(msgs(&c.take_output())[0].1, Message::EchoReply(vec![]));
    assert!(c.closed().is_none());
}

#[test]
fn unknown_message_type_gets_bad_request_bad_type_and_continues() {
    let mut a = MemAgent::default();
    let mut c = established(OFP13_VERSION, &mut a);
    c.receive(&[4, 0x63, 0, 8, 0, 0, 0, 9], &mut a, 0);
    let out = msgs(&c.take_output());
    let Message::Error(e) = &out[0].1 else {
        panic!()
    };
    assert_eq!((e.err_type, e.code), (1, 1));
    assert_eq!(e.data, vec![4, 0x63, 0, 8, 0, 0, 0, 9]);
    assert!(c.closed().is_none());
}

#[test]
fn bad_oxm_prerequisite_gets_bad_match_bad_prereq() {
    let mut a = MemAgent::default();
    let mut c = established(OFP13_VERSION, &mut a);
    let mut fm = FlowMod::new(FlowModCommand::Add);
    fm.m.key.nw_dst = 1;
    fm.m.mask.nw_dst = u32::MAX; // no eth_type=0x0800
    c.receive(
        &encode(&Message::FlowMod(FlowModMsg::new(fm)), 4, 3).unwrap(),
        &mut a,
        0,
    );
    let Message::Error(e) = &msgs(&c.take_output())[0].1 else {
        panic!()
    };
    assert_eq!((e.err_type, e.code), (4, 9));
    assert!(a.flows.is_empty());
}

#[test]
fn unknown_experimenters_get_bad_experimenter_and_unknown_nicira_subtypes_bad_exp_type() {
    let mut a = MemAgent::default();
    let mut c = established(OFP13_VERSION, &mut a);
    for (experimenter, want) in [(0x00ab_cdef, (1, 3)), (0x2320, (1, 4))] {
        let m = Message::Experimenter {
            experimenter,
            exp_type: 12,
            data: vec![],
        };
        c.receive(&encode(&m, 4, 3).unwrap(), &mut a, 0);
        let Message::Error(e) = &msgs(&c.take_output())[0].1 else {
            panic!()
        };
        assert_eq!((e.err_type, e.code), want, "experimenter {experimenter:#x}");
    }
}

#[test]
fn header_length_below_8_sends_bad_len_and_closes() {
    let mut a = MemAgent::default();
    let mut c = established(OFP13_VERSION, &mut a);
    c.receive(&[4, 2, 0, 4, 0, 0, 0, 1, 0, 0], &mut a, 0);
    assert_eq!(c.closed(), Some(&CloseReason::BadLength));
    let Message::Error(e) = &msgs(&c.take_output())[0].1 else {
        panic!()
    };
    assert_eq!((e.err_type, e.code), (1, 6));
}

#[test]
fn slave_is_refused_modifications_with_is_slave() {
    let mut a = MemAgent::default();
    let mut c = established(OFP13_VERSION, &mut a);
    let rr = Message::RoleRequest(RoleMsg {
        role: role::SLAVE,
        generation_id: 5,
    });
    c.receive(&encode(&rr, 4, 1).unwrap(), &mut a, 0);
    assert_eq!(
        msgs(&c.take_output())[0].1,
        Message::RoleReply(RoleMsg {
            role: role::SLAVE,
            generation_id: 5
        })
    );
    c.receive(&encode(&add_flow(1), 4, 2).unwrap(), &mut a, 0);
    let Message::Error(e) = &msgs(&c.take_output())[0].1 else {
        panic!()
    };
    assert_eq!((e.err_type, e.code), (1, 10));
    assert!(a.flows.is_empty());
    // A stale generation id is refused.
    let stale = Message::RoleRequest(RoleMsg {
        role: role::MASTER,
        generation_id: 4,
    });
    c.receive(&encode(&stale, 4, 3).unwrap(), &mut a, 0);
    let Message::Error(e) = &msgs(&c.take_output())[0].1 else {
        panic!()
    };
    assert_eq!((e.err_type, e.code), (11, 0));
    // Master may modify.
    let m = Message::RoleRequest(RoleMsg {
        role: role::MASTER,
        generation_id: 6,
    });
    c.receive(&encode(&m, 4, 4).unwrap(), &mut a, 0);
    c.take_output();
    c.receive(&encode(&add_flow(1), 4, 5).unwrap(), &mut a, 0);
    assert_eq!(a.flows.len(), 1);
}

#[test]
fn tlv_table_mod_and_request_reach_the_agent_and_errors_are_nicira_codes() {
    use flows::tlv::{TlvCommand, TlvMapping};
    use openflow::msg::nicira::NxMsg;
    use openflow::msg::tlv::TlvTableMod;
    let mut a = MemAgent::default();
    let mut c = established(6, &mut a);
    let ovn = TlvMapping {
        class: 0x102,
        type_: 0x80,
        len: 4,
        index: 0,
    };
    let add = Message::Nicira(NxMsg::TlvTableMod(TlvTableMod {
        command: TlvCommand::Add,
        mappings: vec![ovn],
    }));
    c.receive(&encode(&add, 6, 2).unwrap(), &mut a, 0);
    assert!(c.take_output().is_empty());
    let req = Message::Nicira(NxMsg::TlvTableRequest);
    c.receive(&encode(&req, 6, 3).unwrap(), &mut a, 0);
    let out = msgs(&c.take_output());
    let Message::Nicira(NxMsg::TlvTableReply(r)) = &out[0].1 else {
        panic!("{out:?}")
    };
    assert_eq!(
        (out[0].0.xid, r.max_option_space, r.max_fields),
        (3, 256, 64)
    );
    assert_eq!(r.mappings, vec![ovn]);
    // Again: NXTTMFC_ALREADY_MAPPED, an experimenter error (Nicira, 20).
    c.receive(&encode(&add, 6, 4).unwrap(), &mut a, 0);
    let out = msgs(&c.take_output());
    let Message::Error(e) = &out[0].1 else {
        panic!("{out:?}")
    };
    assert_eq!((out[0].0.xid, e.err_type, e.code), (4, 0xffff, 20));
    assert_eq!(&e.data[..4], &[0, 0, 0x23, 0x20]);
    // A slave may not change the map.
    let rr = Message::RoleRequest(RoleMsg {
        role: role::SLAVE,
        generation_id: 1,
    });
    c.receive(&encode(&rr, 6, 5).unwrap(), &mut a, 0);
    c.take_output();
    let clear = Message::Nicira(NxMsg::TlvTableMod(TlvTableMod {
        command: TlvCommand::Clear,
        mappings: vec![],
    }));
    c.receive(&encode(&clear, 6, 6).unwrap(), &mut a, 0);
    let Message::Error(e) = &msgs(&c.take_output())[0].1 else {
        panic!()
    };
    assert_eq!((e.err_type, e.code), (1, 10));
    assert_eq!(a.tlv.mappings().count(), 1);
}

#[test]
fn async_config_filters_packet_ins_for_slaves() {
    let mut a = MemAgent::default();
    let mut c = established(OFP13_VERSION, &mut a);
    let pi = Message::PacketIn(PacketIn {
        buffer_id: NO_BUFFER,
        total_len: 1,
        reason: 0,
        table_id: 0,
        cookie: 0,
        match_: flows::Match::default(),
        data: vec![0],
    });
    assert!(c.send_async(&pi));
    assert_eq!(msgs(&c.take_output())[0].1, pi);
    c.set_role(role::SLAVE);
    assert!(!c.send_async(&pi));
    let all = AsyncConfig {
        packet_in_mask: [7, 7],
        ..AsyncConfig::default()
    };
    c.receive(&encode(&Message::SetAsync(all), 4, 1).unwrap(), &mut a, 0);
    c.receive(&encode(&Message::GetAsyncRequest, 4, 2).unwrap(), &mut a, 0);
    assert_eq!(msgs(&c.take_output())[0].1, Message::GetAsyncReply(all));
    assert!(c.send_async(&pi));
}

#[test]
fn inactivity_probe_then_disconnect_after_a_second_silent_interval() {
    let mut a = MemAgent::default();
    let cfg = ConnConfig {
        probe_interval_ms: 1000,
        ..ConnConfig::default()
    };
    let mut c = OfConnection::new(cfg, 0);
    c.take_output();
    c.receive(
        &encode(&Message::Hello { versions: 0x10 }, 4, 1).unwrap(),
        &mut a,
        0,
    );
    c.tick(500);
    assert!(c.take_output().is_empty());
    c.tick(1000);
    let out = msgs(&c.take_output());
    assert!(matches!(out[0].1, Message::EchoRequest(_)));
    // An answer resets the clock.
    c.receive(
        &encode(&Message::EchoReply(vec![]), 4, out[0].0.xid).unwrap(),
        &mut a,
        1500,
    );
    c.tick(2400);
    assert!(c.closed().is_none());
    c.tick(2500);
    assert!(matches!(
        msgs(&c.take_output())[0].1,
        Message::EchoRequest(_)
    ));
    c.tick(3400);
    assert!(c.closed().is_none());
    c.tick(3500);
    assert_eq!(c.closed(), Some(&CloseReason::Timeout));
}

#[test]
fn features_get_config_and_multipart_are_answered_in_1_0() {
    let mut a = MemAgent::default();
    let mut c = established(OFP10_VERSION, &mut a);
    c.receive(&encode(&Message::FeaturesRequest, 1, 1).unwrap(), &mut a, 0);
    c.receive(
        &encode(&Message::GetConfigRequest, 1, 2).unwrap(),
        &mut a,
        0,
    );
    let req = Message::MultipartRequest(MultipartRequest {
        flags: 0,
        body: MultipartRequestBody::Desc,
    });
    c.receive(&encode(&req, 1, 3).unwrap(), &mut a, 0);
    let out = msgs(&c.take_output());
    let Message::FeaturesReply(f) = &out[0].1 else {
        panic!()
    };
    assert_eq!(f.ports.len(), 1);
    assert!(matches!(out[1].1, Message::GetConfigReply(_)));
    assert!(matches!(out[2].1, Message::MultipartReply(_)));
    assert_eq!(out[2].0.version, OFP10_VERSION);
}

#[test]
fn messages_with_the_wrong_version_get_bad_version() {
    let mut a = MemAgent::default();
    let mut c = established(OFP13_VERSION, &mut a);
    c.receive(
        &encode(&Message::EchoRequest(vec![]), 1, 8).unwrap(),
        &mut a,
        0,
    );
    let Message::Error(e) = &msgs(&c.take_output())[0].1 else {
        panic!()
    };
    assert_eq!((e.err_type, e.code), (1, 0));
}

fn bundle_ctrl(id: u32, ctrl_type: u16, flags: u16) -> Message {
    Message::BundleControl(BundleCtrl {
        bundle_id: id,
        ctrl_type,
        flags,
    })
}

/// Adds `msg` (encoded with `xid`) to bundle `id`, as ovs-ofctl does: the
/// add message and the message it carries share the xid.
fn bundle_add(version: u8, id: u32, flags: u16, msg: &Message, xid: u32) -> Vec<u8> {
    let inner = encode(msg, version, xid).unwrap();
    encode(
        &Message::BundleAddMessage(BundleAdd {
            bundle_id: id,
            flags,
            message: inner,
        }),
        version,
        xid,
    )
    .unwrap()
}

#[test]
fn atomic_bundle_commit_applies_every_flow_or_none_and_names_the_failing_one() {
    use openflow::consts::OFP15_VERSION;
    let flags = bundle_ctrl::ATOMIC | bundle_ctrl::ORDERED;
    for v in [OFP13_VERSION, OFP15_VERSION] {
        // Room for two flows: the third add fails.
        let mut a = MemAgent::with_capacity(2);
        let mut c = established(v, &mut a);
        c.receive(
            &encode(&bundle_ctrl(7, bundle_ctrl::OPEN_REQUEST, flags), v, 10).unwrap(),
            &mut a,
            0,
        );
        let out = msgs(&c.take_output());
        assert_eq!(
            out[0].1,
            bundle_ctrl(7, bundle_ctrl::OPEN_REPLY, flags),
            "version {v}"
        );
        for (i, port) in [1u32, 2, 3].into_iter().enumerate() {
            c.receive(
                &bundle_add(v, 7, flags, &add_flow(port), 20 + i as u32),
                &mut a,
                0,
            );
        }
        assert!(c.take_output().is_empty(), "adds are not answered");
        assert!(a.flows.is_empty(), "nothing applies before the commit");
        c.receive(
            &encode(&bundle_ctrl(7, bundle_ctrl::COMMIT_REQUEST, flags), v, 30).unwrap(),
            &mut a,
            0,
        );
        let out = msgs(&c.take_output());
        assert_eq!(out.len(), 2, "{out:?}");
        // First the failing flow's own error, quoting it, with its xid...
        let Message::Error(e) = &out[0].1 else {
            panic!("{out:?}")
        };
        assert_eq!(out[0].0.xid, 22);
        assert_eq!(e.error(v), OfError::TableFull);
        let quoted = encode(&add_flow(3), v, 22).unwrap();
        assert_eq!(e.data, quoted[..64.min(quoted.len())]);
        // ...then MSG_FAILED for the commit.
        let Message::Error(e) = &out[1].1 else {
            panic!("{out:?}")
        };
        assert_eq!(out[1].0.xid, 30);
        assert_eq!(e.error(v), OfError::BundleMsgFailed);
        assert!(a.flows.is_empty(), "version {v}: the table was changed");
        // The bundle is gone: committing it again names a bad id.
        c.receive(
            &encode(&bundle_ctrl(7, bundle_ctrl::COMMIT_REQUEST, flags), v, 31).unwrap(),
            &mut a,
            0,
        );
        let out = msgs(&c.take_output());
        let Message::Error(e) = &out[0].1 else {
            panic!("{out:?}")
        };
        assert_eq!(e.error(v), OfError::BundleBadId);
        // With room, a bundle opened implicitly by its first add commits whole.
        a.capacity = None;
        for (i, port) in [1u32, 2, 3].into_iter().enumerate() {
            c.receive(
                &bundle_add(v, 8, flags, &add_flow(port), 40 + i as u32),
                &mut a,
                0,
            );
        }
        c.receive(
            &encode(&bundle_ctrl(8, bundle_ctrl::COMMIT_REQUEST, flags), v, 50).unwrap(),
            &mut a,
            0,
        );
        let out = msgs(&c.take_output());
        assert_eq!(out[0].1, bundle_ctrl(8, bundle_ctrl::COMMIT_REPLY, flags));
        assert_eq!(out[0].0.xid, 50);
        assert_eq!(a.flows.len(), 3);
    }
}

#[test]
fn bundle_misuse_gets_the_bundle_errors_open_vswitch_sends() {
    use openflow::consts::OFP14_VERSION;
    let v = OFP14_VERSION;
    let flags = bundle_ctrl::ATOMIC;
    let mut a = MemAgent::default();
    let mut c = established(v, &mut a);
    let expect = |c: &mut OfConnection, a: &mut MemAgent, bytes: Vec<u8>, want: OfError| {
        c.receive(&bytes, a, 0);
        let out = msgs(&c.take_output());
        let Message::Error(e) = &out[0].1 else {
            panic!("{out:?}")
        };
        assert_eq!(e.error(v), want);
        // 1.4 has standard bundle error codes (OFPET_BUNDLE_FAILED = 17).
        assert_eq!(e.err_type, 17);
    };
    let open = encode(&bundle_ctrl(1, bundle_ctrl::OPEN_REQUEST, flags), v, 1).unwrap();
    c.receive(&open, &mut a, 0);
    c.take_output();
    expect(&mut c, &mut a, open.clone(), OfError::BundleExists);
    // The carried message's xid must be the add message's.
    let mut add = bundle_add(v, 1, flags, &add_flow(1), 5);
    add[4..8].copy_from_slice(&6u32.to_be_bytes());
    expect(&mut c, &mut a, add, OfError::BundleMsgBadXid);
    // Only flow, group and port mods may be bundled.
    expect(
        &mut c,
        &mut a,
        bundle_add(v, 1, flags, &Message::BarrierRequest, 7),
        OfError::BundleMsgUnsup,
    );
    // Flags must match the bundle's.
    expect(
        &mut c,
        &mut a,
        bundle_add(v, 1, 0, &add_flow(1), 8),
        OfError::BundleBadFlags,
    );
    // After CLOSE nothing more may be added.
    c.receive(
        &encode(&bundle_ctrl(1, bundle_ctrl::CLOSE_REQUEST, flags), v, 9).unwrap(),
        &mut a,
        0,
    );
    assert_eq!(
        msgs(&c.take_output())[0].1,
        bundle_ctrl(1, bundle_ctrl::CLOSE_REPLY, flags)
    );
    expect(
        &mut c,
        &mut a,
        bundle_add(v, 1, flags, &add_flow(1), 10),
        OfError::BundleClosed,
    );
    // Discard forgets it.
    c.receive(
        &encode(&bundle_ctrl(1, bundle_ctrl::DISCARD_REQUEST, flags), v, 11).unwrap(),
        &mut a,
        0,
    );
    assert_eq!(
        msgs(&c.take_output())[0].1,
        bundle_ctrl(1, bundle_ctrl::DISCARD_REPLY, flags)
    );
    expect(
        &mut c,
        &mut a,
        encode(&bundle_ctrl(1, bundle_ctrl::COMMIT_REQUEST, flags), v, 12).unwrap(),
        OfError::BundleBadId,
    );
    assert!(a.flows.is_empty());
}

#[test]
fn nicira_controller_messages_are_accepted_and_resume_is_refused_with_nxr_not_supported() {
    use openflow::consts::OFP15_VERSION;
    use openflow::msg::nicira::NxMsg;
    let v = OFP15_VERSION;
    let mut a = MemAgent::default();
    let mut c = established(v, &mut a);
    for m in [
        NxMsg::SetPacketInFormat(2),
        NxMsg::SetControllerId(9),
        NxMsg::CtFlushZone(3),
        NxMsg::SetAsyncConfig(AsyncConfig::default()),
    ] {
        c.receive(
            &encode(&Message::Nicira(m.clone()), v, 4).unwrap(),
            &mut a,
            0,
        );
        assert!(
            c.take_output().is_empty(),
            "{m:?} must be accepted silently"
        );
    }
    assert_eq!(c.controller_id(), 9);
    // Packet-ins now go out as NXT_PACKET_IN2.
    let pi = PacketIn {
        buffer_id: NO_BUFFER,
        total_len: 3,
        reason: 0,
        table_id: 0,
        cookie: 0,
        match_: flows::Match::catch_all(),
        data: vec![1, 2, 3],
    };
    assert!(c.send_async(&Message::PacketIn(pi.clone())));
    let out = msgs(&c.take_output());
    let Message::Nicira(NxMsg::PacketIn2(p)) = &out[0].1 else {
        panic!("{out:?}")
    };
    assert_eq!(p.packet_in, pi);
    // NXT_RESUME cannot continue a pipeline yet: a clear error, not silence.
    let resume = NxMsg::Resume(openflow::msg::nicira::PacketIn2::from_packet_in(pi));
    c.receive(&encode(&Message::Nicira(resume), v, 5).unwrap(), &mut a, 0);
    let out = msgs(&c.take_output());
    let Message::Error(e) = &out[0].1 else {
        panic!("{out:?}")
    };
    assert_eq!(out[0].0.xid, 5);
    assert_eq!(e.error(v), OfError::ResumeNotSupported);
    // A packet-in format this switch does not produce is refused.
    c.receive(
        &encode(&Message::Nicira(NxMsg::SetPacketInFormat(1)), v, 6).unwrap(),
        &mut a,
        0,
    );
    assert!(matches!(msgs(&c.take_output())[0].1, Message::Error(_)));
}
