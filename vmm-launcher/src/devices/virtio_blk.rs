//! virtio-blk: a disk image (raw, or qcow2 with an optional backing file)
//! as a virtio block device on either transport.
//!
//! Image formats come from the `imago` crate (its synchronous build: no
//! async runtime), which reads and writes qcow2 including backing chains as
//! `qemu-img create -f qcow2 -b base.img -F raw` makes them. The virtqueue
//! is rust-vmm's `virtio-queue`. Requests run on one I/O thread per disk,
//! woken by the queue's kick eventfd (a KVM ioeventfd) and completing
//! through the call eventfd (a KVM irqfd): a vCPU thread never waits for
//! the host disk.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use imago::file::File as ImagoFile;
use imago::qcow2::Qcow2;
use imago::raw::Raw;
use imago::{FormatAccess, FormatDriverBuilder, PermissiveImplicitOpenGate};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::EventFd;

use super::virtio_mmio::{QueueConfig, VirtioBackend, features};
use crate::memory::GuestRam;

/// Virtio device id of a block device.
pub const VIRTIO_ID_BLOCK: u32 = 2;
/// Bytes per sector in the virtio-blk protocol.
pub const SECTOR: u64 = 512;
/// Length of a GET_ID answer.
pub const ID_BYTES: usize = 20;

/// Feature bits.
pub mod blk_features {
    pub const SEG_MAX: u64 = 1 << 2;
    pub const RO: u64 = 1 << 5;
    pub const BLK_SIZE: u64 = 1 << 6;
    pub const FLUSH: u64 = 1 << 9;
    pub const DISCARD: u64 = 1 << 13;
}

/// Request types.
pub mod req {
    pub const IN: u32 = 0;
    pub const OUT: u32 = 1;
    pub const FLUSH: u32 = 4;
    pub const GET_ID: u32 = 8;
    pub const DISCARD: u32 = 11;
}

/// Request status.
pub mod status {
    pub const OK: u8 = 0;
    pub const IOERR: u8 = 1;
    pub const UNSUPP: u8 = 2;
}

const SEG_MAX: u32 = 126;
const MAX_DISCARD_SECTORS: u32 = 1 << 22;
const MAX_DISCARD_SEG: u32 = 1;

/// Image format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Raw,
    Qcow2,
}

impl std::fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
        })
    }
}

/// Disk image errors (all found before the VM starts).
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("disk {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("disk {path}: not a valid {format} image: {reason}")]
    BadImage {
        path: PathBuf,
        format: ImageFormat,
        reason: String,
    },
    #[error(
        "disk {path}: the file is a qcow2 image; say format=qcow2 (or format=raw to expose the file itself)"
    )]
    LooksLikeQcow2 { path: PathBuf },
}

const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";

/// An open disk image.
pub struct Image {
    access: FormatAccess<ImagoFile>,
    pub path: PathBuf,
    pub format: ImageFormat,
    pub readonly: bool,
}

impl Image {
    /// Opens `path` as `format`; `None` means raw, refused when the file
    /// carries the qcow2 magic (a guest must not be able to turn a raw disk
    /// into an image with a backing file of its choice).
    pub fn open(
        path: &Path,
        format: Option<ImageFormat>,
        readonly: bool,
    ) -> Result<Image, DiskError> {
        let open_err = |source| DiskError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut magic = [0u8; 4];
        {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(open_err)?;
            let _ = f.read(&mut magic).map_err(open_err)?;
        }
        let format = match format {
            Some(f) => f,
            None if magic == QCOW2_MAGIC => {
                return Err(DiskError::LooksLikeQcow2 {
                    path: path.to_path_buf(),
                });
            }
            None => ImageFormat::Raw,
        };
        let bad = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::NotFound
                || e.kind() == std::io::ErrorKind::PermissionDenied
            {
                DiskError::Open {
                    path: path.to_path_buf(),
                    source: e,
                }
            } else {
                DiskError::BadImage {
                    path: path.to_path_buf(),
                    format,
                    reason: e.to_string(),
                }
            }
        };
        let access = match format {
            ImageFormat::Raw => FormatAccess::new(
                Raw::<ImagoFile>::builder_path(path)
                    .write(!readonly)
                    .open(PermissiveImplicitOpenGate::default())
                    .map_err(bad)?,
            ),
            ImageFormat::Qcow2 => {
                if magic != QCOW2_MAGIC {
                    return Err(DiskError::BadImage {
                        path: path.to_path_buf(),
                        format,
                        reason: "no qcow2 magic (QFI\\xfb) at the start of the file".into(),
                    });
                }
                FormatAccess::new(
                    Qcow2::<ImagoFile>::builder_path(path)
                        .write(!readonly)
                        .open(PermissiveImplicitOpenGate::default())
                        .map_err(bad)?,
                )
            }
        };
        Ok(Image {
            access,
            path: path.to_path_buf(),
            format,
            readonly,
        })
    }

    /// Guest-visible size in bytes.
    pub fn size(&self) -> u64 {
        self.access.size()
    }

    fn read(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.access.read(buf, offset)
    }

    fn write(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.access.write(buf, offset)
    }

    fn flush(&self) -> std::io::Result<()> {
        self.access.flush()?;
        self.access.sync()
    }

    fn discard(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        self.access.discard_to_any(offset, len)
    }
}

