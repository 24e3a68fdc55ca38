//! The local working copy vsctl commands read and change.

use std::sync::Arc;

use ovsdb::data::{Data, Row};
use ovsdb::datum::{Atom, Datum};
use ovsdb::schema::{ColumnSchema, Schema, TableSchema};
use uuid::Uuid;

use super::value::Symbols;
use super::{GlobalOpts, VsctlError};

/// Commands' view of the database.
pub struct Ctx<'a> {
    pub schema: &'a Schema,
    pub data: Data,
    pub symbols: Symbols,
    pub out: Vec<String>,
    pub opts: &'a GlobalOpts,
}

impl<'a> Ctx<'a> {
    pub fn new(schema: &'a Schema, data: Data, opts: &'a GlobalOpts) -> Self {
        Self {
            schema,
            data,
            symbols: Symbols::new(),
            out: Vec::new(),
            opts,
        }
    }

    /// Fail if an `@name` was referenced but never created.
    pub fn check_symbols(&self) -> Result<(), VsctlError> {
        for (name, (_, created)) in &self.symbols {
            if !created {
                return Err(VsctlError::msg(format!(
                    "row id \"{name}\" is referenced but never created (e.g. with \"-- --id={name} create ...\")"
                )));
            }
        }
        Ok(())
    }

