//! Bonds with LACP (issue 17), end to end: ferrovs bonded over two veth
//! pairs to stock Open vSwitch (userspace datapath, real devices, in a
//! namespace of its own), both sides `lacp=active`, a namespace host behind
//! each switch.
//!
//! ```text
//!  bondh1 ── bondfh ┌ferrovs┐ bondf1 ══ bondo1 ┌stock OVS (ns bondovs)┐ bondoh ── bondh2
//!  10.77.0.1        └bond0──┘ bondf2 ══ bondo2 └bond0─────────────────┘           10.77.0.2
//! ```
//!
//! Run under the e2e lock: `flock /tmp/ferrovs-e2e.lock cargo test -p
//! ferrovs-tests --test bonds`.

use std::time::Duration;

use anyhow::{Result, bail};
use ferrovs_tests::*;

/// The whole rig; everything is removed on drop (hosts and namespaces by
/// their guards, the root-side veth ends below).
struct Rig {
    sw: Switch,
    ovs: StockOvs,
    h1: Netns,
    h2: Netns,
    ovs_ns: Netns,
}

impl Drop for Rig {
    fn drop(&mut self) {
        for dev in ["bondf1", "bondf2", "bondfh"] {
            let _ = ip(&["link", "del", dev]);
        }
    }
}

/// The rig's names are fixed: the tests in this file run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const MEMBERS: [&str; 2] = ["bondf1", "bondf2"];
const PEERS: [&str; 2] = ["bondo1", "bondo2"];

/// Builds the rig with the bond settings `opts` (`COLUMN=VALUE`, the same
/// on both sides) and waits until the two switches' LACP agree. With
/// `stock_vsctl`, ferrovs is configured by stock `ovs-vsctl` instead of
/// its own `vsctl`.
fn rig(opts: &[&str], stock_vsctl: bool) -> Result<Rig> {
    rig2(opts, opts, stock_vsctl)
}

/// [`rig`] with different bond settings on ferrovs (`ours`) and on stock
/// OVS (`theirs`).
fn rig2(ours: &[&str], theirs: &[&str], stock_vsctl: bool) -> Result<Rig> {
    for dev in ["bondf1", "bondf2", "bondfh"] {
        let _ = ip(&["link", "del", dev]);
    }
    let ovs_ns = Netns::new("bondovs")?;
    let h1 = Netns::new("bondh1")?;
    let h2 = Netns::new("bondh2")?;
    for (f, o) in MEMBERS.iter().zip(PEERS) {
        ip(&[
            "link",
            "add",
            f,
            "type",
            "veth",
            "peer",
            "name",
            o,
            "netns",
            &ovs_ns.name,
        ])?;
        ip(&["link", "set", f, "up"])?;
        ovs_ns.exec(&["ip", "link", "set", o, "up"])?;
    }
    ip(&[
        "link", "add", "bondfh", "type", "veth", "peer", "name", "eth0", "netns", &h1.name,
    ])?;
    ip(&["link", "set", "bondfh", "up"])?;
    ovs_ns.exec(&[
        "ip", "link", "add", "bondoh", "type", "veth", "peer", "name", "eth0", "netns", &h2.name,
    ])?;
    ovs_ns.exec(&["ip", "link", "set", "bondoh", "up"])?;
    for (h, a) in [(&h1, "10.77.0.1/24"), (&h2, "10.77.0.2/24")] {
        h.exec(&["ip", "addr", "add", a, "dev", "eth0"])?;
        h.exec(&["ip", "link", "set", "eth0", "up"])?;
        // Stock OVS's userspace datapath does not finish checksums.
        h.exec(&["ethtool", "-K", "eth0", "tx", "off"])?;
    }

    let ovs = StockOvs::start_system("bond-ovs-", &ovs_ns.name)?;
    let mut add = vec!["add-bond", "bondob", "bond0", "bondo1", "bondo2"];
    add.extend_from_slice(theirs);
    ovs.vsctl(&[
        "add-br",
        "bondob",
        "--",
        "set",
        "bridge",
        "bondob",
        "datapath_type=netdev",
    ])?;
    ovs.vsctl(&add)?;
    ovs.vsctl(&["add-port", "bondob", "bondoh"])?;

    let sw = Switch::start()?;
    let db = format!("--db={}", sw.db_remote());
    let vsctl = |args: &[&str]| -> Result<String> {
        if stock_vsctl {
            run(std::process::Command::new("ovs-vsctl")
                .arg(&db)
                .arg("--timeout=20")
                .args(args))
        } else {
            sw.vsctl(args)
        }
    };
    vsctl(&["add-br", "bondfb"])?;
    let mut add = vec!["add-bond", "bondfb", "bond0", "bondf1", "bondf2"];
    add.extend_from_slice(ours);
    vsctl(&add)?;
    vsctl(&["add-port", "bondfb", "bondfh"])?;
    let rig = Rig {
        sw,
        ovs,
        h1,
        h2,
        ovs_ns,
    };
    rig.wait_negotiated(&MEMBERS, Duration::from_secs(30))?;
    Ok(rig)
}

