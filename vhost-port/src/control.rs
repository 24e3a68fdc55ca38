//! The control thread of a port: accepts (server) or establishes (client)
//! frontend connections, runs vhost-user-backend's request handler on each,
//! and publishes the resulting session to the PMD threads.

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vhost::vhost_user::{Error as VuError, Listener};
use vhost_user_backend::{Error as DaemonError, ShutdownHandle, VhostUserDaemon};
use vm_memory::GuestMemoryAtomic;

use crate::backend::NetBackend;
use crate::port::PortShared;
use crate::ring::GuestMem;
use crate::session::Session;

/// Connection handling shared with the port handle (for shutdown).
#[derive(Default)]
pub struct ConnCtl {
    pub conn: Mutex<Option<ShutdownHandle>>,
}

fn new_daemon(shared: &PortShared) -> Result<(VhostUserDaemon<NetBackend>, Arc<Session>), String> {
    let mem = GuestMemoryAtomic::new(GuestMem::default());
    let session = Arc::new(Session::new(mem.clone(), 2 * shared.n_pairs));
    let backend = NetBackend::new(
        session.clone(),
        shared.opts.features,
        shared.n_pairs,
        shared.opts.mac,
        shared.opts.mtu,
    );
    // The handler creates its vrings on this thread; collect them.
    let _ = crate::vring::take_created();
    let daemon = VhostUserDaemon::new(shared.name.clone(), backend, mem)
        .map_err(|e| format!("vhost-user backend setup failed: {e}"))?;
    session.set_vrings(crate::vring::take_created());
    Ok((daemon, session))
}

fn is_disconnect(e: &DaemonError) -> bool {
    matches!(
        e,
        DaemonError::HandleRequest(
            VuError::Disconnected | VuError::PartialMessage | VuError::SocketBroken(_)
        )
    )
}

/// Runs one connected session until the frontend goes away.
fn run_session(
    shared: &PortShared,
    mut daemon: VhostUserDaemon<NetBackend>,
    session: Arc<Session>,
) {
    *shared.ctl.conn.lock().unwrap_or_else(|e| e.into_inner()) = daemon.shutdown_handle();
    shared.connected.store(true, Ordering::Release);
    shared.slot.publish(Some(session));
    tracing::info!(port = %shared.name, "vhost-user frontend connected");
    let res = daemon.wait();
    shared.connected.store(false, Ordering::Release);
    shared.slot.publish(None);
    *shared.ctl.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
    for h in daemon.get_epoll_handlers() {
        h.send_exit_event();
    }
    match res {
        Ok(()) => tracing::info!(port = %shared.name, "vhost-user frontend disconnected"),
        Err(e) if is_disconnect(&e) => {
            tracing::info!(port = %shared.name, "vhost-user frontend disconnected")
        }
        Err(e) => {
            let msg = format!("vhost-user frontend dropped: {e}");
            tracing::warn!(port = %shared.name, "{msg}");
            shared.set_error(msg);
        }
    }
}

/// Waits up to `ms` for the listener to have a pending connection.
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

/// Server mode: accept frontends on `listener` one after the other.
pub fn serve(shared: Arc<PortShared>, mut listener: Listener) {
    while !shared.shutdown.load(Ordering::Acquire) {
        if !readable(listener.as_raw_fd(), 100) {
            continue;
        }
        let (mut daemon, session) = match new_daemon(&shared) {
            Ok(d) => d,
            Err(msg) => {
                shared.set_error(msg);
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if let Err(e) = daemon.start(&mut listener) {
            shared.set_error(format!("accepting vhost-user connection failed: {e}"));
            continue;
        }
        run_session(&shared, daemon, session);
    }
}

/// Client mode: connect to `path`, reconnecting with backoff for as long as
/// the port exists.
pub fn connect_loop(shared: Arc<PortShared>, path: String) {
    let mut backoff = Duration::from_millis(50);
    let mut reported = false;
    while !shared.shutdown.load(Ordering::Acquire) {
        let (mut daemon, session) = match new_daemon(&shared) {
            Ok(d) => d,
            Err(msg) => {
                shared.set_error(msg);
                sleep_unless_shutdown(&shared, Duration::from_secs(1));
                continue;
            }
        };
        match daemon.start_client(&path) {
            Ok(()) => {
                backoff = Duration::from_millis(50);
                reported = false;
                run_session(&shared, daemon, session);
            }
            Err(e) => {
                if !reported {
                    tracing::info!(port = %shared.name, path, "vhost-user server not reachable, retrying: {e}");
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
