//! Monitors (RFC 7047 section 4.1.5) and the conditional monitors OVS added
//! (ovsdb-server(7): `monitor_cond`, `monitor_cond_change`,
//! `monitor_cond_since`, notifications `update2` and `update3`): parsing the
//! requests, the initial contents, and the updates a commit produces. Pure
//! logic; the server sends what this computes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::condition::Condition;
use crate::data::{ChangeSet, Data, Row};
use crate::datum::{Datum, NamedUuids};
use crate::error::OvsdbError;
use crate::schema::{ColumnType, Schema, TableSchema};

/// Which method created a monitor: it decides the update format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `monitor`: `update` notifications with `old`/`new` rows.
    Plain,
    /// `monitor_cond`: `update2` notifications with row diffs.
    Cond,
    /// `monitor_cond_since`: `update3` notifications (row diffs plus a transaction id).
    CondSince,
}

/// A `where` of a conditional monitor: a disjunction of clauses and boolean
/// literals; absent or empty means every row.
#[derive(Debug, Clone, Default)]
pub struct MonitorCondition {
    /// `None`: every row.
    any_of: Option<Vec<Clause>>,
}

#[derive(Debug, Clone)]
enum Clause {
    Literal(bool),
    Test(Condition),
}

impl MonitorCondition {
    /// Parse a `where` array of a monitor request against a table.
    pub fn parse(ts: &TableSchema, v: Option<&Value>) -> Result<Self, OvsdbError> {
        let Some(v) = v else {
            return Ok(Self::default());
        };
        let arr = v
            .as_array()
            .ok_or_else(|| OvsdbError::syntax("\"where\" must be an array"))?;
        if arr.is_empty() {
            return Ok(Self::default());
        }
        let mut clauses = Vec::with_capacity(arr.len());
        for c in arr {
            clauses.push(match c {
                Value::Bool(b) => Clause::Literal(*b),
                c => Clause::Test(Condition::parse(ts, Some(&json!([c])), &NamedUuids::new())?),
            });
        }
        Ok(Self {
            any_of: Some(clauses),
        })
    }

    /// Whether a row matches one of the clauses.
    pub fn matches(&self, row: &Row, uuid: Uuid) -> bool {
        match &self.any_of {
            None => true,
            Some(cs) => cs.iter().any(|c| match c {
                Clause::Literal(b) => *b,
                Clause::Test(t) => t.matches(row, uuid),
            }),
        }
    }
}

/// What a monitor asks of one table.
#[derive(Debug, Clone)]
pub struct MonitorTable {
    /// The columns sent (`None`: all).
    pub columns: Option<Vec<String>>,
    pub initial: bool,
    pub insert: bool,
    pub delete: bool,
    pub modify: bool,
    pub condition: MonitorCondition,
}

impl MonitorTable {
    fn wants(&self, col: &str) -> bool {
        self.columns
            .as_ref()
            .is_none_or(|cs| cs.iter().any(|c| c == col))
    }

    fn matches(&self, row: &Row, uuid: Uuid) -> bool {
        self.condition.matches(row, uuid)
    }
}

/// One monitor of a session.
#[derive(Debug, Clone)]
pub struct Monitor {
    pub kind: Kind,
    /// The client's `<json-value>` naming this monitor in notifications.
    pub id: Value,
    pub tables: BTreeMap<String, MonitorTable>,
}

fn flag(sel: Option<&Value>, n: &str) -> bool {
    sel.and_then(|s| s.get(n))
        .and_then(Value::as_bool)
        .unwrap_or(true)
}

