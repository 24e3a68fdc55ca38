//! The appctl control socket (`RUNDIR/vswitchd.ctl`), speaking JSON-RPC 1.0
//! the way Open vSwitch's unixctl does: a request
//! `{"id":N,"method":"fdb/show","params":["br0"]}` gets
//! `{"id":N,"result":"<text>","error":null}` or an error string.
//!
//! A client may first call `set-options` with `["--format","json"]`; the
//! commands on that connection then answer with JSON values instead of text.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ovsdb::jsonrpc::Decoder;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, warn};

/// Output format a client asked for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Text,
    Json,
}

/// What a command returns: text for humans, or a JSON value.
pub enum Reply {
    Text(String),
    Json(Value),
}

/// A command handler: arguments and the requested format in, reply or error
/// message out.
pub type Handler = Arc<dyn Fn(&[String], Format) -> Result<Reply, String> + Send + Sync>;

struct Command {
    usage: &'static str,
    min_args: usize,
    max_args: usize,
    handler: Handler,
}

/// The set of appctl commands.
#[derive(Default, Clone)]
pub struct Registry {
    cmds: Arc<std::sync::RwLock<BTreeMap<String, Arc<Command>>>>,
}

impl Registry {
    /// Registers `name` taking between `min_args` and `max_args` arguments.
    pub fn register(
        &self,
        name: &str,
        usage: &'static str,
        min_args: usize,
        max_args: usize,
        handler: Handler,
    ) {
        let cmd = Command {
            usage,
            min_args,
            max_args,
            handler,
        };
        self.cmds
            .write()
            .expect("registry lock")
            .insert(name.to_string(), Arc::new(cmd));
    }

    /// Runs one request; returns `(result, error)` as unixctl does.
    pub fn dispatch(&self, method: &str, args: &[String], format: Format) -> (Value, Value) {
        if method == "list-commands" || method == "help" {
            let cmds = self.cmds.read().expect("registry lock");
            let mut s = String::from("The available commands are:\n");
            for (name, c) in cmds.iter() {
                s.push_str(&format!("  {name:<28}{}\n", c.usage));
            }
            return (Value::String(s), Value::Null);
        }
        let cmd = match self.cmds.read().expect("registry lock").get(method) {
            Some(c) => c.clone(),
            None => {
                return (
                    Value::Null,
                    Value::String(format!(
                        "\"{method}\" is not a valid command (use list-commands to see a list of valid commands)"
                    )),
                );
            }
        };
        if args.len() < cmd.min_args {
            return (
                Value::Null,
                Value::String(format!(
                    "\"{method}\" command requires at least {} arguments",
                    cmd.min_args
                )),
            );
        }
        if args.len() > cmd.max_args {
            return (
                Value::Null,
                Value::String(format!(
                    "\"{method}\" command takes at most {} arguments",
                    cmd.max_args
                )),
            );
        }
        match (cmd.handler)(args, format) {
            Ok(Reply::Text(t)) => (Value::String(t), Value::Null),
            Ok(Reply::Json(v)) => (v, Value::Null),
            Err(e) => (Value::Null, Value::String(e)),
        }
    }
}

/// Serves the registry on a unix socket until the task is dropped.
pub async fn serve(path: &Path, registry: Registry) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    set_mode_0600(path);
    let name = path.display().to_string();
    let max = ovsdb::listener::DEFAULT_MAX_CONNECTIONS;
    match ovsdb::listener::serve_connections(listener, &name, max, |stream| {
        let reg = registry.clone();
        async move {
            if let Err(e) = handle(stream, reg).await {
                debug!("appctl connection ended: {e}");
            }
        }
    })
    .await {}
}

pub(crate) fn set_mode_0600(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        warn!("chmod 0600 {}: {e}", path.display());
    }
}

async fn handle(mut stream: UnixStream, reg: Registry) -> std::io::Result<()> {
    let mut decoder = Decoder::new();
    let mut chunk = vec![0u8; 65536];
    let mut format = Format::Text;
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        decoder.feed(&chunk[..n]);
        loop {
            let req = match decoder.next_value() {
                Ok(Some(v)) => v,
                Ok(None) => break,
                Err(e) => {
                    warn!("appctl: closing connection on undecodable request: {e}");
                    let reply = json!({"id": null, "result": null,
                        "error": format!("request rejected: {e}")});
                    stream.write_all(reply.to_string().as_bytes()).await?;
                    return Ok(());
                }
            };
            let reply = answer(req, &reg, &mut format).await;
            stream.write_all(reply.to_string().as_bytes()).await?;
        }
    }
}

