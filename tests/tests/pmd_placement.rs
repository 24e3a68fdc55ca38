//! A PMD pinned by `other_config:pmd-cpu-mask` has its CPU to itself among
//! the daemon's threads: every other thread of vswitchd (OpenFlow, DB,
//! handler, revalidator workers) is moved to the CPUs left over, so none of
//! them preempts the busy-polling PMD. The placement follows a change of the
//! mask at run time.
//!
//! Run under the e2e lock: `flock /tmp/ferrovs-e2e.lock cargo test -p
//! ferrovs-tests --test pmd_placement`.

use std::time::Duration;

use anyhow::{Result, bail};
use ferrovs_tests::*;

/// Each thread of `pid`: (name, CPUs it may run on, as the kernel lists them).
fn threads(pid: u32) -> Vec<(String, String)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            let status = std::fs::read_to_string(t.path().join("status")).ok()?;
            let cpus = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
                .trim()
                .to_string();
            Some((comm.trim().to_string(), cpus))
        })
        .collect()
}

fn online_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The CPUs of this machine but `cpu`, written as the kernel lists them ("0,2-3").
fn all_cpus_but(cpu: usize) -> String {
    let cpus: Vec<usize> = (0..online_cpus()).filter(|&c| c != cpu).collect();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for c in cpus {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == c => *end = c,
            _ => ranges.push((c, c)),
        }
    }
    ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Waits until the PMD runs on `pmd_cpu` alone and every other thread on
/// `others` alone; the threads as last seen otherwise.
fn wait_for_placement(pid: u32, pmd_cpu: &str, others: &str) -> Result<()> {
    let mut seen = Vec::new();
    let placed = wait_until(Duration::from_secs(30), || {
        seen = threads(pid);
        seen.iter().any(|(n, _)| n.starts_with("pmd"))
            && seen.iter().all(|(n, c)| {
                if n.starts_with("pmd") {
                    c == pmd_cpu
                } else {
                    c == others
                }
            })
    });
    if !placed {
        bail!("PMD on {pmd_cpu}, others on {others} expected; threads: {seen:?}");
    }
    Ok(())
}

#[test]
fn threads_other_than_the_pinned_pmd_stay_off_its_cpu_and_follow_a_mask_change() -> Result<()> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return Ok(());
    }
    if online_cpus() < 2 {
        // With one CPU there is nowhere else to put the other threads.
        eprintln!("skipped: needs two CPUs");
        return Ok(());
    }
    let sw = Switch::start()?;
    let pid = sw.proc.0.as_ref().expect("vswitchd runs").id();
    sw.vsctl(&["set", "Open_vSwitch", ".", "other_config:pmd-cpu-mask=0x2"])?;
    wait_for_placement(pid, "1", &all_cpus_but(1))?;
    // The mask moves the PMD to CPU 0: the others move off it.
    sw.vsctl(&["set", "Open_vSwitch", ".", "other_config:pmd-cpu-mask=0x1"])?;
    wait_for_placement(pid, "0", &all_cpus_but(0))?;
    // The switch still answers on every channel after the moves.
    sw.vsctl(&["add-br", "br0"])?;
    assert!(sw.ofctl(&["dump-flows", "br0"])?.contains("actions=NORMAL"));
    assert!(sw.appctl(&["dpif-netdev/pmd-stats-show"]).is_ok());
    Ok(())
}
