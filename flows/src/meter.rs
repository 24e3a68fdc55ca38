//! OpenFlow meters: the one model of a meter and its bands (used by the
//! OpenFlow codec, the daemon and ofctl), the bridge's meter table, and
//! ovs-ofctl's meter syntax (`meter=1,pktps,burst,stats,bands=type=drop,
//! rate=1000,burst_size=100`).
//!
//! The rate limiter itself lives in the datapath (`datapath::meter`), which
//! enforces a meter's bands on batches of packets.

use std::collections::BTreeMap;

/// An OpenFlow meter id.
pub type MeterId = u32;

/// Largest id a meter may have (`OFPM_MAX`).
pub const METER_MAX: MeterId = 0xffff_0000;
/// `OFPM_SLOWPATH`: the meter of packets sent to the slow path.
pub const METER_SLOWPATH: MeterId = 0xffff_fffd;
/// `OFPM_CONTROLLER`: the meter of packets sent to controllers.
pub const METER_CONTROLLER: MeterId = 0xffff_fffe;
/// `OFPM_ALL`: every meter (delete, stats requests).
pub const METER_ALL: MeterId = 0xffff_ffff;

/// The most bands one meter may have.
pub const MAX_BANDS: usize = 8;

/// `OFPMF_*` flags of a meter.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct MeterFlags(pub u16);

impl MeterFlags {
    /// Rates are in kilobits per second.
    pub const KBPS: u16 = 1 << 0;
    /// Rates are in packets per second.
    pub const PKTPS: u16 = 1 << 1;
    /// Bands carry a burst size.
    pub const BURST: u16 = 1 << 2;
    /// Keep statistics.
    pub const STATS: u16 = 1 << 3;
    /// Every defined flag.
    pub const ALL: u16 = 0xf;

    pub fn kbps(self) -> bool {
        self.0 & Self::KBPS != 0
    }
    pub fn pktps(self) -> bool {
        self.0 & Self::PKTPS != 0
    }
    pub fn burst(self) -> bool {
        self.0 & Self::BURST != 0
    }
    pub fn stats(self) -> bool {
        self.0 & Self::STATS != 0
    }
}

/// What a band does to the packets over its rate.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BandType {
    /// `OFPMBT_DROP`.
    Drop,
    /// `OFPMBT_DSCP_REMARK` (parsed and printed; not executed).
    DscpRemark { prec_level: u8 },
}

impl BandType {
    /// The name ovs-ofctl uses (`type=drop`).
    pub fn name(self) -> &'static str {
        match self {
            BandType::Drop => "drop",
            BandType::DscpRemark { .. } => "dscp_remark",
        }
    }
}

/// One band: a rate (kbps or pktps, after the meter's flags) and a burst
/// size (kilobits or packets; only with the `burst` flag).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MeterBand {
    pub kind: BandType,
    pub rate: u32,
    pub burst_size: u32,
}

impl MeterBand {
    /// A drop band.
    pub fn drop(rate: u32, burst_size: u32) -> MeterBand {
        MeterBand {
            kind: BandType::Drop,
            rate,
            burst_size,
        }
    }
}

/// A meter: its id, flags and bands.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Meter {
    pub id: MeterId,
    pub flags: MeterFlags,
    pub bands: Vec<MeterBand>,
}

/// A meter the switch refuses (each maps to an `OFPMMFC_*` code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MeterError {
    #[error("meter {0} already exists (OFPMMFC_METER_EXISTS)")]
    Exists(MeterId),
    #[error("meter {0} does not exist (OFPMMFC_UNKNOWN_METER)")]
    Unknown(MeterId),
    #[error("meter id {0} is invalid (OFPMMFC_INVALID_METER)")]
    InvalidId(MeterId),
    #[error("meter flags {0:#x} are invalid (OFPMMFC_BAD_FLAGS)")]
    BadFlags(u16),
    #[error("a band rate of 0 is invalid (OFPMMFC_BAD_RATE)")]
    BadRate,
    #[error("unsupported band type (OFPMMFC_BAD_BAND)")]
    BadBand,
    #[error("too many bands (OFPMMFC_OUT_OF_BANDS)")]
    OutOfBands,
    #[error("too many meters (OFPMMFC_OUT_OF_METERS)")]
    OutOfMeters,
}

