//! The vsctl verbs, each applied to the local working copy.

use std::collections::{BTreeMap, BTreeSet};

use ovsdb::datum::{Atom, Datum};
use ovsdb::schema::{ColumnSchema, TableSchema};
use uuid::Uuid;

use super::output::{print_rows, show};
use super::targets::{check_new_name, check_target};
use super::value::{atom_to_string, datum_to_string, parse_atom, parse_datum, split_column_key};
use super::{Command, Ctx, VsctlError};

fn s(v: &str) -> Datum {
    Datum::scalar(Atom::String(v.to_owned()))
}

fn uuids(v: impl IntoIterator<Item = Uuid>) -> Datum {
    Datum::Set(v.into_iter().map(Atom::Uuid).collect())
}

fn nargs(c: &Command, min: usize, max: usize) -> Result<(), VsctlError> {
    let n = c.args.len();
    if n < min {
        return Err(VsctlError::msg(format!(
            "'{}' command requires at least {min} arguments",
            c.name
        )));
    }
    if n > max {
        return Err(VsctlError::msg(format!(
            "'{}' command takes at most {max} arguments",
            c.name
        )));
    }
    Ok(())
}

/// Run one command. `Ok(false)` means a `wait-until` is not yet satisfied.
pub fn execute(ctx: &mut Ctx<'_>, c: &Command) -> Result<bool, VsctlError> {
    let a = &c.args;
    match c.name.as_str() {
        "init" => {
            nargs(c, 0, 0)?;
            ctx.root();
        }
        "show" => {
            nargs(c, 0, 0)?;
            show(ctx);
        }
        "emer-reset" => {
            nargs(c, 0, 0)?;
            emer_reset(ctx);
        }
        "add-br" => {
            nargs(c, 1, 3)?;
            if a.len() > 1 {
                return Err(VsctlError::msg(
                    "fake bridges (add-br BRIDGE PARENT VLAN) are not supported by ferrovs",
                ));
            }
            add_br(ctx, c, &a[0])?;
        }
        "del-br" => {
            nargs(c, 1, 1)?;
            match ctx.bridge(&a[0]) {
                Some(b) => {
                    let root = ctx.root();
                    ctx.remove_ref("Open_vSwitch", &root, "bridges", b);
                    for p in ctx.refs("Bridge", &b, "ports") {
                        delete_port_rows(ctx, &p);
                    }
                    ctx.delete("Bridge", &b);
                }
                None if c.if_exists => {}
                None => return Err(VsctlError::msg(format!("no bridge named {}", a[0]))),
            }
        }
        "list-br" => {
            nargs(c, 0, 0)?;
            let mut names: Vec<String> = ctx
                .data
                .table("Bridge")
                .values()
                .filter_map(|r| r.get_str("name").map(str::to_owned))
                .collect();
            names.sort();
            ctx.out.extend(names);
        }
        "br-exists" => {
            nargs(c, 1, 1)?;
            if ctx.bridge(&a[0]).is_none() {
                return Err(VsctlError {
                    message: String::new(),
                    status: 2,
                });
            }
        }
        "br-to-parent" => {
            nargs(c, 1, 1)?;
            ctx.need_bridge(&a[0])?;
            ctx.out.push(a[0].clone());
        }
        "br-to-vlan" => {
            nargs(c, 1, 1)?;
            ctx.need_bridge(&a[0])?;
            ctx.out.push("0".into());
        }
        "add-port" => {
            nargs(c, 2, usize::MAX)?;
            add_port(ctx, c)?;
        }
        "add-bond" => {
            nargs(c, 4, usize::MAX)?;
            add_port(ctx, c)?;
        }
        "del-port" => {
            nargs(c, 1, 2)?;
            del_port(ctx, c)?;
        }
        "list-ports" | "list-ifaces" => {
            nargs(c, 1, 1)?;
            let b = ctx.need_bridge(&a[0])?;
            let mut names = Vec::new();
            for p in ctx.refs("Bridge", &b, "ports") {
                if c.name == "list-ports" {
                    names.extend(
                        ctx.row("Port", &p)
                            .and_then(|r| r.get_str("name").map(str::to_owned)),
                    );
                } else {
                    for i in ctx.refs("Port", &p, "interfaces") {
                        names.extend(
                            ctx.row("Interface", &i)
                                .and_then(|r| r.get_str("name").map(str::to_owned)),
                        );
                    }
                }
            }
            names.retain(|n| *n != a[0]);
            names.sort();
            ctx.out.extend(names);
        }
        "port-to-br" => {
            nargs(c, 1, 1)?;
            let p = ctx
                .port(&a[0])
                .ok_or_else(|| VsctlError::msg(format!("no port named {}", a[0])))?;
            let b = ctx
                .port_bridge(&p)
                .ok_or_else(|| VsctlError::msg(format!("no port named {}", a[0])))?;
            let name = ctx
                .row("Bridge", &b)
                .and_then(|r| r.get_str("name").map(str::to_owned));
            ctx.out.extend(name);
        }
        "iface-to-br" => {
            nargs(c, 1, 1)?;
            let not_found = || VsctlError::msg(format!("no interface named {}", a[0]));
            let i = ctx.iface(&a[0]).ok_or_else(not_found)?;
            let p = ctx.iface_port(&i).ok_or_else(not_found)?;
            let b = ctx.port_bridge(&p).ok_or_else(not_found)?;
            let name = ctx
                .row("Bridge", &b)
                .and_then(|r| r.get_str("name").map(str::to_owned));
            ctx.out.extend(name);
        }
        "set-controller" => {
            nargs(c, 1, usize::MAX)?;
            let b = ctx.need_bridge(&a[0])?;
            for t in &a[1..] {
                check_target(t, "controller")?;
            }
            let ctls: Vec<Uuid> = a[1..]
                .iter()
                .map(|t| ctx.insert("Controller", vec![("target", s(t))], None))
                .collect();
            replace_refs(ctx, "Bridge", &b, "controller", "Controller", ctls);
        }
        "get-controller" => {
            nargs(c, 1, 1)?;
            let b = ctx.need_bridge(&a[0])?;
            let mut t: Vec<String> = ctx
                .refs("Bridge", &b, "controller")
                .iter()
                .filter_map(|u| {
                    ctx.row("Controller", u)
                        .and_then(|r| r.get_str("target").map(str::to_owned))
                })
                .collect();
            t.sort();
            ctx.out.extend(t);
        }
        "del-controller" => {
            nargs(c, 1, 1)?;
            let b = ctx.need_bridge(&a[0])?;
            replace_refs(ctx, "Bridge", &b, "controller", "Controller", vec![]);
        }
        "set-fail-mode" => {
            nargs(c, 2, 2)?;
            let b = ctx.need_bridge(&a[0])?;
            if a[1] != "standalone" && a[1] != "secure" {
                return Err(VsctlError::msg(
                    "fail-mode must be \"standalone\" or \"secure\"",
                ));
            }
            ctx.set("Bridge", &b, "fail_mode", s(&a[1]));
        }
        "get-fail-mode" => {
            nargs(c, 1, 1)?;
            let b = ctx.need_bridge(&a[0])?;
            let m = ctx
                .row("Bridge", &b)
                .and_then(|r| r.get_str("fail_mode").map(str::to_owned));
            ctx.out.extend(m);
        }
        "del-fail-mode" => {
            nargs(c, 1, 1)?;
            let b = ctx.need_bridge(&a[0])?;
            ctx.set("Bridge", &b, "fail_mode", uuids([]));
        }
        "set-manager" => {
            for t in a {
                check_target(t, "manager")?;
            }
            let root = ctx.root();
            let ms: Vec<Uuid> = a
                .iter()
                .map(|t| ctx.insert("Manager", vec![("target", s(t))], None))
                .collect();
            replace_refs(ctx, "Open_vSwitch", &root, "manager_options", "Manager", ms);
        }
        "get-manager" => {
            let root = ctx.root();
            let mut t: Vec<String> = ctx
                .refs("Open_vSwitch", &root, "manager_options")
                .iter()
                .filter_map(|u| {
                    ctx.row("Manager", u)
                        .and_then(|r| r.get_str("target").map(str::to_owned))
                })
                .collect();
            t.sort();
            ctx.out.extend(t);
        }
        "del-manager" => {
            let root = ctx.root();
            replace_refs(
                ctx,
                "Open_vSwitch",
                &root,
                "manager_options",
                "Manager",
                vec![],
            );
        }
        "list" => {
            nargs(c, 1, usize::MAX)?;
            let ts = ctx.table(&a[0])?;
            let mut rows = Vec::new();
            if a.len() == 1 {
                rows.extend(ctx.data.table(&ts.name).keys().copied());
            } else {
                for r in &a[1..] {
                    match ctx.record(ts, r)? {
                        Some(u) => rows.push(u),
                        None if c.if_exists => {}
                        None => {
                            return Err(VsctlError::msg(format!(
                                "no row \"{r}\" in table {}",
                                ts.name
                            )));
                        }
                    }
                }
            }
            let cols = c.columns.clone().or_else(|| ctx.opts.columns.clone());
            print_rows(ctx, ts, &rows, cols.as_deref())?;
        }
        "find" => {
            nargs(c, 1, usize::MAX)?;
            let ts = ctx.table(&a[0])?;
            let mut rows = Vec::new();
            let all: Vec<Uuid> = ctx.data.table(&ts.name).keys().copied().collect();
            for u in all {
                let mut ok = true;
                for cond in &a[1..] {
                    if !condition_holds(ctx, ts, &u, cond)? {
                        ok = false;
                        break;
                    }
                }
                if ok {
                    rows.push(u);
                }
            }
            let cols = c.columns.clone().or_else(|| ctx.opts.columns.clone());
            print_rows(ctx, ts, &rows, cols.as_deref())?;
        }
        "get" => {
            nargs(c, 2, usize::MAX)?;
            let ts = ctx.table(&a[0])?;
            let Some(u) = ctx.record(ts, &a[1])? else {
                if c.if_exists {
                    return Ok(true);
                }
                return Err(VsctlError::msg(format!(
                    "no row \"{}\" in table {}",
                    a[1], ts.name
                )));
            };
            if let Some(id) = &c.id {
                ctx.symbols.insert(id.clone(), (u, true));
            }
            for spec in &a[2..] {
                let (col, key, _) = split_column_key(spec, &['=']);
                if col == "_uuid" {
                    ctx.out.push(u.to_string());
                    continue;
                }
                let (col, cs) = ctx.column(ts, &col)?;
                let d = ctx
                    .row(&ts.name, &u)
                    .and_then(|r| r.get(col).cloned())
                    .unwrap_or_else(|| Datum::default_of(&cs.ty));
                match key {
                    None => ctx.out.push(datum_to_string(&d, &cs.ty)),
                    Some(k) => {
                        let kt = cs.ty.value.as_ref().ok_or_else(|| {
                            VsctlError::msg(format!(
                                "cannot specify key to get for non-map column {col}"
                            ))
                        })?;
                        let _ = kt;
                        let katom = parse_atom(&k, &cs.ty.key, &ctx.symbols)?;
                        match &d {
                            Datum::Map(m) => match m.get(&katom) {
                                Some(v) => ctx.out.push(atom_to_string(v)),
                                None if c.if_exists => {}
                                None => {
                                    return Err(VsctlError::msg(format!(
                                        "no key \"{k}\" in {} record \"{}\" column {col}",
                                        ts.name, a[1]
                                    )));
                                }
                            },
                            Datum::Set(_) => {}
                        }
                    }
                }
            }
        }
        "set" => {
            nargs(c, 3, usize::MAX)?;
            let ts = ctx.table(&a[0])?;
            let Some(u) = ctx.record(ts, &a[1])? else {
                if c.if_exists {
                    return Ok(true);
                }
                return Err(VsctlError::msg(format!(
                    "no row \"{}\" in table {}",
                    a[1], ts.name
                )));
            };
            for spec in &a[2..] {
                set_column(ctx, ts, &u, spec)?;
            }
        }
        "add" | "remove" => {
            nargs(c, 4, usize::MAX)?;
            let ts = ctx.table(&a[0])?;
            let Some(u) = ctx.record(ts, &a[1])? else {
                if c.if_exists {
                    return Ok(true);
                }
                return Err(VsctlError::msg(format!(
                    "no row \"{}\" in table {}",
                    a[1], ts.name
                )));
            };
            let (col, cs) = ctx.column(ts, &a[2])?;
            let mut d = ctx
                .row(&ts.name, &u)
                .and_then(|r| r.get(col).cloned())
                .unwrap_or_else(|| Datum::default_of(&cs.ty));
            for v in &a[3..] {
                let loose = ovsdb::schema::ColumnType {
                    min: 0,
                    max: usize::MAX,
                    ..cs.ty.clone()
                };
                let arg = if c.name == "remove" && cs.ty.is_map() && !v.contains('=') {
                    let keys = ovsdb::schema::ColumnType {
                        value: None,
                        ..loose.clone()
                    };
                    parse_datum(v, &keys, &ctx.symbols)?
                } else {
                    parse_datum(v, &loose, &ctx.symbols)?
                };
                d = match (c.name.as_str(), d, arg) {
                    ("add", Datum::Set(mut s), Datum::Set(x)) => {
                        s.extend(x);
                        Datum::Set(s)
                    }
                    ("add", Datum::Map(mut m), Datum::Map(x)) => {
                        for (k, v) in x {
                            m.entry(k).or_insert(v);
                        }
                        Datum::Map(m)
                    }
                    ("remove", Datum::Set(mut s), Datum::Set(x)) => {
                        s.retain(|e| !x.contains(e));
                        Datum::Set(s)
                    }
                    ("remove", Datum::Map(mut m), Datum::Set(keys)) => {
                        m.retain(|k, _| !keys.contains(k));
                        Datum::Map(m)
                    }
                    ("remove", Datum::Map(mut m), Datum::Map(x)) => {
                        m.retain(|k, v| x.get(k) != Some(v));
                        Datum::Map(m)
                    }
                    (_, d, _) => d,
                };
            }
            check_count(ts, col, cs, &d)?;
            ctx.set(&ts.name, &u, col, d);
        }
        "clear" => {
            nargs(c, 3, usize::MAX)?;
            let ts = ctx.table(&a[0])?;
            let Some(u) = ctx.record(ts, &a[1])? else {
                if c.if_exists {
                    return Ok(true);
                }
                return Err(VsctlError::msg(format!(
                    "no row \"{}\" in table {}",
                    a[1], ts.name
                )));
            };
            for colname in &a[2..] {
                let (col, cs) = ctx.column(ts, colname)?;
                if cs.ty.min > 0 {
                    return Err(VsctlError::msg(format!(
                        "\"clear\" operation cannot be applied to column {col} of table {}, which is not allowed to be empty",
                        ts.name
                    )));
                }
                let empty = if cs.ty.is_map() {
                    Datum::Map(BTreeMap::new())
                } else {
                    Datum::Set(BTreeSet::new())
                };
                ctx.set(&ts.name, &u, col, empty);
            }
        }
        "create" => {
            nargs(c, 1, usize::MAX)?;
            let ts = ctx.table(&a[0])?;
            let uuid = match &c.id {
                Some(id) => {
                    if !id.starts_with('@') {
                        return Err(VsctlError::msg(format!(
                            "row id \"{id}\" does not begin with \"@\""
                        )));
                    }
                    let entry = ctx
                        .symbols
                        .entry(id.clone())
                        .or_insert((Uuid::new_v4(), false));
                    if entry.1 {
                        return Err(VsctlError::msg(format!(
                            "row id \"{id}\" may only be specified on one --id option"
                        )));
                    }
                    entry.1 = true;
                    entry.0
                }
                None => Uuid::new_v4(),
            };
            // Symbols used later in this command must resolve, so bind before parsing.
            ctx.insert(&ts.name, vec![], Some(uuid));
            for spec in &a[1..] {
                set_column(ctx, ts, &uuid, spec)?;
            }
            if c.id.is_none() {
                ctx.out.push(uuid.to_string());
            }
        }
        "destroy" => {
            nargs(c, 1, usize::MAX)?;
            let ts = ctx.table(&a[0])?;
            if c.all {
                let all: Vec<Uuid> = ctx.data.table(&ts.name).keys().copied().collect();
                for u in all {
                    ctx.delete(&ts.name, &u);
                }
            }
            for r in &a[1..] {
                match ctx.record(ts, r)? {
                    Some(u) => ctx.delete(&ts.name, &u),
                    None if c.if_exists => {}
                    None => {
                        return Err(VsctlError::msg(format!(
                            "no row \"{r}\" in table {}",
                            ts.name
                        )));
                    }
                }
            }
        }
        "wait-until" => {
            nargs(c, 2, usize::MAX)?;
            let ts = ctx.table(&a[0])?;
            let Some(u) = ctx.record(ts, &a[1])? else {
                return Ok(false);
            };
            for cond in &a[2..] {
                if !condition_holds(ctx, ts, &u, cond)? {
                    return Ok(false);
                }
            }
        }
        "comment" => {}
        other => {
            return Err(VsctlError::msg(format!(
                "unknown command '{other}'; use --help for help"
            )));
        }
    }
    Ok(true)
}

