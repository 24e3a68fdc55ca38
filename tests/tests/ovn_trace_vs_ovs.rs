//! Issue 13's oracle on a recorded OVN pipeline: stock `ovn-controller`
//! (OVN 23.03) programs a logical switch pair joined by a logical router,
//! with an allow-related ACL and a drop ACL (so the table has its ct()
//! stages), once into ferrovs and once into stock `ovs-vswitchd`
//! (userspace, `--enable-dummy`, dummy ports). Once both flow tables are
//! equal, the same packets are traced on both (`ofproto/trace`, with
//! `--ct-next` for the conntrack passes) and every pass's datapath actions
//! must be the same.
//!
//! Normalisation, and only this: output ports are renamed from datapath
//! port numbers to port names (the two datapaths number them differently),
//! recirculation ids are blanked (also in a controller action's cookie,
//! with the cookie of the rule that sent it: each side's OVN central names
//! rules after its own logical flows), conntrack zones (numbered by
//! ovn-controller in the order it meets datapaths and ports) are renamed
//! in order of first appearance in each trace, and `nat(src)` is dropped
//! from ct commits where ferrovs does not report `ct_zero_snat` (OVN
//! writes it only for a datapath that does: the flow tables differ there
//! by design, see `ovn_single_host.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};
use ferrovs_tests::ovn::{
    OvnCentral, central, chassis_settings, lsp_mac, normalise_flows, openflow_errors,
    reports_zero_snat, routed_pair, start_controller, without_zero_snat,
};
use ferrovs_tests::*;

/// `routed_pair` (ls-a with lp1 10.94.1.1, ls-b with lp2 10.94.2.1, router
/// lr at .254 with MACs 00:00:00:00:94:f1/f2), plus lp3 (10.94.1.3) on
/// ls-a, and two to-lport ACLs on ls-a: TCP to port 22 dropped, TCP to
/// port 80 allowed with connection tracking (allow-related).
fn routed_pair_with_acls(ovn: &OvnCentral) -> Result<()> {
    routed_pair(ovn)?;
    ovn.nbctl(&[
        "lsp-add",
        "ls-a",
        "lp3",
        "--",
        "lsp-set-addresses",
        "lp3",
        &format!("{} 10.94.1.3", lsp_mac(3)),
    ])?;
    ovn.nbctl(&[
        "acl-add",
        "ls-a",
        "to-lport",
        "1002",
        "ip4 && tcp && tcp.dst == 22",
        "drop",
    ])?;
    ovn.nbctl(&[
        "acl-add",
        "ls-a",
        "to-lport",
        "1001",
        "ip4 && tcp && tcp.dst == 80",
        "allow-related",
    ])?;
    Ok(())
}

/// The three VM ports, OpenFlow ports 1..3, bound to lp1..lp3.
const N_PORTS: u32 = 3;

/// One switch under its own OVN central and ovn-controller.
struct OvnSide {
    /// Datapath port number → port name.
    ports: BTreeMap<String, String>,
    mgmt: String,
    log: PathBuf,
    // Drop order: the controller before its databases.
    _controller: ChildGuard,
    _ovn: OvnCentral,
}