/// Answers one request, tracking the connection's output format.
async fn answer(req: Value, reg: &Registry, format: &mut Format) -> Value {
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let method = req.get("method").and_then(Value::as_str).unwrap_or("");
    let args: Vec<String> = match req.get("params") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let (result, error) = if method == "set-options" {
        match args.iter().position(|a| a == "--format") {
            Some(i) => match args.get(i + 1).map(String::as_str) {
                Some("json") => {
                    *format = Format::Json;
                    (Value::Null, Value::Null)
                }
                Some("text") => {
                    *format = Format::Text;
                    (Value::Null, Value::Null)
                }
                other => (
                    Value::Null,
                    Value::String(format!("unknown output format {other:?}")),
                ),
            },
            None => (Value::Null, Value::Null),
        }
    } else if method.is_empty() {
        (
            Value::Null,
            Value::String("request has no method".to_string()),
        )
    } else {
        // Commands may block (e.g. waiting for the datapath); keep
        // them off the async workers.
        let reg = reg.clone();
        let format = *format;
        let m = method.to_string();
        tokio::task::spawn_blocking(move || reg.dispatch(&m, &args, format))
            .await
            .unwrap_or((Value::Null, Value::String("command panicked".into())))
    };
    json!({"id": id, "result": result, "error": error})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let r = Registry::default();
        r.register(
            "echo/args",
            "ARG...",
            1,
            3,
            Arc::new(|args, fmt| match fmt {
                Format::Text => Ok(Reply::Text(args.join(" "))),
                Format::Json => Ok(Reply::Json(json!(args))),
            }),
        );
        r
    }

    #[test]
    fn dispatch_checks_argument_counts() {
        let r = registry();
        let (_, e) = r.dispatch("echo/args", &[], Format::Text);
        assert!(e.as_str().unwrap().contains("at least 1"));
        let four: Vec<String> = (0..4).map(|i| i.to_string()).collect();
        let (_, e) = r.dispatch("echo/args", &four, Format::Text);
        assert!(e.as_str().unwrap().contains("at most 3"));
    }

    #[test]
    fn unknown_command_is_an_error_naming_it() {
        let (res, e) = registry().dispatch("no/such", &[], Format::Text);
        assert!(res.is_null());
        assert!(
            e.as_str()
                .unwrap()
                .contains("\"no/such\" is not a valid command")
        );
    }

    #[test]
    fn json_format_returns_structured_results() {
        let args = vec!["a".to_string(), "b".to_string()];
        let (res, e) = registry().dispatch("echo/args", &args, Format::Json);
        assert!(e.is_null());
        assert_eq!(res, json!(["a", "b"]));
    }

    /// Serves `registry()` on a socket in a fresh directory.
    async fn start_server() -> (
        tempfile::TempDir,
        std::path::PathBuf,
        tokio::task::JoinHandle<()>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.ctl");
        let p2 = path.clone();
        let reg = registry();
        let server = tokio::spawn(async move {
            let _ = serve(&p2, reg).await;
        });
        for _ in 0..100 {
            if path.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        (dir, path, server)
    }

    /// Reads `n` replies from `s`.
    async fn replies(s: &mut UnixStream, n: usize) -> Vec<Value> {
        let mut d = Decoder::new();
        let mut v = Vec::new();
        let mut chunk = [0u8; 1024];
        while v.len() < n {
            match d.next_value().unwrap() {
                Some(x) => v.push(x),
                None => {
                    let got = s.read(&mut chunk).await.unwrap();
                    assert!(got > 0, "connection closed after {} replies", v.len());
                    d.feed(&chunk[..got]);
                }
            }
        }
        v
    }

    #[tokio::test]
    async fn socket_round_trip_with_set_options() {
        let (_dir, path, server) = start_server().await;
        let mut s = UnixStream::connect(&path).await.unwrap();
        // Split mid-message: the server must join the pieces.
        s.write_all(
            br#"{"id":1,"method":"set-options","params":["--format","json"]}{"id":2,"method":"ec"#,
        )
        .await
        .unwrap();
        s.write_all(br#"ho/args","params":["x"]}"#).await.unwrap();
        let v = replies(&mut s, 2).await;
        assert_eq!(v[1]["id"], json!(2));
        assert_eq!(v[1]["result"], json!(["x"]));
        server.abort();
    }

    #[tokio::test]
    async fn malformed_request_gets_an_error_and_only_its_connection_closes() {
        let (_dir, path, server) = start_server().await;
        let mut other = UnixStream::connect(&path).await.unwrap();
        let mut bad = UnixStream::connect(&path).await.unwrap();
        bad.write_all(b"{\"id\":1,\"method\": nonsense}")
            .await
            .unwrap();
        let mut got = Vec::new();
        bad.read_to_end(&mut got).await.unwrap();
        let reply: Value = serde_json::from_slice(&got).unwrap();
        let err = reply["error"].as_str().unwrap();
        assert!(err.starts_with("request rejected: syntax error"), "{err}");
        other
            .write_all(br#"{"id":5,"method":"echo/args","params":["still"]}"#)
            .await
            .unwrap();
        assert_eq!(replies(&mut other, 1).await[0]["result"], json!("still"));
        server.abort();
    }
}
