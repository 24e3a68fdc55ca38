//! `ct_state` bits and the per-packet result of tracking.

use crate::tuple::Tuple;

/// The `ct_state` match field: OVS's bit values (ovs-fields(7)).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CtState(pub u8);

impl CtState {
    pub const NEW: CtState = CtState(0x01);
    pub const EST: CtState = CtState(0x02);
    pub const REL: CtState = CtState(0x04);
    pub const RPL: CtState = CtState(0x08);
    pub const INV: CtState = CtState(0x10);
    pub const TRK: CtState = CtState(0x20);
    pub const SNAT: CtState = CtState(0x40);
    pub const DNAT: CtState = CtState(0x80);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: CtState) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for CtState {
    type Output = CtState;
    fn bitor(self, o: CtState) -> CtState {
        CtState(self.0 | o.0)
    }
}

impl std::ops::BitOrAssign for CtState {
    fn bitor_assign(&mut self, o: CtState) {
        self.0 |= o.0;
    }
}

const NAMES: [(u8, &str); 8] = [
    (0x01, "new"),
    (0x02, "est"),
    (0x04, "rel"),
    (0x08, "rpl"),
    (0x10, "inv"),
    (0x20, "trk"),
    (0x40, "snat"),
    (0x80, "dnat"),
];

/// `+trk+new` style, as in `ofproto/trace` output.
impl std::fmt::Debug for CtState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 == 0 {
            return f.write_str("0");
        }
        for (bit, name) in NAMES {
            if self.0 & bit != 0 {
                write!(f, "+{name}")?;
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for CtState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// What tracking one packet produced: the metadata the datapath stores in
/// the packet before recirculating it (`ct_state`, `ct_zone`, `ct_mark`,
/// `ct_label` and the original-direction tuple for `ct_nw_src` and friends).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CtResult {
    pub state: CtState,
    pub zone: u16,
    pub mark: u32,
    pub label: u128,
    /// The connection's original-direction tuple (before NAT), or the
    /// packet's own tuple for an uncommitted `+new` packet; `None` for
    /// `+inv` packets.
    pub orig: Option<Tuple>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_prints_like_ovs_flags() {
        assert_eq!(
            format!("{:?}", CtState::TRK | CtState::EST | CtState::RPL),
            "+est+rpl+trk"
        );
        assert!((CtState::TRK | CtState::NEW).contains(CtState::NEW));
        assert!(!CtState::TRK.contains(CtState::NEW));
    }
}
