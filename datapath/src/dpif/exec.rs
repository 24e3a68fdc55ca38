//! Executing datapath actions on one packet, and the per-PMD set of
//! transmit queues those actions output to.

use crossbeam_channel::Sender;
use flows::{DpAction, DpPortNo, FlowKey};
use rustc_hash::FxHashMap;

use super::handler::UpcallMsg;
use crate::framebuf::apply;
use crate::packet::{Offload, Packet};
use crate::port::TxQueue;

/// The transmit queues of one PMD, and which of them hold unflushed frames.
#[derive(Default)]
pub(crate) struct TxSet {
    txqs: FxHashMap<DpPortNo, Box<dyn TxQueue>>,
    touched: Vec<DpPortNo>,
    pub errors: u64,
}

impl TxSet {
    pub fn insert(&mut self, no: DpPortNo, txq: Box<dyn TxQueue>) {
        self.txqs.insert(no, txq);
    }

    pub fn remove(&mut self, no: DpPortNo) {
        if let Some(mut q) = self.txqs.remove(&no) {
            let _ = q.flush();
        }
        self.touched.retain(|n| *n != no);
    }

    /// Queues a copy of `pkt` on port `no` (dropped when there is no such port).
    #[inline]
    pub fn output(&mut self, no: DpPortNo, pkt: &mut Packet) {
        let Some(q) = self.txqs.get_mut(&no) else {
            return;
        };
        if let Err(e) = q.send(pkt) {
            self.errors += 1;
            tracing::debug!("output to dp port {no}: {e}");
        }
        if !self.touched.contains(&no) {
            self.touched.push(no);
        }
    }

    /// Flushes every queue written since the last flush.
    pub fn flush(&mut self) {
        for no in self.touched.drain(..) {
            if let Some(q) = self.txqs.get_mut(&no)
                && let Err(e) = q.flush()
            {
                self.errors += 1;
                tracing::debug!("flush of dp port {no}: {e}");
            }
        }
    }
}

/// Runs `actions` in order on `pkt`. Returns the number of userspace copies
/// that could not be queued.
#[inline]
pub(crate) fn execute(
    actions: &[DpAction],
    pkt: &mut Packet,
    key: &FlowKey,
    tx: &mut TxSet,
    upcalls: &Sender<UpcallMsg>,
) -> u64 {
    let mut lost = 0;
    let mut i = 0;
    while i < actions.len() {
        let a = &actions[i];
        i += 1;
        match a {
            DpAction::CheckPktLen { size, .. } => {
                // The two branches follow; execution resumes after both.
                let (gt, le) = flows::dpaction::check_pkt_len_branches(actions, i - 1);
                let branch = if pkt.data().len() > usize::from(*size) {
                    gt
                } else {
                    le
                };
                lost += execute(branch, pkt, key, tx, upcalls);
                i += gt.len() + le.len();
            }
            DpAction::Output(no) => tx.output(*no, pkt),
            DpAction::Userspace { .. } => {
                let mut copy = Packet::from_bytes(pkt.data());
                copy.offload = pkt.offload;
                copy.in_port = pkt.in_port;
                let msg = UpcallMsg::Userspace {
                    action: *a,
                    key: *key,
                    packet: copy,
                };
                if upcalls.try_send(msg).is_err() {
                    lost += 1;
                }
            }
            other => {
                let partial = pkt.offload.flags & Offload::F_NEEDS_CSUM != 0;
                if let Err(e) = apply(pkt, other, partial) {
                    tracing::debug!("action {other:?} not applied: {e}");
                }
            }
        }
    }
    lost
}
