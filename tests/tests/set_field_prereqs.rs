//! Issue 13 item 7 (prerequisites): a flow whose set_field (or pop_vlan)
//! needs a header that its match does not establish is refused with
//! OFPBAC_MATCH_INCONSISTENT, and a set_field on `vlan_vid` whose value
//! lacks OFPVID_PRESENT with OFPBAC_BAD_SET_ARGUMENT, a push_vlan beyond the
//! two tags a flow key holds with OFPBAC_BAD_TAG, exactly where stock
//! OVS 3.1 refuses them. Both clients (stock `ovs-ofctl` and ferrovs's
//! `ofctl`) refuse most such flows before sending them, so the flow-mods
//! are built here byte by byte and sent to both switches as they are, in
//! OpenFlow 1.3 and 1.5; each answer (the error's type and code, or none)
//! must be the same, and so must the flow tables afterwards.

use std::process::Command;

use anyhow::Result;
use ferrovs_tests::*;

const BR: &str = "sfpb0";
const PORTS: [&str; 3] = ["sfpp1", "sfpp2", "sfpp3"];

/// One OXM basic-class TLV.
fn oxm(field: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, 0x00, field << 1, value.len() as u8];
    v.extend_from_slice(value);
    v
}

fn in_port(p: u32) -> Vec<u8> {
    oxm(0, &p.to_be_bytes())
}
fn eth_type(t: u16) -> Vec<u8> {
    oxm(5, &t.to_be_bytes())
}
fn vlan_vid(v: u16) -> Vec<u8> {
    oxm(6, &v.to_be_bytes())
}
fn vlan_pcp(p: u8) -> Vec<u8> {
    oxm(7, &[p])
}
fn ip_proto(p: u8) -> Vec<u8> {
    oxm(10, &[p])
}
fn ipv4_src(a: [u8; 4]) -> Vec<u8> {
    oxm(11, &a)
}
fn tcp_dst(p: u16) -> Vec<u8> {
    oxm(14, &p.to_be_bytes())
}

fn pad8(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(8) {
        v.push(0);
    }
}

fn set_field(f: Vec<u8>) -> Vec<u8> {
    let mut a = vec![0, 25, 0, 0];
    a.extend(f);
    pad8(&mut a);
    let len = a.len() as u16;
    a[2..4].copy_from_slice(&len.to_be_bytes());
    a
}
fn push_vlan() -> Vec<u8> {
    vec![0, 17, 0, 8, 0x81, 0x00, 0, 0]
}
fn pop_vlan() -> Vec<u8> {
    vec![0, 18, 0, 8, 0, 0, 0, 0]
}
fn output(p: u32) -> Vec<u8> {
    let mut a = vec![0, 0, 0, 16];
    a.extend(p.to_be_bytes());
    a.extend([0xff, 0xff, 0, 0, 0, 0, 0, 0]);
    a
}

/// An instruction (3 = write_actions, 4 = apply_actions) over `actions`.
fn instruction(kind: u16, actions: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = actions.concat();
    let mut i = kind.to_be_bytes().to_vec();
    i.extend(((8 + body.len()) as u16).to_be_bytes());
    i.extend([0; 4]);
    i.extend(body);
    i
}
fn apply(actions: &[Vec<u8>]) -> Vec<u8> {
    instruction(4, actions)
}
fn write(actions: &[Vec<u8>]) -> Vec<u8> {
    instruction(3, actions)
}

/// An OFPFC_ADD flow-mod in table 0 at `priority` (the same layout in 1.3
/// and 1.5, whose `importance` stays 0).
fn flow_mod(version: u8, priority: u16, fields: &[Vec<u8>], instr: Vec<u8>) -> Vec<u8> {
    let mut m = vec![version, 14, 0, 0, 0, 0, 0, 7];
    m.extend([0; 16]); // cookie, cookie_mask
    m.extend([0, 0, 0, 0, 0, 0]); // table, command, idle, hard
    m.extend(priority.to_be_bytes());
    m.extend([0xff; 12]); // buffer_id, out_port, out_group
    m.extend([0; 4]); // flags, importance
    let oxms: Vec<u8> = fields.concat();
    m.extend(1u16.to_be_bytes());
    m.extend(((4 + oxms.len()) as u16).to_be_bytes());
    m.extend(oxms);
    pad8(&mut m);
    m.extend(instr);
    let len = m.len() as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    m
}

