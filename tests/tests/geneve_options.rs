//! Geneve options as `tun_metadata` (OVN's option class 0x0102, type
//! 0x80, 4 bytes, critical) between ferrovs and stock Open vSwitch: two
//! "hypervisors" in namespaces joined by an underlay veth, set up as in
//! `tunnels_forwarding.rs`. Stock OVS sets `tun_metadata0` on what it
//! sends; ferrovs accepts the critical option only while its bridge's TLV
//! map knows it, and a capture checks the option bytes on the wire.
//!
//! Run under the e2e lock: `flock /tmp/ferrovs-e2e.lock cargo test -p
//! ferrovs-tests --test geneve_options`.

use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};
use ferrovs_tests::*;

use ferrovs_tests::tunnel_hosts::*;

fn diag(h: &Hv) -> String {
    match &h.sw {
        Sw::Ferrovs(s) => {
            let flows = s.appctl(&["dpctl/dump-flows"]).unwrap_or_default();
            let neigh = s.appctl(&["tnl/neigh/show"]).unwrap_or_default();
            let routes = s.appctl(&["ovs/route/show"]).unwrap_or_default();
            let log = s.log_text();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            format!(
                "{flows}\n{neigh}\n{routes}\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        }
        Sw::Ovs(o) => o.appctl(&["dpctl/dump-flows"]).unwrap_or_default(),
    }
}

const OVN_OPTION: &str = "{class=0x102,type=0x80,len=4}->tun_metadata0";

/// Geneve payloads (UDP data) of a pcap, hex, one line per packet.
fn geneve_headers(pcap: &[u8]) -> Result<Vec<String>> {
    let f = tempfile::Builder::new().suffix(".pcap").tempfile()?;
    std::fs::write(f.path(), pcap)?;
    let script = r#"
import sys
from scapy.all import rdpcap, UDP
for p in rdpcap(sys.argv[1]):
    print(bytes(p[UDP].payload)[:16].hex())
"#;
    let out = run(Command::new("python3").args(["-c", script]).arg(f.path()))?;
    Ok(out.lines().map(str::to_string).collect())
}

fn decap_drops(s: &Switch) -> String {
    s.appctl(&["tnl/drops/show"]).unwrap_or_default()
}

/// Stock OVS puts OVN's critical option on every packet it tunnels to
/// ferrovs. ferrovs, whose bridge maps that option to tun_metadata0,
/// decapsulates them and the VMs ping; without the mapping it drops them
/// as carrying an unknown critical option (counted), and adding the map
/// back restores the traffic.
#[test]
fn stock_ovs_geneve_option_is_accepted_only_while_ferrovs_maps_it() -> Result<()> {
    require!("ovs-vswitchd", "ovs-ofctl", "tcpdump", "python3");
    let t = "geneve";
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
    let Sw::Ovs(o) = &b.sw else {
        bail!("B is stock OVS")
    };
    let Sw::Ferrovs(fa) = &a.sw else {
        bail!("A is ferrovs")
    };
    b.ovs_underlay_route(6081)?;
    let mgmt = o.mgmt(&b.int);
    run(Command::new("ovs-ofctl").args(["add-tlv-map", &mgmt, OVN_OPTION]))?;
    run(Command::new("ovs-ofctl").args(["del-flows", &mgmt]))?;
    b.sw.add_flow(
        &b.int,
        "in_port=1,actions=set_field:0x1234->tun_metadata0,output:2",
    )?;
    b.sw.add_flow(&b.int, "in_port=2,actions=output:1")?;

    fa.ofctl(&["add-tlv-map", &a.int, OVN_OPTION])?;
    if !a.vm.ping_eventually(&b.vm_ip(), Duration::from_secs(30)) {
        bail!(
            "no ping with the option mapped\nA:\n{}\nB:\n{}",
            diag(&a),
            diag(&b)
        );
    }
    assert!(a.vm.ping(&b.vm_ip(), 5), "replies lost\n{}", diag(&a));
    assert!(
        decap_drops(fa).contains("unknown_critical_option=0"),
        "{}",
        decap_drops(fa)
    );

    // What OVS sent: Geneve with the C bit, 2 words of options, VNI 99,
    // then class 0x0102, type 0x80, length 1 word, 0x00001234.
    let pcap = a.ns.capture_pcap(
        &format!("{t}ua"),
        "udp dst port 6081 and src host 10.99.0.2",
        2,
        || {
            let _ = b.vm.ping(&a.vm_ip(), 2);
        },
    )?;
    let hdrs = geneve_headers(&pcap)?;
    assert!(!hdrs.is_empty(), "nothing captured");
    for h in &hdrs {
        assert_eq!(h, "02406558000063000102800100001234");
    }

    // Without the mapping, the critical option is unknown: dropped.
    fa.ofctl(&["del-tlv-map", &a.int])?;
    // ferrovs flushes its cached flows before it answers the TLV table
    // mod, so this holds at once (no sleep).
    assert!(
        !a.vm.ping(&b.vm_ip(), 3),
        "replies carry an unmapped critical option: they must be dropped"
    );
    assert!(
        !decap_drops(fa).contains("unknown_critical_option=0"),
        "{}",
        decap_drops(fa)
    );
    fa.ofctl(&["add-tlv-map", &a.int, OVN_OPTION])?;
    if !a.vm.ping_eventually(&b.vm_ip(), Duration::from_secs(10)) {
        bail!("no ping once the map is back\nA:\n{}", diag(&a));
    }
    Ok(())
}
