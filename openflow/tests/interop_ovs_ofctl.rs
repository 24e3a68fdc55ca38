//! Debian's `ovs-ofctl` against OfConnection + an in-memory agent over TCP
//! on 127.0.0.1.

mod support;

use std::process::Command;
use std::sync::{Arc, Mutex};

use flows::Action;
use flows::key::ethertype;
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
