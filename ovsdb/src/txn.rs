//! The transaction engine: executes the operations of an RFC 7047 `transact` (section 5.2)
//! against a copy-on-write working copy of the data.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::condition::{Condition, column_type, column_value};
use crate::data::{Data, Row};
use crate::datum::{Atom, Datum, NamedUuids};
use crate::error::OvsdbError;
use crate::integrity::finalize;
use crate::schema::{AtomicType, ColumnType, Schema, TableSchema};

/// What the transaction may know about its session.
pub struct TxnContext<'a> {
    /// Whether the session owns the named lock (for "assert").
    pub has_lock: &'a dyn Fn(&str) -> bool,
    /// Whether "wait" timeouts have expired: unmet waits then fail with "timed out".
    pub waits_expired: bool,
}

impl Default for TxnContext<'_> {
    fn default() -> Self {
        Self {
            has_lock: &|_| false,
            waits_expired: false,
        }
    }
}

/// The outcome of executing a transaction.
#[derive(Debug)]
pub enum Outcome {
    /// All operations succeeded; `data` is the new database contents.
    Commit { results: Vec<Value>, data: Data },
    /// An operation or a commit check failed; nothing changes.
    Failed { results: Vec<Value> },
    /// A "wait" is not yet satisfied and its timeout (ms; none: forever) has not expired:
    /// retry later.
    Blocked { timeout_ms: Option<u64> },
}

struct Exec<'a> {
    schema: &'a Schema,
    data: Data,
    named: NamedUuids,
    ctx: &'a TxnContext<'a>,
}

enum OpError {
    Error(OvsdbError),
    Blocked(Option<u64>),
}

impl From<OvsdbError> for OpError {
    fn from(e: OvsdbError) -> Self {
        OpError::Error(e)
    }
}

/// Execute the operations `ops` (without the leading database name) on `base`.
pub fn execute(schema: &Schema, base: &Data, ops: &[Value], ctx: &TxnContext<'_>) -> Outcome {
    let mut results: Vec<Value> = Vec::with_capacity(ops.len() + 1);
    let named = match prescan_named_uuids(ops, base) {
        Ok(n) => n,
        Err(e) => {
            results.push(e.to_json());
            results.resize(ops.len().max(1), Value::Null);
            return Outcome::Failed { results };
        }
    };
    let mut ex = Exec {
        schema,
        data: base.clone(),
        named,
        ctx,
    };
    for op in ops {
        match ex.op(op) {
            Ok(r) => results.push(r),
            Err(OpError::Blocked(ms)) => return Outcome::Blocked { timeout_ms: ms },
            Err(OpError::Error(e)) => {
                results.push(e.to_json());
                results.resize(ops.len(), Value::Null);
                return Outcome::Failed { results };
            }
        }
    }
    let mut data = ex.data;
    if let Err(e) = finalize(schema, base, &mut data) {
        results.push(e.to_json());
        return Outcome::Failed { results };
    }
    Outcome::Commit { results, data }
}

/// Give every `uuid-name` its uuid before execution, so references may come before the insert.
fn prescan_named_uuids(ops: &[Value], base: &Data) -> Result<NamedUuids, OvsdbError> {
    let mut named = NamedUuids::new();
    let mut explicit = BTreeSet::new();
    for op in ops {
        if op.get("op").and_then(Value::as_str) != Some("insert") {
            continue;
        }
        let uuid = match op.get("uuid") {
            Some(Value::String(s)) => {
                let u = Uuid::parse_str(s)
                    .map_err(|_| OvsdbError::syntax(format!("\"{s}\" is not a valid UUID")))?;
                if !explicit.insert(u) || base.tables.values().any(|t| t.contains_key(&u)) {
                    return Err(OvsdbError::new(
                        "duplicate uuid",
                        format!("This UUID {u} would duplicate an existing one."),
                    ));
                }
                u
            }
            Some(other) => {
                return Err(OvsdbError::syntax(format!(
                    "\"uuid\" must be a string, got {other}"
                )));
            }
            None => Uuid::new_v4(),
        };
        if let Some(name) = op.get("uuid-name") {
            let name = name
                .as_str()
                .ok_or_else(|| OvsdbError::syntax("\"uuid-name\" must be a string"))?;
            if named.insert(name.to_owned(), uuid).is_some() {
                return Err(OvsdbError::new(
                    "duplicate uuid-name",
                    format!(
                        "This \"uuid-name\" appeared on an earlier \"insert\" operation: {name}"
                    ),
                ));
            }
        }
    }
    Ok(named)
}

