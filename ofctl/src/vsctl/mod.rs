//! `vsctl`: the ovs-vsctl vocabulary against ferrovs's OVSDB.
//!
//! Every invocation reads the whole database, runs its commands (chained with `--`) against a
//! local copy, and sends the difference as ONE transaction: an error in any command sends
//! nothing, so the database is unchanged.

mod commands;
mod ctx;
mod output;
mod targets;
pub mod value;

use std::time::{Duration, Instant};

use ovsdb::client::{Client, ClientError, first_error};
use ovsdb::data::{ChangeSet, Data, Row};
use ovsdb::schema::Schema;
use serde_json::{Value, json};

pub use ctx::Ctx;

/// A vsctl failure: the message (printed as `vsctl: <message>`) and the exit status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct VsctlError {
    pub message: String,
    pub status: i32,
}

impl VsctlError {
    pub fn msg(m: impl Into<String>) -> Self {
        Self {
            message: m.into(),
            status: 1,
        }
    }
}

/// Output format of `list`, `find` and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// ovs-vsctl's default `list` layout ("column : value").
    #[default]
    List,
    Table,
    Json,
    Csv,
}

/// Options given before the first command.
#[derive(Debug, Clone)]
pub struct GlobalOpts {
    pub db: String,
    pub no_wait: bool,
    pub timeout: Option<Duration>,
    pub format: Format,
    pub columns: Option<Vec<String>>,
    pub bare: bool,
    pub no_headings: bool,
}

impl Default for GlobalOpts {
    fn default() -> Self {
        let rundir = std::env::var("FERROVS_RUNDIR").unwrap_or_else(|_| "/run/ferrovs".into());
        Self {
            db: format!("unix:{rundir}/db.sock"),
            no_wait: false,
            timeout: None,
            format: Format::List,
            columns: None,
            bare: false,
            no_headings: false,
        }
    }
}

/// One command with its own options (`--may-exist`, `--if-exists`, `--id=@x`, ...).
#[derive(Debug, Clone, Default)]
pub struct Command {
    pub name: String,
    pub args: Vec<String>,
    pub may_exist: bool,
    pub if_exists: bool,
    pub all: bool,
    pub id: Option<String>,
    pub columns: Option<Vec<String>>,
}

fn parse_format(s: &str) -> Result<Format, VsctlError> {
    Ok(match s {
        "list" => Format::List,
        "table" => Format::Table,
        "json" => Format::Json,
        "csv" => Format::Csv,
        _ => return Err(VsctlError::msg(format!("unknown output format \"{s}\""))),
    })
}

fn apply_global(o: &mut GlobalOpts, opt: &str) -> Result<bool, VsctlError> {
    let (name, val) = match opt.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (opt, None),
    };
    match (name, val) {
        ("--db", Some(v)) => o.db = v.to_owned(),
        ("--no-wait", None) => o.no_wait = true,
        ("--timeout" | "-t", Some(v)) => {
            let secs: u64 = v
                .parse()
                .map_err(|_| VsctlError::msg(format!("value {v} on -t or --timeout is invalid")))?;
            o.timeout = (secs > 0).then(|| Duration::from_secs(secs));
        }
        ("--format" | "-f", Some(v)) => o.format = parse_format(v)?,
        ("--columns", Some(v)) => o.columns = Some(v.split(',').map(str::to_owned).collect()),
        ("--bare", None) => o.bare = true,
        ("--no-headings" | "-d", None) => o.no_headings = true,
        ("--oneline" | "--dry-run" | "-v" | "--verbose" | "--no-syslog", _) => {}
        _ => return Ok(false),
    }
    Ok(true)
}

