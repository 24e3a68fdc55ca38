//! Two vhost-user server ports cross-connected in one polling thread:
//! frames received on A are sent to B and back. Prints Mpps per direction.
//!
//! cargo run --release -p vhost-port --example vhost_loop -- \
//!     --sock-a /tmp/vh-a.sock --sock-b /tmp/vh-b.sock --core 1

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use datapath::packet::PacketBatch;
use datapath::port::{Port, RxQueue, TxQueue};
use vhost_port::{VhostUserOptions, VhostUserPort};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "/tmp/vh-loop-a.sock")]
    sock_a: String,
    #[arg(long, default_value = "/tmp/vh-loop-b.sock")]
    sock_b: String,
    /// CPU to pin the polling thread to.
    #[arg(long)]
    core: Option<usize>,
    /// Stop after this many seconds (0: run until killed).
    #[arg(long, default_value_t = 0)]
    seconds: u64,
    /// Seconds between rate reports.
    #[arg(long, default_value_t = 2)]
    interval: u64,
}

fn pin(core: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `core` is checked against the set's capacity by CPU_SET's
    // callers in libc; `set` is a valid, exclusively borrowed cpu_set_t.
    unsafe { libc::CPU_SET(core, &mut set) };
    // SAFETY: pid 0 is the calling thread; the pointer and size describe `set`.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 {
        anyhow::bail!(
            "sched_setaffinity({core}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

fn forward(rx: &mut dyn RxQueue, tx: &mut dyn TxQueue, batch: &mut PacketBatch) -> Result<usize> {
    batch.clear();
    let n = rx.rx_batch(batch)?;
    if n > 0 {
        for p in batch.packets_mut() {
            tx.send(p)?;
        }
        tx.flush()?;
    }
    Ok(n)
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    if let Some(c) = args.core {
        pin(c)?;
    }
    let a = VhostUserPort::server("vh-a", &args.sock_a, VhostUserOptions::default())
        .context("port A")?;
    let b = VhostUserPort::server("vh-b", &args.sock_b, VhostUserOptions::default())
        .context("port B")?;
    println!("listening on {} and {}", args.sock_a, args.sock_b);
    let mut rx_a = a.open_rxq(0)?;
    let mut rx_b = b.open_rxq(0)?;
    let mut tx_a = a.open_txq(0)?;
    let mut tx_b = b.open_txq(0)?;
    let mut batch = PacketBatch::new();
    let start = Instant::now();
    let mut last = Instant::now();
    let (mut ab, mut ba) = (0u64, 0u64);
    let (mut polls, mut busy_polls) = (0u64, 0u64);
    let interval = Duration::from_secs(args.interval.max(1));
    loop {
        for _ in 0..1024 {
            let x = forward(rx_a.as_mut(), tx_b.as_mut(), &mut batch)? as u64;
            let y = forward(rx_b.as_mut(), tx_a.as_mut(), &mut batch)? as u64;
            ab += x;
            ba += y;
            polls += 2;
            busy_polls += u64::from(x > 0) + u64::from(y > 0);
        }
        let now = Instant::now();
        if now - last >= interval {
            let secs = (now - last).as_secs_f64();
            let sa = a.stats().snapshot();
            let sb = b.stats().snapshot();
            println!(
                "A->B {:.3} Mpps  B->A {:.3} Mpps  (sum {:.3})  polls {} non-empty {}  drops A:{} B:{} errors A:{}/{} B:{}/{} link A:{} B:{}",
                ab as f64 / secs / 1e6,
                ba as f64 / secs / 1e6,
                (ab + ba) as f64 / secs / 1e6,
                polls,
                busy_polls,
                sa.tx_dropped,
                sb.tx_dropped,
                sa.rx_errors,
                sa.tx_errors,
                sb.rx_errors,
                sb.tx_errors,
                a.link_up(),
                b.link_up(),
            );
            if let Some(e) = a.last_error().or_else(|| b.last_error()) {
                println!("last error: {e}");
            }
            ab = 0;
            ba = 0;
            polls = 0;
            busy_polls = 0;
            last = now;
        }
        if args.seconds > 0 && start.elapsed() >= Duration::from_secs(args.seconds) {
            return Ok(());
        }
    }
}