impl Rig {
    fn lacp_ours(&self) -> String {
        self.sw.appctl(&["lacp/show", "bond0"]).unwrap_or_default()
    }

    fn lacp_theirs(&self) -> String {
        self.ovs.appctl(&["lacp/show", "bond0"]).unwrap_or_default()
    }

    /// Waits until both sides say each member of `ours` (and its peer)
    /// is `current attached` with a partner in sync.
    fn wait_negotiated(&self, ours: &[&str], timeout: Duration) -> Result<()> {
        let ok = wait_until(timeout, || {
            let (a, b) = (self.lacp_ours(), self.lacp_theirs());
            ours.iter().all(|m| {
                let peer = m.replace("bondf", "bondo");
                member_in_sync(&a, m) && member_in_sync(&b, &peer)
            })
        });
        if !ok {
            bail!(
                "LACP did not negotiate on {ours:?}\nferrovs:\n{}\nstock OVS:\n{}\nferrovs log:\n{}",
                self.lacp_ours(),
                self.lacp_theirs(),
                self.sw.log_text()
            );
        }
        Ok(())
    }

    /// Sets the stock side's end of member `i` (0 or 1) down or up.
    fn peer_link(&self, i: usize, up: bool) -> Result<()> {
        self.ovs_ns.exec(&[
            "ip",
            "link",
            "set",
            PEERS[i],
            if up { "up" } else { "down" },
        ])?;
        Ok(())
    }

    fn pings(&self) -> bool {
        self.h1
            .ping_eventually("10.77.0.2", Duration::from_secs(10))
            && self.h1.ping("10.77.0.2", 5)
    }

    fn bond_show(&self) -> String {
        self.sw.appctl(&["bond/show", "bond0"]).unwrap_or_default()
    }
}

/// In `lacp/show` text: member `m` is `current attached` and may be enabled.
fn member_in_sync(show: &str, m: &str) -> bool {
    let head = format!("member: {m}: current attached\n");
    show.split("\nmember: ")
        .map(|s| format!("member: {s}"))
        .any(|block| block.starts_with(&head) && block.contains("may_enable: true"))
}

/// The labels of an appctl text (what precedes the first `:` of each
/// line, without member names), to compare the layout of ours with stock
/// OVS's. Which member is active, and per-hash loads, differ by nature.
fn labels(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with("  hash ") && *l != "  active member")
        .map(|l| {
            let label = l.split(':').next().unwrap_or("");
            if label.starts_with("member ") {
                "member"
            } else {
                label
            }
            .to_string()
        })
        .collect()
}

