//! The flow key: every header field a flow can match on, in one fixed-size,
//! word-aligned value so that masking, hashing and comparing are word loops.
//!
//! Conventions follow Open vSwitch's `struct flow`:
//! - integers are in host byte order (`nw_src` of 10.0.0.1 is `0x0a000001`);
//! - `vlan_tci` holds the outer 802.1Q TCI with [`VLAN_CFI`] set when a tag is
//!   present (so `0` means "no tag"); `vlan_tci_inner` likewise for the inner tag;
//! - for ARP, `nw_proto` holds the opcode (low byte), `nw_src`/`nw_dst` the
//!   sender/target protocol addresses and `arp_sha`/`arp_tha` the hardware ones;
//! - for ICMPv4/ICMPv6, `tp_src` holds the type and `tp_dst` the code;
//! - for IPv6 neighbour discovery, `nd_target` holds the target and
//!   `arp_sha`/`arp_tha` the source/target link-layer options;
//! - `nw_frag` uses [`FRAG_ANY`] and [`FRAG_LATER`].
//!
//! A mask is a `FlowKey` too: a one bit means "this bit matters".

use bytemuck::{Pod, Zeroable};

/// Present bit of a TCI as stored in [`FlowKey::vlan_tci`] (OVS's CFI convention).
pub const VLAN_CFI: u16 = 0x1000;
/// VLAN id bits of a TCI.
pub const VLAN_VID_MASK: u16 = 0x0fff;
/// Priority bits of a TCI.
pub const VLAN_PCP_MASK: u16 = 0xe000;
/// `nw_frag`: the packet is a fragment (first or later).
pub const FRAG_ANY: u8 = 1;
/// `nw_frag`: the packet is a non-first fragment.
pub const FRAG_LATER: u8 = 2;

/// Number of 64-bit words in a [`FlowKey`].
pub const KEY_WORDS: usize = 19;

/// All matchable fields of a packet plus its pipeline metadata.
#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug, Pod, Zeroable)]
pub struct FlowKey {
    /// OpenFlow metadata (write_metadata).
    pub metadata: u64,
    /// Registers reg0..reg7.
    pub regs: [u32; 8],
    /// Ingress port: the datapath port number in the datapath's key; translation
    /// rewrites it to the OpenFlow port number within the bridge.
    pub in_port: u32,
    /// Padding; always zero.
    pub pad0: u32,
    pub dl_dst: [u8; 6],
    pub dl_src: [u8; 6],
    /// Ethertype after any VLAN tags.
    pub dl_type: u16,
    /// Outer VLAN TCI with [`VLAN_CFI`] set when present.
    pub vlan_tci: u16,
    /// Inner VLAN TCI with [`VLAN_CFI`] set when present (QinQ).
    pub vlan_tci_inner: u16,
    /// IP protocol, or ARP opcode (low 8 bits).
    pub nw_proto: u8,
    /// IPv4 TOS / IPv6 traffic class (DSCP << 2 | ECN).
    pub nw_tos: u8,
    pub nw_ttl: u8,
    /// [`FRAG_ANY`] | [`FRAG_LATER`].
    pub nw_frag: u8,
    /// TCP/UDP/SCTP source port, or ICMP type.
    pub tp_src: u16,
    /// TCP/UDP/SCTP destination port, or ICMP code.
    pub tp_dst: u16,
    /// TCP flags (12 bits).
    pub tcp_flags: u16,
    /// IPv4 source or ARP sender protocol address.
    pub nw_src: u32,
    /// IPv4 destination or ARP target protocol address.
    pub nw_dst: u32,
    /// IPv6 flow label (20 bits).
    pub ipv6_label: u32,
    pub ipv6_src: [u8; 16],
    pub ipv6_dst: [u8; 16],
    /// ICMPv6 neighbour discovery target.
    pub nd_target: [u8; 16],
    /// ARP sender hardware address, or ND source link-layer address.
    pub arp_sha: [u8; 6],
    /// ARP target hardware address, or ND target link-layer address.
    pub arp_tha: [u8; 6],
    /// Padding; always zero.
    pub pad1: u32,
}

const _: () = assert!(std::mem::size_of::<FlowKey>() == KEY_WORDS * 8);
const _: () = assert!(std::mem::align_of::<FlowKey>() == 8);

impl FlowKey {
    /// A mask with every bit set (an exact match).
    pub fn all_ones() -> FlowKey {
        let mut k: FlowKey = bytemuck::cast([u64::MAX; KEY_WORDS]);
        k.pad0 = 0;
        k.pad1 = 0;
        k
    }

    /// The key as words.
    #[inline]
    pub fn words(&self) -> &[u64; KEY_WORDS] {
        bytemuck::cast_ref(self)
    }

    /// The key as mutable words.
    #[inline]
    pub fn words_mut(&mut self) -> &mut [u64; KEY_WORDS] {
        bytemuck::cast_mut(self)
    }

    /// `self & mask`, word by word.
    #[inline]
    pub fn masked(&self, mask: &FlowKey) -> FlowKey {
        let mut out = *self;
        for (o, m) in out.words_mut().iter_mut().zip(mask.words()) {
            *o &= *m;
        }
        out
    }

    /// `self |= other`, word by word (used to accumulate megaflow masks).
    #[inline]
    pub fn or_assign(&mut self, other: &FlowKey) {
        for (o, m) in self.words_mut().iter_mut().zip(other.words()) {
            *o |= *m;
        }
    }

    /// True when no bit is set.
    pub fn is_zero(&self) -> bool {
        self.words().iter().all(|w| *w == 0)
    }

    /// True when `self & mask == other & mask`.
    #[inline]
    pub fn eq_masked(&self, other: &FlowKey, mask: &FlowKey) -> bool {
        self.words()
            .iter()
            .zip(other.words())
            .zip(mask.words())
            .all(|((a, b), m)| (a ^ b) & m == 0)
    }

    /// VLAN id of the outer tag (meaningful when `vlan_tci & VLAN_CFI != 0`).
    pub fn vlan_vid(&self) -> u16 {
        self.vlan_tci & VLAN_VID_MASK
    }

    /// True when the packet carries an outer VLAN tag.
    pub fn has_vlan(&self) -> bool {
        self.vlan_tci & VLAN_CFI != 0
    }
}

/// Ethertypes used throughout.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
}

/// IP protocol numbers used throughout.
pub mod ipproto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_ones_mask_keeps_every_field_but_padding() {
        let k = FlowKey {
            nw_src: 0x0a00_0001,
            dl_dst: [1, 2, 3, 4, 5, 6],
            pad1: 7,
            ..FlowKey::default()
        };
        let m = k.masked(&FlowKey::all_ones());
        assert_eq!(m.nw_src, 0x0a00_0001);
        assert_eq!(m.dl_dst, [1, 2, 3, 4, 5, 6]);
        assert_eq!(m.pad1, 0);
    }

    #[test]
    fn eq_masked_ignores_bits_outside_the_mask() {
        let a = FlowKey {
            nw_dst: 0x0a00_0001,
            ..FlowKey::default()
        };
        let b = FlowKey {
            nw_dst: 0x0a00_00ff,
            ..FlowKey::default()
        };
        let mut m = FlowKey {
            nw_dst: 0xffff_ff00,
            ..FlowKey::default()
        };
        assert!(a.eq_masked(&b, &m));
        m.nw_dst = 0xffff_ffff;
        assert!(!a.eq_masked(&b, &m));
    }
}
