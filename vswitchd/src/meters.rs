//! OpenFlow meters of a bridge: METER_MOD, meter stats, config and
//! features, on top of the bridge's `flows::meter::MeterTable` and the
//! datapath's limiters (`datapath::meter`). Each OpenFlow meter of each
//! bridge gets its own datapath meter; translation emits the OpenFlow id and
//! [`map_to_datapath`] rewrites it to the datapath's.

use datapath::Datapath;
use datapath::meter::{LimiterConfig, MAX_DP_METERS};
use flows::meter::{MAX_BANDS, METER_ALL, MeterError, MeterFlags, MeterTable};
use flows::xlate::XlateResult;
use flows::{Action, DpAction};
use openflow::error::OfError;
use openflow::message::{MeterFeatures, MeterMod, MeterModCommand, MeterStats};

use crate::ofproto::{AsyncMsg, BridgeState, Ofproto};

/// What a meter refusal is answered with.
pub fn meter_error(e: MeterError) -> OfError {
    match e {
        MeterError::Exists(_) => OfError::MeterExists,
        MeterError::Unknown(_) => OfError::UnknownMeter,
        MeterError::InvalidId(_) => OfError::InvalidMeter,
        MeterError::BadFlags(_) => OfError::BadMeterFlags,
        MeterError::BadRate => OfError::BadMeterRate,
        MeterError::BadBand => OfError::BadMeterBand,
        MeterError::OutOfBands => OfError::OutOfBands,
        MeterError::OutOfMeters => OfError::OutOfMeters,
    }
}

/// Applies a METER_MOD to the bridge. A deleted meter takes the flows that
/// use it with it, as in Open vSwitch.
pub fn meter_mod(
    dp: &Datapath,
    ofp: &Ofproto,
    st: &mut BridgeState,
    mm: MeterMod,
    now_ms: u64,
) -> Result<(), OfError> {
    match mm.command {
        MeterModCommand::Add => {
            mm.meter.validate().map_err(meter_error)?;
            if st.meters.contains(mm.meter.id) {
                return Err(OfError::MeterExists);
            }
            let dp_id = dp.meters().alloc().ok_or(OfError::OutOfMeters)?;
            dp.meters()
                .set(dp_id, &LimiterConfig::from_meter(&mm.meter), true);
            if let Err(e) = st.meters.add(mm.meter, dp_id, now_ms) {
                dp.meters().free(dp_id);
                return Err(meter_error(e));
            }
        }
        MeterModCommand::Modify => {
            let cfg = LimiterConfig::from_meter(&mm.meter);
            let dp_id = st.meters.modify(mm.meter).map_err(meter_error)?;
            dp.meters().set(dp_id, &cfg, false);
        }
        MeterModCommand::Delete => {
            for e in st.meters.delete(mm.meter.id) {
                for r in st.pipeline.delete_meter_users(e.meter.id) {
                    if r.rule.flags.send_flow_rem {
                        ofp.notify(AsyncMsg::FlowRemoved(std::sync::Arc::new(r)));
                    }
                }
                dp.meters().free(e.dp_id);
            }
        }
    }
    Ok(())
}

/// Gives a removed bridge's datapath meters back.
pub fn release_all(dp: &Datapath, st: &mut BridgeState) {
    for e in st.meters.delete(METER_ALL) {
        dp.meters().free(e.dp_id);
    }
}

/// A flow may only name meters that exist (OFPMMFC_INVALID_METER).
pub fn check_flow_meters(st: &BridgeState, actions: &[Action]) -> Result<(), OfError> {
    for m in flows::table::meters_used(actions) {
        if !st.meters.contains(m) {
            return Err(OfError::InvalidMeter);
        }
    }
    Ok(())
}

/// Rewrites the OpenFlow meter ids of translated actions to datapath
/// meters. A meter that vanished meanwhile drops the packet.
pub fn map_to_datapath(meters: &MeterTable, x: &mut XlateResult) {
    let mut cut = None;
    for (i, a) in x.actions.iter_mut().enumerate() {
        if let DpAction::Meter(m) = a {
            match meters.dp_id(*m) {
                Some(d) => *m = d,
                None => {
                    cut = Some(i);
                    break;
                }
            }
        }
    }
    if let Some(i) = cut {
        x.actions.truncate(i);
    }
}

/// OFPMP_METER: every meter or one (unknown: OFPMMFC_UNKNOWN_METER).
pub fn meter_stats(
    dp: &Datapath,
    st: &BridgeState,
    meter_id: u32,
    now_ms: u64,
) -> Result<Vec<MeterStats>, OfError> {
    if meter_id != METER_ALL && !st.meters.contains(meter_id) {
        return Err(OfError::UnknownMeter);
    }
    let counts = st.pipeline.meter_flow_counts();
    Ok(st
        .meters
        .iter()
        .filter(|e| meter_id == METER_ALL || e.meter.id == meter_id)
        .map(|e| {
            let s = dp.meters().stats(e.dp_id);
            let age = now_ms.saturating_sub(e.created_ms);
            MeterStats {
                meter_id: e.meter.id,
                flow_count: counts.get(&e.meter.id).copied().unwrap_or(0),
                packet_in_count: s.packets_in,
                byte_in_count: s.bytes_in,
                duration_sec: (age / 1000) as u32,
                duration_nsec: ((age % 1000) * 1_000_000) as u32,
                band_stats: s.bands,
            }
        })
        .collect())
}

