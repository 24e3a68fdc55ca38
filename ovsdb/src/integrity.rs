//! Commit-time checks: weak reference cleanup, garbage collection, referential integrity,
//! column constraints, unique indexes and `maxRows`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use uuid::Uuid;

use crate::data::{ChangeSet, Data, Row};
use crate::datum::{Atom, Datum};
use crate::error::OvsdbError;
use crate::schema::{BaseType, RefType, Schema, TableSchema};

fn ref_of(bt: &BaseType, kind: RefType) -> Option<&str> {
    bt.ref_table.as_deref().filter(|_| bt.ref_type == kind)
}

fn has_refs(ts: &TableSchema) -> bool {
    ts.columns.values().any(|c| {
        c.ty.key.ref_table.is_some() || c.ty.value.as_ref().is_some_and(|v| v.ref_table.is_some())
    })
}

fn ref_columns_differ(ts: &TableSchema, a: &Row, b: &Row) -> bool {
    ts.columns.iter().any(|(n, c)| {
        (c.ty.key.ref_table.is_some() || c.ty.value.as_ref().is_some_and(|v| v.ref_table.is_some()))
            && a.get(n) != b.get(n)
    })
}

/// Run every commit-time check on `work` (the transaction's result), fixing weak references
/// and collecting garbage in place. `base` is the data before the transaction.
pub fn finalize(schema: &Schema, base: &Data, work: &mut Data) -> Result<(), OvsdbError> {
    let diff = ChangeSet::diff(base, work);
    if diff.is_empty() {
        return Ok(());
    }
    let needs_ref_pass = diff.changes.iter().any(|c| {
        let Some(ts) = schema.table(&c.table) else {
            return false;
        };
        match (&c.old, &c.new) {
            (None, Some(_)) => !ts.is_root || has_refs(ts),
            (Some(o), Some(n)) => ref_columns_differ(ts, o, n),
            _ => true,
        }
    });
    if needs_ref_pass {
        loop {
            remove_dangling_weak_refs(schema, work);
            if !collect_garbage(schema, work) {
                break;
            }
        }
        check_strong_refs(schema, work)?;
    }
    let diff = ChangeSet::diff(base, work);
    let mut touched = BTreeSet::new();
    for c in &diff.changes {
        touched.insert(c.table.as_str());
        let (Some(ts), Some(row)) = (schema.table(&c.table), &c.new) else {
            continue;
        };
        for (name, cs) in &ts.columns {
            let n = row.get(name).map_or(0, Datum::len);
            if n < cs.ty.min || n > cs.ty.max {
                return Err(OvsdbError::constraint(format!(
                    "{n} values in column {}.{name} of row {} when type requires {} to {}",
                    ts.name,
                    c.uuid,
                    cs.ty.min,
                    if cs.ty.max == usize::MAX {
                        "unlimited".to_string()
                    } else {
                        cs.ty.max.to_string()
                    }
                )));
            }
        }
    }
    for tname in touched {
        let Some(ts) = schema.table(tname) else {
            continue;
        };
        let rows = work.table(tname);
        if let Some(max) = ts.max_rows
            && rows.len() > max
        {
            return Err(OvsdbError::constraint(format!(
                "Transaction causes \"{tname}\" table to contain {} rows, greater than the schema-defined limit of {max} row(s).",
                rows.len()
            )));
        }
        for index in &ts.indexes {
            let mut seen: BTreeMap<Vec<&Datum>, Uuid> = BTreeMap::new();
            for (u, r) in rows.iter() {
                let key: Vec<&Datum> = index.iter().filter_map(|c| r.get(c)).collect();
                if let Some(other) = seen.insert(key.clone(), *u) {
                    let shown: Vec<String> = key.iter().map(|d| d.to_json().to_string()).collect();
                    return Err(OvsdbError::constraint(format!(
                        "Transaction causes multiple rows in \"{tname}\" table to have identical values ({}) for index on column{} \"{}\".  First row, with UUID {other}, and second row, with UUID {u}.",
                        shown.join(", "),
                        if index.len() > 1 { "s" } else { "" },
                        index.join("\", \"")
                    )));
                }
            }
        }
    }
    Ok(())
}

fn all_uuids(work: &Data) -> HashSet<(String, Uuid)> {
    work.tables
        .iter()
        .flat_map(|(t, rows)| rows.keys().map(move |u| (t.clone(), *u)))
        .collect()
}