/// I/O counters, readable while the VM runs.
#[derive(Default)]
pub struct BlkStats {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub flushes: AtomicU64,
    pub discards: AtomicU64,
    pub errors: AtomicU64,
}

/// What the device model asks of its I/O thread.
enum Cmd {
    /// The driver set DRIVER_OK: serve this queue.
    Start(Box<Queue>),
    /// The driver reset the device: forget the queue, flush the image.
    Stop,
    /// The VM is going away.
    Exit,
}

/// The virtio-blk device model. Its I/O thread owns the image and the
/// queue; the vCPU thread (register writes) only sends it commands.
pub struct BlkDevice {
    serial: String,
    ram: Arc<GuestRam>,
    kick: Arc<EventFd>,
    capacity_sectors: u64,
    readonly: bool,
    stats: Arc<BlkStats>,
    cmds: Sender<Cmd>,
    wake: EventFd,
    thread: Option<JoinHandle<()>>,
}

impl BlkDevice {
    pub fn new(
        image: Image,
        serial: &str,
        ram: Arc<GuestRam>,
        kick: EventFd,
        call: EventFd,
    ) -> std::io::Result<BlkDevice> {
        let capacity_sectors = image.size() / SECTOR;
        let readonly = image.readonly;
        let serial: String = serial.chars().take(ID_BYTES).collect();
        let stats: Arc<BlkStats> = Arc::default();
        let kick = Arc::new(kick);
        let wake = EventFd::new(libc::EFD_NONBLOCK)?;
        let (cmds, rx) = channel();
        let mut w = Worker {
            queue: None,
            image,
            serial: serial.clone(),
            ram: ram.clone(),
            kick: kick.clone(),
            call,
            wake: wake.try_clone()?,
            cmds: rx,
            capacity: capacity_sectors,
            stats: stats.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("virtio-blk".into())
            .spawn(move || w.run())?;
        Ok(BlkDevice {
            serial,
            ram,
            kick,
            capacity_sectors,
            readonly,
            stats,
            cmds,
            wake,
            thread: Some(thread),
        })
    }

    pub fn stats(&self) -> Arc<BlkStats> {
        self.stats.clone()
    }

    /// The serial number GET_ID answers.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    fn send(&self, c: Cmd) {
        let _ = self.cmds.send(c);
        let _ = self.wake.write(1);
    }
}

