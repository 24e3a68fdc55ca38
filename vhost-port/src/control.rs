//! The control thread of a port: accepts (server) or establishes (client)
//! frontend connections, runs the request handler on each, and publishes
//! the resulting session to the PMD threads.

use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vhost::vhost_user::{BackendReqHandler, Error as VuError};

use crate::handler::NetHandler;
use crate::port::PortShared;
use crate::sockfile::{OwnedSocket, check_socket_or_absent};

/// The live connection, for shutting it down from the port handle.
#[derive(Default)]
pub struct ConnCtl {
    pub conn: Mutex<Option<UnixStream>>,
}

impl ConnCtl {
    pub fn shutdown(&self) {
        if let Some(s) = self.conn.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn is_disconnect(e: &VuError) -> bool {
    matches!(
        e,
        VuError::Disconnected | VuError::PartialMessage | VuError::SocketBroken(_)
    )
}

/// Runs the vhost-user protocol on `stream` until the frontend goes away.
fn run_session(shared: &PortShared, stream: UnixStream) {
    let (handler, session) = match NetHandler::new(
        shared.opts.features,
        shared.n_pairs,
        shared.opts.mac,
        shared.opts.mtu,
    ) {
        Ok(h) => h,
        Err(msg) => {
            shared.set_error(msg);
            return;
        }
    };
    let handler = Arc::new(Mutex::new(handler));
    let mut req = BackendReqHandler::from_stream(stream, handler.clone());
    *shared.ctl.conn.lock().unwrap_or_else(|e| e.into_inner()) = req.try_clone_connection().ok();
    shared.connected.store(true, Ordering::Release);
    shared.slot.publish(Some(session));
    tracing::info!(port = %shared.name, "vhost-user frontend connected");
    let err = loop {
        match req.handle_request() {
            Ok(()) => {}
            // QEMU's virtio-net sends SET_VRING_ENABLE at device reset,
            // before SET_FEATURES acks PROTOCOL_FEATURES; the vhost crate's
            // dispatcher refuses it (without a reply, the message fully
            // read). The connection is kept and the handler applies the
            // enable once features are set.
            Err(VuError::InactiveFeature(f)) => {
                tracing::debug!(port = %shared.name, "early request for unacked feature {f:?}");
                handler
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .note_early_enable();
            }
            Err(e) => break e,
        }
    };
    shared.connected.store(false, Ordering::Release);
    shared.slot.publish(None);
    *shared.ctl.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
    if is_disconnect(&err) || shared.shutdown.load(Ordering::Acquire) {
        tracing::info!(port = %shared.name, "vhost-user frontend disconnected");
    } else {
        let msg = format!("vhost-user frontend dropped: {err}");
        tracing::warn!(port = %shared.name, "{msg}");
        shared.set_error(msg);
    }
}

/// Waits up to `ms` for `fd` to become readable.
fn readable(fd: i32, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `p` is a valid pollfd for the duration of the call and the
    // count passed is 1.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n > 0 && p.revents & libc::POLLIN != 0
}

/// Server mode: accept frontends on `listener` one after the other; the
/// socket file is removed when the port goes away (if it is still ours).
pub fn serve(shared: Arc<PortShared>, listener: UnixListener, socket: OwnedSocket) {
    while !shared.shutdown.load(Ordering::Acquire) {
        if !readable(listener.as_raw_fd(), 100) {
            continue;
        }
        match listener.accept() {
            Ok((stream, _)) => run_session(&shared, stream),
            Err(e) => {
                shared.set_error(format!("accepting vhost-user connection failed: {e}"));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    socket.remove();
}

/// Client mode: connect to `path`, reconnecting with backoff for as long as
/// the port exists.
pub fn connect_loop(shared: Arc<PortShared>, path: PathBuf) {
    let mut backoff = Duration::from_millis(50);
    let mut reported = false;
    let mut not_a_socket = false;
    while !shared.shutdown.load(Ordering::Acquire) {
        match UnixStream::connect(&path) {
            Ok(stream) => {
                backoff = Duration::from_millis(50);
                reported = false;
                if std::mem::take(&mut not_a_socket) {
                    shared.clear_error();
                }
                run_session(&shared, stream);
            }
            Err(e) => {
                // A server that is not up yet is normal; a path that holds
                // something other than a socket never becomes one by itself.
                match check_socket_or_absent(&path) {
                    Err(bad) if !not_a_socket => {
                        let msg = format!("vhost-server-path: {bad}");
                        tracing::warn!(port = %shared.name, "{msg}");
                        shared.set_error(msg);
                        not_a_socket = true;
                    }
                    Ok(()) if not_a_socket => {
                        shared.clear_error();
                        not_a_socket = false;
                    }
                    _ => {}
                }
                if !reported {
                    tracing::info!(port = %shared.name, path = %path.display(), "vhost-user server not reachable, retrying: {e}");
                    reported = true;
                }
                sleep_unless_shutdown(&shared, backoff);
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

fn sleep_unless_shutdown(shared: &PortShared, d: Duration) {
    let step = Duration::from_millis(20);
    let mut left = d;
    while !left.is_zero() && !shared.shutdown.load(Ordering::Acquire) {
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
}
