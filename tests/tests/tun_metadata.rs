//! `tun_metadataN` as an OpenFlow field, with stock Open vSwitch 3.1 as the
//! oracle: the same flows (matches, `set_field`, `load`, `move` with bit
//! ranges), sent by stock `ovs-ofctl -O OpenFlow15` to stock `ovs-vswitchd`
//! (`--enable-dummy`, `type=dummy` ports) and to ferrovs, must be refused
//! with the same OpenFlow error while the bridge's TLV map lacks the field,
//! dump back identically once it is mapped, and give the same datapath
//! actions in `ofproto/trace`. A last test sends real Geneve packets with
//! OVN's option between ferrovs and stock OVS and steers them by
//! `tun_metadata0` matches on both sides.
//!
//! Run under the e2e lock: `flock /tmp/ferrovs-e2e.lock cargo test -p
//! ferrovs-tests --test tun_metadata`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};
use ferrovs_tests::tunnel_hosts::*;
use ferrovs_tests::*;

const BR: &str = "tmd0";
const PORTS: [&str; 4] = ["tmdp1", "tmdp2", "tmdp3", "tmdp4"];
/// OVN's option as tun_metadata0, and a second, 8-byte one.
const TLV_MAP: &str =
    "{class=0x102,type=0x80,len=4}->tun_metadata0,{class=0xffff,type=0x1,len=8}->tun_metadata1";

/// Stock OVS and ferrovs with the same bridge of four dummy ports
/// (OpenFlow ports 1..4), fail-mode secure.
struct Pair {
    ovs: StockOvs,
    fv: Switch,
    ovs_ports: BTreeMap<u32, String>,
    fv_ports: BTreeMap<u32, String>,
}

impl Pair {
    fn start() -> Result<Pair> {
        let (ovs, fv) = dummy_pair("tunmd-ovs-", BR, &PORTS)?;
        let mut pair = Pair {
            ovs,
            fv,
            ovs_ports: BTreeMap::new(),
            fv_ports: BTreeMap::new(),
        };
        if !wait_until(Duration::from_secs(20), || {
            pair.read_ports().is_ok_and(|()| {
                pair.ovs_ports.len() == PORTS.len() && pair.fv_ports.len() == PORTS.len()
            })
        }) {
            bail!("ports did not come up\n{}", pair.fv.log_text());
        }
        // ferrovs's LOCAL port is a kernel TAP: keep the kernel's chatter out.
        ip(&["link", "set", BR, "down"])?;
        Ok(pair)
    }

    fn read_ports(&mut self) -> Result<()> {
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
        self.fv_ports.clear();
        for line in self.fv.appctl(&["dpctl/show"])?.lines() {
            if let Some(rest) = line.trim().strip_prefix("port ")
                && let Some((no, rest)) = rest.split_once(": ")
                && let Some(name) = rest.split_whitespace().next()
                && PORTS.contains(&name)
            {
                self.fv_ports.insert(no.parse()?, name.to_string());
            }
        }
        Ok(())
    }

    fn targets(&self) -> [String; 2] {
        [
            self.ovs.mgmt(BR),
            format!(
                "unix:{}",
                self.fv.rundir().join(format!("{BR}.mgmt")).display()
            ),
        ]
    }

