//! `vswitchd`: the ferrovs daemon.
//!
//!     vswitchd [--rundir DIR] [--db FILE] [--db-create] [--pmd-cpus LIST]
//!
//! It locks the run directory (`RUNDIR/vswitchd.pid`), opens (or creates)
//! the config DB, serves it on `RUNDIR/db.sock`,
//! follows it to build bridges and ports, speaks OpenFlow on
//! `RUNDIR/BRIDGE.mgmt` and to controllers, and answers appctl on
//! `RUNDIR/vswitchd.ctl`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use tracing::{info, warn};

mod appctl;
mod bond;
mod capabilities;
mod config;
mod ct_appctl;
mod ct_limits;
mod ct_policy;
mod daemon;
mod dbstatus;
mod dpformat;
mod heap_trim;
mod ipf_appctl;
mod ipfix;
mod learn;
mod limits;
mod megaflow_credit;
mod meters;
mod metrics;
mod mirror;
mod netflow;
mod ofproto;
mod ofservice;
mod patch;
mod placement;
mod policing;
mod recirc;
mod rundir;
mod switch;
mod tnl;
mod tunnel_config;
mod unixctl;

#[derive(Parser, Debug)]
#[command(
    name = "vswitchd",
    version,
    about = "The ferrovs virtual switch daemon"
)]
pub struct Args {
    /// Directory for the sockets (db.sock, BRIDGE.mgmt, vswitchd.ctl).
    #[arg(long, env = "FERROVS_RUNDIR", default_value = "/run/ferrovs")]
    pub rundir: PathBuf,
    /// The config DB file (created, mode 0600, with an empty configuration
    /// if missing).
    #[arg(long, env = "FERROVS_DB", default_value = "/var/lib/ferrovs/conf.db")]
    pub db: PathBuf,
    /// Also accept an existing empty (0-byte) DB file and initialize it;
    /// without this an empty file is an error.
    #[arg(long)]
    pub db_create: bool,
    /// CPUs for the PMD threads (e.g. `1` or `2,3`); overrides the DB's
    /// `other_config:pmd-cpu-mask`. Without either, one unpinned PMD thread.
    #[arg(long, value_delimiter = ',')]
    pub pmd_cpus: Vec<usize>,
    /// Also serve the DB on this TCP remote (`ptcp:PORT:IP`).
    #[arg(long)]
    pub remote: Vec<String>,
    /// Log filter (tracing's EnvFilter syntax); RUST_LOG overrides.
    #[arg(long, default_value = "info")]
    pub log: String,
    /// Print start-up errors with their full detail (and backtrace when
    /// RUST_BACKTRACE is set).
    #[arg(long)]
    pub debug: bool,
}

fn main() {
    let args = Args::parse();
    let debug = args.debug;
    if let Err(e) = start(args) {
        // The message (and its causes) only; a backtrace is for --debug.
        if debug {
            eprintln!("vswitchd: {e:?}");
        } else {
            eprintln!("vswitchd: {e:#}");
        }
        std::process::exit(1);
    }
}

fn start(args: Args) -> Result<()> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| args.log.clone());
    let log_handle = logging(&filter)?;
    match limits::raise_nofile_limit() {
        Ok((old, new)) if old != new => info!("open files limit raised from {old} to {new}"),
        Ok((_, new)) => info!("open files limit is {new}"),
        Err(e) => warn!("cannot raise the open files limit: {e}"),
    }
    rundir::prepare(&args.rundir)?;
    // Before any socket is touched: one daemon per run directory.
    let lock = rundir::RundirLock::acquire(&args.rundir)?;
    if let Some(dir) = args.db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create DB directory {}", dir.display()))?;
    }
    if args.db_create && std::fs::metadata(&args.db).is_ok_and(|m| m.is_file() && m.len() == 0) {
        std::fs::remove_file(&args.db)
            .with_context(|| format!("cannot replace the empty DB file {}", args.db.display()))?;
    }
    daemon::run(args, log_handle, lock)
}

/// Handle to change the log filter at run time (`appctl vlog/set`).
pub type LogHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

fn logging(filter: &str) -> Result<LogHandle> {
    use tracing_subscriber::prelude::*;
    let env = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("bad log filter {filter:?}"))?;
    let (layer, handle) = tracing_subscriber::reload::Layer::new(env);
    tracing_subscriber::registry()
        .with(layer)
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(true)
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
    Ok(handle)
}
