//! Ports on real kernel devices: veth pairs and TAP devices in network
//! namespaces named `dp-...`. Needs root (skipped otherwise). Devices and
//! namespaces are removed by a guard even when a test fails.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use datapath::{
    AfPacketOptions, AfPacketPort, AfXdpOptions, AfXdpPort, Datapath, DpConfig, Packet,
    PacketBatch, Port, PortKind, RxRing, TapPort, UpcallHandler, UpcallResult, XdpMode,
};
use flows::{DpAction, FlowKey};

const WAIT: Duration = Duration::from_secs(5);

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn run(args: &[&str]) {
    let st = Command::new(args[0])
        .args(&args[1..])
        .status()
        .expect("spawn");
    assert!(st.success(), "command failed: {args:?}");
}

fn run_quiet(args: &[&str]) {
    let _ = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Namespaces and links created by a test; removed on drop.
struct Net {
    id: u32,
    namespaces: Vec<String>,
    links: Vec<String>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Net {
    fn new() -> Net {
        let id = (std::process::id() * 8 + NEXT.fetch_add(1, Ordering::SeqCst)) % 10_000;
        Net {
            id,
            namespaces: Vec::new(),
            links: Vec::new(),
        }
    }

    fn name(&self, tag: &str) -> String {
        let n = format!("dp-{tag}{}", self.id);
        assert!(n.len() <= 15);
        n
    }

    fn netns(&mut self, tag: &str) -> String {
        let ns = self.name(tag);
        run(&["ip", "netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// A veth pair: returns the host end; the other end goes into `ns` as
    /// `inner`, with `addr` (CIDR) and up.
    fn veth(&mut self, tag: &str, ns: &str, addr: &str) -> (String, String) {
        let host = self.name(&format!("{tag}h"));
        let inner = self.name(&format!("{tag}n"));
        run(&[
            "ip", "link", "add", &host, "type", "veth", "peer", "name", &inner, "netns", ns,
        ]);
        self.links.push(host.clone());
        run(&["ip", "-n", ns, "addr", "add", addr, "dev", &inner]);
        run(&["ip", "-n", ns, "link", "set", &inner, "up"]);
        (host, inner)
    }

    /// Moves the TAP device `tap` (opened by the test) into `ns`, addressed.
    fn tap_into(&mut self, tap: &str, ns: &str, addr: &str) {
        run(&["ip", "link", "set", tap, "netns", ns]);
        run(&["ip", "-n", ns, "addr", "add", addr, "dev", tap]);
        run(&["ip", "-n", ns, "link", "set", tap, "up"]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for l in &self.links {
            run_quiet(&["ip", "link", "del", l]);
        }
        for ns in &self.namespaces {
            run_quiet(&["ip", "netns", "del", ns]);
        }
    }
}

const OUR_MAC: [u8; 6] = [0x02, 0xdd, 0, 0, 0, 2];

fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4], dst: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa);
    f.resize(60, 0);
    f
}

/// Sends an ARP request for `target` from `ours` through `port` and waits
/// for the namespace's reply on the same port; checks the port never
/// receives its own request back.
fn arp_round_trip(port: &dyn Port, ours: [u8; 4], target: [u8; 4]) {
    let mut rxq = port.open_rxq(0).unwrap();
    let mut txq = port.open_txq(0).unwrap();
    let req = arp(1, OUR_MAC, ours, [0; 6], target, [0xff; 6]);
    let mut batch = PacketBatch::new();
    let t = Instant::now();
    let mut last_send = None::<Instant>;
    loop {
        assert!(t.elapsed() < WAIT, "no ARP reply from {target:?}");
        if last_send.is_none_or(|s| s.elapsed() > Duration::from_millis(500)) {
            let mut p = Packet::from_bytes(&req);
            txq.send(&mut p).unwrap();
            txq.flush().unwrap();
            last_send = Some(Instant::now());
        }
        batch.clear();
        rxq.rx_batch(&mut batch).unwrap();
        let mut done = false;
        for p in batch.packets() {
            let d = p.data();
            assert_ne!(
                d,
                &req[..d.len().min(req.len())],
                "received our own transmitted frame"
            );
            if d.len() >= 42
                && d[12..14] == [0x08, 0x06]
                && d[20..22] == [0, 2]
                && d[28..32] == target
            {
                assert_eq!(&d[0..6], &OUR_MAC, "reply addressed to us");
                done = true;
            }
        }
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = port.stats().snapshot();
    assert!(s.rx_packets >= 1 && s.tx_packets >= 1);
}

#[test]
fn afpacket_port_exchanges_frames_with_a_namespace() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut net = Net::new();
    let ns = net.netns("a");
    let (host, _) = net.veth("a", &ns, "10.231.1.1/24");
    let port = AfPacketPort::open(&host).unwrap();
    let info = port.info();
    assert_eq!(info.name, host);
    assert!(info.mac.is_some());
    assert_eq!(info.mtu, 1500);
    // The port brought the device up; the veth's carrier (IFF_RUNNING) follows asynchronously.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !port.link_up() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(port.link_up(), "link never came up after the port opened");
    arp_round_trip(port.as_ref(), [10, 231, 1, 2], [10, 231, 1, 1]);
}

#[test]
fn afpacket_port_receives_vlan_tagged_frames_with_their_tag() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut net = Net::new();
    let ns = net.netns("v");
    let (host, inner) = net.veth("v", &ns, "10.231.5.9/24");
    let port = AfPacketPort::open(&host).unwrap();
    let mut rxq = port.open_rxq(0).unwrap();
    // A tagged frame sent raw from the namespace: the kernel moves the tag
    // into packet metadata on receive, and the port must put it back.
    let script = format!(
        "import socket,time\n\
         s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n\
         s.bind(('{inner}',0))\n\
         f=bytes([0x02,0xdd,0,0,0,2, 0x02,0xdd,0,0,0,3, 0x81,0x00,0x20,10, 0x88,0xb5])+bytes(range(46))\n\
         [(s.send(f),time.sleep(0.2)) for _ in range(10)]\n"
    );
    let _sender = Server(
        Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-c", &script])
            .spawn()
            .unwrap(),
    );
    let mut batch = PacketBatch::new();
    let t = Instant::now();
    loop {
        assert!(t.elapsed() < WAIT, "no tagged frame seen");
        batch.clear();
        rxq.rx_batch(&mut batch).unwrap();
        let found = batch.packets().iter().any(|p| {
            let d = p.data();
            d.len() == 64
                && d[12..14] == [0x81, 0x00]
                && d[14..16] == [0x20, 10]
                && d[16..18] == [0x88, 0xb5]
        });
        if found {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn afpacket_port_with_a_v3_ring_exchanges_frames_with_a_namespace() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut net = Net::new();
    let ns = net.netns("b");
    let (host, _) = net.veth("b", &ns, "10.231.8.1/24");
    let opts = AfPacketOptions {
        rx_ring: RxRing::V3,
        ..AfPacketOptions::default()
    };
    let port = AfPacketPort::open_with(&host, opts).unwrap();
    arp_round_trip(port.as_ref(), [10, 231, 8, 2], [10, 231, 8, 1]);
}

#[test]
fn tcp_between_namespaces_through_v3_ring_afpacket_ports() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut net = Net::new();
    let ns1 = net.netns("c");
    let ns2 = net.netns("d");
    let (h1, _) = net.veth("c", &ns1, "10.231.9.1/24");
    let (h2, _) = net.veth("d", &ns2, "10.231.9.2/24");
    let opts = AfPacketOptions {
        rx_ring: RxRing::V3,
        ..AfPacketOptions::default()
    };
    let dp = Datapath::new(DpConfig::default(), Arc::new(Patch(1, 2))).unwrap();
    dp.add_port(1, AfPacketPort::open_with(&h1, opts).unwrap())
        .unwrap();
    dp.add_port(2, AfPacketPort::open_with(&h2, opts).unwrap())
        .unwrap();
    ping(&ns1, "10.231.9.2");
    tcp_transfer(&ns1, &ns2, "10.231.9.2", "20M");
    let s1 = dp.port_stats(1).unwrap();
    assert!(s1.rx_bytes > 10_000_000, "{s1:?}");
    assert!(
        s1.rx_bytes / s1.rx_packets > 1514,
        "super-frames crossed: {s1:?}"
    );
    dp.shutdown();
}

#[test]
fn afpacket_open_of_a_missing_device_says_no_such_device() {
    let e = AfPacketPort::open("dp-missing0").err().unwrap();
    assert_eq!(e.to_string(), "no such device: dp-missing0");
}

#[test]
fn tap_port_exchanges_frames_with_a_namespace() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut net = Net::new();
    let ns = net.netns("t");
    let tap_name = net.name("tp");
    let port = TapPort::open(&tap_name).unwrap();
    net.tap_into(&tap_name, &ns, "10.231.2.1/24");
    arp_round_trip(port.as_ref(), [10, 231, 2, 2], [10, 231, 2, 1]);
}

#[test]
fn tap_port_attaches_to_an_existing_persistent_tap() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut net = Net::new();
    let ns = net.netns("p");
    let name = net.name("pt");
    run(&["ip", "tuntap", "add", "dev", &name, "mode", "tap"]);
    net.links.push(name.clone());
    let port = TapPort::open(&name).unwrap();
    assert_eq!(port.info().kind, PortKind::Tap);
    net.tap_into(&name, &ns, "10.231.7.1/24");
    // Moved into the namespace, the link must be deleted there.
    net.links.pop();
    arp_round_trip(port.as_ref(), [10, 231, 7, 2], [10, 231, 7, 1]);
}

#[test]
fn internal_port_is_a_tap_named_after_the_bridge_and_up() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let net = Net::new();
    let br = net.name("br");
    let port = TapPort::open_internal(&br).unwrap();
    let info = port.info();
    assert_eq!(
        (info.name.as_str(), info.kind),
        (br.as_str(), PortKind::Internal)
    );
    assert!(info.mac.is_some_and(|m| m != [0; 6]));
    assert!(std::path::Path::new(&format!("/sys/class/net/{br}")).exists());
    let flags = std::fs::read_to_string(format!("/sys/class/net/{br}/flags")).unwrap();
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "IFF_UP is set");
    port.delete_device().unwrap();
    drop(port);
    assert!(gone(&br), "a deleted port's TAP goes away when it closes");
}