impl Drop for BlkDevice {
    fn drop(&mut self) {
        self.send(Cmd::Exit);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl VirtioBackend for BlkDevice {
    fn device_id(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn num_queues(&self) -> usize {
        1
    }

    fn config_space(&self) -> Option<Vec<u8>> {
        let mut c = vec![0u8; 60];
        c[0..8].copy_from_slice(&self.capacity_sectors.to_le_bytes());
        c[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        c[20..24].copy_from_slice(&(SECTOR as u32).to_le_bytes());
        c[34..36].copy_from_slice(&1u16.to_le_bytes()); // num_queues
        c[36..40].copy_from_slice(&MAX_DISCARD_SECTORS.to_le_bytes());
        c[40..44].copy_from_slice(&MAX_DISCARD_SEG.to_le_bytes());
        c[44..48].copy_from_slice(&1u32.to_le_bytes()); // discard alignment
        Some(c)
    }

    fn device_features(&self) -> u64 {
        let mut f = features::F_VERSION_1
            | blk_features::SEG_MAX
            | blk_features::BLK_SIZE
            | blk_features::FLUSH
            | features::RING_F_EVENT_IDX;
        if self.readonly {
            f |= blk_features::RO;
        } else {
            f |= blk_features::DISCARD;
        }
        f
    }

    fn activate(&mut self, acked: u64, queues: &[QueueConfig]) -> Result<(), String> {
        let q = queues.first().copied().unwrap_or_default();
        if !q.ready || q.size == 0 {
            return Err("virtio-blk: request queue not configured".into());
        }
        let mut queue = Queue::new(super::virtio_mmio::QUEUE_MAX).map_err(|e| e.to_string())?;
        queue.set_size(q.size);
        queue.set_desc_table_address(Some(q.desc as u32), Some((q.desc >> 32) as u32));
        queue.set_avail_ring_address(Some(q.avail as u32), Some((q.avail >> 32) as u32));
        queue.set_used_ring_address(Some(q.used as u32), Some((q.used >> 32) as u32));
        queue.set_event_idx(acked & features::RING_F_EVENT_IDX != 0);
        queue.set_ready(true);
        if !queue.is_valid(&self.ram.mem) {
            return Err("virtio-blk: queue addresses are outside guest RAM".into());
        }
        self.send(Cmd::Start(Box::new(queue)));
        Ok(())
    }

    fn reset(&mut self) {
        self.send(Cmd::Stop);
    }

    fn notify(&self, _queue: u16) {
        let _ = self.kick.write(1);
    }
}

/// The I/O thread of one disk.
struct Worker {
    queue: Option<Queue>,
    image: Image,
    serial: String,
    ram: Arc<GuestRam>,
    kick: Arc<EventFd>,
    call: EventFd,
    wake: EventFd,
    cmds: Receiver<Cmd>,
    capacity: u64,
    stats: Arc<BlkStats>,
}

/// Largest piece of a data buffer copied at once (bounds the bounce
/// buffer whatever length a descriptor claims).
const CHUNK: usize = 256 << 10;

/// The data descriptors cut into pieces of at most [`CHUNK`] bytes.
fn chunks(data: &[Seg]) -> impl Iterator<Item = (GuestAddress, usize)> + '_ {
    data.iter().flat_map(|s| {
        let len = s.len as usize;
        (0..len)
            .step_by(CHUNK)
            .map(move |at| (GuestAddress(s.addr.0 + at as u64), CHUNK.min(len - at)))
    })
}

/// One descriptor of a request.
struct Seg {
    addr: GuestAddress,
    len: u32,
    write_only: bool,
}

impl Worker {
    fn run(&mut self) {
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: self.kick.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.wake.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: two valid pollfds for the duration of the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, 1000) };
            if n < 0 {
                continue;
            }
            if fds[0].revents & libc::POLLIN != 0 {
                let _ = self.kick.read();
            }
            if fds[1].revents & libc::POLLIN != 0 {
                let _ = self.wake.read();
            }
            while let Ok(c) = self.cmds.try_recv() {
                match c {
                    // Requests queued before DRIVER_OK are served below.
                    Cmd::Start(q) => self.queue = Some(*q),
                    Cmd::Stop => {
                        self.queue = None;
                        self.flush_on_reset();
                    }
                    Cmd::Exit => {
                        self.flush_on_reset();
                        return;
                    }
                }
            }
            self.process();
        }
    }

    fn flush_on_reset(&self) {
        if !self.image.readonly
            && let Err(e) = self.image.flush()
        {
            tracing::warn!("virtio-blk: flushing {}: {e}", self.image.path.display());
        }
    }

    /// Serves every available request; interrupts the driver if it wants.
    fn process(&mut self) {
        let ram = self.ram.clone();
        let mem = &ram.mem;
        let Some(mut queue) = self.queue.take() else {
            return;
        };
        loop {
            let _ = queue.disable_notification(mem);
            let mut done = false;
            while let Some(chain) = queue.pop_descriptor_chain(mem) {
                let head = chain.head_index();
                let segs: Vec<Seg> = chain
                    .map(|d| Seg {
                        addr: d.addr(),
                        len: d.len(),
                        write_only: d.is_write_only(),
                    })
                    .collect();
                let written = self.serve(&segs);
                if queue.add_used(mem, head, written).is_err() {
                    tracing::warn!("virtio-blk: cannot write the used ring");
                }
                done = true;
            }
            if done && queue.needs_notification(mem).unwrap_or(true) {
                let _ = self.call.write(1);
            }
            // Re-check after enabling notifications (no lost wake-up).
            match queue.enable_notification(mem) {
                Ok(true) => continue,
                _ => break,
            }
        }
        self.queue = Some(queue);
    }