fn check_count(
    ts: &TableSchema,
    col: &str,
    cs: &ColumnSchema,
    d: &Datum,
) -> Result<(), VsctlError> {
    if d.len() < cs.ty.min || d.len() > cs.ty.max {
        return Err(VsctlError::msg(format!(
            "\"{col}\" column of table \"{}\" requires {} to {} values, but this would leave {}",
            ts.name,
            cs.ty.min,
            if cs.ty.max == usize::MAX {
                "unlimited".to_string()
            } else {
                cs.ty.max.to_string()
            },
            d.len()
        )));
    }
    Ok(())
}

/// Apply `COL[:KEY]=VALUE` to a row.
fn set_column(ctx: &mut Ctx<'_>, ts: &TableSchema, u: &Uuid, spec: &str) -> Result<(), VsctlError> {
    let (col, key, rest) = split_column_key(spec, &['=']);
    let value = rest.strip_prefix('=').ok_or_else(|| {
        VsctlError::msg(format!(
            "{spec}: argument does not end in \"=\" followed by a value."
        ))
    })?;
    let (col, cs) = ctx.column(ts, &col)?;
    if !cs.mutable
        && ctx.data.row(&ts.name, u).is_some_and(|r| {
            r.get(col)
                .is_some_and(|d| !d.is_empty() && *d != Datum::default_of(&cs.ty))
        })
    {
        return Err(VsctlError::msg(format!(
            "cannot modify read-only column {col} in table {}",
            ts.name
        )));
    }
    match key {
        Some(k) => {
            let vt = cs.ty.value.as_ref().ok_or_else(|| {
                VsctlError::msg(format!(
                    "cannot specify key to set for non-map column {col}"
                ))
            })?;
            let katom = parse_atom(&k, &cs.ty.key, &ctx.symbols)?;
            let vatom = parse_atom(value, vt, &ctx.symbols)?;
            let mut d = ctx
                .row(&ts.name, u)
                .and_then(|r| r.get(col).cloned())
                .unwrap_or_else(|| Datum::default_of(&cs.ty));
            if let Datum::Map(m) = &mut d {
                m.insert(katom, vatom);
            }
            check_count(ts, col, cs, &d)?;
            ctx.set(&ts.name, u, col, d);
        }
        None => {
            let d = parse_datum(value, &cs.ty, &ctx.symbols)?;
            check_count(ts, col, cs, &d)?;
            ctx.set(&ts.name, u, col, d);
        }
    }
    Ok(())
}