fn remove_dangling_weak_refs(schema: &Schema, work: &mut Data) {
    let exists = all_uuids(work);
    let live = |t: &str, a: &Atom| {
        a.as_uuid()
            .is_some_and(|u| exists.contains(&(t.to_owned(), u)))
    };
    for ts in schema.tables.values() {
        let weak_cols: Vec<(&String, Option<&str>, Option<&str>)> = ts
            .columns
            .iter()
            .filter_map(|(n, c)| {
                let k = ref_of(&c.ty.key, RefType::Weak);
                let v = c.ty.value.as_ref().and_then(|v| ref_of(v, RefType::Weak));
                (k.is_some() || v.is_some()).then_some((n, k, v))
            })
            .collect();
        if weak_cols.is_empty() {
            continue;
        }
        let mut fixes: Vec<(Uuid, Row)> = Vec::new();
        for (u, row) in work.table(&ts.name).iter() {
            let mut fixed: Option<Row> = None;
            for (col, kref, vref) in &weak_cols {
                let Some(d) = row.get(col) else { continue };
                let keep = |k: &Atom, v: Option<&Atom>| {
                    kref.is_none_or(|t| live(t, k))
                        && v.is_none_or(|v| vref.is_none_or(|t| live(t, v)))
                };
                let new_d = match d {
                    Datum::Set(s) => {
                        Datum::Set(s.iter().filter(|a| keep(a, None)).cloned().collect())
                    }
                    Datum::Map(m) => Datum::Map(
                        m.iter()
                            .filter(|(k, v)| keep(k, Some(v)))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ),
                };
                if new_d.len() != d.len() {
                    let r = fixed.get_or_insert_with(|| Row::clone(row));
                    r.columns.insert((*col).clone(), new_d);
                }
            }
            if let Some(mut r) = fixed {
                r.version = Uuid::new_v4();
                fixes.push((*u, r));
            }
        }
        if !fixes.is_empty() {
            let t = work.table_mut(&ts.name);
            for (u, r) in fixes {
                t.insert(u, Arc::new(r));
            }
        }
    }
}

/// Delete unreferenced rows of non-root tables; true if anything was deleted.
fn collect_garbage(schema: &Schema, work: &mut Data) -> bool {
    let mut referenced: HashSet<Uuid> = HashSet::new();
    for ts in schema.tables.values() {
        for (name, c) in &ts.columns {
            let k = ref_of(&c.ty.key, RefType::Strong).is_some();
            let v =
                c.ty.value
                    .as_ref()
                    .and_then(|v| ref_of(v, RefType::Strong))
                    .is_some();
            if !k && !v {
                continue;
            }
            for row in work.table(&ts.name).values() {
                match row.get(name) {
                    Some(Datum::Set(s)) if k => {
                        referenced.extend(s.iter().filter_map(Atom::as_uuid))
                    }
                    Some(Datum::Map(m)) => {
                        if k {
                            referenced.extend(m.keys().filter_map(Atom::as_uuid));
                        }
                        if v {
                            referenced.extend(m.values().filter_map(Atom::as_uuid));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    let mut deleted = false;
    for ts in schema.tables.values().filter(|t| !t.is_root) {
        let dead: Vec<Uuid> = work
            .table(&ts.name)
            .keys()
            .filter(|u| !referenced.contains(u))
            .copied()
            .collect();
        if !dead.is_empty() {
            let t = work.table_mut(&ts.name);
            for u in dead {
                t.remove(&u);
            }
            deleted = true;
        }
    }
    deleted
}

fn check_strong_refs(schema: &Schema, work: &Data) -> Result<(), OvsdbError> {
    for ts in schema.tables.values() {
        for (name, c) in &ts.columns {
            let k = ref_of(&c.ty.key, RefType::Strong);
            let v = c.ty.value.as_ref().and_then(|v| ref_of(v, RefType::Strong));
            if k.is_none() && v.is_none() {
                continue;
            }
            for (u, row) in work.table(&ts.name).iter() {
                let Some(d) = row.get(name) else { continue };
                let targets: Vec<(&str, &Atom)> = match d {
                    Datum::Set(s) => k
                        .map(|t| s.iter().map(|a| (t, a)).collect())
                        .unwrap_or_default(),
                    Datum::Map(m) => m
                        .iter()
                        .flat_map(|(ka, va)| [k.map(|t| (t, ka)), v.map(|t| (t, va))])
                        .flatten()
                        .collect(),
                };
                for (t, a) in targets {
                    if let Some(target) = a.as_uuid()
                        && work.row(t, &target).is_none()
                    {
                        return Err(OvsdbError::integrity(format!(
                            "Table {} column {name} row {u} references nonexistent row {target} in table {t}.",
                            ts.name
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}
