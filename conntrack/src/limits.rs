//! Zone limits as `dpctl/ct-set-limits`, `ct-get-limits` and
//! `ct-del-limits` see them: which zones have a limit of their own, and
//! the per-zone view (limit in force and connection count).
//!
//! The limits themselves live in [`Conntrack`] (one atomic per zone, read
//! on every commit); this is the management side.

use std::sync::atomic::Ordering;

use crate::Conntrack;

/// One zone's limit as `dpctl/ct-get-limits` prints it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ZoneLimit {
    pub zone: u16,
    /// The limit in force: the zone's own, or else the default (0 is
    /// unlimited).
    pub limit: u32,
    /// Connections the zone holds now.
    pub count: u32,
}

impl Conntrack {
    /// The zones that have a limit of their own (not the default), in zone
    /// order.
    pub fn zone_limits(&self) -> Vec<ZoneLimit> {
        (0..=u16::MAX)
            .filter_map(|z| {
                let own = self.zone_limits[usize::from(z)].load(Ordering::Relaxed);
                (own != u32::MAX).then(|| ZoneLimit {
                    zone: z,
                    limit: own,
                    count: self.zone_count(z),
                })
            })
            .collect()
    }

    /// The limit in force for `zone` (its own, else the default; 0 is
    /// unlimited) and its count.
    pub fn zone_limit_info(&self, zone: u16) -> ZoneLimit {
        ZoneLimit {
            zone,
            limit: self.zone_limit(zone).unwrap_or(0),
            count: self.zone_count(zone),
        }
    }

    /// `dpctl/ct-del-limits zone=N`: the zone goes back to the default
    /// limit. Deleting a zone without a limit of its own does nothing.
    pub fn del_zone_limit(&self, zone: u16) {
        self.set_zone_limit(zone, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CtConfig;

    #[test]
    fn own_limits_are_listed_and_others_show_the_default() {
        let ct = Conntrack::new(CtConfig::default());
        assert_eq!(ct.zone_limits(), vec![]);
        ct.set_zone_limit(9, Some(5));
        ct.set_zone_limit(3, Some(0));
        ct.set_default_zone_limit(10);
        let own: Vec<(u16, u32)> = ct.zone_limits().iter().map(|z| (z.zone, z.limit)).collect();
        assert_eq!(own, [(3, 0), (9, 5)]);
        assert_eq!(
            ct.zone_limit_info(7),
            ZoneLimit {
                zone: 7,
                limit: 10,
                count: 0
            }
        );
        ct.del_zone_limit(9);
        ct.del_zone_limit(11);
        assert_eq!(ct.zone_limits().len(), 1);
        assert_eq!(ct.zone_limit_info(9).limit, 10);
    }
}