impl Monitor {
    /// Parse `<monitor-requests>` (or `<monitor-cond-requests>`) of `schema`.
    pub fn parse(schema: &Schema, kind: Kind, id: Value, reqs: &Value) -> Result<Self, OvsdbError> {
        let reqs = reqs
            .as_object()
            .ok_or_else(|| OvsdbError::syntax("monitor requests must be an object"))?;
        let mut tables = BTreeMap::new();
        for (table, req) in reqs {
            let ts = schema
                .table(table)
                .ok_or_else(|| OvsdbError::unknown_table(table))?;
            let list: Vec<&Value> = match req {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            let mut mt = MonitorTable {
                columns: Some(Vec::new()),
                initial: false,
                insert: false,
                delete: false,
                modify: false,
                condition: MonitorCondition::default(),
            };
            for r in list {
                if !r.is_object() {
                    return Err(OvsdbError::syntax("monitor request must be an object"));
                }
                match r.get("columns") {
                    None => mt.columns = None,
                    Some(Value::Array(cols)) => {
                        for c in cols {
                            let c = c.as_str().ok_or_else(|| {
                                OvsdbError::syntax("column name must be a string")
                            })?;
                            if !ts.columns.contains_key(c) {
                                return Err(OvsdbError::unknown_column(table, c));
                            }
                            if let Some(cs) = mt.columns.as_mut()
                                && !cs.iter().any(|x| x == c)
                            {
                                cs.push(c.to_owned());
                            }
                        }
                    }
                    Some(_) => return Err(OvsdbError::syntax("\"columns\" must be an array")),
                }
                let sel = r.get("select");
                mt.initial |= flag(sel, "initial");
                mt.insert |= flag(sel, "insert");
                mt.delete |= flag(sel, "delete");
                mt.modify |= flag(sel, "modify");
                if kind != Kind::Plain {
                    mt.condition = MonitorCondition::parse(ts, r.get("where"))?;
                } else if r.get("where").is_some() {
                    return Err(OvsdbError::syntax(
                        "\"where\" is for monitor_cond, not monitor",
                    ));
                }
            }
            if mt.columns.as_ref().is_some_and(|c| c.is_empty()) {
                mt.columns = None;
            }
            tables.insert(table.clone(), mt);
        }
        Ok(Self { kind, id, tables })
    }

    /// The initial contents (`<table-updates>` or `<table-updates2>`).
    pub fn initial(&self, schema: &Schema, data: &Data) -> Value {
        let mut out = Map::new();
        for (table, mt) in &self.tables {
            if !mt.initial {
                continue;
            }
            let ts = schema.table(table);
            let mut rows = Map::new();
            for (u, r) in data.table(table) {
                if !mt.matches(r, *u) {
                    continue;
                }
                let entry = match self.kind {
                    Kind::Plain => json!({"new": row_json(r, mt, None)}),
                    _ => json!({"initial": row_json(r, mt, ts)}),
                };
                rows.insert(u.to_string(), entry);
            }
            if !rows.is_empty() {
                out.insert(table.clone(), Value::Object(rows));
            }
        }
        Value::Object(out)
    }

    /// The updates a commit brings this monitor (`None` when nothing it watches changed).
    pub fn updates(&self, schema: &Schema, changes: &ChangeSet) -> Option<Value> {
        let mut out: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
        for ch in &changes.changes {
            let Some(mt) = self.tables.get(&ch.table) else {
                continue;
            };
            let ts = schema.table(&ch.table);
            let old = ch.old.as_deref().filter(|o| mt.matches(o, ch.uuid));
            let new = ch.new.as_deref().filter(|n| mt.matches(n, ch.uuid));
            let entry = match (old, new, self.kind) {
                (None, Some(n), Kind::Plain) if mt.insert => json!({"new": row_json(n, mt, None)}),
                (Some(o), None, Kind::Plain) if mt.delete => json!({"old": row_json(o, mt, None)}),
                (Some(o), Some(n), Kind::Plain) if mt.modify => {
                    let mut changed = Map::new();
                    for (col, d) in &o.columns {
                        if mt.wants(col) && n.get(col) != Some(d) {
                            changed.insert(col.clone(), d.to_json());
                        }
                    }
                    if changed.is_empty() {
                        continue;
                    }
                    json!({"old": changed, "new": row_json(n, mt, None)})
                }
                (None, Some(n), _) if mt.insert => json!({"insert": row_json(n, mt, ts)}),
                (Some(_), None, _) if mt.delete => json!({"delete": null}),
                (Some(o), Some(n), _) if mt.modify => {
                    let mut diff = Map::new();
                    for (col, nd) in &n.columns {
                        let od = o.get(col);
                        if !mt.wants(col) || od == Some(nd) {
                            continue;
                        }
                        let ty = ts.and_then(|t| t.columns.get(col)).map(|c| &c.ty);
                        diff.insert(col.clone(), datum_diff(od, nd, ty).to_json());
                    }
                    if diff.is_empty() {
                        continue;
                    }
                    json!({"modify": diff})
                }
                _ => continue,
            };
            out.entry(ch.table.as_str())
                .or_default()
                .insert(ch.uuid.to_string(), entry);
        }
        if out.is_empty() {
            return None;
        }
        Some(Value::Object(
            out.into_iter()
                .map(|(t, rows)| (t.to_owned(), Value::Object(rows)))
                .collect(),
        ))
    }

    /// Apply `monitor_cond_change` requests: new conditions for some tables
    /// (the columns cannot change). Returns the `<table-updates2>` that bring
    /// the client from the old conditions to the new ones over `data`.
    pub fn change_conditions(
        &mut self,
        schema: &Schema,
        data: &Data,
        reqs: &Value,
    ) -> Result<Option<Value>, OvsdbError> {
        if self.kind == Kind::Plain {
            return Err(OvsdbError::new(
                "not supported",
                "monitor_cond_change on a monitor made by \"monitor\"",
            ));
        }
        let reqs = reqs
            .as_object()
            .ok_or_else(|| OvsdbError::syntax("monitor_cond_change requests must be an object"))?;
        let mut new_conds = BTreeMap::new();
        for (table, req) in reqs {
            let ts = schema
                .table(table)
                .ok_or_else(|| OvsdbError::unknown_table(table))?;
            if !self.tables.contains_key(table) {
                return Err(OvsdbError::syntax(format!(
                    "table {table} is not monitored"
                )));
            }
            let list: Vec<&Value> = match req {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for r in list {
                if r.get("columns").is_some() {
                    return Err(OvsdbError::new(
                        "not supported",
                        "changing the columns of a monitor",
                    ));
                }
                new_conds.insert(table.clone(), MonitorCondition::parse(ts, r.get("where"))?);
            }
        }
        let mut out = Map::new();
        for (table, cond) in new_conds {
            let Some(mt) = self.tables.get_mut(&table) else {
                continue;
            };
            let ts = schema.table(&table);
            let mut rows = Map::new();
            for (u, r) in data.table(&table) {
                let before = mt.condition.matches(r, *u);
                let after = cond.matches(r, *u);
                if !before && after && mt.insert {
                    rows.insert(u.to_string(), json!({"insert": row_json(r, mt, ts)}));
                } else if before && !after && mt.delete {
                    rows.insert(u.to_string(), json!({"delete": null}));
                }
            }
            mt.condition = cond;
            if !rows.is_empty() {
                out.insert(table, Value::Object(rows));
            }
        }
        Ok((!out.is_empty()).then_some(Value::Object(out)))
    }
}

/// A row's monitored columns; with a table schema (update2 formats), columns
/// at their default value are left out.
fn row_json(row: &Row, mt: &MonitorTable, ts: Option<&TableSchema>) -> Value {
    let mut obj = Map::new();
    for (c, d) in &row.columns {
        if !mt.wants(c) {
            continue;
        }
        if let Some(cs) = ts.and_then(|t| t.columns.get(c))
            && *d == Datum::default_of(&cs.ty)
        {
            continue;
        }
        obj.insert(c.clone(), d.to_json());
    }
    Value::Object(obj)
}

/// The `update2` difference of a column: the new value for a column of exactly
/// one value; for sets, the elements in only one of old and new; for maps, the
/// pairs whose key is in only one of them plus the new pairs of changed keys.
pub fn datum_diff(old: Option<&Datum>, new: &Datum, ty: Option<&ColumnType>) -> Datum {
    if ty.is_some_and(ColumnType::is_scalar) {
        return new.clone();
    }
    match (old, new) {
        (Some(Datum::Set(o)), Datum::Set(n)) => {
            Datum::Set(o.symmetric_difference(n).cloned().collect::<BTreeSet<_>>())
        }
        (Some(Datum::Map(o)), Datum::Map(n)) => {
            let mut d = BTreeMap::new();
            for (k, v) in o {
                if !n.contains_key(k) {
                    d.insert(k.clone(), v.clone());
                }
            }
            for (k, v) in n {
                if o.get(k) != Some(v) {
                    d.insert(k.clone(), v.clone());
                }
            }
            Datum::Map(d)
        }
        _ => new.clone(),
    }
}

/// The `_Server` database (ovsdb-server(5)): one `Database` row per database
/// this server hosts. A standalone server's rows never change.
pub struct ServerDb {
    pub schema: Schema,
    pub data: Data,
}

/// The `_Server` schema, version 1.2.0 as ovsdb-server(5) documents it.
const SERVER_SCHEMA: &str = r#"{
  "name": "_Server",
  "version": "1.2.0",
  "tables": {
    "Database": {
      "columns": {
        "name": {"type": "string"},
        "model": {"type": {"key": {"type": "string",
                                   "enum": ["set", ["standalone", "clustered", "relay"]]}}},
        "connected": {"type": "boolean"},
        "leader": {"type": "boolean"},
        "schema": {"type": {"key": {"type": "string"}, "min": 0, "max": 1}},
        "cid": {"type": {"key": {"type": "uuid"}, "min": 0, "max": 1}},
        "sid": {"type": {"key": {"type": "uuid"}, "min": 0, "max": 1}},
        "index": {"type": {"key": {"type": "integer"}, "min": 0, "max": 1}}
      },
      "isRoot": true
    }
  }
}"#;

impl ServerDb {
    /// The `_Server` database of a standalone server hosting `hosted` (and
    /// `_Server` itself, as ovsdb-server lists it).
    pub fn new(hosted: &[&Schema]) -> Result<Self, OvsdbError> {
        let schema = Schema::parse_str(SERVER_SCHEMA)?;
        let mut data = Data::empty(&schema);
        let ts = schema
            .table("Database")
            .ok_or_else(|| OvsdbError::syntax("_Server schema lacks Database"))?;
        for s in hosted.iter().copied().chain([&schema]) {
            let mut row = Row::new_default(ts);
            let cols = [
                ("name", Datum::string(s.name.clone())),
                ("model", Datum::string("standalone")),
                ("connected", Datum::boolean(true)),
                ("leader", Datum::boolean(true)),
                ("schema", Datum::string(s.json.to_string())),
            ];
            for (c, d) in cols {
                row.columns.insert(c.to_owned(), d);
            }
            data.table_mut("Database")
                .insert(Uuid::new_v4(), std::sync::Arc::new(row));
        }
        Ok(Self { schema, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datum::Atom;
    use std::sync::Arc;

    fn schema() -> Schema {
        Schema::vswitch()
    }

    fn bridge(name: &str, ext: &[(&str, &str)]) -> Row {
        let s = schema();
        let mut r = Row::new_default(s.table("Bridge").unwrap());
        r.columns.insert("name".into(), Datum::string(name));
        r.columns.insert(
            "external_ids".into(),
            Datum::string_map(ext.iter().copied()),
        );
        r
    }

    fn data_with(rows: &[(Uuid, Row)]) -> Data {
        let mut d = Data::empty(&schema());
        for (u, r) in rows {
            d.table_mut("Bridge").insert(*u, Arc::new(r.clone()));
        }
        d
    }

    fn mon(kind: Kind, req: Value) -> Monitor {
        Monitor::parse(&schema(), kind, json!("m"), &json!({ "Bridge": req })).unwrap()
    }

    #[test]
    fn where_is_a_disjunction_and_empty_means_every_row() {
        let s = schema();
        let ts = s.table("Bridge").unwrap();
        let (a, b) = (bridge("a", &[]), bridge("b", &[]));
        let u = Uuid::nil();
        let c =
            MonitorCondition::parse(ts, Some(&json!([["name", "==", "a"], ["name", "==", "b"]])))
                .unwrap();
        assert!(c.matches(&a, u) && c.matches(&b, u));
        let c = MonitorCondition::parse(ts, Some(&json!([["name", "==", "a"]]))).unwrap();
        assert!(c.matches(&a, u) && !c.matches(&b, u));
        assert!(
            MonitorCondition::parse(ts, Some(&json!([])))
                .unwrap()
                .matches(&b, u)
        );
        assert!(
            !MonitorCondition::parse(ts, Some(&json!([false])))
                .unwrap()
                .matches(&a, u)
        );
        assert!(
            MonitorCondition::parse(ts, Some(&json!([false, true])))
                .unwrap()
                .matches(&a, u)
        );
        assert!(MonitorCondition::parse(ts, Some(&json!([["nope", "==", 1]]))).is_err());
    }

    #[test]
    fn initial_rows_of_update2_omit_default_columns_and_follow_the_condition() {
        let (ua, ub) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let d = data_with(&[(ua, bridge("a", &[])), (ub, bridge("b", &[]))]);
        let m = mon(Kind::Cond, json!([{"where": [["name", "==", "a"]]}]));
        let init = m.initial(&schema(), &d);
        let rows = init["Bridge"].as_object().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[&ua.to_string()], json!({"initial": {"name": "a"}}));
        // The plain monitor sends every column.
        let m = mon(Kind::Plain, json!({}));
        let init = m.initial(&schema(), &d);
        assert!(init["Bridge"][ub.to_string()]["new"]["fail_mode"].is_array());
    }

    #[test]
    fn modify_sends_set_and_map_differences_and_scalars_whole() {
        let u = Uuid::from_u128(1);
        let old = bridge("a", &[("keep", "1"), ("gone", "2"), ("chg", "3")]);
        let mut new = bridge("b", &[("keep", "1"), ("chg", "4"), ("add", "5")]);
        new.columns.insert(
            "protocols".into(),
            Datum::string_set(["OpenFlow13", "OpenFlow15"]),
        );
        let mut old = old;
        old.columns.insert(
            "protocols".into(),
            Datum::string_set(["OpenFlow10", "OpenFlow13"]),
        );
        let changes = ChangeSet::diff(&data_with(&[(u, old)]), &data_with(&[(u, new)]));
        let m = mon(Kind::Cond, json!({}));
        let up = m.updates(&schema(), &changes).unwrap();
        let diff = &up["Bridge"][u.to_string()]["modify"];
        assert_eq!(diff["name"], json!("b"));
        assert_eq!(
            diff["external_ids"],
            json!(["map", [["add", "5"], ["chg", "4"], ["gone", "2"]]])
        );
        assert_eq!(
            diff["protocols"],
            json!(["set", ["OpenFlow10", "OpenFlow15"]])
        );
        assert!(diff.get("fail_mode").is_none());
    }

    #[test]
    fn a_row_leaving_the_condition_is_deleted_and_one_entering_is_inserted() {
        let u = Uuid::from_u128(1);
        let m = mon(Kind::Cond, json!({"where": [["name", "==", "a"]]}));
        let out = ChangeSet::diff(
            &data_with(&[(u, bridge("a", &[]))]),
            &data_with(&[(u, bridge("b", &[]))]),
        );
        let up = m.updates(&schema(), &out).unwrap();
        assert_eq!(up["Bridge"][u.to_string()], json!({"delete": null}));
        let back = ChangeSet::diff(
            &data_with(&[(u, bridge("b", &[]))]),
            &data_with(&[(u, bridge("a", &[]))]),
        );
        let up = m.updates(&schema(), &back).unwrap();
        assert_eq!(
            up["Bridge"][u.to_string()],
            json!({"insert": {"name": "a"}})
        );
        // Changes to rows outside the condition are not sent.
        let other = ChangeSet::diff(
            &data_with(&[(u, bridge("b", &[]))]),
            &data_with(&[(u, bridge("c", &[]))]),
        );
        assert!(m.updates(&schema(), &other).is_none());
    }

    #[test]
    fn changing_the_condition_inserts_and_deletes_the_difference() {
        let (ua, ub) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let d = data_with(&[(ua, bridge("a", &[])), (ub, bridge("b", &[]))]);
        let mut m = mon(Kind::Cond, json!({"where": [["name", "==", "a"]]}));
        let up = m
            .change_conditions(
                &schema(),
                &d,
                &json!({"Bridge": [{"where": [["name", "==", "b"]]}]}),
            )
            .unwrap()
            .unwrap();
        assert_eq!(up["Bridge"][ua.to_string()], json!({"delete": null}));
        assert_eq!(
            up["Bridge"][ub.to_string()],
            json!({"insert": {"name": "b"}})
        );
        assert!(
            m.change_conditions(
                &schema(),
                &d,
                &json!({"Bridge": [{"where": [["name", "==", "b"]]}]})
            )
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn server_db_describes_the_hosted_database() {
        let s = schema();
        let sdb = ServerDb::new(&[&s]).unwrap();
        let rows = sdb.data.table("Database");
        assert_eq!(rows.len(), 2, "Open_vSwitch and _Server itself");
        let row = rows
            .values()
            .find(|r| r.get_str("name") == Some("Open_vSwitch"))
            .unwrap();
        assert_eq!(row.get_str("model"), Some("standalone"));
        assert_eq!(
            row.get("connected"),
            Some(&Datum::scalar(Atom::Boolean(true)))
        );
        let text = row.get_str("schema").unwrap();
        assert_eq!(serde_json::from_str::<Value>(text).unwrap(), s.json);
    }
}
