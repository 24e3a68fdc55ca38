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
pub const KEY_WORDS: usize = 44;

/// Words `0..HOT_WORDS` hold what [`crate::parse::extract_into`] fills from
/// every packet; the words after them (metadata, registers, tunnel,
/// conntrack) are zero for a plain packet that entered from a port, so the
/// per-packet hash ([`crate::hash::hash_key`]) skips them when they are all
/// zero.
pub const HOT_WORDS: usize = 14;

/// Bytes of Geneve option data the key carries for `tun_metadata0..63`
/// (the TLV map places each mapped option at an offset in this area, see
/// [`crate::tlv::TlvMap::location`]). Open vSwitch allows 256 bytes of
/// mapped options; ferrovs keeps its key at 44 words and allows 24 bytes
/// (six 4-byte options such as OVN's), refusing larger maps with
/// NXTTMFC_TABLE_FULL.
pub const TUN_METADATA_BYTES: usize = 24;

/// `ct_state` bits (OVS's `CS_*`).
pub mod ct_state {
    pub const NEW: u32 = 0x01;
    pub const EST: u32 = 0x02;
    pub const REL: u32 = 0x04;
    pub const RPL: u32 = 0x08;
    pub const INV: u32 = 0x10;
    pub const TRK: u32 = 0x20;
    pub const SNAT: u32 = 0x40;
    pub const DNAT: u32 = 0x80;
    /// Every defined bit.
    pub const ALL: u32 = 0xff;
}

/// `tun_flags` bit: the tunnel header had its OAM bit set.
pub const TUN_FLAG_OAM: u16 = 0x1;

/// All matchable fields of a packet plus its pipeline metadata.
///
/// The first [`HOT_WORDS`] words are the packet's own headers plus the two
/// datapath metadata values the datapath sets on a packet (`pkt_mark`,
/// `recirc_id`). The rest is written by:
/// - the OpenFlow pipeline (`metadata`, `regs`, `conj_id`), only inside
///   translation; a datapath key has them zero;
/// - tunnel decapsulation (`tun_*`): a tunnel port's receive path fills
///   `tun_id`, `tun_src`/`tun_dst` (or `tun_ipv6_*`), `tun_flags`, `tun_ttl`,
///   `tun_tos`, `tun_gbp_*` from the outer headers, and copies each Geneve
///   option that the bridge's TLV map (`flows::tlv`) maps to
///   `tun_metadataN` into `tun_metadata` at the map's offset;
/// - connection tracking (`ct_*`): after a `ct` action, the recirculated
///   key gets `ct_state`, `ct_zone`, `ct_mark`, `ct_label` and the original
///   direction tuple (`ct_nw_*`/`ct_ipv6_*`, `ct_nw_proto`, `ct_tp_*`) from
///   the tracker's `conntrack::CtResult`;
/// - `dp_hash` by the datapath's hash action, before recirculation.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, Pod, Zeroable)]
pub struct FlowKey {
    // ---- hot words (0..HOT_WORDS) ----
    /// Ingress port: the datapath port number in the datapath's key; translation
    /// rewrites it to the OpenFlow port number within the bridge.
    pub in_port: u32,
    /// Packet mark (skb mark), `pkt_mark`.
    pub pkt_mark: u32,
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
    /// IPv6 flow label (20 bits); for an MPLS packet (dl_type 0x8847 or
    /// 0x8848, which has no L3 fields) the top label stack entry instead,
    /// read through [`FlowKey::mpls_lse`] (as `nw_src` doubles as ARP's
    /// sender address).
    pub ipv6_label: u32,
    pub ipv6_src: [u8; 16],
    pub ipv6_dst: [u8; 16],
    /// ICMPv6 neighbour discovery target.
    pub nd_target: [u8; 16],
    /// ARP sender hardware address, or ND source link-layer address.
    pub arp_sha: [u8; 6],
    /// ARP target hardware address, or ND target link-layer address.
    pub arp_tha: [u8; 6],
    /// Recirculation id (0 for a packet fresh from a port).
    pub recirc_id: u32,
    // ---- extension words (zero for a plain packet from a port) ----
    /// Datapath hash (set by the hash action before recirculation).
    pub dp_hash: u32,
    /// Conjunctive match id (only during translation).
    pub conj_id: u32,
    /// OpenFlow metadata (write_metadata).
    pub metadata: u64,
    /// Registers reg0..reg15 (xreg N is reg 2N:2N+1, xxreg N is reg 4N..4N+3,
    /// the lower-numbered register holding the more significant bits).
    pub regs: [u32; 16],
    /// Tunnel id (VNI / key).
    pub tun_id: u64,
    /// Outer IPv4 source of a received tunnel packet.
    pub tun_src: u32,
    /// Outer IPv4 destination.
    pub tun_dst: u32,
    /// Outer IPv6 source (big-endian bytes).
    pub tun_ipv6_src: [u8; 16],
    /// Outer IPv6 destination.
    pub tun_ipv6_dst: [u8; 16],
    /// Tunnel flags ([`TUN_FLAG_OAM`]).
    pub tun_flags: u16,
    /// VXLAN group-based policy id.
    pub tun_gbp_id: u16,
    /// VXLAN group-based policy flags.
    pub tun_gbp_flags: u8,
    /// Outer TTL (datapath only; not an OpenFlow field).
    pub tun_ttl: u8,
    /// Outer TOS (datapath only; not an OpenFlow field).
    pub tun_tos: u8,
    /// Padding; always zero.
    pub pad0: u8,
    /// Connection state ([`ct_state`] bits).
    pub ct_state: u32,
    /// Connection mark.
    pub ct_mark: u32,
    /// Conntrack zone.
    pub ct_zone: u16,
    /// Original-direction transport source port.
    pub ct_tp_src: u16,
    /// Original-direction transport destination port.
    pub ct_tp_dst: u16,
    /// Original-direction IP protocol.
    pub ct_nw_proto: u8,
    /// Padding; always zero.
    pub pad1: u8,
    /// Original-direction IPv4 source.
    pub ct_nw_src: u32,
    /// Original-direction IPv4 destination.
    pub ct_nw_dst: u32,
    /// Connection label (128 bits, big-endian bytes).
    pub ct_label: [u8; 16],
    /// Original-direction IPv6 source.
    pub ct_ipv6_src: [u8; 16],
    /// Original-direction IPv6 destination.
    pub ct_ipv6_dst: [u8; 16],
    /// Geneve option data for `tun_metadata0..63`, laid out by the TLV map.
    pub tun_metadata: [u8; TUN_METADATA_BYTES],
    /// Bit N set: the received packet carried the option mapped to
    /// `tun_metadataN` (a match on an absent option fails even when its
    /// value would be zero).
    pub tun_metadata_present: u64,
}

