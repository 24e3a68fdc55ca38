//! The upcall handler thread: runs the slow path for misses and userspace
//! actions, and sends each decision back to the PMD that asked.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::Receiver;
use flows::{DpAction, FlowKey};

use super::cmd::{PmdCmd, PmdLink, UpcallReply};
use super::{Shared, UpcallHandler};
use crate::packet::Packet;

pub(crate) enum UpcallMsg {
    Miss {
        pmd: usize,
        key: FlowKey,
        packet: Packet,
    },
    Userspace {
        action: DpAction,
        key: FlowKey,
        packet: Packet,
    },
}

pub(crate) fn run(
    rx: Receiver<UpcallMsg>,
    handler: Arc<dyn UpcallHandler>,
    pmds: Vec<PmdLink>,
    shared: Arc<Shared>,
) {
    for msg in rx.iter() {
        match msg {
            UpcallMsg::Miss { pmd, key, packet } => {
                // Read the generation before deciding: a flush that lands while
                // the slow path runs makes this decision too old to cache.
                let generation = shared.generation.load(Ordering::Acquire);
                let r = handler.upcall(&key, &packet);
                let Some(link) = pmds.get(pmd) else { continue };
                let _ = link.send(PmdCmd::UpcallReply(Box::new(UpcallReply {
                    generation,
                    key,
                    mask: r.mask,
                    actions: r.actions.into(),
                    install: r.install,
                    packet,
                })));
            }
            UpcallMsg::Userspace {
                action,
                key,
                packet,
            } => handler.userspace(&action, &key, &packet),
        }
    }
}
