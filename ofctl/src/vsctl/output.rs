//! Output of `list`/`find` (list, table, json, csv formats) and `show`.

use ovsdb::data::Row;
use ovsdb::datum::{Atom, Datum};
use ovsdb::schema::{ColumnType, TableSchema};
use serde_json::{Value, json};
use uuid::Uuid;

use super::value::{atom_to_string, datum_to_string};
use super::{Ctx, Format, VsctlError};

fn cell(row: &Row, uuid: Uuid, col: &str, ts: &TableSchema) -> (String, Value) {
    if col == "_uuid" {
        return (uuid.to_string(), json!(["uuid", uuid.to_string()]));
    }
    match (row.get(col), ts.columns.get(col)) {
        (Some(d), Some(cs)) => (datum_to_string(d, &cs.ty), d.to_json()),
        _ => (String::new(), Value::Null),
    }
}

/// Print rows of a table in the selected format.
pub fn print_rows(
    ctx: &mut Ctx<'_>,
    ts: &TableSchema,
    rows: &[Uuid],
    columns: Option<&[String]>,
) -> Result<(), VsctlError> {
    let cols: Vec<String> = match columns {
        Some(cs) => {
            let mut out = Vec::new();
            for c in cs {
                if c == "_uuid" {
                    out.push(c.clone());
                } else {
                    out.push(ctx.column(ts, c)?.0.to_owned());
                }
            }
            out
        }
        None => std::iter::once("_uuid".to_string())
            .chain(ts.columns.keys().cloned())
            .collect(),
    };
    let data: Vec<(Vec<String>, Vec<Value>)> = rows
        .iter()
        .filter_map(|u| ctx.row(&ts.name, u).map(|r| (u, r)))
        .map(|(u, r)| cols.iter().map(|c| cell(&r, *u, c, ts)).unzip())
        .collect();
    let opts = ctx.opts;
    let out = &mut ctx.out;
    if opts.bare {
        for (i, (strs, _)) in data.iter().enumerate() {
            if i > 0 {
                out.push(String::new());
            }
            out.extend(strs.iter().cloned());
        }
        return Ok(());
    }
    match opts.format {
        Format::List => {
            for (i, (strs, _)) in data.iter().enumerate() {
                if i > 0 {
                    out.push(String::new());
                }
                for (c, v) in cols.iter().zip(strs) {
                    out.push(format!("{c:<20}: {v}"));
                }
            }
        }
        Format::Table => {
            let mut widths: Vec<usize> = cols.iter().map(|c| c.len()).collect();
            for (strs, _) in &data {
                for (w, s) in widths.iter_mut().zip(strs) {
                    *w = (*w).max(s.len());
                }
            }
            let line = |cells: Vec<&str>| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join(" ")
                    .trim_end()
                    .to_owned()
            };
            if !opts.no_headings {
                out.push(line(cols.iter().map(String::as_str).collect()));
                out.push(line(
                    widths
                        .iter()
                        .map(|w| "-".repeat(*w))
                        .collect::<Vec<_>>()
                        .iter()
                        .map(String::as_str)
                        .collect(),
                ));
            }
            for (strs, _) in &data {
                out.push(line(strs.iter().map(String::as_str).collect()));
            }
        }
        Format::Json => {
            let rows: Vec<Value> = data
                .into_iter()
                .map(|(_, vals)| Value::Array(vals))
                .collect();
            out.push(json!({"data": rows, "headings": cols}).to_string());
        }
        Format::Csv => {
            let esc = |s: &str| {
                if s.contains([',', '"', '\n']) {
                    format!("\"{}\"", s.replace('"', "\"\""))
                } else {
                    s.to_owned()
                }
            };
            if !opts.no_headings {
                out.push(cols.join(","));
            }
            for (strs, _) in &data {
                out.push(strs.iter().map(|s| esc(s)).collect::<Vec<_>>().join(","));
            }
        }
    }
    Ok(())
}

fn str_col<'r>(r: &'r Row, c: &str) -> &'r str {
    r.get_str(c).unwrap_or("")
}

fn quoted(s: &str) -> String {
    atom_to_string(&Atom::String(s.to_owned()))
}

fn ty_of<'s>(ts: &'s TableSchema, col: &str) -> Option<&'s ColumnType> {
    ts.columns.get(col).map(|c| &c.ty)
}