    /// Executes one request; returns how many bytes went to the driver.
    fn serve(&mut self, segs: &[Seg]) -> u32 {
        let ram = self.ram.clone();
        let mem = &ram.mem;
        let Some((status_seg, rest)) = segs.split_last() else {
            return 0;
        };
        if !status_seg.write_only || status_seg.len < 1 || rest.is_empty() {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            return 0;
        }
        let hdr = &rest[0];
        let data = &rest[1..];
        let mut h = [0u8; 16];
        let st = if hdr.len < 16 || hdr.write_only || mem.read_slice(&mut h, hdr.addr).is_err() {
            (status::IOERR, 0)
        } else {
            let ty = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            let sector = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
            self.execute(ty, sector, data)
        };
        if st.0 != status::OK {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        let _ = mem.write_obj(st.0, status_seg.addr);
        st.1 + 1
    }

    /// Returns (status, bytes written into driver buffers).
    fn execute(&mut self, ty: u32, sector: u64, data: &[Seg]) -> (u8, u32) {
        let ram = self.ram.clone();
        let mem = &ram.mem;
        let capacity = self.capacity;
        let image = &mut self.image;
        let total: u64 = data.iter().map(|s| u64::from(s.len)).sum();
        let in_range = |bytes: u64| {
            bytes.is_multiple_of(SECTOR)
                && sector
                    .checked_add(bytes / SECTOR)
                    .is_some_and(|end| end <= capacity)
        };
        match ty {
            req::IN => {
                if !in_range(total) || data.iter().any(|s| !s.write_only) {
                    return (status::IOERR, 0);
                }
                let mut off = sector * SECTOR;
                let mut buf = Vec::new();
                for (addr, len) in chunks(data) {
                    buf.resize(len, 0);
                    if image.read(&mut buf, off).is_err() || mem.write_slice(&buf, addr).is_err() {
                        return (status::IOERR, 0);
                    }
                    off += len as u64;
                }
                self.stats.reads.fetch_add(1, Ordering::Relaxed);
                (status::OK, total as u32)
            }
            req::OUT => {
                if image.readonly {
                    return (status::IOERR, 0);
                }
                if !in_range(total) || data.iter().any(|s| s.write_only) {
                    return (status::IOERR, 0);
                }
                let mut off = sector * SECTOR;
                let mut buf = Vec::new();
                for (addr, len) in chunks(data) {
                    buf.resize(len, 0);
                    if mem.read_slice(&mut buf, addr).is_err() || image.write(&buf, off).is_err() {
                        return (status::IOERR, 0);
                    }
                    off += len as u64;
                }
                self.stats.writes.fetch_add(1, Ordering::Relaxed);
                (status::OK, 0)
            }
            req::FLUSH => {
                if !image.readonly && image.flush().is_err() {
                    return (status::IOERR, 0);
                }
                self.stats.flushes.fetch_add(1, Ordering::Relaxed);
                (status::OK, 0)
            }
            req::GET_ID => {
                let Some(s) = data.first().filter(|s| s.write_only) else {
                    return (status::IOERR, 0);
                };
                let mut id = [0u8; ID_BYTES];
                let n = self.serial.len().min(ID_BYTES);
                id[..n].copy_from_slice(&self.serial.as_bytes()[..n]);
                let len = (s.len as usize).min(ID_BYTES);
                if mem.write_slice(&id[..len], s.addr).is_err() {
                    return (status::IOERR, 0);
                }
                (status::OK, len as u32)
            }
            req::DISCARD => {
                if image.readonly {
                    return (status::IOERR, 0);
                }
                for s in data {
                    if s.write_only || !s.len.is_multiple_of(16) {
                        return (status::IOERR, 0);
                    }
                    for k in 0..s.len / 16 {
                        let mut d = [0u8; 16];
                        if mem
                            .read_slice(&mut d, GuestAddress(s.addr.0 + u64::from(k) * 16))
                            .is_err()
                        {
                            return (status::IOERR, 0);
                        }
                        let start =
                            u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
                        let n = u32::from_le_bytes([d[8], d[9], d[10], d[11]]);
                        let flags = u32::from_le_bytes([d[12], d[13], d[14], d[15]]);
                        if flags != 0 {
                            return (status::UNSUPP, 0);
                        }
                        if n > MAX_DISCARD_SECTORS
                            || start
                                .checked_add(u64::from(n))
                                .is_none_or(|end| end > capacity)
                        {
                            return (status::IOERR, 0);
                        }
                        if image
                            .discard(start * SECTOR, u64::from(n) * SECTOR)
                            .is_err()
                        {
                            return (status::IOERR, 0);
                        }
                    }
                }
                self.stats.discards.fetch_add(1, Ordering::Relaxed);
                (status::OK, 0)
            }
            _ => (status::UNSUPP, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_copied_in_bounded_pieces_covering_every_byte() {
        let segs = [
            Seg {
                addr: GuestAddress(0x1000),
                len: (CHUNK * 2 + 100) as u32,
                write_only: true,
            },
            Seg {
                addr: GuestAddress(0x10_0000),
                len: 512,
                write_only: true,
            },
        ];
        let c: Vec<_> = chunks(&segs).collect();
        assert_eq!(
            c,
            vec![
                (GuestAddress(0x1000), CHUNK),
                (GuestAddress(0x1000 + CHUNK as u64), CHUNK),
                (GuestAddress(0x1000 + 2 * CHUNK as u64), 100),
                (GuestAddress(0x10_0000), 512),
            ]
        );
    }
}