impl Meter {
    /// The checks a switch makes before accepting a meter: a valid id,
    /// exactly one of kbps/pktps, 1 to [`MAX_BANDS`] drop bands with a
    /// non-zero rate. (dscp_remark bands are refused, as Open vSwitch's
    /// userspace datapath refuses them.)
    pub fn validate(&self) -> Result<(), MeterError> {
        if self.id == 0 || self.id > METER_MAX {
            return Err(MeterError::InvalidId(self.id));
        }
        let f = self.flags;
        if f.0 & !MeterFlags::ALL != 0 || f.kbps() == f.pktps() {
            return Err(MeterError::BadFlags(f.0));
        }
        if self.bands.len() > MAX_BANDS {
            return Err(MeterError::OutOfBands);
        }
        for b in &self.bands {
            if b.kind != BandType::Drop {
                return Err(MeterError::BadBand);
            }
            if b.rate == 0 {
                return Err(MeterError::BadRate);
            }
        }
        Ok(())
    }
}

/// One meter of a bridge: its configuration, when it was added, and the
/// datapath limiter that enforces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterEntry {
    pub meter: Meter,
    /// The datapath meter (`DpAction::Meter`) enforcing it.
    pub dp_id: u32,
    /// When it was added (ms, the caller's clock), for its stats' duration.
    pub created_ms: u64,
}

/// The meters of one bridge, by OpenFlow id.
#[derive(Clone, Debug, Default)]
pub struct MeterTable {
    meters: BTreeMap<MeterId, MeterEntry>,
}

impl MeterTable {
    pub fn new() -> MeterTable {
        MeterTable::default()
    }

    pub fn get(&self, id: MeterId) -> Option<&MeterEntry> {
        self.meters.get(&id)
    }

    pub fn contains(&self, id: MeterId) -> bool {
        self.meters.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.meters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meters.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &MeterEntry> {
        self.meters.values()
    }

    /// The datapath meter of OpenFlow meter `id`.
    pub fn dp_id(&self, id: MeterId) -> Option<u32> {
        self.meters.get(&id).map(|e| e.dp_id)
    }

    /// Adds a validated meter enforced by datapath meter `dp_id`.
    pub fn add(&mut self, meter: Meter, dp_id: u32, now_ms: u64) -> Result<(), MeterError> {
        meter.validate()?;
        if self.meters.contains_key(&meter.id) {
            return Err(MeterError::Exists(meter.id));
        }
        self.meters.insert(
            meter.id,
            MeterEntry {
                meter,
                dp_id,
                created_ms: now_ms,
            },
        );
        Ok(())
    }

    /// Replaces an existing meter's flags and bands (same datapath meter);
    /// returns its datapath meter.
    pub fn modify(&mut self, meter: Meter) -> Result<u32, MeterError> {
        meter.validate()?;
        let e = self
            .meters
            .get_mut(&meter.id)
            .ok_or(MeterError::Unknown(meter.id))?;
        e.meter = meter;
        Ok(e.dp_id)
    }

    /// Removes meter `id` ([`METER_ALL`]: every meter); returns the removed
    /// entries (none for an unknown id, which is not an error).
    pub fn delete(&mut self, id: MeterId) -> Vec<MeterEntry> {
        if id == METER_ALL {
            return std::mem::take(&mut self.meters).into_values().collect();
        }
        self.meters.remove(&id).into_iter().collect()
    }
}

// ---------------------------------------------------------------------------
// ovs-ofctl syntax

/// Formats a meter as `dump-meters` prints it:
/// `meter=1 pktps burst stats bands=\ntype=drop rate=1000 burst_size=100`.
pub fn format_meter(m: &Meter) -> String {
    let mut s = format!("meter={}", format_meter_id(m.id));
    for (bit, name) in [
        (MeterFlags::KBPS, "kbps"),
        (MeterFlags::PKTPS, "pktps"),
        (MeterFlags::BURST, "burst"),
        (MeterFlags::STATS, "stats"),
    ] {
        if m.flags.0 & bit != 0 {
            s.push(' ');
            s.push_str(name);
        }
    }
    s.push_str(" bands=");
    for b in &m.bands {
        s.push('\n');
        s.push_str(&format_band(b));
    }
    s
}

/// One band: `type=drop rate=1000 burst_size=100`.
pub fn format_band(b: &MeterBand) -> String {
    let mut s = format!("type={} rate={}", b.kind.name(), b.rate);
    if b.burst_size != 0 {
        s.push_str(&format!(" burst_size={}", b.burst_size));
    }
    if let BandType::DscpRemark { prec_level } = b.kind {
        s.push_str(&format!(" prec_level={prec_level}"));
    }
    s
}

/// A meter id as ovs-ofctl writes it (`all`, `controller`, `slowpath`, or
/// the number).
pub fn format_meter_id(id: MeterId) -> String {
    match id {
        METER_ALL => "all".into(),
        METER_CONTROLLER => "controller".into(),
        METER_SLOWPATH => "slowpath".into(),
        n => n.to_string(),
    }
}

/// Why a meter's text did not parse (ovs-ofctl's wording).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MeterParseError(pub String);

fn perr(s: impl Into<String>) -> MeterParseError {
    MeterParseError(s.into())
}

fn parse_num(s: &str) -> Result<u32, MeterParseError> {
    let v = if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(h, 16)
    } else {
        s.parse::<u64>()
    };
    v.ok()
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| perr(format!("invalid numeric format {s}")))
}