fn member<'v>(op: &'v Value, name: &str) -> Result<&'v Value, OvsdbError> {
    op.get(name)
        .ok_or_else(|| OvsdbError::syntax(format!("Required '{name}' member is missing.")))
}

impl Exec<'_> {
    fn table(&self, op: &Value) -> Result<&TableSchema, OvsdbError> {
        let name = member(op, "table")?
            .as_str()
            .ok_or_else(|| OvsdbError::syntax("\"table\" must be a string"))?;
        self.schema
            .table(name)
            .ok_or_else(|| OvsdbError::unknown_table(name))
    }

    fn op(&mut self, op: &Value) -> Result<Value, OpError> {
        if !op.is_object() {
            return Err(
                OvsdbError::syntax(format!("operation must be an object, got {op}")).into(),
            );
        }
        let name = member(op, "op")?
            .as_str()
            .ok_or_else(|| OvsdbError::syntax("\"op\" must be a string"))?;
        match name {
            "insert" => self.insert(op).map_err(Into::into),
            "select" => self.select(op).map_err(Into::into),
            "update" => self.update(op).map_err(Into::into),
            "mutate" => self.mutate(op).map_err(Into::into),
            "delete" => self.delete(op).map_err(Into::into),
            "wait" => self.wait(op),
            "commit" => {
                member(op, "durable")?
                    .as_bool()
                    .ok_or_else(|| OvsdbError::syntax("\"durable\" must be a boolean"))?;
                Ok(json!({}))
            }
            "abort" => Err(OvsdbError::new("aborted", "Aborted by request.").into()),
            "comment" => {
                if let Some(c) = op.get("comment").and_then(Value::as_str) {
                    tracing::info!(comment = c, "transaction comment");
                }
                Ok(json!({}))
            }
            "assert" => {
                let lock = member(op, "lock")?
                    .as_str()
                    .ok_or_else(|| OvsdbError::syntax("\"lock\" must be a string"))?;
                if (self.ctx.has_lock)(lock) {
                    Ok(json!({}))
                } else {
                    Err(
                        OvsdbError::new("not owner", format!("Asserted lock {lock} not held."))
                            .into(),
                    )
                }
            }
            other => Err(OvsdbError::syntax(format!("No operation \"{other}\"")).into()),
        }
    }

    fn parse_row(
        &self,
        ts: &TableSchema,
        v: &Value,
        updating: bool,
    ) -> Result<BTreeMap<String, Datum>, OvsdbError> {
        let obj = v
            .as_object()
            .ok_or_else(|| OvsdbError::syntax("\"row\" must be an object"))?;
        let mut out = BTreeMap::new();
        for (c, val) in obj {
            let cs = ts
                .columns
                .get(c)
                .ok_or_else(|| OvsdbError::unknown_column(&ts.name, c))?;
            if updating && !cs.mutable {
                return Err(OvsdbError::constraint(format!(
                    "Cannot update immutable column {c} in table {}.",
                    ts.name
                )));
            }
            out.insert(c.clone(), Datum::from_json(val, &cs.ty, &self.named)?);
        }
        Ok(out)
    }

    fn matching(&self, ts: &TableSchema, op: &Value) -> Result<Vec<Uuid>, OvsdbError> {
        let cond = Condition::parse(ts, Some(member(op, "where")?), &self.named)?;
        let rows = self.data.table(&ts.name);
        if let Some(u) = cond.pinned_uuid() {
            return Ok(rows
                .get(&u)
                .filter(|r| cond.matches(r, u))
                .map(|_| vec![u])
                .unwrap_or_default());
        }
        Ok(rows
            .iter()
            .filter(|(u, r)| cond.matches(r, **u))
            .map(|(u, _)| *u)
            .collect())
    }

    fn insert(&mut self, op: &Value) -> Result<Value, OvsdbError> {
        let ts = self.table(op)?.clone();
        let uuid = match (
            op.get("uuid-name").and_then(Value::as_str),
            op.get("uuid").and_then(Value::as_str),
        ) {
            (Some(n), _) => self.named.get(n).copied().unwrap_or_else(Uuid::new_v4),
            (None, Some(s)) => {
                Uuid::parse_str(s).map_err(|_| OvsdbError::syntax("invalid \"uuid\""))?
            }
            (None, None) => Uuid::new_v4(),
        };
        let mut row = Row::new_default(&ts);
        if let Some(r) = op.get("row") {
            row.columns.extend(self.parse_row(&ts, r, false)?);
        }
        self.data.table_mut(&ts.name).insert(uuid, Arc::new(row));
        Ok(json!({"uuid": ["uuid", uuid.to_string()]}))
    }

    fn columns_arg(&self, ts: &TableSchema, op: &Value) -> Result<Option<Vec<String>>, OvsdbError> {
        let Some(cols) = op.get("columns") else {
            return Ok(None);
        };
        let arr = cols
            .as_array()
            .ok_or_else(|| OvsdbError::syntax("\"columns\" must be an array"))?;
        let mut out = Vec::new();
        for c in arr {
            let c = c
                .as_str()
                .ok_or_else(|| OvsdbError::syntax("column name must be a string"))?;
            column_type(ts, c)?;
            out.push(c.to_owned());
        }
        Ok(Some(out))
    }

    fn select(&self, op: &Value) -> Result<Value, OvsdbError> {
        let ts = self.table(op)?;
        let cols = self.columns_arg(ts, op)?;
        let rows: Vec<Value> = self
            .matching(ts, op)?
            .into_iter()
            .filter_map(|u| {
                self.data
                    .row(&ts.name, &u)
                    .map(|r| r.to_json(u, cols.as_deref()))
            })
            .collect();
        Ok(json!({"rows": rows}))
    }

    fn update(&mut self, op: &Value) -> Result<Value, OvsdbError> {
        let ts = self.table(op)?.clone();
        let changes = self.parse_row(&ts, member(op, "row")?, true)?;
        let uuids = self.matching(&ts, op)?;
        let table = self.data.table_mut(&ts.name);
        for u in &uuids {
            if let Some(r) = table.get_mut(u) {
                if changes.iter().all(|(c, d)| r.get(c) == Some(d)) {
                    continue;
                }
                let r = Arc::make_mut(r);
                r.columns.extend(changes.clone());
                r.version = Uuid::new_v4();
            }
        }
        Ok(json!({"count": uuids.len()}))
    }

    fn delete(&mut self, op: &Value) -> Result<Value, OvsdbError> {
        let ts = self.table(op)?.clone();
        let uuids = self.matching(&ts, op)?;
        let table = self.data.table_mut(&ts.name);
        for u in &uuids {
            table.remove(u);
        }
        Ok(json!({"count": uuids.len()}))
    }

    fn mutate(&mut self, op: &Value) -> Result<Value, OvsdbError> {
        let ts = self.table(op)?.clone();
        let muts = member(op, "mutations")?
            .as_array()
            .ok_or_else(|| OvsdbError::syntax("\"mutations\" must be an array"))?;
        let mut parsed = Vec::new();
        for m in muts {
            let parts = m.as_array().filter(|p| p.len() == 3).ok_or_else(|| {
                OvsdbError::syntax(format!(
                    "mutation must be [column, mutator, value], got {m}"
                ))
            })?;
            let col = parts[0]
                .as_str()
                .ok_or_else(|| OvsdbError::syntax("mutation column must be a string"))?;
            let cs = ts
                .columns
                .get(col)
                .ok_or_else(|| OvsdbError::unknown_column(&ts.name, col))?;
            if !cs.mutable {
                return Err(OvsdbError::constraint(format!(
                    "Cannot mutate immutable column {col} in table {}.",
                    ts.name
                )));
            }
            let mutator = parts[1]
                .as_str()
                .ok_or_else(|| OvsdbError::syntax("mutator must be a string"))?;
            let arg = match mutator {
                "+=" | "-=" | "*=" | "/=" | "%=" => {
                    let scalar = ColumnType {
                        key: cs.ty.key.clone(),
                        value: None,
                        min: 1,
                        max: 1,
                    };
                    if cs.ty.is_map()
                        || !matches!(cs.ty.key.atomic, AtomicType::Integer | AtomicType::Real)
                    {
                        return Err(OvsdbError::syntax(format!(
                            "Type mismatch: \"{mutator}\" may not be applied to column {col}"
                        )));
                    }
                    if mutator == "%=" && cs.ty.key.atomic == AtomicType::Real {
                        return Err(OvsdbError::syntax(
                            "\"%=\" may not be applied to real columns",
                        ));
                    }
                    // The argument is unconstrained: only the result is checked.
                    let mut loose = scalar;
                    loose.key.min_integer = None;
                    loose.key.max_integer = None;
                    loose.key.min_real = None;
                    loose.key.max_real = None;
                    Datum::from_json_unchecked(&parts[2], &loose, &self.named)?
                }
                "insert" => Datum::from_json_unchecked(&parts[2], &cs.ty, &self.named)?,
                "delete" => {
                    if cs.ty.is_map() {
                        Datum::from_json_unchecked(&parts[2], &cs.ty, &self.named)
                            .or_else(|_| Datum::keys_from_json(&parts[2], &cs.ty, &self.named))?
                    } else {
                        Datum::from_json_unchecked(&parts[2], &cs.ty, &self.named)?
                    }
                }
                other => return Err(OvsdbError::syntax(format!("Unknown mutator \"{other}\""))),
            };
            parsed.push((col.to_owned(), mutator.to_owned(), arg, cs.ty.clone()));
        }
        let uuids = self.matching(&ts, op)?;
        let table = self.data.table_mut(&ts.name);
        for u in &uuids {
            let Some(r) = table.get_mut(u) else { continue };
            let mut row = Row::clone(r);
            for (col, mutator, arg, ty) in &parsed {
                let cur = row
                    .columns
                    .get(col)
                    .cloned()
                    .unwrap_or_else(|| Datum::default_of(ty));
                let new = apply_mutation(cur, mutator, arg, ty)?;
                if new.len() > ty.max || new.len() < ty.min {
                    return Err(OvsdbError::constraint(format!(
                        "Attempted to store {} elements in {}.{col}, which requires {} to {}.",
                        new.len(),
                        ts.name,
                        ty.min,
                        if ty.max == usize::MAX {
                            "unlimited".to_string()
                        } else {
                            ty.max.to_string()
                        }
                    )));
                }
                row.columns.insert(col.clone(), new);
            }
            if row.columns != r.columns {
                row.version = Uuid::new_v4();
                *r = Arc::new(row);
            }
        }
        Ok(json!({"count": uuids.len()}))
    }

    fn wait(&self, op: &Value) -> Result<Value, OpError> {
        let ts = self.table(op)?;
        let timeout =
            match op.get("timeout") {
                None => None,
                Some(t) => Some(t.as_u64().ok_or_else(|| {
                    OvsdbError::syntax("\"timeout\" must be a non-negative integer")
                })?),
            };
        let until = member(op, "until")?
            .as_str()
            .ok_or_else(|| OvsdbError::syntax("\"until\" must be a string"))?;
        if until != "==" && until != "!=" {
            return Err(OvsdbError::syntax(format!(
                "\"until\" must be \"==\" or \"!=\", got {until}"
            ))
            .into());
        }
        let cols: Vec<String> = self.columns_arg(ts, op)?.unwrap_or_default();
        let want_rows = member(op, "rows")?
            .as_array()
            .ok_or_else(|| OvsdbError::syntax("\"rows\" must be an array"))?;
        let mut expected: Vec<Vec<Datum>> = Vec::new();
        for r in want_rows {
            let obj = r
                .as_object()
                .ok_or_else(|| OvsdbError::syntax("each of \"rows\" must be an object"))?;
            let mut proj = Vec::new();
            for c in &cols {
                let ty = column_type(ts, c)?;
                let v = obj.get(c).ok_or_else(|| {
                    OvsdbError::syntax(format!("row lacks column {c} named in \"columns\""))
                })?;
                proj.push(Datum::from_json(v, &ty, &self.named)?);
            }
            expected.push(proj);
        }
        let mut actual: Vec<Vec<Datum>> = Vec::new();
        for u in self.matching(ts, op)? {
            if let Some(r) = self.data.row(&ts.name, &u) {
                actual.push(
                    cols.iter()
                        .map(|c| column_value(r, u, c).unwrap_or(Datum::Set(Default::default())))
                        .collect(),
                );
            }
        }
        expected.sort();
        actual.sort();
        let equal = expected == actual;
        if equal == (until == "==") {
            return Ok(json!({}));
        }
        // Without a timeout the wait lasts until the condition holds (RFC 7047 section 5.2.6).
        match timeout {
            Some(0) => Err(OvsdbError::new("timed out", "\"wait\" timed out").into()),
            _ if self.ctx.waits_expired => {
                Err(OvsdbError::new("timed out", "\"wait\" timed out").into())
            }
            t => Err(OpError::Blocked(t)),
        }
    }
}

