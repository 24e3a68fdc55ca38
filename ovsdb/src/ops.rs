//! Typed write operations for a program that embeds the database (vswitchd writing its status
//! back), so that it never builds RFC 7047 JSON by hand.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::datum::{Atom, Datum};

/// Which rows an [`Op::Update`] changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every row of the table (for the one-row root table).
    All,
    /// One row by uuid.
    Row(Uuid),
}

/// One write operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Set columns of existing rows.
    Update {
        table: String,
        target: Target,
        columns: BTreeMap<String, Datum>,
    },
    /// Insert a row with a uuid chosen by the caller (so other operations may refer to it).
    Insert {
        table: String,
        uuid: Uuid,
        columns: BTreeMap<String, Datum>,
    },
    /// Delete a row.
    Delete { table: String, uuid: Uuid },
}

impl Op {
    /// Update one row.
    pub fn update_row(table: &str, uuid: Uuid, columns: BTreeMap<String, Datum>) -> Op {
        Op::Update {
            table: table.to_owned(),
            target: Target::Row(uuid),
            columns,
        }
    }

    /// The RFC 7047 form of the operation.
    pub fn to_json(&self) -> Value {
        let row = |cols: &BTreeMap<String, Datum>| {
            Value::Object(
                cols.iter()
                    .map(|(c, d)| (c.clone(), d.to_json()))
                    .collect::<Map<_, _>>(),
            )
        };
        let by_uuid = |u: &Uuid| json!([["_uuid", "==", ["uuid", u.to_string()]]]);
        match self {
            Op::Update {
                table,
                target,
                columns,
            } => {
                let wh = match target {
                    Target::All => json!([]),
                    Target::Row(u) => by_uuid(u),
                };
                json!({"op": "update", "table": table, "where": wh, "row": row(columns)})
            }
            Op::Insert {
                table,
                uuid,
                columns,
            } => json!({"op": "insert", "table": table, "uuid": uuid.to_string(),
                "row": row(columns)}),
            Op::Delete { table, uuid } => {
                json!({"op": "delete", "table": table, "where": by_uuid(uuid)})
            }
        }
    }
}

/// The `transact` params for `ops` on database `db`.
pub fn transaction(db: &str, ops: &[Op]) -> Value {
    let mut v = vec![Value::String(db.to_owned())];
    v.extend(ops.iter().map(Op::to_json));
    Value::Array(v)
}

/// Constructors for the datum shapes a status writer needs.
impl Datum {
    /// An empty set (an unset optional column).
    pub fn empty_set() -> Datum {
        Datum::Set(Default::default())
    }

    /// A one-string set.
    pub fn string(s: impl Into<String>) -> Datum {
        Datum::scalar(Atom::String(s.into()))
    }

    /// A one-integer set.
    pub fn integer(i: i64) -> Datum {
        Datum::scalar(Atom::Integer(i))
    }

    /// A one-boolean set.
    pub fn boolean(b: bool) -> Datum {
        Datum::scalar(Atom::Boolean(b))
    }

    /// An optional string: empty set or one string.
    pub fn opt_string(s: Option<impl Into<String>>) -> Datum {
        s.map_or_else(Datum::empty_set, Datum::string)
    }

    /// A set of strings.
    pub fn string_set<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Datum {
        Datum::Set(items.into_iter().map(|s| Atom::String(s.into())).collect())
    }

    /// A string-to-string map.
    pub fn string_map<I, K, V>(pairs: I) -> Datum
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Datum::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Atom::String(k.into()), Atom::String(v.into())))
                .collect(),
        )
    }

    /// A string-to-integer map.
    pub fn string_int_map<I, K>(pairs: I) -> Datum
    where
        I: IntoIterator<Item = (K, i64)>,
        K: Into<String>,
    {
        Datum::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Atom::String(k.into()), Atom::Integer(v)))
                .collect(),
        )
    }

    /// The strings of a set (other atoms are skipped).
    pub fn strings(&self) -> Vec<&str> {
        match self {
            Datum::Set(s) => s.iter().filter_map(Atom::as_str).collect(),
            Datum::Map(_) => Vec::new(),
        }
    }

    /// The integers of a set.
    pub fn integers(&self) -> Vec<i64> {
        match self {
            Datum::Set(s) => s.iter().filter_map(Atom::as_i64).collect(),
            Datum::Map(_) => Vec::new(),
        }
    }

    /// The uuids of a set.
    pub fn uuids(&self) -> Vec<Uuid> {
        match self {
            Datum::Set(s) => s.iter().filter_map(Atom::as_uuid).collect(),
            Datum::Map(_) => Vec::new(),
        }
    }

    /// A map with string keys and values (other pairs are skipped).
    pub fn to_string_map(&self) -> BTreeMap<String, String> {
        match self {
            Datum::Map(m) => m
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                .collect(),
            Datum::Set(_) => BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_of_one_row_names_it_by_uuid() {
        let u = Uuid::from_u128(7);
        let op = Op::update_row(
            "Interface",
            u,
            BTreeMap::from([
                ("ofport".to_owned(), Datum::integer(3)),
                ("error".to_owned(), Datum::empty_set()),
            ]),
        );
        assert_eq!(
            op.to_json(),
            json!({"op": "update", "table": "Interface",
                "where": [["_uuid", "==", ["uuid", u.to_string()]]],
                "row": {"error": ["set", []], "ofport": 3}})
        );
    }

    #[test]
    fn insert_carries_the_chosen_uuid() {
        let u = Uuid::from_u128(9);
        let op = Op::Insert {
            table: "Datapath".into(),
            uuid: u,
            columns: BTreeMap::from([("capabilities".to_owned(), Datum::string_map([("a", "b")]))]),
        };
        assert_eq!(op.to_json()["uuid"], json!(u.to_string()));
        assert_eq!(
            op.to_json()["row"]["capabilities"],
            json!(["map", [["a", "b"]]])
        );
    }
}