/// Starts OVN for `routed_pair_with_acls` against one switch (`vsctl` runs
/// its vsctl, `db` is its DB remote, `rundir` holds `<br>.mgmt`), adds the
/// dummy ports `ports` bound to lp1..lp3, and waits for `ovn-installed`.
fn ovn_side(
    vsctl: &dyn Fn(&[&str]) -> Result<String>,
    db: &str,
    rundir: &Path,
    br: &str,
    ports: &[String],
) -> Result<OvnSide> {
    let ovn_dir = rundir.join("ovn");
    let ovn = central(&ovn_dir)?;
    let settings = chassis_settings("hv1", &ovn.sb_remote(), br);
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    vsctl(&settings)?;
    let (controller, log) = start_controller(db, rundir, &ovn_dir)?;
    routed_pair_with_acls(&ovn)?;
    if !wait_until(Duration::from_secs(30), || {
        vsctl(&["br-exists", br]).is_ok()
    }) {
        bail!("ovn-controller did not create {br}");
    }
    for (i, p) in ports.iter().enumerate() {
        vsctl(&[
            "add-port",
            br,
            p,
            "--",
            "set",
            "Interface",
            p,
            "type=dummy",
            &format!("external_ids:iface-id=lp{}", i + 1),
            &format!("ofport_request={}", i + 1),
        ])?;
    }
    for p in ports {
        if !wait_until(Duration::from_secs(30), || {
            vsctl(&["get", "Interface", p, "external_ids"])
                .map(|s| s.contains("ovn-installed=\"true\""))
                .unwrap_or(false)
        }) {
            bail!(
                "{p} never got ovn-installed:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
    }
    Ok(OvnSide {
        ports: BTreeMap::new(),
        mgmt: format!("unix:{}", rundir.join(format!("{br}.mgmt")).display()),
        log,
        _controller: controller,
        _ovn: ovn,
    })
}

fn dump(mgmt: &str) -> Result<String> {
    run(Command::new("ovs-ofctl").args(["-O", "OpenFlow15", "dump-flows", mgmt]))
}

/// Every "Datapath actions:" line of a trace (one per pass), normalised as
/// the module comment says.
fn trace_actions(trace: &str, ports: &BTreeMap<String, String>, strip_nat: bool) -> Vec<String> {
    let mut zones: Vec<String> = Vec::new();
    trace
        .lines()
        .filter_map(|l| l.strip_prefix("Datapath actions: "))
        .map(|a| {
            let a = if strip_nat {
                without_zero_snat(a.trim())
            } else {
                a.trim().to_string()
            };
            split_top(&a)
                .into_iter()
                .map(|t| {
                    if let Some(name) = ports.get(t) {
                        name.clone()
                    } else if t.starts_with("recirc(") {
                        "recirc(X)".to_string()
                    } else if t.starts_with("userspace(") {
                        blank(&blank(t, "recirc_id="), "rule_cookie=")
                    } else {
                        rename_zones(t, &mut zones)
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

/// `action` with the value after each `key` (up to the next `,` or `)`)
/// replaced by `X`.
fn blank(action: &str, key: &str) -> String {
    let mut out = String::new();
    let mut rest = action;
    while let Some(at) = rest.find(key) {
        out.push_str(&rest[..at + key.len()]);
        out.push('X');
        let tail = &rest[at + key.len()..];
        rest = &tail[tail.find([',', ')']).unwrap_or(tail.len())..];
    }
    out.push_str(rest);
    out
}

/// Top-level comma-separated actions (commas inside parentheses do not
/// split).
fn split_top(acts: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in acts.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&acts[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&acts[start..]);
    out
}

/// `zone=N` → `zone=ZK`, K the rank of N's first appearance in `seen`.
fn rename_zones(action: &str, seen: &mut Vec<String>) -> String {
    let mut out = String::new();
    let mut rest = action;
    while let Some(at) = rest.find("zone=") {
        out.push_str(&rest[..at + 5]);
        let tail = &rest[at + 5..];
        let end = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        if end == 0 {
            rest = tail;
            continue;
        }
        let n = &tail[..end];
        let k = match seen.iter().position(|z| z == n) {
            Some(k) => k,
            None => {
                seen.push(n.to_string());
                seen.len() - 1
            }
        };
        out.push_str(&format!("Z{k}"));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn rename_zones_numbers_zones_by_first_appearance() {
    let ports: BTreeMap<String, String> = [("2".to_string(), "p1".to_string())].into();
    let t = "Datapath actions: ct(zone=7),recirc(0x3)\nx\nDatapath actions: ct(commit,zone=9,mark=0x1/0x1,nat(src)),ct(zone=7),2\n";
    assert_eq!(
        trace_actions(t, &ports, true),
        [
            "ct(zone=Z0),recirc(X)",
            "ct(commit,zone=Z1,mark=0x1/0x1),ct(zone=Z0),p1"
        ]
    );
    let t = "Datapath actions: userspace(pid=0,controller(reason=1,dont_send=1,continuation=0,recirc_id=4,rule_cookie=0xab,controller_id=0,max_len=65535)),2\n";
    assert_eq!(
        trace_actions(t, &ports, false),
        [
            "userspace(pid=0,controller(reason=1,dont_send=1,continuation=0,recirc_id=X,rule_cookie=X,controller_id=0,max_len=65535)),p1"
        ]
    );
}

/// Datapath port numbers of `ports` on stock OVS (`dpif/show`: "name
/// ofport/dpport:") and on ferrovs (`dpctl/show`: "port N: name").
fn ovs_ports(ovs: &StockOvs, names: &[String]) -> Result<BTreeMap<String, String>> {
    let mut o = BTreeMap::new();
    for line in ovs.appctl(&["dpif/show"])?.lines() {
        let mut it = line.split_whitespace();
        if let (Some(name), Some(nums)) = (it.next(), it.next())
            && names.iter().any(|n| n == name)
            && let Some((_, dp)) = nums.trim_end_matches(':').split_once('/')
        {
            o.insert(dp.to_string(), name.to_string());
        }
    }
    Ok(o)
}

fn fv_ports(fv: &Switch, names: &[String]) -> Result<BTreeMap<String, String>> {
    let mut f = BTreeMap::new();
    for line in fv.appctl(&["dpctl/show"])?.lines() {
        if let Some(rest) = line.trim().strip_prefix("port ")
            && let Some((no, rest)) = rest.split_once(": ")
            && let Some(name) = rest.split_whitespace().next()
            && names.iter().any(|n| n == name)
        {
            f.insert(no.to_string(), name.to_string());
        }
    }
    Ok(f)
}

#[test]
fn ofproto_trace_agrees_with_stock_ovs_on_ovn_router_and_acl_pipeline() -> Result<()> {
    require!(
        "ovn-controller",
        "ovn-northd",
        "ovn-nbctl",
        "ovsdb-server",
        "ovsdb-tool",
        "ovs-vswitchd",
        "ovs-ofctl",
        "ovs-appctl"
    );
    let tag = unique_tag();
    let br = format!("{tag}i");
    let names: Vec<String> = (1..=N_PORTS).map(|i| format!("{tag}p{i}")).collect();

    let fv = Switch::start()?;
    let mut ours = ovn_side(&|a| fv.vsctl(a), &fv.db_remote(), fv.rundir(), &br, &names)?;
    let ovs = StockOvs::start("ovn-trace-oracle-")?;
    let ovs_db = format!("unix:{}", ovs.dir().join("db.sock").display());
    let mut theirs = ovn_side(&|a| ovs.vsctl(a), &ovs_db, ovs.dir(), &br, &names)?;
    let strip_nat = !reports_zero_snat(&fv.vsctl(&["list", "Datapath"])?);

    // Both controllers settle on the same table.
    let tables = || -> Result<(Vec<String>, Vec<String>)> {
        let o = normalise_flows(&dump(&ours.mgmt)?);
        let mut t = normalise_flows(&dump(&theirs.mgmt)?);
        if strip_nat {
            t = t.iter().map(|l| without_zero_snat(l)).collect();
            t.sort();
        }
        Ok((o, t))
    };
    let mut last = (Vec::new(), Vec::new());
    let same = wait_until(Duration::from_secs(30), || {
        tables().is_ok_and(|t| {
            last = t;
            last.1.len() > 100 && last.0 == last.1
        })
    });
    if !same {
        let (o, t) = &last;
        bail!(
            "flow tables never became equal\nonly on stock OVS:\n{}\nonly on ferrovs:\n{}",
            t.iter()
                .filter(|l| !o.contains(l))
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
            o.iter()
                .filter(|l| !t.contains(l))
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let flows = last.0.len();
    let ok = wait_until(Duration::from_secs(20), || {
        ours.ports = fv_ports(&fv, &names).unwrap_or_default();
        theirs.ports = ovs_ports(&ovs, &names).unwrap_or_default();
        ours.ports.len() == names.len() && theirs.ports.len() == names.len()
    });
    assert!(ok, "ports: {:?} {:?}", ours.ports, theirs.ports);

    let (m1, m2, m3) = (lsp_mac(1), lsp_mac(2), lsp_mac(3));
    let (r1, r2) = ("00:00:00:00:94:f1", "00:00:00:00:94:f2");
    let tcp13 = |dst: u16| {
        format!(
            "in_port=1,tcp,dl_src={m1},dl_dst={m3},nw_src=10.94.1.1,nw_dst=10.94.1.3,nw_ttl=64,tcp_src=40000,tcp_dst={dst}"
        )
    };
    let new: &[&str] = &["--ct-next", "trk,new", "--ct-next", "trk,new"];
    let est: &[&str] = &["--ct-next", "trk,est", "--ct-next", "trk,est"];
    let cases: Vec<(String, &[&str])> = vec![
        // ARP request for the router's address: OVN's router answers it.
        (
            format!(
                "in_port=1,arp,dl_src={m1},dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.94.1.1,arp_tpa=10.94.1.254,arp_sha={m1},arp_tha=00:00:00:00:00:00"
            ),
            &[],
        ),
        // ARP request for another VM: the switch's ARP responder.
        (
            format!(
                "in_port=1,arp,dl_src={m1},dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.94.1.1,arp_tpa=10.94.1.3,arp_sha={m1},arp_tha=00:00:00:00:00:00"
            ),
            &[],
        ),
        // ARP reply between VMs, unicast.
        (
            format!(
                "in_port=3,arp,dl_src={m3},dl_dst={m1},arp_op=2,arp_spa=10.94.1.3,arp_tpa=10.94.1.1,arp_sha={m3},arp_tha={m1}"
            ),
            &[],
        ),
        // ARP request for an address no port owns: flooded, and also
        // sent to ovn-controller (the router learns the sender).
        (
            format!(
                "in_port=1,arp,dl_src={m1},dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.94.1.1,arp_tpa=10.94.1.9,arp_sha={m1},arp_tha=00:00:00:00:00:00"
            ),
            &[],
        ),
        // IPv4 on one switch, through the stateful ACL stages.
        (
            format!(
                "in_port=1,icmp,dl_src={m1},dl_dst={m3},nw_src=10.94.1.1,nw_dst=10.94.1.3,nw_ttl=64,icmp_type=8"
            ),
            new,
        ),
        (
            format!(
                "in_port=3,icmp,dl_src={m3},dl_dst={m1},nw_src=10.94.1.3,nw_dst=10.94.1.1,nw_ttl=64,icmp_type=0"
            ),
            est,
        ),
        // IPv4 routed across the router, both ways.
        (
            format!(
                "in_port=1,icmp,dl_src={m1},dl_dst={r1},nw_src=10.94.1.1,nw_dst=10.94.2.1,nw_ttl=64,icmp_type=8"
            ),
            new,
        ),
        (
            format!(
                "in_port=2,udp,dl_src={m2},dl_dst={r2},nw_src=10.94.2.1,nw_dst=10.94.1.3,nw_ttl=9,udp_src=5000,udp_dst=53"
            ),
            new,
        ),
        // TCP to the dropped port, new and established.
        (tcp13(22), new),
        (tcp13(22), est),
        // TCP to the allowed port: committed when new, passed when
        // established.
        (tcp13(80), new),
        (tcp13(80), est),
        (tcp13(8080), new),
        // Routed TCP into the ACL'd switch.
        (
            format!(
                "in_port=2,tcp,dl_src={m2},dl_dst={r2},nw_src=10.94.2.1,nw_dst=10.94.1.3,nw_ttl=64,tcp_src=40000,tcp_dst=80"
            ),
            new,
        ),
        // From an unknown source MAC (the ports have no port security).
        (
            format!(
                "in_port=1,icmp,dl_src=00:00:00:00:99:77,dl_dst={m3},nw_src=10.94.1.1,nw_dst=10.94.1.3,nw_ttl=64,icmp_type=8"
            ),
            new,
        ),
        // To an unknown destination MAC.
        (
            format!(
                "in_port=1,icmp,dl_src={m1},dl_dst=00:00:00:00:99:77,nw_src=10.94.1.1,nw_dst=10.94.1.3,nw_ttl=64,icmp_type=8"
            ),
            new,
        ),
        // Broadcast.
        (
            format!(
                "in_port=1,udp,dl_src={m1},dl_dst=ff:ff:ff:ff:ff:ff,nw_src=10.94.1.1,nw_dst=255.255.255.255,nw_ttl=64,udp_src=68,udp_dst=67"
            ),
            new,
        ),
        (
            format!("in_port=3,dl_src={m3},dl_dst=ff:ff:ff:ff:ff:ff,dl_type=0x88cc"),
            &[],
        ),
        // Ping of the router's own addresses (near and far).
        (
            format!(
                "in_port=1,icmp,dl_src={m1},dl_dst={r1},nw_src=10.94.1.1,nw_dst=10.94.1.254,nw_ttl=64,icmp_type=8"
            ),
            new,
        ),
        (
            format!(
                "in_port=2,icmp,dl_src={m2},dl_dst={r2},nw_src=10.94.2.1,nw_dst=10.94.1.254,nw_ttl=64,icmp_type=8"
            ),
            new,
        ),
    ];

    let mut diffs = Vec::new();
    let mut passes = 0;
    for (flow, extra) in &cases {
        let mut a = vec!["ofproto/trace", br.as_str(), flow.as_str()];
        a.extend_from_slice(extra);
        let o = ovs.appctl(&a)?;
        let f = fv.appctl(&a)?;
        let oa = trace_actions(&o, &theirs.ports, strip_nat);
        let fa = trace_actions(&f, &ours.ports, false);
        assert!(!oa.is_empty(), "no datapath actions from OVS:\n{o}");
        if oa != fa {
            diffs.push(format!(
                "  {flow} {extra:?}\n    ovs:     {oa:?}\n    ferrovs: {fa:?}"
            ));
        }
        passes += oa.len();
    }
    assert!(
        diffs.is_empty(),
        "{} of {} packets differ:\n{}",
        diffs.len(),
        cases.len(),
        diffs.join("\n")
    );
    for side in [&ours, &theirs] {
        let errors = openflow_errors(&side.log);
        assert!(errors.is_empty(), "OpenFlow errors: {errors:?}");
    }
    eprintln!(
        "{} packets ({passes} passes) through OVN's {flows}-flow table: datapath actions identical to stock OVS",
        cases.len()
    );
    Ok(())
}