fn arith(a: &Atom, mutator: &str, b: &Atom) -> Result<Atom, OvsdbError> {
    match (a, b) {
        (Atom::Integer(x), Atom::Integer(y)) => {
            let r = match mutator {
                "+=" => x.checked_add(*y),
                "-=" => x.checked_sub(*y),
                "*=" => x.checked_mul(*y),
                "/=" | "%=" if *y == 0 => {
                    return Err(OvsdbError::new("domain error", "Division by zero."));
                }
                "/=" => x.checked_div(*y),
                "%=" => x.checked_rem(*y),
                _ => None,
            };
            r.map(Atom::Integer).ok_or_else(|| {
                OvsdbError::new("range error", "Result of integer arithmetic overflowed.")
            })
        }
        (Atom::Real(x), Atom::Real(y)) => {
            let r = match mutator {
                "+=" => x + y,
                "-=" => x - y,
                "*=" => x * y,
                "/=" if *y == 0.0 => {
                    return Err(OvsdbError::new("domain error", "Division by zero."));
                }
                "/=" => x / y,
                _ => return Err(OvsdbError::syntax("bad real mutator")),
            };
            if r.is_finite() {
                Ok(Atom::Real(r))
            } else {
                Err(OvsdbError::new(
                    "range error",
                    "Result of real arithmetic is not finite.",
                ))
            }
        }
        _ => Err(OvsdbError::syntax("type mismatch in mutation")),
    }
}

