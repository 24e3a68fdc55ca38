//! Start-up, the reconciler loop that follows the DB, and shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use datapath::{Datapath, DpConfig};
use tracing::{error, info, warn};

use crate::Args;
use crate::config::SwitchConfig;
use crate::dbstatus::{Runtime, status_ops};
use crate::ofproto::{SlowPath, run_revalidator};
use crate::ofservice::OfManager;
use crate::switch::Switch;

/// Everything the appctl commands and the OpenFlow agents reach.
pub struct Ctx {
    pub switch: Arc<Switch>,
    pub db: ovsdb::Db,
    pub of: Arc<OfManager>,
    pub log: crate::LogHandle,
    pub started: Instant,
    /// What the config DB server counts (clients connected).
    pub db_stats: Arc<ovsdb::server::ServerStats>,
    /// The CPUs the daemon started with, for keeping its threads off the PMDs'.
    pub placement: crate::placement::Placement,
}

pub fn run(args: Args, log: crate::LogHandle, lock: crate::rundir::RundirLock) -> Result<()> {
    let placement = crate::placement::Placement::capture();
    let db = ovsdb::Db::open(&args.db)
        .map_err(|e| match e {
            ovsdb::DbError::Empty { .. } => anyhow::anyhow!(
                "{e}; refusing to start with an empty configuration (--db-create initializes it)"
            ),
            e => e.into(),
        })
        .with_context(|| format!("cannot open the config DB {}", args.db.display()))?;
    info!("config DB {} opened", args.db.display());

    // PMD placement: the command line wins over the DB.
    let first = SwitchConfig::from_data(&db.snapshot());
    let pmd_cpus = if !args.pmd_cpus.is_empty() {
        args.pmd_cpus.clone()
    } else {
        first.pmd_cpus().unwrap_or_default()
    };
    let dp_cfg = DpConfig {
        n_pmd: pmd_cpus.len().max(1),
        pmd_cpus: pmd_cpus.clone(),
        max_sleep: first.pmd_max_sleep(),
        emc_insert_inv_prob: first.emc_insert_inv_prob(),
        // Open vSwitch's default datapath flow limit.
        max_megaflows: 200_000,
        ..DpConfig::default()
    };
    let (slow, reval_rx) = SlowPath::new();
    let dp = Arc::new(
        Datapath::with_conntrack(dp_cfg, slow.clone(), slow.ct.clone())
            .context("cannot start the datapath")?,
    );
    info!(
        "datapath up: {} PMD thread(s){}",
        pmd_cpus.len().max(1),
        if pmd_cpus.is_empty() {
            String::new()
        } else {
            format!(" on CPU(s) {pmd_cpus:?}")
        }
    );
    if first.flow_restore_wait() {
        // Before any port is added: nothing is received until the flows
        // are restored and the key goes back to false.
        dp.set_hold(true);
        info!("flow-restore-wait: the datapath receives nothing until it is set to false");
    }
    slow.tnl
        .attach(dp.tnl_headers().clone(), Some(Arc::downgrade(&dp)));
    let switch = Arc::new(Switch::new(dp.clone(), slow.clone(), args.rundir.clone()));
    {
        let (sp, dp) = (slow.clone(), dp.clone());
        std::thread::Builder::new()
            .name("revalidator".into())
            .spawn(move || run_revalidator(sp, dp, reval_rx))
            .context("cannot start the revalidator thread")?;
    }
    {
        let (sp, dp) = (slow.clone(), dp.clone());
        std::thread::Builder::new()
            .name("bond".into())
            .spawn(move || crate::bond::run_thread(sp, dp))
            .context("cannot start the bond thread")?;
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vswitchd-io")
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")?;

    let of = Arc::new(OfManager::new(
        switch.clone(),
        args.rundir.clone(),
        rt.handle().clone(),
    ));
    let ctx = Arc::new(Ctx {
        switch: switch.clone(),
        db: db.clone(),
        of: of.clone(),
        log,
        started: Instant::now(),
        db_stats: Default::default(),
        placement,
    });
    {
        // A weak reference: the hook lives in the switch it flushes.
        let sw = Arc::downgrade(&switch);
        switch.slow.tnl.set_change_hook(Box::new(move || {
            if let Some(sw) = sw.upgrade() {
                sw.revalidate_now();
            }
        }));
    }
    crate::tnl::netlink::spawn_monitor(switch.slow.tnl.clone());

    // The DB server: RUNDIR/db.sock plus any --remote.
    let mut remotes = vec![ovsdb::server::Remote::Unix(args.rundir.join("db.sock"))];
    for r in &args.remote {
        remotes.push(r.parse().map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    {
        let (db, stats) = (db.clone(), ctx.db_stats.clone());
        rt.spawn(async move {
            if let Err(e) = ovsdb::server::serve(db, remotes, stats).await {
                error!("config DB server stopped: {e}");
            }
        });
    }
    // appctl.
    let registry = crate::appctl::registry(ctx.clone());
    {
        let path = args.rundir.join("vswitchd.ctl");
        rt.spawn(async move {
            if let Err(e) = crate::unixctl::serve(&path, registry).await {
                error!("appctl server stopped: {e}");
            }
        });
    }

    // The reconciler follows the DB on its own thread.
    {
        let ctx = ctx.clone();
        let metrics = crate::metrics::Exporter::new(rt.handle().clone());
        std::thread::Builder::new()
            .name("reconciler".into())
            .spawn(move || reconcile_loop(ctx, metrics))
            .context("cannot start the reconciler thread")?;
    }

    if !pmd_cpus.is_empty() {
        // Every thread is up now; those created later inherit the placement.
        ctx.placement
            .keep_off_pmd_cpus(&pmd_cpus, &dp.pmd_thread_ids());
    }
    info!("vswitchd ready (run directory {})", args.rundir.display());
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = ctx.of.exit_requested() => {}
        }
    });
    info!("vswitchd exiting");
    of.shutdown();
    for name in ["db.sock", "vswitchd.ctl"] {
        let _ = std::fs::remove_file(args.rundir.join(name));
    }
    rt.shutdown_timeout(Duration::from_millis(500));
    drop(lock);
    Ok(())
}