/// Parse the command line (without the program name).
pub fn parse_args(args: &[String]) -> Result<(GlobalOpts, Vec<Command>), VsctlError> {
    let mut opts = GlobalOpts::default();
    let mut commands = Vec::new();
    let mut cur = Command::default();
    let mut in_globals = true;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            if !cur.name.is_empty() {
                commands.push(std::mem::take(&mut cur));
            }
            in_globals = false;
            continue;
        }
        if cur.name.is_empty() && a.starts_with('-') {
            if (a == "-t" || a == "-f") && i < args.len() {
                let joined = format!("{a}={}", args[i]);
                i += 1;
                apply_global(&mut opts, &joined)?;
                continue;
            }
            if in_globals && apply_global(&mut opts, a)? {
                continue;
            }
            let (name, val) = match a.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (a.as_str(), None),
            };
            match (name, val) {
                ("--may-exist", None) => cur.may_exist = true,
                ("--if-exists", None) => cur.if_exists = true,
                ("--all", None) => cur.all = true,
                ("--id", Some(v)) => cur.id = Some(v.to_owned()),
                ("--columns", Some(v)) => {
                    cur.columns = Some(v.split(',').map(str::to_owned).collect())
                }
                ("--with-iface" | "--fake-iface" | "--real", None) => {}
                _ => {
                    if !apply_global(&mut opts, a)? {
                        return Err(VsctlError::msg(format!("unrecognized option '{a}'")));
                    }
                }
            }
            continue;
        }
        if cur.name.is_empty() {
            cur.name = a.clone();
        } else {
            cur.args.push(a.clone());
        }
    }
    if !cur.name.is_empty() {
        commands.push(cur);
    }
    if commands.is_empty() {
        return Err(VsctlError::msg(
            "missing command name (use --help for help)",
        ));
    }
    Ok((opts, commands))
}

/// The message for `--timeout=SECS` running out, as ovs-vsctl words it.
fn timeout_error(timeout: Option<Duration>) -> VsctlError {
    VsctlError::msg(format!(
        "timeout after {} seconds",
        timeout.map_or(0, |t| t.as_secs())
    ))
}

/// A failed exchange with the database server, reported as a timeout when `--timeout` ran out.
fn db_error(timeout: Option<Duration>) -> impl Fn(ClientError) -> VsctlError {
    move |e| match e {
        ClientError::Timeout => timeout_error(timeout),
        other => VsctlError::msg(other.to_string()),
    }
}

/// Read every row of every table.
fn fetch(
    client: &mut Client,
    schema: &Schema,
    timeout: Option<Duration>,
) -> Result<Data, VsctlError> {
    let ops: Vec<Value> = schema
        .tables
        .keys()
        .map(|t| json!({"op": "select", "table": t, "where": []}))
        .collect();
    let results = client.transact(ops).map_err(db_error(timeout))?;
    if let Some(e) = first_error(&results) {
        return Err(VsctlError::msg(format!("reading the database failed: {e}")));
    }
    let mut data = Data::empty(schema);
    for (tname, res) in schema.tables.keys().zip(&results) {
        let ts = &schema.tables[tname];
        for r in res
            .get("rows")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let uuid = r
                .get("_uuid")
                .and_then(|u| ovsdb::datum::parse_uuid_json(u, &Default::default()).ok())
                .ok_or_else(|| VsctlError::msg("row without _uuid in server reply"))?;
            let row = Row::from_stored_json(ts, r).map_err(|e| VsctlError::msg(e.to_string()))?;
            data.table_mut(tname).insert(uuid, std::sync::Arc::new(row));
        }
    }
    Ok(data)
}