/// Evaluate a `find`/`wait-until` condition `COL[:KEY]OP VALUE`.
fn condition_holds(
    ctx: &Ctx<'_>,
    ts: &TableSchema,
    u: &Uuid,
    cond: &str,
) -> Result<bool, VsctlError> {
    let (col, key, rest) = split_column_key(cond, &['=', '!', '<', '>', '{']);
    const OPS: [&str; 12] = [
        "{!=}", "{>=}", "{<=}", "{=}", "{<}", "{>}", "!=", ">=", "<=", "=", "<", ">",
    ];
    let op = OPS.iter().find(|o| rest.starts_with(**o)).ok_or_else(|| {
        VsctlError::msg(format!(
            "{cond}: missing operator (expected =, !=, <, >, <=, >=, {{=}}, ...)"
        ))
    })?;
    let value = &rest[op.len()..];
    let row = ctx.row(&ts.name, u);
    let (actual, ty) = if col == "_uuid" {
        (
            Datum::scalar(Atom::Uuid(*u)),
            ovsdb::schema::ColumnType::uuid_scalar(),
        )
    } else {
        let (col, cs) = ctx.column(ts, &col)?;
        let d = row
            .and_then(|r| r.get(col).cloned())
            .unwrap_or_else(|| Datum::default_of(&cs.ty));
        (d, cs.ty.clone())
    };
    let loose = ovsdb::schema::ColumnType {
        min: 0,
        max: usize::MAX,
        ..ty.clone()
    };
    let (actual, want) = match key {
        Some(k) => {
            let vt = ty.value.clone().ok_or_else(|| {
                VsctlError::msg(format!("{cond}: key specified for non-map column"))
            })?;
            let katom = parse_atom(&k, &ty.key, &ctx.symbols)?;
            let got = match &actual {
                Datum::Map(m) => m.get(&katom).cloned(),
                Datum::Set(_) => None,
            };
            let scalar = ovsdb::schema::ColumnType {
                key: vt.clone(),
                value: None,
                min: 0,
                max: usize::MAX,
            };
            let Some(got) = got else {
                return Ok(*op == "!=" || *op == "{!=}");
            };
            (
                Datum::scalar(got),
                parse_datum(value, &scalar, &ctx.symbols)?,
            )
        }
        None => (actual, parse_datum(value, &loose, &ctx.symbols)?),
    };
    let num = |d: &Datum| match d.first() {
        Some(Atom::Integer(i)) => Some(*i as f64),
        Some(Atom::Real(r)) => Some(*r),
        _ => None,
    };
    Ok(match *op {
        "=" | "{=}" => actual == want,
        "!=" | "{!=}" => actual != want,
        "{>=}" => actual.includes(&want),
        "{<=}" => want.includes(&actual),
        "{>}" => actual.includes(&want) && actual != want,
        "{<}" => want.includes(&actual) && actual != want,
        o => match (num(&actual), num(&want)) {
            (Some(x), Some(y)) => match o {
                "<" => x < y,
                ">" => x > y,
                "<=" => x <= y,
                _ => x >= y,
            },
            _ => false,
        },
    })
}

