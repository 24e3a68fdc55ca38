//! Commands from the control path and the handler thread to a PMD thread.

use std::sync::Arc;

use crossbeam_channel::{SendError, Sender};
use flows::{DpAction, DpPortNo, FlowKey};

use super::MegaflowInfo;
use crate::packet::Packet;
use crate::port::{PortStats, RxQueue, TxQueue};
use crate::wakeup::EventFd;

/// Selects megaflows by their match (targeted invalidation).
pub type MegaflowPredicate = std::sync::Arc<dyn Fn(&flows::Match) -> bool + Send + Sync>;

pub(crate) enum PmdCmd {
    AddTxq {
        no: DpPortNo,
        txq: Box<dyn TxQueue>,
        ack: Sender<()>,
    },
    AddRxq {
        no: DpPortNo,
        rxq: Box<dyn RxQueue>,
        stats: Arc<PortStats>,
        ack: Sender<()>,
    },
    DelPort {
        no: DpPortNo,
        ack: Sender<()>,
    },
    /// Drop every megaflow (and the EMC); the ack carries the final
    /// counters of the megaflows dropped.
    Flush {
        generation: u64,
        ack: Sender<Vec<super::MegaflowInfo>>,
    },
    /// Drop the megaflows `pred` selects (and the EMC); keep the rest. The
    /// ack carries the final counters of the megaflows dropped.
    FlushWhere {
        generation: u64,
        pred: MegaflowPredicate,
        ack: Sender<Vec<super::MegaflowInfo>>,
    },
    /// Re-pin the PMD thread to a CPU.
    SetCpu {
        cpu: usize,
        ack: Sender<()>,
    },
    /// Apply `other_config:pmd-maxsleep`.
    SetMaxSleep {
        max_sleep: Option<std::time::Duration>,
        ack: Sender<()>,
    },
    /// Apply `other_config:emc-insert-inv-prob`.
    SetEmcInsertInvProb {
        inv_prob: u32,
        ack: Sender<()>,
    },
    /// From now on, send the packets `DpAction::Sample` picks to `q`.
    SetSamples {
        q: Sender<super::Sampled>,
        ack: Sender<()>,
    },
    /// Stop (`true`) or resume (`false`) receiving from every port
    /// (`other_config:flow-restore-wait`).
    SetHold {
        hold: bool,
        ack: Sender<()>,
    },
    /// The slow path's answer to a miss of this PMD.
    UpcallReply(Box<UpcallReply>),
    /// Packet-out.
    Execute {
        packet: Packet,
        actions: Vec<DpAction>,
    },
    /// Port policing: datapath meters for received and sent packets.
    SetPolicing {
        no: DpPortNo,
        ingress: Option<u32>,
        egress: Option<u32>,
        ack: Sender<()>,
    },
    DumpFlows {
        reply: Sender<Vec<MegaflowInfo>>,
    },
    ClearStats {
        ack: Sender<()>,
    },
    Quit,
}

pub(crate) struct UpcallReply {
    /// Flow-cache generation the decision was made under.
    pub generation: u64,
    pub key: FlowKey,
    pub mask: FlowKey,
    pub actions: Arc<[DpAction]>,
    pub install: bool,
    pub packet: Packet,
}

/// The sending end of a PMD's command channel plus its wake-up fd.
#[derive(Clone)]
pub(crate) struct PmdLink {
    pub tx: Sender<PmdCmd>,
    pub wake: Arc<EventFd>,
}

impl PmdLink {
    /// Queues `cmd` and wakes the PMD if it sleeps.
    pub fn send(&self, cmd: PmdCmd) -> Result<(), Box<SendError<PmdCmd>>> {
        self.tx.send(cmd).map_err(Box::new)?;
        self.wake.signal();
        Ok(())
    }
}
