//! `appctl`: send a command to a running vswitchd, in the habits of ovs-appctl.
//!
//!     appctl [-t TARGET] [-f|--format text|json] [-T SECS] COMMAND [ARG...]
//!
//! TARGET is a socket path or a daemon name (`vswitchd`, resolved in
//! `$FERROVS_RUNDIR`, default `/run/ferrovs`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use ovsdb::jsonrpc::Decoder;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(
    name = "appctl",
    version,
    about = "Send a command to a running ferrovs daemon"
)]
struct Args {
    /// Daemon to talk to: a socket path, or a name resolved in $FERROVS_RUNDIR.
    #[arg(short = 't', long = "target", default_value = "vswitchd")]
    target: String,
    /// Output format: text (default) or json.
    #[arg(short = 'f', long = "format", default_value = "text")]
    format: String,
    /// Give up after this many seconds.
    #[arg(short = 'T', long = "timeout", default_value_t = 30)]
    timeout: u64,
    /// The command, e.g. `ofproto/trace`, `fdb/show`, `list-commands`.
    command: String,
    /// Its arguments (passed on as they are, `-v` and `-generate` included,
    /// as ovs-appctl does).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

fn rundir() -> PathBuf {
    std::env::var_os("FERROVS_RUNDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/ferrovs"))
}

fn socket_path(target: &str) -> PathBuf {
    if target.contains('/') {
        PathBuf::from(target)
    } else if target.ends_with(".ctl") {
        rundir().join(target)
    } else {
        rundir().join(format!("{target}.ctl"))
    }
}

fn call(
    stream: &mut UnixStream,
    decoder: &mut Decoder,
    id: u64,
    method: &str,
    params: &[String],
) -> Result<Value> {
    let req = json!({"id": id, "method": method, "params": params});
    stream.write_all(req.to_string().as_bytes())?;
    let mut chunk = vec![0u8; 65536];
    loop {
        match decoder.next_value() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => bail!("malformed reply from daemon: {e}"),
        }
        let n = stream.read(&mut chunk).context("reading reply")?;
        if n == 0 {
            bail!("connection closed by the daemon before it replied");
        }
        decoder.feed(&chunk[..n]);
    }
}

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("appctl: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run(args: &Args) -> Result<i32> {
    if args.format != "text" && args.format != "json" {
        bail!(
            "unknown output format \"{}\" (use text or json)",
            args.format
        );
    }
    let path = socket_path(&args.target);
    let mut stream = UnixStream::connect(&path)
        .with_context(|| format!("cannot connect to \"{}\"", path.display()))?;
    let t = Some(Duration::from_secs(args.timeout.max(1)));
    stream.set_read_timeout(t)?;
    stream.set_write_timeout(t)?;
    let mut decoder = Decoder::new();
    if args.format == "json" {
        let r = call(
            &mut stream,
            &mut decoder,
            0,
            "set-options",
            &["--format".into(), "json".into()],
        )?;
        if let Some(e) = r.get("error").and_then(Value::as_str) {
            bail!("{e}");
        }
    }
    let reply = call(&mut stream, &mut decoder, 1, &args.command, &args.args)?;
    match reply.get("error") {
        Some(Value::Null) | None => {}
        Some(Value::String(e)) => {
            eprint!("{e}");
            if !e.ends_with('\n') {
                eprintln!();
            }
            eprintln!("appctl: {}: server returned an error", path.display());
            return Ok(2);
        }
        Some(other) => {
            eprintln!("{other}");
            return Ok(2);
        }
    }
    match reply.get("result") {
        Some(Value::String(s)) => print!("{s}"),
        Some(Value::Null) | None => {}
        Some(v) => println!("{}", serde_json::to_string_pretty(v)?),
    }
    Ok(0)
}