/// Reads the DB, applies it, writes runtime state back; then waits for the
/// next commit (or a second, for link state and statistics).
fn reconcile_loop(ctx: Arc<Ctx>, mut metrics: crate::metrics::Exporter) {
    let (_, commits) = ctx.db.snapshot_and_subscribe();
    let mut last: Option<SwitchConfig> = None;
    let mut last_stats = Instant::now() - Duration::from_secs(60);
    let mut last_retry = Instant::now();
    let mut policing = crate::policing::Policing::default();
    let mut flow_export = crate::netflow::FlowExport::default();
    let mut ipfix = crate::ipfix::IpfixExport::default();
    let mut ct_policies = crate::ct_policy::CtPolicies::default();
    let mut held = SwitchConfig::from_data(&ctx.db.snapshot()).flow_restore_wait();
    loop {
        let data = ctx.db.snapshot();
        let cfg = SwitchConfig::from_data(&data);
        if last.as_ref() != Some(&cfg) {
            ctx.switch.apply(&cfg);
            ctx.of.configure(&cfg);
            if cfg.flow_restore_wait() != held {
                held = cfg.flow_restore_wait();
                ctx.switch.dp.set_hold(held);
                if held {
                    info!("flow-restore-wait: the datapath stops receiving");
                } else {
                    info!("flow-restore-wait ended: the datapath receives again");
                }
            }
            metrics.configure(
                cfg.other_config
                    .get(crate::metrics::ADDRESS_KEY)
                    .map(String::as_str),
                &ctx,
            );
            let cpus = cfg.pmd_cpus();
            if last.as_ref().is_some_and(|l| l.pmd_cpus() != cpus)
                && let Some(cpus) = cpus.filter(|c| !c.is_empty())
            {
                if cpus.len() != ctx.switch.dp.n_pmds() {
                    warn!(
                        "pmd-cpu-mask names {} CPU(s) but {} PMD thread(s) run; the number of PMD threads changes when vswitchd restarts",
                        cpus.len(),
                        ctx.switch.dp.n_pmds()
                    );
                }
                info!("PMD threads pinned to CPU(s) {cpus:?}");
                ctx.switch.dp.set_pmd_cpus(&cpus);
                ctx.placement
                    .keep_off_pmd_cpus(&cpus, &ctx.switch.dp.pmd_thread_ids());
            }
            let max_sleep = cfg.pmd_max_sleep();
            if last
                .as_ref()
                .is_some_and(|l| l.pmd_max_sleep() != max_sleep)
            {
                info!("pmd-maxsleep: {max_sleep:?}");
                ctx.switch.dp.set_pmd_max_sleep(max_sleep);
            }
            let inv_prob = cfg.emc_insert_inv_prob();
            if last
                .as_ref()
                .is_some_and(|l| l.emc_insert_inv_prob() != inv_prob)
            {
                match inv_prob {
                    0 => info!("EMC insertion off (emc-insert-inv-prob=0)"),
                    n => info!(
                        "EMC insertion probability 1/{n} (~{:.2}%)",
                        100.0 / f64::from(n)
                    ),
                }
                ctx.switch.dp.set_emc_insert_inv_prob(inv_prob);
            }
        }
        policing.reconcile(&ctx.switch, &data);
        flow_export.reconcile(&ctx.switch, &data);
        ipfix.reconcile(&ctx.switch, &data);
        ct_policies.reconcile(ctx.switch.slow.ct.tracker(), &data);
        if ctx.switch.refresh_links() {
            ctx.switch.revalidate_now();
        }
        if last_retry.elapsed() >= Duration::from_secs(2) {
            ctx.switch.retry_failed();
            last_retry = Instant::now();
        }
        let stats = (last_stats.elapsed() >= Duration::from_secs(5)).then(|| {
            last_stats = Instant::now();
            ctx.switch.iface_stats()
        });
        let (ifaces, controllers, dpids) = (
            ctx.switch.iface_status(),
            ctx.of.controller_status(),
            ctx.switch.dpids(),
        );
        let mirror_stats = ctx.switch.mirror_stats();
        let rt = Runtime {
            cfg: &cfg,
            ifaces: &ifaces,
            controllers: &controllers,
            dpids: &dpids,
            stats: stats.as_ref(),
            mirror_stats: &mirror_stats,
        };
        if let Err(e) = ctx.db.write(&status_ops(&data, &rt)) {
            warn!("writing runtime state to the DB failed: {e}");
        }
        last = Some(cfg);
        match commits.recv_timeout(Duration::from_secs(1)) {
            Ok(_) => while commits.try_recv().is_ok() {},
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
    }
}
