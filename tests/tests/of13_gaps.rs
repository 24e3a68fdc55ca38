//! Issue 13, section 7 ("OpenFlow 1.3 gaps"), against stock Open vSwitch
//! as the oracle: the same flows go into stock `ovs-vswitchd`
//! (`--enable-dummy`, `type=dummy` ports, packets injected with
//! `netdev-dummy/receive`) and into ferrovs, whose ports are real veths
//! with the packets sent from a network namespace. What each switch then
//! reports (table statistics, errors) must be the same.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};
use ferrovs_tests::*;

/// A namespace whose `eth0` is a veth to the root-side `port`, with IPv6
/// off on both ends before they come up: the kernel sends nothing on its
/// own (no DAD, no router solicitations), so only the test's frames reach
/// the switch.
struct QuietHost {
    ns: Netns,
    port: String,
}

impl QuietHost {
    fn new(tag: &str, i: u32) -> Result<QuietHost> {
        let ns = Netns::new(&format!("{tag}h{i}"))?;
        for k in ["all", "default"] {
            ns.exec(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{k}.disable_ipv6=1"),
            ])?;
        }
        let port = format!("{tag}p{i}");
        let _ = ip(&["link", "del", &port]);
        ip(&[
            "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ])?;
        std::fs::write(format!("/proc/sys/net/ipv6/conf/{port}/disable_ipv6"), "1")?;
        ip(&["link", "set", &port, "up"])?;
        ns.exec(&["ip", "link", "set", "eth0", "up"])?;
        Ok(QuietHost { ns, port })
    }

    /// Sends each frame (hex) out of `eth0`, 20 ms apart.
    fn send(&self, frames: &[String]) -> Result<()> {
        let script = "import socket,sys,time\n\
                      s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n\
                      s.bind(('eth0',0))\n\
                      for h in sys.argv[1:]:\n    s.send(bytes.fromhex(h)); time.sleep(0.02)\n";
        let mut args = vec!["python3", "-c", script];
        args.extend(frames.iter().map(String::as_str));
        self.ns.exec(&args)?;
        Ok(())
    }
}

impl Drop for QuietHost {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.port]);
    }
}

/// Stock OVS (dummy ports `of13d1`, `of13d2`) and ferrovs (veth hosts),
/// each with a bridge whose OpenFlow ports 1 and 2 are those ports.
struct Pair {
    ovs: StockOvs,
    fv: Switch,
    br: String,
    hosts: Vec<QuietHost>,
}

