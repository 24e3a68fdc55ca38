//! The vhost-user frontend of one virtio-net device: the launcher hands the
//! switch (or any vhost-user backend) the guest memory and the rings, and
//! from then on the backend moves packets on its own, kicked through KVM
//! ioeventfds and interrupting the guest through irqfds.
//!
//! The connection survives the backend going away. A supervisor thread per
//! device watches the socket; when the backend disappears the guest sees its
//! link go down (VIRTIO_NET_S_LINK_UP cleared, config-change interrupt), and
//! when a backend is back — the launcher listening and the switch connecting
//! again ([`Endpoint::Listen`], `dpdkvhostuserclient`), or the launcher
//! reconnecting with backoff ([`Endpoint::Connect`]) — the frontend replays
//! the features, the memory table and every running ring (size, addresses,
//! the base taken from the used index in guest memory, kick and call
//! eventfds) and the link comes up again. The guest driver is never reset.

use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VringConfigData};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::EventFd;

use super::virtio_mmio::{NUM_QUEUES, QUEUE_MAX, QueueConfig, VirtioBackend, features};
use crate::error::VmmError;
use crate::memory::GuestRam;

/// Device feature bits passed through from the backend to the driver.
const PASSTHROUGH: u64 = features::F_VERSION_1
    | features::NET_F_CSUM
    | features::NET_F_GUEST_CSUM
    | features::NET_F_GUEST_TSO4
    | features::NET_F_GUEST_TSO6
    | features::NET_F_GUEST_ECN
    | features::NET_F_GUEST_UFO
    | features::NET_F_HOST_TSO4
    | features::NET_F_HOST_TSO6
    | features::NET_F_HOST_ECN
    | features::NET_F_HOST_UFO
    | features::NET_F_MRG_RXBUF
    | features::F_NOTIFY_ON_EMPTY
    | features::F_ANY_LAYOUT
    | features::RING_F_INDIRECT_DESC
    | features::RING_F_EVENT_IDX;

/// First and longest wait between two connection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// How often the supervisor looks at its stop flag.
const WATCH_TICK: Duration = Duration::from_millis(100);

/// Protocol features the frontend uses when the backend has them.
fn wanted_protocol() -> VhostUserProtocolFeatures {
    VhostUserProtocolFeatures::REPLY_ACK
}

/// Who opens the vhost-user connection.
pub enum Endpoint {
    /// The backend listens at this path (`dpdkvhostuser`, testpmd); the
    /// launcher connects, and reconnects with backoff.
    Connect(PathBuf),
    /// The launcher listens (QEMU's `server=on`); the backend
    /// (`dpdkvhostuserclient`) connects and reconnects.
    Listen(UnixListener, PathBuf),
}

impl Endpoint {
    fn path(&self) -> &Path {
        match self {
            Endpoint::Connect(p) | Endpoint::Listen(_, p) => p,
        }
    }
}

/// One live connection.
struct Conn {
    frontend: Frontend,
    /// A second handle on the socket, polled for hang-up.
    watch: UnixStream,
    protocol_features: bool,
}

/// What the driver configured (replayed on every connection).
#[derive(Clone)]
struct Running {
    acked: u64,
    queues: Vec<QueueConfig>,
}

#[derive(Default)]
struct State {
    conn: Option<Conn>,
    running: Option<Running>,
}

struct Shared {
    socket: PathBuf,
    backend_features: u64,
    ram: Arc<GuestRam>,
    kicks: Vec<EventFd>,
    calls: Vec<EventFd>,
    config_irq: EventFd,
    state: Mutex<State>,
    link_up: AtomicBool,
    /// Bumped on every link change (the transport raises a config interrupt).
    config_events: AtomicU32,
    reconnects: AtomicU32,
    stop: AtomicBool,
}

/// A vhost-user net backend, connected or (for a while) reconnecting.
pub struct VhostUserNet {
    shared: Arc<Shared>,
    supervisor: Option<JoinHandle<()>>,
}

