//! OVSDB schema model (RFC 7047 section 3.2) and its JSON parser.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::datum::{Atom, Datum};
use crate::error::OvsdbError;

/// The schema of the `Open_vSwitch` database, as shipped with ferrovs.
pub const VSWITCH_SCHEMA: &str = include_str!("../schema/vswitch.ovsschema");

/// The atomic types of RFC 7047.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomicType {
    Integer,
    Real,
    Boolean,
    String,
    Uuid,
}

impl AtomicType {
    fn parse(s: &str) -> Result<Self, OvsdbError> {
        Ok(match s {
            "integer" => Self::Integer,
            "real" => Self::Real,
            "boolean" => Self::Boolean,
            "string" => Self::String,
            "uuid" => Self::Uuid,
            other => {
                return Err(OvsdbError::syntax(format!("unknown atomic type {other}")));
            }
        })
    }

    /// The RFC 7047 name of the type.
    pub fn name(self) -> &'static str {
        match self {
            Self::Integer => "integer",
            Self::Real => "real",
            Self::Boolean => "boolean",
            Self::String => "string",
            Self::Uuid => "uuid",
        }
    }
}

/// Whether a reference keeps its target alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefType {
    Strong,
    Weak,
}

/// A key or value type with its constraints.
#[derive(Debug, Clone)]
pub struct BaseType {
    pub atomic: AtomicType,
    pub enum_values: Option<Vec<Atom>>,
    pub min_integer: Option<i64>,
    pub max_integer: Option<i64>,
    pub min_real: Option<f64>,
    pub max_real: Option<f64>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub ref_table: Option<String>,
    pub ref_type: RefType,
}

impl BaseType {
    fn plain(atomic: AtomicType) -> Self {
        Self {
            atomic,
            enum_values: None,
            min_integer: None,
            max_integer: None,
            min_real: None,
            max_real: None,
            min_length: None,
            max_length: None,
            ref_table: None,
            ref_type: RefType::Strong,
        }
    }

