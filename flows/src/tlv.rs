//! The Geneve TLV map: which Geneve option (class, type, length) each
//! `tun_metadataN` field (N in 0..64) carries. One map per bridge, changed
//! by NXT_TLV_TABLE_MOD (`ofctl add-tlv-map`), read by
//! NXT_TLV_TABLE_REQUEST (`ofctl dump-tlv-map`).
//!
//! The rules follow Open vSwitch's: option lengths are multiples of 4 up to
//! 124 bytes; the lengths of all mappings together fit in 256 bytes of
//! option space; an index holds one mapping and an option is mapped to at
//! most one index. A change is all or nothing: when one mapping of a
//! request fails, none of the request applies. Deleting an index that is
//! not mapped is not an error.
//!
//! Each mapping also gets a place in the flow key: [`TlvMap::location`]
//! gives the offset and length of `tun_metadataN` in
//! [`FlowKey::tun_metadata`], allocated first-fit when the mapping is
//! added. That area is [`TUN_METADATA_BYTES`] long (24 bytes, where Open
//! vSwitch has 256), so a map whose options do not fit in it is refused
//! with NXTTMFC_TABLE_FULL. [`FlowKey::tun_metadata_present`] has bit N
//! set when a received packet carried `tun_metadataN`'s option.

use std::fmt;

use crate::action::{Action, SubField};
use crate::field::{Field, TUN_METADATA_MAX_FIELD_BYTES};
use crate::key::{FlowKey, TUN_METADATA_BYTES};
use crate::matches::Match;

/// How many `tun_metadataN` fields exist.
pub const MAX_FIELDS: u16 = 64;
/// Total bytes of option data all mappings together may take.
pub const MAX_OPTION_SPACE: u32 = 256;
/// Largest option (data) length one mapping may have.
pub const MAX_OPTION_LEN: u8 = 124;

/// One mapping: Geneve option `class`/`type_` with `len` bytes of data
/// is `tun_metadata{index}`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TlvMapping {
    pub class: u16,
    pub type_: u8,
    pub len: u8,
    pub index: u16,
}

/// What a TLV table mod does with its mappings.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TlvCommand {
    /// Add every mapping.
    Add,
    /// Remove the mapping of each mapping's index.
    Delete,
    /// Remove every mapping (the request's mappings are ignored).
    Clear,
}

/// Why a TLV table mod is refused (Open vSwitch's `NXTTMFC_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum TlvError {
    #[error("NXTTMFC_BAD_COMMAND")]
    BadCommand,
    /// The option length is not a multiple of 4 or exceeds 124.
    #[error("NXTTMFC_BAD_OPT_LEN")]
    BadOptLen,
    /// The index is 64 or more.
    #[error("NXTTMFC_BAD_FIELD_IDX")]
    BadFieldIdx,
    /// The mappings together exceed 256 bytes of option space.
    #[error("NXTTMFC_TABLE_FULL")]
    TableFull,
    /// ADD for an index that is already mapped.
    #[error("NXTTMFC_ALREADY_MAPPED")]
    AlreadyMapped,
    /// ADD for an option already mapped to another index.
    #[error("NXTTMFC_DUP_ENTRY")]
    DupEntry,
    /// DELETE of a mapping that a flow uses.
    #[error("NXTTMFC_INVALID_TLV_DEL")]
    InvalidTlvDel,
}

/// Why `tun_metadataN` cannot be resolved to a [`Field`] against a
/// bridge's map.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum TunMetadataFieldError {
    /// The index has no mapping (OpenFlow error NXFMFC_INVALID_TLV_FIELD).
    #[error("tun_metadata{0} is not mapped in the bridge's TLV map (NXFMFC_INVALID_TLV_FIELD)")]
    Unmapped(u16),
    /// A flow gives the field a value longer than the mapped option.
    #[error(
        "tun_metadata{index} is {mapped} bytes long in the TLV map; a {given}-byte value does not fit"
    )]
    LongerThanMapped {
        index: u16,
        mapped: usize,
        given: usize,
    },
    /// The mapped option is longer than a field value can hold.
    #[error(
        "tun_metadata{index} is {len} bytes long; at most {max} bytes are supported as a match or set_field target"
    )]
    TooLong { index: u16, len: usize, max: usize },
    /// A `move`/`load` bit range reaches past the mapped option (OpenFlow
    /// error OFPBAC_BAD_SET_LEN, as Open vSwitch answers).
    #[error("tun_metadata{index} is {bits} bits long in the TLV map; bits {ofs}..{end} do not fit")]
    RangeTooWide {
        index: u16,
        bits: u32,
        ofs: u32,
        end: u32,
    },
}