fn tx_packets(dev: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{dev}/statistics/tx_packets"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The member `bond/show` names as active.
fn active_member(show: &str) -> Option<String> {
    let mut current = None;
    for l in show.lines() {
        if let Some(rest) = l.strip_prefix("member ") {
            current = rest.split(':').next().map(str::to_string);
        } else if l == "  active member" {
            return current;
        }
    }
    None
}

#[test]
fn lacp_balance_tcp_bond_to_stock_ovs_negotiates_spreads_flows_and_survives_link_or_lacp_loss()
-> Result<()> {
    require!("ovs-vswitchd", "ovsdb-server", "iperf3", "ethtool");
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let r = rig(
        &[
            "bond_mode=balance-tcp",
            "lacp=active",
            "other_config:lacp-time=fast",
        ],
        false,
    )?;

    // lacp/show and bond/show have stock OVS's layout.
    assert_eq!(
        labels(&r.lacp_ours()),
        labels(&r.lacp_theirs()),
        "ours:\n{}\ntheirs:\n{}",
        r.lacp_ours(),
        r.lacp_theirs()
    );
    let ours = r.bond_show();
    let theirs = r.ovs.appctl(&["bond/show", "bond0"])?;
    assert_eq!(
        labels(&ours),
        labels(&theirs),
        "ours:\n{ours}\ntheirs:\n{theirs}"
    );
    assert!(ours.contains("lacp_status: negotiated"), "{ours}");
    assert!(r.lacp_ours().contains("status: active negotiated"));

    // Interface.lacp_current, as stock OVS writes it.
    assert_eq!(
        r.ovs
            .vsctl(&["get", "interface", "bondo1", "lacp_current"])?
            .trim(),
        "true"
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            MEMBERS.iter().all(|m| {
                r.sw.vsctl(&["get", "interface", m, "lacp_current"])
                    .is_ok_and(|v| v.trim() == "true")
            })
        }),
        "lacp_current is not true on ferrovs's members"
    );
    assert_eq!(
        r.sw.vsctl(&["get", "interface", "bondfh", "lacp_current"])?
            .trim(),
        "[]"
    );

    assert!(r.pings(), "no ping across the bond\n{}", r.sw.log_text());

    // Several TCP flows from the host behind ferrovs: balance-tcp hashes
    // their 5-tuples over both members.
    let _server =
        r.h2.spawn_server(&["iperf3", "-s", "-1"], Proto::Tcp, 5201)?;
    let before: Vec<u64> = MEMBERS.iter().map(|m| tx_packets(m)).collect();
    let out = r.h1.exec(&[
        "iperf3",
        "-c",
        "10.77.0.2",
        "-t",
        "3",
        "-P",
        "16",
        "-l",
        "16K",
        "-J",
    ])?;
    let bps = iperf3_bps(&out)?;
    assert!(bps > 0.0);
    let sent: Vec<u64> = MEMBERS
        .iter()
        .zip(&before)
        .map(|(m, b)| tx_packets(m) - b)
        .collect();
    assert!(
        sent.iter().all(|n| *n > 500),
        "TCP flows were not spread over both members: {sent:?} packets sent"
    );

    // Either member down: the other carries everything.
    for (i, m) in MEMBERS.iter().enumerate() {
        r.peer_link(i, false)?;
        assert!(
            wait_until(Duration::from_secs(10), || {
                !member_in_sync(&r.lacp_ours(), m)
                    && r.bond_show().contains(&format!("member {m}: disabled"))
            }),
            "member {m} still in use after its link went down:\n{}\n{}",
            r.lacp_ours(),
            r.bond_show()
        );
        assert!(
            r.pings(),
            "traffic did not survive {m} going down\n{}",
            r.bond_show()
        );
        r.peer_link(i, true)?;
        r.wait_negotiated(&MEMBERS, Duration::from_secs(40))?;
    }

    // LACP stops on a link that stays up: stock OVS takes bondo1 out of
    // its bond (and closes it), so no more LACPDUs arrive on bondf1.
    let uuid = r.ovs.vsctl(&["get", "interface", "bondo1", "_uuid"])?;
    r.ovs
        .vsctl(&["remove", "port", "bond0", "interfaces", uuid.trim()])?;
    assert!(
        wait_until(Duration::from_secs(15), || {
            !member_in_sync(&r.lacp_ours(), "bondf1")
                && r.bond_show().contains("member bondf1: disabled")
        }),
        "bondf1 still in use after its partner stopped LACP:\n{}\n{}",
        r.lacp_ours(),
        r.bond_show()
    );
    let carrier = std::fs::read_to_string("/sys/class/net/bondf1/carrier")?;
    assert_eq!(carrier.trim(), "1", "the link itself stayed up");
    assert!(
        r.pings(),
        "traffic did not survive LACP stopping on bondf1\n{}",
        r.bond_show()
    );
    Ok(())
}