    /// Stock `ovs-ofctl -O OpenFlow15 ARGS TARGET REST` on each side:
    /// (ovs, ferrovs) outputs, stdout and stderr, and success.
    fn ofctl(&self, cmd: &str, rest: &[&str]) -> Result<[(bool, String, String); 2]> {
        let mut out = Vec::new();
        for t in self.targets() {
            let o = run_output(
                Command::new("ovs-ofctl")
                    .args(["-O", "OpenFlow15", cmd, &t])
                    .args(rest),
            )?;
            out.push((
                o.status.success(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            ));
        }
        let fv = out.pop().unwrap_or_default();
        let ovs = out.pop().unwrap_or_default();
        Ok([ovs, fv])
    }

    /// Datapath actions of one trace on each side, output ports named.
    fn trace(&self, flow: &str) -> Result<(String, String)> {
        let o = self.ovs.appctl(&["ofproto/trace", BR, flow])?;
        let f = self.fv.appctl(&["ofproto/trace", BR, flow])?;
        Ok((
            normalise(&dp_actions(&o)?, &self.ovs_ports),
            normalise(&dp_actions(&f)?, &self.fv_ports),
        ))
    }
}

fn dp_actions(trace: &str) -> Result<String> {
    trace
        .lines()
        .find_map(|l| l.strip_prefix("Datapath actions: "))
        .map(|s| s.trim().to_string())
        .ok_or_else(|| anyhow::anyhow!("no datapath actions in:\n{trace}"))
}

/// Output actions named by port; everything else as printed.
fn normalise(actions: &str, ports: &BTreeMap<u32, String>) -> String {
    actions
        .split(',')
        .map(|a| {
            a.parse::<u32>()
                .ok()
                .and_then(|n| ports.get(&n).cloned())
                .unwrap_or_else(|| a.to_string())
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The first OFPT_ERROR line of ovs-ofctl's stderr.
fn error_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.starts_with("OFPT_ERROR"))
        .unwrap_or("")
        .to_string()
}

/// Without a TLV map, every flow that names tun_metadata0 (a match, a
/// set_field, a load, a move from and to it) is refused by both switches
/// with the same OpenFlow error (NXFMFC_INVALID_TLV_FIELD), and once it is
/// mapped a move past the option's width gets the same error on both
/// (OFPBAC_BAD_SET_LEN).
#[test]
fn unmapped_tun_metadata_is_refused_with_stock_ovs_error() -> Result<()> {
    require!("ovs-vswitchd", "ovs-ofctl", "ovsdb-server");
    let pair = Pair::start()?;
    for flow in [
        "tun_metadata0=0x1234,actions=output:1",
        "actions=set_field:0x1->tun_metadata0,output:1",
        "actions=load:0x5->NXM_NX_TUN_METADATA0[0..15],output:1",
        "actions=move:NXM_NX_REG0[0..15]->NXM_NX_TUN_METADATA0[0..15],output:1",
        "actions=move:NXM_NX_TUN_METADATA0[0..15]->NXM_NX_REG0[0..15],output:1",
    ] {
        let [o, f] = pair.ofctl("add-flow", &[flow])?;
        assert!(
            !o.0 && !f.0,
            "{flow}: accepted (ovs {}, ferrovs {})",
            o.0,
            f.0
        );
        assert_eq!(error_line(&o.2), error_line(&f.2), "{flow}");
        assert!(
            error_line(&f.2).ends_with("NXFMFC_INVALID_TLV_FIELD"),
            "{flow}: {}",
            f.2
        );
    }
    // A packet-out naming an unmapped tun_metadata gets the same answer.
    let frame =
        "ffffffffffff00000000000108060001080006040001000000000001c0a80001000000000000c0a80002";
    let po =
        |field: &str| format!("in_port=1 packet={frame} actions=set_field:0x1->{field},output:2");
    let [o, f] = pair.ofctl("packet-out", &[&po("tun_metadata0")])?;
    assert_eq!(
        (o.0, error_line(&o.2)),
        (f.0, error_line(&f.2)),
        "packet-out"
    );
    let [o, f] = pair.ofctl("add-tlv-map", &[TLV_MAP])?;
    assert!(o.0 && f.0, "add-tlv-map: {} / {}", o.2, f.2);
    let [o, f] = pair.ofctl("packet-out", &[&po("tun_metadata0")])?;
    assert!(o.0 && f.0, "packet-out: {} / {}", o.2, f.2);
    let flow = "actions=move:NXM_NX_TUN_METADATA0[0..40]->NXM_NX_XXREG0[0..40]";
    let [o, f] = pair.ofctl("add-flow", &[flow])?;
    assert!(!o.0 && !f.0, "{flow}: accepted");
    assert_eq!(error_line(&o.2), error_line(&f.2), "{flow}");
    assert!(error_line(&f.2).ends_with("OFPBAC_BAD_SET_LEN"), "{}", f.2);
    // Nothing was installed on either side.
    let [o, f] = pair.ofctl("dump-flows", &[])?;
    assert!(o.0 && f.0, "dump-flows: {} / {}", o.2, f.2);
    assert!(!o.1.contains("actions="), "{}", o.1);
    assert!(!f.1.contains("actions="), "{}", f.1);
    Ok(())
}

/// A pipeline that matches on, sets, loads and moves tun_metadata0 (4
/// bytes) and tun_metadata1 (8 bytes): both switches dump it back the
/// same (stock ovs-ofctl, OpenFlow 1.5 and 1.3; ferrovs's ofctl too), and
/// `ofproto/trace` gives the same datapath actions for packets with and
/// without the options, so matches need the option present, masks apply
/// to the right bytes and writes land where later matches read them.
#[test]
fn tun_metadata_pipeline_dumps_and_traces_like_stock_ovs() -> Result<()> {
    require!("ovs-vswitchd", "ovs-ofctl", "ovsdb-server");
    let pair = Pair::start()?;
    let [o, f] = pair.ofctl("add-tlv-map", &[TLV_MAP])?;
    assert!(o.0 && f.0, "add-tlv-map: {} / {}", o.2, f.2);
    let flows = "\
table=0,priority=100,tun_metadata0=0x10002/0xffff,actions=output:2
table=0,priority=90,tun_metadata0=0/0xffff0000,actions=output:3
table=0,priority=80,tun_metadata1=0,actions=output:4
table=0,priority=70,tun_metadata0=0x70005,tun_metadata1=0x1122334455667788,actions=output:3
table=0,priority=1,actions=move:NXM_NX_TUN_METADATA0[16..30]->NXM_NX_REG1[0..14],set_field:0x5->tun_metadata1,load:0x3->NXM_NX_TUN_METADATA0[0..7],resubmit(,1)
table=1,priority=10,reg1=0x7,tun_metadata1=0x5,tun_metadata0=0x3/0xff,actions=output:3
table=1,priority=5,tun_metadata1=0x5,actions=move:NXM_NX_REG1[0..14]->NXM_NX_TUN_METADATA0[8..22],resubmit(,2)
table=1,priority=1,actions=drop
table=2,priority=10,tun_metadata0=0x800/0xff00,actions=output:2
table=2,priority=5,actions=set_field:0xab/0xff->tun_metadata1,resubmit(,3)
table=3,priority=5,tun_metadata1=0xab/0xff,actions=output:4
";
    let file = pair.fv.rundir().join("tunmd-flows.txt");
    std::fs::write(&file, flows)?;
    let file = file.to_string_lossy().into_owned();
    let [o, f] = pair.ofctl("add-flows", &[&file])?;
    assert!(o.0 && f.0, "add-flows: ovs {} / ferrovs {}", o.2, f.2);

    // Flow stats read back as installed, as stock ovs-ofctl prints them.
    for version in ["OpenFlow15", "OpenFlow13"] {
        let mut dumps = Vec::new();
        for t in pair.targets() {
            let text = run(Command::new("ovs-ofctl").args([
                "-O",
                version,
                "--no-stats",
                "dump-flows",
                &t,
            ]))?;
            let mut lines: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("OFPST_FLOW"))
                .map(String::from)
                .collect();
            lines.sort();
            dumps.push(lines);
        }
        assert_eq!(dumps[0], dumps[1], "{version} dump-flows: ovs vs ferrovs");
        assert_eq!(dumps[1].len(), flows.lines().count());
    }
    let own = pair.fv.ofctl(&["-O", "OpenFlow15", "dump-flows", BR])?;
    assert!(
        own.contains("tun_metadata0=0x2/0xffff")
            && own.contains("tun_metadata1=0x1122334455667788")
            && own.contains("set_field:0xab/0xff->tun_metadata1"),
        "{own}"
    );

    let packets = [
        "in_port=1",
        "in_port=1,tun_metadata0=0x10002",
        "in_port=1,tun_metadata0=0x1",
        "in_port=1,tun_metadata0=0x70005",
        "in_port=1,tun_metadata0=0x70005,tun_metadata1=0x1122334455667788",
        "in_port=1,tun_metadata0=0x70005,tun_metadata1=0x1",
        "in_port=1,tun_metadata1=0",
        "in_port=1,tun_metadata0=0x80000",
        "in_port=1,tun_metadata0=0x60000",
        "in_port=1,tun_metadata0=0x00090000",
    ];
    let mut seen = std::collections::BTreeSet::new();
    for p in packets {
        let (o, f) = pair.trace(p)?;
        assert_eq!(o, f, "datapath actions for {p}: ovs vs ferrovs");
        seen.insert(f);
    }
    // The packets really take different paths (not all one answer).
    assert!(seen.len() >= 3, "{seen:?}");

    // Flows use the mappings: neither switch lets them be deleted, until
    // the flows are gone.
    let [o, f] = pair.ofctl("del-tlv-map", &[])?;
    assert!(!o.0 && !f.0, "del-tlv-map with flows using it succeeded");
    assert_eq!(error_line(&o.2), error_line(&f.2));
    assert!(
        error_line(&f.2).ends_with("NXTTMFC_INVALID_TLV_DEL"),
        "{}",
        f.2
    );
    pair.ofctl("del-flows", &[])?;
    let [o, f] = pair.ofctl("del-tlv-map", &[])?;
    assert!(o.0 && f.0, "del-tlv-map: {} / {}", o.2, f.2);
    Ok(())
}

fn diag(h: &Hv) -> String {
    match &h.sw {
        Sw::Ferrovs(s) => {
            let flows = s.appctl(&["dpctl/dump-flows"]).unwrap_or_default();
            let of = s.ofctl(&["dump-flows", &h.int]).unwrap_or_default();
            format!("{of}\n{flows}")
        }
        Sw::Ovs(o) => o.appctl(&["dpctl/dump-flows"]).unwrap_or_default(),
    }
}

/// n_packets of the rule of `br` on `s` whose text contains `needle`.
fn n_packets(s: &Switch, br: &str, needle: &str) -> u64 {
    let text = s.ofctl(&["dump-flows", br]).unwrap_or_default();
    text.lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split("n_packets=").nth(1))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Real Geneve packets with OVN's option (class 0x0102, type 0x80) between
/// ferrovs (A) and stock OVS (B): B puts tun_metadata0=0x1234 on what its
/// VM sends, ferrovs puts 0x77 on what its VM sends, and each side only
/// delivers to its VM the packets whose option carries the other's value.
/// Then B switches to 0x5678, which ferrovs steers to another port; and
/// then to no option at all, which matches neither `tun_metadata0=0x5678`
/// nor `tun_metadata0=0` (a match needs the option present).
#[test]
fn geneve_option_steers_packets_by_tun_metadata_between_ferrovs_and_stock_ovs() -> Result<()> {
    require!("ovs-vswitchd", "ovs-ofctl", "ovsdb-server", "tcpdump");
    let t = "tmdg";
    let a = hypervisor(t, 'a', 1, false)?;
    let b = hypervisor(t, 'b', 2, true)?;
    a.vm.exec(&["ethtool", "-K", "eth0", "tx", "off"])?;
    underlay_link(t, &a, &b)?;
    a.configure(
        &format!("{t}ua"),
        "geneve",
        &["options:remote_ip=10.99.0.2", "options:key=99"],
    )?;
    b.configure(
        &format!("{t}ub"),
        "geneve",
        &["options:remote_ip=10.99.0.1", "options:key=99"],
    )?;
    let (Sw::Ferrovs(fa), Sw::Ovs(o)) = (&a.sw, &b.sw) else {
        bail!("A is ferrovs, B stock OVS");
    };
    b.ovs_underlay_route(6081)?;
    // A third port on A's integration bridge: a dummy sink.
    fa.vsctl(&[
        "add-port",
        &a.int,
        "tmdgsink",
        "--",
        "set",
        "Interface",
        "tmdgsink",
        "type=dummy",
        "ofport_request=3",
    ])?;
    let omgmt = o.mgmt(&b.int);
    let amgmt = format!(
        "unix:{}",
        fa.rundir().join(format!("{}.mgmt", a.int)).display()
    );
    let map = "{class=0x102,type=0x80,len=4}->tun_metadata0";
    for m in [&omgmt, &amgmt] {
        run(Command::new("ovs-ofctl").args(["-O", "OpenFlow15", "add-tlv-map", m, map]))?;
        run(Command::new("ovs-ofctl").args(["-O", "OpenFlow15", "del-flows", m]))?;
    }
    let add = |m: &str, flow: &str| {
        run(Command::new("ovs-ofctl").args(["-O", "OpenFlow15", "add-flow", m, flow]))
    };
    add(
        &omgmt,
        "in_port=1,actions=set_field:0x1234->tun_metadata0,output:2",
    )?;
    add(
        &omgmt,
        "priority=10,in_port=2,tun_metadata0=0x77,actions=output:1",
    )?;
    add(&omgmt, "priority=1,in_port=2,actions=drop")?;
    for flow in [
        "in_port=1,actions=set_field:0x77->tun_metadata0,output:2",
        "priority=10,in_port=2,tun_metadata0=0x1234,actions=output:1",
        "priority=10,in_port=2,tun_metadata0=0x5678,actions=output:3",
        "priority=8,in_port=2,tun_metadata0=0,actions=output:3",
        "priority=1,in_port=2,actions=drop",
    ] {
        add(&amgmt, flow)?;
    }
    if !a.vm.ping_eventually(&b.vm_ip(), Duration::from_secs(30)) {
        bail!(
            "no ping with the options\nA:\n{}\nB:\n{}",
            diag(&a),
            diag(&b)
        );
    }
    assert!(a.vm.ping(&b.vm_ip(), 3), "replies lost\n{}", diag(&a));
    assert!(
        n_packets(fa, &a.int, "tun_metadata0=0x1234") > 0,
        "{}",
        diag(&a)
    );

    // B's option changes: ferrovs steers the packets to the sink port.
    run(Command::new("ovs-ofctl").args([
        "-O",
        "OpenFlow15",
        "mod-flows",
        &omgmt,
        "in_port=1,actions=set_field:0x5678->tun_metadata0,output:2",
    ]))?;
    // Stock OVS applies it to its cached flows on revalidation.
    let before = n_packets(fa, &a.int, "tun_metadata0=0x5678");
    assert!(
        a.vm.ping_stops(&b.vm_ip(), Duration::from_secs(20)),
        "0x5678 reached A's VM\n{}",
        diag(&a)
    );
    let after = n_packets(fa, &a.int, "tun_metadata0=0x5678");
    assert!(after > before, "nothing steered to the sink\n{}", diag(&a));

    // No option at all: neither the 0x5678 nor the `=0` rule matches.
    run(Command::new("ovs-ofctl").args([
        "-O",
        "OpenFlow15",
        "mod-flows",
        &omgmt,
        "in_port=1,actions=output:2",
    ]))?;
    let zero = n_packets(fa, &a.int, "tun_metadata0=0 ");
    let drop_before = n_packets(fa, &a.int, "priority=1,in_port=2");
    assert!(
        a.vm.ping_stops(&b.vm_ip(), Duration::from_secs(20)),
        "optionless packets reached A's VM"
    );
    assert_eq!(
        n_packets(fa, &a.int, "tun_metadata0=0 "),
        zero,
        "{}",
        diag(&a)
    );
    assert!(
        n_packets(fa, &a.int, "priority=1,in_port=2") > drop_before,
        "{}",
        diag(&a)
    );
    Ok(())
}