fn add_br(ctx: &mut Ctx<'_>, c: &Command, name: &str) -> Result<(), VsctlError> {
    check_new_name(name, "bridge")?;
    if ctx.bridge(name).is_some() {
        if c.may_exist {
            return Ok(());
        }
        return Err(VsctlError::msg(format!(
            "cannot create a bridge named {name} because a bridge named {name} already exists"
        )));
    }
    if let Some(p) = ctx.port(name) {
        let owner = ctx
            .port_bridge(&p)
            .and_then(|b| ctx.row("Bridge", &b))
            .and_then(|r| r.get_str("name").map(str::to_owned))
            .unwrap_or_default();
        return Err(VsctlError::msg(format!(
            "cannot create a bridge named {name} because a port named {name} already exists on bridge {owner}"
        )));
    }
    let iface = ctx.insert(
        "Interface",
        vec![("name", s(name)), ("type", s("internal"))],
        None,
    );
    let port = ctx.insert(
        "Port",
        vec![("name", s(name)), ("interfaces", uuids([iface]))],
        None,
    );
    let br = ctx.insert(
        "Bridge",
        vec![("name", s(name)), ("ports", uuids([port]))],
        None,
    );
    let root = ctx.root();
    ctx.add_ref("Open_vSwitch", &root, "bridges", br);
    Ok(())
}

