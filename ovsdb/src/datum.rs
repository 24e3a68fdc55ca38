//! Atoms and datums (RFC 7047 section 5.1) and their JSON forms.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::OvsdbError;
use crate::schema::{AtomicType, BaseType, ColumnType};

/// Names given to rows inserted earlier in the same transaction (`uuid-name`).
pub type NamedUuids = BTreeMap<String, Uuid>;

/// One scalar value.
#[derive(Debug, Clone)]
pub enum Atom {
    Integer(i64),
    Real(f64),
    Boolean(bool),
    String(String),
    Uuid(Uuid),
}

impl Atom {
    fn rank(&self) -> u8 {
        match self {
            Atom::Integer(_) => 0,
            Atom::Real(_) => 1,
            Atom::Boolean(_) => 2,
            Atom::String(_) => 3,
            Atom::Uuid(_) => 4,
        }
    }

    /// The default value of an atomic type (0, 0.0, false, "", all-zero uuid).
    pub fn default_of(t: AtomicType) -> Self {
        match t {
            AtomicType::Integer => Atom::Integer(0),
            AtomicType::Real => Atom::Real(0.0),
            AtomicType::Boolean => Atom::Boolean(false),
            AtomicType::String => Atom::String(String::new()),
            AtomicType::Uuid => Atom::Uuid(Uuid::nil()),
        }
    }

    /// The atomic type of this atom.
    pub fn atomic_type(&self) -> AtomicType {
        match self {
            Atom::Integer(_) => AtomicType::Integer,
            Atom::Real(_) => AtomicType::Real,
            Atom::Boolean(_) => AtomicType::Boolean,
            Atom::String(_) => AtomicType::String,
            Atom::Uuid(_) => AtomicType::Uuid,
        }
    }

    /// Parse an atom of the given type from JSON, resolving named uuids.
    pub fn from_json(v: &Value, bt: &BaseType, named: &NamedUuids) -> Result<Self, OvsdbError> {
        let atom = match bt.atomic {
            AtomicType::Integer => Atom::Integer(
                v.as_i64()
                    .ok_or_else(|| OvsdbError::syntax(format!("expected integer, got {v}")))?,
            ),
            AtomicType::Real => Atom::Real(
                v.as_f64()
                    .ok_or_else(|| OvsdbError::syntax(format!("expected real, got {v}")))?,
            ),
            AtomicType::Boolean => Atom::Boolean(
                v.as_bool()
                    .ok_or_else(|| OvsdbError::syntax(format!("expected boolean, got {v}")))?,
            ),
            AtomicType::String => Atom::String(
                v.as_str()
                    .ok_or_else(|| OvsdbError::syntax(format!("expected string, got {v}")))?
                    .to_owned(),
            ),
            AtomicType::Uuid => Atom::Uuid(parse_uuid_json(v, named)?),
        };
        bt.check(&atom)?;
        Ok(atom)
    }

    /// The JSON form of this atom.
    pub fn to_json(&self) -> Value {
        match self {
            Atom::Integer(i) => json!(i),
            Atom::Real(r) => json!(r),
            Atom::Boolean(b) => json!(b),
            Atom::String(s) => json!(s),
            Atom::Uuid(u) => json!(["uuid", u.to_string()]),
        }
    }

    /// A human readable form (strings unquoted).
    pub fn to_display(&self) -> String {
        match self {
            Atom::Integer(i) => i.to_string(),
            Atom::Real(r) => r.to_string(),
            Atom::Boolean(b) => b.to_string(),
            Atom::String(s) => s.clone(),
            Atom::Uuid(u) => u.to_string(),
        }
    }

    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Atom::Uuid(u) => Some(*u),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }
}

/// Parse `["uuid", "..."]` or `["named-uuid", "name"]`.
pub fn parse_uuid_json(v: &Value, named: &NamedUuids) -> Result<Uuid, OvsdbError> {
    let arr = v
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or_else(|| OvsdbError::syntax(format!("expected [\"uuid\", ...], got {v}")))?;
    let s = arr[1]
        .as_str()
        .ok_or_else(|| OvsdbError::syntax(format!("expected uuid string, got {v}")))?;
    match arr[0].as_str() {
        Some("uuid") => Uuid::parse_str(s)
            .map_err(|_| OvsdbError::syntax(format!("\"{s}\" is not a valid UUID"))),
        Some("named-uuid") => named
            .get(s)
            .copied()
            .ok_or_else(|| OvsdbError::syntax(format!("unknown named-uuid \"{s}\""))),
        _ => Err(OvsdbError::syntax(format!(
            "expected [\"uuid\", ...], got {v}"
        ))),
    }
}