fn apply_mutation(
    cur: Datum,
    mutator: &str,
    arg: &Datum,
    ty: &ColumnType,
) -> Result<Datum, OvsdbError> {
    match (mutator, cur, arg) {
        ("insert", Datum::Set(mut s), Datum::Set(a)) => {
            s.extend(a.iter().cloned());
            Ok(Datum::Set(s))
        }
        ("insert", Datum::Map(mut m), Datum::Map(a)) => {
            for (k, v) in a {
                m.entry(k.clone()).or_insert_with(|| v.clone());
            }
            Ok(Datum::Map(m))
        }
        ("delete", Datum::Set(mut s), Datum::Set(a)) => {
            s.retain(|x| !a.contains(x));
            Ok(Datum::Set(s))
        }
        ("delete", Datum::Map(mut m), Datum::Set(keys)) => {
            m.retain(|k, _| !keys.contains(k));
            Ok(Datum::Map(m))
        }
        ("delete", Datum::Map(mut m), Datum::Map(pairs)) => {
            m.retain(|k, v| pairs.get(k) != Some(v));
            Ok(Datum::Map(m))
        }
        (m, Datum::Set(s), Datum::Set(a)) if a.len() == 1 => {
            let b = a.iter().next().cloned().unwrap_or(Atom::Integer(0));
            let mut out = std::collections::BTreeSet::new();
            for x in &s {
                let r = arith(x, m, &b)?;
                ty.key.check(&r)?;
                out.insert(r);
            }
            if out.len() != s.len() {
                return Err(OvsdbError::constraint(
                    "Mutation caused duplicate set elements.",
                ));
            }
            Ok(Datum::Set(out))
        }
        _ => Err(OvsdbError::syntax(
            "mutation argument does not match the column type",
        )),
    }
}

/// Build a `{"error": ...}` reply for a transaction whose params are malformed.
pub fn syntax_error_results(details: &str) -> Vec<Value> {
    vec![OvsdbError::syntax(details).to_json()]
}

/// Turn a row object (as returned by select) into a map, for convenience in tests and tools.
pub fn row_object(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}
