//! Differential test against stock Open vSwitch (issue 13's oracle): the
//! same flow tables, loaded with stock `ovs-ofctl` into stock
//! `ovs-vswitchd` (userspace datapath, `--enable-dummy`, `type=dummy`
//! ports, as OVS's own test suite runs it) and into ferrovs, must give the
//! same final datapath actions, header rewrites included, for every traced
//! packet (`ovs-appctl ofproto/trace` vs ferrovs's `appctl ofproto/trace`).
//!
//! Normalisation, and only this: datapath port numbers differ between the
//! two switches (OVS numbers its dummy datapath's ports 1..4, ferrovs
//! counts its bridge's internal port first), so each side's output
//! actions are renamed to the port's name (read from `ovs-appctl
//! dpif/show` and `appctl dpctl/show`), and the recirculation id in a
//! controller action's cookie (`recirc_id=N`, a counter in OVS, where
//! ferrovs keeps the state in the packet-in) is blanked. Everything else
//! in the "Datapath actions:" line is compared as printed. Learned flows are
//! compared as stock `ovs-ofctl dump-flows` prints them from each switch,
//! without their counters and ages.
//!
//! Packets that learn are traced with `-generate` on both sides (OVS
//! applies learning side effects only for a generated packet), in the same
//! order.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferrovs_tests::*;

const BR: &str = "nxa0";
const PORTS: [&str; 4] = ["nxap1", "nxap2", "nxap3", "nxap4"];

/// Both switches with the same bridge and the same four dummy ports
/// (OpenFlow ports 1..4), fail-mode secure (no flows: drop).
struct Pair {
    ovs: StockOvs,
    fv: Switch,
    /// Datapath port number → port name, per side.
    ovs_ports: BTreeMap<u32, String>,
    fv_ports: BTreeMap<u32, String>,
}

impl Pair {
    fn start() -> Result<Pair> {
        let (ovs, fv) = dummy_pair("nxactions-ovs-", BR, &PORTS)?;
        let mut pair = Pair {
            ovs,
            fv,
            ovs_ports: BTreeMap::new(),
            fv_ports: BTreeMap::new(),
        };
        let ok = wait_until(Duration::from_secs(20), || {
            pair.read_ports().is_ok_and(|()| {
                pair.ovs_ports.len() == PORTS.len() && pair.fv_ports.len() == PORTS.len()
            })
        });
        if !ok {
            bail!(
                "ports did not come up: ovs {:?}, ferrovs {:?}\n{}",
                pair.ovs_ports,
                pair.fv_ports,
                pair.fv.log_text()
            );
        }
        // ferrovs's LOCAL port is a kernel TAP (OVS's here is a dummy): the
        // kernel's own IPv6 chatter on it would reach the tables (and be
        // learned) at random moments. Take the device down.
        ip(&["link", "set", BR, "down"])?;
        Ok(pair)
    }