fn vu_err(path: &Path) -> impl Fn(vhost::Error) -> VmmError + '_ {
    move |e| VmmError::VhostUser {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// SET_OWNER and the feature handshake on a fresh connection.
fn handshake(stream: UnixStream, socket: &Path) -> Result<(Conn, u64), VmmError> {
    let watch = stream.try_clone()?;
    let mut frontend = Frontend::from_stream(stream, NUM_QUEUES as u64);
    let err = vu_err(socket);
    frontend.set_owner().map_err(&err)?;
    let backend_features = frontend.get_features().map_err(&err)?;
    if backend_features & features::F_VERSION_1 == 0 {
        return Err(VmmError::VhostUser {
            path: socket.to_path_buf(),
            reason: "backend does not offer VIRTIO_F_VERSION_1".into(),
        });
    }
    let protocol_features =
        backend_features & VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits() != 0;
    if protocol_features {
        let offered = frontend.get_protocol_features().map_err(&err)?;
        frontend
            .set_protocol_features(offered & wanted_protocol())
            .map_err(&err)?;
        // No GET_QUEUE_NUM: one queue pair is all this device uses, and
        // the vhost crate's frontend would take the answer (a count of
        // queue *pairs*, as QEMU and DPDK read it) as its limit on vring
        // indexes, refusing vring 1.
    }
    Ok((
        Conn {
            frontend,
            watch,
            protocol_features,
        },
        backend_features,
    ))
}

/// Waits up to `timeout` for a backend to connect to `listener`.
fn accept_within(
    listener: &UnixListener,
    timeout: Duration,
) -> std::io::Result<Option<UnixStream>> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return if e.kind() == std::io::ErrorKind::Interrupted {
            Ok(None)
        } else {
            Err(e)
        };
    }
    if n == 0 {
        return Ok(None);
    }
    match listener.accept() {
        Ok((s, _)) => {
            s.set_nonblocking(false)?;
            Ok(Some(s))
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// True when the peer of `s` hung up (checked for up to `timeout`).
fn hung_up(s: &UnixStream, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
    n > 0 && pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

impl VhostUserNet {
    /// Connects to (or, listening, waits up to `wait` for) the backend,
    /// negotiates what can be negotiated before the guest driver shows up,
    /// and starts the supervisor that reconnects when the backend goes away.
    /// `config_irq` is signalled on every link change.
    pub fn new(
        endpoint: Endpoint,
        wait: Duration,
        ram: Arc<GuestRam>,
        kicks: Vec<EventFd>,
        calls: Vec<EventFd>,
        config_irq: EventFd,
    ) -> Result<VhostUserNet, VmmError> {
        let socket = endpoint.path().to_path_buf();
        let stream = match &endpoint {
            Endpoint::Connect(p) => {
                if !p.exists() {
                    return Err(VmmError::VhostUser {
                        path: p.clone(),
                        reason: "no such socket (is the switch or backend running?)".into(),
                    });
                }
                UnixStream::connect(p).map_err(|e| VmmError::VhostUser {
                    path: p.clone(),
                    reason: format!("connection refused or failed: {e}"),
                })?
            }
            Endpoint::Listen(l, p) => {
                l.set_nonblocking(true)?;
                accept_within(l, wait)?.ok_or_else(|| VmmError::VhostUser {
                    path: p.clone(),
                    reason: format!(
                        "no vhost-user backend connected within {} s (is ferrovs-vswitchd running?)",
                        wait.as_secs()
                    ),
                })?
            }
        };
        let (conn, backend_features) = handshake(stream, &socket)?;
        tracing::info!(
            socket = %socket.display(),
            features = format_args!("{backend_features:#x}"),
            "vhost-user backend connected"
        );
        let shared = Arc::new(Shared {
            socket,
            backend_features,
            ram,
            kicks,
            calls,
            config_irq,
            state: Mutex::new(State {
                conn: Some(conn),
                running: None,
            }),
            link_up: AtomicBool::new(true),
            config_events: AtomicU32::new(0),
            reconnects: AtomicU32::new(0),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let supervisor = std::thread::Builder::new()
            .name("vhost-user-net".into())
            .spawn(move || supervise(&s, endpoint))?;
        Ok(VhostUserNet {
            shared,
            supervisor: Some(supervisor),
        })
    }

    pub fn socket(&self) -> &Path {
        &self.shared.socket
    }

    /// Whether a backend is connected now.
    pub fn connected(&self) -> bool {
        self.shared.link_up.load(Ordering::Acquire)
    }

    /// A handle on the link state for `info`.
    pub fn status(&self) -> NicStatus {
        NicStatus(self.shared.clone())
    }

    /// How many times a lost backend was replaced.
    pub fn reconnects(&self) -> u32 {
        self.shared.reconnects.load(Ordering::Acquire)
    }
}

/// A NIC's link state and reconnect count, readable while the VM runs.
#[derive(Clone)]
pub struct NicStatus(Arc<Shared>);

impl NicStatus {
    pub fn link_up(&self) -> bool {
        self.0.link_up.load(Ordering::Acquire)
    }
    pub fn reconnects(&self) -> u32 {
        self.0.reconnects.load(Ordering::Acquire)
    }
    pub fn socket(&self) -> &Path {
        &self.0.socket
    }
}

impl Drop for VhostUserNet {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.supervisor.take() {
            let _ = t.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_link(&self, up: bool) {
        if self.link_up.swap(up, Ordering::AcqRel) != up {
            self.config_events.fetch_add(1, Ordering::AcqRel);
            let _ = self.config_irq.write(1);
            tracing::warn!(socket = %self.socket.display(), "virtio-net link {}", if up { "up" } else { "down" });
        }
    }

    /// Sends the driver's configuration to the backend; `replay` takes each
    /// ring's base from the used index in guest memory (a reconnect), else 0.
    fn start(&self, conn: &mut Conn, run: &Running, replay: bool) -> Result<(), VmmError> {
        let socket = &self.socket;
        let err = vu_err(socket);
        let mut to_backend = run.acked & self.backend_features;
        if conn.protocol_features {
            to_backend |= VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        }
        let fe = &mut conn.frontend;
        fe.set_features(to_backend).map_err(&err)?;
        let regions = self.ram.vhost_regions()?;
        fe.set_mem_table(&regions).map_err(&err)?;
        for (i, q) in run.queues.iter().enumerate() {
            if !q.ready || q.size == 0 {
                continue;
            }
            let size = u64::from(q.size);
            let hva = |gpa: u64, len: u64, what: &str| {
                self.ram
                    .host_address(gpa, len)
                    .ok_or_else(|| VmmError::VhostUser {
                        path: socket.clone(),
                        reason: format!("queue {i} {what} at {gpa:#x} is outside guest RAM"),
                    })
            };
            let config = VringConfigData {
                queue_max_size: QUEUE_MAX,
                queue_size: q.size,
                flags: 0,
                desc_table_addr: hva(q.desc, 16 * size, "descriptor table")?,
                used_ring_addr: hva(q.used, 6 + 8 * size, "used ring")?,
                avail_ring_addr: hva(q.avail, 6 + 2 * size, "available ring")?,
                log_addr: None,
            };
            let base = if replay {
                // Everything the old backend completed is in the used ring;
                // what it had taken but not completed is redone.
                self.ram
                    .mem
                    .read_obj::<u16>(GuestAddress(q.used + 2))
                    .map_err(|e| VmmError::GuestMemoryAccess(e.to_string()))?
            } else {
                0
            };
            fe.set_vring_num(i, q.size).map_err(&err)?;
            fe.set_vring_base(i, base).map_err(&err)?;
            fe.set_vring_addr(i, &config).map_err(&err)?;
            fe.set_vring_kick(i, &self.kicks[i]).map_err(&err)?;
            fe.set_vring_call(i, &self.calls[i]).map_err(&err)?;
            if conn.protocol_features {
                fe.set_vring_enable(i, true).map_err(&err)?;
            }
            if replay {
                // Wake the backend for work queued while it was away, and
                // the driver for anything it missed.
                let _ = self.kicks[i].write(1);
            }
        }
        tracing::info!(socket = %socket.display(), features = format_args!("{to_backend:#x}"), replay, "virtio-net queues started");
        Ok(())
    }
}

/// Drops the connection after the backend went away.
fn lose(shared: &Shared, why: &str) {
    let mut st = shared.lock();
    if st.conn.take().is_some() {
        tracing::warn!(socket = %shared.socket.display(), "vhost-user backend lost: {why}");
    }
    drop(st);
    shared.set_link(false);
}

/// Watches the connection; replaces it whenever the backend goes away.
fn supervise(shared: &Shared, endpoint: Endpoint) {
    let mut backoff = BACKOFF_MIN;
    // Separate from the connect backoff: the first failed handshake (a
    // backend still starting) costs little.
    let mut handshake_backoff = BACKOFF_MIN;
    while !shared.stop.load(Ordering::Acquire) {
        let watch = shared
            .lock()
            .conn
            .as_ref()
            .and_then(|c| c.watch.try_clone().ok());
        if let Some(w) = watch {
            if hung_up(&w, WATCH_TICK) {
                lose(shared, "connection closed");
            }
            continue;
        }
        // Disconnected: get a new stream.
        let stream = match &endpoint {
            Endpoint::Listen(l, _) => match accept_within(l, WATCH_TICK) {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!("accept on {}: {e}", shared.socket.display());
                    std::thread::sleep(WATCH_TICK);
                    continue;
                }
            },
            Endpoint::Connect(p) => match UnixStream::connect(p) {
                Ok(s) => s,
                Err(_) => {
                    let until = Instant::now() + backoff;
                    while Instant::now() < until && !shared.stop.load(Ordering::Acquire) {
                        std::thread::sleep(BACKOFF_MIN.min(until - Instant::now()));
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        match reconnect(shared, stream) {
            Ok(()) => {
                backoff = BACKOFF_MIN;
                handshake_backoff = BACKOFF_MIN;
                shared.reconnects.fetch_add(1, Ordering::AcqRel);
                shared.set_link(true);
            }
            Err(e) => {
                tracing::warn!(socket = %shared.socket.display(), "vhost-user reconnect failed: {e}");
                // A backend that keeps failing the handshake is not retried
                // in a tight loop.
                std::thread::sleep(handshake_backoff);
                handshake_backoff = (handshake_backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

fn reconnect(shared: &Shared, stream: UnixStream) -> Result<(), VmmError> {
    let (mut conn, features) = handshake(stream, &shared.socket)?;
    let mut st = shared.lock();
    if let Some(run) = st.running.clone() {
        let missing = run.acked & PASSTHROUGH & !features;
        if missing != 0 {
            return Err(VmmError::VhostUser {
                path: shared.socket.clone(),
                reason: format!(
                    "the new backend lacks features the driver uses ({missing:#x}); link stays down"
                ),
            });
        }
        shared.start(&mut conn, &run, true)?;
    }
    st.conn = Some(conn);
    tracing::info!(socket = %shared.socket.display(), "vhost-user backend reconnected");
    Ok(())
}

impl VirtioBackend for VhostUserNet {
    fn device_features(&self) -> u64 {
        self.shared.backend_features & PASSTHROUGH
    }

    fn activate(&mut self, acked: u64, queues: &[QueueConfig]) -> Result<(), String> {
        let run = Running {
            acked,
            queues: queues.to_vec(),
        };
        let mut st = self.shared.lock();
        st.running = Some(run.clone());
        let Some(conn) = st.conn.as_mut() else {
            // Started when a backend (re)connects; the link is down.
            return Ok(());
        };
        match self.shared.start(conn, &run, false) {
            Ok(()) => Ok(()),
            Err(e) => {
                // A backend that died mid-start: the supervisor reconnects.
                if hung_up(&conn.watch, Duration::ZERO) {
                    st.conn = None;
                    drop(st);
                    self.shared.set_link(false);
                    return Ok(());
                }
                st.running = None;
                Err(e.to_string())
            }
        }
    }

    fn reset(&mut self) {
        let mut st = self.shared.lock();
        st.running = None;
        if let Some(conn) = st.conn.as_mut() {
            for i in 0..NUM_QUEUES {
                if conn.protocol_features {
                    let _ = conn.frontend.set_vring_enable(i, false);
                }
                // GET_VRING_BASE stops the ring in the backend.
                let _ = conn.frontend.get_vring_base(i);
            }
        }
    }

    fn notify(&self, queue: u16) {
        if let Some(k) = self.shared.kicks.get(usize::from(queue)) {
            let _ = k.write(1);
        }
    }

    fn link_up(&self) -> bool {
        self.shared.link_up.load(Ordering::Acquire)
    }

    fn config_events(&self) -> u32 {
        self.shared.config_events.load(Ordering::Acquire)
    }
}