fn add_port(ctx: &mut Ctx<'_>, c: &Command) -> Result<(), VsctlError> {
    let (brname, pname) = (&c.args[0], &c.args[1]);
    check_new_name(pname, "port")?;
    let b = ctx.need_bridge(brname)?;
    if let Some(p) = ctx.port(pname) {
        let owner = ctx
            .port_bridge(&p)
            .and_then(|b| ctx.row("Bridge", &b))
            .and_then(|r| r.get_str("name").map(str::to_owned))
            .unwrap_or_default();
        if c.may_exist && owner == *brname {
            return Ok(());
        }
        if c.may_exist {
            return Err(VsctlError::msg(format!(
                "\"--may-exist add-port {brname} {pname}\" but {pname} is actually attached to bridge {owner}"
            )));
        }
        return Err(VsctlError::msg(format!(
            "cannot create a port named {pname} because a port named {pname} already exists on bridge {owner}"
        )));
    }
    if ctx.bridge(pname).is_some() {
        return Err(VsctlError::msg(format!(
            "cannot create a port named {pname} because a bridge named {pname} already exists"
        )));
    }
    // add-bond BRIDGE PORT IFACE... [COLUMN[:KEY]=VALUE]...: the interface
    // names come first, the first argument with a `=` starts the settings.
    let (iface_names, settings) = if c.name == "add-bond" {
        let n = c.args[2..]
            .iter()
            .position(|a| a.contains('='))
            .unwrap_or(c.args.len() - 2);
        let names = &c.args[2..2 + n];
        if names.len() < 2 {
            return Err(VsctlError::msg(format!(
                "add-bond requires at least 2 interfaces, but only {} were specified",
                names.len()
            )));
        }
        for n in names {
            check_new_name(n, "interface")?;
            if ctx.iface(n).is_some() {
                return Err(VsctlError::msg(format!(
                    "cannot create an interface named {n} because an interface named {n} already exists"
                )));
            }
        }
        (names.to_vec(), &c.args[2 + n..])
    } else {
        (vec![pname.clone()], &c.args[2..])
    };
    let ifaces: Vec<Uuid> = iface_names
        .iter()
        .map(|n| ctx.insert("Interface", vec![("name", s(n))], None))
        .collect();
    let port = ctx.insert(
        "Port",
        vec![("name", s(pname)), ("interfaces", uuids(ifaces))],
        None,
    );
    let pts = ctx
        .schema
        .table("Port")
        .ok_or_else(|| VsctlError::msg("schema lacks Port"))?;
    for spec in settings {
        set_column(ctx, pts, &port, spec)?;
    }
    ctx.add_ref("Bridge", &b, "ports", port);
    Ok(())
}