/// OFPMP_METER_CONFIG: every meter or one.
pub fn meter_configs(st: &BridgeState, meter_id: u32) -> Result<Vec<flows::meter::Meter>, OfError> {
    if meter_id != METER_ALL && !st.meters.contains(meter_id) {
        return Err(OfError::UnknownMeter);
    }
    Ok(st
        .meters
        .iter()
        .filter(|e| meter_id == METER_ALL || e.meter.id == meter_id)
        .map(|e| e.meter.clone())
        .collect())
}

/// OFPMP_METER_FEATURES: drop bands, in kbps or pktps, with burst and
/// statistics.
pub fn meter_features() -> MeterFeatures {
    MeterFeatures {
        max_meter: MAX_DP_METERS,
        band_types: 1 << 1,
        capabilities: u32::from(MeterFlags::ALL),
        max_bands: MAX_BANDS as u8,
        max_color: 0,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datapath::{DpConfig, Packet, UpcallHandler, UpcallResult};
    use flows::FlowKey;
    use flows::meter::{Meter, MeterBand};
    use flows::table::{FlowFilter, FlowModCommand};

    use super::*;
    use crate::config::FailMode;

    struct Nothing;
    impl UpcallHandler for Nothing {
        fn upcall(&self, _: &FlowKey, _: &Packet) -> UpcallResult {
            UpcallResult::default()
        }
        fn userspace(&self, _: &DpAction, _: &FlowKey, _: &Packet) {}
    }

    fn add(id: u32, rate: u32) -> MeterMod {
        MeterMod {
            command: MeterModCommand::Add,
            meter: Meter {
                id,
                flags: MeterFlags(MeterFlags::PKTPS | MeterFlags::STATS),
                bands: vec![MeterBand::drop(rate, 0)],
            },
        }
    }

    #[test]
    fn meter_mods_drive_the_table_the_flows_and_the_datapath_meters() {
        let dp = Datapath::new(DpConfig::default(), Arc::new(Nothing)).unwrap();
        let ofp = Ofproto::new("mtrbr", FailMode::Secure, false, 1, 0);
        let mut st = ofp.lock();
        meter_mod(&dp, &ofp, &mut st, add(1, 10), 0).unwrap();
        meter_mod(&dp, &ofp, &mut st, add(2, 20), 0).unwrap();
        assert_eq!(
            meter_mod(&dp, &ofp, &mut st, add(1, 10), 0),
            Err(OfError::MeterExists)
        );
        let mut bad = add(3, 0);
        bad.meter.bands[0].rate = 0;
        assert_eq!(
            meter_mod(&dp, &ofp, &mut st, bad, 0),
            Err(OfError::BadMeterRate)
        );
        let (d1, d2) = (st.meters.dp_id(1).unwrap(), st.meters.dp_id(2).unwrap());
        assert_ne!(d1, d2);

        // Flows: a missing meter is refused, a present one accepted, and
        // translation names the datapath meter.
        let fm = |s: &str| flows::text::parse_flow_mod(s, FlowModCommand::Add).unwrap();
        assert_eq!(
            check_flow_meters(&st, &fm("actions=meter:9,output:2").actions),
            Err(OfError::InvalidMeter)
        );
        let f = fm("actions=meter:2");
        check_flow_meters(&st, &f.actions).unwrap();
        st.pipeline.flow_mod(&f, 0).unwrap();
        let x = st.translate(&FlowKey::default(), 0, false);
        assert_eq!(x.actions, vec![DpAction::Meter(d2)]);

        let stats = meter_stats(&dp, &st, METER_ALL, 2500).unwrap();
        assert_eq!(stats.len(), 2);
        assert_eq!((stats[1].flow_count, stats[1].duration_sec), (1, 2));
        assert_eq!(stats[1].duration_nsec, 500_000_000);
        assert_eq!(meter_stats(&dp, &st, 7, 0), Err(OfError::UnknownMeter));
        assert_eq!(meter_configs(&st, 2).unwrap()[0].bands[0].rate, 20);

        // Delete: the meter's flow goes, its datapath meter is reused.
        let del = MeterMod {
            command: MeterModCommand::Delete,
            ..add(2, 1)
        };
        meter_mod(&dp, &ofp, &mut st, del, 0).unwrap();
        assert!(st.pipeline.dump(&FlowFilter::default()).next().is_none());
        meter_mod(&dp, &ofp, &mut st, add(5, 1), 0).unwrap();
        assert_eq!(st.meters.dp_id(5), Some(d2));

        release_all(&dp, &mut st);
        assert!(st.meters.is_empty());
        let again = dp.meters().alloc().unwrap();
        assert!(again == d1 || again == d2, "a released meter is reused");
    }
}