impl Pair {
    fn start(tag: &str) -> Result<Pair> {
        let br = format!("{tag}b");
        let ovs = StockOvs::start("of13-ovs-")?;
        let mut args = vec![
            "add-br".to_string(),
            br.clone(),
            "--".into(),
            "set".into(),
            "bridge".into(),
            br.clone(),
            "fail_mode=secure".into(),
            "datapath_type=dummy".into(),
        ];
        for i in 1..=2 {
            args.extend([
                "--".into(),
                "add-port".into(),
                br.clone(),
                format!("of13d{i}"),
                "--".into(),
                "set".into(),
                "Interface".into(),
                format!("of13d{i}"),
                "type=dummy".into(),
                format!("ofport_request={i}"),
                format!("options:tx_pcap={}/tx{i}.pcap", ovs.dir().display()),
            ]);
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        ovs.vsctl(&a)?;
        let fv = Switch::start()?;
        let hosts = vec![QuietHost::new(tag, 1)?, QuietHost::new(tag, 2)?];
        fv.vsctl(&[
            "add-br",
            &br,
            "--",
            "set",
            "bridge",
            &br,
            "fail_mode=secure",
        ])?;
        for (i, h) in hosts.iter().enumerate() {
            add_port_numbered(|a| fv.vsctl(a), &br, &h.port, i as u32 + 1, &[])?;
        }
        let pair = Pair { ovs, fv, br, hosts };
        let ok = wait_until(Duration::from_secs(20), || {
            pair.fv
                .ofctl(&["show", &pair.br])
                .is_ok_and(|s| s.contains(" 1(") && s.contains(" 2("))
        });
        if !ok {
            bail!("ferrovs ports did not come up\n{}", pair.fv.log_text());
        }
        // ferrovs's LOCAL port is a kernel TAP (OVS's is a dummy): keep
        // the kernel's own packets on it out of the tables.
        ip(&["link", "set", &pair.br, "down"])?;
        Ok(pair)
    }

    fn targets(&self) -> [String; 2] {
        [
            self.ovs.mgmt(&self.br),
            format!(
                "unix:{}",
                self.fv.rundir().join(format!("{}.mgmt", self.br)).display()
            ),
        ]
    }

    /// Replaces both flow tables with `flows` (stock ovs-ofctl, OF1.3).
    fn load(&self, flows: &str) -> Result<()> {
        let file = self.fv.rundir().join("of13-flows.txt");
        std::fs::write(&file, flows)?;
        for t in self.targets() {
            ofctl13(&["del-flows", &t])?;
            run(Command::new("ovs-ofctl")
                .args(["-O", "OpenFlow13", "add-flows", &t])
                .arg(&file))?;
        }
        Ok(())
    }

    /// Sends `frames` into port 1 of both switches and returns what each
    /// switch sent out of port 2 (hex, in order): OVS's from its dummy
    /// port's transmit capture, ferrovs's as received in host 2.
    fn exchange(&self, frames: &[String]) -> Result<(Vec<String>, Vec<String>)> {
        let cap = self.ovs.dir().join("tx2.pcap");
        let seen = read_pcap(&cap)?.len();
        let ready = self.fv.rundir().join("of13-rx-ready");
        let _ = std::fs::remove_file(&ready);
        let script = "import socket,sys,select,time\n\
                      s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.htons(3))\n\
                      s.bind(('eth0',0))\n\
                      open(sys.argv[1],'w').close()\n\
                      end=time.time()+float(sys.argv[2])\n\
                      while time.time()<end:\n    \
                      r,_,_=select.select([s],[],[],0.1)\n    \
                      if r:\n        \
                      d,a=s.recvfrom(65535)\n        \
                      if a[2]!=4: print(d.hex(),flush=True)\n";
        let ready_s = ready.display().to_string();
        let rx = self.hosts[1]
            .ns
            .spawn(&["python3", "-c", script, &ready_s, "3"])?;
        if !wait_until(Duration::from_secs(10), || ready.exists()) {
            bail!("receiver in host 2 did not start");
        }
        self.send(frames)?;
        let out = rx.wait_output()?;
        let fv: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect();
        let mut ovs = Vec::new();
        wait_until(Duration::from_secs(5), || {
            read_pcap(&cap).is_ok_and(|v| {
                ovs = v.into_iter().skip(seen).collect();
                ovs.len() >= fv.len()
            })
        });
        Ok((ovs, fv))
    }

    /// Sends `frames` into port 1 of both switches.
    fn send(&self, frames: &[String]) -> Result<()> {
        for f in frames {
            self.ovs.appctl(&["netdev-dummy/receive", "of13d1", f])?;
        }
        self.hosts[0].send(frames)
    }
}

/// The frames (hex) of a little-endian pcap file; none if it is absent.
fn read_pcap(path: &std::path::Path) -> Result<Vec<String>> {
    let Ok(b) = std::fs::read(path) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut i = 24;
    while i + 16 <= b.len() {
        let len = u32::from_le_bytes([b[i + 8], b[i + 9], b[i + 10], b[i + 11]]) as usize;
        let Some(f) = b.get(i + 16..i + 16 + len) else {
            break;
        };
        out.push(hexs(f));
        i += 16 + len;
    }
    Ok(out)
}

fn ofctl13(args: &[&str]) -> Result<String> {
    run(Command::new("ovs-ofctl")
        .args(["-O", "OpenFlow13"])
        .args(args))
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x13, 1];
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x13, 2];

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(DST_MAC);
    f.extend(SRC_MAC);
    f.extend(ethertype.to_be_bytes());
    f.extend(payload);
    while f.len() < 60 {
        f.push(0);
    }
    f
}

