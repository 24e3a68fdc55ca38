//! Debian's `ovs-ofctl` against OfConnection + an in-memory agent over TCP
//! on 127.0.0.1.

mod support;

use std::process::Command;
use std::sync::{Arc, Mutex};

use flows::Action;
use flows::key::ethertype;
use openflow::{GroupModCommand, GroupType};
use support::MemAgent;

fn have_ovs_ofctl() -> bool {
    Command::new("ovs-ofctl").arg("--version").output().is_ok()
}

/// Serves OpenFlow on an ephemeral loopback port; returns the port.
fn serve(agent: Arc<Mutex<MemAgent>>) -> u16 {
    openflow::testing::serve_tcp(agent).unwrap()
}

fn ofctl(version: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("timeout")
        .arg("10")
        .arg("ovs-ofctl")
        .arg("-O")
        .arg(version)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn add_then_dump(version: &str) {
    if !have_ovs_ofctl() {
        eprintln!("ovs-ofctl not installed; skipping");
        return;
    }
    let agent = Arc::new(Mutex::new(MemAgent::default()));
    let port = serve(agent.clone());
    let target = format!("tcp:127.0.0.1:{port}");
    let (ok, _, err) = ofctl(
        version,
        &[
            "add-flow",
            &target,
            "priority=10,ip,nw_dst=10.0.0.0/24,actions=output:2",
        ],
    );
    assert!(ok, "add-flow failed: {err}");
    {
        let a = agent.lock().unwrap();
        assert_eq!(a.flows.len(), 1);
        let fm = &a.flows[0];
        assert_eq!(fm.priority, 10);
        assert_eq!(fm.m.key.dl_type, ethertype::IPV4);
        assert_eq!(
            (fm.m.key.nw_dst, fm.m.mask.nw_dst),
            (0x0a00_0000, 0xffff_ff00)
        );
        assert_eq!(fm.m.mask.nw_src, 0);
        assert_eq!(
            fm.actions,
            vec![Action::Output {
                port: 2,
                max_len: 0
            }]
        );
        assert!(a.calls.contains(&"barrier"));
    }
    let (ok, out, err) = ofctl(version, &["dump-flows", &target]);
    assert!(ok, "dump-flows failed: {err}");
    assert!(
        out.contains("priority=10,ip,nw_dst=10.0.0.0/24 actions=output:2"),
        "dump-flows printed: {out}"
    );
    let (ok, _, err) = ofctl(version, &["del-flows", &target]);
    assert!(ok, "del-flows failed: {err}");
    assert!(agent.lock().unwrap().flows.is_empty());
}

#[test]
fn ovs_ofctl_openflow13_add_flow_and_dump_flows_round_trip() {
    add_then_dump("OpenFlow13");
}

#[test]
fn ovs_ofctl_openflow10_add_flow_and_dump_flows_round_trip() {
    add_then_dump("OpenFlow10");
}

#[test]
fn ovs_ofctl_openflow13_nicira_actions_and_registers_are_understood() {
    if !have_ovs_ofctl() {
        return;
    }
    let agent = Arc::new(Mutex::new(MemAgent::default()));
    let port = serve(agent.clone());
    let target = format!("tcp:127.0.0.1:{port}");
    let flow = "table=1,priority=5,tcp,reg0=5,tp_dst=80,actions=resubmit(,3),load:5->NXM_NX_REG1[0..7],move:NXM_NX_REG0[]->NXM_NX_REG2[],dec_ttl,controller:100,goto_table:5";
    let (ok, _, err) = ofctl("OpenFlow13", &["add-flow", &target, flow]);
    assert!(ok, "add-flow failed: {err}");
    let (ok, out, err) = ofctl("OpenFlow13", &["dump-flows", &target]);
    assert!(ok, "dump-flows failed: {err}");
    assert!(out.contains("table=1"), "{out}");
    assert!(out.contains("reg0=0x5"), "{out}");
    assert!(out.contains("resubmit(,3)"), "{out}");
    assert!(out.contains("load:0x5->NXM_NX_REG1[0..7]"), "{out}");
    assert!(out.contains("move:NXM_NX_REG0[]->NXM_NX_REG2[]"), "{out}");
    assert!(out.contains("goto_table:5"), "{out}");
    let (ok, out, err) = ofctl("OpenFlow13", &["show", &target]);
    assert!(ok, "show failed: {err}");
    assert!(out.contains("dpid:0000000000001234"), "{out}");
}

#[test]
fn ovs_ofctl_openflow14_add_flow_and_dump_flows_round_trip() {
    add_then_dump("OpenFlow14");
}

#[test]
fn ovs_ofctl_openflow15_add_flow_and_dump_flows_round_trip() {
    add_then_dump("OpenFlow15");
}

/// Every read-only command of ovs-ofctl works in 1.4 and 1.5: their
/// replies (port descriptions and port stats with properties, table
/// stats, table features, aggregate stats as OXS in 1.5) all decode.
#[test]
fn ovs_ofctl_openflow14_and_15_show_and_stats_commands_decode_our_replies() {
    if !have_ovs_ofctl() {
        return;
    }
    let agent = Arc::new(Mutex::new(MemAgent::default()));
    let port = serve(agent.clone());
    let target = format!("tcp:127.0.0.1:{port}");
    for v in ["OpenFlow14", "OpenFlow15"] {
        let (ok, _, err) = ofctl(v, &["add-flow", &target, "priority=7,ip,actions=drop"]);
        assert!(ok, "{v} add-flow: {err}");
        let (ok, out, err) = ofctl(v, &["show", &target]);
        assert!(ok, "{v} show: {err}");
        assert!(out.contains("dpid:0000000000001234"), "{v}: {out}");
        assert!(out.contains(" 1(p1): addr:02:00:00:00:00:01"), "{v}: {out}");
        let (ok, out, err) = ofctl(v, &["dump-ports-desc", &target]);
        assert!(ok, "{v} dump-ports-desc: {err}");
        assert!(out.contains("1(p1)"), "{v}: {out}");
        let (ok, out, err) = ofctl(v, &["dump-ports", &target]);
        assert!(ok, "{v} dump-ports: {err}");
        assert!(out.contains("port  1: rx pkts=10"), "{v}: {out}");
        let (ok, out, err) = ofctl(v, &["dump-aggregate", &target]);
        assert!(ok, "{v} dump-aggregate: {err}");
        assert!(out.contains("flow_count=1"), "{v}: {out}");
        let (ok, _, err) = ofctl(v, &["dump-tables", &target]);
        assert!(ok, "{v} dump-tables: {err}");
        let (ok, _, err) = ofctl(v, &["del-flows", &target]);
        assert!(ok, "{v} del-flows: {err}");
    }
}

#[test]
fn ovs_ofctl_openflow15_groups_round_trip_with_bucket_ids() {
    if !have_ovs_ofctl() {
        return;
    }
    let agent = Arc::new(Mutex::new(MemAgent::default()));
    let port = serve(agent.clone());
    let target = format!("tcp:127.0.0.1:{port}");
    let (ok, _, err) = ofctl(
        "OpenFlow15",
        &[
            "add-group",
            &target,
            "group_id=7,type=select,selection_method=hash,fields(ip_src),bucket=weight:5,actions=output:1,bucket=weight:3,watch_port:2,actions=output:2",
        ],
    );
    assert!(ok, "add-group: {err}");
    let a = agent.lock().unwrap();
    let g = &a.group_mods[0];
    assert_eq!(g.command, GroupModCommand::Add);
    assert_eq!(g.group.id, 7);
    assert_eq!(g.group.kind, GroupType::Select);
    assert_eq!(g.group.buckets.len(), 2);
    assert_eq!(g.group.buckets[0].weight, 5);
    assert_eq!(g.group.buckets[1].weight, 3);
    assert_eq!(g.group.buckets[1].watch_port, 2);
    assert_eq!(
        g.group.selection.method,
        flows::group::SelectionMethod::Hash
    );
    let fields: Vec<_> = g
        .group
        .selection
        .fields
        .iter()
        .map(|f| f.wire.name)
        .collect();
    assert_eq!(fields, ["ipv4_src"]);
    assert_eq!(
        g.group.buckets[1].actions,
        vec![Action::Output {
            port: 2,
            max_len: 0
        }]
    );
}

/// `ovs-ofctl --bundle` (OFPT_BUNDLE_* in 1.4/1.5, the ONF extension in
/// 1.3): all flows arrive in one atomic commit; when one of them fails the
/// table is left exactly as it was and ovs-ofctl reports the error.
#[test]
fn ovs_ofctl_bundle_add_flows_is_atomic_in_1_3_1_4_and_1_5() {
    if !have_ovs_ofctl() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("of15-bundle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("flows.txt");
    std::fs::write(
        &file,
        "priority=1,ip,actions=output:1\npriority=2,arp,actions=output:2\npriority=3,tcp,actions=output:3\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    for v in ["OpenFlow13", "OpenFlow14", "OpenFlow15"] {
        // Room for two flows: the third add fails, so nothing may stay.
        let agent = Arc::new(Mutex::new(MemAgent::with_capacity(2)));
        let port = serve(agent.clone());
        let target = format!("tcp:127.0.0.1:{port}");
        let (ok, _, err) = ofctl(v, &["--bundle", "add-flows", &target, file]);
        assert!(!ok, "{v}: the bundle must fail");
        assert!(err.contains("OFPFMFC_TABLE_FULL"), "{v}: {err}");
        {
            let a = agent.lock().unwrap();
            assert!(a.flows.is_empty(), "{v}: {:?}", a.flows);
            assert!(a.calls.contains(&"bundle_commit"), "{v}");
        }
        // With room, every flow arrives through one commit.
        agent.lock().unwrap().capacity = None;
        let (ok, _, err) = ofctl(v, &["--bundle", "add-flows", &target, file]);
        assert!(ok, "{v}: {err}");
        assert_eq!(agent.lock().unwrap().flows.len(), 3, "{v}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// From 1.5 on ovs-ofctl sends 32-bit register matches as OpenFlow 1.5
/// packet registers (two registers per 64-bit OXM); they decode to the
/// same registers, with their masks.
#[test]
fn ovs_ofctl_openflow15_register_matches_arrive_as_packet_registers() {
    if !have_ovs_ofctl() {
        return;
    }
    let agent = Arc::new(Mutex::new(MemAgent::default()));
    let port = serve(agent.clone());
    let target = format!("tcp:127.0.0.1:{port}");
    let (ok, _, err) = ofctl(
        "OpenFlow15",
        &[
            "add-flow",
            &target,
            "reg1=0x5,reg2=0x10/0xf0,reg3=7,actions=drop",
        ],
    );
    assert!(ok, "add-flow: {err}");
    let a = agent.lock().unwrap();
    let m = &a.flows[0].m;
    assert_eq!((m.key.regs[1], m.mask.regs[1]), (5, u32::MAX));
    assert_eq!((m.key.regs[2], m.mask.regs[2]), (0x10, 0xf0));
    assert_eq!((m.key.regs[3], m.mask.regs[3]), (7, u32::MAX));
    assert_eq!(m.mask.regs[0], 0);
    drop(a);
    // 1.5 also sends tcp_flags as a standard OXM field.
    let (ok, _, err) = ofctl(
        "OpenFlow15",
        &["add-flow", &target, "tcp,tcp_flags=+syn-ack,actions=drop"],
    );
    assert!(ok, "add-flow tcp_flags: {err}");
    let a = agent.lock().unwrap();
    let m = &a.flows[1].m;
    assert_eq!((m.key.tcp_flags, m.mask.tcp_flags), (0x002, 0x012));
}