/// Where an action names a field: as a whole value (`set_field`) or a bit
/// range (`load`, `move`, stack, `output:reg`, ...).
enum FieldPlace<'a> {
    Value(&'a mut Field),
    Bits(&'a mut SubField),
}

/// Calls `f` on every field `actions` (and the actions nested in them)
/// name, stopping at the first error.
fn for_each_field<E>(
    actions: &mut [Action],
    f: &mut impl FnMut(FieldPlace<'_>) -> Result<(), E>,
) -> Result<(), E> {
    for a in actions {
        match a {
            Action::SetField { field, .. } => f(FieldPlace::Value(field))?,
            Action::Load { dst, .. } => f(FieldPlace::Bits(dst))?,
            Action::Move { src, dst } => {
                f(FieldPlace::Bits(src))?;
                f(FieldPlace::Bits(dst))?;
            }
            Action::StackPush(sf) | Action::StackPop(sf) => f(FieldPlace::Bits(sf))?,
            Action::OutputReg { src, .. } => f(FieldPlace::Bits(src))?,
            Action::CheckPktLarger { dst, .. } => f(FieldPlace::Bits(dst))?,
            Action::WriteActions(inner) | Action::Clone(inner) => for_each_field(inner, f)?,
            Action::Ct(ct) => for_each_field(&mut ct.actions, f)?,
            _ => {}
        }
    }
    Ok(())
}

/// Bit N set for every `tun_metadataN` a rule's match or actions use (what
/// a TLV table mod may then not delete: NXTTMFC_INVALID_TLV_DEL).
pub fn tun_metadata_used(m: &Match, actions: &[Action]) -> u64 {
    let mut used = m.mask.tun_metadata_present;
    let mut acts = actions.to_vec();
    let _ = for_each_field(&mut acts, &mut |place| {
        let f = match place {
            FieldPlace::Value(f) => *f,
            FieldPlace::Bits(sf) => sf.field,
        };
        if let Field::TunMetadata { idx, .. } = f {
            used |= 1 << (idx % 64);
        }
        Ok::<(), ()>(())
    });
    used
}

/// A match on `tun_metadata{idx}` as a flow_mod or `ovs-ofctl` text gives
/// it, independent of any TLV map: the value (and mask) right-aligned in
/// `len` bytes, the length the wire entry states. A bridge's map places it
/// in a [`Match`] ([`TlvMap::bind_match`]) and reads it back
/// ([`TlvMap::match_entries`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TunMetadataMatch {
    pub idx: u8,
    /// Bytes of the value (and of the mask) on the wire.
    pub len: u8,
    pub value: u128,
    /// `None`: exact on the whole mapped option.
    pub mask: Option<u128>,
}

impl TunMetadataMatch {
    /// Smallest length in bytes that holds `v` (0 for 0), what
    /// `ovs-ofctl` sends for a value it parsed without a map.
    pub fn min_len(v: u128) -> u8 {
        (16 - (v.leading_zeros() / 8)) as u8
    }

    /// A match parsed from text: the value's (and mask's) own length.
    pub fn from_text(idx: u8, value: u128, mask: Option<u128>) -> TunMetadataMatch {
        let len = Self::min_len(value).max(mask.map_or(0, Self::min_len));
        TunMetadataMatch {
            idx,
            len,
            value,
            mask,
        }
    }
}

impl TlvMapping {
    /// Checks what a single mapping can be checked for on its own.
    pub fn validate(&self) -> Result<(), TlvError> {
        if !self.len.is_multiple_of(4) || self.len > MAX_OPTION_LEN {
            return Err(TlvError::BadOptLen);
        }
        if self.index >= MAX_FIELDS {
            return Err(TlvError::BadFieldIdx);
        }
        Ok(())
    }
}

/// A bridge's TLV map.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TlvMap {
    slots: [Option<TlvMapping>; MAX_FIELDS as usize],
    /// Offset in [`FlowKey::tun_metadata`] of each mapped index.
    offsets: [u8; MAX_FIELDS as usize],
}

impl Default for TlvMap {
    fn default() -> TlvMap {
        TlvMap {
            slots: [None; MAX_FIELDS as usize],
            offsets: [0; MAX_FIELDS as usize],
        }
    }
}

impl TlvMap {
    pub fn new() -> TlvMap {
        TlvMap::default()
    }

    /// Every mapping, by index.
    pub fn mappings(&self) -> impl Iterator<Item = &TlvMapping> {
        self.slots.iter().flatten()
    }

    /// The mapping of `tun_metadata{index}`.
    pub fn get(&self, index: u16) -> Option<&TlvMapping> {
        self.slots.get(usize::from(index)).and_then(|s| s.as_ref())
    }

    /// Option bytes the mappings take together.
    pub fn allocated(&self) -> u32 {
        self.mappings().map(|m| u32::from(m.len)).sum()
    }

    /// Applies a TLV table mod: all of it, or (on error) none of it.
    /// `in_use` says whether a flow uses `tun_metadata{index}`, which then
    /// cannot be deleted.
    pub fn apply(
        &mut self,
        command: TlvCommand,
        maps: &[TlvMapping],
        in_use: impl Fn(u16) -> bool,
    ) -> Result<(), TlvError> {
        for m in maps {
            m.validate()?;
        }
        let mut next = self.clone();
        match command {
            TlvCommand::Add => {
                for m in maps {
                    next.add(*m)?;
                }
            }
            TlvCommand::Delete => {
                for m in maps {
                    if next.get(m.index).is_some() && in_use(m.index) {
                        return Err(TlvError::InvalidTlvDel);
                    }
                    next.slots[usize::from(m.index)] = None;
                }
            }
            TlvCommand::Clear => {
                if next.mappings().any(|m| in_use(m.index)) {
                    return Err(TlvError::InvalidTlvDel);
                }
                next = TlvMap::default();
            }
        }
        *self = next;
        Ok(())
    }

    fn add(&mut self, m: TlvMapping) -> Result<(), TlvError> {
        m.validate()?;
        if self.get(m.index).is_some() {
            return Err(TlvError::AlreadyMapped);
        }
        if self
            .mappings()
            .any(|o| o.class == m.class && o.type_ == m.type_)
        {
            return Err(TlvError::DupEntry);
        }
        if self.allocated() + u32::from(m.len) > MAX_OPTION_SPACE {
            return Err(TlvError::TableFull);
        }
        let offset = self
            .free_offset(usize::from(m.len))
            .ok_or(TlvError::TableFull)?;
        self.slots[usize::from(m.index)] = Some(m);
        self.offsets[usize::from(m.index)] = offset as u8;
        Ok(())
    }