fn csum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An IPv4/UDP frame from 10.13.0.1 to `dst` (checksums valid).
fn udp4(dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut udp = Vec::new();
    udp.extend(4000u16.to_be_bytes());
    udp.extend(dport.to_be_bytes());
    udp.extend(12u16.to_be_bytes());
    udp.extend([0, 0]);
    udp.extend(*b"of13");
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 13, 0, 1];
    ip.extend(dst);
    let total = (ip.len() + udp.len()) as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend(udp);
    eth(0x0800, &ip)
}

/// An ARP request from 10.13.0.1 for `target`.
fn arp(target: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend(SRC_MAC);
    a.extend([10, 13, 0, 1]);
    a.extend([0; 6]);
    a.extend(target);
    let mut f = eth(0x0806, &a);
    f[0..6].copy_from_slice(&[0xff; 6]);
    f
}

/// An IPv6 frame (no upper layer: next header 59).
fn ipv6() -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0, 0, 59, 64];
    p.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    eth(0x86dd, &p)
}

/// Table 0 sends IPv4 on to table 1 (goto_table) and ARP to table 2
/// (resubmit); table 1 matches one destination only (other IPv4 misses
/// there); table 2 resubmits to the empty table 3 (a miss) and outputs;
/// IPv6 misses in table 0.
const STATS_FLOWS: &str = "\
table=0,priority=10,ip,actions=goto_table:1
table=0,priority=10,arp,actions=resubmit(,2)
table=1,priority=10,ip,nw_dst=10.13.0.2,actions=output:2
table=2,priority=10,arp,actions=resubmit(,3),output:2
";

#[test]
fn table_statistics_count_lookups_and_matches_like_stock_ovs() -> Result<()> {
    require!("ovs-ofctl", "ovs-vswitchd", "ovsdb-server", "python3");
    let pair = Pair::start("of13s")?;
    pair.load(STATS_FLOWS)?;
    let [ovs_t, fv_t] = pair.targets();
    // Counters before the test's packets (ferrovs keeps whatever reached
    // the tables while the bridge came up; OVS starts at zero).
    let before_ovs = table_counts(&ovs_t)?;
    let before_fv = table_counts(&fv_t)?;
    let mut frames = Vec::new();
    // Five of a kind each time: the first is an upcall, the rest hit the
    // datapath's caches (EMC / megaflow), whose statistics must reach the
    // table counters too.
    for _ in 0..5 {
        frames.push(hexs(&udp4([10, 13, 0, 2], 53)));
    }
    for _ in 0..3 {
        frames.push(hexs(&udp4([10, 13, 0, 9], 53)));
    }
    for _ in 0..2 {
        frames.push(hexs(&arp([10, 13, 0, 2])));
    }
    frames.push(hexs(&ipv6()));
    pair.send(&frames)?;
    let delta = |target: &str, before: &BTreeMap<u8, (u64, u64)>| -> Result<Vec<(u64, u64)>> {
        let now = table_counts(target)?;
        Ok((0..=4u8)
            .map(|t| {
                let (l, m) = now.get(&t).copied().unwrap_or_default();
                let (bl, bm) = before.get(&t).copied().unwrap_or_default();
                (l - bl, m - bm)
            })
            .collect())
    };
    let n = frames.len() as u64;
    // OVS moves datapath statistics to its tables from its revalidators:
    // wait until table 0 has seen every packet, on both sides.
    for (t, before) in [(&ovs_t, &before_ovs), (&fv_t, &before_fv)] {
        let ok = wait_until(Duration::from_secs(15), || {
            delta(t, before).is_ok_and(|d| d[0].0 >= n)
        });
        assert!(
            ok,
            "{t}: table 0 never counted {n} lookups: {:?}",
            delta(t, before)?
        );
    }
    if let Err(e) = pair.ovs.appctl(&["revalidator/wait"]) {
        eprintln!("revalidator/wait: {e}");
    }
    let ovs = delta(&ovs_t, &before_ovs)?;
    let fv = delta(&fv_t, &before_fv)?;
    // What the flows above imply: 11 lookups in table 0 (10 matched),
    // 8 in table 1 (5 matched), 2 in table 2 (matched), 2 misses in 3.
    assert_eq!(
        ovs,
        vec![(11, 10), (8, 5), (2, 2), (2, 0), (0, 0)],
        "stock OVS"
    );
    assert_eq!(fv, ovs, "ferrovs (left) vs stock OVS (right), tables 0..4");
    Ok(())
}

