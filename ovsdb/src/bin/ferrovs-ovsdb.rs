//! Standalone OVSDB server: `ferrovs-ovsdb --db FILE --remote punix:PATH [--remote ptcp:PORT:IP]`.

use anyhow::Context;
use clap::Parser;
use ovsdb::Db;
use ovsdb::server::{Remote, serve};

#[derive(Parser)]
#[command(name = "ferrovs-ovsdb", about = "ferrovs OVSDB server (RFC 7047)")]
struct Args {
    /// Database file (created with an empty Open_vSwitch row if absent).
    #[arg(long)]
    db: std::path::PathBuf,
    /// Where to listen: punix:PATH or ptcp:PORT[:IP]; may be repeated.
    #[arg(long = "remote", required = true)]
    remotes: Vec<Remote>,
}

fn main() {
    // The message and its causes; no backtrace even with RUST_BACKTRACE.
    if let Err(e) = run() {
        eprintln!("ferrovs-ovsdb: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let db = Db::open(&args.db).with_context(|| format!("opening {}", args.db.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(db, args.remotes, Default::default()))
        .context("serving")?;
    Ok(())
}