/// (what, match TLVs, instructions, the error stock OVS answers).
type Case = (&'static str, Vec<Vec<u8>>, Vec<u8>, Option<(u16, u16)>);

/// OFPET_BAD_ACTION codes.
const MATCH_INCONSISTENT: Option<(u16, u16)> = Some((2, 10));
const BAD_SET_ARGUMENT: Option<(u16, u16)> = Some((2, 15));
const BAD_TAG: Option<(u16, u16)> = Some((2, 12));

#[test]
fn set_field_and_pop_vlan_prerequisites_are_enforced_like_stock_ovs() -> Result<()> {
    require!("ovs-vswitchd", "ovsdb-server", "ovs-ofctl");
    let (ovs, fv) = dummy_pair("sfp-ovs-", BR, &PORTS)?;
    let ovs_sock = ovs.dir().join(format!("{BR}.mgmt"));
    let fv_sock = fv.rundir().join(format!("{BR}.mgmt"));
    let tagged = vlan_vid(0x1003);
    // (match, instructions, what stock OVS 3.1 answers).
    let cases: Vec<Case> = vec![
        (
            "set_field vlan_vid, no VLAN matched",
            vec![in_port(1)],
            apply(&[set_field(vlan_vid(0x1005))]),
            MATCH_INCONSISTENT,
        ),
        (
            "set_field vlan_vid, OFPVID_NONE matched",
            vec![in_port(1), vlan_vid(0)],
            apply(&[set_field(vlan_vid(0x1005))]),
            MATCH_INCONSISTENT,
        ),
        (
            "set_field vlan_vid without OFPVID_PRESENT",
            vec![in_port(1), tagged.clone()],
            apply(&[set_field(vlan_vid(5))]),
            BAD_SET_ARGUMENT,
        ),
        (
            "set_field vlan_vid on a matched tag",
            vec![in_port(1), tagged.clone()],
            apply(&[set_field(vlan_vid(0x1005)), output(2)]),
            None,
        ),
        (
            "push_vlan then set_field vlan_vid",
            vec![in_port(2)],
            apply(&[push_vlan(), set_field(vlan_vid(0x1005)), output(3)]),
            None,
        ),
        (
            "push_vlan then set_field vlan_pcp",
            vec![in_port(3)],
            apply(&[push_vlan(), set_field(vlan_pcp(3)), output(1)]),
            None,
        ),
        (
            "set_field vlan_vid in write_actions, no VLAN matched",
            vec![in_port(1)],
            write(&[set_field(vlan_vid(0x1005))]),
            MATCH_INCONSISTENT,
        ),
        (
            "pop_vlan, no VLAN matched",
            vec![in_port(1)],
            apply(&[pop_vlan()]),
            MATCH_INCONSISTENT,
        ),
        (
            "pop_vlan twice on one matched tag",
            vec![in_port(2), tagged.clone()],
            apply(&[pop_vlan(), pop_vlan()]),
            MATCH_INCONSISTENT,
        ),
        (
            "set_field vlan_pcp after pop_vlan",
            vec![in_port(2), tagged.clone()],
            apply(&[pop_vlan(), set_field(vlan_pcp(3))]),
            MATCH_INCONSISTENT,
        ),
        (
            "pop_vlan on a matched tag",
            vec![in_port(2), tagged.clone()],
            apply(&[pop_vlan(), output(1)]),
            None,
        ),
        (
            "push_vlan twice then pop_vlan twice, no VLAN matched",
            vec![in_port(3)],
            apply(&[push_vlan(), push_vlan(), pop_vlan(), pop_vlan(), output(1)]),
            None,
        ),
        (
            "push_vlan twice onto a matched tag",
            vec![in_port(1), tagged.clone()],
            apply(&[push_vlan(), push_vlan(), output(2)]),
            BAD_TAG,
        ),
        (
            "push_vlan three times, no VLAN matched",
            vec![in_port(1)],
            apply(&[push_vlan(), push_vlan(), push_vlan(), output(2)]),
            BAD_TAG,
        ),
        (
            "push_vlan twice, pop_vlan, push_vlan on an untagged match",
            vec![in_port(1), vlan_vid(0)],
            apply(&[push_vlan(), push_vlan(), pop_vlan(), push_vlan(), output(3)]),
            None,
        ),
        (
            "push_vlan, pop_vlan twice on a matched tag",
            vec![in_port(3), tagged.clone()],
            apply(&[push_vlan(), pop_vlan(), pop_vlan(), output(2)]),
            None,
        ),
        (
            "push_vlan, pop_vlan twice, no VLAN matched",
            vec![in_port(3)],
            apply(&[push_vlan(), pop_vlan(), pop_vlan()]),
            MATCH_INCONSISTENT,
        ),
        (
            "set_field ipv4_src on ARP",
            vec![eth_type(0x0806)],
            apply(&[set_field(ipv4_src([10, 0, 0, 1]))]),
            MATCH_INCONSISTENT,
        ),
        (
            "set_field tcp_dst on IPv4 without ip_proto",
            vec![eth_type(0x0800)],
            apply(&[set_field(tcp_dst(80))]),
            MATCH_INCONSISTENT,
        ),
        (
            "set_field tcp_dst on TCP",
            vec![eth_type(0x0800), ip_proto(6)],
            apply(&[set_field(tcp_dst(80)), output(2)]),
            None,
        ),
    ];
    let mut diffs = Vec::new();
    let mut n = 0;
    for version in [4u8, 6] {
        for (i, (what, fields, instr, want)) in cases.iter().enumerate() {
            // Each accepted flow at its own priority, so none replaces another.
            let msg = flow_mod(version, 100 + i as u16, fields, instr.clone());
            let o = openflow_error(version, &ovs_sock, &msg)?;
            assert_eq!(
                o, *want,
                "stock OVS, OpenFlow wire version {version}: {what}"
            );
            let f = openflow_error(version, &fv_sock, &msg)?;
            if f != o {
                diffs.push(format!("  v{version} {what}: ovs {o:?}, ferrovs {f:?}"));
            }
            n += 1;
        }
    }
    assert!(diffs.is_empty(), "answers differ:\n{}", diffs.join("\n"));
    // The refused flows left nothing behind; the accepted ones are the same.
    let dump = |target: String| -> Result<Vec<String>> {
        let text = run(Command::new("ovs-ofctl").args([
            "-O",
            "OpenFlow13",
            "--no-stats",
            "dump-flows",
            &target,
        ]))?;
        let mut v: Vec<String> = text
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        v.sort();
        Ok(v)
    };
    let fv_target = format!("unix:{}", fv_sock.display());
    let o = dump(ovs.mgmt(BR))?;
    assert_eq!(
        dump(fv_target)?,
        o,
        "flow tables: ferrovs (left), stock OVS (right)"
    );
    assert_eq!(o.len(), 8, "stock OVS flows: {o:?}");
    eprintln!("{n} flow-mods answered as stock OVS answers them");
    Ok(())
}