/// `ovs-ofctl add-flow` of `flow`: None if accepted, else the error it
/// printed (the OFPT_ERROR's name, or ovs-ofctl's own complaint).
fn add_flow_error(target: &str, flow: &str) -> Result<Option<String>> {
    let out = run_output(
        Command::new("ovs-ofctl")
            .args(["-O", "OpenFlow13", "add-flow", target])
            .arg(flow),
    )?;
    if out.status.success() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let line = text
        .lines()
        .find_map(|l| {
            l.split_once("OFPT_ERROR")
                .and_then(|(_, r)| r.split_once("): "))
                .map(|(_, name)| name.trim().to_string())
        })
        .or_else(|| {
            text.lines()
                .find_map(|l| l.strip_prefix("ovs-ofctl: ").map(String::from))
        });
    Ok(Some(line.unwrap_or(text)))
}

/// dump-flows lines without the counters and ages, sorted.
fn flows_as_installed(target: &str) -> Result<Vec<String>> {
    let text = ofctl13(&["dump-flows", target])?;
    let mut v: Vec<String> = text
        .lines()
        .skip(1)
        .map(|l| {
            l.split(", ")
                .filter(|kv| {
                    !kv.trim_start().starts_with("duration=")
                        && !kv.starts_with("n_packets=")
                        && !kv.starts_with("n_bytes=")
                })
                .collect::<Vec<_>>()
                .join(", ")
                .trim()
                .to_string()
        })
        .collect();
    v.sort();
    Ok(v)
}

#[test]
fn flows_naming_missing_groups_or_the_hidden_table_are_refused_like_stock_ovs() -> Result<()> {
    require!("ovs-ofctl", "ovs-vswitchd", "ovsdb-server", "python3");
    let pair = Pair::start("of13r")?;
    pair.load("")?;
    let [ovs_t, fv_t] = pair.targets();
    // (flow, what stock OVS 3.1 answers: None = accepted).
    let cases: [(&str, Option<&str>); 7] = [
        ("actions=group:5", Some("OFPBAC_BAD_OUT_GROUP")),
        (
            "ip,actions=write_actions(group:7)",
            Some("OFPBAC_BAD_OUT_GROUP"),
        ),
        ("table=254,actions=drop", Some("OFPBRC_EPERM")),
        (
            "table=5,actions=goto_table:3",
            Some("actions are invalid with specified match (OFPBIC_BAD_TABLE_ID)"),
        ),
        // Stock OVS skips empty actions: accepted as `actions=output:2`.
        ("priority=5,arp,actions=output:2,,,", None),
        // Table 255 does not exist, but OVS only refuses going backwards.
        ("table=1,actions=goto_table:255", None),
        // The prerequisite stays in the match and comes back in dumps.
        (
            "priority=9,ip,actions=set_field:10.13.0.7->ip_dst,output:2",
            None,
        ),
    ];
    for (flow, want) in cases {
        let ovs = add_flow_error(&ovs_t, flow)?;
        assert_eq!(ovs.as_deref(), want, "stock OVS on {flow}");
        let fv = add_flow_error(&fv_t, flow)?;
        assert_eq!(fv, ovs, "ferrovs (left) vs stock OVS (right) on {flow}");
    }
    let ovs_flows = flows_as_installed(&ovs_t)?;
    assert_eq!(ovs_flows.len(), 3, "{ovs_flows:?}");
    assert_eq!(flows_as_installed(&fv_t)?, ovs_flows);
    // Packets through the flows that were accepted: the same frames leave
    // port 2 of both switches.
    let frames = vec![hexs(&udp4([10, 13, 0, 2], 53)), hexs(&arp([10, 13, 0, 2]))];
    let (ovs, fv) = pair.exchange(&frames)?;
    assert_eq!(ovs.len(), 2, "stock OVS sent {ovs:?}");
    assert!(
        ovs[0].contains("0a0d0007"),
        "rewritten to 10.13.0.7: {}",
        ovs[0]
    );
    assert_eq!(
        fv, ovs,
        "frames out of port 2: ferrovs (left), stock OVS (right)"
    );
    Ok(())
}

