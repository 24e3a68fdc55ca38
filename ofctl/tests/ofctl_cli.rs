//! The ofctl binary against an in-memory OpenFlow switch
//! (openflow::testing) on loopback TCP and a unix socket.

use std::process::Command;
use std::sync::{Arc, Mutex};

use flows::Action;
use openflow::GroupModCommand;
use openflow::testing::{MemAgent, serve_tcp, serve_unix};

fn switch() -> (Arc<Mutex<MemAgent>>, String) {
    let agent = Arc::new(Mutex::new(MemAgent::default()));
    let port = serve_tcp(agent.clone()).unwrap();
    (agent, format!("tcp:127.0.0.1:{port}"))
}

fn ofctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ofctl"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = ofctl(args);
    assert_eq!(code, 0, "ofctl {args:?} failed: {err}");
    out
}

#[test]
fn add_flow_then_dump_flows_prints_ovs_ofctl_format_in_both_versions() {
    for v in ["OpenFlow13", "OpenFlow10"] {
        let (agent, t) = switch();
        ok(&[
            "-O",
            v,
            "add-flow",
            &t,
            "priority=10,ip,nw_dst=10.0.0.0/24,actions=output:2",
        ]);
        assert_eq!(agent.lock().unwrap().flows.len(), 1);
        let out = ok(&["-O", v, "dump-flows", &t]);
        let header = if v == "OpenFlow13" {
            "OFPST_FLOW reply (OF1.3) (xid=0x2):\n"
        } else {
            "OFPST_FLOW reply (xid=0x2):\n"
        };
        assert_eq!(
            out,
            format!(
                "{header} cookie=0x0, duration=1s, table=0, n_packets=0, n_bytes=0, priority=10,ip,nw_dst=10.0.0.0/24 actions=output:2\n"
            )
        );
        let out = ok(&["-O", v, "--no-stats", "dump-flows", &t]);
        assert_eq!(out, " priority=10,ip,nw_dst=10.0.0.0/24 actions=output:2\n");
        ok(&["-O", v, "del-flows", &t]);
        assert!(agent.lock().unwrap().flows.is_empty());
    }
}

#[test]
fn dump_flows_output_is_identical_to_ovs_ofctl() {
    if Command::new("ovs-ofctl").arg("--version").output().is_err() {
        return;
    }
    let (_agent, t) = switch();
    ok(&[
        "add-flow",
        &t,
        "table=2,priority=7,tcp,tp_dst=80,actions=mod_nw_dst:10.0.0.9,output:3",
    ]);
    ok(&[
        "add-flow",
        &t,
        "priority=9,in_port=1,actions=resubmit(,2),goto_table:3",
    ]);
    for (v, cmd) in ["OpenFlow13", "OpenFlow14", "OpenFlow15"]
        .into_iter()
        .flat_map(|v| {
            [
                "dump-flows",
                "show",
                "dump-tables",
                "dump-ports",
                "dump-ports-desc",
                "dump-aggregate",
            ]
            .map(|c| (v, c))
        })
    {
        let ours = ok(&["-O", v, cmd, &t]);
        let theirs = Command::new("ovs-ofctl")
            .args(["-O", v, cmd, &t])
            .output()
            .unwrap();
        let theirs = String::from_utf8_lossy(&theirs.stdout);
        if cmd == "show" {
            // ovs-ofctl's extra requests shift the last xid; compare the rest.
            let strip = |s: &str| {
                s.lines()
                    .map(|l| l.split(" (xid=").next().unwrap_or("").to_string())
                    .collect::<Vec<_>>()
            };
            assert_eq!(strip(&ours), strip(&theirs), "{v} {cmd}");
        } else {
            assert_eq!(ours, theirs, "{v} {cmd}");
        }
    }
}