    /// A table by (case-insensitive, unique prefix) name.
    pub fn table(&self, name: &str) -> Result<&'a TableSchema, VsctlError> {
        if let Some(t) = self.schema.table(name) {
            return Ok(t);
        }
        let lower = name.to_ascii_lowercase();
        if let Some(t) = self
            .schema
            .tables
            .values()
            .find(|t| t.name.to_ascii_lowercase() == lower)
        {
            return Ok(t);
        }
        let hits: Vec<&TableSchema> = self
            .schema
            .tables
            .values()
            .filter(|t| t.name.to_ascii_lowercase().starts_with(&lower))
            .collect();
        match hits.as_slice() {
            [t] => Ok(t),
            [] => Err(VsctlError::msg(format!("unknown table \"{name}\""))),
            _ => Err(VsctlError::msg(format!(
                "multiple table names match \"{name}\""
            ))),
        }
    }

    /// A column by (unique prefix) name.
    pub fn column(
        &self,
        ts: &'a TableSchema,
        name: &str,
    ) -> Result<(&'a str, &'a ColumnSchema), VsctlError> {
        if let Some((k, c)) = ts.columns.get_key_value(name) {
            return Ok((k.as_str(), c));
        }
        // As ovs-vsctl: case does not matter and `-` stands for `_`
        // (`select-src-port` is `select_src_port`).
        let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
        let want = norm(name);
        if let Some((k, c)) = ts.columns.iter().find(|(k, _)| norm(k) == want) {
            return Ok((k.as_str(), c));
        }
        let hits: Vec<(&String, &ColumnSchema)> = ts
            .columns
            .iter()
            .filter(|(k, _)| norm(k).starts_with(&want))
            .collect();
        match hits.as_slice() {
            [(k, c)] => Ok((k.as_str(), c)),
            [] => Err(VsctlError::msg(format!(
                "{} does not contain a column whose name matches \"{name}\"",
                ts.name
            ))),
            _ => Err(VsctlError::msg(format!(
                "{} contains more than one column whose name matches \"{name}\"",
                ts.name
            ))),
        }
    }

    pub fn row(&self, table: &str, uuid: &Uuid) -> Option<Arc<Row>> {
        self.data.row(table, uuid).cloned()
    }

    /// The uuid of the row of `table` whose string column `col` equals `name`.
    pub fn by_name(&self, table: &str, col: &str, name: &str) -> Option<Uuid> {
        self.data
            .table(table)
            .iter()
            .find(|(_, r)| r.get_str(col) == Some(name))
            .map(|(u, _)| *u)
    }

    pub fn bridge(&self, name: &str) -> Option<Uuid> {
        self.by_name("Bridge", "name", name)
    }
    pub fn port(&self, name: &str) -> Option<Uuid> {
        self.by_name("Port", "name", name)
    }
    pub fn iface(&self, name: &str) -> Option<Uuid> {
        self.by_name("Interface", "name", name)
    }

    /// The bridge named `name`, or the error ovs-vsctl gives.
    pub fn need_bridge(&self, name: &str) -> Result<Uuid, VsctlError> {
        self.bridge(name)
            .ok_or_else(|| VsctlError::msg(format!("no bridge named {name}")))
    }

    /// The single Open_vSwitch row, created if the database has none.
    pub fn root(&mut self) -> Uuid {
        if let Some(u) = self.data.table("Open_vSwitch").keys().next() {
            return *u;
        }
        let ts = &self.schema.tables["Open_vSwitch"];
        let u = Uuid::new_v4();
        self.data
            .table_mut("Open_vSwitch")
            .insert(u, Arc::new(Row::new_default(ts)));
        u
    }

    /// Uuids referenced by a column of a row.
    pub fn refs(&self, table: &str, uuid: &Uuid, col: &str) -> Vec<Uuid> {
        self.row(table, uuid)
            .and_then(|r| r.get(col).cloned())
            .map(|d| d.atoms().filter_map(Atom::as_uuid).collect())
            .unwrap_or_default()
    }

    /// The bridge a port belongs to.
    pub fn port_bridge(&self, port: &Uuid) -> Option<Uuid> {
        self.data
            .table("Bridge")
            .iter()
            .find(|(_, r)| {
                r.get("ports")
                    .is_some_and(|d| d.atoms().any(|a| a.as_uuid() == Some(*port)))
            })
            .map(|(u, _)| *u)
    }

    /// The port an interface belongs to.
    pub fn iface_port(&self, iface: &Uuid) -> Option<Uuid> {
        self.data
            .table("Port")
            .iter()
            .find(|(_, r)| {
                r.get("interfaces")
                    .is_some_and(|d| d.atoms().any(|a| a.as_uuid() == Some(*iface)))
            })
            .map(|(u, _)| *u)
    }

    /// Insert a row with the given columns (others default); returns its uuid.
    pub fn insert(&mut self, table: &str, cols: Vec<(&str, Datum)>, uuid: Option<Uuid>) -> Uuid {
        let ts = &self.schema.tables[table];
        let mut row = Row::new_default(ts);
        for (c, d) in cols {
            row.columns.insert(c.to_owned(), d);
        }
        let u = uuid.unwrap_or_else(Uuid::new_v4);
        self.data.table_mut(table).insert(u, Arc::new(row));
        u
    }

    /// Set a column of a row.
    pub fn set(&mut self, table: &str, uuid: &Uuid, col: &str, d: Datum) {
        if let Some(r) = self.data.table_mut(table).get_mut(uuid) {
            let r = Arc::make_mut(r);
            if r.columns.get(col) != Some(&d) {
                r.columns.insert(col.to_owned(), d);
                r.version = Uuid::new_v4();
            }
        }
    }

    /// Change a column with a closure.
    pub fn modify(&mut self, table: &str, uuid: &Uuid, col: &str, f: impl FnOnce(&mut Datum)) {
        let Some(mut d) = self.row(table, uuid).and_then(|r| r.get(col).cloned()) else {
            return;
        };
        f(&mut d);
        self.set(table, uuid, col, d);
    }

    /// Delete a row.
    pub fn delete(&mut self, table: &str, uuid: &Uuid) {
        self.data.table_mut(table).remove(uuid);
    }

    /// Add a uuid to a set column.
    pub fn add_ref(&mut self, table: &str, uuid: &Uuid, col: &str, target: Uuid) {
        self.modify(table, uuid, col, |d| {
            if let Datum::Set(s) = d {
                s.insert(Atom::Uuid(target));
            }
        });
    }

    /// Remove a uuid from a set column.
    pub fn remove_ref(&mut self, table: &str, uuid: &Uuid, col: &str, target: Uuid) {
        self.modify(table, uuid, col, |d| {
            if let Datum::Set(s) = d {
                s.remove(&Atom::Uuid(target));
            }
        });
    }

    /// Find a record by ovs-vsctl's record-name rules (name columns, `.`, uuid).
    pub fn record(&self, ts: &TableSchema, name: &str) -> Result<Option<Uuid>, VsctlError> {
        let t = ts.name.as_str();
        if let Ok(u) = Uuid::parse_str(name)
            && self.data.row(t, &u).is_some()
        {
            return Ok(Some(u));
        }
        if let Some(sym) = self.symbols.get(name) {
            return Ok(Some(sym.0));
        }
        let via_bridge = |col: &str| {
            self.bridge(name)
                .map(|b| self.refs("Bridge", &b, col))
                .and_then(|v| v.first().copied())
        };
        let found = match t {
            "Open_vSwitch" if name == "." => self.data.table(t).keys().next().copied(),
            "Bridge" | "Port" | "Interface" | "Mirror" | "Flow_Table" => {
                self.by_name(t, "name", name)
            }
            "Controller" => via_bridge("controller"),
            "NetFlow" => via_bridge("netflow"),
            "sFlow" => via_bridge("sflow"),
            "IPFIX" => via_bridge("ipfix"),
            "AutoAttach" => via_bridge("auto_attach"),
            "Manager" => self.by_name(t, "target", name),
            "QoS" => self
                .port(name)
                .and_then(|p| self.refs("Port", &p, "qos").first().copied()),
            _ => None,
        };
        if found.is_some() {
            return Ok(found);
        }
        // A unique uuid prefix (at least 4 hex digits), as ovs-vsctl accepts.
        if name.len() >= 4 && name.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            let hits: Vec<Uuid> = self
                .data
                .table(t)
                .keys()
                .filter(|u| u.to_string().starts_with(name))
                .copied()
                .collect();
            if hits.len() == 1 {
                return Ok(Some(hits[0]));
            }
        }
        Ok(None)
    }

    /// Like [`Ctx::record`], failing with ovs-vsctl's message.
    pub fn need_record(&self, ts: &TableSchema, name: &str) -> Result<Uuid, VsctlError> {
        self.record(ts, name)?
            .ok_or_else(|| VsctlError::msg(format!("no row \"{name}\" in table {}", ts.name)))
    }
}