/// Whether device `name` disappears from this namespace within 2 s (the
/// kernel unregisters a TAP after its last fd closes, which under load can
/// take a moment).
fn gone(name: &str) -> bool {
    (0..200).any(|_| {
        let exists = std::path::Path::new(&format!("/sys/class/net/{name}")).exists();
        if exists {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        !exists
    })
}

fn ip_out(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("spawn ip");
    assert!(out.status.success(), "ip {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn internal_port_device_outlives_the_port_with_its_address_until_deleted() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut net = Net::new();
    let br = net.name("pb");
    // Removed by the guard if an assertion fails before delete_device.
    net.links.push(br.clone());
    let port = TapPort::open_internal(&br).unwrap();
    let mac = port.info().mac;
    run(&["ip", "addr", "add", "10.231.9.1/24", "dev", &br]);
    run(&["ip", "route", "add", "10.231.10.0/24", "via", "10.231.9.2"]);
    // Closing the port without deleting it (a restart, a crash) keeps the
    // device, its address and its route.
    drop(port);
    std::thread::sleep(Duration::from_millis(100));
    let addr = ip_out(&["-4", "addr", "show", "dev", &br]);
    assert!(addr.contains("10.231.9.1/24"), "{addr}");
    // Opened again, the port attaches to the same device.
    let port = TapPort::open_internal(&br).unwrap();
    assert_eq!(port.info().mac, mac, "the same device");
    let addr = ip_out(&["-4", "addr", "show", "dev", &br]);
    assert!(addr.contains("10.231.9.1/24"), "{addr}");
    let routes = ip_out(&["route", "show", "10.231.10.0/24"]);
    assert!(
        routes.contains(&format!("via 10.231.9.2 dev {br}")),
        "{routes}"
    );
    // The reattached device carries frames: the kernel answers ARP for
    // the address it kept.
    arp_round_trip(port.as_ref(), [10, 231, 9, 2], [10, 231, 9, 1]);
    // Deleting the port removes the device.
    port.delete_device().unwrap();
    drop(port);
    assert!(gone(&br), "a deleted port's TAP goes away");
    net.links.pop();
}

/// Cross-connects two datapath ports.
struct Patch(u32, u32);

impl UpcallHandler for Patch {
    fn upcall(&self, key: &FlowKey, _packet: &Packet) -> UpcallResult {
        let out = if key.in_port == self.0 {
            self.1
        } else {
            self.0
        };
        UpcallResult {
            actions: vec![DpAction::Output(out)],
            mask: FlowKey::default(),
            install: true,
        }
    }
    fn userspace(&self, _: &DpAction, _: &FlowKey, _: &Packet) {}
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `iperf3 -n bytes` from `client_ns` to `server_ip` in `server_ns`.
fn tcp_transfer(client_ns: &str, server_ns: &str, server_ip: &str, bytes: &str) {
    let _srv = Server(
        Command::new("ip")
            .args([
                "netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", server_ip,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    loop {
        let out = Command::new("timeout")
            .args([
                "60", "ip", "netns", "exec", client_ns, "iperf3", "-c", server_ip, "-n", bytes,
            ])
            .output()
            .unwrap();
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            eprintln!(
                "{}",
                text.lines().rev().take(4).collect::<Vec<_>>().join("\n")
            );
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "iperf3 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ping(ns: &str, ip: &str) {
    run(&[
        "ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", ip,
    ]);
}

#[test]
fn tcp_between_namespaces_through_afpacket_and_tap_ports() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut net = Net::new();
    let ns1 = net.netns("x");
    let ns2 = net.netns("y");
    let (host, _) = net.veth("x", &ns1, "10.231.3.1/24");
    let tap_name = net.name("ty");
    let tap = TapPort::open(&tap_name).unwrap();
    net.tap_into(&tap_name, &ns2, "10.231.3.2/24");
    let af = AfPacketPort::open(&host).unwrap();
    let dp = Datapath::new(DpConfig::default(), Arc::new(Patch(1, 2))).unwrap();
    dp.add_port(1, af).unwrap();
    dp.add_port(2, tap).unwrap();
    ping(&ns1, "10.231.3.2");
    // Hosts keep their checksum offloads on: partial checksums and TSO
    // super-frames cross with their virtio_net_hdr.
    tcp_transfer(&ns1, &ns2, "10.231.3.2", "20M");
    tcp_transfer(&ns2, &ns1, "10.231.3.1", "20M");
    let s1 = dp.port_stats(1).unwrap();
    let s2 = dp.port_stats(2).unwrap();
    // iperf3 may end the test before the last buffered bytes cross.
    assert!(
        s1.rx_bytes > 10_000_000 && s2.rx_bytes > 10_000_000,
        "{s1:?} {s2:?}"
    );
    assert_eq!(dp.dump_flows().len(), 2, "one megaflow per direction");
    dp.shutdown();
}

#[test]
fn tso_super_frames_from_a_tap_are_segmented_for_a_port_without_tx_offload() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut net = Net::new();
    let ns1 = net.netns("s");
    let ns2 = net.netns("g");
    let (host, _) = net.veth("s", &ns1, "10.231.4.1/24");
    let tap_name = net.name("tg");
    let tap = TapPort::open(&tap_name).unwrap();
    net.tap_into(&tap_name, &ns2, "10.231.4.2/24");
    let opts = AfPacketOptions {
        tx_offload: false,
        ..AfPacketOptions::default()
    };
    let af = AfPacketPort::open_with(&host, opts).unwrap();
    let dp = Datapath::new(DpConfig::default(), Arc::new(Patch(1, 2))).unwrap();
    dp.add_port(1, af).unwrap();
    dp.add_port(2, tap).unwrap();
    ping(&ns2, "10.231.4.1");
    tcp_transfer(&ns2, &ns1, "10.231.4.1", "20M");
    let tap_rx = dp.port_stats(2).unwrap();
    let af_tx = dp.port_stats(1).unwrap();
    assert!(
        tap_rx.rx_bytes / tap_rx.rx_packets > 1514,
        "super-frames arrived from the TAP ({} bytes in {} frames)",
        tap_rx.rx_bytes,
        tap_rx.rx_packets
    );
    assert!(
        af_tx.tx_packets > tap_rx.rx_packets,
        "they left segmented ({} frames out for {} in)",
        af_tx.tx_packets,
        tap_rx.rx_packets
    );
    assert!(af_tx.tx_bytes / af_tx.tx_packets <= 1514);
    dp.shutdown();
}

/// Sends 5 UDP GSO super-datagrams (3000 bytes cut at 1200) from
/// `src_ns` to `dst_ip` in `dst_ns` and checks every byte arrives in
/// datagrams of at most 1200 bytes.
fn udp_gso_transfer(src_ns: &str, dst_ns: &str, dst_ip: &str) {
    let recv = format!(
        "import socket,sys\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.bind(('{dst_ip}',9999)); s.settimeout(5); n=0; big=0\n\
         print('ready',flush=True)\n\
         while n<15000:\n    d=s.recv(65535); n+=len(d); big+=len(d)>1200\n\
         sys.exit(0 if n==15000 and big==0 else 1)\n"
    );
    let mut rx = Command::new("ip")
        .args(["netns", "exec", dst_ns, "python3", "-c", &recv])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(rx.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    let send = format!(
        "import socket\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.setsockopt(17,103,1200)\n\
         [s.sendto(bytes(3000),('{dst_ip}',9999)) for _ in range(5)]\n"
    );
    run(&["ip", "netns", "exec", src_ns, "python3", "-c", &send]);
    assert!(
        rx.wait().unwrap().success(),
        "receiver did not get 15000 bytes in small datagrams"
    );
}

fn udp_gso_rig(tag: &str, subnet: u8, tx_offload: bool) {
    let mut net = Net::new();
    let ns1 = net.netns(&format!("{tag}1"));
    let ns2 = net.netns(&format!("{tag}2"));
    let (h1, _) = net.veth(&format!("{tag}1"), &ns1, &format!("10.231.{subnet}.1/24"));
    let (h2, _) = net.veth(&format!("{tag}2"), &ns2, &format!("10.231.{subnet}.2/24"));
    let opts = AfPacketOptions {
        tx_offload,
        ..AfPacketOptions::default()
    };
    let dp = Datapath::new(DpConfig::default(), Arc::new(Patch(1, 2))).unwrap();
    dp.add_port(1, AfPacketPort::open(&h1).unwrap()).unwrap();
    dp.add_port(2, AfPacketPort::open_with(&h2, opts).unwrap())
        .unwrap();
    let dst = format!("10.231.{subnet}.2");
    ping(&ns1, &dst);
    udp_gso_transfer(&ns1, &ns2, &dst);
    let s1 = dp.port_stats(1).unwrap();
    let s2 = dp.port_stats(2).unwrap();
    // 5 super-datagrams (3 segments each) plus a few ARP/ICMP frames.
    assert!(s1.rx_packets < 15, "super-datagrams arrived whole: {s1:?}");
    if tx_offload {
        assert!(s2.tx_packets < 15, "and left whole: {s2:?}");
    } else {
        assert!(s2.tx_packets >= 15, "and left segmented: {s2:?}");
        assert!(s2.tx_bytes / s2.tx_packets <= 1242, "{s2:?}");
    }
    dp.shutdown();
}

#[test]
fn udp_gso_super_datagrams_cross_to_a_port_with_segmentation_offload() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    udp_gso_rig("u", 10, true);
}

#[test]
fn udp_gso_super_datagrams_are_segmented_for_a_port_without_offload() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    udp_gso_rig("w", 11, false);
}

/// Sends `count` raw frames from `ns` out of `dev`, each carrying its
/// sequence number (u32, big endian) after an experimental EtherType; frame
/// `i` is `big` bytes long when `i` is odd and 60 bytes otherwise. Returns
/// when all are sent.
fn send_numbered(ns: &str, dev: &str, count: u32, big: usize) {
    let script = format!(
        "import socket,struct\n\
         s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n\
         s.bind(('{dev}',0))\n\
         h=bytes([0x02,0xdd,0,0,0,2, 0x02,0xdd,0,0,0,3, 0x88,0xb5])\n\
         for i in range({count}):\n\
         \x20   n={big} if i%2 else 60\n\
         \x20   s.send((h+struct.pack('>I',i)).ljust(n,b'\\0'))\n"
    );
    let st = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", &script])
        .status()
        .unwrap();
    assert!(st.success(), "sender failed");
}

/// Reads `rxq` until it stays empty, returning the sequence numbers of the
/// numbered frames (see [`send_numbered`]) in the order received.
fn drain_numbered(rxq: &mut dyn datapath::RxQueue) -> Vec<u32> {
    let mut seqs = Vec::new();
    let mut batch = PacketBatch::new();
    let mut empty = 0;
    while empty < 20 {
        batch.clear();
        if rxq.rx_batch(&mut batch).unwrap() == 0 {
            empty += 1;
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        empty = 0;
        for p in batch.packets() {
            let d = p.data();
            if d.len() >= 18 && d[12..14] == [0x88, 0xb5] {
                seqs.push(u32::from_be_bytes([d[14], d[15], d[16], d[17]]));
            }
        }
    }
    seqs
}

#[test]
fn afpacket_ring_overflow_is_counted_in_rx_dropped() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut net = Net::new();
    let ns = net.netns("o");
    let (host, inner) = net.veth("o", &ns, "10.231.12.9/24");
    // MTU 1500: the small-frame ring holds 1024 frames. Nobody reads while
    // 3000 small frames arrive, so the kernel drops at least 1976.
    let port = AfPacketPort::open(&host).unwrap();
    const SENT: u64 = 3000;
    send_numbered(&ns, &inner, SENT as u32, 60);
    let mut rxq = port.open_rxq(0).unwrap();
    let got = drain_numbered(rxq.as_mut()).len() as u64;
    assert!(got > 0 && got <= 1024, "received {got}");
    // The kernel's counter is collected on a later poll.
    std::thread::sleep(Duration::from_millis(150));
    let mut batch = PacketBatch::new();
    for _ in 0..256 {
        batch.clear();
        rxq.rx_batch(&mut batch).unwrap();
    }
    let s = port.stats().snapshot();
    assert!(s.rx_dropped >= SENT - got, "{s:?}, received {got}");
    assert!(s.rx_packets >= got, "{s:?}");
}

#[test]
fn afpacket_frames_split_between_small_and_big_rings_arrive_in_sending_order() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut net = Net::new();
    let ns = net.netns("q");
    let (host, inner) = net.veth("q", &ns, "10.231.13.9/24");
    // Opened at MTU 1500, so frames longer than ~1900 bytes go to the
    // big-slot ring; then the MTU goes up so 4000-byte frames can cross.
    let port = AfPacketPort::open(&host).unwrap();
    run(&["ip", "link", "set", &host, "mtu", "9000"]);
    run(&["ip", "-n", &ns, "link", "set", &inner, "mtu", "9000"]);
    // 20 big and 20 small frames, alternating, all queued in both rings
    // before the first read.
    send_numbered(&ns, &inner, 40, 4000);
    let mut rxq = port.open_rxq(0).unwrap();
    let seqs = drain_numbered(rxq.as_mut());
    assert_eq!(seqs, (0..40).collect::<Vec<u32>>());
    let s = port.stats().snapshot();
    assert_eq!(s.rx_dropped, 0, "{s:?}");
}

/// The XDP program attached to `dev`, as `ip link` shows it ("" if none).
fn xdp_attached(dev: &str) -> String {
    let out = ip_out(&["-d", "link", "show", "dev", dev]);
    out.lines()
        .filter(|l| l.contains("prog/xdp"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn afxdp_port_exchanges_frames_with_a_namespace_in_each_mode() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    for (i, mode) in [XdpMode::Generic, XdpMode::Native, XdpMode::BestEffort]
        .into_iter()
        .enumerate()
    {
        let mut net = Net::new();
        let ns = net.netns("x");
        let (host, _) = net.veth("x", &ns, "10.231.12.1/24");
        let opts = AfXdpOptions {
            mode,
            ..AfXdpOptions::default()
        };
        let port = AfXdpPort::open(&host, opts).unwrap();
        assert_eq!(port.info().kind, PortKind::AfXdp);
        assert_eq!(port.native(), mode != XdpMode::Generic, "{mode:?}");
        assert!(!xdp_attached(&host).is_empty(), "{mode:?}: no program");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !port.link_up() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        arp_round_trip(port.as_ref(), [10, 231, 12, 2 + i as u8], [10, 231, 12, 1]);
        drop(port);
        // Closing the link's fd detaches the program, but a child that
        // another test thread is forking at that moment holds a copy of
        // every fd until it execs, so the detach may come a little later.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut left = xdp_attached(&host);
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            left = xdp_attached(&host);
        }
        assert_eq!(left, "", "{mode:?}: program left attached");
    }
}

#[test]
fn afxdp_open_errors_name_the_device_and_the_limit() {
    let e = AfXdpPort::open("dp-missing1", AfXdpOptions::default())
        .err()
        .unwrap();
    assert_eq!(e.to_string(), "no such device: dp-missing1");
    let e = AfXdpPort::open(
        "lo",
        AfXdpOptions {
            n_rxq: Some(0),
            ..AfXdpOptions::default()
        },
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("n_rxq 0 is out of range"), "{e}");
    if !is_root() {
        return;
    }
    // A driver without native XDP: `native` is refused with the kernel's
    // errno, and nothing stays attached.
    let mut net = Net::new();
    let dev = net.name("xd");
    run(&["ip", "link", "add", &dev, "type", "bridge"]);
    net.links.push(dev.clone());
    let e = AfXdpPort::open(
        &dev,
        AfXdpOptions {
            mode: XdpMode::Native,
            ..AfXdpOptions::default()
        },
    )
    .err()
    .unwrap();
    assert!(
        e.to_string()
            .contains("attaching the XDP program (Native mode)")
            && e.to_string().contains("os error"),
        "{e}"
    );
    assert_eq!(xdp_attached(&dev), "");
}

#[test]
fn tcp_between_namespaces_through_afxdp_ports() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut net = Net::new();
    let ns1 = net.netns("e");
    let ns2 = net.netns("f");
    let (h1, n1) = net.veth("e", &ns1, "10.231.13.1/24");
    let (h2, n2) = net.veth("f", &ns2, "10.231.13.2/24");
    // AF_XDP carries no checksum state: the hosts checksum their frames.
    run(&[
        "ip", "netns", "exec", &ns1, "ethtool", "-K", &n1, "tx", "off",
    ]);
    run(&[
        "ip", "netns", "exec", &ns2, "ethtool", "-K", &n2, "tx", "off",
    ]);
    let dp = Datapath::new(DpConfig::default(), Arc::new(Patch(1, 2))).unwrap();
    dp.add_port(1, AfXdpPort::open(&h1, AfXdpOptions::default()).unwrap())
        .unwrap();
    dp.add_port(2, AfXdpPort::open(&h2, AfXdpOptions::default()).unwrap())
        .unwrap();
    ping(&ns1, "10.231.13.2");
    tcp_transfer(&ns1, &ns2, "10.231.13.2", "20M");
    let s1 = dp.port_stats(1).unwrap();
    assert!(s1.rx_bytes > 10_000_000, "{s1:?}");
    let s2 = dp.port_stats(2).unwrap();
    assert!(s2.tx_bytes > 10_000_000, "{s2:?}");
    dp.shutdown();
}