/// Parses a meter id (`all`, `controller`, `slowpath`, or 1..=[`METER_MAX`]).
pub fn parse_meter_id(s: &str) -> Result<MeterId, MeterParseError> {
    let id = match s {
        "all" => METER_ALL,
        "controller" => METER_CONTROLLER,
        "slowpath" => METER_SLOWPATH,
        n => {
            let v = parse_num(n)?;
            if v == 0 || v > METER_MAX {
                return Err(perr("invalid value for meter"));
            }
            v
        }
    };
    Ok(id)
}

/// What a meter command needs from its argument.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MeterSyntax {
    /// add-meter / mod-meter: flags and bands are required.
    Full,
    /// del-meters, dump-meters, meter-stats: only `meter=ID` counts.
    IdOnly,
}

/// Parses ovs-ofctl's meter syntax. Fields are separated by commas or
/// spaces; everything after `bands=` is the band list, each band starting
/// with `type=`. With [`MeterSyntax::IdOnly`] a missing id means every meter.
pub fn parse_meter(s: &str, syntax: MeterSyntax) -> Result<Meter, MeterParseError> {
    let toks: Vec<&str> = s
        .split([',', ' ', '\t', '\n'])
        .filter(|t| !t.is_empty())
        .collect();
    let mut id = None;
    let mut flags = 0u16;
    let mut bands: Vec<(BandType, Option<u32>, Option<u32>)> = Vec::new();
    let mut in_bands = false;
    let mut saw_bands = false;
    for t in toks {
        let (name, value) = match t.split_once(['=', ':']) {
            Some((n, v)) => (n, Some(v)),
            None => (t, None),
        };
        if in_bands {
            let v = value.ok_or_else(|| perr(format!("field {name} missing value")))?;
            match name {
                "type" => {
                    let kind = match v {
                        "drop" => BandType::Drop,
                        "dscp_remark" => BandType::DscpRemark { prec_level: 0 },
                        _ => return Err(perr(format!("field type unknown value {v}"))),
                    };
                    bands.push((kind, None, None));
                }
                _ => {
                    let b = bands
                        .last_mut()
                        .ok_or_else(|| perr("band must start with the 'type' keyword"))?;
                    match name {
                        "rate" => b.1 = Some(parse_num(v)?),
                        "burst_size" => b.2 = Some(parse_num(v)?),
                        "prec_level" => {
                            let p = u8::try_from(parse_num(v)?)
                                .map_err(|_| perr(format!("invalid prec_level {v}")))?;
                            match &mut b.0 {
                                BandType::DscpRemark { prec_level } => *prec_level = p,
                                BandType::Drop => {
                                    return Err(perr("unknown field prec_level"));
                                }
                            }
                        }
                        _ => return Err(perr(format!("unknown field {name}"))),
                    }
                }
            }
            continue;
        }
        match (name, value) {
            ("meter", Some(v)) => id = Some(parse_meter_id(v)?),
            ("kbps", None) => flags |= MeterFlags::KBPS,
            ("pktps", None) => flags |= MeterFlags::PKTPS,
            ("burst", None) => flags |= MeterFlags::BURST,
            ("stats", None) => flags |= MeterFlags::STATS,
            ("bands", Some(rest)) => {
                in_bands = true;
                saw_bands = true;
                // `bands=type=drop`: the first band starts in this token.
                if let Some(v) = rest.strip_prefix("type=") {
                    let kind = match v {
                        "drop" => BandType::Drop,
                        "dscp_remark" => BandType::DscpRemark { prec_level: 0 },
                        _ => return Err(perr(format!("field type unknown value {v}"))),
                    };
                    bands.push((kind, None, None));
                } else if !rest.is_empty() {
                    return Err(perr("band must start with the 'type' keyword"));
                }
            }
            (n, _) => return Err(perr(format!("unknown keyword {n}"))),
        }
    }
    if syntax == MeterSyntax::IdOnly {
        return Ok(Meter {
            id: id.unwrap_or(METER_ALL),
            flags: MeterFlags(flags),
            bands: Vec::new(),
        });
    }
    let id = id.ok_or_else(|| perr("must specify 'meter'"))?;
    let f = MeterFlags(flags);
    if f.kbps() == f.pktps() {
        return Err(perr("meter must specify either 'kbps' or 'pktps'"));
    }
    if !saw_bands || bands.is_empty() {
        return Err(perr("must specify bands"));
    }
    let mut out = Vec::with_capacity(bands.len());
    for (kind, rate, burst) in bands {
        let rate = rate.ok_or_else(|| perr("band must have 'rate'"))?;
        let burst_size = match (f.burst(), burst) {
            (true, Some(b)) => b,
            (true, None) => {
                return Err(perr("band must have 'burst_size' when 'burst' flag is set"));
            }
            (false, Some(_)) => {
                return Err(perr(
                    "band may have 'burst_size' only when 'burst' flag is set",
                ));
            }
            (false, None) => 0,
        };
        out.push(MeterBand {
            kind,
            rate,
            burst_size,
        });
    }
    Ok(Meter {
        id,
        flags: f,
        bands: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ovs_ofctl_meter_syntax_parses_and_prints_like_dump_meters() {
        let m = parse_meter(
            "meter=1,pktps,burst,stats,bands=type=drop,rate=1000,burst_size=100",
            MeterSyntax::Full,
        )
        .unwrap();
        assert_eq!(m.id, 1);
        assert_eq!(
            m.flags.0,
            MeterFlags::PKTPS | MeterFlags::BURST | MeterFlags::STATS
        );
        assert_eq!(m.bands, vec![MeterBand::drop(1000, 100)]);
        assert_eq!(
            format_meter(&m),
            "meter=1 pktps burst stats bands=\ntype=drop rate=1000 burst_size=100"
        );
        let two = parse_meter(
            "meter=3 kbps stats bands=type=drop rate=200 type=drop rate=400",
            MeterSyntax::Full,
        )
        .unwrap();
        assert_eq!(
            format_meter(&two),
            "meter=3 kbps stats bands=\ntype=drop rate=200\ntype=drop rate=400"
        );
    }

    #[test]
    fn meter_syntax_errors_use_ovs_ofctl_wording() {
        let e = |s| parse_meter(s, MeterSyntax::Full).unwrap_err().0;
        assert_eq!(
            e("meter=7,bands=type=drop,rate=5"),
            "meter must specify either 'kbps' or 'pktps'"
        );
        assert_eq!(e("meter=8,kbps"), "must specify bands");
        assert_eq!(e("meter=11,kbps,bands=type=drop"), "band must have 'rate'");
        assert_eq!(
            e("meter=12 kbps burst bands=type=drop rate=10"),
            "band must have 'burst_size' when 'burst' flag is set"
        );
        assert_eq!(
            e("meter=3 kbps bands=type=drop rate=10 burst_size=3"),
            "band may have 'burst_size' only when 'burst' flag is set"
        );
        assert_eq!(
            e("meter=13,kbps,bands=type=foo,rate=5"),
            "field type unknown value foo"
        );
        assert_eq!(
            e("meter=0,kbps,bands=type=drop,rate=5"),
            "invalid value for meter"
        );
        assert_eq!(
            e("meter=x,kbps,bands=type=drop,rate=5"),
            "invalid numeric format x"
        );
    }

    #[test]
    fn id_only_syntax_defaults_to_every_meter() {
        assert_eq!(parse_meter("", MeterSyntax::IdOnly).unwrap().id, METER_ALL);
        assert_eq!(parse_meter("meter=4", MeterSyntax::IdOnly).unwrap().id, 4);
        assert_eq!(
            parse_meter("meter=all", MeterSyntax::IdOnly).unwrap().id,
            METER_ALL
        );
    }

    #[test]
    fn switch_refuses_bad_flags_rates_and_band_types() {
        let mut m = Meter {
            id: 1,
            flags: MeterFlags(MeterFlags::KBPS | MeterFlags::PKTPS),
            bands: vec![MeterBand::drop(5, 0)],
        };
        assert_eq!(m.validate(), Err(MeterError::BadFlags(3)));
        m.flags = MeterFlags(MeterFlags::KBPS);
        assert_eq!(m.validate(), Ok(()));
        m.bands[0].rate = 0;
        assert_eq!(m.validate(), Err(MeterError::BadRate));
        m.bands[0] = MeterBand {
            kind: BandType::DscpRemark { prec_level: 1 },
            rate: 5,
            burst_size: 0,
        };
        assert_eq!(m.validate(), Err(MeterError::BadBand));
        m.bands = vec![MeterBand::drop(1, 0); MAX_BANDS + 1];
        assert_eq!(m.validate(), Err(MeterError::OutOfBands));
        m.id = METER_MAX + 1;
        assert!(matches!(m.validate(), Err(MeterError::InvalidId(_))));
    }

    #[test]
    fn table_add_modify_delete_follow_openflow_rules() {
        let mk = |id, rate| Meter {
            id,
            flags: MeterFlags(MeterFlags::PKTPS),
            bands: vec![MeterBand::drop(rate, 0)],
        };
        let mut t = MeterTable::new();
        t.add(mk(1, 10), 0, 5).unwrap();
        assert_eq!(t.add(mk(1, 20), 1, 5), Err(MeterError::Exists(1)));
        assert_eq!(t.modify(mk(2, 20)), Err(MeterError::Unknown(2)));
        assert_eq!(t.modify(mk(1, 20)), Ok(0));
        assert_eq!(t.get(1).unwrap().meter.bands[0].rate, 20);
        t.add(mk(2, 1), 7, 5).unwrap();
        assert_eq!(t.dp_id(2), Some(7));
        assert!(t.delete(9).is_empty());
        assert_eq!(t.delete(1).len(), 1);
        assert_eq!(t.delete(METER_ALL).len(), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn meter_action_text_must_come_first_as_in_ovs_ofctl() {
        use crate::action::Action;
        use crate::text::{format_actions, parse_actions};
        let a = parse_actions("meter:1,output:2").unwrap();
        assert_eq!(a[0], Action::Meter(1));
        assert_eq!(format_actions(&a), "meter:1,output:2");
        assert_eq!(
            parse_actions("output:2,meter:1").unwrap_err().to_string(),
            "invalid instruction ordering: meter must appear before apply_actions, for OpenFlow 1.1+ compatibility"
        );
    }

    #[test]
    fn pipeline_counts_and_deletes_the_flows_of_a_meter() {
        use crate::table::{FlowMod, FlowModCommand, Pipeline, meters_used};
        use crate::text::parse_flow_mod;
        let mut p = Pipeline::new();
        for f in [
            "in_port=1,actions=meter:1,output:2",
            "in_port=2,actions=meter:1,output:1",
            "in_port=3,actions=meter:2,output:1",
            "in_port=4,actions=output:1",
        ] {
            let fm: FlowMod = parse_flow_mod(f, FlowModCommand::Add).unwrap();
            assert!(meters_used(&fm.actions).len() <= 1);
            p.flow_mod(&fm, 0).unwrap();
        }
        let counts = p.meter_flow_counts();
        assert_eq!(counts.get(&1), Some(&2));
        assert_eq!(counts.get(&2), Some(&1));
        assert_eq!(p.delete_meter_users(1).len(), 2);
        assert_eq!(p.n_rules(), 2);
        assert_eq!(p.meter_flow_counts().get(&1), None);
    }
}
