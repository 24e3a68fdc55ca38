//! Two ports cross-connected through the datapath: everything received on
//! one leaves on the other (a megaflow per direction, installed by a
//! trivial slow path).
//!
//! ```text
//! l2fwd [--seconds N] [--pmd-cpu C] [--no-tx-offload] [--v3] PORT_A PORT_B
//!     PORT: NAME (an existing interface, AF_PACKET) or tap:NAME (a TAP
//!     device, created if missing)
//! ```
//!
//! Two namespaces through veth + veth:
//! ```text
//! ip netns add dp-h1; ip netns add dp-h2
//! ip link add dp-v1 type veth peer name eth0 netns dp-h1
//! ip link add dp-v2 type veth peer name eth0 netns dp-h2
//! ip -n dp-h1 addr add 10.232.0.1/24 dev eth0; ip -n dp-h1 link set eth0 up
//! ip -n dp-h2 addr add 10.232.0.2/24 dev eth0; ip -n dp-h2 link set eth0 up
//! l2fwd --seconds 30 dp-v1 dp-v2 &
//! ip netns exec dp-h1 ping -c 3 10.232.0.2
//! ip netns exec dp-h2 iperf3 -s -D; ip netns exec dp-h1 iperf3 -c 10.232.0.2
//! ```
//! For veth + TAP use `dp-v1 tap:dp-t2` and move `dp-t2` into `dp-h2` once
//! l2fwd runs (`ip link set dp-t2 netns dp-h2`, then address it there).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use datapath::{
    AfPacketOptions, AfPacketPort, Datapath, DpConfig, Packet, Port, RxRing, TapPort,
    UpcallHandler, UpcallResult,
};
use flows::{DpAction, FlowKey};

struct CrossConnect;

impl UpcallHandler for CrossConnect {
    fn upcall(&self, key: &FlowKey, _packet: &Packet) -> UpcallResult {
        UpcallResult {
            actions: vec![DpAction::Output(if key.in_port == 1 { 2 } else { 1 })],
            mask: FlowKey::default(),
            install: true,
        }
    }

    fn userspace(&self, _: &DpAction, _: &FlowKey, _: &Packet) {}
}

fn open(spec: &str, tx_offload: bool, rx_ring: RxRing) -> Result<Arc<dyn Port>> {
    Ok(match spec.strip_prefix("tap:") {
        Some(name) => TapPort::open(name)?,
        None => AfPacketPort::open_with(
            spec,
            AfPacketOptions {
                vnet_hdr: true,
                tx_offload,
                rx_ring,
            },
        )?,
    })
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1);
    let mut seconds = u64::MAX;
    let mut cfg = DpConfig::default();
    let mut tx_offload = true;
    let mut rx_ring = RxRing::V2;
    let mut ports = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().context("--seconds N")?.parse()?,
            "--pmd-cpu" => cfg.pmd_cpus = vec![args.next().context("--pmd-cpu C")?.parse()?],
            "--no-tx-offload" => tx_offload = false,
            "--v3" => rx_ring = RxRing::V3,
            _ => ports.push(a),
        }
    }
    if ports.len() != 2 {
        bail!("usage: l2fwd [--seconds N] [--pmd-cpu C] [--no-tx-offload] [--v3] PORT_A PORT_B");
    }
    let dp = Datapath::new(cfg, Arc::new(CrossConnect))?;
    dp.add_port(1, open(&ports[0], tx_offload, rx_ring)?)?;
    dp.add_port(2, open(&ports[1], tx_offload, rx_ring)?)?;
    println!("forwarding {} <-> {}", ports[0], ports[1]);
    let end = Instant::now() + Duration::from_secs(seconds.min(10 * 365 * 86_400));
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(2).min(end - Instant::now()));
        for s in dp.pmd_stats() {
            println!(
                "pmd {}: rx {} emc {} megaflow {} upcalls {} lost {} busy {:.1}% {:.0} ns/pkt",
                s.pmd,
                s.rx_packets,
                s.emc_hits,
                s.megaflow_hits,
                s.upcalls,
                s.lost_upcalls,
                100.0 * s.busy_ns as f64 / (s.busy_ns + s.idle_ns).max(1) as f64,
                s.ns_per_packet()
            );
        }
        for no in [1, 2] {
            if let Some(p) = dp.port_stats(no) {
                println!(
                    "  port {no}: rx {} pkts {} bytes, tx {} pkts {} bytes, drops rx {} tx {}, errors rx {} tx {}",
                    p.rx_packets,
                    p.rx_bytes,
                    p.tx_packets,
                    p.tx_bytes,
                    p.rx_dropped,
                    p.tx_dropped,
                    p.rx_errors,
                    p.tx_errors
                );
            }
        }
    }
    dp.shutdown();
    Ok(())
}