const _: () = assert!(std::mem::size_of::<FlowKey>() == KEY_WORDS * 8);
const _: () = assert!(std::mem::align_of::<FlowKey>() == 8);
const _: () = assert!(std::mem::offset_of!(FlowKey, dp_hash) == HOT_WORDS * 8);

impl PartialEq for FlowKey {
    #[inline]
    fn eq(&self, other: &FlowKey) -> bool {
        self.words() == other.words()
    }
}

impl Eq for FlowKey {}

impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.words().hash(state);
    }
}

impl FlowKey {
    /// Zeroes the conntrack metadata (`ct_state`, `ct_zone`, `ct_mark`,
    /// `ct_label` and the original tuple): the packet is untracked.
    pub fn clear_ct(&mut self) {
        self.ct_state = 0;
        self.ct_zone = 0;
        self.ct_mark = 0;
        self.ct_label = [0; 16];
        self.clear_ct_orig();
    }

    /// Zeroes the connection's original-direction tuple (`ct_nw_proto`,
    /// `ct_nw_src/dst`, `ct_ipv6_src/dst`, `ct_tp_src/dst`).
    pub fn clear_ct_orig(&mut self) {
        self.ct_nw_proto = 0;
        self.ct_nw_src = 0;
        self.ct_nw_dst = 0;
        self.ct_ipv6_src = [0; 16];
        self.ct_ipv6_dst = [0; 16];
        self.ct_tp_src = 0;
        self.ct_tp_dst = 0;
    }

    /// A mask with every bit set (an exact match).
    pub fn all_ones() -> FlowKey {
        let mut k: FlowKey = bytemuck::cast([u64::MAX; KEY_WORDS]);
        k.pad0 = 0;
        k.pad1 = 0;
        k
    }

    /// True when every word past [`HOT_WORDS`] is zero (no metadata,
    /// registers, tunnel or conntrack state).
    #[inline]
    pub fn ext_is_zero(&self) -> bool {
        self.words()[HOT_WORDS..].iter().fold(0, |a, w| a | w) == 0
    }