/// Push on IPv4 then match the label in table 1; pop to IPv4 then
/// goto_table (the packet recirculates and is parsed again: table 2
/// matches its IP destination); TTL actions on a received MPLS packet.
const MPLS_FLOWS: &str = "\
table=0,priority=10,ip,actions=push_mpls:0x8847,set_field:100->mpls_label,set_field:5->mpls_tc,goto_table:1
table=0,priority=10,mpls,mpls_label=200,actions=pop_mpls:0x0800,goto_table:2
table=0,priority=10,mpls,mpls_label=300,actions=dec_mpls_ttl,set_mpls_ttl(9),output:2
table=0,priority=10,mpls,mpls_label=400,actions=dec_mpls_ttl,output:2
table=1,priority=10,mpls,mpls_label=100,mpls_tc=5,mpls_bos=1,actions=dec_mpls_ttl,output:2
table=2,priority=10,ip,nw_dst=10.13.0.2,actions=mod_nw_dst:10.13.0.9,output:2
";

/// An MPLS frame: one label stack entry over `inner` (an Ethernet
/// payload, e.g. an IPv4 packet).
fn mpls_frame(label: u32, ttl: u8, inner: &[u8]) -> Vec<u8> {
    let lse = (label << 12) | 0x100 | u32::from(ttl);
    let mut p = lse.to_be_bytes().to_vec();
    p.extend(inner);
    eth(0x8847, &p)
}

/// The IPv4 packet inside `udp4`'s frame (Ethernet header and padding
/// removed).
fn ipv4_packet(dst: [u8; 4]) -> Vec<u8> {
    let f = udp4(dst, 53);
    let len = usize::from(u16::from_be_bytes([f[16], f[17]]));
    f[14..14 + len].to_vec()
}

#[test]
fn mpls_push_pop_through_goto_table_and_ttl_actions_match_stock_ovs() -> Result<()> {
    require!("ovs-ofctl", "ovs-vswitchd", "ovsdb-server", "python3");
    let pair = Pair::start("of13m")?;
    pair.load(MPLS_FLOWS)?;
    let [ovs_t, fv_t] = pair.targets();
    // The flows come back as installed.
    let ovs_flows = flows_as_installed(&ovs_t)?;
    assert_eq!(ovs_flows.len(), 6, "{ovs_flows:?}");
    assert_eq!(flows_as_installed(&fv_t)?, ovs_flows);
    let before_ovs = table_counts(&ovs_t)?;
    let before_fv = table_counts(&fv_t)?;
    let mut ip = udp4([10, 13, 0, 2], 53);
    // TOS 0xa0: precedence 5 becomes the pushed entry's TC.
    ip[15] = 0xa0;
    let c = {
        ip[24] = 0;
        ip[25] = 0;
        csum(&ip[14..34])
    };
    ip[24..26].copy_from_slice(&c.to_be_bytes());
    let mut frames = Vec::new();
    for _ in 0..2 {
        // push_mpls, goto_table:1, dec_mpls_ttl: leaves as MPLS, TTL 63.
        frames.push(hexs(&ip));
        // pop_mpls, goto_table:2 on the inner packet: rewritten IPv4.
        frames.push(hexs(&mpls_frame(200, 7, &ipv4_packet([10, 13, 0, 2]))));
        // pop_mpls, then no match in table 2: dropped.
        frames.push(hexs(&mpls_frame(200, 7, &ipv4_packet([10, 13, 0, 5]))));
        // dec_mpls_ttl then set_mpls_ttl(9).
        frames.push(hexs(&mpls_frame(300, 5, &ipv4_packet([10, 13, 0, 2]))));
        // dec_mpls_ttl on TTL 1: dropped.
        frames.push(hexs(&mpls_frame(400, 1, &ipv4_packet([10, 13, 0, 2]))));
    }
    let (ovs, fv) = pair.exchange(&frames)?;
    assert_eq!(ovs.len(), 6, "stock OVS sent {ovs:?}");
    // The pushed entry: label 100, TC 5, bottom of stack, TTL 64-1.
    assert!(ovs[0].contains(&format!("8847{:08x}", (100 << 12) | (5 << 9) | 0x100 | 63)));
    assert_eq!(
        fv, ovs,
        "frames out of port 2: ferrovs (left), stock OVS (right)"
    );
    // Every pass credited its tables, recirculated ones included.
    let delta = |now: &BTreeMap<u8, (u64, u64)>, before: &BTreeMap<u8, (u64, u64)>| {
        (0..=3u8)
            .map(|t| {
                let (l, m) = now.get(&t).copied().unwrap_or_default();
                let (bl, bm) = before.get(&t).copied().unwrap_or_default();
                (l - bl, m - bm)
            })
            .collect::<Vec<_>>()
    };
    let n = frames.len() as u64;
    for (t, before) in [(&ovs_t, &before_ovs), (&fv_t, &before_fv)] {
        let ok = wait_until(Duration::from_secs(15), || {
            table_counts(t).is_ok_and(|now| {
                let d = delta(&now, before);
                // Recirculated passes resume in table 2.
                d[0].0 >= n && d[2].0 >= 4
            })
        });
        assert!(ok, "{t}: table 0 never counted every pass");
    }
    let ovs_d = delta(&table_counts(&ovs_t)?, &before_ovs);
    let fv_d = delta(&table_counts(&fv_t)?, &before_fv);
    assert_eq!(
        fv_d, ovs_d,
        "table statistics: ferrovs (left), stock OVS (right)"
    );
    Ok(())
}

