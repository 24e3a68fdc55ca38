//! Per-protocol timeouts and timeout policies (OVS's `CT_Timeout_Policy`).
//!
//! A policy is a set of timeouts in seconds; an unset attribute takes OVS's
//! userspace default. Policies are kept in a fixed array of atomics so the
//! per-packet expiry update reads them without a lock; zones map to a policy
//! id, and a connection remembers the id it was created with.

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

/// The timeout class a connection is in (OVS's `ct_dpif_tp_attr` names).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum TimeoutAttr {
    TcpSynSent = 0,
    TcpSynRecv,
    TcpEstablished,
    TcpFinWait,
    TcpTimeWait,
    TcpClose,
    UdpFirst,
    UdpSingle,
    UdpMultiple,
    IcmpFirst,
    IcmpReply,
}

impl TimeoutAttr {
    /// The attribute a `CT_Timeout_Policy.timeouts` key names, for the
    /// keys the userspace datapath uses. `None` for keys only the kernel
    /// datapath has (`tcp_close_wait`, `tcp_last_ack`, `tcp_syn_sent2`,
    /// `tcp_retransmit`, `tcp_unack`) and unknown keys.
    pub fn from_db_key(key: &str) -> Option<TimeoutAttr> {
        Some(match key {
            "tcp_syn_sent" => TimeoutAttr::TcpSynSent,
            "tcp_syn_recv" => TimeoutAttr::TcpSynRecv,
            "tcp_established" => TimeoutAttr::TcpEstablished,
            "tcp_fin_wait" => TimeoutAttr::TcpFinWait,
            "tcp_time_wait" => TimeoutAttr::TcpTimeWait,
            "tcp_close" => TimeoutAttr::TcpClose,
            "udp_first" => TimeoutAttr::UdpFirst,
            "udp_single" => TimeoutAttr::UdpSingle,
            "udp_multiple" => TimeoutAttr::UdpMultiple,
            "icmp_first" => TimeoutAttr::IcmpFirst,
            "icmp_reply" => TimeoutAttr::IcmpReply,
            _ => return None,
        })
    }
}

/// Number of timeout attributes.
pub const N_ATTRS: usize = 11;

/// OVS's userspace default timeouts in seconds, indexed by [`TimeoutAttr`].
pub const DEFAULT_TIMEOUTS: [u32; N_ATTRS] =
    [30, 30, 24 * 60 * 60, 15 * 60, 45, 30, 60, 60, 30, 60, 30];

/// The most timeout policies (ids `0..MAX_POLICIES`; 0 is the default).
pub const MAX_POLICIES: usize = 64;

/// A timeout policy as the DB layer fills it from `CT_Timeout_Policy`:
/// each `Some` overrides OVS's default for that attribute, in seconds.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TimeoutPolicy {
    pub tcp_syn_sent: Option<u32>,
    pub tcp_syn_recv: Option<u32>,
    pub tcp_established: Option<u32>,
    pub tcp_fin_wait: Option<u32>,
    pub tcp_time_wait: Option<u32>,
    pub tcp_close: Option<u32>,
    pub udp_first: Option<u32>,
    pub udp_single: Option<u32>,
    pub udp_multiple: Option<u32>,
    pub icmp_first: Option<u32>,
    pub icmp_reply: Option<u32>,
}

impl TimeoutPolicy {
    /// Overrides the default of `attr` with `secs`.
    pub fn set(&mut self, attr: TimeoutAttr, secs: u32) {
        let slot = match attr {
            TimeoutAttr::TcpSynSent => &mut self.tcp_syn_sent,
            TimeoutAttr::TcpSynRecv => &mut self.tcp_syn_recv,
            TimeoutAttr::TcpEstablished => &mut self.tcp_established,
            TimeoutAttr::TcpFinWait => &mut self.tcp_fin_wait,
            TimeoutAttr::TcpTimeWait => &mut self.tcp_time_wait,
            TimeoutAttr::TcpClose => &mut self.tcp_close,
            TimeoutAttr::UdpFirst => &mut self.udp_first,
            TimeoutAttr::UdpSingle => &mut self.udp_single,
            TimeoutAttr::UdpMultiple => &mut self.udp_multiple,
            TimeoutAttr::IcmpFirst => &mut self.icmp_first,
            TimeoutAttr::IcmpReply => &mut self.icmp_reply,
        };
        *slot = Some(secs);
    }