    /// The lowest offset in the key's option area where `len` bytes touch
    /// no other mapping's bytes.
    fn free_offset(&self, len: usize) -> Option<usize> {
        let mut off = 0;
        loop {
            if off + len > TUN_METADATA_BYTES {
                return None;
            }
            let clash = self
                .locations()
                .filter(|&(_, o, l)| o < off + len && off < o + l)
                .map(|(_, o, l)| o + l)
                .max();
            match clash {
                None => return Some(off),
                Some(end) => off = end,
            }
        }
    }

    /// `(index, offset, len)` of every mapping.
    fn locations(&self) -> impl Iterator<Item = (u16, usize, usize)> + '_ {
        self.mappings().map(|m| {
            (
                m.index,
                usize::from(self.offsets[usize::from(m.index)]),
                usize::from(m.len),
            )
        })
    }

    /// Where `tun_metadata{index}` lives in [`FlowKey::tun_metadata`]:
    /// `(offset, len)`, or `None` when the index is not mapped.
    pub fn location(&self, index: u16) -> Option<(usize, usize)> {
        self.get(index).map(|m| {
            (
                usize::from(self.offsets[usize::from(index)]),
                usize::from(m.len),
            )
        })
    }

    /// `tun_metadata{index}` as a [`Field`] located in this map, what a
    /// flow's match and `set_field` use.
    pub fn field(&self, index: u16) -> Result<Field, TunMetadataFieldError> {
        let (off, len) = self
            .location(index)
            .ok_or(TunMetadataFieldError::Unmapped(index))?;
        if len > TUN_METADATA_MAX_FIELD_BYTES {
            return Err(TunMetadataFieldError::TooLong {
                index,
                len,
                max: TUN_METADATA_MAX_FIELD_BYTES,
            });
        }
        Ok(Field::TunMetadata {
            idx: index as u8,
            off: off as u8,
            len: len as u8,
        })
    }

    /// Like [`TlvMap::field`] for a field header that states a length in
    /// bytes (an NXM header of a match entry or a `set_field`).
    /// `ovs-ofctl` knows no map and sends the value's own length
    /// (`tun_metadata0=0x1234` travels as 2 bytes, `tun_metadata0=0` as 0),
    /// so a shorter value is accepted and right-aligned in the option, as
    /// Open vSwitch does; a longer one is refused. Not for the field
    /// headers of `move`/`load` (NXAST_REG_MOVE/LOAD): those always say
    /// 124 bytes, OVS's maximum; resolve them with [`TlvMap::field`] and
    /// check the bit range against its width.
    pub fn field_with_len(&self, index: u16, given: usize) -> Result<Field, TunMetadataFieldError> {
        let f = self.field(index)?;
        let mapped = f.n_bits() as usize / 8;
        if given > mapped {
            return Err(TunMetadataFieldError::LongerThanMapped {
                index,
                mapped,
                given,
            });
        }
        Ok(f)
    }

    /// Places a field that names `tun_metadataN` without a location
    /// ([`Field::tun_metadata_unbound`]) in this map; `value_len` says the
    /// unbound length is a value's (a match or `set_field`: it must fit in
    /// the option) rather than a `move`/`load` header's (any length; the
    /// bit range is checked by [`TlvMap::bind_subfield`]). Other fields
    /// come back as they are.
    pub fn bind_field(&self, f: Field, value_len: bool) -> Result<Field, TunMetadataFieldError> {
        match f {
            Field::TunMetadata { idx, len, .. } if f.is_unbound_tun_metadata() => {
                if value_len {
                    self.field_with_len(u16::from(idx), usize::from(len))
                } else {
                    self.field(u16::from(idx))
                }
            }
            other => Ok(other),
        }
    }

    /// [`TlvMap::bind_field`] for a `move`/`load` bit range, which must lie
    /// within the mapped option.
    pub fn bind_subfield(&self, sf: SubField) -> Result<SubField, TunMetadataFieldError> {
        let field = self.bind_field(sf.field, false)?;
        if let Field::TunMetadata { idx, .. } = field {
            let end = u32::from(sf.ofs) + u32::from(sf.n_bits);
            if end > field.n_bits() {
                return Err(TunMetadataFieldError::RangeTooWide {
                    index: u16::from(idx),
                    bits: field.n_bits(),
                    ofs: u32::from(sf.ofs),
                    end,
                });
            }
        }
        Ok(SubField { field, ..sf })
    }

    /// Puts map-independent `tun_metadata` match entries into `m`. A match
    /// on an option also requires it present (its bit of
    /// `tun_metadata_present` becomes exact).
    pub fn bind_match(
        &self,
        m: &mut Match,
        entries: &[TunMetadataMatch],
    ) -> Result<(), TunMetadataFieldError> {
        for e in entries {
            let f = self.field_with_len(u16::from(e.idx), usize::from(e.len))?;
            let mask = e.mask.unwrap_or(u128::MAX) & f.max_value();
            f.set_masked(&mut m.key, e.value, mask);
            f.set(&mut m.mask, mask);
            // Presence is exact even under an all-zero mask.
            m.key.tun_metadata_present |= 1 << e.idx;
            m.mask.tun_metadata_present |= 1 << e.idx;
        }
        Ok(())
    }

    /// The `tun_metadata` entries of a match placed by this map, in index
    /// order, each in the mapped option's length (as Open vSwitch writes
    /// them in flow statistics).
    pub fn match_entries(&self, m: &Match) -> Vec<TunMetadataMatch> {
        (0..MAX_FIELDS)
            .filter(|i| m.mask.tun_metadata_present & (1 << i) != 0)
            .filter_map(|i| {
                let f = self.field(i).ok()?;
                let mask = f.get(&m.mask);
                Some(TunMetadataMatch {
                    idx: i as u8,
                    len: (f.n_bits() / 8) as u8,
                    value: f.get(&m.key) & mask,
                    mask: (mask != f.max_value()).then_some(mask),
                })
            })
            .collect()
    }

    /// Places every unbound `tun_metadataN` in `actions` (and in the
    /// actions nested in them) in this map.
    pub fn bind_actions(&self, actions: &mut [Action]) -> Result<(), TunMetadataFieldError> {
        for_each_field(actions, &mut |place| match place {
            FieldPlace::Value(f) => {
                *f = self.bind_field(*f, true)?;
                Ok(())
            }
            FieldPlace::Bits(sf) => {
                *sf = self.bind_subfield(*sf)?;
                Ok(())
            }
        })
    }

    /// Binds a flow_mod's `tun_metadata` matches and the `tun_metadataN`
    /// its actions name to this map; on success nothing in it is unbound.
    pub fn bind_flow_mod(
        &self,
        fm: &mut crate::table::FlowMod,
    ) -> Result<(), TunMetadataFieldError> {
        let entries = std::mem::take(&mut fm.tun_metadata);
        self.bind_match(&mut fm.m, &entries)?;
        self.bind_actions(&mut fm.actions)
    }

    /// The mapping of Geneve option `class`/`type_` (the critical bit is
    /// part of the type, as on the wire).
    pub fn find(&self, class: u16, type_: u8) -> Option<&TlvMapping> {
        self.mappings()
            .find(|m| m.class == class && m.type_ == type_)
    }

    /// Copies a received Geneve option into `key` when the map knows it
    /// with this length; says whether it did. An option of a mapped class
    /// and type but another length is not stored (OVS treats it as
    /// unknown).
    pub fn store(&self, key: &mut FlowKey, class: u16, type_: u8, data: &[u8]) -> bool {
        let Some(m) = self.find(class, type_) else {
            return false;
        };
        if usize::from(m.len) != data.len() {
            return false;
        }
        let off = usize::from(self.offsets[usize::from(m.index)]);
        key.tun_metadata[off..off + data.len()].copy_from_slice(data);
        key.tun_metadata_present |= 1 << m.index;
        true
    }

    /// The value of `tun_metadata{index}` in `key`, when the key has it.
    pub fn value<'k>(&self, key: &'k FlowKey, index: u16) -> Option<&'k [u8]> {
        let (off, len) = self.location(index)?;
        (key.tun_metadata_present & (1 << index) != 0).then(|| &key.tun_metadata[off..off + len])
    }

    /// Sets `tun_metadata{index}` in `key` to `data` (right-aligned in the
    /// option's length, as `set_field` writes a number) and marks it
    /// present. Returns false when the index is not mapped or `data` is
    /// longer than the option.
    pub fn set_value(&self, key: &mut FlowKey, index: u16, data: &[u8]) -> bool {
        let Some((off, len)) = self.location(index) else {
            return false;
        };
        if data.len() > len {
            return false;
        }
        let area = &mut key.tun_metadata[off..off + len];
        area.fill(0);
        area[len - data.len()..].copy_from_slice(data);
        key.tun_metadata_present |= 1 << index;
        true
    }

    /// The options present in `key`, in index order, as `(class, type,
    /// data)`: what an encapsulating Geneve port emits.
    pub fn options<'a>(
        &'a self,
        key: &'a FlowKey,
    ) -> impl Iterator<Item = (u16, u8, &'a [u8])> + 'a {
        self.mappings()
            .filter_map(move |m| self.value(key, m.index).map(|d| (m.class, m.type_, d)))
    }
}

