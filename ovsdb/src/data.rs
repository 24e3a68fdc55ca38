//! In-memory database contents: rows by table, cheap to snapshot (copy on write).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::datum::{Atom, Datum, NamedUuids};
use crate::error::OvsdbError;
use crate::schema::{Schema, TableSchema};

/// One row: its column values and its `_version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub columns: BTreeMap<String, Datum>,
    pub version: Uuid,
}

impl Row {
    /// A row with every column at its default value.
    pub fn new_default(ts: &TableSchema) -> Self {
        Self {
            columns: ts
                .columns
                .iter()
                .map(|(n, c)| (n.clone(), Datum::default_of(&c.ty)))
                .collect(),
            version: Uuid::new_v4(),
        }
    }

    /// A column's value (`None` for unknown columns).
    pub fn get(&self, col: &str) -> Option<&Datum> {
        self.columns.get(col)
    }

    /// The first string of a column (for `name` and the like).
    pub fn get_str(&self, col: &str) -> Option<&str> {
        self.get(col).and_then(Datum::first).and_then(Atom::as_str)
    }

    /// JSON object of the selected columns (all when `columns` is None), plus `_uuid`/`_version`
    /// when selected or when all columns are requested.
    pub fn to_json(&self, uuid: Uuid, columns: Option<&[String]>) -> Value {
        let mut obj = Map::new();
        let want = |c: &str| columns.is_none_or(|cs| cs.iter().any(|x| x == c));
        if want("_uuid") {
            obj.insert("_uuid".into(), Atom::Uuid(uuid).to_json());
        }
        if want("_version") {
            obj.insert("_version".into(), Atom::Uuid(self.version).to_json());
        }
        for (c, d) in &self.columns {
            if want(c) {
                obj.insert(c.clone(), d.to_json());
            }
        }
        Value::Object(obj)
    }

    /// Parse a stored row (all columns plus `_version`); missing columns get defaults.
    pub fn from_stored_json(ts: &TableSchema, v: &Value) -> Result<Self, OvsdbError> {
        let obj = v
            .as_object()
            .ok_or_else(|| OvsdbError::syntax("stored row is not an object"))?;
        let mut row = Row::new_default(ts);
        for (c, val) in obj {
            if c == "_version" {
                row.version = crate::datum::parse_uuid_json(val, &NamedUuids::new())?;
                continue;
            }
            if c == "_uuid" {
                continue;
            }
            // Columns no longer in the schema are dropped (schema downgrade).
            if let Some(cs) = ts.columns.get(c) {
                row.columns.insert(
                    c.clone(),
                    Datum::from_json(val, &cs.ty, &NamedUuids::new())?,
                );
            }
        }
        Ok(row)
    }
}

/// The rows of one table.
pub type Table = BTreeMap<Uuid, Arc<Row>>;

/// The whole database: a table map whose tables are shared until written.
#[derive(Debug, Clone, Default)]
pub struct Data {
    pub tables: BTreeMap<String, Arc<Table>>,
}

impl Data {
    /// Empty tables for every table of the schema.
    pub fn empty(schema: &Schema) -> Self {
        Self {
            tables: schema
                .tables
                .keys()
                .map(|t| (t.clone(), Arc::new(Table::new())))
                .collect(),
        }
    }

    /// A table's rows (empty for unknown tables).
    pub fn table(&self, name: &str) -> &Table {
        static EMPTY: Table = BTreeMap::new();
        self.tables.get(name).map(|t| t.as_ref()).unwrap_or(&EMPTY)
    }

    /// Mutable access to a table, cloning it if it is shared.
    pub fn table_mut(&mut self, name: &str) -> &mut Table {
        Arc::make_mut(self.tables.entry(name.to_owned()).or_default())
    }

    /// A row by table and uuid.
    pub fn row(&self, table: &str, uuid: &Uuid) -> Option<&Arc<Row>> {
        self.table(table).get(uuid)
    }

    /// Total number of rows.
    pub fn row_count(&self) -> usize {
        self.tables.values().map(|t| t.len()).sum()
    }
}

/// One changed row of a committed transaction.
#[derive(Debug, Clone)]
pub struct RowChange {
    pub table: String,
    pub uuid: Uuid,
    /// `None` for an inserted row.
    pub old: Option<Arc<Row>>,
    /// `None` for a deleted row.
    pub new: Option<Arc<Row>>,
}

/// Every row a committed transaction changed.
#[derive(Debug, Clone, Default)]
pub struct ChangeSet {
    pub changes: Vec<RowChange>,
}

impl ChangeSet {
    /// Compute the changes between two versions of the data.
    pub fn diff(old: &Data, new: &Data) -> Self {
        let mut changes = Vec::new();
        for (tname, nt) in &new.tables {
            let ot = old.tables.get(tname);
            if ot.is_some_and(|ot| Arc::ptr_eq(ot, nt)) {
                continue;
            }
            let empty = Table::new();
            let ot: &Table = ot.map(|t| t.as_ref()).unwrap_or(&empty);
            for (u, nr) in nt.iter() {
                match ot.get(u) {
                    Some(or) if Arc::ptr_eq(or, nr) || or == nr => {}
                    o => changes.push(RowChange {
                        table: tname.clone(),
                        uuid: *u,
                        old: o.cloned(),
                        new: Some(nr.clone()),
                    }),
                }
            }
            for (u, or) in ot.iter() {
                if !nt.contains_key(u) {
                    changes.push(RowChange {
                        table: tname.clone(),
                        uuid: *u,
                        old: Some(or.clone()),
                        new: None,
                    });
                }
            }
        }
        Self { changes }
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}
