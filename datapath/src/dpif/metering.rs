//! Where the PMD meets the meters (`crate::meter`): the meter actions of a
//! megaflow run over all of that flow's packets of a batch at once, and
//! port policers over a received batch or a transmitted packet.

use flows::DpAction;

use crate::meter::{BatchMask, Meters};
use crate::packet::{BATCH_SIZE, Packet};

/// A packet's fate: the index of the meter action (among the list's meter
/// actions) that drops it, or [`PASS`].
pub(crate) const PASS: u8 = u8::MAX;

/// Runs the meter actions of `actions`, in order, over packets of lengths
/// `lens` (at most [`BATCH_SIZE`]): a packet dropped by one meter is not
/// offered to the next. Writes each packet's fate into `fate`.
pub(crate) fn meter_batch(
    meters: &Meters,
    actions: &[DpAction],
    now_ns: u64,
    lens: &[u32],
    fate: &mut [u8],
) {
    let n = lens.len().min(BATCH_SIZE).min(fate.len());
    fate[..n].fill(PASS);
    let mut alive: BatchMask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
    let mut idx = 0u8;
    for a in actions {
        let DpAction::Meter(id) = a else { continue };
        if alive == 0 {
            break;
        }
        let dropped = meters.run(*id, now_ns, &lens[..n], alive);
        for (i, f) in fate[..n].iter_mut().enumerate() {
            if dropped & (1 << i) != 0 {
                *f = idx;
            }
        }
        alive &= !dropped;
        idx = idx.saturating_add(1);
    }
}

/// Meters the packets of one megaflow in a batch (`of_flow` says which of
/// `pkts` belong to it) and writes their fates into `fate`, by batch slot.
pub(crate) fn meter_flow(
    meters: &Meters,
    actions: &[DpAction],
    now_ns: u64,
    of_flow: impl Iterator<Item = bool>,
    pkts: &[Packet],
    fate: &mut [u8; BATCH_SIZE],
) {
    let mut lens = [0u32; BATCH_SIZE];
    let mut at = [0usize; BATCH_SIZE];
    let mut m = 0;
    for ((k, mine), pkt) in of_flow.enumerate().zip(pkts) {
        if mine && m < BATCH_SIZE {
            lens[m] = pkt.len() as u32;
            at[m] = k;
            m += 1;
        }
    }
    let mut f = [PASS; BATCH_SIZE];
    meter_batch(meters, actions, now_ns, &lens[..m], &mut f[..m]);
    for (k, v) in at[..m].iter().zip(f) {
        fate[*k] = v;
    }
}

/// The fate of a single packet (upcalls, packet-outs).
pub(crate) fn meter_one(meters: &Meters, actions: &[DpAction], now_ns: u64, len: u32) -> u8 {
    if !actions.iter().any(|a| matches!(a, DpAction::Meter(_))) {
        return PASS;
    }
    let mut fate = [PASS];
    meter_batch(meters, actions, now_ns, &[len], &mut fate);
    fate[0]
}

/// How many meter actions a list has (cached per megaflow).
pub(crate) fn count_meters(actions: &[DpAction]) -> u8 {
    actions
        .iter()
        .filter(|a| matches!(a, DpAction::Meter(_)))
        .count()
        .min(usize::from(u8::MAX - 1)) as u8
}