/// `{class=0x102,type=0x80,len=4}->tun_metadata0`, as `ovs-ofctl` writes
/// a mapping on its command line.
impl fmt::Display for TlvMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{class={:#x},type={:#x},len={}}}->tun_metadata{}",
            self.class, self.type_, self.len, self.index
        )
    }
}

fn parse_num(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parses `ovs-ofctl add-tlv-map`'s argument: comma-separated
/// `{class=C,type=T,len=L}->tun_metadataN`, numbers in decimal or hex.
pub fn parse_tlv_maps(s: &str) -> Result<Vec<TlvMapping>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let body = rest
            .strip_prefix('{')
            .ok_or_else(|| format!("{s}: invalid tlv mapping"))?;
        let close = body
            .find('}')
            .ok_or_else(|| format!("{s}: invalid tlv mapping"))?;
        let (fields, after) = (&body[..close], &body[close + 1..]);
        let (mut class, mut type_, mut len) = (None, None, None);
        for kv in fields.split(',') {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("{s}: invalid tlv mapping"))?;
            let n = parse_num(v).ok_or_else(|| format!("{s}: invalid tlv mapping"))?;
            match k.trim() {
                "class" => class = u16::try_from(n).ok(),
                "type" => type_ = u8::try_from(n).ok(),
                "len" => len = u8::try_from(n).ok(),
                _ => return Err(format!("{s}: invalid tlv mapping")),
            }
        }
        let after = after
            .trim_start()
            .strip_prefix("->")
            .ok_or_else(|| format!("{s}: invalid tlv mapping"))?
            .trim_start();
        let after = after
            .strip_prefix("tun_metadata")
            .ok_or_else(|| format!("{s}: invalid tlv mapping"))?;
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let index: u16 = after[..digits]
            .parse()
            .map_err(|_| format!("{s}: invalid tlv mapping"))?;
        match (class, type_, len) {
            (Some(class), Some(type_), Some(len)) => out.push(TlvMapping {
                class,
                type_,
                len,
                index,
            }),
            _ => return Err(format!("{s}: invalid tlv mapping")),
        }
        rest = after[digits..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(format!("{s}: invalid tlv mapping"));
        }
    }
    Ok(out)
}

