//! One vhost-user server port that sends every frame it receives back to
//! the guest, logging each one: a quick check of a VM's virtio-net against
//! the port.
//!
//! cargo run -p vhost-port --example vhost_echo -- --sock /tmp/vh-echo.sock

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use datapath::packet::PacketBatch;
use datapath::port::Port;
use vhost_port::{VhostUserOptions, VhostUserPort};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "/tmp/vh-echo.sock")]
    sock: String,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let port = VhostUserPort::server("vh-echo", &args.sock, VhostUserOptions::default())?;
    let mut rxq = port.open_rxq(0)?;
    let mut txq = port.open_txq(0)?;
    let mut batch = PacketBatch::new();
    let start = Instant::now();
    let mut link = false;
    while start.elapsed() < Duration::from_secs(args.seconds) {
        if port.link_up() != link {
            link = port.link_up();
            println!(
                "link {} caps {:?}",
                if link { "up" } else { "down" },
                port.tx_offload_caps()
            );
        }
        batch.clear();
        if rxq.rx_batch(&mut batch)? == 0 {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        for p in batch.packets_mut() {
            let d = p.data();
            let ethertype = d.get(12..14).map(|t| u16::from_be_bytes([t[0], t[1]]));
            println!(
                "frame {} bytes ethertype {:04x?} offload {:?}",
                p.len(),
                ethertype,
                p.offload
            );
            txq.send(p)?;
        }
        txq.flush()?;
    }
    println!("stats {:?}", port.stats().snapshot());
    if let Some(e) = port.last_error() {
        println!("last error: {e}");
    }
    Ok(())
}