#[test]
fn lacp_active_backup_bond_set_up_by_stock_ovs_vsctl_moves_to_the_other_member_on_link_loss()
-> Result<()> {
    require!("ovs-vswitchd", "ovsdb-server", "ovs-vsctl", "ethtool");
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let r = rig(
        &[
            "bond_mode=active-backup",
            "lacp=active",
            "other_config:lacp-time=fast",
            "bond_updelay=500",
        ],
        true,
    )?;
    assert!(r.pings(), "no ping across the bond\n{}", r.sw.log_text());
    // Both members enabled (their updelay passed), one of them active.
    assert!(wait_until(Duration::from_secs(5), || {
        r.bond_show().matches(": enabled\n").count() == 2
    }));
    let show = r.bond_show();
    let first = active_member(&show).expect("an active member");
    assert!(show.contains("bond_mode: active-backup"), "{show}");
    let theirs = r.ovs.appctl(&["bond/show", "bond0"])?;
    assert_eq!(
        labels(&show),
        labels(&theirs),
        "ours:\n{show}\ntheirs:\n{theirs}"
    );
    let (list, stock_list) = (r.sw.appctl(&["bond/list"])?, r.ovs.appctl(&["bond/list"])?);
    assert_eq!(list.lines().next(), stock_list.lines().next());
    assert!(
        list.lines()
            .any(|l| l.starts_with("bond0\tactive-backup\t") && l.ends_with("\tbondf1, bondf2")),
        "{list}"
    );
    // Traffic leaves by the active member only.
    let i = MEMBERS.iter().position(|m| *m == first).expect("a member");
    let other = MEMBERS[1 - i];
    let before = tx_packets(other);
    let t0 = std::time::Instant::now();
    assert!(r.h1.ping("10.77.0.2", 20));
    // The backup still sends its LACPDUs (fast: one a second); the 20
    // requests or their replies would add 20 more.
    let lacpdus = t0.elapsed().as_secs() + 1;
    let sent = tx_packets(other) - before;
    assert!(
        sent < 5 + lacpdus,
        "the backup member carried pings: {sent} frames in {:?}",
        t0.elapsed()
    );
    // Still the same after a while: the move below is caused by the link.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        active_member(&r.bond_show()).as_deref(),
        Some(first.as_str())
    );

    r.peer_link(i, false)?;
    assert!(
        wait_until(Duration::from_secs(10), || {
            active_member(&r.bond_show()).as_deref() == Some(other)
        }),
        "active member did not move from {first} to {other}:\n{}",
        r.bond_show()
    );
    assert!(
        r.pings(),
        "traffic did not move to {other}\n{}",
        r.bond_show()
    );
    let before = tx_packets(other);
    assert!(r.h1.ping("10.77.0.2", 5));
    assert!(
        tx_packets(other) - before >= 5,
        "pings did not leave by {other}"
    );
    Ok(())
}

#[test]
fn passive_lacp_balance_slb_bond_negotiates_with_an_active_stock_partner() -> Result<()> {
    require!("ovs-vswitchd", "ovsdb-server", "ethtool");
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let r = rig2(
        &["bond_mode=balance-slb", "lacp=passive"],
        &["bond_mode=balance-slb", "lacp=active"],
        false,
    )?;
    let ours = r.lacp_ours();
    assert!(ours.contains("status: passive negotiated"), "{ours}");
    assert!(ours.contains("lacp_time: slow"), "{ours}");
    // A passive actor does not advertise activity; the active partner does.
    assert!(
        ours.contains("actor state: aggregation synchronized collecting distributing\n"),
        "{ours}"
    );
    assert!(
        ours.contains("partner state: activity aggregation synchronized"),
        "{ours}"
    );
    let show = r.bond_show();
    let theirs = r.ovs.appctl(&["bond/show", "bond0"])?;
    assert_eq!(
        labels(&show),
        labels(&theirs),
        "ours:\n{show}\ntheirs:\n{theirs}"
    );
    assert!(show.contains("bond_mode: balance-slb"), "{show}");
    assert!(r.pings(), "no ping across the bond\n{show}");
    Ok(())
}
