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

use std::fmt;

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
}

impl Default for TlvMap {
    fn default() -> TlvMap {
        TlvMap {
            slots: [None; MAX_FIELDS as usize],
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
        self.slots[usize::from(m.index)] = Some(m);
        Ok(())
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
        // Two mappings of one request that collide with each other.
        assert_eq!(
            e(&mut t, &[m(5, 5, 4, 5), m(5, 5, 4, 6)]),
            Err(TlvError::DupEntry)
        );
        assert_eq!(t, before);
        // Exactly 256 fits; a zero-length option is allowed.
        e(
            &mut t,
            &[
                m(0xffff, 0x81, 124, 1),
                m(0xffff, 0x82, 124, 2),
                m(7, 7, 4, 3),
            ],
        )
        .unwrap();
        e(&mut t, &[m(8, 8, 0, 4)]).unwrap();
        assert_eq!(t.allocated(), 256);
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