    /// Reads each side's datapath port numbers of the test ports.
    fn read_ports(&mut self) -> Result<()> {
        // OVS: "    nxap1 1/1: (dummy)" (name ofport/dpport).
        self.ovs_ports.clear();
        for line in self.ovs.appctl(&["dpif/show"])?.lines() {
            let mut it = line.split_whitespace();
            if let (Some(name), Some(nums)) = (it.next(), it.next())
                && PORTS.contains(&name)
                && let Some((_, dp)) = nums.trim_end_matches(':').split_once('/')
            {
                self.ovs_ports.insert(dp.parse()?, name.to_string());
            }
        }
        // ferrovs: "  port 2: nxap1 (dummy)".
        self.fv_ports.clear();
        for line in self.fv.appctl(&["dpctl/show"])?.lines() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("port ")
                && let Some((no, rest)) = rest.split_once(": ")
                && let Some(name) = rest.split_whitespace().next()
                && PORTS.contains(&name)
            {
                self.fv_ports.insert(no.parse()?, name.to_string());
            }
        }
        Ok(())
    }

    /// Replaces both tables with `flows` (stock ovs-ofctl, OpenFlow 1.3, on
    /// both sides).
    fn load(&self, flows: &str) -> Result<()> {
        let file = self.fv.rundir().join("nxactions-flows.txt");
        std::fs::write(&file, flows)?;
        let fv_mgmt = format!(
            "unix:{}",
            self.fv.rundir().join(format!("{BR}.mgmt")).display()
        );
        for target in [self.ovs.mgmt(BR), fv_mgmt] {
            run(Command::new("ovs-ofctl").args(["-O", "OpenFlow13", "del-flows", &target]))?;
            run(Command::new("ovs-ofctl")
                .args(["-O", "OpenFlow13", "add-flows", &target])
                .arg(&file))?;
        }
        Ok(())
    }

    /// The normalised datapath actions of one trace on each side.
    fn trace(&self, flow: &str, generate: bool) -> Result<(String, String)> {
        let mut args = vec!["ofproto/trace", BR, flow];
        if generate {
            args.push("-generate");
        }
        let o = self.ovs.appctl(&args)?;
        let f = self.fv.appctl(&args)?;
        Ok((
            normalise(&dp_actions(&o)?, &self.ovs_ports),
            normalise(&dp_actions(&f)?, &self.fv_ports),
        ))
    }

    /// Flows of `table` as stock ovs-ofctl dumps them, without counters.
    fn dump_table(&self, table: u8) -> Result<(Vec<String>, Vec<String>)> {
        let fv_mgmt = format!(
            "unix:{}",
            self.fv.rundir().join(format!("{BR}.mgmt")).display()
        );
        let mut out = Vec::new();
        for target in [self.ovs.mgmt(BR), fv_mgmt] {
            let text = run(Command::new("ovs-ofctl").args([
                "-O",
                "OpenFlow13",
                "--no-stats",
                "dump-flows",
                &target,
                &format!("table={table}"),
            ]))?;
            let mut lines: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("OFPST_FLOW"))
                .map(String::from)
                .collect();
            lines.sort();
            out.push(lines);
        }
        let fv = out.pop().unwrap_or_default();
        let ovs = out.pop().unwrap_or_default();
        Ok((ovs, fv))
    }
}

fn dp_actions(trace: &str) -> Result<String> {
    trace
        .lines()
        .find_map(|l| l.strip_prefix("Datapath actions: "))
        .map(|s| s.trim().to_string())
        .with_context(|| format!("no datapath actions in:\n{trace}"))
}