/// Turn the difference between `base` and `work` into transaction operations.
pub fn diff_to_ops(schema: &Schema, base: &Data, work: &Data) -> Vec<Value> {
    let changes = ChangeSet::diff(base, work);
    let mut waits = Vec::new();
    let mut ops = Vec::new();
    for c in &changes.changes {
        let where_ = json!([["_uuid", "==", ["uuid", c.uuid.to_string()]]]);
        if let Some(old) = &c.old {
            waits.push(
                json!({"op": "wait", "timeout": 0, "table": c.table, "where": where_,
                "columns": ["_version"], "until": "==",
                "rows": [{"_version": ["uuid", old.version.to_string()]}]}),
            );
        }
        let Some(ts) = schema.table(&c.table) else {
            continue;
        };
        match (&c.old, &c.new) {
            (None, Some(new)) => {
                let mut row = serde_json::Map::new();
                for (col, d) in &new.columns {
                    let cs = &ts.columns[col];
                    if *d != ovsdb::Datum::default_of(&cs.ty) {
                        row.insert(col.clone(), d.to_json());
                    }
                }
                ops.push(json!({"op": "insert", "table": c.table, "uuid": c.uuid.to_string(), "row": row}));
            }
            (Some(old), Some(new)) => {
                let mut row = serde_json::Map::new();
                for (col, d) in &new.columns {
                    if old.get(col) != Some(d) {
                        row.insert(col.clone(), d.to_json());
                    }
                }
                if !row.is_empty() {
                    ops.push(
                        json!({"op": "update", "table": c.table, "where": where_, "row": row}),
                    );
                }
            }
            (Some(_), None) => ops.push(json!({"op": "delete", "table": c.table, "where": where_})),
            (None, None) => {}
        }
    }
    waits.extend(ops);
    waits
}

fn root_uuid(data: &Data) -> Option<uuid::Uuid> {
    data.table("Open_vSwitch").keys().next().copied()
}

