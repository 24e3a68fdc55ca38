//! The vhost-user frontend of one virtio-net device: the launcher hands the
//! switch (or any vhost-user backend) the guest memory and the rings, and
//! from then on the backend moves packets on its own, kicked through KVM
//! ioeventfds and interrupting the guest through irqfds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VringConfigData};
use vmm_sys_util::eventfd::EventFd;

use super::virtio_mmio::{NUM_QUEUES, NetBackend, QUEUE_MAX, QueueConfig, features};
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

/// Protocol features the frontend uses when the backend has them.
fn wanted_protocol() -> VhostUserProtocolFeatures {
    VhostUserProtocolFeatures::REPLY_ACK
}

/// A connected vhost-user net backend.
pub struct VhostUserNet {
    frontend: Frontend,
    socket: PathBuf,
    backend_features: u64,
    protocol_features: bool,
    ram: Arc<GuestRam>,
    kicks: Vec<EventFd>,
    calls: Vec<EventFd>,
}

fn vu_err(path: &Path) -> impl Fn(vhost::Error) -> VmmError + '_ {
    move |e| VmmError::VhostUser {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

impl VhostUserNet {
    /// Connects to the backend listening on `socket` and negotiates what
    /// can be negotiated before the guest driver shows up.
    pub fn connect(
        socket: &Path,
        ram: Arc<GuestRam>,
        kicks: Vec<EventFd>,
        calls: Vec<EventFd>,
    ) -> Result<VhostUserNet, VmmError> {
        if !socket.exists() {
            return Err(VmmError::VhostUser {
                path: socket.to_path_buf(),
                reason: "no such socket (is the switch or backend running?)".into(),
            });
        }
        let mut frontend =
            Frontend::connect(socket, NUM_QUEUES as u64).map_err(|e| VmmError::VhostUser {
                path: socket.to_path_buf(),
                reason: format!("connection refused or failed: {e}"),
            })?;
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
        tracing::info!(
            socket = %socket.display(),
            features = format_args!("{backend_features:#x}"),
            "vhost-user backend connected"
        );
        Ok(VhostUserNet {
            frontend,
            socket: socket.to_path_buf(),
            backend_features,
            protocol_features,
            ram,
            kicks,
            calls,
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn start(&mut self, acked: u64, queues: &[QueueConfig]) -> Result<(), VmmError> {
        let socket = self.socket.clone();
        let err = vu_err(&socket);
        let mut to_backend = acked & self.backend_features;
        if self.protocol_features {
            to_backend |= VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        }
        self.frontend.set_features(to_backend).map_err(&err)?;
        let regions = self.ram.vhost_regions()?;
        self.frontend.set_mem_table(&regions).map_err(&err)?;
        for (i, q) in queues.iter().enumerate() {
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
            self.frontend.set_vring_num(i, q.size).map_err(&err)?;
            self.frontend.set_vring_base(i, 0).map_err(&err)?;
            self.frontend.set_vring_addr(i, &config).map_err(&err)?;
            self.frontend
                .set_vring_kick(i, &self.kicks[i])
                .map_err(&err)?;
            self.frontend
                .set_vring_call(i, &self.calls[i])
                .map_err(&err)?;
            if self.protocol_features {
                self.frontend.set_vring_enable(i, true).map_err(&err)?;
            }
        }
        tracing::info!(socket = %socket.display(), features = format_args!("{to_backend:#x}"), "virtio-net queues started");
        Ok(())
    }
}

impl NetBackend for VhostUserNet {
    fn device_features(&self) -> u64 {
        self.backend_features & PASSTHROUGH
    }

    fn activate(&mut self, acked: u64, queues: &[QueueConfig]) -> Result<(), String> {
        self.start(acked, queues).map_err(|e| e.to_string())
    }

    fn reset(&mut self) {
        for i in 0..NUM_QUEUES {
            if self.protocol_features {
                let _ = self.frontend.set_vring_enable(i, false);
            }
            // GET_VRING_BASE stops the ring in the backend.
            let _ = self.frontend.get_vring_base(i);
        }
    }

    fn notify(&self, queue: u16) {
        if let Some(k) = self.kicks.get(usize::from(queue)) {
            let _ = k.write(1);
        }
    }
}
