//! Feature bits the port offers and how the negotiated set is read.

use vhost::vhost_user::message::VhostUserProtocolFeatures;

pub const NET_F_CSUM: u64 = 1 << 0;
pub const NET_F_GUEST_CSUM: u64 = 1 << 1;
pub const NET_F_MAC: u64 = 1 << 5;
pub const NET_F_GUEST_TSO4: u64 = 1 << 7;
pub const NET_F_GUEST_TSO6: u64 = 1 << 8;
pub const NET_F_HOST_TSO4: u64 = 1 << 11;
pub const NET_F_HOST_TSO6: u64 = 1 << 12;
pub const NET_F_MRG_RXBUF: u64 = 1 << 15;
pub const NET_F_STATUS: u64 = 1 << 16;
pub const NET_F_CTRL_VQ: u64 = 1 << 17;
pub const NET_F_MQ: u64 = 1 << 22;
pub const RING_F_INDIRECT_DESC: u64 = 1 << 28;
pub const RING_F_EVENT_IDX: u64 = 1 << 29;
pub const VHOST_USER_F_PROTOCOL_FEATURES: u64 = 1 << 30;
pub const F_VERSION_1: u64 = 1 << 32;
/// Packed virtqueues (virtio 1.1 section 2.8).
pub const F_RING_PACKED: u64 = 1 << 34;
/// The device uses buffers in the order the driver made them available.
pub const F_IN_ORDER: u64 = 1 << 35;

/// Which optional features a port offers (all on by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureOptions {
    pub mrg_rxbuf: bool,
    pub event_idx: bool,
    pub indirect_desc: bool,
    /// CSUM/GUEST_CSUM and HOST_TSO4/6, GUEST_TSO4/6.
    pub offloads: bool,
    /// VIRTIO_F_IN_ORDER: buffers are used in the order they were made
    /// available (always true of this backend), so a batch of the guest's
    /// transmit buffers is returned with one used element.
    pub in_order: bool,
    /// VIRTIO_F_RING_PACKED: the driver may lay its queues out as packed
    /// rings instead of split ones.
    pub packed: bool,
}

impl Default for FeatureOptions {
    fn default() -> Self {
        FeatureOptions {
            mrg_rxbuf: true,
            event_idx: true,
            indirect_desc: true,
            offloads: true,
            in_order: true,
            packed: true,
        }
    }
}

impl FeatureOptions {
    /// The virtio feature bits offered in GET_FEATURES.
    pub fn virtio_features(&self) -> u64 {
        let mut f = F_VERSION_1
            | VHOST_USER_F_PROTOCOL_FEATURES
            | NET_F_MAC
            | NET_F_STATUS
            | NET_F_CTRL_VQ
            | NET_F_MQ;
        if self.mrg_rxbuf {
            f |= NET_F_MRG_RXBUF;
        }
        if self.event_idx {
            f |= RING_F_EVENT_IDX;
        }
        if self.indirect_desc {
            f |= RING_F_INDIRECT_DESC;
        }
        if self.in_order {
            f |= F_IN_ORDER;
        }
        if self.packed {
            f |= F_RING_PACKED;
        }
        if self.offloads {
            f |= NET_F_CSUM
                | NET_F_GUEST_CSUM
                | NET_F_HOST_TSO4
                | NET_F_HOST_TSO6
                | NET_F_GUEST_TSO4
                | NET_F_GUEST_TSO6;
        }
        f
    }

    /// The vhost-user protocol features offered in GET_PROTOCOL_FEATURES.
    ///
    /// STATUS is not offered: the vhost crate's request handler has no
    /// SET_STATUS/GET_STATUS handling, and frontends work without it.
    pub fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::CONFIG
            | VhostUserProtocolFeatures::BACKEND_REQ
    }
}

/// The negotiated features, decoded once per batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// Size of the virtio-net header in front of every frame (10 or 12).
    pub hdr_len: usize,
    pub mrg_rxbuf: bool,
    pub event_idx: bool,
    pub indirect: bool,
    /// VIRTIO_F_IN_ORDER was negotiated.
    pub in_order: bool,
    /// The queues are packed rings (VIRTIO_F_RING_PACKED).
    pub packed: bool,
    /// The guest may send frames with partial checksums (CSUM).
    pub host_csum: bool,
    /// The guest may send TSO super-frames (HOST_TSO4/6).
    pub host_tso: bool,
    /// The guest accepts frames with partial checksums (GUEST_CSUM).
    pub guest_csum: bool,
    /// The guest accepts TSO super-frames (GUEST_TSO4 and GUEST_TSO6).
    pub guest_tso: bool,
    /// The guest accepts TCPv4 super-frames (GUEST_TSO4).
    pub guest_tso4: bool,
    /// The guest accepts TCPv6 super-frames (GUEST_TSO6).
    pub guest_tso6: bool,
}

impl Negotiated {
    pub fn from_bits(f: u64) -> Negotiated {
        let has = |b: u64| f & b != 0;
        let mrg_rxbuf = has(NET_F_MRG_RXBUF);
        Negotiated {
            hdr_len: if has(F_VERSION_1) || mrg_rxbuf {
                12
            } else {
                10
            },
            mrg_rxbuf,
            event_idx: has(RING_F_EVENT_IDX),
            indirect: has(RING_F_INDIRECT_DESC),
            in_order: has(F_IN_ORDER),
            packed: has(F_RING_PACKED),
            host_csum: has(NET_F_CSUM),
            host_tso: has(NET_F_HOST_TSO4) || has(NET_F_HOST_TSO6),
            guest_csum: has(NET_F_GUEST_CSUM),
            guest_tso: has(NET_F_GUEST_TSO4) && has(NET_F_GUEST_TSO6),
            guest_tso4: has(NET_F_GUEST_TSO4),
            guest_tso6: has(NET_F_GUEST_TSO6),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_uses_the_12_byte_header_and_legacy_the_10_byte_one() {
        assert_eq!(Negotiated::from_bits(F_VERSION_1).hdr_len, 12);
        assert_eq!(Negotiated::from_bits(NET_F_MRG_RXBUF).hdr_len, 12);
        assert_eq!(Negotiated::from_bits(0).hdr_len, 10);
    }

    #[test]
    fn disabling_offloads_removes_every_offload_bit() {
        let o = FeatureOptions {
            offloads: false,
            ..Default::default()
        };
        let n = Negotiated::from_bits(o.virtio_features());
        assert!(!n.host_csum && !n.host_tso && !n.guest_csum && !n.guest_tso);
        let n = Negotiated::from_bits(FeatureOptions::default().virtio_features());
        assert!(n.host_csum && n.host_tso && n.guest_csum && n.guest_tso && n.mrg_rxbuf);
    }

    #[test]
    fn in_order_is_offered_by_default_and_can_be_withheld() {
        let n = Negotiated::from_bits(FeatureOptions::default().virtio_features());
        assert!(n.in_order);
        let o = FeatureOptions {
            in_order: false,
            ..Default::default()
        };
        assert_eq!(o.virtio_features() & F_IN_ORDER, 0);
        assert!(!Negotiated::from_bits(F_VERSION_1).in_order);
    }
}