impl PartialEq for Atom {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Atom {}
impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Atom {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Atom::Integer(a), Atom::Integer(b)) => a.cmp(b),
            (Atom::Real(a), Atom::Real(b)) => a.total_cmp(b),
            (Atom::Boolean(a), Atom::Boolean(b)) => a.cmp(b),
            (Atom::String(a), Atom::String(b)) => a.cmp(b),
            (Atom::Uuid(a), Atom::Uuid(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// A column value: a set of atoms or a map of atoms to atoms.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Datum {
    Set(BTreeSet<Atom>),
    Map(BTreeMap<Atom, Atom>),
}

impl Datum {
    /// The default value of a column type: `min` default atoms.
    pub fn default_of(ty: &ColumnType) -> Self {
        if let Some(vt) = &ty.value {
            let mut m = BTreeMap::new();
            if ty.min == 1 {
                m.insert(Atom::default_of(ty.key.atomic), Atom::default_of(vt.atomic));
            }
            Datum::Map(m)
        } else {
            let mut s = BTreeSet::new();
            if ty.min == 1 {
                s.insert(Atom::default_of(ty.key.atomic));
            }
            Datum::Set(s)
        }
    }

    /// A set datum holding one atom.
    pub fn scalar(a: Atom) -> Self {
        Datum::Set(BTreeSet::from([a]))
    }

    /// Number of elements (set members or map pairs).
    pub fn len(&self) -> usize {
        match self {
            Datum::Set(s) => s.len(),
            Datum::Map(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys (set members or map keys), in order.
    pub fn keys(&self) -> Vec<Atom> {
        match self {
            Datum::Set(s) => s.iter().cloned().collect(),
            Datum::Map(m) => m.keys().cloned().collect(),
        }
    }

    /// Every atom in the datum (keys and values).
    pub fn atoms(&self) -> Box<dyn Iterator<Item = &Atom> + '_> {
        match self {
            Datum::Set(s) => Box::new(s.iter()),
            Datum::Map(m) => Box::new(m.iter().flat_map(|(k, v)| [k, v])),
        }
    }

    /// The only atom of a one-element set.
    pub fn first(&self) -> Option<&Atom> {
        match self {
            Datum::Set(s) => s.iter().next(),
            Datum::Map(m) => m.keys().next(),
        }
    }

    /// Parse a datum of the given column type (checking every constraint but `min`).
    pub fn from_json(v: &Value, ty: &ColumnType, named: &NamedUuids) -> Result<Self, OvsdbError> {
        let d = Self::from_json_unchecked(v, ty, named)?;
        if d.len() > ty.max {
            return Err(OvsdbError::constraint(format!(
                "{} values when type requires at most {}",
                d.len(),
                ty.max
            )));
        }
        Ok(d)
    }

    /// Parse a datum without checking the element count (for mutation arguments).
    pub fn from_json_unchecked(
        v: &Value,
        ty: &ColumnType,
        named: &NamedUuids,
    ) -> Result<Self, OvsdbError> {
        let tagged = v
            .as_array()
            .filter(|a| a.len() == 2)
            .and_then(|a| a[0].as_str().map(|t| (t, &a[1])));
        if let Some(vt) = &ty.value {
            match tagged {
                Some(("map", Value::Array(pairs))) => {
                    let mut m = BTreeMap::new();
                    for p in pairs {
                        let pa = p.as_array().filter(|a| a.len() == 2).ok_or_else(|| {
                            OvsdbError::syntax(format!("map pair must be [key, value], got {p}"))
                        })?;
                        let k = Atom::from_json(&pa[0], &ty.key, named)?;
                        let val = Atom::from_json(&pa[1], vt, named)?;
                        if m.insert(k, val).is_some() {
                            return Err(OvsdbError::syntax("map contains duplicate key"));
                        }
                    }
                    Ok(Datum::Map(m))
                }
                _ => Err(OvsdbError::syntax(format!(
                    "expected [\"map\", ...], got {v}"
                ))),
            }
        } else {
            match tagged {
                Some(("set", Value::Array(items))) => {
                    let mut s = BTreeSet::new();
                    for it in items {
                        if !s.insert(Atom::from_json(it, &ty.key, named)?) {
                            return Err(OvsdbError::syntax("set contains duplicate value"));
                        }
                    }
                    Ok(Datum::Set(s))
                }
                _ => Ok(Datum::scalar(Atom::from_json(v, &ty.key, named)?)),
            }
        }
    }

    /// Parse a mutation argument for a map column that may be a set of keys (for "delete").
    pub fn keys_from_json(
        v: &Value,
        ty: &ColumnType,
        named: &NamedUuids,
    ) -> Result<Self, OvsdbError> {
        let kt = ColumnType {
            key: ty.key.clone(),
            value: None,
            min: 0,
            max: usize::MAX,
        };
        Self::from_json_unchecked(v, &kt, named)
    }

    /// The JSON form of the datum.
    pub fn to_json(&self) -> Value {
        match self {
            Datum::Set(s) if s.len() == 1 => {
                s.iter().next().map(Atom::to_json).unwrap_or(Value::Null)
            }
            Datum::Set(s) => json!(["set", s.iter().map(Atom::to_json).collect::<Vec<_>>()]),
            Datum::Map(m) => json!([
                "map",
                m.iter()
                    .map(|(k, v)| json!([k.to_json(), v.to_json()]))
                    .collect::<Vec<_>>()
            ]),
        }
    }

    /// Whether `self` includes every element of `other`.
    pub fn includes(&self, other: &Datum) -> bool {
        match (self, other) {
            (Datum::Set(a), Datum::Set(b)) => b.is_subset(a),
            (Datum::Map(a), Datum::Map(b)) => b.iter().all(|(k, v)| a.get(k) == Some(v)),
            _ => false,
        }
    }

    /// Whether `self` has no element of `other`.
    pub fn excludes(&self, other: &Datum) -> bool {
        match (self, other) {
            (Datum::Set(a), Datum::Set(b)) => a.is_disjoint(b),
            (Datum::Map(a), Datum::Map(b)) => b.iter().all(|(k, v)| a.get(k) != Some(v)),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    #[test]
    fn set_and_map_round_trip_through_json() {
        let s = Schema::vswitch();
        let trunks = &s.table("Port").unwrap().columns["trunks"].ty;
        let d = Datum::from_json(&json!(["set", [20, 10]]), trunks, &NamedUuids::new()).unwrap();
        assert_eq!(d.to_json(), json!(["set", [10, 20]]));
        let ext = &s.table("Port").unwrap().columns["external_ids"].ty;
        let m = Datum::from_json(
            &json!(["map", [["b", "2"], ["a", "1"]]]),
            ext,
            &NamedUuids::new(),
        )
        .unwrap();
        assert_eq!(m.to_json(), json!(["map", [["a", "1"], ["b", "2"]]]));
    }

    #[test]
    fn out_of_range_integer_is_a_constraint_violation() {
        let s = Schema::vswitch();
        let tag = &s.table("Port").unwrap().columns["tag"].ty;
        let e = Datum::from_json(&json!(5000), tag, &NamedUuids::new()).unwrap_err();
        assert_eq!(e.error, "constraint violation");
    }

    #[test]
    fn value_outside_enum_is_a_constraint_violation() {
        let s = Schema::vswitch();
        let fm = &s.table("Bridge").unwrap().columns["fail_mode"].ty;
        assert!(Datum::from_json(&json!("secure"), fm, &NamedUuids::new()).is_ok());
        let e = Datum::from_json(&json!("bogus"), fm, &NamedUuids::new()).unwrap_err();
        assert_eq!(e.error, "constraint violation");
    }

    #[test]
    fn wrong_json_type_is_a_syntax_error() {
        let s = Schema::vswitch();
        let name = &s.table("Bridge").unwrap().columns["name"].ty;
        assert_eq!(
            Datum::from_json(&json!(5), name, &NamedUuids::new())
                .unwrap_err()
                .error,
            "syntax error"
        );
    }
}