/// Replaces every output action (a bare number at the start, after `,` or
/// `(`, and before `,`, `)` or the end) by the port's name, and the number
/// of every `recirc_id=N` by `X`.
fn normalise(actions: &str, ports: &BTreeMap<u32, String>) -> String {
    let b = actions.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if actions[i..].starts_with("recirc_id=") {
            out.push_str("recirc_id=X");
            i += "recirc_id=".len();
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            continue;
        }
        if b[i].is_ascii_digit() && (i == 0 || matches!(b[i - 1], b',' | b'(')) {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let num = &actions[start..i];
            if i == b.len() || matches!(b[i], b',' | b')') {
                match num.parse::<u32>().ok().and_then(|n| ports.get(&n)) {
                    Some(name) => out.push_str(name),
                    None => {
                        out.push_str("port?");
                        out.push_str(num);
                    }
                }
            } else {
                out.push_str(num);
            }
            continue;
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

fn mac(n: u32) -> String {
    format!("00:00:00:00:{:02x}:{:02x}", (n >> 8) & 0xff, n & 0xff)
}

/// Traces every packet on both sides and fails listing every difference.
fn compare(pair: &Pair, what: &str, packets: &[(String, bool)]) -> Result<usize> {
    let mut diffs = Vec::new();
    for (flow, generate) in packets {
        let (o, f) = pair.trace(flow, *generate)?;
        if o != f {
            diffs.push(format!("  {flow}\n    ovs:     {o}\n    ferrovs: {f}"));
        }
    }
    if !diffs.is_empty() {
        bail!(
            "{what}: {} of {} packets differ:\n{}",
            diffs.len(),
            packets.len(),
            diffs.join("\n")
        );
    }
    Ok(packets.len())
}

fn pk(flow: impl Into<String>) -> (String, bool) {
    (flow.into(), false)
}

fn pk_gen(flow: impl Into<String>) -> (String, bool) {
    (flow.into(), true)
}

/// Learn-based MAC learning in tables (the classic Nicira example):
/// table 1 learns src MAC → in_port into table 10, table 3 forwards by it.
const LEARN_FLOWS: &str = "\
table=0,priority=0,actions=resubmit(,1)
table=1,actions=learn(table=10,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15]),resubmit(,2)
table=2,actions=resubmit(,10),resubmit(,3)
table=3,priority=99,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=output:1,output:2,output:3,output:4
table=3,priority=50,reg0=0,actions=output:1,output:2,output:3,output:4
table=3,priority=40,actions=output:NXM_NX_REG0[0..15]
";

/// Register moves, resubmit chains (with in_port changes), rewrites, VLANs.
const REG_FLOWS: &str = "\
table=0,priority=10,in_port=1,ip,actions=load:0x5->NXM_NX_REG1[],move:NXM_NX_REG1[0..7]->NXM_NX_REG2[8..15],move:NXM_OF_IP_DST[0..7]->NXM_NX_REG3[0..7],resubmit(,1),output:3
table=0,priority=10,in_port=2,actions=resubmit(4,1),mod_vlan_vid:10,output:1,resubmit(,2)
table=0,priority=5,actions=push_vlan:0x8100,set_field:0x1005->vlan_vid,output:4,pop_vlan,output:3
table=1,priority=20,reg2=0x500,reg3=7,actions=mod_dl_src:00:00:00:00:00:aa,output:2
table=1,priority=10,ip,reg2=0x500,actions=mod_nw_src:192.168.1.1,output:4
table=1,priority=10,in_port=4,actions=load:0x1->NXM_NX_REG4[],resubmit(,3)
table=2,udp,actions=mod_dl_src:00:00:00:00:00:f2,output:4
table=3,reg4=1,actions=set_field:00:00:00:00:00:cc->eth_dst,output:3
";

/// clone: rewrites inside are undone after; nested clones; outputs.
const CLONE_FLOWS: &str = "\
table=0,priority=10,in_port=1,actions=clone(mod_dl_dst:00:00:00:00:00:bb,output:2),output:3
table=0,priority=10,in_port=2,ip,actions=clone(mod_nw_dst:10.9.9.9,clone(mod_dl_src:00:00:00:00:00:dd,output:1),output:3),mod_dl_src:00:00:00:00:00:ee,output:4
table=0,priority=10,in_port=3,actions=clone(load:0x2->NXM_NX_REG0[],resubmit(,1)),resubmit(,1)
table=0,priority=10,in_port=4,actions=clone(push_vlan:0x8100,set_field:0x1007->vlan_vid,output:1),output:2
table=1,reg0=2,actions=output:1
table=1,reg0=0,actions=output:2
";

/// check_pkt_larger: the rest of the pipeline is translated for both sizes.
const CPL_FLOWS: &str = "\
table=0,priority=10,in_port=1,ip,actions=check_pkt_larger(200)->NXM_NX_REG0[0],resubmit(,5)
table=0,priority=10,in_port=2,actions=mod_dl_src:00:00:00:00:00:a2,check_pkt_larger(1500)->NXM_NX_REG1[3],output:1,resubmit(,6)
table=0,priority=10,in_port=3,actions=resubmit(,7),output:4
table=5,reg0=1,actions=output:2
table=5,reg0=0,actions=mod_dl_dst:00:00:00:00:00:b5,output:3
table=6,reg1=0x8,actions=output:3
table=6,reg1=0,actions=output:4
table=7,actions=check_pkt_larger(64)->NXM_NX_REG2[0],resubmit(,8)
table=8,reg2=1,actions=output:1
table=8,reg2=0,actions=output:2
";

/// The field stack and output to a register.
const STACK_FLOWS: &str = "\
table=0,priority=10,in_port=1,tcp,actions=push:NXM_OF_TCP_DST[],push:NXM_OF_IN_PORT[],load:0x3->NXM_NX_REG0[],pop:NXM_NX_REG1[0..15],pop:NXM_NX_REG2[0..15],resubmit(,1)
table=0,priority=10,in_port=2,actions=load:0x4->NXM_NX_REG5[0..15],output:NXM_NX_REG5[0..15],push:NXM_NX_REG5[0..15],pop:NXM_NX_REG6[16..31],move:NXM_NX_REG6[16..31]->NXM_NX_REG7[0..15],output:NXM_NX_REG7[0..15]
table=0,priority=10,in_port=3,actions=pop:NXM_NX_REG0[],output:1
table=1,reg1=1,reg2=80,actions=output:2
table=1,reg1=1,reg2=443,actions=output:3
table=1,priority=0,actions=output:4
";

/// multipath and bundle: the same hash and the same link choice as OVS.
const HASH_FLOWS: &str = "\
table=0,priority=10,in_port=1,tcp,actions=multipath(eth_src,50,hrw,4,0,NXM_NX_REG2[0..1]),resubmit(,6)
table=0,priority=10,in_port=1,udp,actions=multipath(eth_src,7,modulo_n,3,0,NXM_NX_REG2[0..1]),resubmit(,6)
table=0,priority=10,in_port=1,icmp,actions=multipath(eth_src,0,hash_threshold,4,0,NXM_NX_REG2[0..1]),resubmit(,6)
table=0,priority=10,in_port=1,arp,actions=multipath(eth_src,9,iter_hash,3,2,NXM_NX_REG2[0..1]),resubmit(,6)
table=0,priority=10,in_port=2,tcp,actions=bundle(eth_src,0,hrw,ofport,members:1,3,4)
table=0,priority=10,in_port=2,udp,actions=bundle(eth_src,5,active_backup,ofport,members:3,4)
table=0,priority=10,in_port=2,ip,actions=bundle_load(eth_src,3,hrw,ofport,NXM_NX_REG0[],members:1,3,4),output:NXM_NX_REG0[0..15]
table=0,priority=10,in_port=3,ip,actions=multipath(nw_src,50,hrw,4,0,NXM_NX_REG2[0..1]),resubmit(,6)
table=6,reg2=0,actions=output:1
table=6,reg2=1,actions=output:2
table=6,reg2=2,actions=output:4
table=6,reg2=3,actions=output:1,output:2
";

/// exit, note, write_actions/goto_table around them, set_queue-free.
const MISC_FLOWS: &str = "\
table=0,priority=10,in_port=1,actions=note:01.02.03,output:2,exit,output:3
table=0,priority=10,in_port=2,actions=resubmit(,1),output:1,write_actions(output:4)
table=0,priority=10,in_port=3,actions=resubmit(,2),output:4
table=1,actions=output:3,exit
table=2,actions=output:1,goto_table:3
table=3,actions=output:2
";

/// VLAN stacks up to the two tags a flow key holds, and pushes beyond them
/// (a packet that comes in tagged): what OVS's commit of the tags does.
const VLAN_STACK_FLOWS: &str = "\
table=0,priority=10,in_port=1,actions=push_vlan:0x88a8,set_field:0x1005->vlan_vid,push_vlan:0x8100,set_field:0x1006->vlan_vid,output:2
table=0,priority=10,in_port=2,actions=push_vlan:0x8100,set_field:0x1007->vlan_vid,output:3,pop_vlan,output:4
table=0,priority=10,in_port=3,actions=push_vlan:0x8100,push_vlan:0x8100,pop_vlan,output:1,pop_vlan,output:2
table=0,priority=10,in_port=4,actions=mod_vlan_vid:9,push_vlan:0x88a8,mod_vlan_pcp:5,output:1
";

/// The IPv6 flow label, and the MPLS entry push_mpls makes from an IP
/// packet (TC from the DSCP's low bits, TTL 64 in place of 0, as OVS).
const L3_FLOWS: &str = "\
table=0,priority=10,in_port=1,ipv6,actions=set_field:0x12345->ipv6_label,output:2
table=0,priority=10,in_port=2,ip,actions=push_mpls:0x8847,set_field:10->mpls_label,output:3
table=0,priority=10,in_port=3,ipv6,actions=set_field:0x54321->ipv6_label,set_field:fe80::9->ipv6_dst,output:2
";

/// DSCP and ECN rewrites: a masked set of the bits written (or matched).
const TOS_FLOWS: &str = "\
table=0,priority=10,in_port=1,ip,actions=mod_nw_tos:8,output:2
table=0,priority=10,in_port=2,ip,actions=mod_nw_ecn:1,output:3
table=0,priority=10,in_port=3,ipv6,actions=mod_nw_ecn:2,output:1
table=0,priority=10,in_port=4,ip,actions=mod_nw_ttl:9,mod_nw_tos:4,output:1,mod_nw_ecn:3,output:2
table=0,priority=10,in_port=4,ipv6,actions=mod_nw_tos:8,output:1,mod_nw_tos:4,output:2
";

/// Packets to the controller from everywhere a packet-in can start: a
/// CONTROLLER output, `controller(...)` with a reason, id, max_len and
/// userdata, a table-miss rule (reason 6 in OVS's datapath action), a
/// group bucket, the action set, and `controller(pause)` (no datapath
/// action in a trace: the continuation leaves from the slow path).
/// Group 5 (CONTROLLER, output:1) exists before these are loaded.
const CONTROLLER_FLOWS: &str = "\
table=0,cookie=0x1234,priority=10,in_port=1,tcp,actions=controller,output:2
table=0,cookie=0x55,priority=10,in_port=2,tcp,actions=controller(reason=no_match,id=7,max_len=100,userdata=01.02),resubmit(,1)
table=0,cookie=0x66,priority=10,in_port=3,tcp,actions=controller(pause),output:1
table=0,priority=10,in_port=4,tcp,actions=set_field:1->reg0,resubmit(,2)
table=0,priority=20,in_port=1,udp,actions=group:5
table=0,priority=20,in_port=2,udp,actions=write_actions(output:CONTROLLER),goto_table:3
table=0,priority=20,in_port=3,udp,actions=goto_table:4
table=0,cookie=0x77,priority=20,in_port=4,udp,actions=controller(reason=invalid_ttl),output:CONTROLLER,output:3
table=1,priority=0,actions=controller
table=2,priority=10,actions=controller(pause),output:1
table=3,priority=5,actions=resubmit(,4)
table=4,priority=0,actions=controller(reason=action,max_len=64)
";

#[test]
fn ofproto_trace_agrees_with_stock_ovs_on_nicira_action_pipelines() -> Result<()> {
    require!("ovs-vswitchd", "ovsdb-server", "ovs-ofctl", "ovs-appctl");
    let pair = Pair::start()?;
    let mut traced = 0;

    // 1. Learn-based MAC learning: learning packets generated on both sides.
    pair.load(LEARN_FLOWS)?;
    let mut pkts = Vec::new();
    for (src, dst, inp) in [
        (1, 2, 1),
        (2, 1, 2),
        (1, 2, 1),
        (3, 1, 3),
        (1, 3, 1),
        (2, 3, 2),
    ] {
        pkts.push(pk_gen(format!(
            "in_port={inp},dl_src={},dl_dst={}",
            mac(src),
            mac(dst)
        )));
    }
    pkts.push(pk(format!(
        "in_port=4,dl_src={},dl_dst=ff:ff:ff:ff:ff:ff",
        mac(4)
    )));
    pkts.push(pk(format!("in_port=4,dl_src={},dl_dst={}", mac(4), mac(9))));
    pkts.push(pk(format!(
        "in_port=4,dl_src={},dl_dst={},dl_vlan=5",
        mac(4),
        mac(2)
    )));
    // A station moves from port 1 to port 4.
    pkts.push(pk_gen(format!(
        "in_port=4,dl_src={},dl_dst={}",
        mac(1),
        mac(2)
    )));
    pkts.push(pk(format!("in_port=2,dl_src={},dl_dst={}", mac(2), mac(1))));
    traced += compare(&pair, "learn", &pkts)?;
    let (o, f) = pair.dump_table(10)?;
    assert_eq!(o.len(), 3, "OVS learned three MACs: {o:?}");
    assert_eq!(f, o, "learned flows differ");

    // 2. Registers, moves, resubmit chains and rewrites.
    pair.load(REG_FLOWS)?;
    let mut pkts = Vec::new();
    for dst in ["10.0.0.7", "10.0.0.8"] {
        pkts.push(pk(format!(
            "in_port=1,tcp,nw_src=10.0.0.1,nw_dst={dst},tcp_src=1,tcp_dst=80"
        )));
    }
    pkts.push(pk(
        "in_port=2,udp,nw_src=10.0.0.1,nw_dst=10.0.0.2,udp_dst=53",
    ));
    pkts.push(pk("in_port=2,arp"));
    pkts.push(pk("in_port=3,tcp,tcp_dst=22"));
    pkts.push(pk("in_port=4,dl_vlan=9,ip"));
    traced += compare(&pair, "registers and resubmit", &pkts)?;

    // 3. clone.
    pair.load(CLONE_FLOWS)?;
    let pkts: Vec<_> = [
        "in_port=1,tcp,tcp_dst=80",
        "in_port=2,tcp,nw_dst=10.0.0.2,tcp_dst=80",
        "in_port=2,arp",
        "in_port=3,ip",
        "in_port=4,ip",
        "in_port=4,ip,dl_vlan=3",
    ]
    .into_iter()
    .map(pk)
    .collect();
    traced += compare(&pair, "clone", &pkts)?;

    // 4. check_pkt_larger.
    pair.load(CPL_FLOWS)?;
    let pkts: Vec<_> = [
        "in_port=1,ip",
        "in_port=1,arp",
        "in_port=2,tcp",
        "in_port=3,udp",
    ]
    .into_iter()
    .map(pk)
    .collect();
    traced += compare(&pair, "check_pkt_larger", &pkts)?;

    // 5. push/pop and output:reg.
    pair.load(STACK_FLOWS)?;
    let pkts: Vec<_> = [
        "in_port=1,tcp,tcp_dst=80",
        "in_port=1,tcp,tcp_dst=443",
        "in_port=1,tcp,tcp_dst=22",
        "in_port=2,ip",
        "in_port=3,ip",
    ]
    .into_iter()
    .map(pk)
    .collect();
    traced += compare(&pair, "stack and output:reg", &pkts)?;

    // 6. multipath and bundle over many source addresses.
    pair.load(HASH_FLOWS)?;
    let mut pkts = Vec::new();
    for n in 1..=24u32 {
        let src = mac(n * 37 + 1);
        for proto in ["tcp", "udp", "icmp", "arp"] {
            pkts.push(pk(format!("in_port=1,{proto},dl_src={src}")));
        }
        for proto in ["tcp", "udp", "ip"] {
            pkts.push(pk(format!("in_port=2,{proto},dl_src={src}")));
        }
        pkts.push(pk(format!("in_port=3,ip,nw_src=10.1.{}.{}", n, n * 7)));
    }
    traced += compare(&pair, "multipath and bundle", &pkts)?;

    // 7. exit, note, the action set.
    pair.load(MISC_FLOWS)?;
    let pkts: Vec<_> = ["in_port=1,ip", "in_port=2,ip", "in_port=3,ip"]
        .into_iter()
        .map(pk)
        .collect();
    traced += compare(&pair, "exit and action set", &pkts)?;

    // 8. VLAN stacks, from untagged and tagged packets.
    pair.load(VLAN_STACK_FLOWS)?;
    let mut pkts = Vec::new();
    for p in 1..=4 {
        pkts.push(pk(format!("in_port={p},ip")));
        pkts.push(pk(format!("in_port={p},ip,dl_vlan=3,dl_vlan_pcp=2")));
    }
    traced += compare(&pair, "VLAN stacks", &pkts)?;

    // 9. The IPv6 flow label and push_mpls from IP.
    pair.load(L3_FLOWS)?;
    let pkts: Vec<_> = [
        "in_port=1,udp6",
        "in_port=1,tcp6,ipv6_label=0x5",
        "in_port=1,tcp6,ipv6_label=0x12345",
        "in_port=2,tcp,nw_ttl=0",
        "in_port=2,tcp,nw_ttl=9,nw_tos=0x44",
        "in_port=2,udp,nw_tos=0xe0,nw_ttl=200",
        "in_port=3,udp6,nw_ttl=3",
    ]
    .into_iter()
    .map(pk)
    .collect();
    traced += compare(&pair, "IPv6 flow label and push_mpls", &pkts)?;

    // 10. DSCP and ECN.
    pair.load(TOS_FLOWS)?;
    let pkts: Vec<_> = [
        "in_port=1,udp,nw_tos=0x4",
        "in_port=2,udp,nw_tos=0x20",
        "in_port=3,udp6,nw_tos=0x20",
        "in_port=4,tcp,nw_ttl=3",
        "in_port=4,udp6",
    ]
    .into_iter()
    .map(pk)
    .collect();
    traced += compare(&pair, "DSCP and ECN", &pkts)?;

    // 11. Packet-ins: each printed as OVS prints its controller action.
    let fv_mgmt = format!(
        "unix:{}",
        pair.fv.rundir().join(format!("{BR}.mgmt")).display()
    );
    for target in [pair.ovs.mgmt(BR), fv_mgmt] {
        run(Command::new("ovs-ofctl").args([
            "-O",
            "OpenFlow13",
            "add-group",
            &target,
            "group_id=5,type=all,bucket=actions=output:CONTROLLER,bucket=actions=output:1",
        ]))?;
    }
    pair.load(CONTROLLER_FLOWS)?;
    let mut pkts = Vec::new();
    for p in 1..=4 {
        pkts.push(pk(format!("in_port={p},tcp")));
        pkts.push(pk(format!("in_port={p},udp")));
    }
    traced += compare(&pair, "packet-ins", &pkts)?;
    // The comparison is not vacuous: the controller actions are there.
    let (o, _) = pair.trace("in_port=2,tcp", false)?;
    assert!(o.contains("controller_id=7"), "{o}");

    eprintln!("{traced} packets traced, datapath actions identical to stock OVS");
    Ok(())
}

#[test]
fn normalise_names_only_output_ports() {
    let ports: BTreeMap<u32, String> = [(1, "a".to_string()), (2, "b".to_string())].into();
    assert_eq!(
        normalise(
            "set(eth(src=00:00:00:00:00:01)),1,check_pkt_len(size=200,gt(2),le(push_vlan(vid=1,pcp=0),1))",
            &ports
        ),
        "set(eth(src=00:00:00:00:00:01)),a,check_pkt_len(size=200,gt(b),le(push_vlan(vid=1,pcp=0),a))"
    );
    assert_eq!(normalise("drop", &ports), "drop");
    assert_eq!(
        normalise(
            "userspace(pid=0,controller(reason=1,dont_send=1,continuation=0,recirc_id=12,rule_cookie=0x1,controller_id=0,max_len=65535)),2",
            &ports
        ),
        "userspace(pid=0,controller(reason=1,dont_send=1,continuation=0,recirc_id=X,rule_cookie=0x1,controller_id=0,max_len=65535)),b"
    );
    assert_eq!(normalise("7", &ports), "port?7");
}