fn show_nonempty(out: &mut Vec<String>, indent: &str, r: &Row, ts: &TableSchema, col: &str) {
    if let (Some(d), Some(ty)) = (r.get(col), ty_of(ts, col))
        && !d.is_empty()
        && !(ty.is_scalar() && *d == Datum::default_of(ty))
    {
        out.push(format!("{indent}{col}: {}", datum_to_string(d, ty)));
    }
}

/// `show`: the layout of `ovs-vsctl show`.
pub fn show(ctx: &mut Ctx<'_>) {
    let schema = ctx.schema;
    let mut out = Vec::new();
    let Some((root_uuid, root)) = ctx
        .data
        .table("Open_vSwitch")
        .iter()
        .next()
        .map(|(u, r)| (*u, r.clone()))
    else {
        return;
    };
    out.push(root_uuid.to_string());
    let mut managers: Vec<_> = ctx
        .refs("Open_vSwitch", &root_uuid, "manager_options")
        .into_iter()
        .filter_map(|u| ctx.row("Manager", &u))
        .collect();
    managers.sort_by(|a, b| str_col(a, "target").cmp(str_col(b, "target")));
    for m in managers {
        out.push(format!("    Manager {}", quoted(str_col(&m, "target"))));
        if m.get("is_connected").and_then(Datum::first) == Some(&Atom::Boolean(true)) {
            out.push("        is_connected: true".into());
        }
    }
    let mut bridges: Vec<_> = ctx
        .refs("Open_vSwitch", &root_uuid, "bridges")
        .into_iter()
        .filter_map(|u| ctx.row("Bridge", &u))
        .collect();
    bridges.sort_by(|a, b| str_col(a, "name").cmp(str_col(b, "name")));
    let bts = &schema.tables["Bridge"];
    let pts = &schema.tables["Port"];
    let its = &schema.tables["Interface"];
    for b in bridges {
        out.push(format!("    Bridge {}", quoted(str_col(&b, "name"))));
        let mut ctls: Vec<_> = b
            .get("controller")
            .map(|d| {
                d.atoms()
                    .filter_map(Atom::as_uuid)
                    .filter_map(|u| ctx.row("Controller", &u))
                    .collect()
            })
            .unwrap_or_else(Vec::new);
        ctls.sort_by(|a, b| str_col(a, "target").cmp(str_col(b, "target")));
        for c in ctls {
            out.push(format!(
                "        Controller {}",
                quoted(str_col(&c, "target"))
            ));
            if c.get("is_connected").and_then(Datum::first) == Some(&Atom::Boolean(true)) {
                out.push("            is_connected: true".into());
            }
        }
        show_nonempty(&mut out, "        ", &b, bts, "fail_mode");
        show_nonempty(&mut out, "        ", &b, bts, "datapath_type");
        let mut ports: Vec<_> = b
            .get("ports")
            .map(|d| {
                d.atoms()
                    .filter_map(Atom::as_uuid)
                    .filter_map(|u| ctx.row("Port", &u))
                    .collect()
            })
            .unwrap_or_else(Vec::new);
        ports.sort_by(|a, b| str_col(a, "name").cmp(str_col(b, "name")));
        for p in ports {
            out.push(format!("        Port {}", quoted(str_col(&p, "name"))));
            for col in ["tag", "trunks", "vlan_mode", "bond_mode", "lacp"] {
                show_nonempty(&mut out, "            ", &p, pts, col);
            }
            let mut ifaces: Vec<_> = p
                .get("interfaces")
                .map(|d| {
                    d.atoms()
                        .filter_map(Atom::as_uuid)
                        .filter_map(|u| ctx.row("Interface", &u))
                        .collect()
                })
                .unwrap_or_else(Vec::new);
            ifaces.sort_by(|a, b| str_col(a, "name").cmp(str_col(b, "name")));
            for i in ifaces {
                out.push(format!(
                    "            Interface {}",
                    quoted(str_col(&i, "name"))
                ));
                for col in ["type", "options", "error"] {
                    show_nonempty(&mut out, "                ", &i, its, col);
                }
            }
        }
    }
    if let Some(v) = root.get("ovs_version").and_then(Datum::first) {
        out.push(format!("    ovs_version: {}", atom_to_string(v)));
    }
    ctx.out.extend(out);
}