#[test]
fn add_flows_file_sends_every_flow_and_one_barrier() {
    let (agent, t) = switch();
    let dir = tempfile::Builder::new().prefix("of-").tempdir().unwrap();
    let path = dir.path().join("flows.txt");
    let mut text = String::from("# comment\n\n");
    for i in 0..20_000u32 {
        text.push_str(&format!(
            "priority=100,ip,nw_dst=10.{}.{}.0/24,actions=output:{}\n",
            i / 256,
            i % 256,
            i % 7 + 1
        ));
    }
    std::fs::write(&path, text).unwrap();
    let (code, _, err) = ofctl(&["add-flows", &t, path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let a = agent.lock().unwrap();
    assert_eq!(a.flows.len(), 20_000);
    assert_eq!(a.calls.iter().filter(|c| **c == "barrier").count(), 1);
    assert_eq!(a.calls.last(), Some(&"barrier"));
    assert!(err.contains("20000 flows added"), "{err}");
}

#[test]
fn replace_flows_adds_missing_and_deletes_extra_flows() {
    let (agent, t) = switch();
    ok(&["add-flow", &t, "priority=1,actions=drop"]);
    ok(&["add-flow", &t, "priority=2,ip,actions=output:1"]);
    let dir = tempfile::Builder::new().prefix("of-").tempdir().unwrap();
    let path = dir.path().join("f.txt");
    std::fs::write(
        &path,
        "priority=2,ip,actions=output:1\npriority=3,arp,actions=NORMAL\n",
    )
    .unwrap();
    ok(&["replace-flows", &t, path.to_str().unwrap()]);
    let mut prios: Vec<u32> = agent
        .lock()
        .unwrap()
        .flows
        .iter()
        .map(|f| f.priority)
        .collect();
    prios.sort();
    assert_eq!(prios, vec![2, 3]);
    // diff-flows between the file and the switch finds nothing.
    let (code, out, _) = ofctl(&["diff-flows", path.to_str().unwrap(), &t]);
    assert_eq!((code, out.as_str()), (0, ""));
}

#[test]
fn show_dump_ports_desc_tables_and_aggregate_print_switch_state() {
    let (_agent, t) = switch();
    let out = ok(&["show", &t]);
    assert!(
        out.starts_with("OFPT_FEATURES_REPLY (OF1.3) (xid=0x2):"),
        "{out}"
    );
    assert!(out.contains("dpid:0000000000001234"), "{out}");
    assert!(out.contains(" 1(p1): addr:02:00:00:00:00:01"), "{out}");
    let out = ok(&["-O", "OpenFlow10", "show", &t]);
    assert!(
        out.starts_with("OFPT_FEATURES_REPLY (xid=0x2):") && out.contains("1(p1)"),
        "{out}"
    );
    assert!(ok(&["dump-ports-desc", &t]).contains("1(p1)"));
    assert!(ok(&["dump-tables", &t]).contains("table 0"));
    assert!(ok(&["dump-ports", &t]).contains("1 ports"));
    ok(&["add-flow", &t, "actions=drop"]);
    assert!(ok(&["dump-aggregate", &t]).contains("flow_count=1"));
}

#[test]
fn groups_packet_out_and_mod_port_reach_the_switch() {
    let (agent, t) = switch();
    ok(&[
        "add-group",
        &t,
        "group_id=1,type=select,bucket=weight:10,actions=output:1,bucket=weight:20,actions=output:2",
    ]);
    ok(&[
        "packet-out",
        &t,
        "in_port=1 packet=ffffffffffff000000000001 actions=output:2",
    ]);
    ok(&["mod-port", &t, "p1", "down"]);
    let a = agent.lock().unwrap();
    assert_eq!(a.group_mods[0].group.buckets[1].weight, 20);
    assert_eq!(
        a.packet_outs[0].actions,
        vec![Action::Output {
            port: 2,
            max_len: 0
        }]
    );
    assert_eq!(a.packet_outs[0].data.len(), 12);
    assert_eq!((a.port_mods[0].config, a.port_mods[0].mask), (1, 1));
}

/// The same commands, and every read command, in OpenFlow 1.4 and 1.5:
/// packet-outs carry their input port in 1.5's match, port mods their
/// advertised features in a property, groups 1.5's bucket ids.
#[test]
fn every_command_works_in_openflow14_and_openflow15() {
    for v in ["OpenFlow14", "OpenFlow15"] {
        let (agent, t) = switch();
        ok(&["-O", v, "add-flow", &t, "priority=5,ip,actions=output:1"]);
        ok(&["-O", v, "mod-flows", &t, "ip,actions=output:2"]);
        ok(&[
            "-O",
            v,
            "add-group",
            &t,
            "group_id=1,type=select,bucket=weight:10,actions=output:1,bucket=weight:20,actions=output:2",
        ]);
        ok(&[
            "-O",
            v,
            "mod-group",
            &t,
            "group_id=1,type=all,bucket=actions=output:3",
        ]);
        ok(&["-O", v, "del-groups", &t, "group_id=1"]);
        ok(&[
            "-O",
            v,
            "packet-out",
            &t,
            "in_port=1 packet=ffffffffffff000000000001 actions=output:2",
        ]);
        ok(&["-O", v, "mod-port", &t, "p1", "down"]);
        for cmd in [
            "show",
            "dump-flows",
            "dump-aggregate",
            "dump-ports",
            "dump-ports-desc",
            "dump-tables",
            "dump-groups",
        ] {
            let out = ok(&["-O", v, cmd, &t]);
            let tag = if v == "OpenFlow14" {
                "(OF1.4)"
            } else {
                "(OF1.5)"
            };
            assert!(out.contains(tag), "{v} {cmd}: {out}");
        }
        ok(&["-O", v, "del-flows", &t]);
        let a = agent.lock().unwrap();
        assert!(a.flows.is_empty(), "{v}");
        let cmds: Vec<_> = a.group_mods.iter().map(|g| g.command).collect();
        assert_eq!(
            cmds,
            [
                GroupModCommand::Add,
                GroupModCommand::Modify,
                GroupModCommand::Delete
            ],
            "{v}"
        );
        assert_eq!(a.group_mods[0].group.buckets[1].weight, 20, "{v}");
        assert_eq!(a.packet_outs[0].in_port, 1, "{v}");
        assert_eq!(a.packet_outs[0].data.len(), 12, "{v}");
        assert_eq!((a.port_mods[0].config, a.port_mods[0].mask), (1, 1), "{v}");
    }
}

#[test]
fn switch_errors_are_printed_decoded_and_exit_1() {
    let agent = Arc::new(Mutex::new(MemAgent::with_capacity(0)));
    let port = serve_tcp(agent).unwrap();
    let (code, _, err) = ofctl(&["add-flow", &format!("tcp:127.0.0.1:{port}"), "actions=drop"]);
    assert_eq!(code, 1);
    assert!(err.contains("OFPT_ERROR (OF1.3)"), "{err}");
    assert!(err.contains("OFPFMFC_TABLE_FULL"), "{err}");
    assert!(err.contains("OFPT_FLOW_MOD"), "{err}");
}

#[test]
fn bridge_names_use_the_mgmt_socket_and_missing_ones_fail_like_ovs_ofctl() {
    let dir = tempfile::Builder::new().prefix("of-").tempdir().unwrap();
    let agent = Arc::new(Mutex::new(MemAgent::default()));
    serve_unix(agent.clone(), &dir.path().join("br0.mgmt")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ofctl"))
        .env("FERROVS_RUNDIR", dir.path())
        .args(["add-flow", "br0", "actions=NORMAL"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(agent.lock().unwrap().flows.len(), 1);
    let out = Command::new(env!("CARGO_BIN_EXE_ofctl"))
        .env("FERROVS_RUNDIR", dir.path())
        .args(["dump-flows", "br9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ofctl: br9: failed to connect to socket (No such file or directory)\n"
    );
}

#[test]
fn bad_flow_syntax_is_reported_without_connecting() {
    let (code, _, err) = ofctl(&[
        "add-flow",
        "tcp:127.0.0.1:1",
        "priority=1,nw_dst=1.2.3.4,actions=drop",
    ]);
    assert_eq!(code, 1);
    assert!(err.starts_with("ofctl: "), "{err}");
}

/// `ofctl --bundle add-flows` sends one atomic bundle: when the switch
/// refuses one flow, none is installed and the error is printed; with room,
/// every flow arrives through a single commit and no barrier.
#[test]
fn bundle_add_flows_is_all_or_nothing() {
    let agent = Arc::new(Mutex::new(MemAgent::with_capacity(2)));
    let port = serve_tcp(agent.clone()).unwrap();
    let t = format!("tcp:127.0.0.1:{port}");
    let dir = tempfile::Builder::new().prefix("of-").tempdir().unwrap();
    let path = dir.path().join("flows.txt");
    std::fs::write(
        &path,
        "priority=1,ip,actions=output:1\npriority=2,arp,actions=output:2\npriority=3,tcp,actions=output:3\n",
    )
    .unwrap();
    let file = path.to_str().unwrap();
    for v in ["OpenFlow13", "OpenFlow14", "OpenFlow15"] {
        agent.lock().unwrap().capacity = Some(2);
        let (code, _, err) = ofctl(&["-O", v, "--bundle", "add-flows", &t, file]);
        assert_eq!(code, 1, "{v}");
        assert!(err.contains("OFPFMFC_TABLE_FULL"), "{v}: {err}");
        assert!(err.contains("OFPBFC_MSG_FAILED"), "{v}: {err}");
        assert!(agent.lock().unwrap().flows.is_empty(), "{v}");
        {
            let mut a = agent.lock().unwrap();
            a.capacity = None;
            a.calls.clear();
        }
        let (code, _, err) = ofctl(&["-O", v, "--bundle", "add-flows", &t, file]);
        assert_eq!(code, 0, "{v}: {err}");
        let mut a = agent.lock().unwrap();
        assert_eq!(a.flows.len(), 3, "{v}");
        assert_eq!(
            a.calls.iter().filter(|c| **c == "bundle_commit").count(),
            1,
            "{v}"
        );
        assert!(!a.calls.contains(&"barrier"), "{v}: {:?}", a.calls);
        a.flows.clear();
        a.calls.clear();
    }
    // Without -O, --bundle enables 1.4 as ovs-ofctl does.
    let (code, _, err) = ofctl(&["--bundle", "add-flows", &t, file]);
    assert_eq!(code, 0, "{err}");
}
