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

/// A learned flow: table, match, priority.
type LearnedKey = (u8, Match, u32);

/// Flows each learning rule added, for `limit`.
#[derive(Default)]
pub struct LearnedBy {
    by: HashMap<(u8, RuleId), Vec<LearnedKey>>,
}

fn exists(p: &Pipeline, table: u8, m: &Match, priority: u32) -> bool {
    let filter = FlowFilter {
        table_id: table,
        m: *m,
        strict: Some(priority),
        ..FlowFilter::default()
    };
    p.dump(&filter).next().is_some()
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
                .next()
                .map(|(_, _, r)| r.actions == fm.actions && r.cookie == fm.cookie);
            if same.is_none()
                && lf.limit != 0
                && let Some(learner) = lf.learner
            {
                let list = self.by.entry(learner).or_default();
                list.retain(|(t, m, prio)| exists(p, *t, m, *prio));
                if list.len() >= lf.limit as usize {
                    continue;
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

#[cfg(test)]
mod tests {
    use super::*;
    use flows::group::GroupTable;
    use flows::key::FlowKey;
    use flows::mac_learning::MacLearning;
    use flows::table::FlowModCommand;
    use flows::text::parse_flow_mod;
    use flows::xlate::{BridgePort, BridgePorts, XlateCtx, translate};

    fn xlate(p: &Pipeline, src: u8) -> XlateResult {
        let mut ports = BridgePorts::new();
        ports.insert(BridgePort::new(1, 101));
        let (groups, mac) = (GroupTable::new(), MacLearning::default());
        let ctx = XlateCtx {
            pipeline: p,
            groups: &groups,
            ports: &ports,
            mac: &mac,
            now_ms: 0,
            dp: None,
            patch: None,
        };
        let key = FlowKey {
            in_port: 1,
            dl_src: [0, 0, 0, 0, 0, src],
            ..FlowKey::default()
        };
        translate(&ctx, &key)
    }

    #[test]
    fn learned_flows_are_added_refreshed_without_change_and_capped_by_limit() {
        let mut p = Pipeline::new();
        let fm = parse_flow_mod(
            "table=0,actions=learn(table=5,limit=2,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[])",
            FlowModCommand::Add,
        )
        .unwrap();
        p.flow_mod(&fm, 0).unwrap();
        let mut by = LearnedBy::default();
        let x = xlate(&p, 1);
        assert!(by.apply(&mut p, &x, 0), "a new flow changes the table");
        let x = xlate(&p, 1);
        assert!(!by.apply(&mut p, &x, 0), "re-learning the same flow");
        let x = xlate(&p, 2);
        assert!(by.apply(&mut p, &x, 0));
        let x = xlate(&p, 3);
        assert!(!by.apply(&mut p, &x, 0), "over the limit of 2");
        assert_eq!(p.table(5).map(|t| t.len()), Some(2));
    }
}