fn cur_cfg(client: &mut Client, timeout: Option<Duration>) -> Result<i64, VsctlError> {
    let r = client
        .transact(vec![
            json!({"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["cur_cfg"]}),
        ])
        .map_err(db_error(timeout))?;
    Ok(r.first()
        .and_then(|x| x.get("rows"))
        .and_then(|rows| rows.get(0))
        .and_then(|row| row.get("cur_cfg"))
        .and_then(Value::as_i64)
        .unwrap_or(0))
}

/// Run vsctl with the given arguments; returns the lines to print on success.
pub fn run(args: &[String]) -> Result<Vec<String>, VsctlError> {
    let (opts, commands) = parse_args(args)?;
    // --timeout bounds the whole run: connecting, every request, and waiting for cur_cfg.
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let timed_out = || timeout_error(opts.timeout);
    let mut client = Client::connect_until(&opts.db, deadline).map_err(db_error(opts.timeout))?;
    let schema = client.get_schema().map_err(db_error(opts.timeout))?;
    loop {
        let base = fetch(&mut client, &schema, opts.timeout)?;
        let mut ctx = Ctx::new(&schema, base.clone(), &opts);
        // As in ovs-vsctl, a row a later `create --id=@name` makes may be
        // referenced before it (`set Bridge br netflow=@nf -- --id=@nf
        // create NetFlow ...`): its uuid is chosen now.
        for c in commands.iter().filter(|c| c.name == "create") {
            if let Some(id) = c.id.as_ref().filter(|id| id.starts_with('@')) {
                ctx.symbols
                    .entry(id.clone())
                    .or_insert((uuid::Uuid::new_v4(), false));
            }
        }
        let mut retry = false;
        for c in &commands {
            match commands::execute(&mut ctx, c) {
                Ok(true) => {}
                Ok(false) => {
                    retry = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if retry {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(timed_out());
            }
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        ctx.check_symbols()?;
        let mut work = ctx.data.clone();
        ovsdb::integrity::finalize(&schema, &base, &mut work)
            .map_err(|e| VsctlError::msg(format!("transaction error: {}", e.to_json())))?;
        let mut ops = diff_to_ops(&schema, &base, &work);
        if ops.is_empty() {
            return Ok(ctx.out);
        }
        let wait_for_cfg = !opts.no_wait;
        if wait_for_cfg && let Some(root) = root_uuid(&work) {
            let w = json!([["_uuid", "==", ["uuid", root.to_string()]]]);
            ops.push(json!({"op": "mutate", "table": "Open_vSwitch", "where": w,
                "mutations": [["next_cfg", "+=", 1]]}));
            ops.push(json!({"op": "select", "table": "Open_vSwitch", "where": w, "columns": ["next_cfg"]}));
        }
        let invocation = format!("vsctl: {}", args.join(" "));
        ops.push(json!({"op": "comment", "comment": invocation}));
        let results = client
            .transact(ops.clone())
            .map_err(db_error(opts.timeout))?;
        if let Some(e) = first_error(&results) {
            // A concurrent change made a verified row stale: start over, as ovs-vsctl does.
            let stale = e.get("error").and_then(Value::as_str) == Some("timed out")
                && results
                    .iter()
                    .position(|r| r.get("error").is_some())
                    .is_some_and(|i| {
                        ops.get(i).and_then(|o| o.get("op")).and_then(Value::as_str) == Some("wait")
                    });
            if stale {
                continue;
            }
            return Err(VsctlError::msg(format!("transaction error: {e}")));
        }
        if wait_for_cfg {
            let next = results
                .iter()
                .rev()
                .find_map(|r| r.get("rows"))
                .and_then(|rows| rows.get(0))
                .and_then(|row| row.get("next_cfg"))
                .and_then(Value::as_i64);
            if let Some(next) = next {
                loop {
                    if cur_cfg(&mut client, opts.timeout)? >= next {
                        break;
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(timed_out());
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        return Ok(ctx.out);
    }
}

/// `vsctl --help`.
pub const USAGE: &str = "vsctl: ferrovs configuration utility (ovs-vsctl vocabulary)
usage: vsctl [OPTIONS] COMMAND [ARG...] [-- [OPTIONS] COMMAND [ARG...]]...

Open vSwitch commands:
  init, show, emer-reset
Bridge commands:
  add-br BRIDGE, del-br BRIDGE, list-br, br-exists BRIDGE, br-to-parent BRIDGE
Port and interface commands:
  list-ports BRIDGE, add-port BRIDGE PORT [COLUMN[:KEY]=VALUE]..., del-port [BRIDGE] PORT,
  add-bond BRIDGE PORT IFACE... [COLUMN[:KEY]=VALUE]...,
  port-to-br PORT, list-ifaces BRIDGE, iface-to-br IFACE
Controller, fail mode and manager commands:
  get-controller BRIDGE, del-controller BRIDGE, set-controller BRIDGE TARGET...,
  get-fail-mode BRIDGE, del-fail-mode BRIDGE, set-fail-mode BRIDGE standalone|secure,
  get-manager, del-manager, set-manager TARGET...
Database commands:
  list TBL [REC], find TBL CONDITION..., get TBL REC COL[:KEY],
  set TBL REC COL[:KEY]=VALUE, add TBL REC COL [KEY=]VALUE, remove TBL REC COL [KEY=]VALUE,
  clear TBL REC COL, create TBL COL[:KEY]=VALUE, destroy TBL REC, wait-until TBL REC [COND]
Options:
  --db=unix:PATH|tcp:IP:PORT (default unix:$FERROVS_RUNDIR/db.sock, FERROVS_RUNDIR=/run/ferrovs)
  --no-wait, -t/--timeout=SECS, -f/--format=list|table|json|csv, --columns=COL,...,
  --bare, -d/--no-headings; per command: --may-exist, --if-exists, --id=@NAME, --all";

/// Entry point for the binary: prints output or `vsctl: error`, returns the exit status.
pub fn main_with_args(args: &[String]) -> i32 {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return 0;
    }
    match run(args) {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            0
        }
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("vsctl: {}", e.message);
            }
            e.status
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_global_options_and_chained_commands() {
        let (o, cmds) = parse_args(&s(&[
            "--db=unix:/x",
            "--no-wait",
            "--",
            "--may-exist",
            "add-br",
            "br0",
            "--",
            "set",
            "bridge",
            "br0",
            "fail_mode=secure",
        ]))
        .unwrap();
        assert_eq!(o.db, "unix:/x");
        assert!(o.no_wait);
        assert_eq!(cmds.len(), 2);
        assert!(cmds[0].may_exist);
        assert_eq!(cmds[1].args, s(&["bridge", "br0", "fail_mode=secure"]));
    }

    #[test]
    fn unknown_option_is_an_error() {
        assert!(parse_args(&s(&["--bogus", "show"])).is_err());
        assert!(parse_args(&s(&[])).is_err());
    }
}
