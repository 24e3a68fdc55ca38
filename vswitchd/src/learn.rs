//! Side effects of a translation that change the bridge: flows built by
//! `learn` actions (added to the tables, within each action's `limit`),
//! and the actions the switch installs but does not execute (`ct`,
//! `resubmit(...,ct)`), counted and logged at most once a second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use flows::Match;
use flows::classifier::RuleId;
use flows::table::{FlowFilter, Pipeline};
use flows::xlate::XlateResult;
use tracing::warn;

/// Flows each learning rule added, for `limit`.
#[derive(Default)]
pub struct LearnedBy {
    by: HashMap<(u8, RuleId), Vec<(u8, Match, u32)>>,
}

fn exists(p: &Pipeline, table: u8, m: &Match, priority: u32) -> bool {
    let filter = FlowFilter {
        table_id: table,
        m: *m,
        strict: Some(priority),
        ..FlowFilter::default()
    };
    !p.dump(&filter).is_empty()
}

impl LearnedBy {
    /// Adds the flows `x` learned to `p`. Returns true when a table
    /// changed (a new flow or new actions), i.e. when cached decisions may
    /// be stale; re-learning an identical flow only refreshes it.
    pub fn apply(&mut self, p: &mut Pipeline, x: &XlateResult, now_ms: u64) -> bool {
        let mut changed = false;
        for lf in &x.learned_flows {
            let fm = &lf.fm;
            let filter = FlowFilter {
                table_id: fm.table_id,
                m: fm.m,
                strict: Some(fm.priority),
                ..FlowFilter::default()
            };
            let same = p
                .dump(&filter)
                .first()
                .map(|(_, _, r)| r.actions == fm.actions && r.cookie == fm.cookie);
            if same.is_none() && lf.limit != 0 {
                if let Some(learner) = lf.learner {
                    let list = self.by.entry(learner).or_default();
                    list.retain(|(t, m, prio)| exists(p, *t, m, *prio));
                    if list.len() >= lf.limit as usize {
                        continue;
                    }
                }
            }
            match p.flow_mod(fm, now_ms) {
                Ok(_) => {
                    if same != Some(true) {
                        changed = true;
                    }
                    if same.is_none()
                        && let Some(learner) = lf.learner
                    {
                        self.by
                            .entry(learner)
                            .or_default()
                            .push((fm.table_id, fm.m, fm.priority));
                    }
                }
                Err(e) => warn!("learned flow refused: {e}"),
            }
        }
        changed
    }
}

/// Counts the actions the switch does not execute; logs at most once a
/// second.
pub struct Unsupported {
    pub count: AtomicU64,
    last_log: Mutex<Option<Instant>>,
}

impl Default for Unsupported {
    fn default() -> Self {
        Unsupported {
            count: AtomicU64::new(0),
            last_log: Mutex::new(None),
        }
    }
}

impl Unsupported {
    pub fn record(&self, bridge: &str, x: &XlateResult) {
        if x.unsupported.is_empty() {
            return;
        }
        let total = self
            .count
            .fetch_add(x.unsupported.len() as u64, Ordering::Relaxed)
            + x.unsupported.len() as u64;
        let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed().as_secs() >= 1) {
            *last = Some(Instant::now());
            warn!(
                bridge,
                "{} not executed (connection tracking is not wired into the datapath); {total} such actions so far",
                x.unsupported.join(", ")
            );
        }
    }
}
