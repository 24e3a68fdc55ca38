//! The control socket of a running launcher (`$FERROVS_RUNDIR/vms/NAME/
//! control.sock`): one JSON request per connection (`pause`, `resume`,
//! `reboot`, `info`), one JSON reply. What the lifecycle verbs of the CLI
//! talk to.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::vm::RunState;

/// A request to the launcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    Pause,
    Resume,
    Reboot,
    Info,
}

/// What the launcher knows about its running VM.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LiveInfo {
    pub state: RunState,
    pub uptime_secs: u64,
    pub nics: Vec<NicLive>,
    pub disks: Vec<DiskLive>,
}

/// A NIC as the launcher sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NicLive {
    pub socket: PathBuf,
    pub link_up: bool,
    pub reconnects: u32,
}

/// A disk's request counters.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DiskLive {
    pub reads: u64,
    pub writes: u64,
    pub flushes: u64,
    pub discards: u64,
    pub errors: u64,
}

/// The answer: an error (worded to follow "domain 'NAME' ") or the info.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<LiveInfo>,
}

/// Control-socket client errors.
#[derive(Debug, thiserror::Error)]
pub enum ControlClientError {
    #[error("cannot reach the launcher at {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("launcher at {path} gave no valid answer: {reason}")]
    Protocol { path: PathBuf, reason: String },
}

/// Binds the control socket at `path` (replacing a stale one). The
/// launcher binds it before its vCPUs start, so a VM whose guest already
/// runs always has a socket to control it; a client that connects before
/// [`serve`] starts answering waits in the listen queue.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path)
}

/// Answers the requests that arrive on `listener` from a thread; `handle`
/// answers each request.
pub fn serve(
    listener: UnixListener,
    handle: Arc<dyn Fn(Request) -> Reply + Send + Sync>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let handle = handle.clone();
                // A reboot may take a moment: answer each client on its own.
                let _ = std::thread::Builder::new()
                    .name("control-conn".into())
                    .spawn(move || answer(conn, &*handle));
            }
        })?;
    Ok(())
}

fn answer(conn: UnixStream, handle: &(dyn Fn(Request) -> Reply + Send + Sync)) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let Ok(read) = conn.try_clone() else { return };
    if BufReader::new(read).read_line(&mut line).is_err() {
        return;
    }
    let reply = match serde_json::from_str::<Request>(line.trim()) {
        Ok(req) => handle(req),
        Err(e) => Reply {
            error: Some(format!("bad request: {e}")),
            info: None,
        },
    };
    let mut conn = conn;
    if let Ok(mut s) = serde_json::to_string(&reply) {
        s.push('\n');
        let _ = conn.write_all(s.as_bytes());
    }
}

/// Sends one request to the launcher listening at `path`.
pub fn request(path: &Path, req: Request) -> Result<Reply, ControlClientError> {
    let mut s = UnixStream::connect(path).map_err(|source| ControlClientError::Connect {
        path: path.to_path_buf(),
        source,
    })?;
    let proto = |reason: String| ControlClientError::Protocol {
        path: path.to_path_buf(),
        reason,
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut line = serde_json::to_string(&req).map_err(|e| proto(e.to_string()))?;
    line.push('\n');
    s.write_all(line.as_bytes())
        .map_err(|e| proto(e.to_string()))?;
    let mut out = String::new();
    BufReader::new(s)
        .read_line(&mut out)
        .map_err(|e| proto(e.to_string()))?;
    serde_json::from_str(out.trim()).map_err(|e| proto(format!("{e}: {out:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_sent_after_bind_is_answered_once_serving_starts() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("control.sock");
        let listener = bind(&p).unwrap();
        // A client that finds the socket before the launcher serves it
        // (its vCPUs are still starting) is queued, not refused.
        let mut early = UnixStream::connect(&p).expect("queued by the bound socket");
        let line = serde_json::to_string(&Request::Info).unwrap() + "\n";
        early.write_all(line.as_bytes()).unwrap();
        serve(
            listener,
            Arc::new(|_| Reply {
                error: None,
                info: Some(LiveInfo {
                    state: RunState::Paused,
                    uptime_secs: 0,
                    nics: vec![],
                    disks: vec![],
                }),
            }),
        )
        .unwrap();
        early
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut out = String::new();
        BufReader::new(&mut early).read_line(&mut out).unwrap();
        let r: Reply = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(r.info.unwrap().state, RunState::Paused);
    }

    #[test]
    fn requests_round_trip_through_the_socket() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("control.sock");
        serve(
            bind(&p).unwrap(),
            Arc::new(|r: Request| match r {
                Request::Pause => Reply {
                    error: Some("is already paused".into()),
                    info: None,
                },
                _ => Reply {
                    error: None,
                    info: Some(LiveInfo {
                        state: RunState::Running,
                        uptime_secs: 7,
                        nics: vec![],
                        disks: vec![DiskLive::default()],
                    }),
                },
            }),
        )
        .unwrap();
        let r = request(&p, Request::Pause).unwrap();
        assert_eq!(r.error.as_deref(), Some("is already paused"));
        let r = request(&p, Request::Info).unwrap();
        let info = r.info.unwrap();
        assert_eq!(
            (info.state, info.uptime_secs, info.disks.len()),
            (RunState::Running, 7, 1)
        );
        assert_eq!(
            serde_json::to_string(&Request::Reboot).unwrap(),
            r#"{"cmd":"reboot"}"#
        );
    }
}