/// A two-label stack: the outer label is popped (the packet stays MPLS),
/// goto_table matches the inner label, which is popped in turn or
/// forwarded with its TTL decremented.
const MPLS2_FLOWS: &str = "\
table=0,priority=10,mpls,mpls_label=100,mpls_bos=0,actions=pop_mpls:0x8847,goto_table:1
table=1,priority=10,mpls,mpls_label=200,mpls_bos=1,actions=pop_mpls:0x0800,goto_table:2
table=1,priority=5,mpls,actions=dec_mpls_ttl,output:2
table=2,priority=10,ip,nw_dst=10.13.0.2,actions=output:2
";

/// An MPLS frame with the stack `(label, ttl)`, outermost first, over
/// `inner`.
fn mpls_stack_frame(stack: &[(u32, u8)], inner: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    for (i, (label, ttl)) in stack.iter().enumerate() {
        let bos = if i + 1 == stack.len() { 0x100 } else { 0 };
        p.extend(((label << 12) | bos | u32::from(*ttl)).to_be_bytes());
    }
    p.extend(inner);
    eth(0x8847, &p)
}

#[test]
fn mpls_two_label_stack_pops_one_label_at_a_time_like_stock_ovs() -> Result<()> {
    require!("ovs-ofctl", "ovs-vswitchd", "ovsdb-server", "python3");
    let pair = Pair::start("of13l")?;
    pair.load(MPLS2_FLOWS)?;
    let inner = ipv4_packet([10, 13, 0, 2]);
    let mut frames = Vec::new();
    for _ in 0..2 {
        // Both labels popped: the inner IPv4 packet leaves.
        frames.push(hexs(&mpls_stack_frame(&[(100, 64), (200, 63)], &inner)));
        // The outer popped; the inner (300) leaves with TTL 9-1.
        frames.push(hexs(&mpls_stack_frame(&[(100, 64), (300, 9)], &inner)));
        // Three labels: the second (200) is not the bottom, so table 1's
        // first flow does not match; it leaves with two labels.
        frames.push(hexs(&mpls_stack_frame(
            &[(100, 64), (200, 20), (400, 30)],
            &inner,
        )));
        // Outer label not 100: no flow, dropped.
        frames.push(hexs(&mpls_stack_frame(&[(500, 64), (200, 63)], &inner)));
    }
    let (ovs, fv) = pair.exchange(&frames)?;
    assert_eq!(ovs.len(), 6, "stock OVS sent {ovs:?}");
    // The second frame's inner label, TTL decremented to 8, alone.
    assert!(
        ovs[1].contains(&format!("8847{:08x}", (300 << 12) | 0x100 | 8)),
        "{}",
        ovs[1]
    );
    assert_eq!(
        fv, ovs,
        "frames out of port 2: ferrovs (left), stock OVS (right)"
    );
    Ok(())
}