    /// The policy's seconds for every attribute, defaults filled in.
    pub fn resolved(&self) -> [u32; N_ATTRS] {
        let v = [
            self.tcp_syn_sent,
            self.tcp_syn_recv,
            self.tcp_established,
            self.tcp_fin_wait,
            self.tcp_time_wait,
            self.tcp_close,
            self.udp_first,
            self.udp_single,
            self.udp_multiple,
            self.icmp_first,
            self.icmp_reply,
        ];
        let mut out = DEFAULT_TIMEOUTS;
        for (o, x) in out.iter_mut().zip(v) {
            if let Some(s) = x {
                *o = s;
            }
        }
        out
    }
}

/// Error from policy configuration.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("timeout policy id {0} out of range (0..{MAX_POLICIES})")]
    BadId(usize),
}

/// The policies and the zone-to-policy map.
pub(crate) struct Policies {
    secs: Box<[[AtomicU32; N_ATTRS]]>,
    zone_policy: Box<[AtomicU8]>,
}

impl Policies {
    pub(crate) fn new() -> Policies {
        let secs = (0..MAX_POLICIES)
            .map(|_| DEFAULT_TIMEOUTS.map(AtomicU32::new))
            .collect();
        let zone_policy = (0..=u16::MAX as usize).map(|_| AtomicU8::new(0)).collect();
        Policies { secs, zone_policy }
    }

    pub(crate) fn set(&self, id: usize, p: &TimeoutPolicy) -> Result<(), PolicyError> {
        let slot = self.secs.get(id).ok_or(PolicyError::BadId(id))?;
        for (a, v) in slot.iter().zip(p.resolved()) {
            a.store(v, Ordering::Relaxed);
        }
        Ok(())
    }

    pub(crate) fn set_zone(&self, zone: u16, id: usize) -> Result<(), PolicyError> {
        let id8 = u8::try_from(id)
            .ok()
            .filter(|&i| usize::from(i) < MAX_POLICIES)
            .ok_or(PolicyError::BadId(id))?;
        self.zone_policy[usize::from(zone)].store(id8, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn zone_policy(&self, zone: u16) -> u8 {
        self.zone_policy[usize::from(zone)].load(Ordering::Relaxed)
    }

    /// Timeout in milliseconds of `attr` under policy `id`.
    pub(crate) fn ms(&self, id: u8, attr: TimeoutAttr) -> u64 {
        let p = self.secs.get(usize::from(id)).unwrap_or(&self.secs[0]);
        u64::from(p[attr as usize].load(Ordering::Relaxed)) * 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_attributes_take_ovs_defaults() {
        let p = TimeoutPolicy {
            udp_first: Some(5),
            ..TimeoutPolicy::default()
        };
        let r = p.resolved();
        assert_eq!(r[TimeoutAttr::UdpFirst as usize], 5);
        assert_eq!(r[TimeoutAttr::TcpEstablished as usize], 86400);
        assert_eq!(r[TimeoutAttr::IcmpReply as usize], 30);
    }

    #[test]
    fn db_keys_name_the_userspace_attributes_and_kernel_only_keys_are_none() {
        let mut p = TimeoutPolicy::default();
        for (k, v) in [("udp_first", 3), ("tcp_established", 77), ("icmp_reply", 4)] {
            p.set(TimeoutAttr::from_db_key(k).unwrap(), v);
        }
        let r = p.resolved();
        assert_eq!(r[TimeoutAttr::UdpFirst as usize], 3);
        assert_eq!(r[TimeoutAttr::TcpEstablished as usize], 77);
        assert_eq!(r[TimeoutAttr::IcmpReply as usize], 4);
        assert_eq!(r[TimeoutAttr::UdpSingle as usize], 60);
        for k in ["tcp_close_wait", "tcp_unack", "bogus"] {
            assert_eq!(TimeoutAttr::from_db_key(k), None, "{k}");
        }
    }

    #[test]
    fn zone_maps_to_policy_and_bad_ids_are_refused() {
        let ps = Policies::new();
        ps.set(
            3,
            &TimeoutPolicy {
                icmp_first: Some(7),
                ..Default::default()
            },
        )
        .unwrap();
        ps.set_zone(9, 3).unwrap();
        assert_eq!(ps.ms(ps.zone_policy(9), TimeoutAttr::IcmpFirst), 7000);
        assert_eq!(ps.ms(ps.zone_policy(1), TimeoutAttr::IcmpFirst), 60000);
        assert_eq!(
            ps.set(MAX_POLICIES, &TimeoutPolicy::default()),
            Err(PolicyError::BadId(MAX_POLICIES))
        );
        assert!(ps.set_zone(1, 300).is_err());
    }
}
