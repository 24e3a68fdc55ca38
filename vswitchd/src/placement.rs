//! Where vswitchd's own threads run: off the CPUs its PMD threads own.
//!
//! A PMD pinned by `other_config:pmd-cpu-mask` busy-polls its CPU. Any other
//! thread of the daemon that the scheduler puts there (the OpenFlow and DB
//! workers, the handler, the revalidator) preempts the PMD for a time slice,
//! and every packet waiting in its queues waits as long: the tail latency of
//! the switch. So, once PMDs are pinned, every other thread of the process is
//! kept on the CPUs the process was allowed at start minus the PMDs' ones, and
//! the threads they create later inherit that. If the PMDs own every allowed
//! CPU, nothing is moved.

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;
use tracing::{debug, info, warn};

/// The CPUs the process could run on when the daemon started.
pub struct Placement {
    allowed: Vec<usize>,
}

impl Placement {
    /// Records the process's CPU affinity; call before anything is pinned.
    pub fn capture() -> Placement {
        let allowed = match sched_getaffinity(Pid::from_raw(0)) {
            Ok(set) => (0..CpuSet::count())
                .filter(|&c| set.is_set(c).unwrap_or(false))
                .collect(),
            Err(e) => {
                warn!("cannot read the CPU affinity: {e}; threads stay where they are");
                Vec::new()
            }
        };
        Placement { allowed }
    }

    /// The CPUs left for the daemon's other threads when PMDs own `pmd_cpus`
    /// (empty: none is left, or nothing is known).
    pub fn service_cpus(&self, pmd_cpus: &[usize]) -> Vec<usize> {
        self.allowed
            .iter()
            .copied()
            .filter(|c| !pmd_cpus.contains(c))
            .collect()
    }

    /// Moves every thread of this process except `pmd_tids` onto the CPUs the
    /// PMDs (on `pmd_cpus`) leave free. Returns those CPUs (empty: nothing moved).
    pub fn keep_off_pmd_cpus(&self, pmd_cpus: &[usize], pmd_tids: &[i32]) -> Vec<usize> {
        let cpus = self.service_cpus(pmd_cpus);
        if pmd_cpus.is_empty() || cpus.is_empty() {
            debug!("no CPU left beside the PMDs'; the other threads stay where they are");
            return Vec::new();
        }
        let mut set = CpuSet::new();
        for &c in &cpus {
            let _ = set.set(c);
        }
        let tasks = match std::fs::read_dir("/proc/self/task") {
            Ok(t) => t,
            Err(e) => {
                warn!("cannot list this process's threads: {e}");
                return Vec::new();
            }
        };
        let mut moved = 0;
        for tid in tasks
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|tid| !pmd_tids.contains(tid))
        {
            // A thread may end meanwhile: that is not an error worth a word.
            match sched_setaffinity(Pid::from_raw(tid), &set) {
                Ok(()) => moved += 1,
                Err(e) => debug!(tid, "cannot move thread: {e}"),
            }
        }
        info!("{moved} non-PMD thread(s) kept on CPU(s) {cpus:?}, off the PMDs' {pmd_cpus:?}");
        cpus
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus_of(tid: i32) -> Vec<usize> {
        let set = sched_getaffinity(Pid::from_raw(tid)).unwrap();
        (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect()
    }

    #[test]
    fn service_cpus_are_the_allowed_ones_minus_the_pmds() {
        let p = Placement {
            allowed: vec![0, 1, 2, 3],
        };
        assert_eq!(p.service_cpus(&[1, 3]), vec![0, 2]);
        assert_eq!(p.service_cpus(&[0, 1, 2, 3]), Vec::<usize>::new());
        assert_eq!(p.service_cpus(&[]), vec![0, 1, 2, 3]);
    }

    #[test]
    fn threads_other_than_the_pmds_move_off_the_pmd_cpus_and_the_pmds_stay() {
        let p = Placement::capture();
        if p.allowed.len() < 2 {
            // One CPU: nothing to keep apart (and nothing may move).
            assert!(p.keep_off_pmd_cpus(&p.allowed, &[]).is_empty());
            return;
        }
        let pmd_cpu = p.allowed[p.allowed.len() - 1];
        // Two threads of this process: one plays the PMD, one a worker.
        let (ids_tx, ids_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let done_rx = std::sync::Arc::new(std::sync::Mutex::new(done_rx));
        let mut handles = Vec::new();
        for _ in 0..2 {
            let (ids_tx, done_rx) = (ids_tx.clone(), done_rx.clone());
            handles.push(std::thread::spawn(move || {
                // SAFETY: gettid has no preconditions.
                ids_tx.send(unsafe { libc::gettid() }).unwrap();
                let _ = done_rx.lock().unwrap().recv();
            }));
        }
        let (pmd, worker) = (ids_rx.recv().unwrap(), ids_rx.recv().unwrap());
        let before_pmd = cpus_of(pmd);
        let left = p.keep_off_pmd_cpus(&[pmd_cpu], &[pmd]);
        assert!(!left.contains(&pmd_cpu));
        assert_eq!(cpus_of(worker), left, "the worker moved off the PMD's CPU");
        assert_eq!(cpus_of(pmd), before_pmd, "the PMD thread was left alone");
        // Restore this test thread's affinity for the other tests of the binary.
        let mut all = CpuSet::new();
        for &c in &p.allowed {
            all.set(c).unwrap();
        }
        for _ in 0..2 {
            done_tx.send(()).unwrap();
        }
        for h in handles {
            h.join().unwrap();
        }
        for e in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            if let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                let _ = sched_setaffinity(Pid::from_raw(tid), &all);
            }
        }
    }
}