#[test]
fn mpls_and_pbb_flows_stock_ovs_refuses_get_its_errors() -> Result<()> {
    require!("ovs-ofctl", "ovs-vswitchd", "ovsdb-server", "python3");
    let pair = Pair::start("of13e")?;
    pair.load("")?;
    let socks = [
        pair.ovs.dir().join(format!("{}.mgmt", pair.br)),
        pair.fv.rundir().join(format!("{}.mgmt", pair.br)),
    ];
    // An OpenFlow 1.3 flow_mod (table 0, priority 0x8000) with `matches`
    // (OXM TLVs) and apply_actions(`actions`).
    let flow_mod = |matches: &str, actions: &str| -> Vec<u8> {
        let m = unhex(matches);
        let a = unhex(actions);
        let mut msg = unhex(
            "04 0e 0000 00000002 0000000000000000 0000000000000000
             00 00 0000 0000 8000 ffffffff ffffffff ffffffff 0000 0000",
        );
        msg.extend(1u16.to_be_bytes());
        msg.extend(((4 + m.len()) as u16).to_be_bytes());
        msg.extend(&m);
        msg.extend(std::iter::repeat_n(0, (8 - (4 + m.len()) % 8) % 8));
        msg.extend(4u16.to_be_bytes());
        msg.extend(((8 + a.len()) as u16).to_be_bytes());
        msg.extend([0; 4]);
        msg.extend(a);
        let len = msg.len() as u16;
        msg[2..4].copy_from_slice(&len.to_be_bytes());
        msg
    };
    const MPLS: &str = "80000a02 8847";
    const IP: &str = "80000a02 0800";
    /// (what, match, actions, stock OVS 3.1's (type, code) or None).
    type Case<'a> = (&'a str, &'a str, &'a str, Option<(u16, u16)>);
    let cases: [Case; 13] = [
        ("push_pbb", "", "001a 0008 88e7 0000", Some((2, 0))),
        ("pop_pbb", "", "001b 0008 00000000", Some((2, 0))),
        (
            "match pbb_isid",
            "80000a02 88e7 80004a03 000005",
            "",
            Some((4, 6)),
        ),
        (
            "set_field pbb_isid",
            "",
            "0019 0010 80004a03 000005 0000000000",
            Some((2, 14)),
        ),
        ("copy_ttl_out", "", "000b 0008 00000000", Some((2, 0))),
        ("copy_ttl_in", MPLS, "000c 0008 00000000", Some((2, 0))),
        ("push_mpls:0x0800", IP, "0013 0008 0800 0000", Some((2, 5))),
        ("pop_mpls on ip", IP, "0014 0008 0800 0000", Some((2, 10))),
        (
            "push_mpls then set ip_dst",
            IP,
            "0013 0008 8847 0000 0019 0010 80001804 0a000001 00000000",
            Some((2, 10)),
        ),
        (
            "set_field mpls_bos",
            MPLS,
            "0019 0010 80004801 01 00000000000000",
            Some((2, 15)),
        ),
        (
            "set_field mpls_label on ip",
            IP,
            "0019 0010 80004404 00000005 00000000",
            Some((2, 10)),
        ),
        (
            "dec_mpls_ttl on ip",
            IP,
            "0010 0008 00000000",
            Some((2, 10)),
        ),
        (
            "match mpls_bos, set_mpls_ttl",
            "80000a02 8847 80004801 01",
            "000f 0008 05 000000",
            None,
        ),
    ];
    for (what, m, a, want) in cases {
        let msg = flow_mod(m, a);
        let ovs = openflow13_error(&socks[0], &msg)?;
        assert_eq!(ovs, want, "stock OVS on {what}");
        let fv = openflow13_error(&socks[1], &msg)?;
        assert_eq!(fv, ovs, "ferrovs (left) vs stock OVS (right) on {what}");
    }
    Ok(())
}