    /// Carries a packet's datapath metadata over to a key freshly extracted
    /// from its (possibly rewritten) frame: `in_port`, `pkt_mark`,
    /// `recirc_id` and every extension word (tunnel, conntrack, `dp_hash`).
    /// This is what recirculation and re-injection keep of a packet besides
    /// its bytes.
    #[inline]
    pub fn carry_metadata(&mut self, meta: &FlowKey) {
        self.in_port = meta.in_port;
        self.pkt_mark = meta.pkt_mark;
        self.recirc_id = meta.recirc_id;
        self.words_mut()[HOT_WORDS..].copy_from_slice(&meta.words()[HOT_WORDS..]);
    }

    /// The other way round of [`FlowKey::carry_metadata`], for metadata
    /// already in place: keeps this key's metadata and takes every header
    /// field of `parsed` (a fresh extraction of the packet's frame).
    /// `meta.take_headers(&parsed)` leaves `meta` equal to `parsed` after
    /// `parsed.carry_metadata(&meta)`, copying 14 words instead of 30.
    #[inline]
    pub fn take_headers(&mut self, parsed: &FlowKey) {
        let (in_port, pkt_mark, recirc_id) = (self.in_port, self.pkt_mark, self.recirc_id);
        self.words_mut()[..HOT_WORDS].copy_from_slice(&parsed.words()[..HOT_WORDS]);
        self.in_port = in_port;
        self.pkt_mark = pkt_mark;
        self.recirc_id = recirc_id;
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

    /// The top MPLS label stack entry (meaningful when `dl_type` is MPLS).
    pub fn mpls_lse(&self) -> u32 {
        self.ipv6_label
    }

    /// Sets the top MPLS label stack entry.
    pub fn set_mpls_lse(&mut self, lse: u32) {
        self.ipv6_label = lse;
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
    pub const MPLS: u16 = 0x8847;
    pub const MPLS_MCAST: u16 = 0x8848;

    /// True for the two MPLS ethertypes.
    pub fn is_mpls(t: u16) -> bool {
        t == MPLS || t == MPLS_MCAST
    }
}

/// MPLS label stack entry bits, as [`FlowKey::mpls_lse`] holds them
/// (the 32-bit entry in host order: label, TC, bottom of stack, TTL).
pub mod mpls {
    pub const LABEL_SHIFT: u32 = 12;
    pub const LABEL_MASK: u32 = 0xffff_f000;
    pub const TC_SHIFT: u32 = 9;
    pub const TC_MASK: u32 = 0x0000_0e00;
    pub const BOS_SHIFT: u32 = 8;
    pub const BOS_MASK: u32 = 0x0000_0100;
    pub const TTL_MASK: u32 = 0x0000_00ff;
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

    /// A key as a recirculation queues it: metadata set by the first pass,
    /// and a header word (nw_src) that the next pass's parse must replace.
    fn recirculated_metadata() -> FlowKey {
        FlowKey {
            in_port: 7,
            pkt_mark: 3,
            recirc_id: 9,
            nw_src: 0x0b00_0001,
            ct_state: ct_state::TRK | ct_state::NEW,
            ct_zone: 5,
            tun_id: 42,
            tun_metadata: [1; TUN_METADATA_BYTES],
            tun_metadata_present: 1,
            ..FlowKey::default()
        }
    }

    #[test]
    fn carry_metadata_keeps_headers_and_takes_port_mark_recirc_and_extension_words() {
        let mut k = FlowKey {
            in_port: 1,
            nw_src: 0x0a00_0001,
            tp_dst: 80,
            ..FlowKey::default()
        };
        let meta = recirculated_metadata();
        k.carry_metadata(&meta);
        assert_eq!((k.in_port, k.pkt_mark, k.recirc_id), (7, 3, 9));
        assert_eq!((k.nw_src, k.tp_dst), (0x0a00_0001, 80));
        assert_eq!((k.ct_state, k.ct_zone, k.tun_id), (0x21, 5, 42));
        assert_eq!(k.tun_metadata, [1; TUN_METADATA_BYTES]);
        assert_eq!(k.tun_metadata_present, 1);
    }

    #[test]
    fn take_headers_is_carry_metadata_the_other_way_round() {
        let parsed = FlowKey {
            in_port: 1,
            nw_src: 0x0a00_0001,
            tp_dst: 80,
            dl_dst: [2; 6],
            ..FlowKey::default()
        };
        let meta = recirculated_metadata();
        let mut carried = parsed;
        carried.carry_metadata(&meta);
        let mut taken = meta;
        taken.take_headers(&parsed);
        assert_eq!(taken.words(), carried.words());
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