fn del_port(ctx: &mut Ctx<'_>, c: &Command) -> Result<(), VsctlError> {
    let (br, pname) = match c.args.as_slice() {
        [p] => (None, p),
        [b, p] => (Some(b), p),
        _ => {
            return Err(VsctlError::msg(
                "'del-port' command requires 1 or 2 arguments",
            ));
        }
    };
    let Some(p) = ctx
        .port(pname)
        .or_else(|| ctx.iface(pname).and_then(|i| ctx.iface_port(&i)))
    else {
        if c.if_exists {
            return Ok(());
        }
        return Err(VsctlError::msg(format!("no port named {pname}")));
    };
    let owner = ctx.port_bridge(&p);
    if let Some(brname) = br {
        let b = ctx.need_bridge(brname)?;
        if owner != Some(b) {
            return Err(VsctlError::msg(format!(
                "bridge {brname} does not have a port {pname}"
            )));
        }
    }
    if let Some(owner) = owner {
        ctx.remove_ref("Bridge", &owner, "ports", p);
    }
    delete_port_rows(ctx, &p);
    Ok(())
}

/// Delete a port and its interfaces now, so later commands in the chain can reuse the names.
fn delete_port_rows(ctx: &mut Ctx<'_>, port: &Uuid) {
    for i in ctx.refs("Port", port, "interfaces") {
        ctx.delete("Interface", &i);
    }
    ctx.delete("Port", port);
}