/// The mapping table as `ovs-ofctl` prints it (after a title line):
/// a header and one right-aligned row per mapping.
pub fn format_tlv_table(maps: &[TlvMapping]) -> String {
    let mut s =
        String::from("  class  type  length  match field\n ------  ----  ------  --------------");
    for m in maps {
        s.push_str(&format!(
            "\n {:>6}  {:>4}  {:>6}  tun_metadata{}",
            format!("{:#x}", m.class),
            format!("{:#x}", m.type_),
            m.len,
            m.index
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matches::Match;

    /// tun_metadata0: OVN's 4-byte option; tun_metadata1: 8 bytes.
    fn two_maps() -> TlvMap {
        let mut t = TlvMap::new();
        t.apply(
            TlvCommand::Add,
            &[m(0x102, 0x80, 4, 0), m(0xffff, 1, 8, 1)],
            |_| false,
        )
        .unwrap();
        t
    }

    #[test]
    fn unbound_match_binds_right_aligned_and_requires_the_option_present() {
        let t = two_maps();
        let mut mt = Match::default();
        let e = TunMetadataMatch::from_text(0, 0x1234, None);
        assert_eq!(e.len, 2);
        t.bind_match(&mut mt, &[e]).unwrap();
        let f = t.field(0).unwrap();
        assert_eq!(f.get(&mt.key), 0x1234);
        assert_eq!(f.get(&mt.mask), 0xffff_ffff);
        let mut pkt = FlowKey::default();
        assert!(!mt.matches(&pkt), "absent option matched");
        assert!(t.set_value(&mut pkt, 0, &[0, 0, 0x12, 0x34]));
        assert!(mt.matches(&pkt));
        // `=0` matches a present zero option, not an absent one.
        let mut zero = Match::default();
        t.bind_match(&mut zero, &[TunMetadataMatch::from_text(1, 0, None)])
            .unwrap();
        assert!(!zero.matches(&FlowKey::default()));
        let mut p2 = FlowKey::default();
        assert!(t.set_value(&mut p2, 1, &[0; 8]));
        assert!(zero.matches(&p2));
        // Reading back gives the mapped length, masks only when partial.
        let mut masked = Match::default();
        t.bind_match(
            &mut masked,
            &[TunMetadataMatch::from_text(0, 0x1200, Some(0xff00))],
        )
        .unwrap();
        assert_eq!(
            t.match_entries(&masked),
            [TunMetadataMatch {
                idx: 0,
                len: 4,
                value: 0x1200,
                mask: Some(0xff00)
            }]
        );
        assert_eq!(
            t.match_entries(&mt),
            [TunMetadataMatch {
                idx: 0,
                len: 4,
                value: 0x1234,
                mask: None
            }]
        );
        // Unmapped, and longer than the option.
        assert_eq!(
            t.bind_match(&mut mt, &[TunMetadataMatch::from_text(2, 1, None)]),
            Err(TunMetadataFieldError::Unmapped(2))
        );
        assert!(matches!(
            t.bind_match(&mut mt, &[TunMetadataMatch::from_text(0, 1 << 40, None)]),
            Err(TunMetadataFieldError::LongerThanMapped { .. })
        ));
    }

    #[test]
    fn actions_bind_set_field_load_and_move_and_refuse_ranges_past_the_option() {
        let t = two_maps();
        let unbound = |len| Field::tun_metadata_unbound(0, len);
        let sf = |field, ofs, n_bits| SubField { field, ofs, n_bits };
        let mut acts = vec![
            Action::SetField {
                field: unbound(1),
                value: 1,
                mask: None,
            },
            Action::Move {
                src: sf(unbound(124), 16, 15),
                dst: sf(Field::Reg(14), 0, 15),
            },
            Action::Clone(vec![Action::Load {
                dst: sf(Field::tun_metadata_unbound(1, 124), 0, 16),
                value: 5,
            }]),
        ];
        t.bind_actions(&mut acts).unwrap();
        let f0 = t.field(0).unwrap();
        let f1 = t.field(1).unwrap();
        assert!(matches!(&acts[0], Action::SetField { field, .. } if *field == f0));
        assert!(matches!(&acts[1], Action::Move { src, .. } if src.field == f0));
        assert!(
            matches!(&acts[2], Action::Clone(v) if matches!(&v[0], Action::Load { dst, .. } if dst.field == f1))
        );
        // Bits 0..40 of a 32-bit option.
        let mut wide = vec![Action::Move {
            src: sf(unbound(124), 0, 41),
            dst: sf(Field::XXReg(0), 0, 41),
        }];
        assert!(matches!(
            t.bind_actions(&mut wide),
            Err(TunMetadataFieldError::RangeTooWide { .. })
        ));
        let mut unmapped = vec![Action::SetField {
            field: Field::tun_metadata_unbound(5, 1),
            value: 1,
            mask: None,
        }];
        assert_eq!(
            t.bind_actions(&mut unmapped),
            Err(TunMetadataFieldError::Unmapped(5))
        );
        // What a rule uses: its match's options and its actions' fields.
        let mut mt = Match::default();
        t.bind_match(&mut mt, &[TunMetadataMatch::from_text(1, 7, None)])
            .unwrap();
        assert_eq!(tun_metadata_used(&mt, &acts), 0b11);
        assert_eq!(tun_metadata_used(&Match::default(), &acts[..2]), 0b01);
        // A bound write makes the option present.
        let mut k = FlowKey::default();
        f1.set_masked(&mut k, 5, 0xffff);
        assert_eq!(t.value(&k, 1), Some(&[0, 0, 0, 0, 0, 0, 0, 5][..]));
        // An unbound field reads 0 and writes nothing.
        let mut k2 = FlowKey::default();
        unbound(4).set(&mut k2, 0xffff_ffff);
        assert_eq!(k2, FlowKey::default());
        assert_eq!(unbound(4).get(&k), 0);
    }

    fn m(class: u16, type_: u8, len: u8, index: u16) -> TlvMapping {
        TlvMapping {
            class,
            type_,
            len,
            index,
        }
    }

    fn none(_: u16) -> bool {
        false
    }

    fn ovn_map() -> TlvMap {
        let mut t = TlvMap::new();
        t.apply(
            TlvCommand::Add,
            &[m(0x102, 0x80, 4, 0), m(0x103, 0x01, 8, 5)],
            none,
        )
        .unwrap();
        t
    }

    #[test]
    fn tun_metadata_resolves_to_the_mapped_place_and_length() {
        let t = ovn_map();
        let f = t.field(0).unwrap();
        let (off, len) = t.location(0).unwrap();
        assert_eq!(
            f,
            Field::TunMetadata {
                idx: 0,
                off: off as u8,
                len: 4
            }
        );
        assert_eq!(len, 4);
        assert_eq!(f.n_bits(), 32);
        assert_eq!(f.name(), "tun_metadata0");
        assert_eq!(f.nxm_name(), "NXM_NX_TUN_METADATA0");
        assert_eq!(t.field(5).unwrap().n_bits(), 64);
        assert_eq!(t.field(5).unwrap().name(), "tun_metadata5");
        assert_eq!(Field::tun_metadata_index("tun_metadata63"), Some(63));
        assert_eq!(Field::tun_metadata_index("NXM_NX_TUN_METADATA5"), Some(5));
        assert_eq!(Field::tun_metadata_index("tun_metadata64"), None);
        assert_eq!(Field::tun_metadata_index("tun_metadata01"), None);
        assert_eq!(Field::tun_metadata_index("tun_metadata"), None);
    }

    #[test]
    fn unmapped_tun_metadata_is_refused_with_invalid_tlv_field() {
        let t = ovn_map();
        let e = t.field(1).unwrap_err();
        assert_eq!(e, TunMetadataFieldError::Unmapped(1));
        assert!(e.to_string().contains("NXFMFC_INVALID_TLV_FIELD"), "{e}");
        assert_eq!(
            t.field_with_len(0, 8).unwrap_err(),
            TunMetadataFieldError::LongerThanMapped {
                index: 0,
                mapped: 4,
                given: 8
            }
        );
        // ovs-ofctl sends tun_metadata0=0x1234 in 2 bytes: it lands
        // right-aligned in the 4-byte option.
        assert_eq!(t.field_with_len(0, 2).unwrap(), t.field(0).unwrap());
        assert_eq!(t.field_with_len(0, 0).unwrap(), t.field(0).unwrap());
        assert!(t.field_with_len(0, 4).is_ok());
        let mut long = TlvMap::new();
        long.apply(TlvCommand::Add, &[m(0x104, 1, 20, 6)], none)
            .unwrap();
        assert!(matches!(
            long.field(6).unwrap_err(),
            TunMetadataFieldError::TooLong {
                index: 6,
                len: 20,
                ..
            }
        ));
    }

    #[test]
    fn set_field_on_tun_metadata_writes_value_and_marks_option_present() {
        let t = ovn_map();
        let f = t.field(0).unwrap();
        let mut k = FlowKey::default();
        f.set(&mut k, 0x1234);
        assert_eq!(t.value(&k, 0), Some(&[0, 0, 0x12, 0x34][..]));
        assert_eq!(k.tun_metadata_present, 1);
        assert_eq!(f.get(&k), 0x1234);
        // The encapsulating port emits it as the mapped option.
        let opts: Vec<_> = t.options(&k).collect();
        assert_eq!(opts, vec![(0x102, 0x80, &[0, 0, 0x12, 0x34][..])]);
        // A neighbour is left alone.
        let g = t.field(5).unwrap();
        g.set(&mut k, 0x0102_0304_0506_0708);
        assert_eq!(f.get(&k), 0x1234);
        assert_eq!(g.get(&k), 0x0102_0304_0506_0708);
        assert_eq!(k.tun_metadata_present, 1 | 1 << 5);
        // A masked write (load/move into a slice) changes only its bits.
        f.set_masked(&mut k, 0xab00, 0xff00);
        assert_eq!(f.get(&k), 0xab34);
    }

    #[test]
    fn match_on_tun_metadata_needs_the_option_present_with_the_value() {
        let t = ovn_map();
        let f = t.field(0).unwrap();
        let (mut key, mut mask) = (FlowKey::default(), FlowKey::default());
        f.set(&mut key, 0);
        f.unwildcard(&mut mask);
        assert_eq!(
            mask.tun_metadata_present, 1,
            "presence is exact in the mask"
        );
        let zero = Match::new(key, mask);
        // A packet without the option does not match tun_metadata0=0.
        assert!(!zero.matches(&FlowKey::default()));
        let mut pkt = FlowKey::default();
        assert!(t.store(&mut pkt, 0x102, 0x80, &[0, 0, 0, 0]));
        assert!(zero.matches(&pkt));

        let (mut key, mut mask) = (FlowKey::default(), FlowKey::default());
        f.set(&mut key, 0x1234);
        f.unwildcard(&mut mask);
        let exact = Match::new(key, mask);
        let mut pkt = FlowKey::default();
        t.store(&mut pkt, 0x102, 0x80, &[0, 0, 0x12, 0x34]);
        assert!(exact.matches(&pkt));
        let mut wrong = FlowKey::default();
        t.store(&mut wrong, 0x102, 0x80, &[0, 0, 0x12, 0x35]);
        assert!(!exact.matches(&wrong));

        // A masked match looks at its bits only.
        let (mut key, mut mask) = (FlowKey::default(), FlowKey::default());
        f.set(&mut key, 0x1200);
        f.set_mask_bits(&mut mask, 0xff00);
        let masked = Match::new(key, mask);
        assert!(masked.matches(&pkt));
        assert!(masked.matches(&wrong));
        assert!(!masked.matches(&FlowKey::default()));
    }

    #[test]
    fn add_maps_ovn_geneve_option_and_lists_by_index() {
        let mut t = TlvMap::new();
        t.apply(
            TlvCommand::Add,
            &[m(1, 1, 8, 63), m(0x102, 0x80, 4, 0)],
            none,
        )
        .unwrap();
        let got: Vec<_> = t.mappings().copied().collect();
        assert_eq!(got, vec![m(0x102, 0x80, 4, 0), m(1, 1, 8, 63)]);
        assert_eq!(t.allocated(), 12);
    }

    #[test]
    fn add_errors_match_ovs_order_and_leave_map_unchanged() {
        let mut t = TlvMap::new();
        t.apply(TlvCommand::Add, &[m(0x102, 0x80, 4, 0)], none)
            .unwrap();
        let before = t.clone();
        let e = |t: &mut TlvMap, maps: &[TlvMapping]| t.apply(TlvCommand::Add, maps, none);
        assert_eq!(
            e(&mut t, &[m(0x102, 0x80, 4, 0)]),
            Err(TlvError::AlreadyMapped)
        );
        assert_eq!(e(&mut t, &[m(0x102, 0x80, 4, 1)]), Err(TlvError::DupEntry));
        assert_eq!(e(&mut t, &[m(9, 9, 5, 1)]), Err(TlvError::BadOptLen));
        assert_eq!(e(&mut t, &[m(9, 9, 128, 1)]), Err(TlvError::BadOptLen));
        assert_eq!(e(&mut t, &[m(9, 9, 4, 64)]), Err(TlvError::BadFieldIdx));
        // 4 + 124 + 124 + 8 > 256: the first two are not kept either.
        assert_eq!(
            e(
                &mut t,
                &[
                    m(0xffff, 0x81, 124, 1),
                    m(0xffff, 0x82, 124, 2),
                    m(0xffff, 0x83, 8, 3)
                ]
            ),
            Err(TlvError::TableFull)
        );
        // 4 + 8 + 16 > the key's 24 bytes: refused as well, nothing kept.
        assert_eq!(
            e(&mut t, &[m(0xffff, 0x81, 8, 1), m(0xffff, 0x82, 16, 2)]),
            Err(TlvError::TableFull)
        );
        // Two mappings of one request that collide with each other.
        assert_eq!(
            e(&mut t, &[m(5, 5, 4, 5), m(5, 5, 4, 6)]),
            Err(TlvError::DupEntry)
        );
        assert_eq!(t, before);
        // Exactly the key's 24 bytes fit; a zero-length option is allowed.
        e(&mut t, &[m(0xffff, 0x81, 16, 1), m(7, 7, 4, 3)]).unwrap();
        e(&mut t, &[m(8, 8, 0, 4)]).unwrap();
        assert_eq!(t.allocated(), TUN_METADATA_BYTES as u32);
        assert_eq!(e(&mut t, &[m(9, 9, 4, 5)]), Err(TlvError::TableFull));
    }

    #[test]
    fn deleted_mapping_space_is_reused_first_fit() {
        let mut t = TlvMap::new();
        t.apply(
            TlvCommand::Add,
            &[m(1, 1, 8, 0), m(2, 2, 8, 1), m(3, 3, 8, 2)],
            none,
        )
        .unwrap();
        assert_eq!(
            (t.location(0), t.location(1), t.location(2)),
            (Some((0, 8)), Some((8, 8)), Some((16, 8)))
        );
        t.apply(TlvCommand::Delete, &[m(0, 0, 0, 1)], none).unwrap();
        assert_eq!(t.location(1), None);
        t.apply(TlvCommand::Add, &[m(4, 4, 4, 9), m(5, 5, 4, 10)], none)
            .unwrap();
        assert_eq!(
            (t.location(9), t.location(10)),
            (Some((8, 4)), Some((12, 4)))
        );
    }

    #[test]
    fn received_options_are_stored_at_their_offset_and_marked_present() {
        let mut t = TlvMap::new();
        t.apply(
            TlvCommand::Add,
            &[m(9, 1, 8, 5), m(0x102, 0x80, 4, 0)],
            none,
        )
        .unwrap();
        let mut k = FlowKey::default();
        assert_eq!(t.value(&k, 0), None);
        // Unknown option, and a known one of the wrong length: not stored.
        assert!(!t.store(&mut k, 0x102, 0x81, &[1, 2, 3, 4]));
        assert!(!t.store(&mut k, 0x102, 0x80, &[1, 2, 3, 4, 5, 6, 7, 8]));
        assert_eq!(k.tun_metadata_present, 0);
        assert!(t.store(&mut k, 0x102, 0x80, &[0, 0, 0, 0]));
        // Present with value zero differs from absent.
        assert_eq!(t.value(&k, 0), Some(&[0u8, 0, 0, 0][..]));
        assert_eq!(t.value(&k, 5), None);
        assert!(t.set_value(&mut k, 5, &[0x12, 0x34]));
        assert_eq!(t.value(&k, 5), Some(&[0u8, 0, 0, 0, 0, 0, 0x12, 0x34][..]));
        assert!(!t.set_value(&mut k, 6, &[1]));
        assert_eq!(k.tun_metadata_present, 1 | 1 << 5);
        let opts: Vec<_> = t.options(&k).collect();
        assert_eq!(
            opts,
            vec![
                (0x102, 0x80, &[0u8, 0, 0, 0][..]),
                (9, 1, &[0u8, 0, 0, 0, 0, 0, 0x12, 0x34][..])
            ]
        );
    }

    #[test]
    fn delete_ignores_unmapped_index_and_refuses_one_in_use() {
        let mut t = TlvMap::new();
        t.apply(TlvCommand::Add, &[m(1, 1, 4, 0), m(2, 2, 4, 7)], none)
            .unwrap();
        t.apply(TlvCommand::Delete, &[m(0, 0, 0, 5)], none).unwrap();
        assert_eq!(t.mappings().count(), 2);
        assert_eq!(
            t.apply(TlvCommand::Delete, &[m(0, 0, 0, 7)], |i| i == 7),
            Err(TlvError::InvalidTlvDel)
        );
        t.apply(TlvCommand::Delete, &[m(0, 0, 0, 7)], none).unwrap();
        assert_eq!(t.get(7), None);
        assert_eq!(
            t.apply(TlvCommand::Clear, &[], |i| i == 0),
            Err(TlvError::InvalidTlvDel)
        );
        t.apply(TlvCommand::Clear, &[], none).unwrap();
        assert_eq!(t.mappings().count(), 0);
    }

    proptest::proptest! {
        /// Any sequence of adds and deletes keeps every mapping's bytes
        /// inside the key's area and apart from every other mapping's, so
        /// options stored into a key read back unchanged.
        #[test]
        fn mappings_never_overlap_in_the_key_and_values_round_trip(
            ops in proptest::collection::vec((proptest::bool::ANY, 0u16..8, 0u8..4), 1..40)
        ) {
            let mut t = TlvMap::new();
            for (add, index, words) in ops {
                let map = m(0x100 + index, index as u8, words * 4, index);
                let cmd = if add { TlvCommand::Add } else { TlvCommand::Delete };
                let before = t.clone();
                if t.apply(cmd, &[map], none).is_err() {
                    proptest::prop_assert_eq!(&t, &before);
                }
                let locs: Vec<_> = t.locations().collect();
                for (i, &(_, o, l)) in locs.iter().enumerate() {
                    proptest::prop_assert!(o + l <= TUN_METADATA_BYTES);
                    for &(_, o2, l2) in &locs[i + 1..] {
                        proptest::prop_assert!(o + l <= o2 || o2 + l2 <= o);
                    }
                }
                let mut k = FlowKey::default();
                for mp in t.mappings() {
                    let data: Vec<u8> = (0..mp.len).map(|b| b ^ mp.index as u8).collect();
                    proptest::prop_assert!(t.store(&mut k, mp.class, mp.type_, &data));
                }
                for mp in t.mappings() {
                    let data: Vec<u8> = (0..mp.len).map(|b| b ^ mp.index as u8).collect();
                    proptest::prop_assert_eq!(t.value(&k, mp.index), Some(&data[..]));
                }
            }
        }
    }

    #[test]
    fn parses_and_prints_ovs_ofctl_mapping_syntax() {
        let maps = parse_tlv_maps(
            "{class=0x0102,type=0x80,len=4}->tun_metadata0, {class=1,type=2,len=8}->tun_metadata63",
        )
        .unwrap();
        assert_eq!(maps, vec![m(0x102, 0x80, 4, 0), m(1, 2, 8, 63)]);
        assert_eq!(
            maps[0].to_string(),
            "{class=0x102,type=0x80,len=4}->tun_metadata0"
        );
        assert!(parse_tlv_maps("{class=0x0102,type=0x80}->tun_metadata0").is_err());
        assert!(parse_tlv_maps("{class=0x10000,type=0x80,len=4}->tun_metadata0").is_err());
        assert!(parse_tlv_maps("{class=1,type=1,len=4}->reg0").is_err());
        assert_eq!(
            format_tlv_table(&maps),
            "  class  type  length  match field\n \
             ------  ----  ------  --------------\n  \
             0x102  0x80       4  tun_metadata0\n    \
             0x1   0x2       8  tun_metadata63"
        );
    }
}