    fn parse(v: &Value) -> Result<Self, OvsdbError> {
        if let Some(s) = v.as_str() {
            return Ok(Self::plain(AtomicType::parse(s)?));
        }
        let obj = v
            .as_object()
            .ok_or_else(|| OvsdbError::syntax("base type must be a string or an object"))?;
        let atomic = AtomicType::parse(
            obj.get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| OvsdbError::syntax("base type lacks \"type\""))?,
        )?;
        let mut bt = Self::plain(atomic);
        bt.min_integer = obj.get("minInteger").and_then(Value::as_i64);
        bt.max_integer = obj.get("maxInteger").and_then(Value::as_i64);
        bt.min_real = obj.get("minReal").and_then(Value::as_f64);
        bt.max_real = obj.get("maxReal").and_then(Value::as_f64);
        bt.min_length = obj
            .get("minLength")
            .and_then(Value::as_u64)
            .map(|n| n as usize);
        bt.max_length = obj
            .get("maxLength")
            .and_then(Value::as_u64)
            .map(|n| n as usize);
        bt.ref_table = obj
            .get("refTable")
            .and_then(Value::as_str)
            .map(str::to_owned);
        bt.ref_type = match obj.get("refType").and_then(Value::as_str) {
            Some("weak") => RefType::Weak,
            Some("strong") | None => RefType::Strong,
            Some(other) => return Err(OvsdbError::syntax(format!("unknown refType {other}"))),
        };
        if let Some(e) = obj.get("enum") {
            let unconstrained = Self::plain(atomic);
            let ty = ColumnType {
                key: unconstrained,
                value: None,
                min: 0,
                max: usize::MAX,
            };
            let d = Datum::from_json(e, &ty, &BTreeMap::new())?;
            bt.enum_values = Some(d.keys());
        }
        Ok(bt)
    }

    /// Check an atom against this type's constraints (enum, ranges, lengths).
    pub fn check(&self, atom: &Atom) -> Result<(), OvsdbError> {
        if let Some(allowed) = &self.enum_values
            && !allowed.contains(atom)
        {
            return Err(OvsdbError::constraint(format!(
                "{} is not one of the allowed values ({})",
                atom.to_display(),
                allowed
                    .iter()
                    .map(Atom::to_display)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        match atom {
            Atom::Integer(i)
                if self.min_integer.is_some_and(|m| *i < m)
                    || self.max_integer.is_some_and(|m| *i > m) =>
            {
                return Err(OvsdbError::constraint(format!(
                    "{i} is not in the valid range {}..{}",
                    self.min_integer.map_or("".into(), |m| m.to_string()),
                    self.max_integer.map_or("".into(), |m| m.to_string())
                )));
            }
            Atom::Real(r)
                if self.min_real.is_some_and(|m| *r < m)
                    || self.max_real.is_some_and(|m| *r > m) =>
            {
                return Err(OvsdbError::constraint(format!(
                    "{r} is not in the valid range"
                )));
            }
            Atom::String(s) => {
                let n = s.chars().count();
                if self.min_length.is_some_and(|m| n < m) || self.max_length.is_some_and(|m| n > m)
                {
                    return Err(OvsdbError::constraint(format!(
                        "\"{s}\" length {n} is not in the valid range"
                    )));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The type of a column: a set of keys or a map of keys to values.
#[derive(Debug, Clone)]
pub struct ColumnType {
    pub key: BaseType,
    pub value: Option<BaseType>,
    pub min: usize,
    /// `usize::MAX` stands for "unlimited".
    pub max: usize,
}

impl ColumnType {
    fn parse(v: &Value) -> Result<Self, OvsdbError> {
        if v.is_string() {
            return Ok(Self {
                key: BaseType::parse(v)?,
                value: None,
                min: 1,
                max: 1,
            });
        }
        let obj = v
            .as_object()
            .ok_or_else(|| OvsdbError::syntax("column type must be a string or an object"))?;
        let key = BaseType::parse(
            obj.get("key")
                .ok_or_else(|| OvsdbError::syntax("column type lacks \"key\""))?,
        )?;
        let value = obj.get("value").map(BaseType::parse).transpose()?;
        let min = match obj.get("min") {
            None => 1,
            Some(m) => m
                .as_u64()
                .ok_or_else(|| OvsdbError::syntax("\"min\" must be 0 or 1"))?
                as usize,
        };
        let max = match obj.get("max") {
            None => 1,
            Some(Value::String(s)) if s == "unlimited" => usize::MAX,
            Some(m) => m.as_u64().ok_or_else(|| {
                OvsdbError::syntax("\"max\" must be a positive integer or \"unlimited\"")
            })? as usize,
        };
        if min > 1 || max == 0 || min > max {
            return Err(OvsdbError::syntax("invalid min/max in column type"));
        }
        Ok(Self {
            key,
            value,
            min,
            max,
        })
    }

    /// A map column (has a value type).
    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }

    /// Exactly one atom, not a map.
    pub fn is_scalar(&self) -> bool {
        self.value.is_none() && self.min == 1 && self.max == 1
    }

    /// A set of at most one element ("optional" in OVS terms).
    pub fn is_optional(&self) -> bool {
        self.value.is_none() && self.min == 0 && self.max == 1
    }

    /// Build a column type of one atom of the given type (for `_uuid`, `_version`).
    pub fn uuid_scalar() -> Self {
        Self {
            key: BaseType::plain(AtomicType::Uuid),
            value: None,
            min: 1,
            max: 1,
        }
    }
}

/// A column of a table.
#[derive(Debug, Clone)]
pub struct ColumnSchema {
    pub ty: ColumnType,
    pub ephemeral: bool,
    pub mutable: bool,
}

/// A table of the schema.
#[derive(Debug, Clone)]
pub struct TableSchema {
    pub name: String,
    pub columns: BTreeMap<String, ColumnSchema>,
    pub is_root: bool,
    pub max_rows: Option<usize>,
    pub indexes: Vec<Vec<String>>,
}

impl TableSchema {
    /// A column by name, including the implicit `_uuid` and `_version`.
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.columns.get(name)
    }
}

/// A whole database schema.
#[derive(Debug, Clone)]
pub struct Schema {
    pub name: String,
    pub version: String,
    pub tables: BTreeMap<String, TableSchema>,
    /// The schema as it was given, returned verbatim by `get_schema`.
    pub json: Value,
}

impl Schema {
    /// The built-in `Open_vSwitch` schema.
    pub fn vswitch() -> Self {
        // The embedded file is part of the build and covered by tests.
        Self::parse_str(VSWITCH_SCHEMA).expect("embedded vswitch schema is valid")
    }

    /// Parse a schema from its JSON text.
    pub fn parse_str(text: &str) -> Result<Self, OvsdbError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| OvsdbError::syntax(format!("schema is not valid JSON: {e}")))?;
        Self::parse(&v)
    }

    /// Parse a schema from its JSON value.
    pub fn parse(v: &Value) -> Result<Self, OvsdbError> {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| OvsdbError::syntax("schema lacks \"name\""))?
            .to_owned();
        let version = v
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("0.0.0")
            .to_owned();
        let tables_json = v
            .get("tables")
            .and_then(Value::as_object)
            .ok_or_else(|| OvsdbError::syntax("schema lacks \"tables\""))?;
        let mut tables = BTreeMap::new();
        for (tname, t) in tables_json {
            let cols = t
                .get("columns")
                .and_then(Value::as_object)
                .ok_or_else(|| OvsdbError::syntax(format!("table {tname} lacks \"columns\"")))?;
            let mut columns = BTreeMap::new();
            for (cname, c) in cols {
                if cname.starts_with('_') {
                    return Err(OvsdbError::syntax(format!(
                        "{cname}: names beginning with \"_\" are reserved"
                    )));
                }
                let ty = ColumnType::parse(c.get("type").ok_or_else(|| {
                    OvsdbError::syntax(format!("column {cname} lacks \"type\""))
                })?)?;
                columns.insert(
                    cname.clone(),
                    ColumnSchema {
                        ty,
                        ephemeral: c.get("ephemeral").and_then(Value::as_bool).unwrap_or(false),
                        mutable: c.get("mutable").and_then(Value::as_bool).unwrap_or(true),
                    },
                );
            }
            let indexes = t
                .get("indexes")
                .and_then(Value::as_array)
                .map(|ixs| {
                    ixs.iter()
                        .filter_map(Value::as_array)
                        .map(|cols| {
                            cols.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            tables.insert(
                tname.clone(),
                TableSchema {
                    name: tname.clone(),
                    columns,
                    is_root: t.get("isRoot").and_then(Value::as_bool).unwrap_or(false),
                    max_rows: t.get("maxRows").and_then(Value::as_u64).map(|n| n as usize),
                    indexes,
                },
            );
        }
        for t in tables.values() {
            for (cname, c) in &t.columns {
                for bt in std::iter::once(&c.ty.key).chain(c.ty.value.as_ref()) {
                    if let Some(rt) = &bt.ref_table
                        && !tables.contains_key(rt)
                    {
                        return Err(OvsdbError::syntax(format!(
                            "column {}.{cname} refers to undefined table {rt}",
                            t.name
                        )));
                    }
                }
            }
        }
        Ok(Self {
            name,
            version,
            tables,
            json: v.clone(),
        })
    }

    /// A table by name.
    pub fn table(&self, name: &str) -> Option<&TableSchema> {
        self.tables.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vswitch_schema_parses_with_root_and_indexes() {
        let s = Schema::vswitch();
        assert_eq!(s.name, "Open_vSwitch");
        let ovs = s.table("Open_vSwitch").unwrap();
        assert!(ovs.is_root);
        assert_eq!(ovs.max_rows, Some(1));
        assert_eq!(
            s.table("Bridge").unwrap().indexes,
            vec![vec!["name".to_string()]]
        );
        let ports = &s.table("Bridge").unwrap().columns["ports"].ty;
        assert_eq!(ports.key.ref_table.as_deref(), Some("Port"));
        assert_eq!(ports.max, usize::MAX);
        let fail_mode = &s.table("Bridge").unwrap().columns["fail_mode"].ty;
        assert!(fail_mode.is_optional());
        assert_eq!(fail_mode.key.enum_values.as_ref().unwrap().len(), 2);
        let mirror = &s.table("Mirror").unwrap().columns["output_port"].ty;
        assert_eq!(mirror.key.ref_type, RefType::Weak);
    }

    #[test]
    fn schema_with_dangling_ref_table_is_rejected() {
        let bad = r#"{"name":"x","tables":{"A":{"columns":{"r":{"type":{"key":{"type":"uuid","refTable":"B"}}}}}}}"#;
        assert!(Schema::parse_str(bad).is_err());
    }
}