/// Replace the rows a reference column points to (controllers, managers) with `new`.
fn replace_refs(
    ctx: &mut Ctx<'_>,
    table: &str,
    row: &Uuid,
    col: &str,
    target: &str,
    new: Vec<Uuid>,
) {
    for old in ctx.refs(table, row, col) {
        ctx.delete(target, &old);
    }
    ctx.set(table, row, col, uuids(new));
}

fn emer_reset(ctx: &mut Ctx<'_>) {
    let root = ctx.root();
    for col in ["manager_options", "ssl"] {
        ctx.set("Open_vSwitch", &root, col, uuids([]));
    }
    ctx.set(
        "Open_vSwitch",
        &root,
        "other_config",
        Datum::Map(BTreeMap::new()),
    );
    let bridges: Vec<Uuid> = ctx.data.table("Bridge").keys().copied().collect();
    for b in bridges {
        for col in [
            "controller",
            "mirrors",
            "netflow",
            "sflow",
            "ipfix",
            "flood_vlans",
            "fail_mode",
            "auto_attach",
        ] {
            ctx.set("Bridge", &b, col, uuids([]));
        }
        ctx.set("Bridge", &b, "other_config", Datum::Map(BTreeMap::new()));
    }
    let ports: Vec<Uuid> = ctx.data.table("Port").keys().copied().collect();
    for p in ports {
        ctx.set("Port", &p, "other_config", Datum::Map(BTreeMap::new()));
        ctx.set("Port", &p, "qos", uuids([]));
    }
    let ifaces: Vec<Uuid> = ctx.data.table("Interface").keys().copied().collect();
    for i in ifaces {
        for col in ["ingress_policing_rate", "ingress_policing_burst"] {
            ctx.set("Interface", &i, col, Datum::scalar(Atom::Integer(0)));
        }
    }
}
